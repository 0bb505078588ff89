/* ws_server: see ws_server.h.
 *
 * The two hub formats are encoded only when some subscriber wants them: a
 * row nobody compresses for is never compressed. */
#include "ws_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "deflate.h"
#include "json.h"
#include "payload.h"
#include "store.h"
#include "utf8.h"

#define READ_BUF_BYTES (64 * 1024)

struct ws_server {
    struct ws_conn_env env;
    struct store *store;
    struct json *json;
    struct deflate_compressor *compressor;
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

/* ---- lifecycle ------------------------------------------------------------- */

struct ws_server *ws_server_new(struct loop *loop, struct store *store,
                                const struct ws_conn_config *cfg, struct ws_conn_shared *shared,
                                struct metrics *metrics, char *err, size_t err_cap)
{
    struct ws_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        snprintf(err, err_cap, "out of memory");
        return NULL;
    }
    srv->store = store;
    srv->env = (struct ws_conn_env){
        .cfg = cfg, .shared = shared, .read_buf = srv->read_buf, .read_cap = sizeof srv->read_buf};
    srv->compressor = deflate_compressor_new(15, -1);
    if (srv->compressor == NULL) {
        snprintf(err, err_cap, "out of memory");
        goto fail;
    }
    srv->json = json_open(err, err_cap);
    if (srv->json == NULL)
        goto fail;
    srv->env.json = srv->json;
    if (!ws_conn_env_init(&srv->env, loop, store, metrics, ENCODERS, srv, err, err_cap))
        goto fail;
    return srv;
fail:
    ws_server_free(srv);
    return NULL;
}

bool ws_server_adopt(struct ws_server *srv, int fd)
{
    return ws_conn_start(&srv->env, fd);
}

void ws_server_free(struct ws_server *srv)
{
    if (srv == NULL)
        return;
    ws_conn_env_close(&srv->env);
    deflate_compressor_free(srv->compressor);
    json_close(srv->json);
    free(srv);
}
