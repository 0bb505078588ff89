/* libFuzzer target for query. The input is the query string. Invariants:
 *   - query_parse never crashes and never touches a byte past len (the
 *     input and the len-byte scratch are exactly sized heap blocks);
 *   - on QUERY_OK there are 1..LIMITS_CHANNELS_PER_STREAM channels, each
 *     distinct, each passing query_check_channel, each inside scratch or
 *     the single "default"; an event id is in 0..INT64_MAX;
 *   - the same input parsed again from a fresh copy gives the same result;
 *   - a trailing or leading '&' (an empty parameter) changes nothing;
 *   - query_strerror has a reason for every result;
 *   - query_parse_event_id on the raw input agrees with a reference
 *     reading of the same bytes. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

struct result {
    enum query_err err;
    struct query_request req;
    char *scratch;
    char *copy;
};

static void parse(const uint8_t *in, size_t len, const char *before, const char *after,
                  struct result *r)
{
    size_t bl = strlen(before), al = strlen(after), n = bl + len + al;
    r->copy = malloc(n ? n : 1);
    r->scratch = malloc(n ? n : 1);
    CHECK(r->copy && r->scratch);
    memcpy(r->copy, before, bl);
    if (len)
        memcpy(r->copy + bl, in, len);
    memcpy(r->copy + bl + len, after, al);
    r->err = query_parse(r->copy, n, r->scratch, &r->req);
}

static void release(struct result *r)
{
    free(r->copy);
    free(r->scratch);
}

static void check_sound(const struct result *r, size_t scratch_len)
{
    CHECK(query_strerror(r->err) != NULL);
    if (r->err != QUERY_OK)
        return;
    const struct query_request *q = &r->req;
    CHECK(q->channel_count >= 1 && q->channel_count <= LIMITS_CHANNELS_PER_STREAM);
    for (size_t i = 0; i < q->channel_count; i++) {
        const char *c = q->channels[i];
        size_t l = q->channel_lens[i];
        CHECK(query_check_channel(c, l) == QUERY_OK);
        bool in_scratch = c >= r->scratch && c + l <= r->scratch + scratch_len;
        CHECK(in_scratch || (l == 7 && memcmp(c, "default", 7) == 0 && q->channel_count == 1));
        for (size_t j = 0; j < i; j++)
            CHECK(!(q->channel_lens[j] == l && memcmp(q->channels[j], c, l) == 0));
    }
    if (q->has_last_event_id)
        CHECK(q->last_event_id >= 0);
}

static void check_same(const struct result *a, const struct result *b)
{
    CHECK(a->err == b->err);
    if (a->err != QUERY_OK)
        return;
    CHECK(a->req.channel_count == b->req.channel_count);
    for (size_t i = 0; i < a->req.channel_count; i++) {
        CHECK(a->req.channel_lens[i] == b->req.channel_lens[i]);
        CHECK(memcmp(a->req.channels[i], b->req.channels[i], a->req.channel_lens[i]) == 0);
    }
    CHECK(a->req.has_last_event_id == b->req.has_last_event_id);
    if (a->req.has_last_event_id)
        CHECK(a->req.last_event_id == b->req.last_event_id);
}

/* Reference event-id reader: 1..19 ASCII digits, value <= INT64_MAX. */
static bool ref_event_id(const uint8_t *s, size_t len, int64_t *out)
{
    if (len == 0 || len > LIMITS_EVENT_ID_DIGITS)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        int d = s[i] - '0';
        if (v > (INT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    struct result a, b;
    parse(in, size, "", "", &a);
    check_sound(&a, size);
    CHECK(size <= LIMITS_QUERY_MAX || a.err == QUERY_ERR_TOO_LONG);

    parse(in, size, "", "", &b);
    check_sound(&b, size);
    check_same(&a, &b);
    release(&b);

    if (size + 1 <= LIMITS_QUERY_MAX) {
        parse(in, size, "", "&", &b);
        check_sound(&b, size + 1);
        check_same(&a, &b);
        release(&b);
        parse(in, size, "&", "", &b);
        check_sound(&b, size + 1);
        check_same(&a, &b);
        release(&b);
    }
    release(&a);

    int64_t got = -1, want = -1;
    bool ok = query_parse_event_id((const char *)in, size, &got) == QUERY_OK;
    CHECK(ok == ref_event_id(in, size, &want));
    if (ok)
        CHECK(got == want);
    return 0;
}
