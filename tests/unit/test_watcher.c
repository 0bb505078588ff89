/* Unit tests for watcher over a fake store backend (store_impl.h): a read
 * that fails (SQLITE_BUSY while an application holds a lock) after the
 * store said "committed" must be retried at the next wake-up or poll, so
 * no committed row is left undelivered until some later commit (issue 10,
 * item 8). Includes watcher.c to drive its checks without a running loop. */
#include <stdint.h>

#include "hub.h"
#include "loop.h"
#include "store_impl.h"
#include "test.h"
#include "watcher.c"

struct fake {
    struct store base;
    int64_t rows;          /* ids 1..rows are in the log */
    int fail_reads;        /* reads that fail with STORE_ERR_BUSY first */
    enum store_change next; /* what the next changes() call says */
};

static enum store_change fake_changes(struct store *st, enum store_wake why, long *retry_us)
{
    (void)why;
    (void)retry_us;
    struct fake *f = (struct fake *)st;
    enum store_change c = f->next;
    f->next = STORE_CHANGE_NONE; /* a commit is reported once, like data_version */
    return c;
}

static enum store_err fake_read(struct store *st, int64_t after, int64_t upto,
                                const char *const *channels, const size_t *channel_lens,
                                size_t channel_count, int limit, store_row_fn *fn, void *ctx,
                                int *count)
{
    (void)channels;
    (void)channel_lens;
    (void)channel_count;
    struct fake *f = (struct fake *)st;
    *count = 0;
    if (f->fail_reads > 0) {
        f->fail_reads--;
        return STORE_ERR_BUSY;
    }
    for (int64_t id = after + 1; id <= f->rows && id <= upto && *count < limit; id++) {
        struct store_row row = {.id = id, .channel = "c", .channel_len = 1, .data = "x", .data_len = 1};
        fn(&row, ctx);
        (*count)++;
    }
    return STORE_OK;
}

static enum store_err fake_last_id(struct store *st, int64_t *id)
{
    *id = ((struct fake *)st)->rows;
    return STORE_OK;
}

static enum store_err fake_bounds(struct store *st, const char *const *channels,
                                  const size_t *channel_lens, size_t channel_count,
                                  struct store_bounds *out)
{
    (void)channels;
    (void)channel_lens;
    (void)channel_count;
    *out = (struct store_bounds){.oldest_id = 1, .issued_max = ((struct fake *)st)->rows};
    return STORE_OK;
}

static int fake_watch_fd(const struct store *st)
{
    (void)st;
    return -1;
}

static unsigned fake_poll_ms(const struct store *st)
{
    (void)st;
    return 500;
}

static const char *fake_errmsg(const struct store *st)
{
    (void)st;
    return "database is locked";
}

static const struct store_ops FAKE_OPS = {
    .watch_fd = fake_watch_fd,
    .poll_ms = fake_poll_ms,
    .changes = fake_changes,
    .last_id = fake_last_id,
    .read = fake_read,
    .bounds = fake_bounds,
    .errmsg = fake_errmsg,
};

static struct payload *enc(const struct store_row *row, void *ctx)
{
    (void)row;
    (void)ctx;
    return payload_new(1);
}

static void count_delivery(void *subscriber, struct hub_delivery *d)
{
    int64_t *last = subscriber;
    *last = hub_delivery_row(d)->id;
}

static void replaced(void *ctx)
{
    (void)ctx;
}

/* Rows 4 and 5 are committed; the read after the commit fails once with
 * BUSY. The next slow poll, with no new commit, must publish them. */
static void test_failed_read_is_retried(void)
{
    static hub_encode_fn *const encs[] = {enc};
    struct fake f = {.base = {.ops = &FAKE_OPS}, .rows = 3};
    struct loop *loop = loop_new();
    struct hub *hub = hub_new(encs, 1, NULL);
    CHECK(loop != NULL && hub != NULL);
    int64_t last = 0;
    struct hub_sub *sub = hub_subscribe(hub, "c", 1, count_delivery, &last);
    char err[128];
    struct watcher *w = watcher_new(loop, &f.base, hub, replaced, NULL, err, sizeof err);
    CHECK(w != NULL);
    if (w == NULL || sub == NULL)
        return;
    CHECK_INT(watcher_last_id(w), 3);
    f.rows = 5;
    f.fail_reads = 1;
    f.next = STORE_CHANGE_COMMIT;
    check(w, STORE_WAKE_FD);
    CHECK_INT(last, 0); /* the read failed: nothing yet */
    check(w, STORE_WAKE_POLL);
    CHECK_INT(last, 5);
    CHECK_INT(watcher_last_id(w), 5);
    watcher_free(w);
    hub_unsubscribe(hub, sub);
    hub_free(hub);
    loop_free(loop);
}

int main(void)
{
    RUN(test_failed_read_is_retried);
    TEST_MAIN_END();
}
