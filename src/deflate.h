/* deflate: permessage-deflate payloads (RFC 7692 §7.2); the only module
 * that includes zlib. The compressor turns one whole message into a
 * payload that any peer can inflate (no context is carried between
 * messages), so the hub compresses once and fans the bytes out. The
 * inflater decodes one client's messages with a hard limit on output.
 * Objects here are not shared between threads; distinct objects may be used
 * from different threads at once. Negotiation lives in ws_handshake.h.
 *
 * Memory (zlib 1.2.13, x86-64, measured through counting zalloc hooks by
 * tests/unit/test_deflate.c; deflate_*_heap_bytes report the live figure):
 *   inflater (always a 15-bit window), once it has inflated anything: 40,080 bytes =
 *     our z_stream holder 120 + inflate state 7,160 + window 32,768 + a
 *     16-byte size prefix on each of zlib's two blocks (malloc's own
 *     overhead comes on top). Allocated at the first compressed message,
 *     not at the handshake. With client_no_context_takeover,
 *     deflate_inflater_trim on an idle connection gives it all back.
 *   compressor, window bits 15, memLevel 8: 268,296 bytes, one per thread
 *     that compresses (not per connection). */
#ifndef LITEPUSH_DEFLATE_H
#define LITEPUSH_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Errors; each maps to one WebSocket close code (deflate_close_code). */
enum deflate_err {
    DEFLATE_OK = 0,
    DEFLATE_ERR_DATA,    /* not valid DEFLATE data: close 1002 */
    DEFLATE_ERR_TOO_BIG, /* inflated message exceeds the limit: close 1009 */
    DEFLATE_ERR_NOMEM,   /* allocation failed: close 1011 */
    DEFLATE_ERR_PARAM,   /* bad window bits or misuse (our bug): close 1011 */
};

const char *deflate_strerror(enum deflate_err err);
/* The close status for err (RFC 6455 §7.4.1), 1000 for DEFLATE_OK. */
int deflate_close_code(enum deflate_err err);

/* A growable byte buffer, owned by the caller and valid when zero-filled.
 * Functions here append to it, growing data with realloc; the caller frees
 * it with deflate_buf_free (or takes data and free()s it later). Setting len
 * to 0 reuses the allocation. */
struct deflate_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

/* Frees buf->data and zero-fills *buf. Accepts NULL. */
void deflate_buf_free(struct deflate_buf *buf);

/* ---- compression (server -> client) ---- */

/* A reusable compressor; opaque, created and freed only here. */
struct deflate_compressor;

/* Creates a compressor that writes with an LZ77 window of 2^window_bits
 * bytes (9..15: the negotiated server_max_window_bits, 15 by default) at
 * level 0..9 (-1: zlib's default, 6). Returns NULL on a bad argument or
 * when out of memory. Free with deflate_compressor_free. */
struct deflate_compressor *deflate_compressor_new(int window_bits, int level);
/* Frees c. Accepts NULL. */
void deflate_compressor_free(struct deflate_compressor *c);
/* Heap bytes c holds (zlib state included). */
size_t deflate_compressor_heap_bytes(const struct deflate_compressor *c);

/* Compresses the whole message in[0..len) as one permessage-deflate payload
 * (RFC 7692 §7.2.1: raw DEFLATE, sync flush, the final 00 00 FF FF removed)
 * and appends it to *out. Every message starts from an empty window, so the
 * result is valid for every peer that agreed to server_no_context_takeover
 * and to a server_max_window_bits of at least c's window. The frame carrying
 * it has RSV1 set. On error *out keeps its previous length. */
enum deflate_err deflate_compress(struct deflate_compressor *c, const void *in, size_t len,
                                  struct deflate_buf *out);

/* The same without a long-lived compressor: creates one, compresses, frees
 * it. Convenient and stateless, but it allocates ~260 KiB per call. */
enum deflate_err deflate_compress_message(const void *in, size_t len, int window_bits,
                                          struct deflate_buf *out);

/* ---- decompression (client -> server) ---- */

/* One connection's inflater. Embedded in the connection and valid when
 * zero-filled (window 15, context takeover); the fields are private. The
 * zlib state is allocated on the first compressed message that has bytes,
 * and freed by deflate_inflater_trim (when allowed) or deflate_inflater_free. */
struct deflate_inflater {
    struct deflate_zstream *zs;  /* owned; NULL until needed */
    int window_bits;             /* agreed client window; 0 means 15 */
    bool is_no_context_takeover; /* the agreed client_no_context_takeover */
    bool is_stream_end;          /* a BFINAL block ended this message */
    bool is_broken;              /* an error happened; only _free is valid */
    size_t msg_in_len;           /* compressed bytes of the message so far */
    size_t msg_out_len;          /* inflated bytes of the message so far */
};

/* Sets up a zero-filled or freed *inf from the negotiated parameters (the
 * agreed client_max_window_bits, 8..15, and client_no_context_takeover).
 * Allocates nothing. window_bits is only checked: every inflater decodes
 * with a 32 KiB window, so that the verdict on a peer overreaching its
 * window never depends on how its frames were split (see deflate.c). */
void deflate_inflater_init(struct deflate_inflater *inf, int window_bits,
                           bool is_no_context_takeover);

/* Feeds one fragment of a compressed message (the payload of each frame, the
 * first of which had RSV1 set) and appends what it inflates to *out.
 * is_fin marks the last fragment: the 00 00 FF FF tail is then appended
 * (RFC 7692 §7.2.2) and the message is finished.
 * max_len bounds the inflated size of the whole message: once the output
 * would pass it, inflating stops with DEFLATE_ERR_TOO_BIG, and *out never
 * grows by more than max_len + 1 bytes per message. After any error the
 * inflater is unusable (the connection is being failed); only
 * deflate_inflater_free may follow. */
enum deflate_err deflate_inflate(struct deflate_inflater *inf, const void *in, size_t len,
                                 bool is_fin, size_t max_len, struct deflate_buf *out);

/* Frees the zlib state when no message is in progress and the next message
 * does not need the old window (client_no_context_takeover), so an idle
 * connection costs nothing; the next compressed message allocates it again.
 * Returns true when the inflater now holds no heap. */
bool deflate_inflater_trim(struct deflate_inflater *inf);
/* Frees everything and zero-fills *inf (settings included). Accepts NULL. */
void deflate_inflater_free(struct deflate_inflater *inf);
/* Heap bytes inf holds now (0 before the first compressed message). */
size_t deflate_inflater_heap_bytes(const struct deflate_inflater *inf);

#endif
