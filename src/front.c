/*
 * front.c: the front end above http1.c. One dispatcher routes every request
 * through a small table; the handlers live in calls.c, webhook.c and the
 * rest. The absolute deadline of a request inside callgate is our own timer;
 * the protocol's limits (sizes, header deadline, connection cap) are http1's.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
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
#include "http1.h"
#include "metrics.h"
#include "problem.h"
#include "recording.h"
#include "relay.h"
#include "routes.h"
#include "store.h"
#include "util.h"
#include "vhealth.h"
#include "webhook.h"

/* Which listener a request came in on (http1's tag). */
enum { FRONT_LISTENER_MAIN = 0, FRONT_LISTENER_ADMIN = 1 };

struct front {
    struct app *app;
    struct http1_server *http;
    int admin_listener;            /* admin.listen is configured: admin routes live there */
    int inflight;
    struct front_req *reqs;        /* requests in flight (doubly linked) */
};

typedef void (*front_handler)(struct front_req *r);

/* METRICS: on both listeners, the admin token only if conf metrics.require_admin_token. */
enum { FRONT_AUTH_NONE = 0, FRONT_AUTH_TENANT = 1, FRONT_AUTH_ADMIN = 2, FRONT_AUTH_METRICS = 3 };

/* How a path segment pattern matches: a literal, or "*" for any one segment. */
struct front_route {
    enum http1_method method;
    const char *pattern;   /* "/v1/calls/{star}" with a literal star */
    const char *label;     /* for logs: never the raw path (it may hold a token) */
    int auth;              /* FRONT_AUTH_*: who may call it */
    int webhook_body;      /* use the webhook body limit */
    front_handler handler;
};

static void front_healthz(struct front_req *r);
static void front_readyz(struct front_req *r);

static const struct front_route front_routes[] = {
    {HTTP1_GET, "/healthz", "GET /healthz", 0, 0, front_healthz},
    {HTTP1_HEAD, "/healthz", "HEAD /healthz", 0, 0, front_healthz},
    {HTTP1_GET, "/readyz", "GET /readyz", 0, 0, front_readyz},
    {HTTP1_HEAD, "/readyz", "HEAD /readyz", 0, 0, front_readyz},
    {HTTP1_GET, "/metrics", "GET /metrics", FRONT_AUTH_METRICS, 0, metrics_get},
    {HTTP1_POST, "/v1/calls", "POST /v1/calls", 1, 0, calls_create},
    {HTTP1_GET, "/v1/calls", "GET /v1/calls", 1, 0, calls_list},
    {HTTP1_GET, "/v1/calls/*", "GET /v1/calls/{id}", 1, 0, calls_get},
    {HTTP1_GET, "/v1/calls/*/recording", "GET /v1/calls/{id}/recording", 1, 0,
     recording_get},
    {HTTP1_POST, "/v1/calls/*/participants", "POST /v1/calls/{id}/participants", 1, 0,
     callctl_add_participant},
    {HTTP1_GET, "/v1/calls/*/flags", "GET /v1/calls/{id}/flags", 1, 0, callctl_flags},
    {HTTP1_PATCH, "/v1/calls/*/flags", "PATCH /v1/calls/{id}/flags", 1, 0, callctl_flags},
    {HTTP1_PUT, "/v1/agents/*", "PUT /v1/agents/{id}", 1, 0, agents_put},
    {HTTP1_GET, "/v1/agents/*", "GET /v1/agents/{id}", 1, 0, agents_get},
    {HTTP1_DELETE, "/v1/agents/*", "DELETE /v1/agents/{id}", 1, 0, agents_delete},
    {HTTP1_GET, "/v1/agents", "GET /v1/agents", 1, 0, agents_list},
    {HTTP1_PUT, "/v1/agents/*/status", "PUT /v1/agents/{id}/status", 1, 0,
     agents_set_status},
    {HTTP1_GET, "/v1/call-logs", "GET /v1/call-logs", 1, 0, history_logs},
    {HTTP1_GET, "/v1/call-logs/counts", "GET /v1/call-logs/counts", 1, 0, history_counts},
    {HTTP1_GET, "/admin/routes", "GET /admin/routes", 2, 0, admin_routes_get},
    {HTTP1_POST, "/admin/routes/reload", "POST /admin/routes/reload", 2, 0,
     admin_routes_reload},
    {HTTP1_POST, "/admin/routes/explain", "POST /admin/routes/explain", 2, 0,
     calls_explain},
    {HTTP1_GET, "/admin/vendors", "GET /admin/vendors", 2, 0, admin_vendors},
    {HTTP1_GET, "/admin/deliveries", "GET /admin/deliveries", 2, 0, relay_admin_list},
    {HTTP1_POST, "/admin/deliveries/replay", "POST /admin/deliveries/replay", 2, 0,
     relay_admin_replay_dead},
    {HTTP1_POST, "/admin/deliveries/*/replay", "POST /admin/deliveries/{id}/replay", 2, 0,
     relay_admin_replay},
    {HTTP1_POST, "/v1/webhooks/*/*", "POST /v1/webhooks/{vendor}/{token}", 0, 1,
     webhook_receive},
    {HTTP1_GET, "/v1/webhooks/*/*", "GET /v1/webhooks/{vendor}/{token}", 0, 1,
     webhook_receive},
};

static const char *
front_method_name(enum http1_method m)
{
    static const char *const names[] = {
        [HTTP1_OTHER] = "OTHER", [HTTP1_GET] = "GET",       [HTTP1_HEAD] = "HEAD",
        [HTTP1_POST] = "POST",   [HTTP1_PUT] = "PUT",       [HTTP1_DELETE] = "DELETE",
        [HTTP1_PATCH] = "PATCH", [HTTP1_OPTIONS] = "OPTIONS",
    };

    return names[m];
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
    return r->hr != NULL ? http1_header(r->hr, name) : NULL;
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

    if (r->deadline != NULL) {
        event_del(r->deadline); /* it lives in r's own allocation */
    }
    conf_unref(r->conf);
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
               r->request_id, "method", r->method_name,
               "route", r->route != NULL ? r->route : "-", "status", code, "ms", ms, "tenant",
               r->tenant != NULL ? r->tenant->id : NULL, "vendor",
               r->log_vendor[0] ? r->log_vendor : NULL, "call_id",
               r->log_call_id[0] ? r->log_call_id : NULL);
}


long
front_connections(const struct front *f)
{
    return http1_connections(f->http);
}

/* Our own headers first, then the handler's; NULL-terminated pairs. */
#define FRONT_MAX_HEADERS 24

static void
front_headers(const char **out, const struct front_req *r, const char *content_type,
              const char *cache, const char *const *extra)
{
    size_t n = 0, i;

    out[n++] = "X-Request-Id";
    out[n++] = r->request_id;
    if (content_type != NULL) {
        out[n++] = "Content-Type";
        out[n++] = content_type;
    }
    out[n++] = "Cache-Control";
    out[n++] = cache;
    for (i = 0; extra != NULL && extra[i] != NULL && extra[i + 1] != NULL &&
                n + 2 < FRONT_MAX_HEADERS;
         i += 2) {
        out[n++] = extra[i];
        out[n++] = extra[i + 1];
    }
    out[n] = NULL;
}

static void
front_send(struct front_req *r, int code, const char *content_type, const char *body,
           size_t len, const char *const *extra)
{
    const char *headers[FRONT_MAX_HEADERS + 1];

    front_headers(headers, r, content_type, "no-store", extra);
    /* A draining replica closes each connection after its answer. */
    http1_respond(r->hr, code, headers, body, body != NULL ? len : 0, r->app->draining);
    r->hr = NULL;
    front_log_request(r, code);
    front_req_free(r);
}

/*
 * The client went away under a streaming reply: its source stops (on_gone),
 * then the reply ends, cut short.
 */
static void
front_stream_on_gone(void *arg)
{
    struct front_req *r = arg;
    void (*gone)(void *) = r->on_gone;

    r->on_gone = NULL;
    r->on_drained = NULL;
    if (gone != NULL) {
        gone(r->gone_arg);
    }
    front_stream_end(r, 0);
}

static void
front_stream_on_drained(void *arg)
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
    const char *headers[FRONT_MAX_HEADERS + 1];

    if (r->deadline != NULL) {
        evtimer_del(r->deadline);
    }
    r->on_deadline = NULL;
    r->on_gone = on_gone;
    r->gone_arg = arg;
    front_headers(headers, r, content_type, "private, no-store", NULL);
    http1_stream_start(r->hr, code, headers, content_length, front_stream_on_gone,
                       front_stream_on_drained, r);
    front_log_request(r, code);
}

long
front_stream_write(struct front_req *r, const char *buf, size_t len,
                   void (*on_drained)(void *arg), void *arg)
{
    r->on_drained = on_drained;
    r->drained_arg = arg;
    r->streamed += (long long)len;
    return http1_stream_write(r->hr, buf, len);
}

void
front_stream_end(struct front_req *r, int complete)
{
    cglog_info("stream_end", "{s:s, s:b, s:I}", "request_id", r->request_id, "complete",
               complete, "bytes", (json_int_t)r->streamed);
    http1_stream_end(r->hr, complete);
    r->hr = NULL;
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

static void
front_dispatch(struct http1_req *hr, void *arg)
{
    struct front *f = arg;
    struct app *app = f->app;
    const struct front_route *route = NULL;
    /* The deadline timer rides in the same allocation, after the request. */
    struct front_req *r = calloc(1, sizeof(*r) + event_get_struct_event_size());
    char allow[128] = "";
    size_t i;
    long limit;

    if (r == NULL) {
        static const char oom[] =
            "{\"type\":\"/problems/internal\",\"title\":\"Internal error\",\"status\":500}";
        http1_respond(hr, 500, (const char *const[]){"Content-Type", "application/problem+json", NULL},
                      oom, sizeof(oom) - 1, 1);
        return;
    }
    f->inflight++;
    r->next = f->reqs;
    if (f->reqs != NULL) {
        f->reqs->prev = r;
    }
    f->reqs = r;
    r->app = app;
    r->hr = hr;
    r->method = hr->method;
    r->method_name = hr->method_name;
    r->conf = conf_ref(app->conf);
    r->start_us = util_mono_us();
    r->path = hr->path;
    r->query = hr->query;
    r->body = hr->body;
    r->body_len = hr->body_len;
    front_request_id(r);
    if (hr->error != 0) {
        /* The protocol refused it (malformed, too large): answered, then closed. */
        front_problem(r, hr->error, hr->error_slug, hr->error_detail, NULL);
        return;
    }
    for (i = 0; i < sizeof(front_routes) / sizeof(front_routes[0]); i++) {
        if (!front_path_match(front_routes[i].pattern, r->path)) {
            continue;
        }
        if (front_routes[i].method == r->method) {
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
    if (r->body_len > (size_t)limit) {
        char detail[96];
        snprintf(detail, sizeof(detail), "the body may be at most %ld bytes", limit);
        front_problem(r, 413, "payload-too-large", detail, NULL);
        return;
    }
    /* With an admin address, admin routes live only there and nothing else does. */
    if (f->admin_listener && route->auth != FRONT_AUTH_METRICS &&
        (route->auth == FRONT_AUTH_ADMIN) != (hr->listener == FRONT_LISTENER_ADMIN)) {
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
    if (evtimer_assign((struct event *)(r + 1), app->base, front_on_deadline, r) == 0) {
        struct timeval tv = {r->conf->limits.request_timeout_ms / 1000,
                             (r->conf->limits.request_timeout_ms % 1000) * 1000};
        r->deadline = (struct event *)(r + 1);
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

struct front *
front_new(struct app *app)
{
    struct front *f = calloc(1, sizeof(*f));
    const struct conf *c = app->conf;
    struct http1_limits lim;

    if (f == NULL) {
        return NULL;
    }
    f->app = app;
    /* http1's cap must hold the largest body any route takes; each route
     * then applies its own, smaller limit with a problem+json 413. */
    lim.max_body_bytes = c->limits.max_body_bytes > c->limits.max_webhook_body_bytes
                             ? c->limits.max_body_bytes
                             : c->limits.max_webhook_body_bytes;
    lim.max_header_bytes = c->limits.max_header_bytes;
    lim.max_connections = c->limits.max_connections;
    lim.header_timeout_ms = c->limits.header_timeout_ms;
    lim.idle_timeout_ms = c->limits.idle_timeout_ms;
    f->http = http1_server_new(app->base, &lim, front_dispatch, f);
    if (f->http == NULL) {
        free(f);
        return NULL;
    }
    if (http1_listen(f->http, c->listen_host, c->listen_port, FRONT_LISTENER_MAIN,
                     front_shared_ports) != 0) {
        cglog_error("listen_failed", "{s:s, s:i}", "host", c->listen_host, "port",
                    c->listen_port);
        front_free(f);
        return NULL;
    }
    cglog_info("listening", "{s:s, s:i}", "host", c->listen_host, "port", c->listen_port);
    if (c->admin_listen_host != NULL) {
        if (http1_listen(f->http, c->admin_listen_host, c->admin_listen_port,
                         FRONT_LISTENER_ADMIN, front_shared_ports) != 0) {
            cglog_error("listen_failed", "{s:s, s:s, s:i}", "what", "admin", "host",
                        c->admin_listen_host, "port", c->admin_listen_port);
            front_free(f);
            return NULL;
        }
        f->admin_listener = 1;
        cglog_info("listening", "{s:s, s:s, s:i}", "what", "admin", "host",
                   c->admin_listen_host, "port", c->admin_listen_port);
    }
    return f;
}

void
front_stop_accepting(struct front *f)
{
    http1_stop_listening(f->http);
}
int
front_inflight(const struct front *f)
{
    return f->inflight;
}

int
front_unsent(const struct front *f)
{
    return http1_unsent(f->http);
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
    if (f == NULL) {
        return;
    }
    http1_server_free(f->http);
    free(f);
}
