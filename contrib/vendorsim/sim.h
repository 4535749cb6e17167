/*
 * sim.h: the vendor simulator's core API. main.c owns the HTTP server, the
 * route table and dispatch, the request log, the outgoing push client and
 * the /_sim control endpoints; faults.c makes requests misbehave; sink.c
 * plays a tenant's callback receiver; one file per simulated vendor
 * (clouddialer.c, ...) registers that vendor and its routes.
 *
 * Everything runs on one event_base in one thread. A route handler answers
 * its request exactly once with one of the sim_reply*() functions before it
 * returns; the core sends that answer (possibly later, when a fault delays
 * it) and frees the request.
 */
#ifndef VENDORSIM_SIM_H
#define VENDORSIM_SIM_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

/* Largest request body accepted (evhttp answers 413 above it). */
#define SIM_MAX_BODY (1024 * 1024)
/* Most {param} captures in one route pattern. */
#define SIM_MAX_PARAMS 4

#if defined(__GNUC__)
#define SIM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SIM_PRINTF(f, a)
#endif

/* Runtime settings: command line, changeable through POST /_sim/config. */
struct sim_config {
    char listen_host[64]; /* address to listen on, without brackets */
    int listen_port;      /* the bound port once listening */
    char listen_addr[96]; /* "host:port" for URLs (IPv6 in brackets) */
    char *port_file;      /* NULL: none */
    char *cd_key;         /* CloudDialer Bearer key */
    char *cd_push_url;    /* CloudDialer result push URL; NULL: no push */
    char *gd_token;       /* Getdesk token (query parameter "token") */
    char *cdk_authcode;   /* Callerdesk authcode */
    char *cdk_push_url;   /* Callerdesk webhook URL; NULL: no webhooks */
    int cdk_push_get;     /* Callerdesk webhooks as GET + query string (else POST JSON) */
    char *ccai_user;      /* CCAI Platform Basic auth user name */
    char *ccai_token;     /* CCAI Platform Basic auth password (the API token) */
    char *ccai_push_url;  /* CCAI external session events URL; NULL: none */
    int call_ms;          /* simulated call length before the result */
    int ring_ms;          /* from INITIATED to ANSWER (or the failure) */
    char outcome[16];     /* default outcome of new calls */
    int quiet;            /* no per-request log lines on stderr */
};

extern struct sim_config sim_cfg;
extern struct event_base *sim_base;

struct sim_route;

/* One request header, copied so that handlers outlive the connection. */
struct sim_header {
    char *name;
    char *value;
};

/*
 * One request as handlers see it. Everything is copied out of the
 * evhttp_request, so a handler may run after the client went away (then req
 * is NULL and the answer is dropped).
 */
struct sim_req {
    struct evhttp_request *req; /* NULL once the client has gone */
    char method[12];            /* "GET", "POST", ... */
    char *path;                 /* as requested, without the query */
    const char *route_path;     /* path without the route's prefix */
    char *query;                /* raw query string, or NULL */
    struct sim_header *headers;
    size_t nheaders;
    char *body; /* NUL-terminated copy of the body */
    size_t body_len;
    const struct sim_route *route; /* NULL: no route matched */
    int method_mismatch;           /* the path matched, the method did not */
    char allow[64];                /* methods the path allows (for 405) */
    char *params[SIM_MAX_PARAMS];  /* {param} captures, URI-decoded */
    int nparams;
    uint64_t received_ms;

    /* The fields below are private to main.c. */
    json_t *json;
    int json_parsed;
    char json_error[200];
    struct evkeyvalq query_args;
    int query_parsed;
    int replied;
    int resp_code;
    char resp_ctype[64];
    struct evbuffer *resp_body;
    struct sim_header *resp_headers; /* extra answer headers */
    size_t nresp_headers;
    const char *fault; /* fault mode applied, for the log line */
};

typedef void (*sim_handler)(struct sim_req *r);

/*
 * A simulated vendor. Hooks may be NULL. auth_ok tells the request log
 * whether the request carried valid credentials; calls_json appends the
 * vendor's calls to an array (GET /_sim/calls); call_end ends one call now
 * (POST /_sim/calls/{id}/end) and returns 0, 1 when the id is not the
 * vendor's, or -1 with err set for bad input; cleanup frees everything.
 */
struct sim_vendor {
    const char *name;
    int (*auth_ok)(struct sim_req *r);
    void (*calls_json)(json_t *out);
    int (*call_end)(const char *call_id, const char *status, char *err, size_t errlen);
    void (*cleanup)(void);
};

/* Module entry points, called once by main.c before the loop runs. */
void clouddialer_init(void);
void getdesk_init(void);
void callerdesk_init(void);
void ccai_init(void);
void faults_init(void);
void sink_init(void);

/* Module teardown, called once by main.c after the loop ends. */
void faults_cleanup(void);
void sink_cleanup(void);

/* ---- core (main.c) ---- */

void sim_vendor_register(const struct sim_vendor *v);

/*
 * Serve method on prefix + pattern. The pattern is literal text with
 * "{name}" for one path segment or "{name+}" for the rest of the path (at
 * least one character); captures land in r->params in order. vendor may be
 * NULL (control routes). Strings are copied.
 */
void sim_route_add(const struct sim_vendor *vendor, const char *method, const char *prefix,
                   const char *pattern, sim_handler fn);

/* The vendor of the route r matched, or NULL. */
const struct sim_vendor *sim_req_vendor(const struct sim_req *r);

/* Run the matched handler (or answer 404/405) without sending. */
void sim_process(struct sim_req *r);
/* Send the answer if the client is still there, then free r. */
void sim_send(struct sim_req *r);
/* Free r without answering (the evhttp_request is not touched). */
void sim_req_free(struct sim_req *r);

/* Request header by case-insensitive name, or NULL. */
const char *sim_req_header(const struct sim_req *r, const char *name);
/* Query argument by name (decoded), or NULL. */
const char *sim_req_query(struct sim_req *r, const char *name);
/*
 * The body parsed as JSON (borrowed; NULL when empty or malformed, then
 * *why, if given, says what is wrong).
 */
json_t *sim_req_json(struct sim_req *r, const char **why);

/* Answer helpers; each handler calls exactly one of them, once. */
void sim_reply(struct sim_req *r, int code, const char *ctype, const void *body, size_t len);
/* Serialise obj (the reference is stolen) as application/json. */
void sim_reply_json(struct sim_req *r, int code, json_t *obj);
/* 200 audio/wav: half a second of silence (the vendors' recordings). */
void sim_reply_silent_wav(struct sim_req *r);
/* {"status":"error","message":"..."} */
void sim_reply_error(struct sim_req *r, int code, const char *fmt, ...) SIM_PRINTF(3, 4);
/*
 * Add a header to r's answer (Retry-After, WWW-Authenticate, ...); strings
 * are copied. Call it along with one of the sim_reply*() functions.
 */
void sim_reply_header(struct sim_req *r, const char *name, const char *value);

/* JSON helpers. */
/* A JSON string of s[0..len) with invalid UTF-8 replaced by U+FFFD. */
json_t *sim_json_lossy(const char *s, size_t len);
/* A JSON string of s, or null when s is NULL. */
json_t *sim_json_str_or_null(const char *s);

/* strdup that aborts on out of memory (NULL stays NULL). */
char *sim_strdup(const char *s);
/* 1 and *out when v is an integer in [lo, hi], else 0. */
int sim_json_int(const json_t *v, long long lo, long long hi, long long *out);

/* Wall clock in milliseconds since the epoch. */
uint64_t sim_now_ms(void);
/* ISO 8601 UTC ("2024-05-01T10:00:00Z", or with ".123" when with_ms). */
void sim_iso_time(uint64_t ms, int with_ms, char *out, size_t outlen);
/* len random bytes. */
void sim_random(void *buf, size_t len);
/* 1 if s is a call outcome: ANSWER|NO_ANSWER|BUSY|FAILED|CANCELED. */
int sim_outcome_valid(const char *s);
/* 1 if url is an absolute http:// URL with a host. */
int sim_url_valid(const char *url);
/* A timer callback event that is not yet added. */
struct event *sim_timer_new(event_callback_fn cb, void *arg);
/* Add ev to fire after ms milliseconds. */
void sim_timer_start(struct event *ev, long ms);

/* stderr line unless --quiet. */
void sim_log(const char *fmt, ...) SIM_PRINTF(1, 2);

/*
 * POST body (JSON text) to url -- or, with body NULL, GET url (the fields in
 * its query string); on a connection failure or a non-2xx answer retry up to
 * 3 more times (backoff 200 ms, doubling). Every attempt is recorded for
 * GET /_sim/pushes under vendor, uuid, call_id and status.
 */
void sim_push(const char *vendor, const char *url, const char *uuid, const char *call_id,
              const char *status, const char *body);
/*
 * sim_push() that also sends the nheaders headers (Authorization, ...)
 * with every attempt. The headers are copied; they are not logged.
 */
void sim_push_ex(const char *vendor, const char *url, const char *uuid, const char *call_id,
                 const char *status, const char *body, const struct sim_header *headers,
                 size_t nheaders);

/* ---- faults (faults.c) ---- */

enum sim_fault_mode {
    SIM_FAULT_DELAY,
    SIM_FAULT_HANG,
    SIM_FAULT_STATUS,
    SIM_FAULT_RESET,
    SIM_FAULT_CLOSE,
    SIM_FAULT_GARBAGE,
    SIM_FAULT_SLOW
};

/* One fault taken for one request (a copy; faults_apply frees it). */
struct sim_fault {
    enum sim_fault_mode mode;
    int status;
    char *body;
    long delay_ms;
};

/* Name of a mode ("delay", ...). */
const char *faults_mode_name(enum sim_fault_mode mode);
/*
 * The first fault that matches r and has uses left, with one use consumed,
 * or NULL.
 */
struct sim_fault *faults_take(const struct sim_req *r);
/* Make r misbehave as f says; takes over r and f. */
void faults_apply(struct sim_req *r, struct sim_fault *f);

#endif
