/* crypto: the only module that includes OpenSSL. Base64 (for BLOB rows and
 * Sec-WebSocket-Accept), base64url (RFC 4648 §5, for JWTs), SHA-1,
 * HMAC-SHA256, random bytes, a constant-time compare and a keyed hash
 * (SipHash) for tables whose keys come from clients.
 * All functions are pure apart from crypto_random, thread-safe, and write
 * only into caller-provided buffers, except that a struct crypto_siphash
 * belongs to one thread at a time. */
#ifndef LITEPUSH_CRYPTO_H
#define LITEPUSH_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_SHA1_LEN 20
#define CRYPTO_HMAC_SHA256_LEN 32
#define CRYPTO_SIPHASH_KEY_LEN 16

/* Bytes base64 needs for n input bytes, without a terminating NUL. */
size_t crypto_base64_len(size_t n);
/* Encodes src into out (standard alphabet, padded). out must hold
 * crypto_base64_len(len) + 1 bytes; it is NUL-terminated.
 * Returns the encoded length. */
size_t crypto_base64_encode(const void *src, size_t len, char *out);
/* Decodes padded standard base64. out must hold 3 * (len / 4) bytes.
 * Returns the decoded length, or -1 when src is not valid base64. */
long crypto_base64_decode(const char *src, size_t len, uint8_t *out);
/* Bytes base64url needs for n input bytes, without padding or NUL. */
size_t crypto_base64url_len(size_t n);
/* Encodes src as unpadded base64url (RFC 7515 §2) into out, which must hold
 * crypto_base64url_len(len) + 1 bytes; it is NUL-terminated. Returns the
 * encoded length. */
size_t crypto_base64url_encode(const void *src, size_t len, char *out);
/* Decodes unpadded base64url, strictly: only the characters A-Z a-z 0-9 - _,
 * no '=' padding, no whitespace, a length that is not 1 more than a multiple
 * of 4, and zero bits after the last byte (so each value has exactly one
 * encoding). out must hold 3 * len / 4 bytes. Returns the decoded length, or
 * -1 for anything else. */
long crypto_base64url_decode(const char *src, size_t len, uint8_t *out);
/* HMAC-SHA256 (RFC 2104) of msg under key into out[CRYPTO_HMAC_SHA256_LEN].
 * Returns false only if OpenSSL fails (out is then zero-filled). */
bool crypto_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                        uint8_t out[CRYPTO_HMAC_SHA256_LEN]);
/* SHA-1 of src into out[CRYPTO_SHA1_LEN]. */
void crypto_sha1(const void *src, size_t len, uint8_t out[CRYPTO_SHA1_LEN]);
/* Fills out with cryptographically strong random bytes; false on failure. */
bool crypto_random(void *out, size_t len);
/* Compares two equal-length buffers in time independent of their contents. */
bool crypto_equal(const void *a, const void *b, size_t len);

/* SipHash-2-4 with a fixed key: a hash of client-chosen strings (channel
 * names) that nobody who does not know the key can make collide. Opaque;
 * created by crypto_siphash_new, freed by crypto_siphash_free (NULL is a
 * no-op). Used by one thread at a time. */
struct crypto_siphash;
/* A hasher keyed with key[0..CRYPTO_SIPHASH_KEY_LEN) (copied); NULL when
 * OpenSSL cannot provide SipHash or memory runs out. */
struct crypto_siphash *crypto_siphash_new(const uint8_t key[CRYPTO_SIPHASH_KEY_LEN]);
void crypto_siphash_free(struct crypto_siphash *h);
/* The 64-bit SipHash-2-4 of src[0..len), as the reference's little-endian
 * output read as an integer. Returns 0 if OpenSSL fails (then every name
 * hashes alike: slower, never wrong). */
uint64_t crypto_siphash(struct crypto_siphash *h, const void *src, size_t len);

#endif
