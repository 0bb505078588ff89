#!/usr/bin/env python3
"""litepush on a PostgreSQL log: what only PostgreSQL has. The whole SSE and
WebSocket suite also runs against PostgreSQL (tests/integration with
LITEPUSH_STORE=pg, see tests/pg/run.sh); this file adds:

  - schema: created when absent; a clear error and exit 1 when the role may
    not create it or the server is down at start;
  - commit order: a later id that tries to commit first, many concurrent
    publishers, a long-running publisher transaction;
  - two web hosts (each its own lighttpd + responder + litepush-ws) on one
    database: one row reaches the subscribers of both exactly once; a client
    whose host is killed resumes on the other with nothing lost;
  - PostgreSQL restarted mid-stream: streams stay open and nothing is lost;
  - litepush-prune and the admin views on PostgreSQL.

Prints one line per case and ends with `pg: N passed, N failed`.
Standard library only (psql is the publisher).

    tests/pg/run.py [-k REGEX] [--keep]
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from harness import (BIN, PROCS, ROOT, WS_BIN, Fail, Procs, Stream, check, free_port,  # noqa: E402
                     pids_with_env, short, tcp_listening, wait_until)
from pgserver import PgServer  # noqa: E402
import ws_raw  # noqa: E402

PRUNE_BIN = os.path.join(ROOT, "litepush-prune")
PG = None
TMP = None


# ------------------------------------------------------------------ helpers
def psql(sql, uri=None):
    return PG.psql(sql, uri=uri)


def insert(channel, data, n=1):
    out = psql("".join(f"INSERT INTO messages(channel, data) VALUES ('{channel}', '{data}{i}') "
                       "RETURNING id;\n" for i in range(n)))
    return [int(x) for x in out.split()]


def wait_id_lock_held():
    """Until a transaction holds the log's id lock (its INSERT has run)."""
    wait_until(lambda: psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                            "AND granted;").strip() != "0", 10, "a publisher to hold the id lock",
               interval=0.05)


def ids_in(channel):
    return [int(x) for x in psql(f"SELECT id FROM messages WHERE channel = '{channel}' ORDER BY id;").split()]


class Session:
    """One psql session fed statements on stdin: a transaction we hold open."""

    def __init__(self):
        self.out = tempfile.TemporaryFile(mode="w+")
        self.p = subprocess.Popen(["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", PG.uri],
                                  stdin=subprocess.PIPE, stdout=self.out, stderr=subprocess.STDOUT,
                                  text=True)

    def send(self, sql):
        self.p.stdin.write(sql + "\n")
        self.p.stdin.flush()

    def finish(self, timeout=30):
        self.p.stdin.close()
        self.p.wait(timeout)
        self.out.seek(0)
        text = self.out.read()
        check(self.p.returncode == 0, f"psql session failed: {short(text)}")
        return text


class Host:
    """One web host: lighttpd on its own port in front of a responder
    (FastCGI over TCP) and a litepush-ws, all on the one database."""

    def __init__(self, name):
        self.name = name
        self.dir = os.path.join(TMP, name)
        os.makedirs(os.path.join(self.dir, "www"), exist_ok=True)
        self.fport, self.wsport, self.port = free_port(), free_port(), free_port()
        self.responder = self.ws = self.lighttpd = None
        self.start()

    def _start(self, name, argv, port):
        logf = open(os.path.join(self.dir, f"{name}.log"), "ab")
        p = PROCS.start(argv, stdout=logf, stderr=logf, env=dict(os.environ, LITEPUSH_IT=TMP))
        logf.close()
        wait_until(lambda: tcp_listening(port) or p.poll() is not None, 10, f"{self.name} {name}")
        check(p.poll() is None, f"{self.name} {name} exited: {self.log(name)}")
        return p

    def start(self):
        self.responder = self._start("responder", [BIN, "--db", PG.uri, "--listen",
                                                   f"127.0.0.1:{self.fport}", "--heartbeat", "1",
                                                   "--retry", "500"], self.fport)
        self.ws = self._start("ws", [WS_BIN, "--db", PG.uri, "--listen", f"127.0.0.1:{self.wsport}",
                                     "--allow-publish", "--ping", "60"], self.wsport)
        conf = os.path.join(self.dir, "lighttpd.conf")
        with open(conf, "w") as f:
            f.write(f"""server.document-root = "{self.dir}/www"
server.bind = "127.0.0.1"
server.port = {self.port}
server.errorlog = "{self.dir}/lighttpd-error.log"
server.modules = ( "mod_fastcgi", "mod_proxy" )
server.stream-response-body = 2
fastcgi.server = ( "/events" => (( "host" => "127.0.0.1", "port" => {self.fport},
                                   "check-local" => "disable", "disable-time" => 1 )) )
proxy.server = ( "/ws" => (( "host" => "127.0.0.1", "port" => {self.wsport} )) )
proxy.header = ( "upgrade" => "enable" )
""")
        self.lighttpd = self._start("lighttpd", ["lighttpd", "-D", "-f", conf], self.port)

    def kill(self):
        for p in (self.lighttpd, self.responder, self.ws):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(5)

    def sse(self, query):
        s = Stream(self.port, "/events?" + query)
        s.open()
        return s

    def wsc(self, query):
        c = ws_raw.RawWS(self.port, "/ws?" + query)
        c.open()
        return c

    def log(self, name):
        try:
            with open(os.path.join(self.dir, f"{name}.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-1500:]
        except OSError:
            return ""


def ws_rows(c, n, timeout=10.0):
    """The next n row frames of a WebSocket client, as dicts."""
    rows = []
    deadline = time.monotonic() + timeout
    while len(rows) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Fail(f"WebSocket: {len(rows)} of {n} rows after {timeout}s: {short(rows)}")
        rows.append(json.loads(c.recv_data(timeout=left)))
    return rows


def sse_ids(s, n, timeout=10.0):
    return [int(e["id"]) for e in s.wait_events(n, timeout)]


def drain(s, secs):
    """Reads whatever a stream gets for secs seconds."""
    end = time.monotonic() + secs
    while time.monotonic() < end:
        s.pump(end - time.monotonic())


def expect_exact(got, want, what):
    check(got == want, f"{what}: expected ids {short(want)}, got {short(got)}")


HOSTS = []


def hosts(n):
    while len(HOSTS) < n:
        HOSTS.append(Host(f"host{len(HOSTS) + 1}"))
    for h in HOSTS[:n]:
        if h.responder is None or h.responder.poll() is not None:
            h.kill()
            h.start()
    return HOSTS[:n]


# ------------------------------------------------------------------ cases
def schema_created_and_refused(_):
    """A fresh database gets the schema; a role that may not create it gets a
    clear error and exit 1; so does a server that is down at start."""
    psql("CREATE DATABASE fresh; CREATE ROLE norights LOGIN;")
    base = PG.uri.rsplit("/", 1)[0]
    fresh = base + "/fresh"
    norights = fresh.replace("litepush@", "norights@")
    r = subprocess.run([BIN, "--db", norights, "--listen", f"127.0.0.1:{free_port()}"],
                       capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    check(r.returncode == 1 and "schema-postgresql.sql" in r.stderr and "may not create" in r.stderr,
          f"no rights: expected exit 1 naming the schema file, got {r.returncode}: {r.stderr.strip()!r}")
    r = subprocess.run([PRUNE_BIN, "--db", fresh, "--keep-rows", "5"], capture_output=True,
                       text=True, timeout=20)
    check(r.returncode == 0, f"prune on a fresh database (creates the schema): {r.returncode} {r.stderr!r}")
    out = psql("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'litepush%';", uri=fresh)
    check(out.strip() == "2", f"schema not created in the fresh database: {out!r}")
    r = subprocess.run([WS_BIN, "--db", norights, "--listen", f"127.0.0.1:{free_port()}"],
                       capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    # The schema exists now, but norights may not read it either.
    check(r.returncode != 0 and r.stderr.strip(), f"no rights to read: {r.returncode} {r.stderr!r}")
    down = f"postgresql://litepush@127.0.0.1:{free_port()}/postgres"
    r = subprocess.run([BIN, "--db", down, "--listen", f"127.0.0.1:{free_port()}"],
                       capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    check(r.returncode == 1 and "cannot connect to PostgreSQL" in r.stderr,
          f"server down at start: expected exit 1 and a reason, got {r.returncode}: {r.stderr!r}")


def order_later_commits_first(_):
    """Transaction A takes an id and stays open; B inserts after it and tries
    to commit first. B must wait for A (the id lock), so no subscriber can
    see B's larger id before A's smaller one."""
    h = hosts(1)[0]
    ch = f"ooo{os.urandom(3).hex()}"
    s = h.sse(f"channel={ch}")
    w = h.wsc(f"channel={ch}")
    a = Session()
    a.send(f"BEGIN; INSERT INTO messages(channel, data) VALUES ('{ch}', 'A') RETURNING id;")
    wait_id_lock_held()
    b = subprocess.Popen(["psql", "-X", "-A", "-t", "-q", PG.uri, "-c",
                          f"INSERT INTO messages(channel, data) VALUES ('{ch}', 'B') RETURNING id"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    check(b.poll() is None, "B committed while A (a smaller id) was still open")
    drain(s, 0.2)
    check(s.events == [], f"a row was delivered before A committed: {s.events}")
    a.send("COMMIT;")
    id_a = int(a.finish().split()[0])
    out, err = b.communicate(timeout=10)
    id_b = int(out.split()[0])
    check(id_a < id_b, f"ids: A {id_a}, B {id_b}")
    expect_exact(sse_ids(s, 2), [id_a, id_b], "SSE")
    expect_exact([r["id"] for r in ws_rows(w, 2)], [id_a, id_b], "WebSocket")
    s.close()
    w.close()
    r = h.sse(f"channel={ch}&lastEventId=0")
    expect_exact(sse_ids(r, 2), [id_a, id_b], "resume from 0")
    r.close()


def order_concurrent_publishers(_):
    """8 publishers x 40 rows in transactions of 1-3 rows that sleep before
    committing; subscribers on two hosts get every row once, in id order."""
    hs = hosts(2)
    ch = f"conc{os.urandom(3).hex()}"
    subs = [h.sse(f"channel={ch}") for h in hs]
    wss = [h.wsc(f"channel={ch}") for h in hs]
    procs = []
    rnd = random.Random(11)
    for p in range(8):
        script, i = [], 0
        while i < 40:
            k = min(rnd.randint(1, 3), 40 - i)
            rows = "".join(f"INSERT INTO messages(channel, data) VALUES ('{ch}', 'p{p}r{i + j}');"
                           for j in range(k))
            script.append(f"BEGIN; {rows} SELECT pg_sleep({rnd.random() * 0.01:.4f}); COMMIT;")
            i += k
        procs.append(subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", PG.uri],
                                      stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
        procs[-1].stdin.write("\n".join(script) + "\n")
        procs[-1].stdin.close()
    for p in procs:
        p.wait(60)
        check(p.returncode == 0, f"publisher failed: {p.stderr.read()}")
    want = ids_in(ch)
    check(len(want) == 320, f"expected 320 rows, table has {len(want)}")
    for s in subs:
        expect_exact(sse_ids(s, 320, 30), want, "SSE")
        drain(s, 0.5)
        check(len(s.events) == 320, f"SSE got {len(s.events)} rows (duplicates?)")
        s.close()
    for w in wss:
        expect_exact([r["id"] for r in ws_rows(w, 320, 30)], want, "WebSocket")
        w.close()


def order_long_transaction(_):
    """A publisher transaction open for 3 s: others wait for it, subscribers
    see everything in order after it commits; a WebSocket publish meanwhile
    is refused as busy after lock_timeout and does not stall the loop."""
    h = hosts(1)[0]
    ch = f"long{os.urandom(3).hex()}"
    s = h.sse(f"channel={ch}")
    pub = h.wsc(f"channel={ch}")
    long_tx = subprocess.Popen(["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", PG.uri],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    long_tx.stdin.write(f"BEGIN; INSERT INTO messages(channel, data) VALUES ('{ch}', 'long'); "
                        "SELECT pg_sleep(3); COMMIT;\n")
    long_tx.stdin.close()
    wait_id_lock_held()
    others = [subprocess.Popen(["psql", "-X", "-q", PG.uri, "-c",
                                f"INSERT INTO messages(channel, data) VALUES ('{ch}', 'o{i}')"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
              for i in range(10)]
    t0 = time.monotonic()
    pub.send_frame(ws_raw.OP_TEXT, json.dumps({"channel": ch, "data": "ws"}))
    data = pub.recv_data(timeout=5)
    took = time.monotonic() - t0
    check("error" in json.loads(data) and took < 2.0,
          f"WS publish during the long transaction: {data!r} after {took:.2f}s")
    pub.ping_pong()
    long_tx.wait(20)
    for p in others:
        p.wait(20)
        check(p.returncode == 0, "a waiting publisher failed")
    want = ids_in(ch)
    check(len(want) == 11, f"expected 11 rows, got {want}")
    expect_exact(sse_ids(s, 11, 10), want, "SSE")
    expect_exact([r["id"] for r in ws_rows(pub, 11)], want, "WebSocket")
    s.close()
    pub.close()


def hosts_fanout_once(_):
    """One row inserted once reaches SSE and WebSocket subscribers on both
    hosts exactly once."""
    hs = hosts(2)
    ch = f"fan{os.urandom(3).hex()}"
    subs = [h.sse(f"channel={ch}") for h in hs for _ in range(2)]
    wss = [h.wsc(f"channel={ch}") for h in hs]
    rid = insert(ch, "once")[0]
    for s in subs:
        expect_exact(sse_ids(s, 1), [rid], "SSE")
        drain(s, 0.5)
        check(len(s.events) == 1, f"SSE got {len(s.events)} copies")
        s.close()
    for w in wss:
        expect_exact([r["id"] for r in ws_rows(w, 1)], [rid], "WebSocket")
        w.close()


def hosts_failover(_):
    """A client on host 1 reads some rows; host 1 dies; rows go on being
    published; the client resumes on host 2 with its last id: nothing lost,
    nothing twice."""
    h1, h2 = hosts(2)
    ch = f"fo{os.urandom(3).hex()}"
    s = h1.sse(f"channel={ch}")
    first = insert(ch, "a", 5)
    expect_exact(sse_ids(s, 5), first, "before the kill")
    last = s.events[-1]["id"]
    h1.kill()
    more = insert(ch, "b", 7)
    r = Stream(h2.port, f"/events?channel={ch}", headers={"Last-Event-ID": last})
    r.open()
    expect_exact(sse_ids(r, 7), more, "resumed on host 2")
    live = insert(ch, "c", 2)
    r.wait_events(9)
    expect_exact([int(e["id"]) for e in r.events], more + live, "resumed, then live")
    r.close()
    s.close()
    h1.start()


def pg_restart_midstream(_):
    """PostgreSQL stops for 2 s and comes back: open SSE and WebSocket
    streams stay open (heartbeats go on) and get every row, once."""
    hs = hosts(2)
    ch = f"rs{os.urandom(3).hex()}"
    subs = [h.sse(f"channel={ch}") for h in hs]
    wss = [h.wsc(f"channel={ch}") for h in hs]
    before = insert(ch, "before", 3)
    for s in subs:
        expect_exact(sse_ids(s, 3), before, "before the restart")
    PG.stop("immediate")
    t0 = time.monotonic()
    for s in subs:
        n = s.body.count(b"\n:")
        s.wait(lambda: s.body.count(b"\n:") > n, 3, "a heartbeat while PostgreSQL is down")
        check(not s.eof, "stream ended while PostgreSQL was down")
    # The loops answer while the log is away (rows that came first are kept).
    early = [[json.loads(f.payload) for f in w.ping_pong()] for w in wss]
    PG.start()
    down = time.monotonic() - t0
    after = insert(ch, "after", 4)
    for s in subs:
        s.wait_events(7, 15)
        expect_exact([int(e["id"]) for e in s.events], before + after, "SSE across the restart")
        s.close()
    for w, got in zip(wss, early):
        got += ws_rows(w, 7 - len(got), 15)
        expect_exact([r["id"] for r in got], before + after, "WS across the restart")
        w.close()
    return f"down {down:.1f}s"


def restart_resume_while_down(_):
    """A client that resumes while PostgreSQL is away is turned away (the gap
    check needs the log) and gets every row once it is back; a WebSocket
    publish meanwhile is refused with a reason, the connection stays open."""
    h = hosts(1)[0]
    ch = f"rd{os.urandom(3).hex()}"
    ids = insert(ch, "r", 3)
    w = h.wsc(f"channel={ch}")
    PG.stop("immediate")
    try:
        s = Stream(h.port, f"/events?channel={ch}", headers={"Last-Event-ID": str(ids[0])})
        s.open()
        s.wait(lambda: s.eof, 5, "the resumed stream to end while the log is away")
        check(s.events == [], f"rows delivered without the log: {s.events}")
        s.close()
        w.send_frame(ws_raw.OP_TEXT, json.dumps({"channel": ch, "data": "while down"}))
        reply = json.loads(w.recv_data(timeout=5))
        check("unreachable" in reply.get("error", ""), f"publish while down: {reply}")
    finally:
        PG.start()
    # As EventSource does: reconnect after the retry time until it streams.
    deadline = time.monotonic() + 15
    while True:
        s = Stream(h.port, f"/events?channel={ch}", headers={"Last-Event-ID": str(ids[0])})
        s.open()
        s.wait(lambda: s.eof or len(s.events) >= 2, 10, "rows or the end of the stream")
        if len(s.events) >= 2 or time.monotonic() > deadline:
            break
        s.close()
        time.sleep(0.5)
    expect_exact([int(e["id"]) for e in s.events], ids[1:], "resumed once the log is back")
    s.close()
    w.close()


def prune_and_reset(_):
    """litepush-prune on PostgreSQL, then a resume from a pruned id gets
    litepush.reset (history-pruned); one ahead of the log gets ahead-of-log."""
    h = hosts(1)[0]
    ch = f"pr{os.urandom(3).hex()}"
    ids = insert(ch, "p", 6)
    r = subprocess.run([PRUNE_BIN, "--db", PG.uri, "--keep-rows", "2", "--channel", ch],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and "deleted 4 rows" in r.stdout, f"prune: {r.returncode} {r.stdout!r} {r.stderr!r}")
    expect_exact(ids_in(ch), ids[4:], "rows kept")
    s = h.sse(f"channel={ch}&lastEventId={ids[0]}")
    evs = s.wait_events(3)
    check(evs[0]["event"] == "litepush.reset" and "history-pruned" in evs[0]["data"],
          f"expected litepush.reset history-pruned first, got {evs[0]}")
    expect_exact([int(e["id"]) for e in evs[1:]], ids[4:], "after the reset")
    s.close()
    s = h.sse(f"channel={ch}&lastEventId={ids[-1] + 100000}")
    ev = s.wait_events(1)[0]
    check(ev["event"] == "litepush.reset" and "ahead-of-log" in ev["data"], f"ahead: {ev}")
    s.close()


def binary_and_text_rows(_):
    """data_bin rows go out base64 like SQLite BLOBs; text with backslashes
    and line breaks goes out as it is."""
    h = hosts(1)[0]
    ch = f"bin{os.urandom(3).hex()}"
    w = h.wsc(f"channel={ch}")
    s = h.sse(f"channel={ch}")
    psql(f"INSERT INTO messages(channel, data_bin) VALUES ('{ch}', '\\x00ff10'::bytea);"
         f"INSERT INTO messages(channel, event, data) VALUES ('{ch}', 'j', E'{{\"a\":\"b\\\\\\\\c\"}}\\nl2');")
    rows = ws_rows(w, 2)
    check(rows[0].get("encoding") == "base64" and rows[0]["data"] == "AP8Q", f"binary row: {rows[0]}")
    check(rows[1]["data"] == '{"a":"b\\\\c"}\nl2' and rows[1]["event"] == "j", f"text row: {rows[1]}")
    evs = s.wait_events(2)
    check(evs[0]["data"] == "AP8Q", f"SSE binary: {evs[0]}")
    check(evs[1]["data"] == '{"a":"b\\\\c"}\nl2', f"SSE text: {evs[1]}")
    w.close()
    s.close()


def admin_views(_):
    path = os.path.join(ROOT, "sql", "admin-postgresql.sql")
    r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", PG.uri, "-f", path],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, f"admin-postgresql.sql: {r.stderr}")
    out = psql("SELECT last_id > 0, issued_max >= last_id FROM litepush_last_id;"
               "SELECT count(*) > 0 FROM litepush_channels;"
               "SELECT count(*) > 0 FROM litepush_recent;")
    check(out.split() == ["t|t", "t", "t"], f"views: {out!r}")


CASES = [
    ("schema.created_and_refused", schema_created_and_refused, 60),
    ("order.later_commits_first", order_later_commits_first, 30),
    ("order.concurrent_publishers", order_concurrent_publishers, 90),
    ("order.long_transaction", order_long_transaction, 40),
    ("rows.binary_and_text", binary_and_text_rows, 20),
    ("hosts.fanout_once", hosts_fanout_once, 30),
    ("hosts.failover", hosts_failover, 40),
    ("restart.midstream", pg_restart_midstream, 60),
    ("restart.resume_while_down", restart_resume_while_down, 40),
    ("prune.reset", prune_and_reset, 30),
    ("admin.views", admin_views, 30),
]


def run_case(fn, timeout):
    box = {}

    def body():
        try:
            box["note"] = fn(None)
        except Fail as e:
            box["err"] = str(e)
        except Exception as e:
            box["err"] = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}"

    th = threading.Thread(target=body, daemon=True)
    t0 = time.monotonic()
    th.start()
    th.join(timeout)
    if th.is_alive():
        return False, f"timed out after {timeout}s", time.monotonic() - t0
    return "err" not in box, box.get("err") or box.get("note"), time.monotonic() - t0


def main():
    global PG, TMP
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", dest="pattern")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    TMP = tempfile.mkdtemp(prefix="litepush-pgt-")
    os.chmod(TMP, 0o755)
    passed = failed = 0
    try:
        PG = PgServer(TMP)
        for name, fn, timeout in CASES:
            if args.pattern and not re.search(args.pattern, name):
                continue
            ok, note, dt = run_case(fn, timeout)
            if ok:
                passed += 1
                print(f"PASS  {name}  ({dt:.2f}s)" + (f"  {note}" if note else ""), flush=True)
            else:
                failed += 1
                print(f"FAIL  {name}  ({dt:.2f}s)\n      {note}", flush=True)
                for h in HOSTS:
                    for n in ("responder", "ws"):
                        print(f"      -- {h.name} {n}: {short(h.log(n), 600)}", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        failed += 1
    except (Fail, RuntimeError) as e:
        print(f"FAIL  setup: {e}", flush=True)
        failed += 1
    finally:
        PROCS.stop_all()
        for pid in pids_with_env(TMP):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if PG is not None:
            PG.cleanup(keep=args.keep)
        if args.keep:
            print(f"temp dir kept: {TMP}")
        else:
            shutil.rmtree(TMP, ignore_errors=True)
    print(f"pg: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
