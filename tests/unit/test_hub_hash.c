/* Unit tests for the hub's channel hash: names built to collide under an
 * unkeyed hash (FNV-1a, which the hub used before) must not pile up in
 * one bucket, and the keyed hash (SipHash-2-4 through crypto) matches the
 * reference vectors. Includes hub.c to read the bucket chains. */
#include <stdint.h>

#include "crypto.h"
#include "hub.c"
#include "test.h"

static uint64_t fnv1a(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void nop_deliver(void *subscriber, struct hub_delivery *d)
{
    (void)subscriber;
    (void)d;
}

static size_t longest_chain(const struct hub *hub)
{
    size_t longest = 0;
    for (size_t b = 0; b < hub->bucket_count; b++) {
        size_t n = 0;
        for (const struct channel *ch = hub->buckets[b]; ch != NULL; ch = ch->next)
            n++;
        if (n > longest)
            longest = n;
    }
    return longest;
}

/* 2000 channel names whose FNV-1a hashes share their low 12 bits: with an
 * unkeyed hash every one of them lands in the same bucket (the table has
 * 2048), and each subscribe or publish walks the whole chain. */
static void test_colliding_names_spread(void)
{
    enum { NAMES = 2000 };
    static char names[NAMES][16];
    size_t found = 0;
    for (uint32_t i = 0; found < NAMES; i++) {
        char buf[16];
        int n = snprintf(buf, sizeof buf, "c%08x", i);
        if ((fnv1a(buf, (size_t)n) & 0xfff) == 0)
            memcpy(names[found++], buf, (size_t)n + 1);
    }
    static hub_encode_fn *const none[1] = {NULL};
    struct hub *hub = hub_new(none, 0, NULL);
    CHECK(hub != NULL);
    if (hub == NULL)
        return;
    int dummy;
    for (size_t i = 0; i < NAMES; i++)
        CHECK(hub_subscribe(hub, names[i], strlen(names[i]), nop_deliver, &dummy) != NULL);
    CHECK_INT(hub->channel_count, NAMES);
    size_t longest = longest_chain(hub);
    if (longest > 16)
        fprintf(stderr, "longest chain %zu of %zu buckets\n", longest, hub->bucket_count);
    CHECK(longest <= 16);
    hub_free(hub);
}

/* Two hubs key their hashes independently. */
static void test_hubs_keyed_apart(void)
{
    static hub_encode_fn *const none[1] = {NULL};
    struct hub *a = hub_new(none, 0, NULL), *b = hub_new(none, 0, NULL);
    CHECK(a != NULL && b != NULL);
    if (a != NULL && b != NULL)
        CHECK(hash_name(a, "news", 4) != hash_name(b, "news", 4));
    hub_free(a);
    hub_free(b);
}

/* SipHash-2-4 reference vectors (the paper's key 00..0f, messages 00..n-1). */
static void test_siphash_vectors(void)
{
    uint8_t key[CRYPTO_SIPHASH_KEY_LEN], msg[16];
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (uint8_t)i;
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)i;
    struct crypto_siphash *h = crypto_siphash_new(key);
    CHECK(h != NULL);
    if (h == NULL)
        return;
    CHECK(crypto_siphash(h, msg, 0) == 0x726fdb47dd0e0e31ull);
    CHECK(crypto_siphash(h, msg, 1) == 0x74f839c593dc67fdull);
    CHECK(crypto_siphash(h, msg, 15) == 0xa129ca6149be45e5ull);
    CHECK(crypto_siphash(h, msg, 0) == 0x726fdb47dd0e0e31ull); /* reusable */
    crypto_siphash_free(h);
    crypto_siphash_free(NULL);
}

int main(void)
{
    RUN(test_colliding_names_spread);
    RUN(test_hubs_keyed_apart);
    RUN(test_siphash_vectors);
    TEST_MAIN_END();
}
