/*
 * test_http1.c: the HTTP/1.1 server (src/http1.c) in this process, on a real
 * event loop, with a client on the other end of a socketpair: keep-alive and
 * pipelining (answers in order, also when one is answered later), requests
 * cut into any pieces, chunked bodies, Expect: 100-continue, HTTP/1.0, HEAD,
 * every limit (head, target, header count, body by length and by chunks),
 * malformed and smuggling-shaped requests, deadlines, streaming, a client
 * that leaves. The last test runs the fuzz target (tests/fuzz_http1.c) over
 * seeds and a bounded number of mutations, under the sanitizers in CI.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <event2/event.h>

#include "fuzz_http1.h"
#include "http1.h"

struct h1t {
    struct event_base *base;
    struct http1_server *srv;
    int cfd;
    char out[262144];
    size_t outlen;
    int requests;
    int closed;                  /* the server closed our connection */
    struct http1_req *held;      /* "/hold": answered by the test */
    struct http1_req *stream;    /* "/stream": ended by the test */
    int gone;                    /* the stream's client went */
};

static struct h1t t;

static void
on_gone(void *arg)
{
    struct h1t *h = arg;

    h->gone = 1;
    http1_stream_end(h->stream, 0);
    h->stream = NULL;
}

static void
on_drained(void *arg)
{
    (void)arg;
}

/* Echo what was parsed, so tests can check it. */
static void
answer(struct http1_req *r)
{
    char body[8192];
    const char *te = http1_header(r, "transfer-encoding");
    int n = snprintf(body, sizeof(body), "%s|%s|%s|%s|%zu|%s", r->method_name, r->path,
                     r->query != NULL ? r->query : "-", te != NULL ? te : "-", r->body_len,
                     r->body);

    http1_respond(r, 200, (const char *const[]){"Content-Type", "text/plain", NULL}, body,
                  n < (int)sizeof(body) ? (size_t)n : sizeof(body) - 1, 0);
}

static void
on_request(struct http1_req *r, void *arg)
{
    struct h1t *h = arg;

    h->requests++;
    if (r->error != 0) {
        char body[256];
        int n = snprintf(body, sizeof(body), "%s: %s", r->error_slug, r->error_detail);
        http1_respond(r, r->error, NULL, body, (size_t)n, 1);
    } else if (strcmp(r->path, "/hold") == 0) {
        h->held = r;
    } else if (strcmp(r->path, "/stream") == 0) {
        h->stream = r;
        http1_stream_start(r, 200, NULL, -1, on_gone, on_drained, h);
        (void)http1_stream_write(r, "hello ", 6);
    } else {
        answer(r);
    }
}

static void
start_with(const struct http1_limits *lim)
{
    int sv[2];

    memset(&t, 0, sizeof(t));
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    t.base = event_base_new();
    t.srv = http1_server_new(t.base, lim, on_request, &t);
    cr_assert_not_null(t.srv);
    cr_assert_eq(http1_adopt(t.srv, sv[0], 0), 0);
    t.cfd = sv[1];
}

static void
start(void)
{
    struct http1_limits lim = {4096, 1024, 16, 10000, 60000};
    start_with(&lim);
}

static void
stop(void)
{
    if (t.held != NULL) {
        http1_respond(t.held, 200, NULL, "late", 4, 0);
    }
    if (t.stream != NULL) {
        http1_stream_end(t.stream, 1);
    }
    close(t.cfd);
    http1_server_free(t.srv);
    event_base_free(t.base);
}

/* Run the loop and collect output for about ms milliseconds. */
static void
pump(int ms)
{
    struct timespec ts = {0, 2000000};
    int i;

    for (i = 0; i < (ms + 1) / 2 || i == 0; i++) {
        ssize_t n;
        event_base_loop(t.base, EVLOOP_NONBLOCK);
        while ((n = recv(t.cfd, t.out + t.outlen, sizeof(t.out) - 1 - t.outlen, MSG_DONTWAIT)) >
               0) {
            t.outlen += (size_t)n;
        }
        if (n == 0) {
            t.closed = 1;
        }
        t.out[t.outlen] = '\0';
        nanosleep(&ts, NULL);
    }
}

static void
send_str(const char *s)
{
    size_t len = strlen(s);
    cr_assert_eq(send(t.cfd, s, len, MSG_NOSIGNAL), (ssize_t)len);
    pump(10);
}

static int
count(const char *hay, const char *needle)
{
    int n = 0;
    const char *p = hay;

    while ((p = strstr(p, needle)) != NULL) {
        n++;
        p += strlen(needle);
    }
    return n;
}

TestSuite(http1, .timeout = 120);

Test(http1, keep_alive_and_headers)
{
    start();
    send_str("GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_assert(strncmp(t.out, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", t.out);
    cr_assert_not_null(strstr(t.out, "\r\nDate: "), "%s", t.out);
    cr_assert_not_null(strstr(t.out, "\r\nContent-Type: text/plain\r\n"), "%s", t.out);
    cr_assert_not_null(strstr(t.out, "GET|/a/b|x=1&y=2|-|0|"), "%s", t.out);
    cr_assert_null(strstr(t.out, "Connection:"), "%s", t.out);
    send_str("GET /again HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_assert_eq(count(t.out, "HTTP/1.1 200"), 2);
    cr_assert_not_null(strstr(t.out, "GET|/again|"));
    cr_assert_eq(t.closed, 0);
    stop();
}

Test(http1, pipelined_answers_keep_their_order)
{
    const char *a, *b, *c;

    start();
    send_str("POST /one HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
             "GET /hold HTTP/1.1\r\n\r\n"
             "GET /three HTTP/1.1\r\n\r\n");
    cr_assert_not_null(strstr(t.out, "POST|/one|-|-|3|abc"));
    cr_assert_not_null(t.held, "the second request is with the handler");
    cr_assert_null(strstr(t.out, "/three"), "the third waits for the second's answer");
    http1_respond(t.held, 202, NULL, "held", 4, 0);
    t.held = NULL;
    pump(20);
    a = strstr(t.out, "/one");
    b = strstr(t.out, "held");
    c = strstr(t.out, "/three");
    cr_assert(a != NULL && b != NULL && c != NULL && a < b && b < c, "%s", t.out);
    cr_assert_eq(t.requests, 3);
    stop();
}

Test(http1, a_request_cut_into_single_bytes)
{
    const char *req = "PUT /p HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nX-A: 1\r\n\r\nhello world";
    size_t i;

    start();
    for (i = 0; req[i] != '\0'; i++) {
        cr_assert_eq(send(t.cfd, req + i, 1, MSG_NOSIGNAL), 1);
        pump(1);
    }
    pump(10);
    cr_assert_not_null(strstr(t.out, "PUT|/p|-|-|11|hello world"), "%s", t.out);
    stop();
}

Test(http1, chunked_bodies_are_decoded)
{
    start();
    send_str("POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: t\r\n\r\n");
    cr_assert_not_null(strstr(t.out, "POST|/c|-|chunked|11|hello world"), "%s", t.out);
    stop();
}

Test(http1, expect_continue)
{
    start();
    send_str("POST /e HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
    cr_assert_str_eq(t.out, "HTTP/1.1 100 Continue\r\n\r\n");
    send_str("ok");
    cr_assert_not_null(strstr(t.out, "POST|/e|-|-|2|ok"), "%s", t.out);
    stop();
}

Test(http1, http10_closes_unless_kept_alive)
{
    start();
    send_str("GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    cr_assert_not_null(strstr(t.out, "\r\nConnection: keep-alive\r\n"), "%s", t.out);
    cr_assert_eq(t.closed, 0);
    send_str("GET /c HTTP/1.0\r\n\r\n");
    pump(20);
    cr_assert_not_null(strstr(t.out, "\r\nConnection: close\r\n"), "%s", t.out);
    cr_assert_eq(t.closed, 1, "closed after an HTTP/1.0 answer");
    stop();
}

Test(http1, head_gets_the_length_not_the_body)
{
    start();
    send_str("HEAD /h HTTP/1.1\r\n\r\nGET /g HTTP/1.1\r\n\r\n");
    cr_assert_not_null(strstr(t.out, "Content-Length: 13\r\n"), "%s", t.out);
    cr_assert_null(strstr(t.out, "HEAD|"), "%s", t.out);
    cr_assert_not_null(strstr(t.out, "GET|/g|"), "the next answer follows at once: %s", t.out);
    stop();
}

static void
assert_refused(const char *req, const char *status, const char *slug)
{
    start();
    send_str(req);
    pump(20);
    cr_assert(strncmp(t.out, status, strlen(status)) == 0, "want %s, got: %s", status, t.out);
    cr_assert_not_null(strstr(t.out, slug), "%s", t.out);
    cr_assert_not_null(strstr(t.out, "Connection: close"), "%s", t.out);
    cr_assert_eq(t.closed, 1, "the connection is closed after a protocol error");
    stop();
}

Test(http1, body_over_the_limit_by_length)
{
    assert_refused("POST /b HTTP/1.1\r\nContent-Length: 1025\r\n\r\n", "HTTP/1.1 413",
                   "payload-too-large");
}

Test(http1, body_over_the_limit_by_chunks)
{
    char req[4096];
    char chunk[600];

    memset(chunk, 'x', sizeof(chunk) - 1);
    chunk[sizeof(chunk) - 1] = '\0';
    snprintf(req, sizeof(req),
             "POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n257\r\n%s\r\n257\r\n%s\r\n",
             chunk, chunk);
    assert_refused(req, "HTTP/1.1 413", "payload-too-large");
}

Test(http1, head_over_the_limit)
{
    char req[8192], big[5000];

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nX-Big: %s\r\n\r\n", big);
    assert_refused(req, "HTTP/1.1 431", "headers-too-large");
}

Test(http1, too_many_headers)
{
    char req[4096];
    size_t n = 0;
    int i;

    struct http1_limits lim = {65536, 1024, 16, 10000, 60000};
    n += (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\n");
    for (i = 0; i < 101; i++) {
        n += (size_t)snprintf(req + n, sizeof(req) - n, "H%d: v\r\n", i);
    }
    snprintf(req + n, sizeof(req) - n, "\r\n");
    start_with(&lim);
    send_str(req);
    pump(20);
    cr_assert(strncmp(t.out, "HTTP/1.1 431", 12) == 0, "%s", t.out);
    stop();
}

Test(http1, target_over_the_limit)
{
    struct http1_limits lim = {65536, 1024, 16, 10000, 60000};
    static char req[10000];

    memcpy(req, "GET /", 5);
    memset(req + 5, 'p', 9000);
    strcpy(req + 9005, " HTTP/1.1\r\n\r\n");
    start_with(&lim);
    send_str(req);
    pump(20);
    cr_assert(strncmp(t.out, "HTTP/1.1 414", 12) == 0, "%s", t.out);
    stop();
}

Test(http1, malformed_request_line)
{
    assert_refused("HELLO THERE\r\n\r\n", "HTTP/1.1 400", "bad-request");
}

Test(http1, not_a_path)
{
    assert_refused("GET nopath HTTP/1.1\r\n\r\n", "HTTP/1.1 400", "bad-request");
}

Test(http1, length_and_chunked_together_are_refused)
{
    /* The classic request-smuggling shape: never guess which one counts. */
    assert_refused("POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "0\r\n\r\n",
                   "HTTP/1.1 400", "bad-request");
}

Test(http1, two_lengths_are_refused)
{
    assert_refused("POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
                   "HTTP/1.1 400", "bad-request");
}

Test(http1, absolute_form_targets)
{
    start();
    send_str("GET http://example.com/x/y?q=1 HTTP/1.1\r\n\r\n");
    cr_assert_not_null(strstr(t.out, "GET|/x/y|q=1|"), "%s", t.out);
    stop();
}

Test(http1, header_lookup_is_case_insensitive_and_takes_the_first)
{
    start();
    send_str("POST /h HTTP/1.1\r\nTRANSFER-ENCODING: chunked\r\nEmpty:\r\n\r\n0\r\n\r\n");
    cr_assert_not_null(strstr(t.out, "POST|/h|-|chunked|0|"), "%s", t.out);
    stop();
}

Test(http1, the_answer_after_the_client_left_is_dropped)
{
    start();
    send_str("GET /hold HTTP/1.1\r\n\r\n");
    cr_assert_not_null(t.held);
    close(t.cfd);
    t.cfd = -1;
    event_base_loop(t.base, EVLOOP_NONBLOCK);
    cr_assert_eq(http1_connections(t.srv), 1, "a half-closed client still gets its answer");
    http1_respond(t.held, 200, NULL, "late", 4, 0);
    t.held = NULL;
    event_base_loop(t.base, EVLOOP_NONBLOCK);
    cr_assert_eq(http1_connections(t.srv), 0);
    http1_server_free(t.srv);
    event_base_free(t.base);
}

Test(http1, streaming_chunked_and_gone)
{
    start();
    send_str("GET /stream HTTP/1.1\r\n\r\n");
    cr_assert_not_null(strstr(t.out, "Transfer-Encoding: chunked\r\n"), "%s", t.out);
    cr_assert_not_null(strstr(t.out, "\r\n6\r\nhello \r\n"), "%s", t.out);
    cr_assert_eq(http1_stream_write(t.stream, "world", 5), 0);
    http1_stream_end(t.stream, 1);
    t.stream = NULL;
    pump(10);
    cr_assert_not_null(strstr(t.out, "5\r\nworld\r\n0\r\n\r\n"), "%s", t.out);
    /* The next one: the client leaves in the middle. */
    send_str("GET /stream HTTP/1.1\r\n\r\n");
    cr_assert_not_null(t.stream);
    close(t.cfd);
    t.cfd = -1;
    event_base_loop(t.base, EVLOOP_NONBLOCK);
    cr_assert_eq(t.gone, 1, "on_gone ran");
    cr_assert_null(t.stream);
    http1_server_free(t.srv);
    event_base_free(t.base);
}

Test(http1, deadlines)
{
    struct http1_limits lim = {4096, 1024, 16, 300, 600};
    int sv[2];

    start_with(&lim);
    /* A head that never ends: 408 after the header deadline. */
    send_str("GET / HTTP/1.1\r\nX-Slow: 1\r\n");
    pump(700);
    cr_assert(strncmp(t.out, "HTTP/1.1 408", 12) == 0, "%s", t.out);
    cr_assert_eq(t.closed, 1);
    /* A kept-alive connection that goes quiet: closed after the idle timeout. */
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(http1_adopt(t.srv, sv[0], 0), 0);
    close(t.cfd);
    t.cfd = sv[1];
    t.outlen = 0;
    t.closed = 0;
    send_str("GET /k HTTP/1.1\r\n\r\n");
    cr_assert(strncmp(t.out, "HTTP/1.1 200", 12) == 0, "%s", t.out);
    pump(400);
    cr_assert_eq(t.closed, 0, "not before the idle timeout");
    pump(700);
    cr_assert_eq(t.closed, 1, "closed once idle");
    stop();
}

Test(http1, connection_cap)
{
    struct http1_limits lim = {4096, 1024, 1, 10000, 60000};
    int sv[2];
    char buf[512];
    ssize_t n;

    start_with(&lim);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(http1_adopt(t.srv, sv[0], 0), 0);
    n = recv(sv[1], buf, sizeof(buf) - 1, MSG_DONTWAIT);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_assert(strncmp(buf, "HTTP/1.1 503", 12) == 0, "%s", buf);
    cr_assert_not_null(strstr(buf, "/problems/overloaded"));
    close(sv[1]);
    send_str("GET /fine HTTP/1.1\r\n\r\n");
    cr_assert_not_null(strstr(t.out, "GET|/fine|"), "the first connection is served");
    stop();
}

/* ---- fuzz ---------------------------------------------------------------- */

static const char *const seeds[] = {
    "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "POST /v1/calls HTTP/1.1\r\nContent-Length: 5\r\nAuthorization: Bearer k\r\n\r\nhello"
    "GET /x HTTP/1.1\r\n\r\n",
    "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    "HEAD /h HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /g HTTP/1.0\r\n\r\n",
    "GET /u HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x00",
    "CONNECT a:443 HTTP/1.1\r\n\r\n",
    "POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "GET http://h/p?q#f HTTP/1.1\r\n\r\n",
    "\r\n\r\nGET / HTTP/9.9\r\n\r\n",
};

/* A small deterministic generator: the same inputs on every run. */
static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t
next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static size_t
mutate(uint8_t *buf, size_t len, size_t cap)
{
    int k, edits = 1 + (int)(next_rand() % 6);

    for (k = 0; k < edits; k++) {
        uint32_t r = next_rand();
        size_t at = len > 0 ? r % len : 0;
        switch ((r >> 8) % 6) {
        case 0: /* flip a byte */
            if (len > 0) {
                buf[at] ^= (uint8_t)(1u << ((r >> 16) % 8));
            }
            break;
        case 1: /* a random byte */
            if (len > 0) {
                buf[at] = (uint8_t)(r >> 16);
            }
            break;
        case 2: /* insert a byte that matters to HTTP */
            if (len + 1 < cap) {
                static const char special[] = "\r\n:; 0123456789abcdefABCDEF\t?#/%\x00\xff";
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = (uint8_t)special[(r >> 16) % (sizeof(special) - 1)];
                len++;
            }
            break;
        case 3: /* delete a run */
            if (len > 0) {
                size_t n = 1 + (r >> 16) % 8;
                if (at + n > len) {
                    n = len - at;
                }
                memmove(buf + at, buf + at + n, len - at - n);
                len -= n;
            }
            break;
        case 4: /* duplicate a run (more requests, longer headers) */
            if (len > 0) {
                size_t n = 1 + (r >> 16) % 64;
                if (at + n > len) {
                    n = len - at;
                }
                if (len + n < cap) {
                    memmove(buf + at + n, buf + at, len - at);
                    len += n;
                }
            }
            break;
        default: /* a long run of one byte (limits) */
            if (len + 300 < cap) {
                memmove(buf + at + 300, buf + at, len - at);
                memset(buf + at, 'A' + (int)((r >> 16) % 26), 300);
                len += 300;
            }
            break;
        }
    }
    return len;
}

Test(http1, fuzz_seeds_and_mutations)
{
    static uint8_t buf[8192];
    size_t i, len;
    int mode, runs = 0;
    const char *env = getenv("CG_FUZZ_RUNS");
    int mutations = env != NULL ? atoi(env) : 3000;

    for (i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        for (mode = 0; mode < 16; mode++) {
            buf[0] = (uint8_t)(mode & 3);
            buf[1] = (uint8_t)(mode >> 2);
            len = strlen(seeds[i]);
            memcpy(buf + 2, seeds[i], len);
            LLVMFuzzerTestOneInput(buf, len + 2);
            runs++;
        }
    }
    for (i = 0; i < (size_t)mutations; i++) {
        const char *seed = seeds[next_rand() % (sizeof(seeds) / sizeof(seeds[0]))];
        len = strlen(seed);
        buf[0] = (uint8_t)next_rand();
        buf[1] = (uint8_t)next_rand();
        memcpy(buf + 2, seed, len);
        len = 2 + mutate(buf + 2, len, sizeof(buf) - 2);
        LLVMFuzzerTestOneInput(buf, len);
        runs++;
    }
    cr_log_info("fuzz: %d inputs", runs);
}
