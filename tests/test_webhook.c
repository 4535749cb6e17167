/*
 * test_webhook.c: vendor webhooks in and tenant events out, end to end:
 * the simulator's CloudDialer result push reaches callgate, is stored once
 * (deduplicated), moves the call's status forward only, and is relayed to the
 * tenant's endpoint signed per Standard Webhooks.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>

#include "crypto.h"
#include "helpers/gwtest.h"
#include "relay.h"

#define CALL_BODY "{\"to\": \"+919876543210\", \"agent\": \"agent.017\"}"

static struct gwtest gw;

static void
setup(void)
{
    struct gwtest_opts o = {.no_push = 1};

    gwtest_start(&gw, &o);
}

static void
teardown(void)
{
    gwtest_stop(&gw);
}

TestSuite(webhook, .init = setup, .fini = teardown, .timeout = 60);

/* Place a call; returns its id (static buffer). */
static const char *
place_call(void)
{
    static char id[64];
    struct http_resp r;

    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, CALL_BODY, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(id, sizeof(id), "%s", jstr(r.json, "id"));
    http_resp_free(&r);
    return id;
}

static long
push(const char *token, const char *method, const char *body, struct http_resp *out)
{
    char url[256];
    const char *headers[] = {"Content-Type: application/json", NULL};
    struct http_resp r;
    long st;

    snprintf(url, sizeof(url), "%s/v1/webhooks/clouddialer/%s", gw.base, token);
    cr_assert_eq(http_do(method, url, headers, body, body != NULL ? strlen(body) : 0, 0, &r), 0);
    st = r.status;
    if (out != NULL) {
        *out = r;
    } else {
        http_resp_free(&r);
    }
    return st;
}

static char *
push_body(const char *call_id, const char *status, const char *end)
{
    char *s = malloc(1024);

    snprintf(s, 1024,
             "{\"call_id\":\"cd-%s\",\"uuid\":\"%s\",\"status\":\"%s\",\"duration\":42,"
             "\"customer_number\":\"9876543210\",\"crm_username\":\"agent.017\","
             "\"direction\":\"outbound\",\"call_type\":\"browser\",\"disposition\":\"CRM_CALL\","
             "\"recording_url\":\"https://vendor.example/recordings/secret-name.wav\","
             "\"start_time\":\"2026-07-03T10:00:00Z\",\"end_time\":%s}",
             call_id, call_id, status, end);
    return s;
}

/* Verify a Standard Webhooks delivery stored by the sink. */
static void
assert_signed(json_t *ev)
{
    json_t *h = json_object_get(ev, "headers");
    const char *id = jstr(h, "webhook-id"), *ts = jstr(h, "webhook-timestamp");
    const char *sig = jstr(h, "webhook-signature"), *body = jstr(ev, "body");
    const char *secrets[] = {GWTEST_SECRET};
    char *expected;
    long long now = (long long)time(NULL), t;

    cr_assert_not_null(id);
    cr_assert_not_null(ts);
    cr_assert_not_null(sig);
    cr_assert(strncmp(id, "evt_", 4) == 0, "webhook-id %s", id);
    t = atoll(ts);
    cr_assert(t > now - 60 && t <= now + 5, "timestamp %s is not fresh", ts);
    expected = relay_sign(secrets, 1, id, t, body, strlen(body));
    cr_assert_not_null(expected);
    cr_assert_str_eq(sig, expected, "signature does not verify");
    free(expected);
    cr_assert_str_eq(jstr(h, "content-type"), "application/json");
}

Test(webhook, push_updates_call_and_is_relayed_signed)
{
    const char *id = place_call();
    char *body = push_body(id, "ANSWER", "\"2026-07-03T10:00:42Z\"");
    json_t *call, *events, *ev, *payload, *data;
    struct http_resp r;

    cr_assert_eq(push(GWTEST_ACME_TOKEN, "POST", body, &r), 200, "%s", r.body);
    cr_assert_str_eq(jstr(r.json, "status"), "stored");
    http_resp_free(&r);
    call = gw_wait_call_status(&gw, GWTEST_ACME_KEY, id, "completed", 3000);
    cr_assert_str_eq(jstr(call, "status"), "completed");
    cr_assert_str_eq(jstr(call, "started_at"), "2026-07-03T10:00:00Z");
    cr_assert_str_eq(jstr(call, "answered_at"), "2026-07-03T10:00:00Z");
    cr_assert_str_eq(jstr(call, "ended_at"), "2026-07-03T10:00:42Z");
    cr_assert_eq(json_integer_value(json_object_get(call, "duration_seconds")), 42);
    cr_assert_str_eq(jstr(call, "vendor_status"), "ANSWER");
    cr_assert_str_eq(jstr(call, "disposition"), "CRM_CALL");
    json_decref(call);

    events = sim_wait_sink(&gw, "acme", 1, 5000);
    cr_assert_eq(json_array_size(events), 1);
    ev = json_array_get(events, 0);
    assert_signed(ev);
    payload = json_loads(jstr(ev, "body"), 0, NULL);
    cr_assert_str_eq(jstr(payload, "type"), "call.completed");
    cr_assert_str_eq(jstr(payload, "id"), jstr(json_object_get(ev, "headers"), "webhook-id"));
    cr_assert_not_null(jstr(payload, "created_at"));
    data = json_object_get(payload, "data");
    cr_assert_str_eq(jstr(data, "id"), id);
    cr_assert_str_eq(jstr(data, "status"), "completed");
    /* The vendor's recording URL never reaches the tenant. */
    cr_assert_null(strstr(jstr(ev, "body"), "vendor.example"));
    cr_assert_null(strstr(jstr(ev, "body"), "secret-name"));
    json_decref(payload);
    json_decref(events);
    free(body);
}

Test(webhook, duplicate_push_is_acknowledged_and_dropped)
{
    const char *id = place_call();
    char *body = push_body(id, "ANSWER", "\"2026-07-03T10:00:42Z\"");
    struct http_resp r;
    json_t *call, *events;

    cr_assert_eq(push(GWTEST_ACME_TOKEN, "POST", body, NULL), 200);
    cr_assert_eq(push(GWTEST_ACME_TOKEN, "POST", body, &r), 200);
    cr_assert_str_eq(jstr(r.json, "status"), "duplicate");
    http_resp_free(&r);
    cr_assert_eq(push(GWTEST_ACME_TOKEN, "POST", body, NULL), 200);
    call = gw_wait_call_status(&gw, GWTEST_ACME_KEY, id, "completed", 3000);
    cr_assert_eq(json_array_size(json_object_get(call, "events")), 1);
    json_decref(call);
    gwtest_sleep_ms(300);
    events = sim_wait_sink(&gw, "acme", 1, 3000);
    cr_assert_eq(json_array_size(events), 1, "one event relayed, not three");
    json_decref(events);
    free(body);
}

Test(webhook, terminal_status_never_goes_back)
{
    const char *id = place_call();
    char *done = push_body(id, "NO_ANSWER", "\"2026-07-03T10:00:30Z\"");
    char *late = push_body(id, "INITIATED", "null");
    json_t *call, *evs;

    cr_assert_eq(push(GWTEST_ACME_TOKEN, "POST", done, NULL), 200);
    cr_assert_eq(push(GWTEST_ACME_TOKEN, "POST", late, NULL), 200);
    call = gw_wait_call_status(&gw, GWTEST_ACME_KEY, id, "no_answer", 3000);
    cr_assert_str_eq(jstr(call, "status"), "no_answer");
    gwtest_sleep_ms(200);
    json_decref(call);
    call = gw_wait_call_status(&gw, GWTEST_ACME_KEY, id, "no_answer", 100);
    evs = json_object_get(call, "events");
    cr_assert_eq(json_array_size(evs), 2, "both events are in the history");
    cr_assert(json_is_true(json_object_get(json_array_get(evs, 0), "applied")));
    cr_assert(json_is_false(json_object_get(json_array_get(evs, 1), "applied")));
    cr_assert_str_eq(jstr(json_array_get(evs, 1), "status"), "queued");
    /* A late event only fills fields the call lacks. */
    cr_assert_str_eq(jstr(call, "vendor_status"), "NO_ANSWER");
    cr_assert_str_eq(jstr(call, "ended_at"), "2026-07-03T10:00:30Z");
    json_decref(call);
    free(done);
    free(late);
}

Test(webhook, wrong_token_or_vendor_is_404)
{
    struct http_resp r;
    char url[256];
    char *body = push_body("call_x", "ANSWER", "null");

    cr_assert_eq(push("not-the-token-at-all", "POST", body, &r), 404);
    cr_assert_str_eq(jstr(r.json, "type"), "/problems/not-found");
    http_resp_free(&r);
    cr_assert_eq(push(GWTEST_ACME_TOKEN "x", "POST", body, NULL), 404);
    snprintf(url, sizeof(url), "%s/v1/webhooks/nosuchvendor/%s", gw.base, GWTEST_ACME_TOKEN);
    cr_assert_eq(http_do("POST", url, NULL, body, strlen(body), 0, &r), 0);
    cr_assert_eq(r.status, 404);
    http_resp_free(&r);
    free(body);
}

Test(webhook, malformed_payloads_are_400)
{
    const char *bodies[] = {"", "{", "[]", "{\"uuid\":\"call_x\"}", "{\"status\":\"ANSWER\"}",
                            "{\"uuid\":\"call_x\",\"status\":\"EXPLODED\"}",
                            "{\"uuid\":7,\"status\":\"ANSWER\"}",
                            "{\"uuid\":\"call_x\",\"status\":\"ANSWER\",\"start_time\":\"soon\"}"};
    struct http_resp r;
    size_t i;

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        cr_assert_eq(push(GWTEST_ACME_TOKEN, "POST", bodies[i], &r), 400, "%s -> %s", bodies[i],
                     r.body);
        cr_assert_str_eq(jstr(r.json, "type"), "/problems/validation");
        http_resp_free(&r);
    }
    /* CloudDialer pushes with POST; a GET is not a CloudDialer push. */
    cr_assert_eq(push(GWTEST_ACME_TOKEN, "GET", NULL, NULL), 400);
}

Test(webhook, oversized_push_is_413)
{
    size_t n = 300 * 1024;
    char *body = malloc(n + 1);
    struct http_resp r;

    memset(body, ' ', n);
    body[0] = '{';
    body[n - 1] = '}';
    body[n] = '\0';
    cr_assert_eq(push(GWTEST_ACME_TOKEN, "POST", body, &r), 413);
    http_resp_free(&r);
    free(body);
}

Test(webhook, unknown_call_is_kept_as_orphan)
{
    char *body = push_body("call_doesnotexist", "ANSWER", "\"2026-07-03T10:00:42Z\"");
    struct redisReply *rep;

    cr_assert_eq(push(GWTEST_ACME_TOKEN, "POST", body, NULL), 202);
    rep = redis_fixture_cmd(&gw.redis, "XLEN cg:orphans");
    cr_assert_not_null(rep);
    cr_assert_eq(rep->integer, 1, "the event is stored, not dropped");
    freeReplyObject(rep);
    free(body);
}

Test(webhook, other_tenants_token_cannot_touch_a_call)
{
    const char *id = place_call();
    char *body = push_body(id, "BUSY", "\"2026-07-03T10:00:42Z\"");
    json_t *call;

    /* globex's token with acme's call id: stored as an orphan, acme's call untouched. */
    cr_assert_eq(push(GWTEST_GLOBEX_TOKEN, "POST", body, NULL), 202);
    call = gw_wait_call_status(&gw, GWTEST_ACME_KEY, id, "queued", 1000);
    cr_assert_str_eq(jstr(call, "status"), "queued");
    json_decref(call);
    free(body);
}

Test(webhook, relay_retries_until_the_tenant_answers)
{
    const char *id = place_call();
    char *body = push_body(id, "ANSWER", "\"2026-07-03T10:00:42Z\"");
    json_t *events;
    const char *id1, *id2;

    cr_assert_eq(sim_post(&gw, "/_sim/sink-config", "{\"status\":500,\"count\":1}"), 200);
    cr_assert_eq(push(GWTEST_ACME_TOKEN, "POST", body, NULL), 200);
    events = sim_wait_sink(&gw, "acme", 2, 6000);
    cr_assert_eq(json_array_size(events), 2, "a failed delivery is retried");
    id1 = jstr(json_object_get(json_array_get(events, 0), "headers"), "webhook-id");
    id2 = jstr(json_object_get(json_array_get(events, 1), "headers"), "webhook-id");
    cr_assert_str_eq(id1, id2, "webhook-id is stable across retries");
    assert_signed(json_array_get(events, 1));
    json_decref(events);
    free(body);
}

Test(webhook, simulator_push_end_to_end)
{
    /* The simulator's own push (not a hand-made one): configure it now. */
    char cfg[256];
    const char *id;
    json_t *call;

    snprintf(cfg, sizeof(cfg), "{\"push_url\":\"%s/v1/webhooks/clouddialer/%s\"}", gw.base,
             GWTEST_ACME_TOKEN);
    cr_assert_eq(sim_post(&gw, "/_sim/config", cfg), 200);
    id = place_call();
    call = gw_wait_call_status(&gw, GWTEST_ACME_KEY, id, "completed", 5000);
    cr_assert_str_eq(jstr(call, "status"), "completed");
    json_decref(call);
}

/* ---- recordings through the gateway ------------------------------------- */

/* Place a call, let the simulated call end, push its result with rec_url. */
enum rec_kind { REC_OK, REC_DELETED, REC_FOREIGN };

static const char *
call_with_recording(enum rec_kind kind, char *vendor_call_id, size_t vlen)
{
    static char id[64];
    char url[256], body[1024];
    struct http_resp r;

    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, CALL_BODY, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(id, sizeof(id), "%s", jstr(r.json, "id"));
    snprintf(vendor_call_id, vlen, "%s", jstr(r.json, "vendor_call_id"));
    http_resp_free(&r);
    gwtest_sleep_ms(600); /* the simulated call ends; its recording exists */
    if (kind == REC_FOREIGN) {
        snprintf(url, sizeof(url), "http://169.254.169.254/latest/meta-data/%s", vendor_call_id);
    } else {
        snprintf(url, sizeof(url), "%s/recordings/crm_%s%s.wav", gw.sim_base, vendor_call_id,
                 kind == REC_DELETED ? "-deleted" : "");
    }
    snprintf(body, sizeof(body),
             "{\"call_id\":\"%s\",\"uuid\":\"%s\",\"status\":\"ANSWER\",\"duration\":1,"
             "\"recording_url\":\"%s\",\"start_time\":\"2026-07-03T10:00:00Z\","
             "\"end_time\":\"2026-07-03T10:00:01Z\"}",
             vendor_call_id, id, url);
    cr_assert_eq(push(GWTEST_ACME_TOKEN, "POST", body, NULL), 200);
    return id;
}

Test(webhook, recording_streams_through_the_gateway)
{
    char vcid[128], path[160], direct[256];
    struct http_resp mine, theirs;
    const char *id = call_with_recording(REC_OK, vcid, sizeof(vcid));
    char ct[64];
    json_t *call;

    call = gw_wait_call_status(&gw, GWTEST_ACME_KEY, id, "completed", 3000);
    snprintf(path, sizeof(path), "/v1/calls/%s/recording", id);
    cr_assert_str_eq(jstr(call, "recording_url"), path);
    json_decref(call);
    cr_assert_eq(gw_get(&gw, GWTEST_ACME_KEY, path, &mine), 0);
    cr_assert_eq(mine.status, 200, "%s", mine.body);
    cr_assert_str_eq(http_header(&mine, "Content-Type", ct, sizeof(ct)), "audio/wav");
    snprintf(direct, sizeof(direct), "%s/recordings/crm_%s.wav", gw.sim_base, vcid);
    cr_assert_eq(http_do("GET", direct, NULL, NULL, 0, 5000, &theirs), 0);
    cr_assert_eq(theirs.status, 200);
    cr_assert_gt(theirs.len, 44);
    cr_assert_eq(mine.len, theirs.len);
    cr_assert(memcmp(mine.body, theirs.body, mine.len) == 0, "the bytes differ");
    http_resp_free(&mine);
    http_resp_free(&theirs);
    /* Another tenant cannot fetch it. */
    cr_assert_eq(gw_get(&gw, GWTEST_GLOBEX_KEY, path, &mine), 0);
    assert_problem(&mine, 404, "not-found");
    http_resp_free(&mine);
}

Test(webhook, recording_missing_or_gone)
{
    char vcid[128], path[160];
    struct http_resp r;
    const char *id;

    /* No push yet: no recording. */
    id = place_call();
    snprintf(path, sizeof(path), "/v1/calls/%s/recording", id);
    cr_assert_eq(gw_get(&gw, GWTEST_ACME_KEY, path, &r), 0);
    assert_problem(&r, 404, "not-found");
    http_resp_free(&r);
    /* The vendor no longer has it. */
    id = call_with_recording(REC_DELETED, vcid, sizeof(vcid));
    snprintf(path, sizeof(path), "/v1/calls/%s/recording", id);
    cr_assert_eq(gw_get(&gw, GWTEST_ACME_KEY, path, &r), 0);
    assert_problem(&r, 404, "not-found");
    http_resp_free(&r);
    cr_assert_eq(gw_get(&gw, GWTEST_ACME_KEY, "/v1/calls/call_nope/recording", &r), 0);
    assert_problem(&r, 404, "not-found");
    http_resp_free(&r);
}

Test(webhook, recording_from_a_foreign_host_is_refused)
{
    char vcid[128], path[160];
    struct http_resp r;
    const char *id;

    /* A push naming an internal address must not make the gateway fetch it. */
    id = call_with_recording(REC_FOREIGN, vcid, sizeof(vcid));
    snprintf(path, sizeof(path), "/v1/calls/%s/recording", id);
    cr_assert_eq(gw_get(&gw, GWTEST_ACME_KEY, path, &r), 0);
    assert_problem(&r, 502, "vendor-error");
    http_resp_free(&r);
}

/* Nothing secret or personal reaches the log: keys, tokens, secrets, full numbers. */
Test(webhook, logs_hold_no_secrets_or_numbers)
{
    const char *id = place_call();
    char *body = push_body(id, "ANSWER", "\"2026-07-03T10:00:42Z\"");
    const char *canaries[] = {GWTEST_ACME_KEY, GWTEST_ACME_TOKEN, &GWTEST_SECRET[6],
                              "cd-test-key", "9876543210", "agent.017", NULL};
    struct http_resp r;
    json_t *events;
    FILE *f;
    char *log = NULL;
    size_t len = 0, i;

    cr_assert_eq(push(GWTEST_ACME_TOKEN, "POST", body, NULL), 200);
    events = sim_wait_sink(&gw, "acme", 1, 5000);
    json_decref(events);
    cr_assert_eq(push("wrong-token-000000000", "POST", body, NULL), 404);
    cr_assert_eq(gw_post_call(&gw, "wrong-key", NULL, CALL_BODY, &r), 0);
    http_resp_free(&r);
    f = fopen(gw.gw_log, "r");
    cr_assert_not_null(f);
    (void)getdelim(&log, &len, '\0', f);
    fclose(f);
    cr_assert_not_null(log);
    cr_assert(strstr(log, "\"event\":\"update_stored\"") != NULL);
    for (i = 0; canaries[i] != NULL; i++) {
        cr_assert_null(strstr(log, canaries[i]), "the log holds \"%s\"", canaries[i]);
    }
    free(log);
    free(body);
}

/* The vendor never sends the recording: 504 at the download deadline (3 s here). */
Test(webhook, recording_vendor_hangs)
{
    char vcid[128], path[160];
    struct http_resp r;
    const char *id = call_with_recording(REC_OK, vcid, sizeof(vcid));

    cr_assert_eq(sim_post(&gw, "/_sim/faults",
                          "{\"method\":\"GET\",\"path\":\"/recordings\",\"mode\":\"hang\"}"),
                 200);
    snprintf(path, sizeof(path), "/v1/calls/%s/recording", id);
    cr_assert_eq(gw_get(&gw, GWTEST_ACME_KEY, path, &r), 0);
    assert_problem(&r, 504, "vendor-timeout");
    cr_assert(r.ms >= 2500 && r.ms < 6000, "answered after %.0f ms", r.ms);
    http_resp_free(&r);
}

/* A push that does not carry our id is matched through the vendor's own call id. */
Test(webhook, push_found_through_the_vendor_call_id)
{
    char vcid[128], body[512];
    struct http_resp r;
    json_t *call;
    const char *id;

    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, CALL_BODY, &r), 0);
    cr_assert_eq(r.status, 201);
    id = jstr(r.json, "id");
    snprintf(vcid, sizeof(vcid), "%s", jstr(r.json, "vendor_call_id"));
    snprintf(body, sizeof(body),
             "{\"call_id\":\"%s\",\"uuid\":\"not-our-id\",\"status\":\"BUSY\",\"duration\":0,"
             "\"start_time\":\"2026-07-03T10:00:00Z\",\"end_time\":\"2026-07-03T10:00:05Z\"}",
             vcid);
    cr_assert_eq(push(GWTEST_ACME_TOKEN, "POST", body, NULL), 200);
    call = gw_wait_call_status(&gw, GWTEST_ACME_KEY, id, "busy", 3000);
    cr_assert_str_eq(jstr(call, "status"), "busy");
    json_decref(call);
    http_resp_free(&r);
}

Test(webhook, the_tenant_event_is_durable_before_the_vendor_hears_2xx)
{
    struct http_resp r;
    redisReply *rep;
    char *body, id[64];

    /* A callback that refuses connections: the event must wait in Redis. */
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL,
                              "{\"to\": \"+919876543210\", \"agent\": \"agent.017\","
                              " \"callback_url\": \"http://127.0.0.1:1/hooks\"}",
                              &r),
                 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(id, sizeof(id), "%s", jstr(r.json, "id"));
    http_resp_free(&r);
    body = push_body(id, "ANSWER", "\"2026-07-03T10:02:30Z\"");
    cr_assert_eq(push(GWTEST_ACME_TOKEN, "POST", body, NULL), 200);
    free(body);
    /* The moment the vendor has its 2xx, the delivery exists in Redis. */
    rep = redis_fixture_cmd(&gw.redis, "EXISTS cg:relay:call:%s", id);
    cr_assert_not_null(rep);
    cr_assert_eq(rep->integer, 1, "the tenant event was not stored before the 2xx");
    freeReplyObject(rep);
}
