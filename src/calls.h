/*
 * calls.h: POST /v1/calls (validate, idempotency, route, place through a
 * vendor with the failover rule, record) and GET /v1/calls/{id}.
 */
#ifndef CG_CALLS_H
#define CG_CALLS_H

struct front_req;

void calls_create(struct front_req *r);
void calls_get(struct front_req *r);
void calls_list(struct front_req *r);

#endif
