/*
 * recording.c: a recording passes through, never whole in memory. The
 * vendor's body is written to the client as it arrives; when the client
 * falls behind (more than RECORDING_HIGH_WATER bytes queued), the vendor
 * transfer is paused until the queue drains. A download that breaks after
 * the headers went out ends the connection without a proper end, so the
 * client can tell the file is short.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <event2/http.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "app.h"
#include "cglog.h"
#include "conf.h"
#include "front.h"
#include "recording.h"
#include "store.h"
#include "upstream.h"
#include "util.h"
#include "vendor.h"

#define RECORDING_HIGH_WATER (256 * 1024)

struct download {
    struct front_req *r;          /* NULL once the client is answered or gone */
    struct app *app;
    struct conf *conf;            /* reference */
    struct upstream_req *up;
    struct event *resume;         /* deferred upstream_resume() */
    long head_status;             /* the vendor's status, 0 before on_head */
    int started;                  /* our streaming reply has begun */
    int paused;
    int in_callback;              /* inside on_head/on_data */
    struct vendor_http http;      /* the vendor's own request, when its adapter builds one */
};

static void
download_free(struct download *d)
{
    if (d->resume != NULL) {
        event_free(d->resume);
    }
    vendor_http_clear(&d->http);
    conf_unref(d->conf);
    free(d);
}

/* The client's connection closed: stop the vendor transfer, forget r. */
static void
download_on_gone(void *arg)
{
    struct download *d = arg;

    d->r = NULL;
    if (d->up != NULL && !d->in_callback) {
        upstream_cancel(d->up);
        d->up = NULL;
        download_free(d);
    }
}

static void
download_on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct download *d = arg;

    if (d->paused && d->up != NULL) {
        d->paused = 0;
        upstream_resume(d->up);
    }
}

static void
download_on_drained(void *arg)
{
    struct download *d = arg;

    if (d->paused) {
        event_active(d->resume, 0, 0);
    }
}

static enum upstream_stream_verdict
download_on_head(long status, const char *content_type, long long content_length, void *arg)
{
    struct download *d = arg;

    d->head_status = status;
    if (status != 200 || d->r == NULL) {
        return d->r == NULL ? UPSTREAM_STREAM_ABORT : UPSTREAM_STREAM_CONTINUE;
    }
    d->in_callback = 1;
    d->started = 1;
    front_stream_start(d->r, 200,
                       content_type != NULL && strncmp(content_type, "audio/", 6) == 0
                           ? content_type
                           : "audio/wav",
                       content_length, download_on_gone, d);
    d->in_callback = 0;
    return UPSTREAM_STREAM_CONTINUE;
}

static enum upstream_stream_verdict
download_on_data(const char *buf, size_t len, void *arg)
{
    struct download *d = arg;
    long queued;

    if (!d->started) {
        return UPSTREAM_STREAM_CONTINUE; /* an error body: not for the tenant */
    }
    if (d->r == NULL) {
        return UPSTREAM_STREAM_ABORT;
    }
    d->in_callback = 1;
    queued = front_stream_write(d->r, buf, len, download_on_drained, d);
    d->in_callback = 0;
    if (queued < 0 || d->r == NULL) {
        return UPSTREAM_STREAM_ABORT;
    }
    if (queued > RECORDING_HIGH_WATER) {
        d->paused = 1;
        return UPSTREAM_STREAM_PAUSE;
    }
    return UPSTREAM_STREAM_CONTINUE;
}

static const struct upstream_stream download_stream = {
    .on_head = download_on_head,
    .on_data = download_on_data,
};

static void
download_on_done(enum upstream_result res, const struct upstream_response *resp, void *arg)
{
    struct download *d = arg;
    struct front_req *r = d->r;

    d->up = NULL;
    if (r == NULL) {
        download_free(d);
        return;
    }
    if (d->started) {
        front_stream_end(r, res == UPSTREAM_OK);
    } else if (res == UPSTREAM_OK && (d->head_status == 404 || d->head_status == 410)) {
        front_problem(r, 404, "not-found", "the vendor has no recording for this call (yet)",
                      NULL);
    } else if (res == UPSTREAM_ERR_TIMEOUT) {
        front_problem(r, 504, "vendor-timeout", "the vendor did not send the recording in time",
                      NULL);
    } else if (res == UPSTREAM_ERR_NOT_SENT) {
        front_problem_ex(r, 503, "vendor-unavailable", "the vendor could not be reached", NULL,
                         NULL, (const char *const[]){"Retry-After", "5", NULL});
    } else {
        front_problem(r, 502, "vendor-error", "the vendor did not deliver the recording", NULL);
    }
    download_free(d);
}

/*
 * Only http(s) links on the vendor's own host (2) or a configured recording
 * host (1); 0 for anything else. Credentials go to the vendor's own host only.
 */
static int
recording_url_allowed(const struct conf_vendor *cv, const char *url)
{
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(url, 0);
    struct evhttp_uri *base = evhttp_uri_parse_with_flags(cv->base_url, 0);
    const char *scheme, *host, *bhost;
    int ok = 0;
    size_t i;

    if (u != NULL && base != NULL && (scheme = evhttp_uri_get_scheme(u)) != NULL &&
        (strcmp(scheme, "https") == 0 || strcmp(scheme, "http") == 0) &&
        evhttp_uri_get_userinfo(u) == NULL && (host = evhttp_uri_get_host(u)) != NULL) {
        bhost = evhttp_uri_get_host(base);
        ok = bhost != NULL && strcasecmp(host, bhost) == 0 &&
                     evhttp_uri_get_port(u) == evhttp_uri_get_port(base)
                 ? 2
                 : 0;
        for (i = 0; !ok && i < cv->nrecording_hosts; i++) {
            ok = strcasecmp(host, cv->recording_hosts[i]) == 0;
        }
    }
    if (u != NULL) {
        evhttp_uri_free(u);
    }
    if (base != NULL) {
        evhttp_uri_free(base);
    }
    return ok;
}

static void
recording_on_deadline(struct front_req *r)
{
    struct download *d = r->ctx;

    d->r = NULL;
    front_problem(r, 503, "store-unavailable", "the call store did not answer in time", NULL);
}

static void
recording_on_record(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct download *d = arg;
    struct front_req *r = d->r;
    const struct conf_vendor *cv;
    struct upstream_request req;
    const struct vendor_ops *ops;
    struct vendor_ctx ctx;
    const char *tenant, *vendor, *url;
    char err[256];
    int allowed;

    if (r == NULL) { /* the deadline answered */
        download_free(d);
        return;
    }
    r->on_deadline = NULL;
    if (res != STORE_OK || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) {
        front_problem_ex(r, 503, "store-unavailable", "the call store is not reachable", NULL,
                         NULL, (const char *const[]){"Retry-After", "1", NULL});
        download_free(d);
        return;
    }
    tenant = reply->element[0]->type == REDIS_REPLY_STRING ? reply->element[0]->str : NULL;
    vendor = reply->element[1]->type == REDIS_REPLY_STRING ? reply->element[1]->str : NULL;
    url = reply->element[2]->type == REDIS_REPLY_STRING ? reply->element[2]->str : NULL;
    if (tenant == NULL || strcmp(tenant, r->tenant->id) != 0) {
        front_problem(r, 404, "not-found", "no call with this id", NULL);
        download_free(d);
        return;
    }
    if (url == NULL || url[0] == '\0' || vendor == NULL) {
        front_problem(r, 404, "not-found", "this call has no recording (yet)", NULL);
        download_free(d);
        return;
    }
    cv = conf_vendor_find(d->conf, vendor);
    allowed = cv != NULL ? recording_url_allowed(cv, url) : 0;
    if (!allowed) {
        cglog_warn("recording_refused", "{s:s, s:s, s:s}", "request_id", r->request_id,
                   "call_id", r->log_call_id, "reason",
                   cv == NULL ? "vendor no longer configured" : "host not allowed");
        front_problem(r, 502, "vendor-error",
                      "the vendor's recording link is not on a host this gateway fetches from",
                      NULL);
        download_free(d);
        return;
    }
    util_strlcpy(r->log_vendor, vendor, sizeof(r->log_vendor));
    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.url = url;
    /* A vendor that wants its credentials on its own links builds the request. */
    ops = vendor_ops_find(vendor);
    if (allowed == 2 && ops != NULL && ops->build_recording != NULL) {
        vendor_ctx_init(&ctx, cv, conf_tenant_vendor(r->tenant, vendor));
        if (ops->build_recording(&ctx, url, &d->http, err, sizeof(err)) != 0) {
            front_problem(r, 502, "vendor-error", err, NULL);
            download_free(d);
            return;
        }
        req.url = d->http.url;
        req.headers = (const char *const *)d->http.headers;
    }
    req.connect_timeout_ms = cv->connect_timeout_ms;
    req.timeout_ms = cv->recording_timeout_ms;
    req.stream = &download_stream;
    d->up = upstream_start(d->app->upstream, &req, download_on_done, d);
    if (d->up == NULL) {
        front_problem(r, 502, "vendor-error", "the recording could not be requested", NULL);
        download_free(d);
    }
}

void
recording_get(struct front_req *r)
{
    const char *id = r->path + strlen("/v1/calls/");
    const char *end = strchr(id, '/');
    const char *argv[5];
    char key[256], callid[72];
    struct download *d;
    size_t i, n = end != NULL ? (size_t)(end - id) : 0;
    int ok = n > 0 && n < sizeof(callid);

    for (i = 0; ok && i < n; i++) {
        ok = isalnum((unsigned char)id[i]) || id[i] == '_';
    }
    if (!ok) {
        front_problem(r, 404, "not-found", "no call with this id", NULL);
        return;
    }
    memcpy(callid, id, n);
    callid[n] = '\0';
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        front_problem(r, 500, "internal", "out of memory", NULL);
        return;
    }
    d->r = r;
    d->app = r->app;
    d->conf = conf_ref(r->conf);
    d->resume = event_new(r->app->base, -1, 0, download_on_resume, d);
    if (d->resume == NULL) {
        download_free(d);
        front_problem(r, 500, "internal", "out of memory", NULL);
        return;
    }
    util_strlcpy(r->log_call_id, callid, sizeof(r->log_call_id));
    r->ctx = d;
    r->on_deadline = recording_on_deadline;
    app_key(r->app, key, sizeof(key), "call:%s", callid);
    argv[0] = "HMGET";
    argv[1] = key;
    argv[2] = "tenant";
    argv[3] = "vendor";
    argv[4] = "recording_vendor_url";
    store_cmd_argv(r->app->store, 5, argv, NULL, recording_on_record, d);
}
