/* keys: the HS256 keys of --auth-keys. A key file has one key per line,
 * "KID SECRET" or a bare "SECRET" (kid "default"); blank lines and lines
 * starting with '#' are skipped; SECRET is used as raw bytes, at least
 * KEYS_SECRET_MIN of them.
 *
 * A struct keyset is immutable once parsed and reference-counted, so a
 * worker can keep using the set it took while SIGHUP installs a new one.
 * A struct keyring holds the current set behind one mutex (a leaf lock:
 * nothing else is taken while it is held); any thread may call
 * keyring_acquire and keyring_reload. */
#ifndef LITEPUSH_KEYS_H
#define LITEPUSH_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 7518 §3.2: an HS256 key must be at least as long as the hash. */
#define KEYS_SECRET_MIN 32
#define KEYS_SECRET_MAX 1024
#define KEYS_KID_MAX 64
#define KEYS_MAX 64
/* Bytes of a key file we read (larger files are refused). */
#define KEYS_FILE_MAX (256 * 1024)

struct keyset;
struct keyring;

/* Parses key-file text. Returns a new set (one reference, owned by the
 * caller) or NULL with a one-line reason naming the line in err; the reason
 * never contains a secret. Pure. */
struct keyset *keys_parse(const char *text, size_t len, char *err, size_t err_cap);
/* Reads and parses the file at path; NULL with a reason on failure. */
struct keyset *keys_load(const char *path, char *err, size_t err_cap);
/* Takes another reference / drops one (NULL is a no-op); the last unref frees. */
struct keyset *keys_ref(struct keyset *ks);
void keys_unref(struct keyset *ks);

/* The secret for kid[0..kid_len), or NULL when the set has no such kid.
 * The bytes live as long as the set. */
const uint8_t *keys_find(const struct keyset *ks, const char *kid, size_t kid_len,
                         size_t *secret_len);
/* The number of keys, and key i's kid (NUL-terminated) and secret. */
size_t keys_count(const struct keyset *ks);
const char *keys_kid(const struct keyset *ks, size_t i, const uint8_t **secret, size_t *secret_len);

/* A ring holding the set loaded from path; NULL with a reason when the
 * file cannot be read or parsed. The ring keeps a copy of path. */
struct keyring *keyring_open(const char *path, char *err, size_t err_cap);
/* Frees the ring and drops its reference to the current set; NULL is a no-op. */
void keyring_free(struct keyring *kr);
/* The current set with a reference taken for the caller (keys_unref it). */
struct keyset *keyring_acquire(struct keyring *kr);
/* Re-reads the file. On success the new set replaces the old one (holders
 * of the old one keep it until they unref) and true is returned; on failure
 * the old set stays in force and err says why. */
bool keyring_reload(struct keyring *kr, char *err, size_t err_cap);

#endif
