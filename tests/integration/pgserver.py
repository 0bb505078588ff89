"""A throw-away PostgreSQL server for the tests: Debian's binaries, a data
directory in a temp dir, trust authentication, a loopback port and a unix
socket in that dir. initdb and pg_ctl refuse to run as root, so as root
they run as `nobody`, which then owns the temp dir. Standard library only."""
import glob
import os
import shutil
import subprocess
import tempfile
import time

PG_BIN = os.environ.get("LITEPUSH_PG_BIN") or (sorted(glob.glob("/usr/lib/postgresql/*/bin")) or [""])[-1]


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class PgServer:
    def __init__(self, parent=None, port=None):
        self.dir = tempfile.mkdtemp(prefix="litepush-pg-", dir=parent)
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        self.port = port or free_port()
        self.as_user = []
        if os.getuid() == 0:
            shutil.chown(self.dir, "nobody", "nogroup")
            self.as_user = ["runuser", "-u", "nobody", "--"]
        self._run("initdb", "-D", self.data, "-U", "litepush", "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        self.uri = f"postgresql://litepush@127.0.0.1:{self.port}/postgres"
        self.start()

    def _run(self, prog, *args, timeout=60):
        r = subprocess.run([*self.as_user, os.path.join(PG_BIN, prog), *args],
                           capture_output=True, text=True, timeout=timeout, cwd=self.dir,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError(f"{prog} failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
        return r.stdout

    def start(self):
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c max_connections=200")
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-o", opts, "-w", "-t", "30", "start")

    def stop(self, mode="fast"):
        try:
            self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "stop")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass

    def restart(self, down_s=0.0):
        self.stop("immediate")
        time.sleep(down_s)
        self.start()

    def psql(self, sql, uri=None, timeout=30):
        r = subprocess.run(["psql", "-X", "-A", "-t", "-q", "-F", "|", "-v", "ON_ERROR_STOP=1",
                            uri or self.uri], input=sql, capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout

    def cleanup(self, keep=False):
        self.stop("immediate")
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)
