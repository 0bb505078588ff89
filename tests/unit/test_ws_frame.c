/* Unit tests for ws_frame: the RFC 6455 §5.7 examples, every truncation
 * point, every reserved bit and opcode, both sides of each limit, the
 * fragmentation rules, close payloads and the encoders. Every input piece
 * handed to the decoder ends at a PROT_NONE page. */
#include <stdint.h>

#include "test.h"
#include "ws_frame.h"

#define NO_LIMIT UINT64_MAX
#define BIG (70 * 1024)

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d}; /* the RFC 6455 §5.7 key */

/* guarded() maps fresh pages per call; the loops below make thousands of
 * inputs, so they reuse one guarded region. Only one piece is alive at a
 * time, which the decoder allows: it keeps no pointer into the input. The
 * region is writable, as the decoder unmasks in place. */
static uint8_t *at_guard(const void *data, size_t len)
{
    static uint8_t *end;
    if (!end) {
        static const uint8_t zero[BIG + 64];
        end = (uint8_t *)guarded(zero, sizeof zero) + sizeof zero;
    }
    if (len > BIG + 64)
        abort();
    memmove(end - len, data, len);
    return end - len;
}

/* ---- a recorder of everything the decoder reports ---- */

#define MAX_FRAMES 32

struct frame_rec {
    int opcode, message_opcode;
    bool is_fin, is_rsv1, is_compressed, is_message_end, is_complete;
    uint64_t frame_len;
    size_t payload_start, payload_len;
};

struct trace {
    struct frame_rec f[MAX_FRAMES];
    int n;
    ptrdiff_t status; /* WS_FRAME_NEED_MORE after the last piece, or the error */
    size_t payload_len;
    uint8_t payload[BIG];
};

static struct trace trace_a, trace_b;

static void trace_reset(struct trace *t)
{
    t->n = 0;
    t->status = WS_FRAME_NEED_MORE;
    t->payload_len = 0;
}

/* Feeds one piece (placed before a guard page) to the decoder until it is
 * used up or an error, recording chunks and checking the return contract. */
static void feed(struct ws_frame_decoder *d, struct trace *t, const uint8_t *data, size_t len,
                 uint64_t max, bool is_deflate)
{
    uint8_t *p = at_guard(data, len);
    size_t off = 0;

    for (;;) {
        struct ws_frame_chunk c;
        ptrdiff_t r = ws_frame_decode(d, p + off, len - off, max, is_deflate, &c);
        if (r < 0) {
            t->status = r;
            return;
        }
        CHECK(r > 0);
        CHECK((size_t)r <= len - off);
        CHECK(c.len <= (size_t)r);
        CHECK(c.data == p + off + (size_t)r - c.len);
        CHECK_INT(c.is_frame_end, c.offset + c.len == c.frame_len);
        off += (size_t)r;
        if (c.offset == 0) {
            CHECK(t->n == 0 || t->f[t->n - 1].is_complete);
            if (t->n == MAX_FRAMES)
                abort();
            t->f[t->n++] = (struct frame_rec){
                .opcode = c.opcode,
                .message_opcode = c.message_opcode,
                .is_fin = c.is_fin,
                .is_rsv1 = c.is_rsv1,
                .is_compressed = c.is_compressed,
                .frame_len = c.frame_len,
                .payload_start = t->payload_len,
            };
        }
        struct frame_rec *f = &t->f[t->n - 1];
        CHECK_INT(c.offset, f->payload_len);
        CHECK_INT(c.frame_len, f->frame_len);
        if (t->payload_len + c.len > sizeof t->payload)
            abort();
        memcpy(t->payload + t->payload_len, c.data, c.len);
        t->payload_len += c.len;
        f->payload_len += c.len;
        f->is_complete = c.is_frame_end;
        f->is_message_end = c.is_message_end;
    }
}

/* Decodes data in pieces of `step` bytes (0: whole) into t. */
static void decode_steps(struct trace *t, const uint8_t *data, size_t len, size_t step,
                         uint64_t max, bool is_deflate)
{
    struct ws_frame_decoder d = {0};
    trace_reset(t);
    if (step == 0)
        step = len ? len : 1;
    for (size_t off = 0; off < len && t->status == WS_FRAME_NEED_MORE; off += step)
        feed(&d, t, data + off, len - off < step ? len - off : step, max, is_deflate);
    if (len == 0)
        feed(&d, t, data, 0, max, is_deflate);
}

static bool traces_equal(const struct trace *a, const struct trace *b)
{
    if (a->n != b->n || a->status != b->status || a->payload_len != b->payload_len)
        return false;
    for (int i = 0; i < a->n; i++) {
        const struct frame_rec *x = &a->f[i], *y = &b->f[i];
        if (x->opcode != y->opcode || x->message_opcode != y->message_opcode ||
            x->is_fin != y->is_fin || x->is_rsv1 != y->is_rsv1 ||
            x->is_compressed != y->is_compressed || x->is_message_end != y->is_message_end ||
            x->is_complete != y->is_complete || x->frame_len != y->frame_len ||
            x->payload_start != y->payload_start || x->payload_len != y->payload_len)
            return false;
    }
    return memcmp(a->payload, b->payload, a->payload_len) == 0;
}

/* ---- frame builders ---- */

/* Writes a header with first byte b0 and `len` in the given length form
 * (0: shortest, else 7, 16 or 64 bits), masked with MASK unless is_unmasked. */
static size_t put_header(uint8_t *out, unsigned b0, uint64_t len, int form, bool is_unmasked)
{
    uint8_t m = is_unmasked ? 0 : 0x80;
    size_t n = 2;
    if (form == 0)
        form = len < 126 ? 7 : len <= 0xFFFF ? 16 : 64;
    out[0] = (uint8_t)b0;
    if (form == 7) {
        out[1] = (uint8_t)(m | len);
    } else if (form == 16) {
        out[1] = m | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = m | 127;
        for (int k = 0; k < 8; k++)
            out[2 + k] = (uint8_t)(len >> (56 - 8 * k));
        n = 10;
    }
    if (!is_unmasked) {
        memcpy(out + n, MASK, 4);
        n += 4;
    }
    return n;
}

/* Appends a whole masked frame with first byte b0 and the given payload. */
static size_t put_frame(uint8_t *out, unsigned b0, const void *payload, size_t len)
{
    size_t n = put_header(out, b0, len, 0, false);
    for (size_t i = 0; i < len; i++)
        out[n + i] = ((const uint8_t *)payload)[i] ^ MASK[i & 3];
    return n + len;
}

/* Decodes data whole and returns the final status; frames land in trace_a. */
static ptrdiff_t decode(const uint8_t *data, size_t len, uint64_t max, bool is_deflate)
{
    decode_steps(&trace_a, data, len, 0, max, is_deflate);
    return trace_a.status;
}

/* ---- RFC 6455 §5.7 examples ---- */

static void test_rfc_unmasked_hello_rejected(void)
{
    static const uint8_t f[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    CHECK_INT(decode(f, sizeof f, NO_LIMIT, false), WS_FRAME_ERR_UNMASKED);
    CHECK_INT(trace_a.n, 0);
    /* Fail fast: the second byte alone shows it (RFC 6455 §5.1). */
    CHECK_INT(decode(f, 2, NO_LIMIT, false), WS_FRAME_ERR_UNMASKED);
    CHECK_INT(decode(f, 1, NO_LIMIT, false), WS_FRAME_NEED_MORE);
    CHECK_INT(ws_frame_err_close_code(WS_FRAME_ERR_UNMASKED), 1002);
}

static void test_rfc_masked_hello(void)
{
    static const uint8_t f[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    CHECK_INT(decode(f, sizeof f, NO_LIMIT, false), WS_FRAME_NEED_MORE);
    CHECK_INT(trace_a.n, 1);
    CHECK_INT(trace_a.f[0].opcode, WS_FRAME_OP_TEXT);
    CHECK_INT(trace_a.f[0].message_opcode, WS_FRAME_OP_TEXT);
    CHECK(trace_a.f[0].is_fin && trace_a.f[0].is_message_end && trace_a.f[0].is_complete);
    CHECK(!trace_a.f[0].is_rsv1 && !trace_a.f[0].is_compressed);
    CHECK_MEM(trace_a.payload, trace_a.payload_len, "Hello");

    /* One call returns the consumed count and the chunk; the next wants more. */
    uint8_t *p = at_guard(f, sizeof f);
    struct ws_frame_decoder d = {0};
    struct ws_frame_chunk c;
    CHECK_INT(ws_frame_decode(&d, p, sizeof f, 100, false, &c), sizeof f);
    CHECK(c.data == p + 6);
    CHECK_MEM(c.data, c.len, "Hello");
    CHECK_INT(ws_frame_decode(&d, p + sizeof f, 0, 100, false, &c), WS_FRAME_NEED_MORE);
}

static void test_rfc_fragmented_hello(void)
{
    /* The RFC's example is unmasked, so a server must reject it ... */
    static const uint8_t plain[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
    CHECK_INT(decode(plain, sizeof plain, NO_LIMIT, false), WS_FRAME_ERR_UNMASKED);
    /* ... and accept it masked with the §5.7 key. */
    static const uint8_t f[] = {0x01, 0x83, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d,
                                0x80, 0x82, 0x37, 0xfa, 0x21, 0x3d, 0x5b, 0x95};
    CHECK_INT(decode(f, sizeof f, NO_LIMIT, false), WS_FRAME_NEED_MORE);
    CHECK_INT(trace_a.n, 2);
    CHECK_INT(trace_a.f[0].opcode, WS_FRAME_OP_TEXT);
    CHECK(!trace_a.f[0].is_fin && !trace_a.f[0].is_message_end);
    CHECK_INT(trace_a.f[1].opcode, WS_FRAME_OP_CONT);
    CHECK_INT(trace_a.f[1].message_opcode, WS_FRAME_OP_TEXT);
    CHECK(trace_a.f[1].is_fin && trace_a.f[1].is_message_end);
    CHECK_MEM(trace_a.payload, trace_a.payload_len, "Hello");
}

static void test_rfc_ping_pong(void)
{
    static const uint8_t unmasked_ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t masked_pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                          0x7f, 0x9f, 0x4d, 0x51, 0x58};
    uint8_t ping[16];
    size_t n = put_frame(ping, 0x89, "Hello", 5);

    CHECK_INT(decode(unmasked_ping, sizeof unmasked_ping, NO_LIMIT, false),
              WS_FRAME_ERR_UNMASKED);
    CHECK_INT(decode(masked_pong, sizeof masked_pong, NO_LIMIT, false), WS_FRAME_NEED_MORE);
    CHECK_INT(trace_a.n, 1);
    CHECK_INT(trace_a.f[0].opcode, WS_FRAME_OP_PONG);
    CHECK_INT(trace_a.f[0].message_opcode, WS_FRAME_OP_PONG);
    CHECK(!trace_a.f[0].is_message_end); /* control frames are not messages */
    CHECK_MEM(trace_a.payload, trace_a.payload_len, "Hello");
    CHECK_INT(decode(ping, n, NO_LIMIT, false), WS_FRAME_NEED_MORE);
    CHECK_INT(trace_a.f[0].opcode, WS_FRAME_OP_PING);
    CHECK_MEM(trace_a.payload, trace_a.payload_len, "Hello");
}

static uint8_t big_payload[65536], big_frame[65536 + 14];

static void test_rfc_256_and_64k_binary(void)
{
    static const size_t lens[] = {256, 65536};
    static const uint8_t h256[] = {0x82, 0xFE, 0x01, 0x00};
    static const uint8_t h64k[] = {0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0};
    for (size_t i = 0; i < sizeof big_payload; i++)
        big_payload[i] = (uint8_t)(i * 7 + 3);
    for (int k = 0; k < 2; k++) {
        size_t n = ws_frame_encode_masked(big_frame, sizeof big_frame, WS_FRAME_OP_BINARY, true,
                                          false, MASK, big_payload, lens[k]);
        /* The RFC's headers, with the MASK bit set. */
        if (k == 0)
            CHECK(memcmp(big_frame, h256, sizeof h256) == 0);
        else
            CHECK(memcmp(big_frame, h64k, sizeof h64k) == 0);
        CHECK_INT(n, lens[k] + (k == 0 ? 8 : 14));
        CHECK_INT(decode(big_frame, n, NO_LIMIT, false), WS_FRAME_NEED_MORE);
        CHECK_INT(trace_a.n, 1);
        CHECK_INT(trace_a.f[0].opcode, WS_FRAME_OP_BINARY);
        CHECK_INT(trace_a.f[0].frame_len, lens[k]);
        CHECK_INT(trace_a.payload_len, lens[k]);
        CHECK(memcmp(trace_a.payload, big_payload, lens[k]) == 0);
    }
}

/* ---- truncation ---- */

/* A stream with a text frame, a ping, a fragmented binary message with a
 * pong in the middle, an empty frame and a close. */
static size_t build_stream(uint8_t *out)
{
    size_t n = 0;
    n += put_frame(out + n, 0x81, "Hello", 5);
    n += put_frame(out + n, 0x89, "p", 1);
    n += put_frame(out + n, 0x02, "abc", 3);
    n += put_frame(out + n, 0x8A, "", 0);
    n += put_frame(out + n, 0x00, "defgh", 5);
    n += put_frame(out + n, 0x80, "ij", 2);
    n += put_frame(out + n, 0x81, "", 0);
    n += put_frame(out + n, 0x88, "\x03\xe8" "bye", 5);
    return n;
}

/* Cut at every point, the first part never errors and the whole result
 * is the same as feeding everything at once; the same for byte-at-a-time
 * and for every piece size up to 17. */
static void test_every_truncation_point(void)
{
    uint8_t s[256];
    size_t len = build_stream(s);

    decode_steps(&trace_a, s, len, 0, NO_LIMIT, false);
    CHECK_INT(trace_a.status, WS_FRAME_NEED_MORE);
    CHECK_INT(trace_a.n, 8);
    CHECK_MEM(trace_a.payload, trace_a.payload_len, "Hellopabcdefghij\x03\xe8" "bye");
    for (size_t cut = 0; cut <= len; cut++) {
        struct ws_frame_decoder d = {0};
        trace_reset(&trace_b);
        feed(&d, &trace_b, s, cut, NO_LIMIT, false);
        CHECK_INT(trace_b.status, WS_FRAME_NEED_MORE);
        feed(&d, &trace_b, s + cut, len - cut, NO_LIMIT, false);
        CHECK(traces_equal(&trace_a, &trace_b));
    }
    for (size_t step = 1; step <= 17; step++) {
        decode_steps(&trace_b, s, len, step, NO_LIMIT, false);
        CHECK(traces_equal(&trace_a, &trace_b));
    }
}

/* The 64 KiB frame: cut at every header byte and at payload points around
 * each word boundary of the unmasking; every chunk is unmasked with the
 * right key offset. */
static void test_truncation_64k(void)
{
    size_t n = ws_frame_encode_masked(big_frame, sizeof big_frame, WS_FRAME_OP_BINARY, true,
                                      false, MASK, big_payload, 65536);
    static const size_t cuts[] = {0,  1,  2,   3,   9,   10,    13,    14,    15,   16,
                                  17, 21, 22,  23,  29,  1000,  4097,  65535, 65549, 65550};
    decode_steps(&trace_a, big_frame, n, 0, NO_LIMIT, false);
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        struct ws_frame_decoder d = {0};
        trace_reset(&trace_b);
        feed(&d, &trace_b, big_frame, cuts[i], NO_LIMIT, false);
        CHECK_INT(trace_b.status, WS_FRAME_NEED_MORE);
        feed(&d, &trace_b, big_frame + cuts[i], n - cuts[i], NO_LIMIT, false);
        CHECK(traces_equal(&trace_a, &trace_b));
    }
    for (size_t step = 1000; step <= 1007; step++) {
        decode_steps(&trace_b, big_frame, n, step, NO_LIMIT, false);
        CHECK(traces_equal(&trace_a, &trace_b));
    }
    CHECK(memcmp(trace_b.payload, big_payload, 65536) == 0);
}

/* ---- reserved bits and opcodes ---- */

static void test_every_rsv_combination(void)
{
    static const unsigned ops[] = {0x1, 0x2, 0x0, 0x8, 0x9, 0xA};
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        for (unsigned rsv = 0; rsv < 8; rsv++) {
            for (int deflate = 0; deflate < 2; deflate++) {
                uint8_t s[64];
                size_t n = 0;
                unsigned op = ops[o];
                ptrdiff_t want = WS_FRAME_NEED_MORE;
                if (op == 0) /* a continuation needs a message to continue */
                    n += put_frame(s, 0x01, "a", 1);
                n += put_frame(s + n, 0x80 | rsv << 4 | op, op == 8 ? "\x03\xe8" : "x",
                               op == 8 ? 2 : 1);
                /* RFC 6455 §5.2: RSV2/RSV3 never; RFC 7692 §6: RSV1 only
                 * with deflate and only on the first data frame. */
                if (rsv & 3)
                    want = WS_FRAME_ERR_RSV;
                else if (rsv == 4 && (!deflate || op == 0 || op >= 8))
                    want = WS_FRAME_ERR_RSV;
                CHECK_INT(decode(s, n, NO_LIMIT, deflate), want);
                if (want == WS_FRAME_NEED_MORE) {
                    struct frame_rec *f = &trace_a.f[trace_a.n - 1];
                    CHECK_INT(f->is_rsv1, rsv == 4);
                    CHECK_INT(f->is_compressed, rsv == 4);
                } else {
                    /* Fail fast: detected on the first byte of that frame. */
                    size_t first = op == 0 ? 7 : 0;
                    CHECK_INT(decode(s, first + 1, NO_LIMIT, deflate), want);
                }
            }
        }
    }
}

static void test_every_opcode(void)
{
    for (unsigned op = 0; op < 16; op++) {
        uint8_t s[32];
        size_t n = put_frame(s, 0x80 | op, op == 8 ? "\x03\xe8" : "ok", 2);
        ptrdiff_t want;
        if (op == 0)
            want = WS_FRAME_ERR_CONT_NO_MESSAGE;
        else if (op <= 2 || (op >= 8 && op <= 0xA))
            want = WS_FRAME_NEED_MORE;
        else
            want = WS_FRAME_ERR_OPCODE;
        CHECK_INT(decode(s, n, NO_LIMIT, false), want);
        if (want == WS_FRAME_NEED_MORE) {
            CHECK_INT(trace_a.n, 1);
            CHECK_INT(trace_a.f[0].opcode, op);
        } else {
            CHECK_INT(decode(s, 1, NO_LIMIT, false), want);
            CHECK_INT(ws_frame_err_close_code((enum ws_frame_err)want), 1002);
        }
    }
}

/* ---- limits ---- */

static void test_control_payload_limit(void)
{
    static const unsigned ops[] = {0x88, 0x89, 0x8A};
    uint8_t s[256], payload[126];
    memset(payload, 'a', sizeof payload);
    payload[0] = 0x03;
    payload[1] = 0xe8; /* a close code 1000, then ASCII */
    for (size_t o = 0; o < 3; o++) {
        /* RFC 6455 §5.5: 125 is allowed, 126 is not. */
        size_t n = put_frame(s, ops[o], payload, 125);
        CHECK_INT(decode(s, n, NO_LIMIT, false), WS_FRAME_NEED_MORE);
        CHECK_INT(trace_a.payload_len, 125);
        n = put_frame(s, ops[o], payload, 126);
        CHECK_INT(decode(s, n, NO_LIMIT, false), WS_FRAME_ERR_CONTROL_TOO_LONG);
        CHECK_INT(decode(s, 2, NO_LIMIT, false), WS_FRAME_ERR_CONTROL_TOO_LONG);
        n = put_header(s, ops[o], 1000, 64, false);
        CHECK_INT(decode(s, 2, NO_LIMIT, false), WS_FRAME_ERR_CONTROL_TOO_LONG);
        /* The 7-bit value 126/127 with no payload yet is enough to fail. */
        n = put_header(s, ops[o], 125, 16, false);
        CHECK_INT(decode(s, n, NO_LIMIT, false), WS_FRAME_ERR_CONTROL_TOO_LONG);
        /* RFC 6455 §5.5: control frames MUST NOT be fragmented. */
        n = put_frame(s, ops[o] & 0x0F, "", 0);
        CHECK_INT(decode(s, n, NO_LIMIT, false), WS_FRAME_ERR_CONTROL_FRAGMENTED);
        CHECK_INT(decode(s, 1, NO_LIMIT, false), WS_FRAME_ERR_CONTROL_FRAGMENTED);
    }
}

static void test_message_limit(void)
{
    static uint8_t s[4096], payload[1024];
    size_t n;

    memset(payload, 'x', sizeof payload);
    /* One frame: max and max + 1; the error comes with the header alone. */
    n = put_frame(s, 0x82, payload, 1000);
    CHECK_INT(decode(s, n, 1000, false), WS_FRAME_NEED_MORE);
    CHECK_INT(trace_a.payload_len, 1000);
    n = put_frame(s, 0x82, payload, 1001);
    CHECK_INT(decode(s, n, 1000, false), WS_FRAME_ERR_TOO_BIG);
    CHECK_INT(decode(s, 8, 1000, false), WS_FRAME_ERR_TOO_BIG);
    CHECK_INT(decode(s, 3, 1000, false), WS_FRAME_NEED_MORE);
    CHECK_INT(ws_frame_err_close_code(WS_FRAME_ERR_TOO_BIG), 1009);
    /* Fragments add up: 500 + 500 fits, 500 + 501 fails at the second header. */
    n = put_frame(s, 0x02, payload, 500);
    size_t first = n;
    n += put_frame(s + n, 0x89, payload, 100); /* control frames do not count */
    n += put_frame(s + n, 0x80, payload, 500);
    CHECK_INT(decode(s, n, 1000, false), WS_FRAME_NEED_MORE);
    CHECK_INT(trace_a.n, 3);
    n = first + put_frame(s + first, 0x80, payload, 501);
    CHECK_INT(decode(s, n, 1000, false), WS_FRAME_ERR_TOO_BIG);
    CHECK_INT(decode(s, first + 8, 1000, false), WS_FRAME_ERR_TOO_BIG);
    CHECK_INT(trace_a.n, 1);
    /* The count restarts with each message. */
    n = put_frame(s, 0x82, payload, 1000);
    n += put_frame(s + n, 0x02, payload, 999);
    n += put_frame(s + n, 0x80, payload, 1);
    CHECK_INT(decode(s, n, 1000, false), WS_FRAME_NEED_MORE);
    CHECK_INT(trace_a.n, 3);
    /* Limit 0: empty messages only. */
    n = put_frame(s, 0x81, "", 0);
    CHECK_INT(decode(s, n, 0, false), WS_FRAME_NEED_MORE);
    n = put_frame(s, 0x81, "a", 1);
    CHECK_INT(decode(s, n, 0, false), WS_FRAME_ERR_TOO_BIG);
}

struct length_case {
    uint64_t len;
    int form;
    ptrdiff_t want;
};

static void test_length_forms(void)
{
    static const struct length_case cases[] = {
        {0, 7, WS_FRAME_NEED_MORE},
        {125, 7, WS_FRAME_NEED_MORE},
        {0, 16, WS_FRAME_ERR_LENGTH_NOT_MINIMAL},
        {125, 16, WS_FRAME_ERR_LENGTH_NOT_MINIMAL},
        {126, 16, WS_FRAME_NEED_MORE},
        {65535, 16, WS_FRAME_NEED_MORE},
        {0, 64, WS_FRAME_ERR_LENGTH_NOT_MINIMAL},
        {126, 64, WS_FRAME_ERR_LENGTH_NOT_MINIMAL},
        {65535, 64, WS_FRAME_ERR_LENGTH_NOT_MINIMAL},
        {65536, 64, WS_FRAME_NEED_MORE},
    };
    uint8_t s[70000];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct length_case *c = &cases[i];
        size_t n = put_header(s, 0x82, c->len, c->form, false);
        memset(s + n, 0x55, c->len);
        CHECK_INT(decode(s, n + c->len, NO_LIMIT, false), c->want);
        if (c->want == WS_FRAME_NEED_MORE) {
            CHECK_INT(trace_a.n, 1);
            CHECK_INT(trace_a.f[0].frame_len, c->len);
            CHECK(trace_a.f[0].is_complete);
        } else {
            /* Known as soon as the length bytes are in, before the mask. */
            CHECK_INT(decode(s, n - 4, NO_LIMIT, false), c->want);
            CHECK_INT(decode(s, n - 5, NO_LIMIT, false), WS_FRAME_NEED_MORE);
        }
    }
}

static void test_length_64bit_msb(void)
{
    uint8_t s[16];
    size_t n = put_header(s, 0x82, UINT64_C(1) << 63, 64, false);
    /* RFC 6455 §5.2: the MSB MUST be 0; known from the first length byte. */
    CHECK_INT(decode(s, n, NO_LIMIT, false), WS_FRAME_ERR_LENGTH_MSB);
    CHECK_INT(decode(s, 3, NO_LIMIT, false), WS_FRAME_ERR_LENGTH_MSB);
    n = put_header(s, 0x82, UINT64_MAX, 64, false);
    CHECK_INT(decode(s, 3, NO_LIMIT, false), WS_FRAME_ERR_LENGTH_MSB);
    /* 2^63 - 1 is a legal length: without a limit the header is accepted
     * and the decoder waits for payload; with one it is too big. */
    n = put_header(s, 0x82, (uint64_t)INT64_MAX, 64, false);
    CHECK_INT(decode(s, n, NO_LIMIT, false), WS_FRAME_NEED_MORE);
    CHECK_INT(trace_a.n, 0);
    CHECK_INT(decode(s, n, 1 << 20, false), WS_FRAME_ERR_TOO_BIG);
    /* Continuations cannot overflow the message count either. */
    uint8_t t[64];
    size_t m = put_frame(t, 0x02, "ab", 2);
    m += put_header(t + m, 0x80, (uint64_t)INT64_MAX, 64, false);
    CHECK_INT(decode(t, m, NO_LIMIT, false), WS_FRAME_NEED_MORE);
    CHECK_INT(decode(t, m, (uint64_t)INT64_MAX, false), WS_FRAME_ERR_TOO_BIG);
}

/* ---- fragmentation (RFC 6455 §5.4) ---- */

struct frag_case {
    const char *name;
    unsigned b0[6]; /* first bytes of up to 6 frames, 0xFF ends */
    ptrdiff_t want;
    int frames_before_error;
};

static void test_fragmentation_rules(void)
{
    static const struct frag_case cases[] = {
        {"cont first", {0x80, 0xFF}, WS_FRAME_ERR_CONT_NO_MESSAGE, 0},
        {"cont no fin first", {0x00, 0xFF}, WS_FRAME_ERR_CONT_NO_MESSAGE, 0},
        {"cont after complete", {0x81, 0x80, 0xFF}, WS_FRAME_ERR_CONT_NO_MESSAGE, 1},
        {"cont after finished fragments", {0x01, 0x80, 0x80, 0xFF},
         WS_FRAME_ERR_CONT_NO_MESSAGE, 2},
        {"text inside text", {0x01, 0x81, 0xFF}, WS_FRAME_ERR_MESSAGE_IN_PROGRESS, 1},
        {"binary inside text", {0x01, 0x00, 0x02, 0xFF}, WS_FRAME_ERR_MESSAGE_IN_PROGRESS, 2},
        {"three fragments", {0x01, 0x00, 0x80, 0x82, 0xFF}, WS_FRAME_NEED_MORE, 4},
        {"ping inside", {0x02, 0x89, 0x80, 0xFF}, WS_FRAME_NEED_MORE, 3},
        {"pong and close inside", {0x01, 0x8A, 0x00, 0x88, 0x80, 0xFF}, WS_FRAME_NEED_MORE, 5},
        {"unfinished at end", {0x01, 0x00, 0xFF}, WS_FRAME_NEED_MORE, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct frag_case *c = &cases[i];
        uint8_t s[128];
        size_t n = 0;
        for (int k = 0; k < 6 && c->b0[k] != 0xFF; k++)
            n += put_frame(s + n, c->b0[k], (c->b0[k] & 0xF) == 8 ? "\x03\xe8" : "ab", 2);
        ptrdiff_t got = decode(s, n, NO_LIMIT, false);
        if (got != c->want || trace_a.n != c->frames_before_error)
            fprintf(stderr, "case %s\n", c->name);
        CHECK_INT(got, c->want);
        CHECK_INT(trace_a.n, c->frames_before_error);
    }
}

static void test_interleaved_reports(void)
{
    uint8_t s[128];
    size_t n = 0;
    n += put_frame(s + n, 0x01, "He", 2);
    n += put_frame(s + n, 0x89, "p", 1);
    n += put_frame(s + n, 0x00, "ll", 2);
    n += put_frame(s + n, 0x80, "o", 1);
    CHECK_INT(decode(s, n, NO_LIMIT, false), WS_FRAME_NEED_MORE);
    CHECK_INT(trace_a.n, 4);
    static const int op[] = {WS_FRAME_OP_TEXT, WS_FRAME_OP_PING, WS_FRAME_OP_CONT,
                             WS_FRAME_OP_CONT};
    static const int mop[] = {WS_FRAME_OP_TEXT, WS_FRAME_OP_PING, WS_FRAME_OP_TEXT,
                              WS_FRAME_OP_TEXT};
    for (int i = 0; i < 4; i++) {
        CHECK_INT(trace_a.f[i].opcode, op[i]);
        CHECK_INT(trace_a.f[i].message_opcode, mop[i]);
        CHECK_INT(trace_a.f[i].is_message_end, i == 3);
    }
    CHECK_MEM(trace_a.payload, trace_a.payload_len, "Hepllo");
}

static void test_deflate_flag_carries(void)
{
    uint8_t s[128];
    size_t n = 0;
    n += put_frame(s + n, 0x42, "ab", 2); /* BINARY, RSV1, no FIN */
    n += put_frame(s + n, 0x89, "", 0);
    n += put_frame(s + n, 0x80, "cd", 2);
    n += put_frame(s + n, 0x81, "ef", 2); /* next message uncompressed */
    CHECK_INT(decode(s, n, NO_LIMIT, true), WS_FRAME_NEED_MORE);
    CHECK_INT(trace_a.n, 4);
    CHECK(trace_a.f[0].is_rsv1 && trace_a.f[0].is_compressed);
    CHECK(!trace_a.f[1].is_rsv1 && !trace_a.f[1].is_compressed);
    CHECK(!trace_a.f[2].is_rsv1 && trace_a.f[2].is_compressed);
    CHECK(!trace_a.f[3].is_rsv1 && !trace_a.f[3].is_compressed);
    CHECK_INT(trace_a.f[2].message_opcode, WS_FRAME_OP_BINARY);
}

static void test_sticky_error(void)
{
    uint8_t s[32];
    size_t n = put_frame(s, 0x83, "x", 1);
    uint8_t *p = at_guard(s, n);
    struct ws_frame_decoder d = {0};
    struct ws_frame_chunk c;
    CHECK_INT(ws_frame_decode(&d, p, n, NO_LIMIT, false, &c), WS_FRAME_ERR_OPCODE);
    n = put_frame(s, 0x81, "x", 1);
    p = at_guard(s, n);
    CHECK_INT(ws_frame_decode(&d, p, n, NO_LIMIT, false, &c), WS_FRAME_ERR_OPCODE);
    CHECK_INT(ws_frame_decode(&d, p, 0, NO_LIMIT, false, &c), WS_FRAME_ERR_OPCODE);
}

/* One chunk per call, never spanning frames; the consumed counts add up. */
static void test_one_chunk_per_call(void)
{
    uint8_t s[64];
    size_t n = put_frame(s, 0x81, "ab", 2);
    size_t first = n;
    n += put_frame(s + n, 0x82, "", 0);
    n += put_frame(s + n, 0x81, "cde", 3);
    uint8_t *p = at_guard(s, n);
    struct ws_frame_decoder d = {0};
    struct ws_frame_chunk c;
    CHECK_INT(ws_frame_decode(&d, p, n, NO_LIMIT, false, &c), first);
    CHECK_MEM(c.data, c.len, "ab");
    CHECK_INT(ws_frame_decode(&d, p + first, n - first, NO_LIMIT, false, &c), 6);
    CHECK_INT(c.len, 0);
    CHECK(c.is_frame_end && c.is_message_end);
    CHECK_INT(c.opcode, WS_FRAME_OP_BINARY);
    CHECK_INT(ws_frame_decode(&d, p + first + 6, n - first - 6, NO_LIMIT, false, &c), 9);
    CHECK_MEM(c.data, c.len, "cde");
    /* Streaming: the header alone is absorbed; payload then comes in slices. */
    d = (struct ws_frame_decoder){0};
    p = at_guard(s + first + 6, 6);
    CHECK_INT(ws_frame_decode(&d, p, 6, NO_LIMIT, false, &c), WS_FRAME_NEED_MORE);
    p = at_guard(s + first + 12, 2);
    CHECK_INT(ws_frame_decode(&d, p, 2, NO_LIMIT, false, &c), 2);
    CHECK_MEM(c.data, c.len, "cd");
    CHECK(!c.is_frame_end);
    CHECK_INT(c.offset, 0);
    p = at_guard(s + first + 14, 1);
    CHECK_INT(ws_frame_decode(&d, p, 1, NO_LIMIT, false, &c), 1);
    CHECK_MEM(c.data, c.len, "e");
    CHECK_INT(c.offset, 2);
    CHECK(c.is_frame_end && c.is_message_end);
}

/* ---- close payloads ---- */

struct close_case {
    const char *name;
    const char *bytes;
    size_t len;
    enum ws_frame_err want;
    unsigned code;
};

#define S(lit) lit, sizeof(lit) - 1

static void test_close_parse(void)
{
    static const struct close_case cases[] = {
        {"empty", S(""), WS_FRAME_OK, 1005},
        {"one byte", S("\x03"), WS_FRAME_ERR_CLOSE_LENGTH, 0},
        {"0", S("\x00\x00"), WS_FRAME_ERR_CLOSE_CODE, 0},
        {"999", S("\x03\xe7"), WS_FRAME_ERR_CLOSE_CODE, 0},
        {"1000", S("\x03\xe8"), WS_FRAME_OK, 1000},
        {"1001", S("\x03\xe9"), WS_FRAME_OK, 1001},
        {"1002", S("\x03\xea"), WS_FRAME_OK, 1002},
        {"1003", S("\x03\xeb"), WS_FRAME_OK, 1003},
        {"1004", S("\x03\xec"), WS_FRAME_ERR_CLOSE_CODE, 0},
        {"1005", S("\x03\xed"), WS_FRAME_ERR_CLOSE_CODE, 0},
        {"1006", S("\x03\xee"), WS_FRAME_ERR_CLOSE_CODE, 0},
        {"1007", S("\x03\xef"), WS_FRAME_OK, 1007},
        {"1011", S("\x03\xf3"), WS_FRAME_OK, 1011},
        {"1012", S("\x03\xf4"), WS_FRAME_OK, 1012},
        {"1014", S("\x03\xf6"), WS_FRAME_OK, 1014},
        {"1015", S("\x03\xf7"), WS_FRAME_ERR_CLOSE_CODE, 0},
        {"1016", S("\x03\xf8"), WS_FRAME_ERR_CLOSE_CODE, 0},
        {"2999", S("\x0b\xb7"), WS_FRAME_ERR_CLOSE_CODE, 0},
        {"3000", S("\x0b\xb8"), WS_FRAME_OK, 3000},
        {"4999", S("\x13\x87"), WS_FRAME_OK, 4999},
        {"5000", S("\x13\x88"), WS_FRAME_ERR_CLOSE_CODE, 0},
        {"65535", S("\xff\xff"), WS_FRAME_ERR_CLOSE_CODE, 0},
        {"reason", S("\x03\xe8" "bye \xce\xba"), WS_FRAME_OK, 1000},
        {"reason surrogate", S("\x03\xe8\xce\xba\xed\xa0\x80"), WS_FRAME_ERR_CLOSE_UTF8, 0},
        {"reason cut", S("\x03\xe8" "ab\xe2\x82"), WS_FRAME_ERR_CLOSE_UTF8, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct close_case *c = &cases[i];
        const uint8_t *p = at_guard(c->bytes, c->len);
        struct ws_frame_close cl;
        enum ws_frame_err got = ws_frame_close_parse(p, c->len, &cl);
        if (got != c->want)
            fprintf(stderr, "case %s\n", c->name);
        CHECK_INT(got, c->want);
        if (c->want == WS_FRAME_OK) {
            CHECK_INT(cl.code, c->code);
            CHECK_INT(cl.reason_len, c->len > 2 ? c->len - 2 : 0);
            if (c->len > 2)
                CHECK(cl.reason == p + 2);
        }
    }
    CHECK_INT(ws_frame_err_close_code(WS_FRAME_ERR_CLOSE_LENGTH), 1002);
    CHECK_INT(ws_frame_err_close_code(WS_FRAME_ERR_CLOSE_CODE), 1002);
    CHECK_INT(ws_frame_err_close_code(WS_FRAME_ERR_CLOSE_UTF8), 1007);

    uint8_t big[126];
    memset(big, 'r', sizeof big);
    big[0] = 0x03;
    big[1] = 0xe8;
    struct ws_frame_close cl;
    CHECK_INT(ws_frame_close_parse(at_guard(big, 125), 125, &cl), WS_FRAME_OK);
    CHECK_INT(cl.reason_len, 123);
    CHECK_INT(ws_frame_close_parse(at_guard(big, 126), 126, &cl), WS_FRAME_ERR_CONTROL_TOO_LONG);
}

static void test_close_payload_builder(void)
{
    uint8_t out[LIMITS_WS_CONTROL_PAYLOAD], reason[200];
    struct ws_frame_close cl;
    size_t n;

    n = ws_frame_close_payload(out, 1000, (const uint8_t *)"bye", 3);
    CHECK_INT(n, 5);
    CHECK(memcmp(out, "\x03\xe8" "bye", 5) == 0);
    n = ws_frame_close_payload(out, 1009, NULL, 0);
    CHECK_INT(n, 2);
    CHECK(memcmp(out, "\x03\xf1", 2) == 0);
    /* Codes that must not be sent give a body-less close. */
    CHECK_INT(ws_frame_close_payload(out, 1005, NULL, 0), 0);
    CHECK_INT(ws_frame_close_payload(out, 1006, NULL, 0), 0);
    CHECK_INT(ws_frame_close_payload(out, 0, NULL, 0), 0);
    /* Long ASCII is cut to 123 bytes of reason. */
    memset(reason, 'a', sizeof reason);
    n = ws_frame_close_payload(out, 1011, reason, sizeof reason);
    CHECK_INT(n, LIMITS_WS_CONTROL_PAYLOAD);
    /* A 3-byte character that would straddle the cut is dropped whole... */
    memcpy(reason + 121, "\xe2\x82\xac", 3);
    n = ws_frame_close_payload(out, 1000, reason, 130);
    CHECK_INT(n, 2 + 121);
    CHECK_INT(ws_frame_close_parse(out, n, &cl), WS_FRAME_OK);
    /* ... and one that ends exactly at the limit is kept. */
    memset(reason, 'a', sizeof reason);
    memcpy(reason + 120, "\xe2\x82\xac", 3);
    n = ws_frame_close_payload(out, 1000, reason, 130);
    CHECK_INT(n, 125);
    CHECK(memcmp(out + 122, "\xe2\x82\xac", 3) == 0);
    /* All 4-byte characters: cut lands on a boundary, result parses. */
    for (size_t i = 0; i + 4 <= sizeof reason; i += 4)
        memcpy(reason + i, "\xf0\x9f\x98\x80", 4);
    n = ws_frame_close_payload(out, 4000, reason, sizeof reason);
    CHECK_INT(n, 2 + 120);
    CHECK_INT(ws_frame_close_parse(out, n, &cl), WS_FRAME_OK);
    CHECK_INT(cl.code, 4000);
    /* An invalid reason is dropped, the code kept. */
    n = ws_frame_close_payload(out, 1000, (const uint8_t *)"a\xff", 2);
    CHECK_INT(n, 2);
}

/* ---- encoders ---- */

struct header_case {
    int opcode;
    bool is_fin, is_rsv1;
    uint64_t len;
    size_t want_len;
    const char *want;
};

static void test_header_encode(void)
{
    static const struct header_case cases[] = {
        {WS_FRAME_OP_TEXT, true, false, 5, 2, "\x81\x05"},
        {WS_FRAME_OP_TEXT, true, true, 0, 2, "\xc1\x00"},
        {WS_FRAME_OP_BINARY, false, false, 125, 2, "\x02\x7d"},
        {WS_FRAME_OP_BINARY, true, false, 126, 4, "\x82\x7e\x00\x7e"},
        {WS_FRAME_OP_BINARY, true, false, 256, 4, "\x82\x7e\x01\x00"},
        {WS_FRAME_OP_BINARY, true, false, 65535, 4, "\x82\x7e\xff\xff"},
        {WS_FRAME_OP_BINARY, true, false, 65536, 10, "\x82\x7f\0\0\0\0\0\x01\0\0"},
        {WS_FRAME_OP_CONT, true, false, INT64_MAX, 10, "\x80\x7f\x7f\xff\xff\xff\xff\xff\xff\xff"},
        {WS_FRAME_OP_PING, true, false, 125, 2, "\x89\x7d"},
        {WS_FRAME_OP_CLOSE, true, false, 2, 2, "\x88\x02"},
        {WS_FRAME_OP_PONG, true, false, 0, 2, "\x8a\x00"},
        /* refused: each would break RFC 6455 §5.2/§5.5 or RFC 7692 §6 */
        {3, true, false, 0, 0, ""},
        {0xB, true, false, 0, 0, ""},
        {WS_FRAME_OP_PING, false, false, 0, 0, ""},
        {WS_FRAME_OP_PING, true, false, 126, 0, ""},
        {WS_FRAME_OP_CLOSE, true, true, 2, 0, ""},
        {WS_FRAME_OP_CONT, false, true, 2, 0, ""},
        {WS_FRAME_OP_BINARY, true, false, (uint64_t)INT64_MAX + 1, 0, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct header_case *c = &cases[i];
        uint8_t out[WS_FRAME_SERVER_HEADER_MAX];
        size_t n = ws_frame_header_encode(out, (enum ws_frame_opcode)c->opcode, c->is_fin,
                                          c->is_rsv1, c->len);
        CHECK_INT(n, c->want_len);
        if (n == c->want_len && n > 0)
            CHECK(memcmp(out, c->want, n) == 0);
    }
}

static void test_encode_masked(void)
{
    uint8_t out[64];
    /* The §5.7 masked "Hello", byte for byte. */
    size_t n = ws_frame_encode_masked(out, sizeof out, WS_FRAME_OP_TEXT, true, false, MASK,
                                      (const uint8_t *)"Hello", 5);
    static const uint8_t want[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};
    CHECK_INT(n, sizeof want);
    CHECK(memcmp(out, want, sizeof want) == 0);
    CHECK_INT(ws_frame_encode_masked(out, 10, WS_FRAME_OP_TEXT, true, false, MASK,
                                     (const uint8_t *)"Hello", 5),
              0);
    CHECK_INT(ws_frame_encode_masked(out, 6, WS_FRAME_OP_TEXT, true, false, MASK, NULL, 0), 6);
    CHECK_INT(ws_frame_encode_masked(out, 5, WS_FRAME_OP_TEXT, true, false, MASK, NULL, 0), 0);
    CHECK_INT(ws_frame_encode_masked(out, sizeof out, 5, true, false, MASK, NULL, 0), 0);
    /* Payloads around the 8-byte unmasking stride round-trip. */
    for (size_t len = 0; len <= 40; len++) {
        uint8_t p[40];
        for (size_t i = 0; i < len; i++)
            p[i] = (uint8_t)(0xA5 ^ i);
        n = ws_frame_encode_masked(out, sizeof out, WS_FRAME_OP_BINARY, true, false, MASK, p,
                                   len);
        CHECK_INT(decode(out, n, NO_LIMIT, false), WS_FRAME_NEED_MORE);
        CHECK_INT(trace_a.payload_len, len);
        CHECK(memcmp(trace_a.payload, p, len) == 0);
    }
}

static void test_err_table(void)
{
    for (int e = WS_FRAME_OK; e >= WS_FRAME_ERR_TEXT_UTF8; e--) {
        const char *s = ws_frame_strerror((enum ws_frame_err)e);
        uint16_t code = ws_frame_err_close_code((enum ws_frame_err)e);
        CHECK(s != NULL && strlen(s) > 0 && strlen(s) <= WS_FRAME_CLOSE_REASON_MAX);
        CHECK(strcmp(s, "unknown error") != 0);
        if (e >= WS_FRAME_NEED_MORE)
            CHECK_INT(code, 0);
        else
            CHECK(code == 1002 || code == 1007 || code == 1009);
    }
    CHECK_INT(ws_frame_err_close_code(WS_FRAME_ERR_TEXT_UTF8), 1007);
    CHECK(strcmp(ws_frame_strerror((enum ws_frame_err)-99), "unknown error") == 0);
}

int main(void)
{
    RUN(test_rfc_unmasked_hello_rejected);
    RUN(test_rfc_masked_hello);
    RUN(test_rfc_fragmented_hello);
    RUN(test_rfc_ping_pong);
    RUN(test_rfc_256_and_64k_binary);
    RUN(test_every_truncation_point);
    RUN(test_truncation_64k);
    RUN(test_every_rsv_combination);
    RUN(test_every_opcode);
    RUN(test_control_payload_limit);
    RUN(test_message_limit);
    RUN(test_length_forms);
    RUN(test_length_64bit_msb);
    RUN(test_fragmentation_rules);
    RUN(test_interleaved_reports);
    RUN(test_deflate_flag_carries);
    RUN(test_sticky_error);
    RUN(test_one_chunk_per_call);
    RUN(test_close_parse);
    RUN(test_close_payload_builder);
    RUN(test_header_encode);
    RUN(test_encode_masked);
    RUN(test_err_table);
    TEST_MAIN_END();
}
