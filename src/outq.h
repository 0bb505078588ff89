/* outq: one connection's output queue. Each item is a short prefix copied
 * into the item (a FastCGI record header or a WebSocket frame header) and a
 * slice of a shared payload, so one encoded row is queued on many
 * connections without copying. outq_flush writes with writev, without
 * blocking; what the socket does not take stays queued, and `bytes` lets
 * the owner drop a client that falls too far behind.
 * An outq is a plain struct embedded in its connection (zero-filled =
 * empty); outq_clear frees what is queued. Loop thread only. */
#ifndef LITEPUSH_OUTQ_H
#define LITEPUSH_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "payload.h"

#define OUTQ_PREFIX_MAX 16

struct outq_item;

struct outq {
    struct outq_item *head;
    struct outq_item *tail;
    size_t bytes; /* queued and not yet written */
};

enum outq_result {
    OUTQ_EMPTY = 0, /* everything was written */
    OUTQ_BLOCKED,   /* the socket is full: wait for EPOLLOUT */
    OUTQ_ERROR      /* write failed (errno set): the peer is gone */
};

/* Queues prefix[0..prefix_len) followed by payload->bytes[start..start+len).
 * Takes a reference on payload (which may be NULL when len is 0).
 * Returns false when out of memory (nothing queued). */
bool outq_push(struct outq *q, const void *prefix, size_t prefix_len, struct payload *payload,
               size_t start, size_t len);
/* Queues a copy of bytes[0..len). */
bool outq_push_copy(struct outq *q, const void *bytes, size_t len);
/* Writes to fd until the queue is empty, the socket is full, or about
 * budget bytes went out (fairness between connections). */
enum outq_result outq_flush(struct outq *q, int fd, size_t budget);
/* Frees everything queued. */
void outq_clear(struct outq *q);

/* The writev the queue uses; tests swap it to force EAGAIN, short writes
 * and EPIPE. */
extern ssize_t (*outq_writev)(int fd, const struct iovec *iov, int iovcnt);

#endif
