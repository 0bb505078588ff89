"""Infrastructure for the litepush integration tests (run.py, ws_cases.py)
and the admin tests (tests/admin): processes, ports, waits, a tally of
checks, the sqlite3 publisher, a raw-socket SSE reader, a bare FastCGI
client, the npm eventsource and ws clients, and the Apache/lighttpd/responder
processes with their generated configs. Standard library only."""
import codecs
import grp
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("LITEPUSH_FCGI") or os.path.join(ROOT, "cgi-bin", "litepush.fcgi")
WS_BIN = os.environ.get("LITEPUSH_WS") or os.path.join(ROOT, "litepush-ws")
ES_CLIENT = os.path.join(HERE, "es_client.mjs")
WS_DRIVER = os.path.join(HERE, "ws_driver.mjs")
APACHE_MODULES = "/usr/lib/apache2/modules"
# litepush-ws behind /ws, and the read-only one behind /ro/ws.
WS_MAX_MESSAGE = 1000
WS_MAIN_ARGS = ["--allow-publish", "--ping", "1", "--max-message", str(WS_MAX_MESSAGE)]
WS_RO_ARGS = ["--no-deflate"]
# Which log every case runs against: "sqlite" (a file in the temp dir) or
# "pg" (a throw-away PostgreSQL server, pgserver.py).
STORE = os.environ.get("LITEPUSH_STORE", "sqlite")
HEARTBEAT_S = 1          # --heartbeat for every responder under test
RETRY_MS = 1500          # --retry: also the EventSource reconnect delay


class Fail(Exception):
    """A check failed; the message says what was expected and what came."""


class Skip(Exception):
    """The case cannot run here (what it needs is not part of this build)."""


def sqlite_only():
    """For a case that writes SQLite-specific SQL (randomblob, printf,
    CAST(X'FF' AS TEXT): bytes PostgreSQL's TEXT cannot hold) or opens the
    file itself: skipped on the PostgreSQL run, covered by the SQLite one."""
    if STORE == "pg":
        raise Skip("SQLite-specific SQL; covered by the SQLite run")


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def short(x, n=300):
    s = repr(x)
    return s if len(s) <= n else s[:n] + "..."


class Tally:
    """Counts checks for a suite that is a list of checks rather than of
    cases (tests/admin): one line a check, and a last line
    "<suite>: N passed, N failed" that tests/run-all.sh adds up."""

    def __init__(self, suite):
        self.suite, self.passed, self.failed = suite, 0, 0

    def ok(self, name, note=""):
        self.passed += 1
        print(f"PASS  {name}" + (f"  {note}" if note else ""), flush=True)

    def bad(self, name, why=""):
        self.failed += 1
        print(f"FAIL  {name}" + (f"\n      {why}" if why else ""), flush=True)

    def check(self, name, got, want):
        """Passes when got == want; strings are compared without the
        trailing newline a CLI prints."""
        if isinstance(got, str):
            got = got.rstrip("\n")
        if got == want:
            self.ok(name)
        else:
            self.bad(name, f"got {short(got, 600)}, want {short(want, 600)}")

    def run(self, name, fn, *args):
        """Runs fn(*args), which raises Fail; passes when it returns."""
        try:
            note = fn(*args)
        except Fail as e:
            self.bad(name, str(e))
        else:
            self.ok(name, note or "")

    def finish(self):
        print(f"{self.suite}: {self.passed} passed, {self.failed} failed", flush=True)
        return 0 if self.failed == 0 else 1


# ----------------------------------------------------------------- processes
class Procs:
    """Every process the harness starts, so that all of them die at the end."""

    def __init__(self):
        self.procs = []
        self.lock = threading.Lock()

    def start(self, argv, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(argv, start_new_session=True, **kw)
        with self.lock:
            self.procs.append(p)
        return p

    @staticmethod
    def stop(p, sig=signal.SIGTERM, wait_s=3.0):
        if p.poll() is not None:
            return
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(wait_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(5)

    def stop_all(self):
        with self.lock:
            procs = list(self.procs)
            self.procs = []
        for p in reversed(procs):
            try:
                self.stop(p)
            except Exception:
                pass


PROCS = Procs()


def pids_with_env(marker):
    """PIDs whose environment mentions marker (our temp dir): the responder
    that lighttpd spawned lives in its own session, so killpg misses it."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                if marker.encode() in f.read():
                    out.append(int(d))
        except OSError:
            pass
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def tcp_listening(port):
    """True when something LISTENs on 127.0.0.1:port (read from /proc, so
    that readiness checks do not open FastCGI connections of their own)."""
    want = ":%04X" % port
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                for line in f.readlines()[1:]:
                    parts = line.split()
                    if parts[1].endswith(want) and parts[3] == "0A":
                        return True
        except OSError:
            pass
    return False


def unix_listening(path):
    try:
        with open("/proc/net/unix") as f:
            return any(line.rstrip().endswith(" " + path) for line in f)
    except OSError:
        return False


def wait_until(pred, timeout, what, interval=0.05):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= end:
            raise Fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def settle_fds(pid, secs=1.0, limit=8.0):
    """Waits until the fd count has not changed for `secs`; returns it."""
    end = time.monotonic() + limit
    last, since = fd_count(pid), time.monotonic()
    while time.monotonic() < end:
        time.sleep(0.1)
        n = fd_count(pid)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= secs:
            break
    return last


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] not in ("Z", "X")
    except OSError:
        return False


# ------------------------------------------------------------------ database
class DB:
    """Publishing through the sqlite3 CLI, the way the contract shows it."""
    kind = "sqlite"
    # SQL for a row's storage class and its data as upper-case hex.
    TYPEOF_DATA = "typeof(data)"
    HEX_DATA = "hex(data)"

    def __init__(self, path):
        self.path = path

    def feeder(self):
        """argv and first input of a long-running client fed statements on stdin."""
        return ["sqlite3", "-batch", self.path], ".timeout 10000\n"

    def mark_pruned(self, key, value, keep_max=True):
        """Records value under litepush_meta key, as litepush-prune does."""
        v = (f"max({value}, coalesce((SELECT value FROM litepush_meta WHERE key='{key}'),0))"
             if keep_max else str(value))
        self.run(f"INSERT OR REPLACE INTO litepush_meta(key,value) VALUES('{key}', {v});")

    def run(self, sql, timeout=30):
        r = subprocess.run(["sqlite3", "-batch", self.path], input=".timeout 10000\n" + sql,
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0 or r.stderr.strip():
            raise Fail(f"sqlite3 failed (rc {r.returncode}): {r.stderr.strip()} in {short(sql)}")
        return r.stdout

    @staticmethod
    def text(s):
        """An SQL expression for the text s, with CR/LF/NUL as char(n) so the
        CLI's line reading cannot alter them."""
        parts, run = [], ""
        for ch in s:
            if ch in "\r\n\0":
                if run:
                    parts.append("'" + run.replace("'", "''") + "'")
                    run = ""
                parts.append(f"char({ord(ch)})")
            else:
                run += ch
        if run or not parts:
            parts.append("'" + run.replace("'", "''") + "'")
        return "||".join(parts)

    def insert_rows(self, rows):
        """rows: (channel or None, data str|bytes, event or None). Returns ids;
        each row is its own statement and transaction."""
        sql = []
        for channel, data, event in rows:
            cols, vals = [], []
            if channel is not None:
                cols.append("channel")
                vals.append(self.text(channel))
            cols.append("event")
            vals.append("NULL" if event is None else self.text(event))
            cols.append("data")
            vals.append("X'" + data.hex() + "'" if isinstance(data, bytes) else self.text(data))
            sql.append(f"INSERT INTO messages({','.join(cols)}) VALUES({','.join(vals)}) RETURNING id;")
        out = self.run("\n".join(sql) + "\n")
        ids = [int(x) for x in out.split()]
        check(len(ids) == len(rows), f"insert returned {out!r}")
        return ids

    def insert(self, channel, data, event=None):
        return self.insert_rows([(channel, data, event)])[0]

    def ids(self, channel):
        out = self.run(f"SELECT id FROM messages WHERE channel={self.text(channel)} ORDER BY id;")
        return [int(x) for x in out.split()]

    def max_issued(self):
        out = self.run("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name='messages'),0);")
        return int(out.strip())


class PgDB(DB):
    """The same, through psql against the test's PostgreSQL server."""
    kind = "pg"
    TYPEOF_DATA = "CASE WHEN data_bin IS NULL THEN 'text' ELSE 'blob' END"
    HEX_DATA = "upper(encode(data_bin, 'hex'))"

    def __init__(self, server):
        self.server = server
        self.path = server.uri

    def run(self, sql, timeout=30):
        try:
            return self.server.psql(sql, timeout=timeout)
        except RuntimeError as e:
            raise Fail(f"{e} in {short(sql)}")

    @staticmethod
    def text(s):
        parts, run = [], ""
        for ch in s:
            if ch in "\r\n":
                if run:
                    parts.append("'" + run.replace("'", "''") + "'")
                    run = ""
                parts.append(f"chr({ord(ch)})")
            else:
                run += ch
        if run or not parts:
            parts.append("'" + run.replace("'", "''") + "'")
        return "(" + "||".join(parts) + ")"

    def insert_rows(self, rows):
        sql = []
        for channel, data, event in rows:
            cols, vals = [], []
            if channel is not None:
                cols.append("channel")
                vals.append(self.text(channel))
            cols.append("event")
            vals.append("NULL" if event is None else self.text(event))
            if isinstance(data, bytes):
                cols.append("data_bin")
                vals.append(f"'\\x{data.hex()}'::bytea")
            else:
                cols.append("data")
                vals.append(self.text(data))
            sql.append(f"INSERT INTO messages({','.join(cols)}) VALUES({','.join(vals)}) RETURNING id;")
        out = self.run("\n".join(sql) + "\n")
        ids = [int(x) for x in out.split()]
        check(len(ids) == len(rows), f"insert returned {out!r}")
        return ids

    def max_issued(self):
        out = self.run("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM messages_id_seq;")
        return int(out.strip())

    def feeder(self):
        return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", self.path], ""

    def mark_pruned(self, key, value, keep_max=True):
        upd = "greatest(litepush_meta.value, excluded.value)" if keep_max else "excluded.value"
        self.run(f"INSERT INTO litepush_meta(key,value) VALUES('{key}', {value}) "
                 f"ON CONFLICT (key) DO UPDATE SET value = {upd};")


# ---------------------------------------------------------------- SSE client
class Stream:
    """One GET /events over a raw socket: HTTP head, chunked decoding and an
    incremental text/event-stream parser that keeps every field in order."""

    def __init__(self, port, path, headers=None, method="GET", connect_timeout=5.0):
        self.t0 = time.monotonic()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=connect_timeout)
        req = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        for k, v in (headers or {}).items():
            req += f"{k}: {v}\r\n"
        if method != "GET":
            req += "Content-Length: 0\r\n"
        req += "\r\n"
        self.sock.sendall(req.encode("latin-1"))
        self.sock.setblocking(False)
        self.raw = b""
        self.status = None
        self.headers = {}
        self.chunked = False
        self.length = None
        self.cstate = "size"
        self.cleft = 0
        self.body = b""
        self.eof = False
        self.dec = codecs.getincrementaldecoder("utf-8")("replace")
        self.text = ""
        self.lines = []          # every line, in order, as (time, line)
        self.fields = []         # the block being built
        self.events = []         # blocks with id/event/data: dicts
        self.comments = []       # (time, line)
        self.retries = []
        self.positions = []      # ids of id-only blocks (no data: not events)
        self.blocks = []         # every block without data, as its fields

    # -- feeding
    def fileno(self):
        return self.sock.fileno()

    def on_readable(self):
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.eof = True
            self._text(b"", final=True)
            return
        self._feed(data)

    def _feed(self, data):
        if self.status is None:
            self.raw += data
            i = self.raw.find(b"\r\n\r\n")
            if i < 0:
                return
            head, rest = self.raw[:i].decode("latin-1"), self.raw[i + 4:]
            lines = head.split("\r\n")
            m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
            if not m:
                raise Fail(f"bad status line {lines[0]!r}")
            self.status = int(m.group(1))
            for ln in lines[1:]:
                k, _, v = ln.partition(":")
                self.headers[k.strip().lower()] = v.strip()
            self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
            if "content-length" in self.headers:
                self.length = int(self.headers["content-length"])
            self.raw = b""
            data = rest
        if self.chunked:
            self.raw += data
            out = b""
            while True:
                if self.cstate == "size":
                    i = self.raw.find(b"\r\n")
                    if i < 0:
                        break
                    size = int(self.raw[:i].split(b";")[0], 16)
                    self.raw = self.raw[i + 2:]
                    if size == 0:
                        self.cstate = "done"
                        break
                    self.cleft, self.cstate = size, "data"
                elif self.cstate == "data":
                    take = self.raw[:self.cleft]
                    out += take
                    self.raw = self.raw[len(take):]
                    self.cleft -= len(take)
                    if self.cleft:
                        break
                    self.cstate = "crlf"
                elif self.cstate == "crlf":
                    if len(self.raw) < 2:
                        break
                    self.raw = self.raw[2:]
                    self.cstate = "size"
                else:
                    break
            data = out
        self.body += data
        self._text(data, final=self.cstate == "done")
        if self.cstate == "done" or (self.length is not None and len(self.body) >= self.length):
            self.eof = True

    def _text(self, data, final):
        self.text += self.dec.decode(data, final)
        while True:
            i = min([j for j in (self.text.find("\r"), self.text.find("\n")) if j >= 0], default=-1)
            if i < 0:
                break
            if self.text[i] == "\r" and i == len(self.text) - 1 and not final:
                break                # may be the first half of CRLF
            line = self.text[:i]
            step = 2 if self.text[i:i + 2] == "\r\n" else 1
            self.text = self.text[i + step:]
            self._line(line)

    def _line(self, line):
        now = time.monotonic()
        self.lines.append((now, line))
        if line == "":
            fl = [(k, v) for k, v in self.fields if k != "retry"]
            if fl and not any(k == "data" for k, _ in fl):
                # WHATWG: no data, no event; an id still moves the client's
                # last event id (the position a live stream starts after).
                self.blocks.append(fl)
                if any(k == "id" for k, _ in fl):
                    self.positions.append([v for k, v in fl if k == "id"][-1])
            elif any(k in ("id", "event", "data") for k, _ in fl):
                ev = {"fields": fl, "t": now, "id": None, "event": None, "datas": []}
                for k, v in fl:
                    if k == "data":
                        ev["datas"].append(v)
                    elif k in ("id", "event"):
                        ev[k] = v
                ev["data"] = "\n".join(ev["datas"])
                self.events.append(ev)
            self.fields = []
            return
        if line.startswith(":"):
            self.comments.append((now, line))
            return
        k, _, v = line.partition(":")
        if v.startswith(" "):
            v = v[1:]
        if k == "retry":
            self.retries.append(v)
        self.fields.append((k, v))

    # -- waiting
    def pump(self, timeout):
        if self.eof:
            time.sleep(min(timeout, 0.05))
            return
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if r:
            self.on_readable()

    def wait(self, pred, timeout, what):
        end = time.monotonic() + timeout
        while not pred():
            left = end - time.monotonic()
            if left <= 0:
                raise Fail(f"timed out after {timeout:g}s waiting for {what}; status {self.status}, "
                           f"events {short([e['fields'] for e in self.events])}, tail {short(self.body[-300:])}")
            if self.eof and not pred():
                raise Fail(f"stream ended while waiting for {what}; status {self.status}, "
                           f"body {short(self.body[-400:])}")
            self.pump(min(left, 0.2))

    def open(self, timeout=5.0):
        """Waits for the head and the retry field: the stream is then open."""
        self.wait(lambda: self.status is not None, timeout, "response head")
        check(self.status == 200, f"expected 200, got {self.status}: {short(self.body)} "
                                  f"(head {self.headers})")
        self.wait(lambda: self.retries, timeout, "the retry: field at stream open")
        return self

    def wait_events(self, n, timeout=5.0):
        self.wait(lambda: len(self.events) >= n, timeout, f"{n} events")
        return self.events[:n]

    def quiet(self, seconds):
        """Reads for a while, to catch anything extra (duplicates)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self.eof:
            self.pump(end - time.monotonic())

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def http_once(port, path, method="GET", headers=None, timeout=5.0):
    """A request whose response ends (errors): returns (status, headers, body)."""
    s = Stream(port, path, headers=headers, method=method)
    try:
        s.wait(lambda: s.status is not None, timeout, "response head")
        if s.status == 200:
            return s.status, s.headers, s.body
        s.wait(lambda: s.eof or (s.length is not None and len(s.body) >= s.length), timeout,
               "end of the error body")
        return s.status, s.headers, s.body
    finally:
        s.close()


# ------------------------------------------------------------ FastCGI client
def fcgi_open(address, params, timeout=5.0, rcvbuf=None):
    """Connects a bare FastCGI client (responder role) and sends one
    request; returns the socket, unread. address: (host, port) or a unix
    path. rcvbuf: a small receive buffer, for a client that reads slowly."""
    def rec(typ, content):
        return bytes([1, typ, 0, 1, len(content) >> 8, len(content) & 255, 0, 0]) + content

    def nv(k, v):
        out = b""
        for x in (k, v):
            n = len(x)
            out += bytes([n]) if n < 128 else (n | 0x80000000).to_bytes(4, "big")
        return out + k + v

    fam = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(address)
    body = b"".join(nv(k.encode(), v.encode()) for k, v in params.items())
    s.sendall(rec(1, bytes([0, 1, 0, 0, 0, 0, 0, 0])) + rec(4, body) + rec(4, b"") + rec(5, b""))
    return s


def fcgi_request(address, params, timeout=5.0, until=None):
    """A bare FastCGI client (responder role) for checks without a web
    server. address: (host, port) or a unix path. Returns the stdout bytes
    once `until` is found in them, or when the request ends."""
    s = fcgi_open(address, params, timeout)
    buf, out, end = b"", b"", time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            if not d:
                break
            buf += d
            while len(buf) >= 8:
                clen, plen = (buf[4] << 8) | buf[5], buf[6]
                if len(buf) < 8 + clen + plen:
                    break
                typ, content = buf[1], buf[8:8 + clen]
                buf = buf[8 + clen + plen:]
                if typ == 6:
                    out += content
                elif typ == 3:
                    return out
            if until is not None and until in out:
                return out
    finally:
        s.close()
    return out


# ------------------------------------------------------------ node client
class NodeJsonLines:
    """A node script that prints one JSON object per line: collects them."""

    def _start_reading(self):
        self.lines = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for raw in self.p.stdout:
            try:
                self.lines.append(json.loads(raw))
            except ValueError:
                self.lines.append({"type": "junk", "line": raw.decode("utf-8", "replace")})


class NodeES(NodeJsonLines):
    """es_client.mjs: the npm eventsource v4 client, one JSON line per event."""

    def __init__(self, url, count, timeout_ms):
        self.p = PROCS.start(["node", ES_CLIENT, url, "--count", str(count),
                              "--timeout-ms", str(timeout_ms)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=HERE)
        self.err = b""
        self._start_reading()

    def events(self, kind="event"):
        return [x for x in self.lines if x.get("type") == kind]

    def wait(self, pred, timeout, what):
        try:
            wait_until(pred, timeout, what)
        except Fail as e:
            raise Fail(f"{e}; node said {short(self.lines, 600)}")

    def finish(self, timeout):
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            Procs.stop(self.p)
            raise Fail(f"node client did not exit; said {short(self.lines, 600)}")
        self.t.join(2)
        self.err = self.p.stderr.read()
        check(self.p.returncode == 0, f"node client exit {self.p.returncode}: {self.err[-400:]!r}")
        return self.events()

    def kill(self):
        Procs.stop(self.p)


class NodeWS(NodeJsonLines):
    """ws_driver.mjs: the npm ws client, commands on stdin, events on stdout."""

    def __init__(self, url, deflate=False, threshold=None, timeout_ms=30000):
        argv = ["node", WS_DRIVER, url, "--timeout-ms", str(timeout_ms)]
        if deflate:
            argv.append("--deflate")
        if threshold is not None:
            argv += ["--threshold", str(threshold)]
        self.url = url
        self.p = PROCS.start(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=HERE)
        self._start_reading()

    def of(self, kind):
        return [x for x in list(self.lines) if x.get("type") == kind]

    def messages(self):
        return self.of("message")

    def datas(self):
        return [m["data"] for m in self.messages()]

    def said(self):
        return short(self.lines[-12:], 900)

    def wait(self, pred, timeout, what):
        try:
            return wait_until(pred, timeout, what, interval=0.02)
        except Fail as e:
            raise Fail(f"{self.url}: {e}; node said {self.said()}")

    def open(self, timeout=8.0):
        self.wait(lambda: self.of("open") or self.of("close") or self.of("http") or
                  self.p.poll() is not None, timeout, "WebSocket open")
        check(self.of("open"), f"{self.url}: no open; node said {self.said()}")
        return self.of("open")[0]

    def wait_messages(self, n, timeout=5.0):
        self.wait(lambda: len(self.messages()) >= n, timeout, f"{n} messages")
        return self.datas()[:n]

    def send(self, **cmd):
        self.p.stdin.write((json.dumps(cmd) + "\n").encode())
        self.p.stdin.flush()

    def publish(self, obj):
        self.send(op="send", text=obj if isinstance(obj, str) else json.dumps(obj))

    def check_open(self):
        closes = self.of("close") + self.of("error")
        check(not closes and self.p.poll() is None,
              f"{self.url}: connection should still be open; node said {self.said()}")

    def quit(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        Procs.stop(self.p, wait_s=2)


# ------------------------------------------------------------ the servers
class Responder:
    def __init__(self, env, name, listen, extra=()):
        self.env, self.name, self.listen = env, name, listen
        self.argv = [BIN, "--db", env.db.path, "--listen", listen,
                     "--heartbeat", str(HEARTBEAT_S), "--retry", str(RETRY_MS), *extra]
        self.p = None
        self.logpath = os.path.join(env.dir, f"{name}.log")
        self.starts = 0

    @property
    def pid(self):
        return self.p.pid

    def start(self, timeout=5.0):
        self.starts += 1
        logf = open(self.logpath, "ab")
        logf.write(f"---- start {self.starts}: {' '.join(self.argv)}\n".encode())
        logf.flush()
        self.p = PROCS.start(self.argv, stdout=logf, stderr=logf)
        logf.close()
        if self.listen.startswith("/"):
            ready = lambda: unix_listening(self.listen) or self.p.poll() is not None
        else:
            port = int(self.listen.rsplit(":", 1)[1])
            ready = lambda: tcp_listening(port) or self.p.poll() is not None
        wait_until(ready, timeout, f"{self.name} to listen on {self.listen}")
        if self.p.poll() is not None:
            raise Fail(f"{self.name} exited with {self.p.returncode} at start: {self.log_tail()}")
        if self.listen.startswith("/"):
            # The socket is 0660 (--socket-mode's default); Apache's children
            # run as www-data: give the socket that group, as README says.
            os.chown(self.listen, -1, grp.getgrnam("www-data").gr_gid)

    def kill9(self):
        os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait(5)

    def log_tail(self, n=15):
        try:
            with open(self.logpath, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""


class Target:
    """A front end and path under test: which port and URL prefix, and which
    responder process serves it."""

    def __init__(self, name, port, path, responder, full):
        self.name, self.port, self.path, self.responder, self.full = name, port, path, responder, full

    def url(self, query=""):
        return self.path + ("?" + query if query else "")

    def http_url(self, query=""):
        return f"http://127.0.0.1:{self.port}{self.url(query)}"

    def stream(self, query="", headers=None):
        return Stream(self.port, self.url(query), headers=headers)

    def ch(self, case):
        """A channel name of its own for each case and target."""
        return f"{self.name}.{case}.{os.urandom(3).hex()}"

    def responder_pid(self):
        return self.responder.pid if self.responder else None


class Env:
    def __init__(self, keep):
        self.dir = tempfile.mkdtemp(prefix="litepush-it-")
        os.chmod(self.dir, 0o755)
        self.keep = keep
        self.pg = None
        if STORE == "pg":
            from pgserver import PgServer
            self.pg = PgServer(self.dir)
            self.db = PgDB(self.pg)
        else:
            self.db = DB(os.path.join(self.dir, "push.db"))
        self.fport = free_port()
        self.aport = free_port()
        self.lport = free_port()
        self.wsport = free_port()       # litepush-ws (WS_MAIN_ARGS), when it is built
        self.wsport_ro = free_port()    # a second litepush-ws with WS_RO_ARGS
        self.closed_port = free_port()  # nothing listens: the 503 check
        self.fport_auth = free_port()   # litepush.fcgi --auth-keys (auth_cases.py)
        self.wsport_auth = free_port()  # litepush-ws --auth-keys
        self.keys_path = os.path.join(self.dir, "keys")
        self.auth_fcgi = self.auth_ws = None
        self.sock = os.path.join(self.dir, "fcgi.sock")
        self.spawn_sock = os.path.join(self.dir, "spawn.sock")
        self.main = self.unix = self.ws = self.ws_ro = None
        self.apache = self.lighttpd = None
        self.targets = []

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def apache_conf(self):
        d = self.dir
        mods = ["mpm_event", "authz_core", "authz_host", "proxy", "proxy_fcgi", "proxy_wstunnel",
                "proxy_http", "env"]
        loads = "\n".join(f"LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so" for m in mods)
        return f"""# generated by tests/integration/run.py
ServerRoot "{d}"
ServerName 127.0.0.1
Listen 127.0.0.1:{self.aport}
PidFile "{d}/apache.pid"
DefaultRuntimeDir "{d}/apache-run"
ErrorLog "{d}/apache-error.log"
LogLevel warn
User www-data
Group www-data
{loads}
# 200 concurrent streams + 50 in the cleanup case, each holding a thread.
StartServers        2
ServerLimit         4
ThreadLimit         128
ThreadsPerChild     128
MaxRequestWorkers   512
MinSpareThreads     32
MaxSpareThreads     512
MaxConnectionsPerChild 0
Timeout 30
ListenBacklog 511
DocumentRoot "{d}/www"
<Directory />
    Require all granted
</Directory>
LogFormat "%h %t \\"%r\\" %>s %b %D" lp
CustomLog "{d}/apache-access.log" lp
ProxyPass /events fcgi://127.0.0.1:{self.fport}/ flushpackets=on timeout=30 retry=0
ProxyPass /unix/events unix:{self.sock}|fcgi://localhost/ flushpackets=on timeout=30 retry=0
ProxyPass /closed fcgi://127.0.0.1:{self.closed_port}/ flushpackets=on timeout=5 retry=0
ProxyPass /ws/metrics http://127.0.0.1:{self.wsport}/ws/metrics retry=0
ProxyPass /ws ws://127.0.0.1:{self.wsport}/ws retry=0
ProxyPass /ro/ws ws://127.0.0.1:{self.wsport_ro}/ws retry=0
ProxyPass /auth/events fcgi://127.0.0.1:{self.fport_auth}/ flushpackets=on timeout=30 retry=0
ProxyPass /auth/ws ws://127.0.0.1:{self.wsport_auth}/ws retry=0
<Location /auth/events>
    # As apache-conf/litepush-apache.conf: pass Authorization to FastCGI.
    CGIPassAuth On
</Location>
<LocationMatch "^/(unix/|auth/)?events">
    SetEnv no-gzip 1
    SetEnv nokeepalive 1
</LocationMatch>
"""

    def lighttpd_conf(self):
        d = self.dir
        spawn = f"{BIN} --heartbeat {HEARTBEAT_S} --retry {RETRY_MS}"
        return f"""# generated by tests/integration/run.py
server.document-root = "{d}/www"
server.bind = "127.0.0.1"
server.port = {self.lport}
server.errorlog = "{d}/lighttpd-error.log"
server.modules = ( "mod_fastcgi", "mod_proxy", "mod_accesslog" )
accesslog.filename = "{d}/lighttpd-access.log"
server.stream-response-body = 2
server.max-fds = 4096
server.max-connections = 1500
fastcgi.server = (
    "/events" => (( "host" => "127.0.0.1", "port" => {self.fport},
                    "check-local" => "disable", "disable-time" => 1 )),
    "/spawn/events" => ((
        "socket" => "{self.spawn_sock}",
        "bin-path" => "{spawn}",
        "bin-environment" => ( "LITEPUSH_DB" => "{self.db.path}", "LITEPUSH_IT" => "{d}" ),
        "max-procs" => 1,
        "check-local" => "disable" )),
    "/closed" => (( "host" => "127.0.0.1", "port" => {self.closed_port},
                    "check-local" => "disable", "disable-time" => 1 )),
    "/auth/events" => (( "host" => "127.0.0.1", "port" => {self.fport_auth},
                         "check-local" => "disable", "disable-time" => 1 ))
)
proxy.server = ( "/ws" => (( "host" => "127.0.0.1", "port" => {self.wsport} )),
                  "/ro/ws" => (( "host" => "127.0.0.1", "port" => {self.wsport_ro} )),
                  "/auth/ws" => (( "host" => "127.0.0.1", "port" => {self.wsport_auth} )) )
proxy.header = ( "upgrade" => "enable" )
"""

    def start_ws(self):
        """The two litepush-ws processes the /ws and /ro/ws lines of both
        configs point at."""
        self.ws = self.start_ws_proc("responder-ws", self.wsport, WS_MAIN_ARGS)
        self.ws_ro = self.start_ws_proc("responder-ws-ro", self.wsport_ro, WS_RO_ARGS)

    def start_auth(self, fcgi_args, ws_args, keys_text):
        """The responder and helper with --auth-keys behind /auth/events and
        /auth/ws (auth_cases.py)."""
        with open(self.keys_path, "w") as f:
            f.write(keys_text)
        self.auth_fcgi = Responder(self, "responder-auth", f"127.0.0.1:{self.fport_auth}",
                                   ["--auth-keys", self.keys_path, *fcgi_args])
        self.auth_fcgi.start()
        self.auth_ws = self.start_ws_proc("responder-ws-auth", self.wsport_auth,
                                          ["--auth-keys", self.keys_path, *ws_args])

    def start_ws_proc(self, name, port, args):
        logf = open(os.path.join(self.dir, f"{name}.log"), "ab")
        argv = [WS_BIN, "--db", self.db.path, "--listen", f"127.0.0.1:{port}", *args]
        logf.write(f"---- start: {' '.join(argv)}\n".encode())
        logf.flush()
        p = PROCS.start(argv, stdout=logf, stderr=logf)
        logf.close()
        wait_until(lambda: tcp_listening(port) or p.poll() is not None, 5, f"{name} to listen")
        check(p.poll() is None, f"{name} exited with {p.returncode}: {self.tail(name)}")
        return p

    def start_web(self):
        os.makedirs(os.path.join(self.dir, "www"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "apache-run"), exist_ok=True)
        self.write("apache.conf", self.apache_conf())
        self.write("lighttpd.conf", self.lighttpd_conf())
        self.start_server("apache", wait=False)
        self.start_server("lighttpd", wait=False)
        for name in ("apache", "lighttpd"):
            self.wait_server(name)

    def start_server(self, name, wait=True):
        """(Re)starts one front end from the config start_web wrote."""
        log = open(os.path.join(self.dir, f"{name}-stderr.log"), "ab")
        if name == "apache":
            env = dict(os.environ, APACHE_RUN_DIR=os.path.join(self.dir, "apache-run"),
                       APACHE_LOCK_DIR=os.path.join(self.dir, "apache-run"),
                       APACHE_LOG_DIR=self.dir, APACHE_PID_FILE=os.path.join(self.dir, "apache.pid"),
                       APACHE_RUN_USER="www-data", APACHE_RUN_GROUP="www-data")
            self.apache = PROCS.start(["/usr/sbin/apache2", "-f", os.path.join(self.dir, "apache.conf"),
                                       "-DFOREGROUND"], stdout=log, stderr=log, env=env)
        else:
            self.lighttpd = PROCS.start(["lighttpd", "-D", "-f", os.path.join(self.dir, "lighttpd.conf")],
                                        stdout=log, stderr=log, env=dict(os.environ, LITEPUSH_IT=self.dir))
        log.close()
        if wait:
            self.wait_server(name)

    def wait_server(self, name, timeout=10):
        p, port = (self.apache, self.aport) if name == "apache" else (self.lighttpd, self.lport)
        wait_until(lambda: tcp_listening(port) or p.poll() is not None, timeout, f"{name} to listen")
        check(p.poll() is None, f"{name} exited with {p.returncode}: {self.tail(name)}")

    def kill9_server(self, name):
        """kill -9 of a front end: Apache's parent and every child (its process
        group), or lighttpd; a responder lighttpd spawned lives on, as after a
        real crash."""
        p = self.apache if name == "apache" else self.lighttpd
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(5)

    def tail(self, name, n=20):
        out = []
        for f in sorted(os.listdir(self.dir)):
            if f.startswith(name) and f.endswith(".log"):
                with open(os.path.join(self.dir, f), "rb") as fh:
                    lines = fh.read().splitlines()[-n:]
                if lines:
                    out.append(f"== {f}\n" + "\n".join(l.decode("utf-8", "replace") for l in lines))
        return "\n".join(out)

    def cleanup(self):
        PROCS.stop_all()
        if self.pg is not None:
            self.pg.stop("immediate")
        for pid in pids_with_env(self.dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
