/* Unit tests for feed_resume_point: where a resume continues and when a
 * litepush.reset goes first. Each row is one case of the contract: rows
 * after the resume id are sent with no gap and no duplicate, and a resume
 * that cannot be served that way is announced, never silent. */
#include <stdint.h>

#include "feed.h"
#include "test.h"

struct resume_case {
    const char *what;
    int64_t requested;
    struct store_bounds bounds; /* oldest_id, issued_max, pruned_through */
    int64_t seen;               /* the watcher's last id */
    int64_t after;              /* where the feed continues */
    const char *reason;         /* NULL: no reset */
};

static const struct resume_case CASES[] = {
    /* No gap: continue exactly after the id asked for. */
    {"in the middle of the log", 50, {1, 100, 0}, 100, 50, NULL},
    {"at the newest id", 100, {1, 100, 0}, 100, 100, NULL},
    {"before the first row (id 0)", 0, {1, 100, 0}, 100, 0, NULL},
    {"just before the oldest row kept", 40, {41, 100, 0}, 100, 40, NULL},
    {"at the oldest row kept", 41, {41, 100, 0}, 100, 41, NULL},
    {"at the pruned mark", 60, {41, 100, 60}, 100, 60, NULL},
    {"above the pruned mark", 70, {41, 100, 60}, 100, 70, NULL},
    {"empty new log, id 0", 0, {0, 0, 0}, 0, 0, NULL},
    {"emptied log, at the last id issued", 100, {0, 100, 100}, 100, 100, NULL},
    {"the watcher saw a row past the sequence read", 105, {1, 100, 0}, 105, 105, NULL},
    {"largest id, all issued", INT64_MAX, {1, INT64_MAX, 0}, 0, INT64_MAX, NULL},
    /* Rows after the id were deleted: continue after the hole. */
    {"below the oldest row kept", 10, {41, 100, 0}, 100, 40, FEED_RESET_PRUNED},
    {"id 0 after the first rows were pruned", 0, {2, 100, 0}, 100, 1, FEED_RESET_PRUNED},
    {"below the pruned mark of a channel", 50, {41, 100, 60}, 100, 60, FEED_RESET_PRUNED},
    {"pruned mark above a later oldest row", 45, {41, 100, 60}, 100, 60, FEED_RESET_PRUNED},
    {"every row pruned, none recorded", 50, {0, 100, 0}, 100, 100, FEED_RESET_PRUNED},
    {"every row pruned and recorded", 50, {0, 100, 100}, 100, 100, FEED_RESET_PRUNED},
    /* The id was never issued: the log was replaced or restored. */
    {"one past the newest id", 101, {1, 100, 0}, 100, 100, FEED_RESET_AHEAD},
    {"far ahead", INT64_MAX, {1, 100, 0}, 100, 100, FEED_RESET_AHEAD},
    {"any id on an empty new log", 5, {0, 0, 0}, 0, 0, FEED_RESET_AHEAD},
    {"ahead of both sequence and watcher", 200, {1, 100, 0}, 150, 150, FEED_RESET_AHEAD},
};

static void test_resume_table(void)
{
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const struct resume_case *c = &CASES[i];
        const char *reason = "unset";
        int64_t after = feed_resume_point(c->requested, &c->bounds, c->seen, &reason);
        bool same_reason = reason == c->reason ||
                           (reason != NULL && c->reason != NULL && strcmp(reason, c->reason) == 0);
        if (after != c->after || !same_reason)
            fprintf(stderr, "resume case %zu: %s: after %lld, reason %s\n", i, c->what,
                    (long long)after, reason ? reason : "none");
        CHECK_INT(after, c->after);
        CHECK(same_reason);
    }
}

/* Properties over a grid of ids: the feed never continues before the id
 * asked for without a reset (a duplicate the client did not ask for), never
 * past a row that is still kept (a gap), and never past the last id issued. */
static void test_resume_grid(void)
{
    for (int64_t oldest = 0; oldest <= 12; oldest++) {
        for (int64_t issued = oldest ? oldest : 0; issued <= 12; issued++) {
            for (int64_t pruned = 0; pruned <= issued; pruned++) {
                for (int64_t req = 0; req <= 14; req++) {
                    struct store_bounds b = {oldest, issued, pruned};
                    const char *reason;
                    int64_t after = feed_resume_point(req, &b, issued, &reason);
                    if (reason == NULL) {
                        CHECK_INT(after, req);
                        /* No kept row at or below the hole is skipped. */
                        CHECK(req >= pruned && (oldest == 0 ? req >= issued : req >= oldest - 1));
                    } else if (strcmp(reason, FEED_RESET_AHEAD) == 0) {
                        CHECK(req > issued && after == issued);
                    } else {
                        CHECK(req < after && after <= issued);
                        /* Continue right before the first row that is kept. */
                        CHECK(oldest == 0 || after >= oldest - 1);
                    }
                }
            }
        }
    }
}

int main(void)
{
    RUN(test_resume_table);
    RUN(test_resume_grid);
    TEST_MAIN_END();
}
