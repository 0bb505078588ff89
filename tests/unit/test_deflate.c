/* Unit tests for deflate: the RFC 7692 §7.2.3 examples, round trips at
 * every window size, the output limit against a decompression bomb,
 * invalid data, lazy allocation, trimming and the measured memory. */
#include "test.h"

#include "deflate.h"

#include <stdint.h>

#define MIB (1024 * 1024)

static const uint8_t hello_c[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};

/* Inflates one whole message given as fragments; returns the error. */
static enum deflate_err inflate_frags(struct deflate_inflater *inf, const uint8_t *const *frag,
                                      const size_t *frag_len, size_t n, size_t max_len,
                                      struct deflate_buf *out)
{
    enum deflate_err err = DEFLATE_OK;
    for (size_t i = 0; i < n && err == DEFLATE_OK; i++)
        err = deflate_inflate(inf, guarded(frag[i], frag_len[i]), frag_len[i], i + 1 == n, max_len,
                              out);
    return err;
}

static enum deflate_err inflate_one(struct deflate_inflater *inf, const uint8_t *in, size_t len,
                                    size_t max_len, struct deflate_buf *out)
{
    return inflate_frags(inf, &in, &len, 1, max_len, out);
}

static void test_rfc_hello_compress(void)
{
    /* RFC 7692 §7.2.3.1: "Hello" -> f2 48 cd c9 c9 07 00. */
    struct deflate_buf out = {0};
    CHECK_INT(deflate_compress_message("Hello", 5, 15, &out), DEFLATE_OK);
    CHECK_INT(out.len, sizeof hello_c);
    CHECK(memcmp(out.data, hello_c, sizeof hello_c) == 0);
    /* A reused compressor carries no context: the same bytes every time. */
    struct deflate_compressor *c = deflate_compressor_new(15, -1);
    CHECK(c != NULL);
    for (int i = 0; i < 3; i++) {
        out.len = 0;
        CHECK_INT(deflate_compress(c, "Hello", 5, &out), DEFLATE_OK);
        CHECK_INT(out.len, sizeof hello_c);
        CHECK(memcmp(out.data, hello_c, sizeof hello_c) == 0);
    }
    /* Appends after what the buffer holds. */
    CHECK_INT(deflate_compress(c, "Hello", 5, &out), DEFLATE_OK);
    CHECK_INT(out.len, 2 * sizeof hello_c);
    CHECK(memcmp(out.data + sizeof hello_c, hello_c, sizeof hello_c) == 0);
    deflate_compressor_free(c);
    deflate_buf_free(&out);
}

static void test_rfc_hello_inflate_whole_and_fragmented(void)
{
    struct deflate_inflater inf = {0};
    struct deflate_buf out = {0};
    CHECK_INT(inflate_one(&inf, hello_c, sizeof hello_c, 100, &out), DEFLATE_OK);
    CHECK_MEM(out.data, out.len, "Hello");
    /* RFC 7692 §7.2.3.1: the same message in two fragments. */
    const uint8_t f1[] = {0xf2, 0x48, 0xcd}, f2[] = {0xc9, 0xc9, 0x07, 0x00};
    const uint8_t *frag[] = {f1, f2};
    size_t frag_len[] = {sizeof f1, sizeof f2};
    out.len = 0;
    CHECK_INT(inflate_frags(&inf, frag, frag_len, 2, 100, &out), DEFLATE_OK);
    CHECK_MEM(out.data, out.len, "Hello");
    /* Byte by byte, with empty fragments mixed in. */
    out.len = 0;
    for (size_t i = 0; i < sizeof hello_c; i++) {
        CHECK_INT(deflate_inflate(&inf, NULL, 0, false, 100, &out), DEFLATE_OK);
        CHECK_INT(
            deflate_inflate(&inf, guarded(hello_c + i, 1), 1, i + 1 == sizeof hello_c, 100, &out),
            DEFLATE_OK);
    }
    CHECK_MEM(out.data, out.len, "Hello");
    deflate_inflater_free(&inf);
    deflate_buf_free(&out);
}

static void test_rfc_shared_window(void)
{
    /* RFC 7692 §7.2.3.2: the second "Hello" refers to the first. */
    const uint8_t second[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
    struct deflate_inflater inf;
    struct deflate_buf out = {0};
    deflate_inflater_init(&inf, 15, false);
    CHECK_INT(inflate_one(&inf, hello_c, sizeof hello_c, 100, &out), DEFLATE_OK);
    CHECK_INT(inflate_one(&inf, second, sizeof second, 100, &out), DEFLATE_OK);
    CHECK_MEM(out.data, out.len, "HelloHello");
    /* Context takeover: trimming would lose the window, so it refuses. */
    CHECK(!deflate_inflater_trim(&inf));
    CHECK(deflate_inflater_heap_bytes(&inf) > 0);
    deflate_inflater_free(&inf);

    /* With client_no_context_takeover the window is reset per message, so
     * the back reference is invalid data: close 1002. */
    deflate_inflater_init(&inf, 15, true);
    out.len = 0;
    CHECK_INT(inflate_one(&inf, hello_c, sizeof hello_c, 100, &out), DEFLATE_OK);
    enum deflate_err err = inflate_one(&inf, second, sizeof second, 100, &out);
    CHECK_INT(err, DEFLATE_ERR_DATA);
    CHECK_INT(deflate_close_code(err), 1002);
    deflate_inflater_free(&inf);
    deflate_buf_free(&out);
}

static void test_rfc_other_block_shapes(void)
{
    /* RFC 7692 §7.2.3.3: a stored block. */
    const uint8_t stored[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00};
    /* §7.2.3.5: two blocks in one message. */
    const uint8_t two[] = {0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff,
                           0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00};
    /* §7.2.3.4: BFINAL set, then a trailing 0x00. */
    const uint8_t final[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00};
    const uint8_t second[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
    struct deflate_inflater inf = {0};
    struct deflate_buf out = {0};
    CHECK_INT(inflate_one(&inf, stored, sizeof stored, 100, &out), DEFLATE_OK);
    CHECK_MEM(out.data, out.len, "Hello");
    out.len = 0;
    CHECK_INT(inflate_one(&inf, two, sizeof two, 100, &out), DEFLATE_OK);
    CHECK_MEM(out.data, out.len, "Hello");
    out.len = 0;
    CHECK_INT(inflate_one(&inf, final, sizeof final, 100, &out), DEFLATE_OK);
    CHECK_MEM(out.data, out.len, "Hello");
    /* The window survives the end of the DEFLATE stream (context takeover). */
    out.len = 0;
    CHECK_INT(inflate_one(&inf, second, sizeof second, 100, &out), DEFLATE_OK);
    CHECK_MEM(out.data, out.len, "Hello");
    /* And the BFINAL message split so that the final block ends mid-fragment. */
    const uint8_t *frag[] = {final, final + 6};
    size_t frag_len[] = {6, 2};
    out.len = 0;
    CHECK_INT(inflate_frags(&inf, frag, frag_len, 2, 100, &out), DEFLATE_OK);
    CHECK_MEM(out.data, out.len, "Hello");
    deflate_inflater_free(&inf);
    deflate_buf_free(&out);
}

static void fill_text(uint8_t *p, size_t n, uint32_t seed)
{
    static const char *words[] = {"channel", "news", "{\"id\":", "data",       "event",
                                  " ",       "\n",   "litepush", "0123456789", "zz"};
    size_t i = 0;
    while (i < n) {
        seed = seed * 1103515245u + 12345u;
        const char *w = words[(seed >> 16) % 10];
        for (size_t k = 0; w[k] && i < n; k++)
            p[i++] = (uint8_t)w[k];
        if ((seed & 0x700) == 0 && i < n)
            p[i++] = (uint8_t)(seed >> 24); /* some binary noise */
    }
}

static void test_round_trips_every_window(void)
{
    static const size_t sizes[] = {0, 1, 5, 300, 4096, 70000, 300000};
    size_t big = 300000;
    uint8_t *msg = malloc(big);
    fill_text(msg, big, 42);
    struct deflate_buf c = {0}, out = {0};
    for (int bits = 9; bits <= 15; bits++) {
        struct deflate_compressor *comp = deflate_compressor_new(bits, bits == 9 ? 1 : -1);
        CHECK(comp != NULL);
        struct deflate_inflater takeover, fresh;
        deflate_inflater_init(&takeover, bits, false);
        deflate_inflater_init(&fresh, bits, true);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t n = sizes[s];
            c.len = 0;
            CHECK_INT(deflate_compress(comp, msg, n, &c), DEFLATE_OK);
            /* A context-free payload inflates with or without takeover. */
            out.len = 0;
            CHECK_INT(inflate_one(&takeover, c.data, c.len, n, &out), DEFLATE_OK);
            CHECK(out.len == n && (n == 0 || memcmp(out.data, msg, n) == 0));
            out.len = 0;
            /* In 1000-byte fragments. */
            enum deflate_err err;
            size_t off = 0;
            do {
                size_t k = c.len - off < 1000 ? c.len - off : 1000;
                err =
                    deflate_inflate(&fresh, guarded(c.data + off, k), k, off + k == c.len, n, &out);
                off += k;
            } while (err == DEFLATE_OK && off < c.len);
            CHECK_INT(err, DEFLATE_OK);
            CHECK(out.len == n && (n == 0 || memcmp(out.data, msg, n) == 0));
        }
        deflate_inflater_free(&takeover);
        deflate_inflater_free(&fresh);
        deflate_compressor_free(comp);
    }
    deflate_buf_free(&c);
    deflate_buf_free(&out);
    free(msg);
}

static void test_empty_message(void)
{
    struct deflate_buf c = {0}, out = {0};
    /* An empty message compresses to the single byte 00 (an empty stored
     * block once the tail is appended). */
    CHECK_INT(deflate_compress_message("", 0, 15, &c), DEFLATE_OK);
    CHECK_INT(c.len, 1);
    CHECK_INT(c.data[0], 0);
    struct deflate_inflater inf = {0};
    CHECK_INT(inflate_one(&inf, c.data, c.len, 0, &out), DEFLATE_OK);
    CHECK_INT(out.len, 0);
    deflate_inflater_free(&inf);
    /* An empty payload is accepted as an empty message (see NOTES) and
     * allocates nothing. */
    CHECK_INT(deflate_inflate(&inf, NULL, 0, true, 0, &out), DEFLATE_OK);
    CHECK_INT(out.len, 0);
    CHECK_INT(deflate_inflater_heap_bytes(&inf), 0);
    deflate_buf_free(&c);
    deflate_buf_free(&out);
}

static void test_limit_both_sides(void)
{
    uint8_t msg[5000];
    fill_text(msg, sizeof msg, 7);
    struct deflate_buf c = {0}, out = {0};
    CHECK_INT(deflate_compress_message(msg, sizeof msg, 15, &c), DEFLATE_OK);
    struct deflate_inflater inf = {0};
    CHECK_INT(inflate_one(&inf, c.data, c.len, sizeof msg, &out), DEFLATE_OK);
    CHECK_INT(out.len, sizeof msg);
    deflate_inflater_free(&inf);
    out.len = 0;
    enum deflate_err err = inflate_one(&inf, c.data, c.len, sizeof msg - 1, &out);
    CHECK_INT(err, DEFLATE_ERR_TOO_BIG);
    CHECK_INT(deflate_close_code(err), 1009);
    CHECK(out.len <= sizeof msg);
    deflate_inflater_free(&inf);
    /* The limit counts the whole message, not one fragment. */
    out.len = 0;
    size_t half = c.len / 2;
    CHECK_INT(deflate_inflate(&inf, c.data, half, false, 3000, &out), DEFLATE_OK);
    err = deflate_inflate(&inf, c.data + half, c.len - half, true, 3000, &out);
    CHECK_INT(err, DEFLATE_ERR_TOO_BIG);
    deflate_inflater_free(&inf);
    deflate_buf_free(&c);
    deflate_buf_free(&out);
}

static void test_decompression_bomb(void)
{
    /* 10 MB of zeros compress to about 10 KB. */
    size_t n = 10 * MIB;
    uint8_t *zeros = calloc(1, n);
    struct deflate_buf c = {0}, out = {0};
    CHECK_INT(deflate_compress_message(zeros, n, 15, &c), DEFLATE_OK);
    CHECK(c.len < 20000);
    struct deflate_inflater inf = {0};
    enum deflate_err err = inflate_one(&inf, c.data, c.len, 1 * MIB, &out);
    CHECK_INT(err, DEFLATE_ERR_TOO_BIG);
    CHECK_INT(deflate_close_code(err), 1009);
    /* Stopped at the limit: at most max + 1 bytes were ever allocated. */
    CHECK(out.len <= 1 * MIB + 1);
    CHECK(out.cap <= 1 * MIB + 1);
    /* Broken now: further calls are refused, freeing works. */
    CHECK_INT(deflate_inflate(&inf, c.data, 1, true, MIB, &out), DEFLATE_ERR_PARAM);
    deflate_inflater_free(&inf);
    CHECK_INT(deflate_inflater_heap_bytes(&inf), 0);

    /* Fed in frames of 1000 bytes while the caller drains the output. */
    enum deflate_err e = DEFLATE_OK;
    size_t total = 0;
    for (size_t off = 0; e == DEFLATE_OK && off < c.len; off += 1000) {
        size_t k = c.len - off < 1000 ? c.len - off : 1000;
        out.len = 0;
        e = deflate_inflate(&inf, c.data + off, k, off + k == c.len, 1 * MIB, &out);
        total += out.len;
    }
    CHECK_INT(e, DEFLATE_ERR_TOO_BIG);
    CHECK(total <= 1 * MIB + 1);
    deflate_inflater_free(&inf);
    free(zeros);
    deflate_buf_free(&c);
    deflate_buf_free(&out);
}

static void test_garbage_is_invalid_data(void)
{
    static const struct {
        uint8_t bytes[8];
        size_t len;
    } bad[] = {
        {{0xff, 0xff, 0xff, 0xff}, 4},       /* reserved block type 11 */
        {{0x07}, 1},                         /* reserved block type 11 */
        {{0x00, 0x05, 0x00, 0x00}, 4},       /* stored block: LEN and NLEN disagree */
        {{0xf2, 0x48, 0xcd, 0xc9}, 4},       /* truncated: no block boundary */
        {{0xf2, 0x00, 0x11, 0x00, 0x00}, 5}, /* distance beyond an empty window */
        {{0x01, 0x05}, 2},                   /* BFINAL stored block cut short */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct deflate_inflater inf = {0};
        struct deflate_buf out = {0};
        enum deflate_err err = inflate_one(&inf, bad[i].bytes, bad[i].len, 1000, &out);
        if (err != DEFLATE_ERR_DATA) {
            fprintf(stderr, "garbage case %zu: %s\n", i, deflate_strerror(err));
            CHECK(0);
        }
        CHECK_INT(deflate_close_code(err), 1002);
        /* Broken inflaters can always be trimmed. */
        CHECK(deflate_inflater_trim(&inf));
        CHECK_INT(deflate_inflater_heap_bytes(&inf), 0);
        deflate_inflater_free(&inf);
        deflate_buf_free(&out);
    }
}

static void test_lazy_allocation_trim_and_memory(void)
{
    struct deflate_inflater inf;
    struct deflate_buf c = {0}, out = {0};
    uint8_t *msg = malloc(100000);
    fill_text(msg, 100000, 3);
    CHECK_INT(deflate_compress_message(msg, 100000, 15, &c), DEFLATE_OK);

    deflate_inflater_init(&inf, 15, true);
    CHECK_INT(deflate_inflater_heap_bytes(&inf), 0); /* nothing until needed */
    CHECK(deflate_inflater_trim(&inf));
    /* Mid-message the state is kept. */
    CHECK_INT(deflate_inflate(&inf, c.data, 10, false, 100000, &out), DEFLATE_OK);
    CHECK(deflate_inflater_heap_bytes(&inf) > 0);
    CHECK(!deflate_inflater_trim(&inf));
    CHECK_INT(deflate_inflate(&inf, c.data + 10, c.len - 10, true, 100000, &out), DEFLATE_OK);
    CHECK(out.len == 100000 && memcmp(out.data, msg, 100000) == 0);
    size_t inflater_bytes = deflate_inflater_heap_bytes(&inf);
    /* No context takeover and idle: trim frees everything... */
    CHECK(deflate_inflater_trim(&inf));
    CHECK_INT(deflate_inflater_heap_bytes(&inf), 0);
    /* ...and the next message allocates again. */
    out.len = 0;
    CHECK_INT(inflate_one(&inf, hello_c, sizeof hello_c, 10, &out), DEFLATE_OK);
    CHECK_MEM(out.data, out.len, "Hello");
    deflate_inflater_free(&inf);
    CHECK_INT(deflate_inflater_heap_bytes(&inf), 0);
    deflate_inflater_free(NULL);

    /* The window (32 KiB at 15 bits) dominates; see deflate.h. */
    CHECK(inflater_bytes > 32768 && inflater_bytes < 48 * 1024);
    struct deflate_compressor *comp = deflate_compressor_new(15, -1);
    size_t comp_bytes = deflate_compressor_heap_bytes(comp);
    printf("memory: inflater (window 15) %zu bytes, compressor (window 15) %zu bytes\n",
           inflater_bytes, comp_bytes);
    deflate_compressor_free(comp);
    deflate_compressor_free(NULL);
    free(msg);
    deflate_buf_free(&c);
    deflate_buf_free(&out);
    deflate_buf_free(NULL);
}

static void test_window_bits_edges(void)
{
    /* RFC 7692 §7.1.2: zlib cannot deflate with 8 bits (see deflate.c). */
    CHECK(deflate_compressor_new(8, -1) == NULL);
    CHECK(deflate_compressor_new(16, -1) == NULL);
    CHECK(deflate_compressor_new(15, 10) == NULL);
    struct deflate_buf c = {0}, out = {0};
    CHECK_INT(deflate_compress_message("x", 1, 8, &c), DEFLATE_ERR_PARAM);
    CHECK_INT(c.len, 0);
    /* A client that agreed to 8 bits is inflated with a 15-bit window. */
    uint8_t msg[3000];
    fill_text(msg, sizeof msg, 9);
    CHECK_INT(deflate_compress_message(msg, sizeof msg, 9, &c), DEFLATE_OK);
    struct deflate_inflater inf;
    deflate_inflater_init(&inf, 8, false);
    CHECK_INT(inflate_one(&inf, c.data, c.len, sizeof msg, &out), DEFLATE_OK);
    CHECK(out.len == sizeof msg && memcmp(out.data, msg, sizeof msg) == 0);
    deflate_inflater_free(&inf);
    /* A peer that reaches past its promised 9-bit window gets the same
     * verdict whole or split (fuzzing found whole = too big, split = invalid
     * data when the inflater used the promised window). */
    static const uint8_t overreach[] = {
        0x7a, 0x7a, 0x7a, 0x7a, 0x72, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x36,
        0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36,
        0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36,
        0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x76, 0x36, 0x36, 0x36,
        0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0xe2, 0x36, 0x36, 0x36,
        0x36, 0x36, 0x36, 0x36, 0x36, 0xca, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x36, 0x7a, 0x3f,
        0x7a, 0x7a, 0x7a, 0x7a, 0x07, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f,
        0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f,
        0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f,
        0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f,
        0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f,
        0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f,
        0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0xf3,
    };
    struct deflate_inflater whole, split;
    struct deflate_buf ow = {0}, os = {0};
    deflate_inflater_init(&whole, 9, false);
    deflate_inflater_init(&split, 9, false);
    enum deflate_err ew = inflate_one(&whole, overreach, sizeof overreach, 1552, &ow);
    enum deflate_err es = deflate_inflate(&split, overreach, 77, false, 1552, &os);
    if (es == DEFLATE_OK)
        es = deflate_inflate(&split, overreach + 77, sizeof overreach - 77, true, 1552, &os);
    CHECK_INT(ew, es);
    CHECK_INT(ow.len, os.len);
    deflate_inflater_free(&whole);
    deflate_inflater_free(&split);
    deflate_buf_free(&ow);
    deflate_buf_free(&os);
    /* Nonsense window bits are our bug, not the peer's. */
    deflate_inflater_init(&inf, 16, false);
    CHECK_INT(inflate_one(&inf, hello_c, sizeof hello_c, 10, &out), DEFLATE_ERR_PARAM);
    deflate_inflater_free(&inf);
    deflate_buf_free(&c);
    deflate_buf_free(&out);
}

static void test_error_table(void)
{
    CHECK_INT(deflate_close_code(DEFLATE_OK), 1000);
    CHECK_INT(deflate_close_code(DEFLATE_ERR_DATA), 1002);
    CHECK_INT(deflate_close_code(DEFLATE_ERR_TOO_BIG), 1009);
    CHECK_INT(deflate_close_code(DEFLATE_ERR_NOMEM), 1011);
    CHECK_INT(deflate_close_code(DEFLATE_ERR_PARAM), 1011);
    for (int e = DEFLATE_OK; e <= DEFLATE_ERR_PARAM; e++)
        CHECK(strlen(deflate_strerror((enum deflate_err)e)) > 0);
}

int main(void)
{
    RUN(test_rfc_hello_compress);
    RUN(test_rfc_hello_inflate_whole_and_fragmented);
    RUN(test_rfc_shared_window);
    RUN(test_rfc_other_block_shapes);
    RUN(test_round_trips_every_window);
    RUN(test_empty_message);
    RUN(test_limit_both_sides);
    RUN(test_decompression_bomb);
    RUN(test_garbage_is_invalid_data);
    RUN(test_lazy_allocation_trim_and_memory);
    RUN(test_window_bits_edges);
    RUN(test_error_table);
    TEST_MAIN_END();
}
