/* lpbench: load generator for litepush and nchan.
 *
 * One process, one epoll loop. It opens N subscriber connections (SSE over
 * HTTP/1.1 or WebSocket), waits until every one is established, then runs
 * the phases given on the command line while a publisher in the same loop
 * INSERTs rows into the SQLite log (litepush) or POSTs to nchan's publisher
 * location. Every message carries "lpb:<seq>:<CLOCK_MONOTONIC ns>:" in its
 * data, so each delivery yields one latency sample and marks one bit in its
 * subscriber's bitmap (lost = expected bits left unset, duplicate = a bit
 * that was already set).
 *
 * Output: one line of key=value pairs per step on stdout, for bench/run.sh.
 *
 *   phases   idle:MS               hold the connections, sample memory
 *            lat:COUNT:GAP_MS      one message at a time, each published
 *                                  after the last reached every subscriber
 *            rate:COUNT:PER_S      open loop at a fixed rate
 *            flood:MS:WINDOW       closed loop: at most WINDOW messages not
 *                                  yet delivered to everyone, for MS
 *            soak:SECS:PER_S:CHURN:SAMPLE_S
 *                                  open loop at PER_S for SECS while CHURN
 *                                  subscribers a second hang up and come
 *                                  back resuming from the last id they saw
 *                                  (a subscriber the server closes comes
 *                                  back too); server memory sampled every
 *                                  SAMPLE_S. Needs --pub-sqlite (ids).
 *
 * Every wait is bounded (connect, drain and phase timeouts), and all traffic
 * goes to the addresses given, which run.sh keeps on 127.0.0.1. */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SUBS 100000
#define MAX_GROUPS 4
#define MAX_PHASES 16
#define MAX_FRAME (1u << 20) /* largest WS frame / SSE line we accept */
#define READ_BUF (256 * 1024)
#define READS_PER_WAKE 8             /* per connection and wake-up */
#define DRAIN_TIMEOUT_NS (10 * NS_S) /* wait after the last publish of a phase */
#define LAT_MSG_TIMEOUT_NS (2 * NS_S)
#define NS_S 1000000000LL
#define NS_MS 1000000LL

enum proto { PROTO_SSE, PROTO_WS };
enum sub_state { S_CONNECTING, S_HEADERS, S_OPEN, S_DEAD };
enum chunk_state { CH_SIZE, CH_EXT, CH_DATA, CH_DATA_END, CH_DONE };

struct sub {
    int fd;
    uint8_t state;
    uint8_t chunk_state;
    bool is_chunked;
    bool has_pending; /* SSE: a data line with a stamp waits for its blank line */
    uint32_t chan;
    uint64_t chunk_left;
    /* header bytes, a partial SSE line, or a partial WS frame payload */
    char *buf;
    uint32_t len, cap;
    /* WS frame header being assembled */
    uint8_t hdr[14];
    uint8_t hdr_len;
    uint8_t opcode;
    uint64_t payload_left;
    int64_t pending_seq;
    int64_t pending_t;
    int64_t t_start;
    uint8_t *seen; /* bit k = k-th message of this subscriber's channel */
    uint32_t seen_bytes;
    char accept[32]; /* expected Sec-WebSocket-Accept */
    int64_t last_id;    /* id of the last event dispatched: where a reconnect resumes */
    int64_t pending_id; /* SSE: the id line of the event being read */
};

struct group {
    const char *name;
    pid_t roots[8];
    int nroots;
};

struct sample {
    long rss_kb[MAX_GROUPS];
    long pss_kb[MAX_GROUPS]; /* shared pages split among their users */
    long nproc[MAX_GROUPS];
    double cpu_s[MAX_GROUPS];
};

/* log-linear latency histogram in microseconds, < 1 % bucket width */
#define H_SUB 128
#define H_BUCKETS (256 + 40 * H_SUB)
struct hist {
    uint64_t n;
    uint64_t max_us;
    uint64_t b[H_BUCKETS];
};

enum phase_kind { PH_IDLE, PH_LAT, PH_RATE, PH_FLOOD, PH_SOAK };
struct phase {
    enum phase_kind kind;
    long a, b; /* idle: ms; lat: count, gap_ms; rate: count, per_s; flood: ms, window */
    long c, d; /* soak: a secs, b per_s, c churn per second, d sample every d s */
};

struct pub {
    /* sqlite */
    sqlite3 *db;
    sqlite3_stmt *ins;
    /* http */
    int fd;
    char *out;
    size_t out_len, out_cap;
    char in[8192];
    size_t in_len;
    uint64_t responses, bad_responses;
    bool is_http;
    struct sockaddr_in addr;
    char path[256];
};

struct ctx {
    enum proto proto;
    struct sockaddr_in target;
    const char *path_prefix;
    const char *chan_prefix;
    int nsubs, nchans, max_inflight;
    int msg_size;
    int64_t connect_timeout_ns;
    int settle_ms;
    struct sub *subs;
    uint32_t *subs_per_chan;
    int ep;
    struct pub pub;
    struct group groups[MAX_GROUPS];
    int ngroups;
    struct phase phases[MAX_PHASES];
    int nphases;
    /* message accounting, indexed by seq */
    int64_t seq_next;
    uint32_t *recv_count;
    size_t recv_cap;
    /* current phase */
    int64_t phase_seq0;
    uint64_t phase_expected, phase_received, dup, late, bad, closed, ws_pings;
    int64_t phase_first_pub, phase_last_recv;
    int64_t pub_ns; /* time spent inside publish calls this phase */
    uint64_t pub_count;
    struct hist hist;
    struct sample baseline; /* servers before the first connect */
    char *rbuf;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_S + ts.tv_nsec;
}

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "lpbench: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL && n != 0)
        die("%s", "out of memory");
    return q;
}

/* ---- histogram ---------------------------------------------------------- */

static unsigned hist_bucket(uint64_t us)
{
    if (us < 256)
        return (unsigned)us;
    int e = 63 - __builtin_clzll(us); /* >= 8 */
    unsigned sub = (unsigned)(us >> (e - 7)) & (H_SUB - 1);
    unsigned b = 256 + (unsigned)(e - 8) * H_SUB + sub;
    return b < H_BUCKETS ? b : H_BUCKETS - 1;
}

static double hist_value(unsigned b)
{
    if (b < 256)
        return b + 0.5;
    unsigned e = (b - 256) / H_SUB + 8, sub = (b - 256) % H_SUB;
    double lo = (double)((uint64_t)(H_SUB + sub) << (e - 7));
    return lo + (double)(1ull << (e - 7)) / 2;
}

static void hist_add(struct hist *h, uint64_t us)
{
    h->b[hist_bucket(us)]++;
    h->n++;
    if (us > h->max_us)
        h->max_us = us;
}

static double hist_pct_ms(const struct hist *h, double p)
{
    if (h->n == 0)
        return -1;
    uint64_t want = (uint64_t)(p * (double)h->n);
    if (want >= h->n)
        want = h->n - 1;
    uint64_t acc = 0;
    for (unsigned b = 0; b < H_BUCKETS; b++) {
        acc += h->b[b];
        if (acc > want) {
            double v = hist_value(b);
            if (v > (double)h->max_us)
                v = (double)h->max_us;
            return v / 1000.0;
        }
    }
    return (double)h->max_us / 1000.0;
}

/* ---- /proc sampling ------------------------------------------------------ */

static bool read_stat(pid_t pid, pid_t *ppid, double *cpu_s)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return false;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
     */
    char st;
    int pp;
    unsigned long ut, stt;
    if (sscanf(p + 2, "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &st, &pp, &ut, &stt) !=
        4)
        return false;
    *ppid = pp;
    *cpu_s = (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
    return true;
}

/* One "Name:   N kB" field of a /proc/PID file. */
static long read_kb(pid_t pid, const char *file, const char *field)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strstr(buf, field);
    return p ? strtol(p + strlen(field), NULL, 10) : 0;
}

/* Sums RSS and CPU over each group's roots and all their descendants. */
static void sample_groups(const struct ctx *c, struct sample *s)
{
    memset(s, 0, sizeof *s);
    if (c->ngroups == 0)
        return;
    enum { MAXP = 65536 };
    static pid_t pids[MAXP], ppids[MAXP];
    static double cpu[MAXP];
    int np = 0;
    DIR *d = opendir("/proc");
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && np < MAXP) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        pid_t pid = (pid_t)atoi(e->d_name);
        if (read_stat(pid, &ppids[np], &cpu[np]))
            pids[np++] = pid;
    }
    closedir(d);
    for (int gi = 0; gi < c->ngroups; gi++) {
        const struct group *g = &c->groups[gi];
        for (int i = 0; i < np; i++) {
            /* walk up the parent chain (bounded) looking for one of the roots */
            pid_t p = pids[i];
            bool hit = false;
            for (int depth = 0; depth < 8 && p > 1 && !hit; depth++) {
                for (int r = 0; r < g->nroots; r++)
                    hit |= p == g->roots[r];
                pid_t next = 0;
                for (int j = 0; j < np && !hit; j++)
                    if (pids[j] == p) {
                        next = ppids[j];
                        break;
                    }
                p = next;
            }
            if (hit) {
                s->rss_kb[gi] += read_kb(pids[i], "status", "VmRSS:");
                s->pss_kb[gi] += read_kb(pids[i], "smaps_rollup", "\nPss:");
                s->cpu_s[gi] += cpu[i];
                s->nproc[gi]++;
            }
        }
    }
}

static void print_sample(const struct ctx *c, const char *tag, const struct sample *s)
{
    for (int gi = 0; gi < c->ngroups; gi++) {
        const char *g = c->groups[gi].name;
        printf(" rss_%s_%s_kb=%ld pss_%s_%s_kb=%ld nproc_%s_%s=%ld cpu_%s_%s_s=%.2f", g, tag,
               s->rss_kb[gi], g, tag, s->pss_kb[gi], g, tag, s->nproc[gi], g, tag, s->cpu_s[gi]);
    }
}

/* ---- accounting ----------------------------------------------------------- */

static void ensure_seq(struct ctx *c, int64_t seq)
{
    if ((size_t)seq < c->recv_cap)
        return;
    size_t n = c->recv_cap ? c->recv_cap : 1024;
    while (n <= (size_t)seq)
        n *= 2;
    c->recv_count = xrealloc(c->recv_count, n * sizeof *c->recv_count);
    memset(c->recv_count + c->recv_cap, 0, (n - c->recv_cap) * sizeof *c->recv_count);
    c->recv_cap = n;
}

static void deliver(struct ctx *c, struct sub *s, int64_t seq, int64_t t_pub, int64_t now)
{
    if (seq < 0 || seq >= c->seq_next || (uint64_t)seq % (uint64_t)c->nchans != s->chan) {
        c->bad++;
        return;
    }
    uint64_t k = (uint64_t)seq / (uint64_t)c->nchans;
    if (k / 8 >= s->seen_bytes) {
        uint32_t n = s->seen_bytes ? s->seen_bytes : 8;
        while (n <= k / 8)
            n *= 2;
        s->seen = xrealloc(s->seen, n);
        memset(s->seen + s->seen_bytes, 0, n - s->seen_bytes);
        s->seen_bytes = n;
    }
    uint8_t bit = (uint8_t)(1u << (k % 8));
    if (s->seen[k / 8] & bit) {
        c->dup++;
        return;
    }
    s->seen[k / 8] |= bit;
    c->recv_count[seq]++;
    if (seq < c->phase_seq0) {
        c->late++;
        return;
    }
    c->phase_received++;
    c->phase_last_recv = now;
    int64_t d = now - t_pub;
    hist_add(&c->hist, d > 0 ? (uint64_t)d / 1000 : 0);
}

/* Finds "lpb:<seq>:<ns>:" in a message body. */
static bool parse_stamp(const char *p, size_t n, int64_t *seq, int64_t *t)
{
    const char *m = memmem(p, n, "lpb:", 4);
    if (m == NULL)
        return false;
    const char *end = p + n;
    m += 4;
    int64_t a = 0, b = 0;
    int digits = 0;
    while (m < end && *m >= '0' && *m <= '9' && digits < 19)
        a = a * 10 + (*m++ - '0'), digits++;
    if (digits == 0 || m >= end || *m != ':')
        return false;
    m++;
    digits = 0;
    while (m < end && *m >= '0' && *m <= '9' && digits < 19)
        b = b * 10 + (*m++ - '0'), digits++;
    if (digits == 0)
        return false;
    *seq = a;
    *t = b;
    return true;
}

/* ---- connections ---------------------------------------------------------- */

static int ready_count, failed_count, open_count;
static struct hist connect_hist;

/* Appends to the connection's buffer; false when the unit would pass MAX_FRAME. */
static bool buf_append(struct sub *s, const char *p, size_t n)
{
    if (s->len + n > MAX_FRAME)
        return false;
    if (s->len + n > s->cap) {
        uint32_t cap = s->cap ? s->cap : 256;
        while (cap < s->len + n)
            cap *= 2;
        s->buf = xrealloc(s->buf, cap);
        s->cap = cap;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += (uint32_t)n;
    return true;
}

static void buf_reset(struct sub *s)
{
    s->len = 0;
    if (s->cap > 4096) {
        free(s->buf);
        s->buf = NULL;
        s->cap = 0;
    }
}

static void sub_kill(struct ctx *c, struct sub *s, bool count)
{
    if (s->fd >= 0) {
        struct linger lg = {1, 0}; /* RST: no TIME_WAIT pile-up between runs */
        setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        epoll_ctl(c->ep, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
        s->fd = -1;
    }
    if (s->state == S_OPEN)
        open_count--;
    if (count && s->state != S_DEAD)
        c->closed++;
    s->state = S_DEAD;
    free(s->buf);
    s->buf = NULL;
    s->len = s->cap = 0;
}

static void channel_name(const struct ctx *c, uint32_t chan, char *out, size_t cap)
{
    snprintf(out, cap, "%s%u", c->chan_prefix, chan);
}

static void ws_key(struct sub *s, char *key_out /* 25 bytes */)
{
    unsigned char raw[16];
    if (getrandom(raw, sizeof raw, 0) != sizeof raw)
        for (size_t i = 0; i < sizeof raw; i++)
            raw[i] = (unsigned char)rand();
    EVP_EncodeBlock((unsigned char *)key_out, raw, sizeof raw);
    char cat[64 + 36];
    int n = snprintf(cat, sizeof cat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key_out);
    unsigned char dig[SHA_DIGEST_LENGTH];
    SHA1((unsigned char *)cat, (size_t)n, dig);
    EVP_EncodeBlock((unsigned char *)s->accept, dig, sizeof dig);
}

static int sub_start(struct ctx *c, struct sub *s)
{
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        return -1;
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->t_start = now_ns();
    s->state = S_CONNECTING;
    /* a reconnect starts every parser afresh (the seen bitmap and last_id stay) */
    s->chunk_state = CH_SIZE;
    s->chunk_left = 0;
    s->is_chunked = s->has_pending = false;
    s->hdr_len = 0;
    s->payload_left = 0;
    s->pending_id = 0;
    if (connect(s->fd, (struct sockaddr *)&c->target, sizeof c->target) != 0 &&
        errno != EINPROGRESS) {
        close(s->fd);
        s->fd = -1;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = s};
    if (epoll_ctl(c->ep, EPOLL_CTL_ADD, s->fd, &ev) != 0) {
        close(s->fd);
        s->fd = -1;
        return -1;
    }
    return 0;
}

/* Sends the request once the TCP connection is up. */
static int sub_send_request(struct ctx *c, struct sub *s)
{
    char chan[200], req[1024];
    channel_name(c, s->chan, chan, sizeof chan);
    if (s->last_id > 0) { /* a reconnect resumes where it left off */
        size_t l = strlen(chan);
        snprintf(chan + l, sizeof chan - l, "&lastEventId=%" PRId64, s->last_id);
    }
    int n;
    if (c->proto == PROTO_SSE) {
        n = snprintf(req, sizeof req,
                     "GET %s%s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                     "Cache-Control: no-cache\r\nUser-Agent: lpbench\r\n\r\n",
                     c->path_prefix, chan);
    } else {
        char key[32];
        ws_key(s, key);
        n = snprintf(req, sizeof req,
                     "GET %s%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\nUser-Agent: lpbench\r\n\r\n",
                     c->path_prefix, chan, key);
    }
    if (n <= 0 || (size_t)n >= sizeof req)
        return -1;
    /* A fresh loopback socket takes a 1 KB request whole. */
    if (write(s->fd, req, (size_t)n) != n)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
    if (epoll_ctl(c->ep, EPOLL_CTL_MOD, s->fd, &ev) != 0)
        return -1;
    s->state = S_HEADERS;
    return 0;
}

static const char *find_header(const char *head, size_t len, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = head; p + nl < head + len; p++) {
        if (p[-1] == '\n' && strncasecmp(p, name, nl) == 0)
            return p + nl;
    }
    return NULL;
}

/* ---- SSE ----------------------------------------------------------------- */

static void sse_line(struct ctx *c, struct sub *s, const char *p, size_t n, int64_t now)
{
    if (n > 0 && p[n - 1] == '\r')
        n--;
    if (n == 0) { /* blank line: dispatch the event (WHATWG SSE) */
        if (s->pending_id > 0)
            s->last_id = s->pending_id;
        s->pending_id = 0;
        if (s->has_pending)
            deliver(c, s, s->pending_seq, s->pending_t, now);
        s->has_pending = false;
        return;
    }
    if (n > 4 && memcmp(p, "id: ", 4) == 0) {
        int64_t id = 0;
        for (size_t i = 4; i < n && i < 24 && p[i] >= '0' && p[i] <= '9'; i++)
            id = id * 10 + (p[i] - '0');
        s->pending_id = id;
        return;
    }
    if (n >= 5 && memcmp(p, "data:", 5) == 0) {
        int64_t seq, t;
        if (parse_stamp(p, n, &seq, &t)) {
            s->has_pending = true;
            s->pending_seq = seq;
            s->pending_t = t;
        }
    }
}

/* Event-stream bytes (after de-chunking): split into lines. */
static void sse_feed(struct ctx *c, struct sub *s, const char *p, size_t n, int64_t now)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        if (nl == NULL) {
            if (!buf_append(s, p, n))
                sub_kill(c, s, true);
            return;
        }
        size_t ln = (size_t)(nl - p);
        if (s->len > 0) {
            if (!buf_append(s, p, ln)) {
                sub_kill(c, s, true);
                return;
            }
            sse_line(c, s, s->buf, s->len, now);
            buf_reset(s);
        } else {
            sse_line(c, s, p, ln, now);
        }
        p = nl + 1;
        n -= ln + 1;
    }
}

static void sse_body(struct ctx *c, struct sub *s, const char *p, size_t n, int64_t now)
{
    if (!s->is_chunked) {
        sse_feed(c, s, p, n, now);
        return;
    }
    while (n > 0 && s->state == S_OPEN) {
        switch (s->chunk_state) {
        case CH_SIZE: {
            char ch = *p++;
            n--;
            if (isxdigit((unsigned char)ch)) {
                s->chunk_left =
                    s->chunk_left * 16 +
                    (uint64_t)(isdigit((unsigned char)ch) ? ch - '0' : (tolower(ch) - 'a' + 10));
            } else if (ch == ';' || ch == '\r') {
                s->chunk_state = CH_EXT;
            } else if (ch == '\n') {
                s->chunk_state = s->chunk_left ? CH_DATA : CH_DONE;
            } else {
                sub_kill(c, s, true);
            }
            break;
        }
        case CH_EXT: {
            char ch = *p++;
            n--;
            if (ch == '\n')
                s->chunk_state = s->chunk_left ? CH_DATA : CH_DONE;
            break;
        }
        case CH_DATA: {
            size_t take = n < s->chunk_left ? n : (size_t)s->chunk_left;
            sse_feed(c, s, p, take, now);
            p += take;
            n -= take;
            s->chunk_left -= take;
            if (s->chunk_left == 0)
                s->chunk_state = CH_DATA_END;
            break;
        }
        case CH_DATA_END: {
            char ch = *p++;
            n--;
            if (ch == '\n')
                s->chunk_state = CH_SIZE;
            break;
        }
        case CH_DONE: /* the server ended the stream */
            sub_kill(c, s, true);
            return;
        }
    }
    if (s->state == S_OPEN && s->chunk_state == CH_DONE)
        sub_kill(c, s, true);
}

/* ---- WebSocket ------------------------------------------------------------- */

static void ws_send_control(struct sub *s, uint8_t opcode, const uint8_t *payload, size_t n)
{
    uint8_t f[6 + 125];
    uint8_t mask[4];
    if (n > 125)
        n = 125;
    if (getrandom(mask, 4, 0) != 4)
        memset(mask, 0x5a, 4);
    f[0] = (uint8_t)(0x80 | opcode);
    f[1] = (uint8_t)(0x80 | n); /* RFC 6455 §5.3: a client masks every frame */
    memcpy(f + 2, mask, 4);
    for (size_t i = 0; i < n; i++)
        f[6 + i] = payload[i] ^ mask[i % 4];
    /* best effort: a control frame of at most 131 bytes on a drained socket */
    ssize_t w = write(s->fd, f, 6 + n);
    (void)w;
}

static void ws_frame_done(struct ctx *c, struct sub *s, int64_t now)
{
    switch (s->opcode) {
    case 0x0:
    case 0x1:
    case 0x2: {
        int64_t seq, t;
        if (s->len > 6 && memcmp(s->buf, "{\"id\":", 6) == 0) { /* litepush's row object */
            int64_t id = 0;
            for (uint32_t i = 6; i < s->len && i < 26 && s->buf[i] >= '0' && s->buf[i] <= '9'; i++)
                id = id * 10 + (s->buf[i] - '0');
            if (id > 0)
                s->last_id = id;
        }
        if (parse_stamp(s->buf, s->len, &seq, &t))
            deliver(c, s, seq, t, now);
        break;
    }
    case 0x8:
        sub_kill(c, s, true);
        return;
    case 0x9:
        c->ws_pings++;
        ws_send_control(s, 0xA, (const uint8_t *)s->buf, s->len);
        break;
    default:
        break;
    }
    buf_reset(s);
}

static void ws_body(struct ctx *c, struct sub *s, const char *p, size_t n, int64_t now)
{
    while (n > 0 && s->state == S_OPEN) {
        if (s->payload_left == 0) { /* assembling a frame header, byte by byte */
            s->hdr[s->hdr_len++] = (uint8_t)*p++;
            n--;
            size_t need = 2;
            uint8_t l7 = s->hdr_len >= 2 ? s->hdr[1] & 0x7f : 0;
            if (s->hdr_len >= 2) {
                need += l7 == 126 ? 2 : l7 == 127 ? 8 : 0;
                need += (s->hdr[1] & 0x80) ? 4 : 0;
            }
            if (s->hdr_len < need)
                continue;
            uint64_t len = l7;
            if (l7 == 126)
                len = (uint64_t)s->hdr[2] << 8 | s->hdr[3];
            else if (l7 == 127) {
                len = 0;
                for (int i = 0; i < 8; i++)
                    len = len << 8 | s->hdr[2 + i];
            }
            if (len > MAX_FRAME || (s->hdr[1] & 0x80)) { /* servers never mask (§5.1) */
                sub_kill(c, s, true);
                return;
            }
            s->opcode = s->hdr[0] & 0x0f;
            s->hdr_len = 0;
            buf_reset(s);
            s->payload_left = len;
            if (len == 0)
                ws_frame_done(c, s, now);
            continue;
        }
        size_t take = n < s->payload_left ? n : (size_t)s->payload_left;
        if (!buf_append(s, p, take)) {
            sub_kill(c, s, true);
            return;
        }
        p += take;
        n -= take;
        s->payload_left -= take;
        if (s->payload_left == 0)
            ws_frame_done(c, s, now);
    }
}

/* ---- reading --------------------------------------------------------------- */

static void on_headers(struct ctx *c, struct sub *s, const char *p, size_t n, int64_t now)
{
    if (!buf_append(s, p, n) || s->len > 16384) {
        sub_kill(c, s, false);
        failed_count++;
        return;
    }
    char *end = memmem(s->buf, s->len, "\r\n\r\n", 4);
    if (end == NULL)
        return;
    size_t head_len = (size_t)(end - s->buf) + 4;
    int status = 0;
    if (s->len > 12 && memcmp(s->buf, "HTTP/1.", 7) == 0)
        status = atoi(s->buf + 9);
    bool ok;
    if (c->proto == PROTO_SSE) {
        ok = status == 200;
        const char *te = find_header(s->buf, head_len, "transfer-encoding:");
        s->is_chunked = te != NULL && strncasecmp(te + strspn(te, " \t"), "chunked", 7) == 0;
    } else {
        const char *acc = find_header(s->buf, head_len, "sec-websocket-accept:");
        ok = status == 101 && acc != NULL &&
             strncmp(acc + strspn(acc, " \t"), s->accept, strlen(s->accept)) == 0;
    }
    if (!ok) {
        if (failed_count < 5)
            fprintf(stderr, "lpbench: subscriber refused: %.*s\n", (int)(strcspn(s->buf, "\r\n")),
                    s->buf);
        sub_kill(c, s, false);
        failed_count++;
        return;
    }
    s->state = S_OPEN;
    ready_count++;
    open_count++;
    int64_t dt = now - s->t_start;
    hist_add(&connect_hist, (uint64_t)(dt > 0 ? dt : 0) / 1000);
    /* the rest of the buffer is body: detach it, as the parsers reuse s->buf */
    char *head = s->buf;
    size_t rest = s->len - head_len;
    s->buf = NULL;
    s->len = s->cap = 0;
    if (rest > 0) {
        if (c->proto == PROTO_SSE)
            sse_body(c, s, head + head_len, rest, now);
        else
            ws_body(c, s, head + head_len, rest, now);
    }
    free(head);
}

static void on_sub_event(struct ctx *c, struct sub *s, uint32_t events)
{
    if (s->state == S_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err != 0 || (events & (EPOLLERR | EPOLLHUP)) || sub_send_request(c, s) != 0) {
            if (failed_count < 5)
                fprintf(stderr, "lpbench: connect: %s\n", strerror(err ? err : ECONNRESET));
            sub_kill(c, s, false);
            failed_count++;
        }
        return;
    }
    for (int i = 0; i < READS_PER_WAKE && s->state != S_DEAD; i++) {
        ssize_t n = read(s->fd, c->rbuf, READ_BUF);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            if (s->state == S_HEADERS)
                failed_count++;
            sub_kill(c, s, true);
            return;
        }
        int64_t now = now_ns();
        if (s->state == S_HEADERS)
            on_headers(c, s, c->rbuf, (size_t)n, now);
        else if (c->proto == PROTO_SSE)
            sse_body(c, s, c->rbuf, (size_t)n, now);
        else
            ws_body(c, s, c->rbuf, (size_t)n, now);
        if (n < READ_BUF)
            return;
    }
}

/* ---- publisher ------------------------------------------------------------- */

static void pub_open_sqlite(struct pub *p, const char *path)
{
    if (sqlite3_open_v2(path, &p->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        die("cannot open %s", path);
    sqlite3_busy_timeout(p->db, 5000);
    /* WAL (the log's mode) and no fsync per commit: the publisher measures
     * fan-out, not the disk. */
    if (sqlite3_exec(p->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL,
                     NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(p->db, "INSERT INTO messages(channel, data) VALUES(?1, ?2)", -1, &p->ins,
                           NULL) != SQLITE_OK)
        die("sqlite: %s", sqlite3_errmsg(p->db));
}

static void pub_flush_http(struct ctx *c)
{
    struct pub *p = &c->pub;
    while (p->out_len > 0) {
        ssize_t w = write(p->fd, p->out, p->out_len);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            die("publisher write: %s", strerror(errno));
        }
        memmove(p->out, p->out + w, p->out_len - (size_t)w);
        p->out_len -= (size_t)w;
    }
    struct epoll_event ev = {.events = EPOLLIN | (p->out_len ? EPOLLOUT : 0), .data.ptr = NULL};
    epoll_ctl(c->ep, EPOLL_CTL_MOD, p->fd, &ev);
}

static void pub_open_http(struct ctx *c)
{
    struct pub *p = &c->pub;
    p->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->fd < 0 || connect(p->fd, (struct sockaddr *)&p->addr, sizeof p->addr) != 0)
        die("publisher connect: %s", strerror(errno));
    int one = 1;
    setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(p->fd, F_SETFL, fcntl(p->fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(c->ep, EPOLL_CTL_ADD, p->fd, &ev);
}

/* Parses pipelined publisher responses: status line, Content-Length body. */
static void pub_read_http(struct ctx *c)
{
    struct pub *p = &c->pub;
    for (;;) {
        ssize_t n = read(p->fd, p->in + p->in_len, sizeof p->in - p->in_len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (n <= 0)
            die("%s", "publisher connection closed by the server");
        p->in_len += (size_t)n;
        for (;;) {
            char *end = memmem(p->in, p->in_len, "\r\n\r\n", 4);
            if (end == NULL)
                break;
            size_t head = (size_t)(end - p->in) + 4;
            const char *cl = find_header(p->in, head, "content-length:");
            size_t body = cl ? (size_t)strtoul(cl, NULL, 10) : 0;
            if (head + body > sizeof p->in)
                die("%s", "publisher response too large");
            if (p->in_len < head + body)
                break;
            int status = atoi(p->in + 9);
            p->responses++;
            if (status < 200 || status > 299) {
                if (p->bad_responses++ < 3)
                    fprintf(stderr, "lpbench: publish answered %d\n", status);
            }
            memmove(p->in, p->in + head + body, p->in_len - head - body);
            p->in_len -= head + body;
        }
        if (p->in_len == sizeof p->in)
            die("%s", "publisher response head too large");
    }
}

static void publish(struct ctx *c)
{
    int64_t seq = c->seq_next++;
    ensure_seq(c, seq);
    uint32_t chan = (uint32_t)(seq % c->nchans);
    char name[160], data[4096];
    channel_name(c, chan, name, sizeof name);
    int64_t t = now_ns();
    int n = snprintf(data, sizeof data, "lpb:%" PRId64 ":%" PRId64 ":", seq, t);
    while (n < c->msg_size && n < (int)sizeof data - 1)
        data[n++] = 'x';
    data[n] = '\0';
    if (c->phase_first_pub == 0)
        c->phase_first_pub = t;
    c->phase_expected += c->subs_per_chan[chan];
    c->pub_count++;
    if (!c->pub.is_http) {
        sqlite3_bind_text(c->pub.ins, 1, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(c->pub.ins, 2, data, n, SQLITE_TRANSIENT);
        if (sqlite3_step(c->pub.ins) != SQLITE_DONE)
            die("insert: %s", sqlite3_errmsg(c->pub.db));
        sqlite3_reset(c->pub.ins);
        c->pub_ns += now_ns() - t;
        return;
    }
    struct pub *p = &c->pub;
    char req[4096 + 512];
    int rn = snprintf(req, sizeof req,
                      "POST %s%s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                      "Content-Length: %d\r\n\r\n%s",
                      p->path, name, n, data);
    if (p->out_len + (size_t)rn > p->out_cap) {
        p->out_cap = (p->out_len + (size_t)rn) * 2;
        p->out = xrealloc(p->out, p->out_cap);
    }
    memcpy(p->out + p->out_len, req, (size_t)rn);
    p->out_len += (size_t)rn;
    pub_flush_http(c);
    c->pub_ns += now_ns() - t;
}

/* ---- the loop -------------------------------------------------------------- */

/* One epoll_wait and its handlers; timeout_ms 0 only takes what is ready. */
static void poll_once(struct ctx *c, int timeout_ms)
{
    struct epoll_event evs[512];
    int n = epoll_wait(c->ep, evs, 512, timeout_ms);
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == NULL) {
            if (evs[i].events & EPOLLIN)
                pub_read_http(c);
            if (evs[i].events & EPOLLOUT)
                pub_flush_http(c);
            continue;
        }
        on_sub_event(c, evs[i].data.ptr, evs[i].events);
    }
}

/* Runs the loop until deadline_ns or until done(c) says stop. */
static void run_until(struct ctx *c, int64_t deadline_ns, bool (*done)(struct ctx *), int tick_ms)
{
    for (;;) {
        int64_t now = now_ns();
        if (now >= deadline_ns || (done && done(c)))
            return;
        int64_t left_ms = (deadline_ns - now + NS_MS - 1) / NS_MS;
        poll_once(c, (int)(left_ms < tick_ms ? left_ms : tick_ms));
    }
}

static void connect_all(struct ctx *c)
{
    int64_t t0 = now_ns(), deadline = t0 + c->connect_timeout_ns;
    int started = 0;
    while (now_ns() < deadline && ready_count + failed_count < c->nsubs) {
        while (started < c->nsubs && started - ready_count - failed_count < c->max_inflight) {
            if (sub_start(c, &c->subs[started]) != 0) {
                if (failed_count < 5)
                    fprintf(stderr, "lpbench: socket/connect: %s\n", strerror(errno));
                failed_count++;
            }
            started++;
        }
        poll_once(c, 50);
    }
    int64_t t1 = now_ns();
    printf("step=connect subs=%d ready=%d failed=%d connect_s=%.3f conn_p50_ms=%.2f "
           "conn_p99_ms=%.2f conn_max_ms=%.2f\n",
           c->nsubs, ready_count, c->nsubs - ready_count, (double)(t1 - t0) / 1e9,
           hist_pct_ms(&connect_hist, 0.5), hist_pct_ms(&connect_hist, 0.99),
           (double)connect_hist.max_us / 1000);
    fflush(stdout);
}

static bool phase_drained(struct ctx *c)
{
    return c->phase_received >= c->phase_expected;
}

static int64_t lat_wait_seq;
static bool lat_msg_done(struct ctx *c)
{
    return c->recv_count[lat_wait_seq] >= c->subs_per_chan[lat_wait_seq % c->nchans];
}

static void phase_begin(struct ctx *c)
{
    c->phase_seq0 = c->seq_next;
    c->phase_expected = c->phase_received = 0;
    c->dup = c->bad = c->late = c->closed = 0;
    c->phase_first_pub = c->phase_last_recv = 0;
    c->pub_ns = 0;
    c->pub_count = 0;
    memset(&c->hist, 0, sizeof c->hist);
}

static void phase_report(struct ctx *c, const char *name, int64_t t0, const struct sample *before,
                         const struct sample *after, long msgs)
{
    int64_t t1 = now_ns();
    double secs = (double)(t1 - t0) / 1e9;
    double span = c->phase_last_recv > c->phase_first_pub
                      ? (double)(c->phase_last_recv - c->phase_first_pub) / 1e9
                      : 0;
    uint64_t lost =
        c->phase_expected > c->phase_received ? c->phase_expected - c->phase_received : 0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("step=%s subs=%d open=%d channels=%d msgs=%ld expected=%" PRIu64 " delivered=%" PRIu64
           " lost=%" PRIu64 " dup=%" PRIu64 " bad=%" PRIu64 " late=%" PRIu64 " closed=%" PRIu64
           " secs=%.3f dps=%.0f msgps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f",
           name, c->nsubs, open_count, c->nchans, msgs, c->phase_expected, c->phase_received, lost,
           c->dup, c->bad, c->late, c->closed, secs,
           span > 0 ? (double)c->phase_received / span : 0, span > 0 ? (double)msgs / span : 0,
           hist_pct_ms(&c->hist, 0.5), hist_pct_ms(&c->hist, 0.9), hist_pct_ms(&c->hist, 0.99),
           (double)c->hist.max_us / 1000);
    for (int gi = 0; gi < c->ngroups; gi++)
        printf(" cpu_%s_s=%.2f rss_%s_kb=%ld", c->groups[gi].name,
               after->cpu_s[gi] - before->cpu_s[gi], c->groups[gi].name, after->rss_kb[gi]);
    printf(" pub_avg_us=%.1f", c->pub_count ? (double)c->pub_ns / 1e3 / (double)c->pub_count : 0);
    printf(" min_ms=%.3f", c->hist.n ? hist_pct_ms(&c->hist, 0) : -1);
    printf(" ws_pings=%" PRIu64, c->ws_pings);
    printf(" cpu_gen_s=%.2f", (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                                  (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    if (c->pub.is_http)
        printf(" pub_responses=%" PRIu64 " pub_errors=%" PRIu64, c->pub.responses,
               c->pub.bad_responses);
    printf("\n");
    fflush(stdout);
}

/* Server memory growth since the baseline, per open subscriber. */
static void print_mem_per_sub(const struct ctx *c, const struct sample *now)
{
    double n = open_count > 0 ? open_count : 1;
    for (int gi = 0; gi < c->ngroups; gi++)
        printf(" mem_%s_per_sub_b=%.0f pss_%s_per_sub_b=%.0f", c->groups[gi].name,
               (double)(now->rss_kb[gi] - c->baseline.rss_kb[gi]) * 1024.0 / n, c->groups[gi].name,
               (double)(now->pss_kb[gi] - c->baseline.pss_kb[gi]) * 1024.0 / n);
}

/* ---- soak ----------------------------------------------------------------- */

static uint64_t soak_reconnects, soak_churned;

/* Restarts every subscriber that is down (churned, or closed by the server). */
static void soak_revive(struct ctx *c)
{
    for (int i = 0; i < c->nsubs; i++) {
        struct sub *s = &c->subs[i];
        if (s->state != S_DEAD)
            continue;
        if (sub_start(c, s) != 0) {
            s->state = S_DEAD;
            continue;
        }
        soak_reconnects++;
    }
}

/* Hangs up on n open subscribers picked at random; soak_revive brings them back. */
static void soak_churn(struct ctx *c, long n)
{
    for (long k = 0; k < n && open_count > 0; k++) {
        struct sub *s = &c->subs[(size_t)rand() % (size_t)c->nsubs];
        if (s->state == S_OPEN) {
            sub_kill(c, s, false);
            soak_churned++;
        }
    }
}

static void soak_sample(const struct ctx *c, int64_t t0, const char *step)
{
    struct sample now;
    sample_groups(c, &now);
    printf("step=%s t_s=%.0f open=%d msgs=%" PRId64 " delivered=%" PRIu64 " dup=%" PRIu64
           " churned=%" PRIu64 " reconnects=%" PRIu64,
           step, (double)(now_ns() - t0) / 1e9, open_count, c->seq_next - c->phase_seq0,
           c->phase_received, c->dup, soak_churned, soak_reconnects);
    for (int gi = 0; gi < c->ngroups; gi++)
        printf(" rss_%s_kb=%ld", c->groups[gi].name, now.rss_kb[gi]);
    printf("\n");
    fflush(stdout);
}

/* The log's highest id, so that a subscriber churned before its first row
 * resumes from the start of the soak instead of from "now". */
static int64_t log_max_id(struct ctx *c)
{
    sqlite3_stmt *st = NULL;
    int64_t id = 0;
    if (sqlite3_prepare_v2(c->pub.db, "SELECT coalesce(max(id), 0) FROM messages", -1, &st,
                           NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return id;
}

static long run_soak(struct ctx *c, const struct phase *ph, int64_t t0)
{
    if (c->pub.is_http)
        die("%s", "soak needs --pub-sqlite");
    int64_t start_id = log_max_id(c);
    for (int i = 0; i < c->nsubs; i++)
        if (c->subs[i].last_id == 0)
            c->subs[i].last_id = start_id;
    soak_sample(c, t0, "soak_sample");
    int64_t step = NS_S / (ph->b > 0 ? ph->b : 1);
    int64_t end = t0 + ph->a * NS_S, next_churn = t0 + NS_S, next_sample = t0 + ph->d * NS_S;
    long msgs = 0;
    for (;;) {
        int64_t now = now_ns();
        if (now >= end)
            break;
        int64_t due = t0 + msgs * step;
        if (now >= due) {
            publish(c);
            msgs++;
        }
        if (now >= next_churn) {
            soak_churn(c, ph->c);
            soak_revive(c);
            next_churn += NS_S;
        }
        if (ph->d > 0 && now >= next_sample) {
            soak_sample(c, t0, "soak_sample");
            next_sample += ph->d * NS_S;
        }
        int64_t wait = due - now_ns();
        poll_once(c, wait > NS_MS ? (int)(wait / NS_MS) : 0);
    }
    /* Let everyone come back and catch up before counting. */
    soak_revive(c);
    return msgs;
}

static void run_phase(struct ctx *c, const struct phase *ph)
{
    struct sample before, after;
    sample_groups(c, &before);
    phase_begin(c);
    int64_t t0 = now_ns();
    long msgs = 0;
    switch (ph->kind) {
    case PH_IDLE:
        run_until(c, t0 + ph->a * NS_MS, NULL, 100);
        sample_groups(c, &after);
        printf("step=idle subs=%d open=%d secs=%.3f", c->nsubs, open_count,
               (double)(now_ns() - t0) / 1e9);
        print_sample(c, "after", &after);
        print_mem_per_sub(c, &after);
        printf("\n");
        fflush(stdout);
        return;
    case PH_LAT:
        for (long i = 0; i < ph->a && open_count > 0; i++) {
            lat_wait_seq = c->seq_next;
            publish(c);
            msgs++;
            run_until(c, now_ns() + LAT_MSG_TIMEOUT_NS, lat_msg_done, 100);
            run_until(c, now_ns() + ph->b * NS_MS, NULL, 100);
        }
        break;
    case PH_RATE: {
        int64_t step = NS_S / (ph->b > 0 ? ph->b : 1);
        for (long i = 0; i < ph->a && open_count > 0; i++) {
            int64_t due = t0 + i * step;
            if (now_ns() < due)
                run_until(c, due, NULL, 1000);
            publish(c);
            msgs++;
            poll_once(c, 0); /* take what is ready without blocking */
        }
        break;
    }
    case PH_FLOOD: {
        int64_t end = t0 + ph->a * NS_MS;
        uint64_t per_msg = c->subs_per_chan[0];
        for (int ch = 1; ch < c->nchans; ch++)
            per_msg = per_msg > c->subs_per_chan[ch] ? per_msg : c->subs_per_chan[ch];
        uint64_t window = (uint64_t)ph->b * (per_msg ? per_msg : 1);
        while (now_ns() < end) {
            while (c->phase_expected - c->phase_received < window && now_ns() < end) {
                publish(c);
                msgs++;
            }
            poll_once(c, 1);
            if (open_count == 0)
                break;
        }
        break;
    }
    case PH_SOAK:
        msgs = run_soak(c, ph, t0);
        break;
    }
    if (open_count > 0 || ph->kind == PH_SOAK)
        run_until(c, now_ns() + DRAIN_TIMEOUT_NS, phase_drained, 50);
    if (ph->kind == PH_SOAK)
        soak_sample(c, t0, "soak_end");
    sample_groups(c, &after);
    static const char *names[] = {"idle", "lat", "rate", "flood", "soak"};
    phase_report(c, names[ph->kind], t0, &before, &after, msgs);
}

/* ---- command line ---------------------------------------------------------- */

static void parse_addr(const char *s, struct sockaddr_in *a, char *path, size_t path_cap)
{
    char host[64];
    const char *colon = strchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= sizeof host)
        die("bad address '%s' (want HOST:PORT)", s);
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
        die("bad host '%s' (want an IPv4 address)", host);
    if (path) {
        const char *slash = strchr(colon, '/');
        snprintf(path, path_cap, "%s", slash ? slash : "/pub?id=");
    }
}

static void usage(void)
{
    fputs("usage: lpbench --proto sse|ws --target HOST:PORT --path '/events?channel='\n"
          "         --subs N [--channels C] [--chan-prefix P] [--size BYTES]\n"
          "         (--pub-sqlite DB | --pub-http HOST:PORT/pub?id=)\n"
          "         [--group NAME=PID[,PID...]]... [--settle-ms MS] [--inflight N]\n"
          "         [--connect-timeout S] --phase idle:MS|lat:N:GAP_MS|rate:N:PER_S|"
          "flood:MS:WINDOW|soak:SECS:PER_S:CHURN:SAMPLE_S ...\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    static struct ctx c;
    c.proto = PROTO_SSE;
    c.nchans = 1;
    c.chan_prefix = "bench";
    c.msg_size = 100;
    c.max_inflight = 200;
    c.settle_ms = 1000;
    c.connect_timeout_ns = 120 * NS_S;
    c.path_prefix = "/events?channel=";
    const char *sqlite_path = NULL, *http_pub = NULL, *target = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            usage();
        i++;
        if (!strcmp(a, "--proto"))
            c.proto = !strcmp(v, "ws") ? PROTO_WS : PROTO_SSE;
        else if (!strcmp(a, "--target"))
            target = v;
        else if (!strcmp(a, "--path"))
            c.path_prefix = v;
        else if (!strcmp(a, "--subs"))
            c.nsubs = atoi(v);
        else if (!strcmp(a, "--channels"))
            c.nchans = atoi(v);
        else if (!strcmp(a, "--chan-prefix"))
            c.chan_prefix = v;
        else if (!strcmp(a, "--size"))
            c.msg_size = atoi(v);
        else if (!strcmp(a, "--inflight"))
            c.max_inflight = atoi(v);
        else if (!strcmp(a, "--settle-ms"))
            c.settle_ms = atoi(v);
        else if (!strcmp(a, "--connect-timeout"))
            c.connect_timeout_ns = atoll(v) * NS_S;
        else if (!strcmp(a, "--pub-sqlite"))
            sqlite_path = v;
        else if (!strcmp(a, "--pub-http"))
            http_pub = v;
        else if (!strcmp(a, "--group")) {
            if (c.ngroups == MAX_GROUPS)
                die("%s", "too many --group");
            struct group *g = &c.groups[c.ngroups++];
            char *eq = strchr(v, '=');
            if (eq == NULL)
                die("bad --group '%s'", v);
            g->name = strndup(v, (size_t)(eq - v));
            for (char *p = eq + 1; *p && g->nroots < 8;) {
                g->roots[g->nroots++] = (pid_t)strtol(p, &p, 10);
                if (*p == ',')
                    p++;
                else
                    break;
            }
        } else if (!strcmp(a, "--phase")) {
            if (c.nphases == MAX_PHASES)
                die("%s", "too many --phase");
            struct phase *ph = &c.phases[c.nphases++];
            long x = 0, y = 0, z = 0, w = 0;
            if (sscanf(v, "soak:%ld:%ld:%ld:%ld", &x, &y, &z, &w) == 4) {
                ph->kind = PH_SOAK;
                ph->c = z;
                ph->d = w;
            } else if (sscanf(v, "idle:%ld", &x) == 1)
                ph->kind = PH_IDLE;
            else if (sscanf(v, "lat:%ld:%ld", &x, &y) == 2)
                ph->kind = PH_LAT;
            else if (sscanf(v, "rate:%ld:%ld", &x, &y) == 2)
                ph->kind = PH_RATE;
            else if (sscanf(v, "flood:%ld:%ld", &x, &y) == 2)
                ph->kind = PH_FLOOD;
            else
                die("bad --phase '%s'", v);
            ph->a = x;
            ph->b = y;
        } else
            usage();
    }
    if (target == NULL || c.nsubs <= 0 || c.nsubs > MAX_SUBS || c.nchans <= 0 ||
        (sqlite_path == NULL) == (http_pub == NULL))
        usage();
    parse_addr(target, &c.target, NULL, 0);
    if (c.msg_size < 40 || c.msg_size > 4000)
        die("%s", "--size wants 40..4000");

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)c.nsubs + 64)
            fprintf(stderr, "lpbench: warning: open-file limit %lu < %d subscribers\n",
                    (unsigned long)rl.rlim_cur, c.nsubs);
    }
    signal(SIGPIPE, SIG_IGN);
    c.ep = epoll_create1(EPOLL_CLOEXEC);
    c.rbuf = malloc(READ_BUF);
    c.subs = calloc((size_t)c.nsubs, sizeof *c.subs);
    c.subs_per_chan = calloc((size_t)c.nchans, sizeof *c.subs_per_chan);
    if (c.ep < 0 || c.rbuf == NULL || c.subs == NULL || c.subs_per_chan == NULL)
        die("%s", "setup failed");
    for (int i = 0; i < c.nsubs; i++) {
        c.subs[i].fd = -1;
        c.subs[i].chan = (uint32_t)(i % c.nchans);
        c.subs_per_chan[i % c.nchans]++;
    }
    if (sqlite_path)
        pub_open_sqlite(&c.pub, sqlite_path);
    else {
        c.pub.is_http = true;
        parse_addr(http_pub, &c.pub.addr, c.pub.path, sizeof c.pub.path);
        pub_open_http(&c);
    }

    struct sample s1;
    sample_groups(&c, &c.baseline);
    printf("step=baseline");
    print_sample(&c, "before", &c.baseline);
    printf("\n");
    connect_all(&c);
    run_until(&c, now_ns() + (int64_t)c.settle_ms * NS_MS, NULL, 100);
    sample_groups(&c, &s1);
    printf("step=hold subs=%d open=%d", c.nsubs, open_count);
    print_sample(&c, "after", &s1);
    print_mem_per_sub(&c, &s1);
    printf("\n");
    fflush(stdout);
    if (ready_count < c.nsubs) {
        fprintf(stderr, "lpbench: only %d of %d subscribers connected\n", ready_count, c.nsubs);
    }
    for (int i = 0; i < c.nphases; i++)
        run_phase(&c, &c.phases[i]);
    for (int i = 0; i < c.nsubs; i++)
        sub_kill(&c, &c.subs[i], false);
    if (c.pub.ins)
        sqlite3_finalize(c.pub.ins);
    if (c.pub.db)
        sqlite3_close(c.pub.db);
    return ready_count >= c.nsubs ? 0 : 1;
}
