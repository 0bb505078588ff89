/* ws_server: litepush-ws's process-wide state on the event loop: the
 * listening socket, every connection, the hub with its two wire formats
 * (JSON text, and the same compressed for permessage-deflate), the log
 * watcher, and the one-second tick for pings and timeouts.
 * One per process; loop thread only. */
#ifndef LITEPUSH_WS_SERVER_H
#define LITEPUSH_WS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct store;
struct ws_server;

struct ws_config {
    bool is_publish_allowed; /* --allow-publish */
    bool is_deflate_enabled; /* permessage-deflate offered to clients */
    size_t max_message;      /* --max-message: bytes of one client message */
    unsigned ping_ms;        /* ping a connection silent this long; drop it
                                if the pong takes as long again */
    unsigned handshake_timeout_ms;
    size_t queue_cap;           /* bytes queued for one client before it is dropped */
    size_t max_connections;     /* 503 beyond */
    const char *const *origins; /* Origin allow-list; none = any origin */
    size_t origin_count;
};

struct ws_server_stats {
    size_t connections_open;
    uint64_t connections_total;
    uint64_t dropped_slow;
    uint64_t dropped_unresponsive;
    uint64_t refused_full;
    uint64_t frames_sent; /* rows queued to clients */
    uint64_t published;   /* rows inserted by clients */
    int64_t last_id;
};

/* Takes ownership of listen_fd; borrows loop and store. NULL with a reason
 * in err on failure. */
struct ws_server *ws_server_new(struct loop *loop, struct store *store, int listen_fd,
                                const struct ws_config *cfg, char *err, size_t err_cap);
/* Closes every connection (close 1001, going away) and frees everything. */
void ws_server_free(struct ws_server *srv);
void ws_server_get_stats(const struct ws_server *srv, struct ws_server_stats *out);

#endif
