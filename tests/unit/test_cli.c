/* Unit tests for cli_parse: every kind of flag, both sides of a number's
 * range, a full list, --help, unknown flags and stray arguments. Its error
 * messages go to stderr, which the runner shows indented. */
#include <stdbool.h>
#include <stdio.h>

#include "cli.h"
#include "test.h"

struct parsed {
    const char *db;
    long n;
    bool is_on, is_off;
    const char *items[2];
    struct cli_list list;
};

/* Parses a NULL-terminated argv (after the program name) into *p. */
static int parse(struct parsed *p, const char *const *args)
{
    char *argv[16] = {"prog"};
    int argc = 1;
    for (; args[argc - 1] != NULL && argc < 15; argc++)
        argv[argc] = (char *)args[argc - 1];
    *p = (struct parsed){.n = 7, .is_off = true};
    p->list = (struct cli_list){.items = p->items, .cap = 2};
    const struct cli_flag flags[] = {
        {"db", CLI_STRING, &p->db, 0, 0},   {"n", CLI_NUMBER, &p->n, 1, 10},
        {"on", CLI_SET, &p->is_on, 0, 0},   {"no-off", CLI_CLEAR, &p->is_off, 0, 0},
        {"item", CLI_LIST, &p->list, 0, 0},
    };
    FILE *saved = stdout;
    stdout = fopen("/dev/null", "w"); /* --help prints the usage */
    int rc = cli_parse("prog", "usage\n", argc, argv, flags, sizeof flags / sizeof flags[0]);
    fclose(stdout);
    stdout = saved;
    return rc;
}

static void test_values(void)
{
    struct parsed p;
    CHECK_INT(parse(&p, (const char *[]){NULL}), -1);
    CHECK(p.db == NULL && p.n == 7 && !p.is_on && p.is_off && p.list.count == 0);
    CHECK_INT(parse(&p, (const char *[]){"--db", "x.db", "--n=10", "--on", "--no-off", "--item",
                                         "a", "--item", "b", NULL}),
              -1);
    CHECK(p.db != NULL && strcmp(p.db, "x.db") == 0);
    CHECK_INT(p.n, 10);
    CHECK(p.is_on && !p.is_off);
    CHECK_INT(p.list.count, 2);
    CHECK(strcmp(p.items[0], "a") == 0 && strcmp(p.items[1], "b") == 0);
    CHECK_INT(parse(&p, (const char *[]){"--n", "1", NULL}), -1);
    CHECK_INT(p.n, 1);
}

static void test_refusals(void)
{
    struct parsed p;
    CHECK_INT(parse(&p, (const char *[]){"--help", NULL}), 0);
    CHECK_INT(parse(&p, (const char *[]){"--n", "0", NULL}), 2);
    CHECK_INT(parse(&p, (const char *[]){"--n", "11", NULL}), 2);
    CHECK_INT(parse(&p, (const char *[]){"--n", "-1", NULL}), 2);
    CHECK_INT(parse(&p, (const char *[]){"--n", "5x", NULL}), 2);
    CHECK_INT(parse(&p, (const char *[]){"--n", NULL}), 2);
    CHECK_INT(parse(&p, (const char *[]){"--bogus", NULL}), 2);
    CHECK_INT(parse(&p, (const char *[]){"--on=1", NULL}), 2);
    CHECK_INT(parse(&p, (const char *[]){"--db", "x", "stray", NULL}), 2);
    CHECK_INT(parse(&p, (const char *[]){"--item", "a", "--item", "b", "--item", "c", NULL}), 2);
}

int main(void)
{
    RUN(test_values);
    RUN(test_refusals);
    TEST_MAIN_END();
}
