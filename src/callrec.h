/*
 * callrec.h: the neutral call: its status enum with the rules of how a status
 * may change, and the call record kept in Redis (one hash per call plus a
 * list of status events), with the Lua scripts that change it atomically so
 * that every replica sees one truth.
 *
 * Status order: queued/scheduled < ringing < in_progress < terminal
 * (completed, no_answer, busy, failed, canceled). A status only moves
 * forward; a terminal status never changes; unknown (a placement whose outcome
 * we could not learn) may move to anything.
 */
#ifndef CG_CALLREC_H
#define CG_CALLREC_H

#include <stdint.h>

struct json_t;
struct redisReply;

enum call_status {
    CALL_QUEUED = 0,
    CALL_SCHEDULED,
    CALL_RINGING,
    CALL_IN_PROGRESS,
    CALL_COMPLETED,
    CALL_NO_ANSWER,
    CALL_BUSY,
    CALL_FAILED,
    CALL_CANCELED,
    CALL_UNKNOWN,
    CALL_STATUS_MAX
};

extern const char *const call_status_text[CALL_STATUS_MAX];

/* Parse a neutral status name. Returns 0 or -1. */
int call_status_parse(const char *s, enum call_status *out);

int call_status_terminal(enum call_status s);

/* Rank used by the transition rule (-1 for unknown). */
int call_status_rank(enum call_status s);

/* Event type relayed to tenants for a status: "call.completed", ... */
const char *call_status_event_type(enum call_status s);

/*
 * Lua sources of the scripts that change call records (see callrec.c for
 * their KEYS/ARGV). Kept here so that the modules that run them and the tests
 * share one definition.
 */
extern const char callrec_lua_begin[];
extern const char callrec_lua_finish[];
extern const char callrec_lua_event[];
extern const char callrec_lua_list[];

/*
 * The fields of a call hash as a JSON object of strings, from a flat reply
 * array (HGETALL, or a script's reply from index first on). New reference, or
 * NULL when there is no call.
 */
struct json_t *callrec_fields_from_reply(const struct redisReply *pairs, size_t first);

/* A field of such an object (borrowed), or NULL. */
const char *callrec_field(const struct json_t *fields, const char *name);

/*
 * The tenant-facing call object from the fields. with_detail adds the
 * GET /v1/calls/{id} extensions (timestamps, legs, recording link, ...);
 * events (a LRANGE reply of the call's history) adds "events" when not NULL.
 * Returns a new reference, or NULL when fields has no id.
 */
struct json_t *callrec_render(const struct json_t *fields, const struct redisReply *events,
                              int with_detail);

/*
 * The same call object as callrec_render(fields, NULL, 0) with its
 * "attempts" replaced by attempts_json, as the compact text json_dumps()
 * would make of it (JSON_COMPACT | JSON_PRESERVE_ORDER), written directly:
 * the placement answer, on every call. fields' "tags", when present, must be
 * compact JSON text of an object with its keys sorted (as calls.c stores
 * it), and attempts_json compact JSON text. Returns a string to free, or
 * NULL when fields has no id or memory ran out.
 */
char *callrec_summary_text(const struct json_t *fields, const char *attempts_json);

#endif
