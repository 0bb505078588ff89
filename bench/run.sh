#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# make bench: litepush against nginx + nchan on loopback, same scenarios,
# alternating, several rounds; prints medians and litepush/nchan ratios.
#
#   BENCH_ROUNDS=N   rounds (default 3; 1 with BENCH_QUICK=1)
#   BENCH_QUICK=1    every subscriber count / 10, shorter phases (~2 min)
#   BENCH_ONLY="lp-ws-direct nchan-ws"   run only these variants
#   BENCH_KEEP=1     keep the temp dir (configs, logs, raw lpbench output)
#   BENCH_SOAK_MIN=N the soak that follows the rounds: minutes (default 60;
#                    0 skips it). BENCH_ONLY=soak runs the soak alone.
#   BENCH_SOAK_VARIANT=lp-ws-direct   soak another variant (lp-sse-lighttpd)
#
# Every server binds 127.0.0.1 on a free port above 20000 and is started
# from a config generated into a temp dir; everything started here is
# stopped on exit. See bench/README.md for how to read the table.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/bench"
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then ROUNDS=${BENCH_ROUNDS:-1}; S=10; else ROUNDS=${BENCH_ROUNDS:-3}; S=1; fi
case "$ROUNDS" in '' | *[!0-9]*) echo "BENCH_ROUNDS wants a number" >&2; exit 2 ;; esac
if [ "$ROUNDS" -lt 1 ] || [ "$ROUNDS" -gt 20 ]; then echo "BENCH_ROUNDS: 1..20" >&2; exit 2; fi
VARIANTS=${BENCH_ONLY:-"lp-sse-lighttpd lp-sse-apache nchan-sse lp-ws-direct lp-ws-lighttpd nchan-ws"}
SOAK_MIN=${BENCH_SOAK_MIN:-60}
case "$SOAK_MIN" in '' | *[!0-9]*) echo "BENCH_SOAK_MIN wants whole minutes" >&2; exit 2 ;; esac
SOAK_VARIANT=${BENCH_SOAK_VARIANT:-lp-sse-lighttpd}
SOAK_SUBS=1000; SOAK_CHANNELS=10; SOAK_RATE=100; SOAK_CHURN=10; SOAK_SAMPLE_S=60
if [ "$VARIANTS" = soak ]; then
    VARIANTS=""
    [ "$SOAK_MIN" -gt 0 ] || SOAK_MIN=60
fi

# ---- scenario sizes (divided by S in quick mode) ----
N_HOLD=$((10000 / S))   # idle hold + one message to N_HOLD
N_FAN=$((1000 / S))     # one message to N_FAN, then flood
N_SLOW=100              # p50 at 10 msg/s (cheap: never scaled down)
N_MANY=$((10000 / S)); C_MANY=$((1000 / S)); R_MANY=1000
if [ "$QUICK" = 1 ]; then
    LAT_MSGS=10; FLOOD_MS=2000; SLOW_MSGS=20; MANY_MS=2000; IDLE_MS=1000
else
    LAT_MSGS=20; FLOOD_MS=5000; SLOW_MSGS=30; MANY_MS=5000; IDLE_MS=2000
fi
FLOOD_WINDOW=32         # messages not yet at every subscriber, during a flood

# Apache's event MPM holds one worker thread per SSE stream: size it for
# N_HOLD streams (ThreadsPerChild x children), with headroom.
A_TPC=250
A_MAXW=$(( (N_HOLD + 500 + A_TPC - 1) / A_TPC * A_TPC ))
A_SLIMIT=$(( A_MAXW / A_TPC + 2 ))

if [ -n "$VARIANTS" ]; then "$ROOT/tests/deps.sh" bench; else "$ROOT/tests/deps.sh"; fi
make -s -C "$ROOT" all bench/lpbench
# shellcheck source=servers.sh
. "$BENCH/servers.sh"

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
TMP=$(mktemp -d /tmp/litepush-bench.XXXXXX)
RESULTS="$TMP/results.tsv"
: >"$RESULTS"
cleanup() {
    stop_all
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# record ROUND VARIANT SCENARIO FILE: lpbench key=value lines -> results.tsv
record() {
    awk -v r="$1" -v v="$2" -v s="$3" '
        { step = ""; delete kv
          for (i = 1; i <= NF; i++) { k = $i; sub(/=.*/, "", k); val = $i; sub(/^[^=]*=/, "", val)
                                      if (k == "step") step = val; else kv[k] = val }
          if (step == "") next
          for (k in kv) printf "%s\t%s\t%s.%s.%s\t%s\n", r, v, s, step, k, kv[k] }' "$4" >>"$RESULTS"
}

run_scenario() { # ROUND VARIANT SCENARIO lpbench-args...
    local r=$1 v=$2 s=$3 out
    shift 3
    out="$TMP/raw/r$r-$v-$s.txt"
    mkdir -p "$TMP/raw"
    if ! timeout 300 "$BENCH/lpbench" --proto "$PROTO" --target "$TARGET" --path "$PATHQ" \
        --chan-prefix "b$r$s" "${PUB[@]}" "${GROUPS_ARGS[@]}" "$@" >"$out" 2>"$out.err"; then
        echo "  $s: lpbench reported a problem: $(tail -n 2 "$out.err" | tr '\n' ' ')" >&2
    fi
    record "$r" "$v" "$s" "$out"
    awk '/^step=(idle|lat|flood|rate)/ { for (i = 1; i <= NF; i++) if ($i ~ /^(step|subs|open|channels|msgs|lost|dup|closed|dps|p50_ms|p99_ms|mem_lp_per_sub_b|mem_web_per_sub_b)=/) printf "%s ", $i; print "" }' \
        "$out" | sed "s/^/  $s: /"
}

# soak: SOAK_SUBS subscribers over SOAK_CHANNELS channels, SOAK_RATE rows a
# second for SOAK_MIN minutes; every second SOAK_CHURN of them hang up and
# reconnect with their last id; server RSS every SOAK_SAMPLE_S seconds.
# Pass: nothing lost, nothing duplicated (RSS is reported, for a human).
run_soak() {
    local d="$TMP/soak" out="$TMP/raw/soak.txt"
    mkdir -p "$d" "$TMP/raw"
    echo "== soak: $SOAK_VARIANT, $SOAK_SUBS subscribers over $SOAK_CHANNELS channels," \
         "$SOAK_RATE rows/s, churn $SOAK_CHURN/s, $SOAK_MIN min"
    start_variant "$SOAK_VARIANT" "$d"
    timeout $((SOAK_MIN * 60 + 300)) "$BENCH/lpbench" --proto "$PROTO" --target "$TARGET" \
        --path "$PATHQ" --chan-prefix soak "${PUB[@]}" "${GROUPS_ARGS[@]}" \
        --subs "$SOAK_SUBS" --channels "$SOAK_CHANNELS" \
        --phase "soak:$((SOAK_MIN * 60)):$SOAK_RATE:$SOAK_CHURN:$SOAK_SAMPLE_S" >"$out" 2>"$out.err" ||
        echo "  soak: lpbench reported a problem: $(tail -n 2 "$out.err" | tr '\n' ' ')" >&2
    stop_all
    grep -E '^step=(soak_sample|soak_end)' "$out" | sed 's/^step=/  /'
    awk '/^step=soak_sample/ && !first { for (i = 1; i <= NF; i++) if ($i ~ /^rss_/) s[$i] = 1; first = 1
                                         for (i = 1; i <= NF; i++) if ($i ~ /^rss_/) { split($i, kv, "="); a[kv[1]] = kv[2] } }
         /^step=soak_end/ { for (i = 1; i <= NF; i++) if ($i ~ /^rss_/) { split($i, kv, "="); b[kv[1]] = kv[2] } }
         /^step=soak / { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
         END { line = sprintf("soak result: %s min, delivered %s of %s, lost %s, duplicated %s",
                              '"$SOAK_MIN"', v["delivered"], v["expected"], v["lost"], v["dup"])
               for (k in a) line = line sprintf(", %s %s -> %s", k, a[k], b[k])
               print line
               exit (v["expected"] != "" && v["lost"] == 0 && v["dup"] == 0) ? 0 : 1 }' "$out" |
        tee "$BENCH/last-soak.txt"
}

T0=$(date +%s)
[ -n "$VARIANTS" ] || { run_soak; exit; }
echo "litepush bench: rounds=$ROUNDS quick=$QUICK variants: $VARIANTS"
echo "sizes: hold $N_HOLD, fan-out $N_FAN, slow $N_SLOW, many $N_MANY subs over $C_MANY channels"
for r in $(seq 1 "$ROUNDS"); do
    for v in $VARIANTS; do
        d="$TMP/r$r-$v"
        mkdir -p "$d"
        echo "== round $r/$ROUNDS: $v ($(( $(date +%s) - T0 )) s)"
        start_variant "$v" "$d"
        run_scenario "$r" "$v" hold --subs "$N_HOLD" --phase "idle:$IDLE_MS" --phase "lat:$LAT_MSGS:50"
        run_scenario "$r" "$v" fan --subs "$N_FAN" --phase "lat:$((LAT_MSGS * 2)):20" \
            --phase "flood:$FLOOD_MS:$FLOOD_WINDOW"
        run_scenario "$r" "$v" slow --subs "$N_SLOW" --phase "rate:$SLOW_MSGS:10"
        run_scenario "$r" "$v" many --subs "$N_MANY" --channels "$C_MANY" \
            --phase "rate:$((R_MANY * MANY_MS / 1000)):$R_MANY"
        stop_all
    done
done
ELAPSED=$(( $(date +%s) - T0 ))
cp "$RESULTS" "$BENCH/last-results.tsv"
"$BENCH/report.sh" "$RESULTS" "$ROUNDS" "$QUICK" "$ELAPSED" | tee "$BENCH/last-report.txt"
# PostgreSQL against SQLite, same machine, same run (bench/pg.py; also
# alone as make bench-pg). BENCH_PG=0 leaves it out.
if [ "${BENCH_PG:-1}" = 1 ]; then
    echo "== PostgreSQL vs SQLite"
    BENCH_PG_QUICK=$QUICK python3 "$BENCH/pg.py" | tee "$BENCH/last-report-pg.txt"
fi
[ "$SOAK_MIN" = 0 ] || run_soak
