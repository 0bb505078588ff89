/* Unit tests for metrics: summing across workers (counters add, lag and
 * last id and rows read take the largest), the refusal an HTTP status
 * counts as, the exposition of each program (every family
 * has one HELP and one TYPE line before its samples, counters end in
 * _total, the WebSocket-only series are absent from the SSE page), the
 * seconds formatting of the lag, and a buffer too small by one byte. */
#include "metrics.h"
#include "test.h"

static int count_lines(const char *text, size_t len, const char *prefix)
{
    int n = 0;
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len;
        if (end - i >= plen && memcmp(text + i, prefix, plen) == 0)
            n++;
        i = end + 1;
    }
    return n;
}

static void test_sum(void)
{
    static struct metrics w[3];
    metrics_add(&w[0], METRIC_DELIVERIES, 5);
    metrics_add(&w[1], METRIC_DELIVERIES, 7);
    metrics_add(&w[2], METRIC_OPEN, 3);
    metrics_sub(&w[2], METRIC_OPEN, 1);
    metrics_set(&w[0], METRIC_LAST_ID, 90);
    metrics_set(&w[1], METRIC_LAST_ID, 120);
    metrics_set(&w[1], METRIC_WATCHER_LAG_US, 10);
    metrics_set(&w[2], METRIC_WATCHER_LAG_US, 2500);
    /* every loop reads every row: counted once, not three times */
    metrics_add(&w[0], METRIC_ROWS_READ, 40);
    metrics_add(&w[1], METRIC_ROWS_READ, 40);
    metrics_add(&w[2], METRIC_ROWS_READ, 39);
    uint64_t v[METRIC_COUNT];
    metrics_sum(w, 3, v);
    CHECK_INT(v[METRIC_DELIVERIES], 12);
    CHECK_INT(v[METRIC_OPEN], 2);
    CHECK_INT(v[METRIC_LAST_ID], 120);
    CHECK_INT(v[METRIC_WATCHER_LAG_US], 2500);
    CHECK_INT(v[METRIC_PUBLISHED], 0);
    CHECK_INT(v[METRIC_ROWS_READ], 40);
}

static void test_refusal(void)
{
    CHECK_INT(metrics_refusal(400), METRIC_REFUSED_BAD_REQUEST);
    CHECK_INT(metrics_refusal(405), METRIC_REFUSED_BAD_REQUEST);
    CHECK_INT(metrics_refusal(426), METRIC_REFUSED_BAD_REQUEST);
    CHECK_INT(metrics_refusal(401), METRIC_REFUSED_AUTH);
    CHECK_INT(metrics_refusal(403), METRIC_REFUSED_AUTH);
    CHECK_INT(metrics_refusal(200), METRIC_COUNT);
    CHECK_INT(metrics_refusal(503), METRIC_COUNT);
    CHECK_INT(metrics_refusal(399), METRIC_COUNT);
    CHECK_INT(metrics_refusal(500), METRIC_COUNT);
}

static void test_render_ws(void)
{
    uint64_t v[METRIC_COUNT] = {0};
    v[METRIC_OPEN] = 4;
    v[METRIC_REFUSED_AUTH] = 2;
    v[METRIC_WATCHER_LAG_US] = 1500;
    v[METRIC_PUBLISHED] = 9;
    char buf[METRICS_TEXT_MAX];
    size_t len = metrics_render(v, METRICS_WS, buf, sizeof buf);
    CHECK(len > 0);
    buf[len < sizeof buf ? len : sizeof buf - 1] = '\0';
    CHECK(strstr(buf, "\nlitepush_connections_open 4\n") != NULL);
    CHECK(strstr(buf, "litepush_connections_refused_total{reason=\"auth\"} 2\n") != NULL);
    CHECK(strstr(buf, "litepush_watcher_lag_seconds 0.001500\n") != NULL);
    CHECK(strstr(buf, "litepush_published_total 9\n") != NULL);
    CHECK(strstr(buf, "reason=\"unresponsive\"") != NULL);
    /* one HELP and one TYPE per family */
    CHECK_INT(count_lines(buf, len, "# HELP litepush_connections_refused_total "), 1);
    CHECK_INT(count_lines(buf, len, "# TYPE litepush_connections_refused_total counter"), 1);
    CHECK_INT(count_lines(buf, len, "# TYPE "), count_lines(buf, len, "# HELP "));
    CHECK(buf[len - 1] == '\n');
}

static void test_render_sse(void)
{
    uint64_t v[METRIC_COUNT] = {0};
    char buf[METRICS_TEXT_MAX + 1];
    size_t len = metrics_render(v, METRICS_SSE, buf, METRICS_TEXT_MAX);
    CHECK(len > 0);
    buf[len] = '\0';
    CHECK(strstr(buf, "published") == NULL);
    CHECK(strstr(buf, "unresponsive") == NULL);
    CHECK(strstr(buf, "litepush_deliveries_total 0\n") != NULL);
    /* every counter sample ends in _total */
    for (char *line = strtok(buf, "\n"); line != NULL; line = strtok(NULL, "\n"))
        if (strncmp(line, "# TYPE ", 7) == 0 && strstr(line, " counter") != NULL)
            CHECK(strstr(line, "_total counter") != NULL);
}

static void test_too_small(void)
{
    uint64_t v[METRIC_COUNT] = {0};
    char buf[METRICS_TEXT_MAX];
    size_t len = metrics_render(v, METRICS_WS, buf, sizeof buf);
    CHECK(len > 0);
    CHECK_INT(metrics_render(v, METRICS_WS, buf, len), 0);
    CHECK_INT(metrics_render(v, METRICS_WS, buf, len + 1), len);
}

int main(void)
{
    RUN(test_sum);
    RUN(test_refusal);
    RUN(test_render_ws);
    RUN(test_render_sse);
    RUN(test_too_small);
    TEST_MAIN_END();
}
