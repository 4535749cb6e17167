/*
 * front.c: the evhttp front end. One gencb dispatches every request through
 * a small route table; the handlers live in calls.c and webhook.c. Limits are
 * set explicitly because evhttp's defaults are unlimited (header and body
 * sizes) and its timeouts are per read, not per request: the absolute
 * deadline of a request inside callgate is our own timer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <jansson.h>

#include "admin.h"
#include "agents.h"
#include "app.h"
#include "callctl.h"
#include "calls.h"
#include "cglog.h"
#include "conf.h"
#include "crypto.h"
#include "front.h"
#include "throttle.h"
#include "history.h"
#include "metrics.h"
#include "problem.h"
#include "recording.h"
#include "relay.h"
#include "routes.h"
#include "store.h"
#include "util.h"
#include "vhealth.h"
#include "webhook.h"

struct front {
    struct app *app;
    struct evhttp *http;
    struct evhttp_bound_socket *sock;
    struct evhttp_bound_socket *admin_sock; /* admin.listen, when configured */
    int admin_port;                /* its port, or 0: admin routes on the main listener */
    int inflight;
    int unsent;                    /* replies handed to evhttp, not yet written out */
    struct front_req *reqs;        /* requests in flight (doubly linked) */
    struct front_conn **conns;     /* client connections, hashed by bufferevent */
    size_t nbuckets;
    long nconns;                   /* connections tracked (open, or closing) */
    struct event *sweep;           /* header deadlines and clean-up */
};

/*
 * A client connection, as seen through the bufferevent evhttp asks us to
 * create for it (evhttp_set_bevcb). We hold a reference to that bufferevent:
 * evhttp's bufferevent_free() then only clears its callbacks, which is how
 * the sweep learns that the connection is gone (evhttp closed the socket
 * itself), without ever touching freed memory or a reused descriptor.
 */
struct front_conn {
    struct bufferevent *bev;       /* our reference */
    int64_t since_us;              /* accepted */
    int requests;                  /* requests dispatched on it */
    int busy;                      /* of which not yet answered */
    int over_cap;                  /* accepted beyond max_connections */
    int cut;                       /* we shut it down already */
    struct front_conn *next;       /* hash chain */
};

typedef void (*front_handler)(struct front_req *r);

/* METRICS: on both listeners, the admin token only if conf metrics.require_admin_token. */
enum { FRONT_AUTH_NONE = 0, FRONT_AUTH_TENANT = 1, FRONT_AUTH_ADMIN = 2, FRONT_AUTH_METRICS = 3 };

/* How a path segment pattern matches: a literal, or "*" for any one segment. */
struct front_route {
    enum evhttp_cmd_type method;
    const char *pattern;   /* "/v1/calls/{star}" with a literal star */
    const char *label;     /* for logs: never the raw path (it may hold a token) */
    int auth;              /* FRONT_AUTH_*: who may call it */
    int webhook_body;      /* use the webhook body limit */
    front_handler handler;
};

static void front_healthz(struct front_req *r);
static void front_readyz(struct front_req *r);

static const struct front_route front_routes[] = {
    {EVHTTP_REQ_GET, "/healthz", "GET /healthz", 0, 0, front_healthz},
    {EVHTTP_REQ_HEAD, "/healthz", "HEAD /healthz", 0, 0, front_healthz},
    {EVHTTP_REQ_GET, "/readyz", "GET /readyz", 0, 0, front_readyz},
    {EVHTTP_REQ_HEAD, "/readyz", "HEAD /readyz", 0, 0, front_readyz},
    {EVHTTP_REQ_GET, "/metrics", "GET /metrics", FRONT_AUTH_METRICS, 0, metrics_get},
    {EVHTTP_REQ_POST, "/v1/calls", "POST /v1/calls", 1, 0, calls_create},
    {EVHTTP_REQ_GET, "/v1/calls", "GET /v1/calls", 1, 0, calls_list},
    {EVHTTP_REQ_GET, "/v1/calls/*", "GET /v1/calls/{id}", 1, 0, calls_get},
    {EVHTTP_REQ_GET, "/v1/calls/*/recording", "GET /v1/calls/{id}/recording", 1, 0,
     recording_get},
    {EVHTTP_REQ_POST, "/v1/calls/*/participants", "POST /v1/calls/{id}/participants", 1, 0,
     callctl_add_participant},
    {EVHTTP_REQ_GET, "/v1/calls/*/flags", "GET /v1/calls/{id}/flags", 1, 0, callctl_flags},
    {EVHTTP_REQ_PATCH, "/v1/calls/*/flags", "PATCH /v1/calls/{id}/flags", 1, 0, callctl_flags},
    {EVHTTP_REQ_PUT, "/v1/agents/*", "PUT /v1/agents/{id}", 1, 0, agents_put},
    {EVHTTP_REQ_GET, "/v1/agents/*", "GET /v1/agents/{id}", 1, 0, agents_get},
    {EVHTTP_REQ_DELETE, "/v1/agents/*", "DELETE /v1/agents/{id}", 1, 0, agents_delete},
    {EVHTTP_REQ_GET, "/v1/agents", "GET /v1/agents", 1, 0, agents_list},
    {EVHTTP_REQ_PUT, "/v1/agents/*/status", "PUT /v1/agents/{id}/status", 1, 0,
     agents_set_status},
    {EVHTTP_REQ_GET, "/v1/call-logs", "GET /v1/call-logs", 1, 0, history_logs},
    {EVHTTP_REQ_GET, "/v1/call-logs/counts", "GET /v1/call-logs/counts", 1, 0, history_counts},
    {EVHTTP_REQ_GET, "/admin/routes", "GET /admin/routes", 2, 0, admin_routes_get},
    {EVHTTP_REQ_POST, "/admin/routes/reload", "POST /admin/routes/reload", 2, 0,
     admin_routes_reload},
    {EVHTTP_REQ_POST, "/admin/routes/explain", "POST /admin/routes/explain", 2, 0,
     calls_explain},
    {EVHTTP_REQ_GET, "/admin/vendors", "GET /admin/vendors", 2, 0, admin_vendors},
    {EVHTTP_REQ_GET, "/admin/deliveries", "GET /admin/deliveries", 2, 0, relay_admin_list},
    {EVHTTP_REQ_POST, "/admin/deliveries/replay", "POST /admin/deliveries/replay", 2, 0,
     relay_admin_replay_dead},
    {EVHTTP_REQ_POST, "/admin/deliveries/*/replay", "POST /admin/deliveries/{id}/replay", 2, 0,
     relay_admin_replay},
    {EVHTTP_REQ_POST, "/v1/webhooks/*/*", "POST /v1/webhooks/{vendor}/{token}", 0, 1,
     webhook_receive},
    {EVHTTP_REQ_GET, "/v1/webhooks/*/*", "GET /v1/webhooks/{vendor}/{token}", 0, 1,
     webhook_receive},
};

static const char *
front_method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    default:
        return "OTHER";
    }
}

/* Segment-wise match: "*" takes exactly one non-empty segment. */
static int
front_path_match(const char *pattern, const char *path)
{
    while (*pattern != '\0' && *path != '\0') {
        if (*pattern == '*') {
            const char *end = strchr(path, '/');
            size_t n = end != NULL ? (size_t)(end - path) : strlen(path);
            if (n == 0) {
                return 0;
            }
            path += n;
            pattern++;
        } else if (*pattern++ != *path++) {
            return 0;
        }
    }
    return *pattern == '\0' && *path == '\0';
}

const char *
front_header(const struct front_req *r, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(r->ev), name);
}

/* Echo the client's X-Request-Id when it is sane, else mint one. */
static void
front_request_id(struct front_req *r)
{
    const char *in = front_header(r, "X-Request-Id");
    size_t i, n = in != NULL ? strlen(in) : 0;
    int ok = n > 0 && n < 64;

    for (i = 0; ok && i < n; i++) {
        char c = in[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             strchr("-_.:", c) != NULL;
    }
    if (ok) {
        util_strlcpy(r->request_id, in, sizeof(r->request_id));
    } else {
        crypto_new_id("req", r->request_id, sizeof(r->request_id));
    }
}

static void
front_req_free(struct front_req *r)
{
    struct front *f = r->app->front;

    if (r->conn != NULL) {
        r->conn->busy--;
    }
    if (r->deadline != NULL) {
        event_free(r->deadline);
    }
    conf_unref(r->conf);
    free(r->path);
    free(r->query);
    free(r->body);
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        f->reqs = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    }
    free(r);
    f->inflight--;
}

static void
front_log_request(struct front_req *r, int code)
{
    double ms = (double)(util_mono_us() - r->start_us) / 1000.0;

    metrics_http_reply(r->route, code, ms / 1000.0);
    cglog_info("request", "{s:s, s:s, s:s, s:i, s:f, s:s?, s:s?, s:s?}", "request_id",
               r->request_id, "method", front_method_name(evhttp_request_get_command(r->ev)),
               "route", r->route != NULL ? r->route : "-", "status", code, "ms", ms, "tenant",
               r->tenant != NULL ? r->tenant->id : NULL, "vendor",
               r->log_vendor[0] ? r->log_vendor : NULL, "call_id",
               r->log_call_id[0] ? r->log_call_id : NULL);
}


/* ---- client connections: cap and header deadline ------------------------ */

#define FRONT_SWEEP_MS 200

static size_t
front_conn_bucket(const struct front *f, const struct bufferevent *bev)
{
    uintptr_t h = (uintptr_t)bev;

    h ^= h >> 17;
    h *= 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 7) & (f->nbuckets - 1);
}

static struct front_conn *
front_conn_find(const struct front *f, const struct bufferevent *bev)
{
    struct front_conn *c;

    for (c = f->conns[front_conn_bucket(f, bev)]; c != NULL; c = c->next) {
        if (c->bev == bev) {
            return c;
        }
    }
    return NULL;
}

static void
front_conn_drop(struct front *f, struct front_conn *c)
{
    struct front_conn **pp = &f->conns[front_conn_bucket(f, c->bev)];

    while (*pp != c) {
        pp = &(*pp)->next;
    }
    *pp = c->next;
    bufferevent_decref(c->bev);
    f->nconns--;
    free(c);
}

/* 1 once evhttp has freed (or reset) the connection: its callbacks are gone. */
static int
front_conn_gone(const struct front_conn *c)
{
    bufferevent_event_cb eventcb = NULL;

    bufferevent_getcb(c->bev, NULL, NULL, &eventcb, NULL);
    return eventcb == NULL;
}

/* Cut a live connection: evhttp sees the socket end and frees it. */
static void
front_conn_cut(struct front_conn *c, const char *why)
{
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    static const char over[] =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"
        "Retry-After: 1\r\nConnection: close\r\nContent-Length: 100\r\n\r\n"
        "{\"type\":\"/problems/overloaded\",\"title\":\"Too many connections\",\"status\":503,"
        "\"detail\":\"retry shortly\"}";

    if (fd < 0 || c->cut) {
        return;
    }
    c->cut = 1;
    if (c->over_cap) {
        /* Best effort: the socket is fresh, so the answer fits its buffer. */
        ssize_t n = send(fd, over, sizeof(over) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)n;
    }
    cglog_info("connection_cut", "{s:s, s:i}", "reason", why, "fd", (int)fd);
    shutdown(fd, SHUT_RDWR);
}

static void
front_on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct front *f = arg;
    int64_t now = util_mono_us();
    int64_t limit = (int64_t)f->app->conf->limits.header_timeout_ms * 1000;
    size_t b;

    for (b = 0; b < f->nbuckets; b++) {
        struct front_conn *c = f->conns[b], *next;
        for (; c != NULL; c = next) {
            next = c->next;
            if (front_conn_gone(c)) {
                if (c->busy == 0) {
                    front_conn_drop(f, c);
                }
            } else if (c->over_cap) {
                front_conn_cut(c, "max_connections");
            } else if (c->requests == 0 && now - c->since_us > limit) {
                front_conn_cut(c, "header_timeout");
            }
        }
    }
}

/* evhttp wants a bufferevent for a new client connection. */
static struct bufferevent *
front_on_new_conn(struct event_base *base, void *arg)
{
    struct front *f = arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);
    struct front_conn *c = bev != NULL ? calloc(1, sizeof(*c)) : NULL;
    size_t b;

    if (c == NULL) {
        return bev; /* untracked: still served, just not bounded */
    }
    bufferevent_incref(bev);
    c->bev = bev;
    c->since_us = util_mono_us();
    b = front_conn_bucket(f, bev);
    c->next = f->conns[b];
    f->conns[b] = c;
    f->nconns++;
    if (f->nconns > f->app->conf->limits.max_connections) {
        /* evhttp gives the socket to bev right after this returns; the sweep
         * answers 503 and closes it on its next pass. */
        c->over_cap = 1;
        event_active(f->sweep, EV_TIMEOUT, 0);
    }
    return bev;
}

static struct front_conn *
front_conn_of(struct front *f, struct evhttp_request *ev)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
    struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;

    return bev != NULL ? front_conn_find(f, bev) : NULL;
}

long
front_connections(const struct front *f)
{
    return f->nconns;
}

/* evhttp wrote the whole reply (it does not call this for a dropped client). */
static void
front_on_sent(struct evhttp_request *ev, void *arg)
{
    struct front *f = arg;

    f->unsent--;
}

static void
front_send(struct front_req *r, int code, const char *content_type, const char *body,
           size_t len, const char *const *extra)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->ev);
    struct evbuffer *buf = evbuffer_new();
    size_t i;

    evhttp_add_header(out, "X-Request-Id", r->request_id);
    if (content_type != NULL) {
        evhttp_add_header(out, "Content-Type", content_type);
    }
    evhttp_add_header(out, "Cache-Control", "no-store");
    for (i = 0; extra != NULL && extra[i] != NULL && extra[i + 1] != NULL; i += 2) {
        evhttp_add_header(out, extra[i], extra[i + 1]);
    }
    if (r->app->draining) {
        evhttp_add_header(out, "Connection", "close");
    }
    if (buf != NULL && body != NULL && evhttp_request_get_command(r->ev) != EVHTTP_REQ_HEAD) {
        evbuffer_add(buf, body, len);
    }
    r->app->front->unsent++;
    evhttp_request_set_on_complete_cb(r->ev, front_on_sent, r->app->front);
    evhttp_send_reply(r->ev, code, NULL, buf);
    if (buf != NULL) {
        evbuffer_free(buf);
    }
    front_log_request(r, code);
    front_req_free(r);
}

/*
 * The client's connection is being freed under a streaming reply. The owner
 * stops its source; then r goes. A request evhttp has detached (the
 * connection failed) is ours to free through evhttp_send_reply_end(); one
 * still queued on the connection (evhttp_free at exit) evhttp frees itself.
 */
static void
front_stream_on_close(struct evhttp_connection *evcon, void *arg)
{
    struct front_req *r = arg;
    void (*gone)(void *) = r->on_gone;

    r->on_gone = NULL;
    r->on_drained = NULL;
    if (gone != NULL) {
        gone(r->gone_arg);
    }
    cglog_info("stream_end", "{s:s, s:b, s:I}", "request_id", r->request_id, "complete", 0,
               "bytes", (json_int_t)r->streamed);
    if (evhttp_request_get_connection(r->ev) == NULL) {
        evhttp_send_reply_end(r->ev);
    }
    front_req_free(r);
}

static void
front_stream_on_drained(struct evhttp_connection *evcon, void *arg)
{
    struct front_req *r = arg;
    void (*cb)(void *) = r->on_drained;

    r->on_drained = NULL;
    if (cb != NULL) {
        cb(r->drained_arg);
    }
}

void
front_stream_start(struct front_req *r, int code, const char *content_type,
                   long long content_length, void (*on_gone)(void *arg), void *arg)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->ev);
    struct evhttp_connection *evcon = evhttp_request_get_connection(r->ev);
    char len[32];

    if (r->deadline != NULL) {
        evtimer_del(r->deadline);
    }
    r->on_deadline = NULL;
    r->on_gone = on_gone;
    r->gone_arg = arg;
    evhttp_add_header(out, "X-Request-Id", r->request_id);
    evhttp_add_header(out, "Content-Type", content_type);
    evhttp_add_header(out, "Cache-Control", "private, no-store");
    if (content_length >= 0) {
        snprintf(len, sizeof(len), "%lld", content_length);
        evhttp_add_header(out, "Content-Length", len);
    }
    if (evcon != NULL) {
        evhttp_connection_set_closecb(evcon, front_stream_on_close, r);
    }
    r->app->front->unsent++;
    evhttp_request_set_on_complete_cb(r->ev, front_on_sent, r->app->front);
    evhttp_send_reply_start(r->ev, code, NULL);
    front_log_request(r, code);
}

long
front_stream_write(struct front_req *r, const char *buf, size_t len,
                   void (*on_drained)(void *arg), void *arg)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(r->ev);
    struct evbuffer *chunk;
    struct bufferevent *bev;

    if (evcon == NULL || (bev = evhttp_connection_get_bufferevent(evcon)) == NULL) {
        return -1;
    }
    chunk = evbuffer_new();
    if (chunk == NULL || evbuffer_add(chunk, buf, len) != 0) {
        if (chunk != NULL) {
            evbuffer_free(chunk);
        }
        return -1;
    }
    r->on_drained = on_drained;
    r->drained_arg = arg;
    r->streamed += (long long)len;
    evhttp_send_reply_chunk_with_cb(r->ev, chunk, front_stream_on_drained, r);
    evbuffer_free(chunk);
    return (long)evbuffer_get_length(bufferevent_get_output(bev));
}

void
front_stream_end(struct front_req *r, int complete)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(r->ev);

    if (evcon != NULL) {
        evhttp_connection_set_closecb(evcon, NULL, NULL);
        if (!complete) {
            /* Cut the connection so the client sees a short body, not a whole one:
             * evhttp notices the shut socket and frees the connection itself. */
            struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
            if (bev != NULL && bufferevent_getfd(bev) >= 0) {
                shutdown(bufferevent_getfd(bev), SHUT_RDWR);
            }
        }
    }
    cglog_info("stream_end", "{s:s, s:b, s:I}", "request_id", r->request_id, "complete",
               complete, "bytes", (json_int_t)r->streamed);
    evhttp_send_reply_end(r->ev);
    front_req_free(r);
}

void
front_reply_raw(struct front_req *r, int code, const char *content_type, const char *body,
                size_t len, const char *const *extra)
{
    front_send(r, code, content_type, body, len, extra);
}

void
front_reply_json(struct front_req *r, int code, json_t *body, const char *const *extra)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

    json_decref(body);
    if (text == NULL) {
        front_send(r, 500, "application/problem+json",
                   "{\"type\":\"/problems/internal\",\"title\":\"Internal error\",\"status\":500}",
                   70, NULL);
        return;
    }
    front_send(r, code, "application/json", text, strlen(text), extra);
    free(text);
}

void
front_problem_ex(struct front_req *r, int code, const char *slug, const char *detail,
                 json_t *errors, json_t *members, const char *const *extra)
{
    json_t *p = problem_new(code, slug, detail, r->request_id, errors);
    char *text;

    if (p != NULL && members != NULL) {
        json_object_update(p, members);
    }
    json_decref(members);
    text = p != NULL ? json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(p);
    if (text == NULL) {
        front_send(r, code, "application/problem+json", "{}", 2, extra);
        return;
    }
    front_send(r, code, "application/problem+json", text, strlen(text), extra);
    free(text);
}

void
front_problem(struct front_req *r, int code, const char *slug, const char *detail,
              json_t *errors)
{
    front_problem_ex(r, code, slug, detail, errors, NULL, NULL);
}

static void
front_healthz(struct front_req *r)
{
    front_reply_json(r, 200, json_pack("{s:s}", "status", "ok"), NULL);
}

static void
front_readyz(struct front_req *r)
{
    struct app *app = r->app;
    int redis = store_is_connected(app->store);
    int routes = app->routes != NULL;
    int ready = redis && routes && !app->draining;

    front_reply_json(r, ready ? 200 : 503,
                     json_pack("{s:s, s:b, s:b, s:b, s:s, s:o}", "status",
                               ready ? "ready" : "not_ready", "redis", redis, "routes_loaded",
                               routes, "draining", app->draining, "routes_version",
                               routes ? app->routes->version : "", "vendors",
                               vhealth_json(app->vhealth)),
                     ready ? NULL : (const char *const[]){"Retry-After", "1", NULL});
}

static void
front_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct front_req *r = arg;

    if (r->on_deadline != NULL) {
        r->on_deadline(r);
    } else {
        front_problem(r, 503, "timeout", "the request did not finish within its deadline",
                      NULL);
    }
}

/* Bearer authentication: the key's SHA-256 against every tenant's (constant time). */
static int
front_authenticate(struct front_req *r)
{
    const char *h = front_header(r, "Authorization");
    char hex[CRYPTO_SHA256_HEX_LEN + 1];
    const char *key;

    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
        return -1;
    }
    key = h + 7;
    while (*key == ' ') {
        key++;
    }
    if (*key == '\0' || strlen(key) > 512) {
        return -1;
    }
    crypto_sha256_hex(key, strlen(key), hex);
    r->tenant = conf_tenant_by_key(r->conf, hex);
    return r->tenant != NULL ? 0 : -1;
}

/* The admin token's SHA-256 against the configured one, in constant time. */
static int
front_admin_ok(struct front_req *r)
{
    const char *h = front_header(r, "Authorization");
    char hex[CRYPTO_SHA256_HEX_LEN + 1];

    if (r->conf->admin_token_sha256 == NULL || h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
        return -1;
    }
    h += 7;
    while (*h == ' ') {
        h++;
    }
    if (*h == '\0' || strlen(h) > 512) {
        return -1;
    }
    crypto_sha256_hex(h, strlen(h), hex);
    return crypto_equal(hex, strlen(hex), r->conf->admin_token_sha256,
                        strlen(r->conf->admin_token_sha256))
               ? 0
               : -1;
}

/* 1 when the request came in on the admin address (its local port). */
static int
front_on_admin_port(struct evhttp_request *ev, int admin_port)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(ev);
    struct bufferevent *bev = conn != NULL ? evhttp_connection_get_bufferevent(conn) : NULL;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    evutil_socket_t fd = bev != NULL ? bufferevent_getfd(bev) : -1;
    int port = -1;

    if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        return 0;
    }
    if (ss.ss_family == AF_INET) {
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return port == admin_port;
}

static void
front_dispatch(struct evhttp_request *ev, void *arg)
{
    struct front *f = arg;
    struct app *app = f->app;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
    enum evhttp_cmd_type method = evhttp_request_get_command(ev);
    const struct front_route *route = NULL;
    struct front_req *r = calloc(1, sizeof(*r));
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
    char allow[128] = "";
    size_t i;
    long limit;

    if (r == NULL) {
        evhttp_send_error(ev, 500, NULL);
        return;
    }
    f->inflight++;
    r->conn = front_conn_of(f, ev);
    if (r->conn != NULL) {
        r->conn->requests++;
        r->conn->busy++;
    }
    r->next = f->reqs;
    if (f->reqs != NULL) {
        f->reqs->prev = r;
    }
    f->reqs = r;
    r->app = app;
    r->ev = ev;
    r->conf = conf_ref(app->conf);
    r->start_us = util_mono_us();
    r->path = strdup(path != NULL && path[0] != '\0' ? path : "/");
    r->query = query != NULL ? strdup(query) : NULL;
    front_request_id(r);
    if (r->path == NULL) {
        front_problem(r, 500, "internal", "out of memory", NULL);
        return;
    }
    for (i = 0; i < sizeof(front_routes) / sizeof(front_routes[0]); i++) {
        if (!front_path_match(front_routes[i].pattern, r->path)) {
            continue;
        }
        if (front_routes[i].method == method) {
            route = &front_routes[i];
            break;
        }
        if (strstr(allow, front_method_name(front_routes[i].method)) == NULL) {
            snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow), "%s%s",
                     allow[0] ? ", " : "", front_method_name(front_routes[i].method));
        }
    }
    if (route == NULL) {
        if (allow[0] != '\0') {
            front_problem_ex(r, 405, "method-not-allowed", "this path does not take that method",
                             NULL, NULL, (const char *const[]){"Allow", allow, NULL});
        } else {
            front_problem(r, 404, "not-found", "no such endpoint", NULL);
        }
        return;
    }
    r->route = route->label;
    limit = route->webhook_body ? r->conf->limits.max_webhook_body_bytes
                                : r->conf->limits.max_body_bytes;
    if (evbuffer_get_length(evhttp_request_get_input_buffer(ev)) > (size_t)limit) {
        char detail[96];
        snprintf(detail, sizeof(detail), "the body may be at most %ld bytes", limit);
        front_problem(r, 413, "payload-too-large", detail, NULL);
        return;
    }
    r->body = util_evbuffer_dup(evhttp_request_get_input_buffer(ev), &r->body_len);
    if (r->body == NULL) {
        front_problem(r, 500, "internal", "out of memory", NULL);
        return;
    }
    /* With an admin address, admin routes live only there and nothing else does. */
    if (f->admin_port != 0 && route->auth != FRONT_AUTH_METRICS &&
        (route->auth == FRONT_AUTH_ADMIN) != front_on_admin_port(ev, f->admin_port)) {
        front_problem(r, 404, "not-found", "no such endpoint", NULL);
        return;
    }
    if ((route->auth == FRONT_AUTH_ADMIN ||
         (route->auth == FRONT_AUTH_METRICS && r->conf->metrics.require_admin_token)) &&
        front_admin_ok(r) != 0) {
        if (r->conf->admin_token_sha256 == NULL) {
            front_problem(r, 404, "not-found", "the admin API is not configured", NULL);
        } else {
            front_problem_ex(r, 401, "unauthorized",
                             "send the admin token as Authorization: Bearer <token>", NULL, NULL,
                             (const char *const[]){"WWW-Authenticate", "Bearer", NULL});
        }
        return;
    }
    if (route->auth == FRONT_AUTH_TENANT && front_authenticate(r) != 0) {
        front_problem_ex(r, 401, "unauthorized",
                         "send the tenant API key as Authorization: Bearer <key>", NULL, NULL,
                         (const char *const[]){"WWW-Authenticate", "Bearer", NULL});
        return;
    }
    if (app->draining && route->auth == FRONT_AUTH_TENANT) {
        front_problem_ex(r, 503, "shutting-down", "this replica is draining; retry another",
                         NULL, NULL, (const char *const[]){"Retry-After", "1", NULL});
        return;
    }
    r->deadline = evtimer_new(app->base, front_on_deadline, r);
    if (r->deadline != NULL) {
        struct timeval tv = {r->conf->limits.request_timeout_ms / 1000,
                             (r->conf->limits.request_timeout_ms % 1000) * 1000};
        evtimer_add(r->deadline, &tv);
    }
    if (route->auth == FRONT_AUTH_TENANT &&
        throttle_tenant_applies(r->tenant, route->handler == calls_create)) {
        throttle_tenant_check(r, route->handler == calls_create, route->handler);
        return;
    }
    route->handler(r);
}

/* --workers: every worker binds the same ports (SO_REUSEPORT). */
static int front_shared_ports;

void
front_share_ports(int on)
{
    front_shared_ports = on;
}

/*
 * Listen on host:port. Alone, as evhttp binds by itself. With shared ports
 * the socket is made here, because evhttp_bind_socket_with_handle cannot ask
 * for SO_REUSEPORT; evhttp then accepts on it as on its own.
 */
static struct evhttp_bound_socket *
front_bind(struct front *f, const char *host, int port)
{
    struct evutil_addrinfo hints, *ai = NULL;
    struct evhttp_bound_socket *bound;
    struct evconnlistener *l;
    char service[8];

    if (!front_shared_ports) {
        return evhttp_bind_socket_with_handle(f->http, host, (ev_uint16_t)port);
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_ADDRCONFIG;
    snprintf(service, sizeof(service), "%d", port);
    if (evutil_getaddrinfo(host, service, &hints, &ai) != 0 || ai == NULL) {
        return NULL;
    }
    l = evconnlistener_new_bind(f->app->base, NULL, NULL,
                                LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT |
                                    LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_CLOSE_ON_FREE,
                                128, ai->ai_addr, (int)ai->ai_addrlen);
    evutil_freeaddrinfo(ai);
    if (l == NULL) {
        return NULL;
    }
    /* From here evhttp owns the listener (freed with it or on delete). */
    bound = evhttp_bind_listener(f->http, l);
    if (bound == NULL) {
        evconnlistener_free(l);
    }
    return bound;
}

struct front *
front_new(struct app *app)
{
    struct front *f = calloc(1, sizeof(*f));
    const struct conf *c = app->conf;
    struct timeval idle;
    long body;

    if (f == NULL) {
        return NULL;
    }
    f->app = app;
    f->http = evhttp_new(app->base);
    if (f->http == NULL) {
        free(f);
        return NULL;
    }
    /* evhttp's own cap must hold the largest body any route takes; each route
     * then applies its own, smaller limit with a problem+json 413. */
    body = c->limits.max_body_bytes > c->limits.max_webhook_body_bytes
               ? c->limits.max_body_bytes
               : c->limits.max_webhook_body_bytes;
    evhttp_set_max_body_size(f->http, body);
    evhttp_set_max_headers_size(f->http, c->limits.max_header_bytes);
    idle.tv_sec = c->limits.idle_timeout_ms / 1000;
    idle.tv_usec = (c->limits.idle_timeout_ms % 1000) * 1000;
    evhttp_set_timeout_tv(f->http, &idle);
    evhttp_set_allowed_methods(f->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(f->http, front_dispatch, f);
    f->nbuckets = 1024;
    while ((long)f->nbuckets < c->limits.max_connections && f->nbuckets < (1u << 20)) {
        f->nbuckets <<= 1;
    }
    f->conns = calloc(f->nbuckets, sizeof(*f->conns));
    f->sweep = event_new(app->base, -1, EV_PERSIST, front_on_sweep, f);
    if (f->conns == NULL || f->sweep == NULL) {
        free(f->conns);
        if (f->sweep != NULL) {
            event_free(f->sweep);
        }
        evhttp_free(f->http);
        free(f);
        return NULL;
    }
    {
        struct timeval every = {0, FRONT_SWEEP_MS * 1000};
        event_add(f->sweep, &every);
    }
    evhttp_set_bevcb(f->http, front_on_new_conn, f);
    f->sock = front_bind(f, c->listen_host, c->listen_port);
    if (f->sock == NULL) {
        cglog_error("listen_failed", "{s:s, s:i}", "host", c->listen_host, "port",
                    c->listen_port);
        front_free(f);
        return NULL;
    }
    cglog_info("listening", "{s:s, s:i}", "host", c->listen_host, "port", c->listen_port);
    if (c->admin_listen_host != NULL) {
        f->admin_sock = front_bind(f, c->admin_listen_host, c->admin_listen_port);
        if (f->admin_sock == NULL) {
            cglog_error("listen_failed", "{s:s, s:s, s:i}", "what", "admin", "host",
                        c->admin_listen_host, "port", c->admin_listen_port);
            front_free(f);
            return NULL;
        }
        f->admin_port = c->admin_listen_port;
        cglog_info("listening", "{s:s, s:s, s:i}", "what", "admin", "host",
                   c->admin_listen_host, "port", c->admin_listen_port);
    }
    return f;
}

void
front_stop_accepting(struct front *f)
{
    if (f->sock != NULL) {
        evhttp_del_accept_socket(f->http, f->sock);
        f->sock = NULL;
    }
    if (f->admin_sock != NULL) {
        evhttp_del_accept_socket(f->http, f->admin_sock);
        f->admin_sock = NULL;
    }
}

int
front_inflight(const struct front *f)
{
    return f->inflight;
}

int
front_unsent(const struct front *f)
{
    return f->unsent;
}

void
front_abort_all(struct front *f)
{
    /* Each answer unlinks its request, so always take the head again. */
    while (f->reqs != NULL) {
        struct front_req *r = f->reqs;
        if (r->on_gone != NULL) {
            /* A streaming reply: its source stops, the body is cut short. */
            void (*gone)(void *) = r->on_gone;
            r->on_gone = NULL;
            gone(r->gone_arg);
            front_stream_end(r, 0);
            continue;
        }
        if (r->on_deadline != NULL) {
            r->on_deadline(r);
        }
        if (f->reqs == r) {
            front_problem(r, 503, "shutting-down", "the gateway stopped before this finished",
                          NULL);
        }
    }
}

void
front_free(struct front *f)
{
    size_t b;

    if (f == NULL) {
        return;
    }
    evhttp_free(f->http);
    /* Every connection is gone now; drop our references. */
    for (b = 0; b < f->nbuckets; b++) {
        while (f->conns[b] != NULL) {
            front_conn_drop(f, f->conns[b]);
        }
    }
    free(f->conns);
    event_free(f->sweep);
    free(f);
}
