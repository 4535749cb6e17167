/*
 * calls.h: POST /v1/calls (validate, idempotency, route, place through a
 * vendor with the failover rule, record) and GET /v1/calls/{id}.
 */
#ifndef CG_CALLS_H
#define CG_CALLS_H

#include <stddef.h>

struct front_req;

void calls_create(struct front_req *r);
void calls_get(struct front_req *r);
void calls_list(struct front_req *r);

/* POST /admin/routes/explain: the routing decision for a call body, nothing placed. */
void calls_explain(struct front_req *r);

/* 1 when id (n bytes) has the shape of a call id. */
int calls_id_ok(const char *id, size_t n);

/*
 * Answer r with the call's current record (404 when it is not r's tenant's).
 * refresh, when not NULL, goes out as the Callgate-Refresh header.
 */
void calls_reply_call(struct front_req *r, const char *id, const char *refresh);

#endif
