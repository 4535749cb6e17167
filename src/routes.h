/*
 * routes.h: the operators' routing table (the JSON files of routes/, see routes/README.md).
 * Files are loaded in name order; each holds {"rules": [...]}; the first rule
 * that matches a call decides which vendors are candidates, in order.
 *
 * This is the first cut: match on tenant, to_prefix (longest prefix), and
 * call type, strategy "priority". A table is immutable and reference-counted,
 * carries a version (SHA-256 of its files), and is rebuilt beside the old one
 * on reload.
 */
#ifndef CG_ROUTES_H
#define CG_ROUTES_H

#include <stddef.h>

struct conf;

struct route_rule {
    char *name;
    char **tenants;   /* NULL = any */
    size_t ntenants;
    char **to_prefix; /* "+91", ...; NULL = any */
    size_t nprefix;
    char **types;     /* "outbound", ...; NULL = any */
    size_t ntypes;
    char **vendors;   /* candidates in order */
    size_t nvendors;
};

struct route_table {
    int refs;
    char version[17];        /* first 16 hex digits of the content hash */
    struct route_rule *rules;
    size_t nrules;
};

/*
 * Load every *.json of dir in name order, validated against conf (vendor
 * names must be configured). Returns a table with one reference, or NULL and
 * *errors ("file: rule: field: reason" lines; caller frees). *warnings, when
 * not NULL, receives warnings (no catch-all rule, ...) or NULL.
 */
struct route_table *routes_load_dir(const char *dir, const struct conf *conf, char **errors,
                                    char **warnings);

struct route_table *routes_ref(struct route_table *t);
void routes_unref(struct route_table *t);

/* The first rule matching the call, or NULL. to is E.164. */
const struct route_rule *routes_match(const struct route_table *t, const char *tenant,
                                      const char *to, const char *type);

#endif
