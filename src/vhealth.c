/*
 * vhealth.c: see vhealth.h. One timer ticks a few times a second; each tick
 * starts the probes that are due (at most one in flight per vendor). State
 * is kept by vendor name, so a reload that keeps a vendor keeps its history.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "app.h"
#include "cglog.h"
#include "conf.h"
#include "metrics.h"
#include "upstream.h"
#include "util.h"
#include "vendor.h"
#include "vhealth.h"

#define VHEALTH_TICK_MS 100
#define VHEALTH_MAX_VENDORS 64
#define VHEALTH_MAX_PROBE_MS 5000

enum vhealth_state { VHEALTH_UNKNOWN = 0, VHEALTH_UP, VHEALTH_DOWN };

static const char *const vhealth_state_text[] = {"unknown", "up", "down"};

struct vhealth_entry {
    char name[32];
    enum vhealth_state state;
    int64_t checked_ms;      /* last result, wall clock; 0 = never */
    int64_t since_ms;        /* when the state last changed */
    int64_t next_mono_us;    /* next probe due */
    long latency_ms;
    char detail[160];
    struct upstream_req *up; /* probe in flight */
    struct vendor_http http;
    struct vhealth *owner;
};

struct vhealth {
    struct app *app;
    struct event *tick;
    int stopped;
    struct vhealth_entry entries[VHEALTH_MAX_VENDORS];
    size_t n;
};

static struct vhealth_entry *
vhealth_entry(struct vhealth *h, const char *name)
{
    size_t i;

    for (i = 0; i < h->n; i++) {
        if (strcmp(h->entries[i].name, name) == 0) {
            return &h->entries[i];
        }
    }
    if (h->n == VHEALTH_MAX_VENDORS || strlen(name) >= sizeof(h->entries[0].name)) {
        return NULL;
    }
    memset(&h->entries[h->n], 0, sizeof(h->entries[0]));
    util_strlcpy(h->entries[h->n].name, name, sizeof(h->entries[0].name));
    h->entries[h->n].owner = h;
    return &h->entries[h->n++];
}

static void
vhealth_record(struct vhealth_entry *e, enum vhealth_state st, long latency_ms,
               const char *detail)
{
    int64_t now = util_now_ms();

    if (st != e->state) {
        if (st == VHEALTH_DOWN || e->state == VHEALTH_DOWN) {
            cglog_warn("vendor_health", "{s:s, s:s, s:s, s:s}", "vendor", e->name, "from",
                       vhealth_state_text[e->state], "to", vhealth_state_text[st], "detail",
                       detail);
        } else {
            cglog_info("vendor_health", "{s:s, s:s, s:s, s:s}", "vendor", e->name, "from",
                       vhealth_state_text[e->state], "to", vhealth_state_text[st], "detail",
                       detail);
        }
        e->state = st;
        e->since_ms = now;
    }
    e->checked_ms = now;
    e->latency_ms = latency_ms;
    util_strlcpy(e->detail, detail, sizeof(e->detail));
}

static void
vhealth_on_probe(enum upstream_result res, const struct upstream_response *resp, void *arg)
{
    struct vhealth_entry *e = arg;
    const struct vendor_ops *ops = vendor_ops_find(e->name);
    const struct conf_vendor *cv = conf_vendor_find(e->owner->app->conf, e->name);
    char detail[160] = "";
    struct vendor_ctx ctx;

    e->up = NULL;
    vendor_http_clear(&e->http);
    metrics_vendor_request(e->name, "health", upstream_result_text[res], resp->status);
    if (res != UPSTREAM_OK) {
        snprintf(detail, sizeof(detail), "%s: %s", upstream_result_text[res], resp->error);
        vhealth_record(e, VHEALTH_DOWN, (long)resp->total_ms, detail);
        return;
    }
    if (ops == NULL || cv == NULL) { /* the vendor went away in a reload */
        return;
    }
    vendor_ctx_init(&ctx, cv, NULL);
    if (ops->parse_health(&ctx, resp->status, resp->body, resp->body_len, detail,
                          sizeof(detail)) == 0) {
        vhealth_record(e, VHEALTH_UP, (long)resp->total_ms, detail[0] ? detail : "ok");
    } else {
        vhealth_record(e, VHEALTH_DOWN, (long)resp->total_ms, detail);
    }
}

static void
vhealth_probe(struct vhealth *h, const struct conf_vendor *cv, const struct vendor_ops *ops,
              struct vhealth_entry *e)
{
    struct upstream_request req;
    struct vendor_ctx ctx;
    char err[160];

    vendor_ctx_init(&ctx, cv, NULL);
    if (ops->build_health(&ctx, &e->http, err, sizeof(err)) != 0) {
        vhealth_record(e, VHEALTH_DOWN, 0, err);
        return;
    }
    memset(&req, 0, sizeof(req));
    req.method = e->http.method;
    req.url = e->http.url;
    req.headers = (const char *const *)e->http.headers;
    req.connect_timeout_ms = cv->connect_timeout_ms;
    req.timeout_ms = cv->timeout_ms < VHEALTH_MAX_PROBE_MS ? cv->timeout_ms : VHEALTH_MAX_PROBE_MS;
    e->up = upstream_start(h->app->upstream, &req, vhealth_on_probe, e);
    if (e->up == NULL) {
        vendor_http_clear(&e->http);
        vhealth_record(e, VHEALTH_DOWN, 0, "the probe could not be started");
    }
}

static void
vhealth_on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct vhealth *h = arg;
    const struct conf *c = h->app->conf;
    int64_t now = util_mono_us();
    size_t i;

    (void)fd;
    (void)what;
    for (i = 0; !h->stopped && i < c->nvendors; i++) {
        const struct conf_vendor *cv = &c->vendors[i];
        const struct vendor_ops *ops = vendor_ops_find(cv->name);
        struct vhealth_entry *e;

        if (ops == NULL || ops->build_health == NULL || cv->health_interval_ms <= 0) {
            continue;
        }
        e = vhealth_entry(h, cv->name);
        if (e == NULL || e->up != NULL || now < e->next_mono_us) {
            continue;
        }
        e->next_mono_us = now + (int64_t)cv->health_interval_ms * 1000;
        vhealth_probe(h, cv, ops, e);
    }
}

struct vhealth *
vhealth_new(struct app *app)
{
    struct vhealth *h = calloc(1, sizeof(*h));
    struct timeval every = {0, VHEALTH_TICK_MS * 1000};

    if (h == NULL) {
        return NULL;
    }
    h->app = app;
    h->tick = event_new(app->base, -1, EV_PERSIST, vhealth_on_tick, h);
    if (h->tick == NULL || event_add(h->tick, &every) != 0) {
        vhealth_free(h);
        return NULL;
    }
    return h;
}

void
vhealth_stop(struct vhealth *h)
{
    size_t i;

    if (h == NULL) {
        return;
    }
    h->stopped = 1;
    if (h->tick != NULL) {
        event_del(h->tick);
    }
    for (i = 0; i < h->n; i++) {
        if (h->entries[i].up != NULL) {
            upstream_cancel(h->entries[i].up);
            h->entries[i].up = NULL;
        }
        vendor_http_clear(&h->entries[i].http);
    }
}

void
vhealth_free(struct vhealth *h)
{
    if (h == NULL) {
        return;
    }
    vhealth_stop(h);
    if (h->tick != NULL) {
        event_free(h->tick);
    }
    free(h);
}

json_t *
vhealth_json(const struct vhealth *h)
{
    const struct conf *c = h->app->conf;
    json_t *out = json_object();
    size_t i, j;

    for (i = 0; i < c->nvendors; i++) {
        const struct vendor_ops *ops = vendor_ops_find(c->vendors[i].name);
        const struct vhealth_entry *e = NULL;
        char checked[UTIL_TIME_LEN], since[UTIL_TIME_LEN];
        json_t *o;

        if (ops == NULL || ops->build_health == NULL || c->vendors[i].health_interval_ms <= 0) {
            continue;
        }
        for (j = 0; j < h->n; j++) {
            if (strcmp(h->entries[j].name, c->vendors[i].name) == 0) {
                e = &h->entries[j];
            }
        }
        if (e == NULL || e->checked_ms == 0) {
            o = json_pack("{s:s, s:n}", "state", "unknown", "checked_at");
        } else {
            util_rfc3339(e->checked_ms, checked, sizeof(checked));
            util_rfc3339(e->since_ms, since, sizeof(since));
            o = json_pack("{s:s, s:s, s:s, s:i, s:s}", "state", vhealth_state_text[e->state],
                          "checked_at", checked, "since", since, "latency_ms",
                          (int)e->latency_ms, "detail", e->detail);
        }
        json_object_set_new(out, c->vendors[i].name, o);
    }
    return out;
}
