/* metrics: the counters both programs keep, and their Prometheus text
 * exposition (format 0.0.4: HELP and TYPE lines, `litepush_` prefix,
 * counters ending in `_total`). The series are fixed at compile time —
 * never one per channel or per client — so a scrape is small and its cost
 * does not grow with the traffic.
 *
 * Each event-loop thread owns one struct metrics and is its only writer
 * (relaxed atomics, so a scrape from another thread reads whole values
 * without a lock and the hot path pays no contention). A scrape sums the
 * workers' structs with metrics_sum and renders with metrics_render, which
 * is pure. */
#ifndef LITEPUSH_METRICS_H
#define LITEPUSH_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum metric {
    METRIC_OPEN,                 /* gauge: open streams or connections */
    METRIC_ACCEPTED,             /* streams / connections accepted */
    METRIC_REFUSED_FULL,         /* refused: at the connection limit */
    METRIC_REFUSED_AUTH,         /* refused: not allowed (401/403: token, Origin) */
    METRIC_REFUSED_BAD_REQUEST,  /* refused: malformed request (400, 405, 426, other 4xx) */
    METRIC_DROPPED_SLOW,         /* closed: output queue over its cap */
    METRIC_DROPPED_UNRESPONSIVE, /* closed: no pong, handshake timeout */
    METRIC_DROPPED_EXPIRED,      /* closed: the token expired */
    METRIC_ROWS_READ,            /* rows read from the log (every loop reads each; counted once) */
    METRIC_DELIVERIES,           /* rows queued to clients, live and replayed */
    METRIC_BYTES_SENT,           /* bytes written to client sockets */
    METRIC_REPLAYS,              /* resumes (a resume id given): replays from the log */
    METRIC_RESETS_PRUNED,        /* litepush.reset sent: history-pruned */
    METRIC_RESETS_AHEAD,         /* litepush.reset sent: ahead-of-log */
    METRIC_PUBLISHED,            /* rows inserted by WebSocket publishes */
    METRIC_PUBLISH_ERRORS,       /* publishes refused or failed */
    METRIC_WATCHER_LAG_US,       /* gauge: commit noticed -> rows fanned out, last batch */
    METRIC_LAST_ID,              /* gauge: highest id a watcher has seen */
    METRIC_COUNT
};

/* One worker's counters; zero-filled is all zeros. Aligned so two workers
 * never share a cache line. */
struct metrics {
    _Alignas(64) atomic_uint_least64_t value[METRIC_COUNT];
};

/* Adds n to a counter (or to the open gauge). Owner thread only. */
static inline void metrics_add(struct metrics *m, enum metric id, uint64_t n)
{
    atomic_store_explicit(&m->value[id],
                          atomic_load_explicit(&m->value[id], memory_order_relaxed) + n,
                          memory_order_relaxed);
}
/* Takes n from a gauge. Owner thread only. */
static inline void metrics_sub(struct metrics *m, enum metric id, uint64_t n)
{
    atomic_store_explicit(&m->value[id],
                          atomic_load_explicit(&m->value[id], memory_order_relaxed) - n,
                          memory_order_relaxed);
}
/* Sets a gauge. Owner thread only. */
static inline void metrics_set(struct metrics *m, enum metric id, uint64_t v)
{
    atomic_store_explicit(&m->value[id], v, memory_order_relaxed);
}

/* Sums n workers' metrics into out: counters and the open gauge add up;
 * the lag is the largest and the last id the highest. Rows read is the
 * largest too: every event loop's watcher reads every row, so a sum would
 * count each row once per loop. Any thread. */
void metrics_sum(const struct metrics *workers, size_t n, uint64_t out[METRIC_COUNT]);

/* Which series a program exposes: the SSE responder has no publishes and
 * no pongs. */
enum metrics_program { METRICS_SSE, METRICS_WS };

/* The refusal an HTTP status counts as: METRIC_REFUSED_AUTH for 401 and
 * 403, METRIC_REFUSED_BAD_REQUEST for any other 4xx, METRIC_COUNT (none)
 * otherwise; a 503 for a full server is counted where it is decided. Pure. */
enum metric metrics_refusal(int http_status);

/* Writes the text exposition of values into buf[cap] (NUL-terminated; cap
 * must exceed the text by that one byte)
 * and returns its length, or 0 when cap is too small
 * (METRICS_TEXT_MAX always suffices). Pure. */
#define METRICS_TEXT_MAX 4096
size_t metrics_render(const uint64_t values[METRIC_COUNT], enum metrics_program program, char *buf,
                      size_t cap);

/* Content-Type of the exposition. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
