/*
 * callerdesk.c: the Callerdesk adapter (callerdesk.io, API host
 * app.callerdesk.io). Sources: shared/seeds/000 (the vendor's integration
 * guide), shared/seeds/001 (its Postman collection) and shared/vendors.md
 * sections 1 (facts with sources and confidence) and 5 (status mapping).
 *
 * Placement: GET <base_url>/api/click_to_call_v2?authcode=..&calling_party_a=
 *   <agent, 10 digits>&calling_party_b=<customer, 10 digits>&deskphone=..
 *   &call_from_did=1&uid=<our call id>, or, for an agent named by member id
 *   ("member:<id>", or options.agent_identity "member_id"), GET
 *   /api/click_to_call_v4?member_id=<id>&... (vendors.md: the path is what
 *   public clients use; options.member_call_path overrides it). Callerdesk
 *   rings the agent (leg A),
 *   then the customer (leg B). Answer (observed): HTTP 200 with
 *   {"type":"success","message":"Call to Customer Initiate Successfully..",
 *   "campid":45717408,"callerid":"00918062987377"} or HTTP 200 with
 *   {"type":"error","message":"Invalid Auth Code!"} (also "Agent on
 *   break/Inactive. Call not allowed", "Account is Inactive please contact
 *   administrator!"), sometimes as Content-Type text/html. The JSON "type"
 *   decides, never the HTTP status.
 * Webhooks (Dashboard -> API & Integration -> Webhooks): Call Report after
 *   hang-up, Live Call during the call, as a JSON POST or as a GET with the
 *   fields in the query string. Fields: SourceNumber, DestinationNumber,
 *   DialWhomNumber, CallDuration, Status, StartTime, EndTime, CallSid,
 *   CallRecordingUrl, Direction (IVR inbound, WEBOBD outbound), campid,
 *   TalkDuration, LegA_Picked_time, LegB_Start_time, LegB_Picked_time, and in
 *   real deliveries type ("call_report"), callstatus, hangup_cause, uid.
 * Call history: POST <base_url>/api/call_list_v2 (form fields authcode,
 *   start_date, end_date, current_page, per_page, caller_num) answers
 *   {type, result:[row], current_page, total, ...}.
 *
 * Uncertain facts, handled tolerantly:
 * - Numbers: Callerdesk wants 10-digit Indian national numbers (E.164 or
 *   91-prefixed ones get "Agent on break/Inactive"). The customer must be
 *   +91; there is no agent directory yet, so call->agent must be the
 *   agent's phone number (E.164 or Indian national), sent as 10 digits.
 * - deskphone must be sent exactly as the Callerdesk panel lists it (the
 *   docs mix 0120..., 120..., 928...): the tenant's options["deskphone"] is
 *   sent verbatim and wins; without it the national digits of call->from
 *   (else the vendor's from_number) are sent.
 * - uid: clients claim it is echoed in webhooks. We send our call id and use
 *   an echoed uid that looks like ours ("call_...") to name the call; when
 *   it is missing the update carries vendor_call_id = campid (the id the
 *   placement answer gave, which the gateway recorded) and the gateway finds
 *   the call through it. With neither uid nor campid (an inbound call, or a
 *   report without campid) vendor_call_id is "sid:<CallSid>": the event
 *   lands as an orphan, kept rather than dropped.
 * - A success answer without campid still placed the call: ACCEPTED with an
 *   empty vendor_call_id and detail "no campid" (AMBIGUOUS would invite a
 *   second call through another vendor).
 * - A body that is not JSON as a whole (e.g. a PHP notice printed before
 *   the JSON) is read from its first '{' if the rest parses as one object.
 *   A 2xx without a readable "type" is AMBIGUOUS: the vendor may have acted.
 * - Webhook bodies: JSON when the body starts with '{', else
 *   application/x-www-form-urlencoded (a POST with an empty body falls back
 *   to the query string). Field names are matched exactly, then
 *   case-insensitively; numbers may come as JSON numbers or strings.
 * - Report or live: "type" containing "report" (call_report, app_call_report)
 *   is a report, "live" a live event; without a usable type, a non-zero
 *   EndTime, a CallDuration/TalkDuration or any Leg* time makes a report.
 *   The live-only statuses (Picked, Transfer to agent) always make a live
 *   event, so they can never take the report's dedupe key.
 * - Status (Status, else callstatus) is compared case-insensitively without
 *   its bracketed cause "(...)", spaces, '-' and '_' (vendors.md 1.4, 5).
 *   Cancel-Agent / Cancel-Customer are refined by the cause in the Status
 *   brackets, else by hangup_cause: NOANSWER/0 -> no_answer, Busy/17 ->
 *   busy, Congestion/1, Unavailable/19, CHANUNAVAIL -> failed, CANCEL ->
 *   canceled; no cause, or an uninformative one (ANSWER, 16,
 *   NORMAL_CLEARING) -> no_answer (the leg was never answered). Any other
 *   status or cause is refused with the raw value: unknown values must be
 *   visible, not guessed.
 * - Times are "yyyy-mm-dd hh:mm:ss" without a zone, read in the vendor's
 *   configured time_zone: Callerdesk is on IST, so configure
 *   "Asia/Kolkata". "0000-00-00 00:00:00" (and "") means never. A time
 *   that cannot be read refuses the webhook.
 * - answered_at: LegB_Picked_time (the customer picking up, outbound), else
 *   StartTime, for answered calls. duration: CallDuration, else
 *   TalkDuration (number or numeric string; unreadable ones stay unknown).
 * - Dedupe keys (inf): report "report:<CallSid>", live
 *   "live:<CallSid>:<Status>" (campid, then uid stand in for a missing
 *   CallSid). disposition is the hangup cause (hangup_cause, else the Status
 *   brackets).
 * - History: "no data" may come back as {"type":"error","message":"No Data
 *   Found"}: a type:error whose message says no data / not found / no
 *   record is an empty page; any other type:error fails. Rows take
 *   startdatetime (else call_date), total_duration (else talk_duration),
 *   the status of callstatus (else callresult: Answered, No Answer, Voice
 *   Mail -> no_answer; else "unknown"). The doc name call_report_v2 is
 *   used by no client; call_list_v2 is. We ask 50 rows a page; *more is
 *   current_page * 50 < total (and the page was not empty). Only +91
 *   numbers can be asked about.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "callrec.h"
#include "conf.h"
#include "phone.h"
#include "util.h"
#include "vendor.h"

#define CDK_PER_PAGE 50
#define CDK_ZERO_TIME "0000-00-00"

/* ---------------------------------------------------------------------------
 * Building requests
 */

/* The 10-digit national number of a +91 E.164 number; 0, or -1 for anything else. */
static int
cdk_indian10(const char *e164, char out[PHONE_E164_MAX])
{
    if (e164 == NULL || phone_national(e164, out, PHONE_E164_MAX) != 91 || strlen(out) != 10) {
        return -1;
    }
    return 0;
}

/* The common checks: a host and an authcode. 0, or -1 with err. */
static int
cdk_check_ctx(const struct vendor_ctx *ctx, char *err, size_t errlen)
{
    if (ctx->base_url == NULL || ctx->base_url[0] == '\0') {
        snprintf(err, errlen, "no Callerdesk host configured (base_url)");
        return -1;
    }
    if (ctx->api_key == NULL || ctx->api_key[0] == '\0') {
        snprintf(err, errlen, "no Callerdesk authcode configured (api_key)");
        return -1;
    }
    return 0;
}

/*
 * The Callerdesk member id the agent names, or NULL for a phone number:
 * "member:<id>", or any agent when options.agent_identity is "member_id".
 * Member ids are short runs of digits.
 */
static const char *
cdk_member_id(const struct vendor_ctx *ctx, const char *agent)
{
    const char *mode = vendor_option(ctx, "agent_identity");
    const char *id;
    size_t i;

    if (agent == NULL) {
        return NULL;
    }
    if (strncmp(agent, "member:", 7) == 0) {
        id = agent + 7;
    } else if (mode != NULL && strcmp(mode, "member_id") == 0) {
        id = agent;
    } else {
        return NULL;
    }
    for (i = 0; id[i] != '\0'; i++) {
        if (!isdigit((unsigned char)id[i])) {
            return NULL;
        }
    }
    return i > 0 && i <= 12 ? id : NULL;
}

static int
callerdesk_build_place(const struct vendor_ctx *ctx, const struct vendor_call *call,
                       struct vendor_http *out, char *err, size_t errlen)
{
    static const char *const headers[] = {"Accept: application/json", NULL};
    char customer[PHONE_E164_MAX], agent_e164[PHONE_E164_MAX], agent[PHONE_E164_MAX];
    char from_national[PHONE_E164_MAX];
    const char *deskphone, *from, *member, *why = NULL;
    struct evbuffer *b;
    char *url;

    if (cdk_check_ctx(ctx, err, errlen) != 0) {
        return -1;
    }
    if (cdk_indian10(call->to, customer) != 0) {
        snprintf(err, errlen, "Callerdesk dials only Indian (+91) numbers");
        return -1;
    }
    member = cdk_member_id(ctx, call->agent);
    if (member == NULL &&
        (call->agent == NULL ||
         phone_normalize(call->agent, "IN", agent_e164, sizeof(agent_e164), &why) != 0 ||
         cdk_indian10(agent_e164, agent) != 0)) {
        snprintf(err, errlen,
                 "Callerdesk needs the agent's phone number, or \"member:<member_id>\", as agent");
        return -1;
    }
    deskphone = vendor_option(ctx, "deskphone");
    if (deskphone == NULL) {
        from = call->from != NULL ? call->from : ctx->from_number;
        if (from == NULL || phone_national(from, from_national, sizeof(from_national)) < 0) {
            snprintf(err, errlen,
                     "no Callerdesk deskphone: set options.deskphone, from, or "
                     "from_number for callerdesk");
            return -1;
        }
        deskphone = from_national;
    }
    b = evbuffer_new();
    if (b == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (member != NULL) {
        const char *path = vendor_option(ctx, "member_call_path");
        vendor_url_start(b, ctx->base_url, path != NULL ? path : "/api/click_to_call_v4");
        vendor_url_param(b, '?', "authcode", ctx->api_key);
        vendor_url_param(b, '&', "member_id", member);
    } else {
        vendor_url_start(b, ctx->base_url, "/api/click_to_call_v2");
        vendor_url_param(b, '?', "authcode", ctx->api_key);
        vendor_url_param(b, '&', "calling_party_a", agent);
    }
    vendor_url_param(b, '&', "calling_party_b", customer);
    vendor_url_param(b, '&', "deskphone", deskphone);
    vendor_url_param(b, '&', "call_from_did", "1");
    if (call->call_id != NULL && call->call_id[0] != '\0') {
        vendor_url_param(b, '&', "uid", call->call_id);
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
callerdesk_build_history(const struct vendor_ctx *ctx, const struct vendor_history_query *q,
                         struct vendor_http *out, char *err, size_t errlen)
{
    static const char *const headers[] = {"Accept: application/json",
                                          "Content-Type: application/x-www-form-urlencoded", NULL};
    struct evbuffer *ub, *bb;
    char number[PHONE_E164_MAX], page[24], per_page[24], *url, *body;

    if (cdk_check_ctx(ctx, err, errlen) != 0) {
        return -1;
    }
    if (q->nnumbers == 0 || q->numbers == NULL || q->numbers[0] == NULL) {
        snprintf(err, errlen, "no phone number to ask Callerdesk about");
        return -1;
    }
    if (cdk_indian10(q->numbers[0], number) != 0) {
        snprintf(err, errlen, "Callerdesk keeps only Indian (+91) numbers");
        return -1;
    }
    if ((q->start_date == NULL) != (q->end_date == NULL)) {
        snprintf(err, errlen, "start_date and end_date go together");
        return -1;
    }
    if (q->start_date != NULL && (!vendor_date_ok(q->start_date) || !vendor_date_ok(q->end_date))) {
        snprintf(err, errlen, "dates must be YYYY-MM-DD");
        return -1;
    }
    snprintf(page, sizeof(page), "%d", q->page > 0 ? q->page : 1);
    snprintf(per_page, sizeof(per_page), "%d", CDK_PER_PAGE);
    ub = evbuffer_new();
    bb = evbuffer_new();
    if (ub != NULL && bb != NULL) {
        vendor_url_param(bb, 0, "authcode", ctx->api_key);
        if (q->start_date != NULL) {
            vendor_url_param(bb, '&', "start_date", q->start_date);
            vendor_url_param(bb, '&', "end_date", q->end_date);
        }
        vendor_url_param(bb, '&', "current_page", page);
        vendor_url_param(bb, '&', "per_page", per_page);
        vendor_url_param(bb, '&', "caller_num", number);
        vendor_url_start(ub, ctx->base_url, "/api/call_list_v2");
    }
    url = ub != NULL ? util_evbuffer_dup(ub, NULL) : NULL;
    body = bb != NULL ? util_evbuffer_dup(bb, NULL) : NULL;
    if (ub != NULL) {
        evbuffer_free(ub);
    }
    if (bb != NULL) {
        evbuffer_free(bb);
    }
    if (url == NULL || body == NULL) {
        free(url);
        free(body);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* vendor_http_set takes the body over, and frees it on failure. */
    if (vendor_http_set(out, "POST", url, body, headers) != 0) {
        free(url);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    free(url);
    return 0;
}

/* ---------------------------------------------------------------------------
 * Reading answers
 */

/*
 * The answer as a JSON object, or NULL. A body that is not JSON as a whole
 * is tried again from its first '{' (text printed before the JSON).
 */
static json_t *
cdk_load(const char *body, size_t len)
{
    const char *brace;
    json_t *root;

    if (body == NULL || len == 0) {
        return NULL;
    }
    root = json_loadb(body, len, 0, NULL);
    if (root == NULL) {
        brace = memchr(body, '{', len);
        if (brace != NULL && brace != body) {
            root = json_loadb(brace, len - (size_t)(brace - body), 0, NULL);
        }
    }
    if (root != NULL && !json_is_object(root)) {
        json_decref(root);
        root = NULL;
    }
    return root;
}

/* root["type"] when it is a string, else "". */
static const char *
cdk_type(json_t *root)
{
    json_t *t = root != NULL ? json_object_get(root, "type") : NULL;

    return json_is_string(t) ? json_string_value(t) : "";
}

/* root["message"] when it is a string, else "". */
static const char *
cdk_message(json_t *root)
{
    json_t *m = root != NULL ? json_object_get(root, "message") : NULL;

    return json_is_string(m) ? json_string_value(m) : "";
}

/* A scalar as text into buf: strings as they are, integers and reals as numbers. */
static const char *
cdk_scalar(json_t *v, char *buf, size_t buflen)
{
    if (json_is_string(v)) {
        return json_string_value(v);
    }
    if (json_is_integer(v)) {
        snprintf(buf, buflen, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);

        if (d == (double)(long long)d) {
            snprintf(buf, buflen, "%lld", (long long)d);
        } else {
            snprintf(buf, buflen, "%.17g", d);
        }
        return buf;
    }
    return NULL;
}

static void
callerdesk_parse_place(const struct vendor_ctx *ctx, long http_status, const char *body, size_t len,
                       struct vendor_placed *out)
{
    json_t *root = cdk_load(body, len);
    const char *type = cdk_type(root);
    char num[32];

    memset(out, 0, sizeof(*out));
    util_strlcpy(out->detail, cdk_message(root), sizeof(out->detail));
    if (strcasecmp(type, "success") == 0) {
        const char *campid = cdk_scalar(json_object_get(root, "campid"), num, sizeof(num));

        /* Callerdesk said it placed the call: even without an id it is not ambiguous. */
        out->outcome = VENDOR_ACCEPTED;
        if (campid != NULL && campid[0] != '\0') {
            util_strlcpy(out->vendor_call_id, campid, sizeof(out->vendor_call_id));
        } else {
            snprintf(out->detail, sizeof(out->detail), "no campid");
        }
    } else if (strcasecmp(type, "error") == 0) {
        out->outcome = VENDOR_REJECTED;
        if (out->detail[0] == '\0') {
            snprintf(out->detail, sizeof(out->detail), "Callerdesk answered type error");
        }
    } else if (http_status >= 200 && http_status < 300) {
        out->outcome = VENDOR_AMBIGUOUS;
        if (out->detail[0] == '\0') {
            snprintf(out->detail, sizeof(out->detail), "unreadable 2xx answer");
        }
    } else if (http_status == 429 || http_status == 502 || http_status == 503) {
        out->outcome = VENDOR_UNAVAILABLE;
    } else if (http_status >= 400 && http_status < 500) {
        out->outcome = VENDOR_REJECTED;
    } else {
        out->outcome = VENDOR_AMBIGUOUS;
    }
    if (out->detail[0] == '\0' && out->outcome != VENDOR_ACCEPTED) {
        snprintf(out->detail, sizeof(out->detail), "HTTP %ld", http_status);
    }
    json_decref(root);
}

/* ---------------------------------------------------------------------------
 * Status values
 */

/*
 * Split a status such as "Cancel-Customer(NOANSWER (0-Customer))" into its
 * key ("cancelcustomer": lower case, without spaces, '-', '_' and the
 * bracketed part) and the text inside the outer brackets ("NOANSWER
 * (0-Customer)").
 */
static void
cdk_status_split(const char *s, char *key, size_t keylen, char *cause, size_t causelen)
{
    size_t k = 0, c = 0;
    int depth = 0;

    for (; *s != '\0'; s++) {
        if (*s == '(') {
            if (depth++ == 0) {
                continue;
            }
        } else if (*s == ')' && depth > 0) {
            if (--depth == 0) {
                continue;
            }
        }
        if (depth > 0) {
            if (c + 1 < causelen) {
                cause[c++] = *s;
            }
        } else if (*s != ' ' && *s != '-' && *s != '_' && *s != '\t' && k + 1 < keylen) {
            key[k++] = (char)tolower((unsigned char)*s);
        }
    }
    key[k] = '\0';
    cause[c] = '\0';
}

/* What a hangup cause says about a cancelled leg. */
enum cdk_cause { CDK_CAUSE_NONE, CDK_CAUSE_KNOWN, CDK_CAUSE_UNKNOWN };

static const struct {
    const char *name;
    int code;
    enum call_status status;
} cdk_causes[] = {
    {"noanswer", 0, CALL_NO_ANSWER}, {"busy", 17, CALL_BUSY},
    {"congestion", 1, CALL_FAILED},  {"unavailable", 19, CALL_FAILED},
    {"unavail", -1, CALL_FAILED},    {"chanunavail", -1, CALL_FAILED},
    {"cancel", -1, CALL_CANCELED},
};

/*
 * Read a cause such as "NOANSWER (0-Customer)", "Busy(17-x)", "17" or
 * "NORMAL_CLEARING": by its name, else by its code. KNOWN sets *st; NONE
 * for an empty or uninformative cause (ANSWER, NORMAL_CLEARING, 16).
 */
static enum cdk_cause
cdk_cause(const char *cause, enum call_status *st)
{
    char name[64], inner[64];
    long code = -1;
    size_t i;

    cdk_status_split(cause, name, sizeof(name), inner, sizeof(inner));
    if (name[0] != '\0' && strspn(name, "0123456789") == strlen(name)) {
        code = strtol(name, NULL, 10); /* a bare code: "17" */
        name[0] = '\0';
    } else if (inner[0] >= '0' && inner[0] <= '9') {
        code = strtol(inner, NULL, 10); /* "Busy(17-Customer)" */
    }
    for (i = 0; name[0] != '\0' && i < sizeof(cdk_causes) / sizeof(cdk_causes[0]); i++) {
        if (strcmp(name, cdk_causes[i].name) == 0) {
            *st = cdk_causes[i].status;
            return CDK_CAUSE_KNOWN;
        }
    }
    for (i = 0; code >= 0 && i < sizeof(cdk_causes) / sizeof(cdk_causes[0]); i++) {
        if (code == cdk_causes[i].code) {
            *st = cdk_causes[i].status;
            return CDK_CAUSE_KNOWN;
        }
    }
    if (strcmp(name, "answer") == 0 || strcmp(name, "normalclearing") == 0 || code == 16 ||
        (name[0] == '\0' && code < 0 && inner[0] == '\0')) {
        return CDK_CAUSE_NONE;
    }
    return CDK_CAUSE_UNKNOWN;
}

static const struct {
    const char *key;
    enum call_status status;
} cdk_statuses[] = {
    {"answer", CALL_COMPLETED},         {"noanswer", CALL_NO_ANSWER},  {"busy", CALL_BUSY},
    {"agentengaged", CALL_BUSY},        {"agentonring", CALL_BUSY},    {"cancel", CALL_CANCELED},
    {"abandonedcall", CALL_CANCELED},   {"congestion", CALL_FAILED},   {"chanunavail", CALL_FAILED},
    {"unavailable", CALL_FAILED},       {"unavail", CALL_FAILED},      {"invalidargs", CALL_FAILED},
    {"agentunregistered", CALL_FAILED}, {"notconnected", CALL_FAILED},
};

/* 1 for the statuses only live events carry. */
static int
cdk_live_only(const char *key)
{
    return strcmp(key, "picked") == 0 || strcmp(key, "transfertoagent") == 0;
}

/*
 * The neutral status of a Callerdesk status (and hangup cause, may be NULL).
 * live: the call is still going (ANSWER means in progress). 0 or -1.
 */
static int
cdk_status(const char *status, const char *hangup_cause, int live, enum call_status *out)
{
    char key[64], cause[128];
    enum call_status st = CALL_UNKNOWN;
    enum cdk_cause c1, c2 = CDK_CAUSE_NONE;
    size_t i;

    cdk_status_split(status, key, sizeof(key), cause, sizeof(cause));
    if (strcmp(key, "picked") == 0) {
        *out = CALL_IN_PROGRESS;
        return 0;
    }
    if (strcmp(key, "transfertoagent") == 0) {
        *out = CALL_RINGING;
        return 0;
    }
    if (strcmp(key, "cancelagent") == 0 || strcmp(key, "cancelcustomer") == 0) {
        c1 = cdk_cause(cause, &st);
        if (c1 != CDK_CAUSE_KNOWN && hangup_cause != NULL) {
            c2 = cdk_cause(hangup_cause, &st);
        }
        if (c1 == CDK_CAUSE_KNOWN || c2 == CDK_CAUSE_KNOWN) {
            *out = st;
            return 0;
        }
        if (c1 == CDK_CAUSE_UNKNOWN || c2 == CDK_CAUSE_UNKNOWN) {
            return -1;
        }
        *out = CALL_NO_ANSWER;
        return 0;
    }
    for (i = 0; i < sizeof(cdk_statuses) / sizeof(cdk_statuses[0]); i++) {
        if (strcmp(key, cdk_statuses[i].key) == 0) {
            *out = cdk_statuses[i].status;
            if (live && *out == CALL_COMPLETED) {
                *out = CALL_IN_PROGRESS;
            }
            return 0;
        }
    }
    return -1;
}

/* ---------------------------------------------------------------------------
 * Webhooks
 */

static int
cdk_hex(int c)
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

/* Decode one form-encoded component ('+' is a space; a bad %XX stays as it is). */
static char *
cdk_form_component(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    size_t i, o = 0;

    if (out == NULL) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && cdk_hex((unsigned char)s[i + 1]) >= 0 &&
                   cdk_hex((unsigned char)s[i + 2]) >= 0) {
            out[o++] =
                (char)(cdk_hex((unsigned char)s[i + 1]) * 16 + cdk_hex((unsigned char)s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

/*
 * Form-encoded fields ("a=1&b=x+y") into a JSON object of strings (the first
 * of repeated names wins; values that are not UTF-8 are left out). NULL
 * when there is no field or memory ran out.
 */
static json_t *
cdk_form(const char *s, size_t len)
{
    json_t *o = json_object();
    const char *end = s + len;
    size_t nfields = 0;

    if (o == NULL) {
        return NULL;
    }
    while (s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *seg_end = amp != NULL ? amp : end;
        const char *eq = memchr(s, '=', (size_t)(seg_end - s));
        char *name, *value;

        if (seg_end > s && eq != s) {
            name = cdk_form_component(s, (size_t)((eq != NULL ? eq : seg_end) - s));
            value = eq != NULL ? cdk_form_component(eq + 1, (size_t)(seg_end - eq - 1))
                               : cdk_form_component("", 0);
            if (name == NULL || value == NULL) {
                free(name);
                free(value);
                json_decref(o);
                return NULL;
            }
            if (json_object_get(o, name) == NULL) {
                json_t *v = json_string(value);

                if (v != NULL && json_object_set_new(o, name, v) == 0) {
                    nfields++;
                }
            }
            free(name);
            free(value);
        }
        s = seg_end + 1;
    }
    if (nfields == 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/*
 * A field of a payload as non-empty text (buf holds numbers), or NULL.
 * The name is matched exactly first, then case-insensitively.
 */
static const char *
cdk_field(json_t *root, const char *name, char *buf, size_t buflen)
{
    json_t *v = json_object_get(root, name);
    const char *key, *s;

    if (v == NULL) {
        json_t *val;

        json_object_foreach(root, key, val)
        {
            if (strcasecmp(key, name) == 0) {
                v = val;
                break;
            }
        }
    }
    s = cdk_scalar(v, buf, buflen);
    return s != NULL && s[0] != '\0' ? s : NULL;
}

/* Time text to ms: NULL, "" and 0000-00-00... are 0 (never). 0 or -1. */
static int
cdk_time(const struct vendor_ctx *ctx, const char *s, int64_t *ms)
{
    *ms = 0;
    if (s == NULL || s[0] == '\0' || strncmp(s, CDK_ZERO_TIME, strlen(CDK_ZERO_TIME)) == 0) {
        return 0;
    }
    return util_parse_time(s, ctx->conf != NULL ? ctx->conf->time_zone : NULL, ms);
}

/* Seconds as a number or numeric text (a fraction is dropped). 0, or -1. */
static int
cdk_seconds(const char *s, long *out)
{
    char *end;
    double d;

    if (s == NULL) {
        return -1;
    }
    if (util_parse_long(s, 0, 86400L * 366, out) == 0) {
        return 0;
    }
    d = strtod(s, &end);
    if (end != s && *end == '\0' && d >= 0 && d <= 86400.0 * 366) {
        *out = (long)d;
        return 0;
    }
    return -1;
}

/* 1 when s looks like one of our call ids: "call_" then [A-Za-z0-9_-], under 64 bytes. */
static int
cdk_our_id(const char *s)
{
    size_t i, n;

    if (s == NULL || strncmp(s, "call_", 5) != 0) {
        return 0;
    }
    n = strlen(s);
    for (i = 0; i < n; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-') {
            return 0;
        }
    }
    return n > 5 && n < 64;
}

/* The payload of a webhook as a JSON object, or NULL with err set. */
static json_t *
cdk_webhook_fields(const char *method, const char *query, const char *body, size_t len, char *err,
                   size_t errlen)
{
    size_t skip = 0;
    json_t *root;

    if (strcmp(method, "GET") == 0 || (len == 0 && query != NULL && query[0] != '\0')) {
        root = query != NULL ? cdk_form(query, strlen(query)) : NULL;
        if (root == NULL) {
            snprintf(err, errlen, "the query string has no fields");
        }
        return root;
    }
    if (strcmp(method, "POST") != 0) {
        snprintf(err, errlen, "Callerdesk webhooks come as POST or GET");
        return NULL;
    }
    while (skip < len && isspace((unsigned char)body[skip])) {
        skip++;
    }
    if (skip < len && (body[skip] == '{' || body[skip] == '[')) {
        json_error_t jerr;

        root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (root == NULL || !json_is_object(root)) {
            snprintf(err, errlen, "body is not a JSON object%s%s", root == NULL ? ": " : "",
                     root == NULL ? jerr.text : "");
            json_decref(root);
            return NULL;
        }
        return root;
    }
    root = skip < len ? cdk_form(body, len) : NULL;
    if (root == NULL) {
        snprintf(err, errlen, "body is neither JSON nor form fields");
    }
    return root;
}

/* 1 when a time field is there and is not the zero time. */
static int
cdk_time_present(json_t *root, const char *name)
{
    char buf[32];
    const char *s = cdk_field(root, name, buf, sizeof(buf));

    return s != NULL && strncmp(s, CDK_ZERO_TIME, strlen(CDK_ZERO_TIME)) != 0;
}

/* 1 for a call report, 0 for a live event (status key already known). */
static int
cdk_is_report(json_t *root, const char *status_key)
{
    char buf[64];
    const char *type = cdk_field(root, "type", buf, sizeof(buf));

    if (cdk_live_only(status_key)) {
        return 0;
    }
    if (type != NULL && strcasestr(type, "report") != NULL) {
        return 1;
    }
    if (type != NULL && strcasestr(type, "live") != NULL) {
        return 0;
    }
    return cdk_time_present(root, "EndTime") ||
           cdk_field(root, "CallDuration", buf, sizeof(buf)) != NULL ||
           cdk_field(root, "TalkDuration", buf, sizeof(buf)) != NULL ||
           cdk_time_present(root, "LegA_Picked_time") ||
           cdk_time_present(root, "LegB_Start_time") || cdk_time_present(root, "LegB_Picked_time");
}

static int
cdk_parse_update(const struct vendor_ctx *ctx, json_t *root, struct vendor_update *out, char *err,
                 size_t errlen)
{
    char sbuf[32], ubuf[32], cbuf[32], hbuf[32], tbuf[32], dbuf[32], key[64], cause[128];
    const char *status, *uid, *campid, *sid, *hangup, *direction, *corr, *kind, *s;
    int report;
    int64_t picked = 0;
    long duration;
    static const char *const time_fields[] = {"StartTime", "EndTime", "LegB_Picked_time"};
    int64_t *time_out[] = {&out->started_at, &out->ended_at, &picked};
    size_t i;

    status = cdk_field(root, "Status", sbuf, sizeof(sbuf));
    if (status == NULL) {
        status = cdk_field(root, "callstatus", sbuf, sizeof(sbuf));
    }
    if (status == NULL) {
        snprintf(err, errlen, "Status is required");
        return -1;
    }
    util_strlcpy(out->vendor_status, status, sizeof(out->vendor_status));
    cdk_status_split(status, key, sizeof(key), cause, sizeof(cause));
    report = cdk_is_report(root, key);
    hangup = cdk_field(root, "hangup_cause", hbuf, sizeof(hbuf));
    if (cdk_status(status, hangup, !report, &out->status) != 0) {
        snprintf(err, errlen, "unknown Callerdesk status \"%.40s\"%s%.40s%s", status,
                 hangup != NULL ? " (hangup_cause \"" : "", hangup != NULL ? hangup : "",
                 hangup != NULL ? "\")" : "");
        return -1;
    }

    /* Correlation: our uid, else campid, else the CallSid as an orphan key. */
    uid = cdk_field(root, "uid", ubuf, sizeof(ubuf));
    campid = cdk_field(root, "campid", cbuf, sizeof(cbuf));
    if (campid != NULL && strcmp(campid, "0") == 0) {
        campid = NULL; /* inbound calls may carry an empty or zero campid */
    }
    sid = cdk_field(root, "CallSid", tbuf, sizeof(tbuf));
    if (uid == NULL && campid == NULL && sid == NULL) {
        snprintf(err, errlen, "no uid, campid or CallSid to find the call by");
        return -1;
    }
    if (cdk_our_id(uid)) {
        util_strlcpy(out->call_id, uid, sizeof(out->call_id));
    }
    if (campid != NULL) {
        util_strlcpy(out->vendor_call_id, campid, sizeof(out->vendor_call_id));
    } else if (out->call_id[0] == '\0' && sid != NULL) {
        snprintf(out->vendor_call_id, sizeof(out->vendor_call_id), "sid:%s", sid);
    }
    /* The CallSid names the call on Callerdesk's side; campid, then uid stand in. */
    corr = sid != NULL ? sid : campid != NULL ? campid : uid;
    kind = sid != NULL ? "" : campid != NULL ? "campid:" : "uid:";
    if (report) {
        snprintf(out->dedupe_key, sizeof(out->dedupe_key), "report:%s%s", kind, corr);
    } else {
        snprintf(out->dedupe_key, sizeof(out->dedupe_key), "live:%s%s:%s", kind, corr, status);
    }

    for (i = 0; i < sizeof(time_fields) / sizeof(time_fields[0]); i++) {
        char buf[64];

        s = cdk_field(root, time_fields[i], buf, sizeof(buf));
        if (cdk_time(ctx, s, time_out[i]) != 0) {
            snprintf(err, errlen, "%s is not a \"yyyy-mm-dd hh:mm:ss\" time", time_fields[i]);
            return -1;
        }
    }
    if (out->status == CALL_COMPLETED || out->status == CALL_IN_PROGRESS) {
        direction = cdk_field(root, "Direction", dbuf, sizeof(dbuf));
        out->answered_at = picked != 0 && (direction == NULL || strcasecmp(direction, "IVR") != 0)
                               ? picked
                               : out->started_at;
    }
    s = cdk_field(root, "CallDuration", dbuf, sizeof(dbuf));
    if (cdk_seconds(s, &duration) != 0) {
        s = cdk_field(root, "TalkDuration", dbuf, sizeof(dbuf));
        if (cdk_seconds(s, &duration) != 0) {
            duration = -1;
        }
    }
    out->duration_seconds = duration;
    {
        char buf[32];

        s = cdk_field(root, "CallRecordingUrl", buf, sizeof(buf));
        if (s != NULL) {
            util_strlcpy(out->recording_url, s, sizeof(out->recording_url));
        }
    }
    if (hangup != NULL) {
        util_strlcpy(out->disposition, hangup, sizeof(out->disposition));
    } else if (cause[0] != '\0') {
        util_strlcpy(out->disposition, cause, sizeof(out->disposition));
    }
    return 0;
}

static int
callerdesk_parse_webhook(const struct vendor_ctx *ctx, const char *method, const char *query,
                         const char *body, size_t len, struct vendor_update *out, char *err,
                         size_t errlen)
{
    json_t *root = cdk_webhook_fields(method, query, body != NULL ? body : "",
                                      body != NULL ? len : 0, err, errlen);
    int rc;

    if (root == NULL) {
        return -1;
    }
    rc = cdk_parse_update(ctx, root, out, err, errlen);
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Call history
 */

/* A text field as a JSON string: strings (non-empty) as they are, numbers as text, else null. */
static json_t *
cdk_text(json_t *v)
{
    char buf[32];
    const char *s = cdk_scalar(v, buf, sizeof(buf));

    return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

/* A duration field: number or numeric string, 0 when missing/null/"". 0 or -1. */
static int
cdk_row_seconds(json_t *v, long *out)
{
    char buf[32];
    const char *s;

    *out = 0;
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    s = cdk_scalar(v, buf, sizeof(buf));
    if (s == NULL) {
        return -1;
    }
    return s[0] == '\0' ? 0 : cdk_seconds(s, out);
}

/* The neutral status of a history row, as text. */
static const char *
cdk_row_status(json_t *row)
{
    json_t *cs = json_object_get(row, "callstatus"), *cr = json_object_get(row, "callresult");
    enum call_status st;
    char key[64], cause[64];

    if (json_is_string(cs) && cdk_status(json_string_value(cs), NULL, 0, &st) == 0) {
        return call_status_text[st];
    }
    if (json_is_string(cr)) {
        cdk_status_split(json_string_value(cr), key, sizeof(key), cause, sizeof(cause));
        if (strcmp(key, "answered") == 0 || strcmp(key, "answer") == 0) {
            return call_status_text[CALL_COMPLETED];
        }
        if (strcmp(key, "noanswer") == 0 || strcmp(key, "voicemail") == 0) {
            return call_status_text[CALL_NO_ANSWER];
        }
    }
    return "unknown";
}

static const char *
cdk_row_direction(json_t *row)
{
    json_t *f = json_object_get(row, "Flow_type");
    const char *s = json_is_string(f) ? json_string_value(f) : "";

    if (strcasecmp(s, "IVR") == 0) {
        return "inbound";
    }
    if (strcasecmp(s, "WEBOBD") == 0) {
        return "outbound";
    }
    return "unknown";
}

/* One vendor row as a neutral "calls" item, or NULL with err set. */
static json_t *
cdk_row(const struct vendor_ctx *ctx, const char *e164, size_t index, json_t *row, char *err,
        size_t errlen)
{
    char started[UTIL_TIME_LEN], buf[32];
    const char *when;
    json_t *out, *disposition, *v;
    int64_t ms = 0;
    long duration;

    if (!json_is_object(row)) {
        snprintf(err, errlen, "Callerdesk row %zu is not an object", index);
        return NULL;
    }
    when = cdk_field(row, "startdatetime", buf, sizeof(buf));
    if (when == NULL || strncmp(when, CDK_ZERO_TIME, strlen(CDK_ZERO_TIME)) == 0) {
        when = cdk_field(row, "call_date", buf, sizeof(buf));
    }
    if (when == NULL || cdk_time(ctx, when, &ms) != 0 || ms == 0) {
        snprintf(err, errlen, "unreadable startdatetime in Callerdesk row %zu", index);
        return NULL;
    }
    v = json_object_get(row, "total_duration");
    if (v == NULL || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0)) {
        v = json_object_get(row, "talk_duration");
    }
    if (cdk_row_seconds(v, &duration) != 0) {
        snprintf(err, errlen, "unreadable duration in Callerdesk row %zu", index);
        return NULL;
    }
    util_rfc3339(ms, started, sizeof(started));
    disposition = cdk_text(json_object_get(row, "callstatus"));
    if (json_is_null(disposition)) {
        disposition = cdk_text(json_object_get(row, "callresult"));
    }
    /* clang-format off */
    out = json_pack("{s:s, s:s, s:s, s:I, s:s, s:o, s:o, s:n, s:o, s:s, s:o, s:{s:s, s:n}}",
                    "vendor", "callerdesk",
                    "direction", cdk_row_direction(row),
                    "started_at", started,
                    "duration_seconds", (json_int_t)duration,
                    "status", cdk_row_status(row),
                    "disposition", disposition,
                    "agent_name", cdk_text(json_object_get(row, "member_name")),
                    "agent_extension",
                    "trunk", cdk_text(json_object_get(row, "deskphone")),
                    "phone_number", e164,
                    "recording_url", cdk_text(json_object_get(row, "file")),
                    "wrapup", "name", "", "note");
    /* clang-format on */
    if (out == NULL) {
        snprintf(err, errlen, "out of memory");
    }
    return out;
}

/* 1 when a type:error message means "nothing found" rather than a failure. */
static int
cdk_no_data(const char *message)
{
    return strcasestr(message, "no data") != NULL || strcasestr(message, "not found") != NULL ||
           strcasestr(message, "no record") != NULL;
}

/* An integer field that may be a number or numeric text; def when missing/unreadable. */
static long
cdk_int_field(json_t *root, const char *name, long def)
{
    char buf[32];
    const char *s = cdk_field(root, name, buf, sizeof(buf));
    long v;

    return s != NULL && util_parse_long(s, 0, 1000000000L, &v) == 0 ? v : def;
}

static int
callerdesk_parse_history(const struct vendor_ctx *ctx, const struct vendor_history_query *q,
                         long http_status, const char *body, size_t len, json_t *rows, int *more,
                         char *err, size_t errlen)
{
    json_t *root, *list, *row, *got;
    const char *type;
    long page, total;
    size_t i;

    *more = 0;
    if (q->nnumbers == 0 || q->numbers == NULL || q->numbers[0] == NULL) {
        snprintf(err, errlen, "no phone number in the query");
        return -1;
    }
    root = cdk_load(body, len);
    type = cdk_type(root);
    if (strcasecmp(type, "error") == 0) {
        int empty = cdk_no_data(cdk_message(root));

        if (!empty) {
            snprintf(err, errlen, "%s",
                     cdk_message(root)[0] != '\0' ? cdk_message(root) : "Callerdesk: type error");
        }
        json_decref(root);
        return empty ? 0 : -1;
    }
    if (http_status < 200 || http_status > 299) {
        if (cdk_message(root)[0] != '\0') {
            snprintf(err, errlen, "%s", cdk_message(root));
        } else {
            snprintf(err, errlen, "HTTP %ld", http_status);
        }
        json_decref(root);
        return -1;
    }
    if (strcasecmp(type, "success") != 0) {
        snprintf(err, errlen,
                 root == NULL ? "Callerdesk answer is not JSON"
                              : "Callerdesk answer has no type success");
        json_decref(root);
        return -1;
    }
    list = json_object_get(root, "result");
    if (list != NULL && !json_is_null(list) && !json_is_array(list)) {
        snprintf(err, errlen, "Callerdesk result is not a list");
        json_decref(root);
        return -1;
    }
    /* All rows or none: a bad row fails the answer without half-appending it. */
    got = json_array();
    if (got == NULL) {
        snprintf(err, errlen, "out of memory");
        json_decref(root);
        return -1;
    }
    json_array_foreach(list, i, row)
    {
        json_t *n = cdk_row(ctx, q->numbers[0], i, row, err, errlen);

        if (n == NULL || json_array_append_new(got, n) != 0) {
            json_decref(got);
            json_decref(root);
            return -1;
        }
    }
    page = cdk_int_field(root, "current_page", q->page > 0 ? q->page : 1);
    total = cdk_int_field(root, "total", 0);
    if (json_array_size(got) > 0 && page * (long)CDK_PER_PAGE < total) {
        *more = 1;
    }
    json_decref(root);
    if (json_array_extend(rows, got) != 0) {
        json_decref(got);
        *more = 0;
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    json_decref(got);
    return 0;
}

const struct vendor_ops vendor_callerdesk_ops = {
    .name = "callerdesk",
    .caps = VENDOR_CAP_OUTBOUND | VENDOR_CAP_WEBHOOKS | VENDOR_CAP_HISTORY,
    .build_place = callerdesk_build_place,
    .parse_place = callerdesk_parse_place,
    .parse_webhook = callerdesk_parse_webhook,
    .build_history = callerdesk_build_history,
    .parse_history = callerdesk_parse_history,
};
