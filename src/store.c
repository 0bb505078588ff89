/* store: picks the backend by the --db value and dispatches every call to
 * it (store_impl.h). Nothing here knows SQL. */
#include "store_impl.h"

#include <stdio.h>
#include <string.h>

bool store_is_postgresql(const char *db)
{
    return strncmp(db, "postgresql://", 13) == 0 || strncmp(db, "postgres://", 11) == 0;
}

const char *store_log_name(const char *db, char *buf, size_t cap)
{
    if (!store_is_postgresql(db))
        return db;
    /* scheme://user:password@host...: hide what lies between the first ':'
     * after the scheme and the '@' of the user info. */
    const char *user = strstr(db, "://") + 3;
    const char *at = strchr(user, '@');
    const char *colon = strchr(user, ':');
    if (at == NULL || colon == NULL || colon > at)
        return db;
    int n = snprintf(buf, cap, "%.*s:***%s", (int)(colon - db), db, at);
    return n > 0 && (size_t)n < cap ? buf : "postgresql://(URI too long to log)";
}

struct store *store_open(const char *db, char *err, size_t err_cap)
{
    return store_is_postgresql(db) ? store_pg_open(db, err, err_cap)
                                   : store_sqlite_open(db, err, err_cap);
}

void store_close(struct store *st)
{
    if (st != NULL)
        st->ops->close(st);
}

const char *store_name(const struct store *st)
{
    return st->ops->name(st);
}

int store_watch_fd(const struct store *st)
{
    return st->ops->watch_fd(st);
}

unsigned store_poll_ms(const struct store *st)
{
    return st->ops->poll_ms(st);
}

enum store_change store_changes(struct store *st, enum store_wake why, long *retry_us)
{
    *retry_us = 0;
    return st->ops->changes(st, why, retry_us);
}

enum store_err store_last_id(struct store *st, int64_t *id)
{
    return st->ops->last_id(st, id);
}

enum store_err store_read(struct store *st, int64_t after, int64_t upto,
                          const char *const *channels, const size_t *channel_lens,
                          size_t channel_count, int limit, store_row_fn *fn, void *ctx, int *count)
{
    return st->ops->read(st, after, upto, channels, channel_lens, channel_count, limit, fn, ctx,
                         count);
}

enum store_err store_bounds(struct store *st, const char *const *channels,
                            const size_t *channel_lens, size_t channel_count,
                            struct store_bounds *out)
{
    return st->ops->bounds(st, channels, channel_lens, channel_count, out);
}

enum store_err store_insert(struct store *st, const char *channel, size_t channel_len,
                            const char *event, size_t event_len, const void *data, size_t data_len,
                            bool is_blob, int64_t *id)
{
    return st->ops->insert(st, channel, channel_len, event, event_len, data, data_len, is_blob, id);
}

const char *store_errmsg(const struct store *st)
{
    return st->ops->errmsg(st);
}

const char *store_strerror(enum store_err err)
{
    switch (err) {
    case STORE_OK:
        return "ok";
    case STORE_ERR_OPEN:
        return "cannot open database";
    case STORE_ERR_SCHEMA:
        return "cannot create schema";
    case STORE_ERR_QUERY:
        return "database query failed";
    case STORE_ERR_BUSY:
        return "database is locked";
    case STORE_ERR_INPUT:
        return "invalid message";
    case STORE_ERR_DOWN:
        return "database unreachable";
    }
    return "unknown error";
}

enum store_err store_prune_bound_age(struct store *st, const char *channel, int64_t created_ms,
                                     int64_t *keep_from)
{
    return st->ops->prune_bound_age(st, channel, created_ms, keep_from);
}

enum store_err store_prune_bound_rows(struct store *st, const char *channel, int64_t keep_rows,
                                      int64_t *keep_from)
{
    return st->ops->prune_bound_rows(st, channel, keep_rows, keep_from);
}

enum store_err store_prune_count(struct store *st, const char *channel, int64_t keep_from,
                                 int64_t *rows, int64_t *min_id, int64_t *max_id)
{
    return st->ops->prune_count(st, channel, keep_from, rows, min_id, max_id);
}

enum store_err store_prune_batch(struct store *st, const char *channel, int64_t keep_from,
                                 int batch_rows, int64_t *deleted, int64_t *max_deleted_id)
{
    return st->ops->prune_batch(st, channel, keep_from, batch_rows, deleted, max_deleted_id);
}
