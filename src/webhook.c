/*
 * webhook.c: vendor webhooks. Order matters for "never lose an event": the
 * event is written to Redis (one Lua script: dedupe, history, call update,
 * or the orphan stream for a call we do not know) and only then does the
 * vendor get its 2xx. Redis unreachable -> 503, so the vendor retries.
 * A wrong vendor or token answers 404, exactly like an unknown path.
 *
 * webhook_apply() is that store-and-apply step on its own, shared with the
 * live status refresh (GET /v1/calls/{id}?refresh=true): whatever callgate
 * learns about a call goes the same way, and a change is relayed to the
 * tenant.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "agents.h"
#include "app.h"
#include "callrec.h"
#include "cglog.h"
#include "conf.h"
#include "crypto.h"
#include "front.h"
#include "metrics.h"
#include "problem.h"
#include "relay.h"
#include "store.h"
#include "util.h"
#include "vendor.h"
#include "webhook.h"

#define WEBHOOK_DEDUPE_TTL_S (7 * 86400)

/* One update on its way into Redis. */
struct applying {
    struct app *app;
    struct conf *conf;              /* reference: the tenant lives in it */
    const struct conf_tenant *tenant;
    struct vendor_update upd;       /* owned (legs included) */
    char vendor[32];
    char source[16];
    char request_id[80];
    webhook_apply_cb cb;
    void *arg;
    char verdict[16];               /* the store's verdict, "" when it failed */
};

/* Answer whoever asked (the vendor's webhook, a refresh) and let a go. */
static void
applying_done(struct applying *a)
{
    if (a->cb != NULL) {
        a->cb(a->verdict[0] != '\0' ? a->verdict : NULL, a->arg);
    }
    vendor_update_clear(&a->upd);
    conf_unref(a->conf);
    free(a);
}

static void
applying_on_relayed(int stored, void *arg)
{
    struct applying *a = arg;

    /* Not stored means the relay gave up on Redis and said so in its log
     * (relay_lost); the vendor's event itself is kept either way. */
    (void)stored;
    applying_done(a);
}

static void
applying_on_stored(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct applying *a = arg;
    const char *verdict = NULL;
    json_t *fields = NULL;

    if (res == STORE_OK && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
        reply->element[0]->type == REDIS_REPLY_STRING) {
        verdict = reply->element[0]->str;
        util_strlcpy(a->verdict, verdict, sizeof(a->verdict));
    }
    if (verdict != NULL && strcmp(verdict, "ok") == 0 && reply->elements == 3 &&
        strcmp(reply->element[1]->str, "1") == 0) {
        fields = callrec_fields_from_reply(reply->element[2], 0);
    }
    cglog_info("update_stored", "{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "request_id",
               a->request_id, "source", a->source, "vendor", a->vendor, "tenant", a->tenant->id,
               "call_id", a->upd.call_id, "vendor_status", a->upd.vendor_status, "result",
               verdict != NULL ? verdict : store_result_text[res]);
    if (fields == NULL) {
        applying_done(a);
        return;
    }
    {
        const char *agent = callrec_field(fields, "agent");
        const char *reserved = callrec_field(fields, "agent_reserved");
        /* The call is over: its agent is free again (agents_release leaves an
         * agent set offline, or busy with another call, alone). */
        if (call_status_terminal(a->upd.status) && agent != NULL && reserved != NULL &&
            strcmp(reserved, "1") == 0) {
            agents_release(a->app, a->tenant->id, agent, callrec_field(fields, "id"));
        }
    }
    /* The answer waits until the tenant's event is durable too: a crash can
     * then never fall between the vendor's 2xx and the event being kept. */
    if (relay_call_event_stored(a->app->relay, a->tenant, fields,
                                call_status_event_type(a->upd.status), applying_on_relayed,
                                a) != 0) {
        applying_done(a); /* nowhere to send it: nothing to wait for */
    }
    json_decref(fields);
}

static int
webhook_id_ok(const char *id)
{
    size_t i, n = strlen(id);

    for (i = 0; i < n; i++) {
        if (!isalnum((unsigned char)id[i]) && id[i] != '_' && id[i] != '-') {
            return 0;
        }
    }
    return n > 0 && n < 64;
}

/* Argument list for the event script: fields the update carries, as strings. */
static int
webhook_pairs(const struct vendor_update *u, const char **args, char bufs[][UTIL_TIME_LEN],
              char **legs, int n)
{
    const int64_t times[3] = {u->started_at, u->answered_at, u->ended_at};
    static const char *const names[3] = {"started_at", "answered_at", "ended_at"};
    int i;

    args[n++] = "vendor_status";
    args[n++] = u->vendor_status;
    if (u->vendor_call_id[0] != '\0') {
        args[n++] = "vendor_call_id";
        args[n++] = u->vendor_call_id;
    }
    for (i = 0; i < 3; i++) {
        if (times[i] > 0) {
            util_rfc3339(times[i], bufs[i], UTIL_TIME_LEN);
            args[n++] = names[i];
            args[n++] = bufs[i];
        }
    }
    if (u->duration_seconds >= 0) {
        snprintf(bufs[3], UTIL_TIME_LEN, "%ld", u->duration_seconds);
        args[n++] = "duration_seconds";
        args[n++] = bufs[3];
    }
    if (u->recording_url[0] != '\0') {
        args[n++] = "recording_vendor_url";
        args[n++] = u->recording_url;
    }
    if (u->disposition[0] != '\0') {
        args[n++] = "disposition";
        args[n++] = u->disposition;
    }
    if (u->legs != NULL && (*legs = json_dumps(u->legs, JSON_COMPACT)) != NULL) {
        args[n++] = "legs";
        args[n++] = *legs;
    }
    return n;
}

int
webhook_apply(struct app *app, struct conf *conf, const struct conf_tenant *tenant,
              const char *vendor, struct vendor_update *upd, const char *source,
              const char *request_id, webhook_apply_cb cb, void *arg)
{
    char keys[5][320], rank[8], nowms[24], times[4][UTIL_TIME_LEN], ttl[16], prefix[128];
    char *event_text, *legs = NULL, now[UTIL_TIME_LEN];
    struct applying *a = calloc(1, sizeof(*a));
    const char *args[40];
    size_t argslen[40];
    json_t *event;
    int n = 0, i;

    if (a == NULL) {
        vendor_update_clear(upd);
        return -1;
    }
    a->app = app;
    a->conf = conf_ref(conf);
    a->tenant = tenant;
    a->upd = *upd;           /* takes the legs over */
    upd->legs = NULL;
    a->cb = cb;
    a->arg = arg;
    util_strlcpy(a->vendor, vendor, sizeof(a->vendor));
    util_strlcpy(a->source, source, sizeof(a->source));
    util_strlcpy(a->request_id, request_id, sizeof(a->request_id));
    if (!webhook_id_ok(a->upd.call_id)) {
        a->upd.call_id[0] = '\0';
    }
    util_rfc3339(util_now_ms(), now, sizeof(now));
    event = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "at", now, "source", source, "vendor",
                      vendor, "call_id", a->upd.call_id, "status",
                      call_status_text[a->upd.status], "vendor_status", a->upd.vendor_status);
    event_text = event != NULL ? json_dumps(event, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(event);
    if (event_text == NULL) {
        vendor_update_clear(&a->upd);
        conf_unref(a->conf);
        free(a);
        return -1;
    }
    app_key(app, keys[0], sizeof(keys[0]), "call:%s", a->upd.call_id[0] ? a->upd.call_id : "-");
    app_key(app, keys[1], sizeof(keys[1]), "call:%s:events",
            a->upd.call_id[0] ? a->upd.call_id : "-");
    app_key(app, keys[2], sizeof(keys[2]), "dedupe:%s:%s", vendor, a->upd.dedupe_key);
    app_key(app, keys[3], sizeof(keys[3]), "orphans");
    /* Our id may be absent or unknown (a vendor that does not echo it, or mangles
     * it): the script then finds the call through the vendor's own id. */
    if (a->upd.vendor_call_id[0] != '\0') {
        app_key(app, keys[4], sizeof(keys[4]), "vcall:%s:%s", vendor, a->upd.vendor_call_id);
    } else {
        app_key(app, keys[4], sizeof(keys[4]), "vcall:-");
    }
    app_key(app, prefix, sizeof(prefix), "call:");
    snprintf(ttl, sizeof(ttl), "%d", WEBHOOK_DEDUPE_TTL_S);
    snprintf(rank, sizeof(rank), "%d", call_status_rank(a->upd.status));
    snprintf(nowms, sizeof(nowms), "%lld", (long long)util_now_ms());
    for (i = 0; i < 5; i++) {
        args[n++] = keys[i];
    }
    args[n++] = ttl;
    args[n++] = tenant->id;
    args[n++] = call_status_text[a->upd.status];
    args[n++] = rank;
    args[n++] = event_text;
    args[n++] = nowms;
    args[n++] = prefix;
    n = webhook_pairs(&a->upd, args, times, &legs, n);
    for (i = 0; i < n; i++) {
        argslen[i] = strlen(args[i]);
    }
    store_eval(app->store, app->lua_event, 5, n, args, argslen, applying_on_stored, a);
    free(event_text);
    free(legs);
    return 0;
}

/* ---- the webhook endpoint ------------------------------------------------ */

/*
 * One delivery on its way into Redis: a vendor may send several events at
 * once (CCAI), and the vendor gets its 2xx only when every one of them is
 * stored. If any could not be, the whole delivery gets 503: the vendor's
 * retry re-sends them all, and the ones already stored are acknowledged as
 * duplicates.
 */
struct inbound {
    struct front_req *r; /* NULL once answered */
    size_t pending;      /* updates not yet stored */
    char vendor[32];     /* for the metrics */
    size_t stored, dups, orphans, failed;
};

static void
inbound_on_deadline(struct front_req *r)
{
    struct inbound *in = r->ctx;

    in->r = NULL;
    front_problem_ex(r, 503, "store-unavailable", "the event store did not answer in time",
                     NULL, NULL, (const char *const[]){"Retry-After", "5", NULL});
}

static void
inbound_on_applied(const char *verdict, void *arg)
{
    struct inbound *in = arg;
    struct front_req *r = in->r;
    size_t total;
    const char *outcome;
    json_t *body;

    if (verdict == NULL) {
        in->failed++;
        outcome = "store_failed";
    } else if (strcmp(verdict, "dup") == 0) {
        in->dups++;
        outcome = "duplicate";
    } else if (strcmp(verdict, "orphan") == 0) {
        in->orphans++;
        outcome = "orphan";
    } else {
        in->stored++;
        outcome = "stored";
    }
    metrics_inc(METRIC_WEBHOOKS, in->vendor, outcome, NULL);
    if (--in->pending > 0) {
        return;
    }
    total = in->stored + in->dups + in->orphans + in->failed;
    if (r == NULL) {
        free(in);
        return;
    }
    r->on_deadline = NULL;
    if (in->failed > 0) {
        free(in);
        front_problem_ex(r, 503, "store-unavailable", "the event could not be stored; retry later",
                         NULL, NULL, (const char *const[]){"Retry-After", "5", NULL});
        return;
    }
    body = json_pack("{s:s}", "status", in->dups == total ? "duplicate" : "stored");
    if (total > 1) {
        json_object_set_new(body, "events", json_integer((json_int_t)total));
        json_object_set_new(body, "duplicates", json_integer((json_int_t)in->dups));
        json_object_set_new(body, "orphans", json_integer((json_int_t)in->orphans));
    }
    /* 202: kept, but no call of this tenant matched (yet). */
    front_reply_json(r, in->stored == 0 && in->orphans > 0 ? 202 : 200, body, NULL);
    free(in);
}

/*
 * The vendor's HTTP Basic credentials, when the tenant configured some, in
 * constant time. A mismatch looks exactly like a wrong token (404).
 */
static int
webhook_basic_ok(const struct front_req *r, const struct conf_tenant_vendor *tv)
{
    const char *h = front_header(r, "Authorization");
    unsigned char decoded[512];
    int n;

    if (tv == NULL || tv->webhook_basic_auth == NULL) {
        return 1;
    }
    if (h == NULL || strncasecmp(h, "Basic ", 6) != 0) {
        return 0;
    }
    h += 6;
    while (*h == ' ') {
        h++;
    }
    n = crypto_base64_decode(h, strlen(h), decoded, sizeof(decoded));
    return n > 0 && crypto_equal(decoded, (size_t)n, tv->webhook_basic_auth,
                                 strlen(tv->webhook_basic_auth));
}

static void
webhook_unusable(struct front_req *r, const char *vendor, const char *err)
{
    json_t *errors = json_array();

    problem_add_error(errors, "body", err);
    metrics_inc(METRIC_WEBHOOKS, vendor, "invalid", NULL);
    cglog_warn("webhook_rejected", "{s:s, s:s, s:s, s:s, s:i}", "request_id", r->request_id,
               "vendor", vendor, "tenant", r->tenant->id, "reason", err, "bytes",
               (int)r->body_len);
    front_problem(r, 400, "validation", "the webhook payload is not usable", errors);
}

void
webhook_receive(struct front_req *r)
{
    const char *rest = r->path + strlen("/v1/webhooks/");
    const char *slash = strchr(rest, '/');
    const char *method;
    char vendor[32], err[256];
    const struct vendor_ops *ops;
    const struct conf_vendor *cv;
    const struct conf_tenant_vendor *tv;
    struct vendor_update one, *ups = NULL;
    struct vendor_ctx ctx;
    struct inbound *in;
    size_t n = 0, i;
    int rc;

    if (slash == NULL || (size_t)(slash - rest) >= sizeof(vendor)) {
        front_problem(r, 404, "not-found", "no such endpoint", NULL);
        return;
    }
    memcpy(vendor, rest, (size_t)(slash - rest));
    vendor[slash - rest] = '\0';
    ops = vendor_ops_find(vendor);
    cv = conf_vendor_find(r->conf, vendor);
    r->tenant = ops != NULL && cv != NULL
                    ? conf_tenant_by_webhook_token(r->conf, vendor, slash + 1)
                    : NULL;
    tv = r->tenant != NULL ? conf_tenant_vendor(r->tenant, vendor) : NULL;
    if (r->tenant == NULL || !webhook_basic_ok(r, tv)) {
        r->tenant = NULL;
        metrics_inc(METRIC_WEBHOOKS, ops != NULL ? vendor : "other", "not_found", NULL);
        front_problem(r, 404, "not-found", "no such endpoint", NULL);
        return;
    }
    util_strlcpy(r->log_vendor, vendor, sizeof(r->log_vendor));
    vendor_ctx_init(&ctx, cv, tv);
    method = r->method == HTTP1_GET ? "GET" : "POST";
    if (ops->parse_webhook_batch != NULL) {
        rc = ops->parse_webhook_batch(&ctx, method, r->query, r->body, r->body_len, &ups, &n,
                                      err, sizeof(err));
    } else {
        vendor_update_init(&one);
        rc = ops->parse_webhook(&ctx, method, r->query, r->body, r->body_len, &one, err,
                                sizeof(err));
        if (rc != 0) {
            vendor_update_clear(&one);
        } else {
            ups = &one;
            n = 1;
        }
    }
    if (rc != 0) {
        webhook_unusable(r, vendor, err);
        return;
    }
    in = calloc(1, sizeof(*in));
    if (in == NULL) {
        for (i = 0; i < n; i++) {
            vendor_update_clear(&ups[i]);
        }
        if (ups != &one) {
            free(ups);
        }
        front_problem(r, 500, "internal", "out of memory", NULL);
        return;
    }
    in->r = r;
    in->pending = n;
    util_strlcpy(in->vendor, vendor, sizeof(in->vendor));
    r->ctx = in;
    r->on_deadline = inbound_on_deadline;
    util_strlcpy(r->log_call_id, ups[0].call_id[0] ? ups[0].call_id : ups[0].vendor_call_id,
                 sizeof(r->log_call_id));
    /* One connection, commands in order: a batch is applied in the order sent. */
    for (i = 0; i < n; i++) {
        if (webhook_apply(r->app, r->conf, r->tenant, vendor, &ups[i], "webhook", r->request_id,
                          inbound_on_applied, in) != 0) {
            inbound_on_applied(NULL, in);
        }
    }
    if (ups != &one) {
        free(ups);
    }
}
