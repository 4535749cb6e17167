/*
 * front.h: the HTTP front end: request ids, tenant authentication, dispatch
 * to the handlers, and the one path through which every reply leaves (so
 * every reply carries X-Request-Id and is logged exactly once). The protocol
 * itself (sockets, parsing, limits, keep-alive) is http1.c's.
 *
 * A struct front_req lives from the handler's start until its reply: the
 * front_reply_* functions send and free it. A handler that goes async keeps
 * the pointer and must reply exactly once; if the request's absolute deadline
 * passes first, the front calls req->on_deadline, which must detach the
 * handler's pending work and reply.
 */
#ifndef CG_FRONT_H
#define CG_FRONT_H

#include <stddef.h>
#include <stdint.h>

#include "http1.h"

struct app;
struct conf;
struct conf_tenant;
struct event;
struct json_t;
struct front;

struct front_req {
    struct app *app;
    struct http1_req *hr;              /* the protocol's request, until the reply */
    enum http1_method method;
    const char *method_name;
    struct conf *conf;                 /* reference held for the request's life */
    const struct conf_tenant *tenant;  /* after authentication, else NULL */
    char request_id[80];
    const char *route;                 /* route label for logs ("POST /v1/calls") */
    char *path;                        /* raw path (not decoded), in hr */
    char *query;                       /* raw query string or NULL, in hr */
    char *body;                        /* request body, NUL-terminated, in hr */
    size_t body_len;
    int64_t start_us;
    struct event *deadline;
    void (*on_deadline)(struct front_req *r);
    void *ctx;                         /* handler state */
    char log_vendor[32];               /* extra log fields set by handlers */
    char log_call_id[64];
    long long streamed;                /* body bytes of a streaming reply */
    void (*on_gone)(void *arg);        /* streaming: the client went away */
    void *gone_arg;
    void (*on_drained)(void *arg);     /* streaming: the queued bytes are out */
    void *drained_arg;
    struct front_req *next, *prev;     /* the front's list of requests in flight */
};

struct front *front_new(struct app *app);

/*
 * --workers: bind the listeners with SO_REUSEPORT so that every worker
 * process listens on the same ports. Call before front_new.
 */
void front_share_ports(int on);
void front_free(struct front *f);

/* Stop accepting new connections (drain). */
void front_stop_accepting(struct front *f);

/* Client connections open (or closing). */
long front_connections(const struct front *f);

/* Requests currently being handled. */
int front_inflight(const struct front *f);

/*
 * Connections with reply bytes not yet written to their sockets. A drain
 * must wait for them too: front_free() drops what is still queued. (A client
 * that stopped reading never completes, so callers bound the wait.)
 */
int front_unsent(const struct front *f);

/*
 * Answer every request still in flight now, through its on_deadline hook
 * (or a 503): used when the drain deadline passes, before the loop stops.
 * on_deadline hooks must answer synchronously.
 */
void front_abort_all(struct front *f);

/* Reply with a JSON body (stolen). extra: NULL-terminated name, value pairs or NULL. */
void front_reply_json(struct front_req *r, int code, struct json_t *body,
                      const char *const *extra);

/* Reply with a body already serialised (e.g. a stored idempotent answer). */
void front_reply_raw(struct front_req *r, int code, const char *content_type, const char *body,
                     size_t len, const char *const *extra);

/* Reply with a problem document; errors (stolen) may be NULL. */
void front_problem(struct front_req *r, int code, const char *slug, const char *detail,
                   struct json_t *errors);

/* Same, with extra members merged into the document (stolen) and extra headers. */
void front_problem_ex(struct front_req *r, int code, const char *slug, const char *detail,
                      struct json_t *errors, struct json_t *members, const char *const *extra);

/*
 * Streaming replies, for bodies that pass through (a call recording).
 * front_stream_start() sends the status line and headers and disarms the
 * request deadline (the transfer has its own); on_gone runs if the client's
 * connection closes before the end. front_stream_write() queues body bytes
 * and returns how many bytes wait to be written to the client, or -1 when
 * the client is gone; on_drained runs once that queue has been written (so
 * a paused source can resume). front_stream_end() finishes and frees r;
 * complete = 0 means the body was cut short: the connection is then closed
 * without a proper end, so the client can tell.
 */
void front_stream_start(struct front_req *r, int code, const char *content_type,
                        long long content_length, void (*on_gone)(void *arg), void *arg);
long front_stream_write(struct front_req *r, const char *buf, size_t len,
                        void (*on_drained)(void *arg), void *arg);
void front_stream_end(struct front_req *r, int complete);

/* A request header (case-insensitive), or NULL. */
const char *front_header(const struct front_req *r, const char *name);

#endif
