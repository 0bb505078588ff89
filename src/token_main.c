/* litepush-token: mints an access token from the shell, for scripts, tests
 * and operators. The key comes from the same key file the servers read
 * (--auth-keys); the token is printed on stdout with a newline. */
#include <getopt.h>
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
    const char *subscribe[PATTERN_SET_MAX], *publish[PATTERN_SET_MAX];
    size_t n_sub = 0, n_pub = 0;
    long ttl = 3600;
    static const struct option opts[] = {
        {"key-file", required_argument, NULL, 'k'}, {"kid", required_argument, NULL, 'i'},
        {"sub", required_argument, NULL, 's'},      {"subscribe", required_argument, NULL, 'S'},
        {"publish", required_argument, NULL, 'P'},  {"ttl", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'k':
            key_file = optarg;
            break;
        case 'i':
            kid = optarg;
            break;
        case 's':
            sub = optarg;
            if (strlen(sub) > LIMITS_TOKEN_SUB_MAX) {
                fprintf(stderr, "litepush-token: --sub longer than %d bytes\n",
                        LIMITS_TOKEN_SUB_MAX);
                bad = 1;
            }
            break;
        case 'S':
        case 'P': {
            const char **list = c == 'S' ? subscribe : publish;
            size_t *n = c == 'S' ? &n_sub : &n_pub;
            if (!pattern_is_valid(optarg, strlen(optarg))) {
                fprintf(stderr, "litepush-token: '%s': %s\n", optarg,
                        pattern_strerror(PATTERN_ERR_INVALID));
                bad = 1;
            } else if (*n == PATTERN_SET_MAX) {
                fprintf(stderr, "litepush-token: %s\n", pattern_strerror(PATTERN_ERR_FULL));
                bad = 1;
            } else {
                list[(*n)++] = optarg;
            }
            break;
        }
        case 't':
            bad = cli_number("litepush-token", "--ttl", optarg, 1, 10L * 366 * 86400, &ttl);
            break;
        case 'h':
            fputs(USAGE, stdout);
            return 0;
        default:
            bad = 1;
        }
        if (bad) {
            fputs("Try 'litepush-token --help'.\n", stderr);
            return 2;
        }
    }
    if (optind < argc || key_file == NULL) {
        fputs("litepush-token: give --key-file PATH\nTry 'litepush-token --help'.\n", stderr);
        return 2;
    }
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
    int rc = 1;
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
