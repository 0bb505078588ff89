/* store: the message log, the one interface every program uses to read,
 * append to, watch and prune it. Two backends sit behind it (store_impl.h):
 * SQLite (store_sqlite.c, a file path) and PostgreSQL (store_pg.c, a
 * postgresql:// or postgres:// URI); store_open picks one by the --db value.
 * One struct store is one connection (PostgreSQL: two, one of them for
 * LISTEN); it belongs to one thread (the event loop of each program) and is
 * freed with store_close. Rows handed to callbacks point into the backend's
 * memory and are valid only during the callback. */
#ifndef LITEPUSH_STORE_H
#define LITEPUSH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

enum store_err {
    STORE_OK = 0,
    STORE_ERR_OPEN,   /* the file cannot be opened or created */
    STORE_ERR_SCHEMA, /* not a database, or the schema cannot be created */
    STORE_ERR_QUERY,  /* a statement failed (I/O error, corruption) */
    STORE_ERR_BUSY,   /* the database stayed locked past the busy timeout */
    STORE_ERR_INPUT,  /* a publish that is not a valid message (see the reason) */
    STORE_ERR_DOWN    /* the database server is unreachable for now; retried with back-off */
};

struct store_row {
    int64_t id;
    const char *channel;
    size_t channel_len;
    const char *event; /* NULL when the column is NULL */
    size_t event_len;
    const void *data;
    size_t data_len;
    bool is_blob; /* data is a BLOB value: binary, sent base64-encoded */
};

/* Called once per row, in id order. */
typedef void store_row_fn(const struct store_row *row, void *ctx);

/* True when db names a PostgreSQL database (postgresql:// or postgres://)
 * rather than a SQLite file. */
bool store_is_postgresql(const char *db);

/* db as it may be logged: a PostgreSQL URI with its password replaced by
 * "***" (written into buf[cap]), a SQLite path as it is. */
const char *store_log_name(const char *db, char *buf, size_t cap);

/* Opens the log named by db: a SQLite file (created if needed, switched to
 * WAL) or a PostgreSQL URI. Creates the schema when it is absent. On failure
 * returns NULL and writes a one-line reason into err[err_cap]. */
struct store *store_open(const char *db, char *err, size_t err_cap);
/* Closes the connection; NULL is a no-op. */
void store_close(struct store *st);
/* The database as given to store_open (a PostgreSQL password is not hidden:
 * do not log it). */
const char *store_name(const struct store *st);

/* ---- Change detection, for the watcher (one per store) ----
 * The backend decides how commits are noticed: SQLite by inotify on the
 * database's directory plus PRAGMA data_version, PostgreSQL by LISTEN.
 * The watcher waits for store_watch_fd to become readable, runs a timer for
 * the retries the backend asks for and a slow poll, and each time asks
 * store_changes what happened. */

/* An fd to wait on for readability (stable for the life of st), or -1 when
 * the backend can only be polled. */
int store_watch_fd(const struct store *st);
/* The slow poll interval, in ms: the safety net for lost wake-ups. */
unsigned store_poll_ms(const struct store *st);

enum store_wake {
    STORE_WAKE_FD,    /* store_watch_fd became readable */
    STORE_WAKE_RETRY, /* the retry the last call asked for is due */
    STORE_WAKE_POLL   /* the slow poll */
};
enum store_change {
    STORE_CHANGE_NONE,    /* nothing committed that we know of */
    STORE_CHANGE_COMMIT,  /* something was committed: read the new rows */
    STORE_CHANGE_REPLACED /* another log is now there (a SQLite file restored by
                             rename); st was reopened on it */
};
/* Says what changed since the last call. *retry_us > 0 asks to be called
 * again (STORE_WAKE_RETRY) after that many µs: SQLite's commit may become
 * visible a little after the write that woke us, and a PostgreSQL
 * connection that dropped is re-established with back-off. */
enum store_change store_changes(struct store *st, enum store_wake why, long *retry_us);

/* The highest id now in the log (0 when empty). */
enum store_err store_last_id(struct store *st, int64_t *id);

/* Reads up to `limit` rows with after < id <= upto, in id order, from the
 * given channels (channel_count 0 means every channel), calling fn for each.
 * Sets *count to the number of rows read. */
enum store_err store_read(struct store *st, int64_t after, int64_t upto,
                          const char *const *channels, const size_t *channel_lens,
                          size_t channel_count, int limit, store_row_fn *fn, void *ctx, int *count);

/* What a resume needs to detect a gap: the oldest id still in the log (0
 * when empty), the highest id ever issued (AUTOINCREMENT's sequence) and the
 * highest id retention pruned (0 if never) from the whole log or from any
 * of channels[0..channel_count) (litepush_meta keys 'pruned_through' and
 * 'pruned_through:<channel>'). */
struct store_bounds {
    int64_t oldest_id;
    int64_t issued_max;
    int64_t pruned_through;
};
enum store_err store_bounds(struct store *st, const char *const *channels,
                            const size_t *channel_lens, size_t channel_count,
                            struct store_bounds *out);

/* Inserts one row and returns its id in *id. event may be NULL. */
enum store_err store_insert(struct store *st, const char *channel, size_t channel_len,
                            const char *event, size_t event_len, const void *data, size_t data_len,
                            bool is_blob, int64_t *id);

/* The backend's error message of the last failed call, for the log. */
const char *store_errmsg(const struct store *st);
const char *store_strerror(enum store_err err);

/* Retention (litepush-prune). Rows are deleted only as a prefix of the id
 * order, of one channel or of the whole log: everything below a bound id
 * `keep_from`. The kept log is therefore a contiguous tail, and a resume
 * into the deleted part is detected (feed's litepush.reset). `channel` is a
 * NUL-terminated name, or NULL for every channel. These functions are for a
 * short-lived tool's single thread; the bounds are read without taking the
 * write lock (WAL readers never block publishers; PostgreSQL's readers
 * never block writers). */

/* Sets *keep_from to the id of the oldest row, in id order, whose
 * created_at is at or after created_ms (ms since 1970), or to one above the
 * highest id when no row is that new. Deleting below it removes the rows
 * older than created_ms up to the first newer one. */
enum store_err store_prune_bound_age(struct store *st, const char *channel, int64_t created_ms,
                                     int64_t *keep_from);
/* Sets *keep_from to the id of the keep_rows-th newest row (so that the
 * newest keep_rows rows are kept), to one above the highest id when
 * keep_rows is 0, or to 0 when there are no more than keep_rows rows. */
enum store_err store_prune_bound_rows(struct store *st, const char *channel, int64_t keep_rows,
                                      int64_t *keep_from);
/* Counts the rows below keep_from: *rows, and their lowest and highest ids
 * (0 when there are none). Reads only; for --dry-run. */
enum store_err store_prune_count(struct store *st, const char *channel, int64_t keep_from,
                                 int64_t *rows, int64_t *min_id, int64_t *max_id);
/* Deletes the oldest batch_rows (at most) of the rows below keep_from in one
 * BEGIN IMMEDIATE transaction, which also raises litepush_meta
 * 'pruned_through' to the highest id it deleted (never lowers it). Sets
 * *deleted (0 when nothing is left) and *max_deleted_id. On PostgreSQL the
 * transaction locks the batch's rows instead of the whole log. Returns
 * STORE_ERR_BUSY, having changed nothing, when a publisher held the write
 * lock past the busy timeout; the caller may wait and call again. */
enum store_err store_prune_batch(struct store *st, const char *channel, int64_t keep_from,
                                 int batch_rows, int64_t *deleted, int64_t *max_deleted_id);

#endif
