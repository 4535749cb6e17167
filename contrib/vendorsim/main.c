/*
 * main.c: the vendor simulator's core. Parses the command line, listens
 * with evhttp on one address, dispatches every request through one generic
 * callback that matches method + path against the routes the modules
 * registered, keeps the request log and the push log, sends result pushes
 * with the evhttp client, serves the /_sim control endpoints and exits
 * cleanly (status 0, everything freed) on SIGTERM or SIGINT.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include "sim.h"

/* Request log and push log sizes (rings: the oldest entries go). */
#ifndef MAIN_LOG_MAX
#define MAIN_LOG_MAX 10000
#endif
#ifndef MAIN_PUSHLOG_MAX
#define MAIN_PUSHLOG_MAX 10000
#endif
/* Request bodies are kept in the log up to this many bytes. */
#define MAIN_LOG_BODY_MAX 4096
/* Result push: attempts in all, first backoff, timeout per attempt. */
#define MAIN_PUSH_ATTEMPTS 4
#define MAIN_PUSH_BACKOFF_MS 200
#define MAIN_PUSH_TIMEOUT_S 5
#define MAIN_MAX_VENDORS 16

struct sim_config sim_cfg;
struct event_base *sim_base;

struct sim_route {
    const struct sim_vendor *vendor;
    char method[12];
    char *prefix;
    char *pattern;
    sim_handler fn;
};

/* One request log entry. */
struct main_logent {
    uint64_t seq;
    uint64_t ts_ms;
    char method[12];
    char *path;
    char *route_path; /* NULL when equal to path */
    char *query;
    char *uuid;
    int auth_ok; /* -1: no vendor to judge */
    char *body;
    size_t body_len;
    const char *vendor;
    const char *fault;
};

/* One push attempt. */
struct main_pushent {
    uint64_t seq;
    uint64_t ts_ms;
    uint64_t started_ms;
    char *vendor;
    char *url;
    char *uuid;
    char *call_id;
    char *status;
    int attempt;
    int http_status;
    char *error;
    char *body;
};

/* One push in progress (all its attempts). */
struct main_push {
    struct main_push *prev, *next;
    char *vendor, *url, *uuid, *call_id, *status, *body;
    struct sim_header *headers; /* extra request headers, sent with every attempt */
    size_t nheaders;
    int attempt;
    int completed; /* the current attempt has a result */
    int waiting;   /* waiting for the backoff before the next */
    uint64_t started_ms;
    struct evhttp_connection *evcon;
    struct event *timer;
    int http_status;
    char error[160];
};

static struct sim_route *main_routes;
static size_t main_nroutes;
static size_t main_routes_cap;

static const struct sim_vendor *main_vendors[MAIN_MAX_VENDORS];
static size_t main_nvendors;

static struct main_logent *main_log;
static size_t main_log_head; /* index of the oldest entry */
static size_t main_log_count;
static uint64_t main_log_seq;

static struct main_pushent *main_pushlog;
static size_t main_pushlog_head;
static size_t main_pushlog_count;
static uint64_t main_pushlog_seq;

static struct main_push *main_pushes;

static struct evhttp *main_http;

/* ------------------------------------------------------------------ */
/* small helpers                                                       */

static void *
main_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (p == NULL) {
        fprintf(stderr, "vendorsim: out of memory\n");
        abort();
    }
    return p;
}

static void *
main_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (p == NULL) {
        fprintf(stderr, "vendorsim: out of memory\n");
        abort();
    }
    return p;
}

char *
sim_strdup(const char *s)
{
    size_t n;
    char *p;

    if (s == NULL) {
        return NULL;
    }
    n = strlen(s);
    p = main_xmalloc(n + 1);
    memcpy(p, s, n + 1);
    return p;
}

static char *
main_xstrndup(const char *s, size_t n)
{
    char *p = main_xmalloc(n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void
sim_log(const char *fmt, ...)
{
    va_list ap;

    if (sim_cfg.quiet) {
        return;
    }
    va_start(ap, fmt);
    fputs("vendorsim: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

uint64_t
sim_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)(ts.tv_nsec / 1000000);
}

void
sim_iso_time(uint64_t ms, int with_ms, char *out, size_t outlen)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char base[32];

    gmtime_r(&t, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    if (with_ms) {
        snprintf(out, outlen, "%s.%03uZ", base, (unsigned)(ms % 1000));
    } else {
        snprintf(out, outlen, "%sZ", base);
    }
}

void
sim_random(void *buf, size_t len)
{
    unsigned char *p = buf;
    size_t got = 0;

    while (got < len) {
        ssize_t n = getrandom(p + got, len - got, 0);

        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            break;
        }
        got += (size_t)n;
    }
    /* Fallback that never happens on Linux >= 3.17, kept for safety. */
    while (got < len) {
        p[got++] = (unsigned char)(rand() & 0xff);
    }
}

int
sim_outcome_valid(const char *s)
{
    static const char *const names[] = {"ANSWER", "NO_ANSWER", "BUSY", "FAILED", "CANCELED"};
    size_t i;

    if (s == NULL) {
        return 0;
    }
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

int
sim_url_valid(const char *url)
{
    struct evhttp_uri *u;
    const char *scheme;
    const char *host;
    int ok;

    if (url == NULL || *url == '\0') {
        return 0;
    }
    u = evhttp_uri_parse(url);
    if (u == NULL) {
        return 0;
    }
    scheme = evhttp_uri_get_scheme(u);
    host = evhttp_uri_get_host(u);
    ok = scheme != NULL && strcasecmp(scheme, "http") == 0 && host != NULL && *host != '\0';
    evhttp_uri_free(u);
    return ok;
}

struct event *
sim_timer_new(event_callback_fn cb, void *arg)
{
    struct event *ev = event_new(sim_base, -1, 0, cb, arg);

    if (ev == NULL) {
        fprintf(stderr, "vendorsim: event_new failed\n");
        abort();
    }
    return ev;
}

void
sim_timer_start(struct event *ev, long ms)
{
    struct timeval tv;

    if (ms < 0) {
        ms = 0;
    }
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    event_add(ev, &tv);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t
main_utf8_seq(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned int cp;
    size_t i;

    if (s[0] < 0x80) {
        return 1;
    } else if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return len;
}

json_t *
sim_json_lossy(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    json_t *j;
    char *buf;
    size_t i = 0;
    size_t o = 0;

    if (s == NULL) {
        return json_string("");
    }
    j = json_stringn(s, len);
    if (j != NULL) {
        return j;
    }
    buf = main_xmalloc(len * 3 + 1);
    while (i < len) {
        size_t k = main_utf8_seq(u + i, len - i);

        if (k == 0) {
            memcpy(buf + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(buf + o, u + i, k);
            o += k;
            i += k;
        }
    }
    j = json_stringn(buf, o);
    free(buf);
    return j != NULL ? j : json_string("");
}

json_t *
sim_json_str_or_null(const char *s)
{
    if (s == NULL) {
        return json_null();
    }
    return sim_json_lossy(s, strlen(s));
}

int
sim_json_int(const json_t *v, long long lo, long long hi, long long *out)
{
    long long x;

    if (v == NULL || !json_is_integer(v)) {
        return 0;
    }
    x = (long long)json_integer_value(v);
    if (x < lo || x > hi) {
        return 0;
    }
    *out = x;
    return 1;
}

/* ------------------------------------------------------------------ */
/* routes and vendors                                                  */

void
sim_vendor_register(const struct sim_vendor *v)
{
    if (main_nvendors >= MAIN_MAX_VENDORS) {
        fprintf(stderr, "vendorsim: too many vendors\n");
        abort();
    }
    main_vendors[main_nvendors++] = v;
}

void
sim_route_add(const struct sim_vendor *vendor, const char *method, const char *prefix,
              const char *pattern, sim_handler fn)
{
    struct sim_route *rt;

    if (main_nroutes == main_routes_cap) {
        size_t cap = main_routes_cap ? main_routes_cap * 2 : 32;
        struct sim_route *n = realloc(main_routes, cap * sizeof(*n));

        if (n == NULL) {
            fprintf(stderr, "vendorsim: out of memory\n");
            abort();
        }
        main_routes = n;
        main_routes_cap = cap;
    }
    rt = &main_routes[main_nroutes++];
    memset(rt, 0, sizeof(*rt));
    rt->vendor = vendor;
    snprintf(rt->method, sizeof(rt->method), "%s", method);
    rt->prefix = sim_strdup(prefix ? prefix : "");
    rt->pattern = sim_strdup(pattern);
    rt->fn = fn;
}

const struct sim_vendor *
sim_req_vendor(const struct sim_req *r)
{
    return r->route != NULL ? r->route->vendor : NULL;
}

/*
 * Match path against prefix + pattern. On a match returns 1 and the
 * captures as (start, length) pairs into path, and *rest the path after
 * the prefix.
 */
static int
main_route_match(const struct sim_route *rt, const char *path, const char **starts, size_t *lens,
                 int *ncap, const char **rest)
{
    size_t plen = strlen(rt->prefix);
    const char *p = rt->pattern;
    const char *s;
    int n = 0;

    if (plen > 0) {
        if (strncmp(path, rt->prefix, plen) != 0 || path[plen] != '/') {
            return 0;
        }
    }
    s = path + plen;
    *rest = s;
    while (*p != '\0') {
        if (*p == '{') {
            const char *end = strchr(p, '}');
            const char *seg_end;
            int greedy;

            if (end == NULL || n >= SIM_MAX_PARAMS) {
                return 0;
            }
            greedy = end > p + 1 && end[-1] == '+';
            seg_end = greedy ? s + strlen(s) : s + strcspn(s, "/");
            if (seg_end == s) {
                return 0;
            }
            starts[n] = s;
            lens[n] = (size_t)(seg_end - s);
            n++;
            s = seg_end;
            p = end + 1;
        } else {
            if (*p != *s) {
                return 0;
            }
            p++;
            s++;
        }
    }
    if (*s != '\0') {
        return 0;
    }
    *ncap = n;
    return 1;
}

/* Find the route for r (method + path); fills route, params, allow. */
static void
main_route_find(struct sim_req *r)
{
    size_t i;

    for (i = 0; i < main_nroutes; i++) {
        const struct sim_route *rt = &main_routes[i];
        const char *starts[SIM_MAX_PARAMS];
        size_t lens[SIM_MAX_PARAMS];
        const char *rest = NULL;
        int ncap = 0;
        int k;

        if (!main_route_match(rt, r->path, starts, lens, &ncap, &rest)) {
            continue;
        }
        if (strcmp(rt->method, r->method) != 0) {
            size_t used = strlen(r->allow);

            r->method_mismatch = 1;
            if (strstr(r->allow, rt->method) == NULL &&
                used + strlen(rt->method) + 3 < sizeof(r->allow)) {
                snprintf(r->allow + used, sizeof(r->allow) - used, "%s%s", used ? ", " : "",
                         rt->method);
            }
            continue;
        }
        r->route = rt;
        r->route_path = rest;
        r->method_mismatch = 0;
        for (k = 0; k < ncap; k++) {
            char *raw = main_xstrndup(starts[k], lens[k]);
            char *dec = evhttp_uridecode(raw, 0, NULL);

            if (dec != NULL) {
                r->params[k] = sim_strdup(dec);
                free(dec);
            } else {
                r->params[k] = sim_strdup(raw);
            }
            free(raw);
        }
        r->nparams = ncap;
        return;
    }
}

/* ------------------------------------------------------------------ */
/* requests and replies                                                */

void
sim_req_free(struct sim_req *r)
{
    size_t i;
    int k;

    if (r == NULL) {
        return;
    }
    free(r->path);
    free(r->query);
    for (i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    free(r->body);
    for (k = 0; k < r->nparams; k++) {
        free(r->params[k]);
    }
    if (r->json != NULL) {
        json_decref(r->json);
    }
    if (r->query_parsed) {
        evhttp_clear_headers(&r->query_args);
    }
    if (r->resp_body != NULL) {
        evbuffer_free(r->resp_body);
    }
    for (i = 0; i < r->nresp_headers; i++) {
        free(r->resp_headers[i].name);
        free(r->resp_headers[i].value);
    }
    free(r->resp_headers);
    free(r);
}

const char *
sim_req_header(const struct sim_req *r, const char *name)
{
    size_t i;

    for (i = 0; i < r->nheaders; i++) {
        if (strcasecmp(r->headers[i].name, name) == 0) {
            return r->headers[i].value;
        }
    }
    return NULL;
}

const char *
sim_req_query(struct sim_req *r, const char *name)
{
    if (r->query == NULL) {
        return NULL;
    }
    if (!r->query_parsed) {
        /* evhttp_parse_query_str() initialises the list itself. */
        r->query_parsed = 1;
        if (evhttp_parse_query_str(r->query, &r->query_args) != 0) {
            /* Keep what was parsed; malformed pieces are ignored. */
        }
    }
    return evhttp_find_header(&r->query_args, name);
}

json_t *
sim_req_json(struct sim_req *r, const char **why)
{
    if (!r->json_parsed) {
        json_error_t err;

        r->json_parsed = 1;
        if (r->body_len == 0) {
            snprintf(r->json_error, sizeof(r->json_error), "Request body is empty");
        } else {
            r->json = json_loadb(r->body, r->body_len, JSON_DECODE_ANY, &err);
            if (r->json == NULL) {
                snprintf(r->json_error, sizeof(r->json_error), "Malformed JSON: %s", err.text);
            }
        }
    }
    if (r->json == NULL && why != NULL) {
        *why = r->json_error;
    }
    return r->json;
}

void
sim_reply(struct sim_req *r, int code, const char *ctype, const void *body, size_t len)
{
    if (r->replied) {
        sim_log("bug: second answer to %s %s ignored", r->method, r->path);
        return;
    }
    r->replied = 1;
    r->resp_code = code;
    snprintf(r->resp_ctype, sizeof(r->resp_ctype), "%s", ctype ? ctype : "application/json");
    if (r->resp_body == NULL) {
        r->resp_body = evbuffer_new();
    }
    if (r->resp_body != NULL && body != NULL && len > 0) {
        evbuffer_add(r->resp_body, body, len);
    }
}

static void
main_put_le(unsigned char *p, uint32_t v, int bytes)
{
    int i;

    for (i = 0; i < bytes; i++) {
        p[i] = (unsigned char)((v >> (8 * i)) & 0xff);
    }
}

void
sim_reply_silent_wav(struct sim_req *r)
{
    /* Half a second of silence: 8 kHz, 16-bit, mono PCM. */
    enum { DATA = 8000 };
    unsigned char *wav = calloc(1, 44 + DATA);

    if (wav == NULL) {
        sim_reply_error(r, 500, "Out of memory");
        return;
    }
    memcpy(wav, "RIFF", 4);
    main_put_le(wav + 4, 36 + DATA, 4);
    memcpy(wav + 8, "WAVEfmt ", 8);
    main_put_le(wav + 16, 16, 4);    /* fmt chunk size */
    main_put_le(wav + 20, 1, 2);     /* PCM */
    main_put_le(wav + 22, 1, 2);     /* channels */
    main_put_le(wav + 24, 8000, 4);  /* sample rate */
    main_put_le(wav + 28, 16000, 4); /* byte rate */
    main_put_le(wav + 32, 2, 2);     /* block align */
    main_put_le(wav + 34, 16, 2);    /* bits per sample */
    memcpy(wav + 36, "data", 4);
    main_put_le(wav + 40, DATA, 4);
    sim_reply(r, 200, "audio/wav", wav, 44 + DATA);
    free(wav);
}

void
sim_reply_json(struct sim_req *r, int code, json_t *obj)
{
    char *text = NULL;

    if (obj != NULL) {
        text = json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
        json_decref(obj);
    }
    if (text == NULL) {
        static const char fallback[] = "{\"status\":\"error\",\"message\":\"Internal error\"}";

        sim_reply(r, 500, "application/json", fallback, sizeof(fallback) - 1);
        return;
    }
    sim_reply(r, code, "application/json", text, strlen(text));
    free(text);
}

void
sim_reply_error(struct sim_req *r, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    json_t *o;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    o = json_object();
    json_object_set_new(o, "status", json_string("error"));
    json_object_set_new(o, "message", sim_json_str_or_null(msg));
    sim_reply_json(r, code, o);
}

void
sim_reply_header(struct sim_req *r, const char *name, const char *value)
{
    struct sim_header *h =
        realloc(r->resp_headers, (r->nresp_headers + 1) * sizeof(*r->resp_headers));

    if (h == NULL) {
        fprintf(stderr, "vendorsim: out of memory\n");
        abort();
    }
    r->resp_headers = h;
    h[r->nresp_headers].name = sim_strdup(name);
    h[r->nresp_headers].value = sim_strdup(value);
    r->nresp_headers++;
}

void
sim_process(struct sim_req *r)
{
    if (r->route != NULL) {
        r->route->fn(r);
        if (!r->replied) {
            sim_reply_error(r, 500, "Handler did not answer");
        }
    } else if (r->method_mismatch) {
        sim_reply_error(r, 405, "Method not allowed");
    } else {
        sim_reply_error(r, 404, "Not found");
    }
}

void
sim_send(struct sim_req *r)
{
    if (r->req != NULL) {
        struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);
        size_t i;

        if (!r->replied) {
            sim_reply_error(r, 500, "No answer");
        }
        evhttp_add_header(out, "Content-Type", r->resp_ctype);
        if (r->resp_code == 405 && r->allow[0] != '\0') {
            evhttp_add_header(out, "Allow", r->allow);
        }
        for (i = 0; i < r->nresp_headers; i++) {
            evhttp_add_header(out, r->resp_headers[i].name, r->resp_headers[i].value);
        }
        evhttp_send_reply(r->req, r->resp_code, NULL, r->resp_body);
        sim_log("%s %s -> %d%s%s", r->method, r->path, r->resp_code, r->fault ? " fault=" : "",
                r->fault ? r->fault : "");
        r->req = NULL;
    }
    sim_req_free(r);
}

/* ------------------------------------------------------------------ */
/* request log                                                         */

static void
main_logent_clear(struct main_logent *e)
{
    free(e->path);
    free(e->route_path);
    free(e->query);
    free(e->uuid);
    free(e->body);
    memset(e, 0, sizeof(*e));
}

static void
main_log_clear(void)
{
    size_t i;

    for (i = 0; i < main_log_count; i++) {
        main_logent_clear(&main_log[(main_log_head + i) % MAIN_LOG_MAX]);
    }
    main_log_head = 0;
    main_log_count = 0;
}

static void
main_log_add(struct sim_req *r, const char *fault)
{
    const struct sim_vendor *v = sim_req_vendor(r);
    struct main_logent *e;
    json_t *j;

    if (main_log_count == MAIN_LOG_MAX) {
        main_logent_clear(&main_log[main_log_head]);
        main_log_head = (main_log_head + 1) % MAIN_LOG_MAX;
        main_log_count--;
    }
    e = &main_log[(main_log_head + main_log_count) % MAIN_LOG_MAX];
    main_log_count++;
    memset(e, 0, sizeof(*e));
    e->seq = ++main_log_seq;
    e->ts_ms = r->received_ms;
    snprintf(e->method, sizeof(e->method), "%s", r->method);
    e->path = sim_strdup(r->path);
    if (r->route_path != NULL && strcmp(r->route_path, r->path) != 0) {
        e->route_path = sim_strdup(r->route_path);
    }
    e->query = sim_strdup(r->query);
    j = sim_req_json(r, NULL);
    if (json_is_object(j) && json_is_string(json_object_get(j, "uuid"))) {
        e->uuid = sim_strdup(json_string_value(json_object_get(j, "uuid")));
    }
    e->auth_ok = (v != NULL && v->auth_ok != NULL) ? (v->auth_ok(r) ? 1 : 0) : -1;
    e->body_len = r->body_len < MAIN_LOG_BODY_MAX ? r->body_len : MAIN_LOG_BODY_MAX;
    e->body = main_xstrndup(r->body ? r->body : "", e->body_len);
    e->vendor = v != NULL ? v->name : NULL;
    e->fault = fault;
}

static void
main_requests_get(struct sim_req *r)
{
    const char *method = sim_req_query(r, "method");
    const char *path = sim_req_query(r, "path");
    const char *prefix = sim_req_query(r, "path_prefix");
    const char *uuid = sim_req_query(r, "uuid");
    const char *since = sim_req_query(r, "since");
    unsigned long long since_seq = since ? strtoull(since, NULL, 10) : 0;
    json_t *arr = json_array();
    json_t *o;
    size_t i;

    for (i = 0; i < main_log_count; i++) {
        const struct main_logent *e = &main_log[(main_log_head + i) % MAIN_LOG_MAX];
        const char *rp = e->route_path ? e->route_path : e->path;
        json_t *x;

        if (e->seq <= since_seq) {
            continue;
        }
        if (method != NULL && strcasecmp(method, e->method) != 0) {
            continue;
        }
        if (path != NULL && strcmp(path, e->path) != 0 && strcmp(path, rp) != 0) {
            continue;
        }
        if (prefix != NULL && strncmp(e->path, prefix, strlen(prefix)) != 0 &&
            strncmp(rp, prefix, strlen(prefix)) != 0) {
            continue;
        }
        if (uuid != NULL && (e->uuid == NULL || strcmp(uuid, e->uuid) != 0)) {
            continue;
        }
        x = json_object();
        json_object_set_new(x, "seq", json_integer((json_int_t)e->seq));
        json_object_set_new(x, "method", json_string(e->method));
        json_object_set_new(x, "path", sim_json_str_or_null(e->path));
        json_object_set_new(x, "query", sim_json_str_or_null(e->query));
        json_object_set_new(x, "uuid", sim_json_str_or_null(e->uuid));
        json_object_set_new(x, "authorization_ok",
                            e->auth_ok < 0 ? json_null() : json_boolean(e->auth_ok));
        json_object_set_new(x, "body", sim_json_lossy(e->body, e->body_len));
        json_object_set_new(x, "ts_ms", json_integer((json_int_t)e->ts_ms));
        json_object_set_new(x, "vendor", sim_json_str_or_null(e->vendor));
        json_object_set_new(x, "fault", sim_json_str_or_null(e->fault));
        json_array_append_new(arr, x);
    }
    o = json_object();
    json_object_set_new(o, "count", json_integer((json_int_t)json_array_size(arr)));
    json_object_set_new(o, "requests", arr);
    sim_reply_json(r, 200, o);
}

static void
main_requests_delete(struct sim_req *r)
{
    json_t *o = json_object();

    main_log_clear();
    json_object_set_new(o, "ok", json_true());
    sim_reply_json(r, 200, o);
}

/* ------------------------------------------------------------------ */
/* pushes                                                              */

static void
main_pushent_clear(struct main_pushent *e)
{
    free(e->vendor);
    free(e->url);
    free(e->uuid);
    free(e->call_id);
    free(e->status);
    free(e->error);
    free(e->body);
    memset(e, 0, sizeof(*e));
}

static void
main_pushlog_clear(void)
{
    size_t i;

    for (i = 0; i < main_pushlog_count; i++) {
        main_pushent_clear(&main_pushlog[(main_pushlog_head + i) % MAIN_PUSHLOG_MAX]);
    }
    main_pushlog_head = 0;
    main_pushlog_count = 0;
}

static void
main_pushlog_add(const struct main_push *p)
{
    struct main_pushent *e;

    if (main_pushlog_count == MAIN_PUSHLOG_MAX) {
        main_pushent_clear(&main_pushlog[main_pushlog_head]);
        main_pushlog_head = (main_pushlog_head + 1) % MAIN_PUSHLOG_MAX;
        main_pushlog_count--;
    }
    e = &main_pushlog[(main_pushlog_head + main_pushlog_count) % MAIN_PUSHLOG_MAX];
    main_pushlog_count++;
    memset(e, 0, sizeof(*e));
    e->seq = ++main_pushlog_seq;
    e->ts_ms = sim_now_ms();
    e->started_ms = p->started_ms;
    e->vendor = sim_strdup(p->vendor);
    e->url = sim_strdup(p->url);
    e->uuid = sim_strdup(p->uuid);
    e->call_id = sim_strdup(p->call_id);
    e->status = sim_strdup(p->status);
    e->attempt = p->attempt;
    e->http_status = p->http_status;
    e->error = p->error[0] ? sim_strdup(p->error) : NULL;
    e->body = sim_strdup(p->body);
}

static void
main_push_free(struct main_push *p)
{
    size_t i;

    if (p->prev != NULL) {
        p->prev->next = p->next;
    } else if (main_pushes == p) {
        main_pushes = p->next;
    }
    if (p->next != NULL) {
        p->next->prev = p->prev;
    }
    if (p->timer != NULL) {
        event_free(p->timer);
    }
    if (p->evcon != NULL) {
        evhttp_connection_free(p->evcon);
    }
    free(p->vendor);
    free(p->url);
    free(p->uuid);
    free(p->call_id);
    free(p->status);
    free(p->body);
    for (i = 0; i < p->nheaders; i++) {
        free(p->headers[i].name);
        free(p->headers[i].value);
    }
    free(p->headers);
    free(p);
}

/* The current attempt is over: look at it from a fresh stack frame. */
static void
main_push_finish_attempt(struct main_push *p)
{
    if (p->completed) {
        return;
    }
    p->completed = 1;
    sim_timer_start(p->timer, 0);
}

static void
main_push_error_cb(enum evhttp_request_error err, void *arg)
{
    struct main_push *p = arg;
    int e = errno;

    switch (err) {
    case EVREQ_HTTP_TIMEOUT:
        snprintf(p->error, sizeof(p->error), "timeout");
        break;
    case EVREQ_HTTP_EOF:
        snprintf(p->error, sizeof(p->error), "connection failed or closed%s%s", e ? ": " : "",
                 e ? strerror(e) : "");
        break;
    case EVREQ_HTTP_INVALID_HEADER:
        snprintf(p->error, sizeof(p->error), "invalid response header");
        break;
    case EVREQ_HTTP_BUFFER_ERROR:
        snprintf(p->error, sizeof(p->error), "connection error%s%s", e ? ": " : "",
                 e ? strerror(e) : "");
        break;
    case EVREQ_HTTP_REQUEST_CANCEL:
        snprintf(p->error, sizeof(p->error), "canceled");
        break;
    case EVREQ_HTTP_DATA_TOO_LONG:
        snprintf(p->error, sizeof(p->error), "response too long");
        break;
    default:
        snprintf(p->error, sizeof(p->error), "request error %d", (int)err);
        break;
    }
}

static void
main_push_done_cb(struct evhttp_request *req, void *arg)
{
    struct main_push *p = arg;
    int e = errno;

    if (p->completed) {
        return;
    }
    if (req != NULL) {
        p->http_status = evhttp_request_get_response_code(req);
        if (p->http_status == 0 && p->error[0] == '\0') {
            /* A failed connect arrives here without an error callback. */
            if (e == ECONNREFUSED || e == ETIMEDOUT || e == EHOSTUNREACH || e == ENETUNREACH ||
                e == ECONNRESET) {
                snprintf(p->error, sizeof(p->error), "connection failed: %s", strerror(e));
            } else {
                snprintf(p->error, sizeof(p->error), "connection failed or no response");
            }
        }
    } else if (p->error[0] == '\0') {
        snprintf(p->error, sizeof(p->error), "connection failed");
    }
    main_push_finish_attempt(p);
}

/* Start attempt number p->attempt + 1. */
static void
main_push_attempt(struct main_push *p)
{
    struct evhttp_uri *u;
    struct evhttp_request *req;
    struct evkeyvalq *h;
    const char *host;
    const char *path;
    const char *query;
    char hostbuf[256];
    char hosthdr[300];
    char *target;
    size_t tlen;
    size_t i;
    int port;

    p->attempt++;
    p->completed = 0;
    p->waiting = 0;
    p->http_status = 0;
    p->error[0] = '\0';
    p->started_ms = sim_now_ms();

    u = evhttp_uri_parse(p->url);
    host = u ? evhttp_uri_get_host(u) : NULL;
    if (u == NULL || host == NULL || *host == '\0' || evhttp_uri_get_scheme(u) == NULL ||
        strcasecmp(evhttp_uri_get_scheme(u), "http") != 0) {
        snprintf(p->error, sizeof(p->error), "invalid push URL");
        /* No point in retrying a URL that cannot work. */
        p->attempt = MAIN_PUSH_ATTEMPTS;
        if (u != NULL) {
            evhttp_uri_free(u);
        }
        main_push_finish_attempt(p);
        return;
    }
    /* evhttp_uri keeps IPv6 literals in brackets; connecting wants none. */
    if (host[0] == '[') {
        size_t n = strlen(host);

        snprintf(hostbuf, sizeof(hostbuf), "%.*s", (int)(n > 2 ? n - 2 : 0), host + 1);
    } else {
        snprintf(hostbuf, sizeof(hostbuf), "%s", host);
    }
    port = evhttp_uri_get_port(u);
    if (port <= 0) {
        port = 80;
        snprintf(hosthdr, sizeof(hosthdr), "%s", host);
    } else {
        snprintf(hosthdr, sizeof(hosthdr), "%s:%d", host, port);
    }
    path = evhttp_uri_get_path(u);
    if (path == NULL || *path == '\0') {
        path = "/";
    }
    query = evhttp_uri_get_query(u);
    tlen = strlen(path) + (query ? strlen(query) + 1 : 0) + 1;
    target = main_xmalloc(tlen);
    snprintf(target, tlen, "%s%s%s", path, query ? "?" : "", query ? query : "");
    evhttp_uri_free(u);

    p->evcon = evhttp_connection_base_new(sim_base, NULL, hostbuf, (unsigned short)port);
    if (p->evcon == NULL) {
        snprintf(p->error, sizeof(p->error), "cannot create connection");
        free(target);
        main_push_finish_attempt(p);
        return;
    }
    evhttp_connection_set_timeout(p->evcon, MAIN_PUSH_TIMEOUT_S);
    req = evhttp_request_new(main_push_done_cb, p);
    if (req == NULL) {
        snprintf(p->error, sizeof(p->error), "cannot create request");
        free(target);
        main_push_finish_attempt(p);
        return;
    }
    evhttp_request_set_error_cb(req, main_push_error_cb);
    h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", hosthdr);
    evhttp_add_header(h, "User-Agent", "vendorsim");
    evhttp_add_header(h, "Connection", "close");
    for (i = 0; i < p->nheaders; i++) {
        evhttp_add_header(h, p->headers[i].name, p->headers[i].value);
    }
    if (p->body != NULL) {
        evhttp_add_header(h, "Content-Type", "application/json");
        evbuffer_add(evhttp_request_get_output_buffer(req), p->body, strlen(p->body));
    }
    /* The callbacks may run from inside this call (refused at once). */
    if (evhttp_make_request(p->evcon, req, p->body != NULL ? EVHTTP_REQ_POST : EVHTTP_REQ_GET,
                            target) != 0) {
        if (p->error[0] == '\0') {
            snprintf(p->error, sizeof(p->error), "cannot send request");
        }
        main_push_finish_attempt(p);
    }
    free(target);
}

static void
main_push_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct main_push *p = arg;

    if (p->waiting) {
        main_push_attempt(p);
        return;
    }
    if (!p->completed) {
        return;
    }
    main_pushlog_add(p);
    sim_log("push %s attempt %d to %s: %d%s%s", p->uuid ? p->uuid : "-", p->attempt, p->url,
            p->http_status, p->error[0] ? " " : "", p->error);
    if (p->evcon != NULL) {
        evhttp_connection_free(p->evcon);
        p->evcon = NULL;
    }
    if ((p->http_status >= 200 && p->http_status < 300) || p->attempt >= MAIN_PUSH_ATTEMPTS) {
        main_push_free(p);
        return;
    }
    p->completed = 0;
    p->waiting = 1;
    sim_timer_start(p->timer, (long)MAIN_PUSH_BACKOFF_MS << (p->attempt - 1));
}

void
sim_push(const char *vendor, const char *url, const char *uuid, const char *call_id,
         const char *status, const char *body)
{
    sim_push_ex(vendor, url, uuid, call_id, status, body, NULL, 0);
}

void
sim_push_ex(const char *vendor, const char *url, const char *uuid, const char *call_id,
            const char *status, const char *body, const struct sim_header *headers, size_t nheaders)
{
    struct main_push *p = main_xcalloc(1, sizeof(*p));
    size_t i;

    p->vendor = sim_strdup(vendor);
    p->url = sim_strdup(url ? url : "");
    p->uuid = sim_strdup(uuid);
    p->call_id = sim_strdup(call_id);
    p->status = sim_strdup(status);
    p->body = sim_strdup(body); /* NULL: a GET, the fields in the URL's query */
    if (nheaders > 0) {
        p->headers = main_xcalloc(nheaders, sizeof(*p->headers));
        for (i = 0; i < nheaders; i++) {
            p->headers[i].name = sim_strdup(headers[i].name);
            p->headers[i].value = sim_strdup(headers[i].value);
        }
        p->nheaders = nheaders;
    }
    p->timer = sim_timer_new(main_push_timer_cb, p);
    p->next = main_pushes;
    if (main_pushes != NULL) {
        main_pushes->prev = p;
    }
    main_pushes = p;
    main_push_attempt(p);
}

static void
main_pushes_get(struct sim_req *r)
{
    const char *uuid = sim_req_query(r, "uuid");
    const char *call_id = sim_req_query(r, "call_id");
    const char *vendor = sim_req_query(r, "vendor");
    json_t *arr = json_array();
    json_t *o;
    size_t i;

    for (i = 0; i < main_pushlog_count; i++) {
        const struct main_pushent *e = &main_pushlog[(main_pushlog_head + i) % MAIN_PUSHLOG_MAX];
        json_t *x;

        if (uuid != NULL && (e->uuid == NULL || strcmp(uuid, e->uuid) != 0)) {
            continue;
        }
        if (call_id != NULL && (e->call_id == NULL || strcmp(call_id, e->call_id) != 0)) {
            continue;
        }
        if (vendor != NULL && (e->vendor == NULL || strcmp(vendor, e->vendor) != 0)) {
            continue;
        }
        x = json_object();
        json_object_set_new(x, "seq", json_integer((json_int_t)e->seq));
        json_object_set_new(x, "vendor", sim_json_str_or_null(e->vendor));
        json_object_set_new(x, "url", sim_json_str_or_null(e->url));
        json_object_set_new(x, "uuid", sim_json_str_or_null(e->uuid));
        json_object_set_new(x, "call_id", sim_json_str_or_null(e->call_id));
        json_object_set_new(x, "status", sim_json_str_or_null(e->status));
        json_object_set_new(x, "attempt", json_integer(e->attempt));
        json_object_set_new(x, "http_status", json_integer(e->http_status));
        json_object_set_new(x, "error", sim_json_str_or_null(e->error));
        json_object_set_new(x, "body", sim_json_str_or_null(e->body));
        json_object_set_new(x, "started_ms", json_integer((json_int_t)e->started_ms));
        json_object_set_new(x, "ts_ms", json_integer((json_int_t)e->ts_ms));
        json_array_append_new(arr, x);
    }
    o = json_object();
    json_object_set_new(o, "count", json_integer((json_int_t)json_array_size(arr)));
    json_object_set_new(o, "pushes", arr);
    sim_reply_json(r, 200, o);
}

static void
main_pushes_delete(struct sim_req *r)
{
    json_t *o = json_object();

    main_pushlog_clear();
    json_object_set_new(o, "ok", json_true());
    sim_reply_json(r, 200, o);
}

/* ------------------------------------------------------------------ */
/* control endpoints                                                   */

static json_t *
main_config_json(void)
{
    json_t *o = json_object();

    json_object_set_new(o, "listen", json_string(sim_cfg.listen_addr));
    json_object_set_new(o, "push_url", sim_json_str_or_null(sim_cfg.cd_push_url));
    json_object_set_new(o, "call_ms", json_integer(sim_cfg.call_ms));
    json_object_set_new(o, "ring_ms", json_integer(sim_cfg.ring_ms));
    json_object_set_new(o, "outcome", json_string(sim_cfg.outcome));
    json_object_set_new(o, "clouddialer_key", sim_json_str_or_null(sim_cfg.cd_key));
    json_object_set_new(o, "callerdesk_push_url", sim_json_str_or_null(sim_cfg.cdk_push_url));
    json_object_set_new(o, "callerdesk_push_method",
                        json_string(sim_cfg.cdk_push_get ? "GET" : "POST"));
    json_object_set_new(o, "quiet", json_boolean(sim_cfg.quiet));
    return o;
}

static void
main_config_get(struct sim_req *r)
{
    sim_reply_json(r, 200, main_config_json());
}

static void
main_config_post(struct sim_req *r)
{
    const char *why = NULL;
    json_t *j = sim_req_json(r, &why);
    json_t *v;
    long long call_ms = sim_cfg.call_ms;
    long long ring_ms = sim_cfg.ring_ms;
    const char *known[] = {"push_url",
                           "call_ms",
                           "ring_ms",
                           "outcome",
                           "clouddialer_key",
                           "callerdesk_push_url",
                           "callerdesk_push_method",
                           "quiet"};
    const char *key;
    json_t *val;

    if (!json_is_object(j)) {
        sim_reply_error(r, 400, "%s", j == NULL ? why : "Body must be a JSON object");
        return;
    }
    json_object_foreach(j, key, val)
    {
        size_t i;
        int found = 0;

        for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
            if (strcmp(key, known[i]) == 0) {
                found = 1;
            }
        }
        if (!found) {
            sim_reply_error(r, 400, "Unknown setting: %s", key);
            return;
        }
    }
    /* Check everything first, then apply: all or nothing. */
    v = json_object_get(j, "push_url");
    if (v != NULL && !json_is_null(v) &&
        (!json_is_string(v) || !sim_url_valid(json_string_value(v)))) {
        sim_reply_error(r, 400, "push_url must be an http:// URL or null");
        return;
    }
    v = json_object_get(j, "call_ms");
    if (v != NULL && !sim_json_int(v, 0, 86400000, &call_ms)) {
        sim_reply_error(r, 400, "call_ms must be an integer 0..86400000");
        return;
    }
    v = json_object_get(j, "ring_ms");
    if (v != NULL && !sim_json_int(v, 0, 86400000, &ring_ms)) {
        sim_reply_error(r, 400, "ring_ms must be an integer 0..86400000");
        return;
    }
    v = json_object_get(j, "outcome");
    if (v != NULL && (!json_is_string(v) || !sim_outcome_valid(json_string_value(v)))) {
        sim_reply_error(r, 400, "outcome must be one of ANSWER, NO_ANSWER, BUSY, FAILED, CANCELED");
        return;
    }
    v = json_object_get(j, "clouddialer_key");
    if (v != NULL && (!json_is_string(v) || json_string_length(v) == 0 ||
                      strlen(json_string_value(v)) != json_string_length(v))) {
        sim_reply_error(r, 400, "clouddialer_key must be a non-empty string");
        return;
    }
    v = json_object_get(j, "callerdesk_push_url");
    if (v != NULL && !json_is_null(v) &&
        (!json_is_string(v) || !sim_url_valid(json_string_value(v)))) {
        sim_reply_error(r, 400, "callerdesk_push_url must be an http:// URL or null");
        return;
    }
    v = json_object_get(j, "callerdesk_push_method");
    if (v != NULL && (!json_is_string(v) || (strcmp(json_string_value(v), "POST") != 0 &&
                                             strcmp(json_string_value(v), "GET") != 0))) {
        sim_reply_error(r, 400, "callerdesk_push_method must be \"POST\" or \"GET\"");
        return;
    }
    v = json_object_get(j, "quiet");
    if (v != NULL && !json_is_boolean(v)) {
        sim_reply_error(r, 400, "quiet must be a boolean");
        return;
    }

    v = json_object_get(j, "push_url");
    if (v != NULL) {
        free(sim_cfg.cd_push_url);
        sim_cfg.cd_push_url = json_is_string(v) ? sim_strdup(json_string_value(v)) : NULL;
    }
    sim_cfg.call_ms = (int)call_ms;
    sim_cfg.ring_ms = (int)ring_ms;
    v = json_object_get(j, "outcome");
    if (v != NULL) {
        snprintf(sim_cfg.outcome, sizeof(sim_cfg.outcome), "%s", json_string_value(v));
    }
    v = json_object_get(j, "clouddialer_key");
    if (v != NULL) {
        free(sim_cfg.cd_key);
        sim_cfg.cd_key = sim_strdup(json_string_value(v));
    }
    v = json_object_get(j, "callerdesk_push_url");
    if (v != NULL) {
        free(sim_cfg.cdk_push_url);
        sim_cfg.cdk_push_url = json_is_string(v) ? sim_strdup(json_string_value(v)) : NULL;
    }
    v = json_object_get(j, "callerdesk_push_method");
    if (v != NULL) {
        sim_cfg.cdk_push_get = strcmp(json_string_value(v), "GET") == 0;
    }
    v = json_object_get(j, "quiet");
    if (v != NULL) {
        sim_cfg.quiet = json_is_true(v);
    }
    sim_reply_json(r, 200, main_config_json());
}

static void
main_calls_get(struct sim_req *r)
{
    json_t *arr = json_array();
    json_t *o;
    size_t i;

    for (i = 0; i < main_nvendors; i++) {
        if (main_vendors[i]->calls_json != NULL) {
            main_vendors[i]->calls_json(arr);
        }
    }
    o = json_object();
    json_object_set_new(o, "count", json_integer((json_int_t)json_array_size(arr)));
    json_object_set_new(o, "calls", arr);
    sim_reply_json(r, 200, o);
}

static void
main_call_end(struct sim_req *r)
{
    const char *status = NULL;
    char err[200] = "";
    size_t i;

    if (r->body_len > 0) {
        const char *why = NULL;
        json_t *j = sim_req_json(r, &why);
        json_t *s;

        if (!json_is_object(j)) {
            sim_reply_error(r, 400, "%s", j == NULL ? why : "Body must be a JSON object");
            return;
        }
        s = json_object_get(j, "status");
        if (s != NULL && !json_is_null(s)) {
            if (!json_is_string(s) || !sim_outcome_valid(json_string_value(s))) {
                sim_reply_error(r, 400,
                                "status must be one of ANSWER, NO_ANSWER, BUSY, FAILED, CANCELED");
                return;
            }
            status = json_string_value(s);
        }
    }
    for (i = 0; i < main_nvendors; i++) {
        int rc;

        if (main_vendors[i]->call_end == NULL) {
            continue;
        }
        rc = main_vendors[i]->call_end(r->params[0], status, err, sizeof(err));
        if (rc == 0) {
            json_t *o = json_object();

            json_object_set_new(o, "ok", json_true());
            json_object_set_new(o, "call_id", sim_json_str_or_null(r->params[0]));
            sim_reply_json(r, 200, o);
            return;
        }
        if (rc < 0) {
            sim_reply_error(r, 409, "%s", err[0] ? err : "Cannot end the call");
            return;
        }
    }
    sim_reply_error(r, 404, "Call not found");
}

/* ------------------------------------------------------------------ */
/* dispatch                                                            */

static const char *
main_method_name(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    default:
        return "UNKNOWN";
    }
}

/* 1 for /_sim, /_sim/..., /_sink, /_sink/...: never faulted or logged. */
static int
main_is_control(const char *path)
{
    static const char *const roots[] = {"/_sim", "/_sink"};
    size_t i;

    for (i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
        size_t n = strlen(roots[i]);

        if (strncmp(path, roots[i], n) == 0 && (path[n] == '\0' || path[n] == '/')) {
            return 1;
        }
    }
    return 0;
}

static struct sim_req *
main_req_new(struct evhttp_request *req)
{
    struct sim_req *r = main_xcalloc(1, sizeof(*r));
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    struct evkeyval *kv;
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    size_t n;

    r->req = req;
    r->received_ms = sim_now_ms();
    snprintf(r->method, sizeof(r->method), "%s", main_method_name(evhttp_request_get_command(req)));
    r->path = sim_strdup(path != NULL && *path != '\0' ? path : "/");
    r->route_path = r->path;
    r->query = sim_strdup(query);

    n = 0;
    for (kv = in->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
        n++;
    }
    r->headers = main_xcalloc(n, sizeof(*r->headers));
    for (kv = in->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
        r->headers[r->nheaders].name = sim_strdup(kv->key);
        r->headers[r->nheaders].value = sim_strdup(kv->value);
        r->nheaders++;
    }

    r->body_len = evbuffer_get_length(body);
    r->body = main_xmalloc(r->body_len + 1);
    if (r->body_len > 0) {
        evbuffer_copyout(body, r->body, r->body_len);
    }
    r->body[r->body_len] = '\0';
    return r;
}

static void
main_gencb(struct evhttp_request *req, void *arg)
{
    struct sim_req *r = main_req_new(req);

    main_route_find(r);
    if (!main_is_control(r->path)) {
        struct sim_fault *f = faults_take(r);

        main_log_add(r, f ? faults_mode_name(f->mode) : NULL);
        if (f != NULL) {
            r->fault = faults_mode_name(f->mode);
            faults_apply(r, f);
            return;
        }
    }
    sim_process(r);
    sim_send(r);
}

/* ------------------------------------------------------------------ */
/* startup and shutdown                                                */

static void
main_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    sim_log("signal %d: exiting", (int)sig);
    event_base_loopbreak(sim_base);
}

static void
main_usage(FILE *to)
{
    fprintf(to, "usage: vendorsim [--listen HOST:PORT] [--port-file FILE]\n"
                "                 [--clouddialer-key KEY] [--push-url URL]\n"
                "                 [--getdesk-token TOKEN]\n"
                "                 [--callerdesk-authcode CODE] [--callerdesk-push-url URL]\n"
                "                 [--ccai-user USER] [--ccai-token TOKEN] [--ccai-push-url URL]\n"
                "                 [--call-ms N] [--ring-ms N]\n"
                "                 [--outcome ANSWER|NO_ANSWER|BUSY|FAILED|CANCELED] [--quiet]\n");
}

/* Parse "host:port" or "[v6]:port". 0 or -1. */
static int
main_parse_listen(const char *s)
{
    const char *colon;
    const char *host;
    size_t hlen;
    char *end;
    long port;

    if (s[0] == '[') {
        const char *rb = strchr(s, ']');

        if (rb == NULL || rb[1] != ':') {
            return -1;
        }
        host = s + 1;
        hlen = (size_t)(rb - host);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            return -1;
        }
        host = s;
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= sizeof(sim_cfg.listen_host)) {
        return -1;
    }
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno != 0 || end == colon + 1 || *end != '\0' || port < 0 || port > 65535) {
        return -1;
    }
    memcpy(sim_cfg.listen_host, host, hlen);
    sim_cfg.listen_host[hlen] = '\0';
    sim_cfg.listen_port = (int)port;
    return 0;
}

static int
main_parse_ms(const char *s, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 86400000) {
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* Parse argv into sim_cfg. 0, or -1 after printing why. */
static int
main_parse_args(int argc, char **argv)
{
    enum {
        O_LISTEN = 1,
        O_PORT_FILE,
        O_KEY,
        O_PUSH,
        O_CALL,
        O_RING,
        O_OUTCOME,
        O_QUIET,
        O_HELP,
        O_GD_TOKEN,
        O_CDK_AUTHCODE,
        O_CDK_PUSH,
        O_CCAI_USER,
        O_CCAI_TOKEN,
        O_CCAI_PUSH
    };
    static const struct option opts[] = {
        {"listen", required_argument, NULL, O_LISTEN},
        {"port-file", required_argument, NULL, O_PORT_FILE},
        {"clouddialer-key", required_argument, NULL, O_KEY},
        {"push-url", required_argument, NULL, O_PUSH},
        {"getdesk-token", required_argument, NULL, O_GD_TOKEN},
        {"callerdesk-authcode", required_argument, NULL, O_CDK_AUTHCODE},
        {"callerdesk-push-url", required_argument, NULL, O_CDK_PUSH},
        {"ccai-user", required_argument, NULL, O_CCAI_USER},
        {"ccai-token", required_argument, NULL, O_CCAI_TOKEN},
        {"ccai-push-url", required_argument, NULL, O_CCAI_PUSH},
        {"call-ms", required_argument, NULL, O_CALL},
        {"ring-ms", required_argument, NULL, O_RING},
        {"outcome", required_argument, NULL, O_OUTCOME},
        {"quiet", no_argument, NULL, O_QUIET},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_LISTEN:
            if (main_parse_listen(optarg) != 0) {
                fprintf(stderr, "vendorsim: bad --listen %s (want HOST:PORT)\n", optarg);
                return -1;
            }
            break;
        case O_PORT_FILE:
            free(sim_cfg.port_file);
            sim_cfg.port_file = sim_strdup(optarg);
            break;
        case O_KEY:
            if (*optarg == '\0') {
                fprintf(stderr, "vendorsim: --clouddialer-key must not be empty\n");
                return -1;
            }
            free(sim_cfg.cd_key);
            sim_cfg.cd_key = sim_strdup(optarg);
            break;
        case O_GD_TOKEN:
            if (*optarg == '\0') {
                fprintf(stderr, "vendorsim: --getdesk-token must not be empty\n");
                return -1;
            }
            free(sim_cfg.gd_token);
            sim_cfg.gd_token = sim_strdup(optarg);
            break;
        case O_CDK_AUTHCODE:
            if (*optarg == '\0') {
                fprintf(stderr, "vendorsim: --callerdesk-authcode must not be empty\n");
                return -1;
            }
            free(sim_cfg.cdk_authcode);
            sim_cfg.cdk_authcode = sim_strdup(optarg);
            break;
        case O_CDK_PUSH:
            if (!sim_url_valid(optarg)) {
                fprintf(stderr,
                        "vendorsim: bad --callerdesk-push-url %s (want http://host:port/path)\n",
                        optarg);
                return -1;
            }
            free(sim_cfg.cdk_push_url);
            sim_cfg.cdk_push_url = sim_strdup(optarg);
            break;
        case O_CCAI_USER:
            /* A colon would make the Basic credentials ambiguous. */
            if (*optarg == '\0' || strchr(optarg, ':') != NULL) {
                fprintf(stderr, "vendorsim: --ccai-user must be non-empty, without ':'\n");
                return -1;
            }
            free(sim_cfg.ccai_user);
            sim_cfg.ccai_user = sim_strdup(optarg);
            break;
        case O_CCAI_TOKEN:
            if (*optarg == '\0') {
                fprintf(stderr, "vendorsim: --ccai-token must not be empty\n");
                return -1;
            }
            free(sim_cfg.ccai_token);
            sim_cfg.ccai_token = sim_strdup(optarg);
            break;
        case O_CCAI_PUSH:
            if (!sim_url_valid(optarg)) {
                fprintf(stderr, "vendorsim: bad --ccai-push-url %s (want http://host:port/path)\n",
                        optarg);
                return -1;
            }
            free(sim_cfg.ccai_push_url);
            sim_cfg.ccai_push_url = sim_strdup(optarg);
            break;
        case O_PUSH:
            if (!sim_url_valid(optarg)) {
                fprintf(stderr, "vendorsim: bad --push-url %s (want http://host:port/path)\n",
                        optarg);
                return -1;
            }
            free(sim_cfg.cd_push_url);
            sim_cfg.cd_push_url = sim_strdup(optarg);
            break;
        case O_CALL:
            if (main_parse_ms(optarg, &sim_cfg.call_ms) != 0) {
                fprintf(stderr, "vendorsim: bad --call-ms %s\n", optarg);
                return -1;
            }
            break;
        case O_RING:
            if (main_parse_ms(optarg, &sim_cfg.ring_ms) != 0) {
                fprintf(stderr, "vendorsim: bad --ring-ms %s\n", optarg);
                return -1;
            }
            break;
        case O_OUTCOME:
            if (!sim_outcome_valid(optarg)) {
                fprintf(stderr, "vendorsim: bad --outcome %s\n", optarg);
                return -1;
            }
            snprintf(sim_cfg.outcome, sizeof(sim_cfg.outcome), "%s", optarg);
            break;
        case O_QUIET:
            sim_cfg.quiet = 1;
            break;
        case O_HELP:
            main_usage(stdout);
            exit(0);
        default:
            main_usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vendorsim: unexpected argument %s\n", argv[optind]);
        main_usage(stderr);
        return -1;
    }
    return 0;
}

/* Write the port to sim_cfg.port_file atomically. 0 or -1. */
static int
main_write_port_file(void)
{
    size_t n = strlen(sim_cfg.port_file) + 32;
    char *tmp = main_xmalloc(n);
    FILE *f;
    int ok;

    snprintf(tmp, n, "%s.tmp.%ld", sim_cfg.port_file, (long)getpid());
    f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "vendorsim: %s: %s\n", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    ok = fprintf(f, "%d\n", sim_cfg.listen_port) > 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, sim_cfg.port_file) != 0) {
        fprintf(stderr, "vendorsim: %s: %s\n", sim_cfg.port_file, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

static void
main_register_control(void)
{
    sim_route_add(NULL, "GET", "", "/_sim/requests", main_requests_get);
    sim_route_add(NULL, "DELETE", "", "/_sim/requests", main_requests_delete);
    sim_route_add(NULL, "GET", "", "/_sim/pushes", main_pushes_get);
    sim_route_add(NULL, "DELETE", "", "/_sim/pushes", main_pushes_delete);
    sim_route_add(NULL, "GET", "", "/_sim/config", main_config_get);
    sim_route_add(NULL, "POST", "", "/_sim/config", main_config_post);
    sim_route_add(NULL, "GET", "", "/_sim/calls", main_calls_get);
    sim_route_add(NULL, "POST", "", "/_sim/calls/{id}/end", main_call_end);
}

static void
main_cleanup(void)
{
    size_t i;

    for (i = main_nvendors; i > 0; i--) {
        if (main_vendors[i - 1]->cleanup != NULL) {
            main_vendors[i - 1]->cleanup();
        }
    }
    faults_cleanup();
    while (main_pushes != NULL) {
        main_push_free(main_pushes);
    }
    sink_cleanup();
    if (main_http != NULL) {
        evhttp_free(main_http);
        main_http = NULL;
    }
    if (main_log != NULL) {
        main_log_clear();
        free(main_log);
        main_log = NULL;
    }
    if (main_pushlog != NULL) {
        main_pushlog_clear();
        free(main_pushlog);
        main_pushlog = NULL;
    }
    for (i = 0; i < main_nroutes; i++) {
        free(main_routes[i].prefix);
        free(main_routes[i].pattern);
    }
    free(main_routes);
    main_routes = NULL;
    main_nroutes = 0;
    free(sim_cfg.port_file);
    free(sim_cfg.cd_key);
    free(sim_cfg.cd_push_url);
    free(sim_cfg.gd_token);
    free(sim_cfg.cdk_authcode);
    free(sim_cfg.cdk_push_url);
    free(sim_cfg.ccai_user);
    free(sim_cfg.ccai_token);
    free(sim_cfg.ccai_push_url);
    sim_cfg.port_file = sim_cfg.cd_key = sim_cfg.cd_push_url = sim_cfg.gd_token = NULL;
    sim_cfg.cdk_authcode = sim_cfg.cdk_push_url = NULL;
    sim_cfg.ccai_user = sim_cfg.ccai_token = sim_cfg.ccai_push_url = NULL;
}

int
main(int argc, char **argv)
{
    struct evhttp_bound_socket *bound;
    struct event *sigterm_ev;
    struct event *sigint_ev;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    int rc = 0;

    snprintf(sim_cfg.listen_host, sizeof(sim_cfg.listen_host), "127.0.0.1");
    sim_cfg.listen_port = 0;
    sim_cfg.cd_key = sim_strdup("cd-test-key");
    sim_cfg.gd_token = sim_strdup("gd-test-token");
    sim_cfg.cdk_authcode = sim_strdup("cdk-test-authcode");
    sim_cfg.ccai_user = sim_strdup("ccai-test");
    sim_cfg.ccai_token = sim_strdup("ccai-test-token");
    sim_cfg.call_ms = 300;
    sim_cfg.ring_ms = 100;
    snprintf(sim_cfg.outcome, sizeof(sim_cfg.outcome), "ANSWER");

    if (main_parse_args(argc, argv) != 0) {
        main_cleanup();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    sim_base = event_base_new();
    if (sim_base == NULL) {
        fprintf(stderr, "vendorsim: event_base_new failed\n");
        main_cleanup();
        return 1;
    }
    main_log = main_xcalloc(MAIN_LOG_MAX, sizeof(*main_log));
    main_pushlog = main_xcalloc(MAIN_PUSHLOG_MAX, sizeof(*main_pushlog));

    main_http = evhttp_new(sim_base);
    if (main_http == NULL) {
        fprintf(stderr, "vendorsim: evhttp_new failed\n");
        main_cleanup();
        event_base_free(sim_base);
        return 1;
    }
    evhttp_set_max_body_size(main_http, SIM_MAX_BODY);
    evhttp_set_max_headers_size(main_http, 64 * 1024);
    evhttp_set_allowed_methods(main_http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                              EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(main_http, main_gencb, NULL);

    main_register_control();
    faults_init();
    sink_init();
    callerdesk_init(); /* first: its /recordings/cd_* route must precede CloudDialer's */
    clouddialer_init();
    getdesk_init();
    ccai_init();

    bound = evhttp_bind_socket_with_handle(main_http, sim_cfg.listen_host,
                                           (unsigned short)sim_cfg.listen_port);
    if (bound == NULL) {
        fprintf(stderr, "vendorsim: cannot listen on %s:%d: %s\n", sim_cfg.listen_host,
                sim_cfg.listen_port, strerror(errno));
        main_cleanup();
        event_base_free(sim_base);
        return 1;
    }
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &sslen) == 0) {
        if (ss.ss_family == AF_INET) {
            sim_cfg.listen_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            sim_cfg.listen_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
    }
    if (strchr(sim_cfg.listen_host, ':') != NULL) {
        snprintf(sim_cfg.listen_addr, sizeof(sim_cfg.listen_addr), "[%s]:%d", sim_cfg.listen_host,
                 sim_cfg.listen_port);
    } else {
        snprintf(sim_cfg.listen_addr, sizeof(sim_cfg.listen_addr), "%s:%d", sim_cfg.listen_host,
                 sim_cfg.listen_port);
    }
    if (sim_cfg.port_file != NULL && main_write_port_file() != 0) {
        main_cleanup();
        event_base_free(sim_base);
        return 1;
    }

    sigterm_ev = evsignal_new(sim_base, SIGTERM, main_signal_cb, NULL);
    sigint_ev = evsignal_new(sim_base, SIGINT, main_signal_cb, NULL);
    if (sigterm_ev == NULL || sigint_ev == NULL) {
        fprintf(stderr, "vendorsim: cannot set up signals\n");
        rc = 1;
    } else {
        evsignal_add(sigterm_ev, NULL);
        evsignal_add(sigint_ev, NULL);
        printf("vendorsim listening on %s\n", sim_cfg.listen_addr);
        fflush(stdout);
        if (event_base_dispatch(sim_base) < 0) {
            fprintf(stderr, "vendorsim: event loop failed\n");
            rc = 1;
        }
    }

    main_cleanup();
    if (sigterm_ev != NULL) {
        event_free(sigterm_ev);
    }
    if (sigint_ev != NULL) {
        event_free(sigint_ev);
    }
    event_base_free(sim_base);
    sim_base = NULL;
    libevent_global_shutdown();
    return rc;
}
