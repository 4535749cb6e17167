/*
 * webhook.h: vendor webhooks in: POST (and GET, for vendors that send query
 * strings) /v1/webhooks/{vendor}/{token}. The token names the tenant (and,
 * when the tenant configured webhook_basic_auth, HTTP Basic credentials
 * must match too); each event of the delivery (CCAI sends several at once)
 * is stored durably in Redis (deduplicated per vendor) before the vendor
 * gets its 2xx, then applied to the call and relayed to the tenant.
 */
#ifndef CG_WEBHOOK_H
#define CG_WEBHOOK_H

struct app;
struct conf;
struct conf_tenant;
struct front_req;
struct vendor_update;

void webhook_receive(struct front_req *r);

/*
 * Completion of webhook_apply(): verdict is "ok" (stored and applied to the
 * call, or kept in its history when the call had moved past it), "dup" (this
 * vendor event was stored before) or "orphan" (no such call for the tenant;
 * kept in the orphan stream), or NULL when Redis could not store it.
 */
typedef void (*webhook_apply_cb)(const char *verdict, void *arg);

/*
 * Store a vendor's news about a call durably and apply it (status only
 * forward), then relay a change to the tenant. upd is taken over (its legs
 * too; the caller's struct is left empty). source names where it came from
 * ("webhook", "poll"). The completion runs exactly once; 0, or -1 (out of
 * memory, no completion).
 */
int webhook_apply(struct app *app, struct conf *conf, const struct conf_tenant *tenant,
                  const char *vendor, struct vendor_update *upd, const char *source,
                  const char *request_id, webhook_apply_cb cb, void *arg);

#endif
