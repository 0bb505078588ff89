/* cli: what every litepush program does the same way at start-up: parse
 * a numeric flag with one bounded rule, and take over the signals. */
#ifndef LITEPUSH_CLI_H
#define LITEPUSH_CLI_H

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
