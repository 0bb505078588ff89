/* ws_server: one event loop's share of litepush-ws: its connections, its
 * hub with the two wire formats (JSON text, and the same compressed for
 * permessage-deflate), its log watcher and store connection, and the
 * one-second tick for pings and timeouts. litepush-ws runs one per worker
 * thread; the listener hands each accepted socket to one of them.
 * A ws_server belongs to its loop's thread; only the counters in
 * struct ws_server_stats are shared, and they are atomic. */
#ifndef LITEPUSH_WS_SERVER_H
#define LITEPUSH_WS_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct access_policy;
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
    const char *const *origins; /* --origin allow-list; none = any origin */
    size_t origin_count;
    const struct access_policy *access; /* --auth-keys and --public (access.h) */
};

/* Counters shared by every worker of the process (relaxed atomics). */
struct ws_server_stats {
    atomic_size_t connections_open; /* counted up by the listener, down by workers */
    atomic_ullong connections_total;
    atomic_ullong dropped_slow;
    atomic_ullong dropped_unresponsive;
    atomic_ullong refused_full;
    atomic_ullong frames_sent; /* rows queued to clients */
    atomic_ullong published;   /* rows inserted by clients */
    atomic_llong last_id;      /* highest id a watcher has seen */
};

/* Borrows loop, store, cfg and stats (they outlive the server). NULL with a
 * reason in err on failure. */
struct ws_server *ws_server_new(struct loop *loop, struct store *store, const struct ws_config *cfg,
                                struct ws_server_stats *stats, char *err, size_t err_cap);
/* Takes over an accepted non-blocking socket, already counted in
 * stats->connections_open. Returns false (fd closed, count taken back)
 * when it cannot. */
bool ws_server_adopt(struct ws_server *srv, int fd);
/* Closes every connection (close 1001, going away) and frees everything. */
void ws_server_free(struct ws_server *srv);

#endif
