/* outq: see outq.h. */
#include "outq.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* iovecs per writev: two per item (prefix, payload). */
#define OUTQ_IOV_MAX 64

ssize_t (*outq_writev)(int fd, const struct iovec *iov, int iovcnt) = writev;

struct outq_item {
    struct outq_item *next;
    struct payload *payload;
    size_t start;
    size_t len;
    size_t written; /* of prefix_len + len */
    uint8_t prefix_len;
    uint8_t prefix[OUTQ_PREFIX_MAX];
};

bool outq_push(struct outq *q, const void *prefix, size_t prefix_len, struct payload *payload,
               size_t start, size_t len)
{
    if (prefix_len > OUTQ_PREFIX_MAX)
        return false;
    struct outq_item *it = malloc(sizeof *it);
    if (it == NULL)
        return false;
    *it = (struct outq_item){.payload = len ? payload_ref(payload) : NULL,
                             .start = start,
                             .len = len,
                             .prefix_len = (uint8_t)prefix_len};
    if (prefix_len > 0)
        memcpy(it->prefix, prefix, prefix_len);
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->bytes += prefix_len + len;
    return true;
}

bool outq_push_copy(struct outq *q, const void *bytes, size_t len)
{
    struct payload *p = payload_new(len);
    if (p == NULL)
        return false;
    memcpy(p->bytes, bytes, len);
    bool ok = outq_push(q, NULL, 0, p, 0, len);
    payload_unref(p);
    return ok;
}

static void pop_head(struct outq *q)
{
    struct outq_item *it = q->head;
    q->head = it->next;
    if (q->head == NULL)
        q->tail = NULL;
    payload_unref(it->payload);
    free(it);
}

enum outq_result outq_flush(struct outq *q, int fd, size_t budget)
{
    size_t sent_total = 0;
    while (q->head != NULL) {
        struct iovec iov[OUTQ_IOV_MAX];
        int n = 0;
        for (struct outq_item *it = q->head; it != NULL && n + 2 <= OUTQ_IOV_MAX; it = it->next) {
            size_t skip = it->written;
            if (skip < it->prefix_len) {
                iov[n++] = (struct iovec){it->prefix + skip, it->prefix_len - skip};
                skip = 0;
            } else {
                skip -= it->prefix_len;
            }
            if (it->len > skip)
                iov[n++] = (struct iovec){it->payload->bytes + it->start + skip, it->len - skip};
        }
        ssize_t sent = outq_writev(fd, iov, n);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? OUTQ_BLOCKED : OUTQ_ERROR;
        }
        q->bytes -= (size_t)sent;
        sent_total += (size_t)sent;
        size_t left = (size_t)sent;
        while (left > 0) {
            struct outq_item *it = q->head;
            size_t remaining = it->prefix_len + it->len - it->written;
            if (left < remaining) {
                it->written += left;
                break;
            }
            left -= remaining;
            pop_head(q);
        }
        /* An item of zero length (no prefix, empty payload) is done at once. */
        while (q->head != NULL && q->head->prefix_len + q->head->len == q->head->written)
            pop_head(q);
        if (sent_total >= budget && q->head != NULL)
            return OUTQ_BLOCKED;
    }
    return OUTQ_EMPTY;
}

void outq_clear(struct outq *q)
{
    while (q->head != NULL)
        pop_head(q);
    q->bytes = 0;
}
