/*
 * relay_bench.c: vendor webhook in -> tenant 2xx out, measured end to end.
 * It plays both ends against a running callgate (contrib/bench/relay.sh
 * starts everything): it places N calls, then posts one CloudDialer result
 * push per call (C at a time) and receives the signed tenant events on its
 * own listener, answering 204. Per call: the time from sending the push to
 * receiving its event. Prints events/s over the whole run and p50/p99.
 * Loopback only; bounded by N and by a deadline.
 *
 * usage: relay_bench GATEWAY_PORT LISTEN_PORT TENANT_KEY WEBHOOK_TOKEN N C
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#define BENCH_DEADLINE_S 120

struct bench {
    struct event_base *base;
    struct evhttp_connection **conns;
    int nconns;
    int gw_port;
    const char *key, *token;
    int n, c;
    char (*ids)[64];
    double *sent, *recv;
    int placed, next_push, received, inflight;
    int phase; /* 0 placing, 1 pushing */
    double t_first_push, t_last_recv;
    int errors;
};

static double
bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bench_pump(struct bench *b);

static int
bench_find(const struct bench *b, const char *id)
{
    int i;

    /* Ids are unique; a linear scan is fine at benchmark sizes. */
    for (i = 0; i < b->n; i++) {
        if (strcmp(b->ids[i], id) == 0) {
            return i;
        }
    }
    return -1;
}

/* The tenant's endpoint: note the event's call, answer 204. */
static void
bench_receive(struct evhttp_request *req, void *arg)
{
    struct bench *b = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    char *text = malloc(len + 1);
    json_t *ev;
    int i;

    if (text != NULL) {
        evbuffer_copyout(in, text, len);
        text[len] = '\0';
        ev = json_loads(text, 0, NULL);
        i = bench_find(b, json_string_value(json_object_get(json_object_get(ev, "data"), "id")));
        if (i >= 0 && b->recv[i] == 0) {
            b->recv[i] = bench_now();
            b->t_last_recv = b->recv[i];
            b->received++;
        }
        json_decref(ev);
        free(text);
    }
    evhttp_send_reply(req, 204, "No Content", NULL);
    if (b->received == b->n) {
        event_base_loopexit(b->base, NULL);
    }
}

static void
bench_on_answer(struct evhttp_request *req, void *arg)
{
    struct bench *b = arg;
    int code = req != NULL ? evhttp_request_get_response_code(req) : 0;

    b->inflight--;
    if (b->phase == 0) {
        if (code == 201) {
            struct evbuffer *in = evhttp_request_get_input_buffer(req);
            size_t len = evbuffer_get_length(in);
            char *text = malloc(len + 1);
            json_t *o;
            if (text != NULL) {
                evbuffer_copyout(in, text, len);
                text[len] = '\0';
                o = json_loads(text, 0, NULL);
                if (json_is_string(json_object_get(o, "id"))) {
                    snprintf(b->ids[b->placed++], 64, "%s",
                             json_string_value(json_object_get(o, "id")));
                }
                json_decref(o);
                free(text);
            }
        } else {
            b->errors++;
        }
    } else if (code < 200 || code > 299) {
        b->errors++;
    }
    bench_pump(b);
}

static void
bench_send(struct bench *b, const char *path, const char *body, int with_key)
{
    struct evhttp_connection *conn = b->conns[(b->placed + b->next_push) % b->nconns];
    struct evhttp_request *req = evhttp_request_new(bench_on_answer, b);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char auth[160];

    evhttp_add_header(h, "Host", "127.0.0.1");
    evhttp_add_header(h, "Content-Type", "application/json");
    if (with_key) {
        snprintf(auth, sizeof(auth), "Bearer %s", b->key);
        evhttp_add_header(h, "Authorization", auth);
    }
    evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
    b->inflight++;
    evhttp_make_request(conn, req, EVHTTP_REQ_POST, path);
}

static void
bench_pump(struct bench *b)
{
    char path[160], body[512];

    if (b->phase == 0) {
        int asked = b->placed + b->inflight + b->errors;
        while (b->inflight < b->c && asked < b->n) {
            bench_send(b, "/v1/calls",
                       "{\"to\": \"+919876543210\", \"agent\": \"agent.017\"}", 1);
            asked++;
        }
        if (b->inflight == 0) {
            if (b->placed == 0) {
                fprintf(stderr, "relay_bench: no call could be placed\n");
                event_base_loopexit(b->base, NULL);
                return;
            }
            b->n = b->placed;
            b->phase = 1;
            b->t_first_push = bench_now();
        } else {
            return;
        }
    }
    snprintf(path, sizeof(path), "/v1/webhooks/clouddialer/%s", b->token);
    while (b->inflight < b->c && b->next_push < b->n) {
        int i = b->next_push++;
        snprintf(body, sizeof(body),
                 "{\"call_id\":\"cd-%d\",\"uuid\":\"%s\",\"status\":\"ANSWER\",\"duration\":12,"
                 "\"start_time\":\"2026-11-23T10:00:00Z\",\"end_time\":\"2026-11-23T10:00:12Z\"}",
                 i, b->ids[i]);
        b->sent[i] = bench_now();
        bench_send(b, path, body, 0);
    }
}

static int
bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
    struct bench b;
    struct evhttp *http;
    struct timeval deadline = {BENCH_DEADLINE_S, 0};
    double *lat;
    int i, k = 0;

    if (argc != 7) {
        fprintf(stderr, "usage: relay_bench GATEWAY_PORT LISTEN_PORT TENANT_KEY WEBHOOK_TOKEN N C\n");
        return 2;
    }
    memset(&b, 0, sizeof(b));
    b.gw_port = atoi(argv[1]);
    b.key = argv[3];
    b.token = argv[4];
    b.n = atoi(argv[5]);
    b.c = atoi(argv[6]);
    if (b.n < 1 || b.n > 100000 || b.c < 1 || b.c > 256) {
        fprintf(stderr, "relay_bench: N must be 1..100000 and C 1..256\n");
        return 2;
    }
    b.base = event_base_new();
    b.ids = calloc((size_t)b.n, 64);
    b.sent = calloc((size_t)b.n, sizeof(double));
    b.recv = calloc((size_t)b.n, sizeof(double));
    b.nconns = b.c;
    b.conns = calloc((size_t)b.nconns, sizeof(*b.conns));
    http = evhttp_new(b.base);
    if (b.base == NULL || b.ids == NULL || b.sent == NULL || b.recv == NULL || b.conns == NULL ||
        http == NULL || evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)atoi(argv[2])) != 0) {
        fprintf(stderr, "relay_bench: cannot set up\n");
        return 1;
    }
    evhttp_set_gencb(http, bench_receive, &b);
    for (i = 0; i < b.nconns; i++) {
        b.conns[i] = evhttp_connection_base_new(b.base, NULL, "127.0.0.1",
                                                (ev_uint16_t)b.gw_port);
    }
    event_base_loopexit(b.base, &deadline);
    bench_pump(&b);
    event_base_dispatch(b.base);

    lat = calloc((size_t)b.n, sizeof(double));
    for (i = 0; lat != NULL && i < b.n; i++) {
        if (b.recv[i] > 0 && b.sent[i] > 0) {
            lat[k++] = (b.recv[i] - b.sent[i]) * 1000.0;
        }
    }
    if (k > 0) {
        qsort(lat, (size_t)k, sizeof(double), bench_cmp);
        printf("events=%d delivered=%d errors=%d events/s=%.0f p50_ms=%.2f p99_ms=%.2f "
               "max_ms=%.2f\n",
               b.n, b.received, b.errors,
               b.t_last_recv > b.t_first_push ? k / (b.t_last_recv - b.t_first_push) : 0.0,
               lat[k / 2], lat[(k * 99) / 100], lat[k - 1]);
    } else {
        printf("events=%d delivered=0 errors=%d\n", b.n, b.errors);
    }
    for (i = 0; i < b.nconns; i++) {
        evhttp_connection_free(b.conns[i]);
    }
    evhttp_free(http);
    event_base_free(b.base);
    free(lat);
    free(b.ids);
    free(b.sent);
    free(b.recv);
    free(b.conns);
    return b.received == b.n && k > 0 ? 0 : 1;
}
