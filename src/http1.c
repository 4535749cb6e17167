/*
 * http1.c: see http1.h. The parsing is libhttp-parser's (2.9); this file
 * owns the sockets, the buffers, the limits and the order of things.
 *
 * A connection moves through these states:
 *   IDLE      between requests (or before the first);
 *   HEAD      a request head is arriving (header deadline);
 *   BODY      its body is arriving (idle deadline between reads);
 *   HANDLING  the request is with the callback; later input waits in c->in;
 *   LINGER    the last answer is out and our side is shut for writing: input
 *             is read and dropped until the client closes or LINGER_MS pass,
 *             so that closing never resets an answer the client has not read.
 * Freeing is deferred while a call into this file is on the stack for the
 * connection (c->depth), since callbacks may close it under us.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <http_parser.h>

#include "cglog.h"
#include "http1.h"
#include "util.h"

#define HTTP1_LISTENERS 4
#define HTTP1_READ_CHUNK 65536
#define HTTP1_SWEEP_MS 200
#define HTTP1_LINGER_MS 2000
#define HTTP1_SPARE_REQS 128
#define HTTP1_KEEP_BUF 16384           /* a spare request keeps a buffer up to this */
#define HTTP1_PENDING_MAX (256 * 1024) /* pipelined input held while a request is handled */
#define HTTP1_OUT_HIGH (256 * 1024)    /* answers queued before pipelined input waits */
#define HTTP1_HEAD_MAX 8192            /* our own status line and headers */

enum conn_state { C_IDLE, C_HEAD, C_BODY, C_HANDLING, C_LINGER };
enum { CB_NONE, CB_URL, CB_FIELD, CB_VALUE };

struct http1_listener {
    struct http1_server *srv;
    struct evconnlistener *l;
    struct event *retry;          /* re-enable after running out of descriptors */
    int tag;
};

struct http1_conn {
    struct http1_server *srv;
    evutil_socket_t fd;
    struct event rev, wev;
    int reading, writing;
    http_parser parser;
    int tag;
    enum conn_state state;
    int64_t since_us;             /* accepted */
    int64_t head_us;              /* the current head began */
    int64_t active_us;            /* last byte read, or written out */
    long requests;
    struct http1_req *req;        /* being received (HEAD, BODY) or handled */
    char *in;                     /* received, not yet parsed */
    size_t in_off, in_len, in_cap;
    char *out;                    /* answer bytes the socket did not take yet */
    size_t out_off, out_len, out_cap;
    int depth;                    /* calls into this file on the stack */
    unsigned dead : 1;            /* socket closed; freed at depth 0 */
    unsigned close_after : 1;     /* end the connection after the current answer */
    unsigned eof : 1;             /* the client shut its side */
    unsigned in_api : 1;          /* inside http1_respond / stream_*: no callbacks */
    unsigned ready : 1;           /* a complete request awaits dispatch */
    unsigned counted : 1;         /* counted in srv->unsent (output queued) */
    struct http1_conn *next, *prev;
};

struct http1_server {
    struct event_base *base;
    struct http1_limits lim;
    http1_request_cb on_request;
    void *arg;
    struct http1_listener listeners[HTTP1_LISTENERS];
    int nlisteners;
    struct http1_conn *conns;
    long nconns;
    int unsent;
    struct event *sweep;
    http_parser_settings settings;
    struct http1_req *spare;
    int nspare;
    time_t date_at;
    char date[40];
    char head[HTTP1_HEAD_MAX];
    char rbuf[HTTP1_READ_CHUNK];
};

static void conn_close(struct http1_conn *c, const char *why);

/* ---- requests ----------------------------------------------------------- */

static struct http1_req *
req_get(struct http1_server *s, struct http1_conn *c)
{
    struct http1_req *r = s->spare;
    char *buf = NULL;
    size_t cap = 0;

    if (r != NULL) {
        s->spare = r->next_free;
        s->nspare--;
        buf = r->buf;
        cap = r->cap;
    } else if ((r = malloc(sizeof(*r))) == NULL) {
        return NULL;
    }
    /* Only the fixed part is reset: the header table fills as it is used. */
    memset(r, 0, offsetof(struct http1_req, hdrs));
    r->nhdr = 0;
    r->last_cb = CB_NONE;
    r->keep_alive = 0;
    r->streaming = 0;
    r->on_gone = NULL;
    r->on_drained = NULL;
    r->cb_arg = NULL;
    r->next_free = NULL;
    r->buf = buf;
    r->cap = cap;
    r->srv = s;
    r->conn = c;
    r->listener = c->tag;
    r->method_name = "-";
    return r;
}

static void
req_release(struct http1_server *s, struct http1_req *r)
{
    if (s->nspare >= HTTP1_SPARE_REQS || r->cap > HTTP1_KEEP_BUF) {
        free(r->buf);
        r->buf = NULL;
        r->cap = 0;
    }
    if (s->nspare >= HTTP1_SPARE_REQS) {
        free(r);
        return;
    }
    r->next_free = s->spare;
    s->spare = r;
    s->nspare++;
}

static void
req_fail(struct http1_req *r, int status, const char *slug, const char *detail)
{
    if (r->error == 0) {
        r->error = status;
        r->error_slug = slug;
        util_strlcpy(r->error_detail, detail, sizeof(r->error_detail));
    }
}

static int
req_append(struct http1_req *r, const char *data, size_t len)
{
    if (r->len + len + 1 > r->cap) {
        size_t cap = r->cap != 0 ? r->cap : 1024;
        char *nb;
        while (cap < r->len + len + 1) {
            cap *= 2;
        }
        if ((nb = realloc(r->buf, cap)) == NULL) {
            req_fail(r, 503, "overloaded", "out of memory");
            return -1;
        }
        r->buf = nb;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, data, len);
    r->len += len;
    return 0;
}

/* Count head bytes against the limit. */
static int
req_head_bytes(struct http1_req *r, size_t len)
{
    r->head_bytes += len;
    if ((long)r->head_bytes > r->srv->lim.max_header_bytes) {
        char detail[96];
        snprintf(detail, sizeof(detail), "the request head may be at most %ld bytes",
                 r->srv->lim.max_header_bytes);
        req_fail(r, 431, "headers-too-large", detail);
        return -1;
    }
    return 0;
}

/* End the string the last data callback was filling. */
static int
req_end_string(struct http1_req *r)
{
    if (r->last_cb == CB_FIELD) {
        /* A header with an empty value: the parser never calls on_header_value. */
        if (req_append(r, "", 1) != 0) {
            return -1;
        }
        r->hdrs[r->nhdr - 1].value = (uint32_t)r->len;
    }
    return r->last_cb != CB_NONE ? req_append(r, "", 1) : 0;
}

const char *
http1_header(const struct http1_req *r, const char *name)
{
    int i;

    for (i = 0; i < r->nhdr; i++) {
        if (strcasecmp(r->buf + r->hdrs[i].name, name) == 0) {
            return r->buf + r->hdrs[i].value;
        }
    }
    return NULL;
}

/* ---- parser callbacks --------------------------------------------------- */

static int
on_message_begin(http_parser *p)
{
    struct http1_conn *c = p->data;
    int64_t now = util_mono_us();

    if (c->req == NULL && (c->req = req_get(c->srv, c)) == NULL) {
        return -1;
    }
    c->state = C_HEAD;
    c->head_us = c->requests == 0 ? c->since_us : now;
    return 0;
}

static int
on_url(http_parser *p, const char *at, size_t len)
{
    struct http1_req *r = ((struct http1_conn *)p->data)->req;

    r->last_cb = CB_URL;
    if (r->len + len > HTTP1_MAX_TARGET) {
        req_fail(r, 414, "uri-too-long", "the request target may be at most 8192 bytes");
        return -1;
    }
    return req_head_bytes(r, len) == 0 ? req_append(r, at, len) : -1;
}

static int
on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http1_conn *c = p->data;
    struct http1_req *r = c->req;

    if (req_head_bytes(r, len) != 0) {
        return -1;
    }
    if (c->state == C_BODY) {
        return 0; /* a trailer after a chunked body: counted, not kept */
    }
    if (r->last_cb != CB_FIELD) {
        if (req_end_string(r) != 0) {
            return -1;
        }
        if (r->nhdr == HTTP1_MAX_HEADERS) {
            req_fail(r, 431, "headers-too-large", "a request may carry at most 100 headers");
            return -1;
        }
        r->hdrs[r->nhdr].name = (uint32_t)r->len;
        r->hdrs[r->nhdr].value = 0;
        r->nhdr++;
        r->last_cb = CB_FIELD;
    }
    return req_append(r, at, len);
}

static int
on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http1_conn *c = p->data;
    struct http1_req *r = c->req;

    if (req_head_bytes(r, len) != 0) {
        return -1;
    }
    if (c->state == C_BODY) {
        return 0;
    }
    if (r->last_cb != CB_VALUE) {
        if (req_append(r, "", 1) != 0) {
            return -1;
        }
        r->hdrs[r->nhdr - 1].value = (uint32_t)r->len;
        r->last_cb = CB_VALUE;
    }
    return req_append(r, at, len);
}

static enum http1_method
method_of(unsigned m)
{
    switch (m) {
    case HTTP_GET:
        return HTTP1_GET;
    case HTTP_HEAD:
        return HTTP1_HEAD;
    case HTTP_POST:
        return HTTP1_POST;
    case HTTP_PUT:
        return HTTP1_PUT;
    case HTTP_DELETE:
        return HTTP1_DELETE;
    case HTTP_PATCH:
        return HTTP1_PATCH;
    case HTTP_OPTIONS:
        return HTTP1_OPTIONS;
    default:
        return HTTP1_OTHER;
    }
}

static int conn_send(struct http1_conn *c, const struct iovec *iov, int n);

static int
on_headers_complete(http_parser *p)
{
    struct http1_conn *c = p->data;
    struct http1_req *r = c->req;
    const char *expect;

    if (req_end_string(r) != 0) {
        return -1;
    }
    r->last_cb = CB_NONE;
    r->method = method_of(p->method);
    r->method_name = http_method_str((enum http_method)p->method);
    r->http_minor = p->http_major == 1 ? p->http_minor : 0;
    r->keep_alive = http_should_keep_alive(p);
    if (p->http_major != 1) {
        req_fail(r, 505, "http-version-not-supported", "this server speaks HTTP/1.0 and 1.1");
        return -1;
    }
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > (uint64_t)c->srv->lim.max_body_bytes) {
        char detail[96];
        snprintf(detail, sizeof(detail), "the body may be at most %ld bytes",
                 c->srv->lim.max_body_bytes);
        req_fail(r, 413, "payload-too-large", detail);
        return -1;
    }
    /* Ask for the body only once the head is accepted (curl waits for this). */
    expect = http1_header(r, "Expect");
    if (expect != NULL && strcasecmp(expect, "100-continue") == 0 && r->http_minor >= 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        struct iovec iov = {(void *)cont, sizeof(cont) - 1};
        if (conn_send(c, &iov, 1) != 0) {
            return -1;
        }
    }
    r->body_off = r->len;
    c->state = C_BODY;
    return 0;
}

static int
on_body(http_parser *p, const char *at, size_t len)
{
    struct http1_conn *c = p->data;
    struct http1_req *r = c->req;

    if ((long)(r->len - r->body_off + len) > c->srv->lim.max_body_bytes) {
        char detail[96];
        snprintf(detail, sizeof(detail), "the body may be at most %ld bytes",
                 c->srv->lim.max_body_bytes);
        req_fail(r, 413, "payload-too-large", detail);
        return -1;
    }
    return req_append(r, at, len);
}

static int
on_message_complete(http_parser *p)
{
    struct http1_conn *c = p->data;

    if (req_append(c->req, "", 1) != 0) {
        return -1;
    }
    c->ready = 1;
    http_parser_pause(p, 1); /* one request at a time: the rest waits in c->in */
    return 0;
}

/* ---- connections -------------------------------------------------------- */

static void
conn_free(struct http1_conn *c)
{
    free(c->in);
    free(c->out);
    free(c);
}

static void
conn_enter(struct http1_conn *c)
{
    c->depth++;
}

static void conn_pump(struct http1_conn *c);

/* Leave a call: free a connection closed meanwhile, or parse waiting input. */
static void
conn_leave(struct http1_conn *c)
{
    if (--c->depth > 0) {
        return;
    }
    if (c->dead) {
        conn_free(c);
        return;
    }
    if (c->in_len > c->in_off && c->state != C_HANDLING && c->state != C_LINGER) {
        c->depth++;
        conn_pump(c);
        if (--c->depth == 0 && c->dead) {
            conn_free(c);
        }
    }
}

static void
conn_read_on(struct http1_conn *c, int on)
{
    if (on && !c->reading && !c->eof) {
        event_add(&c->rev, NULL);
        c->reading = 1;
    } else if (!on && c->reading) {
        event_del(&c->rev);
        c->reading = 0;
    }
}

/* Keep bytes for later (pipelined input). */
static int
buf_keep(char **buf, size_t *off, size_t *len, size_t *cap, const char *data, size_t n)
{
    if (*off > 0 && *off == *len) {
        *off = *len = 0;
    }
    if (*len + n > *cap) {
        size_t want = *len - *off + n, ncap = *cap != 0 ? *cap : 4096;
        char *nb;
        if (*off > 0) { /* slide the live part down first */
            memmove(*buf, *buf + *off, *len - *off);
            *len -= *off;
            *off = 0;
        }
        while (ncap < want) {
            ncap *= 2;
        }
        if (ncap > *cap) {
            if ((nb = realloc(*buf, ncap)) == NULL) {
                return -1;
            }
            *buf = nb;
            *cap = ncap;
        }
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    return 0;
}

static void
conn_uncount(struct http1_conn *c)
{
    if (c->counted) {
        c->counted = 0;
        c->srv->unsent--;
    }
}

static void
conn_arm_write(struct http1_conn *c)
{
    if (!c->writing) {
        event_add(&c->wev, NULL);
        c->writing = 1;
    }
}

/*
 * Write iov now, queueing what the socket does not take. 0, or -1 when the
 * connection failed (it is closed then).
 */
static int
conn_send(struct http1_conn *c, const struct iovec *iov, int n)
{
    size_t total = 0, done = 0, skip;
    int i, was_empty = c->out_len == c->out_off;

    if (c->dead) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        total += iov[i].iov_len;
    }
    if (was_empty) {
        struct msghdr mh;
        ssize_t w;
        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = (struct iovec *)iov;
        mh.msg_iovlen = (size_t)n;
        w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            conn_close(c, NULL);
            return -1;
        }
        done = w > 0 ? (size_t)w : 0;
        if (done > 0) {
            c->active_us = util_mono_us();
        }
        if (done == total) {
            return 0;
        }
    }
    if (!c->counted) {
        c->counted = 1;
        c->srv->unsent++;
    }
    skip = done;
    for (i = 0; i < n; i++) {
        size_t len = iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        if (buf_keep(&c->out, &c->out_off, &c->out_len, &c->out_cap,
                     (const char *)iov[i].iov_base + skip, len - skip) != 0) {
            conn_close(c, "out_of_memory");
            return -1;
        }
        skip = 0;
    }
    conn_arm_write(c);
    return 0;
}

/* Our side is done: shut it for writing and drain the client's until it closes. */
static void
conn_linger(struct http1_conn *c)
{
    if (c->eof) {
        conn_close(c, NULL);
        return;
    }
    c->state = C_LINGER;
    c->head_us = util_mono_us();
    shutdown(c->fd, SHUT_WR);
    conn_read_on(c, 1);
}

/* The current request is answered (or its stream ended). */
static void
conn_request_done(struct http1_conn *c)
{
    c->req = NULL;
    if (c->close_after) {
        c->state = C_HANDLING; /* nothing more is parsed */
        if (c->out_len == c->out_off) {
            conn_linger(c);
        }
        return;
    }
    c->state = C_IDLE;
    c->active_us = util_mono_us();
    http_parser_pause(&c->parser, 0);
    conn_read_on(c, 1);
}

static void
conn_close(struct http1_conn *c, const char *why)
{
    struct http1_server *s = c->srv;
    struct http1_req *r = c->req;

    if (c->dead) {
        return;
    }
    c->dead = 1;
    if (why != NULL) {
        cglog_info("connection_cut", "{s:s, s:i}", "reason", why, "fd", (int)c->fd);
    }
    if (c->reading) {
        event_del(&c->rev);
    }
    if (c->writing) {
        event_del(&c->wev);
    }
    conn_uncount(c);
    c->out_off = c->out_len = 0;
    evutil_closesocket(c->fd);
    c->fd = -1;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    s->nconns--;
    c->req = NULL;
    if (r != NULL) {
        r->conn = NULL;
        if (c->state == C_HEAD || c->state == C_BODY) {
            req_release(s, r); /* never handed over: ours */
        } else if (r->streaming && r->on_gone != NULL && !c->in_api) {
            void (*gone)(void *) = r->on_gone;
            r->on_gone = NULL;
            r->on_drained = NULL;
            gone(r->cb_arg);
        }
    }
    if (c->depth == 0) {
        conn_free(c);
    }
}

/* The path of a target that names none (handlers read paths, never write them). */
static char http1_root[] = "/";

/* Turn target into path and query, in place. 0, or -1 if it is no path. */
static int
req_split_target(struct http1_req *r)
{
    char *t = r->buf, *q, *frag;

    r->target = t;
    if (t[0] == '/' || strcmp(t, "*") == 0) {
        r->path = t;
    } else if (strncasecmp(t, "http://", 7) == 0 || strncasecmp(t, "https://", 8) == 0) {
        char *slash = strchr(t + (t[4] == ':' ? 7 : 8), '/');
        r->path = slash != NULL ? slash : http1_root;
    } else {
        return -1;
    }
    if ((frag = strchr(r->path, '#')) != NULL) {
        *frag = '\0';
    }
    if ((q = strchr(r->path, '?')) != NULL) {
        *q = '\0';
        r->query = q + 1;
    }
    if (r->path[0] == '\0') {
        r->path = http1_root;
    }
    return 0;
}

/* Hand the complete request (or a protocol error) to the callback. */
static void
conn_dispatch(struct http1_conn *c)
{
    struct http1_server *s = c->srv;
    struct http1_req *r = c->req;

    c->ready = 0;
    c->state = C_HANDLING;
    c->requests++;
    if (r->error == 0) {
        r->body = r->buf + r->body_off;
        r->body_len = r->len - r->body_off - 1;
        if (req_split_target(r) != 0) {
            req_fail(r, 400, "bad-request", "the request target is not a path");
        }
    }
    if (r->error != 0) {
        static char empty[] = "";
        r->path = http1_root;
        r->query = NULL;
        r->body = empty;
        r->body_len = 0;
        if (r->target == NULL) {
            r->target = http1_root;
        }
        c->close_after = 1;
        conn_read_on(c, 0);
    } else if (!r->keep_alive || c->parser.upgrade) {
        c->close_after = 1; /* after an Upgrade we cannot tell where requests start */
    }
    s->on_request(r, s->arg);
}

/* A parse failed: make sure there is a request to carry the error, then dispatch it. */
static void
conn_protocol_error(struct http1_conn *c)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);

    if (c->req == NULL && (c->req = req_get(c->srv, c)) == NULL) {
        conn_close(c, "out_of_memory");
        return;
    }
    if (e == HPE_HEADER_OVERFLOW) {
        req_fail(c->req, 431, "headers-too-large", "the request head is too large");
    } else if (e == HPE_INVALID_VERSION) {
        req_fail(c->req, 505, "http-version-not-supported",
                 "this server speaks HTTP/1.0 and 1.1");
    } else {
        char detail[128];
        snprintf(detail, sizeof(detail), "malformed HTTP request: %s",
                 http_errno_description(e));
        req_fail(c->req, 400, "bad-request", detail);
    }
    conn_dispatch(c);
}

/* Parse data; the number of bytes consumed. c->ready says a request is complete. */
static size_t
conn_parse(struct http1_conn *c, const char *data, size_t len)
{
    size_t n = http_parser_execute(&c->parser, &c->srv->settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);

    if (c->dead || c->ready) {
        return n;
    }
    if (e != HPE_OK || c->parser.upgrade) {
        if (e == HPE_OK) {
            /* CONNECT or an Upgrade: not ours to switch to. */
            if (c->req == NULL && (c->req = req_get(c->srv, c)) == NULL) {
                conn_close(c, "out_of_memory");
                return len;
            }
            req_fail(c->req, 400, "bad-request", "protocol upgrades are not supported");
        }
        conn_protocol_error(c);
        return len;
    }
    return n;
}

/* Parse input that waited (pipelined requests) while nothing is being handled. */
static void
conn_pump(struct http1_conn *c)
{
    while (!c->dead && c->in_len > c->in_off && c->state != C_HANDLING &&
           c->state != C_LINGER && c->out_len - c->out_off < HTTP1_OUT_HIGH) {
        size_t n = conn_parse(c, c->in + c->in_off, c->in_len - c->in_off);
        if (c->dead) {
            return;
        }
        c->in_off += n;
        if (c->ready) {
            conn_dispatch(c);
        } else if (c->state == C_HANDLING) {
            return; /* a protocol error is being answered */
        }
    }
    if (!c->dead && c->in_off == c->in_len) {
        c->in_off = c->in_len = 0;
    }
}

static void
conn_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct http1_conn *c = arg;
    struct http1_server *s = c->srv;
    ssize_t n;

    conn_enter(c);
    n = recv(fd, s->rbuf, sizeof(s->rbuf), 0);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            conn_close(c, NULL);
        }
    } else if (n == 0) {
        c->eof = 1;
        conn_read_on(c, 0);
        /* A client that shut its side after a request still gets the answer. */
        if (!(c->state == C_HANDLING && c->req != NULL && !c->req->streaming)) {
            conn_close(c, NULL);
        } else {
            c->close_after = 1;
        }
    } else if (c->state == C_LINGER) {
        /* dropped */
    } else {
        c->active_us = util_mono_us();
        if (c->state == C_HANDLING || c->in_len > c->in_off ||
            c->out_len - c->out_off >= HTTP1_OUT_HIGH) {
            if (buf_keep(&c->in, &c->in_off, &c->in_len, &c->in_cap, s->rbuf, (size_t)n) != 0) {
                conn_close(c, "out_of_memory");
            } else if (c->in_len - c->in_off >= HTTP1_PENDING_MAX) {
                conn_read_on(c, 0); /* resumed when the request in hand is answered */
            }
        } else {
            size_t used = conn_parse(c, s->rbuf, (size_t)n);
            if (!c->dead && used < (size_t)n &&
                buf_keep(&c->in, &c->in_off, &c->in_len, &c->in_cap, s->rbuf + used,
                         (size_t)n - used) != 0) {
                conn_close(c, "out_of_memory");
            }
            if (!c->dead && c->ready) {
                conn_dispatch(c);
            }
        }
    }
    conn_leave(c);
}

static void
conn_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct http1_conn *c = arg;
    ssize_t w;

    conn_enter(c);
    w = send(fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            conn_close(c, NULL);
        }
    } else {
        c->out_off += (size_t)w;
        c->active_us = util_mono_us();
        if (c->out_off == c->out_len) {
            struct http1_req *r = c->req;
            c->out_off = c->out_len = 0;
            conn_uncount(c);
            event_del(&c->wev);
            c->writing = 0;
            if (r != NULL && r->streaming && r->on_drained != NULL) {
                r->on_drained(r->cb_arg);
            } else if (r == NULL && c->close_after && c->state == C_HANDLING) {
                conn_linger(c);
            }
        }
    }
    conn_leave(c);
}

/* Best effort, on a connection we are about to close: the socket is not full. */
static void
conn_say(struct http1_conn *c, int status, const char *title, const char *detail)
{
    char buf[512];
    char body[256];
    int blen = snprintf(body, sizeof(body),
                        "{\"type\":\"/problems/%s\",\"title\":\"%s\",\"status\":%d,"
                        "\"detail\":\"%s\"}",
                        status == 408 ? "request-timeout" : "overloaded", title, status, detail);
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/problem+json\r\n%s"
                     "Connection: close\r\nContent-Length: %d\r\n\r\n%s",
                     status, title, status == 503 ? "Retry-After: 1\r\n" : "", blen, body);
    ssize_t w = send(c->fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);

    (void)w;
}

static void
server_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct http1_server *s = arg;
    struct http1_conn *c, *next;
    int64_t now = util_mono_us();
    int64_t head = (int64_t)s->lim.header_timeout_ms * 1000;
    int64_t idle = (int64_t)s->lim.idle_timeout_ms * 1000;

    for (c = s->conns; c != NULL; c = next) {
        next = c->next;
        switch (c->state) {
        case C_IDLE:
            if (c->out_len > c->out_off ? now - c->active_us > idle
                : c->requests == 0     ? now - c->since_us > head
                                       : now - c->active_us > idle) {
                conn_close(c, c->requests == 0 ? "header_timeout" : NULL);
            }
            break;
        case C_HEAD:
            if (now - c->head_us > head) {
                conn_say(c, 408, "Request Timeout", "the request head did not arrive in time");
                conn_close(c, "header_timeout");
            }
            break;
        case C_BODY:
            if (now - c->active_us > idle) {
                conn_say(c, 408, "Request Timeout", "the request body stalled");
                conn_close(c, "body_timeout");
            }
            break;
        case C_HANDLING:
            if (c->out_len > c->out_off && now - c->active_us > idle) {
                conn_close(c, "send_timeout");
            }
            break;
        case C_LINGER:
            if (now - c->head_us > (int64_t)HTTP1_LINGER_MS * 1000) {
                conn_close(c, NULL);
            }
            break;
        }
    }
}

/* A new client connection on fd (non-blocking). 0, or -1 (fd closed). */
static int
conn_new(struct http1_server *s, evutil_socket_t fd, int tag, int tcp)
{
    struct http1_conn *c = calloc(1, sizeof(*c));
    int one = 1;

    if (c == NULL) {
        evutil_closesocket(fd);
        return -1;
    }
    if (tcp) {
        /* Answers go out whole; streamed chunks should not wait for an ACK. */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    c->srv = s;
    c->fd = fd;
    c->tag = tag;
    c->since_us = c->active_us = util_mono_us();
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    event_assign(&c->rev, s->base, fd, EV_READ | EV_PERSIST, conn_on_read, c);
    event_assign(&c->wev, s->base, fd, EV_WRITE | EV_PERSIST, conn_on_write, c);
    c->next = s->conns;
    if (s->conns != NULL) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->nconns++;
    if (s->nconns > s->lim.max_connections) {
        conn_say(c, 503, "Too many connections", "retry shortly");
        cglog_info("connection_cut", "{s:s, s:i}", "reason", "max_connections", "fd", (int)fd);
        conn_linger(c);
        return 0;
    }
    conn_read_on(c, 1);
    return 0;
}

static void
server_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                 void *arg)
{
    struct http1_listener *li = arg;

    (void)conn_new(li->srv, fd, li->tag, sa->sa_family == AF_INET || sa->sa_family == AF_INET6);
}

int
http1_adopt(struct http1_server *s, int fd, int tag)
{
    return evutil_make_socket_nonblocking(fd) == 0 ? conn_new(s, fd, tag, 0) : -1;
}

static void
listener_retry(evutil_socket_t fd, short what, void *arg)
{
    struct http1_listener *li = arg;

    if (li->l != NULL) {
        evconnlistener_enable(li->l);
    }
}

/* accept() failed: out of descriptors. Pause this listener for a second, not a busy loop. */
static void
listener_on_error(struct evconnlistener *l, void *arg)
{
    struct http1_listener *li = arg;
    struct timeval second = {1, 0};
    int err = EVUTIL_SOCKET_ERROR();

    cglog_warn("accept_failed", "{s:s}", "error", evutil_socket_error_to_string(err));
    if (li->retry != NULL) {
        evconnlistener_disable(l);
        evtimer_add(li->retry, &second);
    }
}

/* ---- answers ------------------------------------------------------------ */

static const char *
status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

struct head_buf {
    char *p;
    size_t n, cap;
};

static void
head_put(struct head_buf *h, const char *s, size_t len)
{
    if (h->n + len <= h->cap) {
        memcpy(h->p + h->n, s, len);
    }
    h->n += len; /* an overflow is seen by the caller as n > cap */
}

static void
head_str(struct head_buf *h, const char *s)
{
    head_put(h, s, strlen(s));
}

static void
head_num(struct head_buf *h, unsigned long long v)
{
    char digits[20];

    head_put(h, digits, util_utoa(v, digits));
}

static const char *
server_date(struct http1_server *s)
{
    time_t now = time(NULL);

    if (now != s->date_at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(s->date, sizeof(s->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        s->date_at = now;
    }
    return s->date;
}

/* A header the caller gave, unless it could break the head (CR, LF) or is ours. */
static int
head_header_ok(const char *name, const char *value)
{
    return name[0] != '\0' && strpbrk(name, "\r\n: ") == NULL && strpbrk(value, "\r\n") == NULL &&
           strcasecmp(name, "Content-Length") != 0 && strcasecmp(name, "Connection") != 0 &&
           strcasecmp(name, "Transfer-Encoding") != 0 && strcasecmp(name, "Date") != 0;
}

/*
 * The status line and headers, in s->head. length < 0: none (streamed);
 * chunked: Transfer-Encoding. Returns the head's length.
 */
static size_t
build_head(struct http1_server *s, const struct http1_req *r, int status,
           const char *const *headers, long long length, int chunked, int close)
{
    struct head_buf h = {s->head, 0, sizeof(s->head)};
    size_t i, mark;

    head_put(&h, "HTTP/1.1 ", 9);
    head_num(&h, (unsigned long long)status);
    head_put(&h, " ", 1);
    head_str(&h, status_text(status));
    head_put(&h, "\r\nDate: ", 8);
    head_str(&h, server_date(s));
    head_put(&h, "\r\n", 2);
    if (length >= 0) {
        head_put(&h, "Content-Length: ", 16);
        head_num(&h, (unsigned long long)length);
        head_put(&h, "\r\n", 2);
    } else if (chunked) {
        head_put(&h, "Transfer-Encoding: chunked\r\n", 28);
    }
    if (close) {
        head_put(&h, "Connection: close\r\n", 19);
    } else if (r->http_minor == 0) {
        head_put(&h, "Connection: keep-alive\r\n", 24);
    }
    mark = h.n;
    for (i = 0; headers != NULL && headers[i] != NULL && headers[i + 1] != NULL; i += 2) {
        if (!head_header_ok(headers[i], headers[i + 1])) {
            continue;
        }
        head_str(&h, headers[i]);
        head_put(&h, ": ", 2);
        head_str(&h, headers[i + 1]);
        head_put(&h, "\r\n", 2);
        if (h.n + 2 > h.cap) {
            h.n = mark; /* too long: keep the headers that fit */
            break;
        }
        mark = h.n;
    }
    head_put(&h, "\r\n", 2);
    return h.n;
}

static int
status_has_body(int status)
{
    return status != 204 && status != 304 && status >= 200;
}

void
http1_respond(struct http1_req *r, int status, const char *const *headers, const char *body,
              size_t len, int close)
{
    struct http1_conn *c = r->conn;

    if (c != NULL && !c->dead) {
        struct iovec iov[2];
        int n = 1;
        conn_enter(c);
        c->in_api = 1;
        if (close || r->error != 0 || !r->keep_alive) {
            c->close_after = 1;
        }
        iov[0].iov_base = c->srv->head;
        iov[0].iov_len = build_head(c->srv, r, status, headers,
                                    status_has_body(status) ? (long long)len : -1, 0,
                                    c->close_after);
        if (body != NULL && len > 0 && r->method != HTTP1_HEAD && status_has_body(status)) {
            iov[1].iov_base = (void *)body;
            iov[1].iov_len = len;
            n = 2;
        }
        if (conn_send(c, iov, n) == 0) {
            conn_request_done(c);
        }
        c->in_api = 0;
        conn_leave(c);
    }
    req_release(r->srv, r);
}

void
http1_stream_start(struct http1_req *r, int status, const char *const *headers,
                   long long content_length, void (*on_gone)(void *arg),
                   void (*on_drained)(void *arg), void *arg)
{
    struct http1_conn *c = r->conn;
    int chunked = content_length < 0 && r->http_minor >= 1;
    struct iovec iov;

    r->streaming = chunked ? 2 : 1;
    r->on_gone = on_gone;
    r->on_drained = on_drained;
    r->cb_arg = arg;
    if (c == NULL || c->dead) {
        return;
    }
    conn_enter(c);
    c->in_api = 1;
    if (content_length < 0 && !chunked) {
        c->close_after = 1; /* HTTP/1.0: the end of the connection ends the body */
    }
    iov.iov_base = c->srv->head;
    iov.iov_len = build_head(c->srv, r, status, headers, content_length, chunked,
                             c->close_after || !r->keep_alive);
    if (!r->keep_alive) {
        c->close_after = 1;
    }
    (void)conn_send(c, &iov, 1);
    c->in_api = 0;
    conn_leave(c);
}

long
http1_stream_write(struct http1_req *r, const char *buf, size_t len)
{
    struct http1_conn *c = r->conn;
    struct iovec iov[3];
    char size[24];
    int n = 0, rc;
    long queued;

    if (c == NULL || c->dead) {
        return -1;
    }
    if (len == 0) {
        return (long)(c->out_len - c->out_off);
    }
    if (r->method == HTTP1_HEAD) {
        return 0;
    }
    if (r->streaming == 2) {
        iov[n].iov_base = size;
        iov[n++].iov_len = (size_t)snprintf(size, sizeof(size), "%zx\r\n", len);
    }
    iov[n].iov_base = (void *)buf;
    iov[n++].iov_len = len;
    if (r->streaming == 2) {
        iov[n].iov_base = (void *)"\r\n";
        iov[n++].iov_len = 2;
    }
    conn_enter(c);
    c->in_api = 1;
    rc = conn_send(c, iov, n);
    c->in_api = 0;
    queued = rc == 0 && !c->dead ? (long)(c->out_len - c->out_off) : -1;
    conn_leave(c);
    return queued;
}

void
http1_stream_end(struct http1_req *r, int complete)
{
    struct http1_conn *c = r->conn;

    if (c != NULL && !c->dead) {
        conn_enter(c);
        c->in_api = 1;
        if (!complete) {
            conn_close(c, NULL);
        } else {
            int rc = 0;
            if (r->streaming == 2 && r->method != HTTP1_HEAD) {
                struct iovec iov = {(void *)"0\r\n\r\n", 5};
                rc = conn_send(c, &iov, 1);
            }
            if (rc == 0) {
                conn_request_done(c);
            }
        }
        c->in_api = 0;
        conn_leave(c);
    }
    req_release(r->srv, r);
}

/* ---- the server --------------------------------------------------------- */

struct http1_server *
http1_server_new(struct event_base *base, const struct http1_limits *limits,
                 http1_request_cb on_request, void *arg)
{
    struct http1_server *s = calloc(1, sizeof(*s));
    struct timeval every = {0, HTTP1_SWEEP_MS * 1000};

    if (s == NULL) {
        return NULL;
    }
    s->base = base;
    s->lim = *limits;
    s->on_request = on_request;
    s->arg = arg;
    s->settings.on_message_begin = on_message_begin;
    s->settings.on_url = on_url;
    s->settings.on_header_field = on_header_field;
    s->settings.on_header_value = on_header_value;
    s->settings.on_headers_complete = on_headers_complete;
    s->settings.on_body = on_body;
    s->settings.on_message_complete = on_message_complete;
    s->sweep = event_new(base, -1, EV_PERSIST, server_sweep, s);
    if (s->sweep == NULL) {
        free(s);
        return NULL;
    }
    event_add(s->sweep, &every);
    return s;
}

int
http1_listen(struct http1_server *s, const char *host, int port, int tag, int shared)
{
    struct evutil_addrinfo hints, *ai = NULL;
    struct http1_listener *li;
    char service[8];
    unsigned flags = LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_CLOSE_ON_FREE;

    if (s->nlisteners == HTTP1_LISTENERS) {
        return -1;
    }
    li = &s->listeners[s->nlisteners];
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_ADDRCONFIG;
    snprintf(service, sizeof(service), "%d", port);
    if (evutil_getaddrinfo(host, service, &hints, &ai) != 0 || ai == NULL) {
        return -1;
    }
    if (shared) {
        flags |= LEV_OPT_REUSEABLE_PORT;
    }
    li->srv = s;
    li->tag = tag;
    li->l = evconnlistener_new_bind(s->base, server_on_accept, li, flags, 1024, ai->ai_addr,
                                    (int)ai->ai_addrlen);
    evutil_freeaddrinfo(ai);
    if (li->l == NULL) {
        return -1;
    }
    li->retry = evtimer_new(s->base, listener_retry, li);
    evconnlistener_set_error_cb(li->l, listener_on_error);
    s->nlisteners++;
    return 0;
}

void
http1_stop_listening(struct http1_server *s)
{
    int i;

    for (i = 0; i < s->nlisteners; i++) {
        if (s->listeners[i].l != NULL) {
            evconnlistener_free(s->listeners[i].l);
            s->listeners[i].l = NULL;
        }
        if (s->listeners[i].retry != NULL) {
            event_free(s->listeners[i].retry);
            s->listeners[i].retry = NULL;
        }
    }
}

void
http1_server_free(struct http1_server *s)
{
    if (s == NULL) {
        return;
    }
    http1_stop_listening(s);
    while (s->conns != NULL) {
        conn_close(s->conns, NULL);
    }
    while (s->spare != NULL) {
        struct http1_req *r = s->spare;
        s->spare = r->next_free;
        free(r->buf);
        free(r);
    }
    event_free(s->sweep);
    free(s);
}

long
http1_connections(const struct http1_server *s)
{
    return s->nconns;
}

int
http1_unsent(const struct http1_server *s)
{
    return s->unsent;
}
