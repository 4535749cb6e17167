/*
 * getdesk.c: the simulated Getdesk (Voxcrow) call-log API, as its "Call Log
 * API V2" page describes it (shared/seeds/003). GET /CallLogAPI lists one
 * number's calls, newest first; GET /CallLogCountAPI counts the calls of one
 * or more comma-separated numbers. Both take token, phone_number and
 * optionally start_date + end_date (YYYY-MM-DD, both or neither, at most 31
 * days apart; without them the last 30 days). Errors are JSON
 * {"message": "..."} with 400 (token or parameter missing or bad), 401
 * (invalid token) and 405 (any method but GET).
 *
 * The calls are a deterministic synthetic log derived from each number's
 * digits (as many calls as its last digit, none in the future), plus rows
 * that tests add through POST /_sim/getdesk/logs. calldate is wall-clock time
 * in Asia/Kathmandu (+05:45, no DST), the zone Getdesk is believed to use.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sim.h"

/* Nepal Time, UTC+05:45 all year (no DST since 1986). */
#define GD_TZ_OFFSET_S (5 * 3600 + 45 * 60)
#define GD_MAX_RANGE_DAYS 31
#define GD_DEFAULT_DAYS 30
#define GD_MAX_NUMBERS 1000
#define GD_MAX_ROWS 100000
#define GD_DIGITS_MAX 20
#define GD_TRUNK "+97712970852"

/* One row added through the control endpoint, as Getdesk would return it. */
struct gd_added {
    char key[GD_DIGITS_MAX]; /* digits of the number without a leading 0 */
    json_t *row;
};

static struct gd_added *gd_rows;
static size_t gd_nrows;
static size_t gd_caprows;
static int gd_synthetic = 1;
static int gd_no_data_message; /* answer {"message": ...} instead of [] */

static int gd_auth_ok(struct sim_req *r);
static void gd_cleanup(void);

static const struct sim_vendor gd_vendor = {
    .name = "getdesk",
    .auth_ok = gd_auth_ok,
    .cleanup = gd_cleanup,
};

static const struct {
    const char *name;
    const char *extension;
} gd_agents[] = {
    {"Franklin", "2003"},
    {"Sita Shrestha", "2005"},
    {"Ramesh Karki", "2011"},
};

static const char *const gd_wrapups[] = {"Sales inquiry", "Support", "Follow-up"};

/* ---- helpers ---- */

static void
gd_error(struct sim_req *r, int code, const char *message)
{
    json_t *o = json_object();

    json_object_set_new(o, "message", json_string(message));
    sim_reply_json(r, code, o);
}

static int
gd_auth_ok(struct sim_req *r)
{
    const char *token = sim_req_query(r, "token");

    return token != NULL && sim_cfg.gd_token != NULL && strcmp(token, sim_cfg.gd_token) == 0;
}

/*
 * The match key of a number: its digits without one leading 0. 0 when s has
 * no digit, a character other than digits, "+", spaces and "-", or too many
 * digits.
 */
static int
gd_number_key(const char *s, char out[GD_DIGITS_MAX])
{
    size_t n = 0;

    for (; *s != '\0'; s++) {
        if (*s >= '0' && *s <= '9') {
            if (n + 1 >= GD_DIGITS_MAX) {
                return 0;
            }
            out[n++] = *s;
        } else if (*s != '+' && *s != ' ' && *s != '-') {
            return 0;
        }
    }
    out[n] = '\0';
    if (out[0] == '0') {
        memmove(out, out + 1, n);
        n--;
    }
    return n > 0;
}

/* Days since 1970-01-01 of a Gregorian date. */
static long
gd_days_from_civil(long y, int m, int d)
{
    long era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void
gd_civil_from_days(long z, int *y, int *m, int *d)
{
    long era, doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

/* "YYYY-MM-DD" (a real date) to days since the epoch; 0 or -1. */
static int
gd_parse_date(const char *s, long *days)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y = 0, m = 0, d = 0, i, leap;

    for (i = 0; i < 10; i++) {
        if (i == 4 || i == 7 ? s[i] != '-' : (s[i] < '0' || s[i] > '9')) {
            return -1;
        }
    }
    if (s[10] != '\0') {
        return -1;
    }
    for (i = 0; i < 4; i++) {
        y = y * 10 + (s[i] - '0');
    }
    m = (s[5] - '0') * 10 + (s[6] - '0');
    d = (s[8] - '0') * 10 + (s[9] - '0');
    leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1] + (m == 2 && leap)) {
        return -1;
    }
    *days = gd_days_from_civil(y, m, d);
    return 0;
}

/* Now as seconds since the epoch of Kathmandu wall-clock time. */
static long long
gd_local_now(void)
{
    return (long long)(sim_now_ms() / 1000) + GD_TZ_OFFSET_S;
}

static uint32_t
gd_mix(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    h *= 0x846ca68bu;
    h ^= h >> 16;
    return h;
}

static uint32_t
gd_hash(const char *s)
{
    uint32_t h = 2166136261u;

    while (*s != '\0') {
        h ^= (unsigned char)*s++;
        h *= 16777619u;
    }
    return h;
}

/*
 * Append the synthetic calls of the number with match key key (asked as
 * asked) between days first and last (inclusive) to out.
 */
static void
gd_synthetic_rows(const char *key, const char *asked, long first, long last, json_t *out)
{
    size_t len = strlen(key);
    int n = key[len - 1] - '0';
    long ndays = last - first + 1;
    long long now = gd_local_now();
    uint32_t h = gd_hash(key);
    int k;

    for (k = 0; k < n; k++) {
        uint32_t x = gd_mix(h + (uint32_t)k * 2654435761u);
        long day = first + (ndays * k) / n;
        int hour = 9 + (int)(x % 9), min = (int)((x >> 8) % 60), sec = (int)((x >> 16) % 60);
        /* Dispositions, directions and agents take turns, so that any few calls mix them. */
        int kind = (int)((h + (uint32_t)k) % 6);
        int outbound = (int)(((h >> 8) + (uint32_t)k) % 2);
        int agent = (int)(((h >> 16) + (uint32_t)k) % 3);
        const char *disp;
        long duration;
        int y, mo, d;
        char date[32], link[256];
        json_t *row;

        if ((long long)day * 86400 + hour * 3600 + min * 60 + sec > now) {
            continue; /* no calls in the future */
        }
        if (kind <= 2) {
            disp = "ANSWERED";
            duration = 20 + (long)((x >> 12) % 400);
        } else if (kind == 3) {
            disp = outbound ? "NO ANSWER" : "MISSED";
            duration = 5 + (long)((x >> 12) % 25);
        } else if (kind == 4) {
            disp = "BUSY";
            duration = (long)((x >> 12) % 4);
        } else {
            disp = "FAILED";
            duration = 0;
        }
        gd_civil_from_days(day, &y, &mo, &d);
        snprintf(date, sizeof(date), "%04d-%02d-%02d %02d:%02d:%02d", y, mo, d, hour, min, sec);
        link[0] = '\0';
        if (kind <= 2) {
            snprintf(link, sizeof(link), "%s/recordings/gd-%s-%04d%02d%02d-%02d%02d%02d-%d.wav",
                     sim_cfg.listen_addr, key, y, mo, d, hour, min, sec, k);
        }
        row = json_object();
        json_object_set_new(row, "agent_fullname", json_string(gd_agents[agent].name));
        json_object_set_new(row, "phone_number", sim_json_str_or_null(asked));
        json_object_set_new(row, "agent_extension", json_string(gd_agents[agent].extension));
        json_object_set_new(row, "trunk", json_string(GD_TRUNK));
        json_object_set_new(row, "calldate", json_string(date));
        json_object_set_new(row, "duration", json_integer(duration));
        json_object_set_new(row, "disposition", json_string(disp));
        json_object_set_new(row, "call_type", json_string(outbound ? "outbound" : "inbound"));
        json_object_set_new(row, "recording_link", json_string(link));
        json_object_set_new(row, "wrapup_name", json_string(kind <= 2 ? gd_wrapups[k % 3] : ""));
        json_object_set_new(row, "wrapup_note",
                            kind <= 2 && k % 2 == 1 ? json_string("Customer asked for a callback")
                                                    : json_null());
        json_array_append_new(out, row);
    }
}

/*
 * 1 when an added row falls between days first and last. A row whose
 * calldate does not start with a date is always listed, so that tests can
 * make the vendor lie.
 */
static int
gd_row_in_range(json_t *row, long first, long last)
{
    json_t *cd = json_is_object(row) ? json_object_get(row, "calldate") : NULL;
    char date[11];
    long day;

    if (!json_is_string(cd) || json_string_length(cd) < 10) {
        return 1;
    }
    memcpy(date, json_string_value(cd), 10);
    date[10] = '\0';
    if (gd_parse_date(date, &day) != 0) {
        return 1;
    }
    return day >= first && day <= last;
}

static int
gd_row_cmp(const void *a, const void *b)
{
    json_t *ra = *(json_t *const *)a, *rb = *(json_t *const *)b;
    json_t *ca = json_is_object(ra) ? json_object_get(ra, "calldate") : NULL;
    json_t *cb = json_is_object(rb) ? json_object_get(rb, "calldate") : NULL;
    const char *sa = json_is_string(ca) ? json_string_value(ca) : "";
    const char *sb = json_is_string(cb) ? json_string_value(cb) : "";

    return strcmp(sb, sa); /* newest first */
}

/* Every call of one number in the range, newest first (a new array). */
static json_t *
gd_calls(const char *key, const char *asked, long first, long last)
{
    json_t *all = json_array(), *sorted;
    json_t **v;
    size_t i, n;

    if (gd_synthetic) {
        gd_synthetic_rows(key, asked, first, last, all);
    }
    for (i = 0; i < gd_nrows; i++) {
        if (strcmp(gd_rows[i].key, key) == 0 && gd_row_in_range(gd_rows[i].row, first, last)) {
            json_array_append(all, gd_rows[i].row);
        }
    }
    n = json_array_size(all);
    if (n < 2) {
        return all;
    }
    v = calloc(n, sizeof(*v));
    if (v == NULL) {
        return all;
    }
    for (i = 0; i < n; i++) {
        v[i] = json_array_get(all, i);
    }
    qsort(v, n, sizeof(*v), gd_row_cmp);
    sorted = json_array();
    for (i = 0; i < n; i++) {
        json_array_append(sorted, v[i]);
    }
    free(v);
    json_decref(all);
    return sorted;
}

/*
 * The checks both APIs make, in the vendor's order: method, token,
 * phone_number, dates. Returns 1 with the number parameter and the day
 * range, or 0 after answering.
 */
static int
gd_check(struct sim_req *r, const char **numbers, long *first, long *last)
{
    const char *token = sim_req_query(r, "token");
    const char *start = sim_req_query(r, "start_date");
    const char *end = sim_req_query(r, "end_date");

    if (token == NULL || token[0] == '\0') {
        gd_error(r, 400, "Token is required");
        return 0;
    }
    if (!gd_auth_ok(r)) {
        gd_error(r, 401, "Invalid token");
        return 0;
    }
    *numbers = sim_req_query(r, "phone_number");
    if (*numbers == NULL || (*numbers)[0] == '\0') {
        gd_error(r, 400, "phone_number is required");
        return 0;
    }
    if ((start == NULL || start[0] == '\0') != (end == NULL || end[0] == '\0')) {
        gd_error(r, 400, "start_date and end_date must be provided together");
        return 0;
    }
    if (start == NULL || start[0] == '\0') {
        *last = (long)(gd_local_now() / 86400);
        *first = *last - (GD_DEFAULT_DAYS - 1);
        return 1;
    }
    if (gd_parse_date(start, first) != 0 || gd_parse_date(end, last) != 0) {
        gd_error(r, 400, "Invalid date format, use YYYY-MM-DD");
        return 0;
    }
    if (*last < *first) {
        gd_error(r, 400, "end_date cannot be before start_date");
        return 0;
    }
    if (*last - *first > GD_MAX_RANGE_DAYS) {
        gd_error(r, 400, "Date range cannot exceed one month");
        return 0;
    }
    return 1;
}

static void
gd_no_data(struct sim_req *r)
{
    if (gd_no_data_message) {
        gd_error(r, 200, "No call logs found");
    } else {
        sim_reply_json(r, 200, json_array());
    }
}

/* ---- the vendor's routes ---- */

static void
gd_call_log(struct sim_req *r)
{
    const char *number;
    char key[GD_DIGITS_MAX];
    long first, last;
    json_t *calls;

    if (!gd_check(r, &number, &first, &last)) {
        return;
    }
    if (strchr(number, ',') != NULL) {
        gd_error(r, 400, "Only one phone_number is allowed");
        return;
    }
    if (!gd_number_key(number, key)) {
        gd_error(r, 400, "Invalid phone_number");
        return;
    }
    calls = gd_calls(key, number, first, last);
    if (json_array_size(calls) == 0) {
        json_decref(calls);
        gd_no_data(r);
        return;
    }
    sim_reply_json(r, 200, calls);
}

static void
gd_call_count(struct sim_req *r)
{
    const char *numbers, *p;
    long first, last;
    json_t *out;
    size_t count = 0;

    if (!gd_check(r, &numbers, &first, &last)) {
        return;
    }
    out = json_array();
    for (p = numbers;; p++) {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        char asked[64], key[GD_DIGITS_MAX];
        long in = 0, outb = 0;
        json_t *calls, *row, *o;
        size_t i;

        while (n > 0 && *p == ' ') {
            p++;
            n--;
        }
        while (n > 0 && p[n - 1] == ' ') {
            n--;
        }
        if (n == 0 || n >= sizeof(asked) || ++count > GD_MAX_NUMBERS) {
            json_decref(out);
            gd_error(r, 400,
                     n == 0 || n >= sizeof(asked) ? "Invalid phone_number"
                                                  : "Too many phone numbers");
            return;
        }
        memcpy(asked, p, n);
        asked[n] = '\0';
        if (!gd_number_key(asked, key)) {
            json_decref(out);
            gd_error(r, 400, "Invalid phone_number");
            return;
        }
        calls = gd_calls(key, asked, first, last);
        json_array_foreach(calls, i, row)
        {
            json_t *t = json_is_object(row) ? json_object_get(row, "call_type") : NULL;
            const char *s = json_is_string(t) ? json_string_value(t) : "";

            in += strcasecmp(s, "inbound") == 0;
            outb += strcasecmp(s, "outbound") == 0;
        }
        o = json_object();
        json_object_set_new(o, "total_calls", json_integer((json_int_t)json_array_size(calls)));
        json_object_set_new(o, "phone_number", json_string(asked));
        {
            char num[32];

            snprintf(num, sizeof(num), "%ld", in);
            json_object_set_new(o, "inbound_calls", json_string(num));
            snprintf(num, sizeof(num), "%ld", outb);
            json_object_set_new(o, "outbound_calls", json_string(num));
        }
        json_array_append_new(out, o);
        json_decref(calls);
        if (comma == NULL) {
            break;
        }
        p = comma;
    }
    sim_reply_json(r, 200, out);
}

static void
gd_method_not_allowed(struct sim_req *r)
{
    snprintf(r->allow, sizeof(r->allow), "GET");
    gd_error(r, 405, "Method not allowed");
}

/* ---- /_sim/getdesk control ---- */

static json_t *
gd_config_json(void)
{
    json_t *o = json_object();

    json_object_set_new(o, "token", sim_json_str_or_null(sim_cfg.gd_token));
    json_object_set_new(o, "synthetic", json_boolean(gd_synthetic));
    json_object_set_new(o, "no_data", json_string(gd_no_data_message ? "message" : "array"));
    json_object_set_new(o, "time_zone", json_string("Asia/Kathmandu"));
    json_object_set_new(o, "added_rows", json_integer((json_int_t)gd_nrows));
    return o;
}

static void
gd_config_get(struct sim_req *r)
{
    sim_reply_json(r, 200, gd_config_json());
}

static void
gd_config_post(struct sim_req *r)
{
    const char *why = NULL;
    json_t *j = sim_req_json(r, &why);
    json_t *v, *val;
    const char *key;

    if (!json_is_object(j)) {
        sim_reply_error(r, 400, "%s", j == NULL ? why : "Body must be a JSON object");
        return;
    }
    json_object_foreach(j, key, val)
    {
        if (strcmp(key, "token") != 0 && strcmp(key, "synthetic") != 0 &&
            strcmp(key, "no_data") != 0) {
            sim_reply_error(r, 400, "Unknown setting: %s", key);
            return;
        }
    }
    v = json_object_get(j, "token");
    if (v != NULL && (!json_is_string(v) || json_string_length(v) == 0 ||
                      strlen(json_string_value(v)) != json_string_length(v))) {
        sim_reply_error(r, 400, "token must be a non-empty string");
        return;
    }
    v = json_object_get(j, "synthetic");
    if (v != NULL && !json_is_boolean(v)) {
        sim_reply_error(r, 400, "synthetic must be a boolean");
        return;
    }
    v = json_object_get(j, "no_data");
    if (v != NULL && (!json_is_string(v) || (strcmp(json_string_value(v), "array") != 0 &&
                                             strcmp(json_string_value(v), "message") != 0))) {
        sim_reply_error(r, 400, "no_data must be \"array\" or \"message\"");
        return;
    }

    v = json_object_get(j, "token");
    if (v != NULL) {
        free(sim_cfg.gd_token);
        sim_cfg.gd_token = sim_strdup(json_string_value(v));
    }
    v = json_object_get(j, "synthetic");
    if (v != NULL) {
        gd_synthetic = json_is_true(v);
    }
    v = json_object_get(j, "no_data");
    if (v != NULL) {
        gd_no_data_message = strcmp(json_string_value(v), "message") == 0;
    }
    sim_reply_json(r, 200, gd_config_json());
}

static void
gd_logs_post(struct sim_req *r)
{
    const char *why = NULL;
    json_t *j = sim_req_json(r, &why);
    json_t *num, *rows, *row;
    char key[GD_DIGITS_MAX];
    size_t i, n;
    json_t *o;

    if (!json_is_object(j)) {
        sim_reply_error(r, 400, "%s", j == NULL ? why : "Body must be a JSON object");
        return;
    }
    num = json_object_get(j, "phone_number");
    rows = json_object_get(j, "rows");
    if (!json_is_string(num) || !gd_number_key(json_string_value(num), key)) {
        sim_reply_error(r, 400, "phone_number must be a string of digits");
        return;
    }
    if (!json_is_array(rows)) {
        sim_reply_error(r, 400, "rows must be an array");
        return;
    }
    n = json_array_size(rows);
    if (gd_nrows + n > GD_MAX_ROWS) {
        sim_reply_error(r, 400, "At most %d rows may be added", GD_MAX_ROWS);
        return;
    }
    if (gd_nrows + n > gd_caprows) {
        size_t cap = gd_caprows ? gd_caprows : 64;
        struct gd_added *p;

        while (cap < gd_nrows + n) {
            cap *= 2;
        }
        p = realloc(gd_rows, cap * sizeof(*p));
        if (p == NULL) {
            sim_reply_error(r, 500, "Out of memory");
            return;
        }
        gd_rows = p;
        gd_caprows = cap;
    }
    json_array_foreach(rows, i, row)
    {
        memcpy(gd_rows[gd_nrows].key, key, sizeof(key));
        gd_rows[gd_nrows].row = json_incref(row);
        gd_nrows++;
    }
    o = json_object();
    json_object_set_new(o, "ok", json_true());
    json_object_set_new(o, "phone_number", json_string(json_string_value(num)));
    json_object_set_new(o, "added", json_integer((json_int_t)n));
    json_object_set_new(o, "added_rows", json_integer((json_int_t)gd_nrows));
    sim_reply_json(r, 200, o);
}

static void
gd_logs_get(struct sim_req *r)
{
    json_t *arr = json_array();
    json_t *o;
    size_t i;

    for (i = 0; i < gd_nrows; i++) {
        json_t *x = json_object();

        json_object_set_new(x, "number_key", json_string(gd_rows[i].key));
        json_object_set(x, "row", gd_rows[i].row);
        json_array_append_new(arr, x);
    }
    o = json_object();
    json_object_set_new(o, "count", json_integer((json_int_t)gd_nrows));
    json_object_set_new(o, "rows", arr);
    sim_reply_json(r, 200, o);
}

static void
gd_rows_clear(void)
{
    size_t i;

    for (i = 0; i < gd_nrows; i++) {
        json_decref(gd_rows[i].row);
    }
    gd_nrows = 0;
}

static void
gd_logs_delete(struct sim_req *r)
{
    json_t *o = json_object();

    gd_rows_clear();
    json_object_set_new(o, "ok", json_true());
    sim_reply_json(r, 200, o);
}

static void
gd_cleanup(void)
{
    gd_rows_clear();
    free(gd_rows);
    gd_rows = NULL;
    gd_caprows = 0;
}

void
getdesk_init(void)
{
    static const char *const paths[] = {"/CallLogAPI", "/CallLogCountAPI"};
    static const char *const others[] = {"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"};
    size_t i, k;

    sim_vendor_register(&gd_vendor);
    sim_route_add(&gd_vendor, "GET", "", paths[0], gd_call_log);
    sim_route_add(&gd_vendor, "GET", "", paths[1], gd_call_count);
    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        for (k = 0; k < sizeof(others) / sizeof(others[0]); k++) {
            sim_route_add(&gd_vendor, others[k], "", paths[i], gd_method_not_allowed);
        }
    }
    sim_route_add(NULL, "GET", "", "/_sim/getdesk/config", gd_config_get);
    sim_route_add(NULL, "POST", "", "/_sim/getdesk/config", gd_config_post);
    sim_route_add(NULL, "GET", "", "/_sim/getdesk/logs", gd_logs_get);
    sim_route_add(NULL, "POST", "", "/_sim/getdesk/logs", gd_logs_post);
    sim_route_add(NULL, "DELETE", "", "/_sim/getdesk/logs", gd_logs_delete);
}
