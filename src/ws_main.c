/* litepush-ws: the WebSocket helper's main: argv and environment -> config,
 * then a listener and N worker threads until SIGTERM or SIGINT.
 *
 * Threads: the main thread accepts, refuses when full, and hands each
 * socket to the next worker in turn (a locked list and an eventfd per
 * worker; that lock is the only one, taken alone). Each worker runs its own
 * event loop with its own ws_server, store connection, watcher and hub, so
 * a row is fanned out by every core at once and no lock is taken per row.
 * A publish commits in one worker; the others see it through their
 * watchers like any other INSERT. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

#include "input_limits.h"
#include "cli.h"
#include "listen.h"
#include "loop.h"
#include "query.h"
#include "store.h"
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
    "SIGTERM or SIGINT close every connection with 1001 and exit; SIGUSR1 logs counters.\n";

struct pending {
    struct pending *next;
    int fd;
};

/* One event-loop thread. The listener touches only lock, head and
 * is_stopping (under lock) and wake_fd; everything else is the thread's. */
struct worker {
    pthread_t thread;
    struct loop *loop;
    struct store *store;
    struct ws_server *server;
    struct loop_io wake_io; /* eventfd */
    pthread_mutex_t lock;
    struct pending *head;
    bool is_stopping;
};

struct main_ctx {
    struct loop *loop;
    struct loop_io listen_io;
    struct loop_io signal_io;
    struct worker *workers;
    size_t worker_count;
    size_t next_worker;
    const struct ws_config *cfg;
    struct ws_server_stats *stats;
};

static void log_stats(const struct ws_server_stats *st)
{
    fprintf(stderr,
            "litepush-ws: stats connections_open=%zu connections_total=%llu dropped_slow=%llu "
            "dropped_unresponsive=%llu refused_full=%llu frames_sent=%llu published=%llu "
            "last_id=%lld\n",
            atomic_load(&st->connections_open), atomic_load(&st->connections_total),
            atomic_load(&st->dropped_slow), atomic_load(&st->dropped_unresponsive),
            atomic_load(&st->refused_full), atomic_load(&st->frames_sent),
            atomic_load(&st->published), atomic_load(&st->last_id));
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
    struct pending *list = w->head;
    w->head = NULL;
    bool is_stopping = w->is_stopping;
    pthread_mutex_unlock(&w->lock);
    while (list != NULL) {
        struct pending *p = list;
        list = p->next;
        ws_server_adopt(w->server, p->fd);
        free(p);
    }
    if (is_stopping)
        loop_stop(w->loop);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    loop_run(w->loop);
    ws_server_free(w->server); /* close 1001 to every client */
    w->server = NULL;
    return NULL;
}

/* Creates worker i's loop, store and server on this thread; the worker
 * thread owns them from pthread_create on. */
static int worker_init(struct worker *w, const char *db, const struct ws_config *cfg,
                       struct ws_server_stats *stats, char *err, size_t err_cap)
{
    pthread_mutex_init(&w->lock, NULL);
    w->loop = loop_new();
    w->wake_io =
        (struct loop_io){.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), .on_ready = on_wake};
    if (w->loop == NULL || w->wake_io.fd < 0 || loop_io_add(w->loop, &w->wake_io, EPOLLIN) != 0) {
        snprintf(err, err_cap, "cannot set up an event loop: %s", strerror(errno));
        return -1;
    }
    w->store = store_open(db, err, err_cap);
    if (w->store == NULL)
        return -1;
    w->server = ws_server_new(w->loop, w->store, cfg, stats, err, err_cap);
    return w->server ? 0 : -1;
}

static void worker_wake(struct worker *w)
{
    uint64_t one = 1;
    if (write(w->wake_io.fd, &one, sizeof one) < 0 && errno != EAGAIN)
        fprintf(stderr, "litepush-ws: %s: eventfd: %s\n", __func__, strerror(errno));
}

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
    struct main_ctx *m = LOOP_CONTAINER(io, struct main_ctx, listen_io);
    for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(io->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                fprintf(stderr, "litepush-ws: %s: accept: %s\n", __func__, strerror(errno));
            return;
        }
        if (atomic_fetch_add(&m->stats->connections_open, 1) >= m->cfg->max_connections) {
            atomic_fetch_sub(&m->stats->connections_open, 1);
            m->stats->refused_full++;
            refuse_full(fd);
            continue;
        }
        /* Rows are small and must go out at once: no Nagle delay. */
        int one = 1;
        if (ss.ss_family != AF_UNIX)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct pending *p = malloc(sizeof *p);
        if (p == NULL) {
            atomic_fetch_sub(&m->stats->connections_open, 1);
            close(fd);
            continue;
        }
        *p = (struct pending){.fd = fd};
        struct worker *w = &m->workers[m->next_worker++ % m->worker_count];
        pthread_mutex_lock(&w->lock);
        p->next = w->head;
        w->head = p;
        pthread_mutex_unlock(&w->lock);
        worker_wake(w);
    }
}

static void stop_workers(struct main_ctx *m)
{
    for (size_t i = 0; i < m->worker_count; i++) {
        pthread_mutex_lock(&m->workers[i].lock);
        m->workers[i].is_stopping = true;
        pthread_mutex_unlock(&m->workers[i].lock);
        worker_wake(&m->workers[i]);
    }
    for (size_t i = 0; i < m->worker_count; i++)
        pthread_join(m->workers[i].thread, NULL);
}

static void on_signal(struct loop_io *io, uint32_t events)
{
    (void)events;
    struct main_ctx *m = LOOP_CONTAINER(io, struct main_ctx, signal_io);
    struct signalfd_siginfo si;
    while (read(io->fd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGUSR1) {
            log_stats(m->stats);
        } else {
            fprintf(stderr, "litepush-ws: signal %u: closing connections and exiting\n",
                    si.ssi_signo);
            loop_stop(m->loop);
        }
    }
}

int main(int argc, char **argv)
{
    const char *db = getenv("LITEPUSH_DB");
    const char *listen_spec = NULL;
    const char *origins[MAX_ORIGINS];
    long max_message = LIMITS_WS_MESSAGE_DEFAULT, ping_s = 25, max_conns = 18000,
         queue_bytes = LIMITS_QUEUE_BYTES_DEFAULT, threads = get_nprocs();
    struct ws_config cfg = {
        .is_deflate_enabled = true, .handshake_timeout_ms = 10000, .origins = origins};
    static const struct option opts[] = {{"db", required_argument, NULL, 'd'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"allow-publish", no_argument, NULL, 'p'},
                                         {"max-message", required_argument, NULL, 'm'},
                                         {"ping", required_argument, NULL, 'i'},
                                         {"max-connections", required_argument, NULL, 'c'},
                                         {"queue-bytes", required_argument, NULL, 'q'},
                                         {"origin", required_argument, NULL, 'o'},
                                         {"no-deflate", no_argument, NULL, 'n'},
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
        case 'p':
            cfg.is_publish_allowed = true;
            break;
        case 'm':
            bad = cli_number("litepush-ws", "--max-message", optarg, 125, 1L << 30, &max_message);
            break;
        case 'i':
            bad = cli_number("litepush-ws", "--ping", optarg, 1, 3600, &ping_s);
            break;
        case 'c':
            bad = cli_number("litepush-ws", "--max-connections", optarg, 1, 1000000, &max_conns);
            break;
        case 'q':
            bad = cli_number("litepush-ws", "--queue-bytes", optarg, 4096, 1L << 30, &queue_bytes);
            break;
        case 'o':
            if (cfg.origin_count == MAX_ORIGINS) {
                fprintf(stderr, "litepush-ws: at most %d --origin values\n", MAX_ORIGINS);
                bad = 1;
            } else {
                origins[cfg.origin_count++] = optarg;
            }
            break;
        case 'n':
            cfg.is_deflate_enabled = false;
            break;
        case 't':
            bad = cli_number("litepush-ws", "--threads", optarg, 1, MAX_THREADS, &threads);
            break;
        case 'h':
            fputs(USAGE, stdout);
            return 0;
        default:
            bad = 1;
        }
        if (bad) {
            fputs("Try 'litepush-ws --help'.\n", stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "litepush-ws: unexpected argument '%s'\nTry 'litepush-ws --help'.\n",
                argv[optind]);
        return 2;
    }
    if (db == NULL || db[0] == '\0' || listen_spec == NULL) {
        fputs("litepush-ws: give --db PATH (or LITEPUSH_DB) and --listen HOST:PORT\n"
              "Try 'litepush-ws --help'.\n",
              stderr);
        return 2;
    }
    cfg.max_message = (size_t)max_message;
    cfg.ping_ms = (unsigned)ping_s * 1000;
    cfg.max_connections = (size_t)max_conns;
    cfg.queue_cap = (size_t)queue_bytes;

    if (threads > MAX_THREADS)
        threads = MAX_THREADS;

    char err[512];
    static struct ws_server_stats stats;
    static struct worker workers[MAX_THREADS];
    struct main_ctx m = {
        .workers = workers, .worker_count = (size_t)threads, .cfg = &cfg, .stats = &stats};
    /* Signals are blocked before any thread starts, so only the signalfd
     * of the main thread sees them. */
    m.signal_io = (struct loop_io){.fd = cli_signalfd(), .on_ready = on_signal};
    /* The schema exists before the port opens. */
    for (size_t i = 0; i < m.worker_count; i++) {
        if (worker_init(&workers[i], db, &cfg, &stats, err, sizeof err) != 0) {
            fprintf(stderr, "litepush-ws: %s\n", err);
            return 1;
        }
    }
    int listen_fd = listen_open(listen_spec, LISTEN_BACKLOG, err, sizeof err);
    if (listen_fd < 0) {
        fprintf(stderr, "litepush-ws: %s\n", err);
        return 1;
    }
    listen_raise_fd_limit();
    m.loop = loop_new();
    m.listen_io = (struct loop_io){.fd = listen_fd, .on_ready = on_accept};
    int flags = fcntl(listen_fd, F_GETFL);
    if (m.loop == NULL || m.signal_io.fd < 0 ||
        fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
        loop_io_add(m.loop, &m.signal_io, EPOLLIN) != 0 ||
        loop_io_add(m.loop, &m.listen_io, EPOLLIN) != 0) {
        fprintf(stderr, "litepush-ws: cannot set up the event loop: %s\n", strerror(errno));
        return 1;
    }
    for (size_t i = 0; i < m.worker_count; i++) {
        if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
            fputs("litepush-ws: cannot start worker threads\n", stderr);
            return 1;
        }
    }
    fprintf(stderr, "litepush-ws: serving %s on %s with %zu threads%s\n", db, listen_spec,
            m.worker_count, cfg.is_publish_allowed ? " (publishing allowed)" : "");
    int rc = loop_run(m.loop);
    close(listen_fd); /* no new clients while the workers say goodbye */
    stop_workers(&m);
    log_stats(&stats);
    for (size_t i = 0; i < m.worker_count; i++) {
        store_close(workers[i].store);
        close(workers[i].wake_io.fd);
        loop_free(workers[i].loop);
    }
    loop_free(m.loop);
    return rc == 0 ? 0 : 1;
}
