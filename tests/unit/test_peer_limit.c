/* Unit tests for peer_limit: the client address of a connection (the peer,
 * or the last X-Forwarded-For entry when the peer is loopback), and the
 * per-address count with its cap. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>

#include "peer_limit.h"
#include "test.h"

static struct sockaddr_in v4(const char *ip)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static void addr_of(const char *ip, uint8_t out[PEER_LIMIT_ADDR_LEN])
{
    struct sockaddr_in a = v4(ip);
    CHECK(peer_limit_client_addr(&a, sizeof a, NULL, 0, out));
}

static void test_client_addr(void)
{
    uint8_t got[PEER_LIMIT_ADDR_LEN], want[PEER_LIMIT_ADDR_LEN];
    struct sockaddr_in remote = v4("192.0.2.5"), local = v4("127.0.0.1");
    /* A remote peer is itself, whatever it forwards. */
    const char *xff = "203.0.113.7";
    CHECK(peer_limit_client_addr(&remote, sizeof remote, xff, strlen(xff), got));
    addr_of("192.0.2.5", want);
    CHECK(memcmp(got, want, sizeof got) == 0);
    /* A loopback peer is a trusted proxy: the last entry counts. */
    const char *chain = "198.51.100.1, 203.0.113.7 ";
    CHECK(peer_limit_client_addr(&local, sizeof local, chain, strlen(chain), got));
    addr_of("203.0.113.7", want);
    CHECK(memcmp(got, want, sizeof got) == 0);
    const char *v6 = "2001:db8::1";
    CHECK(peer_limit_client_addr(&local, sizeof local, v6, strlen(v6), got));
    /* Loopback without a usable forwarded address: not counted. */
    CHECK(!peer_limit_client_addr(&local, sizeof local, NULL, 0, got));
    const char *junk = "unknown";
    CHECK(!peer_limit_client_addr(&local, sizeof local, junk, strlen(junk), got));
    struct sockaddr_in6 lo6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    CHECK(!peer_limit_client_addr(&lo6, sizeof lo6, NULL, 0, got));
}

static void test_cap(void)
{
    struct peer_limit *pl = peer_limit_new(2);
    CHECK(pl != NULL);
    if (pl == NULL)
        return;
    uint8_t a[PEER_LIMIT_ADDR_LEN], b[PEER_LIMIT_ADDR_LEN];
    addr_of("203.0.113.7", a);
    addr_of("203.0.113.8", b);
    CHECK(peer_limit_take(pl, a));
    CHECK(peer_limit_take(pl, a));
    CHECK(!peer_limit_take(pl, a));
    CHECK(peer_limit_take(pl, b));
    peer_limit_give(pl, a);
    CHECK(peer_limit_take(pl, a));
    CHECK(!peer_limit_take(pl, a));
    peer_limit_give(pl, a);
    peer_limit_give(pl, a);
    peer_limit_give(pl, b);
    peer_limit_free(pl); /* LeakSanitizer: every entry went with its last connection */
    peer_limit_free(NULL);
}

int main(void)
{
    RUN(test_client_addr);
    RUN(test_cap);
    TEST_MAIN_END();
}
