/*
 * test_history.c: call history across vendors, end to end: GET
 * /v1/call-logs and /v1/call-logs/counts against the simulator's Getdesk
 * (acme keeps history there; globex has no history vendor).
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helpers/gwtest.h"

static struct gwtest gw;

static void
setup(void)
{
    gwtest_start(&gw, NULL);
}

static void
teardown(void)
{
    gwtest_stop(&gw);
}

TestSuite(history, .init = setup, .fini = teardown, .timeout = 60);

/* Getdesk rows for a Nepal number, as the vendor returns them (Kathmandu time). */
static void
seed_rows(void)
{
    cr_assert_eq(sim_post(&gw, "/_sim/getdesk/config", "{\"synthetic\": false}"), 200);
    cr_assert_eq(
        sim_post(&gw, "/_sim/getdesk/logs",
                 "{\"phone_number\": \"9811789678\", \"rows\": ["
                 "{\"agent_fullname\": \"Franklin\", \"phone_number\": \"9811789678\","
                 " \"agent_extension\": \"2003\", \"trunk\": \"+97712970852\","
                 " \"calldate\": \"2026-07-01 10:00:00\", \"duration\": 16,"
                 " \"disposition\": \"NO ANSWER\", \"call_type\": \"outbound\","
                 " \"recording_link\": \"\", \"wrapup_name\": \"\", \"wrapup_note\": null},"
                 "{\"agent_fullname\": \"Franklin\", \"phone_number\": \"9811789678\","
                 " \"agent_extension\": \"2003\", \"trunk\": \"+97712970852\","
                 " \"calldate\": \"2026-07-02 09:30:00\", \"duration\": \"45\","
                 " \"disposition\": \"ANSWERED\", \"call_type\": \"inbound\","
                 " \"recording_link\": \"pbx.example/rec/1.wav\", \"wrapup_name\": \"Sale\","
                 " \"wrapup_note\": \"ok\"}]}"),
        200);
}

static void
get(const char *key, const char *path, struct http_resp *r)
{
    cr_assert_eq(gw_get(&gw, key, path, r), 0);
}

Test(history, call_logs_merged_newest_first)
{
    struct http_resp r;
    json_t *calls, *c0, *c1, *src;

    seed_rows();
    get(GWTEST_ACME_KEY,
        "/v1/call-logs?phone_number=%2B9779811789678&start_date=2026-06-20&end_date=2026-07-10",
        &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(jstr(r.json, "phone_number"), "+9779811789678");
    cr_assert_str_eq(jstr(r.json, "start_date"), "2026-06-20");
    cr_assert_str_eq(jstr(r.json, "end_date"), "2026-07-10");
    cr_assert(json_is_false(json_object_get(r.json, "partial")));
    src = json_array_get(json_object_get(r.json, "sources"), 0);
    cr_assert_str_eq(jstr(src, "vendor"), "getdesk");
    cr_assert_str_eq(jstr(src, "status"), "ok");
    cr_assert_eq(json_integer_value(json_object_get(src, "count")), 2);
    calls = json_object_get(r.json, "calls");
    cr_assert_eq(json_array_size(calls), 2);
    c0 = json_array_get(calls, 0);
    c1 = json_array_get(calls, 1);
    /* Newest first; Kathmandu (+05:45) read into UTC. */
    cr_assert_str_eq(jstr(c0, "started_at"), "2026-07-02T03:45:00Z");
    cr_assert_str_eq(jstr(c0, "status"), "completed");
    cr_assert_str_eq(jstr(c0, "direction"), "inbound");
    cr_assert_eq(json_integer_value(json_object_get(c0, "duration_seconds")), 45);
    cr_assert_str_eq(jstr(c0, "recording_url"), "https://pbx.example/rec/1.wav");
    cr_assert_str_eq(jstr(c1, "started_at"), "2026-07-01T04:15:00Z");
    cr_assert_str_eq(jstr(c1, "status"), "no_answer");
    cr_assert_str_eq(jstr(c1, "disposition"), "NO ANSWER");
    cr_assert_str_eq(jstr(c1, "agent_name"), "Franklin");
    cr_assert_str_eq(jstr(c1, "vendor"), "getdesk");
    http_resp_free(&r);
}

Test(history, no_calls_is_an_empty_list)
{
    struct http_resp r;

    cr_assert_eq(sim_post(&gw, "/_sim/getdesk/config", "{\"synthetic\": false}"), 200);
    get(GWTEST_ACME_KEY, "/v1/call-logs?phone_number=%2B9779800000001", &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_array(json_object_get(r.json, "calls")));
    cr_assert_eq(json_array_size(json_object_get(r.json, "calls")), 0);
    /* Without dates: the last 30 days. */
    cr_assert_not_null(jstr(r.json, "start_date"));
    cr_assert_not_null(jstr(r.json, "end_date"));
    http_resp_free(&r);
}

Test(history, bad_queries)
{
    const char *bad[][2] = {
        {"/v1/call-logs", "phone_number"},
        {"/v1/call-logs?phone_number=banana", "phone_number"},
        {"/v1/call-logs?phone_number=%2B9779811789678&start_date=2026-07-01", "end_date"},
        {"/v1/call-logs?phone_number=%2B9779811789678&end_date=2026-07-01", "start_date"},
        {"/v1/call-logs?phone_number=%2B9779811789678&start_date=2026-7-1&end_date=2026-07-02",
         "start_date"},
        {"/v1/call-logs?phone_number=%2B9779811789678&start_date=2026-02-30&end_date=2026-03-02",
         "start_date"},
        {"/v1/call-logs?phone_number=%2B9779811789678&start_date=2026-07-10&end_date=2026-07-01",
         "end_date"},
        {"/v1/call-logs?phone_number=%2B9779811789678&start_date=2026-01-01&end_date=2026-03-01",
         "end_date"},
        {"/v1/call-logs?phone_number=%2B9779811789678&sort=asc", "sort"},
        {"/v1/call-logs/counts?phone_number=%2B9779811789678,nope", "phone_number"},
    };
    struct http_resp r;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        get(GWTEST_ACME_KEY, bad[i][0], &r);
        assert_problem(&r, 400, "validation");
        cr_assert_str_eq(jstr(json_array_get(json_object_get(r.json, "errors"), 0), "field"),
                         bad[i][1], "%s: %s", bad[i][0], r.body);
        http_resp_free(&r);
    }
    cr_assert_eq(sim_count(&gw, "GET", "/CallLogAPI"), 0);
    get(NULL, "/v1/call-logs?phone_number=%2B9779811789678", &r);
    assert_problem(&r, 401, "unauthorized");
    http_resp_free(&r);
}

Test(history, counts_for_many_numbers)
{
    char path[4096];
    size_t n, i;
    struct http_resp r;
    json_t *counts, *row;

    /* Synthetic data: as many calls as the number's last digit. */
    get(GWTEST_ACME_KEY,
        "/v1/call-logs/counts?phone_number=%2B9779811789673,%2B9779811789675,"
        "%2B9779811789673",
        &r);
    cr_assert_eq(r.status, 200, "%s", r.body);
    counts = json_object_get(r.json, "counts");
    cr_assert_eq(json_array_size(counts), 2, "duplicates are merged: %s", r.body);
    row = json_array_get(counts, 0);
    cr_assert_str_eq(jstr(row, "phone_number"), "+9779811789673");
    cr_assert_eq(json_integer_value(json_object_get(row, "total")), 3);
    cr_assert_eq(json_integer_value(json_object_get(row, "inbound")) +
                     json_integer_value(json_object_get(row, "outbound")),
                 3);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(counts, 1), "total")), 5);
    http_resp_free(&r);
    /* 101 distinct numbers: refused. */
    n = (size_t)snprintf(path, sizeof(path), "/v1/call-logs/counts?phone_number=");
    for (i = 0; i < 101; i++) {
        n += (size_t)snprintf(path + n, sizeof(path) - n, "%s%%2B97798%08zu", i ? "," : "", i);
    }
    get(GWTEST_ACME_KEY, path, &r);
    assert_problem(&r, 400, "validation");
    http_resp_free(&r);
}

Test(history, vendor_failing_or_hanging)
{
    struct http_resp r;
    json_t *src;

    cr_assert_eq(sim_post(&gw, "/_sim/faults",
                          "{\"path\":\"/CallLogAPI\",\"mode\":\"status\",\"status\":500}"),
                 200);
    get(GWTEST_ACME_KEY, "/v1/call-logs?phone_number=%2B9779811789678", &r);
    assert_problem(&r, 502, "vendor-error");
    src = json_array_get(json_object_get(r.json, "sources"), 0);
    cr_assert_str_eq(jstr(src, "status"), "error");
    http_resp_free(&r);
    cr_assert_eq(sim_post(&gw, "/_sim/faults", "{\"path\":\"/CallLogAPI\",\"mode\":\"hang\"}"),
                 200);
    get(GWTEST_ACME_KEY, "/v1/call-logs?phone_number=%2B9779811789678", &r);
    assert_problem(&r, 502, "vendor-error");
    src = json_array_get(json_object_get(r.json, "sources"), 0);
    cr_assert_str_eq(jstr(src, "status"), "timeout");
    cr_assert(r.ms >= 1500 && r.ms < 6000, "answered after %.0f ms", r.ms);
    http_resp_free(&r);
    /* A vendor that lies (garbage) is an error, not an empty history. */
    cr_assert_eq(sim_post(&gw, "/_sim/faults", "{\"path\":\"/CallLogAPI\",\"mode\":\"garbage\"}"),
                 200);
    get(GWTEST_ACME_KEY, "/v1/call-logs?phone_number=%2B9779811789678", &r);
    assert_problem(&r, 502, "vendor-error");
    http_resp_free(&r);
}

Test(history, tenant_without_history_vendor)
{
    struct http_resp r;

    get(GWTEST_GLOBEX_KEY, "/v1/call-logs?phone_number=%2B14155550100", &r);
    assert_problem(&r, 422, "unsupported-by-vendor");
    http_resp_free(&r);
    get(GWTEST_GLOBEX_KEY, "/v1/call-logs/counts?phone_number=%2B14155550100", &r);
    assert_problem(&r, 422, "unsupported-by-vendor");
    http_resp_free(&r);
}
