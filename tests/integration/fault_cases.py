"""Fault cases for the integration tests (issue 10, item 9): the disk
filling up under publishes, the database file deleted or made read-only
while both programs run. Each case runs its own litepush-ws and responder
on a database in a small tmpfs that it mounts (root only: without the right
to mount, the case is skipped with a SKIP line saying so).

run.py sets ENV and appends FAULT_CASES to its case list (scope "cli": once)."""
import json
import os
import subprocess
import time

from harness import (BIN, DB, PROCS, WS_BIN, Fail, Skip, check, fcgi_request, free_port, short,
                     tcp_listening, wait_until)
from ws_cases import NodeWS

ENV = None          # set by run.py


class Tmpfs:
    """A small tmpfs of our own, unmounted (lazily) at the end."""

    def __init__(self, name, size_kb):
        self.dir = os.path.join(ENV.dir, name)
        os.makedirs(self.dir, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0755", "tmpfs",
                            self.dir], capture_output=True, text=True)
        if r.returncode != 0:
            raise Skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}); "
                       "run as root to test a full disk")
        self.filler = os.path.join(self.dir, "filler")

    def fill(self):
        """Takes every free block."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            for size in (65536, 512, 1):
                try:
                    while True:
                        os.write(fd, b"\0" * size)
                except OSError:
                    pass
        finally:
            os.close(fd)

    def free(self):
        os.unlink(self.filler)

    def close(self):
        subprocess.run(["umount", "-l", self.dir], capture_output=True)


class Pair:
    """litepush-ws (publishing allowed) and the responder on one database."""

    def __init__(self, db_path, tag):
        self.db = DB(db_path)
        self.tag = tag
        self.wsport, self.fport = free_port(), free_port()
        self.log = os.path.join(ENV.dir, f"fault-{tag}.log")
        self.ws = self._start([WS_BIN, "--db", db_path, "--listen", f"127.0.0.1:{self.wsport}",
                               "--allow-publish", "--ping", "1", "--max-message", "2000000"],
                              self.wsport)
        self.fcgi = self._start([BIN, "--db", db_path, "--listen", f"127.0.0.1:{self.fport}",
                                 "--heartbeat", "1"], self.fport)

    def _start(self, argv, port):
        with open(self.log, "ab") as logf:
            logf.write(f"---- start: {' '.join(argv)}\n".encode())
            logf.flush()
            p = PROCS.start(argv, stdout=logf, stderr=logf)
        wait_until(lambda: tcp_listening(port) or p.poll() is not None, 5, f"{argv[0]} to listen")
        check(p.poll() is None, f"{' '.join(argv)} exited with {p.returncode}: {self.tail()}")
        return p

    def tail(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")[-1500:]

    def url(self, q):
        return f"ws://127.0.0.1:{self.wsport}/ws?{q}"

    def sse_ids(self, channel, after, until_id):
        """A resume through the responder (bare FastCGI): the ids it sends."""
        params = {"REQUEST_METHOD": "GET", "QUERY_STRING": f"channel={channel}&lastEventId={after}",
                  "SCRIPT_NAME": "/events", "SERVER_PROTOCOL": "HTTP/1.1",
                  "GATEWAY_INTERFACE": "CGI/1.1"}
        out = fcgi_request(("127.0.0.1", self.fport), params, timeout=3,
                           until=f"id: {until_id}\n".encode())
        return [int(l[4:]) for l in out.decode("utf-8", "replace").split("\n") if l.startswith("id: ")]

    def alive(self):
        check(self.ws.poll() is None, f"litepush-ws exited ({self.ws.returncode}): {self.tail()}")
        check(self.fcgi.poll() is None, f"litepush.fcgi exited ({self.fcgi.returncode}): {self.tail()}")

    def stop(self):
        for p in (self.ws, self.fcgi):
            PROCS.stop(p)


def _rows(got):
    return [(m["id"], m.get("data") if len(m.get("data", "")) < 40 else len(m["data"]))
            for m in got if isinstance(m, dict) and "id" in m]


def disk_full(_):
    """The disk fills up (a 3 MB tmpfs) while clients publish: the publish
    that does not fit gets an error frame and stores nothing (the database
    stays intact), every stream stays open, and once space returns
    publishing works again and every row reaches every subscriber once."""
    fs = Tmpfs("full", 3072)
    pair = subs = None
    try:
        pair = Pair(os.path.join(fs.dir, "push.db"), "disk-full")
        c = "full"
        pub, sub = NodeWS(pair.url(f"channel={c}")), NodeWS(pair.url(f"channel={c}"))
        subs = (pub, sub)
        for n in subs:
            n.open()
        pub.publish({"channel": c, "data": "before"})
        first = sub.wait_messages(1)
        big = "x" * 400000
        fs.fill()
        pub.publish({"channel": c, "data": big})
        pub.wait(lambda: any(isinstance(m, dict) and "error" in m for m in pub.datas()), 5,
                 "an error frame for the publish that does not fit")
        err = [m["error"] for m in pub.datas() if isinstance(m, dict) and "error" in m][0]
        time.sleep(2.5)                       # pings every second: the streams must live on
        for n in subs:
            n.check_open()
        pair.alive()
        count = pair.db.run(f"SELECT count(*), sum(length(data)) FROM messages WHERE channel='{c}';")
        check(count.strip() == "1|6", f"the failed publish left rows behind: {count.strip()}")
        check(pair.db.run("PRAGMA integrity_check;").strip() == "ok", "integrity_check failed")
        fs.free()
        pub.publish({"channel": c, "data": big})
        sub.wait_messages(2, timeout=8)
        pair.db.run(f"INSERT INTO messages(channel, data) VALUES('{c}', 'by sql');")
        got_sub = sub.wait_messages(3, timeout=8)
        ids = pair.db.ids(c)
        check(len(ids) == 3, f"expected 3 rows after recovery, found {ids}")
        want = [(ids[0], "before"), (ids[1], len(big)), (ids[2], "by sql")]
        check(_rows(got_sub) == want, f"subscriber: expected {want}, got {_rows(got_sub)}")
        got_pub = [m for m in pub.datas() if isinstance(m, dict) and "id" in m]
        check(_rows(got_pub) == want, f"publisher: expected {want}, got {_rows(got_pub)}")
        sse = pair.sse_ids(c, 0, ids[2])
        check(sse == ids, f"SSE resume after recovery: expected {ids}, got {sse}")
        log = pair.tail()
        check("full" in log, f"no log line says the disk is full: {short(log, 600)}")
        return f"error frame {err!r}; first row {first[0]['id']}"
    finally:
        for n in subs or ():
            n.quit()
        if pair:
            pair.stop()
        fs.close()


def db_deleted(_):
    """The database file is deleted under both programs: a clear log line;
    streams stay open; a publish is refused with an error frame (it would
    go into a file no one can open again); when a database appears at the
    path again (an application or the programs recreate it), both follow
    it and end their streams so clients resume against it."""
    fs = Tmpfs("deleted", 8192)
    pair = subs = None
    try:
        path = os.path.join(fs.dir, "push.db")
        pair = Pair(path, "db-deleted")
        c = "gone"
        pub, sub = NodeWS(pair.url(f"channel={c}")), NodeWS(pair.url(f"channel={c}"))
        subs = (pub, sub)
        for n in subs:
            n.open()
        r1 = pair.db.insert_rows([(c, "one", None), (c, "two", None), (c, "before", None)])[-1]
        sub.wait_messages(3)
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(path + suffix)
            except FileNotFoundError:
                pass
        wait_until(lambda: "deleted" in pair.tail(), 3, "a log line saying the database was deleted")
        pub.publish({"channel": c, "data": "into the void"})
        pub.wait(lambda: any(isinstance(m, dict) and "error" in m for m in pub.datas()), 5,
                 "an error frame for a publish to a deleted database")
        err = [m["error"] for m in pub.datas() if isinstance(m, dict) and "error" in m][0]
        time.sleep(1.5)
        for n in subs:
            n.check_open()
        pair.alive()
        # An application creates the log again: both programs follow it.
        subprocess.run(["sqlite3", path, "PRAGMA journal_mode=WAL;"], capture_output=True)
        with open(os.path.join(os.path.dirname(__file__), "..", "..", "sql", "schema.sql")) as f:
            pair.db.run(f.read())
        sub.wait(lambda: sub.of("close"), 5, "the stream to end (close 1012) when the log is back")
        code = sub.of("close")[0].get("code")
        check(code == 1012, f"expected close 1012 when a new database appears, got {code}")
        r2 = pair.db.insert(c, "new log")
        again = NodeWS(pair.url(f"channel={c}&lastEventId={r1}"))
        subs = (pub, sub, again)
        again.open()
        got = again.wait_messages(1)
        check(isinstance(got[0], dict) and got[0].get("event") == "litepush.reset",
              f"a resume into the new log should start with litepush.reset, got {short(got)}")
        pair.alive()
        return f"error frame {err!r}; new log row {r2}"
    finally:
        for n in subs or ():
            n.quit()
        if pair:
            pair.stop()
        fs.close()


def db_readonly(_):
    """A database on a read-only file system (a read-only bind mount; file
    modes do not stop root), even with its -wal and -shm files present (with
    which SQLite would open it read-only): each program exits non-zero at
    start with a reason that says read-only, and the database is left as
    it was."""
    fs = Tmpfs("readonly", 8192)
    ro_dir = os.path.join(ENV.dir, "readonly-ro")
    os.makedirs(ro_dir, exist_ok=True)
    mounted = False
    try:
        first = Pair(os.path.join(fs.dir, "push.db"), "db-readonly-setup")
        first.db.insert("ro", "before")
        first.stop()
        for args in (["--bind", fs.dir, ro_dir], ["-o", "remount,bind,ro", ro_dir]):
            r = subprocess.run(["mount", *args], capture_output=True, text=True)
            if r.returncode != 0:
                raise Skip(f"cannot make a read-only bind mount: {r.stderr.strip()}")
            mounted = True
        db = os.path.join(ro_dir, "push.db")
        # A reader on the writable path keeps the -wal and -shm files there,
        # with which SQLite could open the log read-only: still refused.
        import sqlite3
        reader = sqlite3.connect(os.path.join(fs.dir, "push.db"), isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM messages").fetchall()
        check(os.path.exists(os.path.join(ro_dir, "push.db-shm")), "no -shm file beside the log")
        notes = []
        for argv in ([WS_BIN, "--db", db, "--listen", f"127.0.0.1:{free_port()}"],
                     [BIN, "--db", db, "--listen", f"127.0.0.1:{free_port()}"]):
            try:
                r = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                                   stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                raise Fail(f"{argv[0]} still runs on a read-only database after 30 s")
            check(r.returncode != 0 and "read-only" in r.stderr,
                  f"{argv[0]}: expected a non-zero exit naming read-only, got {r.returncode}: "
                  f"{r.stderr.strip()!r}")
            notes.append(r.stderr.strip().splitlines()[-1])
        reader.close()
        out = DB(os.path.join(fs.dir, "push.db")).run("SELECT group_concat(data) FROM messages;")
        check(out.strip() == "before", f"the database changed: {out!r}")
        return notes[0]
    finally:
        if mounted:
            subprocess.run(["umount", "-l", ro_dir], capture_output=True)
        fs.close()


FAULT_CASES = [
    ("fault.disk_full", disk_full, 40, "cli"),
    ("fault.db_deleted", db_deleted, 40, "cli"),
    ("fault.db_readonly", db_readonly, 70, "cli"),
]
