/*
 * getdesk.c: the Getdesk adapter (Getdesk by Voxcrow), a call-history source
 * only. Sources: shared/seeds/003 (the vendor's "Call Log API V2" page) and
 * shared/vendors.md section 3.
 *
 * Call log: GET <base_url>/CallLogAPI?token=..&phone_number=..
 *   [&start_date=YYYY-MM-DD&end_date=YYYY-MM-DD] answers 200 with a JSON
 *   array of {agent_fullname, phone_number, agent_extension, trunk, calldate
 *   "YYYY-MM-DD HH:MM:SS", duration, disposition, call_type, recording_link,
 *   wrapup_name, wrapup_note}. It does not page.
 * Call count: GET <base_url>/CallLogCountAPI with the same parameters, where
 *   phone_number may be a comma-separated list, answers
 *   [{total_calls, phone_number, inbound_calls, outbound_calls}].
 * Errors: 400 token missing, 401 invalid token, 405 wrong method, 500.
 * Placing calls (ClickToCallAPI, answer shape unpublished) and webhooks
 * (none exist) are not supported: those hooks refuse.
 *
 * Uncertain facts, handled tolerantly:
 * - Host: the doc's "API Link" is blank; each tenant has its own host
 *   (probably https://<company>.getdesk.net), so base_url is the tenant's
 *   (ctx->base_url) and a missing one refuses the request.
 * - Number format (inf): the samples are 10-digit Nepali national numbers.
 *   We send the national significant number of the E.164 number, digits
 *   only, whatever the country; several numbers are joined with a literal
 *   comma as the doc writes them. Numbers in answers are matched back after
 *   dropping non-digits and one leading 0 (a full E.164 digit string also
 *   matches). Rows always report the queried E.164 number.
 * - calldate has no zone; it is read in the vendor's configured time_zone
 *   (ctx->conf->time_zone). Getdesk is probably on Nepal time (inf): configure
 *   "Asia/Kathmandu" (+05:45). A calldate that cannot be read fails the whole
 *   answer: a lying vendor must be visible, not silently thinned out.
 * - "No interactions" returns "an appropriate message" of unknown shape
 *   (gap): [] and a JSON object with a "message" (and no rows) both mean no
 *   calls. Anything that is not JSON is an error.
 * - duration and the counts may be numbers or numeric strings (the count
 *   sample mixes both); both are accepted, missing ones count as 0.
 * - Dispositions are Asterisk-CDR style: ANSWERED, NO ANSWER, MISSED, BUSY,
 *   FAILED (inf), matched case-insensitively ("NO_ANSWER"/"NOANSWER" too);
 *   anything else becomes status "unknown" with the raw disposition kept.
 * - recording_link comes without a scheme: "https://" is prefixed (a link
 *   that already has http:// or https:// is kept as is).
 * - call_type other than inbound/outbound (case-insensitive) gives direction
 *   "unknown".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "conf.h"
#include "phone.h"
#include "util.h"
#include "vendor.h"

#define GETDESK_REFUSE_PLACE "Getdesk is a call-history source only"

/* ---------------------------------------------------------------------------
 * Building requests
 */

/*
 * GET <base_url><path>?token=..&phone_number=<national[,national...]>
 * [&start_date=..&end_date=..] for the first nnumbers of q->numbers.
 */
static int
getdesk_build_get(const struct vendor_ctx *ctx, const struct vendor_history_query *q,
                  size_t nnumbers, const char *path, struct vendor_http *out, char *err,
                  size_t errlen)
{
    static const char *const headers[] = {"Accept: application/json", NULL};
    struct evbuffer *b;
    char *url;
    size_t i;

    if (ctx->base_url == NULL || ctx->base_url[0] == '\0') {
        snprintf(err, errlen, "no Getdesk host configured (base_url)");
        return -1;
    }
    if (ctx->api_key == NULL || ctx->api_key[0] == '\0') {
        snprintf(err, errlen, "no Getdesk token configured (api_key)");
        return -1;
    }
    if (nnumbers == 0 || q->numbers == NULL) {
        snprintf(err, errlen, "no phone number to ask Getdesk about");
        return -1;
    }
    if ((q->start_date == NULL) != (q->end_date == NULL)) {
        snprintf(err, errlen, "start_date and end_date go together");
        return -1;
    }
    if (q->start_date != NULL &&
        (!vendor_date_ok(q->start_date) || !vendor_date_ok(q->end_date))) {
        snprintf(err, errlen, "dates must be YYYY-MM-DD");
        return -1;
    }
    b = evbuffer_new();
    if (b == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    vendor_url_start(b, ctx->base_url, path);
    vendor_url_param(b, '?', "token", ctx->api_key);
    /* Numbers go as national digits, several joined by a literal comma as the
     * vendor's doc writes them. */
    evbuffer_add_printf(b, "&phone_number=");
    for (i = 0; i < nnumbers; i++) {
        char national[PHONE_E164_MAX];

        if (q->numbers[i] == NULL ||
            phone_national(q->numbers[i], national, sizeof(national)) < 0) {
            snprintf(err, errlen, "not an E.164 number: \"%.20s\"",
                     q->numbers[i] != NULL ? q->numbers[i] : "(null)");
            evbuffer_free(b);
            return -1;
        }
        evbuffer_add_printf(b, "%s%s", i > 0 ? "," : "", national);
    }
    if (q->start_date != NULL) {
        vendor_url_param(b, '&', "start_date", q->start_date);
        vendor_url_param(b, '&', "end_date", q->end_date);
    }
    url = util_evbuffer_dup(b, NULL);
    evbuffer_free(b);
    if (url == NULL || vendor_http_set(out, "GET", url, NULL, headers) != 0) {
        free(url);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    free(url);
    return 0;
}

static int
getdesk_build_history(const struct vendor_ctx *ctx, const struct vendor_history_query *q,
                      struct vendor_http *out, char *err, size_t errlen)
{
    /* CallLogAPI takes a single number. */
    return getdesk_build_get(ctx, q, q->nnumbers > 0 ? 1 : 0, "/CallLogAPI", out, err, errlen);
}

static int
getdesk_build_counts(const struct vendor_ctx *ctx, const struct vendor_history_query *q,
                     struct vendor_http *out, char *err, size_t errlen)
{
    return getdesk_build_get(ctx, q, q->nnumbers, "/CallLogCountAPI", out, err, errlen);
}

/* ---------------------------------------------------------------------------
 * Reading answers
 */

/*
 * The common part of both answers: the parsed JSON for a 2xx, or NULL with
 * err set (HTTP error with the vendor's message, or not JSON).
 */
static json_t *
getdesk_answer(long http_status, const char *body, size_t len, char *err, size_t errlen)
{
    json_t *root = body != NULL ? json_loadb(body, len, 0, NULL) : NULL;

    if (http_status < 200 || http_status > 299) {
        json_t *m = json_is_object(root) ? json_object_get(root, "message") : NULL;

        if (!json_is_string(m) && json_is_object(root)) {
            m = json_object_get(root, "error");
        }
        if (json_is_string(m) && json_string_value(m)[0] != '\0') {
            snprintf(err, errlen, "%s", json_string_value(m));
        } else {
            snprintf(err, errlen, "HTTP %ld", http_status);
        }
        json_decref(root);
        return NULL;
    }
    if (root == NULL) {
        snprintf(err, errlen, "Getdesk answer is not JSON");
        return NULL;
    }
    return root;
}

/*
 * The rows of a 2xx answer: the array itself, or NULL for a "no calls"
 * message object (then *empty is 1). NULL with *empty 0 and err set when the
 * answer is neither.
 */
static json_t *
getdesk_rows(json_t *root, int *empty, char *err, size_t errlen)
{
    *empty = 0;
    if (json_is_array(root)) {
        return root;
    }
    if (json_is_object(root)) {
        json_t *m = json_object_get(root, "message");
        json_t *e = json_object_get(root, "error");

        if (json_is_string(m)) {
            *empty = 1;
            return NULL;
        }
        if (json_is_string(e)) {
            snprintf(err, errlen, "%s", json_string_value(e));
            return NULL;
        }
    }
    snprintf(err, errlen, "Getdesk answer is neither a list nor a message");
    return NULL;
}

/* A count or duration: integer >= 0, numeric string, or real. 0 when missing/null. */
static int
getdesk_number(json_t *v, long *out)
{
    *out = 0;
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 1000000000) {
        *out = (long)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) <= 1e9) {
        *out = (long)json_real_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);

        if (s[0] == '\0') {
            return 0;
        }
        return util_parse_long(s, 0, 1000000000, out);
    }
    return -1;
}

/* A text field as a JSON string: strings as they are, numbers as text, else null. */
static json_t *
getdesk_text(json_t *v)
{
    char buf[32];

    if (json_is_string(v)) {
        return json_stringn(json_string_value(v), json_string_length(v));
    }
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        return json_string(buf);
    }
    return json_null();
}

static const struct {
    const char *vendor;
    const char *neutral;
} getdesk_disposition_map[] = {
    {"ANSWERED", "completed"},  {"ANSWER", "completed"},   {"NO ANSWER", "no_answer"},
    {"NO_ANSWER", "no_answer"}, {"NOANSWER", "no_answer"}, {"MISSED", "no_answer"},
    {"BUSY", "busy"},           {"FAILED", "failed"},
};

static const char *
getdesk_status(json_t *disposition)
{
    size_t i;

    if (!json_is_string(disposition)) {
        return "unknown";
    }
    for (i = 0; i < sizeof(getdesk_disposition_map) / sizeof(getdesk_disposition_map[0]); i++) {
        if (strcasecmp(json_string_value(disposition), getdesk_disposition_map[i].vendor) == 0) {
            return getdesk_disposition_map[i].neutral;
        }
    }
    return "unknown";
}

static const char *
getdesk_direction(json_t *call_type)
{
    const char *s = json_is_string(call_type) ? json_string_value(call_type) : "";

    if (strcasecmp(s, "inbound") == 0) {
        return "inbound";
    }
    if (strcasecmp(s, "outbound") == 0) {
        return "outbound";
    }
    return "unknown";
}

/* recording_link without a scheme becomes https://...; empty or missing: null. */
static json_t *
getdesk_recording(json_t *v)
{
    const char *s;
    char *url;
    json_t *out;
    size_t n;

    if (!json_is_string(v) || json_string_length(v) == 0) {
        return json_null();
    }
    s = json_string_value(v);
    if (strncasecmp(s, "https://", 8) == 0 || strncasecmp(s, "http://", 7) == 0) {
        return json_string(s);
    }
    while (*s == '/') {
        s++;
    }
    if (*s == '\0') {
        return json_null();
    }
    n = strlen(s) + sizeof("https://");
    url = malloc(n);
    if (url == NULL) {
        return NULL;
    }
    snprintf(url, n, "https://%s", s);
    out = json_string(url);
    free(url);
    return out;
}

/* One vendor row as a neutral "calls" item, or NULL with err set. */
static json_t *
getdesk_row(const struct vendor_ctx *ctx, const char *e164, size_t index, json_t *row, char *err,
            size_t errlen)
{
    const char *zone = ctx->conf != NULL ? ctx->conf->time_zone : NULL;
    json_t *calldate, *disposition, *out;
    char started[UTIL_TIME_LEN];
    int64_t ms;
    long duration;

    if (!json_is_object(row)) {
        snprintf(err, errlen, "Getdesk row %zu is not an object", index);
        return NULL;
    }
    calldate = json_object_get(row, "calldate");
    if (!json_is_string(calldate) || util_parse_time(json_string_value(calldate), zone, &ms) != 0) {
        snprintf(err, errlen, "unreadable calldate in Getdesk row %zu", index);
        return NULL;
    }
    if (getdesk_number(json_object_get(row, "duration"), &duration) != 0) {
        snprintf(err, errlen, "unreadable duration in Getdesk row %zu", index);
        return NULL;
    }
    util_rfc3339(ms, started, sizeof(started));
    disposition = json_object_get(row, "disposition");
    /* clang-format off */
    out = json_pack("{s:s, s:s, s:s, s:I, s:s, s:o, s:o, s:o, s:o, s:s, s:o, s:{s:o, s:o}}",
                    "vendor", "getdesk",
                    "direction", getdesk_direction(json_object_get(row, "call_type")),
                    "started_at", started,
                    "duration_seconds", (json_int_t)duration,
                    "status", getdesk_status(disposition),
                    "disposition", getdesk_text(disposition),
                    "agent_name", getdesk_text(json_object_get(row, "agent_fullname")),
                    "agent_extension", getdesk_text(json_object_get(row, "agent_extension")),
                    "trunk", getdesk_text(json_object_get(row, "trunk")),
                    "phone_number", e164,
                    "recording_url", getdesk_recording(json_object_get(row, "recording_link")),
                    "wrapup",
                    "name", getdesk_text(json_object_get(row, "wrapup_name")),
                    "note", getdesk_text(json_object_get(row, "wrapup_note")));
    /* clang-format on */
    if (out == NULL) {
        snprintf(err, errlen, "out of memory");
    }
    return out;
}

static int
getdesk_parse_history(const struct vendor_ctx *ctx, const struct vendor_history_query *q,
                      long http_status, const char *body, size_t len, json_t *rows, int *more,
                      char *err, size_t errlen)
{
    json_t *root, *list, *row, *got;
    size_t i;
    int empty;

    *more = 0;
    if (q->nnumbers == 0 || q->numbers == NULL || q->numbers[0] == NULL) {
        snprintf(err, errlen, "no phone number in the query");
        return -1;
    }
    root = getdesk_answer(http_status, body, len, err, errlen);
    if (root == NULL) {
        return -1;
    }
    list = getdesk_rows(root, &empty, err, errlen);
    if (list == NULL) {
        json_decref(root);
        return empty ? 0 : -1;
    }
    /* All rows or none: a bad row fails the answer without half-appending it. */
    got = json_array();
    json_array_foreach(list, i, row)
    {
        json_t *n = getdesk_row(ctx, q->numbers[0], i, row, err, errlen);

        if (n == NULL || json_array_append_new(got, n) != 0) {
            json_decref(got);
            json_decref(root);
            return -1;
        }
    }
    json_decref(root);
    if (json_array_extend(rows, got) != 0) {
        json_decref(got);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    json_decref(got);
    return 0;
}

/*
 * Index in q->numbers of the number a count row names, or -1. The row's
 * number is reduced to its digits without one leading 0 and compared with
 * each queried number's national digits (or its full E.164 digits).
 */
static long
getdesk_match(const struct vendor_history_query *q, json_t *v)
{
    char digits[32], national[PHONE_E164_MAX];
    const char *s, *d;
    size_t i, n = 0;

    if (json_is_integer(v)) {
        snprintf(digits, sizeof(digits), "%lld", (long long)json_integer_value(v));
        n = strlen(digits);
    } else if (json_is_string(v)) {
        for (s = json_string_value(v); *s != '\0'; s++) {
            if (*s >= '0' && *s <= '9') {
                if (n + 1 >= sizeof(digits)) {
                    return -1;
                }
                digits[n++] = *s;
            }
        }
        digits[n] = '\0';
    } else {
        return -1;
    }
    d = digits[0] == '0' ? digits + 1 : digits;
    if (*d == '\0') {
        return -1;
    }
    for (i = 0; i < q->nnumbers; i++) {
        if (q->numbers[i] == NULL ||
            phone_national(q->numbers[i], national, sizeof(national)) < 0) {
            continue;
        }
        if (strcmp(d, national) == 0 || strcmp(d, q->numbers[i] + 1) == 0) {
            return (long)i;
        }
    }
    return -1;
}

/* entry[field] += add (entry is a counts object {"total","inbound","outbound"}). */
static int
getdesk_count_add(json_t *entry, const char *field, json_int_t add)
{
    json_t *v = json_object_get(entry, field);
    json_int_t base = json_is_integer(v) ? json_integer_value(v) : 0;

    return json_object_set_new(entry, field, json_integer(base + add));
}

/* counts[key] += {total, inbound, outbound}, creating the entry when needed. */
static int
getdesk_counts_merge(json_t *counts, const char *key, json_int_t total, json_int_t in,
                     json_int_t out)
{
    json_t *entry = json_object_get(counts, key);

    if (!json_is_object(entry)) {
        entry = json_object();
        if (entry == NULL || json_object_set_new(counts, key, entry) != 0) {
            return -1;
        }
    }
    if (getdesk_count_add(entry, "total", total) != 0 ||
        getdesk_count_add(entry, "inbound", in) != 0 ||
        getdesk_count_add(entry, "outbound", out) != 0) {
        return -1;
    }
    return 0;
}

/* The integer field of a counts entry made by this file. */
static json_int_t
getdesk_count_get(json_t *entry, const char *field)
{
    return json_integer_value(json_object_get(entry, field));
}

static int
getdesk_parse_counts(const struct vendor_ctx *ctx, const struct vendor_history_query *q,
                     long http_status, const char *body, size_t len, json_t *counts, char *err,
                     size_t errlen)
{
    json_t *root, *list, *row, *add;
    const char *key;
    size_t i;
    int empty;

    if (!json_is_object(counts)) {
        snprintf(err, errlen, "counts must be a JSON object");
        return -1;
    }
    root = getdesk_answer(http_status, body, len, err, errlen);
    if (root == NULL) {
        return -1;
    }
    list = getdesk_rows(root, &empty, err, errlen);
    if (list == NULL) {
        json_decref(root);
        return empty ? 0 : -1;
    }
    /* Read every row first, then add: a bad row changes nothing. */
    add = json_object();
    json_array_foreach(list, i, row)
    {
        json_t *t;
        long total, in, out, idx;

        if (!json_is_object(row)) {
            snprintf(err, errlen, "Getdesk count row %zu is not an object", i);
            goto fail;
        }
        idx = getdesk_match(q, json_object_get(row, "phone_number"));
        if (idx < 0) {
            continue; /* a number we did not ask about */
        }
        t = json_object_get(row, "total_calls");
        if (getdesk_number(json_object_get(row, "inbound_calls"), &in) != 0 ||
            getdesk_number(json_object_get(row, "outbound_calls"), &out) != 0 ||
            getdesk_number(t, &total) != 0) {
            snprintf(err, errlen, "unreadable count in Getdesk count row %zu", i);
            goto fail;
        }
        if (t == NULL || json_is_null(t)) {
            total = in + out;
        }
        if (getdesk_counts_merge(add, q->numbers[idx], total, in, out) != 0) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    json_object_foreach(add, key, row)
    {
        if (getdesk_counts_merge(counts, key, getdesk_count_get(row, "total"),
                                 getdesk_count_get(row, "inbound"),
                                 getdesk_count_get(row, "outbound")) != 0) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    json_decref(add);
    json_decref(root);
    return 0;

fail:
    json_decref(add);
    json_decref(root);
    return -1;
}

/* ---------------------------------------------------------------------------
 * What Getdesk does not do
 */

static int
getdesk_build_place(const struct vendor_ctx *ctx, const struct vendor_call *call,
                    struct vendor_http *out, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s", GETDESK_REFUSE_PLACE);
    return -1;
}

static void
getdesk_parse_place(const struct vendor_ctx *ctx, long http_status, const char *body, size_t len,
                    struct vendor_placed *out)
{
    memset(out, 0, sizeof(*out));
    out->outcome = VENDOR_REJECTED;
    snprintf(out->detail, sizeof(out->detail), "%s", GETDESK_REFUSE_PLACE);
}

static int
getdesk_parse_webhook(const struct vendor_ctx *ctx, const char *method, const char *query,
                      const char *body, size_t len, struct vendor_update *out, char *err,
                      size_t errlen)
{
    snprintf(err, errlen, "Getdesk sends no webhooks");
    return -1;
}

const struct vendor_ops vendor_getdesk_ops = {
    .name = "getdesk",
    .caps = VENDOR_CAP_HISTORY,
    .build_place = getdesk_build_place,
    .parse_place = getdesk_parse_place,
    .parse_webhook = getdesk_parse_webhook,
    .build_history = getdesk_build_history,
    .parse_history = getdesk_parse_history,
    .build_counts = getdesk_build_counts,
    .parse_counts = getdesk_parse_counts,
};
