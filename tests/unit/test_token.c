/* Unit tests for token (HS256 JWT verification and signing) and the
 * base64url and HMAC-SHA256 it uses from crypto: the RFC 7515 A.1 example,
 * every boundary of exp and nbf, every refused alg, unknown and malformed
 * kid, signatures of the wrong key, length and spelling, padding and
 * non-canonical base64url, header/claims type confusion, patterns, and every
 * truncation of a valid token. Tokens are built from literal JSON with
 * token_sign, and each sits before a guard page. */
#include <stdint.h>

#include "crypto.h"
#include "json.h"
#include "keys.h"
#include "test.h"
#include "token.h"

#define S(lit) lit, sizeof(lit) - 1
#define NOW 1700000000

static struct json *j;
static struct keyset *ks;
static const char SECRET[] = "0123456789abcdef0123456789abcdef"; /* kid default */
static const char SECRET_K2[] = "k2-secret-k2-secret-k2-secret-k2-secret";
static const char KEYFILE[] = "0123456789abcdef0123456789abcdef\n"
                              "k2 k2-secret-k2-secret-k2-secret-k2-secret\n";

static char tokbuf[LIMITS_TOKEN_MAX * 2];

/* header and claims JSON signed with secret; returns the token (static). */
static const char *mint(const char *header, const char *claims, const char *secret)
{
    long n = token_sign(header, strlen(header), claims, strlen(claims), (const uint8_t *)secret,
                        strlen(secret), tokbuf, sizeof tokbuf);
    return n < 0 ? "" : tokbuf;
}

static enum token_err verify_at(const char *tok, int64_t now, struct token_claims *c)
{
    size_t len = strlen(tok);
    return token_verify(j, ks, guarded(tok, len), len, now, c);
}

static enum token_err verify(const char *tok)
{
    static struct token_claims c;
    return verify_at(tok, NOW, &c);
}

#define H "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define EXP "\"exp\":1700000100"

static void test_rfc7515_a1(void)
{
    /* RFC 7515 appendix A.1: the JWK's k, decoded, is the key. */
    static const char k[] =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUu"
        "TwjAzZr1Z9CAow";
    uint8_t key[64];
    CHECK_INT(crypto_base64url_decode(k, sizeof k - 1, key), 64);
    static const char header[] = "{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}";
    static const char claims[] =
        "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";
    char out[512];
    long n = token_sign(S(header), S(claims), key, 64, out, sizeof out);
    CHECK_MEM(out, n,
              "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
              ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb2"
              "90Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    CHECK_INT(token_sign(S(header), S(claims), key, 64, out, (size_t)n), -1); /* no room for NUL */
}

static void test_base64url(void)
{
    static const struct {
        const char *in;
        long len; /* decoded length or -1 */
        const char *out;
    } cases[] = {
        {"", 0, ""},
        {"Zg", 1, "f"},
        {"Zm8", 2, "fo"},
        {"Zm9v", 3, "foo"},
        {"Zm9vYg", 4, "foob"},
        {"Zg==", -1, NULL},
        {"Zm8=", -1, NULL},
        {"Z", -1, NULL},
        {"Zh", -1, NULL}, /* non-zero bits after the last byte */
        {"Zm9", -1, NULL},
        {"Zm+v", -1, NULL},
        {"Zm/v", -1, NULL},
        {"Zm v", -1, NULL},
        {"-_-_", 3, "\xfb\xff\xbf"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t out[16];
        size_t len = strlen(cases[i].in);
        long n = crypto_base64url_decode(guarded(cases[i].in, len), len, out);
        CHECK_INT(n, cases[i].len);
        if (n >= 0 && cases[i].out != NULL)
            CHECK_MEM(out, n, cases[i].out);
        if (n >= 0) {
            char enc[32];
            CHECK_INT(crypto_base64url_encode(out, (size_t)n, enc), len);
            CHECK(strcmp(enc, cases[i].in) == 0);
            CHECK_INT(crypto_base64url_len((size_t)n), len);
        }
    }
}

static void test_valid(void)
{
    struct token_claims c;
    const char *tok =
        mint("{\"alg\":\"HS256\",\"kid\":\"k2\"}",
             "{\"exp\":1700000100,\"nbf\":1699999000,\"sub\":\"alice\",\"x\":[1],"
             "\"litepush\":{\"subscribe\":[\"news\",\"room:*\"],\"publish\":[\"chat\"]}}",
             SECRET_K2);
    CHECK_INT(verify_at(tok, NOW, &c), TOKEN_OK);
    CHECK_INT(c.exp, 1700000100);
    CHECK(c.has_nbf && c.nbf == 1699999000);
    CHECK(c.has_sub);
    CHECK_MEM(c.sub, c.sub_len, "alice");
    CHECK(strcmp(c.kid, "k2") == 0);
    CHECK_INT(c.subscribe.count, 2);
    CHECK(pattern_set_covers(&c.subscribe, S("room:5")));
    CHECK(!pattern_set_covers(&c.subscribe, S("chat")));
    CHECK(pattern_set_covers(&c.publish, S("chat")));
    /* No kid: "default"; no litepush claim: a valid token without rights. */
    tok = mint(H, "{" EXP "}", SECRET);
    CHECK_INT(verify_at(tok, NOW, &c), TOKEN_OK);
    CHECK(strcmp(c.kid, "default") == 0);
    CHECK(!c.has_sub && !c.has_nbf);
    CHECK_INT(c.subscribe.count + c.publish.count, 0);
    /* An empty litepush object is fine too. */
    CHECK_INT(verify(mint(H, "{" EXP ",\"litepush\":{}}", SECRET)), TOKEN_OK);
}

static void test_times(void)
{
    static const struct {
        const char *claims;
        int64_t now;
        enum token_err want;
    } cases[] = {
        {"{\"exp\":100}", 99, TOKEN_OK},
        {"{\"exp\":100}", 100, TOKEN_ERR_EXPIRED}, /* exp == now: expired */
        {"{\"exp\":100}", 101, TOKEN_ERR_EXPIRED},
        {"{\"exp\":100,\"nbf\":50}", 50, TOKEN_OK}, /* nbf == now: valid */
        {"{\"exp\":100,\"nbf\":50}", 49, TOKEN_ERR_NOT_YET_VALID},
        {"{\"exp\":100,\"nbf\":100}", 100, TOKEN_ERR_EXPIRED},
        {"{\"exp\":100.5}", 100, TOKEN_OK},
        {"{\"exp\":100.5}", 101, TOKEN_ERR_EXPIRED},
        {"{\"exp\":100,\"nbf\":49.5}", 49, TOKEN_ERR_NOT_YET_VALID},
        {"{\"exp\":100,\"nbf\":49.5}", 50, TOKEN_OK},
        {"{\"exp\":-5}", 0, TOKEN_ERR_EXPIRED},
        {"{\"exp\":9223372036854775807}", INT64_MAX - 1, TOKEN_OK},
        {"{\"nbf\":1}", 10, TOKEN_ERR_NO_EXP},
        {"{\"exp\":null}", 10, TOKEN_ERR_CLAIMS},
        {"{\"exp\":\"100\"}", 10, TOKEN_ERR_CLAIMS},
        {"{\"exp\":true}", 10, TOKEN_ERR_CLAIMS},
        {"{\"exp\":[100]}", 10, TOKEN_ERR_CLAIMS},
        {"{\"exp\":1e300}", 10, TOKEN_ERR_CLAIMS},
        {"{\"exp\":100,\"nbf\":\"1\"}", 10, TOKEN_ERR_CLAIMS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct token_claims c;
        enum token_err e = verify_at(mint(H, cases[i].claims, SECRET), cases[i].now, &c);
        if (e != cases[i].want)
            fprintf(stderr, "case %zu: %s at %lld\n", i, cases[i].claims, (long long)cases[i].now);
        CHECK_INT(e, cases[i].want);
    }
}

static void test_header(void)
{
    static const struct {
        const char *header;
        enum token_err want;
    } cases[] = {
        {"{\"alg\":\"none\"}", TOKEN_ERR_ALG},
        {"{\"alg\":\"HS512\"}", TOKEN_ERR_ALG},
        {"{\"alg\":\"HS384\"}", TOKEN_ERR_ALG},
        {"{\"alg\":\"RS256\"}", TOKEN_ERR_ALG},
        {"{\"alg\":\"ES256\"}", TOKEN_ERR_ALG},
        {"{\"alg\":\"hs256\"}", TOKEN_ERR_ALG},
        {"{\"alg\":\"HS256 \"}", TOKEN_ERR_ALG},
        {"{\"alg\":[\"HS256\"]}", TOKEN_ERR_ALG},
        {"{\"alg\":null}", TOKEN_ERR_ALG},
        {"{\"typ\":\"JWT\"}", TOKEN_ERR_ALG},
        {"{\"alg\":\"HS256\",\"kid\":\"nope\"}", TOKEN_ERR_UNKNOWN_KID},
        {"{\"alg\":\"HS256\",\"kid\":\"\"}", TOKEN_ERR_UNKNOWN_KID},
        {"{\"alg\":\"HS256\",\"kid\":\"K2\"}", TOKEN_ERR_UNKNOWN_KID},
        {"{\"alg\":\"HS256\",\"kid\":2}", TOKEN_ERR_HEADER},
        {"{\"alg\":\"HS256\",\"kid\":null}", TOKEN_ERR_HEADER},
        {"{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", TOKEN_ERR_HEADER},
        {"[\"HS256\"]", TOKEN_ERR_HEADER},
        {"\"HS256\"", TOKEN_ERR_HEADER},
        {"{\"alg\":\"HS256\"", TOKEN_ERR_HEADER},
        {"", TOKEN_ERR_FORMAT},
        {"{\"alg\":\"HS256\",\"kid\":\"default\"}", TOKEN_OK},
        {"{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", TOKEN_OK},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum token_err e = verify(mint(cases[i].header, "{" EXP "}", SECRET));
        if (e != cases[i].want)
            fprintf(stderr, "case %zu: %s\n", i, cases[i].header);
        CHECK_INT(e, cases[i].want);
    }
    /* alg none as such tools send it: an empty signature. */
    char none[256];
    char h[64], c[64];
    crypto_base64url_encode(S("{\"alg\":\"none\"}"), h);
    crypto_base64url_encode(S("{" EXP "}"), c);
    snprintf(none, sizeof none, "%s.%s.", h, c);
    CHECK_INT(verify(none), TOKEN_ERR_ALG);
    /* A NUL inside the header is refused before SQLite could cut at it. */
    char nul[256];
    crypto_base64url_encode("{\"alg\":\"HS256\"}\0x", 17, h);
    snprintf(nul, sizeof nul, "%s.%s.%s", h, c, "AAAA");
    CHECK_INT(verify(nul), TOKEN_ERR_FORMAT);
}

static void test_signature(void)
{
    const char *good = mint(H, "{" EXP "}", SECRET);
    char tok[512];
    snprintf(tok, sizeof tok, "%s", good);
    size_t len = strlen(tok);
    CHECK_INT(verify(tok), TOKEN_OK);
    /* Each of the signature's 43 characters changed. */
    char *sig = strrchr(tok, '.') + 1;
    for (size_t i = 0; sig[i] != '\0'; i++) {
        char saved = sig[i];
        sig[i] = saved == 'A' ? 'B' : 'A';
        enum token_err e = verify(tok);
        CHECK(e == TOKEN_ERR_SIGNATURE);
        sig[i] = saved;
    }
    /* The last character carries 2 unused bits: a different spelling of
     * the same MAC is refused too. */
    CHECK_INT(verify(tok), TOKEN_OK);
    static const char ALPHA[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *last = tok + len - 1;
    char saved_last = *last;
    *last = ALPHA[(strchr(ALPHA, saved_last) - ALPHA) ^ 1];
    CHECK_INT(verify(tok), TOKEN_ERR_SIGNATURE);
    *last = saved_last;
    /* Padding, truncation, an extra byte. */
    snprintf(tok + len, sizeof tok - len, "=");
    CHECK_INT(verify(tok), TOKEN_ERR_SIGNATURE);
    tok[len - 1] = '\0';
    CHECK_INT(verify(tok), TOKEN_ERR_SIGNATURE);
    snprintf(tok, sizeof tok, "%sAAA", good);
    CHECK_INT(verify(tok), TOKEN_ERR_SIGNATURE);
    /* Signed with the other key, or with a key not in the set. */
    CHECK_INT(verify(mint(H, "{" EXP "}", SECRET_K2)), TOKEN_ERR_SIGNATURE);
    CHECK_INT(verify(mint(H, "{" EXP "}", "0123456789abcdef0123456789abcdeX")),
              TOKEN_ERR_SIGNATURE);
    /* An expired token with a bad signature says "signature": the claims of
     * an unsigned token are never read. */
    snprintf(tok, sizeof tok, "%s", mint(H, "{\"exp\":1}", SECRET_K2));
    CHECK_INT(verify(tok), TOKEN_ERR_SIGNATURE);
    /* Padding in the header or claims part. */
    snprintf(tok, sizeof tok, "%s", mint("{\"alg\":\"HS256\"} ", "{" EXP "}", SECRET));
    char padded[600];
    char *dot = strchr(tok, '.');
    snprintf(padded, sizeof padded, "%.*s=%s", (int)(dot - tok), tok, dot);
    CHECK_INT(verify(padded), TOKEN_ERR_FORMAT);
}

static void test_shape(void)
{
    static const char *const cases[] = {
        "",
        ".",
        "..",
        "...",
        "a",
        "a.b",
        "a.b.c.d",
        ".b.c",
        "a..c",
        "eyJ.eyJ.",
        "a b.c.d",
        "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.x.",
        "\xff\xfe.a.b",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum token_err e = verify(cases[i]);
        CHECK(e == TOKEN_ERR_FORMAT || e == TOKEN_ERR_HEADER);
    }
    /* Too long, at the limit and one past it. */
    static char big[LIMITS_TOKEN_MAX + 2];
    memset(big, 'A', sizeof big - 1);
    big[LIMITS_TOKEN_MAX + 1] = '\0';
    CHECK_INT(verify(big), TOKEN_ERR_TOO_LONG);
    big[LIMITS_TOKEN_MAX] = '\0';
    CHECK_INT(verify(big), TOKEN_ERR_FORMAT);
}

static void test_truncations(void)
{
    char tok[512];
    snprintf(tok, sizeof tok, "%s",
             mint(H, "{" EXP ",\"litepush\":{\"subscribe\":[\"a\"]}}", SECRET));
    size_t len = strlen(tok);
    struct token_claims c;
    for (size_t n = 0; n < len; n++)
        CHECK(token_verify(j, ks, guarded(tok, n), n, NOW, &c) != TOKEN_OK);
    CHECK_INT(token_verify(j, ks, guarded(tok, len), len, NOW, &c), TOKEN_OK);
}

static void test_claims_types(void)
{
    static const struct {
        const char *claims;
        enum token_err want;
    } cases[] = {
        {"[" EXP "]", TOKEN_ERR_CLAIMS},
        {"\"x\"", TOKEN_ERR_CLAIMS},
        {"1700000100", TOKEN_ERR_CLAIMS},
        {"null", TOKEN_ERR_CLAIMS},
        {"{" EXP "", TOKEN_ERR_CLAIMS},
        {"{" EXP ",\"sub\":5}", TOKEN_ERR_CLAIMS},
        {"{" EXP ",\"sub\":[\"a\"]}", TOKEN_ERR_CLAIMS},
        {"{" EXP ",\"sub\":\"\"}", TOKEN_OK},
        {"{" EXP ",\"litepush\":\"*\"}", TOKEN_ERR_CLAIMS},
        {"{" EXP ",\"litepush\":[\"*\"]}", TOKEN_ERR_CLAIMS},
        {"{" EXP ",\"litepush\":null}", TOKEN_ERR_CLAIMS},
        {"{" EXP ",\"litepush\":{\"subscribe\":\"*\"}}", TOKEN_ERR_CLAIMS},
        {"{" EXP ",\"litepush\":{\"subscribe\":{\"a\":1}}}", TOKEN_ERR_CLAIMS},
        {"{" EXP ",\"litepush\":{\"subscribe\":[1]}}", TOKEN_ERR_PATTERN},
        {"{" EXP ",\"litepush\":{\"subscribe\":[\"\"]}}", TOKEN_ERR_PATTERN},
        {"{" EXP ",\"litepush\":{\"subscribe\":[\"a\\u0001\"]}}", TOKEN_ERR_PATTERN},
        {"{" EXP ",\"litepush\":{\"publish\":[null]}}", TOKEN_ERR_PATTERN},
        {"{" EXP ",\"litepush\":{\"subscribe\":[\"*\"],\"publish\":[]}}", TOKEN_OK},
        {"{" EXP ",\"litepush\":{\"subscribe\":[\"a*b\",\"*\",\"x*\"]}}", TOKEN_OK},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum token_err e = verify(mint(H, cases[i].claims, SECRET));
        if (e != cases[i].want)
            fprintf(stderr, "case %zu: %s\n", i, cases[i].claims);
        CHECK_INT(e, cases[i].want);
    }
    /* sub: 256 bytes kept, 257 refused. */
    char claims[400];
    char sub[258];
    memset(sub, 's', sizeof sub);
    sub[256] = '\0';
    snprintf(claims, sizeof claims, "{" EXP ",\"sub\":\"%s\"}", sub);
    struct token_claims c;
    CHECK_INT(verify_at(mint(H, claims, SECRET), NOW, &c), TOKEN_OK);
    CHECK_INT(c.sub_len, 256);
    sub[256] = 's';
    sub[257] = '\0';
    snprintf(claims, sizeof claims, "{" EXP ",\"sub\":\"%s\"}", sub);
    CHECK_INT(verify(mint(H, claims, SECRET)), TOKEN_ERR_CLAIMS);
}

static void test_strerror(void)
{
    for (int e = TOKEN_OK; e <= TOKEN_ERR_PATTERN; e++)
        CHECK(strcmp(token_strerror((enum token_err)e), "unknown error") != 0);
}

int main(void)
{
    char err[256];
    j = json_open(err, sizeof err);
    ks = keys_parse(S(KEYFILE), err, sizeof err);
    if (j == NULL || ks == NULL) {
        fprintf(stderr, "setup: %s\n", err);
        return 1;
    }
    RUN(test_rfc7515_a1);
    RUN(test_base64url);
    RUN(test_valid);
    RUN(test_times);
    RUN(test_header);
    RUN(test_signature);
    RUN(test_shape);
    RUN(test_truncations);
    RUN(test_claims_types);
    RUN(test_strerror);
    keys_unref(ks);
    json_close(j);
    TEST_MAIN_END();
}
