/* libFuzzer target for ws_handshake. Input: byte 0 selects options (bit 0:
 * a small head limit of 16 + 4 * (byte 0 >> 1) bytes instead of
 * LIMITS_WS_HANDSHAKE_MAX; bit 1: a deflate policy with a smaller client
 * window, forced client_no_context_takeover and a 15-bit server minimum),
 * byte 1 seeds the split points, the rest is the request bytes.
 * Invariants:
 *   - the parse result is NEED_MORE, INVALID with an error that has a 400 or
 *     426 answer, or a head length <= len and <= the limit;
 *   - a simple reference that splits the bytes into lines finds the same end
 *     of head (or its absence) as the resumable scanner;
 *   - parsing whole, split in two at a data-derived point, and byte by byte
 *     gives the same verdict and the same slices;
 *   - every slice of a valid head lies inside the head, the 101 and error
 *     responses can be written and end with a blank line;
 *   - the extension negotiation, run on the parsed values and on the raw
 *     input, only accepts within RFC 7692 ranges, and its own response,
 *     read back as an offer, is accepted with the same parameters. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "input_limits.h"
#include "ws_handshake.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reference scan: the end of the first empty line (LF, optionally after
 * one CR) within buf[0..limit), or 0. */
static size_t reference_end(const char *buf, size_t limit)
{
    size_t start = 0;
    for (size_t i = 0; i < limit; i++) {
        if (buf[i] != '\n')
            continue;
        size_t line_len = i - start;
        if (line_len == 0 || (line_len == 1 && buf[start] == '\r'))
            return i + 1;
        start = i + 1;
    }
    return 0;
}

static bool same_slice(struct ws_handshake_slice a, struct ws_handshake_slice b)
{
    return a.ptr == b.ptr && a.len == b.len;
}

static bool same_verdict(long ra, const struct ws_handshake_req *a, long rb,
                         const struct ws_handshake_req *b)
{
    if (ra != rb)
        return false;
    if (ra == WS_HANDSHAKE_NEED_MORE)
        return true;
    if (ra == WS_HANDSHAKE_INVALID)
        return a->err == b->err;
    if (a->protocol_count != b->protocol_count || a->extension_count != b->extension_count)
        return false;
    for (size_t i = 0; i < a->protocol_count; i++)
        if (!same_slice(a->protocols[i], b->protocols[i]))
            return false;
    for (size_t i = 0; i < a->extension_count; i++)
        if (!same_slice(a->extensions[i], b->extensions[i]))
            return false;
    return a->head_len == b->head_len && a->err == b->err && same_slice(a->target, b->target) &&
           same_slice(a->path, b->path) && same_slice(a->query, b->query) &&
           same_slice(a->host, b->host) && same_slice(a->key, b->key) &&
           same_slice(a->origin, b->origin);
}

static void check_inside(struct ws_handshake_slice s, const char *head, size_t head_len)
{
    if (s.ptr == NULL) {
        CHECK(s.len == 0);
        return;
    }
    CHECK(s.ptr >= head && s.len <= head_len && (size_t)(s.ptr - head) <= head_len - s.len);
}

static void check_pmd(const struct ws_handshake_slice *values, size_t n,
                      const struct ws_handshake_pmd_policy *policy)
{
    struct ws_handshake_pmd pmd;
    bool ok = ws_handshake_negotiate_deflate(values, n, policy, &pmd);
    CHECK(ok == pmd.is_accepted);
    if (!ok) {
        CHECK(pmd.response[0] == '\0');
        return;
    }
    CHECK(pmd.server_no_context_takeover);
    CHECK(pmd.server_max_window_bits >= 9 && pmd.server_max_window_bits <= 15);
    CHECK(pmd.client_max_window_bits >= 8 && pmd.client_max_window_bits <= 15);
    size_t rlen = strlen(pmd.response);
    CHECK(rlen > 0 && rlen < WS_HANDSHAKE_PMD_RESPONSE_MAX);
    CHECK(strncmp(pmd.response, "permessage-deflate; server_no_context_takeover", 46) == 0);
    /* Our response is itself a valid offer, accepted with the same terms. */
    struct ws_handshake_slice again = {pmd.response, rlen};
    struct ws_handshake_pmd pmd2;
    CHECK(ws_handshake_negotiate_deflate(&again, 1, policy, &pmd2));
    CHECK(pmd2.server_max_window_bits == pmd.server_max_window_bits);
    CHECK(pmd2.client_max_window_bits == pmd.client_max_window_bits);
    CHECK(pmd2.client_no_context_takeover == pmd.client_no_context_takeover);
    CHECK(strcmp(pmd2.response, pmd.response) == 0);
}

static void check_valid(const char *buf, long r, const struct ws_handshake_req *req,
                        const struct ws_handshake_pmd_policy *policy)
{
    size_t head_len = (size_t)r;
    CHECK(req->head_len == head_len && req->err == WS_HANDSHAKE_OK);
    CHECK(head_len >= 4 && memcmp(buf + head_len - 4, "\r\n\r\n", 4) == 0);
    check_inside(req->target, buf, head_len);
    check_inside(req->path, buf, head_len);
    check_inside(req->query, buf, head_len);
    check_inside(req->host, buf, head_len);
    check_inside(req->key, buf, head_len);
    check_inside(req->origin, buf, head_len);
    CHECK(req->target.len > 0 && req->target.ptr[0] == '/');
    CHECK(req->path.ptr == req->target.ptr && req->path.len <= req->target.len);
    CHECK(req->host.len > 0 && req->key.len == 24);
    CHECK(req->protocol_count <= WS_HANDSHAKE_PROTOCOLS_MAX);
    CHECK(req->extension_count <= WS_HANDSHAKE_EXTENSION_HEADERS_MAX);
    for (size_t i = 0; i < req->protocol_count; i++) {
        check_inside(req->protocols[i], buf, head_len);
        CHECK(req->protocols[i].len > 0);
    }
    for (size_t i = 0; i < req->extension_count; i++)
        check_inside(req->extensions[i], buf, head_len);

    static const char *const supported[] = {"chat", "superchat", "litepush"};
    struct ws_handshake_slice proto;
    bool has_proto = ws_handshake_select_protocol(req, supported, 3, &proto);
    if (has_proto) {
        bool found = false;
        for (size_t i = 0; i < req->protocol_count; i++)
            found = found || same_slice(req->protocols[i], proto);
        CHECK(found);
    }
    struct ws_handshake_pmd pmd;
    ws_handshake_negotiate_deflate(req->extensions, req->extension_count, policy, &pmd);
    check_pmd(req->extensions, req->extension_count, policy);

    char out[1024];
    long n =
        ws_handshake_write_101(out, sizeof out, req, has_proto ? proto.ptr : NULL,
                               has_proto ? proto.len : 0, pmd.is_accepted ? pmd.response : NULL);
    CHECK(n > 0 && (size_t)n < sizeof out && out[n] == '\0');
    CHECK(memcmp(out + n - 4, "\r\n\r\n", 4) == 0);
    char accept[WS_HANDSHAKE_ACCEPT_LEN + 1];
    ws_handshake_accept(req->key.ptr, req->key.len, accept);
    CHECK(strlen(accept) == WS_HANDSHAKE_ACCEPT_LEN && strstr(out, accept) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t opt = data[0], seed = data[1];
    const char *buf = (const char *)data + 2;
    size_t len = size - 2;
    size_t max_len = (opt & 1) ? 16 + 4 * (size_t)(opt >> 1) : LIMITS_WS_HANDSHAKE_MAX;
    struct ws_handshake_pmd_policy policy = {0};
    if (opt & 2)
        policy = (struct ws_handshake_pmd_policy){10 + (seed & 7), true, 15};
    const struct ws_handshake_pmd_policy *pol = (opt & 2) ? &policy : NULL;

    /* Whole. */
    struct ws_handshake_state st = {0};
    struct ws_handshake_req whole;
    long r = ws_handshake_parse(&st, buf, len, max_len, &whole);
    CHECK(r == WS_HANDSHAKE_NEED_MORE || r == WS_HANDSHAKE_INVALID || r > 0);

    /* Against the reference scan. */
    size_t limit = len < max_len ? len : max_len;
    size_t ref = reference_end(buf, limit);
    if (ref == 0) {
        if (len < max_len)
            CHECK(r == WS_HANDSHAKE_NEED_MORE);
        else
            CHECK(r == WS_HANDSHAKE_INVALID && whole.err == WS_HANDSHAKE_ERR_TOO_LARGE);
    } else {
        CHECK(r == (long)ref ||
              (r == WS_HANDSHAKE_INVALID && whole.err != WS_HANDSHAKE_ERR_TOO_LARGE));
    }
    if (r == WS_HANDSHAKE_INVALID) {
        int status = ws_handshake_status(whole.err);
        CHECK(status == 400 || status == 426);
        char out[512];
        long n =
            ws_handshake_write_error(out, sizeof out, status, ws_handshake_strerror(whole.err), 0);
        CHECK(n > 0 && memcmp(out, "HTTP/1.1 4", 10) == 0);
    } else if (r > 0) {
        CHECK((size_t)r <= len && (size_t)r <= max_len);
        check_valid(buf, r, &whole, pol);
    }

    /* Split in two at a data-derived point. */
    size_t split = (seed * 131u + size) % (len + 1);
    struct ws_handshake_state st2 = {0};
    struct ws_handshake_req part;
    long r2 = ws_handshake_parse(&st2, buf, split, max_len, &part);
    CHECK(r2 == WS_HANDSHAKE_NEED_MORE || (r2 > 0 && (size_t)r2 <= split) ||
          r2 == WS_HANDSHAKE_INVALID);
    if (r2 == WS_HANDSHAKE_NEED_MORE)
        r2 = ws_handshake_parse(&st2, buf, len, max_len, &part);
    CHECK(same_verdict(r, &whole, r2, &part));

    /* Byte by byte (bounded, to keep runs fast). */
    if (len <= 4096) {
        struct ws_handshake_state st3 = {0};
        struct ws_handshake_req step;
        long r3 = WS_HANDSHAKE_NEED_MORE;
        for (size_t i = 0; i <= len && r3 == WS_HANDSHAKE_NEED_MORE; i++) {
            r3 = ws_handshake_parse(&st3, buf, i, max_len, &step);
            CHECK(st3.scanned <= i);
        }
        CHECK(same_verdict(r, &whole, r3, &step));
    }

    /* The offer parser on the raw bytes: whole, and in three values. */
    struct ws_handshake_slice values[3];
    size_t a = split, b = split + (len - split) / 2;
    values[0] = (struct ws_handshake_slice){buf, a};
    values[1] = (struct ws_handshake_slice){buf + a, b - a};
    values[2] = (struct ws_handshake_slice){buf + b, len - b};
    struct ws_handshake_slice all = {buf, len};
    check_pmd(&all, 1, pol);
    check_pmd(values, 3, pol);
    return 0;
}
