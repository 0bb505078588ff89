/* litepush-token: mints an access token from the shell, for scripts, tests
 * and operators. The key comes from the same key file the servers read
 * (--auth-keys); the token is printed on stdout with a newline. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "input_limits.h"
#include "json.h"
#include "keys.h"
#include "pattern.h"
#include "token.h"

static const char USAGE[] =
    "Usage: litepush-token --key-file PATH [--kid KID] [--sub SUBJECT]\n"
    "                      [--subscribe PATTERN]... [--publish PATTERN]... [--ttl SECONDS]\n"
    "\n"
    "Prints an HS256 token (a JWT) for litepush.fcgi and litepush-ws --auth-keys.\n"
    "\n"
    "  --key-file PATH      the key file the servers read: 'KID SECRET' or 'SECRET' lines\n"
    "  --kid KID            the key to sign with (default: the first in the file)\n"
    "  --sub SUBJECT        the sub claim, shown in the servers' logs\n"
    "  --subscribe PATTERN  a channel it may read (repeatable); PATTERN is a channel\n"
    "                       name or a prefix ending in '*' ('room:*'; '*' is every channel)\n"
    "  --publish PATTERN    a channel it may publish to over WebSocket (repeatable)\n"
    "  --ttl SECONDS        lifetime: exp is now + SECONDS (default 3600)\n"
    "  --help               this text\n"
    "\n"
    "Example: litepush-token --key-file /etc/litepush/keys --sub alice --subscribe 'room:*'\n";

int main(int argc, char **argv)
{
    const char *key_file = NULL, *kid = NULL, *sub = NULL;
    static const char *subscribe[PATTERN_SET_MAX], *publish[PATTERN_SET_MAX];
    struct cli_list sub_list = {subscribe, 0, PATTERN_SET_MAX};
    struct cli_list pub_list = {publish, 0, PATTERN_SET_MAX};
    long ttl = 3600;
    const struct cli_flag opts[] = {
        {"key-file", CLI_STRING, &key_file, 0, 0}, {"kid", CLI_STRING, &kid, 0, 0},
        {"sub", CLI_STRING, &sub, 0, 0},           {"subscribe", CLI_LIST, &sub_list, 0, 0},
        {"publish", CLI_LIST, &pub_list, 0, 0},    {"ttl", CLI_NUMBER, &ttl, 1, 10L * 366 * 86400},
    };
    int rc = cli_parse("litepush-token", USAGE, argc, argv, opts, sizeof opts / sizeof opts[0]);
    if (rc >= 0)
        return rc;
    if (key_file == NULL) {
        fputs("litepush-token: give --key-file PATH\nTry 'litepush-token --help'.\n", stderr);
        return 2;
    }
    if (sub != NULL && strlen(sub) > LIMITS_TOKEN_SUB_MAX) {
        fprintf(stderr, "litepush-token: --sub longer than %d bytes\n", LIMITS_TOKEN_SUB_MAX);
        return 2;
    }
    const struct cli_list *lists[2] = {&sub_list, &pub_list};
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; i < lists[l]->count; i++) {
            const char *pat = lists[l]->items[i];
            if (!pattern_is_valid(pat, strlen(pat))) {
                fprintf(stderr, "litepush-token: '%s': %s\n", pat,
                        pattern_strerror(PATTERN_ERR_INVALID));
                return 2;
            }
        }
    }
    size_t n_sub = sub_list.count, n_pub = pub_list.count;
    char err[512];
    struct keyset *ks = keys_load(key_file, err, sizeof err);
    if (ks == NULL) {
        fprintf(stderr, "litepush-token: %s\n", err);
        return 1;
    }
    const uint8_t *secret;
    size_t secret_len;
    if (kid != NULL) {
        secret = keys_find(ks, kid, strlen(kid), &secret_len);
        if (secret == NULL) {
            fprintf(stderr, "litepush-token: no key '%s' in %s\n", kid, key_file);
            keys_unref(ks);
            return 1;
        }
    } else {
        kid = keys_kid(ks, 0, &secret, &secret_len);
    }
    rc = 1;
    char *header = NULL, *claims = NULL, *tok = NULL;
    struct json *j = json_open(err, sizeof err);
    if (j == NULL) {
        fprintf(stderr, "litepush-token: %s\n", err);
        goto out;
    }
    int64_t now = (int64_t)time(NULL);
    header = json_jwt_header(j, kid);
    claims = json_jwt_claims(j, now, now + ttl, sub, subscribe, n_sub, publish, n_pub);
    tok = malloc(LIMITS_TOKEN_MAX + 1);
    long n = -1;
    if (header != NULL && claims != NULL && tok != NULL)
        n = token_sign(header, strlen(header), claims, strlen(claims), secret, secret_len, tok,
                       LIMITS_TOKEN_MAX + 1);
    if (n < 0) {
        fprintf(stderr, "litepush-token: the token would be longer than %d bytes\n",
                LIMITS_TOKEN_MAX);
        goto out;
    }
    printf("%s\n", tok);
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    free(header);
    free(claims);
    free(tok);
    json_close(j);
    keys_unref(ks);
    return rc;
}
