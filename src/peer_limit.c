/* peer_limit: a chained hash table of (address, count) under one mutex.
 * An entry exists only while its address holds a connection. */
#include "peer_limit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "crypto.h"

#define BUCKETS 4096 /* a power of two */

struct entry {
    struct entry *next;
    uint8_t addr[PEER_LIMIT_ADDR_LEN];
    size_t count;
};

struct peer_limit {
    pthread_mutex_t mu;
    size_t max_per_address;
    struct crypto_siphash *hasher;
    struct entry *buckets[BUCKETS];
};

struct peer_limit *peer_limit_new(size_t max_per_address)
{
    struct peer_limit *pl = calloc(1, sizeof *pl);
    uint8_t key[CRYPTO_SIPHASH_KEY_LEN];
    if (pl == NULL || !crypto_random(key, sizeof key) ||
        (pl->hasher = crypto_siphash_new(key)) == NULL) {
        free(pl);
        return NULL;
    }
    pthread_mutex_init(&pl->mu, NULL);
    pl->max_per_address = max_per_address;
    return pl;
}

void peer_limit_free(struct peer_limit *pl)
{
    if (pl == NULL)
        return;
    for (size_t b = 0; b < BUCKETS; b++) {
        struct entry *e = pl->buckets[b];
        while (e != NULL) {
            struct entry *next = e->next;
            free(e);
            e = next;
        }
    }
    crypto_siphash_free(pl->hasher);
    pthread_mutex_destroy(&pl->mu);
    free(pl);
}

/* The slot that holds addr's entry, or the NULL at the end of its chain.
 * Call with the mutex held. */
static struct entry **find(struct peer_limit *pl, const uint8_t addr[PEER_LIMIT_ADDR_LEN])
{
    uint64_t h = crypto_siphash(pl->hasher, addr, PEER_LIMIT_ADDR_LEN);
    struct entry **pp = &pl->buckets[h & (BUCKETS - 1)];
    while (*pp != NULL && memcmp((*pp)->addr, addr, PEER_LIMIT_ADDR_LEN) != 0)
        pp = &(*pp)->next;
    return pp;
}

bool peer_limit_take(struct peer_limit *pl, const uint8_t addr[PEER_LIMIT_ADDR_LEN])
{
    bool ok = false;
    pthread_mutex_lock(&pl->mu);
    struct entry **pp = find(pl, addr);
    if (*pp == NULL && (*pp = calloc(1, sizeof **pp)) != NULL)
        memcpy((*pp)->addr, addr, PEER_LIMIT_ADDR_LEN);
    if (*pp != NULL && (*pp)->count < pl->max_per_address) {
        (*pp)->count++;
        ok = true;
    } else if (*pp != NULL && (*pp)->count == 0) {
        struct entry *e = *pp; /* max_per_address 0: nothing to keep */
        *pp = e->next;
        free(e);
    }
    pthread_mutex_unlock(&pl->mu);
    return ok;
}

void peer_limit_give(struct peer_limit *pl, const uint8_t addr[PEER_LIMIT_ADDR_LEN])
{
    pthread_mutex_lock(&pl->mu);
    struct entry **pp = find(pl, addr);
    if (*pp != NULL && --(*pp)->count == 0) {
        struct entry *e = *pp;
        *pp = e->next;
        free(e);
    }
    pthread_mutex_unlock(&pl->mu);
}

static void map_v4(const void *in4, uint8_t out[PEER_LIMIT_ADDR_LEN])
{
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, in4, 4);
}

/* Parses the last comma-separated entry of an X-Forwarded-For value: the
 * address the nearest proxy saw (entries before it are the client's say). */
static bool parse_last_forwarded(const char *s, size_t len, uint8_t out[PEER_LIMIT_ADDR_LEN])
{
    size_t end = len;
    while (end > 0 && (s[end - 1] == ' ' || s[end - 1] == '\t'))
        end--;
    size_t start = end;
    while (start > 0 && s[start - 1] != ',')
        start--;
    while (start < end && (s[start] == ' ' || s[start] == '\t'))
        start++;
    char buf[INET6_ADDRSTRLEN + 1];
    if (end - start == 0 || end - start >= sizeof buf)
        return false;
    memcpy(buf, s + start, end - start);
    buf[end - start] = '\0';
    uint8_t v4[4];
    if (inet_pton(AF_INET, buf, v4) == 1) {
        map_v4(v4, out);
        return true;
    }
    return inet_pton(AF_INET6, buf, out) == 1;
}

bool peer_limit_client_addr(const void *peer, size_t peer_len, const char *forwarded_for,
                            size_t forwarded_len, uint8_t out[PEER_LIMIT_ADDR_LEN])
{
    const struct sockaddr *sa = peer;
    bool is_loopback;
    if (sa->sa_family == AF_INET && peer_len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = peer;
        map_v4(&in->sin_addr, out);
        is_loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    } else if (sa->sa_family == AF_INET6 && peer_len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = peer;
        memcpy(out, &in6->sin6_addr, PEER_LIMIT_ADDR_LEN);
        is_loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
                      (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && out[12] == 127);
    } else {
        return false; /* a unix socket: the web server on this machine */
    }
    if (!is_loopback)
        return true;
    /* A trusted proxy: count the address it forwarded, if any. */
    return forwarded_for != NULL && parse_last_forwarded(forwarded_for, forwarded_len, out);
}
