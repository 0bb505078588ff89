/* store: SQLite access for the log.
 *
 * Statements are prepared once per connection and reset after each use, so
 * a read costs one sqlite3_step per row. Reads of a channel set use one
 * statement with LIMITS_CHANNELS_PER_STREAM placeholders: unused slots are
 * bound to NULL, which never matches, so one plan (the (channel, id) index)
 * serves every subscription. */
#include "store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libgen.h>
#include <sys/stat.h>
#include <unistd.h>

#include "input_limits.h"

static const char SCHEMA_SQL[] =
#include "schema_sql.h"
    ;

/* A reader waits at most this long for a lock; in WAL mode readers are
 * practically never blocked, and a writer (WebSocket publish) waits for a
 * competing writer's commit. */
#define STORE_BUSY_TIMEOUT_MS 2000

struct store {
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

#define ROW_COLUMNS "id, channel, event, data, typeof(data) = 'blob'"

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

struct store *store_open(const char *path, char *err, size_t err_cap)
{
    struct store *st = calloc(1, sizeof *st);
    if (st == NULL) {
        snprintf(err, err_cap, "out of memory");
        return NULL;
    }
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
    store_close(st);
    return NULL;
}

void store_close(struct store *st)
{
    if (st == NULL)
        return;
    sqlite3_finalize(st->data_version);
    sqlite3_finalize(st->last_id);
    sqlite3_finalize(st->read_all);
    sqlite3_finalize(st->read_channels);
    sqlite3_finalize(st->insert);
    sqlite3_close(st->db);
    free(st->path);
    free(st);
}

bool store_is_deleted(const struct store *st)
{
    struct stat sb;
    return stat(st->path, &sb) != 0 && errno == ENOENT;
}

bool store_is_readonly(const struct store *st)
{
    return sqlite3_db_readonly(st->db, "main") == 1;
}

bool store_is_replaced(const struct store *st)
{
    struct stat sb;
    return stat(st->path, &sb) == 0 && (sb.st_dev != st->file_dev || sb.st_ino != st->file_ino);
}

bool store_reopen(struct store *st, char *err, size_t err_cap)
{
    struct store *fresh = store_open(st->path, err, err_cap);
    if (fresh == NULL)
        return false;
    /* Swap contents so that every holder of st sees the new file. */
    struct store old = *st;
    *st = *fresh;
    *fresh = old;
    store_close(fresh);
    return true;
}

const char *store_path(const struct store *st)
{
    return st->path;
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

enum store_err store_data_version(struct store *st, int64_t *version)
{
    return one_integer(st->data_version, version);
}

enum store_err store_last_id(struct store *st, int64_t *id)
{
    return one_integer(st->last_id, id);
}

enum store_err store_read(struct store *st, int64_t after, int64_t upto,
                          const char *const *channels, const size_t *channel_lens,
                          size_t channel_count, int limit, store_row_fn *fn, void *ctx, int *count)
{
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

enum store_err store_bounds(struct store *st, const char *const *channels,
                            const size_t *channel_lens, size_t channel_count,
                            struct store_bounds *out)
{
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

enum store_err store_insert(struct store *st, const char *channel, size_t channel_len,
                            const char *event, size_t event_len, const void *data, size_t data_len,
                            bool is_blob, int64_t *id)
{
    sqlite3_stmt *stmt = st->insert;
    st->why = NULL;
    /* An unlinked database still takes writes through our open file, and
     * they would vanish with it: refuse instead (README: "Faults"). */
    if (store_is_deleted(st)) {
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
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (rc != SQLITE_DONE)
        return step_error(rc);
    *id = sqlite3_last_insert_rowid(st->db);
    return STORE_OK;
}

const char *store_errmsg(const struct store *st)
{
    return st->why != NULL ? st->why : sqlite3_errmsg(st->db);
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
    }
    return "unknown error";
}

/* ---- Retention (litepush-prune) ----
 * Each call prepares its own statements: the tool makes a few hundred calls
 * and a prepare costs microseconds. Every statement comes in a form for one
 * channel (?1, served by the (channel, id) index) and one for the whole log
 * (rowid order), rather than one `?1 IS NULL OR channel = ?1` form that no
 * index could serve. */

/* Prepares the form for channel (NULL: sql_all), binds ?1 to the channel
 * and ?2, ?3 to a2, a3 where the statement has them. NULL on failure. */
static sqlite3_stmt *prune_prepare(struct store *st, const char *channel, const char *sql_all,
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

enum store_err store_prune_bound_age(struct store *st, const char *channel, int64_t created_ms,
                                     int64_t *keep_from)
{
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

enum store_err store_prune_bound_rows(struct store *st, const char *channel, int64_t keep_rows,
                                      int64_t *keep_from)
{
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

enum store_err store_prune_count(struct store *st, const char *channel, int64_t keep_from,
                                 int64_t *rows, int64_t *min_id, int64_t *max_id)
{
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

enum store_err store_prune_batch(struct store *st, const char *channel, int64_t keep_from,
                                 int batch_rows, int64_t *deleted, int64_t *max_deleted_id)
{
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
