/*
 * ssrf.h: where tenant callback URLs may point (API.md "Webhooks": https,
 * never loopback, private, link-local, CGNAT, metadata or the IPv4-mapped
 * forms of those), checked twice: on the URL's text when it is configured
 * or given with a call, and on every resolved address at connect time
 * (upstream's address filter), so DNS rebinding cannot get around it.
 * conf "callbacks" holds the exceptions: allow_http (tests, demos) and
 * allow_hosts (host names or addresses/CIDRs that may be private).
 */
#ifndef CG_SSRF_H
#define CG_SSRF_H

struct conf;
struct sockaddr;

/* 0 when url may be used as a callback URL, else -1 and *why (a static text). */
int ssrf_check_url(const struct conf *c, const char *url, const char **why);

/*
 * The connect-time check, as an upstream_addr_filter: arg is the struct app
 * (its current conf's callbacks policy applies). 1 = allowed.
 */
int ssrf_addr_allowed(const struct sockaddr *addr, void *arg);

#endif
