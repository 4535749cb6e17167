/*
 * test_clouddialer.c: the CloudDialer adapter (src/vendors/clouddialer.c),
 * through the registry (vendor_ops_find) as the gateway uses it.
 *
 * Facts from the vendor's reference (shared/seeds/002, shared/vendors.md §4):
 * POST /calls with a Bearer key and JSON {from_number, to_number ("10-digit
 * or +91"), uuid (our id, echoed in the push), crm_username | agent_number,
 * recording, max_ring_time}; 200 {"status":"success","call_id":...}; 400
 * validation; 401; 403; 502 "could not queue"; the result push carries
 * call_id, uuid, status (INITIATED, ANSWER, NO_ANSWER, BUSY, FAILED,
 * CANCELED), duration, start_time/end_time (ISO 8601 Z), recording_url, and
 * legs with roles agent|destination and DIALING/JOINED/LEFT/FAILED.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helpers/fixture.h"
#include <jansson.h>

#include "conf.h"
#include "vendor.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK() __lsan_do_recoverable_leak_check()
#else
#define LEAK_CHECK() 0
#endif

#define CALL_ID "call_01J1Z8Q4W5ABCDEFGHJKMNPQRS"
#define T_START 1783072800000LL /* 2026-07-03T10:00:00Z */
#define T_END 1783072950000LL   /* 2026-07-03T10:02:30Z */

static struct conf_vendor cv;
static struct vendor_ctx ctx;
static const struct vendor_ops *ops;

static void
setup(void)
{
    memset(&cv, 0, sizeof(cv));
    cv.name = "clouddialer";
    cv.base_url = "http://vendor.test";
    cv.api_key = "k";
    cv.from_number = "+919800000000";
    cv.time_zone = "Asia/Kolkata";
    cv.connect_timeout_ms = 3000;
    cv.timeout_ms = 10000;
    vendor_ctx_init(&ctx, &cv, NULL);
    ops = vendor_ops_find("clouddialer");
    cr_assert_not_null(ops);
}

static void
teardown(void)
{
    if (LEAK_CHECK() != 0) {
        abort(); /* an assertion in .fini would not fail the test */
    }
}

TestSuite(clouddialer, .init = setup, .fini = teardown, .timeout = 10);

static struct vendor_call
a_call(void)
{
    struct vendor_call c = {
        .call_id = CALL_ID,
        .type = "outbound",
        .to = "+919876543210",
        .from = NULL,
        .agent = "agent.017",
        .record = 1,
        .max_ring_seconds = 30,
        .lang = "en",
    };
    return c;
}

static int
has_header(const struct vendor_http *h, const char *want)
{
    size_t i;

    for (i = 0; h->headers != NULL && h->headers[i] != NULL; i++) {
        if (strcmp(h->headers[i], want) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Build and parse the body; returns the parsed object (caller decrefs). */
static json_t *
place(const struct vendor_call *call, struct vendor_http *h)
{
    char err[256] = "";
    json_error_t jerr;
    json_t *body;

    memset(h, 0, sizeof(*h));
    cr_assert_eq(ops->build_place(&ctx, call, h, err, sizeof(err)), 0, "refused: %s", err);
    cr_assert_not_null(h->body);
    cr_assert_eq(h->body_len, strlen(h->body));
    body = json_loadb(h->body, h->body_len, JSON_REJECT_DUPLICATES, &jerr);
    cr_assert_not_null(body, "body is not JSON: %s (%s)", jerr.text, h->body);
    cr_assert(json_is_object(body));
    return body;
}

static const char *
str_of(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    cr_assert(json_is_string(v), "\"%s\" is not a string", key);
    return json_string_value(v);
}

/* ---------------------------------------------------------------------------
 * Registry
 */

Test(clouddialer, registered, .timeout = 10)
{
    cr_assert_str_eq(ops->name, "clouddialer");
    cr_assert_not_null(ops->build_place);
    cr_assert_not_null(ops->parse_place);
    cr_assert_not_null(ops->parse_webhook);
    cr_assert(ops->caps & VENDOR_CAP_OUTBOUND);
    cr_assert(ops->caps & VENDOR_CAP_WEBHOOKS);
    cr_assert_null(vendor_ops_find("acmetel"));
    cr_assert_null(vendor_ops_find(NULL));
    cr_assert_not_null(strstr(vendor_known_names(), "clouddialer"));
}

Test(clouddialer, ctx_tenant_overrides, .timeout = 10)
{
    struct conf_tenant_vendor tv = {.vendor = "clouddialer", .api_key = "tenant-key",
                                    .from_number = "+919800000001"};
    struct conf_tenant_vendor bare = {.vendor = "clouddialer"};
    struct vendor_ctx c2;

    vendor_ctx_init(&c2, &cv, &tv);
    cr_assert_eq(c2.conf, &cv);
    cr_assert_str_eq(c2.api_key, "tenant-key");
    cr_assert_str_eq(c2.from_number, "+919800000001");
    vendor_ctx_init(&c2, &cv, &bare);
    cr_assert_str_eq(c2.api_key, "k");
    cr_assert_str_eq(c2.from_number, "+919800000000");
    cr_assert_eq(ctx.api_key, cv.api_key);
}

/* ---------------------------------------------------------------------------
 * build_place
 */

Test(clouddialer, build_place_request, .timeout = 10)
{
    struct vendor_call call = a_call();
    struct vendor_http h;
    json_t *body = place(&call, &h);

    cr_assert_str_eq(h.method, "POST");
    cr_assert_str_eq(h.url, "http://vendor.test/calls");
    cr_assert(has_header(&h, "Authorization: Bearer k"));
    cr_assert(has_header(&h, "Content-Type: application/json"));

    cr_assert_str_eq(str_of(body, "to_number"), "9876543210");
    cr_assert_str_eq(str_of(body, "from_number"), "919800000000");
    cr_assert_str_eq(str_of(body, "uuid"), CALL_ID);
    cr_assert_str_eq(str_of(body, "crm_username"), "agent.017");
    cr_assert(json_is_true(json_object_get(body, "recording")));
    cr_assert(json_is_integer(json_object_get(body, "max_ring_time")));
    cr_assert_eq(json_integer_value(json_object_get(body, "max_ring_time")), 30);
    /* crm_username and agent_number are mutually exclusive */
    cr_assert_null(json_object_get(body, "agent_number"));
    json_decref(body);
    vendor_http_clear(&h);
    cr_assert_null(h.method);
    cr_assert_null(h.body);
}

Test(clouddialer, build_place_options, .timeout = 10)
{
    struct vendor_call call = a_call();
    struct vendor_http h;
    json_t *body;

    call.record = 0;
    call.max_ring_seconds = 45;
    call.from = "+919800000099";
    body = place(&call, &h);
    cr_assert(json_is_false(json_object_get(body, "recording")));
    cr_assert_eq(json_integer_value(json_object_get(body, "max_ring_time")), 45);
    /* the call's own caller ID wins over the vendor default */
    cr_assert_str_eq(str_of(body, "from_number"), "919800000099");
    json_decref(body);
    vendor_http_clear(&h);
}

Test(clouddialer, build_place_tenant_credentials, .timeout = 10)
{
    struct conf_tenant_vendor tv = {.vendor = "clouddialer", .api_key = "tenant-key",
                                    .from_number = "+919800000001"};
    struct vendor_call call = a_call();
    struct vendor_http h;
    json_t *body;

    cv.base_url = "https://api.clouddialer.in/CRM_API";
    vendor_ctx_init(&ctx, &cv, &tv);
    body = place(&call, &h);
    cr_assert_str_eq(h.url, "https://api.clouddialer.in/CRM_API/calls");
    cr_assert(has_header(&h, "Authorization: Bearer tenant-key"));
    cr_assert(!has_header(&h, "Authorization: Bearer k"));
    cr_assert_str_eq(str_of(body, "from_number"), "919800000001");
    json_decref(body);
    vendor_http_clear(&h);
}

Test(clouddialer, build_place_json_escaping, .timeout = 10)
{
    struct vendor_call call = a_call();
    struct vendor_http h;
    json_t *body;

    call.agent = "agent \"017\"\\x";
    body = place(&call, &h);
    cr_assert_str_eq(str_of(body, "crm_username"), "agent \"017\"\\x");
    json_decref(body);
    vendor_http_clear(&h);
}

/* A refusal: -1, a message, and nothing allocated. */
static void
expect_refused(const struct vendor_call *call, const char *fragment)
{
    struct vendor_http h;
    char err[256] = "";

    memset(&h, 0, sizeof(h));
    cr_assert_eq(ops->build_place(&ctx, call, &h, err, sizeof(err)), -1);
    cr_assert_neq(err[0], '\0', "no message");
    cr_assert_not_null(strstr(err, fragment), "message \"%s\" lacks \"%s\"", err, fragment);
    cr_assert_null(h.method);
    cr_assert_null(h.url);
    cr_assert_null(h.headers);
    cr_assert_null(h.body);
    vendor_http_clear(&h); /* harmless on an empty request */
}

Test(clouddialer, build_place_refuses_non_indian_number, .timeout = 10)
{
    struct vendor_call call = a_call();

    call.to = "+14155550100";
    expect_refused(&call, "+91");
    call.to = "+9779841234567";
    expect_refused(&call, "+91");
    call.to = "9876543210"; /* not E.164 */
    expect_refused(&call, "+91");
}

Test(clouddialer, build_place_refuses_missing_agent, .timeout = 10)
{
    struct vendor_call call = a_call();

    call.agent = NULL;
    expect_refused(&call, "agent");
}

Test(clouddialer, build_place_refuses_missing_api_key, .timeout = 10)
{
    struct vendor_call call = a_call();

    cv.api_key = NULL;
    vendor_ctx_init(&ctx, &cv, NULL);
    expect_refused(&call, "API key");
}

Test(clouddialer, build_place_refuses_missing_from, .timeout = 10)
{
    struct vendor_call call = a_call();

    cv.from_number = NULL;
    vendor_ctx_init(&ctx, &cv, NULL);
    call.from = NULL;
    expect_refused(&call, "caller ID");
}

/* ---------------------------------------------------------------------------
 * parse_place
 */

struct place_case {
    long status;
    const char *body;
    enum vendor_outcome want;
    const char *vendor_call_id; /* when accepted */
    const char *detail;         /* expected detail, or NULL: any non-empty */
};

/* clang-format off */
static const struct place_case place_cases[] = {
    {200, "{\"status\":\"success\",\"call_id\":\"5deb67aa-1\",\"message\":\"Call initiated\"}",
     VENDOR_ACCEPTED, "5deb67aa-1", NULL},
    {200, "{\"status\":\"success\",\"call_id\":123456789012}", VENDOR_ACCEPTED, "123456789012",
     NULL},
    {200, "{\"status\":\"SUCCESS\",\"call_id\":\"x1\"}", VENDOR_ACCEPTED, "x1", NULL},
    {201, "{\"status\":\"success\",\"call_id\":\"x2\"}", VENDOR_ACCEPTED, "x2", NULL},
    {200, "{\"status\":\"error\",\"message\":\"Agent busy\"}", VENDOR_AMBIGUOUS, NULL,
     "Agent busy"},
    {200, "{\"status\":\"error\"}", VENDOR_AMBIGUOUS, NULL, NULL},
    {200, "{\"status\":\"success\"}", VENDOR_AMBIGUOUS, NULL, NULL},
    {200, "{\"status\":\"success\",\"call_id\":null}", VENDOR_AMBIGUOUS, NULL, NULL},
    {200, "{\"status\":\"success\",\"call_id\":{\"id\":1}}", VENDOR_AMBIGUOUS, NULL, NULL},
    {200, "garbage", VENDOR_AMBIGUOUS, NULL, NULL},
    {200, "", VENDOR_AMBIGUOUS, NULL, NULL},
    {200, "<html><body>OK</body></html>", VENDOR_AMBIGUOUS, NULL, NULL},
    {200, "[\"success\"]", VENDOR_AMBIGUOUS, NULL, NULL},
    {400, "{\"status\":\"error\",\"message\":\"Unknown agent\"}", VENDOR_REJECTED, NULL,
     "Unknown agent"},
    {400, "{\"status\":\"error\",\"error\":\"Invalid caller-ID\"}", VENDOR_REJECTED, NULL,
     "Invalid caller-ID"},
    {401, "{\"status\":\"error\",\"message\":\"Invalid API key\"}", VENDOR_REJECTED, NULL,
     "Invalid API key"},
    {401, "", VENDOR_REJECTED, NULL, NULL},
    {403, "<html>Forbidden</html>", VENDOR_REJECTED, NULL, NULL},
    {404, "Not Found", VENDOR_REJECTED, NULL, NULL},
    {429, "", VENDOR_UNAVAILABLE, NULL, NULL},
    {502, "{\"status\":\"error\",\"message\":\"Could not queue the call\"}", VENDOR_UNAVAILABLE,
     NULL, "Could not queue the call"},
    {502, "<html>Bad Gateway</html>", VENDOR_UNAVAILABLE, NULL, NULL},
    {503, "", VENDOR_UNAVAILABLE, NULL, NULL},
    {500, "{\"status\":\"error\",\"message\":\"Internal error\"}", VENDOR_AMBIGUOUS, NULL,
     "Internal error"},
    {500, "", VENDOR_AMBIGUOUS, NULL, NULL},
    {504, "<html>Gateway Timeout</html>", VENDOR_AMBIGUOUS, NULL, NULL},
    {302, "", VENDOR_AMBIGUOUS, NULL, NULL},
};
/* clang-format on */

Test(clouddialer, parse_place_table, .timeout = 10)
{
    size_t i;

    for (i = 0; i < sizeof(place_cases) / sizeof(place_cases[0]); i++) {
        const struct place_case *pc = &place_cases[i];
        struct vendor_placed out;

        memset(&out, 0x5a, sizeof(out)); /* the parser must not rely on a cleared struct */
        ops->parse_place(&ctx, pc->status, pc->body, strlen(pc->body), &out);
        cr_assert_eq(out.outcome, pc->want, "case %zu (HTTP %ld %s): outcome %s, wanted %s", i,
                     pc->status, pc->body, vendor_outcome_text[out.outcome],
                     vendor_outcome_text[pc->want]);
        cr_assert(memchr(out.detail, '\0', sizeof(out.detail)) != NULL, "case %zu: detail", i);
        cr_assert(memchr(out.vendor_call_id, '\0', sizeof(out.vendor_call_id)) != NULL,
                  "case %zu: vendor_call_id", i);
        if (pc->want == VENDOR_ACCEPTED) {
            cr_assert_str_eq(out.vendor_call_id, pc->vendor_call_id, "case %zu", i);
        } else {
            cr_assert_neq(out.detail[0], '\0', "case %zu (HTTP %ld): empty detail", i,
                          pc->status);
        }
        if (pc->detail != NULL) {
            cr_assert_str_eq(out.detail, pc->detail, "case %zu", i);
        }
    }
}

Test(clouddialer, parse_place_status_in_detail, .timeout = 10)
{
    struct vendor_placed out;

    ops->parse_place(&ctx, 503, "", 0, &out);
    cr_assert_not_null(strstr(out.detail, "503"), "detail \"%s\"", out.detail);
    ops->parse_place(&ctx, 403, "<html>Forbidden</html>", 22, &out);
    cr_assert_not_null(strstr(out.detail, "403"), "detail \"%s\"", out.detail);
}

Test(clouddialer, parse_place_body_not_nul_terminated, .timeout = 10)
{
    static const char text[] = "{\"status\":\"success\",\"call_id\":\"abc\"}TRAILING";
    char *body = malloc(sizeof(text) - 1 - 8);
    struct vendor_placed out;

    cr_assert_not_null(body);
    memcpy(body, text, sizeof(text) - 1 - 8); /* exactly the JSON, no NUL */
    ops->parse_place(&ctx, 200, body, sizeof(text) - 1 - 8, &out);
    cr_assert_eq(out.outcome, VENDOR_ACCEPTED);
    cr_assert_str_eq(out.vendor_call_id, "abc");
    free(body);
}

Test(clouddialer, parse_place_long_values_truncated, .timeout = 10)
{
    char body[2048], id[400], msg[600];
    struct vendor_placed out;

    memset(id, 'i', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    memset(msg, 'm', sizeof(msg) - 1);
    msg[sizeof(msg) - 1] = '\0';
    snprintf(body, sizeof(body), "{\"status\":\"success\",\"call_id\":\"%s\"}", id);
    ops->parse_place(&ctx, 200, body, strlen(body), &out);
    cr_assert_eq(out.outcome, VENDOR_ACCEPTED);
    cr_assert_eq(strlen(out.vendor_call_id), sizeof(out.vendor_call_id) - 1);
    snprintf(body, sizeof(body), "{\"status\":\"error\",\"message\":\"%s\"}", msg);
    ops->parse_place(&ctx, 400, body, strlen(body), &out);
    cr_assert_eq(out.outcome, VENDOR_REJECTED);
    cr_assert_eq(strlen(out.detail), sizeof(out.detail) - 1);
}

/* ---------------------------------------------------------------------------
 * parse_webhook
 */

/* Parse body as a POST push; must succeed. */
static void
push_ok(const char *body, struct vendor_update *u)
{
    char err[256] = "";

    vendor_update_init(u);
    cr_assert_eq(ops->parse_webhook(&ctx, "POST", NULL, body, strlen(body), u, err, sizeof(err)),
                 0, "refused: %s\n%s", err, body);
}

/* Parse as method; must fail with a message. */
static void
push_bad(const char *method, const char *body, size_t len)
{
    struct vendor_update u;
    char err[256] = "";

    vendor_update_init(&u);
    cr_assert_eq(ops->parse_webhook(&ctx, method, NULL, body, len, &u, err, sizeof(err)), -1,
                 "accepted: %.200s", body);
    cr_assert_neq(err[0], '\0', "no message for: %.200s", body);
    cr_assert(memchr(err, '\0', sizeof(err)) != NULL);
    vendor_update_clear(&u);
}

Test(clouddialer, webhook_doc_example, .timeout = 10)
{
    struct vendor_update u;
    size_t len;
    char *body = fixture_read("clouddialer", "push_answer.json", &len);
    char err[256] = "";

    vendor_update_init(&u);
    cr_assert_eq(ops->parse_webhook(&ctx, "POST", NULL, body, len, &u, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(u.status, CALL_COMPLETED);
    cr_assert_str_eq(u.call_id, CALL_ID);
    cr_assert_str_eq(u.vendor_call_id, "5deb67aa-3c1e-4f0a-9d2b-8a41f0c2e7d1");
    cr_assert_str_eq(u.vendor_status, "ANSWER");
    cr_assert_eq(u.duration_seconds, 150);
    cr_assert_eq(u.started_at, T_START);
    cr_assert_eq(u.ended_at, T_END);
    cr_assert_eq(u.answered_at, u.started_at);
    cr_assert_str_eq(u.recording_url, "https://api.clouddialer.in/recordings/crm_5deb67aa.wav");
    cr_assert_str_eq(u.disposition, "CRM_CALL");
    cr_assert_str_eq(u.dedupe_key, CALL_ID ":ANSWER");
    cr_assert_null(u.legs);
    vendor_update_clear(&u);
    free(body);
}

Test(clouddialer, webhook_retry_has_same_dedupe_key, .timeout = 10)
{
    static const char body[] = "{\"uuid\":\"" CALL_ID "\",\"call_id\":\"v1\",\"status\":\"BUSY\"}";
    struct vendor_update a, b, c;

    push_ok(body, &a);
    push_ok(body, &b);
    cr_assert_str_eq(a.dedupe_key, b.dedupe_key);
    push_ok("{\"uuid\":\"" CALL_ID "\",\"call_id\":\"v1\",\"status\":\"FAILED\"}", &c);
    cr_assert_str_neq(a.dedupe_key, c.dedupe_key);
    vendor_update_clear(&a);
    vendor_update_clear(&b);
    vendor_update_clear(&c);
}

struct status_case {
    const char *vendor;
    enum call_status want;
};

Test(clouddialer, webhook_status_map, .timeout = 10)
{
    static const struct status_case cases[] = {
        {"INITIATED", CALL_QUEUED}, {"NO_ANSWER", CALL_NO_ANSWER}, {"BUSY", CALL_BUSY},
        {"FAILED", CALL_FAILED},    {"CANCELED", CALL_CANCELED},   {"CANCELLED", CALL_CANCELED},
        {"no_answer", CALL_NO_ANSWER}, {"busy", CALL_BUSY},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[256];
        struct vendor_update u;

        snprintf(body, sizeof(body), "{\"uuid\":\"%s\",\"call_id\":\"v1\",\"status\":\"%s\"}",
                 CALL_ID, cases[i].vendor);
        push_ok(body, &u);
        cr_assert_eq(u.status, cases[i].want, "%s -> %s, wanted %s", cases[i].vendor,
                     call_status_text[u.status], call_status_text[cases[i].want]);
        cr_assert_str_eq(u.vendor_status, cases[i].vendor);
        vendor_update_clear(&u);
    }
}

Test(clouddialer, webhook_answer_lower_case, .timeout = 10)
{
    struct vendor_update u;

    push_ok("{\"uuid\":\"" CALL_ID "\",\"status\":\"answer\",\"duration\":5,"
            "\"start_time\":\"2026-07-03T10:00:00Z\",\"end_time\":\"2026-07-03T10:00:05Z\"}",
            &u);
    cr_assert_eq(u.status, CALL_COMPLETED);
    cr_assert_eq(u.ended_at, T_START + 5000);
    vendor_update_clear(&u);
}

Test(clouddialer, webhook_answer_without_end_is_in_progress, .timeout = 10)
{
    struct vendor_update u;

    push_ok("{\"uuid\":\"" CALL_ID "\",\"status\":\"ANSWER\",\"duration\":42,"
            "\"start_time\":\"2026-07-03T10:00:00Z\",\"end_time\":null}",
            &u);
    cr_assert_eq(u.status, CALL_IN_PROGRESS);
    cr_assert_eq(u.started_at, T_START);
    cr_assert_eq(u.answered_at, T_START);
    cr_assert_eq(u.ended_at, 0);
    vendor_update_clear(&u);
    /* end_time absent altogether: the same */
    push_ok("{\"uuid\":\"" CALL_ID "\",\"status\":\"ANSWER\"}", &u);
    cr_assert_eq(u.status, CALL_IN_PROGRESS);
    vendor_update_clear(&u);
}

Test(clouddialer, webhook_call_status_field, .timeout = 10)
{
    struct vendor_update u;

    /* the status API names the field call_status */
    push_ok("{\"uuid\":\"" CALL_ID "\",\"call_status\":\"NO_ANSWER\"}", &u);
    cr_assert_eq(u.status, CALL_NO_ANSWER);
    vendor_update_clear(&u);
}

Test(clouddialer, webhook_optional_fields_absent, .timeout = 10)
{
    struct vendor_update u;

    push_ok("{\"uuid\":\"" CALL_ID "\",\"status\":\"NO_ANSWER\"}", &u);
    cr_assert_eq(u.status, CALL_NO_ANSWER);
    cr_assert_str_eq(u.vendor_call_id, "");
    cr_assert_eq(u.started_at, 0);
    cr_assert_eq(u.answered_at, 0);
    cr_assert_eq(u.ended_at, 0);
    cr_assert_eq(u.duration_seconds, -1);
    cr_assert_str_eq(u.recording_url, "");
    cr_assert_null(u.legs);
    vendor_update_clear(&u);
}

Test(clouddialer, webhook_call_id_integer, .timeout = 10)
{
    struct vendor_update u;

    push_ok("{\"uuid\":\"" CALL_ID "\",\"call_id\":987654,\"status\":\"BUSY\"}", &u);
    cr_assert_str_eq(u.vendor_call_id, "987654");
    vendor_update_clear(&u);
}

Test(clouddialer, webhook_duration_forms, .timeout = 10)
{
    struct vendor_update u;

    push_ok("{\"uuid\":\"" CALL_ID "\",\"status\":\"ANSWER\",\"duration\":\"42\"}", &u);
    cr_assert_eq(u.duration_seconds, 42);
    vendor_update_clear(&u);
    push_ok("{\"uuid\":\"" CALL_ID "\",\"status\":\"ANSWER\",\"duration\":42.0}", &u);
    cr_assert_eq(u.duration_seconds, 42);
    vendor_update_clear(&u);
    push_ok("{\"uuid\":\"" CALL_ID "\",\"status\":\"ANSWER\",\"duration\":0}", &u);
    cr_assert_eq(u.duration_seconds, 0);
    vendor_update_clear(&u);
    /* nonsense durations are unknown, not errors */
    push_ok("{\"uuid\":\"" CALL_ID "\",\"status\":\"ANSWER\",\"duration\":\"forty\"}", &u);
    cr_assert_eq(u.duration_seconds, -1);
    vendor_update_clear(&u);
    push_ok("{\"uuid\":\"" CALL_ID "\",\"status\":\"ANSWER\",\"duration\":-5}", &u);
    cr_assert_eq(u.duration_seconds, -1);
    vendor_update_clear(&u);
    push_ok("{\"uuid\":\"" CALL_ID "\",\"status\":\"ANSWER\",\"duration\":\"-5\"}", &u);
    cr_assert_eq(u.duration_seconds, -1);
    vendor_update_clear(&u);
}

Test(clouddialer, webhook_time_without_zone_uses_vendor_zone, .timeout = 10)
{
    struct vendor_update u;

    push_ok("{\"uuid\":\"" CALL_ID "\",\"status\":\"ANSWER\","
            "\"start_time\":\"2026-07-03 15:30:00\",\"end_time\":\"2026-07-03T15:32:30\"}",
            &u);
    cr_assert_eq(u.started_at, T_START);
    cr_assert_eq(u.ended_at, T_END);
    vendor_update_clear(&u);
}

Test(clouddialer, webhook_time_forms, .timeout = 10)
{
    struct vendor_update u;

    /* explicit offsets and fractions */
    push_ok("{\"uuid\":\"" CALL_ID "\",\"status\":\"ANSWER\","
            "\"start_time\":\"2026-07-03T15:30:00+05:30\",\"end_time\":\"2026-07-03T10:02:30.250Z\"}",
            &u);
    cr_assert_eq(u.started_at, T_START);
    cr_assert_eq(u.ended_at, T_END + 250);
    vendor_update_clear(&u);
    /* a vendor configured in UTC reads zone-less times as UTC */
    cv.time_zone = "UTC";
    push_ok("{\"uuid\":\"" CALL_ID "\",\"status\":\"ANSWER\","
            "\"start_time\":\"2026-07-03 10:00:00\",\"end_time\":\"2026-07-03 10:02:30\"}",
            &u);
    cr_assert_eq(u.started_at, T_START);
    cr_assert_eq(u.ended_at, T_END);
    vendor_update_clear(&u);
}

Test(clouddialer, webhook_legs, .timeout = 10)
{
    struct vendor_update u;
    json_t *leg;

    push_ok("{\"uuid\":\"" CALL_ID "\",\"status\":\"ANSWER\",\"legs\":["
            "{\"role\":\"agent\",\"number\":\"agent.017\",\"status\":\"JOINED\"},"
            "{\"role\":\"destination\",\"number\":\"9876543210\",\"status\":\"LEFT\"},"
            "{\"role\":\"supervisor\",\"status\":\"FAILED\"},"
            "{\"status\":\"DIALING\"},"
            "{\"role\":\"agent\",\"status\":\"ringing-ish\"},"
            "\"not a leg\"]}",
            &u);
    cr_assert(json_is_array(u.legs));
    cr_assert_eq(json_array_size(u.legs), 5, "non-object legs are skipped");

    leg = json_array_get(u.legs, 0);
    cr_assert_str_eq(json_string_value(json_object_get(leg, "role")), "agent");
    cr_assert_str_eq(json_string_value(json_object_get(leg, "status")), "joined");
    cr_assert_str_eq(json_string_value(json_object_get(leg, "number")), "agent.017");
    leg = json_array_get(u.legs, 1);
    cr_assert_str_eq(json_string_value(json_object_get(leg, "role")), "customer");
    cr_assert_str_eq(json_string_value(json_object_get(leg, "status")), "left");
    leg = json_array_get(u.legs, 2);
    cr_assert_str_eq(json_string_value(json_object_get(leg, "role")), "participant");
    cr_assert_str_eq(json_string_value(json_object_get(leg, "status")), "failed");
    leg = json_array_get(u.legs, 3);
    cr_assert_str_eq(json_string_value(json_object_get(leg, "role")), "participant");
    cr_assert_str_eq(json_string_value(json_object_get(leg, "status")), "dialing");
    leg = json_array_get(u.legs, 4);
    cr_assert_str_eq(json_string_value(json_object_get(leg, "status")), "dialing");
    vendor_update_clear(&u);
    cr_assert_null(u.legs);
}

Test(clouddialer, webhook_legs_lower_case_status, .timeout = 10)
{
    struct vendor_update u;

    push_ok("{\"uuid\":\"" CALL_ID "\",\"status\":\"ANSWER\",\"legs\":["
            "{\"role\":\"destination\",\"number\":\"9876543210\",\"status\":\"joined\"}]}",
            &u);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(u.legs, 0), "status")),
                     "joined");
    vendor_update_clear(&u);
}

Test(clouddialer, webhook_long_values_truncated, .timeout = 10)
{
    char body[4096], url[1200], uuid[200];
    struct vendor_update u;

    memset(url, 'u', sizeof(url) - 1);
    url[sizeof(url) - 1] = '\0';
    memset(uuid, 'c', sizeof(uuid) - 1);
    uuid[sizeof(uuid) - 1] = '\0';
    snprintf(body, sizeof(body),
             "{\"uuid\":\"%s\",\"status\":\"ANSWER\",\"recording_url\":\"https://x/%s\"}", uuid,
             url);
    push_ok(body, &u);
    cr_assert_eq(strlen(u.recording_url), sizeof(u.recording_url) - 1);
    cr_assert_eq(strlen(u.call_id), sizeof(u.call_id) - 1);
    cr_assert_lt(strlen(u.dedupe_key), sizeof(u.dedupe_key));
    vendor_update_clear(&u);
}

Test(clouddialer, webhook_errors, .timeout = 10)
{
    static const char good[] = "{\"uuid\":\"" CALL_ID "\",\"status\":\"ANSWER\"}";
    static const char *const bad[] = {
        "not json",
        "[{\"uuid\":\"" CALL_ID "\",\"status\":\"ANSWER\"}]",
        "\"ANSWER\"",
        "{\"status\":\"ANSWER\"}",
        "{\"uuid\":\"\",\"status\":\"ANSWER\"}",
        "{\"uuid\":42,\"status\":\"ANSWER\"}",
        "{\"uuid\":\"" CALL_ID "\"}",
        "{\"uuid\":\"" CALL_ID "\",\"status\":7}",
        "{\"uuid\":\"" CALL_ID "\",\"status\":\"EXPLODED\"}",
        "{\"uuid\":\"" CALL_ID "\",\"status\":\"\"}",
        "{\"uuid\":\"" CALL_ID "\",\"status\":\"ANSWER\",\"start_time\":\"yesterday\"}",
        "{\"uuid\":\"" CALL_ID "\",\"status\":\"ANSWER\",\"start_time\":\"2026-13-03T10:00:00Z\"}",
        "{\"uuid\":\"" CALL_ID "\",\"status\":\"ANSWER\",\"start_time\":1783072800}",
        "{\"uuid\":\"" CALL_ID "\",\"status\":\"ANSWER\",\"end_time\":\"2026-07-03T10:00:00Q\"}",
        "{\"uuid\":\"" CALL_ID "\",\"status\":\"ANSWER\",\"status\":\"BUSY\"}",
        "{\"uuid\":\"a\",\"uuid\":\"b\",\"status\":\"ANSWER\"}",
        "",
    };
    size_t i;

    push_bad("GET", good, strlen(good));
    push_bad("PUT", good, strlen(good));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        push_bad("POST", bad[i], strlen(bad[i]));
    }
}

Test(clouddialer, webhook_unknown_status_message, .timeout = 10)
{
    static const char body[] = "{\"uuid\":\"" CALL_ID "\",\"status\":\"EXPLODED\"}";
    struct vendor_update u;
    char err[256] = "";

    vendor_update_init(&u);
    cr_assert_eq(ops->parse_webhook(&ctx, "POST", NULL, body, strlen(body), &u, err, sizeof(err)),
                 -1);
    cr_assert_not_null(strstr(err, "EXPLODED"), "%s", err);
    vendor_update_clear(&u);
}

Test(clouddialer, webhook_small_error_buffer, .timeout = 10)
{
    struct vendor_update u;
    char err[8];

    vendor_update_init(&u);
    memset(err, 'x', sizeof(err));
    cr_assert_eq(ops->parse_webhook(&ctx, "POST", NULL, "nope", 4, &u, err, sizeof(err)), -1);
    cr_assert(memchr(err, '\0', sizeof(err)) != NULL);
    vendor_update_clear(&u);
}

Test(clouddialer, webhook_large_garbage, .timeout = 10)
{
    size_t n = 100 * 1024, i;
    char *body = malloc(n);
    unsigned x = 2463534242u;

    cr_assert_not_null(body);
    /* random bytes, NULs included */
    for (i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        body[i] = (char)(x & 0xff);
    }
    push_bad("POST", body, n);
    /* deep nesting */
    memset(body, '[', n);
    push_bad("POST", body, n);
    memset(body, '{', n);
    push_bad("POST", body, n);
    /* a huge unterminated string */
    body[0] = '"';
    memset(body + 1, 'a', n - 1);
    push_bad("POST", body, n);
    free(body);
}

Test(clouddialer, webhook_large_valid_body, .timeout = 10)
{
    size_t pad = 90 * 1024;
    char *body = malloc(pad + 256);
    struct vendor_update u;
    int n;

    cr_assert_not_null(body);
    n = sprintf(body, "{\"uuid\":\"%s\",\"status\":\"BUSY\",\"padding\":\"", CALL_ID);
    memset(body + n, 'p', pad);
    strcpy(body + n + pad, "\"}");
    push_ok(body, &u);
    cr_assert_eq(u.status, CALL_BUSY);
    vendor_update_clear(&u);
    free(body);
}

Test(clouddialer, update_init_clear, .timeout = 10)
{
    struct vendor_update u;

    memset(&u, 0x7f, sizeof(u));
    vendor_update_init(&u);
    cr_assert_eq(u.status, CALL_UNKNOWN);
    cr_assert_eq(u.duration_seconds, -1);
    cr_assert_eq(u.started_at, 0);
    cr_assert_null(u.legs);
    cr_assert_str_eq(u.call_id, "");
    vendor_update_clear(&u);
    vendor_update_clear(&u); /* twice is harmless */
}

Test(clouddialer, webhook_impossible_date, .timeout = 10)
{
    /*
     * Regression (fixed): util_parse_time() (src/util.c:145) checks only 1 <= day <= 31,
     * so "2026-02-31T10:00:00Z" is accepted and silently read as
     * 2026-03-03T10:00:00Z instead of being refused as malformed.
     */
    static const char body[] =
        "{\"uuid\":\"" CALL_ID "\",\"status\":\"ANSWER\",\"start_time\":\"2026-02-31T10:00:00Z\"}";

    push_bad("POST", body, strlen(body));
}

Test(clouddialer, health_check, .timeout = 10)
{
    struct vendor_http h;
    char err[128] = "", detail[128] = "";

    memset(&h, 0, sizeof(h));
    cr_assert_eq(ops->build_health(&ctx, &h, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(h.method, "GET");
    cr_assert_str_eq(h.url, "http://vendor.test/health");
    cr_assert_null(h.body);
    cr_assert_null(strstr(h.headers[0], "Authorization"), "the health check is unauthenticated");
    vendor_http_clear(&h);
    cr_assert_eq(ops->parse_health(&ctx, 200, "{\"status\":\"success\"}", 20, detail,
                                   sizeof(detail)),
                 0);
    cr_assert_eq(ops->parse_health(&ctx, 200, "{\"status\":\"degraded\"}", 21, detail,
                                   sizeof(detail)),
                 -1);
    cr_assert_eq(ops->parse_health(&ctx, 503, "", 0, detail, sizeof(detail)), -1);
    cr_assert_str_eq(detail, "HTTP 503");
    cr_assert_eq(ops->parse_health(&ctx, 200, "<html>", 6, detail, sizeof(detail)), -1);
}
