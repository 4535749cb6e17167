/*
 * vendor.c: the registry of vendor adapters and helpers they share. Adding a
 * vendor means one file in src/vendors/ and one line in vendor_registry[].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "conf.h"
#include "vendor.h"

extern const struct vendor_ops vendor_clouddialer_ops;
extern const struct vendor_ops vendor_getdesk_ops;
extern const struct vendor_ops vendor_callerdesk_ops;
extern const struct vendor_ops vendor_ccai_ops;

static const struct vendor_ops *const vendor_registry[] = {
    &vendor_clouddialer_ops,
    &vendor_getdesk_ops,
    &vendor_callerdesk_ops,
    &vendor_ccai_ops,
};

const char *const vendor_outcome_text[VENDOR_OUTCOME_MAX] = {
    [VENDOR_ACCEPTED] = "accepted",
    [VENDOR_REJECTED] = "rejected",
    [VENDOR_UNAVAILABLE] = "unavailable",
    [VENDOR_AMBIGUOUS] = "ambiguous",
};

const struct vendor_ops *
vendor_ops_find(const char *name)
{
    size_t i;

    for (i = 0; i < sizeof(vendor_registry) / sizeof(vendor_registry[0]); i++) {
        if (name != NULL && strcmp(vendor_registry[i]->name, name) == 0) {
            return vendor_registry[i];
        }
    }
    return NULL;
}

const char *
vendor_known_names(void)
{
    static char names[256];
    size_t i, n = 0;

    if (names[0] == '\0') {
        for (i = 0; i < sizeof(vendor_registry) / sizeof(vendor_registry[0]); i++) {
            n += (size_t)snprintf(names + n, sizeof(names) - n, "%s%s", i ? ", " : "",
                                  vendor_registry[i]->name);
            if (n >= sizeof(names)) {
                break;
            }
        }
    }
    return names;
}

void
vendor_ctx_init(struct vendor_ctx *ctx, const struct conf_vendor *v,
                const struct conf_tenant_vendor *tv)
{
    ctx->conf = v;
    ctx->base_url = tv != NULL && tv->base_url != NULL ? tv->base_url : v->base_url;
    ctx->options = tv != NULL ? tv->options : NULL;
    ctx->api_key = tv != NULL && tv->api_key != NULL ? tv->api_key : v->api_key;
    ctx->from_number = tv != NULL && tv->from_number != NULL ? tv->from_number : v->from_number;
}

int
vendor_http_set(struct vendor_http *h, const char *method, const char *url, char *body,
                const char *const *headers)
{
    size_t n = 0, i;

    memset(h, 0, sizeof(*h));
    while (headers != NULL && headers[n] != NULL) {
        n++;
    }
    h->method = strdup(method);
    h->url = strdup(url);
    h->headers = calloc(n + 1, sizeof(char *));
    h->body = body;
    h->body_len = body != NULL ? strlen(body) : 0;
    if (h->method == NULL || h->url == NULL || h->headers == NULL) {
        vendor_http_clear(h);
        return -1;
    }
    for (i = 0; i < n; i++) {
        h->headers[i] = strdup(headers[i]);
        if (h->headers[i] == NULL) {
            vendor_http_clear(h);
            return -1;
        }
    }
    return 0;
}

int
vendor_http_json(struct vendor_http *out, const char *method, const char *url, const char *auth,
                 char *body, char *err, size_t errlen)
{
    const char *headers[4];
    int n = 0;

    if (auth != NULL) {
        headers[n++] = auth;
    }
    headers[n++] = "Accept: application/json";
    if (body != NULL) {
        headers[n++] = "Content-Type: application/json";
    }
    headers[n] = NULL;
    if (vendor_http_set(out, method, url, body, headers) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void
vendor_http_clear(struct vendor_http *h)
{
    size_t i;

    free(h->method);
    free(h->url);
    for (i = 0; h->headers != NULL && h->headers[i] != NULL; i++) {
        free(h->headers[i]);
    }
    free(h->headers);
    free(h->body);
    memset(h, 0, sizeof(*h));
}

void
vendor_update_init(struct vendor_update *u)
{
    memset(u, 0, sizeof(*u));
    u->status = CALL_UNKNOWN;
    u->duration_seconds = -1;
}

void
vendor_update_clear(struct vendor_update *u)
{
    json_decref(u->legs);
    u->legs = NULL;
}

void
vendor_url_start(struct evbuffer *b, const char *base_url, const char *path)
{
    size_t n = strlen(base_url);

    while (n > 0 && base_url[n - 1] == '/') {
        n--;
    }
    evbuffer_add(b, base_url, n);
    evbuffer_add(b, path, strlen(path));
}

void
vendor_url_escape(struct evbuffer *b, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *u;

    for (u = (const unsigned char *)value; *u != '\0'; u++) {
        if ((*u >= 'A' && *u <= 'Z') || (*u >= 'a' && *u <= 'z') || (*u >= '0' && *u <= '9') ||
            *u == '-' || *u == '.' || *u == '_' || *u == '~') {
            evbuffer_add(b, u, 1);
        } else {
            char esc[3] = {'%', hex[*u >> 4], hex[*u & 0x0f]};
            evbuffer_add(b, esc, sizeof(esc));
        }
    }
}

void
vendor_url_param(struct evbuffer *b, char sep, const char *name, const char *value)
{
    if (sep != 0) {
        evbuffer_add(b, &sep, 1);
    }
    evbuffer_add_printf(b, "%s=", name);
    vendor_url_escape(b, value);
}

const char *
vendor_option(const struct vendor_ctx *ctx, const char *name)
{
    json_t *v = ctx->options != NULL ? json_object_get(ctx->options, name) : NULL;

    return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

int
vendor_date_ok(const char *s)
{
    int i;

    for (i = 0; i < 10; i++) {
        if (i == 4 || i == 7 ? s[i] != '-' : (s[i] < '0' || s[i] > '9')) {
            return 0;
        }
    }
    return s[10] == '\0';
}
