/* sse: row -> text/event-stream bytes.
 *
 * WHATWG SSE: CR, LF and CRLF all end a line, so each of them in the data
 * starts a new "data:" line, and the client joins the lines with LF again.
 * NOTES: a CRLF in the data therefore reaches the client as LF, and a lone CR
 * too: that is the format, not a loss we could avoid. A line break inside an
 * event type would end the field, so the type is cut at the first one.
 * WHATWG SSE: the stream is decoded as UTF-8. Bytes of the event type or
 * data that are not UTF-8 (a row written by SQL may hold any) go out with
 * each invalid sequence replaced by U+FFFD, which is what the client's
 * decoder would show, so every byte we send is valid UTF-8. CR and LF are
 * ASCII and never inside a sequence, so repairing line by line is the same
 * as repairing the whole text. */
#include "sse.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "utf8.h"

static size_t event_type_len(const struct sse_event *ev)
{
    if (ev->event == NULL)
        return 0;
    for (size_t i = 0; i < ev->event_len; i++)
        if (ev->event[i] == '\r' || ev->event[i] == '\n')
            return i;
    return ev->event_len;
}

/* Calls emit(line, len, ctx) for each line of data per the WHATWG rules. */
static void for_each_line(const char *data, size_t len,
                          void (*emit)(const char *line, size_t n, void *ctx), void *ctx)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\r' && data[i] != '\n')
            continue;
        emit(data + start, i - start, ctx);
        if (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
            i++;
        start = i + 1;
    }
    emit(data + start, len - start, ctx);
}

/* What the line callbacks share: the running length or write position,
 * and whether the data needs repairing (checked once, not per line). */
struct line_ctx {
    size_t n;
    char *p;
    bool is_valid;
};

static size_t repaired_len(const char *s, size_t n, bool is_valid)
{
    return is_valid ? n : utf8_repaired_len((const uint8_t *)s, n);
}

static size_t copy_repaired(char *out, const char *s, size_t n, bool is_valid)
{
    if (is_valid) {
        memcpy(out, s, n);
        return n;
    }
    return utf8_repair((const uint8_t *)s, n, (uint8_t *)out);
}

static void count_line(const char *line, size_t n, void *ctx)
{
    struct line_ctx *c = ctx;
    c->n += sizeof "data: \n" - 1 + repaired_len(line, n, c->is_valid);
}

static size_t decimal_len(int64_t v)
{
    char tmp[24];
    return (size_t)snprintf(tmp, sizeof tmp, "%lld", (long long)v);
}

size_t sse_event_len(const struct sse_event *ev)
{
    struct line_ctx c = {.n = sizeof "id: \n" - 1 + decimal_len(ev->id),
                         .is_valid = utf8_is_valid((const uint8_t *)ev->data, ev->data_len)};
    if (ev->event != NULL) {
        size_t n = event_type_len(ev);
        c.n += sizeof "event: \n" - 1 +
               repaired_len(ev->event, n, utf8_is_valid((const uint8_t *)ev->event, n));
    }
    for_each_line(ev->data, ev->data_len, count_line, &c);
    return c.n + 1;
}

static void put_line(const char *line, size_t n, void *ctx)
{
    struct line_ctx *c = ctx;
    memcpy(c->p, "data: ", 6);
    c->p += 6;
    c->p += copy_repaired(c->p, line, n, c->is_valid);
    *c->p++ = '\n';
}

size_t sse_encode_event(const struct sse_event *ev, char *out)
{
    char *p = out;
    char id_buf[24];
    int id_len = snprintf(id_buf, sizeof id_buf, "%lld", (long long)ev->id);
    memcpy(p, "id: ", 4);
    memcpy(p + 4, id_buf, (size_t)id_len);
    p[4 + id_len] = '\n';
    p += 5 + id_len;
    if (ev->event != NULL) {
        size_t n = event_type_len(ev);
        memcpy(p, "event: ", 7);
        p += 7;
        p += copy_repaired(p, ev->event, n, utf8_is_valid((const uint8_t *)ev->event, n));
        *p++ = '\n';
    }
    struct line_ctx c = {.p = p,
                         .is_valid = utf8_is_valid((const uint8_t *)ev->data, ev->data_len)};
    if (ev->data_len > 0)
        for_each_line(ev->data, ev->data_len, put_line, &c);
    else
        put_line("", 0, &c);
    p = c.p;
    *p++ = '\n';
    return (size_t)(p - out);
}

size_t sse_encode_retry(unsigned retry_ms, char *out, size_t cap)
{
    char tmp[32]; /* snprintf wants room for a NUL that the caller does not */
    int n = snprintf(tmp, sizeof tmp, "retry: %u\n\n", retry_ms);
    if (n <= 0 || (size_t)n > cap)
        return 0;
    memcpy(out, tmp, (size_t)n);
    return (size_t)n;
}

size_t sse_encode_id(int64_t id, char *out, size_t cap)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "id: %lld\n\n", (long long)id);
    if (n <= 0 || (size_t)n > cap)
        return 0;
    memcpy(out, tmp, (size_t)n);
    return (size_t)n;
}
