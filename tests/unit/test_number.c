/* Unit tests for number: the one decimal parser, at both sides of every
 * limit (digit count, max, INT64_MAX) and with every kind of stray byte. */
#include <stdint.h>

#include "number.h"
#include "test.h"

#define S(lit) lit, sizeof(lit) - 1

struct number_case {
    const char *s;
    size_t len;
    int64_t max;
    bool ok;
    int64_t value;
};

static void test_table(void)
{
    static const struct number_case cases[] = {
        {S("0"), 0, true, 0},
        {S("1"), 0, false, 0},
        {S("15"), 15, true, 15},
        {S("16"), 15, false, 0},
        {S("3600"), 3600, true, 3600},
        {S("3601"), 3600, false, 0},
        {S("0003600"), 3600, true, 3600},
        {S("9223372036854775807"), INT64_MAX, true, INT64_MAX},
        {S("9223372036854775808"), INT64_MAX, false, 0},
        {S("9999999999999999999"), INT64_MAX, false, 0},
        {S("0000000000000000001"), INT64_MAX, true, 1},   /* 19 digits */
        {S("00000000000000000001"), INT64_MAX, false, 0}, /* 20 digits */
        {S("18446744073709551616"), INT64_MAX, false, 0}, /* 2^64 */
        {S(""), INT64_MAX, false, 0},
        {S("-1"), INT64_MAX, false, 0},
        {S("+1"), INT64_MAX, false, 0},
        {S(" 1"), INT64_MAX, false, 0},
        {S("1 "), INT64_MAX, false, 0},
        {S("1k"), INT64_MAX, false, 0},
        {S("0x10"), INT64_MAX, false, 0},
        {S("1e3"), INT64_MAX, false, 0},
        {S("1\0"), INT64_MAX, false, 0},
        {S("/"), INT64_MAX, false, 0},
        {S(":"), INT64_MAX, false, 0},
        {S("\xef\xbc\x91"), INT64_MAX, false, 0}, /* FULLWIDTH DIGIT ONE */
        {S("5"), -1, false, 0},                   /* a negative max takes nothing */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct number_case *c = &cases[i];
        int64_t v = -42;
        bool ok = number_parse(guarded(c->s, c->len), c->len, c->max, &v);
        if (ok != c->ok)
            fprintf(stderr, "number case %zu \"%.*s\"\n", i, (int)c->len, c->s);
        CHECK_INT(ok, c->ok);
        CHECK_INT(v, c->ok ? c->value : -42); /* untouched on failure */
    }
}

/* Every digit count from 1 to NUMBER_DIGITS_MAX is taken; one more is not. */
static void test_digit_counts(void)
{
    char nines[NUMBER_DIGITS_MAX + 1];
    memset(nines, '9', sizeof nines);
    int64_t want = 0, v;
    for (size_t n = 1; n <= 18; n++) {
        want = want * 10 + 9;
        CHECK(number_parse(guarded(nines, n), n, INT64_MAX, &v));
        CHECK_INT(v, want);
    }
    char ones[NUMBER_DIGITS_MAX + 1];
    memset(ones, '1', sizeof ones);
    CHECK(number_parse(guarded(ones, NUMBER_DIGITS_MAX), NUMBER_DIGITS_MAX, INT64_MAX, &v));
    CHECK(!number_parse(guarded(ones, sizeof ones), sizeof ones, INT64_MAX, &v));
}

int main(void)
{
    RUN(test_table);
    RUN(test_digit_counts);
    TEST_MAIN_END();
}
