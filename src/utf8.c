/* utf8: strict incremental UTF-8 validation as a deterministic automaton.
 *
 * Each byte is mapped to one of 12 classes, and the (state, class) pair
 * picks the next state. The states encode exactly which continuation byte
 * ranges may come next (RFC 3629 §4, the UTF8-octets ABNF), so every
 * forbidden sequence is rejected on the first byte that no valid
 * continuation could follow:
 *   - C0, C1 and F5..FF can never appear (their every completion is an
 *     overlong form or above U+10FFFF), so they fail on the byte itself;
 *   - E0 must be followed by A0..BF (else overlong), ED by 80..9F (else a
 *     surrogate U+D800..U+DFFF), F0 by 90..BF (else overlong) and F4 by
 *     80..8F (else above U+10FFFF).
 * This is the "fail fast" RFC 6455 §8.1 asks for on text messages.
 * Invariant: state 0 is the start state, so a zero-filled utf8_state is
 * valid; S_REJECT is sticky. Pure: the tables are read-only constants.
 */
#include "utf8.h"

#include <string.h>

enum {
    S_ACCEPT = 0, /* at a character boundary */
    S_TAIL1,      /* one continuation byte 80..BF still expected */
    S_TAIL2,      /* two continuation bytes 80..BF still expected */
    S_TAIL3,      /* three continuation bytes 80..BF still expected */
    S_E0,         /* after E0: A0..BF, then one more */
    S_ED,         /* after ED: 80..9F, then one more */
    S_F0,         /* after F0: 90..BF, then two more */
    S_F4,         /* after F4: 80..8F, then two more */
    S_REJECT,     /* invalid; stays here */
    S_COUNT
};

enum {
    C_ASCII, /* 00..7F */
    C_80_8F, /* continuation, low quarter */
    C_90_9F, /* continuation, second quarter */
    C_A0_BF, /* continuation, upper half */
    C_BAD,   /* C0, C1, F5..FF: never valid (RFC 3629 §1, §4) */
    C_LEAD2, /* C2..DF */
    C_E0,    /* E0 */
    C_LEAD3, /* E1..EC, EE..EF */
    C_ED,    /* ED */
    C_F0,    /* F0 */
    C_LEAD4, /* F1..F3 */
    C_F4,    /* F4 */
    C_COUNT
};

static const uint8_t byte_class[256] = {
    /* 00 */ 0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 10 */ 0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 20 */ 0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 30 */ 0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 40 */ 0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 50 */ 0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 60 */ 0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 70 */ 0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 80 */ 1, 1,  1,  1,  1,  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 90 */ 2, 2,  2,  2,  2,  2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    /* A0 */ 3, 3,  3,  3,  3,  3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    /* B0 */ 3, 3,  3,  3,  3,  3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    /* C0 */ 4, 4,  5,  5,  5,  5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    /* D0 */ 5, 5,  5,  5,  5,  5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    /* E0 */ 6, 7,  7,  7,  7,  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7,
    /* F0 */ 9, 10, 10, 10, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

#define R S_REJECT
/* next_state[state][class]. Rows follow the UTF8-2/3/4 productions of
 * RFC 3629 §4; every cell not listed there is R. */
static const uint8_t next_state[S_COUNT][C_COUNT] = {
    /* columns in class order: ASCII 80..8F 90..9F A0..BF bad LEAD2 E0 LEAD3 ED F0 LEAD4 F4 */
    [S_ACCEPT] = {S_ACCEPT, R, R, R, R, S_TAIL1, S_E0, S_TAIL2, S_ED, S_F0, S_TAIL3, S_F4},
    [S_TAIL1] = {R, S_ACCEPT, S_ACCEPT, S_ACCEPT, R, R, R, R, R, R, R, R},
    [S_TAIL2] = {R, S_TAIL1, S_TAIL1, S_TAIL1, R, R, R, R, R, R, R, R},
    [S_TAIL3] = {R, S_TAIL2, S_TAIL2, S_TAIL2, R, R, R, R, R, R, R, R},
    /* E0 A0..BF: smaller second bytes would encode < U+0800 (overlong). */
    [S_E0] = {R, R, R, S_TAIL1, R, R, R, R, R, R, R, R},
    /* ED 80..9F: A0..BF would encode U+D800..U+DFFF (surrogates, §3). */
    [S_ED] = {R, S_TAIL1, S_TAIL1, R, R, R, R, R, R, R, R, R},
    /* F0 90..BF: 80..8F would encode < U+10000 (overlong). */
    [S_F0] = {R, R, S_TAIL2, S_TAIL2, R, R, R, R, R, R, R, R},
    /* F4 80..8F: 90..BF would encode > U+10FFFF (§3). */
    [S_F4] = {R, S_TAIL2, R, R, R, R, R, R, R, R, R, R},
    [S_REJECT] = {R, R, R, R, R, R, R, R, R, R, R, R},
};
#undef R

enum utf8_result utf8_feed(struct utf8_state *st, const uint8_t *buf, size_t len)
{
    uint32_t s = st->state;
    size_t i = 0;

    /* A state value we never produce (memory corruption, or a struct from
     * elsewhere) is treated as invalid rather than indexing out of the table. */
    if (s >= S_REJECT) {
        st->state = S_REJECT;
        return UTF8_INVALID;
    }
    while (i < len) {
        if (s == S_ACCEPT) {
            /* ASCII fast path: eight bytes at a time while no high bit is set.
             * memcpy keeps the load free of alignment and aliasing concerns. */
            while (len - i >= 8) {
                uint64_t w;
                memcpy(&w, buf + i, sizeof w);
                if (w & UINT64_C(0x8080808080808080))
                    break;
                i += 8;
            }
            while (i < len && buf[i] < 0x80)
                i++;
            if (i == len)
                break;
        }
        s = next_state[s][byte_class[buf[i]]];
        i++;
        if (s == S_REJECT) {
            st->state = S_REJECT;
            return UTF8_INVALID;
        }
    }
    st->state = s;
    return s == S_ACCEPT ? UTF8_COMPLETE : UTF8_INCOMPLETE;
}

bool utf8_is_valid(const uint8_t *buf, size_t len)
{
    struct utf8_state st = {0};
    return utf8_feed(&st, buf, len) == UTF8_COMPLETE;
}

/* Walks buf and either copies (out != NULL) or counts the repaired text.
 * A maximal subpart is the longest prefix of a character that some valid
 * completion could still follow; the automaton rejects exactly on the
 * byte after it, so that byte starts the next attempt (unless it was the
 * first byte, which is then a subpart on its own). */
static size_t repair(const uint8_t *buf, size_t len, uint8_t *out)
{
    static const uint8_t REPLACEMENT[3] = {0xEF, 0xBF, 0xBD}; /* U+FFFD */
    size_t n = 0, i = 0;
    while (i < len) {
        uint32_t s = S_ACCEPT;
        size_t start = i;
        do
            s = next_state[s][byte_class[buf[i++]]];
        while (s != S_ACCEPT && s != S_REJECT && i < len);
        if (s == S_ACCEPT) {
            if (out != NULL)
                memcpy(out + n, buf + start, i - start);
            n += i - start;
            continue;
        }
        if (s == S_REJECT && i - start > 1)
            i--; /* the rejecting byte may begin a character of its own */
        if (out != NULL)
            memcpy(out + n, REPLACEMENT, sizeof REPLACEMENT);
        n += sizeof REPLACEMENT;
    }
    return n;
}

size_t utf8_repaired_len(const uint8_t *buf, size_t len)
{
    return repair(buf, len, NULL);
}

size_t utf8_repair(const uint8_t *buf, size_t len, uint8_t *out)
{
    return repair(buf, len, out);
}
