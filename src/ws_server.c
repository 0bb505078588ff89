/* ws_server: see ws_server.h.
 *
 * The two hub formats are encoded only when some subscriber wants them: a
 * row nobody compresses for is never compressed. */
#include "ws_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto.h"
#include "deflate.h"
#include "hub.h"
#include "json.h"
#include "loop.h"
#include "payload.h"
#include "store.h"
#include "utf8.h"
#include "watcher.h"
#include "ws_conn.h"
#include "ws_handshake.h"

#define READ_BUF_BYTES (64 * 1024)
#define TICK_MS 1000

struct ws_server {
    struct loop *loop;
    struct store *store;
    struct json *json;
    struct hub *hub;
    struct watcher *watcher;
    struct deflate_compressor *compressor;
    const struct ws_config *cfg;
    struct ws_server_stats *stats;
    struct ws_shared shared;
    struct loop_timer tick;
    uint8_t read_buf[READ_BUF_BYTES];
};

/* ---- the two wire formats ------------------------------------------------ */

/* The JSON envelope; data that is a BLOB, or text that is not UTF-8 (a
 * WebSocket text frame must be), travels base64-encoded. */
static struct payload *encode_text(const struct store_row *row, void *ctx)
{
    struct ws_server *srv = ctx;
    bool is_base64 = row->is_blob || !utf8_is_valid(row->data, row->data_len);
    if (!is_base64)
        return json_row_envelope(srv->json, row, row->data, row->data_len, false);
    char *b64 = malloc(crypto_base64_len(row->data_len) + 1);
    if (b64 == NULL)
        return NULL;
    size_t n = crypto_base64_encode(row->data, row->data_len, b64);
    struct payload *p = json_row_envelope(srv->json, row, b64, n, true);
    free(b64);
    return p;
}

/* The envelope compressed with an empty window (server_no_context_takeover),
 * valid for every client that agreed to permessage-deflate. */
static struct payload *encode_deflate(const struct store_row *row, void *ctx)
{
    struct ws_server *srv = ctx;
    struct payload *text = encode_text(row, ctx);
    struct deflate_buf out = {0};
    struct payload *p = NULL;
    if (text != NULL &&
        deflate_compress(srv->compressor, text->bytes, text->len, &out) == DEFLATE_OK &&
        (p = payload_new(out.len)) != NULL)
        memcpy(p->bytes, out.data, out.len);
    deflate_buf_free(&out);
    payload_unref(text);
    return p;
}

static hub_encode_fn *const ENCODERS[] = {
    [WS_FORMAT_TEXT] = encode_text, [WS_FORMAT_DEFLATE] = encode_deflate};

/* ---- loop hooks ------------------------------------------------------------ */

static void after_batch(void *ctx)
{
    struct ws_server *srv = ctx;
    struct ws_shared *sh = &srv->shared;
    /* Take the list first: what a connection queues while it flushes (a
     * replay batch) waits for its next turn. */
    struct ws_conn *list = sh->dirty;
    sh->dirty = NULL;
    while (list != NULL) {
        struct ws_conn *c = list;
        list = ws_conn_next_dirty(c);
        ws_conn_flush(c);
        ws_conn_clear_dirty(c);
    }
    while (sh->closing != NULL) {
        struct ws_conn *c = sh->closing;
        sh->closing = ws_conn_next_closing(c);
        ws_conn_free(c);
    }
}

static void on_tick(struct loop_timer *t)
{
    struct ws_server *srv = LOOP_CONTAINER(t, struct ws_server, tick);
    uint64_t now = loop_now_ms(srv->loop);
    for (struct ws_conn *c = srv->shared.all; c != NULL; c = ws_conn_next(c))
        ws_conn_tick(c, now);
    /* The process-wide last id is the highest any worker has seen. */
    long long seen = watcher_last_id(srv->watcher);
    long long prev = atomic_load(&srv->stats->last_id);
    while (seen > prev && !atomic_compare_exchange_weak(&srv->stats->last_id, &prev, seen))
        ;
    loop_timer_arm(srv->loop, &srv->tick, TICK_MS);
}

/* ---- lifecycle ------------------------------------------------------------- */

/* The log was replaced: close every connection with 1012 (service
 * restart); clients reconnect with lastEventId against the new log. */
static void on_log_replaced(void *ctx)
{
    struct ws_server *srv = ctx;
    for (struct ws_conn *c = srv->shared.all; c != NULL; c = ws_conn_next(c))
        ws_conn_close(c, 1012, "message log replaced, reconnect");
}

struct ws_server *ws_server_new(struct loop *loop, struct store *store, const struct ws_config *cfg,
                                struct ws_server_stats *stats, char *err, size_t err_cap)
{
    struct ws_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        snprintf(err, err_cap, "out of memory");
        return NULL;
    }
    srv->loop = loop;
    srv->store = store;
    srv->cfg = cfg;
    srv->stats = stats;
    srv->tick.on_due = on_tick;
    srv->hub = hub_new(ENCODERS, 2, srv);
    srv->compressor = deflate_compressor_new(15, -1);
    if (srv->hub == NULL || srv->compressor == NULL) {
        snprintf(err, err_cap, "out of memory");
        goto fail;
    }
    srv->json = json_open(err, err_cap);
    if (srv->json == NULL)
        goto fail;
    srv->watcher = watcher_new(loop, store, srv->hub, on_log_replaced, srv, err, err_cap);
    if (srv->watcher == NULL)
        goto fail;
    srv->shared = (struct ws_shared){
        .loop = loop,
        .store = store,
        .json = srv->json,
        .watcher = srv->watcher,
        .source = {.hub = srv->hub, .store = store, .watcher = srv->watcher},
        .cfg = cfg,
        .stats = stats,
        .read_buf = srv->read_buf,
        .read_cap = sizeof srv->read_buf,
    };
    ws_conn_expiry_init(&srv->shared);
    loop_set_after(loop, after_batch, srv);
    loop_timer_arm(loop, &srv->tick, TICK_MS);
    return srv;
fail:
    ws_server_free(srv);
    return NULL;
}

bool ws_server_adopt(struct ws_server *srv, int fd)
{
    return ws_conn_start(&srv->shared, fd);
}

void ws_server_free(struct ws_server *srv)
{
    if (srv == NULL)
        return;
    /* Going away (RFC 6455 §7.4.1): send what we can, then free all. */
    for (struct ws_conn *c = srv->shared.all; c != NULL; c = ws_conn_next(c)) {
        ws_conn_close(c, 1001, "server shutting down");
        ws_conn_flush(c);
    }
    for (struct ws_conn *c = srv->shared.all; c != NULL;) {
        struct ws_conn *next = ws_conn_next(c);
        ws_conn_free(c);
        c = next;
    }
    loop_timer_cancel(srv->loop, &srv->tick);
    ws_conn_expiry_free(&srv->shared);
    watcher_free(srv->watcher);
    hub_free(srv->hub);
    deflate_compressor_free(srv->compressor);
    json_close(srv->json);
    free(srv);
}
