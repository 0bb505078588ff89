/* token: verifying (and minting) the bearer tokens of access control, JWTs
 * (RFC 7519) in JWS compact form (RFC 7515) signed with HS256 (RFC 7518
 * §3.2). Bytes in, verdict and claims out: the clock is a parameter, keys
 * come from a struct keyset, and the header and claims JSON is read through
 * struct json (the caller's, one per thread). No I/O, no globals. */
#ifndef LITEPUSH_TOKEN_H
#define LITEPUSH_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "input_limits.h"
#include "keys.h"
#include "pattern.h"

struct json;

/* Every reason a token is refused. Each is answered 401 with
 * WWW-Authenticate: Bearer error="invalid_token" and token_strerror's text. */
enum token_err {
    TOKEN_OK = 0,
    TOKEN_ERR_TOO_LONG,      /* over LIMITS_TOKEN_MAX bytes */
    TOKEN_ERR_FORMAT,        /* not three dot-separated base64url parts */
    TOKEN_ERR_HEADER,        /* header is not a JSON object with valid fields */
    TOKEN_ERR_ALG,           /* alg is not HS256 (none, HS512, RS256, ...) */
    TOKEN_ERR_UNKNOWN_KID,   /* no key with that kid (absent kid: "default") */
    TOKEN_ERR_SIGNATURE,     /* HMAC does not match */
    TOKEN_ERR_CLAIMS,        /* claims are not a JSON object with valid types */
    TOKEN_ERR_NO_EXP,        /* exp is missing */
    TOKEN_ERR_EXPIRED,       /* now >= exp */
    TOKEN_ERR_NOT_YET_VALID, /* now < nbf */
    TOKEN_ERR_PATTERN,       /* a subscribe/publish entry is not a valid pattern */
};

/* What a valid token grants. */
struct token_claims {
    int64_t exp; /* seconds since 1970; the token is valid while now < exp */
    bool has_nbf;
    int64_t nbf;
    bool has_sub;
    size_t sub_len;
    char sub[LIMITS_TOKEN_SUB_MAX + 1]; /* NUL-terminated; may hold any UTF-8 */
    char kid[KEYS_KID_MAX + 1];
    struct pattern_set subscribe;
    struct pattern_set publish;
};

/* Verifies tok[0..len) against the keys in ks at time now_s (seconds since
 * 1970) and fills *out on TOKEN_OK. The signature is checked (in constant
 * time) before any claim is read. exp == now is expired (RFC 7519 §4.1.4:
 * "on or after"); nbf == now is valid (§4.1.5). A non-integer exp or nbf
 * counts from the next whole second. Loop or any thread; j is the caller's. */
enum token_err token_verify(struct json *j, const struct keyset *ks, const char *tok, size_t len,
                            int64_t now_s, struct token_claims *out);

/* A one-line reason for err (no token bytes in it). */
const char *token_strerror(enum token_err err);

/* Signs header and claims JSON with HS256: writes
 * base64url(header).base64url(claims).base64url(HMAC) and a NUL into
 * out[0..cap). Returns its length, or -1 when it does not fit. */
long token_sign(const char *header, size_t header_len, const char *claims, size_t claims_len,
                const uint8_t *secret, size_t secret_len, char *out, size_t cap);

#endif
