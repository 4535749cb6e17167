/*
 * test_api.c: the neutral API end to end, on real parts: callgate as a
 * process, a real redis-server and the vendor simulator, all on loopback.
 * Covers authentication, request ids, every validation path, placement and
 * its answers, tenant isolation and idempotency (concurrent duplicates too).
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <string.h>

#include <criterion/criterion.h>
#include <curl/curl.h>

#include "helpers/gwtest.h"

#define CALL_BODY "{\"to\": \"+91 98765-43210\", \"agent\": \"agent.017\", \"reference\": \"crm-1\"}"

static struct gwtest gw;

static size_t
discard_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    return size * nmemb;
}

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

/* The first errors[].field of a validation problem equals field (somewhere in the list). */
static void
assert_field_error(struct http_resp *r, const char *field)
{
    json_t *errors = json_object_get(r->json, "errors"), *e;
    size_t i;

    assert_problem(r, 400, "validation");
    json_array_foreach(errors, i, e) {
        if (strcmp(jstr(e, "field"), field) == 0) {
            cr_assert_not_null(jstr(e, "message"));
            return;
        }
    }
    cr_assert_fail("no error for field %s in %s", field, r->body);
}

static void
post_expect_field(const char *body, const char *field)
{
    struct http_resp r;

    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, body, &r), 0);
    assert_field_error(&r, field);
    http_resp_free(&r);
}

TestSuite(api, .init = setup, .fini = teardown, .timeout = 60);

Test(api, health_and_ready)
{
    struct http_resp r;
    char rid[128];

    cr_assert_eq(gw_get(&gw, NULL, "/healthz", &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(jstr(r.json, "status"), "ok");
    cr_assert_not_null(http_header(&r, "X-Request-Id", rid, sizeof(rid)));
    http_resp_free(&r);
    cr_assert_eq(gw_get(&gw, NULL, "/readyz", &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert(json_is_true(json_object_get(r.json, "redis")));
    cr_assert_eq(strlen(jstr(r.json, "routes_version")), 16);
    http_resp_free(&r);
}

Test(api, unauthorized_variants)
{
    const char *keys[] = {NULL, "wrong-key", ""};
    char url[128], www[64];
    struct http_resp r;
    size_t i;

    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        cr_assert_eq(gw_post_call(&gw, keys[i], NULL, CALL_BODY, &r), 0);
        assert_problem(&r, 401, "unauthorized");
        cr_assert_not_null(http_header(&r, "WWW-Authenticate", www, sizeof(www)));
        http_resp_free(&r);
    }
    snprintf(url, sizeof(url), "%s/v1/calls", gw.base);
    cr_assert_eq(http_do("POST", url,
                         (const char *[]){"Authorization: Basic dGVzdC1hY21lLWtleTo=", NULL},
                         CALL_BODY, strlen(CALL_BODY), 0, &r),
                 0);
    assert_problem(&r, 401, "unauthorized");
    http_resp_free(&r);
    cr_assert_eq(gw_get(&gw, "wrong-key", "/v1/calls/call_x", &r), 0);
    assert_problem(&r, 401, "unauthorized");
    http_resp_free(&r);
    cr_assert_eq(sim_count(&gw, "POST", "/calls"), 0);
}

Test(api, unknown_path_and_method)
{
    struct http_resp r;
    char url[128], allow[64];

    cr_assert_eq(gw_get(&gw, GWTEST_ACME_KEY, "/v2/nothing", &r), 0);
    assert_problem(&r, 404, "not-found");
    http_resp_free(&r);
    snprintf(url, sizeof(url), "%s/v1/calls", gw.base);
    cr_assert_eq(http_do("DELETE", url, NULL, NULL, 0, 0, &r), 0);
    assert_problem(&r, 405, "method-not-allowed");
    cr_assert_not_null(http_header(&r, "Allow", allow, sizeof(allow)));
    cr_assert(strstr(allow, "POST") != NULL);
    http_resp_free(&r);
}

Test(api, request_id_echo_and_mint)
{
    char url[128], rid[128];
    struct http_resp r;

    snprintf(url, sizeof(url), "%s/healthz", gw.base);
    cr_assert_eq(http_do("GET", url, (const char *[]){"X-Request-Id: crm-req-42", NULL}, NULL, 0,
                         0, &r),
                 0);
    cr_assert_str_eq(http_header(&r, "X-Request-Id", rid, sizeof(rid)), "crm-req-42");
    http_resp_free(&r);
    cr_assert_eq(http_do("GET", url, (const char *[]){"X-Request-Id: bad id with spaces", NULL},
                         NULL, 0, 0, &r),
                 0);
    cr_assert(strncmp(http_header(&r, "X-Request-Id", rid, sizeof(rid)), "req_", 4) == 0);
    http_resp_free(&r);
    cr_assert_eq(gw_post_call(&gw, NULL, NULL, CALL_BODY, &r), 0);
    cr_assert_str_eq(jstr(r.json, "request_id"), http_header(&r, "X-Request-Id", rid, sizeof(rid)));
    http_resp_free(&r);
}

Test(api, place_call_and_read_it)
{
    struct http_resp r;
    char loc[160];
    json_t *reqs, *sent, *call, *a;
    const char *id;

    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, CALL_BODY, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    id = jstr(r.json, "id");
    cr_assert(strncmp(id, "call_", 5) == 0 && strlen(id) == 37, "id %s", id);
    cr_assert_str_eq(jstr(r.json, "status"), "queued");
    cr_assert_str_eq(jstr(r.json, "to"), "+919876543210");
    cr_assert_str_eq(jstr(r.json, "from"), "+919800000000");
    cr_assert_str_eq(jstr(r.json, "vendor"), "clouddialer");
    cr_assert_str_eq(jstr(r.json, "reference"), "crm-1");
    cr_assert_str_eq(jstr(r.json, "route"), "india");
    cr_assert_not_null(jstr(r.json, "vendor_call_id"));
    a = json_array_get(json_object_get(r.json, "attempts"), 0);
    cr_assert_str_eq(jstr(a, "outcome"), "accepted");
    cr_assert_str_eq(jstr(a, "vendor"), "clouddialer");
    cr_assert_not_null(http_header(&r, "Location", loc, sizeof(loc)));
    cr_assert(strstr(loc, id) != NULL);

    /* What CloudDialer received: our id as uuid, a 10-digit number, the agent. */
    reqs = sim_get_json(&gw, "/_sim/requests?method=POST&path=/calls");
    cr_assert_eq(json_integer_value(json_object_get(reqs, "count")), 1);
    sent = json_loads(jstr(json_array_get(json_object_get(reqs, "requests"), 0), "body"), 0,
                      NULL);
    cr_assert_str_eq(jstr(sent, "uuid"), id);
    cr_assert_str_eq(jstr(sent, "to_number"), "9876543210");
    cr_assert_str_eq(jstr(sent, "crm_username"), "agent.017");
    cr_assert_str_eq(jstr(sent, "from_number"), "919800000000");
    json_decref(sent);
    json_decref(reqs);

    /* The result push completes it; GET shows the detail. */
    call = gw_wait_call_status(&gw, GWTEST_ACME_KEY, id, "completed", 5000);
    cr_assert_not_null(call);
    cr_assert_str_eq(jstr(call, "status"), "completed", "%s", json_dumps(call, 0));
    cr_assert_str_eq(jstr(call, "vendor_status"), "ANSWER");
    cr_assert(json_integer_value(json_object_get(call, "duration_seconds")) >= 0);
    cr_assert_not_null(jstr(call, "ended_at"));
    cr_assert(strstr(jstr(call, "recording_url"), "/v1/calls/") == jstr(call, "recording_url"));
    cr_assert(json_array_size(json_object_get(call, "events")) >= 1);
    cr_assert_null(json_object_get(call, "tenant"));
    json_decref(call);
    http_resp_free(&r);
}

Test(api, tenant_isolation)
{
    struct http_resp r, g1, g2, g3;
    char path[128];

    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, CALL_BODY, &r), 0);
    cr_assert_eq(r.status, 201);
    snprintf(path, sizeof(path), "/v1/calls/%s", jstr(r.json, "id"));
    cr_assert_eq(gw_get(&gw, GWTEST_GLOBEX_KEY, path, &g1), 0);
    assert_problem(&g1, 404, "not-found");
    cr_assert_eq(gw_get(&gw, GWTEST_GLOBEX_KEY, "/v1/calls/call_00000000000000000000000000000",
                        &g2),
                 0);
    assert_problem(&g2, 404, "not-found");
    /* Another tenant's id and an unknown one are indistinguishable. */
    cr_assert_str_eq(jstr(g1.json, "detail"), jstr(g2.json, "detail"));
    cr_assert_str_eq(jstr(g1.json, "title"), jstr(g2.json, "title"));
    cr_assert_eq(gw_get(&gw, GWTEST_ACME_KEY, "/v1/calls/bad%2Fid", &g3), 0);
    assert_problem(&g3, 404, "not-found");
    http_resp_free(&g3);
    cr_assert_eq(gw_get(&gw, GWTEST_ACME_KEY, path, &g3), 0);
    cr_assert_eq(g3.status, 200);
    http_resp_free(&r);
    http_resp_free(&g1);
    http_resp_free(&g2);
    http_resp_free(&g3);
}

Test(api, malformed_json_bodies)
{
    const char *bodies[] = {"{", "not json", "", "[1,2]", "\"a string\"", "{\"to\": }",
                            "{\"to\":\"+919876543210\",\"to\":\"+919876543211\",\"agent\":\"a\"}",
                            "{\"to\":\"+91987654\\u0000\",\"agent\":\"a\"}", "null"};
    struct http_resp r;
    size_t i;

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, bodies[i], &r), 0);
        assert_problem(&r, 400, "validation");
        cr_assert_not_null(json_object_get(r.json, "errors"), "body %s", bodies[i]);
        http_resp_free(&r);
    }
    cr_assert_eq(sim_count(&gw, "POST", "/calls"), 0);
}

Test(api, deep_nesting_and_huge_numbers)
{
    char *body = malloc(20050);
    struct http_resp r;
    int i;

    strcpy(body, "{\"to\":\"+919876543210\",\"agent\":\"a\",\"tags\":");
    for (i = 0; i < 5000; i++) {
        strcat(body, "[");
    }
    strcat(body, "}");
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, body, &r), 0);
    assert_problem(&r, 400, "validation");
    http_resp_free(&r);
    free(body);
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":\"a\",\"max_ring_seconds\":1e999999}",
                      "body");
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":\"a\",\"max_ring_seconds\":"
                      "99999999999999999999999}",
                      "body");
}

Test(api, missing_and_wrong_typed_fields)
{
    post_expect_field("{\"agent\":\"a\"}", "to");
    post_expect_field("{\"to\":9876543210,\"agent\":\"a\"}", "to");
    post_expect_field("{\"to\":null,\"agent\":\"a\"}", "to");
    post_expect_field("{\"to\":\"+919876543210\"}", "agent");
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":7}", "agent");
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":\"\"}", "agent");
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":\"a\",\"from\":12}", "from");
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":\"a\",\"record\":\"yes\"}", "record");
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":\"a\",\"max_ring_seconds\":\"30\"}",
                      "max_ring_seconds");
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":\"a\",\"max_ring_seconds\":30.5}",
                      "max_ring_seconds");
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":\"a\",\"max_ring_seconds\":4}",
                      "max_ring_seconds");
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":\"a\",\"max_ring_seconds\":121}",
                      "max_ring_seconds");
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":\"a\",\"type\":\"fax\"}", "type");
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":\"a\",\"tags\":[\"x\"]}", "tags");
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":\"a\",\"tags\":{\"k\":1}}", "tags");
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":\"a\",\"lang\":\"e\"}", "lang");
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":\"a\",\"lang\":\"en_US!\"}", "lang");
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":\"a\",\"vendor\":\"nope\"}", "vendor");
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":\"a\",\"frobnicate\":true}",
                      "frobnicate");
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":\"a\",\"type\":\"scheduled\"}",
                      "scheduled_at");
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":\"a\",\"type\":\"scheduled\","
                      "\"scheduled_at\":\"2001-01-01T00:00:00Z\"}",
                      "scheduled_at");
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":\"a\",\"scheduled_at\":\"tomorrow\"}",
                      "scheduled_at");
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":\"a\",\"callback_url\":\"ftp://x/y\"}",
                      "callback_url");
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":\"a\",\"callback_url\":"
                      "\"https://10.1.2.3/hook\"}",
                      "callback_url");
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":\"a\",\"callback_url\":"
                      "\"https://user:pw@example.com/hook\"}",
                      "callback_url");
}

Test(api, bad_numbers)
{
    const char *numbers[] = {"abc", "+91123", "+9198765432101234567", "12345", "+", "++919876543210",
                             "+91 98765 4321x", "0", "+0123456789", "+91-98765-43210-999999"};
    char body[256];
    size_t i;

    for (i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
        snprintf(body, sizeof(body), "{\"to\":\"%s\",\"agent\":\"a\"}", numbers[i]);
        post_expect_field(body, "to");
    }
    post_expect_field("{\"to\":\"+919876543210\",\"agent\":\"a\",\"from\":\"banana\"}", "from");
    cr_assert_eq(sim_count(&gw, "POST", "/calls"), 0);
}

Test(api, numbers_are_normalised)
{
    const char *forms[] = {"+91 98765-43210", "+91.98765.43210", "+91 (98765) 43210",
                           "98765 43210", "09876543210", "0091 98765 43210"};
    char body[256];
    struct http_resp r;
    size_t i;

    for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        snprintf(body, sizeof(body), "{\"to\":\"%s\",\"agent\":\"a\"}", forms[i]);
        cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, body, &r), 0);
        cr_assert_eq(r.status, 201, "%s -> %s", forms[i], r.body);
        cr_assert_str_eq(jstr(r.json, "to"), "+919876543210", "%s", forms[i]);
        http_resp_free(&r);
    }
}

Test(api, several_errors_at_once)
{
    struct http_resp r;

    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL,
                              "{\"to\":\"x\",\"record\":1,\"lang\":5,\"zzz\":0}", &r),
                 0);
    assert_problem(&r, 400, "validation");
    cr_assert_geq(json_array_size(json_object_get(r.json, "errors")), 4, "%s", r.body);
    http_resp_free(&r);
}

Test(api, oversized_bodies)
{
    size_t big = 70 * 1024, huge = 600 * 1024;
    char *body = malloc(huge + 1);
    struct http_resp r;

    memset(body, ' ', huge);
    body[0] = '{';
    body[big - 1] = '}';
    body[big] = '\0';
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, body, &r), 0);
    assert_problem(&r, 413, "payload-too-large");
    http_resp_free(&r);
    body[big - 1] = ' ';
    body[huge - 1] = '}';
    body[huge] = '\0';
    /* Beyond the largest route limit the server refuses it before reading the body. */
    if (gw_post_call(&gw, GWTEST_ACME_KEY, NULL, body, &r) == 0) {
        cr_assert_eq(r.status, 413, "%s", r.body);
        http_resp_free(&r);
    }
    free(body);
    cr_assert_eq(sim_count(&gw, "POST", "/calls"), 0);
    /* The gateway is still fine. */
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, CALL_BODY, &r), 0);
    cr_assert_eq(r.status, 201);
    http_resp_free(&r);
}

Test(api, agent_group_unknown)
{
    struct http_resp r;

    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL,
                              "{\"to\":\"+919876543210\",\"agent_group\":\"sales\"}", &r),
                 0);
    assert_problem(&r, 404, "not-found");
    http_resp_free(&r);
}

Test(api, unsupported_call_types)
{
    struct http_resp r;

    /* globex has only CloudDialer, which places outbound calls only. */
    cr_assert_eq(gw_post_call(&gw, GWTEST_GLOBEX_KEY, NULL,
                              "{\"to\":\"+919876543210\",\"type\":\"inbound\",\"queue\":\"7\"}",
                              &r),
                 0);
    assert_problem(&r, 422, "unsupported-by-vendor");
    http_resp_free(&r);
    /* acme's pinned CloudDialer cannot schedule (its CCAI could). */
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL,
                              "{\"to\":\"+919876543210\",\"agent\":\"a\",\"type\":\"scheduled\","
                              "\"vendor\":\"clouddialer\",\"scheduled_at\":\"2099-01-01T10:00:00Z\"}",
                              &r),
                 0);
    assert_problem(&r, 422, "unsupported-by-vendor");
    http_resp_free(&r);
    cr_assert_eq(sim_count(&gw, "POST", "/calls"), 0);
}

Test(api, vendor_cannot_take_number)
{
    struct http_resp r;
    json_t *a;

    /* CloudDialer takes only +91 numbers: refused before anything is sent. */
    cr_assert_eq(gw_post_call(&gw, GWTEST_GLOBEX_KEY, NULL,
                              "{\"to\":\"(415) 555-0100\",\"agent\":\"a\"}", &r),
                 0);
    assert_problem(&r, 502, "vendor-rejected");
    a = json_array_get(json_object_get(r.json, "attempts"), 0);
    cr_assert_str_eq(jstr(a, "outcome"), "rejected");
    cr_assert(strstr(jstr(a, "detail"), "+91") != NULL);
    cr_assert_not_null(jstr(r.json, "call_id"));
    http_resp_free(&r);
    cr_assert_eq(sim_count(&gw, "POST", "/calls"), 0);
}

Test(api, idempotent_replay_and_mismatch)
{
    struct http_resp a, b, c, d;
    char h[32];

    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, "key-1", CALL_BODY, &a), 0);
    cr_assert_eq(a.status, 201);
    cr_assert_null(http_header(&a, "Idempotent-Replayed", h, sizeof(h)));
    /* Same body with other whitespace and key order: a replay. */
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, "key-1",
                              "{ \"reference\":\"crm-1\", \"agent\":\"agent.017\","
                              " \"to\":\"+91 98765-43210\" }",
                              &b),
                 0);
    cr_assert_eq(b.status, 201);
    cr_assert_str_eq(http_header(&b, "Idempotent-Replayed", h, sizeof(h)), "true");
    cr_assert_str_eq(a.body, b.body);
    {
        char la[128], lb[128];
        cr_assert_not_null(http_header(&a, "Location", la, sizeof(la)));
        cr_assert_str_eq(http_header(&b, "Location", lb, sizeof(lb)), la,
                         "a replay has the first answer's headers");
    }
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, "key-1",
                              "{\"to\":\"+919876543211\",\"agent\":\"agent.017\"}", &c),
                 0);
    assert_problem(&c, 422, "idempotency-mismatch");
    /* Keys are per tenant. */
    cr_assert_eq(gw_post_call(&gw, GWTEST_GLOBEX_KEY, "key-1",
                              "{\"to\":\"+919876543210\",\"agent\":\"a\"}", &d),
                 0);
    cr_assert_eq(d.status, 201, "%s", d.body);
    cr_assert_str_neq(jstr(d.json, "id"), jstr(a.json, "id"));
    cr_assert_eq(sim_count(&gw, "POST", "/calls"), 2);
    http_resp_free(&a);
    http_resp_free(&b);
    http_resp_free(&c);
    http_resp_free(&d);
}

Test(api, idempotency_key_bounds)
{
    char key[300];
    struct http_resp r;

    memset(key, 'k', 256);
    key[256] = '\0';
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, key, CALL_BODY, &r), 0);
    assert_field_error(&r, "Idempotency-Key");
    http_resp_free(&r);
    key[255] = '\0';
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, key, CALL_BODY, &r), 0);
    cr_assert_eq(r.status, 201);
    http_resp_free(&r);
}

Test(api, twenty_concurrent_duplicates_place_one_call)
{
    enum { N = 20 };
    CURL *easy[N];
    struct curl_slist *hdrs = NULL;
    char *bodies[N] = {0};
    size_t lens[N] = {0};
    long codes[N];
    CURLM *multi = curl_multi_init();
    char url[128];
    int running = 1, i, created = 0, conflicts = 0;
    const char *first_id = NULL;
    json_t *parsed[N] = {0};

    snprintf(url, sizeof(url), "%s/v1/calls", gw.base);
    hdrs = curl_slist_append(hdrs, "Authorization: Bearer " GWTEST_ACME_KEY);
    hdrs = curl_slist_append(hdrs, "Idempotency-Key: concurrent-1");
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    for (i = 0; i < N; i++) {
        FILE *f;
        easy[i] = curl_easy_init();
        curl_easy_setopt(easy[i], CURLOPT_URL, url);
        curl_easy_setopt(easy[i], CURLOPT_POSTFIELDS, CALL_BODY);
        curl_easy_setopt(easy[i], CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(easy[i], CURLOPT_FORBID_REUSE, 1L);
        f = open_memstream(&bodies[i], &lens[i]);
        curl_easy_setopt(easy[i], CURLOPT_WRITEDATA, f);
        curl_easy_setopt(easy[i], CURLOPT_PRIVATE, f);
        curl_multi_add_handle(multi, easy[i]);
    }
    while (running) {
        curl_multi_perform(multi, &running);
        curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    for (i = 0; i < N; i++) {
        FILE *f;
        curl_easy_getinfo(easy[i], CURLINFO_PRIVATE, (char **)&f);
        fclose(f);
        curl_easy_getinfo(easy[i], CURLINFO_RESPONSE_CODE, &codes[i]);
        parsed[i] = json_loads(bodies[i], 0, NULL);
        if (codes[i] == 201) {
            created++;
            if (first_id == NULL) {
                first_id = jstr(parsed[i], "id");
            }
            cr_assert_str_eq(jstr(parsed[i], "id"), first_id);
        } else {
            cr_assert_eq(codes[i], 409, "unexpected %ld: %s", codes[i], bodies[i]);
            cr_assert_str_eq(jstr(parsed[i], "type"), "/problems/idempotency-conflict");
            conflicts++;
        }
        curl_multi_remove_handle(multi, easy[i]);
        curl_easy_cleanup(easy[i]);
    }
    cr_assert_geq(created, 1);
    cr_assert_eq(created + conflicts, N);
    cr_assert_eq(sim_count(&gw, "POST", "/calls"), 1, "the vendor must see exactly one request");
    for (i = 0; i < N; i++) {
        json_decref(parsed[i]);
        free(bodies[i]);
    }
    curl_slist_free_all(hdrs);
    curl_multi_cleanup(multi);
}

/* A table without a catch-all: a call no rule matches gets 503 no-route. */
Test(api_routes, no_route, .timeout = 60)
{
    struct gwtest t;
    struct gwtest_opts o = {0};
    char dir[256], path[320];
    struct http_resp r;
    FILE *f;

    cr_assert_eq(proc_tmpdir(dir, sizeof(dir)), 0);
    snprintf(path, sizeof(path), "%s/10-us.json", dir);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("{\"rules\": [{\"name\": \"us-only\", \"match\": {\"to_prefix\": [\"+1\"]},"
          " \"vendors\": [\"clouddialer\"]}]}",
          f);
    fclose(f);
    o.routes_dir = dir;
    gwtest_start(&t, &o);
    cr_assert_eq(gw_post_call(&t, GWTEST_ACME_KEY, NULL, CALL_BODY, &r), 0);
    cr_assert_eq(r.status, 503, "%s", r.body);
    cr_assert_str_eq(jstr(r.json, "type"), "/problems/no-route");
    http_resp_free(&r);
    cr_assert_eq(sim_count(&t, "POST", "/calls"), 0);
    gwtest_stop(&t);
    proc_rmdir(dir);
}

Test(api, list_calls_paged_and_filtered)
{
    char body[160], path[256], seen[5][64];
    const char *cursor;
    struct http_resp r;
    json_t *page;
    int i, n = 0;

    /* Made back to back, often within one millisecond: their ids order them. */
    for (i = 0; i < 5; i++) {
        snprintf(body, sizeof(body), "{\"to\":\"+919876543210\",\"agent\":\"a\",\"reference\":\"%s\"}",
                 i == 2 ? "special" : "plain");
        cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, body, &r), 0);
        cr_assert_eq(r.status, 201);
        snprintf(seen[i], sizeof(seen[i]), "%s", jstr(r.json, "id"));
        http_resp_free(&r);
    }
    /* Newest first, two at a time, every call exactly once. */
    snprintf(path, sizeof(path), "/v1/calls?limit=2");
    for (;;) {
        cr_assert_eq(gw_get(&gw, GWTEST_ACME_KEY, path, &r), 0);
        cr_assert_eq(r.status, 200, "%s", r.body);
        page = json_object_get(r.json, "data");
        cr_assert(json_array_size(page) <= 2);
        for (i = 0; i < (int)json_array_size(page); i++) {
            cr_assert_lt(n, 5);
            cr_assert_str_eq(jstr(json_array_get(page, (size_t)i), "id"), seen[4 - n]);
            n++;
        }
        cursor = jstr(r.json, "next_cursor");
        if (cursor == NULL) {
            cr_assert(json_is_null(json_object_get(r.json, "next_cursor")));
            http_resp_free(&r);
            break;
        }
        snprintf(path, sizeof(path), "/v1/calls?limit=2&cursor=%s", cursor);
        http_resp_free(&r);
    }
    cr_assert_eq(n, 5);
    cr_assert_eq(gw_get(&gw, GWTEST_ACME_KEY, "/v1/calls?reference=special", &r), 0);
    cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 1);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(r.json, "data"), 0), "id"), seen[2]);
    http_resp_free(&r);
    cr_assert_eq(gw_get(&gw, GWTEST_ACME_KEY, "/v1/calls?status=busy", &r), 0);
    cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 0);
    http_resp_free(&r);
    /* Another tenant sees none of them. */
    cr_assert_eq(gw_get(&gw, GWTEST_GLOBEX_KEY, "/v1/calls", &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 0);
    http_resp_free(&r);
}

Test(api, list_calls_bad_parameters)
{
    const char *bad[][2] = {{"/v1/calls?limit=0", "limit"},       {"/v1/calls?limit=201", "limit"},
                            {"/v1/calls?limit=ten", "limit"},     {"/v1/calls?cursor=zzz", "cursor"},
                            {"/v1/calls?cursor=12.a%2Fb", "cursor"},
                            {"/v1/calls?status=QUEUED", "status"}, {"/v1/calls?sort=asc", "sort"}};
    struct http_resp r;
    json_t *e;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(gw_get(&gw, GWTEST_ACME_KEY, bad[i][0], &r), 0);
        assert_problem(&r, 400, "validation");
        e = json_array_get(json_object_get(r.json, "errors"), 0);
        cr_assert_str_eq(jstr(e, "field"), bad[i][1], "%s: %s", bad[i][0], r.body);
        http_resp_free(&r);
    }
    cr_assert_eq(gw_get(&gw, NULL, "/v1/calls", &r), 0);
    assert_problem(&r, 401, "unauthorized");
    http_resp_free(&r);
}

/*
 * Idempotency holds across replicas: two callgate processes on one Redis,
 * 20 concurrent duplicates split between them, exactly one vendor request.
 */
Test(api, concurrent_duplicates_across_two_replicas)
{
    enum { N = 20 };
    char conf2[384], log2[384], url[2][128], listen[32];
    const char *argv[4];
    struct proc second;
    json_t *conf;
    CURLM *multi = curl_multi_init();
    CURL *easy[N];
    struct curl_slist *hdrs = NULL;
    long code;
    int port2 = proc_free_port(), i, running = 1, created = 0;

    snprintf(conf2, sizeof(conf2), "%s/replica2.json", gw.dir);
    snprintf(log2, sizeof(log2), "%s/replica2.log", gw.dir);
    conf = json_load_file(gw.conf_path, 0, NULL);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port2);
    json_object_set_new(conf, "listen", json_string(listen));
    cr_assert_eq(json_dump_file(conf, conf2, 0), 0);
    json_decref(conf);
    argv[0] = getenv("CG_CALLGATE") != NULL ? getenv("CG_CALLGATE") : CG_BUILDDIR "/src/callgate";
    argv[1] = "-c";
    argv[2] = conf2;
    argv[3] = NULL;
    cr_assert_eq(proc_start(&second, argv, NULL, log2), 0);
    cr_assert_eq(proc_wait_port(port2, 10000), 0);
    gwtest_sleep_ms(300); /* its Redis connection */

    snprintf(url[0], sizeof(url[0]), "%s/v1/calls", gw.base);
    snprintf(url[1], sizeof(url[1]), "http://127.0.0.1:%d/v1/calls", port2);
    hdrs = curl_slist_append(hdrs, "Authorization: Bearer " GWTEST_ACME_KEY);
    hdrs = curl_slist_append(hdrs, "Idempotency-Key: two-replicas");
    for (i = 0; i < N; i++) {
        easy[i] = curl_easy_init();
        curl_easy_setopt(easy[i], CURLOPT_URL, url[i % 2]);
        curl_easy_setopt(easy[i], CURLOPT_POSTFIELDS, CALL_BODY);
        curl_easy_setopt(easy[i], CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, discard_body);
        curl_multi_add_handle(multi, easy[i]);
    }
    while (running) {
        curl_multi_perform(multi, &running);
        curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    for (i = 0; i < N; i++) {
        curl_easy_getinfo(easy[i], CURLINFO_RESPONSE_CODE, &code);
        cr_assert(code == 201 || code == 409, "unexpected %ld", code);
        created += code == 201;
        curl_multi_remove_handle(multi, easy[i]);
        curl_easy_cleanup(easy[i]);
    }
    curl_slist_free_all(hdrs);
    curl_multi_cleanup(multi);
    cr_assert_geq(created, 1);
    cr_assert_eq(sim_count(&gw, "POST", "/calls"), 1, "two replicas, one vendor request");
    i = proc_stop(&second, SIGTERM, 10000);
    cr_assert(WIFEXITED(i) && WEXITSTATUS(i) == 0, "the second replica exited %d", i);
}

/* ---- live calls: participants and status refresh -------------------------- */

/* Place a call the simulator keeps live for 20 s; returns its id (static). */
static const char *
place_live_call(char *vendor_call_id, size_t vlen)
{
    static char id[64];
    struct http_resp r;

    cr_assert_eq(sim_post(&gw, "/_sim/config", "{\"call_ms\": 20000}"), 200);
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, CALL_BODY, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(id, sizeof(id), "%s", jstr(r.json, "id"));
    if (vendor_call_id != NULL) {
        snprintf(vendor_call_id, vlen, "%s", jstr(r.json, "vendor_call_id"));
    }
    http_resp_free(&r);
    return id;
}

static int
post_participant(const char *key, const char *id, const char *body, struct http_resp *out)
{
    char url[256], auth[128];
    const char *headers[] = {auth, "Content-Type: application/json", NULL};

    snprintf(url, sizeof(url), "%s/v1/calls/%s/participants", gw.base, id);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
    return http_do("POST", url, headers, body, strlen(body), 0, out);
}

Test(api, participant_joins_a_live_call)
{
    char vcid[128], path[256];
    const char *id = place_live_call(vcid, sizeof(vcid));
    struct http_resp r;
    json_t *reqs, *sent;

    gwtest_sleep_ms(200); /* the simulated call is answered */
    cr_assert_eq(post_participant(GWTEST_ACME_KEY, id, "{\"number\": \"+91 98111 22233\"}", &r),
                 0);
    cr_assert_eq(r.status, 202, "%s", r.body);
    cr_assert_str_eq(jstr(r.json, "status"), "dialing");
    cr_assert_not_null(jstr(r.json, "leg_id"));
    cr_assert_str_eq(jstr(r.json, "number"), "+919811122233");
    http_resp_free(&r);
    snprintf(path, sizeof(path), "/_sim/requests?method=POST&path=/calls/%s/participants", vcid);
    reqs = sim_get_json(&gw, path);
    cr_assert_eq(json_integer_value(json_object_get(reqs, "count")), 1);
    sent = json_loads(jstr(json_array_get(json_object_get(reqs, "requests"), 0), "body"), 0,
                      NULL);
    cr_assert_str_eq(jstr(sent, "number"), "9811122233");
    cr_assert_eq(json_integer_value(json_object_get(sent, "max_ring_time")), 30);
    json_decref(sent);
    json_decref(reqs);
}

Test(api, participant_bad_input_and_states)
{
    const char *id = place_live_call(NULL, 0);
    struct http_resp r;
    const char *bad[][2] = {{"{", "body"},
                            {"[]", "body"},
                            {"{}", "number"},
                            {"{\"number\": 98111}", "number"},
                            {"{\"number\": \"banana\"}", "number"},
                            {"{\"number\": \"+919811122233\", \"max_ring_seconds\": 3}",
                             "max_ring_seconds"},
                            {"{\"number\": \"+919811122233\", \"extra\": 1}", "extra"}};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(post_participant(GWTEST_ACME_KEY, id, bad[i][0], &r), 0);
        assert_problem(&r, 400, "validation");
        cr_assert_str_eq(jstr(json_array_get(json_object_get(r.json, "errors"), 0), "field"),
                         bad[i][1], "%s -> %s", bad[i][0], r.body);
        http_resp_free(&r);
    }
    cr_assert_eq(post_participant(GWTEST_ACME_KEY, "call_nope", "{\"number\": \"+919811122233\"}",
                                  &r),
                 0);
    assert_problem(&r, 404, "not-found");
    http_resp_free(&r);
    cr_assert_eq(post_participant(GWTEST_GLOBEX_KEY, id, "{\"number\": \"+919811122233\"}", &r),
                 0);
    assert_problem(&r, 404, "not-found");
    http_resp_free(&r);
    /* CloudDialer dials only +91 numbers. */
    cr_assert_eq(post_participant(GWTEST_ACME_KEY, id, "{\"number\": \"+14155550100\"}", &r), 0);
    assert_problem(&r, 422, "unsupported-by-vendor");
    http_resp_free(&r);
    /* The vendor refuses, or hangs. */
    cr_assert_eq(sim_post(&gw, "/_sim/faults",
                          "{\"method\":\"POST\",\"path\":\"/calls/\",\"mode\":\"status\","
                          "\"status\":400,\"body\":\"{\\\"status\\\":\\\"error\\\","
                          "\\\"message\\\":\\\"Call is not active\\\"}\"}"),
                 200);
    cr_assert_eq(post_participant(GWTEST_ACME_KEY, id, "{\"number\": \"+919811122233\"}", &r), 0);
    assert_problem(&r, 502, "vendor-rejected");
    cr_assert_str_eq(jstr(r.json, "detail"), "Call is not active");
    http_resp_free(&r);
    cr_assert_eq(sim_post(&gw, "/_sim/faults",
                          "{\"method\":\"POST\",\"path\":\"/calls/\",\"mode\":\"hang\"}"),
                 200);
    cr_assert_eq(post_participant(GWTEST_ACME_KEY, id, "{\"number\": \"+919811122233\"}", &r), 0);
    assert_problem(&r, 504, "vendor-timeout");
    http_resp_free(&r);
}

Test(api, participant_needs_a_live_call)
{
    struct http_resp r;
    json_t *call;
    const char *id;

    /* With the default 300 ms simulated call, the result push ends it. */
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, CALL_BODY, &r), 0);
    id = jstr(r.json, "id");
    call = gw_wait_call_status(&gw, GWTEST_ACME_KEY, id, "completed", 5000);
    json_decref(call);
    {
        struct http_resp p;
        cr_assert_eq(post_participant(GWTEST_ACME_KEY, id, "{\"number\": \"+919811122233\"}", &p),
                     0);
        assert_problem(&p, 409, "call-not-active");
        http_resp_free(&p);
    }
    http_resp_free(&r);
}

Test(api, refresh_asks_the_vendor_and_records_it)
{
    char vcid[128], path[160], hdr[32];
    const char *id = place_live_call(vcid, sizeof(vcid));
    struct http_resp r;
    json_t *ev;
    size_t n;

    gwtest_sleep_ms(300); /* answered: ANSWER, no end_time yet */
    snprintf(path, sizeof(path), "/v1/calls/%s?refresh=true", id);
    cr_assert_eq(gw_get(&gw, GWTEST_ACME_KEY, path, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(http_header(&r, "Callgate-Refresh", hdr, sizeof(hdr)), "ok");
    cr_assert_str_eq(jstr(r.json, "status"), "in_progress", "%s", r.body);
    cr_assert_geq(json_array_size(json_object_get(r.json, "legs")), 2);
    n = json_array_size(json_object_get(r.json, "events"));
    ev = json_array_get(json_object_get(r.json, "events"), n - 1);
    cr_assert_str_eq(jstr(ev, "source"), "poll");
    http_resp_free(&r);
    /* The same answer again is not a new event. */
    cr_assert_eq(gw_get(&gw, GWTEST_ACME_KEY, path, &r), 0);
    cr_assert_eq(json_array_size(json_object_get(r.json, "events")), n);
    http_resp_free(&r);
    /* The vendor fails: the stored record, flagged. */
    cr_assert_eq(sim_post(&gw, "/_sim/faults",
                          "{\"method\":\"GET\",\"path\":\"/calls/\",\"mode\":\"status\","
                          "\"status\":500}"),
                 200);
    cr_assert_eq(gw_get(&gw, GWTEST_ACME_KEY, path, &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(http_header(&r, "Callgate-Refresh", hdr, sizeof(hdr)), "failed");
    cr_assert_str_eq(jstr(r.json, "status"), "in_progress");
    http_resp_free(&r);
    /* Bad parameters. */
    snprintf(path, sizeof(path), "/v1/calls/%s?refresh=maybe", id);
    cr_assert_eq(gw_get(&gw, GWTEST_ACME_KEY, path, &r), 0);
    assert_problem(&r, 400, "validation");
    http_resp_free(&r);
    snprintf(path, sizeof(path), "/v1/calls/%s?verbose=1", id);
    cr_assert_eq(gw_get(&gw, GWTEST_ACME_KEY, path, &r), 0);
    assert_problem(&r, 400, "validation");
    http_resp_free(&r);
    /* Another tenant: 404, refresh or not. */
    snprintf(path, sizeof(path), "/v1/calls/%s?refresh=true", id);
    cr_assert_eq(gw_get(&gw, GWTEST_GLOBEX_KEY, path, &r), 0);
    assert_problem(&r, 404, "not-found");
    http_resp_free(&r);
}
