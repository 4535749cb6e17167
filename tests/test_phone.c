/*
 * test_phone.c: phone number normalisation, national split, redaction and
 * the country tables of phone.c.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phone.h"

struct valid_case {
    const char *in;
    const char *country;
    const char *want;
};

/* clang-format off */
static const struct valid_case valid_cases[] = {
    /* E.164 and E.164 with punctuation */
    { "+919876543210", NULL, "+919876543210" },
    { "+91 98765-43210", NULL, "+919876543210" },
    { "+91.98765.43210", NULL, "+919876543210" },
    { "+91 (98765) 43210", NULL, "+919876543210" },
    { "+1 (415) 555-0100", NULL, "+14155550100" },
    { "+1.415.555.0100", "IN", "+14155550100" },
    { "  +919876543210  ", NULL, "+919876543210" },
    { "+44 20 7946 0018", NULL, "+442079460018" },
    { "+44 (0)20 7946 0018", NULL, "+442079460018" },
    { "+977 9841234567", NULL, "+9779841234567" },
    { "+971 4 123 4567", NULL, "+97141234567" },
    { "+65 6123 4567", NULL, "+6561234567" },
    { "+61 2 9876 5432", NULL, "+61298765432" },
    { "+49 1512 3456789", NULL, "+4915123456789" },
    { "+33 6 12 34 56 78", NULL, "+33612345678" },
    { "+39 06 1234 5678", NULL, "+390612345678" },
    { "+41 44 668 18 00", NULL, "+41446681800" },
    { "+7 495 123-45-67", NULL, "+74951234567" },
    { "+86 138 0013 8000", NULL, "+8613800138000" },
    { "+81 3-1234-5678", NULL, "+81312345678" },
    { "+55 11 91234-5678", NULL, "+5511912345678" },
    { "+234 803 123 4567", NULL, "+2348031234567" },
    { "+254 712 345678", NULL, "+254712345678" },
    { "+880 1712-345678", NULL, "+8801712345678" },
    { "+966 50 123 4567", NULL, "+966501234567" },
    { "+974 3312 3456", NULL, "+97433123456" },
    { "+973 3612 3456", NULL, "+97336123456" },
    { "+972 50-123-4567", NULL, "+972501234567" },
    { "+353 87 123 4567", NULL, "+353871234567" },
    { "+351 912 345 678", NULL, "+351912345678" },
    { "+48 512 345 678", NULL, "+48512345678" },
    { "+27 82 123 4567", NULL, "+27821234567" },
    { "+852 5123 4567", NULL, "+85251234567" },
    { "+90 532 123 45 67", NULL, "+905321234567" },
    { "+92 300 1234567", NULL, "+923001234567" },
    { "+94 77 123 4567", NULL, "+94771234567" },
    { "+63 917 123 4567", NULL, "+639171234567" },
    { "+62 812-3456-7890", NULL, "+6281234567890" },
    { "+84 91 234 56 78", NULL, "+84912345678" },
    { "+82 10-1234-5678", NULL, "+821012345678" },
    { "+64 21 123 4567", NULL, "+64211234567" },
    { "+20 10 1234 5678", NULL, "+201012345678" },
    { "+66 81 234 5678", NULL, "+66812345678" },
    { "+46 70 123 45 67", NULL, "+46701234567" },
    { "+47 412 34 567", NULL, "+4741234567" },
    { "+45 20 12 34 56", NULL, "+4520123456" },
    { "+32 470 12 34 56", NULL, "+32470123456" },
    { "+43 664 1234567", NULL, "+436641234567" },
    { "+358 40 1234567", NULL, "+358401234567" },
    { "+52 55 1234 5678", NULL, "+525512345678" },
    { "+54 9 11 1234-5678", NULL, "+5491112345678" },
    { "+60 12-345 6789", NULL, "+60123456789" },
    { "+98 912 345 6789", NULL, "+989123456789" },
    { "+380 50 123 4567", NULL, "+380501234567" },
    { "+968 9123 4567", NULL, "+96891234567" },
    { "+965 5123 4567", NULL, "+96551234567" },
    /* international prefix 00 */
    { "0091 98765 43210", NULL, "+919876543210" },
    { "0044 20 7946 0018", "US", "+442079460018" },
    { "00971501234567", "IN", "+971501234567" },
    /* national, default country */
    { "98765 43210", "IN", "+919876543210" },
    { "98765 43210", "in", "+919876543210" },
    { "9876543210 ", "IN", "+919876543210" },
    { "09876543210", "IN", "+919876543210" },
    { "011 2345 6789", "IN", "+911123456789" },
    { "080-4123-4567", "IN", "+918041234567" },
    { "(415) 555-0100", "US", "+14155550100" },
    { "415.555.0100", "us", "+14155550100" },
    { "(604) 555-0199", "CA", "+16045550199" },
    { "020 7946 0018", "GB", "+442079460018" },
    { "07700 900123", "GB", "+447700900123" },
    { "9841234567", "NP", "+9779841234567" },
    { "01-4412345", "NP", "+97714412345" },
    { "050 123 4567", "AE", "+971501234567" },
    { "8123 4567", "SG", "+6581234567" },
    { "0412 345 678", "AU", "+61412345678" },
    { "030 123456", "DE", "+4930123456" },
    { "01 23 45 67 89", "FR", "+33123456789" },
    { "06 1234 5678", "IT", "+390612345678" },
    { "612 34 56 78", "ES", "+34612345678" },
    { "020-1234567", "NL", "+31201234567" },
    { "8 (495) 123-45-67", "RU", "+74951234567" },
    { "(11) 91234-5678", "BR", "+5511912345678" },
    { "0803 123 4567", "NG", "+2348031234567" },
    /* default country's code written without "+" */
    { "919876543210", "IN", "+919876543210" },
    { "91 98765 43210", "IN", "+919876543210" },
    { "14155550100", "US", "+14155550100" },
    { "1 (415) 555-0100", "US", "+14155550100" },
    { "447700900123", "GB", "+447700900123" },
};
/* clang-format on */

Test(phone, valid_inputs)
{
    size_t i;

    cr_assert_geq(sizeof(valid_cases) / sizeof(valid_cases[0]), 40);
    for (i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++) {
        const struct valid_case *c = &valid_cases[i];
        char out[PHONE_E164_MAX];
        const char *why = NULL;
        int rc = phone_normalize(c->in, c->country, out, sizeof(out), &why);

        cr_expect_eq(rc, 0, "\"%s\" (%s): rc %d, why %s", c->in, c->country ? c->country : "-", rc,
                     why ? why : "-");
        if (rc == 0)
            cr_expect_str_eq(out, c->want, "\"%s\" (%s): got %s, want %s", c->in,
                             c->country ? c->country : "-", out, c->want);
    }
}

struct invalid_case {
    const char *in;
    const char *country;
    const char *why; /* expected reason, or NULL to accept any */
};

/* clang-format off */
static const struct invalid_case invalid_cases[] = {
    { "", "IN", "empty" },
    { "   ", "IN", "empty" },
    { "\t \n", "IN", "empty" },
    { "+91 98765 4321a", NULL, "contains letters" },
    { "call me", "IN", "contains letters" },
    { "+91 98765 43210 ext 12", NULL, "contains letters" },
    { "+91+9876543210", NULL, "misplaced +" },
    { "91+9876543210", "IN", "misplaced +" },
    { "++919876543210", NULL, "misplaced +" },
    { "(+91) 9876543210", NULL, "misplaced +" },
    { "+91 98765 43210 +", NULL, "misplaced +" },
    { "+91_9876543210", NULL, "bad character" },
    { "+91/9876543210", NULL, "bad character" },
    { "+91\t9876543210", NULL, "bad character" },
    { "+91 98765\xe2\x80\x8b" "43210", NULL, "bad character" },
    { "+91#9876543210", NULL, "bad character" },
    { "+1234567", NULL, "too short" },
    { "+", NULL, "too short" },
    { "---", "IN", "too short" },
    { "0", "IN", "too short" },
    { "00", "IN", "too short" },
    { "+1234567890123456", NULL, "too long" },
    { "+91 98765 43210 98765 43210", NULL, "too long" },
    { "+999 123456789", NULL, "unknown country code" },
    { "+0 123456789", NULL, "unknown country code" },
    { "+28 123456789", NULL, "unknown country code" },
    { "+422 123456789", NULL, "unknown country code" },
    { "+693 1234567", NULL, "unknown country code" },
    { "000 9876543210", "IN", "unknown country code" },
    { "9876543210", NULL, "no default country for a national number" },
    { "9876543210", "", "no default country for a national number" },
    { "9876543210", "XX", NULL },
    { "98765 4321", "IN", "too short" },
    { "98765 432101", "IN", "too long" },
    { "+91 0987654321", NULL, NULL },
    { "+1 015 555 0100", NULL, NULL },
    { "+1 115 555 0100", NULL, NULL },
    { "(115) 555-0100", "US", NULL },
    { "1415555010", "US", NULL },
    { "+44 20 794", NULL, "too short" },
    { "+65 6123 456", NULL, "too short" },
    { "+61 4123 456789", NULL, "too long" },
    { "+33 1 23 45 67 8", NULL, "too short" },
    { "+971 50 123 45678", NULL, "too long" },
    { "+977 98412345678", NULL, "too long" },
    { "+49 30 12", NULL, "too short" },
};
/* clang-format on */

Test(phone, invalid_inputs)
{
    size_t i;

    cr_assert_geq(sizeof(invalid_cases) / sizeof(invalid_cases[0]), 25);
    for (i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]); i++) {
        const struct invalid_case *c = &invalid_cases[i];
        char out[PHONE_E164_MAX];
        const char *why = NULL;
        int rc;

        memset(out, 'x', sizeof(out));
        rc = phone_normalize(c->in, c->country, out, sizeof(out), &why);
        cr_expect_eq(rc, -1, "\"%s\" (%s): accepted as %s", c->in, c->country ? c->country : "-",
                     rc == 0 ? out : "?");
        cr_expect_not_null(why, "\"%s\": no reason", c->in);
        cr_expect_str_empty(out, "\"%s\": out not cleared", c->in);
        if (why && c->why)
            cr_expect_str_eq(why, c->why, "\"%s\": reason \"%s\", want \"%s\"", c->in, why, c->why);
    }
}

Test(phone, null_and_small_buffers)
{
    char out[PHONE_E164_MAX];
    const char *why = NULL;

    cr_expect_eq(phone_normalize(NULL, "IN", out, sizeof(out), &why), -1);
    cr_expect_str_eq(why, "empty");
    /* why may be NULL */
    cr_expect_eq(phone_normalize("abc", "IN", out, sizeof(out), NULL), -1);
    cr_expect_eq(phone_normalize("+919876543210", NULL, out, sizeof(out), NULL), 0);
    /* output too small: "+919876543210" needs 14 bytes */
    why = NULL;
    cr_expect_eq(phone_normalize("+919876543210", NULL, out, 13, &why), -1);
    cr_expect_not_null(why);
    cr_expect_eq(phone_normalize("+919876543210", NULL, out, 14, &why), 0);
    cr_expect_str_eq(out, "+919876543210");
    cr_expect_eq(phone_normalize("+919876543210", NULL, NULL, 0, &why), -1);
}

struct length_rule {
    const char *iso2;
    int min, max; /* national significant number; 0/0: E.164 bounds only */
};

/* clang-format off */
static const struct length_rule length_rules[] = {
    { "IN", 10, 10 }, { "US", 10, 10 }, { "CA", 10, 10 }, { "GB", 9, 10 }, { "NP", 8, 10 },
    { "AE", 8, 9 },   { "SG", 8, 8 },   { "AU", 9, 9 },   { "DE", 6, 13 }, { "FR", 9, 9 },
    { "CN", 0, 0 },   { "JP", 0, 0 },   { "KE", 0, 0 },
};
/* clang-format on */

static int
digit_count(int code)
{
    return code >= 100 ? 3 : code >= 10 ? 2 : 1;
}

Test(phone, national_lengths)
{
    size_t i;
    int len;

    for (i = 0; i < sizeof(length_rules) / sizeof(length_rules[0]); i++) {
        const struct length_rule *r = &length_rules[i];
        int code = phone_country_code(r->iso2);

        cr_assert_gt(code, 0, "%s", r->iso2);
        for (len = 3; len <= 16; len++) {
            char nsn[32], e164[40], out[PHONE_E164_MAX];
            const char *why = NULL;
            int total = digit_count(code) + len;
            int ok = total >= 8 && total <= 15 && (r->min == 0 || (len >= r->min && len <= r->max));
            int rc;

            /* "5000...": no trunk prefix, no country code, valid first digit. */
            memset(nsn, '0', (size_t)len);
            nsn[0] = '5';
            nsn[len] = '\0';

            rc = phone_normalize(nsn, r->iso2, out, sizeof(out), &why);
            cr_expect_eq(rc, ok ? 0 : -1, "%s national %d digits: rc %d (%s)", r->iso2, len, rc,
                         why ? why : "-");

            snprintf(e164, sizeof(e164), "+%d%s", code, nsn);
            rc = phone_normalize(e164, NULL, out, sizeof(out), &why);
            cr_expect_eq(rc, ok ? 0 : -1, "%s E.164 %s: rc %d (%s)", r->iso2, e164, rc,
                         why ? why : "-");
            if (ok && rc == 0)
                cr_expect_str_eq(out, e164);
        }
    }
}

Test(phone, country_table)
{
    static const char *const known[] = {
        "IN", "US", "CA", "GB", "NP", "AE", "SG", "AU", "DE", "FR", "IT", "ES", "NL",
        "BE", "CH", "AT", "SE", "NO", "DK", "FI", "IE", "PT", "PL", "BR", "MX", "AR",
        "ZA", "NG", "KE", "EG", "SA", "QA", "KW", "BH", "OM", "PK", "BD", "LK", "CN",
        "HK", "JP", "KR", "ID", "MY", "PH", "TH", "VN", "NZ", "RU", "TR", "IL",
    };
    size_t i;

    for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        cr_expect_eq(phone_country_known(known[i]), 1, "%s", known[i]);
        cr_expect_gt(phone_country_code(known[i]), 0, "%s", known[i]);
    }
    cr_expect_eq(phone_country_code("IN"), 91);
    cr_expect_eq(phone_country_code("in"), 91);
    cr_expect_eq(phone_country_code("iN"), 91);
    cr_expect_eq(phone_country_code("US"), 1);
    cr_expect_eq(phone_country_code("ca"), 1);
    cr_expect_eq(phone_country_code("GB"), 44);
    cr_expect_eq(phone_country_code("np"), 977);
    cr_expect_eq(phone_country_code("AE"), 971);
    cr_expect_eq(phone_country_code("RU"), 7);
    cr_expect_eq(phone_country_code("BD"), 880);
    cr_expect_eq(phone_country_code("XX"), -1);
    cr_expect_eq(phone_country_code("IND"), -1);
    cr_expect_eq(phone_country_code("I"), -1);
    cr_expect_eq(phone_country_code(""), -1);
    cr_expect_eq(phone_country_code(NULL), -1);
    cr_expect_eq(phone_country_known("zz"), 0);
    cr_expect_eq(phone_country_known(NULL), 0);
    cr_expect_eq(phone_country_known("gb"), 1);
}

Test(phone, assigned_codes)
{
    static const int assigned[] = {
        1,   7,   20,  27,  30,  31,  32,  33,  34,  36,  39,  40,  41,  43,  44,  45,  46,
        47,  48,  49,  51,  52,  53,  54,  55,  56,  57,  58,  60,  61,  62,  63,  64,  65,
        66,  81,  82,  84,  86,  90,  91,  92,  93,  94,  95,  98,  211, 212, 213, 216, 218,
        220, 233, 234, 254, 255, 256, 260, 263, 299, 350, 351, 352, 353, 354, 355, 356, 357,
        358, 359, 370, 372, 380, 381, 385, 386, 389, 420, 421, 423, 500, 501, 502, 506, 507,
        509, 590, 591, 593, 595, 598, 599, 670, 672, 673, 675, 679, 680, 685, 692, 850, 852,
        853, 855, 856, 880, 886, 960, 961, 962, 963, 964, 965, 966, 967, 968, 970, 971, 972,
        973, 974, 975, 976, 977, 992, 993, 994, 995, 996, 997, 998,
    };
    static const int unassigned[] = {0,   21,  28,  210, 214, 259, 280, 292, 384,
                                     422, 693, 699, 800, 851, 969, 990, 999};
    size_t i;

    for (i = 0; i < sizeof(assigned) / sizeof(assigned[0]); i++) {
        char e164[32], nsn[32];
        int n;

        /* 12 digits in total, national part "2345..." */
        n = snprintf(e164, sizeof(e164), "+%d", assigned[i]);
        while (n < 13) {
            e164[n] = (char)('2' + (n % 7));
            n++;
        }
        e164[n] = '\0';
        cr_expect_eq(phone_national(e164, nsn, sizeof(nsn)), assigned[i], "%s", e164);
    }
    for (i = 0; i < sizeof(unassigned) / sizeof(unassigned[0]); i++) {
        char e164[32], out[PHONE_E164_MAX];
        const char *why = NULL;

        /* the "0" keeps a 1- or 2-digit code from growing into an assigned one */
        snprintf(e164, sizeof(e164), "+%d01234567", unassigned[i]);
        cr_expect_eq(phone_normalize(e164, NULL, out, sizeof(out), &why), -1, "%s", e164);
        cr_expect_eq(phone_national(e164, out, sizeof(out)), -1, "%s", e164);
    }
}

Test(phone, national_split)
{
    char out[PHONE_E164_MAX];

    cr_expect_eq(phone_national("+14155550100", out, sizeof(out)), 1);
    cr_expect_str_eq(out, "4155550100");
    cr_expect_eq(phone_national("+919876543210", out, sizeof(out)), 91);
    cr_expect_str_eq(out, "9876543210");
    cr_expect_eq(phone_national("+9779841234567", out, sizeof(out)), 977);
    cr_expect_str_eq(out, "9841234567");
    cr_expect_eq(phone_national("+442079460018", out, sizeof(out)), 44);
    cr_expect_str_eq(out, "2079460018");
    cr_expect_eq(phone_national("+971501234567", out, sizeof(out)), 971);
    cr_expect_str_eq(out, "501234567");
    cr_expect_eq(phone_national("+74951234567", out, sizeof(out)), 7);
    cr_expect_str_eq(out, "4951234567");

    /* exact fit and one byte short */
    cr_expect_eq(phone_national("+919876543210", out, 11), 91);
    cr_expect_str_eq(out, "9876543210");
    cr_expect_eq(phone_national("+919876543210", out, 10), -1);
    cr_expect_eq(phone_national("+919876543210", NULL, 0), -1);

    cr_expect_eq(phone_national("919876543210", out, sizeof(out)), -1);
    cr_expect_eq(phone_national("+91 9876543210", out, sizeof(out)), -1);
    cr_expect_eq(phone_national("+9999876543210", out, sizeof(out)), -1);
    cr_expect_eq(phone_national("+0919876543210", out, sizeof(out)), -1);
    cr_expect_eq(phone_national("+1234567", out, sizeof(out)), -1);
    cr_expect_eq(phone_national("+9198765432101234", out, sizeof(out)), -1);
    cr_expect_eq(phone_national("+", out, sizeof(out)), -1);
    cr_expect_eq(phone_national("", out, sizeof(out)), -1);
    cr_expect_eq(phone_national(NULL, out, sizeof(out)), -1);
}

struct redact_case {
    const char *in;
    const char *want;
};

/* clang-format off */
static const struct redact_case redact_cases[] = {
    { "+919876543210", "+91******3210" },
    { "+14155550100", "+1******0100" },
    { "+9779841234567", "+977******4567" },
    { "+442079460018", "+44******0018" },
    { "+97141234567", "+971****4567" },
    { "98765 43210", "******3210" },
    { "+91 98765 43210", "********3210" },
    { "+999123456789", "********6789" },
    { "12345", "*2345" },
    { "1234", "****" },
    { "12", "**" },
    { "+1234", "****" },
    { "abc", "" },
    { "", "" },
};
/* clang-format on */

Test(phone, redact)
{
    char out[64];
    size_t i;

    for (i = 0; i < sizeof(redact_cases) / sizeof(redact_cases[0]); i++) {
        memset(out, 'x', sizeof(out));
        phone_redact(redact_cases[i].in, out, sizeof(out));
        cr_expect_str_eq(out, redact_cases[i].want, "\"%s\" -> \"%s\"", redact_cases[i].in, out);
    }
    memset(out, 'x', sizeof(out));
    phone_redact(NULL, out, sizeof(out));
    cr_expect_str_eq(out, "");

    /* exact fit, then too small: "" */
    phone_redact("+919876543210", out, 14);
    cr_expect_str_eq(out, "+91******3210");
    phone_redact("+919876543210", out, 13);
    cr_expect_str_eq(out, "");
    phone_redact("+919876543210", out, 1);
    cr_expect_str_eq(out, "");
    out[0] = 'x';
    phone_redact("+919876543210", out, 0);
    cr_expect_eq(out[0], 'x');
    phone_redact("+919876543210", NULL, 0);
}

Test(phone, huge_input)
{
    const size_t len = 10000;
    char *big = malloc(len + 1), *red = malloc(len + 2);
    char out[PHONE_E164_MAX], small[16];
    const char *why = NULL;
    const char fill[] = {'9', 'a', ' ', '+', '-', '(', '\x80'};
    size_t i, f;

    cr_assert_not_null(big);
    cr_assert_not_null(red);
    for (f = 0; f < sizeof(fill); f++) {
        memset(big, fill[f], len);
        big[0] = '+';
        big[len] = '\0';
        why = NULL;
        cr_expect_eq(phone_normalize(big, "IN", out, sizeof(out), &why), -1);
        cr_expect_not_null(why);
        cr_expect_eq(phone_national(big, out, sizeof(out)), -1);
        phone_redact(big, small, sizeof(small));
        phone_redact(big, red, len + 2);
    }
    memset(big, '7', len);
    big[len] = '\0';
    phone_redact(big, red, len + 1);
    cr_expect_eq(strlen(red), len);
    cr_expect_eq(red[0], '*');
    cr_expect_str_eq(red + len - 4, "7777");
    phone_redact(big, small, sizeof(small));
    cr_expect_str_eq(small, "");
    for (i = 0; i < len; i += 2)
        big[i] = ' ';
    cr_expect_eq(phone_normalize(big, "IN", out, sizeof(out), &why), -1);
    free(big);
    free(red);
}
