#!/usr/bin/env python3
"""The README's shared-hosting recipe, run: Apache with Debian's
libapache2-mod-fcgid spawns cgi-bin/litepush.fcgi itself (no daemon), with
the recipe's Fcgid* settings, timeouts scaled down so the run is short.
Checks that several streams flow at once (one process each), resume, outlive
FcgidIOTimeout through heartbeats (and, as a control, are cut when the
heartbeat is slower than it), that FcgidMaxProcessesPerClass caps the
processes as the README says, that a closed stream frees its process, and
that idle processes go away. Reports the RSS of one spawned responder.
Last line: "fcgid: N passed, N failed"."""
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
BIN = os.path.join(TOP, "cgi-bin/litepush.fcgi")
MODS = "/usr/lib/apache2/modules"
IO_TIMEOUT = 3        # FcgidIOTimeout (README: 60, above the 15 s heartbeat)
HEARTBEAT = 1         # --heartbeat of the recipe's responder (README: 15)
SLOW_HEARTBEAT = 6    # the control: a heartbeat slower than FcgidIOTimeout
MAX_PROCS = 4         # FcgidMaxProcessesPerClass (README: 50)
IDLE = 4              # FcgidIdleTimeout (README: 60)

passed = failed = 0


def ok(name):
    global passed
    passed += 1
    print(f"ok   {name}", flush=True)


def bad(name):
    global failed
    failed += 1
    print(f"FAIL {name}", flush=True)


def check(cond, name):
    (ok if cond else bad)(name)
    return cond


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Stream:
    """One SSE request read on a thread: lines with their arrival times,
    and when the response ended."""

    def __init__(self, port, path):
        self.lines, self.ended_at, self.status = [], None, None
        self.t0 = time.monotonic()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.settimeout(None)   # a stream may wait long for a process; close() ends it
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
        self.th = threading.Thread(target=self.read, daemon=True)
        self.th.start()

    def read(self):
        buf = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    line = line.rstrip(b"\r").decode("utf-8", "replace")
                    if self.status is None and line.startswith("HTTP/1."):
                        self.status = int(line.split()[1])
                    self.lines.append((time.monotonic() - self.t0, line))
        except OSError:
            pass
        self.ended_at = time.monotonic() - self.t0

    def data(self):
        return [l[6:] for _, l in self.lines if l.startswith("data: ")]

    def ids(self):
        return [int(l[4:]) for _, l in self.lines if l.startswith("id: ")]

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def wait(fn, timeout, step=0.05):
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


def main():
    for path in (BIN, f"{MODS}/mod_fcgid.so", "/usr/sbin/apache2"):
        if not os.path.exists(path):
            print(f"fcgid: {path} is missing (make; tests/deps.sh installs libapache2-mod-fcgid)")
            print("fcgid: 0 passed, 1 failed")
            return 1
    d = tempfile.mkdtemp(prefix="litepush-fcgid.")
    os.chmod(d, 0o755)
    for sub in ("cgi-bin", "data", "run", "ipc"):
        os.makedirs(os.path.join(d, sub))
    binary = os.path.join(d, "bin-litepush.fcgi")
    shutil.copy(BIN, binary)
    os.chmod(binary, 0o755)
    # The scripts mod_fcgid starts: the responder itself, exec'd with a
    # shorter heartbeat (same process, the socket stays on fd 0).
    for name, hb in (("litepush.fcgi", HEARTBEAT), ("slow.fcgi", SLOW_HEARTBEAT)):
        p = os.path.join(d, "cgi-bin", name)
        with open(p, "w") as f:
            f.write(f"#!/bin/sh\nexec {binary} --heartbeat {hb}\n")
        os.chmod(p, 0o755)
    db = os.path.join(d, "data", "push.db")
    www = subprocess.run(["id", "-u", "www-data"], capture_output=True, text=True).stdout.strip()
    if os.geteuid() == 0 and www:
        for sub in ("data", "ipc", "run"):
            os.chown(os.path.join(d, sub), int(www), -1)
    else:
        os.chmod(os.path.join(d, "data"), 0o777)
    con = sqlite3.connect(db, timeout=5, isolation_level=None)
    con.executescript(open(os.path.join(TOP, "sql/schema.sql")).read())
    con.execute("PRAGMA journal_mode=WAL")
    if os.geteuid() == 0 and www:
        os.chown(db, int(www), -1)
    else:
        os.chmod(db, 0o666)

    def insert(channel, data):
        return con.execute("INSERT INTO messages(channel,data) VALUES(?,?)", (channel, data)).lastrowid

    port = free_port()
    mods = ["mpm_event", "authz_core", "alias", "fcgid"]
    conf = "\n".join([
        f'ServerRoot "{d}"', "ServerName 127.0.0.1", f"Listen 127.0.0.1:{port}",
        f'PidFile "{d}/apache.pid"', f'DefaultRuntimeDir "{d}/run"', f'ErrorLog "{d}/apache-error.log"',
        "LogLevel warn", "User www-data", "Group www-data",
        *[f"LoadModule {m}_module {MODS}/mod_{m}.so" for m in mods],
        f'DocumentRoot "{d}/data"',
        f'FcgidIPCDir "{d}/ipc"', f'FcgidProcessTableFile "{d}/run/fcgid_shm"',
        f'Alias /cgi-bin/ "{d}/cgi-bin/"',
        "# The README's recipe, timeouts scaled down:",
        f'<Directory "{d}/cgi-bin">', "    Options +ExecCGI", "    SetHandler fcgid-script",
        "    Require all granted", "</Directory>",
        f"FcgidInitialEnv LITEPUSH_DB {db}",
        "FcgidInitialEnv LITEPUSH_THREADS 1",
        "FcgidOutputBufferSize 0",
        f"FcgidIOTimeout {IO_TIMEOUT}",
        "FcgidBusyTimeout 86400",
        "FcgidMaxRequestsPerProcess 0",
        f"FcgidMaxProcessesPerClass {MAX_PROCS}",
        f"FcgidIdleTimeout {IDLE}",
        "FcgidMinProcessesPerClass 0",
        "FcgidIdleScanInterval 1",
        ""])
    with open(os.path.join(d, "apache.conf"), "w") as f:
        f.write(conf)
    env = dict(os.environ, APACHE_RUN_DIR=f"{d}/run", APACHE_LOCK_DIR=f"{d}/run", APACHE_LOG_DIR=d)
    log = open(os.path.join(d, "apache-stderr.log"), "ab")
    apache = subprocess.Popen(["/usr/sbin/apache2", "-f", f"{d}/apache.conf", "-DFOREGROUND"],
                              stdout=log, stderr=log, env=env, start_new_session=True)
    streams = []
    t_start = time.monotonic()

    def procs():
        """Responder processes of this run (their exe is our copy)."""
        out = []
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    if os.readlink(f"/proc/{pid}/exe") == binary:
                        out.append(int(pid))
                except OSError:
                    pass
        return sorted(out)

    def open_stream(query, script="litepush.fcgi"):
        s = Stream(port, f"/cgi-bin/{script}?{query}")
        streams.append(s)
        return s

    try:
        up = wait(lambda: subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/"]).returncode == 0, 10)
        if not check(up, f"Apache with mod_fcgid listens on {port}"):
            return

        # 1. one stream: headers and retry at once, a live row within a second
        s1 = open_stream("channel=a")
        got = wait(lambda: any(l.startswith("retry:") for _, l in s1.lines), 10)
        check(got and s1.status == 200, f"mod_fcgid spawns the responder; the stream opens (status {s1.status})")
        t = time.monotonic()
        insert("a", "first")
        got = wait(lambda: "first" in s1.data(), 3)
        check(got, f"a live row arrives at once through FcgidOutputBufferSize 0 "
                   f"({(time.monotonic() - t) * 1000:.0f} ms)")
        rss = pss = None
        p = procs()
        if p:
            with open(f"/proc/{p[0]}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss = line.split()[1]
            try:
                with open(f"/proc/{p[0]}/smaps_rollup") as f:
                    for line in f:
                        if line.startswith("Pss:"):
                            pss = line.split()[1]
            except OSError:
                pass
        print(f"     RSS of one fcgid-spawned responder holding one stream: {rss} kB, PSS {pss} kB "
              f"(pid {p[0] if p else '?'}, threads {len(os.listdir(f'/proc/{p[0]}/task')) if p else '?'})")
        if p:
            threads = len(os.listdir(f"/proc/{p[0]}/task"))
            inotify = 0
            for fd in os.listdir(f"/proc/{p[0]}/fd"):
                try:
                    inotify += "inotify" in os.readlink(f"/proc/{p[0]}/fd/{fd}")
                except OSError:
                    pass
            check(threads == 3 and inotify == 1,
                  f"with LITEPUSH_THREADS 1 the process is as small as it can be: {threads} threads "
                  f"(main, one event loop, one accept thread: 3), {inotify} inotify instance (1)")

        # 2. several streams at once, one process each
        others = [open_stream(f"channel=a&channel={c}") for c in ("b", "c", "d")]
        wait(lambda: all(any(l.startswith("retry:") for _, l in s.lines) for s in others), 15)
        insert("a", "to all")
        got = wait(lambda: all("to all" in s.data() for s in [s1] + others), 5)
        n = len(procs())
        check(got and n == 4, f"4 concurrent streams all get a row; {n} responder processes (one per stream)")

        # 3. the cap: a 5th stream while 4 processes are busy waits for one
        # (mod_fcgid queues it: "can't apply process slot" in the error log)
        s5 = open_stream("channel=a")
        wait(lambda: s5.status is not None or s5.ended_at is not None, 5)
        n = len(procs())
        check(s5.status is None and n == MAX_PROCS,
              f"a stream beyond FcgidMaxProcessesPerClass {MAX_PROCS} waits: no answer after 5 s "
              f"(status {s5.status}), {n} processes")

        # 4. a closed stream frees its process (the responder notices at its
        # next heartbeat write); the waiting stream gets it
        t = time.monotonic()
        others[0].close()
        got = wait(lambda: any(l.startswith("retry:") for _, l in s5.lines), HEARTBEAT + 10)
        check(got and s5.status == 200 and len(procs()) <= MAX_PROCS,
              f"when a stream closes, the waiting one is served by the freed process after "
              f"{time.monotonic() - t:.1f} s ({len(procs())} processes)")
        others[1].close()
        s6 = open_stream("channel=a")
        got = wait(lambda: any(l.startswith("retry:") for _, l in s6.lines), HEARTBEAT + 10)
        check(got and len(procs()) <= MAX_PROCS,
              f"another closed stream, another new one served ({len(procs())} processes)")

        # 5. idle streams outlive FcgidIOTimeout through heartbeats
        time.sleep(2 * IO_TIMEOUT + 1.5)
        alive = s1.ended_at is None and s6.ended_at is None
        hb = sum(1 for _, l in s1.lines if l.startswith(":"))
        insert("a", "after idle")
        got = wait(lambda: "after idle" in s1.data() and "after idle" in s6.data(), 3)
        check(alive and got, f"a stream idle for {2 * IO_TIMEOUT + 1.5:.1f} s (FcgidIOTimeout {IO_TIMEOUT}) stays open "
                             f"({hb} heartbeats) and gets the next row")

        # 6. control: with a heartbeat slower than FcgidIOTimeout the stream is cut
        for s in (others[2], s5, s6):
            s.close()
        time.sleep(HEARTBEAT + 0.5)
        slow = open_stream("channel=z", "slow.fcgi")
        wait(lambda: slow.ended_at is not None, SLOW_HEARTBEAT + 6)
        check(slow.status == 200 and slow.ended_at is not None and slow.ended_at < SLOW_HEARTBEAT,
              f"control: heartbeat {SLOW_HEARTBEAT} s > FcgidIOTimeout {IO_TIMEOUT} s: the idle stream is cut "
              f"after {slow.ended_at if slow.ended_at is None else round(slow.ended_at, 1)} s")

        # 7. resume after a cut: every row after the last id, nothing twice
        last = s1.ids()[-1]
        s1.close()
        missed = [insert("a", f"missed {i}") for i in range(3)]
        r = open_stream(f"channel=a&lastEventId={last}")
        got = wait(lambda: len(r.ids()) >= 3, 10)
        check(got and r.ids() == missed, f"resume with lastEventId={last}: ids {r.ids()} (want {missed})")
        r.close()

        # 8. processes left after the streams closed go away (FcgidIdleTimeout)
        for s in streams:
            s.close()
        gone = wait(lambda: not procs(), IDLE + HEARTBEAT + 8, 0.25)
        check(gone, f"idle responders exit after FcgidIdleTimeout {IDLE} s with FcgidMinProcessesPerClass 0 "
                    f"({len(procs())} left)")
        print(f"     fcgid stage took {time.monotonic() - t_start:.0f} s")
    finally:
        for s in streams:
            s.close()
        try:
            os.killpg(apache.pid, signal.SIGTERM)
            apache.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            try:
                os.killpg(apache.pid, signal.SIGKILL)
            except OSError:
                pass
        for pid in procs():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if not os.environ.get("KEEP"):
            shutil.rmtree(d, ignore_errors=True)
        else:
            print(f"     kept {d}")
        print(f"fcgid: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))   # run the cleanup in main()'s finally
    sys.exit(main())
