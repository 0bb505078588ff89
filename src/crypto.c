/* crypto: thin wrappers over OpenSSL's libcrypto, so that no other file
 * includes an OpenSSL header. */
#include "crypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

size_t crypto_base64_len(size_t n)
{
    return 4 * ((n + 2) / 3);
}

size_t crypto_base64_encode(const void *src, size_t len, char *out)
{
    /* EVP_EncodeBlock takes an int length; feed it in chunks that are a
     * multiple of 3 so the concatenation is one valid encoding. */
    const unsigned char *in = src;
    size_t written = 0;
    const size_t chunk = 3u * 1024 * 1024;
    do {
        size_t n = len < chunk ? len : chunk;
        written += (size_t)EVP_EncodeBlock((unsigned char *)out + written, in, (int)n);
        in += n;
        len -= n;
    } while (len > 0);
    out[written] = '\0';
    return written;
}

long crypto_base64_decode(const char *src, size_t len, uint8_t *out)
{
    if (len % 4 != 0 || len > 0x7fffffff)
        return -1;
    if (len == 0)
        return 0;
    /* EVP_DecodeBlock ignores padding in its count, and accepts leading
     * whitespace; reject what it would silently tolerate. */
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        bool is_alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        bool is_pad = c == '=' && i >= len - 2 && (i == len - 1 || src[len - 1] == '=');
        if (!is_alnum && c != '+' && c != '/' && !is_pad)
            return -1;
    }
    int n = EVP_DecodeBlock(out, (const unsigned char *)src, (int)len);
    if (n < 0)
        return -1;
    if (src[len - 1] == '=')
        n--;
    if (src[len - 2] == '=')
        n--;
    return n;
}

size_t crypto_base64url_len(size_t n)
{
    return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

static const char URL_ALPHABET[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t crypto_base64url_encode(const void *src, size_t len, char *out)
{
    const uint8_t *in = src;
    size_t n = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[n++] = URL_ALPHABET[v >> 18];
        out[n++] = URL_ALPHABET[(v >> 12) & 63];
        out[n++] = URL_ALPHABET[(v >> 6) & 63];
        out[n++] = URL_ALPHABET[v & 63];
    }
    if (len - i == 1) {
        out[n++] = URL_ALPHABET[in[i] >> 2];
        out[n++] = URL_ALPHABET[(in[i] & 3) << 4];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
        out[n++] = URL_ALPHABET[v >> 10];
        out[n++] = URL_ALPHABET[(v >> 4) & 63];
        out[n++] = URL_ALPHABET[(v & 15) << 2];
    }
    out[n] = '\0';
    return n;
}

static int url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long crypto_base64url_decode(const char *src, size_t len, uint8_t *out)
{
    /* RFC 7515 §2 and appendix C: base64url without padding. A tail of one
     * character cannot carry a byte; the bits after the last byte must be
     * zero (RFC 4648 §3.5 lets a decoder refuse them, and we do, so that a
     * signature or claims have one spelling). */
    if (len % 4 == 1 || len > 0x7fffffff)
        return -1;
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = url_value(src[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)
        return -1;
    return (long)n;
}

bool crypto_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                        uint8_t out[CRYPTO_HMAC_SHA256_LEN])
{
    unsigned int n = 0;
    if (key_len > 0x7fffffff ||
        HMAC(EVP_sha256(), key, (int)key_len, msg, msg_len, out, &n) == NULL ||
        n != CRYPTO_HMAC_SHA256_LEN) {
        memset(out, 0, CRYPTO_HMAC_SHA256_LEN);
        return false;
    }
    return true;
}

void crypto_sha1(const void *src, size_t len, uint8_t out[CRYPTO_SHA1_LEN])
{
    SHA1(src, len, out);
}

bool crypto_random(void *out, size_t len)
{
    return len <= 0x7fffffff && RAND_bytes(out, (int)len) == 1;
}

bool crypto_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

/* One EVP_MAC context per hasher, keyed once: EVP_MAC_init with a NULL key
 * restarts SipHash with the key already set (OpenSSL 3), which costs no
 * allocation per hash. */
struct crypto_siphash {
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx;
};

void crypto_siphash_free(struct crypto_siphash *h)
{
    if (h == NULL)
        return;
    EVP_MAC_CTX_free(h->ctx);
    EVP_MAC_free(h->mac);
    free(h);
}

struct crypto_siphash *crypto_siphash_new(const uint8_t key[CRYPTO_SIPHASH_KEY_LEN])
{
    struct crypto_siphash *h = calloc(1, sizeof *h);
    if (h == NULL)
        goto fail;
    h->mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    if (h->mac == NULL)
        goto fail;
    h->ctx = EVP_MAC_CTX_new(h->mac);
    if (h->ctx == NULL)
        goto fail;
    size_t size = 8; /* SipHash-2-4 with a 64-bit output */
    OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
                           OSSL_PARAM_construct_end()};
    if (EVP_MAC_init(h->ctx, key, CRYPTO_SIPHASH_KEY_LEN, params) != 1)
        goto fail;
    return h;
fail:
    crypto_siphash_free(h);
    return NULL;
}

uint64_t crypto_siphash(struct crypto_siphash *h, const void *src, size_t len)
{
    unsigned char out[8];
    size_t out_len = 0;
    if (EVP_MAC_init(h->ctx, NULL, 0, NULL) != 1 || EVP_MAC_update(h->ctx, src, len) != 1 ||
        EVP_MAC_final(h->ctx, out, &out_len, sizeof out) != 1 || out_len != sizeof out)
        return 0;
    uint64_t v = 0;
    for (size_t i = sizeof out; i-- > 0;)
        v = v << 8 | out[i];
    return v;
}
