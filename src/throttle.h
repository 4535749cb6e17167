/*
 * throttle.h: the protections that keep one tenant, or one bad minute, from
 * hurting everybody else.
 *
 *  - Tenant rate limits: token buckets in Redis, shared by every replica, taken
 *    in one atomic script per request (the server's clock, so replicas whose
 *    clocks disagree still agree). Every API request of a tenant takes from
 *    its "requests" bucket; a placement also takes from its "calls" bucket,
 *    and only when both have a token. Refused: 429 rate-limited with
 *    Retry-After. A tenant without a rate_limit costs no Redis command.
 *  - Vendor caps: per vendor account (the vendor and the credential in use, so
 *    tenants with their own CCAI account each get CCAI's 10 requests/s), at
 *    most max_concurrent placement requests outstanding and max_calls_per_s
 *    started, across replicas; a lease in a sorted set expires by itself if a
 *    replica dies holding it. A capped vendor is skipped like an open
 *    circuit: the call certainly did not reach it, so failover goes on.
 *  - Retry budget, per replica: failover attempts (a request sent to a
 *    second vendor for the same call) may add at most ratio_pct of the first
 *    attempts over a sliding window, plus min_per_s, so that an outage does
 *    not double the load on the vendors that are left before the circuit
 *    opens.
 *
 * When Redis cannot answer, limits fail open (logged): they protect capacity,
 * and a request that needs Redis for its own work fails on its own anyway.
 */
#ifndef CG_THROTTLE_H
#define CG_THROTTLE_H

#include <stdint.h>

struct app;
struct conf;
struct conf_tenant;
struct conf_vendor;
struct front_req;
struct store_script;

/* The Lua script of both checks (made once per app). */
extern const char throttle_lua_take[];

/* ---- tenant rate limits -------------------------------------------------- */

/* Does this tenant have a limit for this request (is_call: a placement)? */
int throttle_tenant_applies(const struct conf_tenant *t, int is_call);

/*
 * Take a token for r (whose tenant is authenticated), then run handler(r);
 * or answer 429 rate-limited with Retry-After. The request's deadline is
 * honoured while Redis is asked.
 */
void throttle_tenant_check(struct front_req *r, int is_call, void (*handler)(struct front_req *r));

/* ---- vendor caps --------------------------------------------------------- */

enum throttle_verdict { THROTTLE_OK = 0, THROTTLE_CONCURRENCY, THROTTLE_RATE };

extern const char *const throttle_verdict_text[];

/* Does this vendor have a cap? */
int throttle_vendor_applies(const struct conf_vendor *cv);

/*
 * A lease for one placement request at vendor cv with credential api_key
 * (NULL: none). member names the lease (unique per attempt). cb runs
 * exactly once, after this returns (at once only when out of memory), with
 * THROTTLE_OK (go: release the lease when the attempt ends) or the cap that
 * refused it, and retry_ms a hint. The lease is the caller's memory: keep
 * *lease until release.
 */
struct throttle_lease {
    char key[200]; /* the concurrency set, "" when the vendor has no concurrency cap */
    char member[80];
};

typedef void (*throttle_vendor_cb)(enum throttle_verdict v, long retry_ms, void *arg);

void throttle_vendor_acquire(struct app *app, const struct conf_vendor *cv, const char *api_key,
                             struct throttle_lease *lease, throttle_vendor_cb cb, void *arg);

/* The attempt ended: give the concurrency slot back (fire and forget). */
void throttle_vendor_release(struct app *app, struct throttle_lease *lease);

/* ---- retry budget -------------------------------------------------------- */

struct retry_budget;

struct retry_budget *retry_budget_new(void);
void retry_budget_free(struct retry_budget *b);

/* A call sent its first vendor request (it earns budget). */
void retry_budget_first(struct retry_budget *b, int64_t now_ms);

/*
 * A call wants to send another vendor request: 1 (taken) or 0 (the budget
 * under conf's retry_budget is spent).
 */
int retry_budget_take(struct retry_budget *b, const struct conf *c, int64_t now_ms);

#endif
