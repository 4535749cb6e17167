/*
 * test_metrics.c: GET /metrics. A parser of the Prometheus text exposition
 * format (0.0.4), written here, checks every line the gateway serves; the
 * counts are then read from the parsed samples and must move as requests,
 * placements, webhooks and deliveries happen. Unit tests cover the
 * renderer (escaping, histograms, the bound on label sets) in-process.
 */
#include "config.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <event2/buffer.h>

#include "conf.h"
#include "helpers/gwtest.h"
#include "metrics.h"

#define CALL_BODY "{\"to\": \"+919876543210\", \"agent\": \"agent.017\"}"
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* ---- a parser of the exposition format ------------------------------------ */

#define P_MAX_LABELS 8

struct p_sample {
    char name[128];
    char family[128];
    int nlabels;
    char key[P_MAX_LABELS][64];
    char val[P_MAX_LABELS][256]; /* unescaped */
    double value;
};

struct p_family {
    char name[128];
    char type[16];
    int has_help;
    int samples;
};

struct parsed {
    struct p_sample *s;
    int ns, cap;
    struct p_family f[128];
    int nf;
};

static int
p_name_ok(const char *s, size_t n, int metric)
{
    size_t i;

    if (n == 0) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        char c = s[i];
        int ok = isalpha((unsigned char)c) || c == '_' || (metric && c == ':') ||
                 (i > 0 && isdigit((unsigned char)c));
        if (!ok || (unsigned char)c >= 0x80) {
            return 0;
        }
    }
    return 1;
}

static struct p_family *
p_family(struct parsed *p, const char *name)
{
    int i;

    for (i = 0; i < p->nf; i++) {
        if (strcmp(p->f[i].name, name) == 0) {
            return &p->f[i];
        }
    }
    return NULL;
}

/* A float as the format writes it: Go's ParseFloat forms, +Inf, -Inf, NaN. */
static int
p_float(const char *s, double *out)
{
    char *end;

    if (strcmp(s, "+Inf") == 0 || strcmp(s, "Inf") == 0) {
        *out = INFINITY;
        return 0;
    }
    if (strcmp(s, "-Inf") == 0) {
        *out = -INFINITY;
        return 0;
    }
    if (strcmp(s, "NaN") == 0) {
        *out = NAN;
        return 0;
    }
    if (*s == '\0' || isspace((unsigned char)*s)) {
        return -1;
    }
    *out = strtod(s, &end);
    return *end == '\0' && strpbrk(s, "xXpP") == NULL ? 0 : -1;
}

/* The family a sample belongs to: histogram suffixes folded when that family is typed. */
static void
p_family_of(const struct parsed *p, const char *name, char *out, size_t outlen)
{
    static const char *const sfx[] = {"_bucket", "_sum", "_count"};
    size_t n = strlen(name), k;
    int i;

    snprintf(out, outlen, "%s", name);
    for (k = 0; k < 3; k++) {
        size_t m = strlen(sfx[k]);
        if (n > m && strcmp(name + n - m, sfx[k]) == 0) {
            char base[128];
            snprintf(base, sizeof(base), "%.*s", (int)(n - m), name);
            for (i = 0; i < p->nf; i++) {
                if (strcmp(p->f[i].name, base) == 0 && strcmp(p->f[i].type, "histogram") == 0) {
                    snprintf(out, outlen, "%s", base);
                    return;
                }
            }
        }
    }
}

/* One sample line; 0 or -1 (with why). */
static int
p_sample_line(struct parsed *p, const char *line, char *why, size_t whylen)
{
    struct p_sample s;
    const char *c = line, *start;
    char num[64];
    size_t n;

    memset(&s, 0, sizeof(s));
    start = c;
    while (*c != '\0' && *c != '{' && *c != ' ') {
        c++;
    }
    n = (size_t)(c - start);
    if (!p_name_ok(start, n, 1) || n >= sizeof(s.name)) {
        snprintf(why, whylen, "bad metric name");
        return -1;
    }
    memcpy(s.name, start, n);
    if (*c == '{') {
        c++;
        while (*c != '}') {
            size_t vn = 0;
            start = c;
            while (*c != '\0' && *c != '=') {
                c++;
            }
            n = (size_t)(c - start);
            if (*c != '=' || !p_name_ok(start, n, 0) || n >= sizeof(s.key[0]) ||
                s.nlabels == P_MAX_LABELS || c[1] != '"') {
                snprintf(why, whylen, "bad label name or syntax");
                return -1;
            }
            memcpy(s.key[s.nlabels], start, n);
            c += 2;
            while (*c != '"') {
                char ch = *c;
                if (ch == '\0' || ch == '\n') {
                    snprintf(why, whylen, "unterminated label value");
                    return -1;
                }
                if (ch == '\\') {
                    c++;
                    if (*c == '\\' || *c == '"') {
                        ch = *c;
                    } else if (*c == 'n') {
                        ch = '\n';
                    } else {
                        snprintf(why, whylen, "bad escape \\%c", *c);
                        return -1;
                    }
                }
                if (vn + 1 >= sizeof(s.val[0])) {
                    snprintf(why, whylen, "label value too long");
                    return -1;
                }
                s.val[s.nlabels][vn++] = ch;
                c++;
            }
            c++;
            for (n = 0; n < (size_t)s.nlabels; n++) {
                if (strcmp(s.key[n], s.key[s.nlabels]) == 0) {
                    snprintf(why, whylen, "label %s twice", s.key[n]);
                    return -1;
                }
            }
            s.nlabels++;
            if (*c == ',') {
                c++;
            } else if (*c != '}') {
                snprintf(why, whylen, "expected , or }");
                return -1;
            }
        }
        c++;
    }
    if (*c != ' ') {
        snprintf(why, whylen, "expected a space before the value");
        return -1;
    }
    c++;
    start = c;
    while (*c != '\0' && *c != ' ') {
        c++;
    }
    n = (size_t)(c - start);
    if (n == 0 || n >= sizeof(num)) {
        snprintf(why, whylen, "missing value");
        return -1;
    }
    memcpy(num, start, n);
    num[n] = '\0';
    if (p_float(num, &s.value) != 0) {
        snprintf(why, whylen, "bad value \"%s\"", num);
        return -1;
    }
    if (*c == ' ') { /* an optional integer timestamp */
        c++;
        if (*c == '-') {
            c++;
        }
        if (!isdigit((unsigned char)*c)) {
            snprintf(why, whylen, "bad timestamp");
            return -1;
        }
        while (isdigit((unsigned char)*c)) {
            c++;
        }
    }
    if (*c != '\0') {
        snprintf(why, whylen, "trailing characters");
        return -1;
    }
    p_family_of(p, s.name, s.family, sizeof(s.family));
    if (p->ns == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 256;
        p->s = realloc(p->s, (size_t)p->cap * sizeof(*p->s));
        cr_assert_not_null(p->s);
    }
    p->s[p->ns++] = s;
    return 0;
}

static int
p_same_labels(const struct p_sample *a, const struct p_sample *b, const char *skip)
{
    int i, j, na = 0, nb = 0;

    for (i = 0; i < a->nlabels; i++) {
        if (skip != NULL && strcmp(a->key[i], skip) == 0) {
            continue;
        }
        na++;
        for (j = 0; j < b->nlabels; j++) {
            if (strcmp(a->key[i], b->key[j]) == 0 && strcmp(a->val[i], b->val[j]) == 0) {
                break;
            }
        }
        if (j == b->nlabels) {
            return 0;
        }
    }
    for (j = 0; j < b->nlabels; j++) {
        nb += skip == NULL || strcmp(b->key[j], skip) != 0;
    }
    return na == nb;
}

static const char *
p_label(const struct p_sample *s, const char *key)
{
    int i;

    for (i = 0; i < s->nlabels; i++) {
        if (strcmp(s->key[i], key) == 0) {
            return s->val[i];
        }
    }
    return NULL;
}

/* Every histogram series: buckets ascending by le, cumulative, +Inf last and = _count. */
static void
p_check_histograms(const struct parsed *p)
{
    int i, j;

    for (i = 0; i < p->ns; i++) {
        const struct p_sample *s = &p->s[i];
        const struct p_family *f = p_family((struct parsed *)p, s->family);
        double prev_le = -INFINITY, prev = 0, inf = -1, count = -1;
        int have_sum = 0, first = 1;
        char name[160];

        if (f == NULL || strcmp(f->type, "histogram") != 0 ||
            strcmp(s->name + strlen(s->family), "_count") != 0) {
            continue;
        }
        count = s->value;
        snprintf(name, sizeof(name), "%s_bucket", s->family);
        for (j = 0; j < p->ns; j++) {
            const struct p_sample *b = &p->s[j];
            double le;
            if (strcmp(b->family, s->family) != 0 || !p_same_labels(b, s, "le")) {
                continue;
            }
            if (strcmp(b->name, name) == 0) {
                const char *les = p_label(b, "le");
                cr_assert_not_null(les, "%s without le", name);
                cr_assert_eq(p_float(les, &le), 0, "le=\"%s\"", les);
                cr_assert(first || le > prev_le, "%s: le %s not ascending", name, les);
                cr_assert(b->value >= prev, "%s: buckets not cumulative at le=%s", name, les);
                cr_assert_eq(inf, -1, "%s: a bucket after +Inf", name);
                prev_le = le;
                prev = b->value;
                first = 0;
                if (isinf(le)) {
                    inf = b->value;
                }
            } else if (strcmp(b->name + strlen(b->family), "_sum") == 0) {
                have_sum = 1;
            }
        }
        cr_assert(inf >= 0, "%s: no le=\"+Inf\" bucket", s->family);
        cr_assert_eq(inf, count, "%s: +Inf bucket %g != _count %g", s->family, inf, count);
        cr_assert(have_sum, "%s: no _sum", s->family);
    }
}

/*
 * Parse a whole exposition; any malformed line fails the test. Checks: a
 * final newline, HELP/TYPE syntax, one TYPE per family and before its
 * samples, each family's samples in one group, no series twice, histograms.
 */
static void
p_parse(struct parsed *p, const char *text)
{
    const char *line = text, *nl;
    char buf[4096], why[128], last_family[128] = "";
    int lineno = 0, i;

    memset(p, 0, sizeof(*p));
    cr_assert(text[0] != '\0' && text[strlen(text) - 1] == '\n', "no final newline");
    for (; *line != '\0'; line = nl + 1) {
        size_t n;
        nl = strchr(line, '\n');
        n = (size_t)(nl - line);
        lineno++;
        cr_assert(n < sizeof(buf), "line %d too long", lineno);
        memcpy(buf, line, n);
        buf[n] = '\0';
        cr_assert(n > 0, "line %d is empty", lineno);
        if (buf[0] == '#') {
            char kw[8], name[160];
            const char *rest;
            int off = 0;
            if (sscanf(buf, "# %7s %159s %n", kw, name, &off) < 2 ||
                (strcmp(kw, "HELP") != 0 && strcmp(kw, "TYPE") != 0)) {
                continue; /* a plain comment */
            }
            cr_assert(p_name_ok(name, strlen(name), 1), "line %d: bad name %s", lineno, name);
            rest = off > 0 ? buf + off : "";
            struct p_family *f = p_family(p, name);
            if (f == NULL) {
                cr_assert(p->nf < 128);
                f = &p->f[p->nf++];
                snprintf(f->name, sizeof(f->name), "%s", name);
            }
            if (strcmp(kw, "HELP") == 0) {
                const char *c;
                cr_assert(!f->has_help, "line %d: HELP %s twice", lineno, name);
                f->has_help = 1;
                for (c = rest; *c != '\0'; c++) {
                    if (*c == '\\') {
                        cr_assert(c[1] == '\\' || c[1] == 'n', "line %d: bad HELP escape", lineno);
                        c++;
                    }
                }
            } else {
                cr_assert(f->type[0] == '\0', "line %d: TYPE %s twice", lineno, name);
                cr_assert(f->samples == 0, "line %d: TYPE %s after its samples", lineno, name);
                cr_assert(strcmp(rest, "counter") == 0 || strcmp(rest, "gauge") == 0 ||
                              strcmp(rest, "histogram") == 0 || strcmp(rest, "summary") == 0 ||
                              strcmp(rest, "untyped") == 0,
                          "line %d: type \"%s\"", lineno, rest);
                snprintf(f->type, sizeof(f->type), "%s", rest);
            }
            continue;
        }
        cr_assert_eq(p_sample_line(p, buf, why, sizeof(why)), 0, "line %d: %s: %s", lineno, why,
                     buf);
        {
            struct p_sample *s = &p->s[p->ns - 1];
            struct p_family *f = p_family(p, s->family);
            cr_assert_not_null(f, "line %d: %s has no TYPE before it", lineno, s->name);
            cr_assert(f->type[0] != '\0', "line %d: %s has no TYPE before it", lineno, s->name);
            cr_assert(f->samples == 0 || strcmp(last_family, s->family) == 0,
                      "line %d: %s's samples are not one group", lineno, s->family);
            if (strcmp(f->type, "counter") == 0) {
                cr_assert(s->value >= 0, "line %d: negative counter", lineno);
            }
            f->samples++;
            snprintf(last_family, sizeof(last_family), "%s", s->family);
            for (i = 0; i < p->ns - 1; i++) {
                cr_assert(strcmp(p->s[i].name, s->name) != 0 || !p_same_labels(&p->s[i], s, NULL),
                          "line %d: series twice: %s", lineno, buf);
            }
        }
    }
    p_check_histograms(p);
}

static void
p_free(struct parsed *p)
{
    free(p->s);
    memset(p, 0, sizeof(*p));
}

/* The value of name{k1=v1,k2=v2} (exactly those labels), or 0 when absent. */
static double
p_value(const struct parsed *p, const char *name, const char *k1, const char *v1, const char *k2,
        const char *v2)
{
    int i;

    for (i = 0; i < p->ns; i++) {
        const struct p_sample *s = &p->s[i];
        int want = (k1 != NULL) + (k2 != NULL);
        const char *a, *b;
        if (strcmp(s->name, name) != 0 || s->nlabels != want) {
            continue;
        }
        a = k1 != NULL ? p_label(s, k1) : NULL;
        b = k2 != NULL ? p_label(s, k2) : NULL;
        if ((k1 == NULL || (a != NULL && strcmp(a, v1) == 0)) &&
            (k2 == NULL || (b != NULL && strcmp(b, v2) == 0))) {
            return s->value;
        }
    }
    return 0;
}

static int
p_has(const struct parsed *p, const char *name, const char *k, const char *v)
{
    int i;

    for (i = 0; i < p->ns; i++) {
        const char *x;
        if (strcmp(p->s[i].name, name) == 0 &&
            (k == NULL || ((x = p_label(&p->s[i], k)) != NULL && strcmp(x, v) == 0))) {
            return 1;
        }
    }
    return 0;
}

static int
p_count(const struct parsed *p, const char *name)
{
    int i, n = 0;

    for (i = 0; i < p->ns; i++) {
        n += strcmp(p->s[i].name, name) == 0;
    }
    return n;
}

/* ---- the renderer, in-process ---------------------------------------------- */

static char *
render(void)
{
    struct evbuffer *b = evbuffer_new();
    size_t n;
    char *s;

    cr_assert_eq(metrics_render(b), 0);
    n = evbuffer_get_length(b);
    s = malloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    evbuffer_free(b);
    return s;
}

static void
unit_setup(void)
{
    metrics_reset();
}

static void
unit_teardown(void)
{
    metrics_reset();
}

TestSuite(metrics_unit, .init = unit_setup, .fini = unit_teardown, .timeout = 90);

Test(metrics_unit, every_metric_is_declared_and_parses)
{
    char *text;
    struct parsed p;

    metrics_init();
    text = render();
    p_parse(&p, text);
    cr_assert_eq(p.nf, METRICS_MAX, "%d families for %d metrics", p.nf, (int)METRICS_MAX);
    cr_assert_eq(
        p_value(&p, "callgate_build_info", "version", PACKAGE_VERSION, "options", CG_BUILD_OPTIONS),
        1);
    cr_assert(p_value(&p, "callgate_process_start_time_seconds", NULL, NULL, NULL, NULL) > 1.7e9);
    /* Unlabelled counters show 0 before they move. */
    cr_assert(p_has(&p, "callgate_redis_commands_total", NULL, NULL));
    cr_assert(p_has(&p, "callgate_redis_command_duration_seconds_count", NULL, NULL));
    p_free(&p);
    free(text);
}

Test(metrics_unit, label_values_are_escaped)
{
    const char *nasty = "a\\b\"c\nd";
    char *text;
    struct parsed p;

    metrics_inc(METRIC_RATE_LIMITED, nasty, NULL, NULL);
    metrics_inc(METRIC_RATE_LIMITED, nasty, NULL, NULL);
    metrics_vendor_throttled("clouddialer", METRICS_THROTTLE_RETRY_BUDGET);
    text = render();
    cr_assert_not_null(strstr(text, "callgate_rate_limited_total{tenant=\"a\\\\b\\\"c\\nd\"} 2\n"),
                       "%s", text);
    p_parse(&p, text);
    cr_assert_eq(p_value(&p, "callgate_rate_limited_total", "tenant", nasty, NULL, NULL), 2);
    cr_assert_eq(p_value(&p, "callgate_vendor_throttled_total", "vendor", "clouddialer", "reason",
                         "retry_budget"),
                 1);
    p_free(&p);
    free(text);
}

Test(metrics_unit, histogram_buckets_are_cumulative)
{
    static const double obs[] = {0.001, 0.004, 0.02, 0.02, 0.3, 4, 11, 60};
    char *text;
    struct parsed p;
    size_t i;
    double sum = 0;

    for (i = 0; i < sizeof(obs) / sizeof(obs[0]); i++) {
        metrics_http_reply("GET /healthz", 200, obs[i]);
        sum += obs[i];
    }
    metrics_http_reply(NULL, 404, 0.001);
    text = render();
    p_parse(&p, text);
    cr_assert_eq(p_value(&p, "callgate_http_request_duration_seconds_bucket", "route",
                         "GET /healthz", "le", "0.005"),
                 2);
    cr_assert_eq(p_value(&p, "callgate_http_request_duration_seconds_bucket", "route",
                         "GET /healthz", "le", "0.025"),
                 4);
    cr_assert_eq(p_value(&p, "callgate_http_request_duration_seconds_bucket", "route",
                         "GET /healthz", "le", "5"),
                 6);
    cr_assert_eq(p_value(&p, "callgate_http_request_duration_seconds_bucket", "route",
                         "GET /healthz", "le", "10"),
                 6);
    cr_assert_eq(p_value(&p, "callgate_http_request_duration_seconds_bucket", "route",
                         "GET /healthz", "le", "+Inf"),
                 8);
    cr_assert_eq(p_value(&p, "callgate_http_request_duration_seconds_count", "route",
                         "GET /healthz", NULL, NULL),
                 8);
    cr_assert_float_eq(p_value(&p, "callgate_http_request_duration_seconds_sum", "route",
                               "GET /healthz", NULL, NULL),
                       sum, 1e-6);
    cr_assert_eq(
        p_value(&p, "callgate_http_requests_total", "route", "GET /healthz", "status", "200"), 8);
    cr_assert_eq(p_value(&p, "callgate_http_requests_total", "route", "other", "status", "404"), 1);
    p_free(&p);
    free(text);
}

Test(metrics_unit, special_values_render)
{
    char *text;
    struct parsed p;

    metrics_set(METRIC_DELIVERY_QUEUE, INFINITY, "t1", NULL, NULL);
    metrics_set(METRIC_DELIVERY_QUEUE, -INFINITY, "t2", NULL, NULL);
    metrics_set(METRIC_DELIVERY_QUEUE, NAN, "t3", NULL, NULL);
    metrics_set(METRIC_DELIVERY_QUEUE, 0.125, "t4", NULL, NULL);
    text = render();
    cr_assert_not_null(strstr(text, "{tenant=\"t1\"} +Inf\n"));
    cr_assert_not_null(strstr(text, "{tenant=\"t2\"} -Inf\n"));
    cr_assert_not_null(strstr(text, "{tenant=\"t3\"} NaN\n"));
    cr_assert_not_null(strstr(text, "{tenant=\"t4\"} 0.125\n"));
    p_parse(&p, text);
    cr_assert(isnan(p_value(&p, "callgate_delivery_queue_depth", "tenant", "t3", NULL, NULL)));
    /* Cleared gauges go away (a tenant removed by a reload). */
    metrics_clear(METRIC_DELIVERY_QUEUE);
    free(text);
    p_free(&p);
    text = render();
    cr_assert_null(strstr(text, "tenant=\"t1\""));
    free(text);
}

Test(metrics_unit, label_sets_are_bounded)
{
    char label[32], *text;
    struct parsed p;
    int i, n;

    for (i = 0; i < 20000; i++) {
        snprintf(label, sizeof(label), "tenant-%d", i);
        metrics_rate_limited(label);
    }
    text = render();
    p_parse(&p, text);
    n = p_count(&p, "callgate_rate_limited_total");
    cr_assert(n <= 1024, "%d series", n);
    cr_assert_eq(p_value(&p, "callgate_rate_limited_total", "tenant", "tenant-0", NULL, NULL), 1);
    cr_assert_eq(p_value(&p, "callgate_rate_limited_total", "tenant", "other", NULL, NULL),
                 20000 - (n - 1));
    cr_assert_eq(p_value(&p, "callgate_metrics_series_overflow_total", "metric",
                         "callgate_rate_limited_total", NULL, NULL),
                 20000 - (n - 1));
    p_free(&p);
    free(text);
}

Test(metrics_unit, updates_are_cheap)
{
    static const char *const routes[] = {"POST /v1/calls", "GET /v1/calls/{id}", "GET /healthz"};
    struct timespec a, b;
    const int n = 2000000;
    double ns;
    int i;

    clock_gettime(CLOCK_MONOTONIC, &a);
    for (i = 0; i < n; i++) {
        metrics_http_reply(routes[i % 3], i % 7 == 0 ? 404 : 200, 0.002);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / n;
    cr_log_info("metrics_http_reply: %.1f ns per reply", ns);
    fprintf(stderr, "metrics_http_reply: %.1f ns per reply (counter + histogram)\n", ns);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (i = 0; i < n; i++) {
        metrics_inc(METRIC_VENDOR_ATTEMPTS, "clouddialer", "accepted", NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / n;
    fprintf(stderr, "metrics_inc (2 labels, hashed): %.1f ns per update\n", ns);
    cr_assert(ns < 2000, "%.1f ns per update", ns);
}

/* ---- the configuration key ------------------------------------------------ */

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* The smallest valid configuration plus extra top-level members. */
static struct conf *
conf_with(const char *extra, char **errors)
{
    char text[2048];

    snprintf(text, sizeof(text),
             "{\"listen\": \"127.0.0.1:8080\", \"vendors\": {\"clouddialer\": {\"base_url\": "
             "\"https://vendor.test\", \"api_key\": \"k\", \"from_number\": \"+919800000000\"}}, "
             "\"tenants\": [{\"id\": \"acme\", \"api_key_sha256\": \"" HEX64 "\", "
             "\"default_country\": \"IN\", \"webhook_secret\": "
             "\"whsec_Y2FsbGdhdGUtdGVzdC1zaWduaW5nLXNlY3JldC0zMmI=\", \"vendors\": "
             "[\"clouddialer\"]}]%s}",
             extra);
    *errors = NULL;
    return conf_load_string(text, "test.json", errors);
}

Test(metrics_unit, conf_key)
{
    char *errors;
    struct conf *c;

    c = conf_with("", &errors);
    cr_assert_not_null(c, "%s", errors);
    cr_assert_eq(c->metrics.require_admin_token, 0);
    conf_unref(c);
    c = conf_with(", \"admin\": {\"token_sha256\": \"" HEX64 "\"}, \"metrics\": "
                  "{\"require_admin_token\": true}",
                  &errors);
    cr_assert_not_null(c, "%s", errors);
    cr_assert_eq(c->metrics.require_admin_token, 1);
    conf_unref(c);
    c = conf_with(", \"metrics\": {\"require_admin_token\": true}", &errors);
    cr_assert_null(c);
    cr_assert_not_null(strstr(errors, "test.json: metrics.require_admin_token: needs "
                                      "admin.token_sha256"),
                       "%s", errors);
    free(errors);
    c = conf_with(", \"metrics\": {\"require_admin_tokens\": false}", &errors);
    cr_assert_null(c);
    cr_assert_not_null(strstr(errors, "metrics.require_admin_tokens"), "%s", errors);
    free(errors);
    c = conf_with(", \"metrics\": {\"require_admin_token\": 1}", &errors);
    cr_assert_null(c);
    cr_assert_not_null(strstr(errors, "metrics.require_admin_token: must be true or false"), "%s",
                       errors);
    free(errors);
}

/* ---- against a real gateway ------------------------------------------------ */

static struct gwtest gw;

static void
scrape_url(const char *base, const char *token, struct parsed *p, long want)
{
    char url[128], auth[128], ct[128];
    const char *headers[] = {auth, NULL};
    struct http_resp r;

    snprintf(url, sizeof(url), "%s/metrics", base);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token != NULL ? token : "");
    cr_assert_eq(http_do("GET", url, token != NULL ? headers : NULL, NULL, 0, 5000, &r), 0);
    cr_assert_eq(r.status, want, "%ld: %s", r.status, r.body);
    if (want == 200) {
        cr_assert_not_null(http_header(&r, "Content-Type", ct, sizeof(ct)));
        cr_assert_str_eq(ct, CONTENT_TYPE);
        p_parse(p, r.body);
    }
    http_resp_free(&r);
}

static void
scrape(struct parsed *p)
{
    scrape_url(gw.base, NULL, p, 200);
}

static void
gw_setup(void)
{
    struct gwtest_opts o = {.no_push = 1};

    gwtest_start(&gw, &o);
}

static void
gw_teardown(void)
{
    gwtest_stop(&gw);
}

TestSuite(metrics_gw, .init = gw_setup, .fini = gw_teardown, .timeout = 90);

Test(metrics_gw, scrape_is_well_formed_and_complete)
{
    struct parsed p;

    scrape(&p);
    cr_assert_eq(p.nf, METRICS_MAX);
    cr_assert_eq(p_value(&p, "callgate_scrape_redis_ok", NULL, NULL, NULL, NULL), 1);
    cr_assert_eq(p_value(&p, "callgate_redis_up", NULL, NULL, NULL, NULL), 1);
    cr_assert(p_has(&p, "callgate_delivery_queue_depth", "tenant", "acme"));
    cr_assert(p_has(&p, "callgate_delivery_queue_depth", "tenant", "globex"));
    cr_assert(p_has(&p, "callgate_delivery_oldest_pending_age_seconds", "tenant", "acme"));
    cr_assert(p_has(&p, "callgate_delivery_dead_letters", "tenant", "acme"));
    cr_assert(p_has(&p, "callgate_routes_info", NULL, NULL));
    cr_assert(p_has(&p, "callgate_build_info", "version", PACKAGE_VERSION));
    cr_assert_eq(p_value(&p, "callgate_circuit_state", "vendor", "clouddialer", NULL, NULL), 0);
    cr_assert(p_value(&p, "callgate_http_requests_in_flight", NULL, NULL, NULL, NULL) >= 1);
    cr_assert(p_value(&p, "callgate_http_connections", NULL, NULL, NULL, NULL) >= 1);
    cr_assert(p_value(&p, "callgate_redis_commands_total", NULL, NULL, NULL, NULL) >= 1);
    p_free(&p);
}

Test(metrics_gw, requests_and_attempts_are_counted)
{
    struct parsed a, b;
    struct http_resp r;

    scrape(&a);
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, CALL_BODY, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    http_resp_free(&r);
    cr_assert_eq(gw_get(&gw, NULL, "/no/such/thing", &r), 0);
    cr_assert_eq(r.status, 404);
    http_resp_free(&r);
    cr_assert_eq(gw_get(&gw, NULL, "/v1/calls/call_x", &r), 0);
    cr_assert_eq(r.status, 401);
    http_resp_free(&r);
    cr_assert_eq(gw_get(&gw, "wrong-key", "/v1/calls", &r), 0);
    cr_assert_eq(r.status, 401);
    http_resp_free(&r);
    scrape(&b);
    cr_assert_eq(
        p_value(&b, "callgate_http_requests_total", "route", "POST /v1/calls", "status", "201") -
            p_value(&a, "callgate_http_requests_total", "route", "POST /v1/calls", "status", "201"),
        1);
    cr_assert_eq(p_value(&b, "callgate_vendor_attempts_total", "vendor", "clouddialer", "outcome",
                         "accepted") -
                     p_value(&a, "callgate_vendor_attempts_total", "vendor", "clouddialer",
                             "outcome", "accepted"),
                 1);
    cr_assert_eq(p_value(&b, "callgate_vendor_attempt_duration_seconds_count", "vendor",
                         "clouddialer", NULL, NULL) -
                     p_value(&a, "callgate_vendor_attempt_duration_seconds_count", "vendor",
                             "clouddialer", NULL, NULL),
                 1);
    cr_assert_eq(p_value(&b, "callgate_http_requests_total", "route", "other", "status", "404") -
                     p_value(&a, "callgate_http_requests_total", "route", "other", "status", "404"),
                 1);
    cr_assert_eq(p_value(&b, "callgate_http_requests_total", "route", "GET /v1/calls/{id}",
                         "status", "401") -
                     p_value(&a, "callgate_http_requests_total", "route", "GET /v1/calls/{id}",
                             "status", "401"),
                 1);
    cr_assert_eq(
        p_value(&b, "callgate_http_requests_total", "route", "GET /v1/calls", "status", "401") -
            p_value(&a, "callgate_http_requests_total", "route", "GET /v1/calls", "status", "401"),
        1);
    /* The first scrape itself is counted by the time of the second. */
    cr_assert(
        p_value(&b, "callgate_http_requests_total", "route", "GET /metrics", "status", "200") >= 1);
    cr_assert(p_value(&b, "callgate_http_request_duration_seconds_count", "route", "POST /v1/calls",
                      NULL, NULL) >= 1);
    p_free(&a);
    p_free(&b);
}

Test(metrics_gw, webhook_and_delivery_are_counted)
{
    struct parsed a, b;
    struct http_resp r;
    char body[1024], url[256], id[64];
    const char *headers[] = {"Content-Type: application/json", NULL};
    json_t *events;
    double delivered0;
    int i;

    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, CALL_BODY, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(id, sizeof(id), "%s", jstr(r.json, "id"));
    http_resp_free(&r);
    /* Let the call's first events go out, so that the count below is this push's. */
    events = sim_wait_sink(&gw, "acme", 1, 5000);
    json_decref(events);
    scrape(&a);
    delivered0 = p_value(&a, "callgate_deliveries_total", "outcome", "delivered", NULL, NULL);
    snprintf(body, sizeof(body),
             "{\"call_id\":\"cd-%s\",\"uuid\":\"%s\",\"status\":\"ANSWER\",\"duration\":42,"
             "\"customer_number\":\"9876543210\",\"crm_username\":\"agent.017\","
             "\"direction\":\"outbound\",\"call_type\":\"browser\",\"disposition\":\"CRM_CALL\","
             "\"start_time\":\"2026-07-03T10:00:00Z\",\"end_time\":\"2026-07-03T10:00:42Z\"}",
             id, id);
    snprintf(url, sizeof(url), "%s/v1/webhooks/clouddialer/%s", gw.base, GWTEST_ACME_TOKEN);
    cr_assert_eq(http_do("POST", url, headers, body, strlen(body), 5000, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_resp_free(&r);
    snprintf(url, sizeof(url), "%s/v1/webhooks/clouddialer/not-a-token", gw.base);
    cr_assert_eq(http_do("POST", url, headers, body, strlen(body), 5000, &r), 0);
    cr_assert_eq(r.status, 404);
    http_resp_free(&r);
    /* The completion event reaches the tenant's sink, then its outcome is counted. */
    for (i = 0; i < 100; i++) {
        scrape(&b);
        if (p_value(&b, "callgate_deliveries_total", "outcome", "delivered", NULL, NULL) >
            delivered0) {
            break;
        }
        p_free(&b);
        gwtest_sleep_ms(50);
    }
    cr_assert(i < 100, "no delivery counted");
    cr_assert_eq(p_value(&b, "callgate_webhooks_received_total", "vendor", "clouddialer", "outcome",
                         "stored") -
                     p_value(&a, "callgate_webhooks_received_total", "vendor", "clouddialer",
                             "outcome", "stored"),
                 1);
    cr_assert_eq(p_value(&b, "callgate_webhooks_received_total", "vendor", "clouddialer", "outcome",
                         "not_found") -
                     p_value(&a, "callgate_webhooks_received_total", "vendor", "clouddialer",
                             "outcome", "not_found"),
                 1);
    cr_assert(p_value(&b, "callgate_delivery_attempt_duration_seconds_count", NULL, NULL, NULL,
                      NULL) > 0);
    cr_assert(p_has(&b, "callgate_delivery_queue_depth", "tenant", "acme"));
    p_free(&a);
    p_free(&b);
}

/* Count every sample line of the scrape. */
static int
series_total(const struct parsed *p)
{
    return p->ns;
}

Test(metrics_gw, random_paths_do_not_grow_the_series)
{
    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH"};
    struct parsed a, b;
    struct http_resp r;
    char url[256];
    time_t until = time(NULL) + 20;
    int i;

    /* One of each first, so that every label set this test can make exists. */
    for (i = 0; i < 5; i++) {
        snprintf(url, sizeof(url), "%s/seed/%d", gw.base, i);
        cr_assert_eq(http_do(methods[i], url, NULL, "x", 1, 5000, &r), 0);
        http_resp_free(&r);
    }
    scrape(&a); /* the scrape's own series exist from the second one on */
    p_free(&a);
    scrape(&a);
    srand(42);
    for (i = 0; i < 600 && time(NULL) < until; i++) {
        snprintf(url, sizeof(url), "%s/%08x/%x%%22%%5C?q=%d", gw.base, (unsigned)rand(),
                 (unsigned)rand(), i);
        cr_assert_eq(http_do(methods[i % 5], url, NULL, "x", 1, 5000, &r), 0);
        cr_assert(r.status == 404 || r.status == 405, "%ld", r.status);
        http_resp_free(&r);
    }
    scrape(&b);
    cr_assert_eq(p_count(&b, "callgate_http_requests_total"),
                 p_count(&a, "callgate_http_requests_total"));
    cr_assert_eq(p_count(&b, "callgate_http_request_duration_seconds_count"),
                 p_count(&a, "callgate_http_request_duration_seconds_count"));
    /* Background work (health probes, deliveries) may add a few of its own. */
    cr_assert(series_total(&b) <= series_total(&a) + 4, "%d series, were %d", series_total(&b),
              series_total(&a));
    cr_assert(p_value(&b, "callgate_http_requests_total", "route", "other", "status", "404") >=
              p_value(&a, "callgate_http_requests_total", "route", "other", "status", "404") + i);
    p_free(&a);
    p_free(&b);
}

Test(metrics_gw, redis_down_still_answers)
{
    struct parsed p;

    redis_fixture_kill(&gw.redis);
    scrape(&p);
    cr_assert_eq(p_value(&p, "callgate_scrape_redis_ok", NULL, NULL, NULL, NULL), 0);
    cr_assert(!p_has(&p, "callgate_delivery_queue_depth", NULL, NULL));
    cr_assert(p_has(&p, "callgate_build_info", NULL, NULL));
    cr_assert(p_value(&p, "callgate_redis_errors_total", "reason", "unavailable", NULL, NULL) >= 1);
    p_free(&p);
    cr_assert_eq(redis_fixture_restart(&gw.redis), 0);
    cr_assert(gwtest_wait_ready(&gw, 5000));
    scrape(&p);
    cr_assert_eq(p_value(&p, "callgate_scrape_redis_ok", NULL, NULL, NULL, NULL), 1);
    p_free(&p);
}

Test(metrics_gw, redis_hung_answers_before_the_deadline)
{
    struct parsed p;
    struct timespec a, b;
    double ms;

    redis_fixture_pause(&gw.redis);
    clock_gettime(CLOCK_MONOTONIC, &a);
    scrape(&p);
    clock_gettime(CLOCK_MONOTONIC, &b);
    redis_fixture_resume(&gw.redis);
    ms = (double)(b.tv_sec - a.tv_sec) * 1000 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    cr_assert_eq(p_value(&p, "callgate_scrape_redis_ok", NULL, NULL, NULL, NULL), 0);
    cr_assert(ms < 5000, "%.0f ms", ms);
    p_free(&p);
    cr_assert(gwtest_wait_ready(&gw, 5000));
}

/* ---- metrics.require_admin_token, with an admin listener ------------------- */

static void
auth_setup(void)
{
    struct gwtest_opts o = {.no_push = 1, .admin_listener = 1, .metrics_admin_token = 1};

    gwtest_start(&gw, &o);
}

TestSuite(metrics_auth, .init = auth_setup, .fini = gw_teardown, .timeout = 90);

Test(metrics_auth, token_required_on_both_listeners)
{
    struct parsed p;

    scrape_url(gw.base, NULL, &p, 401);
    scrape_url(gw.base, "wrong-token", &p, 401);
    scrape_url(gw.admin_base, NULL, &p, 401);
    scrape_url(gw.base, GWTEST_ADMIN_TOKEN, &p, 200);
    cr_assert(
        p_value(&p, "callgate_http_requests_total", "route", "GET /metrics", "status", "401") >= 3);
    p_free(&p);
    scrape_url(gw.admin_base, GWTEST_ADMIN_TOKEN, &p, 200);
    cr_assert(p_has(&p, "callgate_build_info", NULL, NULL));
    p_free(&p);
}
