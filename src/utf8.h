/* utf8: an incremental, strict UTF-8 validator (RFC 3629). The state
 * survives across calls, so a WebSocket text message split over fragments
 * and reads is checked as it arrives, and an invalid byte is reported on
 * the byte it appears (RFC 6455 §8.1: fail as early as possible).
 * Pure: no allocation, no globals; any thread may call it on its own state. */
#ifndef LITEPUSH_UTF8_H
#define LITEPUSH_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Caller-owned validator state. A zero-filled struct is the start state
 * (no character in progress). The field is private to utf8.c. */
struct utf8_state {
    uint32_t state;
};

enum utf8_result {
    UTF8_COMPLETE = 0, /* all input so far is valid and ends on a character boundary */
    UTF8_INCOMPLETE,   /* valid so far, but the last character is cut off at the end */
    UTF8_INVALID       /* not UTF-8; the state stays invalid from now on */
};

/* Validates buf[0..len) as the continuation of everything fed to *st
 * before. Rejects overlong forms, surrogates U+D800..U+DFFF, code points
 * above U+10FFFF, stray continuation bytes and bytes C0, C1, F5..FF.
 * Reads exactly len bytes (buf may be NULL when len is 0) and keeps no
 * pointer. Returns the result for the whole stream fed so far; once it
 * has returned UTF8_INVALID it returns UTF8_INVALID for every later call
 * until the caller zero-fills *st again. */
enum utf8_result utf8_feed(struct utf8_state *st, const uint8_t *buf, size_t len);

/* True when buf[0..len) on its own is complete, valid UTF-8 (a character
 * cut at the end is invalid). The empty buffer is valid. */
bool utf8_is_valid(const uint8_t *buf, size_t len);

/* Repairing text that must go out as UTF-8 whatever is stored (a row
 * written by SQL may hold any bytes): each maximal subpart of an invalid
 * sequence becomes U+FFFD, as the WHATWG Encoding Standard's UTF-8 decoder
 * does (so a browser would show the same characters), and valid text is
 * copied unchanged. The result is always valid UTF-8 and at most 3 * len
 * bytes. utf8_repaired_len gives its exact length; utf8_repair writes it
 * into out, which must hold that many bytes, and returns the length. */
size_t utf8_repaired_len(const uint8_t *buf, size_t len);
size_t utf8_repair(const uint8_t *buf, size_t len, uint8_t *out);

#endif
