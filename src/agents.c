/*
 * agents.c: the tenants' agent directory and availability (agents.h).
 *
 * Redis layout (every key under the configured prefix, "cg:" by default):
 *   agent:<tenant>:<id>      hash: id, doc (the directory entry as JSON:
 *                            name, number, email, groups, vendors), groups
 *                            (the group names joined by ','), status
 *                            (available|busy|offline), status_since (ms),
 *                            call_id ("" when none), idle_since (ms, "" unless
 *                            available), updated_at (ms, last PUT)
 *   agents:<tenant>          zset, every score 0: the tenant's agent ids, so
 *                            ZRANGEBYLEX pages through them in id order
 *   agroup:<tenant>:<group>  zset, every score 0: the group's members (a zset
 *                            rather than a set so that a listing filtered by
 *                            group pages in id order too)
 *   aidle:<tenant>:<group>   zset: the group's *available* members scored by
 *                            idle_since, so the first is the longest idle
 *
 * Invariant, kept by the scripts below: an agent is in aidle:<t>:<g> for
 * each of its groups exactly while its status is available, with its
 * idle_since as the score. Every change is one Lua script, so two replicas
 * (or a placement racing a status change) never see half of one. The
 * scripts take the time from Redis (TIME), so every replica orders idle
 * agents by the same clock.
 *
 * Ids and group names: 1 to 64 of [A-Za-z0-9._-] ("." and ".." excepted),
 * which keeps them safe inside keys, URLs, cursors and the ',' list.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "agents.h"
#include "app.h"
#include "cglog.h"
#include "conf.h"
#include "front.h"
#include "gw.h"
#include "phone.h"
#include "problem.h"
#include "store.h"
#include "util.h"

#define AGENTS_ID_MAX 64
#define AGENTS_NAME_MAX 200  /* characters */
#define AGENTS_EMAIL_MAX 254 /* bytes (RFC 5321 path limit) */
#define AGENTS_GROUPS_MAX 50
#define AGENTS_IDENTITY_MAX 128 /* clouddialer crm_username */
#define AGENTS_MEMBER_MAX 20    /* callerdesk member_id digits */
#define AGENTS_LIST_DEFAULT 50
#define AGENTS_LIST_MAX 200
#define AGENTS_LIST_EXAMINE 2000 /* agents one filtered page may look at */
#define AGENTS_KEY_MAX 256

/* ---- Lua ------------------------------------------------------------------- */

/* clang-format off: the scripts read best one Lua line per C line. */
/*
 * Shared by every script. A "view" is the seven fields an agent is rendered
 * from, in this order (agents_render): id, doc, status, status_since,
 * call_id, idle_since, updated_at. The ',' list of groups saves parsing the
 * doc inside Redis.
 */
#define AGENTS_LUA_VIEW_FIELDS                                                                     \
    "'id', 'doc', 'status', 'status_since', 'call_id', 'idle_since', 'updated_at'"
#define AGENTS_LUA_NOW                                                                             \
    "local function agents_now()\n"                                                                \
    "  local t = redis.call('TIME')\n"                                                             \
    "  return string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))\n"  \
    "end\n"
#define AGENTS_LUA_PRELUDE                                                                         \
    AGENTS_LUA_NOW                                                                                 \
    "local function agents_groups(k)\n"                                                            \
    "  local out = {}\n"                                                                           \
    "  for g in string.gmatch(redis.call('HGET', k, 'groups') or '', '[^,]+') do\n"                \
    "    out[#out + 1] = g\n"                                                                      \
    "  end\n"                                                                                      \
    "  return out\n"                                                                               \
    "end\n"                                                                                        \
    "local function agents_view(k)\n"                                                              \
    "  return redis.call('HMGET', k, " AGENTS_LUA_VIEW_FIELDS ")\n"                                \
    "end\n"                                                                                        \
    "local function agents_unidle(k, ip, id)\n"                                                    \
    "  for _, g in ipairs(agents_groups(k)) do redis.call('ZREM', ip .. g, id) end\n"              \
    "end\n"                                                                                        \
    "local function agents_idle(k, ip, id, since)\n"                                               \
    "  for _, g in ipairs(agents_groups(k)) do redis.call('ZADD', ip .. g, since, id) end\n"       \
    "end\n"

/*
 * put: create or replace the directory entry, keeping status and call.
 * KEYS: agent, tenant index. ARGV: group key prefix, idle key prefix, id,
 * doc JSON, groups joined by ','.
 * A new agent starts available, idle since now. A replaced one leaves the
 * groups it no longer names (and their idle sets) and joins the new ones,
 * idle there too when it is available.
 * Returns {"created"|"replaced", view}.
 */
const char agents_lua_put[] = AGENTS_LUA_PRELUDE
    "local k, id, now = KEYS[1], ARGV[3], agents_now()\n"
    "local created = redis.call('EXISTS', k) == 0\n"
    "local list, set = {}, {}\n"
    "for g in string.gmatch(ARGV[5], '[^,]+') do list[#list + 1] = g; set[g] = true end\n"
    "if created then\n"
    "  redis.call('HSET', k, 'id', id, 'status', 'available', 'status_since', now,\n"
    "             'call_id', '', 'idle_since', now)\n"
    "else\n"
    "  for _, g in ipairs(agents_groups(k)) do\n"
    "    if not set[g] then\n"
    "      redis.call('ZREM', ARGV[1] .. g, id)\n"
    "      redis.call('ZREM', ARGV[2] .. g, id)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "redis.call('HSET', k, 'doc', ARGV[4], 'groups', ARGV[5], 'updated_at', now)\n"
    "for _, g in ipairs(list) do redis.call('ZADD', ARGV[1] .. g, 0, id) end\n"
    "if redis.call('HGET', k, 'status') == 'available' then\n"
    "  agents_idle(k, ARGV[2], id, redis.call('HGET', k, 'idle_since'))\n"
    "end\n"
    "redis.call('ZADD', KEYS[2], 0, id)\n"
    "return {created and 'created' or 'replaced', agents_view(k)}\n";

/*
 * delete: KEYS: agent, tenant index. ARGV: group key prefix, idle key
 * prefix, id. Returns 1, or 0 when there was no such agent.
 */
const char agents_lua_delete[] =
    AGENTS_LUA_PRELUDE "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
                       "for _, g in ipairs(agents_groups(KEYS[1])) do\n"
                       "  redis.call('ZREM', ARGV[1] .. g, ARGV[3])\n"
                       "  redis.call('ZREM', ARGV[2] .. g, ARGV[3])\n"
                       "end\n"
                       "redis.call('DEL', KEYS[1])\n"
                       "redis.call('ZREM', KEYS[2], ARGV[3])\n"
                       "return 1\n";

/*
 * status: the agent (or CRM) sets its status. KEYS: agent. ARGV: idle key
 * prefix, status.
 * Setting the status it already has changes nothing: a CRM that repeats
 * "available" must not send its agent to the back of the idle queue.
 * available: idle since now, in its groups' idle sets, call cleared.
 * busy (by hand): out of the idle sets; no call, so no call's end can make
 * it available behind the agent's back. offline: out of the idle sets; a
 * call in progress keeps its call_id (shown, and release leaves offline
 * agents alone anyway).
 * Returns {"ok", view} or {"missing"}.
 */
const char agents_lua_status[] = AGENTS_LUA_PRELUDE
    "local k = KEYS[1]\n"
    "local cur = redis.call('HGET', k, 'status')\n"
    "if not cur then return {'missing'} end\n"
    "if cur ~= ARGV[2] then\n"
    "  local id, now = redis.call('HGET', k, 'id'), agents_now()\n"
    "  if ARGV[2] == 'available' then\n"
    "    redis.call('HSET', k, 'status', 'available', 'status_since', now, 'call_id', '',\n"
    "               'idle_since', now)\n"
    "    agents_idle(k, ARGV[1], id, now)\n"
    "  else\n"
    "    agents_unidle(k, ARGV[1], id)\n"
    "    redis.call('HSET', k, 'status', ARGV[2], 'status_since', now, 'idle_since', '')\n"
    "    if ARGV[2] == 'busy' then redis.call('HSET', k, 'call_id', '') end\n"
    "  end\n"
    "end\n"
    "return {'ok', agents_view(k)}\n";

/*
 * The two ways a placement takes an agent, as Lua functions: the placement's
 * begin script (callrec.c) runs them in the same script that claims the
 * idempotency key and writes the call record, so a call costs one Redis
 * round trip before its vendor is contacted. rec, when given, is the list of
 * field/value pairs the begin script is about to write into the call record:
 * the agent is appended to it, so the record learns its agent in the same
 * step (a terminal webhook frees the agent even if it beats the placement's
 * final write) with one HSET for the whole record.
 *
 * Each reads the agent with one HMGET (the view and the groups) and builds
 * the view it answers from that and what it wrote, rather than reading the
 * agent again. A busy agent is in no idle set (the invariant above), so
 * giving it a new call touches neither its idle sets nor status_since.
 *
 * reserve: the named agent. k: agent key, ip: idle key prefix, cid: call
 * id, need: "1" when the rule requires the agent available.
 * The same call reserving again (a retried step) is answered "ok" again.
 * Without the requirement, a busy agent takes the new call (its call_id
 * follows the newest call) and an offline one stays offline.
 * Returns {"ok", view}, {"unavailable", view} or {"missing"}.
 *
 * claim: the longest-idle available agent of a group. idle: the group's
 * idle set, members: its members, ap: agent key prefix, ip, cid as above.
 * The idle set's first member is popped and made busy in the same script,
 * so two replicas claiming at once get two different agents. An entry whose
 * agent is not available (cannot happen while the invariant holds) is
 * dropped rather than handed out.
 * Returns {"ok", view}, {"unavailable"} (members, none available) or
 * {"missing"} (no such group).
 */
#define AGENTS_LUA_PLACE                                                                           \
    "local function agents_took(v, rec)\n"                                                         \
    "  if rec then\n"                                                                              \
    "    local n = #rec\n"                                                                         \
    "    rec[n + 1], rec[n + 2], rec[n + 3], rec[n + 4] = 'agent', v[1], 'agent_reserved', '1'\n"  \
    "  end\n"                                                                                      \
    "  v[8] = nil\n"                                                                               \
    "  return {'ok', v}\n"                                                                         \
    "end\n"                                                                                        \
    "local function agents_busy(k, v, ip, id, cid)\n"                                              \
    "  for g in string.gmatch(v[8] or '', '[^,]+') do redis.call('ZREM', ip .. g, id) end\n"       \
    "  v[3], v[4], v[5], v[6] = 'busy', agents_now(), cid, ''\n"                                   \
    "  redis.call('HSET', k, 'status', 'busy', 'status_since', v[4], 'call_id', cid,\n"            \
    "             'idle_since', '')\n"                                                             \
    "end\n"                                                                                        \
    "local function agents_reserve(k, ip, cid, need, rec)\n"                                       \
    "  local v = redis.call('HMGET', k, " AGENTS_LUA_VIEW_FIELDS ", 'groups')\n"                   \
    "  local cur = v[3]\n"                                                                         \
    "  if not cur then return {'missing'} end\n"                                                   \
    "  if cur == 'busy' and v[5] == cid then return agents_took(v, rec) end\n"                     \
    "  if cur ~= 'available' and need == '1' then v[8] = nil; return {'unavailable', v} end\n"     \
    "  if cur == 'busy' then\n"                                                                    \
    "    v[5], v[6] = cid, ''\n"                                                                   \
    "    redis.call('HSET', k, 'call_id', cid, 'idle_since', '')\n"                                \
    "  elseif cur ~= 'offline' then\n"                                                             \
    "    agents_busy(k, v, ip, v[1], cid)\n"                                                       \
    "  end\n"                                                                                      \
    "  return agents_took(v, rec)\n"                                                               \
    "end\n"                                                                                        \
    "local function agents_claim(idle, members, ap, ip, cid, rec)\n"                               \
    "  while true do\n"                                                                            \
    "    local first = redis.call('ZRANGE', idle, 0, 0)\n"                                         \
    "    if #first == 0 then\n"                                                                    \
    "      if redis.call('EXISTS', members) == 0 then return {'missing'} end\n"                    \
    "      return {'unavailable'}\n"                                                               \
    "    end\n"                                                                                    \
    "    local id = first[1]\n"                                                                    \
    "    local k = ap .. id\n"                                                                     \
    "    local v = redis.call('HMGET', k, " AGENTS_LUA_VIEW_FIELDS ", 'groups')\n"                 \
    "    if v[3] == 'available' then\n"                                                            \
    "      agents_busy(k, v, ip, id, cid)\n"                                                       \
    "      return agents_took(v, rec)\n"                                                           \
    "    end\n"                                                                                    \
    "    redis.call('ZREM', idle, id)\n"                                                           \
    "  end\n"                                                                                      \
    "end\n"

const char agents_lua_place[] = AGENTS_LUA_NOW AGENTS_LUA_PLACE;

/* reserve on its own. KEYS: agent. ARGV: idle key prefix, call id, require available. */
const char agents_lua_reserve[] = AGENTS_LUA_NOW AGENTS_LUA_PLACE
    "return agents_reserve(KEYS[1], ARGV[1], ARGV[2], ARGV[3], nil)\n";

/* claim on its own. KEYS: group idle set, group members. ARGV: agent key prefix, idle
 * key prefix, call id. */
const char agents_lua_claim[] = AGENTS_LUA_NOW AGENTS_LUA_PLACE
    "return agents_claim(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], nil)\n";

/*
 * release: the call ended (or certainly was not placed). KEYS: agent.
 * ARGV: idle key prefix, call id. Only an agent busy with this very call
 * becomes available (idle since now); offline agents and agents busy with
 * another call (or set busy by hand) are left alone.
 * Returns 1 when released, else 0.
 */
const char agents_lua_release[] = AGENTS_LUA_PRELUDE
    "local k = KEYS[1]\n"
    "if ARGV[2] == '' or redis.call('HGET', k, 'status') ~= 'busy' or\n"
    "   redis.call('HGET', k, 'call_id') ~= ARGV[2] then\n"
    "  return 0\n"
    "end\n"
    "local now = agents_now()\n"
    "redis.call('HSET', k, 'status', 'available', 'status_since', now, 'call_id', '',\n"
    "           'idle_since', now)\n"
    "agents_idle(k, ARGV[1], redis.call('HGET', k, 'id'), now)\n"
    "return 1\n";

/*
 * list: one page of agents in id order. KEYS: the index to walk (the
 * tenant's, or a group's members). ARGV: agent key prefix, cursor (the last
 * id of the previous page, "" for the first), limit, status filter ("" for
 * any), most agents to examine.
 * Returns {views, next cursor or ""}. The cursor is "" when nothing follows,
 * so the last page never points at an empty one.
 */
const char agents_lua_list[] = AGENTS_LUA_PRELUDE
    "local out, examined = {}, 0\n"
    "local limit, most = tonumber(ARGV[3]), tonumber(ARGV[5])\n"
    "local from = ARGV[2] == '' and '-' or '(' .. ARGV[2]\n"
    "while true do\n"
    "  local ids = redis.call('ZRANGEBYLEX', KEYS[1], from, '+', 'LIMIT', 0, 100)\n"
    "  if #ids == 0 then return {out, ''} end\n"
    "  for _, id in ipairs(ids) do\n"
    "    examined = examined + 1\n"
    "    local v = agents_view(ARGV[1] .. id)\n"
    "    if v[1] and (ARGV[4] == '' or v[3] == ARGV[4]) then out[#out + 1] = v end\n"
    "    if #out >= limit or examined >= most then\n"
    "      if #redis.call('ZRANGEBYLEX', KEYS[1], '(' .. id, '+', 'LIMIT', 0, 1) == 0 then\n"
    "        return {out, ''}\n"
    "      end\n"
    "      return {out, id}\n"
    "    end\n"
    "  end\n"
    "  from = '(' .. ids[#ids]\n"
    "end\n";

/* clang-format on */

/*
 * Run a script. Script objects (source and SHA-1) are made once per source
 * and kept in app->agents_scripts: hashing a script per request showed in
 * profiles. GW_OK or GW_ERR as store_eval.
 */
struct agents_scripts {
    const char *source[8];
    struct store_script *sc[8];
};

static int
agents_eval(struct app *app, const char *source, int nkeys, int nargs, const char **args,
            store_cb cb, void *arg)
{
    struct agents_scripts *cache = app->agents_scripts;
    struct store_script *sc = NULL;
    size_t i;

    if (cache == NULL && (cache = app->agents_scripts = calloc(1, sizeof(*cache))) == NULL) {
        return GW_ERR;
    }
    for (i = 0; i < GW_ARRAY_LEN(cache->source) && cache->source[i] != NULL; i++) {
        if (cache->source[i] == source) {
            sc = cache->sc[i];
            break;
        }
    }
    if (sc == NULL) {
        if (i == GW_ARRAY_LEN(cache->source) || (sc = store_script_new(source)) == NULL) {
            return GW_ERR;
        }
        cache->source[i] = source;
        cache->sc[i] = sc;
    }
    return store_eval(app->store, sc, nkeys, nargs, args, NULL, cb, arg);
}

void
agents_free_scripts(struct app *app)
{
    struct agents_scripts *cache = app->agents_scripts;
    size_t i;

    for (i = 0; cache != NULL && i < GW_ARRAY_LEN(cache->sc); i++) {
        store_script_free(cache->sc[i]);
    }
    free(cache);
    app->agents_scripts = NULL;
}

/* ---- names and rendering ----------------------------------------------------- */

/* An agent id or group name: 1 to 64 of [A-Za-z0-9._-], not "." or "..". */
static int
agents_name_ok(const char *s, size_t n)
{
    size_t i;

    if (n == 0 || n > AGENTS_ID_MAX || (n == 1 && s[0] == '.') ||
        (n == 2 && s[0] == '.' && s[1] == '.')) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

/* A Redis string element as JSON (new reference), or null when nil or empty. */
static json_t *
agents_str_or_null(const struct redisReply *e)
{
    return e->type == REDIS_REPLY_STRING && e->len > 0 ? json_stringn(e->str, e->len) : json_null();
}

/* A milliseconds element as RFC 3339, or null when nil, empty or not a number. */
static json_t *
agents_time_or_null(const struct redisReply *e)
{
    char buf[UTIL_TIME_LEN], *end;
    long long ms;

    if (e->type != REDIS_REPLY_STRING || e->len == 0) {
        return json_null();
    }
    ms = strtoll(e->str, &end, 10);
    if (*end != '\0' || ms < 0) {
        return json_null();
    }
    util_rfc3339((int64_t)ms, buf, sizeof(buf));
    return json_string(buf);
}

/* doc[key] when it has the wanted type (new reference), else def. */
static json_t *
agents_doc_member(json_t *doc, const char *key, json_type type, json_t *def)
{
    json_t *v = json_object_get(doc, key);

    if (v != NULL && json_typeof(v) == type) {
        json_decref(def);
        return json_incref(v);
    }
    return def;
}

#define AGENTS_VIEW_FIELDS 7

/*
 * The agent object (API.md "Agents"; the shape GET /v1/agents/{id} answers
 * and agents_cb receives) from a view, or NULL when the view is of no agent.
 */
static json_t *
agents_render(const struct redisReply *v)
{
    const struct redisReply *const *e;
    json_t *doc, *o;

    if (v == NULL || v->type != REDIS_REPLY_ARRAY || v->elements != AGENTS_VIEW_FIELDS ||
        v->element[0]->type != REDIS_REPLY_STRING) {
        return NULL;
    }
    e = (const struct redisReply *const *)v->element;
    doc = e[1]->type == REDIS_REPLY_STRING ? json_loadb(e[1]->str, e[1]->len, 0, NULL) : NULL;
    o = json_object();
    json_object_set_new(o, "id", json_stringn(e[0]->str, e[0]->len));
    json_object_set_new(o, "name", agents_doc_member(doc, "name", JSON_STRING, json_string("")));
    json_object_set_new(o, "number", agents_doc_member(doc, "number", JSON_STRING, json_null()));
    json_object_set_new(o, "email", agents_doc_member(doc, "email", JSON_STRING, json_null()));
    json_object_set_new(o, "groups", agents_doc_member(doc, "groups", JSON_ARRAY, json_array()));
    json_object_set_new(o, "vendors",
                        agents_doc_member(doc, "vendors", JSON_OBJECT, json_object()));
    json_object_set_new(o, "status",
                        e[2]->type == REDIS_REPLY_STRING ? json_stringn(e[2]->str, e[2]->len)
                                                         : json_string("offline"));
    json_object_set_new(o, "status_since", agents_time_or_null(e[3]));
    json_object_set_new(o, "call_id", agents_str_or_null(e[4]));
    json_object_set_new(o, "idle_since", agents_time_or_null(e[5]));
    json_object_set_new(o, "updated_at", agents_time_or_null(e[6]));
    json_decref(doc);
    return o;
}

/* ---- HTTP: common -------------------------------------------------------------- */

/* One request waiting for Redis. r is NULL once the deadline has answered. */
struct agents_op {
    struct front_req *r;
    char id[AGENTS_ID_MAX + 1];
};

static void
agents_unavailable(struct front_req *r, const char *detail)
{
    r->on_deadline = NULL;
    front_problem_ex(r, 503, "store-unavailable", detail, NULL, NULL,
                     (const char *const[]){"Retry-After", "1", NULL});
}

/* The deadline passed first: answer now; the store's late reply finds op->r NULL. */
static void
agents_on_deadline(struct front_req *r)
{
    struct agents_op *op = r->ctx;

    op->r = NULL;
    agents_unavailable(r, "the agent directory did not answer in time");
}

static struct agents_op *
agents_op_new(struct front_req *r, const char *id)
{
    struct agents_op *op = calloc(1, sizeof(*op));

    if (op == NULL) {
        front_problem(r, 500, "internal", "out of memory", NULL);
        return NULL;
    }
    op->r = r;
    if (id != NULL) {
        util_strlcpy(op->id, id, sizeof(op->id));
    }
    r->ctx = op;
    r->on_deadline = agents_on_deadline;
    return op;
}

/*
 * The store's answer arrived: the request still waiting, or NULL (op freed
 * either way). A failed command is answered 503 here and gives NULL too.
 */
static struct front_req *
agents_op_done(struct agents_op *op, enum store_result res, const struct redisReply *reply)
{
    struct front_req *r = op->r;

    free(op);
    if (r == NULL) {
        return NULL;
    }
    r->on_deadline = NULL;
    r->ctx = NULL;
    if (res != STORE_OK) {
        if (res == STORE_ERR_REPLY) {
            cglog_warn("agents_store_error", "{s:s, s:s}", "request_id", r->request_id, "error",
                       reply != NULL && reply->str != NULL ? reply->str : "-");
        }
        agents_unavailable(r, "the agent directory is not reachable");
        return NULL;
    }
    return r;
}

/* Send a script for op; a command that cannot even be queued is answered at once. */
static void
agents_op_eval(struct agents_op *op, const char *source, int nkeys, int nargs, const char **args,
               store_cb cb)
{
    struct front_req *r = op->r;

    if (agents_eval(r->app, source, nkeys, nargs, args, cb, op) != GW_OK) {
        free(op);
        agents_unavailable(r, "the agent directory is not reachable");
    }
}

/* The {id} of /v1/agents/{id}[/...] into out; 0, or -1 when it is no valid id. */
static int
agents_path_id(const struct front_req *r, char *out, size_t outlen)
{
    const char *id = r->path + strlen("/v1/agents/"), *end = strchr(id, '/');
    size_t n = end != NULL ? (size_t)(end - id) : strlen(id);

    if (!agents_name_ok(id, n) || n >= outlen) {
        return -1;
    }
    memcpy(out, id, n);
    out[n] = '\0';
    return 0;
}

static void
agents_not_found(struct front_req *r)
{
    front_problem(r, 404, "not-found", "no agent with this id", NULL);
}

/* The request body as a JSON object (new reference), or NULL after a 400. */
static json_t *
agents_body_object(struct front_req *r)
{
    json_error_t jerr;
    json_t *body = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *errors;
    char msg[256];

    if (json_is_object(body)) {
        return body;
    }
    snprintf(msg, sizeof(msg), "must be a JSON object%s%s", body != NULL ? "" : ": ",
             body != NULL ? "" : jerr.text);
    json_decref(body);
    errors = json_array();
    problem_add_error(errors, "body", msg);
    front_problem(r, 400, "validation", "the request body is not valid JSON", errors);
    return NULL;
}

/* Append an error whose field is the non-empty parts joined by '.' ("vendors.ccai.email"). */
static void
agents_error(json_t *errors, const char *a, const char *b, const char *c, const char *message)
{
    const char *parts[3] = {a, b, c};
    char field[200] = "";
    size_t i, n = 0;

    for (i = 0; i < 3; i++) {
        if (parts[i] != NULL && parts[i][0] != '\0' && n < sizeof(field)) {
            n += (size_t)snprintf(field + n, sizeof(field) - n, "%s%.64s", n > 0 ? "." : "",
                                  parts[i]);
        }
    }
    problem_add_error(errors, field, message);
}

/* ---- PUT /v1/agents/{id}: validation --------------------------------------------- */

/* Characters (not bytes) of a UTF-8 string jansson has already checked. */
static size_t
agents_utf8_len(const char *s)
{
    size_t n = 0;

    for (; *s != '\0'; s++) {
        n += ((unsigned char)*s & 0xc0) != 0x80;
    }
    return n;
}

/*
 * A string member that must be usable text: a string, 1 to max characters,
 * no NUL or control characters. NULL (after an error) when it is not; the
 * caller deals with absence before.
 */
static const char *
agents_text(json_t *v, const char *field, const char *sub, const char *sub2, size_t max,
            json_t *errors)
{
    const char *s;
    size_t i, n;
    char msg[64];

    if (!json_is_string(v)) {
        agents_error(errors, field, sub, sub2, "must be a string");
        return NULL;
    }
    s = json_string_value(v);
    n = json_string_length(v);
    if (strlen(s) != n) {
        agents_error(errors, field, sub, sub2, "must not contain NUL");
        return NULL;
    }
    if (n == 0 || agents_utf8_len(s) > max) {
        snprintf(msg, sizeof(msg), "must be 1 to %zu characters", max);
        agents_error(errors, field, sub, sub2, msg);
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            agents_error(errors, field, sub, sub2, "must not contain control characters");
            return NULL;
        }
    }
    return s;
}

/* An e-mail address as far as a directory should check one: local@domain, no blanks. */
static int
agents_email_ok(const char *s)
{
    const char *at = strchr(s, '@'), *dom;
    size_t i, n = strlen(s);

    if (at == NULL || at == s || strchr(at + 1, '@') != NULL || n > AGENTS_EMAIL_MAX) {
        return 0;
    }
    dom = at + 1;
    if (dom[0] == '\0' || dom[0] == '.' || s[n - 1] == '.' || strstr(dom, "..") != NULL) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f || strchr("<>()[]\\,;:\"", s[i]) != NULL) {
            return 0;
        }
    }
    return 1;
}

/* A phone number normalised to E.164 into out; 0, or -1 after an error. */
static int
agents_number(const struct front_req *r, json_t *v, const char *field, const char *sub,
              const char *sub2, char *out, json_t *errors)
{
    const char *s = agents_text(v, field, sub, sub2, 32, errors), *why;
    char msg[128];

    if (s == NULL) {
        return -1;
    }
    if (phone_normalize(s, r->tenant->default_country, out, PHONE_E164_MAX, &why) != 0) {
        snprintf(msg, sizeof(msg), "not a phone number: %s", why);
        agents_error(errors, field, sub, sub2, msg);
        return -1;
    }
    return 0;
}

/* Every member of o must be one of the NULL-terminated names. */
static int
agents_only(json_t *o, const char *const *names, const char *field, const char *sub, json_t *errors)
{
    const char *key;
    json_t *v;
    int ok = 1;

    json_object_foreach(o, key, v)
    {
        size_t i;
        int known = 0;
        for (i = 0; names[i] != NULL; i++) {
            known |= strcmp(key, names[i]) == 0;
        }
        if (!known) {
            agents_error(errors, field, sub, key, "unknown field");
            ok = 0;
        }
    }
    return ok;
}

/*
 * One vendor's identity for the agent, normalised (new object), or NULL
 * after errors. Each vendor takes exactly the fields its adapter uses.
 */
static json_t *
agents_vendor_identity(const struct front_req *r, const char *vendor, json_t *v, json_t *errors)
{
    static const char *const cd[] = {"crm_username", NULL};
    static const char *const cdk[] = {"member_id", "number", NULL};
    static const char *const ccai[] = {"email", NULL};
    const char *s;
    json_t *m, *n;
    char e164[PHONE_E164_MAX];
    size_t i;

    if (!json_is_object(v)) {
        agents_error(errors, "vendors", vendor, NULL, "must be an object");
        return NULL;
    }
    if (strcmp(vendor, "clouddialer") == 0) {
        if (!agents_only(v, cd, "vendors", vendor, errors)) {
            return NULL;
        }
        m = json_object_get(v, "crm_username");
        if (m == NULL || json_is_null(m)) {
            agents_error(errors, "vendors", vendor, "crm_username", "is required");
            return NULL;
        }
        s = agents_text(m, "vendors", vendor, "crm_username", AGENTS_IDENTITY_MAX, errors);
        return s != NULL ? json_pack("{s:s}", "crm_username", s) : NULL;
    }
    if (strcmp(vendor, "ccai") == 0) {
        if (!agents_only(v, ccai, "vendors", vendor, errors)) {
            return NULL;
        }
        m = json_object_get(v, "email");
        if (m == NULL || json_is_null(m)) {
            agents_error(errors, "vendors", vendor, "email", "is required");
            return NULL;
        }
        s = agents_text(m, "vendors", vendor, "email", AGENTS_EMAIL_MAX, errors);
        if (s != NULL && !agents_email_ok(s)) {
            agents_error(errors, "vendors", vendor, "email", "is not an e-mail address");
            s = NULL;
        }
        return s != NULL ? json_pack("{s:s}", "email", s) : NULL;
    }
    if (strcmp(vendor, "callerdesk") == 0) {
        if (!agents_only(v, cdk, "vendors", vendor, errors)) {
            return NULL;
        }
        m = json_object_get(v, "member_id");
        n = json_object_get(v, "number");
        if ((m == NULL || json_is_null(m)) == (n == NULL || json_is_null(n))) {
            agents_error(errors, "vendors", vendor, NULL,
                         "give exactly one of member_id or number");
            return NULL;
        }
        if (m != NULL && !json_is_null(m)) {
            s = agents_text(m, "vendors", vendor, "member_id", AGENTS_MEMBER_MAX, errors);
            for (i = 0; s != NULL && s[i] != '\0'; i++) {
                if (s[i] < '0' || s[i] > '9') {
                    agents_error(errors, "vendors", vendor, "member_id", "must be digits only");
                    s = NULL;
                }
            }
            return s != NULL ? json_pack("{s:s}", "member_id", s) : NULL;
        }
        if (agents_number(r, n, "vendors", vendor, "number", e164, errors) != 0) {
            return NULL;
        }
        if (strncmp(e164, "+91", 3) != 0) {
            agents_error(errors, "vendors", vendor, "number",
                         "must be an Indian number (+91): Callerdesk works in India only");
            return NULL;
        }
        return json_pack("{s:s}", "number", e164);
    }
    agents_error(errors, "vendors", vendor, NULL, "this vendor takes no agent identity");
    return NULL;
}

static json_t *
agents_check_vendors(const struct front_req *r, json_t *v, json_t *errors)
{
    json_t *out = json_object(), *one, *iv;
    const char *vendor;

    if (!json_is_object(v)) {
        problem_add_error(errors, "vendors", "must be an object of vendor identities");
        return out;
    }
    json_object_foreach(v, vendor, iv)
    {
        if (conf_tenant_vendor(r->tenant, vendor) == NULL) {
            agents_error(errors, "vendors", vendor, NULL, "is not a vendor this tenant may use");
            continue;
        }
        one = agents_vendor_identity(r, vendor, iv, errors);
        if (one != NULL) {
            json_object_set_new(out, vendor, one);
        }
    }
    return out;
}

/* The groups array, checked, into out (new array) and joined by ',' into list. */
static json_t *
agents_check_groups(json_t *v, char *list, size_t listlen, json_t *errors)
{
    json_t *out = json_array(), *g;
    char field[32];
    size_t i, j;

    list[0] = '\0';
    if (!json_is_array(v)) {
        problem_add_error(errors, "groups", "must be an array of group names");
        return out;
    }
    if (json_array_size(v) > AGENTS_GROUPS_MAX) {
        problem_add_error(errors, "groups", "may name at most 50 groups");
        return out;
    }
    json_array_foreach(v, i, g)
    {
        const char *s = json_string_value(g);
        snprintf(field, sizeof(field), "groups[%zu]", i);
        if (s == NULL || !agents_name_ok(s, json_string_length(g))) {
            problem_add_error(errors, field, "must be 1 to 64 of A-Z a-z 0-9 . _ -");
            continue;
        }
        for (j = 0; j < i; j++) {
            if (json_equal(json_array_get(v, j), g)) {
                break;
            }
        }
        if (j < i) {
            problem_add_error(errors, field, "is named twice");
            continue;
        }
        json_array_append(out, g);
        if (strlen(list) + strlen(s) + 2 <= listlen) {
            snprintf(list + strlen(list), listlen - strlen(list), "%s%s", list[0] ? "," : "", s);
        }
    }
    return out;
}

/* The directory entry to store (new object); errors says whether it may be. */
static json_t *
agents_validate(const struct front_req *r, json_t *body, char *groups, size_t groupslen,
                json_t *errors)
{
    static const char *const fields[] = {"name", "number", "email", "groups", "vendors", NULL};
    json_t *doc = json_object(), *v;
    char e164[PHONE_E164_MAX];
    const char *s;

    agents_only(body, fields, "", NULL, errors);
    v = json_object_get(body, "name");
    if (v == NULL || json_is_null(v)) {
        problem_add_error(errors, "name", "is required");
    } else if ((s = agents_text(v, "name", NULL, NULL, AGENTS_NAME_MAX, errors)) != NULL) {
        json_object_set_new(doc, "name", json_string(s));
    }
    v = json_object_get(body, "number");
    if (v != NULL && !json_is_null(v) &&
        agents_number(r, v, "number", NULL, NULL, e164, errors) == 0) {
        json_object_set_new(doc, "number", json_string(e164));
    }
    v = json_object_get(body, "email");
    if (v != NULL && !json_is_null(v) &&
        (s = agents_text(v, "email", NULL, NULL, AGENTS_EMAIL_MAX, errors)) != NULL) {
        if (!agents_email_ok(s)) {
            problem_add_error(errors, "email", "is not an e-mail address");
        } else {
            json_object_set_new(doc, "email", json_string(s));
        }
    }
    v = json_object_get(body, "groups");
    groups[0] = '\0';
    json_object_set_new(doc, "groups",
                        v != NULL && !json_is_null(v)
                            ? agents_check_groups(v, groups, groupslen, errors)
                            : json_array());
    v = json_object_get(body, "vendors");
    json_object_set_new(doc, "vendors",
                        v != NULL && !json_is_null(v) ? agents_check_vendors(r, v, errors)
                                                      : json_object());
    return doc;
}

/* ---- PUT /v1/agents/{id} ---------------------------------------------------------- */

static void
agents_on_put(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct agents_op *op = arg;
    char id[AGENTS_ID_MAX + 1], loc[96];
    struct front_req *r;
    json_t *agent = NULL;
    int created = 0;

    util_strlcpy(id, op->id, sizeof(id));
    if ((r = agents_op_done(op, res, reply)) == NULL) {
        return;
    }
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_STRING) {
        created = strcmp(reply->element[0]->str, "created") == 0;
        agent = agents_render(reply->element[1]);
    }
    if (agent == NULL) {
        agents_unavailable(r, "the agent directory gave an unexpected answer");
        return;
    }
    snprintf(loc, sizeof(loc), "/v1/agents/%s", id);
    front_reply_json(r, created ? 201 : 200, agent,
                     created ? (const char *const[]){"Location", loc, NULL} : NULL);
}

void
agents_put(struct front_req *r)
{
    char id[AGENTS_ID_MAX + 1], key[AGENTS_KEY_MAX], idx[AGENTS_KEY_MAX];
    char gp[AGENTS_KEY_MAX], ip[AGENTS_KEY_MAX];
    char groups[AGENTS_GROUPS_MAX * (AGENTS_ID_MAX + 1) + 1];
    const char *args[7];
    json_t *body, *errors, *doc;
    struct agents_op *op;
    char *text;

    errors = json_array();
    if (agents_path_id(r, id, sizeof(id)) != 0) {
        problem_add_error(errors, "agent_id", "must be 1 to 64 of A-Z a-z 0-9 . _ -");
    }
    if ((body = agents_body_object(r)) == NULL) {
        json_decref(errors);
        return;
    }
    doc = agents_validate(r, body, groups, sizeof(groups), errors);
    json_decref(body);
    if (json_array_size(errors) > 0) {
        json_decref(doc);
        front_problem(r, 400, "validation", "the request has invalid fields; see errors", errors);
        return;
    }
    json_decref(errors);
    text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (text == NULL || (op = agents_op_new(r, id)) == NULL) {
        if (text == NULL) {
            front_problem(r, 500, "internal", "out of memory", NULL);
        }
        free(text);
        return;
    }
    app_key(r->app, key, sizeof(key), "agent:%s:%s", r->tenant->id, id);
    app_key(r->app, idx, sizeof(idx), "agents:%s", r->tenant->id);
    app_key(r->app, gp, sizeof(gp), "agroup:%s:", r->tenant->id);
    app_key(r->app, ip, sizeof(ip), "aidle:%s:", r->tenant->id);
    args[0] = key;
    args[1] = idx;
    args[2] = gp;
    args[3] = ip;
    args[4] = id;
    args[5] = text;
    args[6] = groups;
    agents_op_eval(op, agents_lua_put, 2, 7, args, agents_on_put);
    free(text);
}

/* ---- GET /v1/agents/{id} ----------------------------------------------------------- */

static void
agents_on_get(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct front_req *r = agents_op_done(arg, res, reply);
    json_t *agent;

    if (r == NULL) {
        return;
    }
    agent = agents_render(reply);
    if (agent == NULL) {
        agents_not_found(r);
        return;
    }
    front_reply_json(r, 200, agent, NULL);
}

void
agents_get(struct front_req *r)
{
    char id[AGENTS_ID_MAX + 1], key[AGENTS_KEY_MAX];
    const char *argv[2 + AGENTS_VIEW_FIELDS] = {
        "HMGET", key, "id", "doc", "status", "status_since", "call_id", "idle_since", "updated_at"};
    struct agents_op *op;

    if (agents_path_id(r, id, sizeof(id)) != 0) {
        agents_not_found(r);
        return;
    }
    if ((op = agents_op_new(r, id)) == NULL) {
        return;
    }
    app_key(r->app, key, sizeof(key), "agent:%s:%s", r->tenant->id, id);
    if (store_cmd_argv(r->app->store, (int)GW_ARRAY_LEN(argv), argv, NULL, agents_on_get, op) !=
        GW_OK) {
        free(op);
        agents_unavailable(r, "the agent directory is not reachable");
    }
}

/* ---- DELETE /v1/agents/{id} --------------------------------------------------------- */

static void
agents_on_delete(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct front_req *r = agents_op_done(arg, res, reply);

    if (r == NULL) {
        return;
    }
    if (reply->type != REDIS_REPLY_INTEGER || reply->integer != 1) {
        agents_not_found(r);
        return;
    }
    front_reply_raw(r, 204, NULL, NULL, 0, NULL);
}

void
agents_delete(struct front_req *r)
{
    char id[AGENTS_ID_MAX + 1], key[AGENTS_KEY_MAX], idx[AGENTS_KEY_MAX];
    char gp[AGENTS_KEY_MAX], ip[AGENTS_KEY_MAX];
    const char *args[5];
    struct agents_op *op;

    if (agents_path_id(r, id, sizeof(id)) != 0) {
        agents_not_found(r);
        return;
    }
    if ((op = agents_op_new(r, id)) == NULL) {
        return;
    }
    app_key(r->app, key, sizeof(key), "agent:%s:%s", r->tenant->id, id);
    app_key(r->app, idx, sizeof(idx), "agents:%s", r->tenant->id);
    app_key(r->app, gp, sizeof(gp), "agroup:%s:", r->tenant->id);
    app_key(r->app, ip, sizeof(ip), "aidle:%s:", r->tenant->id);
    args[0] = key;
    args[1] = idx;
    args[2] = gp;
    args[3] = ip;
    args[4] = id;
    agents_op_eval(op, agents_lua_delete, 2, 5, args, agents_on_delete);
}

/* ---- PUT /v1/agents/{id}/status ----------------------------------------------------- */

static const char *const agents_statuses[] = {"available", "busy", "offline", NULL};

/* The status as its static spelling, or NULL. */
static const char *
agents_status_find(const char *s)
{
    size_t i;

    for (i = 0; s != NULL && agents_statuses[i] != NULL; i++) {
        if (strcmp(s, agents_statuses[i]) == 0) {
            return agents_statuses[i];
        }
    }
    return NULL;
}

static void
agents_on_status(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct front_req *r = agents_op_done(arg, res, reply);
    json_t *agent = NULL;

    if (r == NULL) {
        return;
    }
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
        agent = agents_render(reply->element[1]);
    }
    if (agent == NULL) {
        agents_not_found(r);
        return;
    }
    front_reply_json(r, 200, agent, NULL);
}

void
agents_set_status(struct front_req *r)
{
    static const char *const fields[] = {"status", NULL};
    char id[AGENTS_ID_MAX + 1], key[AGENTS_KEY_MAX], ip[AGENTS_KEY_MAX];
    const char *args[3], *status = NULL;
    json_t *body, *errors, *v;
    struct agents_op *op;

    if (agents_path_id(r, id, sizeof(id)) != 0) {
        agents_not_found(r);
        return;
    }
    if ((body = agents_body_object(r)) == NULL) {
        return;
    }
    errors = json_array();
    agents_only(body, fields, "", NULL, errors);
    v = json_object_get(body, "status");
    if (v == NULL || json_is_null(v)) {
        problem_add_error(errors, "status", "is required");
    } else if ((status = agents_status_find(json_string_value(v))) == NULL) {
        problem_add_error(errors, "status", "must be available, busy or offline");
    }
    json_decref(body);
    if (json_array_size(errors) > 0) {
        front_problem(r, 400, "validation", "the request has invalid fields; see errors", errors);
        return;
    }
    json_decref(errors);
    if ((op = agents_op_new(r, id)) == NULL) {
        return;
    }
    app_key(r->app, key, sizeof(key), "agent:%s:%s", r->tenant->id, id);
    app_key(r->app, ip, sizeof(ip), "aidle:%s:", r->tenant->id);
    args[0] = key;
    args[1] = ip;
    args[2] = status;
    agents_op_eval(op, agents_lua_status, 1, 3, args, agents_on_status);
}

/* ---- GET /v1/agents ----------------------------------------------------------------- */

static void
agents_on_list(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct front_req *r = agents_op_done(arg, res, reply);
    const struct redisReply *views, *next;
    json_t *data, *out;
    size_t i;

    if (r == NULL) {
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_ARRAY ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
        agents_unavailable(r, "the agent directory gave an unexpected answer");
        return;
    }
    views = reply->element[0];
    next = reply->element[1];
    data = json_array();
    for (i = 0; i < views->elements; i++) {
        json_t *agent = agents_render(views->element[i]);
        if (agent != NULL) {
            json_array_append_new(data, agent);
        }
    }
    out = json_object();
    json_object_set_new(out, "data", data);
    json_object_set_new(out, "next_cursor",
                        next->len > 0 ? json_stringn(next->str, next->len) : json_null());
    front_reply_json(r, 200, out, NULL);
}

void
agents_list(struct front_req *r)
{
    char idx[AGENTS_KEY_MAX], prefix[AGENTS_KEY_MAX], limit_s[16], examine[16];
    char group[AGENTS_ID_MAX + 1] = "", cursor[AGENTS_ID_MAX + 1] = "";
    const char *status = "", *args[6];
    struct evkeyvalq q;
    struct evkeyval *kv;
    struct agents_op *op;
    long limit = AGENTS_LIST_DEFAULT;
    json_t *errors = json_array();

    TAILQ_INIT(&q);
    if (r->query != NULL && evhttp_parse_query_str(r->query, &q) != 0) {
        problem_add_error(errors, "query", "is not a valid query string");
    }
    TAILQ_FOREACH(kv, &q, next)
    {
        if (strcmp(kv->key, "limit") == 0) {
            if (util_parse_long(kv->value, 1, AGENTS_LIST_MAX, &limit) != 0) {
                problem_add_error(errors, "limit", "must be an integer from 1 to 200");
            }
        } else if (strcmp(kv->key, "cursor") == 0) {
            if (!agents_name_ok(kv->value, strlen(kv->value))) {
                problem_add_error(errors, "cursor", "is not a cursor this API returned");
            } else {
                util_strlcpy(cursor, kv->value, sizeof(cursor));
            }
        } else if (strcmp(kv->key, "status") == 0) {
            if ((status = agents_status_find(kv->value)) == NULL) {
                problem_add_error(errors, "status", "must be available, busy or offline");
                status = "";
            }
        } else if (strcmp(kv->key, "group") == 0) {
            if (!agents_name_ok(kv->value, strlen(kv->value))) {
                problem_add_error(errors, "group", "must be 1 to 64 of A-Z a-z 0-9 . _ -");
            } else {
                util_strlcpy(group, kv->value, sizeof(group));
            }
        } else {
            agents_error(errors, kv->key, NULL, NULL, "unknown query parameter");
        }
    }
    evhttp_clear_headers(&q);
    if (json_array_size(errors) > 0) {
        front_problem(r, 400, "validation", "the query has invalid parameters; see errors", errors);
        return;
    }
    json_decref(errors);
    if ((op = agents_op_new(r, NULL)) == NULL) {
        return;
    }
    if (group[0] != '\0') {
        app_key(r->app, idx, sizeof(idx), "agroup:%s:%s", r->tenant->id, group);
    } else {
        app_key(r->app, idx, sizeof(idx), "agents:%s", r->tenant->id);
    }
    app_key(r->app, prefix, sizeof(prefix), "agent:%s:", r->tenant->id);
    snprintf(limit_s, sizeof(limit_s), "%ld", limit);
    snprintf(examine, sizeof(examine), "%d", AGENTS_LIST_EXAMINE);
    args[0] = idx;
    args[1] = prefix;
    args[2] = cursor;
    args[3] = limit_s;
    args[4] = status;
    args[5] = examine;
    agents_op_eval(op, agents_lua_list, 1, 6, args, agents_on_list);
}

/* ---- placements ------------------------------------------------------------------------ */

/*
 * Completion contract of agents_reserve() and agents_claim_group(): cb runs
 * exactly once and never before the function has returned -- the answer
 * comes from the loop, failures included (the one exception: when memory
 * for that bookkeeping cannot be had, cb runs at once with
 * AGENTS_STORE_ERROR). The agent passed to cb is borrowed; json_incref()
 * it to keep it. After AGENTS_STORE_ERROR the outcome is unknown: the
 * script may have run (a Redis timeout), so a caller that gives up on a
 * named agent should still agents_release() it with its call id. (After a
 * claim that timed out, which agent took the call cannot be known here; it
 * stays busy with that call id until someone sets its status.)
 */
struct agents_task {
    agents_cb cb;
    void *arg;
    enum agents_result res; /* for a deferred answer */
    const char *what;       /* "reserve" / "claim", for logs */
    char tenant[64];
    char name[AGENTS_ID_MAX + 1]; /* agent id or group */
    char call_id[80];
};

static void
agents_task_finish(struct agents_task *t, enum agents_result res, json_t *agent)
{
    t->cb(res, agent, t->arg);
    json_decref(agent);
    free(t);
}

static void
agents_task_on_later(evutil_socket_t fd, short what, void *arg)
{
    struct agents_task *t = arg;

    agents_task_finish(t, t->res, NULL);
}

/* Answer res from the loop, so that callers never see the callback inside their call. */
static void
agents_task_later(struct app *app, struct agents_task *t, enum agents_result res)
{
    struct timeval now = {0, 0};

    t->res = res;
    if (event_base_once(app->base, -1, EV_TIMEOUT, agents_task_on_later, t, &now) != 0) {
        agents_task_finish(t, res, NULL);
    }
}

enum agents_result
agents_place_result(const struct redisReply *tag, const struct redisReply *view, json_t **agent)
{
    *agent = NULL;
    if (tag == NULL || tag->type != REDIS_REPLY_STRING) {
        return AGENTS_STORE_ERROR;
    }
    if (view != NULL) {
        *agent = agents_render(view);
    }
    if (strcmp(tag->str, "ok") == 0 && *agent != NULL) {
        return AGENTS_OK;
    }
    if (strcmp(tag->str, "unavailable") == 0) {
        return AGENTS_UNAVAILABLE;
    }
    if (strcmp(tag->str, "missing") == 0) {
        return AGENTS_NOT_FOUND;
    }
    json_decref(*agent);
    *agent = NULL;
    return AGENTS_STORE_ERROR;
}

int
agents_place_args(struct app *app, const char *tenant, const char *name, int group,
                  int require_available, struct agents_place_args *out)
{
    memset(out, 0, sizeof(*out));
    if (tenant == NULL || name == NULL || !agents_name_ok(name, strlen(name))) {
        return -1;
    }
    if (group) {
        out->op = "claim";
        out->nkeys = 2;
        app_key(app, out->keys[0], sizeof(out->keys[0]), "aidle:%s:%s", tenant, name);
        app_key(app, out->keys[1], sizeof(out->keys[1]), "agroup:%s:%s", tenant, name);
        app_key(app, out->args[0], sizeof(out->args[0]), "agent:%s:", tenant);
        app_key(app, out->args[1], sizeof(out->args[1]), "aidle:%s:", tenant);
    } else {
        out->op = "reserve";
        out->nkeys = 1;
        app_key(app, out->keys[0], sizeof(out->keys[0]), "agent:%s:%s", tenant, name);
        app_key(app, out->args[0], sizeof(out->args[0]), "aidle:%s:", tenant);
        snprintf(out->args[1], sizeof(out->args[1]), "%s", require_available ? "1" : "0");
    }
    return 0;
}

static void
agents_on_placed(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct agents_task *t = arg;
    enum agents_result out = AGENTS_STORE_ERROR;
    json_t *agent = NULL;

    if (res == STORE_OK && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1) {
        out = agents_place_result(reply->element[0],
                                  reply->elements == 2 ? reply->element[1] : NULL, &agent);
    }
    if (out == AGENTS_STORE_ERROR) {
        cglog_warn("agents_placement_failed", "{s:s, s:s, s:s, s:s, s:s}", "op", t->what, "tenant",
                   t->tenant, "name", t->name, "call_id", t->call_id, "error",
                   res == STORE_ERR_REPLY && reply->str != NULL ? reply->str
                                                                : store_result_text[res]);
    }
    agents_task_finish(t, out, agent);
}

static struct agents_task *
agents_task_new(const char *what, const char *tenant, const char *name, const char *call_id,
                agents_cb cb, void *arg)
{
    struct agents_task *t = calloc(1, sizeof(*t));

    if (t == NULL) {
        cb(AGENTS_STORE_ERROR, NULL, arg);
        return NULL;
    }
    t->cb = cb;
    t->arg = arg;
    t->what = what;
    util_strlcpy(t->tenant, tenant != NULL ? tenant : "", sizeof(t->tenant));
    util_strlcpy(t->name, name != NULL ? name : "", sizeof(t->name));
    util_strlcpy(t->call_id, call_id != NULL ? call_id : "", sizeof(t->call_id));
    return t;
}

/* Arguments a placement cannot work with; -1 after answering (later). */
static int
agents_task_check(struct app *app, struct agents_task *t, const char *tenant, const char *name,
                  const char *call_id)
{
    if (tenant == NULL || call_id == NULL || call_id[0] == '\0' ||
        strlen(call_id) >= sizeof(t->call_id) || strlen(tenant) >= sizeof(t->tenant)) {
        cglog_error("agents_placement_misuse", "{s:s, s:s}", "op", t->what, "name", t->name);
        agents_task_later(app, t, AGENTS_STORE_ERROR);
        return -1;
    }
    if (name == NULL || !agents_name_ok(name, strlen(name))) {
        agents_task_later(app, t, AGENTS_NOT_FOUND); /* no such id can exist */
        return -1;
    }
    return 0;
}

void
agents_reserve(struct app *app, const char *tenant, const char *agent_id, const char *call_id,
               int require_available, agents_cb cb, void *arg)
{
    struct agents_task *t = agents_task_new("reserve", tenant, agent_id, call_id, cb, arg);
    char key[AGENTS_KEY_MAX], ip[AGENTS_KEY_MAX];
    const char *args[4];

    if (t == NULL || agents_task_check(app, t, tenant, agent_id, call_id) != 0) {
        return;
    }
    app_key(app, key, sizeof(key), "agent:%s:%s", tenant, agent_id);
    app_key(app, ip, sizeof(ip), "aidle:%s:", tenant);
    args[0] = key;
    args[1] = ip;
    args[2] = call_id;
    args[3] = require_available ? "1" : "0";
    if (agents_eval(app, agents_lua_reserve, 1, 4, args, agents_on_placed, t) != GW_OK) {
        agents_task_later(app, t, AGENTS_STORE_ERROR);
    }
}

void
agents_claim_group(struct app *app, const char *tenant, const char *group, const char *call_id,
                   agents_cb cb, void *arg)
{
    struct agents_task *t = agents_task_new("claim", tenant, group, call_id, cb, arg);
    char idle[AGENTS_KEY_MAX], members[AGENTS_KEY_MAX], prefix[AGENTS_KEY_MAX];
    char ip[AGENTS_KEY_MAX];
    const char *args[5];

    if (t == NULL || agents_task_check(app, t, tenant, group, call_id) != 0) {
        return;
    }
    app_key(app, idle, sizeof(idle), "aidle:%s:%s", tenant, group);
    app_key(app, members, sizeof(members), "agroup:%s:%s", tenant, group);
    app_key(app, prefix, sizeof(prefix), "agent:%s:", tenant);
    app_key(app, ip, sizeof(ip), "aidle:%s:", tenant);
    args[0] = idle;
    args[1] = members;
    args[2] = prefix;
    args[3] = ip;
    args[4] = call_id;
    if (agents_eval(app, agents_lua_claim, 2, 5, args, agents_on_placed, t) != GW_OK) {
        agents_task_later(app, t, AGENTS_STORE_ERROR);
    }
}

/* What a release is about, for its log line. */
struct agents_release_ctx {
    char tenant[64];
    char agent[AGENTS_ID_MAX + 1];
    char call_id[80];
};

static void
agents_on_released(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct agents_release_ctx *c = arg;

    if (res != STORE_OK) {
        /* The agent stays busy until someone sets its status: worth an operator's eye. */
        cglog_warn("agents_release_failed", "{s:s, s:s, s:s, s:s}", "tenant", c->tenant, "agent",
                   c->agent, "call_id", c->call_id, "error",
                   res == STORE_ERR_REPLY && reply->str != NULL ? reply->str
                                                                : store_result_text[res]);
    } else {
        cglog_debug("agents_release", "{s:s, s:s, s:s, s:b}", "tenant", c->tenant, "agent",
                    c->agent, "call_id", c->call_id, "released",
                    reply->type == REDIS_REPLY_INTEGER && reply->integer == 1);
    }
    free(c);
}

void
agents_release(struct app *app, const char *tenant, const char *agent_id, const char *call_id)
{
    struct agents_release_ctx *c;
    char key[AGENTS_KEY_MAX], ip[AGENTS_KEY_MAX];
    const char *args[3];

    if (tenant == NULL || agent_id == NULL || call_id == NULL || call_id[0] == '\0' ||
        !agents_name_ok(agent_id, strlen(agent_id))) {
        return; /* nobody can be busy with that */
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        cglog_warn("agents_release_failed", "{s:s, s:s, s:s}", "tenant", tenant, "agent", agent_id,
                   "error", "out of memory");
        return;
    }
    util_strlcpy(c->tenant, tenant, sizeof(c->tenant));
    util_strlcpy(c->agent, agent_id, sizeof(c->agent));
    util_strlcpy(c->call_id, call_id, sizeof(c->call_id));
    app_key(app, key, sizeof(key), "agent:%s:%s", tenant, agent_id);
    app_key(app, ip, sizeof(ip), "aidle:%s:", tenant);
    args[0] = key;
    args[1] = ip;
    args[2] = call_id;
    if (agents_eval(app, agents_lua_release, 1, 3, args, agents_on_released, c) != GW_OK) {
        cglog_warn("agents_release_failed", "{s:s, s:s, s:s, s:s}", "tenant", tenant, "agent",
                   agent_id, "call_id", call_id, "error", "not sent");
        free(c);
    }
}

/* ---- identities -------------------------------------------------------------------------- */

/*
 * "member:<id>" strings for Callerdesk member ids, made once and kept for
 * the process's life: agents_identity() returns a pointer that must outlive
 * the call without the agent JSON holding the text. Member ids are short
 * digit strings and the set is bounded by the directory, so the table stays
 * small; it is only touched from the loop's thread.
 */
#define AGENTS_INTERN_BUCKETS 1024

struct agents_intern {
    struct agents_intern *next;
    char text[]; /* "member:<id>" */
};

static struct agents_intern *agents_interned[AGENTS_INTERN_BUCKETS];

static const char *
agents_member_identity(const char *member_id)
{
    char text[8 + AGENTS_MEMBER_MAX + 1];
    struct agents_intern *e, **head;
    size_t h = 5381, i, n;

    n = (size_t)snprintf(text, sizeof(text), "member:%s", member_id);
    if (n >= sizeof(text)) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        h = h * 33 + (unsigned char)text[i];
    }
    head = &agents_interned[h % AGENTS_INTERN_BUCKETS];
    for (e = *head; e != NULL; e = e->next) {
        if (strcmp(e->text, text) == 0) {
            return e->text;
        }
    }
    e = malloc(sizeof(*e) + n + 1);
    if (e == NULL) {
        return NULL;
    }
    memcpy(e->text, text, n + 1);
    e->next = *head;
    *head = e;
    return e->text;
}

/*
 * Strings returned point into agent (valid while it lives), except the
 * Callerdesk "member:<id>" form, which is interned and never freed.
 */
const char *
agents_identity(const json_t *agent, const char *vendor)
{
    json_t *v;
    const char *s;

    if (vendor == NULL) {
        return NULL;
    }
    v = json_object_get(json_object_get(agent, "vendors"), vendor);
    if (!json_is_object(v)) {
        return NULL;
    }
    if (strcmp(vendor, "clouddialer") == 0) {
        s = json_string_value(json_object_get(v, "crm_username"));
    } else if (strcmp(vendor, "ccai") == 0) {
        s = json_string_value(json_object_get(v, "email"));
    } else if (strcmp(vendor, "callerdesk") == 0) {
        s = json_string_value(json_object_get(v, "member_id"));
        if (s != NULL && s[0] != '\0') {
            return agents_member_identity(s);
        }
        s = json_string_value(json_object_get(v, "number"));
    } else {
        s = NULL;
    }
    return s != NULL && s[0] != '\0' ? s : NULL;
}

/* ---- read only, for explain ------------------------------------------------------ */

static void
agents_on_looked_up(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct agents_task *t = arg;
    json_t *agent = res == STORE_OK ? agents_render(reply) : NULL;

    agents_task_finish(t, agent != NULL ? AGENTS_OK
                          : res == STORE_OK ? AGENTS_NOT_FOUND
                                            : AGENTS_STORE_ERROR,
                       agent);
}

void
agents_lookup(struct app *app, const char *tenant, const char *agent_id, agents_cb cb, void *arg)
{
    struct agents_task *t = agents_task_new("lookup", tenant, agent_id, "-", cb, arg);
    char key[AGENTS_KEY_MAX];
    const char *argv[2 + AGENTS_VIEW_FIELDS] = {
        "HMGET", key, "id", "doc", "status", "status_since", "call_id", "idle_since", "updated_at"};

    if (t == NULL || agents_task_check(app, t, tenant, agent_id, "-") != 0) {
        return;
    }
    app_key(app, key, sizeof(key), "agent:%s:%s", tenant, agent_id);
    if (store_cmd_argv(app->store, (int)GW_ARRAY_LEN(argv), argv, NULL, agents_on_looked_up, t) !=
        GW_OK) {
        agents_task_later(app, t, AGENTS_STORE_ERROR);
    }
}
