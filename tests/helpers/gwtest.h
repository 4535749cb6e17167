/*
 * gwtest.h: the whole gateway on loopback for integration tests: a real
 * redis-server (redis_fixture), the vendor simulator and the callgate daemon
 * as child processes with a generated configuration, plus a blocking HTTP
 * client (libcurl easy) to talk to them.
 *
 * Two tenants are configured:
 *   acme   (IN) key "test-acme-key",   CloudDialer webhook token GWTEST_ACME_TOKEN,
 *          events to the simulator's /_sink/acme; call history at Getdesk; Callerdesk
 *          (webhook token GWTEST_ACME_CD_TOKEN), which routes name only when a test's
 *          own table does (or a request pins it)
 *   globex (US) key "test-globex-key", token GWTEST_GLOBEX_TOKEN, /_sink/globex
 * Both sign events with GWTEST_SECRET.
 */
#ifndef CG_TEST_GWTEST_H
#define CG_TEST_GWTEST_H

#include <stddef.h>

#include <jansson.h>

#include "helpers/proc.h"
#include "helpers/redis_fixture.h"

#define GWTEST_ACME_KEY "test-acme-key"
#define GWTEST_GLOBEX_KEY "test-globex-key"
#define GWTEST_ACME_TOKEN "acme-token-0123456789"
#define GWTEST_GLOBEX_TOKEN "globex-token-0123456789"
#define GWTEST_SECRET "whsec_Y2FsbGdhdGUtdGVzdC1zaWduaW5nLXNlY3JldC0zMmI="
#define GWTEST_GETDESK_TOKEN "gd-test-token"
#define GWTEST_CALLERDESK_AUTHCODE "cdk-test-authcode"
#define GWTEST_ACME_CD_TOKEN "acme-callerdesk-token-0123"
#define GWTEST_ADMIN_TOKEN "test-admin-token-0123456789"
#define GWTEST_ACME_CCAI_TOKEN "acme-ccai-token-0123456789"
#define GWTEST_CCAI_CREDENTIAL "ccai-test:ccai-test-token" /* the simulator's default */
#define GWTEST_CCAI_HOOK_AUTH "ccai-hook:ccai-hook-secret"  /* what it sends with events */

struct gwtest_opts {
    long vendor_timeout_ms;     /* default 2000 */
    long request_timeout_ms;    /* default vendor_timeout_ms + 3000 */
    long drain_timeout_ms;      /* default 5000 */
    long redis_command_timeout_ms; /* default 500 */
    int vendor_port;            /* point CloudDialer here instead of the simulator (0 = sim) */
    int call_ms;                /* simulated call length (default 300) */
    int no_push;                /* simulator sends no result push */
    const char *routes_dir;     /* routing table (default: the project's routes/) */
    long header_timeout_ms;     /* limits.header_timeout_ms (0 = callgate's default) */
    long max_connections;       /* limits.max_connections (0 = callgate's default) */
    long health_interval_ms;    /* CloudDialer's health probe interval (0 = callgate's default) */
    int breaker_consecutive;    /* breaker.consecutive_failures (0 = callgate's default) */
    long breaker_open_ms;       /* breaker.open_ms (0 = callgate's default) */
    int admin_listener;         /* serve the admin API on its own port (admin_base) */
    int metrics_admin_token;    /* metrics.require_admin_token: GET /metrics wants the token */
    int strict_agents;          /* unknown agents are 404 (the contract's default); else the
                                   tenants pass agent ids to the vendors as they are */
    const char *conf_patch;     /* JSON merged into the generated configuration last:
                                   objects key by key, arrays element by element */
    int workers;                /* callgate --workers N (0 = the option is not given) */
};

struct gwtest {
    struct gwtest_opts opts;
    struct redis_fixture redis;
    struct proc sim;
    struct proc gw;
    int sim_port;
    int gw_port;
    char dir[256];
    char conf_path[320];
    char gw_log[320];
    char base[64];              /* http://127.0.0.1:<gw_port> */
    char sim_base[64];          /* http://127.0.0.1:<sim_port> */
    int admin_port;             /* admin listener, or 0 (admin routes on the main port) */
    char admin_base[64];        /* where the admin API answers */
};

/* Start Redis, the simulator and callgate; cr_assert on failure. */
void gwtest_start(struct gwtest *t, const struct gwtest_opts *opts);

/* Stop everything; asserts that callgate exits 0 on SIGTERM (so ASan/LSan found nothing). */
void gwtest_stop(struct gwtest *t);

/* (Re)write the configuration file from t->opts (for reload tests). */
void gwtest_write_conf(struct gwtest *t);

/* Start / stop only the callgate process. stop returns its exit status (waitpid form). */
void gwtest_gateway_start(struct gwtest *t);
int gwtest_gateway_stop(struct gwtest *t, int sig, int timeout_ms);

/*
 * A second callgate process on the same Redis and simulator (another replica
 * behind the same load balancer), on its own port: base gets its URL.
 * Stop it with proc_stop() (it must exit 0 on SIGTERM).
 */
void gwtest_replica_start(struct gwtest *t, struct proc *gw, char *base, size_t baselen);

/* Wait until GET /readyz answers 200 (1) within timeout_ms, else 0. */
int gwtest_wait_ready(struct gwtest *t, int timeout_ms);

struct http_resp {
    long status;
    char *body;                 /* NUL-terminated */
    size_t len;
    char *headers;              /* raw response headers, NUL-terminated */
    json_t *json;               /* parsed body, or NULL */
    double ms;
};

/*
 * One blocking request. headers: NULL-terminated "Name: value" list or NULL.
 * body may be NULL. Returns 0 when a response arrived (out filled), -1 else.
 */
int http_do(const char *method, const char *url, const char *const *headers, const char *body,
            size_t body_len, long timeout_ms, struct http_resp *out);
void http_resp_free(struct http_resp *r);

/* Value of a response header (case-insensitive) copied into buf, or NULL. */
const char *http_header(const struct http_resp *r, const char *name, char *buf, size_t buflen);

/* POST /v1/calls with a tenant key and an optional Idempotency-Key. */
int gw_post_call(struct gwtest *t, const char *key, const char *idem, const char *body,
                 struct http_resp *out);

/* The same against another gateway (a replica): base is its URL. */
int gw_post_call_at(const char *base, const char *key, const char *idem, const char *body,
                    struct http_resp *out);

/* GET base+path with a tenant key (NULL: none). */
int gw_get(struct gwtest *t, const char *key, const char *path, struct http_resp *out);

/* An admin request (token may be NULL) to admin_base + path. */
int gw_admin(struct gwtest *t, const char *token, const char *method, const char *path,
             const char *body, struct http_resp *out);

/* GET a simulator path; returns the parsed JSON (caller decrefs) or NULL. */
json_t *sim_get_json(struct gwtest *t, const char *path);

/* POST a JSON body to a simulator control path; returns the HTTP status. */
long sim_post(struct gwtest *t, const char *path, const char *json_body);

/* DELETE a simulator path; returns the HTTP status. */
long sim_delete(struct gwtest *t, const char *path);

/* Number of requests the simulator logged for method+path. */
int sim_count(struct gwtest *t, const char *method, const char *path);

/* Poll GET /v1/calls/{id} until its status equals status or timeout; returns the last call JSON. */
json_t *gw_wait_call_status(struct gwtest *t, const char *key, const char *id, const char *status,
                            int timeout_ms);

/* Poll the simulator's sink for name until it holds at least n events; returns the events. */
json_t *sim_wait_sink(struct gwtest *t, const char *name, size_t n, int timeout_ms);

void gwtest_sleep_ms(int ms);

/* A string member of a JSON object (borrowed), or NULL. */
const char *jstr(json_t *o, const char *key);

/*
 * Assert an RFC 9457 answer: status, Content-Type application/problem+json,
 * type "/problems/<slug>", title and request_id present.
 */
void assert_problem(struct http_resp *r, long status, const char *slug);

#endif
