/* Unit tests for access: the decision table (off, no token, bad token,
 * covered, not covered, public, mixed public/private, a bad token on a
 * public channel), the first-found rule across header, query and cookie,
 * Bearer and Cookie parsing, publish rights, reserved event names, origin
 * lists, client addresses and log lines that never carry the token. */
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "access.h"
#include "json.h"
#include "keys.h"
#include "test.h"

#define S(lit) lit, sizeof(lit) - 1
#define K32 "0123456789abcdef0123456789abcdef"
#define NOW 1700000000

static struct json *j;
static struct keyring *ring;
static struct pattern_set public_set;
static char good[512], expired[512], other_key[512], no_rights[512];

static void mint(char *out, const char *claims, const char *secret)
{
    static const char h[] = "{\"alg\":\"HS256\"}";
    token_sign(h, sizeof h - 1, claims, strlen(claims), (const uint8_t *)secret, strlen(secret),
               out, 512);
}

struct req {
    const char *auth, *query, *cookie;
    const char *channels[3];
};

static void decide(const struct req *r, bool is_on, struct access_verdict *v)
{
    size_t lens[3];
    size_t n = 0;
    while (n < 3 && r->channels[n] != NULL) {
        lens[n] = strlen(r->channels[n]);
        n++;
    }
    struct access_request ar = {
        .authorization = r->auth,
        .authorization_len = r->auth ? strlen(r->auth) : 0,
        .query_token = r->query,
        .query_token_len = r->query ? strlen(r->query) : 0,
        .cookie = r->cookie,
        .cookie_len = r->cookie ? strlen(r->cookie) : 0,
        .channels = r->channels,
        .channel_lens = lens,
        .channel_count = n,
        .now_s = NOW,
    };
    struct access_policy p = {.keys = is_on ? ring : NULL, .public = &public_set};
    access_decide(j, &p, &ar, v);
}

static char bearer_good[600], bearer_expired[600], cookie_good[700], cookie_expired[700];

static void test_table(void)
{
    const struct {
        struct req r;
        int status;
        enum access_source source;
        const char *www;
        const char *reason_has;
    } cases[] = {
        /* no token */
        {{NULL, NULL, NULL, {"priv"}}, 401, ACCESS_SOURCE_NONE, "Bearer", "'priv' needs a token"},
        {{NULL, NULL, NULL, {"pub"}}, 0, ACCESS_SOURCE_NONE, NULL, ""},
        {{NULL, NULL, NULL, {"open:1", "pub"}}, 0, ACCESS_SOURCE_NONE, NULL, ""},
        {{NULL, NULL, NULL, {"pub", "priv"}}, 401, ACCESS_SOURCE_NONE, "Bearer", "priv"},
        {{"Basic dXNlcjpwYXNz", NULL, NULL, {"priv"}}, 401, ACCESS_SOURCE_NONE, "Bearer", "priv"},
        {{NULL, NULL, "other=1; x=y", {"priv"}}, 401, ACCESS_SOURCE_NONE, "Bearer", "priv"},
        /* a valid token */
        {{bearer_good, NULL, NULL, {"news"}}, 0, ACCESS_SOURCE_HEADER, NULL, ""},
        {{bearer_good, NULL, NULL, {"room:1", "news", "pub"}}, 0, ACCESS_SOURCE_HEADER, NULL, ""},
        {{bearer_good, NULL, NULL, {"news", "secret"}},
         403,
         ACCESS_SOURCE_HEADER,
         NULL,
         "'secret'"},
        {{bearer_good, NULL, NULL, {"room"}}, 403, ACCESS_SOURCE_HEADER, NULL, "'room'"},
        {{NULL, good, NULL, {"news"}}, 0, ACCESS_SOURCE_QUERY, NULL, ""},
        {{NULL, NULL, cookie_good, {"news"}}, 0, ACCESS_SOURCE_COOKIE, NULL, ""},
        {{NULL, no_rights, NULL, {"news"}}, 403, ACCESS_SOURCE_QUERY, NULL, "news"},
        {{NULL, no_rights, NULL, {"pub"}}, 0, ACCESS_SOURCE_QUERY, NULL, ""},
        /* a bad token, even for a public channel */
        {{bearer_expired, NULL, NULL, {"news"}},
         401,
         ACCESS_SOURCE_HEADER,
         "Bearer error=\"invalid_token\"",
         "expired"},
        {{bearer_expired, NULL, NULL, {"pub"}},
         401,
         ACCESS_SOURCE_HEADER,
         "Bearer error=\"invalid_token\"",
         "expired"},
        {{NULL, other_key, NULL, {"pub"}},
         401,
         ACCESS_SOURCE_QUERY,
         "Bearer error=\"invalid_token\"",
         "signature"},
        {{"Bearer", NULL, NULL, {"news"}},
         401,
         ACCESS_SOURCE_HEADER,
         "Bearer error=\"invalid_token\"",
         "not a JWT"},
        {{NULL, "", NULL, {"news"}},
         401,
         ACCESS_SOURCE_QUERY,
         "Bearer error=\"invalid_token\"",
         "not a JWT"},
        /* first found wins: header, then query, then cookie */
        {{bearer_expired, good, cookie_good, {"news"}},
         401,
         ACCESS_SOURCE_HEADER,
         "Bearer error=\"invalid_token\"",
         "expired"},
        {{bearer_good, expired, cookie_expired, {"news"}}, 0, ACCESS_SOURCE_HEADER, NULL, ""},
        {{NULL, expired, cookie_good, {"news"}},
         401,
         ACCESS_SOURCE_QUERY,
         "Bearer error=\"invalid_token\"",
         "expired"},
        {{NULL, good, cookie_expired, {"news"}}, 0, ACCESS_SOURCE_QUERY, NULL, ""},
        {{NULL, NULL, cookie_expired, {"news"}},
         401,
         ACCESS_SOURCE_COOKIE,
         "Bearer error=\"invalid_token\"",
         "expired"},
        {{"Basic x", NULL, cookie_good, {"news"}}, 0, ACCESS_SOURCE_COOKIE, NULL, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct access_verdict v;
        decide(&cases[i].r, true, &v);
        bool ok = v.status == cases[i].status && v.source == cases[i].source &&
                  (cases[i].www == NULL ? v.www_authenticate == NULL
                                        : v.www_authenticate != NULL &&
                                              strcmp(v.www_authenticate, cases[i].www) == 0) &&
                  strstr(v.reason, cases[i].reason_has) != NULL;
        if (!ok)
            fprintf(stderr, "case %zu: status %d source %d www %s reason '%s'\n", i, v.status,
                    v.source, v.www_authenticate ? v.www_authenticate : "-", v.reason);
        CHECK(ok);
        CHECK((v.status == 0) == (v.result == ACCESS_ALLOW));
        /* Access control off: everything passes, nothing is looked at. */
        decide(&cases[i].r, false, &v);
        CHECK_INT(v.status, 0);
        CHECK_INT(v.source, ACCESS_SOURCE_NONE);
        CHECK(!v.has_claims);
    }
}

static void test_bearer_cookie(void)
{
    const char *t;
    size_t n;
    CHECK(access_bearer(S("Bearer abc"), &t, &n));
    CHECK_MEM(t, n, "abc");
    CHECK(access_bearer(S("bearer   abc  "), &t, &n));
    CHECK_MEM(t, n, "abc");
    CHECK(access_bearer(S("BEARER\tabc"), &t, &n));
    CHECK(access_bearer(S("Bearer"), &t, &n));
    CHECK_INT(n, 0);
    CHECK(!access_bearer(S("Bearerabc"), &t, &n));
    CHECK(!access_bearer(S("Basic abc"), &t, &n));
    CHECK(!access_bearer(S("Beare"), &t, &n));
    static const struct {
        const char *header;
        const char *value; /* NULL: not found */
    } cookies[] = {
        {"litepush_token=abc", "abc"},
        {"a=1; litepush_token=abc; b=2", "abc"},
        {"a=1;litepush_token=abc", "abc"},
        {"litepush_token=\"abc\"", "abc"},
        {"litepush_token=first; litepush_token=second", "first"},
        {"xlitepush_token=abc", NULL},
        {"litepush_tokenx=abc", NULL},
        {"litepush_token", NULL},
        {"", NULL},
        {"litepush_token=", ""},
        {" litepush_token = abc ", "abc"},
    };
    for (size_t i = 0; i < sizeof cookies / sizeof cookies[0]; i++) {
        size_t len = strlen(cookies[i].header);
        bool found = access_cookie(guarded(cookies[i].header, len), len, "litepush_token", &t, &n);
        CHECK(found == (cookies[i].value != NULL));
        if (found && cookies[i].value != NULL)
            CHECK_MEM(t, n, cookies[i].value);
    }
}

static void test_publish_reserved_origin(void)
{
    struct access_verdict v;
    struct req r = {bearer_good, NULL, NULL, {"news"}};
    decide(&r, true, &v);
    CHECK(v.has_claims);
    struct access_policy on = {.keys = ring}, off = {0};
    struct pattern_list *pub = pattern_list_copy(&v.claims.publish);
    CHECK(access_may_publish(&on, pub, S("chat")));
    CHECK(!access_may_publish(&on, pub, S("news")));
    free(pub);
    CHECK(!access_may_publish(&on, NULL, S("chat")));
    CHECK(access_may_publish(&off, NULL, S("anything")));
    CHECK(access_is_reserved_event(S("litepush.reset")));
    CHECK(access_is_reserved_event(S("litepush.")));
    CHECK(!access_is_reserved_event(S("litepush")));
    CHECK(!access_is_reserved_event(S("Litepush.x")));
    CHECK(!access_is_reserved_event(NULL, 0));
    const char *list[] = {"https://a.example", "http://b.example:8080"};
    CHECK(access_origin_listed(list, 2, S("https://a.example")));
    CHECK(!access_origin_listed(list, 2, S("https://a.example.evil")));
    CHECK(!access_origin_listed(list, 2, S("https://a.exampl")));
    CHECK(!access_origin_listed(list, 2, S("null")));
    CHECK(!access_origin_listed(list, 0, S("https://a.example")));
    const char *star[] = {"*"};
    CHECK(access_origin_listed(star, 1, S("https://any.example")));
}

static void test_client_and_log(void)
{
    char out[80];
    access_client("192.0.2.1", false, S("203.0.113.9"), out, sizeof out);
    CHECK(strcmp(out, "192.0.2.1") == 0);
    access_client("127.0.0.1", true, S("10.0.0.1, 203.0.113.9"), out, sizeof out);
    CHECK(strcmp(out, "203.0.113.9") == 0);
    access_client("127.0.0.1", true, S("203.0.113.9 "), out, sizeof out);
    CHECK(strcmp(out, "203.0.113.9") == 0);
    access_client("127.0.0.1", true, NULL, 0, out, sizeof out);
    CHECK(strcmp(out, "127.0.0.1") == 0);
    access_client("127.0.0.1", true, S("a b\x01"), out, sizeof out);
    CHECK(strcmp(out, "a?b?") == 0);
    access_client(NULL, false, NULL, 0, out, sizeof out);
    CHECK(strcmp(out, "unknown") == 0);

    struct access_verdict v;
    struct req r = {bearer_good, NULL, NULL, {"news", "secret"}};
    decide(&r, true, &v);
    const char *chans[] = {"news", "secret"};
    size_t lens[] = {4, 6};
    char line[512];
    access_log_line(&v, "203.0.113.9", chans, lens, 2, line, sizeof line);
    CHECK(strstr(line, "refused 403") != NULL);
    CHECK(strstr(line, "client 203.0.113.9") != NULL);
    CHECK(strstr(line, "sub alice") != NULL);
    CHECK(strstr(line, "channels news,secret") != NULL);
    CHECK(strstr(line, "from header") != NULL);
    CHECK(strstr(line, good) == NULL);
    /* Short buffers are cut, never overrun. */
    for (size_t cap = 1; cap < 40; cap++) {
        char small[40];
        access_log_line(&v, "203.0.113.9", chans, lens, 2, small, cap);
        CHECK(strlen(small) < cap);
    }
}

int main(void)
{
    char err[256];
    char path[] = "/tmp/litepush-test-access-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, S(K32 "\n")) < 0)
        return 1;
    close(fd);
    j = json_open(err, sizeof err);
    ring = keyring_open(path, err, sizeof err);
    unlink(path);
    if (j == NULL || ring == NULL) {
        fprintf(stderr, "setup: %s\n", err);
        return 1;
    }
    pattern_set_add(&public_set, S("pub"));
    pattern_set_add(&public_set, S("open:*"));
    mint(good,
         "{\"exp\":1700000100,\"sub\":\"alice\",\"litepush\":{\"subscribe\":[\"news\",\"room:*\"],"
         "\"publish\":[\"chat\"]}}",
         K32);
    mint(expired, "{\"exp\":1700000000,\"litepush\":{\"subscribe\":[\"*\"]}}", K32);
    mint(other_key, "{\"exp\":1700000100,\"litepush\":{\"subscribe\":[\"*\"]}}", K32 "other-key");
    mint(no_rights, "{\"exp\":1700000100}", K32);
    snprintf(bearer_good, sizeof bearer_good, "Bearer %s", good);
    snprintf(bearer_expired, sizeof bearer_expired, "Bearer %s", expired);
    snprintf(cookie_good, sizeof cookie_good, "theme=dark; litepush_token=%s", good);
    snprintf(cookie_expired, sizeof cookie_expired, "litepush_token=%s; x=1", expired);
    RUN(test_table);
    RUN(test_bearer_cookie);
    RUN(test_publish_reserved_origin);
    RUN(test_client_and_log);
    keyring_free(ring);
    json_close(j);
    TEST_MAIN_END();
}
