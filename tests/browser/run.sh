#!/usr/bin/env bash
# Browser tests in headless Debian chromium, driven by playwright-core:
#   run.sh              the demo page (demo/index.html), test.mjs   (make browser)
#   run.sh client.mjs   the client library js/litepush.js           (make client)
# Assumes `make` has built the programs.
# Last line: "browser: N passed, N failed"; exits non-zero on any failure.
#   OUTAGE_HOLD_MS=4000          how long the long outages (4b, 5b) last after their inserts
#   BROWSER_PAGE=/path/index.html  test another page instead of demo/index.html
set -u
cd "$(dirname "$0")"
top=$(cd ../.. && pwd)
fail() { echo "browser: $1"; echo "browser: 0 passed, 1 failed"; exit 1; }

for f in "$top/cgi-bin/litepush.fcgi" "$top/litepush-ws"; do
    [ -x "$f" ] || fail "$f is missing: run make first"
done
for c in lighttpd sqlite3 node npm; do
    command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] || fail "$c is missing (tests/deps.sh installs it)"
done
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" != 0 ]; then
        fail "skipped: /usr/bin/chromium is missing and installing it needs root (apt-get install -y chromium)"
    fi
    echo "browser: installing Debian's chromium"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -qq chromium >/dev/null 2>&1 ||
      { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; } ||
        fail "skipped: apt-get install chromium failed"
    [ -x /usr/bin/chromium ] || fail "skipped: chromium did not install"
fi
if [ ! -d node_modules/playwright-core ]; then
    npm install --no-audit --no-fund --loglevel=error >/dev/null || fail "npm install failed"
fi

# The test runs in its own process group so that whatever it leaves behind
# (servers, chromium) goes with it.
script=${1:-test.mjs}
case $script in client.mjs) limit=215 ;; *) limit=118 ;; esac
setsid node "$script" &
pid=$!
stop() { kill -TERM -- "-$pid" 2>/dev/null; sleep 1; kill -KILL -- "-$pid" 2>/dev/null; }
trap 'stop; exit 1' INT TERM
# A hard bound on top of the test's own watchdog (110 s, 200 s).
( sleep "$limit"; kill -TERM -- "-$pid" 2>/dev/null ) >/dev/null 2>&1 &   # not holding our stdout open
timer=$!
wait "$pid"
rc=$?
kill "$timer" 2>/dev/null
kill -KILL -- "-$pid" 2>/dev/null   # anything left in the group
[ "$rc" = 0 ] || [ "$rc" = 1 ] || echo "browser: 0 passed, 1 failed"   # killed before it could count
exit "$rc"
