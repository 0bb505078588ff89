/* responder: SSE streams on the event loop; the SSE counterpart of
 * ws_server.c and ws_conn.c.
 *
 * Each stream is a connection (conn.h): its feed does resume, replay and
 * live delivery, and the set flushes and frees it after each batch; this
 * file turns what the feed queues into FastCGI records.
 *
 * Replay goes one batch at a time, only once the stream has written the last,
 * and is driven by EPOLLOUT (conn_write): a reconnect after a long outage
 * neither builds an unbounded queue nor starves the other streams.
 *
 * Every row is encoded once (hub format 0) and the same payload is queued
 * on all its streams; each queue item adds only the 8-byte FastCGI header.
 *
 * Heartbeats: streams sit in a list ordered by their last queued byte; a
 * tick once a second sends a comment to those idle for heartbeat_ms, so the
 * cost is proportional to the streams that need one.
 *
 * Token expiry: a stream admitted with a token has its exp as deadline
 * (conn_expire_at); at exp it gets a litepush.expired event and a clean
 * end (README, access control).
 *
 * NOTES: after libfcgi hands over, bytes from the web server (the empty
 * FCGI_STDIN record, FCGI_ABORT_REQUEST) are read and discarded; end of file
 * or a socket error is what ends a stream, which is how Apache and lighttpd
 * report a client that went away. */
#include "responder.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "crypto.h"
#include "fcgi_record.h"
#include "payload.h"
#include "sse.h"

struct stream {
    struct conn conn;
    struct responder *r;
    bool is_clean_end; /* write END_REQUEST before closing */
    uint16_t request_id;
    uint64_t last_queued_ms;
    struct stream *idle_prev, *idle_next; /* by last_queued_ms, oldest first */
};

struct responder {
    struct conn_set set;
    struct responder_config cfg;
    struct payload *heartbeat;
    struct payload *expired; /* SSE_EXPIRED */
    struct stream *idle_head, *idle_tail;
    atomic_size_t *admitted; /* the accept threads' count for --max-streams */
};

static struct stream *stream_of(struct conn *c)
{
    return LOOP_CONTAINER(c, struct stream, conn);
}

/* ---- encoding ---------------------------------------------------------- */

/* A row as SSE bytes; a BLOB is base64-encoded first (documented). */
static struct payload *encode_row(const struct store_row *row, void *ctx)
{
    (void)ctx;
    char *b64 = NULL;
    struct sse_event ev = {.id = row->id,
                           .event = row->event,
                           .event_len = row->event_len,
                           .data = row->data,
                           .data_len = row->data_len};
    if (row->is_blob) {
        b64 = malloc(crypto_base64_len(row->data_len) + 1);
        if (b64 == NULL)
            return NULL;
        ev.data_len = crypto_base64_encode(row->data, row->data_len, b64);
        ev.data = b64;
    }
    struct payload *p = payload_new(sse_event_len(&ev));
    if (p != NULL)
        sse_encode_event(&ev, p->bytes);
    free(b64);
    return p;
}

static hub_encode_fn *const ENCODERS[] = {encode_row};

/* ---- queueing ---------------------------------------------------------- */

static void idle_unlink(struct responder *r, struct stream *s)
{
    if (s->idle_prev)
        s->idle_prev->idle_next = s->idle_next;
    else if (r->idle_head == s)
        r->idle_head = s->idle_next;
    if (s->idle_next)
        s->idle_next->idle_prev = s->idle_prev;
    else if (r->idle_tail == s)
        r->idle_tail = s->idle_prev;
    s->idle_prev = s->idle_next = NULL;
}

static void idle_append(struct responder *r, struct stream *s)
{
    s->idle_prev = r->idle_tail;
    s->idle_next = NULL;
    if (r->idle_tail)
        r->idle_tail->idle_next = s;
    else
        r->idle_head = s;
    r->idle_tail = s;
}

static void mark_closing(struct stream *s, bool is_clean_end)
{
    if (s->conn.is_closing)
        return;
    s->is_clean_end = is_clean_end;
    conn_mark_closing(&s->conn);
}

/* Queues payload bytes as FCGI_STDOUT records (at most 65535 bytes each). */
static bool queue_payload(struct stream *s, struct payload *p)
{
    for (size_t off = 0; off < p->len; off += FCGI_RECORD_CONTENT_MAX) {
        size_t n = p->len - off < FCGI_RECORD_CONTENT_MAX ? p->len - off : FCGI_RECORD_CONTENT_MAX;
        uint8_t header[FCGI_RECORD_HEADER_LEN];
        fcgi_record_stdout_header(header, s->request_id, (uint16_t)n);
        if (!outq_push(&s->conn.out, header, sizeof header, p, off, n))
            return false;
    }
    s->last_queued_ms = loop_now_ms(s->conn.set->loop);
    idle_unlink(s->r, s);
    idle_append(s->r, s);
    conn_mark_dirty(&s->conn);
    return true;
}

/* The feed's callback: every row, replayed or live, arrives here. Queues
 * it, or drops the stream when it cannot keep up: the client reconnects
 * with Last-Event-ID and loses nothing. */
static void on_feed_row(struct feed *f, struct payload *p)
{
    struct stream *s = LOOP_CONTAINER(f, struct stream, conn.feed);
    if (p == NULL || !queue_payload(s, p)) {
        fprintf(stderr, "litepush: stream fd %d: out of memory, closing\n", s->conn.io.fd);
        mark_closing(s, false);
        return;
    }
    metrics_add(s->r->set.metrics, METRIC_DELIVERIES, 1);
    if (conn_is_too_slow(&s->conn)) {
        fprintf(stderr,
                "litepush: stream fd %d dropped: %zu bytes queued (limit %zu), "
                "client too slow; it will resume from the log\n",
                s->conn.io.fd, s->conn.out.bytes, s->r->cfg.queue_cap);
        metrics_add(s->r->set.metrics, METRIC_DROPPED_SLOW, 1);
        mark_closing(s, false);
    }
}

/* ---- the connection's life cycle (conn_ops) ------------------------------ */

static void on_stream_io(struct loop_io *io, uint32_t events)
{
    struct stream *s = LOOP_CONTAINER(io, struct stream, conn.io);
    if (s->conn.is_closing)
        return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        char buf[512];
        ssize_t n;
        while ((n = read(io->fd, buf, sizeof buf)) > 0)
            ;
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) ||
            (events & (EPOLLHUP | EPOLLERR))) {
            mark_closing(s, false);
            return;
        }
    }
    if (events & EPOLLOUT)
        conn_write(&s->conn);
}

static void stream_flush(struct conn *c)
{
    conn_write(c);
}

static void stream_free(struct conn *c)
{
    struct stream *s = stream_of(c);
    struct responder *r = s->r;
    if (s->is_clean_end) {
        /* Best effort: a full socket just ends without the trailer. */
        uint8_t end[FCGI_RECORD_END_REQUEST_LEN];
        fcgi_record_end_request(end, s->request_id);
        outq_push_copy(&c->out, end, sizeof end);
        outq_flush(&c->out, c->io.fd, SIZE_MAX);
    }
    conn_release(c);
    idle_unlink(r, s);
    metrics_sub(r->set.metrics, METRIC_OPEN, 1);
    atomic_fetch_sub(r->admitted, 1);
    free(s);
}

static void stream_replay_failed(struct conn *c)
{
    mark_closing(stream_of(c), false);
}

/* The log was replaced: end the stream cleanly; the browser reconnects
 * with Last-Event-ID and the new log answers (with litepush.reset if
 * needed). */
static void stream_log_replaced(struct conn *c)
{
    mark_closing(stream_of(c), true);
}

/* Heartbeats: oldest first; queue_payload moves each one to the tail. */
static void stream_tick(struct conn_set *set, uint64_t now_ms)
{
    struct responder *r = LOOP_CONTAINER(set, struct responder, set);
    struct stream *s;
    while ((s = r->idle_head) != NULL && now_ms - s->last_queued_ms >= r->cfg.heartbeat_ms) {
        if (s->conn.out.bytes > 0) {
            /* Not idle, only stuck: a heartbeat would just queue up. */
            s->last_queued_ms = now_ms;
            idle_unlink(r, s);
            idle_append(r, s);
        } else if (s->conn.is_closing || !queue_payload(s, r->heartbeat)) {
            idle_unlink(r, s);
            mark_closing(s, false);
        }
    }
}

/* The token's exp: a last event without an id (so the client's last id
 * stays that of the last row), then a clean end of the response. */
static void stream_expired(struct conn *c)
{
    struct stream *s = stream_of(c);
    queue_payload(s, s->r->expired);
    mark_closing(s, true);
}

static const struct conn_ops STREAM_OPS = {
    .flush = stream_flush,
    .free = stream_free,
    .replay_failed = stream_replay_failed,
    .log_replaced = stream_log_replaced,
    .tick = stream_tick,
    .expired = stream_expired,
};

/* ---- the responder ----------------------------------------------------- */

static bool queue_headers(struct stream *s, const char *extra)
{
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "Status: 200 OK\r\n"
                     "Content-Type: text/event-stream\r\n"
                     "Cache-Control: no-cache\r\n"
                     "X-Accel-Buffering: no\r\n"
                     "%s\r\n",
                     extra ? extra : "");
    if (n < 0 || (size_t)n >= sizeof head - 32)
        return false;
    n += (int)sse_encode_retry(s->r->cfg.retry_ms, head + n, sizeof head - (size_t)n);
    struct payload *p = payload_new((size_t)n);
    if (p == NULL)
        return false;
    memcpy(p->bytes, head, (size_t)n);
    bool ok = queue_payload(s, p);
    payload_unref(p);
    return ok;
}

/* A stream without a resume id went live after the feed's cursor: say so
 * with an id-only block, so that a client that reconnects before the first
 * row sends Last-Event-ID and misses nothing committed meanwhile. A resumed
 * stream needs none: the client has its id, and every row or
 * litepush.reset that follows carries a newer one. */
static bool queue_position(struct stream *s)
{
    char block[40];
    size_t n = sse_encode_id(s->conn.feed.cursor, block, sizeof block);
    struct payload *p = payload_new(n);
    if (n == 0 || p == NULL) {
        payload_unref(p);
        return false;
    }
    memcpy(p->bytes, block, n);
    bool ok = queue_payload(s, p);
    payload_unref(p);
    return ok;
}

void responder_adopt(struct responder *r, const struct responder_request *req)
{
    /* Events are small and must go out at once: no Nagle delay (fails
     * harmlessly on a unix socket). */
    int one = 1;
    setsockopt(req->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* libfcgi hands over a blocking socket; the loop must never block. */
    int flags = fcntl(req->fd, F_GETFL);
    struct stream *s = NULL;
    if (flags < 0 || fcntl(req->fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        fprintf(stderr, "litepush: %s: fcntl: %s\n", __func__, strerror(errno));
        goto refuse;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL || !conn_add(&r->set, &s->conn, req->fd, on_stream_io))
        goto refuse;
    s->r = r;
    s->conn.queue_cap = r->cfg.queue_cap;
    s->request_id = req->request_id;
    s->last_queued_ms = loop_now_ms(r->set.loop);
    metrics_add(r->set.metrics, METRIC_ACCEPTED, 1);
    metrics_add(r->set.metrics, METRIC_OPEN, 1);
    idle_append(r, s);
    if (!queue_headers(s, req->extra_headers))
        goto fail;
    /* The Last-Event-ID header wins: a browser reconnects with the URL it
     * started with (lastEventId from then) and a newer header. */
    bool has_resume = req->has_header_id || req->query.has_last_event_id;
    int64_t resume_id = req->has_header_id ? req->header_id : req->query.last_event_id;
    if (!feed_open(&s->conn.feed, &r->set.source, &req->query, has_resume, resume_id, 0,
                   on_feed_row))
        goto fail;
    if (req->expires_at_s != 0 && !conn_expire_at(&s->conn, req->expires_at_s))
        goto fail;
    if (!has_resume && !queue_position(s))
        goto fail;
    conn_mark_dirty(&s->conn);
    return;
fail:
    /* Out of memory, or a resume whose gap cannot be checked while the log
     * is unreachable: end the response cleanly after the headers and the
     * retry field, so that EventSource reconnects (an error status would
     * make it give up). */
    fprintf(stderr, "litepush: cannot start a stream: out of memory or the log is unreachable\n");
    mark_closing(s, true);
    return;
refuse:
    free(s);
    close(req->fd);
    atomic_fetch_sub(r->admitted, 1);
}

struct responder *responder_new(struct loop *loop, struct store *store,
                                const struct responder_config *cfg, struct metrics *metrics,
                                atomic_size_t *admitted, char *err, size_t err_cap)
{
    struct responder *r = calloc(1, sizeof *r);
    if (r == NULL) {
        snprintf(err, err_cap, "out of memory");
        return NULL;
    }
    r->cfg = *cfg;
    r->admitted = admitted;
    r->heartbeat = payload_new(SSE_HEARTBEAT_LEN);
    r->expired = payload_new(SSE_EXPIRED_LEN);
    if (r->heartbeat == NULL || r->expired == NULL) {
        snprintf(err, err_cap, "out of memory");
        goto fail;
    }
    memcpy(r->heartbeat->bytes, SSE_HEARTBEAT, SSE_HEARTBEAT_LEN);
    memcpy(r->expired->bytes, SSE_EXPIRED, SSE_EXPIRED_LEN);
    if (!conn_set_init(&r->set, loop, store, metrics, ENCODERS, 1, NULL, &STREAM_OPS, err, err_cap))
        goto fail;
    hub_set_max_row(r->set.hub, r->cfg.max_row);
    return r;
fail:
    responder_free(r);
    return NULL;
}

void responder_free(struct responder *r)
{
    if (r == NULL)
        return;
    for (struct conn *c = r->set.all; c != NULL; c = c->next)
        mark_closing(stream_of(c), true);
    conn_set_reap(&r->set);
    conn_set_destroy(&r->set);
    payload_unref(r->heartbeat);
    payload_unref(r->expired);
    free(r);
}
