/* peer_limit: how many connections each client address holds, shared by
 * every worker thread of litepush-ws, so that one address cannot take all
 * of --max-connections (--max-per-address). Addresses are 16 bytes (IPv4
 * as ::ffff:a.b.c.d); the table is keyed by SipHash (crypto.h) so that
 * addresses cannot be chosen to collide. One mutex guards it: it is taken
 * once per connection opened or closed, never per message. Created and
 * freed by the main thread; peer_limit_take and peer_limit_give may be
 * called from any thread. */
#ifndef LITEPUSH_PEER_LIMIT_H
#define LITEPUSH_PEER_LIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PEER_LIMIT_ADDR_LEN 16

struct peer_limit;

/* A table allowing max_per_address connections per address. NULL when out
 * of memory or when no random key is available. */
struct peer_limit *peer_limit_new(size_t max_per_address);
/* Frees pl; NULL is a no-op. */
void peer_limit_free(struct peer_limit *pl);
/* Counts one more connection of addr; false, counting nothing, when addr
 * already holds max_per_address (or memory runs out). */
bool peer_limit_take(struct peer_limit *pl, const uint8_t addr[PEER_LIMIT_ADDR_LEN]);
/* Counts one connection of addr less (one that peer_limit_take counted). */
void peer_limit_give(struct peer_limit *pl, const uint8_t addr[PEER_LIMIT_ADDR_LEN]);

/* The client address of a connection from peer (a sockaddr_in or
 * sockaddr_in6, peer_len bytes) into out: the peer itself, or, when the peer
 * is a trusted proxy (loopback: the web server in front of us) and
 * forwarded_for (the last X-Forwarded-For line, forwarded_len bytes, may be
 * NULL) ends with an address, that address. Returns false when there is
 * no IP address to count (a unix socket, or a loopback peer that forwarded
 * none: a local client, not counted). Pure. */
bool peer_limit_client_addr(const void *peer, size_t peer_len, const char *forwarded_for,
                            size_t forwarded_len, uint8_t out[PEER_LIMIT_ADDR_LEN]);

#endif
