/* deflate: permessage-deflate over zlib; the only file that includes zlib.h.
 *
 * Invariants: every z_stream lives in a heap holder whose address never
 * changes (it is zlib's `opaque`, used by the counting allocator); an
 * inflater's output per message never exceeds max_len + 1 bytes, so a tiny
 * compressed frame cannot make us allocate more than the message limit.
 *
 * NOTES
 * - Undecodable compressed data maps to close 1002. RFC 7692 names no close
 *   code for it: §7.2.2 defines the payload plus the 00 00 FF FF tail as
 *   DEFLATE data (RFC 1951), so anything else breaks the negotiated
 *   extension, which RFC 6455 §7.4.1 calls a protocol error (1002). 1007 is
 *   left to invalid UTF-8 ("data not consistent with the type of the
 *   message"). Some peers (Node's ws) use 1007 for this case.
 * - A compressed message with an empty payload inflates to an empty message
 *   without touching zlib. The tail alone is not a complete DEFLATE block,
 *   so a strict reading would fail it; some browsers send it.
 * - Bytes after a block with BFINAL set (RFC 7692 §7.2.3.4 allows such
 *   blocks) are ignored until the message ends; with context takeover the
 *   window is carried into the next message as a preset dictionary.
 * - A message must end on a DEFLATE block boundary once the tail is added
 *   (zlib reports it in data_type bit 128); otherwise it is invalid data.
 * - Every inflater uses a 32 KiB window, whatever client_max_window_bits
 *   was agreed. zlib (built without INFLATE_STRICT) checks a smaller window
 *   only against history, not against distances that land in the current
 *   output buffer, so a peer reaching past its promised window would be
 *   accepted or refused depending on how its bytes were split (found by
 *   fuzzing). With 15 bits, every distance DEFLATE can encode is judged
 *   against real history only, so the verdict is the same however the bytes
 *   arrive; a larger window never hurts a conforming peer. It also covers
 *   zlib before 1.2.9 writing with 512 bytes when asked for 256. */
#define ZLIB_CONST
#include "deflate.h"

#include <limits.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Each zlib allocation carries its size in front, aligned for any type. */
#define ALLOC_PREFIX alignof(max_align_t)
/* First output chunk; the buffer then doubles. */
#define OUT_CHUNK 4096
/* RFC 7692 §7.2.1 / §7.2.2: the empty stored block a sync flush ends with. */
static const uint8_t TAIL[4] = {0x00, 0x00, 0xff, 0xff};

/* A z_stream and the heap bytes zlib holds through it. */
struct deflate_zstream {
    z_stream strm;
    size_t heap_bytes;
};

struct deflate_compressor {
    struct deflate_zstream z;
};

const char *deflate_strerror(enum deflate_err err)
{
    switch (err) {
    case DEFLATE_OK:
        return "ok";
    case DEFLATE_ERR_DATA:
        return "invalid compressed data";
    case DEFLATE_ERR_TOO_BIG:
        return "decompressed message too big";
    case DEFLATE_ERR_NOMEM:
        return "out of memory";
    case DEFLATE_ERR_PARAM:
        return "compression misuse";
    }
    return "unknown compression error";
}

int deflate_close_code(enum deflate_err err)
{
    switch (err) {
    case DEFLATE_OK:
        return 1000;
    case DEFLATE_ERR_DATA:
        return 1002; /* protocol error; see NOTES */
    case DEFLATE_ERR_TOO_BIG:
        return 1009; /* RFC 6455 §7.4.1: message too big to process */
    case DEFLATE_ERR_NOMEM:
    case DEFLATE_ERR_PARAM:
        return 1011; /* RFC 6455 §7.4.1 (IANA registry): internal error */
    }
    return 1011;
}

/* ---- counting allocator ---- */

static voidpf count_alloc(voidpf opaque, uInt items, uInt size)
{
    struct deflate_zstream *z = opaque;
    if (size != 0 && items > (SIZE_MAX - ALLOC_PREFIX) / size)
        return Z_NULL;
    size_t n = (size_t)items * size + ALLOC_PREFIX;
    unsigned char *p = malloc(n);
    if (p == NULL)
        return Z_NULL;
    memcpy(p, &n, sizeof n);
    z->heap_bytes += n;
    return p + ALLOC_PREFIX;
}

static void count_free(voidpf opaque, voidpf ptr)
{
    struct deflate_zstream *z = opaque;
    if (ptr == NULL)
        return;
    unsigned char *p = (unsigned char *)ptr - ALLOC_PREFIX;
    size_t n;
    memcpy(&n, p, sizeof n);
    z->heap_bytes -= n;
    free(p);
}

static void hook_allocator(struct deflate_zstream *z)
{
    z->strm.zalloc = count_alloc;
    z->strm.zfree = count_free;
    z->strm.opaque = z;
}

/* ---- buffers ---- */

void deflate_buf_free(struct deflate_buf *buf)
{
    if (buf == NULL)
        return;
    free(buf->data);
    memset(buf, 0, sizeof *buf);
}

/* Makes room for at least `extra` more bytes, doubling the capacity but
 * never past len + limit (the caller passes extra <= limit). */
static enum deflate_err buf_reserve(struct deflate_buf *b, size_t extra, size_t limit)
{
    if (b->cap - b->len >= extra)
        return DEFLATE_OK;
    if (extra > SIZE_MAX - b->len)
        return DEFLATE_ERR_NOMEM;
    size_t need = b->len + extra;
    size_t max = limit > SIZE_MAX - b->len ? SIZE_MAX : b->len + limit;
    size_t cap = b->cap > OUT_CHUNK ? b->cap : OUT_CHUNK;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > max)
        cap = max > need ? max : need;
    uint8_t *p = realloc(b->data, cap);
    if (p == NULL)
        return DEFLATE_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return DEFLATE_OK;
}

/* ---- compression ---- */

struct deflate_compressor *deflate_compressor_new(int window_bits, int level)
{
    /* RFC 7692 §7.1.2.1 allows 8..15, but zlib >= 1.2.9 refuses a raw
     * 256-byte window, so the negotiation never agrees to 8. */
    if (window_bits < 9 || window_bits > 15 || level < -1 || level > 9)
        return NULL;
    struct deflate_compressor *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    hook_allocator(&c->z);
    /* Negative window bits: raw DEFLATE, no zlib header (RFC 7692 §7.2.1). */
    if (deflateInit2(&c->z.strm, level, Z_DEFLATED, -window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(c);
        return NULL;
    }
    return c;
}

void deflate_compressor_free(struct deflate_compressor *c)
{
    if (c == NULL)
        return;
    deflateEnd(&c->z.strm);
    free(c);
}

size_t deflate_compressor_heap_bytes(const struct deflate_compressor *c)
{
    return c == NULL ? 0 : sizeof *c + c->z.heap_bytes;
}

static enum deflate_err compress_into(z_stream *s, const uint8_t *in, size_t len,
                                      struct deflate_buf *out)
{
    size_t left = len;
    uLong bound = deflateBound(s, len > ULONG_MAX - 64 ? ULONG_MAX - 64 : (uLong)len) + 16;
    enum deflate_err err = buf_reserve(out, bound < SIZE_MAX ? (size_t)bound : len, SIZE_MAX);
    while (err == DEFLATE_OK) {
        if (s->avail_in == 0 && left > 0) {
            uInt chunk = left > UINT_MAX ? UINT_MAX : (uInt)left;
            s->next_in = in;
            s->avail_in = chunk;
            in += chunk;
            left -= chunk;
        }
        /* RFC 7692 §7.2.1: compress with a sync flush at the end of the
         * message, which ends the output with an empty stored block. */
        int flush = left == 0 ? Z_SYNC_FLUSH : Z_NO_FLUSH;
        err = buf_reserve(out, 1, SIZE_MAX);
        if (err != DEFLATE_OK)
            break;
        size_t room = out->cap - out->len;
        uInt avail = room > UINT_MAX ? UINT_MAX : (uInt)room;
        uInt in_before = s->avail_in;
        s->next_out = out->data + out->len;
        s->avail_out = avail;
        int ret = deflate(s, flush);
        out->len += avail - s->avail_out;
        if (ret == Z_STREAM_ERROR ||
            (ret == Z_BUF_ERROR && avail == s->avail_out && in_before == s->avail_in))
            return DEFLATE_ERR_PARAM;
        if (flush == Z_SYNC_FLUSH && s->avail_in == 0 && s->avail_out != 0)
            return DEFLATE_OK;
    }
    return err;
}

enum deflate_err deflate_compress(struct deflate_compressor *c, const void *in, size_t len,
                                  struct deflate_buf *out)
{
    if (c == NULL || out == NULL || (in == NULL && len > 0))
        return DEFLATE_ERR_PARAM;
    size_t start = out->len;
    /* RFC 7692 §7.2.1 with server_no_context_takeover: every message starts
     * with an empty LZ77 window, so the output does not depend on what this
     * compressor saw before, and any subscriber can inflate it. */
    if (deflateReset(&c->z.strm) != Z_OK)
        return DEFLATE_ERR_PARAM;
    enum deflate_err err = compress_into(&c->z.strm, in, len, out);
    /* RFC 7692 §7.2.1: remove the 00 00 FF FF the flush ended with. */
    if (err == DEFLATE_OK && (out->len - start < sizeof TAIL ||
                              memcmp(out->data + out->len - sizeof TAIL, TAIL, sizeof TAIL) != 0))
        err = DEFLATE_ERR_PARAM;
    if (err != DEFLATE_OK) {
        out->len = start;
        return err;
    }
    out->len -= sizeof TAIL;
    return DEFLATE_OK;
}

enum deflate_err deflate_compress_message(const void *in, size_t len, int window_bits,
                                          struct deflate_buf *out)
{
    struct deflate_compressor *c = deflate_compressor_new(window_bits, Z_DEFAULT_COMPRESSION);
    if (c == NULL)
        return window_bits < 9 || window_bits > 15 ? DEFLATE_ERR_PARAM : DEFLATE_ERR_NOMEM;
    enum deflate_err err = deflate_compress(c, in, len, out);
    deflate_compressor_free(c);
    return err;
}

/* ---- decompression ---- */

void deflate_inflater_init(struct deflate_inflater *inf, int window_bits,
                           bool is_no_context_takeover)
{
    memset(inf, 0, sizeof *inf);
    inf->window_bits = window_bits;
    inf->is_no_context_takeover = is_no_context_takeover;
}

static enum deflate_err open_inflater(struct deflate_inflater *inf)
{
    /* RFC 7692 §7.1.2.2: the client's window is 8..15 bits; we inflate with
     * 15 regardless (see NOTES). */
    if (inf->window_bits != 0 && (inf->window_bits < 8 || inf->window_bits > 15))
        return DEFLATE_ERR_PARAM;
    struct deflate_zstream *zs = calloc(1, sizeof *zs);
    if (zs == NULL)
        return DEFLATE_ERR_NOMEM;
    hook_allocator(zs);
    if (inflateInit2(&zs->strm, -15) != Z_OK) {
        free(zs);
        return DEFLATE_ERR_NOMEM;
    }
    inf->zs = zs;
    return DEFLATE_OK;
}

static void close_inflater(struct deflate_inflater *inf)
{
    if (inf->zs == NULL)
        return;
    inflateEnd(&inf->zs->strm);
    free(inf->zs);
    inf->zs = NULL;
}

/* Inflates in[0..len) into out, stopping at max_len + 1 bytes of message. */
static enum deflate_err inflate_bytes(struct deflate_inflater *inf, const uint8_t *in, size_t len,
                                      size_t max_len, struct deflate_buf *out)
{
    z_stream *s = &inf->zs->strm;
    while (len > 0 && !inf->is_stream_end) {
        uInt chunk = len > UINT_MAX ? UINT_MAX : (uInt)len;
        s->next_in = in;
        s->avail_in = chunk;
        for (;;) {
            /* Room for one byte past the limit, so overflow is seen, but
             * never more: a bomb stops after max_len + 1 bytes. */
            size_t allowed = max_len - inf->msg_out_len;
            if (allowed < SIZE_MAX)
                allowed++;
            if (buf_reserve(out, 1, allowed) != DEFLATE_OK)
                return DEFLATE_ERR_NOMEM;
            size_t room = out->cap - out->len;
            if (room > allowed)
                room = allowed;
            uInt avail = room > UINT_MAX ? UINT_MAX : (uInt)room;
            s->next_out = out->data + out->len;
            s->avail_out = avail;
            int ret = inflate(s, Z_SYNC_FLUSH);
            size_t produced = avail - s->avail_out;
            out->len += produced;
            inf->msg_out_len += produced;
            /* RFC 6455 §10.4: bound what one message may cost us. */
            if (inf->msg_out_len > max_len)
                return DEFLATE_ERR_TOO_BIG;
            if (ret == Z_STREAM_END) {
                inf->is_stream_end = true;
                break;
            }
            if (ret == Z_MEM_ERROR)
                return DEFLATE_ERR_NOMEM;
            if (ret == Z_STREAM_ERROR)
                return DEFLATE_ERR_PARAM;
            if (ret != Z_OK && ret != Z_BUF_ERROR)
                return DEFLATE_ERR_DATA; /* Z_DATA_ERROR: not RFC 1951 data */
            if (s->avail_out == 0)
                continue; /* output may be pending inside zlib */
            if (s->avail_in == 0)
                break;
            if (ret == Z_BUF_ERROR)
                return DEFLATE_ERR_DATA; /* no progress possible */
        }
        size_t used = chunk - s->avail_in;
        in += used;
        len -= used;
        if (inf->is_stream_end)
            break;
    }
    return DEFLATE_OK;
}

/* Carries the window over a BFINAL block into the next message (RFC 7692
 * §7.2.2: without client_no_context_takeover the next message uses the
 * same LZ77 window). */
static enum deflate_err carry_window(struct deflate_inflater *inf)
{
    z_stream *s = &inf->zs->strm;
    uInt n = 0;
    uint8_t *dict = malloc(1u << 15);
    if (dict == NULL)
        return DEFLATE_ERR_NOMEM;
    enum deflate_err err = DEFLATE_ERR_PARAM;
    if (inflateGetDictionary(s, dict, &n) == Z_OK && inflateReset(s) == Z_OK &&
        (n == 0 || inflateSetDictionary(s, dict, n) == Z_OK))
        err = DEFLATE_OK;
    free(dict);
    return err;
}

static enum deflate_err finish_message(struct deflate_inflater *inf, size_t max_len,
                                       struct deflate_buf *out)
{
    enum deflate_err err = DEFLATE_OK;
    if (inf->msg_in_len > 0 && !inf->is_stream_end) {
        /* RFC 7692 §7.2.2 step 1: append 00 00 FF FF, then inflate. */
        err = inflate_bytes(inf, TAIL, sizeof TAIL, max_len, out);
        /* The tail completes an empty stored block, so the data must now
         * sit on a block boundary (see NOTES). */
        if (err == DEFLATE_OK && !inf->is_stream_end && !(inf->zs->strm.data_type & 128))
            err = DEFLATE_ERR_DATA;
    }
    if (err == DEFLATE_OK && inf->zs != NULL) {
        if (inf->is_no_context_takeover) {
            /* RFC 7692 §7.2.2: with client_no_context_takeover the server
             * MAY start each message with an empty window. */
            if (inflateReset(&inf->zs->strm) != Z_OK)
                err = DEFLATE_ERR_PARAM;
        } else if (inf->is_stream_end) {
            err = carry_window(inf);
        }
    }
    inf->msg_in_len = 0;
    inf->msg_out_len = 0;
    inf->is_stream_end = false;
    return err;
}

enum deflate_err deflate_inflate(struct deflate_inflater *inf, const void *in, size_t len,
                                 bool is_fin, size_t max_len, struct deflate_buf *out)
{
    if (inf == NULL || out == NULL || inf->is_broken || (in == NULL && len > 0))
        return DEFLATE_ERR_PARAM;
    enum deflate_err err = DEFLATE_OK;
    if (len > 0 && !inf->is_stream_end) {
        if (inf->zs == NULL)
            err = open_inflater(inf); /* lazily: the first bytes need it */
        if (err == DEFLATE_OK)
            err = inflate_bytes(inf, in, len, max_len, out);
    }
    inf->msg_in_len += len;
    if (err == DEFLATE_OK && is_fin)
        err = finish_message(inf, max_len, out);
    if (err != DEFLATE_OK)
        inf->is_broken = true;
    return err;
}

bool deflate_inflater_trim(struct deflate_inflater *inf)
{
    if (inf == NULL || inf->zs == NULL)
        return true;
    /* Mid-message, or the next message needs this window: keep it. */
    if (!inf->is_broken && (inf->msg_in_len > 0 || !inf->is_no_context_takeover))
        return false;
    close_inflater(inf);
    return true;
}

void deflate_inflater_free(struct deflate_inflater *inf)
{
    if (inf == NULL)
        return;
    close_inflater(inf);
    memset(inf, 0, sizeof *inf);
}

size_t deflate_inflater_heap_bytes(const struct deflate_inflater *inf)
{
    return inf == NULL || inf->zs == NULL ? 0 : sizeof *inf->zs + inf->zs->heap_bytes;
}
