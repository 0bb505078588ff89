/* libFuzzer target for sse. Input: byte 0 selects options (bit 0: the row
 * has an event type; bits 1-2: the id is 0, INT64_MAX or taken from the
 * input's length and byte 0), byte 1 is the length of the event type, and
 * the rest is the event type followed by the data. Invariants:
 *   - sse_encode_event writes exactly sse_event_len bytes (into a buffer of
 *     exactly that size, so ASan catches one byte more);
 *   - the output is "id: " line, at most one "event: " line, one or more
 *     "data: " lines (one per line of the data), then one blank line, and
 *     LF is its only line break: nothing else can reach the client;
 *   - the output is valid UTF-8, whatever bytes the row holds;
 *   - a reference WHATWG decoder reads back one event with the same id, the
 *     data with CRLF and CR turned into LF, and the event type cut at its
 *     first line break, each with invalid UTF-8 repaired (utf8_repair). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"
#include "utf8.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static bool is_break(char c)
{
    return c == '\r' || c == '\n';
}

static bool starts_with(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

/* The decoded event, per WHATWG "Interpreting an event stream". */
struct decoded {
    int dispatched;
    char *id;
    size_t id_len;
    bool has_event;
    const char *event;
    size_t event_len;
    char *data;
    size_t data_len;
};

static void decode(const char *s, size_t len, struct decoded *d, char *data_buf, char *id_buf)
{
    size_t dlen = 0;
    size_t start = 0;
    memset(d, 0, sizeof *d);
    for (size_t i = 0; i < len; i++) {
        if (!is_break(s[i]))
            continue;
        const char *line = s + start;
        size_t n = i - start;
        if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')
            i++;
        start = i + 1;
        if (n == 0) {
            if (dlen == 0)
                continue;
            d->dispatched++;
            d->data = data_buf;
            d->data_len = dlen - 1;
            dlen = 0;
            continue;
        }
        if (line[0] == ':')
            continue;
        const char *colon = memchr(line, ':', n);
        size_t name_len = colon ? (size_t)(colon - line) : n;
        const char *val = colon ? colon + 1 : line + n;
        size_t val_len = colon ? n - name_len - 1 : 0;
        if (val_len > 0 && val[0] == ' ') {
            val++;
            val_len--;
        }
        if (name_len == 4 && memcmp(line, "data", 4) == 0) {
            memcpy(data_buf + dlen, val, val_len);
            dlen += val_len;
            data_buf[dlen++] = '\n';
        } else if (name_len == 5 && memcmp(line, "event", 5) == 0) {
            d->has_event = true;
            d->event = val;
            d->event_len = val_len;
        } else if (name_len == 2 && memcmp(line, "id", 2) == 0) {
            memcpy(id_buf, val, val_len);
            d->id = id_buf;
            d->id_len = val_len;
        } else {
            abort(); /* a field the encoder never writes */
        }
    }
    CHECK(start == len); /* the output ends with a line break */
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t opts = in[0];
    const char *rest = (const char *)in + 2;
    size_t rest_len = size - 2;
    size_t ev_len = in[1] < rest_len ? in[1] : rest_len;
    struct sse_event ev = {
        .event = (opts & 1) ? rest : NULL,
        .event_len = (opts & 1) ? ev_len : 0,
        .data = rest + ((opts & 1) ? ev_len : 0),
        .data_len = rest_len - ((opts & 1) ? ev_len : 0),
    };
    switch ((opts >> 1) & 3) {
    case 0:
        ev.id = 0;
        break;
    case 1:
        ev.id = INT64_MAX;
        break;
    default:
        ev.id = (int64_t)size * 1000003 + opts;
        break;
    }

    size_t want = sse_event_len(&ev);
    char *out = malloc(want);
    CHECK(out != NULL);
    CHECK(sse_encode_event(&ev, out) == want);
    CHECK(utf8_is_valid((const uint8_t *)out, want));

    /* Line structure: id, [event], data+, blank; LF only. */
    size_t breaks_in_data = 0;
    for (size_t i = 0; i < ev.data_len; i++) {
        if (ev.data[i] == '\r' && i + 1 < ev.data_len && ev.data[i + 1] == '\n')
            continue; /* CRLF counts once, at its LF */
        breaks_in_data += is_break(ev.data[i]);
    }
    size_t pos = 0, line_no = 0, data_lines = 0;
    bool seen_event = false, seen_blank = false;
    while (pos < want) {
        const char *nl = memchr(out + pos, '\n', want - pos);
        CHECK(nl != NULL);
        size_t n = (size_t)(nl - (out + pos));
        const char *line = out + pos;
        CHECK(memchr(line, '\r', n) == NULL);
        CHECK(!seen_blank); /* nothing after the blank line */
        if (line_no == 0) {
            CHECK(starts_with(line, n, "id: "));
        } else if (n == 0) {
            seen_blank = true;
        } else if (starts_with(line, n, "event: ")) {
            CHECK(line_no == 1 && !seen_event && data_lines == 0);
            seen_event = true;
        } else {
            CHECK(starts_with(line, n, "data: "));
            data_lines++;
        }
        line_no++;
        pos += n + 1;
    }
    CHECK(seen_blank);
    CHECK(seen_event == (ev.event != NULL));
    CHECK(data_lines == breaks_in_data + 1);

    /* Reference decoding. */
    char *data_buf = malloc(want + 1);
    char id_buf[32], id_want[32];
    CHECK(data_buf != NULL);
    struct decoded d;
    decode(out, want, &d, data_buf, id_buf);
    CHECK(d.dispatched == 1);
    int id_want_len = snprintf(id_want, sizeof id_want, "%lld", (long long)ev.id);
    CHECK(d.id != NULL && d.id_len == (size_t)id_want_len && memcmp(d.id, id_want, d.id_len) == 0);
    CHECK(d.has_event == (ev.event != NULL));
    if (ev.event != NULL) {
        size_t cut = 0;
        while (cut < ev.event_len && !is_break(ev.event[cut]))
            cut++;
        uint8_t *fixed = malloc(3 * cut + 1);
        CHECK(fixed != NULL);
        size_t fixed_len = utf8_repair((const uint8_t *)ev.event, cut, fixed);
        CHECK(d.event_len == fixed_len && memcmp(d.event, fixed, fixed_len) == 0);
        free(fixed);
    }
    /* data with CRLF and CR normalised to LF, then repaired */
    char *norm = malloc(ev.data_len + 1);
    uint8_t *fixed = malloc(3 * ev.data_len + 1);
    CHECK(norm != NULL && fixed != NULL);
    size_t k = 0;
    for (size_t i = 0; i < ev.data_len; i++) {
        char c = ev.data[i];
        if (c == '\r') {
            c = '\n';
            if (i + 1 < ev.data_len && ev.data[i + 1] == '\n')
                i++;
        }
        norm[k++] = c;
    }
    size_t fixed_len = utf8_repair((const uint8_t *)norm, k, fixed);
    CHECK(fixed_len == d.data_len && memcmp(fixed, d.data, fixed_len) == 0);
    free(norm);
    free(fixed);
    free(data_buf);
    free(out);
    return 0;
}
