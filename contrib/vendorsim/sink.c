/*
 * sink.c: a tenant's callback receiver. POST /_sink/{name} stores what it
 * got (headers with lower-cased names, the body) and answers 200 {"ok":true}
 * unless POST /_sim/sink-config asked for failures; GET /_sink and
 * GET /_sink/{name} list what was stored, DELETE clears it. The quickstart
 * and the tests point callgate's tenant webhooks (or the vendor result
 * pushes) here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

/* Bounds: events kept, and body bytes kept over all events. */
#ifndef SINK_MAX_EVENTS
#define SINK_MAX_EVENTS 10000
#endif
#define SINK_MAX_BYTES (64u * 1024u * 1024u)

struct sink_event {
    uint64_t seq;
    uint64_t ts_ms;
    char *name;
    char *method;
    char *query;
    json_t *headers;
    char *body;
    size_t body_len;
    int status; /* what the sink answered */
};

static struct sink_event **sink_events; /* ring of SINK_MAX_EVENTS */
static size_t sink_head;
static size_t sink_count;
static size_t sink_bytes;
static uint64_t sink_seq;

/* Failure injection: answer fail_status to the next fail_count requests. */
static int sink_fail_status = 500;
static long sink_fail_count; /* -1: until cleared */

static void
sink_event_free(struct sink_event *e)
{
    if (e == NULL) {
        return;
    }
    free(e->name);
    free(e->method);
    free(e->query);
    if (e->headers != NULL) {
        json_decref(e->headers);
    }
    free(e->body);
    free(e);
}

/* Drop the oldest event. */
static void
sink_drop_oldest(void)
{
    struct sink_event *e;

    if (sink_count == 0) {
        return;
    }
    e = sink_events[sink_head];
    sink_events[sink_head] = NULL;
    sink_head = (sink_head + 1) % SINK_MAX_EVENTS;
    sink_count--;
    sink_bytes -= e->body_len;
    sink_event_free(e);
}

/* Drop the events of one name (all when name is NULL). */
static size_t
sink_clear(const char *name)
{
    struct sink_event **keep;
    size_t nkeep = 0;
    size_t dropped = 0;
    size_t i;

    if (sink_events == NULL) {
        return 0;
    }
    keep = calloc(SINK_MAX_EVENTS, sizeof(*keep));
    if (keep == NULL) {
        fprintf(stderr, "vendorsim: out of memory\n");
        abort();
    }
    for (i = 0; i < sink_count; i++) {
        size_t k = (sink_head + i) % SINK_MAX_EVENTS;
        struct sink_event *e = sink_events[k];

        sink_events[k] = NULL;
        if (name == NULL || strcmp(e->name, name) == 0) {
            sink_bytes -= e->body_len;
            sink_event_free(e);
            dropped++;
        } else {
            keep[nkeep++] = e;
        }
    }
    memcpy(sink_events, keep, SINK_MAX_EVENTS * sizeof(*keep));
    free(keep);
    sink_head = 0;
    sink_count = nkeep;
    return dropped;
}

static json_t *
sink_event_json(const struct sink_event *e)
{
    json_t *o = json_object();
    char iso[40];

    sim_iso_time(e->ts_ms, 1, iso, sizeof(iso));
    json_object_set_new(o, "seq", json_integer((json_int_t)e->seq));
    json_object_set_new(o, "name", sim_json_str_or_null(e->name));
    json_object_set_new(o, "method", sim_json_str_or_null(e->method));
    json_object_set_new(o, "query", sim_json_str_or_null(e->query));
    json_object_set_new(o, "received_at", json_string(iso));
    json_object_set_new(o, "ts_ms", json_integer((json_int_t)e->ts_ms));
    json_object_set_new(o, "status", json_integer(e->status));
    json_object_set_new(o, "headers", json_incref(e->headers));
    json_object_set_new(o, "body", sim_json_lossy(e->body, e->body_len));
    return o;
}

static void
sink_receive(struct sim_req *r)
{
    struct sink_event *e = calloc(1, sizeof(*e));
    json_t *o;
    size_t i;

    if (e == NULL) {
        sim_reply_error(r, 500, "Out of memory");
        return;
    }
    e->seq = ++sink_seq;
    e->ts_ms = r->received_ms;
    e->name = sim_strdup(r->params[0]);
    e->method = sim_strdup(r->method);
    e->query = sim_strdup(r->query);
    e->headers = json_object();
    for (i = 0; i < r->nheaders; i++) {
        char lname[256];
        const char *old;
        size_t k;

        for (k = 0; r->headers[i].name[k] != '\0' && k + 1 < sizeof(lname); k++) {
            char c = r->headers[i].name[k];

            lname[k] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
        lname[k] = '\0';
        old = json_string_value(json_object_get(e->headers, lname));
        if (old != NULL) {
            /* A repeated header: join the values as HTTP allows. */
            size_t n = strlen(old) + strlen(r->headers[i].value) + 3;
            char *joined = malloc(n);

            if (joined != NULL) {
                snprintf(joined, n, "%s, %s", old, r->headers[i].value);
                json_object_set_new(e->headers, lname, sim_json_str_or_null(joined));
                free(joined);
            }
        } else {
            json_object_set_new(e->headers, lname, sim_json_str_or_null(r->headers[i].value));
        }
    }
    e->body = malloc(r->body_len + 1);
    if (e->body == NULL) {
        sink_event_free(e);
        sim_reply_error(r, 500, "Out of memory");
        return;
    }
    memcpy(e->body, r->body, r->body_len);
    e->body[r->body_len] = '\0';
    e->body_len = r->body_len;

    if (sink_fail_count != 0) {
        e->status = sink_fail_status;
        if (sink_fail_count > 0) {
            sink_fail_count--;
        }
    } else {
        e->status = 200;
    }

    while (sink_count > 0 &&
           (sink_count >= SINK_MAX_EVENTS || sink_bytes + e->body_len > SINK_MAX_BYTES)) {
        sink_drop_oldest();
    }
    sink_events[(sink_head + sink_count) % SINK_MAX_EVENTS] = e;
    sink_count++;
    sink_bytes += e->body_len;

    o = json_object();
    json_object_set_new(o, "ok", json_boolean(e->status >= 200 && e->status < 300));
    sim_reply_json(r, e->status, o);
}

static void
sink_list(struct sim_req *r, const char *name)
{
    json_t *arr = json_array();
    json_t *o = json_object();
    size_t i;

    for (i = 0; i < sink_count; i++) {
        const struct sink_event *e = sink_events[(sink_head + i) % SINK_MAX_EVENTS];

        if (name == NULL || strcmp(e->name, name) == 0) {
            json_array_append_new(arr, sink_event_json(e));
        }
    }
    json_object_set_new(o, "count", json_integer((json_int_t)json_array_size(arr)));
    json_object_set_new(o, "events", arr);
    sim_reply_json(r, 200, o);
}

static void
sink_get_all(struct sim_req *r)
{
    sink_list(r, NULL);
}

static void
sink_get_name(struct sim_req *r)
{
    sink_list(r, r->params[0]);
}

static void
sink_reply_cleared(struct sim_req *r, size_t n)
{
    json_t *o = json_object();

    json_object_set_new(o, "ok", json_true());
    json_object_set_new(o, "deleted", json_integer((json_int_t)n));
    sim_reply_json(r, 200, o);
}

static void
sink_delete_all(struct sim_req *r)
{
    sink_reply_cleared(r, sink_clear(NULL));
}

static void
sink_delete_name(struct sim_req *r)
{
    sink_reply_cleared(r, sink_clear(r->params[0]));
}

static json_t *
sink_config_json(void)
{
    json_t *o = json_object();

    json_object_set_new(o, "status", json_integer(sink_fail_status));
    json_object_set_new(o, "count", json_integer(sink_fail_count));
    return o;
}

static void
sink_config_get(struct sim_req *r)
{
    sim_reply_json(r, 200, sink_config_json());
}

static void
sink_config_post(struct sim_req *r)
{
    const char *why = NULL;
    json_t *j = sim_req_json(r, &why);
    json_t *v;
    long long status = 500;
    long long count = 1;

    if (!json_is_object(j)) {
        sim_reply_error(r, 400, "%s", j == NULL ? why : "Body must be a JSON object");
        return;
    }
    v = json_object_get(j, "status");
    if (v != NULL && !json_is_null(v) && !sim_json_int(v, 100, 599, &status)) {
        sim_reply_error(r, 400, "status must be an integer 100..599");
        return;
    }
    v = json_object_get(j, "count");
    if (v != NULL && !json_is_null(v) && !sim_json_int(v, -1, 1000000000, &count)) {
        sim_reply_error(r, 400, "count must be an integer >= 0, or -1 for until cleared");
        return;
    }
    sink_fail_status = (int)status;
    sink_fail_count = (long)count;
    sim_reply_json(r, 200, sink_config_json());
}

void
sink_init(void)
{
    sink_events = calloc(SINK_MAX_EVENTS, sizeof(*sink_events));
    if (sink_events == NULL) {
        fprintf(stderr, "vendorsim: out of memory\n");
        abort();
    }
    sim_route_add(NULL, "POST", "", "/_sink/{name+}", sink_receive);
    sim_route_add(NULL, "PUT", "", "/_sink/{name+}", sink_receive);
    sim_route_add(NULL, "GET", "", "/_sink", sink_get_all);
    sim_route_add(NULL, "GET", "", "/_sink/{name+}", sink_get_name);
    sim_route_add(NULL, "DELETE", "", "/_sink", sink_delete_all);
    sim_route_add(NULL, "DELETE", "", "/_sink/{name+}", sink_delete_name);
    sim_route_add(NULL, "GET", "", "/_sim/sink-config", sink_config_get);
    sim_route_add(NULL, "POST", "", "/_sim/sink-config", sink_config_post);
}

void
sink_cleanup(void)
{
    if (sink_events == NULL) {
        return;
    }
    sink_clear(NULL);
    free(sink_events);
    sink_events = NULL;
}
