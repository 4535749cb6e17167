/*
 * vhealth.h: vendor health probes. Every vendor whose adapter has a health
 * check (CloudDialer's GET /health) is probed on its own schedule
 * (vendors.<name>.health_interval_ms; 0 turns it off) with the vendor's
 * credentials and timeouts. The last result is kept per vendor, logged when
 * it changes, and shown by GET /readyz under "vendors".
 *
 * A vendor that is down does not make the replica unready: the load
 * balancer could do nothing about it, and the other vendors still work.
 * Placements are not steered by it either (failover already handles a
 * vendor that refuses connections).
 */
#ifndef CG_VHEALTH_H
#define CG_VHEALTH_H

struct app;
struct json_t;
struct vhealth;

/* Start probing on app's loop (reads app->conf at every tick, so reloads apply). */
struct vhealth *vhealth_new(struct app *app);

/* Stop probing and cancel probes in flight (drain); vhealth_json still works. */
void vhealth_stop(struct vhealth *h);

void vhealth_free(struct vhealth *h);

/*
 * {"<vendor>": {"state": "up"|"down"|"unknown", "checked_at": RFC 3339 or
 * null, "latency_ms": n, "since": RFC 3339, "detail": "..."}} for every
 * probed vendor of the current configuration (new reference).
 */
struct json_t *vhealth_json(const struct vhealth *h);

#endif
