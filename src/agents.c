/* agents.c: placeholder until the agent directory lands (see agents.h). */
#include <stddef.h>

#include "agents.h"
#include "front.h"

static void
agents_not_yet(struct front_req *r)
{
    front_problem(r, 501, "not-implemented", "the agent directory is not available yet", NULL);
}

void agents_put(struct front_req *r) { agents_not_yet(r); }
void agents_get(struct front_req *r) { agents_not_yet(r); }
void agents_delete(struct front_req *r) { agents_not_yet(r); }
void agents_list(struct front_req *r) { agents_not_yet(r); }
void agents_set_status(struct front_req *r) { agents_not_yet(r); }

void
agents_reserve(struct app *app, const char *tenant, const char *agent_id, const char *call_id,
               int require_available, agents_cb cb, void *arg)
{
    (void)app; (void)tenant; (void)agent_id; (void)call_id; (void)require_available;
    cb(AGENTS_NOT_FOUND, NULL, arg);
}

void
agents_claim_group(struct app *app, const char *tenant, const char *group, const char *call_id,
                   agents_cb cb, void *arg)
{
    (void)app; (void)tenant; (void)group; (void)call_id;
    cb(AGENTS_NOT_FOUND, NULL, arg);
}

void
agents_release(struct app *app, const char *tenant, const char *agent_id, const char *call_id)
{
    (void)app; (void)tenant; (void)agent_id; (void)call_id;
}

const char *
agents_identity(const struct json_t *agent, const char *vendor)
{
    (void)agent; (void)vendor;
    return NULL;
}
