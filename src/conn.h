/* conn: what every client connection of both programs shares, and the set
 * of them that one worker's loop owns.
 *
 * A connection is a socket on the loop, a feed of rows (feed.h) and an
 * output queue (outq.h). The set holds the hub and log watcher the feeds
 * read from, the list of every connection, a one-second tick, and the one
 * life cycle both protocols follow: a handler never frees a connection, it
 * only marks it dirty (bytes were queued) or closing; after each batch of
 * the loop the set flushes the dirty ones, then frees the closing ones.
 * Writes are driven by the socket: a connection that is replaying gets its
 * next batch from the log only once the last one is written.
 *
 * The SSE responder (responder.c) and the WebSocket connections (ws_conn.c)
 * each embed a struct conn in their connection and give a struct conn_ops;
 * the responder and each ws_server embed a struct conn_set. The fields are
 * for those two; everything here runs on the set's loop thread. */
#ifndef LITEPUSH_CONN_H
#define LITEPUSH_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "feed.h"
#include "hub.h"
#include "loop.h"
#include "metrics.h"
#include "outq.h"

/* Bytes one connection may write per wake-up before others get their turn. */
#define CONN_WRITE_BUDGET (256 * 1024)

struct conn;
struct conn_set;

/* What a protocol does at each point of the life cycle. */
struct conn_ops {
    /* After a batch, for each dirty connection not marked closing: write
     * what is queued (conn_write) and whatever the protocol adds. */
    void (*flush)(struct conn *c);
    /* After a batch, for each connection marked closing: say the last word
     * if any, conn_release, then free the owner's struct. */
    void (*free)(struct conn *c);
    /* The feed could not read the log while replaying: end the connection. */
    void (*replay_failed)(struct conn *c);
    /* The log file was replaced: end the connection so that its client
     * resumes against the new log (and gets litepush.reset). */
    void (*log_replaced)(struct conn *c);
    /* Once a second: heartbeats, pings, deadlines, counters. */
    void (*tick)(struct conn_set *set, uint64_t now_ms);
};

struct conn {
    struct loop_io io;
    struct conn_set *set;
    struct feed feed;
    struct outq out;
    bool is_dirty;
    bool is_closing;          /* marked: freed after this batch */
    struct conn *next, *prev; /* every connection of the set */
    struct conn *dirty_next;
    struct conn *closing_next;
};

struct conn_set {
    struct loop *loop;
    const struct conn_ops *ops;
    struct metrics *metrics; /* this worker's counters (borrowed); the set and
                                both protocols count into it */
    struct hub *hub;
    struct watcher *watcher;
    struct feed_source source; /* what every feed of the set reads */
    struct loop_timer tick;
    struct conn *all;
    struct conn *dirty;
    struct conn *closing;
};

/* Sets up a zero-filled set on loop, store and metrics (all borrowed): a
 * hub with encoders[0..format_count) and encode_ctx, the log watcher, the
 * after-batch hook and the tick. After each batch the watcher's rows read,
 * last id and lag are copied into metrics, and conn_write counts the bytes
 * it writes. Returns false with a reason in err; call conn_set_destroy
 * either way. */
bool conn_set_init(struct conn_set *set, struct loop *loop, struct store *store,
                   struct metrics *metrics, hub_encode_fn *const *encoders, size_t format_count,
                   void *encode_ctx, const struct conn_ops *ops, char *err, size_t err_cap);
/* Flushes the dirty connections, then frees those marked closing: the
 * after-batch hook, also called at shutdown after marking every one. */
void conn_set_reap(struct conn_set *set);
/* Frees the watcher and the hub once every connection is gone. */
void conn_set_destroy(struct conn_set *set);

/* Puts a zero-filled c on the set: registers fd (non-blocking, taken
 * over) for reading with on_ready. Returns false, touching nothing else,
 * when epoll refuses it. */
bool conn_add(struct conn_set *set, struct conn *c, int fd, loop_io_fn *on_ready);
/* Something was queued: flush c after this batch. */
void conn_mark_dirty(struct conn *c);
/* Free c after this batch; its feed queues nothing more from now on. */
void conn_mark_closing(struct conn *c);
/* Writes what c has queued, within CONN_WRITE_BUDGET; a replaying feed
 * gets its next batch once the queue is empty. Registers for EPOLLOUT when
 * blocked or replaying. Returns OUTQ_EMPTY, OUTQ_BLOCKED, or OUTQ_ERROR
 * when c is (now) marked closing. */
enum outq_result conn_write(struct conn *c);
/* The common part of freeing: closes the feed, the socket and the queue
 * and takes c off the set. The owner then frees its struct. */
void conn_release(struct conn *c);

#endif
