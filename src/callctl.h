/*
 * callctl.h: talking to the vendor about a call already placed:
 * GET /v1/calls/{id}?refresh=true (ask the vendor's status API and record
 * what it says) and POST /v1/calls/{id}/participants (dial one more number
 * into the live call), and the customer flags some vendors keep. All need the vendor's capability; without it the
 * refresh answers the stored record (Callgate-Refresh: unsupported) and
 * participants answer 422 unsupported-by-vendor.
 */
#ifndef CG_CALLCTL_H
#define CG_CALLCTL_H

struct front_req;

/* The call's record after asking the vendor (called by calls_get). */
void callctl_refresh(struct front_req *r, const char *call_id);

/* POST /v1/calls/{id}/participants */
void callctl_add_participant(struct front_req *r);

/* GET and PATCH /v1/calls/{id}/flags: the vendor's customer flags (CCAI). */
void callctl_flags(struct front_req *r);

#endif
