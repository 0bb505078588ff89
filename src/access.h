/* access: the one access decision of both programs, so that the rules are
 * written once: which credential counts, what answers a refusal, and why.
 * Access control is on when a key ring is configured (--auth-keys): every
 * channel then needs a token that covers it, unless --public lists it.
 *
 * Credentials, first found wins (a bad one is not rescued by a later one):
 * header "Authorization: Bearer TOKEN", query parameter token=TOKEN, cookie
 * litepush_token=TOKEN. A token that is presented must be valid even when
 * every requested channel is public.
 *
 * Answers: no token -> 401 + WWW-Authenticate: Bearer; a token refused by
 * token_verify -> 401 + WWW-Authenticate: Bearer error="invalid_token"; a
 * valid token that does not cover a channel -> 403 naming it.
 *
 * Pure apart from keyring_acquire (a short leaf lock). Any thread; the
 * struct json is the caller's. */
#ifndef LITEPUSH_ACCESS_H
#define LITEPUSH_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pattern.h"
#include "token.h"

struct json;
struct keyring;

/* How a program is configured. Both pointers are borrowed and outlive it. */
struct access_policy {
    struct keyring *keys;             /* NULL: access control is off */
    const struct pattern_set *public; /* --public patterns; NULL means none */
};

/* Where the token came from. */
enum access_source {
    ACCESS_SOURCE_NONE = 0,
    ACCESS_SOURCE_HEADER,
    ACCESS_SOURCE_QUERY,
    ACCESS_SOURCE_COOKIE
};

/* One request, as slices borrowed for the call. A NULL pointer is absent. */
struct access_request {
    const char *authorization; /* Authorization header value */
    size_t authorization_len;
    const char *query_token; /* the token= query parameter, decoded */
    size_t query_token_len;
    const char *cookie; /* Cookie header value */
    size_t cookie_len;
    const char *const *channels;
    const size_t *channel_lens;
    size_t channel_count;
    int64_t now_s; /* wall clock, seconds since 1970 */
};

enum access_result {
    ACCESS_ALLOW = 0,
    ACCESS_NO_TOKEN,  /* 401, WWW-Authenticate: Bearer */
    ACCESS_BAD_TOKEN, /* 401, WWW-Authenticate: Bearer error="invalid_token" */
    ACCESS_FORBIDDEN, /* 403 */
};

struct access_verdict {
    enum access_result result;
    int status;                   /* 0 (allowed), 401 or 403 */
    const char *www_authenticate; /* the header's value for a 401, else NULL */
    enum access_source source;
    enum token_err token_err; /* ACCESS_BAD_TOKEN: why */
    bool has_claims;          /* a valid token was presented: claims are set */
    struct token_claims claims;
    char reason[320]; /* one line for the response body and the log; never the token */
};

/* Decides req under policy into *out. With access control off every request
 * is allowed and no credential is looked at. */
void access_decide(struct json *j, const struct access_policy *policy,
                   const struct access_request *req, struct access_verdict *out);

/* True when a client may publish to channel: always when access control is
 * off (keys == NULL), else only when its token's publish patterns (NULL:
 * none; see pattern_list_copy) cover it (--public opens channels for
 * reading only). */
bool access_may_publish(const struct access_policy *policy, const struct pattern_list *publish,
                        const char *channel, size_t channel_len);

/* True for event names the server keeps for itself ("litepush." prefix). */
bool access_is_reserved_event(const char *event, size_t len);

/* The token of an Authorization value "Bearer TOKEN" (scheme
 * case-insensitive, RFC 6750 §2.1). False for another scheme. */
bool access_bearer(const char *value, size_t len, const char **tok, size_t *tok_len);
/* The value of the first cookie called name in a Cookie header value
 * (RFC 6265 §4.2.1; surrounding double quotes removed). */
bool access_cookie(const char *value, size_t len, const char *name, const char **out,
                   size_t *out_len);

/* True when origin[0..len) is one of list[0..n) exactly, or the list holds
 * "*". */
bool access_origin_listed(const char *const *list, size_t n, const char *origin, size_t len);

/* The client address for logs: the last X-Forwarded-For entry when the peer
 * is a trusted proxy (is_peer_trusted) and sent one, else peer. Written to
 * out[0..cap) NUL-terminated, with control bytes and spaces replaced. */
void access_client(const char *peer, bool is_peer_trusted, const char *xff, size_t xff_len,
                   char *out, size_t cap);

/* One log line (no newline) for a refused request: status, reason, client,
 * the token's sub when known, and the channels. Never the token. */
void access_log_line(const struct access_verdict *v, const char *client,
                     const char *const *channels, const size_t *channel_lens, size_t channel_count,
                     char *out, size_t cap);

#endif
