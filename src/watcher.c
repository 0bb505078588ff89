/* watcher: see watcher.h.
 *
 * NOTES: ids are taken to commit in increasing order. SQLite's single
 * writer guarantees it for AUTOINCREMENT ids; on PostgreSQL the schema's
 * trigger assigns ids under a transaction lock so that it holds there too
 * (store_pg.c). A row inserted with an explicit id below the last one seen
 * is not published live (it is still served to any later resume). */
#include "watcher.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "hub.h"
#include "input_limits.h"
#include "loop.h"
#include "store.h"

struct watcher {
    struct loop *loop;
    struct store *store;
    struct hub *hub;
    struct loop_io store_io; /* the store's watch fd, borrowed */
    struct loop_timer poll_timer;
    struct loop_io retry_io; /* a timerfd, owned */
    uint64_t woke_ms;
    watcher_replaced_fn *on_replaced;
    void *replaced_ctx;
    int64_t issued_max; /* the highest id ever issued, when last looked at */
    /* A commit was announced but reading it failed (SQLITE_BUSY while an
     * application holds a lock, PostgreSQL away): the store will not
     * announce it again, so every later wake-up and poll reads until one
     * succeeds. */
    bool is_behind;
    struct watcher_stats stats;
};

static void publish_row(const struct store_row *row, void *ctx)
{
    struct watcher *w = ctx;
    w->stats.deliveries += hub_publish(w->hub, row);
    w->stats.last_id = row->id;
    w->stats.rows_published++;
}

/* Returns false when the log could not be read; w->is_behind then makes
 * the next wake-up or poll try again from the same id, so nothing is lost. */
static bool read_new_rows(struct watcher *w)
{
    int count;
    do {
        w->stats.reads++;
        enum store_err err = store_read(w->store, w->stats.last_id, INT64_MAX, NULL, NULL, 0,
                                        LIMITS_BATCH_ROWS, publish_row, w, &count);
        if (err != STORE_OK) {
            if (err != STORE_ERR_DOWN && !w->is_behind)
                fprintf(stderr, "litepush: watcher: reading the log: %s (retrying)\n",
                        store_errmsg(w->store));
            w->is_behind = true;
            return false;
        }
    } while (count == LIMITS_BATCH_ROWS);
    w->is_behind = false;
    return true;
}

/* The log we were following is gone: start over from the one now there,
 * and let the owner send its clients to resume against it (they get a
 * litepush.reset when their ids are ahead of it). */
static void restart_from_log(struct watcher *w, const char *what)
{
    int64_t old_last = w->stats.last_id;
    struct store_bounds b = {0};
    store_last_id(w->store, &w->stats.last_id);
    store_bounds(w->store, NULL, NULL, 0, &b);
    w->issued_max = b.issued_max;
    fprintf(stderr,
            "litepush: %s (last id now %lld, was %lld): ending streams so that clients resume "
            "against it\n",
            what, (long long)w->stats.last_id, (long long)old_last);
    w->on_replaced(w->replaced_ctx);
}

/* Notices a restore in place (sqlite3 .restore, a reloaded dump): the
 * highest id ever issued went back, which nothing else does. Ids may then
 * repeat, so streams must restart. */
static void check_rewind(struct watcher *w)
{
    struct store_bounds b = {0};
    if (store_bounds(w->store, NULL, NULL, 0, &b) != STORE_OK)
        return;
    if (b.issued_max < w->issued_max)
        restart_from_log(w, "the log was rewound (restored in place)");
    else
        w->issued_max = b.issued_max;
}

static void arm_retry(struct watcher *w, long us)
{
    struct itimerspec its = {
        .it_value = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000}};
    timerfd_settime(w->retry_io.fd, 0, &its, NULL);
}

/* Asks the store what happened and acts on it. */
static void check(struct watcher *w, enum store_wake why)
{
    long retry_us = 0;
    enum store_change ch = store_changes(w->store, why, &retry_us);
    if (ch == STORE_CHANGE_REPLACED) {
        restart_from_log(w, "the database file was replaced, reopened it");
    } else if (ch == STORE_CHANGE_COMMIT) {
        uint64_t before = w->stats.rows_published;
        bool is_read = read_new_rows(w);
        /* A commit with no new row: a delete, or a restore in place. */
        if (is_read && w->stats.rows_published == before)
            check_rewind(w);
        w->stats.last_lag_ms = w->woke_ms ? loop_clock_ms() - w->woke_ms : 0;
    } else if (w->is_behind) {
        read_new_rows(w);
    } else if (why == STORE_WAKE_POLL) {
        check_rewind(w);
    }
    if (retry_us > 0)
        arm_retry(w, retry_us);
}

void watcher_catch_up(struct watcher *w)
{
    read_new_rows(w);
}

static void on_retry(struct loop_io *io, uint32_t events)
{
    (void)events;
    struct watcher *w = LOOP_CONTAINER(io, struct watcher, retry_io);
    uint64_t expirations;
    if (read(io->fd, &expirations, sizeof expirations) < 0)
        return;
    check(w, STORE_WAKE_RETRY);
}

static void on_poll(struct loop_timer *t)
{
    struct watcher *w = LOOP_CONTAINER(t, struct watcher, poll_timer);
    w->woke_ms = 0;
    check(w, STORE_WAKE_POLL);
    loop_timer_arm(w->loop, &w->poll_timer, store_poll_ms(w->store));
}

static void on_store_io(struct loop_io *io, uint32_t events)
{
    (void)events;
    struct watcher *w = LOOP_CONTAINER(io, struct watcher, store_io);
    w->woke_ms = loop_clock_ms();
    check(w, STORE_WAKE_FD);
}

struct watcher *watcher_new(struct loop *loop, struct store *store, struct hub *hub,
                            watcher_replaced_fn *on_replaced, void *ctx, char *err, size_t err_cap)
{
    struct watcher *w = calloc(1, sizeof *w);
    if (w == NULL) {
        snprintf(err, err_cap, "out of memory");
        return NULL;
    }
    w->loop = loop;
    w->store = store;
    w->hub = hub;
    w->on_replaced = on_replaced;
    w->replaced_ctx = ctx;
    w->store_io.fd = -1;
    w->store_io.on_ready = on_store_io;
    w->retry_io.fd = -1;
    w->retry_io.on_ready = on_retry;
    w->poll_timer.on_due = on_poll;
    /* The store's change detection starts now, before the last id is read:
     * a commit in between is then both seen and noticed, never missed. */
    int fd = store_watch_fd(store);
    struct store_bounds bounds = {0};
    if (store_last_id(store, &w->stats.last_id) != STORE_OK ||
        store_bounds(store, NULL, NULL, 0, &bounds) != STORE_OK) {
        snprintf(err, err_cap, "cannot read the log: %s", store_errmsg(store));
        goto fail;
    }
    w->issued_max = bounds.issued_max;
    w->retry_io.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (w->retry_io.fd < 0 || loop_io_add(loop, &w->retry_io, EPOLLIN) != 0) {
        snprintf(err, err_cap, "cannot set up the watcher's timer");
        goto fail;
    }
    if (fd >= 0) {
        w->store_io.fd = fd;
        if (loop_io_add(loop, &w->store_io, EPOLLIN) != 0) {
            w->store_io.fd = -1;
            fd = -1;
        }
    }
    w->stats.is_polling = fd < 0;
    loop_timer_arm(loop, &w->poll_timer, store_poll_ms(store));
    return w;
fail:
    watcher_free(w);
    return NULL;
}

void watcher_free(struct watcher *w)
{
    if (w == NULL)
        return;
    loop_timer_cancel(w->loop, &w->poll_timer);
    if (w->store_io.fd >= 0 && w->store_io.events)
        loop_io_remove(w->loop, &w->store_io);
    if (w->retry_io.fd >= 0) {
        if (w->retry_io.events)
            loop_io_remove(w->loop, &w->retry_io);
        close(w->retry_io.fd);
    }
    free(w);
}

int64_t watcher_last_id(const struct watcher *w)
{
    return w->stats.last_id;
}

void watcher_get_stats(const struct watcher *w, struct watcher_stats *out)
{
    *out = w->stats;
}
