/*
 * test_routes.c: the routing table (routes.c) on its own: the rule format
 * and its validation messages, warnings, first-match semantics through the
 * prefix tries, every match condition (time windows with zones and DST
 * included), the weighted order, explain reasons, the JSON view, and a
 * 50,000-prefix table checked against a naive matcher.
 *
 * Every test writes its rule files into a fresh mkdtemp() directory and
 * loads them against a configuration built by conf_load_string(). Nothing
 * here measures time (contrib/bench/routes_bench does). Every test ends
 * with a LeakSanitizer check, so error paths are checked for leaks too.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "conf.h"
#include "routes.h"
#include "util.h"
#include "vendor.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK() __lsan_do_recoverable_leak_check()
#else
#define LEAK_CHECK() 0
#endif

static void
suite_fini(void)
{
    if (LEAK_CHECK() != 0) {
        abort(); /* an assertion in .fini would not fail the test */
    }
}

/* One timeout for all: a test with its own .timeout makes criterion 2.4.1's parallel
 * runner leak a timer record, which LeakSanitizer then reports as a failure. */
TestSuite(routes, .fini = suite_fini, .timeout = 20);

/* ---------------------------------------------------------------------------
 * Fixtures
 */

/* Four vendors, tenants acme and beta. */
static const char conf_text[] =
    "{\"listen\": \"127.0.0.1:8080\","
    " \"vendors\": {\"clouddialer\": {\"base_url\": \"https://cd.test\"},"
    "   \"callerdesk\": {\"base_url\": \"https://cdk.test\"},"
    "   \"ccai\": {\"base_url\": \"https://ccai.test\"},"
    "   \"getdesk\": {\"base_url\": \"https://gd.test\"}},"
    " \"tenants\": ["
    "  {\"id\": \"acme\", \"api_key_sha256\": "
    "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
    "   \"default_country\": \"IN\","
    "   \"webhook_secret\": \"whsec_Y2FsbGdhdGUtZGVtby1zaWduaW5nLXNlY3JldC0zMmI=\","
    "   \"vendors\": [\"clouddialer\"]},"
    "  {\"id\": \"beta\", \"api_key_sha256\": "
    "\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\","
    "   \"default_country\": \"IN\","
    "   \"webhook_secret\": \"whsec_MDEyMzQ1Njc4OWFiY2RlZg==\","
    "   \"vendors\": [\"clouddialer\"]}]}";

static struct conf *
test_conf(void)
{
    char *errors = NULL;
    struct conf *c = conf_load_string(conf_text, "test.json", &errors);

    cr_assert_not_null(c, "test configuration refused:\n%s", errors ? errors : "");
    return c;
}

struct tmpdir {
    char path[64];
};

static void
tmp_make(struct tmpdir *d)
{
    snprintf(d->path, sizeof(d->path), "/tmp/cg-rt-XXXXXX");
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
tmp_clean(const struct tmpdir *d)
{
    DIR *dir = opendir(d->path);
    struct dirent *de;
    char path[512];

    while (dir != NULL && (de = readdir(dir)) != NULL) {
        if (de->d_name[0] != '.') {
            snprintf(path, sizeof(path), "%s/%s", d->path, de->d_name);
            unlink(path);
        }
    }
    if (dir != NULL) {
        closedir(dir);
    }
    rmdir(d->path);
}

/* A loaded table and what loading said. */
struct loaded {
    struct route_table *t;
    struct conf *conf;
    char *errors;
    char *warnings;
};

/* Load files given as name, text, name, text, ..., NULL. */
static struct loaded
load_files(const char *name, ...)
{
    struct loaded l = {0};
    struct tmpdir d;
    va_list ap;

    tmp_make(&d);
    va_start(ap, name);
    for (; name != NULL; name = va_arg(ap, const char *)) {
        tmp_write(&d, name, va_arg(ap, const char *));
    }
    va_end(ap);
    l.conf = test_conf();
    l.t = routes_load_dir(d.path, l.conf, &l.errors, &l.warnings);
    tmp_clean(&d);
    return l;
}

/* One file that must load. */
static struct loaded
load_ok(const char *text)
{
    struct loaded l = load_files("10-test.json", text, NULL);

    cr_assert_not_null(l.t, "refused:\n%s\n%s", l.errors, text);
    cr_assert_null(l.errors);
    return l;
}

static void
loaded_free(struct loaded *l)
{
    routes_unref(l->t);
    conf_unref(l->conf);
    free(l->errors);
    free(l->warnings);
}

/* The errors of one file that must be refused. */
static char *
errors_of(const char *text)
{
    struct loaded l = load_files("10-test.json", text, NULL);
    char *errors;

    cr_assert_null(l.t, "accepted:\n%s", text);
    cr_assert_not_null(l.errors);
    errors = l.errors;
    l.errors = NULL;
    loaded_free(&l);
    return errors;
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

static void
assert_contains(const char *text, const char *want)
{
    cr_assert_not_null(text, "wanted \"%s\", got nothing", want);
    cr_assert_not_null(strstr(text, want), "wanted \"%s\" in:\n%s", want, text);
}

/* One rule file whose only rule r1 has the given match, and the error it must cause. */
static void
expect_match_error(const char *match, const char *want)
{
    char text[2048], *errors;

    snprintf(text, sizeof(text),
             "{\"rules\": [{\"name\": \"r1\", \"match\": %s, \"vendors\": [\"clouddialer\"]}]}",
             match);
    errors = errors_of(text);
    assert_contains(errors, want);
    free(errors);
}

/* The same with the rest of the rule (after name and match) given. */
static void
expect_rule_error(const char *rest, const char *want)
{
    char text[2048], *errors;

    snprintf(text, sizeof(text), "{\"rules\": [{\"name\": \"r1\", \"match\": {}, %s}]}", rest);
    errors = errors_of(text);
    assert_contains(errors, want);
    free(errors);
}

static int64_t
at(const char *rfc3339)
{
    int64_t ms;

    cr_assert_eq(util_parse_time(rfc3339, NULL, &ms), 0, "bad time %s", rfc3339);
    return ms;
}

/* A call with the usual defaults: acme, outbound, no from, no tags, a Monday noon UTC. */
static struct route_call
call(const char *to)
{
    struct route_call c = {.tenant = "acme",
                           .to = to,
                           .type = "outbound",
                           .needs = VENDOR_CAP_OUTBOUND,
                           .at_ms = at("2026-03-02T12:00:00Z")};

    return c;
}

static const char *
name_of(const struct route_table *t, const struct route_call *c)
{
    const struct route_rule *r = routes_match(t, c, NULL);

    return r != NULL ? r->name : "(none)";
}

static const char *
match_to(const struct route_table *t, const char *to)
{
    struct route_call c = call(to);

    return name_of(t, &c);
}

static const char *
match_at(const struct route_table *t, const char *when)
{
    struct route_call c = call("+14155550100");

    c.at_ms = at(when);
    return name_of(t, &c);
}

/* ---------------------------------------------------------------------------
 * Shipped and example tables
 */

Test(routes, shipped_table_and_examples_load)
{
    static const char *const dirs[] = {"/routes", "/routes/examples/contact-center",
                                       "/routes/examples/lcr"};
    struct conf *c = test_conf();
    size_t i;

    for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        char dir[512], *errors = NULL, *warnings = NULL;
        struct route_table *t;

        snprintf(dir, sizeof(dir), "%s%s", CG_SRCDIR, dirs[i]);
        t = routes_load_dir(dir, c, &errors, &warnings);
        cr_assert_not_null(t, "%s refused:\n%s", dir, errors);
        cr_assert_null(warnings, "%s: %s", dir, warnings);
        if (i == 0) {
            cr_assert_eq(t->nrules, 3);
            cr_assert_str_eq(match_to(t, "+919876543210"), "india");
            cr_assert_str_eq(match_to(t, "+14155550100"), "default");
        }
        routes_unref(t);
    }
    conf_unref(c);
}

/* ---------------------------------------------------------------------------
 * First match and prefixes
 */

Test(routes, first_match_in_file_then_name_order)
{
    struct loaded l = load_files(
        "20-b.json",
        "{\"rules\": [{\"name\": \"b-india\", \"match\": {\"to_prefix\": [\"+91\"]}, "
        "\"vendors\": [\"clouddialer\"]}, {\"name\": \"default\", \"match\": {}, "
        "\"vendors\": [\"clouddialer\"]}]}",
        "10-a.json",
        "{\"rules\": [{\"name\": \"a-mobile\", \"match\": {\"to_prefix\": [\"+9198\"]}, "
        "\"vendors\": [\"clouddialer\"]}, {\"name\": \"a-same\", \"match\": {\"to_prefix\": "
        "[\"+9198\"], \"type\": [\"inbound\"]}, \"vendors\": [\"ccai\"]}]}",
        NULL);

    cr_assert_not_null(l.t, "%s", l.errors);
    cr_assert_str_eq(l.t->rules[0].name, "a-mobile");
    cr_assert_str_eq(l.t->rules[0].file, "10-a.json");
    cr_assert_str_eq(l.t->rules[3].name, "default");
    cr_assert_eq(l.t->nprefixes, 3);
    /* same prefix in two rules: the first one wins the tie */
    cr_assert_str_eq(match_to(l.t, "+919812345678"), "a-mobile");
    /* the earlier file's longer prefix comes first; a shorter one later still matches others */
    cr_assert_str_eq(match_to(l.t, "+919712345678"), "b-india");
    cr_assert_str_eq(match_to(l.t, "+449812345678"), "default");
    /* a prefix is compared from the start; a number without "+" meets no prefix rule */
    cr_assert_str_eq(match_to(l.t, "919812345678"), "default");
    cr_assert_str_eq(match_to(l.t, "+91"), "b-india");
    cr_assert_str_eq(match_to(l.t, "+9"), "default");
    loaded_free(&l);
}

Test(routes, earlier_short_prefix_beats_later_long_prefix)
{
    struct loaded l = load_ok(
        "{\"rules\": ["
        "{\"name\": \"us\", \"match\": {\"to_prefix\": [\"+1\"], \"type\": [\"scheduled\"]}, "
        "\"vendors\": [\"ccai\"]},"
        "{\"name\": \"multi\", \"match\": {\"to_prefix\": [\"+44\", \"+9\", \"+919\"]}, "
        "\"vendors\": [\"clouddialer\"]},"
        "{\"name\": \"sf\", \"match\": {\"to_prefix\": [\"+1415\"]}, \"vendors\": [\"ccai\"]},"
        "{\"name\": \"default\", \"match\": {}, \"vendors\": [\"clouddialer\"]}]}");

    /* any prefix of the rule's list; "+9" and "+919" both match, the rule is met once */
    cr_assert_str_eq(match_to(l.t, "+919876543210"), "multi");
    cr_assert_str_eq(match_to(l.t, "+971500000000"), "multi");
    cr_assert_str_eq(match_to(l.t, "+442079460018"), "multi");
    /* "us" is first but wants scheduled calls: the next candidate on the walk wins */
    cr_assert_str_eq(match_to(l.t, "+14155550100"), "sf");
    cr_assert_str_eq(match_to(l.t, "+12125550100"), "default");
    cr_assert_null(l.warnings, "%s", l.warnings);
    loaded_free(&l);
}

Test(routes, from_prefix)
{
    struct loaded l = load_ok(
        "{\"rules\": ["
        "{\"name\": \"from-uk-to-in\", \"match\": {\"to_prefix\": [\"+91\"], \"from_prefix\": "
        "[\"+44\"]}, \"vendors\": [\"callerdesk\"]},"
        "{\"name\": \"from-us\", \"match\": {\"from_prefix\": [\"+1212\", \"+1415\"]}, "
        "\"vendors\": [\"ccai\"]},"
        "{\"name\": \"default\", \"match\": {}, \"vendors\": [\"clouddialer\"]}]}");
    struct route_call c = call("+919876543210");

    cr_assert_eq(l.t->nprefixes, 4);
    /* no from number: from_prefix rules do not match */
    cr_assert_str_eq(name_of(l.t, &c), "default");
    c.from = "+442079460018";
    cr_assert_str_eq(name_of(l.t, &c), "from-uk-to-in");
    c.from = "+14155550100";
    cr_assert_str_eq(name_of(l.t, &c), "from-us");
    c.from = "+13105550100";
    cr_assert_str_eq(name_of(l.t, &c), "default");
    c.to = "+14155550100";
    c.from = "+442079460018";
    cr_assert_str_eq(name_of(l.t, &c), "default");
    c.from = "+12125550100";
    cr_assert_str_eq(name_of(l.t, &c), "from-us");
    loaded_free(&l);
}

/* ---------------------------------------------------------------------------
 * The other conditions
 */

Test(routes, tenant_and_type)
{
    struct loaded l = load_ok(
        "{\"rules\": ["
        "{\"name\": \"beta-only\", \"match\": {\"tenant\": [\"beta\"]}, \"vendors\": [\"ccai\"]},"
        "{\"name\": \"in-sched\", \"match\": {\"type\": [\"inbound\", \"scheduled\"]}, "
        "\"vendors\": [\"ccai\"]},"
        "{\"name\": \"default\", \"match\": {}, \"vendors\": [\"clouddialer\"]}]}");
    struct route_call c = call("+14155550100");

    cr_assert_str_eq(name_of(l.t, &c), "default");
    c.tenant = "beta";
    cr_assert_str_eq(name_of(l.t, &c), "beta-only");
    c.tenant = "acme";
    c.type = "scheduled";
    cr_assert_str_eq(name_of(l.t, &c), "in-sched");
    c.type = "inbound";
    cr_assert_str_eq(name_of(l.t, &c), "in-sched");
    c.type = NULL;
    cr_assert_str_eq(name_of(l.t, &c), "default");
    c.tenant = NULL;
    cr_assert_str_eq(name_of(l.t, &c), "default");
    loaded_free(&l);
}

Test(routes, tags_all_pairs_must_be_equal)
{
    static const char *const k2[] = {"department", "priority"};
    static const char *const v_sales_high[] = {"sales", "high"};
    static const char *const v_sales_low[] = {"sales", "low"};
    static const char *const k1[] = {"department"};
    static const char *const v1[] = {"sales"};
    struct loaded l =
        load_ok("{\"rules\": ["
                "{\"name\": \"sales-high\", \"match\": {\"tags\": {\"department\": \"sales\", "
                "\"priority\": \"high\"}}, \"vendors\": [\"callerdesk\"]},"
                "{\"name\": \"sales\", \"match\": {\"tags\": {\"department\": \"sales\"}}, "
                "\"vendors\": [\"clouddialer\"]},"
                "{\"name\": \"default\", \"match\": {}, \"vendors\": [\"clouddialer\"]}]}");
    struct route_call c = call("+919876543210");

    cr_assert_str_eq(name_of(l.t, &c), "default");
    c.tag_keys = k2;
    c.tag_values = v_sales_high;
    c.ntags = 2;
    cr_assert_str_eq(name_of(l.t, &c), "sales-high");
    c.tag_values = v_sales_low;
    cr_assert_str_eq(name_of(l.t, &c), "sales");
    c.tag_keys = k1;
    c.tag_values = v1;
    c.ntags = 1;
    cr_assert_str_eq(name_of(l.t, &c), "sales");
    loaded_free(&l);
}

Test(routes, requires_is_a_subset_of_needs)
{
    struct loaded l = load_ok(
        "{\"rules\": ["
        "{\"name\": \"rec-parts\", \"match\": {\"requires\": [\"recording\", \"participants\"]}, "
        "\"vendors\": [\"ccai\"]},"
        "{\"name\": \"rec\", \"match\": {\"requires\": [\"recording\"]}, "
        "\"vendors\": [\"clouddialer\"]},"
        "{\"name\": \"default\", \"match\": {}, \"vendors\": [\"clouddialer\"]}]}");
    struct route_call c = call("+919876543210");

    cr_assert_eq(l.t->rules[0].requires, VENDOR_CAP_RECORDING | VENDOR_CAP_PARTICIPANTS);
    cr_assert_str_eq(name_of(l.t, &c), "default");
    c.needs |= VENDOR_CAP_RECORDING;
    cr_assert_str_eq(name_of(l.t, &c), "rec");
    c.needs |= VENDOR_CAP_PARTICIPANTS | VENDOR_CAP_FLAGS;
    cr_assert_str_eq(name_of(l.t, &c), "rec-parts");
    loaded_free(&l);
}

/* ---------------------------------------------------------------------------
 * Time windows
 */

Test(routes, window_in_utc_and_day_sets)
{
    struct loaded l = load_ok(
        "{\"rules\": ["
        "{\"name\": \"weekdays\", \"match\": {\"time\": {\"days\": \"mon-fri\", \"from\": "
        "\"09:00\", \"to\": \"17:30\", \"zone\": \"UTC\"}}, \"vendors\": [\"clouddialer\"]},"
        "{\"name\": \"weekend\", \"match\": {\"time\": {\"days\": \"sat,sun\", \"from\": "
        "\"10:00\", \"to\": \"12:00\", \"zone\": \"UTC\"}}, \"vendors\": [\"clouddialer\"]},"
        "{\"name\": \"mon-wed\", \"match\": {\"time\": [{\"days\": [\"mon\", \"wed\"], "
        "\"from\": \"20:00\", \"to\": \"21:00\", \"zone\": \"UTC\"}, {\"days\": \"fri-mon\", "
        "\"from\": \"23:00\", \"to\": \"24:00\", \"zone\": \"UTC\"}]}, "
        "\"vendors\": [\"clouddialer\"]},"
        "{\"name\": \"daily\", \"match\": {\"time\": {\"from\": \"00:00\", \"to\": \"01:00\", "
        "\"zone\": \"UTC\"}}, \"vendors\": [\"clouddialer\"]},"
        "{\"name\": \"default\", \"match\": {}, \"vendors\": [\"clouddialer\"]}]}");

    /* 2026-03-02 is a Monday */
    cr_assert_str_eq(match_at(l.t, "2026-03-02T09:00:00Z"), "weekdays");
    cr_assert_str_eq(match_at(l.t, "2026-03-06T17:29:59Z"), "weekdays");
    cr_assert_str_eq(match_at(l.t, "2026-03-06T17:30:00Z"), "default"); /* to is exclusive */
    cr_assert_str_eq(match_at(l.t, "2026-03-02T08:59:59Z"), "default");
    cr_assert_str_eq(match_at(l.t, "2026-03-07T09:30:00Z"), "default"); /* Saturday */
    cr_assert_str_eq(match_at(l.t, "2026-03-07T11:00:00Z"), "weekend");
    cr_assert_str_eq(match_at(l.t, "2026-03-08T10:00:00Z"), "weekend"); /* Sunday */
    cr_assert_str_eq(match_at(l.t, "2026-03-02T20:30:00Z"), "mon-wed");
    cr_assert_str_eq(match_at(l.t, "2026-03-03T20:30:00Z"), "default"); /* Tuesday */
    cr_assert_str_eq(match_at(l.t, "2026-03-04T20:30:00Z"), "mon-wed");
    /* "fri-mon" wraps over the weekend; "24:00" ends at midnight */
    cr_assert_str_eq(match_at(l.t, "2026-03-06T23:59:59Z"), "mon-wed");
    cr_assert_str_eq(match_at(l.t, "2026-03-02T23:30:00Z"), "mon-wed");
    cr_assert_str_eq(match_at(l.t, "2026-03-03T23:30:00Z"), "default");
    cr_assert_str_eq(match_at(l.t, "2026-03-03T00:30:00Z"), "daily");
    cr_assert_eq(l.t->rules[2].nwindows, 2);
    cr_assert_eq(l.t->rules[2].windows[1].days, 0x71); /* fri, sat, sun, mon */
    cr_assert_eq(l.t->rules[2].windows[1].to_min, 1440);
    loaded_free(&l);
}

Test(routes, window_across_midnight_belongs_to_its_start_day)
{
    struct loaded l = load_ok(
        "{\"rules\": ["
        "{\"name\": \"monday-night\", \"match\": {\"time\": {\"days\": [\"mon\"], \"from\": "
        "\"22:00\", \"to\": \"06:00\", \"zone\": \"UTC\"}}, \"vendors\": [\"clouddialer\"]},"
        "{\"name\": \"default\", \"match\": {}, \"vendors\": [\"clouddialer\"]}]}");

    cr_assert_str_eq(match_at(l.t, "2026-03-02T22:00:00Z"), "monday-night");
    cr_assert_str_eq(match_at(l.t, "2026-03-03T03:00:00Z"), "monday-night"); /* Tue 03:00 */
    cr_assert_str_eq(match_at(l.t, "2026-03-03T05:59:59Z"), "monday-night");
    cr_assert_str_eq(match_at(l.t, "2026-03-03T06:00:00Z"), "default");
    cr_assert_str_eq(match_at(l.t, "2026-03-02T03:00:00Z"), "default"); /* Mon 03:00: Sunday's */
    cr_assert_str_eq(match_at(l.t, "2026-03-02T21:59:00Z"), "default");
    cr_assert_str_eq(match_at(l.t, "2026-03-03T22:30:00Z"), "default"); /* Tue night */
    loaded_free(&l);
}

Test(routes, window_in_a_zone)
{
    struct loaded l = load_ok(
        "{\"rules\": ["
        "{\"name\": \"india-hours\", \"match\": {\"time\": {\"days\": \"mon-sat\", \"from\": "
        "\"09:00\", \"to\": \"21:00\", \"zone\": \"Asia/Kolkata\"}}, \"vendors\": "
        "[\"clouddialer\"]},"
        "{\"name\": \"india-monday-early\", \"match\": {\"time\": {\"days\": \"mon\", "
        "\"from\": \"00:00\", \"to\": \"01:00\", \"zone\": \"Asia/Kolkata\"}}, "
        "\"vendors\": [\"clouddialer\"]},"
        "{\"name\": \"default\", \"match\": {}, \"vendors\": [\"clouddialer\"]}]}");

    /* Kolkata is UTC+05:30 all year */
    cr_assert_str_eq(match_at(l.t, "2026-03-02T03:29:00Z"), "default");
    cr_assert_str_eq(match_at(l.t, "2026-03-02T03:30:00Z"), "india-hours");
    cr_assert_str_eq(match_at(l.t, "2026-03-02T15:29:00Z"), "india-hours");
    cr_assert_str_eq(match_at(l.t, "2026-03-02T15:30:00Z"), "default");
    /* Saturday 20:00 local is Saturday 14:30 UTC; Sunday 10:00 local is not in */
    cr_assert_str_eq(match_at(l.t, "2026-03-07T14:30:00Z"), "india-hours");
    cr_assert_str_eq(match_at(l.t, "2026-03-08T04:30:00Z"), "default");
    /* Monday 00:30 local is still Sunday 19:00 UTC: the local day counts */
    cr_assert_str_eq(match_at(l.t, "2026-03-08T19:00:00Z"), "india-monday-early");
    cr_assert_str_eq(match_at(l.t, "2026-03-09T19:00:00Z"), "default"); /* Tuesday 00:30 */
    cr_assert_str_eq(match_at(l.t, "2026-03-09T00:00:00Z"), "default"); /* Monday 05:30 */
    loaded_free(&l);
}

Test(routes, dst_spring_forward_new_york)
{
    /* 2026-03-08 (a Sunday): 02:00 EST (07:00Z) becomes 03:00 EDT; 02:00-02:59 do not exist */
    struct loaded l =
        load_ok("{\"rules\": ["
                "{\"name\": \"half-past-two\", \"match\": {\"time\": {\"days\": \"sun\", \"from\": "
                "\"02:30\", \"to\": \"02:45\", \"zone\": \"America/New_York\"}}, \"vendors\": "
                "[\"clouddialer\"]},"
                "{\"name\": \"one-to-three\", \"match\": {\"time\": {\"days\": \"sun\", \"from\": "
                "\"01:00\", \"to\": \"03:00\", \"zone\": \"America/New_York\"}}, \"vendors\": "
                "[\"clouddialer\"]},"
                "{\"name\": \"three-on\", \"match\": {\"time\": {\"days\": \"sun\", \"from\": "
                "\"03:00\", \"to\": \"04:00\", \"zone\": \"America/New_York\"}}, \"vendors\": "
                "[\"clouddialer\"]},"
                "{\"name\": \"default\", \"match\": {}, \"vendors\": [\"clouddialer\"]}]}");

    cr_assert_str_eq(match_at(l.t, "2026-03-08T05:59:59Z"), "default");      /* 00:59 EST */
    cr_assert_str_eq(match_at(l.t, "2026-03-08T06:00:00Z"), "one-to-three"); /* 01:00 EST */
    cr_assert_str_eq(match_at(l.t, "2026-03-08T06:59:59Z"), "one-to-three"); /* 01:59 EST */
    /* one real hour later it is already 03:00 EDT: the window had only one hour */
    cr_assert_str_eq(match_at(l.t, "2026-03-08T07:00:00Z"), "three-on");
    cr_assert_str_eq(match_at(l.t, "2026-03-08T07:30:00Z"), "three-on"); /* 03:30, not 02:30 */
    cr_assert_str_eq(match_at(l.t, "2026-03-08T08:00:00Z"), "default");  /* 04:00 EDT */
    /* a week earlier, EST all day: 07:30Z is 02:30 local */
    cr_assert_str_eq(match_at(l.t, "2026-03-01T07:30:00Z"), "half-past-two");
    cr_assert_str_eq(match_at(l.t, "2026-03-01T07:59:00Z"), "one-to-three");
    /* and back on the transition day once more: the cached offsets follow the instant */
    cr_assert_str_eq(match_at(l.t, "2026-03-08T06:45:00Z"), "one-to-three");
    cr_assert_str_eq(match_at(l.t, "2026-03-08T07:14:59Z"), "three-on");
    loaded_free(&l);
}

Test(routes, dst_fall_back_and_london)
{
    struct loaded l = load_ok(
        "{\"rules\": ["
        "{\"name\": \"ny-one-am\", \"match\": {\"time\": {\"days\": \"sun\", \"from\": "
        "\"01:00\", \"to\": \"02:00\", \"zone\": \"America/New_York\"}}, \"vendors\": "
        "[\"clouddialer\"]},"
        "{\"name\": \"london-office\", \"match\": {\"time\": {\"days\": \"mon-fri\", \"from\": "
        "\"09:00\", \"to\": \"17:00\", \"zone\": \"Europe/London\"}}, \"vendors\": "
        "[\"clouddialer\"]},"
        "{\"name\": \"default\", \"match\": {}, \"vendors\": [\"clouddialer\"]}]}");

    /* 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:00-01:59 happens twice */
    cr_assert_str_eq(match_at(l.t, "2026-11-01T04:59:00Z"), "default");   /* 00:59 EDT */
    cr_assert_str_eq(match_at(l.t, "2026-11-01T05:30:00Z"), "ny-one-am"); /* 01:30 EDT */
    cr_assert_str_eq(match_at(l.t, "2026-11-01T06:30:00Z"), "ny-one-am"); /* 01:30 EST */
    cr_assert_str_eq(match_at(l.t, "2026-11-01T07:00:00Z"), "default");   /* 02:00 EST */
    /* London: GMT until 2026-03-29 01:00Z, then BST (UTC+1) */
    cr_assert_str_eq(match_at(l.t, "2026-03-27T08:30:00Z"), "default");       /* 08:30 GMT */
    cr_assert_str_eq(match_at(l.t, "2026-03-27T09:00:00Z"), "london-office"); /* 09:00 GMT */
    cr_assert_str_eq(match_at(l.t, "2026-03-27T16:30:00Z"), "london-office");
    cr_assert_str_eq(match_at(l.t, "2026-03-30T08:30:00Z"), "london-office"); /* 09:30 BST */
    cr_assert_str_eq(match_at(l.t, "2026-03-30T16:30:00Z"), "default");       /* 17:30 BST */
    cr_assert_str_eq(match_at(l.t, "2026-03-30T07:59:00Z"), "default");       /* 08:59 BST */
    loaded_free(&l);
}

/* ---------------------------------------------------------------------------
 * Weighted order
 */

Test(routes, weighted_split_follows_the_weights)
{
    struct loaded l =
        load_ok("{\"rules\": ["
                "{\"name\": \"split\", \"match\": {}, \"strategy\": \"weighted\", \"vendors\": "
                "[{\"vendor\": \"clouddialer\", \"weight\": 70}, {\"vendor\": \"callerdesk\", "
                "\"weight\": 30}]},"
                "{\"name\": \"three\", \"match\": {}, \"strategy\": \"weighted\", \"vendors\": "
                "[{\"vendor\": \"clouddialer\", \"weight\": 500}, {\"vendor\": \"callerdesk\", "
                "\"weight\": 300}, \"ccai\", {\"vendor\": \"getdesk\", \"weight\": 199}]}]}");
    const struct route_rule *split = &l.t->rules[0], *three = &l.t->rules[1];
    size_t order[8], i, n, first[4] = {0}, second_after_0[4] = {0}, after_0 = 0;
    char id[64];

    cr_assert_eq(split->strategy, ROUTE_WEIGHTED);
    cr_assert_eq(split->vendors[0].weight, 70);
    cr_assert_eq(three->vendors[2].weight, 1); /* a plain name weighs 1 */
    for (i = 0; i < 10000; i++) {
        snprintf(id, sizeof(id), "call_%zu", i);
        n = routes_order(split, id, order, 8);
        cr_assert_eq(n, 2);
        cr_assert_neq(order[0], order[1]);
        first[order[0]]++;
    }
    cr_assert(first[0] >= 6800 && first[0] <= 7200, "clouddialer first %zu of 10000", first[0]);
    memset(first, 0, sizeof(first));
    for (i = 0; i < 10000; i++) {
        unsigned seen = 0;
        size_t k;
        snprintf(id, sizeof(id), "01J%06zuXYZ", i);
        n = routes_order(three, id, order, 8);
        cr_assert_eq(n, 4);
        for (k = 0; k < n; k++) {
            seen |= 1u << order[k];
        }
        cr_assert_eq(seen, 0xf, "not a permutation");
        first[order[0]]++;
        if (order[0] == 0) {
            after_0++;
            second_after_0[order[1]]++;
        }
    }
    /* 500/1000, 300/1000, 1/1000, 199/1000, within 2 percentage points */
    cr_assert(first[0] >= 4800 && first[0] <= 5200, "%zu", first[0]);
    cr_assert(first[1] >= 2800 && first[1] <= 3200, "%zu", first[1]);
    cr_assert(first[2] <= 200, "%zu", first[2]);
    cr_assert(first[3] >= 1790 && first[3] <= 2190, "%zu", first[3]);
    /* the fallback is drawn by weight among the rest: 300/500 after clouddialer */
    cr_assert(second_after_0[1] * 100 >= after_0 * 56 && second_after_0[1] * 100 <= after_0 * 64,
              "%zu of %zu", second_after_0[1], after_0);
    loaded_free(&l);
}

Test(routes, order_is_deterministic_per_call_id)
{
    struct loaded l =
        load_ok("{\"rules\": ["
                "{\"name\": \"split\", \"match\": {}, \"strategy\": \"weighted\", \"vendors\": "
                "[{\"vendor\": \"clouddialer\", \"weight\": 1}, {\"vendor\": \"callerdesk\", "
                "\"weight\": 1}, {\"vendor\": \"ccai\", \"weight\": 1}]},"
                "{\"name\": \"prio\", \"match\": {}, \"vendors\": [\"ccai\", {\"vendor\": "
                "\"clouddialer\", \"weight\": 9}, \"callerdesk\"]},"
                "{\"name\": \"busy\", \"match\": {}, \"strategy\": \"least_busy\", \"vendors\": "
                "[\"callerdesk\", \"ccai\"]}]}");
    size_t a[4], b[4], i, n, differs = 0;
    char id[32];

    for (i = 0; i < 200; i++) {
        snprintf(id, sizeof(id), "call-%zu", i);
        n = routes_order(&l.t->rules[0], id, a, 4);
        cr_assert_eq(n, 3);
        cr_assert_eq(routes_order(&l.t->rules[0], id, b, 4), 3);
        cr_assert_arr_eq(a, b, 3 * sizeof(size_t), "call id %s gave two orders", id);
        differs += a[0] != 0;
    }
    cr_assert(differs > 0, "the weighted first pick never changes");
    /* max bounds the output: the first of a truncated order is the same pick */
    cr_assert_eq(routes_order(&l.t->rules[0], "call-7", b, 1), 1);
    routes_order(&l.t->rules[0], "call-7", a, 4);
    cr_assert_eq(a[0], b[0]);
    cr_assert_eq(routes_order(&l.t->rules[0], NULL, a, 4), 3);
    /* priority and least_busy keep the rule's order; their weights are 1 */
    cr_assert_eq(routes_order(&l.t->rules[1], "x", a, 4), 3);
    cr_assert(a[0] == 0 && a[1] == 1 && a[2] == 2);
    cr_assert_eq(l.t->rules[1].vendors[1].weight, 1);
    cr_assert_eq(routes_order(&l.t->rules[2], "x", a, 1), 1);
    cr_assert_eq(a[0], 0);
    cr_assert_eq(l.t->rules[2].strategy, ROUTE_LEAST_BUSY);
    loaded_free(&l);
}

/* ---------------------------------------------------------------------------
 * Explain and JSON
 */

Test(routes, why_lists_each_rejected_rule_with_its_reason)
{
    static const char *const keys[] = {"department"};
    static const char *const values[] = {"support"};
    struct loaded l = load_ok(
        "{\"rules\": ["
        "{\"name\": \"r-tenant\", \"match\": {\"tenant\": [\"beta\"], \"to_prefix\": [\"+91\"]}, "
        "\"vendors\": [\"clouddialer\"]},"
        "{\"name\": \"r-to\", \"match\": {\"to_prefix\": [\"+44\"]}, \"vendors\": "
        "[\"clouddialer\"]},"
        "{\"name\": \"r-from\", \"match\": {\"to_prefix\": [\"+91\"], \"from_prefix\": "
        "[\"+1\"]}, \"vendors\": [\"clouddialer\"]},"
        "{\"name\": \"r-type\", \"match\": {\"type\": [\"inbound\"]}, \"vendors\": [\"ccai\"]},"
        "{\"name\": \"r-tags\", \"match\": {\"tags\": {\"department\": \"sales\"}}, "
        "\"vendors\": [\"clouddialer\"]},"
        "{\"name\": \"r-time\", \"match\": {\"to_prefix\": [\"+9198\"], \"time\": {\"from\": "
        "\"00:00\", \"to\": \"01:00\", \"zone\": \"UTC\"}}, \"vendors\": [\"clouddialer\"]},"
        "{\"name\": \"r-requires\", \"match\": {\"requires\": [\"flags\"]}, \"vendors\": "
        "[\"clouddialer\"]},"
        "{\"name\": \"hit\", \"match\": {\"to_prefix\": [\"+919\"]}, \"vendors\": "
        "[\"clouddialer\"]},"
        "{\"name\": \"after\", \"match\": {\"tenant\": [\"beta\"]}, \"vendors\": "
        "[\"clouddialer\"]},"
        "{\"name\": \"default\", \"match\": {}, \"vendors\": [\"clouddialer\"]}]}");
    static const char *const want[][2] = {{"r-tenant", "tenant"}, {"r-from", "from_prefix"},
                                          {"r-type", "type"},     {"r-tags", "tags"},
                                          {"r-time", "time"},     {"r-requires", "requires"}};
    struct route_call c = call("+919876543210");
    json_t *why = json_array();
    const struct route_rule *r;
    size_t i;

    c.from = "+442079460018";
    c.tag_keys = keys;
    c.tag_values = values;
    c.ntags = 1;
    r = routes_match(l.t, &c, why);
    cr_assert_not_null(r);
    cr_assert_str_eq(r->name, "hit");
    /* r-to is skipped by the trie: it need not (and does not) appear */
    cr_assert_eq(json_array_size(why), 6, "%s", json_dumps(why, 0));
    for (i = 0; i < 6; i++) {
        json_t *o = json_array_get(why, i);
        cr_assert_eq(json_object_size(o), 2);
        cr_assert_str_eq(json_string_value(json_object_get(o, "rule")), want[i][0]);
        cr_assert_str_eq(json_string_value(json_object_get(o, "reason")), want[i][1]);
    }
    json_decref(why);
    loaded_free(&l);
}

Test(routes, json_shows_every_rule_in_full)
{
    struct loaded l = load_ok(
        "{\"rules\": ["
        "{\"name\": \"full\", \"description\": \"everything at once\", \"match\": "
        "{\"tenant\": [\"acme\"], \"to_prefix\": [\"+91\"], \"from_prefix\": [\"+44\"], "
        "\"type\": [\"outbound\"], \"tags\": {\"department\": \"sales\"}, \"time\": {\"days\": "
        "\"mon-fri\", \"from\": \"09:00\", \"to\": \"24:00\", \"zone\": \"Asia/Kolkata\"}, "
        "\"requires\": [\"recording\", \"outbound\"]}, \"strategy\": \"weighted\", "
        "\"vendors\": [{\"vendor\": \"clouddialer\", \"weight\": 70}, \"callerdesk\"], "
        "\"require_agent_available\": true},"
        "{\"name\": \"default\", \"match\": {}, \"vendors\": [\"clouddialer\"]}]}");
    json_t *j = routes_json(l.t), *rules, *r, *m, *w, *expect;
    json_error_t jerr;

    cr_assert_str_eq(json_string_value(json_object_get(j, "version")), l.t->version);
    rules = json_object_get(j, "rules");
    cr_assert_eq(json_array_size(rules), 2);
    r = json_array_get(rules, 0);
    cr_assert_str_eq(json_string_value(json_object_get(r, "name")), "full");
    cr_assert_str_eq(json_string_value(json_object_get(r, "file")), "10-test.json");
    cr_assert_str_eq(json_string_value(json_object_get(r, "description")), "everything at once");
    cr_assert_str_eq(json_string_value(json_object_get(r, "strategy")), "weighted");
    cr_assert(json_is_true(json_object_get(r, "require_agent_available")));
    expect = json_loads("[{\"vendor\": \"clouddialer\", \"weight\": 70}, "
                        "{\"vendor\": \"callerdesk\", \"weight\": 1}]",
                        0, &jerr);
    cr_assert(json_equal(json_object_get(r, "vendors"), expect));
    json_decref(expect);
    m = json_object_get(r, "match");
    expect = json_loads("{\"tenant\": [\"acme\"], \"to_prefix\": [\"+91\"], \"from_prefix\": "
                        "[\"+44\"], \"type\": [\"outbound\"], \"tags\": {\"department\": "
                        "\"sales\"}, \"time\": [{\"days\": [\"mon\", \"tue\", \"wed\", \"thu\", "
                        "\"fri\"], \"from\": \"09:00\", \"to\": \"24:00\", \"zone\": "
                        "\"Asia/Kolkata\"}], \"requires\": [\"outbound\", \"recording\"]}",
                        0, &jerr);
    cr_assert(json_equal(m, expect), "%s", json_dumps(m, JSON_SORT_KEYS));
    json_decref(expect);
    w = json_array_get(rules, 1);
    cr_assert(json_is_null(json_object_get(w, "description")));
    cr_assert_eq(json_object_size(json_object_get(w, "match")), 0);
    cr_assert_str_eq(json_string_value(json_object_get(w, "strategy")), "priority");
    cr_assert(json_is_false(json_object_get(w, "require_agent_available")));
    json_decref(j);
    loaded_free(&l);
}

/* The JSON view is itself a valid rule file that loads to the same table. */
Test(routes, json_round_trips)
{
    struct loaded l = load_ok(
        "{\"rules\": ["
        "{\"name\": \"x\", \"match\": {\"to_prefix\": [\"+91\"], \"time\": [{\"days\": "
        "\"sat,sun\", \"from\": \"22:00\", \"to\": \"06:00\", \"zone\": \"Europe/London\"}], "
        "\"requires\": [\"scheduled\"]}, \"strategy\": \"least_busy\", \"vendors\": "
        "[\"clouddialer\", \"ccai\"]},"
        "{\"name\": \"default\", \"match\": {}, \"vendors\": [\"clouddialer\"]}]}");
    json_t *j = routes_json(l.t), *file, *rules, *r, *j2;
    struct loaded again;
    char *text;
    size_t i;

    /* the file is the rules without what loading adds */
    file = json_deep_copy(json_object_get(j, "rules"));
    json_array_foreach(file, i, r) {
        json_object_del(r, "file");
        if (json_is_null(json_object_get(r, "description"))) {
            json_object_del(r, "description");
        }
    }
    rules = json_pack("{s:o}", "rules", file);
    text = json_dumps(rules, 0);
    json_decref(rules);
    again = load_ok(text);
    j2 = routes_json(again.t);
    json_object_del(j2, "version");
    json_object_del(j, "version");
    cr_assert(json_equal(j, j2), "%s", text);
    json_decref(j2);
    free(text);
    json_decref(j);
    loaded_free(&again);
    loaded_free(&l);
}

/* ---------------------------------------------------------------------------
 * Validation
 */

Test(routes, rule_level_errors)
{
    expect_rule_error("\"vendors\": [\"clouddialer\"], \"colour\": 1",
                      "/10-test.json: r1: colour: unknown key");
    expect_rule_error("\"vendors\": [\"clouddialer\"], \"strategy\": \"random\"",
                      "/10-test.json: r1: strategy: must be \"priority\", \"weighted\" or "
                      "\"least_busy\"");
    expect_rule_error("\"vendors\": [\"clouddialer\"], \"strategy\": 2",
                      "r1: strategy: must be \"priority\", \"weighted\" or \"least_busy\"");
    expect_rule_error("\"vendors\": [\"clouddialer\"], \"description\": 5",
                      "r1: description: must be a string");
    expect_rule_error("\"vendors\": [\"clouddialer\"], \"require_agent_available\": \"yes\"",
                      "r1: require_agent_available: must be true or false");
    expect_rule_error("\"vendors\": [\"clouddialer\", \"nope\"]",
                      "r1: vendors: \"nope\" is not a configured vendor");
    expect_rule_error("\"vendors\": [\"clouddialer\", {\"vendor\": \"clouddialer\"}]",
                      "r1: vendors: \"clouddialer\" is listed twice");
    expect_rule_error("\"vendors\": []", "r1: vendors: must be a non-empty array of strings");
    expect_rule_error("\"strategy\": \"weighted\", \"vendors\": []",
                      "r1: vendors: must be a non-empty array");
    expect_rule_error("\"strategy\": \"weighted\"", "r1: vendors: is required");
    expect_rule_error("\"vendors\": [\"\"]", "r1: vendors[0]: must be a non-empty string");
    expect_rule_error("\"vendors\": [7]",
                      "r1: vendors[0]: must be a vendor name or {\"vendor\": name, \"weight\": "
                      "1 to 1000}");
    expect_rule_error("\"vendors\": [{\"weight\": 5}]",
                      "r1: vendors[0].vendor: is required (a vendor name)");
    expect_rule_error("\"vendors\": [{\"vendor\": \"ccai\", \"share\": 5}]",
                      "r1: vendors[0]: share: unknown key");
}

Test(routes, bad_weights)
{
    static const char *const bad[] = {"0", "1001", "-5", "\"50\"", "2.5", "null"};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char rest[256];
        snprintf(rest, sizeof(rest),
                 "\"strategy\": \"weighted\", \"vendors\": [\"ccai\", {\"vendor\": "
                 "\"clouddialer\", \"weight\": %s}]",
                 bad[i]);
        expect_rule_error(rest, "r1: vendors[1].weight: must be an integer from 1 to 1000");
    }
    /* weights are checked whatever the strategy */
    expect_rule_error("\"vendors\": [{\"vendor\": \"clouddialer\", \"weight\": 0}]",
                      "r1: vendors[0].weight: must be an integer from 1 to 1000");
}

Test(routes, names)
{
    char *errors = errors_of("{\"rules\": [{\"match\": {\"colour\": 1}}]}");

    /* an unnamed rule is named by its position, and its other mistakes are still reported */
    assert_contains(errors, "/10-test.json: rules[0]: name: is required");
    assert_contains(errors, "/10-test.json: rules[0]: match: colour: unknown key");
    assert_contains(errors, "/10-test.json: rules[0]: vendors: is required");
    cr_assert_eq(count_lines(errors), 3, "%s", errors);
    free(errors);
    errors = errors_of("{\"rules\": [{\"name\": \"\", \"match\": {}, \"vendors\": [\"ccai\"]}, "
                       "{\"name\": 3, \"match\": {}, \"vendors\": [\"ccai\"]}]}");
    assert_contains(errors, "rules[0]: name: must be a non-empty string");
    assert_contains(errors, "rules[1]: name: must be a non-empty string");
    free(errors);
    errors = errors_of("{\"rules\": [{\"name\": \"a\", \"match\": {}, \"vendors\": [\"ccai\"]}, "
                       "{\"name\": \"b\", \"match\": {}, \"vendors\": [\"ccai\"]}, "
                       "{\"name\": \"a\", \"match\": {}, \"vendors\": [\"ccai\"]}]}");
    assert_contains(errors, "/10-test.json: a: name: duplicate rule name");
    cr_assert_eq(count_lines(errors), 1, "%s", errors);
    free(errors);
}

Test(routes, match_errors)
{
    expect_match_error("{\"colour\": [\"red\"]}", "/10-test.json: r1: match: colour: unknown key");
    expect_match_error("[]", "r1: match: is required (an object; {} matches every call)");
    expect_match_error("{\"tenant\": [\"acme\", \"nobody\"]}",
                       "r1: match.tenant: unknown tenant \"nobody\"");
    expect_match_error("{\"to_prefix\": [\"+91\", \"91\"]}",
                       "r1: match.to_prefix: \"91\" is not \"+\" and 1 to 15 digits");
    expect_match_error("{\"to_prefix\": [\"+1234567890123456\"]}",
                       "r1: match.to_prefix: \"+1234567890123456\" is not \"+\" and 1 to 15 "
                       "digits");
    expect_match_error("{\"from_prefix\": [\"+4a\"]}",
                       "r1: match.from_prefix: \"+4a\" is not \"+\" and 1 to 15 digits");
    expect_match_error("{\"from_prefix\": \"+44\"}",
                       "r1: from_prefix: must be a non-empty array of strings");
    expect_match_error("{\"type\": [\"outbound\", \"robocall\"]}",
                       "r1: match.type: \"robocall\" is not outbound, inbound or scheduled");
    expect_match_error("{\"tags\": {\"department\": 5}}",
                       "r1: match.tags.department: must be a string");
    expect_match_error("{\"tags\": [\"sales\"]}",
                       "r1: match.tags: must be a non-empty object of strings");
    expect_match_error("{\"tags\": {}}", "r1: match.tags: must be a non-empty object of strings");
    expect_match_error("{\"requires\": [\"recording\", \"telepathy\"]}",
                       "r1: match.requires: \"telepathy\" is not one of outbound, inbound, "
                       "scheduled, participants, recording, flags");
    expect_match_error("{\"requires\": []}", "r1: requires: must be a non-empty array of strings");
}

Test(routes, time_errors)
{
    static const char *const bad_days[] = {"\"weekdays\"", "\"mon-\"",     "\"Mon\"", "[]",
                                           "[\"mon\", 3]", "\"mon,,tue\"", "5"};
    size_t i;

    for (i = 0; i < sizeof(bad_days) / sizeof(bad_days[0]); i++) {
        char match[256];
        snprintf(match, sizeof(match),
                 "{\"time\": {\"days\": %s, \"from\": \"09:00\", \"to\": \"17:00\", \"zone\": "
                 "\"UTC\"}}",
                 bad_days[i]);
        expect_match_error(match, "r1: match.time.days: must be \"daily\", a range like "
                                  "\"mon-fri\", a list like \"sat,sun\" or an array like "
                                  "[\"mon\", \"wed\"]");
    }
    expect_match_error("{\"time\": {\"from\": \"9:00\", \"to\": \"17:00\", \"zone\": \"UTC\"}}",
                       "r1: match.time.from: \"9:00\" is not HH:MM (00:00 to 23:59)");
    expect_match_error("{\"time\": {\"from\": \"24:00\", \"to\": \"17:00\", \"zone\": \"UTC\"}}",
                       "r1: match.time.from: \"24:00\" is not HH:MM (00:00 to 23:59)");
    expect_match_error("{\"time\": {\"from\": \"09:00\", \"to\": \"17:60\", \"zone\": \"UTC\"}}",
                       "r1: match.time.to: \"17:60\" is not HH:MM (00:00 to 24:00)");
    expect_match_error("{\"time\": {\"from\": \"09:00\", \"to\": \"24:01\", \"zone\": \"UTC\"}}",
                       "r1: match.time.to: \"24:01\" is not HH:MM (00:00 to 24:00)");
    expect_match_error("{\"time\": {\"from\": 900, \"to\": \"17:00\", \"zone\": \"UTC\"}}",
                       "r1: match.time.from: must be a string \"HH:MM\"");
    expect_match_error("{\"time\": {\"to\": \"17:00\", \"zone\": \"UTC\"}}",
                       "r1: match.time.from: is required (\"HH:MM\")");
    expect_match_error("{\"time\": {\"from\": \"09:00\", \"to\": \"09:00\", \"zone\": \"UTC\"}}",
                       "r1: match.time: from and to are equal: an empty window");
    expect_match_error("{\"time\": {\"from\": \"09:00\", \"to\": \"17:00\", \"zone\": "
                       "\"Mars/Olympus\"}}",
                       "r1: match.time.zone: \"Mars/Olympus\" is not a known IANA time zone");
    expect_match_error("{\"time\": {\"from\": \"09:00\", \"to\": \"17:00\", \"zone\": "
                       "\"Europe\"}}",
                       "r1: match.time.zone: \"Europe\" is not a known IANA time zone");
    expect_match_error("{\"time\": {\"from\": \"09:00\", \"to\": \"17:00\"}}",
                       "r1: match.time.zone: is required (an IANA zone such as "
                       "\"Asia/Kolkata\")");
    expect_match_error("{\"time\": {\"from\": \"09:00\", \"to\": \"17:00\", \"zone\": \"UTC\", "
                       "\"tz\": \"UTC\"}}",
                       "r1: match.time: tz: unknown key");
    expect_match_error("{\"time\": [{\"from\": \"09:00\", \"to\": \"17:00\", \"zone\": \"UTC\"}, "
                       "{\"from\": \"09:00\", \"to\": \"17:00\", \"zone\": \"Nowhere\"}]}",
                       "r1: match.time[1].zone: \"Nowhere\" is not a known IANA time zone");
    expect_match_error("{\"time\": [\"09:00-17:00\"]}",
                       "r1: match.time[0]: must be an object {\"days\", \"from\", \"to\", "
                       "\"zone\"}");
    expect_match_error("{\"time\": []}", "r1: match.time: must be a window {\"days\", \"from\", "
                                         "\"to\", \"zone\"} or a non-empty array of them");
    expect_match_error("{\"time\": \"09:00-17:00\"}", "r1: match.time: must be a window");
}

Test(routes, every_error_is_reported_and_nothing_loads)
{
    struct loaded l = load_files(
        "10-a.json",
        "{\"rules\": [{\"name\": \"ok\", \"match\": {}, \"vendors\": [\"clouddialer\"]}]}",
        "20-b.json",
        "{\"rules\": [{\"name\": \"ok\", \"match\": {\"to_prefix\": [\"x\"], \"time\": "
        "{\"from\": \"09:00\", \"to\": \"09:00\", \"zone\": \"UTC\"}}, \"strategy\": \"fast\", "
        "\"vendors\": [\"nope\"]}]}",
        NULL);

    cr_assert_null(l.t);
    assert_contains(l.errors, "/20-b.json: ok: name: duplicate rule name");
    assert_contains(l.errors, "/20-b.json: ok: match.to_prefix: \"x\"");
    assert_contains(l.errors, "/20-b.json: ok: match.time: from and to are equal");
    assert_contains(l.errors, "/20-b.json: ok: strategy: must be");
    assert_contains(l.errors, "/20-b.json: ok: vendors: \"nope\" is not a configured vendor");
    cr_assert_eq(count_lines(l.errors), 5, "%s", l.errors);
    cr_assert_null(l.warnings);
    loaded_free(&l);
}

/* ---------------------------------------------------------------------------
 * Warnings
 */

static void
expect_shadow(const char *rules, const char *want)
{
    char text[4096];
    struct loaded l;

    snprintf(text, sizeof(text),
             "{\"rules\": [%s, {\"name\": \"default\", \"match\": {}, "
             "\"vendors\": [\"clouddialer\"]}]}",
             rules);
    l = load_ok(text);
    if (want == NULL) {
        cr_assert_null(l.warnings, "unexpected: %s\nfor %s", l.warnings, rules);
    } else {
        assert_contains(l.warnings, want);
        cr_assert_eq(count_lines(l.warnings), 1, "%s", l.warnings);
    }
    loaded_free(&l);
}

Test(routes, shadowed_rules_warn)
{
    /* a shorter prefix first */
    expect_shadow("{\"name\": \"india\", \"match\": {\"to_prefix\": [\"+91\"]}, \"vendors\": "
                  "[\"clouddialer\"]}, {\"name\": \"mobile\", \"match\": {\"to_prefix\": "
                  "[\"+9198\"], \"type\": [\"outbound\"]}, \"vendors\": [\"callerdesk\"]}",
                  "rule mobile (10-test.json) never matches: rule india (10-test.json) before "
                  "it matches every call it would");
    /* every prefix of the later rule is covered, by either of the earlier one's */
    expect_shadow("{\"name\": \"a\", \"match\": {\"to_prefix\": [\"+44\", \"+91\"], \"tenant\": "
                  "[\"acme\", \"beta\"]}, \"vendors\": [\"clouddialer\"]}, {\"name\": \"b\", "
                  "\"match\": {\"to_prefix\": [\"+9198\", \"+4420\"], \"tenant\": [\"beta\"]}, "
                  "\"vendors\": [\"callerdesk\"]}",
                  "rule b (10-test.json) never matches: rule a");
    /* tags: fewer pairs first; no prefix on either */
    expect_shadow("{\"name\": \"sales\", \"match\": {\"tags\": {\"dept\": \"sales\"}}, "
                  "\"vendors\": [\"clouddialer\"]}, {\"name\": \"sales-vip\", \"match\": "
                  "{\"tags\": {\"tier\": \"vip\", \"dept\": \"sales\"}, \"to_prefix\": "
                  "[\"+1\"]}, \"vendors\": [\"ccai\"]}",
                  "rule sales-vip (10-test.json) never matches: rule sales");
    /* tenant-only and type-only rules */
    expect_shadow("{\"name\": \"beta\", \"match\": {\"tenant\": [\"beta\", \"acme\"]}, "
                  "\"vendors\": [\"clouddialer\"]}, {\"name\": \"beta-in\", \"match\": "
                  "{\"tenant\": [\"beta\"], \"type\": [\"inbound\"]}, \"vendors\": [\"ccai\"]}",
                  "rule beta-in (10-test.json) never matches: rule beta");
    expect_shadow("{\"name\": \"in\", \"match\": {\"type\": [\"inbound\", \"scheduled\"]}, "
                  "\"vendors\": [\"ccai\"]}, {\"name\": \"sched\", \"match\": {\"type\": "
                  "[\"scheduled\"], \"requires\": [\"recording\"]}, \"vendors\": [\"ccai\"]}",
                  "rule sched (10-test.json) never matches: rule in");
    /* from_prefix and a wider time window in the same zone */
    expect_shadow("{\"name\": \"uk\", \"match\": {\"from_prefix\": [\"+44\"], \"time\": "
                  "{\"days\": \"mon-fri\", \"from\": \"08:00\", \"to\": \"18:00\", \"zone\": "
                  "\"Europe/London\"}}, \"vendors\": [\"clouddialer\"]}, {\"name\": \"london\", "
                  "\"match\": {\"from_prefix\": [\"+4420\"], \"time\": {\"days\": \"mon\", "
                  "\"from\": \"09:00\", \"to\": \"17:00\", \"zone\": \"Europe/London\"}}, "
                  "\"vendors\": [\"ccai\"]}",
                  "rule london (10-test.json) never matches: rule uk");
    /* covered by two earlier rules: the earliest is named, whichever index finds it */
    expect_shadow("{\"name\": \"sales\", \"match\": {\"tags\": {\"dept\": \"sales\"}}, "
                  "\"vendors\": [\"clouddialer\"]}, {\"name\": \"india\", \"match\": "
                  "{\"to_prefix\": [\"+91\"]}, \"vendors\": [\"clouddialer\"]}, {\"name\": "
                  "\"sales-mobile\", \"match\": {\"to_prefix\": [\"+9198\"], \"tags\": "
                  "{\"dept\": \"sales\"}}, \"vendors\": [\"ccai\"]}",
                  "rule sales-mobile (10-test.json) never matches: rule sales (10-test.json)");
    /* the requires of the earlier rule are a subset */
    expect_shadow("{\"name\": \"rec\", \"match\": {\"requires\": [\"recording\"]}, \"vendors\": "
                  "[\"ccai\"]}, {\"name\": \"rec-flags\", \"match\": {\"requires\": "
                  "[\"flags\", \"recording\"]}, \"vendors\": [\"ccai\"]}",
                  "rule rec-flags (10-test.json) never matches: rule rec");
}

Test(routes, rules_that_can_still_match_do_not_warn)
{
    /* the later rule has a prefix the earlier lacks */
    expect_shadow("{\"name\": \"india\", \"match\": {\"to_prefix\": [\"+91\"]}, \"vendors\": "
                  "[\"clouddialer\"]}, {\"name\": \"b\", \"match\": {\"to_prefix\": "
                  "[\"+9198\", \"+44\"]}, \"vendors\": [\"callerdesk\"]}",
                  NULL);
    /* a longer prefix first */
    expect_shadow("{\"name\": \"mobile\", \"match\": {\"to_prefix\": [\"+9198\"]}, \"vendors\": "
                  "[\"clouddialer\"]}, {\"name\": \"india\", \"match\": {\"to_prefix\": "
                  "[\"+91\"]}, \"vendors\": [\"callerdesk\"]}",
                  NULL);
    /* the earlier rule has a condition the later does not */
    expect_shadow("{\"name\": \"a\", \"match\": {\"to_prefix\": [\"+91\"], \"type\": "
                  "[\"outbound\"]}, \"vendors\": [\"clouddialer\"]}, {\"name\": \"b\", \"match\": "
                  "{\"to_prefix\": [\"+9198\"]}, \"vendors\": [\"callerdesk\"]}",
                  NULL);
    expect_shadow("{\"name\": \"a\", \"match\": {\"tags\": {\"dept\": \"sales\"}}, \"vendors\": "
                  "[\"clouddialer\"]}, {\"name\": \"b\", \"match\": {\"tags\": {\"dept\": "
                  "\"support\"}}, \"vendors\": [\"callerdesk\"]}",
                  NULL);
    expect_shadow("{\"name\": \"a\", \"match\": {\"tenant\": [\"acme\"]}, \"vendors\": "
                  "[\"clouddialer\"]}, {\"name\": \"b\", \"match\": {\"tenant\": [\"acme\", "
                  "\"beta\"]}, \"vendors\": [\"callerdesk\"]}",
                  NULL);
    expect_shadow("{\"name\": \"a\", \"match\": {\"requires\": [\"recording\", \"flags\"]}, "
                  "\"vendors\": [\"clouddialer\"]}, {\"name\": \"b\", \"match\": {\"requires\": "
                  "[\"recording\"]}, \"vendors\": [\"callerdesk\"]}",
                  NULL);
    /* the same hours in another zone, or a longer window, are not covered */
    expect_shadow("{\"name\": \"a\", \"match\": {\"time\": {\"from\": \"09:00\", \"to\": "
                  "\"17:00\", \"zone\": \"UTC\"}}, \"vendors\": [\"clouddialer\"]}, {\"name\": "
                  "\"b\", \"match\": {\"time\": {\"from\": \"09:00\", \"to\": \"17:00\", "
                  "\"zone\": \"Europe/London\"}}, \"vendors\": [\"callerdesk\"]}",
                  NULL);
    expect_shadow("{\"name\": \"a\", \"match\": {\"time\": {\"from\": \"09:00\", \"to\": "
                  "\"17:00\", \"zone\": \"UTC\"}}, \"vendors\": [\"clouddialer\"]}, {\"name\": "
                  "\"b\", \"match\": {\"time\": {\"from\": \"08:00\", \"to\": \"17:00\", "
                  "\"zone\": \"UTC\"}}, \"vendors\": [\"callerdesk\"]}",
                  NULL);
    /* from_prefix on the later rule only: the earlier one's to_prefix still restricts */
    expect_shadow("{\"name\": \"a\", \"match\": {\"from_prefix\": [\"+44\"]}, \"vendors\": "
                  "[\"clouddialer\"]}, {\"name\": \"b\", \"match\": {\"to_prefix\": [\"+44\"]}, "
                  "\"vendors\": [\"callerdesk\"]}",
                  NULL);
}

Test(routes, catch_all_warnings)
{
    struct loaded l =
        load_ok("{\"rules\": [{\"name\": \"india\", \"match\": {\"to_prefix\": [\"+91\"]}, "
                "\"vendors\": [\"clouddialer\"]}]}");

    assert_contains(l.warnings, "no catch-all rule (match {}): calls that match no rule get 503 "
                                "no-route");
    cr_assert_eq(count_lines(l.warnings), 1);
    cr_assert_str_eq(match_to(l.t, "+14155550100"), "(none)");
    loaded_free(&l);
    l = load_ok("{\"rules\": [{\"name\": \"all\", \"match\": {}, \"vendors\": [\"ccai\"]}, "
                "{\"name\": \"india\", \"match\": {\"to_prefix\": [\"+91\"]}, \"vendors\": "
                "[\"clouddialer\"]}, {\"name\": \"mobile\", \"match\": {\"to_prefix\": "
                "[\"+9198\"]}, \"vendors\": [\"clouddialer\"]}]}");
    /* one warning for everything after a catch-all, not one per rule */
    assert_contains(l.warnings, "rule all matches every call: the 2 rule(s) after it never match");
    cr_assert_eq(count_lines(l.warnings), 1, "%s", l.warnings);
    cr_assert_str_eq(match_to(l.t, "+919812345678"), "all");
    loaded_free(&l);
}

/* ---------------------------------------------------------------------------
 * Scale: 50,000 prefixes, checked against a naive first-match scan
 */

static uint64_t rng_state = 42;

static uint32_t
rng(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

/* The first rule (in order) with a prefix of number, as a linear scan would find it. */
static const char *
naive_match(const struct route_table *t, const char *number)
{
    size_t i, j;

    for (i = 0; i < t->nrules; i++) {
        const struct route_rule *r = &t->rules[i];
        if (r->nprefix == 0) {
            return r->name;
        }
        for (j = 0; j < r->nprefix; j++) {
            if (strncmp(number, r->to_prefix[j], strlen(r->to_prefix[j])) == 0) {
                return r->name;
            }
        }
    }
    return "(none)";
}

Test(routes, fifty_thousand_prefixes)
{
    static const char *const cc[] = {"1", "44", "49", "33", "91", "61", "81", "86", "971", "55"};
    size_t size = 128 * 50000 + 1024, len = 0, i;
    char *text = malloc(size), number[24];
    struct loaded l;

    cr_assert_not_null(text);
    len += (size_t)snprintf(text + len, size - len, "{\"rules\": [");
    for (i = 0; i < 50000; i++) {
        /* country code + 1 to 6 digits from a small alphabet, so prefixes nest and repeat */
        char p[24];
        size_t k, n = 1 + rng() % 6;
        int pl = snprintf(p, sizeof(p), "+%s", cc[rng() % 10]);
        for (k = 0; k < n; k++) {
            p[pl++] = (char)('0' + rng() % 4);
        }
        p[pl] = '\0';
        len += (size_t)snprintf(text + len, size - len,
                                "{\"name\": \"p%zu\", \"match\": {\"to_prefix\": [\"%s\"]}, "
                                "\"vendors\": [\"clouddialer\"]},",
                                i, p);
    }
    snprintf(text + len, size - len,
             "{\"name\": \"default\", \"match\": {}, \"vendors\": [\"clouddialer\"]}]}");
    l = load_ok(text);
    free(text);
    cr_assert_eq(l.t->nrules, 50001);
    cr_assert_eq(l.t->nprefixes, 50000);
    /* duplicates and nested prefixes: many later rules are shadowed, and say so */
    cr_assert_not_null(l.warnings);
    for (i = 0; i < 300; i++) {
        size_t k;
        int nl = snprintf(number, sizeof(number), "+%s", cc[rng() % 10]);
        for (k = 0; k < 9; k++) {
            number[nl++] = (char)('0' + rng() % (i % 2 ? 4 : 10));
        }
        number[nl] = '\0';
        cr_assert_str_eq(match_to(l.t, number), naive_match(l.t, number), "%s", number);
    }
    loaded_free(&l);
}
