/*
 * decide.h: the routing decision for one call, after the rule is known:
 * which vendors are candidates and in what order, with the reason every
 * vendor was kept or dropped (ROUTING.md "Candidate filtering", in its
 * order: tenant allowed -> capabilities -> agent identity -> circuit ->
 * caps; the caps come with the operations work). Pure: the inputs that live in Redis (the agent record, in-flight
 * counts) are fetched by the caller first. POST /v1/calls places from it;
 * POST /admin/routes/explain shows it.
 */
#ifndef CG_DECIDE_H
#define CG_DECIDE_H

#include <stddef.h>

struct breaker;
struct conf_tenant;
struct json_t;
struct route_rule;

#define DECIDE_MAX_CANDIDATES 16

struct decide_input {
    const struct conf_tenant *tenant;
    const struct route_rule *rule;     /* NULL when a pinned vendor stands alone */
    const char *pinned;                /* the request's "vendor", or NULL */
    unsigned needs;                    /* VENDOR_CAP_* bits the call needs */
    const char *call_id;               /* for the weighted order */
    const struct json_t *agent;        /* the directory's agent, or NULL */
    const char *raw_agent;             /* without a directory record: sent as is, or NULL */
    const long long *inflight;         /* least_busy: in-flight calls per rule vendor, or NULL */
    struct breaker *breaker;           /* circuit states, or NULL (none open) */
    long long now_ms;
    int quiet;                         /* placement: no "considered" list (explain wants it) */
};

struct decide_output {
    const char *vendors[DECIDE_MAX_CANDIDATES];    /* in order; borrowed from conf/rule */
    const char *identities[DECIDE_MAX_CANDIDATES]; /* the agent as each vendor knows it, or
                                                      NULL (borrowed from the inputs) */
    size_t n;
    struct json_t *considered; /* [{"vendor", "kept": true} | {"vendor", "dropped": reason}],
                                  or NULL when the input was quiet */
    int dropped_identity;      /* vendors dropped for the agent's identity */
    int dropped_circuit;       /* ... for an open circuit */
};

/*
 * Fill out (out->considered is a new array the caller owns). Returns 0 when
 * there is a candidate; otherwise the HTTP status to answer with *slug and
 * *detail set (422 unsupported-by-vendor, 503 no-route).
 */
int decide(const struct decide_input *in, struct decide_output *out, const char **slug,
           const char **detail);

#endif
