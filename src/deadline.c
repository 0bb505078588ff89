/* deadline: see deadline.h. Slot i's children are 2i+1 and 2i+2. */
#include "deadline.h"

#include <stdlib.h>

static void put(struct deadline_heap *h, size_t i, struct deadline *d)
{
    h->items[i] = d;
    d->slot = i + 1;
}

static void sift_up(struct deadline_heap *h, size_t i)
{
    struct deadline *d = h->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->items[parent]->at <= d->at)
            break;
        put(h, i, h->items[parent]);
        i = parent;
    }
    put(h, i, d);
}

static void sift_down(struct deadline_heap *h, size_t i)
{
    struct deadline *d = h->items[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->len)
            break;
        if (child + 1 < h->len && h->items[child + 1]->at < h->items[child]->at)
            child++;
        if (d->at <= h->items[child]->at)
            break;
        put(h, i, h->items[child]);
        i = child;
    }
    put(h, i, d);
}

bool deadline_add(struct deadline_heap *h, struct deadline *d, int64_t at)
{
    if (h->len == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        struct deadline **items = realloc(h->items, cap * sizeof *items);
        if (items == NULL)
            return false;
        h->items = items;
        h->cap = cap;
    }
    d->at = at;
    put(h, h->len++, d);
    sift_up(h, h->len - 1);
    return true;
}

void deadline_remove(struct deadline_heap *h, struct deadline *d)
{
    if (d->slot == 0)
        return;
    size_t i = d->slot - 1;
    d->slot = 0;
    struct deadline *last = h->items[--h->len];
    if (i == h->len)
        return;
    put(h, i, last);
    /* The moved one may belong above or below its new slot. */
    if (i > 0 && h->items[(i - 1) / 2]->at > last->at)
        sift_up(h, i);
    else
        sift_down(h, i);
}

struct deadline *deadline_first(const struct deadline_heap *h)
{
    return h->len > 0 ? h->items[0] : NULL;
}

void deadline_heap_free(struct deadline_heap *h)
{
    free(h->items);
    *h = (struct deadline_heap){0};
}
