/* libFuzzer target for ws_frame. Input: byte 0 selects options (bit 0:
 * permessage-deflate negotiated; bits 1-2: message limit), bytes 1-2 seed
 * the split points, the rest is the client byte stream. Invariants:
 *   - every return is a consumed count <= the bytes offered, NEED_MORE or
 *     a sticky error; every chunk is the tail of the bytes it consumed;
 *   - each chunk equals the raw input XORed with the key that precedes the
 *     frame's payload, and the header length is the minimal form for the
 *     announced length (an oracle independent of the state machine);
 *   - decoding whole, split in two, and in small pieces gives the same
 *     frames, payloads and final status;
 *   - frames built by ws_frame_encode_masked from the input decode back to
 *     the same opcodes, flags and payloads, and ws_frame_header_encode
 *     matches their headers without the mask;
 *   - close payloads built by ws_frame_close_payload parse back. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws_frame.h"

#define CHECK(c)                                                                               \
    do {                                                                                       \
        if (!(c))                                                                              \
            abort();                                                                           \
    } while (0)

struct frame_rec {
    int opcode, message_opcode;
    bool is_fin, is_rsv1, is_compressed, is_message_end, is_complete;
    uint64_t frame_len;
    size_t payload_len;
};

struct trace {
    struct frame_rec *f;
    size_t n, cap;
    uint8_t *payload;
    size_t payload_len, payload_cap;
    ptrdiff_t status;
};

static void trace_init(struct trace *t, size_t max_frames, size_t max_payload)
{
    t->cap = max_frames;
    t->f = calloc(max_frames ? max_frames : 1, sizeof *t->f);
    t->payload_cap = max_payload;
    t->payload = malloc(max_payload ? max_payload : 1);
    t->n = 0;
    t->payload_len = 0;
    t->status = WS_FRAME_NEED_MORE;
    CHECK(t->f && t->payload);
}

static void trace_free(struct trace *t)
{
    free(t->f);
    free(t->payload);
}

/* Feeds buf[0..len) (a private copy the decoder may unmask) and records. */
static void feed(struct ws_frame_decoder *d, struct trace *t, uint8_t *buf, size_t len,
                 uint64_t max, bool is_deflate)
{
    size_t off = 0;
    if (t->status != WS_FRAME_NEED_MORE)
        return;
    for (;;) {
        struct ws_frame_chunk c;
        ptrdiff_t r = ws_frame_decode(d, buf + off, len - off, max, is_deflate, &c);
        if (r < 0) {
            t->status = r;
            CHECK(r >= WS_FRAME_ERR_TEXT_UTF8);
            if (r != WS_FRAME_NEED_MORE) {
                /* Sticky, and mapped to one of the three close codes. */
                struct ws_frame_chunk c2;
                CHECK(ws_frame_decode(d, buf, len, max, is_deflate, &c2) == r);
                uint16_t code = ws_frame_err_close_code((enum ws_frame_err)r);
                CHECK(code == 1002 || code == 1007 || code == 1009);
            }
            return;
        }
        CHECK(r > 0 && (size_t)r <= len - off);
        CHECK(c.len <= (size_t)r && c.data == buf + off + (size_t)r - c.len);
        CHECK(c.is_frame_end == (c.offset + c.len == c.frame_len));
        CHECK(!c.is_message_end || (c.is_frame_end && c.is_fin && c.opcode < 8));
        CHECK(c.len > 0 || c.frame_len == 0);
        off += (size_t)r;
        if (c.offset == 0) {
            CHECK(t->n == 0 || t->f[t->n - 1].is_complete);
            CHECK(t->n < t->cap);
            t->f[t->n++] = (struct frame_rec){
                .opcode = c.opcode,
                .message_opcode = c.message_opcode,
                .is_fin = c.is_fin,
                .is_rsv1 = c.is_rsv1,
                .is_compressed = c.is_compressed,
                .frame_len = c.frame_len,
            };
        }
        struct frame_rec *f = &t->f[t->n - 1];
        CHECK(c.offset == f->payload_len && c.frame_len == f->frame_len);
        CHECK(t->payload_len + c.len <= t->payload_cap);
        memcpy(t->payload + t->payload_len, c.data, c.len);
        t->payload_len += c.len;
        f->payload_len += c.len;
        f->is_complete = c.is_frame_end;
        f->is_message_end = c.is_message_end;
    }
}

static bool traces_equal(const struct trace *a, const struct trace *b)
{
    if (a->n != b->n || a->status != b->status || a->payload_len != b->payload_len)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const struct frame_rec *x = &a->f[i], *y = &b->f[i];
        if (x->opcode != y->opcode || x->message_opcode != y->message_opcode ||
            x->is_fin != y->is_fin || x->is_rsv1 != y->is_rsv1 ||
            x->is_compressed != y->is_compressed || x->is_message_end != y->is_message_end ||
            x->is_complete != y->is_complete || x->frame_len != y->frame_len ||
            x->payload_len != y->payload_len)
            return false;
    }
    return a->payload_len == 0 || memcmp(a->payload, b->payload, a->payload_len) == 0;
}

/* Decodes the whole stream in one buffer and checks every chunk against
 * the raw input: the header before a frame's first chunk has the minimal
 * length form for frame_len and ends with the key that unmasks the chunk. */
static void decode_whole_checked(struct trace *t, const uint8_t *in, size_t len, uint64_t max,
                                 bool is_deflate)
{
    struct ws_frame_decoder d = {0};
    uint8_t *buf = malloc(len ? len : 1);
    size_t off = 0, frame_start = 0, payload_start = 0;
    const uint8_t *key = NULL;

    CHECK(buf);
    if (len)
        memcpy(buf, in, len);
    for (;;) {
        struct ws_frame_chunk c;
        ptrdiff_t r = ws_frame_decode(&d, buf + off, len - off, max, is_deflate, &c);
        if (r < 0) {
            t->status = r;
            break;
        }
        CHECK(r > 0 && (size_t)r <= len - off);
        size_t pos = (size_t)(c.data - buf);
        if (c.offset == 0) {
            size_t hdr = pos - frame_start;
            uint64_t l = in[frame_start + 1] & 0x7F;
            CHECK(in[frame_start + 1] & 0x80);
            CHECK(hdr == (c.frame_len < 126 ? 6u : c.frame_len <= 0xFFFF ? 8u : 14u));
            if (l == 126)
                l = (uint64_t)in[frame_start + 2] << 8 | in[frame_start + 3];
            else if (l == 127)
                for (int k = 0; k < 8; k++)
                    l = (k ? l << 8 : 0) | in[frame_start + 2 + k];
            CHECK(l == c.frame_len);
            CHECK((in[frame_start] & 0x0F) == c.opcode);
            CHECK(((in[frame_start] & 0x80) != 0) == c.is_fin);
            key = in + pos - 4;
            payload_start = pos;
        }
        CHECK(pos - payload_start == c.offset);
        for (size_t i = 0; i < c.len; i++)
            CHECK(c.data[i] == (in[pos + i] ^ key[(c.offset + i) & 3]));
        off += (size_t)r;
        if (c.is_frame_end)
            frame_start = off;
    }
    free(buf);
    /* The recording pass over the same bytes. */
    buf = malloc(len ? len : 1);
    CHECK(buf);
    if (len)
        memcpy(buf, in, len);
    d = (struct ws_frame_decoder){0};
    t->status = WS_FRAME_NEED_MORE;
    feed(&d, t, buf, len, max, is_deflate);
    free(buf);
}

/* Decodes in pieces: sizes come from `sizes` cyclically (0 means "rest"). */
static void decode_pieces(struct trace *t, const uint8_t *in, size_t len, const size_t *sizes,
                          size_t nsizes, uint64_t max, bool is_deflate)
{
    struct ws_frame_decoder d = {0};
    size_t off = 0, k = 0;
    do {
        size_t n = sizes[k++ % nsizes];
        if (n == 0 || n > len - off)
            n = len - off;
        /* Each piece in its own allocation, so ASan catches an over-read. */
        uint8_t *piece = malloc(n ? n : 1);
        CHECK(piece);
        if (n)
            memcpy(piece, in + off, n);
        feed(&d, t, piece, n, max, is_deflate);
        free(piece);
        off += n;
    } while (off < len && t->status == WS_FRAME_NEED_MORE);
}

struct expect {
    int opcode;
    bool is_fin, is_rsv1;
    size_t payload_start, payload_len;
};

/* Builds a valid frame sequence from the input, encodes it with
 * ws_frame_encode_masked, and checks that it decodes back exactly. */
static void round_trip(const uint8_t *in, size_t len, bool is_deflate, unsigned seed)
{
    size_t max_frames = len / 6 + 1, out_cap = len * 2 + 70000 + 14 * max_frames;
    struct expect *ex = calloc(max_frames, sizeof *ex);
    uint8_t *payloads = malloc(len + 70000), *out = malloc(out_cap);
    size_t nex = 0, pos = 0, plen_total = 0, out_len = 0;
    bool is_in_message = false, used_big = false;

    CHECK(ex && payloads && out);
    while (pos + 6 <= len && nex < max_frames) {
        uint8_t sel = in[pos];
        size_t plen = in[pos + 1];
        const uint8_t *mask = in + pos + 2;
        struct expect e = {0};
        pos += 6;
        if (sel & 0x80)
            plen *= 4; /* reach the 16-bit length form */
        if (plen > len - pos)
            plen = len - pos;
        if ((sel & 3) == 0) {
            static const int ctl[] = {WS_FRAME_OP_PING, WS_FRAME_OP_PONG, WS_FRAME_OP_CLOSE};
            e.opcode = ctl[(sel >> 2) % 3];
            e.is_fin = true;
            if (plen > LIMITS_WS_CONTROL_PAYLOAD)
                plen = LIMITS_WS_CONTROL_PAYLOAD;
        } else {
            e.opcode = is_in_message ? WS_FRAME_OP_CONT
                                     : (sel & 4) ? WS_FRAME_OP_BINARY : WS_FRAME_OP_TEXT;
            e.is_fin = (sel & 8) != 0;
            e.is_rsv1 = !is_in_message && is_deflate && (sel & 16);
            is_in_message = !e.is_fin;
        }
        e.payload_start = plen_total;
        e.payload_len = plen;
        memcpy(payloads + plen_total, in + pos, plen);
        pos += plen;
        /* Rarely (it is slow under the sanitizers), a payload past 64 KiB
         * for the 64-bit length form; the unit tests cover it fully. */
        if ((sel & 3) != 0 && (sel & 0x60) == 0x60 && seed % 256 == 0 && !used_big) {
            used_big = true;
            for (size_t i = 0; i < 65536; i++)
                payloads[plen_total + plen + i] = (uint8_t)(i * 31 + seed);
            e.payload_len += 65536;
        }
        size_t n = ws_frame_encode_masked(out + out_len, out_cap - out_len,
                                          (enum ws_frame_opcode)e.opcode, e.is_fin, e.is_rsv1,
                                          mask, payloads + e.payload_start, e.payload_len);
        CHECK(n > 0);
        /* The server header is the client header minus MASK bit and key. */
        uint8_t h[WS_FRAME_SERVER_HEADER_MAX];
        size_t hn = ws_frame_header_encode(h, (enum ws_frame_opcode)e.opcode, e.is_fin,
                                           e.is_rsv1, e.payload_len);
        CHECK(hn >= 2 && hn + 4 + e.payload_len == n);
        CHECK(h[0] == out[out_len] && (h[1] | 0x80) == out[out_len + 1]);
        CHECK(memcmp(h + 2, out + out_len + 2, hn - 2) == 0);
        CHECK(memcmp(mask, out + out_len + hn, 4) == 0);
        out_len += n;
        plen_total += e.payload_len;
        ex[nex++] = e;
    }

    for (int mode = 0; mode < 2; mode++) {
        struct trace t;
        size_t sizes[2] = {0, 0};
        trace_init(&t, max_frames, plen_total);
        if (mode == 1) {
            sizes[0] = 1 + seed % 23;
            sizes[1] = 1 + (seed >> 5) % 7;
            if (used_big)
                sizes[1] += 4093; /* keep the 64 KiB case to a few dozen calls */
        }
        decode_pieces(&t, out, out_len, sizes, 2, UINT64_MAX, is_deflate);
        CHECK(t.status == WS_FRAME_NEED_MORE);
        CHECK(t.n == nex && t.payload_len == plen_total);
        bool is_compressed = false;
        for (size_t i = 0; i < nex; i++) {
            CHECK(t.f[i].opcode == ex[i].opcode && t.f[i].is_fin == ex[i].is_fin);
            CHECK(t.f[i].is_rsv1 == ex[i].is_rsv1 && t.f[i].is_complete);
            CHECK(t.f[i].frame_len == ex[i].payload_len);
            if (ex[i].opcode == WS_FRAME_OP_TEXT || ex[i].opcode == WS_FRAME_OP_BINARY)
                is_compressed = ex[i].is_rsv1;
            if (ex[i].opcode < 8)
                CHECK(t.f[i].is_compressed == is_compressed);
        }
        CHECK(plen_total == 0 || memcmp(t.payload, payloads, plen_total) == 0);
        trace_free(&t);
    }
    free(ex);
    free(payloads);
    free(out);
}

/* Close payloads: raw input never crashes the parser; built ones parse back. */
static void close_checks(const uint8_t *in, size_t len)
{
    struct ws_frame_close cl;
    uint8_t *copy = malloc(len ? len : 1), out[LIMITS_WS_CONTROL_PAYLOAD];
    CHECK(copy);
    if (len)
        memcpy(copy, in, len);
    if (ws_frame_close_parse(copy, len, &cl) == WS_FRAME_OK)
        CHECK(len == 0 || (cl.reason == copy + 2 && cl.reason_len == len - 2));
    free(copy);
    if (len < 2)
        return;
    uint16_t code = (uint16_t)(in[0] << 8 | in[1]);
    size_t n = ws_frame_close_payload(out, code, in + 2, len - 2);
    CHECK(n == 0 || (n >= 2 && n <= LIMITS_WS_CONTROL_PAYLOAD));
    if (n == 0) {
        uint8_t two[2] = {in[0], in[1]};
        CHECK(ws_frame_close_parse(two, 2, &cl) == WS_FRAME_ERR_CLOSE_CODE);
        return;
    }
    CHECK(ws_frame_close_parse(out, n, &cl) == WS_FRAME_OK);
    CHECK(cl.code == code && (cl.reason_len == 0 || memcmp(cl.reason, in + 2, cl.reason_len) == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint64_t limits[] = {UINT64_MAX, 0, 125, 1000};
    if (size < 3)
        return 0;
    bool is_deflate = data[0] & 1;
    uint64_t max = limits[(data[0] >> 1) & 3];
    unsigned seed = (unsigned)data[1] << 8 | data[2];
    const uint8_t *in = data + 3;
    size_t len = size - 3;
    size_t max_frames = len / 6 + 1;
    struct trace whole, split, pieces;

    trace_init(&whole, max_frames, len);
    trace_init(&split, max_frames, len);
    trace_init(&pieces, max_frames, len);
    decode_whole_checked(&whole, in, len, max, is_deflate);

    size_t two[2] = {seed % (len + 1), 0};
    if (two[0] == 0) {
        /* An empty first piece: nothing consumed, nothing reported. */
        struct ws_frame_decoder d = {0};
        struct ws_frame_chunk c;
        CHECK(ws_frame_decode(&d, NULL, 0, max, is_deflate, &c) == WS_FRAME_NEED_MORE);
    }
    decode_pieces(&split, in, len, two, 2, max, is_deflate);
    CHECK(traces_equal(&whole, &split));

    size_t small[4] = {1, 1 + seed % 5, 1 + (seed >> 3) % 11, 2};
    decode_pieces(&pieces, in, len, small, 4, max, is_deflate);
    CHECK(traces_equal(&whole, &pieces));

    trace_free(&whole);
    trace_free(&split);
    trace_free(&pieces);

    round_trip(in, len, is_deflate, seed);
    close_checks(in, len);
    return 0;
}
