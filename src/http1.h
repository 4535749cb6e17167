/*
 * http1.h: the HTTP/1.1 server under the front end. Listening sockets,
 * client connections on plain libevent events, request parsing with
 * libhttp-parser, limits and deadlines, keep-alive and pipelining, and the
 * writing of answers (whole or streamed).
 *
 * Why not evhttp: it costs about 2.4 times the CPU of a lean server per
 * request (bufferevent callbacks, header lists of small allocations, two
 * epoll_ctl per request). Here a connection's read event stays armed for its
 * whole life, an answer is written straight from the caller (a write event is
 * armed only when the socket is full), and a request lives in one buffer.
 *
 * One request per connection is handled at a time; bytes a client pipelines
 * behind it wait, parsed once the answer is out. A request (struct
 * http1_req) is handed to the on_request callback complete, body included,
 * and lives until http1_respond() or http1_stream_end() is called on it:
 * exactly once, even when its client has gone meanwhile (the answer is then
 * dropped).
 *
 * Protocol errors (a malformed head, a body or head over the limits) are
 * handed over too, as a request with `error` set: the callback answers them
 * like any other (a problem document), and the connection closes after.
 */
#ifndef CG_HTTP1_H
#define CG_HTTP1_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct http1_server;
struct http1_conn;

enum http1_method {
    HTTP1_OTHER = 0,
    HTTP1_GET,
    HTTP1_HEAD,
    HTTP1_POST,
    HTTP1_PUT,
    HTTP1_DELETE,
    HTTP1_PATCH,
    HTTP1_OPTIONS,
};

struct http1_limits {
    long max_header_bytes;       /* request line and headers together: 431 beyond */
    long max_body_bytes;         /* the largest body any route takes: 413 beyond */
    long max_connections;        /* then each new connection is answered 503 and closed */
    long header_timeout_ms;      /* the whole head must arrive within this (from accept,
                                  * or from its first byte on a kept-alive connection) */
    long idle_timeout_ms;        /* a kept-alive connection, a body, or a blocked write
                                  * that makes no progress for this long is closed */
};

#define HTTP1_MAX_HEADERS 100
#define HTTP1_MAX_TARGET 8192

struct http1_header_ref {
    uint32_t name, value;        /* offsets of NUL-terminated strings in the request buffer */
};

/* One request. The public part is read-only for the callback. */
struct http1_req {
    enum http1_method method;
    const char *method_name;     /* as sent ("GET", ...), or "-" */
    char *target;                /* the request target as sent */
    char *path;                  /* its path ("/v1/calls"), never empty */
    char *query;                 /* its query string (after '?'), or NULL */
    char *body;                  /* NUL-terminated (the NUL is not counted) */
    size_t body_len;
    int listener;                /* the tag given to http1_listen() */
    int http_minor;              /* HTTP/1.x */
    int error;                   /* a protocol error to answer with this status, or 0 */
    const char *error_slug;      /* its problem type ("bad-request", ...) */
    char error_detail[128];

    /* private */
    struct http1_server *srv;
    struct http1_conn *conn;     /* NULL once the client has gone */
    char *buf;                   /* target, headers, body */
    size_t len, cap;
    size_t head_bytes;
    size_t body_off;
    struct http1_header_ref hdrs[HTTP1_MAX_HEADERS];
    int nhdr;
    int last_cb;                 /* which data callback ran last */
    int keep_alive;
    int streaming;               /* 1: head sent, body follows; 2: chunked */
    void (*on_gone)(void *arg);
    void (*on_drained)(void *arg);
    void *cb_arg;
    struct http1_req *next_free;
};

typedef void (*http1_request_cb)(struct http1_req *req, void *arg);

struct http1_server *http1_server_new(struct event_base *base, const struct http1_limits *limits,
                                      http1_request_cb on_request, void *arg);

/*
 * Listen on host:port; every request accepted there carries `tag`. With
 * shared = 1 the socket takes SO_REUSEPORT (--workers). 0 or -1.
 */
int http1_listen(struct http1_server *s, const char *host, int port, int tag, int shared);

/* Serve a connected socket as if accepted on a listener tagged tag (tests, fuzzing). 0 or -1. */
int http1_adopt(struct http1_server *s, int fd, int tag);

/* Close the listening sockets (drain): open connections go on. */
void http1_stop_listening(struct http1_server *s);

/* Close every connection and free. Requests still out must be answered first. */
void http1_server_free(struct http1_server *s);

/* Client connections open (lingering ones included). */
long http1_connections(const struct http1_server *s);

/* Connections with answer bytes not yet written to the socket. */
int http1_unsent(const struct http1_server *s);

/* A request header (case-insensitive name; the first of duplicates), or NULL. */
const char *http1_header(const struct http1_req *req, const char *name);

/*
 * Answer and free req. headers: NULL-terminated name, value pairs (or NULL);
 * Date, Content-Length and Connection are added here. close = 1 ends the
 * connection after this answer. A HEAD request gets the headers only.
 */
void http1_respond(struct http1_req *req, int status, const char *const *headers,
                   const char *body, size_t len, int close);

/*
 * Streaming. http1_stream_start() sends the status and headers, with
 * Content-Length when content_length >= 0, else chunked (or, to an HTTP/1.0
 * client, a body that ends with the connection). on_gone runs (later, never
 * inside these calls) if the client goes before the end: the owner must then
 * still call http1_stream_end(). http1_stream_write() returns the bytes
 * queued for the client after it, or -1 if the client is gone; on_drained
 * runs once a non-empty queue has been written out. http1_stream_end()
 * finishes and frees req; complete = 0 cuts the connection so that the client
 * sees a short body.
 */
void http1_stream_start(struct http1_req *req, int status, const char *const *headers,
                        long long content_length, void (*on_gone)(void *arg),
                        void (*on_drained)(void *arg), void *arg);
long http1_stream_write(struct http1_req *req, const char *buf, size_t len);
void http1_stream_end(struct http1_req *req, int complete);

#endif
