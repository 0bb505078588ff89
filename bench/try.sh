#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# try.sh VARIANT [lpbench args...]: start one variant as bench/run.sh does,
# run lpbench once against it, stop it. For quick experiments and profiling:
#   bench/try.sh lp-ws-direct --subs 100 --phase rate:50:10
#   BENCH_HOLD=1 bench/try.sh lp-sse-lighttpd --subs 1000 --phase idle:60000
#     (prints the server pids first, so `perf record -p PID` can attach)
# VARIANT: lp-sse-lighttpd lp-sse-apache nchan-sse lp-ws-direct lp-ws-lighttpd nchan-ws
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/bench"
[ $# -ge 1 ] || { sed -n '3,9p' "$0" >&2; exit 2; }
V=$1; shift
A_TPC=250; A_MAXW=${BENCH_APACHE_WORKERS:-11000}; A_SLIMIT=$((A_MAXW / A_TPC + 2))
make -s -C "$ROOT" all bench/lpbench
# shellcheck source=servers.sh
. "$BENCH/servers.sh"
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
TMP=$(mktemp -d /tmp/litepush-try.XXXXXX)
trap 'stop_all; [ "${BENCH_KEEP:-0}" = 1 ] && echo "kept $TMP" || rm -rf "$TMP"' EXIT
start_variant "$V" "$TMP"
echo "try: $V on $TARGET; litepush pid ${LP_PID:-none}, web server pid ${WEB_PID:-none}" >&2
timeout 600 "$BENCH/lpbench" --proto "$PROTO" --target "$TARGET" --path "$PATHQ" \
    "${PUB[@]}" "${GROUPS_ARGS[@]}" "$@"
