/* Unit tests for deadline: pops come out in time order for adds in every
 * order, equal times, removal of the first, the last, a middle one and one
 * not in the heap, and a randomised run against a sorted reference. */
#include <stdlib.h>

#include "deadline.h"
#include "test.h"

#define N 1000

static struct deadline ds[N];

static int64_t pop(struct deadline_heap *h)
{
    struct deadline *d = deadline_first(h);
    if (d == NULL)
        return -1;
    deadline_remove(h, d);
    CHECK_INT(d->slot, 0);
    return d->at;
}

static void test_order(void)
{
    struct deadline_heap h = {0};
    CHECK(deadline_first(&h) == NULL);
    static const int64_t at[] = {5, 3, 9, 3, 1, 7, 5, 0, 8};
    size_t n = sizeof at / sizeof at[0];
    for (size_t i = 0; i < n; i++)
        CHECK(deadline_add(&h, &ds[i], at[i]));
    static const int64_t want[] = {0, 1, 3, 3, 5, 5, 7, 8, 9};
    for (size_t i = 0; i < n; i++)
        CHECK_INT(pop(&h), want[i]);
    CHECK_INT(pop(&h), -1);
    deadline_heap_free(&h);
}

static void test_remove(void)
{
    struct deadline_heap h = {0};
    for (int i = 0; i < 10; i++)
        CHECK(deadline_add(&h, &ds[i], 10 - i)); /* ds[9] is first (1) */
    deadline_remove(&h, &ds[9]);                 /* the first */
    deadline_remove(&h, &ds[0]);                 /* the latest */
    deadline_remove(&h, &ds[4]);                 /* a middle one (6) */
    deadline_remove(&h, &ds[4]);                 /* again: no-op */
    struct deadline outside = {0};
    deadline_remove(&h, &outside);
    static const int64_t want[] = {2, 3, 4, 5, 7, 8, 9};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK_INT(pop(&h), want[i]);
    CHECK_INT(h.len, 0);
    deadline_heap_free(&h);
}

static int cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void test_random(void)
{
    struct deadline_heap h = {0};
    srand(7);
    bool in[N] = {0};
    for (int round = 0; round < 20000; round++) {
        int i = rand() % N;
        if (in[i]) {
            deadline_remove(&h, &ds[i]);
            in[i] = false;
        } else {
            CHECK(deadline_add(&h, &ds[i], rand() % 500));
            in[i] = true;
        }
        /* Heap property everywhere. */
        if (round % 997 == 0)
            for (size_t k = 1; k < h.len; k++)
                CHECK(h.items[(k - 1) / 2]->at <= h.items[k]->at);
    }
    int64_t ref[N];
    size_t n = 0;
    for (int i = 0; i < N; i++)
        if (in[i])
            ref[n++] = ds[i].at;
    qsort(ref, n, sizeof ref[0], cmp);
    CHECK_INT(h.len, n);
    for (size_t k = 0; k < n; k++)
        CHECK_INT(pop(&h), ref[k]);
    deadline_heap_free(&h);
}

int main(void)
{
    RUN(test_order);
    RUN(test_remove);
    RUN(test_random);
    TEST_MAIN_END();
}
