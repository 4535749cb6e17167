/*
 * ccai.c: the simulated Google CCAI Platform (formerly UJET) call API, as
 * its "Call API" page (shared/seeds/004) and shared/vendors.md section 2
 * describe it. Every route needs HTTP Basic credentials (user + API token)
 * and answers errors as {"message": "..."}.
 *
 * POST /apps/api/v1/calls creates an outbound, inbound or scheduled call
 *   with the page's checks and exact messages, and answers 201 with a call
 *   object like the page's example; with the setting accept = agent_action
 *   an outbound call answers 202 with the request echoed (the agent "must
 *   choose an outbound number"), and the call is placed all the same.
 * GET /manager/api/v1/calls/{id} reads one call (also at
 *   /apps/api/v1/calls/{id} when apps_get is on).
 * GET/PATCH /apps/api/v1/calls/{id}/customer_flag reads and sets the flags.
 * GET /ccai/recordings/{id}.wav serves a short silent WAV.
 * Timers play the calls out (assigned -> connecting -> connected ->
 * finished, or failed with a fail_reason) and, when push_url is set, each
 * step is POSTed there as an "external session event" with Basic auth.
 * The optional rate limit (the real one is 10 requests/s) answers 429.
 *
 * Inferred, not documented: the single-call GET path (the Manager API's
 * list path + /{id}), the session events' field layout and the order in
 * which they come, the participant statuses inside the call object once a
 * call ends ("finished" / "failed"), and which inputs fail which check
 * (agent e-mails starting with "busy" or "noaccess", ticket "404" or
 * "missing...", menu ids from 9000 up stand for the vendor's own data).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sim.h"

#ifndef CCAI_MAX_CALLS
#define CCAI_MAX_CALLS 100000
#endif
#define CCAI_FIRST_ID 397L
#define CCAI_FIRST_PARTICIPANT 610L
#define CCAI_FIRST_END_USER 67L
/* menu_id from here up is "not found": the simulator has menus 1..8999. */
#define CCAI_MENU_LIMIT 9000
#define CCAI_RATE_MAX 1000
#define CCAI_DEFAULT_OUTBOUND "+1 339-219-5276"
#define CCAI_QUEUE "Sales"
/* The agent of outbound calls, and the one inbound calls are routed to. */
#define CCAI_OUT_AGENT_ID 1
#define CCAI_IN_AGENT_ID 2

enum ccai_kind { CCAI_OUTBOUND, CCAI_INBOUND, CCAI_SCHEDULED };

/* What the call's timer does when it fires next. */
enum ccai_step {
    CCAI_STEP_NONE,       /* nothing planned (scheduled calls, ended calls) */
    CCAI_STEP_CONNECTING, /* outbound: assigned -> connecting, event (a) */
    CCAI_STEP_ACCEPT,     /* outbound: the agent accepts, event (b) */
    CCAI_STEP_ASSIGN,     /* inbound: queued -> assigned, event (b) */
    CCAI_STEP_CONNECT,    /* -> connected, event (c) */
    CCAI_STEP_FINISH,     /* -> finished, events (d) + (e) */
    CCAI_STEP_FAIL        /* -> failed with the planned outcome's fail_reason */
};

struct ccai_call {
    struct ccai_call *prev, *next; /* creation order, oldest first */
    long id;
    char id_s[24];
    enum ccai_kind kind;
    char *lang;
    char *agent_email;     /* outbound only */
    char *end_user_number; /* as given; NULL when not given */
    char *ticket_id;       /* as text; NULL when not given */
    char *outbound_number; /* outbound only */
    long menu_id;          /* 0: none */
    long parent_id;        /* 0: none */
    const char *recording_permission;
    char first_name[64]; /* of the agent, from the e-mail's local part */
    char last_name[64];
    int accepted; /* HTTP status the create answered: 201 or 202 */
    char outcome[16];
    long ring_ms;
    long end_ms; /* when an answered call finishes, from creation */
    const char *status;
    const char *fail_reason;
    uint64_t created_ms, queued_ms, assigned_ms, connected_ms, ends_ms, scheduled_ms;
    long end_user_id;
    long agent_part_id; /* participant ids */
    long eu_part_id;
    int has_agent;        /* the agent participant exists */
    const char *agent_ps; /* participant statuses in the call object */
    const char *eu_ps;
    int verified_customer, bad_actor, repeat_customer;
    enum ccai_step step;
    long step_at; /* ms after creation the planned step is due */
    int started;  /* session event (a) has been sent */
    int ended;
    struct event *timer;
};

static struct ccai_call *ccai_oldest;
static struct ccai_call *ccai_newest;
static size_t ccai_ncalls;
static long ccai_next_id = CCAI_FIRST_ID;
static long ccai_next_part = CCAI_FIRST_PARTICIPANT;
static long ccai_next_end_user = CCAI_FIRST_END_USER;

/* Settings only /_sim/ccai/config changes (user, token, push_url live in sim_cfg). */
static char *ccai_push_user;
static char *ccai_push_password;
static int ccai_accept_agent_action;
static int ccai_rate_limit; /* requests per second; 0: off */
static int ccai_apps_get;

/* Admitted requests in the last second (monotonic ms), a ring. */
static uint64_t ccai_rate_ts[CCAI_RATE_MAX];
static size_t ccai_rate_head;
static size_t ccai_rate_count;

static int ccai_auth_ok(struct sim_req *r);
static void ccai_calls_json(json_t *out);
static int ccai_call_end(const char *call_id, const char *status, char *err, size_t errlen);
static void ccai_cleanup(void);

static const struct sim_vendor ccai_vendor = {
    .name = "ccai",
    .auth_ok = ccai_auth_ok,
    .calls_json = ccai_calls_json,
    .call_end = ccai_call_end,
    .cleanup = ccai_cleanup,
};

static const char *const ccai_type_names[] = {
    [CCAI_OUTBOUND] = "Voice Outbound (API)",
    [CCAI_INBOUND] = "Voice Inbound (API)",
    [CCAI_SCHEDULED] = "Voice Scheduled (API)",
};

/* ---- helpers ---- */

static void ccai_error(struct sim_req *r, int code, const char *fmt, ...) SIM_PRINTF(3, 4);

static void
ccai_error(struct sim_req *r, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    json_t *o = json_object();

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_object_set_new(o, "message", sim_json_str_or_null(msg));
    sim_reply_json(r, code, o);
}

static void *
ccai_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    if (p == NULL) {
        fprintf(stderr, "vendorsim: out of memory\n");
        abort();
    }
    return p;
}

static uint64_t
ccai_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)(ts.tv_nsec / 1000000);
}

static const char ccai_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* s base64-encoded (with padding) into a new string. */
static char *
ccai_b64_encode(const char *s)
{
    size_t n = strlen(s), i, o = 0;
    char *out = ccai_xcalloc(4 * ((n + 2) / 3) + 1, 1);
    const unsigned char *u = (const unsigned char *)s;

    for (i = 0; i + 2 < n; i += 3) {
        out[o++] = ccai_b64[u[i] >> 2];
        out[o++] = ccai_b64[((u[i] & 3) << 4) | (u[i + 1] >> 4)];
        out[o++] = ccai_b64[((u[i + 1] & 15) << 2) | (u[i + 2] >> 6)];
        out[o++] = ccai_b64[u[i + 2] & 63];
    }
    if (i < n) {
        out[o++] = ccai_b64[u[i] >> 2];
        if (i + 1 < n) {
            out[o++] = ccai_b64[((u[i] & 3) << 4) | (u[i + 1] >> 4)];
            out[o++] = ccai_b64[(u[i + 1] & 15) << 2];
        } else {
            out[o++] = ccai_b64[(u[i] & 3) << 4];
            out[o++] = '=';
        }
        out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

/*
 * Decode base64 s into a new NUL-terminated string (*len bytes, which may
 * include NULs); NULL when s is not base64.
 */
static char *
ccai_b64_decode(const char *s, size_t *len)
{
    size_t n = strlen(s), i, o = 0;
    char *out;
    unsigned int acc = 0;
    int bits = 0;

    if (n == 0 || n % 4 != 0) {
        return NULL;
    }
    out = ccai_xcalloc(n / 4 * 3 + 1, 1);
    for (i = 0; i < n; i++) {
        const char *p;

        if (s[i] == '=') {
            /* Padding only at the end, at most two. */
            if (i < n - 2 || (i == n - 2 && s[n - 1] != '=')) {
                free(out);
                return NULL;
            }
            continue;
        }
        p = strchr(ccai_b64, s[i]);
        if (p == NULL) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned int)(p - ccai_b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    *len = o;
    return out;
}

static int
ccai_auth_ok(struct sim_req *r)
{
    const char *h = sim_req_header(r, "Authorization");
    size_t ulen, tlen, len = 0;
    char *cred;
    int ok;

    if (h == NULL || sim_cfg.ccai_user == NULL || sim_cfg.ccai_token == NULL) {
        return 0;
    }
    while (*h == ' ') {
        h++;
    }
    if (strncasecmp(h, "Basic ", 6) != 0) {
        return 0;
    }
    h += 6;
    while (*h == ' ') {
        h++;
    }
    cred = ccai_b64_decode(h, &len);
    if (cred == NULL) {
        return 0;
    }
    ulen = strlen(sim_cfg.ccai_user);
    tlen = strlen(sim_cfg.ccai_token);
    ok = len == ulen + 1 + tlen && memcmp(cred, sim_cfg.ccai_user, ulen) == 0 &&
         cred[ulen] == ':' && memcmp(cred + ulen + 1, sim_cfg.ccai_token, tlen) == 0;
    free(cred);
    return ok;
}

/* One more request this second? Only admitted requests count. */
static int
ccai_rate_ok(void)
{
    uint64_t now = ccai_mono_ms();

    if (ccai_rate_limit <= 0) {
        return 1;
    }
    while (ccai_rate_count > 0 && now - ccai_rate_ts[ccai_rate_head] >= 1000) {
        ccai_rate_head = (ccai_rate_head + 1) % CCAI_RATE_MAX;
        ccai_rate_count--;
    }
    if (ccai_rate_count >= (size_t)ccai_rate_limit) {
        return 0;
    }
    ccai_rate_ts[(ccai_rate_head + ccai_rate_count) % CCAI_RATE_MAX] = now;
    ccai_rate_count++;
    return 1;
}

/* What every CCAI route checks first. 1, or 0 after answering. */
static int
ccai_gate(struct sim_req *r)
{
    if (!ccai_auth_ok(r)) {
        sim_reply_header(r, "WWW-Authenticate", "Basic realm=\"CCAI Platform\"");
        ccai_error(r, 401, "Unauthorized");
        return 0;
    }
    if (!ccai_rate_ok()) {
        sim_reply_header(r, "Retry-After", "1");
        ccai_error(r, 429, "Too many requests");
        return 0;
    }
    return 1;
}

static json_t *
ccai_time_json(uint64_t ms)
{
    char t[40];

    if (ms == 0) {
        return json_null();
    }
    sim_iso_time(ms, 1, t, sizeof(t));
    return json_string(t);
}

/* Whole seconds from a to b, rounded up; 0 when either is unset. */
static long
ccai_secs(uint64_t a, uint64_t b)
{
    if (a == 0 || b == 0 || b < a) {
        return 0;
    }
    return (long)((b - a + 999) / 1000);
}

static void
ccai_uuid4(char out[37])
{
    unsigned char b[16];

    sim_random(b, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

static void
ccai_recording_url(const struct ccai_call *c, char *out, size_t outlen)
{
    snprintf(out, outlen, "http://%s/ccai/recordings/%s.wav", sim_cfg.listen_addr, c->id_s);
}

static struct ccai_call *
ccai_find(const char *id)
{
    struct ccai_call *c;

    /* Newest first: tests mostly ask about the calls they just made. */
    for (c = ccai_newest; c != NULL; c = c->prev) {
        if (strcmp(c->id_s, id) == 0) {
            return c;
        }
    }
    return NULL;
}

/* A string value that is absent, null or "" counts as not given. */
static int
ccai_given(const json_t *v)
{
    return v != NULL && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0);
}

/* A JSON string without embedded NULs, usable as a C string. */
static int
ccai_cstring(const json_t *v)
{
    return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

/*
 * A well-formed phone number: "+", then 10-15 digits in all, optionally
 * split by single spaces or dashes and one pair of parentheses around
 * digits ("+1 859-657-9625", "+919876543210", "+1 (859) 657-9625").
 */
static int
ccai_number_ok(const char *s)
{
    int digits = 0, sep = 0, in_paren = 0, parens = 0;
    const char *p;

    if (s[0] != '+' || s[1] < '0' || s[1] > '9') {
        return 0;
    }
    for (p = s + 1; *p != '\0'; p++) {
        if (*p >= '0' && *p <= '9') {
            digits++;
            sep = 0;
        } else if (*p == ' ' || *p == '-') {
            if (sep) {
                return 0;
            }
            sep = 1;
        } else if (*p == '(') {
            if (parens || p[1] < '0' || p[1] > '9') {
                return 0;
            }
            in_paren = parens = 1;
        } else if (*p == ')') {
            if (!in_paren || p[-1] < '0' || p[-1] > '9') {
                return 0;
            }
            in_paren = 0;
        } else {
            return 0;
        }
    }
    return !in_paren && p[-1] >= '0' && p[-1] <= '9' && digits >= 10 && digits <= 15;
}

/* local@domain.tld with ordinary characters; *local_len is the local part's length. */
static int
ccai_email_ok(const char *s, size_t *local_len)
{
    const char *at = strchr(s, '@');
    const char *p, *label;
    size_t n;
    int labels = 0, alpha_tld = 1;

    if (at == NULL || strchr(at + 1, '@') != NULL || strlen(s) > 254) {
        return 0;
    }
    n = (size_t)(at - s);
    if (n == 0 || n > 64 || s[0] == '.' || at[-1] == '.') {
        return 0;
    }
    for (p = s; p < at; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr(".!#$%&'*+/=?^_`{|}~-", *p) != NULL) ||
            (*p == '.' && p[1] == '.')) {
            return 0;
        }
    }
    label = at + 1;
    for (p = label;; p++) {
        if (*p == '.' || *p == '\0') {
            if (p == label || label[0] == '-' || p[-1] == '-') {
                return 0;
            }
            labels++;
            if (*p == '\0') {
                break;
            }
            label = p + 1;
            alpha_tld = 1;
        } else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) {
            /* letters are fine anywhere */
        } else if ((*p >= '0' && *p <= '9') || *p == '-') {
            alpha_tld = 0;
        } else {
            return 0;
        }
    }
    if (labels < 2 || !alpha_tld || strlen(label) < 2) {
        return 0;
    }
    *local_len = n;
    return 1;
}

/* Agent names from the e-mail's local part: "jane.doe" -> Jane / Doe. */
static void
ccai_agent_names(struct ccai_call *c, const char *email, size_t local_len)
{
    char local[65], *tok, *save = NULL;
    int first = 1;

    memcpy(local, email, local_len);
    local[local_len] = '\0';
    c->first_name[0] = c->last_name[0] = '\0';
    for (tok = strtok_r(local, "._-+", &save); tok != NULL; tok = strtok_r(NULL, "._-+", &save)) {
        char *dst = first ? c->first_name : c->last_name;
        size_t cap = first ? sizeof(c->first_name) : sizeof(c->last_name);
        size_t used = strlen(dst);

        if (tok[0] >= 'a' && tok[0] <= 'z') {
            tok[0] = (char)(tok[0] - 'a' + 'A');
        }
        snprintf(dst + used, cap - used, "%s%s", used ? " " : "", tok);
        first = 0;
    }
    if (c->first_name[0] == '\0') {
        snprintf(c->first_name, sizeof(c->first_name), "Agent");
    }
}

static long
ccai_days_from_civil(long y, int m, int d)
{
    long era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* n digits at s as a number; -1 when one is not a digit. */
static int
ccai_digits(const char *s, int n)
{
    int v = 0, i;

    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/*
 * RFC 3339 date-time ("2024-05-01T10:00:00Z", "...00.5+05:30") to epoch ms.
 * 0, or -1 when s is not one.
 */
static int
ccai_rfc3339(const char *s, uint64_t *ms)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec, leap, oh = 0, om = 0, sign = 0;
    long frac_ms = 0, scale = 100;
    long long t;
    const char *p;

    if (strlen(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
        s[13] != ':' || s[16] != ':') {
        return -1;
    }
    y = ccai_digits(s, 4);
    mo = ccai_digits(s + 5, 2);
    d = ccai_digits(s + 8, 2);
    h = ccai_digits(s + 11, 2);
    mi = ccai_digits(s + 14, 2);
    sec = ccai_digits(s + 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 ||
        sec > 60) {
        return -1;
    }
    leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap)) {
        return -1;
    }
    p = s + 19;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9') {
            return -1;
        }
        for (; *p >= '0' && *p <= '9'; p++) {
            frac_ms += (*p - '0') * scale;
            scale /= 10;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        oh = ccai_digits(p + 1, 2);
        om = p[1] != '\0' && p[2] != '\0' && p[3] == ':' ? ccai_digits(p + 4, 2) : -1;
        if (oh < 0 || oh > 23 || om < 0 || om > 59) {
            return -1;
        }
        p += 6;
    } else {
        return -1;
    }
    if (*p != '\0') {
        return -1;
    }
    t = (long long)ccai_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
        sign * (oh * 3600 + om * 60);
    if (t < 0) {
        return -1;
    }
    *ms = (uint64_t)t * 1000u + (uint64_t)frac_ms;
    return 0;
}

/* Language check of inbound and scheduled calls. NULL, or the error's wording. */
static const char *
ccai_lang_problem(const char *lang)
{
    static const char *const available[] = {"en", "es", "de", "hi", "fr-CA"};
    static const char *const unavailable[] = {"fr", "it", "pt", "ja", "ko", "zh"};
    size_t i;

    for (i = 0; i < sizeof(available) / sizeof(available[0]); i++) {
        if (strcmp(lang, available[i]) == 0) {
            return NULL;
        }
    }
    for (i = 0; i < sizeof(unavailable) / sizeof(unavailable[0]); i++) {
        if (strcmp(lang, unavailable[i]) == 0) {
            return "available";
        }
    }
    return "found";
}

/* A value as text for messages: strings as they are, others as JSON. */
static char *
ccai_value_text(const json_t *v)
{
    if (ccai_cstring(v)) {
        return sim_strdup(json_string_value(v));
    }
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* ---- call objects and session events ---- */

static json_t *
ccai_participant_json(const struct ccai_call *c, int agent)
{
    json_t *o = json_object();
    int ended = c->ended;

    json_object_set_new(o, "id", json_integer(agent ? c->agent_part_id : c->eu_part_id));
    json_object_set_new(o, "type", json_string(agent ? "agent" : "end_user"));
    json_object_set_new(o, "status", json_string(agent ? c->agent_ps : c->eu_ps));
    json_object_set_new(o, "call_id", json_integer(c->id));
    json_object_set_new(
        o, "user_id",
        agent ? json_integer(c->kind == CCAI_OUTBOUND ? CCAI_OUT_AGENT_ID : CCAI_IN_AGENT_ID)
              : json_null());
    json_object_set_new(o, "end_user_id", agent ? json_null() : json_integer(c->end_user_id));
    json_object_set_new(o, "call_duration",
                        ended ? json_integer(ccai_secs(c->connected_ms, c->ends_ms)) : json_null());
    json_object_set_new(o, "hold_duration", ended ? json_integer(0) : json_null());
    json_object_set_new(o, "connected_at", ccai_time_json(c->connected_ms));
    json_object_set_new(o, "ended_at", ccai_time_json(ended ? c->ends_ms : 0));
    json_object_set_new(o, "fail_reason", json_string(c->fail_reason));
    return o;
}

static json_t *
ccai_agent_json(const struct ccai_call *c)
{
    json_t *o = json_object();
    char name[140];

    if (c->kind == CCAI_OUTBOUND) {
        snprintf(name, sizeof(name), "%s%s%s", c->first_name, c->last_name[0] ? " " : "",
                 c->last_name);
        json_object_set_new(o, "id", json_integer(CCAI_OUT_AGENT_ID));
        json_object_set_new(o, "name", json_string(name));
        json_object_set_new(o, "first_name", json_string(c->first_name));
        json_object_set_new(o, "last_name", json_string(c->last_name));
    } else {
        json_object_set_new(o, "id", json_integer(CCAI_IN_AGENT_ID));
        json_object_set_new(o, "name", json_string("Sim Agent"));
        json_object_set_new(o, "first_name", json_string("Sim"));
        json_object_set_new(o, "last_name", json_string("Agent"));
    }
    json_object_set_new(o, "agent_number", json_null());
    json_object_set_new(o, "avatar_url", json_null());
    return o;
}

/* The call object as the API shows it now (a new object). */
static json_t *
ccai_call_json(const struct ccai_call *c)
{
    json_t *o = json_object(), *parts = json_array(), *eu;
    char url[256];

    json_object_set_new(o, "id", json_integer(c->id));
    json_object_set_new(o, "parent_id", c->parent_id ? json_integer(c->parent_id) : json_null());
    json_object_set_new(o, "lang", json_string(c->lang));
    json_object_set_new(o, "call_type", json_string(ccai_type_names[c->kind]));
    json_object_set_new(o, "status", json_string(c->status));
    json_object_set_new(o, "created_at", ccai_time_json(c->created_ms));
    json_object_set_new(o, "queued_at", ccai_time_json(c->queued_ms));
    json_object_set_new(o, "assigned_at", ccai_time_json(c->assigned_ms));
    json_object_set_new(o, "connected_at", ccai_time_json(c->connected_ms));
    json_object_set_new(o, "ends_at", ccai_time_json(c->ends_ms));
    json_object_set_new(o, "scheduled_at", ccai_time_json(c->scheduled_ms));
    json_object_set_new(o, "wait_duration",
                        json_integer(c->queued_ms ? ccai_secs(c->queued_ms, c->assigned_ms) : 0));
    json_object_set_new(o, "call_duration", json_integer(ccai_secs(c->connected_ms, c->ends_ms)));
    json_object_set_new(o, "hold_duration", json_integer(0));
    json_object_set_new(o, "rating", json_null());
    json_object_set_new(o, "has_feedback", json_false());
    json_object_set_new(o, "voip_provider", json_string("voip_provider_twilio"));
    json_object_set_new(o, "out_ticket_id", sim_json_str_or_null(c->ticket_id));
    json_object_set_new(o, "out_ticket_url", json_null());
    json_object_set_new(o, "verified", json_boolean(c->verified_customer));
    if (c->ended && c->connected_ms != 0) {
        ccai_recording_url(c, url, sizeof(url));
        json_object_set_new(o, "recording_url", json_string(url));
    } else {
        json_object_set_new(o, "recording_url", json_null());
    }
    json_object_set_new(o, "recording_permission", json_string(c->recording_permission));
    json_object_set_new(o, "voicemail_reason", json_string("not_voicemail"));
    json_object_set_new(o, "deflection", json_string("no_deflection"));
    json_object_set_new(o, "disconnected_by", json_string("disconnected_by_unknown"));
    json_object_set_new(o, "fail_reason", json_string(c->fail_reason));
    json_object_set_new(o, "fail_details", json_null());
    json_object_set_new(o, "support_number", json_null());
    if (c->menu_id != 0) {
        char path[32];

        snprintf(path, sizeof(path), "%ld", c->menu_id);
        json_object_set_new(o, "selected_menu",
                            json_pack("{s:I,s:s,s:n,s:i,s:b,s:n,s:s,s:n}", "id",
                                      (json_int_t)c->menu_id, "name", CCAI_QUEUE, "parent_id",
                                      "position", 0, "deleted", 0, "hidden", "menu_type",
                                      "ivr_menu", "output_msg"));
        json_object_set_new(o, "menu_path",
                            json_pack("{s:i,s:s,s:s}", "items_count", 0, "name", CCAI_QUEUE,
                                      "materialized_path", path));
    } else {
        json_object_set_new(o, "selected_menu", json_null());
        json_object_set_new(o, "menu_path", json_null());
    }
    json_object_set_new(o, "agent_info", c->has_agent ? ccai_agent_json(c) : json_null());
    eu = json_object();
    json_object_set_new(eu, "id", json_integer(c->end_user_id));
    json_object_set_new(eu, "identifier", sim_json_str_or_null(c->end_user_number));
    json_object_set_new(eu, "out_contact_id", sim_json_str_or_null(c->ticket_id));
    json_object_set_new(o, "end_user", eu);
    json_object_set_new(o, "photos", json_array());
    json_object_set_new(o, "videos", json_array());
    json_object_set_new(o, "transfers", json_array());
    json_object_set_new(o, "deflection_details", json_array());
    if (c->has_agent) {
        json_array_append_new(parts, ccai_participant_json(c, 1));
    }
    json_array_append_new(parts, ccai_participant_json(c, 0));
    json_object_set_new(o, "participants", parts);
    json_object_set_new(o, "offer_type", json_null());
    json_object_set_new(o, "offer_events", json_array());
    json_object_set_new(o, "answer_type", json_string("manual"));
    json_object_set_new(o, "outbound_number", sim_json_str_or_null(c->outbound_number));
    if (c->menu_id != 0) {
        json_object_set_new(o, "menu_id", json_integer(c->menu_id));
    }
    return o;
}

/* [{"type":"end_user","status":eu}, {"type":"agent","status":agent}] (agent may be NULL). */
static json_t *
ccai_event_parts(const char *eu, const char *agent)
{
    json_t *a = json_array();

    json_array_append_new(a, json_pack("{s:s,s:s}", "type", "end_user", "status", eu));
    if (agent != NULL) {
        json_array_append_new(a, json_pack("{s:s,s:s}", "type", "agent", "status", agent));
    }
    return a;
}

/* One external session event about c as it is now; parts is stolen. */
static json_t *
ccai_event(const struct ccai_call *c, const char *state, json_t *parts, int final)
{
    json_t *o = json_object(), *item = json_object();
    char id[37];

    ccai_uuid4(id);
    json_object_set_new(o, "event_id", json_string(id));
    json_object_set_new(o, "timestamp", json_integer((json_int_t)sim_now_ms()));
    json_object_set_new(o, "type", json_string("call"));
    json_object_set_new(o, "state", json_string(state));
    json_object_set_new(o, "initiator",
                        json_string(c->kind == CCAI_OUTBOUND ? "agent_1" : "virtual_agent_15"));
    json_object_set_new(o, "connected_at", ccai_time_json(c->connected_ms));
    json_object_set_new(o, "ends_at", ccai_time_json(c->ends_ms));
    json_object_set_new(o, "participants", parts);
    if (final) {
        json_object_set_new(
            o, "dispositions",
            json_pack("{s:s,s:i,s:s}", "code", "resolved", "custom_code_id", 12, "note", "sim"));
    }
    json_object_set_new(item, "call_id", json_integer(c->id));
    json_object_set_new(item, "dn", sim_json_str_or_null(c->end_user_number));
    json_object_set_new(item, "queue_path_names", json_pack("[s]", CCAI_QUEUE));
    json_object_set_new(item, "status", json_string(c->status));
    json_object_set_new(item, "fail_reason", json_string(c->fail_reason));
    json_object_set_new(item, "call_duration",
                        json_integer(ccai_secs(c->connected_ms, c->ends_ms)));
    json_object_set_new(o, "item", item);
    return o;
}

/*
 * POST {"count": N, "events": [...]} (events is stolen) to the push URL
 * with Basic auth, through the core's retrying push. The push log shows the
 * last event's id as uuid and "state/status" as status.
 */
static void
ccai_send(const struct ccai_call *c, json_t *events)
{
    json_t *body, *last;
    char *text, *cred, *b64, status[64], hname[] = "Authorization";
    struct sim_header auth;
    size_t n = strlen(ccai_push_user) + strlen(ccai_push_password) + 2;

    if (sim_cfg.ccai_push_url == NULL) {
        json_decref(events);
        return;
    }
    last = json_array_get(events, json_array_size(events) - 1);
    snprintf(status, sizeof(status), "%s/%s", json_string_value(json_object_get(last, "state")),
             c->status);
    body = json_object();
    json_object_set_new(body, "count", json_integer((json_int_t)json_array_size(events)));
    json_object_set_new(body, "events", events);
    text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    cred = ccai_xcalloc(n, 1);
    snprintf(cred, n, "%s:%s", ccai_push_user, ccai_push_password);
    b64 = ccai_b64_encode(cred);
    auth.name = hname;
    auth.value = ccai_xcalloc(strlen(b64) + 7, 1);
    snprintf(auth.value, strlen(b64) + 7, "Basic %s", b64);
    if (text != NULL) {
        sim_push_ex(ccai_vendor.name, sim_cfg.ccai_push_url,
                    json_string_value(json_object_get(last, "event_id")), c->id_s, status, text,
                    &auth, 1);
    }
    free(auth.value);
    free(b64);
    free(cred);
    free(text);
    json_decref(body);
}

/* Send one event: state, the end user's status and the agent's (NULL: no agent yet). */
static void
ccai_send_one(const struct ccai_call *c, const char *state, const char *eu, const char *agent)
{
    ccai_send(c, json_pack("[o]", ccai_event(c, state, ccai_event_parts(eu, agent), 0)));
}

/* Send event (a), the session start, once. */
static void
ccai_send_start(struct ccai_call *c)
{
    if (c->started) {
        return;
    }
    c->started = 1;
    ccai_send_one(c, "connected", "connected", NULL);
}

/* Plan step to happen at ms after the call's creation. */
static void
ccai_plan(struct ccai_call *c, enum ccai_step step, long at)
{
    long delay = at - c->step_at;

    c->step = step;
    c->step_at = at;
    sim_timer_start(c->timer, delay > 0 ? delay : 0);
}

/* End c now with outcome (ANSWER, NO_ANSWER, ...) and send its last events. */
static void
ccai_finish(struct ccai_call *c, const char *outcome)
{
    static const struct {
        const char *outcome, *fail_reason;
    } map[] = {
        {"NO_ANSWER", "eu_no_answer"},
        {"BUSY", "eu_busy"},
        {"FAILED", "voip_conn_general"},
        {"CANCELED", "eu_canceled"},
    };
    uint64_t now = sim_now_ms();
    size_t i;

    if (c->ended) {
        return;
    }
    event_del(c->timer);
    c->step = CCAI_STEP_NONE;
    ccai_send_start(c);
    c->ended = 1;
    c->ends_ms = now;
    if (strcmp(outcome, "ANSWER") == 0) {
        if (c->connected_ms == 0) {
            c->assigned_ms = c->assigned_ms ? c->assigned_ms : now;
            c->connected_ms = now;
            c->has_agent = 1;
        }
        c->status = "finished";
        c->fail_reason = "nothing";
        c->agent_ps = c->eu_ps = "finished";
        sim_log("ccai call %s finished", c->id_s);
        ccai_send(
            c, json_pack("[oo]",
                         ccai_event(c, "disconnected",
                                    ccai_event_parts("disconnected", "disconnected"), 0),
                         ccai_event(c, "disconnected",
                                    ccai_event_parts("disconnected", "dispositionSubmitted"), 1)));
        return;
    }
    c->status = "failed";
    c->fail_reason = "unknown";
    for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(map[i].outcome, outcome) == 0) {
            c->fail_reason = map[i].fail_reason;
        }
    }
    c->agent_ps = c->eu_ps = "failed";
    sim_log("ccai call %s failed: %s", c->id_s, c->fail_reason);
    ccai_send_one(c, "disconnected", "disconnected", c->has_agent ? "disconnected" : NULL);
}

static void
ccai_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ccai_call *c = arg;
    int answer = strcmp(c->outcome, "ANSWER") == 0;

    switch (c->step) {
    case CCAI_STEP_CONNECTING:
        c->status = "connecting";
        ccai_send_start(c);
        if (answer) {
            ccai_plan(c, CCAI_STEP_ACCEPT, c->ring_ms * 3 / 4);
        } else {
            ccai_plan(c, CCAI_STEP_FAIL, c->ring_ms);
        }
        break;
    case CCAI_STEP_ACCEPT:
        ccai_send_one(c, "connected", "connected", "accepted");
        ccai_plan(c, CCAI_STEP_CONNECT, c->ring_ms);
        break;
    case CCAI_STEP_ASSIGN:
        c->status = "assigned";
        c->assigned_ms = sim_now_ms();
        c->has_agent = 1;
        ccai_send_one(c, "connected", "connected", "accepted");
        ccai_plan(c, CCAI_STEP_CONNECT, c->ring_ms);
        break;
    case CCAI_STEP_CONNECT:
        c->status = "connected";
        c->connected_ms = sim_now_ms();
        c->agent_ps = c->eu_ps = "connected";
        ccai_send_one(c, "connected", "connected", "connected");
        ccai_plan(c, CCAI_STEP_FINISH, c->end_ms);
        break;
    case CCAI_STEP_FINISH:
        ccai_finish(c, "ANSWER");
        break;
    case CCAI_STEP_FAIL:
        ccai_finish(c, c->outcome);
        break;
    case CCAI_STEP_NONE:
    default:
        break;
    }
}

static void
ccai_call_free(struct ccai_call *c)
{
    if (c->timer != NULL) {
        event_free(c->timer);
    }
    free(c->lang);
    free(c->agent_email);
    free(c->end_user_number);
    free(c->ticket_id);
    free(c->outbound_number);
    free(c);
}

/* Drop the oldest call to keep memory bounded. */
static void
ccai_evict_oldest(void)
{
    struct ccai_call *c = ccai_oldest;

    ccai_oldest = c->next;
    if (ccai_oldest != NULL) {
        ccai_oldest->prev = NULL;
    } else {
        ccai_newest = NULL;
    }
    ccai_ncalls--;
    ccai_call_free(c);
}

/* ---- POST /apps/api/v1/calls ---- */

/* The new-style kind of a call_type, or -1. */
static int
ccai_kind_of(const json_t *v)
{
    static const struct {
        const char *name;
        enum ccai_kind kind;
    } types[] = {
        {"Voice Outbound (API)", CCAI_OUTBOUND},   {"OutboundCall", CCAI_OUTBOUND},
        {"Voice Inbound (API)", CCAI_INBOUND},     {"IncomingCall", CCAI_INBOUND},
        {"Voice Scheduled (API)", CCAI_SCHEDULED}, {"ScheduledCall", CCAI_SCHEDULED},
    };
    size_t i;

    if (!ccai_cstring(v)) {
        return -1;
    }
    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(json_string_value(v), types[i].name) == 0) {
            return (int)types[i].kind;
        }
    }
    return -1;
}

/*
 * The outbound checks, in the page's order. Fills c's outbound fields and
 * returns 1, or answers 400 and returns 0.
 */
static int
ccai_check_outbound(struct sim_req *r, json_t *j, struct ccai_call *c)
{
    json_t *email = json_object_get(j, "agent_email");
    json_t *ticket = json_object_get(j, "ticket_id");
    json_t *number = json_object_get(j, "end_user_number");
    json_t *outnum = json_object_get(j, "outbound_number");
    json_t *lang = json_object_get(j, "lang");
    const char *e;
    size_t local_len = 0;
    char tbuf[32];

    if (!ccai_given(email)) {
        ccai_error(r, 400, "Agent email required");
        return 0;
    }
    if (!ccai_cstring(email) || !ccai_email_ok(json_string_value(email), &local_len)) {
        ccai_error(r, 400, "Not a valid agent email");
        return 0;
    }
    e = json_string_value(email);
    /* Stand-ins for the tenant's agent roster. */
    if (strncasecmp(e, "busy", 4) == 0) {
        ccai_error(r, 400, "Agent is not available to take this call");
        return 0;
    }
    if (strncasecmp(e, "noaccess", 8) == 0) {
        ccai_error(r, 400, "Agent does not have access to make calls");
        return 0;
    }
    if (!ccai_given(ticket) && !ccai_given(number)) {
        ccai_error(r, 400, "ticket_id or end_user_number required");
        return 0;
    }
    if (ccai_given(ticket)) {
        /* ticket_id wins: end_user_number is then not looked at. */
        const char *t = NULL;

        if (json_is_integer(ticket)) {
            snprintf(tbuf, sizeof(tbuf), "%lld", (long long)json_integer_value(ticket));
            t = tbuf;
        } else if (ccai_cstring(ticket)) {
            t = json_string_value(ticket);
        }
        if (t == NULL || strcmp(t, "404") == 0 || strncmp(t, "missing", 7) == 0) {
            ccai_error(r, 400, "Contact not found");
            return 0;
        }
        c->ticket_id = sim_strdup(t);
    } else if (!ccai_cstring(number) || !ccai_number_ok(json_string_value(number))) {
        ccai_error(r, 400, "end_user_number is not well-formed");
        return 0;
    }
    if (ccai_given(outnum) &&
        (!ccai_cstring(outnum) || !ccai_number_ok(json_string_value(outnum)))) {
        ccai_error(r, 400, "outbound_number is not well-formed");
        return 0;
    }
    if (ccai_given(lang) && !ccai_cstring(lang)) {
        char *text = ccai_value_text(lang);

        ccai_error(r, 400, "Language '%s' is not found", text != NULL ? text : "");
        free(text);
        return 0;
    }
    if (ccai_cstring(number)) {
        c->end_user_number = sim_strdup(json_string_value(number));
    }
    c->agent_email = sim_strdup(e);
    ccai_agent_names(c, e, local_len);
    c->outbound_number =
        sim_strdup(ccai_given(outnum) ? json_string_value(outnum) : CCAI_DEFAULT_OUTBOUND);
    c->lang = sim_strdup(ccai_given(lang) ? json_string_value(lang) : "en");
    return 1;
}

/* The inbound and scheduled checks. 1, or 0 after answering 400. */
static int
ccai_check_inbound(struct sim_req *r, json_t *j, struct ccai_call *c)
{
    static const struct {
        const char *value, *shown;
    } perms[] = {
        {"recording_permission_granted", "granted"},
        {"recording_permission_denied", "denied"},
        {"recording_permission_not_asked", "not_asked"},
    };
    json_t *menu = json_object_get(j, "menu_id");
    json_t *number = json_object_get(j, "end_user_number");
    json_t *lang = json_object_get(j, "lang");
    json_t *at = json_object_get(j, "scheduled_at");
    json_t *perm = json_object_get(j, "recording_permission");
    json_t *parent = json_object_get(j, "call_id");
    const char *problem;
    long long m;
    size_t i;

    if (menu == NULL || json_is_null(menu)) {
        ccai_error(r, 400, "menu_id is required");
        return 0;
    }
    if (!json_is_integer(menu) || json_integer_value(menu) < 1) {
        ccai_error(r, 400, "menu_id is not well formed");
        return 0;
    }
    m = (long long)json_integer_value(menu);
    if (m >= CCAI_MENU_LIMIT) {
        ccai_error(r, 400, "menu_id %lld is not found", m);
        return 0;
    }
    if (!ccai_given(number)) {
        ccai_error(r, 400, "end_user_number is required");
        return 0;
    }
    if (!ccai_cstring(number) || !ccai_number_ok(json_string_value(number))) {
        ccai_error(r, 400, "end_user_number is not well formed");
        return 0;
    }
    if (lang != NULL && !json_is_null(lang)) {
        char *text = ccai_value_text(lang);

        problem = ccai_cstring(lang) ? ccai_lang_problem(json_string_value(lang)) : "found";
        if (problem != NULL) {
            ccai_error(r, 400, "Language '%s' is not %s", text != NULL ? text : "", problem);
            free(text);
            return 0;
        }
        free(text);
    }
    if (c->kind == CCAI_SCHEDULED) {
        if (!ccai_given(at)) {
            ccai_error(r, 400, "scheduled_at is required");
            return 0;
        }
        if (!ccai_cstring(at) || ccai_rfc3339(json_string_value(at), &c->scheduled_ms) != 0) {
            ccai_error(r, 400, "scheduled_at is not well formed");
            return 0;
        }
    }
    c->recording_permission = "not_asked";
    if (perm != NULL && !json_is_null(perm)) {
        for (i = 0; i < sizeof(perms) / sizeof(perms[0]); i++) {
            if (ccai_cstring(perm) && strcmp(json_string_value(perm), perms[i].value) == 0) {
                c->recording_permission = perms[i].shown;
                break;
            }
        }
        if (i == sizeof(perms) / sizeof(perms[0])) {
            ccai_error(r, 400, "recording_permission is not well formed");
            return 0;
        }
    }
    c->menu_id = (long)m;
    c->end_user_number = sim_strdup(json_string_value(number));
    c->lang = sim_strdup(ccai_cstring(lang) ? json_string_value(lang) : "en");
    if (json_is_integer(parent) && json_integer_value(parent) > 0) {
        c->parent_id = (long)json_integer_value(parent);
    }
    return 1;
}

static void
ccai_calls_post(struct sim_req *r)
{
    json_t *j;
    struct ccai_call *c;
    int kind;

    if (!ccai_gate(r)) {
        return;
    }
    j = sim_req_json(r, NULL);
    if (!json_is_object(j)) {
        ccai_error(r, 400, "Invalid JSON");
        return;
    }
    kind = ccai_kind_of(json_object_get(j, "call_type"));
    if (kind < 0) {
        ccai_error(r, 400, "Invalid call type");
        return;
    }
    c = ccai_xcalloc(1, sizeof(*c));
    c->kind = (enum ccai_kind)kind;
    c->recording_permission = "not_asked";
    if (!(c->kind == CCAI_OUTBOUND ? ccai_check_outbound(r, j, c) : ccai_check_inbound(r, j, c))) {
        ccai_call_free(c);
        return;
    }
    if (ccai_ncalls >= CCAI_MAX_CALLS) {
        ccai_evict_oldest();
    }
    c->id = ccai_next_id++;
    snprintf(c->id_s, sizeof(c->id_s), "%ld", c->id);
    c->end_user_id = ccai_next_end_user++;
    c->agent_part_id = ccai_next_part++;
    c->eu_part_id = ccai_next_part++;
    c->agent_ps = c->eu_ps = "waiting";
    c->fail_reason = "nothing";
    snprintf(c->outcome, sizeof(c->outcome), "%s", sim_cfg.outcome);
    c->ring_ms = sim_cfg.ring_ms;
    c->end_ms = sim_cfg.call_ms > sim_cfg.ring_ms ? sim_cfg.call_ms : sim_cfg.ring_ms;
    c->created_ms = r->received_ms;
    c->accepted = c->kind == CCAI_OUTBOUND && ccai_accept_agent_action ? 202 : 201;
    c->timer = sim_timer_new(ccai_timer_cb, c);
    c->prev = ccai_newest;
    if (ccai_newest != NULL) {
        ccai_newest->next = c;
    } else {
        ccai_oldest = c;
    }
    ccai_newest = c;
    ccai_ncalls++;

    switch (c->kind) {
    case CCAI_OUTBOUND:
        /* The agent is assigned from the start; the dialling begins half-way to ring. */
        c->status = "assigned";
        c->assigned_ms = c->created_ms;
        c->has_agent = 1;
        ccai_plan(c, CCAI_STEP_CONNECTING, c->ring_ms / 2);
        break;
    case CCAI_INBOUND:
        /* The end user is on the line: the session starts now. */
        c->status = "queued";
        c->queued_ms = c->created_ms;
        ccai_send_start(c);
        if (strcmp(c->outcome, "ANSWER") == 0) {
            ccai_plan(c, CCAI_STEP_ASSIGN, c->ring_ms / 2);
        } else {
            ccai_plan(c, CCAI_STEP_FAIL, c->ring_ms);
        }
        break;
    case CCAI_SCHEDULED:
    default:
        /* Nothing happens until /_sim/calls/{id}/end. */
        c->status = "scheduled";
        break;
    }
    sim_log("ccai call %s created (%s, %s)", c->id_s, ccai_type_names[c->kind], c->status);
    if (c->accepted == 202) {
        /* The page's 202 example answers with the request itself. */
        sim_reply_json(r, 202, json_incref(j));
        return;
    }
    sim_reply_json(r, 201, ccai_call_json(c));
}

/* ---- reading calls and their flags ---- */

static void
ccai_call_get(struct sim_req *r)
{
    struct ccai_call *c;

    if (!ccai_gate(r)) {
        return;
    }
    c = ccai_find(r->params[0]);
    if (c == NULL) {
        ccai_error(r, 404, "Not found");
        return;
    }
    sim_reply_json(r, 200, ccai_call_json(c));
}

/* The Apps API has no single-call GET; apps_get pretends it has. */
static void
ccai_apps_call_get(struct sim_req *r)
{
    if (!ccai_apps_get) {
        if (ccai_gate(r)) {
            ccai_error(r, 404, "Not found");
        }
        return;
    }
    ccai_call_get(r);
}

static json_t *
ccai_flags_json(const struct ccai_call *c)
{
    json_t *o = json_object();

    json_object_set_new(o, "verified_customer", json_boolean(c->verified_customer));
    json_object_set_new(o, "bad_actor", json_boolean(c->bad_actor));
    json_object_set_new(o, "repeat_customer", json_boolean(c->repeat_customer));
    return o;
}

static void
ccai_flag_get(struct sim_req *r)
{
    struct ccai_call *c;

    if (!ccai_gate(r)) {
        return;
    }
    c = ccai_find(r->params[0]);
    if (c == NULL) {
        ccai_error(r, 404, "Not found");
        return;
    }
    sim_reply_json(r, 200, ccai_flags_json(c));
}

/* The flag a PATCH key names, or NULL. The page misspells one as "repeat_customers". */
static int *
ccai_flag_field(struct ccai_call *c, const char *key)
{
    if (strcmp(key, "verified_customer") == 0) {
        return &c->verified_customer;
    }
    if (strcmp(key, "bad_actor") == 0) {
        return &c->bad_actor;
    }
    if (strcmp(key, "repeat_customer") == 0 || strcmp(key, "repeat_customers") == 0) {
        return &c->repeat_customer;
    }
    return NULL;
}

static void
ccai_flag_patch(struct sim_req *r)
{
    struct ccai_call *c;
    const char *key;
    json_t *j, *v;

    if (!ccai_gate(r)) {
        return;
    }
    c = ccai_find(r->params[0]);
    if (c == NULL) {
        ccai_error(r, 404, "Not found");
        return;
    }
    j = sim_req_json(r, NULL);
    if (!json_is_object(j)) {
        ccai_error(r, 400, "Invalid JSON");
        return;
    }
    /* Check everything first: a bad field changes nothing. */
    json_object_foreach(j, key, v)
    {
        if (ccai_flag_field(c, key) == NULL) {
            ccai_error(r, 400, "Unknown field: %s", key);
            return;
        }
        if (!json_is_boolean(v)) {
            ccai_error(r, 400, "%s must be a boolean", key);
            return;
        }
    }
    json_object_foreach(j, key, v) { *ccai_flag_field(c, key) = json_is_true(v); }
    sim_reply_json(r, 200, ccai_flags_json(c));
}

/* ---- GET /ccai/recordings/{id}.wav ---- */


static void
ccai_recording_get(struct sim_req *r)
{
    const char *name = r->params[0];
    size_t n = strlen(name);
    char id[24];
    struct ccai_call *c;

    if (!ccai_gate(r)) {
        return;
    }
    if (n <= 4 || strcmp(name + n - 4, ".wav") != 0 || n - 4 >= sizeof(id)) {
        ccai_error(r, 404, "Not found");
        return;
    }
    memcpy(id, name, n - 4);
    id[n - 4] = '\0';
    c = ccai_find(id);
    if (c == NULL || !c->ended || c->connected_ms == 0) {
        ccai_error(r, 404, "Not found");
        return;
    }
    sim_reply_silent_wav(r);
}

/* ---- /_sim hooks and control ---- */

static void
ccai_calls_json(json_t *out)
{
    struct ccai_call *c;

    for (c = ccai_oldest; c != NULL; c = c->next) {
        json_t *o = json_object();
        char url[256];

        json_object_set_new(o, "vendor", json_string(ccai_vendor.name));
        json_object_set_new(o, "call_id", json_string(c->id_s));
        json_object_set_new(o, "id", json_integer(c->id));
        json_object_set_new(o, "status", json_string(c->status));
        json_object_set_new(o, "fail_reason", json_string(c->fail_reason));
        json_object_set_new(o, "call_type", json_string(ccai_type_names[c->kind]));
        json_object_set_new(o, "agent_email", sim_json_str_or_null(c->agent_email));
        json_object_set_new(o, "end_user_number", sim_json_str_or_null(c->end_user_number));
        json_object_set_new(o, "ticket_id", sim_json_str_or_null(c->ticket_id));
        json_object_set_new(o, "menu_id", c->menu_id ? json_integer(c->menu_id) : json_null());
        json_object_set_new(o, "accepted", json_integer(c->accepted));
        json_object_set_new(o, "flags", ccai_flags_json(c));
        json_object_set_new(o, "outcome", json_string(c->outcome));
        json_object_set_new(o, "ended", json_boolean(c->ended));
        if (c->ended && c->connected_ms != 0) {
            ccai_recording_url(c, url, sizeof(url));
            json_object_set_new(o, "recording_url", json_string(url));
        } else {
            json_object_set_new(o, "recording_url", json_null());
        }
        json_object_set_new(o, "created_ms", json_integer((json_int_t)c->created_ms));
        json_array_append_new(out, o);
    }
}

static int
ccai_call_end(const char *call_id, const char *status, char *err, size_t errlen)
{
    struct ccai_call *c = ccai_find(call_id);

    if (c == NULL) {
        return 1;
    }
    if (c->ended) {
        snprintf(err, errlen, "Call already ended (%s)", c->status);
        return -1;
    }
    if (status == NULL) {
        status = c->connected_ms != 0 ? "ANSWER" : "CANCELED";
    }
    ccai_finish(c, status);
    return 0;
}

static json_t *
ccai_config_json(void)
{
    json_t *o = json_object();

    json_object_set_new(o, "user", sim_json_str_or_null(sim_cfg.ccai_user));
    json_object_set_new(o, "token", sim_json_str_or_null(sim_cfg.ccai_token));
    json_object_set_new(o, "push_url", sim_json_str_or_null(sim_cfg.ccai_push_url));
    json_object_set_new(o, "push_user", sim_json_str_or_null(ccai_push_user));
    json_object_set_new(o, "push_password", sim_json_str_or_null(ccai_push_password));
    json_object_set_new(o, "accept",
                        json_string(ccai_accept_agent_action ? "agent_action" : "created"));
    json_object_set_new(o, "rate_limit", json_integer(ccai_rate_limit));
    json_object_set_new(o, "apps_get", json_boolean(ccai_apps_get));
    return o;
}

static void
ccai_config_get(struct sim_req *r)
{
    sim_reply_json(r, 200, ccai_config_json());
}

/* A setting that must be a non-empty string (without ':' when no_colon). */
static int
ccai_setting_str(const json_t *v, int no_colon)
{
    return ccai_cstring(v) && json_string_length(v) > 0 &&
           (!no_colon || strchr(json_string_value(v), ':') == NULL);
}

/* Replace *dst with a copy of v's string when v is given. */
static void
ccai_set_str(char **dst, const json_t *v)
{
    if (v != NULL) {
        free(*dst);
        *dst = json_is_string(v) ? sim_strdup(json_string_value(v)) : NULL;
    }
}

static void
ccai_config_post(struct sim_req *r)
{
    static const char *const known[] = {"user",          "token",  "push_url",   "push_user",
                                        "push_password", "accept", "rate_limit", "apps_get"};
    const char *why = NULL;
    json_t *j = sim_req_json(r, &why);
    long long rate = ccai_rate_limit;
    const char *key;
    json_t *v;

    if (!json_is_object(j)) {
        sim_reply_error(r, 400, "%s", j == NULL ? why : "Body must be a JSON object");
        return;
    }
    json_object_foreach(j, key, v)
    {
        size_t i;

        for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
            if (strcmp(key, known[i]) == 0) {
                break;
            }
        }
        if (i == sizeof(known) / sizeof(known[0])) {
            sim_reply_error(r, 400, "Unknown setting: %s", key);
            return;
        }
    }
    /* Check everything first, then apply: all or nothing. */
    v = json_object_get(j, "user");
    if (v != NULL && !ccai_setting_str(v, 1)) {
        sim_reply_error(r, 400, "user must be a non-empty string without ':'");
        return;
    }
    v = json_object_get(j, "token");
    if (v != NULL && !ccai_setting_str(v, 0)) {
        sim_reply_error(r, 400, "token must be a non-empty string");
        return;
    }
    v = json_object_get(j, "push_url");
    if (v != NULL && !json_is_null(v) &&
        (!ccai_cstring(v) || !sim_url_valid(json_string_value(v)))) {
        sim_reply_error(r, 400, "push_url must be an http:// URL or null");
        return;
    }
    v = json_object_get(j, "push_user");
    if (v != NULL && !ccai_setting_str(v, 1)) {
        sim_reply_error(r, 400, "push_user must be a non-empty string without ':'");
        return;
    }
    v = json_object_get(j, "push_password");
    if (v != NULL && !ccai_setting_str(v, 0)) {
        sim_reply_error(r, 400, "push_password must be a non-empty string");
        return;
    }
    v = json_object_get(j, "accept");
    if (v != NULL && (!json_is_string(v) || (strcmp(json_string_value(v), "created") != 0 &&
                                             strcmp(json_string_value(v), "agent_action") != 0))) {
        sim_reply_error(r, 400, "accept must be \"created\" or \"agent_action\"");
        return;
    }
    v = json_object_get(j, "rate_limit");
    if (v != NULL && !sim_json_int(v, 0, CCAI_RATE_MAX, &rate)) {
        sim_reply_error(r, 400, "rate_limit must be an integer 0..%d", CCAI_RATE_MAX);
        return;
    }
    v = json_object_get(j, "apps_get");
    if (v != NULL && !json_is_boolean(v)) {
        sim_reply_error(r, 400, "apps_get must be a boolean");
        return;
    }

    ccai_set_str(&sim_cfg.ccai_user, json_object_get(j, "user"));
    ccai_set_str(&sim_cfg.ccai_token, json_object_get(j, "token"));
    ccai_set_str(&sim_cfg.ccai_push_url, json_object_get(j, "push_url"));
    ccai_set_str(&ccai_push_user, json_object_get(j, "push_user"));
    ccai_set_str(&ccai_push_password, json_object_get(j, "push_password"));
    v = json_object_get(j, "accept");
    if (v != NULL) {
        ccai_accept_agent_action = strcmp(json_string_value(v), "agent_action") == 0;
    }
    if ((int)rate != ccai_rate_limit) {
        /* A new limit starts with a fresh second. */
        ccai_rate_limit = (int)rate;
        ccai_rate_head = ccai_rate_count = 0;
    }
    v = json_object_get(j, "apps_get");
    if (v != NULL) {
        ccai_apps_get = json_is_true(v);
    }
    sim_reply_json(r, 200, ccai_config_json());
}

static void
ccai_cleanup(void)
{
    while (ccai_oldest != NULL) {
        ccai_evict_oldest();
    }
    free(ccai_push_user);
    free(ccai_push_password);
    ccai_push_user = ccai_push_password = NULL;
}

void
ccai_init(void)
{
    ccai_push_user = sim_strdup("ccai-hook");
    ccai_push_password = sim_strdup("ccai-hook-secret");
    sim_vendor_register(&ccai_vendor);
    sim_route_add(&ccai_vendor, "POST", "", "/apps/api/v1/calls", ccai_calls_post);
    sim_route_add(&ccai_vendor, "GET", "", "/apps/api/v1/calls/{id}", ccai_apps_call_get);
    sim_route_add(&ccai_vendor, "GET", "", "/apps/api/v1/calls/{id}/customer_flag", ccai_flag_get);
    sim_route_add(&ccai_vendor, "PATCH", "", "/apps/api/v1/calls/{id}/customer_flag",
                  ccai_flag_patch);
    sim_route_add(&ccai_vendor, "GET", "", "/manager/api/v1/calls/{id}", ccai_call_get);
    sim_route_add(&ccai_vendor, "GET", "", "/ccai/recordings/{name}", ccai_recording_get);
    sim_route_add(NULL, "GET", "", "/_sim/ccai/config", ccai_config_get);
    sim_route_add(NULL, "POST", "", "/_sim/ccai/config", ccai_config_post);
}
