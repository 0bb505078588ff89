/* cli: see cli.h. */
#include "cli.h"

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
