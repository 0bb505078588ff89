/* listen: opens the listening socket named by a --listen value, either
 * HOST:PORT (IPv4, [IPv6] or a name) or a unix socket path (anything with a
 * '/'). Shared by both programs. */
#ifndef LITEPUSH_LISTEN_H
#define LITEPUSH_LISTEN_H

#include <stddef.h>

/* Returns a listening fd (blocking, close-on-exec), or -1 with a one-line
 * reason in err[err_cap] ("address already in use", ...). A stale unix
 * socket file is replaced; a new one gets mode 0666 so that the web
 * server's user can connect. */
int listen_open(const char *spec, int backlog, char *err, size_t err_cap);

/* Raises the soft open-file limit to the hard limit; returns the new limit. */
long listen_raise_fd_limit(void);

#endif
