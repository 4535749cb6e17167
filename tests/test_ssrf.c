/*
 * test_ssrf.c: the callback-URL guard (ssrf.c) and the connect-time address
 * filter it installs through upstream.c.
 *
 *  - ssrf_check_url(): tables over every refused range, the IPv4 spellings
 *    libc and libcurl accept (2130706433, 0177.0.0.1, 0x7f.1, 127.1), IPv6
 *    literals that carry an IPv4 address (mapped, NAT64, 6to4, Teredo),
 *    names, schemes, credentials, ports, and allow_hosts names, addresses
 *    and CIDRs; plus a differential run of random IPv4 addresses in several
 *    spellings against a reference range table written here.
 *  - ssrf_addr_allowed() on sockaddr_in / sockaddr_in6 values.
 *  - conf: allow_hosts entries and tenants' callback_url at load time.
 *  - upstream: a real event loop, an evhttp listener on 127.0.0.1:0 that
 *    counts connections, and transfers through upstream_start() with the
 *    filter refusing or allowing 127.0.0.1. A refused transfer must end
 *    UPSTREAM_ERR_NOT_SENT without the listener ever seeing a connection;
 *    a name whose text is allow-listed but that resolves to loopback
 *    (localhost) is still refused at connect time (the DNS-rebinding case).
 *
 * No external network: every connection goes to 127.0.0.1.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "app.h"
#include "conf.h"
#include "crypto.h"
#include "ssrf.h"
#include "upstream.h"

/* ssrf.c's reasons, as the API and conf report them */
#define WHY_ABSOLUTE "must be an absolute https URL"
#define WHY_SCHEME "must be an https URL"
#define WHY_CREDENTIALS "must not carry credentials"
#define WHY_PORT "must have a port between 1 and 65535"
#define WHY_HOST "must have a valid host name or address"
#define WHY_ADDRESS "must not point at a loopback, private, link-local or reserved address"
#define WHY_NAME "must not name a local or cloud metadata host"

#define MAX_ALLOW 8

/* A conf with only the callbacks policy set (all ssrf.c reads). */
struct policy {
    struct conf conf;
    char *allow[MAX_ALLOW];
    struct app app;
};

/* allow: NULL or a NULL-terminated list of allow_hosts entries. */
static void
policy_init(struct policy *p, int allow_http, const char *const *allow)
{
    size_t n = 0;

    memset(p, 0, sizeof(*p));
    p->conf.callbacks.allow_http = allow_http;
    for (; allow != NULL && allow[n] != NULL; n++) {
        cr_assert_lt(n, MAX_ALLOW);
        p->allow[n] = (char *)allow[n];
    }
    p->conf.callbacks.allow_hosts = n > 0 ? p->allow : NULL;
    p->conf.callbacks.nallow_hosts = n;
    p->app.conf = &p->conf;
}

/* ------------------------------------------------------------------------ */
/* ssrf_check_url                                                            */

struct url_case {
    const char *url;
    const char *why; /* NULL: allowed */
};

static void
check_urls(int allow_http, const char *const *allow, const struct url_case *cases, size_t n)
{
    struct policy p;
    size_t i;

    policy_init(&p, allow_http, allow);
    for (i = 0; i < n; i++) {
        const char *why = "(not set)";
        int rc = ssrf_check_url(&p.conf, cases[i].url, &why);

        if (cases[i].why == NULL) {
            cr_expect_eq(rc, 0, "%s: refused (%s), want allowed", cases[i].url, why);
            cr_expect_null(why, "%s: why set on success", cases[i].url);
        } else {
            cr_expect_eq(rc, -1, "%s: allowed, want \"%s\"", cases[i].url, cases[i].why);
            cr_expect(why != NULL && strcmp(why, cases[i].why) == 0, "%s: why \"%s\", want \"%s\"",
                      cases[i].url, why != NULL ? why : "(null)", cases[i].why);
        }
    }
}

#define CHECK_URLS(http, allow, cases)                                                             \
    check_urls(http, allow, cases, sizeof(cases) / sizeof(cases[0]))

Test(ssrf_url, refused_ipv4_ranges)
{
    static const struct url_case cases[] = {
        {"https://0.0.0.0/", WHY_ADDRESS},
        {"https://0.255.255.255/", WHY_ADDRESS},
        {"https://10.0.0.1/hook", WHY_ADDRESS},
        {"https://10.255.255.255/", WHY_ADDRESS},
        {"https://100.64.0.1/", WHY_ADDRESS},
        {"https://100.127.255.255/", WHY_ADDRESS},
        {"https://127.0.0.1/", WHY_ADDRESS},
        {"https://127.255.255.254:8443/x", WHY_ADDRESS},
        {"https://169.254.169.254/latest/meta-data/", WHY_ADDRESS},
        {"https://169.254.0.1/", WHY_ADDRESS},
        {"https://172.16.0.1/", WHY_ADDRESS},
        {"https://172.31.255.255/", WHY_ADDRESS},
        {"https://192.0.0.1/", WHY_ADDRESS},
        {"https://192.0.2.255/", WHY_ADDRESS},
        {"https://192.168.1.1/", WHY_ADDRESS},
        {"https://198.18.0.1/", WHY_ADDRESS},
        {"https://198.19.255.255/", WHY_ADDRESS},
        {"https://198.51.100.65/", WHY_ADDRESS},
        {"https://203.0.113.6/", WHY_ADDRESS},
        {"https://224.0.0.1/", WHY_ADDRESS},
        {"https://239.255.255.250/", WHY_ADDRESS},
        {"https://240.0.0.1/", WHY_ADDRESS},
        {"https://250.10.20.30/", WHY_ADDRESS},
        {"https://255.255.255.255/", WHY_ADDRESS},
    };

    CHECK_URLS(0, NULL, cases);
}

Test(ssrf_url, allowed_ipv4_neighbours)
{
    /* the first address outside each refused range, on both sides */
    static const struct url_case cases[] = {
        {"https://1.0.0.0/", NULL},      {"https://9.255.255.255/", NULL},
        {"https://11.0.0.0/", NULL},     {"https://100.63.255.255/", NULL},
        {"https://100.128.0.0/", NULL},  {"https://126.255.255.255/", NULL},
        {"https://128.0.0.0/", NULL},    {"https://169.253.255.255/", NULL},
        {"https://169.255.0.0/", NULL},  {"https://172.15.255.255/", NULL},
        {"https://172.32.0.0/", NULL},   {"https://192.0.1.0/", NULL},
        {"https://192.0.3.0/", NULL},    {"https://192.167.255.255/", NULL},
        {"https://192.169.0.0/", NULL},  {"https://198.17.255.255/", NULL},
        {"https://198.20.0.0/", NULL},   {"https://198.51.99.255/", NULL},
        {"https://198.51.101.0/", NULL}, {"https://203.0.112.255/", NULL},
        {"https://203.0.114.0/", NULL},  {"https://223.255.255.255/", NULL},
        {"https://1.1.1.1/", NULL},      {"https://8.8.8.8:8443/hook?x=1", NULL},
    };

    CHECK_URLS(0, NULL, cases);
}

Test(ssrf_url, odd_ipv4_spellings)
{
    /* every spelling inet_aton (and so getaddrinfo and libcurl) reads as an address */
    static const struct url_case cases[] = {
        {"https://2130706433/", WHY_ADDRESS},          /* 127.0.0.1 as one number */
        {"https://0177.0.0.1/", WHY_ADDRESS},          /* octal */
        {"https://0x7f.1/", WHY_ADDRESS},              /* hex, two parts */
        {"https://0X7F.0.0.1/", WHY_ADDRESS},          /* upper-case hex */
        {"https://0x7f000001/", WHY_ADDRESS},          /* one hex number */
        {"https://0x7f.0.0.0x1/", WHY_ADDRESS},        /* mixed */
        {"https://127.1/", WHY_ADDRESS},               /* two parts */
        {"https://127.0.1/", WHY_ADDRESS},             /* three parts */
        {"https://127.0.0.1./", WHY_ADDRESS},          /* the root dot */
        {"https://0/", WHY_ADDRESS},                   /* 0.0.0.0 */
        {"https://0251.0376.0251.0376/", WHY_ADDRESS}, /* 169.254.169.254 in octal */
        {"https://0xa9fea9fe/", WHY_ADDRESS},          /* 169.254.169.254 in hex */
        {"https://2852039166/", WHY_ADDRESS},          /* 169.254.169.254 in decimal */
        {"https://167772161/", WHY_ADDRESS},           /* 10.0.0.1 */
        {"https://134744072/", NULL},                  /* 8.8.8.8 */
        {"https://0x08080808/", NULL},                 /* 8.8.8.8 */
        /* numeric-looking hosts that are no address: parsers disagree, refuse */
        {"https://08.1.1.1/", WHY_HOST},
        {"https://4294967296/", WHY_HOST},
        {"https://1.2.3.256/", WHY_HOST},
        {"https://example.0x7g/", NULL}, /* not hex: an ordinary name */
        {"https://a.0x/", WHY_HOST},
    };

    CHECK_URLS(0, NULL, cases);
}

Test(ssrf_url, ipv6_literals)
{
    static const struct url_case cases[] = {
        {"https://[::1]/", WHY_ADDRESS},
        {"https://[::]/", WHY_ADDRESS},
        {"https://[0:0:0:0:0:0:0:1]:8443/", WHY_ADDRESS},
        {"https://[::127.0.0.1]/", WHY_ADDRESS},      /* IPv4-compatible (deprecated) */
        {"https://[::8.8.8.8]/", WHY_ADDRESS},        /* ditto: no such thing on the internet */
        {"https://[::ffff:127.0.0.1]/", WHY_ADDRESS}, /* IPv4-mapped */
        {"https://[::ffff:7f00:1]/", WHY_ADDRESS},
        {"https://[::FFFF:A9FE:A9FE]/", WHY_ADDRESS},
        {"https://[::ffff:10.0.0.1]/", WHY_ADDRESS},
        {"https://[::ffff:0:7f00:1]/", WHY_ADDRESS},    /* SIIT IPv4-translated */
        {"https://[64:ff9b::a9fe:a9fe]/", WHY_ADDRESS}, /* NAT64 of 169.254.169.254 */
        {"https://[64:ff9b::127.0.0.1]/", WHY_ADDRESS},
        {"https://[64:ff9b::c0a8:101]/", WHY_ADDRESS},  /* 192.168.1.1 */
        {"https://[64:ff9b:1::808:808]/", WHY_ADDRESS}, /* local-use NAT64 prefix */
        {"https://[2002:a9fe:a9fe::]/", WHY_ADDRESS},   /* 6to4 of 169.254.169.254 */
        {"https://[2002:7f00:1::1]/", WHY_ADDRESS},
        {"https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", WHY_ADDRESS}, /* Teredo, 127.0.0.1 */
        {"https://[fc00::1]/", WHY_ADDRESS},
        {"https://[fd00:ec2::254]/", WHY_ADDRESS}, /* AWS metadata over IPv6 */
        {"https://[fdff:ffff::1]/", WHY_ADDRESS},
        {"https://[fe80::1]/", WHY_ADDRESS},
        {"https://[febf:ffff::1]/", WHY_ADDRESS},
        {"https://[fec0::1]/", WHY_ADDRESS},
        {"https://[ff02::1]/", WHY_ADDRESS},
        {"https://[ff0e::1]/", WHY_ADDRESS},
        {"https://[2001:db8::1]/", WHY_ADDRESS},
        {"https://[2001:db8:ffff::1]/", WHY_ADDRESS},
        /* global unicast, and forms that carry a public IPv4 address */
        {"https://[2001:4860:4860::8888]/", NULL},
        {"https://[2606:4700::1111]:8443/x", NULL},
        {"https://[::ffff:8.8.8.8]/", NULL},
        {"https://[::ffff:0:808:808]/", NULL},
        {"https://[64:ff9b::808:808]/", NULL},
        {"https://[2002:808:808::1]/", NULL},
        {"https://[2001:0:4136:e378:8000:63bf:f7f7:f7f7]/", NULL}, /* Teredo, 8.8.8.8 */
        {"https://[2001:db9::1]/", NULL},
        {"https://[fbff::1]/", NULL},
        {"https://[fe7f::1]/", NULL},
        /* not a plain address */
        {"https://[fe80::1%25eth0]/", WHY_ABSOLUTE}, /* zone ids: libevent refuses them */
        {"https://[v1.x]/", WHY_HOST},
        {"https://[::1/", WHY_ABSOLUTE},
        {"https://[127.0.0.1]/", WHY_ABSOLUTE},
    };

    CHECK_URLS(0, NULL, cases);
}

Test(ssrf_url, names)
{
    static const struct url_case cases[] = {
        {"https://localhost/", WHY_NAME},
        {"https://LOCALHOST:8443/", WHY_NAME},
        {"https://localhost./", WHY_NAME},
        {"https://app.localhost/", WHY_NAME},
        {"https://a.b.LocalHost/", WHY_NAME},
        {"https://localhost.localdomain/", WHY_NAME},
        {"https://ip6-localhost/", WHY_NAME},
        {"https://ip6-loopback/", WHY_NAME},
        {"https://metadata/", WHY_NAME},
        {"https://metadata.google.internal/computeMetadata/v1/", WHY_NAME},
        {"https://metadata.google.internal./", WHY_NAME},
        {"https://instance-data/", WHY_NAME},
        {"https://instance-data.ec2.internal/", WHY_NAME},
        {"https://db.corp.internal/", WHY_NAME},
        /* names a resolver may send anywhere: the connect-time check judges them */
        {"https://hooks.example.com/callgate", NULL},
        {"https://HOOKS.Example.COM/", NULL},
        {"https://hooks.example.com./", NULL},
        {"https://localhost.example.com/", NULL},
        {"https://internal.example.com/", NULL},
        {"https://my-internal/", NULL},
        {"https://metadata.example/", NULL},
        {"https://under_score.example/", NULL},
        {"https://xn--nxasmq6b.example/", NULL},
        /* not a host name */
        {"https://%31%32%37.0.0.1/", WHY_HOST}, /* libcurl would decode it to 127.0.0.1 */
        {"https://%6c%6f%63%61%6c%68%6f%73%74/", WHY_HOST},
        {"https://a..b/", WHY_HOST},
        {"https://.example.com/", WHY_HOST},
        {"https://exa$mple.com/", WHY_HOST},
    };

    CHECK_URLS(0, NULL, cases);
}

Test(ssrf_url, form)
{
    static const struct url_case cases[] = {
        {"https://hooks.example.com/", NULL},
        {"HTTPS://hooks.example.com/", NULL},
        {"https://hooks.example.com:1/", NULL},
        {"https://hooks.example.com:65535/", NULL},
        {"https://hooks.example.com:443/x?y=1#z", NULL},
        {"http://hooks.example.com/", WHY_SCHEME},
        {"HTTP://hooks.example.com/", WHY_SCHEME},
        {"ftp://hooks.example.com/", WHY_SCHEME},
        {"gopher://hooks.example.com/", WHY_SCHEME},
        {"dict://hooks.example.com:11211/", WHY_SCHEME},
        {"ws://hooks.example.com/", WHY_SCHEME},
        {"file:///etc/passwd", WHY_ABSOLUTE},
        {"file://localhost/etc/passwd", WHY_SCHEME},
        {"https://user:pass@hooks.example.com/", WHY_CREDENTIALS},
        {"https://user@hooks.example.com/", WHY_CREDENTIALS},
        {"https://:@hooks.example.com/", WHY_CREDENTIALS},
        {"https://hooks.example.com@127.0.0.1/", WHY_CREDENTIALS},
        {"https://hooks.example.com:0/", WHY_PORT},
        {"https://hooks.example.com:65536/", WHY_ABSOLUTE},
        {"https://hooks.example.com:99999/", WHY_ABSOLUTE},
        {"https://hooks.example.com:-1/", WHY_ABSOLUTE},
        {"https://hooks.example.com:x/", WHY_ABSOLUTE},
        {"/relative/path", WHY_ABSOLUTE},
        {"hooks.example.com/x", WHY_ABSOLUTE},
        {"", WHY_ABSOLUTE},
        {"https://", WHY_ABSOLUTE},
        {"https:///x", WHY_ABSOLUTE},
        {"https:/hooks.example.com/x", WHY_ABSOLUTE},
        {"https://hooks example.com/", WHY_ABSOLUTE},
        {"https://evil.com\\@127.0.0.1/", WHY_ABSOLUTE},
        {"https://127.0.0.1#@hooks.example.com/", WHY_ADDRESS},
        {"https://hooks.example.com/\r\nX: y", WHY_ABSOLUTE},
    };

    CHECK_URLS(0, NULL, cases);
}

Test(ssrf_url, null_url_and_conf)
{
    const char *why = NULL;

    cr_assert_eq(ssrf_check_url(NULL, "https://hooks.example.com/", &why), 0);
    cr_assert_eq(ssrf_check_url(NULL, "http://hooks.example.com/", &why), -1);
    cr_assert_str_eq(why, WHY_SCHEME);
    cr_assert_eq(ssrf_check_url(NULL, NULL, &why), -1);
    cr_assert_str_eq(why, WHY_ABSOLUTE);
}

Test(ssrf_url, allow_http)
{
    static const struct url_case cases[] = {
        {"http://hooks.example.com/", NULL},
        {"HTTP://hooks.example.com:8080/x", NULL},
        {"https://hooks.example.com/", NULL},
        {"ftp://hooks.example.com/", WHY_SCHEME},
        /* http does not open the address policy */
        {"http://127.0.0.1:9000/_sink/acme", WHY_ADDRESS},
        {"http://localhost/", WHY_NAME},
        {"http://user:pw@hooks.example.com/", WHY_CREDENTIALS},
    };

    CHECK_URLS(1, NULL, cases);
}

Test(ssrf_url, allow_hosts_address)
{
    static const char *const allow[] = {"127.0.0.1", "::1", NULL};
    static const struct url_case cases[] = {
        {"https://127.0.0.1:9000/_sink/acme", NULL},
        {"https://2130706433/", NULL}, /* the same address, spelt otherwise */
        {"https://0x7f.1/", NULL},
        {"https://127.0.0.1./", NULL},
        {"https://[::ffff:127.0.0.1]/", NULL},
        {"https://[::1]:8443/", NULL},
        {"https://[0::1]/", NULL},
        {"https://127.0.0.2/", WHY_ADDRESS},
        {"https://[::2]/", WHY_ADDRESS},
        {"https://10.0.0.1/", WHY_ADDRESS},
        {"https://localhost/", WHY_NAME},  /* an address entry never allows a name */
        {"http://127.0.0.1/", WHY_SCHEME}, /* nor another scheme */
        {"https://u@127.0.0.1/", WHY_CREDENTIALS},
    };

    CHECK_URLS(0, allow, cases);
}

Test(ssrf_url, allow_hosts_cidr)
{
    static const char *const allow[] = {"127.0.0.0/8", "198.18.0.0/30", "fd00::/8", NULL};
    static const struct url_case cases[] = {
        {"https://127.0.0.1/", NULL},          {"https://127.255.255.254/", NULL},
        {"https://198.18.0.0/", NULL},         {"https://198.18.0.3/", NULL},
        {"https://198.18.0.4/", WHY_ADDRESS},  {"https://198.18.3.2/", WHY_ADDRESS},
        {"https://[fd00:ec2::254]/", NULL},    {"https://[fc00::1]/", WHY_ADDRESS},
        {"https://[::ffff:127.1.2.3]/", NULL}, {"https://10.0.0.1/", WHY_ADDRESS},
    };

    CHECK_URLS(0, allow, cases);
}

Test(ssrf_url, allow_hosts_everything)
{
    static const char *const allow[] = {"0.0.0.0/0", "::/0", NULL};
    static const struct url_case cases[] = {
        {"https://10.0.0.1/", NULL},
        {"https://[fe80::1]/", NULL},
        {"https://169.254.169.254/", NULL},
        {"https://localhost/", WHY_NAME},
    };

    CHECK_URLS(0, allow, cases);
}

Test(ssrf_url, allow_hosts_name)
{
    static const char *const allow[] = {"localhost", "Sink.Internal.", NULL};
    static const struct url_case cases[] = {
        {"https://localhost:9000/", NULL},     {"https://LocalHost./", NULL},
        {"https://sink.internal/", NULL},      {"https://SINK.internal./x", NULL},
        {"https://other.internal/", WHY_NAME}, {"https://a.localhost/", WHY_NAME},
        {"https://127.0.0.1/", WHY_ADDRESS}, /* a name entry never allows an address */
    };

    CHECK_URLS(0, allow, cases);
}

/* ------------------------------------------------------------------------ */
/* random IPv4 addresses: text check, connect check and a reference agree    */

/* The reference: the IPv4 ranges API.md and RELIABILITY.md ask to refuse. */
static int
ref_v4_allowed(uint32_t a)
{
    static const struct {
        uint32_t net;
        int bits;
    } deny[] = {
        {0x00000000, 8},  {0x0a000000, 8},  {0x64400000, 10}, {0x7f000000, 8},  {0xa9fe0000, 16},
        {0xac100000, 12}, {0xc0000000, 24}, {0xc0000200, 24}, {0xc0a80000, 16}, {0xc6120000, 15},
        {0xc6336400, 24}, {0xcb007100, 24}, {0xe0000000, 4},  {0xf0000000, 4},
    };
    size_t i;

    for (i = 0; i < sizeof(deny) / sizeof(deny[0]); i++) {
        uint32_t mask = 0xffffffffu << (32 - deny[i].bits);

        if ((a & mask) == deny[i].net) {
            return 0;
        }
    }
    return 1;
}

static uint32_t
rnd32(uint64_t *s)
{
    /* xorshift64*: deterministic, so a failure reproduces */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (uint32_t)((*s * 0x2545F4914F6CDD1DULL) >> 32);
}

static int url_ok(const struct conf *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
url_ok(const struct conf *c, const char *fmt, ...)
{
    char url[128];
    const char *why;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(url, sizeof(url), fmt, ap);
    va_end(ap);
    return ssrf_check_url(c, url, &why) == 0;
}

Test(ssrf_diff, random_ipv4_in_every_spelling)
{
    struct policy p;
    uint64_t seed = 0x5eed5eed12345678ULL;
    int i, refused = 0;

    policy_init(&p, 0, NULL);
    for (i = 0; i < 40000; i++) {
        /* half uniform, half inside the interesting low/private blocks */
        uint32_t a = rnd32(&seed);
        unsigned b0, b1, b2, b3;
        int want;
        struct sockaddr_in sin;
        struct sockaddr_in6 sin6;

        if (i % 2 == 1) {
            static const uint32_t nets[] = {0x00000000, 0x0a000000, 0x64400000, 0x7f000000,
                                            0xa9fe0000, 0xac100000, 0xc0000000, 0xc0a80000,
                                            0xc6120000, 0xc6336400, 0xcb007100, 0xe0000000};
            a = nets[rnd32(&seed) % (sizeof(nets) / sizeof(nets[0]))] ^ (a & 0x003fffff);
        }
        want = ref_v4_allowed(a);
        refused += !want;
        b0 = a >> 24, b1 = (a >> 16) & 0xff, b2 = (a >> 8) & 0xff, b3 = a & 0xff;

        cr_assert_eq(url_ok(&p.conf, "https://%u.%u.%u.%u/", b0, b1, b2, b3), want, "dotted %08x",
                     a);
        cr_assert_eq(url_ok(&p.conf, "https://%u/", a), want, "decimal %08x", a);
        cr_assert_eq(url_ok(&p.conf, "https://0x%x/", a), want, "hex %08x", a);
        cr_assert_eq(url_ok(&p.conf, "https://0%o.0%o.0%o.0%o/", b0, b1, b2, b3), want,
                     "octal %08x", a);
        cr_assert_eq(url_ok(&p.conf, "https://%u.%u/", b0, a & 0xffffff), want, "a.b %08x", a);
        cr_assert_eq(url_ok(&p.conf, "https://%u.%u.%u/", b0, b1, a & 0xffff), want, "a.b.c %08x",
                     a);
        cr_assert_eq(url_ok(&p.conf, "https://[::ffff:%u.%u.%u.%u]/", b0, b1, b2, b3), want,
                     "mapped %08x", a);
        cr_assert_eq(url_ok(&p.conf, "https://[64:ff9b::%x:%x]/", a >> 16, a & 0xffff), want,
                     "nat64 %08x", a);
        cr_assert_eq(url_ok(&p.conf, "https://[2002:%x:%x::1]/", a >> 16, a & 0xffff), want,
                     "6to4 %08x", a);

        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_addr.s_addr = htonl(a);
        cr_assert_eq(ssrf_addr_allowed((struct sockaddr *)&sin, &p.app), want, "sockaddr %08x", a);
        memset(&sin6, 0, sizeof(sin6));
        sin6.sin6_family = AF_INET6;
        sin6.sin6_addr.s6_addr[10] = 0xff;
        sin6.sin6_addr.s6_addr[11] = 0xff;
        memcpy(&sin6.sin6_addr.s6_addr[12], &sin.sin_addr.s_addr, 4);
        cr_assert_eq(ssrf_addr_allowed((struct sockaddr *)&sin6, &p.app), want,
                     "mapped sockaddr %08x", a);
    }
    cr_assert_gt(refused, 10000, "the sample should hit the refused ranges often");
}

/* ------------------------------------------------------------------------ */
/* ssrf_addr_allowed                                                         */

struct addr_case {
    const char *addr;
    int allowed;
};

static int
addr_allowed(struct policy *p, const char *text)
{
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;

    memset(&sin, 0, sizeof(sin));
    memset(&sin6, 0, sizeof(sin6));
    sin.sin_port = htons(443);
    sin6.sin6_port = htons(443);
    if (inet_pton(AF_INET, text, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        return ssrf_addr_allowed((struct sockaddr *)&sin, &p->app);
    }
    cr_assert_eq(inet_pton(AF_INET6, text, &sin6.sin6_addr), 1, "bad test address %s", text);
    sin6.sin6_family = AF_INET6;
    return ssrf_addr_allowed((struct sockaddr *)&sin6, &p->app);
}

static void
check_addrs(const char *const *allow, const struct addr_case *cases, size_t n)
{
    struct policy p;
    size_t i;

    policy_init(&p, 0, allow);
    for (i = 0; i < n; i++) {
        cr_expect_eq(addr_allowed(&p, cases[i].addr), cases[i].allowed, "%s: want %s",
                     cases[i].addr, cases[i].allowed ? "allowed" : "refused");
    }
}

#define CHECK_ADDRS(allow, cases) check_addrs(allow, cases, sizeof(cases) / sizeof(cases[0]))

Test(ssrf_addr, policy)
{
    static const struct addr_case cases[] = {
        {"127.0.0.1", 0},
        {"127.8.9.10", 0},
        {"0.0.0.0", 0},
        {"10.1.2.3", 0},
        {"100.64.0.1", 0},
        {"169.254.169.254", 0},
        {"172.16.0.1", 0},
        {"192.0.0.8", 0},
        {"192.0.2.1", 0},
        {"192.168.0.1", 0},
        {"198.18.3.2", 0},
        {"198.51.100.1", 0},
        {"203.0.113.1", 0},
        {"224.0.0.251", 0},
        {"255.255.255.255", 0},
        {"::", 0},
        {"::1", 0},
        {"::ffff:127.0.0.1", 0},
        {"::ffff:169.254.169.254", 0},
        {"64:ff9b::a9fe:a9fe", 0},
        {"2002:a9fe:a9fe::", 0},
        {"fc00::1", 0},
        {"fd00:ec2::254", 0},
        {"fe80::1", 0},
        {"ff02::1", 0},
        {"2001:db8::1", 0},
        {"8.8.8.8", 1},
        {"1.1.1.1", 1},
        {"93.184.216.34", 1},
        {"2001:4860:4860::8888", 1},
        {"::ffff:8.8.8.8", 1},
        {"64:ff9b::808:808", 1},
        {"2a00:1450:4001::200e", 1},
    };

    CHECK_ADDRS(NULL, cases);
}

Test(ssrf_addr, allow_hosts)
{
    static const char *const allow[] = {"127.0.0.1", "198.18.0.0/30", "::1", "localhost", NULL};
    static const struct addr_case cases[] = {
        {"127.0.0.1", 1}, {"::ffff:127.0.0.1", 1}, /* the same address on an IPv6 socket */
        {"127.0.0.2", 0}, {"198.18.0.1", 1},        {"198.18.0.3", 1}, {"198.18.0.4", 0},
        {"::1", 1},       {"::ffff:198.18.0.2", 1}, {"10.0.0.1", 0},   {"8.8.8.8", 1},
    };

    CHECK_ADDRS(allow, cases);
}

Test(ssrf_addr, name_entries_cannot_apply_at_connect_time)
{
    static const char *const allow[] = {"localhost", "sink.internal", NULL};
    static const struct addr_case cases[] = {
        {"127.0.0.1", 0},
        {"::1", 0},
    };

    CHECK_ADDRS(allow, cases);
}

Test(ssrf_addr, odd_arguments)
{
    struct sockaddr_un sun;
    struct sockaddr_in sin;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    cr_assert_eq(ssrf_addr_allowed((struct sockaddr *)&sun, NULL), 0);
    cr_assert_eq(ssrf_addr_allowed(NULL, NULL), 0);
    /* no app: the policy alone */
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(0x08080808);
    cr_assert_eq(ssrf_addr_allowed((struct sockaddr *)&sin, NULL), 1);
    sin.sin_addr.s_addr = htonl(0x7f000001);
    cr_assert_eq(ssrf_addr_allowed((struct sockaddr *)&sin, NULL), 0);
}

/* ------------------------------------------------------------------------ */
/* conf: allow_hosts entries and tenants' callback_url                        */

#define TEST_SECRET "whsec_MDEyMzQ1Njc4OWFiY2RlZmdoaWo="

/* Load a minimal configuration with callbacks and a tenant callback_url spliced in. */
static struct conf *
load_conf(const char *callbacks, const char *callback_url, char **errors)
{
    char hash[CRYPTO_SHA256_HEX_LEN + 1], text[2048], cb[600] = "";

    crypto_sha256_hex("k", 1, hash);
    if (callback_url != NULL) {
        snprintf(cb, sizeof(cb), "\"callback_url\": \"%s\",", callback_url);
    }
    snprintf(text, sizeof(text),
             "{\"listen\": \"127.0.0.1:8080\", \"callbacks\": %s,"
             " \"vendors\": {\"clouddialer\": {\"base_url\": \"https://vendor.test\","
             " \"api_key\": \"k\", \"from_number\": \"+919800000000\"}},"
             " \"tenants\": [{\"id\": \"acme\", \"api_key_sha256\": \"%s\","
             " \"default_country\": \"IN\", %s \"webhook_secret\": \"%s\","
             " \"vendors\": [\"clouddialer\"]}]}",
             callbacks, hash, cb, TEST_SECRET);
    *errors = NULL;
    return conf_load_string(text, "test.json", errors);
}

static void
expect_conf_error(const char *callbacks, const char *callback_url, const char *want)
{
    char *errors = NULL;
    struct conf *c = load_conf(callbacks, callback_url, &errors);

    cr_expect_null(c, "loaded, want: %s", want);
    cr_expect(errors != NULL && strstr(errors, want) != NULL, "errors:\n%s\nwant: %s",
              errors != NULL ? errors : "(none)", want);
    if (c != NULL) {
        conf_unref(c);
    }
    free(errors);
}

static void
expect_conf_ok(const char *callbacks, const char *callback_url)
{
    char *errors = NULL;
    struct conf *c = load_conf(callbacks, callback_url, &errors);

    cr_expect_not_null(c, "%s / %s refused:\n%s", callbacks, callback_url ? callback_url : "-",
                       errors != NULL ? errors : "(none)");
    if (c != NULL) {
        conf_unref(c);
    }
    free(errors);
}

Test(ssrf_conf, allow_hosts_entries)
{
    static const char *const good[] = {
        "\"127.0.0.1\"",      "\"::1\"",           "\"127.0.0.0/8\"",      "\"198.18.0.0/30\"",
        "\"0.0.0.0/0\"",      "\"::/0\"",          "\"fd00::/8\"",         "\"::ffff:127.0.0.1\"",
        "\"10.0.0.1/32\"",    "\"fe80::/128\"",    "\"localhost\"",        "\"sink.internal\"",
        "\"Hooks.Example.\"", "\"tenant-a.test\"", "\"under_score.test\"", "\"a1.example.0x7g\"",
    };
    static const char *const bad[] = {
        "127.0.0.1/33",   "::1/129",    "127.0.0.1/",  "127.0.0.1/-1",  "127.0.0.1/+8",
        "127.0.0.1/08x",  "/8",         "300.1.1.1",   "10.0.0.256",    "1.2.3",
        "0x7f.1",         "2130706433", "localhost/8", "exa mple.com",  "a..b",
        ".example.com",   "[::1]",      "http://x",    "*.example.com", "10.0.0.0/8/8",
        "127.0.0.1/1234", "host:443",
    };
    size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char cb[200];

        snprintf(cb, sizeof(cb), "{\"allow_hosts\": [%s]}", good[i]);
        expect_conf_ok(cb, NULL);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char cb[200], want[200];

        snprintf(cb, sizeof(cb), "{\"allow_hosts\": [\"127.0.0.1\", \"%s\"]}", bad[i]);
        snprintf(want, sizeof(want),
                 "test.json: callbacks.allow_hosts: \"%s\" is not a host name, address or CIDR\n",
                 bad[i]);
        expect_conf_error(cb, NULL, want);
    }
    /* a single string, as the key also allows */
    expect_conf_error("{\"allow_hosts\": \"10.0.0.0/40\"}", NULL,
                      "test.json: callbacks.allow_hosts: \"10.0.0.0/40\" is not a host name, "
                      "address or CIDR\n");
}

Test(ssrf_conf, callback_url_policy_at_load)
{
    expect_conf_ok("{}", "https://hooks.example.com/callgate");
    expect_conf_error("{}", "https://127.0.0.1/hook",
                      "test.json: tenants.acme.callback_url: " WHY_ADDRESS "\n");
    expect_conf_error("{}", "https://0x7f.1/hook",
                      "test.json: tenants.acme.callback_url: " WHY_ADDRESS "\n");
    expect_conf_error("{}", "https://[::ffff:169.254.169.254]/",
                      "test.json: tenants.acme.callback_url: " WHY_ADDRESS "\n");
    expect_conf_error("{}", "https://metadata.google.internal/",
                      "test.json: tenants.acme.callback_url: " WHY_NAME "\n");
    expect_conf_error("{}", "https://hooks.example.com:0/",
                      "test.json: tenants.acme.callback_url: " WHY_PORT "\n");
    /* the existing texts stay first */
    expect_conf_error("{}", "http://127.0.0.1/",
                      "test.json: tenants.acme.callback_url: must be an https URL "
                      "(callbacks.allow_http is off)\n");
    expect_conf_error("{}", "https://u:p@127.0.0.1/",
                      "test.json: tenants.acme.callback_url: must not carry credentials\n");
    /* allow-listed */
    expect_conf_ok("{\"allow_hosts\": [\"127.0.0.1\"]}", "https://127.0.0.1:9443/hook");
    expect_conf_ok("{\"allow_hosts\": \"198.18.3.0/30\"}", "https://198.18.3.2:9443/hook");
    expect_conf_ok("{\"allow_hosts\": [\"sink.internal\"]}", "https://sink.internal/hook");
    /* tests and demos (allow_http): only the connect-time check judges the address */
    expect_conf_ok("{\"allow_http\": true}", "http://127.0.0.1:9000/_sink/acme");
}

/* ------------------------------------------------------------------------ */
/* the connect-time filter through upstream                                  */

/* A listener that counts what reaches it. */
static struct {
    struct evhttp *http;
    int port;
    int conns;
    int requests;
} ls;

/* A transfer's completion. */
struct done {
    int calls;
    enum upstream_result res;
    long status;
    char error[256];
};

/* What a recording filter saw. */
static struct {
    int calls;
    int v4_loopback; /* 127.0.0.1 was asked about */
    int refuse_v6;   /* refuse every IPv6 address */
} rec;

static struct event_base *base;

static void
ls_handle(struct evhttp_request *req, void *arg)
{
    struct evbuffer *b = evbuffer_new();

    ls.requests++;
    evbuffer_add_printf(b, "ok");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

static struct bufferevent *
ls_bevcb(struct event_base *b, void *arg)
{
    ls.conns++;
    return bufferevent_socket_new(b, -1, BEV_OPT_CLOSE_ON_FREE);
}

static void
setup(void)
{
    struct evhttp_bound_socket *h;
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);

    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    base = event_base_new();
    cr_assert_not_null(base);
    memset(&ls, 0, sizeof(ls));
    memset(&rec, 0, sizeof(rec));
    ls.http = evhttp_new(base);
    cr_assert_not_null(ls.http);
    evhttp_set_gencb(ls.http, ls_handle, NULL);
    evhttp_set_bevcb(ls.http, ls_bevcb, NULL);
    h = evhttp_bind_socket_with_handle(ls.http, "127.0.0.1", 0);
    cr_assert_not_null(h);
    cr_assert_eq(getsockname(evhttp_bound_socket_get_fd(h), (struct sockaddr *)&sa, &len), 0);
    ls.port = ntohs(sa.sin_port);
}

static void
teardown(void)
{
    evhttp_free(ls.http);
    event_base_free(base);
    curl_global_cleanup();
}

static void
on_done(enum upstream_result res, const struct upstream_response *resp, void *arg)
{
    struct done *d = arg;

    d->calls++;
    d->res = res;
    d->status = resp->status;
    snprintf(d->error, sizeof(d->error), "%s", resp->error);
}

static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* One transfer to host:listener-port through up; waits for its completion. */
static void
fetch(struct upstream *up, const char *host, struct done *d)
{
    char url[128];
    struct upstream_request req;
    double deadline = now_ms() + 10000.0;

    snprintf(url, sizeof(url), "http://%s:%d/hook", host, ls.port);
    memset(d, 0, sizeof(*d));
    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.url = url;
    req.body = "{}";
    req.body_len = 2;
    req.connect_timeout_ms = 2000;
    req.timeout_ms = 5000;
    cr_assert_not_null(upstream_start(up, &req, on_done, d));
    while (d->calls == 0 && now_ms() < deadline) {
        event_base_loop(base, EVLOOP_ONCE);
    }
    cr_assert_eq(d->calls, 1, "no completion for %s", url);
    /* let the listener see anything still in flight before counting */
    event_base_loop(base, EVLOOP_NONBLOCK);
}

static struct upstream *
up_with(upstream_addr_filter filter, void *arg)
{
    struct upstream_opts opts;
    struct upstream *up;

    memset(&opts, 0, sizeof(opts));
    opts.addr_filter = filter;
    opts.addr_filter_arg = arg;
    up = upstream_new(base, &opts);
    cr_assert_not_null(up);
    return up;
}

TestSuite(ssrf_upstream, .init = setup, .fini = teardown, .timeout = 30);

Test(ssrf_upstream, refused_address_never_connects)
{
    struct policy p;
    struct upstream *up;
    struct done d;

    policy_init(&p, 1, NULL);
    up = up_with(ssrf_addr_allowed, &p.app);
    fetch(up, "127.0.0.1", &d);
    cr_assert_eq(d.res, UPSTREAM_ERR_NOT_SENT, "result %s", upstream_result_text[d.res]);
    cr_assert_str_eq(d.error, "address not allowed: 127.0.0.1");
    cr_assert_eq(d.status, 0);
    cr_assert_eq(ls.conns, 0, "the listener saw a connection");
    cr_assert_eq(ls.requests, 0);
    upstream_free(up);
}

Test(ssrf_upstream, allow_listed_address_connects)
{
    static const char *const allow[] = {"127.0.0.1", NULL};
    struct policy p;
    struct upstream *up;
    struct done d;

    policy_init(&p, 1, allow);
    up = up_with(ssrf_addr_allowed, &p.app);
    fetch(up, "127.0.0.1", &d);
    cr_assert_eq(d.res, UPSTREAM_OK, "result %s: %s", upstream_result_text[d.res], d.error);
    cr_assert_eq(d.status, 200);
    cr_assert_eq(ls.requests, 1);
    upstream_free(up);
}

Test(ssrf_upstream, conf_is_read_at_connect_time)
{
    static const char *const allow[] = {"127.0.0.0/8", NULL};
    struct policy p;
    struct upstream *up;
    struct done d;

    /* the app's conf is consulted on each connect, so a reload applies at once */
    policy_init(&p, 1, NULL);
    up = up_with(ssrf_addr_allowed, &p.app);
    fetch(up, "127.0.0.1", &d);
    cr_assert_eq(d.res, UPSTREAM_ERR_NOT_SENT);
    p.conf.callbacks.allow_hosts = (char **)allow;
    p.conf.callbacks.nallow_hosts = 1;
    fetch(up, "127.0.0.1", &d);
    cr_assert_eq(d.res, UPSTREAM_OK, "result %s: %s", upstream_result_text[d.res], d.error);
    cr_assert_eq(ls.requests, 1);
    upstream_free(up);
}

Test(ssrf_upstream, name_allowed_by_text_is_refused_by_address)
{
    static const char *const allow[] = {"localhost", NULL};
    char url[128];
    const char *why = NULL;
    struct policy p;
    struct upstream *up;
    struct done d;

    /* the URL's text passes (its name is allow-listed) ... */
    policy_init(&p, 1, allow);
    snprintf(url, sizeof(url), "http://localhost:%d/hook", ls.port);
    cr_assert_eq(ssrf_check_url(&p.conf, url, &why), 0, "%s", why);
    /* ... but the name resolves to loopback, which is judged at connect time */
    up = up_with(ssrf_addr_allowed, &p.app);
    fetch(up, "localhost", &d);
    cr_assert_eq(d.res, UPSTREAM_ERR_NOT_SENT, "result %s: %s", upstream_result_text[d.res],
                 d.error);
    cr_assert(strncmp(d.error, "address not allowed: ", 21) == 0, "error %s", d.error);
    cr_assert_eq(ls.conns, 0, "the listener saw a connection");
    upstream_free(up);
}

/* A filter that records what it is asked; refuses IPv6 when rec.refuse_v6. */
static int
recording_filter(const struct sockaddr *sa, void *arg)
{
    rec.calls++;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;

        rec.v4_loopback |= sin->sin_addr.s_addr == htonl(0x7f000001);
        return 1;
    }
    return !rec.refuse_v6;
}

Test(ssrf_upstream, every_address_tried_is_asked)
{
    struct upstream *up;
    struct done d;

    /* localhost may resolve to ::1 and 127.0.0.1; refusing ::1 leaves 127.0.0.1 */
    rec.refuse_v6 = 1;
    up = up_with(recording_filter, NULL);
    fetch(up, "localhost", &d);
    cr_assert_eq(d.res, UPSTREAM_OK, "result %s: %s", upstream_result_text[d.res], d.error);
    cr_assert(rec.v4_loopback, "127.0.0.1 was never asked about");
    cr_assert_geq(rec.calls, 1);
    upstream_free(up);
}

Test(ssrf_upstream, each_new_connection_is_asked)
{
    struct upstream *up;
    struct done d;
    int i;

    up = up_with(recording_filter, NULL);
    for (i = 0; i < 3; i++) {
        fetch(up, "127.0.0.1", &d);
        cr_assert_eq(d.res, UPSTREAM_OK, "result %s: %s", upstream_result_text[d.res], d.error);
    }
    /* reused connections were judged when opened: one question per connection */
    cr_assert_eq(rec.calls, ls.conns, "asked %d times for %d connections", rec.calls, ls.conns);
    cr_assert_eq(ls.requests, 3);
    upstream_free(up);
}

Test(ssrf_upstream, proxy_environment_is_ignored)
{
    struct policy p;
    struct upstream *up;
    struct done d;

    /* a proxy would make libcurl connect to the proxy's address instead */
    setenv("http_proxy", "http://8.8.8.8:3128", 1);
    setenv("HTTPS_PROXY", "http://8.8.8.8:3128", 1);
    setenv("ALL_PROXY", "http://8.8.8.8:3128", 1);
    policy_init(&p, 1, NULL);
    up = up_with(ssrf_addr_allowed, &p.app);
    fetch(up, "127.0.0.1", &d);
    cr_assert_eq(d.res, UPSTREAM_ERR_NOT_SENT);
    cr_assert_str_eq(d.error, "address not allowed: 127.0.0.1");
    upstream_free(up);
    unsetenv("http_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("ALL_PROXY");
}

Test(ssrf_upstream, no_filter_by_default)
{
    struct upstream *up = upstream_new(base, NULL);
    struct done d;

    cr_assert_not_null(up);
    fetch(up, "127.0.0.1", &d);
    cr_assert_eq(d.res, UPSTREAM_OK, "result %s: %s", upstream_result_text[d.res], d.error);
    cr_assert_eq(ls.requests, 1);
    upstream_free(up);
}
