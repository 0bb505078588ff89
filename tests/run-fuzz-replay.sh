#!/usr/bin/env bash
# Replays every committed fuzz corpus through its target once, as a
# regression test (no new inputs are generated).
passed=0; failed=0
for f in "$@"; do
    name=${f##*/fuzz_}
    dir=tests/fuzz/corpus/$name
    [ -d "$dir" ] || { echo "fuzz $name: no corpus"; failed=$((failed + 1)); continue; }
    n=$(find "$dir" -type f | wc -l)
    if out=$("$f" -runs=0 "$dir" 2>&1); then
        echo "fuzz $name: replayed $n inputs"
        passed=$((passed + 1))
    else
        printf '%s\n' "$out" | tail -n 20
        echo "fuzz $name: FAILED"
        failed=$((failed + 1))
    fi
done
echo "fuzz-replay: $passed passed, $failed failed"
[ "$failed" = 0 ]
