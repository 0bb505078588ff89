/* libFuzzer target for utf8. Byte 0 seeds the split points; the rest is
 * the text. Invariants:
 *   - utf8_feed over the whole text, over pieces, and byte by byte gives
 *     the same result, which utf8_is_valid agrees with;
 *   - a slow reference written from RFC 3629's definitions (decode the
 *     code point, then check its range) gives the same result, and byte by
 *     byte feeding fails exactly at the first byte after which no valid
 *     completion exists (RFC 6455 §8.1 fail fast);
 *   - once invalid, the state stays invalid. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

#define CHECK(c)                                                                               \
    do {                                                                                       \
        if (!(c))                                                                              \
            abort();                                                                           \
    } while (0)

/* Whether a sequence of `need` bytes, of which the first `have` are known
 * and give the high bits `bits`, can still be completed into a valid
 * character: the possible code points form the interval [lo, hi]; it must
 * meet the range this length encodes (not overlong, at most U+10FFFF)
 * outside the surrogates. */
static bool completable(uint32_t bits, int have, int need)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    int missing = need - have;
    uint32_t lo = bits << (6 * missing);
    uint32_t hi = lo | ((UINT32_C(1) << (6 * missing)) - 1);
    if (lo < min_cp[need])
        lo = min_cp[need];
    if (hi > 0x10FFFF)
        hi = 0x10FFFF;
    if (lo > hi)
        return false;
    /* All of [lo, hi] inside D800..DFFF means only surrogates remain. */
    return !(lo >= 0xD800 && hi <= 0xDFFF);
}

/* Reference: returns UTF8_COMPLETE / UTF8_INCOMPLETE / UTF8_INVALID for
 * s[0..len) and, when invalid, sets *fail_at to the first byte index at
 * which the prefix stops being completable. */
static enum utf8_result reference(const uint8_t *s, size_t len, size_t *fail_at)
{
    size_t i = 0;
    while (i < len) {
        uint8_t b = s[i];
        int need;
        uint32_t bits;
        if (b < 0x80) {
            i++;
            continue;
        }
        if ((b & 0xE0) == 0xC0) {
            need = 2;
            bits = b & 0x1F;
        } else if ((b & 0xF0) == 0xE0) {
            need = 3;
            bits = b & 0x0F;
        } else if ((b & 0xF8) == 0xF0) {
            need = 4;
            bits = b & 0x07;
        } else {
            *fail_at = i; /* a continuation byte or F8..FF as a lead */
            return UTF8_INVALID;
        }
        if (!completable(bits, 1, need)) {
            *fail_at = i;
            return UTF8_INVALID;
        }
        for (int k = 1; k < need; k++) {
            if (i + (size_t)k == len)
                return UTF8_INCOMPLETE;
            uint8_t c = s[i + (size_t)k];
            if ((c & 0xC0) != 0x80) {
                *fail_at = i + (size_t)k;
                return UTF8_INVALID;
            }
            bits = bits << 6 | (c & 0x3F);
            if (!completable(bits, k + 1, need)) {
                *fail_at = i + (size_t)k;
                return UTF8_INVALID;
            }
        }
        i += (size_t)need;
    }
    return UTF8_COMPLETE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned seed = data[0];
    const uint8_t *s = data + 1;
    size_t len = size - 1, fail_at = len;
    enum utf8_result want = reference(s, len, &fail_at);

    /* Whole, in a private allocation so ASan sees an over-read. */
    uint8_t *copy = malloc(len ? len : 1);
    CHECK(copy);
    if (len)
        memcpy(copy, s, len);
    struct utf8_state st = {0};
    CHECK(utf8_feed(&st, copy, len) == want);
    CHECK(utf8_is_valid(copy, len) == (want == UTF8_COMPLETE));
    if (want == UTF8_INVALID) {
        CHECK(utf8_feed(&st, (const uint8_t *)"a", 1) == UTF8_INVALID);
        CHECK(utf8_feed(&st, NULL, 0) == UTF8_INVALID);
    }
    free(copy);

    /* Pieces of 1 + (seed-derived) bytes, each its own allocation. */
    st = (struct utf8_state){0};
    enum utf8_result r = UTF8_COMPLETE;
    size_t off = 0, k = 0;
    while (off < len) {
        size_t n = 1 + (seed * 7 + k * 13) % 17;
        k++;
        if (n > len - off)
            n = len - off;
        uint8_t *piece = malloc(n);
        CHECK(piece);
        memcpy(piece, s + off, n);
        r = utf8_feed(&st, piece, n);
        free(piece);
        off += n;
    }
    CHECK(r == want);

    /* Byte by byte: INVALID exactly at fail_at, and sticky after it. For
     * the first 256 bytes each prefix's result also matches the reference
     * on that prefix (further on that re-check would be quadratic). */
    st = (struct utf8_state){0};
    for (size_t i = 0; i < len; i++) {
        size_t pf = 0;
        r = utf8_feed(&st, &s[i], 1);
        if (i < fail_at) {
            CHECK(r != UTF8_INVALID);
            if (i < 256)
                CHECK(r == reference(s, i + 1, &pf));
        } else {
            CHECK(r == UTF8_INVALID);
            CHECK(utf8_feed(&st, (const uint8_t *)"a", 1) == UTF8_INVALID);
            break;
        }
    }
    return 0;
}
