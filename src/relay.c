/*
 * relay.c: signed tenant events, delivered at least once through a durable
 * queue in Redis that every replica works on.
 *
 * Redis layout (every key under the configured prefix, "cg:" by default):
 *   relay:tenants            set: tenants with work; each replica goes round them in turn
 *   relay:q:<tenant>         stream, consumer group "relay": the tenant's work queue,
 *                            entries {d: <event id>}
 *   relay:retry:<tenant>     zset: event id -> when its next attempt is due (ms)
 *   relay:d:<event id>       hash: one delivery, from enqueue to 2xx (then deleted) or
 *                            to the dead letter (then kept until replayed)
 *   relay:call:<call id>     list: the call's unfinished event ids, oldest first; only
 *                            the head is ever on a work stream (order per call)
 *   relay:seq:<call id>      string: the call's last event sequence number
 *   relay:idx:pending[:<t>]  zset, all scores 0 so that it sorts by id, i.e. by creation:
 *                            deliveries neither delivered nor dead (global and per tenant)
 *   relay:idx:dead[:<t>]     zset likewise: dead letters
 * A delivery hash holds id, tenant, call, url ("" = the tenant's callback_url
 * at attempt time, so that a changed endpoint applies to retries), type,
 * body (the exact bytes signed, sequence included), seq, created and
 * age_from (ms; a replay restarts the age), attempts, claims, state (waiting
 * | queued | in_flight | retrying | dead), entry (its stream entry while
 * queued or in flight), lease, next_at, last_status, last_error, last_at,
 * dead_at, reason. Every time in Redis is Redis's own clock (TIME), so the
 * replicas' clocks need not agree.
 *
 * Life of a delivery. relay_call_event() runs the enqueue script: it takes
 * the call's next sequence number, writes the hash and puts the event on the
 * tenant's stream, unless an earlier event of the same call is unfinished
 * (then it waits in relay:call:<id> and goes when that one is delivered or
 * dead). Each replica polls every webhooks.poll_interval_ms (and at once
 * when it stored an event itself): for each tenant in turn the fetch script
 * moves due retries back onto the stream, takes over entries that another
 * consumer has held longer than the visibility timeout (XAUTOCLAIM), reads
 * new ones (XREADGROUP) and leases each delivery to this replica. The
 * attempt's outcome is recorded by the finish script, and only a current
 * lease may record one (a replica that was too slow and lost its claim
 * cannot overwrite what the new owner does): 2xx deletes the delivery, a
 * failure schedules the next attempt in the tenant's retry zset, 410 Gone or
 * the last attempt dead-letters it; the stream entry is acknowledged and
 * deleted in the same script. Every change is one Lua script, so each step
 * is atomic.
 *
 * Guarantees. An event is durable once the enqueue script has run (the
 * AOF policy of Redis decides what a Redis host crash can take). From then
 * on it is delivered at least once: a replica that dies (kill -9 included)
 * mid-attempt leaves its entries pending in the group, and any replica takes
 * them over after visibility_timeout_ms, which must exceed the attempt
 * timeout so that a slow live attempt is never taken over. The cost is a
 * possible repeat: the same webhook-id and body, a fresh timestamp and
 * signature; tenants drop repeats by webhook-id. A delivery that was claimed
 * more than RELAY_MAX_CLAIMS times without any outcome (it brings its
 * replica down every time) is dead-lettered. Events of one call are
 * delivered in sequence order: a later one waits while an earlier one is in
 * flight or waiting for its retry; a dead letter releases the next one, and
 * a replayed dead letter is delivered out of order (its "sequence" tells).
 * Known limits: the enqueue runs after the vendor's event is stored and
 * answered, so a crash between the two loses that tenant event (the call
 * record has it); two updates of one call stored at the same moment on two
 * replicas are numbered in the order their enqueues reached Redis; keys are
 * built inside the scripts, so this needs a single Redis, not a cluster.
 *
 * Fairness. Tenants are visited round-robin from a rotating start; each
 * fetch asks for at most what the tenant's endpoint (scheme://host:port)
 * may still take under per_endpoint_concurrency and what is left of
 * max_concurrency, and a tenant whose endpoint is saturated is skipped (its
 * work stays in Redis), so a dead or slow endpoint holds only its own slots.
 * Both caps are per replica. Entries held locally longer than a third of the
 * visibility timeout are refreshed (XCLAIM JUSTID) so that a live replica
 * never loses them. A tenant missing from a replica's configuration (during
 * a rolling change) is skipped by that replica, never judged undeliverable.
 *
 * Drain. A draining replica claims nothing new and hands back what it has
 * not started; attempts in flight may finish until shortly before the drain
 * deadline, then they are cancelled and handed back too (XCLAIM with an IDLE
 * beyond the visibility timeout, so the next fetch anywhere takes them at
 * once). Nothing is dropped: what cannot be handed back is taken over after
 * the visibility timeout.
 *
 * Retries follow webhooks.schedule (the last step repeats) while the next
 * attempt stays within max_age_s of the delivery's creation (and under
 * max_attempts when set); jitter shortens each delay by up to 20 %, so the
 * schedule is an upper bound. A Retry-After (seconds or an HTTP date) can
 * only lengthen a delay, and by at most RELAY_RETRY_AFTER_CAP_MS. Redirects
 * are never followed (upstream), and a 3xx counts as a failure.
 */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "app.h"
#include "callrec.h"
#include "cglog.h"
#include "conf.h"
#include "crypto.h"
#include "front.h"
#include "gw.h"
#include "metrics.h"
#include "problem.h"
#include "relay.h"
#include "ssrf.h"
#include "store.h"
#include "upstream.h"
#include "util.h"

#define RELAY_MAX_CLAIMS 5                  /* claims without an outcome before the dead letter */
#define RELAY_RETRY_AFTER_CAP_MS 3600000L   /* Retry-After lengthens a delay by at most 1 h */
#define RELAY_CONSUMER_IDLE_MS 3600000L     /* forget consumers idle this long, owning nothing */
#define RELAY_TIDY_EVERY_US 60000000LL      /* ... checked this often per tenant */
#define RELAY_ENQUEUE_GIVE_UP_US 120000000LL /* storing a new event is retried this long */
#define RELAY_FINISH_TRIES 5                /* recording an outcome: tries before giving up */
#define RELAY_BACKOFF_MAX_MS 5000
#define RELAY_TICK_MAX_MS 100               /* drain and heartbeats are looked at this often */
#define RELAY_SEQ_TTL_EXTRA_S (7 * 86400L)  /* per-call keys outlive max_age by this */
#define RELAY_REPLAY_BATCH "500"
#define RELAY_ERROR_LEN 240
#define RELAY_LIST_DEFAULT 50
#define RELAY_LIST_MAX 200
#define RELAY_OP_MAX_ARGS 12

/* ---- Lua ---------------------------------------------------------------- */

/*
 * Shared by every script: ARGV[1] is the key prefix. push() puts a delivery
 * on its tenant's stream (creating the stream and group on first use);
 * advance() lets the call's next event go once this one is over.
 */
#define RELAY_LUA_PRELUDE                                                                         \
    "local P = ARGV[1]\n"                                                                         \
    "local function now_ms()\n"                                                                   \
    "  local t = redis.call('TIME')\n"                                                            \
    "  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"                        \
    "end\n"                                                                                       \
    "local function dkey(id) return P .. 'relay:d:' .. id end\n"                                  \
    "local function push(id)\n"                                                                   \
    "  local dk = dkey(id)\n"                                                                     \
    "  local q = P .. 'relay:q:' .. redis.call('HGET', dk, 'tenant')\n"                           \
    "  if redis.call('EXISTS', q) == 0 then\n"                                                    \
    "    redis.call('XGROUP', 'CREATE', q, 'relay', '$', 'MKSTREAM')\n"                           \
    "  end\n"                                                                                     \
    "  local xid = redis.call('XADD', q, '*', 'd', id)\n"                                         \
    "  redis.call('HSET', dk, 'state', 'queued', 'entry', xid, 'lease', '', 'next_at', '')\n"     \
    "end\n"                                                                                       \
    "local function index(id, tenant, which)\n"                                                   \
    "  redis.call('ZADD', P .. 'relay:idx:' .. which, 0, id)\n"                                   \
    "  redis.call('ZADD', P .. 'relay:idx:' .. which .. ':' .. tenant, 0, id)\n"                  \
    "end\n"                                                                                       \
    "local function unindex(id, tenant, which)\n"                                                 \
    "  redis.call('ZREM', P .. 'relay:idx:' .. which, id)\n"                                      \
    "  redis.call('ZREM', P .. 'relay:idx:' .. which .. ':' .. tenant, id)\n"                     \
    "end\n"                                                                                       \
    "local function advance(id, call)\n"                                                          \
    "  local ck = P .. 'relay:call:' .. call\n"                                                   \
    "  if redis.call('LINDEX', ck, 0) ~= id then\n"                                               \
    "    redis.call('LREM', ck, 1, id)\n"                                                         \
    "    return\n"                                                                                \
    "  end\n"                                                                                     \
    "  redis.call('LPOP', ck)\n"                                                                  \
    "  while true do\n"                                                                           \
    "    local nxt = redis.call('LINDEX', ck, 0)\n"                                               \
    "    if not nxt then return end\n"                                                            \
    "    local st = redis.call('HGET', dkey(nxt), 'state')\n"                                     \
    "    if st == 'waiting' then push(nxt) return end\n"                                          \
    "    if st then return end\n"                                                                 \
    "    redis.call('LPOP', ck)\n"                                                                \
    "  end\n"                                                                                     \
    "end\n"                                                                                       \
    "local function revive(id, tenant)\n"                                                         \
    "  unindex(id, tenant, 'dead')\n"                                                             \
    "  index(id, tenant, 'pending')\n"                                                            \
    "  redis.call('HSET', dkey(id), 'attempts', 0, 'claims', 0, 'age_from', now_ms(),\n"          \
    "             'reason', '', 'dead_at', '')\n"                                                 \
    "  push(id)\n"                                                                                \
    "end\n"

/*
 * enqueue. ARGV: prefix, event id, tenant, call id, url, type, body (a JSON
 * object without "sequence"), ttl of the per-call keys (s).
 * Idempotent: an event id already stored only answers its sequence, so a
 * resend after a timeout cannot make a second delivery. Returns the sequence.
 */
static const char relay_lua_enqueue[] = RELAY_LUA_PRELUDE
    "local id, tenant, call = ARGV[2], ARGV[3], ARGV[4]\n"
    "local dk = dkey(id)\n"
    "if redis.call('EXISTS', dk) == 1 then return tonumber(redis.call('HGET', dk, 'seq')) end\n"
    "local now = now_ms()\n"
    "local sk = P .. 'relay:seq:' .. call\n"
    "local seq = redis.call('INCR', sk)\n"
    "redis.call('EXPIRE', sk, ARGV[8])\n"
    "local body = string.sub(ARGV[7], 1, -2) .. ',\"sequence\":' .. seq .. '}'\n"
    "redis.call('HSET', dk, 'id', id, 'tenant', tenant, 'call', call, 'url', ARGV[5],\n"
    "           'type', ARGV[6], 'body', body, 'seq', seq, 'created', now, 'age_from', now,\n"
    "           'attempts', 0, 'claims', 0, 'state', 'waiting')\n"
    "index(id, tenant, 'pending')\n"
    "redis.call('SADD', P .. 'relay:tenants', tenant)\n"
    "local ck = P .. 'relay:call:' .. call\n"
    "local n = redis.call('RPUSH', ck, id)\n"
    "redis.call('EXPIRE', ck, ARGV[8])\n"
    "if n == 1 then push(id) end\n"
    "return seq\n";

/*
 * fetch: one tenant's share of work for this replica. ARGV: prefix, tenant,
 * consumer, count, visibility ms, XAUTOCLAIM cursor, most claims, idle ms
 * after which consumers owning nothing are forgotten ("0": not now).
 * Returns {next cursor, now, {{entry, lease, id, call, url, type, body, seq,
 * attempts}, ...}}. A tenant with nothing left leaves relay:tenants.
 */
static const char relay_lua_fetch[] = RELAY_LUA_PRELUDE
    "local tenant, me, count = ARGV[2], ARGV[3], tonumber(ARGV[4])\n"
    "local q, rk = P .. 'relay:q:' .. tenant, P .. 'relay:retry:' .. tenant\n"
    "local now = now_ms()\n"
    "for _, id in ipairs(redis.call('ZRANGEBYSCORE', rk, '-inf', now, 'LIMIT', 0, 100)) do\n"
    "  redis.call('ZREM', rk, id)\n"
    "  if redis.call('HGET', dkey(id), 'state') == 'retrying' then push(id) end\n"
    "end\n"
    "if redis.call('XLEN', q) == 0 then\n"
    "  if redis.call('ZCARD', rk) == 0 then redis.call('SREM', P .. 'relay:tenants', tenant) end\n"
    "  return {'0-0', now, {}}\n"
    "end\n"
    "if tonumber(ARGV[8]) > 0 then\n"
    "  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', q, 'relay')) do\n"
    "    local f = {}\n"
    "    for i = 1, #c, 2 do f[c[i]] = c[i + 1] end\n"
    "    if f['name'] ~= me and f['pending'] == 0 and f['idle'] > tonumber(ARGV[8]) then\n"
    "      redis.call('XGROUP', 'DELCONSUMER', q, 'relay', f['name'])\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local got = {}\n"
    "local ac = redis.call('XAUTOCLAIM', q, 'relay', me, ARGV[5], ARGV[6], 'COUNT', count)\n"
    "for _, e in ipairs(ac[2]) do got[#got + 1] = e end\n"
    "if count - #got > 0 then\n"
    "  local r = redis.call('XREADGROUP', 'GROUP', 'relay', me, 'COUNT', count - #got,\n"
    "                       'STREAMS', q, '>')\n"
    "  if r then for _, e in ipairs(r[1][2]) do got[#got + 1] = e end end\n"
    "end\n"
    "local out = {}\n"
    "for _, e in ipairs(got) do\n"
    "  local xid, f = e[1], e[2]\n"
    "  local id = f and f[2]\n"
    "  local dk = id and dkey(id)\n"
    "  if not dk or redis.call('HGET', dk, 'entry') ~= xid then\n"
    /* an entry left over from a delivery that has moved on: drop it */
    "    redis.call('XACK', q, 'relay', xid)\n"
    "    redis.call('XDEL', q, xid)\n"
    "  else\n"
    "    local claims = redis.call('HINCRBY', dk, 'claims', 1)\n"
    "    if claims > tonumber(ARGV[7]) then\n"
    "      redis.call('XACK', q, 'relay', xid)\n"
    "      redis.call('XDEL', q, xid)\n"
    "      redis.call('HSET', dk, 'state', 'dead', 'dead_at', now, 'entry', '', 'lease', '',\n"
    "                 'reason', 'claimed ' .. (claims - 1) ..\n"
    "                 ' times without an outcome (its replica died each time)')\n"
    "      unindex(id, tenant, 'pending')\n"
    "      index(id, tenant, 'dead')\n"
    "      advance(id, redis.call('HGET', dk, 'call'))\n"
    "    else\n"
    "      local lease = me .. '/' .. xid .. '/' .. claims\n"
    "      redis.call('HSET', dk, 'state', 'in_flight', 'lease', lease)\n"
    "      local h = redis.call('HMGET', dk, 'id', 'call', 'url', 'type', 'body', 'seq',\n"
    "                           'attempts')\n"
    "      out[#out + 1] = {xid, lease, h[1], h[2], h[3], h[4], h[5], h[6], h[7]}\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return {ac[1], now, out}\n";

/*
 * finish: record an attempt's outcome. ARGV: prefix, tenant, event id,
 * entry, lease, outcome (ok | retry | dead), delay ms, max age ms, last
 * status, last error, reason. A retry whose due time passes the age limit
 * becomes dead. Returns {outcome (or "stale": the lease is not ours any
 * more), attempts, due}.
 */
static const char relay_lua_finish[] = RELAY_LUA_PRELUDE
    "local tenant, id, xid = ARGV[2], ARGV[3], ARGV[4]\n"
    "local dk = dkey(id)\n"
    "if redis.call('HGET', dk, 'lease') ~= ARGV[5] then return {'stale', 0, 0} end\n"
    "local q = P .. 'relay:q:' .. tenant\n"
    "redis.call('XACK', q, 'relay', xid)\n"
    "redis.call('XDEL', q, xid)\n"
    "local now = now_ms()\n"
    "local attempts = redis.call('HINCRBY', dk, 'attempts', 1)\n"
    "redis.call('HSET', dk, 'claims', 0, 'lease', '', 'entry', '', 'last_status', ARGV[9],\n"
    "           'last_error', ARGV[10], 'last_at', now)\n"
    "local outcome, reason = ARGV[6], ARGV[11]\n"
    "if outcome == 'retry' then\n"
    "  local due = now + tonumber(ARGV[7])\n"
    "  if due > tonumber(redis.call('HGET', dk, 'age_from')) + tonumber(ARGV[8]) then\n"
    "    outcome = 'dead'\n"
    "    reason = 'no 2xx within max_age_s (' .. attempts .. ' attempts)'\n"
    "  else\n"
    "    redis.call('HSET', dk, 'state', 'retrying', 'next_at', due)\n"
    "    redis.call('ZADD', P .. 'relay:retry:' .. tenant, due, id)\n"
    "    return {'retry', attempts, due}\n"
    "  end\n"
    "end\n"
    "local call = redis.call('HGET', dk, 'call')\n"
    "unindex(id, tenant, 'pending')\n"
    "if outcome == 'ok' then\n"
    "  redis.call('DEL', dk)\n"
    "else\n"
    "  redis.call('HSET', dk, 'state', 'dead', 'dead_at', now, 'next_at', '', 'reason', reason)\n"
    "  index(id, tenant, 'dead')\n"
    "end\n"
    "advance(id, call)\n"
    "return {outcome, attempts, 0}\n";

/*
 * release: hand a claimed entry back (drain) by making it look idle for
 * longer than any visibility timeout, so the next XAUTOCLAIM anywhere takes
 * it. ARGV: prefix, tenant, event id, entry, lease, consumer, idle ms,
 * "1" when no attempt was made (the claim is not counted against it).
 */
static const char relay_lua_release[] = RELAY_LUA_PRELUDE
    "local dk = dkey(ARGV[3])\n"
    "if redis.call('HGET', dk, 'lease') == ARGV[5] then\n"
    "  redis.call('HSET', dk, 'state', 'queued', 'lease', '')\n"
    "  if ARGV[8] == '1' then redis.call('HINCRBY', dk, 'claims', -1) end\n"
    "end\n"
    "redis.call('XCLAIM', P .. 'relay:q:' .. ARGV[2], 'relay', ARGV[6], 0, ARGV[4],\n"
    "           'IDLE', ARGV[7], 'JUSTID')\n"
    "return 1\n";

/*
 * list: one page of an index, newest first. ARGV: prefix, "pending" or
 * "dead", tenant ("" = all), cursor (the last id of the previous page, or
 * ""), limit. Returns {{hash fields as listed below}, ...}, next cursor or "".
 */
static const char relay_lua_list[] = RELAY_LUA_PRELUDE
    "local key = P .. 'relay:idx:' .. ARGV[2]\n"
    "if ARGV[3] ~= '' then key = key .. ':' .. ARGV[3] end\n"
    "local max = '+'\n"
    "if ARGV[4] ~= '' then max = '(' .. ARGV[4] end\n"
    "local limit = tonumber(ARGV[5])\n"
    "local ids = redis.call('ZREVRANGEBYLEX', key, max, '-', 'LIMIT', 0, limit + 1)\n"
    "local out = {}\n"
    "for i = 1, math.min(#ids, limit) do\n"
    "  local h = redis.call('HMGET', dkey(ids[i]), 'id', 'tenant', 'call', 'type', 'url',\n"
    "                       'attempts', 'state', 'last_status', 'last_error', 'next_at',\n"
    "                       'created', 'seq', 'reason', 'dead_at')\n"
    "  if h[1] then out[#out + 1] = h end\n"
    "end\n"
    "local nxt = ''\n"
    "if #ids > limit then nxt = ids[limit] end\n"
    "return {out, nxt}\n";

/*
 * replay: a dead or retrying delivery back on its stream now (a dead one
 * with a fresh schedule and age). ARGV: prefix, event id. Returns "none"
 * (unknown), "queued", or the state it is in and stays in.
 */
static const char relay_lua_replay[] = RELAY_LUA_PRELUDE
    "local id = ARGV[2]\n"
    "local dk = dkey(id)\n"
    "local tenant = redis.call('HGET', dk, 'tenant')\n"
    "if not tenant then return 'none' end\n"
    "local st = redis.call('HGET', dk, 'state')\n"
    "if st == 'dead' then\n"
    "  revive(id, tenant)\n"
    "  redis.call('SADD', P .. 'relay:tenants', tenant)\n"
    "  return 'queued'\n"
    "elseif st == 'retrying' then\n"
    "  redis.call('ZREM', P .. 'relay:retry:' .. tenant, id)\n"
    "  push(id)\n"
    "  redis.call('SADD', P .. 'relay:tenants', tenant)\n"
    "  return 'queued'\n"
    "end\n"
    "return st\n";

/*
 * replay_dead: up to a batch of a tenant's dead letters back to work.
 * ARGV: prefix, tenant, batch. Returns {replayed, dead letters left}.
 */
static const char relay_lua_replay_dead[] = RELAY_LUA_PRELUDE
    "local tenant = ARGV[2]\n"
    "local key = P .. 'relay:idx:dead:' .. tenant\n"
    "local ids = redis.call('ZRANGE', key, 0, tonumber(ARGV[3]) - 1)\n"
    "local n = 0\n"
    "for _, id in ipairs(ids) do\n"
    "  if redis.call('HGET', dkey(id), 'state') == 'dead' then\n"
    "    revive(id, tenant)\n"
    "    n = n + 1\n"
    "  else\n"
    "    unindex(id, tenant, 'dead')\n"
    "  end\n"
    "end\n"
    "if n > 0 then redis.call('SADD', P .. 'relay:tenants', tenant) end\n"
    "return {n, redis.call('ZCARD', key)}\n";

/* ---- state -------------------------------------------------------------- */

/* An endpoint (scheme://host:port) and the attempts this replica has on it. */
struct relay_endpoint {
    char origin[264];
    int sending;                   /* attempts in flight */
    int refs;                      /* items pointing here, sending or waiting */
    struct relay_endpoint *next;
};

/* What this replica remembers per tenant between rounds. */
struct relay_tenant {
    char name[72];
    char cursor[48];               /* where the XAUTOCLAIM scan goes on */
    int64_t tidy_at_us;            /* next time the fetch forgets dead consumers */
    struct relay_tenant *next;
};

enum relay_item_state {
    RELAY_ITEM_WAITING,            /* claimed, waiting for a free slot */
    RELAY_ITEM_SENDING,            /* the attempt is running */
};

/* A delivery this replica has claimed (holds the lease of). */
struct relay_item {
    struct relay *rl;
    enum relay_item_state state;
    struct relay_endpoint *ep;
    char id[48];                   /* event id = webhook-id */
    char xid[48];                  /* stream entry */
    char lease[200];
    char tenant[72];
    char call_id[72];
    char *url;
    char *body;
    long attempts;                 /* attempts recorded before this one */
    int64_t touched_us;            /* claimed or refreshed last (monotonic) */
    int64_t start_us;
    struct upstream_req *up;
    struct relay_item *prev, *next;
};

enum relay_op_kind {
    RELAY_OP_ENQUEUE,              /* store a new event */
    RELAY_OP_FINISH,               /* record an outcome */
    RELAY_OP_ROUND,                /* which tenants have work */
    RELAY_OP_FETCH,                /* claim a tenant's work */
    RELAY_OP_RELEASE,              /* hand a claim back */
    RELAY_OP_HEARTBEAT,            /* keep claims fresh */
    RELAY_OP_ADMIN,                /* an admin request's command */
};

/*
 * One Redis command of the relay. It owns copies of its arguments so that
 * it can be sent again after a backoff. When the relay is freed while the
 * command is still in Redis's hands, the op is detached (rl = NULL) and its
 * completion only frees it.
 */
struct relay_op {
    struct relay *rl;
    enum relay_op_kind kind;
    int in_store;                  /* a store completion is due */
    int tries;
    int64_t first_us;
    struct event *timer;           /* backoff before a resend */
    const struct store_script *script; /* NULL: a plain command */
    int nargs;
    char *args[RELAY_OP_MAX_ARGS];
    char tenant[72];               /* FETCH */
    long requested;                /* FETCH: entries asked for */
    struct front_req *req;         /* ADMIN: NULL once the deadline answered */
    long count;                    /* ADMIN: replayed so far */
    /* ADMIN: what to do with the answer; returns 1 when it sent the op again */
    int (*on_admin)(struct relay_op *op, enum store_result res, const struct redisReply *reply);
    relay_stored_cb stored;        /* ENQUEUE: told once whether the event is durable */
    void *stored_arg;
    struct relay_op *prev, *next;
};

struct relay {
    struct app *app;
    struct upstream *up;
    struct store_script *lua_enqueue, *lua_fetch, *lua_finish, *lua_release;
    struct store_script *lua_list, *lua_replay, *lua_replay_dead;
    char consumer[160];            /* hostname:pid:random, this process's consumer name */
    struct event *tick;            /* periodic: drain, heartbeats, rounds */
    struct event *kick;            /* a round now: there is news */
    int64_t next_round_us;
    struct relay_item *items, *items_tail;
    struct relay_endpoint *eps;
    struct relay_tenant *tenants;
    struct relay_op *ops;
    int sending;                   /* items sending */
    int waiting;                   /* items waiting for a slot */
    long reserved;                 /* slots promised to fetches not yet answered */
    int busy;                      /* ops the drain must wait for */
    int round_active;              /* a round's commands are out */
    int round_fetches;             /* ... fetches not yet answered */
    int round_again;               /* news arrived during the round */
    int round_more;                /* a fetch got all it asked for: more may wait */
    unsigned rr;                   /* round-robin start */
    int holding_off;               /* draining or abandoned: no new attempts */
    int64_t give_back_us;          /* draining: when attempts still running are handed back */
};

/* ---- small helpers ------------------------------------------------------ */

static const struct conf *
relay_conf(const struct relay *rl)
{
    return rl->app->conf;
}

/*
 * A webhooks setting, or its default when unset (0): conf.c always sets
 * them, but a zero here would mean a busy loop or no deliveries at all.
 */
static long
relay_setting(long value, long def)
{
    return value > 0 ? value : def;
}

#define RELAY_POLL_MS(c) relay_setting((c)->webhooks.poll_interval_ms, 200)
#define RELAY_VISIBILITY_MS(c) relay_setting((c)->webhooks.visibility_timeout_ms, 60000)
#define RELAY_PER_ENDPOINT(c) relay_setting((c)->webhooks.per_endpoint_concurrency, 4)
#define RELAY_MAX(c) relay_setting((c)->webhooks.max_concurrency, 64)
#define RELAY_MAX_AGE_S(c) relay_setting((c)->webhooks.max_age_s, 259200)

static char *
relay_key(const struct relay *rl, char *out, size_t outlen, const char *name, const char *arg)
{
    snprintf(out, outlen, "%s%s%s", relay_conf(rl)->redis.key_prefix, name, arg);
    return out;
}

/* "scheme://host:port" of url into out; -1 when url does not parse. */
static int
relay_origin(const char *url, char *out, size_t outlen)
{
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(url, 0);
    const char *scheme, *host;
    int port, ok = -1;

    if (u == NULL) {
        return -1;
    }
    scheme = evhttp_uri_get_scheme(u);
    host = evhttp_uri_get_host(u);
    port = evhttp_uri_get_port(u);
    if (scheme != NULL && host != NULL && host[0] != '\0') {
        if (port < 0) {
            port = strcmp(scheme, "https") == 0 ? 443 : 80;
        }
        snprintf(out, outlen, "%s://%s:%d", scheme, host, port);
        ok = 0;
    }
    evhttp_uri_free(u);
    return ok;
}

/* Letters, digits and "._-", 1..max characters (tenant and event ids). */
static int
relay_name_ok(const char *s, size_t max)
{
    size_t i, n = s != NULL ? strlen(s) : 0;

    for (i = 0; i < n; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.') {
            return 0;
        }
    }
    return n > 0 && n <= max;
}

/*
 * Delay before the attempt after `attempts` attempts: the schedule's step
 * (its last step repeats), shortened by up to 20 % when jitter is on, so
 * retries of many deliveries that failed together spread out yet never come
 * later than the schedule says.
 */
static long
relay_delay_ms(const struct conf *c, long attempts)
{
    size_t i = attempts < 1 ? 0 : (size_t)(attempts - 1);
    uint32_t r = 0;
    long d;

    if (c->webhooks.nschedule == 0) {
        return 5000;
    }
    if (i >= c->webhooks.nschedule) {
        i = c->webhooks.nschedule - 1;
    }
    d = c->webhooks.schedule_ms[i];
    if (c->webhooks.jitter && crypto_random(&r, sizeof(r)) == 0) {
        d -= (long)((double)d * 0.2 * ((double)r / 4294967296.0));
    }
    return d > 0 ? d : 1;
}

/* Retry-After in ms (delta seconds or an HTTP date), or -1 when absent or unreadable. */
static long
relay_retry_after_ms(const char *v)
{
    long s;
    time_t t;
    int64_t diff;

    if (v == NULL) {
        return -1;
    }
    while (*v == ' ' || *v == '\t') {
        v++;
    }
    if (isdigit((unsigned char)*v)) {
        return util_parse_long(v, 0, 30L * 86400, &s) == 0 ? s * 1000 : -1;
    }
    t = curl_getdate(v, NULL);
    if (t == (time_t)-1) {
        return -1;
    }
    diff = (int64_t)t * 1000 - util_now_ms();
    return diff > 0 ? (long)diff : 0;
}

/* ---- ops ---------------------------------------------------------------- */

static int
relay_op_busy(enum relay_op_kind k)
{
    return k != RELAY_OP_HEARTBEAT && k != RELAY_OP_ADMIN;
}

static void relay_op_on_reply(enum store_result res, const struct redisReply *reply, void *arg);
static void relay_op_on_timer(evutil_socket_t fd, short what, void *arg);

static struct relay_op *
relay_op_new(struct relay *rl, enum relay_op_kind kind, const struct store_script *script)
{
    struct relay_op *op = calloc(1, sizeof(*op));

    if (op == NULL) {
        return NULL;
    }
    op->rl = rl;
    op->kind = kind;
    op->script = script;
    op->first_us = util_mono_us();
    op->next = rl->ops;
    if (rl->ops != NULL) {
        rl->ops->prev = op;
    }
    rl->ops = op;
    if (relay_op_busy(kind)) {
        rl->busy++;
    }
    return op;
}

/* Copy one more argument; -1 when out of room or memory (the op then fails as a whole). */
static int
relay_op_arg(struct relay_op *op, const char *s)
{
    if (op->nargs >= RELAY_OP_MAX_ARGS || (op->args[op->nargs] = strdup(s)) == NULL) {
        return -1;
    }
    op->nargs++;
    return 0;
}

static void
relay_op_unlink(struct relay_op *op)
{
    struct relay *rl = op->rl;

    if (rl == NULL) {
        return;
    }
    if (op->prev != NULL) {
        op->prev->next = op->next;
    } else {
        rl->ops = op->next;
    }
    if (op->next != NULL) {
        op->next->prev = op->prev;
    }
    if (relay_op_busy(op->kind)) {
        rl->busy--;
    }
    op->rl = NULL;
}

static void
relay_op_free(struct relay_op *op)
{
    int i;

    relay_op_unlink(op);
    if (op->stored != NULL) { /* never stored: say so (shutdown, give-up) */
        relay_stored_cb cb = op->stored;
        op->stored = NULL;
        cb(0, op->stored_arg);
    }
    if (op->timer != NULL) {
        event_free(op->timer);
    }
    for (i = 0; i < op->nargs; i++) {
        free(op->args[i]);
    }
    free(op);
}

/* Send (again). The completion runs relay_op_on_reply exactly once. */
static void
relay_op_send(struct relay_op *op)
{
    struct store *st = op->rl->app->store;
    int rc;

    op->tries++;
    op->in_store = 1;
    if (op->script != NULL) {
        rc = store_eval(st, op->script, 0, op->nargs, (const char **)op->args, NULL,
                        relay_op_on_reply, op);
    } else {
        rc = store_cmd_argv(st, op->nargs, (const char **)op->args, NULL, relay_op_on_reply, op);
    }
    if (rc != GW_OK) {
        relay_op_on_reply(STORE_ERR_UNAVAILABLE, NULL, op);
    }
}

/* Send again after a backoff that doubles from 100 ms. 0, or -1 (then the caller gives up). */
static int
relay_op_backoff(struct relay_op *op)
{
    long ms = 100L << (op->tries < 6 ? op->tries : 6);
    struct timeval tv;

    if (ms > RELAY_BACKOFF_MAX_MS) {
        ms = RELAY_BACKOFF_MAX_MS;
    }
    if (op->timer == NULL) {
        op->timer = evtimer_new(op->rl->app->base, relay_op_on_timer, op);
    }
    if (op->timer == NULL) {
        return -1;
    }
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return evtimer_add(op->timer, &tv) == 0 ? 0 : -1;
}

static void
relay_op_on_timer(evutil_socket_t fd, short what, void *arg)
{
    relay_op_send(arg);
}

/* ---- endpoints and items ------------------------------------------------ */

static struct relay_endpoint *
relay_endpoint_find(struct relay *rl, const char *origin)
{
    struct relay_endpoint *ep;

    for (ep = rl->eps; ep != NULL; ep = ep->next) {
        if (strcmp(ep->origin, origin) == 0) {
            return ep;
        }
    }
    return NULL;
}

static struct relay_endpoint *
relay_endpoint_ref(struct relay *rl, const char *origin)
{
    struct relay_endpoint *ep = relay_endpoint_find(rl, origin);

    if (ep == NULL) {
        ep = calloc(1, sizeof(*ep));
        if (ep == NULL) {
            return NULL;
        }
        util_strlcpy(ep->origin, origin, sizeof(ep->origin));
        ep->next = rl->eps;
        rl->eps = ep;
    }
    ep->refs++;
    return ep;
}

static void
relay_endpoint_unref(struct relay *rl, struct relay_endpoint *ep)
{
    struct relay_endpoint **pp;

    if (ep == NULL || --ep->refs > 0) {
        return;
    }
    for (pp = &rl->eps; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == ep) {
            *pp = ep->next;
            break;
        }
    }
    free(ep);
}

static void
relay_item_free(struct relay_item *it)
{
    struct relay *rl = it->rl;

    if (it->prev != NULL) {
        it->prev->next = it->next;
    } else {
        rl->items = it->next;
    }
    if (it->next != NULL) {
        it->next->prev = it->prev;
    } else {
        rl->items_tail = it->prev;
    }
    if (it->state == RELAY_ITEM_WAITING) {
        rl->waiting--;
    } else {
        rl->sending--;
        if (it->ep != NULL) {
            it->ep->sending--;
        }
    }
    if (it->up != NULL) {
        upstream_cancel(it->up);
    }
    relay_endpoint_unref(rl, it->ep);
    free(it->url);
    free(it->body);
    free(it);
}

/*
 * Record an outcome (the finish script) and forget the item. outcome is
 * "ok", "retry" (after delay_ms) or "dead" (with reason).
 */
static void
relay_item_finish(struct relay_item *it, const char *outcome, long delay_ms, long status,
                  const char *error, const char *reason)
{
    struct relay *rl = it->rl;
    const struct conf *c = relay_conf(rl);
    struct relay_op *op = relay_op_new(rl, RELAY_OP_FINISH, rl->lua_finish);
    char delay[24], age[24], st[16];

    snprintf(delay, sizeof(delay), "%ld", delay_ms);
    snprintf(age, sizeof(age), "%ld", RELAY_MAX_AGE_S(c) * 1000);
    snprintf(st, sizeof(st), "%ld", status);
    metrics_inc(METRIC_DELIVERIES, strcmp(outcome, "ok") == 0      ? "delivered"
                                   : strcmp(outcome, "retry") == 0 ? "retried"
                                                                   : "dead",
                NULL, NULL);
    if (op == NULL || relay_op_arg(op, c->redis.key_prefix) != 0 ||
        relay_op_arg(op, it->tenant) != 0 || relay_op_arg(op, it->id) != 0 ||
        relay_op_arg(op, it->xid) != 0 || relay_op_arg(op, it->lease) != 0 ||
        relay_op_arg(op, outcome) != 0 || relay_op_arg(op, delay) != 0 ||
        relay_op_arg(op, age) != 0 || relay_op_arg(op, status > 0 ? st : "") != 0 ||
        relay_op_arg(op, error) != 0 || relay_op_arg(op, reason) != 0) {
        /* Not recorded: the claim runs out and another attempt follows (at least once). */
        cglog_error("relay_finish_unrecorded", "{s:s, s:s, s:s}", "event_id", it->id, "tenant",
                    it->tenant, "reason", "out of memory");
        if (op != NULL) {
            relay_op_free(op);
        }
    } else {
        relay_op_send(op);
    }
    relay_item_free(it);
}

static void relay_attempt(struct relay_item *it);
static void relay_release(struct relay *rl, const struct relay_item *it, int tried);

/* Start what may start: oldest claimed first, within both caps. */
static void
relay_pump(struct relay *rl)
{
    const struct conf *c = relay_conf(rl);
    struct relay_item *it, *next;

    for (it = rl->items; it != NULL && !rl->holding_off; it = next) {
        next = it->next;
        if (rl->sending >= RELAY_MAX(c)) {
            break;
        }
        if (it->state != RELAY_ITEM_WAITING ||
            it->ep->sending >= RELAY_PER_ENDPOINT(c)) {
            continue;
        }
        it->state = RELAY_ITEM_SENDING;
        rl->waiting--;
        rl->sending++;
        it->ep->sending++;
        relay_attempt(it);
        /* relay_attempt may have finished items (even next): start over from the head. */
        next = rl->items;
    }
}

static void relay_kick(struct relay *rl);

static void
relay_on_attempt_done(enum upstream_result res, const struct upstream_response *resp, void *arg)
{
    struct relay_item *it = arg;
    struct relay *rl = it->rl;
    const struct conf *c = relay_conf(rl);
    long status = resp->status, delay = 0, ra;
    char error[RELAY_ERROR_LEN], reason[128];
    const char *outcome;
    double ms = (double)(util_mono_us() - it->start_us) / 1000.0;

    it->up = NULL;
    error[0] = reason[0] = '\0';
    metrics_observe(METRIC_DELIVERY_DURATION, ms / 1000.0, NULL, NULL, NULL);
    if ((res == UPSTREAM_OK || res == UPSTREAM_ERR_TOO_LARGE) && status >= 200 && status < 300) {
        outcome = "ok";
    } else {
        if (res != UPSTREAM_OK) {
            snprintf(error, sizeof(error), "%s%s%s", upstream_result_text[res],
                     resp->error[0] != '\0' ? ": " : "", resp->error);
        } else {
            snprintf(error, sizeof(error), "HTTP %ld", status);
        }
        if (res == UPSTREAM_OK && status == 410) {
            outcome = "dead";
            snprintf(reason, sizeof(reason), "the endpoint answered 410 Gone");
        } else if (c->webhooks.max_attempts > 0 && it->attempts + 1 >= c->webhooks.max_attempts) {
            outcome = "dead";
            snprintf(reason, sizeof(reason), "no 2xx in %ld attempts (max_attempts)",
                     it->attempts + 1);
        } else {
            outcome = "retry";
            delay = relay_delay_ms(c, it->attempts + 1);
            ra = res == UPSTREAM_OK ? relay_retry_after_ms(resp->retry_after) : -1;
            if (ra > delay) {
                delay = ra < delay + RELAY_RETRY_AFTER_CAP_MS ? ra
                                                              : delay + RELAY_RETRY_AFTER_CAP_MS;
            }
        }
    }
    cglog_info("relay_attempt", "{s:s, s:s, s:s, s:i, s:s, s:s, s:i, s:s, s:f}", "event_id", it->id,
               "tenant", it->tenant, "call_id", it->call_id, "attempt", (int)(it->attempts + 1),
               "endpoint", it->ep->origin, "result", upstream_result_text[res], "http_status",
               (int)status, "outcome", outcome, "ms", ms);
    relay_item_finish(it, outcome, delay, status, error, reason);
    relay_pump(rl);
    if (rl->round_more) {
        relay_kick(rl);
    }
}

/* One attempt: fresh timestamp and signature, the same webhook-id. */
static void
relay_attempt(struct relay_item *it)
{
    const struct conf *c = relay_conf(it->rl);
    const struct conf_tenant *t = conf_tenant_find(c, it->tenant);
    char h_id[80], h_ts[48], *sig, *h_sig;
    const char *headers[6];
    struct upstream_request req;
    int64_t now = util_now_ms() / 1000;

    it->start_us = util_mono_us();
    if (t == NULL) {
        relay_release(it->rl, it, 0); /* a reload dropped the tenant: not ours to judge */
        relay_item_free(it);
        return;
    }
    sig = relay_sign((const char *const *)t->webhook_secret, t->nsecrets, it->id, now, it->body,
                     strlen(it->body));
    if (sig == NULL) {
        relay_item_finish(it, "dead", 0, 0, "", "the tenant has no usable webhook_secret");
        return;
    }
    h_sig = malloc(strlen(sig) + 32);
    if (h_sig == NULL) {
        free(sig);
        relay_item_finish(it, "retry", relay_delay_ms(c, it->attempts + 1), 0, "out of memory",
                          "");
        return;
    }
    snprintf(h_id, sizeof(h_id), "webhook-id: %s", it->id);
    snprintf(h_ts, sizeof(h_ts), "webhook-timestamp: %lld", (long long)now);
    sprintf(h_sig, "webhook-signature: %s", sig);
    free(sig);
    headers[0] = "Content-Type: application/json";
    headers[1] = "User-Agent: callgate/" PACKAGE_VERSION;
    headers[2] = h_id;
    headers[3] = h_ts;
    headers[4] = h_sig;
    headers[5] = NULL;
    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.url = it->url;
    req.headers = headers;
    req.body = it->body;
    req.body_len = strlen(it->body);
    req.timeout_ms = c->callbacks.timeout_ms;
    req.connect_timeout_ms = c->callbacks.timeout_ms < 3000 ? c->callbacks.timeout_ms : 3000;
    it->up = upstream_start(it->rl->up, &req, relay_on_attempt_done, it);
    free(h_sig);
    if (it->up == NULL) {
        relay_item_finish(it, "retry", relay_delay_ms(c, it->attempts + 1), 0,
                          "internal: cannot start the request", "");
    }
}

/* Hand a claim back to Redis (drain, abandon); tried is 0 when no attempt was made. */
static void
relay_release(struct relay *rl, const struct relay_item *it, int tried)
{
    const struct conf *c = relay_conf(rl);
    struct relay_op *op = relay_op_new(rl, RELAY_OP_RELEASE, rl->lua_release);
    char idle[24];

    snprintf(idle, sizeof(idle), "%ld", RELAY_VISIBILITY_MS(c) * 2 + 1000);
    if (op == NULL || relay_op_arg(op, c->redis.key_prefix) != 0 ||
        relay_op_arg(op, it->tenant) != 0 || relay_op_arg(op, it->id) != 0 ||
        relay_op_arg(op, it->xid) != 0 || relay_op_arg(op, it->lease) != 0 ||
        relay_op_arg(op, rl->consumer) != 0 || relay_op_arg(op, idle) != 0 ||
        relay_op_arg(op, tried ? "0" : "1") != 0) {
        if (op != NULL) {
            relay_op_free(op);
        }
        return; /* it stays claimed and is taken over after the visibility timeout */
    }
    relay_op_send(op);
}

/* Take one entry of a fetch answer: {entry, lease, id, call, url, type, body, seq, attempts}. */
static void
relay_take(struct relay *rl, const char *tenant, const struct redisReply *e)
{
    const struct conf *c = relay_conf(rl);
    const struct conf_tenant *t = conf_tenant_find(c, tenant);
    struct relay_item *it;
    const char *url;
    char origin[264];
    size_t i;
    long v;

    if (e->type != REDIS_REPLY_ARRAY || e->elements != 9) {
        return;
    }
    for (i = 0; i < 9; i++) {
        if (e->element[i]->type != REDIS_REPLY_STRING) {
            return; /* a field is missing: the claim runs out, the fetch drops it then */
        }
    }
    it = calloc(1, sizeof(*it));
    if (it == NULL) {
        return;
    }
    it->rl = rl;
    it->state = RELAY_ITEM_WAITING;
    util_strlcpy(it->xid, e->element[0]->str, sizeof(it->xid));
    util_strlcpy(it->lease, e->element[1]->str, sizeof(it->lease));
    util_strlcpy(it->id, e->element[2]->str, sizeof(it->id));
    util_strlcpy(it->call_id, e->element[3]->str, sizeof(it->call_id));
    util_strlcpy(it->tenant, tenant, sizeof(it->tenant));
    it->attempts = util_parse_long(e->element[8]->str, 0, 1L << 30, &v) == 0 ? v : 0;
    it->touched_us = util_mono_us();
    url = e->element[4]->str[0] != '\0' ? e->element[4]->str
                                        : (t != NULL ? t->callback_url : NULL);
    it->url = url != NULL ? strdup(url) : NULL;
    it->body = strdup(e->element[6]->str);
    it->prev = rl->items_tail;
    if (rl->items_tail != NULL) {
        rl->items_tail->next = it;
    } else {
        rl->items = it;
    }
    rl->items_tail = it;
    rl->waiting++;
    if (rl->holding_off || t == NULL) {
        /* Draining; or a reload dropped the tenant meanwhile: someone else's, or later. */
        relay_release(rl, it, 0);
        relay_item_free(it);
        return;
    }
    if (url == NULL || relay_origin(url, origin, sizeof(origin)) != 0) {
        relay_item_finish(it, "dead", 0, 0, "",
                          url == NULL ? "no callback URL for the call or the tenant"
                                      : "the callback URL does not parse");
        return;
    }
    if (it->body == NULL || it->url == NULL || (it->ep = relay_endpoint_ref(rl, origin)) == NULL) {
        relay_release(rl, it, 0);
        relay_item_free(it);
    }
}

/* ---- rounds: finding work ----------------------------------------------- */

static struct relay_tenant *
relay_tenant_get(struct relay *rl, const char *name, size_t len)
{
    struct relay_tenant *t;

    for (t = rl->tenants; t != NULL; t = t->next) {
        if (strlen(t->name) == len && memcmp(t->name, name, len) == 0) {
            return t;
        }
    }
    if (len >= sizeof(t->name) || (t = calloc(1, sizeof(*t))) == NULL) {
        return NULL;
    }
    memcpy(t->name, name, len);
    t->name[len] = '\0';
    strcpy(t->cursor, "0-0");
    t->next = rl->tenants;
    rl->tenants = t;
    return t;
}

static int
relay_tenant_has_waiting(const struct relay *rl, const char *tenant)
{
    const struct relay_item *it;

    for (it = rl->items; it != NULL; it = it->next) {
        if (it->state == RELAY_ITEM_WAITING && strcmp(it->tenant, tenant) == 0) {
            return 1;
        }
    }
    return 0;
}

static long
relay_free_slots(const struct relay *rl)
{
    return RELAY_MAX(relay_conf(rl)) - rl->sending - rl->waiting - rl->reserved;
}

static void
relay_round_end(struct relay *rl)
{
    rl->round_active = 0;
    if ((rl->round_again || rl->round_more) && !rl->holding_off && relay_free_slots(rl) > 0) {
        relay_kick(rl);
    }
}

/* Ask one tenant for up to n deliveries. */
static void
relay_fetch(struct relay *rl, struct relay_tenant *t, long n)
{
    const struct conf *c = relay_conf(rl);
    struct relay_op *op = relay_op_new(rl, RELAY_OP_FETCH, rl->lua_fetch);
    char count[16], vis[24], claims[16], idle[24];
    int64_t now = util_mono_us();

    snprintf(count, sizeof(count), "%ld", n);
    snprintf(vis, sizeof(vis), "%ld", RELAY_VISIBILITY_MS(c));
    snprintf(claims, sizeof(claims), "%d", RELAY_MAX_CLAIMS);
    snprintf(idle, sizeof(idle), "%ld", now >= t->tidy_at_us ? RELAY_CONSUMER_IDLE_MS : 0L);
    if (now >= t->tidy_at_us) {
        t->tidy_at_us = now + RELAY_TIDY_EVERY_US;
    }
    if (op == NULL || relay_op_arg(op, c->redis.key_prefix) != 0 ||
        relay_op_arg(op, t->name) != 0 || relay_op_arg(op, rl->consumer) != 0 ||
        relay_op_arg(op, count) != 0 || relay_op_arg(op, vis) != 0 ||
        relay_op_arg(op, t->cursor) != 0 || relay_op_arg(op, claims) != 0 ||
        relay_op_arg(op, idle) != 0) {
        if (op != NULL) {
            relay_op_free(op);
        }
        return;
    }
    util_strlcpy(op->tenant, t->name, sizeof(op->tenant));
    op->requested = n;
    rl->reserved += n;
    rl->round_fetches++;
    relay_op_send(op);
}

static void
relay_on_fetched(struct relay_op *op, enum store_result res, const struct redisReply *reply)
{
    struct relay *rl = op->rl;
    struct relay_tenant *t;
    const struct redisReply *out;
    size_t i;

    rl->reserved -= op->requested;
    rl->round_fetches--;
    if (res == STORE_OK && reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[2]->type == REDIS_REPLY_ARRAY) {
        t = relay_tenant_get(rl, op->tenant, strlen(op->tenant));
        if (t != NULL) {
            util_strlcpy(t->cursor, reply->element[0]->str, sizeof(t->cursor));
        }
        out = reply->element[2];
        for (i = 0; i < out->elements; i++) {
            relay_take(rl, op->tenant, out->element[i]);
        }
        if ((long)out->elements >= op->requested) {
            rl->round_more = 1;
        }
    } else if (res == STORE_ERR_REPLY) {
        cglog_error("relay_fetch_failed", "{s:s, s:s}", "tenant", op->tenant, "error",
                    reply != NULL && reply->str != NULL ? reply->str : "");
    }
    relay_pump(rl);
    if (rl->round_fetches == 0) {
        relay_round_end(rl);
    }
}

/* The tenants with work are known: visit them round-robin from a rotating start. */
static void
relay_on_tenants(struct relay_op *op, enum store_result res, const struct redisReply *reply)
{
    struct relay *rl = op->rl;
    const struct conf *c = relay_conf(rl);
    struct relay_tenant **order = NULL;
    size_t i, n = 0;

    if (res == STORE_OK && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
        !rl->holding_off) {
        order = calloc(reply->elements, sizeof(*order));
    }
    for (i = 0; order != NULL && i < reply->elements; i++) {
        const struct redisReply *e = reply->element[i];
        struct relay_tenant *t;
        if (e->type == REDIS_REPLY_STRING &&
            (t = relay_tenant_get(rl, e->str, (size_t)e->len)) != NULL) {
            order[n++] = t;
        }
    }
    for (i = 0; i < n; i++) {
        struct relay_tenant *t = order[(rl->rr + i) % n];
        const struct conf_tenant *ct = conf_tenant_find(c, t->name);
        const struct relay_endpoint *ep = NULL;
        long want = RELAY_PER_ENDPOINT(c), room = relay_free_slots(rl);
        char origin[264];

        if (room <= 0) {
            break;
        }
        /*
         * Skipped: a tenant this configuration does not know (yet: a rolling
         * change; or no more), whose work waits in Redis for a replica that
         * knows it rather than being judged undeliverable here; and a tenant
         * whose claimed deliveries still wait here for a slot.
         */
        if (ct == NULL || relay_tenant_has_waiting(rl, t->name)) {
            continue;
        }
        /* Its endpoint's free slots: a saturated endpoint leaves its work in Redis. */
        if (ct->callback_url != NULL &&
            relay_origin(ct->callback_url, origin, sizeof(origin)) == 0 &&
            (ep = relay_endpoint_find(rl, origin)) != NULL) {
            want -= ep->refs;
        }
        if (want > room) {
            want = room;
        }
        if (want > 0) {
            relay_fetch(rl, t, want);
        }
    }
    rl->rr++;
    free(order);
    if (rl->round_fetches == 0) {
        relay_round_end(rl);
    }
}

/* Keep this replica's claims from looking idle: one XCLAIM ... JUSTID per tenant. */
static void
relay_heartbeat(struct relay *rl)
{
    const struct conf *c = relay_conf(rl);
    int64_t now = util_mono_us(), stale = RELAY_VISIBILITY_MS(c) * 1000 / 3;
    struct relay_item *it, *jt;
    char key[256];

    for (it = rl->items; it != NULL; it = it->next) {
        struct relay_op *op;
        if (now - it->touched_us < stale) {
            continue;
        }
        op = relay_op_new(rl, RELAY_OP_HEARTBEAT, NULL);
        if (op == NULL || relay_op_arg(op, "XCLAIM") != 0 ||
            relay_op_arg(op, relay_key(rl, key, sizeof(key), "relay:q:", it->tenant)) != 0 ||
            relay_op_arg(op, "relay") != 0 || relay_op_arg(op, rl->consumer) != 0 ||
            relay_op_arg(op, "0") != 0) {
            if (op != NULL) {
                relay_op_free(op);
            }
            return;
        }
        /* Every stale entry of this tenant in the same command, as room allows. */
        for (jt = it; jt != NULL && op->nargs < RELAY_OP_MAX_ARGS - 1; jt = jt->next) {
            if (now - jt->touched_us >= stale && strcmp(jt->tenant, it->tenant) == 0 &&
                relay_op_arg(op, jt->xid) == 0) {
                jt->touched_us = now;
            }
        }
        relay_op_arg(op, "JUSTID");
        relay_op_send(op);
    }
}

/*
 * Draining: claims not started go back to Redis at once; attempts in flight
 * may finish until shortly before the drain deadline, when they are handed
 * back too. The relay does this itself, ahead of app.c's deadline, so that
 * the hand-back commands are answered while the loop still runs (at the
 * deadline the loop stops at once and would drop them; the claims would
 * then wait out the visibility timeout).
 */
static void
relay_hold_off(struct relay *rl)
{
    long drain = relay_conf(rl)->limits.drain_timeout_ms;
    long margin = drain / 4 < 1000 ? drain / 4 : 1000;
    struct relay_item *it, *next;

    rl->holding_off = 1;
    /* The drain began up to one tick before this. */
    rl->give_back_us = util_mono_us() + (drain - margin - RELAY_TICK_MAX_MS) * 1000LL;
    for (it = rl->items; it != NULL; it = next) {
        next = it->next;
        if (it->state == RELAY_ITEM_WAITING) {
            relay_release(rl, it, 0);
            relay_item_free(it);
        }
    }
}

/* Cancel the attempts still running and hand their claims back. */
static void
relay_give_back(struct relay *rl)
{
    struct relay_item *it, *next;

    for (it = rl->items; it != NULL; it = next) {
        next = it->next;
        cglog_warn("relay_abandoned", "{s:s, s:s, s:s, s:s}", "event_id", it->id, "tenant",
                   it->tenant, "call_id", it->call_id, "detail",
                   "handed back to Redis; another replica or a restart delivers it");
        relay_release(rl, it, it->state == RELAY_ITEM_SENDING);
        relay_item_free(it);
    }
}

static void
relay_round(struct relay *rl)
{
    struct relay_op *op;
    char key[256];

    if (rl->app->draining) {
        if (!rl->holding_off) {
            relay_hold_off(rl);
        }
        if (rl->sending > 0 && util_mono_us() >= rl->give_back_us) {
            relay_give_back(rl);
        }
        return;
    }
    if (!store_is_connected(rl->app->store)) {
        return;
    }
    relay_heartbeat(rl);
    if (rl->round_active) {
        rl->round_again = 1;
        return;
    }
    if (relay_free_slots(rl) <= 0) {
        return;
    }
    op = relay_op_new(rl, RELAY_OP_ROUND, NULL);
    if (op == NULL || relay_op_arg(op, "SMEMBERS") != 0 ||
        relay_op_arg(op, relay_key(rl, key, sizeof(key), "relay:tenants", "")) != 0) {
        if (op != NULL) {
            relay_op_free(op);
        }
        return;
    }
    rl->round_active = 1;
    rl->round_again = 0;
    rl->round_more = 0;
    relay_op_send(op);
}

static void
relay_on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct relay *rl = arg;
    long poll = RELAY_POLL_MS(relay_conf(rl));
    long every = poll < RELAY_TICK_MAX_MS ? poll : RELAY_TICK_MAX_MS;
    struct timeval tv = {every / 1000, (every % 1000) * 1000};
    int64_t now = util_mono_us();

    if (rl->app->draining || now >= rl->next_round_us) {
        rl->next_round_us = now + poll * 1000;
        relay_round(rl);
    }
    evtimer_add(rl->tick, &tv);
}

static void
relay_on_kick(evutil_socket_t fd, short what, void *arg)
{
    relay_round(arg);
}

/* Look for work on the next loop pass rather than at the next poll. */
static void
relay_kick(struct relay *rl)
{
    struct timeval now = {0, 0};

    if (!evtimer_pending(rl->kick, NULL)) {
        evtimer_add(rl->kick, &now);
    }
}

/* ---- store completions -------------------------------------------------- */

static void
relay_on_enqueued(struct relay_op *op, enum store_result res, const struct redisReply *reply)
{
    struct relay *rl = op->rl;

    if (res == STORE_OK && reply->type == REDIS_REPLY_INTEGER) {
        cglog_info("relay_queued", "{s:s, s:s, s:s, s:s, s:I}", "event_id", op->args[1], "tenant",
                   op->args[2], "call_id", op->args[3], "type", op->args[5], "sequence",
                   (json_int_t)reply->integer);
        if (op->stored != NULL) {
            relay_stored_cb cb = op->stored;
            op->stored = NULL;
            cb(1, op->stored_arg);
        }
        relay_kick(rl);
    } else if (res != STORE_ERR_REPLY && !rl->holding_off &&
               util_mono_us() - op->first_us < RELAY_ENQUEUE_GIVE_UP_US &&
               relay_op_backoff(op) == 0) {
        if (op->tries == 1) {
            cglog_warn("relay_enqueue_retry", "{s:s, s:s, s:s}", "event_id", op->args[1],
                       "tenant", op->args[2], "error", store_result_text[res]);
        }
        return;
    } else {
        cglog_error("relay_lost", "{s:s, s:s, s:s, s:s}", "event_id", op->args[1], "tenant",
                    op->args[2], "call_id", op->args[3], "error",
                    res == STORE_ERR_REPLY && reply != NULL && reply->str != NULL
                        ? reply->str
                        : store_result_text[res]);
    }
    relay_op_free(op);
}

static void
relay_on_finished(struct relay_op *op, enum store_result res, const struct redisReply *reply)
{
    /* args: prefix, tenant, id, entry, lease, outcome, delay, age, status, error, reason */
    const char *outcome;

    if (res == STORE_OK && reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
        reply->element[0]->type == REDIS_REPLY_STRING) {
        outcome = reply->element[0]->str;
        if (strcmp(outcome, "ok") == 0) {
            cglog_info("relay_delivered", "{s:s, s:s, s:I}", "event_id", op->args[2], "tenant",
                       op->args[1], "attempts", (json_int_t)reply->element[1]->integer);
        } else if (strcmp(outcome, "retry") == 0) {
            cglog_info("relay_retry_scheduled", "{s:s, s:s, s:I, s:s, s:s}", "event_id",
                       op->args[2], "tenant", op->args[1], "attempts",
                       (json_int_t)reply->element[1]->integer, "in_ms", op->args[6], "error",
                       op->args[9]);
        } else if (strcmp(outcome, "dead") == 0) {
            cglog_warn("relay_dead", "{s:s, s:s, s:I, s:s, s:s}", "event_id", op->args[2],
                       "tenant", op->args[1], "attempts", (json_int_t)reply->element[1]->integer,
                       "reason", op->args[10][0] != '\0' ? op->args[10] : "max_age_s",
                       "last_error", op->args[9]);
        } else {
            cglog_info("relay_stale", "{s:s, s:s}", "event_id", op->args[2], "detail",
                       "another replica took the delivery over meanwhile");
        }
    } else if (res != STORE_ERR_REPLY && op->tries < RELAY_FINISH_TRIES &&
               !(op->rl->holding_off && op->rl->app->flush_until_us != 0) &&
               relay_op_backoff(op) == 0) {
        return;
    } else {
        cglog_warn("relay_finish_unrecorded", "{s:s, s:s, s:s}", "event_id", op->args[2],
                   "tenant", op->args[1], "detail",
                   "the claim runs out and the delivery is attempted again");
    }
    relay_op_free(op);
}

static void
relay_op_on_reply(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct relay_op *op = arg;

    op->in_store = 0;
    if (op->rl == NULL) {
        relay_op_free(op); /* the relay is gone */
        return;
    }
    switch (op->kind) {
    case RELAY_OP_ENQUEUE:
        relay_on_enqueued(op, res, reply);
        return;
    case RELAY_OP_FINISH:
        relay_on_finished(op, res, reply);
        return;
    case RELAY_OP_ROUND:
        relay_on_tenants(op, res, reply);
        break;
    case RELAY_OP_FETCH:
        relay_on_fetched(op, res, reply);
        break;
    case RELAY_OP_RELEASE:
    case RELAY_OP_HEARTBEAT:
        if (res != STORE_OK) {
            cglog_debug("relay_command_failed", "{s:s, s:s}", "command",
                        op->kind == RELAY_OP_RELEASE ? "release" : "heartbeat", "error",
                        store_result_text[res]);
        }
        break;
    case RELAY_OP_ADMIN:
        if (op->on_admin(op, res, reply)) {
            return;
        }
        break;
    }
    relay_op_free(op);
}

/* ---- life cycle --------------------------------------------------------- */

struct relay *
relay_new(struct app *app)
{
    struct relay *rl = calloc(1, sizeof(*rl));
    struct upstream_opts opts = {.max_host_connections = 0,
                                 .max_total_connections = 256,
                                 .max_response_bytes = 64 * 1024,
                                 .addr_filter = ssrf_addr_allowed,
                                 .addr_filter_arg = app};
    char host[64] = "";
    uint32_t rnd = 0;
    struct timeval now = {0, 0};

    if (rl == NULL) {
        return NULL;
    }
    rl->app = app;
    opts.max_total_connections = RELAY_MAX(app->conf);
    gethostname(host, sizeof(host) - 1);
    crypto_random(&rnd, sizeof(rnd));
    snprintf(rl->consumer, sizeof(rl->consumer), "%s:%ld:%08x", host[0] ? host : "host",
             (long)getpid(), rnd);
    rl->up = upstream_new(app->base, &opts);
    rl->lua_enqueue = store_script_new(relay_lua_enqueue);
    rl->lua_fetch = store_script_new(relay_lua_fetch);
    rl->lua_finish = store_script_new(relay_lua_finish);
    rl->lua_release = store_script_new(relay_lua_release);
    rl->lua_list = store_script_new(relay_lua_list);
    rl->lua_replay = store_script_new(relay_lua_replay);
    rl->lua_replay_dead = store_script_new(relay_lua_replay_dead);
    rl->tick = evtimer_new(app->base, relay_on_tick, rl);
    rl->kick = evtimer_new(app->base, relay_on_kick, rl);
    if (rl->up == NULL || rl->lua_enqueue == NULL || rl->lua_fetch == NULL ||
        rl->lua_finish == NULL || rl->lua_release == NULL || rl->lua_list == NULL ||
        rl->lua_replay == NULL || rl->lua_replay_dead == NULL || rl->tick == NULL ||
        rl->kick == NULL) {
        relay_free(rl);
        return NULL;
    }
    evtimer_add(rl->tick, &now);
    return rl;
}

void
relay_abandon(struct relay *rl)
{
    struct relay_op *op, *next;

    rl->holding_off = 1;
    relay_give_back(rl);
    /* Commands waiting to be sent again: their time is up. */
    for (op = rl->ops; op != NULL; op = next) {
        next = op->next;
        if (op->in_store) {
            continue;
        }
        if (op->kind == RELAY_OP_ENQUEUE) {
            cglog_error("relay_lost", "{s:s, s:s, s:s, s:s}", "event_id", op->args[1], "tenant",
                        op->args[2], "call_id", op->args[3], "error",
                        "Redis unreachable until the drain deadline");
        }
        relay_op_free(op);
    }
}

void
relay_free(struct relay *rl)
{
    struct relay_op *op, *next;

    if (rl == NULL) {
        return;
    }
    if (rl->app != NULL) {
        relay_abandon(rl);
    }
    /* Commands Redis still owes an answer complete later (at store_free): detach them. */
    for (op = rl->ops; op != NULL; op = next) {
        next = op->next;
        if (op->kind == RELAY_OP_ADMIN && op->req != NULL) {
            op->req->on_deadline = NULL;
            op->req = NULL;
        }
        if (op->in_store) {
            relay_op_unlink(op);
        } else {
            relay_op_free(op);
        }
    }
    while (rl->eps != NULL) {
        struct relay_endpoint *ep = rl->eps;
        rl->eps = ep->next;
        free(ep);
    }
    while (rl->tenants != NULL) {
        struct relay_tenant *t = rl->tenants;
        rl->tenants = t->next;
        free(t);
    }
    if (rl->up != NULL) {
        upstream_free(rl->up);
    }
    store_script_free(rl->lua_enqueue);
    store_script_free(rl->lua_fetch);
    store_script_free(rl->lua_finish);
    store_script_free(rl->lua_release);
    store_script_free(rl->lua_list);
    store_script_free(rl->lua_replay);
    store_script_free(rl->lua_replay_dead);
    if (rl->tick != NULL) {
        event_free(rl->tick);
    }
    if (rl->kick != NULL) {
        event_free(rl->kick);
    }
    free(rl);
}

int
relay_pending(const struct relay *rl)
{
    return rl->sending + rl->waiting + rl->busy;
}

int
relay_call_event(struct relay *rl, const struct conf_tenant *tenant, const json_t *fields,
                 const char *event_type)
{
    return relay_call_event_stored(rl, tenant, fields, event_type, NULL, NULL);
}

int
relay_call_event_stored(struct relay *rl, const struct conf_tenant *tenant, const json_t *fields,
                        const char *event_type, relay_stored_cb stored, void *arg)
{
    const struct conf *c = relay_conf(rl);
    const char *url = callrec_field(fields, "callback_url");
    const char *call_id = callrec_field(fields, "id");
    char id[48], created[UTIL_TIME_LEN], ttl[24];
    struct relay_op *op;
    json_t *event;
    char *body;

    if ((url == NULL || url[0] == '\0') && tenant->callback_url == NULL) {
        return -1;
    }
    if (call_id == NULL) {
        return -1;
    }
    crypto_new_id("evt", id, sizeof(id));
    util_rfc3339(util_now_ms(), created, sizeof(created));
    /* "sequence" is appended inside Redis, where the call's counter is. */
    event = json_pack("{s:s, s:s, s:s, s:o}", "id", id, "type", event_type, "created_at", created,
                      "data", callrec_render(fields, NULL, 1));
    body = event != NULL ? json_dumps(event, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(event);
    snprintf(ttl, sizeof(ttl), "%ld", RELAY_MAX_AGE_S(c) + RELAY_SEQ_TTL_EXTRA_S);
    op = body != NULL ? relay_op_new(rl, RELAY_OP_ENQUEUE, rl->lua_enqueue) : NULL;
    if (op == NULL || relay_op_arg(op, c->redis.key_prefix) != 0 || relay_op_arg(op, id) != 0 ||
        relay_op_arg(op, tenant->id) != 0 || relay_op_arg(op, call_id) != 0 ||
        relay_op_arg(op, url != NULL ? url : "") != 0 || relay_op_arg(op, event_type) != 0 ||
        relay_op_arg(op, body) != 0 || relay_op_arg(op, ttl) != 0) {
        cglog_error("relay_lost", "{s:s, s:s, s:s, s:s}", "event_id", id, "tenant", tenant->id,
                    "call_id", call_id, "error", "out of memory");
        if (op != NULL) {
            relay_op_free(op);
        }
        free(body);
        return -1;
    }
    free(body);
    op->stored = stored;
    op->stored_arg = arg;
    relay_op_send(op);
    return 0;
}

char *
relay_sign(const char *const *secrets, size_t nsecrets, const char *msg_id, int64_t timestamp,
           const char *body, size_t len)
{
    char head[128], sig[64];
    unsigned char key[128], mac[32];
    size_t i, hl, out_len = 0;
    char *content, *out;
    int kl;

    hl = (size_t)snprintf(head, sizeof(head), "%s.%lld.", msg_id, (long long)timestamp);
    content = malloc(hl + len);
    out = calloc(nsecrets, 48);
    if (content == NULL || out == NULL || nsecrets == 0) {
        free(content);
        free(out);
        return NULL;
    }
    memcpy(content, head, hl);
    memcpy(content + hl, body, len);
    for (i = 0; i < nsecrets; i++) {
        const char *s = strncmp(secrets[i], "whsec_", 6) == 0 ? secrets[i] + 6 : secrets[i];
        kl = crypto_base64_decode(s, strlen(s), key, sizeof(key));
        if (kl <= 0 || crypto_hmac_sha256(key, (size_t)kl, content, hl + len, mac) != 0 ||
            crypto_base64_encode(mac, sizeof(mac), sig, sizeof(sig)) < 0) {
            continue;
        }
        out_len += (size_t)sprintf(out + out_len, "%sv1,%s", out_len ? " " : "", sig);
    }
    free(content);
    if (out_len == 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* ---- admin -------------------------------------------------------------- */

static void
relay_admin_on_deadline(struct front_req *r)
{
    struct relay_op *op = r->ctx;

    op->req = NULL;
    front_problem(r, 503, "store-unavailable", "the delivery store did not answer in time", NULL);
}

static void
relay_admin_unavailable(struct front_req *r)
{
    front_problem_ex(r, 503, "store-unavailable", "the delivery store is not reachable", NULL,
                     NULL, (const char *const[]){"Retry-After", "1", NULL});
}

/* Start an admin command for r; the reply goes to on_admin. */
static void
relay_admin_send(struct front_req *r, struct relay_op *op,
                 int (*on_admin)(struct relay_op *, enum store_result, const struct redisReply *))
{
    op->req = r;
    op->on_admin = on_admin;
    r->ctx = op;
    r->on_deadline = relay_admin_on_deadline;
    relay_op_send(op);
}

static struct relay_op *
relay_admin_op(struct front_req *r, const struct store_script *script, int nargs, ...)
{
    struct relay *rl = r->app->relay;
    struct relay_op *op = relay_op_new(rl, RELAY_OP_ADMIN, script);
    va_list ap;
    int i, ok = op != NULL;

    va_start(ap, nargs);
    for (i = 0; ok && i < nargs; i++) {
        ok = relay_op_arg(op, va_arg(ap, const char *)) == 0;
    }
    va_end(ap);
    if (!ok) {
        if (op != NULL) {
            relay_op_free(op);
        }
        front_problem(r, 500, "internal", "out of memory", NULL);
        return NULL;
    }
    return op;
}

/* A string field of a reply (HMGET value), or NULL when nil or empty. */
static const char *
relay_field(const struct redisReply *h, size_t i)
{
    const struct redisReply *e = i < h->elements ? h->element[i] : NULL;

    return e != NULL && e->type == REDIS_REPLY_STRING && e->len > 0 ? e->str : NULL;
}

static json_t *
relay_json_time(const char *ms)
{
    char out[UTIL_TIME_LEN];
    long long v;

    if (ms == NULL || (v = atoll(ms)) <= 0) {
        return json_null();
    }
    util_rfc3339((int64_t)v, out, sizeof(out));
    return json_string(out);
}

/* One delivery for the admin API, from the list script's HMGET. */
static json_t *
relay_admin_item(const struct conf *c, const struct redisReply *h)
{
    /* id, tenant, call, type, url, attempts, state, last_status, last_error, next_at,
     * created, seq, reason, dead_at */
    const char *tenant = relay_field(h, 1), *url = relay_field(h, 4), *status = relay_field(h, 7);
    const struct conf_tenant *t = tenant != NULL ? conf_tenant_find(c, tenant) : NULL;
    const char *s;

    if (url == NULL && t != NULL) {
        url = t->callback_url;
    }
    s = relay_field(h, 5);
    return json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?, s:I, s:s?, s:o, s:s?, s:o, s:o, s:I, s:s?, "
                     "s:o}",
                     "id", relay_field(h, 0), "tenant", tenant, "call_id", relay_field(h, 2),
                     "type", relay_field(h, 3), "url", url, "attempts",
                     (json_int_t)(s != NULL ? atoll(s) : 0), "state", relay_field(h, 6),
                     "last_status", status != NULL ? json_integer(atoll(status)) : json_null(),
                     "last_error", relay_field(h, 8), "next_attempt_at",
                     relay_json_time(relay_field(h, 9)), "created_at",
                     relay_json_time(relay_field(h, 10)), "sequence",
                     (json_int_t)(relay_field(h, 11) != NULL ? atoll(relay_field(h, 11)) : 0),
                     "reason", relay_field(h, 12), "dead_at", relay_json_time(relay_field(h, 13)));
}

static int
relay_admin_listed(struct relay_op *op, enum store_result res, const struct redisReply *reply)
{
    struct front_req *r = op->req;
    const struct redisReply *recs;
    json_t *data, *out;
    size_t i;

    if (r == NULL) {
        return 0;
    }
    r->on_deadline = NULL;
    if (res != STORE_OK || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_ARRAY ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
        relay_admin_unavailable(r);
        return 0;
    }
    recs = reply->element[0];
    data = json_array();
    for (i = 0; i < recs->elements; i++) {
        json_t *item = recs->element[i]->type == REDIS_REPLY_ARRAY
                           ? relay_admin_item(r->conf, recs->element[i])
                           : NULL;
        if (item != NULL) {
            json_array_append_new(data, item);
        }
    }
    out = json_object();
    json_object_set_new(out, "data", data);
    json_object_set_new(out, "next_cursor", reply->element[1]->len > 0
                                                ? json_string(reply->element[1]->str)
                                                : json_null());
    front_reply_json(r, 200, out, NULL);
    return 0;
}

void
relay_admin_list(struct front_req *r)
{
    struct evkeyvalq q;
    struct evkeyval *kv;
    const char *state = "dead", *tenant = "", *cursor = "";
    char limit_s[16];
    long limit = RELAY_LIST_DEFAULT;
    json_t *errors = json_array();
    struct relay_op *op;

    TAILQ_INIT(&q);
    if (r->query != NULL && evhttp_parse_query_str(r->query, &q) != 0) {
        problem_add_error(errors, "query", "is not a valid query string");
    }
    TAILQ_FOREACH(kv, &q, next) {
        if (strcmp(kv->key, "state") == 0) {
            if (strcmp(kv->value, "dead") != 0 && strcmp(kv->value, "pending") != 0) {
                problem_add_error(errors, "state", "must be dead or pending");
            }
            state = kv->value;
        } else if (strcmp(kv->key, "tenant") == 0) {
            if (!relay_name_ok(kv->value, 64)) {
                problem_add_error(errors, "tenant", "is not a tenant id");
            }
            tenant = kv->value;
        } else if (strcmp(kv->key, "limit") == 0) {
            if (util_parse_long(kv->value, 1, RELAY_LIST_MAX, &limit) != 0) {
                problem_add_error(errors, "limit", "must be an integer from 1 to 200");
            }
        } else if (strcmp(kv->key, "cursor") == 0) {
            if (!relay_name_ok(kv->value, 64)) {
                problem_add_error(errors, "cursor", "is not a cursor this API returned");
            }
            cursor = kv->value;
        } else {
            problem_add_error(errors, kv->key, "unknown query parameter");
        }
    }
    if (json_array_size(errors) > 0) {
        evhttp_clear_headers(&q);
        front_problem(r, 400, "validation", "the query has invalid parameters; see errors",
                      errors);
        return;
    }
    json_decref(errors);
    snprintf(limit_s, sizeof(limit_s), "%ld", limit);
    op = relay_admin_op(r, r->app->relay->lua_list, 5, r->conf->redis.key_prefix, state, tenant,
                        cursor, limit_s);
    evhttp_clear_headers(&q);
    if (op != NULL) {
        relay_admin_send(r, op, relay_admin_listed);
    }
}

static int
relay_admin_replayed(struct relay_op *op, enum store_result res, const struct redisReply *reply)
{
    struct front_req *r = op->req;
    const char *state;

    if (r == NULL) {
        return 0;
    }
    r->on_deadline = NULL;
    if (res != STORE_OK || reply->type != REDIS_REPLY_STRING) {
        relay_admin_unavailable(r);
        return 0;
    }
    state = reply->str;
    if (strcmp(state, "none") == 0) {
        front_problem(r, 404, "not-found", "no such delivery (or it was delivered)", NULL);
        return 0;
    }
    if (strcmp(state, "queued") == 0) {
        cglog_info("relay_replayed", "{s:s, s:s}", "event_id", op->args[1], "request_id",
                   r->request_id);
        relay_kick(op->rl);
    }
    front_reply_json(r, 202, json_pack("{s:s, s:s}", "id", op->args[1], "state", state), NULL);
    return 0;
}

void
relay_admin_replay(struct front_req *r)
{
    static const char prefix[] = "/admin/deliveries/", suffix[] = "/replay";
    size_t n = strlen(r->path);
    char id[72];
    struct relay_op *op;

    if (n <= sizeof(prefix) - 1 + sizeof(suffix) - 1 ||
        n - (sizeof(prefix) - 1) - (sizeof(suffix) - 1) >= sizeof(id)) {
        front_problem(r, 404, "not-found", "no such delivery", NULL);
        return;
    }
    n -= (sizeof(prefix) - 1) + (sizeof(suffix) - 1);
    memcpy(id, r->path + sizeof(prefix) - 1, n);
    id[n] = '\0';
    if (!relay_name_ok(id, 64)) {
        json_t *errors = json_array();
        problem_add_error(errors, "id", "is not a delivery id");
        front_problem(r, 400, "validation", "the delivery id is not valid", errors);
        return;
    }
    op = relay_admin_op(r, r->app->relay->lua_replay, 2, r->conf->redis.key_prefix, id);
    if (op != NULL) {
        relay_admin_send(r, op, relay_admin_replayed);
    }
}

static int
relay_admin_replayed_dead(struct relay_op *op, enum store_result res,
                          const struct redisReply *reply)
{
    struct front_req *r = op->req;
    long long moved, left;

    if (r == NULL) {
        return 0;
    }
    if (res != STORE_OK || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_INTEGER) {
        r->on_deadline = NULL;
        relay_admin_unavailable(r);
        return 0;
    }
    moved = reply->element[0]->integer;
    left = reply->element[1]->integer;
    op->count += (long)moved;
    if (moved > 0) {
        relay_kick(op->rl);
    }
    if (moved > 0 && left > 0) {
        relay_op_send(op); /* the next batch: one script never holds Redis for long */
        return 1;
    }
    r->on_deadline = NULL;
    cglog_info("relay_replayed", "{s:s, s:I, s:s}", "tenant", op->args[1], "count",
               (json_int_t)op->count, "request_id", r->request_id);
    front_reply_json(r, 202, json_pack("{s:s, s:I}", "tenant", op->args[1], "replayed",
                                       (json_int_t)op->count),
                     NULL);
    return 0;
}

void
relay_admin_replay_dead(struct front_req *r)
{
    json_t *body = r->body_len > 0 ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    const char *tenant = json_string_value(json_object_get(body, "tenant"));
    struct relay_op *op;

    if (!json_is_object(body) || json_object_size(body) != 1 || !relay_name_ok(tenant, 64)) {
        json_t *errors = json_array();
        problem_add_error(errors, "tenant", "a JSON object {\"tenant\": \"<id>\"} is required");
        json_decref(body);
        front_problem(r, 400, "validation", "the body is not valid", errors);
        return;
    }
    if (conf_tenant_find(r->conf, tenant) == NULL) {
        json_decref(body);
        front_problem(r, 404, "not-found", "no such tenant", NULL);
        return;
    }
    op = relay_admin_op(r, r->app->relay->lua_replay_dead, 3, r->conf->redis.key_prefix, tenant,
                        RELAY_REPLAY_BATCH);
    json_decref(body);
    if (op != NULL) {
        relay_admin_send(r, op, relay_admin_replayed_dead);
    }
}
