/* deadline: a binary min-heap of deadlines, so that one loop can end tens of
 * thousands of streams each at its own time (token expiry) with one timer:
 * adding and removing cost O(log n), finding the next O(1), and nothing is
 * scanned per tick. A struct deadline is embedded in its owner (one per
 * connection, 16 bytes) and found back with LOOP_CONTAINER; the heap only
 * holds pointers. Pure: the times are the caller's (any unit). One heap per
 * loop thread; zero-filled heaps and deadlines are valid and empty. */
#ifndef LITEPUSH_DEADLINE_H
#define LITEPUSH_DEADLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct deadline {
    int64_t at;
    size_t slot; /* position in the heap + 1; 0 = not in a heap */
};

struct deadline_heap {
    struct deadline **items;
    size_t len, cap;
};

/* Puts d (not in a heap yet) in h, due at `at`. False when out of memory
 * (d then stays out). */
bool deadline_add(struct deadline_heap *h, struct deadline *d, int64_t at);
/* Takes d out of h; a no-op when d is in no heap. */
void deadline_remove(struct deadline_heap *h, struct deadline *d);
/* The earliest deadline, or NULL when h is empty. */
struct deadline *deadline_first(const struct deadline_heap *h);
/* Frees h's array (not the deadlines, which their owners hold). */
void deadline_heap_free(struct deadline_heap *h);

#endif
