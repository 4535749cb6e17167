/*
 * test_vendors.c: several vendors behind one API, end to end: Callerdesk
 * placements and its webhooks (POST and GET), failover from a vendor that
 * refuses to one that accepts (attempts[] tells the story), and call
 * history answered by some vendors but not others (partial).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helpers/gwtest.h"

#define CD_BODY                                                                                  \
    "{\"to\": \"+91 98765-43210\", \"agent\": \"+91 99000 11122\", \"vendor\": \"callerdesk\"}"

static struct gwtest gw;
static char routes_dir[256];

static void
setup(void)
{
    struct gwtest_opts o = {0};
    char path[320];
    FILE *f;

    /* India: Callerdesk first, CloudDialer as backup. */
    cr_assert_eq(proc_tmpdir(routes_dir, sizeof(routes_dir)), 0);
    snprintf(path, sizeof(path), "%s/10-india.json", routes_dir);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("{\"rules\": [{\"name\": \"india-callerdesk-first\", \"match\": {\"to_prefix\": "
          "[\"+91\"]}, \"vendors\": [\"callerdesk\", \"clouddialer\"]},"
          " {\"name\": \"default\", \"match\": {}, \"vendors\": [\"clouddialer\"]}]}",
          f);
    fclose(f);
    o.routes_dir = routes_dir;
    o.health_interval_ms = 200;
    gwtest_start(&gw, &o);
}

static void
teardown(void)
{
    gwtest_stop(&gw);
    proc_rmdir(routes_dir);
}

TestSuite(vendors, .init = setup, .fini = teardown, .timeout = 60);

Test(vendors, callerdesk_places_and_its_report_completes_the_call)
{
    struct http_resp r;
    json_t *reqs, *call;
    const char *q;
    char id[64];

    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, CD_BODY, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(jstr(r.json, "vendor"), "callerdesk");
    cr_assert_not_null(jstr(r.json, "vendor_call_id"));
    snprintf(id, sizeof(id), "%s", jstr(r.json, "id"));
    http_resp_free(&r);
    /* What Callerdesk received: 10-digit numbers, the deskphone, our id as uid. */
    reqs = sim_get_json(&gw, "/_sim/requests?method=GET&path=/api/click_to_call_v2");
    cr_assert_eq(json_integer_value(json_object_get(reqs, "count")), 1);
    q = jstr(json_array_get(json_object_get(reqs, "requests"), 0), "query");
    if (q != NULL) {
        cr_assert(strstr(q, "calling_party_a=9900011122") != NULL, "%s", q);
        cr_assert(strstr(q, "calling_party_b=9876543210") != NULL, "%s", q);
    }
    json_decref(reqs);
    call = gw_wait_call_status(&gw, GWTEST_ACME_KEY, id, "completed", 8000);
    cr_assert_str_eq(jstr(call, "status"), "completed", "%s", json_dumps(call, 0));
    json_decref(call);
}

Test(vendors, callerdesk_get_webhooks_are_accepted)
{
    struct http_resp r;
    json_t *call;
    char id[64];

    cr_assert_eq(sim_post(&gw, "/_sim/config", "{\"callerdesk_push_method\": \"GET\"}"), 200);
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, CD_BODY, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(id, sizeof(id), "%s", jstr(r.json, "id"));
    http_resp_free(&r);
    call = gw_wait_call_status(&gw, GWTEST_ACME_KEY, id, "completed", 8000);
    cr_assert_str_eq(jstr(call, "status"), "completed", "%s", json_dumps(call, 0));
    json_decref(call);
}

Test(vendors, refusal_fails_over_to_the_next_vendor)
{
    struct http_resp r;
    json_t *a0, *a1;

    /* Callerdesk answers HTTP 200 with type:error: an explicit refusal. */
    cr_assert_eq(sim_post(&gw, "/_sim/faults",
                          "{\"path\":\"/api/click_to_call_v2\",\"mode\":\"status\",\"status\":200,"
                          "\"body\":\"{\\\"type\\\":\\\"error\\\",\\\"message\\\":"
                          "\\\"Agent on break/Inactive. Call not allowed\\\"}\"}"),
                 200);
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL,
                              "{\"to\": \"+919876543210\", \"agent\": \"+919900011122\"}", &r),
                 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(jstr(r.json, "vendor"), "clouddialer");
    cr_assert_str_eq(jstr(r.json, "route"), "india-callerdesk-first");
    a0 = json_array_get(json_object_get(r.json, "attempts"), 0);
    a1 = json_array_get(json_object_get(r.json, "attempts"), 1);
    cr_assert_str_eq(jstr(a0, "vendor"), "callerdesk");
    cr_assert_str_eq(jstr(a0, "outcome"), "rejected");
    cr_assert_eq(json_integer_value(json_object_get(a0, "http_status")), 200);
    cr_assert_str_eq(jstr(a0, "detail"), "Agent on break/Inactive. Call not allowed");
    cr_assert_str_eq(jstr(a1, "vendor"), "clouddialer");
    cr_assert_str_eq(jstr(a1, "outcome"), "accepted");
    http_resp_free(&r);
}

Test(vendors, ambiguous_answer_does_not_fail_over)
{
    struct http_resp r;

    /* Callerdesk hangs after taking the request: no second vendor may be tried. */
    cr_assert_eq(sim_post(&gw, "/_sim/faults",
                          "{\"path\":\"/api/click_to_call_v2\",\"mode\":\"hang\"}"),
                 200);
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL,
                              "{\"to\": \"+919876543210\", \"agent\": \"+919900011122\"}", &r),
                 0);
    assert_problem(&r, 504, "vendor-timeout");
    cr_assert_eq(json_array_size(json_object_get(r.json, "attempts")), 1);
    cr_assert_eq(sim_count(&gw, "POST", "/calls"), 0, "CloudDialer must not be tried");
    http_resp_free(&r);
}

Test(vendors, agent_without_callerdesk_identity_falls_to_clouddialer)
{
    struct http_resp r;
    json_t *a0;

    /* "agent.017" is no phone number: Callerdesk cannot dial it (nothing sent). */
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL,
                              "{\"to\": \"+919876543210\", \"agent\": \"agent.017\"}", &r),
                 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(jstr(r.json, "vendor"), "clouddialer");
    a0 = json_array_get(json_object_get(r.json, "attempts"), 0);
    cr_assert_str_eq(jstr(a0, "vendor"), "callerdesk");
    cr_assert_str_eq(jstr(a0, "outcome"), "rejected");
    cr_assert_eq(sim_count(&gw, "GET", "/api/click_to_call_v2"), 0);
    http_resp_free(&r);
}

Test(vendors, history_partial_when_one_vendor_fails)
{
    struct http_resp r;
    json_t *sources, *s;
    size_t i;
    int ok = 0, failed = 0;

    cr_assert_eq(sim_post(&gw, "/_sim/faults",
                          "{\"path\":\"/CallLogAPI\",\"mode\":\"status\",\"status\":500}"),
                 200);
    cr_assert_eq(gw_get(&gw, GWTEST_ACME_KEY, "/v1/call-logs?phone_number=%2B919876543210", &r),
                 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_true(json_object_get(r.json, "partial")));
    sources = json_object_get(r.json, "sources");
    cr_assert_eq(json_array_size(sources), 2);
    json_array_foreach(sources, i, s) {
        if (strcmp(jstr(s, "vendor"), "getdesk") == 0) {
            cr_assert_str_eq(jstr(s, "status"), "error");
            failed++;
        } else {
            cr_assert_str_eq(jstr(s, "vendor"), "callerdesk");
            cr_assert_str_eq(jstr(s, "status"), "ok");
            ok++;
        }
    }
    cr_assert_eq(ok + failed, 2);
    http_resp_free(&r);
}

/* 1 once /readyz shows CloudDialer in state, 0 after timeout_ms. */
static int
wait_health(const char *state, int timeout_ms)
{
    int waited;

    for (waited = 0; waited <= timeout_ms; waited += 100) {
        struct http_resp r;
        const char *got;
        int match;

        cr_assert_eq(gw_get(&gw, NULL, "/readyz", &r), 0);
        cr_assert_eq(r.status, 200, "a vendor's health never makes the replica unready");
        got = jstr(json_object_get(json_object_get(r.json, "vendors"), "clouddialer"), "state");
        match = got != NULL && strcmp(got, state) == 0;
        http_resp_free(&r);
        if (match) {
            return 1;
        }
        gwtest_sleep_ms(100);
    }
    return 0;
}

Test(vendors, clouddialer_health_is_probed_and_shown)
{
    struct http_resp r;
    json_t *cd;

    cr_assert(wait_health("up", 5000), "CloudDialer never shown up");
    cr_assert_eq(gw_get(&gw, NULL, "/readyz", &r), 0);
    cd = json_object_get(json_object_get(r.json, "vendors"), "clouddialer");
    cr_assert_not_null(jstr(cd, "checked_at"));
    cr_assert(json_is_integer(json_object_get(cd, "latency_ms")));
    cr_assert_null(json_object_get(json_object_get(r.json, "vendors"), "getdesk"),
                   "Getdesk has no health check");
    http_resp_free(&r);
    cr_assert_geq(sim_count(&gw, "GET", "/health"), 1);

    cr_assert_eq(sim_post(&gw, "/_sim/faults",
                          "{\"path\":\"/health\",\"mode\":\"status\",\"status\":503,"
                          "\"count\":-1}"),
                 200);
    cr_assert(wait_health("down", 5000), "a failing health check never shown");
    cr_assert_eq(sim_delete(&gw, "/_sim/faults"), 200);
    cr_assert(wait_health("up", 5000), "recovery never shown");
}
