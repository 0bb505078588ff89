#!/usr/bin/env bash
# The PostgreSQL stage of make test: the whole SSE and WebSocket integration
# suite again with the log in a throw-away PostgreSQL server
# (LITEPUSH_STORE=pg), then what only PostgreSQL has (tests/pg/run.py:
# commit order, two web hosts, a server restart, prune, admin views).
# The last line adds up both: "pg: N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
LITEPUSH_STORE=pg tests/integration/run.sh "$@" 2>&1 | sed -u 's/^/[pg] /' | tee "$log"
python3 tests/pg/run.py 2>&1 | tee -a "$log"
p=0; f=0
while read -r line; do
    p=$((p + $(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+')))
    f=$((f + $(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+')))
done < <(grep -E '^(\[pg\] )?(integration|pg): [0-9]+ passed, [0-9]+ failed' "$log")
[ "$(grep -cE '^(\[pg\] )?(integration|pg): [0-9]+ passed' "$log")" = 2 ] || f=$((f + 1))
echo "pg: $p passed, $f failed"
[ "$f" = 0 ]
