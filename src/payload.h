/* payload: an immutable, reference-counted byte buffer. It is how one
 * encoded row is shared by every connection it is queued on (encode once,
 * send to all). Counts are not atomic: a payload lives on one event-loop
 * thread. The creator holds the first reference; payload_unref frees the
 * buffer with the last one and accepts NULL. */
#ifndef LITEPUSH_PAYLOAD_H
#define LITEPUSH_PAYLOAD_H

#include <stddef.h>

struct payload {
    unsigned refs;
    size_t len;
    char bytes[];
};

/* A payload of len bytes (contents for the caller to fill), refs = 1; NULL when out of memory. */
struct payload *payload_new(size_t len);
struct payload *payload_ref(struct payload *p);
void payload_unref(struct payload *p);

#endif
