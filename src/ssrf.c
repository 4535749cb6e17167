/*
 * ssrf.c: where tenant callback URLs may point (see ssrf.h and API.md
 * "Webhooks").
 *
 * Two checks share one address policy:
 *
 *  - ssrf_check_url() reads the URL's text: scheme, credentials, port, and a
 *    host that is either a literal address (every spelling libc and libcurl
 *    accept: 2130706433, 0177.0.0.1, 0x7f.1, 127.1, [::ffff:7f00:1] ...) or a
 *    name (localhost, metadata and *.internal names are refused). It looks at
 *    the host as libevent parses it and as libcurl parses it, so a parser
 *    difference cannot hide a forbidden host from one of them.
 *  - ssrf_addr_allowed() runs at connect time on every address libcurl is
 *    about to connect to, after DNS. This is the check that counts: a name
 *    that passed the text check may resolve anywhere, and again differently
 *    on the next attempt (DNS rebinding).
 *
 * Addresses are handled as 16 bytes, IPv4 in its IPv4-mapped IPv6 form
 * (::ffff:a.b.c.d), so one range table and one CIDR match cover both
 * families, and ::ffff:127.0.0.1 is 127.0.0.1 by construction. IPv6 forms
 * that carry an IPv4 address to a gateway (NAT64, 6to4, Teredo, SIIT) are
 * judged by the IPv4 address they carry.
 *
 * conf "callbacks.allow_hosts" holds the exceptions: a host name (only the
 * text check can use it: at connect time there is only an address) or an
 * address or CIDR (both checks). conf.c validates the entries when the
 * configuration loads; an entry that is not an address or CIDR is a name.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <event2/http.h>

#include "app.h"
#include "conf.h"
#include "gw.h"
#include "ssrf.h"

/* An IPv4 address or CIDR, mapped: the first 96 bits are ::ffff:0:0/96. */
#define SSRF_V4_BITS 96

/* Longest host text considered: a DNS name is at most 253 characters. */
#define SSRF_HOST_MAX 256

/* The reasons a URL is refused (static texts; API 400 and conf errors). */
#define SSRF_WHY_ABSOLUTE "must be an absolute https URL"
#define SSRF_WHY_SCHEME "must be an https URL"
#define SSRF_WHY_CREDENTIALS "must not carry credentials"
#define SSRF_WHY_PORT "must have a port between 1 and 65535"
#define SSRF_WHY_HOST "must have a valid host name or address"
#define SSRF_WHY_ADDRESS "must not point at a loopback, private, link-local or reserved address"
#define SSRF_WHY_NAME "must not name a local or cloud metadata host"

/* An address as 16 bytes (IPv4 mapped). */
struct ssrf_addr {
    unsigned char b[16];
};

/* What a range of the policy means. */
enum ssrf_rule {
    SSRF_DENY,         /* never */
    SSRF_EMBED_LOW32,  /* carries an IPv4 address in its last 32 bits */
    SSRF_EMBED_6TO4,   /* 2002:AABB:CCDD::/48 carries AA.BB.CC.DD */
    SSRF_EMBED_TEREDO, /* 2001:0::/32 carries the client's IPv4, bits inverted, last */
};

struct ssrf_range {
    const char *cidr;
    enum ssrf_rule rule;
};

/*
 * The policy: an address in none of these ranges is allowed. Written as text
 * and parsed by the same code as allow_hosts entries, so the table reads as
 * the RFCs do.
 */
static const struct ssrf_range ssrf_ranges[] = {
    {"0.0.0.0/8", SSRF_DENY},       /* "this network"; 0.0.0.0 reaches the local host */
    {"10.0.0.0/8", SSRF_DENY},      /* private (RFC 1918) */
    {"100.64.0.0/10", SSRF_DENY},   /* CGNAT shared space (RFC 6598) */
    {"127.0.0.0/8", SSRF_DENY},     /* loopback */
    {"169.254.0.0/16", SSRF_DENY},  /* link-local, cloud metadata 169.254.169.254 */
    {"172.16.0.0/12", SSRF_DENY},   /* private */
    {"192.0.0.0/24", SSRF_DENY},    /* IETF protocol assignments */
    {"192.0.2.0/24", SSRF_DENY},    /* documentation (TEST-NET-1) */
    {"192.168.0.0/16", SSRF_DENY},  /* private */
    {"198.18.0.0/15", SSRF_DENY},   /* benchmarking (RFC 2544) */
    {"198.51.100.0/24", SSRF_DENY}, /* documentation (TEST-NET-2) */
    {"203.0.113.0/24", SSRF_DENY},  /* documentation (TEST-NET-3) */
    {"224.0.0.0/4", SSRF_DENY},     /* multicast */
    {"240.0.0.0/4", SSRF_DENY},     /* reserved, 255.255.255.255 broadcast */
    {"::/96", SSRF_DENY},           /* ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d */
    {"::ffff:0:0:0/96", SSRF_EMBED_LOW32}, /* SIIT IPv4-translated (RFC 6052 2.1) */
    {"64:ff9b::/96", SSRF_EMBED_LOW32},    /* NAT64 well-known prefix (RFC 6052) */
    {"64:ff9b:1::/48", SSRF_DENY},         /* NAT64 local use (RFC 8215): never global */
    {"2001::/32", SSRF_EMBED_TEREDO},      /* Teredo (RFC 4380) */
    {"2001:db8::/32", SSRF_DENY},          /* documentation */
    {"2002::/16", SSRF_EMBED_6TO4},        /* 6to4 (RFC 3056) */
    {"fc00::/7", SSRF_DENY},               /* unique local, incl. AWS metadata fd00:ec2::254 */
    {"fe80::/10", SSRF_DENY},              /* link-local */
    {"fec0::/10", SSRF_DENY},              /* site-local (deprecated, still private) */
    {"ff00::/8", SSRF_DENY},               /* multicast */
};

/* Names that are the local host or a cloud metadata service wherever they resolve. */
static const char *const ssrf_names[] = {
    "localhost", "localhost.localdomain",    "ip6-localhost", "ip6-loopback",
    "metadata",  "metadata.google.internal", "instance-data",
};

/* Suffixes of such names (RFC 6761 .localhost; cloud-internal DNS zones). */
static const char *const ssrf_suffixes[] = {".localhost", ".internal"};

/* ------------------------------------------------------------------------ */
/* addresses                                                                 */

static void
ssrf_map_v4(struct ssrf_addr *a, const void *v4)
{
    memset(a->b, 0, 10);
    a->b[10] = 0xff;
    a->b[11] = 0xff;
    memcpy(a->b + 12, v4, 4);
}

/* 1 if a is in net/bits. */
static int
ssrf_in(const struct ssrf_addr *a, const struct ssrf_addr *net, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;

    if (memcmp(a->b, net->b, whole) != 0) {
        return 0;
    }
    if (rest == 0) {
        return 1;
    }
    return ((a->b[whole] ^ net->b[whole]) & (0xff00 >> rest) & 0xff) == 0;
}

/*
 * Parse "address" or "address/prefix" (inet_pton spellings only: this reads
 * configuration, where there is no reason for 0x7f.1). 0, or -1 when s is not
 * an address or CIDR.
 */
static int
ssrf_parse_net(const char *s, struct ssrf_addr *net, unsigned *bits)
{
    char text[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(s, '/');
    size_t n = slash != NULL ? (size_t)(slash - s) : strlen(s);
    unsigned char v4[4];
    unsigned max, prefix = 0;

    if (n == 0 || n >= sizeof(text)) {
        return -1;
    }
    memcpy(text, s, n);
    text[n] = '\0';
    if (inet_pton(AF_INET, text, v4) == 1) {
        ssrf_map_v4(net, v4);
        max = 32;
    } else if (inet_pton(AF_INET6, text, net->b) == 1) {
        max = 128;
    } else {
        return -1;
    }
    if (slash == NULL) {
        prefix = max;
    } else {
        const char *p = slash + 1;

        /* 1 to 3 digits, nothing else: no sign, no spaces */
        if (*p == '\0' || strlen(p) > 3 || strspn(p, "0123456789") != strlen(p)) {
            return -1;
        }
        for (; *p != '\0'; p++) {
            prefix = prefix * 10 + (unsigned)(*p - '0');
        }
        if (prefix > max) {
            return -1;
        }
    }
    *bits = max == 32 ? SSRF_V4_BITS + prefix : prefix;
    return 0;
}

/* The IPv4 address inside a (bytes at off, inverted for Teredo), mapped into out. */
static void
ssrf_embedded(const struct ssrf_addr *a, size_t off, int invert, struct ssrf_addr *out)
{
    unsigned char v4[4];
    size_t i;

    for (i = 0; i < 4; i++) {
        v4[i] = invert ? (unsigned char)~a->b[off + i] : a->b[off + i];
    }
    ssrf_map_v4(out, v4);
}

/* The policy alone: 1 if a may be connected to. */
static int
ssrf_policy_allows(const struct ssrf_addr *a)
{
    size_t i;

    for (i = 0; i < GW_ARRAY_LEN(ssrf_ranges); i++) {
        struct ssrf_addr net, inner;
        unsigned bits;

        /* the table is constant and valid; a parse failure would be a typo above */
        if (ssrf_parse_net(ssrf_ranges[i].cidr, &net, &bits) != 0 || !ssrf_in(a, &net, bits)) {
            continue;
        }
        switch (ssrf_ranges[i].rule) {
        case SSRF_DENY:
            return 0;
        case SSRF_EMBED_LOW32:
            ssrf_embedded(a, 12, 0, &inner);
            return ssrf_policy_allows(&inner);
        case SSRF_EMBED_6TO4:
            ssrf_embedded(a, 2, 0, &inner);
            return ssrf_policy_allows(&inner);
        case SSRF_EMBED_TEREDO:
            ssrf_embedded(a, 12, 1, &inner);
            return ssrf_policy_allows(&inner);
        }
    }
    return 1;
}

/* 1 if an allow_hosts address or CIDR covers a. */
static int
ssrf_allow_listed_addr(const struct conf *c, const struct ssrf_addr *a)
{
    size_t i;

    for (i = 0; c != NULL && i < c->callbacks.nallow_hosts; i++) {
        struct ssrf_addr net;
        unsigned bits;

        if (ssrf_parse_net(c->callbacks.allow_hosts[i], &net, &bits) == 0 &&
            ssrf_in(a, &net, bits)) {
            return 1;
        }
    }
    return 0;
}

/* 1 if an allow_hosts name equals name (lower case, no trailing dot). */
static int
ssrf_allow_listed_name(const struct conf *c, const char *name)
{
    size_t i, n = strlen(name);

    for (i = 0; c != NULL && i < c->callbacks.nallow_hosts; i++) {
        const char *e = c->callbacks.allow_hosts[i];
        size_t en = strlen(e);

        if (en > 0 && e[en - 1] == '.') {
            en--;
        }
        if (en == n && strncasecmp(e, name, n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* host text                                                                 */

/* 1 if the label s[0..n) is a number in a spelling inet_aton knows (digits, 0x hex). */
static int
ssrf_numeric_label(const char *s, size_t n)
{
    if (n >= 2 && s[0] == '0' && s[1] == 'x') {
        return strspn(s + 2, "0123456789abcdef") >= n - 2;
    }
    return n > 0 && strspn(s, "0123456789") >= n;
}

/* 1 if name is the local host or a metadata service by its name alone. */
static int
ssrf_forbidden_name(const char *name)
{
    size_t i, n = strlen(name);

    for (i = 0; i < GW_ARRAY_LEN(ssrf_names); i++) {
        if (strcmp(name, ssrf_names[i]) == 0) {
            return 1;
        }
    }
    for (i = 0; i < GW_ARRAY_LEN(ssrf_suffixes); i++) {
        size_t sn = strlen(ssrf_suffixes[i]);

        if (n > sn && strcmp(name + n - sn, ssrf_suffixes[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* An IPv6 literal "[...]": a plain address only (no zone id, no IPvFuture). */
static const char *
ssrf_check_v6_literal(const struct conf *c, const char *host, size_t n)
{
    char text[INET6_ADDRSTRLEN];
    struct ssrf_addr a;

    if (n < 3 || host[n - 1] != ']' || n - 2 >= sizeof(text)) {
        return SSRF_WHY_HOST;
    }
    memcpy(text, host + 1, n - 2);
    text[n - 2] = '\0';
    if (inet_pton(AF_INET6, text, a.b) != 1) {
        return SSRF_WHY_HOST;
    }
    return ssrf_allow_listed_addr(c, &a) || ssrf_policy_allows(&a) ? NULL : SSRF_WHY_ADDRESS;
}

/*
 * One URL host as text: NULL when it may be used, else why not. A name that
 * passes may still resolve somewhere forbidden: the connect-time check
 * catches that.
 */
static const char *
ssrf_check_host(const struct conf *c, const char *host)
{
    char name[SSRF_HOST_MAX];
    size_t i, n = strlen(host), label;
    const char *dot;
    struct in_addr v4;
    struct ssrf_addr a;

    if (n == 0) {
        return SSRF_WHY_ABSOLUTE;
    }
    if (host[0] == '[') {
        return ssrf_check_v6_literal(c, host, n);
    }
    if (n >= sizeof(name)) {
        return SSRF_WHY_HOST;
    }
    for (i = 0; i < n; i++) {
        name[i] = (char)(host[i] >= 'A' && host[i] <= 'Z' ? host[i] - 'A' + 'a' : host[i]);
    }
    name[n] = '\0';
    /* "localhost." and "127.0.0.1." are the same hosts: judge them without the root dot */
    if (name[n - 1] == '.') {
        name[--n] = '\0';
    }
    /*
     * Letters, digits, '-', '_' and dots between non-empty labels. This also
     * refuses '%': libcurl percent-decodes host names (%31%32%37.0.0.1 is
     * 127.0.0.1 to it), and no real host name needs one.
     */
    if (n == 0 || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != n || name[0] == '.' ||
        strstr(name, "..") != NULL) {
        return SSRF_WHY_HOST;
    }
    /* every IPv4 spelling libc's resolver (and so libcurl) turns into an address */
    if (inet_aton(name, &v4) != 0) {
        ssrf_map_v4(&a, &v4.s_addr);
        return ssrf_allow_listed_addr(c, &a) || ssrf_policy_allows(&a) ? NULL : SSRF_WHY_ADDRESS;
    }
    /* a numeric last label that is no address (08.1.1.1, 4294967296): URL parsers disagree */
    dot = strrchr(name, '.');
    label = dot != NULL ? (size_t)(dot + 1 - name) : 0;
    if (ssrf_numeric_label(name + label, n - label)) {
        return SSRF_WHY_HOST;
    }
    if (ssrf_allow_listed_name(c, name)) {
        return NULL;
    }
    return ssrf_forbidden_name(name) ? SSRF_WHY_NAME : NULL;
}

/*
 * The host as libcurl will see it. libcurl normalises numeric IPv4 hosts and
 * percent-decoding, and is what connects, so its reading must pass too.
 */
static const char *
ssrf_check_curl_host(const struct conf *c, const char *url)
{
    CURLU *u = curl_url();
    char *host = NULL;
    const char *why = SSRF_WHY_ABSOLUTE;

    if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host != NULL) {
        why = ssrf_check_host(c, host);
    }
    curl_free(host);
    curl_url_cleanup(u);
    return why;
}

int
ssrf_check_url(const struct conf *c, const char *url, const char **why)
{
    struct evhttp_uri *u = url != NULL ? evhttp_uri_parse_with_flags(url, 0) : NULL;
    const char *w = NULL, *scheme, *host;

    if (u == NULL || (host = evhttp_uri_get_host(u)) == NULL || host[0] == '\0') {
        w = SSRF_WHY_ABSOLUTE;
    } else if ((scheme = evhttp_uri_get_scheme(u)) == NULL ||
               (strcasecmp(scheme, "https") != 0 &&
                !(c != NULL && c->callbacks.allow_http && strcasecmp(scheme, "http") == 0))) {
        w = SSRF_WHY_SCHEME;
    } else if (evhttp_uri_get_userinfo(u) != NULL) {
        w = SSRF_WHY_CREDENTIALS;
    } else if (evhttp_uri_get_port(u) == 0) {
        /* -1 is "no port"; libevent refuses anything over 65535 */
        w = SSRF_WHY_PORT;
    } else if ((w = ssrf_check_host(c, host)) == NULL) {
        w = ssrf_check_curl_host(c, url);
    }
    if (u != NULL) {
        evhttp_uri_free(u);
    }
    *why = w;
    return w == NULL ? 0 : -1;
}

int
ssrf_addr_allowed(const struct sockaddr *addr, void *arg)
{
    const struct app *app = arg;
    const struct conf *c = app != NULL ? app->conf : NULL;
    struct ssrf_addr a;

    if (addr == NULL) {
        return 0;
    }
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)addr;

        ssrf_map_v4(&a, &sin->sin_addr.s_addr);
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)addr;

        memcpy(a.b, sin6->sin6_addr.s6_addr, sizeof(a.b));
    } else {
        return 0; /* unix sockets and the like are never a tenant's endpoint */
    }
    return ssrf_allow_listed_addr(c, &a) || ssrf_policy_allows(&a);
}
