/* Unit tests for ws_handshake: RFC 6455 §1.3 and §4.2.1, RFC 7692 §7
 * negotiation, every truncation point, both sides of the size limit. */
#include "test.h"

#include "input_limits.h"
#include "ws_handshake.h"

#define REQ_LINE "GET /ws?channel=news HTTP/1.1\r\n"
#define H_HOST "Host: example.com\r\n"
#define H_UPG "Upgrade: websocket\r\n"
#define H_CONN "Connection: Upgrade\r\n"
#define H_KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define H_VER "Sec-WebSocket-Version: 13\r\n"
#define VALID REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER "\r\n"
#define SLICE(s)                                                                                   \
    {                                                                                              \
        (s), sizeof(s) - 1                                                                         \
    }

/* RFC 6455 §1.2, the example client handshake. */
static const char rfc_request[] = "GET /chat HTTP/1.1\r\n"
                                  "Host: server.example.com\r\n"
                                  "Upgrade: websocket\r\n"
                                  "Connection: Upgrade\r\n"
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                  "Origin: http://example.com\r\n"
                                  "Sec-WebSocket-Protocol: chat, superchat\r\n"
                                  "Sec-WebSocket-Version: 13\r\n"
                                  "\r\n";

static long parse_mem(const char *s, size_t n, size_t max_len, struct ws_handshake_req *req)
{
    struct ws_handshake_state st = {0};
    return ws_handshake_parse(&st, guarded(s, n), n, max_len, req);
}

static long parse_str(const char *s, struct ws_handshake_req *req)
{
    return parse_mem(s, strlen(s), LIMITS_WS_HANDSHAKE_MAX, req);
}

static void test_rfc_accept_vector(void)
{
    /* RFC 6455 §1.3 (SHA-1 checked independently with Python's hashlib). */
    char accept[WS_HANDSHAKE_ACCEPT_LEN + 1];
    ws_handshake_accept("dGhlIHNhbXBsZSBub25jZQ==", 24, accept);
    CHECK_MEM(accept, strlen(accept), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_rfc_request(void)
{
    struct ws_handshake_req req;
    long n = parse_str(rfc_request, &req);
    CHECK_INT(n, strlen(rfc_request));
    CHECK_INT(req.head_len, strlen(rfc_request));
    CHECK_INT(req.err, WS_HANDSHAKE_OK);
    CHECK_MEM(req.target.ptr, req.target.len, "/chat");
    CHECK_MEM(req.path.ptr, req.path.len, "/chat");
    CHECK(req.query.ptr == NULL);
    CHECK_MEM(req.host.ptr, req.host.len, "server.example.com");
    CHECK_MEM(req.origin.ptr, req.origin.len, "http://example.com");
    CHECK_INT(req.protocol_count, 2);
    CHECK_MEM(req.protocols[0].ptr, req.protocols[0].len, "chat");
    CHECK_MEM(req.protocols[1].ptr, req.protocols[1].len, "superchat");
    CHECK_INT(req.extension_count, 0);

    /* RFC 6455 §1.3: the server's answer. */
    const char *supported[] = {"superchat", "chat"};
    struct ws_handshake_slice proto;
    CHECK(ws_handshake_select_protocol(&req, supported, 2, &proto));
    CHECK_MEM(proto.ptr, proto.len, "chat");
    char out[512];
    long len = ws_handshake_write_101(out, sizeof out, &req, proto.ptr, proto.len, NULL);
    CHECK_MEM(out, len,
              "HTTP/1.1 101 Switching Protocols\r\n"
              "Upgrade: websocket\r\n"
              "Connection: Upgrade\r\n"
              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
              "Sec-WebSocket-Protocol: chat\r\n"
              "\r\n");
}

static void test_target_and_query(void)
{
    struct ws_handshake_req req;
    CHECK(parse_str("GET /ws?channel=a&channel=b&lastEventId=7 HTTP/1.1\r\n" H_HOST H_UPG H_CONN
                        H_KEY H_VER "\r\n",
                    &req) > 0);
    CHECK_MEM(req.path.ptr, req.path.len, "/ws");
    CHECK_MEM(req.query.ptr, req.query.len, "channel=a&channel=b&lastEventId=7");
    CHECK_MEM(req.target.ptr, req.target.len, "/ws?channel=a&channel=b&lastEventId=7");

    CHECK(parse_str("GET /ws? HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", &req) > 0);
    CHECK(req.query.ptr != NULL);
    CHECK_INT(req.query.len, 0);
}

static void test_bytes_after_head_are_not_consumed(void)
{
    static const char in[] = VALID "\x81\x85\x37\xfa\x21\x3d";
    struct ws_handshake_req req;
    long n = parse_mem(in, sizeof in - 1, LIMITS_WS_HANDSHAKE_MAX, &req);
    CHECK_INT(n, strlen(VALID));
}

static void test_optional_headers(void)
{
    struct ws_handshake_req req;
    CHECK(parse_str(REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER
                    "X-Forwarded-For: 10.0.0.1\r\n"
                    "X-Forwarded-For: 192.0.2.7, 10.0.0.2\r\n"
                    "Sec-WebSocket-Protocol: a\r\n"
                    "Sec-WebSocket-Protocol: b,  ,c\r\n"
                    "Sec-WebSocket-Extensions: x-foo\r\n"
                    "Sec-WebSocket-Extensions: \r\n"
                    "Sec-WebSocket-Extensions: "
                    "permessage-deflate\r\n"
                    "Origin:\r\n"
                    "\r\n",
                    &req) > 0);
    /* Headers we do not use (X-Forwarded-For) may repeat and are ignored. */
    CHECK_INT(req.protocol_count, 3);
    CHECK_MEM(req.protocols[2].ptr, req.protocols[2].len, "c");
    CHECK_INT(req.extension_count, 2);
    CHECK_MEM(req.extensions[1].ptr, req.extensions[1].len, "permessage-deflate");
    /* An empty Origin is present (non-NULL), not absent. */
    CHECK(req.origin.ptr != NULL);
    CHECK_INT(req.origin.len, 0);

    const char *supported[] = {"c", "b"};
    struct ws_handshake_slice proto;
    CHECK(ws_handshake_select_protocol(&req, supported, 2, &proto));
    CHECK_MEM(proto.ptr, proto.len, "b"); /* the client's preference wins */
    const char *none[] = {"B", "chat"};
    CHECK(!ws_handshake_select_protocol(&req, none, 2, &proto));
    CHECK(proto.ptr == NULL);
}

struct verdict_case {
    const char *head;
    enum ws_handshake_err err; /* WS_HANDSHAKE_OK: accepted */
};

static const struct verdict_case cases[] = {
    /* RFC 6455 §4.2.1 item 3: Upgrade is case-insensitive, may be a list. */
    {REQ_LINE H_HOST "Upgrade: WebSocket\r\n" H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_OK},
    {REQ_LINE H_HOST "UPGRADE:WEBSOCKET\r\n" H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_OK},
    {REQ_LINE H_HOST "Upgrade: h2c, websocket\r\n" H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_OK},
    {REQ_LINE H_HOST "Upgrade: websocket2\r\n" H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_ERR_UPGRADE},
    {REQ_LINE H_HOST "Upgrade: h2c\r\n" H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_ERR_UPGRADE},
    {REQ_LINE H_HOST H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_ERR_UPGRADE},
    /* Item 4: Connection is a token list containing "upgrade". */
    {REQ_LINE H_HOST H_UPG "Connection: keep-alive, Upgrade\r\n" H_KEY H_VER "\r\n",
     WS_HANDSHAKE_OK},
    {REQ_LINE H_HOST H_UPG "Connection: upgrade,keep-alive\r\n" H_KEY H_VER "\r\n",
     WS_HANDSHAKE_OK},
    {REQ_LINE H_HOST H_UPG "Connection: ,, UPGRADE ,\r\n" H_KEY H_VER "\r\n", WS_HANDSHAKE_OK},
    {REQ_LINE H_HOST H_UPG "Connection: keep-alive\r\nConnection: Upgrade\r\n" H_KEY H_VER "\r\n",
     WS_HANDSHAKE_OK},
    {REQ_LINE H_HOST H_UPG "Connection: keep-alive\r\n" H_KEY H_VER "\r\n",
     WS_HANDSHAKE_ERR_CONNECTION},
    {REQ_LINE H_HOST H_UPG "Connection: upgrades\r\n" H_KEY H_VER "\r\n",
     WS_HANDSHAKE_ERR_CONNECTION},
    {REQ_LINE H_HOST H_UPG "Connection: keep-alive upgrade\r\n" H_KEY H_VER "\r\n",
     WS_HANDSHAKE_ERR_CONNECTION},
    /* Item 6 and §4.4: only version 13; 426 otherwise. */
    {REQ_LINE H_HOST H_UPG H_CONN H_KEY "Sec-WebSocket-Version: 12\r\n\r\n",
     WS_HANDSHAKE_ERR_VERSION},
    {REQ_LINE H_HOST H_UPG H_CONN H_KEY "Sec-WebSocket-Version: 013\r\n\r\n",
     WS_HANDSHAKE_ERR_VERSION},
    {REQ_LINE H_HOST H_UPG H_CONN H_KEY "Sec-WebSocket-Version: 13, 8\r\n\r\n",
     WS_HANDSHAKE_ERR_VERSION},
    {REQ_LINE H_HOST H_UPG H_CONN H_KEY "\r\n", WS_HANDSHAKE_ERR_VERSION},
    {REQ_LINE H_HOST H_UPG H_CONN H_KEY "Sec-WebSocket-Version: \t13 \r\n\r\n", WS_HANDSHAKE_OK},
    /* §11.3.5: the version header must not repeat. */
    {REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER H_VER "\r\n", WS_HANDSHAKE_ERR_VERSION_REPEATED},
    /* Item 5: the key decodes to exactly 16 bytes and is sent once. */
    {REQ_LINE H_HOST H_UPG H_CONN H_VER "\r\n", WS_HANDSHAKE_ERR_KEY},
    {REQ_LINE H_HOST H_UPG H_CONN "Sec-WebSocket-Key:\r\n" H_VER "\r\n", WS_HANDSHAKE_ERR_KEY},
    {REQ_LINE H_HOST H_UPG H_CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZQ==\r\n" H_VER "\r\n",
     WS_HANDSHAKE_ERR_KEY},
    {REQ_LINE H_HOST H_UPG H_CONN "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\n" H_VER "\r\n",
     WS_HANDSHAKE_ERR_KEY}, /* 15 bytes */
    {REQ_LINE H_HOST H_UPG H_CONN "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=\r\n" H_VER "\r\n",
     WS_HANDSHAKE_ERR_KEY}, /* 17 bytes */
    {REQ_LINE H_HOST H_UPG H_CONN "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n" H_VER "\r\n",
     WS_HANDSHAKE_OK}, /* 16 bytes */
    {REQ_LINE H_HOST H_UPG H_CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ!=\r\n" H_VER "\r\n",
     WS_HANDSHAKE_ERR_KEY},
    {REQ_LINE H_HOST H_UPG H_CONN "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==AAAA\r\n" H_VER
                                  "\r\n",
     WS_HANDSHAKE_ERR_KEY},
    {REQ_LINE H_HOST H_UPG H_CONN H_KEY H_KEY H_VER "\r\n", WS_HANDSHAKE_ERR_KEY},
    /* Item 1 and RFC 7230 §3.1.1: GET, case-sensitive; HTTP/1.1 or later. */
    {"POST /ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_ERR_METHOD},
    {"get /ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_ERR_METHOD},
    {"GET /ws HTTP/1.0\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_ERR_HTTP_VERSION},
    {"GET /ws HTTP/0.9\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_ERR_HTTP_VERSION},
    {"GET /ws HTTP/1.1x\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_ERR_HTTP_VERSION},
    {"GET /ws http/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_ERR_HTTP_VERSION},
    {"GET /ws HTTP/1.2\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_OK},
    {"GET /ws HTTP/2.0\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_OK},
    {"GET  /ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_ERR_REQUEST_LINE},
    {"GET /ws HTTP/1.1 \r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_ERR_REQUEST_LINE},
    {"GET /ws\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_ERR_REQUEST_LINE},
    {"G(T /ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_ERR_REQUEST_LINE},
    /* Targets: origin-form, printable, no fragment. */
    {"GET * HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_ERR_TARGET},
    {"GET http://example.com/ws HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n",
     WS_HANDSHAKE_ERR_TARGET},
    {"GET /ws#top HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_ERR_TARGET},
    {"GET /w\x80s HTTP/1.1\r\n" H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_ERR_TARGET},
    /* Item 2 and RFC 7230 §5.4: exactly one non-empty Host. */
    {REQ_LINE H_UPG H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_ERR_HOST},
    {REQ_LINE "Host: \r\n" H_UPG H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_ERR_HOST},
    {REQ_LINE H_HOST H_HOST H_UPG H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_ERR_HOST},
    {REQ_LINE "hOsT:example.com:8080\r\n" H_UPG H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_OK},
    /* RFC 7230 §3.5: CRLF only; bare CR is invalid. */
    {"GET /ws HTTP/1.1\nHost: a\nUpgrade: websocket\nConnection: Upgrade\n\n",
     WS_HANDSHAKE_ERR_LINE_ENDING},
    {REQ_LINE "Host: example.com\n" H_UPG H_CONN H_KEY H_VER "\r\n", WS_HANDSHAKE_ERR_LINE_ENDING},
    {REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER "\n", WS_HANDSHAKE_ERR_LINE_ENDING},
    {REQ_LINE "Host: exa\rmple.com\r\n" H_UPG H_CONN H_KEY H_VER "\r\n",
     WS_HANDSHAKE_ERR_LINE_ENDING},
    {"\r\n" VALID, WS_HANDSHAKE_ERR_REQUEST_LINE}, /* RFC 7230 §3.5 SHOULD; see NOTES */
    /* RFC 7230 §3.2.4: no obs-fold, no space before the colon. */
    {REQ_LINE H_HOST H_UPG H_CONN " keep-alive\r\n" H_KEY H_VER "\r\n",
     WS_HANDSHAKE_ERR_HEADER_SYNTAX},
    {REQ_LINE "Host : example.com\r\n" H_UPG H_CONN H_KEY H_VER "\r\n",
     WS_HANDSHAKE_ERR_HEADER_SYNTAX},
    {REQ_LINE H_HOST "No colon here\r\n" H_UPG H_CONN H_KEY H_VER "\r\n",
     WS_HANDSHAKE_ERR_HEADER_SYNTAX},
    {REQ_LINE H_HOST ": empty name\r\n" H_UPG H_CONN H_KEY H_VER "\r\n",
     WS_HANDSHAKE_ERR_HEADER_SYNTAX},
    {REQ_LINE H_HOST "X-Junk: a\x01z\r\n" H_UPG H_CONN H_KEY H_VER "\r\n",
     WS_HANDSHAKE_ERR_HEADER_SYNTAX},
    {REQ_LINE H_HOST "X-Junk: a\x7fz\r\n" H_UPG H_CONN H_KEY H_VER "\r\n",
     WS_HANDSHAKE_ERR_HEADER_SYNTAX},
    {REQ_LINE H_HOST "X-Utf8: caf\xc3\xa9\tok\r\n" H_UPG H_CONN H_KEY H_VER "\r\n",
     WS_HANDSHAKE_OK},
    /* No body may precede the frames. */
    {REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER "Content-Length: 5\r\n\r\n", WS_HANDSHAKE_ERR_BODY},
    {REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER "Content-Length: \r\n\r\n", WS_HANDSHAKE_ERR_BODY},
    {REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER "Content-Length: 0\r\n\r\n", WS_HANDSHAKE_OK},
    {REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER "Transfer-Encoding: chunked\r\n\r\n",
     WS_HANDSHAKE_ERR_BODY},
    /* Origin once; subprotocols are tokens. */
    {REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER "Origin: a\r\nOrigin: b\r\n\r\n",
     WS_HANDSHAKE_ERR_ORIGIN},
    {REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER "Sec-WebSocket-Protocol: chat, su/per\r\n\r\n",
     WS_HANDSHAKE_ERR_PROTOCOL},
    {REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER "Sec-WebSocket-Protocol: a b\r\n\r\n",
     WS_HANDSHAKE_ERR_PROTOCOL},
    {REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER
     "Sec-WebSocket-Protocol: 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16\r\n\r\n",
     WS_HANDSHAKE_OK},
    {REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER
     "Sec-WebSocket-Protocol: 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16\r\n"
     "Sec-WebSocket-Protocol: 17\r\n\r\n",
     WS_HANDSHAKE_ERR_PROTOCOL},
    {REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER "Sec-WebSocket-Extensions: a\r\n"
                                              "Sec-WebSocket-Extensions: a\r\n"
                                              "Sec-WebSocket-Extensions: a\r\n"
                                              "Sec-WebSocket-Extensions: a\r\n"
                                              "Sec-WebSocket-Extensions: a\r\n"
                                              "Sec-WebSocket-Extensions: a\r\n"
                                              "Sec-WebSocket-Extensions: a\r\n"
                                              "Sec-WebSocket-Extensions: a\r\n"
                                              "Sec-WebSocket-Extensions: a\r\n\r\n",
     WS_HANDSHAKE_ERR_EXTENSIONS},
};

static void test_verdict_table(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ws_handshake_req req;
        long n = parse_str(cases[i].head, &req);
        long want =
            cases[i].err == WS_HANDSHAKE_OK ? (long)strlen(cases[i].head) : WS_HANDSHAKE_INVALID;
        if (n != want || (n < 0 && req.err != cases[i].err)) {
            fprintf(stderr, "case %zu: got %ld err %d (%s), want %ld err %d\n", i, n, (int)req.err,
                    ws_handshake_strerror(req.err), want, (int)cases[i].err);
            CHECK(0);
        }
    }
}

static void test_status_mapping(void)
{
    struct ws_handshake_req req;
    CHECK_INT(
        parse_str(REQ_LINE H_HOST H_UPG H_CONN H_KEY "Sec-WebSocket-Version: 12\r\n\r\n", &req),
        WS_HANDSHAKE_INVALID);
    CHECK_INT(ws_handshake_status(req.err), 426);
    CHECK_INT(parse_str(REQ_LINE H_HOST H_UPG H_CONN H_VER "\r\n", &req), WS_HANDSHAKE_INVALID);
    CHECK_INT(ws_handshake_status(req.err), 400);
    /* Every error has a one-line reason and a 400 or 426. */
    for (int e = WS_HANDSHAKE_ERR_TOO_LARGE; e <= WS_HANDSHAKE_ERR_EXTENSIONS; e++) {
        const char *r = ws_handshake_strerror((enum ws_handshake_err)e);
        CHECK(r != NULL && r[0] != '\0' && strchr(r, '\n') == NULL);
        int s = ws_handshake_status((enum ws_handshake_err)e);
        CHECK(s == (e == WS_HANDSHAKE_ERR_VERSION ? 426 : 400));
    }
    CHECK_INT(ws_handshake_status(WS_HANDSHAKE_OK), 0);
}

static void test_every_truncation_needs_more(void)
{
    const char *in = rfc_request;
    size_t len = strlen(in);
    for (size_t i = 0; i < len; i++) {
        struct ws_handshake_req req;
        CHECK_INT(parse_mem(in, i, LIMITS_WS_HANDSHAKE_MAX, &req), WS_HANDSHAKE_NEED_MORE);
    }
}

static void test_incremental_feed_never_rescans(void)
{
    const char *in = rfc_request;
    size_t len = strlen(in);
    struct ws_handshake_state st = {0};
    struct ws_handshake_req req;
    for (size_t i = 0; i < len; i++) {
        /* Each call sees a fresh copy ending at a guard page. */
        long n = ws_handshake_parse(&st, guarded(in, i), i, LIMITS_WS_HANDSHAKE_MAX, &req);
        CHECK_INT(n, WS_HANDSHAKE_NEED_MORE);
        CHECK_INT(st.scanned, i); /* everything seen is remembered */
    }
    CHECK_INT(ws_handshake_parse(&st, guarded(in, len), len, LIMITS_WS_HANDSHAKE_MAX, &req), len);
    CHECK_MEM(req.host.ptr, req.host.len, "server.example.com");

    /* Chunks of 7 bytes, as a socket might deliver them. */
    struct ws_handshake_state st2 = {0};
    long n = WS_HANDSHAKE_NEED_MORE;
    for (size_t i = 7; n == WS_HANDSHAKE_NEED_MORE; i += 7) {
        size_t have = i < len ? i : len;
        n = ws_handshake_parse(&st2, guarded(in, have), have, LIMITS_WS_HANDSHAKE_MAX, &req);
    }
    CHECK_INT(n, len);
}

/* A valid head of exactly `total` bytes, padded with an X-Pad header. */
static char *padded_head(size_t total)
{
    static const char base[] = REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER "X-Pad: ";
    char *s = malloc(total + 1);
    size_t fixed = strlen(base) + 4; /* "\r\n\r\n" */
    memcpy(s, base, strlen(base));
    memset(s + strlen(base), 'p', total - fixed);
    memcpy(s + total - 4, "\r\n\r\n", 5);
    return s;
}

static void test_size_limit_both_sides(void)
{
    struct ws_handshake_req req;
    size_t max = LIMITS_WS_HANDSHAKE_MAX;
    char *at = padded_head(max);
    CHECK_INT(parse_mem(at, max, max, &req), max);
    char *over = padded_head(max + 1);
    CHECK_INT(parse_mem(over, max + 1, max, &req), WS_HANDSHAKE_INVALID);
    CHECK_INT(req.err, WS_HANDSHAKE_ERR_TOO_LARGE);
    /* Without a blank line: max - 1 bytes may still complete, max may not. */
    CHECK_INT(parse_mem(over, max - 1, max, &req), WS_HANDSHAKE_NEED_MORE);
    CHECK_INT(parse_mem(over, max, max, &req), WS_HANDSHAKE_INVALID);
    CHECK_INT(req.err, WS_HANDSHAKE_ERR_TOO_LARGE);
    /* Incrementally, the verdict arrives once max bytes are in. */
    struct ws_handshake_state st = {0};
    CHECK_INT(ws_handshake_parse(&st, guarded(over, 100), 100, max, &req), WS_HANDSHAKE_NEED_MORE);
    CHECK_INT(ws_handshake_parse(&st, guarded(over, max + 1), max + 1, max, &req),
              WS_HANDSHAKE_INVALID);
    CHECK_INT(req.err, WS_HANDSHAKE_ERR_TOO_LARGE);
    /* A tiny limit applies the same way. */
    CHECK_INT(parse_mem(rfc_request, strlen(rfc_request), 10, &req), WS_HANDSHAKE_INVALID);
    CHECK_INT(parse_mem(rfc_request, 0, 0, &req), WS_HANDSHAKE_INVALID);
    free(at);
    free(over);
}

static void test_write_101_plain_and_extensions(void)
{
    struct ws_handshake_req req;
    CHECK(parse_str(VALID, &req) > 0);
    static const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                               "\r\n";
    char out[512];
    long n = ws_handshake_write_101(out, sizeof out, &req, NULL, 0, NULL);
    CHECK_MEM(out, n, want);
    /* Exactly enough room (the NUL included), then one byte less. */
    CHECK_INT(ws_handshake_write_101(out, sizeof want, &req, NULL, 0, NULL), sizeof want - 1);
    CHECK_INT(ws_handshake_write_101(out, sizeof want - 1, &req, NULL, 0, NULL), -1);
    CHECK_INT(ws_handshake_write_101(out, 0, &req, NULL, 0, NULL), -1);

    n = ws_handshake_write_101(out, sizeof out, &req, NULL, 0,
                               "permessage-deflate; server_no_context_takeover");
    CHECK_MEM(out, n,
              "HTTP/1.1 101 Switching Protocols\r\n"
              "Upgrade: websocket\r\n"
              "Connection: Upgrade\r\n"
              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
              "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"
              "\r\n");
    /* Nothing we are handed may split the response. */
    CHECK_INT(ws_handshake_write_101(out, sizeof out, &req, "a\r\nX: y", 7, NULL), -1);
    CHECK_INT(ws_handshake_write_101(out, sizeof out, &req, NULL, 0, "x\nSet-Cookie: a"), -1);
}

static void test_write_error(void)
{
    char out[512];
    long n = ws_handshake_write_error(out, sizeof out, 400, "Sec-WebSocket-Key missing", 0);
    CHECK_MEM(out, n,
              "HTTP/1.1 400 Bad Request\r\n"
              "Content-Type: text/plain\r\n"
              "Content-Length: 26\r\n"
              "Connection: close\r\n"
              "\r\n"
              "Sec-WebSocket-Key missing\n");
    n = ws_handshake_write_error(out, sizeof out, 426,
                                 ws_handshake_strerror(WS_HANDSHAKE_ERR_VERSION), 0);
    CHECK_MEM(out, n,
              "HTTP/1.1 426 Upgrade Required\r\n"
              "Content-Type: text/plain\r\n"
              "Content-Length: 33\r\n"
              "Upgrade: websocket\r\n"
              "Connection: Upgrade, close\r\n"
              "Sec-WebSocket-Version: 13\r\n"
              "\r\n"
              "Sec-WebSocket-Version must be 13\n");
    n = ws_handshake_write_error(out, sizeof out, 503, "too many connections", 5);
    CHECK_MEM(out, n,
              "HTTP/1.1 503 Service Unavailable\r\n"
              "Content-Type: text/plain\r\n"
              "Content-Length: 21\r\n"
              "Connection: close\r\n"
              "Retry-After: 5\r\n"
              "\r\n"
              "too many connections\n");
    n = ws_handshake_write_error(out, sizeof out, 403, "origin not allowed", 7);
    CHECK_MEM(out, n,
              "HTTP/1.1 403 Forbidden\r\n"
              "Content-Type: text/plain\r\n"
              "Content-Length: 19\r\n"
              "Connection: close\r\n"
              "\r\n"
              "origin not allowed\n");
    CHECK_INT(ws_handshake_write_error(out, sizeof out, 500, "x", 0), -1);
    CHECK_INT(ws_handshake_write_error(out, sizeof out, 400, "two\r\nlines", 0), -1);
    CHECK_INT(ws_handshake_write_error(out, sizeof out, 400, NULL, 0), -1);
    CHECK_INT(ws_handshake_write_error(out, 20, 400, "short buffer", 0), -1);
}

struct pmd_case {
    const char *offer;
    bool is_accepted;
    const char *response;
    int server_bits, client_bits;
    bool client_nct;
};

static const struct pmd_case pmd_cases[] = {
    /* RFC 7692 §7.1.3 and the browsers' offers. */
    {"permessage-deflate", true, "permessage-deflate; server_no_context_takeover", 15, 15, false},
    {"permessage-deflate; client_max_window_bits", true,
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=15", 15, 15, false},
    {"permessage-deflate; client_max_window_bits; server_max_window_bits=10, "
     "permessage-deflate; client_max_window_bits",
     true,
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; "
     "client_max_window_bits=15",
     10, 15, false},
    {"permessage-deflate; server_max_window_bits=8, permessage-deflate", true,
     "permessage-deflate; server_no_context_takeover", 15, 15, false},
    {"permessage-deflate; client_max_window_bits=10", true,
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=10", 15, 10, false},
    {"permessage-deflate; client_max_window_bits=8", true,
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=8", 15, 8, false},
    {"permessage-deflate; server_no_context_takeover; client_no_context_takeover", true,
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover", 15, 15, true},
    {"PerMessage-Deflate;Client_No_Context_Takeover", true,
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover", 15, 15, true},
    {"permessage-deflate; server_max_window_bits=\"9\"", true,
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=9", 9, 15, false},
    {"permessage-deflate; client_max_window_bits=\"1\\2\"", true,
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=12", 15, 12, false},
    {"permessage-deflate ; server_max_window_bits = 15", true,
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=15", 15, 15, false},
    {"x-webkit-deflate-frame, permessage-deflate", true,
     "permessage-deflate; server_no_context_takeover", 15, 15, false},
    {"foo; bar=\"a,b;c\", permessage-deflate", true,
     "permessage-deflate; server_no_context_takeover", 15, 15, false},
    {" , ,permessage-deflate,", true, "permessage-deflate; server_no_context_takeover", 15, 15,
     false},
    /* RFC 7692 §7: decline unknown, repeated or invalid parameters. */
    {"permessage-deflate; client_no_context_takeover; client_no_context_takeover", false, NULL, 0,
     0, false},
    {"permessage-deflate; server_max_window_bits=10; server_max_window_bits=10", false, NULL, 0, 0,
     false},
    {"permessage-deflate; client_max_window_bits; client_max_window_bits=9", false, NULL, 0, 0,
     false},
    {"permessage-deflate; server_max_window_bits", false, NULL, 0, 0, false},
    {"permessage-deflate; server_max_window_bits=16", false, NULL, 0, 0, false},
    {"permessage-deflate; server_max_window_bits=7", false, NULL, 0, 0, false},
    {"permessage-deflate; server_max_window_bits=08", false, NULL, 0, 0, false},
    {"permessage-deflate; server_max_window_bits=8", false, NULL, 0, 0, false},
    {"permessage-deflate; client_max_window_bits=0", false, NULL, 0, 0, false},
    {"permessage-deflate; client_max_window_bits=\"\"", false, NULL, 0, 0, false},
    {"permessage-deflate; client_max_window_bits=100000000000000000015", false, NULL, 0, 0, false},
    {"permessage-deflate; server_no_context_takeover=1", false, NULL, 0, 0, false},
    {"permessage-deflate; foo", false, NULL, 0, 0, false},
    {"x-webkit-deflate-frame", false, NULL, 0, 0, false},
    {"", false, NULL, 0, 0, false},
    /* Syntax errors end the walk through a value. */
    {"permessage-deflate; client_max_window_bits=\"10", false, NULL, 0, 0, false},
    {"permessage-deflate x, permessage-deflate", false, NULL, 0, 0, false},
    {"permessage-deflate;; client_max_window_bits", false, NULL, 0, 0, false},
    {"permessage-deflate; =10", false, NULL, 0, 0, false},
    {"permessage-deflate; client_max_window_bits=", false, NULL, 0, 0, false},
};

static void test_pmd_negotiation_table(void)
{
    for (size_t i = 0; i < sizeof pmd_cases / sizeof pmd_cases[0]; i++) {
        const struct pmd_case *c = &pmd_cases[i];
        size_t len = strlen(c->offer);
        struct ws_handshake_slice v = {guarded(c->offer, len), len};
        struct ws_handshake_pmd pmd;
        bool ok = ws_handshake_negotiate_deflate(&v, 1, NULL, &pmd);
        bool is_good = ok == c->is_accepted && pmd.is_accepted == ok;
        if (is_good && ok)
            is_good = strcmp(pmd.response, c->response) == 0 &&
                      pmd.server_max_window_bits == c->server_bits &&
                      pmd.client_max_window_bits == c->client_bits &&
                      pmd.client_no_context_takeover == c->client_nct &&
                      pmd.server_no_context_takeover;
        if (!is_good) {
            fprintf(stderr, "pmd case %zu \"%s\": got %d \"%s\" s=%d c=%d\n", i, c->offer, ok,
                    pmd.response, pmd.server_max_window_bits, pmd.client_max_window_bits);
            CHECK(0);
        }
    }
}

static void test_pmd_policy_and_many_values(void)
{
    struct ws_handshake_slice v[3] = {
        SLICE("permessage-deflate; client_max_window_bits=\"1"), /* syntax error */
        {NULL, 0},
        SLICE("permessage-deflate; client_max_window_bits"),
    };
    struct ws_handshake_pmd pmd;
    struct ws_handshake_pmd_policy policy = {12, true, 0};
    CHECK(ws_handshake_negotiate_deflate(v, 3, &policy, &pmd));
    CHECK_INT(pmd.client_max_window_bits, 12);
    CHECK(pmd.client_no_context_takeover);
    CHECK(strcmp(pmd.response, "permessage-deflate; server_no_context_takeover; "
                               "client_no_context_takeover; client_max_window_bits=12") == 0);
    /* The policy cannot raise what the client asked for. */
    struct ws_handshake_slice v10 = SLICE("permessage-deflate; client_max_window_bits=10");
    CHECK(ws_handshake_negotiate_deflate(&v10, 1, &policy, &pmd));
    CHECK_INT(pmd.client_max_window_bits, 10);
    /* Without client_max_window_bits in the offer the client keeps 15. */
    struct ws_handshake_slice plain = SLICE("permessage-deflate");
    CHECK(ws_handshake_negotiate_deflate(&plain, 1, &policy, &pmd));
    CHECK_INT(pmd.client_max_window_bits, 15);
    CHECK(ws_handshake_negotiate_deflate(v, 0, NULL, &pmd) == false);
    /* A server compressing once at 15 bits declines smaller server windows
     * and takes the client's next offer. */
    struct ws_handshake_pmd_policy fixed = {.server_max_window_bits_min = 15};
    struct ws_handshake_slice two =
        SLICE("permessage-deflate; server_max_window_bits=10, permessage-deflate; "
              "server_max_window_bits=15, permessage-deflate");
    CHECK(ws_handshake_negotiate_deflate(&two, 1, &fixed, &pmd));
    CHECK_INT(pmd.server_max_window_bits, 15);
    CHECK(strcmp(pmd.response,
                 "permessage-deflate; server_no_context_takeover; server_max_window_bits=15") == 0);
    struct ws_handshake_slice only10 = SLICE("permessage-deflate; server_max_window_bits=10");
    CHECK(!ws_handshake_negotiate_deflate(&only10, 1, &fixed, &pmd));
    CHECK(ws_handshake_negotiate_deflate(&only10, 1, NULL, &pmd));
    /* The longest response fits whole (fuzz_ws_handshake found it cut off
     * at "client_max_window_bits=" when the buffer had 128 bytes). */
    static const char longest[] = "permessage-deflate; server_no_context_takeover; "
                                  "client_no_context_takeover; server_max_window_bits=15; "
                                  "client_max_window_bits=15";
    struct ws_handshake_slice big = SLICE(longest);
    CHECK(ws_handshake_negotiate_deflate(&big, 1, NULL, &pmd));
    CHECK(strcmp(pmd.response, longest) == 0);
    struct ws_handshake_pmd_policy small = {11, true, 15};
    struct ws_handshake_slice big2 = SLICE("permessage-deflate; client_max_window_bIts; "
                                           "server_max_window_bits=15");
    CHECK(ws_handshake_negotiate_deflate(&big2, 1, &small, &pmd));
    CHECK(strcmp(pmd.response, "permessage-deflate; server_no_context_takeover; "
                               "client_no_context_takeover; server_max_window_bits=15; "
                               "client_max_window_bits=11") == 0);
}

static void test_full_handshake_with_deflate(void)
{
    static const char in[] = REQ_LINE H_HOST H_UPG H_CONN H_KEY H_VER
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
    struct ws_handshake_req req;
    CHECK(parse_str(in, &req) > 0);
    struct ws_handshake_pmd pmd;
    CHECK(ws_handshake_negotiate_deflate(req.extensions, req.extension_count, NULL, &pmd));
    char out[512];
    long n = ws_handshake_write_101(out, sizeof out, &req, NULL, 0, pmd.response);
    CHECK_MEM(out, n,
              "HTTP/1.1 101 Switching Protocols\r\n"
              "Upgrade: websocket\r\n"
              "Connection: Upgrade\r\n"
              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
              "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
              "client_max_window_bits=15\r\n"
              "\r\n");
}

int main(void)
{
    RUN(test_rfc_accept_vector);
    RUN(test_rfc_request);
    RUN(test_target_and_query);
    RUN(test_bytes_after_head_are_not_consumed);
    RUN(test_optional_headers);
    RUN(test_verdict_table);
    RUN(test_status_mapping);
    RUN(test_every_truncation_needs_more);
    RUN(test_incremental_feed_never_rescans);
    RUN(test_size_limit_both_sides);
    RUN(test_write_101_plain_and_extensions);
    RUN(test_write_error);
    RUN(test_pmd_negotiation_table);
    RUN(test_pmd_policy_and_many_values);
    RUN(test_full_handshake_with_deflate);
    TEST_MAIN_END();
}
