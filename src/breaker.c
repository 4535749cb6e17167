/*
 * breaker.c: see breaker.h. Each vendor keeps a ring of its last attempts
 * (failed flag and latency) for the ratio trigger and the admin figures.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "breaker.h"
#include "cglog.h"
#include "metrics.h"
#include "util.h"

#define BREAKER_MAX_VENDORS 32
#define BREAKER_RING 128

const char *const breaker_state_text[] = {"closed", "open", "half_open"};

struct breaker_vendor {
    char name[32];
    enum breaker_state state;
    int64_t opened_ms;
    int probing;               /* half-open: the probe is out */
    int64_t probe_ms;          /* ... since then */
    int consecutive;
    unsigned char failed[BREAKER_RING];
    float ms[BREAKER_RING];
    int n;                     /* attempts in the ring */
    int next;                  /* where the next one goes */
};

struct breaker {
    struct breaker_opts o;
    struct breaker_vendor v[BREAKER_MAX_VENDORS];
    int nv;
};

struct breaker *
breaker_new(const struct breaker_opts *opts)
{
    struct breaker *b = calloc(1, sizeof(*b));

    if (b != NULL) {
        b->o = *opts;
        if (b->o.window > BREAKER_RING) {
            b->o.window = BREAKER_RING;
        }
    }
    return b;
}

void
breaker_free(struct breaker *b)
{
    free(b);
}

static struct breaker_vendor *
breaker_vendor(struct breaker *b, const char *name)
{
    int i;

    for (i = 0; i < b->nv; i++) {
        if (strcmp(b->v[i].name, name) == 0) {
            return &b->v[i];
        }
    }
    if (b->nv == BREAKER_MAX_VENDORS || strlen(name) >= sizeof(b->v[0].name)) {
        return NULL;
    }
    memset(&b->v[b->nv], 0, sizeof(b->v[0]));
    util_strlcpy(b->v[b->nv].name, name, sizeof(b->v[0].name));
    return &b->v[b->nv++];
}

/* Open has lasted long enough: the next caller may probe. */
static void
breaker_tick(const struct breaker *b, struct breaker_vendor *v, int64_t now_ms)
{
    if (v->state == BREAKER_OPEN && now_ms - v->opened_ms >= b->o.open_ms) {
        v->state = BREAKER_HALF_OPEN;
        v->probing = 0;
        metrics_inc(METRIC_CIRCUIT_TRANSITIONS, v->name, breaker_state_text[v->state], NULL);
    }
}

static void
breaker_set(struct breaker_vendor *v, enum breaker_state st, int64_t now_ms, const char *why)
{
    if (v->state != st) {
        cglog_warn("circuit", "{s:s, s:s, s:s, s:s}", "vendor", v->name, "from",
                   breaker_state_text[v->state], "to", breaker_state_text[st], "why", why);
        metrics_inc(METRIC_CIRCUIT_TRANSITIONS, v->name, breaker_state_text[st], NULL);
    }
    v->state = st;
    v->probing = 0;
    if (st == BREAKER_OPEN) {
        v->opened_ms = now_ms;
    }
}

int
breaker_allow(struct breaker *b, const char *vendor, int64_t now_ms)
{
    struct breaker_vendor *v = breaker_vendor(b, vendor);

    if (v == NULL) {
        return 1;
    }
    breaker_tick(b, v, now_ms);
    if (v->state == BREAKER_CLOSED) {
        return 1;
    }
    /* A probe that never reported (its request was lost) is written off
     * after open_ms, so the circuit cannot stay half-open for ever. */
    if (v->state == BREAKER_HALF_OPEN &&
        (!v->probing || now_ms - v->probe_ms >= b->o.open_ms)) {
        v->probing = 1;
        v->probe_ms = now_ms;
        return 1;
    }
    return 0;
}

void
breaker_cancel(struct breaker *b, const char *vendor)
{
    struct breaker_vendor *v = breaker_vendor(b, vendor);

    if (v != NULL && v->state == BREAKER_HALF_OPEN) {
        v->probing = 0;
    }
}

enum breaker_state
breaker_peek(struct breaker *b, const char *vendor, int64_t now_ms)
{
    struct breaker_vendor *v = breaker_vendor(b, vendor);

    if (v == NULL) {
        return BREAKER_CLOSED;
    }
    breaker_tick(b, v, now_ms);
    return v->state;
}

/* failed count among the last `window` attempts (or fewer). */
static int
breaker_recent(const struct breaker_vendor *v, int window, int *attempts)
{
    int i, k, failed = 0, n = v->n < window ? v->n : window;

    for (i = 0; i < n; i++) {
        k = (v->next - 1 - i + BREAKER_RING) % BREAKER_RING;
        failed += v->failed[k];
    }
    *attempts = n;
    return failed;
}

void
breaker_report(struct breaker *b, const char *vendor, int failed, double ms, int64_t now_ms)
{
    struct breaker_vendor *v = breaker_vendor(b, vendor);
    int attempts, nfailed;

    if (v == NULL) {
        return;
    }
    v->failed[v->next] = failed ? 1 : 0;
    v->ms[v->next] = (float)ms;
    v->next = (v->next + 1) % BREAKER_RING;
    if (v->n < BREAKER_RING) {
        v->n++;
    }
    v->consecutive = failed ? v->consecutive + 1 : 0;
    if (v->state == BREAKER_HALF_OPEN) {
        breaker_set(v, failed ? BREAKER_OPEN : BREAKER_CLOSED, now_ms,
                    failed ? "the probe failed" : "the probe succeeded");
        return;
    }
    if (v->state != BREAKER_CLOSED || !failed) {
        return;
    }
    nfailed = breaker_recent(v, b->o.window, &attempts);
    if (b->o.consecutive > 0 && v->consecutive >= b->o.consecutive) {
        breaker_set(v, BREAKER_OPEN, now_ms, "consecutive failures");
    } else if (b->o.ratio_pct > 0 && attempts >= b->o.min_attempts &&
               nfailed * 100 >= b->o.ratio_pct * attempts) {
        breaker_set(v, BREAKER_OPEN, now_ms, "failure ratio");
    }
}

static int
breaker_cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;

    return x < y ? -1 : x > y;
}

json_t *
breaker_json(struct breaker *b, int64_t now_ms)
{
    json_t *out = json_object();
    float sorted[BREAKER_RING];
    int i, j;

    for (i = 0; i < b->nv; i++) {
        struct breaker_vendor *v = &b->v[i];
        int attempts, nfailed;
        char opened[UTIL_TIME_LEN];
        json_t *o;

        breaker_tick(b, v, now_ms);
        nfailed = breaker_recent(v, b->o.window, &attempts);
        for (j = 0; j < attempts; j++) {
            sorted[j] = v->ms[(v->next - 1 - j + BREAKER_RING) % BREAKER_RING];
        }
        qsort(sorted, (size_t)attempts, sizeof(float), breaker_cmp_float);
        util_rfc3339(v->opened_ms, opened, sizeof(opened));
        o = json_pack("{s:s, s:i, s:i, s:f, s:i}", "circuit", breaker_state_text[v->state],
                      "recent_attempts", attempts, "consecutive_failures", v->consecutive,
                      "recent_error_rate", attempts > 0 ? (double)nfailed / attempts : 0.0,
                      "recent_failures", nfailed);
        json_object_set_new(o, "opened_at", v->state != BREAKER_CLOSED ? json_string(opened)
                                                                        : json_null());
        json_object_set_new(o, "recent_p50_ms",
                            attempts > 0 ? json_real(sorted[attempts / 2]) : json_null());
        json_object_set_new(o, "recent_p99_ms",
                            attempts > 0 ? json_real(sorted[(attempts * 99) / 100]) : json_null());
        json_object_set_new(out, v->name, o);
    }
    return out;
}
