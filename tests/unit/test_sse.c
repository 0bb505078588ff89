/* Unit tests for sse: exact framing of id/event/data lines (WHATWG HTML,
 * "Server-sent events"), every line-break form in data and event types,
 * sse_event_len against the bytes written, retry encoding and its cap, and
 * a round trip through a small reference decoder written from the WHATWG
 * parsing rules. Inputs sit before a guard page; outputs are malloc'd at
 * exactly sse_event_len bytes so ASan catches a write past the end. */
#include <stdint.h>

#include "sse.h"
#include "utf8.h"
#include "test.h"

#define S(lit) lit, sizeof(lit) - 1

/* guarded() maps fresh pages on each call; the loops reuse two regions
 * (slot 0 for data, slot 1 for the event type). */
#define AT_GUARD_CAP 4096
static const char *at_guard(int slot, const void *data, size_t len)
{
    static char *end[2];
    if (!end[slot]) {
        static const char zero[AT_GUARD_CAP];
        end[slot] = (char *)guarded(zero, sizeof zero) + sizeof zero;
    }
    if (len > AT_GUARD_CAP)
        abort();
    memmove(end[slot] - len, data, len);
    return end[slot] - len;
}

/* Encodes ev into a buffer of exactly sse_event_len bytes; checks that the
 * returned length agrees. The caller frees *out. */
static size_t encode(const struct sse_event *ev, char **out)
{
    size_t want = sse_event_len(ev);
    *out = malloc(want ? want : 1);
    if (*out == NULL)
        abort();
    size_t got = sse_encode_event(ev, *out);
    CHECK_INT(got, want);
    return got;
}

/* ---- reference decoder: WHATWG "Interpreting an event stream" ---------- */

struct ref_event {
    int dispatched; /* events dispatched by the stream */
    int bad_lines;  /* lines that are not id/event/data fields */
    int has_id;
    char id[64];
    int has_event; /* an event field was seen */
    char event[256];
    size_t event_len;
    char data[4096];
    size_t data_len;
};

static void ref_field(struct ref_event *r, const char *line, size_t n, char *dbuf, size_t *dlen)
{
    const char *colon = memchr(line, ':', n);
    size_t name_len = colon ? (size_t)(colon - line) : n;
    const char *val = colon ? colon + 1 : line + n;
    size_t val_len = colon ? n - name_len - 1 : 0;
    if (val_len > 0 && val[0] == ' ') { /* WHATWG: strip one leading space */
        val++;
        val_len--;
    }
    if (name_len == 4 && memcmp(line, "data", 4) == 0) {
        if (*dlen + val_len + 1 > sizeof r->data)
            abort();
        memcpy(dbuf + *dlen, val, val_len);
        *dlen += val_len;
        dbuf[(*dlen)++] = '\n';
    } else if (name_len == 5 && memcmp(line, "event", 5) == 0) {
        if (val_len > sizeof r->event)
            abort();
        memcpy(r->event, val, val_len);
        r->event_len = val_len;
        r->has_event = 1;
    } else if (name_len == 2 && memcmp(line, "id", 2) == 0) {
        if (val_len >= sizeof r->id)
            abort();
        memcpy(r->id, val, val_len);
        r->id[val_len] = 0;
        r->has_id = 1;
    } else {
        r->bad_lines++;
    }
}

/* Decodes a whole stream; keeps the fields of the last dispatched event. */
static void ref_decode(const char *s, size_t len, struct ref_event *r)
{
    static char dbuf[4096];
    size_t dlen = 0;
    memset(r, 0, sizeof *r);
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '\r' && s[i] != '\n')
            continue;
        size_t n = i - start;
        if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')
            i++;
        const char *line = s + start;
        start = i + 1;
        if (n == 0) { /* dispatch */
            if (dlen == 0)
                continue;
            r->dispatched++;
            memcpy(r->data, dbuf, dlen - 1); /* drop the trailing LF */
            r->data_len = dlen - 1;
            dlen = 0;
            continue;
        }
        if (line[0] == ':')
            continue; /* comment */
        ref_field(r, line, n, dbuf, &dlen);
    }
    if (start != len)
        r->bad_lines++; /* an unterminated last line is never dispatched */
}

/* data with CRLF and CR replaced by LF */
static size_t normalise(const char *in, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '\r') {
            out[n++] = '\n';
            if (i + 1 < len && in[i + 1] == '\n')
                i++;
        } else {
            out[n++] = in[i];
        }
    }
    return n;
}

static size_t cut_at_break(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\r' || s[i] == '\n')
            return i;
    return len;
}

/* Encodes ev, decodes the bytes and compares with what was put in. */
static void check_round_trip(const struct sse_event *ev)
{
    char *out;
    size_t n = encode(ev, &out);
    struct ref_event r;
    ref_decode(out, n, &r);
    CHECK_INT(r.dispatched, 1);
    CHECK_INT(r.bad_lines, 0);
    CHECK(r.has_id);
    char idbuf[32];
    snprintf(idbuf, sizeof idbuf, "%lld", (long long)ev->id);
    CHECK(strcmp(r.id, idbuf) == 0);
    CHECK_INT(r.has_event, ev->event != NULL);
    if (ev->event != NULL) {
        size_t el = cut_at_break(ev->event, ev->event_len);
        static uint8_t ev_fixed[3 * 4096];
        size_t fl = utf8_repair((const uint8_t *)ev->event, el, ev_fixed);
        CHECK_INT(r.event_len, fl);
        CHECK(memcmp(r.event, ev_fixed, fl) == 0);
    }
    /* Bytes that are not UTF-8 come out as U+FFFD (utf8_repair). */
    static char norm[4096];
    static uint8_t fixed[3 * 4096];
    size_t nl = normalise(ev->data, ev->data_len, norm);
    size_t fl = utf8_repair((const uint8_t *)norm, nl, fixed);
    CHECK_INT(r.data_len, fl);
    CHECK(memcmp(r.data, fixed, fl) == 0);
    CHECK(utf8_is_valid((const uint8_t *)out, n));
    /* The stream ends with exactly one blank line: "\n\n" and no more. */
    CHECK(n >= 2 && out[n - 1] == '\n' && out[n - 2] == '\n');
    free(out);
}

/* ---- exact framing ---------------------------------------------------- */

struct frame_case {
    const char *name;
    int64_t id;
    const char *event; /* NULL: no event field */
    size_t event_len;
    const char *data;
    size_t data_len;
    const char *want;
    size_t want_len;
};

static const struct frame_case frames[] = {
    {"plain", 1, NULL, 0, S("hello"), S("id: 1\ndata: hello\n\n")},
    {"with event", 2, S("update"), S("x"), S("id: 2\nevent: update\ndata: x\n\n")},
    {"empty data", 3, NULL, 0, S(""), S("id: 3\ndata: \n\n")},
    {"LF", 4, NULL, 0, S("a\nb"), S("id: 4\ndata: a\ndata: b\n\n")},
    {"CRLF", 4, NULL, 0, S("a\r\nb"), S("id: 4\ndata: a\ndata: b\n\n")},
    {"CR", 4, NULL, 0, S("a\rb"), S("id: 4\ndata: a\ndata: b\n\n")},
    {"LF LF", 5, NULL, 0, S("a\n\nb"), S("id: 5\ndata: a\ndata: \ndata: b\n\n")},
    {"CR CR", 5, NULL, 0, S("a\r\rb"), S("id: 5\ndata: a\ndata: \ndata: b\n\n")},
    {"LF CR", 5, NULL, 0, S("a\n\rb"), S("id: 5\ndata: a\ndata: \ndata: b\n\n")},
    {"CRLF LF", 5, NULL, 0, S("a\r\n\nb"), S("id: 5\ndata: a\ndata: \ndata: b\n\n")},
    {"CRLF CRLF", 5, NULL, 0, S("a\r\n\r\nb"), S("id: 5\ndata: a\ndata: \ndata: b\n\n")},
    {"CR CRLF", 5, NULL, 0, S("a\r\r\nb"), S("id: 5\ndata: a\ndata: \ndata: b\n\n")},
    {"trailing LF", 6, NULL, 0, S("a\n"), S("id: 6\ndata: a\ndata: \n\n")},
    {"trailing CR", 6, NULL, 0, S("a\r"), S("id: 6\ndata: a\ndata: \n\n")},
    {"trailing CRLF", 6, NULL, 0, S("a\r\n"), S("id: 6\ndata: a\ndata: \n\n")},
    {"only LF", 7, NULL, 0, S("\n"), S("id: 7\ndata: \ndata: \n\n")},
    {"only CR", 7, NULL, 0, S("\r"), S("id: 7\ndata: \ndata: \n\n")},
    {"only CRLF", 7, NULL, 0, S("\r\n"), S("id: 7\ndata: \ndata: \n\n")},
    {"leading LF", 7, NULL, 0, S("\nz"), S("id: 7\ndata: \ndata: z\n\n")},
    {"leading space kept", 8, NULL, 0, S(" x"), S("id: 8\ndata:  x\n\n")},
    {"colon in data", 8, NULL, 0, S("k: v"), S("id: 8\ndata: k: v\n\n")},
    {"data looks like field", 8, NULL, 0, S("\nid: 9\n"),
     S("id: 8\ndata: \ndata: id: 9\ndata: \n\n")},
    {"NUL in data", 9, NULL, 0, S("a\0b"), S("id: 9\ndata: a\0b\n\n")},
    {"UTF-8 data", 9, NULL, 0, S("\xc3\xa9t\xc3\xa9"), S("id: 9\ndata: \xc3\xa9t\xc3\xa9\n\n")},
    {"event cut at LF", 10, S("a\nb"), S("d"), S("id: 10\nevent: a\ndata: d\n\n")},
    {"event cut at CR", 10, S("a\rb"), S("d"), S("id: 10\nevent: a\ndata: d\n\n")},
    {"event cut at CRLF", 10, S("ab\r\nc"), S("d"), S("id: 10\nevent: ab\ndata: d\n\n")},
    {"event only LF", 10, S("\n"), S("d"), S("id: 10\nevent: \ndata: d\n\n")},
    {"event empty", 10, S(""), S("d"), S("id: 10\nevent: \ndata: d\n\n")},
    {"event with colon", 10, S("a:b"), S("d"), S("id: 10\nevent: a:b\ndata: d\n\n")},
    {"id 0", 0, NULL, 0, S("z"), S("id: 0\ndata: z\n\n")},
    {"id INT64_MAX", INT64_MAX, NULL, 0, S("z"), S("id: 9223372036854775807\ndata: z\n\n")},
    {"id 10", 10, NULL, 0, S("z"), S("id: 10\ndata: z\n\n")},
    {"everything", 42, S("litepush.reset"), S("line1\r\nline2\rline3\n"),
     S("id: 42\nevent: litepush.reset\ndata: line1\ndata: line2\ndata: line3\ndata: \n\n")},
};

static void test_frames(void)
{
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        const struct frame_case *c = &frames[i];
        struct sse_event ev = {
            .id = c->id,
            .event = c->event ? guarded(c->event, c->event_len) : NULL,
            .event_len = c->event_len,
            .data = guarded(c->data, c->data_len),
            .data_len = c->data_len,
        };
        char *out;
        size_t n = encode(&ev, &out);
        if (n != c->want_len || memcmp(out, c->want, n) != 0) {
            test_current_failed = 1;
            fprintf(stderr, "frame case \"%s\": got \"%.*s\"\n", c->name, (int)n, out);
        }
        free(out);
        check_round_trip(&ev);
    }
}

/* An empty data value at the very end of readable memory. */
static void test_empty_data_at_guard(void)
{
    struct sse_event ev = {
        .id = 1, .event = guarded("", 0), .event_len = 0, .data = guarded("", 0), .data_len = 0};
    char *out;
    size_t n = encode(&ev, &out);
    CHECK_MEM(out, n, "id: 1\nevent: \ndata: \n\n");
    free(out);
}

/* Every string of length 0..7 over { 'a', CR, LF } as data, and as event. */
static void test_exhaustive_line_breaks(void)
{
    static const char alphabet[] = {'a', '\r', '\n'};
    char buf[8];
    for (size_t len = 0; len <= 7; len++) {
        size_t total = 1;
        for (size_t k = 0; k < len; k++)
            total *= 3;
        for (size_t code = 0; code < total; code++) {
            size_t c = code;
            for (size_t k = 0; k < len; k++) {
                buf[k] = alphabet[c % 3];
                c /= 3;
            }
            const char *g = at_guard(0, buf, len);
            const char *ge = at_guard(1, buf, len);
            struct sse_event ev = {.id = (int64_t)code, .data = g, .data_len = len};
            check_round_trip(&ev);
            struct sse_event ev2 = {
                .id = 1, .event = ge, .event_len = len, .data = "x", .data_len = 1};
            check_round_trip(&ev2);
            if (test_current_failed) {
                fprintf(stderr, "  exhaustive input len %zu code %zu\n", len, code);
                return;
            }
        }
    }
}

/* Pseudo-random inputs: length agreement and the reference round trip. */
static uint32_t rng_state = 12345;
static uint32_t rng(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

static void test_random_len_and_round_trip(void)
{
    static const char alphabet[] = {'a', 'b', '\r', '\n', ' ', ':', '\0', (char)0xff, 'd'};
    char data[300], event[40];
    for (int iter = 0; iter < 5000 && !test_current_failed; iter++) {
        size_t dl = rng() % sizeof data, el = rng() % sizeof event;
        for (size_t i = 0; i < dl; i++)
            data[i] = alphabet[rng() % sizeof alphabet];
        for (size_t i = 0; i < el; i++)
            event[i] = alphabet[rng() % sizeof alphabet];
        int64_t id = (int64_t)(((uint64_t)rng() << 40) ^ ((uint64_t)rng() << 16) ^ rng());
        if (id < 0)
            id = -(id + 1);
        struct sse_event ev = {.id = id,
                               .event = rng() % 3 ? at_guard(1, event, el) : NULL,
                               .event_len = el,
                               .data = at_guard(0, data, dl),
                               .data_len = dl};
        check_round_trip(&ev);
    }
}

/* sse_event_len, field by field: fixed parts plus the digits of the id. */
static void test_len_arithmetic(void)
{
    static const struct {
        int64_t id;
        size_t digits;
    } ids[] = {{0, 1},   {9, 1},         {10, 2},          {99, 2},
               {100, 3}, {999999999, 9}, {1000000000, 10}, {INT64_MAX, 19}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        struct sse_event ev = {.id = ids[i].id, .data = "", .data_len = 0};
        /* "id: " digits "\n" "data: " "\n" "\n" */
        CHECK_INT(sse_event_len(&ev), 4 + ids[i].digits + 1 + 6 + 1 + 1);
        ev.event = "ev";
        ev.event_len = 2;
        CHECK_INT(sse_event_len(&ev), 4 + ids[i].digits + 1 + 7 + 2 + 1 + 6 + 1 + 1);
    }
    /* n line breaks make n + 1 data lines of 7 bytes plus their content. */
    struct sse_event ev = {.id = 1, .data = "\r\n\r\n\n\r", .data_len = 6};
    CHECK_INT(sse_event_len(&ev), 6 + 5 * 7 + 1);
}

/* A long data value (bigger than any one internal buffer might be). */
static void test_long_data(void)
{
    size_t len = 100000;
    char *data = malloc(len);
    if (data == NULL)
        abort();
    for (size_t i = 0; i < len; i++)
        data[i] = (i % 100 == 99) ? '\n' : (char)('a' + i % 26);
    struct sse_event ev = {.id = 7, .data = guarded(data, len), .data_len = len};
    char *out;
    size_t n = encode(&ev, &out);
    /* 1000 lines of 99 bytes, the last followed by an empty line. */
    CHECK_INT(n, 6 + 1000 * (6 + 99 + 1) + 7 + 1);
    free(out);
    free(data);
}

struct retry_case {
    unsigned ms;
    const char *want;
};

static void test_retry(void)
{
    static const struct retry_case cases[] = {
        {0, "retry: 0\n\n"},
        {1, "retry: 1\n\n"},
        {3000, "retry: 3000\n\n"},
        {(unsigned)-1, "retry: 4294967295\n\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t wl = strlen(cases[i].want);
        char buf[64];
        size_t n = sse_encode_retry(cases[i].ms, buf, sizeof buf);
        CHECK_MEM(buf, n, cases[i].want);
        /* Exactly the text's length is enough (no NUL is written). */
        char *exact = malloc(wl);
        n = sse_encode_retry(cases[i].ms, exact, wl);
        CHECK_MEM(exact, n, cases[i].want);
        free(exact);
        /* Every cap below the text's length is too small. */
        for (size_t cap = 0; cap < wl; cap++) {
            char *small = malloc(cap ? cap : 1);
            CHECK_INT(sse_encode_retry(cases[i].ms, small, cap), 0);
            free(small);
        }
    }
}

static void test_retry_decodes_as_no_event(void)
{
    char buf[64];
    size_t n = sse_encode_retry(2500, buf, sizeof buf);
    struct ref_event r;
    ref_decode(buf, n, &r);
    CHECK_INT(r.dispatched, 0);
}

/* The position block: exact bytes at both ends of the id range, every
 * cap too small refused, and a reference decoder sets the last event id
 * without dispatching an event. */
static void test_id_only(void)
{
    static const struct {
        int64_t id;
        const char *want;
    } cases[] = {
        {0, "id: 0\n\n"},
        {42, "id: 42\n\n"},
        {INT64_MAX, "id: 9223372036854775807\n\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t wl = strlen(cases[i].want);
        char buf[64];
        size_t n = sse_encode_id(cases[i].id, buf, sizeof buf);
        CHECK_MEM(buf, n, cases[i].want);
        char *exact = malloc(wl);
        n = sse_encode_id(cases[i].id, exact, wl);
        CHECK_MEM(exact, n, cases[i].want);
        free(exact);
        for (size_t cap = 0; cap < wl; cap++) {
            char *small = malloc(cap ? cap : 1);
            CHECK_INT(sse_encode_id(cases[i].id, small, cap), 0);
            free(small);
        }
        struct ref_event r;
        ref_decode(buf, n, &r);
        CHECK_INT(r.dispatched, 0);
        CHECK_INT(r.bad_lines, 0);
        CHECK(r.has_id);
        CHECK(strlen(r.id) == wl - 6 && memcmp(r.id, cases[i].want + 4, wl - 6) == 0);
    }
}

static void test_heartbeat(void)
{
    CHECK_INT(SSE_HEARTBEAT_LEN, strlen(SSE_HEARTBEAT));
    CHECK(SSE_HEARTBEAT[0] == ':');
    CHECK(memcmp(&SSE_HEARTBEAT[SSE_HEARTBEAT_LEN - 2], "\n\n", 2) == 0);
    struct ref_event r;
    ref_decode(SSE_HEARTBEAT, SSE_HEARTBEAT_LEN, &r);
    CHECK_INT(r.dispatched, 0);
    CHECK_INT(r.bad_lines, 0);
}

/* Several events back to back decode as several events. */
static void test_concatenated(void)
{
    char stream[512];
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        struct sse_event ev = {.id = i, .data = "x\r\ny", .data_len = 4};
        size_t l = sse_event_len(&ev);
        CHECK_INT(sse_encode_event(&ev, stream + n), l);
        n += l;
    }
    struct ref_event r;
    ref_decode(stream, n, &r);
    CHECK_INT(r.dispatched, 3);
    CHECK(strcmp(r.id, "2") == 0);
    CHECK_MEM(r.data, r.data_len, "x\ny");
}

/* A row written by SQL may hold any bytes: what goes out is valid UTF-8,
 * each invalid sequence written as U+FFFD, in the event type and the data. */
static void test_invalid_utf8_repaired(void)
{
    struct sse_event ev = {.id = 7, .event = "up\xff", .event_len = 3,
                           .data = "a\xc3\r\xed\xa0\x80z", .data_len = 7};
    char *out;
    size_t n = encode(&ev, &out);
    CHECK_MEM(out, n, "id: 7\nevent: up\xef\xbf\xbd\ndata: a\xef\xbf\xbd\n"
                      "data: \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz\n\n");
    free(out);
}

int main(void)
{
    RUN(test_frames);
    RUN(test_empty_data_at_guard);
    RUN(test_exhaustive_line_breaks);
    RUN(test_random_len_and_round_trip);
    RUN(test_len_arithmetic);
    RUN(test_long_data);
    RUN(test_retry);
    RUN(test_retry_decodes_as_no_event);
    RUN(test_id_only);
    RUN(test_heartbeat);
    RUN(test_concatenated);
    RUN(test_invalid_utf8_repaired);
    TEST_MAIN_END();
}
