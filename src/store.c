/*
 * store.c: the Redis client behind store.h. One hiredis async context on the
 * gateway's event_base, a handshake (AUTH, SELECT, PING) before the store
 * calls itself connected, hand-made connect and command deadlines (hiredis
 * 0.14.1 has none), and a reconnect timer with capped exponential backoff.
 *
 * Ownership of a command (struct store_cmd) is split in two. The store owns
 * its completion: while the command sits on st->sent or st->deferred, its
 * callback has not run yet. hiredis owns its privdata: while in_redis is set,
 * hiredis will call store_on_reply() for it exactly once. The struct is freed
 * when both are over. Whenever the connection goes away, every command still
 * on st->sent is detached from the store (cmd->st = NULL) and moved to a list
 * on the C stack, the store is brought into a consistent state, and only
 * then are the callers' callbacks run from that list. So a callback may call
 * store_cmd_argv() or even store_free() without pulling the store out from
 * under the code that called it.
 *
 * Transitions are logged through cglog: a lost connection or the first
 * failed attempt of an outage at warn, later attempts at debug.
 *
 * The process must ignore SIGPIPE (main.c does): hiredis writes with write().
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>
#include <openssl/evp.h>

#include "cglog.h"
#include "gw.h"
#include "metrics.h"
#include "store.h"
#include "util.h"

#define STORE_DEFAULT_CONNECT_MS 1000
#define STORE_DEFAULT_COMMAND_MS 1000
#define STORE_DEFAULT_BACKOFF_MIN_MS 100
#define STORE_DEFAULT_BACKOFF_MAX_MS 5000
#define STORE_SHA1_HEX_LEN 40

const char *const store_result_text[STORE_RESULT_MAX] = {
    [STORE_OK] = "ok",
    [STORE_ERR_UNAVAILABLE] = "unavailable",
    [STORE_ERR_TIMEOUT] = "timeout",
    [STORE_ERR_CONNECTION] = "connection",
    [STORE_ERR_REPLY] = "reply",
};

enum store_state {
    STORE_CLOSED = 0, /* no context; a reconnect may be armed */
    STORE_CONNECTING, /* context exists, handshake not yet answered */
    STORE_CONNECTED   /* handshake answered; commands go to Redis */
};

/*
 * Formatted EVALSHA commands up to this size reuse buffers: two per call of
 * about 2 KiB each, which glibc otherwise serves from its large-chunk path
 * (consolidating its fast bins) every time.
 */
#define STORE_BUF_SIZE 4096
#define STORE_SPARE_BUFS 128

/* The process's spare buffers (one loop per process; a command may outlive its store). */
static char *store_spare[STORE_SPARE_BUFS];
static int store_nspare;

struct store_cmd {
    TAILQ_ENTRY(store_cmd) link; /* on st->sent or st->deferred */
    struct store *st;            /* owner of the completion; NULL once detached */
    store_cb cb;                 /* caller's completion (may be NULL) */
    void *arg;                   /* its argument */
    struct event *timer;         /* deadline, or the zero delay of a deferred failure */
    char *eval_cmd;              /* the formatted EVALSHA, kept for a NOSCRIPT retry, or NULL */
    size_t eval_len;             /* its length */
    size_t eval_cap;             /* its buffer's size */
    const struct store_source *eval_src; /* its script's source, for SCRIPT LOAD */
    int64_t start_us;            /* issued (for the metrics) */
    unsigned in_redis : 1;       /* hiredis still holds this as privdata */
    unsigned done : 1;           /* the completion has been delivered */
    unsigned deferred : 1;       /* on st->deferred: fails UNAVAILABLE when timer fires */
};

TAILQ_HEAD(store_cmd_list, store_cmd);

struct store {
    struct event_base *base;        /* borrowed */
    redisAsyncContext *ac;          /* current context, NULL while CLOSED */
    enum store_state state;         /* CLOSED -> CONNECTING -> CONNECTED */
    int closing;                    /* store_free() has started */
    int failing;                    /* an outage has been logged; quiet until CONNECTED */
    char *host;                     /* own copy, or NULL */
    char *unix_path;                /* own copy, or NULL */
    char *password;                 /* own copy, or NULL */
    int port;                       /* TCP port */
    int db;                         /* SELECT db, 0 = none */
    int connect_timeout_ms;         /* connect + handshake deadline */
    int command_timeout_ms;         /* per-command deadline */
    int backoff_min_ms;             /* first reconnect delay */
    int backoff_max_ms;             /* reconnect delay cap */
    int backoff_ms;                 /* next reconnect delay, before jitter */
    int tcp_up;                     /* hiredis reported the socket connected */
    int handshake_left;             /* AUTH/SELECT/PING replies still awaited */
    uint32_t rng;                   /* xorshift state for the jitter */
    struct event *connect_timer;    /* connect deadline */
    struct event *reconnect_timer;  /* backoff before the next connect */
    struct store_cmd_list sent;     /* commands handed to hiredis, not completed */
    struct store_cmd_list deferred; /* commands waiting to fail UNAVAILABLE */
    struct store_source *sources;   /* every script this store has run */
};

/*
 * A script's source, kept by the store for as long as the store lives, so
 * that a NOSCRIPT answer (Redis restarted, SCRIPT FLUSH) can be followed by
 * SCRIPT LOAD and the same EVALSHA again. Scripts are few (one per Lua
 * text), so a list does.
 */
struct store_source {
    char sha[STORE_SHA1_HEX_LEN + 1];
    char *source;
    size_t len;
    struct store_source *next;
};

struct store_script {
    char sha[STORE_SHA1_HEX_LEN + 1]; /* lower-case hex SHA-1 of source */
    char *source;                     /* own copy of the Lua source */
    size_t len;                       /* its length */
};

static void store_on_cmd_event(evutil_socket_t fd, short what, void *arg);
static void store_on_reply(redisAsyncContext *ac, void *r, void *privdata);

static void
store_tv_from_ms(struct timeval *tv, int ms)
{
    tv->tv_sec = ms / 1000;
    tv->tv_usec = (ms % 1000) * 1000;
}

static char *
store_strdup_or_null(const char *s, int *failed)
{
    char *copy;

    if (s == NULL) {
        return NULL;
    }
    copy = strdup(s);
    if (copy == NULL) {
        *failed = 1;
    }
    return copy;
}

static int
store_positive_or(int value, int fallback)
{
    return value > 0 ? value : fallback;
}

static uint32_t
store_random(struct store *st)
{
    uint32_t x = st->rng;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    st->rng = x;
    return x;
}

/* ---- commands ---- */

static struct store_cmd *
store_cmd_new(struct store *st, store_cb cb, void *arg)
{
    struct store_cmd *cmd;

    cmd = calloc(1, sizeof(*cmd));
    if (cmd == NULL) {
        return NULL;
    }
    cmd->timer = evtimer_new(st->base, store_on_cmd_event, cmd);
    if (cmd->timer == NULL) {
        free(cmd);
        return NULL;
    }
    cmd->cb = cb;
    cmd->arg = arg;
    cmd->start_us = util_mono_us();
    return cmd;
}

/* A buffer for a formatted command of len bytes; *cap is its size. */
static char *
store_buf_get(size_t len, size_t *cap)
{
    if (len > STORE_BUF_SIZE) {
        *cap = len;
        return malloc(len);
    }
    *cap = STORE_BUF_SIZE;
    return store_nspare > 0 ? store_spare[--store_nspare] : malloc(STORE_BUF_SIZE);
}

static void
store_buf_put(char *buf, size_t cap)
{
    if (buf != NULL && cap == STORE_BUF_SIZE && store_nspare < STORE_SPARE_BUFS) {
        store_spare[store_nspare++] = buf;
    } else {
        free(buf);
    }
}

/* Free the command once both the store and hiredis are done with it. */
static void
store_cmd_release(struct store_cmd *cmd)
{
    if (cmd->in_redis || !cmd->done) {
        return;
    }
    event_free(cmd->timer);
    store_buf_put(cmd->eval_cmd, cmd->eval_cap);
    free(cmd);
}

/* Take the command off its store's list: the store no longer knows it. */
static void
store_cmd_unlink(struct store_cmd *cmd)
{
    struct store *st = cmd->st;

    if (st == NULL) {
        return;
    }
    if (cmd->deferred) {
        TAILQ_REMOVE(&st->deferred, cmd, link);
    } else {
        TAILQ_REMOVE(&st->sent, cmd, link);
    }
    cmd->st = NULL;
}

/*
 * Deliver the one completion of an unlinked command. The callback may free
 * the store, so nothing here touches it.
 */
static void
store_cmd_finish(struct store_cmd *cmd, enum store_result res, const redisReply *reply)
{
    evtimer_del(cmd->timer);
    cmd->done = 1;
    metrics_inc(METRIC_REDIS_COMMANDS, NULL, NULL, NULL);
    if (res != STORE_OK) {
        metrics_inc(METRIC_REDIS_ERRORS, store_result_text[res], NULL, NULL);
    }
    if (res != STORE_ERR_UNAVAILABLE) { /* it went to Redis */
        metrics_observe(METRIC_REDIS_DURATION, (double)(util_mono_us() - cmd->start_us) / 1e6,
                        NULL, NULL, NULL);
    }
    if (cmd->cb != NULL) {
        cmd->cb(res, reply, cmd->arg);
    }
    store_cmd_release(cmd);
}

/* Move every command of from to to, detaching each from its store. */
static void
store_cmd_detach_all(struct store_cmd_list *from, struct store_cmd_list *to)
{
    struct store_cmd *cmd;

    while ((cmd = TAILQ_FIRST(from)) != NULL) {
        store_cmd_unlink(cmd);
        TAILQ_INSERT_TAIL(to, cmd, link);
    }
}

/* Complete every command of a detached list with res. */
static void
store_cmd_fail_list(struct store_cmd_list *list, enum store_result res)
{
    struct store_cmd *cmd;

    while ((cmd = TAILQ_FIRST(list)) != NULL) {
        TAILQ_REMOVE(list, cmd, link);
        store_cmd_finish(cmd, res, NULL);
    }
}

/* Queue the command to fail UNAVAILABLE on the next loop pass. */
static void
store_cmd_defer(struct store *st, struct store_cmd *cmd)
{
    struct timeval now = {0, 0};

    cmd->st = st;
    cmd->deferred = 1;
    TAILQ_INSERT_TAIL(&st->deferred, cmd, link);
    evtimer_add(cmd->timer, &now);
}

/* ---- connection state ---- */

static void
store_schedule_reconnect(struct store *st)
{
    struct timeval tv;
    int delay;

    if (st->closing || evtimer_pending(st->reconnect_timer, NULL)) {
        return;
    }
    delay = st->backoff_ms + (int)(store_random(st) % (uint32_t)(st->backoff_ms / 8 + 1));
    st->backoff_ms =
        st->backoff_ms > st->backoff_max_ms / 2 ? st->backoff_max_ms : st->backoff_ms * 2;
    store_tv_from_ms(&tv, delay);
    evtimer_add(st->reconnect_timer, &tv);
}

/* Where Redis is, for log lines. */
static const char *
store_addr(const struct store *st)
{
    return st->unix_path != NULL ? st->unix_path : st->host;
}

/* hiredis's error text for a context, or fallback. */
static const char *
store_errstr(const redisAsyncContext *ac, const char *fallback)
{
    return ac->c.err != 0 && ac->c.errstr[0] != '\0' ? ac->c.errstr : fallback;
}

/* Log a lost connection or a failed attempt, once per outage. */
static void
store_log_down(struct store *st, const char *why)
{
    if (st->closing) {
        return;
    }
    if (st->state == STORE_CONNECTED) {
        cglog_warn("store_disconnected", "{s:s, s:i, s:s}", "redis", store_addr(st), "port",
                   st->port, "reason", why);
    } else if (!st->failing) {
        cglog_warn("store_connect_failed", "{s:s, s:i, s:s}", "redis", store_addr(st), "port",
                   st->port, "reason", why);
    } else {
        cglog_debug("store_connect_failed", "{s:s, s:i, s:s}", "redis", store_addr(st), "port",
                    st->port, "reason", why);
    }
    st->failing = 1;
}

/*
 * The connection is gone or being dropped: log why, detach the context,
 * move the commands sent on it to out (for the caller to complete once the
 * store is consistent), and arm the reconnect. free_ac is 0 when hiredis is
 * already freeing the context (connect failure, disconnect, NULL reply);
 * otherwise the context is freed here, which hiredis defers while inside
 * its callback.
 */
static void
store_lost(struct store *st, int free_ac, const char *why, struct store_cmd_list *out)
{
    redisAsyncContext *ac = st->ac;

    store_log_down(st, why);
    st->ac = NULL;
    if (ac != NULL) {
        ac->data = NULL;
    }
    st->state = STORE_CLOSED;
    st->tcp_up = 0;
    st->handshake_left = 0;
    evtimer_del(st->connect_timer);
    store_cmd_detach_all(&st->sent, out);
    store_schedule_reconnect(st);
    if (free_ac && ac != NULL) {
        redisAsyncFree(ac);
    }
}

/* store_lost(), then fail what was pending with STORE_ERR_CONNECTION. */
static void
store_drop(struct store *st, int free_ac, const char *why)
{
    struct store_cmd_list lost = TAILQ_HEAD_INITIALIZER(lost);

    store_lost(st, free_ac, why, &lost);
    store_cmd_fail_list(&lost, STORE_ERR_CONNECTION);
}

static void
store_maybe_connected(struct store *st)
{
    if (!st->tcp_up || st->handshake_left > 0) {
        return;
    }
    st->state = STORE_CONNECTED;
    st->failing = 0;
    st->backoff_ms = st->backoff_min_ms;
    evtimer_del(st->connect_timer);
    cglog_info("store_connected", "{s:s, s:i, s:i}", "redis", store_addr(st), "port", st->port,
               "db", st->db);
}

static void
store_on_connect(const redisAsyncContext *ac, int status)
{
    struct store *st = ac->data;

    if (st == NULL) {
        return;
    }
    if (status != REDIS_OK) {
        /* hiredis frees ac after this and calls no disconnect callback. */
        store_drop(st, 0, store_errstr(ac, "connect failed"));
        return;
    }
    st->tcp_up = 1;
    store_maybe_connected(st);
}

static void
store_on_disconnect(const redisAsyncContext *ac, int status)
{
    struct store *st = ac->data;

    if (st != NULL) {
        store_drop(st, 0, store_errstr(ac, "server closed the connection"));
    }
}

/* Reply to AUTH, SELECT or PING. Any failure is a connection failure. */
static void
store_on_handshake(redisAsyncContext *ac, void *r, void *privdata)
{
    struct store *st = ac->data;
    const redisReply *reply = r;

    if (st == NULL) {
        return;
    }
    if (reply == NULL) {
        store_drop(st, 0, store_errstr(ac, "connection lost during handshake"));
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        store_drop(st, 1, reply->str);
        return;
    }
    st->handshake_left--;
    store_maybe_connected(st);
}

static int
store_queue_handshake(struct store *st, redisAsyncContext *ac, int argc, const char **argv)
{
    if (redisAsyncCommandArgv(ac, store_on_handshake, st, argc, argv, NULL) != REDIS_OK) {
        return GW_ERR;
    }
    st->handshake_left++;
    return GW_OK;
}

/* AUTH and SELECT when configured, then PING: CONNECTED means Redis answered. */
static int
store_handshake(struct store *st, redisAsyncContext *ac)
{
    const char *auth[] = {"AUTH", st->password};
    const char *sel[] = {"SELECT", NULL};
    const char *ping[] = {"PING"};
    char db[16];

    st->handshake_left = 0;
    if (st->password != NULL && store_queue_handshake(st, ac, 2, auth) != GW_OK) {
        return GW_ERR;
    }
    if (st->db != 0) {
        snprintf(db, sizeof(db), "%d", st->db);
        sel[1] = db;
        if (store_queue_handshake(st, ac, 2, sel) != GW_OK) {
            return GW_ERR;
        }
    }
    return store_queue_handshake(st, ac, 1, ping);
}

/* A new context, or NULL (failure logged). */
static redisAsyncContext *
store_open_context(struct store *st)
{
    redisAsyncContext *ac;

    if (st->unix_path != NULL) {
        ac = redisAsyncConnectUnix(st->unix_path);
    } else {
        ac = redisAsyncConnect(st->host, st->port);
    }
    if (ac == NULL) {
        store_log_down(st, "out of memory");
        return NULL;
    }
    if (ac->err != 0 || (st->unix_path == NULL && redisEnableKeepAlive(&ac->c) != REDIS_OK)) {
        store_log_down(st, store_errstr(ac, "connect failed"));
        redisAsyncFree(ac);
        return NULL;
    }
    return ac;
}

/* CLOSED -> CONNECTING. Never called from inside a hiredis callback. */
static void
store_connect(struct store *st)
{
    struct timeval tv;
    redisAsyncContext *ac;

    ac = store_open_context(st);
    if (ac == NULL) {
        store_schedule_reconnect(st);
        return;
    }
    if (redisLibeventAttach(ac, st->base) != REDIS_OK) {
        redisAsyncFree(ac);
        store_log_down(st, "event attach failed");
        store_schedule_reconnect(st);
        return;
    }
    ac->data = st;
    st->ac = ac;
    st->state = STORE_CONNECTING;
    st->tcp_up = 0;
    redisAsyncSetConnectCallback(ac, store_on_connect);
    redisAsyncSetDisconnectCallback(ac, store_on_disconnect);
    if (store_handshake(st, ac) != GW_OK) {
        store_drop(st, 1, "handshake could not be queued");
        return;
    }
    store_tv_from_ms(&tv, st->connect_timeout_ms);
    evtimer_add(st->connect_timer, &tv);
}

static void
store_on_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct store *st = arg;

    if (st->state == STORE_CONNECTING) {
        store_drop(st, 1, "connect timeout");
    }
}

static void
store_on_reconnect(evutil_socket_t fd, short what, void *arg)
{
    struct store *st = arg;

    if (st->state == STORE_CLOSED && !st->closing) {
        store_connect(st);
    }
}

/* ---- replies and deadlines ---- */

static int
store_is_noscript(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_ERROR && reply->len >= 8 &&
           strncmp(reply->str, "NOSCRIPT", 8) == 0;
}

/*
 * Load the script and resend the same EVALSHA on the same connection, once:
 * Redis runs them in that order. (The SCRIPT LOAD's own answer is not needed.)
 */
static int
store_retry_eval(struct store *st, struct store_cmd *cmd)
{
    int rc;

    rc = redisAsyncCommand(st->ac, NULL, NULL, "SCRIPT LOAD %b", cmd->eval_src->source,
                           cmd->eval_src->len);
    if (rc == REDIS_OK) {
        rc = redisAsyncFormattedCommand(st->ac, store_on_reply, cmd, cmd->eval_cmd,
                                        cmd->eval_len);
    }
    store_buf_put(cmd->eval_cmd, cmd->eval_cap);
    cmd->eval_cmd = NULL;
    if (rc != REDIS_OK) {
        return GW_ERR;
    }
    cmd->in_redis = 1;
    return GW_OK;
}

/* A NULL reply: hiredis is freeing the context after a connection error. */
static void
store_on_reply_lost(struct store *st, struct store_cmd *cmd, const char *why)
{
    struct store_cmd_list lost = TAILQ_HEAD_INITIALIZER(lost);

    store_cmd_unlink(cmd);
    store_lost(st, 0, why, &lost);
    store_cmd_finish(cmd, STORE_ERR_CONNECTION, NULL);
    store_cmd_fail_list(&lost, STORE_ERR_CONNECTION);
}

static void
store_on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct store_cmd *cmd = privdata;
    struct store *st = cmd->st;
    const redisReply *reply = r;

    cmd->in_redis = 0;
    if (st == NULL) {
        /* Completed already (deadline, drop, store_free): only free it. */
        store_cmd_release(cmd);
        return;
    }
    if (reply == NULL) {
        store_on_reply_lost(st, cmd, store_errstr(ac, "connection lost"));
        return;
    }
    if (cmd->eval_cmd != NULL && store_is_noscript(reply) && store_retry_eval(st, cmd) == GW_OK) {
        return;
    }
    store_cmd_unlink(cmd);
    store_cmd_finish(cmd, reply->type == REDIS_REPLY_ERROR ? STORE_ERR_REPLY : STORE_OK, reply);
}

/*
 * The command's deadline passed: it completes with STORE_ERR_TIMEOUT, and
 * the connection is dropped because whatever is queued behind it on a hung
 * connection cannot be trusted either; those complete STORE_ERR_CONNECTION.
 */
static void
store_on_cmd_timeout(struct store *st, struct store_cmd *cmd)
{
    struct store_cmd_list lost = TAILQ_HEAD_INITIALIZER(lost);

    store_cmd_unlink(cmd);
    store_lost(st, 1, "command timeout", &lost);
    store_cmd_finish(cmd, STORE_ERR_TIMEOUT, NULL);
    store_cmd_fail_list(&lost, STORE_ERR_CONNECTION);
}

/* The command's timer: a deadline, or a deferred UNAVAILABLE. */
static void
store_on_cmd_event(evutil_socket_t fd, short what, void *arg)
{
    struct store_cmd *cmd = arg;
    struct store *st = cmd->st;

    if (st == NULL) {
        return;
    }
    if (cmd->deferred) {
        store_cmd_unlink(cmd);
        store_cmd_finish(cmd, STORE_ERR_UNAVAILABLE, NULL);
        return;
    }
    store_on_cmd_timeout(st, cmd);
}

/* hiredis has the command: it is in flight, under its deadline. */
static void
store_track(struct store *st, struct store_cmd *cmd)
{
    struct timeval tv;

    cmd->in_redis = 1;
    cmd->st = st;
    TAILQ_INSERT_TAIL(&st->sent, cmd, link);
    store_tv_from_ms(&tv, st->command_timeout_ms);
    evtimer_add(cmd->timer, &tv);
}

/* Hand the command to hiredis, or queue it to fail UNAVAILABLE. */
static void
store_submit(struct store *st, struct store_cmd *cmd, int argc, const char **argv,
             const size_t *argvlen)
{
    if (st->state != STORE_CONNECTED || st->closing ||
        redisAsyncCommandArgv(st->ac, store_on_reply, cmd, argc, argv, argvlen) != REDIS_OK) {
        store_cmd_defer(st, cmd);
        return;
    }
    store_track(st, cmd);
}

/* ---- public API ---- */

static int
store_copy_opts(struct store *st, const struct store_opts *opts)
{
    int failed = 0;

    st->host = store_strdup_or_null(opts->host, &failed);
    st->unix_path = store_strdup_or_null(opts->unix_path, &failed);
    st->password = store_strdup_or_null(opts->password, &failed);
    st->port = opts->port;
    st->db = opts->db;
    st->connect_timeout_ms = store_positive_or(opts->connect_timeout_ms, STORE_DEFAULT_CONNECT_MS);
    st->command_timeout_ms = store_positive_or(opts->command_timeout_ms, STORE_DEFAULT_COMMAND_MS);
    st->backoff_min_ms = store_positive_or(opts->backoff_min_ms, STORE_DEFAULT_BACKOFF_MIN_MS);
    st->backoff_max_ms = store_positive_or(opts->backoff_max_ms, STORE_DEFAULT_BACKOFF_MAX_MS);
    if (st->backoff_max_ms < st->backoff_min_ms) {
        st->backoff_max_ms = st->backoff_min_ms;
    }
    st->backoff_ms = st->backoff_min_ms;
    return failed ? GW_ERR : GW_OK;
}

static void
store_destroy(struct store *st)
{
    if (st->connect_timer != NULL) {
        event_free(st->connect_timer);
    }
    if (st->reconnect_timer != NULL) {
        event_free(st->reconnect_timer);
    }
    while (st->sources != NULL) {
        struct store_source *src = st->sources;
        st->sources = src->next;
        free(src->source);
        free(src);
    }
    free(st->host);
    free(st->unix_path);
    free(st->password);
    free(st);
}

/*
 * Create the client and start connecting at once (this must not be called
 * from inside a hiredis callback). Strings in opts are copied. Timeouts and
 * backoff values <= 0 take defaults (1000 ms, 1000 ms, 100 ms, 5000 ms).
 * Returns NULL when opts name neither a host nor a unix socket, or on OOM.
 */
struct store *
store_new(struct event_base *base, const struct store_opts *opts)
{
    struct store *st;

    if (base == NULL || opts == NULL || (opts->host == NULL && opts->unix_path == NULL)) {
        return NULL;
    }
    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return NULL;
    }
    st->base = base;
    TAILQ_INIT(&st->sent);
    TAILQ_INIT(&st->deferred);
    st->rng = (uint32_t)getpid() ^ (uint32_t)time(NULL) ^ (uint32_t)(uintptr_t)st;
    st->rng |= 1;
    st->connect_timer = evtimer_new(base, store_on_connect_timeout, st);
    st->reconnect_timer = evtimer_new(base, store_on_reconnect, st);
    if (store_copy_opts(st, opts) != GW_OK || st->connect_timer == NULL ||
        st->reconnect_timer == NULL) {
        store_destroy(st);
        return NULL;
    }
    store_connect(st);
    return st;
}

/*
 * Free the client. The context is detached and freed (hiredis defers that
 * when we are inside one of its callbacks), commands sent to Redis complete
 * with STORE_ERR_CONNECTION and queued failures with STORE_ERR_UNAVAILABLE,
 * all before this returns. Those callbacks may issue new commands: they fail
 * UNAVAILABLE, still inside this call (so a callback that retries forever
 * would never let it return). A completion callback may itself call
 * store_free(); one called from inside store_free() must not.
 */
void
store_free(struct store *st)
{
    struct store_cmd_list lost = TAILQ_HEAD_INITIALIZER(lost);

    if (st == NULL) {
        return;
    }
    st->closing = 1;
    evtimer_del(st->reconnect_timer);
    store_lost(st, 1, "store freed", &lost);
    store_cmd_fail_list(&lost, STORE_ERR_CONNECTION);
    while (!TAILQ_EMPTY(&st->deferred)) {
        store_cmd_detach_all(&st->deferred, &lost);
        store_cmd_fail_list(&lost, STORE_ERR_UNAVAILABLE);
    }
    store_destroy(st);
}

int
store_is_connected(const struct store *st)
{
    return st != NULL && st->state == STORE_CONNECTED;
}

/*
 * Send one command (binary-safe argv; argvlen NULL means NUL-terminated).
 * Returns GW_OK and completes exactly once, later; GW_ERR (no completion)
 * only for invalid arguments or when out of memory.
 */
int
store_cmd_argv(struct store *st, int argc, const char **argv, const size_t *argvlen, store_cb cb,
               void *arg)
{
    struct store_cmd *cmd;

    if (st == NULL || argc <= 0 || argv == NULL) {
        return GW_ERR;
    }
    cmd = store_cmd_new(st, cb, arg);
    if (cmd == NULL) {
        return GW_ERR;
    }
    store_submit(st, cmd, argc, argv, argvlen);
    return GW_OK;
}

static void
store_sha1_hex(const char *data, size_t len, char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    unsigned int i;

    if (EVP_Digest(data, len, md, &mdlen, EVP_sha1(), NULL) != 1) {
        mdlen = 0;
    }
    for (i = 0; i < mdlen && i < STORE_SHA1_HEX_LEN / 2; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xf];
    }
    out[2 * i] = '\0';
}

/* Copy lua_source and compute its SHA-1. NULL on failure. */
struct store_script *
store_script_new(const char *lua_source)
{
    struct store_script *sc;

    if (lua_source == NULL) {
        return NULL;
    }
    sc = calloc(1, sizeof(*sc));
    if (sc == NULL) {
        return NULL;
    }
    sc->len = strlen(lua_source);
    sc->source = strdup(lua_source);
    store_sha1_hex(lua_source, sc->len, sc->sha);
    if (sc->source == NULL || strlen(sc->sha) != STORE_SHA1_HEX_LEN) {
        store_script_free(sc);
        return NULL;
    }
    return sc;
}

void
store_script_free(struct store_script *sc)
{
    if (sc == NULL) {
        return;
    }
    free(sc->source);
    free(sc);
}

/* The store's copy of a script's source, added on first use. */
static const struct store_source *
store_source_of(struct store *st, const struct store_script *sc)
{
    struct store_source *src;

    for (src = st->sources; src != NULL; src = src->next) {
        if (memcmp(src->sha, sc->sha, STORE_SHA1_HEX_LEN) == 0) {
            return src;
        }
    }
    if ((src = calloc(1, sizeof(*src))) == NULL || (src->source = malloc(sc->len + 1)) == NULL) {
        free(src);
        return NULL;
    }
    memcpy(src->sha, sc->sha, sizeof(src->sha));
    memcpy(src->source, sc->source, sc->len + 1);
    src->len = sc->len;
    src->next = st->sources;
    st->sources = src;
    return src;
}

static char *
store_put_len(char *p, char mark, size_t n)
{
    *p++ = mark;
    p += util_utoa(n, p);
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/*
 * EVALSHA sha nkeys args... in the protocol's own form, without printf:
 * hiredis's formatter spends a sprintf on every argument's length.
 */
static char *
store_format_evalsha(const char *sha, int nkeys, int nargs, const char **args,
                     const size_t *argslen, size_t *out_len, size_t *cap)
{
    char nk[24];
    int nklen = snprintf(nk, sizeof(nk), "%d", nkeys), i;
    size_t total = 16 + 3 * 32 + 7 + STORE_SHA1_HEX_LEN + (size_t)nklen;
    char *buf, *p;

    for (i = 0; i < nargs; i++) {
        total += 32 + (argslen != NULL ? argslen[i] : strlen(args[i]));
    }
    if ((buf = store_buf_get(total, cap)) == NULL) {
        return NULL;
    }
    p = store_put_len(buf, '*', (size_t)nargs + 3);
    p = store_put_len(p, '$', 7);
    memcpy(p, "EVALSHA\r\n", 9);
    p += 9;
    p = store_put_len(p, '$', STORE_SHA1_HEX_LEN);
    memcpy(p, sha, STORE_SHA1_HEX_LEN);
    p += STORE_SHA1_HEX_LEN;
    *p++ = '\r';
    *p++ = '\n';
    p = store_put_len(p, '$', (size_t)nklen);
    memcpy(p, nk, (size_t)nklen);
    p += nklen;
    *p++ = '\r';
    *p++ = '\n';
    for (i = 0; i < nargs; i++) {
        size_t len = argslen != NULL ? argslen[i] : strlen(args[i]);
        p = store_put_len(p, '$', len);
        memcpy(p, args[i], len);
        p += len;
        *p++ = '\r';
        *p++ = '\n';
    }
    *out_len = (size_t)(p - buf);
    return buf;
}

int
store_eval(struct store *st, const struct store_script *sc, int nkeys, int nargs, const char **args,
           const size_t *argslen, store_cb cb, void *arg)
{
    struct store_cmd *cmd;

    if (st == NULL || sc == NULL || nkeys < 0 || nargs < nkeys || (nargs > 0 && args == NULL)) {
        return GW_ERR;
    }
    if ((cmd = store_cmd_new(st, cb, arg)) == NULL) {
        return GW_ERR;
    }
    if (st->state != STORE_CONNECTED || st->closing) {
        store_cmd_defer(st, cmd);
        return GW_OK;
    }
    cmd->eval_src = store_source_of(st, sc);
    cmd->eval_cmd = cmd->eval_src != NULL
                        ? store_format_evalsha(sc->sha, nkeys, nargs, args, argslen,
                                               &cmd->eval_len, &cmd->eval_cap)
                        : NULL;
    if (cmd->eval_cmd == NULL) {
        event_free(cmd->timer);
        free(cmd);
        return GW_ERR;
    }
    if (redisAsyncFormattedCommand(st->ac, store_on_reply, cmd, cmd->eval_cmd, cmd->eval_len) !=
        REDIS_OK) {
        store_cmd_defer(st, cmd);
        return GW_OK;
    }
    store_track(st, cmd);
    return GW_OK;
}
