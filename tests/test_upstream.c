/*
 * test_upstream.c: upstream.c against real peers on loopback, all on one
 * event_base: an in-process evhttp server for well-formed HTTP, and raw
 * listening sockets driven by libevent for connection-level faults (silence,
 * reset, close, interim responses, keep-alive then reset). No libcurl mocks.
 *
 * Every test runs the loop until its completions arrived or a deadline
 * passed, and every completion records whether it ran before
 * upstream_start() returned (it must never).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "upstream.h"

#define MAX_DONE 64

/* What one completion reported (copied out of the borrowed response). */
struct done {
    int calls; /* must end at exactly 1 (or 0 if cancelled) */
    int early; /* ran inside upstream_start() */
    enum upstream_result res;
    long status;
    char *body;
    size_t body_len;
    char *content_type;
    char *retry_after;
    char *error;
    double total_ms;
    double t_start;      /* monotonic ms before upstream_start() */
    double elapsed_ms;   /* start to completion */
    int free_up_on_done; /* call upstream_free() from the completion */
};

/* In-process evhttp server. */
struct hsrv {
    struct evhttp *http;
    int port;
    int conns;               /* TCP connections accepted */
    int requests;            /* requests handled */
    struct delayed *delayed; /* replies scheduled for later */
};

/* A reply the evhttp server sends later (/slow). */
struct delayed {
    struct evhttp_request *req;
    struct event *ev;
    struct delayed *next;
};

enum raw_mode {
    RAW_SILENT,               /* accept, read, never answer */
    RAW_RESET,                /* read the request, close with RST */
    RAW_CLOSE,                /* read the request, close with FIN */
    RAW_KEEPALIVE_THEN_RESET, /* answer the first request, RST on the second */
    RAW_ANSWER_THEN_CLOSE,    /* answer (keep-alive response), then FIN */
    RAW_EARLY_HINTS,          /* 103 with headers, then 200 with others */
};

/* A raw TCP fault server. */
struct raw {
    int fd;
    int port;
    enum raw_mode mode;
    struct event *ev;
    int conns;
    int requests;
    struct rconn *list;
};

/* One accepted connection of a raw server. */
struct rconn {
    struct raw *srv;
    int fd;
    int nreq;
    struct event *ev;
    size_t len;
    char buf[16384];
    struct rconn *next;
};

static struct event_base *base;
static struct upstream *up;
static struct upstream_opts opts = {.max_response_bytes = 64 * 1024};
static struct done dn[MAX_DONE];
static int starting;
static struct done *wait_d;
static int wait_n;
static struct hsrv hs;
static struct raw rs;
static int hole_fds[8];
static int hole_nfds;

/* ------------------------------------------------------------------------ */
/* streaming consumer state                                                  */

#define MAX_STREAM 4

/* What one streamed transfer's on_head/on_data saw, and how they answer. */
struct sstream {
    struct done *d;          /* its completion record (dn[i]) */
    struct upstream_req *r;  /* its handle */
    int heads;               /* on_head calls */
    long head_status;
    char *head_ctype;
    long long head_len;
    int head_late;           /* on_head after on_data or the completion */
    int datas;               /* on_data calls */
    size_t total;            /* body bytes seen */
    size_t bad;              /* first offset off the pattern, or SIZE_MAX */
    char got[64];            /* the first bytes, for small bodies */
    size_t got_len;
    enum upstream_stream_verdict head_verdict;
    int max_pauses;          /* pause (head pause included) this many times */
    int pauses;
    int paused;              /* paused and not yet resumed */
    int resume_ms;           /* resume from a timer after this; 0: never */
    int resumes;
    struct event *resume_ev;
    int in_resume;           /* inside upstream_resume() */
    int data_in_resume;      /* on_data from inside upstream_resume() */
    int data_while_paused;
    int data_after_done;
    size_t abort_at;         /* ABORT once total reaches this; 0: never */
    int aborted;
    int data_after_abort;
};

static struct sstream ss[MAX_STREAM];

/* ------------------------------------------------------------------------ */
/* loop helpers                                                              */

static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
    *(int *)arg = 1;
}

static int
all_done(void)
{
    int i;

    if (wait_d == NULL) {
        return 0;
    }
    for (i = 0; i < wait_n; i++) {
        if (wait_d[i].calls == 0) {
            return 0;
        }
    }
    return 1;
}

/* Run the loop until d[0..n) all completed or ms passed (n == 0: run ms). */
static int
run_until(struct done *d, int n, int ms)
{
    int expired = 0, ok;
    struct event *t = evtimer_new(base, on_deadline, &expired);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    wait_d = n > 0 ? d : NULL;
    wait_n = n;
    evtimer_add(t, &tv);
    while (!expired && !all_done()) {
        event_base_loop(base, EVLOOP_ONCE);
    }
    event_free(t);
    ok = n > 0 ? all_done() : 1;
    wait_d = NULL;
    return ok;
}

static char *
dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static void
on_done(enum upstream_result res, const struct upstream_response *resp, void *arg)
{
    struct done *d = arg;

    d->calls++;
    if (starting) {
        d->early = 1;
    }
    d->res = res;
    d->status = resp->status;
    free(d->body);
    d->body = malloc(resp->body_len + 1);
    memcpy(d->body, resp->body, resp->body_len + 1);
    d->body_len = resp->body_len;
    free(d->content_type);
    free(d->retry_after);
    free(d->error);
    d->content_type = dup_or_null(resp->content_type);
    d->retry_after = dup_or_null(resp->retry_after);
    d->error = dup_or_null(resp->error);
    d->total_ms = resp->total_ms;
    d->elapsed_ms = now_ms() - d->t_start;
    if (d->free_up_on_done) {
        upstream_free(up);
        up = NULL;
    }
}

static struct upstream_req *
start(struct done *d, const struct upstream_request *rq)
{
    struct upstream_req *r;

    d->t_start = now_ms();
    starting = 1;
    r = upstream_start(up, rq, on_done, d);
    starting = 0;
    return r;
}

/* Run the loop until *flag is set or ms passed. */
static int
run_until_flag(const int *flag, int ms)
{
    int expired = 0;
    struct event *t = evtimer_new(base, on_deadline, &expired);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    evtimer_add(t, &tv);
    while (!expired && !*flag) {
        event_base_loop(base, EVLOOP_ONCE);
    }
    event_free(t);
    return *flag;
}

/* The byte at offset i of a /pattern body: no short period, so a lost,
 * repeated or reordered piece shows up at once. */
static unsigned char
pat(size_t i)
{
    return (unsigned char)(i * 31 + (i >> 8) * 7 + (i >> 16));
}

static struct sstream *
ss_of(void *arg)
{
    ptrdiff_t i = (struct done *)arg - dn;

    cr_assert(i >= 0 && i < MAX_STREAM);
    return &ss[i];
}

static void
ss_on_resume_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sstream *s = arg;

    s->resumes++;
    s->paused = 0;
    s->in_resume = 1;
    upstream_resume(s->r);
    s->in_resume = 0;
}

static void
ss_pause(struct sstream *s)
{
    s->pauses++;
    s->paused = 1;
    if (s->resume_ms > 0) {
        struct timeval tv = {s->resume_ms / 1000, (s->resume_ms % 1000) * 1000};

        if (s->resume_ev == NULL) {
            s->resume_ev = evtimer_new(base, ss_on_resume_timer, s);
        }
        evtimer_add(s->resume_ev, &tv);
    }
}

static enum upstream_stream_verdict
ss_on_head(long status, const char *content_type, long long content_length, void *arg)
{
    struct sstream *s = ss_of(arg);

    s->heads++;
    if (s->datas > 0 || s->d->calls > 0) {
        s->head_late++;
    }
    s->head_status = status;
    free(s->head_ctype);
    s->head_ctype = dup_or_null(content_type);
    s->head_len = content_length;
    if (s->head_verdict == UPSTREAM_STREAM_PAUSE) {
        ss_pause(s);
    } else if (s->head_verdict == UPSTREAM_STREAM_ABORT) {
        s->aborted = 1;
    }
    return s->head_verdict;
}

static enum upstream_stream_verdict
ss_on_data(const char *buf, size_t len, void *arg)
{
    struct sstream *s = ss_of(arg);
    size_t i;

    s->datas++;
    s->data_in_resume += s->in_resume;
    s->data_while_paused += s->paused;
    s->data_after_abort += s->aborted;
    s->data_after_done += s->d->calls > 0;
    for (i = 0; i < len && s->bad == SIZE_MAX; i++) {
        if ((unsigned char)buf[i] != pat(s->total + i)) {
            s->bad = s->total + i;
        }
    }
    for (i = 0; i < len && s->got_len < sizeof(s->got) - 1; i++) {
        s->got[s->got_len++] = buf[i];
    }
    s->total += len;
    if (s->abort_at > 0 && s->total >= s->abort_at) {
        s->aborted = 1;
        return UPSTREAM_STREAM_ABORT;
    }
    if (s->pauses < s->max_pauses) {
        ss_pause(s);
        return UPSTREAM_STREAM_PAUSE;
    }
    return UPSTREAM_STREAM_CONTINUE;
}

static const struct upstream_stream ss_cbs = {ss_on_head, ss_on_data};

/* Start rq streamed into ss[i], completing into dn[i]. */
static struct upstream_req *
start_stream(int i, struct upstream_request *rq)
{
    rq->stream = &ss_cbs;
    ss[i].d = &dn[i];
    ss[i].r = start(&dn[i], rq);
    return ss[i].r;
}

static struct upstream_request
mkreq(const char *method, const char *url)
{
    struct upstream_request rq = {0};

    rq.method = method;
    rq.url = url;
    rq.connect_timeout_ms = 2000;
    rq.timeout_ms = 5000;
    return rq;
}

/* ------------------------------------------------------------------------ */
/* evhttp server                                                             */

static const char *
cmd_name(enum evhttp_cmd_type c)
{
    switch (c) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    default:
        return "?";
    }
}

static void
hsrv_send_delayed(evutil_socket_t fd, short what, void *arg)
{
    struct delayed *dl = arg;
    struct evbuffer *b = evbuffer_new();

    evbuffer_add_printf(b, "late");
    evhttp_send_reply(dl->req, 200, "OK", b);
    evbuffer_free(b);
    dl->req = NULL;
}

static void
hsrv_handle(struct evhttp_request *req, void *arg)
{
    struct hsrv *s = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = evhttp_uri_get_path(uri);
    const char *query = evhttp_uri_get_query(uri);
    struct evkeyvalq q, *in = evhttp_request_get_input_headers(req);
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    struct evbuffer *b = evbuffer_new();
    const char *v;

    s->requests++;
    TAILQ_INIT(&q);
    if (query != NULL) {
        evhttp_parse_query_str(query, &q);
    }
    if (strcmp(path, "/echo") == 0) {
        const char *xt = evhttp_find_header(in, "X-Test");
        const char *ex = evhttp_find_header(in, "Expect");

        evbuffer_add_printf(b, "%s|%s|%s|", cmd_name(evhttp_request_get_command(req)),
                            xt ? xt : "-", ex ? ex : "-");
        evbuffer_add_buffer(b, evhttp_request_get_input_buffer(req));
        evhttp_add_header(out, "Content-Type", "text/plain");
        evhttp_send_reply(req, 200, "OK", b);
    } else if (strcmp(path, "/status") == 0) {
        v = evhttp_find_header(&q, "code");
        evhttp_add_header(out, "content-type", "application/problem+json");
        evhttp_add_header(out, "retry-after", "120");
        evbuffer_add_printf(b, "{}");
        evhttp_send_reply(req, v ? atoi(v) : 500, "Status", b);
    } else if (strcmp(path, "/redirect") == 0) {
        evhttp_add_header(out, "Location", "/echo");
        evhttp_send_reply(req, 302, "Found", b);
    } else if (strcmp(path, "/big") == 0) {
        int n;

        v = evhttp_find_header(&q, "n");
        n = v ? atoi(v) : 0;
        while (n-- > 0) {
            evbuffer_add(b, "x", 1);
        }
        evhttp_send_reply(req, 200, "OK", b);
    } else if (strcmp(path, "/pattern") == 0) {
        /* n bytes of pat(); chunked=1: chunked encoding, 64 KiB a chunk */
        const char *ch = evhttp_find_header(&q, "chunked");
        int chunked = ch != NULL && strcmp(ch, "1") == 0;
        unsigned char piece[65536];
        size_t n, i, k;

        v = evhttp_find_header(&q, "n");
        n = v ? (size_t)strtoul(v, NULL, 10) : 0;
        evhttp_add_header(out, "Content-Type", "application/octet-stream");
        if (chunked) {
            evhttp_send_reply_start(req, 200, "OK");
        }
        for (i = 0; i < n;) {
            for (k = 0; k < sizeof(piece) && i < n; k++, i++) {
                piece[k] = pat(i);
            }
            evbuffer_add(b, piece, k);
            if (chunked) {
                evhttp_send_reply_chunk(req, b);
            }
        }
        if (chunked) {
            evhttp_send_reply_end(req);
        } else {
            evhttp_send_reply(req, 200, "OK", b);
        }
    } else if (strcmp(path, "/empty") == 0) {
        evhttp_add_header(out, "Content-Type", "text/plain");
        evhttp_send_reply(req, 204, "No Content", NULL);
    } else if (strcmp(path, "/slow") == 0) {
        struct delayed *dl = calloc(1, sizeof(*dl));
        struct timeval tv = {3, 0};

        dl->req = req;
        dl->ev = evtimer_new(base, hsrv_send_delayed, dl);
        dl->next = s->delayed;
        s->delayed = dl;
        evtimer_add(dl->ev, &tv);
    } else {
        evhttp_send_reply(req, 404, "Not Found", b);
    }
    evhttp_clear_headers(&q);
    evbuffer_free(b);
}

static struct bufferevent *
hsrv_bevcb(struct event_base *b, void *arg)
{
    struct hsrv *s = arg;

    s->conns++;
    return bufferevent_socket_new(b, -1, BEV_OPT_CLOSE_ON_FREE);
}

static int
sock_port(int fd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);

    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    return ntohs(sa.sin_port);
}

/* The evhttp server on addr; 0 if it cannot listen there. */
static int
hsrv_start_on(const char *addr)
{
    struct evhttp_bound_socket *h;
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);

    memset(&hs, 0, sizeof(hs));
    hs.http = evhttp_new(base);
    cr_assert_not_null(hs.http);
    evhttp_set_gencb(hs.http, hsrv_handle, &hs);
    evhttp_set_bevcb(hs.http, hsrv_bevcb, &hs);
    h = evhttp_bind_socket_with_handle(hs.http, addr, 0);
    if (h == NULL) {
        return 0;
    }
    cr_assert_eq(getsockname(evhttp_bound_socket_get_fd(h), (struct sockaddr *)&sa, &len), 0);
    hs.port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                             : ((struct sockaddr_in *)&sa)->sin_port);
    return 1;
}

static void
hsrv_start(void)
{
    struct evhttp_bound_socket *h;

    memset(&hs, 0, sizeof(hs));
    hs.http = evhttp_new(base);
    cr_assert_not_null(hs.http);
    evhttp_set_allowed_methods(hs.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(hs.http, hsrv_handle, &hs);
    evhttp_set_bevcb(hs.http, hsrv_bevcb, &hs);
    h = evhttp_bind_socket_with_handle(hs.http, "127.0.0.1", 0);
    cr_assert_not_null(h);
    hs.port = sock_port(evhttp_bound_socket_get_fd(h));
}

static void
hsrv_stop(void)
{
    while (hs.delayed != NULL) {
        struct delayed *dl = hs.delayed;

        hs.delayed = dl->next;
        event_free(dl->ev);
        free(dl);
    }
    if (hs.http != NULL) {
        evhttp_free(hs.http);
        hs.http = NULL;
    }
}

static char *
url(int port, const char *path)
{
    static char bufs[8][256];
    static int i;
    char *b = bufs[i++ % 8];

    snprintf(b, 256, "http://127.0.0.1:%d%s", port, path);
    return b;
}

/* ------------------------------------------------------------------------ */
/* raw fault server                                                          */

static void
rconn_close(struct rconn *c, int reset)
{
    struct rconn **pp;

    if (reset) {
        struct linger lg = {1, 0};

        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    for (pp = &c->srv->list; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    event_free(c->ev);
    close(c->fd);
    free(c);
}

static void
rconn_send(struct rconn *c, const char *s)
{
    ssize_t n = send(c->fd, s, strlen(s), MSG_NOSIGNAL);

    (void)n;
}

static const char raw_ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/* Act on one complete request; return 1 if the connection was closed. */
static int
rconn_request(struct rconn *c)
{
    c->nreq++;
    c->srv->requests++;
    switch (c->srv->mode) {
    case RAW_SILENT:
        return 0;
    case RAW_RESET:
        rconn_close(c, 1);
        return 1;
    case RAW_CLOSE:
        rconn_close(c, 0);
        return 1;
    case RAW_KEEPALIVE_THEN_RESET:
        if (c->nreq == 1) {
            rconn_send(c, raw_ok);
            return 0;
        }
        rconn_close(c, 1);
        return 1;
    case RAW_ANSWER_THEN_CLOSE:
        rconn_send(c, raw_ok);
        rconn_close(c, 0);
        return 1;
    case RAW_EARLY_HINTS:
        rconn_send(c, "HTTP/1.1 103 Early Hints\r\n"
                      "Content-Type: bogus/early\r\n"
                      "Retry-After: 9\r\n"
                      "\r\n"
                      "HTTP/1.1 200 OK\r\n"
                      "CONTENT-TYPE: \t text/plain  \r\n"
                      "Content-Length: 2\r\n"
                      "\r\n"
                      "ok");
        return 0;
    }
    return 0;
}

static void
rconn_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct rconn *c = arg;
    ssize_t n;
    char *end;

    if (c->len >= sizeof(c->buf) - 1) {
        c->len = 0; /* silent mode may see lots; keep only the tail logic simple */
    }
    n = recv(fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        rconn_close(c, 0);
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    while ((end = strstr(c->buf, "\r\n\r\n")) != NULL) {
        size_t used = (size_t)(end + 4 - c->buf);

        memmove(c->buf, c->buf + used, c->len - used + 1);
        c->len -= used;
        if (rconn_request(c)) {
            return;
        }
    }
}

static void
raw_on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct raw *s = arg;
    struct rconn *c;
    int cfd = accept(fd, NULL, NULL);

    if (cfd < 0) {
        return;
    }
    evutil_make_socket_nonblocking(cfd);
    c = calloc(1, sizeof(*c));
    c->srv = s;
    c->fd = cfd;
    c->ev = event_new(base, cfd, EV_READ | EV_PERSIST, rconn_on_read, c);
    event_add(c->ev, NULL);
    c->next = s->list;
    s->list = c;
    s->conns++;
}

static int
listen_socket(int backlog)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;

    cr_assert(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(fd, backlog), 0);
    return fd;
}

static void
raw_start(enum raw_mode mode)
{
    memset(&rs, 0, sizeof(rs));
    rs.mode = mode;
    rs.fd = listen_socket(64);
    evutil_make_socket_nonblocking(rs.fd);
    rs.port = sock_port(rs.fd);
    rs.ev = event_new(base, rs.fd, EV_READ | EV_PERSIST, raw_on_accept, &rs);
    event_add(rs.ev, NULL);
}

static void
raw_stop(void)
{
    if (rs.ev == NULL) {
        return;
    }
    while (rs.list != NULL) {
        rconn_close(rs.list, 0);
    }
    event_free(rs.ev);
    close(rs.fd);
    rs.ev = NULL;
}

/* A port with nothing listening (bound a moment ago, then closed). */
static int
refused_port(void)
{
    int fd = listen_socket(1);
    int port = sock_port(fd);

    close(fd);
    return port;
}

/* ------------------------------------------------------------------------ */
/* fixture                                                                   */

static void
setup(void)
{
    int i;

    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    memset(dn, 0, sizeof(dn));
    memset(&hs, 0, sizeof(hs));
    memset(&rs, 0, sizeof(rs));
    memset(ss, 0, sizeof(ss));
    for (i = 0; i < MAX_STREAM; i++) {
        ss[i].bad = SIZE_MAX;
    }
    hole_nfds = 0;
    base = event_base_new();
    cr_assert_not_null(base);
    up = upstream_new(base, &opts);
    cr_assert_not_null(up);
}

static void
teardown(void)
{
    int i;

    upstream_free(up);
    up = NULL;
    hsrv_stop();
    raw_stop();
    for (i = 0; i < hole_nfds; i++) {
        close(hole_fds[i]);
    }
    for (i = 0; i < MAX_STREAM; i++) {
        if (ss[i].resume_ev != NULL) {
            event_free(ss[i].resume_ev);
        }
        free(ss[i].head_ctype);
    }
    event_base_free(base);
    curl_global_cleanup();
    for (i = 0; i < MAX_DONE; i++) {
        free(dn[i].body);
        free(dn[i].content_type);
        free(dn[i].retry_after);
        free(dn[i].error);
    }
}

TestSuite(upstream, .init = setup, .fini = teardown, .timeout = 15);

/* ------------------------------------------------------------------------ */
/* tests                                                                     */

Test(upstream, result_text_table, .timeout = 15)
{
    int i;

    for (i = 0; i < UPSTREAM_RESULT_MAX; i++) {
        cr_assert_not_null(upstream_result_text[i]);
    }
    cr_assert_str_eq(upstream_result_text[UPSTREAM_OK], "ok");
    cr_assert_str_eq(upstream_result_text[UPSTREAM_ERR_NOT_SENT], "not_sent");
    cr_assert_str_eq(upstream_result_text[UPSTREAM_ERR_CANCELLED], "cancelled");
}

Test(upstream, get_roundtrip, .timeout = 15)
{
    const char *hdrs[] = {"X-Test: hello", NULL};
    struct upstream_request rq;

    hsrv_start();
    rq = mkreq("GET", url(hs.port, "/echo"));
    rq.headers = hdrs;
    cr_assert_not_null(start(&dn[0], &rq));
    cr_assert_eq(upstream_running(up), 1);
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].calls, 1);
    cr_assert_eq(dn[0].early, 0);
    cr_assert_eq(dn[0].res, UPSTREAM_OK, "res %s: %s", upstream_result_text[dn[0].res],
                 dn[0].error);
    cr_assert_eq(dn[0].status, 200);
    cr_assert_str_eq(dn[0].body, "GET|hello|-|");
    cr_assert_str_eq(dn[0].content_type, "text/plain");
    cr_assert_null(dn[0].retry_after);
    cr_assert_str_eq(dn[0].error, "");
    cr_assert_eq(upstream_running(up), 0);
}

Test(upstream, post_roundtrip_binary_body, .timeout = 15)
{
    const char *hdrs[] = {"X-Test: post", "Content-Type: application/octet-stream", NULL};
    char body[3000];
    const char prefix[] = "POST|post|-|";
    struct upstream_request rq;
    size_t i;

    for (i = 0; i < sizeof(body); i++) {
        body[i] = (char)(i % 7 == 0 ? 0 : 'a' + i % 26);
    }
    hsrv_start();
    rq = mkreq("POST", url(hs.port, "/echo"));
    rq.headers = hdrs;
    rq.body = body;
    rq.body_len = sizeof(body);
    cr_assert_not_null(start(&dn[0], &rq));
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].calls, 1);
    cr_assert_eq(dn[0].res, UPSTREAM_OK, "%s", dn[0].error);
    cr_assert_eq(dn[0].status, 200);
    /* "-" for Expect: no 100-continue even for a body over 1 KiB */
    cr_assert_eq(dn[0].body_len, sizeof(prefix) - 1 + sizeof(body));
    cr_assert_eq(memcmp(dn[0].body, prefix, sizeof(prefix) - 1), 0);
    cr_assert_eq(memcmp(dn[0].body + sizeof(prefix) - 1, body, sizeof(body)), 0);
}

Test(upstream, put_patch_delete_methods, .timeout = 15)
{
    struct upstream_request rq;

    hsrv_start();
    rq = mkreq("PUT", url(hs.port, "/echo"));
    rq.body = "p";
    rq.body_len = 1;
    cr_assert_not_null(start(&dn[0], &rq));
    rq = mkreq("PATCH", url(hs.port, "/echo"));
    rq.body = "q";
    rq.body_len = 1;
    cr_assert_not_null(start(&dn[1], &rq));
    rq = mkreq("DELETE", url(hs.port, "/echo"));
    cr_assert_not_null(start(&dn[2], &rq));
    run_until(dn, 3, 5000);
    cr_assert_str_eq(dn[0].body, "PUT|-|-|p");
    cr_assert_str_eq(dn[1].body, "PATCH|-|-|q");
    cr_assert_str_eq(dn[2].body, "DELETE|-|-|");
}

Test(upstream, keepalive_reuses_connection, .timeout = 15)
{
    struct upstream_request rq;

    hsrv_start();
    rq = mkreq("GET", url(hs.port, "/echo"));
    cr_assert_not_null(start(&dn[0], &rq));
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].res, UPSTREAM_OK);
    rq = mkreq("POST", url(hs.port, "/echo"));
    rq.body = "x";
    rq.body_len = 1;
    cr_assert_not_null(start(&dn[1], &rq));
    run_until(&dn[1], 1, 5000);
    cr_assert_eq(dn[1].res, UPSTREAM_OK);
    cr_assert_eq(hs.requests, 2);
    cr_assert_eq(hs.conns, 1, "connections: %d", hs.conns);
}

Test(upstream, status_5xx_is_ok_with_headers, .timeout = 15)
{
    struct upstream_request rq;

    hsrv_start();
    rq = mkreq("GET", url(hs.port, "/status?code=503"));
    cr_assert_not_null(start(&dn[0], &rq));
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].res, UPSTREAM_OK);
    cr_assert_eq(dn[0].status, 503);
    cr_assert_str_eq(dn[0].retry_after, "120");
    cr_assert_str_eq(dn[0].content_type, "application/problem+json");
    cr_assert_str_eq(dn[0].body, "{}");
}

Test(upstream, headers_from_final_response_only, .timeout = 15)
{
    struct upstream_request rq;

    raw_start(RAW_EARLY_HINTS);
    rq = mkreq("GET", url(rs.port, "/"));
    cr_assert_not_null(start(&dn[0], &rq));
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].res, UPSTREAM_OK, "%s", dn[0].error);
    cr_assert_eq(dn[0].status, 200);
    cr_assert_str_eq(dn[0].content_type, "text/plain");
    cr_assert_null(dn[0].retry_after);
    cr_assert_str_eq(dn[0].body, "ok");
}

Test(upstream, redirect_not_followed, .timeout = 15)
{
    struct upstream_request rq;

    hsrv_start();
    rq = mkreq("POST", url(hs.port, "/redirect"));
    rq.body = "{}";
    rq.body_len = 2;
    cr_assert_not_null(start(&dn[0], &rq));
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].res, UPSTREAM_OK);
    cr_assert_eq(dn[0].status, 302);
    run_until(NULL, 0, 100);
    cr_assert_eq(hs.requests, 1);
}

Test(upstream, refused_is_not_sent, .timeout = 15)
{
    struct upstream_request rq = mkreq("POST", url(refused_port(), "/x"));

    rq.body = "{}";
    rq.body_len = 2;
    cr_assert_not_null(start(&dn[0], &rq));
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].calls, 1);
    cr_assert_eq(dn[0].early, 0);
    cr_assert_eq(dn[0].res, UPSTREAM_ERR_NOT_SENT, "%s", upstream_result_text[dn[0].res]);
    cr_assert_eq(dn[0].status, 0);
    cr_assert_str_eq(dn[0].body, "");
    cr_assert_neq(dn[0].error[0], '\0');
    cr_assert_lt(dn[0].elapsed_ms, 1000.0);
}

Test(upstream, silent_server_times_out, .timeout = 15)
{
    struct upstream_request rq;

    raw_start(RAW_SILENT);
    rq = mkreq("POST", url(rs.port, "/x"));
    rq.body = "{}";
    rq.body_len = 2;
    rq.connect_timeout_ms = 500;
    rq.timeout_ms = 700;
    cr_assert_not_null(start(&dn[0], &rq));
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].calls, 1);
    cr_assert_eq(dn[0].res, UPSTREAM_ERR_TIMEOUT, "%s: %s", upstream_result_text[dn[0].res],
                 dn[0].error);
    cr_assert_geq(dn[0].elapsed_ms, 700.0);
    cr_assert_leq(dn[0].elapsed_ms, 1700.0);
    cr_assert_geq(dn[0].total_ms, 690.0);
    cr_assert_eq(rs.requests, 1);
}

Test(upstream, reset_after_request_is_broken, .timeout = 15)
{
    struct upstream_request rq;

    raw_start(RAW_RESET);
    rq = mkreq("GET", url(rs.port, "/x"));
    cr_assert_not_null(start(&dn[0], &rq));
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].res, UPSTREAM_ERR_BROKEN, "%s: %s", upstream_result_text[dn[0].res],
                 dn[0].error);
    cr_assert_eq(rs.requests, 1);
}

Test(upstream, close_after_request_is_broken, .timeout = 15)
{
    struct upstream_request rq;

    raw_start(RAW_CLOSE);
    rq = mkreq("GET", url(rs.port, "/x"));
    cr_assert_not_null(start(&dn[0], &rq));
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].res, UPSTREAM_ERR_BROKEN, "%s: %s", upstream_result_text[dn[0].res],
                 dn[0].error);
    cr_assert_eq(rs.requests, 1);
}

/*
 * libcurl re-sends a request on a fresh connection when a reused connection
 * dies before any response byte. Our pre-request hook must stop that: the
 * vendor saw the request once, so the result is BROKEN and the server
 * sees no third request.
 */
Test(upstream, no_silent_resend_on_reused_connection, .timeout = 15)
{
    struct upstream_request rq;

    raw_start(RAW_KEEPALIVE_THEN_RESET);
    rq = mkreq("GET", url(rs.port, "/a"));
    cr_assert_not_null(start(&dn[0], &rq));
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].res, UPSTREAM_OK, "%s", dn[0].error);
    rq = mkreq("POST", url(rs.port, "/b"));
    cr_assert_not_null(start(&dn[1], &rq));
    run_until(&dn[1], 1, 5000);
    cr_assert_eq(dn[1].calls, 1);
    cr_assert_eq(dn[1].res, UPSTREAM_ERR_BROKEN, "%s: %s", upstream_result_text[dn[1].res],
                 dn[1].error);
    run_until(NULL, 0, 200);
    /* libcurl may open the retry connection; the hook stops the request on it */
    cr_assert_eq(rs.requests, 2, "requests: %d", rs.requests);
}

/* A connection the server closed while idle is not reused; the next request works. */
Test(upstream, idle_close_then_fresh_connection, .timeout = 15)
{
    struct upstream_request rq;

    raw_start(RAW_ANSWER_THEN_CLOSE);
    rq = mkreq("GET", url(rs.port, "/a"));
    cr_assert_not_null(start(&dn[0], &rq));
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].res, UPSTREAM_OK, "%s", dn[0].error);
    run_until(NULL, 0, 100);
    cr_assert_not_null(start(&dn[1], &rq));
    run_until(&dn[1], 1, 5000);
    cr_assert_eq(dn[1].res, UPSTREAM_OK, "%s: %s", upstream_result_text[dn[1].res], dn[1].error);
    cr_assert_eq(rs.conns, 2);
}

/* Loop passes in ms milliseconds: a handful when idle, thousands when an
 * event keeps firing. */
static int
loop_passes(int ms)
{
    int expired = 0, n = 0;
    struct event *t = evtimer_new(base, on_deadline, &expired);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    evtimer_add(t, &tv);
    while (!expired) {
        event_base_loop(base, EVLOOP_ONCE);
        n++;
    }
    event_free(t);
    return n;
}

/*
 * A kept-alive connection stays registered for reading while idle; when the
 * peer closes it, the readiness libcurl does not want must not make the
 * loop spin, and the next request still works.
 */
Test(upstream, idle_close_does_not_spin, .timeout = 15)
{
    struct upstream_request rq;
    int passes;

    raw_start(RAW_ANSWER_THEN_CLOSE);
    rq = mkreq("GET", url(rs.port, "/a"));
    cr_assert_not_null(start(&dn[0], &rq));
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].res, UPSTREAM_OK, "%s", dn[0].error);
    passes = loop_passes(200);
    cr_assert_lt(passes, 20, "loop passes in 200 ms: %d", passes);
    cr_assert_not_null(start(&dn[1], &rq));
    run_until(&dn[1], 1, 5000);
    cr_assert_eq(dn[1].res, UPSTREAM_OK, "%s: %s", upstream_result_text[dn[1].res], dn[1].error);
}

static void
on_pipe_read(evutil_socket_t fd, short what, void *arg)
{
    char c;

    if (read(fd, &c, 1) == 1) {
        (*(int *)arg)++;
    }
}

/*
 * After libcurl closes a connection, its fd number goes to the next socket
 * or pipe anyone opens. If our registration outlived the socket, libevent
 * would take the newcomer's fd as registered already and never tell epoll,
 * and its events would be lost. Pipes take the lowest free numbers, so
 * a few of them cover the closed connection's.
 */
Test(upstream, closed_connection_fd_reuse_keeps_events, .timeout = 15)
{
    const char *hdrs[] = {"Connection: close", NULL};
    struct upstream_request rq;
    struct event *evs[8];
    int fds[8][2];
    int fired = 0;
    int i;

    hsrv_start();
    rq = mkreq("GET", url(hs.port, "/echo"));
    cr_assert_not_null(start(&dn[0], &rq));
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].res, UPSTREAM_OK, "%s", dn[0].error);
    rq.headers = hdrs;
    cr_assert_not_null(start(&dn[1], &rq));
    run_until(&dn[1], 1, 5000);
    cr_assert_eq(dn[1].res, UPSTREAM_OK, "%s", dn[1].error);
    run_until(NULL, 0, 50);
    for (i = 0; i < 8; i++) {
        cr_assert_eq(pipe(fds[i]), 0);
        evs[i] = event_new(base, fds[i][0], EV_READ | EV_PERSIST, on_pipe_read, &fired);
        cr_assert_eq(event_add(evs[i], NULL), 0);
        cr_assert_eq(write(fds[i][1], "x", 1), 1);
    }
    for (i = 0; i < 20 && fired < 8; i++) {
        run_until(NULL, 0, 10);
    }
    for (i = 0; i < 8; i++) {
        event_free(evs[i]);
        close(fds[i][0]);
        close(fds[i][1]);
    }
    cr_assert_eq(fired, 8, "pipes that saw their byte: %d of 8", fired);
    cr_assert_eq(hs.conns, 1);
}

/*
 * localhost is 127.0.0.1 then ::1 to libcurl; with the server on ::1 only,
 * the first connect attempt is refused and closed, the second one connects
 * and is kept: both requests work over that one connection.
 */
Test(upstream, refused_address_then_next_one_kept_alive, .timeout = 15)
{
    struct upstream_request rq;
    char u[64];

    if (!hsrv_start_on("::1")) {
        cr_skip_test("no IPv6 loopback");
    }
    snprintf(u, sizeof(u), "http://localhost:%d/echo", hs.port);
    rq = mkreq("GET", u);
    cr_assert_not_null(start(&dn[0], &rq));
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].res, UPSTREAM_OK, "%s: %s", upstream_result_text[dn[0].res], dn[0].error);
    cr_assert_not_null(start(&dn[1], &rq));
    run_until(&dn[1], 1, 5000);
    cr_assert_eq(dn[1].res, UPSTREAM_OK, "%s: %s", upstream_result_text[dn[1].res], dn[1].error);
    cr_assert_eq(hs.requests, 2);
    cr_assert_eq(hs.conns, 1, "connections: %d", hs.conns);
}

/*
 * Black-hole connect: a listener with backlog 0 whose accept queue is full
 * drops further SYNs (Linux), so the connect hangs until
 * connect_timeout_ms. Skipped if this kernel accepts anyway.
 */
Test(upstream, blackhole_connect_is_not_sent, .timeout = 15)
{
    struct upstream_request rq;
    struct sockaddr_in sa;
    int lfd = listen_socket(0);
    int port = sock_port(lfd);
    int i;

    hole_fds[hole_nfds++] = lfd;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    for (i = 0; i < 3; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        evutil_make_socket_nonblocking(fd);
        connect(fd, (struct sockaddr *)&sa, sizeof(sa));
        hole_fds[hole_nfds++] = fd;
    }
    usleep(100 * 1000);

    rq = mkreq("POST", url(port, "/x"));
    rq.body = "{}";
    rq.body_len = 2;
    rq.connect_timeout_ms = 500;
    rq.timeout_ms = 5000;
    cr_assert_not_null(start(&dn[0], &rq));
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].calls, 1);
    if (dn[0].res == UPSTREAM_ERR_TIMEOUT && dn[0].elapsed_ms > 4000) {
        cr_skip_test("kernel completed the handshake; no black hole on this loopback");
    }
    cr_assert_eq(dn[0].res, UPSTREAM_ERR_NOT_SENT, "%s: %s", upstream_result_text[dn[0].res],
                 dn[0].error);
    cr_assert_geq(dn[0].elapsed_ms, 500.0);
    cr_assert_leq(dn[0].elapsed_ms, 1500.0);
}

Test(upstream, body_over_cap_is_too_large, .timeout = 15)
{
    struct upstream_request rq;

    hsrv_start();
    rq = mkreq("GET", url(hs.port, "/big?n=65537"));
    cr_assert_not_null(start(&dn[0], &rq));
    rq = mkreq("GET", url(hs.port, "/big?n=65536"));
    cr_assert_not_null(start(&dn[1], &rq));
    run_until(dn, 2, 5000);
    cr_assert_eq(dn[0].calls, 1);
    cr_assert_eq(dn[0].res, UPSTREAM_ERR_TOO_LARGE, "%s", upstream_result_text[dn[0].res]);
    cr_assert_eq(dn[0].status, 200);
    cr_assert_leq(dn[0].body_len, 65536);
    cr_assert_eq(dn[1].res, UPSTREAM_OK);
    cr_assert_eq(dn[1].body_len, 65536);
}

Test(upstream, cancel_suppresses_callback, .timeout = 15)
{
    struct upstream_request rq;
    struct upstream_req *r1, *r2;

    hsrv_start();
    rq = mkreq("GET", url(hs.port, "/slow"));
    r1 = start(&dn[0], &rq);
    r2 = start(&dn[1], &rq);
    cr_assert_not_null(r1);
    cr_assert_not_null(r2);
    upstream_cancel(r1); /* before the loop ever ran */
    cr_assert_eq(upstream_running(up), 1);
    run_until(NULL, 0, 300);
    cr_assert_eq(hs.requests, 1);
    upstream_cancel(r2); /* mid-transfer */
    cr_assert_eq(upstream_running(up), 0);
    run_until(NULL, 0, 300);
    cr_assert_eq(dn[0].calls, 0);
    cr_assert_eq(dn[1].calls, 0);
}

Test(upstream, free_cancels_each_running_once, .timeout = 15)
{
    struct upstream_request rq;
    int i;

    raw_start(RAW_SILENT);
    rq = mkreq("POST", url(rs.port, "/x"));
    rq.body = "{}";
    rq.body_len = 2;
    for (i = 0; i < 5; i++) {
        cr_assert_not_null(start(&dn[i], &rq));
    }
    run_until(NULL, 0, 300);
    cr_assert_eq(upstream_running(up), 5);
    cr_assert_eq(rs.requests, 5);
    upstream_free(up);
    up = NULL;
    for (i = 0; i < 5; i++) {
        cr_assert_eq(dn[i].calls, 1, "transfer %d: %d calls", i, dn[i].calls);
        cr_assert_eq(dn[i].res, UPSTREAM_ERR_CANCELLED);
        cr_assert_eq(dn[i].early, 0);
    }
    run_until(NULL, 0, 100);
    for (i = 0; i < 5; i++) {
        cr_assert_eq(dn[i].calls, 1);
    }
}

/* upstream_free() from inside a completion: deferred free, others cancelled once. */
Test(upstream, free_from_completion, .timeout = 15)
{
    struct upstream_request rq;

    hsrv_start();
    rq = mkreq("GET", url(hs.port, "/slow"));
    cr_assert_not_null(start(&dn[1], &rq));
    cr_assert_not_null(start(&dn[2], &rq));
    rq = mkreq("GET", url(hs.port, "/echo"));
    dn[0].free_up_on_done = 1;
    cr_assert_not_null(start(&dn[0], &rq));
    run_until(dn, 1, 5000);
    cr_assert_null(up);
    cr_assert_eq(dn[0].calls, 1);
    cr_assert_eq(dn[0].res, UPSTREAM_OK);
    cr_assert_eq(dn[1].calls, 1);
    cr_assert_eq(dn[1].res, UPSTREAM_ERR_CANCELLED);
    cr_assert_eq(dn[2].calls, 1);
    cr_assert_eq(dn[2].res, UPSTREAM_ERR_CANCELLED);
    run_until(NULL, 0, 100);
    cr_assert_eq(dn[1].calls + dn[2].calls, 2);
}

Test(upstream, fifty_concurrent_complete_once, .timeout = 15)
{
    static char hdr[50][32];
    const char *hdrs[50][2];
    struct upstream_request rq;
    char want[64];
    int i;

    hsrv_start();
    for (i = 0; i < 50; i++) {
        snprintf(hdr[i], sizeof(hdr[i]), "X-Test: %d", i);
        hdrs[i][0] = hdr[i];
        hdrs[i][1] = NULL;
        rq = mkreq("GET", url(hs.port, "/echo"));
        rq.headers = hdrs[i];
        cr_assert_not_null(start(&dn[i], &rq));
    }
    cr_assert_eq(upstream_running(up), 50);
    run_until(dn, 50, 10000);
    run_until(NULL, 0, 100);
    for (i = 0; i < 50; i++) {
        snprintf(want, sizeof(want), "GET|%d|-|", i);
        cr_assert_eq(dn[i].calls, 1, "transfer %d: %d calls", i, dn[i].calls);
        cr_assert_eq(dn[i].early, 0);
        cr_assert_eq(dn[i].res, UPSTREAM_OK, "transfer %d: %s", i, dn[i].error);
        cr_assert_str_eq(dn[i].body, want);
    }
    cr_assert_eq(upstream_running(up), 0);
}

Test(upstream, ftp_url_is_not_sent_and_async, .timeout = 15)
{
    struct upstream_request rq;

    raw_start(RAW_SILENT);
    rq = mkreq("GET", url(rs.port, "/x"));
    rq.url = "ftp://127.0.0.1:21/file";
    cr_assert_not_null(start(&dn[0], &rq));
    cr_assert_eq(dn[0].calls, 0); /* not from inside upstream_start() */
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].calls, 1);
    cr_assert_eq(dn[0].early, 0);
    cr_assert_eq(dn[0].res, UPSTREAM_ERR_NOT_SENT, "%s: %s", upstream_result_text[dn[0].res],
                 dn[0].error);
}

Test(upstream, malformed_url_is_not_sent, .timeout = 15)
{
    struct upstream_request rq = mkreq("GET", "http://[::1/x");

    cr_assert_not_null(start(&dn[0], &rq));
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].calls, 1);
    cr_assert_eq(dn[0].early, 0);
    cr_assert_eq(dn[0].res, UPSTREAM_ERR_NOT_SENT, "%s: %s", upstream_result_text[dn[0].res],
                 dn[0].error);
}

Test(upstream, header_with_crlf_is_refused, .timeout = 15)
{
    const char *hdrs[] = {"X-Test: a\r\nX-Evil: 1", NULL};
    struct upstream_request rq;

    hsrv_start();
    rq = mkreq("GET", url(hs.port, "/echo"));
    rq.headers = hdrs;
    cr_assert_null(start(&dn[0], &rq));
    cr_assert_eq(upstream_running(up), 0);
    run_until(NULL, 0, 200);
    cr_assert_eq(dn[0].calls, 0);
    cr_assert_eq(hs.requests, 0);
}

Test(upstream, proxy_environment_is_ignored, .timeout = 15)
{
    struct upstream_request rq;

    setenv("http_proxy", "http://127.0.0.1:1", 1);
    setenv("HTTP_PROXY", "http://127.0.0.1:1", 1);
    setenv("https_proxy", "http://127.0.0.1:1", 1);
    setenv("all_proxy", "http://127.0.0.1:1", 1);
    setenv("ALL_PROXY", "http://127.0.0.1:1", 1);
    hsrv_start();
    rq = mkreq("GET", url(hs.port, "/echo"));
    cr_assert_not_null(start(&dn[0], &rq));
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].res, UPSTREAM_OK, "%s: %s", upstream_result_text[dn[0].res], dn[0].error);
    cr_assert_eq(dn[0].status, 200);
    cr_assert_eq(hs.requests, 1);
}

/* ------------------------------------------------------------------------ */
/* streaming                                                                 */

#define MB3 (3 * 1024 * 1024)

Test(upstream, stream_3mb_every_byte_once, .timeout = 15)
{
    struct upstream_request rq;

    hsrv_start();
    rq = mkreq("GET", url(hs.port, "/pattern?n=3145728"));
    cr_assert_not_null(start_stream(0, &rq));
    upstream_resume(ss[0].r); /* not paused: a no-op */
    upstream_resume(NULL);
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].calls, 1);
    cr_assert_eq(dn[0].early, 0);
    cr_assert_eq(dn[0].res, UPSTREAM_OK, "%s: %s", upstream_result_text[dn[0].res], dn[0].error);
    cr_assert_eq(dn[0].status, 200);
    cr_assert_str_eq(dn[0].body, "");
    cr_assert_eq(dn[0].body_len, 0);
    cr_assert_eq(ss[0].heads, 1);
    cr_assert_eq(ss[0].head_late, 0);
    cr_assert_eq(ss[0].head_status, 200);
    cr_assert_str_eq(ss[0].head_ctype, "application/octet-stream");
    cr_assert_eq(ss[0].head_len, MB3);
    cr_assert_eq(ss[0].total, MB3, "got %zu bytes", ss[0].total);
    cr_assert_eq(ss[0].bad, SIZE_MAX, "first wrong byte at %zu", ss[0].bad);
    cr_assert_gt(ss[0].datas, 1);
    run_until(NULL, 0, 100);
    cr_assert_eq(ss[0].data_after_done, 0);
    cr_assert_eq(ss[0].heads, 1);
    cr_assert_eq(upstream_running(up), 0);
}

/* max_response_bytes (64 KiB here) does not apply; chunked encoding too. */
Test(upstream, stream_ignores_body_cap, .timeout = 15)
{
    struct upstream_request rq;

    hsrv_start();
    rq = mkreq("GET", url(hs.port, "/pattern?n=200000&chunked=1"));
    cr_assert_not_null(start_stream(0, &rq));
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].calls, 1);
    cr_assert_eq(dn[0].res, UPSTREAM_OK, "%s: %s", upstream_result_text[dn[0].res], dn[0].error);
    cr_assert_eq(ss[0].heads, 1);
    cr_assert_eq(ss[0].head_len, -1); /* chunked: unknown */
    cr_assert_eq(ss[0].total, 200000);
    cr_assert_eq(ss[0].bad, SIZE_MAX, "first wrong byte at %zu", ss[0].bad);
    cr_assert_eq(dn[0].body_len, 0);
}

/*
 * Pause at the head, then after the first piece following each resume, five
 * times, resuming from a 200 ms timer: nothing arrives while paused or from
 * inside upstream_resume(), and every byte arrives once, in order. Two
 * transfers at once: Content-Length and chunked.
 */
Test(upstream, stream_pause_resume_repeated, .timeout = 15)
{
    struct upstream_request rq;
    int i;

    hsrv_start();
    for (i = 0; i < 2; i++) {
        ss[i].head_verdict = UPSTREAM_STREAM_PAUSE;
        ss[i].max_pauses = 6;
        ss[i].resume_ms = 200;
    }
    rq = mkreq("GET", url(hs.port, "/pattern?n=3145728"));
    rq.timeout_ms = 10000;
    cr_assert_not_null(start_stream(0, &rq));
    rq = mkreq("GET", url(hs.port, "/pattern?n=3145728&chunked=1"));
    rq.timeout_ms = 10000;
    cr_assert_not_null(start_stream(1, &rq));
    run_until(dn, 2, 10000);
    for (i = 0; i < 2; i++) {
        cr_assert_eq(dn[i].calls, 1, "transfer %d", i);
        cr_assert_eq(dn[i].res, UPSTREAM_OK, "transfer %d: %s: %s", i,
                     upstream_result_text[dn[i].res], dn[i].error);
        cr_assert_eq(dn[i].status, 200);
        cr_assert_eq(ss[i].heads, 1);
        cr_assert_eq(ss[i].pauses, 6);
        cr_assert_eq(ss[i].resumes, 6);
        cr_assert_eq(ss[i].total, MB3, "transfer %d: %zu bytes", i, ss[i].total);
        cr_assert_eq(ss[i].bad, SIZE_MAX, "transfer %d: first wrong byte at %zu", i, ss[i].bad);
        cr_assert_eq(ss[i].data_while_paused, 0);
        cr_assert_eq(ss[i].data_in_resume, 0);
        cr_assert_eq(ss[i].data_after_done, 0);
        cr_assert_geq(dn[i].elapsed_ms, 6 * 200.0);
    }
}

Test(upstream, stream_abort_is_broken, .timeout = 15)
{
    struct upstream_request rq;
    int datas;

    hsrv_start();
    ss[0].abort_at = 100 * 1024;
    rq = mkreq("GET", url(hs.port, "/pattern?n=3145728"));
    cr_assert_not_null(start_stream(0, &rq));
    ss[1].head_verdict = UPSTREAM_STREAM_ABORT;
    rq = mkreq("GET", url(hs.port, "/pattern?n=3145728"));
    cr_assert_not_null(start_stream(1, &rq));
    run_until(dn, 2, 5000);
    cr_assert_eq(dn[0].calls, 1);
    cr_assert_eq(dn[0].res, UPSTREAM_ERR_BROKEN, "%s", upstream_result_text[dn[0].res]);
    cr_assert_eq(dn[0].status, 200);
    cr_assert_str_eq(dn[0].error, "aborted by the stream receiver");
    cr_assert_geq(ss[0].total, 100 * 1024);
    cr_assert_lt(ss[0].total, MB3);
    cr_assert_eq(ss[0].bad, SIZE_MAX);
    cr_assert_eq(dn[1].calls, 1);
    cr_assert_eq(dn[1].res, UPSTREAM_ERR_BROKEN, "%s", upstream_result_text[dn[1].res]);
    cr_assert_eq(dn[1].status, 200);
    cr_assert_eq(ss[1].heads, 1);
    cr_assert_eq(ss[1].datas, 0);
    datas = ss[0].datas;
    run_until(NULL, 0, 200);
    cr_assert_eq(ss[0].datas, datas);
    cr_assert_eq(ss[0].data_after_abort, 0);
    cr_assert_eq(dn[0].calls + dn[1].calls, 2);
    cr_assert_eq(upstream_running(up), 0);
}

Test(upstream, stream_cancel_while_paused_is_silent, .timeout = 15)
{
    struct upstream_request rq;

    hsrv_start();
    ss[0].max_pauses = 1;
    rq = mkreq("GET", url(hs.port, "/pattern?n=3145728"));
    cr_assert_not_null(start_stream(0, &rq));
    cr_assert(run_until_flag(&ss[0].paused, 5000));
    cr_assert_eq(ss[0].datas, 1);
    upstream_resume(ss[0].r);
    upstream_cancel(ss[0].r); /* also drops the pending resume */
    cr_assert_eq(upstream_running(up), 0);
    run_until(NULL, 0, 500);
    cr_assert_eq(ss[0].heads, 1);
    cr_assert_eq(ss[0].datas, 1);
    cr_assert_eq(dn[0].calls, 0);
}

Test(upstream, stream_404_head_then_body, .timeout = 15)
{
    struct upstream_request rq;

    hsrv_start();
    rq = mkreq("GET", url(hs.port, "/status?code=404"));
    cr_assert_not_null(start_stream(0, &rq));
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].calls, 1);
    cr_assert_eq(dn[0].res, UPSTREAM_OK);
    cr_assert_eq(dn[0].status, 404);
    cr_assert_str_eq(dn[0].content_type, "application/problem+json");
    cr_assert_str_eq(dn[0].body, "");
    cr_assert_eq(ss[0].heads, 1);
    cr_assert_eq(ss[0].head_late, 0);
    cr_assert_eq(ss[0].head_status, 404);
    cr_assert_str_eq(ss[0].head_ctype, "application/problem+json");
    cr_assert_eq(ss[0].head_len, 2);
    cr_assert_eq(ss[0].got_len, 2);
    cr_assert_eq(memcmp(ss[0].got, "{}", 2), 0);
    cr_assert_eq(ss[0].data_after_done, 0);
}

/* No body (204, and a 302 that is not followed): on_head once, no on_data. */
Test(upstream, stream_no_body_head_once, .timeout = 15)
{
    struct upstream_request rq;

    hsrv_start();
    rq = mkreq("GET", url(hs.port, "/empty"));
    cr_assert_not_null(start_stream(0, &rq));
    rq = mkreq("POST", url(hs.port, "/redirect"));
    rq.body = "{}";
    rq.body_len = 2;
    cr_assert_not_null(start_stream(1, &rq));
    run_until(dn, 2, 5000);
    cr_assert_eq(dn[0].calls, 1);
    cr_assert_eq(dn[0].res, UPSTREAM_OK, "%s: %s", upstream_result_text[dn[0].res], dn[0].error);
    cr_assert_eq(dn[0].status, 204);
    cr_assert_eq(ss[0].heads, 1);
    cr_assert_eq(ss[0].head_late, 0);
    cr_assert_eq(ss[0].head_status, 204);
    cr_assert_str_eq(ss[0].head_ctype, "text/plain");
    cr_assert_eq(ss[0].head_len, 0);
    cr_assert_eq(ss[0].datas, 0);
    cr_assert_eq(dn[1].calls, 1);
    cr_assert_eq(dn[1].res, UPSTREAM_OK, "%s: %s", upstream_result_text[dn[1].res], dn[1].error);
    cr_assert_eq(dn[1].status, 302);
    cr_assert_eq(ss[1].heads, 1);
    cr_assert_eq(ss[1].head_late, 0);
    cr_assert_eq(ss[1].head_status, 302);
    cr_assert_eq(ss[1].datas, 0);
    run_until(NULL, 0, 100);
    cr_assert_eq(hs.requests, 2);
    cr_assert_eq(ss[0].heads + ss[1].heads, 2);
}

/* A 103 interim response does not run on_head; the final 200 does. */
Test(upstream, stream_head_skips_interim_response, .timeout = 15)
{
    struct upstream_request rq;

    raw_start(RAW_EARLY_HINTS);
    rq = mkreq("GET", url(rs.port, "/"));
    cr_assert_not_null(start_stream(0, &rq));
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].res, UPSTREAM_OK, "%s", dn[0].error);
    cr_assert_eq(ss[0].heads, 1);
    cr_assert_eq(ss[0].head_status, 200);
    cr_assert_str_eq(ss[0].head_ctype, "text/plain");
    cr_assert_eq(ss[0].head_len, 2);
    cr_assert_eq(ss[0].got_len, 2);
    cr_assert_eq(memcmp(ss[0].got, "ok", 2), 0);
}

Test(upstream, stream_deadline_while_paused, .timeout = 15)
{
    struct upstream_request rq;

    hsrv_start();
    ss[0].max_pauses = 1;
    rq = mkreq("GET", url(hs.port, "/pattern?n=3145728"));
    rq.timeout_ms = 700;
    cr_assert_not_null(start_stream(0, &rq));
    run_until(dn, 1, 5000);
    cr_assert_eq(dn[0].calls, 1);
    cr_assert_eq(dn[0].res, UPSTREAM_ERR_TIMEOUT, "%s: %s", upstream_result_text[dn[0].res],
                 dn[0].error);
    cr_assert_eq(dn[0].status, 200);
    cr_assert_geq(dn[0].elapsed_ms, 700.0);
    cr_assert_leq(dn[0].elapsed_ms, 1700.0);
    cr_assert_eq(ss[0].heads, 1);
    cr_assert_eq(ss[0].datas, 1);
    cr_assert_eq(ss[0].data_while_paused, 0);
}

/* upstream_free(): a paused stream and one still waiting for its head. */
Test(upstream, stream_free_cancels_once, .timeout = 15)
{
    struct upstream_request rq;
    int i;

    hsrv_start();
    ss[0].max_pauses = 1;
    rq = mkreq("GET", url(hs.port, "/pattern?n=3145728"));
    cr_assert_not_null(start_stream(0, &rq));
    rq = mkreq("GET", url(hs.port, "/slow"));
    cr_assert_not_null(start_stream(1, &rq));
    cr_assert(run_until_flag(&ss[0].paused, 5000));
    run_until(NULL, 0, 100);
    cr_assert_eq(hs.requests, 2);
    upstream_free(up);
    up = NULL;
    for (i = 0; i < 2; i++) {
        cr_assert_eq(dn[i].calls, 1, "transfer %d: %d calls", i, dn[i].calls);
        cr_assert_eq(dn[i].res, UPSTREAM_ERR_CANCELLED);
        cr_assert_eq(dn[i].early, 0);
    }
    cr_assert_eq(ss[0].heads, 1);
    cr_assert_eq(ss[0].datas, 1);
    cr_assert_eq(ss[1].heads, 0);
    cr_assert_eq(ss[1].datas, 0);
    run_until(NULL, 0, 200);
    cr_assert_eq(dn[0].calls + dn[1].calls, 2);
    cr_assert_eq(ss[0].datas + ss[1].datas, 1);
}

/*
 * ABORT from data libcurl held back while paused (delivered when the pause
 * is lifted): after a head pause, and after a pause on the first piece (at
 * most 16 KiB, so 16385 is reached only after the resume).
 */
Test(upstream, stream_abort_after_resume_is_broken, .timeout = 15)
{
    struct upstream_request rq;
    int i;

    hsrv_start();
    ss[0].head_verdict = UPSTREAM_STREAM_PAUSE;
    ss[0].max_pauses = 1;
    ss[0].abort_at = 1;
    ss[1].max_pauses = 1;
    ss[1].abort_at = 16385;
    for (i = 0; i < 2; i++) {
        ss[i].resume_ms = 50;
        rq = mkreq("GET", url(hs.port, "/pattern?n=3145728"));
        cr_assert_not_null(start_stream(i, &rq));
    }
    run_until(dn, 2, 5000);
    for (i = 0; i < 2; i++) {
        cr_assert_eq(dn[i].calls, 1, "transfer %d", i);
        cr_assert_eq(dn[i].res, UPSTREAM_ERR_BROKEN, "transfer %d: %s", i,
                     upstream_result_text[dn[i].res]);
        cr_assert_eq(dn[i].status, 200);
        cr_assert_eq(ss[i].heads, 1);
        cr_assert_eq(ss[i].resumes, 1);
        cr_assert_eq(ss[i].bad, SIZE_MAX);
        cr_assert_lt(ss[i].total, MB3);
    }
    cr_assert_eq(ss[0].datas, 1);
    cr_assert_eq(ss[1].datas, 2);
    run_until(NULL, 0, 200);
    cr_assert_eq(ss[0].data_after_abort + ss[1].data_after_abort, 0);
    cr_assert_eq(ss[0].datas + ss[1].datas, 3);
    cr_assert_eq(upstream_running(up), 0);
}
