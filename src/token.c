/* token: see token.h.
 *
 * Order of checks: size, shape (three base64url parts), header (a JSON
 * object, alg exactly "HS256", kid a string naming a key), signature in
 * constant time, and only then the claims. An attacker who does not hold a
 * key therefore never reaches the claims parser.
 *
 * NOTES: a "crit" header parameter is refused, since we understand no
 * extension (RFC 7515 §4.1.11). "typ" and other header parameters are
 * ignored. Unknown claims are ignored (RFC 7519 §4). The decoded header and
 * claims may not contain a NUL byte, so SQLite's JSON functions see every
 * byte that was signed. */
#include "token.h"

#include <string.h>

#include "crypto.h"
#include "json.h"

/* The three parts of a compact JWS. */
struct parts {
    const char *header, *claims, *sig;
    size_t header_len, claims_len, sig_len;
};

static bool split(const char *tok, size_t len, struct parts *p)
{
    const char *d1 = memchr(tok, '.', len);
    if (d1 == NULL)
        return false;
    const char *rest = d1 + 1;
    size_t rest_len = len - (size_t)(rest - tok);
    const char *d2 = memchr(rest, '.', rest_len);
    if (d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)) != NULL)
        return false;
    p->header = tok;
    p->header_len = (size_t)(d1 - tok);
    p->claims = rest;
    p->claims_len = (size_t)(d2 - rest);
    p->sig = d2 + 1;
    p->sig_len = len - (size_t)(p->sig - tok);
    return p->header_len > 0 && p->claims_len > 0;
}

/* Decodes one part into buf (LIMITS_TOKEN_MAX bytes); -1 when it is not
 * strict base64url or holds a NUL. */
static long decode_part(const char *s, size_t len, uint8_t *buf)
{
    long n = crypto_base64url_decode(s, len, buf);
    if (n < 0 || memchr(buf, '\0', (size_t)n) != NULL)
        return -1;
    return n;
}

static enum token_err read_header(struct json *j, const char *doc, size_t len,
                                  struct token_claims *out)
{
    struct json_value v;
    if (!json_get(j, doc, len, "$", &v) || v.type != JSON_OBJECT)
        return TOKEN_ERR_HEADER;
    if (!json_get(j, doc, len, "$.crit", &v) || v.type != JSON_ABSENT)
        return TOKEN_ERR_HEADER;
    if (!json_get(j, doc, len, "$.alg", &v) || v.type != JSON_TEXT || v.text_len != 5 ||
        memcmp(v.text, "HS256", 5) != 0)
        return TOKEN_ERR_ALG;
    if (!json_get(j, doc, len, "$.kid", &v))
        return TOKEN_ERR_HEADER;
    if (v.type == JSON_ABSENT) {
        memcpy(out->kid, "default", 8);
    } else if (v.type == JSON_TEXT && v.text_len > 0 && v.text_len <= KEYS_KID_MAX) {
        memcpy(out->kid, v.text, v.text_len);
        out->kid[v.text_len] = '\0';
    } else if (v.type == JSON_TEXT) {
        return TOKEN_ERR_UNKNOWN_KID;
    } else {
        return TOKEN_ERR_HEADER;
    }
    return TOKEN_OK;
}

/* A NumericDate (RFC 7519 §2): an integer, or a real taken from the next
 * whole second. false for any other type or a value out of range. */
static bool numeric_date(const struct json_value *v, int64_t *out)
{
    if (v->type == JSON_INTEGER) {
        *out = v->integer;
        return true;
    }
    if (v->type == JSON_REAL && v->real > -9.0e15 && v->real < 9.0e15) {
        int64_t whole = (int64_t)v->real; /* toward zero */
        *out = (double)whole < v->real ? whole + 1 : whole;
        return true;
    }
    return false;
}

static bool add_pattern(const char *text, size_t len, void *ctx)
{
    return pattern_set_add(ctx, text, len) == PATTERN_OK;
}

static enum token_err read_claims(struct json *j, const char *doc, size_t len, int64_t now_s,
                                  struct token_claims *out)
{
    struct json_value v;
    if (!json_get(j, doc, len, "$", &v) || v.type != JSON_OBJECT)
        return TOKEN_ERR_CLAIMS;
    if (!json_get(j, doc, len, "$.exp", &v))
        return TOKEN_ERR_CLAIMS;
    if (v.type == JSON_ABSENT)
        return TOKEN_ERR_NO_EXP;
    if (!numeric_date(&v, &out->exp))
        return TOKEN_ERR_CLAIMS;
    if (!json_get(j, doc, len, "$.nbf", &v))
        return TOKEN_ERR_CLAIMS;
    if (v.type != JSON_ABSENT) {
        if (!numeric_date(&v, &out->nbf))
            return TOKEN_ERR_CLAIMS;
        out->has_nbf = true;
    }
    if (!json_get(j, doc, len, "$.sub", &v))
        return TOKEN_ERR_CLAIMS;
    if (v.type != JSON_ABSENT) {
        if (v.type != JSON_TEXT || v.text_len > LIMITS_TOKEN_SUB_MAX)
            return TOKEN_ERR_CLAIMS;
        memcpy(out->sub, v.text, v.text_len);
        out->sub[v.text_len] = '\0';
        out->sub_len = v.text_len;
        out->has_sub = true;
    }
    if (!json_get(j, doc, len, "$.litepush", &v))
        return TOKEN_ERR_CLAIMS;
    if (v.type != JSON_ABSENT && v.type != JSON_OBJECT)
        return TOKEN_ERR_CLAIMS;
    if (v.type == JSON_OBJECT) {
        /* json_each_text refuses any non-string element, add_pattern an
         * invalid pattern or the 65th. */
        static const char *const paths[2] = {"$.litepush.subscribe", "$.litepush.publish"};
        struct pattern_set *sets[2] = {&out->subscribe, &out->publish};
        for (int i = 0; i < 2; i++) {
            if (!json_get(j, doc, len, paths[i], &v))
                return TOKEN_ERR_CLAIMS;
            if (v.type != JSON_ABSENT && v.type != JSON_ARRAY)
                return TOKEN_ERR_CLAIMS;
            if (!json_each_text(j, doc, len, paths[i], add_pattern, sets[i]))
                return TOKEN_ERR_PATTERN;
        }
    }
    /* RFC 7519 §4.1.4 and §4.1.5, with no leeway: the servers' clocks are
     * the token issuer's (both normally run on the same host). */
    if (now_s >= out->exp)
        return TOKEN_ERR_EXPIRED;
    if (out->has_nbf && now_s < out->nbf)
        return TOKEN_ERR_NOT_YET_VALID;
    return TOKEN_OK;
}

enum token_err token_verify(struct json *j, const struct keyset *ks, const char *tok, size_t len,
                            int64_t now_s, struct token_claims *out)
{
    memset(out, 0, sizeof *out);
    if (len > LIMITS_TOKEN_MAX)
        return TOKEN_ERR_TOO_LONG;
    struct parts p;
    if (!split(tok, len, &p))
        return TOKEN_ERR_FORMAT;
    uint8_t buf[LIMITS_TOKEN_MAX];
    long n = decode_part(p.header, p.header_len, buf);
    if (n < 0)
        return TOKEN_ERR_FORMAT;
    enum token_err err = read_header(j, (const char *)buf, (size_t)n, out);
    if (err != TOKEN_OK)
        return err;
    size_t secret_len;
    const uint8_t *secret = keys_find(ks, out->kid, strlen(out->kid), &secret_len);
    if (secret == NULL)
        return TOKEN_ERR_UNKNOWN_KID;
    uint8_t sig[LIMITS_TOKEN_MAX];
    if (crypto_base64url_decode(p.sig, p.sig_len, sig) != CRYPTO_HMAC_SHA256_LEN)
        return TOKEN_ERR_SIGNATURE;
    /* RFC 7515 §5.2: the signing input is the first two parts as sent. */
    uint8_t mac[CRYPTO_HMAC_SHA256_LEN];
    if (!crypto_hmac_sha256(secret, secret_len, p.header, p.header_len + 1 + p.claims_len, mac) ||
        !crypto_equal(mac, sig, sizeof mac))
        return TOKEN_ERR_SIGNATURE;
    n = decode_part(p.claims, p.claims_len, buf);
    if (n < 0)
        return TOKEN_ERR_FORMAT;
    return read_claims(j, (const char *)buf, (size_t)n, now_s, out);
}

const char *token_strerror(enum token_err err)
{
    switch (err) {
    case TOKEN_OK:
        return "ok";
    case TOKEN_ERR_TOO_LONG:
        return "token too long";
    case TOKEN_ERR_FORMAT:
        return "token is not a JWT (three base64url parts)";
    case TOKEN_ERR_HEADER:
        return "token header is not valid";
    case TOKEN_ERR_ALG:
        return "token algorithm is not HS256";
    case TOKEN_ERR_UNKNOWN_KID:
        return "token key id is unknown";
    case TOKEN_ERR_SIGNATURE:
        return "token signature does not match";
    case TOKEN_ERR_CLAIMS:
        return "token claims are not valid";
    case TOKEN_ERR_NO_EXP:
        return "token has no exp claim";
    case TOKEN_ERR_EXPIRED:
        return "token expired";
    case TOKEN_ERR_NOT_YET_VALID:
        return "token not valid yet (nbf)";
    case TOKEN_ERR_PATTERN:
        return "token has an invalid channel pattern";
    }
    return "unknown error";
}

long token_sign(const char *header, size_t header_len, const char *claims, size_t claims_len,
                const uint8_t *secret, size_t secret_len, char *out, size_t cap)
{
    size_t need = crypto_base64url_len(header_len) + 1 + crypto_base64url_len(claims_len) + 1 +
                  crypto_base64url_len(CRYPTO_HMAC_SHA256_LEN) + 1;
    if (need > cap)
        return -1;
    size_t n = crypto_base64url_encode(header, header_len, out);
    out[n++] = '.';
    n += crypto_base64url_encode(claims, claims_len, out + n);
    uint8_t mac[CRYPTO_HMAC_SHA256_LEN];
    if (!crypto_hmac_sha256(secret, secret_len, out, n, mac))
        return -1;
    out[n++] = '.';
    n += crypto_base64url_encode(mac, sizeof mac, out + n);
    return (long)n;
}
