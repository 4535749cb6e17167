/*
 * util.h: small helpers shared by several modules: clocks, RFC 3339 time,
 * bounded string copies, reading an evbuffer, strict number parsing.
 */
#ifndef CG_UTIL_H
#define CG_UTIL_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* Wall clock, milliseconds since the Unix epoch. */
int64_t util_now_ms(void);

/* Monotonic clock in microseconds (for latencies and deadlines). */
int64_t util_mono_us(void);

/* Format ms since epoch as RFC 3339 UTC with seconds precision ("...T10:00:00Z").
 * out needs 21 bytes; UTIL_TIME_LEN is enough. */
#define UTIL_TIME_LEN 32
void util_rfc3339(int64_t ms, char *out, size_t outlen);

/*
 * Parse RFC 3339 / ISO 8601 date-time: "YYYY-MM-DDTHH:MM:SS" with optional
 * fraction and a zone "Z" or "+hh:mm" / "-hh:mm" (a space instead of the T is
 * accepted). Without a zone the time is read in the IANA zone default_zone
 * (NULL means UTC), as vendor times without a zone must be.
 * Returns 0 and *ms, or -1.
 */
int util_parse_time(const char *s, const char *default_zone, int64_t *ms);

/* 1 when an IANA zone name is known to this machine's tz database. */
int util_zone_valid(const char *zone);

/* strlcpy: copy with truncation, always NUL-terminated. Returns strlen(src). */
size_t util_strlcpy(char *dst, const char *src, size_t size);

/* v in decimal into out (no NUL), without printf; returns the length (at most 20). */
size_t util_utoa(unsigned long long v, char out[20]);

/* Copy the whole evbuffer into a new NUL-terminated string (caller frees). */
char *util_evbuffer_dup(struct evbuffer *buf, size_t *len);

/* Parse a whole decimal integer within [min, max]. Returns 0 or -1. */
int util_parse_long(const char *s, long min, long max, long *out);

#endif
