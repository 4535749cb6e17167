/*
 * test_getdesk.c: the Getdesk adapter (src/vendors/getdesk.c), through the
 * registry (vendor_ops_find) as the gateway uses it. No network.
 *
 * Facts from the vendor's page (shared/seeds/003, shared/vendors.md §3):
 * GET /CallLogAPI?token=..&phone_number=..[&start_date&end_date] answers a
 * JSON array of {agent_fullname, phone_number, agent_extension, trunk,
 * calldate "YYYY-MM-DD HH:MM:SS", duration, disposition, call_type,
 * recording_link (no scheme), wrapup_name, wrapup_note}; GET
 * /CallLogCountAPI takes a comma-separated phone_number list and answers
 * [{total_calls, phone_number, inbound_calls "<str>", outbound_calls
 * "<str>"}]; 400 token missing, 401 invalid token, 405, 500. Inferred: Nepal
 * numbers (national digits) and Nepal time (+05:45) in calldate.
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

#define NUM "+9779811789678"
#define NUM2 "+9779800000000"
#define NUM_IN "+919876543210"

static struct conf_vendor cv;
static struct vendor_ctx ctx;
static const struct vendor_ops *ops;

static void
setup(void)
{
    memset(&cv, 0, sizeof(cv));
    cv.name = "getdesk";
    cv.base_url = "https://acme.getdesk.net";
    cv.api_key = "tok";
    cv.time_zone = "Asia/Kathmandu";
    cv.connect_timeout_ms = 3000;
    cv.timeout_ms = 10000;
    vendor_ctx_init(&ctx, &cv, NULL);
    ops = vendor_ops_find("getdesk");
    cr_assert_not_null(ops);
}

static void
teardown(void)
{
    if (LEAK_CHECK() != 0) {
        abort(); /* an assertion in .fini would not fail the test */
    }
}

TestSuite(getdesk, .init = setup, .fini = teardown, .timeout = 10);

static const char *const one_number[] = {NUM};
static const char *const three_numbers[] = {NUM, NUM2, NUM_IN};

static struct vendor_history_query
a_query(void)
{
    struct vendor_history_query q = {
        .numbers = one_number,
        .nnumbers = 1,
        .start_date = "2024-05-01",
        .end_date = "2024-05-31",
        .page = 1,
    };
    return q;
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

/* Build with build_history (counts = 0) or build_counts; must succeed. */
static void
build_ok(int counts, const struct vendor_ctx *c, const struct vendor_history_query *q,
         struct vendor_http *h)
{
    char err[256] = "";
    int rc;

    memset(h, 0, sizeof(*h));
    rc = counts ? ops->build_counts(c, q, h, err, sizeof(err))
                : ops->build_history(c, q, h, err, sizeof(err));
    cr_assert_eq(rc, 0, "refused: %s", err);
    cr_assert_str_eq(h->method, "GET");
    cr_assert_null(h->body);
    cr_assert_eq(h->body_len, 0);
    cr_assert(has_header(h, "Accept: application/json"));
}

/* Build must refuse with a message and leave no request. */
static void
build_bad(int counts, const struct vendor_ctx *c, const struct vendor_history_query *q,
          const char *want_in_err)
{
    struct vendor_http h;
    char err[256] = "";
    int rc;

    memset(&h, 0, sizeof(h));
    rc = counts ? ops->build_counts(c, q, &h, err, sizeof(err))
                : ops->build_history(c, q, &h, err, sizeof(err));
    cr_assert_eq(rc, -1, "accepted: %s", h.url ? h.url : "");
    cr_assert_neq(err[0], '\0');
    cr_assert_not_null(strstr(err, want_in_err), "error \"%s\" lacks \"%s\"", err, want_in_err);
    cr_assert_null(h.url);
    cr_assert_null(h.method);
    cr_assert_null(h.headers);
}

/* parse_history on body; must succeed. Returns the rows array (caller decrefs). */
static json_t *
history_ok(long status, const char *body)
{
    struct vendor_history_query q = a_query();
    json_t *rows = json_array();
    char err[256] = "";
    int more = 7;

    cr_assert_eq(
        ops->parse_history(&ctx, &q, status, body, strlen(body), rows, &more, err, sizeof(err)), 0,
        "refused: %s\n%s", err, body);
    cr_assert_eq(more, 0);
    return rows;
}

/* parse_history on body; must fail with a message containing want, rows untouched. */
static void
history_bad(long status, const char *body, const char *want)
{
    struct vendor_history_query q = a_query();
    json_t *rows = fixture_json("[{\"vendor\":\"other\"}]");
    char err[256] = "";
    int more = 0;

    cr_assert_eq(
        ops->parse_history(&ctx, &q, status, body, strlen(body), rows, &more, err, sizeof(err)), -1,
        "accepted: %s", body);
    cr_assert_neq(err[0], '\0');
    if (want != NULL) {
        cr_assert_str_eq(err, want, "error \"%s\", want \"%s\"", err, want);
    }
    cr_assert_eq(json_array_size(rows), 1, "rows were touched on failure");
    json_decref(rows);
}

/* One row's neutral form: wrap row in an array, parse, return the only row. */
static json_t *
one_row(const char *row)
{
    char body[2048];
    json_t *rows, *r;

    snprintf(body, sizeof(body), "[%s]", row);
    rows = history_ok(200, body);
    cr_assert_eq(json_array_size(rows), 1);
    r = json_incref(json_array_get(rows, 0));
    json_decref(rows);
    return r;
}

static const char *
str_of(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    cr_assert(json_is_string(v), "\"%s\" is not a string", key);
    return json_string_value(v);
}

#define ROW(calldate, extra)                                                                       \
    "{\"agent_fullname\":\"Franklin\",\"phone_number\":\"9811789678\","                            \
    "\"agent_extension\":\"2003\","                                                                \
    "\"trunk\":\"+97712970852\",\"calldate\":\"" calldate "\",\"duration\":16,"                    \
    "\"call_type\":\"outbound\",\"recording_link\":\"\",\"wrapup_name\":\"\","                     \
    "\"wrapup_note\":null" extra "}"

/* ---------------------------------------------------------------------------
 * Registry and refusals
 */

Test(getdesk, registered, .timeout = 10)
{
    cr_assert_str_eq(ops->name, "getdesk");
    cr_assert_eq(ops->caps, VENDOR_CAP_HISTORY);
    cr_assert_not_null(ops->build_place);
    cr_assert_not_null(ops->parse_place);
    cr_assert_not_null(ops->parse_webhook);
    cr_assert_not_null(ops->build_history);
    cr_assert_not_null(ops->parse_history);
    cr_assert_not_null(ops->build_counts);
    cr_assert_not_null(ops->parse_counts);
    cr_assert_not_null(strstr(vendor_known_names(), "getdesk"));
    cr_assert_not_null(vendor_ops_find("clouddialer"));
}

Test(getdesk, build_place_refuses, .timeout = 10)
{
    struct vendor_call call = {.call_id = "call_1", .type = "outbound", .to = NUM, .record = 1};
    struct vendor_http h;
    char err[256] = "";

    memset(&h, 0, sizeof(h));
    cr_assert_eq(ops->build_place(&ctx, &call, &h, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "Getdesk is a call-history source only");
    cr_assert_null(h.url);
}

Test(getdesk, parse_place_rejects, .timeout = 10)
{
    static const char body[] = "{\"status\":\"success\",\"call_id\":\"x\"}";
    struct vendor_placed out;

    memset(&out, 0xab, sizeof(out));
    ops->parse_place(&ctx, 200, body, strlen(body), &out);
    cr_assert_eq(out.outcome, VENDOR_REJECTED);
    cr_assert_str_eq(out.vendor_call_id, "");
    cr_assert_str_eq(out.detail, "Getdesk is a call-history source only");
}

Test(getdesk, parse_webhook_refuses, .timeout = 10)
{
    static const char body[] = "{\"calldate\":\"2024-05-01 10:00:00\"}";
    struct vendor_update u;
    char err[256] = "";

    vendor_update_init(&u);
    cr_assert_eq(ops->parse_webhook(&ctx, "POST", NULL, body, strlen(body), &u, err, sizeof(err)),
                 -1);
    cr_assert_str_eq(err, "Getdesk sends no webhooks");
    cr_assert_eq(ops->parse_webhook(&ctx, "GET", "a=b", "", 0, &u, err, sizeof(err)), -1);
    cr_assert_null(u.legs);
    vendor_update_clear(&u);
}

/* ---------------------------------------------------------------------------
 * build_history / build_counts
 */

Test(getdesk, build_history_url, .timeout = 10)
{
    struct vendor_history_query q = a_query();
    struct vendor_http h;

    build_ok(0, &ctx, &q, &h);
    cr_assert_str_eq(h.url, "https://acme.getdesk.net/CallLogAPI?token=tok&phone_number=9811789678"
                            "&start_date=2024-05-01&end_date=2024-05-31");
    vendor_http_clear(&h);
}

Test(getdesk, build_history_without_dates, .timeout = 10)
{
    struct vendor_history_query q = a_query();
    struct vendor_http h;

    q.start_date = NULL;
    q.end_date = NULL;
    build_ok(0, &ctx, &q, &h);
    cr_assert_str_eq(h.url,
                     "https://acme.getdesk.net/CallLogAPI?token=tok&phone_number=9811789678");
    vendor_http_clear(&h);
}

Test(getdesk, build_history_token_encoding, .timeout = 10)
{
    struct vendor_history_query q = a_query();
    struct vendor_http h;

    cv.api_key = "a+b/c&d=e f%\xc3\xa9?#~._-Z9";
    vendor_ctx_init(&ctx, &cv, NULL);
    build_ok(0, &ctx, &q, &h);
    cr_assert_str_eq(h.url, "https://acme.getdesk.net/CallLogAPI"
                            "?token=a%2Bb%2Fc%26d%3De%20f%25%C3%A9%3F%23~._-Z9"
                            "&phone_number=9811789678&start_date=2024-05-01&end_date=2024-05-31");
    vendor_http_clear(&h);
}

Test(getdesk, build_history_tenant_host_and_token, .timeout = 10)
{
    struct conf_tenant_vendor tv = {
        .vendor = "getdesk", .api_key = "tenant-token", .base_url = "https://tenant.getdesk.net/"};
    struct vendor_history_query q = a_query();
    struct vendor_ctx c2;
    struct vendor_http h;

    vendor_ctx_init(&c2, &cv, &tv);
    build_ok(0, &c2, &q, &h);
    cr_assert_str_eq(h.url, "https://tenant.getdesk.net/CallLogAPI?token=tenant-token"
                            "&phone_number=9811789678&start_date=2024-05-01&end_date=2024-05-31");
    vendor_http_clear(&h);
}

Test(getdesk, build_history_asks_for_the_first_number_only, .timeout = 10)
{
    struct vendor_history_query q = a_query();
    struct vendor_http h;

    q.numbers = three_numbers;
    q.nnumbers = 3;
    build_ok(0, &ctx, &q, &h);
    cr_assert_not_null(strstr(h.url, "&phone_number=9811789678&"));
    cr_assert_null(strchr(h.url, ','));
    vendor_http_clear(&h);
}

Test(getdesk, build_history_refuses, .timeout = 10)
{
    static const char *const not_e164[] = {"9811789678"};
    static const char *const null_number[] = {NULL};
    struct vendor_history_query q = a_query();
    struct vendor_ctx c2 = ctx;

    c2.api_key = NULL;
    build_bad(0, &c2, &q, "token");
    c2.api_key = "";
    build_bad(0, &c2, &q, "token");
    c2 = ctx;
    c2.base_url = NULL;
    build_bad(0, &c2, &q, "base_url");
    c2.base_url = "";
    build_bad(0, &c2, &q, "base_url");

    q.nnumbers = 0;
    build_bad(0, &ctx, &q, "phone number");
    q = a_query();
    q.numbers = not_e164;
    build_bad(0, &ctx, &q, "E.164");
    q.numbers = null_number;
    build_bad(0, &ctx, &q, "E.164");
    q = a_query();
    q.end_date = NULL;
    build_bad(0, &ctx, &q, "together");
    q = a_query();
    q.start_date = NULL;
    build_bad(0, &ctx, &q, "together");
    q = a_query();
    q.start_date = "2024-5-1";
    build_bad(0, &ctx, &q, "YYYY-MM-DD");
    q = a_query();
    q.end_date = "2024-05-31&x=1";
    build_bad(0, &ctx, &q, "YYYY-MM-DD");
}

Test(getdesk, build_counts_url, .timeout = 10)
{
    struct vendor_history_query q = a_query();
    struct vendor_http h;

    q.numbers = three_numbers;
    q.nnumbers = 3;
    build_ok(1, &ctx, &q, &h);
    cr_assert_str_eq(h.url, "https://acme.getdesk.net/CallLogCountAPI?token=tok"
                            "&phone_number=9811789678,9800000000,9876543210"
                            "&start_date=2024-05-01&end_date=2024-05-31");
    vendor_http_clear(&h);

    q.nnumbers = 1;
    q.start_date = NULL;
    q.end_date = NULL;
    build_ok(1, &ctx, &q, &h);
    cr_assert_str_eq(h.url,
                     "https://acme.getdesk.net/CallLogCountAPI?token=tok&phone_number=9811789678");
    vendor_http_clear(&h);
}

Test(getdesk, build_counts_many_numbers, .timeout = 10)
{
    static char numbers[100][20];
    const char *list[100];
    struct vendor_history_query q = a_query();
    struct vendor_http h;
    size_t i;

    for (i = 0; i < 100; i++) {
        snprintf(numbers[i], sizeof(numbers[i]), "+977981%07zu", i);
        list[i] = numbers[i];
    }
    q.numbers = list;
    q.nnumbers = 100;
    build_ok(1, &ctx, &q, &h);
    cr_assert_not_null(strstr(h.url, "phone_number=9810000000,9810000001,"));
    cr_assert_not_null(strstr(h.url, ",9810000099&start_date="));
    vendor_http_clear(&h);
}

Test(getdesk, build_counts_refuses, .timeout = 10)
{
    static const char *const one_bad[] = {NUM, "+977abc"};
    struct vendor_history_query q = a_query();
    struct vendor_ctx c2 = ctx;

    c2.api_key = NULL;
    build_bad(1, &c2, &q, "token");
    c2 = ctx;
    c2.base_url = NULL;
    build_bad(1, &c2, &q, "base_url");
    q.nnumbers = 0;
    build_bad(1, &ctx, &q, "phone number");
    q.numbers = one_bad;
    q.nnumbers = 2;
    build_bad(1, &ctx, &q, "E.164");
}

/* ---------------------------------------------------------------------------
 * parse_history
 */

Test(getdesk, parse_history_doc_rows, .timeout = 10)
{
    size_t len, wlen;
    char *body = fixture_read("getdesk", "call_log.json", &len);
    char *want_text = fixture_read("getdesk", "call_log.neutral.json", &wlen);
    struct vendor_history_query q = a_query();
    json_t *rows = fixture_json("[{\"vendor\":\"earlier\"}]");
    json_t *want = fixture_json(want_text);
    char err[256] = "";
    int more = 1;

    json_array_insert_new(want, 0, json_pack("{s:s}", "vendor", "earlier"));
    cr_assert_eq(ops->parse_history(&ctx, &q, 200, body, len, rows, &more, err, sizeof(err)), 0,
                 "refused: %s", err);
    cr_assert_eq(more, 0);
    fixture_assert_json_eq(rows, want);
    json_decref(rows);
    json_decref(want);
    free(body);
    free(want_text);
}

Test(getdesk, parse_history_time_zone, .timeout = 10)
{
    json_t *r = one_row(ROW("2024-05-01 10:00:00", ",\"disposition\":\"ANSWERED\""));

    cr_assert_str_eq(str_of(r, "started_at"), "2024-05-01T04:15:00Z");
    json_decref(r);

    /* New year across the date line of +05:45. */
    r = one_row(ROW("2024-01-01 05:44:59", ",\"disposition\":\"ANSWERED\""));
    cr_assert_str_eq(str_of(r, "started_at"), "2023-12-31T23:59:59Z");
    json_decref(r);

    /* The zone comes from the vendor's configuration. */
    cv.time_zone = "UTC";
    vendor_ctx_init(&ctx, &cv, NULL);
    r = one_row(ROW("2024-05-01 10:00:00", ",\"disposition\":\"ANSWERED\""));
    cr_assert_str_eq(str_of(r, "started_at"), "2024-05-01T10:00:00Z");
    json_decref(r);

    cv.time_zone = "Asia/Kolkata";
    vendor_ctx_init(&ctx, &cv, NULL);
    r = one_row(ROW("2024-05-01 10:00:00", ",\"disposition\":\"ANSWERED\""));
    cr_assert_str_eq(str_of(r, "started_at"), "2024-05-01T04:30:00Z");
    json_decref(r);
}

static const struct {
    const char *disposition;
    const char *status;
} disposition_cases[] = {
    {"ANSWERED", "completed"},  {"answered", "completed"},  {"NO ANSWER", "no_answer"},
    {"No Answer", "no_answer"}, {"NO_ANSWER", "no_answer"}, {"MISSED", "no_answer"},
    {"missed", "no_answer"},    {"BUSY", "busy"},           {"FAILED", "failed"},
    {"failed", "failed"},       {"CONGESTION", "unknown"},  {"", "unknown"},
};

Test(getdesk, parse_history_dispositions, .timeout = 10)
{
    size_t i;

    for (i = 0; i < sizeof(disposition_cases) / sizeof(disposition_cases[0]); i++) {
        char extra[128];
        char row[1024];
        json_t *r;

        snprintf(extra, sizeof(extra), ",\"disposition\":\"%s\"", disposition_cases[i].disposition);
        snprintf(row, sizeof(row), ROW("2024-05-01 10:00:00", "%s"), extra);
        r = one_row(row);
        cr_assert_str_eq(str_of(r, "status"), disposition_cases[i].status, "%s -> %s, want %s",
                         disposition_cases[i].disposition, str_of(r, "status"),
                         disposition_cases[i].status);
        cr_assert_str_eq(str_of(r, "disposition"), disposition_cases[i].disposition);
        json_decref(r);
    }
}

Test(getdesk, parse_history_missing_disposition, .timeout = 10)
{
    json_t *r = one_row(ROW("2024-05-01 10:00:00", ""));

    cr_assert_str_eq(str_of(r, "status"), "unknown");
    cr_assert(json_is_null(json_object_get(r, "disposition")));
    json_decref(r);
}

Test(getdesk, parse_history_duration_forms, .timeout = 10)
{
    static const struct {
        const char *duration;
        long want;
    } cases[] = {
        {"16", 16}, {"\"16\"", 16}, {"\"0\"", 0}, {"0", 0}, {"null", 0}, {"\"\"", 0}, {"16.9", 16},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char row[512];
        json_t *r, *d;

        snprintf(row, sizeof(row),
                 "{\"calldate\":\"2024-05-01 10:00:00\",\"disposition\":\"ANSWERED\","
                 "\"call_type\":\"inbound\",\"duration\":%s}",
                 cases[i].duration);
        r = one_row(row);
        d = json_object_get(r, "duration_seconds");
        cr_assert(json_is_integer(d), "duration %s is not an integer", cases[i].duration);
        cr_assert_eq(json_integer_value(d), cases[i].want, "duration %s", cases[i].duration);
        json_decref(r);
    }
    /* Missing altogether. */
    {
        json_t *r = one_row("{\"calldate\":\"2024-05-01 10:00:00\",\"call_type\":\"inbound\"}");

        cr_assert_eq(json_integer_value(json_object_get(r, "duration_seconds")), 0);
        json_decref(r);
    }
    history_bad(200, "[{\"calldate\":\"2024-05-01 10:00:00\",\"duration\":\"16s\"}]",
                "unreadable duration in Getdesk row 0");
    history_bad(200, "[{\"calldate\":\"2024-05-01 10:00:00\",\"duration\":-1}]",
                "unreadable duration in Getdesk row 0");
    history_bad(200, "[{\"calldate\":\"2024-05-01 10:00:00\",\"duration\":[1]}]",
                "unreadable duration in Getdesk row 0");
}

Test(getdesk, parse_history_recording_link, .timeout = 10)
{
    static const struct {
        const char *link; /* JSON text, or NULL for no key */
        const char *want; /* NULL: null */
    } cases[] = {
        {"\"acme.getdesk.net/records/a.wav\"", "https://acme.getdesk.net/records/a.wav"},
        {"\"https://acme.getdesk.net/records/a.wav\"", "https://acme.getdesk.net/records/a.wav"},
        {"\"http://acme.getdesk.net/records/a.wav\"", "http://acme.getdesk.net/records/a.wav"},
        {"\"//acme.getdesk.net/a.wav\"", "https://acme.getdesk.net/a.wav"},
        {"\"\"", NULL},
        {"null", NULL},
        {"false", NULL},
        {NULL, NULL},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char row[512];
        json_t *r, *u;

        snprintf(row, sizeof(row), "{\"calldate\":\"2024-05-01 10:00:00\"%s%s}",
                 cases[i].link ? ",\"recording_link\":" : "", cases[i].link ? cases[i].link : "");
        r = one_row(row);
        u = json_object_get(r, "recording_url");
        cr_assert_not_null(u, "no recording_url for %s", row);
        if (cases[i].want == NULL) {
            cr_assert(json_is_null(u), "%s should give null", row);
        } else {
            cr_assert(json_is_string(u), "%s should give a string", row);
            cr_assert_str_eq(json_string_value(u), cases[i].want);
        }
        json_decref(r);
    }
}

Test(getdesk, parse_history_extra_keys_and_odd_types, .timeout = 10)
{
    json_t *r = one_row("{\"calldate\":\"2024-05-01 10:00:00\",\"duration\":5,"
                        "\"disposition\":\"ANSWERED\",\"call_type\":\"INBOUND\","
                        "\"agent_extension\":2003,\"agent_fullname\":null,"
                        "\"queue_name\":\"support\",\"nested\":{\"a\":[1,2]},"
                        "\"wrapup_name\":\"Follow-up\",\"wrapup_note\":\"call back\"}");
    json_t *want = fixture_json("{\"vendor\":\"getdesk\",\"direction\":\"inbound\","
                             "\"started_at\":\"2024-05-01T04:15:00Z\",\"duration_seconds\":5,"
                             "\"status\":\"completed\",\"disposition\":\"ANSWERED\","
                             "\"agent_name\":null,\"agent_extension\":\"2003\",\"trunk\":null,"
                             "\"phone_number\":\"+9779811789678\",\"recording_url\":null,"
                             "\"wrapup\":{\"name\":\"Follow-up\",\"note\":\"call back\"}}");

    fixture_assert_json_eq(r, want);
    json_decref(r);
    json_decref(want);

    r = one_row("{\"calldate\":\"2024-05-01 10:00:00\",\"call_type\":\"transfer\"}");
    cr_assert_str_eq(str_of(r, "direction"), "unknown");
    cr_assert(json_is_null(json_object_get(json_object_get(r, "wrapup"), "name")));
    json_decref(r);
    r = one_row("{\"calldate\":\"2024-05-01 10:00:00\",\"call_type\":\"Outbound\"}");
    cr_assert_str_eq(str_of(r, "direction"), "outbound");
    json_decref(r);
}

Test(getdesk, parse_history_empty_array, .timeout = 10)
{
    json_t *rows = history_ok(200, "[]");

    cr_assert_eq(json_array_size(rows), 0);
    json_decref(rows);
    rows = history_ok(200, " [ ]\n");
    cr_assert_eq(json_array_size(rows), 0);
    json_decref(rows);
}

Test(getdesk, parse_history_message_object, .timeout = 10)
{
    json_t *rows = history_ok(200, "{\"message\":\"No call logs found\"}");

    cr_assert_eq(json_array_size(rows), 0);
    json_decref(rows);
    rows = history_ok(200, "{\"status\":\"success\",\"message\":\"No data\",\"count\":0}");
    cr_assert_eq(json_array_size(rows), 0);
    json_decref(rows);
}

Test(getdesk, parse_history_http_errors, .timeout = 10)
{
    history_bad(401, "{\"message\":\"Invalid token\"}", "Invalid token");
    history_bad(400, "{\"message\":\"Token is required\"}", "Token is required");
    history_bad(405, "{\"error\":\"Method not allowed\"}", "Method not allowed");
    history_bad(500, "{\"message\":\"Internal server error\"}", "Internal server error");
    history_bad(500, "<html>Internal Server Error</html>", "HTTP 500");
    history_bad(502, "", "HTTP 502");
    history_bad(401, "{\"message\":\"\"}", "HTTP 401");
    history_bad(401, "{\"message\":42}", "HTTP 401");
    history_bad(401, "[]", "HTTP 401");
    history_bad(302, "[]", "HTTP 302");
}

Test(getdesk, parse_history_not_json, .timeout = 10)
{
    history_bad(200, "<html>oops</html>", "Getdesk answer is not JSON");
    history_bad(200, "", "Getdesk answer is not JSON");
    history_bad(200, "[{\"calldate\":", "Getdesk answer is not JSON");
    history_bad(200, "No call logs found", "Getdesk answer is not JSON");
    history_bad(200, "\"No call logs found\"", "Getdesk answer is not JSON");
    history_bad(200, "{\"error\":\"Invalid token\"}", "Invalid token");
    history_bad(200, "{\"count\":0}", NULL);
}

Test(getdesk, parse_history_bad_calldate_fails_the_answer, .timeout = 10)
{
    static const char *const bad[] = {
        "\"2024-13-01 10:00:00\"",
        "\"2024-05-32 10:00:00\"",
        "\"2024-05-01\"",
        "\"yesterday\"",
        "\"\"",
        "null",
        "1714537800",
        "\"2024-05-01 25:00:00\"",
        "\"2024-05-01 10:00:00 PM\"",
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char body[1024];

        snprintf(
            body, sizeof(body),
            "[" ROW(
                "2024-05-01 10:00:00",
                ",\"disposition\":\"ANSWERED\"") ","
                                                 "{\"calldate\":%s,\"disposition\":\"ANSWERED\"}]",
            bad[i]);
        history_bad(200, body, "unreadable calldate in Getdesk row 1");
    }
    history_bad(200, "[{\"disposition\":\"ANSWERED\"}]", "unreadable calldate in Getdesk row 0");
}

Test(getdesk, parse_history_row_not_object, .timeout = 10)
{
    history_bad(200, "[" ROW("2024-05-01 10:00:00", "") ", \"row\"]",
                "Getdesk row 1 is not an object");
    history_bad(200, "[null]", "Getdesk row 0 is not an object");
}

Test(getdesk, parse_history_body_not_nul_terminated, .timeout = 10)
{
    static const char text[] = "[]TRAILING";
    struct vendor_history_query q = a_query();
    json_t *rows = json_array();
    char err[256] = "";
    int more = 1;
    char *body = malloc(2);

    memcpy(body, text, 2); /* exactly "[]", no NUL after it */
    cr_assert_eq(ops->parse_history(&ctx, &q, 200, body, 2, rows, &more, err, sizeof(err)), 0,
                 "refused: %s", err);
    cr_assert_eq(json_array_size(rows), 0);
    free(body);
    json_decref(rows);
}

Test(getdesk, parse_history_reports_the_queried_number, .timeout = 10)
{
    json_t *r = one_row("{\"calldate\":\"2024-05-01 10:00:00\",\"phone_number\":\"09811789678\"}");

    cr_assert_str_eq(str_of(r, "phone_number"), NUM);
    cr_assert_str_eq(str_of(r, "vendor"), "getdesk");
    json_decref(r);
}

Test(getdesk, parse_history_long_error_truncated, .timeout = 10)
{
    struct vendor_history_query q = a_query();
    json_t *rows = json_array();
    char body[1200];
    char err[64];
    int more = 0;

    memset(body, 0, sizeof(body));
    memcpy(body, "{\"message\":\"", 12);
    memset(body + 12, 'x', 1000);
    memcpy(body + 1012, "\"}", 2);
    cr_assert_eq(
        ops->parse_history(&ctx, &q, 401, body, strlen(body), rows, &more, err, sizeof(err)), -1);
    cr_assert_eq(strlen(err), sizeof(err) - 1);
    json_decref(rows);
}

/* ---------------------------------------------------------------------------
 * parse_counts
 */

/* parse_counts with the three numbers into counts; must succeed. */
static void
counts_ok(long status, const char *body, json_t *counts)
{
    struct vendor_history_query q = a_query();
    char err[256] = "";

    q.numbers = three_numbers;
    q.nnumbers = 3;
    cr_assert_eq(ops->parse_counts(&ctx, &q, status, body, strlen(body), counts, err, sizeof(err)),
                 0, "refused: %s\n%s", err, body);
}

/* parse_counts must fail with want (if given) and leave counts as they were. */
static void
counts_bad(long status, const char *body, const char *want)
{
    struct vendor_history_query q = a_query();
    json_t *counts = fixture_json("{\"+9779811789678\":{\"total\":1,\"inbound\":1,\"outbound\":0}}");
    json_t *before = json_deep_copy(counts);
    char err[256] = "";

    q.numbers = three_numbers;
    q.nnumbers = 3;
    cr_assert_eq(ops->parse_counts(&ctx, &q, status, body, strlen(body), counts, err, sizeof(err)),
                 -1, "accepted: %s", body);
    cr_assert_neq(err[0], '\0');
    if (want != NULL) {
        cr_assert_str_eq(err, want);
    }
    fixture_assert_json_eq(counts, before);
    json_decref(counts);
    json_decref(before);
}

static void
counts_expect(const char *body, const char *want_text)
{
    json_t *counts = json_object();
    json_t *want = fixture_json(want_text);

    counts_ok(200, body, counts);
    fixture_assert_json_eq(counts, want);
    json_decref(counts);
    json_decref(want);
}

Test(getdesk, parse_counts_doc_sample, .timeout = 10)
{
    size_t len;
    char *body = fixture_read("getdesk", "call_count.json", &len);

    counts_expect(body, "{\"+9779811789678\":{\"total\":59,\"inbound\":1,\"outbound\":58}}");
    free(body);
}

Test(getdesk, parse_counts_string_and_int, .timeout = 10)
{
    counts_expect("[{\"total_calls\":\"3\",\"phone_number\":\"9811789678\","
                  "\"inbound_calls\":1,\"outbound_calls\":\"2\"},"
                  "{\"total_calls\":7,\"phone_number\":\"9800000000\","
                  "\"inbound_calls\":\"7\",\"outbound_calls\":0},"
                  "{\"total_calls\":0,\"phone_number\":\"9876543210\","
                  "\"inbound_calls\":\"0\",\"outbound_calls\":\"0\"}]",
                  "{\"+9779811789678\":{\"total\":3,\"inbound\":1,\"outbound\":2},"
                  "\"+9779800000000\":{\"total\":7,\"inbound\":7,\"outbound\":0},"
                  "\"+919876543210\":{\"total\":0,\"inbound\":0,\"outbound\":0}}");
}

Test(getdesk, parse_counts_number_forms, .timeout = 10)
{
    counts_expect("[{\"total_calls\":1,\"phone_number\":\"09811789678\","
                  "\"inbound_calls\":\"1\",\"outbound_calls\":\"0\"},"
                  "{\"total_calls\":2,\"phone_number\":9800000000,"
                  "\"inbound_calls\":\"0\",\"outbound_calls\":\"2\"},"
                  "{\"total_calls\":4,\"phone_number\":\"+91 98765-43210\","
                  "\"inbound_calls\":\"2\",\"outbound_calls\":\"2\"}]",
                  "{\"+9779811789678\":{\"total\":1,\"inbound\":1,\"outbound\":0},"
                  "\"+9779800000000\":{\"total\":2,\"inbound\":0,\"outbound\":2},"
                  "\"+919876543210\":{\"total\":4,\"inbound\":2,\"outbound\":2}}");
}

Test(getdesk, parse_counts_unknown_numbers_ignored, .timeout = 10)
{
    counts_expect("[{\"total_calls\":5,\"phone_number\":\"9811111111\","
                  "\"inbound_calls\":\"5\",\"outbound_calls\":\"0\"},"
                  "{\"total_calls\":5,\"phone_number\":\"\","
                  "\"inbound_calls\":\"5\",\"outbound_calls\":\"0\"},"
                  "{\"total_calls\":5,\"inbound_calls\":\"5\",\"outbound_calls\":\"0\"},"
                  "{\"total_calls\":5,\"phone_number\":\"981178967\","
                  "\"inbound_calls\":\"5\",\"outbound_calls\":\"0\"},"
                  "{\"total_calls\":9,\"phone_number\":\"9811789678\","
                  "\"inbound_calls\":\"4\",\"outbound_calls\":\"5\"}]",
                  "{\"+9779811789678\":{\"total\":9,\"inbound\":4,\"outbound\":5}}");
}

Test(getdesk, parse_counts_accumulates, .timeout = 10)
{
    json_t *counts = fixture_json("{\"+9779811789678\":{\"total\":10,\"inbound\":4,\"outbound\":6},"
                               "\"+15550001111\":{\"total\":1,\"inbound\":1,\"outbound\":0}}");
    json_t *want = fixture_json("{\"+9779811789678\":{\"total\":69,\"inbound\":5,\"outbound\":64},"
                             "\"+9779800000000\":{\"total\":4,\"inbound\":2,\"outbound\":2},"
                             "\"+15550001111\":{\"total\":1,\"inbound\":1,\"outbound\":0}}");

    counts_ok(200,
              "[{\"total_calls\":59,\"phone_number\":\"9811789678\",\"inbound_calls\":\"1\","
              "\"outbound_calls\":\"58\"},"
              "{\"total_calls\":4,\"phone_number\":\"9800000000\",\"inbound_calls\":\"2\","
              "\"outbound_calls\":\"2\"}]",
              counts);
    fixture_assert_json_eq(counts, want);
    json_decref(want);

    /* The same number twice in one answer adds up too. */
    want = fixture_json("{\"+9779811789678\":{\"total\":71,\"inbound\":6,\"outbound\":65},"
                     "\"+9779800000000\":{\"total\":4,\"inbound\":2,\"outbound\":2},"
                     "\"+15550001111\":{\"total\":1,\"inbound\":1,\"outbound\":0}}");
    counts_ok(200,
              "[{\"total_calls\":1,\"phone_number\":\"9811789678\",\"inbound_calls\":\"1\","
              "\"outbound_calls\":\"0\"},"
              "{\"total_calls\":1,\"phone_number\":\"09811789678\",\"inbound_calls\":\"0\","
              "\"outbound_calls\":\"1\"}]",
              counts);
    fixture_assert_json_eq(counts, want);
    json_decref(want);
    json_decref(counts);
}

Test(getdesk, parse_counts_missing_total_is_the_sum, .timeout = 10)
{
    counts_expect("[{\"phone_number\":\"9811789678\",\"inbound_calls\":\"2\","
                  "\"outbound_calls\":\"3\"}]",
                  "{\"+9779811789678\":{\"total\":5,\"inbound\":2,\"outbound\":3}}");
}

Test(getdesk, parse_counts_empty_answers, .timeout = 10)
{
    counts_expect("[]", "{}");
    counts_expect("{\"message\":\"No call logs found\"}", "{}");
}

Test(getdesk, parse_counts_errors, .timeout = 10)
{
    counts_bad(401, "{\"message\":\"Invalid token\"}", "Invalid token");
    counts_bad(400, "{\"message\":\"Token is required\"}", "Token is required");
    counts_bad(500, "oops", "HTTP 500");
    counts_bad(200, "oops", "Getdesk answer is not JSON");
    counts_bad(200, "{\"total_calls\":59}", NULL);
    /* A bad row anywhere leaves counts untouched, even after good rows. */
    counts_bad(200,
               "[{\"total_calls\":5,\"phone_number\":\"9800000000\",\"inbound_calls\":\"5\","
               "\"outbound_calls\":\"0\"},"
               "{\"total_calls\":59,\"phone_number\":\"9811789678\",\"inbound_calls\":\"one\","
               "\"outbound_calls\":\"58\"}]",
               "unreadable count in Getdesk count row 1");
    counts_bad(200, "[{\"total_calls\":5,\"phone_number\":\"9800000000\"}, 7]",
               "Getdesk count row 1 is not an object");
}
