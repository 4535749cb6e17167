/*
 * redis_fixture.h: a real, throwaway redis-server for tests, on a free
 * loopback TCP port and a unix socket in its own temp directory, with
 * persistence off. It can be stopped, paused (SIGSTOP: Redis hangs) and
 * started again on the same port to test outages and recovery.
 */
#ifndef CG_TEST_REDIS_FIXTURE_H
#define CG_TEST_REDIS_FIXTURE_H

#include "helpers/proc.h"

struct redis_fixture {
    struct proc proc;
    int port;               /* TCP port on 127.0.0.1 */
    char dir[256];          /* temp dir (socket, log) */
    char unix_path[320];    /* unix socket path */
};

/*
 * Start redis-server (found on PATH or /usr/bin) and wait until it answers
 * PING. Returns 0, or -1 (then the caller should cr_skip or fail).
 */
int redis_fixture_start(struct redis_fixture *rf);

/* Stop it (SIGTERM, then SIGKILL) and remove its directory. */
void redis_fixture_stop(struct redis_fixture *rf);

/* Stop the server but keep port and directory, so it can be started again. */
void redis_fixture_kill(struct redis_fixture *rf);

/* Start it again on the same port and socket after redis_fixture_kill(). 0 or -1. */
int redis_fixture_restart(struct redis_fixture *rf);

/* SIGSTOP / SIGCONT the server: a Redis that accepts but never answers. */
void redis_fixture_pause(struct redis_fixture *rf);
void redis_fixture_resume(struct redis_fixture *rf);

/*
 * Run one command synchronously (hiredis blocking API, printf-style format
 * as redisCommand takes) and return the reply, or NULL. Caller frees the
 * reply with freeReplyObject().
 */
struct redisReply *redis_fixture_cmd(struct redis_fixture *rf, const char *fmt, ...);

#endif
