/* Unit tests for query: channel repetition and de-duplication, the default
 * channel, percent-decoding (keys too), both sides of the channel-name,
 * channel-count and query-length limits, control bytes and invalid UTF-8,
 * event ids at and past INT64_MAX, and the error strings. Every query
 * string sits before a guard page and the scratch buffer is exactly len
 * bytes of heap, so a read or write past either end crashes the test. */
#include <stdint.h>

#include "query.h"
#include "test.h"

#define S(lit) lit, sizeof(lit) - 1
#define MAX_CHANS (LIMITS_CHANNELS_PER_STREAM + 1)

struct parse_result {
    enum query_err err;
    struct query_request req;
    char *scratch;
};

static void parse(const char *qs, size_t len, struct parse_result *r)
{
    r->scratch = malloc(len ? len : 1);
    if (r->scratch == NULL)
        abort();
    r->err = query_parse(guarded(qs, len), len, r->scratch, &r->req);
}

struct query_case {
    const char *name;
    const char *qs;
    size_t len;
    enum query_err want;
    const char *channels[MAX_CHANS]; /* NULL-terminated; checked when want is QUERY_OK */
    int has_id;
    int64_t id;
};

static const struct query_case cases[] = {
    /* channels */
    {"empty query", S(""), QUERY_OK, {"default"}, 0, 0},
    {"one channel", S("channel=news"), QUERY_OK, {"news"}, 0, 0},
    {"repeat", S("channel=a&channel=b"), QUERY_OK, {"a", "b"}, 0, 0},
    {"order of first mention", S("channel=b&channel=a"), QUERY_OK, {"b", "a"}, 0, 0},
    {"dedupe", S("channel=a&channel=b&channel=a"), QUERY_OK, {"a", "b"}, 0, 0},
    {"dedupe after decoding", S("channel=a%2Fb&channel=a/b"), QUERY_OK, {"a/b"}, 0, 0},
    {"explicit default", S("channel=default"), QUERY_OK, {"default"}, 0, 0},
    {"only unknown params", S("foo=bar&x"), QUERY_OK, {"default"}, 0, 0},
    {"unknown params ignored", S("foo=bar&channel=a&x&=y&z="), QUERY_OK, {"a"}, 0, 0},
    {"bad escape in unknown value ignored", S("foo=%zz&channel=a"), QUERY_OK, {"a"}, 0, 0},
    {"empty parameters", S("&&channel=a&&"), QUERY_OK, {"a"}, 0, 0},
    {"lone ampersand", S("&"), QUERY_OK, {"default"}, 0, 0},
    {"key is case-sensitive", S("Channel=a&CHANNEL=b"), QUERY_OK, {"default"}, 0, 0},
    {"equals in value", S("channel=a=b"), QUERY_OK, {"a=b"}, 0, 0},
    {"semicolon is not a separator", S("channel=a;channel=b"), QUERY_OK, {"a;channel=b"}, 0, 0},
    {"hash is just a byte", S("channel=a#b"), QUERY_OK, {"a#b"}, 0, 0},
    /* percent-decoding */
    {"%2F", S("channel=a%2Fb"), QUERY_OK, {"a/b"}, 0, 0},
    {"%2f lower case", S("channel=a%2fb"), QUERY_OK, {"a/b"}, 0, 0},
    {"plus is space", S("channel=a+b"), QUERY_OK, {"a b"}, 0, 0},
    {"%2B is plus", S("channel=a%2Bb"), QUERY_OK, {"a+b"}, 0, 0},
    {"%25 is percent", S("channel=100%25"), QUERY_OK, {"100%"}, 0, 0},
    {"%26 does not split", S("channel=a%26channel%3Db"), QUERY_OK, {"a&channel=b"}, 0, 0},
    {"all escaped", S("channel=%6E%65%77%73"), QUERY_OK, {"news"}, 0, 0},
    {"escaped key", S("%63hannel=a"), QUERY_OK, {"a"}, 0, 0},
    {"escaped key end", S("channe%6C=a"), QUERY_OK, {"a"}, 0, 0},
    {"escaped lastEventId key", S("lastEvent%49d=5"), QUERY_OK, {"default"}, 1, 5},
    {"escaped '=' in key is not a separator", S("channel%3Da"), QUERY_OK, {"default"}, 0, 0},
    {"%", S("channel=%"), QUERY_ERR_BAD_ESCAPE, {0}, 0, 0},
    {"%4", S("channel=%4"), QUERY_ERR_BAD_ESCAPE, {0}, 0, 0},
    {"%zz", S("channel=%zz"), QUERY_ERR_BAD_ESCAPE, {0}, 0, 0},
    {"%4z", S("channel=%4z"), QUERY_ERR_BAD_ESCAPE, {0}, 0, 0},
    {"%z4", S("channel=%z4"), QUERY_ERR_BAD_ESCAPE, {0}, 0, 0},
    {"a%", S("channel=a%"), QUERY_ERR_BAD_ESCAPE, {0}, 0, 0},
    {"%%41", S("channel=%%41"), QUERY_ERR_BAD_ESCAPE, {0}, 0, 0},
    {"% before &", S("channel=%4&channel=b"), QUERY_ERR_BAD_ESCAPE, {0}, 0, 0},
    {"bad escape in key", S("%zz=1&channel=a"), QUERY_ERR_BAD_ESCAPE, {0}, 0, 0},
    {"bad escape in lastEventId", S("lastEventId=%"), QUERY_ERR_BAD_ESCAPE, {0}, 0, 0},
    /* empty names */
    {"empty channel", S("channel="), QUERY_ERR_CHANNEL_EMPTY, {0}, 0, 0},
    {"channel without '='", S("channel"), QUERY_ERR_CHANNEL_EMPTY, {0}, 0, 0},
    {"empty after a good one", S("channel=a&channel="), QUERY_ERR_CHANNEL_EMPTY, {0}, 0, 0},
    {"empty then &", S("channel=&channel=a"), QUERY_ERR_CHANNEL_EMPTY, {0}, 0, 0},
    /* control characters and UTF-8 */
    {"%00", S("channel=a%00"), QUERY_ERR_CHANNEL_BAD_BYTE, {0}, 0, 0},
    {"%01", S("channel=%01"), QUERY_ERR_CHANNEL_BAD_BYTE, {0}, 0, 0},
    {"%0A", S("channel=a%0Ab"), QUERY_ERR_CHANNEL_BAD_BYTE, {0}, 0, 0},
    {"%0D", S("channel=a%0D"), QUERY_ERR_CHANNEL_BAD_BYTE, {0}, 0, 0},
    {"%1F", S("channel=%1F"), QUERY_ERR_CHANNEL_BAD_BYTE, {0}, 0, 0},
    {"%7F", S("channel=%7F"), QUERY_ERR_CHANNEL_BAD_BYTE, {0}, 0, 0},
    {"raw tab", S("channel=a\tb"), QUERY_ERR_CHANNEL_BAD_BYTE, {0}, 0, 0},
    {"raw NUL", S("channel=a\0b"), QUERY_ERR_CHANNEL_BAD_BYTE, {0}, 0, 0},
    {"%20 is fine", S("channel=%20"), QUERY_OK, {" "}, 0, 0},
    {"tilde is fine", S("channel=~"), QUERY_OK, {"~"}, 0, 0},
    {"%FF", S("channel=%FF"), QUERY_ERR_CHANNEL_BAD_BYTE, {0}, 0, 0},
    {"raw 0xFF", S("channel=\xff"), QUERY_ERR_CHANNEL_BAD_BYTE, {0}, 0, 0},
    {"overlong %C0%AF", S("channel=%C0%AF"), QUERY_ERR_CHANNEL_BAD_BYTE, {0}, 0, 0},
    {"overlong %E0%80%AF", S("channel=%E0%80%AF"), QUERY_ERR_CHANNEL_BAD_BYTE, {0}, 0, 0},
    {"surrogate %ED%A0%80", S("channel=%ED%A0%80"), QUERY_ERR_CHANNEL_BAD_BYTE, {0}, 0, 0},
    {"truncated %E2%82", S("channel=%E2%82"), QUERY_ERR_CHANNEL_BAD_BYTE, {0}, 0, 0},
    {"lone continuation %80", S("channel=%80"), QUERY_ERR_CHANNEL_BAD_BYTE, {0}, 0, 0},
    {"above U+10FFFF", S("channel=%F4%90%80%80"), QUERY_ERR_CHANNEL_BAD_BYTE, {0}, 0, 0},
    {"valid %C3%A9", S("channel=caf%C3%A9"), QUERY_OK, {"caf\xc3\xa9"}, 0, 0},
    {"valid raw UTF-8", S("channel=caf\xc3\xa9"), QUERY_OK, {"caf\xc3\xa9"}, 0, 0},
    {"valid 4-byte", S("channel=%F0%9F%98%80"), QUERY_OK, {"\xf0\x9f\x98\x80"}, 0, 0},
    {"UTF-8 split across two channels",
     S("channel=%C3&channel=%A9"),
     QUERY_ERR_CHANNEL_BAD_BYTE,
     {0},
     0,
     0},
    /* lastEventId */
    {"id 0", S("lastEventId=0"), QUERY_OK, {"default"}, 1, 0},
    {"id 1", S("lastEventId=1"), QUERY_OK, {"default"}, 1, 1},
    {"id INT64_MAX", S("lastEventId=9223372036854775807"), QUERY_OK, {"default"}, 1, INT64_MAX},
    {"id 19 digits leading zeros",
     S("lastEventId=0000000000000000042"),
     QUERY_OK,
     {"default"},
     1,
     42},
    {"id escaped digits", S("lastEventId=%31%32"), QUERY_OK, {"default"}, 1, 12},
    {"id with channels", S("channel=a&lastEventId=7&channel=b"), QUERY_OK, {"a", "b"}, 1, 7},
    {"id INT64_MAX+1", S("lastEventId=9223372036854775808"), QUERY_ERR_BAD_EVENT_ID, {0}, 0, 0},
    {"id 19 nines", S("lastEventId=9999999999999999999"), QUERY_ERR_BAD_EVENT_ID, {0}, 0, 0},
    {"id 2^64-1", S("lastEventId=18446744073709551615"), QUERY_ERR_BAD_EVENT_ID, {0}, 0, 0},
    {"id 2^64", S("lastEventId=18446744073709551616"), QUERY_ERR_BAD_EVENT_ID, {0}, 0, 0},
    {"id 20 digits leading zeros",
     S("lastEventId=00000000000000000001"),
     QUERY_ERR_BAD_EVENT_ID,
     {0},
     0,
     0},
    {"id 100 digits",
     S("lastEventId=1000000000000000000000000000000000000000000000000000000000000000000000000000"
       "000000000000000000000000"),
     QUERY_ERR_BAD_EVENT_ID,
     {0},
     0,
     0},
    {"id empty", S("lastEventId="), QUERY_ERR_BAD_EVENT_ID, {0}, 0, 0},
    {"id without '='", S("lastEventId"), QUERY_ERR_BAD_EVENT_ID, {0}, 0, 0},
    {"id -1", S("lastEventId=-1"), QUERY_ERR_BAD_EVENT_ID, {0}, 0, 0},
    {"id +1 (escaped)", S("lastEventId=%2B1"), QUERY_ERR_BAD_EVENT_ID, {0}, 0, 0},
    {"id '+1' is ' 1'", S("lastEventId=+1"), QUERY_ERR_BAD_EVENT_ID, {0}, 0, 0},
    {"id space 1", S("lastEventId=%201"), QUERY_ERR_BAD_EVENT_ID, {0}, 0, 0},
    {"id 1 space", S("lastEventId=1%20"), QUERY_ERR_BAD_EVENT_ID, {0}, 0, 0},
    {"id 1a", S("lastEventId=1a"), QUERY_ERR_BAD_EVENT_ID, {0}, 0, 0},
    {"id 0x10", S("lastEventId=0x10"), QUERY_ERR_BAD_EVENT_ID, {0}, 0, 0},
    {"id 1 NUL", S("lastEventId=1%00"), QUERY_ERR_BAD_EVENT_ID, {0}, 0, 0},
    {"id 1.0", S("lastEventId=1.0"), QUERY_ERR_BAD_EVENT_ID, {0}, 0, 0},
    {"id twice", S("lastEventId=1&lastEventId=2"), QUERY_ERR_DUPLICATE_EVENT_ID, {0}, 0, 0},
    {"id twice, same value",
     S("lastEventId=1&lastEventId=1"),
     QUERY_ERR_DUPLICATE_EVENT_ID,
     {0},
     0,
     0},
    {"id twice, escaped first letter",
     S("lastEventId=1&%6castEventId=2"),
     QUERY_ERR_DUPLICATE_EVENT_ID,
     {0},
     0,
     0}, /* %6c is 'l' */
    {"escaped capital is another key",
     S("lastEventId=1&%4castEventId=2"),
     QUERY_OK,
     {"default"},
     1,
     1}, /* %4c is 'L': "LastEventId" is unknown */
    {"id twice, escaped key",
     S("lastEventId=1&lastEvent%49d=2"),
     QUERY_ERR_DUPLICATE_EVENT_ID,
     {0},
     0,
     0},
    {"bad id first", S("lastEventId=x&lastEventId=1"), QUERY_ERR_BAD_EVENT_ID, {0}, 0, 0},
    {"key is case-sensitive", S("lasteventid=5"), QUERY_OK, {"default"}, 0, 0},
};

static void check_case(const struct query_case *c)
{
    struct parse_result r;
    parse(c->qs, c->len, &r);
    if (r.err != c->want) {
        test_current_failed = 1;
        fprintf(stderr, "query case \"%s\": err %d (%s), want %d\n", c->name, (int)r.err,
                query_strerror(r.err), (int)c->want);
        free(r.scratch);
        return;
    }
    if (c->want == QUERY_OK) {
        size_t n = 0;
        while (n < MAX_CHANS && c->channels[n] != NULL)
            n++;
        if (r.req.channel_count != n)
            fprintf(stderr, "query case \"%s\": %zu channels\n", c->name, r.req.channel_count);
        CHECK_INT(r.req.channel_count, n);
        for (size_t i = 0; i < n && i < r.req.channel_count; i++)
            CHECK_MEM(r.req.channels[i], r.req.channel_lens[i], c->channels[i]);
        CHECK_INT(r.req.has_last_event_id, c->has_id);
        if (c->has_id)
            CHECK_INT(r.req.last_event_id, c->id);
    }
    free(r.scratch);
}

static void test_table(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i]);
}

/* Builds "channel=" + n copies of `unit` (each decoding to one byte). */
static size_t build_name(char *buf, const char *unit, size_t n)
{
    size_t len = 0;
    memcpy(buf, "channel=", 8);
    len = 8;
    for (size_t i = 0; i < n; i++) {
        memcpy(buf + len, unit, strlen(unit));
        len += strlen(unit);
    }
    return len;
}

static void test_channel_name_limit(void)
{
    static char buf[4096];
    struct parse_result r;
    static const char *const units[] = {"x", "%41", "+"};
    for (size_t u = 0; u < 3; u++) {
        size_t len = build_name(buf, units[u], LIMITS_CHANNEL_NAME_MAX);
        parse(buf, len, &r);
        CHECK_INT(r.err, QUERY_OK);
        CHECK_INT(r.req.channel_count, 1);
        CHECK_INT(r.req.channel_lens[0], LIMITS_CHANNEL_NAME_MAX);
        free(r.scratch);
        len = build_name(buf, units[u], LIMITS_CHANNEL_NAME_MAX + 1);
        parse(buf, len, &r);
        CHECK_INT(r.err, QUERY_ERR_CHANNEL_TOO_LONG);
        free(r.scratch);
    }
    /* 128 bytes of two-byte UTF-8 characters is fine; 130 is not. */
    size_t len = build_name(buf, "%C3%A9", LIMITS_CHANNEL_NAME_MAX / 2);
    parse(buf, len, &r);
    CHECK_INT(r.err, QUERY_OK);
    free(r.scratch);
    len = build_name(buf, "%C3%A9", LIMITS_CHANNEL_NAME_MAX / 2 + 1);
    parse(buf, len, &r);
    CHECK_INT(r.err, QUERY_ERR_CHANNEL_TOO_LONG);
    free(r.scratch);
}

/* "channel=c0&channel=c1..." with n distinct names, each mentioned `times` times. */
static size_t build_channels(char *buf, size_t n, size_t times)
{
    size_t len = 0;
    for (size_t t = 0; t < times; t++)
        for (size_t i = 0; i < n; i++)
            len += (size_t)sprintf(buf + len, "%schannel=c%zu", len ? "&" : "", i);
    return len;
}

static void test_channel_count_limit(void)
{
    static char buf[4096];
    struct parse_result r;
    size_t len = build_channels(buf, LIMITS_CHANNELS_PER_STREAM, 1);
    parse(buf, len, &r);
    CHECK_INT(r.err, QUERY_OK);
    CHECK_INT(r.req.channel_count, LIMITS_CHANNELS_PER_STREAM);
    for (size_t i = 0; i < r.req.channel_count; i++) {
        char want[24];
        snprintf(want, sizeof want, "c%zu", i);
        CHECK_MEM(r.req.channels[i], r.req.channel_lens[i], want);
    }
    free(r.scratch);
    /* The same 16 names three times over: still 16 distinct. */
    len = build_channels(buf, LIMITS_CHANNELS_PER_STREAM, 3);
    parse(buf, len, &r);
    CHECK_INT(r.err, QUERY_OK);
    CHECK_INT(r.req.channel_count, LIMITS_CHANNELS_PER_STREAM);
    free(r.scratch);
    len = build_channels(buf, LIMITS_CHANNELS_PER_STREAM + 1, 1);
    parse(buf, len, &r);
    CHECK_INT(r.err, QUERY_ERR_TOO_MANY_CHANNELS);
    free(r.scratch);
}

static void test_query_length_limit(void)
{
    static char buf[LIMITS_QUERY_MAX + 2];
    struct parse_result r;
    /* "channel=a&pad=xxxx..." of exactly LIMITS_QUERY_MAX bytes */
    memcpy(buf, "channel=a&pad=", 14);
    memset(buf + 14, 'x', sizeof buf - 14);
    parse(buf, LIMITS_QUERY_MAX, &r);
    CHECK_INT(r.err, QUERY_OK);
    CHECK_INT(r.req.channel_count, 1);
    CHECK_MEM(r.req.channels[0], r.req.channel_lens[0], "a");
    free(r.scratch);
    parse(buf, LIMITS_QUERY_MAX + 1, &r);
    CHECK_INT(r.err, QUERY_ERR_TOO_LONG);
    free(r.scratch);
}

/* Every prefix of a valid query: no over-read, and any success is sound. */
static void test_every_truncation(void)
{
    static const char full[] = "channel=a%2Fb&lastEventId=123&channel=caf%C3%A9&x=%zz&channel=a+b";
    for (size_t len = 0; len <= sizeof full - 1; len++) {
        struct parse_result r;
        parse(full, len, &r);
        if (r.err == QUERY_OK) {
            CHECK(r.req.channel_count >= 1 && r.req.channel_count <= 3);
            for (size_t i = 0; i < r.req.channel_count; i++)
                CHECK_INT(query_check_channel(r.req.channels[i], r.req.channel_lens[i]), QUERY_OK);
        }
        free(r.scratch);
    }
    struct parse_result r;
    parse(full, sizeof full - 1, &r);
    CHECK_INT(r.err, QUERY_OK);
    CHECK_INT(r.req.channel_count, 3);
    CHECK_INT(r.req.last_event_id, 123);
    free(r.scratch);
}

struct id_case {
    const char *s;
    size_t len;
    enum query_err want;
    int64_t value;
};

/* The Last-Event-ID header path: query_parse_event_id on its own. */
/* token=: decoded into scratch, the first one counts, empty is present. */
static void test_token_param(void)
{
    static const struct {
        const char *qs;
        const char *token; /* NULL: absent */
    } tcases[] = {
        {"channel=a", NULL},
        {"token=abc.def.ghi&channel=a", "abc.def.ghi"},
        {"channel=a&token=a%2Eb&channel=b", "a.b"},
        {"token=first&token=second", "first"},
        {"token=&token=second", ""},
        {"token", ""},
        {"%74oken=x", "x"},
        {"tokens=x", NULL},
    };
    for (size_t i = 0; i < sizeof tcases / sizeof tcases[0]; i++) {
        struct parse_result r;
        parse(tcases[i].qs, strlen(tcases[i].qs), &r);
        CHECK_INT(r.err, QUERY_OK);
        CHECK((r.req.token == NULL) == (tcases[i].token == NULL));
        if (r.req.token != NULL && tcases[i].token != NULL)
            CHECK_MEM(r.req.token, r.req.token_len, tcases[i].token);
        free(r.scratch);
    }
    struct parse_result r;
    parse(S("token=%zz"), &r);
    CHECK_INT(r.err, QUERY_ERR_BAD_ESCAPE);
    free(r.scratch);
}

static void test_parse_event_id(void)
{
    static const struct id_case ids[] = {
        {S("0"), QUERY_OK, 0},
        {S("7"), QUERY_OK, 7},
        {S("1234567890"), QUERY_OK, 1234567890},
        {S("9223372036854775807"), QUERY_OK, INT64_MAX},
        {S("9223372036854775806"), QUERY_OK, INT64_MAX - 1},
        {S("0000000000000000000"), QUERY_OK, 0},
        {S("9223372036854775808"), QUERY_ERR_BAD_EVENT_ID, 0},
        {S("9223372036854775810"), QUERY_ERR_BAD_EVENT_ID, 0},
        {S("9999999999999999999"), QUERY_ERR_BAD_EVENT_ID, 0},
        {S("10000000000000000000"), QUERY_ERR_BAD_EVENT_ID, 0},
        {S("18446744073709551615"), QUERY_ERR_BAD_EVENT_ID, 0},
        {S("18446744073709551616"), QUERY_ERR_BAD_EVENT_ID, 0},
        {S("36893488147419103232"), QUERY_ERR_BAD_EVENT_ID, 0}, /* 2^65 */
        {S("00000000000000000000"), QUERY_ERR_BAD_EVENT_ID, 0}, /* 20 digits */
        {S(""), QUERY_ERR_BAD_EVENT_ID, 0},
        {S("-1"), QUERY_ERR_BAD_EVENT_ID, 0},
        {S("-0"), QUERY_ERR_BAD_EVENT_ID, 0},
        {S("+1"), QUERY_ERR_BAD_EVENT_ID, 0},
        {S(" 1"), QUERY_ERR_BAD_EVENT_ID, 0},
        {S("1 "), QUERY_ERR_BAD_EVENT_ID, 0},
        {S("\t1"), QUERY_ERR_BAD_EVENT_ID, 0},
        {S("1\n"), QUERY_ERR_BAD_EVENT_ID, 0},
        {S("1a"), QUERY_ERR_BAD_EVENT_ID, 0},
        {S("a1"), QUERY_ERR_BAD_EVENT_ID, 0},
        {S("0x10"), QUERY_ERR_BAD_EVENT_ID, 0},
        {S("1e3"), QUERY_ERR_BAD_EVENT_ID, 0},
        {S("1.5"), QUERY_ERR_BAD_EVENT_ID, 0},
        {S("1,000"), QUERY_ERR_BAD_EVENT_ID, 0},
        {S("1\0"), QUERY_ERR_BAD_EVENT_ID, 0},
        {S("/"), QUERY_ERR_BAD_EVENT_ID, 0},            /* '0' - 1 */
        {S(":"), QUERY_ERR_BAD_EVENT_ID, 0},            /* '9' + 1 */
        {S("\xef\xbc\x91"), QUERY_ERR_BAD_EVENT_ID, 0}, /* FULLWIDTH DIGIT ONE */
        {S("\xd9\xa1"), QUERY_ERR_BAD_EVENT_ID, 0},     /* ARABIC-INDIC DIGIT ONE */
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        int64_t v = -42;
        enum query_err err = query_parse_event_id(guarded(ids[i].s, ids[i].len), ids[i].len, &v);
        if (err != ids[i].want)
            fprintf(stderr, "event id case %zu \"%.*s\"\n", i, (int)ids[i].len, ids[i].s);
        CHECK_INT(err, ids[i].want);
        if (ids[i].want == QUERY_OK)
            CHECK_INT(v, ids[i].value);
    }
    /* 100 digits, all '0' and all '9' */
    char many[100];
    int64_t v;
    memset(many, '0', sizeof many);
    CHECK_INT(query_parse_event_id(guarded(many, sizeof many), sizeof many, &v),
              QUERY_ERR_BAD_EVENT_ID);
    memset(many, '9', sizeof many);
    CHECK_INT(query_parse_event_id(guarded(many, sizeof many), sizeof many, &v),
              QUERY_ERR_BAD_EVENT_ID);
    /* Every digit count from 1 to 19 of the digit 1 is accepted; 20 is not. */
    char ones[21];
    memset(ones, '1', sizeof ones);
    int64_t want = 0;
    for (size_t n = 1; n <= LIMITS_EVENT_ID_DIGITS; n++) {
        want = want * 10 + 1;
        CHECK_INT(query_parse_event_id(guarded(ones, n), n, &v), QUERY_OK);
        CHECK_INT(v, want);
    }
    CHECK_INT(query_parse_event_id(guarded(ones, 20), 20, &v), QUERY_ERR_BAD_EVENT_ID);
}

struct channel_case {
    const char *s;
    size_t len;
    enum query_err want;
};

static void test_check_channel(void)
{
    static const struct channel_case names[] = {
        {S("a"), QUERY_OK},
        {S("news/sport"), QUERY_OK},
        {S(" "), QUERY_OK},
        {S("\xc3\xa9"), QUERY_OK},
        {S("\xef\xbb\xbf"), QUERY_OK}, /* BOM is a character like any other */
        {S(""), QUERY_ERR_CHANNEL_EMPTY},
        {S("\x00"), QUERY_ERR_CHANNEL_BAD_BYTE},
        {S("\x1f"), QUERY_ERR_CHANNEL_BAD_BYTE},
        {S("\x7f"), QUERY_ERR_CHANNEL_BAD_BYTE},
        {S("a\r"), QUERY_ERR_CHANNEL_BAD_BYTE},
        {S("\xc3"), QUERY_ERR_CHANNEL_BAD_BYTE},
        {S("\xc0\xaf"), QUERY_ERR_CHANNEL_BAD_BYTE},
        {S("\xed\xbf\xbf"), QUERY_ERR_CHANNEL_BAD_BYTE},
        {S("\xf8\x88\x80\x80\x80"), QUERY_ERR_CHANNEL_BAD_BYTE},
        {S("\xfe"), QUERY_ERR_CHANNEL_BAD_BYTE},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        CHECK_INT(query_check_channel(guarded(names[i].s, names[i].len), names[i].len),
                  names[i].want);
    char name[LIMITS_CHANNEL_NAME_MAX + 1];
    memset(name, 'n', sizeof name);
    CHECK_INT(query_check_channel(guarded(name, LIMITS_CHANNEL_NAME_MAX), LIMITS_CHANNEL_NAME_MAX),
              QUERY_OK);
    CHECK_INT(query_check_channel(guarded(name, sizeof name), sizeof name),
              QUERY_ERR_CHANNEL_TOO_LONG);
    /* A 4-byte character ending exactly at byte 128, and one crossing it. */
    memcpy(name + LIMITS_CHANNEL_NAME_MAX - 4, "\xf0\x9f\x98\x80", 4);
    CHECK_INT(query_check_channel(guarded(name, LIMITS_CHANNEL_NAME_MAX), LIMITS_CHANNEL_NAME_MAX),
              QUERY_OK);
    CHECK_INT(query_check_channel(guarded(name, LIMITS_CHANNEL_NAME_MAX - 1),
                                  LIMITS_CHANNEL_NAME_MAX - 1),
              QUERY_ERR_CHANNEL_BAD_BYTE);
}

/* Every byte value as a one-byte channel name: only 0x20..0x7e pass. */
static void test_every_single_byte(void)
{
    for (int b = 0; b < 256; b++) {
        char q[12];
        memcpy(q, "channel=", 8);
        snprintf(q + 8, 4, "%%%02X", b);
        struct parse_result r;
        parse(q, 11, &r);
        enum query_err want = (b >= 0x20 && b < 0x7f) ? QUERY_OK : QUERY_ERR_CHANNEL_BAD_BYTE;
        if (r.err != want)
            fprintf(stderr, "byte 0x%02x\n", b);
        CHECK_INT(r.err, want);
        free(r.scratch);
    }
}

/* position: 0 or 1, nothing else; its value reaches is_position_wanted. */
static void test_position(void)
{
    static const struct {
        const char *qs;
        enum query_err err;
        bool is_wanted;
    } pos_cases[] = {
        {"position=1", QUERY_OK, true},
        {"channel=a&position=0", QUERY_OK, false},
        {"position=%31&lastEventId=3", QUERY_OK, true},
        {"position=0&position=1", QUERY_OK, true}, /* the last one counts */
        {"channel=a", QUERY_OK, false},
        {"position=", QUERY_ERR_BAD_POSITION, false},
        {"position", QUERY_ERR_BAD_POSITION, false},
        {"position=2", QUERY_ERR_BAD_POSITION, false},
        {"position=01", QUERY_ERR_BAD_POSITION, false},
        {"position=true", QUERY_ERR_BAD_POSITION, false},
        {"position=1%20", QUERY_ERR_BAD_POSITION, false},
        {"Position=1", QUERY_OK, false}, /* keys are case-sensitive: unknown */
    };
    for (size_t i = 0; i < sizeof pos_cases / sizeof pos_cases[0]; i++) {
        struct parse_result r;
        parse(pos_cases[i].qs, strlen(pos_cases[i].qs), &r);
        if (r.err != pos_cases[i].err)
            fprintf(stderr, "position case \"%s\": %s\n", pos_cases[i].qs, query_strerror(r.err));
        CHECK_INT(r.err, pos_cases[i].err);
        if (r.err == QUERY_OK)
            CHECK_INT(r.req.is_position_wanted, pos_cases[i].is_wanted);
        free(r.scratch);
    }
}

static void test_strerror(void)
{
    const char *seen[QUERY_ERR_BAD_POSITION + 1];
    for (int e = QUERY_OK; e <= QUERY_ERR_BAD_POSITION; e++) {
        const char *s = query_strerror((enum query_err)e);
        CHECK(s != NULL);
        if (s == NULL)
            continue;
        CHECK(s[0] != '\0');
        CHECK(strchr(s, '\n') == NULL && strchr(s, '\r') == NULL); /* one line */
        seen[e] = s;
        for (int f = QUERY_OK; f < e; f++)
            CHECK(strcmp(seen[f], s) != 0); /* each error its own reason */
    }
    CHECK(query_strerror((enum query_err)(QUERY_ERR_BAD_POSITION + 1)) != NULL);
}

/* Parsing twice into the same struct gives the same answer (no state kept). */
static void test_reuse_output_struct(void)
{
    struct query_request req;
    char scratch[64];
    static const char a[] = "channel=a&channel=b&lastEventId=9";
    static const char b[] = "";
    CHECK_INT(query_parse(guarded(a, sizeof a - 1), sizeof a - 1, scratch, &req), QUERY_OK);
    CHECK_INT(req.channel_count, 2);
    CHECK_INT(query_parse(guarded(b, 0), 0, scratch, &req), QUERY_OK);
    CHECK_INT(req.channel_count, 1);
    CHECK_MEM(req.channels[0], req.channel_lens[0], "default");
    CHECK(!req.has_last_event_id);
}

int main(void)
{
    RUN(test_table);
    RUN(test_channel_name_limit);
    RUN(test_channel_count_limit);
    RUN(test_query_length_limit);
    RUN(test_every_truncation);
    RUN(test_token_param);
    RUN(test_parse_event_id);
    RUN(test_check_channel);
    RUN(test_every_single_byte);
    RUN(test_position);
    RUN(test_strerror);
    RUN(test_reuse_output_struct);
    TEST_MAIN_END();
}
