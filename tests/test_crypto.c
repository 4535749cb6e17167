/*
 * test_crypto.c: SHA-256, HMAC-SHA256, base64, constant-time comparison,
 * random bytes and identifiers of crypto.c, against published vectors.
 */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"

static void
to_hex(const unsigned char *p, size_t n, char *out)
{
    size_t i;

    for (i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
    out[2 * n] = '\0';
}

Test(crypto, sha256_vectors)
{
    char hex[CRYPTO_SHA256_HEX_LEN + 1];

    crypto_sha256_hex("", 0, hex);
    cr_expect_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    crypto_sha256_hex(NULL, 0, hex);
    cr_expect_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    crypto_sha256_hex("abc", 3, hex);
    cr_expect_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cr_expect_eq(strlen(hex), CRYPTO_SHA256_HEX_LEN);
}

Test(crypto, hmac_rfc4231)
{
    unsigned char key1[20], mac[32];
    char hex[65];

    /* test case 1 */
    memset(key1, 0x0b, sizeof(key1));
    cr_assert_eq(crypto_hmac_sha256(key1, sizeof(key1), "Hi There", 8, mac), 0);
    to_hex(mac, sizeof(mac), hex);
    cr_expect_str_eq(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

    /* test case 2 */
    cr_assert_eq(crypto_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac), 0);
    to_hex(mac, sizeof(mac), hex);
    cr_expect_str_eq(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

    /* empty key and data work; NULL with a length does not */
    cr_expect_eq(crypto_hmac_sha256(NULL, 0, NULL, 0, mac), 0);
    cr_expect_eq(crypto_hmac_sha256(NULL, 4, "x", 1, mac), -1);
    cr_expect_eq(crypto_hmac_sha256("k", 1, NULL, 3, mac), -1);
}

struct b64_vector {
    const char *plain;
    const char *enc;
};

/* RFC 4648 section 10 */
/* clang-format off */
static const struct b64_vector b64_vectors[] = {
    { "", "" },         { "f", "Zg==" },        { "fo", "Zm8=" },     { "foo", "Zm9v" },
    { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
};
/* clang-format on */

Test(crypto, base64_vectors)
{
    char enc[32];
    unsigned char dec[32];
    size_t i;
    int n;

    for (i = 0; i < sizeof(b64_vectors) / sizeof(b64_vectors[0]); i++) {
        const struct b64_vector *v = &b64_vectors[i];
        size_t plen = strlen(v->plain);

        n = crypto_base64_encode(v->plain, plen, enc, sizeof(enc));
        cr_expect_eq(n, (int)strlen(v->enc), "%s", v->plain);
        cr_expect_str_eq(enc, v->enc);
        n = crypto_base64_decode(v->enc, strlen(v->enc), dec, sizeof(dec));
        cr_expect_eq(n, (int)plen, "%s", v->enc);
        cr_expect_eq(memcmp(dec, v->plain, plen), 0);
    }
    /* padding optional */
    cr_expect_eq(crypto_base64_decode("Zg", 2, dec, sizeof(dec)), 1);
    cr_expect_eq(dec[0], 'f');
    cr_expect_eq(crypto_base64_decode("Zm8", 3, dec, sizeof(dec)), 2);
    cr_expect_eq(memcmp(dec, "fo", 2), 0);
    cr_expect_eq(crypto_base64_decode("Zm9vYmE", 7, dec, sizeof(dec)), 5);
    cr_expect_eq(memcmp(dec, "fooba", 5), 0);
    /* inlen bounds the input: no NUL needed */
    cr_expect_eq(crypto_base64_decode("Zm9vXXXX", 4, dec, sizeof(dec)), 3);
    cr_expect_eq(crypto_base64_decode(NULL, 0, dec, sizeof(dec)), 0);
    cr_expect_eq(crypto_base64_encode(NULL, 0, enc, sizeof(enc)), 0);
    cr_expect_str_eq(enc, "");
}

Test(crypto, base64_round_trips)
{
    unsigned char data[256], dec[400];
    char enc[400], ref[400];
    size_t len, i;
    int n;

    for (i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(255 - i);
    data[3] = 0;
    /* every length 0..10, then longer ones; binary content incl. 0x00 and 0xff */
    for (len = 0; len <= 70; len++) {
        n = crypto_base64_encode(data, len, enc, sizeof(enc));
        cr_assert_eq(n, (int)(4 * ((len + 2) / 3)), "len %zu", len);
        cr_expect_eq(strlen(enc), (size_t)n);
        /* same as OpenSSL's encoder */
        EVP_EncodeBlock((unsigned char *)ref, data, (int)len);
        cr_expect_str_eq(enc, ref, "len %zu", len);
        memset(dec, 0xaa, sizeof(dec));
        cr_expect_eq(crypto_base64_decode(enc, (size_t)n, dec, sizeof(dec)), (int)len, "len %zu",
                     len);
        cr_expect_eq(memcmp(dec, data, len), 0, "len %zu", len);
        /* and without padding */
        while (n > 0 && enc[n - 1] == '=')
            n--;
        cr_expect_eq(crypto_base64_decode(enc, (size_t)n, dec, sizeof(dec)), (int)len);
        cr_expect_eq(memcmp(dec, data, len), 0);
        /* exact output buffer works, one byte less does not */
        cr_expect_eq(crypto_base64_decode(enc, (size_t)n, dec, len), (int)len);
        if (len > 0)
            cr_expect_eq(crypto_base64_decode(enc, (size_t)n, dec, len - 1), -1);
    }
    n = crypto_base64_encode(data, sizeof(data), enc, sizeof(enc));
    cr_expect_eq(crypto_base64_decode(enc, (size_t)n, dec, sizeof(dec)), (int)sizeof(data));
    cr_expect_eq(memcmp(dec, data, sizeof(data)), 0);
}

Test(crypto, base64_errors)
{
    static const char *const bad[] = {
        "Z",        /* 1 char left over */
        "Zm9vY",    /* 5 chars */
        "Zg=",      /* partial padding */
        "Zg===",    /* too much padding */
        "Z===",     /* padding only */
        "====",     /* padding only */
        "=Zg=",     /* padding inside */
        "Zg==Zg==", /* padding inside */
        "Zm8=Zm8=", /* padding inside */
        "Zm9v!",    /* not in the alphabet */
        "Zm 9v",    /* whitespace */
        "Zm9v\n",   /* whitespace */
        "Zm-9",     /* base64url, not standard */
        "Zm_9",     /* base64url, not standard */
        "Zh==",     /* non-zero unused bits */
        "Zm9=",     /* non-zero unused bits */
    };
    unsigned char dec[32];
    char enc[16];
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(crypto_base64_decode(bad[i], strlen(bad[i]), dec, sizeof(dec)), -1, "\"%s\"",
                     bad[i]);
    /* embedded NUL counts as a bad character */
    cr_expect_eq(crypto_base64_decode("Zm\0v", 4, dec, sizeof(dec)), -1);
    cr_expect_eq(crypto_base64_decode(NULL, 4, dec, sizeof(dec)), -1);
    cr_expect_eq(crypto_base64_decode("Zm9v", 4, NULL, 0), -1);
    cr_expect_eq(crypto_base64_decode("Zm9v", 4, dec, 2), -1);

    /* encoder: output too small (needs 9 bytes for 6 input bytes) */
    cr_expect_eq(crypto_base64_encode("foobar", 6, enc, 8), -1);
    cr_expect_str_eq(enc, "");
    cr_expect_eq(crypto_base64_encode("foobar", 6, enc, 9), 8);
    cr_expect_eq(crypto_base64_encode("foobar", 6, NULL, 0), -1);
    cr_expect_eq(crypto_base64_encode(NULL, 3, enc, sizeof(enc)), -1);
}

Test(crypto, equal)
{
    unsigned char a[1000], b[1000];

    cr_expect_eq(crypto_equal("abc", 3, "abc", 3), 1);
    cr_expect_eq(crypto_equal("abc", 3, "abd", 3), 0);
    cr_expect_eq(crypto_equal("abc", 3, "xbc", 3), 0);
    cr_expect_eq(crypto_equal("abc", 3, "abcd", 4), 0);
    cr_expect_eq(crypto_equal("abcd", 4, "abc", 3), 0);
    /* a trailing NUL must not hide a length difference */
    cr_expect_eq(crypto_equal("abc", 3, "abc\0", 4), 0);
    cr_expect_eq(crypto_equal("", 0, "", 0), 1);
    cr_expect_eq(crypto_equal(NULL, 0, NULL, 0), 1);
    cr_expect_eq(crypto_equal("", 0, "a", 1), 0);
    cr_expect_eq(crypto_equal("\0", 1, "", 0), 0);
    cr_expect_eq(crypto_equal(NULL, 3, "abc", 3), 0);

    memset(a, 0x5a, sizeof(a));
    memcpy(b, a, sizeof(b));
    cr_expect_eq(crypto_equal(a, sizeof(a), b, sizeof(b)), 1);
    b[sizeof(b) - 1] ^= 0x80;
    cr_expect_eq(crypto_equal(a, sizeof(a), b, sizeof(b)), 0);
    b[sizeof(b) - 1] ^= 0x80;
    b[0] ^= 1;
    cr_expect_eq(crypto_equal(a, sizeof(a), b, sizeof(b)), 0);
}

Test(crypto, random)
{
    unsigned char a[32], b[32];

    cr_expect_eq(crypto_random(a, sizeof(a)), 0);
    cr_expect_eq(crypto_random(b, sizeof(b)), 0);
    cr_expect_neq(memcmp(a, b, sizeof(a)), 0);
    cr_expect_eq(crypto_random(a, 0), 0);
    cr_expect_eq(crypto_random(NULL, 0), 0);
    cr_expect_eq(crypto_random(NULL, 4), -1);
}

static const char id_alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";

static unsigned long long
id_time(const char *id)
{
    const char *body = strchr(id, '_') + 1;
    unsigned long long v = 0;
    int i;

    for (i = 0; i < 10; i++)
        v = v * 32 + (unsigned long long)(strchr(id_alphabet, body[i]) - id_alphabet);
    return v;
}

Test(crypto, id_format)
{
    char id[64];
    struct timespec ts;
    unsigned long long now, t;
    size_t i;

    clock_gettime(CLOCK_REALTIME, &ts);
    now = (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
    crypto_new_id("call", id, sizeof(id));
    cr_assert_eq(strlen(id), strlen("call_") + 32, "%s", id);
    cr_expect_eq(strncmp(id, "call_", 5), 0);
    for (i = 5; id[i]; i++)
        cr_expect_not_null(strchr(id_alphabet, id[i]), "bad char '%c' in %s", id[i], id);
    t = id_time(id);
    cr_expect(t >= now && t < now + 5000, "time part %llu, clock %llu", t, now);

    /* exactly big enough: prefix + "_" + 32 + NUL */
    memset(id, 'x', sizeof(id));
    crypto_new_id("wh", id, 2 + 34);
    cr_expect_eq(strlen(id), 35);
    memset(id, 'x', sizeof(id));
    crypto_new_id("wh", id, 2 + 33);
    cr_expect_str_eq(id, "");
    memset(id, 'x', sizeof(id));
    crypto_new_id("wh", id, 1);
    cr_expect_str_eq(id, "");
    crypto_new_id("wh", NULL, 0);
    crypto_new_id("", id, sizeof(id));
    cr_expect_eq(strlen(id), 33);
    cr_expect_eq(id[0], '_');
}

Test(crypto, id_sorts_by_time)
{
    char a[64], b[64];
    struct timespec pause = {0, 2 * 1000 * 1000};
    int i;

    for (i = 0; i < 20; i++) {
        crypto_new_id("call", a, sizeof(a));
        nanosleep(&pause, NULL);
        crypto_new_id("call", b, sizeof(b));
        cr_expect_lt(strcmp(a, b), 0, "%s !< %s", a, b);
        cr_expect_lt(id_time(a), id_time(b));
    }
}

static int
cmp_str(const void *x, const void *y)
{
    return strcmp((const char *)x, (const char *)y);
}

Test(crypto, ids_distinct)
{
    enum { N = 10000, W = 40 };
    char(*ids)[W] = malloc(sizeof(char[W]) * N);
    size_t i;

    cr_assert_not_null(ids);
    for (i = 0; i < N; i++)
        crypto_new_id("req", ids[i], W);
    qsort(ids, N, W, cmp_str);
    for (i = 1; i < N; i++)
        cr_expect_neq(strcmp(ids[i - 1], ids[i]), 0, "duplicate %s", ids[i]);
    free(ids);
}

/* Made back to back, many within one millisecond: each sorts after the last. */
Test(crypto, ids_strictly_increase)
{
    enum { N = 5000 };
    char prev[64], cur[64];
    int i;

    crypto_new_id("call", prev, sizeof(prev));
    for (i = 0; i < N; i++) {
        crypto_new_id("call", cur, sizeof(cur));
        cr_assert_lt(strcmp(prev, cur), 0, "%s !< %s", prev, cur);
        memcpy(prev, cur, sizeof(prev));
    }
}

Test(crypto, standard_webhooks_signature)
{
    const char *secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const char *content = "msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{\"test\": 2432232314}";
    const char *b64 = secret + strlen("whsec_");
    unsigned char key[64], mac[32];
    char sig[64];
    int keylen;

    keylen = crypto_base64_decode(b64, strlen(b64), key, sizeof(key));
    cr_assert_eq(keylen, 24);
    cr_assert_eq(crypto_hmac_sha256(key, (size_t)keylen, content, strlen(content), mac), 0);
    cr_assert_eq(crypto_base64_encode(mac, sizeof(mac), sig, sizeof(sig)), 44);
    cr_expect_str_eq(sig, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    cr_expect_eq(crypto_equal(sig, strlen(sig), "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", 44),
                 1);
}
