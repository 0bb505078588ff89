/* cli: see cli.h. */
#include "cli.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>

#include "query.h"

int cli_number(const char *prog, const char *flag, const char *s, long min, long max, long *out)
{
    int64_t v;
    /* The event-id parser is the one bounded integer parser we have. */
    if (query_parse_event_id(s, strlen(s), &v) != QUERY_OK || v < min || v > max) {
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
