/* litepush-prune: the retention tool's main. It deletes the oldest rows of
 * the log in small write transactions (store_prune_batch), pausing between
 * them so that publishers get the write lock within milliseconds, and
 * records the highest id it deleted in litepush_meta 'pruned_through'.
 *
 * Invariants: only a prefix of the id order (of one channel, or of the whole
 * log) is ever deleted, so the kept log stays a contiguous tail and a client
 * resuming from a deleted id gets litepush.reset; the bound is fixed once,
 * before the first batch, so rows published meanwhile are never touched.
 * Each batch commits whole or not at all, so the tool may be killed at any
 * moment. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "query.h"
#include "store.h"

/* Rows deleted per transaction by default (--batch). */
#define PRUNE_BATCH_DEFAULT 1000
/* Largest --batch: a bigger transaction would hold publishers back too long. */
#define PRUNE_BATCH_MAX 100000
/* Pause between batches by default (--pause), in ms. SQLite's busy handler
 * retries a waiting publisher at growing intervals of up to 25 ms during its
 * first 100 ms, so a gap this long is always noticed by a waiting writer. */
#define PRUNE_PAUSE_MS_DEFAULT 25
#define PRUNE_PAUSE_MS_MAX 60000
/* Largest --keep-days (a century). */
#define PRUNE_KEEP_DAYS_MAX 36500
/* How often a batch may find the write lock taken past the busy timeout
 * (2 s each) before the tool gives up. */
#define PRUNE_BUSY_RETRIES 10

#define MS_PER_DAY 86400000LL

static const char USAGE[] =
    "NAME\n"
    "    litepush-prune - delete old rows from the litepush message log\n"
    "\n"
    "SYNOPSIS\n"
    "    litepush-prune --db PATH (--keep-days N | --keep-rows N) [--channel NAME]\n"
    "                   [--batch ROWS] [--pause MS] [--dry-run]\n"
    "    litepush-prune --help\n"
    "\n"
    "DESCRIPTION\n"
    "    Deletes the oldest rows of the table messages, a small transaction at a\n"
    "    time, while publishers and open SSE/WebSocket streams go on. It is meant\n"
    "    to run from cron or a systemd timer.\n"
    "\n"
    "    Rows are deleted in id order, oldest first, up to a bound fixed when the\n"
    "    tool starts: the kept log is always an unbroken tail, so a client that\n"
    "    resumes from a deleted id receives a litepush.reset event (reason\n"
    "    history-pruned) instead of a silent gap. Rows published while the tool\n"
    "    runs are never deleted. Ids are never reused: the next row gets a higher\n"
    "    id than any deleted one (AUTOINCREMENT).\n"
    "\n"
    "    Each batch runs in its own BEGIN IMMEDIATE ... COMMIT transaction, which\n"
    "    also raises the 'pruned_through' entry of the table litepush_meta to the\n"
    "    highest id deleted so far. Between batches the tool pauses for --pause ms,\n"
    "    or for as long as the last batch took if that is longer, so it holds the\n"
    "    write lock at most half of the time and a publisher (with a busy timeout)\n"
    "    waits no more than a batch's duration. Killing it is safe at any moment:\n"
    "    an unfinished batch is rolled back.\n"
    "\n"
    "    Deleted rows leave free pages in the file that new rows reuse; the file\n"
    "    does not shrink (VACUUM would lock out publishers while it runs).\n"
    "\n"
    "OPTIONS\n"
    "    --db PATH        the SQLite log; LITEPUSH_DB is used when --db is not\n"
    "                     given. The file must exist.\n"
    "    --keep-days N    delete the rows whose created_at is more than N days\n"
    "                     (N x 24 h) old, stopping at the first row, in id order,\n"
    "                     that is newer (0-36500; 0 deletes up to now)\n"
    "    --keep-rows N    keep the newest N rows and delete the older ones\n"
    "                     (0 deletes every row); per channel with --channel,\n"
    "                     else counted over the whole log\n"
    "    --channel NAME   touch only this channel's rows; without it every\n"
    "                     channel is pruned\n"
    "    --batch ROWS     rows deleted per transaction (default 1000, 1-100000)\n"
    "    --pause MS       least pause between transactions (default 25,\n"
    "                     0-60000)\n"
    "    --dry-run        count what would be deleted, change nothing\n"
    "    --help           this text\n"
    "\n"
    "    Exactly one of --keep-days and --keep-rows must be given.\n"
    "\n"
    "OUTPUT\n"
    "    One summary line on standard output, e.g.\n"
    "    litepush-prune: deleted 5000 rows (ids 1-5000) from every channel, older\n"
    "    than 2024-05-01 00:00:00 UTC, in 5 batches, 0.18 s; pruned_through 5000\n"
    "    Errors go to standard error. When standard error is a terminal, a long\n"
    "    prune also shows its progress there (rows done, rate, time left) on one\n"
    "    line; from cron or a pipe it shows nothing.\n"
    "\n"
    "EXIT STATUS\n"
    "    0  success, including when there was nothing to delete\n"
    "    1  database error: missing, unreadable or read-only file, I/O error, or\n"
    "       the write lock stayed taken for more than about 20 s\n"
    "    2  bad or missing flag\n"
    "\n"
    "EXAMPLES\n"
    "    litepush-prune --db /var/lib/litepush/push.db --keep-days 7\n"
    "    litepush-prune --db push.db --keep-rows 1000 --channel chat --dry-run\n"
    "    crontab: 17 4 * * *  litepush-prune --db /var/lib/litepush/push.db --keep-days 30\n"
    "\n"
    "SEE ALSO\n"
    "    sqlite3(1); sql/admin.sql for views of the log; the litepush README.\n";

struct prune_config {
    const char *db;
    const char *channel; /* NULL: every channel */
    int64_t keep_days;   /* -1 when not given */
    int64_t keep_rows;   /* -1 when not given */
    int64_t batch_rows;
    int64_t pause_ms;
    bool is_dry_run;
};

static int64_t now_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int parse_number(const char *flag, const char *s, int64_t min, int64_t max, int64_t *out)
{
    int64_t v;
    if (query_parse_event_id(s, strlen(s), &v) != QUERY_OK || v < min || v > max) {
        fprintf(stderr, "litepush-prune: %s wants a whole number from %lld to %lld, not '%s'\n",
                flag, (long long)min, (long long)max, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* Parses argv into cfg; returns 0, 2 for a bad command line, or -1 after
 * printing --help. */
static int parse_args(int argc, char **argv, struct prune_config *cfg)
{
    static const struct option opts[] = {{"db", required_argument, NULL, 'd'},
                                         {"keep-days", required_argument, NULL, 'k'},
                                         {"keep-rows", required_argument, NULL, 'r'},
                                         {"channel", required_argument, NULL, 'c'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {"pause", required_argument, NULL, 'p'},
                                         {"dry-run", no_argument, NULL, 'n'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'd':
            cfg->db = optarg;
            break;
        case 'k':
            bad = parse_number("--keep-days", optarg, 0, PRUNE_KEEP_DAYS_MAX, &cfg->keep_days);
            break;
        case 'r':
            bad = parse_number("--keep-rows", optarg, 0, INT64_MAX, &cfg->keep_rows);
            break;
        case 'c': {
            enum query_err qerr = query_check_channel(optarg, strlen(optarg));
            if (qerr != QUERY_OK) {
                fprintf(stderr, "litepush-prune: --channel: %s\n", query_strerror(qerr));
                bad = 1;
            }
            cfg->channel = optarg;
            break;
        }
        case 'b':
            bad = parse_number("--batch", optarg, 1, PRUNE_BATCH_MAX, &cfg->batch_rows);
            break;
        case 'p':
            bad = parse_number("--pause", optarg, 0, PRUNE_PAUSE_MS_MAX, &cfg->pause_ms);
            break;
        case 'n':
            cfg->is_dry_run = true;
            break;
        case 'h':
            fputs(USAGE, stdout);
            return -1;
        default:
            bad = 1;
        }
        if (bad)
            goto usage;
    }
    if (optind < argc) {
        fprintf(stderr, "litepush-prune: unexpected argument '%s'\n", argv[optind]);
        goto usage;
    }
    if (cfg->db == NULL || cfg->db[0] == '\0') {
        fputs("litepush-prune: give --db PATH (or LITEPUSH_DB)\n", stderr);
        goto usage;
    }
    if ((cfg->keep_days < 0) == (cfg->keep_rows < 0)) {
        fputs("litepush-prune: give exactly one of --keep-days N and --keep-rows N\n", stderr);
        goto usage;
    }
    return 0;
usage:
    fputs("Try 'litepush-prune --help'.\n", stderr);
    return 2;
}

/* "from channel 'x', older than ... UTC" or "..., keeping the newest N rows". */
static void describe(const struct prune_config *cfg, int64_t cutoff_ms, char *buf, size_t cap)
{
    char scope[200];
    if (cfg->channel != NULL)
        snprintf(scope, sizeof scope, "from channel '%s'", cfg->channel);
    else
        snprintf(scope, sizeof scope, "from every channel");
    if (cfg->keep_days >= 0) {
        char when[64] = "?";
        time_t t = (time_t)(cutoff_ms / 1000);
        struct tm tm;
        if (gmtime_r(&t, &tm) != NULL)
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
        snprintf(buf, cap, "%s, older than %s", scope, when);
    } else {
        snprintf(buf, cap, "%s, keeping the newest %lld rows", scope, (long long)cfg->keep_rows);
    }
}

static int db_error(struct store *st, const char *what, enum store_err err)
{
    fprintf(stderr, "litepush-prune: %s: %s (%s)\n", what, store_strerror(err), store_errmsg(st));
    return 1;
}

/* Progress of a long prune on a terminal: one line on stderr, rewritten in
 * place with \r at most every PROGRESS_EVERY_MS and ended by a newline.
 * Nothing at all when stderr is not a terminal (cron, systemd, pipes). */
#define PROGRESS_EVERY_MS 250
struct progress {
    bool is_on;      /* stderr is a terminal */
    bool is_showing; /* a line is on screen without its newline */
    int64_t total;   /* rows to delete */
    int64_t started_ms, shown_ms;
    int width; /* of the line on screen, to blank what is left of it */
};

static void progress_start(struct progress *p, int64_t total)
{
    *p = (struct progress){.is_on = isatty(STDERR_FILENO) == 1, .total = total};
    p->started_ms = p->shown_ms = now_ms(CLOCK_MONOTONIC);
}

/* Shows done of total, the rate and the time left; is_final shows it even
 * if one was just shown. */
static void progress_show(struct progress *p, int64_t done, bool is_final)
{
    int64_t now = now_ms(CLOCK_MONOTONIC);
    if (!p->is_on || (!is_final && now - p->shown_ms < PROGRESS_EVERY_MS))
        return;
    p->shown_ms = now;
    double secs = (double)(now - p->started_ms) / 1000.0;
    double rate = secs > 0 ? (double)done / secs : 0;
    char left[32] = "";
    if (!is_final && rate > 0 && p->total > done)
        snprintf(left, sizeof left, ", %.0f s left", (double)(p->total - done) / rate);
    char line[160];
    int n = snprintf(line, sizeof line, "litepush-prune: %lld of %lld rows (%d%%), %.0f rows/s%s",
                     (long long)done, (long long)p->total,
                     p->total > 0 ? (int)(done * 100 / p->total) : 100, rate, left);
    if (n < 0)
        return;
    fprintf(stderr, "\r%s%*s", line, p->width > n ? p->width - n : 0, "");
    p->width = n;
    p->is_showing = true;
}

/* Ends the line, if one is showing, so that what follows starts afresh. */
static void progress_end(struct progress *p)
{
    if (p->is_showing)
        fputc('\n', stderr);
    p->is_showing = false;
}

/* Deletes below keep_from a batch at a time; returns the exit status. */
static int prune(struct store *st, const struct prune_config *cfg, int64_t keep_from,
                 struct progress *progress, int64_t *deleted, int64_t *max_id, int64_t *batches)
{
    int busy = 0;
    for (;;) {
        int64_t n = 0, hi = 0, started = now_ms(CLOCK_MONOTONIC);
        enum store_err err =
            store_prune_batch(st, cfg->channel, keep_from, (int)cfg->batch_rows, &n, &hi);
        int64_t took = now_ms(CLOCK_MONOTONIC) - started;
        if (err == STORE_ERR_BUSY && ++busy <= PRUNE_BUSY_RETRIES) {
            sleep_ms(cfg->pause_ms);
            continue;
        }
        if (err != STORE_OK) {
            progress_end(progress);
            fprintf(stderr, "litepush-prune: deleting rows: %s after %lld rows\n",
                    store_strerror(err), (long long)*deleted);
            return 1;
        }
        busy = 0;
        if (n == 0)
            return 0;
        *deleted += n;
        *max_id = hi;
        (*batches)++;
        progress_show(progress, *deleted, false);
        if (n < cfg->batch_rows)
            return 0; /* a short batch was the last one */
        /* Hold the write lock at most half of the time, however slow the disk. */
        sleep_ms(took > cfg->pause_ms ? took : cfg->pause_ms);
    }
}

int main(int argc, char **argv)
{
    struct prune_config cfg = {.db = getenv("LITEPUSH_DB"),
                               .keep_days = -1,
                               .keep_rows = -1,
                               .batch_rows = PRUNE_BATCH_DEFAULT,
                               .pause_ms = PRUNE_PAUSE_MS_DEFAULT};
    int rc = parse_args(argc, argv, &cfg);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    /* store_open would create a missing file: a typo must not make a new log. */
    if (access(cfg.db, F_OK) != 0) {
        fprintf(stderr, "litepush-prune: %s: %s\n", cfg.db, strerror(errno));
        return 1;
    }
    char err_text[512];
    struct store *st = store_open(cfg.db, err_text, sizeof err_text);
    if (st == NULL) {
        fprintf(stderr, "litepush-prune: %s\n", err_text);
        return 1;
    }
    int64_t started = now_ms(CLOCK_MONOTONIC);
    int64_t cutoff_ms = now_ms(CLOCK_REALTIME) - cfg.keep_days * MS_PER_DAY;
    int64_t keep_from = 0, rows = 0, min_id = 0, max_id = 0, deleted = 0, batches = 0;
    struct store_bounds before = {0}, after = {0};
    size_t channel_len = cfg.channel ? strlen(cfg.channel) : 0;
    enum store_err err = cfg.keep_days >= 0
                             ? store_prune_bound_age(st, cfg.channel, cutoff_ms, &keep_from)
                             : store_prune_bound_rows(st, cfg.channel, cfg.keep_rows, &keep_from);
    if (err == STORE_OK)
        err = store_prune_count(st, cfg.channel, keep_from, &rows, &min_id, &max_id);
    if (err == STORE_OK)
        err = store_bounds(st, &cfg.channel, &channel_len, cfg.channel ? 1 : 0, &before);
    if (err != STORE_OK) {
        rc = db_error(st, "reading the log", err);
        goto out;
    }
    char what[400];
    describe(&cfg, cutoff_ms, what, sizeof what);
    if (cfg.is_dry_run) {
        printf("litepush-prune: dry run: would delete %lld rows (ids %lld-%lld) %s;"
               " pruned_through stays %lld\n",
               (long long)rows, (long long)min_id, (long long)max_id, what,
               (long long)before.pruned_through);
        goto out;
    }
    struct progress progress;
    progress_start(&progress, rows);
    rc = prune(st, &cfg, keep_from, &progress, &deleted, &max_id, &batches);
    if (progress.is_showing)
        progress_show(&progress, deleted, true);
    progress_end(&progress);
    if (rc != 0)
        goto out;
    err = store_bounds(st, &cfg.channel, &channel_len, cfg.channel ? 1 : 0, &after);
    if (err != STORE_OK) {
        rc = db_error(st, "reading the log", err);
        goto out;
    }
    double secs = (double)(now_ms(CLOCK_MONOTONIC) - started) / 1000.0;
    if (deleted > 0)
        printf("litepush-prune: deleted %lld rows (ids %lld-%lld) %s, in %lld %s, %.2f s;"
               " pruned_through %lld\n",
               (long long)deleted, (long long)min_id, (long long)max_id, what, (long long)batches,
               batches == 1 ? "batch" : "batches", secs, (long long)after.pruned_through);
    else
        printf("litepush-prune: deleted 0 rows %s; pruned_through %lld\n", what,
               (long long)after.pruned_through);
out:
    store_close(st);
    return rc;
}
