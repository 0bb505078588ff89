/* listen: opens the listening socket named by a --listen value, either
 * HOST:PORT (IPv4, [IPv6] or a name) or a unix socket path (anything with a
 * '/'). Shared by both programs. */
#ifndef LITEPUSH_LISTEN_H
#define LITEPUSH_LISTEN_H

#include <stdbool.h>
#include <stddef.h>

/* The mode a new unix socket gets unless --socket-mode says otherwise:
 * the owner and its group (the web server's user joins the group), not
 * every local user. */
#define LISTEN_SOCKET_MODE_DEFAULT 0660

/* Returns a listening fd (blocking, close-on-exec), or -1 with a one-line
 * reason in err[err_cap] ("address already in use", ...). A stale unix
 * socket file is replaced; a new one gets socket_mode (permission bits,
 * at most 0777). */
int listen_open(const char *spec, int backlog, unsigned socket_mode, char *err, size_t err_cap);

/* Parses a --socket-mode value: 3 or 4 octal digits, at most 0777
 * ("0660", "660"). False when s is anything else. */
bool listen_parse_mode(const char *s, unsigned *mode);

/* Raises the soft open-file limit to the hard limit; returns the new limit. */
long listen_raise_fd_limit(void);

#endif
