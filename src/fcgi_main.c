/* litepush.fcgi: the SSE responder; the only file that calls libfcgi.
 *
 * Threads: a few accept threads run FCGX_Accept_r (safe from many threads
 * on one listener), read each request's parameters, answer bad requests
 * themselves, and hand good ones over to the main thread through a locked
 * list and an eventfd. The main thread runs the event loop that owns every
 * stream, the log watcher and the hub. Lock order: only handoff.lock exists.
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
#include <unistd.h>

#include "cli.h"
#include "listen.h"
#include "loop.h"
#include "query.h"
#include "responder.h"
#include "store.h"

#define ACCEPT_THREADS 4
#define LISTEN_BACKLOG 4096

static const char USAGE[] =
    "Usage: litepush.fcgi --db PATH [--listen HOST:PORT | --listen /path/to.sock]\n"
    "                     [--heartbeat SECONDS] [--retry MS] [--queue-bytes N]\n"
    "                     [--max-streams N]\n"
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
    "  --help             this text\n"
    "\n"
    "GET <any path ending in>/stats answers counters as text (e.g. /events/stats).\n"
    "SIGTERM or SIGINT end every stream cleanly and exit; SIGUSR1 logs counters.\n";

struct handoff_item {
    struct handoff_item *next;
    struct responder_request req;
    char scratch[]; /* decoded query; req.query points into it */
};

/* What the accept threads share with the loop, all under `lock`: the
 * requests handed over, and a copy of the counters for GET .../stats. */
struct handoff {
    pthread_mutex_t lock;
    struct handoff_item *head, *tail;
    int event_fd;
    struct responder_stats stats;
    atomic_size_t admitted; /* streams handed over and not yet freed */
    size_t max_streams;
    atomic_ullong refused_full;
};

struct accept_ctx {
    int listen_fd;
    struct handoff *handoff;
};

struct main_ctx {
    struct loop *loop;
    struct responder *responder;
    struct handoff *handoff;
    struct loop_io handoff_io;
    struct loop_io signal_io;
    struct loop_timer stats_timer;
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

static void reply_stats(FCGX_Request *req, struct handoff *h)
{
    pthread_mutex_lock(&h->lock);
    struct responder_stats st = h->stats;
    pthread_mutex_unlock(&h->lock);
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
static struct handoff_item *take_request(FCGX_Request *req, struct handoff *h)
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

static void *accept_thread(void *arg)
{
    struct accept_ctx *ctx = arg;
    FCGX_Request req;
    FCGX_InitRequest(&req, ctx->listen_fd, 0);
    for (;;) {
        if (FCGX_Accept_r(&req) < 0) {
            if (errno != EINTR)
                usleep(10000); /* EMFILE and friends: do not spin */
            continue;
        }
        struct handoff_item *item = take_request(&req, ctx->handoff);
        if (item == NULL)
            continue;
        struct handoff *h = ctx->handoff;
        pthread_mutex_lock(&h->lock);
        if (h->tail)
            h->tail->next = item;
        else
            h->head = item;
        h->tail = item;
        pthread_mutex_unlock(&h->lock);
        uint64_t one = 1;
        if (write(h->event_fd, &one, sizeof one) < 0 && errno != EAGAIN)
            fprintf(stderr, "litepush: %s: eventfd: %s\n", __func__, strerror(errno));
    }
    return NULL;
}

#define CONTAINER(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static void on_handoff(struct loop_io *io, uint32_t events)
{
    (void)events;
    struct main_ctx *m = CONTAINER(io, struct main_ctx, handoff_io);
    uint64_t count;
    if (read(io->fd, &count, sizeof count) < 0 && errno != EAGAIN)
        return;
    pthread_mutex_lock(&m->handoff->lock);
    struct handoff_item *list = m->handoff->head;
    m->handoff->head = m->handoff->tail = NULL;
    pthread_mutex_unlock(&m->handoff->lock);
    while (list != NULL) {
        struct handoff_item *item = list;
        list = item->next;
        responder_adopt(m->responder, &item->req);
        free(item);
    }
}

static void on_stats_timer(struct loop_timer *t)
{
    struct main_ctx *m = CONTAINER(t, struct main_ctx, stats_timer);
    struct responder_stats st;
    responder_get_stats(m->responder, &st);
    pthread_mutex_lock(&m->handoff->lock);
    m->handoff->stats = st;
    pthread_mutex_unlock(&m->handoff->lock);
    loop_timer_arm(m->loop, &m->stats_timer, 1000);
}

static void log_stats(struct responder *r)
{
    struct responder_stats st;
    responder_get_stats(r, &st);
    fprintf(stderr,
            "litepush: stats streams_open=%zu streams_total=%llu dropped_slow=%llu "
            "events_sent=%llu last_id=%lld\n",
            st.streams_open, (unsigned long long)st.streams_total,
            (unsigned long long)st.streams_dropped_slow, (unsigned long long)st.events_sent,
            (long long)st.last_id);
}

static void on_signal(struct loop_io *io, uint32_t events)
{
    (void)events;
    struct main_ctx *m = CONTAINER(io, struct main_ctx, signal_io);
    struct signalfd_siginfo si;
    while (read(io->fd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGUSR1) {
            log_stats(m->responder);
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
    long heartbeat_s = 15, retry_ms = 3000, queue_bytes = 1024 * 1024, max_streams = 18000;
    static const struct option opts[] = {{"db", required_argument, NULL, 'd'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"heartbeat", required_argument, NULL, 'b'},
                                         {"retry", required_argument, NULL, 'r'},
                                         {"queue-bytes", required_argument, NULL, 'q'},
                                         {"max-streams", required_argument, NULL, 'm'},
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

    char err[512];
    /* The schema exists before the port opens: a client never meets an
     * empty database. */
    struct store *store = store_open(db, err, sizeof err);
    if (store == NULL) {
        fprintf(stderr, "litepush.fcgi: %s\n", err);
        return 1;
    }
    int listen_fd = 0;
    if (listen_spec != NULL) {
        listen_fd = listen_open(listen_spec, LISTEN_BACKLOG, err, sizeof err);
        if (listen_fd < 0) {
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
     * (blocked here, so in the accept threads too) through a signalfd. */
    int signal_fd = cli_signalfd();

    static struct handoff handoff = {.lock = PTHREAD_MUTEX_INITIALIZER};
    handoff.max_streams = (size_t)max_streams;
    struct responder_config cfg = {.heartbeat_ms = (unsigned)heartbeat_s * 1000,
                                   .retry_ms = (unsigned)retry_ms,
                                   .queue_cap = (size_t)queue_bytes,
                                   .admitted = &handoff.admitted};
    struct main_ctx m = {.handoff = &handoff};
    m.loop = loop_new();
    handoff.event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    m.signal_io.fd = signal_fd;
    m.handoff_io = (struct loop_io){.fd = handoff.event_fd, .on_ready = on_handoff};
    m.signal_io.on_ready = on_signal;
    if (m.loop == NULL || handoff.event_fd < 0 || m.signal_io.fd < 0 ||
        loop_io_add(m.loop, &m.handoff_io, EPOLLIN) != 0 ||
        loop_io_add(m.loop, &m.signal_io, EPOLLIN) != 0) {
        fprintf(stderr, "litepush.fcgi: cannot set up the event loop: %s\n", strerror(errno));
        return 1;
    }
    m.responder = responder_new(m.loop, store, &cfg, err, sizeof err);
    if (m.responder == NULL) {
        fprintf(stderr, "litepush.fcgi: %s\n", err);
        return 1;
    }
    m.stats_timer.on_due = on_stats_timer;
    loop_timer_arm(m.loop, &m.stats_timer, 0);
    static struct accept_ctx actx;
    actx = (struct accept_ctx){.listen_fd = listen_fd, .handoff = &handoff};
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (int i = 0; i < ACCEPT_THREADS; i++) {
        pthread_t t;
        if (pthread_create(&t, &attr, accept_thread, &actx) != 0) {
            fputs("litepush.fcgi: cannot start accept threads\n", stderr);
            return 1;
        }
        pthread_detach(t);
    }
    fprintf(stderr, "litepush.fcgi: serving %s on %s (heartbeat %lds)\n", db,
            listen_spec ? listen_spec : "fd 0", heartbeat_s);
    int rc = loop_run(m.loop);
    log_stats(m.responder);
    responder_free(m.responder);
    store_close(store);
    /* The accept threads sit in accept(); ending the process ends them. */
    _exit(rc == 0 ? 0 : 1);
}
