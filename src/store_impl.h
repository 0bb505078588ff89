/* store_impl: what a store backend implements (see store.h for the meaning
 * of each operation). Only store.c and the backends include this header.
 * A backend's connection struct starts with a struct store, whose ops
 * point at the backend's table; store.c dispatches through it. */
#ifndef LITEPUSH_STORE_IMPL_H
#define LITEPUSH_STORE_IMPL_H

#include "store.h"

struct store_ops {
    void (*close)(struct store *st);
    const char *(*name)(const struct store *st);
    int (*watch_fd)(const struct store *st);
    unsigned (*poll_ms)(const struct store *st);
    enum store_change (*changes)(struct store *st, enum store_wake why, long *retry_us);
    enum store_err (*last_id)(struct store *st, int64_t *id);
    enum store_err (*read)(struct store *st, int64_t after, int64_t upto,
                           const char *const *channels, const size_t *channel_lens,
                           size_t channel_count, int limit, store_row_fn *fn, void *ctx,
                           int *count);
    enum store_err (*bounds)(struct store *st, const char *const *channels,
                             const size_t *channel_lens, size_t channel_count,
                             struct store_bounds *out);
    enum store_err (*insert)(struct store *st, const char *channel, size_t channel_len,
                             const char *event, size_t event_len, const void *data, size_t data_len,
                             bool is_blob, int64_t *id);
    const char *(*errmsg)(const struct store *st);
    enum store_err (*prune_bound_age)(struct store *st, const char *channel, int64_t created_ms,
                                      int64_t *keep_from);
    enum store_err (*prune_bound_rows)(struct store *st, const char *channel, int64_t keep_rows,
                                       int64_t *keep_from);
    enum store_err (*prune_count)(struct store *st, const char *channel, int64_t keep_from,
                                  int64_t *rows, int64_t *min_id, int64_t *max_id);
    enum store_err (*prune_batch)(struct store *st, const char *channel, int64_t keep_from,
                                  int batch_rows, int64_t *deleted, int64_t *max_deleted_id);
};

struct store {
    const struct store_ops *ops;
};

/* Each backend's constructor: NULL with a reason in err on failure. */
struct store *store_sqlite_open(const char *path, char *err, size_t err_cap);
struct store *store_pg_open(const char *uri, char *err, size_t err_cap);

#endif
