#!/usr/bin/env python3
"""litepush integration tests: the SSE responder behind real Apache 2.4 and
lighttpd 1.4 on loopback, and the WebSocket helper directly and behind both
(the ws.* cases, in ws_cases.py).

The harness makes a temp dir, lets cgi-bin/litepush.fcgi create a fresh
database there, starts the responder (--listen 127.0.0.1:PORT and a second
one on a unix socket), generates Apache and lighttpd configs (lighttpd also
spawns a third responder itself through bin-path, on fd 0) and runs every
case against each front end. Rows are published with the sqlite3 CLI, as a
user would. Readers are raw sockets (exact framing), curl, and the npm
`eventsource` client (es_client.mjs).

Prints one line per case and ends with `integration: N passed, N failed`;
exits non-zero on any failure. Standard library only.

With LITEPUSH_STORE=pg every case runs against a throw-away PostgreSQL
server instead (pgserver.py; rows published with psql); tests/pg/run.sh
does that and adds the PostgreSQL-only cases.

    tests/integration/run.py [-k REGEX] [--target NAME] [--keep] [-v]
    LITEPUSH_FCGI=/path/to/litepush.fcgi tests/integration/run.py   (another build)
"""
import argparse
import base64
import json
import os
import re
import selectors
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import traceback

import auth_cases
import fault_cases
import metrics_cases
import ws_cases
from harness import (APACHE_MODULES, BIN, DB, WS_BIN, WS_MAIN_ARGS, WS_RO_ARGS, Env, Fail, Skip, NodeES, NodeWS, PROCS, Procs,
                     Responder, RETRY_MS, ROOT, Target, alive, check, sqlite_only, fcgi_open, fcgi_request, fd_count, settle_fds,
                     free_port, http_once, short, tcp_listening, wait_until)

VERBOSE = False
ENV = None

# ====================================================================== cases
# A case takes a Target (None for the CLI cases) and raises Fail. Each returns
# an optional short note printed after PASS.


def expect_ids(evs, ids, what):
    got = [e["id"] for e in evs]
    check(got == [str(i) for i in ids], f"{what}: expected ids {ids}, got {got}")


# --------------------------------------------------------------- CLI checks
def run_bin(args, env=None, timeout=5.0):
    try:
        r = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout,
                           env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Fail(f"litepush.fcgi {' '.join(args)} still running after {timeout:g}s "
                   "(expected a quick exit)")
    return r.returncode, r.stdout, r.stderr


def cli_help(_):
    rc, out, err = run_bin(["--help"])
    check(rc == 0, f"--help: expected exit 0, got {rc}")
    text = out + err
    check("--db" in text and "--listen" in text, f"--help should name --db and --listen: {short(text)}")


def cli_bad_flag(_):
    rc, out, err = run_bin(["--db", os.path.join(ENV.dir, "cli.db"), "--bogus-flag"])
    check(rc != 0, f"bad flag: expected non-zero exit, got {rc}")
    check("bogus-flag" in err, f"bad flag: stderr should name the flag, got {err.strip()!r}")


def cli_bad_value(_):
    for args in (["--heartbeat", "abc"], ["--retry", "-5"], ["--listen", "127.0.0.1:notaport"]):
        rc, out, err = run_bin(["--db", os.path.join(ENV.dir, "cli.db"), *args])
        check(rc != 0 and err.strip(), f"{' '.join(args)}: expected non-zero exit with a message, "
                                       f"got {rc} / {err.strip()!r}")


def cli_no_db(_):
    env = {k: v for k, v in os.environ.items() if k != "LITEPUSH_DB"}
    rc, out, err = run_bin(["--listen", f"127.0.0.1:{free_port()}"], env=env)
    check(rc != 0 and err.strip(), f"no --db and no LITEPUSH_DB: expected non-zero exit with a "
                                   f"message, got {rc} / {err.strip()!r}")


def cli_unreadable_db(_):
    junk = os.path.join(ENV.dir, "junk.db")
    with open(junk, "wb") as f:
        f.write(b"this is not an SQLite database\n" * 200)
    for path in ("/nonexistent-dir/litepush/x.db", ENV.dir, junk):
        rc, out, err = run_bin(["--db", path, "--listen", f"127.0.0.1:{free_port()}"])
        check(rc != 0, f"--db {path}: expected non-zero exit, got {rc}")
        check(err.strip(), f"--db {path}: expected a message on stderr")


def cli_port_in_use(_):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(5)
    try:
        port = s.getsockname()[1]
        rc, out, err = run_bin(["--db", os.path.join(ENV.dir, "cli.db"), "--listen", f"127.0.0.1:{port}"])
        check(rc != 0, f"port in use: expected non-zero exit, got {rc}")
        check(err.strip(), "port in use: expected a message on stderr")
    finally:
        s.close()


def cli_schema_created(_):
    if ENV.db.kind == "pg":
        out = ENV.db.run("SELECT to_regclass('messages') IS NOT NULL, count(*) FROM pg_trigger "
                         "WHERE tgname IN ('litepush_assign_id', 'litepush_notify');")
        check(out.strip() == "t|2", f"fresh database: expected messages and its triggers, got {out!r}")
        return
    out = ENV.db.run("SELECT name FROM sqlite_master WHERE type='table' AND name='messages';"
                     "PRAGMA journal_mode;")
    check(out.split() == ["messages", "wal"], f"fresh db: expected table messages and WAL, got {out!r}")


def cli_env_db(_):
    if ENV.db.kind == "pg":
        raise Skip("a new SQLite file through LITEPUSH_DB; PostgreSQL: tests/pg")
    path = os.path.join(ENV.dir, "env.db")
    port = free_port()
    logf = open(os.path.join(ENV.dir, "env-responder.log"), "ab")
    p = PROCS.start([BIN, "--listen", f"127.0.0.1:{port}"], stdout=logf, stderr=logf,
                    env=dict(os.environ, LITEPUSH_DB=path))
    logf.close()
    try:
        wait_until(lambda: tcp_listening(port) or p.poll() is not None, 5, "responder with LITEPUSH_DB")
        check(p.poll() is None, f"LITEPUSH_DB: responder exited with {p.returncode}")
        # It may listen a moment before it has created the schema.
        try:
            wait_until(lambda: os.path.exists(path) and DB(path).run(
                "SELECT count(*) FROM sqlite_master WHERE name='messages';").strip() == "1",
                3, "the schema in the LITEPUSH_DB database", interval=0.1)
        except Fail as e:
            raise Fail(f"LITEPUSH_DB: {e}")
    finally:
        Procs.stop(p)


def cli_unix_socket_direct(_):
    """The unix-socket responder, spoken to with a bare FastCGI client."""
    ch = f"direct.{os.urandom(3).hex()}"
    params = {"REQUEST_METHOD": "GET", "QUERY_STRING": f"channel={ch}", "SCRIPT_NAME": "/events",
              "REQUEST_URI": f"/events?channel={ch}", "SERVER_PROTOCOL": "HTTP/1.1",
              "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
              "REMOTE_ADDR": "127.0.0.1"}
    out = fcgi_request(ENV.sock, params, timeout=4, until=b"retry:")
    check(b"text/event-stream" in out and b"retry:" in out, f"direct FastCGI: got {short(out)}")
    params["QUERY_STRING"] = f"channel={ch}&lastEventId=abc"
    out = fcgi_request(ENV.sock, params, timeout=4)
    check(re.search(rb"^Status: 400", out, re.M | re.I), f"direct FastCGI bad id: got {short(out)}")


def cli_socket_mode(_):
    """A --listen unix socket is 0660 by default (not world-writable: any
    local user could otherwise open streams past the web server), and
    --socket-mode sets it; a bad mode is refused."""
    mode = stat.S_IMODE(os.stat(ENV.sock).st_mode)
    check(mode == 0o660, f"default socket mode: expected 0660, got {mode:04o}")
    path = os.path.join(ENV.dir, "mode.sock")
    p = PROCS.start([BIN, "--db", ENV.db.path, "--listen", path, "--socket-mode", "0600"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: os.path.exists(path) or p.poll() is not None, 5, "mode.sock")
        time.sleep(0.1)
        mode = stat.S_IMODE(os.stat(path).st_mode)
        check(mode == 0o600, f"--socket-mode 0600: got {mode:04o}")
    finally:
        Procs.stop(p)
    for bad in ("999", "0o660", "rw", "01777"):
        rc, out, err = run_bin(["--db", ENV.db.path, "--listen", path, "--socket-mode", bad])
        check(rc == 2 and "socket-mode" in err, f"--socket-mode {bad}: expected exit 2 naming the "
                                                 f"flag, got {rc} / {err.strip()!r}")


def conf_user_files_parse(_):
    """apache-conf/*.conf as shipped: both servers accept them."""
    a = os.path.join(ROOT, "apache-conf", "litepush-apache.conf")
    l = os.path.join(ROOT, "apache-conf", "litepush-lighttpd.conf")
    mods = ["mpm_event", "authz_core", "authz_host", "proxy", "proxy_fcgi", "proxy_wstunnel",
            "proxy_http", "env", "setenvif"]
    loads = "\n".join(f"LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so" for m in mods)
    wrap = ENV.write("check-apache.conf", f'ServerRoot "{ENV.dir}"\nServerName 127.0.0.1\n'
                     f'Define APACHE_LOG_DIR "{ENV.dir}"\n'
                     f'Listen 127.0.0.1:{free_port()}\nDefaultRuntimeDir "{ENV.dir}/apache-run"\n'
                     f'PidFile "{ENV.dir}/check.pid"\nErrorLog "{ENV.dir}/check-apache.log"\n'
                     f'{loads}\nInclude "{a}"\n')
    r = subprocess.run(["/usr/sbin/apache2", "-t", "-f", wrap], capture_output=True, text=True, timeout=10)
    check(r.returncode == 0, f"apache2 -t on litepush-apache.conf: {r.stderr.strip()}")
    wrap = ENV.write("check-lighttpd.conf", f'server.document-root = "{ENV.dir}/www"\n'
                     f'server.port = {free_port()}\nserver.bind = "127.0.0.1"\ninclude "{l}"\n')
    r = subprocess.run(["lighttpd", "-tt", "-f", wrap], capture_output=True, text=True, timeout=10)
    check(r.returncode == 0 and "rror" not in r.stdout + r.stderr,
          f"lighttpd -tt on litepush-lighttpd.conf: {(r.stdout + r.stderr).strip()}")


def _local_non_loopback_ip():
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.connect(("192.0.2.1", 9))       # no packet is sent: this picks a source address
            ip = u.getsockname()[0]
    except OSError:
        return None
    return None if ip.startswith("127.") else ip


def _status_from(port, path, source):
    with socket.create_connection(("127.0.0.1", port), timeout=5,
                                  source_address=(source, 0) if source else None) as c:
        c.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n" not in data:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return int(m.group(1)) if m else None


def conf_stats_local_only(_):
    """The shipped Apache and lighttpd confs serve /events/stats and
    /ws/stats to local clients only (README: Monitoring): from another
    address of this machine they answer 403, from 127.0.0.1 they pass the
    request on (to backends that are not running here: 502/503)."""
    other = _local_non_loopback_ip()
    if other is None:
        raise Skip("no non-loopback address on this machine to test a remote client from")
    a = os.path.join(ROOT, "apache-conf", "litepush-apache.conf")
    l = os.path.join(ROOT, "apache-conf", "litepush-lighttpd.conf")
    aport, lport = free_port(), free_port()
    # The modules the shipped file needs (as its header says), and Debian's
    # APACHE_LOG_DIR for its token-free access log.
    mods = ["mpm_event", "authz_core", "authz_host", "proxy", "proxy_fcgi", "proxy_wstunnel",
            "proxy_http", "env", "setenvif"]
    loads = "\n".join(f"LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so" for m in mods)
    os.makedirs(os.path.join(ENV.dir, "stats-run"), exist_ok=True)
    aconf = ENV.write("stats-apache.conf", f'ServerRoot "{ENV.dir}"\nServerName 127.0.0.1\n'
                      f'Listen 0.0.0.0:{aport}\nDefaultRuntimeDir "{ENV.dir}/stats-run"\n'
                      f'PidFile "{ENV.dir}/stats.pid"\nErrorLog "{ENV.dir}/stats-apache.log"\n'
                      f'Define APACHE_LOG_DIR "{ENV.dir}/stats-run"\n'
                      f'User www-data\nGroup www-data\n{loads}\nInclude "{a}"\n')
    lconf = ENV.write("stats-lighttpd.conf", f'server.document-root = "{ENV.dir}/www"\n'
                      f'server.port = {lport}\nserver.bind = "0.0.0.0"\n'
                      f'server.errorlog = "{ENV.dir}/stats-lighttpd.log"\ninclude "{l}"\n')
    ap = PROCS.start(["/usr/sbin/apache2", "-f", aconf, "-DFOREGROUND"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lp = PROCS.start(["lighttpd", "-D", "-f", lconf], stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
    try:
        for name, p, port in (("apache", ap, aport), ("lighttpd", lp, lport)):
            wait_until(lambda: tcp_listening(port) or p.poll() is not None, 10, f"{name} to listen")
            check(p.poll() is None, f"{name} with the shipped conf exited ({p.returncode})")
        got = {}
        for name, port in (("apache", aport), ("lighttpd", lport)):
            for path in ("/events/stats", "/ws/stats"):
                got[(name, path, "remote")] = _status_from(port, path, other)
                got[(name, path, "local")] = _status_from(port, path, None)
        bad = [f"{k}: {v}" for k, v in got.items()
               if (k[2] == "remote") != (v == 403)]
        check(not bad, f"expected 403 from {other} and anything else from 127.0.0.1: {bad}")
        return f"403 from {other}; from 127.0.0.1: " + ", ".join(
            f"{k[0]}{k[1]} {v}" for k, v in got.items() if k[2] == "local")
    finally:
        Procs.stop(ap)
        Procs.stop(lp)


def idle_fastcgi_connections(_):
    """Local connections that connect and send nothing must not stop new
    streams (four did, for ever): the responder reads requests on 16
    threads and gives up on one that does not arrive within
    LIMITS_FCGI_REQUEST_MS (3 s), so with 24 idle connections a real
    request is still answered within a few seconds, and the idle ones are
    closed."""
    port = ENV.fport
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(24)]
    try:
        time.sleep(0.2)
        params = {"REQUEST_METHOD": "GET", "QUERY_STRING": "channel=idle", "SCRIPT_NAME": "/events",
                  "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1"}
        t0 = time.monotonic()
        try:
            out = fcgi_request(("127.0.0.1", port), params, timeout=12, until=b"retry:")
        except OSError as e:
            raise Fail(f"a request behind {len(idle)} idle connections failed: {e}")
        dt = time.monotonic() - t0
        check(b"retry:" in out, f"no stream behind {len(idle)} idle connections after {dt:.1f}s: "
                                f"{short(out)}")
        check(dt < 8, f"the stream took {dt:.1f}s behind idle connections")
        closed = 0
        for c in idle:
            c.settimeout(8)
            try:
                closed += c.recv(1) == b""
            except OSError:
                closed += 1
        check(closed == len(idle), f"only {closed} of {len(idle)} idle connections were closed")
        return f"answered after {dt:.1f}s; idle connections closed"
    finally:
        for c in idle:
            c.close()


# --------------------------------------------------------------- web cases
def backend_down_503(t):
    st, hd, body = http_once(t.port, "/closed?channel=x")
    check(st in (502, 503), f"GET /closed (no backend): expected 503, got {st}")


def headers_retry(t):
    s = t.stream(f"channel={t.ch('hdr')}")
    try:
        s.open()
        ct = s.headers.get("content-type", "")
        check(ct.split(";")[0].strip() == "text/event-stream", f"Content-Type: got {ct!r}")
        cc = s.headers.get("cache-control", "")
        check("no-cache" in cc, f"Cache-Control: got {cc!r}")
        check(s.retries == [str(RETRY_MS)], f"retry field: expected {RETRY_MS}, got {s.retries}")
        check(not s.events, f"no events expected on a new live stream, got {short(s.events)}")
        enc = s.headers.get("content-encoding")
        check(enc in (None, "identity"), f"stream must not be compressed, Content-Encoding {enc!r}")
    finally:
        s.close()


def framing(t):
    ch = t.ch("frame")
    s = t.stream(f"channel={ch}").open()
    try:
        rows = [(ch, "a\nb", "upd"),
                (ch, "x\r\ny\rz", None),
                (ch, "p\n\nq", "e2"),
                (ch, "", None),
                (ch, "h\u00e9llo \u2713 \U0001F600", "uni"),
                (ch, "one", "message")]
        ids = ENV.db.insert_rows(rows)
        evs = s.wait_events(len(rows))
        want = [[("id", str(ids[0])), ("event", "upd"), ("data", "a"), ("data", "b")],
                [("id", str(ids[1])), ("data", "x"), ("data", "y"), ("data", "z")],
                [("id", str(ids[2])), ("event", "e2"), ("data", "p"), ("data", ""), ("data", "q")],
                [("id", str(ids[3])), ("data", "")],
                [("id", str(ids[4])), ("event", "uni"), ("data", "h\u00e9llo \u2713 \U0001F600")],
                [("id", str(ids[5])), ("event", "message"), ("data", "one")]]
        for i, (e, w) in enumerate(zip(evs, want)):
            check(e["fields"] == w, f"row {i} ({short(rows[i][1])}, event {rows[i][2]}): expected "
                                    f"fields {w}, got {e['fields']}")
    finally:
        s.close()


def routing(t):
    a, b = t.ch("ra"), t.ch("rb")
    sa = t.stream(f"channel={a}").open()
    sab = t.stream(f"channel={a}&channel={b}").open()
    sd = t.stream("").open()
    try:
        ids = ENV.db.insert_rows([(b, "b1", None), (a, "a1", None), (None, "d1", None),
                                  ("default", "d2", None), (b, "b2", None), (a, "a2", None)])
        expect_ids(sab.wait_events(4), [ids[0], ids[1], ids[4], ids[5]], "?channel=a&channel=b")
        expect_ids(sa.wait_events(2), [ids[1], ids[5]], "?channel=a")
        expect_ids(sd.wait_events(2), [ids[2], ids[3]], "no channel (= default)")
        for s in (sa, sab, sd):
            s.quiet(0.3)
        check(len(sa.events) == 2 and len(sab.events) == 4 and len(sd.events) == 2,
              f"extra events: a {len(sa.events)}, ab {len(sab.events)}, default {len(sd.events)}")
    finally:
        for s in (sa, sab, sd):
            s.close()


def live_only(t):
    ch = t.ch("live")
    ENV.db.insert(ch, "before")
    s = t.stream(f"channel={ch}").open()
    s2 = t.stream(f"channel={ch}", headers={"Last-Event-ID": ""}).open()
    try:
        rid = ENV.db.insert(ch, "after")
        expect_ids(s.wait_events(1), [rid], "no resume id")
        expect_ids(s2.wait_events(1), [rid], "empty Last-Event-ID (= absent)")
        s.quiet(0.3)
        check(len(s.events) == 1, f"extra events {short(s.events)}")
    finally:
        s.close()
        s2.close()


def _max_id():
    return int(ENV.db.run("SELECT coalesce(max(id), 0) FROM messages;").strip())


def position_live(t):
    """A stream without a resume id says where it starts: right after
    retry:, an id-only block `id: N` (N the log's last id), which is no
    event; a resumed stream gets none."""
    ch = t.ch("pos")
    ENV.db.insert(ch, "before")
    before = _max_id()
    s = t.stream(f"channel={ch}").open()
    try:
        s.wait(lambda: s.positions, 5, "the id-only block")
        after = _max_id()
        n = int(s.positions[0])
        check(before <= n <= after, f"position {n}: expected the last id ({before}..{after})")
        check(s.blocks[0] == [("id", str(n))], f"the block must be only an id: {s.blocks[0]}")
        lines = [ln for _, ln in s.lines]
        check(lines[:4] == [f"retry: {RETRY_MS}", "", f"id: {n}", ""],
              f"expected retry:, then the id block: {lines[:6]}")
        check(not s.events, f"the position is not an event: {short(s.events)}")
        rid = ENV.db.insert(ch, "after")
        expect_ids(s.wait_events(1), [rid], "the first row after the position")
    finally:
        s.close()
    r = t.stream(f"channel={ch}", headers={"Last-Event-ID": str(rid)}).open()
    try:
        r.quiet(0.4)
        check(not r.positions and not r.events, f"a resume with nothing after it: nothing, got "
                                                 f"{r.blocks} {short(r.events)}")
    finally:
        r.close()
    return f"id: {n}"


def position_reconnect(t):
    """A client that reconnects with the position as Last-Event-ID, before
    any row came, gets every row committed while it was away. (Browser-style:
    a raw client, as WHATWG says. The npm eventsource package does not take
    the id of a block without data, so the EventSource check is in
    tests/browser, in Chromium.)"""
    ch = t.ch("posr")
    s = t.stream(f"channel={ch}").open()
    try:
        s.wait(lambda: s.positions, 5, "the id-only block")
        n = s.positions[0]
    finally:
        s.close()
    ids = ENV.db.insert_rows([(ch, "while away 1", None), (t.ch("other"), "x", None),
                              (ch, "while away 2", "e")])
    r = t.stream(f"channel={ch}", headers={"Last-Event-ID": n}).open()
    try:
        expect_ids(r.wait_events(2), [ids[0], ids[2]], "rows committed while away")
        r.quiet(0.3)
        check(len(r.events) == 2 and not r.positions, f"extra: {short(r.events[2:])} {r.blocks}")
    finally:
        r.close()


def _resume(t, how):
    c, c2 = t.ch("rc"), t.ch("rc2")
    ids = ENV.db.insert_rows([(c, "r1", None), (c2, "r2", None), (c, "r3", "x"),
                              (c2, "r4", None), (c, "r5", None), (t.ch("other"), "r6", None)])
    n = ids[0]
    if how == "header":
        s = t.stream(f"channel={c}", headers={"Last-Event-ID": str(n)})
    elif how == "param":
        s = t.stream(f"channel={c}&lastEventId={n}")
    elif how == "header-wins":
        s = t.stream(f"channel={c}&lastEventId=0", headers={"Last-Event-ID": str(n)})
    elif how == "empty-header-param":
        s = t.stream(f"channel={c}&lastEventId={n}", headers={"Last-Event-ID": ""})
    elif how == "multi":
        s = t.stream(f"channel={c}&channel={c2}&lastEventId={n}")
    try:
        s.open()
        if how == "multi":
            expect_ids(s.wait_events(4), [ids[1], ids[2], ids[3], ids[4]], "replay of a+b")
            base = 4
        else:
            expect_ids(s.wait_events(2), [ids[2], ids[4]], f"replay ({how})")
            base = 2
        live = ENV.db.insert_rows([(c, "l1", None), (t.ch("other"), "lx", None), (c, "l2", None)])
        evs = s.wait_events(base + 2)
        expect_ids(evs[base:], [live[0], live[2]], f"live after replay ({how})")
        s.quiet(0.3)
        check(len(s.events) == base + 2, f"extra events after live: {short(s.events[base + 2:])}")
    finally:
        s.close()


def resume_header(t):
    _resume(t, "header")


def resume_param(t):
    _resume(t, "param")


def resume_header_wins(t):
    _resume(t, "header-wins")


def resume_empty_header_uses_param(t):
    _resume(t, "empty-header-param")


def resume_two_channels(t):
    _resume(t, "multi")


def replay_race(t):
    ch = t.ch("race")
    ENV.db.run("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<2000) "
               f"INSERT INTO messages(channel,data) SELECT {ENV.db.text(ch)}, 'row '||i FROM n;")
    argv, prelude = ENV.db.feeder()
    feeder = subprocess.Popen(argv, stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    done = threading.Event()

    def feed():
        try:
            feeder.stdin.write(prelude)
            for i in range(400):
                feeder.stdin.write(f"INSERT INTO messages(channel,data) VALUES({ENV.db.text(ch)},'live {i}');\n")
                feeder.stdin.flush()
                time.sleep(0.002)
            feeder.stdin.close()
        finally:
            done.set()

    th = threading.Thread(target=feed, daemon=True)
    th.start()
    s = t.stream(f"channel={ch}&lastEventId=0")
    try:
        s.open()
        done.wait(30)
        check(feeder.wait(30) == 0, f"inserter failed: {feeder.stderr.read()}")
        want = ENV.db.ids(ch)
        check(len(want) == 2400, f"expected 2400 rows in the db, found {len(want)}")
        s.wait(lambda: len(s.events) >= len(want) or
               (s.events and s.events[-1]["id"] == str(want[-1])), 30, f"id {want[-1]}")
        s.quiet(0.3)
        got = [int(e["id"]) for e in s.events]
        if got != want:
            dup = len(got) - len(set(got))
            miss = sorted(set(want) - set(got))
            order = all(a < b for a, b in zip(got, got[1:]))
            raise Fail(f"replay+live: {len(got)} events for {len(want)} rows; duplicates {dup}, "
                       f"missing {len(miss)} {miss[:10]}, in order {order}")
        return f"{len(got)} ids, exactly once"
    finally:
        s.close()
        if feeder.poll() is None:
            feeder.kill()


BAD_QUERIES = [
    ("lastEventId=abc", "letters"),
    ("lastEventId=-1", "negative"),
    ("lastEventId=18446744073709551616", "2^64"),
    ("lastEventId=" + "1" * 100, "100 digits"),
    ("lastEventId=%2B1", "+1"),
    ("lastEventId=%201", "' 1'"),
    ("lastEventId=1x", "trailing junk"),
]


def bad_input(t):
    ch = t.ch("bad")
    cases = [(f"channel={ch}&{q}", None, why) for q, why in BAD_QUERIES]
    cases += [(f"channel={ch}", {"Last-Event-ID": "abc"}, "header letters"),
              (f"channel={ch}", {"Last-Event-ID": "18446744073709551616"}, "header 2^64"),
              (f"channel={ch}", {"Last-Event-ID": "-1"}, "header negative"),
              ("channel=", None, "empty channel"),
              (f"channel={ch}&channel=", None, "second channel empty"),
              ("channel=" + "c" * 129, None, "129-byte channel"),
              ("&".join(f"channel={ch}{i}" for i in range(17)), None, "17 channels"),
              (f"channel={ch}&position=2", None, "position=2")]
    problems = []
    for q, hdr, why in cases:
        st, hd, body = http_once(t.port, t.url(q), headers=hdr)
        ct = hd.get("content-type", "")
        text = body.decode("utf-8", "replace")
        if st != 400:
            problems.append(f"{why}: expected 400, got {st}")
        elif not ct.startswith("text/plain"):
            problems.append(f"{why}: 400 with Content-Type {ct!r}, expected text/plain")
        elif not text.strip() or "\n" in text.rstrip("\r\n"):
            problems.append(f"{why}: body should be one line, got {text!r}")
    for method in ("POST", "DELETE", "PUT"):
        st, hd, body = http_once(t.port, t.url(f"channel={ch}"), method=method)
        if st != 405:
            problems.append(f"{method}: expected 405, got {st}")
    # Both sides of every limit: these are accepted.
    for q, why in ((f"channel={'c' * 128}", "128-byte channel"),
                   ("&".join(f"channel={ch}{i}" for i in range(16)), "16 channels"),
                   (f"channel={ch}&lastEventId=0", "lastEventId=0"),
                   (f"channel={ch}&position=1", "position=1 (WebSocket only: ignored)")):
        s = t.stream(q)
        try:
            s.open()
        except Fail as e:
            problems.append(f"{why}: {e}")
        finally:
            s.close()
    check(not problems, "; ".join(problems))
    # ... and the server still serves a normal stream.
    s = t.stream(f"channel={ch}").open()
    try:
        rid = ENV.db.insert(ch, "still here")
        expect_ids(s.wait_events(1), [rid], "stream after bad input")
    finally:
        s.close()


def heartbeat(t):
    s = t.stream(f"channel={t.ch('hb')}").open()
    try:
        t_open = time.monotonic()
        s.wait(lambda: s.comments, 2.5, "a ':' heartbeat comment on an idle stream")
        first = s.comments[0][0] - t_open
        s.wait(lambda: len(s.comments) >= 2, 2.5, "a second heartbeat")
        gap = s.comments[1][0] - s.comments[0][0]
        check(not s.events, f"heartbeats must be comments, got events {short(s.events)}")
        return f"first after {first:.2f}s, then every {gap:.2f}s"
    finally:
        s.close()


def blob_base64(t):
    ch = t.ch("blob")
    s = t.stream(f"channel={ch}").open()
    try:
        raw = b"\x00\x01\xfe\xffhello\n\r" + bytes(range(256))
        rid = ENV.db.insert(ch, raw, "bin")
        e = s.wait_events(1)[0]
        check(e["id"] == str(rid) and e["event"] == "bin", f"blob row: got {e['fields']}")
        want = base64.b64encode(raw).decode()
        check(e["data"] == want, f"blob data: expected {want!r}, got {e['data']!r}")
    finally:
        s.close()


def utf8_row(t):
    """A row written by SQL with bytes that are not UTF-8 in its event and
    data (event=CAST(X'FF' AS TEXT)) goes out as valid UTF-8, each invalid
    sequence as U+FFFD, and the stream goes on; a resume across it too."""
    sqlite_only()
    ch = t.ch("u8")
    s = t.stream(f"channel={ch}").open()
    try:
        bad = int(ENV.db.run(f"INSERT INTO messages(channel, event, data) VALUES({DB.text(ch)}, "
                             "CAST(X'FF' AS TEXT), CAST(X'61FF62' AS TEXT)) RETURNING id;").strip())
        good = ENV.db.insert(ch, "after", "ok")
        evs = s.wait_events(2)
        check([(e["id"], e["event"], e["data"]) for e in evs] ==
              [(str(bad), "\ufffd", "a\ufffdb"), (str(good), "ok", "after")],
              f"expected the repaired row then the next one, got {[e['fields'] for e in evs]}")
        try:
            s.body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise Fail(f"the stream is not valid UTF-8: {e}")
    finally:
        s.close()
    r = t.stream(f"channel={ch}", headers={"Last-Event-ID": str(bad - 1)}).open()
    try:
        expect_ids(r.wait_events(2), [bad, good], "resume across the row")
    finally:
        r.close()


def reset_future_id(t):
    ch = t.ch("rst")
    ENV.db.insert(ch, "old")
    m = ENV.db.max_issued()
    req = m + 1000
    s = t.stream(f"channel={ch}", headers={"Last-Event-ID": str(req)}).open()
    try:
        e = s.wait_events(1)[0]
        check(e["event"] == "litepush.reset", f"resume id {req} > max issued {m}: expected a "
                                              f"litepush.reset event first, got {e['fields']}")
        try:
            d = json.loads(e["data"])
        except ValueError:
            raise Fail(f"litepush.reset data is not JSON: {e['data']!r}")
        check(isinstance(d, dict) and "reason" in d, f"litepush.reset data lacks reason: {d}")
        vals = [str(v) for v in d.values()]
        check(str(req) in vals, f"litepush.reset data should carry the requested id {req}: {d}")
        check(e["id"] is not None and e["id"].isdigit() and int(e["id"]) <= m,
              f"litepush.reset id: expected the id it continues after (<= {m}), got {e['id']!r}")
        check(e["id"] in vals, f"litepush.reset data should carry continue_after {e['id']}: {d}")
        rid = ENV.db.insert(ch, "new")
        evs = s.wait_events(2)
        expect_ids(evs[1:], [rid], "first row after the reset")
        return f"data {e['data']}"
    finally:
        s.close()


def kill9_resume(t):
    """The responder dies under a streaming EventSource; rows are published
    while it is down; it restarts and the client's own reconnect resumes
    with Last-Event-ID: every row once, in order."""
    ch = t.ch("k9")
    node = NodeES(t.http_url(f"channel={ch}"), count=6, timeout_ms=20000)
    try:
        node.wait(lambda: any(x.get("type") == "open" for x in node.lines), 8, "EventSource open")
        time.sleep(0.2)
        ids = ENV.db.insert_rows([(ch, "k1", None), (ch, "k2", "kill")])
        node.wait(lambda: len(node.events()) >= 2, 5, "2 events before the kill")
        kill_ms = node.lines[-1]["t"] if node.lines else None
        t.responder.kill9()
        ids += ENV.db.insert_rows([(ch, "k3", None), (ch, "k4\nline2", None), (ch, "k5", "x")])
        t0 = time.monotonic()
        for attempt in range(20):
            try:
                t.responder.start(timeout=3)
                break
            except Fail as e:
                if attempt == 19:
                    raise Fail(f"restart after kill -9 failed for 2 s (SO_REUSEADDR?): {e}")
                time.sleep(0.1)
        restart_s = time.monotonic() - t0
        ids += [ENV.db.insert(ch, "k6")]
        evs = node.finish(20)
        got = [int(e["id"]) for e in evs]
        check(got == ids, f"expected ids {ids}, got {got}; node said {short(node.lines, 800)}")
        check(evs[3]["data"] == "k4\nline2", f"multi-line data via EventSource: {evs[3]['data']!r}")
        errs = [x for x in node.lines if x.get("type") == "error"]
        opens = [x["t"] for x in node.lines if x.get("type") == "open"]
        return (f"restart took {restart_s:.2f}s; reconnects {len(errs)}; "
                f"opens at {opens} ms, killed at {kill_ms} ms")
    finally:
        node.kill()


def eventsource_basic(t):
    ch = t.ch("es")
    ids = ENV.db.insert_rows([(ch, "a\r\nb", "upd"), (ch, "plain", None)])
    node = NodeES(t.http_url(f"channel={ch}&lastEventId={ids[0] - 1}"), count=3, timeout_ms=8000)
    try:
        node.wait(lambda: len(node.events()) >= 2, 8, "2 replayed events")
        ids.append(ENV.db.insert(ch, "live", "upd"))
        evs = node.finish(10)
        got = [(e["event"], e["id"], e["data"]) for e in evs]
        want = [("upd", str(ids[0]), "a\nb"), ("message", str(ids[1]), "plain"),
                ("upd", str(ids[2]), "live")]
        check(got == want, f"EventSource saw {got}, expected {want}")
    finally:
        node.kill()


def ws_proxy(t):
    """/ws through the front end's WebSocket proxying reaches litepush-ws."""
    if ENV.ws is None:
        if not os.path.exists(os.path.join(ROOT, "src", "ws_main.c")):
            raise Skip("litepush-ws is not part of this tree")
        raise Fail(f"{WS_BIN} not built")
    ch = t.ch("ws")
    url = f"ws://127.0.0.1:{t.port}/ws?channel={ch}"
    node = NodeWS(url, timeout_ms=8000)
    try:
        node.open(5)
        time.sleep(0.2)
        rid = ENV.db.insert(ch, "over ws", "w")
        msgs = node.wait_messages(1, 10)
        want = {"id": rid, "channel": ch, "event": "w", "data": "over ws"}
        check(len(msgs) == 1 and all((msgs[0] or {}).get(k) == v for k, v in want.items()),
              f"expected a frame with {want}, got {node.said()}")
    finally:
        node.quit()


def disconnect_cleanup(t):
    pid = t.responder_pid()
    base = settle_fds(pid)
    ch = t.ch("dc")
    curls = [PROCS.start(["curl", "-sN", "-o", "/dev/null", t.http_url(f"channel={ch}")])
             for _ in range(50)]
    try:
        wait_until(lambda: fd_count(pid) >= base + 45, 10,
                   f"50 streams to reach the responder (fds {base} -> {fd_count(pid)})")
        peak = fd_count(pid)
    finally:
        for p in curls:
            Procs.stop(p, signal.SIGKILL)
    t0 = time.monotonic()
    try:
        wait_until(lambda: fd_count(pid) <= base + 2, 10, "fds to drop back")
    except Fail:
        raise Fail(f"responder fds: {base} before, {peak} with 50 streams, still {fd_count(pid)} "
                   f"10 s after the clients were killed")
    return f"fds {base} -> {peak} -> {fd_count(pid)} in {time.monotonic() - t0:.1f}s"


def many_streams(t):
    ch = t.ch("many")
    sel = selectors.DefaultSelector()
    streams = []
    try:
        for _ in range(200):
            s = t.stream(f"channel={ch}")
            streams.append(s)
            sel.register(s, selectors.EVENT_READ)

        def pump_until(pred, timeout, what):
            end = time.monotonic() + timeout
            while not pred():
                left = end - time.monotonic()
                if left <= 0:
                    raise Fail(f"timed out after {timeout}s waiting for {what}")
                for key, _ in sel.select(min(left, 0.2)):
                    s = key.fileobj
                    s.on_readable()
                    if s.eof:
                        sel.unregister(s)

        pump_until(lambda: all(s.retries or s.eof for s in streams), 30,
                   f"200 streams to open ({sum(bool(s.retries) for s in streams)} open)")
        bad = [s.status for s in streams if not s.retries]
        check(not bad, f"{len(bad)} of 200 streams did not open: statuses {sorted(set(map(str, bad)))}")
        rid = ENV.db.insert(ch, "to all")
        pump_until(lambda: all(s.events or s.eof for s in streams), 20,
                   f"the row on all 200 streams ({sum(bool(s.events) for s in streams)} got it)")
        missing = [s for s in streams if not s.events or s.events[0]["id"] != str(rid)]
        check(not missing, f"{len(missing)} of 200 streams did not get row {rid}")
    finally:
        for s in streams:
            s.close()
        sel.close()
    check(alive(t.responder_pid()), "responder died")
    s = t.stream(f"channel={ch}").open()
    s.close()


def _expect_pruned_reset(t, ch, ids, what):
    s = t.stream(f"channel={ch}", headers={"Last-Event-ID": str(ids[0])}).open()
    try:
        e = s.wait_events(1)[0]
        check(e["event"] == "litepush.reset",
              f"{what}: resume from {ids[0]} after rows {ids[1]},{ids[2]} were pruned: expected "
              f"litepush.reset first, got {e['fields']}")
        check(e["id"] is not None and e["id"].isdigit() and ids[0] <= int(e["id"]) < ids[3],
              f"{what}: litepush.reset id should be where it continues ({ids[0]}..{ids[3] - 1}), "
              f"got {e['id']!r}")
        evs = s.wait_events(3)
        expect_ids(evs[1:], ids[3:], f"{what}: rows after the reset")
        return f"data {e['data']}"
    finally:
        s.close()


def reset_pruned_meta(t):
    """Retention that deleted rows of one channel and recorded it in
    litepush_meta.pruned_through (sql/schema.sql: "so that a resume from
    before it gets a litepush.reset"); older rows of other channels remain.
    Runs near the end: the recorded pruning affects every later resume."""
    ch = t.ch("prn")
    ids = ENV.db.insert_rows([(ch, f"p{i}", None) for i in range(1, 6)])
    ENV.db.run(f"DELETE FROM messages WHERE id IN ({ids[1]},{ids[2]});")
    ENV.db.mark_pruned("pruned_through", ids[2])
    return _expect_pruned_reset(t, ch, ids, "pruned_through")


def reset_pruned_oldest(t):
    """Age-based retention: every row up to some id is gone. Runs last."""
    ch = t.ch("prn2")
    ids = ENV.db.insert_rows([(ch, f"p{i}", None) for i in range(1, 6)])
    ENV.db.run(f"DELETE FROM messages WHERE id <= {ids[2]} AND id != {ids[0]};")
    ENV.db.mark_pruned("pruned_through", ids[2], keep_max=False)
    # The resume id's own row is deleted too: a client resumes from ids it saw.
    ENV.db.run(f"DELETE FROM messages WHERE id = {ids[0]};")
    return _expect_pruned_reset(t, ch, ids, "oldest rows pruned")


# ------------------------------------------------ big rows, heavy resumes (item 1)
def big_blob_resume(t):
    """A resume across a 900 000-byte BLOB row (1.2 MB of base64, over the
    1 MiB queue limit) delivers it and the row after it; it used to be
    dropped as "too slow" before its headers, on every retry."""
    sqlite_only()
    ch = t.ch("bigblob")
    before = ENV.db.max_issued()
    big = int(ENV.db.run(f"INSERT INTO messages(channel, event, data) VALUES({DB.text(ch)}, 'big', "
                         "randomblob(900000)) RETURNING id;").strip())
    after = ENV.db.insert(ch, "after")
    s = t.stream(f"channel={ch}", headers={"Last-Event-ID": str(before)}).open(timeout=10)
    try:
        evs = s.wait_events(2, timeout=15)
        expect_ids(evs, [big, after], "resume across a 900 kB BLOB")
        check(len(base64.b64decode(evs[0]["data"])) == 900000,
              f"the BLOB arrived with {len(evs[0]['data'])} base64 characters")
    finally:
        s.close()


def heavy_resume(t):
    """300 rows of 5 000 bytes resumed from before the first: every row
    arrives (they used to be queued in one 256-row batch of 1.3 MB, over
    the limit, and the stream was dropped every time)."""
    sqlite_only()
    ch = t.ch("heavy")
    before = ENV.db.max_issued()
    ENV.db.run(f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) "
               f"INSERT INTO messages(channel, data) SELECT {DB.text(ch)}, "
               f"printf('%05d', i) || substr(hex(zeroblob(2500)), 1, 4995) FROM n;")
    ids = ENV.db.ids(ch)
    s = t.stream(f"channel={ch}", headers={"Last-Event-ID": str(before)}).open(timeout=10)
    try:
        evs = s.wait_events(300, timeout=20)
        expect_ids(evs, ids, "resume of 300 rows of 5 000 bytes")
    finally:
        s.close()


def big_commit_live(t):
    """One commit of 300 rows of 5 000 bytes (1.5 MB, over the limit) in
    one channel reaches every live subscriber: none is dropped for what
    the server queued in one step."""
    sqlite_only()
    ch = t.ch("commit")
    subs = [t.stream(f"channel={ch}").open() for _ in range(3)]
    try:
        ENV.db.run(f"BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) "
                   f"INSERT INTO messages(channel, data) SELECT {DB.text(ch)}, "
                   f"printf('%05d', i) || substr(hex(zeroblob(2500)), 1, 4995) FROM n; COMMIT;")
        ids = ENV.db.ids(ch)
        for s in subs:
            expect_ids(s.wait_events(300, timeout=20), ids, "a live subscriber of a 1.5 MB commit")
        rid = ENV.db.insert(ch, "after")
        for s in subs:
            expect_ids(s.wait_events(301, timeout=5)[300:], [rid], "the row after the big commit")
    finally:
        for s in subs:
            s.close()


def max_row(_):
    """A row over --max-row (here 100 000 bytes) is never a silent stall:
    it goes out as an event litepush.skipped with the row's id (so the
    client's last id moves past it) and the reason, and the stream goes on;
    a resume across it does the same."""
    sqlite_only()
    port = free_port()
    r = Responder(ENV, "responder-maxrow", f"127.0.0.1:{port}", extra=("--max-row", "100000"))
    r.start()
    try:
        ch = f"maxrow.{os.urandom(3).hex()}"
        before = ENV.db.max_issued()
        big = int(ENV.db.run(f"INSERT INTO messages(channel, event, data) VALUES({DB.text(ch)}, 'big', "
                             "randomblob(200000)) RETURNING id;").strip())
        after = ENV.db.insert(ch, "after")
        params = {"REQUEST_METHOD": "GET", "QUERY_STRING": f"channel={ch}&lastEventId={before}",
                  "SCRIPT_NAME": "/events", "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1"}
        out = fcgi_request(("127.0.0.1", port), params, timeout=5, until=f"id: {after}\n".encode())
        text = out.decode("utf-8", "replace")
        want = (f"id: {big}\nevent: litepush.skipped\n"
                f'data: {{"reason":"row-too-large","bytes":200000,"maxRow":100000}}\n\n'
                f"id: {after}\ndata: after\n")
        check(want in text, f"expected {want!r} in {short(text, 500)}")
        return "litepush.skipped then the next row"
    finally:
        Procs.stop(r.p)


def slow_client_dropped(_):
    """The slow-client rule still holds: a FastCGI client that sends its
    request and then never reads is dropped once rows it did not take pass
    the queue limit (it would resume from the log)."""
    sqlite_only()
    ch = f"slow.{os.urandom(3).hex()}"
    params = {"REQUEST_METHOD": "GET", "QUERY_STRING": f"channel={ch}", "SCRIPT_NAME": "/events",
              "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1"}
    c = fcgi_open(("127.0.0.1", ENV.fport), params, rcvbuf=4096)
    try:
        time.sleep(0.5)
        mark = len(ENV.main.log_tail(1000))
        dropped = lambda: "dropped" in ENV.main.log_tail(1000)[mark:]
        # Commits of 1 MB that the client reads none of, until it is dropped:
        # what one step queued is forgiven, what piles up after is not.
        for n in range(1, 41):
            ENV.db.run(f"INSERT INTO messages(channel, data) VALUES({DB.text(ch)}, "
                       "substr(hex(zeroblob(500000)), 1, 1000000));")
            time.sleep(0.05)
            if dropped():
                break
        wait_until(dropped, 5, "the responder to drop a client that reads nothing")
        line = ENV.main.log_tail(1000)[mark:].strip().splitlines()[-1]
        return f"after {n} MB: {line[:140]}"
    finally:
        c.close()


# ----------------------------------------------------------- faults (item 9)
def web_kill9_resume(t):
    """kill -9 of the front end itself (Apache: parent and children) under
    a streaming EventSource; rows are published while it is down; it comes
    back on the same port and the client's own reconnect resumes with
    Last-Event-ID: every row exactly once, in order."""
    ch = t.ch("wk9")
    node = NodeES(t.http_url(f"channel={ch}"), count=6, timeout_ms=30000)
    try:
        node.wait(lambda: any(x.get("type") == "open" for x in node.lines), 8, "EventSource open")
        time.sleep(0.2)
        ids = ENV.db.insert_rows([(ch, "w1", None), (ch, "w2", "x")])
        node.wait(lambda: len(node.events()) >= 2, 5, "2 events before the kill")
        ENV.kill9_server(t.name)
        ids += ENV.db.insert_rows([(ch, "w3", None), (ch, "w4\nline2", None), (ch, "w5", "x")])
        t0 = time.monotonic()
        for attempt in range(30):
            try:
                ENV.start_server(t.name)
                break
            except Fail as e:
                if attempt == 29:
                    raise Fail(f"{t.name} did not come back after kill -9: {e}")
                time.sleep(0.2)
        restart_s = time.monotonic() - t0
        ids.append(ENV.db.insert(ch, "w6"))
        evs = node.finish(25)
        got = [int(e["id"]) for e in evs]
        check(got == ids, f"expected ids {ids} once each, got {got}; node said {short(node.lines, 800)}")
        errs = [x for x in node.lines if x.get("type") == "error"]
        return f"{t.name} back in {restart_s:.2f}s; client reconnects {len(errs)}"
    finally:
        node.kill()


def apache_graceful(t):
    """Apache graceful restart (SIGUSR1) with open streams: the streams
    stay open on the old children and keep receiving rows, new streams are
    served by the new generation, and every stream gets each row once."""
    ch = t.ch("grace")
    old = [t.stream(f"channel={ch}").open() for _ in range(3)]
    new = []
    try:
        r1 = ENV.db.insert(ch, "before")
        for s in old:
            expect_ids(s.wait_events(1), [r1], "before the restart")
        os.kill(ENV.apache.pid, signal.SIGUSR1)
        time.sleep(1.0)
        check(ENV.apache.poll() is None, f"apache exited on a graceful restart: {ENV.tail('apache')}")
        r2 = ENV.db.insert(ch, "during")
        for s in old:
            expect_ids(s.wait_events(2), [r1, r2], "an open stream across the graceful restart")
        new = [t.stream(f"channel={ch}", headers={"Last-Event-ID": str(r1)}).open() for _ in range(3)]
        for s in new:
            expect_ids(s.wait_events(1), [r2], "a new stream resuming after the restart")
        r3 = ENV.db.insert(ch, "after")
        for s in old:
            expect_ids(s.wait_events(3), [r1, r2, r3], "old stream")
        for s in new:
            expect_ids(s.wait_events(2), [r2, r3], "new stream")
        time.sleep(0.3)
        for s in old + new:
            s.pump(0.05)
        check(all(len(s.events) == 3 for s in old) and all(len(s.events) == 2 for s in new),
              f"duplicates: old {[len(s.events) for s in old]}, new {[len(s.events) for s in new]}")
    finally:
        for s in old + new:
            s.close()


# name, function, timeout (s), scope: "cli" once; "main" apache+lighttpd on
# the TCP responder; "all" also the unix-socket and lighttpd-spawned variants.
CASES = [
    ("cli.help", cli_help, 10, "cli"),
    ("cli.bad_flag", cli_bad_flag, 10, "cli"),
    ("cli.bad_value", cli_bad_value, 20, "cli"),
    ("cli.no_db", cli_no_db, 10, "cli"),
    ("cli.unreadable_db", cli_unreadable_db, 20, "cli"),
    ("cli.port_in_use", cli_port_in_use, 10, "cli"),
    ("cli.schema_created", cli_schema_created, 10, "cli"),
    ("cli.env_db", cli_env_db, 10, "cli"),
    ("cli.unix_socket_fastcgi", cli_unix_socket_direct, 10, "cli"),
    ("cli.socket_mode", cli_socket_mode, 15, "cli"),
    ("cli.idle_fastcgi_connections", idle_fastcgi_connections, 30, "cli"),
    ("conf.user_files_parse", conf_user_files_parse, 20, "cli"),
    ("conf.stats_local_only", conf_stats_local_only, 30, "cli"),
    ("backend_down_503", backend_down_503, 10, "front"),
    ("headers_retry", headers_retry, 10, "all"),
    ("framing", framing, 10, "all"),
    ("routing", routing, 10, "all"),
    ("live_only", live_only, 10, "all"),
    ("position_live", position_live, 10, "all"),
    ("position_reconnect", position_reconnect, 10, "all"),
    ("resume_header", resume_header, 10, "main"),
    ("resume_param", resume_param, 10, "all"),
    ("resume_header_wins", resume_header_wins, 10, "main"),
    ("resume_empty_header", resume_empty_header_uses_param, 10, "main"),
    ("resume_two_channels", resume_two_channels, 10, "main"),
    ("replay_race", replay_race, 60, "main"),
    ("bad_input", bad_input, 30, "all"),
    ("heartbeat", heartbeat, 10, "all"),
    ("blob_base64", blob_base64, 10, "main"),
    ("utf8_row", utf8_row, 10, "main"),
    ("reset_future_id", reset_future_id, 10, "main"),
    ("eventsource", eventsource_basic, 20, "main"),
    ("ws_proxy", ws_proxy, 20, "main"),
    ("kill9_resume", kill9_resume, 40, "main"),
    ("disconnect_cleanup", disconnect_cleanup, 40, "main"),
    ("many_streams", many_streams, 70, "main"),
] + metrics_cases.METRICS_CASES + [  # before the pruning cases, which affect later resumes
    ("reset_pruned_meta", reset_pruned_meta, 10, "main"),
    ("reset_pruned_oldest", reset_pruned_oldest, 10, "main"),
    ("big_blob_resume", big_blob_resume, 40, "main"),
    ("heavy_resume", heavy_resume, 40, "main"),
    ("big_commit_live", big_commit_live, 40, "main"),
    ("slow_client_dropped", slow_client_dropped, 30, "cli"),
    ("max_row", max_row, 20, "cli"),
    ("fault.web_kill9_resume", web_kill9_resume, 60, "main"),
    ("fault.apache_graceful", apache_graceful, 30, "apache"),
] + fault_cases.FAULT_CASES + ws_cases.WS_CASES + auth_cases.AUTH_CASES
# scope "ws": ws-direct, ws-apache, ws-lighttpd; "wsdirect": ws-direct;
# "auth-sse", "auth-ws", "auth-all": the --auth-keys processes (auth_cases.py)


def probe(responder):
    """Tells a responder fault from a proxy fault: does the responder itself
    still answer a bare FastCGI request?"""
    listen = responder.listen
    addr = listen if listen.startswith("/") else ("127.0.0.1", int(listen.rsplit(":", 1)[1]))
    params = {"REQUEST_METHOD": "GET", "QUERY_STRING": "channel=probe", "SCRIPT_NAME": "/events",
              "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1"}
    try:
        out = fcgi_request(addr, params, timeout=2, until=b"retry:")
    except OSError as e:
        return f"direct FastCGI probe of {responder.name}: {e}"
    if b"retry:" in out:
        return f"direct FastCGI probe of {responder.name}: answers"
    return (f"direct FastCGI probe of {responder.name}: NO ANSWER in 2 s (responder wedged; "
            f"got {short(out)})")


def run_case(fn, target, timeout):
    box = {}

    def body():
        try:
            box["note"] = fn(target)
        except Fail as e:
            box["err"] = str(e)
        except Skip as e:
            box["skip"] = str(e)
        except Exception as e:
            box["err"] = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}"

    th = threading.Thread(target=body, daemon=True)
    t0 = time.monotonic()
    th.start()
    th.join(timeout)
    dt = time.monotonic() - t0
    if th.is_alive():
        return False, f"case timed out after {timeout}s", dt
    if "err" in box:
        return False, box["err"], dt
    if "skip" in box:
        return None, box["skip"], dt
    return True, box.get("note"), dt


def main():
    global VERBOSE, ENV
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-k", dest="pattern", help="run only cases whose name matches this regex")
    ap.add_argument("--target", action="append",
                    help="apache, lighttpd, apache-unix, lighttpd-spawn, ws-direct, ws-apache, "
                         "ws-lighttpd (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir and print its path")
    ap.add_argument("-v", action="store_true", help="print server logs on failure")
    args = ap.parse_args()
    VERBOSE = args.v
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    passed = failed = skipped = 0
    ENV = Env(args.keep)
    ws_cases.ENV = ENV
    auth_cases.ENV = ENV
    metrics_cases.ENV = ENV
    fault_cases.ENV = ENV
    try:
        have_bin = os.access(BIN, os.X_OK)
        if not have_bin:
            print(f"FAIL  setup: {BIN} not built (run make)", flush=True)
            failed += 1
        else:
            ENV.main = Responder(ENV, "responder-tcp", f"127.0.0.1:{ENV.fport}")
            ENV.main.start()
            ENV.unix = Responder(ENV, "responder-unix", ENV.sock)
            ENV.unix.start()
            if os.access(WS_BIN, os.X_OK):
                ENV.start_ws()
                ENV.start_auth(auth_cases.FCGI_AUTH_ARGS, auth_cases.WS_AUTH_ARGS,
                               auth_cases.KEYS_TEXT)
        ENV.start_web()
        if have_bin:
            ENV.targets = [Target("apache", ENV.aport, "/events", ENV.main, True),
                           Target("lighttpd", ENV.lport, "/events", ENV.main, True),
                           Target("apache-unix", ENV.aport, "/unix/events", ENV.unix, False),
                           Target("lighttpd-spawn", ENV.lport, "/spawn/events", None, False)]
        ws_targets = ws_cases.make_targets(ENV) if ENV.ws is not None else []
        auth_targets = auth_cases.make_targets(ENV) if ENV.auth_ws is not None else []
        ws_missing_reported = False
        front = [Target("apache", ENV.aport, "/events", None, True),
                 Target("lighttpd", ENV.lport, "/events", None, True)]
        for name, fn, timeout, scope in CASES:
            if args.pattern and not re.search(args.pattern, name):
                continue
            if scope == "cli":
                if not have_bin and not name.startswith("conf."):
                    continue
                targets = [None]
            elif scope == "front":
                targets = front
            elif scope.startswith("auth-"):
                kind = scope[5:]
                targets = [x for x in auth_targets if kind == "all" or x.kind == kind]
            elif scope.startswith("ws"):
                if not ws_targets:
                    if not ws_missing_reported:
                        print(f"FAIL  setup: {WS_BIN} not built (run make)", flush=True)
                        failed += 1
                        ws_missing_reported = True
                    continue
                if scope == "ws":
                    targets = ws_targets
                elif scope == "wsdirect":
                    targets = ws_targets[:1]
                else:                      # "ws:name,name"
                    targets = [x for x in ws_targets if x.name in scope[3:].split(",")]
            elif scope in ("apache", "lighttpd"):
                targets = [t for t in ENV.targets if t.name == scope]
            else:
                targets = [t for t in ENV.targets if scope == "all" or t.full]
            for t in targets:
                if t is not None and args.target and t.name not in args.target:
                    continue
                ok, note, dt = run_case(fn, t, timeout)
                label = f"{(t.name if t else '-'):15s} {name}"
                if ok is None:
                    skipped += 1
                    print(f"SKIP  {label}  {note}", flush=True)
                elif ok:
                    passed += 1
                    print(f"PASS  {label}  ({dt:.2f}s)" + (f"  {note}" if note else ""), flush=True)
                else:
                    failed += 1
                    print(f"FAIL  {label}  ({dt:.2f}s)\n      {note}", flush=True)
                    if t is not None and t.responder is not None:
                        print(f"      {probe(t.responder)}", flush=True)
                if ENV.main and ENV.main.p.poll() is not None and name != "kill9_resume":
                    print(f"      responder exited ({ENV.main.p.returncode}); restarting. "
                          f"log:\n{ENV.main.log_tail()}", flush=True)
                    ENV.main.start()
                for name_, port_, attr in (("responder-ws", ENV.wsport, "ws"),
                                           ("responder-ws-ro", ENV.wsport_ro, "ws_ro")):
                    p_ = getattr(ENV, attr)
                    if p_ is not None and p_.poll() is not None:
                        failed += 1
                        print(f"FAIL  {name_} exited ({p_.returncode}) during {name}; restarting. "
                              f"log:\n{ENV.tail(name_)}", flush=True)
                        setattr(ENV, attr, ENV.start_ws_proc(name_, port_, WS_MAIN_ARGS if attr == "ws"
                                                             else WS_RO_ARGS))
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        failed += 1
    except Fail as e:
        print(f"FAIL  setup: {e}", flush=True)
        failed += 1
    finally:
        if failed and (VERBOSE or args.keep):
            for n in ("responder", "apache", "lighttpd"):
                t = ENV.tail(n)
                if t:
                    print(t)
        if args.keep:
            print(f"temp dir kept: {ENV.dir}")
        ENV.cleanup()
    print(f"integration: {passed} passed, {failed} failed" +
          (f", {skipped} skipped" if skipped else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
