/*
 * test_routing_gw.c: the routing table through the gateway: the admin API
 * (token, own listener, the table and its version, reload with a bad table
 * refused, reload under load), explain, and the strategies as placement
 * applies them (least_busy from in-flight counts kept in Redis).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>

#include "helpers/gwtest.h"

static struct gwtest gw;
static char routes_dir[256];

/* Write routes_dir/<name> with text. */
static void
write_rules(const char *name, const char *text)
{
    char path[400];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", routes_dir, name);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static void
start(int admin_listener, int call_ms)
{
    struct gwtest_opts o = {0};

    cr_assert_eq(proc_tmpdir(routes_dir, sizeof(routes_dir)), 0);
    write_rules("10-india.json",
                "{\"rules\": [{\"name\": \"india\", \"match\": {\"to_prefix\": [\"+91\"]},"
                " \"strategy\": \"least_busy\", \"vendors\": [\"clouddialer\", \"callerdesk\"]},"
                " {\"name\": \"default\", \"match\": {}, \"vendors\": [\"clouddialer\"]}]}");
    o.routes_dir = routes_dir;
    o.admin_listener = admin_listener;
    o.call_ms = call_ms;
    gwtest_start(&gw, &o);
}

static void
setup(void)
{
    start(0, 0);
}

static void
setup_own_listener(void)
{
    start(1, 0);
}

static void
setup_long_calls(void)
{
    start(0, 3000);
}

static void
teardown(void)
{
    gwtest_stop(&gw);
    proc_rmdir(routes_dir);
}

/* Each test names its own .init: criterion would run a suite-wide one as
 * well, and the gateway it started would never be stopped. */
TestSuite(routing_gw, .fini = teardown, .timeout = 90);

static const char *
readyz_version(char *buf, size_t len)
{
    struct http_resp r;

    cr_assert_eq(gw_get(&gw, NULL, "/readyz", &r), 0);
    snprintf(buf, len, "%s", jstr(r.json, "routes_version"));
    http_resp_free(&r);
    return buf;
}

Test(routing_gw, admin_needs_the_admin_token, .init = setup)
{
    struct http_resp r;
    char v[32];

    cr_assert_eq(gw_admin(&gw, NULL, "GET", "/admin/routes", NULL, &r), 0);
    assert_problem(&r, 401, "unauthorized");
    http_resp_free(&r);
    {
        /* A tenant key opens no admin endpoint. */
        static const char *const calls[][3] = {
            {"GET", "/admin/routes", NULL},
            {"POST", "/admin/routes/reload", ""},
            {"POST", "/admin/routes/explain", "{\"tenant\": \"acme\", \"call\": {}}"},
            {"GET", "/admin/vendors", NULL},
            {"GET", "/admin/deliveries?state=dead", NULL},
            {"POST", "/admin/deliveries/replay", "{}"},
            {"POST", "/admin/deliveries/dlv_x/replay", ""},
        };
        size_t i;
        for (i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
            cr_assert_eq(gw_admin(&gw, GWTEST_ACME_KEY, calls[i][0], calls[i][1], calls[i][2],
                                  &r),
                         0);
            assert_problem(&r, 401, "unauthorized");
            http_resp_free(&r);
        }
    }
    cr_assert_eq(gw_admin(&gw, GWTEST_ADMIN_TOKEN, "POST", "/admin/routes", NULL, &r), 0);
    assert_problem(&r, 405, "method-not-allowed");
    http_resp_free(&r);
    cr_assert_eq(gw_admin(&gw, GWTEST_ADMIN_TOKEN, "GET", "/admin/routes", NULL, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(jstr(r.json, "version"), readyz_version(v, sizeof(v)));
    cr_assert_eq(json_array_size(json_object_get(r.json, "rules")), 2);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(r.json, "rules"), 0), "strategy"),
                     "least_busy");
    http_resp_free(&r);
    /* The admin token is no tenant key either. */
    cr_assert_eq(gw_get(&gw, GWTEST_ADMIN_TOKEN, "/v1/calls", &r), 0);
    assert_problem(&r, 401, "unauthorized");
    http_resp_free(&r);
}

Test(routing_gw, admin_on_its_own_listener, .init = setup_own_listener)
{
    struct http_resp r;
    char url[128];

    cr_assert_neq(gw.admin_port, 0);
    cr_assert_eq(gw_admin(&gw, GWTEST_ADMIN_TOKEN, "GET", "/admin/routes", NULL, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_resp_free(&r);
    /* Not on the public port ... */
    snprintf(url, sizeof(url), "%s/admin/routes", gw.base);
    cr_assert_eq(http_do("GET", url, (const char *const[]){"Authorization: Bearer "
                                                          GWTEST_ADMIN_TOKEN,
                                                          NULL},
                         NULL, 0, 5000, &r),
                 0);
    assert_problem(&r, 404, "not-found");
    http_resp_free(&r);
    /* ... and the tenant API is not on the admin port. */
    snprintf(url, sizeof(url), "%s/v1/calls", gw.admin_base);
    cr_assert_eq(http_do("GET", url, (const char *const[]){"Authorization: Bearer "
                                                          GWTEST_ACME_KEY,
                                                          NULL},
                         NULL, 0, 5000, &r),
                 0);
    assert_problem(&r, 404, "not-found");
    http_resp_free(&r);
}

Test(routing_gw, reload_swaps_and_a_bad_table_is_refused, .init = setup)
{
    struct http_resp r;
    char before[32], after[32];
    json_t *call;

    readyz_version(before, sizeof(before));
    write_rules("10-india.json",
                "{\"rules\": [{\"name\": \"india-callerdesk\", \"match\": {\"to_prefix\": "
                "[\"+91\"]}, \"vendors\": [\"callerdesk\"]}, {\"name\": \"default\", "
                "\"match\": {}, \"vendors\": [\"clouddialer\"]}]}");
    cr_assert_eq(gw_admin(&gw, GWTEST_ADMIN_TOKEN, "POST", "/admin/routes/reload", "", &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(jstr(r.json, "status"), "reloaded");
    snprintf(after, sizeof(after), "%s", jstr(r.json, "version"));
    http_resp_free(&r);
    cr_assert_str_neq(before, after);
    cr_assert_str_eq(readyz_version(before, sizeof(before)), after);
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL,
                              "{\"to\": \"+919876543210\", \"agent\": \"+919900011122\"}", &r),
                 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(jstr(r.json, "route"), "india-callerdesk");
    http_resp_free(&r);

    /* A broken table: refused with its reasons, the old one keeps serving. */
    write_rules("20-broken.json", "{\"rules\": [{\"name\": \"x\", \"match\": {\"to_prefix\": "
                                  "[\"91\"]}, \"vendors\": [\"nosuchvendor\"]}]}");
    cr_assert_eq(gw_admin(&gw, GWTEST_ADMIN_TOKEN, "POST", "/admin/routes/reload", "", &r), 0);
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert_str_eq(jstr(r.json, "status"), "refused");
    cr_assert_str_eq(jstr(r.json, "version"), after);
    cr_assert_geq(json_array_size(json_object_get(r.json, "errors")), 2, "%s", r.body);
    cr_assert_not_null(strstr(r.body, "20-broken.json: x: "), "%s", r.body);
    http_resp_free(&r);
    cr_assert_str_eq(readyz_version(before, sizeof(before)), after);
    call = NULL;
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL,
                              "{\"to\": \"+919876543210\", \"agent\": \"+919900011122\"}", &r),
                 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(jstr(r.json, "route"), "india-callerdesk");
    http_resp_free(&r);
    json_decref(call);
}

struct load {
    int n, ok, failed;
    char last_error[512];
};

static void *
load_run(void *arg)
{
    struct load *l = arg;
    int i;

    for (i = 0; i < l->n; i++) {
        struct http_resp r;
        if (gw_post_call(&gw, GWTEST_ACME_KEY, NULL,
                         "{\"to\": \"+919876543210\", \"agent\": \"agent.017\"}", &r) == 0 &&
            r.status == 201) {
            l->ok++;
        } else {
            l->failed++;
            snprintf(l->last_error, sizeof(l->last_error), "%ld %s", r.status,
                     r.body != NULL ? r.body : "(no answer)");
        }
        http_resp_free(&r);
    }
    return NULL;
}

Test(routing_gw, reload_under_load_fails_no_request, .init = setup)
{
    struct load loads[4];
    pthread_t th[4];
    struct http_resp r;
    int i, reloads = 0, refused = 0;

    for (i = 0; i < 4; i++) {
        memset(&loads[i], 0, sizeof(loads[i]));
        loads[i].n = 60;
        cr_assert_eq(pthread_create(&th[i], NULL, load_run, &loads[i]), 0);
    }
    /* Alternate good and bad tables while the calls go on. */
    for (i = 0; i < 20; i++) {
        if (i % 2 == 0) {
            write_rules("30-extra.json",
                        i % 4 == 0 ? "{\"rules\": [{\"name\": \"us\", \"match\": {\"to_prefix\": "
                                     "[\"+1\"]}, \"vendors\": [\"clouddialer\"]}]}"
                                   : "{\"rules\": []}");
        } else {
            write_rules("30-extra.json", "{\"rules\": [{\"name\": \"bad\"}]}");
        }
        cr_assert_eq(gw_admin(&gw, GWTEST_ADMIN_TOKEN, "POST", "/admin/routes/reload", "", &r),
                     0);
        reloads += r.status == 200;
        refused += r.status == 422;
        http_resp_free(&r);
        gwtest_sleep_ms(20);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(loads[i].failed, 0, "a request failed during reloads: %s",
                     loads[i].last_error);
        cr_assert_eq(loads[i].ok, 60);
    }
    cr_assert_eq(reloads, 10);
    cr_assert_eq(refused, 10);
}

Test(routing_gw, explain_shows_the_decision_without_placing, .init = setup)
{
    struct http_resp r;
    json_t *vendors, *v0, *v1;

    cr_assert_eq(gw_admin(&gw, GWTEST_ADMIN_TOKEN, "POST", "/admin/routes/explain",
                          "{\"tenant\": \"globex\", \"call\": {\"to\": \"+919876543210\","
                          " \"agent\": \"agent.017\"}, \"at\": \"2026-11-23T10:00:00Z\"}",
                          &r),
                 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(jstr(json_object_get(r.json, "rule"), "name"), "india");
    cr_assert_str_eq(jstr(json_object_get(r.json, "rule"), "strategy"), "least_busy");
    cr_assert_str_eq(jstr(r.json, "at"), "2026-11-23T10:00:00Z");
    vendors = json_object_get(r.json, "vendors");
    cr_assert_eq(json_array_size(vendors), 2, "%s", r.body);
    v0 = json_array_get(vendors, 0);
    v1 = json_array_get(vendors, 1);
    cr_assert_str_eq(jstr(v0, "vendor"), "clouddialer");
    cr_assert(json_is_true(json_object_get(v0, "kept")));
    cr_assert_str_eq(jstr(v1, "vendor"), "callerdesk");
    cr_assert_str_eq(jstr(v1, "dropped"), "tenant-not-allowed", "globex has no Callerdesk");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(r.json, "order"), 0)),
                     "clouddialer");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r.json, "result"), "status")),
                 201);
    http_resp_free(&r);
    cr_assert_eq(sim_count(&gw, "POST", "/calls"), 0, "explain places nothing");

    /* A call no rule can serve: the passed-over rules say why. */
    cr_assert_eq(gw_admin(&gw, GWTEST_ADMIN_TOKEN, "POST", "/admin/routes/explain",
                          "{\"tenant\": \"acme\", \"call\": {\"to\": \"+14155550100\","
                          " \"type\": \"scheduled\", \"queue\": \"9\", \"agent\": \"a@b.c\","
                          " \"scheduled_at\": \"2099-01-01T00:00:00Z\"}}",
                          &r),
                 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(jstr(json_object_get(r.json, "rule"), "name"), "default");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r.json, "result"), "status")),
                 422, "%s", r.body);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(r.json, "vendors"), 0), "dropped"),
                     "capability");
    http_resp_free(&r);

    /* Bad explain requests. */
    cr_assert_eq(gw_admin(&gw, GWTEST_ADMIN_TOKEN, "POST", "/admin/routes/explain",
                          "{\"tenant\": \"nobody\", \"call\": {\"to\": \"+14155550100\"}}", &r),
                 0);
    assert_problem(&r, 400, "validation");
    http_resp_free(&r);
    cr_assert_eq(gw_admin(&gw, GWTEST_ADMIN_TOKEN, "POST", "/admin/routes/explain",
                          "{\"tenant\": \"acme\", \"call\": {\"to\": \"bogus\"}, \"x\": 1}", &r),
                 0);
    assert_problem(&r, 400, "validation");
    cr_assert_not_null(strstr(r.body, "call.to"), "%s", r.body);
    http_resp_free(&r);
    cr_assert_eq(gw_admin(&gw, GWTEST_ADMIN_TOKEN, "POST", "/admin/routes/explain", "[", &r), 0);
    assert_problem(&r, 400, "validation");
    http_resp_free(&r);
}

/* The in-flight count Redis holds for a vendor. */
static long long
inflight(const char *vendor)
{
    redisReply *rep = redis_fixture_cmd(&gw.redis, "GET cg:inflight:%s", vendor);
    long long v = rep != NULL && rep->type == REDIS_REPLY_STRING ? atoll(rep->str) : 0;

    freeReplyObject(rep);
    return v;
}

Test(routing_gw, least_busy_follows_the_in_flight_calls, .init = setup_long_calls)
{
    struct http_resp r;
    char id[2][64];
    const char *body = "{\"to\": \"+919876543210\", \"agent\": \"+919900011122\"}";
    json_t *call;

    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, body, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(jstr(r.json, "vendor"), "clouddialer", "a tie keeps the rule's order");
    snprintf(id[0], sizeof(id[0]), "%s", jstr(r.json, "id"));
    http_resp_free(&r);
    cr_assert_eq(inflight("clouddialer"), 1);
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, body, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(jstr(r.json, "vendor"), "callerdesk", "the less busy vendor first");
    snprintf(id[1], sizeof(id[1]), "%s", jstr(r.json, "id"));
    http_resp_free(&r);
    cr_assert_eq(inflight("callerdesk"), 1);
    /* Each terminal event ends its call's count. */
    call = gw_wait_call_status(&gw, GWTEST_ACME_KEY, id[0], "completed", 10000);
    json_decref(call);
    call = gw_wait_call_status(&gw, GWTEST_ACME_KEY, id[1], "completed", 10000);
    json_decref(call);
    cr_assert_eq(inflight("clouddialer"), 0);
    cr_assert_eq(inflight("callerdesk"), 0);
}

/* ---- agents: the directory steers and follows placements ------------------ */

static void
setup_agents(void)
{
    struct gwtest_opts o = {0};

    cr_assert_eq(proc_tmpdir(routes_dir, sizeof(routes_dir)), 0);
    write_rules("10-rules.json",
                "{\"rules\": [{\"name\": \"sales\", \"match\": {\"tags\": {\"department\": "
                "\"sales\"}}, \"require_agent_available\": true, \"vendors\": [\"callerdesk\", "
                "\"clouddialer\"]},"
                " {\"name\": \"india\", \"match\": {\"to_prefix\": [\"+91\"]}, \"vendors\": "
                "[\"callerdesk\", \"clouddialer\"]},"
                " {\"name\": \"default\", \"match\": {}, \"vendors\": [\"clouddialer\"]}]}");
    o.routes_dir = routes_dir;
    o.strict_agents = 1;
    o.call_ms = 1500;
    gwtest_start(&gw, &o);
}

/* method + path with acme's key. */
static int
acme(const char *method, const char *path, const char *body, struct http_resp *r)
{
    char url[512];
    const char *headers[] = {"Authorization: Bearer " GWTEST_ACME_KEY,
                             "Content-Type: application/json", NULL};

    snprintf(url, sizeof(url), "%s%s", gw.base, path);
    return http_do(method, url, headers, body, body != NULL ? strlen(body) : 0, 10000, r);
}

static void
put_agent(const char *id, const char *body)
{
    struct http_resp r;
    char path[128];

    snprintf(path, sizeof(path), "/v1/agents/%s", id);
    cr_assert_eq(acme("PUT", path, body, &r), 0);
    cr_assert(r.status == 201 || r.status == 200, "%ld %s", r.status, r.body);
    http_resp_free(&r);
}

static char *
agent_status(const char *id, char *buf, size_t len)
{
    struct http_resp r;
    char path[128];

    snprintf(path, sizeof(path), "/v1/agents/%s", id);
    cr_assert_eq(acme("GET", path, NULL, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    snprintf(buf, len, "%s", jstr(r.json, "status"));
    http_resp_free(&r);
    return buf;
}

static int
wait_agent(const char *id, const char *status, int timeout_ms)
{
    char buf[32];
    int waited;

    for (waited = 0; waited <= timeout_ms; waited += 100) {
        if (strcmp(agent_status(id, buf, sizeof(buf)), status) == 0) {
            return 1;
        }
        gwtest_sleep_ms(100);
    }
    return 0;
}

Test(routing_gw, agents_steer_and_follow_the_call, .init = setup_agents)
{
    struct http_resp r;
    json_t *a0, *reqs, *body;
    char id[64], buf[32];

    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL,
                              "{\"to\": \"+919876543210\", \"agent\": \"nobody\"}", &r),
                 0);
    assert_problem(&r, 404, "not-found");
    http_resp_free(&r);

    /* asha is known to CloudDialer only: Callerdesk is dropped before anything is sent. */
    put_agent("asha", "{\"name\": \"Asha\", \"groups\": [\"sales\"], \"vendors\": "
                      "{\"clouddialer\": {\"crm_username\": \"asha.k\"}}}");
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL,
                              "{\"to\": \"+919876543210\", \"agent\": \"asha\"}", &r),
                 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(jstr(r.json, "vendor"), "clouddialer");
    cr_assert_str_eq(jstr(r.json, "agent"), "asha");
    a0 = json_array_get(json_object_get(r.json, "attempts"), 0);
    cr_assert_str_eq(jstr(a0, "vendor"), "clouddialer", "%s", r.body);
    snprintf(id, sizeof(id), "%s", jstr(r.json, "id"));
    http_resp_free(&r);
    cr_assert_eq(sim_count(&gw, "GET", "/api/click_to_call_v2"), 0);
    reqs = sim_get_json(&gw, "/_sim/requests?method=POST&path=/calls");
    body = json_loads(jstr(json_array_get(json_object_get(reqs, "requests"), 0), "body"), 0,
                      NULL);
    cr_assert_str_eq(jstr(body, "crm_username"), "asha.k", "the vendor gets its own identity");
    json_decref(body);
    json_decref(reqs);

    /* Busy with the call until its terminal event, then available again. */
    cr_assert_str_eq(agent_status("asha", buf, sizeof(buf)), "busy");
    cr_assert(wait_agent("asha", "available", 10000), "the agent never came back");

    /* A rule that needs the agent available: a busy agent gets 503. */
    cr_assert_eq(acme("PUT", "/v1/agents/asha/status", "{\"status\": \"busy\"}", &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_resp_free(&r);
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL,
                              "{\"to\": \"+919876543210\", \"agent\": \"asha\","
                              " \"tags\": {\"department\": \"sales\"}}",
                              &r),
                 0);
    assert_problem(&r, 503, "no-agent-available");
    http_resp_free(&r);
}

Test(routing_gw, failed_placement_gives_the_agent_back, .init = setup_agents)
{
    struct http_resp r;
    char buf[32];

    put_agent("ravi", "{\"name\": \"Ravi\", \"vendors\": {\"clouddialer\": "
                      "{\"crm_username\": \"ravi\"}}}");
    cr_assert_eq(sim_post(&gw, "/_sim/faults",
                          "{\"path\":\"/calls\",\"method\":\"POST\",\"mode\":\"status\","
                          "\"status\":400,\"body\":\"{\\\"status\\\":\\\"error\\\","
                          "\\\"message\\\":\\\"Invalid agent\\\"}\",\"count\":1}"),
                 200);
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL,
                              "{\"to\": \"+919876543210\", \"agent\": \"ravi\"}", &r),
                 0);
    assert_problem(&r, 502, "vendor-rejected");
    cr_assert_eq(sim_count(&gw, "POST", "/calls"), 1, "CloudDialer refused it");
    http_resp_free(&r);
    cr_assert_str_eq(agent_status("ravi", buf, sizeof(buf)), "available",
                     "a call that certainly was not placed frees its agent");
}

struct racer {
    long status;
    char slug[64];
};

static void *
race_one(void *arg)
{
    struct racer *x = arg;
    struct http_resp r;

    if (gw_post_call(&gw, GWTEST_ACME_KEY, NULL,
                     "{\"to\": \"+919876543210\", \"agent_group\": \"night\"}", &r) == 0) {
        x->status = r.status;
        snprintf(x->slug, sizeof(x->slug), "%s", r.json != NULL && jstr(r.json, "type") != NULL
                                                     ? jstr(r.json, "type")
                                                     : "");
        http_resp_free(&r);
    }
    return NULL;
}

Test(routing_gw, agent_group_claim_race_has_one_winner, .init = setup_agents)
{
    struct racer racers[50];
    pthread_t th[50];
    int i, won = 0, lost = 0;
    char buf[32];

    /* One available agent in the group, one offline. */
    put_agent("meera", "{\"name\": \"Meera\", \"groups\": [\"night\"], \"vendors\": "
                       "{\"clouddialer\": {\"crm_username\": \"meera\"}}}");
    put_agent("john", "{\"name\": \"John\", \"groups\": [\"night\"], \"vendors\": "
                      "{\"clouddialer\": {\"crm_username\": \"john\"}}}");
    {
        struct http_resp r;
        cr_assert_eq(acme("PUT", "/v1/agents/john/status", "{\"status\": \"offline\"}", &r), 0);
        http_resp_free(&r);
    }
    memset(racers, 0, sizeof(racers));
    for (i = 0; i < 50; i++) {
        cr_assert_eq(pthread_create(&th[i], NULL, race_one, &racers[i]), 0);
    }
    for (i = 0; i < 50; i++) {
        pthread_join(th[i], NULL);
        if (racers[i].status == 201) {
            won++;
        } else if (racers[i].status == 503 &&
                   strcmp(racers[i].slug, "/problems/no-agent-available") == 0) {
            lost++;
        }
    }
    cr_assert_eq(won, 1, "exactly one call gets the agent (%d did; e.g. %ld %s)", won,
                 racers[0].status, racers[0].slug);
    cr_assert_eq(lost, 49, "the others get no-agent-available (%d did)", lost);
    cr_assert_str_eq(agent_status("meera", buf, sizeof(buf)), "busy");
    cr_assert_str_eq(agent_status("john", buf, sizeof(buf)), "offline");
    cr_assert_eq(sim_count(&gw, "POST", "/calls"), 1);
}

Test(routing_gw, explain_checks_the_agent, .init = setup_agents)
{
    struct http_resp r;
    json_t *v;

    put_agent("asha", "{\"name\": \"Asha\", \"vendors\": {\"clouddialer\": "
                      "{\"crm_username\": \"asha.k\"}}}");
    cr_assert_eq(gw_admin(&gw, GWTEST_ADMIN_TOKEN, "POST", "/admin/routes/explain",
                          "{\"tenant\": \"acme\", \"call\": {\"to\": \"+919876543210\","
                          " \"agent\": \"asha\"}}",
                          &r),
                 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(jstr(json_object_get(r.json, "rule"), "name"), "india");
    v = json_object_get(r.json, "vendors");
    cr_assert_str_eq(jstr(json_array_get(v, 0), "vendor"), "callerdesk");
    cr_assert_str_eq(jstr(json_array_get(v, 0), "dropped"), "agent-has-no-identity");
    cr_assert(json_is_true(json_object_get(json_array_get(v, 1), "kept")));
    cr_assert_str_eq(jstr(json_object_get(r.json, "agent"), "status"), "available");
    http_resp_free(&r);
    cr_assert_eq(gw_admin(&gw, GWTEST_ADMIN_TOKEN, "POST", "/admin/routes/explain",
                          "{\"tenant\": \"acme\", \"call\": {\"to\": \"+919876543210\","
                          " \"agent\": \"ghost\"}}",
                          &r),
                 0);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r.json, "result"), "status")),
                 404, "%s", r.body);
    http_resp_free(&r);
    {
        char buf[32];
        cr_assert_str_eq(agent_status("asha", buf, sizeof(buf)), "available",
                         "explain reserves nothing");
    }
}

/* ---- circuit breakers ------------------------------------------------------ */

static void
setup_breaker(void)
{
    struct gwtest_opts o = {0};

    cr_assert_eq(proc_tmpdir(routes_dir, sizeof(routes_dir)), 0);
    write_rules("10-india.json",
                "{\"rules\": [{\"name\": \"india\", \"match\": {\"to_prefix\": [\"+91\"]},"
                " \"vendors\": [\"clouddialer\", \"callerdesk\"]},"
                " {\"name\": \"default\", \"match\": {}, \"vendors\": [\"clouddialer\"]}]}");
    o.routes_dir = routes_dir;
    o.breaker_consecutive = 3;
    o.breaker_open_ms = 1500;
    gwtest_start(&gw, &o);
}

static const char *
circuit_of(const char *vendor, char *buf, size_t len)
{
    struct http_resp r;
    json_t *list, *v;
    size_t i;

    snprintf(buf, len, "(absent)");
    cr_assert_eq(gw_admin(&gw, GWTEST_ADMIN_TOKEN, "GET", "/admin/vendors", NULL, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    list = json_object_get(r.json, "vendors");
    json_array_foreach(list, i, v) {
        if (strcmp(jstr(v, "name"), vendor) == 0) {
            snprintf(buf, len, "%s", jstr(json_object_get(v, "circuit"), "circuit"));
        }
    }
    http_resp_free(&r);
    return buf;
}

Test(routing_gw, circuit_opens_fails_over_and_half_opens, .init = setup_breaker)
{
    const char *body = "{\"to\": \"+919876543210\", \"agent\": \"+919900011122\"}";
    struct http_resp r;
    char buf[32];
    int i;

    /* CloudDialer answers 503 ("not queued"): each call fails over to Callerdesk. */
    cr_assert_eq(sim_post(&gw, "/_sim/faults",
                          "{\"path\":\"/calls\",\"method\":\"POST\",\"mode\":\"status\","
                          "\"status\":503,\"count\":-1}"),
                 200);
    for (i = 0; i < 3; i++) {
        cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, body, &r), 0);
        cr_assert_eq(r.status, 201, "%s", r.body);
        cr_assert_str_eq(jstr(r.json, "vendor"), "callerdesk");
        http_resp_free(&r);
    }
    cr_assert_str_eq(circuit_of("clouddialer", buf, sizeof(buf)), "open");
    cr_assert_eq(sim_count(&gw, "POST", "/calls"), 3);
    /* Open: CloudDialer is not even tried. */
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, body, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(r.json, "attempts"), 0), "vendor"),
                     "callerdesk");
    http_resp_free(&r);
    cr_assert_eq(sim_count(&gw, "POST", "/calls"), 3);
    cr_assert_eq(gw_admin(&gw, GWTEST_ADMIN_TOKEN, "POST", "/admin/routes/explain",
                          "{\"tenant\": \"acme\", \"call\": {\"to\": \"+919876543210\","
                          " \"agent\": \"x\"}}",
                          &r),
                 0);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(r.json, "vendors"), 0), "dropped"),
                     "circuit-open", "%s", r.body);
    http_resp_free(&r);
    /* After open_ms one probe goes through; CloudDialer has recovered, so it closes. */
    cr_assert_eq(sim_delete(&gw, "/_sim/faults"), 200);
    gwtest_sleep_ms(1700);
    cr_assert_str_eq(circuit_of("clouddialer", buf, sizeof(buf)), "half_open");
    cr_assert_eq(gw_post_call(&gw, GWTEST_ACME_KEY, NULL, body, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(jstr(r.json, "vendor"), "clouddialer");
    http_resp_free(&r);
    cr_assert_str_eq(circuit_of("clouddialer", buf, sizeof(buf)), "closed");
}
