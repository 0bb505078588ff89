/* number: see number.h. */
#include "number.h"

bool number_parse(const char *s, size_t len, int64_t max, int64_t *out)
{
    if (len == 0 || len > NUMBER_DIGITS_MAX || max < 0)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0'); /* 19 digits fit in uint64_t */
    }
    if (v > (uint64_t)max)
        return false;
    *out = (int64_t)v;
    return true;
}
