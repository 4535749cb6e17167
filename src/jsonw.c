/*
 * jsonw.c: see jsonw.h.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jsonw.h"
#include "util.h"

/* Deeper than this is handed to jansson as a whole (its own limit applies). */
#define JSONW_MAX_DEPTH 64

int
jsonw_init(struct jsonw *w, size_t hint)
{
    w->cap = hint < 64 ? 64 : hint;
    w->len = 0;
    w->failed = 0;
    w->buf = malloc(w->cap);
    if (w->buf == NULL) {
        w->failed = 1;
        w->cap = 0;
        return -1;
    }
    w->buf[0] = '\0';
    return 0;
}

/* Room for n more bytes and the NUL. 0, or -1 (and failed) when out of memory. */
static int
jsonw_reserve(struct jsonw *w, size_t n)
{
    size_t cap;
    char *nb;

    if (w->failed) {
        return -1;
    }
    if (w->len + n + 1 <= w->cap) {
        return 0;
    }
    cap = w->cap * 2;
    while (cap < w->len + n + 1) {
        cap *= 2;
    }
    nb = realloc(w->buf, cap);
    if (nb == NULL) {
        w->failed = 1;
        return -1;
    }
    w->buf = nb;
    w->cap = cap;
    return 0;
}

void
jsonw_raw(struct jsonw *w, const char *s, size_t n)
{
    if (jsonw_reserve(w, n) != 0) {
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

void
jsonw_strn(struct jsonw *w, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    size_t run;

    jsonw_lit(w, "\"");
    for (; p < end; p += run) {
        char esc[6];
        const char *text = esc;
        size_t n = 2;

        /* The longest run that needs no escape goes in one copy. */
        for (run = 0; p + run < end && p[run] != '"' && p[run] != '\\' && p[run] >= 0x20; run++) {
        }
        if (run > 0) {
            jsonw_raw(w, (const char *)p, run);
            continue;
        }
        switch (*p) {
        case '"': text = "\\\""; break;
        case '\\': text = "\\\\"; break;
        case '\b': text = "\\b"; break;
        case '\f': text = "\\f"; break;
        case '\n': text = "\\n"; break;
        case '\r': text = "\\r"; break;
        case '\t': text = "\\t"; break;
        default: /* the other control characters, NUL included */
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 15];
            n = 6;
            break;
        }
        jsonw_raw(w, text, n);
        run = 1;
    }
    jsonw_lit(w, "\"");
}

void
jsonw_str(struct jsonw *w, const char *s)
{
    if (s == NULL) {
        jsonw_lit(w, "null");
        return;
    }
    jsonw_strn(w, s, strlen(s));
}

static void
jsonw_value_at(struct jsonw *w, const json_t *v, int depth)
{
    const char *key;
    json_t *m;
    size_t i, n = 0;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        if (depth >= JSONW_MAX_DEPTH) {
            break;
        }
        jsonw_lit(w, "{");
        json_object_foreach((json_t *)v, key, m) {
            if (n++ > 0) {
                jsonw_lit(w, ",");
            }
            jsonw_str(w, key);
            jsonw_lit(w, ":");
            jsonw_value_at(w, m, depth + 1);
        }
        jsonw_lit(w, "}");
        return;
    case JSON_ARRAY:
        if (depth >= JSONW_MAX_DEPTH) {
            break;
        }
        jsonw_lit(w, "[");
        for (i = 0; i < json_array_size(v); i++) {
            if (i > 0) {
                jsonw_lit(w, ",");
            }
            jsonw_value_at(w, json_array_get(v, i), depth + 1);
        }
        jsonw_lit(w, "]");
        return;
    case JSON_STRING:
        jsonw_strn(w, json_string_value(v), json_string_length(v));
        return;
    case JSON_INTEGER: {
        json_int_t x = json_integer_value(v);
        char digits[24];
        size_t len = 0;
        if (x < 0) {
            digits[len++] = '-';
        }
        /* The magnitude as unsigned: -INT64_MIN does not fit a json_int_t. */
        len += util_utoa(x < 0 ? 0u - (unsigned long long)x : (unsigned long long)x,
                         digits + len);
        jsonw_raw(w, digits, len);
        return;
    }
    case JSON_TRUE:
        jsonw_lit(w, "true");
        return;
    case JSON_FALSE:
        jsonw_lit(w, "false");
        return;
    case JSON_NULL:
        jsonw_lit(w, "null");
        return;
    default:
        break;
    }
    /* Reals (and what is nested too deep): jansson's own text. */
    {
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (text == NULL) {
            w->failed = 1;
            return;
        }
        jsonw_raw(w, text, strlen(text));
        free(text);
    }
}

void
jsonw_value(struct jsonw *w, const json_t *v)
{
    if (v == NULL) {
        w->failed = 1;
        return;
    }
    jsonw_value_at(w, v, 0);
}

char *
jsonw_dumps(const json_t *v)
{
    struct jsonw w;

    if (jsonw_init(&w, 256) != 0) {
        return NULL;
    }
    jsonw_value(&w, v);
    return jsonw_take(&w);
}

char *
jsonw_take(struct jsonw *w)
{
    char *out = w->failed ? NULL : w->buf;

    if (out == NULL) {
        free(w->buf);
    }
    w->buf = NULL;
    w->len = w->cap = 0;
    return out;
}
