/* store_sqlite: the log in a SQLite file, and the only file besides json.c
 * that includes sqlite3.h.
 *
 * Statements are prepared once per connection and reset after each use, so
 * a read costs one sqlite3_step per row. Reads of a channel set use one
 * statement with LIMITS_CHANNELS_PER_STREAM placeholders: unused slots are
 * bound to NULL, which never matches, so one plan (the (channel, id) index)
 * serves every subscription. */
#include <errno.h>
#include <libgen.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "input_limits.h"
#include "store_impl.h"

static const char SCHEMA_SQL[] =
#include "schema_sql.h"
    ;

/* A reader waits at most this long for a lock; in WAL mode readers are
 * practically never blocked, and a writer (WebSocket publish) waits for a
 * competing writer's commit. */
#define STORE_BUSY_TIMEOUT_MS 2000

/* With inotify working, the poll is only a safety net. */
#define SQ_POLL_MS 500
#define SQ_POLL_NO_INOTIFY_MS 20
/* Retries after a wake-up that found no visible commit yet, in µs from the
 * previous check. The WAL write that woke us precedes the commit becoming
 * visible (the wal-index update) by the writer's fsync, typically 0.1-2 ms,
 * so the checks are dense at first; a check is one PRAGMA (about 1 µs). */
static const long RETRY_DELAYS_US[] = {25,  50,   50,   100,  100,  100,  100,   100,  100,
                                       100, 100,  200,  200,  200,  200,  200,   500,  500,
                                       500, 1000, 1000, 2000, 2000, 5000, 10000, 20000};
#define RETRY_COUNT (sizeof RETRY_DELAYS_US / sizeof RETRY_DELAYS_US[0])

/* What the watcher's change detection keeps; survives a reopen. */
struct sq_watch {
    int inotify_fd; /* -1: poll only */
    char *db_name;  /* basename of the database file */
    size_t db_name_len;
    size_t retry_index;
    int64_t data_version;
    bool is_deleted; /* the database file was deleted, and we said so */
};

struct sq {
    struct store base;
    struct sq_watch *watch;
    sqlite3 *db;
    sqlite3_stmt *data_version;
    sqlite3_stmt *last_id;
    sqlite3_stmt *read_all;
    sqlite3_stmt *read_channels;
    sqlite3_stmt *insert;
    char *path;
    dev_t file_dev; /* the file opened, to notice a restore by rename */
    ino_t file_ino;
    const char *why; /* our own reason for the last failed call, or NULL */
};

static const struct store_ops SQ_OPS;

#define ROW_COLUMNS "id, channel, event, data, typeof(data) = 'blob'"

static void sq_close(struct store *base);

/* Why a database may fail to open although it is there: it, or its
 * directory, cannot be written (a WAL database needs to create -wal and
 * -shm files next to it). Returns "" or a note that starts with a space. */
static const char *readonly_note(const char *path)
{
    char *copy = strdup(path);
    const char *note = "";
    if (copy != NULL && access(dirname(copy), W_OK) != 0 && (errno == EROFS || errno == EACCES))
        note = " (its directory is read-only: a WAL database needs to create its -wal and -shm "
               "files there)";
    else if (access(path, W_OK) != 0 && (errno == EROFS || errno == EACCES))
        note = " (the file is read-only)";
    free(copy);
    return note;
}

/* True when nothing is at the path any more: the database file was
 * deleted. Our connection still reads and writes the unlinked file, so
 * sq_insert refuses rather than store rows that vanish with it. */
static bool is_deleted(const struct sq *st)
{
    struct stat sb;
    return stat(st->path, &sb) != 0 && errno == ENOENT;
}

static struct sq *sq_open(const char *path, char *err, size_t err_cap)
{
    struct sq *st = calloc(1, sizeof *st);
    if (st == NULL) {
        snprintf(err, err_cap, "out of memory");
        return NULL;
    }
    st->base.ops = &SQ_OPS;
    st->path = strdup(path);
    int rc = sqlite3_open_v2(
        path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK || st->path == NULL) {
        snprintf(err, err_cap, "cannot open database %s: %s%s", path,
                 st->db ? sqlite3_errmsg(st->db) : "out of memory", readonly_note(path));
        goto fail;
    }
    sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
    struct stat sb;
    if (stat(path, &sb) == 0) {
        st->file_dev = sb.st_dev;
        st->file_ino = sb.st_ino;
    }
    char *msg = NULL;
    if (sqlite3_exec(st->db, SCHEMA_SQL, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, err_cap, "cannot use database %s: %s%s", path, msg ? msg : "unknown error",
                 readonly_note(path));
        sqlite3_free(msg);
        goto fail;
    }
    /* A log we cannot write (a read-only file or file system, opened
     * read-only by SQLite when its -wal and -shm files are there) is refused
     * at start, whatever files lie beside it: one defined behaviour
     * (README: "Faults"), not publishes that fail one by one. */
    if (sqlite3_db_readonly(st->db, "main") == 1) {
        const char *note = readonly_note(path);
        snprintf(err, err_cap, "cannot use database %s: it is read-only%s", path,
                 note[0] ? note : " (the file or its file system)");
        goto fail;
    }
    /* Publishers commit in WAL mode; NORMAL is durable across application
     * crashes, which is what a message log needs. */
    sqlite3_exec(st->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);

    char channels_sql[512];
    int n = snprintf(channels_sql, sizeof channels_sql,
                     "SELECT " ROW_COLUMNS " FROM messages WHERE id > ?1 AND id <= ?2"
                     " AND channel IN (");
    for (int i = 0; i < LIMITS_CHANNELS_PER_STREAM; i++)
        n += snprintf(channels_sql + n, sizeof channels_sql - (size_t)n, "%s?%d", i ? "," : "",
                      i + 4);
    snprintf(channels_sql + n, sizeof channels_sql - (size_t)n, ") ORDER BY id LIMIT ?3");

    struct {
        sqlite3_stmt **stmt;
        const char *sql;
    } prep[] = {
        {&st->data_version, "PRAGMA data_version"},
        {&st->last_id, "SELECT coalesce(max(id), 0) FROM messages"},
        {&st->read_all, "SELECT " ROW_COLUMNS " FROM messages WHERE id > ?1 AND id <= ?2"
                        " ORDER BY id LIMIT ?3"},
        {&st->read_channels, channels_sql},
        {&st->insert, "INSERT INTO messages(channel, event, data) VALUES (?1, ?2, ?3)"},
    };
    for (size_t i = 0; i < sizeof prep / sizeof prep[0]; i++) {
        if (sqlite3_prepare_v3(st->db, prep[i].sql, -1, SQLITE_PREPARE_PERSISTENT, prep[i].stmt,
                               NULL) != SQLITE_OK) {
            snprintf(err, err_cap, "cannot use database %s: %s", path, sqlite3_errmsg(st->db));
            goto fail;
        }
    }
    return st;
fail:
    sq_close(&st->base);
    return NULL;
}

static void watch_free(struct sq_watch *w)
{
    if (w == NULL)
        return;
    if (w->inotify_fd >= 0)
        close(w->inotify_fd);
    free(w->db_name);
    free(w);
}

/* Sets up inotify on the database's directory; without it the store is
 * polled (store_watch_fd -1). */
static struct sq_watch *watch_new(struct sq *st, char *err, size_t err_cap)
{
    struct sq_watch *w = calloc(1, sizeof *w);
    char *name_copy = strdup(st->path), *dir_copy = strdup(st->path);
    if (w == NULL || name_copy == NULL || dir_copy == NULL ||
        (w->db_name = strdup(basename(name_copy))) == NULL) {
        snprintf(err, err_cap, "out of memory");
        free(name_copy);
        free(dir_copy);
        watch_free(w);
        return NULL;
    }
    w->db_name_len = strlen(w->db_name);
    const char *dir = dirname(dir_copy);
    w->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->inotify_fd < 0 ||
        inotify_add_watch(w->inotify_fd, dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO) < 0) {
        fprintf(stderr, "litepush: watcher: inotify on %s unavailable (%s); polling every %d ms\n",
                dir, strerror(errno), SQ_POLL_NO_INOTIFY_MS);
        if (w->inotify_fd >= 0)
            close(w->inotify_fd);
        w->inotify_fd = -1;
    }
    free(name_copy);
    free(dir_copy);
    return w;
}

struct store *store_sqlite_open(const char *path, char *err, size_t err_cap)
{
    struct sq *st = sq_open(path, err, err_cap);
    return st ? &st->base : NULL;
}

static void sq_close(struct store *base)
{
    struct sq *st = (struct sq *)base;
    if (st == NULL)
        return;
    watch_free(st->watch);
    sqlite3_finalize(st->data_version);
    sqlite3_finalize(st->last_id);
    sqlite3_finalize(st->read_all);
    sqlite3_finalize(st->read_channels);
    sqlite3_finalize(st->insert);
    sqlite3_close(st->db);
    free(st->path);
    free(st);
}

/* True when the path now names another file than the one opened: the
 * database was restored or replaced by a rename. */
static bool is_replaced(const struct sq *st)
{
    struct stat sb;
    return stat(st->path, &sb) == 0 && (sb.st_dev != st->file_dev || sb.st_ino != st->file_ino);
}

/* Reopens st on the file now at its path (schema included), in place, so
 * every holder of st reads the new file; the watch state stays. On failure
 * keeps the old connection and writes a reason into err. */
static bool reopen(struct sq *st, char *err, size_t err_cap)
{
    struct sq *fresh = sq_open(st->path, err, err_cap);
    if (fresh == NULL)
        return false;
    /* Swap contents so that every holder of st sees the new file. */
    struct sq old = *st;
    *st = *fresh;
    *fresh = old;
    st->watch = fresh->watch;
    fresh->watch = NULL;
    sq_close(&fresh->base);
    return true;
}

static const char *sq_name(const struct store *base)
{
    return ((const struct sq *)base)->path;
}

static enum store_err step_error(int rc)
{
    return rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? STORE_ERR_BUSY : STORE_ERR_QUERY;
}

/* Runs a statement that returns one integer. */
static enum store_err one_integer(sqlite3_stmt *stmt, int64_t *out)
{
    int rc = sqlite3_step(stmt);
    enum store_err err = STORE_OK;
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(stmt, 0);
    else
        err = step_error(rc);
    sqlite3_reset(stmt);
    return err;
}

static enum store_err sq_last_id(struct store *base, int64_t *id)
{
    return one_integer(((struct sq *)base)->last_id, id);
}

/* ---- change detection ------------------------------------------------------
 * inotify on the database's directory wakes the watcher when the WAL file
 * (or the database file) is written; PRAGMA data_version then says whether
 * another connection committed; dense retries cover the time between a WAL
 * write and the commit becoming visible; the slow poll covers file systems
 * without inotify. The watch state is made on the first call, so a store
 * that is never watched (prune, the schema check) opens no inotify fd. */

static struct sq_watch *watch_of(struct sq *st)
{
    if (st->watch == NULL) {
        char err[128];
        st->watch = watch_new(st, err, sizeof err);
        if (st->watch != NULL)
            one_integer(st->data_version, &st->watch->data_version);
    }
    return st->watch;
}

static int sq_watch_fd(const struct store *base)
{
    struct sq_watch *w = watch_of((struct sq *)base);
    return w ? w->inotify_fd : -1;
}

static unsigned sq_poll_ms(const struct store *base)
{
    return sq_watch_fd(base) >= 0 ? SQ_POLL_MS : SQ_POLL_NO_INOTIFY_MS;
}

/* Drains the inotify fd: *is_ours when our database or its WAL was
 * written, *is_renamed when a file was created or renamed onto our path. */
static void drain_inotify(struct sq_watch *w, bool *is_ours, bool *is_renamed)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    /* Drain everything: one check covers any number of writes. */
    while ((n = read(w->inotify_fd, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            /* Wake for "push.db" and "push.db-wal", not for other files. */
            if (ev->len && strncmp(ev->name, w->db_name, w->db_name_len) == 0) {
                *is_ours = true;
                *is_renamed |= (ev->mask & (IN_CREATE | IN_MOVED_TO)) && !ev->name[w->db_name_len];
            }
            p += sizeof *ev + ev->len;
        }
    }
}

static enum store_change sq_changes(struct store *base, enum store_wake why, long *retry_us)
{
    struct sq *st = (struct sq *)base;
    struct sq_watch *w = watch_of(st);
    if (w == NULL)
        return STORE_CHANGE_NONE;
    bool is_ours = why == STORE_WAKE_POLL, is_renamed = why == STORE_WAKE_POLL;
    if (why == STORE_WAKE_FD && w->inotify_fd >= 0)
        drain_inotify(w, &is_ours, &is_renamed);
    if (!is_ours && why != STORE_WAKE_RETRY)
        return STORE_CHANGE_NONE;
    if (why == STORE_WAKE_POLL && is_deleted(st)) {
        if (!w->is_deleted)
            fprintf(stderr,
                    "litepush: the database file %s was deleted: streams stay open, publishes "
                    "are refused, and a new database at that path is followed as soon as it "
                    "appears\n",
                    st->path);
        w->is_deleted = true;
        return STORE_CHANGE_NONE;
    }
    if (why == STORE_WAKE_POLL)
        w->is_deleted = false;
    if (is_renamed && is_replaced(st)) {
        char err[256];
        if (!reopen(st, err, sizeof err)) {
            fprintf(stderr, "litepush: watcher: the database file was replaced: %s\n", err);
        } else {
            one_integer(st->data_version, &w->data_version);
            return STORE_CHANGE_REPLACED;
        }
    }
    int64_t version;
    if (one_integer(st->data_version, &version) != STORE_OK)
        return STORE_CHANGE_NONE;
    if (version != w->data_version) {
        w->data_version = version;
        return STORE_CHANGE_COMMIT;
    }
    /* A write woke us but its commit is not visible yet: look again soon. */
    if (why == STORE_WAKE_FD)
        w->retry_index = 0;
    else if (why == STORE_WAKE_RETRY && ++w->retry_index >= RETRY_COUNT)
        return STORE_CHANGE_NONE;
    if (why != STORE_WAKE_POLL)
        *retry_us = RETRY_DELAYS_US[w->retry_index];
    return STORE_CHANGE_NONE;
}

static enum store_err sq_read(struct store *base, int64_t after, int64_t upto,
                              const char *const *channels, const size_t *channel_lens,
                              size_t channel_count, int limit, store_row_fn *fn, void *ctx,
                              int *count)
{
    struct sq *st = (struct sq *)base;
    sqlite3_stmt *stmt = channel_count ? st->read_channels : st->read_all;
    sqlite3_bind_int64(stmt, 1, after);
    sqlite3_bind_int64(stmt, 2, upto);
    sqlite3_bind_int(stmt, 3, limit);
    if (channel_count) {
        for (size_t i = 0; i < LIMITS_CHANNELS_PER_STREAM; i++) {
            if (i < channel_count)
                sqlite3_bind_text(stmt, (int)i + 4, channels[i], (int)channel_lens[i],
                                  SQLITE_STATIC);
            else
                sqlite3_bind_null(stmt, (int)i + 4);
        }
    }
    int rc;
    *count = 0;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        struct store_row row = {
            .id = sqlite3_column_int64(stmt, 0),
            .channel = (const char *)sqlite3_column_text(stmt, 1),
            .channel_len = (size_t)sqlite3_column_bytes(stmt, 1),
            .event = (const char *)sqlite3_column_text(stmt, 2),
            .event_len = (size_t)sqlite3_column_bytes(stmt, 2),
            .is_blob = sqlite3_column_int(stmt, 4) != 0,
        };
        /* Fetch data in its own type: a BLOB must not be converted to text. */
        row.data =
            row.is_blob ? sqlite3_column_blob(stmt, 3) : (const void *)sqlite3_column_text(stmt, 3);
        row.data_len = (size_t)sqlite3_column_bytes(stmt, 3);
        if (row.data == NULL)
            row.data = "";
        if (row.channel == NULL)
            row.channel = "";
        (*count)++;
        fn(&row, ctx);
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return rc == SQLITE_DONE ? STORE_OK : step_error(rc);
}

/* Runs one-integer SQL that may legitimately find no row or no table. */
static int64_t optional_integer(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    int64_t v = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW)
        v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
}

static enum store_err sq_bounds(struct store *base, const char *const *channels,
                                const size_t *channel_lens, size_t channel_count,
                                struct store_bounds *out)
{
    struct sq *st = (struct sq *)base;
    /* One read transaction, so the figures agree with each other. */
    if (sqlite3_exec(st->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return STORE_ERR_QUERY;
    out->oldest_id = optional_integer(st->db, "SELECT coalesce(min(id), 0) FROM messages");
    out->issued_max =
        optional_integer(st->db, "SELECT seq FROM sqlite_sequence WHERE name = 'messages'");
    out->pruned_through =
        optional_integer(st->db, "SELECT value FROM litepush_meta WHERE key = 'pruned_through'");
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT value FROM litepush_meta WHERE key = 'pruned_through:' || ?1",
                           -1, &stmt, NULL) == SQLITE_OK) {
        for (size_t i = 0; i < channel_count; i++) {
            sqlite3_bind_text(stmt, 1, channels[i], (int)channel_lens[i], SQLITE_STATIC);
            if (sqlite3_step(stmt) == SQLITE_ROW &&
                sqlite3_column_int64(stmt, 0) > out->pruned_through)
                out->pruned_through = sqlite3_column_int64(stmt, 0);
            sqlite3_reset(stmt);
        }
    }
    sqlite3_finalize(stmt);
    sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
    return STORE_OK;
}

static enum store_err sq_insert(struct store *base, const char *channel, size_t channel_len,
                                const char *event, size_t event_len, const void *data,
                                size_t data_len, bool is_blob, int64_t *id)
{
    struct sq *st = (struct sq *)base;
    sqlite3_stmt *stmt = st->insert;
    st->why = NULL;
    if (is_deleted(st)) { /* README: "Faults" */
        st->why = "the database file was deleted; message not stored";
        return STORE_ERR_QUERY;
    }
    sqlite3_bind_text(stmt, 1, channel, (int)channel_len, SQLITE_STATIC);
    if (event != NULL)
        sqlite3_bind_text(stmt, 2, event, (int)event_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(stmt, 2);
    if (is_blob)
        sqlite3_bind_blob64(stmt, 3, data, data_len, SQLITE_STATIC);
    else
        sqlite3_bind_text64(stmt, 3, data, data_len, SQLITE_STATIC, SQLITE_UTF8);
    /* An INSERT runs on an event loop: it must not wait there for another
     * connection's write lock. BUSY comes back at once and the caller
     * retries off the loop (ws_conn.c). */
    sqlite3_busy_timeout(st->db, 0);
    int rc = sqlite3_step(stmt);
    sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (rc != SQLITE_DONE)
        return step_error(rc);
    *id = sqlite3_last_insert_rowid(st->db);
    return STORE_OK;
}

static const char *sq_errmsg(const struct store *base)
{
    const struct sq *st = (const struct sq *)base;
    return st->why != NULL ? st->why : sqlite3_errmsg(st->db);
}

/* ---- Retention (litepush-prune) ----
 * Each call prepares its own statements: the tool makes a few hundred calls
 * and a prepare costs microseconds. Every statement comes in a form for one
 * channel (?1, served by the (channel, id) index) and one for the whole log
 * (rowid order), rather than one `?1 IS NULL OR channel = ?1` form that no
 * index could serve. */

/* Prepares the form for channel (NULL: sql_all), binds ?1 to the channel
 * and ?2, ?3 to a2, a3 where the statement has them. NULL on failure. */
static sqlite3_stmt *prune_prepare(struct sq *st, const char *channel, const char *sql_all,
                                   const char *sql_channel, int64_t a2, int64_t a3)
{
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(st->db, channel ? sql_channel : sql_all, -1, &stmt, NULL) != SQLITE_OK)
        return NULL;
    int params = sqlite3_bind_parameter_count(stmt);
    if (channel != NULL)
        sqlite3_bind_text(stmt, 1, channel, -1, SQLITE_STATIC);
    if (params >= 2)
        sqlite3_bind_int64(stmt, 2, a2);
    if (params >= 3)
        sqlite3_bind_int64(stmt, 3, a3);
    return stmt;
}

/* Steps stmt once, copies its first n integer columns into out (left alone
 * when there is no row) and finalizes it. A NULL stmt is a failed prepare. */
static enum store_err prune_integers(sqlite3_stmt *stmt, int64_t *out, int n)
{
    if (stmt == NULL)
        return STORE_ERR_QUERY;
    int rc = sqlite3_step(stmt);
    for (int i = 0; rc == SQLITE_ROW && i < n; i++)
        out[i] = sqlite3_column_int64(stmt, i);
    sqlite3_finalize(stmt);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK : step_error(rc);
}

static enum store_err sq_prune_bound_age(struct store *base, const char *channel,
                                         int64_t created_ms, int64_t *keep_from)
{
    struct sq *st = (struct sq *)base;
    /* One statement is one read transaction: the two figures agree. */
    *keep_from = 0;
    return prune_integers(
        prune_prepare(st, channel,
                      "SELECT coalesce((SELECT id FROM messages WHERE created_at >= ?2"
                      " ORDER BY id LIMIT 1), (SELECT coalesce(max(id), 0) + 1 FROM messages))",
                      "SELECT coalesce((SELECT id FROM messages WHERE channel = ?1"
                      " AND created_at >= ?2 ORDER BY id LIMIT 1),"
                      " (SELECT coalesce(max(id), 0) + 1 FROM messages))",
                      created_ms, 0),
        keep_from, 1);
}

static enum store_err sq_prune_bound_rows(struct store *base, const char *channel,
                                          int64_t keep_rows, int64_t *keep_from)
{
    struct sq *st = (struct sq *)base;
    static const char ABOVE_ALL[] = "SELECT coalesce(max(id), 0) + 1 FROM messages";
    *keep_from = 0;
    if (keep_rows <= 0)
        return prune_integers(prune_prepare(st, NULL, ABOVE_ALL, NULL, 0, 0), keep_from, 1);
    return prune_integers(prune_prepare(st, channel,
                                        "SELECT id FROM messages ORDER BY id DESC"
                                        " LIMIT 1 OFFSET ?2",
                                        "SELECT id FROM messages WHERE channel = ?1"
                                        " ORDER BY id DESC LIMIT 1 OFFSET ?2",
                                        keep_rows - 1, 0),
                          keep_from, 1);
}

static enum store_err sq_prune_count(struct store *base, const char *channel, int64_t keep_from,
                                     int64_t *rows, int64_t *min_id, int64_t *max_id)
{
    struct sq *st = (struct sq *)base;
    int64_t v[3] = {0, 0, 0};
    enum store_err err =
        prune_integers(prune_prepare(st, channel,
                                     "SELECT count(*), coalesce(min(id), 0), coalesce(max(id), 0)"
                                     " FROM messages WHERE id < ?2",
                                     "SELECT count(*), coalesce(min(id), 0), coalesce(max(id), 0)"
                                     " FROM messages WHERE channel = ?1 AND id < ?2",
                                     keep_from, 0),
                       v, 3);
    *rows = v[0];
    *min_id = v[1];
    *max_id = v[2];
    return err;
}

static enum store_err sq_prune_batch(struct store *base, const char *channel, int64_t keep_from,
                                     int batch_rows, int64_t *deleted, int64_t *max_deleted_id)
{
    struct sq *st = (struct sq *)base;
    int64_t v[2] = {0, 0};
    *deleted = 0;
    *max_deleted_id = 0;
    /* IMMEDIATE takes the write lock first, so the rows counted are the rows
     * deleted, and a busy publisher makes us wait (busy timeout) right here,
     * with nothing done yet. */
    int rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return step_error(rc);
    enum store_err err = prune_integers(
        prune_prepare(st, channel,
                      "SELECT count(*), coalesce(max(id), 0) FROM (SELECT id FROM messages"
                      " WHERE id < ?2 ORDER BY id LIMIT ?3)",
                      "SELECT count(*), coalesce(max(id), 0) FROM (SELECT id FROM messages"
                      " WHERE channel = ?1 AND id < ?2 ORDER BY id LIMIT ?3)",
                      keep_from, batch_rows),
        v, 2);
    if (err != STORE_OK || v[0] == 0)
        goto out;
    /* The batch is a prefix of the (channel's) id order, so "id <= its
     * highest id" names exactly its rows. */
    err = prune_integers(prune_prepare(st, channel, "DELETE FROM messages WHERE id <= ?2",
                                       "DELETE FROM messages WHERE channel = ?1 AND id <= ?2", v[1],
                                       0),
                         NULL, 0);
    if (err != STORE_OK)
        goto out;
    int64_t changed = sqlite3_changes(st->db);
    /* Pruning one channel marks only that channel, so a resume in another
     * channel is not told of rows it never had. */
    err = prune_integers(prune_prepare(st, channel,
                                       "INSERT INTO litepush_meta(key, value)"
                                       " VALUES ('pruned_through', ?2) ON CONFLICT(key)"
                                       " DO UPDATE SET value = max(value, excluded.value)",
                                       "INSERT INTO litepush_meta(key, value)"
                                       " VALUES ('pruned_through:' || ?1, ?2) ON CONFLICT(key)"
                                       " DO UPDATE SET value = max(value, excluded.value)",
                                       v[1], 0),
                         NULL, 0);
    if (err != STORE_OK)
        goto out;
    rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        err = step_error(rc);
        goto out;
    }
    *deleted = changed;
    *max_deleted_id = v[1];
    return STORE_OK;
out:
    /* Nothing to delete ends the read-only transaction the same way. */
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return err;
}

static const struct store_ops SQ_OPS = {
    .close = sq_close,
    .name = sq_name,
    .watch_fd = sq_watch_fd,
    .poll_ms = sq_poll_ms,
    .changes = sq_changes,
    .last_id = sq_last_id,
    .read = sq_read,
    .bounds = sq_bounds,
    .insert = sq_insert,
    .errmsg = sq_errmsg,
    .prune_bound_age = sq_prune_bound_age,
    .prune_bound_rows = sq_prune_bound_rows,
    .prune_count = sq_prune_count,
    .prune_batch = sq_prune_batch,
};
