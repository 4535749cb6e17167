/*
 * faults.c: fault injection. Tests queue faults with POST /_sim/faults; the
 * dispatcher asks faults_take() for the first queued fault that matches
 * each vendor request and hands the request to faults_apply(), which makes
 * it misbehave: answer late (delay, slow), never (hang), with an error
 * status or garbage, or drop the connection (close, reset).
 *
 * Requests held back live in a list of holds, each with an optional timer
 * and a watch on the client's socket, so that a client that gives up frees
 * its connection at once and the simulator exit frees the rest.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "sim.h"

#define FAULTS_DEFAULT_BODY "{\"status\":\"error\",\"message\":\"simulated failure\"}"
#define FAULTS_DEFAULT_DELAY_MS 1000
#define FAULTS_MAX_DELAY_MS 600000
#define FAULTS_MAX 1000

/* One queued fault. */
struct faults_entry {
    struct faults_entry *next;
    long id;
    char *method; /* NULL: any */
    char *path;   /* prefix; NULL: any */
    enum sim_fault_mode mode;
    int status;
    char *body;
    long delay_ms;
    long count; /* uses left; -1: until cleared */
    long applied;
};

/* What a hold does when its timer fires. */
enum faults_action {
    FAULTS_PROCESS, /* run the handler, then answer */
    FAULTS_SEND,    /* answer what the handler already produced */
    FAULTS_HANG,    /* nothing, ever */
    FAULTS_RESET,   /* drop the connection with a TCP reset */
    FAULTS_CLOSE    /* close the connection without an answer */
};

/* One request held back. */
struct faults_hold {
    struct faults_hold *prev, *next;
    struct sim_req *r;
    enum faults_action action;
    struct event *timer; /* NULL for hang */
    struct event *watch; /* client socket; NULL once not watched */
};

static struct faults_entry *faults_head;
static long faults_next_id = 1;
static struct faults_hold *faults_holds;

static const char *const faults_names[] = {
    [SIM_FAULT_DELAY] = "delay", [SIM_FAULT_HANG] = "hang",   [SIM_FAULT_STATUS] = "status",
    [SIM_FAULT_RESET] = "reset", [SIM_FAULT_CLOSE] = "close", [SIM_FAULT_GARBAGE] = "garbage",
    [SIM_FAULT_SLOW] = "slow",
};

const char *
faults_mode_name(enum sim_fault_mode mode)
{
    if ((size_t)mode < sizeof(faults_names) / sizeof(faults_names[0])) {
        return faults_names[mode];
    }
    return "unknown";
}

static int
faults_mode_parse(const char *s, enum sim_fault_mode *out)
{
    size_t i;

    for (i = 0; i < sizeof(faults_names) / sizeof(faults_names[0]); i++) {
        if (strcmp(s, faults_names[i]) == 0) {
            *out = (enum sim_fault_mode)i;
            return 0;
        }
    }
    return -1;
}

static void
faults_entry_free(struct faults_entry *e)
{
    free(e->method);
    free(e->path);
    free(e->body);
    free(e);
}

static void
faults_clear(void)
{
    while (faults_head != NULL) {
        struct faults_entry *e = faults_head;

        faults_head = e->next;
        faults_entry_free(e);
    }
}

/* 1 if s starts with prefix. */
static int
faults_has_prefix(const char *s, const char *prefix)
{
    return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

struct sim_fault *
faults_take(const struct sim_req *r)
{
    struct faults_entry **pp;

    for (pp = &faults_head; *pp != NULL; pp = &(*pp)->next) {
        struct faults_entry *e = *pp;
        struct sim_fault *f;

        if (e->count == 0) {
            continue;
        }
        if (e->method != NULL && strcasecmp(e->method, r->method) != 0) {
            continue;
        }
        /* The path filter matches with or without a vendor's prefix. */
        if (e->path != NULL && !faults_has_prefix(r->path, e->path) &&
            !faults_has_prefix(r->route_path, e->path)) {
            continue;
        }
        f = calloc(1, sizeof(*f));
        if (f == NULL) {
            return NULL;
        }
        f->mode = e->mode;
        f->status = e->status;
        f->body = sim_strdup(e->body);
        f->delay_ms = e->delay_ms;
        e->applied++;
        if (e->count > 0 && --e->count == 0) {
            *pp = e->next;
            faults_entry_free(e);
        }
        return f;
    }
    return NULL;
}

/* ---- holds ---- */

static void
faults_hold_unlink(struct faults_hold *h)
{
    if (h->prev != NULL) {
        h->prev->next = h->next;
    } else if (faults_holds == h) {
        faults_holds = h->next;
    }
    if (h->next != NULL) {
        h->next->prev = h->prev;
    }
    h->prev = h->next = NULL;
}

static void
faults_hold_stop_watch(struct faults_hold *h)
{
    if (h->watch != NULL) {
        event_free(h->watch);
        h->watch = NULL;
    }
}

/* Unlink and free h; r too when free_req (the evhttp side is untouched). */
static void
faults_hold_free(struct faults_hold *h, int free_req)
{
    faults_hold_unlink(h);
    faults_hold_stop_watch(h);
    if (h->timer != NULL) {
        event_free(h->timer);
    }
    if (free_req) {
        sim_req_free(h->r);
    }
    free(h);
}

/* The socket under r's connection, or -1. */
static evutil_socket_t
faults_req_fd(const struct sim_req *r)
{
    struct evhttp_connection *evcon;
    struct bufferevent *bev;

    if (r->req == NULL) {
        return -1;
    }
    evcon = evhttp_request_get_connection(r->req);
    if (evcon == NULL) {
        return -1;
    }
    bev = evhttp_connection_get_bufferevent(evcon);
    return bev != NULL ? bufferevent_getfd(bev) : -1;
}

/*
 * Close r's connection without an answer; with a TCP reset when rst. Freeing
 * the connection frees the request with it.
 */
static void
faults_drop_connection(struct sim_req *r, int rst)
{
    struct evhttp_connection *evcon;

    if (r->req == NULL) {
        return;
    }
    evcon = evhttp_request_get_connection(r->req);
    if (evcon == NULL) {
        /* Already detached from its connection: it is ours to free. */
        evhttp_request_free(r->req);
        r->req = NULL;
        return;
    }
    if (rst) {
        evutil_socket_t fd = faults_req_fd(r);

        if (fd >= 0) {
            struct linger lg;
            struct sockaddr sa;

            lg.l_onoff = 1;
            lg.l_linger = 0;
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            /*
             * Linux: connecting to AF_UNSPEC dissolves the association and
             * sends the RST now, before libevent's shutdown() could send a
             * FIN. With linger 0 the close() that follows resets anyway.
             */
            memset(&sa, 0, sizeof(sa));
            sa.sa_family = AF_UNSPEC;
            if (connect(fd, &sa, sizeof(sa)) != 0) {
                /* Nothing more to do: linger 0 still makes close() reset. */
            }
        }
    }
    evhttp_connection_free(evcon);
    r->req = NULL;
}

static void
faults_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct faults_hold *h = arg;
    struct sim_req *r = h->r;
    enum faults_action action = h->action;

    faults_hold_free(h, 0);
    switch (action) {
    case FAULTS_PROCESS:
        sim_process(r);
        sim_send(r);
        break;
    case FAULTS_SEND:
        sim_send(r);
        break;
    case FAULTS_RESET:
    case FAULTS_CLOSE:
        faults_drop_connection(r, action == FAULTS_RESET);
        sim_log("%s %s -> connection %s (fault)", r->method, r->path,
                action == FAULTS_RESET ? "reset" : "closed");
        sim_req_free(r);
        break;
    case FAULTS_HANG:
    default:
        sim_req_free(r);
        break;
    }
}

/* Readable client socket of a held request: did the client go away? */
static void
faults_watch_cb(evutil_socket_t fd, short what, void *arg)
{
    struct faults_hold *h = arg;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    if (n > 0) {
        /* The client sent more (pipelining): stop watching, keep holding. */
        faults_hold_stop_watch(h);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return;
    }
    faults_hold_stop_watch(h);
    sim_log("%s %s: client went away while held", h->r->method, h->r->path);
    faults_drop_connection(h->r, 0);
    if (h->action != FAULTS_PROCESS) {
        faults_hold_free(h, 1);
    }
    /* A delayed request is still processed when its time comes. */
}

/* Hold r; its timer fires after delay_ms (never when < 0). */
static void
faults_hold(struct sim_req *r, enum faults_action action, long delay_ms)
{
    struct faults_hold *h = calloc(1, sizeof(*h));
    evutil_socket_t fd;

    if (h == NULL) {
        fprintf(stderr, "vendorsim: out of memory\n");
        abort();
    }
    h->r = r;
    h->action = action;
    h->next = faults_holds;
    if (faults_holds != NULL) {
        faults_holds->prev = h;
    }
    faults_holds = h;
    fd = faults_req_fd(r);
    if (fd >= 0) {
        h->watch = event_new(sim_base, fd, EV_READ | EV_PERSIST, faults_watch_cb, h);
        if (h->watch != NULL) {
            event_add(h->watch, NULL);
        }
    }
    if (delay_ms >= 0) {
        h->timer = sim_timer_new(faults_timer_cb, h);
        sim_timer_start(h->timer, delay_ms);
    }
}

void
faults_apply(struct sim_req *r, struct sim_fault *f)
{
    switch (f->mode) {
    case SIM_FAULT_STATUS: {
        const char *body = f->body ? f->body : FAULTS_DEFAULT_BODY;

        sim_reply(r, f->status, "application/json", body, strlen(body));
        sim_send(r);
        break;
    }
    case SIM_FAULT_GARBAGE: {
        char buf[64];
        size_t n = (size_t)snprintf(buf, sizeof(buf), "<html>oops");

        sim_random(buf + n, 24);
        sim_reply(r, 200, "text/html", buf, n + 24);
        sim_send(r);
        break;
    }
    case SIM_FAULT_DELAY:
        faults_hold(r, FAULTS_PROCESS, f->delay_ms);
        break;
    case SIM_FAULT_SLOW:
        sim_process(r);
        faults_hold(r, FAULTS_SEND, f->delay_ms);
        break;
    case SIM_FAULT_HANG:
        sim_log("%s %s -> held (fault hang)", r->method, r->path);
        faults_hold(r, FAULTS_HANG, -1);
        break;
    case SIM_FAULT_RESET:
        faults_hold(r, FAULTS_RESET, 0);
        break;
    case SIM_FAULT_CLOSE:
    default:
        faults_hold(r, FAULTS_CLOSE, 0);
        break;
    }
    free(f->body);
    free(f);
}

/* ---- control endpoints ---- */

static json_t *
faults_entry_json(const struct faults_entry *e)
{
    json_t *o = json_object();

    json_object_set_new(o, "id", json_integer(e->id));
    json_object_set_new(o, "method", sim_json_str_or_null(e->method));
    json_object_set_new(o, "path", sim_json_str_or_null(e->path));
    json_object_set_new(o, "mode", json_string(faults_mode_name(e->mode)));
    json_object_set_new(o, "status", json_integer(e->status));
    json_object_set_new(o, "body", sim_json_str_or_null(e->body));
    json_object_set_new(o, "delay_ms", json_integer(e->delay_ms));
    json_object_set_new(o, "count", json_integer(e->count));
    json_object_set_new(o, "applied", json_integer(e->applied));
    return o;
}

static void
faults_get(struct sim_req *r)
{
    json_t *arr = json_array();
    json_t *o = json_object();
    const struct faults_entry *e;
    size_t n = 0;

    for (e = faults_head; e != NULL; e = e->next) {
        json_array_append_new(arr, faults_entry_json(e));
        n++;
    }
    json_object_set_new(o, "count", json_integer((json_int_t)n));
    json_object_set_new(o, "faults", arr);
    sim_reply_json(r, 200, o);
}

static void
faults_delete(struct sim_req *r)
{
    json_t *o = json_object();

    faults_clear();
    json_object_set_new(o, "ok", json_true());
    sim_reply_json(r, 200, o);
}

/* A string field that may be absent or null; -1 when of another type. */
static int
faults_opt_string(json_t *j, const char *key, const char **out)
{
    json_t *v = json_object_get(j, key);

    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

static void
faults_post(struct sim_req *r)
{
    const char *why = NULL;
    json_t *j = sim_req_json(r, &why);
    const char *method;
    const char *path;
    const char *mode;
    const char *body;
    long long status = 503;
    long long delay = FAULTS_DEFAULT_DELAY_MS;
    long long count = 1;
    enum sim_fault_mode m;
    struct faults_entry *e;
    struct faults_entry **tail;
    size_t n = 0;
    json_t *v;

    if (!json_is_object(j)) {
        sim_reply_error(r, 400, "%s", j == NULL ? why : "Body must be a JSON object");
        return;
    }
    if (faults_opt_string(j, "mode", &mode) != 0 || mode == NULL) {
        sim_reply_error(r, 400,
                        "mode is required: delay, hang, status, reset, close, garbage, slow");
        return;
    }
    if (faults_mode_parse(mode, &m) != 0) {
        sim_reply_error(
            r, 400, "Unknown mode %s: want delay, hang, status, reset, close, garbage, slow", mode);
        return;
    }
    if (faults_opt_string(j, "method", &method) != 0 || (method != NULL && *method == '\0') ||
        (method != NULL && strlen(method) > 10)) {
        sim_reply_error(r, 400, "method must be an HTTP method name");
        return;
    }
    if (faults_opt_string(j, "path", &path) != 0 || (path != NULL && path[0] != '/')) {
        sim_reply_error(r, 400, "path must be a string starting with /");
        return;
    }
    if (faults_opt_string(j, "body", &body) != 0) {
        sim_reply_error(r, 400, "body must be a string");
        return;
    }
    v = json_object_get(j, "status");
    if (v != NULL && !json_is_null(v) && !sim_json_int(v, 100, 599, &status)) {
        sim_reply_error(r, 400, "status must be an integer 100..599");
        return;
    }
    v = json_object_get(j, "delay_ms");
    if (v != NULL && !json_is_null(v) && !sim_json_int(v, 0, FAULTS_MAX_DELAY_MS, &delay)) {
        sim_reply_error(r, 400, "delay_ms must be an integer 0..%d", FAULTS_MAX_DELAY_MS);
        return;
    }
    v = json_object_get(j, "count");
    if (v != NULL && !json_is_null(v) && (!sim_json_int(v, -1, 1000000000, &count) || count == 0)) {
        sim_reply_error(r, 400, "count must be a positive integer, or -1 for until cleared");
        return;
    }
    for (tail = &faults_head; *tail != NULL; tail = &(*tail)->next) {
        n++;
    }
    if (n >= FAULTS_MAX) {
        sim_reply_error(r, 400, "Too many faults queued (%d)", FAULTS_MAX);
        return;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL) {
        sim_reply_error(r, 500, "Out of memory");
        return;
    }
    e->id = faults_next_id++;
    e->method = sim_strdup(method);
    if (e->method != NULL) {
        char *p;

        for (p = e->method; *p != '\0'; p++) {
            if (*p >= 'a' && *p <= 'z') {
                *p = (char)(*p - 'a' + 'A');
            }
        }
    }
    e->path = sim_strdup(path);
    e->mode = m;
    e->status = (int)status;
    e->body = sim_strdup(body);
    e->delay_ms = (long)delay;
    e->count = (long)count;
    *tail = e;
    sim_reply_json(r, 200, faults_entry_json(e));
}

void
faults_init(void)
{
    sim_route_add(NULL, "GET", "", "/_sim/faults", faults_get);
    sim_route_add(NULL, "POST", "", "/_sim/faults", faults_post);
    sim_route_add(NULL, "DELETE", "", "/_sim/faults", faults_delete);
}

void
faults_cleanup(void)
{
    /* The held evhttp requests go with their connections in evhttp_free. */
    while (faults_holds != NULL) {
        faults_hold_free(faults_holds, 1);
    }
    faults_clear();
}
