/* libFuzzer target for the permessage-deflate inflater. Input: byte 0
 * selects options (bits 0-2: the agreed client window, 8..15; bit 3:
 * client_no_context_takeover; bits 4-6: the message limit; bit 7: trim the
 * inflater between messages), byte 1 seeds the split points, the rest is a
 * series of compressed messages, each a 2-byte little-endian length and
 * that many bytes (a message is cut short at the end of the input).
 * Invariants:
 *   - inflating each message whole and inflating it split into fragments
 *     at seeded points (empty fragments included) give the same status
 *     and, on success, the same bytes;
 *   - a message that inflates has at most max_len bytes; a refused one
 *     never grew the output by more than max_len + 1 bytes;
 *   - after an error only deflate_inflater_free follows (the connection is
 *     failed), and a broken inflater keeps refusing;
 *   - every message (the raw bytes of the input) compressed by
 *     deflate_compress_message inflates back to itself. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deflate.h"

#define CHECK(c)                                                                               \
    do {                                                                                       \
        if (!(c))                                                                              \
            abort();                                                                           \
    } while (0)

static const size_t LIMITS[8] = {0, 1, 16, 100, 1000, 4096, 65536, 1u << 20};

static uint32_t next_rand(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 16;
}

/* Feeds msg[0..len) to inf as fragments cut at seeded points. */
static enum deflate_err inflate_split(struct deflate_inflater *inf, const uint8_t *msg, size_t len,
                                      uint32_t *seed, size_t max_len, struct deflate_buf *out)
{
    size_t at = 0;
    for (;;) {
        size_t left = len - at;
        size_t n = left == 0 ? 0 : next_rand(seed) % (left + 1);
        if (next_rand(seed) % 8 == 0)
            n = 0; /* an empty continuation frame */
        bool is_fin = at + n == len && next_rand(seed) % 2 == 0;
        enum deflate_err err = deflate_inflate(inf, msg + at, n, is_fin, max_len, out);
        at += n;
        if (err != DEFLATE_OK || is_fin)
            return err;
    }
}

static void round_trip(const uint8_t *msg, size_t len)
{
    struct deflate_buf packed = {0}, back = {0};
    struct deflate_inflater inf;
    deflate_inflater_init(&inf, 15, false);
    CHECK(deflate_compress_message(msg, len, 15, &packed) == DEFLATE_OK);
    CHECK(deflate_inflate(&inf, packed.data, packed.len, true, len, &back) == DEFLATE_OK);
    CHECK(back.len == len && (len == 0 || memcmp(back.data, msg, len) == 0));
    deflate_inflater_free(&inf);
    deflate_buf_free(&packed);
    deflate_buf_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int window_bits = 8 + (data[0] & 7);
    bool is_nct = (data[0] & 8) != 0;
    size_t max_len = LIMITS[(data[0] >> 4) & 7];
    bool is_trim = (data[0] & 128) != 0;
    uint32_t seed = data[1];
    data += 2;
    size -= 2;

    struct deflate_inflater whole, split;
    deflate_inflater_init(&whole, window_bits, is_nct);
    deflate_inflater_init(&split, window_bits, is_nct);
    struct deflate_buf out_whole = {0}, out_split = {0};
    size_t messages = 0;
    while (size > 0 && messages < 64) {
        size_t len = data[0] | (size > 1 ? (size_t)data[1] << 8 : 0);
        size_t head = size > 1 ? 2 : 1;
        if (len > size - head)
            len = size - head;
        const uint8_t *msg = data + head;
        data += head + len;
        size -= head + len;
        messages++;
        out_whole.len = out_split.len = 0;
        enum deflate_err ew = deflate_inflate(&whole, msg, len, true, max_len, &out_whole);
        enum deflate_err es = inflate_split(&split, msg, len, &seed, max_len, &out_split);
        CHECK(ew == es);
        if (ew == DEFLATE_OK) {
            CHECK(out_whole.len <= max_len);
            CHECK(out_whole.len == out_split.len);
            CHECK(out_whole.len == 0 || memcmp(out_whole.data, out_split.data, out_whole.len) == 0);
        } else {
            CHECK(out_whole.len <= max_len + 1 && out_split.len <= max_len + 1);
            /* Broken for good: any further call is refused. */
            CHECK(deflate_inflate(&whole, msg, len, true, max_len, &out_whole) ==
                  DEFLATE_ERR_PARAM);
            break;
        }
        if (is_trim) {
            bool a = deflate_inflater_trim(&whole), b = deflate_inflater_trim(&split);
            CHECK(a == b);
            CHECK(!a || deflate_inflater_heap_bytes(&whole) == 0);
            CHECK(a == (is_nct || deflate_inflater_heap_bytes(&whole) == 0));
        }
        if (len <= 4096)
            round_trip(msg, len);
    }
    deflate_inflater_free(&whole);
    deflate_inflater_free(&split);
    deflate_buf_free(&out_whole);
    deflate_buf_free(&out_split);
    return 0;
}
