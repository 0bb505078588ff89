/* cli: see cli.h. */
#include "cli.h"

#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>

#include "number.h"

int cli_number(const char *prog, const char *flag, const char *s, long min, long max, long *out)
{
    int64_t v;
    if (!number_parse(s, strlen(s), max, &v) || v < min) {
        fprintf(stderr, "%s: %s wants a whole number from %ld to %ld, not '%s'\n", prog, flag, min,
                max, s);
        return -1;
    }
    *out = (long)v;
    return 0;
}

#define CLI_FLAGS_MAX 32

/* Applies one flag's value; returns false after printing why not. */
static bool apply(const char *prog, const struct cli_flag *f, const char *value)
{
    switch (f->kind) {
    case CLI_STRING:
        *(const char **)f->out = value;
        return true;
    case CLI_NUMBER: {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s", f->name);
        return cli_number(prog, flag, value, f->min, f->max, f->out) == 0;
    }
    case CLI_SET:
    case CLI_CLEAR:
        *(bool *)f->out = f->kind == CLI_SET;
        return true;
    case CLI_LIST: {
        struct cli_list *list = f->out;
        if (list->count == list->cap) {
            fprintf(stderr, "%s: at most %zu --%s values\n", prog, list->cap, f->name);
            return false;
        }
        list->items[list->count++] = value;
        return true;
    }
    }
    return false;
}

int cli_parse(const char *prog, const char *usage, int argc, char **argv,
              const struct cli_flag *flags, size_t count)
{
    struct option opts[CLI_FLAGS_MAX + 2] = {{0}};
    if (count > CLI_FLAGS_MAX)
        count = CLI_FLAGS_MAX;
    for (size_t i = 0; i < count; i++) {
        bool has_value = flags[i].kind != CLI_SET && flags[i].kind != CLI_CLEAR;
        opts[i] = (struct option){flags[i].name, has_value ? required_argument : no_argument, NULL,
                                  (int)i + 1};
    }
    opts[count] = (struct option){"help", no_argument, NULL, 'h' + CLI_FLAGS_MAX};
    int c;
    optind = 0; /* glibc: start afresh, so that a second parse works too */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'h' + CLI_FLAGS_MAX) {
            fputs(usage, stdout);
            return 0;
        }
        if (c < 1 || (size_t)c > count || !apply(prog, &flags[c - 1], optarg)) {
            fprintf(stderr, "Try '%s --help'.\n", prog);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\nTry '%s --help'.\n", prog, argv[optind],
                prog);
        return 2;
    }
    return -1;
}

int cli_signalfd(void)
{
    signal(SIGPIPE, SIG_IGN);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    return signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
}
