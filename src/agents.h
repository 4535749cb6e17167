/*
 * agents.h: the tenants' agent directory and availability, held in Redis so
 * every replica sees the same truth (API.md "Agents").
 *
 * HTTP (tenant Bearer auth, routed by front.c):
 *   PUT    /v1/agents/{id}         create or replace
 *   GET    /v1/agents/{id}
 *   DELETE /v1/agents/{id}
 *   GET    /v1/agents?group=&status=&limit=&cursor=
 *   PUT    /v1/agents/{id}/status  {"status": "available"|"busy"|"offline"}
 *
 * For placements (calls.c): reserve a named agent or claim the longest-idle
 * available agent of a group, atomically (one Lua script each), and release
 * it again when the call ends or certainly was not placed.
 */
#ifndef CG_AGENTS_H
#define CG_AGENTS_H

#include <stddef.h>

struct app;
struct redisReply;
struct front_req;
struct json_t;

void agents_put(struct front_req *r);
void agents_get(struct front_req *r);
void agents_delete(struct front_req *r);
void agents_list(struct front_req *r);
void agents_set_status(struct front_req *r);

enum agents_result {
    AGENTS_OK = 0,          /* reserved / claimed: the agent is now busy with the call */
    AGENTS_NOT_FOUND,       /* no such agent / no agent in that group */
    AGENTS_UNAVAILABLE,     /* the agent (or every agent of the group) is not available */
    AGENTS_STORE_ERROR,     /* Redis did not answer */
};

/*
 * agent: the stored agent as GET /v1/agents/{id} shows it (borrowed for the
 * call; NULL unless AGENTS_OK or AGENTS_UNAVAILABLE for a named agent).
 */
typedef void (*agents_cb)(enum agents_result res, struct json_t *agent, void *arg);

/*
 * Reserve the named agent for call_id: when require_available and the agent
 * is not available -> AGENTS_UNAVAILABLE (nothing changes); otherwise the
 * agent becomes busy with call_id (an offline agent stays offline but is
 * still returned, since the rule did not ask for availability).
 */
void agents_reserve(struct app *app, const char *tenant, const char *agent_id,
                    const char *call_id, int require_available, agents_cb cb, void *arg);

/*
 * The same two steps inside another script (the placement's begin script,
 * callrec.c, takes its agent in the same round trip): agents_lua_place
 * defines the Lua functions
 *   agents_reserve(agent key, idle prefix, call id, require "1"/"0", call key)
 *   agents_claim(idle set, members, agent prefix, idle prefix, call id, call key)
 * each returning {tag, view}; agents_place_args() gives their keys and the
 * two arguments besides the call id (-1: the name is not a valid id, so no
 * such agent exists), and agents_place_result() reads the answer (*agent:
 * a new reference or NULL).
 */
extern const char agents_lua_place[];

struct agents_place_args {
    const char *op;           /* "reserve" or "claim" */
    int nkeys;
    char keys[2][256];
    char args[2][256];
};

int agents_place_args(struct app *app, const char *tenant, const char *name, int group,
                      int require_available, struct agents_place_args *out);
enum agents_result agents_place_result(const struct redisReply *tag,
                                       const struct redisReply *view, struct json_t **agent);

/* Claim the available agent of group idle longest for call_id (busy from now). */
void agents_claim_group(struct app *app, const char *tenant, const char *group,
                        const char *call_id, agents_cb cb, void *arg);

/*
 * The call ended or certainly was not placed: an agent busy with call_id
 * becomes available again (idle since now); an agent set offline meanwhile,
 * or busy with another call, is left alone. Fire and forget.
 */
void agents_release(struct app *app, const char *tenant, const char *agent_id,
                    const char *call_id);

/*
 * Read the named agent without changing anything (explain): AGENTS_OK with
 * the agent, AGENTS_NOT_FOUND or AGENTS_STORE_ERROR. Called back from the
 * loop, never inside the call.
 */
void agents_lookup(struct app *app, const char *tenant, const char *agent_id, agents_cb cb,
                   void *arg);

/*
 * The agent's identity on vendor, as the adapter takes it in
 * vendor_call.agent: clouddialer crm_username; callerdesk "member:<id>"
 * for member_id, else its number; ccai email. NULL when the agent has none
 * on that vendor (the vendor is then no candidate).
 */
const char *agents_identity(const struct json_t *agent, const char *vendor);

/* Free the scripts agents.c keeps on app (app_free). */
void agents_free_scripts(struct app *app);

#endif
