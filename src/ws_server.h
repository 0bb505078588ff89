/* ws_server: one event loop's share of litepush-ws: the hub's two wire
 * formats (JSON text, and the same compressed for permessage-deflate) and
 * its connections (ws_conn.h) with their log watcher and store connection.
 * litepush-ws runs one per worker thread (pool.h); the listener hands each
 * accepted socket to one of them. A ws_server belongs to its loop's thread;
 * only struct ws_conn_shared is shared. */
#ifndef LITEPUSH_WS_SERVER_H
#define LITEPUSH_WS_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "ws_conn.h"

struct loop;
struct store;
struct ws_server;

/* Borrows loop, store, cfg, shared and metrics (this worker's own; they
 * outlive the server). NULL with a reason in err on failure. */
struct ws_server *ws_server_new(struct loop *loop, struct store *store,
                                const struct ws_conn_config *cfg, struct ws_conn_shared *shared,
                                struct metrics *metrics, char *err, size_t err_cap);
/* Takes over an accepted non-blocking socket, already counted in
 * shared->admitted. Returns false (fd closed, count taken back)
 * when it cannot. */
bool ws_server_adopt(struct ws_server *srv, int fd);
/* Closes every connection (close 1001, going away) and frees everything. */
void ws_server_free(struct ws_server *srv);

#endif
