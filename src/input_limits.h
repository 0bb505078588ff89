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
/* Default bytes queued for one client before it is dropped as too slow;
 * it then reconnects and resumes from the log, so nothing is lost. */
#define LIMITS_QUEUE_BYTES_DEFAULT (1024 * 1024)
/* Rows read from the log per batch, by the watcher and by a resume replay. */
#define LIMITS_BATCH_ROWS 256
/* Default for litepush-ws --max-message: the largest client message, after
 * inflating (close 1009 beyond). Rows going out are not limited. */
#define LIMITS_WS_MESSAGE_DEFAULT (1024 * 1024)
/* RFC 6455 §5.5: control frame payloads are at most 125 bytes. */
#define LIMITS_WS_CONTROL_PAYLOAD 125
/* Bytes of an HTTP Upgrade request head (400 beyond). */
#define LIMITS_WS_HANDSHAKE_MAX 8192
/* Bytes of UTF-8 in a string "ref" of a WebSocket publish (or "ping"), which
 * the server echoes in its answer ({"error":...} beyond). */
#define LIMITS_WS_REF_BYTES 64

#endif
