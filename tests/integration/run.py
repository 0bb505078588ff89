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
import subprocess
import sys
import threading
import time
import traceback

import metrics_cases
import ws_cases
from harness import (APACHE_MODULES, BIN, DB, WS_BIN, WS_MAIN_ARGS, WS_RO_ARGS, Env, Fail, Skip, NodeES, NodeWS, PROCS, Procs,
                     Responder, RETRY_MS, ROOT, Target, alive, check, fcgi_request, fd_count, settle_fds,
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
    out = ENV.db.run("SELECT name FROM sqlite_master WHERE type='table' AND name='messages';"
                     "PRAGMA journal_mode;")
    check(out.split() == ["messages", "wal"], f"fresh db: expected table messages and WAL, got {out!r}")


def cli_env_db(_):
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


def conf_user_files_parse(_):
    """apache-conf/*.conf as shipped: both servers accept them."""
    a = os.path.join(ROOT, "apache-conf", "litepush-apache.conf")
    l = os.path.join(ROOT, "apache-conf", "litepush-lighttpd.conf")
    mods = ["mpm_event", "authz_core", "authz_host", "proxy", "proxy_fcgi", "proxy_wstunnel",
            "proxy_http", "env"]
    loads = "\n".join(f"LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so" for m in mods)
    wrap = ENV.write("check-apache.conf", f'ServerRoot "{ENV.dir}"\nServerName 127.0.0.1\n'
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
               f"INSERT INTO messages(channel,data) SELECT {DB.text(ch)}, 'row '||i FROM n;")
    feeder = subprocess.Popen(["sqlite3", "-batch", ENV.db.path], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    done = threading.Event()

    def feed():
        try:
            feeder.stdin.write(".timeout 10000\n")
            for i in range(400):
                feeder.stdin.write(f"INSERT INTO messages(channel,data) VALUES({DB.text(ch)},'live {i}');\n")
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
    ENV.db.run(f"DELETE FROM messages WHERE id IN ({ids[1]},{ids[2]});"
               f"INSERT OR REPLACE INTO litepush_meta(key,value) "
               f"VALUES('pruned_through', max({ids[2]}, coalesce((SELECT value FROM litepush_meta "
               f"WHERE key='pruned_through'),0)));")
    return _expect_pruned_reset(t, ch, ids, "pruned_through")


def reset_pruned_oldest(t):
    """Age-based retention: every row up to some id is gone. Runs last."""
    ch = t.ch("prn2")
    ids = ENV.db.insert_rows([(ch, f"p{i}", None) for i in range(1, 6)])
    ENV.db.run(f"DELETE FROM messages WHERE id <= {ids[2]} AND id != {ids[0]};"
               f"INSERT OR REPLACE INTO litepush_meta(key,value) VALUES('pruned_through', {ids[2]});")
    # The resume id's own row is deleted too: a client resumes from ids it saw.
    ENV.db.run(f"DELETE FROM messages WHERE id = {ids[0]};")
    return _expect_pruned_reset(t, ch, ids, "oldest rows pruned")


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
    ("conf.user_files_parse", conf_user_files_parse, 20, "cli"),
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
    ("reset_future_id", reset_future_id, 10, "main"),
    ("eventsource", eventsource_basic, 20, "main"),
    ("ws_proxy", ws_proxy, 20, "main"),
    ("kill9_resume", kill9_resume, 40, "main"),
    ("disconnect_cleanup", disconnect_cleanup, 40, "main"),
    ("many_streams", many_streams, 70, "main"),
] + metrics_cases.METRICS_CASES + [  # before the pruning cases, which affect later resumes
    ("reset_pruned_meta", reset_pruned_meta, 10, "main"),
    ("reset_pruned_oldest", reset_pruned_oldest, 10, "main"),
] + ws_cases.WS_CASES     # scope "ws": ws-direct, ws-apache, ws-lighttpd; "wsdirect": ws-direct


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
    metrics_cases.ENV = ENV
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
        ENV.start_web()
        if have_bin:
            ENV.targets = [Target("apache", ENV.aport, "/events", ENV.main, True),
                           Target("lighttpd", ENV.lport, "/events", ENV.main, True),
                           Target("apache-unix", ENV.aport, "/unix/events", ENV.unix, False),
                           Target("lighttpd-spawn", ENV.lport, "/spawn/events", None, False)]
        ws_targets = ws_cases.make_targets(ENV) if ENV.ws is not None else []
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
