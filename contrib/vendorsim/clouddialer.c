/*
 * clouddialer.c: the simulated CloudDialer API, as its documentation
 * describes it. POST /calls places a click-to-call (agent first, then the
 * customer) that timers then play out (INITIATED, ANSWER or a failure,
 * ended); GET /calls/{id} reports it; POST /calls/{id}/participants adds a
 * leg; GET /recordings/crm_{id}.wav serves a short silent recording; when a
 * call ends the result is pushed to the configured URL. Every route is also
 * served under /CRM_API, since it is not known which base the real API uses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sim.h"

#ifndef CD_MAX_CALLS
#define CD_MAX_CALLS 100000
#endif
#define CD_BUCKETS (1u << 17)
#define CD_UUID_MAX 128
#define CD_NAME_MAX 128

struct cd_leg {
    int id;
    char role[16]; /* agent, destination, participant */
    char *number;
    char status[12];     /* DIALING, JOINED, LEFT, FAILED */
    uint64_t join_at_ms; /* participants: when they pick up */
};

struct cd_call {
    struct cd_call *prev, *next; /* creation order, oldest first */
    struct cd_call *id_next;     /* hash chain by call_id */
    struct cd_call *uuid_next;   /* hash chain by uuid */
    char call_id[40];
    char *uuid;
    char *from_number;
    char to10[12];
    char *agent_number; /* NULL when crm_username is set */
    char *crm_username;
    int recording;
    int max_ring_s; /* 0: not given */
    char status[16];
    char outcome[16]; /* planned at creation */
    long ring_ms;
    long talk_ms;
    uint64_t created_ms;
    uint64_t start_ms; /* 0 until answered */
    uint64_t end_ms;   /* 0 until ended */
    int ended;
    long requests; /* POSTs that carried this uuid */
    struct cd_leg *legs;
    int nlegs;
    int caplegs;
    int next_leg_id;
    struct event *timer;
};

static struct cd_call *cd_oldest;
static struct cd_call *cd_newest;
static size_t cd_ncalls;
static struct cd_call **cd_by_id;
static struct cd_call **cd_by_uuid;

static const char *const cd_prefixes[] = {"", "/CRM_API"};

static int cd_auth_ok(struct sim_req *r);
static void cd_calls_json(json_t *out);
static int cd_call_end(const char *call_id, const char *status, char *err, size_t errlen);
static void cd_cleanup(void);

static const struct sim_vendor cd_vendor = {
    .name = "clouddialer",
    .auth_ok = cd_auth_ok,
    .calls_json = cd_calls_json,
    .call_end = cd_call_end,
    .cleanup = cd_cleanup,
};

/* ---- helpers ---- */

static uint32_t
cd_hash(const char *s)
{
    uint32_t h = 2166136261u;

    while (*s != '\0') {
        h ^= (unsigned char)*s++;
        h *= 16777619u;
    }
    return h & (CD_BUCKETS - 1);
}

static struct cd_call *
cd_find(const char *call_id)
{
    struct cd_call *c;

    if (cd_by_id == NULL) {
        return NULL;
    }
    for (c = cd_by_id[cd_hash(call_id)]; c != NULL; c = c->id_next) {
        if (strcmp(c->call_id, call_id) == 0) {
            return c;
        }
    }
    return NULL;
}

static struct cd_call *
cd_find_uuid(const char *uuid)
{
    struct cd_call *c;

    for (c = cd_by_uuid[cd_hash(uuid)]; c != NULL; c = c->uuid_next) {
        if (strcmp(c->uuid, uuid) == 0) {
            return c;
        }
    }
    return NULL;
}

/*
 * A number in one of the documented forms, "10-digit or +91": exactly
 * ^[6-9][0-9]{9}$ or ^\+91[6-9][0-9]{9}$. Writes the 10 digits to out.
 */
static int
cd_indian_number(const char *s, char out[12])
{
    size_t i;

    if (s[0] == '+') {
        if (strncmp(s, "+91", 3) != 0) {
            return 0;
        }
        s += 3;
    }
    if (strlen(s) != 10 || s[0] < '6' || s[0] > '9') {
        return 0;
    }
    for (i = 0; i < 10; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
    }
    memcpy(out, s, 10);
    out[10] = '\0';
    return 1;
}

/* Caller-ID: 10..12 digits with an optional leading +. */
static int
cd_caller_id(const char *s)
{
    size_t n = 0;

    if (*s == '+') {
        s++;
    }
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') {
            return 0;
        }
        n++;
    }
    return n >= 10 && n <= 12;
}

static int
cd_auth_ok(struct sim_req *r)
{
    const char *h = sim_req_header(r, "Authorization");
    const char *key = sim_cfg.cd_key;
    size_t klen;

    if (h == NULL || key == NULL) {
        return 0;
    }
    while (*h == ' ' || *h == '\t') {
        h++;
    }
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t')) {
        return 0;
    }
    h += 6;
    while (*h == ' ' || *h == '\t') {
        h++;
    }
    klen = strlen(key);
    if (strncmp(h, key, klen) != 0) {
        return 0;
    }
    for (h += klen; *h != '\0'; h++) {
        if (*h != ' ' && *h != '\t') {
            return 0;
        }
    }
    return 1;
}

/* 401 unless r carries the key; 1 when it may go on. */
static int
cd_require_auth(struct sim_req *r)
{
    if (cd_auth_ok(r)) {
        return 1;
    }
    sim_reply_error(r, 401, "Invalid or missing API key");
    return 0;
}

static void
cd_iso_or_null(json_t *o, const char *key, uint64_t ms)
{
    char iso[40];

    if (ms == 0) {
        json_object_set_new(o, key, json_null());
        return;
    }
    sim_iso_time(ms, 0, iso, sizeof(iso));
    json_object_set_new(o, key, json_string(iso));
}

/* Whole seconds answered, rounded up (a call answered at all shows 1). */
static long
cd_duration(const struct cd_call *c)
{
    uint64_t end = c->ended ? c->end_ms : sim_now_ms();

    if (c->start_ms == 0 || end < c->start_ms) {
        return 0;
    }
    return (long)((end - c->start_ms + 999) / 1000);
}

static json_t *
cd_recording_url(const struct cd_call *c)
{
    char url[256];

    if (!c->ended || strcmp(c->status, "ANSWER") != 0 || !c->recording) {
        return json_null();
    }
    snprintf(url, sizeof(url), "http://%s/recordings/crm_%s.wav", sim_cfg.listen_addr, c->call_id);
    return json_string(url);
}

/* ---- legs ---- */

static struct cd_leg *
cd_leg_add(struct cd_call *c, const char *role, const char *number)
{
    struct cd_leg *leg;

    if (c->nlegs == c->caplegs) {
        int cap = c->caplegs ? c->caplegs * 2 : 4;
        struct cd_leg *n = realloc(c->legs, (size_t)cap * sizeof(*n));

        if (n == NULL) {
            return NULL;
        }
        c->legs = n;
        c->caplegs = cap;
    }
    leg = &c->legs[c->nlegs++];
    memset(leg, 0, sizeof(*leg));
    leg->id = c->next_leg_id++;
    snprintf(leg->role, sizeof(leg->role), "%s", role);
    leg->number = sim_strdup(number);
    snprintf(leg->status, sizeof(leg->status), "DIALING");
    return leg;
}

/* Participants pick up once their ring time has passed on an answered call. */
static void
cd_legs_refresh(struct cd_call *c)
{
    uint64_t now = sim_now_ms();
    int i;

    if (c->ended || strcmp(c->status, "ANSWER") != 0) {
        return;
    }
    for (i = 0; i < c->nlegs; i++) {
        struct cd_leg *leg = &c->legs[i];

        if (strcmp(leg->status, "DIALING") == 0 && leg->join_at_ms != 0 && now >= leg->join_at_ms) {
            snprintf(leg->status, sizeof(leg->status), "JOINED");
        }
    }
}

/* ---- calls ---- */

static json_t *
cd_call_json(struct cd_call *c)
{
    json_t *o = json_object();
    json_t *legs = json_array();
    int i;

    cd_legs_refresh(c);
    json_object_set_new(o, "status", json_string("success"));
    json_object_set_new(o, "call_id", json_string(c->call_id));
    json_object_set_new(o, "uuid", sim_json_str_or_null(c->uuid));
    json_object_set_new(o, "call_status", json_string(c->status));
    json_object_set_new(o, "duration", json_integer(cd_duration(c)));
    json_object_set_new(o, "recording_url", cd_recording_url(c));
    cd_iso_or_null(o, "start_time", c->start_ms);
    cd_iso_or_null(o, "end_time", c->end_ms);
    for (i = 0; i < c->nlegs; i++) {
        json_t *l = json_object();

        json_object_set_new(l, "leg_id", json_integer(c->legs[i].id));
        json_object_set_new(l, "role", json_string(c->legs[i].role));
        json_object_set_new(l, "number", sim_json_str_or_null(c->legs[i].number));
        json_object_set_new(l, "status", json_string(c->legs[i].status));
        json_array_append_new(legs, l);
    }
    json_object_set_new(o, "legs", legs);
    return o;
}

static void
cd_push_result(struct cd_call *c)
{
    json_t *o;
    char *text;
    char iso[40];

    if (sim_cfg.cd_push_url == NULL) {
        return;
    }
    o = json_object();
    json_object_set_new(o, "call_id", json_string(c->call_id));
    json_object_set_new(o, "uuid", sim_json_str_or_null(c->uuid));
    json_object_set_new(o, "status", json_string(c->status));
    json_object_set_new(o, "duration", json_integer(cd_duration(c)));
    json_object_set_new(o, "customer_number", json_string(c->to10));
    if (c->agent_number != NULL) {
        json_object_set_new(o, "agent_number", sim_json_str_or_null(c->agent_number));
    } else {
        json_object_set_new(o, "crm_username", sim_json_str_or_null(c->crm_username));
    }
    json_object_set_new(o, "direction", json_string("outbound"));
    json_object_set_new(o, "call_type", json_string(c->crm_username ? "browser" : "phone"));
    json_object_set_new(o, "disposition", json_string("CRM_CALL"));
    json_object_set_new(o, "recording_url", cd_recording_url(c));
    cd_iso_or_null(o, "start_time", c->start_ms);
    sim_iso_time(c->end_ms, 0, iso, sizeof(iso));
    json_object_set_new(o, "end_time", json_string(iso));
    text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (text != NULL) {
        sim_push(cd_vendor.name, sim_cfg.cd_push_url, c->uuid, c->call_id, c->status, text);
        free(text);
    }
}

/* End c now with status, then push the result. */
static void
cd_call_finish(struct cd_call *c, const char *status)
{
    int answered = strcmp(status, "ANSWER") == 0;
    int i;

    if (c->ended) {
        return;
    }
    cd_legs_refresh(c);
    event_del(c->timer);
    c->ended = 1;
    c->end_ms = sim_now_ms();
    if (answered && c->start_ms == 0) {
        c->start_ms = c->end_ms;
    }
    snprintf(c->status, sizeof(c->status), "%s", status);
    for (i = 0; i < c->nlegs; i++) {
        struct cd_leg *leg = &c->legs[i];
        int main_leg = i < 2;

        if (strcmp(leg->status, "JOINED") == 0 || (answered && main_leg)) {
            snprintf(leg->status, sizeof(leg->status), "LEFT");
        } else if (strcmp(leg->status, "DIALING") == 0) {
            snprintf(leg->status, sizeof(leg->status), "FAILED");
        }
    }
    sim_log("clouddialer call %s (%s) ended: %s", c->call_id, c->uuid, c->status);
    cd_push_result(c);
}

static void
cd_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cd_call *c = arg;
    int i;

    if (c->ended) {
        return;
    }
    if (strcmp(c->status, "INITIATED") == 0) {
        if (strcmp(c->outcome, "ANSWER") != 0) {
            cd_call_finish(c, c->outcome);
            return;
        }
        snprintf(c->status, sizeof(c->status), "ANSWER");
        c->start_ms = sim_now_ms();
        for (i = 0; i < c->nlegs && i < 2; i++) {
            snprintf(c->legs[i].status, sizeof(c->legs[i].status), "JOINED");
        }
        sim_timer_start(c->timer, c->talk_ms);
        return;
    }
    cd_call_finish(c, "ANSWER");
}

static void
cd_call_free(struct cd_call *c)
{
    int i;

    if (c->timer != NULL) {
        event_free(c->timer);
    }
    for (i = 0; i < c->nlegs; i++) {
        free(c->legs[i].number);
    }
    free(c->legs);
    free(c->uuid);
    free(c->from_number);
    free(c->agent_number);
    free(c->crm_username);
    free(c);
}

/* Take c out of the list and both hash tables. */
static void
cd_call_unlink(struct cd_call *c)
{
    struct cd_call **pp;

    for (pp = &cd_by_id[cd_hash(c->call_id)]; *pp != NULL; pp = &(*pp)->id_next) {
        if (*pp == c) {
            *pp = c->id_next;
            break;
        }
    }
    for (pp = &cd_by_uuid[cd_hash(c->uuid)]; *pp != NULL; pp = &(*pp)->uuid_next) {
        if (*pp == c) {
            *pp = c->uuid_next;
            break;
        }
    }
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        cd_oldest = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    } else {
        cd_newest = c->prev;
    }
    cd_ncalls--;
}

static void
cd_new_call_id(char out[40])
{
    unsigned char b[16];

    do {
        sim_random(b, sizeof(b));
        b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
        b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
        snprintf(out, 40, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
                 b[13], b[14], b[15]);
    } while (cd_find(out) != NULL);
}

/* ---- handlers ---- */

/*
 * A string field: *out NULL when absent or null; -1 (400 sent) when of
 * another type.
 */
static int
cd_opt_string(struct sim_req *r, json_t *j, const char *key, const char **out)
{
    json_t *v = json_object_get(j, key);

    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
        sim_reply_error(r, 400, "%s must be a string", key);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

static void
cd_reply_call_id(struct sim_req *r, const struct cd_call *c)
{
    json_t *o = json_object();

    json_object_set_new(o, "status", json_string("success"));
    json_object_set_new(o, "call_id", json_string(c->call_id));
    json_object_set_new(o, "message", json_string("Call initiated"));
    sim_reply_json(r, 200, o);
}

static void
cd_calls_post(struct sim_req *r)
{
    const char *why = NULL;
    json_t *j;
    const char *from;
    const char *to;
    const char *uuid;
    const char *agent;
    const char *crm;
    char to10[12];
    char agent10[12];
    int recording = 1;
    long long max_ring = 0;
    json_t *v;
    struct cd_call *c;
    uint32_t h;

    if (!cd_require_auth(r)) {
        return;
    }
    j = sim_req_json(r, &why);
    if (j == NULL) {
        sim_reply_error(r, 400, "%s", why);
        return;
    }
    if (!json_is_object(j)) {
        sim_reply_error(r, 400, "Request body must be a JSON object");
        return;
    }
    if (cd_opt_string(r, j, "from_number", &from) != 0 ||
        cd_opt_string(r, j, "to_number", &to) != 0 || cd_opt_string(r, j, "uuid", &uuid) != 0 ||
        cd_opt_string(r, j, "agent_number", &agent) != 0 ||
        cd_opt_string(r, j, "crm_username", &crm) != 0) {
        return;
    }
    if (from == NULL) {
        sim_reply_error(r, 400, "from_number is required");
        return;
    }
    if (!cd_caller_id(from)) {
        sim_reply_error(r, 400, "from_number must be 10 to 12 digits with an optional leading +");
        return;
    }
    if (to == NULL) {
        sim_reply_error(r, 400, "to_number is required");
        return;
    }
    if (!cd_indian_number(to, to10)) {
        sim_reply_error(r, 400, "to_number must be a 10-digit mobile number or +91 and 10 digits");
        return;
    }
    if (uuid == NULL) {
        sim_reply_error(r, 400, "uuid is required");
        return;
    }
    if (*uuid == '\0' || strlen(uuid) > CD_UUID_MAX) {
        sim_reply_error(r, 400, "uuid must be 1 to %d characters", CD_UUID_MAX);
        return;
    }
    if ((agent == NULL) == (crm == NULL)) {
        sim_reply_error(r, 400, "Exactly one of agent_number and crm_username is required");
        return;
    }
    if (agent != NULL && !cd_indian_number(agent, agent10)) {
        sim_reply_error(r, 400,
                        "agent_number must be a 10-digit mobile number or +91 and 10 digits");
        return;
    }
    if (crm != NULL && (*crm == '\0' || strlen(crm) > CD_NAME_MAX)) {
        sim_reply_error(r, 400, "crm_username must be 1 to %d characters", CD_NAME_MAX);
        return;
    }
    v = json_object_get(j, "recording");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            sim_reply_error(r, 400, "recording must be a boolean");
            return;
        }
        recording = json_is_true(v);
    }
    v = json_object_get(j, "max_ring_time");
    if (v != NULL && !json_is_null(v) && !sim_json_int(v, 5, 120, &max_ring)) {
        sim_reply_error(r, 400, "max_ring_time must be an integer from 5 to 120");
        return;
    }

    /* Vendor-side dedupe on the caller's own id. */
    c = cd_find_uuid(uuid);
    if (c != NULL) {
        c->requests++;
        cd_reply_call_id(r, c);
        return;
    }

    if (cd_ncalls >= CD_MAX_CALLS) {
        struct cd_call *old = cd_oldest;

        cd_call_unlink(old);
        cd_call_free(old);
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        sim_reply_error(r, 500, "Out of memory");
        return;
    }
    cd_new_call_id(c->call_id);
    c->uuid = sim_strdup(uuid);
    c->from_number = sim_strdup(from);
    memcpy(c->to10, to10, sizeof(c->to10));
    c->agent_number = sim_strdup(agent);
    c->crm_username = sim_strdup(crm);
    c->recording = recording;
    c->max_ring_s = (int)max_ring;
    c->requests = 1;
    c->next_leg_id = 1;
    snprintf(c->status, sizeof(c->status), "INITIATED");
    snprintf(c->outcome, sizeof(c->outcome), "%s", sim_cfg.outcome);
    c->ring_ms = sim_cfg.ring_ms;
    c->talk_ms = sim_cfg.call_ms > sim_cfg.ring_ms ? sim_cfg.call_ms - sim_cfg.ring_ms : 0;
    if (c->max_ring_s > 0 && c->ring_ms > c->max_ring_s * 1000L) {
        /* Nobody picked up within the ring time the caller allowed. */
        c->ring_ms = c->max_ring_s * 1000L;
        if (strcmp(c->outcome, "ANSWER") == 0) {
            snprintf(c->outcome, sizeof(c->outcome), "NO_ANSWER");
        }
    }
    c->created_ms = r->received_ms;
    cd_leg_add(c, "agent", agent != NULL ? agent : crm);
    cd_leg_add(c, "destination", to10);
    c->timer = sim_timer_new(cd_timer_cb, c);

    h = cd_hash(c->call_id);
    c->id_next = cd_by_id[h];
    cd_by_id[h] = c;
    h = cd_hash(c->uuid);
    c->uuid_next = cd_by_uuid[h];
    cd_by_uuid[h] = c;
    c->prev = cd_newest;
    if (cd_newest != NULL) {
        cd_newest->next = c;
    } else {
        cd_oldest = c;
    }
    cd_newest = c;
    cd_ncalls++;

    sim_timer_start(c->timer, c->ring_ms);
    cd_reply_call_id(r, c);
}

static void
cd_call_get(struct sim_req *r)
{
    struct cd_call *c;

    if (!cd_require_auth(r)) {
        return;
    }
    c = cd_find(r->params[0]);
    if (c == NULL) {
        sim_reply_error(r, 404, "Call not found");
        return;
    }
    sim_reply_json(r, 200, cd_call_json(c));
}

static void
cd_participants_post(struct sim_req *r)
{
    const char *why = NULL;
    const char *number;
    char num10[12];
    long long max_ring = 0;
    struct cd_call *c;
    struct cd_leg *leg;
    json_t *j;
    json_t *v;
    json_t *o;

    if (!cd_require_auth(r)) {
        return;
    }
    c = cd_find(r->params[0]);
    if (c == NULL) {
        sim_reply_error(r, 404, "Call not found");
        return;
    }
    j = sim_req_json(r, &why);
    if (j == NULL) {
        sim_reply_error(r, 400, "%s", why);
        return;
    }
    if (!json_is_object(j)) {
        sim_reply_error(r, 400, "Request body must be a JSON object");
        return;
    }
    if (cd_opt_string(r, j, "number", &number) != 0) {
        return;
    }
    if (number == NULL) {
        sim_reply_error(r, 400, "number is required");
        return;
    }
    if (!cd_indian_number(number, num10)) {
        sim_reply_error(r, 400, "number must be a 10-digit mobile number or +91 and 10 digits");
        return;
    }
    v = json_object_get(j, "max_ring_time");
    if (v != NULL && !json_is_null(v) && !sim_json_int(v, 5, 120, &max_ring)) {
        sim_reply_error(r, 400, "max_ring_time must be an integer from 5 to 120");
        return;
    }
    if (c->ended) {
        sim_reply_error(r, 400, "Call is not active");
        return;
    }
    leg = cd_leg_add(c, "participant", num10);
    if (leg == NULL) {
        sim_reply_error(r, 500, "Out of memory");
        return;
    }
    leg->join_at_ms = sim_now_ms() + (uint64_t)sim_cfg.ring_ms;
    if (leg->join_at_ms == 0) {
        leg->join_at_ms = 1;
    }
    o = json_object();
    json_object_set_new(o, "status", json_string("success"));
    json_object_set_new(o, "message", json_string("Leg queued"));
    json_object_set_new(o, "leg_id", json_integer(leg->id));
    sim_reply_json(r, 200, o);
}

static void
cd_health(struct sim_req *r)
{
    json_t *o = json_object();

    json_object_set_new(o, "status", json_string("success"));
    sim_reply_json(r, 200, o);
}


static void
cd_recording_get(struct sim_req *r)
{
    const char *name = r->params[0];
    size_t n = strlen(name);
    char id[40];
    struct cd_call *c;

    if (n <= 8 || strncmp(name, "crm_", 4) != 0 || strcmp(name + n - 4, ".wav") != 0 ||
        n - 8 >= sizeof(id)) {
        sim_reply_error(r, 404, "Recording not found");
        return;
    }
    memcpy(id, name + 4, n - 8);
    id[n - 8] = '\0';
    c = cd_find(id);
    if (c == NULL || !c->ended || strcmp(c->status, "ANSWER") != 0 || !c->recording) {
        sim_reply_error(r, 404, "Recording not found");
        return;
    }
    sim_reply_silent_wav(r);
}

/* ---- /_sim hooks ---- */

static void
cd_calls_json(json_t *out)
{
    struct cd_call *c;

    for (c = cd_oldest; c != NULL; c = c->next) {
        json_t *o = cd_call_json(c);

        json_object_del(o, "status");
        json_object_set_new(o, "vendor", json_string(cd_vendor.name));
        json_object_set_new(o, "outcome", json_string(c->outcome));
        json_object_set_new(o, "ended", json_boolean(c->ended));
        json_object_set_new(o, "from_number", sim_json_str_or_null(c->from_number));
        json_object_set_new(o, "to_number", json_string(c->to10));
        json_object_set_new(o, "agent_number", sim_json_str_or_null(c->agent_number));
        json_object_set_new(o, "crm_username", sim_json_str_or_null(c->crm_username));
        json_object_set_new(o, "recording", json_boolean(c->recording));
        json_object_set_new(o, "requests", json_integer(c->requests));
        json_object_set_new(o, "created_ms", json_integer((json_int_t)c->created_ms));
        json_array_append_new(out, o);
    }
}

static int
cd_call_end(const char *call_id, const char *status, char *err, size_t errlen)
{
    struct cd_call *c = cd_find(call_id);

    if (c == NULL) {
        return 1;
    }
    if (c->ended) {
        snprintf(err, errlen, "Call already ended (%s)", c->status);
        return -1;
    }
    if (status == NULL) {
        status = strcmp(c->status, "ANSWER") == 0 ? "ANSWER" : "CANCELED";
    }
    cd_call_finish(c, status);
    return 0;
}

static void
cd_cleanup(void)
{
    while (cd_oldest != NULL) {
        struct cd_call *c = cd_oldest;

        cd_oldest = c->next;
        cd_call_free(c);
    }
    cd_newest = NULL;
    cd_ncalls = 0;
    free(cd_by_id);
    free(cd_by_uuid);
    cd_by_id = NULL;
    cd_by_uuid = NULL;
}

void
clouddialer_init(void)
{
    size_t i;

    cd_by_id = calloc(CD_BUCKETS, sizeof(*cd_by_id));
    cd_by_uuid = calloc(CD_BUCKETS, sizeof(*cd_by_uuid));
    if (cd_by_id == NULL || cd_by_uuid == NULL) {
        fprintf(stderr, "vendorsim: out of memory\n");
        abort();
    }
    sim_vendor_register(&cd_vendor);
    for (i = 0; i < sizeof(cd_prefixes) / sizeof(cd_prefixes[0]); i++) {
        const char *p = cd_prefixes[i];

        sim_route_add(&cd_vendor, "POST", p, "/calls", cd_calls_post);
        sim_route_add(&cd_vendor, "GET", p, "/calls/{call_id}", cd_call_get);
        sim_route_add(&cd_vendor, "POST", p, "/calls/{call_id}/participants", cd_participants_post);
        sim_route_add(&cd_vendor, "GET", p, "/health", cd_health);
        sim_route_add(&cd_vendor, "GET", p, "/recordings/{name}", cd_recording_get);
    }
}
