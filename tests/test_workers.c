/*
 * test_workers.c: callgate --workers 2, as real processes on loopback: both
 * workers serve (their log lines name them), new connections reach both,
 * SIGHUP and SIGTERM sent to the supervisor reach both, a killed worker is
 * replaced, the supervisor exits 0 after the drain and gives up (exit 1)
 * when its workers cannot listen.
 *
 * Every test starts its own gateway, so the suite has only a .fini; the same
 * .timeout applies to every test.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "helpers/gwtest.h"

#define CALL_BODY "{\"to\": \"+91 98765-43210\", \"agent\": \"agent.017\", \"reference\": \"w-1\"}"
#define MAX_PIDS 16

static struct gwtest gw;
static int gw_started;

static void
start(int workers)
{
    struct gwtest_opts o = {.workers = workers};

    gw_started = 1;
    gwtest_start(&gw, &o);
}

static void
teardown(void)
{
    if (gw_started) {
        gwtest_stop(&gw);
    }
}

TestSuite(workers, .fini = teardown, .timeout = 60);

/* ---- the gateway's log ----------------------------------------------------- */

/*
 * The distinct pids of log lines with this event (and, when route is not
 * NULL, this route), into pids[]. Returns how many.
 */
static int
log_pids(const char *event, const char *route, long *pids, int max)
{
    FILE *f = fopen(gw.gw_log, "r");
    char line[8192];
    int n = 0, i;

    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        json_t *o = json_loads(line, 0, NULL);
        const char *ev = o != NULL ? jstr(o, "event") : NULL;
        long pid = o != NULL ? (long)json_integer_value(json_object_get(o, "pid")) : 0;

        if (ev != NULL && strcmp(ev, event) == 0 && pid > 0 &&
            (route == NULL || (jstr(o, "route") != NULL && strcmp(jstr(o, "route"), route) == 0))) {
            for (i = 0; i < n && pids[i] != pid; i++) {
            }
            if (i == n && n < max) {
                pids[n++] = pid;
            }
        }
        json_decref(o);
    }
    fclose(f);
    return n;
}

/* Wait until at least want distinct pids logged event; returns the count. */
static int
wait_log_pids(const char *event, long *pids, int want, int timeout_ms)
{
    int n = 0, waited;

    for (waited = 0; waited <= timeout_ms; waited += 50) {
        n = log_pids(event, NULL, pids, MAX_PIDS);
        if (n >= want) {
            break;
        }
        gwtest_sleep_ms(50);
    }
    return n;
}

/* n GET /healthz, each on a new connection (http_do makes a new handle). */
static void
healthz_many(int n)
{
    struct http_resp r;
    int i;

    for (i = 0; i < n; i++) {
        cr_assert_eq(gw_get(&gw, NULL, "/healthz", &r), 0);
        cr_assert_eq(r.status, 200);
        http_resp_free(&r);
    }
}

/* The current workers: pids of "listening" lines whose process is alive. */
static int
live_workers(long *out)
{
    long pids[MAX_PIDS];
    int n = log_pids("listening", NULL, pids, MAX_PIDS), i, k = 0;

    for (i = 0; i < n; i++) {
        if (kill((pid_t)pids[i], 0) == 0) {
            out[k++] = pids[i];
        }
    }
    return k;
}

/* ---- tests ------------------------------------------------------------------ */

Test(workers, both_serve_and_share_connections)
{
    long pids[MAX_PIDS];
    struct http_resp r;
    int i;

    start(2);
    cr_assert_eq(wait_log_pids("listening", pids, 2, 10000), 2, "two workers listen");
    for (i = 0; i < 2; i++) {
        cr_assert_neq(pids[i], (long)gw.gw.pid, "the supervisor serves nothing itself");
    }
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, CALL_BODY, &r), 0);
    cr_assert_eq(r.status, 201, "a call is placed: %s", r.body);
    http_resp_free(&r);
    /* SO_REUSEPORT hashes each new connection to one socket: over 60 of
     * them, both workers get some (all on one: odds 2^-59). */
    healthz_many(60);
    gwtest_sleep_ms(200);
    cr_assert_eq(log_pids("request", "GET /healthz", pids, MAX_PIDS), 2,
                 "requests were answered by both workers");
}

Test(workers, sighup_reaches_every_worker)
{
    long pids[MAX_PIDS];

    start(2);
    cr_assert_eq(wait_log_pids("listening", pids, 2, 10000), 2);
    cr_assert_eq(kill(gw.gw.pid, SIGHUP), 0);
    cr_assert_eq(wait_log_pids("reloaded", pids, 2, 10000), 2, "both workers reloaded");
    cr_assert(gwtest_wait_ready(&gw, 5000));
}

Test(workers, killed_worker_is_replaced)
{
    long before[MAX_PIDS], after[MAX_PIDS];
    int n, waited, i;

    start(2);
    cr_assert_eq(wait_log_pids("listening", before, 2, 10000), 2);
    cr_assert_eq(kill((pid_t)before[0], SIGKILL), 0);
    /* Two live workers again, neither the killed one (a zombie not yet
     * reaped still answers kill 0). */
    for (waited = 0; waited <= 10000; waited += 50) {
        n = live_workers(after);
        for (i = 0; i < n && after[i] != before[0]; i++) {
        }
        if (n == 2 && i == n) {
            break;
        }
        gwtest_sleep_ms(50);
    }
    cr_assert(n == 2 && i == n, "a new worker replaced the killed one");
    cr_assert(gwtest_wait_ready(&gw, 5000));
    healthz_many(20);
    /* .fini: SIGTERM, and the supervisor must still exit 0. */
}

Test(workers, sigterm_drains_every_worker_then_exits_0)
{
    long pids[MAX_PIDS];
    int status, i;

    start(2);
    cr_assert_eq(wait_log_pids("listening", pids, 2, 10000), 2);
    status = gwtest_gateway_stop(&gw, SIGTERM, 15000);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "supervisor status %d", status);
    cr_assert_eq(log_pids("drained", NULL, pids, MAX_PIDS), 2, "both workers drained");
    for (i = 0; i < 2; i++) {
        cr_assert(kill((pid_t)pids[i], 0) != 0 && errno == ESRCH, "worker %ld is gone", pids[i]);
    }
    /* .fini stops the rest (callgate is stopped already). */
}

Test(workers, gives_up_when_workers_cannot_listen)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t salen = sizeof(sa);
    char conf2[400], log2[400], addr[32];
    const char *argv[6];
    struct proc p = {0};
    json_t *c;
    int fd, status;

    start(2);
    /* A port held without SO_REUSEPORT: no worker can bind it. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(fd, 4), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &salen), 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sa.sin_port));
    c = json_load_file(gw.conf_path, 0, NULL);
    cr_assert_not_null(c);
    json_object_set_new(c, "listen", json_string(addr));
    json_object_del(c, "admin");
    snprintf(conf2, sizeof(conf2), "%s/taken.json", gw.dir);
    snprintf(log2, sizeof(log2), "%s/taken.log", gw.dir);
    cr_assert_eq(json_dump_file(c, conf2, 0), 0);
    json_decref(c);
    argv[0] = getenv("CG_CALLGATE") != NULL ? getenv("CG_CALLGATE") : CG_BUILDDIR "/src/callgate";
    argv[1] = "-c";
    argv[2] = conf2;
    argv[3] = "--workers";
    argv[4] = "2";
    argv[5] = NULL;
    cr_assert_eq(proc_start(&p, argv, NULL, log2), 0);
    /* Five young deaths of one slot: about 3 s of back-off plus start-ups. */
    status = -1;
    for (int waited = 0; waited < 30000; waited += 100) {
        if (waitpid(p.pid, &status, WNOHANG) == p.pid) {
            p.pid = 0;
            break;
        }
        gwtest_sleep_ms(100);
    }
    if (p.pid > 0) {
        status = proc_stop(&p, SIGKILL, 1000);
        status = -1;
    }
    close(fd);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 1)) {
        proc_dump_log(log2, 4000);
    }
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d", status);
}
