/*
 * relay.h: tenant events out. A call's status change becomes a neutral event
 * {"id": "evt_...", "type": "call.completed", "created_at", "data": <call>,
 * "sequence": n} POSTed to the call's callback URL (or the tenant's), signed
 * per Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature
 * "v1,<base64 HMAC-SHA256 of id.timestamp.body>" with each whsec_ secret.
 *
 * Deliveries are durable: each one lives in Redis (a per-tenant stream read
 * through a consumer group, a retry schedule, a dead-letter index) from the
 * moment relay_call_event() has stored it until the tenant answers 2xx or it
 * is dead-lettered, so every replica shares the work and a replica that dies
 * (even with kill -9) loses nothing: what it had claimed is taken over by
 * another replica after webhooks.visibility_timeout_ms. Delivery is at least
 * once; the webhook-id (the event id) lets tenants drop repeats. relay.c's
 * header comment has the Redis layout and the exact guarantees.
 */
#ifndef CG_RELAY_H
#define CG_RELAY_H

#include <stddef.h>
#include <stdint.h>

struct app;
struct relay;
struct conf_tenant;
struct json_t;

/*
 * The relay of app: its own upstream handle (a slow tenant never takes
 * connections from vendor traffic) with the SSRF guard on every connect, and
 * a consumer that starts polling Redis at once. NULL when out of memory.
 */
struct relay *relay_new(struct app *app);

/*
 * Free (after the loop has stopped). What this replica still held stays
 * claimed in Redis and is taken over after the visibility timeout: nothing
 * is lost, it may only be delivered once more.
 */
void relay_free(struct relay *rl);

/*
 * The drain deadline passed: cancel the attempts still running and hand
 * every claimed delivery back to Redis at once (another replica, or this one
 * after a restart, takes them without waiting for the visibility timeout).
 * Logged per delivery; nothing is dropped.
 */
void relay_abandon(struct relay *rl);

/*
 * Work that must finish (or be handed back) before the process may exit:
 * attempts in flight, deliveries claimed but not started, and Redis writes
 * not yet answered (new events being stored, outcomes being recorded).
 * Scheduled retries are not counted: they wait in Redis.
 */
int relay_pending(const struct relay *rl);

/*
 * Queue the event for a call's new status: stored in Redis (with the call's
 * next sequence number) and then delivered by whichever replica claims it.
 * fields is the call record (field -> string, borrowed). Returns 0, or -1
 * when there is nowhere to send it (no callback URL for the call or tenant).
 * A Redis outage while storing is retried in memory for up to two minutes.
 */
/*
 * The same, telling stored(1, arg) once the event is durable in Redis, or
 * stored(0, arg) when it could not be stored (out of memory, Redis gone
 * for good, shutdown). stored runs exactly once when 0 is returned, never
 * inside the call; with -1 it does not run. The vendor's webhook is
 * answered only after this, so a crash cannot fall between the vendor's
 * 2xx and the tenant's event being kept.
 */
typedef void (*relay_stored_cb)(int stored, void *arg);
int relay_call_event_stored(struct relay *rl, const struct conf_tenant *tenant,
                            const struct json_t *fields, const char *event_type,
                            relay_stored_cb stored, void *arg);

int relay_call_event(struct relay *rl, const struct conf_tenant *tenant,
                     const struct json_t *fields, const char *event_type);

/* Admin API (front.c routes them behind the admin token). */
struct front_req;

/*
 * GET /admin/deliveries?state=dead|pending&tenant=&limit=&cursor= (state
 * defaults to dead): newest first, {"data": [...], "next_cursor"}.
 */
void relay_admin_list(struct front_req *r);

/* POST /admin/deliveries/{id}/replay: a dead or retrying delivery goes now (202). */
void relay_admin_replay(struct front_req *r);

/* POST /admin/deliveries/replay {"tenant": "..."}: every dead delivery of it (202, count). */
void relay_admin_replay_dead(struct front_req *r);

/*
 * Standard Webhooks signature header value for one message, with every
 * secret ("v1,<sig> v1,<sig>"). Returns a new string or NULL.
 */
char *relay_sign(const char *const *secrets, size_t nsecrets, const char *msg_id,
                 int64_t timestamp, const char *body, size_t len);

#endif
