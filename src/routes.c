/*
 * routes.c: load, validate and match the routing table. Validation reports
 * file, rule and field for every mistake; nothing half-loaded is ever used.
 */
#include <ctype.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "conf.h"
#include "crypto.h"
#include "routes.h"

const char *const route_strategy_text[] = {"priority", "weighted", "least_busy"};

struct routes_msgs {
    char *text;
    size_t len;
    int count;
};

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
    grown = realloc(m->text, m->len + n + 1);
    if (grown == NULL) {
        return;
    }
    m->text = grown;
    memcpy(m->text + m->len, line, n + 1);
    m->len += n;
    m->count++;
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

static void
routes_free(struct route_table *t)
{
    size_t i;

    for (i = 0; i < t->nrules; i++) {
        struct route_rule *r = &t->rules[i];
        free(r->name);
        routes_free_list(r->tenants, r->ntenants);
        routes_free_list(r->to_prefix, r->nprefix);
        routes_free_list(r->types, r->ntypes);
        for (size_t k = 0; k < r->nvendors; k++) {
            free(r->vendors[k].name);
        }
        free(r->vendors);
        free(r->file);
    }
    free(t->rules);
    free(t);
}

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
        return -1;
    }
    json_array_foreach(v, i, item) {
        if (!json_is_string(item) || json_string_length(item) == 0) {
            routes_msg(err, "%s: %s[%zu]: must be a non-empty string", where, key, i);
            return -1;
        }
        (*out)[(*n)++] = strdup(json_string_value(item));
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

static void
routes_parse_rule(struct routes_msgs *err, const char *file, size_t idx, json_t *obj,
                  const struct conf *conf, struct route_table *t)
{
    static const char *const keys[] = {"name", "description", "match", "strategy", "vendors",
                                       NULL};
    static const char *const mkeys[] = {"tenant", "to_prefix", "type", NULL};
    struct route_rule *r = &t->rules[t->nrules];
    char where[512];
    json_t *name = json_object_get(obj, "name"), *match, *strategy;
    size_t i, j;

    snprintf(where, sizeof(where), "%s: rules[%zu]", file, idx);
    if (!json_is_object(obj)) {
        routes_msg(err, "%s: must be an object", where);
        return;
    }
    if (!json_is_string(name) || json_string_length(name) == 0) {
        routes_msg(err, "%s: name: is required", where);
        return;
    }
    snprintf(where, sizeof(where), "%s: %s", file, json_string_value(name));
    for (i = 0; i < t->nrules; i++) {
        if (strcmp(t->rules[i].name, json_string_value(name)) == 0) {
            routes_msg(err, "%s: name: duplicate rule name", where);
        }
    }
    t->nrules++;
    r->name = strdup(json_string_value(name));
    routes_check_keys(err, where, obj, keys);
    strategy = json_object_get(obj, "strategy");
    if (strategy != NULL &&
        (!json_is_string(strategy) || strcmp(json_string_value(strategy), "priority") != 0)) {
        routes_msg(err, "%s: strategy: only \"priority\" is supported by this version", where);
    }
    match = json_object_get(obj, "match");
    if (match == NULL || !json_is_object(match)) {
        routes_msg(err, "%s: match: is required (an object; {} matches every call)", where);
    } else {
        char mwhere[600];
        snprintf(mwhere, sizeof(mwhere), "%s: match", where);
        routes_check_keys(err, mwhere, match, mkeys);
        routes_strings(err, where, match, "tenant", &r->tenants, &r->ntenants);
        routes_strings(err, where, match, "to_prefix", &r->to_prefix, &r->nprefix);
        routes_strings(err, where, match, "type", &r->types, &r->ntypes);
        for (i = 0; i < r->ntenants; i++) {
            if (conf_tenant_find(conf, r->tenants[i]) == NULL) {
                routes_msg(err, "%s: match.tenant: unknown tenant \"%s\"", where, r->tenants[i]);
            }
        }
        for (i = 0; i < r->nprefix; i++) {
            const char *p = r->to_prefix[i];
            int ok = p[0] == '+' && strlen(p) >= 2 && strlen(p) <= 16;
            for (j = 1; ok && p[j] != '\0'; j++) {
                ok = isdigit((unsigned char)p[j]);
            }
            if (!ok) {
                routes_msg(err, "%s: match.to_prefix: \"%s\" is not \"+\" and 1 to 15 digits",
                           where, p);
            }
        }
        for (i = 0; i < r->ntypes; i++) {
            if (strcmp(r->types[i], "outbound") != 0 && strcmp(r->types[i], "inbound") != 0 &&
                strcmp(r->types[i], "scheduled") != 0) {
                routes_msg(err, "%s: match.type: \"%s\" is not outbound, inbound or scheduled",
                           where, r->types[i]);
            }
        }
    }
    {
        char **names = NULL;
        size_t nnames = 0;
        if (routes_strings(err, where, obj, "vendors", &names, &nnames) == 0 && nnames == 0) {
            routes_msg(err, "%s: vendors: is required", where);
        }
        r->vendors = nnames > 0 ? calloc(nnames, sizeof(*r->vendors)) : NULL;
        for (i = 0; i < nnames; i++) {
            if (conf_vendor_find(conf, names[i]) == NULL) {
                routes_msg(err, "%s: vendors: \"%s\" is not a configured vendor", where,
                           names[i]);
            }
            if (r->vendors != NULL) {
                r->vendors[r->nvendors].name = names[i];
                r->vendors[r->nvendors++].weight = 1;
                names[i] = NULL;
            }
        }
        routes_free_list(names, nnames);
    }
    {
        const char *base = strrchr(file, '/');
        r->file = strdup(base != NULL ? base + 1 : file);
    }
}

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
        list[n++] = strdup(de->d_name);
    }
    closedir(d);
    if (n > 0) {
        qsort(list, n, sizeof(char *), routes_name_cmp);
    }
    *names = list;
    return (int)n;
}

struct route_table *
routes_load_dir(const char *dir, const struct conf *conf, char **errors, char **warnings)
{
    struct routes_msgs err = {0}, warn = {0};
    struct route_table *t = calloc(1, sizeof(*t));
    char **names = NULL, path[1024], hex[65];
    char *all = NULL;
    size_t alllen = 0, i, j;
    int n;
    int catch_all = 0;

    *errors = NULL;
    if (warnings != NULL) {
        *warnings = NULL;
    }
    if (t == NULL) {
        return NULL;
    }
    t->refs = 1;
    n = routes_list(dir, &names);
    if (n < 0) {
        routes_msg(&err, "%s: cannot read the routes directory", dir);
    } else if (n == 0) {
        routes_msg(&err, "%s: no *.json rule files", dir);
    }
    for (i = 0; n > 0 && i < (size_t)n; i++) {
        json_error_t jerr;
        json_t *root, *rules, *rule;
        char *text, *grown;
        size_t tl;

        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (root == NULL) {
            routes_msg(&err, "%s: line %d, column %d: %s", path, jerr.line, jerr.column,
                       jerr.text);
            continue;
        }
        text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
        tl = text != NULL ? strlen(text) : 0;
        grown = realloc(all, alllen + strlen(names[i]) + tl + 2);
        if (grown != NULL) {
            all = grown;
            alllen += (size_t)sprintf(all + alllen, "%s\n%s", names[i], text ? text : "");
        }
        free(text);
        rules = json_object_get(root, "rules");
        if (!json_is_object(root) || !json_is_array(rules) || json_object_size(root) != 1) {
            routes_msg(&err, "%s: (file): must be an object with one key, \"rules\" (an array)",
                       path);
            json_decref(root);
            continue;
        }
        if (json_array_size(rules) == 0) {
            json_decref(root);
            continue;
        }
        grown = realloc(t->rules, (t->nrules + json_array_size(rules)) * sizeof(*t->rules));
        if (grown == NULL) {
            json_decref(root);
            continue;
        }
        t->rules = (struct route_rule *)grown;
        memset(t->rules + t->nrules, 0, json_array_size(rules) * sizeof(*t->rules));
        json_array_foreach(rules, j, rule) {
            routes_parse_rule(&err, path, j, rule, conf, t);
        }
        json_decref(root);
    }
    for (i = 0; i < t->nrules; i++) {
        if (t->rules[i].ntenants == 0 && t->rules[i].nprefix == 0 && t->rules[i].ntypes == 0) {
            catch_all = 1;
            if (i + 1 < t->nrules) {
                routes_msg(&warn, "rule %s matches every call: the %zu rule(s) after it never "
                                  "match", t->rules[i].name, t->nrules - i - 1);
            }
            break;
        }
    }
    if (n > 0 && t->nrules == 0 && err.count == 0) {
        routes_msg(&err, "%s: the table has no rules: every call would get 503 no-route", dir);
    } else if (!catch_all && t->nrules > 0) {
        routes_msg(&warn, "no catch-all rule (match {}): calls that match no rule get 503 "
                          "no-route");
    }
    crypto_sha256_hex(all != NULL ? all : "", alllen, hex);
    memcpy(t->version, hex, 16);
    t->version[16] = '\0';
    free(all);
    for (i = 0; n > 0 && i < (size_t)n; i++) {
        free(names[i]);
    }
    free(names);
    if (warnings != NULL) {
        *warnings = warn.text;
    } else {
        free(warn.text);
    }
    if (err.count > 0) {
        routes_free(t);
        *errors = err.text;
        return NULL;
    }
    free(err.text);
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

static int
routes_has(char **list, size_t n, const char *s)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strcmp(list[i], s) == 0) {
            return 1;
        }
    }
    return 0;
}

const struct route_rule *
routes_match(const struct route_table *t, const struct route_call *c, json_t *why)
{
    size_t i, j;

    for (i = 0; i < t->nrules; i++) {
        const struct route_rule *r = &t->rules[i];
        const char *reason = NULL;
        int prefix_ok = r->nprefix == 0;
        if (r->ntenants > 0 && !routes_has(r->tenants, r->ntenants, c->tenant)) {
            reason = "tenant";
        } else if (r->ntypes > 0 && !routes_has(r->types, r->ntypes, c->type)) {
            reason = "type";
        } else {
            for (j = 0; !prefix_ok && j < r->nprefix; j++) {
                prefix_ok = strncmp(c->to, r->to_prefix[j], strlen(r->to_prefix[j])) == 0;
            }
            if (!prefix_ok) {
                reason = "to_prefix";
            }
        }
        if (reason == NULL) {
            return r;
        }
        if (why != NULL) {
            json_array_append_new(why, json_pack("{s:s, s:s}", "rule", r->name, "reason", reason));
        }
    }
    return NULL;
}

size_t
routes_order(const struct route_rule *rule, const char *call_id, size_t *order, size_t max)
{
    size_t i;

    (void)call_id;
    for (i = 0; i < rule->nvendors && i < max; i++) {
        order[i] = i;
    }
    return i;
}

json_t *
routes_json(const struct route_table *t)
{
    json_t *rules = json_array();
    size_t i, j;

    for (i = 0; i < t->nrules; i++) {
        json_t *v = json_array();
        for (j = 0; j < t->rules[i].nvendors; j++) {
            json_array_append_new(v, json_string(t->rules[i].vendors[j].name));
        }
        json_array_append_new(rules, json_pack("{s:s, s:s, s:s, s:o}", "name", t->rules[i].name,
                                               "file", t->rules[i].file, "strategy",
                                               route_strategy_text[t->rules[i].strategy],
                                               "vendors", v));
    }
    return json_pack("{s:s, s:o}", "version", t->version, "rules", rules);
}
