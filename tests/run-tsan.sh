#!/usr/bin/env bash
# make tsan: the integration tests against both programs built with
# ThreadSanitizer (build/tsan/). Every report goes to a file of its own
# (TSAN_OPTIONS log_path); the run fails when any test fails or any report
# was written (one more failure). Arguments after the build dir go to the
# integration runner.
set -u
cd "$(dirname "$0")/.."
dir=$1
shift
reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
export TSAN_OPTIONS="log_path=$reports/tsan halt_on_error=0 second_deadlock_stack=1"
export LITEPUSH_FCGI="$PWD/$dir/litepush.fcgi" LITEPUSH_WS="$PWD/$dir/litepush-ws"
tests/integration/run.sh "$@" | sed -e '/^integration: /s/^integration: /tsan integration: /' |
    tee "$reports.out"
rc=${PIPESTATUS[0]}
n=$(find "$reports" -type f | wc -l)
if [ "$n" != 0 ]; then
    for f in "$reports"/*; do
        echo "== ThreadSanitizer report $(basename "$f")"
        head -n 60 "$f"
    done
fi
line=$(grep -E '^tsan integration: [0-9]+ passed, [0-9]+ failed' "$reports.out" | tail -n1)
rm -f "$reports.out"
passed=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || echo 0)
failed=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+' || echo 1)
[ -n "$line" ] || failed=1
[ "$n" = 0 ] || failed=$((failed + 1))
echo "tsan: $n ThreadSanitizer reports"
echo "tsan: ${passed:-0} passed, $failed failed"
[ "$rc" = 0 ] && [ "$failed" = 0 ]
