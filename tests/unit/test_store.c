/* Unit tests for what store.c decides without a database: which backend a
 * --db value names, and the name a PostgreSQL URI is logged under (its
 * password hidden). */
#include <string.h>

#include "store.h"
#include "test.h"

static void test_backend_choice(void)
{
    CHECK(store_is_postgresql("postgresql://u@h/db"));
    CHECK(store_is_postgresql("postgres://h/db"));
    CHECK(!store_is_postgresql("postgresql:/h/db"));
    CHECK(!store_is_postgresql("/var/lib/litepush/push.db"));
    CHECK(!store_is_postgresql("push.db"));
    CHECK(!store_is_postgresql(""));
    CHECK(!store_is_postgresql("file:postgres://x"));
}

static void test_log_name(void)
{
    static const struct {
        const char *db, *want;
    } cases[] = {
        {"postgresql://u:secret@h:5432/db", "postgresql://u:***@h:5432/db"},
        {"postgres://u:s@h/d?sslmode=require", "postgres://u:***@h/d?sslmode=require"},
        {"postgresql://u@h/db", "postgresql://u@h/db"},
        {"postgresql://h:5432/db", "postgresql://h:5432/db"},
        {"/tmp/push.db", "/tmp/push.db"},
        {"we:ird@name.db", "we:ird@name.db"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[128];
        const char *got = store_log_name(cases[i].db, buf, sizeof buf);
        CHECK(strcmp(got, cases[i].want) == 0);
    }
    char tiny[8];
    CHECK(strstr(store_log_name("postgresql://u:secret@h/db", tiny, sizeof tiny), "secret") ==
          NULL);
}

int main(void)
{
    RUN(test_backend_choice);
    RUN(test_log_name);
    TEST_MAIN_END();
}
