/*
 * util.c: clocks, time formats and string helpers. Time zone conversion uses
 * the C library's tz database through a short-lived TZ switch; callgate is
 * single-threaded, so that is safe here.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <event2/buffer.h>

#include "util.h"

int64_t
util_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
util_mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
util_rfc3339(int64_t ms, char *out, size_t outlen)
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&sec, &tm);
    if (strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0 && outlen > 0) {
        out[0] = '\0';
    }
}

/* Days since 1970-01-01 of a proleptic Gregorian civil date. */
static int64_t
util_days_from_civil(int64_t y, int m, int d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (unsigned)((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1);
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int
util_month_days(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 && leap ? 29 : days[m - 1];
}

static int
util_digits(const char *s, int n, int *out)
{
    int i, v = 0;

    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Seconds east of UTC that zone has at the local wall time given as epoch-like seconds. */
static int
util_zone_offset(const char *zone, int64_t local_sec, long *offset)
{
    char *saved = NULL;
    const char *old = getenv("TZ");
    struct tm tm;
    time_t t;
    int rc = 0;

    if (old != NULL) {
        saved = strdup(old);
    }
    setenv("TZ", zone, 1);
    tzset();
    t = (time_t)local_sec;
    gmtime_r(&t, &tm);
    tm.tm_isdst = -1;
    t = mktime(&tm);
    if (t == (time_t)-1) {
        rc = -1;
    } else {
        *offset = (long)(local_sec - (int64_t)t);
    }
    if (saved != NULL) {
        setenv("TZ", saved, 1);
        free(saved);
    } else {
        unsetenv("TZ");
    }
    tzset();
    return rc;
}

int
util_zone_valid(const char *zone)
{
    char path[512];
    struct stat st;

    if (zone == NULL || zone[0] == '\0' || strstr(zone, "..") != NULL || zone[0] == '/') {
        return 0;
    }
    if (strcmp(zone, "UTC") == 0) {
        return 1;
    }
    snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", zone);
    /* A directory ("Asia") is not a zone: TZ would silently mean UTC. */
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, R_OK) == 0;
}

int
util_parse_time(const char *s, const char *default_zone, int64_t *ms)
{
    int y, mo, d, h, mi, sec, oh, om, frac_ms = 0, scale = 100;
    int64_t days, total;
    const char *p;
    long offset = 0;

    if (s == NULL || strlen(s) < 19) {
        return -1;
    }
    if (util_digits(s, 4, &y) || s[4] != '-' || util_digits(s + 5, 2, &mo) || s[7] != '-' ||
        util_digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        util_digits(s + 11, 2, &h) || s[13] != ':' || util_digits(s + 14, 2, &mi) ||
        s[16] != ':' || util_digits(s + 17, 2, &sec)) {
        return -1;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > util_month_days(y, mo) || h > 23 || mi > 59 ||
        sec > 60) {
        return -1;
    }
    p = s + 19;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9') {
            return -1;
        }
        while (*p >= '0' && *p <= '9') {
            frac_ms += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    days = util_days_from_civil(y, mo, d);
    total = days * 86400 + h * 3600 + mi * 60 + (sec > 59 ? 59 : sec);
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        if (util_digits(p + 1, 2, &oh) || p[3] != ':' || util_digits(p + 4, 2, &om) || oh > 23 ||
            om > 59) {
            return -1;
        }
        total -= sign * (oh * 3600 + om * 60);
        p += 6;
    } else if (*p == '\0') {
        if (default_zone != NULL && strcmp(default_zone, "UTC") != 0) {
            if (!util_zone_valid(default_zone) || util_zone_offset(default_zone, total, &offset)) {
                return -1;
            }
            total -= offset;
        }
    } else {
        return -1;
    }
    if (*p != '\0') {
        return -1;
    }
    *ms = total * 1000 + frac_ms;
    return 0;
}

size_t
util_strlcpy(char *dst, const char *src, size_t size)
{
    size_t n = strlen(src);

    if (size > 0) {
        size_t c = n < size - 1 ? n : size - 1;
        memcpy(dst, src, c);
        dst[c] = '\0';
    }
    return n;
}

char *
util_evbuffer_dup(struct evbuffer *buf, size_t *len)
{
    size_t n = buf != NULL ? evbuffer_get_length(buf) : 0;
    char *s = malloc(n + 1);

    if (s == NULL) {
        return NULL;
    }
    if (n > 0 && evbuffer_copyout(buf, s, n) != (ev_ssize_t)n) {
        free(s);
        return NULL;
    }
    s[n] = '\0';
    if (len != NULL) {
        *len = n;
    }
    return s;
}

int
util_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (s == NULL || *s == '\0') {
        return -1;
    }
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

size_t
util_utoa(unsigned long long v, char out[20])
{
    char digits[20];
    size_t i = sizeof(digits), n;

    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    n = sizeof(digits) - i;
    memcpy(out, digits + i, n);
    return n;
}
