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

#include "metrics.h"
#include "query.h"

struct loop;
struct store;
struct responder;

struct responder_config {
    unsigned heartbeat_ms; /* comment on a stream idle this long */
    unsigned retry_ms;     /* the retry: field sent at open */
    size_t queue_cap;      /* bytes queued for one stream before it is dropped */
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

/* Creates the hub and the log watcher on loop and store; borrows loop,
 * store, cfg, metrics (this worker's own, which only this loop writes) and
 * admitted (they outlive the responder). admitted counts the streams the
 * accept threads let in for --max-streams; the responder takes each one
 * back when its stream is freed. NULL with a reason in err on failure. */
struct responder *responder_new(struct loop *loop, struct store *store,
                                const struct responder_config *cfg, struct metrics *metrics,
                                atomic_size_t *admitted, char *err, size_t err_cap);
/* Closes every stream (each gets a clean end of response) and frees all. */
void responder_free(struct responder *r);

/* Starts a stream for req, already counted in admitted. On failure the fd
 * is closed and the count taken back. */
void responder_adopt(struct responder *r, const struct responder_request *req);

#endif
