/*
 * workers.c: the --workers supervisor (workers.h). It has no event loop: it
 * blocks the signals it cares about and takes them one at a time with
 * sigtimedwait(), whose timeout is the next pending restart. So it never
 * runs code in signal context and needs no self-pipe.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <jansson.h>

#include "cglog.h"
#include "util.h"
#include "workers.h"

/* A worker that exits within this long of its start died young. */
#define WORKERS_YOUNG_US (5 * 1000 * 1000LL)
/* Restart delay: this, doubled per young death in a row, at most the max. */
#define WORKERS_BACKOFF_MIN_US (100 * 1000LL)
#define WORKERS_BACKOFF_MAX_US (10 * 1000 * 1000LL)
/* This many young deaths in a row of one slot: the supervisor gives up
 * (a port taken, a configuration that no longer loads). */
#define WORKERS_GIVE_UP 5

struct workers_slot {
    pid_t pid;               /* running worker, or 0 */
    int young_deaths;        /* consecutive exits soon after start */
    int64_t started_us;
    int64_t restart_at_us;   /* pid == 0: start it again then (0: never) */
};

struct workers {
    struct workers_slot *slots;
    int n;
    int alive;
    int draining;            /* SIGTERM/SIGINT seen, or given up: no restarts */
    int failed;              /* the exit status will be 1 */
    sigset_t waited;         /* the signals taken with sigtimedwait */
    sigset_t old;            /* the mask before; workers get it back */
};

static void
workers_forward(struct workers *w, int sig)
{
    int i;

    for (i = 0; i < w->n; i++) {
        if (w->slots[i].pid > 0) {
            kill(w->slots[i].pid, sig);
        }
    }
}

/*
 * Fork slot i. Returns 1 in the new worker, 0 in the supervisor (a failed
 * fork is retried later).
 */
static int
workers_spawn(struct workers *w, int i)
{
    struct workers_slot *s = &w->slots[i];
    pid_t parent = getpid(), pid;
    sigset_t mask;

    fflush(NULL); /* nothing buffered may be written twice */
    pid = fork();
    if (pid < 0) {
        cglog_error("worker_fork_failed", "{s:i, s:s}", "worker", i, "error", strerror(errno));
        s->restart_at_us = util_mono_us() + WORKERS_BACKOFF_MAX_US;
        return 0;
    }
    if (pid == 0) {
        /* Back to the original mask, except that drain and reload stay
         * blocked (pending, not lost) until the gateway's own handlers are
         * in place: main calls workers_signals_ready(). */
        mask = w->old;
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigdelset(&mask, SIGCHLD);
        sigprocmask(SIG_SETMASK, &mask, NULL);
#ifdef __linux__
        /* A supervisor killed outright must not leave its workers behind. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) {
            _exit(1);
        }
#endif
        return 1;
    }
    s->pid = pid;
    s->started_us = util_mono_us();
    s->restart_at_us = 0;
    w->alive++;
    cglog_info("worker_started", "{s:i, s:i}", "worker", i, "pid", (int)pid);
    return 0;
}

static void
workers_on_exit(struct workers *w, pid_t pid, int st)
{
    int64_t now = util_mono_us(), delay;
    struct workers_slot *s = NULL;
    int i, clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;

    for (i = 0; i < w->n; i++) {
        if (w->slots[i].pid == pid) {
            s = &w->slots[i];
            break;
        }
    }
    if (s == NULL) {
        return;
    }
    s->pid = 0;
    w->alive--;
    cglog_write(clean ? CGLOG_INFO : CGLOG_WARN, "worker_exited", "{s:i, s:i, s:i, s:i, s:I}",
                "worker", i, "pid", (int)pid, "status", WIFEXITED(st) ? WEXITSTATUS(st) : -1,
                "signal", WIFSIGNALED(st) ? WTERMSIG(st) : 0, "lived_ms",
                (json_int_t)((now - s->started_us) / 1000));
    if (w->draining) {
        if (!clean) {
            w->failed = 1;
        }
        return;
    }
    s->young_deaths = now - s->started_us < WORKERS_YOUNG_US ? s->young_deaths + 1 : 0;
    if (s->young_deaths >= WORKERS_GIVE_UP) {
        cglog_error("workers_give_up", "{s:i, s:i}", "worker", i, "deaths", s->young_deaths);
        w->draining = 1;
        w->failed = 1;
        workers_forward(w, SIGTERM);
        return;
    }
    /* 100 ms after a worker that lived, then 100, 200, 400... ms per young death in a row. */
    delay = WORKERS_BACKOFF_MIN_US << (s->young_deaths > 0 ? s->young_deaths - 1 : 0);
    if (delay > WORKERS_BACKOFF_MAX_US) {
        delay = WORKERS_BACKOFF_MAX_US;
    }
    s->restart_at_us = now + delay;
}

/* Start what is due; returns 1 in a new worker (its slot in *index). */
static int
workers_start_due(struct workers *w, int *index)
{
    int64_t now = util_mono_us();
    int i;

    for (i = 0; i < w->n && !w->draining; i++) {
        struct workers_slot *s = &w->slots[i];
        if (s->pid == 0 && s->restart_at_us > 0 && s->restart_at_us <= now &&
            workers_spawn(w, i)) {
            *index = i;
            return 1;
        }
    }
    return 0;
}

/* How long to wait for a signal: until the next restart, at most 1 s. */
static struct timespec
workers_wait_time(const struct workers *w)
{
    int64_t now = util_mono_us(), next = now + 1000 * 1000;
    struct timespec ts;
    int i;

    for (i = 0; i < w->n && !w->draining; i++) {
        const struct workers_slot *s = &w->slots[i];
        if (s->pid == 0 && s->restart_at_us > 0 && s->restart_at_us < next) {
            next = s->restart_at_us;
        }
    }
    if (next < now) {
        next = now;
    }
    ts.tv_sec = (time_t)((next - now) / 1000000);
    ts.tv_nsec = (long)((next - now) % 1000000) * 1000;
    return ts;
}

int
workers_run(int n, int *index, int *status)
{
    struct workers w;
    struct timespec ts;
    siginfo_t info;
    int i, sig, st;
    pid_t pid;

    memset(&w, 0, sizeof(w));
    w.n = n;
    w.slots = calloc((size_t)n, sizeof(*w.slots));
    if (w.slots == NULL) {
        *status = 1;
        return 0;
    }
    sigemptyset(&w.waited);
    sigaddset(&w.waited, SIGTERM);
    sigaddset(&w.waited, SIGINT);
    sigaddset(&w.waited, SIGHUP);
    sigaddset(&w.waited, SIGCHLD);
    /* Blocked signals stay pending (a blocked SIGCHLD is not discarded even
     * though its default action is to ignore it) until sigtimedwait takes them. */
    sigprocmask(SIG_BLOCK, &w.waited, &w.old);
    cglog_info("supervisor_started", "{s:i, s:i}", "workers", n, "pid", (int)getpid());
    for (i = 0; i < n; i++) {
        w.slots[i].restart_at_us = 1;
    }
    for (;;) {
        if (workers_start_due(&w, index)) {
            free(w.slots);
            return 1;
        }
        if (w.draining && w.alive == 0) {
            break;
        }
        ts = workers_wait_time(&w);
        sig = sigtimedwait(&w.waited, &info, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            if (!w.draining) {
                cglog_info("supervisor_draining", "{s:i}", "workers", w.alive);
            }
            w.draining = 1;
            /* Workers drain on SIGTERM; a second one is harmless. */
            workers_forward(&w, SIGTERM);
        } else if (sig == SIGHUP && !w.draining) {
            cglog_info("supervisor_reload", "{s:i}", "workers", w.alive);
            workers_forward(&w, SIGHUP);
        }
        while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
            workers_on_exit(&w, pid, st);
        }
    }
    sigprocmask(SIG_SETMASK, &w.old, NULL);
    free(w.slots);
    cglog_info("supervisor_stopped", "{s:i}", "status", w.failed);
    *status = w.failed;
    return 0;
}

void
workers_signals_ready(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
}
