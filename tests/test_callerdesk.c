/*
 * test_callerdesk.c: the Callerdesk adapter (src/vendors/callerdesk.c),
 * through the registry (vendor_ops_find) as the gateway uses it. No network.
 *
 * Facts (shared/seeds/000, 001, shared/vendors.md §1 and §5): GET
 * /api/click_to_call_v2 with authcode, calling_party_a (agent), _b
 * (customer), both 10-digit, deskphone, call_from_did=1, uid; HTTP 200 even
 * on errors, {"type":"success",...,"campid":N} or {"type":"error","message"};
 * webhooks as POST JSON or GET query, IST times without a zone, "0000-00-00
 * 00:00:00" for never; POST /api/call_list_v2 for history, where "no data"
 * may be a type:error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helpers/fixture.h"
#include <jansson.h>

#include "callrec.h"
#include "conf.h"
#include "util.h"
#include "vendor.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK() __lsan_do_recoverable_leak_check()
#else
#define LEAK_CHECK() 0
#endif

#define CUSTOMER "+919876543210"
#define AGENT "+919812345678"
#define BASE "https://app.callerdesk.io"
#define PLACE_PREFIX BASE "/api/click_to_call_v2?authcode=cdk-key"

static struct conf_vendor cv;
static struct vendor_ctx ctx;
static const struct vendor_ops *ops;
static json_t *options;

static void
setup(void)
{
    memset(&cv, 0, sizeof(cv));
    cv.name = "callerdesk";
    cv.base_url = BASE;
    cv.api_key = "cdk-key";
    cv.from_number = "+918062987377";
    cv.time_zone = "Asia/Kolkata";
    cv.connect_timeout_ms = 3000;
    cv.timeout_ms = 10000;
    memset(&ctx, 0, sizeof(ctx));
    vendor_ctx_init(&ctx, &cv, NULL);
    options = NULL;
    ops = vendor_ops_find("callerdesk");
    cr_assert_not_null(ops);
}

static void
teardown(void)
{
    json_decref(options);
    options = NULL;
    if (LEAK_CHECK() != 0) {
        abort(); /* an assertion in .fini would not fail the test */
    }
}

TestSuite(callerdesk, .init = setup, .fini = teardown, .timeout = 10);

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

static struct vendor_call
a_call(void)
{
    struct vendor_call call = {
        .call_id = "call_01J2ABCDEF",
        .type = "outbound",
        .to = CUSTOMER,
        .agent = AGENT,
        .record = 1,
        .max_ring_seconds = 30,
    };
    return call;
}

/* build_place must succeed with a GET and no body; returns the URL (caller frees). */
static char *
place_url(const struct vendor_ctx *c, const struct vendor_call *call)
{
    struct vendor_http h;
    char err[256] = "";
    char *url;

    memset(&h, 0, sizeof(h));
    cr_assert_eq(ops->build_place(c, call, &h, err, sizeof(err)), 0, "refused: %s", err);
    cr_assert_str_eq(h.method, "GET");
    cr_assert_null(h.body);
    cr_assert_eq(h.body_len, 0);
    cr_assert(has_header(&h, "Accept: application/json"));
    url = strdup(h.url);
    vendor_http_clear(&h);
    return url;
}

static void
place_bad(const struct vendor_ctx *c, const struct vendor_call *call, const char *want)
{
    struct vendor_http h;
    char err[256] = "";

    memset(&h, 0, sizeof(h));
    cr_assert_eq(ops->build_place(c, call, &h, err, sizeof(err)), -1, "accepted: %s",
                 h.url ? h.url : "");
    cr_assert_not_null(strstr(err, want), "error \"%s\" lacks \"%s\"", err, want);
    cr_assert_null(h.url);
    cr_assert_null(h.method);
    cr_assert_null(h.headers);
}

/* ---------------------------------------------------------------------------
 * Registry
 */

Test(callerdesk, registered, .timeout = 10)
{
    cr_assert_str_eq(ops->name, "callerdesk");
    cr_assert_eq(ops->caps, VENDOR_CAP_OUTBOUND | VENDOR_CAP_WEBHOOKS | VENDOR_CAP_HISTORY);
    cr_assert_not_null(ops->build_place);
    cr_assert_not_null(ops->parse_place);
    cr_assert_not_null(ops->parse_webhook);
    cr_assert_not_null(ops->build_history);
    cr_assert_not_null(ops->parse_history);
    cr_assert_null(ops->build_counts);
    cr_assert_null(ops->parse_counts);
    cr_assert_null(ops->build_status);
    cr_assert_null(ops->parse_status);
    cr_assert_null(ops->build_participant);
    cr_assert_null(ops->parse_participant);
    cr_assert_not_null(strstr(vendor_known_names(), "callerdesk"));
    cr_assert_not_null(vendor_ops_find("getdesk"));
}

/* ---------------------------------------------------------------------------
 * build_place
 */

Test(callerdesk, build_place_url, .timeout = 10)
{
    struct vendor_call call = a_call();
    char *url = place_url(&ctx, &call);

    cr_assert_str_eq(url, PLACE_PREFIX "&calling_party_a=9812345678&calling_party_b=9876543210"
                                       "&deskphone=8062987377&call_from_did=1"
                                       "&uid=call_01J2ABCDEF");
    free(url);
}

Test(callerdesk, build_place_agent_number_forms, .timeout = 10)
{
    static const char *const forms[] = {"+919812345678", "9812345678",      "09812345678",
                                        "919812345678",  "+91 98123-45678", "98123 45678"};
    size_t i;

    for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        struct vendor_call call = a_call();
        char *url;

        call.agent = forms[i];
        url = place_url(&ctx, &call);
        cr_assert_not_null(strstr(url, "&calling_party_a=9812345678&"), "%s -> %s", forms[i], url);
        free(url);
    }
}

Test(callerdesk, build_place_by_member_id, .timeout = 10)
{
    struct vendor_call call = a_call();
    struct vendor_ctx c2 = ctx;
    char *url;

    /* "member:<id>" calls click_to_call_v4 with member_id instead of leg A's number. */
    call.agent = "member:1042";
    url = place_url(&ctx, &call);
    cr_assert_str_eq(url, BASE "/api/click_to_call_v4?authcode=cdk-key&member_id=1042"
                               "&calling_party_b=9876543210&deskphone=8062987377"
                               "&call_from_did=1&uid=call_01J2ABCDEF");
    free(url);

    /* options.agent_identity = member_id: every agent is a member id. */
    options = fixture_json("{\"agent_identity\":\"member_id\","
                           "\"member_call_path\":\"/api/click2call_via_memberid\"}");
    c2.options = options;
    call.agent = "77";
    url = place_url(&c2, &call);
    cr_assert_str_eq(url, BASE "/api/click2call_via_memberid?authcode=cdk-key&member_id=77"
                               "&calling_party_b=9876543210&deskphone=8062987377"
                               "&call_from_did=1&uid=call_01J2ABCDEF");
    free(url);

    /* A member id is digits; anything else is refused before sending. */
    call.agent = "member:12ab";
    place_bad(&ctx, &call, "member:");
    call.agent = "member:";
    place_bad(&ctx, &call, "member:");
}

Test(callerdesk, build_place_deskphone_sources, .timeout = 10)
{
    struct conf_tenant_vendor tv = {.vendor = "callerdesk"};
    struct vendor_call call = a_call();
    struct vendor_ctx c2;
    char *url;

    /* The call's own from beats the vendor's from_number. */
    call.from = "+918044556677";
    url = place_url(&ctx, &call);
    cr_assert_not_null(strstr(url, "&deskphone=8044556677&"), "%s", url);
    free(url);

    /* options.deskphone is sent verbatim (encoded) and wins over both. */
    options = fixture_json("{\"deskphone\":\"0120 456/7890\"}");
    tv.options = options;
    memset(&c2, 0, sizeof(c2));
    vendor_ctx_init(&c2, &cv, &tv);
    cr_assert_eq(c2.options, options);
    url = place_url(&c2, &call);
    cr_assert_not_null(strstr(url, "&deskphone=0120%20456%2F7890&"), "%s", url);
    free(url);

    /* Set directly, as a tenant's options would be. */
    c2 = ctx;
    c2.options = options;
    call.from = NULL;
    url = place_url(&c2, &call);
    cr_assert_not_null(strstr(url, "&deskphone=0120%20456%2F7890&"), "%s", url);
    free(url);

    /* An empty deskphone option does not count. */
    json_object_set_new(options, "deskphone", json_string(""));
    url = place_url(&c2, &call);
    cr_assert_not_null(strstr(url, "&deskphone=8062987377&"), "%s", url);
    free(url);
}

Test(callerdesk, build_place_encoding, .timeout = 10)
{
    struct vendor_call call = a_call();
    struct vendor_ctx c2 = ctx;
    char *url;

    c2.api_key = "a+b/c&d=e f%\xc3\xa9?#~._-Z9";
    c2.base_url = BASE "/";
    call.call_id = "call_x&y=z";
    url = place_url(&c2, &call);
    cr_assert_str_eq(url,
                     BASE "/api/click_to_call_v2?authcode=a%2Bb%2Fc%26d%3De%20f%25%C3%A9%3F%23~"
                          "._-Z9&calling_party_a=9812345678&calling_party_b=9876543210"
                          "&deskphone=8062987377&call_from_did=1&uid=call_x%26y%3Dz");
    free(url);

    /* Without our id there is no uid parameter. */
    call.call_id = NULL;
    url = place_url(&ctx, &call);
    cr_assert_null(strstr(url, "uid="), "%s", url);
    free(url);
}

Test(callerdesk, build_place_refusals, .timeout = 10)
{
    struct vendor_call call = a_call();
    struct vendor_ctx c2 = ctx;

    call.to = "+14155550100";
    place_bad(&ctx, &call, "Callerdesk dials only Indian (+91) numbers");
    call.to = "+9779811789678";
    place_bad(&ctx, &call, "Callerdesk dials only Indian (+91) numbers");
    call.to = "9876543210";
    place_bad(&ctx, &call, "Callerdesk dials only Indian (+91) numbers");

    call = a_call();
    call.agent = NULL;
    place_bad(&ctx, &call, "Callerdesk needs the agent's phone number");
    call.agent = "agent-7";
    place_bad(&ctx, &call, "Callerdesk needs the agent's phone number");
    call.agent = "asha@example.in";
    place_bad(&ctx, &call, "Callerdesk needs the agent's phone number");
    call.agent = "+14155550100";
    place_bad(&ctx, &call, "Callerdesk needs the agent's phone number");
    call.agent = "12345";
    place_bad(&ctx, &call, "Callerdesk needs the agent's phone number");

    call = a_call();
    c2.api_key = NULL;
    place_bad(&c2, &call, "authcode");
    c2.api_key = "";
    place_bad(&c2, &call, "authcode");
    c2 = ctx;
    c2.base_url = NULL;
    place_bad(&c2, &call, "base_url");

    c2 = ctx;
    c2.from_number = NULL;
    call.from = NULL;
    place_bad(&c2, &call, "deskphone");
    c2.options = options = fixture_json("{\"other\":\"x\"}");
    place_bad(&c2, &call, "deskphone");
}

/* ---------------------------------------------------------------------------
 * parse_place
 */

static const struct {
    long status;
    const char *body;
    enum vendor_outcome outcome;
    const char *vendor_call_id;
    const char *detail;
} place_cases[] = {
    {200,
     "{\"type\":\"success\",\"message\":\"Call to Customer Initiate Successfully..\","
     "\"campid\":45717408,\"callerid\":\"00918062987377\"}",
     VENDOR_ACCEPTED, "45717408", "Call to Customer Initiate Successfully.."},
    {200, "{\"type\":\"success\",\"campid\":\"45717409\"}", VENDOR_ACCEPTED, "45717409", ""},
    {200, "{\"type\":\"SUCCESS\",\"campid\":7.0}", VENDOR_ACCEPTED, "7", ""},
    {200, "{\"type\":\"success\",\"message\":\"ok\"}", VENDOR_ACCEPTED, "", "no campid"},
    {200, "{\"type\":\"success\",\"campid\":\"\"}", VENDOR_ACCEPTED, "", "no campid"},
    {200, "{\"type\":\"error\",\"message\":\"Invalid Auth Code!\"}", VENDOR_REJECTED, "",
     "Invalid Auth Code!"},
    {200, "{\"type\":\"error\",\"message\":\"Agent on break/Inactive. Call not allowed\"}",
     VENDOR_REJECTED, "", "Agent on break/Inactive. Call not allowed"},
    {200, "{\"type\":\"error\",\"message\":\"Account is Inactive please contact administrator!\"}",
     VENDOR_REJECTED, "", "Account is Inactive please contact administrator!"},
    {200, "{\"type\":\"error\"}", VENDOR_REJECTED, "", "Callerdesk answered type error"},
    /* The type decides, whatever the HTTP status says. */
    {500, "{\"type\":\"error\",\"message\":\"Invalid Auth Code!\"}", VENDOR_REJECTED, "",
     "Invalid Auth Code!"},
    {201, "{\"type\":\"success\",\"campid\":1}", VENDOR_ACCEPTED, "1", ""},
    /* Text printed before the JSON (a PHP notice) is skipped. */
    {200,
     "<br />\n<b>Notice</b>:  Undefined index: uid in <b>c2c.php</b><br />\n"
     "{\"type\":\"success\",\"campid\":45717410}",
     VENDOR_ACCEPTED, "45717410", ""},
    {200, "\xef\xbb\xbf{\"type\":\"error\",\"message\":\"Invalid Auth Code!\"}", VENDOR_REJECTED,
     "", "Invalid Auth Code!"},
    /* Unreadable 2xx answers: the call may have been placed. */
    {200, "<html>oops", VENDOR_AMBIGUOUS, "", "unreadable 2xx answer"},
    {200, "", VENDOR_AMBIGUOUS, "", "unreadable 2xx answer"},
    {200, "{\"status\":\"success\",\"campid\":1}", VENDOR_AMBIGUOUS, "", "unreadable 2xx answer"},
    {200, "{\"type\":\"queued\"}", VENDOR_AMBIGUOUS, "", "unreadable 2xx answer"},
    {200, "[{\"type\":\"success\"}]", VENDOR_AMBIGUOUS, "", "unreadable 2xx answer"},
    {200, "{\"type\":\"success\",\"campid\":1} trailing", VENDOR_AMBIGUOUS, "",
     "unreadable 2xx answer"},
    {429, "", VENDOR_UNAVAILABLE, "", "HTTP 429"},
    {502, "<html><body>Bad Gateway</body></html>", VENDOR_UNAVAILABLE, "", "HTTP 502"},
    {503, "Service Unavailable", VENDOR_UNAVAILABLE, "", "HTTP 503"},
    {401, "Unauthorized", VENDOR_REJECTED, "", "HTTP 401"},
    {404, "{\"message\":\"Not Found\"}", VENDOR_REJECTED, "", "Not Found"},
    {500, "", VENDOR_AMBIGUOUS, "", "HTTP 500"},
    {504, "<html>Gateway Timeout</html>", VENDOR_AMBIGUOUS, "", "HTTP 504"},
    {0, "", VENDOR_AMBIGUOUS, "", "HTTP 0"},
};

Test(callerdesk, parse_place_table, .timeout = 10)
{
    size_t i;

    for (i = 0; i < sizeof(place_cases) / sizeof(place_cases[0]); i++) {
        struct vendor_placed out;

        memset(&out, 0xab, sizeof(out));
        ops->parse_place(&ctx, place_cases[i].status, place_cases[i].body,
                         strlen(place_cases[i].body), &out);
        cr_assert_eq(out.outcome, place_cases[i].outcome, "case %zu (%ld %s): %s, want %s", i,
                     place_cases[i].status, place_cases[i].body, vendor_outcome_text[out.outcome],
                     vendor_outcome_text[place_cases[i].outcome]);
        cr_assert_str_eq(out.vendor_call_id, place_cases[i].vendor_call_id, "case %zu", i);
        if (place_cases[i].detail[0] != '\0') {
            cr_assert_str_eq(out.detail, place_cases[i].detail, "case %zu", i);
        }
    }
}

Test(callerdesk, parse_place_fixtures, .timeout = 10)
{
    struct vendor_placed out;
    size_t len;
    char *body = fixture_read("callerdesk", "c2c_success.json", &len);

    ops->parse_place(&ctx, 200, body, len, &out);
    cr_assert_eq(out.outcome, VENDOR_ACCEPTED);
    cr_assert_str_eq(out.vendor_call_id, "45717408");
    free(body);
    body = fixture_read("callerdesk", "c2c_invalid_auth.json", &len);
    ops->parse_place(&ctx, 200, body, len, &out);
    cr_assert_eq(out.outcome, VENDOR_REJECTED);
    cr_assert_str_eq(out.detail, "Invalid Auth Code!");
    cr_assert_str_eq(out.vendor_call_id, "");
    free(body);
    /* A NULL body (no answer body at all) is unreadable, not a crash. */
    ops->parse_place(&ctx, 200, NULL, 0, &out);
    cr_assert_eq(out.outcome, VENDOR_AMBIGUOUS);
}

/* ---------------------------------------------------------------------------
 * parse_webhook
 */

/* parse_webhook must succeed; u is initialised here, the caller clears it. */
static void
hook_ok(const char *method, const char *query, const char *body, size_t len,
        struct vendor_update *u)
{
    char err[256] = "";

    vendor_update_init(u);
    cr_assert_eq(ops->parse_webhook(&ctx, method, query, body, len, u, err, sizeof(err)), 0,
                 "refused: %s\n%s%s", err, query ? query : "", body ? body : "");
    cr_assert_null(u->legs);
}

/* parse_webhook must fail; err must contain want (if given). */
static void
hook_bad(const char *method, const char *query, const char *body, const char *want)
{
    struct vendor_update u;
    char err[256] = "";

    vendor_update_init(&u);
    cr_assert_eq(ops->parse_webhook(&ctx, method, query, body, body != NULL ? strlen(body) : 0, &u,
                                    err, sizeof(err)),
                 -1, "accepted: %s %s", query ? query : "", body ? body : "");
    cr_assert_neq(err[0], '\0');
    if (want != NULL) {
        cr_assert_not_null(strstr(err, want), "error \"%s\" lacks \"%s\"", err, want);
    }
    vendor_update_clear(&u);
}

static void
hook_json(const char *body, struct vendor_update *u)
{
    hook_ok("POST", NULL, body, strlen(body), u);
}

static const char *
iso(int64_t ms)
{
    static char buf[4][UTIL_TIME_LEN];
    static int n;

    n = (n + 1) % 4;
    if (ms == 0) {
        return "0";
    }
    util_rfc3339(ms, buf[n], sizeof(buf[n]));
    return buf[n];
}

/* The answered report of the fixtures, whatever the encoding. */
static void
assert_answered_report(const struct vendor_update *u)
{
    cr_assert_str_eq(u->call_id, "call_01J2ABCDEF");
    cr_assert_str_eq(u->vendor_call_id, "45717408");
    cr_assert_str_eq(u->vendor_status, "ANSWER");
    cr_assert_eq(u->status, CALL_COMPLETED);
    cr_assert_str_eq(iso(u->started_at), "2026-07-03T10:00:00Z");
    cr_assert_str_eq(iso(u->answered_at), "2026-07-03T10:00:15Z");
    cr_assert_str_eq(iso(u->ended_at), "2026-07-03T10:01:35Z");
    cr_assert_eq(u->duration_seconds, 95);
    cr_assert_str_eq(u->recording_url,
                     "https://app.callerdesk.io/recordings/2026/07/03/1783072800.1108.wav");
    cr_assert_str_eq(u->disposition, "ANSWER(16-customer)");
    cr_assert_str_eq(u->dedupe_key, "report:1783072800.1108");
}

Test(callerdesk, webhook_post_json_report, .timeout = 10)
{
    struct vendor_update u;
    size_t len;
    char *body = fixture_read("callerdesk", "report_answered.json", &len);

    hook_ok("POST", NULL, body, len, &u);
    assert_answered_report(&u);
    vendor_update_clear(&u);
    /* The query string of a POST is not read when the body has the fields. */
    hook_ok("POST", "token=x", body, len, &u);
    assert_answered_report(&u);
    vendor_update_clear(&u);
    free(body);
}

Test(callerdesk, webhook_form_post, .timeout = 10)
{
    struct vendor_update u;
    size_t len;
    char *body = fixture_read("callerdesk", "report_answered.form", &len);

    hook_ok("POST", NULL, body, len, &u);
    assert_answered_report(&u);
    vendor_update_clear(&u);
    free(body);
}

Test(callerdesk, webhook_get_query, .timeout = 10)
{
    struct vendor_update u;
    size_t len;
    char *query = fixture_read("callerdesk", "report_noanswer.query", &len);

    hook_ok("GET", query, "", 0, &u);
    cr_assert_str_eq(u.call_id, "call_01J2ABCDEF");
    cr_assert_str_eq(u.vendor_call_id, "45717408");
    cr_assert_str_eq(u.vendor_status, "Cancel-Customer(NOANSWER (0-Customer))");
    cr_assert_eq(u.status, CALL_NO_ANSWER);
    cr_assert_str_eq(iso(u.started_at), "2026-07-03T10:00:00Z");
    cr_assert_eq(u.answered_at, 0);
    cr_assert_str_eq(iso(u.ended_at), "2026-07-03T10:00:40Z");
    cr_assert_eq(u.duration_seconds, 40);
    cr_assert_str_eq(u.recording_url, "");
    cr_assert_str_eq(u.disposition, "NOANSWER(0-Customer)");
    cr_assert_str_eq(u.dedupe_key, "report:1783072800.1108");
    vendor_update_clear(&u);

    /* '+' for spaces and a GET's (empty) body ignored. */
    hook_ok("GET",
            "Status=Cancel-Customer(Busy+(17-Customer))&CallSid=s1&campid=9"
            "&EndTime=2026-07-03+15%3a31%3a00&StartTime=2026-07-03%2015:30:00",
            NULL, 0, &u);
    cr_assert_eq(u.status, CALL_BUSY);
    cr_assert_str_eq(u.call_id, "");
    cr_assert_str_eq(u.vendor_call_id, "9");
    cr_assert_str_eq(iso(u.started_at), "2026-07-03T10:00:00Z");
    cr_assert_str_eq(iso(u.ended_at), "2026-07-03T10:01:00Z");
    vendor_update_clear(&u);

    /* A POST with no body but the fields in the query. */
    hook_ok("POST", "type=call_report&Status=ANSWER&CallSid=s2&uid=call_Q", "", 0, &u);
    cr_assert_eq(u.status, CALL_COMPLETED);
    cr_assert_str_eq(u.call_id, "call_Q");
    cr_assert_str_eq(u.dedupe_key, "report:s2");
    vendor_update_clear(&u);
    free(query);
}

static const struct {
    const char *status;
    const char *hangup_cause; /* NULL: none */
    enum call_status want;
} status_cases[] = {
    {"ANSWER", NULL, CALL_COMPLETED},
    {"ANSWER (16-Agent)", NULL, CALL_COMPLETED},
    {"ANSWER(16)", "NORMAL_CLEARING", CALL_COMPLETED},
    {"answer", NULL, CALL_COMPLETED},
    {"NOANSWER", NULL, CALL_NO_ANSWER},
    {"NO ANSWER", NULL, CALL_NO_ANSWER},
    {"NO ANSWER (0-Agent)", NULL, CALL_NO_ANSWER},
    {"No Answer", NULL, CALL_NO_ANSWER},
    {"Cancel-Customer(NOANSWER (0-Customer))", NULL, CALL_NO_ANSWER},
    {"Cancel-Agent(NOANSWER (0-Agent))", NULL, CALL_NO_ANSWER},
    {"cancel-Customer", NULL, CALL_NO_ANSWER},
    {"Cancel-Customer", "NORMAL_CLEARING", CALL_NO_ANSWER},
    {"Cancel-Customer", "ANSWER(16-customer)", CALL_NO_ANSWER},
    {"Cancel-Customer", "NOANSWER(0-Customer)", CALL_NO_ANSWER},
    {"Cancel-Customer(Busy (17-Customer))", NULL, CALL_BUSY},
    {"cancel-Agent", "Busy(17-Agent)", CALL_BUSY},
    {"Cancel-Customer", "17", CALL_BUSY},
    {"Cancel-Customer(17)", NULL, CALL_BUSY},
    {"Cancel-Customer(USER_BUSY (17-Customer))", NULL, CALL_BUSY},
    {"Cancel-Agent(Congestion (1-Agent))", NULL, CALL_FAILED},
    {"Cancel-Customer(Unavailable (19-Customer))", NULL, CALL_FAILED},
    {"Cancel-Customer(CHANUNAVAIL)", NULL, CALL_FAILED},
    {"Cancel-Customer(CANCEL (0-Customer))", NULL, CALL_CANCELED},
    /* The Status brackets win over hangup_cause. */
    {"Cancel-Customer(Busy (17-Customer))", "NOANSWER(0-Customer)", CALL_BUSY},
    {"BUSY (17)", NULL, CALL_BUSY},
    {"Busy", NULL, CALL_BUSY},
    {"AgentEngaged", NULL, CALL_BUSY},
    {"AgentonRing", NULL, CALL_BUSY},
    {"CANCEL (0)", NULL, CALL_CANCELED},
    {"AbandonedCall", NULL, CALL_CANCELED},
    {"Congestion", NULL, CALL_FAILED},
    {"CONGESTION", NULL, CALL_FAILED},
    {"CHANUNAVAIL", NULL, CALL_FAILED},
    {"Unavailable (19)", NULL, CALL_FAILED},
    {"UN-AVAIL", NULL, CALL_FAILED},
    {"INVALIDARGS", NULL, CALL_FAILED},
    {"Agent-Unregistered", NULL, CALL_FAILED},
    {"Not connected", NULL, CALL_FAILED},
    {"  not-CONNECTED ", NULL, CALL_FAILED},
};

Test(callerdesk, webhook_report_statuses, .timeout = 10)
{
    size_t i;

    for (i = 0; i < sizeof(status_cases) / sizeof(status_cases[0]); i++) {
        char body[1024], hc[128] = "";
        struct vendor_update u;

        if (status_cases[i].hangup_cause != NULL) {
            snprintf(hc, sizeof(hc), ",\"hangup_cause\":\"%s\"", status_cases[i].hangup_cause);
        }
        snprintf(body, sizeof(body),
                 "{\"type\":\"call_report\",\"Status\":\"%s\"%s,\"CallSid\":\"s%zu\","
                 "\"campid\":\"100\",\"StartTime\":\"2026-07-03 15:30:00\","
                 "\"EndTime\":\"2026-07-03 15:31:00\"}",
                 status_cases[i].status, hc, i);
        hook_json(body, &u);
        cr_assert_eq(u.status, status_cases[i].want, "\"%s\" (%s) -> %s, want %s",
                     status_cases[i].status, hc, call_status_text[u.status],
                     call_status_text[status_cases[i].want]);
        cr_assert_str_eq(u.vendor_status, status_cases[i].status);
        vendor_update_clear(&u);
    }
}

Test(callerdesk, webhook_unknown_status_is_refused, .timeout = 10)
{
    hook_bad("POST", NULL,
             "{\"type\":\"call_report\",\"Status\":\"Voicemail\",\"CallSid\":\"s\","
             "\"SourceNumber\":\"9812345678\",\"DialWhomNumber\":\"9876543210\"}",
             "unknown Callerdesk status \"Voicemail\"");
    hook_bad("POST", NULL,
             "{\"type\":\"call_report\",\"Status\":\"Cancel-Customer(WEIRD (5-x))\","
             "\"CallSid\":\"s\"}",
             "Cancel-Customer(WEIRD (5-x))");
    hook_bad("POST", NULL,
             "{\"type\":\"call_report\",\"Status\":\"Cancel-Agent\",\"hangup_cause\":\"ODD\","
             "\"CallSid\":\"s\"}",
             "hangup_cause \"ODD\"");
    hook_bad("GET", "Status=Ringing%21&CallSid=s", NULL, "Ringing!");
    /* Numbers never reach the message. */
    {
        struct vendor_update u;
        char err[256] = "";
        static const char body[] = "{\"Status\":\"Foo\",\"CallSid\":\"s\","
                                   "\"SourceNumber\":\"9812345678\","
                                   "\"DialWhomNumber\":\"09876543210\"}";

        vendor_update_init(&u);
        cr_assert_eq(
            ops->parse_webhook(&ctx, "POST", NULL, body, strlen(body), &u, err, sizeof(err)), -1);
        cr_assert_null(strstr(err, "9876543210"), "%s", err);
        cr_assert_null(strstr(err, "9812345678"), "%s", err);
        vendor_update_clear(&u);
    }
    /* No Status at all; callstatus stands in for it. */
    hook_bad("POST", NULL, "{\"CallSid\":\"s\",\"campid\":\"1\"}", "Status is required");
    hook_bad("POST", NULL, "{\"Status\":\"\",\"CallSid\":\"s\"}", "Status is required");
    {
        struct vendor_update u;

        hook_json("{\"callstatus\":\"Busy\",\"CallSid\":\"s\",\"EndTime\":\"2026-07-03 "
                  "15:31:00\"}",
                  &u);
        cr_assert_eq(u.status, CALL_BUSY);
        cr_assert_str_eq(u.vendor_status, "Busy");
        vendor_update_clear(&u);
    }
}

Test(callerdesk, webhook_live_events, .timeout = 10)
{
    struct vendor_update u;
    size_t len;
    char *body = fixture_read("callerdesk", "live_picked.json", &len);

    hook_ok("POST", NULL, body, len, &u);
    cr_assert_eq(u.status, CALL_IN_PROGRESS);
    cr_assert_str_eq(u.call_id, "call_01J2ABCDEF");
    cr_assert_str_eq(u.vendor_call_id, "45717408");
    cr_assert_str_eq(iso(u.started_at), "2026-07-03T10:00:00Z");
    cr_assert_str_eq(iso(u.answered_at), "2026-07-03T10:00:00Z");
    cr_assert_eq(u.ended_at, 0);
    cr_assert_eq(u.duration_seconds, -1);
    cr_assert_str_eq(u.dedupe_key, "live:1783072800.1108:Picked");
    vendor_update_clear(&u);
    free(body);

    hook_json("{\"Status\":\"Transfer to agent\",\"CallSid\":\"in-1\","
              "\"StartTime\":\"2026-07-03 15:30:00\",\"Direction\":\"IVR\"}",
              &u);
    cr_assert_eq(u.status, CALL_RINGING);
    cr_assert_eq(u.answered_at, 0);
    cr_assert_str_eq(u.call_id, "");
    cr_assert_str_eq(u.vendor_call_id, "sid:in-1");
    cr_assert_str_eq(u.dedupe_key, "live:in-1:Transfer to agent");
    vendor_update_clear(&u);

    /* A live ANSWER is a call in progress, a reported one a finished call. */
    hook_json("{\"type\":\"live_call\",\"Status\":\"ANSWER\",\"CallSid\":\"x\","
              "\"CallDuration\":\"0\"}",
              &u);
    cr_assert_eq(u.status, CALL_IN_PROGRESS);
    cr_assert_str_eq(u.dedupe_key, "live:x:ANSWER");
    vendor_update_clear(&u);
    hook_json("{\"Status\":\"ANSWER\",\"CallSid\":\"x\",\"CallDuration\":\"30\"}", &u);
    cr_assert_eq(u.status, CALL_COMPLETED);
    cr_assert_str_eq(u.dedupe_key, "report:x");
    vendor_update_clear(&u);
    hook_json("{\"Status\":\"ANSWER\",\"CallSid\":\"x\",\"EndTime\":\"0000-00-00 00:00:00\","
              "\"LegB_Picked_time\":\"\"}",
              &u);
    cr_assert_eq(u.status, CALL_IN_PROGRESS, "no usable report field: live");
    vendor_update_clear(&u);
    hook_json("{\"Status\":\"ANSWER\",\"CallSid\":\"x\","
              "\"LegA_Picked_time\":\"2026-07-03 15:30:01\"}",
              &u);
    cr_assert_eq(u.status, CALL_COMPLETED);
    vendor_update_clear(&u);

    /* Live-only statuses never take the report's dedupe key, whatever the type says. */
    hook_json("{\"type\":\"call_report\",\"Status\":\"Picked\",\"CallSid\":\"x\","
              "\"EndTime\":\"2026-07-03 15:31:00\"}",
              &u);
    cr_assert_eq(u.status, CALL_IN_PROGRESS);
    cr_assert_str_eq(u.dedupe_key, "live:x:Picked");
    vendor_update_clear(&u);
    hook_json("{\"type\":\"app_call_report\",\"Status\":\"NOANSWER\",\"CallSid\":\"y\"}", &u);
    cr_assert_eq(u.status, CALL_NO_ANSWER);
    cr_assert_str_eq(u.dedupe_key, "report:y");
    vendor_update_clear(&u);
}

Test(callerdesk, webhook_correlation, .timeout = 10)
{
    struct vendor_update u;

    /* Our uid names the call; campid is kept as the vendor's id. */
    hook_json("{\"Status\":\"ANSWER\",\"uid\":\"call_01J2\",\"campid\":45717408,"
              "\"CallSid\":\"s\",\"EndTime\":\"2026-07-03 15:31:00\"}",
              &u);
    cr_assert_str_eq(u.call_id, "call_01J2");
    cr_assert_str_eq(u.vendor_call_id, "45717408");
    vendor_update_clear(&u);

    /* No uid: the gateway maps campid to the call. */
    hook_json("{\"Status\":\"ANSWER\",\"campid\":\"45717408\",\"CallSid\":\"s\","
              "\"EndTime\":\"2026-07-03 15:31:00\"}",
              &u);
    cr_assert_str_eq(u.call_id, "");
    cr_assert_str_eq(u.vendor_call_id, "45717408");
    vendor_update_clear(&u);

    /* A uid that is not ours (another system's) is not trusted. */
    hook_json("{\"Status\":\"ANSWER\",\"uid\":\"crm-42\",\"campid\":\"7\",\"CallSid\":\"s\"}", &u);
    cr_assert_str_eq(u.call_id, "");
    cr_assert_str_eq(u.vendor_call_id, "7");
    vendor_update_clear(&u);
    hook_json("{\"Status\":\"ANSWER\",\"uid\":\"call_x y\",\"campid\":\"7\",\"CallSid\":\"s\"}",
              &u);
    cr_assert_str_eq(u.call_id, "");
    vendor_update_clear(&u);
    hook_json("{\"Status\":\"ANSWER\",\"uid\":\"call_\",\"campid\":\"7\",\"CallSid\":\"s\"}", &u);
    cr_assert_str_eq(u.call_id, "");
    vendor_update_clear(&u);

    /* Neither: the CallSid keeps the event as an orphan. An empty or 0 campid is none. */
    hook_json("{\"Status\":\"ANSWER\",\"CallSid\":\"1783072800.99\",\"Direction\":\"IVR\"}", &u);
    cr_assert_str_eq(u.call_id, "");
    cr_assert_str_eq(u.vendor_call_id, "sid:1783072800.99");
    vendor_update_clear(&u);
    hook_json("{\"Status\":\"ANSWER\",\"CallSid\":\"c\",\"campid\":\"\",\"uid\":\"\"}", &u);
    cr_assert_str_eq(u.vendor_call_id, "sid:c");
    vendor_update_clear(&u);
    hook_json("{\"Status\":\"ANSWER\",\"CallSid\":\"c\",\"campid\":0}", &u);
    cr_assert_str_eq(u.vendor_call_id, "sid:c");
    vendor_update_clear(&u);

    /* uid but no campid: the call is named, no vendor id is invented for it. */
    hook_json("{\"Status\":\"ANSWER\",\"uid\":\"call_Z\",\"CallSid\":\"c\"}", &u);
    cr_assert_str_eq(u.call_id, "call_Z");
    cr_assert_str_eq(u.vendor_call_id, "");
    vendor_update_clear(&u);

    /* Field names in another case are found too. */
    hook_json("{\"status\":\"ANSWER\",\"UID\":\"call_Z\",\"callsid\":\"c\"}", &u);
    cr_assert_str_eq(u.call_id, "call_Z");
    cr_assert_str_eq(u.dedupe_key, "live:c:ANSWER");
    vendor_update_clear(&u);

    hook_bad("POST", NULL, "{\"Status\":\"ANSWER\",\"EndTime\":\"2026-07-03 15:31:00\"}",
             "no uid, campid or CallSid");
}

Test(callerdesk, webhook_times, .timeout = 10)
{
    struct vendor_update u;

    /* IST: 15:30 in Kolkata is 10:00 UTC. */
    hook_json("{\"Status\":\"NOANSWER\",\"CallSid\":\"s\",\"StartTime\":\"2026-07-03 15:30:00\","
              "\"EndTime\":\"2026-07-04 05:29:59\",\"LegB_Picked_time\":\"0000-00-00 00:00:00\","
              "\"LegA_Picked_time\":\"0000-00-00 00:00:00\"}",
              &u);
    cr_assert_str_eq(iso(u.started_at), "2026-07-03T10:00:00Z");
    cr_assert_str_eq(iso(u.ended_at), "2026-07-03T23:59:59Z");
    cr_assert_eq(u.answered_at, 0);
    vendor_update_clear(&u);

    /* Never happened: 0. Answered without LegB_Picked_time: StartTime. */
    hook_json("{\"type\":\"call_report\",\"Status\":\"ANSWER\",\"CallSid\":\"s\","
              "\"StartTime\":\"2026-07-03 15:30:00\",\"EndTime\":\"0000-00-00 00:00:00\","
              "\"LegB_Picked_time\":\"0000-00-00 00:00:00\"}",
              &u);
    cr_assert_eq(u.status, CALL_COMPLETED);
    cr_assert_eq(u.ended_at, 0);
    cr_assert_str_eq(iso(u.answered_at), "2026-07-03T10:00:00Z");
    vendor_update_clear(&u);

    /* Inbound (IVR): the answer time is StartTime even with leg times. */
    hook_json("{\"type\":\"call_report\",\"Status\":\"ANSWER (16)\",\"CallSid\":\"s\","
              "\"Direction\":\"IVR\",\"StartTime\":\"2026-07-03 15:30:00\","
              "\"LegB_Picked_time\":\"2026-07-03 15:30:09\"}",
              &u);
    cr_assert_str_eq(iso(u.answered_at), "2026-07-03T10:00:00Z");
    vendor_update_clear(&u);

    /* The zone comes from the vendor's configuration. */
    cv.time_zone = "UTC";
    hook_json("{\"Status\":\"ANSWER\",\"CallSid\":\"s\",\"StartTime\":\"2026-07-03 15:30:00\"}",
              &u);
    cr_assert_str_eq(iso(u.started_at), "2026-07-03T15:30:00Z");
    vendor_update_clear(&u);
    cv.time_zone = "Asia/Kolkata";

    hook_bad("POST", NULL, "{\"Status\":\"ANSWER\",\"CallSid\":\"s\",\"StartTime\":\"03/07/2026\"}",
             "StartTime");
    hook_bad("POST", NULL,
             "{\"Status\":\"ANSWER\",\"CallSid\":\"s\",\"EndTime\":\"2026-13-03 15:30:00\"}",
             "EndTime");
    hook_bad("POST", NULL,
             "{\"Status\":\"ANSWER\",\"CallSid\":\"s\",\"LegB_Picked_time\":\"soon\"}",
             "LegB_Picked_time");
}

Test(callerdesk, webhook_durations, .timeout = 10)
{
    static const struct {
        const char *fields;
        long want;
    } cases[] = {
        {"\"CallDuration\":\"35\"", 35},
        {"\"CallDuration\":35", 35},
        {"\"CallDuration\":35.6", 35},
        {"\"CallDuration\":\"35.6\"", 35},
        {"\"CallDuration\":\"0\"", 0},
        {"\"TalkDuration\":\"20\"", 20},
        {"\"CallDuration\":\"\",\"TalkDuration\":\"20\"", 20},
        {"\"CallDuration\":\"35\",\"TalkDuration\":\"20\"", 35},
        {"\"CallDuration\":\"abc\"", -1},
        {"\"CallDuration\":-5", -1},
        {"\"CallDuration\":null", -1},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[512];
        struct vendor_update u;

        snprintf(body, sizeof(body),
                 "{\"type\":\"call_report\",\"Status\":\"ANSWER\",\"CallSid\":\"s\",%s}",
                 cases[i].fields);
        hook_json(body, &u);
        cr_assert_eq(u.duration_seconds, cases[i].want, "%s -> %ld", cases[i].fields,
                     u.duration_seconds);
        vendor_update_clear(&u);
    }
}

Test(callerdesk, webhook_malformed, .timeout = 10)
{
    hook_bad("POST", NULL, "{\"Status\":", "not a JSON object");
    hook_bad("POST", NULL, "[{\"Status\":\"ANSWER\"}]", "not a JSON object");
    hook_bad("POST", NULL, "{\"Status\":\"ANSWER\",\"Status\":\"BUSY\",\"CallSid\":\"s\"}",
             "not a JSON object");
    hook_bad("POST", NULL, "", "neither JSON nor form");
    hook_bad("POST", NULL, "   \n", "neither JSON nor form");
    hook_bad("POST", NULL, NULL, NULL);
    hook_bad("POST", NULL, "garbage", "Status is required");
    hook_bad("POST", NULL, "=x&&=", "neither JSON nor form");
    hook_bad("GET", NULL, NULL, "no fields");
    hook_bad("GET", "", NULL, "no fields");
    hook_bad("PUT", NULL, "{\"Status\":\"ANSWER\",\"CallSid\":\"s\"}", "POST or GET");
    /* A structured value where a string belongs is not a value. */
    hook_bad("POST", NULL, "{\"Status\":[\"ANSWER\"],\"CallSid\":\"s\"}", "Status is required");
}

Test(callerdesk, webhook_dedupe_keys, .timeout = 10)
{
    struct vendor_update a, b;
    size_t len;
    char *body = fixture_read("callerdesk", "report_answered.json", &len);
    char *form = fixture_read("callerdesk", "report_answered.form", &len);

    /* A redelivery, in either encoding, has the same key. */
    hook_ok("POST", NULL, body, strlen(body), &a);
    hook_ok("POST", NULL, form, strlen(form), &b);
    cr_assert_str_eq(a.dedupe_key, b.dedupe_key);
    vendor_update_clear(&a);
    vendor_update_clear(&b);
    free(body);
    free(form);

    /* Live events differ by status; the report differs from both. */
    hook_json("{\"Status\":\"Transfer to agent\",\"CallSid\":\"s\"}", &a);
    hook_json("{\"Status\":\"Picked\",\"CallSid\":\"s\"}", &b);
    cr_assert_str_eq(a.dedupe_key, "live:s:Transfer to agent");
    cr_assert_str_eq(b.dedupe_key, "live:s:Picked");
    vendor_update_clear(&a);
    vendor_update_clear(&b);

    /* Without a CallSid, campid then uid key the event. */
    hook_json("{\"type\":\"call_report\",\"Status\":\"ANSWER\",\"campid\":\"123\"}", &a);
    cr_assert_str_eq(a.dedupe_key, "report:campid:123");
    vendor_update_clear(&a);
    hook_json("{\"Status\":\"Picked\",\"uid\":\"call_A\"}", &a);
    cr_assert_str_eq(a.dedupe_key, "live:uid:call_A:Picked");
    vendor_update_clear(&a);
}

/* ---------------------------------------------------------------------------
 * Call history
 */

static const char *const one_number[] = {CUSTOMER};

static struct vendor_history_query
a_query(void)
{
    struct vendor_history_query q = {
        .numbers = one_number,
        .nnumbers = 1,
        .start_date = "2026-07-01",
        .end_date = "2026-07-31",
        .page = 2,
    };
    return q;
}

static void
history_build_bad(const struct vendor_ctx *c, const struct vendor_history_query *q,
                  const char *want)
{
    struct vendor_http h;
    char err[256] = "";

    memset(&h, 0, sizeof(h));
    cr_assert_eq(ops->build_history(c, q, &h, err, sizeof(err)), -1, "accepted: %s",
                 h.url ? h.url : "");
    cr_assert_not_null(strstr(err, want), "error \"%s\" lacks \"%s\"", err, want);
    cr_assert_null(h.url);
    cr_assert_null(h.body);
}

Test(callerdesk, build_history_request, .timeout = 10)
{
    struct vendor_history_query q = a_query();
    struct vendor_http h;
    char err[256] = "";

    memset(&h, 0, sizeof(h));
    cr_assert_eq(ops->build_history(&ctx, &q, &h, err, sizeof(err)), 0, "refused: %s", err);
    cr_assert_str_eq(h.method, "POST");
    cr_assert_str_eq(h.url, BASE "/api/call_list_v2");
    cr_assert(has_header(&h, "Content-Type: application/x-www-form-urlencoded"));
    cr_assert(has_header(&h, "Accept: application/json"));
    cr_assert_str_eq(h.body, "authcode=cdk-key&start_date=2026-07-01&end_date=2026-07-31"
                             "&current_page=2&per_page=50&caller_num=9876543210");
    cr_assert_eq(h.body_len, strlen(h.body));
    vendor_http_clear(&h);

    /* No dates, page 0 (= 1), an authcode that needs encoding. */
    q.start_date = NULL;
    q.end_date = NULL;
    q.page = 0;
    {
        struct vendor_ctx c2 = ctx;

        c2.api_key = "k&y=1 2";
        cr_assert_eq(ops->build_history(&c2, &q, &h, err, sizeof(err)), 0, "refused: %s", err);
    }
    cr_assert_str_eq(h.body,
                     "authcode=k%26y%3D1%202&current_page=1&per_page=50&caller_num=9876543210");
    vendor_http_clear(&h);
}

Test(callerdesk, build_history_refusals, .timeout = 10)
{
    static const char *const foreign[] = {"+14155550100"};
    static const char *const null_number[] = {NULL};
    struct vendor_history_query q = a_query();
    struct vendor_ctx c2 = ctx;

    c2.api_key = NULL;
    history_build_bad(&c2, &q, "authcode");
    c2 = ctx;
    c2.base_url = "";
    history_build_bad(&c2, &q, "base_url");
    q.nnumbers = 0;
    history_build_bad(&ctx, &q, "phone number");
    q = a_query();
    q.numbers = null_number;
    history_build_bad(&ctx, &q, "phone number");
    q.numbers = foreign;
    history_build_bad(&ctx, &q, "Indian (+91)");
    q = a_query();
    q.end_date = NULL;
    history_build_bad(&ctx, &q, "together");
    q = a_query();
    q.start_date = "2026-7-1";
    history_build_bad(&ctx, &q, "YYYY-MM-DD");
}

/* parse_history must succeed; returns the rows (caller decrefs) and *more. */
static json_t *
history_ok(long status, const char *body, int page, int *more)
{
    struct vendor_history_query q = a_query();
    json_t *rows = json_array();
    char err[256] = "";

    q.page = page;
    *more = 7;
    cr_assert_eq(
        ops->parse_history(&ctx, &q, status, body, strlen(body), rows, more, err, sizeof(err)), 0,
        "refused: %s\n%s", err, body);
    return rows;
}

/* parse_history must fail with err containing want, leaving rows as they were. */
static void
history_bad(long status, const char *body, const char *want)
{
    struct vendor_history_query q = a_query();
    json_t *rows = fixture_json("[{\"vendor\":\"other\"}]");
    char err[256] = "";
    int more = 1;

    cr_assert_eq(
        ops->parse_history(&ctx, &q, status, body, strlen(body), rows, &more, err, sizeof(err)), -1,
        "accepted: %s", body);
    cr_assert_eq(more, 0);
    cr_assert_not_null(strstr(err, want), "error \"%s\" lacks \"%s\"", err, want);
    cr_assert_eq(json_array_size(rows), 1, "rows were touched on failure");
    json_decref(rows);
}

Test(callerdesk, parse_history_rows, .timeout = 10)
{
    size_t len, wlen;
    char *body = fixture_read("callerdesk", "call_list.json", &len);
    char *want_text = fixture_read("callerdesk", "call_list.neutral.json", &wlen);
    struct vendor_history_query q = a_query();
    json_t *rows = fixture_json("[{\"vendor\":\"earlier\"}]");
    json_t *want = fixture_json(want_text);
    char err[256] = "";
    int more = 1;

    json_array_insert_new(want, 0, json_pack("{s:s}", "vendor", "earlier"));
    q.page = 1;
    cr_assert_eq(ops->parse_history(&ctx, &q, 200, body, len, rows, &more, err, sizeof(err)), 0,
                 "refused: %s", err);
    cr_assert_eq(more, 0);
    fixture_assert_json_eq(rows, want);
    json_decref(rows);
    json_decref(want);
    free(body);
    free(want_text);
}

#define ROW "{\"startdatetime\":\"2026-07-03 15:30:00\",\"callstatus\":\"ANSWER\"}"

Test(callerdesk, parse_history_paging, .timeout = 10)
{
    int more;
    json_t *rows;

    /* 50 a page: page 1 of 120 has more, page 3 (101..120) does not. */
    rows = history_ok(200,
                      "{\"type\":\"success\",\"result\":[" ROW "],\"current_page\":1,"
                      "\"total\":120}",
                      1, &more);
    cr_assert_eq(more, 1);
    cr_assert_eq(json_array_size(rows), 1);
    json_decref(rows);
    rows = history_ok(200,
                      "{\"type\":\"success\",\"result\":[" ROW "],\"current_page\":3,"
                      "\"total\":120}",
                      3, &more);
    cr_assert_eq(more, 0);
    json_decref(rows);
    /* Exactly full: 2 * 50 == 100, nothing after. */
    rows = history_ok(200,
                      "{\"type\":\"success\",\"result\":[" ROW "],\"current_page\":2,"
                      "\"total\":100}",
                      2, &more);
    cr_assert_eq(more, 0);
    json_decref(rows);
    /* Numbers as strings. */
    rows = history_ok(200,
                      "{\"type\":\"success\",\"result\":[" ROW "],\"current_page\":\"2\","
                      "\"total\":\"120\"}",
                      2, &more);
    cr_assert_eq(more, 1);
    json_decref(rows);
    /* No current_page: the page asked for. No total: no more. */
    rows = history_ok(200, "{\"type\":\"success\",\"result\":[" ROW "],\"total\":120}", 2, &more);
    cr_assert_eq(more, 1);
    json_decref(rows);
    rows = history_ok(200, "{\"type\":\"success\",\"result\":[" ROW "]}", 1, &more);
    cr_assert_eq(more, 0);
    json_decref(rows);
    /* An empty page never asks for another. */
    rows = history_ok(200,
                      "{\"type\":\"success\",\"result\":[],\"current_page\":1,"
                      "\"total\":120}",
                      1, &more);
    cr_assert_eq(more, 0);
    cr_assert_eq(json_array_size(rows), 0);
    json_decref(rows);
    rows = history_ok(200, "{\"type\":\"success\",\"result\":null}", 1, &more);
    cr_assert_eq(json_array_size(rows), 0);
    json_decref(rows);
}

Test(callerdesk, parse_history_no_data, .timeout = 10)
{
    static const char *const bodies[] = {
        "{\"type\":\"error\",\"message\":\"No Data Found\"}",
        "{\"type\":\"error\",\"message\":\"no data found for this filter\"}",
        "{\"type\":\"error\",\"message\":\"Record not found\"}",
        "{\"type\":\"error\",\"message\":\"No Record Found!\"}",
        "{\"type\":\"ERROR\",\"message\":\"NO DATA\"}",
    };
    size_t i, len;
    char *body = fixture_read("callerdesk", "call_list_nodata.json", &len);
    int more;
    json_t *rows = history_ok(200, body, 1, &more);

    cr_assert_eq(more, 0);
    cr_assert_eq(json_array_size(rows), 0);
    json_decref(rows);
    free(body);
    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        rows = history_ok(200, bodies[i], 1, &more);
        cr_assert_eq(more, 0);
        cr_assert_eq(json_array_size(rows), 0, "%s", bodies[i]);
        json_decref(rows);
    }
}

Test(callerdesk, parse_history_errors, .timeout = 10)
{
    history_bad(200, "{\"type\":\"error\",\"message\":\"Invalid Auth Code!\"}",
                "Invalid Auth Code!");
    history_bad(200, "{\"type\":\"error\"}", "type error");
    history_bad(200, "<html>oops", "not JSON");
    history_bad(200, "{\"result\":[]}", "no type success");
    history_bad(200, "{\"type\":\"success\",\"result\":{}}", "not a list");
    history_bad(500, "", "HTTP 500");
    history_bad(502, "{\"message\":\"Bad gateway\"}", "Bad gateway");
    /* One bad row fails the whole answer. */
    history_bad(200,
                "{\"type\":\"success\",\"result\":[" ROW ",{\"startdatetime\":\"yesterday\"}]}",
                "unreadable startdatetime in Callerdesk row 1");
    history_bad(200,
                "{\"type\":\"success\",\"result\":[{\"startdatetime\":\"0000-00-00 00:00:00\","
                "\"call_date\":\"\"}]}",
                "unreadable startdatetime in Callerdesk row 0");
    history_bad(200,
                "{\"type\":\"success\",\"result\":[{\"startdatetime\":\"2026-07-03 15:30:00\","
                "\"total_duration\":\"1m\"}]}",
                "unreadable duration in Callerdesk row 0");
    history_bad(200, "{\"type\":\"success\",\"result\":[1]}", "row 0 is not an object");
}

Test(callerdesk, parse_history_row_statuses, .timeout = 10)
{
    static const struct {
        const char *callstatus, *callresult, *want;
    } cases[] = {
        {"ANSWER", "Answered", "completed"},
        {"Cancel-Customer", "No Answer", "no_answer"},
        {"cancel-Agent", "", "no_answer"},
        {"Busy", "No Answer", "busy"},
        {"AgentEngaged", "", "busy"},
        {"Congestion", "", "failed"},
        {"AbandonedCall", "", "canceled"},
        {"", "Answered", "completed"},
        {"", "No Answer", "no_answer"},
        {"", "Voice Mail", "no_answer"},
        {"Picked", "", "in_progress"},
        {"Strange", "", "unknown"},
        {"", "", "unknown"},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[512];
        int more;
        json_t *rows, *st;

        snprintf(body, sizeof(body),
                 "{\"type\":\"success\",\"result\":[{\"startdatetime\":\"2026-07-03 15:30:00\","
                 "\"callstatus\":\"%s\",\"callresult\":\"%s\"}]}",
                 cases[i].callstatus, cases[i].callresult);
        rows = history_ok(200, body, 1, &more);
        st = json_object_get(json_array_get(rows, 0), "status");
        cr_assert_str_eq(json_string_value(st), cases[i].want, "%s/%s", cases[i].callstatus,
                         cases[i].callresult);
        json_decref(rows);
    }
}
