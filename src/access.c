/* access: see access.h. */
#include "access.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "keys.h"

static const char COOKIE_NAME[] = "litepush_token";

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

bool access_bearer(const char *value, size_t len, const char **tok, size_t *tok_len)
{
    /* RFC 6750 §2.1: "Bearer" 1*SP b64token; we also trim trailing space. */
    if (len < 6 || strncasecmp(value, "Bearer", 6) != 0 || (len > 6 && !is_space(value[6])))
        return false;
    size_t i = 6;
    while (i < len && is_space(value[i]))
        i++;
    size_t end = len;
    while (end > i && is_space(value[end - 1]))
        end--;
    *tok = value + i;
    *tok_len = end - i;
    return true;
}

bool access_cookie(const char *value, size_t len, const char *name, const char **out,
                   size_t *out_len)
{
    size_t name_len = strlen(name);
    size_t pos = 0;
    while (pos < len) {
        const char *semi = memchr(value + pos, ';', len - pos);
        size_t end = semi ? (size_t)(semi - value) : len;
        size_t i = pos;
        while (i < end && is_space(value[i]))
            i++;
        const char *eq = memchr(value + i, '=', end - i);
        if (eq != NULL) {
            size_t key_end = (size_t)(eq - value);
            while (key_end > i && is_space(value[key_end - 1]))
                key_end--;
            if (key_end - i == name_len && memcmp(value + i, name, name_len) == 0) {
                size_t v = (size_t)(eq - value) + 1, ve = end;
                while (v < ve && is_space(value[v]))
                    v++;
                while (ve > v && is_space(value[ve - 1]))
                    ve--;
                if (ve - v >= 2 && value[v] == '"' && value[ve - 1] == '"') {
                    v++;
                    ve--;
                }
                *out = value + v;
                *out_len = ve - v;
                return true;
            }
        }
        pos = end + 1;
    }
    return false;
}

/* The first credential presented, by the contract's order. */
static enum access_source find_token(const struct access_request *r, const char **tok, size_t *len)
{
    if (r->authorization != NULL && access_bearer(r->authorization, r->authorization_len, tok, len))
        return ACCESS_SOURCE_HEADER;
    if (r->query_token != NULL) {
        *tok = r->query_token;
        *len = r->query_token_len;
        return ACCESS_SOURCE_QUERY;
    }
    if (r->cookie != NULL && access_cookie(r->cookie, r->cookie_len, COOKIE_NAME, tok, len))
        return ACCESS_SOURCE_COOKIE;
    return ACCESS_SOURCE_NONE;
}

void access_decide(struct json *j, const struct access_policy *policy,
                   const struct access_request *req, struct access_verdict *out)
{
    memset(out, 0, offsetof(struct access_verdict, claims));
    out->reason[0] = '\0';
    if (policy->keys == NULL)
        return;
    const char *tok = NULL;
    size_t tok_len = 0;
    out->source = find_token(req, &tok, &tok_len);
    if (out->source != ACCESS_SOURCE_NONE) {
        struct keyset *ks = keyring_acquire(policy->keys);
        out->token_err = token_verify(j, ks, tok, tok_len, req->now_s, &out->claims);
        keys_unref(ks);
        if (out->token_err != TOKEN_OK) {
            out->result = ACCESS_BAD_TOKEN;
            out->status = 401;
            out->www_authenticate = "Bearer error=\"invalid_token\"";
            snprintf(out->reason, sizeof out->reason, "%s", token_strerror(out->token_err));
            return;
        }
        out->has_claims = true;
    }
    for (size_t i = 0; i < req->channel_count; i++) {
        const char *ch = req->channels[i];
        size_t ch_len = req->channel_lens[i];
        if (policy->public != NULL && pattern_set_covers(policy->public, ch, ch_len))
            continue;
        if (!out->has_claims) {
            out->result = ACCESS_NO_TOKEN;
            out->status = 401;
            out->www_authenticate = "Bearer";
            snprintf(out->reason, sizeof out->reason, "channel '%.*s' needs a token", (int)ch_len,
                     ch);
            return;
        }
        if (!pattern_set_covers(&out->claims.subscribe, ch, ch_len)) {
            out->result = ACCESS_FORBIDDEN;
            out->status = 403;
            snprintf(out->reason, sizeof out->reason, "token does not allow channel '%.*s'",
                     (int)ch_len, ch);
            return;
        }
    }
}

bool access_may_publish(const struct access_policy *policy, const struct pattern_list *publish,
                        const char *channel, size_t channel_len)
{
    if (policy->keys == NULL)
        return true;
    return pattern_list_covers(publish, channel, channel_len);
}

bool access_is_reserved_event(const char *event, size_t len)
{
    return event != NULL && len >= 9 && memcmp(event, "litepush.", 9) == 0;
}

bool access_origin_listed(const char *const *list, size_t n, const char *origin, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i], "*") == 0)
            return true;
        if (strlen(list[i]) == len && memcmp(list[i], origin, len) == 0)
            return true;
    }
    return false;
}

/* Copies s[0..len) into out, replacing what would break a log line. */
static size_t put_clean(char *out, size_t cap, size_t at, const char *s, size_t len)
{
    for (size_t i = 0; i < len && at + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        out[at++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    out[at < cap ? at : cap - 1] = '\0';
    return at;
}

void access_client(const char *peer, bool is_peer_trusted, const char *xff, size_t xff_len,
                   char *out, size_t cap)
{
    const char *s = peer ? peer : "unknown";
    size_t len = strlen(s);
    if (is_peer_trusted && xff != NULL && xff_len > 0) {
        /* The last entry is the one our trusted proxy added. */
        size_t start = xff_len;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        while (start < xff_len && is_space(xff[start]))
            start++;
        size_t end = xff_len;
        while (end > start && is_space(xff[end - 1]))
            end--;
        if (end > start) {
            s = xff + start;
            len = end - start;
        }
    }
    if (len > 64)
        len = 64;
    size_t n = put_clean(out, cap, 0, s, len);
    for (size_t i = 0; i < n; i++)
        if (out[i] == ' ')
            out[i] = '?';
}

void access_log_line(const struct access_verdict *v, const char *client,
                     const char *const *channels, const size_t *channel_lens, size_t channel_count,
                     char *out, size_t cap)
{
    static const char *const SOURCES[] = {"", " from header", " from query", " from cookie"};
    int n = snprintf(out, cap, "refused %d (%s%s) client %s", v->status, v->reason,
                     SOURCES[v->source], client);
    size_t at = n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
    if (v->has_claims && v->claims.has_sub && at + 6 < cap) {
        memcpy(out + at, " sub ", 5);
        at = put_clean(out, cap, at + 5, v->claims.sub, v->claims.sub_len);
    }
    for (size_t i = 0; i < channel_count && at + 12 < cap; i++) {
        const char *sep = i == 0 ? " channels " : ",";
        memcpy(out + at, sep, strlen(sep));
        at = put_clean(out, cap, at + strlen(sep), channels[i], channel_lens[i]);
    }
    out[at < cap ? at : cap - 1] = '\0';
}
