#!/usr/bin/env bash
# make test: installs what is missing, builds with -Werror, then runs the
# unit tests (ASan+UBSan), the fuzz corpora and the integration tests
# through real Apache and lighttpd, on SQLite and then on PostgreSQL. The
# last line adds up every count.
set -uo pipefail
cd "$(dirname "$0")/.."
tests/deps.sh test || exit 1
make -s WERROR=1 all || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }
total_p=0; total_f=0
add() { # adds the counts of the last "N passed, N failed" line in $1
    local line; line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$1" | tail -n1)
    if [ -z "$line" ]; then total_f=$((total_f + 1)); return; fi
    total_p=$((total_p + $(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+')))
    total_f=$((total_f + $(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+')))
}
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
for stage in unit fuzz-replay integration tsan admin browser client docs-check fcgid package pg; do
    echo "== $stage"
    make -s WERROR=1 "$stage" 2>&1 | tee "$log/$stage"
    rc=${PIPESTATUS[0]}
    add "$log/$stage"
    if [ "$rc" != 0 ] && ! grep -qE '[1-9][0-9]* failed' "$log/$stage"; then
        total_f=$((total_f + 1)) # it failed without saying what: count it
    fi
done
echo "$total_p passed, $total_f failed"
[ "$total_f" = 0 ]
