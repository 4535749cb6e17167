/*
 * upstream.h: outbound HTTP on the gateway's libevent loop through libcurl's
 * multi interface (socket and timer callbacks, STYLE.md section (d)).
 *
 * One struct upstream owns the CURLM handle and its connection cache, so
 * connections to a vendor are kept alive and reused between transfers.
 *
 * Completion contract: upstream_start() returns a request handle and later
 * calls the callback exactly once (never before upstream_start() returned),
 * whatever happens: a response of any HTTP status, a connection error, a
 * timeout, a body over the size cap, or upstream_free(). The one exception is
 * upstream_cancel(): the owner has stopped caring, so the callback is
 * suppressed. upstream_start() returning NULL means the callback never runs.
 *
 * Results distinguish what matters for placing phone calls safely: whether
 * the request can have reached the vendor (see enum upstream_result).
 */
#ifndef CG_UPSTREAM_H
#define CG_UPSTREAM_H

#include <stddef.h>

struct event_base;
struct upstream;
struct upstream_req;

enum upstream_result {
    UPSTREAM_OK = 0,           /* an HTTP response arrived (any status code) */
    UPSTREAM_ERR_NOT_SENT,     /* certainly not delivered: refused, reset or failed before the
                                  request was fully sent, DNS or TLS failure, connect timeout */
    UPSTREAM_ERR_TIMEOUT,      /* the deadline passed after the request was sent: ambiguous */
    UPSTREAM_ERR_BROKEN,       /* connection reset/closed after the request was sent: ambiguous */
    UPSTREAM_ERR_TOO_LARGE,    /* response body over the cap (the vendor did answer) */
    UPSTREAM_ERR_CANCELLED,    /* upstream_free() while the transfer was running */
    UPSTREAM_ERR_INTERNAL,     /* local failure (out of memory, curl setup); not sent */
    UPSTREAM_RESULT_MAX
};

/* Text for logs and metric labels, indexed by enum upstream_result. */
extern const char *const upstream_result_text[UPSTREAM_RESULT_MAX];

struct sockaddr;

/*
 * Optional, per handle: asked for every address libcurl is about to connect
 * to (after DNS, so a name that resolves somewhere forbidden is caught,
 * rebinding included). Returns 1 to allow; 0 refuses the connection, and the
 * transfer completes with UPSTREAM_ERR_NOT_SENT and an error text that says
 * the address is not allowed.
 */
typedef int (*upstream_addr_filter)(const struct sockaddr *addr, void *arg);

struct upstream_opts {
    long max_host_connections;  /* per-host connection cap (0 = unlimited) */
    long max_total_connections; /* total connection cap (0 = unlimited) */
    size_t max_response_bytes;  /* body cap; over it -> UPSTREAM_ERR_TOO_LARGE */
    upstream_addr_filter addr_filter; /* NULL: every address */
    void *addr_filter_arg;
};

/*
 * Streaming mode (optional): the body is handed over as it arrives instead of
 * being collected, so a large download (a call recording) never sits whole
 * in memory. on_head runs once, when the final response's headers are in,
 * before any on_data; on_data runs for each piece of body. Each returns
 * UPSTREAM_STREAM_CONTINUE, UPSTREAM_STREAM_PAUSE (the transfer holds still
 * until upstream_resume(), e.g. while the client is slow) or
 * UPSTREAM_STREAM_ABORT (the transfer ends: completion with
 * UPSTREAM_ERR_BROKEN, and no more callbacks). They must not call
 * upstream_cancel() or upstream_free(); upstream_resume() only from outside.
 * The completion still runs exactly once at the end, with an empty body;
 * max_response_bytes does not apply to a streamed body.
 */
enum upstream_stream_verdict {
    UPSTREAM_STREAM_CONTINUE = 0,
    UPSTREAM_STREAM_PAUSE,
    UPSTREAM_STREAM_ABORT,
};

struct upstream_stream {
    enum upstream_stream_verdict (*on_head)(long status, const char *content_type,
                                            long long content_length, void *arg);
    enum upstream_stream_verdict (*on_data)(const char *buf, size_t len, void *arg);
};

struct upstream_request {
    const char *method;          /* "GET", "POST", "PUT", "PATCH", "DELETE" */
    const char *url;             /* http:// or https:// only */
    const char *const *headers;  /* NULL-terminated "Name: value" list, or NULL */
    const char *body;            /* request body or NULL (copied) */
    size_t body_len;
    long connect_timeout_ms;     /* connect deadline */
    long timeout_ms;             /* whole-transfer deadline */
    const struct upstream_stream *stream; /* NULL: collect the body (the default) */
    int small_answer;            /* 1: the answer is expected to be small (a placement's
                                  * JSON); libcurl then reads it through a 1 KiB buffer */
};

struct upstream_response {
    long status;                 /* HTTP status, 0 if none arrived */
    const char *body;            /* NUL-terminated copy of the body (borrowed), never NULL */
    size_t body_len;
    const char *content_type;    /* borrowed, or NULL */
    const char *retry_after;     /* Retry-After header value, borrowed, or NULL */
    const char *error;           /* libcurl's error text, or "" */
    double total_ms;             /* wall time of the transfer */
};

/* Completion; resp and everything it points to are borrowed for the call. */
typedef void (*upstream_cb)(enum upstream_result res, const struct upstream_response *resp,
                            void *arg);

struct upstream *upstream_new(struct event_base *base, const struct upstream_opts *opts);

/*
 * Cancel every running transfer (each completes with UPSTREAM_ERR_CANCELLED)
 * and free the handle. Must be called while base is still alive.
 */
void upstream_free(struct upstream *up);

/* Start a transfer. Everything in req is copied. */
struct upstream_req *upstream_start(struct upstream *up, const struct upstream_request *req,
                                    upstream_cb cb, void *arg);

/* Abort a running transfer without calling its callback. */
void upstream_cancel(struct upstream_req *r);

/* Continue a streamed transfer that a callback paused. No-op otherwise. */
void upstream_resume(struct upstream_req *r);

/* Number of transfers running (for drain and metrics). */
int upstream_running(const struct upstream *up);

#endif
