/* conn: see conn.h. */
#include "conn.h"

#include <stdio.h>
#include <unistd.h>

#include "store.h"
#include "watcher.h"

#define TICK_MS 1000

/* The watcher's counts as this worker's metrics: cheap enough for every
 * batch, so a scrape never lags behind a row already delivered. */
static void report_watcher(struct conn_set *set)
{
    struct watcher_stats ws;
    watcher_get_stats(set->watcher, &ws);
    metrics_set(set->metrics, METRIC_ROWS_READ, ws.rows_published);
    metrics_set(set->metrics, METRIC_LAST_ID, ws.last_id > 0 ? (uint64_t)ws.last_id : 0);
    metrics_set(set->metrics, METRIC_WATCHER_LAG_US, ws.last_lag_ms * 1000);
}

static void after_batch(void *ctx)
{
    conn_set_reap(ctx);
    report_watcher(ctx);
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
                   struct metrics *metrics, hub_encode_fn *const *encoders, size_t format_count,
                   void *encode_ctx, const struct conn_ops *ops, char *err, size_t err_cap)
{
    set->loop = loop;
    set->ops = ops;
    set->metrics = metrics;
    set->tick.on_due = on_tick;
    set->hub = hub_new(encoders, format_count, encode_ctx);
    if (set->hub == NULL) {
        snprintf(err, err_cap, "out of memory");
        return false;
    }
    set->watcher = watcher_new(loop, store, set->hub, on_log_replaced, set, err, err_cap);
    if (set->watcher == NULL)
        return false;
    set->source = (struct feed_source){
        .hub = set->hub, .store = store, .watcher = set->watcher, .metrics = metrics};
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

/* outq_flush, counting the bytes that left. */
static enum outq_result flush_counted(struct conn *c)
{
    size_t before = c->out.bytes;
    enum outq_result res = outq_flush(&c->out, c->io.fd, CONN_WRITE_BUDGET);
    metrics_add(c->set->metrics, METRIC_BYTES_SENT, before - c->out.bytes);
    return res;
}

enum outq_result conn_write(struct conn *c)
{
    if (c->is_closing)
        return OUTQ_ERROR;
    enum outq_result res = flush_counted(c);
    if (res == OUTQ_EMPTY && feed_is_replaying(&c->feed)) {
        if (feed_replay_step(&c->feed) != STORE_OK)
            c->set->ops->replay_failed(c);
        if (!c->is_closing)
            res = flush_counted(c);
    }
    if (c->is_closing || res == OUTQ_ERROR) {
        conn_mark_closing(c);
        return OUTQ_ERROR;
    }
    /* Wait for room when blocked; keep EPOLLOUT while replaying so the next
     * batch follows as soon as this one is written. */
    bool want_out = res == OUTQ_BLOCKED || feed_is_replaying(&c->feed);
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
