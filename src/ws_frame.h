/* ws_frame: RFC 6455 framing for litepush-ws, as pure functions.
 * A streaming decoder for client-to-server frames (masking, lengths, RSV
 * bits, opcodes, control-frame and fragmentation rules, message size limit)
 * that unmasks payload in place and hands it out in slices as it arrives;
 * a close-payload parser; and encoders for server frame headers, close
 * payloads and, for tests, masked client frames.
 * No I/O, clock, allocation or globals: any thread may call any function
 * on state it owns. */
#ifndef LITEPUSH_WS_FRAME_H
#define LITEPUSH_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "input_limits.h"

/* Largest header of a server-to-client (unmasked) frame: 2 + 8 length bytes. */
#define WS_FRAME_SERVER_HEADER_MAX 10
/* Largest header of a client-to-server (masked) frame: 2 + 8 + 4 mask bytes. */
#define WS_FRAME_CLIENT_HEADER_MAX 14
/* Bytes of reason text a close frame can carry: 125 minus the 2-byte code. */
#define WS_FRAME_CLOSE_REASON_MAX (LIMITS_WS_CONTROL_PAYLOAD - 2)
/* RFC 6455 §7.1.5: the close code to report when a close frame has no body. */
#define WS_FRAME_CLOSE_NO_STATUS 1005

/* RFC 6455 §5.2 opcodes; every other value is reserved and rejected. */
enum ws_frame_opcode {
    WS_FRAME_OP_CONT = 0x0,
    WS_FRAME_OP_TEXT = 0x1,
    WS_FRAME_OP_BINARY = 0x2,
    WS_FRAME_OP_CLOSE = 0x8,
    WS_FRAME_OP_PING = 0x9,
    WS_FRAME_OP_PONG = 0xA
};

/* Results and errors. The values are 0 or negative so that
 * ws_frame_decode can return them in place of a byte count. Each error
 * names the close code (RFC 6455 §7.4.1) that ws_frame_err_close_code
 * maps it to; after any error the connection must be failed (§7.1.7). */
enum ws_frame_err {
    WS_FRAME_OK = 0,
    WS_FRAME_NEED_MORE = -1,                /* not an error: input used up, call again */
    WS_FRAME_ERR_RSV = -2,                  /* 1002: RSV2/RSV3 set, or RSV1 not allowed here */
    WS_FRAME_ERR_OPCODE = -3,               /* 1002: reserved opcode 0x3-0x7 or 0xB-0xF */
    WS_FRAME_ERR_UNMASKED = -4,             /* 1002: client frame without a mask */
    WS_FRAME_ERR_LENGTH_NOT_MINIMAL = -5,   /* 1002: 16/64-bit length form for a short length */
    WS_FRAME_ERR_LENGTH_MSB = -6,           /* 1002: 64-bit length with its top bit set */
    WS_FRAME_ERR_CONTROL_TOO_LONG = -7,     /* 1002: control payload over 125 bytes */
    WS_FRAME_ERR_CONTROL_FRAGMENTED = -8,   /* 1002: control frame without FIN */
    WS_FRAME_ERR_CONT_NO_MESSAGE = -9,      /* 1002: continuation with no message in progress */
    WS_FRAME_ERR_MESSAGE_IN_PROGRESS = -10, /* 1002: text/binary frame inside a fragmented one */
    WS_FRAME_ERR_TOO_BIG = -11,             /* 1009: message longer than max_message_len */
    WS_FRAME_ERR_CLOSE_LENGTH = -12,        /* 1002: close payload of exactly 1 byte */
    WS_FRAME_ERR_CLOSE_CODE = -13,          /* 1002: close code not allowed on the wire */
    WS_FRAME_ERR_CLOSE_UTF8 = -14,          /* 1007: close reason is not valid UTF-8 */
    WS_FRAME_ERR_TEXT_UTF8 = -15            /* 1007: text message is not valid UTF-8 (never
                                               returned here: for the caller's utf8_feed check) */
};

/* Decoder state, owned by the caller (one per connection, about 48 bytes).
 * Zero-filled is the state before the first frame. The fields are private
 * to ws_frame.c. */
struct ws_frame_decoder {
    uint64_t frame_len;     /* payload length announced by the current header */
    uint64_t frame_done;    /* payload bytes of the current frame already returned */
    uint64_t message_len;   /* payload bytes of the data message in progress so far */
    uint8_t mask[4];        /* masking key of the current frame */
    uint8_t phase;          /* which header byte or the payload comes next */
    uint8_t need;           /* extended-length or mask bytes still to come */
    uint8_t opcode;         /* opcode of the current frame */
    uint8_t message_opcode; /* TEXT or BINARY of the current or last data message */
    bool is_fin;            /* FIN bit of the current frame */
    bool is_rsv1;           /* RSV1 bit of the current frame */
    bool is_in_message;     /* a fragmented data message awaits continuations */
    bool is_compressed;     /* RSV1 was set on the first frame of the data message */
    int8_t err;             /* sticky error (an enum ws_frame_err), 0 while healthy */
};

/* One piece of one frame's payload, unmasked. */
struct ws_frame_chunk {
    const uint8_t *data;                 /* slice of the caller's buf; valid while buf is */
    size_t len;                          /* bytes at data; 0 only for an empty frame */
    uint64_t offset;                     /* where data starts within the frame payload */
    uint64_t frame_len;                  /* the frame's whole payload length, from its header */
    enum ws_frame_opcode opcode;         /* as on the wire (CONT for continuations) */
    enum ws_frame_opcode message_opcode; /* TEXT/BINARY for data frames and their
                                            continuations; same as opcode for control */
    bool is_fin;                         /* the frame's FIN bit */
    bool is_rsv1;        /* the frame's RSV1 bit (permessage-deflate, first frame) */
    bool is_compressed;  /* data message whose first frame had RSV1 (RFC 7692 §6) */
    bool is_frame_end;   /* offset + len == frame_len: the frame is complete */
    bool is_message_end; /* is_frame_end of a data frame with FIN: message complete */
};

/* Decodes client-to-server frames from buf[0..len), the next bytes of the
 * stream after everything fed to *dec before.
 *
 * Streaming contract (chosen to keep idle connections free of buffers):
 * header bytes are absorbed into *dec one by one, so a header cut by the
 * end of a read needs no buffering by the caller, and no byte is ever
 * looked at twice. Payload bytes are unmasked IN PLACE in buf (which is
 * why buf is not const) and returned as a chunk as soon as at least one
 * has arrived; the mask offset is carried in *dec. The caller therefore
 * never keeps a partial frame and may read every connection into one
 * shared buffer; it holds memory only for a message in flight (the data
 * collected so far, at most max_message_len bytes) and for a control
 * payload (at most LIMITS_WS_CONTROL_PAYLOAD bytes, which may also arrive
 * in several chunks and must be collected before ws_frame_close_parse).
 *
 * Each call returns one of:
 *   n >= 0              n bytes of buf were consumed and *out holds one
 *                       chunk, which is the last out->len of those n bytes.
 *                       A chunk never spans two frames; an empty frame
 *                       gives one chunk with len 0 and is_frame_end.
 *   WS_FRAME_NEED_MORE  all len bytes were consumed (possibly 0) and no
 *                       chunk is ready; call again when more bytes arrive.
 *   an error (< -1)     the connection must be failed with the close code
 *                       ws_frame_err_close_code() gives; *dec keeps
 *                       returning the same error. *out is unspecified.
 * So the caller loops on the unconsumed rest of its buffer until
 * WS_FRAME_NEED_MORE or an error.
 *
 * Checks, each failing on the first byte that shows the violation:
 * masking (RFC 6455 §5.1), RSV bits (§5.2; RSV1 only on the first frame
 * of a data message and only when is_deflate says permessage-deflate was
 * negotiated, RFC 7692 §6), reserved opcodes (§5.2), minimal length
 * encoding and the 64-bit MSB (§5.2), control frames (§5.5: FIN set,
 * payload <= 125), fragmentation (§5.4), and the sum of a data message's
 * frame lengths against max_message_len (as soon as a header announces
 * a length, before its payload; pass UINT64_MAX for no limit). With
 * permessage-deflate the limit applies to the compressed bytes.
 *
 * Not checked here: UTF-8 of text messages (feed each chunk of an
 * uncompressed TEXT message to utf8_feed and require UTF8_COMPLETE at
 * is_message_end; on failure close with WS_FRAME_ERR_TEXT_UTF8), the
 * close payload (ws_frame_close_parse), and what follows a close frame
 * (the decoder would go on decoding; the caller stops reading, §5.5.1). */
ptrdiff_t ws_frame_decode(struct ws_frame_decoder *dec, uint8_t *buf, size_t len,
                          uint64_t max_message_len, bool is_deflate, struct ws_frame_chunk *out);

/* A parsed close frame body (RFC 6455 §5.5.1). */
struct ws_frame_close {
    uint16_t code;         /* WS_FRAME_CLOSE_NO_STATUS when the body is empty */
    const uint8_t *reason; /* slice of the payload, not NUL-terminated */
    size_t reason_len;
};

/* Parses a complete close payload[0..len). An empty payload is valid
 * (code 1005, no reason). Errors: WS_FRAME_ERR_CLOSE_LENGTH for 1 byte,
 * WS_FRAME_ERR_CONTROL_TOO_LONG over 125 bytes, WS_FRAME_ERR_CLOSE_CODE
 * for a code outside 1000-1003, 1007-1014, 3000-4999 (RFC 6455 §7.4.1,
 * §7.4.2 and the IANA registry), WS_FRAME_ERR_CLOSE_UTF8 for a reason
 * that is not valid UTF-8. out->reason points into payload. */
enum ws_frame_err ws_frame_close_parse(const uint8_t *payload, size_t len,
                                       struct ws_frame_close *out);

/* Writes the header of a server-to-client frame (no mask, RFC 6455 §5.1)
 * with the shortest length form (§5.2) into out. Returns its length, 2 to
 * 10. Returns 0, writing nothing useful, for a frame that would break the
 * protocol: an unknown opcode, a control frame without FIN or with more
 * than 125 bytes, RSV1 on anything but a TEXT/BINARY frame, or a length
 * of 2^63 or more. The payload follows the header unchanged. */
size_t ws_frame_header_encode(uint8_t out[WS_FRAME_SERVER_HEADER_MAX], enum ws_frame_opcode opcode,
                              bool is_fin, bool is_rsv1, uint64_t payload_len);

/* Builds a close payload (RFC 6455 §5.5.1) in out: the 2-byte code, then
 * reason[0..reason_len) cut to WS_FRAME_CLOSE_REASON_MAX bytes at a
 * character boundary. A reason that is not valid UTF-8 after the cut is
 * dropped. A code that must not appear on the wire (§7.4: 0-999, 1004,
 * 1005, 1006, 1015, ...) gives an empty payload, i.e. a close without a
 * status. reason may be NULL when reason_len is 0. Returns the payload
 * length, 0 or 2 to 125. */
size_t ws_frame_close_payload(uint8_t out[LIMITS_WS_CONTROL_PAYLOAD], uint16_t code,
                              const uint8_t *reason, size_t reason_len);

/* Client-side encoder for tests and fuzzing: writes a whole masked frame
 * (header with mask, then payload XORed with mask, RFC 6455 §5.3) into
 * out[0..cap). Same validity rules as ws_frame_header_encode. Returns the
 * frame length, or 0 if the frame is invalid or does not fit in cap. */
size_t ws_frame_encode_masked(uint8_t *out, size_t cap, enum ws_frame_opcode opcode, bool is_fin,
                              bool is_rsv1, const uint8_t mask[4], const uint8_t *payload,
                              size_t payload_len);

/* The close code for err: 1002, 1007 or 1009, as listed at each value;
 * 0 for WS_FRAME_OK and WS_FRAME_NEED_MORE, which are not errors; 1002
 * for a value outside the enum. */
uint16_t ws_frame_err_close_code(enum ws_frame_err err);

/* A short English reason for err (a static string under 123 bytes, fit to
 * be a close reason). Unknown values give "unknown error". */
const char *ws_frame_strerror(enum ws_frame_err err);

#endif
