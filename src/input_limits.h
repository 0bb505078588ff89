/* input_limits: every limit on network input, in one place (constants
 * prefixed LIMITS_; the file is not limits.h so that <limits.h> stays the
 * system's). Each is the largest value accepted; anything larger gets the refusal the contract
 * names (HTTP 400, WebSocket close 1009, a dropped slow client). Flags may lower or raise the ones
 * marked "default". */
#ifndef LITEPUSH_INPUT_LIMITS_H
#define LITEPUSH_INPUT_LIMITS_H

/* Channel name length in bytes after percent-decoding (400 beyond). */
#define LIMITS_CHANNEL_NAME_MAX 128
/* Channels one stream or socket may subscribe to (400 beyond). */
#define LIMITS_CHANNELS_PER_STREAM 16
/* Decimal digits of an event id: ids are SQLite rowids, at most 2^63-1 (19 digits). */
#define LIMITS_EVENT_ID_DIGITS 19
/* Bytes of a query string we are willing to parse (400 beyond). */
#define LIMITS_QUERY_MAX 8192
/* Default bytes one client may leave unread before it is dropped as too
 * slow (beyond what the server queued in one step: conn_is_too_slow); it
 * then reconnects and resumes from the log, so nothing is lost. */
#define LIMITS_QUEUE_BYTES_DEFAULT (1024 * 1024)
/* Rows read from the log per batch, by the watcher and by a resume replay. */
#define LIMITS_BATCH_ROWS 256
/* Bytes a resume replay queues per batch (beyond one row): the next batch
 * is read once this one is written, so a resume over big rows costs no
 * more memory than one over small ones. */
#define LIMITS_REPLAY_BATCH_BYTES (256 * 1024)
/* Default for --max-row (both programs): the most data bytes a row may have
 * to be sent; a bigger row goes out as a litepush.skipped event instead
 * (README: "Row size"). */
#define LIMITS_ROW_DEFAULT (16L * 1024 * 1024)
/* Default for litepush-ws --max-message: the largest client message, after
 * inflating (close 1009 beyond). Rows going out are not limited. */
#define LIMITS_WS_MESSAGE_DEFAULT (1024 * 1024)
/* RFC 6455 §5.5: control frame payloads are at most 125 bytes. */
#define LIMITS_WS_CONTROL_PAYLOAD 125
/* Time the responder's accept threads wait for a FastCGI request's
 * parameters to arrive (the connection is closed beyond): a web server
 * sends them at once, an idle local client must not hold a thread. */
#define LIMITS_FCGI_REQUEST_MS 3000
/* Bytes of an HTTP Upgrade request head (400 beyond). */
#define LIMITS_WS_HANDSHAKE_MAX 8192
/* Bytes of UTF-8 in a string "ref" of a WebSocket publish (or "ping"), which
 * the server echoes in its answer ({"error":...} beyond). */
#define LIMITS_WS_REF_BYTES 64

/* Bytes of a bearer token (JWT) from a header, query or cookie (401 beyond). */
#define LIMITS_TOKEN_MAX 4096
/* Bytes of the "sub" claim kept for logs (a longer one makes the token invalid). */
#define LIMITS_TOKEN_SUB_MAX 256
/* Bytes of an Origin header value compared with --cors-origin / --origin. */
#define LIMITS_ORIGIN_MAX 256

#endif
