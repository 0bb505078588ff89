/* conn: see conn.h. */
#include "conn.h"

#include <stdio.h>
#include <unistd.h>

#include "store.h"
#include "watcher.h"

#define TICK_MS 1000

static void after_batch(void *ctx)
{
    conn_set_reap(ctx);
}

static void on_tick(struct loop_timer *t)
{
    struct conn_set *set = LOOP_CONTAINER(t, struct conn_set, tick);
    set->ops->tick(set, loop_now_ms(set->loop));
    loop_timer_arm(set->loop, &set->tick, TICK_MS);
}

static void on_log_replaced(void *ctx)
{
    struct conn_set *set = ctx;
    for (struct conn *c = set->all; c != NULL; c = c->next)
        set->ops->log_replaced(c);
}

bool conn_set_init(struct conn_set *set, struct loop *loop, struct store *store,
                   hub_encode_fn *const *encoders, size_t format_count, void *encode_ctx,
                   const struct conn_ops *ops, char *err, size_t err_cap)
{
    set->loop = loop;
    set->ops = ops;
    set->tick.on_due = on_tick;
    set->hub = hub_new(encoders, format_count, encode_ctx);
    if (set->hub == NULL) {
        snprintf(err, err_cap, "out of memory");
        return false;
    }
    set->watcher = watcher_new(loop, store, set->hub, on_log_replaced, set, err, err_cap);
    if (set->watcher == NULL)
        return false;
    set->source = (struct feed_source){.hub = set->hub, .store = store, .watcher = set->watcher};
    loop_set_after(loop, after_batch, set);
    loop_timer_arm(loop, &set->tick, TICK_MS);
    return true;
}

void conn_set_reap(struct conn_set *set)
{
    /* Take the list first: a connection stays marked while it flushes, so
     * what it queues now (a replay batch) waits for its next turn. */
    struct conn *list = set->dirty;
    set->dirty = NULL;
    while (list != NULL) {
        struct conn *c = list;
        list = c->dirty_next;
        if (!c->is_closing)
            set->ops->flush(c);
        c->is_dirty = false;
    }
    while (set->closing != NULL) {
        struct conn *c = set->closing;
        set->closing = c->closing_next;
        set->ops->free(c);
    }
}

void conn_set_destroy(struct conn_set *set)
{
    if (set->loop != NULL) {
        loop_set_after(set->loop, NULL, NULL);
        loop_timer_cancel(set->loop, &set->tick);
    }
    watcher_free(set->watcher);
    hub_free(set->hub);
    set->watcher = NULL;
    set->hub = NULL;
}

bool conn_add(struct conn_set *set, struct conn *c, int fd, loop_io_fn *on_ready)
{
    c->set = set;
    c->io = (struct loop_io){.fd = fd, .on_ready = on_ready};
    if (loop_io_add(set->loop, &c->io, EPOLLIN | EPOLLRDHUP) != 0)
        return false;
    c->next = set->all;
    if (set->all != NULL)
        set->all->prev = c;
    set->all = c;
    return true;
}

void conn_mark_dirty(struct conn *c)
{
    if (c->is_dirty || c->is_closing)
        return;
    c->is_dirty = true;
    c->dirty_next = c->set->dirty;
    c->set->dirty = c;
}

void conn_mark_closing(struct conn *c)
{
    if (c->is_closing)
        return;
    c->is_closing = true;
    feed_mute(&c->feed);
    c->closing_next = c->set->closing;
    c->set->closing = c;
}

bool conn_is_too_slow(const struct conn *c)
{
    return c->step_start > c->queue_cap + c->burst_bytes;
}

/* Flushes within the budget; what the client took pays off the burst. */
static enum outq_result write_out(struct conn *c)
{
    size_t before = c->out.bytes;
    enum outq_result res = outq_flush(&c->out, c->io.fd, CONN_WRITE_BUDGET);
    size_t written = before > c->out.bytes ? before - c->out.bytes : 0;
    c->burst_bytes = c->burst_bytes > written ? c->burst_bytes - written : 0;
    return res;
}

enum outq_result conn_write(struct conn *c)
{
    if (c->is_closing)
        return OUTQ_ERROR;
    /* The step that ends here queued more than the cap on a client that
     * had kept up: the server's own doing, forgiven until it is written. */
    if (c->step_start <= c->queue_cap && c->out.bytes > c->queue_cap + c->burst_bytes)
        c->burst_bytes = c->out.bytes - c->queue_cap;
    enum outq_result res = write_out(c);
    c->step_start = c->out.bytes;
    if (res == OUTQ_EMPTY && feed_is_replaying(&c->feed)) {
        if (feed_replay_step(&c->feed) != STORE_OK)
            c->set->ops->replay_failed(c);
        if (!c->is_closing)
            res = write_out(c);
    }
    if (c->is_closing || res == OUTQ_ERROR) {
        conn_mark_closing(c);
        return OUTQ_ERROR;
    }
    /* Wait for room when blocked; keep EPOLLOUT while replaying so the next
     * batch follows as soon as this one is written, except while the log is
     * unreachable: then the next write (a heartbeat or ping) tries again. */
    bool want_out = res == OUTQ_BLOCKED || (feed_is_replaying(&c->feed) && !c->feed.is_stalled);
    loop_io_modify(c->set->loop, &c->io, EPOLLIN | EPOLLRDHUP | (want_out ? EPOLLOUT : 0));
    return res;
}

void conn_release(struct conn *c)
{
    struct conn_set *set = c->set;
    feed_close(&c->feed);
    if (c->io.events)
        loop_io_remove(set->loop, &c->io);
    close(c->io.fd);
    outq_clear(&c->out);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else if (set->all == c)
        set->all = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}
