/* sse: text/event-stream encoding (WHATWG HTML, "Server-sent events").
 * Pure: bytes in, bytes out into caller storage; no I/O, clock or globals.
 * Each function has a _len twin or a cap argument so the caller can size
 * the buffer exactly once; nothing here allocates. */
#ifndef LITEPUSH_SSE_H
#define LITEPUSH_SSE_H

#include <stddef.h>
#include <stdint.h>

/* One event as it goes on the wire. `event` may be NULL (plain "message");
 * `data` is text (a BLOB row is base64-encoded by the caller first). */
struct sse_event {
    int64_t id;
    const char *event;
    size_t event_len;
    const char *data;
    size_t data_len;
};

/* Exact number of bytes sse_encode_event writes for ev. */
size_t sse_event_len(const struct sse_event *ev);
/* Writes ev as "id: N\n[event: E\n](data: LINE\n)+\n" into out, which must
 * hold sse_event_len(ev) bytes. Returns the bytes written. Data is split
 * into one data line per line at CRLF, LF or CR; an event type is cut at
 * its first line break (a type cannot span lines). Bytes of the type or
 * data that are not UTF-8 are written as U+FFFD (see utf8_repair), so the
 * output is always valid UTF-8. */
size_t sse_encode_event(const struct sse_event *ev, char *out);

/* Writes "retry: MS\n\n" into out[cap]. Returns the length, or 0 if cap is too small. */
size_t sse_encode_retry(unsigned retry_ms, char *out, size_t cap);

/* Writes "id: N\n\n", a block with an id and no data, into out[cap]: the
 * client dispatches no event (WHATWG SSE: an empty data buffer is not
 * dispatched) but takes N as its last event id, which it sends back as
 * Last-Event-ID when it reconnects. Returns the length, or 0 if cap is too
 * small. */
size_t sse_encode_id(int64_t id, char *out, size_t cap);

/* The comment sent on an idle stream so that proxies keep it open. */
#define SSE_HEARTBEAT ": keepalive\n\n"
#define SSE_HEARTBEAT_LEN (sizeof SSE_HEARTBEAT - 1)

/* The event that ends a stream whose token expired (access.h): no id line,
 * so the client's last event id stays that of the last row. */
#define SSE_EXPIRED "event: litepush.expired\ndata: {\"reason\":\"token-expired\"}\n\n"
#define SSE_EXPIRED_LEN (sizeof SSE_EXPIRED - 1)

#endif
