/* watcher: see watcher.h.
 *
 * NOTES: ids are taken to commit in increasing order, which SQLite's single
 * writer guarantees for AUTOINCREMENT ids. A row inserted with an explicit
 * id below the last one seen is not published live (it is still served to
 * any later resume). */
#include "watcher.h"

#include <errno.h>
#include <stdbool.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "hub.h"
#include "input_limits.h"
#include "loop.h"
#include "store.h"

/* With inotify working, the poll is only a safety net. */
#define WATCHER_POLL_MS 500
#define WATCHER_POLL_NO_INOTIFY_MS 20
/* Retries after a wake-up that found no visible commit yet, in µs from the
 * previous check. The WAL write that woke us precedes the commit becoming
 * visible (the wal-index update) by the writer's fsync, typically 0.1-2 ms,
 * so the checks are dense at first; a check is one PRAGMA (about 1 µs).
 * A timerfd gives the sub-millisecond precision the loop's timers lack. */
static const long RETRY_DELAYS_US[] = {25,  50,   50,   100,  100,  100,  100,   100,  100,
                                       100, 100,  200,  200,  200,  200,  200,   500,  500,
                                       500, 1000, 1000, 2000, 2000, 5000, 10000, 20000};
#define RETRY_COUNT (sizeof RETRY_DELAYS_US / sizeof RETRY_DELAYS_US[0])

struct watcher {
    struct loop *loop;
    struct store *store;
    struct hub *hub;
    struct loop_io inotify_io;
    struct loop_timer poll_timer;
    struct loop_io retry_io; /* a timerfd */
    size_t retry_index;
    int64_t data_version;
    uint64_t woke_ms;
    watcher_replaced_fn *on_replaced;
    void *replaced_ctx;
    int64_t issued_max; /* AUTOINCREMENT's sequence when last looked at */
    bool is_deleted;    /* the file was deleted and we said so */
    char *db_name;      /* basename of the database file */
    size_t db_name_len;
    struct watcher_stats stats;
};

static void publish_row(const struct store_row *row, void *ctx)
{
    struct watcher *w = ctx;
    w->stats.deliveries += hub_publish(w->hub, row);
    w->stats.last_id = row->id;
    w->stats.rows_published++;
}

static void read_new_rows(struct watcher *w)
{
    int count;
    do {
        enum store_err err = store_read(w->store, w->stats.last_id, INT64_MAX, NULL, NULL, 0,
                                        LIMITS_BATCH_ROWS, publish_row, w, &count);
        if (err != STORE_OK) {
            fprintf(stderr, "litepush: watcher: reading the log: %s\n", store_errmsg(w->store));
            return;
        }
    } while (count == LIMITS_BATCH_ROWS);
}

static void check_log_identity(struct watcher *w);

/* Returns 1 when a commit was found and published. */
static int check(struct watcher *w)
{
    int64_t version;
    if (store_data_version(w->store, &version) != STORE_OK)
        return 0;
    if (version == w->data_version)
        return 0;
    w->data_version = version;
    uint64_t before = w->stats.rows_published;
    read_new_rows(w);
    /* A commit with no new row: a delete, or a restore in place. */
    if (w->stats.rows_published == before)
        check_log_identity(w);
    w->stats.last_lag_ms = w->woke_ms ? loop_clock_ms() - w->woke_ms : 0;
    return 1;
}

/* The log we were following is gone: start over from the one now there,
 * and let the owner send its clients to resume against it (they get a
 * litepush.reset when their ids are ahead of it). */
static void restart_from_log(struct watcher *w, const char *what)
{
    int64_t old_last = w->stats.last_id;
    struct store_bounds b = {0};
    store_data_version(w->store, &w->data_version);
    store_last_id(w->store, &w->stats.last_id);
    store_bounds(w->store, NULL, NULL, 0, &b);
    w->issued_max = b.issued_max;
    fprintf(stderr,
            "litepush: %s (last id now %lld, was %lld): ending streams so that clients resume "
            "against it\n",
            what, (long long)w->stats.last_id, (long long)old_last);
    w->on_replaced(w->replaced_ctx);
}

/* Notices a restore: by rename (the path names another file: reopen it),
 * or in place (sqlite3 .restore: AUTOINCREMENT's sequence went back, which
 * nothing else does). Either way ids may repeat, so streams must restart. */
static void check_log_identity(struct watcher *w)
{
    if (store_is_deleted(w->store)) {
        if (!w->is_deleted) {
            fprintf(stderr,
                    "litepush: the database file %s was deleted: streams stay open, publishes "
                    "are refused, and a new database at that path is followed as soon as it "
                    "appears\n",
                    store_path(w->store));
            w->is_deleted = true;
        }
        return;
    }
    w->is_deleted = false;
    if (store_is_replaced(w->store)) {
        char err[256];
        if (!store_reopen(w->store, err, sizeof err)) {
            fprintf(stderr, "litepush: watcher: the database file was replaced: %s\n", err);
            return;
        }
        restart_from_log(w, "the database file was replaced, reopened it");
        return;
    }
    struct store_bounds b = {0};
    if (store_bounds(w->store, NULL, NULL, 0, &b) != STORE_OK)
        return;
    if (b.issued_max < w->issued_max)
        restart_from_log(w, "the log was rewound (restored in place)");
    else
        w->issued_max = b.issued_max;
}

void watcher_catch_up(struct watcher *w)
{
    read_new_rows(w);
}

static void arm_retry(struct watcher *w)
{
    long us = RETRY_DELAYS_US[w->retry_index];
    struct itimerspec its = {
        .it_value = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000}};
    timerfd_settime(w->retry_io.fd, 0, &its, NULL);
}

static void on_retry(struct loop_io *io, uint32_t events)
{
    (void)events;
    struct watcher *w = LOOP_CONTAINER(io, struct watcher, retry_io);
    uint64_t expirations;
    if (read(io->fd, &expirations, sizeof expirations) < 0)
        return;
    if (check(w) || ++w->retry_index == RETRY_COUNT)
        return;
    arm_retry(w);
}

static void on_poll(struct loop_timer *t)
{
    struct watcher *w = LOOP_CONTAINER(t, struct watcher, poll_timer);
    w->woke_ms = 0;
    check_log_identity(w);
    check(w);
    loop_timer_arm(w->loop, &w->poll_timer,
                   w->stats.is_polling ? WATCHER_POLL_NO_INOTIFY_MS : WATCHER_POLL_MS);
}

static void on_inotify(struct loop_io *io, uint32_t events)
{
    (void)events;
    struct watcher *w = LOOP_CONTAINER(io, struct watcher, inotify_io);
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int is_ours = 0, is_renamed = 0;
    ssize_t n;
    /* Drain everything: one check covers any number of writes. */
    while ((n = read(io->fd, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            /* Wake for "push.db" and "push.db-wal", not for other files. */
            if (ev->len && strncmp(ev->name, w->db_name, w->db_name_len) == 0) {
                is_ours = 1;
                is_renamed |= (ev->mask & (IN_CREATE | IN_MOVED_TO)) && !ev->name[w->db_name_len];
            }
            p += sizeof *ev + ev->len;
        }
    }
    if (!is_ours)
        return;
    if (is_renamed)
        check_log_identity(w);
    w->woke_ms = loop_clock_ms();
    if (!check(w) && w->retry_io.fd >= 0) {
        w->retry_index = 0;
        arm_retry(w);
    }
}

struct watcher *watcher_new(struct loop *loop, struct store *store, struct hub *hub,
                            watcher_replaced_fn *on_replaced, void *ctx, char *err, size_t err_cap)
{
    struct watcher *w = calloc(1, sizeof *w);
    char *path_copy = NULL;
    if (w == NULL)
        goto fail;
    w->loop = loop;
    w->store = store;
    w->hub = hub;
    w->on_replaced = on_replaced;
    w->replaced_ctx = ctx;
    w->inotify_io.fd = -1;
    w->inotify_io.on_ready = on_inotify;
    w->retry_io.fd = -1;
    w->retry_io.on_ready = on_retry;
    w->poll_timer.on_due = on_poll;
    struct store_bounds bounds = {0};
    if (store_data_version(store, &w->data_version) != STORE_OK ||
        store_last_id(store, &w->stats.last_id) != STORE_OK ||
        store_bounds(store, NULL, NULL, 0, &bounds) != STORE_OK) {
        snprintf(err, err_cap, "cannot read the log: %s", store_errmsg(store));
        goto fail;
    }
    w->issued_max = bounds.issued_max;
    if (store_is_readonly(store))
        fprintf(stderr,
                "litepush: the database %s is read-only: streams are served, publishes are "
                "refused\n",
                store_path(store));
    path_copy = strdup(store_path(store));
    w->db_name = path_copy ? strdup(basename(path_copy)) : NULL;
    if (w->db_name == NULL) {
        snprintf(err, err_cap, "out of memory");
        goto fail;
    }
    w->db_name_len = strlen(w->db_name);
    free(path_copy);
    path_copy = strdup(store_path(store));
    const char *dir = path_copy ? dirname(path_copy) : ".";
    w->inotify_io.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    w->retry_io.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (w->inotify_io.fd < 0 || w->retry_io.fd < 0 ||
        loop_io_add(loop, &w->retry_io, EPOLLIN) != 0 ||
        inotify_add_watch(w->inotify_io.fd, dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO) < 0 ||
        loop_io_add(loop, &w->inotify_io, EPOLLIN) != 0) {
        fprintf(stderr, "litepush: watcher: inotify on %s unavailable (%s); polling every %d ms\n",
                dir, strerror(errno), WATCHER_POLL_NO_INOTIFY_MS);
        w->stats.is_polling = 1;
    }
    free(path_copy);
    loop_timer_arm(loop, &w->poll_timer,
                   w->stats.is_polling ? WATCHER_POLL_NO_INOTIFY_MS : WATCHER_POLL_MS);
    return w;
fail:
    free(path_copy);
    watcher_free(w);
    return NULL;
}

void watcher_free(struct watcher *w)
{
    if (w == NULL)
        return;
    loop_timer_cancel(w->loop, &w->poll_timer);
    struct loop_io *ios[] = {&w->inotify_io, &w->retry_io};
    for (size_t i = 0; i < 2; i++) {
        if (ios[i]->fd < 0)
            continue;
        if (ios[i]->events)
            loop_io_remove(w->loop, ios[i]);
        close(ios[i]->fd);
    }
    free(w->db_name);
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
