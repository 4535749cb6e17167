/*
 * test_ccai.c: the CCAI Platform adapter (src/vendors/ccai.c), through the
 * registry as the gateway uses it. No network.
 *
 * Facts (shared/seeds/004, shared/vendors.md §2 and §5): POST
 * /apps/api/v1/calls with Basic auth and call_type "Voice Outbound (API)" /
 * "Voice Inbound (API)" / "Voice Scheduled (API)"; 201 + call object, 202
 * when the agent must act, 400 {"message"}; status + fail_reason enums;
 * customer_flag GET/PATCH; external session events {count, events[]}.
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

#define BASE "https://acme.uc1.ccaiplatform.com"
/* base64("acme:tok-123") */
#define AUTH "Authorization: Basic YWNtZTp0b2stMTIz"

static struct conf_vendor cv;
static struct vendor_ctx ctx;
static const struct vendor_ops *ops;
static json_t *options;

static void
setup(void)
{
    memset(&cv, 0, sizeof(cv));
    cv.name = "ccai";
    cv.base_url = BASE;
    cv.api_key = "acme:tok-123";
    cv.from_number = "+13392195276";
    cv.time_zone = "UTC";
    cv.connect_timeout_ms = 3000;
    cv.timeout_ms = 10000;
    vendor_ctx_init(&ctx, &cv, NULL);
    options = NULL;
    ops = vendor_ops_find("ccai");
    cr_assert_not_null(ops);
}

static void
teardown(void)
{
    json_decref(options);
    options = NULL;
    if (LEAK_CHECK() != 0) {
        abort();
    }
}

TestSuite(ccai, .init = setup, .fini = teardown, .timeout = 10);

static void
set_option(const char *name, const char *value)
{
    if (options == NULL) {
        options = json_object();
    }
    json_object_set_new(options, name, json_string(value));
    ctx.options = options;
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

static struct vendor_call
a_call(const char *type)
{
    struct vendor_call call = {
        .call_id = "call_01J2ABCDEF",
        .type = type,
        .to = "+18596579625",
        .agent = "admin@somedomain.com",
        .record = 1,
        .max_ring_seconds = 30,
        .lang = "en",
    };
    return call;
}

/* Build a placement, check method, URL and headers; compare the body as JSON. */
static void
expect_place(const struct vendor_call *call, const char *want_body)
{
    struct vendor_http h;
    char err[256] = "";
    json_t *got, *want;

    memset(&h, 0, sizeof(h));
    cr_assert_eq(ops->build_place(&ctx, call, &h, err, sizeof(err)), 0, "refused: %s", err);
    cr_assert_str_eq(h.method, "POST");
    cr_assert_str_eq(h.url, BASE "/apps/api/v1/calls");
    cr_assert(has_header(&h, AUTH), "Basic auth header");
    cr_assert(has_header(&h, "Content-Type: application/json"));
    cr_assert(has_header(&h, "Accept: application/json"));
    cr_assert_eq(h.body_len, strlen(h.body));
    got = fixture_json(h.body);
    want = fixture_json(want_body);
    fixture_assert_json_eq(got, want);
    json_decref(got);
    json_decref(want);
    vendor_http_clear(&h);
}

static void
place_bad(const struct vendor_call *call, const char *want)
{
    struct vendor_http h;
    char err[256] = "";

    memset(&h, 0, sizeof(h));
    cr_assert_eq(ops->build_place(&ctx, call, &h, err, sizeof(err)), -1);
    cr_assert_not_null(strstr(err, want), "error \"%s\" lacks \"%s\"", err, want);
    cr_assert_null(h.url);
}

Test(ccai, registered_with_its_capabilities)
{
    unsigned want = VENDOR_CAP_OUTBOUND | VENDOR_CAP_INBOUND | VENDOR_CAP_SCHEDULED |
                    VENDOR_CAP_FLAGS | VENDOR_CAP_STATUS | VENDOR_CAP_WEBHOOKS |
                    VENDOR_CAP_RECORDING;

    cr_assert_eq(ops->caps, want);
    cr_assert_null(ops->build_participant, "CCAI has no add-participant API");
    cr_assert_null(ops->build_history);
    cr_assert_not_null(ops->parse_webhook_batch);
}

/* ---- placement requests -------------------------------------------------- */

Test(ccai, outbound_request)
{
    struct vendor_call c = a_call("outbound");

    expect_place(&c, "{\"call_type\":\"Voice Outbound (API)\",\"agent_email\":"
                     "\"admin@somedomain.com\",\"end_user_number\":\"+18596579625\","
                     "\"outbound_number\":\"+13392195276\",\"lang\":\"en\"}");
}

Test(ccai, outbound_with_ticket_and_from_and_lang)
{
    struct vendor_call c = a_call("outbound");

    c.ticket_id = "T-42";
    c.from = "+17608675309";
    c.lang = "fr-CA";
    expect_place(&c, "{\"call_type\":\"Voice Outbound (API)\",\"agent_email\":"
                     "\"admin@somedomain.com\",\"end_user_number\":\"+18596579625\","
                     "\"ticket_id\":\"T-42\",\"outbound_number\":\"+17608675309\","
                     "\"lang\":\"fr-CA\"}");
}

Test(ccai, outbound_without_any_caller_id_lets_ccai_choose)
{
    struct vendor_call c = a_call("outbound");

    cv.from_number = NULL;
    vendor_ctx_init(&ctx, &cv, NULL);
    expect_place(&c, "{\"call_type\":\"Voice Outbound (API)\",\"agent_email\":"
                     "\"admin@somedomain.com\",\"end_user_number\":\"+18596579625\","
                     "\"lang\":\"en\"}");
}

Test(ccai, spaced_number_style)
{
    struct vendor_call c = a_call("outbound");

    set_option("number_style", "spaced");
    c.to = "+919876543210";
    expect_place(&c, "{\"call_type\":\"Voice Outbound (API)\",\"agent_email\":"
                     "\"admin@somedomain.com\",\"end_user_number\":\"+91 9876543210\","
                     "\"outbound_number\":\"+1 3392195276\",\"lang\":\"en\"}");
}

Test(ccai, inbound_request)
{
    struct vendor_call c = a_call("inbound");

    c.agent = NULL;
    c.queue = "9";
    expect_place(&c, "{\"call_type\":\"Voice Inbound (API)\",\"menu_id\":9,"
                     "\"end_user_number\":\"+18596579625\",\"recording_permission\":"
                     "\"recording_permission_granted\",\"lang\":\"en\"}");
}

Test(ccai, scheduled_request)
{
    struct vendor_call c = a_call("scheduled");

    c.queue = "9";
    c.record = 0;
    c.scheduled_at = "2030-09-15T00:19:14Z";
    expect_place(&c, "{\"call_type\":\"Voice Scheduled (API)\",\"menu_id\":9,"
                     "\"end_user_number\":\"+18596579625\",\"scheduled_at\":"
                     "\"2030-09-15T00:19:14Z\",\"recording_permission\":"
                     "\"recording_permission_denied\",\"lang\":\"en\"}");
}

Test(ccai, refusals_before_sending)
{
    struct vendor_call c = a_call("outbound");

    c.agent = "agent.017";
    place_bad(&c, "e-mail");
    c.agent = NULL;
    place_bad(&c, "e-mail");
    c = a_call("inbound");
    place_bad(&c, "menu_id");
    c.queue = "menu_999";
    place_bad(&c, "menu_id");
    c = a_call("scheduled");
    c.queue = "9";
    place_bad(&c, "scheduled_at");
    c = a_call("outbound");
    cv.api_key = "no-colon";
    vendor_ctx_init(&ctx, &cv, NULL);
    place_bad(&c, "user:token");
}

/* ---- placement answers --------------------------------------------------- */

static void
parse_fixture(const char *name, long status, struct vendor_placed *out)
{
    size_t len;
    char *body = fixture_read("ccai", name, &len);

    ops->parse_place(&ctx, status, body, len, out);
    free(body);
}

Test(ccai, answer_201_is_accepted_with_the_ccai_id)
{
    struct vendor_placed p;

    parse_fixture("place_201_outbound.json", 201, &p);
    cr_assert_eq(p.outcome, VENDOR_ACCEPTED);
    cr_assert_str_eq(p.vendor_call_id, "397");
    cr_assert_eq(p.agent_action, 0);
    parse_fixture("place_201_inbound.json", 201, &p);
    cr_assert_eq(p.outcome, VENDOR_ACCEPTED);
    cr_assert_str_eq(p.vendor_call_id, "515");
}

Test(ccai, answer_202_needs_the_agent)
{
    struct vendor_placed p;

    parse_fixture("place_202_echo.json", 202, &p);
    cr_assert_eq(p.outcome, VENDOR_ACCEPTED);
    cr_assert_eq(p.agent_action, 1);
    cr_assert_str_eq(p.vendor_call_id, "");
    /* One doc example shows the same echo with HTTP 200. */
    parse_fixture("place_202_echo.json", 200, &p);
    cr_assert_eq(p.outcome, VENDOR_ACCEPTED);
    cr_assert_eq(p.agent_action, 1);
    /* A 202 with a call object keeps its id. */
    parse_fixture("place_201_outbound.json", 202, &p);
    cr_assert_eq(p.agent_action, 1);
    cr_assert_str_eq(p.vendor_call_id, "397");
}

Test(ccai, answer_400_message_is_a_rejection)
{
    struct vendor_placed p;

    parse_fixture("place_400_agent.json", 400, &p);
    cr_assert_eq(p.outcome, VENDOR_REJECTED);
    cr_assert_str_eq(p.detail, "Agent is not available to take this call");
}

Test(ccai, other_answers)
{
    static const struct {
        long status;
        const char *body;
        enum vendor_outcome want;
    } cases[] = {
        {401, "", VENDOR_REJECTED},
        {404, "{\"message\":\"Resource not found\"}", VENDOR_REJECTED},
        {429, "{\"message\":\"Too many requests\"}", VENDOR_UNAVAILABLE},
        {503, "", VENDOR_UNAVAILABLE},
        {502, "<html>", VENDOR_UNAVAILABLE},
        {500, "", VENDOR_AMBIGUOUS},
        {504, "", VENDOR_AMBIGUOUS},
        {201, "not json", VENDOR_AMBIGUOUS},
        {201, "{\"status\":\"assigned\"}", VENDOR_AMBIGUOUS},
        {201, "{\"id\":\"../x\"}", VENDOR_AMBIGUOUS},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct vendor_placed p;
        ops->parse_place(&ctx, cases[i].status, cases[i].body, strlen(cases[i].body), &p);
        cr_assert_eq(p.outcome, cases[i].want, "case %zu (HTTP %ld): got %d", i, cases[i].status,
                     p.outcome);
        if (p.outcome != VENDOR_ACCEPTED) {
            cr_assert_neq(p.detail[0], '\0', "case %zu has a detail", i);
        }
    }
}

/* ---- status: every vendor value maps ------------------------------------- */

static enum call_status
status_of(const char *status, const char *fail_reason)
{
    char body[256], err[256] = "";
    struct vendor_update u;
    enum call_status st;

    snprintf(body, sizeof(body), "{\"id\":397,\"status\":\"%s\",\"fail_reason\":\"%s\"}", status,
             fail_reason);
    vendor_update_init(&u);
    cr_assert_eq(ops->parse_status(&ctx, 200, body, strlen(body), &u, err, sizeof(err)), 0,
                 "%s/%s: %s", status, fail_reason, err);
    cr_assert_str_eq(u.vendor_call_id, "397");
    cr_assert_str_eq(u.vendor_status, status);
    st = u.status;
    vendor_update_clear(&u);
    return st;
}

Test(ccai, every_status_maps)
{
    static const struct {
        const char *status;
        enum call_status want;
    } cases[] = {
        {"selecting", CALL_QUEUED},
        {"queued", CALL_QUEUED},
        {"scheduled", CALL_SCHEDULED},
        {"assigned", CALL_RINGING},
        {"connecting", CALL_RINGING},
        {"switching", CALL_RINGING},
        {"connected", CALL_IN_PROGRESS},
        {"action_only", CALL_IN_PROGRESS},
        {"finished", CALL_COMPLETED},
        {"action_only_finished", CALL_COMPLETED},
        {"recovered", CALL_COMPLETED},
        {"deflected", CALL_COMPLETED},
        {"voicemail", CALL_COMPLETED},
        {"voicemail_received", CALL_COMPLETED},
        {"voicemail_read", CALL_COMPLETED},
        {"failed", CALL_FAILED},
        /* display names, as the docs' table writes them */
        {"Action Only Finished", CALL_COMPLETED},
        {"Voicemail Received", CALL_COMPLETED},
        {"Connected", CALL_IN_PROGRESS},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum call_status got = status_of(cases[i].status, "nothing");
        cr_assert_eq(got, cases[i].want, "%s -> %s, want %s", cases[i].status,
                     call_status_text[got], call_status_text[cases[i].want]);
    }
}

Test(ccai, every_fail_reason_maps)
{
    static const struct {
        const char *reason;
        enum call_status want;
    } cases[] = {
        {"nothing", CALL_FAILED},
        {"unknown", CALL_FAILED},
        {"expired", CALL_NO_ANSWER},
        {"transfer_expired", CALL_FAILED},
        {"eu_canceled", CALL_CANCELED},
        {"eu_rejected", CALL_BUSY},
        {"eu_abandoned", CALL_CANCELED},
        {"eu_in_menu_abandoned", CALL_CANCELED},
        {"eu_repeated_voicemail", CALL_CANCELED},
        {"eu_repeated_callback", CALL_CANCELED},
        {"eu_busy", CALL_BUSY},
        {"eu_wrong_number", CALL_FAILED},
        {"eu_no_answer", CALL_NO_ANSWER},
        {"eu_noti_failed", CALL_FAILED},
        {"ag_canceled", CALL_FAILED},
        {"ag_ignored", CALL_NO_ANSWER},
        {"ag_mic_no_device", CALL_FAILED},
        {"ag_mic_denied", CALL_FAILED},
        {"voip_twilio_error", CALL_FAILED},
        {"voip_tokbox_error", CALL_FAILED},
        {"voip_invalid_token", CALL_FAILED},
        {"voip_conn_general", CALL_FAILED},
        {"voip_conn_timeout", CALL_FAILED},
        {"voip_conn_signal", CALL_FAILED},
        {"voip_nexmo_error", CALL_FAILED},
        {"stuck_due_to_api_error", CALL_FAILED},
        {"group_deleted_no_substitute", CALL_FAILED},
        {"menu_deleted", CALL_FAILED},
        {"direct_pstn_call_to_fallback_number", CALL_FAILED},
        /* numeric codes */
        {"21003", CALL_NO_ANSWER},
        {"21001", CALL_BUSY},
        {"20001", CALL_CANCELED},
        {"44001", CALL_FAILED},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum call_status got = status_of("failed", cases[i].reason);
        cr_assert_eq(got, cases[i].want, "failed/%s -> %s, want %s", cases[i].reason,
                     call_status_text[got], call_status_text[cases[i].want]);
    }
}

Test(ccai, status_request_path_is_configurable)
{
    struct vendor_http h;
    char err[256] = "";

    memset(&h, 0, sizeof(h));
    cr_assert_eq(ops->build_status(&ctx, "397", &h, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(h.method, "GET");
    cr_assert_str_eq(h.url, BASE "/manager/api/v1/calls/397");
    cr_assert(has_header(&h, AUTH));
    cr_assert_null(h.body);
    vendor_http_clear(&h);
    set_option("status_path", "/apps/api/v1/calls/{id}");
    cr_assert_eq(ops->build_status(&ctx, "397", &h, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(h.url, BASE "/apps/api/v1/calls/397");
    vendor_http_clear(&h);
    cr_assert_eq(ops->build_status(&ctx, "39/7", &h, err, sizeof(err)), -1);
    cr_assert_eq(ops->build_status(&ctx, "", &h, err, sizeof(err)), -1);
}

Test(ccai, status_answer_finished)
{
    size_t len;
    char *body = fixture_read("ccai", "status_finished.json", &len), err[256] = "";
    struct vendor_update u;

    vendor_update_init(&u);
    cr_assert_eq(ops->parse_status(&ctx, 200, body, len, &u, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(u.status, CALL_COMPLETED);
    cr_assert_str_eq(u.vendor_status, "finished");
    cr_assert_str_eq(u.vendor_call_id, "397");
    cr_assert_eq(u.duration_seconds, 85);
    cr_assert_eq(u.answered_at, 1559870860000LL);
    cr_assert_eq(u.ended_at, 1559870945000LL);
    cr_assert_eq(u.started_at, 1559870850406LL);
    cr_assert_str_eq(u.recording_url, "https://acme.uc1.ccaiplatform.com/recordings/397.mp3");
    vendor_update_clear(&u);
    free(body);
}

Test(ccai, status_answer_failed_busy)
{
    size_t len;
    char *body = fixture_read("ccai", "status_failed_busy.json", &len), err[256] = "";
    struct vendor_update u;

    vendor_update_init(&u);
    cr_assert_eq(ops->parse_status(&ctx, 200, body, len, &u, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(u.status, CALL_BUSY);
    cr_assert_str_eq(u.disposition, "eu_busy");
    cr_assert_eq(u.duration_seconds, 0, "never answered");
    vendor_update_clear(&u);
    free(body);
}

Test(ccai, status_answer_errors)
{
    static const struct {
        long status;
        const char *body;
    } cases[] = {
        {404, "{\"message\":\"Not found\"}"},
        {200, "[]"},
        {200, "{\"id\":1}"},
        {200, "{\"id\":1,\"status\":\"exploded\"}"},
        {200, "{\"id\":1,\"status\":\"finished\",\"ends_at\":\"yesterday\"}"},
        {200, "garbage"},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct vendor_update u;
        char err[256] = "";
        vendor_update_init(&u);
        cr_assert_eq(ops->parse_status(&ctx, cases[i].status, cases[i].body,
                                       strlen(cases[i].body), &u, err, sizeof(err)),
                     -1, "case %zu", i);
        cr_assert_neq(err[0], '\0');
        vendor_update_clear(&u);
    }
}

/* ---- session events ------------------------------------------------------ */

static int
batch(const char *body, size_t len, struct vendor_update **ups, size_t *n, char *err,
      size_t errlen)
{
    return ops->parse_webhook_batch(&ctx, "POST", NULL, body, len, ups, n, err, errlen);
}

static void
free_batch(struct vendor_update *ups, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        vendor_update_clear(&ups[i]);
    }
    free(ups);
}

Test(ccai, events_batch_gives_one_update_per_event)
{
    size_t len, n = 0;
    char *body = fixture_read("ccai", "events_end_batch.json", &len), err[256] = "";
    struct vendor_update *ups = NULL;

    cr_assert_eq(batch(body, len, &ups, &n, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(ups[0].call_id, "", "CCAI does not echo our id");
    cr_assert_str_eq(ups[0].vendor_call_id, "397");
    cr_assert_eq(ups[0].status, CALL_COMPLETED);
    cr_assert_eq(ups[0].duration_seconds, 85);
    cr_assert_str_eq(ups[0].dedupe_key, "3f0c8a52-6a0e-4f0e-9a51-0d5e2f1c7a01");
    cr_assert_eq(ups[1].status, CALL_COMPLETED);
    cr_assert_str_eq(ups[1].disposition, "resolved");
    cr_assert_str_eq(ups[1].vendor_status, "disconnected/agent:dispositionSubmitted");
    cr_assert_str_eq(ups[1].dedupe_key, "3f0c8a52-6a0e-4f0e-9a51-0d5e2f1c7a02");
    free_batch(ups, n);
    free(body);
}

Test(ccai, events_lifecycle_states)
{
    static const struct {
        const char *event;
        enum call_status want;
    } cases[] = {
        {"{\"event_id\":\"e1\",\"state\":\"connected\",\"participants\":[{\"type\":\"end_user\","
         "\"status\":\"connected\"}],\"item\":{\"call_id\":7}}",
         CALL_QUEUED},
        {"{\"event_id\":\"e2\",\"state\":\"connected\",\"participants\":[{\"type\":\"agent\","
         "\"status\":\"accepted\"}],\"item\":{\"call_id\":7}}",
         CALL_RINGING},
        {"{\"event_id\":\"e3\",\"state\":\"connected\",\"participants\":[{\"type\":\"agent\","
         "\"status\":\"connected\"}],\"item\":{\"call_id\":7}}",
         CALL_IN_PROGRESS},
        {"{\"event_id\":\"e4\",\"state\":\"disconnected\",\"connected_at\":"
         "\"2024-01-01T10:00:00Z\",\"ends_at\":\"2024-01-01T10:01:00Z\",\"item\":{\"call_id\":7}}",
         CALL_COMPLETED},
        {"{\"event_id\":\"e5\",\"state\":\"disconnected\",\"item\":{\"call_id\":7}}",
         CALL_NO_ANSWER},
        {"{\"event_id\":\"e6\",\"state\":\"disconnected\",\"item\":{\"call_id\":7,"
         "\"fail_reason\":\"eu_busy\"}}",
         CALL_BUSY},
        /* an item carrying the call status wins over the session state */
        {"{\"event_id\":\"e7\",\"state\":\"disconnected\",\"item\":{\"call_id\":7,"
         "\"status\":\"failed\",\"fail_reason\":\"eu_canceled\"}}",
         CALL_CANCELED},
        {"{\"event_id\":\"e8\",\"session_state\":\"connected\",\"item\":{\"call_id\":\"7\","
         "\"participants\":[{\"type\":\"agent\",\"status\":\"connected\"}]}}",
         CALL_IN_PROGRESS},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[1024], err[256] = "";
        struct vendor_update *ups = NULL;
        size_t n = 0;

        snprintf(body, sizeof(body), "{\"count\":1,\"events\":[%s]}", cases[i].event);
        cr_assert_eq(batch(body, strlen(body), &ups, &n, err, sizeof(err)), 0, "case %zu: %s", i,
                     err);
        cr_assert_eq(n, 1);
        cr_assert_eq(ups[0].status, cases[i].want, "case %zu: %s, want %s", i,
                     call_status_text[ups[0].status], call_status_text[cases[i].want]);
        cr_assert_str_eq(ups[0].vendor_call_id, "7");
        free_batch(ups, n);
    }
}

Test(ccai, events_unusable)
{
    static const char *const bodies[] = {
        "",
        "not json",
        "[]",
        "{\"count\":0,\"events\":[]}",
        "{\"count\":1}",
        "{\"count\":1,\"events\":{}}",
        "{\"count\":1,\"events\":[42]}",
        "{\"count\":1,\"events\":[{\"event_id\":\"x\",\"state\":\"connected\"}]}",
        "{\"count\":1,\"events\":[{\"event_id\":\"x\",\"item\":{\"call_id\":1}}]}",
        "{\"count\":1,\"events\":[{\"event_id\":\"x\",\"state\":\"weird\",\"item\":{\"call_id\":1}}]}",
        "{\"count\":1,\"events\":[{\"event_id\":\"x\",\"state\":\"connected\",\"item\":{\"call_id\":"
        "\"../1\"}}]}",
        /* one good event and one bad: the delivery as a whole is refused */
        "{\"count\":2,\"events\":[{\"event_id\":\"a\",\"state\":\"connected\",\"item\":{\"call_id\":"
        "1}},{\"event_id\":\"b\"}]}",
        "{\"events\":[],\"events\":[]}",
    };
    size_t i;

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct vendor_update *ups = NULL;
        size_t n = 7;
        char err[256] = "";
        cr_assert_eq(batch(bodies[i], strlen(bodies[i]), &ups, &n, err, sizeof(err)), -1,
                     "body %zu accepted", i);
        cr_assert_null(ups);
        cr_assert_eq(n, 0);
        cr_assert_neq(err[0], '\0');
    }
    {
        struct vendor_update *ups = NULL;
        size_t n = 0;
        char err[256] = "";
        cr_assert_eq(ops->parse_webhook_batch(&ctx, "GET", "a=b", "", 0, &ups, &n, err,
                                              sizeof(err)),
                     -1);
    }
}

Test(ccai, events_too_many_refused)
{
    struct evbuf {
        char *p;
        size_t n, cap;
    } b = {NULL, 0, 0};
    FILE *f = open_memstream(&b.p, &b.n);
    struct vendor_update *ups = NULL;
    size_t n = 0, i;
    char err[256] = "";

    fputs("{\"count\":501,\"events\":[", f);
    for (i = 0; i < 501; i++) {
        fprintf(f, "%s{\"event_id\":\"e%zu\",\"state\":\"connected\",\"item\":{\"call_id\":1}}",
                i ? "," : "", i);
    }
    fputs("]}", f);
    fclose(f);
    cr_assert_eq(batch(b.p, b.n, &ups, &n, err, sizeof(err)), -1);
    free(b.p);
}

Test(ccai, recording_request_carries_the_credentials)
{
    struct vendor_http h;
    char err[256] = "";

    memset(&h, 0, sizeof(h));
    cr_assert_not_null(ops->build_recording);
    cr_assert_eq(ops->build_recording(&ctx, BASE "/recordings/397.mp3", &h, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_str_eq(h.method, "GET");
    cr_assert_str_eq(h.url, BASE "/recordings/397.mp3");
    cr_assert(has_header(&h, AUTH));
    cr_assert_null(h.headers[1], "no JSON Accept for a media file");
    vendor_http_clear(&h);
}

/* ---- customer flags ------------------------------------------------------ */

Test(ccai, flags_requests)
{
    struct vendor_flags set = {1, -1, 0};
    struct vendor_http h;
    char err[256] = "";
    json_t *got;

    memset(&h, 0, sizeof(h));
    cr_assert_eq(ops->build_flags(&ctx, "397", NULL, &h, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(h.method, "GET");
    cr_assert_str_eq(h.url, BASE "/apps/api/v1/calls/397/customer_flag");
    cr_assert(has_header(&h, AUTH));
    cr_assert_null(h.body);
    vendor_http_clear(&h);

    cr_assert_eq(ops->build_flags(&ctx, "397", &set, &h, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(h.method, "PATCH");
    cr_assert_str_eq(h.url, BASE "/apps/api/v1/calls/397/customer_flag");
    cr_assert(has_header(&h, "Content-Type: application/json"));
    got = fixture_json(h.body);
    {
        json_t *want = fixture_json("{\"verified_customer\":true,\"repeat_customer\":false}");
        fixture_assert_json_eq(got, want);
        json_decref(want);
    }
    json_decref(got);
    vendor_http_clear(&h);

    set_option("flag_repeat_key", "repeat_customers");
    cr_assert_eq(ops->build_flags(&ctx, "397", &set, &h, err, sizeof(err)), 0, "%s", err);
    cr_assert_not_null(strstr(h.body, "\"repeat_customers\":false"), "%s", h.body);
    vendor_http_clear(&h);

    cr_assert_eq(ops->build_flags(&ctx, "x/1", NULL, &h, err, sizeof(err)), -1);
}

Test(ccai, flags_answers)
{
    struct vendor_flags f;
    char detail[256];
    const char *ok = "{\"verified_customer\":true,\"bad_actor\":false,\"repeat_customers\":true}";
    const char *strs = "{\"verified_customer\":\"false\",\"bad_actor\":\"true\"}";

    cr_assert_eq(ops->parse_flags(&ctx, 200, ok, strlen(ok), &f, detail, sizeof(detail)),
                 VENDOR_ACCEPTED);
    cr_assert_eq(f.verified_customer, 1);
    cr_assert_eq(f.bad_actor, 0);
    cr_assert_eq(f.repeat_customer, 1, "the misspelt key is read too");
    cr_assert_eq(ops->parse_flags(&ctx, 200, strs, strlen(strs), &f, detail, sizeof(detail)),
                 VENDOR_ACCEPTED);
    cr_assert_eq(f.verified_customer, 0);
    cr_assert_eq(f.bad_actor, 1);
    cr_assert_eq(f.repeat_customer, -1);
    cr_assert_eq(ops->parse_flags(&ctx, 200, "{}", 2, &f, detail, sizeof(detail)),
                 VENDOR_AMBIGUOUS);
    cr_assert_eq(ops->parse_flags(&ctx, 404, "{\"message\":\"Not found\"}", 23, &f, detail,
                                  sizeof(detail)),
                 VENDOR_REJECTED);
    cr_assert_str_eq(detail, "Not found");
    cr_assert_eq(ops->parse_flags(&ctx, 503, "", 0, &f, detail, sizeof(detail)),
                 VENDOR_UNAVAILABLE);
}
