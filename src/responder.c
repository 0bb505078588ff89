/* responder: SSE streams on the event loop.
 *
 * Each stream holds a feed (feed.h), which does resume, replay and live
 * delivery; this file turns what the feed queues into FastCGI records.
 *
 * Replay goes one batch at a time, only once the stream has written the last,
 * and is driven by EPOLLOUT: a reconnect after a long outage neither builds
 * an unbounded queue nor starves the other streams.
 *
 * Every row is encoded once (hub format 0) and the same payload is queued
 * on all its streams; each queue item adds only the 8-byte FastCGI header.
 *
 * Heartbeats: streams sit in a list ordered by their last queued byte; a
 * tick once a second sends a comment to those idle for heartbeat_ms, so the
 * cost is proportional to the streams that need one.
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

#include "crypto.h"
#include "feed.h"
#include "fcgi_record.h"
#include "hub.h"
#include "input_limits.h"
#include "loop.h"
#include "outq.h"
#include "payload.h"
#include "sse.h"
#include "store.h"
#include "watcher.h"

#define TICK_MS 1000
/* Bytes one stream may write per wake-up before others get their turn. */
#define WRITE_BUDGET (256 * 1024)

struct stream {
    struct loop_io io;
    struct responder *r;
    struct feed feed;
    bool is_closing;
    bool is_dirty;
    bool is_clean_end; /* write END_REQUEST before closing */
    uint16_t request_id;
    struct outq out;
    uint64_t last_queued_ms;
    struct stream *idle_prev, *idle_next; /* by last_queued_ms, oldest first */
    struct stream *dirty_next;
    struct stream *closing_next;
};

struct responder {
    struct loop *loop;
    struct store *store;
    struct hub *hub;
    struct watcher *watcher;
    struct feed_source source;
    struct responder_config cfg;
    struct loop_timer tick;
    struct payload *heartbeat;
    struct stream *idle_head, *idle_tail;
    struct stream *dirty;
    struct stream *closing;
    struct responder_stats stats;
};

static void on_stream_io(struct loop_io *io, uint32_t events);

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
    if (s->is_closing)
        return;
    s->is_closing = true;
    s->feed.is_muted = true;
    s->is_clean_end = is_clean_end;
    s->closing_next = s->r->closing;
    s->r->closing = s;
}

static void mark_dirty(struct stream *s)
{
    if (s->is_dirty || s->is_closing)
        return;
    s->is_dirty = true;
    s->dirty_next = s->r->dirty;
    s->r->dirty = s;
}

/* Queues payload bytes as FCGI_STDOUT records (at most 65535 bytes each). */
static bool queue_payload(struct stream *s, struct payload *p)
{
    for (size_t off = 0; off < p->len; off += FCGI_RECORD_CONTENT_MAX) {
        size_t n = p->len - off < FCGI_RECORD_CONTENT_MAX ? p->len - off : FCGI_RECORD_CONTENT_MAX;
        uint8_t header[FCGI_RECORD_HEADER_LEN];
        fcgi_record_stdout_header(header, s->request_id, (uint16_t)n);
        if (!outq_push(&s->out, header, sizeof header, p, off, n))
            return false;
    }
    s->last_queued_ms = loop_now_ms(s->r->loop);
    idle_unlink(s->r, s);
    idle_append(s->r, s);
    mark_dirty(s);
    return true;
}

/* Queues a row's bytes, or drops the stream when it cannot keep up: the
 * client reconnects with Last-Event-ID and loses nothing. */
static void queue_event(struct stream *s, struct payload *p)
{
    if (p == NULL || !queue_payload(s, p)) {
        fprintf(stderr, "litepush: stream fd %d: out of memory, closing\n", s->io.fd);
        mark_closing(s, false);
        return;
    }
    s->r->stats.events_sent++;
    if (s->out.bytes > s->r->cfg.queue_cap) {
        fprintf(stderr,
                "litepush: stream fd %d dropped: %zu bytes queued (limit %zu), "
                "client too slow; it will resume from the log\n",
                s->io.fd, s->out.bytes, s->r->cfg.queue_cap);
        s->r->stats.streams_dropped_slow++;
        mark_closing(s, false);
    }
}

/* The feed's callback: every row, replayed or live, arrives here. */
static void on_feed_row(struct feed *f, struct payload *p)
{
    queue_event(LOOP_CONTAINER(f, struct stream, feed), p);
}

static void replay_step(struct stream *s)
{
    if (feed_replay_step(&s->feed) != STORE_OK)
        mark_closing(s, false);
}

/* ---- writing ----------------------------------------------------------- */

static void flush(struct stream *s)
{
    if (s->is_closing)
        return;
    enum outq_result res = outq_flush(&s->out, s->io.fd, WRITE_BUDGET);
    if (res == OUTQ_EMPTY && !s->feed.is_live) {
        replay_step(s);
        res = outq_flush(&s->out, s->io.fd, WRITE_BUDGET);
    }
    if (res == OUTQ_ERROR) {
        mark_closing(s, false);
        return;
    }
    /* Wait for room when blocked; keep EPOLLOUT while replaying so the next
     * batch follows as soon as this one is written. */
    bool want_out = res == OUTQ_BLOCKED || (!s->feed.is_live && !s->feed.is_stalled);
    loop_io_modify(s->r->loop, &s->io, EPOLLIN | EPOLLRDHUP | (want_out ? EPOLLOUT : 0));
}

static void on_stream_io(struct loop_io *io, uint32_t events)
{
    struct stream *s = LOOP_CONTAINER(io, struct stream, io);
    if (s->is_closing)
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
        flush(s);
}

/* ---- lifecycle --------------------------------------------------------- */

static void free_stream(struct stream *s)
{
    struct responder *r = s->r;
    feed_close(&s->feed);
    if (s->is_clean_end) {
        /* Best effort: a full socket just ends without the trailer. */
        uint8_t end[FCGI_RECORD_END_REQUEST_LEN];
        fcgi_record_end_request(end, s->request_id);
        outq_push_copy(&s->out, end, sizeof end);
        outq_flush(&s->out, s->io.fd, SIZE_MAX);
    }
    if (s->io.events)
        loop_io_remove(r->loop, &s->io);
    close(s->io.fd);
    outq_clear(&s->out);
    idle_unlink(r, s);
    r->stats.streams_open--;
    if (r->cfg.admitted != NULL)
        atomic_fetch_sub(r->cfg.admitted, 1);
    free(s);
}

/* The after-batch hook: flush what was queued, then free closed streams. */
static void after_batch(void *ctx)
{
    struct responder *r = ctx;
    /* Take the list first: a stream stays marked while it flushes, so what
     * it queues now (a replay batch) waits for its next turn. */
    struct stream *list = r->dirty;
    r->dirty = NULL;
    while (list != NULL) {
        struct stream *s = list;
        list = s->dirty_next;
        flush(s);
        s->is_dirty = false;
    }
    while (r->closing != NULL) {
        struct stream *s = r->closing;
        r->closing = s->closing_next;
        free_stream(s);
    }
}

static void on_tick(struct loop_timer *t)
{
    struct responder *r = LOOP_CONTAINER(t, struct responder, tick);
    uint64_t now = loop_now_ms(r->loop);
    /* Oldest first; queue_payload moves each one to the tail. */
    struct stream *s;
    while ((s = r->idle_head) != NULL && now - s->last_queued_ms >= r->cfg.heartbeat_ms) {
        if (s->out.bytes > 0) {
            /* Not idle, only stuck: a heartbeat would just queue up. */
            s->last_queued_ms = now;
            idle_unlink(r, s);
            idle_append(r, s);
        } else if (s->is_closing || !queue_payload(s, r->heartbeat)) {
            idle_unlink(r, s);
            mark_closing(s, false);
        }
    }
    loop_timer_arm(r->loop, &r->tick, TICK_MS);
}

static bool queue_headers(struct stream *s)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "Status: 200 OK\r\n"
                     "Content-Type: text/event-stream\r\n"
                     "Cache-Control: no-cache\r\n"
                     "X-Accel-Buffering: no\r\n"
                     "\r\n");
    n += (int)sse_encode_retry(s->r->cfg.retry_ms, head + n, sizeof head - (size_t)n);
    struct payload *p = payload_new((size_t)n);
    if (p == NULL)
        return false;
    memcpy(p->bytes, head, (size_t)n);
    bool ok = queue_payload(s, p);
    payload_unref(p);
    return ok;
}

void responder_adopt(struct responder *r, const struct responder_request *req)
{
    struct stream *s = calloc(1, sizeof *s);
    if (s == NULL) {
        close(req->fd);
        if (r->cfg.admitted != NULL)
            atomic_fetch_sub(r->cfg.admitted, 1);
        return;
    }
    s->r = r;
    s->io.fd = req->fd;
    /* Events are small and must go out at once: no Nagle delay (fails
     * harmlessly on a unix socket). */
    int one = 1;
    setsockopt(req->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* libfcgi hands over a blocking socket; the loop must never block. */
    int flags = fcntl(req->fd, F_GETFL);
    if (flags < 0 || fcntl(req->fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        fprintf(stderr, "litepush: %s: fcntl: %s\n", __func__, strerror(errno));
        close(req->fd);
        free(s);
        if (r->cfg.admitted != NULL)
            atomic_fetch_sub(r->cfg.admitted, 1);
        return;
    }
    s->io.on_ready = on_stream_io;
    s->request_id = req->request_id;
    s->last_queued_ms = loop_now_ms(r->loop);
    r->stats.streams_open++;
    r->stats.streams_total++;
    idle_append(r, s);
    if (loop_io_add(r->loop, &s->io, EPOLLIN | EPOLLRDHUP) != 0 || !queue_headers(s))
        goto fail;
    /* The Last-Event-ID header wins: a browser reconnects with the URL it
     * started with (lastEventId from then) and a newer header. */
    bool has_resume = req->has_header_id || req->query.has_last_event_id;
    int64_t resume_id = req->has_header_id ? req->header_id : req->query.last_event_id;
    if (!feed_open(&s->feed, &r->source, &req->query, has_resume, resume_id, 0, on_feed_row))
        goto fail;
    mark_dirty(s);
    return;
fail:
    fprintf(stderr, "litepush: cannot start a stream: out of memory\n");
    mark_closing(s, false);
}

/* The log was replaced: end every stream cleanly; browsers reconnect with
 * Last-Event-ID and the new log answers (with litepush.reset if needed). */
static void on_log_replaced(void *ctx)
{
    struct responder *r = ctx;
    for (struct stream *s = r->idle_head; s != NULL; s = s->idle_next)
        mark_closing(s, true);
}

struct responder *responder_new(struct loop *loop, struct store *store,
                                const struct responder_config *cfg, char *err, size_t err_cap)
{
    struct responder *r = calloc(1, sizeof *r);
    if (r == NULL) {
        snprintf(err, err_cap, "out of memory");
        return NULL;
    }
    r->loop = loop;
    r->store = store;
    r->cfg = *cfg;
    r->tick.on_due = on_tick;
    r->hub = hub_new(ENCODERS, 1, NULL);
    r->heartbeat = payload_new(SSE_HEARTBEAT_LEN);
    if (r->hub == NULL || r->heartbeat == NULL) {
        snprintf(err, err_cap, "out of memory");
        goto fail;
    }
    memcpy(r->heartbeat->bytes, SSE_HEARTBEAT, SSE_HEARTBEAT_LEN);
    r->watcher = watcher_new(loop, store, r->hub, on_log_replaced, r, err, err_cap);
    if (r->watcher == NULL)
        goto fail;
    r->source = (struct feed_source){.hub = r->hub, .store = store, .watcher = r->watcher};
    loop_set_after(loop, after_batch, r);
    loop_timer_arm(loop, &r->tick, TICK_MS);
    return r;
fail:
    responder_free(r);
    return NULL;
}

void responder_free(struct responder *r)
{
    if (r == NULL)
        return;
    for (struct stream *s = r->idle_head; s != NULL; s = s->idle_next)
        if (!s->is_closing)
            mark_closing(s, true);
    r->dirty = NULL;
    after_batch(r);
    loop_timer_cancel(r->loop, &r->tick);
    watcher_free(r->watcher);
    hub_free(r->hub);
    payload_unref(r->heartbeat);
    free(r);
}

void responder_get_stats(const struct responder *r, struct responder_stats *out)
{
    *out = r->stats;
    struct watcher_stats ws = {0};
    if (r->watcher)
        watcher_get_stats(r->watcher, &ws);
    out->last_id = ws.last_id;
    out->rows_seen = ws.rows_published;
    out->watcher_lag_ms = ws.last_lag_ms;
}
