/* Unit tests for pattern: validity (empty, '*' alone, prefixes, the length
 * limit on both sides, control bytes, invalid UTF-8), matching (exact,
 * prefix, '*' only as the last byte, case, empty prefix) and sets (dedup,
 * the 64-pattern limit, empty sets cover nothing). */
#include "pattern.h"
#include "test.h"

#include <stdlib.h>

#define S(lit) lit, sizeof(lit) - 1

static void test_valid(void)
{
    static const struct {
        const char *p;
        bool ok;
    } cases[] = {
        {"", false},      {"*", true},       {"a", true},      {"a*", true},
        {"room:*", true}, {"**", true},      {"*a", true},     {"a*b", true},
        {"\x01", false},  {"a\x7f*", false}, {"\xff*", false}, {"caf\xc3\xa9*", true},
        {"a\n", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].p);
        CHECK(pattern_is_valid(guarded(cases[i].p, len), len) == cases[i].ok);
    }
    char p[PATTERN_MAX_LEN + 2];
    memset(p, 'c', sizeof p);
    CHECK(pattern_is_valid(p, LIMITS_CHANNEL_NAME_MAX));
    CHECK(!pattern_is_valid(p, LIMITS_CHANNEL_NAME_MAX + 1));
    p[LIMITS_CHANNEL_NAME_MAX] = '*';
    CHECK(pattern_is_valid(p, LIMITS_CHANNEL_NAME_MAX + 1));
    p[LIMITS_CHANNEL_NAME_MAX + 1] = '*';
    CHECK(!pattern_is_valid(p, LIMITS_CHANNEL_NAME_MAX + 2));
}

static void test_matches(void)
{
    static const struct {
        const char *p, *ch;
        bool match;
    } cases[] = {
        {"news", "news", true},    {"news", "news2", false},     {"news", "new", false},
        {"news", "NEWS", false},   {"news*", "news", true},      {"news*", "news2", true},
        {"news*", "new", false},   {"room:*", "room:", true},    {"room:*", "room:1", true},
        {"room:*", "room", false}, {"room:*", "rooms:1", false}, {"*", "anything", true},
        {"*", "x", true},          {"a*b", "a*b", true},         {"a*b", "a*bc", false},
        {"a*b*", "a*bc", true},    {"**", "*x", true},           {"**", "x", false},
        {"*a", "*a", true},        {"*a", "ba", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t pl = strlen(cases[i].p), cl = strlen(cases[i].ch);
        bool m = pattern_matches(guarded(cases[i].p, pl), pl, guarded(cases[i].ch, cl), cl);
        if (m != cases[i].match)
            fprintf(stderr, "case %zu: %s vs %s\n", i, cases[i].p, cases[i].ch);
        CHECK(m == cases[i].match);
    }
}

static void test_set(void)
{
    struct pattern_set set = {0};
    CHECK(!pattern_set_covers(&set, S("a")));
    CHECK_INT(pattern_set_add(&set, S("")), PATTERN_ERR_INVALID);
    CHECK_INT(pattern_set_add(&set, S("a")), PATTERN_OK);
    CHECK_INT(pattern_set_add(&set, S("a")), PATTERN_OK);
    CHECK_INT(set.count, 1);
    CHECK_INT(pattern_set_add(&set, S("b:*")), PATTERN_OK);
    CHECK(pattern_set_covers(&set, S("a")));
    CHECK(pattern_set_covers(&set, S("b:x")));
    CHECK(!pattern_set_covers(&set, S("b")));
    CHECK(!pattern_set_covers(&set, S("ab")));
    struct pattern_set full = {0};
    char name[8];
    for (int i = 0; i < PATTERN_SET_MAX; i++) {
        int n = snprintf(name, sizeof name, "c%d", i);
        CHECK_INT(pattern_set_add(&full, name, (size_t)n), PATTERN_OK);
    }
    CHECK_INT(pattern_set_add(&full, S("one-more")), PATTERN_ERR_FULL);
    CHECK_INT(pattern_set_add(&full, S("c0")), PATTERN_OK); /* a repeat still fits */
    CHECK(pattern_set_covers(&full, S("c63")));
    CHECK(!pattern_set_covers(&full, S("one-more")));
    CHECK(strcmp(pattern_strerror(PATTERN_ERR_FULL), "unknown error") != 0);
}

/* The compact copy answers exactly as the set, for full and empty sets. */
static void test_list(void)
{
    static const char *const pats[] = {"a", "b:*", "*x", "caf\xc3\xa9"};
    static const char *const chans[] = {"a", "b:", "b:1", "b", "*x", "x", "caf\xc3\xa9", "ab", ""};
    struct pattern_set set = {0};
    for (size_t n = 0; n <= 4; n++) {
        if (n > 0)
            CHECK_INT(pattern_set_add(&set, pats[n - 1], strlen(pats[n - 1])), PATTERN_OK);
        struct pattern_list *list = pattern_list_copy(&set);
        CHECK(list != NULL);
        for (size_t i = 0; i < sizeof chans / sizeof chans[0]; i++) {
            size_t len = strlen(chans[i]);
            CHECK(pattern_list_covers(list, chans[i], len) ==
                  pattern_set_covers(&set, chans[i], len));
        }
        free(list);
    }
    struct pattern_set full = {0};
    char name[PATTERN_MAX_LEN];
    memset(name, 'n', sizeof name);
    name[sizeof name - 1] = '*'; /* the longest pattern: 128 bytes and '*' */
    for (int i = 0; i < PATTERN_SET_MAX; i++) {
        name[0] = (char)('0' + i % 10);
        name[1] = (char)('0' + i / 10);
        CHECK_INT(pattern_set_add(&full, name, sizeof name), PATTERN_OK);
    }
    struct pattern_list *list = pattern_list_copy(&full);
    CHECK(pattern_list_covers(list, name, sizeof name - 1));
    CHECK(!pattern_list_covers(list, "zz", 2));
    free(list);
    CHECK(!pattern_list_covers(NULL, "a", 1));
}

int main(void)
{
    RUN(test_valid);
    RUN(test_matches);
    RUN(test_set);
    RUN(test_list);
    TEST_MAIN_END();
}
