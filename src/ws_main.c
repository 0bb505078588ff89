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
#include "loop.h"
#include "metrics.h"
#include "pool.h"
#include "ws_handshake.h"
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
    "                   [--threads N]\n"
    "\n"
    "WebSocket (RFC 6455) server for the litepush log, meant to sit behind Apache\n"
    "mod_proxy_wstunnel or lighttpd mod_proxy. GET /ws?channel=NAME[&lastEventId=N]\n"
    "upgrades; each row of the channels arrives as a JSON text frame.\n"
    "\n"
    "  --db PATH             the SQLite log (created if new); LITEPUSH_DB otherwise\n"
    "  --listen ADDR         HOST:PORT or a unix socket path\n"
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
    "  --origin ORIGIN       accept only these Origin values (repeatable); by\n"
    "                        default any origin is accepted\n"
    "  --no-deflate          do not offer permessage-deflate\n"
    "  --threads N           event-loop threads sharing the connections (default:\n"
    "                        the number of CPUs, at most 64)\n"
    "  --help                this text\n"
    "\n"
    "GET <any path ending in>/metrics without an upgrade answers counters in the\n"
    "Prometheus text format (e.g. /ws/metrics), /stats the same as plain text.\n"
    "SIGTERM or SIGINT close every connection with 1001 and exit; SIGUSR1 logs counters.\n";

/* An accepted socket on its way to a worker. */
struct pending {
    struct pool_item item;
    int fd;
};

/* What the listener, the workers and the main thread share. */
struct app {
    struct pool *pool;
    struct loop_io listen_io;
    struct ws_conn_config cfg;
    struct ws_conn_shared shared;
    /* One per worker (metrics[0..workers_made)), then the listener's (the
     * main thread's); shared.metrics_count in all. */
    struct metrics metrics[MAX_THREADS + 1];
    size_t workers_made;
    struct metrics *listener_metrics;
};

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

static void on_accept(struct loop_io *io, uint32_t events)
{
    (void)events;
    struct app *app = LOOP_CONTAINER(io, struct app, listen_io);
    for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(io->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                fprintf(stderr, "litepush-ws: %s: accept: %s\n", __func__, strerror(errno));
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
    const char *listen_spec = NULL;
    static const char *origins[MAX_ORIGINS];
    long max_message = LIMITS_WS_MESSAGE_DEFAULT, ping_s = 25, max_conns = 18000,
         queue_bytes = LIMITS_QUEUE_BYTES_DEFAULT, threads = get_nprocs();
    static struct app app;
    struct ws_conn_config *cfg = &app.cfg;
    *cfg = (struct ws_conn_config){
        .is_deflate_enabled = true, .handshake_timeout_ms = 10000, .origins = origins};
    struct cli_list origin_list = {.items = origins, .cap = MAX_ORIGINS};
    const struct cli_flag opts[] = {
        {"db", CLI_STRING, &db, 0, 0},
        {"listen", CLI_STRING, &listen_spec, 0, 0},
        {"allow-publish", CLI_SET, &cfg->is_publish_allowed, 0, 0},
        {"max-message", CLI_NUMBER, &max_message, 125, 1L << 30},
        {"ping", CLI_NUMBER, &ping_s, 1, 3600},
        {"max-connections", CLI_NUMBER, &max_conns, 1, 1000000},
        {"queue-bytes", CLI_NUMBER, &queue_bytes, 4096, 1L << 30},
        {"origin", CLI_LIST, &origin_list, 0, 0},
        {"no-deflate", CLI_CLEAR, &cfg->is_deflate_enabled, 0, 0},
        {"threads", CLI_NUMBER, &threads, 1, MAX_THREADS},
    };
    int rc = cli_parse("litepush-ws", USAGE, argc, argv, opts, sizeof opts / sizeof opts[0]);
    if (rc >= 0)
        return rc;
    if (db == NULL || db[0] == '\0' || listen_spec == NULL) {
        fputs("litepush-ws: give --db PATH (or LITEPUSH_DB) and --listen HOST:PORT\n"
              "Try 'litepush-ws --help'.\n",
              stderr);
        return 2;
    }
    cfg->origin_count = origin_list.count;
    cfg->max_message = (size_t)max_message;
    cfg->ping_ms = (unsigned)ping_s * 1000;
    cfg->max_connections = (size_t)max_conns;
    cfg->queue_cap = (size_t)queue_bytes;

    if (threads > MAX_THREADS)
        threads = MAX_THREADS;

    app.shared.metrics = app.metrics;
    app.shared.metrics_count = (size_t)threads + 1;
    app.listener_metrics = &app.metrics[threads];

    char err[512];
    /* The pool opens the stores, creating the schema, before the port opens. */
    app.pool = pool_new((size_t)threads, db, &POOL_OPS, &app, err, sizeof err);
    if (app.pool == NULL) {
        fprintf(stderr, "litepush-ws: %s\n", err);
        return 1;
    }
    int listen_fd = listen_open(listen_spec, LISTEN_BACKLOG, err, sizeof err);
    if (listen_fd < 0) {
        fprintf(stderr, "litepush-ws: %s\n", err);
        return 1;
    }
    listen_raise_fd_limit();
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
    fprintf(stderr, "litepush-ws: serving %s on %s with %ld threads%s\n", db, listen_spec, threads,
            cfg->is_publish_allowed ? " (publishing allowed)" : "");
    rc = pool_run(app.pool, "litepush-ws", log_stats, &app);
    close(listen_fd); /* no new clients while the workers say goodbye */
    pool_stop(app.pool);
    log_stats(&app);
    pool_free(app.pool);
    return rc == 0 ? 0 : 1;
}
