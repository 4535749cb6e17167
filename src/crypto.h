/*
 * crypto.h: the few cryptographic primitives callgate needs, on OpenSSL's
 * libcrypto: SHA-256 hex (tenant API keys are stored only as hashes),
 * HMAC-SHA256 (Standard Webhooks signatures), base64, constant-time
 * comparison, and random identifiers.
 */
#ifndef CG_CRYPTO_H
#define CG_CRYPTO_H

#include <stddef.h>

#define CRYPTO_SHA256_HEX_LEN 64

/* Lower-case hex SHA-256 of data into out (at least 65 bytes). */
void crypto_sha256_hex(const void *data, size_t len, char *out);

/* Raw HMAC-SHA256 (32 bytes) into mac. Returns 0 or -1. */
int crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                       unsigned char mac[32]);

/* Standard base64 with padding. Returns the length written (NUL-terminated) or -1. */
int crypto_base64_encode(const void *data, size_t len, char *out, size_t outlen);

/* Decode standard base64 (padding optional). Returns bytes written or -1. */
int crypto_base64_decode(const char *in, size_t inlen, unsigned char *out, size_t outlen);

/*
 * Compare two byte strings in time that depends only on their lengths.
 * Returns 1 when equal, else 0.
 */
int crypto_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Fill buf with cryptographically strong random bytes. Returns 0 or -1. */
int crypto_random(void *buf, size_t len);

/*
 * Mint an identifier "<prefix>_<32 chars>": the millisecond clock in 10
 * Crockford base32 characters, a sequence number within the millisecond in
 * 2, then 100 random bits in 20 more. Ids sort by creation time, strictly
 * within one process, and stay unguessable (the contract asks >= 96 bits).
 * out needs at least strlen(prefix) + 34 bytes; a shorter one gets "".
 */
void crypto_new_id(const char *prefix, char *out, size_t outlen);

#endif
