/*
 * test_throttle.c: the protections of throttle.h through real gateways: tenant
 * rate limits and vendor caps shared by two callgate processes on one Redis
 * (the sum of what both accept respects the limit), and the retry budget
 * that keeps failover from multiplying load while a vendor is down.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "helpers/gwtest.h"

static struct gwtest gw;
static struct proc replica;
static char replica_base[64];
static char routes_dir[256];

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
start(const char *patch, int with_replica, int failover_routes)
{
    struct gwtest_opts o = {0};

    if (failover_routes) {
        char path[400];
        FILE *f;
        cr_assert_eq(proc_tmpdir(routes_dir, sizeof(routes_dir)), 0);
        snprintf(path, sizeof(path), "%s/10-failover.json", routes_dir);
        f = fopen(path, "w");
        cr_assert_not_null(f);
        fputs("{\"rules\": [{\"name\": \"india\", \"match\": {\"to_prefix\": [\"+91\"]},"
              " \"vendors\": [\"clouddialer\", \"callerdesk\"]},"
              " {\"name\": \"default\", \"match\": {}, \"vendors\": [\"clouddialer\"]}]}",
              f);
        fclose(f);
        o.routes_dir = routes_dir;
    }
    o.conf_patch = patch;
    o.call_ms = 200;
    gwtest_start(&gw, &o);
    if (with_replica) {
        gwtest_replica_start(&gw, &replica, replica_base, sizeof(replica_base));
    }
}

static void
teardown(void)
{
    if (replica.pid > 0) {
        int st = proc_stop(&replica, SIGTERM, 15000);
        if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
            fprintf(stderr, "the second callgate did not exit 0 (status %d)\n", st);
            abort();
        }
    }
    gwtest_stop(&gw);
    if (routes_dir[0] != '\0') {
        proc_rmdir(routes_dir);
    }
}

/* Each test names its own .init (a suite-wide one would run as well). */
TestSuite(throttle, .fini = teardown, .timeout = 90);

static long
get_at(const char *base, const char *key, const char *path, struct http_resp *out)
{
    char url[256], auth[128];
    const char *headers[] = {auth, NULL};

    snprintf(url, sizeof(url), "%s%s", base, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
    cr_assert_eq(http_do("GET", url, headers, NULL, 0, 5000, out), 0);
    return out->status;
}

/* The value of one series in base's /metrics (0 when absent). */
static double
metric_at(const char *base, const char *series)
{
    char url[256];
    struct http_resp r;
    const char *at;
    double v = 0;

    snprintf(url, sizeof(url), "%s/metrics", base);
    cr_assert_eq(http_do("GET", url, NULL, NULL, 0, 5000, &r), 0);
    cr_assert_eq(r.status, 200);
    for (at = strstr(r.body, series); at != NULL; at = strstr(at + 1, series)) {
        if ((at == r.body || at[-1] == '\n') && at[strlen(series)] == ' ') {
            v = strtod(at + strlen(series) + 1, NULL);
            break;
        }
    }
    http_resp_free(&r);
    return v;
}

/* A 429 as the contract says: the problem, and a Retry-After of whole seconds. */
static void
assert_rate_limited(struct http_resp *r)
{
    char ra[32];

    assert_problem(r, 429, "rate-limited");
    cr_assert_not_null(http_header(r, "Retry-After", ra, sizeof(ra)), "%s", r->headers);
    cr_assert(atoi(ra) >= 1 && atoi(ra) <= 60, "Retry-After: %s", ra);
}

static void
setup_requests(void)
{
    start("{\"tenants\": [{\"rate_limit\": {\"requests_per_s\": 5, \"burst\": 10}}]}", 1, 0);
}

Test(throttle, tenant_rate_limit_is_shared_by_two_replicas, .init = setup_requests)
{
    struct http_resp r;
    int ok = 0, limited = 0, i;
    double t0 = now_s(), elapsed, bound;

    /* Alternate between the two processes as a load balancer would. */
    for (i = 0; i < 60; i++) {
        long st = get_at(i % 2 ? replica_base : gw.base, GWTEST_ACME_KEY, "/v1/calls?limit=1",
                         &r);
        if (st == 200) {
            ok++;
        } else {
            assert_rate_limited(&r);
            limited++;
        }
        http_resp_free(&r);
    }
    elapsed = now_s() - t0;
    /* The bucket holds 10 and refills at 5/s: together, not each. */
    bound = 10 + 5 * elapsed + 1;
    cr_assert(ok >= 10, "only %d accepted", ok);
    cr_assert(ok <= bound, "%d accepted in %.2f s by two replicas (bound %.1f)", ok, elapsed,
              bound);
    cr_assert_eq(ok + limited, 60);
    /* Each replica counts its own refusals in /metrics. */
    cr_assert_eq(metric_at(gw.base, "callgate_rate_limited_total{tenant=\"acme\"}") +
                     metric_at(replica_base, "callgate_rate_limited_total{tenant=\"acme\"}"),
                 limited);

    /* Another tenant has no limit and is not affected. */
    for (i = 0; i < 20; i++) {
        cr_assert_eq(get_at(i % 2 ? replica_base : gw.base, GWTEST_GLOBEX_KEY,
                            "/v1/calls?limit=1", &r),
                     200, "%s", r.body);
        http_resp_free(&r);
    }
    /* The bucket refills: after a pause the tenant is served again. */
    gwtest_sleep_ms(1200);
    cr_assert_eq(get_at(gw.base, GWTEST_ACME_KEY, "/v1/calls?limit=1", &r), 200, "%s", r.body);
    http_resp_free(&r);
    cr_assert_eq(get_at(replica_base, GWTEST_ACME_KEY, "/v1/calls?limit=1", &r), 200, "%s",
                 r.body);
    http_resp_free(&r);
}

static void
setup_calls(void)
{
    start("{\"tenants\": [{\"rate_limit\": {\"calls_per_s\": 1, \"calls_burst\": 2}}]}", 1, 0);
}

Test(throttle, call_rate_limit_counts_placements_only, .init = setup_calls)
{
    const char *body = "{\"to\": \"+919876543210\", \"agent\": \"+919900011122\"}";
    struct http_resp r;
    char key[32];
    int ok = 0, limited = 0, i;

    for (i = 0; i < 6; i++) {
        snprintf(key, sizeof(key), "rl-%d", i);
        cr_assert_eq(gw_post_call_at(i % 2 ? replica_base : gw.base, GWTEST_ACME_KEY, key, body,
                                     &r),
                     0);
        if (r.status == 201) {
            ok++;
        } else {
            assert_rate_limited(&r);
            limited++;
        }
        http_resp_free(&r);
    }
    cr_assert(ok >= 2 && ok <= 3, "%d placements accepted (burst 2, 1/s)", ok);
    cr_assert_eq(ok + limited, 6);
    /* Reads are not placements: no limit on them. */
    for (i = 0; i < 10; i++) {
        cr_assert_eq(get_at(gw.base, GWTEST_ACME_KEY, "/v1/calls?limit=1", &r), 200);
        http_resp_free(&r);
    }
    /* A 429 is not stored under the Idempotency-Key: the same key works later. */
    gwtest_sleep_ms(2100);
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, "rl-5", body, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_null(strstr(r.headers, "Idempotent-Replayed"), "%s", r.headers);
    http_resp_free(&r);
}

/* ---- vendor caps ----------------------------------------------------------- */

struct shot {
    const char *base;
    char idem[32];
    long status;
    char detail[256];
};

static void *
shoot(void *arg)
{
    struct shot *s = arg;
    struct http_resp r;

    if (gw_post_call_at(s->base, GWTEST_ACME_KEY, s->idem,
                        "{\"to\": \"+919876543210\", \"agent\": \"+919900011122\","
                        " \"vendor\": \"clouddialer\"}",
                        &r) == 0) {
        json_t *a = json_array_get(json_object_get(r.json, "attempts"), 0);
        s->status = r.status;
        snprintf(s->detail, sizeof(s->detail), "%s", a != NULL && jstr(a, "detail") != NULL
                                                         ? jstr(a, "detail")
                                                         : "");
        http_resp_free(&r);
    }
    return NULL;
}

static void
setup_concurrency(void)
{
    start("{\"vendors\": {\"clouddialer\": {\"max_concurrent\": 2}}}", 1, 0);
}

Test(throttle, vendor_concurrency_cap_holds_across_replicas, .init = setup_concurrency)
{
    struct shot shots[8];
    pthread_t th[8];
    struct http_resp r;
    int i, ok = 0, capped = 0;

    /* CloudDialer takes a second per placement: the slots stay taken. */
    cr_assert_eq(sim_post(&gw, "/_sim/faults",
                          "{\"path\":\"/calls\",\"method\":\"POST\",\"mode\":\"delay\","
                          "\"delay_ms\":1000,\"count\":-1}"),
                 200);
    for (i = 0; i < 8; i++) {
        memset(&shots[i], 0, sizeof(shots[i]));
        shots[i].base = i % 2 ? replica_base : gw.base;
        snprintf(shots[i].idem, sizeof(shots[i].idem), "cc-%d", i);
        cr_assert_eq(pthread_create(&th[i], NULL, shoot, &shots[i]), 0);
    }
    for (i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        if (shots[i].status == 201) {
            ok++;
        } else {
            cr_assert_eq(shots[i].status, 503, "status %ld", shots[i].status);
            cr_assert(strstr(shots[i].detail, "concurrency cap") != NULL, "%s",
                      shots[i].detail);
            capped++;
        }
    }
    cr_assert(ok >= 1 && ok <= 2, "%d placements ran at once (cap 2)", ok);
    cr_assert_eq(ok + capped, 8);
    cr_assert_eq(metric_at(gw.base, "callgate_vendor_throttled_total{vendor=\"clouddialer\","
                                    "reason=\"concurrency\"}") +
                     metric_at(replica_base, "callgate_vendor_throttled_total{vendor="
                                             "\"clouddialer\",reason=\"concurrency\"}"),
                 capped);
    /* Slots come back when the attempts end: the next call goes through. */
    cr_assert_eq(sim_delete(&gw, "/_sim/faults"), 200);
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, "cc-after",
                              "{\"to\": \"+919876543210\", \"agent\": \"+919900011122\"}", &r),
                 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    http_resp_free(&r);
}

static void
setup_vendor_rate(void)
{
    start("{\"vendors\": {\"clouddialer\": {\"max_calls_per_s\": 2, \"calls_burst\": 2}}}", 1,
          0);
}

Test(throttle, vendor_rate_cap_holds_across_replicas, .init = setup_vendor_rate)
{
    struct shot s;
    int i, ok = 0;
    double t0 = now_s(), elapsed;
    char ra[16];
    struct http_resp r;

    for (i = 0; i < 10; i++) {
        memset(&s, 0, sizeof(s));
        s.base = i % 2 ? replica_base : gw.base;
        snprintf(s.idem, sizeof(s.idem), "vr-%d", i);
        shoot(&s);
        if (s.status == 201) {
            ok++;
        } else {
            cr_assert_eq(s.status, 503);
            cr_assert(strstr(s.detail, "calls-per-second cap") != NULL, "%s", s.detail);
        }
    }
    elapsed = now_s() - t0;
    cr_assert(ok >= 2 && ok <= 2 + 2 * elapsed + 1, "%d accepted in %.2f s (2/s, burst 2)", ok,
              elapsed);
    /* The 503 says when to come back. */
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL,
                              "{\"to\": \"+919876543210\", \"agent\": \"+919900011122\","
                              " \"vendor\": \"clouddialer\"}",
                              &r),
                 0);
    if (r.status == 503) {
        assert_problem(&r, 503, "vendor-unavailable");
        cr_assert_not_null(http_header(&r, "Retry-After", ra, sizeof(ra)));
        cr_assert(atoi(ra) >= 1 && atoi(ra) <= 2, "Retry-After: %s", ra);
    }
    http_resp_free(&r);
}

/* ---- retry budget ---------------------------------------------------------- */

static void
setup_budget(void)
{
    start("{\"retry_budget\": {\"ratio_pct\": 20, \"min_per_s\": 0, \"window_s\": 30}}", 0, 1);
}

Test(throttle, retry_budget_limits_failover_during_an_outage, .init = setup_budget)
{
    const char *body = "{\"to\": \"+919876543210\", \"agent\": \"+919900011122\"}";
    struct http_resp r;
    int i, failed_over = 0, spent = 0;

    /* CloudDialer is down ("not queued"): every call would fail over to Callerdesk. */
    cr_assert_eq(sim_post(&gw, "/_sim/faults",
                          "{\"path\":\"/calls\",\"method\":\"POST\",\"mode\":\"status\","
                          "\"status\":503,\"count\":-1}"),
                 200);
    for (i = 0; i < 20; i++) {
        cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, body, &r), 0);
        if (r.status == 201) {
            cr_assert_str_eq(jstr(r.json, "vendor"), "callerdesk");
            failed_over++;
        } else {
            json_t *a = json_array_get(json_object_get(r.json, "attempts"), 1);
            assert_problem(&r, 503, "vendor-unavailable");
            cr_assert_str_eq(jstr(a, "vendor"), "callerdesk", "%s", r.body);
            cr_assert(strstr(jstr(a, "detail"), "retry budget") != NULL, "%s", r.body);
            spent++;
        }
        http_resp_free(&r);
    }
    /* 20 % of 20 first attempts: 4 failovers, not 20. */
    cr_assert(failed_over >= 3 && failed_over <= 4, "%d calls failed over", failed_over);
    cr_assert_eq(failed_over + spent, 20);
    cr_assert_eq(metric_at(gw.base, "callgate_vendor_throttled_total{vendor=\"callerdesk\","
                                    "reason=\"retry_budget\"}"),
                 spent);
    cr_assert_eq(sim_count(&gw, "POST", "/calls"), 20);
}
