/* ws_handshake: RFC 6455 opening handshake and RFC 7692 §7 negotiation.
 *
 * Invariants: no function allocates, does I/O or touches global mutable
 * state; the scanner reads only buf[0 .. min(len, max_len)); every slice it
 * returns lies inside the head it validated.
 *
 * The scan and the check are two passes on purpose. The scan (resumable,
 * picohttpparser's last_len idea) only looks for the blank line and never
 * revisits bytes it has seen; the check runs once over a complete head of at
 * most max_len bytes, so it needs no resumable state at all.
 *
 * NOTES (deliberate choices and deviations)
 * - Lines must end in CRLF. RFC 7230 §3.5 lets a recipient accept a bare LF;
 *   we refuse it with 400, but the scan stops at an LF-only blank line too so
 *   that such a client gets its 400 at once rather than at the size limit.
 * - Empty lines before the request line (RFC 7230 §3.5 SHOULD ignore) are
 *   refused: browsers and proxies never send them.
 * - Only origin-form targets are accepted. RFC 6455 §4.1 sends path + query;
 *   RFC 7230 §5.3.2 asks servers to accept absolute-form as well, but the
 *   proxies in front of litepush-ws never send it.
 * - A request with a body (Content-Length other than 0, any
 *   Transfer-Encoding) is refused: what follows the head must be frames.
 * - A missing Sec-WebSocket-Version gets 426, like a wrong one (§4.4 names
 *   426 for a version the server does not speak).
 * - The 426 answer carries Upgrade: websocket (RFC 7231 §6.5.15 MUST) and
 *   therefore "Connection: Upgrade, close" (RFC 7230 §6.7 MUST).
 * - permessage-deflate offers with server_max_window_bits=8 are declined:
 *   zlib >= 1.2.9 refuses a 256-byte window for raw deflate, and RFC 7692 §7
 *   has the server decline a configuration it does not support.
 * - Extension and parameter names are matched ASCII case-insensitively;
 *   OWS is allowed around ';' and '='. */
#include "ws_handshake.h"

#include "crypto.h"

#include <stdint.h>
#include <string.h>

/* RFC 6455 §1.3 / §4.2.2: the GUID appended to the key. */
static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/* A Sec-WebSocket-Key longer than this cannot decode to 16 bytes. */
#define KEY_TEXT_MAX 64

/* The one answer to each error (style rule 7). */
static const struct {
    int status;
    const char *reason;
} err_table[] = {
    [WS_HANDSHAKE_OK] = {0, "ok"},
    [WS_HANDSHAKE_ERR_TOO_LARGE] = {400, "request head too large"},
    [WS_HANDSHAKE_ERR_LINE_ENDING] = {400, "request lines must end with CRLF"},
    [WS_HANDSHAKE_ERR_REQUEST_LINE] = {400, "malformed request line"},
    [WS_HANDSHAKE_ERR_METHOD] = {400, "WebSocket handshake must use GET"},
    [WS_HANDSHAKE_ERR_TARGET] = {400, "malformed request target"},
    [WS_HANDSHAKE_ERR_HTTP_VERSION] = {400, "WebSocket handshake needs HTTP/1.1 or later"},
    [WS_HANDSHAKE_ERR_HEADER_SYNTAX] = {400, "malformed header line"},
    [WS_HANDSHAKE_ERR_BODY] = {400, "WebSocket handshake must not have a body"},
    [WS_HANDSHAKE_ERR_HOST] = {400, "exactly one non-empty Host header required"},
    [WS_HANDSHAKE_ERR_UPGRADE] = {400, "Upgrade header must contain websocket"},
    [WS_HANDSHAKE_ERR_CONNECTION] = {400, "Connection header must contain Upgrade"},
    [WS_HANDSHAKE_ERR_VERSION] = {426, "Sec-WebSocket-Version must be 13"},
    [WS_HANDSHAKE_ERR_VERSION_REPEATED] = {400, "Sec-WebSocket-Version sent more than once"},
    [WS_HANDSHAKE_ERR_KEY] = {400, "Sec-WebSocket-Key must be sent once and decode to 16 bytes"},
    [WS_HANDSHAKE_ERR_ORIGIN] = {400, "Origin sent more than once"},
    [WS_HANDSHAKE_ERR_PROTOCOL] = {400, "bad or too many Sec-WebSocket-Protocol values"},
    [WS_HANDSHAKE_ERR_EXTENSIONS] = {400, "too many Sec-WebSocket-Extensions headers"},
};

const char *ws_handshake_strerror(enum ws_handshake_err err)
{
    if ((size_t)err >= sizeof err_table / sizeof err_table[0])
        return "unknown handshake error";
    return err_table[err].reason;
}

int ws_handshake_status(enum ws_handshake_err err)
{
    if ((size_t)err >= sizeof err_table / sizeof err_table[0])
        return 400;
    return err_table[err].status;
}

/* ---- small character helpers ---- */

/* RFC 7230 §3.2.6: tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 7230 §3.2: field-content allows VCHAR, obs-text, SP and HTAB only. */
static bool is_field_byte(unsigned char c)
{
    return (c >= 0x20 && c != 0x7f) || c == '\t';
}

static unsigned char to_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* Compares p[0..len) with a lower-case literal, ignoring ASCII case. */
static bool ci_equal(const char *p, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    if (len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (to_lower((unsigned char)p[i]) != (unsigned char)lit[i])
            return false;
    return true;
}

static struct ws_handshake_slice trim(const char *p, size_t len)
{
    while (len > 0 && is_ows(p[0])) {
        p++;
        len--;
    }
    while (len > 0 && is_ows(p[len - 1]))
        len--;
    return (struct ws_handshake_slice){p, len};
}

/* Next non-empty element of a comma-separated list (RFC 7230 §7: empty
 * elements are allowed and ignored), trimmed of OWS. */
static bool list_next(const char **pos, const char *end, struct ws_handshake_slice *item)
{
    const char *p = *pos;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        struct ws_handshake_slice s = trim(p, (size_t)(stop - p));
        p = comma ? comma + 1 : end;
        if (s.len > 0) {
            *pos = p;
            *item = s;
            return true;
        }
    }
    *pos = end;
    return false;
}

static bool list_contains_ci(struct ws_handshake_slice value, const char *lit)
{
    const char *p = value.ptr, *end = value.ptr + value.len;
    struct ws_handshake_slice item;
    while (list_next(&p, end, &item))
        if (ci_equal(item.ptr, item.len, lit))
            return true;
    return false;
}

static bool is_token(struct ws_handshake_slice s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!is_tchar((unsigned char)s.ptr[i]))
            return false;
    return true;
}

/* ---- the scan ---- */

/* Returns the offset just past the LF that ends the first empty line found
 * at or after `from`, or 0. A line is empty when its LF sits at the start of
 * the buffer or right after the previous LF, with or without a CR between. */
static size_t find_blank_line(const char *buf, size_t from, size_t limit)
{
    size_t i = from;
    while (i < limit) {
        const char *lf = memchr(buf + i, '\n', limit - i);
        if (lf == NULL)
            return 0;
        i = (size_t)(lf - buf);
        if (i == 0 || buf[i - 1] == '\n' || (buf[i - 1] == '\r' && (i == 1 || buf[i - 2] == '\n')))
            return i + 1;
        i++;
    }
    return 0;
}

/* ---- the check ---- */

/* What parse_header saw, for the checks that need all headers. */
struct seen {
    unsigned host, key, version, origin;
    bool has_upgrade_websocket;
    bool has_connection_upgrade;
    struct ws_handshake_slice version_value;
};

/* The next line of the head at *pos, without its CRLF. */
static enum ws_handshake_err next_line(const char *buf, size_t end, size_t *pos,
                                       struct ws_handshake_slice *line)
{
    const char *start = buf + *pos;
    const char *lf = memchr(start, '\n', end - *pos);
    /* RFC 7230 §3.5: we accept only CRLF; a bare CR is invalid outright. */
    if (lf == NULL || lf == start || lf[-1] != '\r')
        return WS_HANDSHAKE_ERR_LINE_ENDING;
    line->ptr = start;
    line->len = (size_t)(lf - 1 - start);
    if (memchr(line->ptr, '\r', line->len) != NULL)
        return WS_HANDSHAKE_ERR_LINE_ENDING;
    *pos = (size_t)(lf + 1 - buf);
    return WS_HANDSHAKE_OK;
}

static enum ws_handshake_err parse_request_line(struct ws_handshake_slice line,
                                                struct ws_handshake_req *req)
{
    /* RFC 7230 §3.1.1: request-line = method SP request-target SP HTTP-version. */
    const char *p = line.ptr, *end = line.ptr + line.len;
    const char *sp1 = memchr(p, ' ', line.len);
    if (sp1 == NULL || sp1 == p)
        return WS_HANDSHAKE_ERR_REQUEST_LINE;
    const char *t = sp1 + 1;
    const char *sp2 = memchr(t, ' ', (size_t)(end - t));
    if (sp2 == NULL || sp2 == t)
        return WS_HANDSHAKE_ERR_REQUEST_LINE;
    const char *v = sp2 + 1;
    if (memchr(v, ' ', (size_t)(end - v)) != NULL)
        return WS_HANDSHAKE_ERR_REQUEST_LINE;
    if (!is_token((struct ws_handshake_slice){p, (size_t)(sp1 - p)}))
        return WS_HANDSHAKE_ERR_REQUEST_LINE;

    /* RFC 6455 §4.1 and §4.2.1 item 1: the method MUST be GET; methods are
     * case-sensitive (RFC 7230 §3.1.1). */
    if (sp1 - p != 3 || memcmp(p, "GET", 3) != 0)
        return WS_HANDSHAKE_ERR_METHOD;

    /* RFC 6455 §4.1: "the HTTP version MUST be at least 1.1";
     * RFC 7230 §2.6: HTTP-version = "HTTP/" DIGIT "." DIGIT. */
    if (end - v != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
        v[7] < '0' || v[7] > '9')
        return WS_HANDSHAKE_ERR_HTTP_VERSION;
    if (v[5] == '0' || (v[5] == '1' && v[7] == '0'))
        return WS_HANDSHAKE_ERR_HTTP_VERSION;

    /* RFC 6455 §4.1 item 2 and §3: the target is the resource name, an
     * absolute path with an optional query and no fragment; RFC 3986 allows
     * only printable ASCII in it. */
    if (*t != '/')
        return WS_HANDSHAKE_ERR_TARGET;
    for (const char *q = t; q < sp2; q++) {
        unsigned char c = (unsigned char)*q;
        if (c <= 0x20 || c >= 0x7f || c == '#')
            return WS_HANDSHAKE_ERR_TARGET;
    }
    req->target = (struct ws_handshake_slice){t, (size_t)(sp2 - t)};
    const char *qmark = memchr(t, '?', (size_t)(sp2 - t));
    req->path = (struct ws_handshake_slice){t, (size_t)((qmark ? qmark : sp2) - t)};
    if (qmark != NULL)
        req->query = (struct ws_handshake_slice){qmark + 1, (size_t)(sp2 - qmark - 1)};
    return WS_HANDSHAKE_OK;
}

static enum ws_handshake_err add_protocols(struct ws_handshake_slice value,
                                           struct ws_handshake_req *req)
{
    /* RFC 6455 §4.1 item 10 and §11.3.4: 1#token, in order of preference;
     * repeated headers combine into one list (RFC 7230 §3.2.2). */
    const char *p = value.ptr, *end = value.ptr + value.len;
    struct ws_handshake_slice item;
    while (list_next(&p, end, &item)) {
        if (!is_token(item) || req->protocol_count == WS_HANDSHAKE_PROTOCOLS_MAX)
            return WS_HANDSHAKE_ERR_PROTOCOL;
        req->protocols[req->protocol_count++] = item;
    }
    return WS_HANDSHAKE_OK;
}

static enum ws_handshake_err parse_header(struct ws_handshake_slice line,
                                          struct ws_handshake_req *req, struct seen *seen)
{
    /* RFC 7230 §3.2: header-field = field-name ":" OWS field-value OWS.
     * A name that is not a token covers both obs-fold (a line starting with
     * SP/HTAB) and whitespace before the colon, which §3.2.4 says a server
     * MUST answer with 400. */
    const char *colon = memchr(line.ptr, ':', line.len);
    if (colon == NULL)
        return WS_HANDSHAKE_ERR_HEADER_SYNTAX;
    struct ws_handshake_slice name = {line.ptr, (size_t)(colon - line.ptr)};
    if (!is_token(name))
        return WS_HANDSHAKE_ERR_HEADER_SYNTAX;
    struct ws_handshake_slice value = trim(colon + 1, (size_t)(line.ptr + line.len - (colon + 1)));
    for (size_t i = 0; i < value.len; i++)
        if (!is_field_byte((unsigned char)value.ptr[i]))
            return WS_HANDSHAKE_ERR_HEADER_SYNTAX;

    if (ci_equal(name.ptr, name.len, "host")) {
        /* RFC 7230 §5.4: more than one Host gets 400. */
        if (++seen->host > 1)
            return WS_HANDSHAKE_ERR_HOST;
        req->host = value;
    } else if (ci_equal(name.ptr, name.len, "upgrade")) {
        /* RFC 6455 §4.2.1 item 3: contains "websocket", case-insensitive. */
        if (list_contains_ci(value, "websocket"))
            seen->has_upgrade_websocket = true;
    } else if (ci_equal(name.ptr, name.len, "connection")) {
        /* RFC 6455 §4.2.1 item 4: a token list that includes "Upgrade",
         * case-insensitive (RFC 7230 §6.1: Connection = 1#connection-option). */
        if (list_contains_ci(value, "upgrade"))
            seen->has_connection_upgrade = true;
    } else if (ci_equal(name.ptr, name.len, "sec-websocket-key")) {
        /* RFC 6455 §11.3.1: MUST NOT appear more than once in a request. */
        if (++seen->key > 1)
            return WS_HANDSHAKE_ERR_KEY;
        req->key = value;
    } else if (ci_equal(name.ptr, name.len, "sec-websocket-version")) {
        /* RFC 6455 §11.3.5: MUST NOT appear more than once in a request. */
        if (++seen->version > 1)
            return WS_HANDSHAKE_ERR_VERSION_REPEATED;
        seen->version_value = value;
    } else if (ci_equal(name.ptr, name.len, "origin")) {
        /* RFC 6454 §7: one serialized origin (or a list); two headers would
         * let a proxy and us see different origins. */
        if (++seen->origin > 1)
            return WS_HANDSHAKE_ERR_ORIGIN;
        req->origin = value;
    } else if (ci_equal(name.ptr, name.len, "x-forwarded-for")) {
        /* A proxy appends to the last line; only a trusted proxy's is read. */
        req->forwarded_for = value;
    } else if (ci_equal(name.ptr, name.len, "sec-websocket-protocol")) {
        return add_protocols(value, req);
    } else if (ci_equal(name.ptr, name.len, "sec-websocket-extensions")) {
        /* RFC 6455 §9.1: may repeat; kept whole for the negotiation. */
        if (value.len == 0)
            return WS_HANDSHAKE_OK;
        if (req->extension_count == WS_HANDSHAKE_EXTENSION_HEADERS_MAX)
            return WS_HANDSHAKE_ERR_EXTENSIONS;
        req->extensions[req->extension_count++] = value;
    } else if (ci_equal(name.ptr, name.len, "content-length")) {
        /* RFC 7230 §3.3: a body would be read as frames after the switch. */
        if (value.len == 0)
            return WS_HANDSHAKE_ERR_BODY;
        for (size_t i = 0; i < value.len; i++)
            if (value.ptr[i] != '0')
                return WS_HANDSHAKE_ERR_BODY;
    } else if (ci_equal(name.ptr, name.len, "transfer-encoding")) {
        return WS_HANDSHAKE_ERR_BODY;
    }
    return WS_HANDSHAKE_OK;
}

static enum ws_handshake_err check_required(const struct ws_handshake_req *req,
                                            const struct seen *seen)
{
    /* RFC 6455 §4.2.1 item 2: a Host header with the server's authority. */
    if (seen->host == 0 || req->host.len == 0)
        return WS_HANDSHAKE_ERR_HOST;
    if (!seen->has_upgrade_websocket)
        return WS_HANDSHAKE_ERR_UPGRADE;
    if (!seen->has_connection_upgrade)
        return WS_HANDSHAKE_ERR_CONNECTION;
    /* RFC 6455 §4.2.1 item 6 and §4.4: version 13, else 426 listing it. */
    if (seen->version_value.len != 2 || memcmp(seen->version_value.ptr, "13", 2) != 0)
        return WS_HANDSHAKE_ERR_VERSION;
    /* RFC 6455 §4.2.1 item 5: base64 that decodes to exactly 16 bytes. */
    if (seen->key == 0 || req->key.len > KEY_TEXT_MAX)
        return WS_HANDSHAKE_ERR_KEY;
    uint8_t raw[3 * (KEY_TEXT_MAX / 4)];
    if (crypto_base64_decode(req->key.ptr, req->key.len, raw) != 16)
        return WS_HANDSHAKE_ERR_KEY;
    return WS_HANDSHAKE_OK;
}

static enum ws_handshake_err check_head(const char *buf, size_t end, struct ws_handshake_req *req)
{
    size_t pos = 0;
    struct ws_handshake_slice line;
    struct seen seen = {0};
    enum ws_handshake_err err = next_line(buf, end, &pos, &line);
    if (err == WS_HANDSHAKE_OK)
        err = parse_request_line(line, req);
    while (err == WS_HANDSHAKE_OK) {
        err = next_line(buf, end, &pos, &line);
        if (err != WS_HANDSHAKE_OK || line.len == 0)
            break;
        err = parse_header(line, req, &seen);
    }
    return err != WS_HANDSHAKE_OK ? err : check_required(req, &seen);
}

long ws_handshake_parse(struct ws_handshake_state *st, const char *buf, size_t len, size_t max_len,
                        struct ws_handshake_req *req)
{
    size_t limit = len < max_len ? len : max_len;
    /* Resume where the last call stopped; a shorter buffer than before
     * means the caller started over. */
    size_t from = st->scanned <= limit ? st->scanned : 0;
    size_t end = find_blank_line(buf, from, limit);
    if (end == 0) {
        st->scanned = limit;
        if (len < max_len)
            return WS_HANDSHAKE_NEED_MORE;
        memset(req, 0, sizeof *req);
        req->err = WS_HANDSHAKE_ERR_TOO_LARGE;
        return WS_HANDSHAKE_INVALID;
    }
    st->scanned = end;
    memset(req, 0, sizeof *req);
    req->err = check_head(buf, end, req);
    if (req->err != WS_HANDSHAKE_OK)
        return WS_HANDSHAKE_INVALID;
    req->head_len = end;
    return (long)end;
}

/* ---- responses ---- */

/* Appends into a fixed buffer, keeping it NUL-terminated; once something
 * does not fit, is_short stays set and nothing more is written. */
struct out {
    char *buf;
    size_t cap, len;
    bool is_short;
};

static void put_mem(struct out *o, const char *s, size_t n)
{
    if (o->is_short || o->cap == 0 || n >= o->cap - o->len) {
        o->is_short = true;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void put(struct out *o, const char *s)
{
    put_mem(o, s, strlen(s));
}

static void put_uint(struct out *o, unsigned long v)
{
    char digits[24];
    size_t i = sizeof digits;
    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    put_mem(o, digits + i, sizeof digits - i);
}

static long out_result(const struct out *o)
{
    return o->is_short ? -1 : (long)o->len;
}

/* A header value or body line we write must not contain control bytes,
 * so nothing we are handed can split the response (CR/LF injection). */
static bool is_safe_text(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

void ws_handshake_accept(const char *key, size_t key_len, char out[WS_HANDSHAKE_ACCEPT_LEN + 1])
{
    /* RFC 6455 §4.2.2 step 5.4: base64(SHA-1(key + GUID)), key as sent. */
    uint8_t digest[CRYPTO_SHA1_LEN];
    char cat[KEY_TEXT_MAX + sizeof WS_GUID];
    if (key_len > KEY_TEXT_MAX)
        key_len = KEY_TEXT_MAX; /* a validated key is 24 bytes; never reached */
    memcpy(cat, key, key_len);
    memcpy(cat + key_len, WS_GUID, sizeof WS_GUID - 1);
    crypto_sha1(cat, key_len + sizeof WS_GUID - 1, digest);
    crypto_base64_encode(digest, sizeof digest, out);
}

bool ws_handshake_select_protocol(const struct ws_handshake_req *req, const char *const *supported,
                                  size_t n_supported, struct ws_handshake_slice *out)
{
    /* RFC 6455 §4.2.2 step 5.4 /subprotocol/: one of the client's values;
     * we honour the client's order of preference. */
    for (size_t i = 0; i < req->protocol_count; i++) {
        const struct ws_handshake_slice *p = &req->protocols[i];
        for (size_t j = 0; j < n_supported; j++) {
            if (supported[j] != NULL && strlen(supported[j]) == p->len &&
                memcmp(supported[j], p->ptr, p->len) == 0) {
                *out = *p;
                return true;
            }
        }
    }
    out->ptr = NULL;
    out->len = 0;
    return false;
}

long ws_handshake_write_101(char *out, size_t cap, const struct ws_handshake_req *req,
                            const char *protocol, size_t protocol_len, const char *extensions)
{
    char accept[WS_HANDSHAKE_ACCEPT_LEN + 1];
    struct out o = {out, cap, 0, false};
    if (req->key.ptr == NULL || req->key.len > KEY_TEXT_MAX)
        return -1;
    if (protocol != NULL && (protocol_len == 0 || !is_safe_text(protocol, protocol_len)))
        return -1;
    if (extensions != NULL && !is_safe_text(extensions, strlen(extensions)))
        return -1;
    ws_handshake_accept(req->key.ptr, req->key.len, accept);
    /* RFC 6455 §4.2.2 step 5: status line, Upgrade, Connection, Accept,
     * then the optional subprotocol and extensions. */
    put(&o, "HTTP/1.1 101 Switching Protocols\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Accept: ");
    put(&o, accept);
    put(&o, "\r\n");
    if (protocol != NULL) {
        put(&o, "Sec-WebSocket-Protocol: ");
        put_mem(&o, protocol, protocol_len);
        put(&o, "\r\n");
    }
    if (extensions != NULL && extensions[0] != '\0') {
        put(&o, "Sec-WebSocket-Extensions: ");
        put(&o, extensions);
        put(&o, "\r\n");
    }
    put(&o, "\r\n");
    return out_result(&o);
}

long ws_handshake_write_error(char *out, size_t cap, int status, const char *reason,
                              unsigned retry_after_s)
{
    const char *text;
    struct out o = {out, cap, 0, false};
    switch (status) {
    case 400:
        text = "400 Bad Request";
        break;
    case 403:
        text = "403 Forbidden";
        break;
    case 426:
        text = "426 Upgrade Required";
        break;
    case 503:
        text = "503 Service Unavailable";
        break;
    default:
        return -1;
    }
    if (reason == NULL || !is_safe_text(reason, strlen(reason)))
        return -1;
    put(&o, "HTTP/1.1 ");
    put(&o, text);
    put(&o, "\r\nContent-Type: text/plain\r\nContent-Length: ");
    put_uint(&o, strlen(reason) + 1);
    put(&o, "\r\n");
    if (status == 426) {
        /* RFC 6455 §4.4: name the versions we speak. RFC 7231 §6.5.15: a 426
         * names the protocol in Upgrade, and RFC 7230 §6.7 then wants
         * "upgrade" in Connection. */
        put(&o, "Upgrade: websocket\r\nConnection: Upgrade, close\r\n"
                "Sec-WebSocket-Version: 13\r\n");
    } else {
        put(&o, "Connection: close\r\n");
    }
    if (status == 503 && retry_after_s > 0) {
        /* RFC 7231 §7.1.3: Retry-After = delay-seconds. */
        put(&o, "Retry-After: ");
        put_uint(&o, retry_after_s);
        put(&o, "\r\n");
    }
    put(&o, "\r\n");
    put(&o, reason);
    put(&o, "\n");
    return out_result(&o);
}

/* ---- permessage-deflate negotiation (RFC 7692 §7) ---- */

struct cursor {
    const char *p, *end;
};

static void skip_ows(struct cursor *c)
{
    while (c->p < c->end && is_ows(*c->p))
        c->p++;
}

static bool take_token(struct cursor *c, struct ws_handshake_slice *tok)
{
    tok->ptr = c->p;
    while (c->p < c->end && is_tchar((unsigned char)*c->p))
        c->p++;
    tok->len = (size_t)(c->p - tok->ptr);
    return tok->len > 0;
}

/* Reads a token or a quoted-string (RFC 6455 §9.1 extension-param; RFC 7230
 * §3.2.6 quoted-string and quoted-pair), unescaping it into val[0..cap).
 * *len is the full unescaped length, which may exceed cap. False on a
 * syntax error. */
static bool take_value(struct cursor *c, char *val, size_t cap, size_t *len)
{
    *len = 0;
    if (c->p < c->end && *c->p == '"') {
        c->p++;
        while (c->p < c->end) {
            unsigned char ch = (unsigned char)*c->p++;
            if (ch == '"')
                return true;
            if (ch == '\\') {
                if (c->p == c->end)
                    return false;
                ch = (unsigned char)*c->p++;
            }
            if (!is_field_byte(ch))
                return false;
            if (*len < cap)
                val[*len] = (char)ch;
            (*len)++;
        }
        return false; /* unterminated */
    }
    struct ws_handshake_slice tok;
    if (!take_token(c, &tok))
        return false;
    memcpy(val, tok.ptr, tok.len < cap ? tok.len : cap);
    *len = tok.len;
    return true;
}

/* RFC 7692 §7.1.2.1 and §7.1.2.2: a decimal integer 8..15 without leading
 * zeroes. Returns 0 for anything else. */
static int window_bits_value(const char *v, size_t len)
{
    if (len == 1 && v[0] >= '8' && v[0] <= '9')
        return v[0] - '0';
    if (len == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
        return 10 + (v[1] - '0');
    return 0;
}

struct offer {
    bool is_pmd, is_acceptable;
    bool has_snct, has_cnct, has_smwb, has_cmwb;
    int smwb, cmwb; /* cmwb 0: offered without a value */
};

static void apply_param(struct offer *o, struct ws_handshake_slice name, bool has_value,
                        const char *val, size_t val_len)
{
    /* RFC 7692 §7: the server MUST decline an offer with a parameter not
     * defined for offers, an invalid value, or the same parameter twice. */
    if (ci_equal(name.ptr, name.len, "server_no_context_takeover")) {
        /* §7.1.1.1: this parameter has no value. */
        if (o->has_snct || has_value)
            o->is_acceptable = false;
        o->has_snct = true;
    } else if (ci_equal(name.ptr, name.len, "client_no_context_takeover")) {
        /* §7.1.1.2: this parameter has no value. */
        if (o->has_cnct || has_value)
            o->is_acceptable = false;
        o->has_cnct = true;
    } else if (ci_equal(name.ptr, name.len, "server_max_window_bits")) {
        /* §7.1.2.1: a value is required. 8 is declined (see NOTES). */
        int bits = has_value ? window_bits_value(val, val_len) : 0;
        if (o->has_smwb || bits == 0 || bits == 8)
            o->is_acceptable = false;
        o->has_smwb = true;
        o->smwb = bits;
    } else if (ci_equal(name.ptr, name.len, "client_max_window_bits")) {
        /* §7.1.2.2: the value is optional. */
        int bits = has_value ? window_bits_value(val, val_len) : 0;
        if (o->has_cmwb || (has_value && bits == 0))
            o->is_acceptable = false;
        o->has_cmwb = true;
        o->cmwb = bits;
    } else {
        o->is_acceptable = false;
    }
}

/* Parses one extension = extension-token *( ";" extension-param )
 * (RFC 6455 §9.1), leaving the cursor at the ',' or the end. False on a
 * syntax error. */
static bool parse_offer(struct cursor *c, struct offer *o)
{
    struct ws_handshake_slice name;
    memset(o, 0, sizeof *o);
    skip_ows(c);
    if (!take_token(c, &name))
        return false;
    o->is_pmd = ci_equal(name.ptr, name.len, "permessage-deflate");
    o->is_acceptable = o->is_pmd;
    for (;;) {
        skip_ows(c);
        if (c->p == c->end || *c->p == ',')
            return true;
        if (*c->p != ';')
            return false;
        c->p++;
        skip_ows(c);
        struct ws_handshake_slice pname;
        if (!take_token(c, &pname))
            return false;
        skip_ows(c);
        char val[4];
        size_t val_len = 0;
        bool has_value = false;
        if (c->p < c->end && *c->p == '=') {
            c->p++;
            skip_ows(c);
            if (!take_value(c, val, sizeof val, &val_len))
                return false;
            has_value = true;
        }
        if (o->is_pmd)
            apply_param(o, pname, has_value, val, val_len);
    }
}

/* Fills *out for an acceptable offer. False only if the response did not
 * fit, which WS_HANDSHAKE_PMD_RESPONSE_MAX rules out: never send a cut one. */
static bool accept_offer(const struct offer *o, const struct ws_handshake_pmd_policy *policy,
                         struct ws_handshake_pmd *out)
{
    int client_cap = 15;
    if (policy != NULL && policy->client_max_window_bits >= 8 &&
        policy->client_max_window_bits <= 15)
        client_cap = policy->client_max_window_bits;
    struct out r = {out->response, sizeof out->response, 0, false};

    out->is_accepted = true;
    /* §7.1.1.1: the server may add server_no_context_takeover on its own;
     * our policy always does (one compressed copy for every subscriber). */
    out->server_no_context_takeover = true;
    /* §7.1.1.2: the server may add client_no_context_takeover on its own. */
    out->client_no_context_takeover =
        o->has_cnct || (policy != NULL && policy->is_client_no_context_takeover_forced);
    /* §7.1.2.1: accepting server_max_window_bits=N means echoing a value
     * <= N; we echo N and compress with it. */
    out->server_max_window_bits = o->has_smwb ? o->smwb : 15;
    /* §7.1.2.2: client_max_window_bits may be answered only if offered,
     * with a value no larger than the offered one. */
    out->client_max_window_bits = 15;
    if (o->has_cmwb) {
        int offered = o->cmwb != 0 ? o->cmwb : 15;
        out->client_max_window_bits = offered < client_cap ? offered : client_cap;
    }

    put(&r, "permessage-deflate; server_no_context_takeover");
    if (out->client_no_context_takeover)
        put(&r, "; client_no_context_takeover");
    if (o->has_smwb) {
        put(&r, "; server_max_window_bits=");
        put_uint(&r, (unsigned long)out->server_max_window_bits);
    }
    if (o->has_cmwb) {
        put(&r, "; client_max_window_bits=");
        put_uint(&r, (unsigned long)out->client_max_window_bits);
    }
    if (r.is_short)
        memset(out, 0, sizeof *out);
    return !r.is_short;
}

bool ws_handshake_negotiate_deflate(const struct ws_handshake_slice *values, size_t n,
                                    const struct ws_handshake_pmd_policy *policy,
                                    struct ws_handshake_pmd *out)
{
    int server_min = 9;
    if (policy != NULL && policy->server_max_window_bits_min > 9 &&
        policy->server_max_window_bits_min <= 15)
        server_min = policy->server_max_window_bits_min;
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        if (values[i].ptr == NULL)
            continue;
        struct cursor c = {values[i].ptr, values[i].ptr + values[i].len};
        for (;;) {
            /* RFC 7230 §7: skip empty list elements. */
            while (c.p < c.end && (*c.p == ',' || is_ows(*c.p)))
                c.p++;
            if (c.p == c.end)
                break;
            struct offer o;
            if (!parse_offer(&c, &o))
                break;
            /* RFC 7692 §5: offers are in the client's order of preference;
             * accept the first acceptable one. */
            /* RFC 7692 §7: decline a configuration we do not support. */
            if (o.has_smwb && o.smwb < server_min)
                o.is_acceptable = false;
            if (o.is_pmd && o.is_acceptable)
                return accept_offer(&o, policy, out);
        }
    }
    return false;
}
