/* store_pg: the log in PostgreSQL, and the only file that includes
 * libpq-fe.h.
 *
 * Two connections per store (so per event loop, never per stream): `q`
 * runs every query with libpq's blocking calls, and `l` only LISTENs. The
 * watcher waits on an epoll fd of our own that holds l's socket, so the fd
 * it waits on stays the same when l is replaced after a reconnect; a
 * wake-up reads the notifications without blocking (PQconsumeInput,
 * PQnotifies). The schema's statement trigger NOTIFYs 'litepush' at each
 * commit that inserted rows; a slow poll reads anyway, for a lost
 * notification.
 *
 * Commit order: the schema's row trigger draws each id under a
 * transaction-level advisory lock, so ids become visible in increasing
 * order (see sql/schema-postgresql.sql for why and its cost); readers can
 * then follow `id > cursor` exactly as on SQLite.
 *
 * Faults: when a connection drops, calls return STORE_ERR_DOWN and the
 * connection is re-made on later calls, with back-off (100 ms doubling to
 * 2 s). Nothing is lost meanwhile: the watcher's cursor is an id, and it
 * reads everything above it once the log is back. A reconnect does not
 * block the loop (PQconnectStartParams, advanced by PQconnectPoll when its
 * socket is ready); only the connects at start-up block. A host name is
 * still resolved by a blocking getaddrinfo inside libpq: give an address
 * (or hostaddr=) where DNS may hang.
 *
 * Stalls: every query is one round trip on the loop thread. An INSERT
 * (WebSocket publish) waits for the id lock while another publisher's
 * transaction is open; lock_timeout bounds that wait, after which the
 * publish is refused as busy.
 *
 * Rows are fetched in binary format: ids as 8-byte big-endian integers,
 * text and bytea as their bytes. Parameters are sent in binary too, so
 * channel slices need no NUL and bytea no escaping. */
#include <endian.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "input_limits.h"
#include "store_impl.h"

static const char SCHEMA_SQL[] =
#include "schema_pg_sql.h"
    ;

/* Type OIDs of the parameters we send (pg_type.h, stable since 7.x). */
#define PG_OID_BYTEA 17
#define PG_OID_INT8 20
#define PG_OID_TEXT 25
/* The safety-net poll: a read of the rows above the cursor. */
#define PG_POLL_MS 1000
#define PG_BACKOFF_FIRST_MS 100
#define PG_BACKOFF_MAX_MS 2000
/* Taken by the programs while they create the schema ('lits'). */
#define PG_SCHEMA_LOCK_KEY "1818850419"
/* Connection defaults; the URI may override every one of them. lock_timeout
 * bounds how long a publish waits for the id lock on the loop thread;
 * keepalives and tcp_user_timeout notice a server that vanished without a
 * word (a network partition) within seconds instead of TCP's minutes. */
static const char *const CONN_KEYS[] = {
    "connect_timeout",  "keepalives_idle",  "keepalives_interval",
    "keepalives_count", "tcp_user_timeout", "application_name",
    "options",          "dbname",           NULL};
static const char *const CONN_VALUES_DEFAULT[] = {
    "5",  "10", "5", "3", "5000", "litepush", "-c lock_timeout=500 -c statement_timeout=30000",
    NULL, NULL};
#define CONN_DBNAME 7

enum { STMT_LAST_ID, STMT_READ_ALL, STMT_READ_CHANNELS, STMT_BOUNDS, STMT_INSERT, STMT_COUNT };

struct pgc {
    PGconn *conn;                   /* NULL while down */
    bool is_connecting;             /* conn is a non-blocking connect in progress */
    PostgresPollingStatusType poll; /* its last PQconnectPoll answer */
    uint64_t retry_at_ms;
    unsigned backoff_ms;
    int fd;       /* l: the socket registered in the epoll fd */
    bool is_down; /* logged as down, not yet back */
};

struct pg {
    struct store base;
    char *uri;
    struct pgc q, l;
    int epfd; /* the watch fd: holds l's socket; -1 until watched */
    char errbuf[512];
};

static const struct store_ops PG_OPS;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void set_err(struct pg *st, const char *what, const PGconn *conn)
{
    const char *msg = conn ? PQerrorMessage(conn) : "";
    snprintf(st->errbuf, sizeof st->errbuf, "%s%s%s", what, *msg ? ": " : "", msg);
    size_t n = strlen(st->errbuf);
    while (n > 0 && (st->errbuf[n - 1] == '\n' || st->errbuf[n - 1] == ' '))
        st->errbuf[--n] = '\0';
}

/* A blocking connect (start-up), or the start of a non-blocking one that
 * connect_step completes (reconnects, on the loop thread). */
static PGconn *connect_uri(const char *uri, bool is_blocking)
{
    const char *values[sizeof CONN_KEYS / sizeof CONN_KEYS[0]];
    memcpy(values, CONN_VALUES_DEFAULT, sizeof values);
    values[CONN_DBNAME] = uri;
    return is_blocking ? PQconnectdbParams(CONN_KEYS, values, 1)
                       : PQconnectStartParams(CONN_KEYS, values, 1);
}

/* Advances a non-blocking connect as far as its socket allows without
 * waiting: 1 connected, 0 still under way, -1 failed. */
static int connect_step(struct pgc *c)
{
    for (;;) {
        if (c->poll == PGRES_POLLING_OK)
            return 1;
        if (c->poll == PGRES_POLLING_FAILED || PQstatus(c->conn) == CONNECTION_BAD)
            return -1;
        struct pollfd p = {.fd = PQsocket(c->conn),
                           .events = c->poll == PGRES_POLLING_READING ? POLLIN : POLLOUT};
        if (p.fd < 0)
            return -1;
        if (poll(&p, 1, 0) <= 0)
            return 0;
        c->poll = PQconnectPoll(c->conn);
    }
}

/* ---- statements ---------------------------------------------------------- */

#define ROW_COLUMNS "id, channel, event, data, data_bin"

static bool prepare_all(struct pg *st, PGconn *conn)
{
    char channels_sql[640];
    int n = snprintf(channels_sql, sizeof channels_sql,
                     "SELECT " ROW_COLUMNS " FROM messages WHERE id > $1 AND id <= $2"
                     " AND channel IN (");
    for (int i = 0; i < LIMITS_CHANNELS_PER_STREAM; i++)
        n += snprintf(channels_sql + n, sizeof channels_sql - (size_t)n, "%s$%d", i ? "," : "",
                      i + 4);
    snprintf(channels_sql + n, sizeof channels_sql - (size_t)n, ") ORDER BY id LIMIT $3");
    char bounds_sql[1024];
    n = snprintf(bounds_sql, sizeof bounds_sql,
                 "SELECT coalesce((SELECT min(id) FROM messages), 0),"
                 " (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM messages_id_seq),"
                 " coalesce((SELECT max(value) FROM litepush_meta WHERE key IN ('pruned_through'");
    for (int i = 0; i < LIMITS_CHANNELS_PER_STREAM; i++)
        n += snprintf(bounds_sql + n, sizeof bounds_sql - (size_t)n, ", 'pruned_through:' || $%d",
                      i + 1);
    snprintf(bounds_sql + n, sizeof bounds_sql - (size_t)n, ")), 0)");

    Oid types[3 + LIMITS_CHANNELS_PER_STREAM] = {PG_OID_INT8, PG_OID_INT8, PG_OID_INT8};
    for (int i = 3; i < 3 + LIMITS_CHANNELS_PER_STREAM; i++)
        types[i] = PG_OID_TEXT;
    const Oid insert_types[] = {PG_OID_TEXT, PG_OID_TEXT, PG_OID_TEXT, PG_OID_BYTEA};
    struct {
        const char *sql;
        int params;
        const Oid *types;
    } prep[STMT_COUNT] = {
        [STMT_LAST_ID] = {"SELECT coalesce(max(id), 0) FROM messages", 0, NULL},
        [STMT_READ_ALL] = {"SELECT " ROW_COLUMNS " FROM messages WHERE id > $1 AND id <= $2"
                           " ORDER BY id LIMIT $3",
                           3, types},
        [STMT_READ_CHANNELS] = {channels_sql, 3 + LIMITS_CHANNELS_PER_STREAM, types},
        [STMT_BOUNDS] = {bounds_sql, LIMITS_CHANNELS_PER_STREAM, types + 3},
        [STMT_INSERT] = {"INSERT INTO messages(channel, event, data, data_bin)"
                         " VALUES ($1, $2, $3, $4) RETURNING id",
                         4, insert_types},
    };
    for (int i = 0; i < STMT_COUNT; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%d", i);
        PGresult *res = PQprepare(conn, name, prep[i].sql, prep[i].params, prep[i].types);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (!ok) {
            set_err(st, "cannot prepare the log's statements", conn);
            return false;
        }
    }
    return true;
}

/* Sets up a fresh l: LISTEN, then into the epoll fd. */
static bool listen_setup(struct pg *st, PGconn *conn)
{
    PGresult *res = PQexec(conn, "LISTEN litepush");
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok) {
        set_err(st, "LISTEN failed", conn);
        return false;
    }
    st->l.fd = PQsocket(conn);
    struct epoll_event ev = {.events = EPOLLIN};
    if (st->epfd >= 0 && epoll_ctl(st->epfd, EPOLL_CTL_ADD, st->l.fd, &ev) != 0) {
        snprintf(st->errbuf, sizeof st->errbuf, "epoll_ctl: %s", strerror(errno));
        return false;
    }
    return true;
}

static void drop(struct pg *st, struct pgc *c)
{
    if (c->conn == NULL)
        return;
    if (c == &st->l && st->epfd >= 0 && c->fd >= 0)
        epoll_ctl(st->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    c->fd = -1;
    PQfinish(c->conn);
    c->conn = NULL;
}

/* Makes sure c is connected. A connection that dropped is re-made once its
 * back-off has passed: without blocking (connect_step, advanced by each
 * later call) unless is_blocking. Returns false (with errbuf set) while it
 * is not connected. */
static bool ensure(struct pg *st, struct pgc *c, bool is_blocking)
{
    if (c->conn != NULL && !c->is_connecting && PQstatus(c->conn) == CONNECTION_OK)
        return true;
    if (c->conn != NULL && !c->is_connecting)
        drop(st, c);
    uint64_t now = now_ms();
    if (c->conn == NULL) {
        if (now < c->retry_at_ms) {
            if (st->errbuf[0] == '\0')
                snprintf(st->errbuf, sizeof st->errbuf, "PostgreSQL is unreachable");
            return false;
        }
        c->conn = connect_uri(st->uri, is_blocking);
        c->is_connecting = !is_blocking;
        c->poll = PGRES_POLLING_WRITING; /* libpq: as if PQconnectPoll said so */
    }
    int step = c->conn == NULL                      ? -1
               : c->is_connecting                   ? connect_step(c)
               : PQstatus(c->conn) == CONNECTION_OK ? 1
                                                    : -1;
    if (step == 0) {
        snprintf(st->errbuf, sizeof st->errbuf, "reconnecting to PostgreSQL");
        return false;
    }
    c->is_connecting = false;
    bool ok = step > 0;
    if (!ok)
        set_err(st, "cannot connect to PostgreSQL", c->conn);
    else /* a few round trips on a connection just made */
        ok = c == &st->l ? listen_setup(st, c->conn) : prepare_all(st, c->conn);
    if (!ok) {
        PQfinish(c->conn);
        c->conn = NULL;
        c->fd = -1;
        c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : PG_BACKOFF_FIRST_MS;
        if (c->backoff_ms > PG_BACKOFF_MAX_MS)
            c->backoff_ms = PG_BACKOFF_MAX_MS;
        c->retry_at_ms = now + c->backoff_ms;
        if (!c->is_down)
            fprintf(stderr, "litepush: %s; retrying\n", st->errbuf);
        c->is_down = true;
        return false;
    }
    if (c->is_down)
        fprintf(stderr, "litepush: reconnected to PostgreSQL\n");
    c->is_down = false;
    c->backoff_ms = 0;
    c->retry_at_ms = 0;
    if (c == &st->q)
        st->errbuf[0] = '\0';
    return true;
}

/* Maps a failed result on q to an error, noticing a dropped connection. */
static enum store_err result_error(struct pg *st, const PGresult *res)
{
    set_err(st, "query failed", st->q.conn);
    if (PQstatus(st->q.conn) != CONNECTION_OK) {
        if (!st->q.is_down)
            fprintf(stderr, "litepush: lost the PostgreSQL connection: %s\n", st->errbuf);
        st->q.is_down = true;
        drop(st, &st->q);
        return STORE_ERR_DOWN;
    }
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    /* 55P03 lock_not_available (lock_timeout), 40001/40P01 serialization. */
    if (state && (!strcmp(state, "55P03") || !strcmp(state, "40001") || !strcmp(state, "40P01")))
        return STORE_ERR_BUSY;
    /* Class 57: the server is shutting down or restarting. */
    if (state && !strncmp(state, "57", 2)) {
        drop(st, &st->q);
        return STORE_ERR_DOWN;
    }
    return STORE_ERR_QUERY;
}

/* Runs prepared statement `stmt` with binary parameters and results.
 * Returns the result (caller PQclears) or NULL with *err set. */
static PGresult *run(struct pg *st, int stmt, int n, const char *const *values, const int *lens,
                     enum store_err *err)
{
    if (!ensure(st, &st->q, false)) {
        *err = STORE_ERR_DOWN;
        return NULL;
    }
    int formats[3 + LIMITS_CHANNELS_PER_STREAM];
    for (int i = 0; i < n; i++)
        formats[i] = 1;
    char name[16];
    snprintf(name, sizeof name, "s%d", stmt);
    PGresult *res = PQexecPrepared(st->q.conn, name, n, values, lens, formats, 1);
    ExecStatusType status = PQresultStatus(res);
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
        *err = STORE_OK;
        return res;
    }
    *err = result_error(st, res);
    PQclear(res);
    return NULL;
}

static int64_t get_int8(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != 8)
        return 0;
    uint64_t be;
    memcpy(&be, PQgetvalue(res, row, col), 8);
    return (int64_t)be64toh(be);
}

/* ---- schema --------------------------------------------------------------- */

static const char SCHEMA_PRESENT_SQL[] =
    "SELECT to_regclass('messages') IS NOT NULL AND to_regclass('litepush_meta') IS NOT NULL"
    " AND to_regclass('messages_id_seq') IS NOT NULL"
    " AND (SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass('messages')"
    " AND tgname IN ('litepush_assign_id', 'litepush_notify')) = 2";

/* Creates the schema when any part is absent; one creator at a time. */
static bool ensure_schema(PGconn *conn, char *err, size_t err_cap)
{
    PGresult *res = PQexec(conn, SCHEMA_PRESENT_SQL);
    bool is_present = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                      PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (is_present)
        return true;
    res = PQexec(conn, "BEGIN; SELECT pg_advisory_xact_lock(" PG_SCHEMA_LOCK_KEY ")");
    PQclear(res);
    res = PQexec(conn, SCHEMA_SQL);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (!ok) {
        bool is_denied = state && (!strcmp(state, "42501") || !strcmp(state, "42P01"));
        char msg[300];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
        msg[strcspn(msg, "\n")] = '\0';
        snprintf(err, err_cap,
                 "%s: the litepush schema is absent or incomplete and %s (%s). Ask the database "
                 "owner to run sql/schema-postgresql.sql, e.g. psql \"URI\" -f "
                 "sql/schema-postgresql.sql",
                 PQdb(conn), is_denied ? "this role may not create it" : "creating it failed", msg);
    }
    PQclear(res);
    res = PQexec(conn, ok ? "COMMIT" : "ROLLBACK");
    PQclear(res);
    return ok;
}

/* ---- open / close ---------------------------------------------------------- */

static void pg_close(struct store *base)
{
    struct pg *st = (struct pg *)base;
    if (st == NULL)
        return;
    drop(st, &st->q);
    drop(st, &st->l);
    if (st->epfd >= 0)
        close(st->epfd);
    free(st->uri);
    free(st);
}

struct store *store_pg_open(const char *uri, char *err, size_t err_cap)
{
    struct pg *st = calloc(1, sizeof *st);
    if (st == NULL || (st->uri = strdup(uri)) == NULL) {
        snprintf(err, err_cap, "out of memory");
        free(st);
        return NULL;
    }
    st->base.ops = &PG_OPS;
    st->epfd = -1;
    st->q.fd = st->l.fd = -1;
    PGconn *conn = connect_uri(uri, true);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s", conn ? PQerrorMessage(conn) : "out of memory");
        msg[strcspn(msg, "\n")] = '\0';
        snprintf(err, err_cap, "cannot connect to PostgreSQL: %s", msg);
        PQfinish(conn);
        goto fail;
    }
    if (!ensure_schema(conn, err, err_cap) || !prepare_all(st, conn)) {
        if (st->errbuf[0])
            snprintf(err, err_cap, "%s", st->errbuf);
        PQfinish(conn);
        goto fail;
    }
    st->q.conn = conn;
    return &st->base;
fail:
    pg_close(&st->base);
    return NULL;
}

static const char *pg_name(const struct store *base)
{
    return ((const struct pg *)base)->uri;
}

/* ---- change detection ------------------------------------------------------ */

static int pg_watch_fd(const struct store *cbase)
{
    struct pg *st = (struct pg *)cbase;
    if (st->epfd < 0) {
        st->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (st->epfd < 0)
            return -1;
        ensure(st, &st->l, true);
    }
    return st->epfd;
}

static unsigned pg_poll_ms(const struct store *base)
{
    (void)base;
    return PG_POLL_MS;
}

static long retry_after_us(const struct pgc *c)
{
    if (c->is_connecting)
        return 5000; /* look at the connect's progress again soon */
    uint64_t now = now_ms();
    uint64_t ms = c->retry_at_ms > now ? c->retry_at_ms - now : 1;
    return (long)ms * 1000;
}

static enum store_change pg_changes(struct store *base, enum store_wake why, long *retry_us)
{
    struct pg *st = (struct pg *)base;
    if (why == STORE_WAKE_FD && st->l.conn != NULL) {
        /* Reads what arrived without blocking; a dropped connection shows up
         * here as a failed read. */
        if (PQconsumeInput(st->l.conn) == 0 || PQstatus(st->l.conn) != CONNECTION_OK) {
            set_err(st, "lost the LISTEN connection", st->l.conn);
            fprintf(stderr, "litepush: %s\n", st->errbuf);
            st->l.is_down = true;
            drop(st, &st->l);
            *retry_us = PG_BACKOFF_FIRST_MS * 1000L;
            return STORE_CHANGE_NONE;
        }
        bool is_notified = false;
        PGnotify *n;
        while ((n = PQnotifies(st->l.conn)) != NULL) {
            is_notified = true;
            PQfreemem(n);
        }
        return is_notified ? STORE_CHANGE_COMMIT : STORE_CHANGE_NONE;
    }
    if (why == STORE_WAKE_FD)
        return STORE_CHANGE_NONE;
    /* A retry or the poll: re-LISTEN first, then read, so that a commit in
     * between is both read and notified rather than missed. */
    if (!ensure(st, &st->l, false)) {
        *retry_us = retry_after_us(&st->l);
        return STORE_CHANGE_NONE;
    }
    if (!ensure(st, &st->q, false)) {
        *retry_us = retry_after_us(&st->q);
        return STORE_CHANGE_NONE;
    }
    return STORE_CHANGE_COMMIT;
}

/* ---- reads and writes ------------------------------------------------------ */

static enum store_err pg_last_id(struct store *base, int64_t *id)
{
    struct pg *st = (struct pg *)base;
    enum store_err err;
    PGresult *res = run(st, STMT_LAST_ID, 0, NULL, NULL, &err);
    if (res == NULL)
        return err;
    *id = PQntuples(res) ? get_int8(res, 0, 0) : 0;
    PQclear(res);
    return STORE_OK;
}

static enum store_err pg_read(struct store *base, int64_t after, int64_t upto,
                              const char *const *channels, const size_t *channel_lens,
                              size_t channel_count, int limit, store_row_fn *fn, void *ctx,
                              int *count)
{
    struct pg *st = (struct pg *)base;
    uint64_t be[3] = {htobe64((uint64_t)after), htobe64((uint64_t)upto), htobe64((uint64_t)limit)};
    const char *values[3 + LIMITS_CHANNELS_PER_STREAM] = {
        (const char *)&be[0], (const char *)&be[1], (const char *)&be[2]};
    int lens[3 + LIMITS_CHANNELS_PER_STREAM] = {8, 8, 8};
    int n = 3;
    if (channel_count) {
        /* Unused slots are NULL, which never matches: one plan for all. */
        for (size_t i = 0; i < LIMITS_CHANNELS_PER_STREAM; i++) {
            values[3 + i] = i < channel_count ? channels[i] : NULL;
            lens[3 + i] = i < channel_count ? (int)channel_lens[i] : 0;
        }
        n = 3 + LIMITS_CHANNELS_PER_STREAM;
    }
    *count = 0;
    enum store_err err;
    PGresult *res =
        run(st, channel_count ? STMT_READ_CHANNELS : STMT_READ_ALL, n, values, lens, &err);
    if (res == NULL)
        return err;
    int rows = PQntuples(res);
    for (int r = 0; r < rows; r++) {
        bool is_blob = PQgetisnull(res, r, 3);
        int data_col = is_blob ? 4 : 3;
        struct store_row row = {
            .id = get_int8(res, r, 0),
            .channel = PQgetvalue(res, r, 1),
            .channel_len = (size_t)PQgetlength(res, r, 1),
            .event = PQgetisnull(res, r, 2) ? NULL : PQgetvalue(res, r, 2),
            .event_len = (size_t)PQgetlength(res, r, 2),
            .data = PQgetvalue(res, r, data_col),
            .data_len = (size_t)PQgetlength(res, r, data_col),
            .is_blob = is_blob,
        };
        (*count)++;
        fn(&row, ctx);
    }
    PQclear(res);
    return STORE_OK;
}

static enum store_err pg_bounds(struct store *base, const char *const *channels,
                                const size_t *channel_lens, size_t channel_count,
                                struct store_bounds *out)
{
    struct pg *st = (struct pg *)base;
    const char *values[LIMITS_CHANNELS_PER_STREAM];
    int lens[LIMITS_CHANNELS_PER_STREAM];
    for (size_t i = 0; i < LIMITS_CHANNELS_PER_STREAM; i++) {
        values[i] = i < channel_count ? channels[i] : NULL;
        lens[i] = i < channel_count ? (int)channel_lens[i] : 0;
    }
    enum store_err err;
    /* One statement is one snapshot: the figures agree with each other. */
    PGresult *res = run(st, STMT_BOUNDS, LIMITS_CHANNELS_PER_STREAM, values, lens, &err);
    if (res == NULL)
        return err;
    if (PQntuples(res) == 1) {
        out->oldest_id = get_int8(res, 0, 0);
        out->issued_max = get_int8(res, 0, 1);
        out->pruned_through = get_int8(res, 0, 2);
    }
    PQclear(res);
    return STORE_OK;
}

static enum store_err pg_insert(struct store *base, const char *channel, size_t channel_len,
                                const char *event, size_t event_len, const void *data,
                                size_t data_len, bool is_blob, int64_t *id)
{
    struct pg *st = (struct pg *)base;
    if (data_len > INT32_MAX)
        return STORE_ERR_INPUT;
    const char *values[4] = {channel, event, is_blob ? NULL : data, is_blob ? data : NULL};
    int lens[4] = {(int)channel_len, (int)event_len, (int)data_len, (int)data_len};
    enum store_err err;
    PGresult *res = run(st, STMT_INSERT, 4, values, lens, &err);
    if (res == NULL)
        return err;
    *id = PQntuples(res) ? get_int8(res, 0, 0) : 0;
    PQclear(res);
    return STORE_OK;
}

static const char *pg_errmsg(const struct store *base)
{
    const struct pg *st = (const struct pg *)base;
    return st->errbuf[0] ? st->errbuf : "no error";
}

/* ---- retention (litepush-prune) --------------------------------------------
 * Ad-hoc statements with text parameters: $1 the channel (NULL: every
 * channel, and the statement's whole-log form), $2 and $3 integers. */

static enum store_err prune_query(struct pg *st, const char *sql, const char *channel, int64_t a2,
                                  int64_t a3, int64_t *out, int n_out, int64_t *changed)
{
    if (!ensure(st, &st->q, false))
        return STORE_ERR_DOWN;
    char s2[24], s3[24];
    snprintf(s2, sizeof s2, "%lld", (long long)a2);
    snprintf(s3, sizeof s3, "%lld", (long long)a3);
    const char *values[3] = {channel, s2, s3};
    const Oid types[3] = {PG_OID_TEXT, PG_OID_INT8, PG_OID_INT8};
    PGresult *res = PQexecParams(st->q.conn, sql, 3, types, values, NULL, NULL, 0);
    ExecStatusType status = PQresultStatus(res);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
        enum store_err err = result_error(st, res);
        PQclear(res);
        return err;
    }
    for (int i = 0; i < n_out && PQntuples(res) > 0; i++)
        out[i] = PQgetisnull(res, 0, i) ? 0 : strtoll(PQgetvalue(res, 0, i), NULL, 10);
    if (changed != NULL)
        *changed = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return STORE_OK;
}

static enum store_err pg_prune_bound_age(struct store *base, const char *channel,
                                         int64_t created_ms, int64_t *keep_from)
{
    *keep_from = 0;
    return prune_query((struct pg *)base,
                       channel ? "SELECT coalesce((SELECT id FROM messages WHERE channel = $1"
                                 " AND created_at >= $2 ORDER BY id LIMIT 1),"
                                 " (SELECT coalesce(max(id), 0) + 1 FROM messages))"
                               : "SELECT coalesce((SELECT id FROM messages WHERE $1::text IS NULL"
                                 " AND created_at >= $2 ORDER BY id LIMIT 1),"
                                 " (SELECT coalesce(max(id), 0) + 1 FROM messages))",
                       channel, created_ms, 0, keep_from, 1, NULL);
}

static enum store_err pg_prune_bound_rows(struct store *base, const char *channel,
                                          int64_t keep_rows, int64_t *keep_from)
{
    *keep_from = 0;
    if (keep_rows <= 0)
        return prune_query((struct pg *)base, "SELECT coalesce(max(id), 0) + 1 FROM messages",
                           channel, 0, 0, keep_from, 1, NULL);
    return prune_query((struct pg *)base,
                       channel ? "SELECT id FROM messages WHERE channel = $1"
                                 " ORDER BY id DESC LIMIT 1 OFFSET $2"
                               : "SELECT id FROM messages WHERE $1::text IS NULL"
                                 " ORDER BY id DESC LIMIT 1 OFFSET $2",
                       channel, keep_rows - 1, 0, keep_from, 1, NULL);
}

static enum store_err pg_prune_count(struct store *base, const char *channel, int64_t keep_from,
                                     int64_t *rows, int64_t *min_id, int64_t *max_id)
{
    int64_t v[3] = {0, 0, 0};
    enum store_err err =
        prune_query((struct pg *)base,
                    channel ? "SELECT count(*), coalesce(min(id), 0), coalesce(max(id), 0)"
                              " FROM messages WHERE channel = $1 AND id < $2"
                            : "SELECT count(*), coalesce(min(id), 0), coalesce(max(id), 0)"
                              " FROM messages WHERE $1::text IS NULL AND id < $2",
                    channel, keep_from, 0, v, 3, NULL);
    *rows = v[0];
    *min_id = v[1];
    *max_id = v[2];
    return err;
}

static enum store_err pg_prune_batch(struct store *base, const char *channel, int64_t keep_from,
                                     int batch_rows, int64_t *deleted, int64_t *max_deleted_id)
{
    struct pg *st = (struct pg *)base;
    int64_t v[2] = {0, 0}, changed = 0;
    *deleted = 0;
    *max_deleted_id = 0;
    if (!ensure(st, &st->q, false))
        return STORE_ERR_DOWN;
    PGresult *res = PQexec(st->q.conn, "BEGIN");
    PQclear(res);
    /* The batch is a prefix of the (channel's) id order; locking its rows
     * keeps a concurrent prune from counting them twice. Publishers are not
     * held up: an INSERT takes no lock on existing rows. */
    enum store_err err = prune_query(
        st,
        channel ? "SELECT count(*), coalesce(max(id), 0) FROM (SELECT id FROM messages"
                  " WHERE channel = $1 AND id < $2 ORDER BY id LIMIT $3 FOR UPDATE) b"
                : "SELECT count(*), coalesce(max(id), 0) FROM (SELECT id FROM messages"
                  " WHERE $1::text IS NULL AND id < $2 ORDER BY id LIMIT $3 FOR UPDATE) b",
        channel, keep_from, batch_rows, v, 2, NULL);
    if (err != STORE_OK || v[0] == 0)
        goto out;
    err = prune_query(st,
                      channel ? "DELETE FROM messages WHERE channel = $1 AND id <= $2"
                              : "DELETE FROM messages WHERE $1::text IS NULL AND id <= $2",
                      channel, v[1], 0, NULL, 0, &changed);
    if (err != STORE_OK)
        goto out;
    /* Pruning one channel marks only that channel. */
    err = prune_query(st,
                      "INSERT INTO litepush_meta(key, value) VALUES ("
                      " CASE WHEN $1::text IS NULL THEN 'pruned_through'"
                      " ELSE 'pruned_through:' || $1 END, $2) ON CONFLICT (key)"
                      " DO UPDATE SET value = greatest(litepush_meta.value, excluded.value)",
                      channel, v[1], 0, NULL, 0, NULL);
    if (err != STORE_OK)
        goto out;
    res = PQexec(st->q.conn, "COMMIT");
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        err = result_error(st, res);
    PQclear(res);
    if (!ok)
        return err;
    *deleted = changed;
    *max_deleted_id = v[1];
    return STORE_OK;
out:
    if (st->q.conn != NULL) {
        res = PQexec(st->q.conn, "ROLLBACK");
        PQclear(res);
    }
    return err;
}

static const struct store_ops PG_OPS = {
    .close = pg_close,
    .name = pg_name,
    .watch_fd = pg_watch_fd,
    .poll_ms = pg_poll_ms,
    .changes = pg_changes,
    .last_id = pg_last_id,
    .read = pg_read,
    .bounds = pg_bounds,
    .insert = pg_insert,
    .errmsg = pg_errmsg,
    .prune_bound_age = pg_prune_bound_age,
    .prune_bound_rows = pg_prune_bound_rows,
    .prune_count = pg_prune_count,
    .prune_batch = pg_prune_batch,
};
