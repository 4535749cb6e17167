/*
 * metrics.h: this replica's counters, gauges and histograms, and GET
 * /metrics in the Prometheus text exposition format (version 0.0.4).
 *
 * Every metric is one row of METRICS_LIST below: the enum, the names, the
 * help text, the label names, the bound on label sets and the histogram
 * buckets all come from that row, so a metric cannot be recorded without
 * being documented (README.md "## Metrics" lists the same rows).
 *
 * State is per process and in memory (the gateway runs one thread on one
 * loop: no locks). An update is an array index once the label set is known:
 * a series is found by hashing its label values into a small open-addressed
 * table, and the hottest caller (every HTTP reply) skips even that through
 * a cache keyed by its static route label. Label sets are bounded per
 * metric (max_series): past the bound, updates go to one series whose
 * labels all read "other" and callgate_metrics_series_overflow_total
 * counts them, so a hostile client cannot grow memory or the scrape.
 *
 * Label values are copied (at most METRICS_VALUE_MAX - 1 bytes each), so
 * callers may pass stack buffers. Routes are passed as their templates
 * ("POST /v1/calls"), never raw paths.
 */
#ifndef CG_METRICS_H
#define CG_METRICS_H

#include <stddef.h>

struct evbuffer;
struct front_req;

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM };

/* Bucket sets (upper bounds in seconds, +Inf is implied), see metrics.c. */
enum metrics_buckets {
    METRICS_B_NONE,
    METRICS_B_HTTP,   /* gateway requests: 5 ms .. 10 s */
    METRICS_B_VENDOR, /* outbound HTTP (vendors, tenant endpoints): 10 ms .. 30 s */
    METRICS_B_REDIS,  /* Redis commands: 0.25 ms .. 1 s */
};

#define METRICS_VALUE_MAX 64 /* bytes kept of one label value, NUL included */

/*
 * X(id, name, type, "label,names", max_series, buckets, help). Counters end
 * in _total, units are seconds. max_series counts the "other" series too.
 * Rows marked (scrape) are set when /metrics is read, from the modules that
 * own the state.
 */
#define METRICS_LIST(X)                                                                            \
    X(METRIC_HTTP_REQUESTS, "callgate_http_requests_total", METRICS_COUNTER, "route,status", 1024, \
      METRICS_B_NONE,                                                                              \
      "HTTP requests answered, by route template (\"other\": no such endpoint) and status code")   \
    X(METRIC_HTTP_DURATION, "callgate_http_request_duration_seconds", METRICS_HISTOGRAM, "route",  \
      64, METRICS_B_HTTP, "Time from a request's dispatch to its reply, by route")                 \
    X(METRIC_HTTP_CONNECTIONS, "callgate_http_connections", METRICS_GAUGE, "", 1, METRICS_B_NONE,  \
      "Client connections open (scrape)")                                                          \
    X(METRIC_HTTP_INFLIGHT, "callgate_http_requests_in_flight", METRICS_GAUGE, "", 1,              \
      METRICS_B_NONE, "Requests being handled, this scrape included (scrape)")                     \
    X(METRIC_VENDOR_ATTEMPTS, "callgate_vendor_attempts_total", METRICS_COUNTER, "vendor,outcome", \
      256, METRICS_B_NONE,                                                                         \
      "Call placement attempts, by vendor and outcome (accepted, rejected, unavailable, "          \
      "ambiguous, invalid_response, timeout)")                                                     \
    X(METRIC_VENDOR_DURATION, "callgate_vendor_attempt_duration_seconds", METRICS_HISTOGRAM,       \
      "vendor", 32, METRICS_B_VENDOR,                                                              \
      "Time of the placement attempts that reached the network, by vendor")                        \
    X(METRIC_VENDOR_REQUESTS, "callgate_vendor_requests_total", METRICS_COUNTER,                   \
      "vendor,op,result", 256, METRICS_B_NONE,                                                     \
      "Other vendor requests (op: history, counts, status, participants, flags, health) by "       \
      "result (ok, http_error, not_sent, timeout, broken, too_large, cancelled, internal)")        \
    X(METRIC_CIRCUIT_STATE, "callgate_circuit_state", METRICS_GAUGE, "vendor", 32, METRICS_B_NONE, \
      "This replica's circuit per vendor: 0 closed, 1 open, 2 half-open (scrape)")                 \
    X(METRIC_CIRCUIT_TRANSITIONS, "callgate_circuit_transitions_total", METRICS_COUNTER,           \
      "vendor,to", 128, METRICS_B_NONE, "Circuit state changes, by vendor and new state")          \
    X(METRIC_RATE_LIMITED, "callgate_rate_limited_total", METRICS_COUNTER, "tenant", 1024,         \
      METRICS_B_NONE, "Requests refused with 429 by the tenant rate limits")                       \
    X(METRIC_VENDOR_THROTTLED, "callgate_vendor_throttled_total", METRICS_COUNTER,                 \
      "vendor,reason", 128, METRICS_B_NONE,                                                        \
      "Vendor attempts held back by a vendor limit (concurrency, rate, retry_budget)")             \
    X(METRIC_WEBHOOKS, "callgate_webhooks_received_total", METRICS_COUNTER, "vendor,outcome", 128, \
      METRICS_B_NONE,                                                                              \
      "Vendor webhooks: per event stored, duplicate, orphan or store_failed; per request "         \
      "invalid or not_found")                                                                      \
    X(METRIC_DELIVERIES, "callgate_deliveries_total", METRICS_COUNTER, "outcome", 16,              \
      METRICS_B_NONE,                                                                              \
      "Tenant event delivery outcomes: delivered, retried (a retry is scheduled), dead")           \
    X(METRIC_DELIVERY_DURATION, "callgate_delivery_attempt_duration_seconds", METRICS_HISTOGRAM,   \
      "", 1, METRICS_B_VENDOR, "Time of tenant event delivery attempts")                           \
    X(METRIC_DELIVERY_QUEUE, "callgate_delivery_queue_depth", METRICS_GAUGE, "tenant", 1024,       \
      METRICS_B_NONE, "Deliveries neither delivered nor dead, from Redis (scrape)")                \
    X(METRIC_DELIVERY_OLDEST, "callgate_delivery_oldest_pending_age_seconds", METRICS_GAUGE,       \
      "tenant", 1024, METRICS_B_NONE,                                                              \
      "Age of the oldest pending delivery (0: none), from Redis (scrape)")                         \
    X(METRIC_DELIVERY_DEAD, "callgate_delivery_dead_letters", METRICS_GAUGE, "tenant", 1024,       \
      METRICS_B_NONE, "Dead-lettered deliveries waiting for a replay, from Redis (scrape)")        \
    X(METRIC_REDIS_COMMANDS, "callgate_redis_commands_total", METRICS_COUNTER, "", 1,              \
      METRICS_B_NONE, "Redis commands completed (errors included)")                                \
    X(METRIC_REDIS_ERRORS, "callgate_redis_errors_total", METRICS_COUNTER, "reason", 8,            \
      METRICS_B_NONE, "Redis commands that failed (unavailable, timeout, connection, reply)")      \
    X(METRIC_REDIS_DURATION, "callgate_redis_command_duration_seconds", METRICS_HISTOGRAM, "", 1,  \
      METRICS_B_REDIS, "Time from sending a Redis command to its completion")                      \
    X(METRIC_REDIS_UP, "callgate_redis_up", METRICS_GAUGE, "", 1, METRICS_B_NONE,                  \
      "1 while the Redis connection is up (scrape)")                                               \
    X(METRIC_SCRAPE_REDIS_OK, "callgate_scrape_redis_ok", METRICS_GAUGE, "", 1, METRICS_B_NONE,    \
      "1 when this scrape read the delivery gauges from Redis, 0 when it could not (scrape)")      \
    X(METRIC_ROUTES_INFO, "callgate_routes_info", METRICS_GAUGE, "version", 2, METRICS_B_NONE,     \
      "The loaded routing table's version, value 1 (scrape)")                                      \
    X(METRIC_ROUTES_RELOADS, "callgate_routes_reloads_total", METRICS_COUNTER, "result", 4,        \
      METRICS_B_NONE, "Routing table reloads (SIGHUP or admin), by result (ok, error)")            \
    X(METRIC_BUILD_INFO, "callgate_build_info", METRICS_GAUGE, "version,options", 2,               \
      METRICS_B_NONE, "The running build, value 1")                                                \
    X(METRIC_START_TIME, "callgate_process_start_time_seconds", METRICS_GAUGE, "", 1,              \
      METRICS_B_NONE, "When this process started, seconds since the Unix epoch")                   \
    X(METRIC_OVERFLOW, "callgate_metrics_series_overflow_total", METRICS_COUNTER, "metric", 64,    \
      METRICS_B_NONE, "Updates folded into a metric's \"other\" series because it was full")

#define METRICS_ENUM_ROW(id, name, type, labels, max, buckets, help) id,
enum metrics_id { METRICS_LIST(METRICS_ENUM_ROW) METRICS_MAX };
#undef METRICS_ENUM_ROW

/* Reasons a vendor attempt is held back (callgate_vendor_throttled_total). */
enum metrics_throttle {
    METRICS_THROTTLE_CONCURRENCY,
    METRICS_THROTTLE_RATE,
    METRICS_THROTTLE_RETRY_BUDGET,
    METRICS_THROTTLE_MAX
};

/* Record the process start time and the build (app_new calls it once). */
void metrics_init(void);

/*
 * The series of metric id with these label values (only the metric's
 * first n are read; NULL reads as ""). A handle stays valid until
 * metrics_clear(id) or metrics_reset(); -1 only when out of memory.
 */
int metrics_series(enum metrics_id id, const char *a, const char *b, const char *c);

/* Updates through a handle (-1 is ignored). */
void metrics_series_add(int h, double v);
void metrics_series_set(int h, double v);
void metrics_series_observe(int h, double seconds);

/* The same, finding the series first. */
void metrics_add(enum metrics_id id, double v, const char *a, const char *b, const char *c);
void metrics_set(enum metrics_id id, double v, const char *a, const char *b, const char *c);
void metrics_observe(enum metrics_id id, double seconds, const char *a, const char *b,
                     const char *c);
#define metrics_inc(id, a, b, c) metrics_add((id), 1.0, (a), (b), (c))

/* One HTTP reply: route is the static route label (NULL: "other"). */
void metrics_http_reply(const char *route, int status, double seconds);

/*
 * A vendor request other than a placement: result is upstream_result_text[]
 * ("ok" with an HTTP status of 400 or more counts as "http_error").
 */
void metrics_vendor_request(const char *vendor, const char *op, const char *result,
                            long http_status);

/* For the limits (the rate limiter calls these). */
void metrics_rate_limited(const char *tenant);
void metrics_vendor_throttled(const char *vendor, enum metrics_throttle reason);

/* Forget every series of id (gauges rebuilt at each scrape). */
void metrics_clear(enum metrics_id id);

/* Back to the state before any update, memory freed (tests). */
void metrics_reset(void);

/* Append the whole exposition text to out. 0, or -1 when out of memory. */
int metrics_render(struct evbuffer *out);

/* Escape a label value per the exposition format (\\, \", \n) into out. */
void metrics_escape(struct evbuffer *out, const char *value);

/*
 * GET /metrics (front.c routes it, on the main and the admin listener):
 * the in-process metrics plus the delivery gauges read from Redis at
 * scrape time. If Redis cannot answer (down, or not before the request's
 * deadline) the rest is still served, with callgate_scrape_redis_ok 0.
 */
void metrics_get(struct front_req *r);

#endif
