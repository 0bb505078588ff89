/* query: query-string and Last-Event-ID parsing.
 *
 * NOTES: '+' decodes to a space as in HTML forms. A repeated channel is
 * subscribed once (a second subscription would deliver every row twice).
 * A repeated lastEventId is refused rather than guessed at. Only the first
 * token= counts (access.h: the first credential found wins). */
#include "query.h"

#include <string.h>

#include "number.h"
#include "utf8.h"

static const char DEFAULT_CHANNEL[] = "default";

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes src[0..len) into dst; returns the decoded length or -1. */
static long url_decode(const char *src, size_t len, char *dst)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '+') {
            dst[n++] = ' ';
        } else if (src[i] == '%') {
            if (len - i < 3)
                return -1;
            int hi = hex_value(src[i + 1]);
            int lo = hex_value(src[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            dst[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            dst[n++] = src[i];
        }
    }
    return (long)n;
}

enum query_err query_parse_event_id(const char *s, size_t len, int64_t *out)
{
    if (len > LIMITS_EVENT_ID_DIGITS || !number_parse(s, len, INT64_MAX, out))
        return QUERY_ERR_BAD_EVENT_ID;
    return QUERY_OK;
}

enum query_err query_check_channel(const char *name, size_t len)
{
    if (len == 0)
        return QUERY_ERR_CHANNEL_EMPTY;
    if (len > LIMITS_CHANNEL_NAME_MAX)
        return QUERY_ERR_CHANNEL_TOO_LONG;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f)
            return QUERY_ERR_CHANNEL_BAD_BYTE;
    }
    if (!utf8_is_valid((const uint8_t *)name, len))
        return QUERY_ERR_CHANNEL_BAD_BYTE;
    return QUERY_OK;
}

static enum query_err add_channel(struct query_request *out, const char *name, size_t len)
{
    enum query_err err = query_check_channel(name, len);
    if (err != QUERY_OK)
        return err;
    for (size_t i = 0; i < out->channel_count; i++)
        if (out->channel_lens[i] == len && memcmp(out->channels[i], name, len) == 0)
            return QUERY_OK;
    if (out->channel_count == LIMITS_CHANNELS_PER_STREAM)
        return QUERY_ERR_TOO_MANY_CHANNELS;
    out->channels[out->channel_count] = name;
    out->channel_lens[out->channel_count] = len;
    out->channel_count++;
    return QUERY_OK;
}

static bool key_is(const char *key, size_t key_len, const char *want)
{
    return key_len == strlen(want) && memcmp(key, want, key_len) == 0;
}

enum query_err query_parse(const char *qs, size_t len, char *scratch, struct query_request *out)
{
    memset(out, 0, sizeof *out);
    if (len > LIMITS_QUERY_MAX)
        return QUERY_ERR_TOO_LONG;
    size_t used = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *amp = memchr(qs + pos, '&', len - pos);
        size_t end = amp ? (size_t)(amp - qs) : len;
        const char *eq = memchr(qs + pos, '=', end - pos);
        size_t key_end = eq ? (size_t)(eq - qs) : end;
        size_t val_start = eq ? key_end + 1 : end;
        /* Keys are compared decoded, so "%63hannel" is "channel". */
        char *key = scratch + used;
        long key_len = url_decode(qs + pos, key_end - pos, key);
        if (key_len < 0)
            return QUERY_ERR_BAD_ESCAPE;
        bool is_channel = key_is(key, (size_t)key_len, "channel");
        bool is_last_id = key_is(key, (size_t)key_len, "lastEventId");
        bool is_token = key_is(key, (size_t)key_len, "token") && out->token == NULL;
        bool is_position = key_is(key, (size_t)key_len, "position");
        if (is_channel || is_last_id || is_token || is_position) {
            char *val = scratch + used;
            long val_len = url_decode(qs + val_start, end - val_start, val);
            if (val_len < 0)
                return QUERY_ERR_BAD_ESCAPE;
            enum query_err err;
            if (is_channel) {
                err = add_channel(out, val, (size_t)val_len);
                used += (size_t)val_len;
            } else if (is_token) {
                out->token = val;
                out->token_len = (size_t)val_len;
                used += (size_t)val_len;
                err = QUERY_OK;
            } else if (is_position) {
                err = val_len == 1 && (val[0] == '0' || val[0] == '1') ? QUERY_OK
                                                                       : QUERY_ERR_BAD_POSITION;
                out->is_position_wanted = val_len == 1 && val[0] == '1';
            } else if (out->has_last_event_id) {
                err = QUERY_ERR_DUPLICATE_EVENT_ID;
            } else {
                err = query_parse_event_id(val, (size_t)val_len, &out->last_event_id);
                out->has_last_event_id = true;
            }
            if (err != QUERY_OK)
                return err;
        }
        pos = end + 1;
    }
    if (out->channel_count == 0) {
        out->channels[0] = DEFAULT_CHANNEL;
        out->channel_lens[0] = sizeof DEFAULT_CHANNEL - 1;
        out->channel_count = 1;
    }
    return QUERY_OK;
}

const char *query_strerror(enum query_err err)
{
    switch (err) {
    case QUERY_OK:
        return "ok";
    case QUERY_ERR_TOO_LONG:
        return "query string too long";
    case QUERY_ERR_BAD_ESCAPE:
        return "malformed percent-escape in query string";
    case QUERY_ERR_CHANNEL_EMPTY:
        return "channel name is empty";
    case QUERY_ERR_CHANNEL_TOO_LONG:
        return "channel name longer than 128 bytes";
    case QUERY_ERR_CHANNEL_BAD_BYTE:
        return "channel name contains a control character or invalid UTF-8";
    case QUERY_ERR_TOO_MANY_CHANNELS:
        return "more than 16 channels on one stream";
    case QUERY_ERR_BAD_EVENT_ID:
        return "last event id is not a decimal number between 0 and 9223372036854775807";
    case QUERY_ERR_DUPLICATE_EVENT_ID:
        return "lastEventId given more than once";
    case QUERY_ERR_BAD_POSITION:
        return "position must be 0 or 1";
    }
    return "unknown error";
}
