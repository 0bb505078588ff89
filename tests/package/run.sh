#!/usr/bin/env bash
# The Debian package end to end: make deb (with lintian), apt-get install
# it, enable its Apache conf with a2enconf and its lighttpd conf with
# lighty-enable-mod, run the installed programs on the packaged sockets
# behind Apache and lighttpd started from generated configs on free
# loopback ports (the system services are not started), check an SSE
# stream and a WebSocket upgrade through each, then apt-get purge and check
# that nothing is left. Needs root (or sudo). apt waits up to 3 min for the
# dpkg lock, which another apt-get on the machine may hold.
# Last line: "package: N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
top=$(pwd)
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
finish() { echo "package: $pass passed, $fail failed"; [ "$fail" = 0 ]; exit $?; }
SUDO=
if [ "$(id -u)" != 0 ]; then
    if sudo -n true 2>/dev/null; then SUDO=sudo
    else echo "SKIP package: installing a .deb needs root or password-less sudo"; finish; fi
fi
export DEBIAN_FRONTEND=noninteractive
t0=$(date +%s)
dir=$(mktemp -d -t litepush-pkg.XXXXXX)
chmod 755 "$dir"
pids=()
made_run=
cleanup() {
    for p in "${pids[@]}"; do $SUDO kill "$p" 2>/dev/null; done
    sleep 0.3
    for p in "${pids[@]}"; do $SUDO kill -9 "$p" 2>/dev/null; done
    if [ -n "$made_run" ]; then $SUDO rm -rf /run/litepush; fi
    if dpkg -s litepush >/dev/null 2>&1; then $SUDO apt-get -o DPkg::Lock::Timeout=180 purge -y -qq litepush >/dev/null 2>&1; fi
    [ -n "${KEEP:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- build
if make -s deb > "$dir/deb.log" 2>&1; then ok "make deb builds the package"
else bad "make deb failed:"; tail -n 30 "$dir/deb.log"; finish; fi
deb=$(ls build/deb/litepush_*.deb 2>/dev/null | head -n1)
echo "     lintian: $(grep -cE '^E: ' build/deb/lintian.log) errors, $(grep -cE '^W: ' build/deb/lintian.log) warnings, $(grep -cE '^I: ' build/deb/lintian.log) info"
grep -E '^[EW]: ' build/deb/lintian.log | sed 's/^/     /'
check "lintian reports no error" bash -c "! grep -q '^E: ' build/deb/lintian.log"

# ---- install
if [ -e /run/litepush/fcgi.sock ] || [ -e /run/litepush/ws.sock ]; then
    bad "/run/litepush holds sockets already (a litepush service is running here): not touching it"; finish
fi
if dpkg -s litepush >/dev/null 2>&1; then $SUDO apt-get -o DPkg::Lock::Timeout=180 purge -y -qq litepush >/dev/null 2>&1; fi
if $SUDO apt-get -o DPkg::Lock::Timeout=180 install -y -qq "./$deb" > "$dir/install.log" 2>&1; then ok "apt-get install ./$(basename "$deb")"
else bad "apt-get install failed:"; tail -n 20 "$dir/install.log"; finish; fi
files=$(dpkg -L litepush)
for f in /usr/bin/litepush-ws /usr/bin/litepush-prune /usr/lib/cgi-bin/litepush.fcgi; do
    check "$f is installed and runs (--help)" bash -c "'$f' --help >/dev/null 2>&1"
done
for f in /usr/share/litepush/litepush.js /usr/share/litepush/sql/schema.sql /etc/litepush/litepush.env \
         /etc/apache2/conf-available/litepush.conf /etc/lighttpd/conf-available/50-litepush.conf \
         /lib/systemd/system/litepush-fcgi.socket /lib/systemd/system/litepush-ws.service \
         /lib/systemd/system/litepush-prune.timer; do
    check "$f is installed" test -f "$f"
done
check "the /etc files are conffiles" bash -c \
    "[ \$(dpkg-query -W -f='\${Conffiles}' litepush | grep -cE '/etc/(litepush|apache2|lighttpd)/') = 3 ]"
for p in litepush-ws litepush-prune litepush.fcgi litepush; do
    check "man $p finds the installed page" bash -c "man -w $p 2>/dev/null | grep -q '^/usr/share/man/'"
done
check "system user litepush exists" bash -c "getent passwd litepush >/dev/null"
check "/var/lib/litepush is litepush:www-data 2770" \
    bash -c '[ "$(stat -c %U:%G:%a /var/lib/litepush)" = litepush:www-data:2770 ]'
check "the units point at the installed programs" bash -c \
    "grep -q '^ExecStart=/usr/lib/cgi-bin/litepush.fcgi ' /lib/systemd/system/litepush-fcgi.service &&
     grep -q '^ExecStart=/usr/bin/litepush-ws --listen /run/litepush/ws.sock' /lib/systemd/system/litepush-ws.service &&
     ! grep -q '^ExecStart=/usr/local' /lib/systemd/system/litepush-*.service"
if command -v systemd-analyze >/dev/null; then
    v=$(cd /lib/systemd/system && timeout 60 systemd-analyze verify litepush-fcgi.socket litepush-fcgi.service \
            litepush-ws.service litepush-prune.timer litepush-prune.service 2>&1)
    check "systemd-analyze verify is silent on the installed units${v:+: ${v//$'\n'/ | }}" test -z "$v"
fi
check "a2enconf litepush" bash -c "$SUDO a2enconf -q litepush >/dev/null 2>&1 && [ -L /etc/apache2/conf-enabled/litepush.conf ]"
check "lighty-enable-mod litepush" bash -c \
    "$SUDO lighty-enable-mod litepush >/dev/null 2>&1; [ -L /etc/lighttpd/conf-enabled/50-litepush.conf ]"

# ---- run the installed programs on the packaged sockets, as the units would
read -r aport lport < <(python3 -c 'import socket
ss=[socket.socket() for _ in range(2)]
[s.bind(("127.0.0.1",0)) for s in ss]; print(*[s.getsockname()[1] for s in ss])')
[ -d /run/litepush ] || { $SUDO mkdir -p /run/litepush; made_run=1; }
db=$dir/push.db
$SUDO env LITEPUSH_DB="$db" /usr/lib/cgi-bin/litepush.fcgi --listen /run/litepush/fcgi.sock --heartbeat 1 \
    >>"$dir/fcgi.log" 2>&1 &
pids+=($!)
$SUDO env LITEPUSH_DB="$db" /usr/bin/litepush-ws --listen /run/litepush/ws.sock >>"$dir/ws.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -S /run/litepush/fcgi.sock ] && [ -S /run/litepush/ws.sock ] && break; sleep 0.1; done
# The units run them with Group=www-data, so the sockets (0660 since
# --socket-mode's default) are the web server's group's; here root runs them.
$SUDO chgrp www-data /run/litepush/fcgi.sock /run/litepush/ws.sock
mods=(mpm_event authz_core authz_host proxy proxy_fcgi proxy_wstunnel env)
mkdir -p "$dir/apache-run" "$dir/www"
{
    echo "ServerRoot \"$dir\""
    echo "ServerName 127.0.0.1"
    echo "Listen 127.0.0.1:$aport"
    echo "PidFile \"$dir/apache.pid\""
    echo "DefaultRuntimeDir \"$dir/apache-run\""
    echo "ErrorLog \"$dir/apache-error.log\""
    echo "User www-data"
    echo "Group www-data"
    for m in "${mods[@]}"; do echo "LoadModule ${m}_module /usr/lib/apache2/modules/mod_${m}.so"; done
    echo "DocumentRoot \"$dir/www\""
    echo "# the packaged snippet, enabled by a2enconf"
    echo "Include /etc/apache2/conf-enabled/litepush.conf"
} > "$dir/apache.conf"
cat > "$dir/lighttpd.conf" <<LCONF
server.document-root = "$dir/www"
server.bind = "127.0.0.1"
server.port = $lport
server.errorlog = "$dir/lighttpd-error.log"
# the packaged snippet, enabled by lighty-enable-mod
include "/etc/lighttpd/conf-enabled/50-litepush.conf"
LCONF
$SUDO env APACHE_RUN_DIR="$dir/apache-run" APACHE_LOCK_DIR="$dir/apache-run" APACHE_LOG_DIR="$dir" \
    /usr/sbin/apache2 -f "$dir/apache.conf" -DFOREGROUND >>"$dir/apache-stderr.log" 2>&1 &
pids+=($!)
$SUDO lighttpd -D -f "$dir/lighttpd.conf" >>"$dir/lighttpd-stderr.log" 2>&1 &
pids+=($!)
up() { for _ in $(seq 80); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
check "Apache starts with the packaged conf" up "$aport"
check "lighttpd starts with the packaged conf" up "$lport"
sqlite3 "$db" "INSERT INTO messages(channel,event,data) VALUES('pkg','hello','from the package'),('pkg',NULL,'second')" ||
    bad "insert into $db"
for pair in apache:$aport lighttpd:$lport; do
    name=${pair%%:*}; port=${pair#*:}
    out=$(curl -sN -m 3 "http://127.0.0.1:$port/events?channel=pkg&lastEventId=0")
    check "$name: SSE stream replays both rows" \
        grep -qF 'id: 1|event: hello|data: from the package||id: 2|data: second||' <<<"$(tr '\n' '|' <<<"$out")"
    live=$( { sleep 1; sqlite3 "$db" "INSERT INTO messages(channel,data) VALUES('pkg','live $name')"; } &
            curl -sN -m 3 "http://127.0.0.1:$port/events?channel=pkg" )
    check "$name: SSE stream gets a live row" grep -q "data: live $name" <<<"$live"
    check "$name: WebSocket upgrade (101) and the first row as JSON" \
        python3 tests/package/ws_check.py "$port" "/ws?channel=pkg&lastEventId=0" '"data":"from the package"'
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/events?channel=pkg&lastEventId=x")
    check "$name: a bad request gets the responder's 400 ($code)" test "$code" = 400
done
for p in "${pids[@]}"; do $SUDO kill "$p" 2>/dev/null; done
wait 2>/dev/null
pids=()
[ -z "$made_run" ] || { $SUDO rm -rf /run/litepush; made_run=; }

# ---- purge
if $SUDO apt-get -o DPkg::Lock::Timeout=180 purge -y -qq litepush > "$dir/purge.log" 2>&1; then ok "apt-get purge litepush"
else bad "apt-get purge failed:"; tail -n 20 "$dir/purge.log"; fi
left=()
while read -r f; do
    [ -n "$f" ] && [ ! -d "$f" ] && { [ -e "$f" ] || [ -L "$f" ]; } && left+=("$f")
done <<<"$files"
for f in /etc/litepush /var/lib/litepush /etc/apache2/conf-enabled/litepush.conf \
         /etc/lighttpd/conf-enabled/50-litepush.conf /usr/share/litepush /usr/share/doc/litepush; do
    { [ -e "$f" ] || [ -L "$f" ]; } && left+=("$f")
done
check "nothing of the package is left after purge${left[*]:+: ${left[*]}}" test ${#left[@]} = 0
check "dpkg has forgotten the package" bash -c "! dpkg -s litepush >/dev/null 2>&1"
echo "     package stage took $(( $(date +%s) - t0 )) s"
finish
