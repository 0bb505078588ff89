/* payload: see payload.h. */
#include "payload.h"

#include <stdlib.h>

struct payload *payload_new(size_t len)
{
    struct payload *p = malloc(sizeof *p + len);
    if (p != NULL) {
        p->refs = 1;
        p->len = len;
    }
    return p;
}

struct payload *payload_ref(struct payload *p)
{
    p->refs++;
    return p;
}

void payload_unref(struct payload *p)
{
    if (p != NULL && --p->refs == 0)
        free(p);
}
