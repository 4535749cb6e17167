/*
 * admin.c: see admin.h. Authentication is front.c's (the admin token);
 * these handlers only read or swap the routing table.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "admin.h"
#include "app.h"
#include "front.h"
#include "routes.h"

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
