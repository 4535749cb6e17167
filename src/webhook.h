/*
 * webhook.h: vendor webhooks in: POST (and GET, for vendors that send query
 * strings) /v1/webhooks/{vendor}/{token}. The token names the tenant; the
 * event is stored durably in Redis (deduplicated per vendor) before the
 * vendor gets its 2xx, then applied to the call and relayed to the tenant.
 */
#ifndef CG_WEBHOOK_H
#define CG_WEBHOOK_H

struct front_req;

void webhook_receive(struct front_req *r);

#endif
