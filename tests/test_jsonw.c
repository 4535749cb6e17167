/*
 * test_jsonw.c: the direct JSON writer (jsonw.c) must write the very bytes
 * jansson's json_dumps() writes (JSON_COMPACT | JSON_ENCODE_ANY): every
 * escape, nesting, numbers at their limits, reals, and growth of the buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "jsonw.h"

TestSuite(jsonw, .timeout = 10);

static void
assert_same_as_jansson(json_t *v)
{
    char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    char *got = jsonw_dumps(v);

    cr_assert_not_null(want);
    cr_assert_not_null(got);
    cr_assert_str_eq(got, want);
    free(want);
    free(got);
}

Test(jsonw, every_byte_escaped_as_jansson)
{
    char s[3] = {'a', 0, 'b'};
    int c;

    for (c = 0; c < 128; c++) {
        json_t *v;
        s[1] = (char)c;
        v = json_stringn(s, 3);
        cr_assert_not_null(v, "byte %d", c);
        assert_same_as_jansson(v);
        json_decref(v);
    }
}

Test(jsonw, utf8_passes_through)
{
    json_t *v = json_string("caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x93\x9e / \x7f");

    assert_same_as_jansson(v);
    json_decref(v);
}

Test(jsonw, nested_values_and_numbers)
{
    json_t *v = json_pack("{s:[i,I,I,I,f,f,f,f,b,b,n], s:{}, s:[], s:{s:{s:[{s:s}]}}, s:s}",
                          "nums", 0, (json_int_t)-1, (json_int_t)INT64_MAX, (json_int_t)INT64_MIN,
                          0.1, 1e300, -0.0, 1.5, 1, 0, "empty", "none", "deep", "a", "b", "c",
                          "\"q\"", "", "\\");

    cr_assert_not_null(v);
    assert_same_as_jansson(v);
    json_decref(v);
}

Test(jsonw, keys_keep_insertion_order)
{
    json_t *v = json_object();

    json_object_set_new(v, "zeta", json_integer(1));
    json_object_set_new(v, "alpha", json_integer(2));
    json_object_set_new(v, "k\"ey\n", json_integer(3));
    json_object_set_new(v, "mid", json_null());
    assert_same_as_jansson(v);
    json_decref(v);
}

Test(jsonw, scalars_at_top)
{
    json_t *vals[] = {json_integer(42), json_real(2.5), json_true(), json_false(), json_null(),
                      json_string("x")};
    size_t i;

    for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        assert_same_as_jansson(vals[i]);
        json_decref(vals[i]);
    }
}

Test(jsonw, deep_nesting_still_matches)
{
    json_t *v = json_string("leaf");
    int i;

    for (i = 0; i < 100; i++) {
        json_t *a = json_array();
        json_array_append_new(a, v);
        v = a;
    }
    assert_same_as_jansson(v);
    json_decref(v);
}

Test(jsonw, long_strings_grow_the_buffer)
{
    size_t n = 100000;
    char *s = malloc(n + 1);
    json_t *v;

    cr_assert_not_null(s);
    memset(s, 'x', n);
    s[n] = '\0';
    s[n / 2] = '"';
    v = json_pack("[s,s]", s, s);
    assert_same_as_jansson(v);
    json_decref(v);
    free(s);
}

Test(jsonw, writer_pieces)
{
    struct jsonw w;
    char *text;

    cr_assert_eq(jsonw_init(&w, 0), 0);
    jsonw_lit(&w, "{\"a\":");
    jsonw_str(&w, NULL);
    jsonw_lit(&w, ",\"b\":");
    jsonw_str(&w, "t\tab");
    jsonw_lit(&w, "}");
    text = jsonw_take(&w);
    cr_assert_str_eq(text, "{\"a\":null,\"b\":\"t\\tab\"}");
    free(text);
    cr_assert_null(w.buf);

    /* A NULL value marks the writer failed: nothing is handed out. */
    cr_assert_eq(jsonw_init(&w, 16), 0);
    jsonw_lit(&w, "[");
    jsonw_value(&w, NULL);
    jsonw_lit(&w, "]");
    cr_assert_null(jsonw_take(&w));
    cr_assert_null(w.buf);
    cr_assert_null(jsonw_dumps(NULL));
}
