/* litepush.fcgi: the SSE responder; the only file that calls libfcgi.
 *
 * Threads: a few accept threads (one per worker, at most ACCEPT_THREADS)
 * run FCGX_Accept_r (safe from many threads on one listener), read each
 * request's parameters, answer bad requests themselves, and hand good
 * ones to the event-loop workers of the pool (pool.h) in turn. Each worker
 * (one per CPU, --threads) runs a responder that owns its streams, with its
 * own store connection, log watcher and hub, so a row is fanned out by
 * every core at once. The main thread only waits for signals. Under
 * mod_fcgid every stream is a process of its own: with --threads 1 (or
 * LITEPUSH_THREADS=1, which the recipe sets) such a process has one loop,
 * one accept thread, one store connection and one watcher.
 *
 * Counters: every worker and every accept thread owns one struct metrics
 * in app.metrics (metrics.h); /metrics, /stats and SIGUSR1 sum them all.
 *
 * NOTES: libfcgi is told to forget a request after its parameters are read
 * (FCGX_Free without close, ipcFd reset), so the socket then belongs to the
 * loop, which writes FastCGI records on it without blocking. */
#include <errno.h>
#include <fcgiapp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "cli.h"
#include "listen.h"
#include "loop.h"
#include "metrics.h"
#include "pool.h"
#include "query.h"
#include "responder.h"

#define ACCEPT_THREADS 4
#define LISTEN_BACKLOG 4096
#define MAX_WORKERS 64

static const char USAGE[] =
    "Usage: litepush.fcgi --db PATH [--listen HOST:PORT | --listen /path/to.sock]\n"
    "                     [--heartbeat SECONDS] [--retry MS] [--queue-bytes N]\n"
    "                     [--max-streams N] [--threads N]\n"
    "\n"
    "FastCGI responder for Server-Sent Events: GET /events?channel=NAME streams\n"
    "every row inserted into the SQLite table messages in that channel.\n"
    "\n"
    "  --db PATH          the SQLite log (created with its schema if new);\n"
    "                     LITEPUSH_DB is used when --db is not given\n"
    "  --listen ADDR      serve FastCGI on HOST:PORT or a unix socket path;\n"
    "                     without it, on fd 0 (lighttpd bin-path, spawn-fcgi)\n"
    "  --heartbeat SECS   comment sent on an idle stream (default 15, 1-3600)\n"
    "  --retry MS         reconnect delay suggested to clients (default 3000)\n"
    "  --queue-bytes N    bytes queued for one slow stream before it is dropped\n"
    "                     and left to resume from the log (default 1048576)\n"
    "  --max-streams N    open streams before new ones get 503 with Retry-After\n"
    "                     (default 18000; each stream is one open file)\n"
    "  --threads N        event loops sharing the streams (default: the number\n"
    "                     of CPUs, at most 64); LITEPUSH_THREADS is used when\n"
    "                     --threads is not given. Use 1 under mod_fcgid, where\n"
    "                     each stream is a process of its own\n"
    "  --help             this text\n"
    "\n"
    "GET <any path ending in>/metrics answers counters in the Prometheus text\n"
    "format (e.g. /events/metrics), /stats the same as plain text.\n"
    "SIGTERM or SIGINT end every stream cleanly and exit; SIGUSR1 logs counters.\n";

/* A request on its way from an accept thread to a worker. */
struct handoff_item {
    struct pool_item item;
    struct responder_request req;
    char scratch[]; /* decoded query; req.query points into it */
};

struct app;

/* One accept thread: its request (every FCGX_Request of the program is the
 * req of an acceptor, so reply_error finds the thread's counters from it)
 * and its own counters. */
struct acceptor {
    FCGX_Request req;
    struct app *app;
    struct metrics *metrics;
};

/* What the accept threads, the workers and the main thread share. */
struct app {
    struct pool *pool;
    struct responder_config cfg;
    /* Streams let in and not yet freed, for --max-streams: counted up by
     * the accept threads, down by the responders. */
    atomic_size_t admitted;
    /* One per worker (metrics[0..workers_made)), then one per accept
     * thread; metrics_count in all. Each is written by its thread only. */
    struct metrics metrics[MAX_WORKERS + ACCEPT_THREADS];
    size_t metrics_count, workers_made;
    struct acceptor acceptors[ACCEPT_THREADS];
    size_t max_streams;
    int listen_fd;
};

static struct metrics *metrics_of(FCGX_Request *req)
{
    return LOOP_CONTAINER(req, struct acceptor, req)->metrics;
}

/* Answers req with an error status (counted as a refusal by its class,
 * metrics_refusal) and finishes it. */
static void reply_error(FCGX_Request *req, const char *status, const char *extra,
                        const char *reason)
{
    enum metric refusal = metrics_refusal(atoi(status));
    if (refusal != METRIC_COUNT)
        metrics_add(metrics_of(req), refusal, 1);
    char text[512];
    int n = snprintf(text, sizeof text,
                     "Status: %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Cache-Control: no-cache\r\n%s\r\n%s\n",
                     status, extra, reason);
    FCGX_PutStr(text, n, req->out);
    FCGX_Finish_r(req);
}

/* True when the request URI's path ends in suffix ("/stats", "/metrics"). */
static bool is_path_suffix(FCGX_Request *req, const char *suffix)
{
    const char *uri = FCGX_GetParam("REQUEST_URI", req->envp);
    if (uri == NULL)
        return false;
    size_t len = strcspn(uri, "?"), n = strlen(suffix);
    return len >= n && memcmp(uri + len - n, suffix, n) == 0;
}

static void reply_stats(FCGX_Request *req, struct app *app)
{
    uint64_t v[METRIC_COUNT];
    metrics_sum(app->metrics, app->metrics_count, v);
    /* libfcgi's own printf knows no %zu or %ll: format here. */
    char text[1024];
    int n = snprintf(text, sizeof text,
                     "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Cache-Control: no-cache\r\n\r\n"
                     "streams_open %llu\nstreams_total %llu\nstreams_dropped_slow %llu\n"
                     "streams_refused_full %llu\nevents_sent %llu\nlast_id %llu\nrows_seen %llu\n"
                     "watcher_lag_ms %llu\n",
                     (unsigned long long)v[METRIC_OPEN], (unsigned long long)v[METRIC_ACCEPTED],
                     (unsigned long long)v[METRIC_DROPPED_SLOW],
                     (unsigned long long)v[METRIC_REFUSED_FULL],
                     (unsigned long long)v[METRIC_DELIVERIES],
                     (unsigned long long)v[METRIC_LAST_ID], (unsigned long long)v[METRIC_ROWS_READ],
                     (unsigned long long)(v[METRIC_WATCHER_LAG_US] / 1000));
    FCGX_PutStr(text, n, req->out);
    FCGX_Finish_r(req);
}

/* The Prometheus text exposition (metrics.h) of every thread's counters. */
static void reply_metrics(FCGX_Request *req, struct app *app)
{
    uint64_t v[METRIC_COUNT];
    metrics_sum(app->metrics, app->metrics_count, v);
    static const char HEAD[] = "Status: 200 OK\r\nContent-Type: " METRICS_CONTENT_TYPE "\r\n"
                               "Cache-Control: no-cache\r\n\r\n";
    char text[sizeof HEAD + METRICS_TEXT_MAX];
    memcpy(text, HEAD, sizeof HEAD - 1);
    size_t n = metrics_render(v, METRICS_SSE, text + sizeof HEAD - 1, METRICS_TEXT_MAX);
    FCGX_PutStr(text, (int)(sizeof HEAD - 1 + n), req->out);
    FCGX_Finish_r(req);
}

/* Reads one request; returns a handoff item, or NULL after answering it. */
static struct handoff_item *take_request(FCGX_Request *req, struct app *app)
{
    const char *method = FCGX_GetParam("REQUEST_METHOD", req->envp);
    if (method == NULL || strcmp(method, "GET") != 0) {
        reply_error(req, "405 Method Not Allowed", "Allow: GET\r\n", "only GET is served here");
        return NULL;
    }
    if (is_path_suffix(req, "/stats")) {
        reply_stats(req, app);
        return NULL;
    }
    if (is_path_suffix(req, "/metrics")) {
        reply_metrics(req, app);
        return NULL;
    }
    const char *qs = FCGX_GetParam("QUERY_STRING", req->envp);
    if (qs == NULL)
        qs = "";
    size_t qs_len = strlen(qs);
    struct handoff_item *h = calloc(1, sizeof *h + qs_len + 1);
    if (h == NULL) {
        reply_error(req, "503 Service Unavailable", "Retry-After: 5\r\n", "out of memory");
        return NULL;
    }
    enum query_err err = query_parse(qs, qs_len, h->scratch, &h->req.query);
    /* An empty Last-Event-ID is what a client sends before it saw any id. */
    const char *header = FCGX_GetParam("HTTP_LAST_EVENT_ID", req->envp);
    if (err == QUERY_OK && header != NULL && header[0] != '\0') {
        h->req.has_header_id = 1;
        err = query_parse_event_id(header, strlen(header), &h->req.header_id);
    }
    if (err != QUERY_OK) {
        reply_error(req, "400 Bad Request", "", query_strerror(err));
        free(h);
        return NULL;
    }
    if (atomic_fetch_add(&app->admitted, 1) >= app->max_streams) {
        atomic_fetch_sub(&app->admitted, 1);
        metrics_add(metrics_of(req), METRIC_REFUSED_FULL, 1);
        reply_error(req, "503 Service Unavailable", "Retry-After: 5\r\n",
                    "too many open streams, retry later");
        free(h);
        return NULL;
    }
    h->req.fd = req->ipcFd;
    h->req.request_id = (uint16_t)req->requestId;
    /* From here the socket is the loop's: libfcgi frees its buffers and
     * forgets the descriptor (FCGX_Accept_r will not close ipcFd == -1). */
    FCGX_Free(req, 0);
    req->ipcFd = -1;
    return h;
}

static void *accept_thread(void *arg)
{
    struct acceptor *a = arg;
    struct app *app = a->app;
    FCGX_Request *req = &a->req;
    FCGX_InitRequest(req, app->listen_fd, 0);
    for (;;) {
        if (FCGX_Accept_r(req) < 0) {
            if (errno != EINTR)
                usleep(10000); /* EMFILE and friends: do not spin */
            continue;
        }
        struct handoff_item *h = take_request(req, app);
        if (h != NULL)
            pool_hand(app->pool, &h->item);
    }
    return NULL;
}

/* ---- the pool's callbacks: one responder per worker ---------------------- */

static void *server_new(struct loop *loop, struct store *store, void *ctx, char *err,
                        size_t err_cap)
{
    struct app *app = ctx;
    return responder_new(loop, store, &app->cfg, &app->metrics[app->workers_made++], &app->admitted,
                         err, err_cap);
}

static void server_adopt(void *server, struct pool_item *item)
{
    struct handoff_item *h = LOOP_CONTAINER(item, struct handoff_item, item);
    responder_adopt(server, &h->req);
    free(h);
}

static void server_free(void *server)
{
    responder_free(server);
}

static const struct pool_ops POOL_OPS = {server_new, server_adopt, server_free};

static void log_stats(void *ctx)
{
    struct app *app = ctx;
    uint64_t v[METRIC_COUNT];
    metrics_sum(app->metrics, app->metrics_count, v);
    fprintf(stderr,
            "litepush: stats streams_open=%llu streams_total=%llu dropped_slow=%llu "
            "refused_full=%llu events_sent=%llu last_id=%llu\n",
            (unsigned long long)v[METRIC_OPEN], (unsigned long long)v[METRIC_ACCEPTED],
            (unsigned long long)v[METRIC_DROPPED_SLOW], (unsigned long long)v[METRIC_REFUSED_FULL],
            (unsigned long long)v[METRIC_DELIVERIES], (unsigned long long)v[METRIC_LAST_ID]);
}

static int fd_is_socket(int fd)
{
    int type;
    socklen_t len = sizeof type;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
}

int main(int argc, char **argv)
{
    const char *db = getenv("LITEPUSH_DB");
    const char *listen_spec = NULL;
    long heartbeat_s = 15, retry_ms = 3000, queue_bytes = 1024 * 1024, max_streams = 18000,
         threads = get_nprocs();
    /* Whether the process serves one stream (mod_fcgid) or thousands
     * (lighttpd bin-path, spawn-fcgi) cannot be told from fd 0: both hand
     * over a listening socket. So the recipe says it. */
    const char *threads_env = getenv("LITEPUSH_THREADS");
    if (threads_env != NULL && threads_env[0] != '\0' &&
        cli_number("litepush.fcgi", "LITEPUSH_THREADS", threads_env, 1, MAX_WORKERS, &threads) != 0)
        return 2;
    const struct cli_flag opts[] = {
        {"db", CLI_STRING, &db, 0, 0},
        {"listen", CLI_STRING, &listen_spec, 0, 0},
        {"heartbeat", CLI_NUMBER, &heartbeat_s, 1, 3600},
        {"retry", CLI_NUMBER, &retry_ms, 0, 3600000},
        {"queue-bytes", CLI_NUMBER, &queue_bytes, 4096, 1L << 30},
        {"max-streams", CLI_NUMBER, &max_streams, 1, 1000000},
        {"threads", CLI_NUMBER, &threads, 1, MAX_WORKERS},
    };
    int rc = cli_parse("litepush.fcgi", USAGE, argc, argv, opts, sizeof opts / sizeof opts[0]);
    if (rc >= 0)
        return rc;
    if (db == NULL || db[0] == '\0') {
        fputs("litepush.fcgi: no database: give --db PATH or set LITEPUSH_DB\n", stderr);
        return 2;
    }

    if (threads > MAX_WORKERS)
        threads = MAX_WORKERS;

    char err[512];
    static struct app app;
    app.max_streams = (size_t)max_streams;
    app.cfg = (struct responder_config){.heartbeat_ms = (unsigned)heartbeat_s * 1000,
                                        .retry_ms = (unsigned)retry_ms,
                                        .queue_cap = (size_t)queue_bytes};
    if (listen_spec == NULL && !fd_is_socket(0)) {
        fputs("litepush.fcgi: no --listen given and fd 0 is not a socket: run it from the web\n"
              "server (lighttpd bin-path, spawn-fcgi, mod_fcgid) or give --listen HOST:PORT\n",
              stderr);
        return 2;
    }
    /* FCGX_Init installs its own SIGTERM handling: the pool takes the
     * signals back after it. */
    if (FCGX_Init() != 0) {
        fputs("litepush.fcgi: FCGX_Init failed\n", stderr);
        return 1;
    }
    /* An accept thread per worker is plenty: they only read request heads. */
    int accept_threads = threads < ACCEPT_THREADS ? (int)threads : ACCEPT_THREADS;
    app.metrics_count = (size_t)threads + (size_t)accept_threads;
    /* The pool opens the stores, creating the schema, before the port
     * opens: a client never meets an empty database. */
    app.pool = pool_new((size_t)threads, db, &POOL_OPS, &app, err, sizeof err);
    if (app.pool == NULL) {
        fprintf(stderr, "litepush.fcgi: %s\n", err);
        return 1;
    }
    if (listen_spec != NULL &&
        (app.listen_fd = listen_open(listen_spec, LISTEN_BACKLOG, err, sizeof err)) < 0) {
        fprintf(stderr, "litepush.fcgi: %s\n", err);
        return 1;
    }
    listen_raise_fd_limit();
    if (!pool_start(app.pool, err, sizeof err)) {
        fprintf(stderr, "litepush.fcgi: %s\n", err);
        return 1;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (int i = 0; i < accept_threads; i++) {
        pthread_t t;
        app.acceptors[i] = (struct acceptor){.app = &app, .metrics = &app.metrics[threads + i]};
        if (pthread_create(&t, &attr, accept_thread, &app.acceptors[i]) != 0) {
            fputs("litepush.fcgi: cannot start accept threads\n", stderr);
            return 1;
        }
        pthread_detach(t);
    }
    fprintf(stderr, "litepush.fcgi: serving %s on %s (heartbeat %lds, %ld threads)\n", db,
            listen_spec ? listen_spec : "fd 0", heartbeat_s, threads);
    rc = pool_run(app.pool, "litepush.fcgi", log_stats, &app);
    pool_stop(app.pool);
    log_stats(&app);
    /* The accept threads sit in accept(); ending the process ends them. */
    _exit(rc == 0 ? 0 : 1);
}
