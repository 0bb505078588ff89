/* libFuzzer target for token (and the base64url under it). Two readings of
 * each input:
 *   1. the bytes as a token, verified at a fixed time: never crashes, never
 *      reads past len (the copy is exactly sized), gives the same verdict
 *      twice, and an accepted token satisfies now < exp, nbf <= now and has
 *      only valid patterns; token_strerror has a reason for every verdict;
 *   2. the bytes up to the first newline as header JSON and the rest as
 *      claims JSON, signed with the key, so the claims parser is reached:
 *      the same checks, and a token signed with another key is refused
 *      whatever the JSON says;
 * plus base64url: decode then encode gives back the input exactly
 * (one spelling per value), and encode then decode gives back the bytes. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "json.h"
#include "keys.h"
#include "token.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

#define NOW 1700000000
static const char KEYS[] = "0123456789abcdef0123456789abcdef\n"
                           "k2 k2-secret-k2-secret-k2-secret-k2-secret\n";
static const char OTHER[] = "another-secret-another-secret-xx";

static struct json *j;
static struct keyset *ks;

static void check_claims(enum token_err e, const struct token_claims *c)
{
    CHECK(strcmp(token_strerror(e), "unknown error") != 0);
    if (e != TOKEN_OK)
        return;
    CHECK(NOW < c->exp);
    CHECK(!c->has_nbf || c->nbf <= NOW);
    CHECK(c->sub_len <= LIMITS_TOKEN_SUB_MAX && strlen(c->sub) == c->sub_len);
    for (size_t i = 0; i < c->subscribe.count; i++)
        CHECK(pattern_is_valid(c->subscribe.bytes[i], c->subscribe.lens[i]));
    for (size_t i = 0; i < c->publish.count; i++)
        CHECK(pattern_is_valid(c->publish.bytes[i], c->publish.lens[i]));
}

static enum token_err verify_copy(const char *tok, size_t len, struct token_claims *c)
{
    char *copy = malloc(len ? len : 1);
    CHECK(copy != NULL);
    if (len)
        memcpy(copy, tok, len);
    enum token_err e = token_verify(j, ks, copy, len, NOW, c);
    free(copy);
    return e;
}

static void as_token(const uint8_t *data, size_t size)
{
    static struct token_claims a, b;
    enum token_err e1 = verify_copy((const char *)data, size, &a);
    enum token_err e2 = verify_copy((const char *)data, size, &b);
    CHECK(e1 == e2);
    check_claims(e1, &a);
}

static void as_json(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    if (nl == NULL)
        return;
    size_t hlen = (size_t)(nl - data), clen = size - hlen - 1;
    static char tok[LIMITS_TOKEN_MAX * 2];
    static struct token_claims c;
    long n = token_sign((const char *)data, hlen, (const char *)nl + 1, clen, (const uint8_t *)KEYS,
                        32, tok, sizeof tok);
    if (n < 0)
        return;
    enum token_err e = verify_copy(tok, (size_t)n, &c);
    check_claims(e, &c);
    /* The same JSON under a key we do not hold never passes. */
    n = token_sign((const char *)data, hlen, (const char *)nl + 1, clen, (const uint8_t *)OTHER,
                   sizeof OTHER - 1, tok, sizeof tok);
    CHECK(verify_copy(tok, (size_t)n, &c) != TOKEN_OK);
}

static void base64url(const uint8_t *data, size_t size)
{
    if (size > 3000)
        return;
    static uint8_t dec[3000];
    static char enc[4100];
    long n = crypto_base64url_decode((const char *)data, size, dec);
    if (n >= 0) {
        CHECK((size_t)n <= 3 * size / 4);
        size_t m = crypto_base64url_encode(dec, (size_t)n, enc);
        CHECK(m == size && memcmp(enc, data, size) == 0);
    }
    size_t m = crypto_base64url_encode(data, size, enc);
    CHECK(m == crypto_base64url_len(size));
    CHECK(crypto_base64url_decode(enc, m, dec) == (long)size);
    CHECK(size == 0 || memcmp(dec, data, size) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (j == NULL) {
        char err[256];
        j = json_open(err, sizeof err);
        ks = keys_parse(KEYS, sizeof KEYS - 1, err, sizeof err);
        CHECK(j != NULL && ks != NULL);
    }
    as_token(data, size);
    as_json(data, size);
    base64url(data, size);
    return 0;
}
