/*
 * cglog.h: structured logs, one JSON object per line on stderr (journald and
 * log shippers take it as is). Each line has ts, level and event, then the
 * caller's fields, packed with jansson's json_pack format:
 *
 *     cglog_info("request", "{s:s, s:i}", "request_id", rid, "status", 201);
 *
 * Rules the callers keep: never log a secret, a full phone number (use
 * phone_redact) or a request body.
 */
#ifndef CG_CGLOG_H
#define CG_CGLOG_H

enum cglog_level { CGLOG_ERROR = 0, CGLOG_WARN, CGLOG_INFO, CGLOG_DEBUG };

/* Lines above this level are dropped. Default CGLOG_INFO. */
void cglog_set_level(enum cglog_level level);

/*
 * Under --workers: every later line of this process carries "worker" (the
 * slot, 0..N-1) and "pid". A single process leaves them out.
 */
void cglog_set_worker(int index);

/* Parse "error", "warn", "info" or "debug". Returns 0 or -1. */
int cglog_parse_level(const char *name, enum cglog_level *out);

/*
 * Write one line. fields is a json_pack format for an object ("{s:s}") or
 * NULL; a packing error is itself logged rather than lost.
 */
void cglog_write(enum cglog_level level, const char *event, const char *fields, ...);

#define cglog_error(ev, ...) cglog_write(CGLOG_ERROR, ev, __VA_ARGS__)
#define cglog_warn(ev, ...) cglog_write(CGLOG_WARN, ev, __VA_ARGS__)
#define cglog_info(ev, ...) cglog_write(CGLOG_INFO, ev, __VA_ARGS__)
#define cglog_debug(ev, ...) cglog_write(CGLOG_DEBUG, ev, __VA_ARGS__)

#endif
