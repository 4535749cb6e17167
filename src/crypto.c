/*
 * crypto.c: the cryptographic primitives callgate needs, on OpenSSL 3
 * libcrypto (only APIs that are not deprecated there): SHA-256 hex,
 * HMAC-SHA256, strict base64, constant-time comparison, random bytes and
 * time-ordered random identifiers.
 */
#include "crypto.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sys/random.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

static const char crypto_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Crockford base32, lower case: sorts the same way as the values it encodes. */
static const char crypto_b32_alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";

/* Characters of an id after the prefix and "_": 10 of time, 2 of sequence,
 * 20 of randomness. */
#define CRYPTO_ID_TIME_CHARS 10
#define CRYPTO_ID_SEQ_CHARS 2
#define CRYPTO_ID_SEQ_MAX 1024 /* 32 * 32 */
#define CRYPTO_ID_RAND_CHARS 20
#define CRYPTO_ID_RAND_BYTES 13 /* 104 bits, of which 100 are used */

/*
 * One context and one fetched digest for the process: EVP_Digest() would
 * allocate a context and look the algorithm up on every request (the tenant
 * key is hashed on each). The process is single-threaded where this runs.
 */
static int
crypto_sha256_raw(const void *data, size_t len, unsigned char *md, unsigned int *mdlen)
{
    static EVP_MD_CTX *ctx;
    static EVP_MD *sha256;

    if (sha256 == NULL && (sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL) {
        return -1;
    }
    if (ctx == NULL && (ctx = EVP_MD_CTX_new()) == NULL) {
        return -1;
    }
    return EVP_DigestInit_ex2(ctx, sha256, NULL) && EVP_DigestUpdate(ctx, data, len) &&
                   EVP_DigestFinal_ex(ctx, md, mdlen)
               ? 0
               : -1;
}

void
crypto_sha256_hex(const void *data, size_t len, char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;

    if (!out)
        return;
    out[0] = '\0';
    if (!data && len)
        return;
    if (crypto_sha256_raw(data ? data : "", len, md, &mdlen) != 0 || mdlen != 32)
        return;
    for (i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0x0f];
    }
    out[2 * mdlen] = '\0';
}

int
crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                   unsigned char mac[32])
{
    /* HMAC() wants non-NULL pointers even for empty inputs. */
    static const unsigned char empty[1];
    unsigned int maclen = 0;

    if (!mac || (!key && keylen) || (!data && len) || keylen > INT_MAX)
        return -1;
    if (!HMAC(EVP_sha256(), key ? key : empty, (int)keylen, data ? data : empty, len, mac,
              &maclen) ||
        maclen != 32)
        return -1;
    return 0;
}

int
crypto_base64_encode(const void *data, size_t len, char *out, size_t outlen)
{
    const unsigned char *in = data;
    size_t need, i, o = 0;
    uint32_t v;

    if (out && outlen)
        out[0] = '\0';
    if ((!data && len) || len > ((size_t)INT_MAX / 4) * 3)
        return -1;
    need = 4 * ((len + 2) / 3);
    if (!out || outlen < need + 1)
        return -1;
    for (i = 0; i + 3 <= len; i += 3) {
        v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        out[o++] = crypto_b64_alphabet[(v >> 18) & 63];
        out[o++] = crypto_b64_alphabet[(v >> 12) & 63];
        out[o++] = crypto_b64_alphabet[(v >> 6) & 63];
        out[o++] = crypto_b64_alphabet[v & 63];
    }
    if (len - i == 1) {
        v = (uint32_t)in[i] << 16;
        out[o++] = crypto_b64_alphabet[(v >> 18) & 63];
        out[o++] = crypto_b64_alphabet[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (len - i == 2) {
        v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);
        out[o++] = crypto_b64_alphabet[(v >> 18) & 63];
        out[o++] = crypto_b64_alphabet[(v >> 12) & 63];
        out[o++] = crypto_b64_alphabet[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    return (int)o;
}

static int
crypto_b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int
crypto_base64_decode(const char *in, size_t inlen, unsigned char *out, size_t outlen)
{
    size_t n = inlen, pad = 0, rem, need, i, o = 0;
    uint32_t v = 0;
    int d;

    if (!in)
        return inlen ? -1 : 0;
    while (n > 0 && pad < 2 && in[n - 1] == '=') {
        n--;
        pad++;
    }
    /* Padding, when present, completes the last quad exactly. */
    if (pad && inlen % 4 != 0)
        return -1;
    rem = n % 4;
    if (rem == 1)
        return -1;
    need = (n / 4) * 3 + (rem == 3 ? 2 : rem == 2 ? 1 : 0);
    if (need > INT_MAX || (need && (!out || outlen < need)))
        return -1;

    for (i = 0; i < n; i++) {
        d = crypto_b64_value((unsigned char)in[i]);
        if (d < 0)
            return -1;
        v = (v << 6) | (uint32_t)d;
        if (i % 4 == 3) {
            out[o++] = (unsigned char)(v >> 16);
            out[o++] = (unsigned char)(v >> 8);
            out[o++] = (unsigned char)v;
            v = 0;
        }
    }
    /* A partial quad: its unused low bits must be zero (canonical input). */
    if (rem == 2) {
        if (v & 0x0f)
            return -1;
        out[o++] = (unsigned char)(v >> 4);
    } else if (rem == 3) {
        if (v & 0x03)
            return -1;
        out[o++] = (unsigned char)(v >> 10);
        out[o++] = (unsigned char)(v >> 2);
    }
    return (int)o;
}

int
crypto_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    const volatile unsigned char *pa = a, *pb = b;
    size_t n = alen > blen ? alen : blen, i, lendiff;
    volatile unsigned int acc = 0;
    unsigned char x, y;

    if ((!a && alen) || (!b && blen))
        return 0;
    for (i = 0; i < n; i++) {
        /* The branches depend on the lengths only, never on the contents. */
        x = i < alen ? pa[i] : 0;
        y = i < blen ? pb[i] : 0;
        acc |= (unsigned int)(x ^ y);
    }
    /* Fold "lengths differ" into one bit without a branch. */
    lendiff = alen ^ blen;
    acc |= (unsigned int)((lendiff | (0 - lendiff)) >> (sizeof(size_t) * CHAR_BIT - 1));
    /* acc is 0..255: (acc - 1) >> 8 has its low bit set only for 0. */
    return (int)(((acc - 1) >> 8) & 1);
}

/*
 * Random bytes come from a small buffer refilled by getrandom(2): every id
 * the gateway mints (several per call) would otherwise go through OpenSSL's
 * generator, which also asks getpid() each time to notice a fork. A forked
 * child empties its copy of the buffer (pthread_atfork), so parent and
 * child never hand out the same bytes.
 */
static unsigned char crypto_pool[4096];
static size_t crypto_pool_left;
static pthread_once_t crypto_pool_once = PTHREAD_ONCE_INIT;

static void
crypto_pool_forget(void)
{
    explicit_bzero(crypto_pool, sizeof(crypto_pool));
    crypto_pool_left = 0;
}

static void
crypto_pool_init(void)
{
    (void)pthread_atfork(NULL, NULL, crypto_pool_forget);
}

/* len bytes straight from the kernel (OpenSSL if that fails). */
static int
crypto_random_fill(unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = getrandom(p, len > 65536 ? 65536 : len, 0);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            return RAND_bytes(p, (int)(len > INT_MAX ? INT_MAX : len)) == 1 &&
                           len <= INT_MAX
                       ? 0
                       : -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int
crypto_random(void *buf, size_t len)
{
    unsigned char *p = buf;

    if (!buf && len)
        return -1;
    if (len == 0)
        return 0;
    pthread_once(&crypto_pool_once, crypto_pool_init);
    if (len > sizeof(crypto_pool) / 4)
        return crypto_random_fill(p, len);
    if (crypto_pool_left < len) {
        if (crypto_random_fill(crypto_pool, sizeof(crypto_pool)) != 0)
            return -1;
        crypto_pool_left = sizeof(crypto_pool);
    }
    /* Take from the end and wipe what was taken: no byte is handed out twice. */
    crypto_pool_left -= len;
    memcpy(p, crypto_pool + crypto_pool_left, len);
    explicit_bzero(crypto_pool + crypto_pool_left, len);
    return 0;
}

/* The last id's millisecond and its sequence number within it. */
static uint64_t crypto_id_last_ms;
static unsigned crypto_id_seq;

void
crypto_new_id(const char *prefix, char *out, size_t outlen)
{
    unsigned char rnd[CRYPTO_ID_RAND_BYTES];
    struct timespec ts;
    uint64_t ms;
    uint32_t acc = 0;
    size_t plen, o, i, j = 0;
    int bits = 0;

    if (!out || outlen == 0)
        return;
    out[0] = '\0';
    if (!prefix)
        prefix = "";
    plen = strlen(prefix);
    if (outlen < plen + 2 + CRYPTO_ID_TIME_CHARS + CRYPTO_ID_SEQ_CHARS + CRYPTO_ID_RAND_CHARS)
        return;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return;
    if (crypto_random(rnd, sizeof(rnd)) != 0)
        return;

    memcpy(out, prefix, plen);
    o = plen;
    out[o++] = '_';

    /*
     * Ids of one process never go backwards: within a millisecond (or while
     * the clock steps back) the sequence counts up, and after 1,024 ids the
     * millisecond itself moves on. So calls listed "newest first" by time
     * then id keep their order however fast they are made.
     */
    ms = ((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u) & 0xffffffffffffULL;
    if (ms <= crypto_id_last_ms) {
        ms = crypto_id_last_ms;
        if (++crypto_id_seq == CRYPTO_ID_SEQ_MAX) {
            ms++;
            crypto_id_seq = 0;
        }
    } else {
        crypto_id_seq = 0;
    }
    crypto_id_last_ms = ms;

    /* 48 bits of milliseconds as 10 base32 digits, most significant first. */
    for (i = 0; i < CRYPTO_ID_TIME_CHARS; i++)
        out[o++] = crypto_b32_alphabet[(ms >> (5 * (CRYPTO_ID_TIME_CHARS - 1 - i))) & 31];
    out[o++] = crypto_b32_alphabet[crypto_id_seq >> 5];
    out[o++] = crypto_b32_alphabet[crypto_id_seq & 31];

    /* 100 random bits, 5 at a time. */
    for (i = 0; i < CRYPTO_ID_RAND_CHARS; i++) {
        if (bits < 5) {
            acc = (acc << 8) | rnd[j++];
            bits += 8;
        }
        bits -= 5;
        out[o++] = crypto_b32_alphabet[(acc >> bits) & 31];
        acc &= (1u << bits) - 1;
    }
    out[o] = '\0';
    OPENSSL_cleanse(rnd, sizeof(rnd));
}
