/*
 * callerdesk.c: the simulated Callerdesk API (app.callerdesk.io/api/...), as
 * its documents and the clients that used it describe it (shared/seeds/000,
 * 001, shared/vendors.md section 1). Its quirk is kept: every answer is
 * HTTP 200, and an error is {"type":"error","message":"..."}.
 *
 * GET /api/click_to_call_v4 does the same for the agent named by member_id.
 * GET /api/click_to_call_v2 places a click-to-call (agent = leg A first,
 *   then the customer = leg B) that timers play out; when a push URL is set
 *   a Live Call event ("Status":"Picked") is sent when the customer answers
 *   and a Call Report when the call ends, as a JSON POST (through the core's
 *   sim_push) or, with callerdesk_push_method "GET", as a GET with the fields
 *   in the query string (sent here, retried the same way).
 * POST /api/call_list_v2 pages the call report: the simulated calls plus a
 *   deterministic synthetic history per caller number. No rows is
 *   {"type":"error","message":"No Data Found"}.
 * GET /recordings/cd_<CallSid>.wav serves a short silent WAV.
 *
 * Times are IST wall-clock ("yyyy-mm-dd hh:mm:ss", UTC+05:30, no DST);
 * "0000-00-00 00:00:00" stands for a leg time that never happened.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "sim.h"

#ifndef CDK_MAX_CALLS
#define CDK_MAX_CALLS 100000
#endif
#define CDK_IST_OFFSET_S (5 * 3600 + 30 * 60)
#define CDK_ZERO_TIME "0000-00-00 00:00:00"
#define CDK_FIRST_CAMPID 45717408L
#define CDK_DESKPHONE "08062987377"
#define CDK_DEFAULT_DAYS 30
#define CDK_MAX_RANGE_DAYS 366
#define CDK_DEFAULT_PER_PAGE 20
#define CDK_MAX_PER_PAGE 200
/* GET pushes: attempts in all, first backoff, timeout per attempt, log size. */

struct cdk_call {
    struct cdk_call *prev, *next; /* creation order, oldest first */
    long campid;
    char campid_s[24];
    char sid[40];        /* CallSid (Asterisk-style "<epoch>.<n>") */
    char *uid;           /* the client's uid, echoed; NULL when not given */
    char agent10[11];    /* calling_party_a */
    char customer10[11]; /* calling_party_b */
    char *deskphone;
    char outcome[16]; /* planned: ANSWER, NO_ANSWER, BUSY, FAILED, CANCELED */
    char status[64];  /* report Status once ended */
    char callstatus[32];
    char hangup[48];
    long ring_ms;
    long talk_ms;
    uint64_t created_ms;
    uint64_t lega_ms;   /* agent picked up; 0: never */
    uint64_t legb_ms;   /* customer leg started; 0: never */
    uint64_t picked_ms; /* customer picked up; 0: never */
    uint64_t end_ms;
    int answered;
    int ended;
    struct event *timer;
};

static struct cdk_call *cdk_oldest;
static struct cdk_call *cdk_newest;
static size_t cdk_ncalls;
static long cdk_next_campid = CDK_FIRST_CAMPID;
static unsigned long cdk_next_sid;

static int cdk_auth_ok(struct sim_req *r);
static void cdk_calls_json(json_t *out);
static int cdk_call_end(const char *call_id, const char *status, char *err, size_t errlen);
static void cdk_cleanup(void);

static const struct sim_vendor cdk_vendor = {
    .name = "callerdesk",
    .auth_ok = cdk_auth_ok,
    .calls_json = cdk_calls_json,
    .call_end = cdk_call_end,
    .cleanup = cdk_cleanup,
};

static const struct {
    const char *name;
    const char *number;
} cdk_members[] = {
    {"Asha Rao", "9812300001"},
    {"Vikram Singh", "9812300002"},
    {"Neha Gupta", "9812300003"},
};

/* ---- helpers ---- */

static int
cdk_hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decode s[0..n) form-style ('+' = space, %XX) into a new string. */
static char *
cdk_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    size_t i, o = 0;

    if (out == NULL) {
        fprintf(stderr, "vendorsim: out of memory\n");
        abort();
    }
    for (i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && cdk_hexval((unsigned char)s[i + 1]) >= 0 &&
                   cdk_hexval((unsigned char)s[i + 2]) >= 0) {
            out[o++] = (char)(cdk_hexval((unsigned char)s[i + 1]) * 16 +
                              cdk_hexval((unsigned char)s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

/* The form fields of an x-www-form-urlencoded body (a new object; first of a name wins). */
static json_t *
cdk_form_parse(const char *s, size_t len)
{
    json_t *o = json_object();
    const char *end = s + len;

    while (s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *seg_end = amp != NULL ? amp : end;
        const char *eq = memchr(s, '=', (size_t)(seg_end - s));

        if (eq != NULL && eq > s) {
            char *name = cdk_decode(s, (size_t)(eq - s));
            char *value = cdk_decode(eq + 1, (size_t)(seg_end - eq - 1));

            if (json_object_get(o, name) == NULL) {
                json_object_set_new(o, name, sim_json_str_or_null(value));
            }
            free(name);
            free(value);
        }
        s = seg_end + 1;
    }
    return o;
}

/* A request parameter: the form body first (POST), then the query string. */
static const char *
cdk_param(struct sim_req *r, json_t *form, const char *name)
{
    json_t *v = form != NULL ? json_object_get(form, name) : NULL;

    if (json_is_string(v)) {
        return json_string_value(v);
    }
    return sim_req_query(r, name);
}

static int
cdk_auth_ok(struct sim_req *r)
{
    json_t *form = strcmp(r->method, "POST") == 0 ? cdk_form_parse(r->body, r->body_len) : NULL;
    const char *code = cdk_param(r, form, "authcode");
    int ok =
        code != NULL && sim_cfg.cdk_authcode != NULL && strcmp(code, sim_cfg.cdk_authcode) == 0;

    json_decref(form);
    return ok;
}

/* Callerdesk answers everything with HTTP 200, often labelled text/html. */
static void
cdk_reply(struct sim_req *r, const char *ctype, json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);

    json_decref(obj);
    if (text == NULL) {
        sim_reply_error(r, 500, "Out of memory");
        return;
    }
    sim_reply(r, 200, ctype, text, strlen(text));
    free(text);
}

static void
cdk_type_error(struct sim_req *r, const char *message)
{
    json_t *o = json_object();

    json_object_set_new(o, "type", json_string("error"));
    json_object_set_new(o, "message", json_string(message));
    cdk_reply(r, "text/html; charset=UTF-8", o);
}

/* 1 when s is exactly 10 digits. */
static int
cdk_ten_digits(const char *s)
{
    size_t i;

    if (s == NULL || strlen(s) != 10) {
        return 0;
    }
    for (i = 0; i < 10; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
    }
    return 1;
}

/* IST wall-clock text of ms since the epoch; 0 gives the zero time. */
static void
cdk_ist(uint64_t ms, char *out, size_t outlen)
{
    time_t t;
    struct tm tm;

    if (ms == 0) {
        snprintf(out, outlen, "%s", CDK_ZERO_TIME);
        return;
    }
    t = (time_t)(ms / 1000) + CDK_IST_OFFSET_S;
    gmtime_r(&t, &tm);
    strftime(out, outlen, "%Y-%m-%d %H:%M:%S", &tm);
}

/* Whole seconds from a to b, rounded up; 0 when either is unset. */
static long
cdk_secs(uint64_t a, uint64_t b)
{
    if (a == 0 || b == 0 || b < a) {
        return 0;
    }
    return (long)((b - a + 999) / 1000);
}

static json_t *
cdk_long_str(long v)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%ld", v);
    return json_string(buf);
}

static void
cdk_recording_url(const char *sid, char *out, size_t outlen)
{
    snprintf(out, outlen, "http://%s/recordings/cd_%s.wav", sim_cfg.listen_addr, sid);
}

static struct cdk_call *
cdk_find_campid(const char *s)
{
    struct cdk_call *c;

    for (c = cdk_oldest; c != NULL; c = c->next) {
        if (strcmp(c->campid_s, s) == 0) {
            return c;
        }
    }
    return NULL;
}

static struct cdk_call *
cdk_find_sid(const char *sid)
{
    struct cdk_call *c;

    for (c = cdk_oldest; c != NULL; c = c->next) {
        if (strcmp(c->sid, sid) == 0) {
            return c;
        }
    }
    return NULL;
}

/* ---- webhooks ---- */

/* Append s percent-encoded (RFC 3986 unreserved characters kept). */
static void
cdk_escape(struct evbuffer *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *u;

    for (u = (const unsigned char *)s; *u != '\0'; u++) {
        if ((*u >= 'A' && *u <= 'Z') || (*u >= 'a' && *u <= 'z') || (*u >= '0' && *u <= '9') ||
            *u == '-' || *u == '.' || *u == '_' || *u == '~') {
            evbuffer_add(b, u, 1);
        } else {
            evbuffer_add_printf(b, "%%%c%c", hex[*u >> 4], hex[*u & 0x0f]);
        }
    }
}

/* GET url?<fields as a query string>, through the core's retrying push. */
static void
cdk_push_get(const char *url, json_t *fields, const char *uid, const char *campid,
             const char *status)
{
    struct evbuffer *b = evbuffer_new();
    const char *key;
    json_t *v;
    char sep = strchr(url, '?') != NULL ? '&' : '?';
    char *full;
    size_t n;

    if (b == NULL) {
        fprintf(stderr, "vendorsim: out of memory\n");
        abort();
    }
    evbuffer_add(b, url, strlen(url));
    json_object_foreach(fields, key, v)
    {
        char num[32];
        const char *s = json_is_string(v) ? json_string_value(v) : "";

        if (json_is_integer(v)) {
            snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
            s = num;
        }
        evbuffer_add(b, &sep, 1);
        cdk_escape(b, key);
        evbuffer_add(b, "=", 1);
        cdk_escape(b, s);
        sep = '&';
    }
    n = evbuffer_get_length(b);
    full = malloc(n + 1);
    if (full == NULL) {
        fprintf(stderr, "vendorsim: out of memory\n");
        abort();
    }
    evbuffer_copyout(b, full, n);
    full[n] = '\0';
    evbuffer_free(b);
    sim_push(cdk_vendor.name, full, uid, campid, status, NULL);
    free(full);
}

/* Send one webhook (fields is consumed) to the push URL, if one is set. */
static void
cdk_push(struct cdk_call *c, const char *status, json_t *fields)
{
    char *text;

    if (sim_cfg.cdk_push_url != NULL) {
        if (sim_cfg.cdk_push_get) {
            cdk_push_get(sim_cfg.cdk_push_url, fields, c->uid, c->campid_s, status);
        } else {
            text = json_dumps(fields, JSON_COMPACT | JSON_PRESERVE_ORDER);
            if (text != NULL) {
                sim_push(cdk_vendor.name, sim_cfg.cdk_push_url, c->uid, c->campid_s, status, text);
                free(text);
            }
        }
    }
    json_decref(fields);
}

/* ---- calls ---- */

/* The fields both webhooks share. */
static json_t *
cdk_hook_common(const struct cdk_call *c, const char *status)
{
    json_t *o = json_object();
    char t[32];

    json_object_set_new(o, "SourceNumber", json_string(c->agent10));
    json_object_set_new(o, "DestinationNumber", sim_json_str_or_null(c->deskphone));
    json_object_set_new(o, "DialWhomNumber", json_string(c->customer10));
    json_object_set_new(o, "Status", json_string(status));
    cdk_ist(c->created_ms, t, sizeof(t));
    json_object_set_new(o, "StartTime", json_string(t));
    json_object_set_new(o, "CallSid", json_string(c->sid));
    json_object_set_new(o, "Direction", json_string("WEBOBD"));
    json_object_set_new(o, "campid", json_string(c->campid_s));
    if (c->uid != NULL) {
        json_object_set_new(o, "uid", sim_json_str_or_null(c->uid));
    }
    return o;
}

static void
cdk_push_live(struct cdk_call *c)
{
    /* The Live Call event's "type" value is not documented: none is sent. */
    cdk_push(c, "Picked", cdk_hook_common(c, "Picked"));
}

static void
cdk_push_report(struct cdk_call *c)
{
    json_t *o = cdk_hook_common(c, c->status);
    char t[32], url[256] = "";

    json_object_set_new(o, "type", json_string("call_report"));
    cdk_ist(c->end_ms, t, sizeof(t));
    json_object_set_new(o, "EndTime", json_string(t));
    json_object_set_new(o, "CallDuration", cdk_long_str(cdk_secs(c->created_ms, c->end_ms)));
    json_object_set_new(o, "TalkDuration", cdk_long_str(cdk_secs(c->picked_ms, c->end_ms)));
    if (c->answered) {
        cdk_recording_url(c->sid, url, sizeof(url));
    }
    json_object_set_new(o, "CallRecordingUrl", json_string(url));
    json_object_set_new(o, "coins", json_string(c->answered ? "1" : "0"));
    cdk_ist(c->lega_ms, t, sizeof(t));
    json_object_set_new(o, "LegA_Picked_time", json_string(t));
    cdk_ist(c->legb_ms, t, sizeof(t));
    json_object_set_new(o, "LegB_Start_time", json_string(t));
    cdk_ist(c->picked_ms, t, sizeof(t));
    json_object_set_new(o, "LegB_Picked_time", json_string(t));
    json_object_set_new(o, "callstatus", json_string(c->callstatus));
    json_object_set_new(o, "hangup_cause", json_string(c->hangup));
    json_object_set_new(o, "Uniqueid", json_string(c->sid));
    json_object_set_new(o, "call_group", json_string(""));
    json_object_set_new(o, "receiver_name", json_string(""));
    json_object_set_new(o, "error_code", json_string(""));
    json_object_set_new(o, "key_press", json_string(""));
    cdk_push(c, c->status, o);
}

/* End c now with outcome (ANSWER, NO_ANSWER, ...), then send the report. */
static void
cdk_call_finish(struct cdk_call *c, const char *outcome)
{
    static const struct {
        const char *outcome, *status, *callstatus, *hangup;
    } map[] = {
        {"ANSWER", "ANSWER", "ANSWER", "NORMAL_CLEARING"},
        {"NO_ANSWER", "Cancel-Customer(NOANSWER (0-Customer))", "Cancel-Customer",
         "NOANSWER(0-Customer)"},
        {"BUSY", "Cancel-Customer(Busy (17-Customer))", "Cancel-Customer", "Busy(17-Customer)"},
        {"FAILED", "Cancel-Customer(Congestion (1-Customer))", "Cancel-Customer",
         "Congestion(1-Customer)"},
        {"CANCELED", "CANCEL (0-Agent)", "CANCEL", "CANCEL(0-Agent)"},
    };
    size_t i;

    if (c->ended) {
        return;
    }
    event_del(c->timer);
    c->ended = 1;
    c->end_ms = sim_now_ms();
    for (i = 0; i < sizeof(map) / sizeof(map[0]) - 1; i++) {
        if (strcmp(map[i].outcome, outcome) == 0) {
            break;
        }
    }
    snprintf(c->status, sizeof(c->status), "%s", map[i].status);
    snprintf(c->callstatus, sizeof(c->callstatus), "%s", map[i].callstatus);
    snprintf(c->hangup, sizeof(c->hangup), "%s", map[i].hangup);
    if (strcmp(map[i].outcome, "ANSWER") == 0 && !c->answered) {
        c->lega_ms = c->lega_ms ? c->lega_ms : c->end_ms;
        c->legb_ms = c->legb_ms ? c->legb_ms : c->end_ms;
        c->picked_ms = c->end_ms;
        c->answered = 1;
    } else if (strcmp(map[i].outcome, "CANCELED") != 0 && c->lega_ms == 0) {
        /* The agent took the call, then the customer's leg failed. */
        c->lega_ms = c->created_ms + (c->end_ms - c->created_ms) / 2;
        c->legb_ms = c->lega_ms;
    }
    sim_log("callerdesk call %s (%s) ended: %s", c->campid_s, c->sid, c->status);
    cdk_push_report(c);
}

static void
cdk_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cdk_call *c = arg;

    if (c->ended) {
        return;
    }
    if (c->answered) {
        cdk_call_finish(c, "ANSWER");
        return;
    }
    if (strcmp(c->outcome, "ANSWER") != 0) {
        cdk_call_finish(c, c->outcome);
        return;
    }
    c->picked_ms = sim_now_ms();
    c->lega_ms = c->created_ms + (c->picked_ms - c->created_ms) / 2;
    c->legb_ms = c->lega_ms;
    c->answered = 1;
    cdk_push_live(c);
    sim_timer_start(c->timer, c->talk_ms);
}

static void
cdk_call_free(struct cdk_call *c)
{
    if (c->timer != NULL) {
        event_free(c->timer);
    }
    free(c->uid);
    free(c->deskphone);
    free(c);
}

static void
cdk_call_unlink(struct cdk_call *c)
{
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        cdk_oldest = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    } else {
        cdk_newest = c->prev;
    }
    cdk_ncalls--;
}

/* ---- GET /api/click_to_call_v2 and _v4 ---- */

/* Place a click-to-call from agent a (10 digits) to calling_party_b. */
static void
cdk_place(struct sim_req *r, const char *a)
{
    const char *b = sim_req_query(r, "calling_party_b");
    const char *deskphone = sim_req_query(r, "deskphone");
    const char *did = sim_req_query(r, "call_from_did");
    const char *uid = sim_req_query(r, "uid");
    char callerid[40];
    struct cdk_call *c;
    size_t n;
    json_t *o;

    if (!cdk_auth_ok(r)) {
        cdk_type_error(r, "Invalid Auth Code!");
        return;
    }
    /* Numbers sent with 91 / +91 (or not 10 digits at all) fail like an inactive agent. */
    if (!cdk_ten_digits(a) || !cdk_ten_digits(b)) {
        cdk_type_error(r, "Agent on break/Inactive. Call not allowed");
        return;
    }
    if (deskphone == NULL || deskphone[0] == '\0') {
        cdk_type_error(r, "Invalid Deskphone Number!");
        return;
    }
    if (did == NULL || strcmp(did, "1") != 0) {
        cdk_type_error(r, "call_from_did is required and must be 1");
        return;
    }
    if (cdk_ncalls >= CDK_MAX_CALLS) {
        struct cdk_call *old = cdk_oldest;

        cdk_call_unlink(old);
        cdk_call_free(old);
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        sim_reply_error(r, 500, "Out of memory");
        return;
    }
    c->campid = cdk_next_campid++;
    snprintf(c->campid_s, sizeof(c->campid_s), "%ld", c->campid);
    snprintf(c->sid, sizeof(c->sid), "%llu.%lu", (unsigned long long)(r->received_ms / 1000),
             ++cdk_next_sid);
    c->uid = uid != NULL && uid[0] != '\0' ? sim_strdup(uid) : NULL;
    memcpy(c->agent10, a, 11);
    memcpy(c->customer10, b, 11);
    c->deskphone = sim_strdup(deskphone);
    snprintf(c->outcome, sizeof(c->outcome), "%s", sim_cfg.outcome);
    c->ring_ms = sim_cfg.ring_ms;
    c->talk_ms = sim_cfg.call_ms > sim_cfg.ring_ms ? sim_cfg.call_ms - sim_cfg.ring_ms : 0;
    c->created_ms = r->received_ms;
    c->timer = sim_timer_new(cdk_timer_cb, c);
    c->prev = cdk_newest;
    if (cdk_newest != NULL) {
        cdk_newest->next = c;
    } else {
        cdk_oldest = c;
    }
    cdk_newest = c;
    cdk_ncalls++;
    sim_timer_start(c->timer, c->ring_ms);

    /* callerid: the DID as 0091 + its last 10 digits, as the real answer shows it. */
    n = strlen(deskphone);
    if (n >= 10 && strspn(deskphone, "0123456789") == n) {
        snprintf(callerid, sizeof(callerid), "0091%s", deskphone + n - 10);
    } else {
        snprintf(callerid, sizeof(callerid), "%.39s", deskphone);
    }
    o = json_object();
    json_object_set_new(o, "type", json_string("success"));
    json_object_set_new(o, "message", json_string("Call to Customer Initiate Successfully.."));
    json_object_set_new(o, "campid", json_integer(c->campid));
    json_object_set_new(o, "callerid", json_string(callerid));
    cdk_reply(r, "text/html; charset=UTF-8", o);
}

static void
cdk_click_to_call(struct sim_req *r)
{
    cdk_place(r, sim_req_query(r, "calling_party_a"));
}

/*
 * GET /api/click_to_call_v4: the agent named by member_id. Member n (1 to 6
 * digits, not 0) has the number 98 followed by n on 8 digits; anything else
 * is not a member.
 */
static void
cdk_click_to_call_member(struct sim_req *r)
{
    const char *m = sim_req_query(r, "member_id");
    char agent[16];
    size_t n = m != NULL ? strlen(m) : 0;

    if (!cdk_auth_ok(r)) {
        cdk_type_error(r, "Invalid Auth Code!");
        return;
    }
    if (n == 0 || n > 6 || strspn(m, "0123456789") != n || strtol(m, NULL, 10) == 0) {
        cdk_type_error(r, "Invalid Member ID");
        return;
    }
    snprintf(agent, sizeof(agent), "98%08ld", strtol(m, NULL, 10));
    cdk_place(r, agent);
}

/* ---- POST /api/call_list_v2 ---- */

/* "YYYY-MM-DD" (a real date) to days since the epoch. 0 or -1. */
static int
cdk_parse_date(const char *s, long *days)
{
    struct tm tm, back;
    time_t t;
    int i;

    for (i = 0; i < 10; i++) {
        if (i == 4 || i == 7 ? s[i] != '-' : (s[i] < '0' || s[i] > '9')) {
            return -1;
        }
    }
    if (s[10] != '\0') {
        return -1;
    }
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = atoi(s) - 1900;
    tm.tm_mon = atoi(s + 5) - 1;
    tm.tm_mday = atoi(s + 8);
    t = timegm(&tm);
    gmtime_r(&t, &back);
    if (back.tm_year != tm.tm_year || back.tm_mon != tm.tm_mon || back.tm_mday != tm.tm_mday ||
        t < 0) {
        return -1;
    }
    *days = (long)(t / 86400);
    return 0;
}

/* Today's IST day number. */
static long
cdk_today(void)
{
    return (long)(((long long)(sim_now_ms() / 1000) + CDK_IST_OFFSET_S) / 86400);
}

static uint32_t
cdk_mix(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    h *= 0x846ca68bu;
    h ^= h >> 16;
    return h;
}

static uint32_t
cdk_hash(const char *s)
{
    uint32_t h = 2166136261u;

    while (*s != '\0') {
        h ^= (unsigned char)*s++;
        h *= 16777619u;
    }
    return h;
}

/* A call-report row with the fields every row has. Times are IST text. */
static json_t *
cdk_row_new(long id, const char *sid, const char *file, const char *deskphone, const char *member,
            const char *member_num, const char *caller, const char *start, const char *end,
            long total, long talk, const char *callresult, const char *callstatus, const char *lega,
            const char *legb, const char *picked, const char *flow)
{
    json_t *o = json_object();

    json_object_set_new(o, "id", json_integer(id));
    json_object_set_new(o, "sid_id", json_string(sid));
    json_object_set_new(o, "file", json_string(file));
    json_object_set_new(o, "deskphone", sim_json_str_or_null(deskphone));
    json_object_set_new(o, "caller_name", json_string(""));
    json_object_set_new(o, "is_contact", json_string("0"));
    json_object_set_new(o, "member_name", json_string(member));
    json_object_set_new(o, "caller_num", json_string(caller));
    json_object_set_new(o, "coin_deducted", json_string(total > 0 ? "1" : "0"));
    json_object_set_new(o, "member_num", json_string(member_num));
    json_object_set_new(o, "call_date", json_string(start));
    json_object_set_new(o, "startdatetime", json_string(start));
    json_object_set_new(o, "enddatetime", json_string(end));
    json_object_set_new(o, "total_duration", cdk_long_str(total));
    json_object_set_new(o, "talk_duration", cdk_long_str(talk));
    json_object_set_new(o, "ringing_duration", cdk_long_str(total - talk));
    json_object_set_new(o, "circle", json_string("Karnataka"));
    json_object_set_new(o, "key_pressed", json_string(""));
    json_object_set_new(o, "block", json_string("0"));
    json_object_set_new(o, "callresult", json_string(callresult));
    json_object_set_new(o, "callstatus", json_string(callstatus));
    json_object_set_new(o, "group_name", json_string("Sales"));
    json_object_set_new(o, "LegA_Picked_time", json_string(lega));
    json_object_set_new(o, "LegB_Start_time", json_string(legb));
    json_object_set_new(o, "LegB_Picked_time", json_string(picked));
    json_object_set_new(o, "Flow_type", json_string(flow));
    json_object_set_new(o, "contact_id", json_string(""));
    json_object_set_new(o, "Member_type", json_string("member"));
    return o;
}

/*
 * The row of a simulated call that has ended. Rows have no hangup_cause, so
 * callstatus carries the cause in brackets, as the full Status does.
 */
static json_t *
cdk_call_row(const struct cdk_call *c)
{
    char start[32], end[32], lega[32], legb[32], picked[32], file[256] = "";

    cdk_ist(c->created_ms, start, sizeof(start));
    cdk_ist(c->end_ms, end, sizeof(end));
    cdk_ist(c->lega_ms, lega, sizeof(lega));
    cdk_ist(c->legb_ms, legb, sizeof(legb));
    cdk_ist(c->picked_ms, picked, sizeof(picked));
    if (c->answered) {
        cdk_recording_url(c->sid, file, sizeof(file));
    }
    return cdk_row_new(c->campid, c->sid, file, c->deskphone, "Sim Agent", c->agent10,
                       c->customer10, start, end, cdk_secs(c->created_ms, c->end_ms),
                       cdk_secs(c->picked_ms, c->end_ms), c->answered ? "Answered" : "No Answer",
                       c->status, lega, legb, picked, "WEBOBD");
}

/*
 * The synthetic calls of a 10-digit number between days first and last:
 * as many as its last digit, spread over the range, 09:00-17:59 IST, none
 * in the future.
 */
static void
cdk_synthetic_rows(const char *num10, long first, long last, json_t *out)
{
    static const struct {
        const char *out_status, *in_status;
    } kinds[] = {
        {"ANSWER", "ANSWER"},     {"ANSWER", "ANSWER"},
        {"ANSWER", "ANSWER"},     {"Cancel-Customer", "NO ANSWER"},
        {"Busy", "AgentEngaged"}, {"Congestion", "AbandonedCall"},
    };
    int n = num10[9] - '0';
    long ndays = last - first + 1;
    long long now_local = (long long)(sim_now_ms() / 1000) + CDK_IST_OFFSET_S;
    uint32_t h = cdk_hash(num10);
    int k;

    for (k = 0; k < n; k++) {
        uint32_t x = cdk_mix(h + (uint32_t)k * 2654435761u);
        long day = first + (ndays * k) / n;
        long long local = (long long)day * 86400 + (9 + (long long)(x % 9)) * 3600 +
                          (long long)((x >> 8) % 60) * 60 + (long long)((x >> 16) % 60);
        int kind = (int)((h + (uint32_t)k) % 6);
        int outbound = (int)(((h >> 8) + (uint32_t)k) % 2);
        int member = (int)(((h >> 16) + (uint32_t)k) % 3);
        int answered = kind <= 2;
        long ring = 5 + (long)((x >> 4) % 10);
        long talk = answered ? 20 + (long)((x >> 12) % 400) : 0;
        uint64_t start_ms = (uint64_t)(local - CDK_IST_OFFSET_S) * 1000u;
        uint64_t picked_ms = answered ? start_ms + (uint64_t)ring * 1000u : 0;
        uint64_t end_ms = start_ms + (uint64_t)(ring + talk) * 1000u;
        char sid[40], file[256] = "", start[32], end[32], lega[32], legb[32], picked[32];
        char caller[16];

        if (local > now_local) {
            continue; /* no calls in the future */
        }
        snprintf(sid, sizeof(sid), "syn-%s-%lld.%d", num10, local - CDK_IST_OFFSET_S, k);
        if (answered) {
            cdk_recording_url(sid, file, sizeof(file));
        }
        cdk_ist(start_ms, start, sizeof(start));
        cdk_ist(end_ms, end, sizeof(end));
        cdk_ist(outbound || answered ? start_ms + 2000u : 0, lega, sizeof(lega));
        cdk_ist(outbound ? start_ms + 2000u : 0, legb, sizeof(legb));
        cdk_ist(picked_ms, picked, sizeof(picked));
        /* Inbound numbers come with a leading 0, as real reports show them. */
        snprintf(caller, sizeof(caller), "%s%s", outbound ? "" : "0", num10);
        json_array_append_new(
            out, cdk_row_new((long)(h % 900000u) * 10 + k, sid, file, CDK_DESKPHONE,
                             cdk_members[member].name, cdk_members[member].number, caller, start,
                             end, ring + talk, talk, answered ? "Answered" : "No Answer",
                             outbound ? kinds[kind].out_status : kinds[kind].in_status, lega, legb,
                             picked, outbound ? "WEBOBD" : "IVR"));
    }
}

static int
cdk_row_cmp(const void *a, const void *b)
{
    json_t *ra = *(json_t *const *)a, *rb = *(json_t *const *)b;
    const char *sa = json_string_value(json_object_get(ra, "startdatetime"));
    const char *sb = json_string_value(json_object_get(rb, "startdatetime"));

    return strcmp(sb != NULL ? sb : "", sa != NULL ? sa : ""); /* newest first */
}

/* 1 when a row passes the optional callresult and Flow_type filters. */
static int
cdk_row_wanted(json_t *row, const char *callresult, const char *flow)
{
    const char *cr = json_string_value(json_object_get(row, "callresult"));
    const char *ft = json_string_value(json_object_get(row, "Flow_type"));

    return (callresult == NULL || callresult[0] == '\0' ||
            (cr != NULL && strcasecmp(cr, callresult) == 0)) &&
           (flow == NULL || flow[0] == '\0' || (ft != NULL && strcasecmp(ft, flow) == 0));
}

/* Parse an optional positive integer parameter; def when absent, -1 when bad. */
static long
cdk_int_param(const char *s, long def)
{
    char *end;
    long v;

    if (s == NULL || s[0] == '\0') {
        return def;
    }
    v = strtol(s, &end, 10);
    return *end == '\0' && v > 0 ? v : -1;
}

static void
cdk_call_list(struct sim_req *r)
{
    json_t *form = cdk_form_parse(r->body, r->body_len);
    const char *start = cdk_param(r, form, "start_date");
    const char *end = cdk_param(r, form, "end_date");
    const char *caller = cdk_param(r, form, "caller_num");
    const char *callresult = cdk_param(r, form, "callresult");
    const char *flow = cdk_param(r, form, "Flow_type");
    long page = cdk_int_param(cdk_param(r, form, "current_page"), 1);
    long per_page = cdk_int_param(cdk_param(r, form, "per_page"), CDK_DEFAULT_PER_PAGE);
    char key[11] = "";
    long first, last, answered = 0, i0;
    json_t *all, *result, *o, **v;
    struct cdk_call *c;
    size_t i, n;

    if (!cdk_auth_ok(r)) {
        json_decref(form);
        cdk_type_error(r, "Invalid Auth Code!");
        return;
    }
    if ((start == NULL || start[0] == '\0') != (end == NULL || end[0] == '\0')) {
        json_decref(form);
        cdk_type_error(r, "start_date and end_date are required together");
        return;
    }
    if (start == NULL || start[0] == '\0') {
        last = cdk_today();
        first = last - (CDK_DEFAULT_DAYS - 1);
    } else if (cdk_parse_date(start, &first) != 0 || cdk_parse_date(end, &last) != 0 ||
               last < first || last - first >= CDK_MAX_RANGE_DAYS) {
        json_decref(form);
        cdk_type_error(r, "Invalid date range, use YYYY-MM-DD");
        return;
    }
    if (page < 0 || per_page < 0) {
        json_decref(form);
        cdk_type_error(r, "Invalid current_page or per_page");
        return;
    }
    if (per_page > CDK_MAX_PER_PAGE) {
        per_page = CDK_MAX_PER_PAGE;
    }
    if (caller != NULL && caller[0] != '\0') {
        /* The last 10 digits: "09876543210", "919876543210" match "9876543210". */
        size_t len = strlen(caller);

        if (len < 10 || strspn(caller, "0123456789") != len) {
            json_decref(form);
            cdk_type_error(r, "Invalid caller number");
            return;
        }
        memcpy(key, caller + len - 10, 11);
    }

    all = json_array();
    for (c = cdk_oldest; c != NULL; c = c->next) {
        long day = (long)(((long long)(c->created_ms / 1000) + CDK_IST_OFFSET_S) / 86400);

        if (c->ended && day >= first && day <= last &&
            (key[0] == '\0' || strcmp(c->customer10, key) == 0)) {
            json_array_append_new(all, cdk_call_row(c));
        }
    }
    if (key[0] != '\0') {
        cdk_synthetic_rows(key, first, last, all);
    }
    /* Filter, then sort newest first. */
    n = json_array_size(all);
    v = calloc(n ? n : 1, sizeof(*v));
    if (v == NULL) {
        json_decref(all);
        json_decref(form);
        sim_reply_error(r, 500, "Out of memory");
        return;
    }
    for (i = 0, n = 0; i < json_array_size(all); i++) {
        json_t *row = json_array_get(all, i);

        if (cdk_row_wanted(row, callresult, flow)) {
            v[n++] = row;
            answered +=
                strcmp(json_string_value(json_object_get(row, "callresult")), "Answered") == 0;
        }
    }
    qsort(v, n, sizeof(*v), cdk_row_cmp);
    result = json_array();
    i0 = (page - 1) * per_page;
    for (i = (size_t)i0; i0 >= 0 && i < n && i < (size_t)(i0 + per_page); i++) {
        json_array_append(result, v[i]);
    }
    free(v);
    json_decref(all);
    json_decref(form);
    if (json_array_size(result) == 0) {
        json_decref(result);
        cdk_type_error(r, "No Data Found");
        return;
    }
    o = json_object();
    json_object_set_new(o, "type", json_string("success"));
    json_object_set_new(o, "result", result);
    json_object_set_new(o, "current_page", json_integer(page));
    json_object_set_new(o, "total", json_integer((json_int_t)n));
    json_object_set_new(o, "answered_total", json_integer(answered));
    json_object_set_new(o, "noanswer_total", json_integer((json_int_t)n - answered));
    json_object_set_new(o, "voicemail", json_integer(0));
    json_object_set_new(o, "answered", json_pack("[{s:I}]", "total", (json_int_t)answered));
    json_object_set_new(o, "noanswer",
                        json_pack("[{s:I}]", "total", (json_int_t)n - (json_int_t)answered));
    cdk_reply(r, "application/json", o);
}

/* ---- GET /recordings/cd_<CallSid>.wav ---- */


static void
cdk_recording_get(struct sim_req *r)
{
    const char *name = r->params[0];
    size_t n = strlen(name);
    char sid[64];
    struct cdk_call *c;

    if (n <= 4 || strcmp(name + n - 4, ".wav") != 0 || n - 4 >= sizeof(sid)) {
        sim_reply_error(r, 404, "Recording not found");
        return;
    }
    memcpy(sid, name, n - 4);
    sid[n - 4] = '\0';
    c = cdk_find_sid(sid);
    if ((c == NULL || !c->ended || !c->answered) && strncmp(sid, "syn-", 4) != 0) {
        sim_reply_error(r, 404, "Recording not found");
        return;
    }
    sim_reply_silent_wav(r);
}

/* ---- /_sim hooks and control ---- */

static void
cdk_calls_json(json_t *out)
{
    struct cdk_call *c;

    for (c = cdk_oldest; c != NULL; c = c->next) {
        json_t *o = json_object();
        char url[256] = "";

        if (c->ended && c->answered) {
            cdk_recording_url(c->sid, url, sizeof(url));
        }
        json_object_set_new(o, "vendor", json_string(cdk_vendor.name));
        json_object_set_new(o, "call_id", json_string(c->campid_s));
        json_object_set_new(o, "campid", json_integer(c->campid));
        json_object_set_new(o, "CallSid", json_string(c->sid));
        json_object_set_new(o, "uid", sim_json_str_or_null(c->uid));
        json_object_set_new(o, "calling_party_a", json_string(c->agent10));
        json_object_set_new(o, "calling_party_b", json_string(c->customer10));
        json_object_set_new(o, "deskphone", sim_json_str_or_null(c->deskphone));
        json_object_set_new(o, "outcome", json_string(c->outcome));
        json_object_set_new(o, "status",
                            json_string(c->ended      ? c->status
                                        : c->answered ? "Picked"
                                                      : "Ringing"));
        json_object_set_new(o, "ended", json_boolean(c->ended));
        json_object_set_new(o, "recording_url", url[0] ? json_string(url) : json_null());
        json_object_set_new(o, "created_ms", json_integer((json_int_t)c->created_ms));
        json_array_append_new(out, o);
    }
}

static int
cdk_call_end(const char *call_id, const char *status, char *err, size_t errlen)
{
    struct cdk_call *c = cdk_find_campid(call_id);

    if (c == NULL) {
        return 1;
    }
    if (c->ended) {
        snprintf(err, errlen, "Call already ended (%s)", c->status);
        return -1;
    }
    if (status == NULL) {
        status = c->answered ? "ANSWER" : "CANCELED";
    }
    cdk_call_finish(c, status);
    return 0;
}

static void
cdk_cleanup(void)
{
    while (cdk_oldest != NULL) {
        struct cdk_call *c = cdk_oldest;

        cdk_oldest = c->next;
        cdk_call_free(c);
    }
    cdk_newest = NULL;
    cdk_ncalls = 0;
}

void
callerdesk_init(void)
{
    sim_vendor_register(&cdk_vendor);
    sim_route_add(&cdk_vendor, "GET", "", "/api/click_to_call_v2", cdk_click_to_call);
    sim_route_add(&cdk_vendor, "GET", "", "/api/click_to_call_v4", cdk_click_to_call_member);
    sim_route_add(&cdk_vendor, "POST", "", "/api/call_list_v2", cdk_call_list);
    /* Registered before CloudDialer's /recordings/{name}, which would take these. */
    sim_route_add(&cdk_vendor, "GET", "", "/recordings/cd_{name}", cdk_recording_get);
}
