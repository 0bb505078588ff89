/* cli: what every litepush program does the same way at start-up: parse
 * its flags from a table (numbers with one bounded rule), and take over the
 * signals. */
#ifndef LITEPUSH_CLI_H
#define LITEPUSH_CLI_H

#include <stdbool.h>
#include <stddef.h>

/* What a flag sets through its `out` pointer. */
enum cli_kind {
    CLI_STRING, /* const char **: the value */
    CLI_NUMBER, /* long *: a whole number in [min, max] (cli_number) */
    CLI_SET,    /* bool *: true, no value */
    CLI_CLEAR,  /* bool *: false, no value */
    CLI_LIST,   /* struct cli_list *: each value appended, at most cap */
};

struct cli_list {
    const char **items; /* caller storage of cap entries */
    size_t count;
    size_t cap;
};

struct cli_flag {
    const char *name; /* without the leading "--" */
    enum cli_kind kind;
    void *out;
    long min, max; /* CLI_NUMBER only */
};

/* Parses argv against flags[0..count) and --help. Returns -1 when the
 * program should go on; otherwise the exit status, after printing: 0 for
 * --help (usage on stdout), 2 for a bad flag, value or argument (the reason
 * and "Try 'PROG --help'." on stderr). At most 32 flags. */
int cli_parse(const char *prog, const char *usage, int argc, char **argv,
              const struct cli_flag *flags, size_t count);

/* Parses s as a whole number in [min, max] by number_parse's rule (digits
 * only: no sign, space or suffix). On failure prints "PROG: FLAG wants ..."
 * to stderr and returns -1. */
int cli_number(const char *prog, const char *flag, const char *s, long min, long max, long *out);

/* Ignores SIGPIPE (a vanished client shows up as EPIPE instead), blocks
 * SIGTERM, SIGINT, SIGHUP and SIGUSR1 in the calling thread and in threads
 * it creates afterwards, and returns a non-blocking signalfd that reads
 * them, or -1 with errno set. */
int cli_signalfd(void);

#endif
