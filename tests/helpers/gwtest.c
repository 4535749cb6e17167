/*
 * gwtest.c: see gwtest.h. Everything runs on 127.0.0.1 on free ports; the
 * configuration is generated per test into a temp directory; the routes are
 * the project's shipped ones (so they are exercised too).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>

#include <criterion/criterion.h>
#include <curl/curl.h>

#include "crypto.h"
#include "helpers/gwtest.h"

#ifndef CG_SRCDIR
#define CG_SRCDIR "."
#endif

void
gwtest_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static const char *
gwtest_env(const char *name, const char *def)
{
    const char *v = getenv(name);

    return v != NULL && v[0] != '\0' ? v : def;
}

static json_t *
gwtest_tenant(const char *id, const char *key, const char *country, const char *token,
              const char *callback)
{
    char hash[CRYPTO_SHA256_HEX_LEN + 1];

    crypto_sha256_hex(key, strlen(key), hash);
    return json_pack("{s:s, s:[s], s:s, s:s, s:s, s:[{s:s, s:s}]}", "id", id, "api_key_sha256",
                     hash, "default_country", country, "callback_url", callback,
                     "webhook_secret", GWTEST_SECRET, "vendors", "vendor", "clouddialer",
                     "webhook_token", token);
}

static int gwtest_wait_ready_at(const char *base, int timeout_ms);

/* Merge patch into dst: objects key by key, arrays element by element. */
static void
gwtest_merge(json_t *dst, json_t *patch)
{
    const char *k;
    json_t *v;
    size_t i;

    if (json_is_object(dst) && json_is_object(patch)) {
        json_object_foreach(patch, k, v) {
            json_t *d = json_object_get(dst, k);
            if ((json_is_object(d) && json_is_object(v)) ||
                (json_is_array(d) && json_is_array(v))) {
                gwtest_merge(d, v);
            } else {
                json_object_set(dst, k, v);
            }
        }
    } else if (json_is_array(dst) && json_is_array(patch)) {
        json_array_foreach(patch, i, v) {
            json_t *d = json_array_get(dst, i);
            if (d != NULL && ((json_is_object(d) && json_is_object(v)) ||
                              (json_is_array(d) && json_is_array(v)))) {
                gwtest_merge(d, v);
            } else if (d != NULL) {
                json_array_set(dst, i, v);
            } else {
                json_array_append(dst, v);
            }
        }
    }
}

void
gwtest_write_conf(struct gwtest *t)
{
    char vendor_url[64], cb_acme[96], cb_globex[96], listen[32], routes[512];
    const struct gwtest_opts *o = &t->opts;
    json_t *conf;

    snprintf(vendor_url, sizeof(vendor_url), "http://127.0.0.1:%d",
             o->vendor_port ? o->vendor_port : t->sim_port);
    snprintf(cb_acme, sizeof(cb_acme), "%s/_sink/acme", t->sim_base);
    snprintf(cb_globex, sizeof(cb_globex), "%s/_sink/globex", t->sim_base);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", t->gw_port);
    if (o->routes_dir != NULL) {
        snprintf(routes, sizeof(routes), "%s", o->routes_dir);
    } else {
        snprintf(routes, sizeof(routes), "%s/routes", CG_SRCDIR);
    }
    conf = json_pack(
        "{s:s, s:s, s:s,"
        " s:{s:s, s:i, s:i, s:i},"
        " s:{s:i, s:i, s:i, s:i},"
        " s:{s:b, s:[s], s:i},"
        " s:{s:{s:s, s:s, s:s, s:s, s:i, s:i}},"
        " s:[o, o]}",
        "listen", listen, "routes_dir", routes, "log_level", "debug",
        "redis", "unix", t->redis.unix_path, "command_timeout_ms",
        (int)o->redis_command_timeout_ms, "backoff_min_ms", 50, "backoff_max_ms", 500,
        "limits", "request_timeout_ms", (int)o->request_timeout_ms, "drain_timeout_ms",
        (int)o->drain_timeout_ms, "idle_timeout_ms", 10000, "max_webhook_body_bytes", 262144,
        "callbacks", "allow_http", 1, "allow_hosts", "127.0.0.1", "timeout_ms", 2000,
        "vendors", "clouddialer", "base_url", vendor_url, "api_key", "cd-test-key",
        "from_number", "+919800000000", "time_zone", "Asia/Kolkata", "connect_timeout_ms",
        (int)(o->vendor_timeout_ms < 1000 ? o->vendor_timeout_ms : 1000), "timeout_ms",
        (int)o->vendor_timeout_ms,
        "tenants", gwtest_tenant("acme", GWTEST_ACME_KEY, "IN", GWTEST_ACME_TOKEN, cb_acme),
        gwtest_tenant("globex", GWTEST_GLOBEX_KEY, "US", GWTEST_GLOBEX_TOKEN, cb_globex));
    cr_assert_not_null(conf, "cannot build the test configuration");
    {
        char hash[CRYPTO_SHA256_HEX_LEN + 1], alisten[32];
        json_t *admin;
        crypto_sha256_hex(GWTEST_ADMIN_TOKEN, strlen(GWTEST_ADMIN_TOKEN), hash);
        admin = json_pack("{s:s}", "token_sha256", hash);
        if (t->admin_port > 0) {
            snprintf(alisten, sizeof(alisten), "127.0.0.1:%d", t->admin_port);
            json_object_set_new(admin, "listen", json_string(alisten));
        }
        json_object_set_new(conf, "admin", admin);
    }
    if (o->metrics_admin_token) {
        json_object_set_new(conf, "metrics", json_pack("{s:b}", "require_admin_token", 1));
    }
    {
        /* Suites that inject vendor faults on purpose would trip the circuits
         * and change their own expectations: breakers stay out of the way
         * unless a test asks for them. */
        json_t *b = json_object();
        json_object_set_new(b, "consecutive_failures",
                            json_integer(o->breaker_consecutive > 0 ? o->breaker_consecutive
                                                                    : 1000));
        if (o->breaker_consecutive == 0) {
            json_object_set_new(b, "failure_ratio_pct", json_integer(0));
        }
        if (o->breaker_open_ms > 0) {
            json_object_set_new(b, "open_ms", json_integer(o->breaker_open_ms));
        }
        json_object_set_new(conf, "breaker", b);
    }
    if (!o->strict_agents) {
        /* Most suites name agents by their vendor identity, without a directory. */
        size_t k;
        for (k = 0; k < 2; k++) {
            json_object_set_new(json_array_get(json_object_get(conf, "tenants"), k),
                                "unknown_agents", json_string("pass_through"));
        }
    }
    json_object_set_new(json_object_get(json_object_get(conf, "vendors"), "clouddialer"),
                        "recording_timeout_ms", json_integer(3000));
    if (o->health_interval_ms > 0) {
        json_object_set_new(json_object_get(json_object_get(conf, "vendors"), "clouddialer"),
                            "health_interval_ms", json_integer(o->health_interval_ms));
    }
    /* acme also keeps call history at Getdesk (played by the simulator). */
    json_object_set_new(json_object_get(conf, "vendors"), "getdesk",
                        json_pack("{s:s, s:s, s:i, s:i}", "base_url", vendor_url, "time_zone",
                                  "Asia/Kathmandu", "connect_timeout_ms",
                                  (int)(o->vendor_timeout_ms < 1000 ? o->vendor_timeout_ms : 1000),
                                  "timeout_ms", (int)o->vendor_timeout_ms));
    json_array_append_new(
        json_object_get(json_array_get(json_object_get(conf, "tenants"), 0), "vendors"),
        json_pack("{s:s, s:s}", "vendor", "getdesk", "api_key", GWTEST_GETDESK_TOKEN));
    /* ... and may place calls through Callerdesk (also the simulator). */
    json_object_set_new(json_object_get(conf, "vendors"), "callerdesk",
                        json_pack("{s:s, s:s, s:s, s:i, s:i}", "base_url", vendor_url,
                                  "api_key", GWTEST_CALLERDESK_AUTHCODE, "time_zone",
                                  "Asia/Kolkata", "connect_timeout_ms",
                                  (int)(o->vendor_timeout_ms < 1000 ? o->vendor_timeout_ms : 1000),
                                  "timeout_ms", (int)o->vendor_timeout_ms));
    json_array_append_new(
        json_object_get(json_array_get(json_object_get(conf, "tenants"), 0), "vendors"),
        json_pack("{s:s, s:s, s:{s:s}}", "vendor", "callerdesk", "webhook_token",
                  GWTEST_ACME_CD_TOKEN, "options", "deskphone", "08062987377"));
    /* ... and, for inbound and scheduled calls and customer flags, CCAI Platform. */
    json_object_set_new(json_object_get(conf, "vendors"), "ccai",
                        json_pack("{s:s, s:s, s:s, s:s, s:i, s:i}", "base_url", vendor_url,
                                  "api_key", GWTEST_CCAI_CREDENTIAL, "from_number",
                                  "+13392195276", "time_zone", "UTC", "connect_timeout_ms",
                                  (int)(o->vendor_timeout_ms < 1000 ? o->vendor_timeout_ms : 1000),
                                  "timeout_ms", (int)o->vendor_timeout_ms));
    json_array_append_new(
        json_object_get(json_array_get(json_object_get(conf, "tenants"), 0), "vendors"),
        json_pack("{s:s, s:s, s:s}", "vendor", "ccai", "webhook_token", GWTEST_ACME_CCAI_TOKEN,
                  "webhook_basic_auth", GWTEST_CCAI_HOOK_AUTH));
    if (o->header_timeout_ms > 0) {
        json_object_set_new(json_object_get(conf, "limits"), "header_timeout_ms",
                            json_integer(o->header_timeout_ms));
    }
    if (o->max_connections > 0) {
        json_object_set_new(json_object_get(conf, "limits"), "max_connections",
                            json_integer(o->max_connections));
    }
    /* Failover tests place many calls in a row: the retry budget stays out of
     * their way unless a test sets one. */
    json_object_set_new(conf, "retry_budget",
                        json_pack("{s:i, s:i}", "ratio_pct", 1000, "min_per_s", 1000));
    if (o->conf_patch != NULL) {
        json_error_t err;
        json_t *patch = json_loads(o->conf_patch, 0, &err);
        cr_assert_not_null(patch, "conf_patch is not JSON: %s", err.text);
        gwtest_merge(conf, patch);
        json_decref(patch);
    }
    cr_assert_eq(json_dump_file(conf, t->conf_path, JSON_INDENT(2)), 0);
    json_decref(conf);
}

void
gwtest_replica_start(struct gwtest *t, struct proc *gw, char *base, size_t baselen)
{
    char path[400], log[400], listen[32];
    const char *argv[] = {gwtest_env("CG_CALLGATE", CG_BUILDDIR "/src/callgate"), "-c", path,
                          NULL};
    json_error_t err;
    json_t *conf = json_load_file(t->conf_path, 0, &err);
    int port = proc_free_port();

    cr_assert_not_null(conf, "cannot read %s: %s", t->conf_path, err.text);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    json_object_set_new(conf, "listen", json_string(listen));
    json_object_del(conf, "admin");
    snprintf(path, sizeof(path), "%s/replica-%d.json", t->dir, port);
    snprintf(log, sizeof(log), "%s/replica-%d.log", t->dir, port);
    cr_assert_eq(json_dump_file(conf, path, JSON_INDENT(2)), 0);
    json_decref(conf);
    cr_assert_eq(proc_start(gw, argv, NULL, log), 0, "cannot start the second callgate");
    cr_assert_eq(proc_wait_port(port, 10000), 0, "the second callgate did not listen");
    snprintf(base, baselen, "http://127.0.0.1:%d", port);
    if (!gwtest_wait_ready_at(base, 10000)) {
        proc_dump_log(log, 4000);
        cr_assert_fail("the second callgate never became ready");
    }
}

void
gwtest_gateway_start(struct gwtest *t)
{
    char workers[16];
    const char *argv[] = {gwtest_env("CG_CALLGATE", CG_BUILDDIR "/src/callgate"), "-c",
                          t->conf_path, t->opts.workers > 0 ? "--workers" : NULL, workers,
                          NULL};

    snprintf(workers, sizeof(workers), "%d", t->opts.workers);

    cr_assert_eq(proc_start(&t->gw, argv, NULL, t->gw_log), 0, "cannot start callgate");
    if (proc_wait_port(t->gw_port, 10000) != 0) {
        proc_dump_log(t->gw_log, 4000);
        cr_assert_fail("callgate did not start listening");
    }
}

int
gwtest_gateway_stop(struct gwtest *t, int sig, int timeout_ms)
{
    int status = proc_stop(&t->gw, sig, timeout_ms);

    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        proc_dump_log(t->gw_log, 8000);
    }
    return status;
}

/* Poll base's GET /readyz until it answers 200 (1) within timeout_ms, else 0. */
static int
gwtest_wait_ready_at(const char *base, int timeout_ms)
{
    char url[128];
    struct http_resp r;
    int waited;

    snprintf(url, sizeof(url), "%s/readyz", base);
    for (waited = 0; waited <= timeout_ms; waited += 50) {
        if (http_do("GET", url, NULL, NULL, 0, 2000, &r) == 0) {
            long st = r.status;
            http_resp_free(&r);
            if (st == 200) {
                return 1;
            }
        }
        gwtest_sleep_ms(50);
    }
    return 0;
}

int
gwtest_wait_ready(struct gwtest *t, int timeout_ms)
{
    return gwtest_wait_ready_at(t->base, timeout_ms);
}

void
gwtest_start(struct gwtest *t, const struct gwtest_opts *opts)
{
    char push[200], cdpush[200], ccaipush[200], listen[32], simlog[320];
    char call_ms[16];
    const char *simargv[20];
    int n = 0;

    memset(t, 0, sizeof(*t));
    if (opts != NULL) {
        t->opts = *opts;
    }
    if (t->opts.vendor_timeout_ms == 0) {
        t->opts.vendor_timeout_ms = 2000;
    }
    if (t->opts.request_timeout_ms == 0) {
        t->opts.request_timeout_ms = t->opts.vendor_timeout_ms + 3000;
    }
    if (t->opts.drain_timeout_ms == 0) {
        t->opts.drain_timeout_ms = 5000;
    }
    if (t->opts.redis_command_timeout_ms == 0) {
        t->opts.redis_command_timeout_ms = 500;
    }
    if (t->opts.call_ms == 0) {
        t->opts.call_ms = 300;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    cr_assert_eq(proc_tmpdir(t->dir, sizeof(t->dir)), 0);
    if (redis_fixture_start(&t->redis) != 0) {
        cr_assert_fail("redis-server could not be started (is it installed?)");
    }
    t->sim_port = proc_free_port();
    t->gw_port = proc_free_port();
    while (t->gw_port == t->sim_port) {
        t->gw_port = proc_free_port();
    }
    if (t->opts.admin_listener) {
        do {
            t->admin_port = proc_free_port();
        } while (t->admin_port == t->gw_port || t->admin_port == t->sim_port);
        snprintf(t->admin_base, sizeof(t->admin_base), "http://127.0.0.1:%d", t->admin_port);
    } else {
        snprintf(t->admin_base, sizeof(t->admin_base), "http://127.0.0.1:%d", t->gw_port);
    }
    snprintf(t->base, sizeof(t->base), "http://127.0.0.1:%d", t->gw_port);
    snprintf(t->sim_base, sizeof(t->sim_base), "http://127.0.0.1:%d", t->sim_port);
    snprintf(t->conf_path, sizeof(t->conf_path), "%s/callgate.json", t->dir);
    snprintf(t->gw_log, sizeof(t->gw_log), "%s/callgate.log", t->dir);
    snprintf(simlog, sizeof(simlog), "%s/vendorsim.log", t->dir);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", t->sim_port);
    snprintf(push, sizeof(push), "%s/v1/webhooks/clouddialer/%s", t->base, GWTEST_ACME_TOKEN);
    snprintf(cdpush, sizeof(cdpush), "%s/v1/webhooks/callerdesk/%s", t->base,
             GWTEST_ACME_CD_TOKEN);
    snprintf(ccaipush, sizeof(ccaipush), "%s/v1/webhooks/ccai/%s", t->base,
             GWTEST_ACME_CCAI_TOKEN);
    snprintf(call_ms, sizeof(call_ms), "%d", t->opts.call_ms);
    simargv[n++] = gwtest_env("CG_VENDORSIM", CG_BUILDDIR "/contrib/vendorsim/vendorsim");
    simargv[n++] = "--listen";
    simargv[n++] = listen;
    simargv[n++] = "--call-ms";
    simargv[n++] = call_ms;
    simargv[n++] = "--ring-ms";
    simargv[n++] = "50";
    if (!t->opts.no_push) {
        simargv[n++] = "--push-url";
        simargv[n++] = push;
        simargv[n++] = "--callerdesk-push-url";
        simargv[n++] = cdpush;
        simargv[n++] = "--ccai-push-url";
        simargv[n++] = ccaipush;
    }
    simargv[n++] = "--callerdesk-authcode";
    simargv[n++] = GWTEST_CALLERDESK_AUTHCODE;
    simargv[n++] = "--quiet";
    simargv[n] = NULL;
    cr_assert_eq(proc_start(&t->sim, simargv, NULL, simlog), 0, "cannot start vendorsim");
    cr_assert_eq(proc_wait_port(t->sim_port, 10000), 0, "vendorsim did not start");
    gwtest_write_conf(t);
    gwtest_gateway_start(t);
    if (!gwtest_wait_ready(t, 10000)) {
        proc_dump_log(t->gw_log, 4000);
        cr_assert_fail("callgate never became ready");
    }
}

void
gwtest_stop(struct gwtest *t)
{
    int status = 0;

    if (t->gw.pid > 0) {
        status = gwtest_gateway_stop(t, SIGTERM, 15000);
    }
    if (t->sim.pid > 0) {
        proc_stop(&t->sim, SIGTERM, 5000);
    }
    redis_fixture_stop(&t->redis);
    proc_rmdir(t->dir);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        /* criterion ignores assertions in .fini: abort so the suite fails. */
        fprintf(stderr, "callgate did not exit 0 on SIGTERM (status %d): a sanitizer report "
                        "or a crash? Its log is above.\n", status);
        abort();
    }
}

/* ---- HTTP client --------------------------------------------------------- */

struct http_buf {
    char *data;
    size_t len;
};

static size_t
http_collect(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct http_buf *b = arg;
    size_t n = size * nmemb;
    char *grown = realloc(b->data, b->len + n + 1);

    if (grown == NULL) {
        return 0;
    }
    b->data = grown;
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

int
http_do(const char *method, const char *url, const char *const *headers, const char *body,
        size_t body_len, long timeout_ms, struct http_resp *out)
{
    struct http_buf b = {0}, h = {0};
    struct curl_slist *list = NULL;
    CURL *c = curl_easy_init();
    CURLcode rc;
    size_t i;

    memset(out, 0, sizeof(*out));
    if (c == NULL) {
        return -1;
    }
    for (i = 0; headers != NULL && headers[i] != NULL; i++) {
        list = curl_slist_append(list, headers[i]);
    }
    list = curl_slist_append(list, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    }
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, http_collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 20000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        double secs = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
        curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &secs);
        out->ms = secs * 1000.0;
        out->body = b.data != NULL ? b.data : strdup("");
        out->len = b.len;
        out->headers = h.data != NULL ? h.data : strdup("");
        out->json = json_loads(out->body, 0, NULL);
    } else {
        free(b.data);
        free(h.data);
    }
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? 0 : -1;
}

void
http_resp_free(struct http_resp *r)
{
    free(r->body);
    free(r->headers);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

const char *
http_header(const struct http_resp *r, const char *name, char *buf, size_t buflen)
{
    const char *line = r->headers;
    size_t nlen = strlen(name);

    while (line != NULL && *line != '\0') {
        const char *end = strstr(line, "\r\n");
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        if (len > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            size_t vl;
            while (*v == ' ') {
                v++;
            }
            vl = len - (size_t)(v - line);
            if (vl >= buflen) {
                vl = buflen - 1;
            }
            memcpy(buf, v, vl);
            buf[vl] = '\0';
            return buf;
        }
        line = end != NULL ? end + 2 : NULL;
    }
    return NULL;
}

int
gw_post_call(struct gwtest *t, const char *key, const char *idem, const char *body,
             struct http_resp *out)
{
    return gw_post_call_at(t->base, key, idem, body, out);
}

int
gw_post_call_at(const char *base, const char *key, const char *idem, const char *body,
                struct http_resp *out)
{
    char url[128], auth[128], idh[512];
    const char *headers[4] = {"Content-Type: application/json", NULL, NULL, NULL};
    int n = 1;

    snprintf(url, sizeof(url), "%s/v1/calls", base);
    if (key != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
        headers[n++] = auth;
    }
    if (idem != NULL) {
        snprintf(idh, sizeof(idh), "Idempotency-Key: %s", idem);
        headers[n++] = idh;
    }
    return http_do("POST", url, headers, body, body != NULL ? strlen(body) : 0, 0, out);
}

int
gw_get(struct gwtest *t, const char *key, const char *path, struct http_resp *out)
{
    char url[512], auth[128];
    const char *headers[2] = {NULL, NULL};

    snprintf(url, sizeof(url), "%s%s", t->base, path);
    if (key != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
        headers[0] = auth;
    }
    return http_do("GET", url, headers, NULL, 0, 0, out);
}

json_t *
sim_get_json(struct gwtest *t, const char *path)
{
    char url[512];
    struct http_resp r;
    json_t *j;

    snprintf(url, sizeof(url), "%s%s", t->sim_base, path);
    if (http_do("GET", url, NULL, NULL, 0, 5000, &r) != 0) {
        return NULL;
    }
    j = json_incref(r.json);
    http_resp_free(&r);
    return j;
}

long
sim_post(struct gwtest *t, const char *path, const char *json_body)
{
    char url[512];
    const char *headers[] = {"Content-Type: application/json", NULL};
    struct http_resp r;
    long st;

    snprintf(url, sizeof(url), "%s%s", t->sim_base, path);
    if (http_do("POST", url, headers, json_body, strlen(json_body), 5000, &r) != 0) {
        return -1;
    }
    st = r.status;
    http_resp_free(&r);
    return st;
}

long
sim_delete(struct gwtest *t, const char *path)
{
    char url[512];
    struct http_resp r;
    long st;

    snprintf(url, sizeof(url), "%s%s", t->sim_base, path);
    if (http_do("DELETE", url, NULL, NULL, 0, 5000, &r) != 0) {
        return -1;
    }
    st = r.status;
    http_resp_free(&r);
    return st;
}

int
sim_count(struct gwtest *t, const char *method, const char *path)
{
    char q[256];
    json_t *j;
    int n;

    snprintf(q, sizeof(q), "/_sim/requests?method=%s&path=%s", method, path);
    j = sim_get_json(t, q);
    n = j != NULL ? (int)json_integer_value(json_object_get(j, "count")) : -1;
    json_decref(j);
    return n;
}

json_t *
gw_wait_call_status(struct gwtest *t, const char *key, const char *id, const char *status,
                    int timeout_ms)
{
    char path[160];
    json_t *last = NULL;
    int waited;

    snprintf(path, sizeof(path), "/v1/calls/%s", id);
    for (waited = 0; waited <= timeout_ms; waited += 50) {
        struct http_resp r;
        if (gw_get(t, key, path, &r) == 0 && r.status == 200 && r.json != NULL) {
            json_decref(last);
            last = json_incref(r.json);
            http_resp_free(&r);
            if (strcmp(json_string_value(json_object_get(last, "status")), status) == 0) {
                return last;
            }
        } else if (r.body != NULL) {
            http_resp_free(&r);
        }
        gwtest_sleep_ms(50);
    }
    return last;
}

json_t *
sim_wait_sink(struct gwtest *t, const char *name, size_t n, int timeout_ms)
{
    char path[128];
    json_t *j = NULL;
    int waited;

    snprintf(path, sizeof(path), "/_sink/%s", name);
    for (waited = 0; waited <= timeout_ms; waited += 50) {
        json_decref(j);
        j = sim_get_json(t, path);
        if (j != NULL && json_array_size(json_object_get(j, "events")) >= n) {
            break;
        }
        gwtest_sleep_ms(50);
    }
    if (j == NULL) {
        return json_array();
    }
    {
        json_t *ev = json_incref(json_object_get(j, "events"));
        json_decref(j);
        return ev != NULL ? ev : json_array();
    }
}

const char *
jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

void
assert_problem(struct http_resp *r, long status, const char *slug)
{
    char ct[128], type[96];

    cr_assert_eq(r->status, status, "status %ld, expected %ld: %s", r->status, status, r->body);
    cr_assert_not_null(http_header(r, "Content-Type", ct, sizeof(ct)));
    cr_assert_str_eq(ct, "application/problem+json");
    cr_assert_not_null(r->json, "problem body is not JSON: %s", r->body);
    snprintf(type, sizeof(type), "/problems/%s", slug);
    cr_assert_str_eq(jstr(r->json, "type"), type, "body: %s", r->body);
    cr_assert_eq(json_integer_value(json_object_get(r->json, "status")), status);
    cr_assert_not_null(jstr(r->json, "title"));
    cr_assert_not_null(jstr(r->json, "request_id"));
}

int
gw_admin(struct gwtest *t, const char *token, const char *method, const char *path,
         const char *body, struct http_resp *out)
{
    char url[512], auth[256];
    const char *headers[3] = {"Content-Type: application/json", NULL, NULL};

    snprintf(url, sizeof(url), "%s%s", t->admin_base, path);
    if (token != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        headers[1] = auth;
    }
    return http_do(method, url, headers, body, body != NULL ? strlen(body) : 0, 10000, out);
}
