#!/usr/bin/env bash
# make demo: installs what is missing, builds, and starts lighttpd on
# loopback with the SSE responder and the WebSocket helper behind it, on a
# fresh SQLite log. Prints the URL to open; Ctrl-C stops everything.
#   DEMO_PORT=8080 make demo      choose the web port (default 8080)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
tests/deps.sh
make -s all
port=${DEMO_PORT:-8080}
fcgi_port=$((port + 1)); ws_port=$((port + 2))
dir=$(mktemp -d -t litepush-demo.XXXXXX)
db=$dir/push.db
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "demo stopped; its files were in $dir"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

for p in "$port" "$fcgi_port" "$ws_port"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        echo "port $p is in use: choose another with DEMO_PORT=NNNN make demo" >&2
        exit 1
    fi
done

cp demo/index.html "$dir/index.html"
cp js/litepush.js "$dir/litepush.js"
sed -e "s|@DOCROOT@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@FCGI_PORT@|$fcgi_port|g" \
    -e "s|@WS_PORT@|$ws_port|g" -e "s|@DIR@|$dir|g" demo/lighttpd.conf.in > "$dir/lighttpd.conf"

cgi-bin/litepush.fcgi --db "$db" --listen "127.0.0.1:$fcgi_port" 2>>"$dir/litepush.log" &
pids+=($!)
./litepush-ws --db "$db" --listen "127.0.0.1:$ws_port" --allow-publish 2>>"$dir/litepush-ws.log" &
pids+=($!)
lighttpd -D -f "$dir/lighttpd.conf" 2>>"$dir/lighttpd.log" &
pids+=($!)
for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
done
sqlite3 "$db" "INSERT INTO messages(channel,event,data) VALUES('demo',NULL,'litepush demo started')"
cat <<MSG

  litepush demo is running.

    Open:     http://127.0.0.1:$port/
    Publish:  sqlite3 $db "INSERT INTO messages(channel,data) VALUES('demo','hello')"
    Watch:    curl -N 'http://127.0.0.1:$port/events?channel=demo'
    History:  sqlite3 $db "SELECT id, channel, event, data FROM messages ORDER BY id DESC LIMIT 10"

  Logs are in $dir. Press Ctrl-C to stop.

MSG
wait
