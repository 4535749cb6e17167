/*
 * conf.h: callgate's configuration, one JSON file (conf/callgate.json is the
 * documented example; conf/README.md lists every key).
 *
 * Loading fails closed: duplicate keys, unknown keys, wrong types, values out
 * of bounds and cross-field mistakes are all errors, each reported as
 * "file: field: reason" (nginx -t style), and all of them are reported, not
 * only the first. Secrets may be written "$ENV_NAME" and are then read from
 * the environment at load time.
 *
 * A loaded conf is immutable and reference-counted: SIGHUP builds a new one
 * beside the old and swaps it; requests in flight keep the one they started
 * with.
 */
#ifndef CG_CONF_H
#define CG_CONF_H

#include <stddef.h>

struct json_t;

#define CONF_MAX_KEYS 8 /* api key hashes / webhook secrets kept during rotation */
#define CONF_MAX_SCHEDULE 32 /* webhooks.schedule_s entries */

struct conf_vendor {
    char *name;              /* adapter name: "clouddialer" */
    char *base_url;          /* e.g. "https://api.clouddialer.in" (no trailing slash) */
    char *api_key;           /* default credential (may be overridden per tenant) */
    char *from_number;       /* default caller ID, E.164 */
    char *time_zone;         /* IANA zone for vendor times without a zone */
    long connect_timeout_ms; /* connect deadline */
    long timeout_ms;         /* whole-attempt deadline */
    char **recording_hosts;  /* hosts recordings may come from besides base_url's */
    size_t nrecording_hosts;
    long recording_timeout_ms; /* whole recording download */
    long health_interval_ms; /* between health probes (adapters that have one); 0 = off */
    /* Caps shared by every replica through Redis, per vendor account (throttle.h). */
    long max_concurrent;     /* placement requests outstanding at once; 0 = no cap */
    double max_calls_per_s;  /* placement requests per second; 0 = no cap */
    double calls_burst;      /* ... and how many may come at once */
};

struct conf_tenant_vendor {
    char *vendor;            /* vendor name */
    char *api_key;           /* tenant's own credential, or NULL for the vendor's */
    char *from_number;       /* tenant's caller ID on this vendor, or NULL */
    char *webhook_token;     /* secret path token for /v1/webhooks/<vendor>/<token> */
    char *webhook_basic_auth; /* "user:password" the vendor must also send as HTTP Basic
                                 (CCAI's session events), or NULL */
    char *base_url;          /* tenant's own vendor host (Getdesk), or NULL for the vendor's */
    struct json_t *options;  /* vendor-specific settings, an object of strings, or NULL */
};

struct conf_tenant {
    char *id;
    char *key_sha256[CONF_MAX_KEYS];   /* lower-case hex SHA-256 of each valid API key */
    size_t nkeys;
    char *default_country;             /* ISO 3166-1 alpha-2 */
    char *callback_url;                /* default event endpoint, or NULL */
    char *webhook_secret[CONF_MAX_KEYS]; /* "whsec_..." signing secrets; first signs, all sign */
    size_t nsecrets;
    int agents_pass_through;           /* an agent id not in the directory is sent to the
                                          vendor as is (else 404) */
    struct {                           /* token buckets shared by every replica (throttle.h) */
        double requests_per_s;         /* every API request; 0 = no limit */
        double burst;
        double calls_per_s;            /* POST /v1/calls, on top of that; 0 = no limit */
        double calls_burst;
    } rate_limit;
    struct conf_tenant_vendor *vendors; /* the vendors this tenant may use, in order */
    size_t nvendors;
};

struct conf {
    int refs;
    char *path;
    char *listen_host;
    int listen_port;
    char *admin_listen_host;           /* NULL: admin endpoints are not served */
    int admin_listen_port;
    char *admin_token_sha256;          /* hex SHA-256 of the admin token, or NULL */
    char *routes_dir;                  /* absolute or relative to the conf file's dir */
    char *log_level;

    struct {
        char *host;
        int port;
        char *unix_path;
        char *password;
        int db;
        char *key_prefix;
        int connect_timeout_ms;
        int command_timeout_ms;
        int backoff_min_ms;
        int backoff_max_ms;
    } redis;

    struct {
        long max_body_bytes;         /* /v1 API bodies -> 413 beyond */
        long max_webhook_body_bytes; /* vendor webhook bodies */
        long max_header_bytes;       /* request line + headers */
        long idle_timeout_ms;        /* per read/write on a client connection */
        long request_timeout_ms;     /* absolute deadline of one request inside callgate */
        long drain_timeout_ms;       /* SIGTERM: how long in-flight work may take */
        long max_vendor_response_bytes;
        long header_timeout_ms;      /* a new connection must send a whole request head by then */
        long max_connections;        /* open client connections; beyond: 503 and close */
    } limits;

    struct {
        long ttl_s;                  /* how long a finished answer is replayed */
        long in_flight_s;            /* how long an unfinished key blocks duplicates */
    } idempotency;

    struct {
        int allow_http;              /* accept http:// callback URLs (tests, demos) */
        char **allow_hosts;          /* hosts allowed even if private/loopback */
        size_t nallow_hosts;
        long timeout_ms;             /* one delivery attempt */
    } callbacks;

    struct {
        long schedule_ms[CONF_MAX_SCHEDULE]; /* delay before retry n; the last one repeats */
        size_t nschedule;
        long max_age_s;              /* no attempt is scheduled later than this after creation */
        long max_attempts;           /* attempts in all before the dead letter (0 = no limit) */
        long visibility_timeout_ms;  /* a claimed delivery idle this long is taken over */
        long poll_interval_ms;       /* how often each replica looks for work */
        long per_endpoint_concurrency; /* attempts in flight per endpoint, per replica */
        long max_concurrency;        /* attempts in flight per replica */
        int jitter;                  /* shorten each retry delay by up to 20 % at random */
    } webhooks;

    struct {
        int consecutive;             /* failures in a row that open a circuit (0: off) */
        int ratio_pct;               /* ... or this share of the recent attempts (0: off) */
        int window;                  /* recent attempts the ratio looks at */
        int min_attempts;            /* ... once there are at least this many */
        long open_ms;                /* open this long before one probe goes through */
    } breaker;

    struct {                         /* failover attempts, per replica (throttle.h) */
        int ratio_pct;               /* at most this share of first attempts ... */
        double min_per_s;            /* ... plus this many per second */
        int window_s;                /* over this sliding window */
    } retry_budget;
    struct {
        int require_admin_token;     /* GET /metrics wants the admin token */
    } metrics;

    struct conf_vendor *vendors;
    size_t nvendors;
    struct conf_tenant *tenants;
    size_t ntenants;

    /* Sorted lookups, so that 10,000 tenants cost what 10 do (conf.c). */
    struct conf_index *by_id;      /* tenant id */
    struct conf_index *by_key;     /* API key SHA-256 */
    struct conf_index *by_token;   /* vendor + SHA-256 of the webhook token */
    size_t nby_id, nby_key, nby_token;
};

struct conf_index {
    const char *vendor;            /* by_token only, else "" */
    char *name;                    /* the id or hash (owned by by_token, else borrowed) */
    const struct conf_tenant *tenant;
    size_t order;                  /* the tenant's place in the file (for messages) */
};

/*
 * Load and validate path. On success returns a conf with one reference.
 * On failure returns NULL and *errors (caller frees) holds one line per
 * problem: "path: field: reason\n".
 */
struct conf *conf_load(const char *path, char **errors);

/* Same, from a string (tests); name is used in messages. */
struct conf *conf_load_string(const char *text, const char *name, char **errors);

struct conf *conf_ref(struct conf *c);
void conf_unref(struct conf *c);

const struct conf_vendor *conf_vendor_find(const struct conf *c, const char *name);
const struct conf_tenant *conf_tenant_find(const struct conf *c, const char *id);
const struct conf_tenant_vendor *conf_tenant_vendor(const struct conf_tenant *t,
                                                    const char *vendor);

/*
 * The tenant whose API key hashes to key_sha256 (hex), or NULL: a sorted
 * lookup by the hash (which reveals nothing of the key), then a
 * constant-time comparison.
 */
const struct conf_tenant *conf_tenant_by_key(const struct conf *c, const char *key_sha256);

/*
 * The tenant whose webhook token for vendor equals token, or NULL: looked up
 * by the token's SHA-256, then compared in constant time.
 */
const struct conf_tenant *conf_tenant_by_webhook_token(const struct conf *c, const char *vendor,
                                                       const char *token);

/* The routes directory resolved against the conf file's directory (caller frees). */
char *conf_routes_path(const struct conf *c);

#endif
