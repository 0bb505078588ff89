/* feed: resume, replay and live delivery for one subscriber.
 *
 * A feed is replaying until its cursor reaches the watcher's last id, then
 * live. While replaying it ignores the hub: every row it skips is at or
 * below the watcher's last id (the watcher raises its last id only after
 * publishing a row), so a later replay batch reads it from the log. Live
 * rows are queued only above the cursor. Together: no gap and no duplicate,
 * whatever is inserted during a replay.
 *
 * Gap signal (CONTRACT): a resume id above every id ever issued means the
 * database was replaced or restored; a resume id below the oldest row kept
 * (minus one), or below the highest id retention pruned from the log or
 * from one of the feed's channels (litepush_meta), means rows after it
 * were pruned. Either way the owner first
 * gets a litepush.reset row, whose id is the point the feed continues
 * after, so a client that reconnects at once does not see it twice. */
#include "feed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub.h"
#include "payload.h"
#include "query.h"
#include "watcher.h"

static void deliver_live(void *subscriber, struct hub_delivery *d)
{
    struct feed *f = subscriber;
    const struct store_row *row = hub_delivery_row(d);
    if (!f->is_live || f->is_muted || row->id <= f->cursor)
        return;
    f->cursor = row->id;
    f->queue(f, hub_delivery_payload(d, f->format));
}

int64_t feed_resume_point(int64_t requested, const struct store_bounds *b, int64_t seen,
                          const char **reason)
{
    *reason = NULL;
    int64_t issued = b->issued_max > seen ? b->issued_max : seen;
    if (requested > issued) {
        *reason = FEED_RESET_AHEAD;
        return issued;
    }
    /* Rows up to kept_after may be gone: below the oldest row left, or at
     * or below what retention recorded as pruned. */
    int64_t kept_after = b->oldest_id ? b->oldest_id - 1 : issued;
    if (b->pruned_through > kept_after)
        kept_after = b->pruned_through;
    if (requested < kept_after) {
        *reason = FEED_RESET_PRUNED;
        return kept_after;
    }
    return requested;
}

static void queue_row(struct feed *f, const struct store_row *row)
{
    struct payload *p = hub_encode(f->src->hub, f->format, row);
    f->queue(f, p); /* NULL tells the owner it is out of memory */
    payload_unref(p);
}

static void queue_reset(struct feed *f, const char *reason, int64_t requested, int64_t after)
{
    char data[160];
    int n = snprintf(data, sizeof data,
                     "{\"reason\":\"%s\",\"lastEventId\":%lld,\"continueAfter\":%lld}", reason,
                     (long long)requested, (long long)after);
    static const char EVENT[] = "litepush.reset";
    struct store_row row = {.id = after,
                            .channel = f->channels[0],
                            .channel_len = f->channel_lens[0],
                            .event = EVENT,
                            .event_len = sizeof EVENT - 1,
                            .data = data,
                            .data_len = (size_t)n};
    queue_row(f, &row);
}

bool feed_open(struct feed *f, const struct feed_source *src, const struct query_request *q,
               bool has_resume, int64_t resume_id, size_t format, feed_queue_fn *queue)
{
    f->src = src;
    f->queue = queue;
    f->format = format;
    size_t names_len = 0;
    for (size_t i = 0; i < q->channel_count; i++)
        names_len += q->channel_lens[i];
    f->names = malloc(names_len ? names_len : 1);
    if (f->names == NULL)
        return false;
    char *name = f->names;
    for (size_t i = 0; i < q->channel_count; i++) {
        memcpy(name, q->channels[i], q->channel_lens[i]);
        f->channels[i] = name;
        f->channel_lens[i] = q->channel_lens[i];
        name += q->channel_lens[i];
        f->subs[i] = hub_subscribe(src->hub, f->channels[i], f->channel_lens[i], deliver_live, f);
        if (f->subs[i] == NULL)
            return false;
        f->channel_count = i + 1;
    }
    if (!has_resume) {
        /* Live from now: the log's last id, which may be ahead of the
         * watcher by a commit it has not read yet. */
        int64_t last = 0;
        store_last_id(src->store, &last);
        int64_t seen = watcher_last_id(src->watcher);
        f->cursor = last > seen ? last : seen;
        f->is_live = true;
        return true;
    }
    /* Without the bounds (a read error) the resume starts where asked. */
    const char *reason = NULL;
    struct store_bounds b;
    f->cursor = resume_id;
    if (store_bounds(src->store, f->channels, f->channel_lens, f->channel_count, &b) == STORE_OK)
        f->cursor = feed_resume_point(resume_id, &b, watcher_last_id(src->watcher), &reason);
    metrics_add(src->metrics, METRIC_REPLAYS, 1);
    if (reason != NULL) {
        bool is_ahead = strcmp(reason, FEED_RESET_AHEAD) == 0;
        metrics_add(src->metrics, is_ahead ? METRIC_RESETS_AHEAD : METRIC_RESETS_PRUNED, 1);
        queue_reset(f, reason, resume_id, f->cursor);
    }
    return feed_replay_step(f) == STORE_OK;
}

static void replay_row(const struct store_row *row, void *ctx)
{
    struct feed *f = ctx;
    f->cursor = row->id;
    if (!f->is_muted)
        queue_row(f, row);
}

enum store_err feed_replay_step(struct feed *f)
{
    if (f->is_live || f->is_muted)
        return STORE_OK;
    int64_t upto = watcher_last_id(f->src->watcher);
    int count = 0;
    if (f->cursor < upto) {
        enum store_err err =
            store_read(f->src->store, f->cursor, upto, f->channels, f->channel_lens,
                       f->channel_count, LIMITS_BATCH_ROWS, replay_row, f, &count);
        if (err != STORE_OK) {
            fprintf(stderr, "litepush: replay: %s\n", store_errmsg(f->src->store));
            return err;
        }
    }
    if (count < LIMITS_BATCH_ROWS) {
        /* Nothing above the cursor up to `upto` is left in these channels. */
        if (f->cursor < upto)
            f->cursor = upto;
        f->is_live = true;
    }
    return STORE_OK;
}

bool feed_is_replaying(const struct feed *f)
{
    return f->src != NULL && !f->is_live && !f->is_muted;
}

void feed_mute(struct feed *f)
{
    f->is_muted = true;
}

void feed_close(struct feed *f)
{
    for (size_t i = 0; i < f->channel_count; i++)
        hub_unsubscribe(f->src->hub, f->subs[i]);
    f->channel_count = 0;
    free(f->names);
    f->names = NULL;
    f->is_muted = true;
}
