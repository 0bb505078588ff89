/* crypto: the only module that includes OpenSSL. Base64 (for BLOB rows and
 * Sec-WebSocket-Accept), SHA-1, random bytes, a constant-time compare and
 * a keyed hash (SipHash) for tables whose keys come from clients.
 * All functions are pure apart from crypto_random, thread-safe, and write
 * only into caller-provided buffers, except that a struct crypto_siphash
 * belongs to one thread at a time. */
#ifndef LITEPUSH_CRYPTO_H
#define LITEPUSH_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_SHA1_LEN 20
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
