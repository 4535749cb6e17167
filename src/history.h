/*
 * history.h: call history across vendors. GET /v1/call-logs and
 * GET /v1/call-logs/counts ask every vendor of the tenant that keeps call
 * history, concurrently, each within its own deadline, and merge the
 * answers (calls newest first; counts summed per number). Each vendor's
 * fate is in "sources"; one failing makes the answer "partial", all failing
 * is a 502.
 */
#ifndef CG_HISTORY_H
#define CG_HISTORY_H

struct front_req;

void history_logs(struct front_req *r);
void history_counts(struct front_req *r);

#endif
