/*
 * callctl.c: refresh, participants and customer flags. All start the same
 * way -- read the call's tenant, vendor, vendor call id and status from
 * Redis, check the tenant and the vendor's capability -- then make one
 * vendor request.
 *
 * Refresh answers with the stored record in every case (the header
 * Callgate-Refresh says ok, failed or unsupported): a status poll that fails
 * must not hide what callgate already knows. What the vendor says is stored
 * through webhook_apply(), so it follows the same forward-only rule, lands in
 * the history with source "poll", and a change is relayed to the tenant.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "app.h"
#include "callctl.h"
#include "callrec.h"
#include "calls.h"
#include "conf.h"
#include "front.h"
#include "metrics.h"
#include "phone.h"
#include "problem.h"
#include "store.h"
#include "upstream.h"
#include "util.h"
#include "vendor.h"
#include "webhook.h"

enum callctl_kind { CALLCTL_REFRESH, CALLCTL_PARTICIPANT, CALLCTL_FLAGS };

struct callctl {
    enum callctl_kind kind;
    struct front_req *r;          /* NULL once answered */
    struct app *app;
    struct conf *conf;            /* reference */
    const struct conf_tenant *tenant;
    char call_id[72];
    char vendor[32];
    char vendor_call_id[128];
    char number[PHONE_E164_MAX];  /* participant */
    int max_ring_seconds;
    struct vendor_flags flags;    /* flags to set */
    int set_flags;                /* PATCH (else GET) */
    struct upstream_req *up;
    struct vendor_http http;
    int store_pending;
};

static void
callctl_free(struct callctl *c)
{
    if (c->up != NULL) {
        upstream_cancel(c->up);
    }
    vendor_http_clear(&c->http);
    conf_unref(c->conf);
    free(c);
}

/* Answer with the stored record; c goes unless a store command still needs it. */
static void
callctl_reply_record(struct callctl *c, const char *refresh)
{
    struct front_req *r = c->r;

    c->r = NULL;
    if (r != NULL) {
        r->on_deadline = NULL;
        calls_reply_call(r, c->call_id, refresh);
    }
    if (!c->store_pending) {
        callctl_free(c);
    }
}

static void
callctl_problem(struct callctl *c, int code, const char *slug, const char *detail)
{
    struct front_req *r = c->r;

    c->r = NULL;
    if (r != NULL) {
        r->on_deadline = NULL;
        front_problem_ex(r, code, slug, detail, NULL, NULL,
                         code == 503 ? (const char *const[]){"Retry-After", "5", NULL} : NULL);
    }
    if (!c->store_pending) {
        callctl_free(c);
    }
}

static void
callctl_on_deadline(struct front_req *r)
{
    struct callctl *c = r->ctx;

    if (c->up != NULL) {
        upstream_cancel(c->up);
        c->up = NULL;
        callctl_problem(c, 504, "vendor-timeout", "the vendor did not answer in time");
    } else {
        callctl_problem(c, 503, "store-unavailable", "the call store did not answer in time");
    }
}

static void
callctl_on_applied(const char *verdict, void *arg)
{
    struct callctl *c = arg;

    c->store_pending = 0;
    if (c->r == NULL) {
        callctl_free(c);
        return;
    }
    callctl_reply_record(c, verdict != NULL ? "ok" : "failed");
}

/* The vendor's flags as the neutral object; unknown ones are null. */
static json_t *
callctl_flags_json(const struct vendor_flags *f)
{
    const int v[3] = {f->verified_customer, f->bad_actor, f->repeat_customer};
    static const char *const names[3] = {"verified_customer", "bad_actor", "repeat_customer"};
    json_t *o = json_object();
    int i;

    for (i = 0; i < 3; i++) {
        json_object_set_new(o, names[i], v[i] < 0 ? json_null() : json_boolean(v[i]));
    }
    return o;
}

static void
callctl_on_flags(struct callctl *c, const struct vendor_ctx *ctx, const struct vendor_ops *ops,
                 const struct upstream_response *resp)
{
    struct vendor_flags got;
    char detail[256];
    enum vendor_outcome oc =
        ops->parse_flags(ctx, resp->status, resp->body, resp->body_len, &got, detail,
                         sizeof(detail));

    if (oc == VENDOR_ACCEPTED && c->r != NULL) {
        struct front_req *r = c->r;
        c->r = NULL;
        r->on_deadline = NULL;
        /* A PATCH answer may omit flags it did not change: fill in what was sent. */
        if (c->set_flags) {
            if (got.verified_customer < 0) {
                got.verified_customer = c->flags.verified_customer;
            }
            if (got.bad_actor < 0) {
                got.bad_actor = c->flags.bad_actor;
            }
            if (got.repeat_customer < 0) {
                got.repeat_customer = c->flags.repeat_customer;
            }
        }
        front_reply_json(r, 200, callctl_flags_json(&got), NULL);
        callctl_free(c);
    } else if (oc == VENDOR_REJECTED) {
        callctl_problem(c, 502, "vendor-rejected", detail);
    } else if (oc == VENDOR_UNAVAILABLE) {
        callctl_problem(c, 503, "vendor-unavailable", detail);
    } else {
        callctl_problem(c, 502, "vendor-error", detail);
    }
}

static void
callctl_on_vendor(enum upstream_result res, const struct upstream_response *resp, void *arg)
{
    struct callctl *c = arg;
    const struct vendor_ops *ops = vendor_ops_find(c->vendor);
    const struct conf_vendor *cv = conf_vendor_find(c->conf, c->vendor);
    struct vendor_update upd;
    struct vendor_placed placed;
    struct vendor_ctx ctx;
    char err[256];

    c->up = NULL;
    vendor_http_clear(&c->http);
    metrics_vendor_request(c->vendor,
                           c->kind == CALLCTL_REFRESH ? "status"
                           : c->kind == CALLCTL_FLAGS ? "flags"
                                                      : "participants",
                           upstream_result_text[res], resp->status);
    vendor_ctx_init(&ctx, cv, conf_tenant_vendor(c->tenant, c->vendor));
    if (c->kind == CALLCTL_REFRESH) {
        vendor_update_init(&upd);
        if (res != UPSTREAM_OK ||
            ops->parse_status(&ctx, resp->status, resp->body, resp->body_len, &upd, err,
                              sizeof(err)) != 0) {
            vendor_update_clear(&upd);
            callctl_reply_record(c, "failed");
            return;
        }
        /* The vendor's echo of our id must be this call, whatever it says. */
        util_strlcpy(upd.call_id, c->call_id, sizeof(upd.call_id));
        c->store_pending = 1;
        if (webhook_apply(c->app, c->conf, c->tenant, c->vendor, &upd, "poll",
                          c->r != NULL ? c->r->request_id : "-", callctl_on_applied, c) != 0) {
            c->store_pending = 0;
            callctl_reply_record(c, "failed");
        }
        return;
    }
    if (res == UPSTREAM_ERR_NOT_SENT || res == UPSTREAM_ERR_INTERNAL) {
        callctl_problem(c, 503, "vendor-unavailable", "the vendor could not be reached");
        return;
    }
    if (res != UPSTREAM_OK) {
        callctl_problem(c, 504, "vendor-timeout",
                        c->kind == CALLCTL_FLAGS
                            ? "the vendor did not answer; a change may or may not have been made"
                            : "the vendor did not answer; the participant may be dialing");
        return;
    }
    if (c->kind == CALLCTL_FLAGS) {
        callctl_on_flags(c, &ctx, ops, resp);
        return;
    }
    ops->parse_participant(&ctx, resp->status, resp->body, resp->body_len, &placed);
    if (placed.outcome == VENDOR_ACCEPTED && c->r != NULL) {
        struct front_req *r = c->r;
        c->r = NULL;
        r->on_deadline = NULL;
        front_reply_json(r, 202,
                         json_pack("{s:s, s:s, s:s}", "leg_id", placed.vendor_call_id, "status",
                                   "dialing", "number", c->number),
                         NULL);
        callctl_free(c);
    } else if (placed.outcome == VENDOR_REJECTED) {
        callctl_problem(c, 502, "vendor-rejected", placed.detail);
    } else if (placed.outcome == VENDOR_UNAVAILABLE) {
        callctl_problem(c, 503, "vendor-unavailable", placed.detail);
    } else {
        callctl_problem(c, 502, "vendor-error", placed.detail);
    }
}

static void
callctl_on_record(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct callctl *c = arg;
    const struct vendor_ops *ops;
    const struct conf_vendor *cv;
    const char *tenant, *vendor, *vcid, *status;
    enum call_status st = CALL_UNKNOWN;
    struct upstream_request req;
    struct vendor_ctx ctx;
    char err[256];
    int rc;

    c->store_pending = 0;
    if (c->r == NULL) {
        callctl_free(c);
        return;
    }
    if (res != STORE_OK || reply->type != REDIS_REPLY_ARRAY || reply->elements != 4) {
        callctl_problem(c, 503, "store-unavailable", "the call store is not reachable");
        return;
    }
    tenant = reply->element[0]->type == REDIS_REPLY_STRING ? reply->element[0]->str : NULL;
    vendor = reply->element[1]->type == REDIS_REPLY_STRING ? reply->element[1]->str : NULL;
    vcid = reply->element[2]->type == REDIS_REPLY_STRING ? reply->element[2]->str : NULL;
    status = reply->element[3]->type == REDIS_REPLY_STRING ? reply->element[3]->str : NULL;
    if (tenant == NULL || strcmp(tenant, c->tenant->id) != 0) {
        callctl_problem(c, 404, "not-found", "no call with this id");
        return;
    }
    call_status_parse(status, &st);
    ops = vendor != NULL ? vendor_ops_find(vendor) : NULL;
    cv = vendor != NULL ? conf_vendor_find(c->conf, vendor) : NULL;
    if (c->kind == CALLCTL_REFRESH) {
        if (ops == NULL || cv == NULL || ops->build_status == NULL || vcid == NULL) {
            callctl_reply_record(c, "unsupported");
            return;
        }
    } else if (c->kind == CALLCTL_FLAGS) {
        if (ops == NULL || cv == NULL || ops->build_flags == NULL) {
            callctl_problem(c, 422, "unsupported-by-vendor",
                            "this call's vendor keeps no customer flags");
            return;
        }
        if (vcid == NULL || vcid[0] == '\0') {
            callctl_problem(c, 409, "call-not-active",
                            "the vendor has not given this call an id yet (it was not placed, "
                            "or waits for an agent)");
            return;
        }
    } else {
        if (ops == NULL || cv == NULL || ops->build_participant == NULL) {
            callctl_problem(c, 422, "unsupported-by-vendor",
                            "this call's vendor cannot add participants");
            return;
        }
        if (vcid == NULL || call_status_terminal(st) || st == CALL_UNKNOWN) {
            callctl_problem(c, 409, "call-not-active",
                            "participants can join only a call that is live");
            return;
        }
    }
    util_strlcpy(c->vendor, vendor, sizeof(c->vendor));
    util_strlcpy(c->vendor_call_id, vcid, sizeof(c->vendor_call_id));
    util_strlcpy(c->r->log_vendor, vendor, sizeof(c->r->log_vendor));
    vendor_ctx_init(&ctx, cv, conf_tenant_vendor(c->tenant, vendor));
    if (c->kind == CALLCTL_REFRESH) {
        rc = ops->build_status(&ctx, vcid, &c->http, err, sizeof(err));
    } else if (c->kind == CALLCTL_FLAGS) {
        rc = ops->build_flags(&ctx, vcid, c->set_flags ? &c->flags : NULL, &c->http, err,
                              sizeof(err));
    } else {
        rc = ops->build_participant(&ctx, vcid, c->number, c->max_ring_seconds, &c->http, err,
                                    sizeof(err));
    }
    if (rc != 0) {
        if (c->kind == CALLCTL_REFRESH) {
            callctl_reply_record(c, "failed");
        } else {
            callctl_problem(c, 422, "unsupported-by-vendor", err);
        }
        return;
    }
    memset(&req, 0, sizeof(req));
    req.method = c->http.method;
    req.url = c->http.url;
    req.headers = (const char *const *)c->http.headers;
    req.body = c->http.body;
    req.body_len = c->http.body_len;
    req.connect_timeout_ms = cv->connect_timeout_ms;
    req.timeout_ms = cv->timeout_ms;
    c->up = upstream_start(c->app->upstream, &req, callctl_on_vendor, c);
    if (c->up == NULL) {
        vendor_http_clear(&c->http);
        if (c->kind == CALLCTL_REFRESH) {
            callctl_reply_record(c, "failed");
        } else {
            callctl_problem(c, 503, "vendor-unavailable", "the request could not be started");
        }
    }
}

static struct callctl *
callctl_new(struct front_req *r, enum callctl_kind kind, const char *call_id)
{
    struct callctl *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        front_problem(r, 500, "internal", "out of memory", NULL);
        return NULL;
    }
    c->kind = kind;
    c->r = r;
    c->app = r->app;
    c->conf = conf_ref(r->conf);
    c->tenant = r->tenant;
    util_strlcpy(c->call_id, call_id, sizeof(c->call_id));
    r->ctx = c;
    r->on_deadline = callctl_on_deadline;
    return c;
}

static void
callctl_read_record(struct callctl *c)
{
    char key[256];
    const char *argv[6];

    app_key(c->app, key, sizeof(key), "call:%s", c->call_id);
    argv[0] = "HMGET";
    argv[1] = key;
    argv[2] = "tenant";
    argv[3] = "vendor";
    argv[4] = "vendor_call_id";
    argv[5] = "status";
    c->store_pending = 1;
    store_cmd_argv(c->app->store, 6, argv, NULL, callctl_on_record, c);
}

void
callctl_refresh(struct front_req *r, const char *call_id)
{
    struct callctl *c = callctl_new(r, CALLCTL_REFRESH, call_id);

    if (c != NULL) {
        callctl_read_record(c);
    }
}

static int callctl_path_id(struct front_req *r, char *out, size_t outlen);

/* The request body as a JSON object (new reference), or NULL after a 400. */
static json_t *
callctl_body_object(struct front_req *r)
{
    json_error_t jerr;
    json_t *body = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *errors;

    if (json_is_object(body)) {
        return body;
    }
    errors = json_array();
    problem_add_error(errors, "body", body == NULL ? jerr.text : "must be a JSON object");
    json_decref(body);
    front_problem(r, 400, "validation", "the request body is not valid JSON", errors);
    return NULL;
}

void
callctl_add_participant(struct front_req *r)
{
    const char *key, *why;
    char call_id[72];
    json_t *body, *errors, *v;
    struct callctl *c;
    char number[PHONE_E164_MAX] = "";
    int ring = 30;

    if (callctl_path_id(r, call_id, sizeof(call_id)) != 0) {
        return;
    }
    if ((body = callctl_body_object(r)) == NULL) {
        return;
    }
    errors = json_array();
    json_object_foreach(body, key, v) {
        if (strcmp(key, "number") != 0 && strcmp(key, "max_ring_seconds") != 0) {
            problem_add_error(errors, key, "unknown field");
        }
    }
    v = json_object_get(body, "number");
    if (v == NULL || json_is_null(v)) {
        problem_add_error(errors, "number", "is required");
    } else if (!json_is_string(v)) {
        problem_add_error(errors, "number", "must be a string");
    } else if (phone_normalize(json_string_value(v), r->tenant->default_country, number,
                               sizeof(number), &why) != 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "not a phone number: %s", why);
        problem_add_error(errors, "number", msg);
    }
    v = json_object_get(body, "max_ring_seconds");
    if (v != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 5 || json_integer_value(v) > 120) {
            problem_add_error(errors, "max_ring_seconds", "must be an integer from 5 to 120");
        } else {
            ring = (int)json_integer_value(v);
        }
    }
    json_decref(body);
    if (json_array_size(errors) > 0) {
        front_problem(r, 400, "validation", "the request has invalid fields; see errors", errors);
        return;
    }
    json_decref(errors);
    c = callctl_new(r, CALLCTL_PARTICIPANT, call_id);
    if (c != NULL) {
        util_strlcpy(c->number, number, sizeof(c->number));
        c->max_ring_seconds = ring;
        callctl_read_record(c);
    }
}

/* The call id of /v1/calls/{id}/<tail> into out; 0, or -1 after a 404. */
static int
callctl_path_id(struct front_req *r, char *out, size_t outlen)
{
    const char *id = r->path + strlen("/v1/calls/"), *end = strchr(id, '/');
    size_t n = end != NULL ? (size_t)(end - id) : 0;

    if (!calls_id_ok(id, n) || n >= outlen) {
        front_problem(r, 404, "not-found", "no call with this id", NULL);
        return -1;
    }
    memcpy(out, id, n);
    out[n] = '\0';
    util_strlcpy(r->log_call_id, out, sizeof(r->log_call_id));
    return 0;
}

void
callctl_flags(struct front_req *r)
{
    static const char *const names[3] = {"verified_customer", "bad_actor", "repeat_customer"};
    struct vendor_flags set = {-1, -1, -1};
    int *const slots[3] = {&set.verified_customer, &set.bad_actor, &set.repeat_customer};
    int patch = r->method == HTTP1_PATCH;
    char call_id[72];
    struct callctl *c;
    const char *key;
    json_t *body, *errors, *v;
    int i, any = 0;

    if (callctl_path_id(r, call_id, sizeof(call_id)) != 0) {
        return;
    }
    if (patch) {
        if ((body = callctl_body_object(r)) == NULL) {
            return;
        }
        errors = json_array();
        json_object_foreach(body, key, v) {
            int known = 0;
            for (i = 0; i < 3; i++) {
                if (strcmp(key, names[i]) == 0) {
                    known = 1;
                    if (!json_is_boolean(v)) {
                        problem_add_error(errors, key, "must be true or false");
                    } else {
                        *slots[i] = json_is_true(v);
                        any = 1;
                    }
                }
            }
            if (!known) {
                problem_add_error(errors, key, "unknown field");
            }
        }
        json_decref(body);
        if (json_array_size(errors) == 0 && !any) {
            problem_add_error(errors, "body",
                              "set at least one of verified_customer, bad_actor, repeat_customer");
        }
        if (json_array_size(errors) > 0) {
            front_problem(r, 400, "validation", "the request has invalid fields; see errors",
                          errors);
            return;
        }
        json_decref(errors);
    }
    c = callctl_new(r, CALLCTL_FLAGS, call_id);
    if (c != NULL) {
        c->flags = set;
        c->set_flags = patch;
        callctl_read_record(c);
    }
}
