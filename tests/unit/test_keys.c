/* Unit tests for keys: the key-file grammar (KID SECRET, bare SECRET,
 * comments, blank lines, CRLF), the 32-byte secret minimum on both sides,
 * too many words, duplicate kids, control bytes, an empty file, reasons that
 * never show a secret, and the ring: reload keeps the old set on a bad file
 * while a holder keeps the set it took. */
#include <stdlib.h>
#include <unistd.h>

#include "keys.h"
#include "test.h"

#define S(lit) lit, sizeof(lit) - 1
#define K32 "0123456789abcdef0123456789abcdef"

static struct keyset *parse(const char *text, char *err, size_t cap)
{
    size_t len = strlen(text);
    return keys_parse(guarded(text, len), len, err, cap);
}

static void test_grammar(void)
{
    static const struct {
        const char *text;
        size_t count; /* 0: refused */
        const char *reason_has;
    } cases[] = {
        {K32, 1, NULL},
        {K32 "\n", 1, NULL},
        {"k1 " K32 "\r\nk2\t" K32 "x\n", 2, NULL},
        {"# comment\n\n   \n  # indented comment\nk " K32, 1, NULL},
        {"k " K32 "  \n", 1, NULL},
        {"", 0, "no keys"},
        {"# only\n", 0, "no keys"},
        {"0123456789abcdef0123456789abcde", 0, "line 1"}, /* 31 bytes */
        {"k1 " K32 "\nk2 short", 0, "line 2"},
        {"k1 " K32 " extra", 0, "line 1"},
        {"k1 " K32 "\nk1 " K32 "y", 0, "twice"},
        {K32 "\ndefault " K32, 0, "twice"},
        {"k\x01 " K32, 0, "printable"},
        {"k " K32 "\x01", 0, "control"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        struct keyset *ks = parse(cases[i].text, err, sizeof err);
        if (cases[i].count == 0) {
            CHECK(ks == NULL);
            CHECK(cases[i].reason_has == NULL || strstr(err, cases[i].reason_has) != NULL);
            CHECK(strstr(err, K32) == NULL && strstr(err, "short") == NULL);
        } else {
            CHECK(ks != NULL);
            if (ks != NULL)
                CHECK_INT(keys_count(ks), cases[i].count);
        }
        keys_unref(ks);
    }
}

static void test_lookup(void)
{
    char err[256];
    struct keyset *ks = parse(K32 "\nk2 " K32 "XYZ\n", err, sizeof err);
    CHECK(ks != NULL);
    if (ks == NULL)
        return;
    size_t len = 0;
    const uint8_t *s = keys_find(ks, S("default"), &len);
    CHECK(s != NULL);
    CHECK_MEM(s, len, K32);
    s = keys_find(ks, S("k2"), &len);
    CHECK_MEM(s, len, K32 "XYZ");
    CHECK(keys_find(ks, S("k"), &len) == NULL);
    CHECK(keys_find(ks, S("K2"), &len) == NULL);
    const uint8_t *sec;
    CHECK(strcmp(keys_kid(ks, 1, &sec, &len), "k2") == 0);
    /* Secrets at the maximum, and one byte over it. */
    char *big = malloc(KEYS_SECRET_MAX + 2);
    memset(big, 'x', KEYS_SECRET_MAX + 1);
    big[KEYS_SECRET_MAX] = '\0';
    struct keyset *b = parse(big, err, sizeof err);
    CHECK(b != NULL);
    keys_unref(b);
    big[KEYS_SECRET_MAX] = 'x';
    big[KEYS_SECRET_MAX + 1] = '\0';
    CHECK(parse(big, err, sizeof err) == NULL);
    free(big);
    /* A reference outlives the unref of the parser's. */
    struct keyset *r = keys_ref(ks);
    keys_unref(ks);
    CHECK(keys_find(r, S("k2"), &len) != NULL);
    keys_unref(r);
    keys_unref(NULL);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f != NULL) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_ring(void)
{
    char path[] = "/tmp/litepush-test-keys-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    char err[256];
    write_file(path, "old " K32 "\n");
    struct keyring *kr = keyring_open(path, err, sizeof err);
    CHECK(kr != NULL);
    if (kr == NULL)
        return;
    size_t len;
    struct keyset *held = keyring_acquire(kr);
    CHECK(keys_find(held, S("old"), &len) != NULL);
    write_file(path, "new " K32 "\n");
    CHECK(keyring_reload(kr, err, sizeof err));
    struct keyset *now = keyring_acquire(kr);
    CHECK(keys_find(now, S("new"), &len) != NULL && keys_find(now, S("old"), &len) == NULL);
    CHECK(keys_find(held, S("old"), &len) != NULL); /* the holder keeps its set */
    keys_unref(held);
    keys_unref(now);
    write_file(path, "broken\n");
    CHECK(!keyring_reload(kr, err, sizeof err));
    CHECK(strstr(err, "line 1") != NULL);
    now = keyring_acquire(kr);
    CHECK(keys_find(now, S("new"), &len) != NULL); /* still in force */
    keys_unref(now);
    unlink(path);
    CHECK(!keyring_reload(kr, err, sizeof err));
    CHECK(strstr(err, "cannot open") != NULL);
    keyring_free(kr);
    CHECK(keyring_open(path, err, sizeof err) == NULL);
    keyring_free(NULL);
}

int main(void)
{
    RUN(test_grammar);
    RUN(test_lookup);
    RUN(test_ring);
    TEST_MAIN_END();
}
