/* number: the one parser of decimal integers from the outside world, for
 * event ids (Last-Event-ID, lastEventId) and command-line values alike.
 * It rejects signs, spaces, trailing bytes and overflow, so every caller
 * gets the same strict rule. Pure: no allocation, no globals. */
#ifndef LITEPUSH_NUMBER_H
#define LITEPUSH_NUMBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Digits accepted at most: INT64_MAX has 19, so no value we take needs more. */
#define NUMBER_DIGITS_MAX 19

/* Parses s[0..len) as 1 to NUMBER_DIGITS_MAX ASCII digits, nothing else,
 * whose value is at most max (0 <= max <= INT64_MAX). Returns true and sets
 * *out, or returns false and leaves *out alone. Reads only s[0..len). */
bool number_parse(const char *s, size_t len, int64_t max, int64_t *out);

#endif
