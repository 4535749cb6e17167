/*
 * clouddialer.c: the CloudDialer adapter (api.clouddialer.in, by Avyukta
 * Intellicall). Sources: shared/seeds/002 (the vendor's API reference) and
 * shared/vendors.md section 4.
 *
 * Placement: POST <base_url>/calls, Bearer API key, JSON body
 *   {from_number, to_number, uuid, crm_username, recording, max_ring_time}.
 *   uuid is our call id, so the vendor's own dedupe on uuid protects against
 *   a double placement and its result push names our call directly.
 *   200 {"status":"success","call_id":...} = queued; 400/401/403 = refused;
 *   502 = "could not queue the call" (certain); 429/503 taken as certain too.
 * Health: GET <base_url>/health (no auth) -> {"status":"success"}.
 * Result push (webhook): JSON {call_id, uuid, status, duration, start_time,
 *   end_time, recording_url, ...}, retried up to 3 times with the same uuid:
 *   dedupe key uuid + status.
 *
 * Uncertain facts, handled tolerantly:
 * - Whether API paths need the /CRM_API prefix the docs live under is not
 *   known (vendors.md gap): base_url is configurable and may include it.
 * - to_number is "10-digit or +91": we send the 10-digit national form of
 *   +91 numbers and refuse others before sending (nothing is placed).
 * - from_number examples are 12 digits without "+" ("919800000000"): we send
 *   E.164 digits without the plus.
 * - The push carries only the final status; "ANSWER" there means the call
 *   was answered and has ended (completed). An "ANSWER" without end_time
 *   (as the status API shows mid-call) maps to in_progress.
 * - duration may arrive as a number or a numeric string; both are accepted.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "conf.h"
#include "jsonw.h"
#include "phone.h"
#include "util.h"
#include "vendor.h"

/* Bearer and JSON headers for a request to CloudDialer, then the request. */
static int
clouddialer_request(const struct vendor_ctx *ctx, const char *method, const char *url,
                    char *body, struct vendor_http *out, char *err, size_t errlen)
{
    char auth[600];

    if (ctx->api_key == NULL) {
        free(body);
        snprintf(err, errlen, "no CloudDialer API key configured");
        return -1;
    }
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ctx->api_key);
    return vendor_http_json(out, method, url, auth, body, err, errlen);
}

/* A vendor id is put in a path: letters, digits and "-_." only. */
static int
clouddialer_id_ok(const char *id)
{
    size_t i, n = strlen(id);

    for (i = 0; i < n; i++) {
        if (!isalnum((unsigned char)id[i]) && strchr("-_.", id[i]) == NULL) {
            return 0;
        }
    }
    return n > 0 && n < 128;
}

static int
clouddialer_build_place(const struct vendor_ctx *ctx, const struct vendor_call *call,
                        struct vendor_http *out, char *err, size_t errlen)
{
    char to[PHONE_E164_MAX], url[1024];
    const char *from = call->from != NULL ? call->from : ctx->from_number;
    struct jsonw body;
    char *text, ring[24];

    if (phone_national(call->to, to, sizeof(to)) != 91) {
        snprintf(err, errlen, "CloudDialer accepts only Indian (+91) customer numbers");
        return -1;
    }
    if (from == NULL) {
        snprintf(err, errlen, "no caller ID: set from, or from_number for clouddialer");
        return -1;
    }
    if (call->agent == NULL) {
        snprintf(err, errlen, "CloudDialer needs an agent");
        return -1;
    }
    /* Written directly (jsonw.h): every placement makes one. */
    if (jsonw_init(&body, 256) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    jsonw_lit(&body, "{\"from_number\":");
    jsonw_str(&body, from[0] == '+' ? from + 1 : from);
    jsonw_lit(&body, ",\"to_number\":");
    jsonw_str(&body, to);
    jsonw_lit(&body, ",\"uuid\":");
    jsonw_str(&body, call->call_id);
    jsonw_lit(&body, ",\"crm_username\":");
    jsonw_str(&body, call->agent);
    if (call->record) {
        jsonw_lit(&body, ",\"recording\":true,\"max_ring_time\":");
    } else {
        jsonw_lit(&body, ",\"recording\":false,\"max_ring_time\":");
    }
    snprintf(ring, sizeof(ring), "%d}", call->max_ring_seconds);
    jsonw_raw(&body, ring, strlen(ring));
    text = jsonw_take(&body);
    if (text == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(url, sizeof(url), "%s/calls", ctx->base_url);
    return clouddialer_request(ctx, "POST", url, text, out, err, errlen);
}

/* The vendor's "message" (or "error") text, if the body is JSON and has one. */
static void
clouddialer_message(json_t *root, char *out, size_t outlen)
{
    json_t *m = root != NULL ? json_object_get(root, "message") : NULL;

    if (!json_is_string(m) && root != NULL) {
        m = json_object_get(root, "error");
    }
    if (json_is_string(m)) {
        util_strlcpy(out, json_string_value(m), outlen);
    }
}

/*
 * What an answer means: 2xx with "status":"success" and an id under id_key
 * is accepted; an unreadable 2xx is ambiguous (the vendor may have acted);
 * 429/502/503 are documented "not queued"; other 4xx are refusals; the rest
 * (500, 504, ...) are ambiguous.
 */
static void
clouddialer_outcome(long http_status, const char *body, size_t len, const char *id_key,
                    struct vendor_placed *out)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    json_t *st = root != NULL ? json_object_get(root, "status") : NULL;
    json_t *id = root != NULL ? json_object_get(root, id_key) : NULL;

    memset(out, 0, sizeof(*out));
    clouddialer_message(root, out->detail, sizeof(out->detail));
    if (http_status >= 200 && http_status < 300) {
        if (json_is_string(st) && strcasecmp(json_string_value(st), "success") == 0 &&
            (json_is_string(id) || json_is_integer(id))) {
            out->outcome = VENDOR_ACCEPTED;
            if (json_is_string(id)) {
                util_strlcpy(out->vendor_call_id, json_string_value(id),
                             sizeof(out->vendor_call_id));
            } else {
                snprintf(out->vendor_call_id, sizeof(out->vendor_call_id), "%lld",
                         (long long)json_integer_value(id));
            }
        } else {
            out->outcome = VENDOR_AMBIGUOUS;
            if (out->detail[0] == '\0') {
                snprintf(out->detail, sizeof(out->detail), "unreadable 2xx answer");
            }
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

static void
clouddialer_parse_place(const struct vendor_ctx *ctx, long http_status, const char *body,
                        size_t len, struct vendor_placed *out)
{
    clouddialer_outcome(http_status, body, len, "call_id", out);
}

static void
clouddialer_parse_participant(const struct vendor_ctx *ctx, long http_status, const char *body,
                              size_t len, struct vendor_placed *out)
{
    clouddialer_outcome(http_status, body, len, "leg_id", out);
}

static int
clouddialer_build_status(const struct vendor_ctx *ctx, const char *vendor_call_id,
                         struct vendor_http *out, char *err, size_t errlen)
{
    char url[1024];

    if (!clouddialer_id_ok(vendor_call_id)) {
        snprintf(err, errlen, "unusable CloudDialer call id");
        return -1;
    }
    snprintf(url, sizeof(url), "%s/calls/%s", ctx->base_url, vendor_call_id);
    return clouddialer_request(ctx, "GET", url, NULL, out, err, errlen);
}

static int
clouddialer_build_participant(const struct vendor_ctx *ctx, const char *vendor_call_id,
                              const char *number, int max_ring_seconds, struct vendor_http *out,
                              char *err, size_t errlen)
{
    char national[PHONE_E164_MAX], url[1024];
    json_t *body;
    char *text;

    if (!clouddialer_id_ok(vendor_call_id)) {
        snprintf(err, errlen, "unusable CloudDialer call id");
        return -1;
    }
    if (phone_national(number, national, sizeof(national)) != 91) {
        snprintf(err, errlen, "CloudDialer accepts only Indian (+91) numbers");
        return -1;
    }
    body = json_pack("{s:s, s:i}", "number", national, "max_ring_time", max_ring_seconds);
    text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(url, sizeof(url), "%s/calls/%s/participants", ctx->base_url, vendor_call_id);
    return clouddialer_request(ctx, "POST", url, text, out, err, errlen);
}

/* GET <base_url>/health: unauthenticated, {"status":"success"} when up. */
static int
clouddialer_build_health(const struct vendor_ctx *ctx, struct vendor_http *out, char *err,
                         size_t errlen)
{
    char url[1024];

    if ((size_t)snprintf(url, sizeof(url), "%s/health", ctx->base_url) >= sizeof(url)) {
        snprintf(err, errlen, "CloudDialer base_url too long");
        return -1;
    }
    return vendor_http_json(out, "GET", url, NULL, NULL, err, errlen);
}

static int
clouddialer_parse_health(const struct vendor_ctx *ctx, long http_status, const char *body,
                         size_t len, char *detail, size_t detaillen)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    json_t *st = json_is_object(root) ? json_object_get(root, "status") : NULL;
    int ok = http_status == 200 && json_is_string(st) &&
             strcasecmp(json_string_value(st), "success") == 0;

    (void)ctx;
    if (!ok) {
        snprintf(detail, detaillen, "HTTP %ld%s", http_status,
                 http_status == 200 ? " without status success" : "");
    }
    json_decref(root);
    return ok ? 0 : -1;
}

static const struct {
    const char *vendor;
    enum call_status status;
} clouddialer_status_map[] = {
    {"INITIATED", CALL_QUEUED}, {"ANSWER", CALL_COMPLETED}, {"NO_ANSWER", CALL_NO_ANSWER},
    {"BUSY", CALL_BUSY},        {"FAILED", CALL_FAILED},    {"CANCELED", CALL_CANCELED},
    {"CANCELLED", CALL_CANCELED},
};

static const struct {
    const char *vendor;
    const char *neutral;
} clouddialer_leg_map[] = {
    {"DIALING", "dialing"}, {"JOINED", "joined"}, {"LEFT", "left"}, {"FAILED", "failed"},
};

/* Time field: ISO 8601 (with or without zone), or absent/null -> 0. -1 when malformed. */
static int
clouddialer_time(const struct vendor_ctx *ctx, json_t *v, int64_t *out)
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

static json_t *
clouddialer_legs(json_t *legs)
{
    json_t *out = json_array(), *leg;
    size_t i, j;

    json_array_foreach(legs, i, leg) {
        json_t *role = json_object_get(leg, "role"), *st = json_object_get(leg, "status");
        json_t *num = json_object_get(leg, "number");
        const char *r = json_is_string(role) ? json_string_value(role) : "participant";
        const char *s = "dialing";
        char number[64] = "";

        if (!json_is_object(leg)) {
            continue;
        }
        for (j = 0; json_is_string(st) && j < sizeof(clouddialer_leg_map) /
                                                  sizeof(clouddialer_leg_map[0]); j++) {
            if (strcasecmp(json_string_value(st), clouddialer_leg_map[j].vendor) == 0) {
                s = clouddialer_leg_map[j].neutral;
            }
        }
        if (strcmp(r, "destination") == 0) {
            r = "customer";
        } else if (strcmp(r, "agent") != 0) {
            r = "participant";
        }
        if (json_is_string(num)) {
            util_strlcpy(number, json_string_value(num), sizeof(number));
        }
        json_array_append_new(out, json_pack("{s:s, s:s, s:s}", "role", r, "number", number,
                                             "status", s));
    }
    return out;
}

/*
 * A call's state as CloudDialer reports it, in a push or from the status
 * API, into a neutral update. status_key names the field with the call
 * status ("status" in pushes, "call_status" in the status API).
 */
static int
clouddialer_parse_update(const struct vendor_ctx *ctx, json_t *root, const char *status_key,
                         struct vendor_update *out, char *err, size_t errlen)
{
    json_t *v;
    const char *uuid, *status;
    size_t i;
    int found = 0;

    v = json_object_get(root, "uuid");
    uuid = json_is_string(v) ? json_string_value(v) : NULL;
    v = json_object_get(root, status_key);
    status = json_is_string(v) ? json_string_value(v) : NULL;
    if (uuid == NULL || uuid[0] == '\0' || status == NULL) {
        snprintf(err, errlen, "uuid and %s are required strings", status_key);
        return -1;
    }
    util_strlcpy(out->call_id, uuid, sizeof(out->call_id));
    util_strlcpy(out->vendor_status, status, sizeof(out->vendor_status));
    for (i = 0; i < sizeof(clouddialer_status_map) / sizeof(clouddialer_status_map[0]); i++) {
        if (strcasecmp(status, clouddialer_status_map[i].vendor) == 0) {
            out->status = clouddialer_status_map[i].status;
            found = 1;
        }
    }
    if (!found) {
        snprintf(err, errlen, "unknown CloudDialer status \"%.32s\"", status);
        return -1;
    }
    v = json_object_get(root, "call_id");
    if (json_is_string(v)) {
        util_strlcpy(out->vendor_call_id, json_string_value(v), sizeof(out->vendor_call_id));
    } else if (json_is_integer(v)) {
        snprintf(out->vendor_call_id, sizeof(out->vendor_call_id), "%lld",
                 (long long)json_integer_value(v));
    }
    if (clouddialer_time(ctx, json_object_get(root, "start_time"), &out->started_at) != 0 ||
        clouddialer_time(ctx, json_object_get(root, "end_time"), &out->ended_at) != 0) {
        snprintf(err, errlen, "start_time/end_time are not ISO 8601 times");
        return -1;
    }
    if (out->status == CALL_COMPLETED) {
        if (out->ended_at == 0) {
            out->status = CALL_IN_PROGRESS;
        }
        out->answered_at = out->started_at;
    }
    v = json_object_get(root, "duration");
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        out->duration_seconds = (long)json_integer_value(v);
    } else if (json_is_string(v)) {
        long d;
        if (util_parse_long(json_string_value(v), 0, 86400 * 7, &d) == 0) {
            out->duration_seconds = d;
        }
    } else if (json_is_real(v) && json_real_value(v) >= 0) {
        out->duration_seconds = (long)json_real_value(v);
    }
    v = json_object_get(root, "recording_url");
    if (json_is_string(v)) {
        util_strlcpy(out->recording_url, json_string_value(v), sizeof(out->recording_url));
    }
    v = json_object_get(root, "disposition");
    if (json_is_string(v)) {
        util_strlcpy(out->disposition, json_string_value(v), sizeof(out->disposition));
    }
    v = json_object_get(root, "legs");
    if (json_is_array(v)) {
        out->legs = clouddialer_legs(v);
    }
    snprintf(out->dedupe_key, sizeof(out->dedupe_key), "%s:%s", uuid, status);
    return 0;
}

static int
clouddialer_parse_webhook(const struct vendor_ctx *ctx, const char *method, const char *query,
                          const char *body, size_t len, struct vendor_update *out, char *err,
                          size_t errlen)
{
    json_error_t jerr;
    json_t *root;
    int rc;

    if (strcmp(method, "POST") != 0) {
        snprintf(err, errlen, "CloudDialer pushes results with POST");
        return -1;
    }
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL || !json_is_object(root)) {
        snprintf(err, errlen, "body is not a JSON object%s%s", root == NULL ? ": " : "",
                 root == NULL ? jerr.text : "");
        json_decref(root);
        return -1;
    }
    /* Pushes carry "status"; tolerate "call_status" as the status API names it. */
    rc = clouddialer_parse_update(ctx, root,
                                  json_is_string(json_object_get(root, "status")) ? "status"
                                                                                 : "call_status",
                                  out, err, errlen);
    json_decref(root);
    return rc;
}

static int
clouddialer_parse_status(const struct vendor_ctx *ctx, long http_status, const char *body,
                         size_t len, struct vendor_update *out, char *err, size_t errlen)
{
    json_t *root;
    int rc;

    if (http_status != 200) {
        snprintf(err, errlen, http_status == 404 ? "CloudDialer does not know the call"
                                                 : "CloudDialer answered HTTP %ld",
                 http_status);
        return -1;
    }
    root = json_loadb(body, len, 0, NULL);
    if (root == NULL || !json_is_object(root)) {
        snprintf(err, errlen, "the status answer is not a JSON object");
        json_decref(root);
        return -1;
    }
    rc = clouddialer_parse_update(ctx, root, "call_status", out, err, errlen);
    if (rc == 0) {
        /* A poll repeats: key it on what it says, so unchanged answers dedupe. */
        snprintf(out->dedupe_key, sizeof(out->dedupe_key), "poll:%s:%s:%lld:%zu", out->call_id,
                 out->vendor_status, (long long)out->ended_at,
                 out->legs != NULL ? json_array_size(out->legs) : (size_t)0);
    }
    json_decref(root);
    return rc;
}

const struct vendor_ops vendor_clouddialer_ops = {
    .name = "clouddialer",
    .caps = VENDOR_CAP_OUTBOUND | VENDOR_CAP_PARTICIPANTS | VENDOR_CAP_RECORDING |
            VENDOR_CAP_STATUS | VENDOR_CAP_WEBHOOKS,
    .build_place = clouddialer_build_place,
    .parse_place = clouddialer_parse_place,
    .parse_webhook = clouddialer_parse_webhook,
    .build_status = clouddialer_build_status,
    .parse_status = clouddialer_parse_status,
    .build_participant = clouddialer_build_participant,
    .build_health = clouddialer_build_health,
    .parse_health = clouddialer_parse_health,
    .parse_participant = clouddialer_parse_participant,
};
