/*
 * admin.c: see admin.h. Authentication is front.c's (the admin token);
 * these handlers only read or swap the routing table.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "admin.h"
#include "app.h"
#include "breaker.h"
#include "conf.h"
#include "front.h"
#include "routes.h"
#include "util.h"
#include "vendor.h"
#include "vhealth.h"

/* "a\nb\n" -> ["a", "b"] */
static json_t *
admin_lines(const char *text)
{
    json_t *out = json_array();
    const char *p = text, *nl;

    while (p != NULL && *p != '\0') {
        nl = strchr(p, '\n');
        json_array_append_new(out, nl != NULL ? json_stringn(p, (size_t)(nl - p)) : json_string(p));
        p = nl != NULL ? nl + 1 : NULL;
    }
    return out;
}

void
admin_routes_get(struct front_req *r)
{
    front_reply_json(r, 200, routes_json(r->app->routes), NULL);
}

void
admin_routes_reload(struct front_req *r)
{
    char *errors = NULL, *warnings = NULL;
    const char *old = r->app->routes->version;
    json_t *body;

    if (app_reload_routes(r->app, &errors, &warnings) != 0) {
        body = json_pack("{s:s, s:s, s:o}", "status", "refused", "version", old, "errors",
                         admin_lines(errors));
        front_reply_json(r, 422, body, NULL);
    } else {
        body = json_pack("{s:s, s:s, s:i, s:o}", "status", "reloaded", "version",
                         r->app->routes->version, "rules", (int)r->app->routes->nrules,
                         "warnings", admin_lines(warnings));
        front_reply_json(r, 200, body, NULL);
    }
    free(errors);
    free(warnings);
}

/* Capability names, in vendor.h's bit order. */
static const char *const admin_caps[] = {"outbound", "inbound",   "scheduled", "participants",
                                         "recording", "flags",    "history",   "status",
                                         "webhooks"};

void
admin_vendors(struct front_req *r)
{
    const struct conf *c = r->conf;
    int64_t now = util_now_ms();
    json_t *circuits = breaker_json(r->app->breaker, now);
    json_t *health = vhealth_json(r->app->vhealth);
    json_t *list = json_array();
    size_t i, k;

    for (i = 0; i < c->nvendors; i++) {
        const char *name = c->vendors[i].name;
        const struct vendor_ops *ops = vendor_ops_find(name);
        json_t *caps = json_array(), *circuit = json_object_get(circuits, name), *o;

        for (k = 0; ops != NULL && k < sizeof(admin_caps) / sizeof(admin_caps[0]); k++) {
            if (ops->caps & (1u << k)) {
                json_array_append_new(caps, json_string(admin_caps[k]));
            }
        }
        o = json_pack("{s:s, s:s, s:o}", "name", name, "base_url", c->vendors[i].base_url,
                      "capabilities", caps);
        json_object_set_new(o, "circuit",
                            circuit != NULL ? json_incref(circuit)
                                            : json_pack("{s:s, s:i}", "circuit", "closed",
                                                        "recent_attempts", 0));
        json_object_set_new(o, "health", json_object_get(health, name) != NULL
                                             ? json_incref(json_object_get(health, name))
                                             : json_null());
        json_array_append_new(list, o);
    }
    json_decref(circuits);
    json_decref(health);
    front_reply_json(r, 200, json_pack("{s:o}", "vendors", list), NULL);
}
