#!/usr/bin/env python3
"""PostgreSQL vs SQLite, in one run (make bench-pg; bench/README.md).

For each log (a SQLite file, a throw-away PostgreSQL server) and each
number of litepush-ws processes P (1, 2, 4; one event loop each, the
subscribers spread over them), on loopback:

  latency      INSERT -> WebSocket client, p50 and p99 over every delivery,
               rows published one by one at a steady rate (the row carries
               its publish time);
  throughput   one INSERT of many rows; deliveries/s until every subscriber
               has all of them;
  load (PG)    connections litepush holds and the statements per second it
               runs on the server (pg_stat_database commits, minus the
               publisher's own), at a steady publish rate, with few and with
               many subscribers: it must follow P, not the subscribers.

Clients are raw sockets in one Python selector loop, so absolute figures
include Python's cost on both sides; the two logs are measured the same
way. Prints a table; BENCH_PG_QUICK=1 makes it smaller.
"""
import base64
import os
import selectors
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from pgserver import PgServer, free_port  # noqa: E402

WS_BIN = os.path.join(ROOT, "litepush-ws")
QUICK = os.environ.get("BENCH_PG_QUICK") == "1"
PROCS = [1, 2, 4]
SUBS = 50 if QUICK else 200
SUBS_FEW = 5
LAT_ROWS = 40 if QUICK else 150
LAT_RATE = 50.0                  # rows per second while measuring latency
FLOOD_ROWS = 200 if QUICK else 1000
LOAD_SECONDS = 3 if QUICK else 5
LOAD_RATE = 20.0


class Client:
    """A WebSocket subscriber: handshake, then server frames (unmasked)."""

    def __init__(self, port, channel):
        self.sock = socket.create_connection(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /ws?channel={channel} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(4096)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert b" 101 " in head.split(b"\r\n")[0], head
        self.sock.setblocking(False)
        self.got = 0

    def frames(self):
        try:
            data = self.sock.recv(1 << 16)
        except BlockingIOError:
            return []
        self.buf += data
        out = []
        while len(self.buf) >= 2:
            n = self.buf[1] & 0x7F
            off = 2
            if n == 126:
                if len(self.buf) < 4:
                    break
                n, off = struct.unpack(">H", self.buf[2:4])[0], 4
            elif n == 127:
                if len(self.buf) < 10:
                    break
                n, off = struct.unpack(">Q", self.buf[2:10])[0], 10
            if len(self.buf) < off + n:
                break
            op, payload = self.buf[0] & 0x0F, self.buf[off:off + n]
            self.buf = self.buf[off + n:]
            if op == 1:
                out.append(payload)
        return out


class Log:
    def __init__(self, kind, tmp):
        self.kind = kind
        if kind == "pg":
            self.pg = PgServer(tmp)
            self.db = self.pg.uri
        else:
            self.pg = None
            self.db = os.path.join(tmp, "bench.db")

    def sql(self, text):
        if self.kind == "pg":
            return self.pg.psql(text)
        con = sqlite3.connect(self.db, timeout=10, isolation_level=None)
        try:
            return "\n".join("|".join(map(str, r)) for r in con.execute(text).fetchall())
        finally:
            con.close()


class Publisher:
    """One long-lived client connection inserting rows one by one."""

    def __init__(self, log):
        self.log = log
        if log.kind == "pg":
            self.p = subprocess.Popen(["psql", "-X", "-q", log.db], stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL, text=True, bufsize=1)
        else:
            self.con = sqlite3.connect(log.db, timeout=10, isolation_level=None)

    def insert(self, channel, data):
        if self.log.kind == "pg":
            self.p.stdin.write(f"INSERT INTO messages(channel, data) VALUES ('{channel}', '{data}');\n")
            self.p.stdin.flush()
        else:
            self.con.execute("INSERT INTO messages(channel, data) VALUES (?, ?)", (channel, data))

    def close(self):
        if self.log.kind == "pg":
            self.p.stdin.close()
            self.p.wait(30)
        else:
            self.con.close()


def start_servers(log, nproc, tmp):
    procs, ports = [], []
    for i in range(nproc):
        port = free_port()
        logf = open(os.path.join(tmp, f"ws-{log.kind}-{nproc}-{i}.log"), "ab")
        p = subprocess.Popen([WS_BIN, "--db", log.db, "--listen", f"127.0.0.1:{port}", "--threads", "1",
                              "--ping", "600", "--no-deflate", "--max-connections", "20000"],
                             stdout=logf, stderr=logf)
        logf.close()
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.02)
        procs.append(p)
        ports.append(port)
    return procs, ports


def stop_servers(procs):
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(10)


def connect(ports, n, channel):
    clients = [Client(ports[i % len(ports)], channel) for i in range(n)]
    sel = selectors.DefaultSelector()
    for c in clients:
        sel.register(c.sock, selectors.EVENT_READ, c)
    return clients, sel


def pump(sel, on_frame, until, deadline):
    while not until() and time.monotonic() < deadline:
        for key, _ in sel.select(0.05):
            for f in key.data.frames():
                on_frame(key.data, f)


def latency(log, ports, channel):
    clients, sel = connect(ports, SUBS, channel)
    lat = []
    pub = Publisher(log)

    def on_frame(c, f):
        i = f.find(b'"data":"')
        t = int(f[i + 8:f.index(b'"', i + 8)])
        lat.append((time.time_ns() - t) / 1e6)
        c.got += 1

    time.sleep(0.3)
    t_next = time.monotonic()
    for _ in range(LAT_ROWS):
        pub.insert(channel, str(time.time_ns()))
        t_next += 1.0 / LAT_RATE
        pump(sel, on_frame, lambda: False, t_next)
    want = LAT_ROWS * SUBS
    pump(sel, on_frame, lambda: len(lat) >= want, time.monotonic() + 20)
    pub.close()
    for c in clients:
        c.sock.close()
    lat.sort()
    if not lat:
        return None, None, 0
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))], len(lat) / want


def throughput(log, ports, channel):
    clients, sel = connect(ports, SUBS, channel)
    total = [0]

    def on_frame(c, f):
        c.got += 1
        total[0] += 1

    time.sleep(0.3)
    t0 = time.monotonic()
    if log.kind == "pg":
        log.sql(f"INSERT INTO messages(channel, data) SELECT '{channel}', 'x' || i "
                f"FROM generate_series(1, {FLOOD_ROWS}) i;")
    else:
        log.sql(f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {FLOOD_ROWS}) "
                f"INSERT INTO messages(channel, data) SELECT '{channel}', 'x' || i FROM n;")
    want = FLOOD_ROWS * SUBS
    pump(sel, on_frame, lambda: total[0] >= want, time.monotonic() + 60)
    dt = time.monotonic() - t0
    for c in clients:
        c.sock.close()
    return total[0] / dt, total[0] / want


def pg_load(log, ports, channel, subs):
    """Connections held and statements/s run by litepush at LOAD_RATE rows/s."""
    clients, sel = connect(ports, subs, channel)
    conns = int(log.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'litepush';"))
    pub = Publisher(log)
    q = ("SELECT xact_commit + xact_rollback FROM pg_stat_database "
         "WHERE datname = current_database();")
    time.sleep(1.2)  # backends flush their statistics about once a second
    before = int(log.sql("SELECT pg_stat_clear_snapshot();" + q).split()[-1])
    t_before = t0 = time.monotonic()
    rows = 0
    t_next = t0
    while time.monotonic() - t0 < LOAD_SECONDS:
        pub.insert(channel, "x")
        rows += 1
        t_next += 1.0 / LOAD_RATE
        pump(sel, lambda c, f: None, lambda: False, t_next)
    pub.close()
    time.sleep(1.2)
    after = int(log.sql("SELECT pg_stat_clear_snapshot();" + q).split()[-1])
    dt = time.monotonic() - t_before
    for c in clients:
        c.sock.close()
    # Ours: the rows' INSERTs and the psql samples; the rest is litepush
    # (the window includes 1.2 s without publishing: its polls count too).
    return conns, max(0.0, (after - before - rows - 2) / dt)


def main():
    tmp = tempfile.mkdtemp(prefix="litepush-benchpg-")
    os.chmod(tmp, 0o755)
    out = []
    logs = []
    try:
        logs = [Log("sqlite", tmp), Log("pg", tmp)]
        logs[0].sql("SELECT 1")
        for nproc in PROCS:
            for log in logs:
                procs, ports = start_servers(log, nproc, tmp)
                try:
                    ch = f"b{os.urandom(3).hex()}"
                    p50, p99, frac = latency(log, ports, ch)
                    rate, frac2 = throughput(log, ports, ch + "f")
                    row = {"log": log.kind, "procs": nproc, "subs": SUBS, "p50_ms": p50, "p99_ms": p99,
                           "delivered": min(frac, frac2), "deliveries_s": rate}
                    if log.kind == "pg":
                        c_few, q_few = pg_load(log, ports, ch + "l", SUBS_FEW)
                        c_many, q_many = pg_load(log, ports, ch + "m", SUBS)
                        row.update(conns=c_few, qps_few=q_few, conns_many=c_many, qps_many=q_many)
                    out.append(row)
                    print(row, flush=True)
                finally:
                    stop_servers(procs)
    finally:
        for log in logs:
            if log.pg is not None:
                log.pg.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(f"litepush-ws, {SUBS} WebSocket subscribers on loopback, one event loop per process")
    print(f"{'log':7s} {'procs':>5s} {'p50 ms':>8s} {'p99 ms':>8s} {'deliv/s':>9s} {'got':>5s}"
          f" {'PG conns':>8s} {'PG stmt/s':>9s} {f'({SUBS_FEW} subs)':>10s} {'conns':>6s} {'stmt/s':>7s} {f'({SUBS} subs)':>10s}")
    for r in out:
        line = (f"{r['log']:7s} {r['procs']:5d} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} "
                f"{r['deliveries_s']:9.0f} {r['delivered'] * 100:4.0f}%")
        if r["log"] == "pg":
            line += f" {r['conns']:8d} {r['qps_few']:9.1f} {'':10s} {r['conns_many']:6d} {r['qps_many']:7.1f}"
        print(line)
    return 0 if all(r["delivered"] >= 0.999 for r in out) else 1


if __name__ == "__main__":
    sys.exit(main())
