/*
 * phone.c: phone numbers at the API edge. Turns what tenants send (E.164,
 * E.164 with punctuation, "00" international form, or a national number in
 * the tenant's default country) into E.164, splits E.164 back into country
 * code and national number for vendor adapters, and redacts numbers for logs.
 *
 * Two static tables drive it: the ITU calling codes that are assigned (any
 * E.164 number must start with one of them) and the countries known by ISO
 * code, with their trunk prefix and national significant number lengths.
 */
#include "phone.h"

#include <string.h>

#include "gw.h"

/* E.164 bounds on the total digit count (country code + national number). */
#define PHONE_E164_MIN_DIGITS 8
#define PHONE_E164_MAX_DIGITS 15

/* Most digits an input may carry: "00" + 15, or a trunk prefix + national. */
#define PHONE_INPUT_MAX_DIGITS 20

/*
 * ITU-T E.164 country calling codes in use for geographic areas, sorted.
 * The set is prefix-free (no code is the start of another), which is what
 * lets phone_split_code() try 1-, 2- then 3-digit prefixes.
 */
/* clang-format off */
static const unsigned short phone_codes[] = {
    1,   7,
    20,  211, 212, 213, 216, 218, 220, 221, 222, 223, 224, 225, 226, 227, 228, 229,
    230, 231, 232, 233, 234, 235, 236, 237, 238, 239, 240, 241, 242, 243, 244, 245,
    246, 247, 248, 249, 250, 251, 252, 253, 254, 255, 256, 257, 258, 260, 261, 262,
    263, 264, 265, 266, 267, 268, 269, 27,  290, 291, 297, 298, 299,
    30,  31,  32,  33,  34,  350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 36,
    370, 371, 372, 373, 374, 375, 376, 377, 378, 379, 380, 381, 382, 383, 385, 386,
    387, 389, 39,
    40,  41,  420, 421, 423, 43,  44,  45,  46,  47,  48,  49,
    500, 501, 502, 503, 504, 505, 506, 507, 508, 509, 51,  52,  53,  54,  55,  56,
    57,  58,  590, 591, 592, 593, 594, 595, 596, 597, 598, 599,
    60,  61,  62,  63,  64,  65,  66,  670, 672, 673, 674, 675, 676, 677, 678, 679,
    680, 681, 682, 683, 685, 686, 687, 688, 689, 690, 691, 692,
    81,  82,  84,  850, 852, 853, 855, 856, 86,  880, 886,
    90,  91,  92,  93,  94,  95,  960, 961, 962, 963, 964, 965, 966, 967, 968, 970,
    971, 972, 973, 974, 975, 976, 977, 98,  992, 993, 994, 995, 996, 997, 998,
};
/* clang-format on */

/*
 * Countries known by ISO 3166-1 alpha-2 code. min_len/max_len bound the
 * national significant number (without trunk prefix); 0/0 means "no rule
 * beyond the E.164 bounds" for countries whose lengths vary too much to
 * check safely. lead, when set, lists the allowed first digits of the
 * national number. A country with trunk prefix "0" never has a national
 * number starting with 0. The first entry for a calling code supplies the
 * rules for E.164 input with that code (+1: US, +7: RU).
 */
struct phone_country {
    const char *iso2;
    int code;
    const char *trunk;
    unsigned char min_len;
    unsigned char max_len;
    const char *lead;
};

/* clang-format off */
static const struct phone_country phone_countries[] = {
    { "IN", 91,  "0", 10, 10, NULL },
    { "US", 1,   "",  10, 10, "23456789" },
    { "CA", 1,   "",  10, 10, "23456789" },
    { "GB", 44,  "0", 9,  10, NULL },
    { "NP", 977, "0", 8,  10, NULL },
    { "AE", 971, "0", 8,  9,  NULL },
    { "SG", 65,  "",  8,  8,  NULL },
    { "AU", 61,  "0", 9,  9,  NULL },
    { "DE", 49,  "0", 6,  13, NULL },
    { "FR", 33,  "0", 9,  9,  NULL },
    { "IT", 39,  "",  6,  11, NULL },
    { "ES", 34,  "",  9,  9,  NULL },
    { "NL", 31,  "0", 9,  9,  NULL },
    { "BE", 32,  "0", 8,  9,  NULL },
    { "CH", 41,  "0", 9,  9,  NULL },
    { "AT", 43,  "0", 0,  0,  NULL },
    { "SE", 46,  "0", 0,  0,  NULL },
    { "NO", 47,  "",  8,  8,  NULL },
    { "DK", 45,  "",  8,  8,  NULL },
    { "FI", 358, "0", 0,  0,  NULL },
    { "IE", 353, "0", 7,  9,  NULL },
    { "PT", 351, "",  9,  9,  NULL },
    { "PL", 48,  "",  9,  9,  NULL },
    { "BR", 55,  "0", 10, 11, NULL },
    { "MX", 52,  "",  10, 10, NULL },
    { "AR", 54,  "0", 10, 11, NULL },
    { "ZA", 27,  "0", 9,  9,  NULL },
    { "NG", 234, "0", 0,  0,  NULL },
    { "KE", 254, "0", 0,  0,  NULL },
    { "EG", 20,  "0", 0,  0,  NULL },
    { "SA", 966, "0", 8,  9,  NULL },
    { "QA", 974, "",  8,  8,  NULL },
    { "KW", 965, "",  8,  8,  NULL },
    { "BH", 973, "",  8,  8,  NULL },
    { "OM", 968, "",  8,  8,  NULL },
    { "PK", 92,  "0", 0,  0,  NULL },
    { "BD", 880, "0", 0,  0,  NULL },
    { "LK", 94,  "0", 9,  9,  NULL },
    { "CN", 86,  "0", 0,  0,  NULL },
    { "HK", 852, "",  8,  8,  NULL },
    { "JP", 81,  "0", 0,  0,  NULL },
    { "KR", 82,  "0", 0,  0,  NULL },
    { "ID", 62,  "0", 0,  0,  NULL },
    { "MY", 60,  "0", 0,  0,  NULL },
    { "PH", 63,  "0", 0,  0,  NULL },
    { "TH", 66,  "0", 8,  9,  NULL },
    { "VN", 84,  "0", 0,  0,  NULL },
    { "NZ", 64,  "0", 0,  0,  NULL },
    { "RU", 7,   "8", 10, 10, NULL },
    { "TR", 90,  "0", 10, 10, NULL },
    { "IL", 972, "0", 8,  9,  NULL },
};
/* clang-format on */

static int
phone_is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int
phone_is_letter(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
phone_is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int
phone_fail(const char **why, const char *reason)
{
    if (why)
        *why = reason;
    return -1;
}

static int
phone_code_assigned(int code)
{
    size_t i;

    for (i = 0; i < GW_ARRAY_LEN(phone_codes); i++)
        if (phone_codes[i] == code)
            return 1;
    return 0;
}

/* Number of decimal digits of a calling code (1..3). */
static size_t
phone_code_digits(int code)
{
    return code >= 100 ? 3 : code >= 10 ? 2 : 1;
}

/*
 * Find the calling code at the start of n digits. Returns its length (1..3)
 * and stores the code, or 0 when no assigned code matches.
 */
static size_t
phone_split_code(const char *digits, size_t n, int *code)
{
    size_t len;
    int v = 0;

    if (n == 0 || digits[0] == '0')
        return 0;
    for (len = 1; len <= 3 && len <= n; len++) {
        v = v * 10 + (digits[len - 1] - '0');
        if (phone_code_assigned(v)) {
            *code = v;
            return len;
        }
    }
    return 0;
}

static const struct phone_country *
phone_country_by_iso(const char *iso2)
{
    size_t i;
    char a, b;

    if (!iso2 || !iso2[0] || !iso2[1] || iso2[2])
        return NULL;
    a = (char)(iso2[0] >= 'a' && iso2[0] <= 'z' ? iso2[0] - 'a' + 'A' : iso2[0]);
    b = (char)(iso2[1] >= 'a' && iso2[1] <= 'z' ? iso2[1] - 'a' + 'A' : iso2[1]);
    for (i = 0; i < GW_ARRAY_LEN(phone_countries); i++)
        if (phone_countries[i].iso2[0] == a && phone_countries[i].iso2[1] == b)
            return &phone_countries[i];
    return NULL;
}

static const struct phone_country *
phone_country_by_code(int code)
{
    size_t i;

    for (i = 0; i < GW_ARRAY_LEN(phone_countries); i++)
        if (phone_countries[i].code == code)
            return &phone_countries[i];
    return NULL;
}

/*
 * Check a national significant number of n digits under calling code code
 * (country c, may be NULL). Returns NULL when acceptable, else a reason.
 */
static const char *
phone_check_national(const struct phone_country *c, int code, const char *nsn, size_t n)
{
    size_t total = phone_code_digits(code) + n;

    if (total < PHONE_E164_MIN_DIGITS)
        return "too short";
    if (total > PHONE_E164_MAX_DIGITS)
        return "too long";
    if (!c)
        return NULL;
    if (c->min_len && n < c->min_len)
        return "too short";
    if (c->max_len && n > c->max_len)
        return "too long";
    /* n >= 5 here: total >= 8 and the code has at most 3 digits. */
    if (c->trunk[0] == '0' && nsn[0] == '0')
        return "bad national number";
    if (c->lead && !strchr(c->lead, nsn[0]))
        return "bad national number";
    return NULL;
}

/* Does digits (n of them) start with the string prefix (non-empty)? */
static int
phone_starts_with(const char *digits, size_t n, const char *prefix)
{
    size_t plen = strlen(prefix);

    return plen > 0 && plen <= n && memcmp(digits, prefix, plen) == 0;
}

/* Decimal digits of a calling code into buf (at least 4 bytes). */
static void
phone_code_string(int code, char *buf)
{
    size_t len = phone_code_digits(code), i;

    for (i = len; i > 0; i--) {
        buf[i - 1] = (char)('0' + code % 10);
        code /= 10;
    }
    buf[len] = '\0';
}

static int
phone_emit(int code, const char *nsn, size_t n, char *out, size_t outlen, const char **why)
{
    size_t cclen = phone_code_digits(code);

    if (!out || outlen < 1 + cclen + n + 1)
        return phone_fail(why, "output buffer too small");
    out[0] = '+';
    phone_code_string(code, out + 1);
    memcpy(out + 1 + cclen, nsn, n);
    out[1 + cclen + n] = '\0';
    return 0;
}

/* digits (n) hold an international number: calling code then national number. */
static int
phone_from_international(const char *digits, size_t n, char *out, size_t outlen, const char **why)
{
    const struct phone_country *c;
    const char *nsn, *reason;
    size_t cclen, nn, tlen;
    int code = 0;

    if (n == 0)
        return phone_fail(why, "too short");
    cclen = phone_split_code(digits, n, &code);
    if (cclen == 0)
        return phone_fail(why, n < PHONE_E164_MIN_DIGITS ? "too short" : "unknown country code");
    c = phone_country_by_code(code);
    nsn = digits + cclen;
    nn = n - cclen;
    reason = phone_check_national(c, code, nsn, nn);
    /*
     * "+44 (0)20 7946 0018": a trunk prefix written after the country code
     * is dropped when the number is valid only without it.
     */
    if (reason && c && phone_starts_with(nsn, nn, c->trunk)) {
        tlen = strlen(c->trunk);
        if (!phone_check_national(c, code, nsn + tlen, nn - tlen)) {
            nsn += tlen;
            nn -= tlen;
            reason = NULL;
        }
    }
    if (reason)
        return phone_fail(why, reason);
    return phone_emit(code, nsn, nn, out, outlen, why);
}

/* digits (n) hold a number written nationally in the default country. */
static int
phone_from_national(const char *digits, size_t n, const char *default_country, char *out,
                    size_t outlen, const char **why)
{
    const struct phone_country *c;
    const char *first_reason;
    char ccstr[4];
    size_t tlen, cclen;

    if (!default_country || !default_country[0])
        return phone_fail(why, "no default country for a national number");
    c = phone_country_by_iso(default_country);
    if (!c)
        return phone_fail(why, "unknown default country");

    /* 1. With the trunk prefix dropped ("09876543210" in IN). */
    tlen = strlen(c->trunk);
    first_reason = NULL;
    if (phone_starts_with(digits, n, c->trunk)) {
        first_reason = phone_check_national(c, c->code, digits + tlen, n - tlen);
        if (!first_reason)
            return phone_emit(c->code, digits + tlen, n - tlen, out, outlen, why);
    }

    /* 2. As written ("9876543210" in IN). */
    {
        const char *reason = phone_check_national(c, c->code, digits, n);

        if (!reason)
            return phone_emit(c->code, digits, n, out, outlen, why);
        if (!first_reason)
            first_reason = reason;
    }

    /*
     * 3. The country code without "+", when the digit count says so
     * ("919876543210" in IN, "14155550100" in US).
     */
    cclen = phone_code_digits(c->code);
    phone_code_string(c->code, ccstr);
    if (phone_starts_with(digits, n, ccstr) &&
        !phone_check_national(c, c->code, digits + cclen, n - cclen))
        return phone_emit(c->code, digits + cclen, n - cclen, out, outlen, why);
    return phone_fail(why, first_reason);
}

int
phone_normalize(const char *in, const char *default_country, char *out, size_t outlen,
                const char **why)
{
    char digits[PHONE_INPUT_MAX_DIGITS];
    const char *s, *e, *p;
    size_t n = 0, total = 0;

    if (out && outlen)
        out[0] = '\0';
    if (!in)
        in = "";
    s = in;
    while (phone_is_space((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && phone_is_space((unsigned char)e[-1]))
        e--;
    if (s == e)
        return phone_fail(why, "empty");

    /* Letters first: the most useful thing to tell a caller. */
    for (p = s; p < e; p++)
        if (phone_is_letter((unsigned char)*p))
            return phone_fail(why, "contains letters");
    for (p = s; p < e; p++) {
        unsigned char ch = (unsigned char)*p;

        if (phone_is_digit(ch)) {
            if (n < sizeof(digits))
                digits[n++] = (char)ch;
            total++;
        } else if (ch == '+') {
            if (p != s)
                return phone_fail(why, "misplaced +");
        } else if (ch != ' ' && ch != '-' && ch != '.' && ch != '(' && ch != ')') {
            return phone_fail(why, "bad character");
        }
    }
    if (total == 0)
        return phone_fail(why, "too short");
    if (total > PHONE_INPUT_MAX_DIGITS)
        return phone_fail(why, "too long");

    if (*s == '+')
        return phone_from_international(digits, n, out, outlen, why);
    if (n >= 2 && digits[0] == '0' && digits[1] == '0')
        return phone_from_international(digits + 2, n - 2, out, outlen, why);
    return phone_from_national(digits, n, default_country, out, outlen, why);
}

int
phone_country_code(const char *iso2)
{
    const struct phone_country *c = phone_country_by_iso(iso2);

    return c ? c->code : -1;
}

int
phone_country_known(const char *iso2)
{
    return phone_country_by_iso(iso2) != NULL;
}

/*
 * Is s "+" followed by 1..15 digits and nothing else? Stores the digit
 * count.
 */
static int
phone_is_e164_form(const char *s, size_t *ndigits)
{
    size_t i;

    if (!s || s[0] != '+')
        return 0;
    for (i = 1; s[i]; i++) {
        if (!phone_is_digit((unsigned char)s[i]) || i > PHONE_E164_MAX_DIGITS)
            return 0;
    }
    *ndigits = i - 1;
    return i > 1;
}

int
phone_national(const char *e164, char *out, size_t outlen)
{
    size_t n = 0, cclen, nn;
    int code = 0;

    if (out && outlen)
        out[0] = '\0';
    if (!phone_is_e164_form(e164, &n) || n < PHONE_E164_MIN_DIGITS)
        return -1;
    cclen = phone_split_code(e164 + 1, n, &code);
    if (cclen == 0)
        return -1;
    nn = n - cclen;
    if (!out || outlen < nn + 1)
        return -1;
    memcpy(out, e164 + 1 + cclen, nn);
    out[nn] = '\0';
    return code;
}

void
phone_redact(const char *number, char *out, size_t outlen)
{
    size_t ndigits = 0, keep = 0, need, seen = 0, o = 0, n = 0;
    int code = 0, plus = 0;
    const char *p;

    if (!out || outlen == 0)
        return;
    out[0] = '\0';
    if (!number)
        number = "";
    for (p = number; *p; p++)
        if (phone_is_digit((unsigned char)*p))
            ndigits++;

    /* Strict E.164 with a known code and more than 4 national digits: keep the code. */
    if (phone_is_e164_form(number, &n)) {
        size_t cclen = phone_split_code(number + 1, n, &code);

        if (cclen && n - cclen > 4) {
            plus = 1;
            keep = cclen;
        }
    }

    need = (size_t)plus + ndigits + 1;
    if (need > outlen)
        return;
    if (plus)
        out[o++] = '+';
    for (p = number; *p; p++) {
        if (!phone_is_digit((unsigned char)*p))
            continue;
        if (seen < keep || (ndigits > 4 && seen >= ndigits - 4))
            out[o++] = *p;
        else
            out[o++] = '*';
        seen++;
    }
    out[o] = '\0';
}
