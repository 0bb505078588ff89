/* Unit tests for utf8: Markus Kuhn's stress cases and the Autobahn 6.x
 * cases, split points, fail-fast positions, the ASCII fast path, and
 * exhaustive counts over short sequences. Inputs sit before a guard page. */
#include <stdint.h>

#include "test.h"
#include "utf8.h"

struct utf8_case {
    const char *name;
    const char *bytes;
    size_t len;
    enum utf8_result want;
    size_t fail_at; /* for UTF8_INVALID: index of the first byte that must fail */
};

#define S(lit) lit, sizeof(lit) - 1

/* guarded() maps fresh pages on every call; the loops below make thousands
 * of inputs, so they reuse one guarded region instead. The previous input
 * is overwritten, which is fine: the validator keeps no pointer. */
#define AT_GUARD_CAP 4096
static const uint8_t *at_guard(const void *data, size_t len)
{
    static uint8_t *end;
    if (!end) {
        static const uint8_t zero[AT_GUARD_CAP];
        end = (uint8_t *)guarded(zero, sizeof zero) + sizeof zero;
    }
    if (len > AT_GUARD_CAP)
        abort();
    memmove(end - len, data, len);
    return end - len;
}

static const struct utf8_case cases[] = {
    {"empty", S(""), UTF8_COMPLETE, 0},
    {"ascii", S("Hello, world"), UTF8_COMPLETE, 0},
    {"nul", "\0", 1, UTF8_COMPLETE, 0},
    {"kosme", S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), UTF8_COMPLETE, 0},
    /* Kuhn 2.1: first code point of each length */
    {"U+0080", S("\xc2\x80"), UTF8_COMPLETE, 0},
    {"U+0800", S("\xe0\xa0\x80"), UTF8_COMPLETE, 0},
    {"U+10000", S("\xf0\x90\x80\x80"), UTF8_COMPLETE, 0},
    /* Kuhn 2.2: last code point of each length */
    {"U+007F", S("\x7f"), UTF8_COMPLETE, 0},
    {"U+07FF", S("\xdf\xbf"), UTF8_COMPLETE, 0},
    {"U+FFFF", S("\xef\xbf\xbf"), UTF8_COMPLETE, 0},
    {"U+10FFFF", S("\xf4\x8f\xbf\xbf"), UTF8_COMPLETE, 0},
    /* Kuhn 2.3: other boundaries */
    {"U+D7FF", S("\xed\x9f\xbf"), UTF8_COMPLETE, 0},
    {"U+E000", S("\xee\x80\x80"), UTF8_COMPLETE, 0},
    {"U+FFFD", S("\xef\xbf\xbd"), UTF8_COMPLETE, 0},
    {"U+FFFE noncharacter", S("\xef\xbf\xbe"), UTF8_COMPLETE, 0},
    {"euro", S("\xe2\x82\xac"), UTF8_COMPLETE, 0},
    {"emoji", S("\xf0\x9f\x98\x80"), UTF8_COMPLETE, 0},
    /* Kuhn 3.1: stray continuation bytes */
    {"stray 80", S("\x80"), UTF8_INVALID, 0},
    {"stray bf", S("\xbf"), UTF8_INVALID, 0},
    {"stray after ascii", S("ab\x80"), UTF8_INVALID, 2},
    {"two stray", S("\x80\xbf"), UTF8_INVALID, 0},
    {"extra continuation", S("\xc2\x80\x80"), UTF8_INVALID, 2},
    /* Kuhn 3.2: lone lead bytes followed by a space */
    {"lone c2", S("\xc2 "), UTF8_INVALID, 1},
    {"lone e1", S("\xe1 "), UTF8_INVALID, 1},
    {"lone f1", S("\xf1 "), UTF8_INVALID, 1},
    {"e1 80 then ascii", S("\xe1\x80" "A"), UTF8_INVALID, 2},
    /* Kuhn 3.3: sequences with the last byte missing, at the end */
    {"cut 2", S("\xdf"), UTF8_INCOMPLETE, 0},
    {"cut 3", S("\xef\xbf"), UTF8_INCOMPLETE, 0},
    {"cut 4", S("\xf4\x8f\xbf"), UTF8_INCOMPLETE, 0},
    {"ascii then cut", S("abc\xc2"), UTF8_INCOMPLETE, 0},
    {"kosme then ed", S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed"), UTF8_INCOMPLETE, 0},
    /* Kuhn 3.4/3.5: impossible bytes */
    {"fe", S("\xfe"), UTF8_INVALID, 0},
    {"ff", S("\xff"), UTF8_INVALID, 0},
    {"f5", S("\xf5\x80\x80\x80"), UTF8_INVALID, 0},
    {"f7", S("\xf7\xbf\xbf\xbf"), UTF8_INVALID, 0},
    {"5-byte form", S("\xf8\x88\x80\x80\x80"), UTF8_INVALID, 0},
    {"6-byte form", S("\xfc\x84\x80\x80\x80\x80"), UTF8_INVALID, 0},
    /* Kuhn 4: overlong forms */
    {"overlong slash c0 af", S("\xc0\xaf"), UTF8_INVALID, 0},
    {"overlong c1 bf", S("\xc1\xbf"), UTF8_INVALID, 0},
    {"overlong nul c0 80", S("\xc0\x80"), UTF8_INVALID, 0},
    {"overlong e0 80 af", S("\xe0\x80\xaf"), UTF8_INVALID, 1},
    {"overlong e0 9f bf", S("\xe0\x9f\xbf"), UTF8_INVALID, 1},
    {"overlong f0 80 80 af", S("\xf0\x80\x80\xaf"), UTF8_INVALID, 1},
    {"overlong f0 8f bf bf", S("\xf0\x8f\xbf\xbf"), UTF8_INVALID, 1},
    /* Kuhn 5: surrogates */
    {"surrogate ed a0 80", S("\xed\xa0\x80"), UTF8_INVALID, 1},
    {"surrogate ed bf bf", S("\xed\xbf\xbf"), UTF8_INVALID, 1},
    {"surrogate pair", S("\xed\xa0\x80\xed\xb0\x80"), UTF8_INVALID, 1},
    /* above U+10FFFF */
    {"f4 90 80 80", S("\xf4\x90\x80\x80"), UTF8_INVALID, 1},
    {"f4 bf bf bf", S("\xf4\xbf\xbf\xbf"), UTF8_INVALID, 1},
    /* Autobahn 6.3.1 / 6.4.x: fail fast inside a longer text */
    {"autobahn 6.3.1",
     S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80" "edited"),
     UTF8_INVALID, 12},
    {"autobahn 6.4.1",
     S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80" "edited"),
     UTF8_INVALID, 12},
    {"autobahn 6.4.3", S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90"),
     UTF8_INVALID, 12},
    {"long ascii then bad", S("0123456789abcdef0123456789abcdef01234\xff" "tail"),
     UTF8_INVALID, 37},
};

#define NCASES (sizeof cases / sizeof cases[0])

static void test_whole(void)
{
    for (size_t i = 0; i < NCASES; i++) {
        const struct utf8_case *c = &cases[i];
        const uint8_t *p = at_guard(c->bytes, c->len);
        struct utf8_state st = {0};
        enum utf8_result r = utf8_feed(&st, p, c->len);
        if (r != c->want)
            fprintf(stderr, "case %s\n", c->name);
        CHECK_INT(r, c->want);
        CHECK_INT(utf8_is_valid(p, c->len), c->want == UTF8_COMPLETE);
    }
}

/* Fed one byte at a time, each case fails exactly on its fail_at byte
 * (RFC 6455 §8.1 fail fast), and never earlier. */
static void test_fail_fast_byte_by_byte(void)
{
    for (size_t i = 0; i < NCASES; i++) {
        const struct utf8_case *c = &cases[i];
        struct utf8_state st = {0};
        size_t failed = c->len;
        enum utf8_result r = UTF8_COMPLETE;
        for (size_t k = 0; k < c->len; k++) {
            r = utf8_feed(&st, at_guard(c->bytes + k, 1), 1);
            if (r == UTF8_INVALID) {
                failed = k;
                break;
            }
        }
        if (c->want == UTF8_INVALID) {
            if (failed != c->fail_at)
                fprintf(stderr, "case %s\n", c->name);
            CHECK_INT(failed, c->fail_at);
        } else {
            CHECK_INT(r, c->want);
        }
    }
}

/* Split at every byte boundary: the final result equals the whole-buffer
 * result, and the first half alone is COMPLETE, INCOMPLETE or INVALID
 * consistently with the prefix on its own. */
static void test_every_split(void)
{
    for (size_t i = 0; i < NCASES; i++) {
        const struct utf8_case *c = &cases[i];
        for (size_t k = 0; k <= c->len; k++) {
            struct utf8_state st = {0}, alone = {0};
            enum utf8_result r1 = utf8_feed(&st, at_guard(c->bytes, k), k);
            CHECK_INT(r1, utf8_feed(&alone, (const uint8_t *)c->bytes, k));
            enum utf8_result r2 = utf8_feed(&st, at_guard(c->bytes + k, c->len - k), c->len - k);
            CHECK_INT(r2, c->want);
        }
    }
}

/* The brief's example: a character split at every byte boundary reports
 * INCOMPLETE, then COMPLETE once the rest arrives. */
static void test_split_incomplete_then_complete(void)
{
    static const char *chars[] = {"\xc2\x80", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                  "\xf4\x8f\xbf\xbf", "\xed\x9f\xbf"};
    for (size_t i = 0; i < sizeof chars / sizeof chars[0]; i++) {
        size_t len = strlen(chars[i]);
        for (size_t k = 1; k < len; k++) {
            struct utf8_state st = {0};
            CHECK_INT(utf8_feed(&st, at_guard(chars[i], k), k), UTF8_INCOMPLETE);
            CHECK_INT(utf8_feed(&st, at_guard(chars[i] + k, len - k), len - k), UTF8_COMPLETE);
        }
    }
}

static void test_sticky_invalid(void)
{
    struct utf8_state st = {0};
    CHECK_INT(utf8_feed(&st, at_guard("\xc0", 1), 1), UTF8_INVALID);
    CHECK_INT(utf8_feed(&st, at_guard("abc", 3), 3), UTF8_INVALID);
    CHECK_INT(utf8_feed(&st, NULL, 0), UTF8_INVALID);
    st = (struct utf8_state){0};
    CHECK_INT(utf8_feed(&st, at_guard("abc", 3), 3), UTF8_COMPLETE);
}

static void test_empty_feeds_keep_state(void)
{
    struct utf8_state st = {0};
    CHECK_INT(utf8_feed(&st, NULL, 0), UTF8_COMPLETE);
    CHECK_INT(utf8_feed(&st, at_guard("\xe2", 1), 1), UTF8_INCOMPLETE);
    CHECK_INT(utf8_feed(&st, NULL, 0), UTF8_INCOMPLETE);
    CHECK_INT(utf8_feed(&st, at_guard("\x82\xac", 2), 2), UTF8_COMPLETE);
    CHECK(utf8_is_valid(NULL, 0));
}

/* The eight-byte ASCII fast path: a bad byte or a multi-byte character at
 * every offset of buffers up to 40 bytes long. */
static void test_fast_path_offsets(void)
{
    uint8_t buf[48];
    for (size_t len = 1; len <= 40; len++) {
        for (size_t pos = 0; pos < len; pos++) {
            memset(buf, 'a', len);
            buf[pos] = 0xff;
            struct utf8_state st = {0};
            CHECK_INT(utf8_feed(&st, at_guard(buf, len), len), UTF8_INVALID);
            size_t k;
            st = (struct utf8_state){0};
            for (k = 0; k < len; k++)
                if (utf8_feed(&st, at_guard(buf + k, 1), 1) == UTF8_INVALID)
                    break;
            CHECK_INT(k, pos);
            if (pos + 3 <= len) {
                memcpy(buf + pos, "\xe2\x82\xac", 3);
                CHECK(utf8_is_valid(at_guard(buf, len), len));
                CHECK(!utf8_is_valid(at_guard(buf, pos + 2), pos + 2));
            }
        }
    }
}

/* Exhaustive counts, an oracle independent of the automaton: of all
 * two-byte strings, 128*128 ASCII pairs + 1920 (U+0080..U+07FF) are valid;
 * of all E0..EF xx xx, 61440 (U+0800..U+FFFF minus 2048 surrogates); of
 * F0..FF followed by three continuation bytes, 0x100000 (U+10000..U+10FFFF). */
static void test_exhaustive_counts(void)
{
    uint8_t b[4];
    long n2 = 0, n3 = 0, n4 = 0;
    for (unsigned x = 0; x < 0x10000; x++) {
        b[0] = (uint8_t)(x >> 8);
        b[1] = (uint8_t)x;
        n2 += utf8_is_valid(b, 2);
    }
    for (unsigned x = 0xE00000; x < 0xF00000; x++) {
        b[0] = (uint8_t)(x >> 16);
        b[1] = (uint8_t)(x >> 8);
        b[2] = (uint8_t)x;
        n3 += utf8_is_valid(b, 3);
    }
    for (unsigned lead = 0xF0; lead <= 0xFF; lead++)
        for (unsigned x = 0; x < 64 * 64 * 64; x++) {
            b[0] = (uint8_t)lead;
            b[1] = (uint8_t)(0x80 | (x >> 12));
            b[2] = (uint8_t)(0x80 | ((x >> 6) & 63));
            b[3] = (uint8_t)(0x80 | (x & 63));
            n4 += utf8_is_valid(b, 4);
        }
    CHECK_INT(n2, 128 * 128 + 1920);
    CHECK_INT(n3, 61440);
    CHECK_INT(n4, 0x100000);
}

/* utf8_repair: each maximal subpart of an invalid sequence becomes one
 * U+FFFD, as the WHATWG decoder does (the expected bytes are what Python's
 * errors="replace" decoder, which follows the same rule, gives). */
static void test_repair(void)
{
    static const struct {
        const char *in;
        size_t in_len;
        const char *want;
        size_t want_len;
    } repairs[] = {
        {S(""), S("")},
        {S("\x70\x6c\x61\x69\x6e"), S("\x70\x6c\x61\x69\x6e")},
        {S("\x61\xff\x62"), S("\x61\xef\xbf\xbd\x62")},
        {S("\xff"), S("\xef\xbf\xbd")},
        {S("\xed\xa0\x80"), S("\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd")},
        {S("\xc0\xaf"), S("\xef\xbf\xbd\xef\xbf\xbd")},
        {S("\xf0\x90\x80"), S("\xef\xbf\xbd")},
        {S("\xe2\x82\x61"), S("\xef\xbf\xbd\x61")},
        {S("\xf4\x90\x80\x80"), S("\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd")},
        {S("\xe2\x82\xac\xf0\x9f\x98\x80"), S("\xe2\x82\xac\xf0\x9f\x98\x80")},
        {S("\x80\x80"), S("\xef\xbf\xbd\xef\xbf\xbd")},
        {S("\xf0\x90\x80\xe2\x82\xac"), S("\xef\xbf\xbd\xe2\x82\xac")},
        {S("\xe0\x80\x80"), S("\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd")},
        {S("\x78\xc3"), S("\x78\xef\xbf\xbd")},
    };
    for (size_t i = 0; i < sizeof repairs / sizeof repairs[0]; i++) {
        const uint8_t *in = guarded(repairs[i].in, repairs[i].in_len);
        size_t n = utf8_repaired_len(in, repairs[i].in_len);
        CHECK_INT(n, repairs[i].want_len);
        uint8_t out[64];
        CHECK(n <= sizeof out);
        if (n > sizeof out)
            continue;
        CHECK_INT(utf8_repair(in, repairs[i].in_len, out), n);
        CHECK(memcmp(out, repairs[i].want, n) == 0);
        CHECK(utf8_is_valid(out, n));
    }
    /* Every two-byte input repairs to valid UTF-8, unchanged when valid. */
    for (unsigned v = 0; v < 65536; v++) {
        uint8_t in[2] = {(uint8_t)(v >> 8), (uint8_t)v}, out[6];
        size_t n = utf8_repair(in, 2, out);
        CHECK(n == utf8_repaired_len(in, 2) && n <= sizeof out && utf8_is_valid(out, n));
        if (utf8_is_valid(in, 2))
            CHECK(n == 2 && memcmp(in, out, 2) == 0);
    }
}

int main(void)
{
    RUN(test_whole);
    RUN(test_fail_fast_byte_by_byte);
    RUN(test_every_split);
    RUN(test_split_incomplete_then_complete);
    RUN(test_sticky_invalid);
    RUN(test_empty_feeds_keep_state);
    RUN(test_fast_path_offsets);
    RUN(test_exhaustive_counts);
    RUN(test_repair);
    TEST_MAIN_END();
}
