/* ws_conn: one WebSocket connection of litepush-ws, from the first byte of
 * its handshake to its close: handshake, frame decoding, UTF-8 and
 * permessage-deflate, publishes, the feed of rows and the output queue.
 * Internal to litepush-ws: ws_server owns the connections and calls these.
 * Loop thread only. */
#ifndef LITEPUSH_WS_CONN_H
#define LITEPUSH_WS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deadline.h"
#include "feed.h"
#include "loop.h"
#include "ws_server.h"

struct loop;
struct ws_conn;

/* What ws_server lends every connection; all borrowed. */
struct ws_shared {
    struct loop *loop;
    struct store *store;
    struct json *json;
    struct watcher *watcher;
    struct feed_source source;
    const struct ws_config *cfg;
    struct ws_server_stats *stats;
    uint8_t *read_buf; /* one buffer for every connection's reads */
    size_t read_cap;
    /* Connections to flush and to free at the end of the loop batch. */
    struct ws_conn *dirty;
    struct ws_conn *closing;
    /* Every connection, for the tick and for shutdown. */
    struct ws_conn *all;
    /* Connections whose token expires, earliest first, and the one timer
     * armed for the earliest (ws_conn_expiry_init). */
    struct deadline_heap expiries;
    struct loop_timer expiry_timer;
};

/* hub formats of litepush-ws */
enum ws_format { WS_FORMAT_TEXT = 0, WS_FORMAT_DEFLATE = 1 };

/* Starts a connection on an accepted, non-blocking fd (taken over).
 * Returns false (fd closed) when out of memory or epoll refuses it. */
bool ws_conn_start(struct ws_shared *sh, int fd);
/* Writes what was queued; called for each dirty connection after a batch. */
void ws_conn_flush(struct ws_conn *c);
/* Pings, pong and handshake timeouts; called once a second. */
void ws_conn_tick(struct ws_conn *c, uint64_t now_ms);
/* Starts a closing handshake with code and reason (server shutdown: 1001). */
void ws_conn_close(struct ws_conn *c, uint16_t code, const char *reason);
/* Frees a connection marked closing (from the after-batch hook). */
void ws_conn_free(struct ws_conn *c);

/* Sets up sh's expiry timer (call once, after sh->loop is set), and frees
 * the heap once every connection is gone. */
void ws_conn_expiry_init(struct ws_shared *sh);
void ws_conn_expiry_free(struct ws_shared *sh);

/* List links, for ws_server's walks. */
struct ws_conn *ws_conn_next_dirty(struct ws_conn *c);
struct ws_conn *ws_conn_next_closing(struct ws_conn *c);
struct ws_conn *ws_conn_next(struct ws_conn *c);
void ws_conn_clear_dirty(struct ws_conn *c);

#endif
