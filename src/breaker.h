/*
 * breaker.h: a circuit breaker per vendor, per replica. It opens after
 * too many failures (consecutive, or a failure ratio over the recent
 * attempts), stays open for a while, then lets one probe through
 * (half-open): its success closes the circuit, its failure opens it again.
 * Placement drops a vendor whose circuit is open ("circuit-open" in
 * explain), which is a certain failure: failover goes on to the next
 * vendor. A failure is a vendor that could not be reached, timed out, or
 * answered "not queued" / 5xx; an explicit refusal of one call is not.
 *
 * The state is in memory: each replica learns on its own (they all see the
 * same vendor), and GET /admin/vendors shows it.
 */
#ifndef CG_BREAKER_H
#define CG_BREAKER_H

#include <stdint.h>

struct json_t;
struct breaker;

struct breaker_opts {
    int consecutive;      /* open after this many failures in a row */
    int window;           /* recent attempts the ratio looks at */
    int min_attempts;     /* ... once at least this many are in the window */
    int ratio_pct;        /* open when this share of them failed */
    long open_ms;         /* how long it stays open before a probe */
};

struct breaker *breaker_new(const struct breaker_opts *opts);
void breaker_free(struct breaker *b);

enum breaker_state { BREAKER_CLOSED = 0, BREAKER_OPEN, BREAKER_HALF_OPEN };
extern const char *const breaker_state_text[];

/*
 * May a call go to vendor now? 1 = yes. In half-open state the first
 * caller gets the probe (1) and the others 0 until it reports.
 */
int breaker_allow(struct breaker *b, const char *vendor, int64_t now_ms);

/*
 * The attempt breaker_allow let through was not sent after all (a vendor
 * cap, the retry budget): a half-open circuit's probe goes back.
 */
void breaker_cancel(struct breaker *b, const char *vendor);

/* The outcome of an attempt that breaker_allow let through. */
void breaker_report(struct breaker *b, const char *vendor, int failed, double ms,
                    int64_t now_ms);

/* State without taking the probe (for explain and admin). */
enum breaker_state breaker_peek(struct breaker *b, const char *vendor, int64_t now_ms);

/*
 * {"<vendor>": {"circuit", "opened_at", "recent_attempts", "recent_error_rate",
 * "recent_p50_ms", "recent_p99_ms", "consecutive_failures"}} (new reference).
 */
struct json_t *breaker_json(struct breaker *b, int64_t now_ms);

#endif
