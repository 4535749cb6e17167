/*
 * vendor.h: the vendor adapter interface. Each vendor lives in one file under
 * src/vendors/ behind a const struct vendor_ops table; this module keeps the
 * name -> ops registry. Adapters are pure translators: they turn a neutral
 * request into an HTTP request (struct vendor_http) and a vendor's answer or
 * webhook into neutral results. They do no I/O, so they are unit-tested on
 * fixtures alone.
 */
#ifndef CG_VENDOR_H
#define CG_VENDOR_H

#include <stddef.h>
#include <stdint.h>

#include "callrec.h"

struct conf_vendor;
struct conf_tenant_vendor;
struct evbuffer;
struct json_t;

/* Capabilities an adapter declares (bit set). */
enum vendor_cap {
    VENDOR_CAP_OUTBOUND = 1 << 0,
    VENDOR_CAP_INBOUND = 1 << 1,
    VENDOR_CAP_SCHEDULED = 1 << 2,
    VENDOR_CAP_PARTICIPANTS = 1 << 3,
    VENDOR_CAP_RECORDING = 1 << 4,
    VENDOR_CAP_FLAGS = 1 << 5,
    VENDOR_CAP_HISTORY = 1 << 6,
    VENDOR_CAP_STATUS = 1 << 7,
    VENDOR_CAP_WEBHOOKS = 1 << 8,
};

/* Credentials and defaults for one attempt: the vendor's, overridden per tenant. */
struct vendor_ctx {
    const struct conf_vendor *conf;
    const char *base_url;    /* the tenant's own host for this vendor, else the vendor's */
    const struct json_t *options; /* the tenant's vendor-specific settings (object of
                                     strings, e.g. Callerdesk's "deskphone"), or NULL */
    const char *api_key;
    const char *from_number; /* E.164 default caller ID, or NULL */
};

/* A neutral call placement, already validated and normalised. */
struct vendor_call {
    const char *call_id;     /* our id (call_...) */
    const char *type;        /* "outbound" */
    const char *to;          /* E.164 */
    const char *from;        /* E.164 or NULL (then ctx->from_number) */
    const char *agent;       /* tenant's agent id, or NULL */
    int record;
    int max_ring_seconds;
    const char *lang;
    const char *queue;       /* vendor queue / menu id, or NULL */
    const char *ticket_id;   /* CRM ticket id, or NULL */
    const char *scheduled_at; /* RFC 3339, for scheduled calls, or NULL */
    const char *reference;   /* the tenant's own id for the call, or NULL */
};

/* An HTTP request built by an adapter; owned, freed by vendor_http_clear(). */
struct vendor_http {
    char *method;
    char *url;
    char **headers;          /* NULL-terminated "Name: value" */
    char *body;
    size_t body_len;
};

/* What a placement answer means for failover (API.md "Failover rule"). */
enum vendor_outcome {
    VENDOR_ACCEPTED = 0,     /* the vendor queued the call */
    VENDOR_REJECTED,         /* an explicit refusal: certainly not placed */
    VENDOR_UNAVAILABLE,      /* documented "not queued" (429/502/503): certainly not placed */
    VENDOR_AMBIGUOUS,        /* an answer we cannot trust either way: may have been placed */
    VENDOR_OUTCOME_MAX
};

extern const char *const vendor_outcome_text[VENDOR_OUTCOME_MAX];

struct vendor_placed {
    enum vendor_outcome outcome;
    char vendor_call_id[128];
    char detail[256];        /* the vendor's own message, for attempts[].detail */
    int agent_action;        /* accepted, but an agent must act before the call starts
                                (CCAI's 202): the gateway answers 202 */
};

/* Customer flags (VENDOR_CAP_FLAGS): each -1 (unknown / leave as is), 0 or 1. */
struct vendor_flags {
    int verified_customer;
    int bad_actor;
    int repeat_customer;
};

/*
 * A vendor webhook (or status poll) turned into a neutral call update.
 * Correlation: call_id is our id when the vendor echoes it; otherwise the
 * adapter leaves it "" and sets vendor_call_id, and the gateway finds the
 * call through the vendor call id it recorded when the placement was
 * accepted (vendor_placed.vendor_call_id).
 */
struct vendor_update {
    char call_id[64];        /* our call id when the vendor echoes it, else "" */
    char vendor_call_id[128];
    char vendor_status[64];  /* raw vendor value, for debugging */
    enum call_status status;
    int64_t started_at;      /* ms since epoch, 0 = unknown */
    int64_t answered_at;
    int64_t ended_at;
    long duration_seconds;   /* -1 = unknown */
    char recording_url[512]; /* the vendor's URL (never shown to tenants) */
    char disposition[64];
    struct json_t *legs;     /* neutral legs array (new reference) or NULL */
    char dedupe_key[256];    /* the vendor's retry of this event has the same key */
};

/* A call-history query, already validated (API.md "Call history"). */
struct vendor_history_query {
    const char *const *numbers; /* E.164 numbers (one for call logs, up to 100 for counts) */
    size_t nnumbers;
    const char *start_date;     /* "YYYY-MM-DD", inclusive */
    const char *end_date;       /* "YYYY-MM-DD", inclusive */
    int page;                   /* 1-based page, for vendors that page */
};

struct vendor_ops {
    const char *name;
    unsigned caps;
    double rate_limit_per_s;  /* the vendor's documented request rate, or 0 (conf default) */

    /* Build the call placement request. Returns 0, or -1 with err set (no request). */
    int (*build_place)(const struct vendor_ctx *ctx, const struct vendor_call *call,
                       struct vendor_http *out, char *err, size_t errlen);

    /* Interpret a placement answer (an HTTP response arrived). */
    void (*parse_place)(const struct vendor_ctx *ctx, long http_status, const char *body,
                        size_t len, struct vendor_placed *out);

    /*
     * Parse a webhook. method is "GET" or "POST"; query is the raw query
     * string or NULL. Returns 0, or -1 with err (the payload is not usable).
     * out->legs, when set, is owned by the caller (vendor_update_clear).
     */
    int (*parse_webhook)(const struct vendor_ctx *ctx, const char *method, const char *query,
                         const char *body, size_t len, struct vendor_update *out, char *err,
                         size_t errlen);

    /*
     * Vendors that send several events in one delivery (CCAI's {count,
     * events[]}) set this instead of parse_webhook: it returns 0 with *out
     * an array of *n updates (the caller frees each with vendor_update_clear
     * and the array with free), or -1 with err when the delivery as a whole
     * is unusable.
     */
    int (*parse_webhook_batch)(const struct vendor_ctx *ctx, const char *method,
                               const char *query, const char *body, size_t len,
                               struct vendor_update **out, size_t *n, char *err, size_t errlen);

    /*
     * Live status (VENDOR_CAP_STATUS; NULL otherwise): ask the vendor about
     * one call; parse_status fills a neutral update as parse_webhook does.
     */
    int (*build_status)(const struct vendor_ctx *ctx, const char *vendor_call_id,
                        struct vendor_http *out, char *err, size_t errlen);
    int (*parse_status)(const struct vendor_ctx *ctx, long http_status, const char *body,
                        size_t len, struct vendor_update *out, char *err, size_t errlen);

    /*
     * Participants (VENDOR_CAP_PARTICIPANTS; NULL otherwise): dial one more
     * number into a live call. parse_participant reports the outcome like a
     * placement, with the vendor's leg id in vendor_call_id.
     */
    int (*build_participant)(const struct vendor_ctx *ctx, const char *vendor_call_id,
                             const char *number, int max_ring_seconds, struct vendor_http *out,
                             char *err, size_t errlen);
    void (*parse_participant)(const struct vendor_ctx *ctx, long http_status, const char *body,
                              size_t len, struct vendor_placed *out);

    /*
     * Health check (NULL when the vendor has none): a cheap request that
     * says whether the vendor is up; parse_health returns 0 when it is,
     * else -1 with detail.
     */
    int (*build_health)(const struct vendor_ctx *ctx, struct vendor_http *out, char *err,
                        size_t errlen);
    int (*parse_health)(const struct vendor_ctx *ctx, long http_status, const char *body,
                        size_t len, char *detail, size_t detaillen);

    /*
     * Optional: the request for a recording link on the vendor's own host,
     * for vendors that want their credentials there (NULL: plain GET).
     */
    int (*build_recording)(const struct vendor_ctx *ctx, const char *url,
                           struct vendor_http *out, char *err, size_t errlen);

    /*
     * Customer flags (VENDOR_CAP_FLAGS; NULL otherwise): build_flags reads
     * them (set NULL) or changes the ones set says (fields >= 0);
     * parse_flags reads the vendor's answer into out (the current flags)
     * and returns its outcome like a placement's, with the vendor's message
     * in detail.
     */
    int (*build_flags)(const struct vendor_ctx *ctx, const char *vendor_call_id,
                       const struct vendor_flags *set, struct vendor_http *out, char *err,
                       size_t errlen);
    enum vendor_outcome (*parse_flags)(const struct vendor_ctx *ctx, long http_status,
                                       const char *body, size_t len, struct vendor_flags *out,
                                       char *detail, size_t detaillen);

    /*
     * Call history (VENDOR_CAP_HISTORY; NULL otherwise). build_history makes
     * the request for one page of calls of q->numbers[0]; parse_history
     * appends neutral rows to rows (a JSON array; the row shape is API.md's
     * "calls" item) and sets *more when another page exists. build_counts and
     * parse_counts do the same for per-number totals: parse_counts adds to
     * counts, a JSON object keyed by E.164 number whose values are
     * {"total", "inbound", "outbound"} integers. Parsers return 0, or -1 with
     * err when the answer is an error or unreadable.
     */
    int (*build_history)(const struct vendor_ctx *ctx, const struct vendor_history_query *q,
                         struct vendor_http *out, char *err, size_t errlen);
    int (*parse_history)(const struct vendor_ctx *ctx, const struct vendor_history_query *q,
                         long http_status, const char *body, size_t len, struct json_t *rows,
                         int *more, char *err, size_t errlen);
    int (*build_counts)(const struct vendor_ctx *ctx, const struct vendor_history_query *q,
                        struct vendor_http *out, char *err, size_t errlen);
    int (*parse_counts)(const struct vendor_ctx *ctx, const struct vendor_history_query *q,
                        long http_status, const char *body, size_t len, struct json_t *counts,
                        char *err, size_t errlen);
};

/* The adapter registered under name, or NULL. */
const struct vendor_ops *vendor_ops_find(const char *name);

/* "clouddialer, ..." for error messages. */
const char *vendor_known_names(void);

/* Fill ctx for a tenant's use of a vendor (tenant credentials win). */
void vendor_ctx_init(struct vendor_ctx *ctx, const struct conf_vendor *v,
                     const struct conf_tenant_vendor *tv);

/* Helpers for adapters building URLs and form bodies in an evbuffer. */

/* base_url without trailing slashes, then path. */
void vendor_url_start(struct evbuffer *b, const char *base_url, const char *path);

/* Append value percent-encoded (RFC 3986 unreserved characters are kept). */
void vendor_url_escape(struct evbuffer *b, const char *value);

/* Append "<sep>name=<value percent-encoded>"; sep 0 writes no separator. */
void vendor_url_param(struct evbuffer *b, char sep, const char *name, const char *value);

/* The tenant's options[name] when it is a non-empty string, else NULL. */
const char *vendor_option(const struct vendor_ctx *ctx, const char *name);

/* 1 when s has the shape YYYY-MM-DD. */
int vendor_date_ok(const char *s);

/* Helpers for adapters. */
int vendor_http_set(struct vendor_http *h, const char *method, const char *url, char *body,
                    const char *const *headers);
void vendor_http_clear(struct vendor_http *h);
/*
 * A JSON API request: the auth header line (or NULL), Accept and, with a
 * body, Content-Type application/json. body is taken over (freed on
 * failure too). 0, or -1 with err.
 */
int vendor_http_json(struct vendor_http *out, const char *method, const char *url,
                     const char *auth, char *body, char *err, size_t errlen);
void vendor_update_init(struct vendor_update *u);
void vendor_update_clear(struct vendor_update *u);

#endif
