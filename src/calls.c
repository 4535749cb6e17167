/*
 * calls.c: placing and reading calls.
 *
 * POST /v1/calls runs as a small state machine on one struct place:
 *   validate -> route -> begin (Lua: claim the idempotency key and write the
 *   call record with status "unknown") -> attempt each candidate vendor in
 *   turn -> finish (Lua: final status, attempts, and the idempotent answer)
 *   -> reply.
 * The record exists before any vendor is contacted, so a crash mid-call
 * leaves an "unknown" call to reconcile rather than nothing.
 *
 * Failover follows API.md: move to the next vendor only when the previous one
 * certainly did not place the call (explicit rejection, documented "not
 * queued", or the request never left). A timeout or a broken connection after
 * the request was sent, or an answer we cannot read, stops the walk: the call
 * may exist, so placing it elsewhere could ring the customer twice.
 *
 * Idempotency: the answer is stored for replay once any vendor may have seen
 * the request; when none can have (all attempts failed before sending), the
 * key is released so that the client may retry.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "agents.h"
#include "app.h"
#include "breaker.h"
#include "callrec.h"
#include "callctl.h"
#include "calls.h"
#include "cglog.h"
#include "conf.h"
#include "crypto.h"
#include "decide.h"
#include "front.h"
#include "gw.h"
#include "jsonw.h"
#include "throttle.h"
#include "metrics.h"
#include "phone.h"
#include "problem.h"
#include "routes.h"
#include "ssrf.h"
#include "store.h"
#include "upstream.h"
#include "util.h"
#include "vendor.h"

#define CALLS_MAX_CANDIDATES 16
#define CALLS_VCALL_TTL_S (30 * 86400) /* how long a vendor's call id finds our call */

struct place {
    struct front_req *r;          /* NULL once the client has been answered */
    struct app *app;
    struct conf *conf;            /* reference: tenant and vendors live in it */
    const struct conf_tenant *tenant;
    json_t *fields;               /* the call record, field -> string */
    char call_id[48];
    char idem_key[320];           /* Redis key, "" without Idempotency-Key */
    char fp[CRYPTO_SHA256_HEX_LEN + 1];
    char to[PHONE_E164_MAX];
    char from[PHONE_E164_MAX];    /* "" when the request named none */
    struct route_table *routes;   /* reference: rule lives in it */
    const struct route_rule *rule;/* the matching rule, or NULL (pinned vendor) */
    char pinned[64];              /* the request's "vendor", or "" */
    char agent_group[130];        /* the request's "agent_group", or "" */
    unsigned needs;               /* VENDOR_CAP_* bits the call needs */
    json_t *agent;                /* the directory's agent, once reserved or claimed */
    struct agents_place_args agent_step; /* how begin takes the agent (op NULL: no step) */
    int agent_invalid;            /* the agent or group name cannot exist */
    int agent_reserved;           /* we made it busy: release unless the call may exist */
    long long inflight[DECIDE_MAX_CANDIDATES * 4]; /* least_busy: per rule vendor */
    int have_inflight;
    const char *candidates[CALLS_MAX_CANDIDATES];
    const char *identities[CALLS_MAX_CANDIDATES]; /* the agent on each candidate */
    size_t ncandidates;
    size_t next;                  /* next candidate to try */
    json_t *attempts;
    struct upstream_req *up;      /* running vendor attempt */
    struct vendor_http http;
    const char *vendor;           /* vendor of the running attempt */
    struct throttle_lease lease;    /* the vendor cap held by the running attempt */
    int leased;                   /* ... when set */
    int sent;                     /* vendor requests sent for this call */
    long throttled_ms;            /* a vendor cap refused: when to retry (ms) */
    int64_t attempt_start_us;
    int contacted;                /* a vendor may have seen the request */
    int any_rejected;
    int store_pending;            /* a store command is in flight */
    int reply_first;              /* answer before the record is written (deadline) */
    int abandoned;                /* answering for an earlier request's call: leave its record */
    /* the answer, decided once */
    int code;
    char *answer;                 /* serialised body */
    const char *content_type;
    const char *retry_after;
    char retry_buf[16];
};

/* ---- validation ---------------------------------------------------------- */

static const char *const calls_fields[] = {"to", "agent", "agent_group", "from", "reference",
                                           "type", "scheduled_at", "queue", "ticket_id",
                                           "record", "max_ring_seconds", "lang", "tags",
                                           "vendor", "callback_url", NULL};

/* An optional string field: NULL when absent; error when present but not a usable string. */
static const char *
calls_opt_string(json_t *body, const char *field, size_t max, json_t *errors)
{
    json_t *v = json_object_get(body, field);
    char msg[96];

    if (v == NULL || json_is_null(v)) {
        return NULL;
    }
    if (!json_is_string(v)) {
        problem_add_error(errors, field, "must be a string");
        return NULL;
    }
    if (json_string_length(v) == 0 || json_string_length(v) > max) {
        snprintf(msg, sizeof(msg), "must be 1 to %zu characters", max);
        problem_add_error(errors, field, msg);
        return NULL;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        problem_add_error(errors, field, "must not contain NUL");
        return NULL;
    }
    return json_string_value(v);
}

static int
calls_check_lang(const char *s)
{
    size_t i, n = strlen(s);

    if (n < 2 || n > 16) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!isalpha((unsigned char)s[i]) && s[i] != '-') {
            return 0;
        }
    }
    return 1;
}

/*
 * The callback URL rules that can be checked on the text (ssrf.c); the
 * relay's upstream checks the resolved address again at connect time.
 */
static const char *
calls_check_callback(const struct conf *c, const char *url)
{
    const char *why = NULL;

    return ssrf_check_url(c, url, &why) == 0 ? NULL : why;
}

/*
 * Validate the body into p (numbers normalised) and fields. Appends every
 * problem to errors.
 */
static void
calls_validate(struct place *p, json_t *body, json_t *errors)
{
    const char *key, *s, *why;
    json_t *v;
    int64_t at;

    json_object_foreach(body, key, v) {
        size_t i;
        int known = 0;
        for (i = 0; calls_fields[i] != NULL; i++) {
            known |= strcmp(key, calls_fields[i]) == 0;
        }
        if (!known) {
            problem_add_error(errors, key, "unknown field");
        }
    }
    v = json_object_get(body, "to");
    if (v == NULL || json_is_null(v)) {
        problem_add_error(errors, "to", "is required");
    } else if (!json_is_string(v)) {
        problem_add_error(errors, "to", "must be a string");
    } else if (phone_normalize(json_string_value(v), p->tenant->default_country, p->to,
                               sizeof(p->to), &why) != 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "not a phone number: %s", why);
        problem_add_error(errors, "to", msg);
    }
    s = calls_opt_string(body, "from", 32, errors);
    if (s != NULL && phone_normalize(s, p->tenant->default_country, p->from, sizeof(p->from),
                                     &why) != 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "not a phone number: %s", why);
        problem_add_error(errors, "from", msg);
    }
    s = calls_opt_string(body, "type", 16, errors);
    if (s != NULL && strcmp(s, "outbound") != 0 && strcmp(s, "inbound") != 0 &&
        strcmp(s, "scheduled") != 0) {
        problem_add_error(errors, "type", "must be outbound, inbound or scheduled");
    }
    json_object_set_new(p->fields, "type", json_string(s != NULL ? s : "outbound"));
    s = calls_opt_string(body, "agent", 128, errors);
    if (s != NULL) {
        json_object_set_new(p->fields, "agent", json_string(s));
    }
    s = calls_opt_string(body, "agent_group", 128, errors);
    if (s != NULL) {
        util_strlcpy(p->agent_group, s, sizeof(p->agent_group));
        json_object_set_new(p->fields, "agent_group", json_string(s));
    }
    if (s != NULL && json_object_get(body, "agent") != NULL) {
        problem_add_error(errors, "agent_group", "give agent or agent_group, not both");
    }
    if (json_object_get(body, "agent") == NULL && json_object_get(body, "agent_group") == NULL &&
        strcmp(callrec_field(p->fields, "type"), "inbound") != 0) {
        problem_add_error(errors, "agent", "is required (or agent_group) for this call type");
    }
    s = calls_opt_string(body, "reference", 255, errors);
    if (s != NULL) {
        json_object_set_new(p->fields, "reference", json_string(s));
    }
    s = calls_opt_string(body, "scheduled_at", 64, errors);
    if (s != NULL) {
        if (util_parse_time(s, NULL, &at) != 0 || strlen(s) < 20) {
            problem_add_error(errors, "scheduled_at", "must be an RFC 3339 time with a zone");
        } else if (at <= util_now_ms()) {
            problem_add_error(errors, "scheduled_at", "must be in the future");
        } else {
            char norm[UTIL_TIME_LEN];
            util_rfc3339(at, norm, sizeof(norm));
            json_object_set_new(p->fields, "scheduled_at", json_string(norm));
        }
    } else if (strcmp(callrec_field(p->fields, "type"), "scheduled") == 0) {
        problem_add_error(errors, "scheduled_at", "is required for scheduled calls");
    }
    s = calls_opt_string(body, "queue", 128, errors);
    if (s != NULL) {
        json_object_set_new(p->fields, "queue", json_string(s));
    }
    s = calls_opt_string(body, "ticket_id", 128, errors);
    if (s != NULL) {
        json_object_set_new(p->fields, "ticket_id", json_string(s));
    }
    v = json_object_get(body, "record");
    if (v != NULL && !json_is_boolean(v)) {
        problem_add_error(errors, "record", "must be true or false");
    }
    json_object_set_new(p->fields, "record", json_string(v == NULL || json_is_true(v) ? "1" : "0"));
    v = json_object_get(body, "max_ring_seconds");
    if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < 5 ||
                      json_integer_value(v) > 120)) {
        problem_add_error(errors, "max_ring_seconds", "must be an integer from 5 to 120");
    }
    json_object_set_new(p->fields, "max_ring_seconds",
                        json_sprintf("%lld", json_is_integer(v) ? (long long)json_integer_value(v)
                                                                : 30LL));
    s = calls_opt_string(body, "lang", 16, errors);
    if (s != NULL && !calls_check_lang(s)) {
        problem_add_error(errors, "lang", "must be a language tag such as en or fr-CA");
    }
    json_object_set_new(p->fields, "lang", json_string(s != NULL ? s : "en"));
    v = json_object_get(body, "tags");
    if (v != NULL) {
        const char *tk;
        json_t *tv;
        int ok = json_is_object(v) && json_object_size(v) <= 32;
        json_object_foreach(ok ? v : NULL, tk, tv) {
            ok &= json_is_string(tv) && strlen(tk) <= 64 && json_string_length(tv) <= 256;
        }
        if (!ok) {
            problem_add_error(errors, "tags", "must be an object of at most 32 string values");
        } else {
            char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
            if (text != NULL) {
                json_object_set_new(p->fields, "tags", json_string(text));
                free(text);
            }
        }
    }
    s = calls_opt_string(body, "vendor", 64, errors);
    if (s != NULL && conf_tenant_vendor(p->tenant, s) == NULL) {
        problem_add_error(errors, "vendor", "is not a vendor this tenant may use");
    } else if (s != NULL) {
        util_strlcpy(p->pinned, s, sizeof(p->pinned));
    }
    s = calls_opt_string(body, "callback_url", 2048, errors);
    if (s != NULL) {
        if ((why = calls_check_callback(p->conf, s)) != NULL) {
            problem_add_error(errors, "callback_url", why);
        } else {
            json_object_set_new(p->fields, "callback_url", json_string(s));
        }
    }
}

/* ---- life cycle ---------------------------------------------------------- */

/* The running attempt is over: its vendor cap slot goes back. */
static void
place_release(struct place *p)
{
    if (p->leased) {
        throttle_vendor_release(p->app, &p->lease);
        p->leased = 0;
    }
}

/*
 * Spare placements: a struct place is about 3 KiB, which glibc serves from
 * its large-chunk path (consolidating its fast bins) on every call.
 */
#define PLACE_SPARE 64
static struct place *place_spare[PLACE_SPARE];
static int place_nspare;

static struct place *
place_alloc(void)
{
    struct place *p;

    if (place_nspare == 0) {
        return calloc(1, sizeof(struct place));
    }
    p = place_spare[--place_nspare];
    memset(p, 0, sizeof(*p));
    return p;
}

static void
place_dealloc(struct place *p)
{
    if (place_nspare < PLACE_SPARE) {
        place_spare[place_nspare++] = p;
    } else {
        free(p);
    }
}

static void
place_free(struct place *p)
{
    if (p->up != NULL) {
        upstream_cancel(p->up);
    }
    place_release(p);
    vendor_http_clear(&p->http);
    json_decref(p->fields);
    json_decref(p->attempts);
    json_decref(p->agent);
    routes_unref(p->routes);
    conf_unref(p->conf);
    free(p->answer);
    place_dealloc(p);
}

/* The client is answered; p lives on only while a store command is pending. */
static void
place_reply(struct place *p)
{
    struct front_req *r = p->r;
    const char *extra[5] = {NULL};
    char loc[96];
    int n = 0;

    if (r == NULL) {
        return;
    }
    p->r = NULL;
    r->on_deadline = NULL;
    r->ctx = NULL;
    if (p->retry_after != NULL) {
        extra[n++] = "Retry-After";
        extra[n++] = p->retry_after;
    }
    if (p->code == 201 || p->code == 202) {
        snprintf(loc, sizeof(loc), "/v1/calls/%s", p->call_id);
        extra[n++] = "Location";
        extra[n++] = loc;
    }
    front_reply_raw(r, p->code, p->content_type, p->answer, strlen(p->answer), extra);
}

/* An early answer (before the place needs its own life): problem, then free. */
static void
place_fail(struct place *p, int code, const char *slug, const char *detail, json_t *errors,
           const char *retry_after)
{
    struct front_req *r = p->r;

    p->r = NULL;
    if (r != NULL) {
        r->on_deadline = NULL;
        front_problem_ex(r, code, slug, detail, errors, NULL,
                         retry_after ? (const char *const[]){"Retry-After", retry_after, NULL}
                                     : NULL);
    } else {
        json_decref(errors);
    }
    if (!p->store_pending) {
        place_free(p);
    }
}

static void place_conclude(struct place *p, enum call_status status, int code, const char *slug,
                           const char *detail);
static void place_add_attempt(struct place *p, const char *vendor, const char *outcome,
                              long http_status, const char *detail, double ms);

/*
 * The request's deadline (or the drain deadline) passed. Answer now, as
 * front_abort_all() requires. While a vendor holds the request, the call may
 * exist: that is a vendor timeout, recorded as such (the record write goes on
 * after the answer). Otherwise the store is what kept us waiting.
 */
static void
place_on_deadline(struct front_req *r)
{
    struct place *p = r->ctx;

    if (p->up != NULL) {
        upstream_cancel(p->up);
        p->up = NULL;
        vendor_http_clear(&p->http);
        place_release(p);
        p->contacted = 1;
        place_add_attempt(p, p->vendor, "timeout", 0, "no answer before the request deadline",
                          (double)(util_mono_us() - p->attempt_start_us) / 1000.0);
        breaker_report(p->app->breaker, p->vendor, 1,
                       (double)(util_mono_us() - p->attempt_start_us) / 1000.0, util_now_ms());
        json_object_set_new(p->fields, "vendor", json_string(p->vendor));
        p->reply_first = 1;
        place_conclude(p, CALL_UNKNOWN, 504, "vendor-timeout",
                       "the vendor did not answer in time; the call may have been placed, so it "
                       "was not retried elsewhere; its status will be reconciled from the vendor");
        return;
    }
    place_fail(p, 503, "store-unavailable", "the call store did not answer in time", NULL, "1");
}

/* ---- finish -------------------------------------------------------------- */

static void
place_on_finish(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct place *p = arg;

    p->store_pending = 0;
    if (res != STORE_OK) {
        /* The answer still goes out: the vendor has decided. The key stays
         * in flight until it expires, which is the safe side. */
        cglog_error("call_finish_failed", "{s:s, s:s, s:s?}", "call_id", p->call_id, "result",
                    store_result_text[res],
                    "error", res == STORE_ERR_REPLY && reply != NULL ? reply->str : NULL);
    }
    place_reply(p);
    place_free(p);
}

/* The record fields the finish script writes (beside status and rank). */
static const char *const calls_finish_fields[] = {"vendor", "vendor_call_id", "from", "attempts",
                                                  "agent_action_required", "updated_at"};

/* Decide the answer, write it with the record, then reply. */
static void
place_conclude(struct place *p, enum call_status status, int code, const char *slug,
               const char *detail)
{
    char *attempts;
    char keys[4][320], ttl[32], codebuf[8], rank[8], now[UTIL_TIME_LEN], vttl[16];
    const char *args[32];
    size_t argslen[32], i;
    const char *mode, *vendor, *vcid;
    json_t *out;
    int n = 0, nk;

    /* Rendered from p->attempts itself, not parsed back from the record's text. */
    json_object_del(p->fields, "attempts");
    /* A call that certainly does not exist gives its agent back; one that may
     * exist keeps the agent busy until its terminal event. */
    if (p->agent_reserved && status == CALL_FAILED) {
        agents_release(p->app, p->tenant->id, callrec_field(p->fields, "agent"), p->call_id);
        p->agent_reserved = 0;
    }
    json_object_set_new(p->fields, "status", json_string(call_status_text[status]));
    attempts = jsonw_dumps(p->attempts);
    if (code < 300) {
        /* Written directly: the answer every placement makes. */
        p->answer = callrec_summary_text(p->fields, attempts != NULL ? attempts : "[]");
        p->content_type = "application/json";
    } else {
        out = problem_new(code, slug, detail, p->r != NULL ? p->r->request_id : NULL, NULL);
        json_object_set_new(out, "call_id", json_string(p->call_id));
        json_object_set(out, "attempts", p->attempts);
        p->answer = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(out);
        p->content_type = "application/problem+json";
    }
    p->code = code;
    if (p->answer == NULL) {
        p->answer = strdup("{}");
    }
    json_object_set_new(p->fields, "attempts", json_string(attempts != NULL ? attempts : "[]"));
    free(attempts);
    if (code == 503 && p->throttled_ms > 0) {
        /* Only vendor caps stood in the way: they free up soon. */
        snprintf(p->retry_buf, sizeof(p->retry_buf), "%ld",
                 p->throttled_ms < 1000 ? 1 : (p->throttled_ms + 999) / 1000);
        p->retry_after = p->retry_buf;
    } else if (code == 503) {
        p->retry_after = "5";
    }
    util_rfc3339(util_now_ms(), now, sizeof(now));
    json_object_set_new(p->fields, "updated_at", json_string(now));

    app_key(p->app, keys[0], sizeof(keys[0]), "call:%s", p->call_id);
    if (p->idem_key[0] != '\0') {
        util_strlcpy(keys[1], p->idem_key, sizeof(keys[1]));
    } else {
        app_key(p->app, keys[1], sizeof(keys[1]), "idem:-");
    }
    vendor = callrec_field(p->fields, "vendor");
    vcid = callrec_field(p->fields, "vendor_call_id");
    if (!p->abandoned && vendor != NULL && vcid != NULL && vcid[0] != '\0') {
        app_key(p->app, keys[2], sizeof(keys[2]), "vcall:%s:%s", vendor, vcid);
        snprintf(vttl, sizeof(vttl), "%d", CALLS_VCALL_TTL_S);
    } else {
        app_key(p->app, keys[2], sizeof(keys[2]), "vcall:-");
        snprintf(vttl, sizeof(vttl), "0");
    }
    if (vendor != NULL) {
        app_key(p->app, keys[3], sizeof(keys[3]), "inflight:%s", vendor);
    } else {
        app_key(p->app, keys[3], sizeof(keys[3]), "inflight:-");
    }
    nk = 4;
    args[n++] = keys[0];
    args[n++] = keys[1];
    args[n++] = keys[2];
    args[n++] = keys[3];
    mode = p->idem_key[0] == '\0' ? "none" : p->contacted ? "store" : "release";
    snprintf(ttl, sizeof(ttl), "%ld", p->conf->idempotency.ttl_s);
    snprintf(codebuf, sizeof(codebuf), "%d", code);
    snprintf(rank, sizeof(rank), "%d", call_status_rank(status));
    args[n++] = mode;
    args[n++] = ttl;
    args[n++] = codebuf;
    args[n++] = p->answer;
    args[n++] = p->call_id;
    args[n++] = call_status_text[status];
    args[n++] = rank;
    args[n++] = vttl;
    for (i = 0; !p->abandoned && i < GW_ARRAY_LEN(calls_finish_fields); i++) {
        const char *v = callrec_field(p->fields, calls_finish_fields[i]);
        if (v != NULL) {
            args[n++] = calls_finish_fields[i];
            args[n++] = v;
        }
    }
    for (i = 0; i < (size_t)n; i++) {
        argslen[i] = strlen(args[i]);
    }
    cglog_info("call_placed", "{s:s, s:s, s:s, s:s, s:i, s:s?}", "request_id",
               p->r != NULL ? p->r->request_id : "-", "call_id", p->call_id, "tenant",
               p->tenant->id, "status", call_status_text[status], "http_status", code, "vendor",
               callrec_field(p->fields, "vendor"));
    if (p->reply_first) {
        place_reply(p);
    }
    p->store_pending = 1;
    store_eval(p->app->store, p->app->lua_finish, nk, n, args, argslen, place_on_finish, p);
}

/* ---- attempts ------------------------------------------------------------ */

static void place_next(struct place *p);
static void place_after_begin(struct place *p, const struct redisReply *reply);
static int place_needs_available(const struct place *p);


static void
place_add_attempt(struct place *p, const char *vendor, const char *outcome, long http_status,
                  const char *detail, double ms)
{
    json_t *a = json_pack("{s:s, s:s}", "vendor", vendor, "outcome", outcome);

    if (http_status > 0) {
        json_object_set_new(a, "http_status", json_integer(http_status));
    }
    if (detail != NULL && detail[0] != '\0') {
        json_t *d = json_string(detail);
        json_object_set_new(a, "detail", d != NULL ? d : json_string("(not valid UTF-8)"));
    }
    json_object_set_new(a, "ms", json_integer((json_int_t)(ms + 0.5)));
    json_array_append_new(p->attempts, a);
    metrics_inc(METRIC_VENDOR_ATTEMPTS, vendor, outcome, NULL);
    if (ms > 0) { /* it went out on the network */
        metrics_observe(METRIC_VENDOR_DURATION, ms / 1000.0, vendor, NULL, NULL);
    }
    cglog_info("vendor_attempt", "{s:s, s:s, s:s, s:s?, s:s, s:s, s:i, s:f}", "request_id",
               p->r != NULL ? p->r->request_id : "-", "call_id", p->call_id, "tenant",
               p->tenant->id, "route", callrec_field(p->fields, "route"), "vendor", vendor,
               "outcome", outcome, "http_status", (int)http_status, "ms", ms);
}

static void
place_on_vendor(enum upstream_result res, const struct upstream_response *resp, void *arg)
{
    struct place *p = arg;
    const struct conf_vendor *cv = conf_vendor_find(p->conf, p->vendor);
    const struct vendor_ops *ops = vendor_ops_find(p->vendor);
    struct vendor_ctx ctx;
    struct vendor_placed placed;
    char detail[300];

    p->up = NULL;
    vendor_http_clear(&p->http);
    place_release(p);
    vendor_ctx_init(&ctx, cv, conf_tenant_vendor(p->tenant, p->vendor));
    if (res == UPSTREAM_OK) {
        ops->parse_place(&ctx, resp->status, resp->body, resp->body_len, &placed);
    }
    /* The vendor's health, for its circuit: an explicit refusal of this call
     * is a healthy vendor; unreachable, slow, "not queued" or 5xx is not. */
    if (res != UPSTREAM_ERR_CANCELLED && res != UPSTREAM_ERR_INTERNAL) {
        breaker_report(p->app->breaker, p->vendor,
                       res != UPSTREAM_OK || placed.outcome == VENDOR_UNAVAILABLE ||
                           placed.outcome == VENDOR_AMBIGUOUS,
                       resp->total_ms, util_now_ms());
    }
    switch (res) {
    case UPSTREAM_OK:
        p->contacted = 1;
        if (placed.outcome == VENDOR_ACCEPTED) {
            place_add_attempt(p, p->vendor, "accepted", resp->status, placed.detail,
                              resp->total_ms);
            json_object_set_new(p->fields, "vendor", json_string(p->vendor));
            json_object_set_new(p->fields, "vendor_call_id", json_string(placed.vendor_call_id));
            if (placed.agent_action) {
                json_object_set_new(p->fields, "agent_action_required", json_string("1"));
            }
            place_conclude(p,
                           strcmp(callrec_field(p->fields, "type"), "scheduled") == 0
                               ? CALL_SCHEDULED
                               : CALL_QUEUED,
                           placed.agent_action ? 202 : 201, NULL, NULL);
            return;
        }
        if (placed.outcome == VENDOR_AMBIGUOUS) {
            place_add_attempt(p, p->vendor, "invalid_response", resp->status, placed.detail,
                              resp->total_ms);
            json_object_set_new(p->fields, "vendor", json_string(p->vendor));
            place_conclude(p, CALL_UNKNOWN, 502, "vendor-error",
                           "the vendor's answer could not be understood; the call may have been "
                           "placed and its status will be reconciled from the vendor");
            return;
        }
        if (placed.outcome == VENDOR_REJECTED) {
            p->any_rejected = 1;
        }
        place_add_attempt(p, p->vendor, vendor_outcome_text[placed.outcome], resp->status,
                          placed.detail, resp->total_ms);
        place_next(p);
        return;
    case UPSTREAM_ERR_NOT_SENT:
    case UPSTREAM_ERR_INTERNAL:
        snprintf(detail, sizeof(detail), "not sent: %s", resp->error);
        place_add_attempt(p, p->vendor, "unavailable", 0, detail, resp->total_ms);
        place_next(p);
        return;
    case UPSTREAM_ERR_TOO_LARGE:
        p->contacted = 1;
        place_add_attempt(p, p->vendor, "invalid_response", resp->status,
                          "answer larger than the configured limit", resp->total_ms);
        json_object_set_new(p->fields, "vendor", json_string(p->vendor));
        place_conclude(p, CALL_UNKNOWN, 502, "vendor-error",
                       "the vendor's answer could not be read; the call may have been placed");
        return;
    default:
        /* timeout, broken connection, shutdown: the vendor may have the call */
        p->contacted = 1;
        place_add_attempt(p, p->vendor, "timeout", 0, resp->error, resp->total_ms);
        json_object_set_new(p->fields, "vendor", json_string(p->vendor));
        place_conclude(p, CALL_UNKNOWN, 504, "vendor-timeout",
                       "the vendor did not answer after receiving the request; the call may "
                       "have been placed, so it was not retried elsewhere; its status will be "
                       "reconciled from the vendor");
        return;
    }
}

/*
 * Send the request built in p->http to vendor name (its caps, if any, are
 * held). 0 when it is on its way; -1 when it was not sent (attempt
 * recorded, the walk goes on) or the retry budget ended the walk.
 */
static int
place_send(struct place *p, const char *name)
{
    const struct conf_vendor *cv = conf_vendor_find(p->conf, name);
    struct upstream_request req;
    int64_t now = util_now_ms();

    /* A second request for the same call is a retry: it needs budget. */
    if (p->sent > 0 && !retry_budget_take(p->app->retry_budget, p->conf, now)) {
        place_add_attempt(p, name, "unavailable", 0,
                          "not tried: the retry budget is spent (failover is limited while "
                          "vendors fail)",
                          0);
        metrics_vendor_throttled(name, METRICS_THROTTLE_RETRY_BUDGET);
        place_release(p);
        breaker_cancel(p->app->breaker, name);
        p->next = p->ncandidates;
        return -1;
    }
    if (p->sent++ == 0) {
        retry_budget_first(p->app->retry_budget, now);
    }
    memset(&req, 0, sizeof(req));
    req.method = p->http.method;
    req.url = p->http.url;
    req.headers = (const char *const *)p->http.headers;
    req.body = p->http.body;
    req.body_len = p->http.body_len;
    req.connect_timeout_ms = cv->connect_timeout_ms;
    req.timeout_ms = cv->timeout_ms;
    req.small_answer = 1;
    p->vendor = name;
    p->attempt_start_us = util_mono_us();
    if (p->r != NULL) {
        util_strlcpy(p->r->log_vendor, name, sizeof(p->r->log_vendor));
    }
    p->up = upstream_start(p->app->upstream, &req, place_on_vendor, p);
    if (p->up != NULL) {
        return 0;
    }
    place_add_attempt(p, name, "unavailable", 0, "could not start the request", 0);
    place_release(p);
    breaker_cancel(p->app->breaker, name);
    return -1;
}

/* The vendor caps answered for the candidate before p->next. */
static void
place_on_slot(enum throttle_verdict v, long retry_ms, void *arg)
{
    struct place *p = arg;
    const char *name = p->candidates[p->next - 1];
    char detail[128];

    p->store_pending = 0;
    if (p->r == NULL) { /* the deadline answered: nothing was sent */
        place_release(p);
        place_conclude(p, CALL_FAILED, 503, "store-unavailable", "store timeout");
        return;
    }
    if (v != THROTTLE_OK) {
        snprintf(detail, sizeof(detail), "not tried: this vendor's %s cap is reached",
                 v == THROTTLE_CONCURRENCY ? "concurrency" : "calls-per-second");
        place_add_attempt(p, name, "unavailable", 0, detail, 0);
        metrics_vendor_throttled(name, v == THROTTLE_CONCURRENCY ? METRICS_THROTTLE_CONCURRENCY
                                                                 : METRICS_THROTTLE_RATE);
        if (retry_ms > p->throttled_ms) {
            p->throttled_ms = retry_ms;
        }
        breaker_cancel(p->app->breaker, name);
        vendor_http_clear(&p->http);
        place_next(p);
        return;
    }
    p->leased = 1;
    if (place_send(p, name) != 0) {
        place_next(p);
    }
}

/* Try the next candidate, or conclude when there is none left. */
static void
place_next(struct place *p)
{
    char err[256];

    while (p->next < p->ncandidates) {
        const char *name = p->candidates[p->next++];
        const struct conf_vendor *cv = conf_vendor_find(p->conf, name);
        const struct vendor_ops *ops = vendor_ops_find(name);
        struct vendor_ctx ctx;
        struct vendor_call vc;

        /* A half-open circuit lets one probe through; the others move on. */
        if (!breaker_allow(p->app->breaker, name, util_now_ms())) {
            place_add_attempt(p, name, "unavailable", 0, "circuit open", 0);
            continue;
        }
        vendor_ctx_init(&ctx, cv, conf_tenant_vendor(p->tenant, name));
        memset(&vc, 0, sizeof(vc));
        vc.call_id = p->call_id;
        vc.type = callrec_field(p->fields, "type");
        vc.to = p->to;
        vc.from = p->from[0] != '\0' ? p->from : NULL;
        vc.agent = p->identities[p->next - 1];
        vc.record = strcmp(callrec_field(p->fields, "record"), "1") == 0;
        vc.max_ring_seconds = atoi(callrec_field(p->fields, "max_ring_seconds"));
        vc.lang = callrec_field(p->fields, "lang");
        vc.queue = callrec_field(p->fields, "queue");
        vc.ticket_id = callrec_field(p->fields, "ticket_id");
        vc.scheduled_at = callrec_field(p->fields, "scheduled_at");
        vc.reference = callrec_field(p->fields, "reference");
        if (ops->build_place(&ctx, &vc, &p->http, err, sizeof(err)) != 0) {
            p->any_rejected = 1;
            place_add_attempt(p, name, "rejected", 0, err, 0);
            breaker_cancel(p->app->breaker, name);
            continue;
        }
        if (p->from[0] == '\0' && ctx.from_number != NULL) {
            json_object_set_new(p->fields, "from", json_string(ctx.from_number));
        }
        if (throttle_vendor_applies(cv)) {
            snprintf(p->lease.member, sizeof(p->lease.member), "%s:%zu", p->call_id, p->next);
            p->store_pending = 1;
            throttle_vendor_acquire(p->app, cv, ctx.api_key, &p->lease, place_on_slot, p);
            return;
        }
        if (place_send(p, name) == 0) {
            return;
        }
    }
    if (p->any_rejected) {
        place_conclude(p, CALL_FAILED, 502, "vendor-rejected",
                       "every candidate vendor refused the call; see attempts");
    } else {
        place_conclude(p, CALL_FAILED, 503, "vendor-unavailable",
                       "no candidate vendor could take the call; see attempts");
    }
}

/* ---- begin --------------------------------------------------------------- */

static void
place_abandoned(struct place *p, const char *first_call_id)
{
    p->contacted = 1;
    util_strlcpy(p->call_id, first_call_id, sizeof(p->call_id));
    if (p->r != NULL) {
        util_strlcpy(p->r->log_call_id, p->call_id, sizeof(p->r->log_call_id));
    }
    json_object_set_new(p->fields, "id", json_string(p->call_id));
    p->abandoned = 1;
    place_conclude(p, CALL_UNKNOWN, 504, "vendor-timeout",
                   "an earlier request with this Idempotency-Key did not finish; the call may "
                   "have been placed, so it is not placed again; its status will be "
                   "reconciled from the vendor");
}

static void
place_on_begin(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct place *p = arg;
    const char *verdict;

    p->store_pending = 0;
    if (p->r == NULL) { /* the deadline answered already */
        if (res == STORE_OK && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
            strcmp(reply->element[0]->str, "new") == 0) {
            /* nothing was sent: give the key (and the agent) back, record failed */
            place_after_begin(p, reply);
            return;
        }
        place_free(p);
        return;
    }
    if (res != STORE_OK || reply->type != REDIS_REPLY_ARRAY || reply->elements == 0 ||
        reply->element[0]->type != REDIS_REPLY_STRING) {
        place_fail(p, 503, "store-unavailable", "the call store is not reachable", NULL, "1");
        return;
    }
    verdict = reply->element[0]->str;
    if (strcmp(verdict, "mismatch") == 0) {
        place_fail(p, 422, "idempotency-mismatch",
                   "this Idempotency-Key was first used with a different request body", NULL,
                   NULL);
    } else if (strcmp(verdict, "conflict") == 0) {
        place_fail(p, 409, "idempotency-conflict",
                   "a request with this Idempotency-Key is still being processed", NULL, "1");
    } else if (strcmp(verdict, "replay") == 0 && reply->elements == 3 &&
               reply->element[1]->type == REDIS_REPLY_STRING &&
               reply->element[2]->type == REDIS_REPLY_STRING) {
        struct front_req *r = p->r;
        int code = atoi(reply->element[1]->str);
        const char *extra[] = {"Idempotent-Replayed", "true", NULL, NULL, NULL};
        char loc[96];
        if (code == 503) {
            extra[2] = "Retry-After";
            extra[3] = "5";
        } else if (code == 201 || code == 202) {
            /* The same headers as the first answer: Location too. */
            json_t *first = json_loadb(reply->element[2]->str, reply->element[2]->len, 0, NULL);
            const char *id = json_string_value(json_object_get(first, "id"));
            if (id != NULL && calls_id_ok(id, strlen(id)) && strlen(id) < 64) {
                snprintf(loc, sizeof(loc), "/v1/calls/%s", id);
                extra[2] = "Location";
                extra[3] = loc;
            }
            json_decref(first);
        }
        p->r = NULL;
        r->on_deadline = NULL;
        front_reply_raw(r, code, code < 300 ? "application/json" : "application/problem+json",
                        reply->element[2]->str, reply->element[2]->len, extra);
        place_free(p);
    } else if (strcmp(verdict, "abandoned") == 0 && reply->elements == 2 &&
               reply->element[1]->type == REDIS_REPLY_STRING) {
        /* The first request with this key died mid-flight; it may have placed
         * the call. Answer as for a vendor timeout about that call, and keep
         * this answer for later replays. This request's own record is dropped. */
        place_abandoned(p, reply->element[1]->str);
    } else if (strcmp(verdict, "new") == 0) {
        place_after_begin(p, reply);
    } else {
        place_fail(p, 503, "store-unavailable", "unexpected answer from the call store", NULL,
                   "1");
    }
}

static void
place_begin(struct place *p)
{
    char keys[3][320], ttl[24], inflight[24], created[24];
    const char *args[64], *agent = callrec_field(p->fields, "agent");
    size_t argslen[64];
    const char *k;
    json_t *v;
    int n = 0, nk, i;

    /* The agent is taken in the same script (one round trip). */
    if (p->agent_group[0] != '\0') {
        p->agent_invalid =
            agents_place_args(p->app, p->tenant->id, p->agent_group, 1, 0, &p->agent_step) != 0;
    } else if (agent != NULL) {
        p->agent_invalid = agents_place_args(p->app, p->tenant->id, agent, 0,
                                             place_needs_available(p), &p->agent_step) != 0;
    }
    app_key(p->app, keys[0], sizeof(keys[0]), "call:%s", p->call_id);
    app_key(p->app, keys[1], sizeof(keys[1]), "calls:%s", p->tenant->id);
    if (p->idem_key[0] != '\0') {
        util_strlcpy(keys[2], p->idem_key, sizeof(keys[2]));
    } else {
        app_key(p->app, keys[2], sizeof(keys[2]), "idem:-");
    }
    args[n++] = keys[0];
    args[n++] = keys[1];
    args[n++] = keys[2];
    for (i = 0; p->agent_step.op != NULL && i < p->agent_step.nkeys; i++) {
        args[n++] = p->agent_step.keys[i];
    }
    nk = n;
    snprintf(ttl, sizeof(ttl), "%ld", p->conf->idempotency.ttl_s);
    snprintf(created, sizeof(created), "%lld", (long long)util_now_ms());
    snprintf(inflight, sizeof(inflight), "%ld", p->conf->idempotency.in_flight_s * 1000);
    args[n++] = ttl;
    args[n++] = p->fp;
    args[n++] = p->call_id;
    args[n++] = created;
    args[n++] = inflight;
    args[n++] = p->idem_key[0] != '\0' ? "1" : "0";
    args[n++] = p->agent_step.op != NULL ? p->agent_step.op : "none";
    args[n++] = p->agent_step.op != NULL ? p->agent_step.args[0] : "";
    args[n++] = p->agent_step.op != NULL ? p->agent_step.args[1] : "";
    json_object_foreach(p->fields, k, v) {
        if (n + 2 > (int)(sizeof(args) / sizeof(args[0]))) {
            break;
        }
        args[n++] = k;
        args[n++] = json_string_value(v);
    }
    for (i = 0; i < n; i++) {
        argslen[i] = strlen(args[i]);
    }
    p->store_pending = 1;
    store_eval(p->app->store, p->app->lua_begin, nk, n, args, argslen, place_on_begin, p);
}

/* ---- the handler --------------------------------------------------------- */

/* The rule for this call (before anything is stored): 0, or the answer's status. */
static int
place_match(struct place *p, json_t *body, int64_t at_ms, json_t *why, const char **slug,
            const char **detail)
{
    const char *type = callrec_field(p->fields, "type");
    const char *keys[32], *values[32];
    json_t *tags = json_object_get(body, "tags"), *v;
    const char *k;
    struct route_call rc;
    size_t n = 0;

    p->needs = strcmp(type, "inbound") == 0     ? VENDOR_CAP_INBOUND
               : strcmp(type, "scheduled") == 0 ? VENDOR_CAP_SCHEDULED
                                                : VENDOR_CAP_OUTBOUND;
    json_object_foreach(json_is_object(tags) ? tags : NULL, k, v) {
        if (n < 32 && json_is_string(v)) {
            keys[n] = k;
            values[n++] = json_string_value(v);
        }
    }
    memset(&rc, 0, sizeof(rc));
    rc.tenant = p->tenant->id;
    rc.to = p->to;
    rc.from = p->from[0] != '\0' ? p->from : NULL;
    rc.type = type;
    rc.tag_keys = keys;
    rc.tag_values = values;
    rc.ntags = n;
    rc.needs = p->needs;
    rc.at_ms = at_ms;
    p->routes = routes_ref(p->app->routes);
    p->rule = routes_match(p->routes, &rc, why);
    if (p->rule == NULL && p->pinned[0] == '\0') {
        *slug = "no-route";
        *detail = "no routing rule matches this call";
        return 503;
    }
    if (p->rule != NULL) {
        json_object_set_new(p->fields, "route", json_string(p->rule->name));
    }
    return 0;
}

/* Candidates in order, from the rule, the agent and the in-flight counts. */
static void
place_decide(struct place *p)
{
    const char *slug = NULL, *detail = NULL;
    struct decide_input in;
    struct decide_output out;
    size_t i;
    int code;

    memset(&in, 0, sizeof(in));
    in.tenant = p->tenant;
    in.rule = p->rule;
    in.pinned = p->pinned[0] != '\0' ? p->pinned : NULL;
    in.needs = p->needs;
    in.call_id = p->call_id;
    in.agent = p->agent;
    in.raw_agent = p->agent == NULL ? callrec_field(p->fields, "agent") : NULL;
    in.inflight = p->have_inflight ? p->inflight : NULL;
    in.breaker = p->app->breaker;
    in.now_ms = util_now_ms();
    in.quiet = 1;
    code = decide(&in, &out, &slug, &detail);
    for (i = 0; code == 0 && i < out.n && i < CALLS_MAX_CANDIDATES; i++) {
        p->candidates[i] = out.vendors[i];
        p->identities[i] = out.identities[i];
        p->ncandidates = i + 1;
    }
    json_decref(out.considered);
    if (code != 0) {
        place_conclude(p, CALL_FAILED, code, slug, detail);
        return;
    }
    place_next(p);
}

/* least_busy: does this call need the vendors' in-flight counts? */
static int
place_wants_load(const struct place *p)
{
    return p->rule != NULL && p->pinned[0] == '\0' && p->rule->strategy == ROUTE_LEAST_BUSY;
}

/* Read every rule vendor's in-flight count with one MGET; cb gets the answer. */
static void
place_read_load(struct place *p, store_cb cb, void *arg)
{
    char keys[DECIDE_MAX_CANDIDATES * 4][200];
    const char *argv[DECIDE_MAX_CANDIDATES * 4 + 1];
    size_t i, n = 0;

    argv[n++] = "MGET";
    for (i = 0; i < p->rule->nvendors && i < DECIDE_MAX_CANDIDATES * 4; i++) {
        app_key(p->app, keys[i], sizeof(keys[i]), "inflight:%s", p->rule->vendors[i].name);
        argv[n++] = keys[i];
    }
    store_cmd_argv(p->app->store, (int)n, argv, NULL, cb, arg);
}

/* The MGET's answer into p->inflight; without it the rule's order stands. */
static void
place_take_load(struct place *p, enum store_result res, const struct redisReply *reply)
{
    size_t i;

    if (res == STORE_OK && reply->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i < reply->elements && i < DECIDE_MAX_CANDIDATES * 4; i++) {
            const struct redisReply *e = reply->element[i];
            long long v = e->type == REDIS_REPLY_STRING ? atoll(e->str) : 0;
            p->inflight[i] = v > 0 ? v : 0;
        }
        p->have_inflight = 1;
    }
}

static void
place_on_inflight(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct place *p = arg;

    p->store_pending = 0;
    if (p->r == NULL) {
        place_conclude(p, CALL_FAILED, 503, "store-unavailable", "store timeout");
        return;
    }
    place_take_load(p, res, reply);
    place_decide(p);
}

/* least_busy: read the in-flight counts first, then decide. */
static void
place_load(struct place *p)
{
    if (!place_wants_load(p)) {
        place_decide(p);
        return;
    }
    p->store_pending = 1;
    place_read_load(p, place_on_inflight, p);
}

/* The begin script took (or could not take) the call's agent. */
static void
place_took_agent(struct place *p, enum agents_result res, json_t *agent)
{
    const char *id;

    if (res == AGENTS_OK) {
        p->agent = json_incref(agent);
        p->agent_reserved = 1;
        id = json_string_value(json_object_get(agent, "id"));
        if (id != NULL) {
            json_object_set_new(p->fields, "agent", json_string(id));
        }
    }
    if (p->r == NULL) { /* the deadline answered: give everything back */
        place_conclude(p, CALL_FAILED, 503, "store-unavailable", "store timeout");
        return;
    }
    switch (res) {
    case AGENTS_OK:
        place_load(p);
        return;
    case AGENTS_NOT_FOUND:
        if (p->agent_group[0] == '\0' && p->tenant->agents_pass_through) {
            place_load(p); /* the id goes to the vendors as it is */
            return;
        }
        place_conclude(p, CALL_FAILED, 404, "not-found",
                       p->agent_group[0] != '\0' ? "unknown agent group" : "unknown agent");
        return;
    case AGENTS_UNAVAILABLE:
        place_conclude(p, CALL_FAILED, 503, "no-agent-available",
                       p->agent_group[0] != '\0' ? "no agent of this group is available"
                                                 : "the agent is not available");
        return;
    default:
        place_conclude(p, CALL_FAILED, 503, "store-unavailable",
                       "the agent directory is not reachable");
        return;
    }
}

/* The matched rule (not a pinned vendor) wants the agent available. */
static int
place_needs_available(const struct place *p)
{
    return p->rule != NULL && p->pinned[0] == '\0' && p->rule->require_agent_available;
}

/* After begin said "new": what became of the agent step (its answer in reply). */
static void
place_after_begin(struct place *p, const struct redisReply *reply)
{
    json_t *agent = NULL;
    enum agents_result res;

    if (p->agent_step.op == NULL) {
        if (p->agent_invalid) {
            place_took_agent(p, AGENTS_NOT_FOUND, NULL);
        } else if (p->r == NULL) {
            place_conclude(p, CALL_FAILED, 503, "store-unavailable", "store timeout");
        } else {
            place_load(p);
        }
        return;
    }
    res = reply->elements >= 2
              ? agents_place_result(reply->element[1],
                                    reply->elements >= 3 ? reply->element[2] : NULL, &agent)
              : AGENTS_STORE_ERROR;
    place_took_agent(p, res, agent);
    json_decref(agent);
}

void
calls_create(struct front_req *r)
{
    struct place *p = place_alloc();
    json_error_t jerr;
    json_t *body, *errors;
    const char *idem = front_header(r, "Idempotency-Key"), *slug, *detail;
    char created[UTIL_TIME_LEN], *canon;
    int code;

    if (p == NULL) {
        front_problem(r, 500, "internal", "out of memory", NULL);
        return;
    }
    p->r = r;
    p->app = r->app;
    p->conf = conf_ref(r->conf);
    p->tenant = r->tenant;
    p->fields = json_object();
    p->attempts = json_array();
    r->ctx = p;
    r->on_deadline = place_on_deadline;

    body = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (body == NULL || !json_is_object(body)) {
        char msg[256];
        snprintf(msg, sizeof(msg), "the body must be a JSON object%s%s", body ? "" : ": ",
                 body ? "" : jerr.text);
        json_decref(body);
        errors = json_array();
        problem_add_error(errors, "body", msg);
        place_fail(p, 400, "validation", "the request body is not valid JSON", errors, NULL);
        return;
    }
    errors = json_array();
    calls_validate(p, body, errors);
    if (idem != NULL) {
        size_t i, n = strlen(idem);
        int ok = n > 0 && n <= 255;
        for (i = 0; ok && i < n; i++) {
            ok = idem[i] > 0x20 && idem[i] < 0x7f;
        }
        if (!ok) {
            problem_add_error(errors, "Idempotency-Key",
                              "must be 1 to 255 visible ASCII characters");
        }
    }
    if (json_array_size(errors) > 0) {
        json_decref(body);
        place_fail(p, 400, "validation", "the request has invalid fields; see errors", errors,
                   NULL);
        return;
    }
    json_decref(errors);
    code = place_match(p, body, util_now_ms(), NULL, &slug, &detail);
    if (code != 0) {
        json_decref(body);
        place_fail(p, code, slug, detail, NULL, code == 503 ? "5" : NULL);
        return;
    }
    canon = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    crypto_sha256_hex(canon != NULL ? canon : "", canon != NULL ? strlen(canon) : 0, p->fp);
    free(canon);
    json_decref(body);
    if (idem != NULL) {
        char h[CRYPTO_SHA256_HEX_LEN + 1];
        crypto_sha256_hex(idem, strlen(idem), h);
        app_key(p->app, p->idem_key, sizeof(p->idem_key), "idem:%s:%s", p->tenant->id, h);
    }
    crypto_new_id("call", p->call_id, sizeof(p->call_id));
    util_strlcpy(r->log_call_id, p->call_id, sizeof(r->log_call_id));
    util_rfc3339(util_now_ms(), created, sizeof(created));
    json_object_set_new(p->fields, "id", json_string(p->call_id));
    json_object_set_new(p->fields, "tenant", json_string(p->tenant->id));
    json_object_set_new(p->fields, "to", json_string(p->to));
    if (p->from[0] != '\0') {
        json_object_set_new(p->fields, "from", json_string(p->from));
    }
    json_object_set_new(p->fields, "created_at", json_string(created));
    json_object_set_new(p->fields, "status", json_string("unknown"));
    json_object_set_new(p->fields, "rank", json_string("-1"));
    json_object_set_new(p->fields, "attempts", json_string("[]"));
    place_begin(p);
}

/* ---- GET /v1/calls/{id} -------------------------------------------------- */

struct lookup {
    struct front_req *r;          /* NULL after the deadline answered */
    const char *refresh;          /* Callgate-Refresh header value, or NULL */
    int pending;
    json_t *fields;
    json_t *events;
    int failed;
};

static void
lookup_finish(struct lookup *l)
{
    struct front_req *r = l->r;
    json_t *call;
    const char *tenant;

    if (--l->pending > 0) {
        return;
    }
    if (r != NULL) {
        r->on_deadline = NULL;
        if (l->failed) {
            front_problem_ex(r, 503, "store-unavailable", "the call store is not reachable",
                             NULL, NULL, (const char *const[]){"Retry-After", "1", NULL});
        } else if (l->fields == NULL ||
                   (tenant = callrec_field(l->fields, "tenant")) == NULL ||
                   strcmp(tenant, r->tenant->id) != 0) {
            front_problem(r, 404, "not-found", "no call with this id", NULL);
        } else {
            call = callrec_render(l->fields, NULL, 1);
            json_object_set_new(call, "events",
                                l->events != NULL ? json_incref(l->events) : json_array());
            front_reply_json(r, 200, call,
                             l->refresh != NULL
                                 ? (const char *const[]){"Callgate-Refresh", l->refresh, NULL}
                                 : NULL);
        }
    }
    json_decref(l->fields);
    json_decref(l->events);
    free(l);
}

static void
lookup_on_hash(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct lookup *l = arg;

    if (res != STORE_OK) {
        l->failed = 1;
    } else {
        l->fields = callrec_fields_from_reply(reply, 0);
    }
    lookup_finish(l);
}

static void
lookup_on_events(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct lookup *l = arg;
    size_t i;

    if (res != STORE_OK) {
        l->failed = 1;
    } else if (reply->type == REDIS_REPLY_ARRAY) {
        l->events = json_array();
        for (i = 0; i < reply->elements; i++) {
            json_t *e = reply->element[i]->type == REDIS_REPLY_STRING
                            ? json_loads(reply->element[i]->str, 0, NULL)
                            : NULL;
            if (e != NULL) {
                json_array_append_new(l->events, e);
            }
        }
    }
    lookup_finish(l);
}

static void
lookup_on_deadline(struct front_req *r)
{
    struct lookup *l = r->ctx;

    l->r = NULL;
    front_problem(r, 503, "store-unavailable", "the call store did not answer in time", NULL);
}

/* A call id as callgate mints them: letters, digits and '_', 1 to 64. */
int
calls_id_ok(const char *id, size_t n)
{
    size_t i;

    if (n == 0 || n > 64) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!isalnum((unsigned char)id[i]) && id[i] != '_') {
            return 0;
        }
    }
    return 1;
}

void
calls_reply_call(struct front_req *r, const char *id, const char *refresh)
{
    char key[256], evkey[300];
    const char *argv[4];
    struct lookup *l = calloc(1, sizeof(*l));

    if (l == NULL) {
        front_problem(r, 500, "internal", "out of memory", NULL);
        return;
    }
    l->r = r;
    l->refresh = refresh;
    l->pending = 2;
    r->ctx = l;
    r->on_deadline = lookup_on_deadline;
    app_key(r->app, key, sizeof(key), "call:%s", id);
    app_key(r->app, evkey, sizeof(evkey), "call:%s:events", id);
    argv[0] = "HGETALL";
    argv[1] = key;
    store_cmd_argv(r->app->store, 2, argv, NULL, lookup_on_hash, l);
    argv[0] = "LRANGE";
    argv[1] = evkey;
    argv[2] = "0";
    argv[3] = "-1";
    store_cmd_argv(r->app->store, 4, argv, NULL, lookup_on_events, l);
}

void
calls_get(struct front_req *r)
{
    const char *id = r->path + strlen("/v1/calls/");
    struct evkeyvalq q;
    struct evkeyval *kv;
    json_t *errors = json_array();
    int refresh = 0;

    if (!calls_id_ok(id, strlen(id))) {
        json_decref(errors);
        front_problem(r, 404, "not-found", "no call with this id", NULL);
        return;
    }
    TAILQ_INIT(&q);
    if (r->query != NULL && evhttp_parse_query_str(r->query, &q) != 0) {
        problem_add_error(errors, "query", "is not a valid query string");
    }
    TAILQ_FOREACH(kv, &q, next) {
        if (strcmp(kv->key, "refresh") != 0) {
            problem_add_error(errors, kv->key, "unknown query parameter");
        } else if (strcmp(kv->value, "true") == 0) {
            refresh = 1;
        } else if (strcmp(kv->value, "false") != 0) {
            problem_add_error(errors, "refresh", "must be true or false");
        }
    }
    evhttp_clear_headers(&q);
    if (json_array_size(errors) > 0) {
        front_problem(r, 400, "validation", "the query has invalid parameters; see errors",
                      errors);
        return;
    }
    json_decref(errors);
    util_strlcpy(r->log_call_id, id, sizeof(r->log_call_id));
    if (refresh) {
        callctl_refresh(r, id);
    } else {
        calls_reply_call(r, id, NULL);
    }
}

/* ---- GET /v1/calls ------------------------------------------------------- */

#define CALLS_LIST_DEFAULT 50
#define CALLS_LIST_MAX 200
#define CALLS_LIST_EXAMINE 2000 /* records one page may look at when filtering */

struct listing {
    struct front_req *r;          /* NULL after the deadline answered */
};

static void
listing_on_deadline(struct front_req *r)
{
    struct listing *l = r->ctx;

    l->r = NULL;
    front_problem(r, 503, "store-unavailable", "the call store did not answer in time", NULL);
}

static void
listing_on_reply(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct listing *l = arg;
    struct front_req *r = l->r;
    json_t *data, *out;
    const struct redisReply *recs, *next;
    size_t i;

    free(l);
    if (r == NULL) {
        return;
    }
    r->on_deadline = NULL;
    if (res != STORE_OK || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_ARRAY ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
        front_problem_ex(r, 503, "store-unavailable", "the call store is not reachable", NULL,
                         NULL, (const char *const[]){"Retry-After", "1", NULL});
        return;
    }
    recs = reply->element[0];
    next = reply->element[1];
    data = json_array();
    for (i = 0; i < recs->elements; i++) {
        json_t *fields = callrec_fields_from_reply(recs->element[i], 0);
        json_t *call = fields != NULL ? callrec_render(fields, NULL, 1) : NULL;
        if (call != NULL) {
            json_array_append_new(data, call);
        }
        json_decref(fields);
    }
    out = json_object();
    json_object_set_new(out, "data", data);
    json_object_set_new(out, "next_cursor", next->len > 0 ? json_string(next->str) : json_null());
    front_reply_json(r, 200, out, NULL);
}

/* A cursor is "<created ms>.<call id>", as the list script returns it. */
static int
calls_parse_cursor(const char *s, char *score, size_t slen, char *id, size_t idlen)
{
    const char *dot = strchr(s, '.');
    size_t i, n;
    long v;

    if (dot == NULL || (size_t)(dot - s) >= slen || strlen(dot + 1) == 0 ||
        strlen(dot + 1) >= idlen) {
        return -1;
    }
    memcpy(score, s, (size_t)(dot - s));
    score[dot - s] = '\0';
    if (util_parse_long(score, 0, 0x7fffffffffffL, &v) != 0) {
        return -1;
    }
    n = strlen(dot + 1);
    for (i = 0; i < n; i++) {
        if (!isalnum((unsigned char)dot[1 + i]) && dot[1 + i] != '_') {
            return -1;
        }
    }
    memcpy(id, dot + 1, n + 1);
    return 0;
}

void
calls_list(struct front_req *r)
{
    struct evkeyvalq q;
    struct evkeyval *kv;
    char key[256], prefix[128], limit_s[16], examine[16], score[24] = "+inf", cid[72] = "";
    const char *status = "", *reference = "", *args[8];
    enum call_status st;
    struct listing *l;
    long limit = CALLS_LIST_DEFAULT;
    json_t *errors = json_array();

    TAILQ_INIT(&q);
    if (r->query != NULL && evhttp_parse_query_str(r->query, &q) != 0) {
        problem_add_error(errors, "query", "is not a valid query string");
    }
    TAILQ_FOREACH(kv, &q, next) {
        if (strcmp(kv->key, "limit") == 0) {
            if (util_parse_long(kv->value, 1, CALLS_LIST_MAX, &limit) != 0) {
                problem_add_error(errors, "limit", "must be an integer from 1 to 200");
            }
        } else if (strcmp(kv->key, "cursor") == 0) {
            if (calls_parse_cursor(kv->value, score, sizeof(score), cid, sizeof(cid)) != 0) {
                problem_add_error(errors, "cursor", "is not a cursor this API returned");
            }
        } else if (strcmp(kv->key, "status") == 0) {
            if (call_status_parse(kv->value, &st) != 0) {
                problem_add_error(errors, "status", "is not a call status");
            } else {
                status = call_status_text[st];
            }
        } else if (strcmp(kv->key, "reference") == 0) {
            if (kv->value[0] == '\0' || strlen(kv->value) > 255) {
                problem_add_error(errors, "reference", "must be 1 to 255 characters");
            }
            reference = kv->value;
        } else {
            problem_add_error(errors, kv->key, "unknown query parameter");
        }
    }
    if (json_array_size(errors) > 0) {
        evhttp_clear_headers(&q);
        front_problem(r, 400, "validation", "the query has invalid parameters; see errors",
                      errors);
        return;
    }
    json_decref(errors);
    l = calloc(1, sizeof(*l));
    if (l == NULL) {
        evhttp_clear_headers(&q);
        front_problem(r, 500, "internal", "out of memory", NULL);
        return;
    }
    l->r = r;
    r->ctx = l;
    r->on_deadline = listing_on_deadline;
    app_key(r->app, key, sizeof(key), "calls:%s", r->tenant->id);
    app_key(r->app, prefix, sizeof(prefix), "call:");
    snprintf(limit_s, sizeof(limit_s), "%ld", limit);
    snprintf(examine, sizeof(examine), "%d", CALLS_LIST_EXAMINE);
    args[0] = key;
    args[1] = prefix;
    args[2] = score;
    args[3] = cid;
    args[4] = limit_s;
    args[5] = status;
    args[6] = reference;
    args[7] = examine;
    store_eval(r->app->store, r->app->lua_list, 1, 8, args, NULL, listing_on_reply, l);
    evhttp_clear_headers(&q);
}

/* ---- POST /admin/routes/explain ----------------------------------------- */

/*
 * The decision for a call request, without placing it: the rule (and the
 * rules passed over, with why), every vendor considered with why it was kept
 * or dropped, and the final order. Nothing is written anywhere. The agent's
 * availability and the in-flight counts are read as placement would read
 * them; agent claims for agent_group are not made.
 */
struct explain {
    struct front_req *r;
    struct place *p;
    json_t *out;
};

static void explain_reply(struct explain *e);

static void
explain_finish(struct explain *e)
{
    struct place *p = e->p;
    const char *slug = NULL, *detail = NULL;
    struct decide_input in;
    struct decide_output out;
    json_t *order = json_array();
    size_t i;
    int code;

    memset(&in, 0, sizeof(in));
    in.tenant = p->tenant;
    in.rule = p->rule;
    in.pinned = p->pinned[0] != '\0' ? p->pinned : NULL;
    in.needs = p->needs;
    in.call_id = "call_explain";
    in.agent = p->agent;
    in.raw_agent = p->agent == NULL ? callrec_field(p->fields, "agent") : NULL;
    in.inflight = p->have_inflight ? p->inflight : NULL;
    in.breaker = p->app->breaker;
    in.now_ms = util_now_ms();
    code = decide(&in, &out, &slug, &detail);
    for (i = 0; code == 0 && i < out.n; i++) {
        json_array_append_new(order, json_string(out.vendors[i]));
    }
    json_object_set_new(e->out, "vendors", out.considered);
    json_object_set_new(e->out, "order", order);
    json_object_set_new(e->out, "result",
                        code == 0 ? json_pack("{s:i, s:s}", "status", 201, "vendor",
                                              out.vendors[0])
                                  : json_pack("{s:i, s:s, s:s}", "status", code, "problem",
                                              slug, "detail", detail));
    explain_reply(e);
}

static void
explain_reply(struct explain *e)
{
    if (e->r != NULL) {
        e->r->on_deadline = NULL;
        front_reply_json(e->r, 200, e->out, NULL);
    } else {
        json_decref(e->out);
    }
    place_free(e->p);
    free(e);
}

static void
explain_on_deadline(struct front_req *r)
{
    struct explain *e = r->ctx;

    e->r = NULL;
    front_problem(r, 503, "store-unavailable", "the store did not answer in time", NULL);
}

static void
explain_on_inflight(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct explain *e = arg;

    place_take_load(e->p, res, reply);
    explain_finish(e);
}

/* least_busy: the in-flight counts placement would read, then the decision. */
static void
explain_load(struct explain *e)
{
    if (!place_wants_load(e->p)) {
        explain_finish(e);
        return;
    }
    place_read_load(e->p, explain_on_inflight, e);
}

static void
explain_on_agent(enum agents_result res, json_t *agent, void *arg)
{
    struct explain *e = arg;
    struct place *p = e->p;
    const char *status = json_string_value(json_object_get(agent, "status"));
    int need = place_needs_available(p);

    if (res == AGENTS_OK) {
        p->agent = json_incref(agent);
        json_object_set_new(e->out, "agent", json_incref(agent));
        if (need && (status == NULL || strcmp(status, "available") != 0)) {
            json_object_set_new(e->out, "vendors", json_array());
            json_object_set_new(e->out, "order", json_array());
            json_object_set_new(e->out, "result",
                                json_pack("{s:i, s:s, s:s}", "status", 503, "problem",
                                          "no-agent-available", "detail",
                                          "the rule requires the agent to be available"));
            explain_reply(e);
            return;
        }
    } else if (res == AGENTS_NOT_FOUND && !p->tenant->agents_pass_through) {
        json_object_set_new(e->out, "vendors", json_array());
        json_object_set_new(e->out, "order", json_array());
        json_object_set_new(e->out, "result", json_pack("{s:i, s:s, s:s}", "status", 404,
                                                        "problem", "not-found", "detail",
                                                        "unknown agent"));
        explain_reply(e);
        return;
    } else if (res == AGENTS_STORE_ERROR) {
        json_object_set_new(e->out, "agent", json_pack("{s:s}", "error",
                                                       "the agent directory is not reachable"));
    }
    explain_load(e);
}

void
calls_explain(struct front_req *r)
{
    static const char *const keys[] = {"tenant", "call", "at", NULL};
    const char *slug = NULL, *detail = NULL, *key;
    json_error_t jerr;
    json_t *body, *errors, *call, *v, *why;
    struct explain *e;
    struct place *p;
    int64_t at = util_now_ms();
    size_t i;
    int code;

    body = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    errors = json_array();
    if (!json_is_object(body)) {
        problem_add_error(errors, "body", body == NULL ? jerr.text : "must be a JSON object");
        json_decref(body);
        front_problem(r, 400, "validation", "the request body is not valid JSON", errors);
        return;
    }
    json_object_foreach(body, key, v) {
        int known = 0;
        for (i = 0; keys[i] != NULL; i++) {
            known |= strcmp(key, keys[i]) == 0;
        }
        if (!known) {
            problem_add_error(errors, key, "unknown field");
        }
    }
    v = json_object_get(body, "at");
    if (v != NULL && (!json_is_string(v) || util_parse_time(json_string_value(v), NULL, &at))) {
        problem_add_error(errors, "at", "must be an RFC 3339 time");
    }
    v = json_object_get(body, "tenant");
    call = json_object_get(body, "call");
    p = calloc(1, sizeof(*p));
    e = calloc(1, sizeof(*e));
    if (p == NULL || e == NULL) {
        free(p);
        free(e);
        json_decref(body);
        json_decref(errors);
        front_problem(r, 500, "internal", "out of memory", NULL);
        return;
    }
    p->app = r->app;
    p->conf = conf_ref(r->conf);
    p->fields = json_object();
    p->attempts = json_array();
    p->tenant = json_is_string(v) ? conf_tenant_find(r->conf, json_string_value(v)) : NULL;
    if (p->tenant == NULL) {
        problem_add_error(errors, "tenant", "must name a configured tenant");
    } else if (!json_is_object(call)) {
        problem_add_error(errors, "call", "must be a POST /v1/calls body (an object)");
    } else {
        json_t *cerr = json_array(), *x;
        calls_validate(p, call, cerr);
        json_array_foreach(cerr, i, x) {
            char field[96];
            snprintf(field, sizeof(field), "call.%s",
                     json_string_value(json_object_get(x, "field")));
            problem_add_error(errors, field,
                              json_string_value(json_object_get(x, "message")));
        }
        json_decref(cerr);
    }
    if (json_array_size(errors) > 0) {
        json_decref(body);
        place_free(p);
        free(e);
        front_problem(r, 400, "validation", "the request has invalid fields; see errors", errors);
        return;
    }
    json_decref(errors);
    why = json_array();
    code = place_match(p, call, at, why, &slug, &detail);
    json_decref(body);
    {
        char when[UTIL_TIME_LEN];
        util_rfc3339(at, when, sizeof(when));
        e->out = json_pack("{s:s, s:s, s:s, s:o, s:o}", "tenant", p->tenant->id, "at", when,
                           "routes_version", p->routes->version, "rule",
                           p->rule != NULL
                               ? json_pack("{s:s, s:s, s:s, s:b}", "name", p->rule->name, "file",
                                           p->rule->file, "strategy",
                                           route_strategy_text[p->rule->strategy],
                                           "require_agent_available",
                                           p->rule->require_agent_available)
                               : json_null(),
                           "rules_passed_over", why);
    }
    e->r = r;
    e->p = p;
    if (code != 0) {
        json_object_set_new(e->out, "vendors", json_array());
        json_object_set_new(e->out, "order", json_array());
        json_object_set_new(e->out, "result", json_pack("{s:i, s:s, s:s}", "status", code,
                                                        "problem", slug, "detail", detail));
        front_reply_json(r, 200, e->out, NULL);
        place_free(p);
        free(e);
        return;
    }
    r->ctx = e;
    r->on_deadline = explain_on_deadline;
    if (p->agent_group[0] != '\0') {
        json_object_set_new(e->out, "agent",
                            json_pack("{s:s, s:s}", "agent_group", p->agent_group, "note",
                                      "placement claims the group's longest-idle available "
                                      "agent; identities are checked once it is known"));
        explain_load(e);
    } else if (callrec_field(p->fields, "agent") != NULL) {
        agents_lookup(p->app, p->tenant->id, callrec_field(p->fields, "agent"),
                      explain_on_agent, e);
    } else {
        explain_load(e);
    }
}
