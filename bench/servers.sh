# shellcheck shell=bash disable=SC2034  # sets variables for the scripts that source it
# bench/servers.sh: start litepush, lighttpd, Apache and nginx+nchan on
# loopback from configs generated into a directory. Sourced by bench/run.sh
# and bench/try.sh; needs ROOT, BENCH, A_TPC, A_MAXW,
# A_SLIMIT set (Apache sizing). Every server started is recorded in PIDS; stop_all ends them.
PIDS=()
NCHAN_SO=
for f in /usr/lib/nginx/modules/ngx_nchan_module.so /usr/share/nginx/modules/ngx_nchan_module.so; do
    [ -e "$f" ] && NCHAN_SO=$f && break
done
[ -n "$NCHAN_SO" ] || NCHAN_SO=$(sed -n 's/^load_module \(.*\);/\1/p' \
    /usr/share/nginx/modules-available/mod-http-nchan.conf 2>/dev/null | head -n1 || true)
case "$NCHAN_SO" in /*) ;; *) NCHAN_SO=/usr/share/nginx/$NCHAN_SO ;; esac
APACHE_MODS=/usr/lib/apache2/modules
# Servers run in their own sessions: lighttpd with workers signals its whole
# process group on shutdown, which must not reach this script.
stop_all() {
    local p n
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for n in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    PIDS=()
}

NEXT_PORT=$((20000 + RANDOM % 8000))
free_port() {
    local p n
    for n in $(seq 1 200); do
        p=$NEXT_PORT
        NEXT_PORT=$((NEXT_PORT + 1)); [ "$NEXT_PORT" -lt 32000 ] || NEXT_PORT=20000
        if [ -z "$(ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null)" ]; then
            echo "$p"; return 0
        fi
    done
    echo "bench: no free port" >&2; return 1
}
wait_port() { # PORT PID NAME: wait until something listens on 127.0.0.1:PORT
    local n
    for n in $(seq 1 100); do
        [ -n "$(ss -Htln "( sport = :$1 )" 2>/dev/null)" ] && return 0
        kill -0 "$2" 2>/dev/null || { echo "bench: $3 exited; log:" >&2; tail -n 5 "$4" >&2; return 1; }
        sleep 0.1
    done
    echo "bench: $3 does not listen on $1" >&2; return 1
}

# ---- servers -------------------------------------------------------------------
# Each start_* sets a PID variable and appends to PIDS.
start_fcgi() { # DIR
    FPORT=$(free_port)
    setsid "$ROOT/cgi-bin/litepush.fcgi" --db "$1/push.db" --listen "127.0.0.1:$FPORT" \
        2>"$1/fcgi.log" &
    LP_PID=$!; PIDS+=("$LP_PID")
    wait_port "$FPORT" "$LP_PID" litepush.fcgi "$1/fcgi.log"
}
start_ws() { # DIR
    WPORT=$(free_port)
    setsid "$ROOT/litepush-ws" --db "$1/push.db" --listen "127.0.0.1:$WPORT" --no-deflate \
        --max-connections 19000 2>"$1/ws.log" &
    LP_PID=$!; PIDS+=("$LP_PID")
    wait_port "$WPORT" "$LP_PID" litepush-ws "$1/ws.log"
}
start_lighttpd() { # DIR BACKEND(fcgi|ws)
    local d=$1
    HPORT=$(free_port)
    mkdir -p "$d/www"
    {
        echo "server.document-root = \"$d/www\""
        echo "server.bind = \"127.0.0.1\""
        echo "server.port = $HPORT"
        echo "server.errorlog = \"$d/lighttpd.log\""
        echo "server.modules = ( \"mod_fastcgi\", \"mod_proxy\" )"
        # 2 fds per stream and at most 20000 per process: two workers for 10k.
        echo "server.max-worker = 2"
        echo "server.max-fds = 20000"
        echo "server.max-connections = 9500"
        echo "server.listen-backlog = 4096"
        echo "server.stream-response-body = 2"
        if [ "$2" = fcgi ]; then
            echo "fastcgi.server = ( \"/events\" => (( \"host\" => \"127.0.0.1\", \"port\" => $FPORT,"
            echo "    \"check-local\" => \"disable\" )) )"
        else
            echo "proxy.server = ( \"/ws\" => (( \"host\" => \"127.0.0.1\", \"port\" => $WPORT )) )"
            echo "proxy.header = ( \"upgrade\" => \"enable\" )"
        fi
    } >"$d/lighttpd.conf"
    setsid lighttpd -D -f "$d/lighttpd.conf" 2>>"$d/lighttpd.log" &
    WEB_PID=$!; PIDS+=("$WEB_PID")
    wait_port "$HPORT" "$WEB_PID" lighttpd "$d/lighttpd.log"
}
start_apache() { # DIR
    local d=$1 m
    HPORT=$(free_port)
    mkdir -p "$d/www" "$d/apache-run"
    chown www-data "$d/apache-run" 2>/dev/null || true
    {
        echo "ServerRoot \"$d\""
        echo "ServerName 127.0.0.1"
        echo "Listen 127.0.0.1:$HPORT"
        echo "DefaultRuntimeDir \"$d/apache-run\""
        echo "PidFile \"$d/apache.pid\""
        echo "ErrorLog \"$d/apache.log\""
        echo "LogLevel warn"
        echo "DocumentRoot \"$d/www\""
        [ "$(id -u)" = 0 ] && echo "User www-data" && echo "Group www-data"
        for m in mpm_event authz_core proxy proxy_fcgi; do
            echo "LoadModule ${m}_module $APACHE_MODS/mod_${m}.so"
        done
        echo "ListenBacklog 4096"
        # One worker thread per stream (see apache-conf/litepush-apache.conf).
        echo "ThreadLimit $A_TPC"
        echo "ThreadsPerChild $A_TPC"
        echo "ServerLimit $A_SLIMIT"
        echo "MaxRequestWorkers $A_MAXW"
        echo "StartServers 2"
        echo "MinSpareThreads $A_TPC"
        echo "MaxSpareThreads $A_MAXW"
        echo "MaxConnectionsPerChild 0"
        echo "ProxyPass /events fcgi://127.0.0.1:$FPORT/ flushpackets=on timeout=120"
        echo "<Location /events>"
        echo "  Require all granted"
        echo "</Location>"
    } >"$d/apache.conf"
    setsid /usr/sbin/apache2 -f "$d/apache.conf" -DFOREGROUND 2>>"$d/apache.log" &
    WEB_PID=$!; PIDS+=("$WEB_PID")
    wait_port "$HPORT" "$WEB_PID" apache2 "$d/apache.log"
}
start_nginx() { # DIR
    [ -e "$NCHAN_SO" ] || { echo "bench: nchan module not found" >&2; exit 1; }
    local d=$1
    HPORT=$(free_port)
    {
        echo "load_module $NCHAN_SO;"
        echo "daemon off;"
        echo "master_process on;"
        echo "worker_processes 2;"
        echo "worker_rlimit_nofile 20000;"
        echo "pid $d/nginx.pid;"
        echo "error_log $d/nginx.log warn;"
        echo "events { worker_connections 19000; multi_accept on; }"
        echo "http {"
        echo "  access_log off;"
        # one keep-alive publisher connection carries every POST of a run
        echo "  keepalive_requests 10000000;"
        echo "  keepalive_timeout 300s;"
        for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $d/$t;"; done
        echo "  nchan_shared_memory_size 256M;"
        echo "  server {"
        echo "    listen 127.0.0.1:$HPORT backlog=4096;"
        # nchan's default first message is the oldest one buffered; a live
        # subscriber, like litepush's without a resume id, starts at the newest.
        echo "    location = /sub { nchan_subscriber; nchan_channel_id \$arg_id;"
        echo "                      nchan_subscriber_first_message newest; }"
        echo "    location = /pub { nchan_publisher; nchan_channel_id \$arg_id; }"
        echo "  }"
        echo "}"
    } >"$d/nginx.conf"
    setsid nginx -p "$d" -c "$d/nginx.conf" 2>>"$d/nginx.log" &
    WEB_PID=$!; PIDS+=("$WEB_PID")
    wait_port "$HPORT" "$WEB_PID" nginx "$d/nginx.log"
}

# start_variant NAME DIR: sets PROTO TARGET PATHQ PUB GROUPS
start_variant() {
    local v=$1 d=$2
    LP_PID=; WEB_PID=
    case "$v" in
    lp-sse-lighttpd) start_fcgi "$d"; start_lighttpd "$d" fcgi; PROTO=sse; PATHQ='/events?channel=' ;;
    lp-sse-apache)   start_fcgi "$d"; start_apache "$d"; PROTO=sse; PATHQ='/events?channel=' ;;
    lp-ws-direct)    start_ws "$d"; HPORT=$WPORT; PROTO=ws; PATHQ='/ws?channel=' ;;
    lp-ws-lighttpd)  start_ws "$d"; start_lighttpd "$d" ws; PROTO=ws; PATHQ='/ws?channel=' ;;
    nchan-sse)       start_nginx "$d"; PROTO=sse; PATHQ='/sub?id=' ;;
    nchan-ws)        start_nginx "$d"; PROTO=ws; PATHQ='/sub?id=' ;;
    *) echo "bench: unknown variant $v" >&2; exit 2 ;;
    esac
    TARGET="127.0.0.1:$HPORT"
    GROUPS_ARGS=()
    if [ -n "$LP_PID" ]; then
        GROUPS_ARGS+=(--group "lp=$LP_PID")
        PUB=(--pub-sqlite "$d/push.db")
    else
        PUB=(--pub-http "127.0.0.1:$HPORT/pub?id=")
    fi
    [ -z "$WEB_PID" ] || GROUPS_ARGS+=(--group "web=$WEB_PID")
    sleep 0.5 # let Apache and nginx finish spawning their children
}
