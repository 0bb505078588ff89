/* Unit tests for fcgi_record: FCGI_STDOUT headers (FastCGI spec §3.3:
 * version 1, type, big-endian requestId and contentLength, padding 0,
 * reserved 0) for boundary ids and lengths, and the end of a response
 * (§5.3 an empty FCGI_STDOUT closes the stream; §5.5 FCGI_END_REQUEST with
 * an 8-byte body: appStatus B3..B0, protocolStatus, 3 reserved bytes).
 * The numbers come from the spec, not from libfcgi's header. Each output
 * buffer is surrounded by canary bytes to catch a write out of bounds. */
#include <stdint.h>

#include "fcgi_record.h"
#include "test.h"

/* FastCGI spec §8 */
#define SPEC_VERSION_1 1
#define SPEC_END_REQUEST 3
#define SPEC_STDOUT 6
#define SPEC_REQUEST_COMPLETE 0
#define CANARY 0xA5

static void test_sizes(void)
{
    CHECK_INT(FCGI_RECORD_HEADER_LEN, 8);
    CHECK_INT(FCGI_RECORD_CONTENT_MAX, 65535);
    CHECK_INT(FCGI_RECORD_END_REQUEST_LEN, 8 + 8 + 8);
}

struct header_case {
    uint16_t request_id;
    uint16_t content_len;
    uint8_t want[8];
};

static void test_stdout_header(void)
{
    static const struct header_case cases[] = {
        {1, 0, {1, 6, 0x00, 0x01, 0x00, 0x00, 0, 0}},
        {1, 1, {1, 6, 0x00, 0x01, 0x00, 0x01, 0, 0}},
        {0, 0, {1, 6, 0x00, 0x00, 0x00, 0x00, 0, 0}},
        {0x0102, 0x0304, {1, 6, 0x01, 0x02, 0x03, 0x04, 0, 0}},
        {0x00FF, 0x00FF, {1, 6, 0x00, 0xFF, 0x00, 0xFF, 0, 0}},
        {0x0100, 0x0100, {1, 6, 0x01, 0x00, 0x01, 0x00, 0, 0}},
        {0xFF00, 0x8000, {1, 6, 0xFF, 0x00, 0x80, 0x00, 0, 0}},
        {0xFFFF, 0xFFFF, {1, 6, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0}},
        {7, FCGI_RECORD_CONTENT_MAX, {1, 6, 0x00, 0x07, 0xFF, 0xFF, 0, 0}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t buf[FCGI_RECORD_HEADER_LEN + 2];
        memset(buf, CANARY, sizeof buf);
        fcgi_record_stdout_header(buf + 1, cases[i].request_id, cases[i].content_len);
        CHECK(memcmp(buf + 1, cases[i].want, 8) == 0);
        CHECK_INT(buf[0], CANARY);
        CHECK_INT(buf[FCGI_RECORD_HEADER_LEN + 1], CANARY);
    }
    /* Every id and length round-trips through the big-endian fields. */
    for (uint32_t v = 0; v <= 0xFFFF; v++) {
        uint8_t h[FCGI_RECORD_HEADER_LEN];
        fcgi_record_stdout_header(h, (uint16_t)v, (uint16_t)(0xFFFF - v));
        if ((uint32_t)(h[2] << 8 | h[3]) != v || (uint32_t)(h[4] << 8 | h[5]) != 0xFFFF - v ||
            h[0] != SPEC_VERSION_1 || h[1] != SPEC_STDOUT || h[6] != 0 || h[7] != 0) {
            CHECK(0);
            fprintf(stderr, "  header for %u\n", v);
            break;
        }
    }
}

/* A reader of FastCGI records as a web server would parse them. */
struct record {
    int version, type, request_id, content_len, padding_len;
    const uint8_t *content;
};

static size_t read_record(const uint8_t *p, size_t len, struct record *r)
{
    if (len < 8)
        return 0;
    *r = (struct record){p[0], p[1], p[2] << 8 | p[3], p[4] << 8 | p[5], p[6], p + 8};
    size_t total = 8 + (size_t)r->content_len + (size_t)r->padding_len;
    return total <= len ? total : 0;
}

static void test_end_request(void)
{
    static const uint16_t ids[] = {0, 1, 2, 0x0102, 0x00FF, 0xFF00, 0xFFFF};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        uint8_t buf[FCGI_RECORD_END_REQUEST_LEN + 2];
        memset(buf, CANARY, sizeof buf);
        uint8_t *out = buf + 1;
        fcgi_record_end_request(out, ids[i]);
        CHECK_INT(buf[0], CANARY);
        CHECK_INT(buf[FCGI_RECORD_END_REQUEST_LEN + 1], CANARY);
        uint8_t hi = (uint8_t)(ids[i] >> 8), lo = (uint8_t)ids[i];
        const uint8_t want[FCGI_RECORD_END_REQUEST_LEN] = {
            /* FCGI_STDOUT, contentLength 0: end of the stdout stream */
            SPEC_VERSION_1, SPEC_STDOUT, hi, lo, 0, 0, 0, 0,
            /* FCGI_END_REQUEST, contentLength 8 */
            SPEC_VERSION_1, SPEC_END_REQUEST, hi, lo, 0, 8, 0, 0,
            /* appStatus 0 (big-endian B3..B0), protocolStatus, reserved[3] */
            0, 0, 0, 0, SPEC_REQUEST_COMPLETE, 0, 0, 0};
        CHECK(memcmp(out, want, sizeof want) == 0);

        /* The same bytes, read back as records. */
        struct record r;
        size_t n = read_record(out, FCGI_RECORD_END_REQUEST_LEN, &r);
        CHECK_INT(n, 8);
        CHECK_INT(r.type, SPEC_STDOUT);
        CHECK_INT(r.content_len, 0);
        CHECK_INT(r.request_id, ids[i]);
        size_t m = read_record(out + n, FCGI_RECORD_END_REQUEST_LEN - n, &r);
        CHECK_INT(m, 16);
        CHECK_INT(n + m, FCGI_RECORD_END_REQUEST_LEN);
        CHECK_INT(r.version, SPEC_VERSION_1);
        CHECK_INT(r.type, SPEC_END_REQUEST);
        CHECK_INT(r.request_id, ids[i]);
        CHECK_INT(r.content_len, 8);
        CHECK_INT(r.padding_len, 0);
        if (m == 16) {
            uint32_t app_status = (uint32_t)r.content[0] << 24 | (uint32_t)r.content[1] << 16 |
                                  (uint32_t)r.content[2] << 8 | r.content[3];
            CHECK_INT(app_status, 0);
            CHECK_INT(r.content[4], SPEC_REQUEST_COMPLETE);
            CHECK(r.content[5] == 0 && r.content[6] == 0 && r.content[7] == 0);
        }
    }
}

/* A response as the event loop writes it: records with content, then the end. */
static void test_stream_of_records(void)
{
    uint8_t buf[3 * (FCGI_RECORD_HEADER_LEN + 5) + FCGI_RECORD_END_REQUEST_LEN];
    size_t len = 0;
    for (int i = 0; i < 3; i++) {
        fcgi_record_stdout_header(buf + len, 9, 5);
        len += FCGI_RECORD_HEADER_LEN;
        memcpy(buf + len, "hello", 5);
        len += 5;
    }
    fcgi_record_end_request(buf + len, 9);
    len += FCGI_RECORD_END_REQUEST_LEN;
    CHECK_INT(len, sizeof buf);
    size_t off = 0, stdout_bytes = 0;
    int records = 0, ended = 0;
    struct record r;
    size_t n;
    while (off < len && (n = read_record(buf + off, len - off, &r)) > 0) {
        CHECK_INT(r.request_id, 9);
        CHECK(!ended);
        if (r.type == SPEC_STDOUT)
            stdout_bytes += (size_t)r.content_len;
        if (r.type == SPEC_END_REQUEST)
            ended = 1;
        records++;
        off += n;
    }
    CHECK_INT(off, len);
    CHECK_INT(records, 5);
    CHECK_INT(stdout_bytes, 15);
    CHECK(ended);
}

int main(void)
{
    RUN(test_sizes);
    RUN(test_stdout_header);
    RUN(test_end_request);
    RUN(test_stream_of_records);
    TEST_MAIN_END();
}
