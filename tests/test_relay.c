/*
 * test_relay.c: the durable webhook relay end to end: real redis-server,
 * simulator and callgate processes (gwtest), and a tenant receiver that runs
 * inside the test process (its own libevent loop on a thread), so that a
 * test can make an endpoint fail, answer Retry-After, hang, or be slow, and
 * read back exactly what arrived and when.
 *
 * Each test brings up the gateway with gwtest, then restarts callgate with a
 * "webhooks" section of its own (millisecond schedules, no jitter, short
 * visibility timeouts) and with the tenants' callback URLs pointing at the
 * receiver: acme at http://127.0.0.1:<port A>/hook/acme, globex at
 * http://127.0.0.1:<port B>/hook/globex (two ports, so two endpoints).
 * Events come from vendor pushes (CloudDialer): "ANSWER" without an end
 * time is call.answered, then "BUSY" with one is call.busy.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/wait.h>
#include <time.h>

#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "conf.h"
#include "helpers/gwtest.h"
#include "relay.h"

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the tenant receiver ------------------------------------------------- */

#define RX_MAX_HITS 8192
#define RX_MAX_HELD 256
#define RX_MAX_RULES 8

struct rx_hit {
    char name[32];
    char id[64];
    char ts[32];
    char sig[512];
    char *body;
    int64_t at_ms;
    int status; /* what the receiver answered; 0 while held */
};

/* How the receiver treats requests for one name. */
struct rx_rule {
    char name[32];
    int fail_count; /* answer fail_status to this many (-1: all) */
    int fail_status;
    char retry_after[64]; /* sent with failures when not empty */
    int hang;             /* hold every request until the rule changes */
    int delay_ms;         /* answer this late */
};

struct rx_held {
    struct evhttp_request *req;
    char name[32];
    int64_t until_ms;
    int status;
    char retry_after[64];
    size_t hit;
    int abort; /* answer 503 now: its client is gone (killed or cancelled) */
};

static struct {
    pthread_mutex_t mu;
    pthread_t thread;
    int running;
    int stop;
    struct event_base *base;
    struct evhttp *http;
    struct event *timer;
    int port[2];
    struct rx_hit hits[RX_MAX_HITS];
    size_t nhits;
    struct rx_rule rules[RX_MAX_RULES];
    struct rx_held held[RX_MAX_HELD];
    int max_held; /* most requests held at once, per the last rx_reset_max */
    char max_held_name[32];
} rx;

static struct rx_rule *
rx_rule_find(const char *name)
{
    size_t i;

    for (i = 0; i < RX_MAX_RULES; i++) {
        if (rx.rules[i].name[0] != '\0' && strcmp(rx.rules[i].name, name) == 0) {
            return &rx.rules[i];
        }
    }
    return NULL;
}

static void
rx_answer(struct evhttp_request *req, int status, const char *retry_after)
{
    struct evbuffer *b = evbuffer_new();

    if (retry_after != NULL && retry_after[0] != '\0') {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", retry_after);
    }
    evbuffer_add_printf(b, "{\"status\":%d}", status);
    evhttp_send_reply(req, status, "Answer", b);
    evbuffer_free(b);
}

static int
rx_held_count(const char *name)
{
    int i, n = 0;

    for (i = 0; i < RX_MAX_HELD; i++) {
        if (rx.held[i].req != NULL && strcmp(rx.held[i].name, name) == 0) {
            n++;
        }
    }
    return n;
}

static void
rx_on_request(struct evhttp_request *req, void *arg)
{
    const char *uri = evhttp_request_get_uri(req);
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    struct rx_hit *hit;
    struct rx_rule *rule;
    const char *v;
    size_t len = evbuffer_get_length(in);
    int status = 200, i, n;
    char ra[64] = "";

    if (strncmp(uri, "/hook/", 6) != 0 || rx.nhits >= RX_MAX_HITS) {
        rx_answer(req, 404, NULL);
        return;
    }
    pthread_mutex_lock(&rx.mu);
    hit = &rx.hits[rx.nhits];
    memset(hit, 0, sizeof(*hit));
    snprintf(hit->name, sizeof(hit->name), "%s", uri + 6);
    if ((v = evhttp_find_header(h, "webhook-id")) != NULL) {
        snprintf(hit->id, sizeof(hit->id), "%s", v);
    }
    if ((v = evhttp_find_header(h, "webhook-timestamp")) != NULL) {
        snprintf(hit->ts, sizeof(hit->ts), "%s", v);
    }
    if ((v = evhttp_find_header(h, "webhook-signature")) != NULL) {
        snprintf(hit->sig, sizeof(hit->sig), "%s", v);
    }
    hit->body = calloc(1, len + 1);
    evbuffer_copyout(in, hit->body, len);
    hit->at_ms = now_ms();
    rule = rx_rule_find(hit->name);
    if (rule != NULL && rule->fail_count != 0) {
        status = rule->fail_status;
        snprintf(ra, sizeof(ra), "%s", rule->retry_after);
        if (rule->fail_count > 0) {
            rule->fail_count--;
        }
    }
    if (rule != NULL && (rule->hang || rule->delay_ms > 0)) {
        for (i = 0; i < RX_MAX_HELD && rx.held[i].req != NULL; i++) {
        }
        if (i < RX_MAX_HELD) {
            rx.held[i].req = req;
            memcpy(rx.held[i].name, hit->name, sizeof(rx.held[i].name));
            rx.held[i].until_ms = hit->at_ms + rule->delay_ms;
            rx.held[i].status = status;
            snprintf(rx.held[i].retry_after, sizeof(rx.held[i].retry_after), "%s", ra);
            rx.held[i].hit = rx.nhits;
            rx.held[i].abort = 0;
            rx.nhits++;
            n = rx_held_count(hit->name);
            if (n > rx.max_held && strcmp(rx.max_held_name, hit->name) == 0) {
                rx.max_held = n;
            }
            pthread_mutex_unlock(&rx.mu);
            return;
        }
    }
    hit->status = status;
    rx.nhits++;
    pthread_mutex_unlock(&rx.mu);
    rx_answer(req, status, ra);
}

/* Every few ms: answer held requests whose time has come (or all, when stopping). */
static void
rx_on_timer(evutil_socket_t fd, short what, void *arg)
{
    int64_t now = now_ms();
    int i;

    pthread_mutex_lock(&rx.mu);
    for (i = 0; i < RX_MAX_HELD; i++) {
        struct rx_held *hd = &rx.held[i];
        const struct rx_rule *rule;
        if (hd->req == NULL) {
            continue;
        }
        rule = rx_rule_find(hd->name);
        if (rx.stop || hd->abort) {
            rx.hits[hd->hit].status = 503;
            rx_answer(hd->req, 503, NULL);
            hd->req = NULL;
        } else if ((rule == NULL || !rule->hang) && now >= hd->until_ms) {
            rx.hits[hd->hit].status = hd->status;
            rx_answer(hd->req, hd->status, hd->retry_after);
            hd->req = NULL;
        }
    }
    if (rx.stop) {
        event_base_loopbreak(rx.base);
    }
    pthread_mutex_unlock(&rx.mu);
}

static void *
rx_main(void *arg)
{
    event_base_dispatch(rx.base);
    return NULL;
}

static int
rx_bound_port(struct evhttp_bound_socket *s)
{
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);

    cr_assert_not_null(s);
    cr_assert_eq(getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&sin, &sl), 0);
    return ntohs(sin.sin_port);
}

static void
rx_start(void)
{
    struct timeval every = {0, 5000};

    memset(&rx, 0, sizeof(rx));
    pthread_mutex_init(&rx.mu, NULL);
    rx.base = event_base_new();
    rx.http = evhttp_new(rx.base);
    cr_assert_not_null(rx.http);
    evhttp_set_gencb(rx.http, rx_on_request, NULL);
    rx.port[0] = rx_bound_port(evhttp_bind_socket_with_handle(rx.http, "127.0.0.1", 0));
    rx.port[1] = rx_bound_port(evhttp_bind_socket_with_handle(rx.http, "127.0.0.1", 0));
    rx.timer = event_new(rx.base, -1, EV_PERSIST, rx_on_timer, NULL);
    event_add(rx.timer, &every);
    cr_assert_eq(pthread_create(&rx.thread, NULL, rx_main, NULL), 0);
    rx.running = 1;
}

static void
rx_stop(void)
{
    size_t i;

    if (!rx.running) {
        return;
    }
    pthread_mutex_lock(&rx.mu);
    rx.stop = 1;
    pthread_mutex_unlock(&rx.mu);
    pthread_join(rx.thread, NULL);
    event_free(rx.timer);
    evhttp_free(rx.http);
    event_base_free(rx.base);
    for (i = 0; i < rx.nhits; i++) {
        free(rx.hits[i].body);
    }
    pthread_mutex_destroy(&rx.mu);
    rx.running = 0;
}

/* Set (or, with everything 0, clear) the behaviour for name. */
static void
rx_rule(const char *name, int fail_count, int fail_status, const char *retry_after, int hang,
        int delay_ms)
{
    struct rx_rule *r;
    size_t i;

    pthread_mutex_lock(&rx.mu);
    r = rx_rule_find(name);
    for (i = 0; r == NULL && i < RX_MAX_RULES; i++) {
        if (rx.rules[i].name[0] == '\0') {
            r = &rx.rules[i];
        }
    }
    cr_assert_not_null(r);
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->fail_count = fail_count;
    r->fail_status = fail_status;
    snprintf(r->retry_after, sizeof(r->retry_after), "%s", retry_after != NULL ? retry_after : "");
    r->hang = hang;
    r->delay_ms = delay_ms;
    pthread_mutex_unlock(&rx.mu);
}

/*
 * The requests held for name belong to attempts that callgate gave up (a
 * killed replica, a cancelled attempt): answer them 503 so that they never
 * count as delivered, and wait until that is done.
 */
static void
rx_abort_held(const char *name)
{
    int i, left = 1, tries;

    for (tries = 0; left > 0 && tries < 500; tries++) {
        pthread_mutex_lock(&rx.mu);
        for (i = 0; i < RX_MAX_HELD; i++) {
            if (rx.held[i].req != NULL && strcmp(rx.held[i].name, name) == 0) {
                rx.held[i].abort = 1;
            }
        }
        left = rx_held_count(name);
        pthread_mutex_unlock(&rx.mu);
        if (left > 0) {
            gwtest_sleep_ms(5);
        }
    }
    cr_assert_eq(left, 0);
}

/* Copies of the hits for name (all names when NULL), in arrival order. Caller frees with rx_free.
 */
static size_t
rx_hits(const char *name, struct rx_hit **out)
{
    size_t i, n = 0;

    pthread_mutex_lock(&rx.mu);
    *out = calloc(rx.nhits + 1, sizeof(**out));
    for (i = 0; i < rx.nhits; i++) {
        if (name == NULL || strcmp(rx.hits[i].name, name) == 0) {
            (*out)[n] = rx.hits[i];
            (*out)[n].body = strdup(rx.hits[i].body);
            n++;
        }
    }
    pthread_mutex_unlock(&rx.mu);
    return n;
}

static void
rx_free(struct rx_hit *h, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free(h[i].body);
    }
    free(h);
}

/* Hits for name (answered with status, or any when status is -1). */
static size_t
rx_count(const char *name, int status)
{
    size_t i, n = 0;

    pthread_mutex_lock(&rx.mu);
    for (i = 0; i < rx.nhits; i++) {
        if (strcmp(rx.hits[i].name, name) == 0 && (status < 0 || rx.hits[i].status == status)) {
            n++;
        }
    }
    pthread_mutex_unlock(&rx.mu);
    return n;
}

/* Distinct webhook-ids that name has answered 200. */
static size_t
rx_delivered(const char *name)
{
    struct rx_hit *h;
    size_t n = rx_hits(name, &h), i, j, d = 0;

    for (i = 0; i < n; i++) {
        int seen = 0;
        if (h[i].status != 200) {
            continue;
        }
        for (j = 0; j < i && !seen; j++) {
            seen = h[j].status == 200 && strcmp(h[j].id, h[i].id) == 0;
        }
        d += !seen;
    }
    rx_free(h, n);
    return d;
}

/* Wait until count() >= n; returns the last count. */
static size_t
rx_wait(const char *name, int status, size_t n, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    size_t got;

    while ((got = rx_count(name, status)) < n && now_ms() < end) {
        gwtest_sleep_ms(10);
    }
    return got;
}

static size_t
rx_wait_delivered(const char *name, size_t n, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    size_t got;

    while ((got = rx_delivered(name)) < n && now_ms() < end) {
        gwtest_sleep_ms(20);
    }
    return got;
}

/* ---- the gateway ---------------------------------------------------------- */

static struct gwtest gw;
static int gw_started;
static struct proc gw2; /* a second replica, when a test starts one */
static char gw2_conf[400], gw2_log[400];
static int gw2_port;

struct rt_opts {
    const char *webhooks;  /* the "webhooks" object, JSON text */
    long cb_timeout_ms;    /* callbacks.timeout_ms (default 1500) */
    long drain_timeout_ms; /* limits.drain_timeout_ms (default gwtest's) */
};

/* The configuration gwtest wrote, with ours on top, written to path with listen port. */
static void
rt_write_conf(const char *path, int port, const struct rt_opts *o)
{
    json_t *conf = json_load_file(gw.conf_path, 0, NULL), *wh;
    json_error_t err;
    char url[128], listen[64];

    cr_assert_not_null(conf);
    wh = json_loads(o->webhooks, 0, &err);
    cr_assert_not_null(wh, "webhooks: %s", err.text);
    json_object_set_new(conf, "webhooks", wh);
    json_object_set_new(json_object_get(conf, "callbacks"), "timeout_ms",
                        json_integer(o->cb_timeout_ms > 0 ? o->cb_timeout_ms : 1500));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook/acme", rx.port[0]);
    json_object_set_new(json_array_get(json_object_get(conf, "tenants"), 0), "callback_url",
                        json_string(url));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook/globex", rx.port[1]);
    json_object_set_new(json_array_get(json_object_get(conf, "tenants"), 1), "callback_url",
                        json_string(url));
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    json_object_set_new(conf, "listen", json_string(listen));
    json_object_set_new(conf, "log_level", json_string("info"));
    cr_assert_eq(json_dump_file(conf, path, JSON_INDENT(2)), 0);
    json_decref(conf);
}

static void
rt_setup(const struct rt_opts *o)
{
    struct gwtest_opts go = {.no_push = 1, .drain_timeout_ms = o->drain_timeout_ms};
    int st;

    rx_start();
    gwtest_start(&gw, &go);
    gw_started = 1;
    st = gwtest_gateway_stop(&gw, SIGTERM, 10000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "callgate did not exit 0 (%d)", st);
    rt_write_conf(gw.conf_path, gw.gw_port, o);
    gwtest_gateway_start(&gw);
    cr_assert(gwtest_wait_ready(&gw, 10000), "callgate never became ready");
}

/* A second callgate on the same Redis, with the same configuration on another port. */
static void
rt_replica2_start(const struct rt_opts *o)
{
    const char *bin = getenv("CG_CALLGATE");
    const char *argv[] = {bin != NULL && bin[0] != '\0' ? bin : CG_BUILDDIR "/src/callgate", "-c",
                          gw2_conf, NULL};

    if (gw2_port == 0) {
        do {
            gw2_port = proc_free_port();
        } while (gw2_port == gw.gw_port || gw2_port == gw.sim_port);
        snprintf(gw2_conf, sizeof(gw2_conf), "%s/callgate2.json", gw.dir);
        snprintf(gw2_log, sizeof(gw2_log), "%s/callgate2.log", gw.dir);
        rt_write_conf(gw2_conf, gw2_port, o);
    }
    cr_assert_eq(proc_start(&gw2, argv, NULL, gw2_log), 0);
    if (proc_wait_port(gw2_port, 10000) != 0) {
        proc_dump_log(gw2_log, 4000);
        cr_assert_fail("replica 2 did not start");
    }
}

static void
teardown(void)
{
    int st = 0;

    rx_stop();
    if (gw2.pid > 0) {
        st = proc_stop(&gw2, SIGTERM, 15000);
        if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
            proc_dump_log(gw2_log, 8000);
        }
    }
    gw2_port = 0;
    if (gw_started) {
        gwtest_stop(&gw);
    }
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        fprintf(stderr, "replica 2 did not exit 0 on SIGTERM (status %d)\n", st);
        abort();
    }
}

/* One suite: criterion's parallel runner leaked a little with two here (LSan). */
TestSuite(relay, .fini = teardown, .timeout = 90);

/* Place a call for key (with extra JSON members, e.g. a callback_url); its id into id. */
static void
rt_call(const char *key, const char *extra, char *id, size_t idlen)
{
    char body[512];
    struct http_resp r;

    snprintf(body, sizeof(body), "{\"to\": \"+919876543210\", \"agent\": \"agent.017\"%s%s}",
             extra != NULL ? ", " : "", extra != NULL ? extra : "");
    cr_assert_eq(gw_post_call(&gw, key, NULL, body, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    snprintf(id, idlen, "%s", jstr(r.json, "id"));
    http_resp_free(&r);
}

/* A CloudDialer push for call id to base; ended: with an end time (a final status). */
static void
rt_push(const char *base, const char *token, const char *id, const char *status, int ended)
{
    char url[256], body[768];
    const char *headers[] = {"Content-Type: application/json", NULL};
    struct http_resp r;

    snprintf(url, sizeof(url), "%s/v1/webhooks/clouddialer/%s", base, token);
    snprintf(body, sizeof(body),
             "{\"call_id\":\"cd-%s\",\"uuid\":\"%s\",\"status\":\"%s\",\"duration\":42,"
             "\"start_time\":\"2026-07-03T10:00:00Z\",\"end_time\":%s}",
             id, id, status, ended ? "\"2026-07-03T10:00:42Z\"" : "null");
    cr_assert_eq(http_do("POST", url, headers, body, strlen(body), 10000, &r), 0);
    cr_assert_eq(r.status, 200, "push %s: %ld %s", status, r.status, r.body);
    http_resp_free(&r);
}

/* A call for acme with one event (call.answered); its id into id. */
static void
rt_event(char *id, size_t idlen)
{
    rt_call(GWTEST_ACME_KEY, NULL, id, idlen);
    rt_push(gw.base, GWTEST_ACME_TOKEN, id, "ANSWER", 0);
}

static long
json_int_member(const char *body, const char *member)
{
    json_t *j = json_loads(body, 0, NULL);
    long v = (long)json_integer_value(json_object_get(j, member));

    json_decref(j);
    return v;
}

static json_t *
rt_admin_json(const char *method, const char *path, const char *body, long want)
{
    struct http_resp r;
    json_t *j;

    cr_assert_eq(gw_admin(&gw, GWTEST_ADMIN_TOKEN, method, path, body, &r), 0);
    cr_assert_eq(r.status, want, "%s %s: %ld %s", method, path, r.status, r.body);
    j = json_incref(r.json);
    http_resp_free(&r);
    return j;
}

/* The deliveries GET /admin/deliveries lists for the query; caller decrefs. */
static json_t *
rt_list(const char *query)
{
    char path[256];
    json_t *j, *data;

    snprintf(path, sizeof(path), "/admin/deliveries?%s", query);
    j = rt_admin_json("GET", path, NULL, 200);
    data = json_incref(json_object_get(j, "data"));
    cr_assert(json_is_array(data));
    json_decref(j);
    return data;
}

/* Wait until the list for query has n entries; returns it. */
static json_t *
rt_wait_list(const char *query, size_t n, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    json_t *data = rt_list(query);

    while (json_array_size(data) != n && now_ms() < end) {
        json_decref(data);
        gwtest_sleep_ms(50);
        data = rt_list(query);
    }
    return data;
}

/* An integer answer (or the first element of an array answer) of "verb key [arg]". */
static long long
rt_redis_int(const char *verb, const char *key, const char *arg)
{
    struct redisReply *rep = arg != NULL ? redis_fixture_cmd(&gw.redis, "%s %s %s", verb, key, arg)
                                         : redis_fixture_cmd(&gw.redis, "%s %s", verb, key);
    long long v = -1;

    cr_assert_not_null(rep);
    if (rep->type == REDIS_REPLY_INTEGER) {
        v = rep->integer;
    } else if (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
               rep->element[0]->type == REDIS_REPLY_INTEGER) {
        v = rep->element[0]->integer;
    } else {
        fprintf(stderr, "%s %s -> %s\n", verb, key, rep->str != NULL ? rep->str : "?");
    }
    freeReplyObject(rep);
    return v;
}

/* On a failure: what Redis holds for tenant and the end of callgate's log. */
static void
rt_dump(const char *tenant)
{
    char key[128];
    struct redisReply *rep;
    size_t i;

    snprintf(key, sizeof(key), "cg:relay:q:%s", tenant);
    fprintf(stderr, "XLEN %lld, XPENDING %lld, tenants %lld\n", rt_redis_int("XLEN", key, NULL),
            rt_redis_int("XPENDING", key, "relay"),
            rt_redis_int("SCARD", "cg:relay:tenants", NULL));
    snprintf(key, sizeof(key), "cg:relay:idx:pending:%s", tenant);
    rep = redis_fixture_cmd(&gw.redis, "ZRANGE %s 0 9", key);
    for (i = 0; rep != NULL && rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
        struct redisReply *h =
            redis_fixture_cmd(&gw.redis, "HMGET cg:relay:d:%s state attempts claims entry lease",
                              rep->element[i]->str);
        if (h != NULL && h->type == REDIS_REPLY_ARRAY && h->elements == 5) {
            fprintf(stderr, "  %s: state %s attempts %s claims %s entry %s lease %s\n",
                    rep->element[i]->str, h->element[0]->str, h->element[1]->str,
                    h->element[2]->str, h->element[3]->str, h->element[4]->str);
        }
        freeReplyObject(h);
    }
    freeReplyObject(rep);
    proc_dump_log(gw.gw_log, 6000);
}

/* Wait until name has n distinct deliveries; on a timeout show why, then fail. */
static void
rt_expect_delivered(const char *name, const char *tenant, size_t n, int timeout_ms)
{
    size_t got = rx_wait_delivered(name, n, timeout_ms), i;
    int by_status[600] = {0};

    if (got == n) {
        return;
    }
    pthread_mutex_lock(&rx.mu);
    for (i = 0; i < rx.nhits; i++) {
        by_status[rx.hits[i].status >= 0 && rx.hits[i].status < 600 ? rx.hits[i].status : 0]++;
    }
    pthread_mutex_unlock(&rx.mu);
    for (i = 0; i < 600; i++) {
        if (by_status[i] > 0) {
            fprintf(stderr, "receiver: %d answered %zu\n", by_status[i], i);
        }
    }
    rt_dump(tenant);
    cr_assert_fail("%s: %zu of %zu delivered", name, got, n);
}

/* Nothing left claimed or queued for tenant (I4 of RELIABILITY.md). */
static void
rt_assert_quiet(const char *tenant)
{
    char key[128];
    int64_t end = now_ms() + 5000;
    long long pending;

    snprintf(key, sizeof(key), "cg:relay:q:%s", tenant);
    while ((pending = rt_redis_int("XPENDING", key, "relay")) > 0 && now_ms() < end) {
        gwtest_sleep_ms(50);
    }
    if (pending != 0) {
        rt_dump(tenant);
    }
    cr_assert_eq(pending, 0, "%lld entries still pending for %s", pending, tenant);
    snprintf(key, sizeof(key), "cg:relay:idx:pending:%s", tenant);
    cr_assert_eq(rt_redis_int("ZCARD", key, NULL), 0, "deliveries still pending for %s", tenant);
    cr_assert_eq(rt_redis_int("ZCARD", "cg:relay:idx:pending", NULL), 0);
}

/* Standard Webhooks, verified independently of relay_sign (OpenSSL directly). */
static int
verify_signature(const char *secret, const char *id, const char *ts, const char *body,
                 const char *header)
{
    unsigned char key[128], mac[EVP_MAX_MD_SIZE];
    char content[65536], want[128], *copy, *tok, *save = NULL;
    unsigned int maclen = 0;
    int kl, found = 0;

    if (strncmp(secret, "whsec_", 6) == 0) {
        secret += 6;
    }
    kl = EVP_DecodeBlock(key, (const unsigned char *)secret, (int)strlen(secret));
    if (kl <= 0) {
        return 0;
    }
    kl -= (int)(strlen(secret) > 0 && secret[strlen(secret) - 1] == '=') +
          (int)(strlen(secret) > 1 && secret[strlen(secret) - 2] == '=');
    snprintf(content, sizeof(content), "%s.%s.%s", id, ts, body);
    HMAC(EVP_sha256(), key, kl, (const unsigned char *)content, strlen(content), mac, &maclen);
    memcpy(want, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)want + 3, mac, (int)maclen);
    copy = strdup(header);
    for (tok = strtok_r(copy, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save)) {
        found |= strcmp(tok, want) == 0;
    }
    free(copy);
    return found;
}

/* ---- unit: signing and configuration ------------------------------------- */

/* The test vector published with the Standard Webhooks specification. */
Test(relay, signature_matches_the_standard_webhooks_vector)
{
    const char *secrets[] = {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"};
    const char *body = "{\"test\": 2432232314}";
    char *sig =
        relay_sign(secrets, 1, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body));

    cr_assert_not_null(sig);
    cr_assert_str_eq(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    cr_assert(
        verify_signature(secrets[0], "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body, sig));
    free(sig);
}

static struct conf *
load_webhooks(const char *webhooks, char **errors)
{
    char text[2048];

    snprintf(text, sizeof(text),
             "{\"listen\": \"127.0.0.1:8080\", \"callbacks\": {\"timeout_ms\": 1000},"
             " \"vendors\": {\"clouddialer\": {\"base_url\": \"https://vendor.test\","
             " \"api_key\": \"k\", \"from_number\": \"+919800000000\"}},"
             " \"tenants\": [{\"id\": \"acme\", \"api_key_sha256\": "
             "\"0000000000000000000000000000000000000000000000000000000000000000\","
             " \"default_country\": \"IN\", \"webhook_secret\": \"%s\","
             " \"vendors\": [\"clouddialer\"]}]%s%s}",
             GWTEST_SECRET, webhooks != NULL ? ", \"webhooks\": " : "",
             webhooks != NULL ? webhooks : "");
    return conf_load_string(text, "test.json", errors);
}

Test(relay, webhooks_config_defaults_and_checks)
{
    char *errors = NULL;
    struct conf *c = load_webhooks(NULL, &errors);
    static const char *const bad[][2] = {
        {"{\"visibility_timeout_ms\": 1000}", "webhooks.visibility_timeout_ms"},
        {"{\"schedule_s\": [5], \"schedule_ms\": [5]}", "webhooks.schedule_ms"},
        {"{\"schedule_s\": [0]}", "webhooks.schedule_s"},
        {"{\"schedule_s\": []}", "webhooks.schedule_s"},
        {"{\"schedule_ms\": \"fast\"}", "webhooks.schedule_ms"},
        {"{\"per_endpoint_concurrency\": 0}", "webhooks.per_endpoint_concurrency"},
        {"{\"jitter\": 1}", "webhooks.jitter"},
        {"{\"retries\": 3}", "webhooks"},
    };
    size_t i;

    cr_assert_not_null(c, "%s", errors);
    cr_assert_eq(c->webhooks.nschedule, 10);
    cr_assert_eq(c->webhooks.schedule_ms[0], 5000);
    cr_assert_eq(c->webhooks.schedule_ms[8], 43200000);
    cr_assert_eq(c->webhooks.schedule_ms[9], 86400000);
    cr_assert_eq(c->webhooks.max_age_s, 259200);
    cr_assert_eq(c->webhooks.max_attempts, 0);
    cr_assert_eq(c->webhooks.visibility_timeout_ms, 60000);
    cr_assert_eq(c->webhooks.poll_interval_ms, 200);
    cr_assert_eq(c->webhooks.per_endpoint_concurrency, 4);
    cr_assert_eq(c->webhooks.max_concurrency, 64);
    cr_assert_eq(c->webhooks.jitter, 1);
    conf_unref(c);
    c = load_webhooks("{\"schedule_ms\": [50, 100], \"max_attempts\": 3, \"jitter\": false}",
                      &errors);
    cr_assert_not_null(c, "%s", errors);
    cr_assert_eq(c->webhooks.nschedule, 2);
    cr_assert_eq(c->webhooks.schedule_ms[1], 100);
    cr_assert_eq(c->webhooks.jitter, 0);
    conf_unref(c);
    c = load_webhooks("{\"schedule_s\": [1, 60]}", &errors);
    cr_assert_not_null(c, "%s", errors);
    cr_assert_eq(c->webhooks.schedule_ms[1], 60000);
    conf_unref(c);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errors = NULL;
        c = load_webhooks(bad[i][0], &errors);
        cr_assert_null(c, "%s was accepted", bad[i][0]);
        cr_assert_not_null(errors);
        cr_assert_not_null(strstr(errors, bad[i][1]), "%s: %s", bad[i][0], errors);
        free(errors);
    }
}

/* ---- retries --------------------------------------------------------------- */

/*
 * Failing three times then answering: four attempts, one webhook-id, the same
 * body, each signature valid for its own fresh timestamp, the schedule's
 * steps between them, and nothing left behind in Redis.
 */
Test(relay, retries_until_success_with_one_id_and_fresh_signatures)
{
    struct rt_opts o = {.webhooks = "{\"schedule_ms\": [200, 400, 800], \"jitter\": false,"
                                    " \"poll_interval_ms\": 50}"};
    static const long steps[] = {200, 400, 800};
    char id[64];
    struct rx_hit *h;
    size_t n, i;
    json_t *ev;

    rt_setup(&o);
    rx_rule("acme", 3, 500, NULL, 0, 0);
    rt_event(id, sizeof(id));
    cr_assert_eq(rx_wait("acme", 200, 1, 10000), 1, "never delivered");
    n = rx_hits("acme", &h);
    cr_assert_eq(n, 4, "%zu attempts", n);
    for (i = 0; i < n; i++) {
        long long ts = atoll(h[i].ts);
        cr_assert_str_eq(h[i].id, h[0].id, "webhook-id changed");
        cr_assert_str_eq(h[i].body, h[0].body, "the body changed between attempts");
        cr_assert(verify_signature(GWTEST_SECRET, h[i].id, h[i].ts, h[i].body, h[i].sig),
                  "attempt %zu: signature does not verify", i + 1);
        cr_assert(ts > now_ms() / 1000 - 60 && ts <= now_ms() / 1000 + 1, "stale timestamp");
        cr_assert_eq(h[i].status, i < 3 ? 500 : 200);
        if (i > 0) {
            long gap = (long)(h[i].at_ms - h[i - 1].at_ms);
            cr_assert(gap >= steps[i - 1] - 10 && gap < steps[i - 1] + 700,
                      "retry %zu came %ld ms after the previous attempt (schedule %ld)", i, gap,
                      steps[i - 1]);
        }
    }
    ev = json_loads(h[0].body, 0, NULL);
    cr_assert_str_eq(jstr(ev, "id"), h[0].id);
    cr_assert_str_eq(jstr(ev, "type"), "call.answered");
    cr_assert_str_eq(jstr(json_object_get(ev, "data"), "id"), id);
    cr_assert_eq(json_integer_value(json_object_get(ev, "sequence")), 1);
    json_decref(ev);
    rx_free(h, n);
    rt_assert_quiet("acme");
}

/* 503 with Retry-After (seconds, then an HTTP date) pushes the next attempt back. */
Test(relay, retry_after_is_honoured)
{
    struct rt_opts o = {
        .webhooks = "{\"schedule_ms\": [100], \"jitter\": false, \"poll_interval_ms\": 50}"};
    char id[64], date[64];
    struct rx_hit *h;
    size_t n;
    long gap;
    time_t later;
    struct tm tm;

    rt_setup(&o);
    rx_rule("acme", 1, 503, "2", 0, 0);
    rt_event(id, sizeof(id));
    cr_assert_eq(rx_wait("acme", 200, 1, 8000), 1);
    n = rx_hits("acme", &h);
    cr_assert_eq(n, 2);
    gap = (long)(h[1].at_ms - h[0].at_ms);
    cr_assert(gap >= 1950 && gap < 3500, "Retry-After: 2 -> retried after %ld ms", gap);
    rx_free(h, n);

    later = time(NULL) + 3;
    gmtime_r(&later, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    rx_rule("acme", 1, 429, date, 0, 0);
    rt_push(gw.base, GWTEST_ACME_TOKEN, id, "BUSY", 1);
    cr_assert_eq(rx_wait("acme", 200, 2, 8000), 2);
    n = rx_hits("acme", &h);
    cr_assert_eq(n, 4);
    gap = (long)(h[3].at_ms - h[2].at_ms);
    cr_assert(gap >= 1500 && gap < 4500, "Retry-After: <date in 3 s> -> retried after %ld ms", gap);
    rx_free(h, n);
}

/* 410 Gone: dead at once, never retried. */
Test(relay, gone_is_dead_lettered_at_once)
{
    struct rt_opts o = {.webhooks =
                            "{\"schedule_ms\": [50], \"jitter\": false, \"poll_interval_ms\": 50}"};
    char id[64];
    json_t *dead, *d;

    rt_setup(&o);
    rx_rule("acme", -1, 410, NULL, 0, 0);
    rt_event(id, sizeof(id));
    cr_assert_eq(rx_wait("acme", 410, 1, 5000), 1);
    dead = rt_wait_list("state=dead&tenant=acme", 1, 5000);
    cr_assert_eq(json_array_size(dead), 1);
    gwtest_sleep_ms(500);
    cr_assert_eq(rx_count("acme", -1), 1, "a 410 was retried");
    d = json_array_get(dead, 0);
    cr_assert_str_eq(jstr(d, "state"), "dead");
    cr_assert_str_eq(jstr(d, "call_id"), id);
    cr_assert_eq(json_integer_value(json_object_get(d, "last_status")), 410);
    cr_assert_eq(json_integer_value(json_object_get(d, "attempts")), 1);
    cr_assert_not_null(strstr(jstr(d, "reason"), "410"));
    json_decref(dead);
}

/*
 * After the last attempt a delivery is dead: listed (paged) with its last
 * status and error, gone from the pending list; replay by id and replay of
 * all a tenant's dead letters deliver them with their original webhook-id.
 */
Test(relay, dead_letters_are_listed_and_replayed)
{
    struct rt_opts o = {.webhooks =
                            "{\"schedule_ms\": [50, 50], \"max_attempts\": 3, \"jitter\": false,"
                            " \"poll_interval_ms\": 50}"};
    char id1[64], id2[64], path[160], cursor[80];
    json_t *dead, *page, *j, *d;
    struct http_resp r;
    const char *evt1;
    char evt1c[64];
    size_t i;
    static const char *const bad[] = {"state=bogus", "limit=0",      "limit=201",
                                      "color=red",   "tenant=a%20b", "cursor=%3Bx"};

    rt_setup(&o);
    rx_rule("acme", -1, 500, NULL, 0, 0);
    rt_event(id1, sizeof(id1));
    rt_event(id2, sizeof(id2));
    cr_assert_eq(rx_wait("acme", 500, 6, 8000), 6);
    dead = rt_wait_list("state=dead&tenant=acme", 2, 5000);
    cr_assert_eq(json_array_size(dead), 2);
    gwtest_sleep_ms(300);
    cr_assert_eq(rx_count("acme", -1), 6, "more than max_attempts attempts");
    for (i = 0; i < 2; i++) {
        d = json_array_get(dead, i);
        cr_assert_str_eq(jstr(d, "state"), "dead");
        cr_assert_str_eq(jstr(d, "tenant"), "acme");
        cr_assert_str_eq(jstr(d, "type"), "call.answered");
        cr_assert_eq(json_integer_value(json_object_get(d, "attempts")), 3);
        cr_assert_eq(json_integer_value(json_object_get(d, "last_status")), 500);
        cr_assert_str_eq(jstr(d, "last_error"), "HTTP 500");
        cr_assert(json_is_null(json_object_get(d, "next_attempt_at")));
        cr_assert_not_null(jstr(d, "created_at"));
        cr_assert_not_null(strstr(jstr(d, "url"), "/hook/acme"));
    }
    /* Newest first: the second call's event heads the list. */
    cr_assert_str_eq(jstr(json_array_get(dead, 0), "call_id"), id2);
    cr_assert_str_eq(jstr(json_array_get(dead, 1), "call_id"), id1);
    evt1 = jstr(json_array_get(dead, 1), "id");
    snprintf(evt1c, sizeof(evt1c), "%s", evt1);
    json_decref(dead);
    dead = rt_list("state=dead");
    cr_assert_eq(json_array_size(dead), 2, "the all-tenants list");
    json_decref(dead);
    dead = rt_list("state=pending&tenant=acme");
    cr_assert_eq(json_array_size(dead), 0);
    json_decref(dead);

    /* Paging. */
    j = rt_admin_json("GET", "/admin/deliveries?state=dead&tenant=acme&limit=1", NULL, 200);
    page = json_object_get(j, "data");
    cr_assert_eq(json_array_size(page), 1);
    cr_assert_str_eq(jstr(json_array_get(page, 0), "call_id"), id2);
    cr_assert_not_null(jstr(j, "next_cursor"));
    snprintf(cursor, sizeof(cursor), "%s", jstr(j, "next_cursor"));
    json_decref(j);
    snprintf(path, sizeof(path), "/admin/deliveries?state=dead&tenant=acme&limit=1&cursor=%s",
             cursor);
    j = rt_admin_json("GET", path, NULL, 200);
    page = json_object_get(j, "data");
    cr_assert_eq(json_array_size(page), 1);
    cr_assert_str_eq(jstr(json_array_get(page, 0), "call_id"), id1);
    cr_assert(json_is_null(json_object_get(j, "next_cursor")));
    json_decref(j);

    /* Bad input. */
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(path, sizeof(path), "/admin/deliveries?%s", bad[i]);
        cr_assert_eq(gw_admin(&gw, GWTEST_ADMIN_TOKEN, "GET", path, NULL, &r), 0);
        assert_problem(&r, 400, "validation");
        http_resp_free(&r);
    }
    cr_assert_eq(gw_admin(&gw, NULL, "GET", "/admin/deliveries", NULL, &r), 0);
    cr_assert(r.status == 401 || r.status == 404, "no admin token: %ld", r.status);
    http_resp_free(&r);
    cr_assert_eq(gw_admin(&gw, GWTEST_ADMIN_TOKEN, "POST",
                          "/admin/deliveries/evt_doesnotexist0000/replay", NULL, &r),
                 0);
    assert_problem(&r, 404, "not-found");
    http_resp_free(&r);
    cr_assert_eq(
        gw_admin(&gw, GWTEST_ADMIN_TOKEN, "POST", "/admin/deliveries/evt%21x/replay", NULL, &r), 0);
    cr_assert(r.status == 400 || r.status == 404, "bad id: %ld", r.status);
    http_resp_free(&r);
    cr_assert_eq(gw_admin(&gw, GWTEST_ADMIN_TOKEN, "POST", "/admin/deliveries/replay", "{}", &r),
                 0);
    assert_problem(&r, 400, "validation");
    http_resp_free(&r);
    cr_assert_eq(gw_admin(&gw, GWTEST_ADMIN_TOKEN, "POST", "/admin/deliveries/replay",
                          "{\"tenant\": \"nosuchtenant\"}", &r),
                 0);
    assert_problem(&r, 404, "not-found");
    http_resp_free(&r);

    /* The endpoint is back: replay one, then the rest. */
    rx_rule("acme", 0, 0, NULL, 0, 0);
    snprintf(path, sizeof(path), "/admin/deliveries/%s/replay", evt1c);
    j = rt_admin_json("POST", path, NULL, 202);
    cr_assert_str_eq(jstr(j, "state"), "queued");
    json_decref(j);
    cr_assert_eq(rx_wait("acme", 200, 1, 5000), 1);
    {
        struct rx_hit *h;
        size_t n = rx_hits("acme", &h);
        cr_assert_str_eq(h[n - 1].id, evt1c, "the replay has the original webhook-id");
        cr_assert(
            verify_signature(GWTEST_SECRET, h[n - 1].id, h[n - 1].ts, h[n - 1].body, h[n - 1].sig));
        rx_free(h, n);
    }
    dead = rt_wait_list("state=dead&tenant=acme", 1, 3000);
    cr_assert_eq(json_array_size(dead), 1);
    cr_assert_str_eq(jstr(json_array_get(dead, 0), "call_id"), id2);
    json_decref(dead);
    j = rt_admin_json("POST", "/admin/deliveries/replay", "{\"tenant\": \"acme\"}", 202);
    cr_assert_eq(json_integer_value(json_object_get(j, "replayed")), 1);
    json_decref(j);
    rt_expect_delivered("acme", "acme", 2, 5000);
    dead = rt_list("state=dead&tenant=acme");
    cr_assert_eq(json_array_size(dead), 0);
    json_decref(dead);
    /* Delivered: its id is unknown now. */
    cr_assert_eq(gw_admin(&gw, GWTEST_ADMIN_TOKEN, "POST", path, NULL, &r), 0);
    assert_problem(&r, 404, "not-found");
    http_resp_free(&r);
    rt_assert_quiet("acme");
}

/* ---- crash safety ---------------------------------------------------------- */

/*
 * kill -9 of the replica while its attempts hang at the endpoint: a second
 * replica takes them over once the visibility timeout has passed and
 * delivers every one (at least once: the hung attempts may count twice).
 */
Test(relay, kill9_mid_delivery_another_replica_finishes)
{
    struct rt_opts o = {.webhooks =
                            "{\"schedule_ms\": [100], \"jitter\": false, \"poll_interval_ms\": 50,"
                            " \"visibility_timeout_ms\": 2500, \"per_endpoint_concurrency\": 8}",
                        .cb_timeout_ms = 1500};
    char id[64];
    int i, st;
    int64_t killed;

    rt_setup(&o);
    rx_rule("acme", 0, 0, NULL, 1, 0);
    for (i = 0; i < 5; i++) {
        rt_event(id, sizeof(id));
    }
    cr_assert_eq(rx_wait("acme", -1, 5, 5000), 5, "the attempts did not reach the endpoint");
    st = proc_stop(&gw.gw, SIGKILL, 5000);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    killed = now_ms();
    rx_abort_held("acme");
    rx_rule("acme", 0, 0, NULL, 0, 0);
    rt_replica2_start(&o);
    rt_expect_delivered("acme", "acme", 5, 15000);
    {
        struct rx_hit *h;
        size_t n = rx_hits("acme", &h);
        cr_assert_geq(n, 10);
        cr_assert_geq(h[5].at_ms - killed, 1000, "taken over %lld ms after the kill",
                      (long long)(h[5].at_ms - killed));
        rx_free(h, n);
    }
    rt_assert_quiet("acme");
}

/*
 * kill -9 with 1,000 deliveries pending (500 calls, two events each): the
 * endpoint hangs while the backlog is stored, then works slowly; the replica
 * is killed once about 300 have arrived. After its restart every delivery
 * arrives, repeats stay within what was in flight at the kill, and per call
 * the second event never arrives before the first.
 */
Test(relay, kill9_with_1000_pending_loses_nothing)
{
    struct rt_opts o = {.webhooks =
                            "{\"schedule_ms\": [100], \"jitter\": false, \"poll_interval_ms\": 50,"
                            " \"visibility_timeout_ms\": 2000}",
                        .cb_timeout_ms = 1000};
    enum { CALLS = 500, EVENTS = 2 * CALLS };
    static char ids[CALLS][64];
    int64_t first[CALLS][2];
    struct rx_hit *h;
    size_t n, k, ok = 0;
    int i;

    rt_setup(&o);
    rx_rule("acme", 0, 0, NULL, 1, 0);
    for (i = 0; i < CALLS; i++) {
        rt_call(GWTEST_ACME_KEY, NULL, ids[i], sizeof(ids[i]));
        rt_push(gw.base, GWTEST_ACME_TOKEN, ids[i], "ANSWER", 0);
        rt_push(gw.base, GWTEST_ACME_TOKEN, ids[i], "BUSY", 1);
    }
    /* Stored just after each push was answered: wait for the last ones. */
    for (k = 0; k < 100 && rt_redis_int("ZCARD", "cg:relay:idx:pending:acme", NULL) < EVENTS; k++) {
        gwtest_sleep_ms(50);
    }
    cr_assert_eq(rt_redis_int("ZCARD", "cg:relay:idx:pending:acme", NULL), EVENTS);
    rx_abort_held("acme");
    rx_rule("acme", 0, 0, NULL, 0, 20);
    cr_assert_geq(rx_wait("acme", 200, 300, 30000), 300);
    cr_assert_eq(proc_stop(&gw.gw, SIGKILL, 5000) & 0x7f, SIGKILL);
    rx_abort_held("acme");
    cr_assert_lt(rx_delivered("acme"), EVENTS, "all delivered before the kill");
    gwtest_gateway_start(&gw);
    rt_expect_delivered("acme", "acme", EVENTS, 60000);
    /* Per call: the first 200 of sequence 1 comes before the first 200 of sequence 2. */
    memset(first, 0, sizeof(first));
    n = rx_hits("acme", &h);
    for (k = 0; k < n; k++) {
        json_t *ev;
        const char *call;
        long seq;
        if (h[k].status != 200) {
            continue;
        }
        ok++;
        ev = json_loads(h[k].body, 0, NULL);
        call = jstr(json_object_get(ev, "data"), "id");
        seq = (long)json_integer_value(json_object_get(ev, "sequence"));
        for (i = 0; call != NULL && i < CALLS; i++) {
            if (strcmp(ids[i], call) == 0 && seq >= 1 && seq <= 2 && first[i][seq - 1] == 0) {
                first[i][seq - 1] = (int64_t)k + 1;
            }
        }
        json_decref(ev);
    }
    rx_free(h, n);
    for (i = 0; i < CALLS; i++) {
        cr_assert(first[i][0] > 0 && first[i][1] > first[i][0], "call %s: events out of order",
                  ids[i]);
    }
    /* At least once: a repeat is a delivery the killed replica had not yet recorded. */
    cr_assert_leq(ok - EVENTS, 16, "%zu repeats", ok - EVENTS);
    rt_assert_quiet("acme");
}

/* Two replicas share the work; in the normal case no event is delivered by both. */
Test(relay, two_replicas_share_without_duplicates)
{
    struct rt_opts o = {.webhooks = "{\"jitter\": false, \"poll_interval_ms\": 50}"};
    enum { CALLS = 30 };
    char id[64], gw2_base[64];
    int i;
    FILE *f;
    char line[4096];
    int by[2] = {0, 0};

    rt_setup(&o);
    rt_replica2_start(&o);
    snprintf(gw2_base, sizeof(gw2_base), "http://127.0.0.1:%d", gw2_port);
    rx_rule("acme", 0, 0, NULL, 0, 20);
    for (i = 0; i < CALLS; i++) {
        rt_call(GWTEST_ACME_KEY, NULL, id, sizeof(id));
        /* Half of the vendor's pushes reach each replica, as behind a load balancer. */
        rt_push(i % 2 ? gw2_base : gw.base, GWTEST_ACME_TOKEN, id, "ANSWER", 0);
        rt_push(i % 2 ? gw.base : gw2_base, GWTEST_ACME_TOKEN, id, "BUSY", 1);
    }
    rt_expect_delivered("acme", "acme", 2 * CALLS, 20000);
    gwtest_sleep_ms(300);
    cr_assert_eq(rx_count("acme", -1), 2 * CALLS, "an event was delivered twice");
    for (i = 0; i < 2; i++) {
        f = fopen(i == 0 ? gw.gw_log : gw2_log, "r");
        cr_assert_not_null(f);
        while (fgets(line, sizeof(line), f) != NULL) {
            by[i] += strstr(line, "\"event\":\"relay_delivered\"") != NULL;
        }
        fclose(f);
    }
    cr_assert(by[0] > 0 && by[1] > 0, "one replica did all the work (%d / %d)", by[0], by[1]);
    cr_assert_eq(by[0] + by[1], 2 * CALLS);
    rt_assert_quiet("acme");
}

/*
 * SIGTERM while an attempt hangs: the replica exits 0 at the drain deadline
 * and hands its claim back, so a restart delivers it long before the
 * visibility timeout would have let anyone take it.
 */
Test(relay, drain_hands_claims_back)
{
    struct rt_opts o = {.webhooks =
                            "{\"schedule_ms\": [100], \"jitter\": false, \"poll_interval_ms\": 50,"
                            " \"visibility_timeout_ms\": 30000}",
                        .cb_timeout_ms = 5000,
                        .drain_timeout_ms = 1000};
    char id[64];
    int st;
    int64_t t0;

    rt_setup(&o);
    rx_rule("acme", 0, 0, NULL, 1, 0);
    rt_event(id, sizeof(id));
    cr_assert_eq(rx_wait("acme", -1, 1, 5000), 1);
    t0 = now_ms();
    st = gwtest_gateway_stop(&gw, SIGTERM, 10000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "callgate did not exit 0 (%d)", st);
    cr_assert_lt(now_ms() - t0, 4000, "the drain did not end at its deadline");
    rx_abort_held("acme");
    rx_rule("acme", 0, 0, NULL, 0, 0);
    t0 = now_ms();
    gwtest_gateway_start(&gw);
    rt_expect_delivered("acme", "acme", 1, 10000);
    cr_assert_lt(now_ms() - t0, 8000, "the claim was not handed back");
    rt_assert_quiet("acme");
}

/* ---- fairness and order --------------------------------------------------- */

/*
 * acme's endpoint hangs with a backlog; globex's events still arrive at once,
 * and acme never has more attempts in flight than the per-endpoint cap.
 */
Test(relay, a_hung_endpoint_does_not_delay_another_tenant)
{
    struct rt_opts o = {.webhooks =
                            "{\"schedule_ms\": [100], \"jitter\": false, \"poll_interval_ms\": 50,"
                            " \"visibility_timeout_ms\": 8000, \"per_endpoint_concurrency\": 3}",
                        .cb_timeout_ms = 6000};
    char id[64];
    int i;
    int64_t t0;

    rt_setup(&o);
    pthread_mutex_lock(&rx.mu);
    snprintf(rx.max_held_name, sizeof(rx.max_held_name), "acme");
    pthread_mutex_unlock(&rx.mu);
    rx_rule("acme", 0, 0, NULL, 1, 0);
    for (i = 0; i < 12; i++) {
        rt_event(id, sizeof(id));
    }
    cr_assert_eq(rx_wait("acme", -1, 3, 5000), 3);
    for (i = 0; i < 3; i++) {
        rt_call(GWTEST_GLOBEX_KEY, NULL, id, sizeof(id));
        t0 = now_ms();
        rt_push(gw.base, GWTEST_GLOBEX_TOKEN, id, "ANSWER", 0);
        cr_assert_eq(rx_wait("globex", 200, (size_t)i + 1, 3000), (size_t)i + 1);
        cr_assert_lt(now_ms() - t0, 1000, "globex waited %lld ms behind acme",
                     (long long)(now_ms() - t0));
    }
    pthread_mutex_lock(&rx.mu);
    cr_assert_leq(rx.max_held, 3, "%d attempts in flight at one endpoint", rx.max_held);
    pthread_mutex_unlock(&rx.mu);
    cr_assert_leq(rx_count("acme", -1), 3, "acme's backlog went past its cap");
    rx_rule("acme", 0, 0, NULL, 0, 0);
    rt_expect_delivered("acme", "acme", 12, 20000);
}

/*
 * The second event of a call waits while the first is retried, then goes;
 * the pending list shows it waiting meanwhile.
 */
Test(relay, events_of_a_call_are_delivered_in_order)
{
    struct rt_opts o = {
        .webhooks = "{\"schedule_ms\": [600], \"jitter\": false, \"poll_interval_ms\": 50}"};
    char id[64];
    struct rx_hit *h;
    json_t *pending;
    size_t n, i, waiting = 0;

    rt_setup(&o);
    rx_rule("acme", 2, 503, NULL, 0, 0);
    rt_call(GWTEST_ACME_KEY, NULL, id, sizeof(id));
    rt_push(gw.base, GWTEST_ACME_TOKEN, id, "ANSWER", 0);
    cr_assert_eq(rx_wait("acme", 503, 1, 5000), 1);
    rt_push(gw.base, GWTEST_ACME_TOKEN, id, "BUSY", 1);
    pending = rt_wait_list("state=pending&tenant=acme", 2, 3000);
    cr_assert_eq(json_array_size(pending), 2);
    for (i = 0; i < 2; i++) {
        waiting += strcmp(jstr(json_array_get(pending, i), "state"), "waiting") == 0;
    }
    cr_assert_eq(waiting, 1, "the later event does not wait");
    json_decref(pending);
    rt_expect_delivered("acme", "acme", 2, 8000);
    n = rx_hits("acme", &h);
    cr_assert_eq(n, 4, "%zu attempts", n);
    for (i = 0; i < n; i++) {
        long seq = json_int_member(h[i].body, "sequence");
        cr_assert_eq(seq, i < 3 ? 1 : 2, "attempt %zu carried sequence %ld", i + 1, seq);
    }
    cr_assert_eq(h[3].status, 200);
    cr_assert_not_null(strstr(h[3].body, "\"type\":\"call.busy\""));
    rx_free(h, n);
    rt_assert_quiet("acme");
}

/* ---- the SSRF guard -------------------------------------------------------- */

/* Wait until the log at path holds text. */
static int
rt_log_has(const char *path, const char *text, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    char line[8192];
    FILE *f;

    do {
        if ((f = fopen(path, "r")) != NULL) {
            while (fgets(line, sizeof(line), f) != NULL) {
                if (strstr(line, text) != NULL) {
                    fclose(f);
                    return 1;
                }
            }
            fclose(f);
        }
        gwtest_sleep_ms(50);
    } while (now_ms() < end);
    return 0;
}

/*
 * A callback URL accepted while 127.0.0.1 was allowed; the configuration
 * then drops the exception (SIGHUP). The connect-time guard refuses each
 * attempt: the refusal is recorded as the delivery's error, retried, and
 * dead-lettered after the last attempt; callgate carries on.
 */
Test(relay, ssrf_refusal_is_recorded_and_dead_lettered)
{
    struct rt_opts o = {.webhooks =
                            "{\"schedule_ms\": [100], \"max_attempts\": 2, \"jitter\": false,"
                            " \"poll_interval_ms\": 50}"};
    char id[64], extra[160];
    json_t *conf, *dead, *d;
    struct http_resp r;
    int64_t end;

    rt_setup(&o);
    snprintf(extra, sizeof(extra), "\"callback_url\": \"http://127.0.0.1:%d/hook/ssrf\"",
             rx.port[0]);
    rt_call(GWTEST_ACME_KEY, extra, id, sizeof(id));
    conf = json_load_file(gw.conf_path, 0, NULL);
    cr_assert_not_null(conf);
    json_object_del(json_object_get(conf, "callbacks"), "allow_hosts");
    cr_assert_eq(json_dump_file(conf, gw.conf_path, JSON_INDENT(2)), 0);
    json_decref(conf);
    cr_assert_eq(kill(gw.gw.pid, SIGHUP), 0);
    cr_assert(rt_log_has(gw.gw_log, "\"event\":\"reloaded\"", 5000), "no reload");
    rt_push(gw.base, GWTEST_ACME_TOKEN, id, "ANSWER", 0);
    dead = rt_wait_list("state=dead&tenant=acme", 1, 6000);
    cr_assert_eq(json_array_size(dead), 1, "the refused delivery was not dead-lettered");
    cr_assert_eq(rx_count("ssrf", -1), 0, "a refused address was connected to");
    d = json_array_get(dead, 0);
    cr_assert_eq(json_integer_value(json_object_get(d, "attempts")), 2);
    cr_assert(json_is_null(json_object_get(d, "last_status")));
    cr_assert_not_null(jstr(d, "last_error"));
    cr_assert_not_null(strstr(jstr(d, "last_error"), "not_sent"), "%s", jstr(d, "last_error"));
    cr_assert_not_null(strstr(jstr(d, "last_error"), "not allowed"), "%s", jstr(d, "last_error"));
    json_decref(dead);
    end = now_ms() + 2000;
    while (gw_get(&gw, NULL, "/healthz", &r) != 0 && now_ms() < end) {
        gwtest_sleep_ms(50);
    }
    cr_assert_eq(r.status, 200, "callgate is not well after refusing");
    http_resp_free(&r);
}
