/*
 * fixture.c: see fixture.h. CG_SRCDIR (set by the Makefile) locates the
 * fixtures, so the tests run from any build directory.
 */
#include <stdio.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "helpers/fixture.h"

#ifndef CG_SRCDIR
#define CG_SRCDIR "."
#endif

char *
fixture_read(const char *vendor, const char *name, size_t *len)
{
    char path[512];
    FILE *f;
    long n;
    char *buf;

    snprintf(path, sizeof(path), "%s/tests/fixtures/%s/%s", CG_SRCDIR, vendor, name);
    f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    cr_assert_gt(n, 0);
    rewind(f);
    buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

json_t *
fixture_json(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);

    cr_assert_not_null(j, "bad JSON in the test: %s (%s)", jerr.text, text);
    return j;
}

void
fixture_assert_json_eq(json_t *got, json_t *want)
{
    char *g = json_dumps(got, JSON_SORT_KEYS | JSON_ENCODE_ANY);
    char *w = json_dumps(want, JSON_SORT_KEYS | JSON_ENCODE_ANY);
    int eq = json_equal(got, want);

    cr_assert(eq, "JSON differs\n got: %s\nwant: %s", g, w);
    free(g);
    free(w);
}
