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
 * next batch from the log only once the last one is written. A connection
 * admitted with a token has a deadline, its token's exp: the set keeps the
 * deadlines in a min-heap (deadline.h) with one timer for the earliest, so
 * ending tens of thousands of streams on time scans none of them.
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

#include "deadline.h"
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
    /* The token c was admitted with expired (conn_expire_at): end it so
     * that its client resumes with a fresh token. */
    void (*expired)(struct conn *c);
};

struct conn {
    struct loop_io io;
    struct conn_set *set;
    struct feed feed;
    struct outq out;
    /* The slow-client rule (conn_is_too_slow). A step is what is queued
     * between two writes: one loop batch, or one replay batch. */
    size_t queue_cap;   /* set by the owner: bytes a client may leave unread */
    size_t step_start;  /* bytes still queued when this step began */
    size_t burst_bytes; /* what one step queued beyond queue_cap, less what
                           the client has taken since: forgiven */
    bool is_dirty;
    bool is_closing;          /* marked: freed after this batch */
    struct conn *next, *prev; /* every connection of the set */
    struct conn *dirty_next;
    struct conn *closing_next;
    struct deadline expiry; /* in set->expiries after conn_expire_at */
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
    struct deadline_heap expiries; /* connections with a token, by its exp */
    struct loop_timer expiry_timer;
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
/* True when c should be dropped as too slow: the bytes it left unread
 * from earlier steps exceed queue_cap plus what the server itself queued
 * in one step beyond the cap (a big row, a big commit) and the client has
 * not taken yet. Whatever one step queues never counts against a client
 * that had kept up, so a client that reads always makes progress; one that
 * stops reading is dropped once cap more bytes pile up. */
bool conn_is_too_slow(const struct conn *c);
/* Writes what c has queued, within CONN_WRITE_BUDGET; a replaying feed
 * gets its next batch once the queue is empty. Registers for EPOLLOUT when
 * blocked or replaying. Returns OUTQ_EMPTY, OUTQ_BLOCKED, or OUTQ_ERROR
 * when c is (now) marked closing. */
enum outq_result conn_write(struct conn *c);
/* Calls ops->expired(c) at at_s (seconds since 1970, the wall clock, as a
 * JWT's exp), unless c is released first. Returns false when out of memory. */
bool conn_expire_at(struct conn *c, int64_t at_s);
/* The common part of freeing: closes the feed, the socket and the queue
 * and takes c off the set. The owner then frees its struct. */
void conn_release(struct conn *c);

#endif
