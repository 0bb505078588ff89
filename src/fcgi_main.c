/* litepush.fcgi: the SSE responder; the only file that calls libfcgi.
 *
 * Threads: a few accept threads run FCGX_Accept_r (safe from many threads
 * on one listener), read each request's parameters, answer bad requests
 * themselves, and hand good ones to the event-loop workers in turn, through
 * a locked list and an eventfd per worker. Each worker (one per CPU,
 * --threads) runs an event loop that owns its streams, with its own store
 * connection, log watcher and hub, so a row is fanned out by every core at
 * once. The main thread only waits for signals. Locks: one per worker,
 * never two held at once.
 *
 * NOTES: libfcgi is told to forget a request after its parameters are read
 * (FCGX_Free without close, ipcFd reset), so the socket then belongs to the
 * loop, which writes FastCGI records on it without blocking. */
#include <errno.h>
#include <fcgiapp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "cli.h"
#include "listen.h"
#include "loop.h"
#include "query.h"
#include "responder.h"
#include "store.h"

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
    "                     of CPUs, at most 64)\n"
    "  --help             this text\n"
    "\n"
    "GET <any path ending in>/stats answers counters as text (e.g. /events/stats).\n"
    "SIGTERM or SIGINT end every stream cleanly and exit; SIGUSR1 logs counters.\n";

struct handoff_item {
    struct handoff_item *next;
    struct responder_request req;
    char scratch[]; /* decoded query; req.query points into it */
};

/* One event loop and the streams it owns. The accept threads and the main
 * thread touch only what `lock` guards and wake_io.fd; the rest is the
 * worker thread's. */
struct worker {
    pthread_t thread;
    struct loop *loop;
    struct store *store;
    struct responder *responder;
    struct loop_io wake_io; /* eventfd */
    struct loop_timer stats_timer;
    pthread_mutex_t lock;
    struct handoff_item *head, *tail; /* requests handed over */
    struct responder_stats stats;     /* a copy, refreshed every second */
    bool is_stopping;
};

/* What the accept threads and the main thread share. */
struct shared {
    struct worker *workers;
    size_t worker_count;
    atomic_size_t next_worker;
    atomic_size_t admitted; /* streams handed over and not yet freed */
    size_t max_streams;
    atomic_ullong refused_full;
    int listen_fd;
};

static void reply_error(FCGX_Request *req, const char *status, const char *extra,
                        const char *reason)
{
    char text[512];
    int n = snprintf(text, sizeof text,
                     "Status: %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Cache-Control: no-cache\r\n%s\r\n%s\n",
                     status, extra, reason);
    FCGX_PutStr(text, n, req->out);
    FCGX_Finish_r(req);
}

/* True for GET <prefix>/stats: the request URI's path ends in "/stats". */
static bool is_stats_request(FCGX_Request *req)
{
    const char *uri = FCGX_GetParam("REQUEST_URI", req->envp);
    if (uri == NULL)
        return false;
    size_t len = strcspn(uri, "?");
    return len >= 6 && memcmp(uri + len - 6, "/stats", 6) == 0;
}

/* The counters of every worker added up (last_id: the highest). */
static void sum_stats(struct shared *sh, struct responder_stats *sum)
{
    *sum = (struct responder_stats){0};
    for (size_t i = 0; i < sh->worker_count; i++) {
        struct worker *w = &sh->workers[i];
        pthread_mutex_lock(&w->lock);
        struct responder_stats st = w->stats;
        pthread_mutex_unlock(&w->lock);
        sum->streams_open += st.streams_open;
        sum->streams_total += st.streams_total;
        sum->streams_dropped_slow += st.streams_dropped_slow;
        sum->events_sent += st.events_sent;
        sum->rows_seen += st.rows_seen;
        if (st.last_id > sum->last_id)
            sum->last_id = st.last_id;
        if (st.watcher_lag_ms > sum->watcher_lag_ms)
            sum->watcher_lag_ms = st.watcher_lag_ms;
    }
}

static void reply_stats(FCGX_Request *req, struct shared *h)
{
    struct responder_stats st;
    sum_stats(h, &st);
    /* libfcgi's own printf knows no %zu or %ll: format here. */
    char text[1024];
    int n = snprintf(text, sizeof text,
                     "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Cache-Control: no-cache\r\n\r\n"
                     "streams_open %zu\nstreams_total %llu\nstreams_dropped_slow %llu\n"
                     "streams_refused_full %llu\nevents_sent %llu\nlast_id %lld\nrows_seen %llu\n"
                     "watcher_lag_ms %llu\n",
                     st.streams_open, (unsigned long long)st.streams_total,
                     (unsigned long long)st.streams_dropped_slow,
                     (unsigned long long)atomic_load(&h->refused_full),
                     (unsigned long long)st.events_sent, (long long)st.last_id,
                     (unsigned long long)st.rows_seen, (unsigned long long)st.watcher_lag_ms);
    FCGX_PutStr(text, n, req->out);
    FCGX_Finish_r(req);
}

/* Reads one request; returns a handoff item, or NULL after answering it. */
static struct handoff_item *take_request(FCGX_Request *req, struct shared *h)
{
    const char *method = FCGX_GetParam("REQUEST_METHOD", req->envp);
    if (method == NULL || strcmp(method, "GET") != 0) {
        reply_error(req, "405 Method Not Allowed", "Allow: GET\r\n", "only GET is served here");
        return NULL;
    }
    if (is_stats_request(req)) {
        reply_stats(req, h);
        return NULL;
    }
    const char *qs = FCGX_GetParam("QUERY_STRING", req->envp);
    if (qs == NULL)
        qs = "";
    size_t qs_len = strlen(qs);
    struct handoff_item *item = calloc(1, sizeof *item + qs_len + 1);
    if (item == NULL) {
        reply_error(req, "503 Service Unavailable", "Retry-After: 5\r\n", "out of memory");
        return NULL;
    }
    enum query_err err = query_parse(qs, qs_len, item->scratch, &item->req.query);
    /* An empty Last-Event-ID is what a client sends before it saw any id. */
    const char *header = FCGX_GetParam("HTTP_LAST_EVENT_ID", req->envp);
    if (err == QUERY_OK && header != NULL && header[0] != '\0') {
        item->req.has_header_id = 1;
        err = query_parse_event_id(header, strlen(header), &item->req.header_id);
    }
    if (err != QUERY_OK) {
        reply_error(req, "400 Bad Request", "", query_strerror(err));
        free(item);
        return NULL;
    }
    if (atomic_fetch_add(&h->admitted, 1) >= h->max_streams) {
        atomic_fetch_sub(&h->admitted, 1);
        atomic_fetch_add(&h->refused_full, 1);
        reply_error(req, "503 Service Unavailable", "Retry-After: 5\r\n",
                    "too many open streams, retry later");
        free(item);
        return NULL;
    }
    item->req.fd = req->ipcFd;
    item->req.request_id = (uint16_t)req->requestId;
    /* From here the socket is the loop's: libfcgi frees its buffers and
     * forgets the descriptor (FCGX_Accept_r will not close ipcFd == -1). */
    FCGX_Free(req, 0);
    req->ipcFd = -1;
    return item;
}

static void wake(struct worker *w)
{
    uint64_t one = 1;
    if (write(w->wake_io.fd, &one, sizeof one) < 0 && errno != EAGAIN)
        fprintf(stderr, "litepush: %s: eventfd: %s\n", __func__, strerror(errno));
}

static void *accept_thread(void *arg)
{
    struct shared *sh = arg;
    FCGX_Request req;
    FCGX_InitRequest(&req, sh->listen_fd, 0);
    for (;;) {
        if (FCGX_Accept_r(&req) < 0) {
            if (errno != EINTR)
                usleep(10000); /* EMFILE and friends: do not spin */
            continue;
        }
        struct handoff_item *item = take_request(&req, sh);
        if (item == NULL)
            continue;
        struct worker *w = &sh->workers[atomic_fetch_add(&sh->next_worker, 1) % sh->worker_count];
        pthread_mutex_lock(&w->lock);
        if (w->tail)
            w->tail->next = item;
        else
            w->head = item;
        w->tail = item;
        pthread_mutex_unlock(&w->lock);
        wake(w);
    }
    return NULL;
}

/* ---- workers ------------------------------------------------------------- */

static void on_wake(struct loop_io *io, uint32_t events)
{
    (void)events;
    struct worker *w = LOOP_CONTAINER(io, struct worker, wake_io);
    uint64_t count;
    if (read(io->fd, &count, sizeof count) < 0 && errno != EAGAIN)
        return;
    pthread_mutex_lock(&w->lock);
    struct handoff_item *list = w->head;
    w->head = w->tail = NULL;
    bool is_stopping = w->is_stopping;
    pthread_mutex_unlock(&w->lock);
    while (list != NULL) {
        struct handoff_item *item = list;
        list = item->next;
        responder_adopt(w->responder, &item->req);
        free(item);
    }
    if (is_stopping)
        loop_stop(w->loop);
}

static void on_stats_timer(struct loop_timer *t)
{
    struct worker *w = LOOP_CONTAINER(t, struct worker, stats_timer);
    struct responder_stats st;
    responder_get_stats(w->responder, &st);
    pthread_mutex_lock(&w->lock);
    w->stats = st;
    pthread_mutex_unlock(&w->lock);
    loop_timer_arm(w->loop, &w->stats_timer, 1000);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    loop_run(w->loop);
    on_stats_timer(&w->stats_timer); /* the last figures, for the exit log */
    responder_free(w->responder);    /* ends every stream cleanly */
    w->responder = NULL;
    return NULL;
}

/* Creates a worker's loop, store and responder on this thread; the worker
 * thread owns them from pthread_create on. */
static int worker_init(struct worker *w, const char *db, const struct responder_config *cfg,
                       char *err, size_t err_cap)
{
    pthread_mutex_init(&w->lock, NULL);
    w->loop = loop_new();
    w->wake_io =
        (struct loop_io){.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), .on_ready = on_wake};
    w->stats_timer.on_due = on_stats_timer;
    if (w->loop == NULL || w->wake_io.fd < 0 || loop_io_add(w->loop, &w->wake_io, EPOLLIN) != 0) {
        snprintf(err, err_cap, "cannot set up an event loop: %s", strerror(errno));
        return -1;
    }
    w->store = store_open(db, err, err_cap);
    if (w->store == NULL)
        return -1;
    w->responder = responder_new(w->loop, w->store, cfg, err, err_cap);
    if (w->responder == NULL)
        return -1;
    loop_timer_arm(w->loop, &w->stats_timer, 0);
    return 0;
}

/* ---- main thread ------------------------------------------------------------ */

struct main_ctx {
    struct loop *loop;
    struct shared *shared;
    struct loop_io signal_io;
};

static void log_stats(struct shared *sh)
{
    struct responder_stats st;
    sum_stats(sh, &st);
    fprintf(stderr,
            "litepush: stats streams_open=%zu streams_total=%llu dropped_slow=%llu "
            "refused_full=%llu events_sent=%llu last_id=%lld\n",
            st.streams_open, (unsigned long long)st.streams_total,
            (unsigned long long)st.streams_dropped_slow,
            (unsigned long long)atomic_load(&sh->refused_full), (unsigned long long)st.events_sent,
            (long long)st.last_id);
}

static void on_signal(struct loop_io *io, uint32_t events)
{
    (void)events;
    struct main_ctx *m = LOOP_CONTAINER(io, struct main_ctx, signal_io);
    struct signalfd_siginfo si;
    while (read(io->fd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGUSR1) {
            log_stats(m->shared);
        } else {
            fprintf(stderr, "litepush: signal %u: closing streams and exiting\n", si.ssi_signo);
            loop_stop(m->loop);
        }
    }
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
    static const struct option opts[] = {{"db", required_argument, NULL, 'd'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"heartbeat", required_argument, NULL, 'b'},
                                         {"retry", required_argument, NULL, 'r'},
                                         {"queue-bytes", required_argument, NULL, 'q'},
                                         {"max-streams", required_argument, NULL, 'm'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'd':
            db = optarg;
            break;
        case 'l':
            listen_spec = optarg;
            break;
        case 'b':
            bad = cli_number("litepush.fcgi", "--heartbeat", optarg, 1, 3600, &heartbeat_s);
            break;
        case 'r':
            bad = cli_number("litepush.fcgi", "--retry", optarg, 0, 3600000, &retry_ms);
            break;
        case 'q':
            bad =
                cli_number("litepush.fcgi", "--queue-bytes", optarg, 4096, 1L << 30, &queue_bytes);
            break;
        case 'm':
            bad = cli_number("litepush.fcgi", "--max-streams", optarg, 1, 1000000, &max_streams);
            break;
        case 't':
            bad = cli_number("litepush.fcgi", "--threads", optarg, 1, MAX_WORKERS, &threads);
            break;
        case 'h':
            fputs(USAGE, stdout);
            return 0;
        default:
            bad = 1;
        }
        if (bad) {
            fputs("Try 'litepush.fcgi --help'.\n", stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "litepush.fcgi: unexpected argument '%s'\nTry 'litepush.fcgi --help'.\n",
                argv[optind]);
        return 2;
    }
    if (db == NULL || db[0] == '\0') {
        fputs("litepush.fcgi: no database: give --db PATH or set LITEPUSH_DB\n", stderr);
        return 2;
    }

    if (threads > MAX_WORKERS)
        threads = MAX_WORKERS;

    char err[512];
    static struct worker workers[MAX_WORKERS];
    static struct shared shared;
    shared.workers = workers;
    shared.worker_count = (size_t)threads;
    shared.max_streams = (size_t)max_streams;
    struct responder_config cfg = {.heartbeat_ms = (unsigned)heartbeat_s * 1000,
                                   .retry_ms = (unsigned)retry_ms,
                                   .queue_cap = (size_t)queue_bytes,
                                   .admitted = &shared.admitted};
    /* The schema exists before the port opens: a client never meets an
     * empty database. */
    struct store *schema = store_open(db, err, sizeof err);
    if (schema == NULL) {
        fprintf(stderr, "litepush.fcgi: %s\n", err);
        return 1;
    }
    store_close(schema);
    shared.listen_fd = 0;
    if (listen_spec != NULL) {
        shared.listen_fd = listen_open(listen_spec, LISTEN_BACKLOG, err, sizeof err);
        if (shared.listen_fd < 0) {
            fprintf(stderr, "litepush.fcgi: %s\n", err);
            return 1;
        }
    } else if (!fd_is_socket(0)) {
        fputs("litepush.fcgi: no --listen given and fd 0 is not a socket: run it from the web\n"
              "server (lighttpd bin-path, spawn-fcgi, mod_fcgid) or give --listen HOST:PORT\n",
              stderr);
        return 2;
    }
    listen_raise_fd_limit();
    if (FCGX_Init() != 0) {
        fputs("litepush.fcgi: FCGX_Init failed\n", stderr);
        return 1;
    }
    /* FCGX_Init installed its own SIGTERM handling: take the signals back
     * (blocked here, so in every thread started below) through a signalfd. */
    struct main_ctx m = {.shared = &shared, .loop = loop_new()};
    m.signal_io = (struct loop_io){.fd = cli_signalfd(), .on_ready = on_signal};
    if (m.loop == NULL || m.signal_io.fd < 0 || loop_io_add(m.loop, &m.signal_io, EPOLLIN) != 0) {
        fprintf(stderr, "litepush.fcgi: cannot set up the event loop: %s\n", strerror(errno));
        return 1;
    }
    for (size_t i = 0; i < shared.worker_count; i++) {
        if (worker_init(&workers[i], db, &cfg, err, sizeof err) != 0) {
            fprintf(stderr, "litepush.fcgi: %s\n", err);
            return 1;
        }
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (size_t i = 0; i < shared.worker_count; i++) {
        if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
            fputs("litepush.fcgi: cannot start worker threads\n", stderr);
            return 1;
        }
    }
    for (int i = 0; i < ACCEPT_THREADS; i++) {
        pthread_t t;
        if (pthread_create(&t, &attr, accept_thread, &shared) != 0) {
            fputs("litepush.fcgi: cannot start accept threads\n", stderr);
            return 1;
        }
        pthread_detach(t);
    }
    fprintf(stderr, "litepush.fcgi: serving %s on %s (heartbeat %lds, %zu threads)\n", db,
            listen_spec ? listen_spec : "fd 0", heartbeat_s, shared.worker_count);
    int rc = loop_run(m.loop);
    for (size_t i = 0; i < shared.worker_count; i++) {
        pthread_mutex_lock(&workers[i].lock);
        workers[i].is_stopping = true;
        pthread_mutex_unlock(&workers[i].lock);
        wake(&workers[i]);
    }
    for (size_t i = 0; i < shared.worker_count; i++)
        pthread_join(workers[i].thread, NULL);
    log_stats(&shared);
    for (size_t i = 0; i < shared.worker_count; i++)
        store_close(workers[i].store);
    /* The accept threads sit in accept(); ending the process ends them. */
    _exit(rc == 0 ? 0 : 1);
}
