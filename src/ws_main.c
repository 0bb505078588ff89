/* litepush-ws: the WebSocket helper's main: argv and environment -> config,
 * then a listener and N worker threads until SIGTERM or SIGINT.
 *
 * Threads: the main thread accepts, refuses when full, and hands each
 * socket to the workers of the pool (pool.h) in turn. Each worker runs its
 * own event loop with its own ws_server, store connection, watcher and hub,
 * so a row is fanned out by every core at once and no lock is taken per row.
 * A publish commits in one worker; the others see it through their
 * watchers like any other INSERT.
 *
 * Counters: every worker and the listener own one struct metrics in
 * app.metrics (metrics.h); /metrics, /stats and SIGUSR1 sum them all. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "cli.h"
#include "input_limits.h"
#include "listen.h"
#include "peer_limit.h"
#include "loop.h"
#include "access.h"
#include "keys.h"
#include "metrics.h"
#include "pool.h"
#include "ws_handshake.h"
#include "store.h"
#include "ws_server.h"

#define LISTEN_BACKLOG 4096
#define MAX_ORIGINS 32
#define MAX_THREADS 64
/* Accepts per wake-up, so a connection storm cannot starve the signals. */
#define ACCEPTS_PER_WAKE 64

static const char USAGE[] =
    "Usage: litepush-ws --db PATH --listen HOST:PORT [--allow-publish]\n"
    "                   [--max-message BYTES] [--ping SECONDS] [--max-connections N]\n"
    "                   [--queue-bytes N] [--origin ORIGIN]... [--no-deflate]\n"
    "                   [--threads N] [--socket-mode MODE] [--max-row BYTES]\n"
    "                   [--max-per-address N] [--message-timeout SECONDS]\n"
    "                   [--auth-keys PATH] [--public PATTERN]...\n"
    "\n"
    "WebSocket (RFC 6455) server for the litepush log, meant to sit behind Apache\n"
    "mod_proxy_wstunnel or lighttpd mod_proxy. GET /ws?channel=NAME[&lastEventId=N]\n"
    "upgrades; each row of the channels arrives as a JSON text frame.\n"
    "\n"
    "  --db PATH             the SQLite log (created if new) or a postgresql:// URI;\n"
    "                        LITEPUSH_DB otherwise\n"
    "  --listen ADDR         HOST:PORT or a unix socket path\n"
    "  --socket-mode MODE    permission bits of a --listen unix socket (default\n"
    "                        0660: the owner and its group, e.g. www-data)\n"
    "  --allow-publish       let clients insert rows: a text frame\n"
    "                        {\"channel\":\"c\",\"event\":\"e\",\"data\":\"...\"}, or a binary\n"
    "                        frame stored as a BLOB in the first channel of the URL\n"
    "  --max-message BYTES   largest client message, after inflating (default 1048576);\n"
    "                        larger ones close the connection with 1009\n"
    "  --ping SECONDS        ping a connection silent this long, drop it when the\n"
    "                        pong takes as long again (default 25, 1-3600)\n"
    "  --max-connections N   refuse more with 503 and Retry-After (default 18000)\n"
    "  --queue-bytes N       bytes queued for one slow client before it is dropped\n"
    "                        (default 1048576); it resumes with lastEventId\n"
    "  --message-timeout SECONDS  a client message (all its fragments) must\n"
    "                        arrive within this time, else close 1008 (default 30)\n"
    "  --max-per-address N   connections one client address may hold (default\n"
    "                        256; 0: no cap); behind a proxy on loopback (the web\n"
    "                        server) the address is the last X-Forwarded-For entry;\n"
    "                        beyond it, 503 with Retry-After\n"
    "  --max-row BYTES       the most data bytes a row may have to be sent (default\n"
    "                        16777216); a bigger row goes out as an event\n"
    "                        litepush.skipped with its id\n"
    "  --origin ORIGIN       refuse browser pages from other origins with 403\n"
    "                        (repeatable; a request without Origin, from a program,\n"
    "                        passes); needed when tokens may come from a cookie\n"
    "  --auth-keys PATH      turn on access control: 'KID SECRET' or 'SECRET' lines\n"
    "                        (secrets of 32 bytes or more); every channel then needs\n"
    "                        an HS256 token (Authorization: Bearer, ?token=, or the\n"
    "                        cookie litepush_token), and publishing a token whose\n"
    "                        publish patterns cover the channel\n"
    "  --public PATTERN      channels readable without a token (repeatable): a name,\n"
    "                        or a prefix ending in '*'\n"
    "  --no-deflate          do not offer permessage-deflate\n"
    "  --threads N           event-loop threads sharing the connections (default:\n"
    "                        the number of CPUs, at most 64)\n"
    "  --help                this text\n"
    "\n"
    "GET <any path ending in>/metrics without an upgrade answers counters in the\n"
    "Prometheus text format (e.g. /ws/metrics), /stats the same as plain text.\n"
    "SIGTERM or SIGINT close every connection with 1001 and exit; SIGHUP re-reads the\n"
    "--auth-keys file (connections stay open); SIGUSR1 logs counters.\n";

/* An accepted socket on its way to a worker. */
struct pending {
    struct pool_item item;
    int fd;
};

/* What the listener, the workers and the main thread share. */
/* Out of descriptors (EMFILE, ENFILE) or kernel memory, accept() fails at
 * once and the listener stays readable: stop accepting for this long
 * instead of spinning, and log it at most once per ACCEPT_LOG_MS. */
#define ACCEPT_PAUSE_MS 100
#define ACCEPT_LOG_MS 10000
/* Descriptors every process needs besides its connections: stdio, the
 * listener, signalfd, and per worker its epoll, wake-up, store (database,
 * WAL and shm files), inotify and timer descriptors. */
#define FDS_RESERVED_BASE 16
#define FDS_RESERVED_PER_THREAD 8

struct app {
    struct pool *pool;
    struct loop_io listen_io;
    struct loop_timer accept_pause; /* armed while accepting is paused */
    uint64_t accept_logged_ms;      /* when the last accept failure was logged */
    unsigned long accept_failures;  /* since then */
    struct ws_conn_config cfg;
    struct ws_conn_shared shared;
    /* One per worker (metrics[0..workers_made)), then the listener's (the
     * main thread's); shared.metrics_count in all. */
    struct metrics metrics[MAX_THREADS + 1];
    size_t workers_made;
    struct metrics *listener_metrics;
    struct access_policy access;
    struct keyring *keys; /* --auth-keys, or NULL */
    struct pattern_set public_set;
};

/* SIGHUP: re-read the key file; a file that does not parse leaves the
 * keys in force (connections are never touched either way). */
static void reload_keys(void *ctx)
{
    struct app *app = ctx;
    char err[512];
    if (keyring_reload(app->keys, err, sizeof err))
        fprintf(stderr, "litepush-ws: SIGHUP: key file re-read\n");
    else
        fprintf(stderr, "litepush-ws: SIGHUP: %s; the old keys stay in force\n", err);
}

static void log_stats(void *ctx)
{
    struct app *app = ctx;
    uint64_t v[METRIC_COUNT];
    metrics_sum(app->metrics, app->shared.metrics_count, v);
    fprintf(stderr,
            "litepush-ws: stats connections_open=%llu connections_total=%llu dropped_slow=%llu "
            "dropped_unresponsive=%llu refused_full=%llu frames_sent=%llu published=%llu "
            "last_id=%llu\n",
            (unsigned long long)v[METRIC_OPEN], (unsigned long long)v[METRIC_ACCEPTED],
            (unsigned long long)v[METRIC_DROPPED_SLOW],
            (unsigned long long)v[METRIC_DROPPED_UNRESPONSIVE],
            (unsigned long long)v[METRIC_REFUSED_FULL], (unsigned long long)v[METRIC_DELIVERIES],
            (unsigned long long)v[METRIC_PUBLISHED], (unsigned long long)v[METRIC_LAST_ID]);
}

/* ---- the pool's callbacks: one ws_server per worker ---------------------- */

static void *server_new(struct loop *loop, struct store *store, void *ctx, char *err,
                        size_t err_cap)
{
    struct app *app = ctx;
    return ws_server_new(loop, store, &app->cfg, &app->shared, &app->metrics[app->workers_made++],
                         err, err_cap);
}

static void server_adopt(void *server, struct pool_item *item)
{
    struct pending *p = LOOP_CONTAINER(item, struct pending, item);
    ws_server_adopt(server, p->fd);
    free(p);
}

static void server_free(void *server)
{
    ws_server_free(server); /* close 1001 to every client */
}

static const struct pool_ops POOL_OPS = {server_new, server_adopt, server_free};

/* ---- listener ---------------------------------------------------------------- */

static void refuse_full(int fd)
{
    char resp[256];
    long n = ws_handshake_write_error(resp, sizeof resp, 503, "too many connections", 5);
    if (n > 0 && write(fd, resp, (size_t)n) < 0) {
        /* the client left already */
    }
    close(fd);
}

static void on_accept_resume(struct loop_timer *t)
{
    struct app *app = LOOP_CONTAINER(t, struct app, accept_pause);
    if (loop_io_add(pool_main_loop(app->pool), &app->listen_io, EPOLLIN) != 0)
        loop_timer_arm(pool_main_loop(app->pool), &app->accept_pause, ACCEPT_PAUSE_MS);
}

/* accept() failed for want of resources: the connections already open go
 * on being served; new ones wait in the backlog until the pause ends. */
static void pause_accepting(struct app *app, int err)
{
    struct loop *loop = pool_main_loop(app->pool);
    uint64_t now = loop_clock_ms();
    app->accept_failures++;
    if (app->accept_logged_ms == 0 || now - app->accept_logged_ms >= ACCEPT_LOG_MS) {
        fprintf(stderr,
                "litepush-ws: accept: %s (%lu times since the last report): pausing new "
                "connections for %d ms at a time; open ones are still served\n",
                strerror(err), app->accept_failures, ACCEPT_PAUSE_MS);
        app->accept_logged_ms = now;
        app->accept_failures = 0;
    }
    loop_io_remove(loop, &app->listen_io);
    loop_timer_arm(loop, &app->accept_pause, ACCEPT_PAUSE_MS);
}

static void on_accept(struct loop_io *io, uint32_t events)
{
    (void)events;
    struct app *app = LOOP_CONTAINER(io, struct app, listen_io);
    for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(io->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
                pause_accepting(app, err);
            else if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR && err != ECONNABORTED)
                fprintf(stderr, "litepush-ws: %s: accept: %s\n", __func__, strerror(err));
            return;
        }
        if (atomic_fetch_add(&app->shared.admitted, 1) >= app->cfg.max_connections) {
            atomic_fetch_sub(&app->shared.admitted, 1);
            metrics_add(app->listener_metrics, METRIC_REFUSED_FULL, 1);
            refuse_full(fd);
            continue;
        }
        /* Rows are small and must go out at once: no Nagle delay. */
        int one = 1;
        if (ss.ss_family != AF_UNIX)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct pending *p = malloc(sizeof *p);
        if (p == NULL) {
            atomic_fetch_sub(&app->shared.admitted, 1);
            close(fd);
            continue;
        }
        p->fd = fd;
        pool_hand(app->pool, &p->item);
    }
}

int main(int argc, char **argv)
{
    const char *db = getenv("LITEPUSH_DB");
    const char *listen_spec = NULL, *keys_path = NULL, *socket_mode_s = NULL;
    unsigned socket_mode = LISTEN_SOCKET_MODE_DEFAULT;
    static const char *origins[MAX_ORIGINS];
    static const char *public_items[PATTERN_SET_MAX];
    long max_row = LIMITS_ROW_DEFAULT;
    long max_message = LIMITS_WS_MESSAGE_DEFAULT, ping_s = 25, max_conns = 18000,
         queue_bytes = LIMITS_QUEUE_BYTES_DEFAULT, threads = get_nprocs();
    static struct app app;
    struct ws_conn_config *cfg = &app.cfg;
    *cfg = (struct ws_conn_config){
        .is_deflate_enabled = true, .handshake_timeout_ms = 10000, .origins = origins};
    long message_timeout_s = 30, max_per_address = 256;
    struct cli_list origin_list = {.items = origins, .cap = MAX_ORIGINS};
    struct cli_list public_list = {.items = public_items, .cap = PATTERN_SET_MAX};
    const struct cli_flag opts[] = {
        {"db", CLI_STRING, &db, 0, 0},
        {"listen", CLI_STRING, &listen_spec, 0, 0},
        {"socket-mode", CLI_STRING, &socket_mode_s, 0, 0},
        {"allow-publish", CLI_SET, &cfg->is_publish_allowed, 0, 0},
        {"max-message", CLI_NUMBER, &max_message, 125, 1L << 30},
        {"ping", CLI_NUMBER, &ping_s, 1, 3600},
        {"max-connections", CLI_NUMBER, &max_conns, 1, 1000000},
        {"queue-bytes", CLI_NUMBER, &queue_bytes, 4096, 1L << 30},
        {"max-row", CLI_NUMBER, &max_row, 1024, 1L << 30},
        {"message-timeout", CLI_NUMBER, &message_timeout_s, 1, 3600},
        {"max-per-address", CLI_NUMBER, &max_per_address, 0, 1000000},
        {"origin", CLI_LIST, &origin_list, 0, 0},
        {"no-deflate", CLI_CLEAR, &cfg->is_deflate_enabled, 0, 0},
        {"threads", CLI_NUMBER, &threads, 1, MAX_THREADS},
        {"auth-keys", CLI_STRING, &keys_path, 0, 0},
        {"public", CLI_LIST, &public_list, 0, 0},
    };
    int rc = cli_parse("litepush-ws", USAGE, argc, argv, opts, sizeof opts / sizeof opts[0]);
    if (rc >= 0)
        return rc;
    if (socket_mode_s != NULL && !listen_parse_mode(socket_mode_s, &socket_mode)) {
        fprintf(stderr, "litepush-ws: --socket-mode wants octal permission bits such as 0660, got "
                        "'%s'\nTry 'litepush-ws --help'.\n",
                socket_mode_s);
        return 2;
    }
    if (db == NULL || db[0] == '\0' || listen_spec == NULL) {
        fputs("litepush-ws: give --db PATH (or LITEPUSH_DB) and --listen HOST:PORT\n"
              "Try 'litepush-ws --help'.\n",
              stderr);
        return 2;
    }
    for (size_t i = 0; i < public_list.count; i++) {
        const char *pat = public_list.items[i];
        enum pattern_err perr = pattern_set_add(&app.public_set, pat, strlen(pat));
        if (perr != PATTERN_OK) {
            fprintf(stderr, "litepush-ws: --public '%s': %s\n", pat, pattern_strerror(perr));
            return 2;
        }
    }
    cfg->origin_count = origin_list.count;
    cfg->max_message = (size_t)max_message;
    cfg->ping_ms = (unsigned)ping_s * 1000;
    cfg->max_connections = (size_t)max_conns;
    cfg->queue_cap = (size_t)queue_bytes;
    cfg->max_row = (size_t)max_row;
    cfg->message_timeout_ms = (unsigned)message_timeout_s * 1000;
    if (max_per_address > 0 && (cfg->peers = peer_limit_new((size_t)max_per_address)) == NULL) {
        fputs("litepush-ws: cannot set up --max-per-address (out of memory)\n", stderr);
        return 1;
    }

    if (threads > MAX_THREADS)
        threads = MAX_THREADS;

    app.shared.metrics = app.metrics;
    app.shared.metrics_count = (size_t)threads + 1;
    app.listener_metrics = &app.metrics[threads];

    char err[512];
    if (keys_path != NULL && (app.keys = keyring_open(keys_path, err, sizeof err)) == NULL) {
        fprintf(stderr, "litepush-ws: %s\n", err);
        return 1;
    }
    app.access = (struct access_policy){.keys = app.keys, .public = &app.public_set};
    cfg->access = &app.access;
    /* The pool opens the stores, creating the schema, before the port opens. */
    app.pool = pool_new((size_t)threads, db, &POOL_OPS, &app, err, sizeof err);
    if (app.pool == NULL) {
        fprintf(stderr, "litepush-ws: %s\n", err);
        return 1;
    }
    int listen_fd = listen_open(listen_spec, LISTEN_BACKLOG, socket_mode, err, sizeof err);
    if (listen_fd < 0) {
        fprintf(stderr, "litepush-ws: %s\n", err);
        return 1;
    }
    long fd_limit = listen_raise_fd_limit();
    long fds_free = fd_limit - FDS_RESERVED_BASE - FDS_RESERVED_PER_THREAD * threads;
    if (fd_limit > 0 && max_conns > fds_free) {
        long clamped = fds_free > 1 ? fds_free : 1;
        fprintf(stderr,
                "litepush-ws: --max-connections %ld is more than the open-file limit (%ld) "
                "allows: using %ld (raise the limit, e.g. LimitNOFILE= in the unit, for more)\n",
                max_conns, fd_limit, clamped);
        max_conns = clamped;
        cfg->max_connections = (size_t)max_conns;
    }
    app.accept_pause.on_due = on_accept_resume;
    app.listen_io = (struct loop_io){.fd = listen_fd, .on_ready = on_accept};
    int flags = fcntl(listen_fd, F_GETFL);
    if (fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
        loop_io_add(pool_main_loop(app.pool), &app.listen_io, EPOLLIN) != 0) {
        fprintf(stderr, "litepush-ws: cannot set up the event loop: %s\n", strerror(errno));
        return 1;
    }
    if (!pool_start(app.pool, err, sizeof err)) {
        fprintf(stderr, "litepush-ws: %s\n", err);
        return 1;
    }
    char db_name[512];
    fprintf(stderr, "litepush-ws: serving %s on %s with %ld threads%s%s\n",
            store_log_name(db, db_name, sizeof db_name), listen_spec, threads,
            cfg->is_publish_allowed ? " (publishing allowed)" : "",
            app.keys ? " (access control on)" : "");
    if (app.keys != NULL)
        pool_on_hup(app.pool, reload_keys, &app);
    rc = pool_run(app.pool, "litepush-ws", log_stats, &app);
    close(listen_fd); /* no new clients while the workers say goodbye */
    pool_stop(app.pool);
    log_stats(&app);
    pool_free(app.pool);
    keyring_free(app.keys);
    peer_limit_free(cfg->peers);
    return rc == 0 ? 0 : 1;
}
