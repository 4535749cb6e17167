/*
 * conf.c: load, validate and free the configuration. The validator walks the
 * JSON tree with a small set of typed readers; each reader records a
 * "file: field: reason" line on error and returns a default, so one pass
 * reports every mistake. Unknown keys are found by listing the keys each
 * object may have.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <event2/http.h>

#include "conf.h"
#include "crypto.h"
#include "gw.h"
#include "phone.h"
#include "ssrf.h"
#include "util.h"
#include "vendor.h"

struct conf_check {
    const char *file;  /* name used in messages */
    char *errors;      /* accumulated lines */
    size_t len;
    int count;
};

static void conf_err(struct conf_check *ck, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
conf_err(struct conf_check *ck, const char *field, const char *fmt, ...)
{
    char msg[512], line[1024];
    size_t n;
    char *grown;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    n = (size_t)snprintf(line, sizeof(line), "%s: %s: %s\n", ck->file, field, msg);
    if (n >= sizeof(line)) {
        n = sizeof(line) - 1;
    }
    grown = realloc(ck->errors, ck->len + n + 1);
    if (grown == NULL) {
        return;
    }
    ck->errors = grown;
    memcpy(ck->errors + ck->len, line, n + 1);
    ck->len += n;
    ck->count++;
}

/* "parent.key", or "key" at the top. */
static void
conf_field(char *out, size_t outlen, const char *parent, const char *key)
{
    if (parent == NULL || parent[0] == '\0') {
        snprintf(out, outlen, "%s", key);
    } else {
        snprintf(out, outlen, "%s.%s", parent, key);
    }
}

/* Report every key of obj that is not in allowed (NULL-terminated). */
static void
conf_check_keys(struct conf_check *ck, const char *path, json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *val;
    char field[256];
    size_t i;

    json_object_foreach(obj, key, val) {
        int found = 0;
        for (i = 0; allowed[i] != NULL; i++) {
            if (strcmp(key, allowed[i]) == 0) {
                found = 1;
                break;
            }
        }
        if (!found) {
            conf_field(field, sizeof(field), path, key);
            conf_err(ck, field, "unknown key");
        }
    }
}

/* An object member that must be an object (or absent). Returns it or NULL. */
static json_t *
conf_object(struct conf_check *ck, const char *path, json_t *obj, const char *key, int required)
{
    json_t *v = json_object_get(obj, key);
    char field[256];

    conf_field(field, sizeof(field), path, key);
    if (v == NULL) {
        if (required) {
            conf_err(ck, field, "is required");
        }
        return NULL;
    }
    if (!json_is_object(v)) {
        conf_err(ck, field, "must be an object");
        return NULL;
    }
    return v;
}

/* Resolve "$ENV_NAME" references; other strings are returned as they are. */
static char *
conf_resolve_secret(struct conf_check *ck, const char *field, const char *s)
{
    const char *val;
    size_t i;

    if (s[0] != '$') {
        return strdup(s);
    }
    for (i = 1; s[i] != '\0'; i++) {
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_')) {
            conf_err(ck, field, "\"%s\" is not a valid $ENV_NAME reference", s);
            return NULL;
        }
    }
    if (i == 1) {
        conf_err(ck, field, "empty $ENV_NAME reference");
        return NULL;
    }
    val = getenv(s + 1);
    if (val == NULL || val[0] == '\0') {
        conf_err(ck, field, "environment variable %s is not set", s + 1);
        return NULL;
    }
    return strdup(val);
}

/*
 * A string member. Returns a new copy, def's copy when absent, or NULL.
 * secret: "$ENV" references are resolved.
 */
static char *
conf_string(struct conf_check *ck, const char *path, json_t *obj, const char *key, int required,
            const char *def, int secret)
{
    json_t *v = json_object_get(obj, key);
    char field[256];

    conf_field(field, sizeof(field), path, key);
    if (v == NULL || json_is_null(v)) {
        if (required) {
            conf_err(ck, field, "is required");
            return NULL;
        }
        return def != NULL ? strdup(def) : NULL;
    }
    if (!json_is_string(v)) {
        conf_err(ck, field, "must be a string");
        return NULL;
    }
    if (json_string_length(v) == 0) {
        conf_err(ck, field, "must not be empty");
        return NULL;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        conf_err(ck, field, "must not contain NUL");
        return NULL;
    }
    return secret ? conf_resolve_secret(ck, field, json_string_value(v))
                  : strdup(json_string_value(v));
}

static long
conf_int(struct conf_check *ck, const char *path, json_t *obj, const char *key, long def,
         long min, long max)
{
    json_t *v = json_object_get(obj, key);
    char field[256];
    json_int_t n;

    if (v == NULL) {
        return def;
    }
    conf_field(field, sizeof(field), path, key);
    if (!json_is_integer(v)) {
        conf_err(ck, field, "must be an integer");
        return def;
    }
    n = json_integer_value(v);
    if (n < min || n > max) {
        conf_err(ck, field, "must be between %ld and %ld (got %lld)", min, max, (long long)n);
        return def;
    }
    return (long)n;
}

/* A number (integer or real) in [min, max]. */
static double
conf_number(struct conf_check *ck, const char *path, json_t *obj, const char *key, double def,
            double min, double max)
{
    json_t *v = json_object_get(obj, key);
    char field[256];
    double d;

    if (v == NULL) {
        return def;
    }
    conf_field(field, sizeof(field), path, key);
    if (!json_is_number(v)) {
        conf_err(ck, field, "must be a number");
        return def;
    }
    d = json_number_value(v);
    if (!(d >= min && d <= max)) {
        conf_err(ck, field, "must be between %g and %g (got %g)", min, max, d);
        return def;
    }
    return d;
}

static int
conf_bool(struct conf_check *ck, const char *path, json_t *obj, const char *key, int def)
{
    json_t *v = json_object_get(obj, key);
    char field[256];

    if (v == NULL) {
        return def;
    }
    if (!json_is_boolean(v)) {
        conf_field(field, sizeof(field), path, key);
        conf_err(ck, field, "must be true or false");
        return def;
    }
    return json_is_true(v);
}

/* A string or an array of strings, into out[] (at most max). Returns the count. */
static size_t
conf_string_list(struct conf_check *ck, const char *path, json_t *obj, const char *key,
                 char **out, size_t max, int secret)
{
    json_t *v = json_object_get(obj, key), *item;
    char field[256], ifield[300];
    size_t i, n = 0;

    conf_field(field, sizeof(field), path, key);
    if (v == NULL) {
        return 0;
    }
    if (json_is_string(v)) {
        out[0] = conf_string(ck, path, obj, key, 1, NULL, secret);
        return out[0] != NULL ? 1 : 0;
    }
    if (!json_is_array(v)) {
        conf_err(ck, field, "must be a string or an array of strings");
        return 0;
    }
    if (json_array_size(v) > max) {
        conf_err(ck, field, "at most %zu entries", max);
        return 0;
    }
    json_array_foreach(v, i, item) {
        snprintf(ifield, sizeof(ifield), "%s[%zu]", field, i);
        if (!json_is_string(item) || json_string_length(item) == 0) {
            conf_err(ck, ifield, "must be a non-empty string");
            continue;
        }
        out[n] = secret ? conf_resolve_secret(ck, ifield, json_string_value(item))
                        : strdup(json_string_value(item));
        if (out[n] != NULL) {
            n++;
        }
    }
    return n;
}

/* "host:port" or "[v6]:port" into a new host string and a port. */
static int
conf_parse_listen(const char *s, char **host, int *port)
{
    const char *colon;
    long p;
    size_t hlen;

    if (s == NULL) {
        return -1;
    }
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            return -1;
        }
        hlen = (size_t)(close - s - 1);
        colon = close + 1;
        s++;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            return -1;
        }
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || util_parse_long(colon + 1, 1, 65535, &p) != 0) {
        return -1;
    }
    *host = strndup(s, hlen);
    *port = (int)p;
    return *host != NULL ? 0 : -1;
}

static int
conf_is_hex64(const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])) {
            return 0;
        }
    }
    return i == 64;
}

/* An http(s) URL with a host; https only unless allow_http. */
static int
conf_check_url(struct conf_check *ck, const char *field, const char *url, int allow_http)
{
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(url, 0);
    const char *scheme;
    int ok = 1;

    if (u == NULL || evhttp_uri_get_host(u) == NULL || evhttp_uri_get_host(u)[0] == '\0') {
        conf_err(ck, field, "\"%s\" is not an absolute URL", url);
        ok = 0;
    } else {
        scheme = evhttp_uri_get_scheme(u);
        if (scheme == NULL || (strcmp(scheme, "https") != 0 &&
                               !(allow_http && strcmp(scheme, "http") == 0))) {
            conf_err(ck, field, "must be an https URL%s",
                     allow_http ? " or an http URL" : " (callbacks.allow_http is off)");
            ok = 0;
        } else if (evhttp_uri_get_userinfo(u) != NULL) {
            conf_err(ck, field, "must not carry credentials");
            ok = 0;
        }
    }
    if (u != NULL) {
        evhttp_uri_free(u);
    }
    return ok;
}

static void
conf_parse_redis(struct conf_check *ck, struct conf *c, json_t *root)
{
    static const char *const keys[] = {"host", "port", "unix", "password", "db", "key_prefix",
                                       "connect_timeout_ms", "command_timeout_ms",
                                       "backoff_min_ms", "backoff_max_ms", NULL};
    json_t *r = conf_object(ck, "", root, "redis", 0);
    json_t *empty = json_object();

    if (r == NULL) {
        r = empty;
    }
    conf_check_keys(ck, "redis", r, keys);
    c->redis.host = conf_string(ck, "redis", r, "host", 0, "127.0.0.1", 0);
    c->redis.port = (int)conf_int(ck, "redis", r, "port", 6379, 1, 65535);
    c->redis.unix_path = conf_string(ck, "redis", r, "unix", 0, NULL, 0);
    c->redis.password = conf_string(ck, "redis", r, "password", 0, NULL, 1);
    c->redis.db = (int)conf_int(ck, "redis", r, "db", 0, 0, 1024);
    c->redis.key_prefix = conf_string(ck, "redis", r, "key_prefix", 0, "cg:", 0);
    c->redis.connect_timeout_ms = (int)conf_int(ck, "redis", r, "connect_timeout_ms", 1000, 10,
                                                60000);
    c->redis.command_timeout_ms = (int)conf_int(ck, "redis", r, "command_timeout_ms", 1000, 10,
                                                60000);
    c->redis.backoff_min_ms = (int)conf_int(ck, "redis", r, "backoff_min_ms", 100, 1, 60000);
    c->redis.backoff_max_ms = (int)conf_int(ck, "redis", r, "backoff_max_ms", 2000, 1, 600000);
    if (c->redis.backoff_max_ms < c->redis.backoff_min_ms) {
        conf_err(ck, "redis.backoff_max_ms", "must be at least backoff_min_ms");
    }
    json_decref(empty);
}

/*
 * A callbacks.allow_hosts entry: an address or CIDR in inet_pton spelling
 * (how ssrf.c reads them), or a host name: letters, digits, '-', '_' and
 * dots, with a last label that is not a number (that would be a mistyped
 * address, e.g. 10.0.0.256, and match nothing).
 */
static int
conf_allow_host_ok(const char *s)
{
    char text[INET6_ADDRSTRLEN + 8];
    unsigned char buf[16];
    const char *slash = strchr(s, '/'), *last;
    size_t n = slash != NULL ? (size_t)(slash - s) : strlen(s);

    if (n > 0 && n < sizeof(text)) {
        int max = 0;

        memcpy(text, s, n);
        text[n] = '\0';
        if (inet_pton(AF_INET, text, buf) == 1) {
            max = 32;
        } else if (inet_pton(AF_INET6, text, buf) == 1) {
            max = 128;
        }
        if (max > 0) {
            size_t plen = slash != NULL ? strlen(slash + 1) : 0;

            return slash == NULL || (plen >= 1 && plen <= 3 &&
                                     strspn(slash + 1, "0123456789") == plen &&
                                     atoi(slash + 1) <= max);
        }
    }
    n = strlen(s);
    if (slash != NULL || n == 0 || n > 254 || s[0] == '.' || strstr(s, "..") != NULL ||
        strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != n) {
        return 0;
    }
    if (s[n - 1] == '.') {
        n--; /* the root dot: "sink.test." is "sink.test" */
    }
    for (last = s + n; last > s && last[-1] != '.'; last--) {
    }
    n -= (size_t)(last - s);
    if (n >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X')) {
        return strspn(last + 2, "0123456789abcdefABCDEF") < n - 2;
    }
    return strspn(last, "0123456789") < n;
}

static void
conf_parse_limits(struct conf_check *ck, struct conf *c, json_t *root)
{
    static const char *const lkeys[] = {"max_body_bytes", "max_webhook_body_bytes",
                                        "max_header_bytes", "idle_timeout_ms",
                                        "request_timeout_ms", "drain_timeout_ms",
                                        "max_vendor_response_bytes", "header_timeout_ms",
                                        "max_connections", NULL};
    static const char *const ikeys[] = {"ttl_s", "in_flight_s", NULL};
    static const char *const ckeys[] = {"allow_http", "allow_hosts", "timeout_ms", NULL};
    json_t *empty = json_object();
    json_t *l = conf_object(ck, "", root, "limits", 0);
    json_t *i = conf_object(ck, "", root, "idempotency", 0);
    json_t *cb = conf_object(ck, "", root, "callbacks", 0);
    char *hosts[64];
    size_t n, k;

    l = l != NULL ? l : empty;
    i = i != NULL ? i : empty;
    cb = cb != NULL ? cb : empty;
    conf_check_keys(ck, "limits", l, lkeys);
    c->limits.max_body_bytes = conf_int(ck, "limits", l, "max_body_bytes", 65536, 1024, 16 << 20);
    c->limits.max_webhook_body_bytes =
        conf_int(ck, "limits", l, "max_webhook_body_bytes", 262144, 1024, 16 << 20);
    c->limits.max_header_bytes =
        conf_int(ck, "limits", l, "max_header_bytes", 16384, 1024, 1 << 20);
    c->limits.idle_timeout_ms = conf_int(ck, "limits", l, "idle_timeout_ms", 60000, 100, 3600000);
    c->limits.request_timeout_ms =
        conf_int(ck, "limits", l, "request_timeout_ms", 30000, 100, 600000);
    c->limits.drain_timeout_ms = conf_int(ck, "limits", l, "drain_timeout_ms", 10000, 0, 600000);
    c->limits.max_vendor_response_bytes =
        conf_int(ck, "limits", l, "max_vendor_response_bytes", 1 << 20, 1024, 64 << 20);

    c->limits.header_timeout_ms =
        conf_int(ck, "limits", l, "header_timeout_ms", 10000, 100, 600000);
    c->limits.max_connections = conf_int(ck, "limits", l, "max_connections", 4096, 1, 1000000);
    conf_check_keys(ck, "idempotency", i, ikeys);
    c->idempotency.ttl_s = conf_int(ck, "idempotency", i, "ttl_s", 86400, 60, 30 * 86400);
    c->idempotency.in_flight_s = conf_int(ck, "idempotency", i, "in_flight_s", 60, 1, 86400);

    conf_check_keys(ck, "callbacks", cb, ckeys);
    c->callbacks.allow_http = conf_bool(ck, "callbacks", cb, "allow_http", 0);
    c->callbacks.timeout_ms = conf_int(ck, "callbacks", cb, "timeout_ms", 10000, 100, 120000);
    n = conf_string_list(ck, "callbacks", cb, "allow_hosts", hosts, GW_ARRAY_LEN(hosts), 0);
    for (k = 0; k < n; k++) {
        if (hosts[k] != NULL && !conf_allow_host_ok(hosts[k])) {
            conf_err(ck, "callbacks.allow_hosts", "\"%s\" is not a host name, address or CIDR",
                     hosts[k]);
        }
    }
    if (n > 0) {
        c->callbacks.allow_hosts = calloc(n, sizeof(char *));
        if (c->callbacks.allow_hosts != NULL) {
            memcpy(c->callbacks.allow_hosts, hosts, n * sizeof(char *));
            c->callbacks.nallow_hosts = n;
        } else {
            while (n > 0) {
                free(hosts[--n]);
            }
        }
    }
    json_decref(empty);
}

/*
 * webhooks: the relay's retry schedule and its limits (relay.c). The
 * schedule is given in seconds, or in milliseconds for tests (schedule_ms);
 * the default is the contract's: 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 3 h,
 * 6 h, 12 h, then every 24 h until max_age_s (3 days).
 */
static void
conf_parse_webhooks(struct conf_check *ck, struct conf *c, json_t *root)
{
    static const char *const keys[] = {"schedule_s", "schedule_ms", "max_age_s", "max_attempts",
                                       "visibility_timeout_ms", "poll_interval_ms",
                                       "per_endpoint_concurrency", "max_concurrency", "jitter",
                                       NULL};
    static const long def_s[] = {5, 30, 120, 600, 1800, 3600, 10800, 21600, 43200, 86400};
    json_t *empty = json_object();
    json_t *w = conf_object(ck, "", root, "webhooks", 0);
    json_t *sched_s, *sched_ms, *sched, *item;
    char field[64];
    long unit, max;
    size_t i;

    w = w != NULL ? w : empty;
    conf_check_keys(ck, "webhooks", w, keys);
    sched_s = json_object_get(w, "schedule_s");
    sched_ms = json_object_get(w, "schedule_ms");
    if (sched_s != NULL && sched_ms != NULL) {
        conf_err(ck, "webhooks.schedule_ms", "give schedule_s or schedule_ms, not both");
    }
    sched = sched_s != NULL ? sched_s : sched_ms;
    unit = sched_s != NULL ? 1000 : 1;
    max = 7L * 86400 * 1000 / unit; /* one step of at most a week */
    for (i = 0; i < GW_ARRAY_LEN(def_s); i++) {
        c->webhooks.schedule_ms[i] = def_s[i] * 1000;
    }
    c->webhooks.nschedule = GW_ARRAY_LEN(def_s);
    if (sched != NULL) {
        snprintf(field, sizeof(field), "webhooks.%s",
                 sched_s != NULL ? "schedule_s" : "schedule_ms");
        if (!json_is_array(sched) || json_array_size(sched) == 0 ||
            json_array_size(sched) > CONF_MAX_SCHEDULE) {
            conf_err(ck, field, "must be an array of 1 to %d positive integers", CONF_MAX_SCHEDULE);
        } else {
            json_array_foreach(sched, i, item) {
                if (!json_is_integer(item) || json_integer_value(item) < 1 ||
                    json_integer_value(item) > max) {
                    conf_err(ck, field, "entry %zu must be an integer from 1 to %ld", i, max);
                    continue;
                }
                c->webhooks.schedule_ms[i] = (long)json_integer_value(item) * unit;
            }
            c->webhooks.nschedule = json_array_size(sched);
        }
    }
    c->webhooks.max_age_s = conf_int(ck, "webhooks", w, "max_age_s", 259200, 1, 30L * 86400);
    c->webhooks.max_attempts = conf_int(ck, "webhooks", w, "max_attempts", 0, 0, 1000);
    c->webhooks.visibility_timeout_ms =
        conf_int(ck, "webhooks", w, "visibility_timeout_ms", 60000, 100, 3600000);
    c->webhooks.poll_interval_ms = conf_int(ck, "webhooks", w, "poll_interval_ms", 200, 10, 60000);
    c->webhooks.per_endpoint_concurrency =
        conf_int(ck, "webhooks", w, "per_endpoint_concurrency", 4, 1, 1000);
    c->webhooks.max_concurrency = conf_int(ck, "webhooks", w, "max_concurrency", 64, 1, 10000);
    c->webhooks.jitter = conf_bool(ck, "webhooks", w, "jitter", 1);
    /* A claim must outlive the attempt, or a slow but live attempt is taken over and sent twice. */
    if (c->webhooks.visibility_timeout_ms <= c->callbacks.timeout_ms) {
        conf_err(ck, "webhooks.visibility_timeout_ms", "must exceed callbacks.timeout_ms (%ld)",
                 c->callbacks.timeout_ms);
    }
    json_decref(empty);
}

static void
conf_parse_vendors(struct conf_check *ck, struct conf *c, json_t *root)
{
    static const char *const keys[] = {"base_url", "api_key", "from_number", "time_zone",
                                       "connect_timeout_ms", "timeout_ms", "recording_hosts",
                                       "recording_timeout_ms", "health_interval_ms",
                                       "max_concurrent", "max_calls_per_s", "calls_burst", NULL};
    char *hosts[32];
    size_t nh;
    json_t *vs = conf_object(ck, "", root, "vendors", 1), *v;
    const char *name;
    char path[200], field[256], e164[PHONE_E164_MAX];
    const char *why;
    size_t n = 0;

    if (vs == NULL) {
        return;
    }
    if (json_object_size(vs) == 0) {
        conf_err(ck, "vendors", "at least one vendor is required");
        return;
    }
    c->vendors = calloc(json_object_size(vs), sizeof(*c->vendors));
    if (c->vendors == NULL) {
        conf_err(ck, "vendors", "out of memory");
        return;
    }
    json_object_foreach(vs, name, v) {
        struct conf_vendor *cv = &c->vendors[n];

        snprintf(path, sizeof(path), "vendors.%s", name);
        if (!json_is_object(v)) {
            conf_err(ck, path, "must be an object");
            continue;
        }
        if (vendor_ops_find(name) == NULL) {
            conf_err(ck, path, "unknown vendor (known: %s)", vendor_known_names());
            continue;
        }
        conf_check_keys(ck, path, v, keys);
        cv->name = strdup(name);
        cv->base_url = conf_string(ck, path, v, "base_url", 1, NULL, 0);
        if (cv->base_url != NULL) {
            size_t l = strlen(cv->base_url);
            conf_field(field, sizeof(field), path, "base_url");
            if (conf_check_url(ck, field, cv->base_url, 1) && l > 0 &&
                cv->base_url[l - 1] == '/') {
                cv->base_url[l - 1] = '\0';
            }
        }
        cv->api_key = conf_string(ck, path, v, "api_key", 0, NULL, 1);
        cv->from_number = conf_string(ck, path, v, "from_number", 0, NULL, 0);
        if (cv->from_number != NULL) {
            conf_field(field, sizeof(field), path, "from_number");
            if (phone_normalize(cv->from_number, NULL, e164, sizeof(e164), &why) != 0) {
                conf_err(ck, field, "not an E.164 number: %s", why);
            } else {
                free(cv->from_number);
                cv->from_number = strdup(e164);
            }
        }
        cv->time_zone = conf_string(ck, path, v, "time_zone", 0, "UTC", 0);
        if (cv->time_zone != NULL && !util_zone_valid(cv->time_zone)) {
            conf_field(field, sizeof(field), path, "time_zone");
            conf_err(ck, field, "unknown IANA time zone \"%s\"", cv->time_zone);
        }
        cv->connect_timeout_ms = conf_int(ck, path, v, "connect_timeout_ms", 3000, 10, 60000);
        cv->timeout_ms = conf_int(ck, path, v, "timeout_ms", 10000, 100, 300000);
        if (cv->connect_timeout_ms > cv->timeout_ms) {
            conf_field(field, sizeof(field), path, "connect_timeout_ms");
            conf_err(ck, field, "must not exceed timeout_ms");
        }
        cv->recording_timeout_ms =
            conf_int(ck, path, v, "recording_timeout_ms", 300000, 1000, 3600000);
        cv->health_interval_ms = conf_int(ck, path, v, "health_interval_ms", 30000, 0, 3600000);
        if (cv->health_interval_ms > 0 && cv->health_interval_ms < 100) {
            conf_field(field, sizeof(field), path, "health_interval_ms");
            conf_err(ck, field, "must be 0 (off) or at least 100");
        }
        /* Adapters know their vendor's documented rate (CCAI: 10 requests/s). */
        cv->max_concurrent = conf_int(ck, path, v, "max_concurrent", 0, 0, 100000);
        cv->max_calls_per_s = conf_number(ck, path, v, "max_calls_per_s",
                                          vendor_ops_find(name)->rate_limit_per_s, 0, 100000);
        cv->calls_burst = conf_number(ck, path, v, "calls_burst",
                                      cv->max_calls_per_s < 1 ? 1 : cv->max_calls_per_s, 1,
                                      100000);
        nh = conf_string_list(ck, path, v, "recording_hosts", hosts, GW_ARRAY_LEN(hosts), 0);
        if (nh > 0 && (cv->recording_hosts = calloc(nh, sizeof(char *))) != NULL) {
            memcpy(cv->recording_hosts, hosts, nh * sizeof(char *));
            cv->nrecording_hosts = nh;
        } else {
            while (nh > 0) {
                free(hosts[--nh]);
            }
        }
        if (cv->timeout_ms + 1000 > c->limits.request_timeout_ms) {
            conf_field(field, sizeof(field), path, "timeout_ms");
            conf_err(ck, field, "must be at least 1000 ms below limits.request_timeout_ms (%ld)",
                     c->limits.request_timeout_ms);
        }
        n++;
    }
    c->nvendors = n;
}

/* "options": an object of strings ("$ENV" allowed), handed to the adapter as is. */
static json_t *
conf_options(struct conf_check *ck, const char *path, json_t *item)
{
    json_t *v = json_object_get(item, "options"), *out, *val;
    char field[300];
    const char *key;

    if (v == NULL) {
        return NULL;
    }
    conf_field(field, sizeof(field), path, "options");
    if (!json_is_object(v)) {
        conf_err(ck, field, "must be an object of strings");
        return NULL;
    }
    out = json_object();
    json_object_foreach(v, key, val) {
        char *s;
        if (!json_is_string(val)) {
            conf_err(ck, field, "%s must be a string", key);
            continue;
        }
        s = conf_resolve_secret(ck, field, json_string_value(val));
        if (s != NULL) {
            json_object_set_new(out, key, json_string(s));
            free(s);
        }
    }
    return out;
}

static void
conf_parse_tenant_vendors(struct conf_check *ck, struct conf *c, struct conf_tenant *t,
                          const char *path, json_t *list)
{
    static const char *const keys[] = {"vendor", "api_key", "from_number", "webhook_token",
                                       "webhook_basic_auth", "base_url", "options", NULL};
    char ipath[256], field[300], e164[PHONE_E164_MAX];
    const char *why;
    json_t *item;
    size_t i, j;

    if (list == NULL) {
        conf_err(ck, path, "is required (the vendors this tenant may use)");
        return;
    }
    if (!json_is_array(list) || json_array_size(list) == 0) {
        conf_err(ck, path, "must be a non-empty array");
        return;
    }
    t->vendors = calloc(json_array_size(list), sizeof(*t->vendors));
    if (t->vendors == NULL) {
        return;
    }
    json_array_foreach(list, i, item) {
        struct conf_tenant_vendor *tv = &t->vendors[t->nvendors];

        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        if (json_is_string(item)) {
            tv->vendor = strdup(json_string_value(item));
        } else if (json_is_object(item)) {
            conf_check_keys(ck, ipath, item, keys);
            tv->vendor = conf_string(ck, ipath, item, "vendor", 1, NULL, 0);
            tv->api_key = conf_string(ck, ipath, item, "api_key", 0, NULL, 1);
            tv->from_number = conf_string(ck, ipath, item, "from_number", 0, NULL, 0);
            tv->webhook_token = conf_string(ck, ipath, item, "webhook_token", 0, NULL, 1);
            tv->webhook_basic_auth =
                conf_string(ck, ipath, item, "webhook_basic_auth", 0, NULL, 1);
            tv->base_url = conf_string(ck, ipath, item, "base_url", 0, NULL, 0);
            tv->options = conf_options(ck, ipath, item);
            if (tv->base_url != NULL) {
                size_t l = strlen(tv->base_url);
                conf_field(field, sizeof(field), ipath, "base_url");
                if (conf_check_url(ck, field, tv->base_url, 1) && l > 0 &&
                    tv->base_url[l - 1] == '/') {
                    tv->base_url[l - 1] = '\0';
                }
            }
        } else {
            conf_err(ck, ipath, "must be a vendor name or an object");
            continue;
        }
        if (tv->vendor == NULL) {
            free(tv->api_key);
            free(tv->from_number);
            free(tv->webhook_token);
            free(tv->webhook_basic_auth);
            free(tv->base_url);
            json_decref(tv->options);
            memset(tv, 0, sizeof(*tv));
            continue;
        }
        if (conf_vendor_find(c, tv->vendor) == NULL) {
            conf_err(ck, ipath, "vendor \"%s\" is not configured in vendors", tv->vendor);
        }
        for (j = 0; j < t->nvendors; j++) {
            if (strcmp(t->vendors[j].vendor, tv->vendor) == 0) {
                conf_err(ck, ipath, "vendor \"%s\" listed twice", tv->vendor);
            }
        }
        if (tv->from_number != NULL) {
            conf_field(field, sizeof(field), ipath, "from_number");
            if (phone_normalize(tv->from_number, NULL, e164, sizeof(e164), &why) != 0) {
                conf_err(ck, field, "not an E.164 number: %s", why);
            } else {
                free(tv->from_number);
                tv->from_number = strdup(e164);
            }
        }
        if (tv->webhook_token != NULL && strlen(tv->webhook_token) < 16) {
            conf_field(field, sizeof(field), ipath, "webhook_token");
            conf_err(ck, field, "must be at least 16 characters (it is the only authenticator)");
        }
        if (tv->webhook_basic_auth != NULL) {
            const char *colon = strchr(tv->webhook_basic_auth, ':');
            conf_field(field, sizeof(field), ipath, "webhook_basic_auth");
            if (colon == NULL || colon == tv->webhook_basic_auth || colon[1] == '\0') {
                conf_err(ck, field, "must be \"user:password\"");
            }
            if (tv->webhook_token == NULL) {
                conf_err(ck, field, "needs webhook_token (the token names the tenant)");
            }
        }
        t->nvendors++;
    }
}

/* A tenant's "rate_limit": requests (every API call) and calls (placements) per second. */
static void
conf_parse_rate_limit(struct conf_check *ck, struct conf_tenant *t, const char *path, json_t *obj)
{
    static const char *const keys[] = {"requests_per_s", "burst", "calls_per_s", "calls_burst",
                                       NULL};
    char rpath[160];
    json_t *rl;

    snprintf(rpath, sizeof(rpath), "%s.rate_limit", path);
    rl = conf_object(ck, path, obj, "rate_limit", 0);
    if (rl != NULL) {
        conf_check_keys(ck, rpath, rl, keys);
    }
    t->rate_limit.requests_per_s = conf_number(ck, rpath, rl, "requests_per_s", 0, 0, 1e6);
    t->rate_limit.burst = conf_number(ck, rpath, rl, "burst",
                                      t->rate_limit.requests_per_s < 1
                                          ? 1
                                          : t->rate_limit.requests_per_s,
                                      1, 1e6);
    t->rate_limit.calls_per_s = conf_number(ck, rpath, rl, "calls_per_s", 0, 0, 1e6);
    t->rate_limit.calls_burst = conf_number(ck, rpath, rl, "calls_burst",
                                            t->rate_limit.calls_per_s < 1
                                                ? 1
                                                : t->rate_limit.calls_per_s,
                                            1, 1e6);
}

static void
conf_parse_tenant(struct conf_check *ck, struct conf *c, struct conf_tenant *t, json_t *obj,
                  size_t idx)
{
    static const char *const keys[] = {"id", "api_key_sha256", "default_country",
                                       "callback_url", "webhook_secret", "vendors",
                                       "unknown_agents", "rate_limit", NULL};
    char path[128], field[256];
    unsigned char raw[128];
    size_t i;
    int n;

    snprintf(path, sizeof(path), "tenants[%zu]", idx);
    conf_check_keys(ck, path, obj, keys);
    t->id = conf_string(ck, path, obj, "id", 1, NULL, 0);
    if (t->id != NULL) {
        snprintf(path, sizeof(path), "tenants.%s", t->id);
        for (i = 0; t->id[i] != '\0'; i++) {
            if (!(isalnum((unsigned char)t->id[i]) || strchr("-_.", t->id[i]) != NULL)) {
                conf_err(ck, path, "id may hold only letters, digits, '-', '_' and '.'");
                break;
            }
        }
        if (i > 64) {
            conf_err(ck, path, "id is longer than 64 characters");
        }
    }
    t->nkeys = conf_string_list(ck, path, obj, "api_key_sha256", t->key_sha256, CONF_MAX_KEYS,
                                1);
    conf_field(field, sizeof(field), path, "api_key_sha256");
    if (t->nkeys == 0) {
        conf_err(ck, field, "is required (hex SHA-256 of the tenant's API key)");
    }
    for (i = 0; i < t->nkeys; i++) {
        if (!conf_is_hex64(t->key_sha256[i])) {
            conf_err(ck, field, "entry %zu is not 64 lower-case hex digits", i);
        }
    }
    t->default_country = conf_string(ck, path, obj, "default_country", 1, NULL, 0);
    if (t->default_country != NULL) {
        for (i = 0; t->default_country[i] != '\0'; i++) {
            t->default_country[i] = (char)toupper((unsigned char)t->default_country[i]);
        }
        if (!phone_country_known(t->default_country)) {
            conf_field(field, sizeof(field), path, "default_country");
            conf_err(ck, field, "unknown ISO 3166 country \"%s\"", t->default_country);
        }
    }
    {
        char *ua = conf_string(ck, path, obj, "unknown_agents", 0, "reject", 0);
        if (ua != NULL && strcmp(ua, "pass_through") == 0) {
            t->agents_pass_through = 1;
        } else if (ua != NULL && strcmp(ua, "reject") != 0) {
            conf_field(field, sizeof(field), path, "unknown_agents");
            conf_err(ck, field, "must be \"reject\" or \"pass_through\"");
        }
        free(ua);
    }
    conf_parse_rate_limit(ck, t, path, obj);
    t->callback_url = conf_string(ck, path, obj, "callback_url", 0, NULL, 0);
    if (t->callback_url != NULL) {
        const char *why;

        conf_field(field, sizeof(field), path, "callback_url");
        /*
         * Then the address rules (ssrf.c), so a production configuration
         * cannot name a loopback, private or metadata endpoint. With
         * allow_http on (tests and demos) they are left to the connect-time
         * check, which always applies: such configurations point tenants at
         * local sinks and may allow-list them by address only.
         */
        if (conf_check_url(ck, field, t->callback_url, c->callbacks.allow_http) &&
            !c->callbacks.allow_http && ssrf_check_url(c, t->callback_url, &why) != 0) {
            conf_err(ck, field, "%s", why);
        }
    }
    t->nsecrets = conf_string_list(ck, path, obj, "webhook_secret", t->webhook_secret,
                                   CONF_MAX_KEYS, 1);
    conf_field(field, sizeof(field), path, "webhook_secret");
    if (t->nsecrets == 0) {
        conf_err(ck, field, "is required (a whsec_ secret to sign events)");
    }
    for (i = 0; i < t->nsecrets; i++) {
        const char *s = t->webhook_secret[i];
        if (strncmp(s, "whsec_", 6) != 0) {
            conf_err(ck, field, "entry %zu must start with whsec_", i);
            continue;
        }
        n = crypto_base64_decode(s + 6, strlen(s + 6), raw, sizeof(raw));
        if (n < 16 || n > 64) {
            conf_err(ck, field, "entry %zu: the part after whsec_ must be base64 of 16 to 64 bytes",
                     i);
        }
    }
    conf_field(field, sizeof(field), path, "vendors");
    conf_parse_tenant_vendors(ck, c, t, field, json_object_get(obj, "vendors"));
}

/* ---- tenant indexes --------------------------------------------------------- */

static int
conf_index_cmp(const void *a, const void *b)
{
    const struct conf_index *x = a, *y = b;
    int d = strcmp(x->vendor, y->vendor);

    if (d == 0) {
        d = strcmp(x->name, y->name);
    }
    if (d == 0) {
        d = x->order < y->order ? -1 : x->order > y->order;
    }
    return d;
}

/*
 * Sort idx and report every entry equal to the one before it (a later
 * tenant reusing what an earlier one has) with fmt (tenant ids as %s).
 */
static void
conf_index_sort(struct conf_check *ck, struct conf_index *idx, size_t n, const char *what)
{
    size_t i;

    qsort(idx, n, sizeof(*idx), conf_index_cmp);
    for (i = 1; i < n; i++) {
        if (strcmp(idx[i].vendor, idx[i - 1].vendor) == 0 &&
            strcmp(idx[i].name, idx[i - 1].name) == 0) {
            char path[128];
            snprintf(path, sizeof(path), "tenants.%s", idx[i].tenant->id);
            if (strcmp(what, "id") == 0) {
                conf_err(ck, path, "duplicate tenant id");
            } else if (strcmp(what, "key") == 0) {
                conf_err(ck, path, "api_key_sha256 is also used by tenant %s",
                         idx[i - 1].tenant->id);
            } else {
                conf_err(ck, path, "webhook_token for %s is also used by tenant %s",
                         idx[i].vendor, idx[i - 1].tenant->id);
            }
        }
    }
}

/* Ids, API keys and webhook tokens must be unique across tenants; index them. */
static void
conf_build_indexes(struct conf_check *ck, struct conf *c)
{
    size_t i, j, nkeys = 0, ntokens = 0;

    for (i = 0; i < c->ntenants; i++) {
        nkeys += c->tenants[i].nkeys;
        ntokens += c->tenants[i].nvendors;
    }
    c->by_id = calloc(c->ntenants + 1, sizeof(*c->by_id));
    c->by_key = calloc(nkeys + 1, sizeof(*c->by_key));
    c->by_token = calloc(ntokens + 1, sizeof(*c->by_token));
    if (c->by_id == NULL || c->by_key == NULL || c->by_token == NULL) {
        conf_err(ck, "tenants", "out of memory");
        return;
    }
    for (i = 0; i < c->ntenants; i++) {
        const struct conf_tenant *t = &c->tenants[i];
        if (t->id == NULL) {
            continue;
        }
        c->by_id[c->nby_id++] = (struct conf_index){"", t->id, t, i};
        for (j = 0; j < t->nkeys; j++) {
            c->by_key[c->nby_key++] = (struct conf_index){"", t->key_sha256[j], t, i};
        }
        for (j = 0; j < t->nvendors; j++) {
            const struct conf_tenant_vendor *tv = &t->vendors[j];
            char *h;
            if (tv->webhook_token == NULL || tv->vendor == NULL ||
                (h = malloc(CRYPTO_SHA256_HEX_LEN + 1)) == NULL) {
                continue;
            }
            crypto_sha256_hex(tv->webhook_token, strlen(tv->webhook_token), h);
            c->by_token[c->nby_token++] = (struct conf_index){tv->vendor, h, t, i};
        }
    }
    conf_index_sort(ck, c->by_id, c->nby_id, "id");
    conf_index_sort(ck, c->by_key, c->nby_key, "key");
    conf_index_sort(ck, c->by_token, c->nby_token, "token");
}

/* The first entry of idx (sorted) for vendor + name, or NULL. */
static const struct conf_index *
conf_index_find(const struct conf_index *idx, size_t n, const char *vendor, const char *name)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = strcmp(idx[mid].vendor, vendor);
        if (d == 0) {
            d = strcmp(idx[mid].name, name);
        }
        if (d < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < n && strcmp(idx[lo].vendor, vendor) == 0 && strcmp(idx[lo].name, name) == 0
               ? &idx[lo]
               : NULL;
}

static void
conf_parse_tenants(struct conf_check *ck, struct conf *c, json_t *root)
{
    json_t *list = json_object_get(root, "tenants"), *item;
    size_t i;

    if (list == NULL) {
        conf_err(ck, "tenants", "is required");
        return;
    }
    if (!json_is_array(list) || json_array_size(list) == 0) {
        conf_err(ck, "tenants", "must be a non-empty array");
        return;
    }
    c->tenants = calloc(json_array_size(list), sizeof(*c->tenants));
    if (c->tenants == NULL) {
        return;
    }
    json_array_foreach(list, i, item) {
        char path[64];
        snprintf(path, sizeof(path), "tenants[%zu]", i);
        if (!json_is_object(item)) {
            conf_err(ck, path, "must be an object");
            continue;
        }
        conf_parse_tenant(ck, c, &c->tenants[c->ntenants], item, i);
        c->ntenants++;
    }
    conf_build_indexes(ck, c);
}

/* "breaker": when a vendor's circuit opens, and for how long (breaker.h). */
static void
conf_parse_breaker(struct conf_check *ck, struct conf *c, json_t *root)
{
    static const char *const keys[] = {"consecutive_failures", "failure_ratio_pct", "window",
                                       "min_attempts", "open_ms", NULL};
    json_t *b = conf_object(ck, "", root, "breaker", 0);

    if (b != NULL) {
        conf_check_keys(ck, "breaker", b, keys);
    }
    c->breaker.consecutive = (int)conf_int(ck, "breaker", b, "consecutive_failures", 5, 0, 1000);
    c->breaker.ratio_pct = (int)conf_int(ck, "breaker", b, "failure_ratio_pct", 50, 0, 100);
    c->breaker.window = (int)conf_int(ck, "breaker", b, "window", 20, 1, 128);
    c->breaker.min_attempts = (int)conf_int(ck, "breaker", b, "min_attempts", 10, 1, 128);
    c->breaker.open_ms = conf_int(ck, "breaker", b, "open_ms", 30000, 100, 3600000);
}

/* "retry_budget": how much failover may add to the vendors' load (throttle.h). */
static void
conf_parse_retry_budget(struct conf_check *ck, struct conf *c, json_t *root)
{
    static const char *const keys[] = {"ratio_pct", "min_per_s", "window_s", NULL};
    json_t *b = conf_object(ck, "", root, "retry_budget", 0);

    if (b != NULL) {
        conf_check_keys(ck, "retry_budget", b, keys);
    }
    c->retry_budget.ratio_pct = (int)conf_int(ck, "retry_budget", b, "ratio_pct", 20, 0, 1000);
    c->retry_budget.min_per_s = conf_number(ck, "retry_budget", b, "min_per_s", 3, 0, 1e6);
    c->retry_budget.window_s = (int)conf_int(ck, "retry_budget", b, "window_s", 10, 1, 60);
}

/* "metrics": who may read GET /metrics. */
static void
conf_parse_metrics(struct conf_check *ck, struct conf *c, json_t *root)
{
    static const char *const keys[] = {"require_admin_token", NULL};
    json_t *m = conf_object(ck, "", root, "metrics", 0);

    if (m != NULL) {
        conf_check_keys(ck, "metrics", m, keys);
    }
    c->metrics.require_admin_token = conf_bool(ck, "metrics", m, "require_admin_token", 0);
    if (c->metrics.require_admin_token && c->admin_token_sha256 == NULL) {
        conf_err(ck, "metrics.require_admin_token", "needs admin.token_sha256");
    }
}

static void
conf_parse_root(struct conf_check *ck, struct conf *c, json_t *root)
{
    static const char *const keys[] = {"listen", "admin", "routes_dir", "log_level", "redis",
                                       "limits", "idempotency", "callbacks", "vendors", "breaker",
                                       "tenants", "webhooks", "retry_budget", "metrics", NULL};
    static const char *const akeys[] = {"listen", "token_sha256", NULL};
    char *s;
    json_t *admin;

    conf_check_keys(ck, "", root, keys);
    s = conf_string(ck, "", root, "listen", 1, NULL, 0);
    if (s != NULL && conf_parse_listen(s, &c->listen_host, &c->listen_port) != 0) {
        conf_err(ck, "listen", "\"%s\" is not host:port", s);
    }
    free(s);
    admin = conf_object(ck, "", root, "admin", 0);
    if (admin != NULL) {
        conf_check_keys(ck, "admin", admin, akeys);
        s = conf_string(ck, "admin", admin, "listen", 0, NULL, 0);
        if (s != NULL &&
            conf_parse_listen(s, &c->admin_listen_host, &c->admin_listen_port) != 0) {
            conf_err(ck, "admin.listen", "\"%s\" is not host:port", s);
        }
        free(s);
        c->admin_token_sha256 = conf_string(ck, "admin", admin, "token_sha256", 0, NULL, 1);
        if (c->admin_token_sha256 != NULL && !conf_is_hex64(c->admin_token_sha256)) {
            conf_err(ck, "admin.token_sha256", "is not 64 lower-case hex digits");
        }
    }
    c->routes_dir = conf_string(ck, "", root, "routes_dir", 0, "routes", 0);
    c->log_level = conf_string(ck, "", root, "log_level", 0, "info", 0);
    if (c->log_level != NULL && strcmp(c->log_level, "error") != 0 &&
        strcmp(c->log_level, "warn") != 0 && strcmp(c->log_level, "info") != 0 &&
        strcmp(c->log_level, "debug") != 0) {
        conf_err(ck, "log_level", "must be one of error, warn, info, debug");
    }
    conf_parse_redis(ck, c, root);
    conf_parse_limits(ck, c, root);
    conf_parse_webhooks(ck, c, root);
    conf_parse_vendors(ck, c, root);
    conf_parse_tenants(ck, c, root);
    conf_parse_breaker(ck, c, root);
    conf_parse_retry_budget(ck, c, root);
    conf_parse_metrics(ck, c, root);
    if (c->idempotency.in_flight_s * 1000 < c->limits.request_timeout_ms) {
        conf_err(ck, "idempotency.in_flight_s",
                 "must cover limits.request_timeout_ms, or a duplicate could be placed while the "
                 "first is still running");
    }
}

static struct conf *
conf_from_json(json_t *root, const char *name, json_error_t *jerr, char **errors)
{
    struct conf_check ck = {.file = name};
    struct conf *c;

    *errors = NULL;
    if (root == NULL) {
        if (jerr->line > 0) {
            conf_err(&ck, "(syntax)", "line %d, column %d: %s", jerr->line, jerr->column,
                     jerr->text);
        } else {
            conf_err(&ck, "(file)", "%s", jerr->text);
        }
        *errors = ck.errors;
        return NULL;
    }
    if (!json_is_object(root)) {
        conf_err(&ck, "(root)", "must be a JSON object");
        json_decref(root);
        *errors = ck.errors;
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        json_decref(root);
        return NULL;
    }
    c->refs = 1;
    c->path = strdup(name);
    conf_parse_root(&ck, c, root);
    json_decref(root);
    if (ck.count > 0) {
        conf_unref(c);
        *errors = ck.errors;
        return NULL;
    }
    free(ck.errors);
    return c;
}

struct conf *
conf_load(const char *path, char **errors)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);

    return conf_from_json(root, path, &jerr, errors);
}

struct conf *
conf_load_string(const char *text, const char *name, char **errors)
{
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);

    return conf_from_json(root, name, &jerr, errors);
}

struct conf *
conf_ref(struct conf *c)
{
    c->refs++;
    return c;
}

static void
conf_free(struct conf *c)
{
    size_t i, j;

    for (i = 0; i < c->nby_token; i++) {
        free(c->by_token[i].name);
    }
    free(c->by_token);
    free(c->by_key);
    free(c->by_id);
    free(c->path);
    free(c->listen_host);
    free(c->admin_listen_host);
    free(c->admin_token_sha256);
    free(c->routes_dir);
    free(c->log_level);
    free(c->redis.host);
    free(c->redis.unix_path);
    free(c->redis.password);
    free(c->redis.key_prefix);
    for (i = 0; i < c->callbacks.nallow_hosts; i++) {
        free(c->callbacks.allow_hosts[i]);
    }
    free(c->callbacks.allow_hosts);
    for (i = 0; i < c->nvendors; i++) {
        struct conf_vendor *v = &c->vendors[i];
        free(v->name);
        free(v->base_url);
        free(v->api_key);
        free(v->from_number);
        free(v->time_zone);
        for (j = 0; j < v->nrecording_hosts; j++) {
            free(v->recording_hosts[j]);
        }
        free(v->recording_hosts);
    }
    free(c->vendors);
    for (i = 0; i < c->ntenants; i++) {
        struct conf_tenant *t = &c->tenants[i];
        free(t->id);
        for (j = 0; j < t->nkeys; j++) {
            free(t->key_sha256[j]);
        }
        free(t->default_country);
        free(t->callback_url);
        for (j = 0; j < t->nsecrets; j++) {
            free(t->webhook_secret[j]);
        }
        for (j = 0; j < t->nvendors; j++) {
            free(t->vendors[j].vendor);
            free(t->vendors[j].api_key);
            free(t->vendors[j].from_number);
            free(t->vendors[j].webhook_token);
            free(t->vendors[j].webhook_basic_auth);
            free(t->vendors[j].base_url);
            json_decref(t->vendors[j].options);
        }
        free(t->vendors);
    }
    free(c->tenants);
    free(c);
}

void
conf_unref(struct conf *c)
{
    if (c != NULL && --c->refs == 0) {
        conf_free(c);
    }
}

const struct conf_vendor *
conf_vendor_find(const struct conf *c, const char *name)
{
    size_t i;

    for (i = 0; i < c->nvendors; i++) {
        if (c->vendors[i].name != NULL && strcmp(c->vendors[i].name, name) == 0) {
            return &c->vendors[i];
        }
    }
    return NULL;
}

const struct conf_tenant *
conf_tenant_find(const struct conf *c, const char *id)
{
    const struct conf_index *e = id != NULL ? conf_index_find(c->by_id, c->nby_id, "", id) : NULL;

    return e != NULL ? e->tenant : NULL;
}

const struct conf_tenant_vendor *
conf_tenant_vendor(const struct conf_tenant *t, const char *vendor)
{
    size_t i;

    for (i = 0; i < t->nvendors; i++) {
        if (strcmp(t->vendors[i].vendor, vendor) == 0) {
            return &t->vendors[i];
        }
    }
    return NULL;
}

/*
 * By the key's SHA-256: looking a hash up reveals nothing of the secret
 * behind it (a caller can compute the hash of whatever it sends), and the
 * match is confirmed in constant time.
 */
const struct conf_tenant *
conf_tenant_by_key(const struct conf *c, const char *key_sha256)
{
    const struct conf_index *e = conf_index_find(c->by_key, c->nby_key, "", key_sha256);

    return e != NULL && crypto_equal(e->name, strlen(e->name), key_sha256, strlen(key_sha256))
               ? e->tenant
               : NULL;
}

/* The same for webhook tokens: by their SHA-256, confirmed on the token itself. */
const struct conf_tenant *
conf_tenant_by_webhook_token(const struct conf *c, const char *vendor, const char *token)
{
    char h[CRYPTO_SHA256_HEX_LEN + 1];
    const struct conf_index *e;
    const struct conf_tenant_vendor *tv;

    crypto_sha256_hex(token, strlen(token), h);
    e = conf_index_find(c->by_token, c->nby_token, vendor, h);
    tv = e != NULL ? conf_tenant_vendor(e->tenant, vendor) : NULL;
    return tv != NULL && tv->webhook_token != NULL &&
                   crypto_equal(tv->webhook_token, strlen(tv->webhook_token), token,
                                strlen(token))
               ? e->tenant
               : NULL;
}

char *
conf_routes_path(const struct conf *c)
{
    const char *slash;
    char *out;
    size_t dlen;

    if (c->routes_dir[0] == '/' || (slash = strrchr(c->path, '/')) == NULL) {
        return strdup(c->routes_dir);
    }
    dlen = (size_t)(slash - c->path);
    out = malloc(dlen + 1 + strlen(c->routes_dir) + 1);
    if (out != NULL) {
        sprintf(out, "%.*s/%s", (int)dlen, c->path, c->routes_dir);
    }
    return out;
}
