/* ws_conn: one WebSocket connection of litepush-ws, from the first byte of
 * its handshake to its close: handshake, frame decoding, UTF-8 and
 * permessage-deflate, publishes, the feed of rows and the output queue.
 * Each is a connection of its worker's set (conn.h), whose life cycle
 * (conn_ops) is implemented here; ws_server makes the set and hands over
 * the sockets. The counterpart for SSE streams is responder.c.
 * Loop thread only, except struct ws_conn_shared. */
#ifndef LITEPUSH_WS_CONN_H
#define LITEPUSH_WS_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"

struct json;

struct ws_conn_config {
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

/* What every worker of the process shares with the listener; owned by
 * the main, which outlives the workers. */
struct ws_conn_shared {
    /* Sockets accepted and not yet freed, for --max-connections: counted
     * up by the listener, down by the workers. */
    atomic_size_t admitted;
    /* Every thread's counters (each written by its own thread only), which
     * a /metrics or /stats request on any worker sums. */
    const struct metrics *metrics;
    size_t metrics_count;
};

/* hub formats of litepush-ws */
enum ws_format { WS_FORMAT_TEXT = 0, WS_FORMAT_DEFLATE = 1 };

/* One worker's connections and what they borrow (cfg, shared, the read
 * buffer); embedded in the ws_server. Its own counters are set.metrics. */
struct ws_conn_env {
    struct conn_set set;
    const struct ws_conn_config *cfg;
    struct ws_conn_shared *shared;
    struct json *json; /* the ws_server's, for publish frames */
    uint8_t *read_buf; /* one buffer for every connection's reads */
    size_t read_cap;
};

/* Sets up env->set on loop, store and metrics (this worker's own) with the
 * hub's two formats (encoders[WS_FORMAT_TEXT], encoders[WS_FORMAT_DEFLATE]).
 * Returns false with a reason in err; call ws_conn_env_close either way. */
bool ws_conn_env_init(struct ws_conn_env *env, struct loop *loop, struct store *store,
                      struct metrics *metrics, hub_encode_fn *const encoders[2], void *encode_ctx,
                      char *err, size_t err_cap);
/* Closes every connection (close 1001, going away), frees them and the set. */
void ws_conn_env_close(struct ws_conn_env *env);

/* Starts a connection on an accepted, non-blocking fd (taken over), already
 * counted in shared->admitted. Returns false (fd closed, count taken
 * back) when out of memory or epoll refuses it. */
bool ws_conn_start(struct ws_conn_env *env, int fd);

#endif
