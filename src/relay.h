/*
 * relay.h: tenant events out. A call's status change becomes a neutral event
 * {"id": "evt_...", "type": "call.completed", "created_at", "data": <call>}
 * POSTed to the call's callback URL (or the tenant's), signed per Standard
 * Webhooks: webhook-id, webhook-timestamp, webhook-signature
 * "v1,<base64 HMAC-SHA256 of id.timestamp.body>" with each whsec_ secret.
 *
 * This first version retries in memory (a few attempts with backoff); the
 * durable, crash-safe queue is the next step (issue 5).
 */
#ifndef CG_RELAY_H
#define CG_RELAY_H

#include <stddef.h>
#include <stdint.h>

struct app;
struct relay;
struct conf_tenant;
struct json_t;

struct relay *relay_new(struct app *app);

/* Abandon pending deliveries (logged) and free. */
void relay_free(struct relay *rl);

/* Abandon pending deliveries now (logged each): the drain deadline passed. */
void relay_abandon(struct relay *rl);

/* Deliveries still pending (attempting or waiting to retry). */
int relay_pending(const struct relay *rl);

/*
 * Queue the event for a call's new status. fields is the call record (field
 * -> string, borrowed). Returns 0, or -1 when there is nowhere to send it.
 */
int relay_call_event(struct relay *rl, const struct conf_tenant *tenant,
                     const struct json_t *fields, const char *event_type);

/* Admin API (front.c routes them behind the admin token). */
struct front_req;
void relay_admin_list(struct front_req *r);        /* GET /admin/deliveries?state=&tenant= */
void relay_admin_replay(struct front_req *r);      /* POST /admin/deliveries/{id}/replay */
void relay_admin_replay_dead(struct front_req *r); /* POST /admin/deliveries/replay {"tenant"} */

/*
 * Standard Webhooks signature header value for one message, with every
 * secret ("v1,<sig> v1,<sig>"). Returns a new string or NULL.
 */
char *relay_sign(const char *const *secrets, size_t nsecrets, const char *msg_id,
                 int64_t timestamp, const char *body, size_t len);

#endif
