/* crypto: thin wrappers over OpenSSL's libcrypto, so that no other file
 * includes an OpenSSL header. */
#include "crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

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
