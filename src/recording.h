/*
 * recording.h: GET /v1/calls/{id}/recording streams the call's recording from
 * the vendor through the gateway, so the tenant never needs vendor URLs or
 * credentials. Only hosts the vendor's configuration allows are fetched
 * (base_url's host and recording_hosts): the link comes from a webhook, and
 * the gateway must not become a way to read internal URLs.
 */
#ifndef CG_RECORDING_H
#define CG_RECORDING_H

struct front_req;

void recording_get(struct front_req *r);

#endif
