/*
 * app.c: building the gateway on one event loop, reloading it, and draining
 * it on SIGTERM. Signals are libevent events, so their handlers run in the
 * loop, never in signal context.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>

#include <event2/event.h>

#include "agents.h"
#include "app.h"
#include "breaker.h"
#include "callrec.h"
#include "cglog.h"
#include "conf.h"
#include "front.h"
#include "throttle.h"
#include "metrics.h"
#include "relay.h"
#include "routes.h"
#include "store.h"
#include "upstream.h"
#include "util.h"
#include "vhealth.h"

char *
app_key(const struct app *app, char *out, unsigned long outlen, const char *fmt, ...)
{
    size_t n = (size_t)snprintf(out, outlen, "%s", app->conf->redis.key_prefix);
    va_list ap;

    if (n < outlen) {
        va_start(ap, fmt);
        vsnprintf(out + n, outlen - n, fmt, ap);
        va_end(ap);
    }
    return out;
}

static struct store *
app_store_new(struct event_base *base, const struct conf *c)
{
    struct store_opts o = {
        .host = c->redis.host,
        .port = c->redis.port,
        .unix_path = c->redis.unix_path,
        .password = c->redis.password,
        .db = c->redis.db,
        .connect_timeout_ms = c->redis.connect_timeout_ms,
        .command_timeout_ms = c->redis.command_timeout_ms,
        .backoff_min_ms = c->redis.backoff_min_ms,
        .backoff_max_ms = c->redis.backoff_max_ms,
    };

    return store_new(base, &o);
}

struct app *
app_new(struct event_base *base, struct conf *conf, struct route_table *routes)
{
    struct app *app = calloc(1, sizeof(*app));
    struct upstream_opts uo = {.max_host_connections = 0,
                               .max_total_connections = 1024,
                               .max_response_bytes = (size_t)conf->limits.max_vendor_response_bytes};
    enum cglog_level level;

    if (app == NULL) {
        return NULL;
    }
    if (cglog_parse_level(conf->log_level, &level) == 0) {
        cglog_set_level(level);
    }
    app->base = base;
    app->conf = conf;
    app->routes = routes;
    metrics_init();
    app->store = app_store_new(base, conf);
    app->upstream = upstream_new(base, &uo);
    {
        /* The begin script takes the agent too: agents.c's functions first. */
        size_t a = strlen(agents_lua_place), b = strlen(callrec_lua_begin);
        char *src = malloc(a + b + 1);
        if (src != NULL) {
            memcpy(src, agents_lua_place, a);
            memcpy(src + a, callrec_lua_begin, b + 1);
            app->lua_begin = store_script_new(src);
            free(src);
        }
    }
    app->lua_finish = store_script_new(callrec_lua_finish);
    app->lua_event = store_script_new(callrec_lua_event);
    app->lua_list = store_script_new(callrec_lua_list);
    app->lua_throttle = store_script_new(throttle_lua_take);
    app->retry_budget = retry_budget_new();
    app->relay = relay_new(app);
    app->vhealth = vhealth_new(app);
    {
        /* Built once: a reload keeps what the circuits have learnt (the
         * thresholds apply from the next restart). */
        const struct breaker_opts bo = {.consecutive = conf->breaker.consecutive,
                                        .window = conf->breaker.window,
                                        .min_attempts = conf->breaker.min_attempts,
                                        .ratio_pct = conf->breaker.ratio_pct,
                                        .open_ms = conf->breaker.open_ms};
        app->breaker = breaker_new(&bo);
    }
    if (app->store == NULL || app->upstream == NULL || app->lua_begin == NULL ||
        app->lua_finish == NULL || app->lua_event == NULL || app->lua_list == NULL ||
        app->lua_throttle == NULL || app->retry_budget == NULL || app->relay == NULL || app->vhealth == NULL || app->breaker == NULL) {
        cglog_error("startup_failed", "{s:s}", "reason", "out of memory");
        app_free(app);
        return NULL;
    }
    app->front = front_new(app);
    if (app->front == NULL) {
        app_free(app);
        return NULL;
    }
    cglog_info("started", "{s:s, s:s, s:i}", "conf", conf->path, "routes_version",
               routes->version, "tenants", (int)conf->ntenants);
    return app;
}

int
app_reload_routes(struct app *app, char **errors, char **warnings)
{
    char *dir = conf_routes_path(app->conf);
    struct route_table *t;

    *errors = NULL;
    *warnings = NULL;
    t = dir != NULL ? routes_load_dir(dir, app->conf, errors, warnings) : NULL;
    free(dir);
    if (t == NULL) {
        cglog_error("reload_refused", "{s:s, s:s}", "what", "routes", "errors",
                    *errors != NULL ? *errors : "");
        metrics_inc(METRIC_ROUTES_RELOADS, "error", NULL, NULL);
        return -1;
    }
    if (*warnings != NULL) {
        cglog_warn("routes_warning", "{s:s}", "warnings", *warnings);
    }
    /* Requests in flight hold their own reference to the old table. */
    routes_unref(app->routes);
    app->routes = t;
    cglog_info("routes_reloaded", "{s:s, s:i}", "routes_version", t->version, "rules",
               (int)t->nrules);
    metrics_inc(METRIC_ROUTES_RELOADS, "ok", NULL, NULL);
    return 0;
}

int
app_reload(struct app *app)
{
    char *errors = NULL, *warnings = NULL, *dir;
    struct conf *c = conf_load(app->conf->path, &errors);
    struct route_table *t;

    if (c == NULL) {
        cglog_error("reload_refused", "{s:s, s:s}", "what", "conf", "errors",
                    errors != NULL ? errors : "");
        free(errors);
        metrics_inc(METRIC_ROUTES_RELOADS, "error", NULL, NULL);
        return -1;
    }
    dir = conf_routes_path(c);
    t = dir != NULL ? routes_load_dir(dir, c, &errors, &warnings) : NULL;
    free(dir);
    if (t == NULL) {
        cglog_error("reload_refused", "{s:s, s:s}", "what", "routes", "errors",
                    errors != NULL ? errors : "");
        free(errors);
        conf_unref(c);
        metrics_inc(METRIC_ROUTES_RELOADS, "error", NULL, NULL);
        return -1;
    }
    if (warnings != NULL) {
        cglog_warn("routes_warning", "{s:s}", "warnings", warnings);
        free(warnings);
    }
    if (strcmp(c->listen_host, app->conf->listen_host) != 0 ||
        c->listen_port != app->conf->listen_port ||
        strcmp(c->redis.host, app->conf->redis.host) != 0 ||
        c->redis.port != app->conf->redis.port) {
        cglog_warn("reload_partial", "{s:s}", "detail",
                   "listen and redis settings change only on restart");
    }
    conf_unref(app->conf);
    routes_unref(app->routes);
    app->conf = c;
    app->routes = t;
    cglog_info("reloaded", "{s:s, s:i}", "routes_version", t->version, "tenants",
               (int)c->ntenants);
    metrics_inc(METRIC_ROUTES_RELOADS, "ok", NULL, NULL);
    return 0;
}

/* How long a drained replica waits for its last replies to be written. */
#define APP_FLUSH_US (1000 * 1000)

static void
app_drain_check(evutil_socket_t fd, short what, void *arg)
{
    struct app *app = arg;

    if (app->flush_until_us == 0) {
        if (front_inflight(app->front) > 0 || relay_pending(app->relay) > 0) {
            return;
        }
        app->flush_until_us = util_mono_us() + APP_FLUSH_US;
    }
    if (front_unsent(app->front) == 0 || util_mono_us() >= app->flush_until_us) {
        cglog_info("drained", "{s:i}", "unsent", front_unsent(app->front));
        event_base_loopexit(app->base, NULL);
    }
}

static void
app_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct app *app = arg;

    cglog_warn("drain_deadline", "{s:i, s:i}", "requests", front_inflight(app->front),
               "deliveries", relay_pending(app->relay));
    /* Answer everyone now; the drain check then lets the answers go out. */
    front_abort_all(app->front);
    relay_abandon(app->relay);
    app->flush_until_us = util_mono_us() + APP_FLUSH_US;
}

void
app_drain(struct app *app)
{
    struct timeval every = {0, 50 * 1000};
    struct timeval deadline;

    if (app->draining) {
        return;
    }
    app->draining = 1;
    vhealth_stop(app->vhealth);
    cglog_info("draining", "{s:i, s:i}", "requests", front_inflight(app->front), "deliveries",
               relay_pending(app->relay));
    front_stop_accepting(app->front);
    deadline.tv_sec = app->conf->limits.drain_timeout_ms / 1000;
    deadline.tv_usec = (app->conf->limits.drain_timeout_ms % 1000) * 1000;
    app->drain_timer = event_new(app->base, -1, EV_PERSIST, app_drain_check, app);
    app->drain_deadline = evtimer_new(app->base, app_drain_deadline, app);
    if (app->drain_timer == NULL || app->drain_deadline == NULL) {
        event_base_loopexit(app->base, NULL);
        return;
    }
    event_add(app->drain_timer, &every);
    event_add(app->drain_deadline, &deadline);
}

static void
app_on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct app *app = arg;

    if (sig == SIGHUP) {
        cglog_info("sighup", NULL);
        app_reload(app);
    } else {
        app_drain(app);
    }
}

int
app_install_signals(struct app *app)
{
    app->sig_term = evsignal_new(app->base, SIGTERM, app_on_signal, app);
    app->sig_int = evsignal_new(app->base, SIGINT, app_on_signal, app);
    app->sig_hup = evsignal_new(app->base, SIGHUP, app_on_signal, app);
    if (app->sig_term == NULL || app->sig_int == NULL || app->sig_hup == NULL ||
        event_add(app->sig_term, NULL) != 0 || event_add(app->sig_int, NULL) != 0 ||
        event_add(app->sig_hup, NULL) != 0) {
        return -1;
    }
    return 0;
}

void
app_free(struct app *app)
{
    if (app == NULL) {
        return;
    }
    if (app->front != NULL) {
        front_abort_all(app->front);
    }
    relay_free(app->relay);
    vhealth_free(app->vhealth);
    breaker_free(app->breaker);
    front_free(app->front);
    upstream_free(app->upstream);
    store_free(app->store);
    store_script_free(app->lua_begin);
    store_script_free(app->lua_finish);
    store_script_free(app->lua_event);
    store_script_free(app->lua_list);
    store_script_free(app->lua_throttle);
    retry_budget_free(app->retry_budget);
    agents_free_scripts(app);
    if (app->drain_timer != NULL) {
        event_free(app->drain_timer);
    }
    if (app->drain_deadline != NULL) {
        event_free(app->drain_deadline);
    }
    if (app->sig_term != NULL) {
        event_free(app->sig_term);
    }
    if (app->sig_int != NULL) {
        event_free(app->sig_int);
    }
    if (app->sig_hup != NULL) {
        event_free(app->sig_hup);
    }
    routes_unref(app->routes);
    conf_unref(app->conf);
    free(app);
}
