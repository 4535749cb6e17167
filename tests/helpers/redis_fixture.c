/*
 * redis_fixture.c: a throwaway redis-server per test, on a free loopback port
 * and a unix socket in its own temp directory, persistence off, its output
 * in <dir>/redis.log. See redis_fixture.h.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "helpers/redis_fixture.h"

#define RF_READY_MS 5000
#define RF_STOP_MS 3000
#define RF_START_TRIES 3

static long long
rf_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* redis-server from PATH, else /usr/bin/redis-server. 0 or -1. */
static int
rf_find_server(char *out, size_t outlen)
{
    const char *path = getenv("PATH");
    const char *p, *end;
    int n;

    for (p = path; p != NULL && *p != '\0'; p = *end ? end + 1 : end) {
        end = strchrnul(p, ':');
        n = snprintf(out, outlen, "%.*s/redis-server", (int)(end - p), p);
        if (end > p && n > 0 && (size_t)n < outlen && access(out, X_OK) == 0) {
            return 0;
        }
    }
    snprintf(out, outlen, "/usr/bin/redis-server");
    return access(out, X_OK) == 0 ? 0 : -1;
}

/* Blocking PING over TCP (unix_path NULL) or the unix socket: 1 on PONG. */
static int
rf_ping(int port, const char *unix_path)
{
    struct timeval tv = {0, 200 * 1000};
    redisContext *c;
    redisReply *r;
    int ok = 0;

    c = unix_path != NULL ? redisConnectUnixWithTimeout(unix_path, tv)
                          : redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c == NULL) {
        return 0;
    }
    if (c->err == 0 && redisSetTimeout(c, tv) == REDIS_OK) {
        r = redisCommand(c, "PING");
        ok = r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        if (r != NULL) {
            freeReplyObject(r);
        }
    }
    redisFree(c);
    return ok;
}

static int
rf_wait_ready(struct redis_fixture *rf)
{
    long long deadline = rf_now_ms() + RF_READY_MS;

    while (rf_now_ms() < deadline) {
        if (!proc_alive(&rf->proc)) {
            return -1;
        }
        /* The unix socket is ours alone; a PONG on the port could come from
         * another suite's server that took the port first (ours then exits). */
        if (rf_ping(0, rf->unix_path) && rf_ping(rf->port, NULL) && proc_alive(&rf->proc)) {
            return 0;
        }
        usleep(20 * 1000);
    }
    return -1;
}

/* Start redis-server on rf->port and rf->unix_path and wait for PONG. */
static int
rf_launch(struct redis_fixture *rf)
{
    char server[512], port[16], log[512];
    /* clang-format off */
    const char *argv[] = {
        server,
        "--port", port,
        "--bind", "127.0.0.1",
        "--unixsocket", rf->unix_path,
        "--unixsocketperm", "700",
        "--save", "",
        "--appendonly", "no",
        "--dir", rf->dir,
        "--daemonize", "no",
        "--logfile", "", /* stdout, which proc_start appends to redis.log */
        "--protected-mode", "no",
        NULL,
    };
    /* clang-format on */

    if (rf_find_server(server, sizeof(server)) != 0) {
        return -1;
    }
    snprintf(port, sizeof(port), "%d", rf->port);
    snprintf(log, sizeof(log), "%s/redis.log", rf->dir);
    if (proc_start(&rf->proc, argv, NULL, log) != 0) {
        return -1;
    }
    if (rf_wait_ready(rf) != 0) {
        proc_dump_log(log, 2048);
        proc_stop(&rf->proc, SIGKILL, RF_STOP_MS);
        return -1;
    }
    return 0;
}

int
redis_fixture_start(struct redis_fixture *rf)
{
    int i;

    memset(rf, 0, sizeof(*rf));
    if (proc_tmpdir(rf->dir, sizeof(rf->dir)) != 0) {
        return -1;
    }
    snprintf(rf->unix_path, sizeof(rf->unix_path), "%s/redis.sock", rf->dir);
    /* Another test may grab the free port first: try a few. */
    for (i = 0; i < RF_START_TRIES; i++) {
        rf->port = proc_free_port();
        if (rf->port > 0 && rf_launch(rf) == 0) {
            return 0;
        }
    }
    proc_rmdir(rf->dir);
    rf->dir[0] = '\0';
    return -1;
}

void
redis_fixture_kill(struct redis_fixture *rf)
{
    proc_stop(&rf->proc, SIGTERM, RF_STOP_MS);
}

void
redis_fixture_stop(struct redis_fixture *rf)
{
    redis_fixture_kill(rf);
    if (rf->dir[0] != '\0') {
        proc_rmdir(rf->dir);
        rf->dir[0] = '\0';
    }
}

int
redis_fixture_restart(struct redis_fixture *rf)
{
    if (rf->proc.pid > 0 || rf->port <= 0 || rf->dir[0] == '\0') {
        return -1;
    }
    return rf_launch(rf);
}

/* SIGSTOP, and wait until the kernel reports the child stopped. */
void
redis_fixture_pause(struct redis_fixture *rf)
{
    int status;

    if (rf->proc.pid <= 0) {
        return;
    }
    kill(rf->proc.pid, SIGSTOP);
    waitpid(rf->proc.pid, &status, WUNTRACED);
}

void
redis_fixture_resume(struct redis_fixture *rf)
{
    if (rf->proc.pid > 0) {
        kill(rf->proc.pid, SIGCONT);
    }
}

struct redisReply *
redis_fixture_cmd(struct redis_fixture *rf, const char *fmt, ...)
{
    struct timeval tv = {2, 0};
    redisContext *c;
    redisReply *r = NULL;
    va_list ap;

    c = redisConnectUnixWithTimeout(rf->unix_path, tv);
    if (c == NULL) {
        return NULL;
    }
    if (c->err == 0 && redisSetTimeout(c, tv) == REDIS_OK) {
        va_start(ap, fmt);
        r = redisvCommand(c, fmt, ap);
        va_end(ap);
    }
    redisFree(c);
    return r;
}
