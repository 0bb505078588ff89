#!/usr/bin/env python3
"""Admin tooling tests: sql/admin.sql, the publishing examples in
sql/publish/, litepush-prune (retention, pruned_through, concurrency with a
publisher), and over litepush-ws the resume gap signal after pruning and a
restored log. Built on the integration harness (tests/integration:
processes, ports, waits, the check tally and the raw WebSocket client);
needs the sqlite3 shell, python3 and the built programs (php only when
installed). The last line is "admin: N passed, N failed"; the exit status
is non-zero on any failure."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

from harness import PROCS, ROOT, WS_BIN, Fail, Procs, Tally, check, free_port, tcp_listening, wait_until  # noqa: E402
from ws_raw import OP_CLOSE, RawWS  # noqa: E402

PRUNE = os.environ.get("LITEPUSH_PRUNE") or os.path.join(ROOT, "litepush-prune")
SCHEMA = os.path.join(ROOT, "sql", "schema.sql")
ADMIN_SQL = os.path.join(ROOT, "sql", "admin.sql")
PUBLISH = os.path.join(ROOT, "sql", "publish")
NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"

T = Tally("admin")
TMP = None


def tmp(name):
    return os.path.join(TMP, name)


def sh(argv, stdin=None, env=None):
    """Runs argv; returns (exit status, stdout, stderr) as text."""
    r = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, timeout=120)
    return r.returncode, r.stdout, r.stderr


def q(db, sql):
    """The sqlite3 shell's output for sql, without the final newline."""
    return sh(["sqlite3", "-cmd", ".timeout 5000", db, sql])[1].rstrip("\n")


def new_db(path):
    with open(SCHEMA) as f:
        sh(["sqlite3", path], stdin=f.read())
    return path


def admin(db):
    """Runs sql/admin.sql; true when it exits 0 and prints nothing."""
    with open(ADMIN_SQL) as f:
        rc, out, err = sh(["sqlite3", db], stdin=f.read())
    if rc == 0 and not out and not err:
        return True
    print(out + err, end="")
    return False


def fill(db, n, channel_expr, created_expr):
    """Inserts n rows; i runs 1..n in the expressions."""
    q(db, f"""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})
              INSERT INTO messages(channel, event, data, created_at)
              SELECT {channel_expr}, 'e', 'row ' || i, {created_expr} FROM n""")


def check_ok(name, cond, why=""):
    if cond:
        T.ok(name)
    else:
        T.bad(name, why)


class WsServer:
    """litepush-ws on a free port, its log in the temp dir."""

    def __init__(self, db):
        self.port = free_port()
        self.log = open(tmp("ws.log"), "ab")
        self.p = PROCS.start([WS_BIN, "--db", db, "--listen", f"127.0.0.1:{self.port}"],
                             stdout=self.log, stderr=self.log)

    def ready(self):
        try:
            wait_until(lambda: tcp_listening(self.port) or self.p.poll() is not None, 5,
                       "litepush-ws to listen")
        except Fail:
            return False
        return self.p.poll() is None

    def frames(self, path, count):
        """The first count data frames on path, parsed as JSON."""
        ws = RawWS(self.port, path).open()
        try:
            return [json.loads(ws.recv_data()) for _ in range(count)]
        finally:
            ws.close()

    def stop(self):
        Procs.stop(self.p)
        self.log.close()

    def log_tail(self):
        with open(tmp("ws.log"), errors="replace") as f:
            return "".join(f.readlines()[-3:])


def admin_sql():
    print("== admin.sql", flush=True)
    ws = WsServer(tmp("fresh.db"))
    check_ok("litepush-ws creates a fresh database", ws.ready(), ws.log_tail())
    ws.stop()
    check_ok("admin.sql on a fresh database", admin(tmp("fresh.db")))
    check_ok("admin.sql again (idempotent)", admin(tmp("fresh.db")))
    T.check("views on an empty log", q(tmp("fresh.db"), """SELECT * FROM litepush_last_id;
        SELECT count(*) FROM litepush_recent; SELECT count(*) FROM litepush_rates;
        SELECT count(*) FROM litepush_hourly; SELECT bytes > 0 FROM litepush_size"""),
            "0|0|0|0\n0\n0\n0\n1")

    # 1000 rows, one a minute from an hour boundary (2023-11-14 22:00 UTC):
    # a = ids 1-500, b = 501-800, c = 801-803, 'd e' = 804-1000.
    base = 1699999200000
    pop = new_db(tmp("pop.db"))
    fill(pop, 1000, "CASE WHEN i <= 500 THEN 'a' WHEN i <= 800 THEN 'b' WHEN i <= 803 THEN 'c' "
         "ELSE 'd e' END", f"{base} + (i - 1) * 60000")
    q(pop, "INSERT INTO messages(channel, data) VALUES ('a','now1'),('a','now2'),('a','now3')")
    check_ok("admin.sql on a populated database", admin(pop))
    check_ok("admin.sql on a populated database, again", admin(pop))
    T.check("litepush_channels", q(pop, "SELECT channel, messages, first_id, last_id FROM litepush_channels"),
            "a|503|1|1003\nb|300|501|800\nc|3|801|803\nd e|197|804|1000")
    T.check("litepush_channels times", q(pop, "SELECT first_utc FROM litepush_channels WHERE channel = 'b'"),
            "2023-11-15 06:20:00")
    T.check("litepush_last_id", q(pop, "SELECT * FROM litepush_last_id"), "1003|1003|1|0")
    T.check("litepush_recent: 10 per channel, newest first",
            q(pop, "SELECT channel, count(*), max(id) FROM litepush_recent GROUP BY channel"),
            "a|10|1003\nb|10|800\nc|3|803\nd e|10|1000")
    T.check("litepush_recent order and preview", q(pop, "SELECT id, event, preview FROM litepush_recent LIMIT 2"),
            "1003|message|now3\n1002|message|now2")
    T.check("litepush_rates counts the last minute",
            q(pop, "SELECT channel, last_minute, last_hour, last_day FROM litepush_rates"), "a|3|3|3")
    T.check("litepush_hourly", q(pop, "SELECT count(*), sum(messages), max(messages) FROM litepush_hourly "
                                      "WHERE hour_utc < '2024'"), "17|1000|60")
    T.check("litepush_hourly newest hour", q(pop, "SELECT hour_utc, messages, channels FROM litepush_hourly "
                                                  "WHERE hour_utc < '2024' LIMIT 1"), "2023-11-15 14:00|40|1")
    T.check("litepush_channel_hourly", q(pop, "SELECT messages, channel FROM litepush_channel_hourly "
                                              "WHERE hour_utc = '2023-11-15 06:00'"), "20|a\n40|b")
    T.check("litepush_size", q(pop, "SELECT bytes = page_count * page_size AND bytes > 0 FROM litepush_size"), "1")
    # The documented history query, taken from the comment in admin.sql.
    history, on, take = [], False, False
    with open(ADMIN_SQL) as f:
        for line in f:
            on = on or line.startswith("-- history_between")
            take = take or (on and line.startswith("--   SELECT"))
            if take:
                history.append(re.sub(r"^--   ?", "", line.rstrip("\n")))
                if line.rstrip().endswith(";"):
                    break
    query = "\n".join(history).rstrip(";")
    T.check("history_between (b, 08:00 to 09:40)", sh(["sqlite3", pop], stdin=f"""\
.param set :channel 'b'
.param set :from '2023-11-15 08:00:00'
.param set :to '2023-11-15 09:40:00'
SELECT count(*), min(id), max(id) FROM ({query});
""")[1], "100|601|700")


def publishing():
    print("== publishing examples", flush=True)
    p = new_db(tmp("pub.db"))
    pub_sh = ["sh", os.path.join(PUBLISH, "publish.sh"), p]
    pub_py = ["python3", os.path.join(PUBLISH, "publish.py"), p]
    text = "it's\nok \"q\""
    T.check("publish.sh: message with quotes and a line break",
            sh(pub_sh + ["we'ird", "up"], stdin=text)[1], "1")
    T.check("publish.sh: stored as text, byte for byte",
            q(p, "SELECT channel, event, typeof(data), hex(data) FROM messages WHERE id = 1"),
            "we'ird|up|text|" + text.encode().hex().upper())
    T.check("publish.sh: no event is NULL",
            sh(pub_sh + ["news"], stdin="hi\n")[1] + q(p, "SELECT event IS NULL, data FROM messages WHERE id = 2"),
            "2\n1|hi")
    T.check("publish.sh --order: order and message together",
            sh(pub_sh + ["--order", "O'Brien", "1999"])[1] +
            q(p, "SELECT * FROM orders; SELECT channel, event, data FROM messages WHERE id = 3"),
            "3\n1|O'Brien|1999\norders|order.created|{\"order\":1,\"customer\":\"O'Brien\",\"total_cents\":1999}")
    T.check("publish.py: message", sh(pub_py + ["news", "", "héllo"])[1] +
            q(p, "SELECT event IS NULL, data FROM messages WHERE id = 4"), "4\n1|héllo")
    T.check("publish.py --order", sh(pub_py + ["--order", "bob", "250"])[1] +
            q(p, "SELECT data FROM messages WHERE id = 5"),
            "order 2 message 5\n{\"order\":2,\"customer\":\"bob\",\"total_cents\":250}")
    # A failing message insert must take the order down with it.
    q(p, "CREATE TRIGGER refuse BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'refused'); END")
    rc = sh(pub_sh + ["--order", "eve", "1"])[0]
    T.check("publish.sh --order: rolled back together", f"{rc}:" + q(p, "SELECT count(*) FROM orders"), "1:2")
    rc = sh(pub_py + ["--order", "eve", "1"])[0]
    T.check("publish.py --order: rolled back together", f"{rc}:" + q(p, "SELECT count(*) FROM orders"), "1:2")
    if shutil.which("php") and sh(["php", "-r", 'exit(extension_loaded("pdo_sqlite") ? 0 : 1);'])[0] == 0:
        pub_php = ["php", os.path.join(PUBLISH, "publish.php"), p]
        rc = sh(pub_php + ["--order", "eve", "1"])[0]
        T.check("publish.php --order: rolled back together", f"{rc}:" + q(p, "SELECT count(*) FROM orders"), "1:2")
        q(p, "DROP TRIGGER refuse")
        T.check("publish.php --order", sh(pub_php + ["--order", "carol", "5"])[1], "order 3 message 6")
        T.check("publish.php: message", sh(pub_php + ["news", "up", "from php"])[1] +
                q(p, "SELECT data FROM messages WHERE id = 7"), "7\nfrom php")
    else:
        print("skip publish.php (no php with pdo_sqlite)", flush=True)


def prune_flags():
    print("== litepush-prune: flags", flush=True)
    d = new_db(tmp("flags.db"))
    env = dict(os.environ, LITEPUSH_DB="")
    for args in ["", f"--db {d}", f"--db {d} --keep-days 1 --keep-rows 1", f"--db {d} --keep-days -1",
                 f"--db {d} --keep-days abc", f"--db {d} --keep-days 36501", f"--db {d} --keep-rows 1x",
                 f"--db {d} --keep-rows 1 --batch 0", f"--db {d} --keep-rows 1 --batch 100001",
                 f"--db {d} --keep-rows 1 --pause -5", f"--db {d} --keep-rows 1 --channel=",
                 f"--db {d} --keep-rows 1 --bogus", f"--db {d} --keep-rows 1 extra", "--keep-rows 1"]:
        rc, _, err = sh([PRUNE, *args.split()], env=env)
        check_ok(f"exit 2: '{args.replace(d, 'DB')}'", rc == 2 and "Try 'litepush-prune --help'" in err, f"rc {rc}")
    rc, out, _ = sh([PRUNE, "--help"])
    documented = sum(1 for ln in out.splitlines()
                     if ln.startswith("EXIT STATUS") or ln.startswith("    2  bad or missing flag"))
    T.check("--help exits 0 and documents exit codes", f"{rc}:{documented}", "0:2")
    rc = sh([PRUNE, "--db", tmp("missing.db"), "--keep-rows", "1"])[0]
    T.check("missing database: exit 1, not created",
            f"{rc}:" + ("created" if os.path.exists(tmp("missing.db")) else ""), "1:")
    with open(tmp("junk.db"), "w") as f:
        f.write("not a database, just text long enough to be read as a header..........\n")
    T.check("not a database: exit 1", sh([PRUNE, "--db", tmp("junk.db"), "--keep-rows", "1"])[0], 1)
    T.check("LITEPUSH_DB stands in for --db",
            sh([PRUNE, "--keep-rows", "1"], env=dict(os.environ, LITEPUSH_DB=d))[0], 0)


def prune_retention():
    print("== litepush-prune: retention", flush=True)
    r = tmp("rows.db")
    shutil.copy(tmp("pop.db"), r)
    out = sh([PRUNE, "--db", r, "--keep-rows", "250", "--dry-run"])[1].rstrip("\n")
    T.check("--dry-run reports and changes nothing", out + "|" + q(r, "SELECT count(*) FROM messages"),
            "litepush-prune: dry run: would delete 753 rows (ids 1-753) from every channel, keeping the "
            "newest 250 rows; pruned_through stays 0|1003")
    rc, out, _ = sh([PRUNE, "--db", r, "--keep-rows", "250", "--batch", "100"])
    T.check("--keep-rows 250 exits 0", rc, 0)
    T.check("--keep-rows keeps the newest 250", q(r, "SELECT count(*), min(id), max(id) FROM messages"), "250|754|1003")
    T.check("--keep-rows sets pruned_through", q(r, "SELECT pruned_through FROM litepush_last_id"), "753")
    T.check("summary line", re.sub(r"[0-9.]+ s;", "T s;", out),
            "litepush-prune: deleted 753 rows (ids 1-753) from every channel, keeping the newest 250 rows, "
            "in 8 batches, T s; pruned_through 753")
    rc, out, _ = sh([PRUNE, "--db", r, "--keep-rows", "250"])
    T.check("nothing to delete", f"{rc}|{out.rstrip()}",
            "0|litepush-prune: deleted 0 rows from every channel, keeping the newest 250 rows; pruned_through 753")
    q(r, "UPDATE litepush_meta SET value = 100000 WHERE key = 'pruned_through'")
    sh([PRUNE, "--db", r, "--keep-rows", "100"])
    T.check("pruned_through never goes down", q(r, "SELECT pruned_through, oldest_id FROM litepush_last_id"),
            "100000|904")
    sh([PRUNE, "--db", r, "--keep-rows", "0"])
    T.check("--keep-rows 0 empties the log", q(r, "SELECT * FROM litepush_last_id"), "0|1003|0|100000")
    T.check("ids are not reused after pruning",
            q(r, "INSERT INTO messages(data) VALUES ('after'); SELECT max(id) FROM messages"), "1004")

    c = tmp("chan.db")
    shutil.copy(tmp("pop.db"), c)
    sh([PRUNE, "--db", c, "--keep-rows", "100", "--channel", "b"])
    T.check("--channel b --keep-rows 100 touches only b",
            q(c, "SELECT channel, messages, first_id FROM litepush_channels"),
            "a|503|1\nb|100|701\nc|3|801\nd e|197|804")
    T.check("--channel sets pruned_through", q(c, "SELECT pruned_through FROM litepush_last_id"), "700")
    sh([PRUNE, "--db", c, "--keep-rows", "0", "--channel", "d e"])
    T.check("--channel 'd e' --keep-rows 0", q(c, """SELECT count(*) FROM messages WHERE channel = 'd e';
        SELECT count(*) FROM messages; SELECT pruned_through FROM litepush_last_id"""), "0\n606\n1000")

    # 1000 rows, one every 0.01 day, the newest 0.005 day old; x = even i, y = odd.
    k = new_db(tmp("days.db"))
    if not admin(k):
        T.bad("admin.sql on days.db")
    fill(k, 1000, "CASE i % 2 WHEN 0 THEN 'x' ELSE 'y' END", f"{NOW_MS} - (1000 - i) * 864000 - 432000")
    sh([PRUNE, "--db", k, "--keep-days", "3", "--channel", "x", "--batch", "64"])
    T.check("--keep-days 3 --channel x", q(k, """SELECT channel, messages, first_id FROM litepush_channels;
        SELECT pruned_through FROM litepush_last_id"""), "x|150|702\ny|500|1\n700")
    rc, out, _ = sh([PRUNE, "--db", k, "--keep-days", "3"])
    T.check("--keep-days 3 deletes what is older than 3 days", f"{rc}|" + q(k, f"""SELECT count(*), min(id)
        FROM messages; SELECT count(*) FROM messages WHERE created_at < {NOW_MS} - 3 * 86400000"""), "0|300|701\n0")
    m = re.search(r"deleted [0-9]+ rows \(ids [0-9-]+\)", out)
    T.check("--keep-days summary", m.group(0) if m else out, "deleted 350 rows (ids 1-699)")
    T.check("--keep-days pruned_through", q(k, "SELECT pruned_through FROM litepush_last_id"), "700")
    sh([PRUNE, "--db", k, "--keep-days", "0"])
    T.check("--keep-days 0 deletes every row", q(k, "SELECT * FROM litepush_last_id"), "0|1000|0|1000")


def prune_progress():
    """A long prune on a terminal shows rows done, rate and time left on one
    stderr line rewritten with \r, ended by a newline before the summary;
    without a terminal (cron) stderr stays empty."""
    print("== litepush-prune: progress on a terminal", flush=True)
    p = new_db(tmp("progress.db"))
    args = [PRUNE, "--db", p, "--keep-rows", "0", "--batch", "100", "--pause", "20"]
    fill(p, 3000, "'c'", NOW_MS)
    rc, out, err = sh(args)
    T.check("no terminal: exit 0, nothing on stderr", f"{rc}|{err!r}", "0|''")
    fill(p, 6000, "'c'", NOW_MS)
    # script(1) runs it on a pseudo-terminal; stdout and stderr both come back here.
    # Bytes, not text: text mode would turn every \r into \n.
    r = subprocess.run(["script", "-qec", " ".join(args), "/dev/null"], capture_output=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    r.stdout = r.stdout.decode("utf-8", "replace")
    lines = re.findall(r"\rlitepush-prune: (\d+) of 6000 rows \((\d+)%\), (\d+) rows/s", r.stdout)
    T.check("terminal: exit 0", r.returncode, 0)
    check_ok("terminal: several progress updates, counting up", len(lines) >= 2 and
             [int(x[0]) for x in lines] == sorted(int(x[0]) for x in lines), repr(r.stdout[-400:]))
    check_ok("terminal: the last update is 6000 of 6000 (100%), then a newline and the summary",
             bool(lines) and lines[-1][:2] == ("6000", "100") and
             re.search(r"rows/s *\r?\nlitepush-prune: deleted 6000 rows", r.stdout) is not None,
             repr(r.stdout[-400:]))
    check_ok("terminal: a time left while it runs", " s left" in r.stdout, repr(r.stdout[:300]))


def prune_beside_publisher():
    print("== litepush-prune beside a publisher (200 000 rows)", flush=True)
    b = new_db(tmp("busy.db"))
    if not admin(b):
        T.bad("admin.sql on busy.db")
    q(b, f"""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
        INSERT INTO messages(channel, event, data, created_at)
        SELECT 'ch' || (i % 100), 'e', printf('{{"n":%d,"pad":"%s"}}', i, hex(randomblob(40))),
               {NOW_MS} - 3 * 86400000 + i FROM n""")
    stop = tmp("stop")
    pub = PROCS.start(["python3", os.path.join(HERE, "publisher.py"), b, stop, "50"],
                      stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    prc, out, _ = sh([PRUNE, "--db", b, "--keep-days", "1"])
    open(stop, "w").close()
    pub_out = pub.communicate(timeout=60)[0].strip()
    print(f"   prune: {out.strip()}\n   publisher during the prune: {pub_out}", flush=True)
    T.check("prune exits 0 while a publisher runs", prc, 0)
    T.check("every publisher insert succeeded", pub.returncode, 0)
    inserts = re.search(r"inserts=([0-9]+)", pub_out)
    T.check("exactly the 200 000 old rows deleted, the live rows kept", q(b, f"""SELECT count(*) FROM messages
        WHERE channel <> 'live'; SELECT count(*) = {inserts.group(1) if inserts else -1} FROM messages
        WHERE channel = 'live'; SELECT pruned_through FROM litepush_last_id"""), "0\n1\n200000")
    m = re.search(r"max_ms=([0-9.]+)", pub_out)
    max_ms = float(m.group(1)) if m else 9999.0
    check_ok(f"publisher never waited over 100 ms (max {max_ms} ms)" if max_ms <= 100
             else "publisher never waited over 100 ms", max_ms <= 100, f"max {max_ms} ms")


def resume_after_pruning():
    print("== resume after pruning, over litepush-ws", flush=True)
    w = new_db(tmp("ws.db"))
    fill(w, 100, "'c'", NOW_MS)
    sh([PRUNE, "--db", w, "--keep-rows", "10"])
    ws = WsServer(w)
    if not ws.ready():
        T.bad("litepush-ws starts on the pruned log", ws.log_tail())
        ws.stop()
        return
    T.ok("litepush-ws starts on the pruned log")

    def pruned_from_start():
        reset, row = ws.frames("/ws?channel=c&lastEventId=1", 2)
        d = json.loads(reset["data"])
        got = (reset["event"], d["reason"], d["lastEventId"], d["continueAfter"], reset["id"],
               row["id"], row["data"])
        check(got == ("litepush.reset", "history-pruned", 1, 90, 90, 91, "row 91"), f"got {got}")

    def kept():
        row, = ws.frames("/ws?channel=c&lastEventId=95", 1)
        check((row["event"], row["id"]) == ("e", 96), f"got {row}")

    def channel_gap():
        # A gap inside one channel (--channel) while older rows of other
        # channels remain: the resume must still be told (pruned_through).
        q(w, """WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
                INSERT INTO messages(channel, data) SELECT 'd', 'd ' || i FROM n""")
        sh([PRUNE, "--db", w, "--keep-rows", "5", "--channel", "d"])
        reset, row = ws.frames("/ws?channel=d&lastEventId=100", 2)
        got = (reset["event"], json.loads(reset["data"])["reason"], row["id"])
        check(got == ("litepush.reset", "history-pruned", 146), f"got {got}")

    T.run("lastEventId=1: litepush.reset, history-pruned, then id 91", pruned_from_start)
    T.run("lastEventId=95 (kept): no reset, id 96 next", kept)
    T.run("--channel gap: litepush.reset, then the first kept row", channel_gap)
    ws.stop()


def restore(ws, db, backup, mode):
    """Reads channel c from the start, restores backup over db, then expects
    close 1012 and, resuming from the last id seen, litepush.reset first."""
    conn = RawWS(ws.port, "/ws?channel=c&lastEventId=0").open()
    last = 0
    for _ in range(int(q(db, "SELECT count(*) FROM messages WHERE channel = 'c'"))):
        last = json.loads(conn.recv_data())["id"]
    if mode == "rename":
        shutil.copy(backup, db + ".new")
        os.rename(db + ".new", db)
    else:
        sh(["sqlite3", db, f".restore {backup}"])
    f = conn.recv_frame(10)
    conn.close()
    check(f is not None and f.opcode == OP_CLOSE and f.close_code() == 1012,
          f"expected close 1012, got {f}")
    first = json.loads(RawWS(ws.port, f"/ws?channel=c&lastEventId={last}").open().recv_data())
    got = (last, first["event"], json.loads(first["data"])["reason"])
    check(got == (8, "litepush.reset", "ahead-of-log"), f"got {got}")


def restored_log():
    print("== a restored log, over litepush-ws", flush=True)
    for mode in ("rename", "in-place"):
        db = new_db(tmp(f"restore-{mode}.db"))
        fill(db, 3, "'c'", NOW_MS)
        shutil.copy(db, tmp(f"backup-{mode}.db"))
        fill(db, 5, "'c'", NOW_MS)
        ws = WsServer(db)
        if ws.ready():
            T.run(f"restore by {mode}: close 1012, then litepush.reset ahead-of-log",
                  restore, ws, db, tmp(f"backup-{mode}.db"), mode)
        else:
            T.bad("litepush-ws starts for the restore test", ws.log_tail())
        ws.stop()


def main():
    global TMP
    for b in (PRUNE, WS_BIN):
        if not os.access(b, os.X_OK):
            T.bad(f"build {os.path.basename(b)}", "not built (run make)")
            return T.finish()
    TMP = tempfile.mkdtemp(prefix="litepush-admin.")
    try:
        admin_sql()
        publishing()
        prune_flags()
        prune_retention()
        prune_progress()
        prune_beside_publisher()
        resume_after_pruning()
        restored_log()
    finally:
        PROCS.stop_all()
        shutil.rmtree(TMP, ignore_errors=True)
    return T.finish()


if __name__ == "__main__":
    sys.exit(main())
