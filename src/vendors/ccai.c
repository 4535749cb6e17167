/*
 * ccai.c: the Google CCAI Platform adapter (formerly UJET). Sources:
 * shared/seeds/004 (the Apps API call endpoints) and shared/vendors.md
 * sections 2 (facts with sources) and 5 (status mapping).
 *
 * base_url is https://{subdomain}.{domain} (e.g. acme.uc1.ccaiplatform.com);
 * the paths below are appended to it. api_key is "username:token", sent as
 * HTTP Basic (new docs: the subdomain is the user name; legacy UJET
 * accounts: company_key:company_secret -- either works, we send what is
 * configured).
 *
 * Placement: POST /apps/api/v1/calls, JSON:
 *   outbound  {call_type "Voice Outbound (API)", agent_email, end_user_number,
 *              ticket_id?, outbound_number?, lang}
 *   inbound   {call_type "Voice Inbound (API)", menu_id (integer), end_user_number,
 *              lang, recording_permission}
 *   scheduled {call_type "Voice Scheduled (API)", menu_id, end_user_number,
 *              scheduled_at, lang, recording_permission}
 *   201 + call object: accepted, vendor call id = its integer "id".
 *   202 (some examples say 200): accepted, but the agent must act in the
 *   widget first (choose an outbound number, dial a ticket): accepted with
 *   agent_action, so the gateway answers 202. Such an answer echoes the
 *   request and carries no call id: the events of that call cannot be tied
 *   to ours and land in the orphan stream.
 *   400 {"message"}: refused (certainly not placed); 401/403/404 (wrong
 *   credentials or subdomain) too; 429 (10 requests/s limit), 502, 503:
 *   not queued; anything else is ambiguous.
 * Status: GET <status_path> (default /manager/api/v1/calls/{id}) -> call
 *   object; status + fail_reason map to the neutral enum (vendors.md 5).
 * Recording: the call object's recording_url (seen by a status refresh),
 *   fetched with the same Basic credentials when it is on base_url's host.
 * Customer flags: GET/PATCH /apps/api/v1/calls/{id}/customer_flag,
 *   {verified_customer, bad_actor, repeat_customer}.
 * Webhook (external session events): a POST with Basic auth (configure
 *   the tenant's webhook_basic_auth to check it) of {count, events:[...]}:
 *   several events per delivery, each turned into one update.
 *
 * Uncertain facts, handled tolerantly (tenant options, all strings):
 * - The single-call GET is not in the Apps API docs; the Manager API path is
 *   inferred. options.status_path overrides it ("{id}" is replaced).
 * - Whether the compact E.164 form is accepted is inferred (the docs show
 *   "+1 859-657-9625"); options.number_style "spaced" sends "+<cc> <rest>".
 * - The PATCH example spells "repeat_customers" while GET answers
 *   "repeat_customer": options.flag_repeat_key picks the key sent (default
 *   "repeat_customer"); both spellings are read.
 * - Status values may come snake_case ("action_only_finished") or as the
 *   display names ("Action Only Finished"); fail_reason as a name or its
 *   numeric code. Both are accepted.
 * - The session-event layout beyond event_id, timestamp, connected_at,
 *   ends_at, initiator, dispositions and item{call_id, dn} is inferred: the
 *   status is read from item.status (or status) when present, else from the
 *   session state ("state", "session_state") and the participants' statuses
 *   (agent accepted -> ringing, agent connected -> in_progress,
 *   dispositionSubmitted -> completed, disconnected -> completed when it had
 *   connected, else the fail reason or no_answer).
 * - agent: until the agent directory exists, the tenant's agent id must be
 *   the agent's CCAI e-mail address.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "conf.h"
#include "crypto.h"
#include "phone.h"
#include "util.h"
#include "vendor.h"

#define CCAI_CALLS_PATH "/apps/api/v1/calls"
#define CCAI_STATUS_PATH "/manager/api/v1/calls/{id}"
#define CCAI_MAX_EVENTS 500

/* "Authorization: Basic ..." for the configured "user:token" into out; 0 or -1 with err. */
static int
ccai_auth(const struct vendor_ctx *ctx, char *out, size_t outlen, char *err, size_t errlen)
{
    char b64[600];

    if (ctx->api_key == NULL || strchr(ctx->api_key, ':') == NULL) {
        snprintf(err, errlen, "no CCAI credential configured (api_key \"user:token\")");
        return -1;
    }
    if (crypto_base64_encode(ctx->api_key, strlen(ctx->api_key), b64, sizeof(b64)) < 0 ||
        (size_t)snprintf(out, outlen, "Authorization: Basic %s", b64) >= outlen) {
        snprintf(err, errlen, "CCAI credential too long");
        return -1;
    }
    return 0;
}

/* Basic auth + JSON headers, then the request. body is taken over. */
static int
ccai_request(const struct vendor_ctx *ctx, const char *method, const char *url, char *body,
             struct vendor_http *out, char *err, size_t errlen)
{
    char auth[700];

    if (ccai_auth(ctx, auth, sizeof(auth), err, errlen) != 0) {
        free(body);
        return -1;
    }
    return vendor_http_json(out, method, url, auth, body, err, errlen);
}

/* CCAI call ids are integers; anything else never goes into a path. */
static int
ccai_id_ok(const char *id)
{
    size_t i, n = strlen(id);

    for (i = 0; i < n; i++) {
        if (!isdigit((unsigned char)id[i])) {
            return 0;
        }
    }
    return n > 0 && n < 20;
}

/* base_url + path with "{id}" replaced by id; NULL when it does not fit. */
static int
ccai_url(const struct vendor_ctx *ctx, const char *path, const char *id, const char *suffix,
         char *out, size_t outlen)
{
    struct evbuffer *b = evbuffer_new();
    const char *mark = strstr(path, "{id}");
    char *text;
    size_t len;
    int rc = -1;

    if (b == NULL) {
        return -1;
    }
    vendor_url_start(b, ctx->base_url, "");
    if (mark != NULL && id != NULL) {
        evbuffer_add(b, path, (size_t)(mark - path));
        evbuffer_add(b, id, strlen(id));
        evbuffer_add(b, mark + 4, strlen(mark + 4));
    } else {
        evbuffer_add(b, path, strlen(path));
    }
    if (suffix != NULL) {
        evbuffer_add(b, suffix, strlen(suffix));
    }
    text = util_evbuffer_dup(b, &len);
    if (text != NULL && len < outlen) {
        memcpy(out, text, len + 1);
        rc = 0;
    }
    free(text);
    evbuffer_free(b);
    return rc;
}

/* A number as CCAI wants it: E.164, or "+<cc> <national>" when configured. */
static int
ccai_number(const struct vendor_ctx *ctx, const char *e164, char *out, size_t outlen)
{
    const char *style = vendor_option(ctx, "number_style");
    char national[PHONE_E164_MAX];
    int cc;

    if (style == NULL || strcmp(style, "spaced") != 0) {
        return (size_t)snprintf(out, outlen, "%s", e164) < outlen ? 0 : -1;
    }
    cc = phone_national(e164, national, sizeof(national));
    if (cc <= 0) {
        return -1;
    }
    return (size_t)snprintf(out, outlen, "+%d %s", cc, national) < outlen ? 0 : -1;
}

static int
ccai_build_place(const struct vendor_ctx *ctx, const struct vendor_call *call,
                 struct vendor_http *out, char *err, size_t errlen)
{
    char to[PHONE_E164_MAX + 8], from[PHONE_E164_MAX + 8], url[1024];
    const char *from_e164 = call->from != NULL ? call->from : ctx->from_number;
    const char *type = call->type != NULL ? call->type : "outbound";
    json_t *body;
    char *text;

    if (ccai_number(ctx, call->to, to, sizeof(to)) != 0) {
        snprintf(err, errlen, "the customer number cannot be formatted for CCAI");
        return -1;
    }
    body = json_object();
    if (strcmp(type, "outbound") == 0) {
        if (call->agent == NULL || strchr(call->agent, '@') == NULL) {
            json_decref(body);
            snprintf(err, errlen, "CCAI needs the agent's e-mail address as agent");
            return -1;
        }
        json_object_set_new(body, "call_type", json_string("Voice Outbound (API)"));
        json_object_set_new(body, "agent_email", json_string(call->agent));
        json_object_set_new(body, "end_user_number", json_string(to));
        if (call->ticket_id != NULL) {
            json_object_set_new(body, "ticket_id", json_string(call->ticket_id));
        }
        if (from_e164 != NULL) {
            if (ccai_number(ctx, from_e164, from, sizeof(from)) != 0) {
                json_decref(body);
                snprintf(err, errlen, "the caller ID cannot be formatted for CCAI");
                return -1;
            }
            json_object_set_new(body, "outbound_number", json_string(from));
        }
    } else {
        long menu;

        if (call->queue == NULL || util_parse_long(call->queue, 1, 2147483647L, &menu) != 0) {
            json_decref(body);
            snprintf(err, errlen, "CCAI needs queue: the integer menu_id of an IVR or mobile menu");
            return -1;
        }
        if (strcmp(type, "scheduled") == 0 && call->scheduled_at == NULL) {
            json_decref(body);
            snprintf(err, errlen, "a scheduled call needs scheduled_at");
            return -1;
        }
        json_object_set_new(body, "call_type", json_string(strcmp(type, "scheduled") == 0
                                                               ? "Voice Scheduled (API)"
                                                               : "Voice Inbound (API)"));
        json_object_set_new(body, "menu_id", json_integer(menu));
        json_object_set_new(body, "end_user_number", json_string(to));
        if (strcmp(type, "scheduled") == 0) {
            json_object_set_new(body, "scheduled_at", json_string(call->scheduled_at));
        }
        if (call->ticket_id != NULL) {
            json_object_set_new(body, "ticket_id", json_string(call->ticket_id));
        }
        json_object_set_new(body, "recording_permission",
                            json_string(call->record ? "recording_permission_granted"
                                                     : "recording_permission_denied"));
    }
    json_object_set_new(body, "lang",
                        json_string(call->lang != NULL && call->lang[0] ? call->lang : "en"));
    text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    if (text == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (ccai_url(ctx, CCAI_CALLS_PATH, NULL, NULL, url, sizeof(url)) != 0) {
        free(text);
        snprintf(err, errlen, "CCAI base_url too long");
        return -1;
    }
    return ccai_request(ctx, "POST", url, text, out, err, errlen);
}

/* "id" as a string, whether the vendor sent a number or a string. */
static int
ccai_id_text(json_t *v, char *out, size_t outlen)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        snprintf(out, outlen, "%lld", (long long)json_integer_value(v));
        return 0;
    }
    if (json_is_string(v) && json_string_length(v) > 0 && ccai_id_ok(json_string_value(v))) {
        util_strlcpy(out, json_string_value(v), outlen);
        return 0;
    }
    return -1;
}

/* The outcome of an answer that is not a 2xx (shared by placement and flags). */
static enum vendor_outcome
ccai_error_outcome(long http_status)
{
    if (http_status == 429 || http_status == 502 || http_status == 503) {
        return VENDOR_UNAVAILABLE;
    }
    if (http_status >= 400 && http_status < 500) {
        return VENDOR_REJECTED;
    }
    return VENDOR_AMBIGUOUS;
}

static void
ccai_message(json_t *root, long http_status, char *out, size_t outlen)
{
    json_t *m = json_is_object(root) ? json_object_get(root, "message") : NULL;

    if (json_is_string(m)) {
        util_strlcpy(out, json_string_value(m), outlen);
    } else {
        snprintf(out, outlen, "HTTP %ld", http_status);
    }
}

static void
ccai_parse_place(const struct vendor_ctx *ctx, long http_status, const char *body, size_t len,
                 struct vendor_placed *out)
{
    json_t *root = json_loadb(body, len, 0, NULL);

    (void)ctx;
    memset(out, 0, sizeof(*out));
    if (http_status >= 200 && http_status < 300) {
        if (json_is_object(root) &&
            ccai_id_text(json_object_get(root, "id"), out->vendor_call_id,
                         sizeof(out->vendor_call_id)) == 0) {
            out->outcome = VENDOR_ACCEPTED;
            out->agent_action = http_status == 202;
        } else if (http_status == 202 ||
                   (json_is_object(root) && json_is_string(json_object_get(root, "call_type")))) {
            /* The request echoed back: accepted, the agent must act first. */
            out->outcome = VENDOR_ACCEPTED;
            out->agent_action = 1;
            snprintf(out->detail, sizeof(out->detail),
                     "accepted; the agent must complete the call in the CCAI widget");
        } else {
            out->outcome = VENDOR_AMBIGUOUS;
            snprintf(out->detail, sizeof(out->detail), "unreadable 2xx answer");
        }
    } else {
        out->outcome = ccai_error_outcome(http_status);
        ccai_message(root, http_status, out->detail, sizeof(out->detail));
    }
    json_decref(root);
}

/* ---- status -------------------------------------------------------------- */

/* Lower-case with spaces and dashes as '_': "Action Only Finished" -> "action_only_finished". */
static void
ccai_norm(const char *in, char *out, size_t outlen)
{
    size_t i, n = 0;

    for (i = 0; in[i] != '\0' && n + 1 < outlen; i++) {
        unsigned char c = (unsigned char)in[i];
        out[n++] = c == ' ' || c == '-' ? '_' : (char)tolower(c);
    }
    out[n] = '\0';
}

static const struct {
    const char *name;
    enum call_status status;
} ccai_status_map[] = {
    {"scheduled", CALL_SCHEDULED},
    {"selecting", CALL_QUEUED},
    {"queued", CALL_QUEUED},
    {"assigned", CALL_RINGING},
    {"connecting", CALL_RINGING},
    {"switching", CALL_RINGING},
    {"connected", CALL_IN_PROGRESS},
    {"action_only", CALL_IN_PROGRESS},
    {"finished", CALL_COMPLETED},
    {"action_only_finished", CALL_COMPLETED},
    {"recovered", CALL_COMPLETED},
    {"deflected", CALL_COMPLETED},
    {"voicemail", CALL_COMPLETED},
    {"voicemail_received", CALL_COMPLETED},
    {"voicemail_read", CALL_COMPLETED},
    {"failed", CALL_FAILED},
};

/* Fail reasons by name and code (vendors.md 2.4); the rest are "failed". */
static const struct {
    const char *name;
    long code;
    enum call_status status;
} ccai_fail_map[] = {
    {"expired", 11001, CALL_NO_ANSWER},
    {"eu_no_answer", 21003, CALL_NO_ANSWER},
    {"ag_ignored", 30002, CALL_NO_ANSWER},
    {"eu_busy", 21001, CALL_BUSY},
    {"eu_rejected", 20002, CALL_BUSY},
    {"eu_canceled", 20001, CALL_CANCELED},
    {"eu_abandoned", 20003, CALL_CANCELED},
    {"eu_in_menu_abandoned", 20004, CALL_CANCELED},
    {"eu_repeated_voicemail", 20005, CALL_CANCELED},
    {"eu_repeated_callback", 20006, CALL_CANCELED},
};

/* A failed call's neutral status from its fail_reason (name or code). */
static enum call_status
ccai_fail_status(json_t *reason)
{
    char name[64] = "";
    long code = -1;
    size_t i;

    if (json_is_string(reason)) {
        ccai_norm(json_string_value(reason), name, sizeof(name));
        if (util_parse_long(name, 0, 999999, &code) != 0) {
            code = -1;
        }
    } else if (json_is_integer(reason)) {
        code = (long)json_integer_value(reason);
    }
    for (i = 0; i < sizeof(ccai_fail_map) / sizeof(ccai_fail_map[0]); i++) {
        if (strcmp(name, ccai_fail_map[i].name) == 0 || code == ccai_fail_map[i].code) {
            return ccai_fail_map[i].status;
        }
    }
    return CALL_FAILED;
}

/* status (+ fail_reason) -> neutral; -1 when the status is unknown. */
static int
ccai_status(const char *status, json_t *fail_reason, enum call_status *out)
{
    char norm[64];
    size_t i;

    ccai_norm(status, norm, sizeof(norm));
    for (i = 0; i < sizeof(ccai_status_map) / sizeof(ccai_status_map[0]); i++) {
        if (strcmp(norm, ccai_status_map[i].name) == 0) {
            *out = ccai_status_map[i].status == CALL_FAILED ? ccai_fail_status(fail_reason)
                                                            : ccai_status_map[i].status;
            return 0;
        }
    }
    return -1;
}

/* An ISO 8601 field into ms; absent or null is 0; malformed is -1. */
static int
ccai_time(const struct vendor_ctx *ctx, json_t *v, int64_t *out)
{
    *out = 0;
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v) ||
        util_parse_time(json_string_value(v), ctx->conf->time_zone, out) != 0) {
        return -1;
    }
    return 0;
}

/* Times, duration, recording and fail detail from a call object (or event item). */
static int
ccai_call_details(const struct vendor_ctx *ctx, json_t *obj, struct vendor_update *out,
                  char *err, size_t errlen)
{
    static const char *const names[3] = {"created_at", "connected_at", "ends_at"};
    int64_t *const slots[3] = {&out->started_at, &out->answered_at, &out->ended_at};
    json_t *v;
    int64_t t;
    int i;

    for (i = 0; i < 3; i++) {
        if (ccai_time(ctx, json_object_get(obj, names[i]), &t) != 0) {
            snprintf(err, errlen, "%s is not an ISO 8601 time", names[i]);
            return -1;
        }
        if (t > 0) {
            *slots[i] = t;
        }
    }
    v = json_object_get(obj, "call_duration");
    if (json_is_integer(v) && json_integer_value(v) >= 0 && out->ended_at > 0) {
        out->duration_seconds = (long)json_integer_value(v);
    } else if (out->ended_at > 0 && out->answered_at > 0 && out->ended_at >= out->answered_at) {
        out->duration_seconds = (long)((out->ended_at - out->answered_at + 999) / 1000);
    }
    v = json_object_get(obj, "recording_url");
    if (json_is_string(v)) {
        util_strlcpy(out->recording_url, json_string_value(v), sizeof(out->recording_url));
    }
    v = json_object_get(obj, "fail_reason");
    if (json_is_string(v) && strcmp(json_string_value(v), "nothing") != 0 &&
        call_status_terminal(out->status) && out->status != CALL_COMPLETED) {
        util_strlcpy(out->disposition, json_string_value(v), sizeof(out->disposition));
    }
    return 0;
}

static int
ccai_build_status(const struct vendor_ctx *ctx, const char *vendor_call_id,
                  struct vendor_http *out, char *err, size_t errlen)
{
    const char *path = vendor_option(ctx, "status_path");
    char url[1024];

    if (!ccai_id_ok(vendor_call_id)) {
        snprintf(err, errlen, "unusable CCAI call id");
        return -1;
    }
    if (ccai_url(ctx, path != NULL ? path : CCAI_STATUS_PATH, vendor_call_id, NULL, url,
                 sizeof(url)) != 0) {
        snprintf(err, errlen, "CCAI status URL too long");
        return -1;
    }
    return ccai_request(ctx, "GET", url, NULL, out, err, errlen);
}

static int
ccai_parse_status(const struct vendor_ctx *ctx, long http_status, const char *body, size_t len,
                  struct vendor_update *out, char *err, size_t errlen)
{
    json_t *root = json_loadb(body, len, 0, NULL), *obj, *st;
    int rc = -1;

    /* The Manager API may answer a one-element array, like its list. */
    obj = json_is_array(root) && json_array_size(root) == 1 ? json_array_get(root, 0) : root;
    st = json_is_object(obj) ? json_object_get(obj, "status") : NULL;
    if (http_status != 200 || !json_is_string(st)) {
        snprintf(err, errlen, "CCAI status answer HTTP %ld without a call object", http_status);
    } else if (ccai_status(json_string_value(st), json_object_get(obj, "fail_reason"),
                           &out->status) != 0) {
        snprintf(err, errlen, "unknown CCAI status \"%.32s\"", json_string_value(st));
    } else {
        util_strlcpy(out->vendor_status, json_string_value(st), sizeof(out->vendor_status));
        ccai_id_text(json_object_get(obj, "id"), out->vendor_call_id,
                     sizeof(out->vendor_call_id));
        rc = ccai_call_details(ctx, obj, out, err, errlen);
        snprintf(out->dedupe_key, sizeof(out->dedupe_key), "poll:%s:%s", out->vendor_call_id,
                 out->vendor_status);
    }
    json_decref(root);
    return rc;
}

/* ---- session events (the webhook) ---------------------------------------- */

/* The status of the first participant of type (agent / end_user), or NULL. */
static const char *
ccai_participant(json_t *event, json_t *item, const char *type)
{
    json_t *lists[2] = {json_object_get(event, "participants"),
                        json_object_get(item, "participants")};
    json_t *p;
    size_t i, k;

    for (k = 0; k < 2; k++) {
        json_array_foreach(lists[k], i, p) {
            json_t *t = json_object_get(p, "type"), *s = json_object_get(p, "status");
            if (json_is_string(t) && json_is_string(s) &&
                strcasecmp(json_string_value(t), type) == 0) {
                return json_string_value(s);
            }
        }
    }
    return NULL;
}

/* First string among obj's keys, or NULL. */
static const char *
ccai_first_string(json_t *obj, const char *const *keys)
{
    size_t i;

    for (i = 0; keys[i] != NULL; i++) {
        json_t *v = json_object_get(obj, keys[i]);
        if (json_is_string(v)) {
            return json_string_value(v);
        }
    }
    return NULL;
}

/* One session event into an update (see the header comment for what is inferred). */
static int
ccai_event(const struct vendor_ctx *ctx, json_t *ev, struct vendor_update *out, char *err,
           size_t errlen)
{
    static const char *const state_keys[] = {"state", "session_state", "status", NULL};
    json_t *item = json_object_get(ev, "item"), *v, *disp;
    const char *status, *state, *agent;
    char norm[64];
    int64_t ts = 0;

    if (!json_is_object(ev)) {
        snprintf(err, errlen, "an event is not a JSON object");
        return -1;
    }
    if (!json_is_object(item)) {
        item = ev;
    }
    if (ccai_id_text(json_object_get(item, "call_id"), out->vendor_call_id,
                     sizeof(out->vendor_call_id)) != 0 &&
        ccai_id_text(json_object_get(ev, "call_id"), out->vendor_call_id,
                     sizeof(out->vendor_call_id)) != 0) {
        snprintf(err, errlen, "an event has no item.call_id");
        return -1;
    }
    v = json_object_get(ev, "timestamp");
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        ts = (int64_t)json_integer_value(v);
    }
    status = item != ev ? ccai_first_string(item, (const char *const[]){"status", NULL}) : NULL;
    state = ccai_first_string(ev, state_keys);
    agent = ccai_participant(ev, item, "agent");
    if (status != NULL &&
        ccai_status(status, json_object_get(item, "fail_reason"), &out->status) == 0) {
        util_strlcpy(out->vendor_status, status, sizeof(out->vendor_status));
    } else if (state != NULL) {
        ccai_norm(state, norm, sizeof(norm));
        snprintf(out->vendor_status, sizeof(out->vendor_status), "%s%s%s", state,
                 agent != NULL ? "/agent:" : "", agent != NULL ? agent : "");
        if (agent != NULL && strcasecmp(agent, "dispositionSubmitted") == 0) {
            out->status = CALL_COMPLETED;
        } else if (strcmp(norm, "disconnected") == 0 || strcmp(norm, "ended") == 0) {
            json_t *fr = json_object_get(item, "fail_reason");
            json_t *conn = json_object_get(ev, "connected_at");
            if (!json_is_string(conn)) {
                conn = json_object_get(item, "connected_at");
            }
            if (json_is_string(conn)) {
                out->status = CALL_COMPLETED;
            } else if ((json_is_string(fr) && strcmp(json_string_value(fr), "nothing") != 0) ||
                       json_is_integer(fr)) {
                out->status = ccai_fail_status(fr);
            } else {
                out->status = CALL_NO_ANSWER;
            }
        } else if (strcmp(norm, "connected") == 0) {
            out->status = agent == NULL                         ? CALL_QUEUED
                          : strcasecmp(agent, "connected") == 0 ? CALL_IN_PROGRESS
                                                                : CALL_RINGING;
        } else if (ccai_status(state, json_object_get(item, "fail_reason"), &out->status) != 0) {
            snprintf(err, errlen, "unknown CCAI session state \"%.32s\"", state);
            return -1;
        }
    } else {
        snprintf(err, errlen, "an event has neither a status nor a state");
        return -1;
    }
    if (ccai_call_details(ctx, item, out, err, errlen) != 0) {
        return -1;
    }
    if (item != ev && ccai_call_details(ctx, ev, out, err, errlen) != 0) {
        return -1;
    }
    if (out->started_at == 0 && out->status == CALL_QUEUED) {
        out->started_at = ts;
    }
    disp = json_object_get(ev, "dispositions");
    if (!json_is_object(disp)) {
        disp = json_object_get(item, "dispositions");
    }
    if (json_is_object(disp) && json_is_string(json_object_get(disp, "code"))) {
        util_strlcpy(out->disposition, json_string_value(json_object_get(disp, "code")),
                     sizeof(out->disposition));
    }
    v = json_object_get(ev, "event_id");
    if (json_is_string(v) && json_string_length(v) > 0) {
        snprintf(out->dedupe_key, sizeof(out->dedupe_key), "%.200s", json_string_value(v));
    } else {
        snprintf(out->dedupe_key, sizeof(out->dedupe_key), "%s:%lld:%s", out->vendor_call_id,
                 (long long)ts, out->vendor_status);
    }
    return 0;
}

static int
ccai_parse_webhook_batch(const struct vendor_ctx *ctx, const char *method, const char *query,
                         const char *body, size_t len, struct vendor_update **out, size_t *n,
                         char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root, *events, *ev;
    struct vendor_update *ups;
    size_t i, count;

    (void)query;
    *out = NULL;
    *n = 0;
    if (strcmp(method, "POST") != 0) {
        snprintf(err, errlen, "CCAI sends session events with POST");
        return -1;
    }
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        snprintf(err, errlen, "body is not a JSON object%s%s", root == NULL ? ": " : "",
                 root == NULL ? jerr.text : "");
        json_decref(root);
        return -1;
    }
    events = json_object_get(root, "events");
    if (events == NULL && json_object_get(root, "event_id") != NULL) {
        events = root; /* one bare event: tolerated */
    }
    count = json_is_array(events) ? json_array_size(events) : events == root ? 1 : 0;
    if (count == 0 || count > CCAI_MAX_EVENTS) {
        snprintf(err, errlen, "events must be an array of 1 to %d events", CCAI_MAX_EVENTS);
        json_decref(root);
        return -1;
    }
    ups = calloc(count, sizeof(*ups));
    if (ups == NULL) {
        snprintf(err, errlen, "out of memory");
        json_decref(root);
        return -1;
    }
    for (i = 0; i < count; i++) {
        char why[200];
        ev = events == root ? root : json_array_get(events, i);
        vendor_update_init(&ups[i]);
        if (ccai_event(ctx, ev, &ups[i], why, sizeof(why)) != 0) {
            size_t j;
            snprintf(err, errlen, "events[%zu]: %s", i, why);
            for (j = 0; j <= i; j++) {
                vendor_update_clear(&ups[j]);
            }
            free(ups);
            json_decref(root);
            return -1;
        }
    }
    json_decref(root);
    *out = ups;
    *n = count;
    return 0;
}

/* ---- customer flags ------------------------------------------------------ */

static int
ccai_build_flags(const struct vendor_ctx *ctx, const char *vendor_call_id,
                 const struct vendor_flags *set, struct vendor_http *out, char *err,
                 size_t errlen)
{
    const char *repeat_key = vendor_option(ctx, "flag_repeat_key");
    char url[1024];
    char *text = NULL;

    if (!ccai_id_ok(vendor_call_id)) {
        snprintf(err, errlen, "unusable CCAI call id");
        return -1;
    }
    if (ccai_url(ctx, CCAI_CALLS_PATH "/{id}", vendor_call_id, "/customer_flag", url,
                 sizeof(url)) != 0) {
        snprintf(err, errlen, "CCAI URL too long");
        return -1;
    }
    if (set != NULL) {
        json_t *body = json_object();
        if (set->verified_customer >= 0) {
            json_object_set_new(body, "verified_customer", json_boolean(set->verified_customer));
        }
        if (set->bad_actor >= 0) {
            json_object_set_new(body, "bad_actor", json_boolean(set->bad_actor));
        }
        if (set->repeat_customer >= 0) {
            json_object_set_new(body, repeat_key != NULL ? repeat_key : "repeat_customer",
                                json_boolean(set->repeat_customer));
        }
        text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(body);
        if (text == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return ccai_request(ctx, set != NULL ? "PATCH" : "GET", url, text, out, err, errlen);
}

/* A flag as a boolean, or the strings "true"/"false"; -1 when absent or else. */
static int
ccai_flag(json_t *obj, const char *key, const char *alt)
{
    json_t *v = json_object_get(obj, key);

    if (v == NULL && alt != NULL) {
        v = json_object_get(obj, alt);
    }
    if (json_is_boolean(v)) {
        return json_is_true(v);
    }
    if (json_is_string(v)) {
        if (strcasecmp(json_string_value(v), "true") == 0) {
            return 1;
        }
        if (strcasecmp(json_string_value(v), "false") == 0) {
            return 0;
        }
    }
    return -1;
}

static enum vendor_outcome
ccai_parse_flags(const struct vendor_ctx *ctx, long http_status, const char *body, size_t len,
                 struct vendor_flags *out, char *detail, size_t detaillen)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    enum vendor_outcome oc;

    (void)ctx;
    out->verified_customer = out->bad_actor = out->repeat_customer = -1;
    detail[0] = '\0';
    if (http_status >= 200 && http_status < 300) {
        if (json_is_object(root)) {
            out->verified_customer = ccai_flag(root, "verified_customer", NULL);
            out->bad_actor = ccai_flag(root, "bad_actor", NULL);
            out->repeat_customer = ccai_flag(root, "repeat_customer", "repeat_customers");
        }
        if (out->verified_customer < 0 && out->bad_actor < 0 && out->repeat_customer < 0) {
            snprintf(detail, detaillen, "unreadable customer_flag answer");
            oc = VENDOR_AMBIGUOUS;
        } else {
            oc = VENDOR_ACCEPTED;
        }
    } else {
        oc = ccai_error_outcome(http_status);
        ccai_message(root, http_status, detail, detaillen);
    }
    json_decref(root);
    return oc;
}

/* Recording links on the tenant's CCAI host get the API credentials. */
static int
ccai_build_recording(const struct vendor_ctx *ctx, const char *url, struct vendor_http *out,
                     char *err, size_t errlen)
{
    char auth[700];
    const char *headers[2] = {auth, NULL};

    if (ccai_auth(ctx, auth, sizeof(auth), err, errlen) != 0) {
        return -1;
    }
    if (vendor_http_set(out, "GET", url, NULL, headers) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

const struct vendor_ops vendor_ccai_ops = {
    .name = "ccai",
    .caps = VENDOR_CAP_OUTBOUND | VENDOR_CAP_INBOUND | VENDOR_CAP_SCHEDULED |
            VENDOR_CAP_RECORDING | VENDOR_CAP_FLAGS | VENDOR_CAP_STATUS | VENDOR_CAP_WEBHOOKS,
    .rate_limit_per_s = 10, /* "10 requests/s per customer" (vendors.md) */
    .build_place = ccai_build_place,
    .parse_place = ccai_parse_place,
    .parse_webhook_batch = ccai_parse_webhook_batch,
    .build_status = ccai_build_status,
    .parse_status = ccai_parse_status,
    .build_recording = ccai_build_recording,
    .build_flags = ccai_build_flags,
    .parse_flags = ccai_parse_flags,
};
