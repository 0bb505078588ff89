/* responder: the SSE side of the event loop. It owns every open stream
 * after libfcgi has read its request: replay from the log, live rows from
 * the hub, heartbeats, slow-client drops, and the FastCGI records written
 * without blocking on each stream's socket.
 * One responder per process; all functions run on the loop thread. */
#ifndef LITEPUSH_RESPONDER_H
#define LITEPUSH_RESPONDER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "query.h"

struct loop;
struct store;
struct responder;

struct responder_config {
    unsigned heartbeat_ms; /* comment on a stream idle this long */
    unsigned retry_ms;     /* the retry: field sent at open */
    size_t queue_cap;      /* bytes queued for one stream before it is dropped */
    size_t max_row;        /* --max-row: bigger rows go out as litepush.skipped */
};

/* A request that libfcgi has read, handed to the loop. The responder takes
 * ownership of fd (it closes it). query's slices point into the request's
 * own storage, which the caller frees after responder_adopt returns. */
struct responder_request {
    int fd;
    uint16_t request_id;
    struct query_request query;
    int has_header_id; /* Last-Event-ID header given (it wins over lastEventId) */
    int64_t header_id;
};

/* Counters shared by every worker of the process (relaxed atomics). Each
 * responder adds its share once a second and when it is freed, except
 * streams_open, which moves at once. */
struct responder_stats {
    /* Streams admitted and not yet freed: counted up by the accept threads
     * (which refuse at --max-streams), down by the responders. */
    atomic_size_t streams_open;
    atomic_ullong streams_total;
    atomic_ullong streams_dropped_slow;
    atomic_ullong streams_refused_full; /* counted by the accept threads */
    atomic_ullong events_sent;          /* rows queued to streams, live and replayed */
    atomic_llong last_id;               /* highest id a watcher has seen */
    atomic_ullong rows_seen;            /* rows the watchers read since start */
    atomic_ullong watcher_lag_ms;       /* wake-up to rows published, a last batch */
};

/* Creates the hub and the log watcher on loop and store; borrows loop,
 * store, cfg and stats (they outlive the responder). NULL with a reason in
 * err on failure. */
struct responder *responder_new(struct loop *loop, struct store *store,
                                const struct responder_config *cfg, struct responder_stats *stats,
                                char *err, size_t err_cap);
/* Closes every stream (each gets a clean end of response) and frees all. */
void responder_free(struct responder *r);

/* Starts a stream for req, already counted in stats->streams_open. On
 * failure the fd is closed and the count taken back. */
void responder_adopt(struct responder *r, const struct responder_request *req);

#endif
