/*
 * decide.c: see decide.h. The order of the filters is the contract's; every
 * vendor of the rule ends up in "considered" with the first reason that
 * dropped it, so explain shows exactly what placement does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agents.h"
#include "breaker.h"
#include "conf.h"
#include "decide.h"
#include "routes.h"
#include "vendor.h"

/* Least busy first; ties keep the rule's order (a stable insertion sort). */
static void
decide_by_load(size_t *order, size_t n, const long long *inflight)
{
    size_t i, j;

    for (i = 1; i < n; i++) {
        size_t v = order[i];
        for (j = i; j > 0 && inflight[order[j - 1]] > inflight[v]; j--) {
            order[j] = order[j - 1];
        }
        order[j] = v;
    }
}

/* The first reason this vendor cannot take the call, or NULL (kept). */
static const char *
decide_drop(const struct decide_input *in, const char *vendor, const char **identity)
{
    const struct vendor_ops *ops = vendor_ops_find(vendor);

    *identity = NULL;
    if (conf_tenant_vendor(in->tenant, vendor) == NULL) {
        return "tenant-not-allowed";
    }
    if (ops == NULL || (ops->caps & in->needs) != in->needs) {
        return "capability";
    }
    if (in->agent != NULL) {
        *identity = agents_identity(in->agent, vendor);
        if (*identity == NULL) {
            return "agent-has-no-identity";
        }
    } else {
        *identity = in->raw_agent;
    }
    /* An open circuit drops the vendor; a half-open one stays a candidate
     * (placement takes the single probe, or moves on). */
    if (in->breaker != NULL && breaker_peek(in->breaker, vendor, in->now_ms) == BREAKER_OPEN) {
        return "circuit-open";
    }
    /* Per-vendor caps come with the operations work. */
    return NULL;
}

static void
decide_consider(const struct decide_input *in, struct decide_output *out, const char *vendor,
                long long load)
{
    const char *identity, *why = decide_drop(in, vendor, &identity);
    int kept = why == NULL && out->n < DECIDE_MAX_CANDIDATES;
    json_t *o;

    if (kept) {
        out->vendors[out->n] = vendor;
        out->identities[out->n++] = identity;
    } else if (why != NULL) {
        out->dropped_identity += strcmp(why, "agent-has-no-identity") == 0;
        out->dropped_circuit += strcmp(why, "circuit-open") == 0;
    }
    if (out->considered == NULL) {
        return;
    }
    o = json_pack("{s:s}", "vendor", vendor);
    if (in->inflight != NULL && load >= 0) {
        json_object_set_new(o, "in_flight", json_integer(load));
    }
    if (kept) {
        json_object_set_new(o, "kept", json_true());
    } else {
        json_object_set_new(o, "dropped", json_string(why != NULL ? why : "too-many"));
    }
    json_array_append_new(out->considered, o);
}

int
decide(const struct decide_input *in, struct decide_output *out, const char **slug,
       const char **detail)
{
    size_t order[DECIDE_MAX_CANDIDATES * 4], n, i, allowed = 0;

    memset(out, 0, sizeof(*out));
    out->considered = in->quiet ? NULL : json_array();
    if (in->pinned != NULL) {
        decide_consider(in, out, in->pinned, -1);
        allowed = conf_tenant_vendor(in->tenant, in->pinned) != NULL;
    } else if (in->rule != NULL) {
        n = routes_order(in->rule, in->call_id, order, sizeof(order) / sizeof(order[0]));
        if (in->rule->strategy == ROUTE_LEAST_BUSY && in->inflight != NULL) {
            decide_by_load(order, n, in->inflight);
        }
        for (i = 0; i < n; i++) {
            const char *v = in->rule->vendors[order[i]].name;
            allowed += conf_tenant_vendor(in->tenant, v) != NULL;
            decide_consider(in, out, v, in->inflight != NULL ? in->inflight[order[i]] : -1);
        }
    }
    if (out->n > 0) {
        return 0;
    }
    if (allowed == 0) {
        /* "Unsupported" when none of the tenant's vendors could take such a call anyway. */
        for (i = 0; i < in->tenant->nvendors; i++) {
            const struct vendor_ops *ops = vendor_ops_find(in->tenant->vendors[i].vendor);
            if (ops != NULL && (ops->caps & in->needs) == in->needs) {
                *slug = "no-route";
                *detail = "the matching rule names no vendor this tenant may use";
                return 503;
            }
        }
        *slug = "unsupported-by-vendor";
        *detail = "none of this tenant's vendors supports this call";
        return 422;
    }
    if (out->dropped_circuit > 0) {
        *slug = "vendor-unavailable";
        *detail = "every vendor that could take this call has its circuit open";
        return 503;
    }
    if (out->dropped_identity > 0) {
        *slug = "unsupported-by-vendor";
        *detail = "the agent has no identity on any vendor that could take this call";
        return 422;
    }
    *slug = "unsupported-by-vendor";
    *detail = "no vendor for this call supports what it needs";
    return 422;
}
