/*
 * phone.h: phone numbers at the edge. The API accepts E.164, E.164 with
 * human punctuation, or a national number in the tenant's default country,
 * and callgate works on E.164 ("+<country code><national number>") inside.
 * Vendor adapters then format for their vendor (phone_national()).
 */
#ifndef CG_PHONE_H
#define CG_PHONE_H

#include <stddef.h>

/* E.164 is at most 15 digits: "+" + 15 + NUL. */
#define PHONE_E164_MAX 17

/*
 * Normalise in to E.164 in out (at least PHONE_E164_MAX bytes).
 * default_country is an ISO 3166-1 alpha-2 code ("IN") used for numbers
 * without a country code; it may be NULL (then such numbers are refused).
 * Returns 0, or -1 with *why set to a static English reason.
 */
int phone_normalize(const char *in, const char *default_country, char *out, size_t outlen,
                    const char **why);

/* Country calling code for an ISO alpha-2 code ("IN" -> 91), or -1. */
int phone_country_code(const char *iso2);

/* 1 if iso2 is a country this module knows, else 0. */
int phone_country_known(const char *iso2);

/*
 * Write the national significant number of an E.164 number (digits after the
 * country code) to out. Returns the country code, or -1 if e164 is not a
 * well-formed E.164 number or out is too small.
 */
int phone_national(const char *e164, char *out, size_t outlen);

/*
 * Redacted form for logs: country code kept, all but the last 4 digits
 * replaced: "+91******3210". Never fails; out gets "" when outlen is tiny.
 */
void phone_redact(const char *number, char *out, size_t outlen);

#endif
