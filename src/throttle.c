/*
 * limits.c: tenant rate limits and vendor caps (token buckets and leases in
 * Redis, one script), and the per-replica retry budget. See throttle.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "app.h"
#include "cglog.h"
#include "conf.h"
#include "crypto.h"
#include "front.h"
#include "gw.h"
#include "metrics.h"
#include "throttle.h"
#include "store.h"
#include "util.h"

/*
 * KEYS: nb token buckets (hashes {tokens, at}), then optionally one
 * concurrency set (member -> lease expiry, ms).
 * ARGV: nb, then rate_per_s and burst per bucket, then (with the set) the
 * cap, the lease member and its ttl in ms.
 * Answer: {1, "ok", 0} when every bucket had a token and the set a free
 * slot (all taken), else {0, "rate"|"concurrency", retry_ms} (nothing taken).
 * Redis's own clock, so replicas on hosts whose clocks differ agree.
 */
const char throttle_lua_take[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local nb = tonumber(ARGV[1])\n"
    "local tok, at, wait = {}, {}, 0\n"
    "for i = 1, nb do\n"
    "  local rate, burst = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])\n"
    "  local h = redis.call('HMGET', KEYS[i], 'tokens', 'at')\n"
    "  local have, last = tonumber(h[1]), tonumber(h[2])\n"
    "  if have == nil or last == nil then have, last = burst, now end\n"
    "  if now > last then\n"
    "    have = math.min(burst, have + (now - last) * rate / 1000)\n"
    "    last = now\n"
    "  end\n"
    "  tok[i], at[i] = have, last\n"
    "  if have < 1 then\n"
    "    local w = math.ceil((1 - have) * 1000 / rate)\n"
    "    if w > wait then wait = w end\n"
    "  end\n"
    "end\n"
    "if wait > 0 then return {0, 'rate', wait} end\n"
    "local set = KEYS[nb + 1]\n"
    "if set then\n"
    "  local a = 2 * nb + 2\n"
    "  local cap, member, ttl = tonumber(ARGV[a]), ARGV[a + 1], tonumber(ARGV[a + 2])\n"
    "  redis.call('ZREMRANGEBYSCORE', set, '-inf', now)\n"
    "  if redis.call('ZCARD', set) >= cap then return {0, 'concurrency', 100} end\n"
    "  redis.call('ZADD', set, now + ttl, member)\n"
    "  redis.call('PEXPIRE', set, ttl)\n"
    "end\n"
    "for i = 1, nb do\n"
    "  local rate, burst = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])\n"
    "  redis.call('HSET', KEYS[i], 'tokens', tostring(tok[i] - 1), 'at', tostring(at[i]))\n"
    "  redis.call('PEXPIRE', KEYS[i], math.ceil(burst * 1000 / rate) + 1000)\n"
    "end\n"
    "return {1, 'ok', 0}\n";

const char *const throttle_verdict_text[] = {"ok", "concurrency", "rate"};

/* Parse the script's answer: 1 taken, 0 refused (*verdict, *retry_ms), -1 unusable. */
static int
throttle_answer(const struct redisReply *reply, enum throttle_verdict *verdict, long *retry_ms)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_STRING ||
        reply->element[2]->type != REDIS_REPLY_INTEGER) {
        return -1;
    }
    if (reply->element[0]->integer == 1) {
        return 1;
    }
    *verdict =
        strcmp(reply->element[1]->str, "concurrency") == 0 ? THROTTLE_CONCURRENCY : THROTTLE_RATE;
    *retry_ms = (long)reply->element[2]->integer;
    return 0;
}

/* ---- tenant rate limits -------------------------------------------------- */

int
throttle_tenant_applies(const struct conf_tenant *t, int is_call)
{
    return t->rate_limit.requests_per_s > 0 || (is_call && t->rate_limit.calls_per_s > 0);
}

struct throttle_wait {
    struct front_req *r; /* NULL once the deadline answered */
    void (*handler)(struct front_req *r);
};

static void
throttle_on_deadline(struct front_req *r)
{
    struct throttle_wait *w = r->ctx;

    w->r = NULL;
    r->ctx = NULL;
    r->on_deadline = NULL;
    front_problem_ex(r, 503, "store-unavailable", "the rate limiter did not answer in time", NULL,
                     NULL, (const char *const[]){"Retry-After", "1", NULL});
}

static void
throttle_on_tenant(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct throttle_wait *w = arg;
    struct front_req *r = w->r;
    void (*handler)(struct front_req *r) = w->handler;
    enum throttle_verdict verdict = THROTTLE_RATE;
    long retry_ms = 1000;
    int taken;

    free(w);
    if (r == NULL) {
        return;
    }
    r->ctx = NULL;
    r->on_deadline = NULL;
    taken = res == STORE_OK ? throttle_answer(reply, &verdict, &retry_ms) : -1;
    if (taken < 0) {
        cglog_warn("rate_limit_unchecked", "{s:s, s:s, s:s}", "request_id", r->request_id, "tenant",
                   r->tenant->id, "result", store_result_text[res]);
    } else if (taken == 0) {
        char after[24], detail[160];
        snprintf(after, sizeof(after), "%ld", retry_ms < 1000 ? 1 : (retry_ms + 999) / 1000);
        snprintf(detail, sizeof(detail), "this API key is over its rate limit; retry after %s s",
                 after);
        cglog_info("rate_limited", "{s:s, s:s, s:i}", "request_id", r->request_id, "tenant",
                   r->tenant->id, "retry_ms", (int)retry_ms);
        metrics_rate_limited(r->tenant->id);
        front_problem_ex(r, 429, "rate-limited", detail, NULL, NULL,
                         (const char *const[]){"Retry-After", after, NULL});
        return;
    }
    handler(r);
}

void
throttle_tenant_check(struct front_req *r, int is_call, void (*handler)(struct front_req *r))
{
    const struct conf_tenant *t = r->tenant;
    struct throttle_wait *w = malloc(sizeof(*w));
    struct {
        const char *name;
        double per_s, burst;
    } b[2];
    char keys[2][200], nums[4][32], nb[4];
    const char *args[7];
    int n = 0, i, a = 0;

    if (w == NULL) {
        handler(r);
        return;
    }
    if (t->rate_limit.requests_per_s > 0) {
        b[n].name = "requests";
        b[n].per_s = t->rate_limit.requests_per_s;
        b[n++].burst = t->rate_limit.burst;
    }
    if (is_call && t->rate_limit.calls_per_s > 0) {
        b[n].name = "calls";
        b[n].per_s = t->rate_limit.calls_per_s;
        b[n++].burst = t->rate_limit.calls_burst;
    }
    /* The script's order: the bucket keys, their count, then rate and burst of each. */
    for (i = 0; i < n; i++) {
        args[a++] = app_key(r->app, keys[i], sizeof(keys[i]), "rl:%s:%s", t->id, b[i].name);
    }
    snprintf(nb, sizeof(nb), "%d", n);
    args[a++] = nb;
    for (i = 0; i < n; i++) {
        snprintf(nums[2 * i], sizeof(nums[0]), "%.6g", b[i].per_s);
        snprintf(nums[2 * i + 1], sizeof(nums[0]), "%.6g", b[i].burst);
        args[a++] = nums[2 * i];
        args[a++] = nums[2 * i + 1];
    }
    w->r = r;
    w->handler = handler;
    r->ctx = w;
    r->on_deadline = throttle_on_deadline;
    store_eval(r->app->store, r->app->lua_throttle, n, a, args, NULL, throttle_on_tenant, w);
}

/* ---- vendor caps --------------------------------------------------------- */

int
throttle_vendor_applies(const struct conf_vendor *cv)
{
    return cv != NULL && (cv->max_concurrent > 0 || cv->max_calls_per_s > 0);
}

struct throttle_acquire {
    throttle_vendor_cb cb;
    void *arg;
    char vendor[64];
};

static void
throttle_on_vendor(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct throttle_acquire *a = arg;
    enum throttle_verdict verdict = THROTTLE_OK;
    long retry_ms = 0;
    int taken = res == STORE_OK ? throttle_answer(reply, &verdict, &retry_ms) : -1;

    if (taken < 0) {
        cglog_warn("vendor_cap_unchecked", "{s:s, s:s}", "vendor", a->vendor, "result",
                   store_result_text[res]);
    }
    if (taken != 0) { /* taken, or unchecked: fail open */
        verdict = THROTTLE_OK;
    }
    a->cb(verdict, retry_ms, a->arg);
    free(a);
}

void
throttle_vendor_acquire(struct app *app, const struct conf_vendor *cv, const char *api_key,
                        struct throttle_lease *lease, throttle_vendor_cb cb, void *arg)
{
    struct throttle_acquire *a = calloc(1, sizeof(*a));
    char account[CRYPTO_SHA256_HEX_LEN + 1], rkey[200], nums[2][32], cap[24], ttl[24];
    const char *args[9];
    int n = 0, nk = 0;

    lease->key[0] = '\0';
    if (a == NULL) {
        cb(THROTTLE_OK, 0, arg); /* fail open, as for a store error */
        return;
    }
    /* The account: a short hash of the credential, never the credential. */
    crypto_sha256_hex(api_key != NULL ? api_key : "", api_key != NULL ? strlen(api_key) : 0,
                      account);
    account[16] = '\0';
    if (cv->max_calls_per_s > 0) {
        app_key(app, rkey, sizeof(rkey), "vcap:%s:%s:rate", cv->name, account);
        args[nk++] = rkey;
    }
    if (cv->max_concurrent > 0) {
        app_key(app, lease->key, sizeof(lease->key), "vcap:%s:%s:inflight", cv->name, account);
        args[nk++] = lease->key;
    }
    n = nk;
    args[n++] = cv->max_calls_per_s > 0 ? "1" : "0";
    if (cv->max_calls_per_s > 0) {
        snprintf(nums[0], sizeof(nums[0]), "%.6g", cv->max_calls_per_s);
        snprintf(nums[1], sizeof(nums[1]), "%.6g", cv->calls_burst);
        args[n++] = nums[0];
        args[n++] = nums[1];
    }
    if (cv->max_concurrent > 0) {
        /* A lease outlives the longest attempt, so only a dead replica's expires. */
        snprintf(cap, sizeof(cap), "%ld", cv->max_concurrent);
        snprintf(ttl, sizeof(ttl), "%ld", cv->timeout_ms + cv->connect_timeout_ms + 5000);
        args[n++] = cap;
        args[n++] = lease->member;
        args[n++] = ttl;
    }
    a->cb = cb;
    a->arg = arg;
    util_strlcpy(a->vendor, cv->name, sizeof(a->vendor));
    store_eval(app->store, app->lua_throttle, nk, n, args, NULL, throttle_on_vendor, a);
}

static void
throttle_on_released(enum store_result res, const struct redisReply *reply, void *arg)
{
    (void)reply;
    (void)arg;
    if (res != STORE_OK) {
        /* The lease expires by itself. */
        cglog_debug("vendor_cap_release_failed", "{s:s}", "result", store_result_text[res]);
    }
}

void
throttle_vendor_release(struct app *app, struct throttle_lease *lease)
{
    const char *argv[3];

    if (lease->key[0] == '\0') {
        return;
    }
    argv[0] = "ZREM";
    argv[1] = lease->key;
    argv[2] = lease->member;
    store_cmd_argv(app->store, 3, argv, NULL, throttle_on_released, NULL);
    lease->key[0] = '\0';
}

/* ---- retry budget -------------------------------------------------------- */

#define BUDGET_SLOTS 60 /* one per second: the longest window */

struct retry_budget {
    int64_t slot_s[BUDGET_SLOTS]; /* which second each slot counts */
    long firsts[BUDGET_SLOTS];
    long retries[BUDGET_SLOTS];
};

struct retry_budget *
retry_budget_new(void)
{
    return calloc(1, sizeof(struct retry_budget));
}

void
retry_budget_free(struct retry_budget *b)
{
    free(b);
}

/* The slot of second s, emptied if it last counted another second. */
static int
budget_slot(struct retry_budget *b, int64_t s)
{
    int i = (int)(s % BUDGET_SLOTS);

    if (b->slot_s[i] != s) {
        b->slot_s[i] = s;
        b->firsts[i] = 0;
        b->retries[i] = 0;
    }
    return i;
}

void
retry_budget_first(struct retry_budget *b, int64_t now_ms)
{
    b->firsts[budget_slot(b, now_ms / 1000)]++;
}

int
retry_budget_take(struct retry_budget *b, const struct conf *c, int64_t now_ms)
{
    int64_t now_s = now_ms / 1000, s;
    long firsts = 0, retries = 0;
    int window = c->retry_budget.window_s;
    double allowed;

    for (s = now_s - window + 1; s <= now_s; s++) {
        int i = (int)(s % BUDGET_SLOTS);
        if (s >= 0 && b->slot_s[i] == s) {
            firsts += b->firsts[i];
            retries += b->retries[i];
        }
    }
    allowed = firsts * c->retry_budget.ratio_pct / 100.0 + c->retry_budget.min_per_s * window;
    if ((double)retries + 1 > allowed) {
        return 0;
    }
    b->retries[budget_slot(b, now_s)]++;
    return 1;
}
