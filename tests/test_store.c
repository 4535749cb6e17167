/*
 * test_store.c: store.c against a real redis-server (tests/helpers/
 * redis_fixture.c): round trips, binary safety, error replies, the
 * UNAVAILABLE/TIMEOUT/CONNECTION paths, reconnect with backoff after kill,
 * pause and refused connects, scripts and the NOSCRIPT retry, AUTH and
 * SELECT, and store_free() with commands pending. Every completion is
 * counted, so each test also proves the exactly-once contract. Every loop
 * runs under a deadline, so no test can hang.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "cglog.h"
#include "gw.h"
#include "store.h"
#include "helpers/redis_fixture.h"

/*
 * criterion ignores what LeakSanitizer reports when a test process exits,
 * so under ASan each test runs a leak check of its own in teardown.
 */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK() __lsan_do_recoverable_leak_check()
#else
#define LEAK_CHECK() 0
#endif

#define MAX_ARGS 16

/*
 * One timeout for every test: criterion 2.4.1 (its BoxFort timeout list)
 * leaks a 48-byte timeout request in the runner when parallel tests carry
 * different .timeout values, and LeakSanitizer then fails the whole binary.
 */
#define TEST_TIMEOUT_S 15

struct result {
    int calls;             /* completions seen: must end at exactly 1 */
    enum store_result res; /* last result */
    int type;              /* reply type, or -1 without a reply */
    long long integer;     /* reply integer */
    char str[512];         /* reply string (truncated) */
    size_t len;            /* its full length */
};

static struct event_base *base;
static struct redis_fixture rf;
static struct store *st;
static int ever_connected;

static void
setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    cglog_set_level(getenv("CG_TEST_DEBUG") != NULL ? CGLOG_DEBUG : CGLOG_ERROR);
    memset(&rf, 0, sizeof(rf));
    base = event_base_new();
    cr_assert_not_null(base);
    st = NULL;
    ever_connected = 0;
}

static void
teardown(void)
{
    store_free(st);
    st = NULL;
    if (rf.dir[0] != '\0') {
        redis_fixture_stop(&rf);
    }
    event_base_free(base);
    base = NULL;
    if (LEAK_CHECK() != 0) {
        abort(); /* an assertion in .fini would not fail the test */
    }
}

static void
start_redis(void)
{
    if (redis_fixture_start(&rf) != 0) {
        cr_skip_test("redis-server could not be started");
    }
}

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
    if (store_is_connected(st)) {
        ever_connected = 1;
    }
}

/* Run the loop until cond(arg) or timeout_ms; a 10 ms tick bounds each pass. */
static int
run_until(int (*cond)(void *), void *arg, int timeout_ms)
{
    struct timeval tv = {0, 10 * 1000};
    long long deadline = now_ms() + timeout_ms;
    struct event *tick;

    tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    event_add(tick, &tv);
    while (!cond(arg) && now_ms() < deadline) {
        event_base_loop(base, EVLOOP_ONCE);
    }
    event_free(tick);
    return cond(arg);
}

static int
cond_never(void *arg)
{
    return 0;
}

static int
cond_connected(void *arg)
{
    return store_is_connected(arg);
}

static int
cond_disconnected(void *arg)
{
    return !store_is_connected(arg);
}

static int
cond_called(void *arg)
{
    const struct result *r = arg;

    return r->calls > 0;
}

static void
run_for(int ms)
{
    run_until(cond_never, NULL, ms);
}

static void
on_result(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct result *r = arg;

    r->calls++;
    r->res = res;
    r->type = reply != NULL ? reply->type : -1;
    if (reply == NULL) {
        return;
    }
    r->integer = reply->integer;
    r->len = reply->len;
    if (reply->str != NULL) {
        memcpy(r->str, reply->str, reply->len < sizeof(r->str) ? reply->len : sizeof(r->str) - 1);
    }
}

static void
result_init(struct result *r)
{
    memset(r, 0, sizeof(*r));
    r->type = -2;
}

/* Send a NULL-terminated list of words; assert it was accepted. */
static void
send_words(struct result *r, ...)
{
    const char *argv[MAX_ARGS];
    const char *w;
    va_list ap;
    int argc = 0;

    result_init(r);
    va_start(ap, r);
    while ((w = va_arg(ap, const char *)) != NULL && argc < MAX_ARGS) {
        argv[argc++] = w;
    }
    va_end(ap);
    cr_assert_eq(store_cmd_argv(st, argc, argv, NULL, on_result, r), GW_OK);
}

/* Send and wait for the one completion. */
static void
await(struct result *r, int timeout_ms)
{
    cr_assert(run_until(cond_called, r, timeout_ms), "no completion within %d ms", timeout_ms);
    cr_assert_eq(r->calls, 1);
}

static struct store_opts
tcp_opts(void)
{
    struct store_opts o;

    memset(&o, 0, sizeof(o));
    o.host = "127.0.0.1";
    o.port = rf.port;
    o.connect_timeout_ms = 500;
    o.command_timeout_ms = 1000;
    o.backoff_min_ms = 20;
    o.backoff_max_ms = 200;
    return o;
}

static void
open_store(const struct store_opts *o)
{
    st = store_new(base, o);
    cr_assert_not_null(st);
}

static void
connect_store(const struct store_opts *o)
{
    open_store(o);
    cr_assert(run_until(cond_connected, st, 3000), "store did not connect");
}

/* SET key value and expect +OK. */
static void
set_ok(const char *key, const char *value)
{
    struct result r;

    send_words(&r, "SET", key, value, NULL);
    await(&r, 2000);
    cr_assert_eq(r.res, STORE_OK, "SET: %s", store_result_text[r.res]);
    cr_assert_eq(r.type, REDIS_REPLY_STATUS);
    cr_assert_str_eq(r.str, "OK");
}

/* Keep trying SET until it succeeds: the store recovers on its own. */
static int
set_eventually(int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    struct result r;

    while (now_ms() < deadline) {
        send_words(&r, "SET", "k", "again", NULL);
        cr_assert(run_until(cond_called, &r, 3000));
        cr_assert_eq(r.calls, 1);
        if (r.res == STORE_OK) {
            return 1;
        }
        run_for(50);
    }
    return 0;
}

Test(store, result_text_and_edges, .init = setup, .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
    struct store_opts o;
    int i;

    for (i = 0; i < STORE_RESULT_MAX; i++) {
        cr_assert_not_null(store_result_text[i]);
    }
    cr_assert_str_eq(store_result_text[STORE_ERR_TIMEOUT], "timeout");
    memset(&o, 0, sizeof(o));
    cr_assert_null(store_new(base, &o), "neither host nor unix socket");
    cr_assert_null(store_script_new(NULL));
    store_free(NULL);
    store_script_free(NULL);
    cr_assert_eq(store_is_connected(NULL), 0);
}

Test(store, set_get_roundtrip, .init = setup, .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
    struct store_opts o;
    struct result r;

    start_redis();
    o = tcp_opts();
    connect_store(&o);
    set_ok("greeting", "hello");
    send_words(&r, "GET", "greeting", NULL);
    await(&r, 2000);
    cr_assert_eq(r.res, STORE_OK);
    cr_assert_eq(r.type, REDIS_REPLY_STRING);
    cr_assert_str_eq(r.str, "hello");
    send_words(&r, "GET", "missing", NULL);
    await(&r, 2000);
    cr_assert_eq(r.res, STORE_OK);
    cr_assert_eq(r.type, REDIS_REPLY_NIL);
}

Test(store, unix_socket_roundtrip, .init = setup, .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
    struct store_opts o;
    struct result r;

    start_redis();
    o = tcp_opts();
    o.host = NULL;
    o.unix_path = rf.unix_path;
    connect_store(&o);
    set_ok("k", "over-unix");
    send_words(&r, "GET", "k", NULL);
    await(&r, 2000);
    cr_assert_str_eq(r.str, "over-unix");
}

Test(store, binary_safe_argv, .init = setup, .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
    static const char key[] = "bin\0key";
    static const char value[] = "a\0b\r\n$3\r\n";
    const char *argv[3] = {"SET", key, value};
    size_t lens[3] = {3, sizeof(key) - 1, sizeof(value) - 1};
    struct store_opts o;
    struct redisReply *rep;
    struct result r;

    start_redis();
    o = tcp_opts();
    connect_store(&o);
    result_init(&r);
    cr_assert_eq(store_cmd_argv(st, 3, argv, lens, on_result, &r), GW_OK);
    await(&r, 2000);
    cr_assert_eq(r.res, STORE_OK);
    argv[0] = "GET";
    lens[0] = 3;
    result_init(&r);
    cr_assert_eq(store_cmd_argv(st, 2, argv, lens, on_result, &r), GW_OK);
    await(&r, 2000);
    cr_assert_eq(r.type, REDIS_REPLY_STRING);
    cr_assert_eq(r.len, sizeof(value) - 1);
    cr_assert_eq(memcmp(r.str, value, sizeof(value) - 1), 0);
    rep = redis_fixture_cmd(&rf, "STRLEN %b", key, sizeof(key) - 1);
    cr_assert_not_null(rep);
    cr_assert_eq(rep->integer, (long long)sizeof(value) - 1);
    freeReplyObject(rep);
}

Test(store, error_reply, .init = setup, .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
    struct store_opts o;
    struct result r;

    start_redis();
    o = tcp_opts();
    connect_store(&o);
    send_words(&r, "NOSUCHCOMMAND", "x", NULL);
    await(&r, 2000);
    cr_assert_eq(r.res, STORE_ERR_REPLY);
    cr_assert_eq(r.type, REDIS_REPLY_ERROR);
    cr_assert(strstr(r.str, "unknown command") != NULL, "%s", r.str);
    set_ok("s", "text");
    send_words(&r, "INCR", "s", NULL);
    await(&r, 2000);
    cr_assert_eq(r.res, STORE_ERR_REPLY);
    /* An error reply leaves the connection up. */
    cr_assert(store_is_connected(st));
    send_words(&r, "PING", NULL);
    await(&r, 2000);
    cr_assert_eq(r.res, STORE_OK);
    cr_assert_str_eq(r.str, "PONG");
}

Test(store, unavailable_before_connect_is_deferred, .init = setup, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
    struct store_opts o;
    struct result r;

    start_redis();
    o = tcp_opts();
    open_store(&o);
    cr_assert_not(store_is_connected(st));
    send_words(&r, "PING", NULL);
    cr_assert_eq(r.calls, 0, "completed before store_cmd_argv returned");
    await(&r, 1000);
    cr_assert_eq(r.res, STORE_ERR_UNAVAILABLE);
    cr_assert_eq(r.type, -1);
    run_for(100);
    cr_assert_eq(r.calls, 1);
}

Test(store, auth_and_select, .init = setup, .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
    struct redisReply *rep;
    struct store_opts o;
    struct result r;

    start_redis();
    rep = redis_fixture_cmd(&rf, "CONFIG SET requirepass %s", "s3cret");
    cr_assert_not_null(rep);
    cr_assert_eq(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    o = tcp_opts();
    o.password = "s3cret";
    o.db = 3;
    connect_store(&o);
    send_words(&r, "CLIENT", "INFO", NULL);
    await(&r, 2000);
    cr_assert_eq(r.res, STORE_OK);
    cr_assert(strstr(r.str, " db=3 ") != NULL, "%s", r.str);
}

Test(store, auth_wrong_password_never_connects, .init = setup, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
    struct redisReply *rep;
    struct store_opts o;
    struct result r;

    start_redis();
    rep = redis_fixture_cmd(&rf, "CONFIG SET requirepass %s", "x");
    cr_assert_not_null(rep);
    freeReplyObject(rep);
    o = tcp_opts();
    o.password = "wrong";
    open_store(&o);
    run_for(800);
    cr_assert_not(ever_connected, "connected with a wrong password");
    send_words(&r, "PING", NULL);
    await(&r, 1000);
    cr_assert_eq(r.res, STORE_ERR_UNAVAILABLE);
    store_free(st);
    /* No password at all: PING answers NOAUTH, also a failed handshake. */
    o.password = NULL;
    open_store(&o);
    run_for(500);
    cr_assert_not(ever_connected, "connected without the password");
}

Test(store, killed_redis_fails_then_reconnects, .init = setup, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
    struct store_opts o;
    struct result pending, r;

    start_redis();
    o = tcp_opts();
    o.command_timeout_ms = 5000;
    connect_store(&o);
    set_ok("a", "1");
    /* Paused, the command stays pending; then the server dies under it. */
    redis_fixture_pause(&rf);
    send_words(&pending, "GET", "a", NULL);
    run_for(50);
    cr_assert_eq(pending.calls, 0);
    proc_stop(&rf.proc, SIGKILL, 2000);
    await(&pending, 2000);
    cr_assert_eq(pending.res, STORE_ERR_CONNECTION);
    cr_assert_not(store_is_connected(st));
    send_words(&r, "GET", "a", NULL);
    cr_assert_eq(r.calls, 0);
    await(&r, 1000);
    cr_assert_eq(r.res, STORE_ERR_UNAVAILABLE);
    run_for(300); /* a few refused reconnects */
    cr_assert_not(store_is_connected(st));
    cr_assert_eq(redis_fixture_restart(&rf), 0);
    cr_assert(run_until(cond_connected, st, 5000), "no reconnect after restart");
    set_ok("a", "2");
    run_for(100);
    cr_assert_eq(pending.calls, 1);
    cr_assert_eq(r.calls, 1);
}

Test(store, paused_redis_times_out_then_recovers, .init = setup, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
    struct store_opts o;
    struct result slow, behind;
    long long t0, elapsed;

    start_redis();
    o = tcp_opts();
    o.command_timeout_ms = 300;
    connect_store(&o);
    set_ok("p", "1");
    redis_fixture_pause(&rf);
    t0 = now_ms();
    send_words(&slow, "GET", "p", NULL);
    send_words(&behind, "GET", "p", NULL);
    await(&slow, 3000);
    elapsed = now_ms() - t0;
    cr_assert_eq(slow.res, STORE_ERR_TIMEOUT);
    cr_assert(elapsed >= 250 && elapsed < 1500, "timed out after %lld ms", elapsed);
    /* The connection was dropped: what was queued behind fails at once. */
    cr_assert_eq(behind.calls, 1);
    cr_assert_eq(behind.res, STORE_ERR_CONNECTION);
    cr_assert_not(store_is_connected(st));
    /* A paused server accepts TCP but never answers PING: still down. */
    run_for(700);
    cr_assert_not(store_is_connected(st));
    redis_fixture_resume(&rf);
    cr_assert(set_eventually(5000), "store did not recover after resume");
    cr_assert(store_is_connected(st));
    cr_assert_eq(slow.calls, 1);
    cr_assert_eq(behind.calls, 1);
}

static void
eval_incr(const struct store_script *sc, struct result *r, const char *key, const char *by)
{
    const char *args[2] = {key, by};

    result_init(r);
    cr_assert_eq(store_eval(st, sc, 1, 2, args, NULL, on_result, r), GW_OK);
    cr_assert_eq(r->calls, 0);
    await(r, 2000);
}

Test(store, eval_and_noscript_fallback, .init = setup, .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
    struct store_script *sc, *bad;
    struct redisReply *rep;
    struct store_opts o;
    struct result r;

    start_redis();
    o = tcp_opts();
    connect_store(&o);
    sc = store_script_new("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    cr_assert_not_null(sc);
    /* Never loaded: NOSCRIPT, then SCRIPT LOAD and the EVALSHA again, one completion. */
    eval_incr(sc, &r, "counter", "5");
    cr_assert_eq(r.res, STORE_OK, "%s: %s", store_result_text[r.res], r.str);
    cr_assert_eq(r.integer, 5);
    /* Cached now: EVALSHA alone. */
    eval_incr(sc, &r, "counter", "2");
    cr_assert_eq(r.integer, 7);
    rep = redis_fixture_cmd(&rf, "SCRIPT FLUSH");
    cr_assert_not_null(rep);
    freeReplyObject(rep);
    eval_incr(sc, &r, "counter", "3");
    cr_assert_eq(r.res, STORE_OK);
    cr_assert_eq(r.integer, 10);
    run_for(100);
    cr_assert_eq(r.calls, 1);
    /* A script that fails is a plain error reply. */
    bad = store_script_new("return redis.error_reply('boom')");
    cr_assert_not_null(bad);
    eval_incr(bad, &r, "counter", "1");
    cr_assert_eq(r.res, STORE_ERR_REPLY);
    cr_assert(strstr(r.str, "boom") != NULL, "%s", r.str);
    store_script_free(bad);
    store_script_free(sc);
}

struct reissue {
    struct result first;  /* the pending command's own completion */
    struct result second; /* the command its callback issued */
};

static void
on_reissue(enum store_result res, const struct redisReply *reply, void *arg)
{
    struct reissue *ri = arg;
    const char *argv[1] = {"PING"};

    on_result(res, reply, &ri->first);
    result_init(&ri->second);
    store_cmd_argv(st, 1, argv, NULL, on_result, &ri->second);
}

Test(store, free_with_pending_completes_each_once, .init = setup, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
    struct store_opts o;
    struct result r[5];
    struct reissue ri;
    const char *argv[1] = {"PING"};
    int i;

    start_redis();
    o = tcp_opts();
    o.command_timeout_ms = 5000;
    connect_store(&o);
    redis_fixture_pause(&rf);
    for (i = 0; i < 5; i++) {
        send_words(&r[i], "GET", "x", NULL);
    }
    memset(&ri, 0, sizeof(ri));
    cr_assert_eq(store_cmd_argv(st, 1, argv, NULL, on_reissue, &ri), GW_OK);
    run_for(50);
    for (i = 0; i < 5; i++) {
        cr_assert_eq(r[i].calls, 0);
    }
    store_free(st);
    /* st still points at the freed store: on_reissue used it. */
    st = NULL;
    for (i = 0; i < 5; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].res, STORE_ERR_CONNECTION);
    }
    cr_assert_eq(ri.first.calls, 1);
    cr_assert_eq(ri.first.res, STORE_ERR_CONNECTION);
    cr_assert_eq(ri.second.calls, 1, "command issued during store_free not completed");
    cr_assert_eq(ri.second.res, STORE_ERR_UNAVAILABLE);
    redis_fixture_resume(&rf);
    run_for(200);
    for (i = 0; i < 5; i++) {
        cr_assert_eq(r[i].calls, 1);
    }
    cr_assert_eq(ri.second.calls, 1);
}

static void
on_free_store(enum store_result res, const struct redisReply *reply, void *arg)
{
    on_result(res, reply, arg);
    store_free(st);
    st = NULL;
}

Test(store, free_from_inside_a_callback, .init = setup, .fini = teardown, .timeout = TEST_TIMEOUT_S)
{
    struct store_opts o;
    struct result first, b, c;

    start_redis();
    o = tcp_opts();
    connect_store(&o);
    {
        const char *argv[1] = {"PING"};

        result_init(&first);
        cr_assert_eq(store_cmd_argv(st, 1, argv, NULL, on_free_store, &first), GW_OK);
    }
    send_words(&b, "PING", NULL);
    send_words(&c, "PING", NULL);
    await(&first, 2000);
    cr_assert_eq(first.res, STORE_OK);
    cr_assert_null(st);
    cr_assert_eq(b.calls, 1);
    cr_assert_eq(b.res, STORE_ERR_CONNECTION);
    cr_assert_eq(c.calls, 1);
    cr_assert_eq(c.res, STORE_ERR_CONNECTION);
    run_for(100);
    cr_assert_eq(first.calls + b.calls + c.calls, 3);
}

Test(store, refused_port_then_redis_appears, .init = setup, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
    struct store_opts o;
    struct result r;

    start_redis();
    redis_fixture_kill(&rf); /* keeps the port: nothing listens there now */
    o = tcp_opts();
    open_store(&o);
    run_for(400);
    cr_assert_not(ever_connected);
    send_words(&r, "PING", NULL);
    cr_assert_eq(r.calls, 0);
    await(&r, 1000);
    cr_assert_eq(r.res, STORE_ERR_UNAVAILABLE);
    cr_assert_eq(redis_fixture_restart(&rf), 0);
    cr_assert(run_until(cond_connected, st, 5000), "no connect once redis listens");
    set_ok("late", "yes");
}

Test(store, server_side_close_reconnects, .init = setup, .fini = teardown,
     .timeout = TEST_TIMEOUT_S)
{
    struct redisReply *rep;
    struct store_opts o;

    start_redis();
    o = tcp_opts();
    connect_store(&o);
    /* Kill our connection from the server side, with nothing pending. */
    rep = redis_fixture_cmd(&rf, "CLIENT KILL TYPE normal");
    cr_assert_not_null(rep);
    freeReplyObject(rep);
    cr_assert(run_until(cond_disconnected, st, 2000), "disconnect not noticed");
    cr_assert(run_until(cond_connected, st, 3000), "no reconnect");
    set_ok("after", "kill");
}
