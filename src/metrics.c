/* metrics: summing and rendering. One table lists every series; rows of
 * one family (same name) are adjacent and share one HELP and TYPE line. */
#include "metrics.h"

#include <stdio.h>
#include <string.h>

enum kind { COUNTER, GAUGE };
enum scope { BOTH, WS_ONLY };

static const struct series {
    const char *family;
    enum kind kind;
    const char *help;
    const char *label; /* `name="value"`, or NULL */
    enum metric id;
    enum scope scope;
} SERIES[] = {
    {"litepush_connections_open", GAUGE, "Open SSE streams or WebSocket connections.", NULL,
     METRIC_OPEN, BOTH},
    {"litepush_connections_accepted_total", COUNTER, "Streams or connections accepted since start.",
     NULL, METRIC_ACCEPTED, BOTH},
    {"litepush_connections_refused_total", COUNTER, "Requests refused before streaming, by reason.",
     "reason=\"full\"", METRIC_REFUSED_FULL, BOTH},
    {"litepush_connections_refused_total", COUNTER, NULL, "reason=\"auth\"", METRIC_REFUSED_AUTH,
     BOTH},
    {"litepush_connections_refused_total", COUNTER, NULL, "reason=\"bad_request\"",
     METRIC_REFUSED_BAD_REQUEST, BOTH},
    {"litepush_connections_dropped_total", COUNTER,
     "Open streams or connections closed by the server, by reason.", "reason=\"slow\"",
     METRIC_DROPPED_SLOW, BOTH},
    {"litepush_connections_dropped_total", COUNTER, NULL, "reason=\"unresponsive\"",
     METRIC_DROPPED_UNRESPONSIVE, WS_ONLY},
    {"litepush_connections_dropped_total", COUNTER, NULL, "reason=\"token_expired\"",
     METRIC_DROPPED_EXPIRED, BOTH},
    {"litepush_rows_read_total", COUNTER,
     "Rows read from the log (every event loop reads each row; counted once).", NULL,
     METRIC_ROWS_READ, BOTH},
    {"litepush_deliveries_total", COUNTER, "Rows queued to clients, live and replayed.", NULL,
     METRIC_DELIVERIES, BOTH},
    {"litepush_bytes_sent_total", COUNTER, "Bytes written to client sockets.", NULL,
     METRIC_BYTES_SENT, BOTH},
    {"litepush_replays_total", COUNTER,
     "Resumes (Last-Event-ID or lastEventId given) that replayed missed rows from the log.", NULL,
     METRIC_REPLAYS, BOTH},
    {"litepush_resets_total", COUNTER, "litepush.reset events sent, by reason.",
     "reason=\"history-pruned\"", METRIC_RESETS_PRUNED, BOTH},
    {"litepush_resets_total", COUNTER, NULL, "reason=\"ahead-of-log\"", METRIC_RESETS_AHEAD, BOTH},
    {"litepush_published_total", COUNTER, "Rows inserted by WebSocket publishes.", NULL,
     METRIC_PUBLISHED, WS_ONLY},
    {"litepush_publish_errors_total", COUNTER, "WebSocket publishes refused or not stored.", NULL,
     METRIC_PUBLISH_ERRORS, WS_ONLY},
    {"litepush_watcher_lag_seconds", GAUGE,
     "Time from noticing a commit to fanning its rows out, last batch.", NULL,
     METRIC_WATCHER_LAG_US, BOTH},
    {"litepush_last_id", GAUGE, "Highest event id a log watcher has seen.", NULL, METRIC_LAST_ID,
     BOTH},
};

void metrics_sum(const struct metrics *workers, size_t n, uint64_t out[METRIC_COUNT])
{
    memset(out, 0, sizeof(uint64_t) * METRIC_COUNT);
    for (size_t w = 0; w < n; w++) {
        for (int id = 0; id < METRIC_COUNT; id++) {
            uint64_t v = atomic_load_explicit(&workers[w].value[id], memory_order_relaxed);
            if (id == METRIC_WATCHER_LAG_US || id == METRIC_LAST_ID || id == METRIC_ROWS_READ)
                out[id] = v > out[id] ? v : out[id];
            else
                out[id] += v;
        }
    }
}

enum metric metrics_refusal(int http_status)
{
    if (http_status == 401 || http_status == 403)
        return METRIC_REFUSED_AUTH;
    if (http_status >= 400 && http_status < 500)
        return METRIC_REFUSED_BAD_REQUEST;
    return METRIC_COUNT;
}

size_t metrics_render(const uint64_t values[METRIC_COUNT], enum metrics_program program, char *buf,
                      size_t cap)
{
    size_t len = 0;
    const char *last_family = "";
    for (size_t i = 0; i < sizeof SERIES / sizeof SERIES[0]; i++) {
        const struct series *s = &SERIES[i];
        if (s->scope == WS_ONLY && program != METRICS_WS)
            continue;
        int n;
        if (strcmp(s->family, last_family) != 0) {
            /* The first row of a family carries its help; a family whose
             * first row is skipped would have none, so the table puts a
             * BOTH row first in every family. */
            n = snprintf(buf + len, cap - len, "# HELP %s %s\n# TYPE %s %s\n", s->family, s->help,
                         s->family, s->kind == COUNTER ? "counter" : "gauge");
            if (n < 0 || (size_t)n >= cap - len)
                return 0;
            len += (size_t)n;
            last_family = s->family;
        }
        uint64_t v = values[s->id];
        const char *open = s->label ? "{" : "", *label = s->label ? s->label : "",
                   *close = s->label ? "}" : "";
        if (s->id == METRIC_WATCHER_LAG_US)
            n = snprintf(buf + len, cap - len, "%s%s%s%s %llu.%06llu\n", s->family, open, label,
                         close, (unsigned long long)(v / 1000000),
                         (unsigned long long)(v % 1000000));
        else
            n = snprintf(buf + len, cap - len, "%s%s%s%s %llu\n", s->family, open, label, close,
                         (unsigned long long)v);
        if (n < 0 || (size_t)n >= cap - len)
            return 0;
        len += (size_t)n;
    }
    return len;
}
