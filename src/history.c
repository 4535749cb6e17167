/*
 * history.c: the fan-out. One struct fanout per request holds one slot per
 * history vendor; each slot runs its own chain of upstream requests (pages,
 * for vendors that page, up to HISTORY_MAX_PAGES) and ends ok, error or
 * timeout. When the last slot ends -- or the request's deadline passes, in
 * which case the slots still running end as timeouts -- the answer is built
 * from whatever came back.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "app.h"
#include "conf.h"
#include "front.h"
#include "history.h"
#include "metrics.h"
#include "phone.h"
#include "problem.h"
#include "upstream.h"
#include "util.h"
#include "vendor.h"

#define HISTORY_MAX_NUMBERS 100
#define HISTORY_MAX_PAGES 10
#define HISTORY_MAX_RANGE_DAYS 31
#define HISTORY_DEFAULT_DAYS 30
#define HISTORY_MAX_VENDORS 8

struct fanout;

struct slot {
    struct fanout *f;
    const char *vendor;            /* borrowed from the conf */
    struct upstream_req *up;
    struct vendor_http http;
    int page;
    int done;
    const char *status;            /* "ok", "error", "timeout", "skipped" */
    char detail[256];
    int64_t start_us;
    double ms;
    size_t count;
};

struct fanout {
    struct front_req *r;           /* NULL once answered */
    struct app *app;
    struct conf *conf;             /* reference */
    const struct conf_tenant *tenant;
    int counts;                    /* /counts rather than calls */
    char numbers[HISTORY_MAX_NUMBERS][PHONE_E164_MAX];
    const char *number_ptrs[HISTORY_MAX_NUMBERS];
    size_t nnumbers;
    char start[11], end[11];
    struct slot slots[HISTORY_MAX_VENDORS];
    size_t nslots;
    size_t running;
    json_t *rows;                  /* merged calls */
    json_t *totals;                /* E.164 -> {total, inbound, outbound} */
};

static void fanout_finish(struct fanout *f);
static void slot_request(struct slot *s);

static void
fanout_free(struct fanout *f)
{
    size_t i;

    for (i = 0; i < f->nslots; i++) {
        if (f->slots[i].up != NULL) {
            upstream_cancel(f->slots[i].up);
        }
        vendor_http_clear(&f->slots[i].http);
    }
    json_decref(f->rows);
    json_decref(f->totals);
    conf_unref(f->conf);
    free(f);
}

static void
slot_end(struct slot *s, const char *status, const char *detail)
{
    s->done = 1;
    s->status = status;
    if (detail != NULL) {
        util_strlcpy(s->detail, detail, sizeof(s->detail));
    }
    s->ms = (double)(util_mono_us() - s->start_us) / 1000.0;
    if (--s->f->running == 0) {
        fanout_finish(s->f);
    }
}

static void
slot_query(const struct slot *s, struct vendor_history_query *q)
{
    q->numbers = s->f->number_ptrs;
    q->nnumbers = s->f->nnumbers;
    q->start_date = s->f->start;
    q->end_date = s->f->end;
    q->page = s->page;
}

static void
slot_on_done(enum upstream_result res, const struct upstream_response *resp, void *arg)
{
    struct slot *s = arg;
    struct fanout *f = s->f;
    const struct conf_vendor *cv = conf_vendor_find(f->conf, s->vendor);
    const struct vendor_ops *ops = vendor_ops_find(s->vendor);
    struct vendor_history_query q;
    struct vendor_ctx ctx;
    char err[256] = "";
    size_t before = f->counts ? 0 : json_array_size(f->rows);
    int more = 0, rc;

    s->up = NULL;
    vendor_http_clear(&s->http);
    metrics_vendor_request(s->vendor, f->counts ? "counts" : "history", upstream_result_text[res],
                           resp->status);
    if (res == UPSTREAM_ERR_TIMEOUT) {
        slot_end(s, "timeout", "the vendor did not answer in time");
        return;
    }
    if (res != UPSTREAM_OK) {
        snprintf(err, sizeof(err), "%s: %s", upstream_result_text[res], resp->error);
        slot_end(s, "error", err);
        return;
    }
    vendor_ctx_init(&ctx, cv, conf_tenant_vendor(f->tenant, s->vendor));
    slot_query(s, &q);
    rc = f->counts ? ops->parse_counts(&ctx, &q, resp->status, resp->body, resp->body_len,
                                       f->totals, err, sizeof(err))
                   : ops->parse_history(&ctx, &q, resp->status, resp->body, resp->body_len,
                                        f->rows, &more, err, sizeof(err));
    if (rc != 0) {
        slot_end(s, "error", err);
        return;
    }
    if (!f->counts) {
        s->count += json_array_size(f->rows) - before;
    }
    if (more && s->page < HISTORY_MAX_PAGES && f->r != NULL) {
        s->page++;
        slot_request(s);
        return;
    }
    slot_end(s, "ok", more ? "more pages than the gateway follows" : NULL);
}

/* Start (or continue) one vendor's part; ends the slot itself on failure. */
static void
slot_request(struct slot *s)
{
    struct fanout *f = s->f;
    const struct conf_vendor *cv = conf_vendor_find(f->conf, s->vendor);
    const struct vendor_ops *ops = vendor_ops_find(s->vendor);
    struct vendor_history_query q;
    struct upstream_request req;
    struct vendor_ctx ctx;
    char err[256];
    int rc;

    vendor_ctx_init(&ctx, cv, conf_tenant_vendor(f->tenant, s->vendor));
    slot_query(s, &q);
    rc = f->counts ? ops->build_counts(&ctx, &q, &s->http, err, sizeof(err))
                   : ops->build_history(&ctx, &q, &s->http, err, sizeof(err));
    if (rc != 0) {
        /* The vendor cannot be asked this (a number outside its country, no
         * credentials): nothing was sent, so it is left out, not failed. */
        slot_end(s, "skipped", err);
        return;
    }
    memset(&req, 0, sizeof(req));
    req.method = s->http.method;
    req.url = s->http.url;
    req.headers = (const char *const *)s->http.headers;
    req.body = s->http.body;
    req.body_len = s->http.body_len;
    req.connect_timeout_ms = cv->connect_timeout_ms;
    req.timeout_ms = cv->timeout_ms;
    s->up = upstream_start(f->app->upstream, &req, slot_on_done, s);
    if (s->up == NULL) {
        vendor_http_clear(&s->http);
        slot_end(s, "error", "the request could not be started");
    }
}

/* Newest first: rows carry RFC 3339 UTC times of one fixed shape. */
static int
history_row_cmp(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "started_at"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "started_at"));

    return strcmp(y != NULL ? y : "", x != NULL ? x : "");
}

static json_t *
history_sorted_rows(json_t *rows)
{
    size_t i, n = json_array_size(rows);
    json_t **v = calloc(n > 0 ? n : 1, sizeof(*v)), *out = json_array();

    for (i = 0; v != NULL && i < n; i++) {
        v[i] = json_array_get(rows, i);
    }
    if (v != NULL) {
        qsort(v, n, sizeof(*v), history_row_cmp);
        for (i = 0; i < n; i++) {
            json_array_append(out, v[i]);
        }
    }
    free(v);
    return out;
}

static void
fanout_finish(struct fanout *f)
{
    struct front_req *r = f->r;
    json_t *sources = json_array(), *out;
    size_t i, ok = 0, skipped = 0;

    if (r == NULL) {
        fanout_free(f);
        return;
    }
    f->r = NULL;
    r->on_deadline = NULL;
    for (i = 0; i < f->nslots; i++) {
        struct slot *s = &f->slots[i];
        json_t *src = json_pack("{s:s, s:s, s:i}", "vendor", s->vendor, "status", s->status,
                                "ms", (int)(s->ms + 0.5));
        if (strcmp(s->status, "skipped") == 0) {
            skipped++;
        }
        if (!f->counts) {
            json_object_set_new(src, "count", json_integer((json_int_t)s->count));
        }
        if (s->detail[0] != '\0') {
            json_t *d = json_string(s->detail);
            json_object_set_new(src, "detail", d != NULL ? d : json_string("(not UTF-8)"));
        }
        json_array_append_new(sources, src);
        ok += strcmp(s->status, "ok") == 0;
    }
    if (skipped == f->nslots) {
        front_problem_ex(r, 422, "unsupported-by-vendor",
                         "none of this tenant's history vendors can be asked about this number",
                         NULL, json_pack("{s:o}", "sources", sources), NULL);
        fanout_free(f);
        return;
    }
    if (ok == 0) {
        front_problem_ex(r, 502, "vendor-error", "no vendor answered the history query", NULL,
                         json_pack("{s:o}", "sources", sources), NULL);
        fanout_free(f);
        return;
    }
    out = json_pack("{s:s, s:s, s:b, s:o}", "start_date", f->start, "end_date", f->end,
                    "partial", ok + skipped < f->nslots, "sources", sources);
    if (f->counts) {
        json_t *list = json_array();
        for (i = 0; i < f->nnumbers; i++) {
            json_t *t = json_object_get(f->totals, f->numbers[i]);
            json_t *row = json_pack("{s:s, s:I, s:I, s:I}", "phone_number", f->numbers[i],
                                    "total", json_integer_value(json_object_get(t, "total")),
                                    "inbound", json_integer_value(json_object_get(t, "inbound")),
                                    "outbound", json_integer_value(json_object_get(t, "outbound")));
            json_array_append_new(list, row);
        }
        json_object_set_new(out, "counts", list);
    } else {
        json_object_set_new(out, "phone_number", json_string(f->numbers[0]));
        json_object_set_new(out, "calls", history_sorted_rows(f->rows));
    }
    front_reply_json(r, 200, out, NULL);
    fanout_free(f);
}

/* The request's deadline: whatever is still running ends as a timeout. */
static void
fanout_on_deadline(struct front_req *r)
{
    struct fanout *f = r->ctx;
    size_t i;

    f->running++; /* hold f: the last slot_end would free it inside the loop */
    for (i = 0; i < f->nslots; i++) {
        struct slot *s = &f->slots[i];
        if (!s->done) {
            if (s->up != NULL) {
                upstream_cancel(s->up);
                s->up = NULL;
            }
            vendor_http_clear(&s->http);
            slot_end(s, "timeout", "the request's deadline passed");
        }
    }
    if (--f->running == 0) {
        fanout_finish(f);
    }
}

/* ---- request parsing ----------------------------------------------------- */

static int
history_parse_date(const char *s, int64_t *day)
{
    char buf[32];
    int64_t ms;

    if (strlen(s) != 10) {
        return -1;
    }
    snprintf(buf, sizeof(buf), "%sT00:00:00Z", s);
    if (util_parse_time(buf, NULL, &ms) != 0) {
        return -1;
    }
    *day = ms / 86400000;
    return 0;
}

static void
history_format_day(int64_t day, char out[11])
{
    char t[UTIL_TIME_LEN];

    util_rfc3339(day * 86400000, t, sizeof(t));
    memcpy(out, t, 10);
    out[10] = '\0';
}

/* Add one number (normalised, deduplicated) or an error. */
static void
history_add_number(struct fanout *f, const char *raw, size_t len, json_t *errors)
{
    char in[64], e164[PHONE_E164_MAX], msg[160];
    const char *why;
    size_t i;

    if (len == 0 || len >= sizeof(in)) {
        problem_add_error(errors, "phone_number", "holds an empty or over-long number");
        return;
    }
    memcpy(in, raw, len);
    in[len] = '\0';
    if (phone_normalize(in, f->tenant->default_country, e164, sizeof(e164), &why) != 0) {
        snprintf(msg, sizeof(msg), "\"%.40s\" is not a phone number: %s", in, why);
        problem_add_error(errors, "phone_number", msg);
        return;
    }
    for (i = 0; i < f->nnumbers; i++) {
        if (strcmp(f->numbers[i], e164) == 0) {
            return;
        }
    }
    if (f->nnumbers == HISTORY_MAX_NUMBERS) {
        problem_add_error(errors, "phone_number", "at most 100 numbers");
        return;
    }
    util_strlcpy(f->numbers[f->nnumbers], e164, sizeof(f->numbers[0]));
    f->number_ptrs[f->nnumbers] = f->numbers[f->nnumbers];
    f->nnumbers++;
}

/* Read and check the query into f; errors collects the problems. */
static void
history_parse_query(struct fanout *f, const char *query, json_t *errors)
{
    struct evkeyvalq q;
    struct evkeyval *kv;
    const char *numbers = NULL, *start = NULL, *end = NULL;
    int64_t sday = 0, eday = 0, today = util_now_ms() / 86400000;

    TAILQ_INIT(&q);
    if (query != NULL && evhttp_parse_query_str(query, &q) != 0) {
        problem_add_error(errors, "query", "is not a valid query string");
    }
    TAILQ_FOREACH(kv, &q, next) {
        if (strcmp(kv->key, "phone_number") == 0) {
            numbers = kv->value;
        } else if (strcmp(kv->key, "start_date") == 0) {
            start = kv->value;
        } else if (strcmp(kv->key, "end_date") == 0) {
            end = kv->value;
        } else {
            problem_add_error(errors, kv->key, "unknown query parameter");
        }
    }
    if (numbers == NULL || numbers[0] == '\0') {
        problem_add_error(errors, "phone_number", "is required");
    } else if (!f->counts) {
        history_add_number(f, numbers, strlen(numbers), errors);
    } else {
        const char *p = numbers;
        while (*p != '\0' && f->nnumbers < HISTORY_MAX_NUMBERS + 1) {
            const char *comma = strchr(p, ',');
            size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
            if (f->nnumbers == HISTORY_MAX_NUMBERS) {
                problem_add_error(errors, "phone_number", "at most 100 numbers");
                break;
            }
            history_add_number(f, p, len, errors);
            p += len + (comma != NULL ? 1 : 0);
        }
    }
    if ((start == NULL) != (end == NULL)) {
        problem_add_error(errors, start == NULL ? "start_date" : "end_date",
                          "give both dates or neither");
    } else if (start != NULL) {
        int bad = 0;
        if (history_parse_date(start, &sday) != 0) {
            problem_add_error(errors, "start_date", "must be a date YYYY-MM-DD");
            bad = 1;
        }
        if (history_parse_date(end, &eday) != 0) {
            problem_add_error(errors, "end_date", "must be a date YYYY-MM-DD");
            bad = 1;
        }
        if (!bad && eday < sday) {
            problem_add_error(errors, "end_date", "is before start_date");
        } else if (!bad && eday - sday > HISTORY_MAX_RANGE_DAYS) {
            problem_add_error(errors, "end_date", "the range may not exceed 31 days");
        }
    } else {
        eday = today;
        sday = today - HISTORY_DEFAULT_DAYS;
    }
    history_format_day(sday, f->start);
    history_format_day(eday, f->end);
    evhttp_clear_headers(&q);
}

static void
history_start(struct front_req *r, int counts)
{
    struct fanout *f = calloc(1, sizeof(*f));
    json_t *errors = json_array();
    size_t i;

    if (f == NULL) {
        json_decref(errors);
        front_problem(r, 500, "internal", "out of memory", NULL);
        return;
    }
    f->r = r;
    f->app = r->app;
    f->conf = conf_ref(r->conf);
    f->tenant = r->tenant;
    f->counts = counts;
    f->rows = json_array();
    f->totals = json_object();
    history_parse_query(f, r->query, errors);
    if (json_array_size(errors) > 0) {
        f->r = NULL;
        front_problem(r, 400, "validation", "the query has invalid parameters; see errors",
                      errors);
        fanout_free(f);
        return;
    }
    json_decref(errors);
    for (i = 0; i < f->tenant->nvendors && f->nslots < HISTORY_MAX_VENDORS; i++) {
        const char *name = f->tenant->vendors[i].vendor;
        const struct vendor_ops *ops = vendor_ops_find(name);
        if ((ops->caps & VENDOR_CAP_HISTORY) &&
            (counts ? ops->build_counts != NULL : ops->build_history != NULL)) {
            f->slots[f->nslots].f = f;
            f->slots[f->nslots].vendor = name;
            f->slots[f->nslots].page = 1;
            f->nslots++;
        }
    }
    if (f->nslots == 0) {
        f->r = NULL;
        front_problem(r, 422, "unsupported-by-vendor",
                      "none of this tenant's vendors keeps call history", NULL);
        fanout_free(f);
        return;
    }
    r->ctx = f;
    r->on_deadline = fanout_on_deadline;
    /* One extra hold while starting: slot_request may end a slot at once, and
     * the last slot_end frees f. */
    f->running = f->nslots + 1;
    for (i = 0; i < f->nslots; i++) {
        f->slots[i].start_us = util_mono_us();
        slot_request(&f->slots[i]);
    }
    if (--f->running == 0) {
        fanout_finish(f);
    }
}

void
history_logs(struct front_req *r)
{
    history_start(r, 0);
}

void
history_counts(struct front_req *r)
{
    history_start(r, 1);
}
