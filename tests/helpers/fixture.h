/*
 * fixture.h: vendor fixtures for the adapter unit tests (files under
 * tests/fixtures/<vendor>/) and JSON comparison with readable failures.
 */
#ifndef CG_TEST_FIXTURE_H
#define CG_TEST_FIXTURE_H

#include <stddef.h>

#include <jansson.h>

/* The whole of tests/fixtures/<vendor>/<name>, NUL-terminated (caller frees). */
char *fixture_read(const char *vendor, const char *name, size_t *len);

/* Parse JSON written in a test (any value); asserts that it parses. */
json_t *fixture_json(const char *text);

/* Assert got equals want, printing both (sorted keys) when they differ. */
void fixture_assert_json_eq(json_t *got, json_t *want);

#endif
