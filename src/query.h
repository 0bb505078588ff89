/* query: the request parameters both servers accept, as pure parsing.
 * `channel` (repeatable; none means "default"), `lastEventId` and
 * `position` (0 or 1; WebSocket only, SSE accepts and ignores it), from an
 * application/x-www-form-urlencoded query string, plus the Last-Event-ID
 * header value and the channel-name rules shared with WebSocket publishes.
 * No allocation: decoded bytes go to caller scratch, outputs are slices. */
#ifndef LITEPUSH_QUERY_H
#define LITEPUSH_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "input_limits.h"

enum query_err {
    QUERY_OK = 0,
    QUERY_ERR_TOO_LONG,           /* query string over LIMITS_QUERY_MAX */
    QUERY_ERR_BAD_ESCAPE,         /* '%' not followed by two hex digits */
    QUERY_ERR_CHANNEL_EMPTY,      /* channel= with no name */
    QUERY_ERR_CHANNEL_TOO_LONG,   /* over LIMITS_CHANNEL_NAME_MAX bytes */
    QUERY_ERR_CHANNEL_BAD_BYTE,   /* control character or invalid UTF-8 */
    QUERY_ERR_TOO_MANY_CHANNELS,  /* over LIMITS_CHANNELS_PER_STREAM distinct names */
    QUERY_ERR_BAD_EVENT_ID,       /* not 1-19 decimal digits, or over 2^63-1 */
    QUERY_ERR_DUPLICATE_EVENT_ID, /* lastEventId given twice */
    QUERY_ERR_BAD_POSITION        /* position= other than 0 or 1 */
};

struct query_request {
    const char *channels[LIMITS_CHANNELS_PER_STREAM]; /* distinct, in order of first mention */
    size_t channel_lens[LIMITS_CHANNELS_PER_STREAM];
    size_t channel_count; /* >= 1 after QUERY_OK */
    bool has_last_event_id;
    int64_t last_event_id;
    const char *token; /* the first token= parameter, decoded; NULL when absent */
    size_t token_len;
    bool is_position_wanted; /* position=1: WebSocket, say where the stream starts */
};

/* Parses qs[0..len) (without the '?'). Decoded names and the token are written to
 * scratch, which must hold len bytes and must outlive *out; unknown
 * parameters are ignored. With no channel parameter the one channel is
 * "default" (a static string). Returns QUERY_OK or the first error. */
enum query_err query_parse(const char *qs, size_t len, char *scratch, struct query_request *out);

/* Parses an event id: 1 to LIMITS_EVENT_ID_DIGITS ASCII digits, no sign,
 * space or other byte, value at most INT64_MAX (SQLite's largest rowid).
 * The digits rule is number_parse's (number.h), which other integers use. */
enum query_err query_parse_event_id(const char *s, size_t len, int64_t *out);

/* Checks one channel name: 1..LIMITS_CHANNEL_NAME_MAX bytes of valid UTF-8
 * without control characters. */
enum query_err query_check_channel(const char *name, size_t len);

/* A one-line English reason for err, for a 400 body or an error frame. */
const char *query_strerror(enum query_err err);

#endif
