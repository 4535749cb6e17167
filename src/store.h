/*
 * store.h: callgate's one connection to Redis, asynchronous, on the gateway's
 * libevent loop (hiredis async + its libevent adapter).
 *
 * hiredis 0.14.1 (Debian 12) has no connect or command timeouts, so this
 * module runs its own timers: a connect deadline, a deadline per command, and
 * a reconnect with capped exponential backoff. Its state machine is
 * CLOSED -> CONNECTING -> CONNECTED.
 *
 * Completion contract (STYLE.md convention 4): store_cmd_argv() and
 * store_eval() always return GW_OK and then call the callback exactly once,
 * never before they have returned, with a result code. While Redis is not
 * connected they complete with STORE_ERR_UNAVAILABLE (deferred through the
 * loop) so that callers have a single path. A command whose deadline passes
 * completes with STORE_ERR_TIMEOUT and the connection is dropped and rebuilt,
 * because a hung Redis connection cannot be trusted for the commands queued
 * behind it.
 */
#ifndef CG_STORE_H
#define CG_STORE_H

#include <stddef.h>

struct event_base;
struct redisReply;
struct store;
struct store_script;

enum store_result {
    STORE_OK = 0,          /* reply is a non-error Redis reply */
    STORE_ERR_UNAVAILABLE, /* not connected when the command was issued */
    STORE_ERR_TIMEOUT,     /* command deadline passed; outcome unknown */
    STORE_ERR_CONNECTION,  /* connection lost while the command was pending */
    STORE_ERR_REPLY,       /* Redis answered with an error reply (reply is set) */
    STORE_RESULT_MAX
};

/* Text for logs and metric labels, indexed by enum store_result. */
extern const char *const store_result_text[STORE_RESULT_MAX];

struct store_opts {
    const char *host;         /* TCP host, used when unix_path is NULL */
    int port;                 /* TCP port */
    const char *unix_path;    /* unix socket path, or NULL */
    const char *password;     /* AUTH password, or NULL */
    int db;                   /* SELECT db (0 = no SELECT) */
    int connect_timeout_ms;   /* connect deadline */
    int command_timeout_ms;   /* per-command deadline */
    int backoff_min_ms;       /* first reconnect delay */
    int backoff_max_ms;       /* reconnect delay cap */
};

/*
 * Completion. reply is borrowed and valid only during the call; it is NULL
 * unless res is STORE_OK or STORE_ERR_REPLY.
 */
typedef void (*store_cb)(enum store_result res, const struct redisReply *reply, void *arg);

/* Create the client and start connecting. Strings in opts are copied. */
struct store *store_new(struct event_base *base, const struct store_opts *opts);

/*
 * Free the client. Commands still pending complete with STORE_ERR_CONNECTION
 * before this returns. store_free(NULL) is a no-op.
 */
void store_free(struct store *st);

/* 1 while connected (and AUTH/SELECT sent), else 0. */
int store_is_connected(const struct store *st);

/*
 * Send one command given as an argument vector (binary-safe; argvlen may be
 * NULL for NUL-terminated strings). See the completion contract above.
 */
int store_cmd_argv(struct store *st, int argc, const char **argv, const size_t *argvlen,
                   store_cb cb, void *arg);

/*
 * A Lua script known by its SHA-1. store_eval() sends EVALSHA and, when Redis
 * answers NOSCRIPT (after a restart or SCRIPT FLUSH), sends EVAL with the
 * source once, transparently: the caller sees one completion.
 * args holds nargs strings in all: the nkeys keys first, then the arguments.
 */
struct store_script *store_script_new(const char *lua_source);
void store_script_free(struct store_script *sc);
int store_eval(struct store *st, const struct store_script *sc, int nkeys, int nargs,
               const char **args, const size_t *argslen, store_cb cb, void *arg);

#endif
