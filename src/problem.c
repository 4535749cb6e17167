/*
 * problem.c: problem documents. Titles are fixed per slug so that clients can
 * show them; the detail says what exactly went wrong in this request.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "problem.h"

static const struct {
    const char *slug;
    const char *title;
} problem_titles[] = {
    {"validation", "Request is not valid"},
    {"unauthorized", "Missing or wrong API key"},
    {"not-found", "Not found"},
    {"method-not-allowed", "Method not allowed"},
    {"payload-too-large", "Request body is too large"},
    {"rate-limited", "Too many requests"},
    {"idempotency-conflict", "A request with this Idempotency-Key is still in progress"},
    {"idempotency-mismatch", "Idempotency-Key was used with a different request"},
    {"no-route", "No route for this call"},
    {"no-agent-available", "No agent available"},
    {"vendor-rejected", "The vendor rejected the call"},
    {"vendor-unavailable", "No vendor could take the call"},
    {"vendor-timeout", "The vendor did not answer in time"},
    {"vendor-error", "The vendor's answer could not be understood"},
    {"store-unavailable", "Call store unavailable"},
    {"unsupported-by-vendor", "The vendor does not support this"},
    {"timeout", "Request took too long"},
    {"shutting-down", "Gateway is shutting down"},
    {"overloaded", "Too many connections"},
    {"call-not-active", "The call is not live"},
    {"internal", "Internal error"},
};

const char *
problem_title(const char *slug)
{
    size_t i;

    for (i = 0; i < sizeof(problem_titles) / sizeof(problem_titles[0]); i++) {
        if (strcmp(problem_titles[i].slug, slug) == 0) {
            return problem_titles[i].title;
        }
    }
    return "Error";
}

json_t *
problem_new(int status, const char *slug, const char *detail, const char *request_id,
            json_t *errors)
{
    char type[96];
    json_t *p;

    snprintf(type, sizeof(type), "/problems/%s", slug);
    p = json_pack("{s:s, s:s, s:i}", "type", type, "title", problem_title(slug), "status",
                  status);
    if (p == NULL) {
        json_decref(errors);
        return NULL;
    }
    if (detail != NULL) {
        json_object_set_new(p, "detail", json_string(detail));
    }
    if (request_id != NULL) {
        json_object_set_new(p, "request_id", json_string(request_id));
    }
    if (errors != NULL) {
        json_object_set_new(p, "errors", errors);
    }
    return p;
}

void
problem_add_error(json_t *errors, const char *field, const char *message)
{
    json_array_append_new(errors, json_pack("{s:s, s:s}", "field", field, "message", message));
}
