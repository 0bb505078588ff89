/* ws_frame: RFC 6455 frame decoding (client to server) and encoding.
 *
 * The decoder is a byte-at-a-time state machine for the header (2 to 14
 * bytes) and a bulk in-place unmask for the payload. Header bytes are
 * consumed into the decoder state as they arrive, so resumption never
 * rescans input and the caller never buffers a partial header. Each check
 * runs on the byte that carries the field it checks, so an invalid frame
 * fails before the rest of it arrives.
 *
 * Invariants: phase P_B0 with zeroed fields is the start state; err, once
 * set, is returned by every later call; frame_done <= frame_len; in phase
 * P_PAYLOAD the whole header has been checked and the message bookkeeping
 * (is_in_message, message_len) already includes the current frame.
 *
 * NOTES (deliberate choices where RFC 6455 leaves room):
 * - Non-minimal lengths are a protocol error (1002). §5.2 says the minimal
 *   number of bytes MUST be used to encode the length; it does not say the
 *   receiver must reject a longer form, but accepting it would let a
 *   client smuggle frames past length-based filters for no benefit.
 * - The message size limit counts payload bytes on the wire, so with
 *   permessage-deflate it bounds the compressed size; the inflater must
 *   apply its own limit to the output.
 * - A close payload is not inspected here (the decoder may hand it out in
 *   pieces); the caller collects it and calls ws_frame_close_parse.
 * - Close codes 1012-1014 (registered with IANA after RFC 6455) are
 *   accepted; 1015 and 1016-2999 are rejected as the Autobahn suite expects.
 */
#include "ws_frame.h"

#include <string.h>

#include "utf8.h"

enum {
    P_B0 = 0, /* FIN, RSV1-3, opcode */
    P_B1,     /* MASK, 7-bit length */
    P_LEN16,  /* 16-bit extended length, need bytes to go */
    P_LEN64,  /* 64-bit extended length, need bytes to go */
    P_MASK,   /* masking key, need bytes to go */
    P_PAYLOAD /* frame_len - frame_done payload bytes to go */
};

static bool is_control(unsigned opcode)
{
    return (opcode & 0x8) != 0;
}

/* RFC 6455 §5.2 defines 0x0-0x2 and 0x8-0xA; the rest are reserved. */
static bool is_known_opcode(unsigned opcode)
{
    return opcode <= WS_FRAME_OP_BINARY ||
           (opcode >= WS_FRAME_OP_CLOSE && opcode <= WS_FRAME_OP_PONG);
}

/* XORs p[0..n) with the masking key, starting at payload offset `offset`
 * (RFC 6455 §5.3: octet i is XORed with key octet i MOD 4). Eight bytes at
 * a time: since 8 is a multiple of 4, one rotated 64-bit key fits every word. */
static void apply_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset)
{
    uint8_t key[8];
    uint64_t key_word, w;
    size_t i = 0;

    for (size_t k = 0; k < sizeof key; k++)
        key[k] = mask[(offset + k) & 3];
    memcpy(&key_word, key, sizeof key_word);
    for (; n - i >= 8; i += 8) {
        memcpy(&w, p + i, sizeof w);
        w ^= key_word;
        memcpy(p + i, &w, sizeof w);
    }
    for (; i < n; i++)
        p[i] ^= key[i & 7];
}

/* Checks the first header byte against the frame and message rules. */
static enum ws_frame_err take_b0(struct ws_frame_decoder *dec, uint8_t b, bool is_deflate)
{
    unsigned opcode = b & 0x0F;
    bool is_fin = (b & 0x80) != 0, is_rsv1 = (b & 0x40) != 0;

    /* RFC 6455 §5.2: RSV2 and RSV3 MUST be 0; no extension we negotiate
     * defines them. */
    if (b & 0x30)
        return WS_FRAME_ERR_RSV;
    /* RFC 6455 §5.2: reserved opcodes fail the connection. */
    if (!is_known_opcode(opcode))
        return WS_FRAME_ERR_OPCODE;
    if (is_control(opcode)) {
        /* RFC 6455 §5.5: control frames MUST NOT be fragmented. */
        if (!is_fin)
            return WS_FRAME_ERR_CONTROL_FRAGMENTED;
        /* RFC 7692 §6: RSV1 must not be set on control frames. */
        if (is_rsv1)
            return WS_FRAME_ERR_RSV;
    } else if (opcode == WS_FRAME_OP_CONT) {
        /* RFC 6455 §5.4: a continuation needs a fragmented message to continue. */
        if (!dec->is_in_message)
            return WS_FRAME_ERR_CONT_NO_MESSAGE;
        /* RFC 7692 §6: RSV1 is set on the first frame of a message only. */
        if (is_rsv1)
            return WS_FRAME_ERR_RSV;
    } else {
        /* RFC 6455 §5.4: fragments of one message are not interleaved with
         * another data message; only control frames may come in between. */
        if (dec->is_in_message)
            return WS_FRAME_ERR_MESSAGE_IN_PROGRESS;
        /* RFC 6455 §5.2: RSV1 needs a negotiated extension that defines it;
         * RFC 7692 §6: permessage-deflate uses it on the first frame. */
        if (is_rsv1 && !is_deflate)
            return WS_FRAME_ERR_RSV;
    }
    dec->opcode = (uint8_t)opcode;
    dec->is_fin = is_fin;
    dec->is_rsv1 = is_rsv1;
    dec->frame_len = 0;
    dec->phase = P_B1;
    return WS_FRAME_OK;
}

/* The whole payload length is known: apply the message limit and record
 * the frame in the message bookkeeping. */
static enum ws_frame_err length_known(struct ws_frame_decoder *dec, uint64_t max_message_len)
{
    if (dec->opcode == WS_FRAME_OP_CONT) {
        /* Per-message limit over all fragments, checked before any payload
         * arrives (1009, RFC 6455 §7.4.1). Written to avoid overflow. */
        if (dec->message_len > max_message_len ||
            dec->frame_len > max_message_len - dec->message_len)
            return WS_FRAME_ERR_TOO_BIG;
        dec->message_len += dec->frame_len;
        if (dec->is_fin)
            dec->is_in_message = false;
    } else if (!is_control(dec->opcode)) {
        if (dec->frame_len > max_message_len)
            return WS_FRAME_ERR_TOO_BIG;
        dec->message_len = dec->frame_len;
        dec->message_opcode = dec->opcode;
        dec->is_compressed = dec->is_rsv1;
        dec->is_in_message = !dec->is_fin;
    }
    dec->phase = P_MASK;
    dec->need = 4;
    return WS_FRAME_OK;
}

/* Consumes one header byte in any phase before P_PAYLOAD. */
static enum ws_frame_err take_header_byte(struct ws_frame_decoder *dec, uint8_t b,
                                          uint64_t max_message_len, bool is_deflate)
{
    switch (dec->phase) {
    case P_B0:
        return take_b0(dec, b, is_deflate);
    case P_B1:
        /* RFC 6455 §5.1: the server MUST close the connection upon receiving
         * an unmasked frame (§7.4.1: 1002). */
        if (!(b & 0x80))
            return WS_FRAME_ERR_UNMASKED;
        b &= 0x7F;
        /* RFC 6455 §5.5: control payloads are at most 125 bytes, so the
         * 126/127 extended forms are already too long. */
        if (is_control(dec->opcode) && b > LIMITS_WS_CONTROL_PAYLOAD)
            return WS_FRAME_ERR_CONTROL_TOO_LONG;
        if (b == 126) {
            dec->phase = P_LEN16;
            dec->need = 2;
            return WS_FRAME_OK;
        }
        if (b == 127) {
            dec->phase = P_LEN64;
            dec->need = 8;
            return WS_FRAME_OK;
        }
        dec->frame_len = b;
        return length_known(dec, max_message_len);
    case P_LEN16:
    case P_LEN64:
        /* RFC 6455 §5.2: the most significant bit of the 64-bit length MUST
         * be 0; it is in the first of the eight bytes. */
        if (dec->phase == P_LEN64 && dec->need == 8 && (b & 0x80))
            return WS_FRAME_ERR_LENGTH_MSB;
        dec->frame_len = dec->frame_len << 8 | b;
        if (--dec->need > 0)
            return WS_FRAME_OK;
        /* RFC 6455 §5.2: "the minimal number of bytes MUST be used to encode
         * the length" (see NOTES: enforced on receipt). */
        if (dec->phase == P_LEN16 ? dec->frame_len < 126 : dec->frame_len <= 0xFFFF)
            return WS_FRAME_ERR_LENGTH_NOT_MINIMAL;
        return length_known(dec, max_message_len);
    case P_MASK:
        dec->mask[4 - dec->need] = b;
        if (--dec->need == 0) {
            dec->phase = P_PAYLOAD;
            dec->frame_done = 0;
        }
        return WS_FRAME_OK;
    default:
        /* Not reachable from a zero-filled state; a corrupted one fails. */
        return WS_FRAME_ERR_OPCODE;
    }
}

ptrdiff_t ws_frame_decode(struct ws_frame_decoder *dec, uint8_t *buf, size_t len,
                          uint64_t max_message_len, bool is_deflate, struct ws_frame_chunk *out)
{
    size_t i = 0, n;
    uint64_t left;

    if (dec->err)
        return dec->err;
    /* The return value must fit; a larger buffer is simply taken in parts. */
    if (len > PTRDIFF_MAX)
        len = PTRDIFF_MAX;
    while (dec->phase != P_PAYLOAD) {
        enum ws_frame_err err;

        if (i == len)
            return WS_FRAME_NEED_MORE;
        err = take_header_byte(dec, buf[i++], max_message_len, is_deflate);
        if (err != WS_FRAME_OK) {
            dec->err = (int8_t)err;
            return err;
        }
    }
    left = dec->frame_len - dec->frame_done;
    n = len - i;
    if (left < n)
        n = (size_t)left;
    if (n == 0 && left > 0)
        return WS_FRAME_NEED_MORE;
    apply_mask(buf + i, n, dec->mask, dec->frame_done);

    out->data = buf + i;
    out->len = n;
    out->offset = dec->frame_done;
    out->frame_len = dec->frame_len;
    out->opcode = (enum ws_frame_opcode)dec->opcode;
    out->message_opcode =
        (enum ws_frame_opcode)(is_control(dec->opcode) ? dec->opcode : dec->message_opcode);
    out->is_fin = dec->is_fin;
    out->is_rsv1 = dec->is_rsv1;
    out->is_compressed = !is_control(dec->opcode) && dec->is_compressed;
    dec->frame_done += n;
    out->is_frame_end = dec->frame_done == dec->frame_len;
    out->is_message_end = out->is_frame_end && !is_control(dec->opcode) && dec->is_fin;
    if (out->is_frame_end)
        dec->phase = P_B0;
    return (ptrdiff_t)(i + n);
}

/* RFC 6455 §7.4.1 defines 1000-1011 but forbids 1004 (reserved), 1005 and
 * 1006 (local pseudo-codes) on the wire; IANA added 1012-1014 and reserved
 * 1015 (TLS, also local). 1016-2999 are for future RFCs (§7.4.2), 3000-4999
 * for libraries and applications; everything else is invalid. */
static bool close_code_is_valid(unsigned code)
{
    if (code >= 1000 && code <= 1003)
        return true;
    if (code >= 1007 && code <= 1014)
        return true;
    return code >= 3000 && code <= 4999;
}

enum ws_frame_err ws_frame_close_parse(const uint8_t *payload, size_t len,
                                       struct ws_frame_close *out)
{
    unsigned code;

    out->code = WS_FRAME_CLOSE_NO_STATUS;
    out->reason = payload;
    out->reason_len = 0;
    /* RFC 6455 §5.5.1: the body is optional; §7.1.5: no body means 1005. */
    if (len == 0)
        return WS_FRAME_OK;
    /* RFC 6455 §5.5.1: a body starts with a 2-byte code, so 1 byte is malformed. */
    if (len == 1)
        return WS_FRAME_ERR_CLOSE_LENGTH;
    /* RFC 6455 §5.5: a control payload is at most 125 bytes. */
    if (len > LIMITS_WS_CONTROL_PAYLOAD)
        return WS_FRAME_ERR_CONTROL_TOO_LONG;
    code = (unsigned)payload[0] << 8 | payload[1];
    /* RFC 6455 §7.4.1, §7.4.2: only defined or application codes. */
    if (!close_code_is_valid(code))
        return WS_FRAME_ERR_CLOSE_CODE;
    /* RFC 6455 §5.5.1: the reason is UTF-8; §8.1: invalid UTF-8 is 1007. */
    if (!utf8_is_valid(payload + 2, len - 2))
        return WS_FRAME_ERR_CLOSE_UTF8;
    out->code = (uint16_t)code;
    out->reason = payload + 2;
    out->reason_len = len - 2;
    return WS_FRAME_OK;
}

/* Writes a frame header, masked when mask is not NULL. Returns 0 for a
 * frame that would violate RFC 6455 §5.2/§5.5 or RFC 7692 §6. */
static size_t put_header(uint8_t *out, enum ws_frame_opcode opcode, bool is_fin, bool is_rsv1,
                         uint64_t payload_len, const uint8_t *mask)
{
    uint8_t mask_bit = mask ? 0x80 : 0;
    size_t n;

    if (!is_known_opcode((unsigned)opcode))
        return 0;
    if (is_control(opcode) && (!is_fin || payload_len > LIMITS_WS_CONTROL_PAYLOAD))
        return 0;
    if (is_rsv1 && opcode != WS_FRAME_OP_TEXT && opcode != WS_FRAME_OP_BINARY)
        return 0;
    if (payload_len > (uint64_t)INT64_MAX)
        return 0;
    out[0] = (uint8_t)((is_fin ? 0x80 : 0) | (is_rsv1 ? 0x40 : 0) | (unsigned)opcode);
    /* RFC 6455 §5.2: the shortest of the 7-, 16- and 64-bit forms. */
    if (payload_len < 126) {
        out[1] = (uint8_t)(mask_bit | payload_len);
        n = 2;
    } else if (payload_len <= 0xFFFF) {
        out[1] = mask_bit | 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        n = 4;
    } else {
        out[1] = mask_bit | 127;
        for (int k = 0; k < 8; k++)
            out[2 + k] = (uint8_t)(payload_len >> (56 - 8 * k));
        n = 10;
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

size_t ws_frame_header_encode(uint8_t out[WS_FRAME_SERVER_HEADER_MAX], enum ws_frame_opcode opcode,
                              bool is_fin, bool is_rsv1, uint64_t payload_len)
{
    /* RFC 6455 §5.1: a server MUST NOT mask frames it sends. */
    return put_header(out, opcode, is_fin, is_rsv1, payload_len, NULL);
}

size_t ws_frame_close_payload(uint8_t out[LIMITS_WS_CONTROL_PAYLOAD], uint16_t code,
                              const uint8_t *reason, size_t reason_len)
{
    size_t n = reason_len;

    /* RFC 6455 §7.4.1: 1005, 1006 and 1015 MUST NOT be sent, nor may
     * undefined codes; a body-less close is always allowed (§5.5.1). */
    if (!close_code_is_valid(code))
        return 0;
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (n > WS_FRAME_CLOSE_REASON_MAX) {
        n = WS_FRAME_CLOSE_REASON_MAX;
        /* reason[n] is the first byte cut off; while it is a continuation
         * byte, the character it belongs to started before n: drop it too. */
        while (n > 0 && (reason[n] & 0xC0) == 0x80)
            n--;
    }
    /* RFC 6455 §5.5.1: the reason must be UTF-8; our peer would fail the
     * connection with 1007 otherwise. */
    if (n > 0 && !utf8_is_valid(reason, n))
        n = 0;
    if (n > 0)
        memcpy(out + 2, reason, n);
    return 2 + n;
}

size_t ws_frame_encode_masked(uint8_t *out, size_t cap, enum ws_frame_opcode opcode, bool is_fin,
                              bool is_rsv1, const uint8_t mask[4], const uint8_t *payload,
                              size_t payload_len)
{
    uint8_t header[WS_FRAME_CLIENT_HEADER_MAX];
    size_t n = put_header(header, opcode, is_fin, is_rsv1, payload_len, mask);

    if (n == 0 || cap < n || cap - n < payload_len)
        return 0;
    memcpy(out, header, n);
    if (payload_len > 0)
        memcpy(out + n, payload, payload_len);
    /* RFC 6455 §5.3: a client masks every frame it sends. */
    apply_mask(out + n, payload_len, mask, 0);
    return n + payload_len;
}

/* The one table from errors to close codes (RFC 6455 §7.4.1). Every value
 * is listed, so a new one without a code is a -Wswitch warning. */
uint16_t ws_frame_err_close_code(enum ws_frame_err err)
{
    switch (err) {
    case WS_FRAME_OK:
    case WS_FRAME_NEED_MORE:
        return 0;
    case WS_FRAME_ERR_RSV:
    case WS_FRAME_ERR_OPCODE:
    case WS_FRAME_ERR_UNMASKED:
    case WS_FRAME_ERR_LENGTH_NOT_MINIMAL:
    case WS_FRAME_ERR_LENGTH_MSB:
    case WS_FRAME_ERR_CONTROL_TOO_LONG:
    case WS_FRAME_ERR_CONTROL_FRAGMENTED:
    case WS_FRAME_ERR_CONT_NO_MESSAGE:
    case WS_FRAME_ERR_MESSAGE_IN_PROGRESS:
    case WS_FRAME_ERR_CLOSE_LENGTH:
    case WS_FRAME_ERR_CLOSE_CODE:
        return 1002; /* protocol error */
    case WS_FRAME_ERR_CLOSE_UTF8:
    case WS_FRAME_ERR_TEXT_UTF8:
        return 1007; /* data inconsistent with the message type (§8.1: UTF-8) */
    case WS_FRAME_ERR_TOO_BIG:
        return 1009; /* message too big to process */
    }
    return 1002;
}

const char *ws_frame_strerror(enum ws_frame_err err)
{
    switch (err) {
    case WS_FRAME_OK:
        return "ok";
    case WS_FRAME_NEED_MORE:
        return "incomplete frame";
    case WS_FRAME_ERR_RSV:
        return "reserved bit set";
    case WS_FRAME_ERR_OPCODE:
        return "reserved opcode";
    case WS_FRAME_ERR_UNMASKED:
        return "client frame not masked";
    case WS_FRAME_ERR_LENGTH_NOT_MINIMAL:
        return "payload length not minimally encoded";
    case WS_FRAME_ERR_LENGTH_MSB:
        return "64-bit payload length has its top bit set";
    case WS_FRAME_ERR_CONTROL_TOO_LONG:
        return "control frame payload over 125 bytes";
    case WS_FRAME_ERR_CONTROL_FRAGMENTED:
        return "fragmented control frame";
    case WS_FRAME_ERR_CONT_NO_MESSAGE:
        return "continuation frame without a message to continue";
    case WS_FRAME_ERR_MESSAGE_IN_PROGRESS:
        return "new data frame inside a fragmented message";
    case WS_FRAME_ERR_TOO_BIG:
        return "message too big";
    case WS_FRAME_ERR_CLOSE_LENGTH:
        return "close payload of 1 byte";
    case WS_FRAME_ERR_CLOSE_CODE:
        return "invalid close code";
    case WS_FRAME_ERR_CLOSE_UTF8:
        return "close reason is not valid UTF-8";
    case WS_FRAME_ERR_TEXT_UTF8:
        return "text message is not valid UTF-8";
    }
    return "unknown error";
}
