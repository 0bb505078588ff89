/* json: JSON through SQLite's JSON1 on a private ":memory:" connection.
 * Statements are prepared once per handle. A statement whose text was
 * handed out is left un-reset until the next call on the handle, so slices
 * stay valid as json.h promises; every entry point resets them first. */
#include "json.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payload.h"
#include "query.h"
#include "utf8.h"

enum { ENVELOPE, PUBLISH_FIELDS, GET, ARRAY_CHECK, EACH, REF, REPLY, STATEMENTS };

struct json {
    sqlite3 *db;
    sqlite3_stmt *stmt[STATEMENTS];
};

static void reset_all(struct json *j)
{
    for (size_t i = 0; i < STATEMENTS; i++) {
        sqlite3_reset(j->stmt[i]);
        sqlite3_clear_bindings(j->stmt[i]);
    }
}

struct json *json_open(char *err, size_t err_cap)
{
    struct json *j = calloc(1, sizeof *j);
    if (j == NULL) {
        snprintf(err, err_cap, "out of memory");
        return NULL;
    }
    if (sqlite3_open_v2(":memory:", &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK)
        goto fail;
    static const char *const sql[STATEMENTS] = {
        "SELECT CASE WHEN ?5 THEN json_object('id', ?1, 'channel', ?2, 'event', ?3,"
        " 'data', ?4, 'encoding', 'base64')"
        " ELSE json_object('id', ?1, 'channel', ?2, 'event', ?3, 'data', ?4) END",
        "SELECT json_type(?1), json_type(?1, '$.channel'), json_extract(?1, '$.channel'),"
        " json_type(?1, '$.event'), json_extract(?1, '$.event'),"
        " json_type(?1, '$.data'), json_extract(?1, '$.data'), ?1 -> '$.data'",
        "SELECT json_valid(?1), json_type(?1, ?2), json_extract(?1, ?2)",
        ("SELECT json_valid(?1), json_type(?1, ?2),"
         " (SELECT count(*) FROM json_each(?1, ?2) WHERE type <> 'text')"),
        "SELECT value FROM json_each(?1, ?2) ORDER BY key",
        "SELECT json_valid(?1), json_type(?1, ?2), json_extract(?1, ?2), ?1 -> ?2",
        "SELECT CASE ?1 WHEN 0 THEN json_object('ok', json('true'), 'ref', ?2, 'id', ?3)"
        " WHEN 1 THEN json_object('error', ?4, 'ref', ?2) WHEN 2 THEN json_object('pong', ?2)"
        " ELSE json_object('position', ?3) END",
    };
    for (size_t i = 0; i < STATEMENTS; i++)
        if (sqlite3_prepare_v3(j->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &j->stmt[i], NULL) !=
            SQLITE_OK)
            goto fail;
    return j;
fail:
    snprintf(err, err_cap, "cannot start SQLite's JSON functions: %s",
             j->db ? sqlite3_errmsg(j->db) : "out of memory");
    json_close(j);
    return NULL;
}

void json_close(struct json *j)
{
    if (j == NULL)
        return;
    for (size_t i = 0; i < STATEMENTS; i++)
        sqlite3_finalize(j->stmt[i]);
    sqlite3_close(j->db);
    free(j);
}

/* Steps stmt once and copies the text of its first column into a new
 * payload (refs = 1); NULL when the statement yields no row or memory runs
 * out. Resets every statement afterwards. */
static struct payload *step_to_payload(struct json *j, sqlite3_stmt *stmt)
{
    struct payload *p = NULL;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        size_t n = (size_t)sqlite3_column_bytes(stmt, 0);
        p = payload_new(n);
        if (p != NULL)
            memcpy(p->bytes, sqlite3_column_text(stmt, 0), n);
    }
    reset_all(j);
    return p;
}

struct payload *json_row_envelope(struct json *j, const struct store_row *row,
                                  const char *data_text, size_t data_len, bool is_base64)
{
    reset_all(j);
    sqlite3_stmt *stmt = j->stmt[ENVELOPE];
    sqlite3_bind_int64(stmt, 1, row->id);
    sqlite3_bind_text64(stmt, 2, row->channel, row->channel_len, SQLITE_STATIC, SQLITE_UTF8);
    if (row->event != NULL)
        sqlite3_bind_text64(stmt, 3, row->event, row->event_len, SQLITE_STATIC, SQLITE_UTF8);
    sqlite3_bind_text64(stmt, 4, data_text, data_len, SQLITE_STATIC, SQLITE_UTF8);
    sqlite3_bind_int(stmt, 5, is_base64);
    return step_to_payload(j, stmt);
}

static bool column_is(sqlite3_stmt *stmt, int col, const char *type)
{
    const unsigned char *t = sqlite3_column_text(stmt, col);
    return t != NULL && strcmp((const char *)t, type) == 0;
}

/* True when a JSON string literal (as written, quotes included) holds the
 * escape \u0000. SQLite 3.40's json_extract ends the decoded text at that
 * NUL, so the rest of the string would be cut without a word. This is a
 * scan of escapes in one literal that SQLite has already validated, not a
 * JSON parser. */
static bool has_nul_escape(const char *lit, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (lit[i] != '\\')
            continue;
        if (lit[i + 1] == 'u' && i + 5 < len && memcmp(lit + i + 2, "0000", 4) == 0)
            return true;
        i++; /* skip the escaped character: an escaped backslash then "u0000" is text */
    }
    return false;
}

/* Checks the parsed fields; returns NULL or the reason the publish is refused. */
static const char *check_publish(sqlite3_stmt *f)
{
    if (!column_is(f, 0, "object"))
        return "a publish must be a JSON object";
    if (sqlite3_column_type(f, 1) != SQLITE_NULL && !column_is(f, 1, "text"))
        return "channel must be a string";
    if (sqlite3_column_type(f, 3) != SQLITE_NULL && !column_is(f, 3, "text") &&
        !column_is(f, 3, "null"))
        return "event must be a string or null";
    if (!column_is(f, 5, "text"))
        return "data must be a string";
    /* json_extract decodes a lone surrogate (\ud800) to bytes that are not
     * UTF-8; such a name or text could never be sent in a text frame. */
    if (column_is(f, 3, "text") &&
        !utf8_is_valid(sqlite3_column_text(f, 4), (size_t)sqlite3_column_bytes(f, 4)))
        return "event must be valid UTF-8 (no lone surrogates)";
    if (!utf8_is_valid(sqlite3_column_text(f, 6), (size_t)sqlite3_column_bytes(f, 6)))
        return "data must be valid UTF-8 (no lone surrogates)";
    if (has_nul_escape((const char *)sqlite3_column_text(f, 7), (size_t)sqlite3_column_bytes(f, 7)))
        return "data must not contain U+0000; send binary data in a binary frame";
    if (column_is(f, 1, "text")) {
        enum query_err qerr = query_check_channel((const char *)sqlite3_column_text(f, 2),
                                                  (size_t)sqlite3_column_bytes(f, 2));
        if (qerr != QUERY_OK)
            return query_strerror(qerr);
    }
    return NULL;
}

const char *json_parse_publish(struct json *j, const char *doc, size_t len,
                               struct json_publish *out)
{
    reset_all(j);
    sqlite3_stmt *f = j->stmt[PUBLISH_FIELDS];
    sqlite3_bind_text64(f, 1, doc, len, SQLITE_STATIC, SQLITE_UTF8);
    /* json_type() raises "malformed JSON" as an SQL error. */
    if (sqlite3_step(f) != SQLITE_ROW)
        return "a publish must be a JSON object";
    const char *reason = check_publish(f);
    if (reason != NULL)
        return reason;
    *out = (struct json_publish){.channel = "default", .channel_len = 7};
    if (column_is(f, 1, "text")) {
        out->channel = (const char *)sqlite3_column_text(f, 2);
        out->channel_len = (size_t)sqlite3_column_bytes(f, 2);
    }
    if (column_is(f, 3, "text")) {
        out->event = (const char *)sqlite3_column_text(f, 4);
        out->event_len = (size_t)sqlite3_column_bytes(f, 4);
    }
    out->data = (const char *)sqlite3_column_text(f, 6);
    out->data_len = (size_t)sqlite3_column_bytes(f, 6);
    return NULL;
}

static enum json_type type_of(sqlite3_stmt *stmt, int col)
{
    static const struct {
        const char *name;
        enum json_type type;
    } names[] = {
        {"null", JSON_NULL}, {"true", JSON_TRUE}, {"false", JSON_FALSE}, {"integer", JSON_INTEGER},
        {"real", JSON_REAL}, {"text", JSON_TEXT}, {"array", JSON_ARRAY}, {"object", JSON_OBJECT},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (column_is(stmt, col, names[i].name))
            return names[i].type;
    return JSON_ABSENT;
}

/* Binds doc and path to stmt and steps it once; false when doc is not
 * well-formed JSON (json_valid is column 0) or the path is malformed. */
static bool step_document(sqlite3_stmt *stmt, const char *doc, size_t len, const char *path)
{
    sqlite3_bind_text64(stmt, 1, doc, len, SQLITE_STATIC, SQLITE_UTF8);
    sqlite3_bind_text(stmt, 2, path, -1, SQLITE_STATIC);
    return sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_int(stmt, 0) == 1;
}

bool json_get(struct json *j, const char *doc, size_t len, const char *path, struct json_value *out)
{
    reset_all(j);
    *out = (struct json_value){.type = JSON_ABSENT};
    sqlite3_stmt *stmt = j->stmt[GET];
    if (!step_document(stmt, doc, len, path))
        return false;
    out->type = type_of(stmt, 1);
    switch (out->type) {
    case JSON_INTEGER:
        out->integer = sqlite3_column_int64(stmt, 2);
        out->real = (double)out->integer;
        break;
    case JSON_REAL:
        out->real = sqlite3_column_double(stmt, 2);
        break;
    case JSON_TEXT:
        out->text = (const char *)sqlite3_column_text(stmt, 2);
        out->text_len = (size_t)sqlite3_column_bytes(stmt, 2);
        break;
    default:
        break;
    }
    return true;
}

bool json_each_text(struct json *j, const char *doc, size_t len, const char *path, json_text_fn *fn,
                    void *ctx)
{
    reset_all(j);
    sqlite3_stmt *check = j->stmt[ARRAY_CHECK];
    if (!step_document(check, doc, len, path))
        return false;
    enum json_type type = type_of(check, 1);
    if (type == JSON_ABSENT)
        return true;
    if (type != JSON_ARRAY || sqlite3_column_int64(check, 2) != 0)
        return false;
    sqlite3_stmt *each = j->stmt[EACH];
    sqlite3_bind_text64(each, 1, doc, len, SQLITE_STATIC, SQLITE_UTF8);
    sqlite3_bind_text(each, 2, path, -1, SQLITE_STATIC);
    bool ok = true;
    int rc = SQLITE_DONE;
    while (ok && (rc = sqlite3_step(each)) == SQLITE_ROW)
        ok = fn((const char *)sqlite3_column_text(each, 0), (size_t)sqlite3_column_bytes(each, 0),
                ctx);
    reset_all(j);
    return ok && rc == SQLITE_DONE;
}

/* Runs one statement that yields one text value, with ?1.. bound to the
 * texts args[0..n) (NULL binds SQL NULL) and ?n+1, ?n+2 to i1, i2; returns
 * a malloc'd copy of the value. Used for the rare documents we build
 * (minting tokens), so the statement is prepared per call. */
static char *build(struct json *j, const char *sql, const char *const *args, size_t n, int64_t i1,
                   int64_t i2)
{
    sqlite3_stmt *stmt = NULL;
    char *out = NULL;
    if (sqlite3_prepare_v2(j->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (args[i] != NULL)
            sqlite3_bind_text(stmt, (int)i + 1, args[i], -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, (int)n + 1, i1);
    sqlite3_bind_int64(stmt, (int)n + 2, i2);
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_type(stmt, 0) != SQLITE_NULL)
        out = strdup((const char *)sqlite3_column_text(stmt, 0));
out:
    sqlite3_finalize(stmt);
    return out;
}

char *json_jwt_header(struct json *j, const char *kid)
{
    reset_all(j);
    const char *args[1] = {kid};
    return build(j,
                 "SELECT CASE WHEN ?1 IS NULL THEN json_object('alg', 'HS256', 'typ', 'JWT')"
                 " ELSE json_object('alg', 'HS256', 'typ', 'JWT', 'kid', ?1) END",
                 args, 1, 0, 0);
}

/* A JSON array of the given strings. */
static char *text_array(struct json *j, const char *const *items, size_t n)
{
    char *doc = strdup("[]");
    for (size_t i = 0; i < n && doc != NULL; i++) {
        const char *args[2] = {doc, items[i]};
        char *next = build(j, "SELECT json_insert(?1, '$[#]', ?2)", args, 2, 0, 0);
        free(doc);
        doc = next;
    }
    return doc;
}

char *json_jwt_claims(struct json *j, int64_t iat, int64_t exp, const char *sub,
                      const char *const *subscribe, size_t subscribe_count,
                      const char *const *publish, size_t publish_count)
{
    reset_all(j);
    char *sub_doc = text_array(j, subscribe, subscribe_count);
    char *pub_doc = text_array(j, publish, publish_count);
    char *out = NULL;
    if (sub_doc != NULL && pub_doc != NULL) {
        const char *args[3] = {sub, sub_doc, pub_doc};
        out = build(j,
                    "SELECT json_patch(json_object('iat', ?4, 'exp', ?5,"
                    " 'litepush', json_object('subscribe', json(?2), 'publish', json(?3))),"
                    " CASE WHEN ?1 IS NULL THEN '{}' ELSE json_object('sub', ?1) END)",
                    args, 3, iat, exp);
    }
    free(sub_doc);
    free(pub_doc);
    return out;
}

const char *json_get_ref(struct json *j, const char *doc, size_t len, const char *path,
                         struct json_ref *out)
{
    reset_all(j);
    *out = (struct json_ref){.type = JSON_ABSENT};
    sqlite3_stmt *stmt = j->stmt[REF];
    /* json_type() raises "malformed JSON" as an SQL error: no ref. */
    if (!step_document(stmt, doc, len, path))
        return NULL;
    enum json_type type = type_of(stmt, 1);
    const char *reason = NULL;
    if (type == JSON_ABSENT) {
        /* nothing there */
    } else if (type == JSON_INTEGER) {
        /* JSON1 calls 2^63 an integer but extracts it as a real. */
        if (sqlite3_column_type(stmt, 2) == SQLITE_INTEGER) {
            out->type = JSON_INTEGER;
            out->integer = sqlite3_column_int64(stmt, 2);
        } else {
            reason = "ref must be an integer of at most 64 bits or a string";
        }
    } else if (type == JSON_TEXT) {
        const unsigned char *text = sqlite3_column_text(stmt, 2);
        size_t n = (size_t)sqlite3_column_bytes(stmt, 2);
        if (n > sizeof out->text)
            reason = "ref must be a string of at most 64 bytes";
        else if (!utf8_is_valid(text, n) ||
                 has_nul_escape((const char *)sqlite3_column_text(stmt, 3),
                                (size_t)sqlite3_column_bytes(stmt, 3)))
            reason = "ref must be valid UTF-8 without \\u0000";
        else {
            out->type = JSON_TEXT;
            out->text_len = n;
            memcpy(out->text, text, n);
        }
    } else {
        reason = "ref must be a string or an integer";
    }
    reset_all(j);
    return reason;
}

enum reply_kind { REPLY_OK = 0, REPLY_ERROR = 1, REPLY_PONG = 2, REPLY_POSITION = 3 };

static struct payload *reply(struct json *j, enum reply_kind kind, const struct json_ref *ref,
                             int64_t id, const char *error)
{
    reset_all(j);
    sqlite3_stmt *stmt = j->stmt[REPLY];
    sqlite3_bind_int(stmt, 1, kind);
    if (ref->type == JSON_TEXT)
        sqlite3_bind_text64(stmt, 2, ref->text, ref->text_len, SQLITE_STATIC, SQLITE_UTF8);
    else
        sqlite3_bind_int64(stmt, 2, ref->integer);
    sqlite3_bind_int64(stmt, 3, id);
    if (error != NULL)
        sqlite3_bind_text(stmt, 4, error, -1, SQLITE_STATIC);
    return step_to_payload(j, stmt);
}

struct payload *json_publish_reply(struct json *j, const struct json_ref *ref, int64_t id,
                                   const char *error)
{
    return reply(j, error == NULL ? REPLY_OK : REPLY_ERROR, ref, id, error);
}

struct payload *json_pong(struct json *j, const struct json_ref *ref)
{
    return reply(j, REPLY_PONG, ref, 0, NULL);
}

struct payload *json_position(struct json *j, int64_t id)
{
    static const struct json_ref none = {.type = JSON_ABSENT};
    return reply(j, REPLY_POSITION, &none, id, NULL);
}
