/* hub: a chained hash table of channels, each with an array of
 * subscriptions. Removing a subscription swaps the last one into its slot,
 * so subscribe and unsubscribe are O(1); a channel is freed with its last
 * subscriber, so the table holds only channels someone listens to. */
#include "hub.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "utf8.h"

struct hub_sub {
    struct channel *channel;
    size_t slot; /* index in channel->subs */
    hub_deliver_fn *deliver;
    void *subscriber;
};

struct channel {
    struct channel *next; /* hash chain */
    uint64_t hash;
    struct hub_sub **subs;
    size_t sub_count;
    size_t sub_cap;
    size_t name_len;
    char name[];
};

struct hub {
    hub_encode_fn *encoders[HUB_MAX_FORMATS];
    size_t format_count;
    void *encode_ctx;
    struct crypto_siphash *hasher; /* keyed with random bytes per hub */
    size_t max_row;                /* data bytes a row may have (0: no limit) */
    struct channel **buckets;
    size_t bucket_count; /* a power of two */
    size_t channel_count;
};

struct hub_delivery {
    struct hub *hub;
    const struct store_row *row;
    struct payload *payloads[HUB_MAX_FORMATS];
};

/* Channel names come from clients, so the hash is keyed (SipHash with a
 * random key per hub): nobody can build names that share a bucket and turn
 * every subscribe and publish into a walk of one long chain. */
static uint64_t hash_name(struct hub *hub, const char *s, size_t len)
{
    return crypto_siphash(hub->hasher, s, len);
}

struct hub *hub_new(hub_encode_fn *const *encoders, size_t format_count, void *encode_ctx)
{
    struct hub *hub = calloc(1, sizeof *hub);
    if (hub == NULL || format_count > HUB_MAX_FORMATS)
        goto fail;
    memcpy(hub->encoders, encoders, format_count * sizeof *encoders);
    hub->format_count = format_count;
    hub->encode_ctx = encode_ctx;
    uint8_t key[CRYPTO_SIPHASH_KEY_LEN];
    if (!crypto_random(key, sizeof key) || (hub->hasher = crypto_siphash_new(key)) == NULL)
        goto fail;
    hub->bucket_count = 256;
    hub->buckets = calloc(hub->bucket_count, sizeof *hub->buckets);
    if (hub->buckets == NULL)
        goto fail;
    return hub;
fail:
    hub_free(hub);
    return NULL;
}

static void free_channel(struct channel *ch)
{
    for (size_t i = 0; i < ch->sub_count; i++)
        free(ch->subs[i]);
    free(ch->subs);
    free(ch);
}

void hub_free(struct hub *hub)
{
    if (hub == NULL)
        return;
    for (size_t b = 0; hub->buckets && b < hub->bucket_count; b++) {
        struct channel *ch = hub->buckets[b];
        while (ch != NULL) {
            struct channel *next = ch->next;
            free_channel(ch);
            ch = next;
        }
    }
    free(hub->buckets);
    crypto_siphash_free(hub->hasher);
    free(hub);
}

static struct channel **find_slot(struct hub *hub, const char *name, size_t len, uint64_t hash)
{
    struct channel **pp = &hub->buckets[hash & (hub->bucket_count - 1)];
    while (*pp != NULL &&
           !((*pp)->hash == hash && (*pp)->name_len == len && memcmp((*pp)->name, name, len) == 0))
        pp = &(*pp)->next;
    return pp;
}

/* Doubles the table when it averages more than one channel per bucket. */
static void maybe_grow(struct hub *hub)
{
    if (hub->channel_count <= hub->bucket_count)
        return;
    size_t count = hub->bucket_count * 2;
    struct channel **buckets = calloc(count, sizeof *buckets);
    if (buckets == NULL)
        return; /* longer chains, still correct */
    for (size_t b = 0; b < hub->bucket_count; b++) {
        struct channel *ch = hub->buckets[b];
        while (ch != NULL) {
            struct channel *next = ch->next;
            ch->next = buckets[ch->hash & (count - 1)];
            buckets[ch->hash & (count - 1)] = ch;
            ch = next;
        }
    }
    free(hub->buckets);
    hub->buckets = buckets;
    hub->bucket_count = count;
}

struct hub_sub *hub_subscribe(struct hub *hub, const char *channel, size_t channel_len,
                              hub_deliver_fn *deliver, void *subscriber)
{
    uint64_t hash = hash_name(hub, channel, channel_len);
    struct channel **slot = find_slot(hub, channel, channel_len, hash);
    struct channel *ch = *slot;
    if (ch == NULL) {
        ch = calloc(1, sizeof *ch + channel_len);
        if (ch == NULL)
            return NULL;
        ch->hash = hash;
        ch->name_len = channel_len;
        memcpy(ch->name, channel, channel_len);
        *slot = ch;
        hub->channel_count++;
        maybe_grow(hub);
    }
    if (ch->sub_count == ch->sub_cap) {
        size_t cap = ch->sub_cap ? ch->sub_cap * 2 : 4;
        struct hub_sub **subs = realloc(ch->subs, cap * sizeof *subs);
        if (subs == NULL)
            return NULL; /* an empty new channel stays until its next unsubscribe: harmless */
        ch->subs = subs;
        ch->sub_cap = cap;
    }
    struct hub_sub *sub = malloc(sizeof *sub);
    if (sub == NULL)
        return NULL;
    *sub = (struct hub_sub){
        .channel = ch, .slot = ch->sub_count, .deliver = deliver, .subscriber = subscriber};
    ch->subs[ch->sub_count++] = sub;
    return sub;
}

void hub_unsubscribe(struct hub *hub, struct hub_sub *sub)
{
    if (sub == NULL)
        return;
    struct channel *ch = sub->channel;
    struct hub_sub *last = ch->subs[--ch->sub_count];
    ch->subs[sub->slot] = last;
    last->slot = sub->slot;
    free(sub);
    if (ch->sub_count == 0) {
        struct channel **slot = find_slot(hub, ch->name, ch->name_len, ch->hash);
        *slot = ch->next;
        hub->channel_count--;
        free(ch->subs);
        free(ch);
    } else if (ch->sub_count < ch->sub_cap / 4 && ch->sub_cap > 16) {
        /* Give memory back after a crowd leaves. */
        struct hub_sub **subs = realloc(ch->subs, (ch->sub_cap / 2) * sizeof *subs);
        if (subs != NULL) {
            ch->subs = subs;
            ch->sub_cap /= 2;
        }
    }
}

void hub_set_max_row(struct hub *hub, size_t max_row)
{
    hub->max_row = max_row;
}

size_t hub_publish(struct hub *hub, const struct store_row *row)
{
    uint64_t hash = hash_name(hub, row->channel, row->channel_len);
    struct channel *ch = *find_slot(hub, row->channel, row->channel_len, hash);
    if (ch == NULL)
        return 0;
    struct hub_delivery d = {.hub = hub, .row = row};
    size_t n = ch->sub_count;
    for (size_t i = 0; i < n; i++)
        ch->subs[i]->deliver(ch->subs[i]->subscriber, &d);
    for (size_t f = 0; f < hub->format_count; f++)
        payload_unref(d.payloads[f]);
    return n;
}

/* Copies src[0..len) into *dst with invalid UTF-8 repaired (utf8.h);
 * false when out of memory. */
static bool repair_name(const char *src, size_t len, char **dst, size_t *dst_len)
{
    *dst_len = utf8_repaired_len((const uint8_t *)src, len);
    *dst = malloc(*dst_len + 1);
    if (*dst == NULL)
        return false;
    utf8_repair((const uint8_t *)src, len, (uint8_t *)*dst);
    return true;
}

/* Every encoder gets a row whose channel and event are valid UTF-8: a row
 * written by SQL may hold any bytes there (event=CAST(X'FF' AS TEXT)), and
 * a WebSocket text frame or an SSE field that is not UTF-8 would fail the
 * client, which would resume into the same row for ever. Such a name goes
 * out with each invalid sequence replaced by U+FFFD (README: "Encoding");
 * the row itself is delivered as usual. */
/* A row whose data is over max_row goes out as a litepush.skipped event
 * with the row's id and channel, so the client's last id moves past it and
 * a resume never stalls on it (README: "Row size"). */
static struct payload *encode_skipped(struct hub *hub, size_t format, const struct store_row *row)
{
    char data[128];
    int n = snprintf(data, sizeof data, "{\"reason\":\"row-too-large\",\"bytes\":%zu,\"maxRow\":%zu}",
                     row->data_len, hub->max_row);
    static const char EVENT[] = "litepush.skipped";
    struct store_row skipped = {.id = row->id,
                                .channel = row->channel,
                                .channel_len = row->channel_len,
                                .event = EVENT,
                                .event_len = sizeof EVENT - 1,
                                .data = data,
                                .data_len = (size_t)n};
    return hub->encoders[format](&skipped, hub->encode_ctx);
}

static struct payload *encode(struct hub *hub, size_t format, const struct store_row *row)
{
    if (hub->max_row > 0 && row->data_len > hub->max_row) {
        /* Names are repaired below; the substitute keeps only the channel. */
        if (utf8_is_valid((const uint8_t *)row->channel, row->channel_len))
            return encode_skipped(hub, format, row);
        struct store_row fixed = *row;
        char *channel = NULL;
        struct payload *p = NULL;
        if (repair_name(row->channel, row->channel_len, &channel, &fixed.channel_len)) {
            fixed.channel = channel;
            p = encode_skipped(hub, format, &fixed);
        }
        free(channel);
        return p;
    }
    bool is_channel_ok = utf8_is_valid((const uint8_t *)row->channel, row->channel_len);
    bool is_event_ok =
        row->event == NULL || utf8_is_valid((const uint8_t *)row->event, row->event_len);
    if (is_channel_ok && is_event_ok)
        return hub->encoders[format](row, hub->encode_ctx);
    struct store_row fixed = *row;
    char *channel = NULL, *event = NULL;
    struct payload *p = NULL;
    if (!is_channel_ok && !repair_name(row->channel, row->channel_len, &channel, &fixed.channel_len))
        goto out;
    if (!is_event_ok && !repair_name(row->event, row->event_len, &event, &fixed.event_len))
        goto out;
    if (channel != NULL)
        fixed.channel = channel;
    if (event != NULL)
        fixed.event = event;
    p = hub->encoders[format](&fixed, hub->encode_ctx);
out:
    free(channel);
    free(event);
    return p;
}

struct payload *hub_encode(struct hub *hub, size_t format, const struct store_row *row)
{
    return format < hub->format_count ? encode(hub, format, row) : NULL;
}

const struct store_row *hub_delivery_row(const struct hub_delivery *d)
{
    return d->row;
}

struct payload *hub_delivery_payload(struct hub_delivery *d, size_t format)
{
    if (format >= d->hub->format_count)
        return NULL;
    if (d->payloads[format] == NULL)
        d->payloads[format] = encode(d->hub, format, d->row);
    return d->payloads[format];
}

