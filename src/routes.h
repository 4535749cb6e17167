/*
 * routes.h: the operators' routing table (the JSON files of routes/, see
 * routes/README.md). Files are loaded in name order; each holds
 * {"rules": [...]}; the first rule that matches a call decides which vendors
 * are candidates, and the rule's strategy how they are ordered.
 *
 * A table is immutable once loaded (apart from a private time-zone offset
 * cache), reference-counted, carries a version (SHA-256 of its files), and
 * is rebuilt beside the old one on reload. Matching must stay in the
 * microseconds with tens of thousands of prefixes: prefixes live in a trie.
 */
#ifndef CG_ROUTES_H
#define CG_ROUTES_H

#include <stddef.h>
#include <stdint.h>

struct conf;
struct json_t;

enum route_strategy {
    ROUTE_PRIORITY = 0, /* vendors in order; the next only after a certain failure */
    ROUTE_WEIGHTED,     /* first pick weighted, deterministic per call id; the rest by weight */
    ROUTE_LEAST_BUSY,   /* fewest in-flight calls first (counts from Redis, see calls.c) */
};

extern const char *const route_strategy_text[];

struct route_vendor {
    char *name;
    unsigned weight;    /* weighted: 1..1000; others: 1 */
};

/* A time window: days (bit 0 = Monday .. bit 6 = Sunday) and minutes of the day in zone. */
struct route_window {
    unsigned days;
    int from_min;       /* 0..1439 */
    int to_min;         /* 0..1440; from > to crosses midnight (the day is the start day) */
    char *zone;         /* IANA zone */
};

struct route_rule {
    char *name;
    char *description;  /* or NULL */
    char *file;         /* the file it came from (base name) */
    char **tenants;     /* NULL = any */
    size_t ntenants;
    char **to_prefix;   /* "+91", ...; NULL = any */
    size_t nprefix;
    char **from_prefix; /* NULL = any */
    size_t nfrom;
    char **types;       /* "outbound", ...; NULL = any */
    size_t ntypes;
    char **tag_keys;    /* every pair must be equal in the call's tags */
    char **tag_values;
    size_t ntags;
    struct route_window *windows; /* any one must contain the time; NULL = any time */
    size_t nwindows;
    unsigned requires;  /* VENDOR_CAP_* bits the call must need for the rule to match */
    enum route_strategy strategy;
    struct route_vendor *vendors; /* candidates, in the rule's order */
    size_t nvendors;
    int require_agent_available;
};

struct route_table {
    int refs;
    char version[17];        /* first 16 hex digits of the content hash */
    struct route_rule *rules;
    size_t nrules;
    size_t nprefixes;        /* to_prefix + from_prefix entries in all rules */
    void *index;             /* private: prefix tries, zone cache */
};

/* What matching looks at: the call as the request describes it. */
struct route_call {
    const char *tenant;
    const char *to;          /* E.164 */
    const char *from;        /* E.164, or NULL (then from_prefix rules do not match) */
    const char *type;        /* "outbound", "inbound", "scheduled" */
    const char *const *tag_keys;
    const char *const *tag_values;
    size_t ntags;
    unsigned needs;          /* VENDOR_CAP_* bits the request needs */
    int64_t at_ms;           /* the time to evaluate windows at (ms since the epoch) */
};

/*
 * Load every *.json of dir in name order, validated against conf (vendor and
 * tenant names must be configured). Returns a table with one reference, or
 * NULL and *errors ("file: rule: field: reason" lines; caller frees).
 * *warnings, when not NULL, receives warnings (a rule shadowed by an earlier
 * one, no catch-all rule) or NULL.
 */
struct route_table *routes_load_dir(const char *dir, const struct conf *conf, char **errors,
                                    char **warnings);

struct route_table *routes_ref(struct route_table *t);
void routes_unref(struct route_table *t);

/*
 * The first rule matching the call, or NULL. When why is not NULL it
 * receives (appended, new references) one {"rule", "reason"} object per
 * rule examined before the match that did not match (reason: "tenant",
 * "to_prefix", "from_prefix", "type", "tags", "time", "requires"), for
 * explain; rules the prefix index skipped need not be listed.
 */
const struct route_rule *routes_match(const struct route_table *t, const struct route_call *c,
                                      struct json_t *why);

/*
 * The rule's vendors in the order its strategy gives for call_id: priority
 * and least_busy keep the rule's order (least_busy is re-sorted by the
 * caller from Redis counts); weighted picks the first with probability
 * weight/sum, deterministically from call_id (the same id always gives the
 * same order), then the rest the same way among those left. Writes up to
 * max indexes into rule->vendors to order; returns how many.
 */
size_t routes_order(const struct route_rule *rule, const char *call_id, size_t *order,
                    size_t max);

/* The table as JSON for GET /admin/routes: version and rules (new reference). */
struct json_t *routes_json(const struct route_table *t);

#endif
