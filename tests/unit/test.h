/* A tiny test harness shared by the unit tests.
 * RUN(fn) runs one test function; a test fails if any CHECK in it fails.
 * TEST_MAIN_END prints "N passed, N failed" and sets the exit status.
 * guarded() copies bytes to the very end of a page followed by a PROT_NONE
 * page, so a parser that reads one byte past `len` crashes the test. */
#ifndef LITEPUSH_TEST_H
#define LITEPUSH_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int test_passed, test_failed, test_current_failed;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            test_current_failed = 1;                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);           \
        }                                                                                      \
    } while (0)

#define CHECK_INT(a, b)                                                                        \
    do {                                                                                       \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                        \
        if (check_a_ != check_b_) {                                                            \
            test_current_failed = 1;                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", __FILE__,        \
                    __LINE__, #a, #b, check_a_, check_b_);                                     \
        }                                                                                      \
    } while (0)

#define CHECK_MEM(p, plen, s)                                                                  \
    do {                                                                                       \
        size_t check_l_ = strlen(s);                                                           \
        if ((size_t)(plen) != check_l_ || memcmp((p), (s), check_l_) != 0) {                   \
            test_current_failed = 1;                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s is \"%.*s\", expected \"%s\"\n",          \
                    __FILE__, __LINE__, #p, (int)(plen), (const char *)(p), (s));              \
        }                                                                                      \
    } while (0)

#define RUN(fn)                                                                                \
    do {                                                                                       \
        test_current_failed = 0;                                                               \
        fn();                                                                                  \
        if (test_current_failed) {                                                             \
            test_failed++;                                                                     \
            fprintf(stderr, "FAIL %s\n", #fn);                                                 \
        } else {                                                                               \
            test_passed++;                                                                     \
        }                                                                                      \
    } while (0)

#define TEST_MAIN_END()                                                                        \
    do {                                                                                       \
        printf("%s: %d passed, %d failed\n", __FILE__, test_passed, test_failed);              \
        return test_failed ? 1 : 0;                                                            \
    } while (0)

/* Returns a copy of data[0..len) that ends exactly at a PROT_NONE page.
 * The copy stays mapped until the process ends (tests are short). */
static inline const void *guarded(const void *data, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (len + page - 1) / page;
    if (data_pages == 0)
        data_pages = 1;
    unsigned char *base = mmap(NULL, (data_pages + 1) * page, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    mprotect(base + data_pages * page, page, PROT_NONE);
    unsigned char *dst = base + data_pages * page - len;
    if (len)
        memcpy(dst, data, len);
    return dst;
}

#endif
