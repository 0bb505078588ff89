/* json: every JSON litepush reads or writes — the WebSocket row envelope,
 * publish frames, token headers and claims — built and parsed by SQLite's
 * JSON1 functions on a private in-memory connection, so no JSON is written
 * or parsed by hand and every store backend shares one implementation.
 * One struct json per thread (it is one SQLite connection); created by
 * json_open, freed by json_close. Text handed out is copied into caller
 * storage or lives until the next call on the same struct json. */
#ifndef LITEPUSH_JSON_H
#define LITEPUSH_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "input_limits.h"
#include "store.h"

struct json;
struct payload;

/* A new handle, or NULL with a one-line reason in err[err_cap]. */
struct json *json_open(char *err, size_t err_cap);
/* Frees the handle; NULL is a no-op. */
void json_close(struct json *j);

/* The WebSocket envelope of a row: {"id":N,"channel":"c","event":null|"e",
 * "data":"..."}, plus "encoding":"base64" when is_base64 (the caller has
 * encoded data_text). Returns a new payload (refs = 1) or NULL. */
struct payload *json_row_envelope(struct json *j, const struct store_row *row,
                                  const char *data_text, size_t data_len, bool is_base64);

/* A publish frame's fields, as slices valid until the next call on j.
 * channel is "default" when absent; event is NULL when absent or null. */
struct json_publish {
    const char *channel;
    size_t channel_len;
    const char *event;
    size_t event_len;
    const char *data;
    size_t data_len;
};
/* Parses a publish frame: an object with "data" (a string, required),
 * "channel" (a string, default "default") and "event" (a string or null).
 * Returns NULL and fills *out, or a static one-line reason for refusing it. */
const char *json_parse_publish(struct json *j, const char *doc, size_t len,
                               struct json_publish *out);

enum json_type {
    JSON_ABSENT = 0, /* no value at that path */
    JSON_NULL,
    JSON_TRUE,
    JSON_FALSE,
    JSON_INTEGER,
    JSON_REAL,
    JSON_TEXT,
    JSON_ARRAY,
    JSON_OBJECT,
};

/* One value read from a document. For JSON_TEXT, text[0..text_len) is the
 * decoded string, valid until the next call on j. */
struct json_value {
    enum json_type type;
    int64_t integer; /* JSON_INTEGER */
    double real;     /* JSON_REAL, and JSON_INTEGER as a double */
    const char *text;
    size_t text_len;
};

/* Reads the value at path (a JSON1 path such as "$.exp" or
 * '$."litepush".subscribe') in doc. Returns false when doc is not
 * well-formed JSON; a missing path is JSON_ABSENT. */
bool json_get(struct json *j, const char *doc, size_t len, const char *path,
              struct json_value *out);

/* Calls fn for each element of the array at path, in order. Returns false,
 * having called fn for none of them, when doc is malformed, the value at
 * path is not an array or an element is not a string; an absent path is an
 * empty array. Each text slice is valid during its call only. */
typedef bool json_text_fn(const char *text, size_t len, void *ctx);
bool json_each_text(struct json *j, const char *doc, size_t len, const char *path, json_text_fn *fn,
                    void *ctx);

/* The JSON of a JWT header, {"alg":"HS256","typ":"JWT"} plus "kid" when kid
 * is not NULL. Returns a malloc'd NUL-terminated string (the caller frees
 * it) or NULL. */
char *json_jwt_header(struct json *j, const char *kid);
/* The JSON of litepush token claims: {"iat":iat,"exp":exp} plus "sub" when
 * sub is not NULL, and "litepush":{"subscribe":[...],"publish":[...]}.
 * Returns a malloc'd NUL-terminated string or NULL. */
char *json_jwt_claims(struct json *j, int64_t iat, int64_t exp, const char *sub,
                      const char *const *subscribe, size_t subscribe_count,
                      const char *const *publish, size_t publish_count);

/* A value a client chose to match the server's answer to its frame: the
 * "ref" of a publish or the "ping" of a ping. Copied, so it stays valid
 * after further calls on the struct json. */
struct json_ref {
    enum json_type type; /* JSON_ABSENT, JSON_INTEGER or JSON_TEXT */
    int64_t integer;
    size_t text_len;
    char text[LIMITS_WS_REF_BYTES];
};

/* Reads the value at path (a JSON1 path such as "$.ref") in doc as a ref:
 * absent, an integer that fits 64 bits signed, or a string of at most
 * LIMITS_WS_REF_BYTES bytes of valid UTF-8 (without \u0000). Returns NULL
 * and fills *out, or a static one-line reason (out is then JSON_ABSENT)
 * for any other value. A doc that is not well-formed JSON, or not an
 * object, has no ref: NULL with JSON_ABSENT (its parser refuses it). */
const char *json_get_ref(struct json *j, const char *doc, size_t len, const char *path,
                         struct json_ref *out);

/* The answer to a publish that carried a ref (not JSON_ABSENT):
 * {"ok":true,"ref":R,"id":N} when error is NULL, else
 * {"error":"<error>","ref":R}. Returns a new payload (refs = 1) or NULL
 * when out of memory. */
struct payload *json_publish_reply(struct json *j, const struct json_ref *ref, int64_t id,
                                   const char *error);

/* The answer to a ping frame: {"pong":R}. A new payload or NULL. */
struct payload *json_pong(struct json *j, const struct json_ref *ref);

/* Where a WebSocket connection starts (position=1): {"position":N}. A new
 * payload or NULL. */
struct payload *json_position(struct json *j, int64_t id);

#endif
