#!/usr/bin/env bash
# Runs each unit-test binary and adds up their "N passed, N failed" lines.
passed=0; failed=0
for t in "$@"; do
    out=$("$t" 2>&1); rc=$?
    printf '%s\n' "$out" | grep -v ': [0-9]* passed, [0-9]* failed$' | sed 's/^/  /'
    line=$(printf '%s\n' "$out" | grep -E '[0-9]+ passed, [0-9]+ failed$' | tail -n1)
    p=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$line"); f=$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$line")
    [ -n "$line" ] || { p=0; f=1; echo "  ${t##*/}: crashed or printed no counts (exit $rc)"; }
    [ "$rc" = 0 ] || [ "$f" != 0 ] || f=1
    echo "unit ${t##*/}: $p passed, $f failed"
    passed=$((passed + p)); failed=$((failed + f))
done
echo "unit: $passed passed, $failed failed"
[ "$failed" = 0 ]
