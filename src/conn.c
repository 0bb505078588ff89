/* conn: see conn.h. */
#include "conn.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "watcher.h"

#define TICK_MS 1000
/* Deadlines are kept in seconds and compared in milliseconds: clamp them so
 * that at * 1000 fits an int64_t (that is still 292 million years away). */
#define EXPIRY_AT_MAX_S (INT64_MAX / 1000 - 1)
#define EXPIRY_WAKE_MAX_MS (24LL * 3600 * 1000)

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

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Arms the expiry timer for the earliest deadline (the loop's timers are
 * monotonic; the deadline is on the wall clock, like exp). */
static void arm_expiry(struct conn_set *set)
{
    struct deadline *first = deadline_first(&set->expiries);
    if (first == NULL) {
        loop_timer_cancel(set->loop, &set->expiry_timer);
        return;
    }
    /* A far exp (a JWT may say year 292277026596) is woken for once a day
     * until it is near; conn_expire_at keeps at * 1000 in range. */
    int64_t delay = first->at * 1000 - wall_ms();
    if (delay > EXPIRY_WAKE_MAX_MS)
        delay = EXPIRY_WAKE_MAX_MS;
    loop_timer_arm(set->loop, &set->expiry_timer, delay > 0 ? (uint64_t)delay : 0);
}

static void on_expiry(struct loop_timer *t)
{
    struct conn_set *set = LOOP_CONTAINER(t, struct conn_set, expiry_timer);
    int64_t now = wall_ms();
    struct deadline *d;
    while ((d = deadline_first(&set->expiries)) != NULL && d->at * 1000 <= now) {
        deadline_remove(&set->expiries, d);
        struct conn *c = LOOP_CONTAINER(d, struct conn, expiry);
        if (!c->is_closing)
            set->ops->expired(c);
    }
    arm_expiry(set);
}

bool conn_expire_at(struct conn *c, int64_t at_s)
{
    struct conn_set *set = c->set;
    if (at_s > EXPIRY_AT_MAX_S)
        at_s = EXPIRY_AT_MAX_S;
    if (!deadline_add(&set->expiries, &c->expiry, at_s))
        return false;
    if (deadline_first(&set->expiries) == &c->expiry)
        arm_expiry(set);
    return true;
}

bool conn_set_init(struct conn_set *set, struct loop *loop, struct store *store,
                   struct metrics *metrics, hub_encode_fn *const *encoders, size_t format_count,
                   void *encode_ctx, const struct conn_ops *ops, char *err, size_t err_cap)
{
    set->loop = loop;
    set->ops = ops;
    set->metrics = metrics;
    set->tick.on_due = on_tick;
    set->expiry_timer.on_due = on_expiry;
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
        loop_timer_cancel(set->loop, &set->expiry_timer);
    }
    deadline_heap_free(&set->expiries);
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

/* Flushes within the budget, counting the bytes that left; what the
 * client took pays off the burst. */
static enum outq_result write_out(struct conn *c)
{
    size_t before = c->out.bytes;
    enum outq_result res = outq_flush(&c->out, c->io.fd, CONN_WRITE_BUDGET);
    size_t written = before > c->out.bytes ? before - c->out.bytes : 0;
    c->burst_bytes = c->burst_bytes > written ? c->burst_bytes - written : 0;
    metrics_add(c->set->metrics, METRIC_BYTES_SENT, written);
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
    deadline_remove(&set->expiries, &c->expiry);
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
