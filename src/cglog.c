/*
 * cglog.c: JSON-lines logging. Lines are assembled in full and written with
 * one fwrite so that concurrent writers (several replicas on one journal)
 * never interleave inside a line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#include "cglog.h"

static enum cglog_level cglog_threshold = CGLOG_INFO;
static int cglog_worker = -1;   /* --workers slot, or -1 */
static long cglog_pid;

static const char *const cglog_level_text[] = {
    [CGLOG_ERROR] = "error",
    [CGLOG_WARN] = "warn",
    [CGLOG_INFO] = "info",
    [CGLOG_DEBUG] = "debug",
};

void
cglog_set_level(enum cglog_level level)
{
    cglog_threshold = level;
}

void
cglog_set_worker(int index)
{
    cglog_worker = index;
    cglog_pid = (long)getpid();
}

int
cglog_parse_level(const char *name, enum cglog_level *out)
{
    size_t i;

    for (i = 0; i < sizeof(cglog_level_text) / sizeof(cglog_level_text[0]); i++) {
        if (name != NULL && strcmp(name, cglog_level_text[i]) == 0) {
            *out = (enum cglog_level)i;
            return 0;
        }
    }
    return -1;
}

static void
cglog_timestamp(char *out, size_t outlen)
{
    struct timeval tv;
    struct tm tm;
    char base[32];

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%.20s.%03dZ", base, (int)(tv.tv_usec / 1000) % 1000);
}

void
cglog_write(enum cglog_level level, const char *event, const char *fields, ...)
{
    json_t *line = NULL, *extra = NULL;
    json_error_t err;
    char ts[40];
    char *text;
    va_list ap;

    if (level > cglog_threshold) {
        return;
    }
    if (fields != NULL) {
        va_start(ap, fields);
        extra = json_vpack_ex(&err, 0, fields, ap);
        va_end(ap);
    }
    cglog_timestamp(ts, sizeof(ts));
    line = json_pack("{s:s, s:s, s:s}", "ts", ts, "level", cglog_level_text[level], "event",
                     event);
    if (line == NULL) {
        json_decref(extra);
        return;
    }
    if (cglog_worker >= 0) {
        json_object_set_new(line, "worker", json_integer(cglog_worker));
        json_object_set_new(line, "pid", json_integer(cglog_pid));
    }
    if (fields != NULL && extra == NULL) {
        json_object_set_new(line, "log_error", json_string(err.text));
    } else if (extra != NULL) {
        const char *key;
        json_t *val;
        /* "s:s?" packs a missing value as null; a log line just leaves it out. */
        json_object_foreach(extra, key, val) {
            if (!json_is_null(val)) {
                json_object_set(line, key, val);
            }
        }
        json_decref(extra);
    }
    text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(line);
    if (text != NULL) {
        size_t n = strlen(text);
        text[n] = '\n';
        fwrite(text, 1, n + 1, stderr);
        fflush(stderr);
        text[n] = '\0';
        free(text);
    }
}
