/*
 * relay.c: signed tenant events. Each delivery owns its serialised body and
 * a copy of the tenant's secrets (a reload may drop the conf meanwhile). A
 * 2xx ends it; anything else is retried after 1 s, 5 s and 25 s, with a fresh
 * webhook-timestamp and signature each time and the same webhook-id, so the
 * tenant can deduplicate. Tenant endpoints use their own upstream handle so
 * that a slow tenant never takes connections from vendor traffic.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "app.h"
#include "callrec.h"
#include "cglog.h"
#include "conf.h"
#include "crypto.h"
#include "front.h"
#include "relay.h"
#include "upstream.h"
#include "util.h"

static const int relay_backoff_s[] = {1, 5, 25};

struct delivery {
    struct relay *rl;
    char id[48];                   /* webhook-id, stable across attempts */
    char *url;
    char *body;
    char *secrets[CONF_MAX_KEYS];
    size_t nsecrets;
    char tenant[72];
    char call_id[64];
    int attempt;                   /* attempts made so far */
    struct upstream_req *up;
    struct event *timer;
    struct delivery *next, *prev;
};

struct relay {
    struct app *app;
    struct upstream *up;
    struct delivery *list;
    int pending;
};

struct relay *
relay_new(struct app *app)
{
    struct relay *rl = calloc(1, sizeof(*rl));
    struct upstream_opts opts = {.max_host_connections = 4,
                                 .max_total_connections = 256,
                                 .max_response_bytes = 64 * 1024};

    if (rl == NULL) {
        return NULL;
    }
    rl->app = app;
    rl->up = upstream_new(app->base, &opts);
    if (rl->up == NULL) {
        free(rl);
        return NULL;
    }
    return rl;
}

static void
delivery_free(struct delivery *d)
{
    struct relay *rl = d->rl;
    size_t i;

    if (d->prev != NULL) {
        d->prev->next = d->next;
    } else {
        rl->list = d->next;
    }
    if (d->next != NULL) {
        d->next->prev = d->prev;
    }
    rl->pending--;
    if (d->up != NULL) {
        upstream_cancel(d->up);
    }
    if (d->timer != NULL) {
        event_free(d->timer);
    }
    for (i = 0; i < d->nsecrets; i++) {
        free(d->secrets[i]);
    }
    free(d->url);
    free(d->body);
    free(d);
}

void
relay_abandon(struct relay *rl)
{
    while (rl->list != NULL) {
        cglog_warn("relay_abandoned", "{s:s, s:s, s:s}", "event_id", rl->list->id, "tenant",
                   rl->list->tenant, "call_id", rl->list->call_id);
        delivery_free(rl->list);
    }
}

void
relay_free(struct relay *rl)
{
    if (rl == NULL) {
        return;
    }
    relay_abandon(rl);
    upstream_free(rl->up);
    free(rl);
}

int
relay_pending(const struct relay *rl)
{
    return rl->pending;
}

char *
relay_sign(const char *const *secrets, size_t nsecrets, const char *msg_id, int64_t timestamp,
           const char *body, size_t len)
{
    char head[128], sig[64];
    unsigned char key[128], mac[32];
    size_t i, hl, out_len = 0;
    char *content, *out;
    int kl;

    hl = (size_t)snprintf(head, sizeof(head), "%s.%lld.", msg_id, (long long)timestamp);
    content = malloc(hl + len);
    out = calloc(nsecrets, 48);
    if (content == NULL || out == NULL || nsecrets == 0) {
        free(content);
        free(out);
        return NULL;
    }
    memcpy(content, head, hl);
    memcpy(content + hl, body, len);
    for (i = 0; i < nsecrets; i++) {
        const char *s = strncmp(secrets[i], "whsec_", 6) == 0 ? secrets[i] + 6 : secrets[i];
        kl = crypto_base64_decode(s, strlen(s), key, sizeof(key));
        if (kl <= 0 || crypto_hmac_sha256(key, (size_t)kl, content, hl + len, mac) != 0 ||
            crypto_base64_encode(mac, sizeof(mac), sig, sizeof(sig)) < 0) {
            continue;
        }
        out_len += (size_t)sprintf(out + out_len, "%sv1,%s", out_len ? " " : "", sig);
    }
    free(content);
    if (out_len == 0) {
        free(out);
        return NULL;
    }
    return out;
}

static void delivery_attempt(struct delivery *d);

static void
delivery_on_timer(evutil_socket_t fd, short what, void *arg)
{
    delivery_attempt(arg);
}

static void
delivery_on_done(enum upstream_result res, const struct upstream_response *resp, void *arg)
{
    struct delivery *d = arg;
    struct timeval tv = {0, 0};
    int ok = res == UPSTREAM_OK && resp->status >= 200 && resp->status < 300;

    d->up = NULL;
    cglog_info("relay_attempt", "{s:s, s:s, s:s, s:i, s:s, s:i, s:f}", "event_id", d->id,
               "tenant", d->tenant, "call_id", d->call_id, "attempt", d->attempt, "result",
               upstream_result_text[res], "http_status", (int)resp->status, "ms",
               resp->total_ms);
    if (ok) {
        delivery_free(d);
        return;
    }
    if (d->attempt > (int)(sizeof(relay_backoff_s) / sizeof(relay_backoff_s[0])) ||
        resp->status == 410) {
        cglog_error("relay_failed", "{s:s, s:s, s:s, s:i}", "event_id", d->id, "tenant",
                    d->tenant, "call_id", d->call_id, "attempts", d->attempt);
        delivery_free(d);
        return;
    }
    tv.tv_sec = relay_backoff_s[d->attempt - 1];
    evtimer_add(d->timer, &tv);
}

static void
delivery_attempt(struct delivery *d)
{
    char ts[24], *sig;
    char h_id[80], h_ts[48], *h_sig;
    const char *headers[6];
    struct upstream_request req;
    int64_t now = util_now_ms() / 1000;

    d->attempt++;
    sig = relay_sign((const char *const *)d->secrets, d->nsecrets, d->id, now, d->body,
                     strlen(d->body));
    if (sig == NULL) {
        cglog_error("relay_failed", "{s:s, s:s}", "event_id", d->id, "reason", "cannot sign");
        delivery_free(d);
        return;
    }
    snprintf(ts, sizeof(ts), "%lld", (long long)now);
    snprintf(h_id, sizeof(h_id), "webhook-id: %s", d->id);
    snprintf(h_ts, sizeof(h_ts), "webhook-timestamp: %s", ts);
    h_sig = malloc(strlen(sig) + 32);
    if (h_sig == NULL) {
        free(sig);
        delivery_free(d);
        return;
    }
    sprintf(h_sig, "webhook-signature: %s", sig);
    free(sig);
    headers[0] = "Content-Type: application/json";
    headers[1] = "User-Agent: callgate/" PACKAGE_VERSION;
    headers[2] = h_id;
    headers[3] = h_ts;
    headers[4] = h_sig;
    headers[5] = NULL;
    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.url = d->url;
    req.headers = headers;
    req.body = d->body;
    req.body_len = strlen(d->body);
    req.connect_timeout_ms = 3000;
    req.timeout_ms = d->rl->app->conf->callbacks.timeout_ms;
    d->up = upstream_start(d->rl->up, &req, delivery_on_done, d);
    free(h_sig);
    if (d->up == NULL) {
        struct timeval tv = {1, 0};
        evtimer_add(d->timer, &tv);
    }
}

int
relay_call_event(struct relay *rl, const struct conf_tenant *tenant, const json_t *fields,
                 const char *event_type)
{
    const char *url = callrec_field(fields, "callback_url");
    struct delivery *d;
    char created[UTIL_TIME_LEN];
    json_t *event;
    size_t i;

    if (url == NULL) {
        url = tenant->callback_url;
    }
    if (url == NULL) {
        return -1;
    }
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        return -1;
    }
    d->rl = rl;
    crypto_new_id("evt", d->id, sizeof(d->id));
    util_strlcpy(d->tenant, tenant->id, sizeof(d->tenant));
    util_strlcpy(d->call_id, callrec_field(fields, "id"), sizeof(d->call_id));
    util_rfc3339(util_now_ms(), created, sizeof(created));
    event = json_pack("{s:s, s:s, s:s, s:o}", "id", d->id, "type", event_type, "created_at",
                      created, "data", callrec_render(fields, NULL, 1));
    d->body = event != NULL ? json_dumps(event, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(event);
    d->url = strdup(url);
    for (i = 0; i < tenant->nsecrets; i++) {
        d->secrets[d->nsecrets++] = strdup(tenant->webhook_secret[i]);
    }
    d->timer = evtimer_new(rl->app->base, delivery_on_timer, d);
    d->next = rl->list;
    if (rl->list != NULL) {
        rl->list->prev = d;
    }
    rl->list = d;
    rl->pending++;
    if (d->body == NULL || d->url == NULL || d->timer == NULL) {
        delivery_free(d);
        return -1;
    }
    delivery_attempt(d);
    return 0;
}

/* ---- admin (placeholders until the durable queue) ---- */

void
relay_admin_list(struct front_req *r)
{
    front_problem(r, 501, "not-implemented", "deliveries are not kept yet", NULL);
}

void
relay_admin_replay(struct front_req *r)
{
    front_problem(r, 501, "not-implemented", "deliveries are not kept yet", NULL);
}

void
relay_admin_replay_dead(struct front_req *r)
{
    front_problem(r, 501, "not-implemented", "deliveries are not kept yet", NULL);
}
