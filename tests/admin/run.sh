#!/usr/bin/env bash
# Admin tooling tests: sql/admin.sql, the publishing examples in
# sql/publish/, litepush-prune (retention, pruned_through, concurrency with a
# publisher) and the resume gap signal over litepush-ws after pruning.
# Uses only the sqlite3 shell, python3 and the built programs (php only when
# installed). The last line is "admin: N passed, N failed"; the exit status
# is non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
PRUNE=$ROOT/litepush-prune
WS=$ROOT/litepush-ws
HERE=$ROOT/tests/admin

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1${2:+: $2}"; }
# check NAME GOT WANT
check() { if [ "$2" == "$3" ]; then ok "$1"; else bad "$1" "got '$2', want '$3'"; fi; }
finish() {
    echo "admin: $pass passed, $fail failed"
    [ "$fail" = 0 ]
    exit
}

for b in "$PRUNE" "$WS"; do
    [ -x "$b" ] || make -s -C "$ROOT" "${b##*/}" >/dev/null || { bad "build ${b##*/}"; finish; }
done

T=$(mktemp -d)
WS_PID=
# shellcheck disable=SC2317 # called through the trap
cleanup() {
    if [ -n "$WS_PID" ]; then kill "$WS_PID" 2>/dev/null; wait "$WS_PID" 2>/dev/null; fi
    rm -rf "$T"
}
trap cleanup EXIT

q() { sqlite3 -cmd '.timeout 5000' "$1" "$2"; }
# admin DB: runs sql/admin.sql; passes when it exits 0 and prints nothing.
admin() {
    local out
    if out=$(sqlite3 "$1" <"$ROOT/sql/admin.sql" 2>&1) && [ -z "$out" ]; then return 0; fi
    echo "$out"
    return 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# start_ws DB: starts litepush-ws on a free port (PORT) and waits until it listens.
start_ws() {
    PORT=$(free_port)
    "$WS" --db "$1" --listen "127.0.0.1:$PORT" 2>>"$T/ws.log" &
    WS_PID=$!
    for _ in $(seq 100); do
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$PORT),0.2)" 2>/dev/null && return 0
        kill -0 "$WS_PID" 2>/dev/null || break
        sleep 0.05
    done
    return 1
}
stop_ws() { kill "$WS_PID" 2>/dev/null; wait "$WS_PID" 2>/dev/null; WS_PID=; }
NOW_MS="CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
# fill DB N CHANNEL_EXPR CREATED_EXPR: inserts N rows; i runs 1..N in the expressions.
fill() {
    q "$1" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2)
            INSERT INTO messages(channel, event, data, created_at)
            SELECT $3, 'e', 'row ' || i, $4 FROM n"
}

echo "== admin.sql"
# A database as the programs create it: litepush-ws on a new file.
if start_ws "$T/fresh.db"; then ok "litepush-ws creates a fresh database"; else bad "litepush-ws creates a fresh database"; fi
stop_ws
if admin "$T/fresh.db"; then ok "admin.sql on a fresh database"; else bad "admin.sql on a fresh database"; fi
if admin "$T/fresh.db"; then ok "admin.sql again (idempotent)"; else bad "admin.sql again (idempotent)"; fi
check "views on an empty log" "$(q "$T/fresh.db" "SELECT * FROM litepush_last_id;
    SELECT count(*) FROM litepush_recent; SELECT count(*) FROM litepush_rates;
    SELECT count(*) FROM litepush_hourly; SELECT bytes > 0 FROM litepush_size")" \
    "0|0|0|0
0
0
0
1"

# 1000 rows, one a minute from an hour boundary (2023-11-14 22:00 UTC):
# a = ids 1-500, b = 501-800, c = 801-803, 'd e' = 804-1000.
BASE=1699999200000
sqlite3 "$T/pop.db" <"$ROOT/sql/schema.sql" >/dev/null
fill "$T/pop.db" 1000 "CASE WHEN i <= 500 THEN 'a' WHEN i <= 800 THEN 'b' WHEN i <= 803 THEN 'c' ELSE 'd e' END" \
    "$BASE + (i - 1) * 60000"
q "$T/pop.db" "INSERT INTO messages(channel, data) VALUES ('a','now1'),('a','now2'),('a','now3')"
if admin "$T/pop.db"; then ok "admin.sql on a populated database"; else bad "admin.sql on a populated database"; fi
if admin "$T/pop.db"; then ok "admin.sql on a populated database, again"; else bad "admin.sql on a populated database, again"; fi
check "litepush_channels" "$(q "$T/pop.db" "SELECT channel, messages, first_id, last_id FROM litepush_channels")" \
    "a|503|1|1003
b|300|501|800
c|3|801|803
d e|197|804|1000"
check "litepush_channels times" "$(q "$T/pop.db" "SELECT first_utc FROM litepush_channels WHERE channel = 'b'")" \
    "2023-11-15 06:20:00"
check "litepush_last_id" "$(q "$T/pop.db" "SELECT * FROM litepush_last_id")" "1003|1003|1|0"
check "litepush_recent: 10 per channel, newest first" \
    "$(q "$T/pop.db" "SELECT channel, count(*), max(id) FROM litepush_recent GROUP BY channel")" \
    "a|10|1003
b|10|800
c|3|803
d e|10|1000"
check "litepush_recent order and preview" "$(q "$T/pop.db" "SELECT id, event, preview FROM litepush_recent LIMIT 2")" \
    "1003|message|now3
1002|message|now2"
check "litepush_rates counts the last minute" "$(q "$T/pop.db" "SELECT channel, last_minute, last_hour, last_day FROM litepush_rates")" \
    "a|3|3|3"
check "litepush_hourly" "$(q "$T/pop.db" "SELECT count(*), sum(messages), max(messages) FROM litepush_hourly WHERE hour_utc < '2024'")" \
    "17|1000|60"
check "litepush_hourly newest hour" "$(q "$T/pop.db" "SELECT hour_utc, messages, channels FROM litepush_hourly WHERE hour_utc < '2024' LIMIT 1")" \
    "2023-11-15 14:00|40|1"
check "litepush_channel_hourly" "$(q "$T/pop.db" "SELECT messages, channel FROM litepush_channel_hourly WHERE hour_utc = '2023-11-15 06:00'")" \
    "20|a
40|b"
check "litepush_size" "$(q "$T/pop.db" "SELECT bytes = page_count * page_size AND bytes > 0 FROM litepush_size")" "1"
# The documented history query, taken from the comment in admin.sql.
HISTORY=$(awk '/^-- history_between/ {on = 1} on && /^--   SELECT/ {take = 1}
              take {sub(/^--   ?/, ""); print} take && /;$/ {exit}' "$ROOT/sql/admin.sql")
check "history_between (b, 08:00 to 09:40)" "$(sqlite3 "$T/pop.db" <<SQL
.param set :channel 'b'
.param set :from '2023-11-15 08:00:00'
.param set :to '2023-11-15 09:40:00'
SELECT count(*), min(id), max(id) FROM (${HISTORY%;});
SQL
)" "100|601|700"

echo "== publishing examples"
P=$T/pub.db
sqlite3 "$P" <"$ROOT/sql/schema.sql" >/dev/null
check "publish.sh: message with quotes and a line break" \
    "$(printf "it's\nok \"q\"" | sh "$ROOT/sql/publish/publish.sh" "$P" "we'ird" up)" "1"
check "publish.sh: stored as text, byte for byte" "$(q "$P" "SELECT channel, event, typeof(data), hex(data) FROM messages WHERE id = 1")" \
    "we'ird|up|text|$(printf "it's\nok \"q\"" | od -An -v -tx1 | tr -d ' \n' | tr a-f A-F)"
check "publish.sh: no event is NULL" "$(echo hi | sh "$ROOT/sql/publish/publish.sh" "$P" news; q "$P" "SELECT event IS NULL, data FROM messages WHERE id = 2")" \
    "2
1|hi"
check "publish.sh --order: order and message together" \
    "$(sh "$ROOT/sql/publish/publish.sh" "$P" --order "O'Brien" 1999; q "$P" "SELECT * FROM orders; SELECT channel, event, data FROM messages WHERE id = 3")" \
    "3
1|O'Brien|1999
orders|order.created|{\"order\":1,\"customer\":\"O'Brien\",\"total_cents\":1999}"
check "publish.py: message" "$(python3 "$ROOT/sql/publish/publish.py" "$P" news "" "héllo"; q "$P" "SELECT event IS NULL, data FROM messages WHERE id = 4")" \
    "4
1|héllo"
check "publish.py --order" "$(python3 "$ROOT/sql/publish/publish.py" "$P" --order bob 250; q "$P" "SELECT data FROM messages WHERE id = 5")" \
    "order 2 message 5
{\"order\":2,\"customer\":\"bob\",\"total_cents\":250}"
# A failing message insert must take the order down with it.
q "$P" "CREATE TRIGGER refuse BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'refused'); END"
sh "$ROOT/sql/publish/publish.sh" "$P" --order eve 1 >/dev/null 2>&1
check "publish.sh --order: rolled back together" "$?:$(q "$P" "SELECT count(*) FROM orders")" "1:2"
python3 "$ROOT/sql/publish/publish.py" "$P" --order eve 1 >/dev/null 2>&1
check "publish.py --order: rolled back together" "$?:$(q "$P" "SELECT count(*) FROM orders")" "1:2"
if command -v php >/dev/null && php -r 'exit(extension_loaded("pdo_sqlite") ? 0 : 1);' 2>/dev/null; then
    php "$ROOT/sql/publish/publish.php" "$P" --order eve 1 >/dev/null 2>&1
    check "publish.php --order: rolled back together" "$?:$(q "$P" "SELECT count(*) FROM orders")" "1:2"
    q "$P" "DROP TRIGGER refuse"
    check "publish.php --order" "$(php "$ROOT/sql/publish/publish.php" "$P" --order carol 5)" "order 3 message 6"
    check "publish.php: message" "$(php "$ROOT/sql/publish/publish.php" "$P" news up 'from php'; q "$P" "SELECT data FROM messages WHERE id = 7")" \
        "7
from php"
else
    echo "skip publish.php (no php with pdo_sqlite)"
fi

echo "== litepush-prune: flags"
D=$T/flags.db
sqlite3 "$D" <"$ROOT/sql/schema.sql" >/dev/null
for args in "" "--db $D" "--db $D --keep-days 1 --keep-rows 1" "--db $D --keep-days -1" \
    "--db $D --keep-days abc" "--db $D --keep-days 36501" "--db $D --keep-rows 1x" \
    "--db $D --keep-rows 1 --batch 0" "--db $D --keep-rows 1 --batch 100001" \
    "--db $D --keep-rows 1 --pause -5" "--db $D --keep-rows 1 --channel=" \
    "--db $D --keep-rows 1 --bogus" "--db $D --keep-rows 1 extra" "--keep-rows 1"; do
    # shellcheck disable=SC2086
    LITEPUSH_DB="" "$PRUNE" $args >/dev/null 2>"$T/err"
    rc=$?
    if [ $rc = 2 ] && grep -q "Try 'litepush-prune --help'" "$T/err"; then ok "exit 2: '$args'"; else bad "exit 2: '$args'" "rc $rc"; fi
done
"$PRUNE" --help >"$T/help"
check "--help exits 0 and documents exit codes" "$?:$(grep -c -e '^EXIT STATUS' -e '^    2  bad or missing flag' "$T/help")" "0:2"
"$PRUNE" --db "$T/missing.db" --keep-rows 1 2>/dev/null
check "missing database: exit 1, not created" "$?:$([ -e "$T/missing.db" ] && echo created)" "1:"
echo "not a database, just text long enough to be read as a header.........." >"$T/junk.db"
"$PRUNE" --db "$T/junk.db" --keep-rows 1 2>/dev/null
check "not a database: exit 1" "$?" "1"
LITEPUSH_DB=$D "$PRUNE" --keep-rows 1 >/dev/null
check "LITEPUSH_DB stands in for --db" "$?" "0"

echo "== litepush-prune: retention"
R=$T/rows.db
cp "$T/pop.db" "$R"
out=$("$PRUNE" --db "$R" --keep-rows 250 --dry-run)
check "--dry-run reports and changes nothing" "$out|$(q "$R" "SELECT count(*) FROM messages")" \
    "litepush-prune: dry run: would delete 753 rows (ids 1-753) from every channel, keeping the newest 250 rows; pruned_through stays 0|1003"
out=$("$PRUNE" --db "$R" --keep-rows 250 --batch 100)
check "--keep-rows 250 exits 0" "$?" "0"
check "--keep-rows keeps the newest 250" "$(q "$R" "SELECT count(*), min(id), max(id) FROM messages")" "250|754|1003"
check "--keep-rows sets pruned_through" "$(q "$R" "SELECT pruned_through FROM litepush_last_id")" "753"
check "summary line" "$(sed -E 's/[0-9.]+ s;/T s;/' <<<"$out")" \
    "litepush-prune: deleted 753 rows (ids 1-753) from every channel, keeping the newest 250 rows, in 8 batches, T s; pruned_through 753"
out=$("$PRUNE" --db "$R" --keep-rows 250)
check "nothing to delete" "$?|$out" "0|litepush-prune: deleted 0 rows from every channel, keeping the newest 250 rows; pruned_through 753"
q "$R" "UPDATE litepush_meta SET value = 100000 WHERE key = 'pruned_through'"
"$PRUNE" --db "$R" --keep-rows 100 >/dev/null
check "pruned_through never goes down" "$(q "$R" "SELECT pruned_through, oldest_id FROM litepush_last_id")" "100000|904"
"$PRUNE" --db "$R" --keep-rows 0 >/dev/null
check "--keep-rows 0 empties the log" "$(q "$R" "SELECT * FROM litepush_last_id")" "0|1003|0|100000"
check "ids are not reused after pruning" \
    "$(q "$R" "INSERT INTO messages(data) VALUES ('after'); SELECT max(id) FROM messages")" "1004"

C=$T/chan.db
cp "$T/pop.db" "$C"
"$PRUNE" --db "$C" --keep-rows 100 --channel b >/dev/null
check "--channel b --keep-rows 100 touches only b" \
    "$(q "$C" "SELECT channel, messages, first_id FROM litepush_channels")" \
    "a|503|1
b|100|701
c|3|801
d e|197|804"
check "--channel sets pruned_through" "$(q "$C" "SELECT pruned_through FROM litepush_last_id")" "700"
"$PRUNE" --db "$C" --keep-rows 0 --channel 'd e' >/dev/null
check "--channel 'd e' --keep-rows 0" "$(q "$C" "SELECT count(*) FROM messages WHERE channel = 'd e';
    SELECT count(*) FROM messages; SELECT pruned_through FROM litepush_last_id")" "0
606
1000"

# 1000 rows, one every 0.01 day, the newest 0.005 day old; x = even i, y = odd.
K=$T/days.db
sqlite3 "$K" <"$ROOT/sql/schema.sql" >/dev/null
admin "$K" || bad "admin.sql on days.db"
fill "$K" 1000 "CASE i % 2 WHEN 0 THEN 'x' ELSE 'y' END" "$NOW_MS - (1000 - i) * 864000 - 432000"
"$PRUNE" --db "$K" --keep-days 3 --channel x --batch 64 >/dev/null
check "--keep-days 3 --channel x" "$(q "$K" "SELECT channel, messages, first_id FROM litepush_channels;
    SELECT pruned_through FROM litepush_last_id")" "x|150|702
y|500|1
700"
out=$("$PRUNE" --db "$K" --keep-days 3)
check "--keep-days 3 deletes what is older than 3 days" "$?|$(q "$K" "SELECT count(*), min(id) FROM messages;
    SELECT count(*) FROM messages WHERE created_at < $NOW_MS - 3 * 86400000")" "0|300|701
0"
check "--keep-days summary" "$(grep -oE 'deleted [0-9]+ rows \(ids [0-9-]+\)' <<<"$out")" "deleted 350 rows (ids 1-699)"
check "--keep-days pruned_through" "$(q "$K" "SELECT pruned_through FROM litepush_last_id")" "700"
"$PRUNE" --db "$K" --keep-days 0 >/dev/null
check "--keep-days 0 deletes every row" "$(q "$K" "SELECT * FROM litepush_last_id")" "0|1000|0|1000"

echo "== litepush-prune beside a publisher (200 000 rows)"
B=$T/busy.db
sqlite3 "$B" <"$ROOT/sql/schema.sql" >/dev/null
admin "$B" || bad "admin.sql on busy.db"
q "$B" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
        INSERT INTO messages(channel, event, data, created_at)
        SELECT 'ch' || (i % 100), 'e', printf('{\"n\":%d,\"pad\":\"%s\"}', i, hex(randomblob(40))),
               $NOW_MS - 3 * 86400000 + i FROM n"
python3 "$HERE/publisher.py" "$B" "$T/stop" 50 >"$T/pub.out" &
PUB=$!
sleep 0.5
out=$("$PRUNE" --db "$B" --keep-days 1)
prc=$?
touch "$T/stop"
wait "$PUB"
pubrc=$?
echo "   prune: $out"
echo "   publisher during the prune: $(cat "$T/pub.out")"
check "prune exits 0 while a publisher runs" "$prc" "0"
check "every publisher insert succeeded" "$pubrc" "0"
check "exactly the 200 000 old rows deleted, the live rows kept" \
    "$(q "$B" "SELECT count(*) FROM messages WHERE channel <> 'live'; SELECT count(*) = $(grep -oE 'inserts=[0-9]+' "$T/pub.out" | cut -d= -f2) FROM messages WHERE channel = 'live'; SELECT pruned_through FROM litepush_last_id")" \
    "0
1
200000"
max_ms=$(grep -oE 'max_ms=[0-9.]+' "$T/pub.out" | cut -d= -f2)
if python3 -c "import sys; sys.exit(0 if float('${max_ms:-9999}') <= 100 else 1)"; then
    ok "publisher never waited over 100 ms (max $max_ms ms)"
else
    bad "publisher never waited over 100 ms" "max ${max_ms:-?} ms"
fi

echo "== resume after pruning, over litepush-ws"
W=$T/ws.db
sqlite3 "$W" <"$ROOT/sql/schema.sql" >/dev/null
fill "$W" 100 "'c'" "$NOW_MS"
"$PRUNE" --db "$W" --keep-rows 10 >/dev/null
if start_ws "$W"; then
    ok "litepush-ws starts on the pruned log"
    frames=$(timeout 10 python3 "$HERE/ws_frames.py" 127.0.0.1 "$PORT" "/ws?channel=c&lastEventId=1" 2)
    check "lastEventId=1: litepush.reset, history-pruned, then id 91" "$(python3 -c '
import json, sys
reset, row = (json.loads(l) for l in sys.stdin.read().splitlines())
d = json.loads(reset["data"])
print(reset["event"], d["reason"], d["lastEventId"], d["continueAfter"], reset["id"], row["id"], row["data"])
' <<<"$frames" 2>&1)" "litepush.reset history-pruned 1 90 90 91 row 91"
    frames=$(timeout 10 python3 "$HERE/ws_frames.py" 127.0.0.1 "$PORT" "/ws?channel=c&lastEventId=95" 1)
    check "lastEventId=95 (kept): no reset, id 96 next" \
        "$(python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print(r["event"], r["id"])' <<<"$frames" 2>&1)" "e 96"
    # A gap inside one channel (--channel) while older rows of other
    # channels remain: the resume must still be told (pruned_through).
    q "$W" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
            INSERT INTO messages(channel, data) SELECT 'd', 'd ' || i FROM n"
    "$PRUNE" --db "$W" --keep-rows 5 --channel d >/dev/null
    frames=$(timeout 10 python3 "$HERE/ws_frames.py" 127.0.0.1 "$PORT" "/ws?channel=d&lastEventId=100" 2)
    check "--channel gap: litepush.reset, then the first kept row" "$(python3 -c '
import json, sys
reset, row = (json.loads(l) for l in sys.stdin.read().splitlines())
print(reset["event"], json.loads(reset["data"])["reason"], row["id"])
' <<<"$frames" 2>&1)" "litepush.reset history-pruned 146"
    stop_ws
else
    bad "litepush-ws starts on the pruned log" "$(tail -n 3 "$T/ws.log")"
fi

echo "== a restored log, over litepush-ws"
for mode in rename in-place; do
    R2=$T/restore-$mode.db
    sqlite3 "$R2" <"$ROOT/sql/schema.sql" >/dev/null
    fill "$R2" 3 "'c'" "$NOW_MS"
    cp "$R2" "$T/backup-$mode.db"
    fill "$R2" 5 "'c'" "$NOW_MS"
    if start_ws "$R2"; then
        check "restore by $mode: close 1012, then litepush.reset ahead-of-log" \
            "$(timeout 15 python3 "$HERE/ws_restore.py" 127.0.0.1 "$PORT" "$R2" "$T/backup-$mode.db" "$mode" 2>&1)" \
            "8 1012 litepush.reset ahead-of-log"
        stop_ws
    else
        bad "litepush-ws starts for the restore test" "$(tail -n 3 "$T/ws.log")"
    fi
done

finish
