/*
 * routes.c: load, validate, index and match the routing table (routes.h;
 * the format is documented in routes/README.md).
 *
 * Loading reads every *.json of the directory in name order and validates
 * every rule strictly, reporting each mistake as "file: rule: field:
 * reason"; a table with any error is freed, never half-used. A table that
 * loads gets a private index, built once:
 *  - a digit trie over all to_prefix entries and one over all from_prefix
 *    entries; each node lists, ascending, the rules naming exactly that
 *    prefix, so walking a number's digits from the root meets every rule
 *    with a prefix of the number, and nothing else;
 *  - the rules with no prefix condition at all, ascending;
 *  - the call types of each rule as bits, and the zone of each time window
 *    with its UTC offset cached for one quarter hour (finding an offset
 *    switches TZ, which rereads the zone file; DST changes fall on quarter
 *    hours, so a cached offset is exact for its slot).
 * Matching merges the lists met on the walks with the prefix-free list, in
 * rule order, and tests the remaining conditions of each candidate; the
 * first that passes wins. The same index finds shadowed rules at load time
 * without comparing every pair of rules.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "conf.h"
#include "crypto.h"
#include "routes.h"
#include "util.h"
#include "vendor.h"

#define ROUTES_MAX_DIGITS 15            /* E.164: at most 15 digits after the "+" */
#define ROUTES_MAX_VENDORS 64           /* routes_order keeps the picked set in 64 bits */
#define ROUTES_SLOT_MS (15 * 60 * 1000) /* a zone's offset is cached per UTC quarter hour */
#define ROUTES_SHADOW_BUDGET 256        /* candidate shadowers visited per rule at most */
#define ROUTES_SHADOW_LINES 100         /* shadowed rules listed by name; the rest counted */
#define ROUTES_ALL_DAYS 0x7fu

const char *const route_strategy_text[] = {"priority", "weighted", "least_busy"};

#define ROUTES_NSTRATEGIES (sizeof(route_strategy_text) / sizeof(route_strategy_text[0]))

static const char *const routes_day_names[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

/* Call types; a rule keeps its "type" list also as these bits. */
static const char *const routes_type_names[] = {"outbound", "inbound", "scheduled", NULL};

/* The names "requires" accepts: what a call can need from a vendor. */
static const struct {
    const char *name;
    unsigned bit;
} routes_caps[] = {
    {"outbound", VENDOR_CAP_OUTBOUND},   {"inbound", VENDOR_CAP_INBOUND},
    {"scheduled", VENDOR_CAP_SCHEDULED}, {"participants", VENDOR_CAP_PARTICIPANTS},
    {"recording", VENDOR_CAP_RECORDING}, {"flags", VENDOR_CAP_FLAGS},
};

#define ROUTES_NCAPS (sizeof(routes_caps) / sizeof(routes_caps[0]))

/* ---------------------------------------------------------------------------
 * Private structures
 */

/* One trie node: one more digit of a prefix. */
struct routes_tnode {
    uint32_t child[10]; /* node index per digit; 0 = none (the root is nobody's child) */
    uint32_t off;       /* its rules start at trie->rules[off] */
    uint32_t nprimary;  /* rules found through this trie (match candidates), ascending */
    uint32_t nother;    /* then rules with this prefix that are found elsewhere, ascending */
};

struct routes_trie {
    struct routes_tnode *nodes; /* nodes[0] is the root ("+") */
    size_t nnodes;
    size_t cap;
    uint32_t *rules; /* every node's rule list, back to back */
};

/* A zone's UTC offset, valid for one quarter hour. */
struct routes_zone {
    const char *name; /* borrowed from a rule's window */
    int64_t slot;     /* at_ms / ROUTES_SLOT_MS the offset is for; INT64_MIN: none yet */
    long offset;      /* seconds east of UTC during that slot */
};

struct routes_rinfo {
    unsigned types;   /* bit i = routes_type_names[i]; 0 = any type */
    uint32_t window0; /* its first window in index->win_zone */
};

struct routes_index {
    struct routes_trie to;   /* to_prefix: every rule with one is a candidate here */
    struct routes_trie from; /* from_prefix: candidates are the rules without to_prefix */
    uint32_t *plain;         /* rules without to_prefix and from_prefix, ascending */
    size_t nplain;
    struct routes_rinfo *info; /* per rule */
    uint32_t *win_zone;        /* per window (rule order): index into zones */
    struct routes_zone *zones;
    size_t nzones;
};

/* Messages (errors or warnings), one per line. */
struct routes_msgs {
    char *text;
    size_t len;
    size_t cap; /* grown geometrically: a big table can have many lines */
    int count;
};

/* A string -> number map (open addressing); keys are borrowed. */
struct routes_strmap {
    const char **keys;
    uint32_t *vals;
    size_t cap; /* a power of two, or 0 */
    size_t n;
};

/* What loading one directory carries along. */
struct routes_load {
    struct routes_msgs err;
    const struct conf *conf;
    struct route_table *t;
    size_t cap;                 /* rules allocated in t->rules */
    struct routes_strmap names; /* rule name -> index (duplicates) */
    struct routes_strmap zones; /* zone -> 1 valid, 0 not (util_zone_valid is a stat) */
};

/* ---------------------------------------------------------------------------
 * Small helpers
 */

static void routes_msg(struct routes_msgs *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
routes_msg(struct routes_msgs *m, const char *fmt, ...)
{
    char line[1024];
    char *grown;
    size_t n;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    n = strlen(line);
    line[n++] = '\n';
    line[n] = '\0';
    if (m->len + n + 1 > m->cap) {
        size_t cap = 2 * (m->len + n + 1) + 256;
        grown = realloc(m->text, cap);
        if (grown == NULL) {
            return;
        }
        m->text = grown;
        m->cap = cap;
    }
    memcpy(m->text + m->len, line, n + 1);
    m->len += n;
    m->count++;
}

static uint64_t
routes_fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

/* splitmix64: successive well-mixed draws from one 64-bit seed. */
static uint64_t
routes_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int64_t
routes_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The slot of key: its own when present, else the empty one it would take. */
static size_t
routes_strmap_slot(const struct routes_strmap *m, const char *key)
{
    size_t i = (size_t)routes_fnv1a(key) & (m->cap - 1);

    while (m->keys[i] != NULL && strcmp(m->keys[i], key) != 0) {
        i = (i + 1) & (m->cap - 1);
    }
    return i;
}

/* The value of key, or NULL. */
static uint32_t *
routes_strmap_get(const struct routes_strmap *m, const char *key)
{
    size_t i;

    if (m->cap == 0) {
        return NULL;
    }
    i = routes_strmap_slot(m, key);
    return m->keys[i] != NULL ? &m->vals[i] : NULL;
}

/* Add key (absent) with val. Returns 0 or -1 (out of memory). */
static int
routes_strmap_put(struct routes_strmap *m, const char *key, uint32_t val)
{
    size_t i;

    if (2 * (m->n + 1) > m->cap) {
        struct routes_strmap bigger = {.cap = m->cap != 0 ? 2 * m->cap : 64};
        bigger.keys = calloc(bigger.cap, sizeof(*bigger.keys));
        bigger.vals = calloc(bigger.cap, sizeof(*bigger.vals));
        if (bigger.keys == NULL || bigger.vals == NULL) {
            free(bigger.keys);
            free(bigger.vals);
            return -1;
        }
        for (i = 0; i < m->cap; i++) {
            if (m->keys[i] != NULL) {
                size_t j = routes_strmap_slot(&bigger, m->keys[i]);
                bigger.keys[j] = m->keys[i];
                bigger.vals[j] = m->vals[i];
            }
        }
        bigger.n = m->n;
        free(m->keys);
        free(m->vals);
        *m = bigger;
    }
    i = routes_strmap_slot(m, key);
    m->keys[i] = key;
    m->vals[i] = val;
    m->n++;
    return 0;
}

static void
routes_strmap_free(struct routes_strmap *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}

static void
routes_free_list(char **list, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free(list[i]);
    }
    free(list);
}

static int
routes_has(char *const *list, size_t n, const char *s)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strcmp(list[i], s) == 0) {
            return 1;
        }
    }
    return 0;
}

static unsigned
routes_type_bit(const char *type)
{
    size_t i;

    for (i = 0; type != NULL && routes_type_names[i] != NULL; i++) {
        if (strcmp(type, routes_type_names[i]) == 0) {
            return 1u << i;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Freeing
 */

static void
routes_trie_free(struct routes_trie *tr)
{
    free(tr->nodes);
    free(tr->rules);
}

static void
routes_index_free(struct routes_index *idx)
{
    if (idx == NULL) {
        return;
    }
    routes_trie_free(&idx->to);
    routes_trie_free(&idx->from);
    free(idx->plain);
    free(idx->info);
    free(idx->win_zone);
    free(idx->zones);
    free(idx);
}

static void
routes_rule_free(struct route_rule *r)
{
    size_t k;

    free(r->name);
    free(r->description);
    free(r->file);
    routes_free_list(r->tenants, r->ntenants);
    routes_free_list(r->to_prefix, r->nprefix);
    routes_free_list(r->from_prefix, r->nfrom);
    routes_free_list(r->types, r->ntypes);
    routes_free_list(r->tag_keys, r->ntags);
    routes_free_list(r->tag_values, r->ntags);
    for (k = 0; k < r->nwindows; k++) {
        free(r->windows[k].zone);
    }
    free(r->windows);
    for (k = 0; k < r->nvendors; k++) {
        free(r->vendors[k].name);
    }
    free(r->vendors);
}

static void
routes_free(struct route_table *t)
{
    size_t i;

    for (i = 0; i < t->nrules; i++) {
        routes_rule_free(&t->rules[i]);
    }
    free(t->rules);
    routes_index_free(t->index);
    free(t);
}

/* ---------------------------------------------------------------------------
 * Validation
 */

/* A list of strings under key; 0 if absent, -1 (reported) when malformed. */
static int
routes_strings(struct routes_msgs *err, const char *where, json_t *obj, const char *key,
               char ***out, size_t *n)
{
    json_t *v = json_object_get(obj, key), *item;
    size_t i;

    *out = NULL;
    *n = 0;
    if (v == NULL) {
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) == 0) {
        routes_msg(err, "%s: %s: must be a non-empty array of strings", where, key);
        return -1;
    }
    *out = calloc(json_array_size(v), sizeof(char *));
    if (*out == NULL) {
        routes_msg(err, "%s: %s: out of memory", where, key);
        return -1;
    }
    json_array_foreach(v, i, item) {
        if (!json_is_string(item) || json_string_length(item) == 0) {
            routes_msg(err, "%s: %s[%zu]: must be a non-empty string", where, key, i);
            return -1;
        }
        (*out)[*n] = strdup(json_string_value(item));
        if ((*out)[*n] == NULL) {
            return -1;
        }
        (*n)++;
    }
    return 0;
}

static int
routes_check_keys(struct routes_msgs *err, const char *where, json_t *obj,
                  const char *const *allowed)
{
    const char *key;
    json_t *val;
    size_t i;
    int bad = 0;

    json_object_foreach(obj, key, val) {
        int ok = 0;
        for (i = 0; allowed[i] != NULL; i++) {
            ok |= strcmp(key, allowed[i]) == 0;
        }
        if (!ok) {
            routes_msg(err, "%s: %s: unknown key", where, key);
            bad = 1;
        }
    }
    return bad ? -1 : 0;
}

/* "+" and 1 to 15 digits. */
static int
routes_prefix_ok(const char *p)
{
    size_t j, n = strlen(p);

    if (p[0] != '+' || n < 2 || n > ROUTES_MAX_DIGITS + 1) {
        return 0;
    }
    for (j = 1; j < n; j++) {
        if (p[j] < '0' || p[j] > '9') {
            return 0;
        }
    }
    return 1;
}

static void
routes_check_prefixes(struct routes_msgs *err, const char *where, const char *key,
                      char *const *list, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (!routes_prefix_ok(list[i])) {
            routes_msg(err, "%s: match.%s: \"%s\" is not \"+\" and 1 to 15 digits", where, key,
                       list[i]);
        }
    }
}

/* A day name ("mon") as 0..6, or -1. */
static int
routes_day(const char *s, size_t len)
{
    int d;

    for (d = 0; d < 7 && len == 3; d++) {
        if (memcmp(s, routes_day_names[d], 3) == 0) {
            return d;
        }
    }
    return -1;
}

/* One day ("sat") or a range ("mon-fri"; "fri-mon" wraps over the weekend) into *bits. */
static int
routes_day_item(const char *s, size_t len, unsigned *bits)
{
    const char *dash;
    int a, b;

    while (len > 0 && *s == ' ') {
        s++;
        len--;
    }
    while (len > 0 && s[len - 1] == ' ') {
        len--;
    }
    dash = memchr(s, '-', len);
    if (dash == NULL) {
        a = b = routes_day(s, len);
    } else {
        a = routes_day(s, (size_t)(dash - s));
        b = routes_day(dash + 1, len - (size_t)(dash - s) - 1);
    }
    if (a < 0 || b < 0) {
        return -1;
    }
    for (;;) {
        *bits |= 1u << a;
        if (a == b) {
            return 0;
        }
        a = (a + 1) % 7;
    }
}

/* "daily", "mon-fri", "sat,sun", or ["mon", "wed"] into day bits (Monday = bit 0). */
static int
routes_parse_days(json_t *v, unsigned *out)
{
    json_t *item;
    size_t i;

    *out = 0;
    if (json_is_string(v)) {
        const char *s = json_string_value(v), *comma;
        if (strcmp(s, "daily") == 0) {
            *out = ROUTES_ALL_DAYS;
            return 0;
        }
        for (;; s = comma + 1) {
            comma = strchr(s, ',');
            if (routes_day_item(s, comma != NULL ? (size_t)(comma - s) : strlen(s), out) != 0) {
                return -1;
            }
            if (comma == NULL) {
                return 0;
            }
        }
    }
    if (!json_is_array(v) || json_array_size(v) == 0) {
        return -1;
    }
    json_array_foreach(v, i, item) {
        if (!json_is_string(item) ||
            routes_day_item(json_string_value(item), json_string_length(item), out) != 0) {
            return -1;
        }
    }
    return 0;
}

/* "HH:MM" as minutes of the day; "24:00" only when allow_end. Returns 0 or -1. */
static int
routes_parse_hhmm(const char *s, int allow_end, int *out)
{
    int h, m;

    if (strlen(s) != 5 || s[2] != ':' || s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' ||
        s[3] < '0' || s[3] > '5' || s[4] < '0' || s[4] > '9') {
        return -1;
    }
    h = (s[0] - '0') * 10 + (s[1] - '0');
    m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h > 24 || (h == 24 && (!allow_end || m != 0))) {
        return -1;
    }
    *out = h * 60 + m;
    return 0;
}

/* A window's "from" or "to". Returns 0 (valid, *out set) or -1 (reported). */
static int
routes_window_time(struct routes_msgs *err, const char *where, json_t *item, const char *key,
                   int *out)
{
    json_t *v = json_object_get(item, key);
    int end = strcmp(key, "to") == 0;

    if (v == NULL) {
        routes_msg(err, "%s.%s: is required (\"HH:MM\")", where, key);
        return -1;
    }
    if (!json_is_string(v)) {
        routes_msg(err, "%s.%s: must be a string \"HH:MM\"", where, key);
        return -1;
    }
    if (routes_parse_hhmm(json_string_value(v), end, out) != 0) {
        routes_msg(err, "%s.%s: \"%s\" is not HH:MM (00:00 to %s)", where, key,
                   json_string_value(v), end ? "24:00" : "23:59");
        return -1;
    }
    return 0;
}

static int
routes_zone_known(struct routes_load *ld, const char *zone)
{
    uint32_t *known = routes_strmap_get(&ld->zones, zone);

    if (known == NULL) {
        uint32_t ok = util_zone_valid(zone) ? 1 : 0;
        /* the key is the window's own copy, alive as long as the table; if the
         * map cannot grow, the zone is merely looked up again next time */
        routes_strmap_put(&ld->zones, zone, ok);
        return (int)ok;
    }
    return (int)*known;
}

/* One time window; label is "match.time" or "match.time[i]". */
static void
routes_parse_window(struct routes_load *ld, const char *where, const char *label, json_t *item,
                    struct route_window *w)
{
    static const char *const keys[] = {"days", "from", "to", "zone", NULL};
    char at[700];
    json_t *v;
    int from_ok, to_ok;

    snprintf(at, sizeof(at), "%s: %s", where, label);
    routes_check_keys(&ld->err, at, item, keys);
    w->days = ROUTES_ALL_DAYS;
    v = json_object_get(item, "days");
    if (v != NULL && routes_parse_days(v, &w->days) != 0) {
        routes_msg(&ld->err,
                   "%s.days: must be \"daily\", a range like \"mon-fri\", a list like "
                   "\"sat,sun\" or an array like [\"mon\", \"wed\"]",
                   at);
    }
    from_ok = routes_window_time(&ld->err, at, item, "from", &w->from_min) == 0;
    to_ok = routes_window_time(&ld->err, at, item, "to", &w->to_min) == 0;
    if (from_ok && to_ok && w->from_min == w->to_min) {
        routes_msg(&ld->err,
                   "%s: from and to are equal: an empty window (\"00:00\" to \"24:00\" is the "
                   "whole day)",
                   at);
    }
    v = json_object_get(item, "zone");
    if (v == NULL || !json_is_string(v) || json_string_length(v) == 0) {
        routes_msg(&ld->err, "%s.zone: is required (an IANA zone such as \"Asia/Kolkata\")", at);
        return;
    }
    w->zone = strdup(json_string_value(v));
    if (w->zone != NULL && !routes_zone_known(ld, w->zone)) {
        routes_msg(&ld->err, "%s.zone: \"%s\" is not a known IANA time zone", at, w->zone);
    }
}

/* "time": one window object or a non-empty array of them. */
static void
routes_parse_time(struct routes_load *ld, const char *where, json_t *v, struct route_rule *r)
{
    size_t i, n = json_is_object(v) ? 1 : json_is_array(v) ? json_array_size(v) : 0;

    if (n == 0) {
        routes_msg(&ld->err,
                   "%s: match.time: must be a window {\"days\", \"from\", \"to\", \"zone\"} or a "
                   "non-empty array of them",
                   where);
        return;
    }
    r->windows = calloc(n, sizeof(*r->windows));
    if (r->windows == NULL) {
        routes_msg(&ld->err, "%s: match.time: out of memory", where);
        return;
    }
    for (i = 0; i < n; i++) {
        json_t *item = json_is_object(v) ? v : json_array_get(v, i);
        char label[64];

        if (json_is_object(v)) {
            snprintf(label, sizeof(label), "match.time");
        } else {
            snprintf(label, sizeof(label), "match.time[%zu]", i);
        }
        if (!json_is_object(item)) {
            routes_msg(&ld->err, "%s: %s: must be an object {\"days\", \"from\", \"to\", \"zone\"}",
                       where, label);
            continue;
        }
        routes_parse_window(ld, where, label, item, &r->windows[r->nwindows++]);
    }
}

static void
routes_parse_tags(struct routes_load *ld, const char *where, json_t *v, struct route_rule *r)
{
    const char *key;
    json_t *val;
    size_t n = json_is_object(v) ? json_object_size(v) : 0;

    if (n == 0) {
        routes_msg(&ld->err, "%s: match.tags: must be a non-empty object of strings", where);
        return;
    }
    r->tag_keys = calloc(n, sizeof(char *));
    r->tag_values = calloc(n, sizeof(char *));
    if (r->tag_keys == NULL || r->tag_values == NULL) {
        routes_msg(&ld->err, "%s: match.tags: out of memory", where);
        return;
    }
    json_object_foreach(v, key, val) {
        if (!json_is_string(val)) {
            routes_msg(&ld->err, "%s: match.tags.%s: must be a string", where, key);
            continue;
        }
        r->tag_keys[r->ntags] = strdup(key);
        r->tag_values[r->ntags++] = strdup(json_string_value(val));
    }
}

static void
routes_parse_requires(struct routes_load *ld, const char *where, json_t *match,
                      struct route_rule *r)
{
    char **names;
    size_t n, i, k;

    if (routes_strings(&ld->err, where, match, "requires", &names, &n) == 0) {
        for (i = 0; i < n; i++) {
            for (k = 0; k < ROUTES_NCAPS && strcmp(names[i], routes_caps[k].name) != 0; k++) {
            }
            if (k == ROUTES_NCAPS) {
                routes_msg(&ld->err,
                           "%s: match.requires: \"%s\" is not one of outbound, inbound, "
                           "scheduled, participants, recording, flags",
                           where, names[i]);
            } else {
                r->requires |= routes_caps[k].bit;
            }
        }
    }
    routes_free_list(names, n);
}

static void
routes_parse_match(struct routes_load *ld, const char *where, json_t *match, struct route_rule *r)
{
    static const char *const keys[] = {"tenant", "to_prefix", "from_prefix", "type",
                                       "tags",   "time",      "requires",    NULL};
    char at[600];
    json_t *v;
    size_t i;

    snprintf(at, sizeof(at), "%s: match", where);
    routes_check_keys(&ld->err, at, match, keys);
    routes_strings(&ld->err, where, match, "tenant", &r->tenants, &r->ntenants);
    for (i = 0; i < r->ntenants; i++) {
        if (conf_tenant_find(ld->conf, r->tenants[i]) == NULL) {
            routes_msg(&ld->err, "%s: match.tenant: unknown tenant \"%s\"", where, r->tenants[i]);
        }
    }
    routes_strings(&ld->err, where, match, "to_prefix", &r->to_prefix, &r->nprefix);
    routes_check_prefixes(&ld->err, where, "to_prefix", r->to_prefix, r->nprefix);
    routes_strings(&ld->err, where, match, "from_prefix", &r->from_prefix, &r->nfrom);
    routes_check_prefixes(&ld->err, where, "from_prefix", r->from_prefix, r->nfrom);
    routes_strings(&ld->err, where, match, "type", &r->types, &r->ntypes);
    for (i = 0; i < r->ntypes; i++) {
        if (routes_type_bit(r->types[i]) == 0) {
            routes_msg(&ld->err, "%s: match.type: \"%s\" is not outbound, inbound or scheduled",
                       where, r->types[i]);
        }
    }
    if ((v = json_object_get(match, "tags")) != NULL) {
        routes_parse_tags(ld, where, v, r);
    }
    if ((v = json_object_get(match, "time")) != NULL) {
        routes_parse_time(ld, where, v, r);
    }
    routes_parse_requires(ld, where, match, r);
}

/* One element of "vendors": a name, or {"vendor": name, "weight": 1..1000}. */
static void
routes_parse_vendor(struct routes_load *ld, const char *where, size_t i, json_t *item,
                    struct route_rule *r)
{
    static const char *const keys[] = {"vendor", "weight", NULL};
    const char *name = NULL;
    json_int_t weight = 1;
    size_t k;

    if (json_is_string(item)) {
        if (json_string_length(item) == 0) {
            routes_msg(&ld->err, "%s: vendors[%zu]: must be a non-empty string", where, i);
            return;
        }
        name = json_string_value(item);
    } else if (json_is_object(item)) {
        char at[600];
        json_t *v = json_object_get(item, "vendor"), *w = json_object_get(item, "weight");

        snprintf(at, sizeof(at), "%s: vendors[%zu]", where, i);
        routes_check_keys(&ld->err, at, item, keys);
        if (w != NULL) {
            weight = json_is_integer(w) ? json_integer_value(w) : 0;
            if (weight < 1 || weight > 1000) {
                routes_msg(&ld->err, "%s.weight: must be an integer from 1 to 1000", at);
            }
        }
        if (!json_is_string(v) || json_string_length(v) == 0) {
            routes_msg(&ld->err, "%s.vendor: is required (a vendor name)", at);
            return;
        }
        name = json_string_value(v);
    } else {
        routes_msg(&ld->err,
                   "%s: vendors[%zu]: must be a vendor name or {\"vendor\": name, \"weight\": "
                   "1 to 1000}",
                   where, i);
        return;
    }
    if (conf_vendor_find(ld->conf, name) == NULL) {
        routes_msg(&ld->err, "%s: vendors: \"%s\" is not a configured vendor", where, name);
    }
    for (k = 0; k < r->nvendors; k++) {
        if (strcmp(r->vendors[k].name, name) == 0) {
            routes_msg(&ld->err, "%s: vendors: \"%s\" is listed twice", where, name);
            return;
        }
    }
    r->vendors[r->nvendors].name = strdup(name);
    /* the weight only means something to "weighted"; routes.h keeps 1 elsewhere */
    r->vendors[r->nvendors++].weight =
        r->strategy == ROUTE_WEIGHTED && weight >= 1 && weight <= 1000 ? (unsigned)weight : 1;
}

static void
routes_parse_vendors(struct routes_load *ld, const char *where, json_t *v, struct route_rule *r)
{
    json_t *item;
    size_t i;

    if (v == NULL) {
        routes_msg(&ld->err, "%s: vendors: is required", where);
        return;
    }
    if (!json_is_array(v) || json_array_size(v) == 0) {
        routes_msg(&ld->err,
                   "%s: vendors: must be a non-empty array of strings (vendor names) or "
                   "{\"vendor\", \"weight\"} objects",
                   where);
        return;
    }
    if (json_array_size(v) > ROUTES_MAX_VENDORS) {
        routes_msg(&ld->err, "%s: vendors: at most %d", where, ROUTES_MAX_VENDORS);
        return;
    }
    r->vendors = calloc(json_array_size(v), sizeof(*r->vendors));
    if (r->vendors == NULL) {
        routes_msg(&ld->err, "%s: vendors: out of memory", where);
        return;
    }
    json_array_foreach(v, i, item) {
        routes_parse_vendor(ld, where, i, item, r);
    }
}

/* A new zeroed rule at the end of the table, or NULL (out of memory, reported). */
static struct route_rule *
routes_new_rule(struct routes_load *ld, const char *where)
{
    struct route_table *t = ld->t;

    if (t->nrules == ld->cap) {
        size_t cap = ld->cap != 0 ? 2 * ld->cap : 16;
        struct route_rule *grown = realloc(t->rules, cap * sizeof(*grown));
        if (grown == NULL) {
            routes_msg(&ld->err, "%s: out of memory", where);
            return NULL;
        }
        t->rules = grown;
        ld->cap = cap;
    }
    memset(&t->rules[t->nrules], 0, sizeof(t->rules[0]));
    return &t->rules[t->nrules++];
}

static void
routes_parse_rule(struct routes_load *ld, const char *path, size_t idx, json_t *obj)
{
    static const char *const keys[] = {
        "name", "description", "match", "strategy", "vendors", "require_agent_available", NULL};
    struct route_rule *r;
    char where[512];
    const char *base = strrchr(path, '/');
    json_t *v;
    size_t i;

    snprintf(where, sizeof(where), "%s: rules[%zu]", path, idx);
    if (!json_is_object(obj)) {
        routes_msg(&ld->err, "%s: must be an object", where);
        return;
    }
    if ((r = routes_new_rule(ld, where)) == NULL) {
        return;
    }
    r->file = strdup(base != NULL ? base + 1 : path);
    v = json_object_get(obj, "name");
    if (v == NULL) {
        routes_msg(&ld->err, "%s: name: is required", where);
    } else if (!json_is_string(v) || json_string_length(v) == 0) {
        routes_msg(&ld->err, "%s: name: must be a non-empty string", where);
    } else {
        /* from here on the rule is named by its name, not its position */
        snprintf(where, sizeof(where), "%s: %s", path, json_string_value(v));
        r->name = strdup(json_string_value(v));
        if (r->name != NULL && routes_strmap_get(&ld->names, r->name) != NULL) {
            routes_msg(&ld->err, "%s: name: duplicate rule name", where);
        } else if (r->name != NULL) {
            routes_strmap_put(&ld->names, r->name, (uint32_t)(ld->t->nrules - 1));
        }
    }
    routes_check_keys(&ld->err, where, obj, keys);
    if ((v = json_object_get(obj, "description")) != NULL) {
        if (json_is_string(v)) {
            r->description = strdup(json_string_value(v));
        } else {
            routes_msg(&ld->err, "%s: description: must be a string", where);
        }
    }
    v = json_object_get(obj, "match");
    if (!json_is_object(v)) {
        routes_msg(&ld->err, "%s: match: is required (an object; {} matches every call)", where);
    } else {
        routes_parse_match(ld, where, v, r);
    }
    if ((v = json_object_get(obj, "strategy")) != NULL) {
        for (i = 0; i < ROUTES_NSTRATEGIES; i++) {
            if (json_is_string(v) && strcmp(json_string_value(v), route_strategy_text[i]) == 0) {
                r->strategy = (enum route_strategy)i;
                break;
            }
        }
        if (i == ROUTES_NSTRATEGIES) {
            routes_msg(&ld->err,
                       "%s: strategy: must be \"priority\", \"weighted\" or \"least_busy\"", where);
        }
    }
    routes_parse_vendors(ld, where, json_object_get(obj, "vendors"), r);
    if ((v = json_object_get(obj, "require_agent_available")) != NULL) {
        if (json_is_boolean(v)) {
            r->require_agent_available = json_is_true(v);
        } else {
            routes_msg(&ld->err, "%s: require_agent_available: must be true or false", where);
        }
    }
}

/* ---------------------------------------------------------------------------
 * The index
 */

struct routes_entry {
    uint32_t node;
    uint32_t other; /* 0: a candidate through this trie; 1: found elsewhere */
    uint32_t rule;
};

static int
routes_entry_cmp(const void *pa, const void *pb)
{
    const struct routes_entry *a = pa, *b = pb;

    if (a->node != b->node) {
        return a->node < b->node ? -1 : 1;
    }
    if (a->other != b->other) {
        return a->other < b->other ? -1 : 1;
    }
    return a->rule < b->rule ? -1 : a->rule > b->rule;
}

/* The node for prefix, created as needed. Returns its index, or 0 (out of memory). */
static uint32_t
routes_trie_insert(struct routes_trie *tr, const char *prefix)
{
    uint32_t n = 0;
    const char *p;

    for (p = prefix + 1; *p != '\0'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (tr->nodes[n].child[d] == 0) {
            if (tr->nnodes == tr->cap) {
                struct routes_tnode *grown = realloc(tr->nodes, 2 * tr->cap * sizeof(*grown));
                if (grown == NULL) {
                    return 0;
                }
                tr->nodes = grown;
                tr->cap *= 2;
            }
            memset(&tr->nodes[tr->nnodes], 0, sizeof(tr->nodes[0]));
            tr->nodes[n].child[d] = (uint32_t)tr->nnodes++;
        }
        n = tr->nodes[n].child[d];
    }
    return n;
}

/*
 * The trie over every rule's to_prefix (from = 0) or from_prefix (from = 1).
 * In the from trie, rules that also have a to_prefix are listed as "other":
 * the to trie already offers them as candidates, and the from trie only has
 * to confirm their from_prefix.
 */
static int
routes_trie_build(struct routes_trie *tr, const struct route_table *t, int from)
{
    struct routes_entry *entries;
    struct routes_tnode *grown;
    size_t i, j, n = 0, total = 0, k = 0;

    for (i = 0; i < t->nrules; i++) {
        total += from ? t->rules[i].nfrom : t->rules[i].nprefix;
    }
    tr->cap = 64;
    tr->nnodes = 1;
    tr->nodes = calloc(tr->cap, sizeof(*tr->nodes));
    tr->rules = malloc((total > 0 ? total : 1) * sizeof(*tr->rules));
    entries = malloc((total > 0 ? total : 1) * sizeof(*entries));
    if (tr->nodes == NULL || tr->rules == NULL || entries == NULL) {
        free(entries);
        return -1;
    }
    for (i = 0; i < t->nrules; i++) {
        const struct route_rule *r = &t->rules[i];
        char *const *list = from ? r->from_prefix : r->to_prefix;
        size_t nlist = from ? r->nfrom : r->nprefix;
        for (j = 0; j < nlist; j++) {
            uint32_t node = routes_trie_insert(tr, list[j]);
            if (node == 0) {
                free(entries);
                return -1;
            }
            entries[n].node = node;
            entries[n].other = from && r->nprefix > 0;
            entries[n++].rule = (uint32_t)i;
        }
    }
    qsort(entries, n, sizeof(*entries), routes_entry_cmp);
    for (i = 0; i < n; i++) {
        struct routes_tnode *node = &tr->nodes[entries[i].node];
        if (i > 0 && routes_entry_cmp(&entries[i], &entries[i - 1]) == 0) {
            continue; /* a rule listing one prefix twice */
        }
        if (node->nprimary + node->nother == 0) {
            node->off = (uint32_t)k;
        }
        if (entries[i].other) {
            node->nother++;
        } else {
            node->nprimary++;
        }
        tr->rules[k++] = entries[i].rule;
    }
    free(entries);
    /* the node array grew by doubling: give the slack back, the table lives long */
    grown = realloc(tr->nodes, tr->nnodes * sizeof(*grown));
    if (grown != NULL) {
        tr->nodes = grown;
        tr->cap = tr->nnodes;
    }
    return 0;
}

/* The nodes holding rules on the walk along number's digits (at most 15). */
static size_t
routes_trie_walk(const struct routes_trie *tr, const char *number, const struct routes_tnode **path)
{
    const char *p;
    uint32_t node = 0;
    size_t n = 0;

    if (number == NULL || number[0] != '+' || tr->nnodes <= 1) {
        return 0;
    }
    for (p = number + 1; *p >= '0' && *p <= '9'; p++) {
        node = tr->nodes[node].child[*p - '0'];
        if (node == 0) {
            break;
        }
        if (tr->nodes[node].nprimary + tr->nodes[node].nother > 0) {
            path[n++] = &tr->nodes[node];
        }
    }
    return n;
}

static int
routes_sorted_has(const uint32_t *a, size_t n, uint32_t v)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] == v) {
            return 1;
        }
        if (a[mid] < v) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return 0;
}

/* Does rule have a prefix on this walk (so a prefix of the walked number)? */
static int
routes_path_has(const struct routes_trie *tr, const struct routes_tnode *const *path, size_t n,
                uint32_t rule)
{
    size_t i;

    for (i = 0; i < n; i++) {
        const uint32_t *list = tr->rules + path[i]->off;
        if (routes_sorted_has(list, path[i]->nprimary, rule) ||
            routes_sorted_has(list + path[i]->nprimary, path[i]->nother, rule)) {
            return 1;
        }
    }
    return 0;
}

static int
routes_index_build(struct route_table *t)
{
    struct routes_index *idx = calloc(1, sizeof(*idx));
    struct routes_strmap zones = {0};
    size_t i, k, nwin = 0;

    t->index = idx;
    if (idx == NULL) {
        return -1;
    }
    for (i = 0; i < t->nrules; i++) {
        nwin += t->rules[i].nwindows;
        t->nprefixes += t->rules[i].nprefix + t->rules[i].nfrom;
    }
    idx->info = calloc(t->nrules + 1, sizeof(*idx->info));
    idx->plain = malloc((t->nrules + 1) * sizeof(*idx->plain));
    idx->win_zone = malloc((nwin + 1) * sizeof(*idx->win_zone));
    idx->zones = malloc((nwin + 1) * sizeof(*idx->zones));
    if (idx->info == NULL || idx->plain == NULL || idx->win_zone == NULL || idx->zones == NULL ||
        routes_trie_build(&idx->to, t, 0) != 0 || routes_trie_build(&idx->from, t, 1) != 0) {
        return -1;
    }
    nwin = 0;
    for (i = 0; i < t->nrules; i++) {
        const struct route_rule *r = &t->rules[i];
        for (k = 0; k < r->ntypes; k++) {
            idx->info[i].types |= routes_type_bit(r->types[k]);
        }
        if (r->nprefix == 0 && r->nfrom == 0) {
            idx->plain[idx->nplain++] = (uint32_t)i;
        }
        idx->info[i].window0 = (uint32_t)nwin;
        for (k = 0; k < r->nwindows; k++) {
            const char *zone = r->windows[k].zone;
            uint32_t *z = routes_strmap_get(&zones, zone);
            if (z == NULL) {
                idx->zones[idx->nzones].name = zone;
                idx->zones[idx->nzones].slot = INT64_MIN;
                idx->zones[idx->nzones].offset = 0;
                if (routes_strmap_put(&zones, zone, (uint32_t)idx->nzones) != 0) {
                    routes_strmap_free(&zones);
                    return -1;
                }
                idx->win_zone[nwin++] = (uint32_t)idx->nzones++;
            } else {
                idx->win_zone[nwin++] = *z;
            }
        }
    }
    routes_strmap_free(&zones);
    return 0;
}

/* ---------------------------------------------------------------------------
 * Time
 */

/* Seconds east of UTC that zone has at the instant utc_sec (switches TZ: slow). */
static long
routes_tz_offset(const char *zone, int64_t utc_sec)
{
    const char *old = getenv("TZ");
    char *saved = old != NULL ? strdup(old) : NULL;
    time_t when = (time_t)utc_sec;
    struct tm tm;
    long offset = 0;

    setenv("TZ", zone, 1);
    tzset();
    if (localtime_r(&when, &tm) != NULL) {
        offset = tm.tm_gmtoff;
    }
    if (saved != NULL) {
        setenv("TZ", saved, 1);
        free(saved);
    } else {
        unsetenv("TZ");
    }
    tzset();
    return offset;
}

/* The zone's offset at at_ms, from the cache while at_ms stays in the cached quarter hour. */
static long
routes_zone_offset(struct routes_index *idx, uint32_t z, int64_t at_ms)
{
    struct routes_zone *zone = &idx->zones[z];
    int64_t slot = routes_floor_div(at_ms, ROUTES_SLOT_MS);

    if (zone->slot != slot) {
        zone->offset = strcmp(zone->name, "UTC") == 0
                           ? 0
                           : routes_tz_offset(zone->name, slot * (ROUTES_SLOT_MS / 1000));
        zone->slot = slot;
    }
    return zone->offset;
}

/*
 * Is local wall time inside the window? A window from > to runs past
 * midnight and belongs to the day it starts on, so the early part of a day
 * is checked against the day before.
 */
static int
routes_window_has(const struct route_window *w, long offset, int64_t at_ms)
{
    int64_t local = routes_floor_div(at_ms, 1000) + offset;
    int64_t day = routes_floor_div(local, 86400);
    int minute = (int)((local - day * 86400) / 60);
    unsigned wd = (unsigned)(((day % 7) + 7 + 3) % 7); /* 1970-01-01 was a Thursday; Monday = 0 */
    unsigned prev = (wd + 6) % 7;

    if (w->from_min < w->to_min) {
        return (w->days >> wd & 1u) && minute >= w->from_min && minute < w->to_min;
    }
    return ((w->days >> wd & 1u) && minute >= w->from_min) ||
           ((w->days >> prev & 1u) && minute < w->to_min);
}

/* ---------------------------------------------------------------------------
 * Matching
 */

static int
routes_tags_match(const struct route_rule *r, const struct route_call *c)
{
    size_t i, j;

    for (i = 0; i < r->ntags; i++) {
        for (j = 0; j < c->ntags; j++) {
            if (strcmp(c->tag_keys[j], r->tag_keys[i]) == 0) {
                break;
            }
        }
        if (j == c->ntags || strcmp(c->tag_values[j], r->tag_values[i]) != 0) {
            return 0;
        }
    }
    return 1;
}

/* Why rule i (a candidate: its to_prefix, if any, matches) does not match c, or NULL. */
static const char *
routes_reject(const struct route_table *t, struct routes_index *idx, uint32_t i,
              const struct route_call *c, unsigned type, const struct routes_tnode *const *fpath,
              size_t nf)
{
    const struct route_rule *r = &t->rules[i];
    size_t k;

    if (r->ntenants > 0 && (c->tenant == NULL || !routes_has(r->tenants, r->ntenants, c->tenant))) {
        return "tenant";
    }
    if (r->nfrom > 0 && !routes_path_has(&idx->from, fpath, nf, i)) {
        return "from_prefix";
    }
    if (idx->info[i].types != 0 && (idx->info[i].types & type) == 0) {
        return "type";
    }
    if (r->ntags > 0 && !routes_tags_match(r, c)) {
        return "tags";
    }
    if (r->nwindows > 0) {
        for (k = 0; k < r->nwindows; k++) {
            uint32_t z = idx->win_zone[idx->info[i].window0 + k];
            if (routes_window_has(&r->windows[k], routes_zone_offset(idx, z, c->at_ms), c->at_ms)) {
                break;
            }
        }
        if (k == r->nwindows) {
            return "time";
        }
    }
    if ((r->requires & c->needs) != r->requires) {
        return "requires";
    }
    return NULL;
}

struct routes_src {
    const uint32_t *at;
    const uint32_t *end;
};

const struct route_rule *
routes_match(const struct route_table *t, const struct route_call *c, json_t *why)
{
    struct routes_index *idx = t != NULL ? t->index : NULL;
    const struct routes_tnode *tpath[ROUTES_MAX_DIGITS + 1], *fpath[ROUTES_MAX_DIGITS + 1];
    struct routes_src src[2 * (ROUTES_MAX_DIGITS + 1) + 1];
    size_t nt, nf, ns = 0, i;
    unsigned type;

    if (idx == NULL) {
        return NULL;
    }
    type = routes_type_bit(c->type);
    nt = routes_trie_walk(&idx->to, c->to, tpath);
    nf = routes_trie_walk(&idx->from, c->from, fpath);
    for (i = 0; i < nt; i++) {
        src[ns].at = idx->to.rules + tpath[i]->off;
        src[ns].end = src[ns].at + tpath[i]->nprimary;
        ns++;
    }
    for (i = 0; i < nf; i++) {
        if (fpath[i]->nprimary > 0) {
            src[ns].at = idx->from.rules + fpath[i]->off;
            src[ns].end = src[ns].at + fpath[i]->nprimary;
            ns++;
        }
    }
    if (idx->nplain > 0) {
        src[ns].at = idx->plain;
        src[ns].end = idx->plain + idx->nplain;
        ns++;
    }
    /* merge the ascending lists: candidates in rule order, each once */
    for (;;) {
        uint32_t best = UINT32_MAX;
        const char *reason;

        for (i = 0; i < ns; i++) {
            if (src[i].at < src[i].end && *src[i].at < best) {
                best = *src[i].at;
            }
        }
        if (best == UINT32_MAX) {
            return NULL;
        }
        for (i = 0; i < ns; i++) {
            if (src[i].at < src[i].end && *src[i].at == best) {
                src[i].at++;
            }
        }
        reason = routes_reject(t, idx, best, c, type, fpath, nf);
        if (reason == NULL) {
            return &t->rules[best];
        }
        if (why != NULL) {
            json_array_append_new(
                why, json_pack("{s:s, s:s}", "rule", t->rules[best].name, "reason", reason));
        }
    }
}

/* ---------------------------------------------------------------------------
 * Warnings: the catch-all and shadowed rules
 */

static int
routes_is_catch_all(const struct route_rule *r)
{
    return r->ntenants == 0 && r->nprefix == 0 && r->nfrom == 0 && r->ntypes == 0 &&
           r->ntags == 0 && r->nwindows == 0 && r->requires == 0;
}

/* Is every one of b's prefixes an extension of one of rule a's (all in trie)? */
static int
routes_prefixes_covered(const struct routes_trie *tr, char *const *list, size_t n, uint32_t a)
{
    const struct routes_tnode *path[ROUTES_MAX_DIGITS + 1];
    size_t i;

    for (i = 0; i < n; i++) {
        size_t np = routes_trie_walk(tr, list[i], path);
        if (!routes_path_has(tr, path, np, a)) {
            return 0;
        }
    }
    return n > 0;
}

/* Does window a contain window b at every instant (same zone, wall-clock minutes)? */
static int
routes_window_covers(const struct route_window *a, uint32_t za, const struct route_window *b,
                     uint32_t zb)
{
    int a_cross = a->from_min > a->to_min, b_cross = b->from_min > b->to_min;

    if (za != zb || (b->days & ~a->days) != 0) {
        return 0;
    }
    if (a_cross == b_cross) {
        return a->from_min <= b->from_min && b->to_min <= a->to_min;
    }
    /* b inside the evening part of a window that runs past midnight */
    return a_cross && a->from_min <= b->from_min;
}

/*
 * Does every call that matches rule b also match rule a? Conservative: 1
 * only when each condition of a is certainly looser than b's.
 */
static int
routes_covers(const struct route_table *t, const struct routes_index *idx, uint32_t ai, uint32_t bi)
{
    const struct route_rule *a = &t->rules[ai], *b = &t->rules[bi];
    unsigned ta = idx->info[ai].types, tb = idx->info[bi].types;
    size_t i, j;

    if (a->ntenants > 0) {
        if (b->ntenants == 0) {
            return 0;
        }
        for (i = 0; i < b->ntenants; i++) {
            if (!routes_has(a->tenants, a->ntenants, b->tenants[i])) {
                return 0;
            }
        }
    }
    if ((ta != 0 && (tb == 0 || (tb & ~ta) != 0)) || (a->requires & ~b->requires) != 0) {
        return 0;
    }
    for (i = 0; i < a->ntags; i++) {
        for (j = 0; j < b->ntags; j++) {
            if (strcmp(a->tag_keys[i], b->tag_keys[j]) == 0) {
                break;
            }
        }
        if (j == b->ntags || strcmp(a->tag_values[i], b->tag_values[j]) != 0) {
            return 0;
        }
    }
    if (a->nwindows > 0) {
        if (b->nwindows == 0) {
            return 0;
        }
        for (i = 0; i < b->nwindows; i++) {
            uint32_t zb = idx->win_zone[idx->info[bi].window0 + i];
            for (j = 0; j < a->nwindows; j++) {
                if (routes_window_covers(&a->windows[j], idx->win_zone[idx->info[ai].window0 + j],
                                         &b->windows[i], zb)) {
                    break;
                }
            }
            if (j == a->nwindows) {
                return 0;
            }
        }
    }
    /* prefixes last: the walks cost most, and cheap conditions rule most candidates out */
    if (a->nprefix > 0 && !routes_prefixes_covered(&idx->to, b->to_prefix, b->nprefix, ai)) {
        return 0;
    }
    if (a->nfrom > 0 && !routes_prefixes_covered(&idx->from, b->from_prefix, b->nfrom, ai)) {
        return 0;
    }
    return 1;
}

/* Prefix-free rules filed by what a later rule must share to be covered by them. */
struct routes_key {
    const char *a; /* tag key, or tenant */
    const char *b; /* tag value, or NULL */
    uint32_t rule;
};

static int
routes_key_order(const char *a1, const char *b1, const char *a2, const char *b2)
{
    int d = strcmp(a1, a2);

    if (d != 0 || b1 == NULL || b2 == NULL) {
        return d;
    }
    return strcmp(b1, b2);
}

static int
routes_key_cmp(const void *pa, const void *pb)
{
    const struct routes_key *x = pa, *y = pb;
    int d = routes_key_order(x->a, x->b, y->a, y->b);

    return d != 0 ? d : (x->rule < y->rule ? -1 : x->rule > y->rule);
}

/* The first key (a, b) in the sorted keys, or n. */
static size_t
routes_key_find(const struct routes_key *keys, size_t n, const char *a, const char *b)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (routes_key_order(keys[mid].a, keys[mid].b, a, b) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

struct routes_shadow {
    const struct route_table *t;
    const struct routes_index *idx;
    const unsigned char *shadowed;
    size_t budget; /* candidates left to examine for the current rule */
};

/*
 * The first rule of list (ascending) before *best that covers rule b goes
 * into *best, so the earliest shadower over all lists is the one named.
 */
static void
routes_shadow_scan(struct routes_shadow *s, const uint32_t *list, size_t n, uint32_t b,
                   uint32_t *best)
{
    size_t i;

    for (i = 0; i < n && list[i] < *best && s->budget > 0; i++) {
        s->budget--;
        /* a shadowed rule's shadower is earlier and covers whatever it covers */
        if (!s->shadowed[list[i]]) {
            if (routes_covers(s->t, s->idx, list[i], b)) {
                *best = list[i];
                return;
            }
        }
    }
}

/* The same over the prefix-free rules filed under key (a, b). */
static void
routes_shadow_keys(struct routes_shadow *s, const struct routes_key *keys, size_t n, const char *a,
                   const char *b, uint32_t rule, uint32_t *best)
{
    size_t i;

    for (i = routes_key_find(keys, n, a, b);
         i < n && routes_key_order(keys[i].a, keys[i].b, a, b) == 0 && keys[i].rule < *best &&
         s->budget > 0;
         i++) {
        s->budget--;
        if (!s->shadowed[keys[i].rule]) {
            if (routes_covers(s->t, s->idx, keys[i].rule, rule)) {
                *best = keys[i].rule;
                return;
            }
        }
    }
}

/* The earliest rule before b that matches every call b matches, or UINT32_MAX. */
static uint32_t
routes_shadower(struct routes_shadow *s, uint32_t b, const struct routes_key *tags, size_t ntags,
                const struct routes_key *tenants, size_t ntenants, const uint32_t *rest,
                size_t nrest)
{
    const struct route_rule *r = &s->t->rules[b];
    const struct routes_tnode *path[ROUTES_MAX_DIGITS + 1];
    uint32_t best = b;
    size_t i, np;

    /* rules with a to_prefix: only those on the walk along b's first prefix */
    np = r->nprefix > 0 ? routes_trie_walk(&s->idx->to, r->to_prefix[0], path) : 0;
    for (i = 0; i < np; i++) {
        routes_shadow_scan(s, s->idx->to.rules + path[i]->off, path[i]->nprimary, b, &best);
    }
    /* rules with only a from_prefix: the same along b's first from_prefix */
    np = r->nfrom > 0 ? routes_trie_walk(&s->idx->from, r->from_prefix[0], path) : 0;
    for (i = 0; i < np; i++) {
        routes_shadow_scan(s, s->idx->from.rules + path[i]->off, path[i]->nprimary, b, &best);
    }
    /* prefix-free rules with tags: filed under their first pair, which b must have */
    for (i = 0; i < r->ntags; i++) {
        routes_shadow_keys(s, tags, ntags, r->tag_keys[i], r->tag_values[i], b, &best);
    }
    /* ... with tenants (and no tags): b's tenants must all be theirs, so its first is */
    if (r->ntenants > 0) {
        routes_shadow_keys(s, tenants, ntenants, r->tenants[0], NULL, b, &best);
    }
    routes_shadow_scan(s, rest, nrest, b, &best);
    return best != b ? best : UINT32_MAX;
}

/*
 * Warn about each rule before the first catch-all that an earlier rule
 * shadows (rules after a catch-all get one warning of their own). Candidate
 * shadowers come from the tries and from the prefix-free rules filed by
 * their first tag or their tenants, never from all earlier rules; and at
 * most ROUTES_SHADOW_BUDGET are visited per rule, so a pathological table
 * still loads in linear time (a shadow may then go unreported; a warning is
 * never wrong).
 */
static int
routes_warn_shadows(const struct route_table *t, const struct routes_index *idx, size_t end,
                    struct routes_msgs *warn)
{
    struct routes_key *tags = NULL, *tenants = NULL;
    uint32_t *rest = NULL;
    unsigned char *shadowed = calloc(t->nrules + 1, 1);
    size_t ntags = 0, ntenants = 0, nrest = 0, i, k, cap = 0, nshadowed = 0;
    struct routes_shadow s = {.t = t, .idx = idx};
    int rc = -1;

    for (i = 0; i < end; i++) {
        cap += t->rules[i].ntenants;
    }
    tags = malloc((end + 1) * sizeof(*tags));
    tenants = malloc((cap + 1) * sizeof(*tenants));
    rest = malloc((end + 1) * sizeof(*rest));
    if (shadowed == NULL || tags == NULL || tenants == NULL || rest == NULL) {
        goto done;
    }
    for (i = 0; i < idx->nplain && idx->plain[i] < end; i++) {
        const struct route_rule *r = &t->rules[idx->plain[i]];
        if (r->ntags > 0) {
            tags[ntags].a = r->tag_keys[0];
            tags[ntags].b = r->tag_values[0];
            tags[ntags++].rule = idx->plain[i];
        } else if (r->ntenants > 0) {
            for (k = 0; k < r->ntenants; k++) {
                tenants[ntenants].a = r->tenants[k];
                tenants[ntenants].b = NULL;
                tenants[ntenants++].rule = idx->plain[i];
            }
        } else {
            rest[nrest++] = idx->plain[i];
        }
    }
    qsort(tags, ntags, sizeof(*tags), routes_key_cmp);
    qsort(tenants, ntenants, sizeof(*tenants), routes_key_cmp);
    s.shadowed = shadowed;
    for (i = 1; i < end; i++) {
        uint32_t a;
        s.budget = ROUTES_SHADOW_BUDGET;
        a = routes_shadower(&s, (uint32_t)i, tags, ntags, tenants, ntenants, rest, nrest);
        if (a != UINT32_MAX && ++nshadowed <= ROUTES_SHADOW_LINES) {
            routes_msg(warn,
                       "rule %s (%s) never matches: rule %s (%s) before it matches every "
                       "call it would",
                       t->rules[i].name, t->rules[i].file, t->rules[a].name, t->rules[a].file);
        }
        shadowed[i] = a != UINT32_MAX;
    }
    if (nshadowed > ROUTES_SHADOW_LINES) {
        /* a generated table can shadow thousands: the log line stays readable */
        routes_msg(warn,
                   "%zu more rules never match (an earlier rule matches every call they "
                   "would); not listed",
                   nshadowed - ROUTES_SHADOW_LINES);
    }
    rc = 0;
done:
    free(shadowed);
    free(tags);
    free(tenants);
    free(rest);
    return rc;
}

static int
routes_warn(const struct route_table *t, const struct routes_index *idx, struct routes_msgs *warn)
{
    size_t first;

    for (first = 0; first < t->nrules && !routes_is_catch_all(&t->rules[first]); first++) {
    }
    if (routes_warn_shadows(t, idx, first, warn) != 0) {
        return -1;
    }
    if (first == t->nrules) {
        routes_msg(warn, "no catch-all rule (match {}): calls that match no rule get 503 "
                         "no-route");
    } else if (first + 1 < t->nrules) {
        routes_msg(warn, "rule %s matches every call: the %zu rule(s) after it never match",
                   t->rules[first].name, t->nrules - first - 1);
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Loading
 */

static int
routes_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.json names of dir, sorted. Returns the count or -1. */
static int
routes_list(const char *dir, char ***names)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0, cap = 0;
    char **list = NULL, **grown;

    *names = NULL;
    if (d == NULL) {
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' || l < 6 || strcmp(de->d_name + l - 5, ".json") != 0) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            grown = realloc(list, cap * sizeof(char *));
            if (grown == NULL) {
                break;
            }
            list = grown;
        }
        if ((list[n] = strdup(de->d_name)) != NULL) {
            n++;
        }
    }
    closedir(d);
    if (n > 0) {
        qsort(list, n, sizeof(char *), routes_name_cmp);
    }
    *names = list;
    return (int)n;
}

/* Append "name\n<canonical JSON>" to the text the version hashes. */
static void
routes_hash_add(char **all, size_t *len, const char *name, json_t *root)
{
    char *text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS), *grown;
    size_t tl = text != NULL ? strlen(text) : 0, nl = strlen(name);

    grown = realloc(*all, *len + nl + tl + 2);
    if (grown != NULL) {
        *all = grown;
        memcpy(*all + *len, name, nl);
        (*all)[*len + nl] = '\n';
        if (tl > 0) {
            memcpy(*all + *len + nl + 1, text, tl);
        }
        *len += nl + 1 + tl;
        (*all)[*len] = '\0';
    }
    free(text);
}

/* Load and validate one file's rules into ld. */
static void
routes_load_file(struct routes_load *ld, const char *dir, const char *name, char **all,
                 size_t *alllen)
{
    char path[1024];
    json_error_t jerr;
    json_t *root, *rules, *rule;
    size_t j;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        routes_msg(&ld->err, "%s: line %d, column %d: %s", path, jerr.line, jerr.column, jerr.text);
        return;
    }
    routes_hash_add(all, alllen, name, root);
    rules = json_object_get(root, "rules");
    if (!json_is_object(root) || !json_is_array(rules) || json_object_size(root) != 1) {
        routes_msg(&ld->err, "%s: (file): must be an object with one key, \"rules\" (an array)",
                   path);
    } else {
        json_array_foreach(rules, j, rule) {
            routes_parse_rule(ld, path, j, rule);
        }
    }
    json_decref(root);
}

struct route_table *
routes_load_dir(const char *dir, const struct conf *conf, char **errors, char **warnings)
{
    struct routes_load ld = {.conf = conf};
    struct routes_msgs warn = {0};
    struct route_table *t = calloc(1, sizeof(*t));
    char **names = NULL, hex[CRYPTO_SHA256_HEX_LEN + 1];
    char *all = NULL;
    size_t alllen = 0, i;
    int n;

    *errors = NULL;
    if (warnings != NULL) {
        *warnings = NULL;
    }
    if (t == NULL) {
        return NULL;
    }
    t->refs = 1;
    ld.t = t;
    n = routes_list(dir, &names);
    if (n < 0) {
        routes_msg(&ld.err, "%s: cannot read the routes directory", dir);
    } else if (n == 0) {
        routes_msg(&ld.err, "%s: no *.json rule files", dir);
    }
    for (i = 0; n > 0 && i < (size_t)n; i++) {
        routes_load_file(&ld, dir, names[i], &all, &alllen);
    }
    if (n > 0 && t->nrules == 0 && ld.err.count == 0) {
        routes_msg(&ld.err, "%s: the table has no rules: every call would get 503 no-route", dir);
    }
    if (ld.err.count == 0 && (routes_index_build(t) != 0 || routes_warn(t, t->index, &warn) != 0)) {
        routes_msg(&ld.err, "%s: out of memory while indexing the rules", dir);
    }
    crypto_sha256_hex(all != NULL ? all : "", alllen, hex);
    memcpy(t->version, hex, 16);
    t->version[16] = '\0';
    free(all);
    for (i = 0; n > 0 && i < (size_t)n; i++) {
        free(names[i]);
    }
    free(names);
    routes_strmap_free(&ld.names);
    routes_strmap_free(&ld.zones);
    if (ld.err.count > 0) {
        free(warn.text);
        routes_free(t);
        *errors = ld.err.text;
        return NULL;
    }
    if (warnings != NULL) {
        *warnings = warn.text;
    } else {
        free(warn.text);
    }
    free(ld.err.text);
    return t;
}

struct route_table *
routes_ref(struct route_table *t)
{
    t->refs++;
    return t;
}

void
routes_unref(struct route_table *t)
{
    if (t != NULL && --t->refs == 0) {
        routes_free(t);
    }
}

/* ---------------------------------------------------------------------------
 * Ordering and JSON
 */

size_t
routes_order(const struct route_rule *rule, const char *call_id, size_t *order, size_t max)
{
    size_t n = rule->nvendors, i, k;
    uint64_t state, used = 0;

    if (rule->strategy != ROUTE_WEIGHTED || n > ROUTES_MAX_VENDORS) {
        for (i = 0; i < n && i < max; i++) {
            order[i] = i;
        }
        return i;
    }
    state = routes_fnv1a(call_id != NULL ? call_id : "");
    for (k = 0; k < n && k < max; k++) {
        uint64_t total = 0, draw;
        for (i = 0; i < n; i++) {
            total += (used >> i & 1u) ? 0 : rule->vendors[i].weight;
        }
        /* a uniform draw in [0, total): the high 32 bits scaled (total < 2^17) */
        draw = ((routes_next(&state) >> 32) * total) >> 32;
        for (i = 0; i < n; i++) {
            if (used >> i & 1u) {
                continue;
            }
            if (draw < rule->vendors[i].weight || total == 0) {
                break;
            }
            draw -= rule->vendors[i].weight;
        }
        order[k] = i;
        used |= (uint64_t)1 << i;
    }
    return k;
}

static json_t *
routes_strings_json(char *const *list, size_t n)
{
    json_t *a = json_array();
    size_t i;

    for (i = 0; i < n; i++) {
        json_array_append_new(a, json_string(list[i]));
    }
    return a;
}

static json_t *
routes_hhmm_json(int minutes)
{
    char s[8];

    snprintf(s, sizeof(s), "%02d:%02d", minutes / 60 % 100, minutes % 60);
    return json_string(s);
}

/* The match as loaded, in the canonical spelling (lists as arrays, days as names). */
static json_t *
routes_match_json(const struct route_rule *r)
{
    json_t *m = json_object();
    size_t i, d;

    if (r->ntenants > 0) {
        json_object_set_new(m, "tenant", routes_strings_json(r->tenants, r->ntenants));
    }
    if (r->nprefix > 0) {
        json_object_set_new(m, "to_prefix", routes_strings_json(r->to_prefix, r->nprefix));
    }
    if (r->nfrom > 0) {
        json_object_set_new(m, "from_prefix", routes_strings_json(r->from_prefix, r->nfrom));
    }
    if (r->ntypes > 0) {
        json_object_set_new(m, "type", routes_strings_json(r->types, r->ntypes));
    }
    if (r->ntags > 0) {
        json_t *tags = json_object();
        for (i = 0; i < r->ntags; i++) {
            json_object_set_new(tags, r->tag_keys[i], json_string(r->tag_values[i]));
        }
        json_object_set_new(m, "tags", tags);
    }
    if (r->nwindows > 0) {
        json_t *windows = json_array();
        for (i = 0; i < r->nwindows; i++) {
            const struct route_window *w = &r->windows[i];
            json_t *days = json_array();
            for (d = 0; d < 7; d++) {
                if (w->days >> d & 1u) {
                    json_array_append_new(days, json_string(routes_day_names[d]));
                }
            }
            json_array_append_new(windows, json_pack("{s:o, s:o, s:o, s:s}", "days", days, "from",
                                                     routes_hhmm_json(w->from_min), "to",
                                                     routes_hhmm_json(w->to_min), "zone", w->zone));
        }
        json_object_set_new(m, "time", windows);
    }
    if (r->requires != 0) {
        json_t *req = json_array();
        for (i = 0; i < ROUTES_NCAPS; i++) {
            if (r->requires & routes_caps[i].bit) {
                json_array_append_new(req, json_string(routes_caps[i].name));
            }
        }
        json_object_set_new(m, "requires", req);
    }
    return m;
}

json_t *
routes_json(const struct route_table *t)
{
    json_t *rules = json_array();
    size_t i, j;

    for (i = 0; i < t->nrules; i++) {
        const struct route_rule *r = &t->rules[i];
        json_t *vendors = json_array();
        for (j = 0; j < r->nvendors; j++) {
            json_array_append_new(vendors, json_pack("{s:s, s:i}", "vendor", r->vendors[j].name,
                                                     "weight", (int)r->vendors[j].weight));
        }
        json_array_append_new(
            rules, json_pack("{s:s, s:s, s:s?, s:o, s:s, s:o, s:b}", "name", r->name, "file",
                             r->file, "description", r->description, "match", routes_match_json(r),
                             "strategy", route_strategy_text[r->strategy], "vendors", vendors,
                             "require_agent_available", r->require_agent_available));
    }
    return json_pack("{s:s, s:o}", "version", t->version, "rules", rules);
}
