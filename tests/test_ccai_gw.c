/*
 * test_ccai_gw.c: CCAI Platform through the gateway, against the simulator:
 * outbound, inbound and scheduled placements, the 202 "agent must act"
 * answer, refusals with the vendor's message, the batched session-event
 * webhook behind Basic auth, live status, and customer flags.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include <hiredis/hiredis.h>

#include "crypto.h"
#include "helpers/gwtest.h"

#define OUTBOUND                                                                                 \
    "{\"to\": \"+1 859-657-9625\", \"agent\": \"admin@somedomain.com\", \"vendor\": \"ccai\"}"

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

TestSuite(ccai_gw, .init = setup, .fini = teardown, .timeout = 60);

/* method + path on the gateway with acme's key and an optional JSON body. */
static int
gw_call(const char *method, const char *path, const char *body, struct http_resp *r)
{
    char url[512];
    const char *headers[] = {"Authorization: Bearer " GWTEST_ACME_KEY,
                             "Content-Type: application/json", NULL};

    snprintf(url, sizeof(url), "%s%s", gw.base, path);
    return http_do(method, url, headers, body, body != NULL ? strlen(body) : 0, 5000, r);
}

/* Place a call; assert the status; copy its id. */
static json_t *
place(const char *body, long want, char *id, size_t idlen)
{
    struct http_resp r;
    json_t *out;

    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, body, &r), 0);
    cr_assert_eq(r.status, want, "%s", r.body);
    if (id != NULL) {
        snprintf(id, idlen, "%s", jstr(r.json, "id"));
    }
    out = json_incref(r.json);
    http_resp_free(&r);
    return out;
}

/* The body of the last logged simulator request to method+path, parsed. */
static json_t *
last_request_body(const char *method, const char *path)
{
    char q[256];
    json_t *reqs, *list, *req, *body;

    /* A path ending in '/' is a prefix (the id varies). */
    snprintf(q, sizeof(q), "/_sim/requests?method=%s&%s=%s", method,
             path[strlen(path) - 1] == '/' ? "path_prefix" : "path", path);
    reqs = sim_get_json(&gw, q);
    cr_assert_not_null(reqs);
    list = json_object_get(reqs, "requests");
    cr_assert_gt(json_array_size(list), 0, "no %s %s logged", method, path);
    req = json_array_get(list, json_array_size(list) - 1);
    body = json_object_get(req, "body");
    if (json_is_string(body)) {
        body = json_loads(json_string_value(body), 0, NULL);
    } else {
        body = json_incref(body);
    }
    json_decref(reqs);
    return body;
}

Test(ccai_gw, outbound_is_placed_and_session_events_complete_it)
{
    char id[64], path[128];
    json_t *call, *body, *events;
    size_t i, from_webhook = 0;

    call = place(OUTBOUND, 201, id, sizeof(id));
    cr_assert_str_eq(jstr(call, "vendor"), "ccai");
    cr_assert_str_eq(jstr(call, "status"), "queued");
    cr_assert_not_null(jstr(call, "vendor_call_id"));
    cr_assert(json_is_false(json_object_get(call, "agent_action_required")));
    json_decref(call);
    /* What CCAI received. */
    body = last_request_body("POST", "/apps/api/v1/calls");
    cr_assert_not_null(body);
    cr_assert_str_eq(jstr(body, "call_type"), "Voice Outbound (API)");
    cr_assert_str_eq(jstr(body, "agent_email"), "admin@somedomain.com");
    cr_assert_str_eq(jstr(body, "end_user_number"), "+18596579625");
    cr_assert_str_eq(jstr(body, "outbound_number"), "+13392195276");
    cr_assert_str_eq(jstr(body, "lang"), "en");
    json_decref(body);
    /* The session events (several per delivery) bring it to completed. */
    call = gw_wait_call_status(&gw, GWTEST_ACME_KEY, id, "completed", 8000);
    cr_assert_str_eq(jstr(call, "status"), "completed", "%s", json_dumps(call, 0));
    events = json_object_get(call, "events");
    for (i = 0; i < json_array_size(events); i++) {
        if (strcmp(jstr(json_array_get(events, i), "source"), "webhook") == 0) {
            from_webhook++;
        }
    }
    cr_assert_geq(from_webhook, 3, "every session event is kept: %s", json_dumps(events, 0));
    cr_assert_str_eq(jstr(call, "disposition"), "resolved");
    json_decref(call);
    /* Live status from the (configurable) single-call GET. */
    snprintf(path, sizeof(path), "/v1/calls/%s?refresh=true", id);
    {
        struct http_resp r;
        char hdr[32];
        cr_assert_eq(gw_get(&gw, GWTEST_ACME_KEY, path, &r), 0);
        cr_assert_eq(r.status, 200, "%s", r.body);
        cr_assert_str_eq(http_header(&r, "Callgate-Refresh", hdr, sizeof(hdr)), "ok");
        cr_assert_str_eq(jstr(r.json, "vendor_status"), "finished");
        /* The refresh learnt the recording: a gateway link, never CCAI's. */
        snprintf(path, sizeof(path), "/v1/calls/%s/recording", id);
        cr_assert_str_eq(jstr(r.json, "recording_url"), path);
        http_resp_free(&r);
        cr_assert_eq(gw_get(&gw, GWTEST_ACME_KEY, path, &r), 0);
        cr_assert_eq(r.status, 200, "%s", r.body);
        cr_assert_gt(r.len, 44, "a WAV file");
        cr_assert_eq(memcmp(r.body, "RIFF", 4), 0);
        http_resp_free(&r);
    }
}

Test(ccai_gw, accepted_202_when_the_agent_must_act)
{
    struct http_resp r, again;
    char path[128];

    cr_assert_eq(sim_post(&gw, "/_sim/ccai/config", "{\"accept\": \"agent_action\"}"), 200);
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, "k-202", OUTBOUND, &r), 0);
    cr_assert_eq(r.status, 202, "%s", r.body);
    cr_assert_str_eq(jstr(r.json, "status"), "queued");
    cr_assert(json_is_true(json_object_get(r.json, "agent_action_required")));
    cr_assert_str_eq(jstr(json_array_get(json_object_get(r.json, "attempts"), 0), "outcome"),
                     "accepted");
    /* Replayed as it was answered. */
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, "k-202", OUTBOUND, &again), 0);
    cr_assert_eq(again.status, 202);
    cr_assert_str_eq(again.body, r.body);
    /* No vendor id yet: flags cannot be asked for. */
    snprintf(path, sizeof(path), "/v1/calls/%s/flags", jstr(r.json, "id"));
    http_resp_free(&again);
    cr_assert_eq(gw_call("GET", path, NULL, &again), 0);
    assert_problem(&again, 409, "call-not-active");
    http_resp_free(&again);
    http_resp_free(&r);
}

Test(ccai_gw, refusal_carries_the_vendor_message)
{
    struct http_resp r;
    json_t *a0;

    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL,
                              "{\"to\": \"+18596579625\", \"agent\": \"busy.bee@somedomain.com\","
                              " \"vendor\": \"ccai\"}",
                              &r),
                 0);
    assert_problem(&r, 502, "vendor-rejected");
    a0 = json_array_get(json_object_get(r.json, "attempts"), 0);
    cr_assert_str_eq(jstr(a0, "vendor"), "ccai");
    cr_assert_str_eq(jstr(a0, "outcome"), "rejected");
    cr_assert_eq(json_integer_value(json_object_get(a0, "http_status")), 400);
    cr_assert_str_eq(jstr(a0, "detail"), "Agent is not available to take this call");
    http_resp_free(&r);
    /* An agent that is no e-mail address is refused before anything is sent. */
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL,
                              "{\"to\": \"+18596579625\", \"agent\": \"agent.017\","
                              " \"vendor\": \"ccai\"}",
                              &r),
                 0);
    assert_problem(&r, 502, "vendor-rejected");
    cr_assert_eq(sim_count(&gw, "POST", "/apps/api/v1/calls"), 1);
    http_resp_free(&r);
}

Test(ccai_gw, rate_limited_and_hanging_vendor)
{
    struct http_resp r;

    cr_assert_eq(sim_post(&gw, "/_sim/faults",
                          "{\"path\":\"/apps/api/v1/calls\",\"mode\":\"status\",\"status\":429,"
                          "\"body\":\"{\\\"message\\\":\\\"Too many requests\\\"}\",\"count\":1}"),
                 200);
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, OUTBOUND, &r), 0);
    assert_problem(&r, 503, "vendor-unavailable");
    http_resp_free(&r);
    cr_assert_eq(sim_post(&gw, "/_sim/faults",
                          "{\"path\":\"/apps/api/v1/calls\",\"mode\":\"hang\",\"count\":1}"),
                 200);
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, OUTBOUND, &r), 0);
    assert_problem(&r, 504, "vendor-timeout");
    http_resp_free(&r);
}

Test(ccai_gw, inbound_and_scheduled_are_routed_to_ccai)
{
    char id[64], when[64], body[256];
    json_t *call, *sent;
    time_t t = time(NULL) + 3600;
    struct tm tm;

    /* inbound: no agent, the queue is CCAI's menu id; the shipped table routes it. */
    call = place("{\"to\": \"+1 859-657-9625\", \"type\": \"inbound\", \"queue\": \"9\"}", 201,
                 id, sizeof(id));
    cr_assert_str_eq(jstr(call, "vendor"), "ccai");
    cr_assert_str_eq(jstr(call, "route"), "contact-center");
    cr_assert_str_eq(jstr(call, "type"), "inbound");
    json_decref(call);
    sent = last_request_body("POST", "/apps/api/v1/calls");
    cr_assert_str_eq(jstr(sent, "call_type"), "Voice Inbound (API)");
    cr_assert_eq(json_integer_value(json_object_get(sent, "menu_id")), 9);
    json_decref(sent);

    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(body, sizeof(body),
             "{\"to\": \"+18596579625\", \"type\": \"scheduled\", \"queue\": \"9\","
             " \"agent\": \"admin@somedomain.com\", \"scheduled_at\": \"%s\"}",
             when);
    call = place(body, 201, id, sizeof(id));
    cr_assert_str_eq(jstr(call, "status"), "scheduled");
    cr_assert_str_eq(jstr(call, "scheduled_at"), when);
    json_decref(call);
    sent = last_request_body("POST", "/apps/api/v1/calls");
    cr_assert_str_eq(jstr(sent, "call_type"), "Voice Scheduled (API)");
    cr_assert_str_eq(jstr(sent, "scheduled_at"), when);
    json_decref(sent);

    /* A menu id that is not an integer never reaches CCAI. */
    call = place("{\"to\": \"+18596579625\", \"type\": \"inbound\", \"queue\": \"sales\"}", 502,
                 NULL, 0);
    json_decref(call);
}

Test(ccai_gw, capabilities_the_vendor_lacks_are_422)
{
    struct http_resp r;
    char id[64], path[128];
    json_t *call;

    /* globex has only CloudDialer: it cannot take an inbound call anywhere. */
    cr_assert_eq(gw_post_call(&gw, GWTEST_GLOBEX_KEY, NULL,
                              "{\"to\": \"+14155550100\", \"type\": \"inbound\", \"queue\": \"9\"}",
                              &r),
                 0);
    assert_problem(&r, 422, "unsupported-by-vendor");
    http_resp_free(&r);
    /* A CloudDialer call has no customer flags; a CCAI call has no participants. */
    call = place("{\"to\": \"+919876543210\", \"agent\": \"agent.017\"}", 201, id, sizeof(id));
    json_decref(call);
    snprintf(path, sizeof(path), "/v1/calls/%s/flags", id);
    cr_assert_eq(gw_call("GET", path, NULL, &r), 0);
    assert_problem(&r, 422, "unsupported-by-vendor");
    http_resp_free(&r);
    call = place(OUTBOUND, 201, id, sizeof(id));
    json_decref(call);
    snprintf(path, sizeof(path), "/v1/calls/%s/participants", id);
    cr_assert_eq(gw_call("POST", path, "{\"number\": \"+18596579626\"}", &r), 0);
    assert_problem(&r, 422, "unsupported-by-vendor");
    http_resp_free(&r);
}

Test(ccai_gw, customer_flags_read_and_set)
{
    struct http_resp r;
    char id[64], path[128];
    json_t *call, *sent;

    call = place(OUTBOUND, 201, id, sizeof(id));
    json_decref(call);
    snprintf(path, sizeof(path), "/v1/calls/%s/flags", id);
    cr_assert_eq(gw_call("GET", path, NULL, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_false(json_object_get(r.json, "verified_customer")));
    cr_assert(json_is_false(json_object_get(r.json, "bad_actor")));
    cr_assert(json_is_false(json_object_get(r.json, "repeat_customer")));
    http_resp_free(&r);

    cr_assert_eq(gw_call("PATCH", path, "{\"bad_actor\": true}", &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_true(json_object_get(r.json, "bad_actor")));
    cr_assert(json_is_false(json_object_get(r.json, "verified_customer")));
    http_resp_free(&r);
    sent = last_request_body("PATCH", "/apps/api/v1/calls/");
    if (sent != NULL) {
        cr_assert(json_is_true(json_object_get(sent, "bad_actor")));
        cr_assert_null(json_object_get(sent, "verified_customer"), "only what was asked");
        json_decref(sent);
    }
    cr_assert_eq(gw_call("GET", path, NULL, &r), 0);
    cr_assert(json_is_true(json_object_get(r.json, "bad_actor")), "%s", r.body);
    http_resp_free(&r);

    /* Bad input never reaches the vendor. */
    cr_assert_eq(gw_call("PATCH", path, "{\"bad_actor\": \"yes\"}", &r), 0);
    assert_problem(&r, 400, "validation");
    http_resp_free(&r);
    cr_assert_eq(gw_call("PATCH", path, "{\"vip\": true}", &r), 0);
    assert_problem(&r, 400, "validation");
    http_resp_free(&r);
    cr_assert_eq(gw_call("PATCH", path, "{}", &r), 0);
    assert_problem(&r, 400, "validation");
    http_resp_free(&r);
    cr_assert_eq(gw_call("PATCH", path, "{\"bad_actor\": tru", &r), 0);
    assert_problem(&r, 400, "validation");
    http_resp_free(&r);
    cr_assert_eq(gw_call("GET", "/v1/calls/call_nosuchcall000000000000000/flags", NULL, &r), 0);
    assert_problem(&r, 404, "not-found");
    http_resp_free(&r);
    /* The vendor lying about the flags is an error, not a made-up answer. */
    cr_assert_eq(sim_post(&gw, "/_sim/faults",
                          "{\"path\":\"/apps/api/v1/calls/\",\"method\":\"GET\",\"mode\":\"garbage\"}"),
                 200);
    cr_assert_eq(gw_call("GET", path, NULL, &r), 0);
    cr_assert(r.status == 502 || r.status == 200, "%ld %s", r.status, r.body);
    http_resp_free(&r);
}

/* POST a session-event delivery to the webhook with the given Basic credential. */
static long
post_events(const char *userpass, const char *body, struct http_resp *out)
{
    char url[256], auth[256], b64[200];
    const char *headers[3] = {"Content-Type: application/json", NULL, NULL};

    snprintf(url, sizeof(url), "%s/v1/webhooks/ccai/%s", gw.base, GWTEST_ACME_CCAI_TOKEN);
    if (userpass != NULL) {
        crypto_base64_encode(userpass, strlen(userpass), b64, sizeof(b64));
        snprintf(auth, sizeof(auth), "Authorization: Basic %s", b64);
        headers[1] = auth;
    }
    cr_assert_eq(http_do("POST", url, headers, body, strlen(body), 5000, out), 0);
    return out->status;
}

Test(ccai_gw, webhook_needs_basic_auth_and_keeps_everything)
{
    const char *ev = "{\"count\":2,\"events\":[{\"event_id\":\"ev-1\",\"timestamp\":1700000000000,"
                     "\"state\":\"connected\",\"item\":{\"call_id\":999999}},{\"event_id\":\"ev-2\","
                     "\"timestamp\":1700000001000,\"state\":\"disconnected\",\"item\":{\"call_id\":"
                     "999999}}]}";
    struct http_resp r;
    redisReply *rep;

    cr_assert_eq(post_events(NULL, ev, &r), 404, "%s", r.body);
    http_resp_free(&r);
    cr_assert_eq(post_events("ccai-hook:wrong", ev, &r), 404);
    http_resp_free(&r);
    cr_assert_eq(post_events(GWTEST_CCAI_HOOK_AUTH, "{\"count\":1,\"events\":[{}]}", &r), 400);
    assert_problem(&r, 400, "validation");
    http_resp_free(&r);
    cr_assert_eq(post_events(GWTEST_CCAI_HOOK_AUTH, "not json", &r), 400);
    http_resp_free(&r);
    /* Unknown call: both events kept as orphans, not dropped. */
    cr_assert_eq(post_events(GWTEST_CCAI_HOOK_AUTH, ev, &r), 202, "%s", r.body);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "events")), 2);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "orphans")), 2);
    http_resp_free(&r);
    rep = redis_fixture_cmd(&gw.redis, "XLEN cg:orphans");
    cr_assert_eq(rep->integer, 2);
    freeReplyObject(rep);
    /* The vendor's retry of the same delivery is acknowledged and dropped. */
    cr_assert_eq(post_events(GWTEST_CCAI_HOOK_AUTH, ev, &r), 200, "%s", r.body);
    cr_assert_str_eq(jstr(r.json, "status"), "duplicate");
    http_resp_free(&r);
    rep = redis_fixture_cmd(&gw.redis, "XLEN cg:orphans");
    cr_assert_eq(rep->integer, 2);
    freeReplyObject(rep);
}
