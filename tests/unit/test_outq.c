/* Unit tests for outq, with faults injected through outq_writev: writes of
 * one byte at a time, random short writes, EAGAIN, EINTR and EPIPE, the
 * per-flush budget, and the reference counts of queued payloads. A fake
 * writev records every byte the queue hands it and checks, on each call,
 * that the bytes offered are exactly the next bytes of the expected stream
 * and that q->bytes equals what is still unwritten. A last test runs the
 * real writev against a non-blocking socketpair. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>

#include "outq.h"
#include "test.h"

#define S(lit) lit, sizeof(lit) - 1

/* ---- the fake writev --------------------------------------------------- */

#define STREAM_CAP (1 << 20)

enum { ACT_DEFAULT = 0 }; /* script: >0 take at most n bytes; <0 fail with -n */

static struct {
    struct outq *q;
    char expected[STREAM_CAP]; /* everything queued so far, in order */
    size_t expected_len;
    char got[STREAM_CAP]; /* everything written so far */
    size_t got_len;
    int calls;
    int script[64];
    int script_len, script_pos;
    size_t default_max; /* bytes taken per call when the script is done */
    uint32_t rng;       /* when non-zero: random 1..default_max per call */
    int bad;            /* invariant violations seen inside writev */
} fk;

static ssize_t fake_writev(int fd, const struct iovec *iov, int iovcnt)
{
    (void)fd;
    fk.calls++;
    if (iovcnt <= 0 || iovcnt > 1024) {
        fk.bad++;
        fprintf(stderr, "fake_writev: iovcnt %d\n", iovcnt);
    }
    if (fk.q->bytes != fk.expected_len - fk.got_len) {
        fk.bad++;
        fprintf(stderr, "fake_writev: q->bytes %zu, unwritten %zu\n", fk.q->bytes,
                fk.expected_len - fk.got_len);
    }
    /* What is offered must be exactly the next bytes of the stream. */
    size_t off = fk.got_len;
    size_t offered = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (off + offered + iov[i].iov_len > fk.expected_len ||
            memcmp(iov[i].iov_base, fk.expected + off + offered, iov[i].iov_len) != 0) {
            fk.bad++;
            fprintf(stderr, "fake_writev: iov %d does not continue the stream at %zu\n", i,
                    off + offered);
            break;
        }
        offered += iov[i].iov_len;
    }
    int act = fk.script_pos < fk.script_len ? fk.script[fk.script_pos++] : ACT_DEFAULT;
    if (act < 0) {
        errno = -act;
        return -1;
    }
    size_t max = act > 0 ? (size_t)act : fk.default_max;
    if (act == ACT_DEFAULT && fk.rng) {
        fk.rng = fk.rng * 1103515245u + 12345u;
        max = 1 + (fk.rng >> 8) % fk.default_max;
    }
    size_t take = offered < max ? offered : max;
    /* Copy from the iovecs themselves, not from `expected`. */
    size_t left = take;
    for (int i = 0; i < iovcnt && left > 0; i++) {
        size_t n = iov[i].iov_len < left ? iov[i].iov_len : left;
        memcpy(fk.got + fk.got_len, iov[i].iov_base, n);
        fk.got_len += n;
        left -= n;
    }
    return (ssize_t)take;
}

static ssize_t (*real_writev)(int, const struct iovec *, int);

static void fake_begin(struct outq *q, size_t default_max)
{
    memset(&fk, 0, sizeof fk);
    fk.q = q;
    fk.default_max = default_max;
    real_writev = outq_writev;
    outq_writev = fake_writev;
}

static void fake_end(void)
{
    CHECK_INT(fk.bad, 0);
    outq_writev = real_writev;
}

static void script(const int *acts, int n)
{
    memcpy(fk.script, acts, (size_t)n * sizeof *acts);
    fk.script_len = n;
    fk.script_pos = 0;
}

/* Pushes and records the bytes the stream should then contain. */
static void qpush(struct outq *q, const void *prefix, size_t prefix_len, struct payload *p,
                  size_t start, size_t len)
{
    CHECK(outq_push(q, prefix, prefix_len, p, start, len));
    if (prefix_len)
        memcpy(fk.expected + fk.expected_len, prefix, prefix_len);
    fk.expected_len += prefix_len;
    if (len) {
        memcpy(fk.expected + fk.expected_len, p->bytes + start, len);
        fk.expected_len += len;
    }
}

/* Queues a copy through outq_push_copy and records the expected bytes
 * (regression: outq_push_copy once passed a NULL prefix to memcpy). */
static void qpush_copy(struct outq *q, const void *bytes, size_t len)
{
    CHECK(outq_push_copy(q, bytes, len));
    if (len)
        memcpy(fk.expected + fk.expected_len, bytes, len);
    fk.expected_len += len;
}

static struct payload *make_payload(const char *s, size_t len)
{
    struct payload *p = payload_new(len);
    if (p == NULL)
        abort();
    memcpy(p->bytes, s, len);
    return p;
}

static void check_stream_complete(struct outq *q)
{
    CHECK_INT(fk.got_len, fk.expected_len);
    CHECK(memcmp(fk.got, fk.expected, fk.expected_len) == 0);
    CHECK_INT(q->bytes, 0);
    CHECK(q->head == NULL && q->tail == NULL);
}

/* A mix of items: prefix + slice, slice only, prefix only, copies, and
 * zero-length items, sharing one payload. */
static void push_mix(struct outq *q, struct payload *p)
{
    qpush(q, S("\x01\x06\x00\x01"), p, 0, 10);
    qpush(q, S("HDR"), p, 5, 3);
    qpush(q, "", 0, p, 20, 6);
    qpush(q, S("only-prefix"), NULL, 0, 0);
    qpush(q, "", 0, NULL, 0, 0); /* nothing at all */
    qpush_copy(q, S("copied bytes"));
    qpush(q, S("0123456789abcdef"), p, p->len - 1, 1); /* a full 16-byte prefix, last byte */
    qpush_copy(q, "", 0);
    qpush(q, S("Z"), p, 0, p->len);
}

/* ---- tests ------------------------------------------------------------- */

static void test_empty_flush(void)
{
    struct outq q = {0};
    fake_begin(&q, 1000);
    CHECK_INT(outq_flush(&q, 3, 1 << 20), OUTQ_EMPTY);
    CHECK_INT(q.bytes, 0);
    fake_end();
    outq_clear(&q); /* clear of an empty queue */
}

static void test_whole_write(void)
{
    struct outq q = {0};
    fake_begin(&q, 1 << 20);
    struct payload *p = make_payload(S("abcdefghijklmnopqrstuvwxyz0123456789"));
    push_mix(&q, p);
    CHECK_INT(q.bytes, fk.expected_len);
    CHECK_INT(outq_flush(&q, 3, 1 << 20), OUTQ_EMPTY);
    CHECK_INT(fk.calls, 1);
    check_stream_complete(&q);
    CHECK_INT(p->refs, 1);
    payload_unref(p);
    fake_end();
}

static void test_one_byte_at_a_time(void)
{
    struct outq q = {0};
    fake_begin(&q, 1);
    struct payload *p = make_payload(S("abcdefghijklmnopqrstuvwxyz0123456789"));
    push_mix(&q, p);
    size_t total = fk.expected_len;
    CHECK_INT(outq_flush(&q, 3, SIZE_MAX), OUTQ_EMPTY);
    CHECK_INT(fk.calls, total);
    check_stream_complete(&q);
    CHECK_INT(p->refs, 1);
    payload_unref(p);
    fake_end();
}

/* One byte per flush: the budget of 1 stops each flush after one write. */
static void test_one_byte_per_flush(void)
{
    struct outq q = {0};
    fake_begin(&q, 1);
    struct payload *p = make_payload(S("abcdefghijklmnopqrstuvwxyz0123456789"));
    push_mix(&q, p);
    size_t total = fk.expected_len;
    for (size_t i = 1; i < total; i++) {
        CHECK_INT(outq_flush(&q, 3, 1), OUTQ_BLOCKED);
        CHECK_INT(fk.got_len, i);
        CHECK_INT(q.bytes, total - i);
        if (test_current_failed)
            break;
    }
    CHECK_INT(outq_flush(&q, 3, 1), OUTQ_EMPTY);
    check_stream_complete(&q);
    payload_unref(p);
    fake_end();
}

/* More items than one writev takes, random short writes, random EAGAIN. */
static void test_many_items_random_short_writes(void)
{
    for (uint32_t seed = 1; seed <= 20 && !test_current_failed; seed++) {
        struct outq q = {0};
        fake_begin(&q, 1 + seed * 7);
        fk.rng = seed;
        static char big[5000];
        for (size_t i = 0; i < sizeof big; i++)
            big[i] = (char)(i * 31 + seed);
        struct payload *p = make_payload(big, sizeof big);
        uint32_t x = seed;
        for (int i = 0; i < 300; i++) {
            x = x * 1103515245u + 12345u;
            size_t plen = (x >> 8) % (OUTQ_PREFIX_MAX + 1);
            size_t start = (x >> 12) % 4000, len = (x >> 3) % 50;
            char prefix[OUTQ_PREFIX_MAX];
            for (size_t k = 0; k < plen; k++)
                prefix[k] = (char)('A' + (i + k) % 26);
            if (i % 10 == 9)
                qpush_copy(&q, big + start, len);
            else
                qpush(&q, prefix, plen, p, start, len);
        }
        CHECK_INT(p->refs > 1, 1);
        int rounds = 0;
        enum outq_result res;
        do {
            /* Every third round starts with the socket full. */
            if (rounds % 3 == 2) {
                static const int eagain[] = {-EAGAIN};
                script(eagain, 1);
            }
            size_t before = fk.got_len;
            res = outq_flush(&q, 3, 1 + (x >> 4) % 700);
            CHECK(res != OUTQ_ERROR);
            CHECK_INT(q.bytes, fk.expected_len - fk.got_len);
            if (res == OUTQ_BLOCKED && rounds % 3 == 2)
                CHECK_INT(fk.got_len, before);
            rounds++;
        } while (res == OUTQ_BLOCKED && rounds < 100000 && !test_current_failed);
        CHECK_INT(res, OUTQ_EMPTY);
        check_stream_complete(&q);
        CHECK_INT(p->refs, 1);
        payload_unref(p);
        fake_end();
    }
}

static void test_eagain_blocks_and_resumes(void)
{
    struct outq q = {0};
    fake_begin(&q, 1 << 20);
    struct payload *p = make_payload(S("payload-bytes"));
    qpush(&q, S("P1"), p, 0, 7);
    qpush(&q, S("P2"), p, 8, 5);
    size_t total = fk.expected_len;
    static const int acts[] = {-EAGAIN};
    script(acts, 1);
    CHECK_INT(outq_flush(&q, 3, SIZE_MAX), OUTQ_BLOCKED);
    CHECK_INT(fk.got_len, 0);
    CHECK_INT(q.bytes, total);
    /* A short write, then EAGAIN: the part written stays written. */
    static const int acts2[] = {4, -EWOULDBLOCK};
    script(acts2, 2);
    CHECK_INT(outq_flush(&q, 3, SIZE_MAX), OUTQ_BLOCKED);
    CHECK_INT(fk.got_len, 4);
    CHECK_INT(q.bytes, total - 4);
    CHECK_INT(outq_flush(&q, 3, SIZE_MAX), OUTQ_EMPTY);
    check_stream_complete(&q);
    CHECK_INT(p->refs, 1);
    payload_unref(p);
    fake_end();
}

static void test_eintr_retried(void)
{
    struct outq q = {0};
    fake_begin(&q, 1 << 20);
    qpush_copy(&q, S("hello, world"));
    static const int acts[] = {-EINTR, -EINTR, 3, -EINTR};
    script(acts, 4);
    CHECK_INT(outq_flush(&q, 3, SIZE_MAX), OUTQ_EMPTY);
    CHECK_INT(fk.calls, 5);
    check_stream_complete(&q);
    fake_end();
}

static void test_epipe_is_error(void)
{
    static const int errs[] = {EPIPE, ECONNRESET, EBADF};
    for (size_t e = 0; e < sizeof errs / sizeof errs[0]; e++) {
        struct outq q = {0};
        fake_begin(&q, 1 << 20);
        struct payload *p = make_payload(S("0123456789"));
        qpush(&q, S("H"), p, 0, 10);
        qpush(&q, S("I"), p, 2, 3);
        size_t total = fk.expected_len;
        /* First a clean error, then one after a partial write. */
        int acts[] = {-errs[e], 5, -errs[e]};
        script(acts, 3);
        errno = 0;
        CHECK_INT(outq_flush(&q, 3, SIZE_MAX), OUTQ_ERROR);
        CHECK_INT(errno, errs[e]);
        CHECK_INT(q.bytes, total);
        errno = 0;
        CHECK_INT(outq_flush(&q, 3, SIZE_MAX), OUTQ_ERROR);
        CHECK_INT(errno, errs[e]);
        CHECK_INT(fk.got_len, 5);
        CHECK_INT(q.bytes, total - 5);
        CHECK_INT(p->refs, 3);
        outq_clear(&q);
        CHECK_INT(q.bytes, 0);
        CHECK(q.head == NULL && q.tail == NULL);
        CHECK_INT(p->refs, 1);
        payload_unref(p);
        fake_end();
    }
}

/* The budget ends a flush once about `budget` bytes went out. */
static void test_budget(void)
{
    struct outq q = {0};
    fake_begin(&q, 50);
    static char block[100];
    memset(block, 'b', sizeof block);
    for (int i = 0; i < 3; i++)
        qpush_copy(&q, block, sizeof block);
    CHECK_INT(outq_flush(&q, 3, 120), OUTQ_BLOCKED);
    /* at least the budget, less than budget + one write */
    CHECK(fk.got_len >= 120 && fk.got_len < 120 + 50);
    CHECK(q.bytes > 0);
    CHECK_INT(q.bytes, 300 - fk.got_len);
    size_t after_first = fk.got_len;
    CHECK_INT(outq_flush(&q, 3, 1), OUTQ_BLOCKED);
    CHECK_INT(fk.got_len, after_first + 50);
    CHECK_INT(q.bytes, 300 - fk.got_len);
    /* A budget that exactly empties the queue reports EMPTY, not BLOCKED. */
    CHECK_INT(outq_flush(&q, 3, q.bytes), OUTQ_EMPTY);
    check_stream_complete(&q);
    fake_end();
}

static void test_refcounts_and_clear(void)
{
    struct outq q = {0};
    fake_begin(&q, 1 << 20);
    struct payload *p = make_payload(S("shared encoded row"));
    for (int i = 0; i < 5; i++)
        qpush(&q, S("hd"), p, (size_t)i, 4);
    CHECK_INT(p->refs, 6);
    /* Writing the first item and half the second drops exactly one ref. */
    static const int acts[] = {6 + 3, -EAGAIN};
    script(acts, 2);
    CHECK_INT(outq_flush(&q, 3, SIZE_MAX), OUTQ_BLOCKED);
    CHECK_INT(p->refs, 5);
    CHECK_INT(q.bytes, 5 * 6 - 9);
    outq_clear(&q);
    CHECK_INT(p->refs, 1);
    CHECK_INT(q.bytes, 0);
    CHECK(q.head == NULL && q.tail == NULL);
    /* The queue is usable again after a clear. */
    fk.expected_len = fk.got_len = 0;
    qpush(&q, S("again"), p, 0, 6);
    CHECK_INT(p->refs, 2);
    CHECK_INT(outq_flush(&q, 3, SIZE_MAX), OUTQ_EMPTY);
    check_stream_complete(&q);
    CHECK_INT(p->refs, 1);
    payload_unref(p);
    fake_end();
}

static void test_push_limits(void)
{
    struct outq q = {0};
    fake_begin(&q, 1 << 20);
    struct payload *p = make_payload(S("xyz"));
    char prefix[OUTQ_PREFIX_MAX + 1];
    memset(prefix, 'p', sizeof prefix);
    CHECK(!outq_push(&q, prefix, OUTQ_PREFIX_MAX + 1, p, 0, 3));
    CHECK_INT(p->refs, 1);
    CHECK_INT(q.bytes, 0);
    CHECK(q.head == NULL);
    /* A payload referenced with len 0 takes no reference (it may be NULL). */
    qpush(&q, prefix, OUTQ_PREFIX_MAX, p, 0, 0);
    CHECK_INT(p->refs, 1);
    qpush(&q, prefix, OUTQ_PREFIX_MAX, p, 0, 3);
    CHECK_INT(p->refs, 2);
    CHECK_INT(q.bytes, 2 * OUTQ_PREFIX_MAX + 3);
    CHECK_INT(outq_flush(&q, 3, SIZE_MAX), OUTQ_EMPTY);
    check_stream_complete(&q);
    CHECK_INT(p->refs, 1);
    payload_unref(p);
    fake_end();
}

/* The real writev into a non-blocking socketpair, drained in between. */
static void test_real_socketpair(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        perror("socketpair");
        CHECK(0);
        return;
    }
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
    struct outq q = {0};
    enum { ITEM = 1000, ITEMS = 2000 };
    struct payload *p = payload_new(ITEM);
    for (size_t i = 0; i < ITEM; i++)
        p->bytes[i] = (char)(i % 251);
    for (int i = 0; i < ITEMS; i++) {
        uint8_t h[4] = {(uint8_t)(i >> 8), (uint8_t)i, 0xAA, 0x55};
        CHECK(outq_push(&q, h, 4, p, (size_t)(i % 7), ITEM - 7));
    }
    size_t total = (size_t)ITEMS * (4 + ITEM - 7);
    CHECK_INT(q.bytes, total);
    char *got = malloc(total);
    size_t got_len = 0;
    int blocked = 0;
    for (;;) {
        enum outq_result res = outq_flush(&q, sv[0], SIZE_MAX);
        CHECK(res != OUTQ_ERROR);
        if (res == OUTQ_ERROR)
            break;
        ssize_t n;
        while ((n = read(sv[1], got + got_len, total - got_len)) > 0)
            got_len += (size_t)n;
        CHECK_INT(q.bytes, total - got_len);
        if (res == OUTQ_EMPTY)
            break;
        blocked++;
    }
    CHECK(blocked > 0); /* 2 MB do not fit in a socket buffer */
    CHECK_INT(got_len, total);
    size_t off = 0;
    for (int i = 0; i < ITEMS && got_len == total; i++) {
        uint8_t h[4] = {(uint8_t)(i >> 8), (uint8_t)i, 0xAA, 0x55};
        CHECK(memcmp(got + off, h, 4) == 0);
        CHECK(memcmp(got + off + 4, p->bytes + i % 7, ITEM - 7) == 0);
        off += 4 + ITEM - 7;
        if (test_current_failed)
            break;
    }
    CHECK_INT(p->refs, 1);
    /* The peer is gone: EPIPE (SIGPIPE ignored, as the servers do). */
    close(sv[1]);
    CHECK(outq_push(&q, S("late"), NULL, 0, 0));
    signal(SIGPIPE, SIG_IGN);
    errno = 0;
    CHECK_INT(outq_flush(&q, sv[0], SIZE_MAX), OUTQ_ERROR);
    CHECK_INT(errno, EPIPE);
    outq_clear(&q);
    close(sv[0]);
    free(got);
    payload_unref(p);
}

int main(void)
{
    RUN(test_empty_flush);
    RUN(test_whole_write);
    RUN(test_one_byte_at_a_time);
    RUN(test_one_byte_per_flush);
    RUN(test_many_items_random_short_writes);
    RUN(test_eagain_blocks_and_resumes);
    RUN(test_eintr_retried);
    RUN(test_epipe_is_error);
    RUN(test_budget);
    RUN(test_refcounts_and_clear);
    RUN(test_push_limits);
    RUN(test_real_socketpair);
    TEST_MAIN_END();
}
