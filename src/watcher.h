/* watcher: notices commits to the log at once and publishes each new row to
 * the hub, exactly once per process (per loop), in id order.
 *
 * How is the store's business (store.h, change detection): the watcher
 * waits on the store's watch fd, runs the retry timer the store asks for
 * and a slow poll, and reads the rows above the last one it published
 * whenever the store says something was committed. The watcher belongs to
 * one loop thread and borrows the loop, store and hub, which must outlive
 * it. */
#ifndef LITEPUSH_WATCHER_H
#define LITEPUSH_WATCHER_H

#include <stddef.h>
#include <stdint.h>

struct loop;
struct store;
struct hub;
struct watcher;

struct watcher_stats {
    int64_t last_id;         /* highest id published to the hub */
    uint64_t rows_published; /* rows read from the log since start */
    uint64_t deliveries;     /* rows x subscribers */
    uint64_t last_lag_ms;    /* from wake-up to rows published, last batch */
    uint64_t reads;          /* log reads (queries) made by the watcher */
    int is_polling;          /* 1 when the store has no fd to wait on */
};

/* Called after the log was replaced (a restore by rename, or a rewind in
 * place) and the store follows the new one: the owner should end its
 * streams so that clients resume against the new log (and get
 * litepush.reset). */
typedef void watcher_replaced_fn(void *ctx);

/* Starts watching; publishes only rows committed after this call.
 * Returns NULL with a reason in err[err_cap] on failure. */
struct watcher *watcher_new(struct loop *loop, struct store *store, struct hub *hub,
                            watcher_replaced_fn *on_replaced, void *ctx, char *err, size_t err_cap);
void watcher_free(struct watcher *w);

/* Reads and publishes whatever was committed since the last check. Call it
 * after this process wrote to the log itself (SQLite's data_version does not
 * change for a connection's own commits). */
void watcher_catch_up(struct watcher *w);

/* The highest id published so far: rows above it will reach the hub. */
int64_t watcher_last_id(const struct watcher *w);
void watcher_get_stats(const struct watcher *w, struct watcher_stats *out);

#endif
