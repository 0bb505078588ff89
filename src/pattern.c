/* pattern: see pattern.h. */
#include "pattern.h"

#include <stdlib.h>
#include <string.h>

#include "query.h"

bool pattern_is_valid(const char *p, size_t len)
{
    if (len == 0 || len > PATTERN_MAX_LEN)
        return false;
    if (p[len - 1] == '*') {
        /* The prefix before the final '*' may be empty ("*": every channel). */
        return len == 1 || query_check_channel(p, len - 1) == QUERY_OK;
    }
    return query_check_channel(p, len) == QUERY_OK;
}

bool pattern_matches(const char *p, size_t len, const char *channel, size_t channel_len)
{
    if (len > 0 && p[len - 1] == '*')
        return channel_len >= len - 1 && memcmp(p, channel, len - 1) == 0;
    return len == channel_len && memcmp(p, channel, len) == 0;
}

enum pattern_err pattern_set_add(struct pattern_set *set, const char *p, size_t len)
{
    if (!pattern_is_valid(p, len))
        return PATTERN_ERR_INVALID;
    for (size_t i = 0; i < set->count; i++)
        if (set->lens[i] == len && memcmp(set->bytes[i], p, len) == 0)
            return PATTERN_OK;
    if (set->count == PATTERN_SET_MAX)
        return PATTERN_ERR_FULL;
    memcpy(set->bytes[set->count], p, len);
    set->lens[set->count] = (unsigned char)len;
    set->count++;
    return PATTERN_OK;
}

bool pattern_set_covers(const struct pattern_set *set, const char *channel, size_t channel_len)
{
    for (size_t i = 0; i < set->count; i++)
        if (pattern_matches(set->bytes[i], set->lens[i], channel, channel_len))
            return true;
    return false;
}

/* count patterns, each stored as its length byte and its bytes. */
struct pattern_list {
    size_t count;
    unsigned char bytes[];
};

struct pattern_list *pattern_list_copy(const struct pattern_set *set)
{
    size_t n = 0;
    for (size_t i = 0; i < set->count; i++)
        n += 1 + set->lens[i];
    struct pattern_list *list = malloc(sizeof *list + n);
    if (list == NULL)
        return NULL;
    list->count = set->count;
    unsigned char *at = list->bytes;
    for (size_t i = 0; i < set->count; i++) {
        *at++ = set->lens[i];
        memcpy(at, set->bytes[i], set->lens[i]);
        at += set->lens[i];
    }
    return list;
}

bool pattern_list_covers(const struct pattern_list *list, const char *channel, size_t channel_len)
{
    if (list == NULL)
        return false;
    const unsigned char *at = list->bytes;
    for (size_t i = 0; i < list->count; i++) {
        size_t len = *at++;
        if (pattern_matches((const char *)at, len, channel, channel_len))
            return true;
        at += len;
    }
    return false;
}

const char *pattern_strerror(enum pattern_err err)
{
    switch (err) {
    case PATTERN_OK:
        return "ok";
    case PATTERN_ERR_INVALID:
        return "a channel pattern must be a channel name, optionally ending in '*'";
    case PATTERN_ERR_FULL:
        return "more than 64 channel patterns";
    }
    return "unknown error";
}
