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
    /* Streams admitted and not yet freed: the accept threads count up
     * (and refuse at --max-streams), the responder counts down. May be NULL. */
    atomic_size_t *admitted;
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

struct responder_stats {
    size_t streams_open;
    uint64_t streams_total;
    uint64_t streams_dropped_slow;
    uint64_t events_sent;    /* rows queued to streams, live and replayed */
    int64_t last_id;         /* highest id the watcher has seen */
    uint64_t rows_seen;      /* rows the watcher read since start */
    uint64_t watcher_lag_ms; /* wake-up to rows published, last batch */
};

/* Creates the hub and the log watcher on loop and store (borrowed; they
 * must outlive the responder). NULL with a reason in err on failure. */
struct responder *responder_new(struct loop *loop, struct store *store,
                                const struct responder_config *cfg, char *err, size_t err_cap);
/* Closes every stream (each gets a clean end of response) and frees all. */
void responder_free(struct responder *r);

/* Starts a stream for req. On failure the fd is closed. */
void responder_adopt(struct responder *r, const struct responder_request *req);

void responder_get_stats(const struct responder *r, struct responder_stats *out);

#endif
