/*
 * problem.h: RFC 9457 problem documents with callgate's stable slugs.
 * The slug list is part of the contract (spec/API.md, README "Errors").
 */
#ifndef CG_PROBLEM_H
#define CG_PROBLEM_H

struct json_t;

/* Title for a slug ("validation" -> "Request is not valid"); generic when unknown. */
const char *problem_title(const char *slug);

/*
 * A new problem object: {"type": "/problems/<slug>", "title", "status",
 * "detail", "request_id"} plus "errors" when errors is not NULL (stolen).
 */
struct json_t *problem_new(int status, const char *slug, const char *detail,
                           const char *request_id, struct json_t *errors);

/* Append {"field": field, "message": message} to an errors array. */
void problem_add_error(struct json_t *errors, const char *field, const char *message);

#endif
