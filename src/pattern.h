/* pattern: channel patterns for access control. A pattern is a channel name
 * (an exact match) or a prefix followed by one final '*' ("room:*"; "*"
 * alone matches every channel). A '*' anywhere else is an ordinary byte.
 * A pattern_set is a small caller-owned list, valid when zero-filled, that
 * needs no allocation; it is immutable once built and may then be read by
 * any thread. Pure: no I/O, clock or globals. */
#ifndef LITEPUSH_PATTERN_H
#define LITEPUSH_PATTERN_H

#include <stdbool.h>
#include <stddef.h>

#include "input_limits.h"

/* A pattern is at most a channel name plus the '*'. */
#define PATTERN_MAX_LEN (LIMITS_CHANNEL_NAME_MAX + 1)
/* Patterns in one set (one token's subscribe list, or --public). */
#define PATTERN_SET_MAX 64

enum pattern_err {
    PATTERN_OK = 0,
    PATTERN_ERR_INVALID, /* empty, too long, or a name that is not a valid channel */
    PATTERN_ERR_FULL,    /* more than PATTERN_SET_MAX patterns */
};

struct pattern_set {
    size_t count;
    unsigned char lens[PATTERN_SET_MAX];
    char bytes[PATTERN_SET_MAX][PATTERN_MAX_LEN];
};

/* True when p[0..len) is a valid pattern: "*", or a channel name (see
 * query_check_channel) optionally followed by '*'. */
bool pattern_is_valid(const char *p, size_t len);
/* True when the valid pattern p matches channel[0..channel_len). */
bool pattern_matches(const char *p, size_t len, const char *channel, size_t channel_len);
/* Adds a copy of p to set after checking it; a repeated pattern is kept once. */
enum pattern_err pattern_set_add(struct pattern_set *set, const char *p, size_t len);
/* True when some pattern of set matches the channel; false for an empty set. */
bool pattern_set_covers(const struct pattern_set *set, const char *channel, size_t channel_len);
/* A compact immutable copy of a set, for a connection that keeps its
 * token's patterns for its whole life (a few bytes per pattern instead of a
 * whole struct pattern_set). Made by pattern_list_copy (NULL when out of
 * memory), freed with free(); readable by any thread. */
struct pattern_list;
struct pattern_list *pattern_list_copy(const struct pattern_set *set);
/* True when some pattern of list matches the channel; false for NULL. */
bool pattern_list_covers(const struct pattern_list *list, const char *channel, size_t channel_len);

/* A one-line reason for err. */
const char *pattern_strerror(enum pattern_err err);

#endif
