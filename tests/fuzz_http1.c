/*
 * fuzz_http1.c: the fuzz target of the HTTP/1.1 server (src/http1.c).
 *
 * Input: byte 0 picks how the rest is cut into writes (whole, byte by byte,
 * two pieces, 4-byte pieces: incremental parsing is where parsers break);
 * byte 1 picks the limits (tight or default) and how the handler answers
 * (at once, later from a timer, streamed, streamed and ended later); the
 * rest is what one client sends. The server runs in this process, on one end
 * of a socketpair, on a real event loop; the other end reads every answer
 * and checks that what comes back is HTTP/1.1.
 *
 * Two builds: tests/test_http1 runs the seeds and a bounded number of
 * mutations under ASan+UBSan in `make check`; contrib/fuzz/http1.sh builds
 * it with clang's libFuzzer for open-ended runs.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "fuzz_http1.h"
#include "http1.h"

#define FZ_HELD 16

struct fz {
    struct event_base *base;
    struct http1_server *srv;
    int answer;                      /* 0 now, 1 later, 2 streamed, 3 streamed, ended later */
    struct http1_req *held[FZ_HELD]; /* answered (or ended) by the timer */
    int streamed[FZ_HELD];
    int nheld;
    struct event *later;
};

/* The input being run (stream callbacks get the request, not the harness). */
static struct fz *fz_current;

static void
fz_forget(struct fz *f, int i)
{
    f->held[i] = f->held[f->nheld - 1];
    f->streamed[i] = f->streamed[f->nheld - 1];
    f->nheld--;
}

static void
fz_gone(void *arg)
{
    struct http1_req *r = arg;
    struct fz *f = fz_current;
    int i;

    for (i = 0; i < f->nheld; i++) {
        if (f->held[i] == r) {
            fz_forget(f, i);
            break;
        }
    }
    http1_stream_end(r, 0);
}

static void
fz_drained(void *arg)
{
    (void)arg;
}

static void
fz_answer(struct fz *f, struct http1_req *r)
{
    static const char *const hdrs[] = {"Content-Type", "text/plain", "X-Bad\r\nInjected", "x",
                                       NULL};
    char line[256];
    int n = snprintf(line, sizeof(line), "%s %s ?%s %zu %s", r->method_name, r->path,
                     r->query != NULL ? r->query : "-", r->body_len,
                     http1_header(r, "Host") != NULL ? http1_header(r, "Host") : "-");

    http1_respond(r, 200, hdrs, line, n < (int)sizeof(line) ? (size_t)n : sizeof(line) - 1, 0);
    (void)f;
}

static void
fz_on_later(evutil_socket_t fd, short what, void *arg)
{
    struct fz *f = arg;

    while (f->nheld > 0) {
        struct http1_req *r = f->held[0];
        int streamed = f->streamed[0];
        fz_forget(f, 0);
        if (streamed) {
            (void)http1_stream_write(r, "tail", 4);
            http1_stream_end(r, 1);
        } else {
            fz_answer(f, r);
        }
    }
}

static void
fz_on_request(struct http1_req *r, void *arg)
{
    struct fz *f = arg;
    struct timeval zero = {0, 0};

    if (r->error != 0) {
        http1_respond(r, r->error, NULL, r->error_slug, strlen(r->error_slug), 1);
        return;
    }
    switch (f->answer) {
    case 0:
        fz_answer(f, r);
        break;
    case 1:
    case 3:
        if (f->nheld == FZ_HELD) {
            fz_answer(f, r);
            break;
        }
        if (f->answer == 3) {
            http1_stream_start(r, 200, NULL, r->body_len > 0 ? -1 : 4, fz_gone, fz_drained, r);
            if (r->body_len > 0) {
                (void)http1_stream_write(r, r->body, r->body_len);
            }
        }
        f->held[f->nheld] = r;
        f->streamed[f->nheld] = f->answer == 3;
        f->nheld++;
        evtimer_add(f->later, &zero);
        break;
    default:
        http1_stream_start(r, 200, NULL, -1, fz_gone, fz_drained, r);
        (void)http1_stream_write(r, r->body, r->body_len);
        (void)http1_stream_write(r, r->path, strlen(r->path));
        http1_stream_end(r, 1);
        break;
    }
}

/* Read what the server wrote; 0 if it looks like HTTP/1.1 answers. */
static int
fz_read(int fd, size_t *total, char *first, size_t first_cap)
{
    char buf[16384];
    ssize_t n;

    while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
        if (*total < first_cap) {
            size_t k = first_cap - *total < (size_t)n ? first_cap - *total : (size_t)n;
            memcpy(first + *total, buf, k);
        }
        *total += (size_t)n;
    }
    return 0;
}

static void
fz_spin(struct fz *f, int rounds)
{
    int i;

    for (i = 0; i < rounds; i++) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f;
    struct http1_limits lim = {16384, 65536, 64, 10000, 60000};
    int sv[2];
    size_t off = 2, total = 0, step;
    char first[16];
    int mode;

    if (size < 2) {
        return 0;
    }
    memset(&f, 0, sizeof(f));
    mode = data[0] & 3;
    f.answer = data[1] & 3;
    if (data[1] & 4) {
        lim.max_header_bytes = 256;
        lim.max_body_bytes = 64;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        return 0;
    }
    f.base = event_base_new();
    f.srv = http1_server_new(f.base, &lim, fz_on_request, &f);
    f.later = evtimer_new(f.base, fz_on_later, &f);
    fz_current = &f;
    if (f.base == NULL || f.srv == NULL || f.later == NULL || http1_adopt(f.srv, sv[0], 0) != 0) {
        abort();
    }
    while (off < size) {
        size_t left = size - off;
        ssize_t w;
        step = mode == 0 ? left : mode == 1 ? 1 : mode == 2 ? (left + 1) / 2 : 4;
        if (step > left) {
            step = left;
        }
        w = send(sv[1], data + off, step, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
        } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            break; /* the server closed: the rest is not read */
        }
        fz_spin(&f, 2);
        fz_read(sv[1], &total, first, sizeof(first));
    }
    shutdown(sv[1], SHUT_WR);
    fz_spin(&f, 4);
    fz_read(sv[1], &total, first, sizeof(first));
    /* Whatever came back starts as an HTTP/1.1 answer. */
    if (total >= 9 && memcmp(first, "HTTP/1.1 ", 9) != 0) {
        abort();
    }
    close(sv[1]);
    fz_spin(&f, 2);
    fz_on_later(-1, 0, &f); /* every request is answered before the server goes */
    http1_server_free(f.srv);
    event_free(f.later);
    event_base_free(f.base);
    fz_current = NULL;
    return 0;
}
