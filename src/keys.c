/* keys: see keys.h.
 *
 * NOTES: a secret is whatever bytes follow the kid up to the end of the
 * line (spaces and tabs excluded), exactly as PyJWT and php-jwt take a
 * string key; it is not base64-decoded. */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct key {
    char kid[KEYS_KID_MAX + 1];
    size_t kid_len;
    uint8_t secret[KEYS_SECRET_MAX];
    size_t secret_len;
};

struct keyset {
    atomic_size_t refs;
    size_t count;
    struct key keys[];
};

struct keyring {
    pthread_mutex_t lock;
    struct keyset *current;
    char *path;
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Splits a line into at most 3 words; returns how many there were (3 means
 * "3 or more"). */
static size_t split_words(const char *s, size_t len, const char *w[3], size_t wl[3])
{
    size_t n = 0, i = 0;
    while (i < len && n < 3) {
        while (i < len && is_blank(s[i]))
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && !is_blank(s[i]))
            i++;
        w[n] = s + start;
        wl[n] = i - start;
        n++;
    }
    return n;
}

static bool parse_line(struct keyset *ks, const char *line, size_t len, size_t lineno, char *err,
                       size_t err_cap)
{
    const char *w[3];
    size_t wl[3];
    size_t n = split_words(line, len, w, wl);
    if (n == 0 || w[0][0] == '#')
        return true;
    if (n == 3) {
        snprintf(err, err_cap, "key file line %zu: expected 'KID SECRET' or 'SECRET'", lineno);
        return false;
    }
    const char *kid = n == 2 ? w[0] : "default";
    size_t kid_len = n == 2 ? wl[0] : 7;
    const char *secret = w[n - 1];
    size_t secret_len = wl[n - 1];
    if (kid_len > KEYS_KID_MAX) {
        snprintf(err, err_cap, "key file line %zu: key id longer than %d bytes", lineno,
                 KEYS_KID_MAX);
        return false;
    }
    for (size_t i = 0; i < kid_len; i++) {
        unsigned char c = (unsigned char)kid[i];
        if (c < 0x21 || c > 0x7e) {
            snprintf(err, err_cap, "key file line %zu: key id must be printable ASCII", lineno);
            return false;
        }
    }
    for (size_t i = 0; i < secret_len; i++) {
        if ((unsigned char)secret[i] < 0x20 || secret[i] == 0x7f) {
            snprintf(err, err_cap, "key file line %zu: secret contains a control character",
                     lineno);
            return false;
        }
    }
    if (secret_len < KEYS_SECRET_MIN || secret_len > KEYS_SECRET_MAX) {
        snprintf(err, err_cap, "key file line %zu: secret of %zu bytes; it must have %d to %d",
                 lineno, secret_len, KEYS_SECRET_MIN, KEYS_SECRET_MAX);
        return false;
    }
    if (keys_find(ks, kid, kid_len, &(size_t){0}) != NULL) {
        snprintf(err, err_cap, "key file line %zu: key id '%.*s' listed twice", lineno,
                 (int)kid_len, kid);
        return false;
    }
    if (ks->count == KEYS_MAX) {
        snprintf(err, err_cap, "key file line %zu: more than %d keys", lineno, KEYS_MAX);
        return false;
    }
    struct key *k = &ks->keys[ks->count++];
    memcpy(k->kid, kid, kid_len);
    k->kid[kid_len] = '\0';
    k->kid_len = kid_len;
    memcpy(k->secret, secret, secret_len);
    k->secret_len = secret_len;
    return true;
}

struct keyset *keys_parse(const char *text, size_t len, char *err, size_t err_cap)
{
    struct keyset *ks = calloc(1, sizeof *ks + KEYS_MAX * sizeof(struct key));
    if (ks == NULL) {
        snprintf(err, err_cap, "out of memory");
        return NULL;
    }
    atomic_init(&ks->refs, 1);
    size_t lineno = 0, pos = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t line_len = end - pos;
        if (line_len > 0 && text[pos + line_len - 1] == '\r')
            line_len--;
        lineno++;
        if (memchr(text + pos, '\0', line_len) != NULL) {
            snprintf(err, err_cap, "key file line %zu: contains a NUL byte", lineno);
            goto fail;
        }
        if (!parse_line(ks, text + pos, line_len, lineno, err, err_cap))
            goto fail;
        pos = end + 1;
    }
    if (ks->count == 0) {
        snprintf(err, err_cap, "key file has no keys");
        goto fail;
    }
    return ks;
fail:
    keys_unref(ks);
    return NULL;
}

struct keyset *keys_load(const char *path, char *err, size_t err_cap)
{
    char *text = NULL;
    struct keyset *ks = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_cap, "cannot open key file %s: %s", path, strerror(errno));
        goto out;
    }
    text = malloc(KEYS_FILE_MAX + 1);
    if (text == NULL) {
        snprintf(err, err_cap, "out of memory");
        goto out;
    }
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, text + len, KEYS_FILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, err_cap, "cannot read key file %s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > KEYS_FILE_MAX) {
            snprintf(err, err_cap, "key file %s is larger than %d bytes", path, KEYS_FILE_MAX);
            goto out;
        }
    }
    char reason[256];
    ks = keys_parse(text, len, reason, sizeof reason);
    if (ks == NULL)
        snprintf(err, err_cap, "%s: %s", path, reason);
out:
    if (text != NULL) {
        /* The buffer held secrets. */
        memset(text, 0, KEYS_FILE_MAX + 1);
        free(text);
    }
    if (fd >= 0)
        close(fd);
    return ks;
}

struct keyset *keys_ref(struct keyset *ks)
{
    if (ks != NULL)
        atomic_fetch_add(&ks->refs, 1);
    return ks;
}

void keys_unref(struct keyset *ks)
{
    if (ks == NULL || atomic_fetch_sub(&ks->refs, 1) != 1)
        return;
    memset(ks->keys, 0, ks->count * sizeof ks->keys[0]);
    free(ks);
}

const uint8_t *keys_find(const struct keyset *ks, const char *kid, size_t kid_len,
                         size_t *secret_len)
{
    for (size_t i = 0; i < ks->count; i++) {
        const struct key *k = &ks->keys[i];
        if (k->kid_len == kid_len && memcmp(k->kid, kid, kid_len) == 0) {
            *secret_len = k->secret_len;
            return k->secret;
        }
    }
    return NULL;
}

size_t keys_count(const struct keyset *ks)
{
    return ks->count;
}

const char *keys_kid(const struct keyset *ks, size_t i, const uint8_t **secret, size_t *secret_len)
{
    *secret = ks->keys[i].secret;
    *secret_len = ks->keys[i].secret_len;
    return ks->keys[i].kid;
}

struct keyring *keyring_open(const char *path, char *err, size_t err_cap)
{
    struct keyring *kr = calloc(1, sizeof *kr);
    if (kr == NULL || (kr->path = strdup(path)) == NULL) {
        snprintf(err, err_cap, "out of memory");
        free(kr);
        return NULL;
    }
    pthread_mutex_init(&kr->lock, NULL);
    kr->current = keys_load(path, err, err_cap);
    if (kr->current == NULL) {
        keyring_free(kr);
        return NULL;
    }
    return kr;
}

void keyring_free(struct keyring *kr)
{
    if (kr == NULL)
        return;
    keys_unref(kr->current);
    pthread_mutex_destroy(&kr->lock);
    free(kr->path);
    free(kr);
}

struct keyset *keyring_acquire(struct keyring *kr)
{
    pthread_mutex_lock(&kr->lock);
    struct keyset *ks = keys_ref(kr->current);
    pthread_mutex_unlock(&kr->lock);
    return ks;
}

bool keyring_reload(struct keyring *kr, char *err, size_t err_cap)
{
    /* Read and parse outside the lock; only the pointer swap is inside. */
    struct keyset *fresh = keys_load(kr->path, err, err_cap);
    if (fresh == NULL)
        return false;
    pthread_mutex_lock(&kr->lock);
    struct keyset *old = kr->current;
    kr->current = fresh;
    pthread_mutex_unlock(&kr->lock);
    keys_unref(old);
    return true;
}
