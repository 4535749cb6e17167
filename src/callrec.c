/*
 * callrec.c: call statuses, the Lua scripts that change call records, and
 * the rendering of a record into the tenant's call object.
 *
 * Redis layout (every key under the configured prefix, "cg:" by default):
 *   call:<id>              hash: the call record (fields listed in callrec_render)
 *   call:<id>:events       list: status history, JSON objects, newest last
 *   calls:<tenant>         zset: call ids by creation time
 *   idem:<tenant>:<sha256> hash: idempotency state {state, fp, call_id, code, body}
 *   dedupe:<vendor>:<key>  string: a vendor webhook already stored
 *   vcall:<vendor>:<id>    string: our call id for the vendor's own call id
 *   orphans                stream: webhooks for calls we do not know (kept, never dropped)
 *
 * The scripts keep the status rule (callrec.h) inside Redis, so a webhook and
 * the placement answer racing on two replicas still leave the right status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "callrec.h"
#include "jsonw.h"

const char *const call_status_text[CALL_STATUS_MAX] = {
    [CALL_QUEUED] = "queued",         [CALL_SCHEDULED] = "scheduled",
    [CALL_RINGING] = "ringing",       [CALL_IN_PROGRESS] = "in_progress",
    [CALL_COMPLETED] = "completed",   [CALL_NO_ANSWER] = "no_answer",
    [CALL_BUSY] = "busy",             [CALL_FAILED] = "failed",
    [CALL_CANCELED] = "canceled",     [CALL_UNKNOWN] = "unknown",
};

static const char *const call_event_type[CALL_STATUS_MAX] = {
    [CALL_QUEUED] = "call.queued",         [CALL_SCHEDULED] = "call.scheduled",
    [CALL_RINGING] = "call.ringing",       [CALL_IN_PROGRESS] = "call.answered",
    [CALL_COMPLETED] = "call.completed",   [CALL_NO_ANSWER] = "call.no_answer",
    [CALL_BUSY] = "call.busy",             [CALL_FAILED] = "call.failed",
    [CALL_CANCELED] = "call.canceled",     [CALL_UNKNOWN] = "call.unknown",
};

int
call_status_parse(const char *s, enum call_status *out)
{
    int i;

    for (i = 0; s != NULL && i < CALL_STATUS_MAX; i++) {
        if (strcmp(s, call_status_text[i]) == 0) {
            *out = (enum call_status)i;
            return 0;
        }
    }
    return -1;
}

int
call_status_terminal(enum call_status s)
{
    return s >= CALL_COMPLETED && s <= CALL_CANCELED;
}

int
call_status_rank(enum call_status s)
{
    switch (s) {
    case CALL_QUEUED:
    case CALL_SCHEDULED:
        return 0;
    case CALL_RINGING:
        return 1;
    case CALL_IN_PROGRESS:
        return 2;
    case CALL_UNKNOWN:
        return -1;
    default:
        return 3;
    }
}

const char *
call_status_event_type(enum call_status s)
{
    return s < CALL_STATUS_MAX ? call_event_type[s] : "call.unknown";
}

/*
 * begin: mint a call record, claiming the idempotency key first when there
 * is one, and take the call's agent -- one round trip before any vendor.
 * It runs with agents.c's placement functions in scope (app.c prepends
 * agents_lua_place).
 * KEYS: call, tenant index, idem (a placeholder unless ARGV[6] is "1"),
 * then the agent step's keys. ARGV: key ttl s, fingerprint, call id,
 * created ms, in-flight limit ms, "1" with an idempotency key, agent step
 * ("none", "reserve" or "claim") and its two arguments, then field, value, ...
 * The key lives for the full ttl from the start: an in-flight key older than
 * the in-flight limit belongs to a request that died (a crashed replica) and
 * may have reached a vendor, so it is reported as abandoned rather than
 * expired and claimed again -- a second call is the harm to avoid.
 * Returns {"new"} or {"new", agent tag, agent view} | {"mismatch"} |
 * {"conflict"} | {"replay", code, body} | {"abandoned", call id}.
 */
const char callrec_lua_begin[] =
    "if ARGV[6] == '1' then\n"
    /* A key seen before takes one more read, whatever the outcome. */
    "  local st = redis.call('HGET', KEYS[3], 'state')\n"
    "  if st then\n"
    "    local h = redis.call('HMGET', KEYS[3], 'fp', 'code', 'body', 'started', 'call_id')\n"
    "    if h[1] ~= ARGV[2] then return {'mismatch'} end\n"
    "    if st == 'done' then return {'replay', h[2], h[3]} end\n"
    "    if tonumber(ARGV[4]) - tonumber(h[4] or '0') > tonumber(ARGV[5]) then\n"
    "      return {'abandoned', h[5]}\n"
    "    end\n"
    "    return {'conflict'}\n"
    "  end\n"
    "  redis.call('HSET', KEYS[3], 'state', 'in_flight', 'fp', ARGV[2], 'call_id', ARGV[3],\n"
    "             'started', ARGV[4])\n"
    "  redis.call('EXPIRE', KEYS[3], ARGV[1])\n"
    "end\n"
    /* The agent step runs first and appends the agent to the record's pairs,
     * so the record is written with one HSET. */
    "local rec, out = {unpack(ARGV, 10)}, {'new'}\n"
    "if ARGV[7] == 'reserve' then\n"
    "  local took = agents_reserve(KEYS[4], ARGV[8], ARGV[3], ARGV[9], rec)\n"
    "  out = {'new', took[1], took[2]}\n"
    "elseif ARGV[7] == 'claim' then\n"
    "  local took = agents_claim(KEYS[4], KEYS[5], ARGV[8], ARGV[9], ARGV[3], rec)\n"
    "  out = {'new', took[1], took[2]}\n"
    "end\n"
    "redis.call('HSET', KEYS[1], unpack(rec))\n"
    "redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])\n"
    "return out\n";

/*
 * finish: record the placement's result and settle the idempotency key.
 * KEYS: call, idem, vcall, the vendor's in-flight counter (all but the first
 * may be unused placeholders).
 * ARGV: idem mode ("store" keeps the answer for replay, "release" frees the
 * key because no vendor can have placed the call, "none"), idem ttl s,
 * code, body, call id, status, rank, vcall ttl s ("0": no vendor call id to
 * index), field, value, ...
 * The status follows the forward-only rule: a webhook may have moved it on.
 * vcall maps the vendor's own call id to ours, for vendors whose webhooks
 * do not echo our id.
 * The record is read once (HMGET) and written once (HSET): the field pairs
 * (calls_finish_fields) never name status, rank or the in-flight fields, so
 * the status answered and the in-flight decision follow from what was read.
 */
const char callrec_lua_finish[] =
    "local h = redis.call('HMGET', KEYS[1], 'status', 'rank', 'inflight')\n"
    "local cur, rank = h[1], tonumber(h[2] or '-1')\n"
    "local rec\n"
    "if cur == false or cur == 'unknown' or tonumber(ARGV[7]) > rank then\n"
    "  cur, rank = ARGV[6], tonumber(ARGV[7])\n"
    "  rec = {'status', ARGV[6], 'rank', ARGV[7], unpack(ARGV, 9)}\n"
    "else\n"
    "  rec = {unpack(ARGV, 9)}\n"
    "end\n"
    "if ARGV[1] == 'store' then\n"
    "  redis.call('HSET', KEYS[2], 'state', 'done', 'code', ARGV[3], 'body', ARGV[4])\n"
    "  redis.call('EXPIRE', KEYS[2], ARGV[2])\n"
    "elseif ARGV[1] == 'release' and redis.call('HGET', KEYS[2], 'call_id') == ARGV[5] then\n"
    "  redis.call('DEL', KEYS[2])\n"
    "end\n"
    "if ARGV[8] ~= '0' then redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[8]) end\n"
    /* An accepted call counts as in flight at its vendor (least_busy) until its
     * terminal event -- unless that event came first. */
    "if (ARGV[6] == 'queued' or ARGV[6] == 'scheduled') and rank < 3 and h[3] ~= '1' then\n"
    "  redis.call('INCR', KEYS[4])\n"
    "  local n = #rec\n"
    "  rec[n + 1], rec[n + 2], rec[n + 3], rec[n + 4] = 'inflight', '1', 'inflight_key', KEYS[4]\n"
    "end\n"
    "if #rec > 0 then redis.call('HSET', KEYS[1], unpack(rec)) end\n"
    "return cur\n";

/*
 * event: store a vendor event durably and apply it to its call.
 * KEYS: call, call events, dedupe, orphans, vcall. ARGV: dedupe ttl s,
 * tenant, status, rank, event JSON object, now ms, call key prefix, field,
 * value, ...
 * When the call key does not exist (the vendor did not echo our id), the
 * call is looked up through vcall (its own id -> ours) and its keys are
 * built from the prefix.
 * Returns {"dup"} (already stored), {"orphan"} (no such call for this
 * tenant; kept in the orphan stream) or {"ok", applied, HGETALL of the call}.
 * The record is read once (HMGET) and written once (HSET): the field pairs
 * (webhook.c) never name status, rank or the in-flight fields, so what was
 * read still holds when the in-flight count is settled.
 */
const char callrec_lua_event[] =
    "if not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[1]) then return {'dup'} end\n"
    "local ck, ek = KEYS[1], KEYS[2]\n"
    "local function state(k)\n"
    "  return redis.call('HMGET', k, 'tenant', 'status', 'rank', 'inflight', 'inflight_key')\n"
    "end\n"
    /* A record always has its tenant: only without one can the key be missing. */
    "local h = state(ck)\n"
    "if not h[1] and redis.call('EXISTS', ck) == 0 then\n"
    "  local id = redis.call('GET', KEYS[5])\n"
    "  if id then ck = ARGV[7] .. id; ek = ARGV[7] .. id .. ':events'; h = state(ck) end\n"
    "end\n"
    "if h[1] ~= ARGV[2] then\n"
    "  redis.call('XADD', KEYS[4], 'MAXLEN', '~', '100000', '*', 'tenant', ARGV[2],\n"
    "             'event', ARGV[5])\n"
    "  return {'orphan'}\n"
    "end\n"
    "local applied, rec = 0, nil\n"
    "if h[2] == 'unknown' or tonumber(ARGV[4]) > tonumber(h[3] or '-1') then\n"
    "  applied = 1\n"
    "  rec = {'status', ARGV[3], 'rank', ARGV[4], unpack(ARGV, 8)}\n"
    "else\n"
    /* Fields only fill gaps (HSETNX each), decided from one HMGET. */
    "  rec = {}\n"
    "  if #ARGV >= 8 then\n"
    "    local names, seen = {}, {}\n"
    "    for i = 8, #ARGV, 2 do names[#names + 1] = ARGV[i] end\n"
    "    local have = redis.call('HMGET', ck, unpack(names))\n"
    "    for j, f in ipairs(names) do\n"
    "      if not have[j] and not seen[f] then\n"
    "        rec[#rec + 1] = f\n"
    "        rec[#rec + 1] = ARGV[7 + 2 * j]\n"
    "      end\n"
    "      seen[f] = true\n"
    "    end\n"
    "  end\n"
    "end\n"
    "rec[#rec + 1] = 'updated_at'\n"
    "rec[#rec + 1] = ARGV[6]\n"
    /* The first terminal status ends the call's in-flight count at its vendor. */
    "local ik = nil\n"
    "if applied == 1 and tonumber(ARGV[4]) >= 3 and h[4] == '1' then\n"
    "  rec[#rec + 1] = 'inflight'\n"
    "  rec[#rec + 1] = '0'\n"
    "  ik = h[5]\n"
    "end\n"
    "redis.call('HSET', ck, unpack(rec))\n"
    "if ik and tonumber(redis.call('DECR', ik)) < 0 then redis.call('SET', ik, '0') end\n"
    "redis.call('RPUSH', ek, '{\"applied\":' .. (applied == 1 and 'true' or 'false') ..\n"
    "           ',' .. string.sub(ARGV[5], 2))\n"
    "redis.call('LTRIM', ek, -200, -1)\n"
    "return {'ok', tostring(applied), redis.call('HGETALL', ck)}\n";

/*
 * list: a tenant's calls, newest first, one page.
 * KEYS: tenant index. ARGV: call key prefix, cursor score ("+inf" for the
 * first page), cursor call id ("" for the first page), limit, status filter
 * (""), reference filter (""), most records to examine.
 * Returns {records (each a flat HGETALL array), next cursor "score.id" or ""}.
 * Ties on the millisecond are broken by id, as the sorted set orders them.
 */
const char callrec_lua_list[] =
    "local out, examined, offset = {}, 0, 0\n"
    "local limit, most = tonumber(ARGV[4]), tonumber(ARGV[7])\n"
    "local cscore = tonumber(ARGV[2])\n"
    "while true do\n"
    "  local ids = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[2], '-inf', 'WITHSCORES',\n"
    "                         'LIMIT', offset, 100)\n"
    "  if #ids == 0 then return {out, ''} end\n"
    "  for i = 1, #ids, 2 do\n"
    "    local id, score = ids[i], ids[i + 1]\n"
    "    if not (ARGV[3] ~= '' and tonumber(score) == cscore and id >= ARGV[3]) then\n"
    "      examined = examined + 1\n"
    "      local rec = redis.call('HGETALL', ARGV[1] .. id)\n"
    "      if #rec > 0 then\n"
    "        local ok = true\n"
    "        if ARGV[5] ~= '' or ARGV[6] ~= '' then\n"
    /* The filters read the record already fetched, not Redis again. */
    "          local st, ref = false, false\n"
    "          for j = 1, #rec, 2 do\n"
    "            if rec[j] == 'status' then st = rec[j + 1]\n"
    "            elseif rec[j] == 'reference' then ref = rec[j + 1] end\n"
    "          end\n"
    "          ok = (ARGV[5] == '' or st == ARGV[5]) and (ARGV[6] == '' or ref == ARGV[6])\n"
    "        end\n"
    "        if ok then out[#out + 1] = rec end\n"
    "      end\n"
    "      if #out >= limit or examined >= most then return {out, score .. '.' .. id} end\n"
    "    end\n"
    "  end\n"
    "  offset = offset + 100\n"
    "end\n";

/* Fields rendered as they are (strings), in output order. */
static const char *const callrec_plain[] = {"id", "status", "type", "to", "from", "agent",
                                            "reference", "vendor", "vendor_call_id", "route",
                                            "scheduled_at", "created_at"};
static const char *const callrec_plain_detail[] = {"started_at", "answered_at", "ended_at",
                                                   "disposition", "vendor_status"};

json_t *
callrec_fields_from_reply(const struct redisReply *pairs, size_t first)
{
    json_t *o;
    size_t i;

    if (pairs == NULL || pairs->type != REDIS_REPLY_ARRAY || pairs->elements <= first) {
        return NULL;
    }
    o = json_object();
    for (i = first; i + 1 < pairs->elements; i += 2) {
        const struct redisReply *k = pairs->element[i], *v = pairs->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING) {
            json_object_set_new(o, k->str, json_stringn(v->str, v->len));
        }
    }
    if (json_object_get(o, "id") == NULL) {
        json_decref(o);
        return NULL;
    }
    return o;
}

const char *
callrec_field(const json_t *fields, const char *name)
{
    const json_t *v = json_object_get(fields, name);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

static json_t *
callrec_string_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

/* A JSON text stored in a field, or def when absent or unparsable. */
static json_t *
callrec_json_field(const char *s, json_t *def)
{
    json_t *v = s != NULL ? json_loads(s, 0, NULL) : NULL;

    if (v == NULL) {
        return def;
    }
    json_decref(def);
    return v;
}

char *
callrec_summary_text(const json_t *fields, const char *attempts_json)
{
    struct jsonw w;
    const char *s;
    size_t i;

    if (callrec_field(fields, "id") == NULL || attempts_json == NULL || jsonw_init(&w, 512) != 0) {
        return NULL;
    }
    for (i = 0; i < sizeof(callrec_plain) / sizeof(callrec_plain[0]); i++) {
        jsonw_raw(&w, i == 0 ? "{\"" : ",\"", 2);
        jsonw_raw(&w, callrec_plain[i], strlen(callrec_plain[i]));
        jsonw_lit(&w, "\":");
        s = callrec_field(fields, callrec_plain[i]);
        jsonw_str(&w, s != NULL && s[0] != '\0' ? s : NULL);
    }
    s = callrec_field(fields, "agent_action_required");
    if (s != NULL && strcmp(s, "1") == 0) {
        jsonw_lit(&w, ",\"agent_action_required\":true");
    } else {
        jsonw_lit(&w, ",\"agent_action_required\":false");
    }
    s = callrec_field(fields, "tags");
    jsonw_lit(&w, ",\"tags\":");
    if (s != NULL && s[0] == '{') {
        jsonw_raw(&w, s, strlen(s));
    } else {
        jsonw_lit(&w, "{}");
    }
    jsonw_lit(&w, ",\"attempts\":");
    jsonw_raw(&w, attempts_json, strlen(attempts_json));
    jsonw_lit(&w, "}");
    return jsonw_take(&w);
}

json_t *
callrec_render(const json_t *fields, const struct redisReply *events, int with_detail)
{
    json_t *o, *list;
    const char *id, *s;
    size_t i;

    id = callrec_field(fields, "id");
    if (id == NULL) {
        return NULL;
    }
    o = json_object();
    for (i = 0; i < sizeof(callrec_plain) / sizeof(callrec_plain[0]); i++) {
        json_object_set_new(o, callrec_plain[i],
                            callrec_string_or_null(callrec_field(fields, callrec_plain[i])));
    }
    s = callrec_field(fields, "agent_action_required");
    json_object_set_new(o, "agent_action_required", json_boolean(s != NULL && strcmp(s, "1") == 0));
    json_object_set_new(o, "tags", callrec_json_field(callrec_field(fields, "tags"), json_object()));
    json_object_set_new(o, "attempts",
                        callrec_json_field(callrec_field(fields, "attempts"), json_array()));
    if (!with_detail) {
        return o;
    }
    for (i = 0; i < sizeof(callrec_plain_detail) / sizeof(callrec_plain_detail[0]); i++) {
        json_object_set_new(
            o, callrec_plain_detail[i],
            callrec_string_or_null(callrec_field(fields, callrec_plain_detail[i])));
    }
    s = callrec_field(fields, "duration_seconds");
    json_object_set_new(o, "duration_seconds",
                        s != NULL ? json_integer(strtol(s, NULL, 10)) : json_null());
    s = callrec_field(fields, "recording_vendor_url");
    if (s != NULL && s[0] != '\0') {
        char url[128];
        snprintf(url, sizeof(url), "/v1/calls/%s/recording", id);
        json_object_set_new(o, "recording_url", json_string(url));
    } else {
        json_object_set_new(o, "recording_url", json_null());
    }
    json_object_set_new(o, "legs", callrec_json_field(callrec_field(fields, "legs"), json_array()));
    if (events != NULL) {
        list = json_array();
        if (events->type == REDIS_REPLY_ARRAY) {
            for (i = 0; i < events->elements; i++) {
                const struct redisReply *e = events->element[i];
                json_t *ev = e->type == REDIS_REPLY_STRING ? json_loads(e->str, 0, NULL) : NULL;
                if (ev != NULL) {
                    json_array_append_new(list, ev);
                }
            }
        }
        json_object_set_new(o, "events", list);
    }
    return o;
}
