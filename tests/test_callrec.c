/*
 * test_callrec.c: call statuses and their rules, the rendering of a call
 * record into the tenant's call object, and reading a record out of a Redis
 * reply (callrec.c). No Redis: the replies are built by hand, and the Lua
 * scripts, which need a real Redis, are exercised by the integration suites;
 * here they are only checked to be present.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "callrec.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK() __lsan_do_recoverable_leak_check()
#else
#define LEAK_CHECK() 0
#endif

#define CALL_ID "call_01J1Z8Q4W5ABCDEFGHJKMNPQRS"
#define VENDOR_REC_URL "https://api.clouddialer.in/recordings/crm_5deb67aa-secret.wav"

static void
teardown(void)
{
    if (LEAK_CHECK() != 0) {
        abort(); /* an assertion in .fini would not fail the test */
    }
}

TestSuite(callrec, .fini = teardown, .timeout = 10);

/* ---------------------------------------------------------------------------
 * Hand-built hiredis replies: one array of strings (NULL entries are nil).
 */

#define FAKE_MAX 64

struct fake_reply {
    redisReply top;
    redisReply items[FAKE_MAX];
    redisReply *ptrs[FAKE_MAX];
};

static redisReply *
fake_array(struct fake_reply *f, const char *const *strs, size_t n)
{
    size_t i;

    cr_assert_leq(n, FAKE_MAX);
    memset(f, 0, sizeof(*f));
    f->top.type = REDIS_REPLY_ARRAY;
    f->top.elements = n;
    f->top.element = n > 0 ? f->ptrs : NULL;
    for (i = 0; i < n; i++) {
        redisReply *r = &f->items[i];
        if (strs[i] == NULL) {
            r->type = REDIS_REPLY_NIL;
        } else {
            r->type = REDIS_REPLY_STRING;
            r->str = (char *)strs[i];
            r->len = strlen(strs[i]);
        }
        f->ptrs[i] = r;
    }
    return &f->top;
}

/* ---------------------------------------------------------------------------
 * Statuses
 */

Test(callrec, status_text_parse_round_trip, .timeout = 10)
{
    int i;

    for (i = 0; i < CALL_STATUS_MAX; i++) {
        enum call_status s = CALL_STATUS_MAX;
        cr_assert_not_null(call_status_text[i], "status %d has no name", i);
        cr_assert_eq(call_status_parse(call_status_text[i], &s), 0, "%s", call_status_text[i]);
        cr_assert_eq((int)s, i, "%s parsed as %d", call_status_text[i], (int)s);
    }
    cr_assert_str_eq(call_status_text[CALL_QUEUED], "queued");
    cr_assert_str_eq(call_status_text[CALL_SCHEDULED], "scheduled");
    cr_assert_str_eq(call_status_text[CALL_RINGING], "ringing");
    cr_assert_str_eq(call_status_text[CALL_IN_PROGRESS], "in_progress");
    cr_assert_str_eq(call_status_text[CALL_COMPLETED], "completed");
    cr_assert_str_eq(call_status_text[CALL_NO_ANSWER], "no_answer");
    cr_assert_str_eq(call_status_text[CALL_BUSY], "busy");
    cr_assert_str_eq(call_status_text[CALL_FAILED], "failed");
    cr_assert_str_eq(call_status_text[CALL_CANCELED], "canceled");
    cr_assert_str_eq(call_status_text[CALL_UNKNOWN], "unknown");
}

Test(callrec, status_parse_rejects, .timeout = 10)
{
    static const char *const bad[] = {"QUEUED", "", "Queued", "queued ", " queued", "answered",
                                      "cancelled", "in-progress", "complete"};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum call_status s = CALL_RINGING;
        cr_assert_eq(call_status_parse(bad[i], &s), -1, "\"%s\" accepted", bad[i]);
        cr_assert_eq(s, CALL_RINGING, "output written on failure");
    }
    {
        enum call_status s = CALL_RINGING;
        cr_assert_eq(call_status_parse(NULL, &s), -1);
        cr_assert_eq(s, CALL_RINGING);
    }
}

Test(callrec, status_terminal, .timeout = 10)
{
    int i;

    for (i = 0; i < CALL_STATUS_MAX; i++) {
        int want = i == CALL_COMPLETED || i == CALL_NO_ANSWER || i == CALL_BUSY ||
                   i == CALL_FAILED || i == CALL_CANCELED;
        cr_assert_eq(!!call_status_terminal((enum call_status)i), want, "%s",
                     call_status_text[i]);
    }
}

Test(callrec, status_rank_order, .timeout = 10)
{
    int i;

    cr_assert_eq(call_status_rank(CALL_QUEUED), call_status_rank(CALL_SCHEDULED));
    cr_assert_lt(call_status_rank(CALL_QUEUED), call_status_rank(CALL_RINGING));
    cr_assert_lt(call_status_rank(CALL_RINGING), call_status_rank(CALL_IN_PROGRESS));
    cr_assert_geq(call_status_rank(CALL_QUEUED), 0);
    cr_assert_eq(call_status_rank(CALL_UNKNOWN), -1);
    for (i = 0; i < CALL_STATUS_MAX; i++) {
        if (call_status_terminal((enum call_status)i)) {
            /* every terminal status outranks every live one, and they rank equal */
            cr_assert_gt(call_status_rank((enum call_status)i), call_status_rank(CALL_IN_PROGRESS),
                         "%s", call_status_text[i]);
            cr_assert_eq(call_status_rank((enum call_status)i), call_status_rank(CALL_COMPLETED),
                         "%s", call_status_text[i]);
        }
    }
}

Test(callrec, status_event_types, .timeout = 10)
{
    static const struct {
        enum call_status s;
        const char *type;
    } cases[] = {
        {CALL_QUEUED, "call.queued"},       {CALL_SCHEDULED, "call.scheduled"},
        {CALL_RINGING, "call.ringing"},     {CALL_IN_PROGRESS, "call.answered"},
        {CALL_COMPLETED, "call.completed"}, {CALL_NO_ANSWER, "call.no_answer"},
        {CALL_BUSY, "call.busy"},           {CALL_FAILED, "call.failed"},
        {CALL_CANCELED, "call.canceled"},   {CALL_UNKNOWN, "call.unknown"},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cr_assert_str_eq(call_status_event_type(cases[i].s), cases[i].type);
    }
    cr_assert_str_eq(call_status_event_type(CALL_STATUS_MAX), "call.unknown");
}

/* ---------------------------------------------------------------------------
 * Lua scripts: present (their behaviour is tested against Redis elsewhere)
 */

Test(callrec, lua_scripts_present, .timeout = 10)
{
    const char *const scripts[] = {callrec_lua_begin, callrec_lua_finish, callrec_lua_event};
    size_t i;

    for (i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++) {
        cr_assert_gt(strlen(scripts[i]), 0, "script %zu is empty", i);
        cr_assert_not_null(strstr(scripts[i], "redis.call"), "script %zu", i);
    }
}

/* ---------------------------------------------------------------------------
 * callrec_fields_from_reply / callrec_field
 */

Test(callrec, fields_from_hgetall, .timeout = 10)
{
    static const char *const kv[] = {"id", CALL_ID, "status", "ringing", "tenant", "acme",
                                     "to", "+919876543210"};
    struct fake_reply f;
    json_t *o = callrec_fields_from_reply(fake_array(&f, kv, 8), 0);

    cr_assert_not_null(o);
    cr_assert_eq(json_object_size(o), 4);
    cr_assert_str_eq(callrec_field(o, "id"), CALL_ID);
    cr_assert_str_eq(callrec_field(o, "status"), "ringing");
    cr_assert_str_eq(callrec_field(o, "tenant"), "acme");
    cr_assert_str_eq(callrec_field(o, "to"), "+919876543210");
    cr_assert_null(callrec_field(o, "from"));
    json_decref(o);
}

Test(callrec, fields_from_script_reply_offset, .timeout = 10)
{
    static const char *const kv[] = {"ok", "1", "id", CALL_ID, "status", "completed"};
    struct fake_reply f;
    json_t *o = callrec_fields_from_reply(fake_array(&f, kv, 6), 2);

    cr_assert_not_null(o);
    cr_assert_eq(json_object_size(o), 2);
    cr_assert_str_eq(callrec_field(o, "id"), CALL_ID);
    cr_assert_str_eq(callrec_field(o, "status"), "completed");
    cr_assert_null(callrec_field(o, "ok"));
    json_decref(o);
}

Test(callrec, fields_skip_non_strings_and_odd_tail, .timeout = 10)
{
    static const char *const kv[] = {"id", CALL_ID, "status", NULL, "to", "+919876543210",
                                     "dangling"};
    struct fake_reply f;
    redisReply *r = fake_array(&f, kv, 7);
    json_t *o;

    /* an integer value too */
    f.items[5].type = REDIS_REPLY_INTEGER;
    f.items[5].integer = 7;
    f.items[5].str = NULL;
    f.items[5].len = 0;
    o = callrec_fields_from_reply(r, 0);
    cr_assert_not_null(o);
    cr_assert_eq(json_object_size(o), 1, "only id is a string pair");
    cr_assert_str_eq(callrec_field(o, "id"), CALL_ID);
    cr_assert_null(json_object_get(o, "dangling"));
    json_decref(o);
}

Test(callrec, fields_binary_value_length, .timeout = 10)
{
    static const char *const kv[] = {"id", CALL_ID, "reference", "crm-123"};
    struct fake_reply f;
    redisReply *r = fake_array(&f, kv, 4);
    json_t *o;

    f.items[3].len = 3; /* the reply's length is used, not strlen */
    o = callrec_fields_from_reply(r, 0);
    cr_assert_not_null(o);
    cr_assert_str_eq(callrec_field(o, "reference"), "crm");
    json_decref(o);
}

Test(callrec, fields_null_or_empty, .timeout = 10)
{
    static const char *const no_id[] = {"status", "queued", "to", "+919876543210"};
    static const char *const one[] = {"id"};
    struct fake_reply f;
    redisReply nil = {.type = REDIS_REPLY_NIL};
    redisReply err = {.type = REDIS_REPLY_ERROR, .str = "ERR x", .len = 5};

    cr_assert_null(callrec_fields_from_reply(NULL, 0));
    cr_assert_null(callrec_fields_from_reply(&nil, 0));
    cr_assert_null(callrec_fields_from_reply(&err, 0));
    cr_assert_null(callrec_fields_from_reply(fake_array(&f, NULL, 0), 0));
    cr_assert_null(callrec_fields_from_reply(fake_array(&f, no_id, 4), 0));
    cr_assert_null(callrec_fields_from_reply(fake_array(&f, one, 1), 0));
    /* first beyond the end */
    cr_assert_null(callrec_fields_from_reply(fake_array(&f, no_id, 4), 4));
    cr_assert_null(callrec_fields_from_reply(fake_array(&f, no_id, 4), 9));
}

Test(callrec, field_helper, .timeout = 10)
{
    json_t *o = json_pack("{s:s, s:i, s:n}", "a", "x", "b", 1, "c");

    cr_assert_str_eq(callrec_field(o, "a"), "x");
    cr_assert_null(callrec_field(o, "b"));
    cr_assert_null(callrec_field(o, "c"));
    cr_assert_null(callrec_field(o, "d"));
    cr_assert_null(callrec_field(NULL, "a"));
    json_decref(o);
}

/* ---------------------------------------------------------------------------
 * callrec_render
 */

static const char *const basic_keys[] = {"id",        "status",         "type",  "to",
                                         "from",      "agent",          "reference", "vendor",
                                         "vendor_call_id", "route",     "created_at", "tags",
                                         "attempts",  "scheduled_at", "agent_action_required",
                                         NULL};
static const char *const detail_keys[] = {"started_at",  "answered_at",      "ended_at",
                                          "disposition", "vendor_status",    "duration_seconds",
                                          "recording_url", "legs",           NULL};
static const char *const internal_keys[] = {"tenant", "rank", "callback_url",
                                            "recording_vendor_url", "updated_at", NULL};

static int
in_list(const char *const *list, const char *key)
{
    size_t i;

    for (i = 0; list[i] != NULL; i++) {
        if (strcmp(list[i], key) == 0) {
            return 1;
        }
    }
    return 0;
}

/* o has exactly the basic keys, plus the detail keys when detail, plus "events" when events. */
static void
assert_key_set(const json_t *o, int detail, int events)
{
    const char *key;
    json_t *v;
    size_t want = 15;
    size_t i;

    for (i = 0; basic_keys[i] != NULL; i++) {
        cr_assert_not_null(json_object_get(o, basic_keys[i]), "missing %s", basic_keys[i]);
    }
    for (i = 0; detail_keys[i] != NULL; i++) {
        cr_assert_eq(json_object_get(o, detail_keys[i]) != NULL, detail, "%s", detail_keys[i]);
    }
    cr_assert_eq(json_object_get(o, "events") != NULL, events, "events");
    json_object_foreach((json_t *)o, key, v) {
        cr_assert(in_list(basic_keys, key) || (detail && in_list(detail_keys, key)) ||
                      (events && strcmp(key, "events") == 0),
                  "unexpected key \"%s\"", key);
        cr_assert(!in_list(internal_keys, key), "internal field \"%s\" leaked", key);
    }
    want += detail ? 8 : 0;
    want += events ? 1 : 0;
    cr_assert_eq(json_object_size(o), want);
}

/* A full record as the store keeps it (every field a string). */
static json_t *
full_fields(void)
{
    json_t *f = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s,"
        " s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
        "id", CALL_ID, "tenant", "acme", "status", "completed", "rank", "3", "type", "outbound",
        "to", "+919876543210", "from", "+919800000000", "agent", "agent.017", "reference",
        "crm-123", "vendor", "clouddialer", "vendor_call_id", "5deb67aa-1", "route", "india",
        "created_at", "2026-07-03T09:59:58Z", "updated_at", "2026-07-03T10:02:31Z", "tags",
        "{\"department\":\"sales\"}", "attempts",
        "[{\"vendor\":\"clouddialer\",\"outcome\":\"accepted\",\"ms\":44}]", "callback_url",
        "https://hooks.acme.test/cb", "started_at", "2026-07-03T10:00:00Z", "answered_at",
        "2026-07-03T10:00:00Z", "ended_at", "2026-07-03T10:02:30Z", "disposition", "CRM_CALL",
        "vendor_status", "ANSWER", "duration_seconds", "150", "recording_vendor_url",
        VENDOR_REC_URL, "legs",
        "[{\"role\":\"agent\",\"number\":\"agent.017\",\"status\":\"left\"},"
        "{\"role\":\"customer\",\"number\":\"9876543210\",\"status\":\"left\"}]");

    cr_assert_not_null(f);
    return f;
}

static const char *
s_of(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    cr_assert(json_is_string(v), "\"%s\" is not a string", key);
    return json_string_value(v);
}

Test(callrec, render_basic_shape, .timeout = 10)
{
    json_t *fields = full_fields();
    json_t *o = callrec_render(fields, NULL, 0);
    json_t *tags, *attempts;

    cr_assert_not_null(o);
    assert_key_set(o, 0, 0);
    cr_assert_str_eq(s_of(o, "id"), CALL_ID);
    cr_assert_str_eq(s_of(o, "status"), "completed");
    cr_assert_str_eq(s_of(o, "type"), "outbound");
    cr_assert_str_eq(s_of(o, "to"), "+919876543210");
    cr_assert_str_eq(s_of(o, "from"), "+919800000000");
    cr_assert_str_eq(s_of(o, "agent"), "agent.017");
    cr_assert_str_eq(s_of(o, "reference"), "crm-123");
    cr_assert_str_eq(s_of(o, "vendor"), "clouddialer");
    cr_assert_str_eq(s_of(o, "vendor_call_id"), "5deb67aa-1");
    cr_assert_str_eq(s_of(o, "route"), "india");
    cr_assert_str_eq(s_of(o, "created_at"), "2026-07-03T09:59:58Z");
    tags = json_object_get(o, "tags");
    cr_assert(json_is_object(tags));
    cr_assert_str_eq(s_of(tags, "department"), "sales");
    attempts = json_object_get(o, "attempts");
    cr_assert(json_is_array(attempts));
    cr_assert_eq(json_array_size(attempts), 1);
    cr_assert_str_eq(s_of(json_array_get(attempts, 0), "outcome"), "accepted");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(attempts, 0), "ms")), 44);
    json_decref(o);
    json_decref(fields);
}

Test(callrec, render_minimal_record, .timeout = 10)
{
    json_t *fields = json_pack("{s:s, s:s, s:s, s:s}", "id", CALL_ID, "status", "queued", "type",
                               "outbound", "to", "+919876543210");
    json_t *o = callrec_render(fields, NULL, 0);
    size_t i;
    static const char *const nulls[] = {"from", "agent", "reference", "vendor",
                                        "vendor_call_id", "route", "created_at"};

    cr_assert_not_null(o);
    assert_key_set(o, 0, 0);
    for (i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++) {
        cr_assert(json_is_null(json_object_get(o, nulls[i])), "%s is not null", nulls[i]);
    }
    cr_assert(json_is_object(json_object_get(o, "tags")));
    cr_assert_eq(json_object_size(json_object_get(o, "tags")), 0);
    cr_assert(json_is_array(json_object_get(o, "attempts")));
    cr_assert_eq(json_array_size(json_object_get(o, "attempts")), 0);
    json_decref(o);

    o = callrec_render(fields, NULL, 1);
    cr_assert_not_null(o);
    assert_key_set(o, 1, 0);
    cr_assert(json_is_null(json_object_get(o, "started_at")));
    cr_assert(json_is_null(json_object_get(o, "answered_at")));
    cr_assert(json_is_null(json_object_get(o, "ended_at")));
    cr_assert(json_is_null(json_object_get(o, "disposition")));
    cr_assert(json_is_null(json_object_get(o, "vendor_status")));
    cr_assert(json_is_null(json_object_get(o, "duration_seconds")));
    cr_assert(json_is_null(json_object_get(o, "recording_url")));
    cr_assert(json_is_array(json_object_get(o, "legs")));
    cr_assert_eq(json_array_size(json_object_get(o, "legs")), 0);
    json_decref(o);
    json_decref(fields);
}

Test(callrec, render_empty_strings_are_null, .timeout = 10)
{
    json_t *fields = json_pack("{s:s, s:s, s:s, s:s}", "id", CALL_ID, "status", "queued",
                               "reference", "", "recording_vendor_url", "");
    json_t *o = callrec_render(fields, NULL, 1);

    cr_assert_not_null(o);
    cr_assert(json_is_null(json_object_get(o, "reference")));
    cr_assert(json_is_null(json_object_get(o, "recording_url")));
    json_decref(o);
    json_decref(fields);
}

Test(callrec, render_unparsable_json_fields_default, .timeout = 10)
{
    json_t *fields = json_pack("{s:s, s:s, s:s, s:s}", "id", CALL_ID, "tags", "{not json",
                               "attempts", "", "legs", "[1,");
    json_t *o = callrec_render(fields, NULL, 1);

    cr_assert_not_null(o);
    cr_assert(json_is_object(json_object_get(o, "tags")));
    cr_assert_eq(json_object_size(json_object_get(o, "tags")), 0);
    cr_assert(json_is_array(json_object_get(o, "attempts")));
    cr_assert_eq(json_array_size(json_object_get(o, "attempts")), 0);
    cr_assert(json_is_array(json_object_get(o, "legs")));
    cr_assert_eq(json_array_size(json_object_get(o, "legs")), 0);
    json_decref(o);
    json_decref(fields);
}

Test(callrec, render_detail, .timeout = 10)
{
    json_t *fields = full_fields();
    json_t *o = callrec_render(fields, NULL, 1);
    json_t *legs, *dur;
    char *text;
    char want[128];

    cr_assert_not_null(o);
    assert_key_set(o, 1, 0);
    cr_assert_str_eq(s_of(o, "started_at"), "2026-07-03T10:00:00Z");
    cr_assert_str_eq(s_of(o, "answered_at"), "2026-07-03T10:00:00Z");
    cr_assert_str_eq(s_of(o, "ended_at"), "2026-07-03T10:02:30Z");
    cr_assert_str_eq(s_of(o, "disposition"), "CRM_CALL");
    cr_assert_str_eq(s_of(o, "vendor_status"), "ANSWER");
    dur = json_object_get(o, "duration_seconds");
    cr_assert(json_is_integer(dur), "duration_seconds is not an integer");
    cr_assert_eq(json_integer_value(dur), 150);
    snprintf(want, sizeof(want), "/v1/calls/%s/recording", CALL_ID);
    cr_assert_str_eq(s_of(o, "recording_url"), want);
    legs = json_object_get(o, "legs");
    cr_assert(json_is_array(legs));
    cr_assert_eq(json_array_size(legs), 2);
    cr_assert_str_eq(s_of(json_array_get(legs, 1), "role"), "customer");
    cr_assert_str_eq(s_of(json_array_get(legs, 1), "status"), "left");

    /* the vendor's recording URL (its own access control) never reaches the tenant */
    text = json_dumps(o, JSON_COMPACT);
    cr_assert_not_null(text);
    cr_assert_null(strstr(text, VENDOR_REC_URL), "%s", text);
    cr_assert_null(strstr(text, "crm_5deb67aa-secret"), "%s", text);
    cr_assert_null(strstr(text, "api.clouddialer.in"), "%s", text);
    cr_assert_null(strstr(text, "hooks.acme.test"), "callback_url leaked: %s", text);
    free(text);
    json_decref(o);
    json_decref(fields);
}

Test(callrec, render_does_not_modify_fields, .timeout = 10)
{
    json_t *fields = full_fields();
    json_t *copy = json_deep_copy(fields);
    json_t *o = callrec_render(fields, NULL, 1);

    cr_assert_not_null(o);
    cr_assert(json_equal(fields, copy));
    cr_assert_eq(fields->refcount, 1);
    json_decref(o);
    json_decref(copy);
    json_decref(fields);
}

Test(callrec, render_events, .timeout = 10)
{
    static const char *const evs[] = {
        "{\"applied\":true,\"status\":\"ringing\",\"at\":\"2026-07-03T09:59:59Z\"}",
        "not json",
        NULL,
        "{\"applied\":false,\"status\":\"queued\",\"at\":\"2026-07-03T10:00:01Z\"}",
        "{\"applied\":true,\"status\":\"completed\",\"at\":\"2026-07-03T10:02:31Z\"}",
    };
    struct fake_reply f;
    json_t *fields = full_fields();
    json_t *o = callrec_render(fields, fake_array(&f, evs, 5), 1);
    json_t *events;

    cr_assert_not_null(o);
    assert_key_set(o, 1, 1);
    events = json_object_get(o, "events");
    cr_assert(json_is_array(events));
    cr_assert_eq(json_array_size(events), 3, "unreadable entries are skipped");
    cr_assert_str_eq(s_of(json_array_get(events, 0), "status"), "ringing");
    cr_assert(json_is_false(json_object_get(json_array_get(events, 1), "applied")));
    cr_assert_str_eq(s_of(json_array_get(events, 2), "status"), "completed");
    json_decref(o);
    json_decref(fields);
}

Test(callrec, render_events_empty_or_odd, .timeout = 10)
{
    struct fake_reply f;
    redisReply nil = {.type = REDIS_REPLY_NIL};
    json_t *fields = full_fields();
    json_t *o;

    /* an empty history: an empty array */
    o = callrec_render(fields, fake_array(&f, NULL, 0), 1);
    cr_assert_not_null(o);
    cr_assert(json_is_array(json_object_get(o, "events")));
    cr_assert_eq(json_array_size(json_object_get(o, "events")), 0);
    json_decref(o);
    /* a reply that is not an array: an empty array, no crash */
    o = callrec_render(fields, &nil, 1);
    cr_assert_not_null(o);
    cr_assert(json_is_array(json_object_get(o, "events")));
    cr_assert_eq(json_array_size(json_object_get(o, "events")), 0);
    json_decref(o);
    /* events belong to the detailed object only */
    o = callrec_render(fields, fake_array(&f, NULL, 0), 0);
    cr_assert_not_null(o);
    assert_key_set(o, 0, 0);
    json_decref(o);
    json_decref(fields);
}

Test(callrec, render_without_id, .timeout = 10)
{
    json_t *fields = json_pack("{s:s}", "status", "queued");
    json_t *bad_id = json_pack("{s:i}", "id", 7);

    cr_assert_null(callrec_render(fields, NULL, 0));
    cr_assert_null(callrec_render(fields, NULL, 1));
    cr_assert_null(callrec_render(bad_id, NULL, 1));
    cr_assert_null(callrec_render(NULL, NULL, 1));
    json_decref(fields);
    json_decref(bad_id);
}

Test(callrec, render_from_reply, .timeout = 10)
{
    static const char *const kv[] = {"id", CALL_ID, "status", "in_progress", "tenant", "acme",
                                     "rank", "2", "recording_vendor_url", VENDOR_REC_URL,
                                     "duration_seconds", "0"};
    struct fake_reply f;
    json_t *fields = callrec_fields_from_reply(fake_array(&f, kv, 12), 0);
    json_t *o;
    char *text;

    cr_assert_not_null(fields);
    o = callrec_render(fields, NULL, 1);
    cr_assert_not_null(o);
    assert_key_set(o, 1, 0);
    cr_assert_str_eq(s_of(o, "status"), "in_progress");
    cr_assert_eq(json_integer_value(json_object_get(o, "duration_seconds")), 0);
    cr_assert(json_is_integer(json_object_get(o, "duration_seconds")));
    text = json_dumps(o, JSON_COMPACT);
    cr_assert_null(strstr(text, VENDOR_REC_URL));
    cr_assert_null(strstr(text, "acme"));
    free(text);
    json_decref(o);
    json_decref(fields);
}

/* ---------------------------------------------------------------------------
 * callrec_summary_text: the placement answer, written without jansson, must
 * be the very bytes json_dumps() makes of callrec_render() with the attempts.
 */

static void
assert_summary_matches_render(json_t *fields, const char *attempts_text)
{
    json_t *o = callrec_render(fields, NULL, 0);
    json_t *attempts = json_loads(attempts_text, 0, NULL);
    char *want, *got;

    cr_assert_not_null(o);
    cr_assert_not_null(attempts);
    json_object_set_new(o, "attempts", attempts);
    want = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    got = callrec_summary_text(fields, attempts_text);
    cr_assert_not_null(got);
    cr_assert_str_eq(got, want);
    free(got);
    free(want);
    json_decref(o);
}

Test(callrec, summary_text_is_render_dumped, .timeout = 10)
{
    static const char attempts[] =
        "[{\"vendor\":\"clouddialer\",\"outcome\":\"accepted\",\"http_status\":200,"
        "\"detail\":\"Call \\\"initiated\\\"\",\"ms\":1.5}]";
    json_t *fields = full_fields();
    json_t *min = json_pack("{s:s, s:s}", "id", CALL_ID, "to", "");

    assert_summary_matches_render(fields, attempts);
    assert_summary_matches_render(min, "[]");
    /* Flags, tags with several keys (stored sorted), the string escapes. */
    json_object_set_new(fields, "agent_action_required", json_string("1"));
    json_object_set_new(fields, "tags", json_string("{\"a\":\"x\\\"y\",\"b\":\"\\u0001\"}"));
    json_object_set_new(fields, "reference",
                        json_string("q\"b\\s/\b\f\n\r\t\x01\x1f\x7f caf\xc3\xa9 \xe2\x80\xa8 "
                                    "\xf0\x9f\x93\x9e"));
    assert_summary_matches_render(fields, attempts);
    json_object_set_new(fields, "agent_action_required", json_string("0"));
    json_object_set_new(fields, "scheduled_at", json_string("2026-07-03T10:00:00Z"));
    json_object_del(fields, "tags");
    assert_summary_matches_render(fields, attempts);
    json_decref(fields);
    json_decref(min);
}

Test(callrec, summary_text_every_control_byte, .timeout = 10)
{
    json_t *fields = json_pack("{s:s}", "id", CALL_ID);
    char s[2] = {0, 0};
    int c;

    for (c = 1; c < 128; c++) {
        s[0] = (char)c;
        json_object_set_new(fields, "reference", json_string(s));
        assert_summary_matches_render(fields, "[]");
    }
    json_decref(fields);
}

Test(callrec, summary_text_without_id, .timeout = 10)
{
    json_t *fields = json_pack("{s:s}", "to", "+919876543210");

    cr_assert_null(callrec_summary_text(fields, "[]"));
    cr_assert_null(callrec_summary_text(NULL, "[]"));
    json_decref(fields);
}
