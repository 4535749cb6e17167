/*
 * test_agents.c: the agent directory (agents.c) through the real gateway:
 * CRUD, strict validation, tenant isolation, listing with filters and
 * cursors, status changes and the idle sets they keep in Redis; the Lua
 * scripts run straight against the harness's Redis (claim, reserve,
 * release); and the placement functions themselves, called in this process
 * from two "replicas" (two store connections) racing for one group.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "agents.h"
#include "app.h"
#include "conf.h"
#include "gw.h"
#include "helpers/gwtest.h"
#include "store.h"

/* The scripts, exported by agents.c for this test only. */
extern const char agents_lua_reserve[];
extern const char agents_lua_claim[];
extern const char agents_lua_release[];

static struct gwtest gw;

static void
setup(void)
{
    gwtest_start(&gw, NULL);
}

static void
teardown(void)
{
    gwtest_stop(&gw);
}

TestSuite(agents, .init = setup, .fini = teardown, .timeout = 120);

/* ---- helpers ---------------------------------------------------------------- */

/* method + path with a tenant key (NULL: none) and an optional body. */
static int
req(const char *method, const char *key, const char *path, const char *body, struct http_resp *r)
{
    char url[1024], auth[128];
    const char *headers[3] = {"Content-Type: application/json", NULL, NULL};

    if (key != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
        headers[1] = auth;
    }
    snprintf(url, sizeof(url), "%s%s", gw.base, path);
    return http_do(method, url, headers, body, body != NULL ? strlen(body) : 0, 5000, r);
}

/* PUT /v1/agents/{id} as acme; assert the status; return the agent (caller decrefs). */
static json_t *
put_agent_as(const char *key, const char *id, const char *body, long want)
{
    struct http_resp r;
    char path[256];
    json_t *out;

    snprintf(path, sizeof(path), "/v1/agents/%s", id);
    cr_assert_eq(req("PUT", key, path, body, &r), 0);
    cr_assert_eq(r.status, want, "PUT %s: %ld %s", id, r.status, r.body);
    out = json_incref(r.json);
    http_resp_free(&r);
    return out;
}

static json_t *
put_agent(const char *id, const char *body, long want)
{
    return put_agent_as(GWTEST_ACME_KEY, id, body, want);
}

/* A minimal agent in the given groups (a JSON array text). */
static void
make_agent(const char *id, const char *groups)
{
    char body[512];

    snprintf(body, sizeof(body), "{\"name\": \"Agent %s\", \"groups\": %s}", id, groups);
    json_decref(put_agent(id, body, 201));
}

static json_t *
get_agent_as(const char *key, const char *id, long want)
{
    struct http_resp r;
    char path[256];
    json_t *out;

    snprintf(path, sizeof(path), "/v1/agents/%s", id);
    cr_assert_eq(req("GET", key, path, NULL, &r), 0);
    cr_assert_eq(r.status, want, "GET %s: %ld %s", id, r.status, r.body);
    if (want == 404) {
        assert_problem(&r, 404, "not-found");
    }
    out = json_incref(r.json);
    http_resp_free(&r);
    return out;
}

static json_t *
get_agent(const char *id)
{
    return get_agent_as(GWTEST_ACME_KEY, id, 200);
}

static json_t *
set_status(const char *id, const char *status)
{
    struct http_resp r;
    char path[256], body[64];
    json_t *out;

    snprintf(path, sizeof(path), "/v1/agents/%s/status", id);
    snprintf(body, sizeof(body), "{\"status\": \"%s\"}", status);
    cr_assert_eq(req("PUT", GWTEST_ACME_KEY, path, body, &r), 0);
    cr_assert_eq(r.status, 200, "status %s: %s", id, r.body);
    out = json_incref(r.json);
    http_resp_free(&r);
    cr_assert_str_eq(jstr(out, "status"), status);
    return out;
}

/* GET a list path as acme; returns the page (caller decrefs). */
static json_t *
list(const char *path)
{
    struct http_resp r;
    json_t *out;

    cr_assert_eq(req("GET", GWTEST_ACME_KEY, path, NULL, &r), 0);
    cr_assert_eq(r.status, 200, "GET %s: %s", path, r.body);
    out = json_incref(r.json);
    http_resp_free(&r);
    cr_assert(json_is_array(json_object_get(out, "data")));
    cr_assert_not_null(json_object_get(out, "next_cursor"), "next_cursor is always present");
    return out;
}

/* The ids of a page's data, joined by ','. */
static void
page_ids(json_t *page, char *out, size_t outlen)
{
    json_t *a;
    size_t i;

    out[0] = '\0';
    json_array_foreach(json_object_get(page, "data"), i, a)
    {
        snprintf(out + strlen(out), outlen - strlen(out), "%s%s", i > 0 ? "," : "", jstr(a, "id"));
    }
}

/* Whether errors[] of a problem names field. */
static int
names_field(json_t *problem, const char *field)
{
    json_t *e;
    size_t i;

    json_array_foreach(json_object_get(problem, "errors"), i, e)
    {
        if (jstr(e, "field") != NULL && strcmp(jstr(e, "field"), field) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ZSCORE as a number, or -1 when the member is absent. */
static long long
zscore(const char *key, const char *member)
{
    redisReply *rep = redis_fixture_cmd(&gw.redis, "ZSCORE %s %s", key, member);
    long long v = -1;

    cr_assert_not_null(rep);
    if (rep->type == REDIS_REPLY_STRING) {
        v = strtoll(rep->str, NULL, 10);
    }
    freeReplyObject(rep);
    return v;
}

static long long
rint_cmd(const char *fmt, const char *a)
{
    redisReply *rep = redis_fixture_cmd(&gw.redis, fmt, a);
    long long v;

    cr_assert_not_null(rep);
    cr_assert_eq(rep->type, REDIS_REPLY_INTEGER, "%s", fmt);
    v = rep->integer;
    freeReplyObject(rep);
    return v;
}

/* An agent hash field, copied (or "" when absent). */
static void
hget(const char *id, const char *field, char *out, size_t outlen)
{
    redisReply *rep = redis_fixture_cmd(&gw.redis, "HGET cg:agent:acme:%s %s", id, field);

    cr_assert_not_null(rep);
    snprintf(out, outlen, "%s", rep->type == REDIS_REPLY_STRING ? rep->str : "");
    freeReplyObject(rep);
}

/* A script reply {tag, view}: the tag and the view's id ("" when none). */
static void
script_answer(redisReply *rep, char *tag, size_t taglen, char *id, size_t idlen)
{
    cr_assert_not_null(rep);
    cr_assert_eq(rep->type, REDIS_REPLY_ARRAY, "script reply type %d: %s", rep->type,
                 rep->type == REDIS_REPLY_ERROR ? rep->str : "");
    cr_assert_geq(rep->elements, 1);
    snprintf(tag, taglen, "%s", rep->element[0]->str);
    id[0] = '\0';
    if (rep->elements == 2) {
        cr_assert_eq(rep->element[1]->type, REDIS_REPLY_ARRAY);
        cr_assert_eq(rep->element[1]->elements, 7);
        snprintf(id, idlen, "%s", rep->element[1]->element[0]->str);
    }
    freeReplyObject(rep);
}

static void
lua_claim(const char *group, const char *call, char *tag, size_t taglen, char *id, size_t idlen)
{
    script_answer(redis_fixture_cmd(&gw.redis,
                                    "EVAL %s 2 cg:aidle:acme:%s cg:agroup:acme:%s cg:agent:acme: "
                                    "cg:aidle:acme: %s",
                                    agents_lua_claim, group, group, call),
                  tag, taglen, id, idlen);
}

static void
lua_reserve(const char *agent, const char *call, const char *require, char *tag, size_t taglen)
{
    char id[80];

    script_answer(redis_fixture_cmd(&gw.redis, "EVAL %s 1 cg:agent:acme:%s cg:aidle:acme: %s %s",
                                    agents_lua_reserve, agent, call, require),
                  tag, taglen, id, sizeof(id));
}

static long long
lua_release(const char *agent, const char *call)
{
    redisReply *rep = redis_fixture_cmd(&gw.redis, "EVAL %s 1 cg:agent:acme:%s cg:aidle:acme: %s",
                                        agents_lua_release, agent, call);
    long long v;

    cr_assert_not_null(rep);
    cr_assert_eq(rep->type, REDIS_REPLY_INTEGER, "%s",
                 rep->type == REDIS_REPLY_ERROR ? rep->str : "");
    v = rep->integer;
    freeReplyObject(rep);
    return v;
}

#define FULL_AGENT                                                                                 \
    "{\"name\": \"Asha Rao\", \"number\": \"98765 43210\", \"email\": \"asha@acme.example\","      \
    " \"groups\": [\"sales\", \"support\"],"                                                       \
    " \"vendors\": {\"clouddialer\": {\"crm_username\": \"agent.017\"},"                           \
    " \"callerdesk\": {\"member_id\": \"123\"}, \"ccai\": {\"email\": \"asha@ccai.example\"}}}"

/* ---- CRUD ---------------------------------------------------------------------- */

Test(agents, crud_round_trip)
{
    static const char *const keys[] = {"id",      "name",       "number",    "email",
                                       "groups",  "vendors",    "status",    "status_since",
                                       "call_id", "idle_since", "updated_at"};
    struct http_resp r;
    json_t *a, *g;
    char loc[128];
    size_t i;

    cr_assert_eq(req("PUT", GWTEST_ACME_KEY, "/v1/agents/agent.017", FULL_AGENT, &r), 0);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_str_eq(http_header(&r, "Location", loc, sizeof(loc)), "/v1/agents/agent.017");
    a = json_incref(r.json);
    http_resp_free(&r);
    cr_assert_eq(json_object_size(a), GW_ARRAY_LEN(keys), "%s", json_dumps(a, 0));
    for (i = 0; i < GW_ARRAY_LEN(keys); i++) {
        cr_assert_not_null(json_object_get(a, keys[i]), "missing %s", keys[i]);
    }
    cr_assert_str_eq(jstr(a, "id"), "agent.017");
    cr_assert_str_eq(jstr(a, "name"), "Asha Rao");
    cr_assert_str_eq(jstr(a, "number"), "+919876543210", "stored as E.164");
    cr_assert_str_eq(jstr(a, "email"), "asha@acme.example");
    cr_assert_str_eq(jstr(a, "status"), "available", "new agents start available");
    cr_assert(json_is_null(json_object_get(a, "call_id")));
    cr_assert_not_null(jstr(a, "idle_since"));
    cr_assert_eq(strlen(jstr(a, "status_since")), 20, "RFC 3339: %s", jstr(a, "status_since"));
    cr_assert_str_eq(jstr(a, "status_since"), jstr(a, "idle_since"));
    g = json_object_get(a, "groups");
    cr_assert_eq(json_array_size(g), 2);
    cr_assert_str_eq(json_string_value(json_array_get(g, 0)), "sales");
    cr_assert_str_eq(json_string_value(json_array_get(g, 1)), "support");
    cr_assert_str_eq(
        jstr(json_object_get(json_object_get(a, "vendors"), "callerdesk"), "member_id"), "123");
    /* What placements see is what GET shows; identities per vendor. */
    cr_assert_str_eq(agents_identity(a, "clouddialer"), "agent.017");
    cr_assert_str_eq(agents_identity(a, "callerdesk"), "member:123");
    cr_assert_str_eq(agents_identity(a, "ccai"), "asha@ccai.example");
    cr_assert_null(agents_identity(a, "getdesk"));
    cr_assert_null(agents_identity(a, NULL));
    cr_assert_null(agents_identity(NULL, "ccai"));

    g = get_agent("agent.017");
    cr_assert(json_equal(a, g), "GET equals the PUT answer:\n%s\n%s", json_dumps(a, 0),
              json_dumps(g, 0));
    json_decref(g);
    json_decref(a);

    /* Replace: fields go (email), number may be a national one, 200. */
    a = put_agent("agent.017",
                  "{\"name\": \"Asha R.\", \"vendors\": {\"callerdesk\": "
                  "{\"number\": \"+91 98765-00000\"}}}",
                  200);
    cr_assert_str_eq(jstr(a, "name"), "Asha R.");
    cr_assert(json_is_null(json_object_get(a, "email")));
    cr_assert(json_is_null(json_object_get(a, "number")));
    cr_assert_eq(json_array_size(json_object_get(a, "groups")), 0);
    cr_assert_str_eq(agents_identity(a, "callerdesk"), "+919876500000");
    cr_assert_null(agents_identity(a, "clouddialer"));
    json_decref(a);

    cr_assert_eq(req("DELETE", GWTEST_ACME_KEY, "/v1/agents/agent.017", NULL, &r), 0);
    cr_assert_eq(r.status, 204, "%s", r.body);
    cr_assert_eq(r.len, 0);
    http_resp_free(&r);
    json_decref(get_agent_as(GWTEST_ACME_KEY, "agent.017", 404));
    cr_assert_eq(req("DELETE", GWTEST_ACME_KEY, "/v1/agents/agent.017", NULL, &r), 0);
    assert_problem(&r, 404, "not-found");
    http_resp_free(&r);
    cr_assert_eq(rint_cmd("EXISTS cg:agent:acme:%s", "agent.017"), 0);
    cr_assert_eq(zscore("cg:agents:acme", "agent.017"), -1);
}

Test(agents, delete_leaves_every_set)
{
    make_agent("a1", "[\"sales\", \"support\"]");
    make_agent("a2", "[\"sales\"]");
    cr_assert_geq(zscore("cg:aidle:acme:support", "a1"), 0);
    cr_assert_geq(zscore("cg:agroup:acme:sales", "a1"), 0);
    json_decref(put_agent("a1", "{\"name\": \"x\", \"groups\": [\"sales\", \"support\"]}", 200));
    {
        struct http_resp r;
        cr_assert_eq(req("DELETE", GWTEST_ACME_KEY, "/v1/agents/a1", NULL, &r), 0);
        cr_assert_eq(r.status, 204);
        http_resp_free(&r);
    }
    cr_assert_eq(zscore("cg:agents:acme", "a1"), -1);
    cr_assert_eq(zscore("cg:agroup:acme:sales", "a1"), -1);
    cr_assert_eq(zscore("cg:agroup:acme:support", "a1"), -1);
    cr_assert_eq(zscore("cg:aidle:acme:sales", "a1"), -1);
    cr_assert_eq(zscore("cg:aidle:acme:support", "a1"), -1);
    cr_assert_eq(rint_cmd("EXISTS %s", "cg:agroup:acme:support"), 0, "empty sets go away");
    cr_assert_geq(zscore("cg:aidle:acme:sales", "a2"), 0, "the others stay");
}

Test(agents, replace_keeps_status_and_moves_groups)
{
    char idle_before[32], idle_after[32];
    long long support_score;
    json_t *a;

    make_agent("a1", "[\"sales\", \"support\"]");
    hget("a1", "idle_since", idle_before, sizeof(idle_before));
    support_score = zscore("cg:aidle:acme:support", "a1");
    cr_assert_eq(support_score, strtoll(idle_before, NULL, 10), "scored by idle_since");
    cr_assert_eq(zscore("cg:aidle:acme:sales", "a1"), support_score);
    gwtest_sleep_ms(5);

    /* Available: a replace keeps idle_since, leaves sales, joins billing (idle there too). */
    a = put_agent("a1", "{\"name\": \"A\", \"groups\": [\"support\", \"billing\"]}", 200);
    cr_assert_str_eq(jstr(a, "status"), "available");
    json_decref(a);
    hget("a1", "idle_since", idle_after, sizeof(idle_after));
    cr_assert_str_eq(idle_after, idle_before, "a directory edit is not a new idle period");
    cr_assert_eq(zscore("cg:agroup:acme:sales", "a1"), -1);
    cr_assert_eq(zscore("cg:aidle:acme:sales", "a1"), -1);
    cr_assert_eq(zscore("cg:aidle:acme:support", "a1"), support_score);
    cr_assert_eq(zscore("cg:aidle:acme:billing", "a1"), support_score);
    cr_assert_geq(zscore("cg:agroup:acme:billing", "a1"), 0);

    /* Busy: a replace keeps it busy, with its call, and out of every idle set. */
    json_decref(set_status("a1", "busy"));
    cr_assert_eq(rint_cmd("HSET cg:agent:acme:a1 call_id %s", "call_42"), 0);
    a = put_agent("a1", "{\"name\": \"A\", \"groups\": [\"sales\"]}", 200);
    cr_assert_str_eq(jstr(a, "status"), "busy");
    cr_assert_str_eq(jstr(a, "call_id"), "call_42");
    cr_assert(json_is_null(json_object_get(a, "idle_since")));
    json_decref(a);
    cr_assert_eq(zscore("cg:aidle:acme:sales", "a1"), -1, "busy agents are never idle");
    cr_assert_geq(zscore("cg:agroup:acme:sales", "a1"), 0);
    cr_assert_eq(zscore("cg:agroup:acme:billing", "a1"), -1);
    cr_assert_eq(zscore("cg:agroup:acme:support", "a1"), -1);
}

/* ---- validation ------------------------------------------------------------------ */

struct bad_case {
    const char *body;
    const char *field;
};

Test(agents, validation_names_each_field)
{
    static const struct bad_case cases[] = {
        {"{", "body"},
        {"[]", "body"},
        {"\"name\"", "body"},
        {"", "body"},
        {"{\"name\": \"a\", \"name\": \"b\"}", "body"},
        {"{\"name\": \"A\", \"nickname\": \"x\"}", "nickname"},
        {"{\"name\": \"A\", \"status\": \"busy\"}", "status"},
        {"{}", "name"},
        {"{\"name\": null}", "name"},
        {"{\"name\": 5}", "name"},
        {"{\"name\": \"\"}", "name"},
        {"{\"name\": \"a\\u0000b\"}", "body"},
        {"{\"name\": \"a\\nb\"}", "name"},
        {"{\"name\": \"A\", \"number\": 9876543210}", "number"},
        {"{\"name\": \"A\", \"number\": \"12ab\"}", "number"},
        {"{\"name\": \"A\", \"number\": \"\"}", "number"},
        {"{\"name\": \"A\", \"email\": \"nobody\"}", "email"},
        {"{\"name\": \"A\", \"email\": \"a@@b.c\"}", "email"},
        {"{\"name\": \"A\", \"email\": \"a@b@c\"}", "email"},
        {"{\"name\": \"A\", \"email\": \"a b@c.d\"}", "email"},
        {"{\"name\": \"A\", \"email\": \"@c.d\"}", "email"},
        {"{\"name\": \"A\", \"email\": \"a@\"}", "email"},
        {"{\"name\": \"A\", \"email\": true}", "email"},
        {"{\"name\": \"A\", \"groups\": \"sales\"}", "groups"},
        {"{\"name\": \"A\", \"groups\": [\"sales team\"]}", "groups[0]"},
        {"{\"name\": \"A\", \"groups\": [\"sales\", 7]}", "groups[1]"},
        {"{\"name\": \"A\", \"groups\": [\"sales\", \"sales\"]}", "groups[1]"},
        {"{\"name\": \"A\", \"groups\": [\"a,b\"]}", "groups[0]"},
        {"{\"name\": \"A\", \"groups\": [\"..\"]}", "groups[0]"},
        {"{\"name\": \"A\", \"vendors\": []}", "vendors"},
        {"{\"name\": \"A\", \"vendors\": {\"twilio\": {}}}", "vendors.twilio"},
        {"{\"name\": \"A\", \"vendors\": {\"getdesk\": {\"crm_username\": \"x\"}}}",
         "vendors.getdesk"},
        {"{\"name\": \"A\", \"vendors\": {\"ccai\": \"a@b.c\"}}", "vendors.ccai"},
        {"{\"name\": \"A\", \"vendors\": {\"clouddialer\": {}}}",
         "vendors.clouddialer.crm_username"},
        {"{\"name\": \"A\", \"vendors\": {\"clouddialer\": {\"crm_username\": 17}}}",
         "vendors.clouddialer.crm_username"},
        {"{\"name\": \"A\", \"vendors\": {\"clouddialer\": {\"crm_username\": \"a\","
         " \"extension\": \"1\"}}}",
         "vendors.clouddialer.extension"},
        {"{\"name\": \"A\", \"vendors\": {\"callerdesk\": {}}}", "vendors.callerdesk"},
        {"{\"name\": \"A\", \"vendors\": {\"callerdesk\": {\"member_id\": \"1\","
         " \"number\": \"+919876543210\"}}}",
         "vendors.callerdesk"},
        {"{\"name\": \"A\", \"vendors\": {\"callerdesk\": {\"member_id\": \"12a\"}}}",
         "vendors.callerdesk.member_id"},
        {"{\"name\": \"A\", \"vendors\": {\"callerdesk\": {\"member_id\": 123}}}",
         "vendors.callerdesk.member_id"},
        {"{\"name\": \"A\", \"vendors\": {\"callerdesk\": {\"number\": \"+14155550100\"}}}",
         "vendors.callerdesk.number"},
        {"{\"name\": \"A\", \"vendors\": {\"callerdesk\": {\"number\": \"abc\"}}}",
         "vendors.callerdesk.number"},
        {"{\"name\": \"A\", \"vendors\": {\"ccai\": {\"email\": \"nope\"}}}", "vendors.ccai.email"},
        {"{\"name\": \"A\", \"vendors\": {\"ccai\": {}}}", "vendors.ccai.email"},
        {"{\"name\": \"A\", \"vendors\": {\"ccai\": {\"email\": \"a@b.c\", \"id\": 1}}}",
         "vendors.ccai.id"},
    };
    struct http_resp r;
    size_t i;

    for (i = 0; i < GW_ARRAY_LEN(cases); i++) {
        cr_assert_eq(req("PUT", GWTEST_ACME_KEY, "/v1/agents/v1", cases[i].body, &r), 0);
        assert_problem(&r, 400, "validation");
        cr_assert(names_field(r.json, cases[i].field), "case %zu (%s): wanted %s in %s", i,
                  cases[i].body, cases[i].field, r.body);
        http_resp_free(&r);
    }
    /* Several problems are all reported at once. */
    cr_assert_eq(req("PUT", GWTEST_ACME_KEY, "/v1/agents/v1",
                     "{\"number\": \"x\", \"email\": \"y\", \"groups\": [\"\"], \"extra\": 1}", &r),
                 0);
    assert_problem(&r, 400, "validation");
    cr_assert(names_field(r.json, "name") && names_field(r.json, "number") &&
                  names_field(r.json, "email") && names_field(r.json, "groups[0]") &&
                  names_field(r.json, "extra"),
              "%s", r.body);
    http_resp_free(&r);
    cr_assert_eq(rint_cmd("EXISTS %s", "cg:agent:acme:v1"), 0, "nothing stored");
    cr_assert_eq(rint_cmd("EXISTS %s", "cg:agents:acme"), 0);
}

Test(agents, validation_limits)
{
    char body[8192], name[1024];
    struct http_resp r;
    size_t i;
    json_t *a;

    /* name: 200 characters (multi-byte ones count once) pass, 201 do not. */
    name[0] = '\0';
    for (i = 0; i < 200; i++) {
        strcat(name, "\xc3\xa9");
    }
    snprintf(body, sizeof(body), "{\"name\": \"%s\"}", name);
    json_decref(put_agent("long", body, 201));
    snprintf(body, sizeof(body), "{\"name\": \"%sx\"}", name);
    cr_assert_eq(req("PUT", GWTEST_ACME_KEY, "/v1/agents/long", body, &r), 0);
    assert_problem(&r, 400, "validation");
    cr_assert(names_field(r.json, "name"), "%s", r.body);
    http_resp_free(&r);

    /* groups: 50 pass, 51 do not. */
    strcpy(body, "{\"name\": \"G\", \"groups\": [");
    for (i = 0; i < 51; i++) {
        snprintf(body + strlen(body), sizeof(body) - strlen(body), "%s\"g%02zu\"", i ? "," : "", i);
    }
    strcat(body, "]}");
    cr_assert_eq(req("PUT", GWTEST_ACME_KEY, "/v1/agents/many", body, &r), 0);
    assert_problem(&r, 400, "validation");
    cr_assert(names_field(r.json, "groups"), "%s", r.body);
    http_resp_free(&r);
    strcpy(strstr(body, ",\"g50\""), "]}");
    a = put_agent("many", body, 201);
    cr_assert_eq(json_array_size(json_object_get(a, "groups")), 50);
    json_decref(a);

    /* A group name of 64 characters passes, 65 do not; the same for ids. */
    memset(name, 'g', 65);
    name[65] = '\0';
    snprintf(body, sizeof(body), "{\"name\": \"G\", \"groups\": [\"%s\"]}", name);
    cr_assert_eq(req("PUT", GWTEST_ACME_KEY, "/v1/agents/g65", body, &r), 0);
    assert_problem(&r, 400, "validation");
    http_resp_free(&r);
    name[64] = '\0';
    snprintf(body, sizeof(body), "{\"name\": \"G\", \"groups\": [\"%s\"]}", name);
    json_decref(put_agent(name, body, 201));
    memset(name, 'a', 65);
    name[65] = '\0';
    snprintf(body, sizeof(body), "/v1/agents/%s", name);
    cr_assert_eq(req("PUT", GWTEST_ACME_KEY, body, "{\"name\": \"A\"}", &r), 0);
    assert_problem(&r, 400, "validation");
    cr_assert(names_field(r.json, "agent_id"), "%s", r.body);
    http_resp_free(&r);
    cr_assert_eq(req("PUT", GWTEST_ACME_KEY, "/v1/agents/bad%20id", "{\"name\": \"A\"}", &r), 0);
    assert_problem(&r, 400, "validation");
    cr_assert(names_field(r.json, "agent_id"), "%s", r.body);
    http_resp_free(&r);
    cr_assert_eq(req("PUT", GWTEST_ACME_KEY, "/v1/agents/..", "{\"name\": \"A\"}", &r), 0);
    cr_assert_neq(r.status, 201, "%s", r.body);
    http_resp_free(&r);
}

Test(agents, oversized_body_is_refused_by_the_front)
{
    size_t n = 70 * 1024;
    char *body = malloc(n + 64);
    struct http_resp r;

    cr_assert_not_null(body);
    strcpy(body, "{\"name\": \"");
    memset(body + strlen(body), 'x', n);
    strcpy(body + 10 + n, "\"}");
    cr_assert_eq(req("PUT", GWTEST_ACME_KEY, "/v1/agents/big", body, &r), 0);
    free(body);
    assert_problem(&r, 413, "payload-too-large");
    http_resp_free(&r);
    json_decref(get_agent_as(GWTEST_ACME_KEY, "big", 404));
}

Test(agents, vendor_the_tenant_may_not_use)
{
    struct http_resp r;
    json_t *a;

    /* globex may use CloudDialer only. */
    cr_assert_eq(req("PUT", GWTEST_GLOBEX_KEY, "/v1/agents/g1",
                     "{\"name\": \"G\", \"vendors\": {\"callerdesk\": {\"member_id\": \"1\"}}}",
                     &r),
                 0);
    assert_problem(&r, 400, "validation");
    cr_assert(names_field(r.json, "vendors.callerdesk"), "%s", r.body);
    http_resp_free(&r);
    /* ... and a national number is read in its own country (US). */
    a = put_agent_as(GWTEST_GLOBEX_KEY, "g1",
                     "{\"name\": \"G\", \"number\": \"(415) 555-0100\", "
                     "\"vendors\": {\"clouddialer\": {\"crm_username\": \"g.1\"}}}",
                     201);
    cr_assert_str_eq(jstr(a, "number"), "+14155550100");
    json_decref(a);
}

Test(agents, status_validation)
{
    static const struct bad_case cases[] = {
        {"{", "body"},
        {"{}", "status"},
        {"{\"status\": \"away\"}", "status"},
        {"{\"status\": 1}", "status"},
        {"{\"status\": \"busy\", \"call_id\": \"x\"}", "call_id"},
    };
    struct http_resp r;
    size_t i;

    make_agent("s1", "[]");
    for (i = 0; i < GW_ARRAY_LEN(cases); i++) {
        cr_assert_eq(req("PUT", GWTEST_ACME_KEY, "/v1/agents/s1/status", cases[i].body, &r), 0);
        assert_problem(&r, 400, "validation");
        cr_assert(names_field(r.json, cases[i].field), "case %zu: %s", i, r.body);
        http_resp_free(&r);
    }
}

Test(agents, unknown_agents_are_404)
{
    struct http_resp r;

    json_decref(get_agent_as(GWTEST_ACME_KEY, "nobody", 404));
    json_decref(get_agent_as(GWTEST_ACME_KEY, "bad%20id", 404));
    cr_assert_eq(req("DELETE", GWTEST_ACME_KEY, "/v1/agents/nobody", NULL, &r), 0);
    assert_problem(&r, 404, "not-found");
    http_resp_free(&r);
    cr_assert_eq(
        req("PUT", GWTEST_ACME_KEY, "/v1/agents/nobody/status", "{\"status\": \"busy\"}", &r), 0);
    assert_problem(&r, 404, "not-found");
    http_resp_free(&r);
    cr_assert_eq(rint_cmd("EXISTS %s", "cg:agent:acme:nobody"), 0, "a status does not create");
    cr_assert_eq(req("GET", NULL, "/v1/agents/nobody", NULL, &r), 0);
    assert_problem(&r, 401, "unauthorized");
    http_resp_free(&r);
    cr_assert_eq(req("GET", NULL, "/v1/agents", NULL, &r), 0);
    assert_problem(&r, 401, "unauthorized");
    http_resp_free(&r);
}

Test(agents, tenants_are_isolated)
{
    struct http_resp r;
    json_t *a, *page;

    json_decref(put_agent("shared", FULL_AGENT, 201));
    json_decref(get_agent_as(GWTEST_GLOBEX_KEY, "shared", 404));
    cr_assert_eq(req("DELETE", GWTEST_GLOBEX_KEY, "/v1/agents/shared", NULL, &r), 0);
    assert_problem(&r, 404, "not-found");
    http_resp_free(&r);
    cr_assert_eq(
        req("PUT", GWTEST_GLOBEX_KEY, "/v1/agents/shared/status", "{\"status\": \"offline\"}", &r),
        0);
    assert_problem(&r, 404, "not-found");
    http_resp_free(&r);
    cr_assert_eq(req("GET", GWTEST_GLOBEX_KEY, "/v1/agents?group=sales", NULL, &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(json_array_size(json_object_get(r.json, "data")), 0, "%s", r.body);
    http_resp_free(&r);
    /* globex's own agent of the same id is another agent. */
    a = put_agent_as(GWTEST_GLOBEX_KEY, "shared", "{\"name\": \"Globex one\"}", 201);
    json_decref(a);
    a = get_agent("shared");
    cr_assert_str_eq(jstr(a, "name"), "Asha Rao");
    cr_assert_str_eq(jstr(a, "status"), "available");
    json_decref(a);
    page = list("/v1/agents");
    cr_assert_eq(json_array_size(json_object_get(page, "data")), 1);
    json_decref(page);
}

/* ---- listing ---------------------------------------------------------------------- */

Test(agents, list_pages_in_id_order)
{
    char id[16], ids[2048], path[128], cursor[80];
    json_t *page;
    int i, pages, seen;

    /* Created out of order; listed by id. */
    for (i = 54; i >= 0; i--) {
        snprintf(id, sizeof(id), "a%02d", i);
        make_agent(id, "[]");
    }
    page = list("/v1/agents");
    cr_assert_eq(json_array_size(json_object_get(page, "data")), 50, "default limit 50");
    page_ids(page, ids, sizeof(ids));
    cr_assert_eq(strncmp(ids, "a00,a01,a02,", 12), 0, "%s", ids);
    cr_assert_str_eq(jstr(page, "next_cursor"), "a49");
    snprintf(path, sizeof(path), "/v1/agents?cursor=%s", jstr(page, "next_cursor"));
    json_decref(page);
    page = list(path);
    page_ids(page, ids, sizeof(ids));
    cr_assert_str_eq(ids, "a50,a51,a52,a53,a54");
    cr_assert(json_is_null(json_object_get(page, "next_cursor")), "the last page says so");
    json_decref(page);

    /* limit=20 over 55: 20, 20, 15; exactly 20 left: no empty trailing page. */
    cursor[0] = '\0';
    for (pages = 0, seen = 0;; pages++) {
        snprintf(path, sizeof(path), "/v1/agents?limit=20%s%s", cursor[0] ? "&cursor=" : "",
                 cursor);
        page = list(path);
        seen += (int)json_array_size(json_object_get(page, "data"));
        if (json_is_null(json_object_get(page, "next_cursor"))) {
            json_decref(page);
            break;
        }
        snprintf(cursor, sizeof(cursor), "%s", jstr(page, "next_cursor"));
        json_decref(page);
        cr_assert_lt(pages, 10);
    }
    cr_assert_eq(pages, 2);
    cr_assert_eq(seen, 55);
    page = list("/v1/agents?limit=15&cursor=a39");
    page_ids(page, ids, sizeof(ids));
    cr_assert_eq(json_array_size(json_object_get(page, "data")), 15);
    cr_assert(json_is_null(json_object_get(page, "next_cursor")), "%s", ids);
    json_decref(page);
    /* A cursor past everything: an empty page. */
    page = list("/v1/agents?cursor=zzz");
    cr_assert_eq(json_array_size(json_object_get(page, "data")), 0);
    cr_assert(json_is_null(json_object_get(page, "next_cursor")));
    json_decref(page);
}

Test(agents, list_filters_by_group_and_status)
{
    char ids[1024], path[128];
    json_t *page;

    make_agent("s1", "[\"sales\"]");
    make_agent("s2", "[\"sales\", \"support\"]");
    make_agent("s3", "[\"sales\"]");
    make_agent("s4", "[\"sales\"]");
    make_agent("s5", "[\"sales\"]");
    make_agent("t1", "[\"support\"]");
    make_agent("u1", "[]");
    json_decref(set_status("s2", "busy"));
    json_decref(set_status("s4", "busy"));
    json_decref(set_status("t1", "busy"));
    json_decref(set_status("s5", "offline"));

    page = list("/v1/agents?group=sales");
    page_ids(page, ids, sizeof(ids));
    cr_assert_str_eq(ids, "s1,s2,s3,s4,s5");
    json_decref(page);
    page = list("/v1/agents?group=support");
    page_ids(page, ids, sizeof(ids));
    cr_assert_str_eq(ids, "s2,t1");
    json_decref(page);
    page = list("/v1/agents?status=busy");
    page_ids(page, ids, sizeof(ids));
    cr_assert_str_eq(ids, "s2,s4,t1");
    json_decref(page);
    page = list("/v1/agents?status=available");
    page_ids(page, ids, sizeof(ids));
    cr_assert_str_eq(ids, "s1,s3,u1");
    json_decref(page);
    page = list("/v1/agents?group=sales&status=offline");
    page_ids(page, ids, sizeof(ids));
    cr_assert_str_eq(ids, "s5");
    json_decref(page);
    page = list("/v1/agents?group=nobody");
    cr_assert_eq(json_array_size(json_object_get(page, "data")), 0, "an unknown group is empty");
    json_decref(page);

    /* Paging a filtered list. */
    page = list("/v1/agents?group=sales&status=busy&limit=1");
    page_ids(page, ids, sizeof(ids));
    cr_assert_str_eq(ids, "s2");
    cr_assert_str_eq(jstr(page, "next_cursor"), "s2");
    json_decref(page);
    snprintf(path, sizeof(path), "/v1/agents?group=sales&status=busy&limit=1&cursor=s2");
    page = list(path);
    page_ids(page, ids, sizeof(ids));
    cr_assert_str_eq(ids, "s4");
    json_decref(page);
}

Test(agents, list_rejects_bad_parameters)
{
    static const struct bad_case cases[] = {
        {"/v1/agents?limit=0", "limit"},      {"/v1/agents?limit=201", "limit"},
        {"/v1/agents?limit=ten", "limit"},    {"/v1/agents?limit=", "limit"},
        {"/v1/agents?status=away", "status"}, {"/v1/agents?group=", "group"},
        {"/v1/agents?group=a%20b", "group"},  {"/v1/agents?cursor=%2F%2F", "cursor"},
        {"/v1/agents?sort=name", "sort"},
    };
    struct http_resp r;
    size_t i;

    for (i = 0; i < GW_ARRAY_LEN(cases); i++) {
        cr_assert_eq(req("GET", GWTEST_ACME_KEY, cases[i].body, NULL, &r), 0);
        assert_problem(&r, 400, "validation");
        cr_assert(names_field(r.json, cases[i].field), "%s: %s", cases[i].body, r.body);
        http_resp_free(&r);
    }
    json_decref(list("/v1/agents?limit=200"));
}

/* ---- status and idle sets ---------------------------------------------------------------- */

Test(agents, status_changes_move_idle_membership)
{
    char since[32], since2[32];
    long long score;
    json_t *a;

    make_agent("a1", "[\"sales\", \"support\"]");
    cr_assert_geq(zscore("cg:aidle:acme:sales", "a1"), 0);

    a = set_status("a1", "busy");
    cr_assert(json_is_null(json_object_get(a, "idle_since")));
    cr_assert(json_is_null(json_object_get(a, "call_id")));
    json_decref(a);
    cr_assert_eq(zscore("cg:aidle:acme:sales", "a1"), -1);
    cr_assert_eq(zscore("cg:aidle:acme:support", "a1"), -1);
    cr_assert_geq(zscore("cg:agroup:acme:sales", "a1"), 0, "still a member");

    a = set_status("a1", "offline");
    json_decref(a);
    cr_assert_eq(zscore("cg:aidle:acme:sales", "a1"), -1);

    gwtest_sleep_ms(5);
    a = set_status("a1", "available");
    cr_assert_not_null(jstr(a, "idle_since"));
    json_decref(a);
    hget("a1", "idle_since", since, sizeof(since));
    score = zscore("cg:aidle:acme:sales", "a1");
    cr_assert_eq(score, strtoll(since, NULL, 10));
    cr_assert_eq(zscore("cg:aidle:acme:support", "a1"), score);

    /* Saying "available" again keeps the agent's place in the queue. */
    gwtest_sleep_ms(5);
    json_decref(set_status("a1", "available"));
    hget("a1", "idle_since", since2, sizeof(since2));
    cr_assert_str_eq(since2, since);
    cr_assert_eq(zscore("cg:aidle:acme:sales", "a1"), score);

    /* GET reflects it. */
    a = get_agent("a1");
    cr_assert_str_eq(jstr(a, "status"), "available");
    json_decref(a);
}

/* ---- the scripts, straight in Redis --------------------------------------------------------- */

Test(agents, lua_claim_fifty_over_three_available)
{
    char tag[32], id[80], call[32], first[3][80];
    int i, ok = 0, none = 0;
    json_t *a;

    make_agent("c1", "[\"sales\"]");
    gwtest_sleep_ms(3);
    make_agent("c2", "[\"sales\"]");
    gwtest_sleep_ms(3);
    make_agent("c3", "[\"sales\", \"support\"]");
    make_agent("c4", "[\"sales\"]");
    make_agent("c5", "[\"sales\"]");
    json_decref(set_status("c4", "busy"));
    json_decref(set_status("c5", "offline"));

    for (i = 0; i < 50; i++) {
        snprintf(call, sizeof(call), "call_%02d", i);
        lua_claim("sales", call, tag, sizeof(tag), id, sizeof(id));
        if (strcmp(tag, "ok") == 0) {
            cr_assert_lt(ok, 3);
            snprintf(first[ok++], sizeof(first[0]), "%s", id);
        } else {
            cr_assert_str_eq(tag, "unavailable", "claim %d: %s", i, tag);
            cr_assert_str_eq(id, "");
            none++;
        }
    }
    cr_assert_eq(ok, 3);
    cr_assert_eq(none, 47);
    /* Longest idle first: in the order they became available. */
    cr_assert_str_eq(first[0], "c1");
    cr_assert_str_eq(first[1], "c2");
    cr_assert_str_eq(first[2], "c3");
    for (i = 0; i < 3; i++) {
        char want[32];
        snprintf(want, sizeof(want), "call_%02d", i);
        a = get_agent(first[i]);
        cr_assert_str_eq(jstr(a, "status"), "busy");
        cr_assert_str_eq(jstr(a, "call_id"), want);
        json_decref(a);
    }
    cr_assert_eq(rint_cmd("EXISTS %s", "cg:aidle:acme:sales"), 0);
    cr_assert_eq(zscore("cg:aidle:acme:support", "c3"), -1, "claimed out of every group");
    cr_assert_eq(rint_cmd("ZCARD %s", "cg:agroup:acme:sales"), 5, "membership unchanged");
    a = get_agent("c5");
    cr_assert_str_eq(jstr(a, "status"), "offline", "offline agents are never claimed");
    json_decref(a);

    lua_claim("nosuchgroup", "call_x", tag, sizeof(tag), id, sizeof(id));
    cr_assert_str_eq(tag, "missing");
}

Test(agents, lua_claim_takes_the_longest_idle)
{
    char tag[32], id[80];

    make_agent("x1", "[\"q\"]");
    make_agent("x2", "[\"q\"]");
    json_decref(set_status("x1", "busy"));
    json_decref(set_status("x2", "busy"));
    json_decref(set_status("x2", "available"));
    gwtest_sleep_ms(3);
    json_decref(set_status("x1", "available"));
    lua_claim("q", "call_a", tag, sizeof(tag), id, sizeof(id));
    cr_assert_str_eq(tag, "ok");
    cr_assert_str_eq(id, "x2", "x2 has waited longer");
    /* A stale idle entry (an agent not available) is dropped, never handed out. */
    cr_assert_eq(rint_cmd("ZADD cg:aidle:acme:q 0 %s", "x2"), 1);
    lua_claim("q", "call_b", tag, sizeof(tag), id, sizeof(id));
    cr_assert_str_eq(tag, "ok");
    cr_assert_str_eq(id, "x1");
    lua_claim("q", "call_c", tag, sizeof(tag), id, sizeof(id));
    cr_assert_str_eq(tag, "unavailable");
}

Test(agents, lua_release_semantics)
{
    char tag[32], id[80], v[32];
    json_t *a;

    make_agent("r1", "[\"sales\"]");
    lua_claim("sales", "call_1", tag, sizeof(tag), id, sizeof(id));
    cr_assert_str_eq(id, "r1");

    cr_assert_eq(lua_release("r1", "call_other"), 0, "another call's end changes nothing");
    cr_assert_eq(lua_release("r1", ""), 0);
    a = get_agent("r1");
    cr_assert_str_eq(jstr(a, "status"), "busy");
    json_decref(a);
    cr_assert_eq(zscore("cg:aidle:acme:sales", "r1"), -1);

    gwtest_sleep_ms(3);
    cr_assert_eq(lua_release("r1", "call_1"), 1);
    a = get_agent("r1");
    cr_assert_str_eq(jstr(a, "status"), "available");
    cr_assert(json_is_null(json_object_get(a, "call_id")));
    json_decref(a);
    hget("r1", "idle_since", v, sizeof(v));
    cr_assert_eq(zscore("cg:aidle:acme:sales", "r1"), strtoll(v, NULL, 10), "idle again");
    cr_assert_eq(lua_release("r1", "call_1"), 0, "a second release is a no-op");

    /* Offline meanwhile: the call's end leaves it offline (call shown until then). */
    lua_claim("sales", "call_2", tag, sizeof(tag), id, sizeof(id));
    cr_assert_str_eq(id, "r1");
    a = set_status("r1", "offline");
    cr_assert_str_eq(jstr(a, "call_id"), "call_2");
    json_decref(a);
    cr_assert_eq(lua_release("r1", "call_2"), 0);
    a = get_agent("r1");
    cr_assert_str_eq(jstr(a, "status"), "offline");
    json_decref(a);
    cr_assert_eq(zscore("cg:aidle:acme:sales", "r1"), -1);

    /* Busy by hand: no call can release it. */
    a = set_status("r1", "busy");
    cr_assert(json_is_null(json_object_get(a, "call_id")));
    json_decref(a);
    cr_assert_eq(lua_release("r1", "call_2"), 0);
    cr_assert_eq(lua_release("nobody", "call_2"), 0);
}

Test(agents, lua_reserve_semantics)
{
    char tag[32];
    json_t *a;

    make_agent("n1", "[\"sales\"]");
    lua_reserve("n1", "call_1", "1", tag, sizeof(tag));
    cr_assert_str_eq(tag, "ok");
    cr_assert_eq(zscore("cg:aidle:acme:sales", "n1"), -1);
    a = get_agent("n1");
    cr_assert_str_eq(jstr(a, "status"), "busy");
    cr_assert_str_eq(jstr(a, "call_id"), "call_1");
    json_decref(a);

    lua_reserve("n1", "call_1", "1", tag, sizeof(tag));
    cr_assert_str_eq(tag, "ok", "the same call again is answered the same");
    lua_reserve("n1", "call_2", "1", tag, sizeof(tag));
    cr_assert_str_eq(tag, "unavailable");
    a = get_agent("n1");
    cr_assert_str_eq(jstr(a, "call_id"), "call_1", "an unavailable answer changes nothing");
    json_decref(a);
    lua_reserve("n1", "call_2", "0", tag, sizeof(tag));
    cr_assert_str_eq(tag, "ok");
    a = get_agent("n1");
    cr_assert_str_eq(jstr(a, "call_id"), "call_2", "the newest call owns the agent");
    json_decref(a);

    json_decref(set_status("n1", "offline"));
    lua_reserve("n1", "call_3", "1", tag, sizeof(tag));
    cr_assert_str_eq(tag, "unavailable");
    lua_reserve("n1", "call_3", "0", tag, sizeof(tag));
    cr_assert_str_eq(tag, "ok");
    a = get_agent("n1");
    cr_assert_str_eq(jstr(a, "status"), "offline", "an offline agent stays offline");
    json_decref(a);
    cr_assert_eq(zscore("cg:aidle:acme:sales", "n1"), -1);

    lua_reserve("nobody", "call_4", "0", tag, sizeof(tag));
    cr_assert_str_eq(tag, "missing");
}

/*
 * The view a placement answers is built from what the script read and
 * wrote, not read back: it must be the agent as Redis now holds it. Runs
 * one script (agents_lua_reserve, or agents_lua_claim when group is set)
 * and checks its tag and view.
 */
static void
placed_view_is_stored(const char *agent, const char *group, const char *call, const char *need,
                      const char *want_tag)
{
    redisReply *rep, *now;
    size_t i;

    if (group != NULL) {
        rep = redis_fixture_cmd(&gw.redis,
                                "EVAL %s 2 cg:aidle:acme:%s cg:agroup:acme:%s cg:agent:acme: "
                                "cg:aidle:acme: %s",
                                agents_lua_claim, group, group, call);
    } else {
        rep = redis_fixture_cmd(&gw.redis, "EVAL %s 1 cg:agent:acme:%s cg:aidle:acme: %s %s",
                                agents_lua_reserve, agent, call, need);
    }
    cr_assert_not_null(rep);
    cr_assert_eq(rep->type, REDIS_REPLY_ARRAY, "%s", rep->type == REDIS_REPLY_ERROR ? rep->str : "");
    cr_assert_eq(rep->elements, 2);
    cr_assert_str_eq(rep->element[0]->str, want_tag);
    now = redis_fixture_cmd(&gw.redis,
                            "HMGET cg:agent:acme:%s id doc status status_since call_id idle_since "
                            "updated_at",
                            agent);
    cr_assert_not_null(now);
    cr_assert_eq(rep->element[1]->elements, now->elements);
    for (i = 0; i < now->elements; i++) {
        const redisReply *a = rep->element[1]->element[i], *b = now->element[i];
        cr_assert_eq(a->type, b->type, "%s field %zu", call, i);
        if (b->type == REDIS_REPLY_STRING) {
            cr_assert_str_eq(a->str, b->str, "%s field %zu", call, i);
        }
    }
    freeReplyObject(now);
    freeReplyObject(rep);
}

Test(agents, lua_placed_view_is_stored)
{
    make_agent("w1", "[\"sales\", \"support\"]");
    gwtest_sleep_ms(3);
    placed_view_is_stored("w1", NULL, "call_1", "1", "ok"); /* available -> busy */
    cr_assert_eq(zscore("cg:aidle:acme:sales", "w1"), -1);
    cr_assert_eq(zscore("cg:aidle:acme:support", "w1"), -1);
    placed_view_is_stored("w1", NULL, "call_1", "1", "ok");          /* the same call again */
    placed_view_is_stored("w1", NULL, "call_2", "1", "unavailable"); /* busy, required */
    placed_view_is_stored("w1", NULL, "call_2", "0", "ok");          /* busy, takes the call */
    json_decref(set_status("w1", "offline"));
    placed_view_is_stored("w1", NULL, "call_3", "0", "ok"); /* offline stays offline */
    json_decref(set_status("w1", "available"));
    gwtest_sleep_ms(3);
    placed_view_is_stored("w1", "support", "call_4", NULL, "ok");
    cr_assert_eq(zscore("cg:aidle:acme:sales", "w1"), -1, "claimed out of every group");
}

/* ---- the placement functions, in this process, from two replicas --------------------------- */

struct replica {
    struct app app;
    struct conf conf;
};

struct outcome {
    int done;
    enum agents_result res;
    char agent[80];
    char call_id[80];
    char status[16];
    json_t *vendors;
};

static int in_call; /* set while an agents_* function runs: callbacks must not see it */
static int outcomes_done;

static void
on_outcome(enum agents_result res, json_t *agent, void *arg)
{
    struct outcome *o = arg;

    cr_assert_eq(in_call, 0, "callback ran inside the call");
    cr_assert_eq(o->done, 0, "callback ran twice");
    o->done = 1;
    o->res = res;
    snprintf(o->agent, sizeof(o->agent), "%s", agent != NULL ? jstr(agent, "id") : "");
    snprintf(o->call_id, sizeof(o->call_id), "%s",
             agent != NULL && jstr(agent, "call_id") ? jstr(agent, "call_id") : "");
    snprintf(o->status, sizeof(o->status), "%s", agent != NULL ? jstr(agent, "status") : "");
    o->vendors = agent != NULL ? json_incref(json_object_get(agent, "vendors")) : NULL;
    outcomes_done++;
}

static void
replica_start(struct replica *rp, struct event_base *base)
{
    struct store_opts o;

    memset(rp, 0, sizeof(*rp));
    memset(&o, 0, sizeof(o));
    o.unix_path = gw.redis.unix_path;
    o.connect_timeout_ms = 2000;
    o.command_timeout_ms = 5000;
    o.backoff_min_ms = 50;
    o.backoff_max_ms = 500;
    rp->conf.redis.key_prefix = (char *)"cg:";
    rp->app.base = base;
    rp->app.conf = &rp->conf;
    rp->app.store = store_new(base, &o);
    cr_assert_not_null(rp->app.store);
}

/* Run the loop until n callbacks have come (or 10 s). */
static void
run_until(struct event_base *base, int n)
{
    int i;

    for (i = 0; i < 1000 && outcomes_done < n; i++) {
        struct timeval tick = {0, 10000};
        event_base_loopexit(base, &tick);
        event_base_dispatch(base);
    }
    cr_assert_eq(outcomes_done, n, "only %d of %d answers", outcomes_done, n);
}

/* Run the loop until the agent's stored status is available (or 5 s). */
static void
wait_available(struct event_base *base, const char *id)
{
    char status[32] = "";
    int i;

    for (i = 0; i < 500; i++) {
        struct timeval tick = {0, 10000};
        event_base_loopexit(base, &tick);
        event_base_dispatch(base);
        hget(id, "status", status, sizeof(status));
        if (strcmp(status, "available") == 0) {
            return;
        }
    }
    cr_assert_fail("%s was not released: %s", id, status);
}

static void
replicas_connect(struct event_base *base, struct replica *rp, int n)
{
    int i, k, up = 0;

    for (i = 0; i < 500 && up < n; i++) {
        struct timeval tick = {0, 10000};
        event_base_loopexit(base, &tick);
        event_base_dispatch(base);
        for (k = 0, up = 0; k < n; k++) {
            up += store_is_connected(rp[k].app.store);
        }
    }
    cr_assert_eq(up, n, "the replicas did not connect to Redis");
}

Test(agents, claim_race_between_two_replicas)
{
    struct event_base *base = event_base_new();
    struct replica rp[2];
    struct outcome out[50], rel;
    char call[50][32];
    int i, j, ok = 0, unavailable = 0;

    cr_assert_not_null(base);
    make_agent("k1", "[\"sales\"]");
    make_agent("k2", "[\"sales\"]");
    make_agent("k3", "[\"sales\"]");
    make_agent("k4", "[\"sales\"]");
    json_decref(set_status("k4", "busy"));
    json_decref(put_agent("k1",
                          "{\"name\": \"K1\", \"groups\": [\"sales\"], \"vendors\": "
                          "{\"callerdesk\": {\"member_id\": \"77\"}}}",
                          200));
    replica_start(&rp[0], base);
    replica_start(&rp[1], base);
    replicas_connect(base, rp, 2);

    /* 50 claims at once, alternating between the replicas' connections. */
    memset(out, 0, sizeof(out));
    outcomes_done = 0;
    for (i = 0; i < 50; i++) {
        snprintf(call[i], sizeof(call[i]), "call_race_%02d", i);
        in_call = 1;
        agents_claim_group(&rp[i % 2].app, "acme", "sales", call[i], on_outcome, &out[i]);
        in_call = 0;
    }
    run_until(base, 50);
    for (i = 0; i < 50; i++) {
        if (out[i].res == AGENTS_OK) {
            ok++;
            cr_assert_str_eq(out[i].status, "busy");
            cr_assert_str_eq(out[i].call_id, call[i]);
            for (j = 0; j < i; j++) {
                cr_assert(out[j].res != AGENTS_OK || strcmp(out[j].agent, out[i].agent) != 0,
                          "%s claimed twice", out[i].agent);
            }
            if (strcmp(out[i].agent, "k1") == 0) {
                json_t *fake = json_pack("{s:O}", "vendors", out[i].vendors);
                cr_assert_str_eq(agents_identity(fake, "callerdesk"), "member:77");
                json_decref(fake);
            }
        } else {
            cr_assert_eq(out[i].res, AGENTS_UNAVAILABLE, "claim %d: %d", i, out[i].res);
            cr_assert_str_eq(out[i].agent, "", "no agent with a group answer");
            unavailable++;
        }
        json_decref(out[i].vendors);
    }
    cr_assert_eq(ok, 3);
    cr_assert_eq(unavailable, 47);

    /* Unknown group, invalid names. */
    memset(out, 0, sizeof(out));
    outcomes_done = 0;
    in_call = 1;
    agents_claim_group(&rp[0].app, "acme", "nosuch", "call_z", on_outcome, &out[0]);
    agents_claim_group(&rp[1].app, "acme", "bad group", "call_z", on_outcome, &out[1]);
    agents_reserve(&rp[0].app, "acme", "nobody", "call_z", 1, on_outcome, &out[2]);
    agents_reserve(&rp[0].app, "acme", "k4", "call_y", 1, on_outcome, &out[3]);
    agents_reserve(&rp[1].app, "acme", "k4", "call_z", 0, on_outcome, &out[4]);
    agents_claim_group(&rp[1].app, "globex", "sales", "call_z", on_outcome, &out[5]);
    in_call = 0;
    run_until(base, 6);
    cr_assert_eq(out[0].res, AGENTS_NOT_FOUND);
    cr_assert_eq(out[1].res, AGENTS_NOT_FOUND);
    cr_assert_eq(out[2].res, AGENTS_NOT_FOUND);
    cr_assert_eq(out[3].res, AGENTS_UNAVAILABLE);
    cr_assert_str_eq(out[3].agent, "k4", "a named agent comes with its refusal");
    cr_assert_str_eq(out[3].status, "busy");
    cr_assert_eq(out[4].res, AGENTS_OK);
    cr_assert_str_eq(out[4].call_id, "call_z");
    cr_assert_eq(out[5].res, AGENTS_NOT_FOUND, "another tenant's group is unknown");
    for (i = 0; i < 6; i++) {
        json_decref(out[i].vendors);
    }

    /* Release claimed agents (fire and forget); then they can be claimed again. */
    memset(&rel, 0, sizeof(rel));
    outcomes_done = 0;
    agents_release(&rp[0].app, "acme", "k2", "call_wrong");
    agents_release(&rp[0].app, "acme", "k4", "call_z");
    for (i = 0; i < 50; i++) {
        /* k2 was claimed by one of the race's calls: release it with that call. */
        agents_release(&rp[0].app, "acme", "k2", call[i]);
    }
    /*
     * No answer comes back from a release, so watch Redis. (Not ordered by
     * the connection: the first EVALSHA of a script Redis has not seen is
     * resent after its NOSCRIPT and a SCRIPT LOAD, behind whatever followed it.)
     */
    wait_available(base, "k2");
    wait_available(base, "k4");
    in_call = 1;
    agents_claim_group(&rp[0].app, "acme", "sales", "call_after", on_outcome, &rel);
    in_call = 0;
    run_until(base, 1);
    cr_assert_eq(rel.res, AGENTS_OK, "res %d agent %s", rel.res, rel.agent);
    cr_assert(strcmp(rel.agent, "k2") == 0 || strcmp(rel.agent, "k4") == 0, "%s", rel.agent);
    json_decref(rel.vendors);
    {
        json_t *a = get_agent(strcmp(rel.agent, "k2") == 0 ? "k4" : "k2");
        cr_assert_str_eq(jstr(a, "status"), "available", "both were released");
        json_decref(a);
    }

    agents_free_scripts(&rp[0].app);
    agents_free_scripts(&rp[1].app);
    store_free(rp[0].app.store);
    store_free(rp[1].app.store);
    event_base_free(base);
}

/* ---- Redis trouble ------------------------------------------------------------------------ */

static void
assert_retry_after(struct http_resp *r)
{
    char v[16];

    cr_assert_not_null(http_header(r, "Retry-After", v, sizeof(v)), "no Retry-After");
}

Test(agents, redis_down_is_503)
{
    struct http_resp r;

    make_agent("d1", "[]");
    redis_fixture_kill(&gw.redis);
    cr_assert_eq(req("GET", GWTEST_ACME_KEY, "/v1/agents/d1", NULL, &r), 0);
    assert_problem(&r, 503, "store-unavailable");
    assert_retry_after(&r);
    http_resp_free(&r);
    cr_assert_eq(req("PUT", GWTEST_ACME_KEY, "/v1/agents/d1", "{\"name\": \"D\"}", &r), 0);
    assert_problem(&r, 503, "store-unavailable");
    assert_retry_after(&r);
    http_resp_free(&r);
    cr_assert_eq(req("GET", GWTEST_ACME_KEY, "/v1/agents", NULL, &r), 0);
    assert_problem(&r, 503, "store-unavailable");
    http_resp_free(&r);
    cr_assert_eq(req("PUT", GWTEST_ACME_KEY, "/v1/agents/d1/status", "{\"status\": \"busy\"}", &r),
                 0);
    assert_problem(&r, 503, "store-unavailable");
    http_resp_free(&r);
    cr_assert_eq(req("DELETE", GWTEST_ACME_KEY, "/v1/agents/d1", NULL, &r), 0);
    assert_problem(&r, 503, "store-unavailable");
    http_resp_free(&r);
    cr_assert_eq(redis_fixture_restart(&gw.redis), 0);
    cr_assert(gwtest_wait_ready(&gw, 5000), "callgate did not reconnect");
}

/* A Redis that hangs longer than the request may wait: the deadline answers. */
static struct gwtest_opts deadline_opts = {
    .vendor_timeout_ms = 100,
    .request_timeout_ms = 1200,
    .redis_command_timeout_ms = 4000,
};

static void
setup_deadline(void)
{
    gwtest_start(&gw, &deadline_opts);
}

TestSuite(agents_deadline, .init = setup_deadline, .fini = teardown, .timeout = 120);

Test(agents_deadline, hung_redis_answers_at_the_deadline)
{
    static const char *const methods[] = {"GET", "PUT", "DELETE", "GET", "PUT"};
    static const char *const paths[] = {"/v1/agents/h1", "/v1/agents/h1", "/v1/agents/h1",
                                        "/v1/agents?group=x", "/v1/agents/h1/status"};
    static const char *const bodies[] = {NULL, "{\"name\": \"H\"}", NULL, NULL,
                                         "{\"status\": \"busy\"}"};
    struct http_resp r;
    size_t i;

    make_agent("h1", "[\"x\"]");
    redis_fixture_pause(&gw.redis);
    for (i = 0; i < GW_ARRAY_LEN(methods); i++) {
        cr_assert_eq(req(methods[i], GWTEST_ACME_KEY, paths[i], bodies[i], &r), 0);
        assert_problem(&r, 503, "store-unavailable");
        assert_retry_after(&r);
        cr_assert_lt(r.ms, 3000, "%s %s took %.0f ms", methods[i], paths[i], r.ms);
        if (i == 0) {
            /* The first one waited for the request deadline (the store's is later). */
            cr_assert_geq(r.ms, 1000, "%.0f ms", r.ms);
            cr_assert_not_null(strstr(jstr(r.json, "detail"), "in time"), "%s", r.body);
        }
        http_resp_free(&r);
    }
    redis_fixture_resume(&gw.redis);
    cr_assert(gwtest_wait_ready(&gw, 8000), "callgate did not recover");
    json_decref(get_agent("h1"));
}
