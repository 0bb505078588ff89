/* Unit tests for json: the row envelope (text, null event, base64, quotes
 * and control characters escaped), publish parsing (every refusal reason,
 * defaults, an embedded NUL kept), json_get on every type and on malformed
 * documents, json_each_text on arrays, absent paths and mixed arrays, and
 * the ref of a publish (both sides of each limit) and the answers built
 * with it (ack, refusal, pong, position).
 * Every document sits before a guard page. */
#include "json.h"
#include "payload.h"
#include "test.h"

#define S(lit) lit, sizeof(lit) - 1

static struct json *j;

static void test_envelope(void)
{
    struct store_row row = {.id = 42, .channel = S("news"), .event = S("up\"d")};
    struct payload *p = json_row_envelope(j, &row, S("a\nb"), false);
    CHECK(p != NULL);
    if (p != NULL)
        CHECK_MEM(p->bytes, p->len,
                  "{\"id\":42,\"channel\":\"news\",\"event\":\"up\\\"d\",\"data\":\"a\\nb\"}");
    payload_unref(p);
    row.event = NULL;
    row.event_len = 0;
    p = json_row_envelope(j, &row, S("AAE="), true);
    CHECK(p != NULL);
    if (p != NULL)
        CHECK_MEM(p->bytes, p->len,
                  "{\"id\":42,\"channel\":\"news\",\"event\":null,\"data\":\"AAE=\","
                  "\"encoding\":\"base64\"}");
    payload_unref(p);
}

static void test_publish_ok(void)
{
    /* An escaped backslash before u0000 is text, not a NUL. */
    static const char doc[] = "{\"channel\":\"c\",\"event\":\"e\",\"data\":\"x\\\\u0000y\"}";
    struct json_publish pub;
    CHECK(json_parse_publish(j, guarded(doc, sizeof doc - 1), sizeof doc - 1, &pub) == NULL);
    CHECK_MEM(pub.channel, pub.channel_len, "c");
    CHECK_MEM(pub.event, pub.event_len, "e");
    CHECK_MEM(pub.data, pub.data_len, "x\\u0000y");

    static const char defaults[] = "{\"data\":\"d\",\"event\":null}";
    CHECK(json_parse_publish(j, guarded(defaults, sizeof defaults - 1), sizeof defaults - 1,
                             &pub) == NULL);
    CHECK_MEM(pub.channel, pub.channel_len, "default");
    CHECK(pub.event == NULL);
    CHECK_MEM(pub.data, pub.data_len, "d");
}

static void test_publish_refused(void)
{
    static const struct {
        const char *doc;
        const char *reason;
    } cases[] = {
        {"", "a publish must be a JSON object"},
        {"[1]", "a publish must be a JSON object"},
        {"{\"data\":", "a publish must be a JSON object"},
        {"\"text\"", "a publish must be a JSON object"},
        {"{}", "data must be a string"},
        {"{\"data\":1}", "data must be a string"},
        {"{\"data\":\"d\",\"channel\":5}", "channel must be a string"},
        {"{\"data\":\"d\",\"event\":[]}", "event must be a string or null"},
        {"{\"data\":\"d\",\"channel\":\"\"}", NULL /* the query module's reason */},
        /* SQLite would cut the text at the NUL: refused, never cut silently */
        {"{\"data\":\"x\\u0000y\"}",
         "data must not contain U+0000; send binary data in a binary frame"},
        {"{\"data\":\"\\\\\\u0000\"}",
         "data must not contain U+0000; send binary data in a binary frame"},
        /* a lone surrogate decodes to bytes that are not UTF-8 */
        {"{\"data\":\"d\",\"event\":\"\\ud800\"}",
         "event must be valid UTF-8 (no lone surrogates)"},
        {"{\"data\":\"\\udc00x\"}", "data must be valid UTF-8 (no lone surrogates)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct json_publish pub;
        size_t len = strlen(cases[i].doc);
        const char *reason = json_parse_publish(j, guarded(cases[i].doc, len), len, &pub);
        CHECK(reason != NULL);
        if (reason != NULL && cases[i].reason != NULL && strcmp(reason, cases[i].reason) != 0) {
            fprintf(stderr, "case %zu: %s\n", i, reason);
            CHECK(0);
        }
    }
}

static void test_get(void)
{
    static const char doc[] = "{\"alg\":\"HS256\",\"exp\":1700000000,\"r\":1.5,\"n\":null,"
                              "\"t\":true,\"f\":false,\"a\":[],\"o\":{\"k\":\"v\"}}";
    const char *d = guarded(doc, sizeof doc - 1);
    size_t len = sizeof doc - 1;
    struct json_value v;
    CHECK(json_get(j, d, len, "$.alg", &v));
    CHECK_INT(v.type, JSON_TEXT);
    CHECK_MEM(v.text, v.text_len, "HS256");
    CHECK(json_get(j, d, len, "$.exp", &v));
    CHECK_INT(v.type, JSON_INTEGER);
    CHECK_INT(v.integer, 1700000000);
    CHECK(json_get(j, d, len, "$.r", &v));
    CHECK_INT(v.type, JSON_REAL);
    CHECK(v.real == 1.5);
    CHECK(json_get(j, d, len, "$.n", &v) && v.type == JSON_NULL);
    CHECK(json_get(j, d, len, "$.t", &v) && v.type == JSON_TRUE);
    CHECK(json_get(j, d, len, "$.f", &v) && v.type == JSON_FALSE);
    CHECK(json_get(j, d, len, "$.a", &v) && v.type == JSON_ARRAY);
    CHECK(json_get(j, d, len, "$.o", &v) && v.type == JSON_OBJECT);
    CHECK(json_get(j, d, len, "$.o.k", &v) && v.type == JSON_TEXT);
    CHECK(json_get(j, d, len, "$.missing", &v) && v.type == JSON_ABSENT);
    CHECK(!json_get(j, S("{\"a\":"), "$.a", &v));
    CHECK(!json_get(j, S("{\"a\":1} x"), "$.a", &v));
    CHECK(!json_get(j, S(""), "$", &v));
}

struct collected {
    char all[64];
    int count;
};

static bool collect(const char *text, size_t len, void *ctx)
{
    struct collected *c = ctx;
    strncat(c->all, text, len);
    strcat(c->all, "|");
    c->count++;
    return true;
}

static void test_each_text(void)
{
    static const char doc[] = "{\"l\":{\"subscribe\":[\"a\",\"room:*\",\"\"],\"mixed\":[\"a\",1],"
                              "\"s\":\"x\"}}";
    const char *d = guarded(doc, sizeof doc - 1);
    size_t len = sizeof doc - 1;
    struct collected c = {{0}, 0};
    CHECK(json_each_text(j, d, len, "$.l.subscribe", collect, &c));
    CHECK_INT(c.count, 3);
    CHECK(strcmp(c.all, "a|room:*||") == 0);
    c = (struct collected){{0}, 0};
    CHECK(json_each_text(j, d, len, "$.l.publish", collect, &c));
    CHECK_INT(c.count, 0);
    CHECK(!json_each_text(j, d, len, "$.l.mixed", collect, &c));
    CHECK(!json_each_text(j, d, len, "$.l.s", collect, &c));
    CHECK_INT(c.count, 0);
    CHECK(!json_each_text(j, S("[\"a\""), "$", collect, &c));
}

static void test_ref_ok(void)
{
    static const struct {
        const char *doc;
        enum json_type type;
        long long integer;
        const char *text;
    } cases[] = {
        {"{\"data\":\"d\"}", JSON_ABSENT, 0, NULL},
        {"{\"ref\":0}", JSON_INTEGER, 0, NULL},
        {"{\"ref\":-7}", JSON_INTEGER, -7, NULL},
        {"{\"ref\":9223372036854775807}", JSON_INTEGER, INT64_MAX, NULL},
        {"{\"ref\":-9223372036854775808}", JSON_INTEGER, INT64_MIN, NULL},
        {"{\"ref\":\"\"}", JSON_TEXT, 0, ""},
        {"{\"ref\":\"a\\\"b\"}", JSON_TEXT, 0, "a\"b"},
        {"{\"ref\":\"\u00e9\\u00e9\"}", JSON_TEXT, 0, "\u00e9\u00e9"},
        /* 64 bytes: the limit */
        {"{\"ref\":\"0123456789012345678901234567890123456789012345678901234567890123\"}",
         JSON_TEXT, 0, "0123456789012345678901234567890123456789012345678901234567890123"},
        /* 32 two-byte characters are 64 bytes */
        {"{\"ref\":\"\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"
         "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"
         "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\"}",
         JSON_TEXT, 0,
         "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"
         "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"},
        /* not an object, or not JSON: no ref (the publish parser refuses it) */
        {"[1]", JSON_ABSENT, 0, NULL},
        {"{\"ref\":", JSON_ABSENT, 0, NULL},
        {"", JSON_ABSENT, 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct json_ref ref;
        size_t len = strlen(cases[i].doc);
        const char *reason = json_get_ref(j, guarded(cases[i].doc, len), len, "$.ref", &ref);
        if (reason != NULL)
            fprintf(stderr, "case %zu: %s\n", i, reason);
        CHECK(reason == NULL);
        CHECK_INT(ref.type, cases[i].type);
        if (cases[i].type == JSON_INTEGER)
            CHECK_INT(ref.integer, cases[i].integer);
        if (cases[i].type == JSON_TEXT)
            CHECK_MEM(ref.text, ref.text_len, cases[i].text);
    }
}

static void test_ref_refused(void)
{
    static const char *const docs[] = {
        "{\"ref\":null}",
        "{\"ref\":true}",
        "{\"ref\":1.5}",
        "{\"ref\":1e3}",
        "{\"ref\":[1]}",
        "{\"ref\":{\"a\":1}}",
        "{\"ref\":9223372036854775808}",
        "{\"ref\":-9223372036854775809}",
        "{\"ref\":99999999999999999999}",
        /* 65 bytes */
        "{\"ref\":\"01234567890123456789012345678901234567890123456789012345678901234\"}",
        /* 63 bytes and a two-byte character */
        "{\"ref\":\"012345678901234567890123456789012345678901234567890123456789012\u00e9\"}",
        "{\"ref\":\"\\ud800\"}",
        "{\"ref\":\"a\\u0000b\"}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        struct json_ref ref;
        size_t len = strlen(docs[i]);
        const char *reason = json_get_ref(j, guarded(docs[i], len), len, "$.ref", &ref);
        if (reason == NULL)
            fprintf(stderr, "case %zu accepted\n", i);
        CHECK(reason != NULL);
        CHECK_INT(ref.type, JSON_ABSENT);
    }
}

static void test_replies(void)
{
    struct json_ref num = {.type = JSON_INTEGER, .integer = -3};
    struct json_ref text = {.type = JSON_TEXT, .text = "q\"\\\n\u00e9", .text_len = 6};
    struct payload *p = json_publish_reply(j, &num, 42, NULL);
    CHECK(p != NULL);
    if (p != NULL)
        CHECK_MEM(p->bytes, p->len, "{\"ok\":true,\"ref\":-3,\"id\":42}");
    payload_unref(p);
    p = json_publish_reply(j, &text, 9223372036854775807, NULL);
    CHECK(p != NULL);
    if (p != NULL)
        CHECK_MEM(p->bytes, p->len,
                  "{\"ok\":true,\"ref\":\"q\\\"\\\\\\n\u00e9\",\"id\":9223372036854775807}");
    payload_unref(p);
    p = json_publish_reply(j, &text, 0, "data must be a \"string\"");
    CHECK(p != NULL);
    if (p != NULL)
        CHECK_MEM(p->bytes, p->len,
                  "{\"error\":\"data must be a \\\"string\\\"\",\"ref\":\"q\\\"\\\\\\n\u00e9\"}");
    payload_unref(p);
    p = json_pong(j, &num);
    CHECK(p != NULL);
    if (p != NULL)
        CHECK_MEM(p->bytes, p->len, "{\"pong\":-3}");
    payload_unref(p);
    p = json_position(j, 0);
    CHECK(p != NULL);
    if (p != NULL)
        CHECK_MEM(p->bytes, p->len, "{\"position\":0}");
    payload_unref(p);
    p = json_position(j, INT64_MAX);
    CHECK(p != NULL);
    if (p != NULL)
        CHECK_MEM(p->bytes, p->len, "{\"position\":9223372036854775807}");
    payload_unref(p);
    p = json_pong(j, &text);
    CHECK(p != NULL);
    if (p != NULL)
        CHECK_MEM(p->bytes, p->len, "{\"pong\":\"q\\\"\\\\\\n\u00e9\"}");
    payload_unref(p);
}

int main(void)
{
    char err[256];
    j = json_open(err, sizeof err);
    if (j == NULL) {
        fprintf(stderr, "json_open: %s\n", err);
        return 1;
    }
    RUN(test_envelope);
    RUN(test_publish_ok);
    RUN(test_publish_refused);
    RUN(test_get);
    RUN(test_each_text);
    RUN(test_ref_ok);
    RUN(test_ref_refused);
    RUN(test_replies);
    json_close(j);
    TEST_MAIN_END();
}
