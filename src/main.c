/*
 * main.c: the callgate daemon: options, configuration test (-t), and the
 * event loop. Everything else lives in libcallgate.a.
 */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "app.h"
#include "cglog.h"
#include "conf.h"
#include "routes.h"

static void
main_usage(FILE *out)
{
    fprintf(out,
            "usage: callgate [-c FILE] [-t] [-V]\n"
            "       callgate --check-routes DIR -c FILE\n"
            "  -c, --conf FILE        configuration (default conf/callgate.json)\n"
            "  -t, --test             check configuration and routes, then exit\n"
            "      --check-routes DIR check the routing table in DIR against the configuration\n"
            "  -V, --version          print version and build options\n"
            "  -h, --help             this text\n");
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
        {"check-routes", required_argument, NULL, 'R'}, {NULL, 0, NULL, 0},
    };
    const char *conf_path = "conf/callgate.json", *routes_dir = NULL;
    struct route_table *routes;
    struct event_base *base;
    struct conf *conf;
    struct app *app;
    int c, test = 0, rc = 0;

    while ((c = getopt_long(argc, argv, "c:tVh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            conf_path = optarg;
            break;
        case 't':
            test = 1;
            break;
        case 'R':
            routes_dir = optarg;
            test = 1;
            break;
        case 'V':
            printf("callgate %s (%s)\n", PACKAGE_VERSION, CG_BUILD_OPTIONS);
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
