/* sse: row -> text/event-stream bytes.
 *
 * WHATWG SSE: CR, LF and CRLF all end a line, so each of them in the data
 * starts a new "data:" line, and the client joins the lines with LF again.
 * NOTES: a CRLF in the data therefore reaches the client as LF, and a lone CR
 * too: that is the format, not a loss we could avoid. A line break inside an
 * event type would end the field, so the type is cut at the first one. */
#include "sse.h"

#include <stdio.h>
#include <string.h>

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

static void count_line(const char *line, size_t n, void *ctx)
{
    (void)line;
    *(size_t *)ctx += sizeof "data: \n" - 1 + n;
}

static size_t decimal_len(int64_t v)
{
    char tmp[24];
    return (size_t)snprintf(tmp, sizeof tmp, "%lld", (long long)v);
}

size_t sse_event_len(const struct sse_event *ev)
{
    size_t n = sizeof "id: \n" - 1 + decimal_len(ev->id);
    if (ev->event != NULL)
        n += sizeof "event: \n" - 1 + event_type_len(ev);
    for_each_line(ev->data, ev->data_len, count_line, &n);
    return n + 1;
}

static void put_line(const char *line, size_t n, void *ctx)
{
    char **p = ctx;
    memcpy(*p, "data: ", 6);
    memcpy(*p + 6, line, n);
    (*p)[6 + n] = '\n';
    *p += 7 + n;
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
        memcpy(p + 7, ev->event, n);
        p[7 + n] = '\n';
        p += 8 + n;
    }
    if (ev->data_len > 0)
        for_each_line(ev->data, ev->data_len, put_line, &p);
    else
        put_line("", 0, &p);
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
