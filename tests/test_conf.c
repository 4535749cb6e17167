/*
 * test_conf.c: the configuration loader (conf.c) and the routing table
 * loader (routes.c).
 *
 * Every conf test starts from one minimal valid configuration, built as a
 * jansson tree (base_conf()), changes one thing with set()/del() and checks
 * that conf_load_string() fails with the expected "test.json: field: reason"
 * line, or that the value was read as documented. The shipped conf/ and
 * routes/ files are loaded too. Routes tests write their files into a fresh
 * mkdtemp() directory.
 *
 * Every test ends with a LeakSanitizer check (criterion ignores what LSan
 * reports when a test process exits), so error paths are checked for leaks.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "conf.h"
#include "crypto.h"
#include "routes.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK() __lsan_do_recoverable_leak_check()
#else
#define LEAK_CHECK() 0
#endif

#define NAME "test.json"

/* base64 of "callgate-demo-signing-secret-32b" (32 bytes) */
#define SECRET "whsec_Y2FsbGdhdGUtZGVtby1zaWduaW5nLXNlY3JldC0zMmI="
#define SECRET_B "whsec_MDEyMzQ1Njc4OWFiY2RlZg==" /* 16 bytes: the shortest allowed */
#define TOKEN_A "acme-token-0123456789"
#define TOKEN_B "beta-token-0123456789"

static char hash_a[65], hash_b[65];

static void
suite_init(void)
{
    crypto_sha256_hex("key-acme", strlen("key-acme"), hash_a);
    crypto_sha256_hex("key-beta", strlen("key-beta"), hash_b);
}

static void
suite_fini(void)
{
    if (LEAK_CHECK() != 0) {
        abort(); /* an assertion in .fini would not fail the test */
    }
}

TestSuite(conf, .init = suite_init, .fini = suite_fini, .timeout = 10);
TestSuite(routes, .init = suite_init, .fini = suite_fini, .timeout = 10);

/* ---------------------------------------------------------------------------
 * Building configurations
 */

/* The smallest valid configuration: one vendor, one tenant. */
static json_t *
base_conf(void)
{
    json_t *root = json_pack(
        "{s:s, s:{s:{s:s, s:s, s:s}}, s:[{s:s, s:s, s:s, s:s, s:[s]}]}", "listen",
        "127.0.0.1:8080", "vendors", "clouddialer", "base_url", "https://vendor.test", "api_key",
        "k", "from_number", "+919800000000", "tenants", "id", "acme", "api_key_sha256", hash_a,
        "default_country", "IN", "webhook_secret", SECRET, "vendors", "clouddialer");

    cr_assert_not_null(root);
    return root;
}

/* A second, distinct tenant "beta" appended to root's tenants. */
static json_t *
tenant_beta(void)
{
    json_t *t = json_pack("{s:s, s:s, s:s, s:s, s:[s]}", "id", "beta", "api_key_sha256", hash_b,
                          "default_country", "IN", "webhook_secret", SECRET_B, "vendors",
                          "clouddialer");

    cr_assert_not_null(t);
    return t;
}

/*
 * The node at a dotted path ("tenants.0.vendors"): object members by name,
 * array elements by index. Borrowed; fails the test when absent.
 */
static json_t *
at(json_t *root, const char *path)
{
    char buf[256], *tok, *save = NULL;
    json_t *cur = root;

    snprintf(buf, sizeof(buf), "%s", path);
    for (tok = strtok_r(buf, ".", &save); tok != NULL; tok = strtok_r(NULL, ".", &save)) {
        if (json_is_array(cur)) {
            cur = json_array_get(cur, (size_t)strtoul(tok, NULL, 10));
        } else {
            cur = json_object_get(cur, tok);
        }
        cr_assert_not_null(cur, "no node at %s (%s)", path, tok);
    }
    return cur;
}

/* Split "a.b.c" into the parent "a.b" (or "" for the root) and the key "c". */
static json_t *
parent_of(json_t *root, const char *path, const char **key)
{
    static char parent[256];
    const char *dot = strrchr(path, '.');

    if (dot == NULL) {
        *key = path;
        return root;
    }
    snprintf(parent, sizeof(parent), "%.*s", (int)(dot - path), path);
    *key = dot + 1;
    return at(root, parent);
}

/* Set (or replace) the member at path; steals val. */
static void
set(json_t *root, const char *path, json_t *val)
{
    const char *key;
    json_t *p = parent_of(root, path, &key);

    cr_assert_not_null(val);
    if (json_is_array(p)) {
        size_t i = (size_t)strtoul(key, NULL, 10);
        if (i == json_array_size(p)) {
            cr_assert_eq(json_array_append_new(p, val), 0);
        } else {
            cr_assert_eq(json_array_set_new(p, i, val), 0);
        }
    } else {
        cr_assert_eq(json_object_set_new(p, key, val), 0);
    }
}

static void
set_s(json_t *root, const char *path, const char *s)
{
    set(root, path, json_string(s));
}

static void
set_i(json_t *root, const char *path, long long n)
{
    set(root, path, json_integer(n));
}

static void
set_json(json_t *root, const char *path, const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);

    cr_assert_not_null(v, "bad test JSON %s: %s", text, jerr.text);
    set(root, path, v);
}

static void
del(json_t *root, const char *path)
{
    const char *key;
    json_t *p = parent_of(root, path, &key);

    cr_assert_eq(json_object_del(p, key), 0, "nothing to delete at %s", path);
}

/* Load root (consumed). On success returns the conf; *errors is freed. */
static struct conf *
load(json_t *root, char **errors)
{
    char *text = json_dumps(root, JSON_COMPACT);
    struct conf *c;

    cr_assert_not_null(text);
    json_decref(root);
    c = conf_load_string(text, NAME, errors);
    free(text);
    return c;
}

/* root must load; returns the conf (caller unrefs). */
static struct conf *
load_ok(json_t *root)
{
    char *errors = NULL;
    struct conf *c = load(root, &errors);

    cr_assert_not_null(c, "the configuration was refused:\n%s", errors ? errors : "(no errors)");
    cr_assert_null(errors, "errors set on success: %s", errors);
    return c;
}

static int
count_lines(const char *s)
{
    int n = 0;

    for (; s != NULL && *s != '\0'; s++) {
        n += *s == '\n';
    }
    return n;
}

/* The error text must hold a line starting with want (want includes "test.json: "). */
static void
assert_has_line(const char *errors, const char *want)
{
    const char *p = errors;
    size_t wl = strlen(want);

    cr_assert_not_null(errors, "no errors reported; wanted \"%s\"", want);
    while (p != NULL && *p != '\0') {
        if (strncmp(p, want, wl) == 0) {
            return;
        }
        p = strchr(p, '\n');
        p = p != NULL ? p + 1 : NULL;
    }
    cr_assert_fail("no line starting with\n  %s\nin the errors:\n%s", want, errors);
}

/* root (consumed) must be refused with a line starting with want. */
static void
expect_error(json_t *root, const char *want)
{
    char *errors = NULL;
    struct conf *c = load(root, &errors);

    if (c != NULL) {
        conf_unref(c); /* free it first, so that the failure is not also a leak */
        cr_assert_fail("accepted; wanted the error \"%s\"", want);
    }
    assert_has_line(errors, want);
    cr_assert_eq(errors[strlen(errors) - 1], '\n', "error lines end with a newline");
    free(errors);
}

/* A raw text must be refused with a line starting with want. */
static void
expect_text_error(const char *text, const char *want)
{
    char *errors = NULL;
    struct conf *c = conf_load_string(text, NAME, &errors);

    cr_assert_null(c, "accepted: %s", text);
    assert_has_line(errors, want);
    free(errors);
}

/* ---------------------------------------------------------------------------
 * The shipped files
 */

static void
set_demo_env(void)
{
    setenv("CLOUDDIALER_API_KEY", "demo-clouddialer-key", 1);
    setenv("ACME_WEBHOOK_SECRET", SECRET, 1);
    setenv("ACME_CLOUDDIALER_TOKEN", "acme-demo-token-0123456789", 1);
    setenv("CCAI_CREDENTIAL", "demo:ccai-token", 1);
    setenv("ACME_CCAI_TOKEN", "acme-ccai-token-0123456789", 1);
    setenv("ACME_CCAI_HOOK_AUTH", "hook:secret", 1);
}

/* The rule a tenant's call to `to` of `type` matches now. */
static const struct route_rule *
match_rule(const struct route_table *t, const char *tenant, const char *to, const char *type)
{
    struct route_call c = {.tenant = tenant, .to = to, .type = type};

    return routes_match(t, &c, NULL);
}

/* The same, by name. */
static const char *
match_name(const struct route_table *t, const char *to, const char *type)
{
    const struct route_rule *r = match_rule(t, "acme", to, type);

    return r != NULL ? r->name : "(none)";
}

Test(conf, shipped_example_loads, .timeout = 10)
{
    char *errors = NULL, *warnings = NULL, *dir;
    struct conf *c;
    struct route_table *t;
    const struct conf_tenant *acme;
    const struct conf_tenant_vendor *tv;

    set_demo_env();
    c = conf_load(CG_SRCDIR "/conf/callgate.json", &errors);
    cr_assert_not_null(c, "conf/callgate.json was refused:\n%s", errors);
    cr_assert_null(errors);
    cr_assert_str_eq(c->listen_host, "127.0.0.1");
    cr_assert_eq(c->listen_port, 8080);
    cr_assert_eq(c->nvendors, 2);
    cr_assert_str_eq(c->vendors[0].api_key, "demo-clouddialer-key");
    cr_assert_str_eq(conf_vendor_find(c, "ccai")->api_key, "demo:ccai-token");
    cr_assert_str_eq(c->vendors[0].time_zone, "Asia/Kolkata");
    acme = conf_tenant_find(c, "acme");
    cr_assert_not_null(acme);
    cr_assert_eq(acme->nsecrets, 1);
    cr_assert_str_eq(acme->webhook_secret[0], SECRET);
    tv = conf_tenant_vendor(acme, "clouddialer");
    cr_assert_not_null(tv);
    cr_assert_str_eq(tv->webhook_token, "acme-demo-token-0123456789");
    cr_assert_eq(conf_tenant_by_webhook_token(c, "clouddialer", "acme-demo-token-0123456789"),
                 acme);
    tv = conf_tenant_vendor(acme, "ccai");
    cr_assert_not_null(tv);
    cr_assert_str_eq(tv->webhook_basic_auth, "hook:secret");

    dir = conf_routes_path(c);
    cr_assert_str_eq(dir, CG_SRCDIR "/conf/../routes");
    t = routes_load_dir(dir, c, &errors, &warnings);
    cr_assert_not_null(t, "routes/ was refused:\n%s", errors);
    cr_assert_null(errors);
    cr_assert_null(warnings, "unexpected warnings: %s", warnings);
    cr_assert_eq(t->nrules, 3);
    cr_assert_str_eq(match_name(t, "+919876543210", "outbound"), "india");
    cr_assert_str_eq(match_name(t, "+919876543210", "inbound"), "contact-center");
    cr_assert_str_eq(match_name(t, "+14155550100", "scheduled"), "contact-center");
    cr_assert_str_eq(match_name(t, "+14155550100", "outbound"), "default");
    routes_unref(t);
    free(dir);
    conf_unref(c);
}

Test(conf, shipped_example_needs_its_env, .timeout = 10)
{
    char *errors = NULL;
    struct conf *c;

    set_demo_env();
    unsetenv("ACME_CLOUDDIALER_TOKEN");
    c = conf_load(CG_SRCDIR "/conf/callgate.json", &errors);
    cr_assert_null(c);
    assert_has_line(errors, CG_SRCDIR "/conf/callgate.json: tenants.acme.vendors[0].webhook_token: "
                            "environment variable ACME_CLOUDDIALER_TOKEN is not set");
    free(errors);
}

Test(conf, missing_file, .timeout = 10)
{
    char *errors = NULL;
    struct conf *c = conf_load("/nonexistent/callgate.json", &errors);

    cr_assert_null(c);
    assert_has_line(errors, "/nonexistent/callgate.json: (file): ");
    free(errors);
}

/* ---------------------------------------------------------------------------
 * Positive: the minimal configuration and its defaults
 */

Test(conf, minimal_defaults, .timeout = 10)
{
    struct conf *c = load_ok(base_conf());
    const struct conf_vendor *v;
    const struct conf_tenant *t;

    cr_assert_eq(c->refs, 1);
    cr_assert_str_eq(c->path, NAME);
    cr_assert_str_eq(c->listen_host, "127.0.0.1");
    cr_assert_eq(c->listen_port, 8080);
    cr_assert_null(c->admin_listen_host);
    cr_assert_null(c->admin_token_sha256);
    cr_assert_str_eq(c->routes_dir, "routes");
    cr_assert_str_eq(c->log_level, "info");

    cr_assert_str_eq(c->redis.host, "127.0.0.1");
    cr_assert_eq(c->redis.port, 6379);
    cr_assert_null(c->redis.unix_path);
    cr_assert_null(c->redis.password);
    cr_assert_eq(c->redis.db, 0);
    cr_assert_str_eq(c->redis.key_prefix, "cg:");
    cr_assert_eq(c->redis.connect_timeout_ms, 1000);
    cr_assert_eq(c->redis.command_timeout_ms, 1000);
    cr_assert_eq(c->redis.backoff_min_ms, 100);
    cr_assert_eq(c->redis.backoff_max_ms, 2000);

    cr_assert_eq(c->limits.max_body_bytes, 65536);
    cr_assert_eq(c->limits.max_webhook_body_bytes, 262144);
    cr_assert_eq(c->limits.max_header_bytes, 16384);
    cr_assert_eq(c->limits.idle_timeout_ms, 60000);
    cr_assert_eq(c->limits.request_timeout_ms, 30000);
    cr_assert_eq(c->limits.drain_timeout_ms, 10000);
    cr_assert_eq(c->limits.max_vendor_response_bytes, 1048576);
    cr_assert_eq(c->idempotency.ttl_s, 86400);
    cr_assert_eq(c->idempotency.in_flight_s, 60);
    cr_assert_eq(c->callbacks.allow_http, 0);
    cr_assert_eq(c->callbacks.nallow_hosts, 0);
    cr_assert_eq(c->callbacks.timeout_ms, 10000);

    cr_assert_eq(c->nvendors, 1);
    v = conf_vendor_find(c, "clouddialer");
    cr_assert_eq(v, &c->vendors[0]);
    cr_assert_str_eq(v->name, "clouddialer");
    cr_assert_str_eq(v->base_url, "https://vendor.test");
    cr_assert_str_eq(v->api_key, "k");
    cr_assert_str_eq(v->from_number, "+919800000000");
    cr_assert_str_eq(v->time_zone, "UTC");
    cr_assert_eq(v->connect_timeout_ms, 3000);
    cr_assert_eq(v->timeout_ms, 10000);
    cr_assert_null(conf_vendor_find(c, "acmetel"));

    cr_assert_eq(c->ntenants, 1);
    t = conf_tenant_find(c, "acme");
    cr_assert_eq(t, &c->tenants[0]);
    cr_assert_null(conf_tenant_find(c, "beta"));
    cr_assert_eq(t->nkeys, 1);
    cr_assert_str_eq(t->key_sha256[0], hash_a);
    cr_assert_str_eq(t->default_country, "IN");
    cr_assert_null(t->callback_url);
    cr_assert_eq(t->nsecrets, 1);
    cr_assert_eq(t->nvendors, 1);
    cr_assert_str_eq(t->vendors[0].vendor, "clouddialer");
    cr_assert_null(t->vendors[0].api_key);
    cr_assert_null(t->vendors[0].from_number);
    cr_assert_null(t->vendors[0].webhook_token);
    conf_unref(c);
}

Test(conf, explicit_values_are_read, .timeout = 10)
{
    json_t *root = base_conf();
    struct conf *c;

    set_json(root, "redis", "{\"host\":\"redis.internal\",\"port\":6380,\"db\":3,"
                            "\"key_prefix\":\"gw:\",\"password\":\"pw\",\"unix\":\"/run/r.sock\","
                            "\"connect_timeout_ms\":500,\"command_timeout_ms\":700,"
                            "\"backoff_min_ms\":50,\"backoff_max_ms\":50}");
    set_json(root, "limits", "{\"max_body_bytes\":1024,\"request_timeout_ms\":20000}");
    set_json(root, "idempotency", "{\"ttl_s\":60,\"in_flight_s\":20}");
    set_json(root, "callbacks", "{\"allow_http\":true,\"allow_hosts\":\"127.0.0.1\","
                                "\"timeout_ms\":2000}");
    set_json(root, "admin", "{\"listen\":\"[::1]:9090\"}");
    set_s(root, "admin.token_sha256", hash_b);
    set_s(root, "log_level", "debug");
    set_s(root, "routes_dir", "/srv/routes");
    set_s(root, "vendors.clouddialer.base_url", "http://vendor.test:8080/CRM_API/");
    set_s(root, "vendors.clouddialer.time_zone", "Asia/Kolkata");
    set_s(root, "vendors.clouddialer.from_number", "+91 98000-00000");
    set_i(root, "vendors.clouddialer.timeout_ms", 19000);
    set_i(root, "vendors.clouddialer.connect_timeout_ms", 19000);
    c = load_ok(root);
    cr_assert_str_eq(c->redis.host, "redis.internal");
    cr_assert_eq(c->redis.port, 6380);
    cr_assert_eq(c->redis.db, 3);
    cr_assert_str_eq(c->redis.key_prefix, "gw:");
    cr_assert_str_eq(c->redis.password, "pw");
    cr_assert_str_eq(c->redis.unix_path, "/run/r.sock");
    cr_assert_eq(c->redis.backoff_max_ms, 50);
    cr_assert_eq(c->limits.max_body_bytes, 1024);
    cr_assert_eq(c->limits.request_timeout_ms, 20000);
    cr_assert_eq(c->idempotency.in_flight_s, 20);
    cr_assert_eq(c->callbacks.allow_http, 1);
    cr_assert_eq(c->callbacks.nallow_hosts, 1);
    cr_assert_str_eq(c->callbacks.allow_hosts[0], "127.0.0.1");
    cr_assert_eq(c->callbacks.timeout_ms, 2000);
    cr_assert_str_eq(c->admin_listen_host, "::1");
    cr_assert_eq(c->admin_listen_port, 9090);
    cr_assert_str_eq(c->admin_token_sha256, hash_b);
    cr_assert_str_eq(c->log_level, "debug");
    /* the trailing slash of base_url is dropped, so adapters can append "/calls" */
    cr_assert_str_eq(c->vendors[0].base_url, "http://vendor.test:8080/CRM_API");
    cr_assert_str_eq(c->vendors[0].time_zone, "Asia/Kolkata");
    cr_assert_str_eq(c->vendors[0].from_number, "+919800000000");
    cr_assert_eq(c->vendors[0].timeout_ms, 19000);
    conf_unref(c);
}

Test(conf, country_is_upper_cased, .timeout = 10)
{
    json_t *root = base_conf();
    struct conf *c;

    set_s(root, "tenants.0.default_country", "in");
    c = load_ok(root);
    cr_assert_str_eq(c->tenants[0].default_country, "IN");
    conf_unref(c);
}

Test(conf, allow_hosts_array, .timeout = 10)
{
    json_t *root = base_conf();
    struct conf *c;

    set_json(root, "callbacks", "{\"allow_hosts\":[\"127.0.0.1\",\"sink.internal\"]}");
    c = load_ok(root);
    cr_assert_eq(c->callbacks.nallow_hosts, 2);
    cr_assert_str_eq(c->callbacks.allow_hosts[1], "sink.internal");
    conf_unref(c);
}

Test(conf, ipv6_listen, .timeout = 10)
{
    json_t *root = base_conf();
    struct conf *c;

    set_s(root, "listen", "[::]:443");
    c = load_ok(root);
    cr_assert_str_eq(c->listen_host, "::");
    cr_assert_eq(c->listen_port, 443);
    conf_unref(c);
}

Test(conf, tenant_vendor_overrides, .timeout = 10)
{
    json_t *root = base_conf();
    struct conf *c;
    const struct conf_tenant_vendor *tv;

    set_json(root, "tenants.0.vendors",
             "[{\"vendor\":\"clouddialer\",\"api_key\":\"tenant-key\","
             "\"from_number\":\"+91 98000 00001\",\"webhook_token\":\"" TOKEN_A "\"}]");
    c = load_ok(root);
    tv = conf_tenant_vendor(&c->tenants[0], "clouddialer");
    cr_assert_not_null(tv);
    cr_assert_eq(tv, &c->tenants[0].vendors[0]);
    cr_assert_str_eq(tv->api_key, "tenant-key");
    cr_assert_str_eq(tv->from_number, "+919800000001");
    cr_assert_str_eq(tv->webhook_token, TOKEN_A);
    cr_assert_null(conf_tenant_vendor(&c->tenants[0], "acmetel"));
    conf_unref(c);
}

Test(conf, tenant_by_key, .timeout = 10)
{
    json_t *root = base_conf();
    struct conf *c;
    char upper[65], wrong[65];
    size_t i;

    set(root, "tenants.1", tenant_beta());
    c = load_ok(root);
    cr_assert_eq(c->ntenants, 2);
    cr_assert_eq(conf_tenant_by_key(c, hash_a), conf_tenant_find(c, "acme"));
    cr_assert_eq(conf_tenant_by_key(c, hash_b), conf_tenant_find(c, "beta"));

    crypto_sha256_hex("key-other", strlen("key-other"), wrong);
    cr_assert_null(conf_tenant_by_key(c, wrong));
    cr_assert_null(conf_tenant_by_key(c, ""));
    /* a prefix of a real hash is not that hash */
    snprintf(wrong, sizeof(wrong), "%.63s", hash_a);
    cr_assert_null(conf_tenant_by_key(c, wrong));
    /* nor is its upper-case spelling (stored hashes are lower-case) */
    for (i = 0; i < 64; i++) {
        upper[i] = (char)toupper((unsigned char)hash_a[i]);
    }
    upper[64] = '\0';
    if (strcmp(upper, hash_a) != 0) {
        cr_assert_null(conf_tenant_by_key(c, upper));
    }
    conf_unref(c);
}

Test(conf, tenant_by_key_rotation, .timeout = 10)
{
    json_t *root = base_conf();
    struct conf *c;

    set(root, "tenants.0.api_key_sha256", json_pack("[s, s]", hash_a, hash_b));
    c = load_ok(root);
    cr_assert_eq(c->tenants[0].nkeys, 2);
    cr_assert_eq(conf_tenant_by_key(c, hash_a), &c->tenants[0]);
    cr_assert_eq(conf_tenant_by_key(c, hash_b), &c->tenants[0]);
    conf_unref(c);
}

Test(conf, tenant_by_webhook_token, .timeout = 10)
{
    json_t *root = base_conf();
    struct conf *c;

    set(root, "tenants.1", tenant_beta());
    set_json(root, "tenants.0.vendors",
             "[{\"vendor\":\"clouddialer\",\"webhook_token\":\"" TOKEN_A "\"}]");
    set_json(root, "tenants.1.vendors",
             "[{\"vendor\":\"clouddialer\",\"webhook_token\":\"" TOKEN_B "\"}]");
    c = load_ok(root);
    cr_assert_eq(conf_tenant_by_webhook_token(c, "clouddialer", TOKEN_A),
                 conf_tenant_find(c, "acme"));
    cr_assert_eq(conf_tenant_by_webhook_token(c, "clouddialer", TOKEN_B),
                 conf_tenant_find(c, "beta"));
    cr_assert_null(conf_tenant_by_webhook_token(c, "clouddialer", "acme-token-012345678"));
    cr_assert_null(conf_tenant_by_webhook_token(c, "clouddialer", TOKEN_A "x"));
    cr_assert_null(conf_tenant_by_webhook_token(c, "clouddialer", ""));
    cr_assert_null(conf_tenant_by_webhook_token(c, "acmetel", TOKEN_A));
    conf_unref(c);
}

Test(conf, webhook_basic_auth, .timeout = 10)
{
    json_t *root = base_conf();
    struct conf *c;

    set_json(root, "tenants.0.vendors",
             "[{\"vendor\":\"clouddialer\",\"webhook_token\":\"" TOKEN_A "\","
             "\"webhook_basic_auth\":\"hook:pw\"}]");
    c = load_ok(root);
    cr_assert_str_eq(conf_tenant_vendor(conf_tenant_find(c, "acme"), "clouddialer")
                         ->webhook_basic_auth,
                     "hook:pw");
    conf_unref(c);

    root = base_conf();
    set_json(root, "tenants.0.vendors",
             "[{\"vendor\":\"clouddialer\",\"webhook_token\":\"" TOKEN_A "\","
             "\"webhook_basic_auth\":\"no-colon\"}]");
    expect_error(root, "test.json: tenants.acme.vendors[0].webhook_basic_auth: must be "
                       "\"user:password\"");
    root = base_conf();
    set_json(root, "tenants.0.vendors",
             "[{\"vendor\":\"clouddialer\",\"webhook_basic_auth\":\"a:b\"}]");
    expect_error(root, "test.json: tenants.acme.vendors[0].webhook_basic_auth: needs "
                       "webhook_token (the token names the tenant)");
}

Test(conf, tenant_without_token_is_not_found_by_token, .timeout = 10)
{
    struct conf *c = load_ok(base_conf());

    cr_assert_null(conf_tenant_by_webhook_token(c, "clouddialer", ""));
    cr_assert_null(conf_tenant_by_webhook_token(c, "clouddialer", TOKEN_A));
    conf_unref(c);
}

Test(conf, routes_path, .timeout = 10)
{
    char *errors = NULL, *text, *p;
    json_t *root = base_conf();
    struct conf *c;

    text = json_dumps(root, JSON_COMPACT);
    /* relative routes_dir: beside the conf file */
    c = conf_load_string(text, "/etc/callgate/callgate.json", &errors);
    cr_assert_not_null(c, "%s", errors);
    p = conf_routes_path(c);
    cr_assert_str_eq(p, "/etc/callgate/routes");
    free(p);
    conf_unref(c);
    /* a conf name without a directory: routes_dir as it is */
    c = conf_load_string(text, "callgate.json", &errors);
    cr_assert_not_null(c, "%s", errors);
    p = conf_routes_path(c);
    cr_assert_str_eq(p, "routes");
    free(p);
    conf_unref(c);
    free(text);

    set_s(root, "routes_dir", "../routes");
    text = json_dumps(root, JSON_COMPACT);
    c = conf_load_string(text, "/etc/callgate/callgate.json", &errors);
    cr_assert_not_null(c, "%s", errors);
    p = conf_routes_path(c);
    cr_assert_str_eq(p, "/etc/callgate/../routes");
    free(p);
    conf_unref(c);
    free(text);

    /* absolute routes_dir: unchanged */
    set_s(root, "routes_dir", "/srv/routes");
    text = json_dumps(root, JSON_COMPACT);
    c = conf_load_string(text, "/etc/callgate/callgate.json", &errors);
    cr_assert_not_null(c, "%s", errors);
    p = conf_routes_path(c);
    cr_assert_str_eq(p, "/srv/routes");
    free(p);
    conf_unref(c);
    free(text);
    json_decref(root);
}

Test(conf, ref_unref, .timeout = 10)
{
    struct conf *c = load_ok(base_conf());

    cr_assert_eq(conf_ref(c), c);
    cr_assert_eq(c->refs, 2);
    conf_unref(c);
    cr_assert_eq(c->refs, 1);
    cr_assert_str_eq(c->tenants[0].id, "acme"); /* still alive */
    conf_unref(c);                               /* freed: LeakSanitizer checks */
    conf_unref(NULL);
}

/* ---------------------------------------------------------------------------
 * Errors: the document
 */

Test(conf, syntax_error_has_line_and_column, .timeout = 10)
{
    expect_text_error("{\n  \"listen\": \"127.0.0.1:8080\",\n  oops\n}",
                      "test.json: (syntax): line 3, column ");
    expect_text_error("{\"listen\": }", "test.json: (syntax): line 1, column ");
    expect_text_error("", "test.json: (syntax): ");
}

Test(conf, duplicate_key, .timeout = 10)
{
    char *errors = NULL;
    struct conf *c = conf_load_string("{\"listen\":\"a:1\",\n\"listen\":\"b:2\"}", NAME, &errors);

    cr_assert_null(c);
    assert_has_line(errors, "test.json: (syntax): line 2, column ");
    cr_assert_not_null(strstr(errors, "duplicate"), "%s", errors);
    free(errors);
}

Test(conf, duplicate_key_nested, .timeout = 10)
{
    char *errors = NULL, *text, *dup;
    const char *k;
    json_t *root = base_conf();
    struct conf *c;

    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    /* repeat "api_key" inside vendors.clouddialer */
    k = strstr(text, "\"api_key\":\"k\"");
    cr_assert_not_null(k);
    dup = malloc(strlen(text) + 32);
    cr_assert_not_null(dup);
    sprintf(dup, "%.*s\"api_key\":\"x\",%s", (int)(k - text), text, k);
    c = conf_load_string(dup, NAME, &errors);
    cr_assert_null(c);
    assert_has_line(errors, "test.json: (syntax): ");
    cr_assert_not_null(strstr(errors, "duplicate"), "%s", errors);
    free(errors);
    free(dup);
    free(text);
}

Test(conf, root_not_object, .timeout = 10)
{
    expect_text_error("[]", "test.json: (root): must be a JSON object");
    expect_text_error("[{\"listen\":\"127.0.0.1:1\"}]", "test.json: (root): must be a JSON object");
}

/* ---------------------------------------------------------------------------
 * Errors: unknown keys
 */

Test(conf, unknown_top_level_key, .timeout = 10)
{
    json_t *root = base_conf();

    set_i(root, "listen_port", 8080);
    expect_error(root, "test.json: listen_port: unknown key");
}

Test(conf, unknown_key_redis, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "redis", "{\"hostname\":\"r\"}");
    expect_error(root, "test.json: redis.hostname: unknown key");
}

Test(conf, unknown_key_limits, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "limits", "{\"max_body\":1024}");
    expect_error(root, "test.json: limits.max_body: unknown key");
}

Test(conf, unknown_key_idempotency, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "idempotency", "{\"ttl\":60}");
    expect_error(root, "test.json: idempotency.ttl: unknown key");
}

Test(conf, unknown_key_callbacks, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "callbacks", "{\"allow_https\":true}");
    expect_error(root, "test.json: callbacks.allow_https: unknown key");
}

Test(conf, unknown_key_admin, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "admin", "{\"listen\":\"127.0.0.1:9090\",\"token\":\"secret\"}");
    expect_error(root, "test.json: admin.token: unknown key");
}

Test(conf, unknown_key_vendor, .timeout = 10)
{
    json_t *root = base_conf();

    set_s(root, "vendors.clouddialer.apikey", "k");
    expect_error(root, "test.json: vendors.clouddialer.apikey: unknown key");
}

Test(conf, unknown_key_tenant, .timeout = 10)
{
    json_t *root = base_conf();

    set_s(root, "tenants.0.country", "IN");
    expect_error(root, "test.json: tenants[0].country: unknown key");
}

Test(conf, unknown_key_tenant_vendor, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "tenants.0.vendors", "[{\"vendor\":\"clouddialer\",\"token\":\"x\"}]");
    expect_error(root, "test.json: tenants.acme.vendors[0].token: unknown key");
}

Test(conf, section_not_object, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "redis", "[]");
    expect_error(root, "test.json: redis: must be an object");
    root = base_conf();
    set_s(root, "limits", "big");
    expect_error(root, "test.json: limits: must be an object");
}

/* ---------------------------------------------------------------------------
 * Errors: listen and types
 */

Test(conf, listen_missing, .timeout = 10)
{
    json_t *root = base_conf();

    del(root, "listen");
    expect_error(root, "test.json: listen: is required");
}

Test(conf, listen_bad, .timeout = 10)
{
    static const char *const bad[] = {"nohostport", "127.0.0.1:0", "127.0.0.1:70000",
                                      ":8080", "127.0.0.1:", "127.0.0.1:http", "[::1]8080",
                                      "[::1", "127.0.0.1:-1"};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *root = base_conf();
        char want[128];

        set_s(root, "listen", bad[i]);
        snprintf(want, sizeof(want), "test.json: listen: \"%s\" is not host:port", bad[i]);
        expect_error(root, want);
    }
}

Test(conf, admin_listen_bad, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "admin", "{\"listen\":\"localhost\"}");
    expect_error(root, "test.json: admin.listen: \"localhost\" is not host:port");
}

Test(conf, admin_token_not_hex, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "admin", "{\"token_sha256\":\"secret\"}");
    expect_error(root, "test.json: admin.token_sha256: is not 64 lower-case hex digits");
}

Test(conf, listen_wrong_type, .timeout = 10)
{
    json_t *root = base_conf();

    set_i(root, "listen", 8080);
    expect_error(root, "test.json: listen: must be a string");
}

Test(conf, string_for_integer, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "redis", "{\"port\":\"6379\"}");
    expect_error(root, "test.json: redis.port: must be an integer");
    root = base_conf();
    set_json(root, "limits", "{\"max_body_bytes\":65536.0}");
    expect_error(root, "test.json: limits.max_body_bytes: must be an integer");
}

Test(conf, integer_for_string, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "redis", "{\"host\":127}");
    expect_error(root, "test.json: redis.host: must be a string");
    root = base_conf();
    set_i(root, "vendors.clouddialer.base_url", 1);
    expect_error(root, "test.json: vendors.clouddialer.base_url: must be a string");
}

Test(conf, empty_string, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "redis", "{\"key_prefix\":\"\"}");
    expect_error(root, "test.json: redis.key_prefix: must not be empty");
}

Test(conf, allow_http_not_bool, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "callbacks", "{\"allow_http\":\"yes\"}");
    expect_error(root, "test.json: callbacks.allow_http: must be true or false");
    root = base_conf();
    set_json(root, "callbacks", "{\"allow_http\":1}");
    expect_error(root, "test.json: callbacks.allow_http: must be true or false");
}

Test(conf, integer_out_of_range, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "limits", "{\"max_body_bytes\":10}");
    expect_error(root, "test.json: limits.max_body_bytes: must be between 1024 and 16777216 "
                       "(got 10)");
    root = base_conf();
    set_json(root, "redis", "{\"port\":0}");
    expect_error(root, "test.json: redis.port: must be between 1 and 65535 (got 0)");
    root = base_conf();
    set_json(root, "redis", "{\"db\":-1}");
    expect_error(root, "test.json: redis.db: must be between 0 and 1024 (got -1)");
}

Test(conf, log_level_bad, .timeout = 10)
{
    json_t *root = base_conf();

    set_s(root, "log_level", "verbose");
    expect_error(root, "test.json: log_level: must be one of error, warn, info, debug");
}

Test(conf, backoff_max_below_min, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "redis", "{\"backoff_min_ms\":500,\"backoff_max_ms\":100}");
    expect_error(root, "test.json: redis.backoff_max_ms: must be at least backoff_min_ms");
}

/* ---------------------------------------------------------------------------
 * Errors: vendors
 */

Test(conf, vendors_missing_or_empty, .timeout = 10)
{
    json_t *root = base_conf();

    del(root, "vendors");
    expect_error(root, "test.json: vendors: is required");
    root = base_conf();
    set_json(root, "vendors", "{}");
    expect_error(root, "test.json: vendors: at least one vendor is required");
    root = base_conf();
    set_json(root, "vendors.clouddialer", "[]");
    expect_error(root, "test.json: vendors.clouddialer: must be an object");
}

Test(conf, unknown_vendor_name, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "vendors.acmetel", "{\"base_url\":\"https://acmetel.test\"}");
    expect_error(root, "test.json: vendors.acmetel: unknown vendor (known: clouddialer, getdesk, "
                       "callerdesk, ccai)");
}

Test(conf, vendor_base_url_missing, .timeout = 10)
{
    json_t *root = base_conf();

    del(root, "vendors.clouddialer.base_url");
    expect_error(root, "test.json: vendors.clouddialer.base_url: is required");
}

Test(conf, vendor_base_url_not_url, .timeout = 10)
{
    json_t *root = base_conf();

    set_s(root, "vendors.clouddialer.base_url", "vendor.test");
    expect_error(root, "test.json: vendors.clouddialer.base_url: \"vendor.test\" is not an "
                       "absolute URL");
    root = base_conf();
    set_s(root, "vendors.clouddialer.base_url", "not a url");
    expect_error(root, "test.json: vendors.clouddialer.base_url: \"not a url\" is not an "
                       "absolute URL");
}

Test(conf, vendor_base_url_ftp, .timeout = 10)
{
    json_t *root = base_conf();

    set_s(root, "vendors.clouddialer.base_url", "ftp://vendor.test");
    expect_error(root, "test.json: vendors.clouddialer.base_url: must be an https URL or an "
                       "http URL");
}

Test(conf, vendor_base_url_credentials, .timeout = 10)
{
    json_t *root = base_conf();

    set_s(root, "vendors.clouddialer.base_url", "https://user:pw@vendor.test");
    expect_error(root, "test.json: vendors.clouddialer.base_url: must not carry credentials");
}

Test(conf, vendor_from_number_not_e164, .timeout = 10)
{
    json_t *root = base_conf();

    set_s(root, "vendors.clouddialer.from_number", "caller-id");
    expect_error(root, "test.json: vendors.clouddialer.from_number: not an E.164 number: ");
    /* a national number: there is no default country for a vendor */
    root = base_conf();
    set_s(root, "vendors.clouddialer.from_number", "9800000000");
    expect_error(root, "test.json: vendors.clouddialer.from_number: not an E.164 number: ");
}

Test(conf, vendor_health_interval, .timeout = 10)
{
    json_t *root = base_conf();
    struct conf *c;

    c = load_ok(root);
    cr_assert_eq(c->vendors[0].health_interval_ms, 30000, "default");
    conf_unref(c);
    root = base_conf();
    set_json(root, "vendors.clouddialer.health_interval_ms", "0");
    c = load_ok(root);
    cr_assert_eq(c->vendors[0].health_interval_ms, 0, "off");
    conf_unref(c);
    root = base_conf();
    set_json(root, "vendors.clouddialer.health_interval_ms", "50");
    expect_error(root, "test.json: vendors.clouddialer.health_interval_ms: must be 0 (off) or at "
                       "least 100");
}

Test(conf, vendor_time_zone_unknown, .timeout = 10)
{
    json_t *root = base_conf();

    set_s(root, "vendors.clouddialer.time_zone", "Mars/Olympus");
    expect_error(root, "test.json: vendors.clouddialer.time_zone: unknown IANA time zone "
                       "\"Mars/Olympus\"");
    root = base_conf();
    set_s(root, "vendors.clouddialer.time_zone", "../../etc/passwd");
    expect_error(root, "test.json: vendors.clouddialer.time_zone: unknown IANA time zone ");
}

Test(conf, vendor_time_zone_directory, .timeout = 10)
{
    json_t *root = base_conf();

    /*
     * Regression (fixed): util_zone_valid() (src/util.c:125) only checks that
     * /usr/share/zoneinfo/<zone> is readable, so a directory ("Asia") or a
     * table file ("zone.tab") passes as a time zone; TZ=Asia then silently
     * means UTC and vendor times without a zone are read 5:30 off.
     */
    set_s(root, "vendors.clouddialer.time_zone", "Asia");
    expect_error(root, "test.json: vendors.clouddialer.time_zone: unknown IANA time zone "
                       "\"Asia\"");
}

Test(conf, connect_timeout_exceeds_timeout, .timeout = 10)
{
    json_t *root = base_conf();

    set_i(root, "vendors.clouddialer.connect_timeout_ms", 5000);
    set_i(root, "vendors.clouddialer.timeout_ms", 4000);
    expect_error(root, "test.json: vendors.clouddialer.connect_timeout_ms: must not exceed "
                       "timeout_ms");
}

Test(conf, vendor_timeout_close_to_request_timeout, .timeout = 10)
{
    json_t *root = base_conf();
    struct conf *c;

    set_json(root, "limits", "{\"request_timeout_ms\":10000}");
    set_i(root, "vendors.clouddialer.timeout_ms", 9500);
    expect_error(root, "test.json: vendors.clouddialer.timeout_ms: must be at least 1000 ms "
                       "below limits.request_timeout_ms (10000)");
    /* the default vendor timeout (10000) is too long for this request timeout too */
    root = base_conf();
    set_json(root, "limits", "{\"request_timeout_ms\":10000}");
    expect_error(root, "test.json: vendors.clouddialer.timeout_ms: must be at least 1000 ms");
    /* exactly 1000 ms below is fine */
    root = base_conf();
    set_json(root, "limits", "{\"request_timeout_ms\":10000}");
    set_i(root, "vendors.clouddialer.timeout_ms", 9000);
    c = load_ok(root);
    cr_assert_eq(c->vendors[0].timeout_ms, 9000);
    conf_unref(c);
}

/* ---------------------------------------------------------------------------
 * Errors: tenants
 */

Test(conf, tenants_missing, .timeout = 10)
{
    json_t *root = base_conf();

    del(root, "tenants");
    expect_error(root, "test.json: tenants: is required");
}

Test(conf, tenants_empty_or_not_array, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "tenants", "[]");
    expect_error(root, "test.json: tenants: must be a non-empty array");
    root = base_conf();
    set_json(root, "tenants", "{\"id\":\"acme\"}");
    expect_error(root, "test.json: tenants: must be a non-empty array");
}

Test(conf, tenants_not_objects, .timeout = 10)
{
    json_t *root = base_conf();

    set_s(root, "tenants.1", "beta");
    expect_error(root, "test.json: tenants[1]: must be an object");
}

Test(conf, tenant_id_missing, .timeout = 10)
{
    json_t *root = base_conf();

    del(root, "tenants.0.id");
    expect_error(root, "test.json: tenants[0].id: is required");
}

Test(conf, tenant_id_bad_characters, .timeout = 10)
{
    static const char *const bad[] = {"ac me", "acme/1", "acme:1", "ac\"me", "acmé"};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *root = base_conf();
        char want[128];

        set_s(root, "tenants.0.id", bad[i]);
        snprintf(want, sizeof(want),
                 "test.json: tenants.%s: id may hold only letters, digits, '-', '_' and '.'",
                 bad[i]);
        expect_error(root, want);
    }
}

Test(conf, tenant_id_allowed_characters, .timeout = 10)
{
    json_t *root = base_conf();
    struct conf *c;

    set_s(root, "tenants.0.id", "Acme-Corp_2.eu");
    c = load_ok(root);
    cr_assert_not_null(conf_tenant_find(c, "Acme-Corp_2.eu"));
    conf_unref(c);
}

Test(conf, tenant_id_too_long, .timeout = 10)
{
    json_t *root = base_conf();
    char id[70];

    memset(id, 'a', 65);
    id[65] = '\0';
    set_s(root, "tenants.0.id", id);
    expect_error(root, "test.json: tenants.aaaa");
    root = base_conf();
    set_s(root, "tenants.0.id", id);
    {
        char *errors = NULL;
        cr_assert_null(load(root, &errors));
        cr_assert_not_null(strstr(errors, ": id is longer than 64 characters\n"), "%s", errors);
        free(errors);
    }
}

Test(conf, duplicate_tenant_id, .timeout = 10)
{
    json_t *root = base_conf();

    set(root, "tenants.1", tenant_beta());
    set_s(root, "tenants.1.id", "acme");
    expect_error(root, "test.json: tenants.acme: duplicate tenant id");
}

Test(conf, api_key_sha256_missing, .timeout = 10)
{
    json_t *root = base_conf();

    del(root, "tenants.0.api_key_sha256");
    expect_error(root, "test.json: tenants.acme.api_key_sha256: is required (hex SHA-256 of the "
                       "tenant's API key)");
    root = base_conf();
    set_json(root, "tenants.0.api_key_sha256", "[]");
    expect_error(root, "test.json: tenants.acme.api_key_sha256: is required");
}

Test(conf, api_key_sha256_not_hex64, .timeout = 10)
{
    char h63[64], h65[66], nonhex[65];
    const char *bad[4];
    size_t i;

    snprintf(h63, sizeof(h63), "%.63s", hash_a);
    snprintf(h65, sizeof(h65), "%s0", hash_a);
    snprintf(nonhex, sizeof(nonhex), "%.63sg", hash_a);
    bad[0] = h63;
    bad[1] = h65;
    bad[2] = nonhex;
    bad[3] = "key-acme";
    for (i = 0; i < 4; i++) {
        json_t *root = base_conf();

        set_s(root, "tenants.0.api_key_sha256", bad[i]);
        expect_error(root, "test.json: tenants.acme.api_key_sha256: entry 0 is not 64 lower-case "
                           "hex digits");
    }
}

Test(conf, api_key_sha256_upper_case, .timeout = 10)
{
    json_t *root = base_conf();

    set_s(root, "tenants.0.api_key_sha256",
          "A2FB8545FCD457204E9FEE11BE92013AA3240B1B146FE262BA608FDFC159041C");
    expect_error(root, "test.json: tenants.acme.api_key_sha256: entry 0 is not 64 lower-case hex "
                       "digits");
    /* the second entry of a rotation list is named by its index */
    root = base_conf();
    set(root, "tenants.0.api_key_sha256",
        json_pack("[s, s]", hash_a, "A2FB8545FCD457204E9FEE11BE92013AA3240B1B146FE262BA608FDFC159041C"));
    expect_error(root, "test.json: tenants.acme.api_key_sha256: entry 1 is not 64 lower-case hex "
                       "digits");
}

Test(conf, api_key_sha256_bad_entry_type, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "tenants.0.api_key_sha256", "[42]");
    expect_error(root, "test.json: tenants.acme.api_key_sha256[0]: must be a non-empty string");
    root = base_conf();
    set_i(root, "tenants.0.api_key_sha256", 42);
    expect_error(root, "test.json: tenants.acme.api_key_sha256: must be a string or an array of "
                       "strings");
}

Test(conf, api_key_sha256_too_many, .timeout = 10)
{
    json_t *root = base_conf(), *list = json_array();
    int i;

    for (i = 0; i < CONF_MAX_KEYS + 1; i++) {
        json_array_append_new(list, json_string(hash_a));
    }
    set(root, "tenants.0.api_key_sha256", list);
    expect_error(root, "test.json: tenants.acme.api_key_sha256: at most 8 entries");
}

Test(conf, same_key_in_two_tenants, .timeout = 10)
{
    json_t *root = base_conf();

    set(root, "tenants.1", tenant_beta());
    set_s(root, "tenants.1.api_key_sha256", hash_a);
    expect_error(root, "test.json: tenants.beta: api_key_sha256 is also used by tenant acme");
}

Test(conf, default_country_unknown, .timeout = 10)
{
    json_t *root = base_conf();

    set_s(root, "tenants.0.default_country", "XX");
    expect_error(root, "test.json: tenants.acme.default_country: unknown ISO 3166 country \"XX\"");
    root = base_conf();
    del(root, "tenants.0.default_country");
    expect_error(root, "test.json: tenants.acme.default_country: is required");
}

Test(conf, callback_url_http_refused_by_default, .timeout = 10)
{
    json_t *root = base_conf();

    set_s(root, "tenants.0.callback_url", "http://hooks.acme.test/callgate");
    expect_error(root, "test.json: tenants.acme.callback_url: must be an https URL "
                       "(callbacks.allow_http is off)");
    root = base_conf();
    set_json(root, "callbacks", "{\"allow_http\":false}");
    set_s(root, "tenants.0.callback_url", "http://hooks.acme.test/callgate");
    expect_error(root, "test.json: tenants.acme.callback_url: must be an https URL "
                       "(callbacks.allow_http is off)");
}

Test(conf, callback_url_http_allowed, .timeout = 10)
{
    json_t *root = base_conf();
    struct conf *c;

    set_json(root, "callbacks", "{\"allow_http\":true}");
    set_s(root, "tenants.0.callback_url", "http://127.0.0.1:9000/_sink/acme");
    c = load_ok(root);
    cr_assert_str_eq(c->tenants[0].callback_url, "http://127.0.0.1:9000/_sink/acme");
    conf_unref(c);

    root = base_conf();
    set_s(root, "tenants.0.callback_url", "https://hooks.acme.test/callgate");
    c = load_ok(root);
    cr_assert_str_eq(c->tenants[0].callback_url, "https://hooks.acme.test/callgate");
    conf_unref(c);
}

Test(conf, callback_url_bad, .timeout = 10)
{
    json_t *root = base_conf();

    set_s(root, "tenants.0.callback_url", "/relative/path");
    expect_error(root, "test.json: tenants.acme.callback_url: \"/relative/path\" is not an "
                       "absolute URL");
    root = base_conf();
    set_json(root, "callbacks", "{\"allow_http\":true}");
    set_s(root, "tenants.0.callback_url", "ftp://hooks.acme.test/");
    expect_error(root, "test.json: tenants.acme.callback_url: must be an https URL or an http "
                       "URL");
}

Test(conf, webhook_secret_missing, .timeout = 10)
{
    json_t *root = base_conf();

    del(root, "tenants.0.webhook_secret");
    expect_error(root, "test.json: tenants.acme.webhook_secret: is required (a whsec_ secret to "
                       "sign events)");
}

Test(conf, webhook_secret_without_prefix, .timeout = 10)
{
    json_t *root = base_conf();

    set_s(root, "tenants.0.webhook_secret", "Y2FsbGdhdGUtZGVtby1zaWduaW5nLXNlY3JldC0zMmI=");
    expect_error(root, "test.json: tenants.acme.webhook_secret: entry 0 must start with whsec_");
}

Test(conf, webhook_secret_bad_base64, .timeout = 10)
{
    static const char *const bad[] = {"whsec_!!!!not-base64!!!!", "whsec_", "whsec_A",
                                      "whsec_MDEyMzQ1Njc4OWFiY2RlZg=" /* broken padding */};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *root = base_conf();

        set_s(root, "tenants.0.webhook_secret", bad[i]);
        expect_error(root, "test.json: tenants.acme.webhook_secret: entry 0: the part after "
                           "whsec_ must be base64 of 16 to 64 bytes");
    }
}

static char *
whsec_of(size_t nbytes)
{
    unsigned char raw[100];
    char b64[160], *out;

    memset(raw, 'x', sizeof(raw));
    cr_assert_geq(crypto_base64_encode(raw, nbytes, b64, sizeof(b64)), 0);
    out = malloc(strlen(b64) + 7);
    cr_assert_not_null(out);
    sprintf(out, "whsec_%s", b64);
    return out;
}

Test(conf, webhook_secret_length_bounds, .timeout = 10)
{
    static const size_t bad[] = {15, 65, 1};
    static const size_t good[] = {16, 64};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *root = base_conf();
        char *s = whsec_of(bad[i]);

        set_s(root, "tenants.0.webhook_secret", s);
        free(s);
        expect_error(root, "test.json: tenants.acme.webhook_secret: entry 0: the part after "
                           "whsec_ must be base64 of 16 to 64 bytes");
    }
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        json_t *root = base_conf();
        char *s = whsec_of(good[i]);
        struct conf *c;

        set_s(root, "tenants.0.webhook_secret", s);
        c = load_ok(root);
        cr_assert_str_eq(c->tenants[0].webhook_secret[0], s);
        conf_unref(c);
        free(s);
    }
}

Test(conf, webhook_secret_rotation_list, .timeout = 10)
{
    json_t *root = base_conf();
    struct conf *c;

    set(root, "tenants.0.webhook_secret", json_pack("[s, s]", SECRET, SECRET_B));
    c = load_ok(root);
    cr_assert_eq(c->tenants[0].nsecrets, 2);
    cr_assert_str_eq(c->tenants[0].webhook_secret[1], SECRET_B);
    conf_unref(c);

    root = base_conf();
    set(root, "tenants.0.webhook_secret", json_pack("[s, s]", SECRET, "whsec_short"));
    expect_error(root, "test.json: tenants.acme.webhook_secret: entry 1: the part after whsec_ "
                       "must be base64 of 16 to 64 bytes");
}

Test(conf, tenant_vendors_missing, .timeout = 10)
{
    json_t *root = base_conf();

    del(root, "tenants.0.vendors");
    expect_error(root, "test.json: tenants.acme.vendors: is required (the vendors this tenant may "
                       "use)");
}

Test(conf, tenant_vendors_empty, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "tenants.0.vendors", "[]");
    expect_error(root, "test.json: tenants.acme.vendors: must be a non-empty array");
    root = base_conf();
    set_s(root, "tenants.0.vendors", "clouddialer");
    expect_error(root, "test.json: tenants.acme.vendors: must be a non-empty array");
}

Test(conf, tenant_vendor_not_configured, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "tenants.0.vendors", "[\"clouddialer\",\"callerdesk\"]");
    expect_error(root, "test.json: tenants.acme.vendors[1]: vendor \"callerdesk\" is not "
                       "configured in vendors");
    root = base_conf();
    set_json(root, "tenants.0.vendors", "[{\"vendor\":\"callerdesk\"}]");
    expect_error(root, "test.json: tenants.acme.vendors[0]: vendor \"callerdesk\" is not "
                       "configured in vendors");
}

Test(conf, tenant_vendor_listed_twice, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "tenants.0.vendors", "[\"clouddialer\",{\"vendor\":\"clouddialer\"}]");
    expect_error(root, "test.json: tenants.acme.vendors[1]: vendor \"clouddialer\" listed twice");
}

Test(conf, tenant_vendor_bad_entry, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "tenants.0.vendors", "[42]");
    expect_error(root, "test.json: tenants.acme.vendors[0]: must be a vendor name or an object");
}

Test(conf, tenant_vendor_from_number_bad, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "tenants.0.vendors", "[{\"vendor\":\"clouddialer\",\"from_number\":\"x\"}]");
    expect_error(root, "test.json: tenants.acme.vendors[0].from_number: not an E.164 number: ");
}

Test(conf, tenant_vendor_object_without_vendor, .timeout = 10)
{
    json_t *root = base_conf();
    char *errors = NULL;

    set_json(root, "tenants.0.vendors",
             "[{\"api_key\":\"tenant-key\",\"from_number\":\"+919800000001\","
             "\"webhook_token\":\"" TOKEN_A "\"}]");
    cr_assert_null(load(root, &errors));
    assert_has_line(errors, "test.json: tenants.acme.vendors[0].vendor: is required");
    free(errors);
    /*
     * Regression (fixed): conf_parse_tenant_vendors() (src/conf.c:537, the "if (tv->vendor ==
     * NULL) continue;" after reading the object) skips the entry without
     * counting it in t->nvendors, so the api_key, from_number and
     * webhook_token it already copied are never freed: a leak on every
     * rejected reload with such a typo.
     */
    cr_assert_eq(LEAK_CHECK(), 0, "rejecting the configuration leaked memory");
}

Test(conf, webhook_token_too_short, .timeout = 10)
{
    json_t *root = base_conf();
    struct conf *c;

    set_json(root, "tenants.0.vendors",
             "[{\"vendor\":\"clouddialer\",\"webhook_token\":\"0123456789abcde\"}]");
    expect_error(root, "test.json: tenants.acme.vendors[0].webhook_token: must be at least 16 "
                       "characters");
    root = base_conf();
    set_json(root, "tenants.0.vendors",
             "[{\"vendor\":\"clouddialer\",\"webhook_token\":\"0123456789abcdef\"}]");
    c = load_ok(root);
    cr_assert_str_eq(c->tenants[0].vendors[0].webhook_token, "0123456789abcdef");
    conf_unref(c);
}

Test(conf, same_webhook_token_two_tenants, .timeout = 10)
{
    json_t *root = base_conf();

    set(root, "tenants.1", tenant_beta());
    set_json(root, "tenants.0.vendors",
             "[{\"vendor\":\"clouddialer\",\"webhook_token\":\"" TOKEN_A "\"}]");
    set_json(root, "tenants.1.vendors",
             "[{\"vendor\":\"clouddialer\",\"webhook_token\":\"" TOKEN_A "\"}]");
    expect_error(root, "test.json: tenants.beta: webhook_token for clouddialer is also used by "
                       "tenant acme");
}

/* ---------------------------------------------------------------------------
 * "$ENV" secrets
 */

Test(conf, env_secret_set, .timeout = 10)
{
    json_t *root = base_conf();
    struct conf *c;

    setenv("CG_TEST_VENDOR_KEY", "key-from-env", 1);
    setenv("CG_TEST_WHSEC", SECRET_B, 1);
    setenv("CG_TEST_TOKEN", TOKEN_B, 1);
    set_s(root, "vendors.clouddialer.api_key", "$CG_TEST_VENDOR_KEY");
    set(root, "tenants.0.webhook_secret", json_pack("[s, s]", "$CG_TEST_WHSEC", SECRET));
    set_json(root, "tenants.0.vendors",
             "[{\"vendor\":\"clouddialer\",\"api_key\":\"$CG_TEST_VENDOR_KEY\","
             "\"webhook_token\":\"$CG_TEST_TOKEN\"}]");
    set_json(root, "redis", "{\"password\":\"$CG_TEST_VENDOR_KEY\"}");
    c = load_ok(root);
    cr_assert_str_eq(c->vendors[0].api_key, "key-from-env");
    cr_assert_str_eq(c->tenants[0].webhook_secret[0], SECRET_B);
    cr_assert_str_eq(c->tenants[0].webhook_secret[1], SECRET);
    cr_assert_str_eq(c->tenants[0].vendors[0].api_key, "key-from-env");
    cr_assert_str_eq(c->tenants[0].vendors[0].webhook_token, TOKEN_B);
    cr_assert_str_eq(c->redis.password, "key-from-env");
    conf_unref(c);
}

Test(conf, env_secret_unset, .timeout = 10)
{
    json_t *root = base_conf();

    unsetenv("CG_TEST_UNSET_VAR");
    set_s(root, "vendors.clouddialer.api_key", "$CG_TEST_UNSET_VAR");
    expect_error(root, "test.json: vendors.clouddialer.api_key: environment variable "
                       "CG_TEST_UNSET_VAR is not set");
    /* set but empty counts as unset */
    setenv("CG_TEST_EMPTY_VAR", "", 1);
    root = base_conf();
    set_s(root, "vendors.clouddialer.api_key", "$CG_TEST_EMPTY_VAR");
    expect_error(root, "test.json: vendors.clouddialer.api_key: environment variable "
                       "CG_TEST_EMPTY_VAR is not set");
    /* in a list, the entry is named */
    root = base_conf();
    set(root, "tenants.0.webhook_secret", json_pack("[s, s]", SECRET, "$CG_TEST_UNSET_VAR"));
    expect_error(root, "test.json: tenants.acme.webhook_secret[1]: environment variable "
                       "CG_TEST_UNSET_VAR is not set");
}

Test(conf, env_secret_bare_dollar, .timeout = 10)
{
    json_t *root = base_conf();

    set_s(root, "vendors.clouddialer.api_key", "$");
    expect_error(root, "test.json: vendors.clouddialer.api_key: empty $ENV_NAME reference");
}

Test(conf, env_secret_bad_name, .timeout = 10)
{
    json_t *root = base_conf();

    set_s(root, "vendors.clouddialer.api_key", "$BAD-NAME");
    expect_error(root, "test.json: vendors.clouddialer.api_key: \"$BAD-NAME\" is not a valid "
                       "$ENV_NAME reference");
}

Test(conf, non_secret_fields_keep_dollar, .timeout = 10)
{
    json_t *root = base_conf();
    struct conf *c;

    /* key_prefix is not a secret: a "$" there is a literal character */
    set_json(root, "redis", "{\"key_prefix\":\"$cg:\"}");
    c = load_ok(root);
    cr_assert_str_eq(c->redis.key_prefix, "$cg:");
    conf_unref(c);
}

/* ---------------------------------------------------------------------------
 * Cross-field rules and error collection
 */

Test(conf, in_flight_shorter_than_request_timeout, .timeout = 10)
{
    json_t *root = base_conf();
    struct conf *c;

    set_json(root, "idempotency", "{\"in_flight_s\":10}");
    expect_error(root, "test.json: idempotency.in_flight_s: must cover limits.request_timeout_ms");
    /* equal is enough */
    root = base_conf();
    set_json(root, "idempotency", "{\"in_flight_s\":30}");
    c = load_ok(root);
    cr_assert_eq(c->idempotency.in_flight_s, 30);
    conf_unref(c);
}

Test(conf, several_errors_at_once, .timeout = 10)
{
    json_t *root = base_conf();
    char *errors = NULL;

    set_i(root, "bogus", 1);                                         /* 1 */
    set_s(root, "listen", "nohostport");                             /* 2 */
    set_json(root, "limits", "{\"max_body_bytes\":10}");             /* 3 */
    set_s(root, "vendors.clouddialer.time_zone", "Mars/Olympus");    /* 4 */
    set_s(root, "tenants.0.default_country", "XX");                  /* 5 */
    set_s(root, "tenants.0.webhook_secret", "nope");                 /* 6 */
    cr_assert_null(load(root, &errors));
    cr_assert_eq(count_lines(errors), 6, "wanted 6 lines:\n%s", errors);
    assert_has_line(errors, "test.json: bogus: unknown key");
    assert_has_line(errors, "test.json: listen: \"nohostport\" is not host:port");
    assert_has_line(errors, "test.json: limits.max_body_bytes: must be between");
    assert_has_line(errors, "test.json: vendors.clouddialer.time_zone: unknown IANA time zone");
    assert_has_line(errors, "test.json: tenants.acme.default_country: unknown ISO 3166 country");
    assert_has_line(errors, "test.json: tenants.acme.webhook_secret: entry 0 must start with "
                            "whsec_");
    free(errors);
}

/* ---------------------------------------------------------------------------
 * Routes
 */

/* A conf with tenants acme and beta and the vendor clouddialer. */
static struct conf *
routes_conf(void)
{
    json_t *root = base_conf();

    set(root, "tenants.1", tenant_beta());
    return load_ok(root);
}

struct tmpdir {
    char path[64];
};

static void
tmp_make(struct tmpdir *d)
{
    snprintf(d->path, sizeof(d->path), "/tmp/cg-routes-XXXXXX");
    cr_assert_not_null(mkdtemp(d->path));
}

static void
tmp_write(const struct tmpdir *d, const char *name, const char *text)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", d->path, name);
    f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

static void
tmp_remove_file(const struct tmpdir *d, const char *name)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/%s", d->path, name);
    unlink(path);
}

static void
tmp_clean(const struct tmpdir *d, const char *const *names)
{
    size_t i;

    for (i = 0; names != NULL && names[i] != NULL; i++) {
        tmp_remove_file(d, names[i]);
    }
    rmdir(d->path);
}

/* Load one file's text as the only rule file; returns errors (caller frees), table is NULL. */
static char *
routes_errors_of(const char *text)
{
    static const char *const names[] = {"10-test.json", NULL};
    struct tmpdir d;
    struct conf *c = routes_conf();
    char *errors = NULL, *warnings = NULL;
    struct route_table *t;

    tmp_make(&d);
    tmp_write(&d, names[0], text);
    t = routes_load_dir(d.path, c, &errors, &warnings);
    cr_assert_null(t, "accepted: %s", text);
    cr_assert_not_null(errors);
    free(warnings);
    conf_unref(c);
    tmp_clean(&d, names);
    return errors;
}

/* The errors hold a line that contains want. */
static void
assert_contains(const char *errors, const char *want)
{
    cr_assert_not_null(errors);
    cr_assert_not_null(strstr(errors, want), "wanted \"%s\" in:\n%s", want, errors);
}

static void
expect_routes_error(const char *text, const char *want)
{
    char *errors = routes_errors_of(text);

    assert_contains(errors, want);
    free(errors);
}

Test(routes, not_json, .timeout = 10)
{
    char *errors = routes_errors_of("{\"rules\": [\n");

    assert_contains(errors, "/10-test.json: line ");
    free(errors);
    expect_routes_error("{\"rules\": [], \"rules\": []}", "duplicate");
}

Test(routes, missing_rules, .timeout = 10)
{
    expect_routes_error("{\"rule\": []}",
                        "/10-test.json: (file): must be an object with one key, \"rules\"");
    expect_routes_error("[]", "/10-test.json: (file): must be an object with one key, \"rules\"");
    expect_routes_error("{\"rules\": {}}", "(file): must be an object with one key, \"rules\"");
    expect_routes_error("{\"rules\": [], \"version\": 2}",
                        "(file): must be an object with one key, \"rules\"");
}

Test(routes, rule_not_object_or_unnamed, .timeout = 10)
{
    expect_routes_error("{\"rules\": [42]}", "/10-test.json: rules[0]: must be an object");
    expect_routes_error("{\"rules\": [{\"match\": {}, \"vendors\": [\"clouddialer\"]}]}",
                        "/10-test.json: rules[0]: name: is required");
}

Test(routes, unknown_key_in_rule, .timeout = 10)
{
    expect_routes_error("{\"rules\": [{\"name\": \"r1\", \"match\": {}, \"vendors\": "
                        "[\"clouddialer\"], \"weight\": 3}]}",
                        "/10-test.json: r1: weight: unknown key");
}

Test(routes, unknown_key_in_match, .timeout = 10)
{
    expect_routes_error("{\"rules\": [{\"name\": \"r1\", \"match\": {\"colour\": [\"red\"]},"
                        " \"vendors\": [\"clouddialer\"]}]}",
                        "/10-test.json: r1: match: colour: unknown key");
}

Test(routes, unknown_vendor, .timeout = 10)
{
    expect_routes_error("{\"rules\": [{\"name\": \"r1\", \"match\": {}, \"vendors\": "
                        "[\"clouddialer\", \"callerdesk\"]}]}",
                        "/10-test.json: r1: vendors: \"callerdesk\" is not a configured vendor");
}

Test(routes, vendors_missing_or_empty, .timeout = 10)
{
    expect_routes_error("{\"rules\": [{\"name\": \"r1\", \"match\": {}}]}",
                        "/10-test.json: r1: vendors: is required");
    expect_routes_error("{\"rules\": [{\"name\": \"r1\", \"match\": {}, \"vendors\": []}]}",
                        "/10-test.json: r1: vendors: must be a non-empty array of strings");
    expect_routes_error("{\"rules\": [{\"name\": \"r1\", \"match\": {}, \"vendors\": [\"\"]}]}",
                        "/10-test.json: r1: vendors[0]: must be a non-empty string");
}

Test(routes, match_missing, .timeout = 10)
{
    expect_routes_error("{\"rules\": [{\"name\": \"r1\", \"vendors\": [\"clouddialer\"]}]}",
                        "/10-test.json: r1: match: is required");
    expect_routes_error("{\"rules\": [{\"name\": \"r1\", \"match\": [], \"vendors\": "
                        "[\"clouddialer\"]}]}",
                        "/10-test.json: r1: match: is required");
}

Test(routes, unknown_tenant, .timeout = 10)
{
    expect_routes_error("{\"rules\": [{\"name\": \"r1\", \"match\": {\"tenant\": [\"acme\", "
                        "\"nobody\"]}, \"vendors\": [\"clouddialer\"]}]}",
                        "/10-test.json: r1: match.tenant: unknown tenant \"nobody\"");
}

Test(routes, bad_to_prefix, .timeout = 10)
{
    static const char *const bad[] = {"91", "+9a", "+", "+1234567890123456", "+91 ", "++91"};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[256], want[128];

        snprintf(text, sizeof(text),
                 "{\"rules\": [{\"name\": \"r1\", \"match\": {\"to_prefix\": [\"%s\"]}, "
                 "\"vendors\": [\"clouddialer\"]}]}",
                 bad[i]);
        snprintf(want, sizeof(want),
                 "/10-test.json: r1: match.to_prefix: \"%s\" is not \"+\" and 1 to 15 digits",
                 bad[i]);
        expect_routes_error(text, want);
    }
    expect_routes_error("{\"rules\": [{\"name\": \"r1\", \"match\": {\"to_prefix\": \"+91\"}, "
                        "\"vendors\": [\"clouddialer\"]}]}",
                        "/10-test.json: r1: to_prefix: must be a non-empty array of strings");
}

Test(routes, bad_type, .timeout = 10)
{
    expect_routes_error("{\"rules\": [{\"name\": \"r1\", \"match\": {\"type\": [\"robocall\"]}, "
                        "\"vendors\": [\"clouddialer\"]}]}",
                        "/10-test.json: r1: match.type: \"robocall\" is not outbound, inbound or "
                        "scheduled");
}

Test(routes, bad_strategy, .timeout = 10)
{
    expect_routes_error("{\"rules\": [{\"name\": \"r1\", \"match\": {}, \"strategy\": "
                        "\"random\", \"vendors\": [\"clouddialer\"]}]}",
                        "/10-test.json: r1: strategy: must be \"priority\", \"weighted\" or "
                        "\"least_busy\"");
    expect_routes_error("{\"rules\": [{\"name\": \"r1\", \"match\": {}, \"strategy\": 1, "
                        "\"vendors\": [\"clouddialer\"]}]}",
                        "/10-test.json: r1: strategy: must be \"priority\", \"weighted\" or "
                        "\"least_busy\"");
}

Test(routes, duplicate_rule_name, .timeout = 10)
{
    expect_routes_error("{\"rules\": [{\"name\": \"r1\", \"match\": {\"to_prefix\": [\"+91\"]}, "
                        "\"vendors\": [\"clouddialer\"]}, {\"name\": \"r1\", \"match\": {}, "
                        "\"vendors\": [\"clouddialer\"]}]}",
                        "/10-test.json: r1: name: duplicate rule name");
}

Test(routes, duplicate_rule_name_across_files, .timeout = 10)
{
    static const char *const names[] = {"10-a.json", "20-b.json", NULL};
    struct tmpdir d;
    struct conf *c = routes_conf();
    char *errors = NULL;
    struct route_table *t;

    tmp_make(&d);
    tmp_write(&d, names[0], "{\"rules\": [{\"name\": \"india\", \"match\": {\"to_prefix\": "
                            "[\"+91\"]}, \"vendors\": [\"clouddialer\"]}]}");
    tmp_write(&d, names[1], "{\"rules\": [{\"name\": \"india\", \"match\": {}, \"vendors\": "
                            "[\"clouddialer\"]}]}");
    t = routes_load_dir(d.path, c, &errors, NULL);
    cr_assert_null(t);
    assert_contains(errors, "/20-b.json: india: name: duplicate rule name");
    free(errors);
    conf_unref(c);
    tmp_clean(&d, names);
}

Test(routes, all_errors_reported, .timeout = 10)
{
    char *errors = routes_errors_of(
        "{\"rules\": [{\"name\": \"r1\", \"match\": {\"to_prefix\": [\"91\"], \"type\": [\"x\"]},"
        " \"vendors\": [\"nope\"]}, {\"name\": \"r2\", \"bogus\": 1, \"match\": {}, "
        "\"vendors\": [\"clouddialer\"]}]}");

    cr_assert_eq(count_lines(errors), 4, "%s", errors);
    assert_contains(errors, "r1: match.to_prefix");
    assert_contains(errors, "r1: match.type");
    assert_contains(errors, "r1: vendors: \"nope\"");
    assert_contains(errors, "r2: bogus: unknown key");
    free(errors);
}

Test(routes, empty_directory, .timeout = 10)
{
    struct tmpdir d;
    struct conf *c = routes_conf();
    char *errors = NULL, *warnings = NULL;
    struct route_table *t;
    static const char *const names[] = {"README.md", ".hidden.json", NULL};

    tmp_make(&d);
    t = routes_load_dir(d.path, c, &errors, &warnings);
    cr_assert_null(t);
    assert_contains(errors, ": no *.json rule files");
    cr_assert_eq(strncmp(errors, d.path, strlen(d.path)), 0, "%s", errors);
    free(errors);
    free(warnings);
    /* files that are not *.json (or are hidden) do not count */
    tmp_write(&d, names[0], "# routes\n");
    tmp_write(&d, names[1], "{\"rules\": []}");
    t = routes_load_dir(d.path, c, &errors, &warnings);
    cr_assert_null(t);
    assert_contains(errors, ": no *.json rule files");
    free(errors);
    free(warnings);
    conf_unref(c);
    tmp_clean(&d, names);
}

Test(routes, missing_directory, .timeout = 10)
{
    struct conf *c = routes_conf();
    char *errors = NULL;

    cr_assert_null(routes_load_dir("/nonexistent/routes", c, &errors, NULL));
    assert_contains(errors, "/nonexistent/routes: cannot read the routes directory");
    free(errors);
    conf_unref(c);
}

Test(routes, file_without_rules_table_is_not_silent, .timeout = 10)
{
    static const char *const names[] = {"10-empty.json", NULL};
    struct tmpdir d;
    struct conf *c = routes_conf();
    char *errors = NULL, *warnings = NULL;
    struct route_table *t;

    tmp_make(&d);
    tmp_write(&d, names[0], "{\"rules\": []}");
    int ok;

    t = routes_load_dir(d.path, c, &errors, &warnings);
    ok = t == NULL || (warnings != NULL && strstr(warnings, "catch-all") != NULL);
    routes_unref(t);
    free(errors);
    free(warnings);
    conf_unref(c);
    tmp_clean(&d, names);
    /*
     * Regression (fixed): routes_load_dir() (src/routes.c:327, "if (!catch_all && t->nrules
     * > 0)") only warns about a missing catch-all when there is at least one
     * rule, so a directory whose files hold no rule at all loads without an
     * error and without a warning, and every call then gets 503 no-route.
     * It should at least warn "no catch-all rule" (or refuse the table).
     */
    cr_assert(ok, "an empty routing table loaded silently");
}

Test(routes, unnamed_rule_then_empty_file, .timeout = 10)
{
    /*
     * An error in one file, then an empty rules list: reported, no crash.
     * Regression (fixed): routes_load_dir() (src/routes.c:305-311) calls
     * realloc(t->rules, 0) for an empty "rules" array; when t->rules is
     * already allocated but t->nrules is 0 (here: the only rule of 10-a.json
     * had no name), glibc frees it and returns NULL, and the following
     * memset(t->rules + t->nrules, 0, 0) passes NULL to memset: undefined
     * behaviour, which UBSan (-fno-sanitize-recover) turns into an abort.
     * Two files that both hold {"rules": []} trigger the same path.
     */
    static const char *const names[] = {"10-a.json", "20-b.json", NULL};
    struct tmpdir d;
    struct conf *c = routes_conf();
    char *errors = NULL;
    struct route_table *t;

    tmp_make(&d);
    tmp_write(&d, names[0], "{\"rules\": [{}]}");
    tmp_write(&d, names[1], "{\"rules\": []}");
    t = routes_load_dir(d.path, c, &errors, NULL);
    cr_assert_null(t);
    assert_contains(errors, "/10-a.json: rules[0]: name: is required");
    free(errors);
    conf_unref(c);
    tmp_clean(&d, names);
}

Test(routes, two_empty_rule_files_do_not_crash, .timeout = 10)
{
    static const char *const names[] = {"10-a.json", "20-b.json", NULL};
    struct tmpdir d;
    struct conf *c = routes_conf();
    char *errors = NULL, *warnings = NULL;
    struct route_table *t;

    tmp_make(&d);
    tmp_write(&d, names[0], "{\"rules\": []}");
    tmp_write(&d, names[1], "{\"rules\": []}");
    /* Regression (fixed): the realloc(t->rules, 0) + memset(NULL, 0, 0) path above (src/routes.c:305-311) */
    t = routes_load_dir(d.path, c, &errors, &warnings);
    cr_assert(t != NULL || errors != NULL);
    routes_unref(t);
    free(errors);
    free(warnings);
    conf_unref(c);
    tmp_clean(&d, names);
}

Test(routes, warning_catch_all_followed_by_rules, .timeout = 10)
{
    static const char *const names[] = {"10-a.json", "20-b.json", NULL};
    struct tmpdir d;
    struct conf *c = routes_conf();
    char *errors = NULL, *warnings = NULL;
    struct route_table *t;

    tmp_make(&d);
    tmp_write(&d, names[0], "{\"rules\": [{\"name\": \"everything\", \"match\": {}, "
                            "\"vendors\": [\"clouddialer\"]}]}");
    tmp_write(&d, names[1], "{\"rules\": [{\"name\": \"india\", \"match\": {\"to_prefix\": "
                            "[\"+91\"]}, \"vendors\": [\"clouddialer\"]}, {\"name\": \"us\", "
                            "\"match\": {\"to_prefix\": [\"+1\"]}, \"vendors\": "
                            "[\"clouddialer\"]}]}");
    t = routes_load_dir(d.path, c, &errors, &warnings);
    cr_assert_not_null(t, "%s", errors);
    cr_assert_null(errors);
    cr_assert_eq(t->nrules, 3);
    cr_assert_not_null(warnings);
    assert_contains(warnings, "rule everything matches every call: the 2 rule(s) after it never "
                              "match");
    cr_assert_eq(count_lines(warnings), 1, "%s", warnings);
    /* warnings are advice: the table still works */
    cr_assert_str_eq(match_rule(t, "acme", "+919876543210", "outbound")->name, "everything");
    routes_unref(t);
    free(warnings);
    conf_unref(c);
    tmp_clean(&d, names);
}

Test(routes, warning_no_catch_all, .timeout = 10)
{
    static const char *const names[] = {"10-a.json", NULL};
    struct tmpdir d;
    struct conf *c = routes_conf();
    char *errors = NULL, *warnings = NULL;
    struct route_table *t;

    tmp_make(&d);
    tmp_write(&d, names[0], "{\"rules\": [{\"name\": \"india\", \"match\": {\"to_prefix\": "
                            "[\"+91\"]}, \"vendors\": [\"clouddialer\"]}]}");
    t = routes_load_dir(d.path, c, &errors, &warnings);
    cr_assert_not_null(t, "%s", errors);
    assert_contains(warnings, "no catch-all rule");
    cr_assert_null(match_rule(t, "acme", "+14155550100", "outbound"));
    routes_unref(t);
    free(warnings);
    /* warnings may be declined */
    t = routes_load_dir(d.path, c, &errors, NULL);
    cr_assert_not_null(t, "%s", errors);
    routes_unref(t);
    conf_unref(c);
    tmp_clean(&d, names);
}

Test(routes, match_semantics, .timeout = 10)
{
    static const char *const names[] = {"10-acme.json", "20-prefixes.json", "90-default.json",
                                        NULL};
    struct tmpdir d;
    struct conf *c = routes_conf();
    char *errors = NULL, *warnings = NULL;
    struct route_table *t;
    const struct route_rule *r;

    tmp_make(&d);
    /* written out of order: name order decides, not creation order */
    tmp_write(&d, names[2], "{\"rules\": [{\"name\": \"default\", \"match\": {}, "
                            "\"vendors\": [\"clouddialer\"]}]}");
    tmp_write(&d, names[1],
              "{\"rules\": ["
              "{\"name\": \"india-mobile\", \"match\": {\"to_prefix\": [\"+919\"]}, "
              "\"vendors\": [\"clouddialer\"]},"
              "{\"name\": \"india\", \"match\": {\"to_prefix\": [\"+91\", \"+1\"]}, "
              "\"vendors\": [\"clouddialer\"]},"
              "{\"name\": \"india-mobile-late\", \"match\": {\"to_prefix\": [\"+9198\"]}, "
              "\"vendors\": [\"clouddialer\"]}]}");
    tmp_write(&d, names[0],
              "{\"rules\": [{\"name\": \"acme-outbound-in\", \"description\": \"acme\", "
              "\"match\": {\"tenant\": [\"acme\"], \"to_prefix\": [\"+91\"], "
              "\"type\": [\"outbound\", \"scheduled\"]}, \"strategy\": \"priority\", "
              "\"vendors\": [\"clouddialer\"]}]}");
    t = routes_load_dir(d.path, c, &errors, &warnings);
    cr_assert_not_null(t, "%s", errors);
    /* india-mobile-late can never match: india-mobile (+919) comes first */
    assert_contains(warnings, "rule india-mobile-late (20-prefixes.json) never matches: rule "
                              "india-mobile (20-prefixes.json) before it matches every call it "
                              "would");
    cr_assert_eq(count_lines(warnings), 1, "%s", warnings);
    free(warnings);
    cr_assert_eq(t->nrules, 5);
    cr_assert_str_eq(t->rules[0].name, "acme-outbound-in");
    cr_assert_str_eq(t->rules[4].name, "default");
    cr_assert_eq(t->rules[0].ntenants, 1);
    cr_assert_eq(t->rules[0].ntypes, 2);
    cr_assert_eq(t->rules[0].nvendors, 1);
    cr_assert_str_eq(t->rules[0].vendors[0].name, "clouddialer");

    /* tenant + prefix + type all match: the first file's rule */
    r = match_rule(t, "acme", "+919876543210", "outbound");
    cr_assert_str_eq(r->name, "acme-outbound-in");
    r = match_rule(t, "acme", "+919876543210", "scheduled");
    cr_assert_str_eq(r->name, "acme-outbound-in");
    /* wrong type: falls through to the next file */
    r = match_rule(t, "acme", "+919876543210", "inbound");
    cr_assert_str_eq(r->name, "india-mobile");
    /* wrong tenant */
    r = match_rule(t, "beta", "+919876543210", "outbound");
    cr_assert_str_eq(r->name, "india-mobile");
    /* the first matching rule wins even if a later rule has a longer prefix */
    r = match_rule(t, "beta", "+919812345678", "outbound");
    cr_assert_str_eq(r->name, "india-mobile");
    /* a landline: "+919" does not match, "+91" does */
    r = match_rule(t, "beta", "+911123456789", "outbound");
    cr_assert_str_eq(r->name, "india");
    /* any prefix of a rule's list */
    r = match_rule(t, "acme", "+14155550100", "outbound");
    cr_assert_str_eq(r->name, "india");
    /* nothing else matches: the catch-all */
    r = match_rule(t, "acme", "+442079460018", "outbound");
    cr_assert_str_eq(r->name, "default");
    /* a prefix is compared from the start of the number */
    r = match_rule(t, "beta", "+44919876543", "outbound");
    cr_assert_str_eq(r->name, "default");
    routes_unref(t);
    conf_unref(c);
    tmp_clean(&d, names);
}

Test(routes, name_order_is_lexical, .timeout = 10)
{
    static const char *const names[] = {"9-late.json", "10-early.json", NULL};
    struct tmpdir d;
    struct conf *c = routes_conf();
    char *errors = NULL, *warnings = NULL;
    struct route_table *t;

    tmp_make(&d);
    tmp_write(&d, names[0], "{\"rules\": [{\"name\": \"nine\", \"match\": {}, "
                            "\"vendors\": [\"clouddialer\"]}]}");
    tmp_write(&d, names[1], "{\"rules\": [{\"name\": \"ten\", \"match\": {\"to_prefix\": "
                            "[\"+91\"]}, \"vendors\": [\"clouddialer\"]}]}");
    t = routes_load_dir(d.path, c, &errors, &warnings);
    cr_assert_not_null(t, "%s", errors);
    /* "10-early.json" sorts before "9-late.json" (byte order, not numeric) */
    cr_assert_str_eq(t->rules[0].name, "ten");
    cr_assert_str_eq(match_rule(t, "acme", "+919876543210", "outbound")->name, "ten");
    cr_assert_str_eq(match_rule(t, "acme", "+14155550100", "outbound")->name, "nine");
    routes_unref(t);
    free(warnings);
    conf_unref(c);
    tmp_clean(&d, names);
}

static int
is_hex16(const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])) {
            return 0;
        }
    }
    return i == 16;
}

Test(routes, version_tracks_content, .timeout = 10)
{
    static const char *const names[] = {"10-a.json", "20-b.json", NULL};
    struct tmpdir d;
    struct conf *c = routes_conf();
    char *errors = NULL, v1[17], v2[17];
    struct route_table *t, *ref;

    tmp_make(&d);
    tmp_write(&d, names[0], "{\"rules\": [{\"name\": \"india\", \"match\": {\"to_prefix\": "
                            "[\"+91\"]}, \"vendors\": [\"clouddialer\"]}]}");
    tmp_write(&d, names[1], "{\"rules\": [{\"name\": \"default\", \"match\": {}, \"vendors\": "
                            "[\"clouddialer\"]}]}");
    t = routes_load_dir(d.path, c, &errors, NULL);
    cr_assert_not_null(t, "%s", errors);
    cr_assert(is_hex16(t->version), "version \"%s\" is not 16 hex digits", t->version);
    snprintf(v1, sizeof(v1), "%s", t->version);
    /* ref/unref */
    ref = routes_ref(t);
    cr_assert_eq(ref, t);
    cr_assert_eq(t->refs, 2);
    routes_unref(ref);
    cr_assert_eq(t->refs, 1);
    routes_unref(t);
    routes_unref(NULL);

    /* the same files: the same version */
    t = routes_load_dir(d.path, c, &errors, NULL);
    cr_assert_not_null(t, "%s", errors);
    cr_assert_str_eq(t->version, v1);
    routes_unref(t);

    /* one file changes: the version changes */
    tmp_write(&d, names[0], "{\"rules\": [{\"name\": \"india\", \"match\": {\"to_prefix\": "
                            "[\"+91\", \"+977\"]}, \"vendors\": [\"clouddialer\"]}]}");
    t = routes_load_dir(d.path, c, &errors, NULL);
    cr_assert_not_null(t, "%s", errors);
    cr_assert(is_hex16(t->version));
    snprintf(v2, sizeof(v2), "%s", t->version);
    cr_assert_str_neq(v2, v1);
    routes_unref(t);

    /* a description-only change still changes the content hash */
    tmp_write(&d, names[1], "{\"rules\": [{\"name\": \"default\", \"description\": \"x\", "
                            "\"match\": {}, \"vendors\": [\"clouddialer\"]}]}");
    t = routes_load_dir(d.path, c, &errors, NULL);
    cr_assert_not_null(t, "%s", errors);
    cr_assert_str_neq(t->version, v2);
    routes_unref(t);
    conf_unref(c);
    tmp_clean(&d, names);
}

/* ---------------------------------------------------------------------------
 * Limits: tenant rate limits, vendor caps, the retry budget (limits.h)
 */

Test(conf, limits_default_off_except_documented_vendor_rates, .timeout = 10)
{
    json_t *root = base_conf();
    struct conf *c;

    set_json(root, "vendors.ccai",
             "{\"base_url\": \"https://ccai.test\", \"api_key\": \"u:t\"}");
    c = load_ok(root);
    cr_assert_eq(c->tenants[0].rate_limit.requests_per_s, 0);
    cr_assert_eq(c->tenants[0].rate_limit.calls_per_s, 0);
    cr_assert_eq(conf_vendor_find(c, "clouddialer")->max_calls_per_s, 0);
    cr_assert_eq(conf_vendor_find(c, "clouddialer")->max_concurrent, 0);
    /* CCAI documents 10 requests/s per customer. */
    cr_assert_eq(conf_vendor_find(c, "ccai")->max_calls_per_s, 10);
    cr_assert_eq(conf_vendor_find(c, "ccai")->calls_burst, 10);
    cr_assert_eq(c->retry_budget.ratio_pct, 20);
    cr_assert_eq(c->retry_budget.window_s, 10);
    conf_unref(c);
}

Test(conf, limits_are_read, .timeout = 10)
{
    json_t *root = base_conf();
    struct conf *c;

    set_json(root, "tenants.0.rate_limit",
             "{\"requests_per_s\": 2.5, \"burst\": 5, \"calls_per_s\": 1, \"calls_burst\": 3}");
    set_json(root, "vendors.clouddialer.max_concurrent", "40");
    set_json(root, "vendors.clouddialer.max_calls_per_s", "0.5");
    set_json(root, "retry_budget", "{\"ratio_pct\": 10, \"min_per_s\": 0.5, \"window_s\": 30}");
    c = load_ok(root);
    cr_assert_float_eq(c->tenants[0].rate_limit.requests_per_s, 2.5, 1e-9);
    cr_assert_float_eq(c->tenants[0].rate_limit.burst, 5, 1e-9);
    cr_assert_float_eq(c->tenants[0].rate_limit.calls_burst, 3, 1e-9);
    cr_assert_eq(conf_vendor_find(c, "clouddialer")->max_concurrent, 40);
    cr_assert_float_eq(conf_vendor_find(c, "clouddialer")->max_calls_per_s, 0.5, 1e-9);
    /* A burst below one request would refuse everything: it is at least 1. */
    cr_assert_float_eq(conf_vendor_find(c, "clouddialer")->calls_burst, 1, 1e-9);
    cr_assert_eq(c->retry_budget.ratio_pct, 10);
    cr_assert_float_eq(c->retry_budget.min_per_s, 0.5, 1e-9);
    cr_assert_eq(c->retry_budget.window_s, 30);
    conf_unref(c);
}

Test(conf, limits_bad_values, .timeout = 10)
{
    json_t *root = base_conf();

    set_json(root, "tenants.0.rate_limit", "{\"requests_per_s\": -1}");
    expect_error(root, NAME ": tenants.acme.rate_limit.requests_per_s: must be between");
    root = base_conf();
    set_json(root, "tenants.0.rate_limit", "{\"calls_per_s\": \"5\"}");
    expect_error(root, NAME ": tenants.acme.rate_limit.calls_per_s: must be a number");
    root = base_conf();
    set_json(root, "tenants.0.rate_limit", "{\"per_s\": 5}");
    expect_error(root, NAME ": tenants.acme.rate_limit.per_s: unknown key");
    root = base_conf();
    set_json(root, "tenants.0.rate_limit", "5");
    expect_error(root, NAME ": tenants.acme.rate_limit: must be an object");
    root = base_conf();
    set_json(root, "vendors.clouddialer.max_concurrent", "-2");
    expect_error(root, NAME ": vendors.clouddialer.max_concurrent: must be between");
    root = base_conf();
    set_json(root, "vendors.clouddialer.calls_burst", "0");
    expect_error(root, NAME ": vendors.clouddialer.calls_burst: must be between");
    root = base_conf();
    set_json(root, "retry_budget", "{\"window_s\": 0}");
    expect_error(root, NAME ": retry_budget.window_s: must be between");
    root = base_conf();
    set_json(root, "retry_budget", "{\"ratio\": 5}");
    expect_error(root, NAME ": retry_budget.ratio: unknown key");
}
