/* litepush-ws: the WebSocket helper's main: argv and environment -> config,
 * then one event loop (ws_server) until SIGTERM or SIGINT. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "input_limits.h"
#include "cli.h"
#include "listen.h"
#include "loop.h"
#include "query.h"
#include "store.h"
#include "ws_server.h"

#define LISTEN_BACKLOG 4096
#define MAX_ORIGINS 32

static const char USAGE[] =
    "Usage: litepush-ws --db PATH --listen HOST:PORT [--allow-publish]\n"
    "                   [--max-message BYTES] [--ping SECONDS] [--max-connections N]\n"
    "                   [--queue-bytes N] [--origin ORIGIN]... [--no-deflate]\n"
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
    "  --help                this text\n"
    "\n"
    "SIGTERM or SIGINT close every connection with 1001 and exit; SIGUSR1 logs counters.\n";

struct main_ctx {
    struct loop *loop;
    struct ws_server *server;
    struct loop_io signal_io;
};

#define CONTAINER(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static void log_stats(struct ws_server *srv)
{
    struct ws_server_stats st;
    ws_server_get_stats(srv, &st);
    fprintf(stderr,
            "litepush-ws: stats connections_open=%zu connections_total=%llu dropped_slow=%llu "
            "dropped_unresponsive=%llu refused_full=%llu frames_sent=%llu published=%llu "
            "last_id=%lld\n",
            st.connections_open, (unsigned long long)st.connections_total,
            (unsigned long long)st.dropped_slow, (unsigned long long)st.dropped_unresponsive,
            (unsigned long long)st.refused_full, (unsigned long long)st.frames_sent,
            (unsigned long long)st.published, (long long)st.last_id);
}

static void on_signal(struct loop_io *io, uint32_t events)
{
    (void)events;
    struct main_ctx *m = CONTAINER(io, struct main_ctx, signal_io);
    struct signalfd_siginfo si;
    while (read(io->fd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGUSR1) {
            log_stats(m->server);
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
         queue_bytes = LIMITS_QUEUE_BYTES_DEFAULT;
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

    char err[512];
    /* The schema exists before the port opens. */
    struct store *store = store_open(db, err, sizeof err);
    if (store == NULL) {
        fprintf(stderr, "litepush-ws: %s\n", err);
        return 1;
    }
    int listen_fd = listen_open(listen_spec, LISTEN_BACKLOG, err, sizeof err);
    if (listen_fd < 0) {
        fprintf(stderr, "litepush-ws: %s\n", err);
        return 1;
    }
    listen_raise_fd_limit();
    struct main_ctx m = {0};
    m.loop = loop_new();
    m.signal_io.fd = cli_signalfd();
    m.signal_io.on_ready = on_signal;
    if (m.loop == NULL || m.signal_io.fd < 0 || loop_io_add(m.loop, &m.signal_io, EPOLLIN) != 0) {
        fprintf(stderr, "litepush-ws: cannot set up the event loop: %s\n", strerror(errno));
        return 1;
    }
    m.server = ws_server_new(m.loop, store, listen_fd, &cfg, err, sizeof err);
    if (m.server == NULL) {
        fprintf(stderr, "litepush-ws: %s\n", err);
        return 1;
    }
    fprintf(stderr, "litepush-ws: serving %s on %s%s\n", db, listen_spec,
            cfg.is_publish_allowed ? " (publishing allowed)" : "");
    int rc = loop_run(m.loop);
    log_stats(m.server);
    ws_server_free(m.server);
    store_close(store);
    loop_free(m.loop);
    return rc == 0 ? 0 : 1;
}
