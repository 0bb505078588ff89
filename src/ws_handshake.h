/* ws_handshake: the RFC 6455 opening handshake, as pure functions.
 * It finds the end of an HTTP/1.1 Upgrade request head as bytes arrive,
 * checks it against RFC 6455 §4.2.1, negotiates permessage-deflate
 * (RFC 7692 §7) and writes the 101 or error response into caller buffers.
 * Nothing here allocates, does I/O or keeps global state; every function may
 * be called from any thread. Every output slice points into the caller's
 * request buffer and is valid only while that buffer is unchanged. */
#ifndef LITEPUSH_WS_HANDSHAKE_H
#define LITEPUSH_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

/* Subprotocol names kept from all Sec-WebSocket-Protocol headers together
 * (400 beyond). Browsers offer one to three. */
#define WS_HANDSHAKE_PROTOCOLS_MAX 16
/* Sec-WebSocket-Extensions header lines kept (400 beyond); each line may
 * carry several comma-separated offers. */
#define WS_HANDSHAKE_EXTENSION_HEADERS_MAX 8
/* Length of a Sec-WebSocket-Accept value: base64 of a 20-byte SHA-1. */
#define WS_HANDSHAKE_ACCEPT_LEN 28
/* A buffer this large always holds the response string of
 * ws_handshake_negotiate_deflate, NUL included (the longest is 128 bytes). */
#define WS_HANDSHAKE_PMD_RESPONSE_MAX 160

/* ws_handshake_parse returns these, or the head length (> 0). */
#define WS_HANDSHAKE_NEED_MORE (-1L)
#define WS_HANDSHAKE_INVALID (-2L)

/* Why a handshake was refused. Each error has exactly one answer, given by
 * ws_handshake_status() (400 or 426) and ws_handshake_strerror() (the
 * one-line reason that becomes the response body). */
enum ws_handshake_err {
    WS_HANDSHAKE_OK = 0,
    WS_HANDSHAKE_ERR_TOO_LARGE,        /* no blank line within max_len bytes */
    WS_HANDSHAKE_ERR_LINE_ENDING,      /* bare LF or bare CR */
    WS_HANDSHAKE_ERR_REQUEST_LINE,     /* not "method SP target SP version" */
    WS_HANDSHAKE_ERR_METHOD,           /* method other than GET */
    WS_HANDSHAKE_ERR_TARGET,           /* target not origin-form, or bad bytes */
    WS_HANDSHAKE_ERR_HTTP_VERSION,     /* older than HTTP/1.1, or malformed */
    WS_HANDSHAKE_ERR_HEADER_SYNTAX,    /* bad field name, obs-fold, control byte */
    WS_HANDSHAKE_ERR_BODY,             /* Content-Length > 0 or Transfer-Encoding */
    WS_HANDSHAKE_ERR_HOST,             /* Host missing, empty or repeated */
    WS_HANDSHAKE_ERR_UPGRADE,          /* no "websocket" in Upgrade */
    WS_HANDSHAKE_ERR_CONNECTION,       /* no "upgrade" in Connection */
    WS_HANDSHAKE_ERR_VERSION,          /* Sec-WebSocket-Version absent or not 13: 426 */
    WS_HANDSHAKE_ERR_VERSION_REPEATED, /* Sec-WebSocket-Version sent twice */
    WS_HANDSHAKE_ERR_KEY,              /* key missing, repeated, or not 16 bytes */
    WS_HANDSHAKE_ERR_ORIGIN,           /* Origin repeated */
    WS_HANDSHAKE_ERR_PROTOCOL,         /* bad or too many subprotocol names */
    WS_HANDSHAKE_ERR_EXTENSIONS,       /* too many Sec-WebSocket-Extensions lines */
};

/* A byte range inside the caller's buffer; ptr is NULL when absent. */
struct ws_handshake_slice {
    const char *ptr;
    size_t len;
};

/* Parser state. Valid when zero-filled; owned by the caller (one per
 * connection). It remembers how far the search for the blank line got, so
 * each call looks only at bytes it has not seen. */
struct ws_handshake_state {
    size_t scanned;
};

/* What a valid request head says. Filled by ws_handshake_parse; the slices
 * point into the buffer given to it. Header values are trimmed of spaces and
 * tabs. */
struct ws_handshake_req {
    size_t head_len;                         /* bytes up to and including the blank line */
    struct ws_handshake_slice target;        /* request-target, e.g. "/ws?channel=a" */
    struct ws_handshake_slice path;          /* target before '?' */
    struct ws_handshake_slice query;         /* target after '?'; ptr NULL when no '?' */
    struct ws_handshake_slice host;          /* Host value (never empty) */
    struct ws_handshake_slice key;           /* Sec-WebSocket-Key as sent (24 chars) */
    struct ws_handshake_slice origin;        /* Origin; ptr NULL when absent */
    struct ws_handshake_slice forwarded_for; /* the last X-Forwarded-For line; NULL when absent */
    /* Offered subprotocols in the client's order of preference, all
     * Sec-WebSocket-Protocol lines combined (RFC 7230 §3.2.2). */
    struct ws_handshake_slice protocols[WS_HANDSHAKE_PROTOCOLS_MAX];
    size_t protocol_count;
    /* Raw Sec-WebSocket-Extensions values, for ws_handshake_negotiate_deflate. */
    struct ws_handshake_slice extensions[WS_HANDSHAKE_EXTENSION_HEADERS_MAX];
    size_t extension_count;
    enum ws_handshake_err err; /* why the last call returned WS_HANDSHAKE_INVALID */
};

/* Looks for the end of a request head in buf[0..len) and, once found,
 * validates it (RFC 6455 §4.2.1) and fills *req.
 * The caller appends bytes to one buffer and passes all of it on every call;
 * the first bytes must not change between calls (the buffer may move).
 * max_len is the largest head accepted (normally LIMITS_WS_HANDSHAKE_MAX).
 * Returns the head length (> 0, at most len; bytes after it are not part of
 * the handshake and stay the caller's), WS_HANDSHAKE_NEED_MORE when no blank
 * line has arrived yet, or WS_HANDSHAKE_INVALID with req->err set. Never
 * reads beyond buf[len - 1] nor beyond buf[max_len - 1]. */
long ws_handshake_parse(struct ws_handshake_state *st, const char *buf, size_t len, size_t max_len,
                        struct ws_handshake_req *req);

/* The one-line reason for err (a static string, no newline). */
const char *ws_handshake_strerror(enum ws_handshake_err err);
/* The HTTP status err is answered with: 426 for WS_HANDSHAKE_ERR_VERSION,
 * 400 for every other error, 0 for WS_HANDSHAKE_OK. */
int ws_handshake_status(enum ws_handshake_err err);

/* Computes Sec-WebSocket-Accept for a key as sent by the client (RFC 6455
 * §4.2.2 step 5.4: base64(SHA-1(key + GUID))). out receives
 * WS_HANDSHAKE_ACCEPT_LEN characters and a NUL. Only the first 64 bytes of
 * the key are used; a key that passed ws_handshake_parse has 24. */
void ws_handshake_accept(const char *key, size_t key_len, char out[WS_HANDSHAKE_ACCEPT_LEN + 1]);

/* Picks the first subprotocol the client offered that is among the
 * n_supported NUL-terminated names (exact, case-sensitive match).
 * Returns true and sets *out (a slice of the request buffer), or returns
 * false when none matches: the 101 then carries no Sec-WebSocket-Protocol. */
bool ws_handshake_select_protocol(const struct ws_handshake_req *req, const char *const *supported,
                                  size_t n_supported, struct ws_handshake_slice *out);

/* Writes the 101 Switching Protocols response for a valid req into
 * out[0..cap): Upgrade, Connection, Sec-WebSocket-Accept, and the
 * Sec-WebSocket-Protocol and Sec-WebSocket-Extensions lines when protocol
 * (protocol_len bytes) or extensions (NUL-terminated) is not NULL.
 * Returns the response length (a NUL follows it), or -1 when it does not fit
 * or a value contains a control byte. */
long ws_handshake_write_101(char *out, size_t cap, const struct ws_handshake_req *req,
                            const char *protocol, size_t protocol_len, const char *extensions);

/* Writes a refusal into out[0..cap): status is 400, 403, 426 or 503; reason
 * is one line without control bytes and becomes the text/plain body (with a
 * final LF). Every refusal closes the connection: "Connection: close", except
 * 426, which carries "Upgrade: websocket", "Connection: Upgrade, close" and
 * "Sec-WebSocket-Version: 13" (RFC 6455 §4.4, RFC 7231 §6.5.15);
 * 503 carries Retry-After when retry_after_s > 0. Returns the response
 * length (a NUL follows it), or -1 for another status, a bad reason or a
 * short buffer. */
long ws_handshake_write_error(char *out, size_t cap, int status, const char *reason,
                              unsigned retry_after_s);

/* permessage-deflate (RFC 7692 §7): what the server agreed to. */
struct ws_handshake_pmd {
    bool is_accepted;
    /* Always true when accepted: we compress every message with an empty
     * window, so one compressed copy serves every subscriber. */
    bool server_no_context_takeover;
    /* The client resets its window per message: the inflater may reset too. */
    bool client_no_context_takeover;
    int server_max_window_bits;                   /* 9..15: compress with this window */
    int client_max_window_bits;                   /* 8..15: the client compresses within this */
    char response[WS_HANDSHAKE_PMD_RESPONSE_MAX]; /* Sec-WebSocket-Extensions value */
};

/* Server preferences for ws_handshake_negotiate_deflate; zero-filled (or a
 * NULL pointer) means the defaults. */
struct ws_handshake_pmd_policy {
    /* Largest client window we let the client use, when its offer allows us
     * to limit it (8..15; 0 means 15). Smaller saves inflater memory. */
    int client_max_window_bits;
    /* Answer client_no_context_takeover even when not offered (RFC 7692
     * §7.1.1.2 allows it), so an inflater never outlives a message. */
    bool is_client_no_context_takeover_forced;
    /* Decline offers whose server_max_window_bits is below this (9..15;
     * 0 means 9), and try the next offer. A server that compresses each
     * message once for everyone, at one window size, sets its size here. */
    int server_max_window_bits_min;
};

/* Walks the offers in values[0..n) (each a Sec-WebSocket-Extensions value,
 * usually req->extensions) and accepts the first acceptable permessage-deflate
 * offer. Unacceptable offers (unknown, repeated or invalid parameter,
 * server_max_window_bits=8 or below the policy's minimum) are declined and
 * the next one is tried; a syntax
 * error ends the walk through that value. Fills *out, including the
 * NUL-terminated response string, and returns out->is_accepted. Never fails
 * the handshake: declining means no compression. */
bool ws_handshake_negotiate_deflate(const struct ws_handshake_slice *values, size_t n,
                                    const struct ws_handshake_pmd_policy *policy,
                                    struct ws_handshake_pmd *out);

#endif
