/* store_pg: the log in PostgreSQL (to come: the second backend). */
#include <stdio.h>

#include "store_impl.h"

struct store *store_pg_open(const char *uri, char *err, size_t err_cap)
{
    (void)uri;
    snprintf(err, err_cap, "this build has no PostgreSQL backend");
    return NULL;
}
