/*
 * routes_bench.c: how fast the routing table decides as it grows
 * (contrib/bench/README.md). For tables of 1, 1,000 and 50,000 to_prefix
 * rules (least-cost-routing-like prefixes under real country codes, some
 * rules with tags, time windows or a tenant, a catch-all last) it writes
 * the rule files into a temp directory, loads them with routes_load_dir,
 * and times routes_match on random E.164 numbers: at most 2,000,000
 * decisions or 1 s per table, whichever comes first. Then the same for
 * routes_order on a weighted rule. Local work only; it stops by itself and
 * removes its files.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "conf.h"
#include "routes.h"
#include "util.h"
#include "vendor.h"

#define BENCH_MAX_OPS 2000000
#define BENCH_MAX_US 1000000
#define BENCH_NUMBERS 65536  /* a power of two: the number pool is indexed with a mask */
#define BENCH_PER_FILE 10000 /* rules per file, so big tables span several files */

static const char bench_conf[] =
    "{\"listen\": \"127.0.0.1:8080\","
    " \"vendors\": {\"clouddialer\": {\"base_url\": \"https://cd.test\"},"
    "   \"callerdesk\": {\"base_url\": \"https://cdk.test\"},"
    "   \"ccai\": {\"base_url\": \"https://ccai.test\"}},"
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

/* Country codes, roughly as often as they show up in an international LCR sheet. */
static const char *const bench_cc[] = {
    "1",   "1",  "1",   "44",  "44",  "49",  "33",  "39",  "34",  "31",  "32",  "41",
    "43",  "45", "46",  "47",  "48",  "351", "353", "30",  "91",  "91",  "91",  "92",
    "880", "94", "977", "86",  "81",  "82",  "852", "65",  "60",  "62",  "63",  "66",
    "84",  "61", "64",  "971", "966", "974", "965", "20",  "27",  "234", "254", "55",
    "52",  "54", "56",  "57",  "51",  "7",   "90",  "972", "380", "40",  "36",  "420"};

#define BENCH_NCC (sizeof(bench_cc) / sizeof(bench_cc[0]))

static uint64_t bench_seed = 0x2545f4914f6cdd1dull;

static uint32_t
bench_rand(void)
{
    bench_seed ^= bench_seed << 13;
    bench_seed ^= bench_seed >> 7;
    bench_seed ^= bench_seed << 17;
    return (uint32_t)(bench_seed >> 16);
}

/* Country code + 1 to 5 more digits (2 to 8 digits in all), like "+9198" or "+4420". */
static void
bench_prefix(char *out, size_t outlen)
{
    size_t n = (size_t)snprintf(out, outlen, "+%s", bench_cc[bench_rand() % BENCH_NCC]);
    size_t extra = 1 + bench_rand() % 5, i;

    for (i = 0; i < extra && n + 1 < outlen; i++) {
        out[n++] = (char)('0' + bench_rand() % 10);
    }
    out[n] = '\0';
}

static int
bench_cmp_prefix(const void *a, const void *b)
{
    const char *x = a, *y = b;
    size_t lx = strlen(x), ly = strlen(y);

    /* longest first, as an LCR table is written for first-match routing */
    if (lx != ly) {
        return lx > ly ? -1 : 1;
    }
    return strcmp(x, y);
}

#define BENCH_PLEN 16 /* bytes per prefix in a prefix array */

static int
bench_cmp_text(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* n distinct prefixes, longest first, BENCH_PLEN bytes each (caller frees). */
static char *
bench_prefixes(size_t n)
{
    size_t cap = n + n / 4 + 16, have = 0, i, out;
    char *p = calloc(cap, BENCH_PLEN), tmp[BENCH_PLEN];

    if (p == NULL) {
        return NULL;
    }
    for (;;) {
        while (have < cap) {
            bench_prefix(p + have++ * BENCH_PLEN, BENCH_PLEN);
        }
        qsort(p, have, BENCH_PLEN, bench_cmp_text);
        for (i = 0, out = 0; i < have; i++) {
            if (out == 0 || strcmp(p + (out - 1) * BENCH_PLEN, p + i * BENCH_PLEN) != 0) {
                memmove(p + out++ * BENCH_PLEN, p + i * BENCH_PLEN, BENCH_PLEN);
            }
        }
        if (out >= n) {
            break;
        }
        have = out;
    }
    /* a random n of them (a shuffle's head), then in table order */
    for (i = 0; i < n; i++) {
        size_t j = i + bench_rand() % (out - i);
        memcpy(tmp, p + i * BENCH_PLEN, BENCH_PLEN);
        memcpy(p + i * BENCH_PLEN, p + j * BENCH_PLEN, BENCH_PLEN);
        memcpy(p + j * BENCH_PLEN, tmp, BENCH_PLEN);
    }
    qsort(p, n, BENCH_PLEN, bench_cmp_prefix);
    return p;
}

static int
bench_write(const char *dir, size_t file, const char *text)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%03zu-lcr.json", dir, file);
    f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }
    fputs(text, f);
    return fclose(f);
}

/* One rule's JSON for prefix number i: mostly plain, some with tags, a window or a tenant. */
static int
bench_rule(char *out, size_t outlen, size_t i, const char *prefix)
{
    const char *extra = "";

    switch (i % 20) {
    case 3:
        extra = ", \"tags\": {\"department\": \"sales\"}";
        break;
    case 7:
        extra = ", \"time\": {\"days\": \"mon-fri\", \"from\": \"09:00\", \"to\": \"18:00\", "
                "\"zone\": \"Asia/Kolkata\"}";
        break;
    case 11:
        extra = ", \"tenant\": [\"beta\"]";
        break;
    case 13:
        extra = ", \"time\": {\"days\": \"sat,sun\", \"from\": \"22:00\", \"to\": \"06:00\", "
                "\"zone\": \"America/New_York\"}";
        break;
    }
    return snprintf(out, outlen,
                    "%s{\"name\": \"lcr-%zu\", \"match\": {\"to_prefix\": [\"%s\"]%s}, "
                    "\"vendors\": [\"%s\", \"ccai\"]}",
                    i % BENCH_PER_FILE == 0 ? "" : ",\n", i, prefix, extra,
                    i % 2 ? "clouddialer" : "callerdesk");
}

/* Write a table of n prefix rules (and a catch-all) into dir. Returns its prefixes or NULL. */
static char *
bench_table(const char *dir, size_t n)
{
    char *p = bench_prefixes(n);
    size_t cap = 256 * BENCH_PER_FILE + 1024, len = 0, i, file = 0;
    char *text = malloc(cap);

    if (p == NULL || text == NULL) {
        free(p);
        free(text);
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if (i % BENCH_PER_FILE == 0) {
            len = (size_t)snprintf(text, cap, "{\"rules\": [\n");
        }
        len += (size_t)bench_rule(text + len, cap - len, i, p + i * BENCH_PLEN);
        if (i % BENCH_PER_FILE == BENCH_PER_FILE - 1 || i == n - 1) {
            snprintf(text + len, cap - len, "]}\n");
            if (bench_write(dir, file++, text) != 0) {
                free(p);
                free(text);
                return NULL;
            }
        }
    }
    snprintf(text, cap,
             "{\"rules\": [{\"name\": \"default\", \"match\": {}, \"vendors\": "
             "[\"clouddialer\", \"callerdesk\"]}]}\n");
    if (bench_write(dir, 999, text) != 0) {
        free(p);
        p = NULL;
    }
    free(text);
    return p;
}

static void
bench_clean(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[512];

    while (d != NULL && (de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.') {
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            unlink(path);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
}

/* Numbers to route: half extend a prefix of the table, half are any number. */
static void
bench_numbers(char (*numbers)[20], const char *prefixes, size_t nprefixes)
{
    size_t i, k, len;

    for (i = 0; i < BENCH_NUMBERS; i++) {
        if (i % 2 == 0) {
            len = (size_t)snprintf(numbers[i], 20, "%s",
                                   prefixes + (bench_rand() % nprefixes) * BENCH_PLEN);
        } else {
            len = (size_t)snprintf(numbers[i], 20, "+%s", bench_cc[bench_rand() % BENCH_NCC]);
        }
        for (k = len; k < 12; k++) {
            numbers[i][k] = (char)('0' + bench_rand() % 10);
        }
        numbers[i][k] = '\0';
    }
}

static int
bench_one(const struct conf *conf, const char *dir, size_t n, char (*numbers)[20])
{
    static const char *const keys[] = {"department"};
    static const char *const values[] = {"sales"};
    char *prefixes, *errors = NULL, *warnings = NULL;
    struct route_table *t;
    struct route_call c = {.tenant = "acme",
                           .type = "outbound",
                           .needs = VENDOR_CAP_OUTBOUND,
                           .tag_keys = keys,
                           .tag_values = values};
    int64_t start, load_us, elapsed = 0;
    size_t ops = 0, hits = 0;

    bench_clean(dir);
    if ((prefixes = bench_table(dir, n)) == NULL) {
        fprintf(stderr, "routes_bench: cannot write the table into %s\n", dir);
        return -1;
    }
    bench_numbers(numbers, prefixes, n);
    free(prefixes);
    start = util_mono_us();
    t = routes_load_dir(dir, conf, &errors, &warnings);
    load_us = util_mono_us() - start;
    if (t == NULL) {
        fprintf(stderr, "routes_bench: the table was refused:\n%s", errors);
        free(errors);
        free(warnings);
        return -1;
    }
    if (warnings != NULL) {
        fprintf(stderr, "routes_bench: warnings:\n%s", warnings);
    }
    c.at_ms = util_now_ms();
    start = util_mono_us();
    while (ops < BENCH_MAX_OPS && elapsed < BENCH_MAX_US) {
        size_t k;
        for (k = 0; k < 1024 && ops < BENCH_MAX_OPS; k++, ops++) {
            const struct route_rule *r;
            c.to = numbers[ops & (BENCH_NUMBERS - 1)];
            c.ntags = ops & 1; /* every other call is tagged department=sales */
            r = routes_match(t, &c, NULL);
            hits += r != NULL && r->nprefix > 0;
        }
        elapsed = util_mono_us() - start;
    }
    printf("prefixes=%-6zu rules=%-6zu load_ms=%8.1f decisions=%-8zu decisions/s=%10.0f "
           "ns/decision=%6.0f prefix_hits=%.0f%%\n",
           t->nprefixes, t->nrules, (double)load_us / 1000.0, ops,
           (double)ops * 1e6 / (double)elapsed, (double)elapsed * 1000.0 / (double)ops,
           100.0 * (double)hits / (double)ops);
    fflush(stdout);
    routes_unref(t);
    free(errors);
    free(warnings);
    return 0;
}

static int
bench_order(const struct conf *conf, const char *dir)
{
    char *errors = NULL, *warnings = NULL, (*ids)[32] = calloc(BENCH_NUMBERS, 32);
    struct route_table *t;
    size_t order[8], ops = 0, i, first0 = 0;
    int64_t start, elapsed = 0;

    bench_clean(dir);
    if (ids == NULL ||
        bench_write(dir, 0,
                    "{\"rules\": [{\"name\": \"split\", \"match\": {}, \"strategy\": "
                    "\"weighted\", \"vendors\": [{\"vendor\": \"clouddialer\", "
                    "\"weight\": 60}, {\"vendor\": \"callerdesk\", \"weight\": 30}, "
                    "{\"vendor\": \"ccai\", \"weight\": 10}]}]}") != 0 ||
        (t = routes_load_dir(dir, conf, &errors, &warnings)) == NULL) {
        fprintf(stderr, "routes_bench: weighted table: %s\n", errors ? errors : "cannot write");
        free(errors);
        free(warnings);
        free(ids);
        return -1;
    }
    for (i = 0; i < BENCH_NUMBERS; i++) {
        snprintf(ids[i], 32, "call_01JD%08x%08x", bench_rand(), bench_rand());
    }
    start = util_mono_us();
    while (ops < BENCH_MAX_OPS && elapsed < BENCH_MAX_US) {
        size_t k;
        for (k = 0; k < 1024 && ops < BENCH_MAX_OPS; k++, ops++) {
            routes_order(&t->rules[0], ids[ops & (BENCH_NUMBERS - 1)], order, 8);
            first0 += order[0] == 0;
        }
        elapsed = util_mono_us() - start;
    }
    printf("weighted routes_order (3 vendors 60/30/10): orders=%zu orders/s=%.0f ns/order=%.0f "
           "first=clouddialer %.1f%%\n",
           ops, (double)ops * 1e6 / (double)elapsed, (double)elapsed * 1000.0 / (double)ops,
           100.0 * (double)first0 / (double)ops);
    routes_unref(t);
    free(errors);
    free(warnings);
    free(ids);
    return 0;
}

int
main(void)
{
    static const size_t sizes[] = {1, 1000, 50000};
    const char *tmp = getenv("TMPDIR");
    char dir[512], *errors = NULL, (*numbers)[20] = calloc(BENCH_NUMBERS, 20);
    struct conf *conf = conf_load_string(bench_conf, "routes_bench.json", &errors);
    size_t i;
    int rc = 0;

    if (conf == NULL || numbers == NULL) {
        fprintf(stderr, "routes_bench: configuration refused:\n%s", errors ? errors : "");
        free(errors);
        free(numbers);
        return 1;
    }
    snprintf(dir, sizeof(dir), "%s/routes-bench-XXXXXX", tmp != NULL && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("routes_bench: mkdtemp");
        conf_unref(conf);
        free(numbers);
        return 1;
    }
#if defined(__SANITIZE_ADDRESS__)
    printf("routes_bench: AddressSanitizer build: figures are several times slower than a plain "
           "build\n");
#endif
    for (i = 0; rc == 0 && i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        rc = bench_one(conf, dir, sizes[i], numbers);
    }
    if (rc == 0) {
        rc = bench_order(conf, dir);
    }
    bench_clean(dir);
    rmdir(dir);
    conf_unref(conf);
    free(numbers);
    return rc == 0 ? 0 : 1;
}
