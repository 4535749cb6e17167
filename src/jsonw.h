/*
 * jsonw.h: writing JSON text straight into a growing buffer, for the hot
 * answers whose shape is fixed (the placement answer): no jansson tree to
 * build, dump and free. Strings are escaped exactly as jansson's
 * json_dumps() escapes them without JSON_ENSURE_ASCII or JSON_ESCAPE_SLASH,
 * so text written here and text dumped by jansson are the same bytes.
 * Input strings must be valid UTF-8 (jansson strings always are).
 */
#ifndef CG_JSONW_H
#define CG_JSONW_H

#include <stddef.h>

struct json_t;

struct jsonw {
    char *buf;  /* NUL-terminated while not failed */
    size_t len;
    size_t cap;
    int failed; /* out of memory: every later write is ignored */
};

/* An empty writer with room for about hint bytes. Returns 0 or -1. */
int jsonw_init(struct jsonw *w, size_t hint);

/* Bytes as they are (punctuation, or JSON text produced elsewhere). */
void jsonw_raw(struct jsonw *w, const char *s, size_t n);

/* A string literal as it is. */
#define jsonw_lit(w, lit) jsonw_raw((w), "" lit, sizeof(lit) - 1)

/* A string as a quoted JSON string, or null when s is NULL. */
void jsonw_str(struct jsonw *w, const char *s);

/* len bytes as a quoted JSON string (a NUL among them becomes \u0000). */
void jsonw_strn(struct jsonw *w, const char *s, size_t len);

/*
 * A jansson value as json_dumps() writes it with JSON_COMPACT and
 * JSON_ENCODE_ANY (keys in insertion order). Reals are handed to jansson
 * itself, so their text is jansson's too.
 */
void jsonw_value(struct jsonw *w, const struct json_t *v);

/* A whole value as compact text (caller frees), or NULL: json_dumps() without
 * its per-container bookkeeping. */
char *jsonw_dumps(const struct json_t *v);

/* The buffer (caller frees), or NULL when a write failed (the buffer is then
 * freed); w is emptied either way. Every writer ends here. */
char *jsonw_take(struct jsonw *w);

#endif
