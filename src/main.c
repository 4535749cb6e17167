/*
 * main.c: the callgate daemon: options, configuration test (-t), version
 * (-V), the optional worker processes (--workers) and the event loop.
 * Everything else lives in libcallgate.a.
 */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>

#include "app.h"
#include "cglog.h"
#include "conf.h"
#include "front.h"
#include "jalloc.h"
#include "routes.h"
#include "util.h"
#include "workers.h"

#ifndef CG_DEFAULT_CONF
#define CG_DEFAULT_CONF "conf/callgate.json"
#endif

static void
main_usage(FILE *out)
{
    fprintf(out,
            "usage: callgate [-c FILE] [-w N] [-t]\n"
            "       callgate --check-routes DIR [-c FILE]\n"
            "       callgate -V | -h\n"
            "  -c, --conf FILE        configuration (default " CG_DEFAULT_CONF ")\n"
            "  -w, --workers N        N worker processes sharing the listeners (1..%d, default 1)\n"
            "  -t, --test             check configuration and routes, then exit\n"
            "      --check-routes DIR check the routing table in DIR against the configuration\n"
            "  -V, --version          print version and build options, then exit\n"
            "  -h, --help             this text\n",
            WORKERS_MAX);
}

/* -V: what was built, with what, and what is linked at run time. */
static void
main_version(void)
{
    const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);

    printf("callgate %s\n", PACKAGE_VERSION);
    printf("build options: %s\n", CG_BUILD_OPTIONS);
#ifdef __VERSION__
    printf("compiler: %s (%s)\n", CG_BUILD_CC, __VERSION__);
#else
    printf("compiler: %s\n", CG_BUILD_CC);
#endif
    printf("libevent: %s (built with %s)\n", event_get_version(), LIBEVENT_VERSION);
    printf("libcurl: %s, %s (built with %s)\n", cv->version,
           cv->ssl_version != NULL ? cv->ssl_version : "no TLS", LIBCURL_VERSION);
    printf("jansson: %s (built with %s)\n", jansson_version_str(), JANSSON_VERSION);
    /* hiredis 0.14 has no run-time version call. */
    printf("hiredis: built with %d.%d.%d\n", HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH);
    printf("libcrypto: %s (built with %s)\n", OpenSSL_version(OPENSSL_VERSION),
           OPENSSL_VERSION_TEXT);
}

/* Load conf and routes, printing every error. Returns 0 with both, or -1. */
static int
main_load(const char *conf_path, const char *routes_dir, struct conf **conf,
          struct route_table **routes)
{
    char *errors = NULL, *warnings = NULL, *dir;

    *conf = conf_load(conf_path, &errors);
    if (*conf == NULL) {
        fprintf(stderr, "%s", errors != NULL ? errors : "configuration: cannot load\n");
        free(errors);
        return -1;
    }
    dir = routes_dir != NULL ? strdup(routes_dir) : conf_routes_path(*conf);
    *routes = dir != NULL ? routes_load_dir(dir, *conf, &errors, &warnings) : NULL;
    if (warnings != NULL) {
        fprintf(stderr, "%s: warning: %s", dir, warnings);
        free(warnings);
    }
    free(dir);
    if (*routes == NULL) {
        fprintf(stderr, "%s", errors != NULL ? errors : "routes: cannot load\n");
        free(errors);
        conf_unref(*conf);
        *conf = NULL;
        return -1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"conf", required_argument, NULL, 'c'},  {"test", no_argument, NULL, 't'},
        {"version", no_argument, NULL, 'V'},     {"help", no_argument, NULL, 'h'},
        {"check-routes", required_argument, NULL, 'R'}, {"workers", required_argument, NULL, 'w'},
        {NULL, 0, NULL, 0},
    };
    const char *conf_path = CG_DEFAULT_CONF, *routes_dir = NULL;
    struct route_table *routes;
    struct event_base *base;
    struct conf *conf;
    struct app *app;
    int c, test = 0, rc = 0, worker = -1;
    long workers = 1;

    jalloc_install();
    while ((c = getopt_long(argc, argv, "c:w:tVh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            conf_path = optarg;
            break;
        case 'w':
            if (util_parse_long(optarg, 1, WORKERS_MAX, &workers) != 0) {
                fprintf(stderr, "callgate: --workers must be 1..%d\n", WORKERS_MAX);
                return 2;
            }
            break;
        case 't':
            test = 1;
            break;
        case 'R':
            routes_dir = optarg;
            test = 1;
            break;
        case 'V':
            main_version();
            return 0;
        case 'h':
            main_usage(stdout);
            return 0;
        default:
            main_usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        main_usage(stderr);
        return 2;
    }
    if (main_load(conf_path, routes_dir, &conf, &routes) != 0) {
        return 1;
    }
    if (test) {
        printf("callgate: configuration %s and routes (version %s) are valid\n", conf_path,
               routes->version);
        routes_unref(routes);
        conf_unref(conf);
        return 0;
    }
    if (workers > 1) {
        /* The supervisor only checked them; each worker loads its own (a
         * worker started again after a reload must read the files anew). */
        routes_unref(routes);
        conf_unref(conf);
        if (!workers_run((int)workers, &worker, &rc)) {
            return rc;
        }
        cglog_set_worker(worker);
        front_share_ports(1);
        if (main_load(conf_path, routes_dir, &conf, &routes) != 0) {
            return 1;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "callgate: libcurl initialisation failed\n");
        return 1;
    }
    base = event_base_new();
    if (base == NULL) {
        fprintf(stderr, "callgate: cannot create the event loop\n");
        return 1;
    }
    app = app_new(base, conf, routes);
    if (app == NULL || app_install_signals(app) != 0) {
        rc = 1;
    } else {
        if (worker >= 0) {
            workers_signals_ready();
        }
        event_base_dispatch(base);
        cglog_info("stopped", NULL);
    }
    if (app != NULL) {
        app_free(app);
    } else {
        routes_unref(routes);
        conf_unref(conf);
    }
    event_base_free(base);
    curl_global_cleanup();
    libevent_global_shutdown();
    return rc;
}
