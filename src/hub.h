/* hub: channel -> subscribers fan-out, one per process, used by the SSE
 * responder and litepush-ws alike. The watcher hands each new row to
 * hub_publish once; the hub calls every subscriber of the row's channel.
 * A subscriber asks the delivery for the row encoded in its wire format; the
 * first ask encodes it (once per row and format), the rest share the bytes.
 *
 * Threading: a hub belongs to one event-loop thread; nothing here locks.
 * Ownership: the hub owns channels and subscriptions; hub_unsubscribe frees
 * a subscription. Deliver callbacks must not subscribe or unsubscribe (the
 * subscriber list is being walked): mark the connection closing and unsubscribe
 * after hub_publish returns. */
#ifndef LITEPUSH_HUB_H
#define LITEPUSH_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "payload.h"
#include "store.h"

#define HUB_MAX_FORMATS 4

struct hub;
struct hub_sub;
struct hub_delivery;

/* Encodes a row into a new payload (refs = 1) or returns NULL when out of
 * memory. ctx is the encode_ctx given to hub_new. The row's channel and
 * event are always valid UTF-8: the hub repairs names stored with other
 * bytes (each invalid sequence becomes U+FFFD) before calling it. */
typedef struct payload *hub_encode_fn(const struct store_row *row, void *ctx);
/* Delivers one row to one subscriber. */
typedef void hub_deliver_fn(void *subscriber, struct hub_delivery *delivery);

/* encoders[0..format_count) are the wire formats of this process; each is
 * called with encode_ctx (borrowed, e.g. the store for SQLite's JSON).
 * Channel names are hashed with a key drawn from crypto_random. Returns
 * NULL when out of memory or when no random key or SipHash is available. */
struct hub *hub_new(hub_encode_fn *const *encoders, size_t format_count, void *encode_ctx);
/* Frees the hub and every subscription still in it; NULL is a no-op. */
void hub_free(struct hub *hub);

/* Subscribes `subscriber` to a channel; deliver is called for each row.
 * Returns the subscription, or NULL when out of memory. */
struct hub_sub *hub_subscribe(struct hub *hub, const char *channel, size_t channel_len,
                              hub_deliver_fn *deliver, void *subscriber);
/* Ends a subscription; NULL is a no-op. */
void hub_unsubscribe(struct hub *hub, struct hub_sub *sub);

/* Rows whose data has more than max_row bytes (0: no limit) are encoded as
 * an event "litepush.skipped" with the row's id and channel and data
 * {"reason":"row-too-large","bytes":N,"maxRow":M} instead. */
void hub_set_max_row(struct hub *hub, size_t max_row);

/* Delivers row to every subscriber of its channel. Returns how many. */
size_t hub_publish(struct hub *hub, const struct store_row *row);

/* Encodes row in `format` outside a delivery (a replay): a new payload
 * (refs = 1) that the caller unrefs, or NULL when out of memory. */
struct payload *hub_encode(struct hub *hub, size_t format, const struct store_row *row);

/* During a deliver callback: the row, and its bytes in format `format`
 * (borrowed: take payload_ref to keep them). NULL when out of memory. */
const struct store_row *hub_delivery_row(const struct hub_delivery *d);
struct payload *hub_delivery_payload(struct hub_delivery *d, size_t format);

#endif
