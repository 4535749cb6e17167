/*
 * app.h: the gateway's process-wide context: the event loop and everything
 * hung on it (front end, Redis store, upstream HTTP, the loaded conf and
 * routes, the Lua scripts), plus the life cycle: start, reload, drain, stop.
 */
#ifndef CG_APP_H
#define CG_APP_H

struct event_base;
struct conf;
struct route_table;
struct store;
struct store_script;
struct upstream;
struct front;
struct relay;
struct vhealth;
struct agents_scripts;
struct breaker;

struct app {
    struct event_base *base;
    struct conf *conf;           /* current configuration (reference) */
    struct route_table *routes;  /* current routing table (reference) */
    struct store *store;
    struct upstream *upstream;   /* vendor traffic */
    struct relay *relay;         /* tenant event deliveries */
    struct vhealth *vhealth;     /* vendor health probes */
    struct breaker *breaker;     /* per-vendor circuit breakers (this replica's view) */
    struct agents_scripts *agents_scripts; /* agents.c's Lua, made on first use */
    struct front *front;
    struct store_script *lua_begin;
    struct store_script *lua_finish;
    struct store_script *lua_event;
    struct store_script *lua_list;
    struct store_script *lua_throttle; /* limits.c: buckets and leases */
    struct retry_budget *retry_budget; /* failover allowance (this replica) */
    int draining;                /* SIGTERM seen: readyz 503, no new work */
    struct event *drain_timer;
    struct event *drain_deadline;
    struct event *sig_term, *sig_int, *sig_hup;
    long long flush_until_us;    /* after the drain: stop waiting for unsent replies then */
};

/*
 * Build the app on base from a loaded conf and routes (both references are
 * taken over) and start listening. Returns NULL on failure (logged).
 */
struct app *app_new(struct event_base *base, struct conf *conf, struct route_table *routes);

/* Install SIGTERM/SIGINT (drain) and SIGHUP (reload) handlers on the loop. */
int app_install_signals(struct app *app);

/* Reload conf and routes from disk; on any error keep the old ones. 0 or -1. */
int app_reload(struct app *app);

/*
 * Reload only the routes (POST /admin/routes/reload): built beside the old
 * table and swapped in; on errors the old one keeps serving. 0 or -1; the
 * caller frees *errors and *warnings (either may be NULL).
 */
int app_reload_routes(struct app *app, char **errors, char **warnings);

/* Start a graceful drain: stop accepting, finish in-flight work, then break the loop. */
void app_drain(struct app *app);

/* Free everything (after the loop has returned). */
void app_free(struct app *app);

/* Redis key with the configured prefix: snprintf-style into out. Returns out. */
char *app_key(const struct app *app, char *out, unsigned long outlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
