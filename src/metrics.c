/*
 * metrics.c: see metrics.h. Each metric owns a fixed array of series
 * (allocated on its first update, max_series long) and an open-addressed
 * index of them by a hash of their label values. Histograms keep one count
 * per bucket (not cumulative: an observation touches one cell) and the
 * renderer sums them up.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <hiredis/hiredis.h>

#include "app.h"
#include "breaker.h"
#include "conf.h"
#include "front.h"
#include "metrics.h"
#include "routes.h"
#include "store.h"
#include "util.h"

#define METRICS_MAX_LABELS 3
#define METRICS_MAX_BUCKETS 14
#define METRICS_SCRAPE_TENANTS 1000 /* tenants whose queues one scrape reads */

struct metrics_def {
    const char *name;
    enum metrics_type type;
    const char *labels; /* "route,status" */
    int max_series;
    enum metrics_buckets buckets;
    const char *help;
};

#define METRICS_DEF_ROW(id, name, type, labels, max, buckets, help)                                \
    [id] = {name, type, labels, max, buckets, help},
static const struct metrics_def metrics_defs[METRICS_MAX] = {METRICS_LIST(METRICS_DEF_ROW)};
#undef METRICS_DEF_ROW

/* Upper bounds in seconds, ascending; 0 ends a set. */
static const double metrics_bucket_sets[][METRICS_MAX_BUCKETS] = {
    [METRICS_B_NONE] = {0},
    [METRICS_B_HTTP] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 0},
    [METRICS_B_VENDOR] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 0},
    [METRICS_B_REDIS] = {0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 0},
};

struct metrics_series {
    uint64_t hash;
    char values[METRICS_MAX_LABELS][METRICS_VALUE_MAX];
    double value;      /* counter, gauge; a histogram's sum */
    uint64_t count;    /* histogram: observations */
    uint64_t *buckets; /* histogram: per-bucket counts (+Inf last) */
};

struct metrics_metric {
    struct metrics_series *series; /* max_series of them, NULL until first used */
    uint16_t *index;               /* nslots entries: series number + 1, 0 = free */
    uint64_t *bucket_mem;          /* histograms: max_series * (nbounds + 1) */
    int nseries;
    int nslots; /* power of two, at least twice max_series */
    int nlabels;
    int nbounds; /* finite bucket bounds */
};

static struct metrics_metric metrics_state[METRICS_MAX];
static double metrics_start_s;

/* The HTTP reply cache: (static route label, status) -> both handles. */
#define METRICS_HTTP_CACHE 256
static struct {
    const char *route;
    int status;
    int used;
    int h_count, h_duration;
} metrics_http_cache[METRICS_HTTP_CACHE];

/* ---- the registry -------------------------------------------------------- */

static int
metrics_count_labels(const char *labels)
{
    int n = labels[0] != '\0';

    for (; *labels != '\0'; labels++) {
        n += *labels == ',';
    }
    return n;
}

static int
metrics_alloc(enum metrics_id id)
{
    struct metrics_metric *m = &metrics_state[id];
    const struct metrics_def *d = &metrics_defs[id];
    int slots = 4;

    while (slots < 2 * d->max_series) {
        slots <<= 1;
    }
    m->nlabels = metrics_count_labels(d->labels);
    m->nbounds = 0;
    while (d->buckets != METRICS_B_NONE && m->nbounds < METRICS_MAX_BUCKETS &&
           metrics_bucket_sets[d->buckets][m->nbounds] > 0) {
        m->nbounds++;
    }
    m->series = calloc((size_t)d->max_series, sizeof(*m->series));
    m->index = calloc((size_t)slots, sizeof(*m->index));
    if (d->type == METRICS_HISTOGRAM) {
        m->bucket_mem = calloc((size_t)d->max_series * (size_t)(m->nbounds + 1), sizeof(uint64_t));
    }
    if (m->series == NULL || m->index == NULL ||
        (d->type == METRICS_HISTOGRAM && m->bucket_mem == NULL)) {
        free(m->series);
        free(m->index);
        free(m->bucket_mem);
        memset(m, 0, sizeof(*m));
        return -1;
    }
    m->nslots = slots;
    return 0;
}

/* FNV-1a over the values, each ended by a byte no value holds in a useful way. */
static uint64_t
metrics_hash(const char *const *v, int n)
{
    uint64_t h = 1469598103934665603ULL;
    int i;
    size_t k;

    for (i = 0; i < n; i++) {
        for (k = 0; v[i][k] != '\0' && k < METRICS_VALUE_MAX - 1; k++) {
            h = (h ^ (unsigned char)v[i][k]) * 1099511628211ULL;
        }
        h = (h ^ 0xff) * 1099511628211ULL;
    }
    return h;
}

static int
metrics_same(const struct metrics_series *s, const char *const *v, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        if (strncmp(s->values[i], v[i], METRICS_VALUE_MAX - 1) != 0) {
            return 0;
        }
    }
    return 1;
}

static int
metrics_handle(enum metrics_id id, int series)
{
    return ((int)id << 16) | series;
}

/* Find or add; full metrics fold new label sets into the all-"other" series. */
static int
metrics_lookup(enum metrics_id id, const char *const *v)
{
    struct metrics_metric *m = &metrics_state[id];
    const struct metrics_def *d = &metrics_defs[id];
    static const char *const other[METRICS_MAX_LABELS] = {"other", "other", "other"};
    uint64_t h = metrics_hash(v, m->nlabels);
    unsigned slot = (unsigned)h & (unsigned)(m->nslots - 1);
    struct metrics_series *s;
    int i;

    while (m->index[slot] != 0) {
        s = &m->series[m->index[slot] - 1];
        if (s->hash == h && metrics_same(s, v, m->nlabels)) {
            return metrics_handle(id, m->index[slot] - 1);
        }
        slot = (slot + 1) & (unsigned)(m->nslots - 1);
    }
    /* The last place is kept for "other", so the fold always has room. */
    if (m->nseries >= d->max_series - 1 && v != other && m->nlabels > 0) {
        if (id != METRIC_OVERFLOW) {
            metrics_inc(METRIC_OVERFLOW, d->name, NULL, NULL);
        }
        return metrics_lookup(id, other);
    }
    if (m->nseries >= d->max_series) {
        return -1; /* a metric without labels only ever has one series */
    }
    s = &m->series[m->nseries];
    memset(s, 0, sizeof(*s));
    s->hash = h;
    for (i = 0; i < m->nlabels; i++) {
        util_strlcpy(s->values[i], v[i], METRICS_VALUE_MAX);
    }
    if (m->bucket_mem != NULL) {
        s->buckets = m->bucket_mem + (size_t)m->nseries * (size_t)(m->nbounds + 1);
        memset(s->buckets, 0, (size_t)(m->nbounds + 1) * sizeof(uint64_t));
    }
    m->index[slot] = (uint16_t)(m->nseries + 1);
    return metrics_handle(id, m->nseries++);
}

int
metrics_series(enum metrics_id id, const char *a, const char *b, const char *c)
{
    const char *v[METRICS_MAX_LABELS];

    if ((unsigned)id >= METRICS_MAX) {
        return -1;
    }
    if (metrics_state[id].series == NULL && metrics_alloc(id) != 0) {
        return -1;
    }
    v[0] = a != NULL ? a : "";
    v[1] = b != NULL ? b : "";
    v[2] = c != NULL ? c : "";
    return metrics_lookup(id, v);
}

static struct metrics_series *
metrics_of(int h)
{
    if (h < 0) {
        return NULL;
    }
    return &metrics_state[h >> 16].series[h & 0xffff];
}

void
metrics_series_add(int h, double v)
{
    struct metrics_series *s = metrics_of(h);

    if (s != NULL) {
        s->value += v;
    }
}

void
metrics_series_set(int h, double v)
{
    struct metrics_series *s = metrics_of(h);

    if (s != NULL) {
        s->value = v;
    }
}

void
metrics_series_observe(int h, double seconds)
{
    struct metrics_series *s = metrics_of(h);
    const struct metrics_metric *m;
    const double *bounds;
    int i = 0;

    if (s == NULL || s->buckets == NULL) {
        return;
    }
    m = &metrics_state[h >> 16];
    bounds = metrics_bucket_sets[metrics_defs[h >> 16].buckets];
    while (i < m->nbounds && seconds > bounds[i]) {
        i++;
    }
    s->buckets[i]++;
    s->count++;
    s->value += seconds;
}

void
metrics_add(enum metrics_id id, double v, const char *a, const char *b, const char *c)
{
    metrics_series_add(metrics_series(id, a, b, c), v);
}

void
metrics_set(enum metrics_id id, double v, const char *a, const char *b, const char *c)
{
    metrics_series_set(metrics_series(id, a, b, c), v);
}

void
metrics_observe(enum metrics_id id, double seconds, const char *a, const char *b, const char *c)
{
    metrics_series_observe(metrics_series(id, a, b, c), seconds);
}

void
metrics_http_reply(const char *route, int status, double seconds)
{
    unsigned k = (unsigned)(((uintptr_t)route >> 3) ^ ((unsigned)status * 2654435761u)) &
                 (METRICS_HTTP_CACHE - 1);

    if (!metrics_http_cache[k].used || metrics_http_cache[k].route != route ||
        metrics_http_cache[k].status != status || metrics_http_cache[k].h_count < 0 ||
        metrics_http_cache[k].h_duration < 0) {
        char code[4];
        const char *label = route != NULL ? route : "other";
        int x = status >= 100 && status <= 999 ? status : 0;

        code[0] = (char)('0' + x / 100);
        code[1] = (char)('0' + x / 10 % 10);
        code[2] = (char)('0' + x % 10);
        code[3] = '\0';
        metrics_http_cache[k].used = 1;
        metrics_http_cache[k].route = route;
        metrics_http_cache[k].status = status;
        metrics_http_cache[k].h_count = metrics_series(METRIC_HTTP_REQUESTS, label, code, NULL);
        metrics_http_cache[k].h_duration = metrics_series(METRIC_HTTP_DURATION, label, NULL, NULL);
    }
    metrics_series_add(metrics_http_cache[k].h_count, 1.0);
    metrics_series_observe(metrics_http_cache[k].h_duration, seconds);
}

void
metrics_vendor_request(const char *vendor, const char *op, const char *result, long http_status)
{
    if (strcmp(result, "ok") == 0 && http_status >= 400) {
        result = "http_error";
    }
    metrics_inc(METRIC_VENDOR_REQUESTS, vendor, op, result);
}

void
metrics_rate_limited(const char *tenant)
{
    metrics_inc(METRIC_RATE_LIMITED, tenant, NULL, NULL);
}

void
metrics_vendor_throttled(const char *vendor, enum metrics_throttle reason)
{
    static const char *const text[METRICS_THROTTLE_MAX] = {
        [METRICS_THROTTLE_CONCURRENCY] = "concurrency",
        [METRICS_THROTTLE_RATE] = "rate",
        [METRICS_THROTTLE_RETRY_BUDGET] = "retry_budget",
    };

    if ((unsigned)reason < METRICS_THROTTLE_MAX) {
        metrics_inc(METRIC_VENDOR_THROTTLED, vendor, text[reason], NULL);
    }
}

void
metrics_clear(enum metrics_id id)
{
    struct metrics_metric *m = &metrics_state[id];

    if (m->series != NULL) {
        memset(m->index, 0, (size_t)m->nslots * sizeof(*m->index));
        m->nseries = 0;
    }
}

void
metrics_reset(void)
{
    int i;

    for (i = 0; i < METRICS_MAX; i++) {
        free(metrics_state[i].series);
        free(metrics_state[i].index);
        free(metrics_state[i].bucket_mem);
        memset(&metrics_state[i], 0, sizeof(metrics_state[i]));
    }
    /* Cached handles point at freed series now. */
    memset(metrics_http_cache, 0, sizeof(metrics_http_cache));
}

void
metrics_init(void)
{
    metrics_start_s = (double)util_now_ms() / 1000.0;
    metrics_set(METRIC_START_TIME, metrics_start_s, NULL, NULL, NULL);
    metrics_set(METRIC_BUILD_INFO, 1, PACKAGE_VERSION, CG_BUILD_OPTIONS, NULL);
}

/* ---- rendering ----------------------------------------------------------- */

void
metrics_escape(struct evbuffer *out, const char *value)
{
    const char *p, *run = value;

    for (p = value; *p != '\0'; p++) {
        const char *rep = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
        if (rep != NULL) {
            evbuffer_add(out, run, (size_t)(p - run));
            evbuffer_add(out, rep, 2);
            run = p + 1;
        }
    }
    evbuffer_add(out, run, (size_t)(p - run));
}

/* HELP text escapes only backslash and newline. */
static void
metrics_help(struct evbuffer *out, const char *help)
{
    for (; *help != '\0'; help++) {
        if (*help == '\\') {
            evbuffer_add(out, "\\\\", 2);
        } else if (*help == '\n') {
            evbuffer_add(out, "\\n", 2);
        } else {
            evbuffer_add(out, help, 1);
        }
    }
}

static void
metrics_number(struct evbuffer *out, double v)
{
    if (isnan(v)) {
        evbuffer_add(out, "NaN", 3);
    } else if (isinf(v)) {
        evbuffer_add_printf(out, "%sInf", v > 0 ? "+" : "-");
    } else if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        evbuffer_add_printf(out, "%.0f", v);
    } else {
        evbuffer_add_printf(out, "%.9g", v);
    }
}

/* {a="x",b="y"[,le="..."]} or nothing when there is no label at all. */
static void
metrics_labels(struct evbuffer *out, const struct metrics_def *d, const struct metrics_series *s,
               int nlabels, const char *le)
{
    const char *name = d->labels;
    int i;

    if (nlabels == 0 && le == NULL) {
        return;
    }
    evbuffer_add(out, "{", 1);
    for (i = 0; i < nlabels; i++) {
        const char *end = strchr(name, ',');
        size_t n = end != NULL ? (size_t)(end - name) : strlen(name);
        if (i > 0) {
            evbuffer_add(out, ",", 1);
        }
        evbuffer_add(out, name, n);
        evbuffer_add(out, "=\"", 2);
        metrics_escape(out, s->values[i]);
        evbuffer_add(out, "\"", 1);
        name += n + (end != NULL);
    }
    if (le != NULL) {
        evbuffer_add_printf(out, "%sle=\"%s\"", nlabels > 0 ? "," : "", le);
    }
    evbuffer_add(out, "}", 1);
}

static void
metrics_render_histogram(struct evbuffer *out, const struct metrics_def *d,
                         const struct metrics_metric *m, const struct metrics_series *s)
{
    const double *bounds = metrics_bucket_sets[d->buckets];
    uint64_t cum = 0;
    char le[32];
    int i;

    for (i = 0; i <= m->nbounds; i++) {
        cum += s->buckets[i];
        if (i < m->nbounds) {
            snprintf(le, sizeof(le), "%g", bounds[i]);
        } else {
            util_strlcpy(le, "+Inf", sizeof(le));
        }
        evbuffer_add_printf(out, "%s_bucket", d->name);
        metrics_labels(out, d, s, m->nlabels, le);
        evbuffer_add_printf(out, " %llu\n", (unsigned long long)cum);
    }
    evbuffer_add_printf(out, "%s_sum", d->name);
    metrics_labels(out, d, s, m->nlabels, NULL);
    evbuffer_add(out, " ", 1);
    metrics_number(out, s->value);
    evbuffer_add_printf(out, "\n%s_count", d->name);
    metrics_labels(out, d, s, m->nlabels, NULL);
    evbuffer_add_printf(out, " %llu\n", (unsigned long long)s->count);
}

int
metrics_render(struct evbuffer *out)
{
    static const char *const type_text[] = {"counter", "gauge", "histogram"};
    int id, i;

    for (id = 0; id < METRICS_MAX; id++) {
        const struct metrics_def *d = &metrics_defs[id];
        struct metrics_metric *m = &metrics_state[id];

        /* A metric without labels always shows (0 until it moves). */
        if (d->labels[0] == '\0' && m->nseries == 0 && d->type != METRICS_GAUGE) {
            if (metrics_series((enum metrics_id)id, NULL, NULL, NULL) < 0) {
                return -1;
            }
        }
        evbuffer_add_printf(out, "# HELP %s ", d->name);
        metrics_help(out, d->help);
        evbuffer_add_printf(out, "\n# TYPE %s %s\n", d->name, type_text[d->type]);
        for (i = 0; i < m->nseries; i++) {
            const struct metrics_series *s = &m->series[i];
            if (d->type == METRICS_HISTOGRAM) {
                metrics_render_histogram(out, d, m, s);
                continue;
            }
            evbuffer_add(out, d->name, strlen(d->name));
            metrics_labels(out, d, s, m->nlabels, NULL);
            evbuffer_add(out, " ", 1);
            metrics_number(out, s->value);
            evbuffer_add(out, "\n", 1);
        }
    }
    return 0;
}

/* ---- GET /metrics ---------------------------------------------------------- */

/*
 * One Redis round trip for every tenant's delivery gauges. ARGV: key prefix,
 * then tenant ids. Returns {{pending, dead, oldest age ms}, ...} in order.
 * The pending index sorts by event id, and ids begin with their creation
 * time, so its first member is the oldest.
 */
static const char metrics_lua_deliveries[] =
    "local P = ARGV[1]\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local out = {}\n"
    "for i = 2, #ARGV do\n"
    "  local pk = P .. 'relay:idx:pending:' .. ARGV[i]\n"
    "  local age = 0\n"
    "  local first = redis.call('ZRANGE', pk, 0, 0)\n"
    "  if first[1] then\n"
    "    local c = tonumber(redis.call('HGET', P .. 'relay:d:' .. first[1], 'created'))\n"
    "    if c and now > c then age = now - c end\n"
    "  end\n"
    "  out[#out + 1] = {redis.call('ZCARD', pk),\n"
    "                   redis.call('ZCARD', P .. 'relay:idx:dead:' .. ARGV[i]), age}\n"
    "end\n"
    "return out\n";

static struct store_script *metrics_script; /* made on the first scrape, kept */

/* A scrape waiting for Redis; r is NULL once the deadline answered it. */
struct metrics_scrape {
    struct front_req *r;
};

static void
metrics_reply(struct front_req *r, const struct redisReply *reply)
{
    struct app *app = r->app;
    struct evbuffer *out = evbuffer_new();
    const struct conf *c = r->conf;
    int64_t now = util_now_ms();
    size_t i;

    /* What other modules own, read now. */
    metrics_set(METRIC_HTTP_CONNECTIONS, (double)front_connections(app->front), NULL, NULL, NULL);
    metrics_set(METRIC_HTTP_INFLIGHT, front_inflight(app->front), NULL, NULL, NULL);
    metrics_set(METRIC_REDIS_UP, store_is_connected(app->store), NULL, NULL, NULL);
    metrics_clear(METRIC_CIRCUIT_STATE);
    for (i = 0; app->breaker != NULL && i < c->nvendors; i++) {
        metrics_set(METRIC_CIRCUIT_STATE, breaker_peek(app->breaker, c->vendors[i].name, now),
                    c->vendors[i].name, NULL, NULL);
    }
    metrics_clear(METRIC_ROUTES_INFO);
    if (app->routes != NULL) {
        metrics_set(METRIC_ROUTES_INFO, 1, app->routes->version, NULL, NULL);
    }
    metrics_clear(METRIC_DELIVERY_QUEUE);
    metrics_clear(METRIC_DELIVERY_OLDEST);
    metrics_clear(METRIC_DELIVERY_DEAD);
    metrics_set(METRIC_SCRAPE_REDIS_OK, reply != NULL, NULL, NULL, NULL);
    for (i = 0; reply != NULL && i < reply->elements && i < c->ntenants; i++) {
        const struct redisReply *t = reply->element[i];
        const char *tenant = c->tenants[i].id;
        if (t->type != REDIS_REPLY_ARRAY || t->elements != 3 ||
            t->element[0]->type != REDIS_REPLY_INTEGER ||
            t->element[1]->type != REDIS_REPLY_INTEGER ||
            t->element[2]->type != REDIS_REPLY_INTEGER) {
            continue;
        }
        metrics_set(METRIC_DELIVERY_QUEUE, (double)t->element[0]->integer, tenant, NULL, NULL);
        metrics_set(METRIC_DELIVERY_DEAD, (double)t->element[1]->integer, tenant, NULL, NULL);
        metrics_set(METRIC_DELIVERY_OLDEST, (double)t->element[2]->integer / 1000.0, tenant, NULL,
                    NULL);
    }
    if (out == NULL || metrics_render(out) != 0) {
        if (out != NULL) {
            evbuffer_free(out);
        }
        front_problem(r, 500, "internal", "out of memory", NULL);
        return;
    }
    front_reply_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8",
                    (const char *)evbuffer_pullup(out, -1), evbuffer_get_length(out), NULL);
    evbuffer_free(out);
}

static void
metrics_on_deadline(struct front_req *r)
{
    struct metrics_scrape *s = r->ctx;

    s->r = NULL; /* the Redis answer, when it comes, only frees s */
    metrics_reply(r, NULL);
}

static void
metrics_on_redis(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct metrics_scrape *s = arg;
    struct front_req *r = s->r;

    free(s);
    if (r == NULL) {
        return;
    }
    r->on_deadline = NULL;
    r->ctx = NULL;
    metrics_reply(r, res == STORE_OK && reply->type == REDIS_REPLY_ARRAY ? reply : NULL);
}

void
metrics_get(struct front_req *r)
{
    const struct conf *c = r->conf;
    size_t n = c->ntenants < METRICS_SCRAPE_TENANTS ? c->ntenants : METRICS_SCRAPE_TENANTS;
    const char **args = calloc(n + 1, sizeof(*args));
    struct metrics_scrape *s = calloc(1, sizeof(*s));
    size_t i;

    if (metrics_script == NULL) {
        metrics_script = store_script_new(metrics_lua_deliveries);
    }
    if (args == NULL || s == NULL || metrics_script == NULL) {
        free(args);
        free(s);
        metrics_reply(r, NULL);
        return;
    }
    args[0] = c->redis.key_prefix;
    for (i = 0; i < n; i++) {
        args[i + 1] = c->tenants[i].id;
    }
    s->r = r;
    r->ctx = s;
    r->on_deadline = metrics_on_deadline;
    if (store_eval(r->app->store, metrics_script, 0, (int)n + 1, args, NULL, metrics_on_redis, s) !=
        0) {
        r->on_deadline = NULL;
        free(s);
        metrics_reply(r, NULL);
    }
    free(args);
}
