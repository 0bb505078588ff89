/* Unit tests for hub: subscribe/publish/unsubscribe, delivery only to the
 * row's channel, one encode per row and format shared by every subscriber,
 * no encode for a row nobody reads, swap-remove of a middle subscriber,
 * channels freed with their last subscriber, table growth, and hub_free with
 * live subscriptions (LeakSanitizer checks that at exit). */
#include <stdint.h>

/* Included whole to count live channels, which the hub does not export. */
#include "hub.c"
#include "test.h"

static size_t hub_channel_count(const struct hub *hub)
{
    return hub->channel_count;
}

#define S(lit) lit, sizeof(lit) - 1

/* ---- encoders: "F<format>:<id>:<data>", counting calls in ctx --------- */

struct enc_ctx {
    int calls[HUB_MAX_FORMATS];
    int fail; /* return NULL, as when out of memory */
};

static struct payload *encode_fmt(const struct store_row *row, struct enc_ctx *ctx, int fmt)
{
    ctx->calls[fmt]++;
    if (ctx->fail)
        return NULL;
    char head[48];
    int n = snprintf(head, sizeof head, "F%d:%lld:", fmt, (long long)row->id);
    struct payload *p = payload_new((size_t)n + row->data_len);
    if (p == NULL)
        abort();
    memcpy(p->bytes, head, (size_t)n);
    memcpy(p->bytes + n, row->data, row->data_len);
    return p;
}

static struct payload *enc0(const struct store_row *row, void *ctx)
{
    return encode_fmt(row, ctx, 0);
}
static struct payload *enc1(const struct store_row *row, void *ctx)
{
    return encode_fmt(row, ctx, 1);
}

static hub_encode_fn *const encoders[] = {enc0, enc1};

/* ---- subscribers: record what arrives ---------------------------------- */

struct sub {
    int id;
    int deliveries;
    int64_t last_row_id;
    int want_format; /* -1: do not ask for a payload */
    int keep;        /* take a reference on the payload */
    struct payload *kept[8];
    int kept_count;
    struct payload *seen; /* last payload pointer handed out */
    const struct store_row *row_seen;
};

static void deliver(void *subscriber, struct hub_delivery *d)
{
    struct sub *s = subscriber;
    s->deliveries++;
    s->row_seen = hub_delivery_row(d);
    s->last_row_id = s->row_seen->id;
    if (s->want_format >= 0) {
        s->seen = hub_delivery_payload(d, (size_t)s->want_format);
        if (s->keep && s->seen != NULL && s->kept_count < 8)
            s->kept[s->kept_count++] = payload_ref(s->seen);
    }
}

static struct store_row row_on(const char *channel, size_t channel_len, int64_t id)
{
    return (struct store_row){.id = id,
                              .channel = guarded(channel, channel_len),
                              .channel_len = channel_len,
                              .event = NULL,
                              .data = "hello",
                              .data_len = 5};
}

static struct hub *new_hub(struct enc_ctx *ctx, size_t formats)
{
    struct hub *h = hub_new(encoders, formats, ctx);
    if (h == NULL)
        abort();
    return h;
}

static void test_subscribe_publish_unsubscribe(void)
{
    struct enc_ctx ctx = {0};
    struct hub *h = new_hub(&ctx, 1);
    struct sub a = {.id = 1, .want_format = 0, .keep = 1};
    CHECK_INT(hub_channel_count(h), 0);
    struct hub_sub *sa = hub_subscribe(h, guarded("news", 4), 4, deliver, &a);
    CHECK(sa != NULL);
    CHECK_INT(hub_channel_count(h), 1);
    struct store_row r = row_on(S("news"), 7);
    CHECK_INT(hub_publish(h, &r), 1);
    CHECK_INT(a.deliveries, 1);
    CHECK_INT(a.last_row_id, 7);
    CHECK(a.row_seen == &r);
    CHECK(a.seen != NULL);
    if (a.seen)
        CHECK_MEM(a.seen->bytes, a.seen->len, "F0:7:hello");
    CHECK_INT(ctx.calls[0], 1);
    hub_unsubscribe(h, sa);
    CHECK_INT(hub_channel_count(h), 0);
    CHECK_INT(hub_publish(h, &r), 0);
    CHECK_INT(a.deliveries, 1);
    CHECK_INT(ctx.calls[0], 1);
    CHECK_INT(a.kept_count, 1);
    if (a.kept_count == 1) {
        CHECK_INT(a.kept[0]->refs, 1); /* the hub let go of its own reference */
        payload_unref(a.kept[0]);
    }
    hub_unsubscribe(h, NULL); /* no-op */
    hub_free(h);
    hub_free(NULL);
}

static void test_only_own_channel(void)
{
    struct enc_ctx ctx = {0};
    struct hub *h = new_hub(&ctx, 1);
    struct sub a = {.want_format = -1}, b = {.want_format = -1}, c = {.want_format = -1};
    struct hub_sub *subs[4] = {
        hub_subscribe(h, S("a"), deliver, &a),
        hub_subscribe(h, S("b"), deliver, &b),
        hub_subscribe(h, S("a"), deliver, &c),
        hub_subscribe(h, S("b"), deliver, &c),
    };
    CHECK_INT(hub_channel_count(h), 2);
    struct store_row ra = row_on(S("a"), 1), rb = row_on(S("b"), 2), rz = row_on(S("z"), 3);
    CHECK_INT(hub_publish(h, &ra), 2);
    CHECK_INT(a.deliveries, 1);
    CHECK_INT(b.deliveries, 0);
    CHECK_INT(c.deliveries, 1);
    CHECK_INT(hub_publish(h, &rb), 2);
    CHECK_INT(a.deliveries, 1);
    CHECK_INT(b.deliveries, 1);
    CHECK_INT(c.deliveries, 2);
    CHECK_INT(c.last_row_id, 2);
    CHECK_INT(hub_publish(h, &rz), 0);
    CHECK_INT(a.deliveries + b.deliveries + c.deliveries, 4);
    /* Nobody asked for bytes: nothing was encoded. */
    CHECK_INT(ctx.calls[0], 0);
    for (int i = 0; i < 4; i++)
        hub_unsubscribe(h, subs[i]);
    CHECK_INT(hub_channel_count(h), 0);
    hub_free(h);
}

/* Names are bytes with a length: prefixes, NULs and case all differ. */
static void test_channel_names_are_exact(void)
{
    struct enc_ctx ctx = {0};
    struct hub *h = new_hub(&ctx, 1);
    static const struct {
        const char *name;
        size_t len;
    } names[] = {{S("a")}, {S("ab")}, {S("a\0")}, {S("A")}, {S("a\0b")}, {S("b")}, {S("")}};
    enum { N = sizeof names / sizeof names[0] };
    struct sub subs[N];
    struct hub_sub *hs[N];
    for (size_t i = 0; i < N; i++) {
        subs[i] = (struct sub){.id = (int)i, .want_format = -1};
        hs[i] =
            hub_subscribe(h, guarded(names[i].name, names[i].len), names[i].len, deliver, &subs[i]);
    }
    CHECK_INT(hub_channel_count(h), N);
    for (size_t i = 0; i < N; i++) {
        struct store_row r = row_on(names[i].name, names[i].len, (int64_t)i);
        CHECK_INT(hub_publish(h, &r), 1);
        for (size_t j = 0; j < N; j++)
            CHECK_INT(subs[j].deliveries, j <= i ? 1 : 0);
    }
    for (size_t i = 0; i < N; i++)
        hub_unsubscribe(h, hs[i]);
    hub_free(h);
}

static void test_encode_once_and_shared(void)
{
    struct enc_ctx ctx = {0};
    struct hub *h = new_hub(&ctx, 2);
    enum { N = 10 };
    struct sub subs[N];
    struct hub_sub *hs[N];
    for (int i = 0; i < N; i++) {
        /* Half ask for format 0, some for format 1, two ask for nothing. */
        subs[i] = (struct sub){.id = i, .want_format = i < 5 ? 0 : i < 8 ? 1 : -1, .keep = 1};
        hs[i] = hub_subscribe(h, S("c"), deliver, &subs[i]);
    }
    struct store_row r = row_on(S("c"), 99);
    CHECK_INT(hub_publish(h, &r), N);
    CHECK_INT(ctx.calls[0], 1);
    CHECK_INT(ctx.calls[1], 1);
    struct payload *p0 = subs[0].seen, *p1 = subs[5].seen;
    CHECK(p0 != NULL && p1 != NULL && p0 != p1);
    for (int i = 0; i < N; i++) {
        CHECK_INT(subs[i].deliveries, 1);
        if (subs[i].want_format == 0)
            CHECK(subs[i].seen == p0);
        if (subs[i].want_format == 1)
            CHECK(subs[i].seen == p1);
    }
    if (p0 && p1) {
        CHECK_MEM(p0->bytes, p0->len, "F0:99:hello");
        CHECK_MEM(p1->bytes, p1->len, "F1:99:hello");
        /* The hub dropped its own reference; the kept ones remain. */
        CHECK_INT(p0->refs, 5);
        CHECK_INT(p1->refs, 3);
    }
    /* The next row is encoded afresh, once again. */
    struct store_row r2 = row_on(S("c"), 100);
    CHECK_INT(hub_publish(h, &r2), N);
    CHECK_INT(ctx.calls[0], 2);
    CHECK_INT(ctx.calls[1], 2);
    CHECK(subs[0].seen != p0);
    if (subs[0].seen)
        CHECK_MEM(subs[0].seen->bytes, subs[0].seen->len, "F0:100:hello");
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < subs[i].kept_count; k++)
            payload_unref(subs[i].kept[k]);
        hub_unsubscribe(h, hs[i]);
    }
    hub_free(h);
}

/* A subscriber that asks for the same format twice gets the same bytes. */
static void deliver_twice(void *subscriber, struct hub_delivery *d)
{
    struct payload **out = subscriber;
    out[0] = hub_delivery_payload(d, 0);
    out[1] = hub_delivery_payload(d, 0);
    out[2] = hub_delivery_payload(d, 1); /* no such format in a one-format hub */
    out[3] = hub_delivery_payload(d, HUB_MAX_FORMATS);
}

static void test_payload_formats_out_of_range(void)
{
    struct enc_ctx ctx = {0};
    struct hub *h = new_hub(&ctx, 1);
    struct payload *got[4] = {0};
    struct hub_sub *s = hub_subscribe(h, S("x"), deliver_twice, got);
    struct store_row r = row_on(S("x"), 1);
    CHECK_INT(hub_publish(h, &r), 1);
    CHECK(got[0] != NULL);
    CHECK(got[0] == got[1]);
    CHECK(got[2] == NULL);
    CHECK(got[3] == NULL);
    CHECK_INT(ctx.calls[0], 1);
    CHECK_INT(ctx.calls[1], 0);
    hub_unsubscribe(h, s);
    hub_free(h);
}

static void test_encoder_failure(void)
{
    struct enc_ctx ctx = {.fail = 1};
    struct hub *h = new_hub(&ctx, 1);
    struct sub a = {.want_format = 0, .keep = 1}, b = {.want_format = 0, .keep = 1};
    struct hub_sub *sa = hub_subscribe(h, S("x"), deliver, &a);
    struct hub_sub *sb = hub_subscribe(h, S("x"), deliver, &b);
    struct store_row r = row_on(S("x"), 1);
    CHECK_INT(hub_publish(h, &r), 2);
    CHECK(a.seen == NULL && b.seen == NULL);
    CHECK_INT(a.kept_count + b.kept_count, 0);
    hub_unsubscribe(h, sa);
    hub_unsubscribe(h, sb);
    hub_free(h);
}

static void test_hub_encode_outside_delivery(void)
{
    struct enc_ctx ctx = {0};
    struct hub *h = new_hub(&ctx, 2);
    struct store_row r = row_on(S("x"), 5);
    struct payload *p = hub_encode(h, 1, &r);
    CHECK(p != NULL);
    if (p) {
        CHECK_INT(p->refs, 1);
        CHECK_MEM(p->bytes, p->len, "F1:5:hello");
    }
    payload_unref(p);
    CHECK(hub_encode(h, 2, &r) == NULL);
    CHECK_INT(ctx.calls[0], 0);
    CHECK_INT(ctx.calls[1], 1);
    hub_free(h);
}

/* Delivers to subs and checks that exactly the live ones got one row each. */
static void check_live(struct hub *h, struct sub *subs, struct hub_sub **hs, int n, int64_t id)
{
    int before[256], live = 0;
    for (int i = 0; i < n; i++) {
        before[i] = subs[i].deliveries;
        live += hs[i] != NULL;
    }
    struct store_row r = row_on(S("crowd"), id);
    CHECK_INT(hub_publish(h, &r), live);
    for (int i = 0; i < n; i++)
        CHECK_INT(subs[i].deliveries - before[i], hs[i] != NULL ? 1 : 0);
    CHECK_INT(hub_channel_count(h), live ? 1 : 0);
}

static void test_unsubscribe_middle(void)
{
    struct enc_ctx ctx = {0};
    struct hub *h = new_hub(&ctx, 1);
    enum { N = 7 };
    struct sub subs[N];
    struct hub_sub *hs[N];
    for (int i = 0; i < N; i++) {
        subs[i] = (struct sub){.id = i, .want_format = -1};
        hs[i] = hub_subscribe(h, S("crowd"), deliver, &subs[i]);
    }
    check_live(h, subs, hs, N, 1);
    /* middle, then first, then last, then the rest in a mixed order */
    static const int order[N] = {3, 0, 6, 2, 5, 1, 4};
    for (int k = 0; k < N; k++) {
        hub_unsubscribe(h, hs[order[k]]);
        hs[order[k]] = NULL;
        check_live(h, subs, hs, N, 2 + k);
    }
    CHECK_INT(hub_channel_count(h), 0);
    hub_free(h);
}

/* Many subscribers join and leave in a pseudo-random order, crossing the
 * growth and shrink points of the subscriber array. */
static void test_crowd_churn(void)
{
    struct enc_ctx ctx = {0};
    struct hub *h = new_hub(&ctx, 1);
    enum { N = 200 };
    static struct sub subs[N];
    static struct hub_sub *hs[N];
    for (int i = 0; i < N; i++) {
        subs[i] = (struct sub){.id = i, .want_format = -1};
        hs[i] = hub_subscribe(h, S("crowd"), deliver, &subs[i]);
        CHECK(hs[i] != NULL);
    }
    check_live(h, subs, hs, N, 1);
    uint32_t x = 7;
    for (int step = 0; step < 2000 && !test_current_failed; step++) {
        x = x * 1103515245u + 12345u;
        int i = (int)((x >> 8) % N);
        if (hs[i] != NULL) {
            hub_unsubscribe(h, hs[i]);
            hs[i] = NULL;
        } else if ((x >> 20) % 3 == 0) { /* rejoin less often: the crowd thins */
            hs[i] = hub_subscribe(h, S("crowd"), deliver, &subs[i]);
        }
        if (step % 37 == 0)
            check_live(h, subs, hs, N, step);
    }
    check_live(h, subs, hs, N, 9999);
    for (int i = 0; i < N; i++)
        hub_unsubscribe(h, hs[i]);
    CHECK_INT(hub_channel_count(h), 0);
    hub_free(h);
}

static void test_channel_freed_with_last_subscriber(void)
{
    struct enc_ctx ctx = {0};
    struct hub *h = new_hub(&ctx, 1);
    struct sub a = {.want_format = 0}, b = {.want_format = 0};
    struct hub_sub *s1 = hub_subscribe(h, S("x"), deliver, &a);
    struct hub_sub *s2 = hub_subscribe(h, S("x"), deliver, &b);
    struct hub_sub *s3 = hub_subscribe(h, S("y"), deliver, &a);
    CHECK_INT(hub_channel_count(h), 2);
    hub_unsubscribe(h, s1);
    CHECK_INT(hub_channel_count(h), 2);
    hub_unsubscribe(h, s2);
    CHECK_INT(hub_channel_count(h), 1);
    struct store_row rx = row_on(S("x"), 1);
    CHECK_INT(hub_publish(h, &rx), 0);
    CHECK_INT(ctx.calls[0], 0);
    /* Re-subscribing creates the channel again. */
    struct hub_sub *s4 = hub_subscribe(h, S("x"), deliver, &b);
    CHECK_INT(hub_channel_count(h), 2);
    CHECK_INT(hub_publish(h, &rx), 1);
    CHECK_INT(b.deliveries, 1);
    hub_unsubscribe(h, s3);
    hub_unsubscribe(h, s4);
    CHECK_INT(hub_channel_count(h), 0);
    hub_free(h);
}

/* Enough channels to double the table several times; every one still
 * reaches exactly its own subscriber, before and after half are dropped. */
static void test_many_channels(void)
{
    struct enc_ctx ctx = {0};
    struct hub *h = new_hub(&ctx, 1);
    enum { N = 3000 };
    static struct sub subs[N];
    static struct hub_sub *hs[N];
    char name[32];
    for (int i = 0; i < N; i++) {
        subs[i] = (struct sub){.id = i, .want_format = -1};
        int n = snprintf(name, sizeof name, "channel-%d", i);
        hs[i] = hub_subscribe(h, name, (size_t)n, deliver, &subs[i]);
        CHECK(hs[i] != NULL);
        CHECK_INT(hub_channel_count(h), i + 1);
    }
    for (int i = 0; i < N; i++) {
        int n = snprintf(name, sizeof name, "channel-%d", i);
        struct store_row r = {
            .id = i, .channel = name, .channel_len = (size_t)n, .data = "", .data_len = 0};
        CHECK_INT(hub_publish(h, &r), 1);
        CHECK_INT(subs[i].deliveries, 1);
        CHECK_INT(subs[i].last_row_id, i);
    }
    for (int i = 0; i < N; i += 2)
        hub_unsubscribe(h, hs[i]);
    CHECK_INT(hub_channel_count(h), N / 2);
    for (int i = 0; i < N; i++) {
        int n = snprintf(name, sizeof name, "channel-%d", i);
        struct store_row r = {
            .id = i, .channel = name, .channel_len = (size_t)n, .data = "", .data_len = 0};
        CHECK_INT(hub_publish(h, &r), i % 2);
        CHECK_INT(subs[i].deliveries, 1 + i % 2);
    }
    int total = 0;
    for (int i = 0; i < N; i++)
        total += subs[i].deliveries;
    CHECK_INT(total, N + N / 2);
    CHECK_INT(ctx.calls[0], 0);
    /* hub_free with the odd half still subscribed. */
    hub_free(h);
}

/* hub_free with live subscriptions on several channels (and a payload a
 * subscriber still holds, which stays valid): LeakSanitizer checks at exit. */
static void test_free_with_live_subscriptions(void)
{
    struct enc_ctx ctx = {0};
    struct hub *h = new_hub(&ctx, 2);
    struct sub a = {.want_format = 1, .keep = 1};
    for (int i = 0; i < 40; i++) {
        char name[8];
        int n = snprintf(name, sizeof name, "c%d", i % 5);
        CHECK(hub_subscribe(h, name, (size_t)n, deliver, &a) != NULL);
    }
    CHECK_INT(hub_channel_count(h), 5);
    struct store_row r = row_on(S("c3"), 1);
    CHECK_INT(hub_publish(h, &r), 8);
    CHECK_INT(ctx.calls[1], 1);
    hub_free(h);
    CHECK_INT(a.kept_count, 8);
    if (a.kept_count > 0) {
        CHECK_INT(a.kept[0]->refs, 8);
        CHECK_MEM(a.kept[0]->bytes, a.kept[0]->len, "F1:1:hello");
    }
    for (int k = 0; k < a.kept_count; k++)
        payload_unref(a.kept[k]);
}

static void test_new_limits(void)
{
    hub_encode_fn *many[HUB_MAX_FORMATS + 1] = {enc0, enc0, enc0, enc0, enc0};
    struct hub *h = hub_new(many, HUB_MAX_FORMATS, NULL);
    CHECK(h != NULL);
    hub_free(h);
    CHECK(hub_new(many, HUB_MAX_FORMATS + 1, NULL) == NULL);
}

/* ---- names that are not UTF-8 ------------------------------------------ */

/* Writes "<channel>|<event or NULL>" so the test sees what the encoder got. */
static struct payload *enc_names(const struct store_row *row, void *ctx)
{
    (void)ctx;
    size_t ev_len = row->event ? row->event_len : 4;
    struct payload *p = payload_new(row->channel_len + 1 + ev_len);
    if (p == NULL)
        abort();
    memcpy(p->bytes, row->channel, row->channel_len);
    p->bytes[row->channel_len] = '|';
    memcpy(p->bytes + row->channel_len + 1, row->event ? row->event : "NULL", ev_len);
    return p;
}

static void names_deliver(void *subscriber, struct hub_delivery *d)
{
    struct payload **got = subscriber;
    payload_unref(*got);
    *got = payload_ref(hub_delivery_payload(d, 0));
}

/* A row written by SQL with bytes that are not UTF-8 in its event or
 * channel reaches encoders repaired (U+FFFD per invalid sequence), on the
 * live path and the replay path alike; valid names pass unchanged. */
static void test_names_repaired(void)
{
    static hub_encode_fn *const enc[] = {enc_names};
    struct hub *h = hub_new(enc, 1, NULL);
    CHECK(h != NULL);
    if (h == NULL)
        return;
    struct payload *got = NULL;
    struct hub_sub *sub = hub_subscribe(h, S("c\xff"), names_deliver, &got);
    CHECK(sub != NULL);
    struct store_row r = row_on(S("c\xff"), 1);
    r.event = guarded("e\xed\xa0\x80", 4);
    r.event_len = 4;
    CHECK_INT(hub_publish(h, &r), 1);
    CHECK(got != NULL);
    if (got != NULL)
        CHECK_MEM(got->bytes, got->len, "c\xef\xbf\xbd|e\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    struct payload *p = hub_encode(h, 0, &r);
    CHECK(p != NULL && got != NULL && p->len == got->len && memcmp(p->bytes, got->bytes, p->len) == 0);
    payload_unref(p);
    struct store_row ok = row_on(S("caf\xc3\xa9"), 2);
    p = hub_encode(h, 0, &ok);
    CHECK(p != NULL);
    if (p != NULL)
        CHECK_MEM(p->bytes, p->len, "caf\xc3\xa9|NULL");
    payload_unref(p);
    payload_unref(got);
    hub_unsubscribe(h, sub);
    hub_free(h);
}

int main(void)
{
    RUN(test_subscribe_publish_unsubscribe);
    RUN(test_only_own_channel);
    RUN(test_channel_names_are_exact);
    RUN(test_encode_once_and_shared);
    RUN(test_payload_formats_out_of_range);
    RUN(test_encoder_failure);
    RUN(test_hub_encode_outside_delivery);
    RUN(test_unsubscribe_middle);
    RUN(test_crowd_churn);
    RUN(test_channel_freed_with_last_subscriber);
    RUN(test_many_channels);
    RUN(test_free_with_live_subscriptions);
    RUN(test_new_limits);
    RUN(test_names_repaired);
    TEST_MAIN_END();
}
