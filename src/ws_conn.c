/* ws_conn: one WebSocket connection (see ws_conn.h).
 *
 * States: HANDSHAKE (collecting the request head, bounded in size and
 * time), OPEN, CLOSING (our close frame is queued or sent: nothing else is
 * ever sent after it, RFC 6455 §5.5.1; we read until the peer closes or a
 * deadline passes). A connection is freed only from the after-batch hook.
 * Closing is lingering, for every close code: after an input error the
 * rest of the input cannot be framed, so it is read and dropped until the
 * peer ends the stream or CLOSE_TIMEOUT_MS passes. Closing the socket with
 * unread bytes would make the kernel send a reset, which a proxy may pass
 * on before (instead of) our close frame.
 *
 * Memory while idle: this struct and its feed only. The handshake buffer is
 * freed after the 101, a message buffer exists only while a client message
 * is in flight, and the inflater's zlib state only while a compressed
 * message is being inflated (we answer client_no_context_takeover).
 *
 * Outgoing rows use the hub's shared payloads: the per-connection part is
 * the 2-10 byte frame header kept in the queue item.
 *
 * NOTES: a client that cannot keep up (queue over the cap) is cut off
 * without a close frame, since its queue cannot take one; the client sees
 * 1006 and resumes with lastEventId. A binary message from a client is
 * published as a BLOB to the first channel of its URL.
 *
 * Access control (access.h) is decided when the handshake is complete,
 * before the 101: a refusal is an HTTP 401 or 403. A connection admitted
 * with a token is closed with 1008 "token expired" at its exp
 * (conn_expire_at); it keeps its token's publish patterns (only when it has
 * some and publishing is on) for the publishes it makes. */
#include "ws_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "access.h"
#include "deflate.h"
#include "hub.h"
#include "input_limits.h"
#include "json.h"
#include "loop.h"
#include "outq.h"
#include "peer_limit.h"
#include "payload.h"
#include "query.h"
#include "store.h"
#include "utf8.h"
#include "watcher.h"
#include "ws_frame.h"
#include "ws_handshake.h"

/* Reads per wake-up before other connections get their turn. */
#define READS_PER_WAKE 4
/* How long we wait for the peer's close frame or end of stream. */
#define CLOSE_TIMEOUT_MS 3000
/* A publish that meets another connection's write lock (an application's
 * transaction) does not wait on the loop: it is kept and retried on a
 * timer, the delay doubling from PUBLISH_RETRY_MIN_MS to
 * PUBLISH_RETRY_MAX_MS, for PUBLISH_WAIT_MS in all, then refused as busy.
 * One publish per connection waits; another meanwhile is refused at once.
 * A backend that itself waited before saying busy (PostgreSQL's
 * lock_timeout: the attempt took PUBLISH_WAITED_MS or more) is not asked
 * again: the publish is refused as busy at once, as before. */
#define PUBLISH_WAIT_MS 2000
#define PUBLISH_RETRY_MIN_MS 1
#define PUBLISH_RETRY_MAX_MS 50
#define PUBLISH_WAITED_MS 20

static const char *const SUBPROTOCOLS[] = {"litepush.v1"};

enum conn_state { CONN_HANDSHAKE, CONN_OPEN, CONN_CLOSING };

struct ws_conn {
    struct conn conn;
    struct ws_conn_env *env;
    enum conn_state state;
    bool is_deflate; /* permessage-deflate was agreed */
    bool is_awaiting_pong;
    bool is_wr_shut;   /* our close frame went out and we shut down writing */
    bool is_discarding; /* the input cannot be framed any more: drop it */
    uint64_t since_ms; /* state change, for the handshake and close deadlines */
    uint64_t last_rx_ms;
    uint64_t ping_sent_ms;
    uint64_t msg_start_ms; /* first frame of the message in flight; 0: none */
    bool has_peer_slot;    /* counted in cfg->peers under peer_addr */
    uint8_t peer_addr[PEER_LIMIT_ADDR_LEN];
    /* a publish waiting for the write lock */
    struct loop_timer publish_timer;
    struct deflate_buf pending;
    bool is_pending;
    bool is_pending_text;
    struct json_ref pending_ref; /* its ref (a copy), JSON_ABSENT for none */
    uint64_t pending_since_ms;
    unsigned pending_delay_ms;
    /* handshake */
    char *head;
    size_t head_len;
    struct ws_handshake_state hs;
    /* frames from the client */
    struct ws_frame_decoder dec;
    struct deflate_buf msg; /* the data message in flight */
    struct utf8_state utf8;
    struct deflate_inflater inflater;
    uint8_t control[LIMITS_WS_CONTROL_PAYLOAD];
    uint8_t control_len;
    struct pattern_list *publish; /* the token's publish patterns, or NULL */
    /* The ref of the publish being answered, or NULL: set and cleared by
     * on_message() while it handles the frame, and by on_publish_retry()
     * (pointing at pending_ref) while it finishes a deferred publish, so
     * every answer to the publish carries its ref. */
    const struct json_ref *ref;
};

static struct ws_conn *ws_conn_of(struct conn *conn)
{
    return LOOP_CONTAINER(conn, struct ws_conn, conn);
}

static void mark_closing(struct ws_conn *c)
{
    conn_mark_closing(&c->conn);
}

/* ---- output ------------------------------------------------------------ */

static void check_queue_cap(struct ws_conn *c)
{
    if (!conn_is_too_slow(&c->conn))
        return;
    fprintf(stderr,
            "litepush-ws: connection fd %d dropped: %zu bytes queued (limit %zu), "
            "client too slow; it can resume with lastEventId\n",
            c->conn.io.fd, c->conn.out.bytes, c->env->cfg->queue_cap);
    metrics_add(c->env->set.metrics, METRIC_DROPPED_SLOW, 1);
    mark_closing(c);
}

/* Queues one whole frame whose payload is a shared payload. */
static void queue_frame_payload(struct ws_conn *c, enum ws_frame_opcode op, bool is_rsv1,
                                struct payload *p)
{
    uint8_t header[WS_FRAME_SERVER_HEADER_MAX];
    size_t header_len = ws_frame_header_encode(header, op, true, is_rsv1, p->len);
    if (header_len == 0 || !outq_push(&c->conn.out, header, header_len, p, 0, p->len)) {
        mark_closing(c);
        return;
    }
    conn_mark_dirty(&c->conn);
    check_queue_cap(c);
}

/* Queues a small frame (control frames, error replies) by copy. */
static void queue_frame_copy(struct ws_conn *c, enum ws_frame_opcode op, const void *data,
                             size_t len)
{
    struct payload *p = payload_new(len);
    if (p == NULL) {
        mark_closing(c);
        return;
    }
    memcpy(p->bytes, data, len);
    queue_frame_payload(c, op, false, p);
    payload_unref(p);
}

/* Queues a frame built by json.c; NULL (out of memory) ends the connection. */
static void queue_reply(struct ws_conn *c, struct payload *p)
{
    if (p == NULL) {
        mark_closing(c);
        return;
    }
    queue_frame_payload(c, WS_FRAME_OP_TEXT, false, p);
    payload_unref(p);
}

static void on_feed_row(struct feed *f, struct payload *p)
{
    struct ws_conn *c = LOOP_CONTAINER(f, struct ws_conn, conn.feed);
    if (p == NULL) {
        mark_closing(c);
        return;
    }
    metrics_add(c->env->set.metrics, METRIC_DELIVERIES, 1);
    queue_frame_payload(c, WS_FRAME_OP_TEXT, c->is_deflate, p);
}

/* Sends our close frame and stops everything else (RFC 6455 §5.5.1, §7.1.7). */
static void start_close(struct ws_conn *c, uint16_t code, const char *reason)
{
    if (c->state == CONN_CLOSING || c->conn.is_closing)
        return;
    uint8_t body[LIMITS_WS_CONTROL_PAYLOAD];
    size_t n =
        ws_frame_close_payload(body, code, (const uint8_t *)reason, reason ? strlen(reason) : 0);
    queue_frame_copy(c, WS_FRAME_OP_CLOSE, body, n);
    c->state = CONN_CLOSING;
    c->since_ms = loop_now_ms(c->env->set.loop);
    feed_close(&c->conn.feed);
}

/* Ends c with code and reason: a close frame once it is a WebSocket. */
static void close_conn(struct ws_conn *c, uint16_t code, const char *reason)
{
    if (c->state == CONN_HANDSHAKE)
        mark_closing(c); /* not a WebSocket yet: no close frame to send */
    else
        start_close(c, code, reason);
}

/* Writes what is queued (conn_write also replays); once our close frame
 * is out, half-closes and waits for the peer's end. */
static void flush(struct ws_conn *c)
{
    if (c->is_wr_shut)
        return;
    if (conn_write(&c->conn) == OUTQ_EMPTY && c->state == CONN_CLOSING) {
        shutdown(c->conn.io.fd, SHUT_WR);
        c->is_wr_shut = true;
    }
}

/* ---- handshake --------------------------------------------------------- */

/* Writes an HTTP refusal and closes: the socket is fresh, so a small
 * response fits in its buffer; if not, the client gets a reset instead.
 * Counted as a refusal by its status (metrics_refusal). */
static void refuse(struct ws_conn *c, int status, const char *reason, unsigned retry_after_s)
{
    enum metric refusal = metrics_refusal(status);
    if (refusal != METRIC_COUNT)
        metrics_add(c->env->set.metrics, refusal, 1);
    char resp[512];
    long n = ws_handshake_write_error(resp, sizeof resp, status, reason, retry_after_s);
    if (n > 0 && write(c->conn.io.fd, resp, (size_t)n) < 0) {
        /* the client is gone already; nothing to tell it */
    }
    mark_closing(c);
}

/* --origin: a browser always sends Origin on a WebSocket handshake (RFC
 * 6455 §4.1 item 8, Fetch), so a request without one is not from a
 * browser page and passes; a listed one passes; any other is a cross-site
 * page, refused (cross-site WebSocket hijacking with cookie tokens). */
static bool origin_allowed(const struct ws_conn_config *cfg, const struct ws_handshake_req *req)
{
    if (cfg->origin_count == 0 || req->origin.ptr == NULL)
        return true;
    for (size_t i = 0; i < cfg->origin_count; i++)
        if (strlen(cfg->origins[i]) == req->origin.len &&
            memcmp(cfg->origins[i], req->origin.ptr, req->origin.len) == 0)
            return true;
    return false;
}

/* The peer's address as text, and whether it is a proxy we trust to tell
 * the client's address in X-Forwarded-For: one on loopback or a unix
 * socket, i.e. the web server in front of us. */
static bool peer_address(int fd, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    snprintf(out, cap, "unknown");
    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
        return false;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, out, (socklen_t)cap);
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, out, (socklen_t)cap);
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    snprintf(out, cap, "unix");
    return ss.ss_family == AF_UNIX;
}

/* The first Cookie line that carries our cookie (a proxy may have split
 * the browser's one line), so that the first-found rule holds across lines. */
static void find_cookie(const struct ws_handshake_req *req, const char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    for (size_t i = 0; i < req->cookie_count; i++) {
        const char *v;
        size_t n;
        if (access_cookie(req->cookies[i].ptr, req->cookies[i].len, "litepush_token", &v, &n)) {
            *out = req->cookies[i].ptr;
            *len = req->cookies[i].len;
            return;
        }
    }
}

/* Decides access for a valid handshake. Returns true when it may upgrade
 * (with the expiry and publish rights taken); otherwise answers 401 or 403,
 * logs why, marks c closing and returns false. */
static bool check_access(struct ws_conn *c, const struct ws_handshake_req *req,
                         const struct query_request *q)
{
    const struct ws_conn_config *cfg = c->env->cfg;
    if (cfg->access == NULL || cfg->access->keys == NULL)
        return true;
    struct access_request ar = {
        .authorization = req->authorization.ptr,
        .authorization_len = req->authorization.len,
        .query_token = q->token,
        .query_token_len = q->token_len,
        .channels = q->channels,
        .channel_lens = q->channel_lens,
        .channel_count = q->channel_count,
        .now_s = (int64_t)time(NULL),
    };
    find_cookie(req, &ar.cookie, &ar.cookie_len);
    /* Large (two pattern sets): one per thread rather than on the stack. */
    static _Thread_local struct access_verdict v;
    access_decide(c->env->json, cfg->access, &ar, &v);
    if (v.status != 0) {
        char peer[64], client[80], line[1024], resp[768];
        bool is_trusted = peer_address(c->conn.io.fd, peer, sizeof peer);
        access_client(peer, is_trusted, req->forwarded_for.ptr, req->forwarded_for.len, client,
                      sizeof client);
        access_log_line(&v, client, q->channels, q->channel_lens, q->channel_count, line,
                        sizeof line);
        fprintf(stderr, "litepush-ws: %s\n", line);
        if (v.status == 403) {
            refuse(c, 403, v.reason, 0);
            return false;
        }
        metrics_add(c->env->set.metrics, metrics_refusal(401), 1);
        long n = ws_handshake_write_unauthorized(resp, sizeof resp, v.www_authenticate, v.reason);
        if (n > 0 && write(c->conn.io.fd, resp, (size_t)n) < 0) {
            /* the client is gone already */
        }
        mark_closing(c);
        return false;
    }
    if (!v.has_claims)
        return true;
    if (cfg->is_publish_allowed && v.claims.publish.count > 0) {
        c->publish = pattern_list_copy(&v.claims.publish);
        if (c->publish == NULL) {
            mark_closing(c);
            return false;
        }
    }
    if (!conn_expire_at(&c->conn, v.claims.exp)) {
        mark_closing(c);
        return false;
    }
    return true;
}

/* The request head is complete and valid: answer 101 and open the feed. */
static void accept_handshake(struct ws_conn *c, const struct ws_handshake_req *req)
{
    const struct ws_conn_config *cfg = c->env->cfg;
    if (!origin_allowed(cfg, req)) {
        refuse(c, 403, "origin not allowed", 0);
        return;
    }
    if (cfg->peers != NULL) {
        struct sockaddr_storage ss;
        socklen_t ss_len = sizeof ss;
        if (getpeername(c->conn.io.fd, (struct sockaddr *)&ss, &ss_len) == 0 &&
            peer_limit_client_addr(&ss, ss_len, req->forwarded_for.ptr, req->forwarded_for.len,
                                   c->peer_addr)) {
            if (!peer_limit_take(cfg->peers, c->peer_addr)) {
                metrics_add(c->env->set.metrics, METRIC_REFUSED_FULL, 1);
                refuse(c, 503, "too many connections from this address", 5);
                return;
            }
            c->has_peer_slot = true;
        }
    }
    char *scratch = malloc(req->query.len + 1);
    struct query_request q;
    enum query_err qerr = QUERY_ERR_TOO_LONG;
    if (scratch != NULL)
        qerr = query_parse(req->query.ptr ? req->query.ptr : "", req->query.len, scratch, &q);
    if (qerr != QUERY_OK) {
        refuse(c, 400, query_strerror(qerr), 0);
        free(scratch);
        return;
    }
    if (!check_access(c, req, &q)) {
        free(scratch);
        return;
    }
    struct ws_handshake_pmd pmd = {0};
    if (cfg->is_deflate_enabled) {
        /* Rows are compressed once, with a 32 KiB window, for everyone:
         * an offer that limits our window is declined (the next offer may
         * still be taken), and the client resets its window per message
         * so no inflater outlives a message. */
        struct ws_handshake_pmd_policy policy = {.is_client_no_context_takeover_forced = true,
                                                 .server_max_window_bits_min = 15};
        ws_handshake_negotiate_deflate(req->extensions, req->extension_count, &policy, &pmd);
    }
    struct ws_handshake_slice proto = {0};
    bool has_proto = ws_handshake_select_protocol(req, SUBPROTOCOLS, 1, &proto);
    char resp[1024];
    long n =
        ws_handshake_write_101(resp, sizeof resp, req, has_proto ? proto.ptr : NULL,
                               has_proto ? proto.len : 0, pmd.is_accepted ? pmd.response : NULL);
    if (n < 0 || !outq_push_copy(&c->conn.out, resp, (size_t)n)) {
        free(scratch);
        mark_closing(c);
        return;
    }
    c->is_deflate = pmd.is_accepted;
    if (c->is_deflate)
        deflate_inflater_init(&c->inflater,
                              pmd.client_max_window_bits ? pmd.client_max_window_bits : 15, true);
    c->state = CONN_OPEN;
    c->since_ms = loop_now_ms(c->env->set.loop);
    metrics_add(c->env->set.metrics, METRIC_ACCEPTED, 1);
    metrics_add(c->env->set.metrics, METRIC_OPEN, 1);
    /* position=1: the first frame says where the rows start. With a resume
     * id that is the id (a litepush.reset after it corrects it); without,
     * the feed's live cursor, known once it is open. */
    if (q.is_position_wanted && q.has_last_event_id)
        queue_reply(c, json_position(c->env->json, q.last_event_id));
    bool ok =
        feed_open(&c->conn.feed, &c->env->set.source, &q, q.has_last_event_id, q.last_event_id,
                  c->is_deflate ? WS_FORMAT_DEFLATE : WS_FORMAT_TEXT, on_feed_row);
    if (ok && q.is_position_wanted && !q.has_last_event_id)
        queue_reply(c, json_position(c->env->json, c->conn.feed.cursor));
    free(scratch);
    if (!ok) {
        start_close(c, 1011, "cannot open the feed");
        return;
    }
    conn_mark_dirty(&c->conn);
}

/* True for "GET <path><suffix>[?...] HTTP/1.x" (suffix "/stats" or
 * "/metrics"): a counters page, served without an upgrade. */
static bool is_path_suffix(const char *head, size_t len, const char *suffix)
{
    if (len < 4 || memcmp(head, "GET ", 4) != 0)
        return false;
    const char *target = head + 4;
    const char *end = memchr(target, ' ', len - 4);
    if (end == NULL)
        return false;
    const char *q = memchr(target, '?', (size_t)(end - target));
    const char *path_end = q ? q : end;
    size_t n = strlen(suffix);
    return (size_t)(path_end - target) >= n && memcmp(path_end - n, suffix, n) == 0;
}

/* Answers a counters page of content_type and closes. */
static void reply_page(struct ws_conn *c, const char *content_type, const char *body, size_t len)
{
    char head[256];
    int m = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"
                     "Cache-Control: no-cache\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     content_type, len);
    struct iovec iov[2] = {{head, (size_t)m}, {(void *)body, len}};
    if (m > 0 && (size_t)m < sizeof head && writev(c->conn.io.fd, iov, 2) < 0) {
        /* the client left already */
    }
    mark_closing(c);
}

static void reply_stats(struct ws_conn *c)
{
    const struct ws_conn_shared *sh = c->env->shared;
    uint64_t v[METRIC_COUNT];
    metrics_sum(sh->metrics, sh->metrics_count, v);
    char body[512];
    int n = snprintf(
        body, sizeof body,
        "connections_open %llu\nconnections_total %llu\nconnections_dropped_slow %llu\n"
        "connections_dropped_unresponsive %llu\nconnections_refused_full %llu\n"
        "frames_sent %llu\npublished %llu\nlast_id %llu\n",
        (unsigned long long)v[METRIC_OPEN], (unsigned long long)v[METRIC_ACCEPTED],
        (unsigned long long)v[METRIC_DROPPED_SLOW],
        (unsigned long long)v[METRIC_DROPPED_UNRESPONSIVE],
        (unsigned long long)v[METRIC_REFUSED_FULL], (unsigned long long)v[METRIC_DELIVERIES],
        (unsigned long long)v[METRIC_PUBLISHED], (unsigned long long)v[METRIC_LAST_ID]);
    reply_page(c, "text/plain; charset=utf-8", body, n > 0 ? (size_t)n : 0);
}

/* The Prometheus text exposition (metrics.h) of every thread's counters. */
static void reply_metrics(struct ws_conn *c)
{
    const struct ws_conn_shared *sh = c->env->shared;
    uint64_t v[METRIC_COUNT];
    metrics_sum(sh->metrics, sh->metrics_count, v);
    char body[METRICS_TEXT_MAX];
    size_t n = metrics_render(v, METRICS_WS, body, sizeof body);
    reply_page(c, METRICS_CONTENT_TYPE, body, n);
}

/* Takes handshake bytes; returns how many of buf were used by the head
 * (the rest are frames), or -1 when the connection is done with. */
static long take_handshake(struct ws_conn *c, const uint8_t *buf, size_t len)
{
    if (c->head == NULL && (c->head = malloc(LIMITS_WS_HANDSHAKE_MAX)) == NULL) {
        mark_closing(c);
        return -1;
    }
    size_t room = LIMITS_WS_HANDSHAKE_MAX - c->head_len;
    size_t take = len < room ? len : room;
    memcpy(c->head + c->head_len, buf, take);
    size_t before = c->head_len;
    c->head_len += take;
    struct ws_handshake_req req;
    long r = ws_handshake_parse(&c->hs, c->head, c->head_len, LIMITS_WS_HANDSHAKE_MAX, &req);
    if (r == WS_HANDSHAKE_NEED_MORE)
        return (long)take;
    if (r == WS_HANDSHAKE_INVALID && is_path_suffix(c->head, c->head_len, "/stats")) {
        reply_stats(c);
        return -1;
    }
    if (r == WS_HANDSHAKE_INVALID && is_path_suffix(c->head, c->head_len, "/metrics")) {
        reply_metrics(c);
        return -1;
    }
    if (r == WS_HANDSHAKE_INVALID) {
        refuse(c, ws_handshake_status(req.err), ws_handshake_strerror(req.err), 0);
        return -1;
    }
    accept_handshake(c, &req);
    free(c->head);
    c->head = NULL;
    if (c->state != CONN_OPEN)
        return -1;
    return r - (long)before; /* bytes of buf that belonged to the head */
}

/* ---- messages from the client ------------------------------------------ */

/* Answers a frame with {"error":"<reason>"}, or {"error":...,"ref":R}
 * while a publish with a ref is being answered. Not counted. */
static void send_error(struct ws_conn *c, const char *reason)
{
    if (c->ref != NULL) {
        queue_reply(c, json_publish_reply(c->env->json, c->ref, 0, reason));
        return;
    }
    char body[256];
    /* Our reasons are fixed English sentences; a quote or backslash in one
     * would still not break the JSON, it becomes an apostrophe. */
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}", reason);
    if (n < 0 || (size_t)n >= sizeof body)
        n = snprintf(body, sizeof body, "{\"error\":\"invalid message\"}");
    for (int i = 10; i < n - 2; i++)
        if (body[i] == '"' || body[i] == '\\' || (unsigned char)body[i] < 0x20)
            body[i] = '\'';
    queue_frame_copy(c, WS_FRAME_OP_TEXT, body, (size_t)n);
}

/* Answers a publish that was not stored (counted as a publish error). */
static void reply_error(struct ws_conn *c, const char *reason)
{
    metrics_add(c->env->set.metrics, METRIC_PUBLISH_ERRORS, 1);
    send_error(c, reason);
}

/* One INSERT for a client message; *reason is set for STORE_ERR_INPUT, *id
 * for STORE_OK. */
static enum store_err insert_message(struct ws_conn *c, const uint8_t *data, size_t len,
                                     bool is_text, const char **reason, int64_t *id)
{
    struct ws_conn_env *env = c->env;
    *id = 0;
    *reason = NULL;
    const struct access_policy *policy = env->cfg->access;
    static const char NO_RIGHTS[] = "the token does not allow publishing to this channel";
    if (is_text) {
        struct json_publish pub;
        *reason = json_parse_publish(env->json, (const char *)data, len, &pub);
        if (*reason == NULL && access_is_reserved_event(pub.event, pub.event_len))
            *reason = "event names starting with litepush. are reserved for the server";
        if (*reason == NULL && policy != NULL &&
            !access_may_publish(policy, c->publish, pub.channel, pub.channel_len))
            *reason = NO_RIGHTS;
        if (*reason != NULL)
            return STORE_ERR_INPUT;
        return store_insert(env->set.source.store, pub.channel, pub.channel_len, pub.event,
                            pub.event_len, pub.data, pub.data_len, false, id);
    }
    if (policy != NULL && !access_may_publish(policy, c->publish, c->conn.feed.channels[0],
                                              c->conn.feed.channel_lens[0])) {
        *reason = NO_RIGHTS;
        return STORE_ERR_INPUT;
    }
    /* An open connection's feed has at least one channel. */
    return store_insert(env->set.source.store, c->conn.feed.channels[0],
                        c->conn.feed.channel_lens[0], NULL, 0, data ? (const void *)data : "", len,
                        true, id);
}

/* Answers a publish that was tried: an error, or the ack with its id when
 * it carried a ref (c->ref) and the echo of the row. */
static void publish_done(struct ws_conn *c, enum store_err err, const char *reason, int64_t id)
{
    struct ws_conn_env *env = c->env;
    if (err == STORE_ERR_INPUT) {
        reply_error(c, reason);
        return;
    }
    if (err != STORE_OK) {
        fprintf(stderr, "litepush-ws: publish failed: %s\n", store_errmsg(env->set.source.store));
        reply_error(c, err == STORE_ERR_BUSY   ? "database is busy, try again"
                       : err == STORE_ERR_DOWN ? "database unreachable, try again"
                                               : "database error, message not stored");
        return;
    }
    metrics_add(env->set.metrics, METRIC_PUBLISHED, 1);
    /* The ack goes before the row's echo, which the watcher queues. */
    if (c->ref != NULL)
        queue_reply(c, json_publish_reply(env->json, c->ref, id, NULL));
    /* Our own commit does not change data_version for our connection (and
     * PostgreSQL's NOTIFY would only come later): publish it now, to the
     * sender and everyone else. On PostgreSQL the INSERT is one round trip
     * on this loop, waiting at most lock_timeout for the id lock. */
    watcher_catch_up(env->set.watcher);
}

static void drop_pending(struct ws_conn *c)
{
    loop_timer_cancel(c->env->set.loop, &c->publish_timer);
    deflate_buf_free(&c->pending);
    c->is_pending = false;
    c->pending_ref = (struct json_ref){.type = JSON_ABSENT};
}

static void on_publish_retry(struct loop_timer *t)
{
    struct ws_conn *c = LOOP_CONTAINER(t, struct ws_conn, publish_timer);
    if (c->conn.is_closing || c->state != CONN_OPEN) {
        drop_pending(c);
        return;
    }
    const char *reason;
    int64_t id;
    uint64_t t0 = loop_clock_ms();
    enum store_err err =
        insert_message(c, c->pending.data, c->pending.len, c->is_pending_text, &reason, &id);
    struct loop *loop = c->env->set.loop;
    if (err == STORE_ERR_BUSY && loop_clock_ms() - t0 < PUBLISH_WAITED_MS &&
        loop_clock_ms() - c->pending_since_ms < PUBLISH_WAIT_MS) {
        if (c->pending_delay_ms < PUBLISH_RETRY_MAX_MS)
            c->pending_delay_ms *= 2;
        loop_timer_arm(loop, &c->publish_timer, c->pending_delay_ms);
        return;
    }
    /* on_message() has long returned: answer with the ref kept. */
    c->ref = c->pending_ref.type != JSON_ABSENT ? &c->pending_ref : NULL;
    publish_done(c, err, reason, id);
    c->ref = NULL;
    drop_pending(c);
}

static void publish(struct ws_conn *c, bool is_text)
{
    if (!c->env->cfg->is_publish_allowed) {
        reply_error(c, "publishing is not enabled on this server");
        return;
    }
    if (c->is_pending) {
        reply_error(c, "database is busy, try again");
        return;
    }
    const char *reason;
    int64_t id;
    uint64_t t0 = loop_clock_ms();
    enum store_err err = insert_message(c, c->msg.data, c->msg.len, is_text, &reason, &id);
    if (err == STORE_ERR_BUSY && loop_clock_ms() - t0 < PUBLISH_WAITED_MS) {
        /* Take the message over; end_message then finds an empty buffer. */
        c->pending = c->msg;
        c->msg = (struct deflate_buf){0};
        c->is_pending = true;
        c->is_pending_text = is_text;
        /* c->ref is on on_message()'s stack: keep a copy for the answer. */
        c->pending_ref = c->ref != NULL ? *c->ref : (struct json_ref){.type = JSON_ABSENT};
        c->pending_since_ms = t0;
        c->pending_delay_ms = PUBLISH_RETRY_MIN_MS;
        c->publish_timer.on_due = on_publish_retry;
        loop_timer_arm(c->env->set.loop, &c->publish_timer, c->pending_delay_ms);
        return;
    }
    publish_done(c, err, reason, id);
}

/* An object with "ping" and without "data" is an application-level ping
 * (the page cannot see WebSocket pings): {"ping":R} is answered {"pong":R},
 * with or without --allow-publish. Returns false for any other message. */
static bool take_ping(struct ws_conn *c)
{
    struct json *j = c->env->json;
    const char *doc = (const char *)c->msg.data;
    struct json_value v;
    if (!json_get(j, doc, c->msg.len, "$.ping", &v) || v.type == JSON_ABSENT ||
        !json_get(j, doc, c->msg.len, "$.data", &v) || v.type != JSON_ABSENT)
        return false;
    struct json_ref ping;
    if (json_get_ref(j, doc, c->msg.len, "$.ping", &ping) != NULL || ping.type == JSON_ABSENT)
        send_error(c, "ping must be an integer or a string of at most 64 bytes");
    else
        queue_reply(c, json_pong(j, &ping));
    return true;
}

/* A publish with a "ref" is answered, in the order the frames came:
 * {"ok":true,"ref":R,"id":N} or {"error":"...","ref":R}. The ack is queued
 * before the row's echo (which the watcher publishes after the commit). */
static void on_message(struct ws_conn *c, bool is_text)
{
    struct json_ref ref;
    if (is_text && take_ping(c))
        return;
    if (is_text) {
        const char *bad =
            json_get_ref(c->env->json, (const char *)c->msg.data, c->msg.len, "$.ref", &ref);
        if (bad != NULL) {
            reply_error(c, bad);
            return;
        }
        if (ref.type != JSON_ABSENT)
            c->ref = &ref;
    }
    publish(c, is_text);
    c->ref = NULL;
}

static void end_message(struct ws_conn *c)
{
    c->msg_start_ms = 0;
    c->msg.len = 0;
    deflate_buf_free(&c->msg);
    c->utf8 = (struct utf8_state){0};
    deflate_inflater_trim(&c->inflater);
}

static void fail(struct ws_conn *c, uint16_t code, const char *reason)
{
    fprintf(stderr, "litepush-ws: fd %d: closing with %u: %s\n", c->conn.io.fd, code, reason);
    start_close(c, code, reason);
}

/* Appends data to the message in flight (already bounded by the decoder
 * or the inflater) and validates text as it arrives (RFC 6455 §8.1: fail
 * as soon as the bytes cannot be UTF-8). */
static bool append_message(struct ws_conn *c, const struct ws_frame_chunk *ch)
{
    if (c->msg_start_ms == 0)
        c->msg_start_ms = loop_now_ms(c->env->set.loop);
    /* Publishing off: the message will be refused, so nothing of it is
     * kept; each piece is still checked (UTF-8, and inflated within
     * --max-message) and dropped, and a client pins no memory with it. */
    if (!c->env->cfg->is_publish_allowed && c->msg.len > 0) {
        c->msg.len = 0;
        if (c->msg.cap > 4096)
            deflate_buf_free(&c->msg);
    }
    size_t old_len = c->msg.len;
    if (ch->is_compressed) {
        enum deflate_err e = deflate_inflate(&c->inflater, ch->data, ch->len, ch->is_message_end,
                                             c->env->cfg->max_message, &c->msg);
        if (e != DEFLATE_OK) {
            fail(c, (uint16_t)deflate_close_code(e), deflate_strerror(e));
            return false;
        }
    } else if (ch->len > 0) {
        if (c->msg.cap - c->msg.len < ch->len) {
            size_t cap = c->msg.cap ? c->msg.cap : 256;
            while (cap - c->msg.len < ch->len)
                cap *= 2;
            uint8_t *data = realloc(c->msg.data, cap);
            if (data == NULL) {
                fail(c, 1011, "out of memory");
                return false;
            }
            c->msg.data = data;
            c->msg.cap = cap;
        }
        memcpy(c->msg.data + c->msg.len, ch->data, ch->len);
        c->msg.len += ch->len;
    }
    if (ch->message_opcode == WS_FRAME_OP_TEXT) {
        enum utf8_result u = c->msg.len > old_len
                                 ? utf8_feed(&c->utf8, c->msg.data + old_len, c->msg.len - old_len)
                                 : utf8_feed(&c->utf8, (const uint8_t *)"", 0);
        if (u == UTF8_INVALID || (ch->is_message_end && u != UTF8_COMPLETE)) {
            fail(c, 1007, ws_frame_strerror(WS_FRAME_ERR_TEXT_UTF8));
            return false;
        }
    }
    return true;
}

static void on_control(struct ws_conn *c, enum ws_frame_opcode op)
{
    if (op == WS_FRAME_OP_PING) {
        if (c->state == CONN_OPEN)
            queue_frame_copy(c, WS_FRAME_OP_PONG, c->control, c->control_len);
    } else if (op == WS_FRAME_OP_PONG) {
        c->is_awaiting_pong = false;
    } else if (op == WS_FRAME_OP_CLOSE) {
        struct ws_frame_close cl;
        enum ws_frame_err e = ws_frame_close_parse(c->control, c->control_len, &cl);
        if (e != WS_FRAME_OK) {
            fail(c, ws_frame_err_close_code(e), ws_frame_strerror(e));
        } else if (c->state == CONN_CLOSING) {
            mark_closing(c); /* the answer to our close: done */
        } else {
            /* Echo the code (RFC 6455 §5.5.1); a close without one gets
             * an empty close back. */
            start_close(c, cl.code == WS_FRAME_CLOSE_NO_STATUS ? 0 : cl.code, NULL);
        }
    }
}

static void on_chunk(struct ws_conn *c, const struct ws_frame_chunk *ch)
{
    if (ch->opcode >= WS_FRAME_OP_CLOSE) {
        if (ch->offset == 0)
            c->control_len = 0;
        memcpy(c->control + c->control_len, ch->data, ch->len); /* <= 125 by §5.5 */
        c->control_len = (uint8_t)(c->control_len + ch->len);
        if (ch->is_frame_end)
            on_control(c, ch->opcode);
        return;
    }
    if (c->state != CONN_OPEN)
        return; /* data after our close frame is read and dropped */
    if (!append_message(c, ch))
        return;
    if (ch->is_message_end) {
        on_message(c, ch->message_opcode == WS_FRAME_OP_TEXT);
        end_message(c);
    }
}

static void take_frames(struct ws_conn *c, uint8_t *buf, size_t len)
{
    if (c->is_discarding)
        return; /* lingering close: read and dropped */
    while (len > 0 && !c->conn.is_closing) {
        struct ws_frame_chunk ch;
        ptrdiff_t n =
            ws_frame_decode(&c->dec, buf, len, c->env->cfg->max_message, c->is_deflate, &ch);
        if (n == WS_FRAME_NEED_MORE)
            return;
        if (n < 0) {
            enum ws_frame_err e = (enum ws_frame_err)n;
            if (c->state != CONN_CLOSING) /* else no second close frame */
                fail(c, ws_frame_err_close_code(e), ws_frame_strerror(e));
            c->is_discarding = true;
            return;
        }
        on_chunk(c, &ch);
        buf += n;
        len -= (size_t)n;
    }
}

static void on_io(struct loop_io *io, uint32_t events)
{
    struct ws_conn *c = LOOP_CONTAINER(io, struct ws_conn, conn.io);
    if (c->conn.is_closing)
        return;
    if (events & EPOLLOUT)
        flush(c);
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        return;
    struct ws_conn_env *env = c->env;
    for (int i = 0; i < READS_PER_WAKE && !c->conn.is_closing; i++) {
        ssize_t n = read(io->fd, env->read_buf, env->read_cap);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            mark_closing(c); /* end of stream or reset: nothing more to say */
            break;
        }
        c->last_rx_ms = loop_now_ms(env->set.loop);
        uint8_t *buf = env->read_buf;
        size_t len = (size_t)n;
        if (c->state == CONN_HANDSHAKE) {
            long used = take_handshake(c, buf, len);
            if (used < 0)
                break;
            buf += used;
            len -= (size_t)used;
        }
        take_frames(c, buf, len);
        if ((size_t)n < env->read_cap)
            break;
    }
}

/* ---- the connection's life cycle (conn_ops) ------------------------------ */

static void ws_flush(struct conn *conn)
{
    flush(ws_conn_of(conn));
}

static void ws_free(struct conn *conn)
{
    struct ws_conn *c = ws_conn_of(conn);
    drop_pending(c);
    if (c->has_peer_slot)
        peer_limit_give(c->env->cfg->peers, c->peer_addr);
    conn_release(conn);
    deflate_buf_free(&c->msg);
    deflate_inflater_free(&c->inflater);
    free(c->head);
    free(c->publish);
    if (c->state != CONN_HANDSHAKE) /* it was upgraded, and counted open */
        metrics_sub(c->env->set.metrics, METRIC_OPEN, 1);
    atomic_fetch_sub(&c->env->shared->admitted, 1);
    free(c);
}

static void ws_replay_failed(struct conn *conn)
{
    start_close(ws_conn_of(conn), 1011, "cannot read the log");
}

/* The log was replaced: close with 1012 (service restart); the client
 * reconnects with lastEventId against the new log. */
static void ws_log_replaced(struct conn *conn)
{
    close_conn(ws_conn_of(conn), 1012, "message log replaced, reconnect");
}

/* Pings, pong and handshake deadlines. */
static void tick_conn(struct ws_conn *c, uint64_t now_ms)
{
    const struct ws_conn_config *cfg = c->env->cfg;
    if (c->conn.is_closing)
        return;
    if (c->state == CONN_HANDSHAKE) {
        if (now_ms - c->since_ms >= cfg->handshake_timeout_ms)
            refuse(c, 400, "handshake not completed in time", 0);
    } else if (c->state == CONN_CLOSING) {
        if (now_ms - c->since_ms >= CLOSE_TIMEOUT_MS)
            mark_closing(c);
    } else if (c->msg_start_ms != 0 && cfg->message_timeout_ms > 0 &&
               now_ms - c->msg_start_ms >= cfg->message_timeout_ms) {
        /* An unfinished message holds memory: it gets a deadline. A client
         * still sending its fragments is alive, so no ping is due now. */
        fail(c, 1008, "message not completed in time");
    } else if (c->is_awaiting_pong) {
        if (now_ms - c->ping_sent_ms >= cfg->ping_ms) {
            metrics_add(c->env->set.metrics, METRIC_DROPPED_UNRESPONSIVE, 1);
            fail(c, 1001, "no answer to ping");
        }
    } else if (now_ms - c->last_rx_ms >= cfg->ping_ms) {
        /* RFC 6455 §5.5.2: a ping; the pong (or anything) proves the peer
         * and every proxy on the way are still there. */
        queue_frame_copy(c, WS_FRAME_OP_PING, "litepush", 8);
        c->is_awaiting_pong = true;
        c->ping_sent_ms = now_ms;
    }
}

static void ws_tick(struct conn_set *set, uint64_t now_ms)
{
    for (struct conn *conn = set->all; conn != NULL; conn = conn->next)
        tick_conn(ws_conn_of(conn), now_ms);
}

/* The token's exp: RFC 6455 §7.4.1 1008, a policy violation; the client
 * reconnects with a fresh token and lastEventId. */
static void ws_expired(struct conn *conn)
{
    close_conn(ws_conn_of(conn), 1008, "token expired");
}

static const struct conn_ops WS_CONN_OPS = {
    .flush = ws_flush,
    .free = ws_free,
    .replay_failed = ws_replay_failed,
    .log_replaced = ws_log_replaced,
    .tick = ws_tick,
    .expired = ws_expired,
};

bool ws_conn_env_init(struct ws_conn_env *env, struct loop *loop, struct store *store,
                      struct metrics *metrics, hub_encode_fn *const encoders[2], void *encode_ctx,
                      char *err, size_t err_cap)
{
    if (!conn_set_init(&env->set, loop, store, metrics, encoders, 2, encode_ctx, &WS_CONN_OPS,
                       err, err_cap))
        return false;
    hub_set_max_row(env->set.hub, env->cfg->max_row);
    return true;
}

void ws_conn_env_close(struct ws_conn_env *env)
{
    /* Going away (RFC 6455 §7.4.1): send what we can, then free all. */
    for (struct conn *conn = env->set.all; conn != NULL; conn = conn->next) {
        struct ws_conn *c = ws_conn_of(conn);
        close_conn(c, 1001, "server shutting down");
        flush(c);
        mark_closing(c);
    }
    conn_set_reap(&env->set);
    conn_set_destroy(&env->set);
}

bool ws_conn_start(struct ws_conn_env *env, int fd)
{
    struct ws_conn *c = calloc(1, sizeof *c);
    if (c == NULL || !conn_add(&env->set, &c->conn, fd, on_io)) {
        free(c);
        close(fd);
        atomic_fetch_sub(&env->shared->admitted, 1);
        return false;
    }
    c->env = env;
    c->conn.queue_cap = env->cfg->queue_cap;
    c->since_ms = c->last_rx_ms = loop_now_ms(env->set.loop);
    return true;
}
