/* feed: one subscriber's view of the log, shared by SSE streams and
 * WebSocket connections. It subscribes to the hub, decides where a resume
 * starts (sending a litepush.reset first when history is missing), replays
 * missed rows a batch at a time and then goes live, with no gap and no
 * duplicate (see feed.c). Rows reach the owner as encoded payloads through
 * its queue callback, in id order.
 *
 * A struct feed is embedded in its owner, zero-filled before feed_open and
 * released by feed_close; its fields are read by the owner and written only
 * here. Loop thread only. The queue callback must not
 * call feed_close (mark the owner closing instead, as hub.h requires). */
#ifndef LITEPUSH_FEED_H
#define LITEPUSH_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "input_limits.h"
#include "metrics.h"
#include "store.h"

struct hub;
struct hub_sub;
struct watcher;
struct payload;
struct query_request;
struct feed;

/* What every feed of a process reads from; borrowed, outlives the feeds. */
struct feed_source {
    struct hub *hub;
    struct store *store;
    struct watcher *watcher;
    struct metrics *metrics; /* the loop's: resumes and resets are counted here */
};

/* Receives one encoded row (borrowed: payload_ref to keep it). */
typedef void feed_queue_fn(struct feed *f, struct payload *p);

struct feed {
    const struct feed_source *src;
    feed_queue_fn *queue;
    size_t format;  /* hub format this owner sends */
    int64_t cursor; /* highest id queued or known to be absent */
    bool is_live;   /* false while replaying */
    bool is_muted;  /* owner is closing: drop everything (feed_mute) */
    size_t channel_count;
    struct hub_sub *subs[LIMITS_CHANNELS_PER_STREAM];
    const char *channels[LIMITS_CHANNELS_PER_STREAM];
    size_t channel_lens[LIMITS_CHANNELS_PER_STREAM];
    char *names; /* owned storage of the channel names */
};

/* Subscribes to q's channels and positions the feed: with a resume id,
 * after it (queuing a litepush.reset first when rows after it are gone or
 * the id was never issued), replaying; without, live from now.
 * Returns false when out of memory (call feed_close anyway). */
bool feed_open(struct feed *f, const struct feed_source *src, const struct query_request *q,
               bool has_resume, int64_t resume_id, size_t format, feed_queue_fn *queue);

/* Queues the next batch of missed rows; goes live once caught up.
 * Returns STORE_OK or the read error (the owner should close). */
enum store_err feed_replay_step(struct feed *f);

/* True while an open feed is still replaying (not live, not muted). */
bool feed_is_replaying(const struct feed *f);

/* The owner is closing: from now on nothing is queued, live or replayed. */
void feed_mute(struct feed *f);

/* Why a resume cannot start where the client asked (the reason field of
 * litepush.reset). */
#define FEED_RESET_AHEAD "ahead-of-log"    /* the id was never issued: log replaced */
#define FEED_RESET_PRUNED "history-pruned" /* rows after the id were deleted */

/* Where a resume after `requested` continues, given the log's bounds (b,
 * from store_bounds on the feed's channels) and `seen`, the highest id the
 * watcher has published. Returns the id to continue after and sets *reason
 * to NULL when that is `requested` (no gap), or to FEED_RESET_AHEAD or
 * FEED_RESET_PRUNED when a litepush.reset must go first. Pure: every case
 * of the no-gap/no-duplicate contract is a row in tests/unit/test_feed.c. */
int64_t feed_resume_point(int64_t requested, const struct store_bounds *b, int64_t seen,
                          const char **reason);

/* Unsubscribes and frees the names; safe on a zero-filled or closed feed. */
void feed_close(struct feed *f);

#endif
