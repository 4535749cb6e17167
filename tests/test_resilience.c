/*
 * test_resilience.c: callgate when its neighbours misbehave, end to end on
 * real parts (callgate as a process, a real redis-server, the vendor
 * simulator), all on loopback: a vendor that hangs, resets, closes, refuses,
 * rejects or answers garbage; Redis that dies or hangs; SIGTERM draining and
 * its deadline; SIGHUP reload (good and bad); the -t configuration check.
 *
 * Every test starts its own gateway (some need their own options), so the
 * suite has only a .fini; the same .timeout applies to every test.
 */
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdint.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>

#include "crypto.h"
#include "helpers/gwtest.h"

#define CALL_BODY "{\"to\": \"+91 98765-43210\", \"agent\": \"agent.017\", \"reference\": \"crm-1\"}"
#define INITECH_KEY "test-initech-key"
#define INITECH_TOKEN "initech-token-0123456789"

static struct gwtest gw;
static int gw_started;

static void
start(const struct gwtest_opts *opts)
{
    gw_started = 1;
    gwtest_start(&gw, opts);
}

static void
teardown(void)
{
    if (gw_started) {
        gwtest_stop(&gw);
    }
}

TestSuite(resilience, .fini = teardown, .timeout = 60);

/* ---- helpers ------------------------------------------------------------- */

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A Retry-After header holding a positive number of seconds. */
static void
assert_retry_after(struct http_resp *r)
{
    char ra[32];

    cr_assert_not_null(http_header(r, "Retry-After", ra, sizeof(ra)), "no Retry-After: %s",
                       r->headers);
    cr_assert_gt(atoi(ra), 0, "Retry-After: %s", ra);
}

static void
assert_not_replayed(struct http_resp *r)
{
    char h[32];

    cr_assert_null(http_header(r, "Idempotent-Replayed", h, sizeof(h)),
                   "unexpected Idempotent-Replayed: %s", r->headers);
}

/* b is the replay of a: same status and body, Idempotent-Replayed: true. */
static void
assert_replay_of(struct http_resp *a, struct http_resp *b)
{
    char h[32];

    cr_assert_eq(b->status, a->status, "replay status %ld vs %ld: %s", b->status, a->status,
                 b->body);
    cr_assert_not_null(http_header(b, "Idempotent-Replayed", h, sizeof(h)), "headers: %s",
                       b->headers);
    cr_assert_str_eq(h, "true");
    cr_assert_str_eq(b->body, a->body);
}

/* The attempts[i] object of a problem or call answer. */
static json_t *
attempt(struct http_resp *r, size_t i)
{
    json_t *a = json_array_get(json_object_get(r->json, "attempts"), i);

    cr_assert_not_null(a, "no attempts[%zu] in %s", i, r->body);
    return a;
}

/* Queue a simulator fault; body is the JSON of POST /_sim/faults. */
static void
fault(const char *json)
{
    cr_assert_eq(sim_post(&gw, "/_sim/faults", json), 200, "fault refused: %s", json);
}

/* GET the call and assert its status. */
static void
assert_call_status(const char *key, const char *id, const char *status)
{
    char path[160];
    struct http_resp r;

    cr_assert_not_null(id);
    snprintf(path, sizeof(path), "/v1/calls/%s", id);
    cr_assert_eq(gw_get(&gw, key, path, &r), 0);
    cr_assert_eq(r.status, 200, "GET %s: %ld %s", path, r.status, r.body);
    cr_assert_str_eq(jstr(r.json, "id"), id);
    cr_assert_str_eq(jstr(r.json, "status"), status, "call: %s", r.body);
    http_resp_free(&r);
}

static int
vendor_posts(void)
{
    return sim_count(&gw, "POST", "/calls");
}

/* The whole callgate log, NUL-terminated (caller frees), or NULL. */
static char *
read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, n;
    char chunk[4096];

    if (f == NULL) {
        return NULL;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        char *grown = realloc(buf, len + n + 1);
        if (grown == NULL) {
            break;
        }
        buf = grown;
        memcpy(buf + len, chunk, n);
        len += n;
    }
    fclose(f);
    if (buf == NULL) {
        buf = calloc(1, 1);
    } else {
        buf[len] = '\0';
    }
    return buf;
}

/* 1 when the file at path contains needle within timeout_ms. */
static int
wait_file_contains(const char *path, const char *needle, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;

    for (;;) {
        char *text = read_file(path);
        int found = text != NULL && strstr(text, needle) != NULL;
        free(text);
        if (found) {
            return 1;
        }
        if (now_ms() >= deadline) {
            return 0;
        }
        gwtest_sleep_ms(50);
    }
}

/* A POST /v1/calls run in a thread (the helper blocks). */
struct bg_post {
    pthread_t thread;
    const char *idem;
    int rc;
    struct http_resp resp;
    long long done_ms;
};

static void *
bg_post_run(void *arg)
{
    struct bg_post *b = arg;

    b->rc = gw_post_call(&gw, GWTEST_ACME_KEY, b->idem, CALL_BODY, &b->resp);
    b->done_ms = now_ms();
    return NULL;
}

static void
bg_post_start(struct bg_post *b, const char *idem)
{
    memset(b, 0, sizeof(*b));
    b->idem = idem;
    cr_assert_eq(pthread_create(&b->thread, NULL, bg_post_run, b), 0);
}

/* Wait until the simulator has logged n POST /calls (the request reached the vendor). */
static void
wait_vendor_posts(int n, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;

    while (vendor_posts() < n) {
        cr_assert_lt(now_ms(), deadline, "the vendor never received the request");
        gwtest_sleep_ms(20);
    }
}

/*
 * One vendor failure mode: a POST /v1/calls with an Idempotency-Key under the
 * queued fault must answer status/slug; the call ends with call_status; the
 * vendor saw exactly one request. The answer is returned (caller frees).
 */
static void
post_expect(const char *idem, long status, const char *slug, const char *call_status,
            struct http_resp *out)
{
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, idem, CALL_BODY, out), 0);
    assert_problem(out, status, slug);
    assert_not_replayed(out);
    cr_assert_not_null(jstr(out->json, "call_id"), "%s", out->body);
    cr_assert(strncmp(jstr(out->json, "call_id"), "call_", 5) == 0, "%s", out->body);
    assert_call_status(GWTEST_ACME_KEY, jstr(out->json, "call_id"), call_status);
    cr_assert_eq(vendor_posts(), 1, "the vendor must see exactly one request");
}

/* ---- the vendor misbehaves ----------------------------------------------- */

Test(resilience, vendor_hangs)
{
    struct gwtest_opts o = {.vendor_timeout_ms = 1000};
    struct http_resp a, b;
    json_t *at;

    start(&o);
    fault("{\"method\":\"POST\",\"path\":\"/calls\",\"mode\":\"hang\",\"count\":1}");
    post_expect("hang-1", 504, "vendor-timeout", "unknown", &a);
    cr_assert(a.ms >= 800 && a.ms <= 4000, "answered after %.0f ms, expected about 1 s", a.ms);
    at = attempt(&a, 0);
    cr_assert_str_eq(jstr(at, "outcome"), "timeout", "%s", a.body);
    cr_assert_str_eq(jstr(at, "vendor"), "clouddialer");
    cr_assert_null(json_array_get(json_object_get(a.json, "attempts"), 1),
                   "no failover after an ambiguous timeout: %s", a.body);
    /* The same request again: the same 504, replayed; the vendor is never asked again. */
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, "hang-1", CALL_BODY, &b), 0);
    assert_replay_of(&a, &b);
    assert_problem(&b, 504, "vendor-timeout");
    cr_assert_eq(vendor_posts(), 1, "a replay must not reach the vendor");
    assert_call_status(GWTEST_ACME_KEY, jstr(a.json, "call_id"), "unknown");
    http_resp_free(&a);
    http_resp_free(&b);
}

Test(resilience, vendor_resets_after_request)
{
    struct http_resp a;

    start(NULL);
    fault("{\"method\":\"POST\",\"path\":\"/calls\",\"mode\":\"reset\",\"count\":1}");
    post_expect("reset-1", 504, "vendor-timeout", "unknown", &a);
    cr_assert_str_eq(jstr(attempt(&a, 0), "outcome"), "timeout", "%s", a.body);
    cr_assert_eq(json_array_size(json_object_get(a.json, "attempts")), 1, "%s", a.body);
    http_resp_free(&a);
}

Test(resilience, vendor_closes_without_answer)
{
    struct http_resp a;

    start(NULL);
    fault("{\"method\":\"POST\",\"path\":\"/calls\",\"mode\":\"close\",\"count\":1}");
    post_expect("close-1", 504, "vendor-timeout", "unknown", &a);
    cr_assert_str_eq(jstr(attempt(&a, 0), "outcome"), "timeout", "%s", a.body);
    cr_assert_eq(json_array_size(json_object_get(a.json, "attempts")), 1, "%s", a.body);
    http_resp_free(&a);
}

Test(resilience, vendor_refuses_connection)
{
    struct gwtest_opts o = {0};
    struct http_resp a, b;

    o.vendor_port = proc_free_port(); /* nothing listens there */
    cr_assert_gt(o.vendor_port, 0);
    start(&o);
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, "refused-1", CALL_BODY, &a), 0);
    assert_problem(&a, 503, "vendor-unavailable");
    assert_retry_after(&a);
    assert_not_replayed(&a);
    cr_assert_str_eq(jstr(attempt(&a, 0), "outcome"), "unavailable", "%s", a.body);
    assert_call_status(GWTEST_ACME_KEY, jstr(a.json, "call_id"), "failed");
    /* Nothing can have been placed: the key was released, so this is a new try. */
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, "refused-1", CALL_BODY, &b), 0);
    assert_problem(&b, 503, "vendor-unavailable");
    assert_retry_after(&b);
    assert_not_replayed(&b);
    cr_assert_str_neq(jstr(b.json, "call_id"), jstr(a.json, "call_id"),
                      "a fresh attempt has its own call");
    cr_assert_eq(vendor_posts(), 0);
    http_resp_free(&a);
    http_resp_free(&b);
}

Test(resilience, vendor_rejects)
{
    struct http_resp a, b;
    json_t *at;

    start(NULL);
    fault("{\"method\":\"POST\",\"path\":\"/calls\",\"mode\":\"status\",\"status\":400,"
          "\"body\":\"{\\\"status\\\":\\\"error\\\",\\\"message\\\":\\\"Unknown agent\\\"}\","
          "\"count\":1}");
    post_expect("reject-1", 502, "vendor-rejected", "failed", &a);
    at = attempt(&a, 0);
    cr_assert_str_eq(jstr(at, "outcome"), "rejected", "%s", a.body);
    cr_assert_str_eq(jstr(at, "detail"), "Unknown agent", "%s", a.body);
    cr_assert_eq(json_integer_value(json_object_get(at, "http_status")), 400, "%s", a.body);
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, "reject-1", CALL_BODY, &b), 0);
    assert_replay_of(&a, &b);
    assert_problem(&b, 502, "vendor-rejected");
    cr_assert_eq(vendor_posts(), 1, "a replay must not reach the vendor");
    http_resp_free(&a);
    http_resp_free(&b);
}

Test(resilience, vendor_not_queued_502)
{
    struct http_resp a;
    json_t *at;

    start(NULL);
    fault("{\"method\":\"POST\",\"path\":\"/calls\",\"mode\":\"status\",\"status\":502,"
          "\"count\":1}");
    post_expect("nq-1", 503, "vendor-unavailable", "failed", &a);
    assert_retry_after(&a);
    at = attempt(&a, 0);
    cr_assert_str_eq(jstr(at, "outcome"), "unavailable", "%s", a.body);
    cr_assert_eq(json_integer_value(json_object_get(at, "http_status")), 502, "%s", a.body);
    http_resp_free(&a);
}

Test(resilience, vendor_garbage)
{
    struct http_resp a;

    start(NULL);
    fault("{\"method\":\"POST\",\"path\":\"/calls\",\"mode\":\"garbage\",\"count\":1}");
    post_expect("garbage-1", 502, "vendor-error", "unknown", &a);
    cr_assert_str_eq(jstr(attempt(&a, 0), "outcome"), "invalid_response", "%s", a.body);
    cr_assert_eq(json_array_size(json_object_get(a.json, "attempts")), 1, "%s", a.body);
    http_resp_free(&a);
}

Test(resilience, vendor_500)
{
    struct http_resp a;

    start(NULL);
    fault("{\"method\":\"POST\",\"path\":\"/calls\",\"mode\":\"status\",\"status\":500,"
          "\"count\":1}");
    post_expect("v500-1", 502, "vendor-error", "unknown", &a);
    cr_assert_eq(json_integer_value(json_object_get(attempt(&a, 0), "http_status")), 500, "%s",
                 a.body);
    cr_assert_eq(json_array_size(json_object_get(a.json, "attempts")), 1, "%s", a.body);
    http_resp_free(&a);
}

Test(resilience, vendor_slow_but_in_time)
{
    struct http_resp a;

    start(NULL);
    fault("{\"method\":\"POST\",\"path\":\"/calls\",\"mode\":\"delay\",\"delay_ms\":300,"
          "\"count\":1}");
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, "slow-1", CALL_BODY, &a), 0);
    cr_assert_eq(a.status, 201, "%s", a.body);
    cr_assert(a.ms >= 250, "answered after %.0f ms, before the vendor did", a.ms);
    cr_assert_str_eq(jstr(a.json, "status"), "queued");
    cr_assert_str_eq(jstr(attempt(&a, 0), "outcome"), "accepted");
    cr_assert_not_null(jstr(a.json, "vendor_call_id"));
    cr_assert_eq(vendor_posts(), 1);
    http_resp_free(&a);
}

/* ---- Redis misbehaves ---------------------------------------------------- */

/* GET /readyz until it answers want (or timeout); returns the last status. */
static long
wait_readyz(long want, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    long st = -1;

    for (;;) {
        struct http_resp r;
        if (gw_get(&gw, NULL, "/readyz", &r) == 0) {
            st = r.status;
            http_resp_free(&r);
        }
        if (st == want || now_ms() >= deadline) {
            return st;
        }
        gwtest_sleep_ms(50);
    }
}

Test(resilience, redis_down_then_back)
{
    struct http_resp r;
    long long t0;

    start(NULL);
    redis_fixture_kill(&gw.redis);
    t0 = now_ms();
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, "redis-down-1", CALL_BODY, &r), 0);
    assert_problem(&r, 503, "store-unavailable");
    assert_retry_after(&r);
    cr_assert_lt(now_ms() - t0, 2000, "took %lld ms", now_ms() - t0);
    http_resp_free(&r);
    cr_assert_eq(gw_get(&gw, GWTEST_ACME_KEY, "/v1/calls/x", &r), 0);
    assert_problem(&r, 503, "store-unavailable");
    assert_retry_after(&r);
    http_resp_free(&r);
    cr_assert_eq(wait_readyz(503, 2000), 503, "readyz must report the outage");
    cr_assert_eq(gw_get(&gw, NULL, "/readyz", &r), 0);
    cr_assert_eq(r.status, 503);
    cr_assert(json_is_false(json_object_get(r.json, "redis")), "%s", r.body);
    http_resp_free(&r);
    cr_assert_eq(gw_get(&gw, NULL, "/healthz", &r), 0);
    cr_assert_eq(r.status, 200, "healthz is liveness only: %s", r.body);
    http_resp_free(&r);
    cr_assert_eq(vendor_posts(), 0, "no vendor request without a call record");

    /* Back: callgate reconnects by itself. */
    cr_assert_eq(redis_fixture_restart(&gw.redis), 0);
    cr_assert(gwtest_wait_ready(&gw, 5000), "callgate did not reconnect to Redis");
    /* The same key again: the 503 was not stored, so this places the call. */
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, "redis-down-1", CALL_BODY, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    assert_not_replayed(&r);
    http_resp_free(&r);
    cr_assert_eq(vendor_posts(), 1);
}

Test(resilience, redis_hangs)
{
    struct http_resp r, h;
    struct bg_post bg;
    long long t0;
    int i;

    start(NULL);
    redis_fixture_pause(&gw.redis);
    /* While a POST waits on the hung Redis, the loop still serves others at once. */
    bg_post_start(&bg, "redis-hang-1");
    t0 = now_ms();
    for (i = 0; i < 5; i++) {
        gwtest_sleep_ms(40);
        cr_assert_eq(gw_get(&gw, NULL, "/healthz", &h), 0);
        cr_assert_eq(h.status, 200);
        cr_assert_lt(h.ms, 200, "healthz took %.0f ms during the Redis outage", h.ms);
        http_resp_free(&h);
    }
    pthread_join(bg.thread, NULL);
    cr_assert_eq(bg.rc, 0, "no answer to the POST");
    assert_problem(&bg.resp, 503, "store-unavailable");
    assert_retry_after(&bg.resp);
    cr_assert_lt(bg.done_ms - t0, 2000, "answered after %lld ms", bg.done_ms - t0);
    http_resp_free(&bg.resp);
    /* Still hung: later requests fail fast too, healthz stays fast. */
    t0 = now_ms();
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, CALL_BODY, &r), 0);
    assert_problem(&r, 503, "store-unavailable");
    cr_assert_lt(now_ms() - t0, 2000, "answered after %lld ms", now_ms() - t0);
    http_resp_free(&r);
    cr_assert_eq(gw_get(&gw, NULL, "/healthz", &h), 0);
    cr_assert_eq(h.status, 200);
    cr_assert_lt(h.ms, 200, "healthz took %.0f ms", h.ms);
    http_resp_free(&h);
    cr_assert_eq(vendor_posts(), 0);

    redis_fixture_resume(&gw.redis);
    cr_assert(gwtest_wait_ready(&gw, 5000), "callgate did not recover from the hung Redis");
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, "redis-hang-1", CALL_BODY, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    http_resp_free(&r);
}

Test(resilience, webhook_while_redis_down)
{
    static const char push[] =
        "{\"call_id\":\"x\",\"uuid\":\"call_x\",\"status\":\"ANSWER\",\"duration\":3,"
        "\"start_time\":\"2026-07-03T10:00:00Z\",\"end_time\":\"2026-07-03T10:00:03Z\"}";
    const char *headers[] = {"Content-Type: application/json", NULL};
    char url[256];
    struct http_resp r;

    start(NULL);
    snprintf(url, sizeof(url), "%s/v1/webhooks/clouddialer/%s", gw.base, GWTEST_ACME_TOKEN);
    redis_fixture_kill(&gw.redis);
    cr_assert_eq(http_do("POST", url, headers, push, strlen(push), 5000, &r), 0);
    assert_problem(&r, 503, "store-unavailable");
    assert_retry_after(&r);
    http_resp_free(&r);

    cr_assert_eq(redis_fixture_restart(&gw.redis), 0);
    cr_assert(gwtest_wait_ready(&gw, 5000), "callgate did not reconnect to Redis");
    cr_assert_eq(http_do("POST", url, headers, push, strlen(push), 5000, &r), 0);
    cr_assert(r.status >= 200 && r.status < 300, "the vendor's retry: %ld %s", r.status, r.body);
    http_resp_free(&r);
    /* It was stored once: a further retry is acknowledged as a duplicate. */
    cr_assert_eq(http_do("POST", url, headers, push, strlen(push), 5000, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(jstr(r.json, "status"), "duplicate", "%s", r.body);
    http_resp_free(&r);
}

/* ---- SIGTERM ------------------------------------------------------------- */

/* POST /v1/calls on a fresh connection: -1 (refused) or the HTTP status. */
static long
post_status(struct http_resp *r)
{
    if (gw_post_call(&gw, GWTEST_ACME_KEY, NULL, CALL_BODY, r) != 0) {
        return -1;
    }
    return r->status;
}

Test(resilience, sigterm_drains_in_flight)
{
    struct bg_post bg;
    struct http_resp r;
    long long t_term;
    long st;
    int status;

    start(NULL);
    fault("{\"method\":\"POST\",\"path\":\"/calls\",\"mode\":\"delay\",\"delay_ms\":1500,"
          "\"count\":1}");
    bg_post_start(&bg, "drain-1");
    wait_vendor_posts(1, 3000);
    gwtest_sleep_ms(300);
    t_term = now_ms();
    cr_assert_eq(kill(gw.gw.pid, SIGTERM), 0);
    gwtest_sleep_ms(200);
    /* Draining: no new work is taken (the listener is closed, or 503). */
    st = post_status(&r);
    if (st != -1) {
        assert_problem(&r, 503, "shutting-down");
        http_resp_free(&r);
    }
    /* The request in flight is finished, not dropped. */
    pthread_join(bg.thread, NULL);
    if (bg.rc != 0) {
        gwtest_sleep_ms(500);
        proc_dump_log(gw.gw_log, 3000);
    }
    cr_assert_eq(bg.rc, 0, "the in-flight request lost its connection");
    cr_assert_eq(bg.resp.status, 201, "%s", bg.resp.body);
    cr_assert_str_eq(jstr(bg.resp.json, "status"), "queued");
    http_resp_free(&bg.resp);
    status = gwtest_gateway_stop(&gw, 0, 8000);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "callgate exit status %d", status);
    cr_assert_lt(now_ms() - t_term, 5000, "drain took %lld ms (drain_timeout 5000)",
                 now_ms() - t_term);
    cr_assert_eq(vendor_posts(), 1);
}

Test(resilience, sigterm_deadline_answers_everyone)
{
    struct gwtest_opts o = {.drain_timeout_ms = 1000, .vendor_timeout_ms = 3000};
    struct bg_post bg;
    long long t_term, took;
    int status;

    start(&o);
    fault("{\"method\":\"POST\",\"path\":\"/calls\",\"mode\":\"hang\",\"count\":1}");
    bg_post_start(&bg, "deadline-1");
    wait_vendor_posts(1, 3000);
    gwtest_sleep_ms(300);
    t_term = now_ms();
    cr_assert_eq(kill(gw.gw.pid, SIGTERM), 0);
    status = gwtest_gateway_stop(&gw, 0, 6000);
    took = now_ms() - t_term;
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "callgate exit status %d", status);
    cr_assert(took >= 800 && took < 2500, "exited %lld ms after SIGTERM (drain_timeout 1000)",
              took);
    pthread_join(bg.thread, NULL);
    if (bg.rc != 0) {
        proc_dump_log(gw.gw_log, 3000);
    }
    cr_assert_eq(bg.rc, 0, "the in-flight client got no answer (connection dropped)");
    cr_assert(bg.resp.status >= 500 && bg.resp.status < 600, "%ld %s", bg.resp.status,
              bg.resp.body);
    {
        char ct[128];
        cr_assert_not_null(http_header(&bg.resp, "Content-Type", ct, sizeof(ct)));
        cr_assert_str_eq(ct, "application/problem+json");
        cr_assert_not_null(bg.resp.json, "%s", bg.resp.body);
        cr_assert_eq(json_integer_value(json_object_get(bg.resp.json, "status")),
                     bg.resp.status);
    }
    http_resp_free(&bg.resp);
}

/* ---- SIGHUP and -t ------------------------------------------------------- */

/* Load the written configuration, or fail. */
static json_t *
conf_load_json(const char *path)
{
    json_error_t err;
    json_t *conf = json_load_file(path, 0, &err);

    cr_assert_not_null(conf, "%s: %s", path, err.text);
    return conf;
}

static void
conf_save_json(json_t *conf, const char *path)
{
    cr_assert_eq(json_dump_file(conf, path, JSON_INDENT(2)), 0);
}

/* POST with the initech key until it is no longer 401; returns the last status. */
static long
wait_initech_accepted(int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    long st = -1;

    for (;;) {
        struct http_resp r;
        if (gw_post_call(&gw, INITECH_KEY, NULL, CALL_BODY, &r) == 0) {
            st = r.status;
            http_resp_free(&r);
        }
        if ((st != 401 && st != -1) || now_ms() >= deadline) {
            return st;
        }
        gwtest_sleep_ms(50);
    }
}

Test(resilience, sighup_reload)
{
    char hash[CRYPTO_SHA256_HEX_LEN + 1];
    struct http_resp r;
    json_t *conf, *tenant;

    start(NULL);
    cr_assert_eq(gw_post_call(&gw, INITECH_KEY, NULL, CALL_BODY, &r), 0);
    assert_problem(&r, 401, "unauthorized");
    http_resp_free(&r);

    /* A third tenant, like acme but with its own id, key and webhook token. */
    conf = conf_load_json(gw.conf_path);
    tenant = json_deep_copy(json_array_get(json_object_get(conf, "tenants"), 0));
    cr_assert_str_eq(jstr(tenant, "id"), "acme");
    crypto_sha256_hex(INITECH_KEY, strlen(INITECH_KEY), hash);
    json_object_set_new(tenant, "id", json_string("initech"));
    json_object_set_new(tenant, "api_key_sha256", json_pack("[s]", hash));
    json_object_set_new(json_array_get(json_object_get(tenant, "vendors"), 0), "webhook_token",
                        json_string(INITECH_TOKEN));
    /* Webhook tokens are unique per vendor: keep only the first (CloudDialer) entry. */
    while (json_array_size(json_object_get(tenant, "vendors")) > 1) {
        json_array_remove(json_object_get(tenant, "vendors"), 1);
    }
    json_array_append_new(json_object_get(conf, "tenants"), tenant);
    conf_save_json(conf, gw.conf_path);
    cr_assert_eq(kill(gw.gw.pid, SIGHUP), 0);
    cr_assert_eq(wait_initech_accepted(2000), 201, "the reloaded tenant is not served");
    cr_assert(wait_file_contains(gw.gw_log, "reloaded", 2000));

    /* A broken configuration is refused; the running one keeps serving. */
    json_object_set_new(conf, "listen", json_integer(5));
    conf_save_json(conf, gw.conf_path);
    json_decref(conf);
    cr_assert_eq(kill(gw.gw.pid, SIGHUP), 0);
    cr_assert(wait_file_contains(gw.gw_log, "reload_refused", 2000),
              "no reload_refused line in the callgate log");
    cr_assert_eq(gw_post_call(&gw, INITECH_KEY, NULL, CALL_BODY, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    http_resp_free(&r);
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, CALL_BODY, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    http_resp_free(&r);
    cr_assert_eq(gw_get(&gw, NULL, "/readyz", &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_resp_free(&r);
}

/* Run callgate -t -c conf; its stdout+stderr land in out_path. Returns the wait status. */
static int
run_config_test(const char *conf, const char *out_path)
{
    const char *env = getenv("CG_CALLGATE");
    const char *argv[] = {env != NULL && env[0] != '\0' ? env : CG_BUILDDIR "/src/callgate",
                          "-t", "-c", conf, NULL};
    struct proc p;

    cr_assert_eq(proc_start(&p, argv, NULL, out_path), 0);
    return proc_stop(&p, 0, 15000);
}

Test(resilience, config_test_flag)
{
    char bad[400], out_ok[400], out_bad[400], line[600];
    char *text;
    json_t *conf;
    int status;

    start(NULL);
    snprintf(out_ok, sizeof(out_ok), "%s/check-ok.out", gw.dir);
    status = run_config_test(gw.conf_path, out_ok);
    text = read_file(out_ok);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "callgate -t: status %d: %s",
              status, text);
    cr_assert(strstr(text, "valid") != NULL, "%s", text);
    free(text);

    snprintf(bad, sizeof(bad), "%s/bad.json", gw.dir);
    snprintf(out_bad, sizeof(out_bad), "%s/check-bad.out", gw.dir);
    conf = conf_load_json(gw.conf_path);
    json_object_set_new(conf, "bogus", json_true());
    json_object_set_new(json_array_get(json_object_get(conf, "tenants"), 0), "default_country",
                        json_string("ZZ"));
    conf_save_json(conf, bad);
    json_decref(conf);
    status = run_config_test(bad, out_bad);
    text = read_file(out_bad);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1,
              "callgate -t on a bad config: status %d (exit %d): %s", status,
              WIFEXITED(status) ? WEXITSTATUS(status) : -1, text);
    snprintf(line, sizeof(line), "%s: bogus: unknown key\n", bad);
    cr_assert(strstr(text, line) != NULL, "no \"%s\" in:\n%s", line, text);
    snprintf(line, sizeof(line), "%s: tenants.acme.default_country: ", bad);
    cr_assert(strstr(text, line) != NULL, "no \"%s\" in:\n%s", line, text);
    cr_assert(strstr(text, "ZZ") != NULL, "%s", text);
    cr_assert(strstr(text, "valid") == NULL || strstr(text, "are valid") == NULL, "%s", text);
    free(text);
    /* The running gateway is not affected by a check. */
    cr_assert(gwtest_wait_ready(&gw, 1000));
}

/*
 * A replica died while placing a call: its idempotency key is still "in
 * flight" long after the in-flight limit. A retry must not place the call
 * again (the first may have reached the vendor): it gets 504 vendor-timeout
 * naming the first call, replayed from then on, and no vendor request.
 */
Test(resilience, crashed_request_is_not_placed_again)
{
    const char *body = "{\"to\":\"+919876543210\",\"agent\":\"agent.017\"}";
    char keyhash[CRYPTO_SHA256_HEX_LEN + 1], fp[CRYPTO_SHA256_HEX_LEN + 1], started[32];
    struct http_resp r, again;
    struct redisReply *rep;
    json_t *parsed;
    char *canon;

    start(NULL);
    parsed = json_loads(body, 0, NULL);
    canon = json_dumps(parsed, JSON_COMPACT | JSON_SORT_KEYS);
    crypto_sha256_hex(canon, strlen(canon), fp);
    crypto_sha256_hex("crashed-key", strlen("crashed-key"), keyhash);
    snprintf(started, sizeof(started), "%lld", (long long)time(NULL) * 1000 - 120000);
    rep = redis_fixture_cmd(&gw.redis, "HSET cg:idem:acme:%s state in_flight fp %s call_id %s "
                                      "started %s",
                            keyhash, fp, "call_00000000000000000000000000crash", started);
    cr_assert_not_null(rep);
    freeReplyObject(rep);
    free(canon);
    json_decref(parsed);

    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, "crashed-key", body, &r), 0);
    assert_problem(&r, 504, "vendor-timeout");
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "call_id")),
                     "call_00000000000000000000000000crash");
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, "crashed-key", body, &again), 0);
    cr_assert_eq(again.status, 504);
    cr_assert_str_eq(again.body, r.body);
    cr_assert_eq(sim_count(&gw, "POST", "/calls"), 0, "nothing may be placed again");
    http_resp_free(&r);
    http_resp_free(&again);
}

/* ---- hostile clients ----------------------------------------------------- */

static int
raw_connect(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* 1 when the peer has closed the connection (EOF or reset), without blocking. */
static int
raw_closed(int fd)
{
    char buf[512];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/*
 * Slowloris: a request head dribbled one header line at a time never
 * finishes; the gateway cuts it at the header deadline, as it cuts a
 * connection that sends nothing at all. Other clients are served meanwhile.
 */
Test(resilience, slow_request_heads_are_cut)
{
    static const char head[] = "POST /v1/calls HTTP/1.1\r\nHost: x\r\n";
    struct gwtest_opts o = {.header_timeout_ms = 1000};
    struct http_resp r;
    long long t0, closed_slow = -1, closed_idle = -1;
    int slow, idle, i;

    start(&o);
    t0 = now_ms();
    slow = raw_connect(gw.gw_port);
    idle = raw_connect(gw.gw_port);
    cr_assert(send(slow, head, sizeof(head) - 1, MSG_NOSIGNAL) == (ssize_t)sizeof(head) - 1);
    for (i = 0; i < 40 && (closed_slow < 0 || closed_idle < 0); i++) {
        gwtest_sleep_ms(100);
        if (closed_slow < 0 &&
            (send(slow, "X-Slow: 1\r\n", 11, MSG_NOSIGNAL) < 0 || raw_closed(slow))) {
            closed_slow = now_ms() - t0;
        }
        if (closed_idle < 0 && raw_closed(idle)) {
            closed_idle = now_ms() - t0;
        }
        if (i == 5) {
            cr_assert_eq(gw_get(&gw, NULL, "/healthz", &r), 0);
            cr_assert_eq(r.status, 200);
            http_resp_free(&r);
        }
    }
    close(slow);
    close(idle);
    if (closed_slow < 900 || closed_slow > 2500 || closed_idle < 900 || closed_idle > 2500) {
        proc_dump_log(gw.gw_log, 3000);
    }
    cr_assert(closed_slow >= 900 && closed_slow <= 2500, "slow head cut after %lld ms",
              closed_slow);
    cr_assert(closed_idle >= 900 && closed_idle <= 2500, "silent connection cut after %lld ms",
              closed_idle);
}

/* Beyond max_connections a new connection gets 503 and is closed; later ones are served. */
Test(resilience, connection_cap)
{
    struct gwtest_opts o = {.max_connections = 4, .header_timeout_ms = 20000};
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[1024];
    struct http_resp r;
    int held[4], extra, i, got = 0;
    ssize_t n;

    start(&o);
    for (i = 0; i < 4; i++) {
        held[i] = raw_connect(gw.gw_port);
    }
    gwtest_sleep_ms(100);
    extra = raw_connect(gw.gw_port);
    (void)send(extra, req, sizeof(req) - 1, MSG_NOSIGNAL);
    for (i = 0; i < 50; i++) {
        n = recv(extra, buf + got, sizeof(buf) - 1 - (size_t)got, MSG_DONTWAIT);
        if (n == 0) {
            break;
        }
        if (n > 0) {
            got += (int)n;
        }
        gwtest_sleep_ms(20);
    }
    buf[got] = '\0';
    cr_assert(strncmp(buf, "HTTP/1.1 503", 12) == 0, "got: %s", buf);
    cr_assert(strstr(buf, "/problems/overloaded") != NULL, "got: %s", buf);
    close(extra);
    for (i = 0; i < 4; i++) {
        close(held[i]);
    }
    gwtest_sleep_ms(600); /* the sweep notices the closed connections */
    cr_assert_eq(gw_get(&gw, NULL, "/healthz", &r), 0);
    cr_assert_eq(r.status, 200);
    http_resp_free(&r);
}
