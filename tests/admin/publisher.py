#!/usr/bin/env python3
"""A publisher for the admin tests: inserts a row into channel 'live' every
~2 ms with a 5 s busy timeout, timing each INSERT (an autocommit
transaction, commit included), until the file STOP exists or MAX_SECONDS
have passed.

    publisher.py DB STOP MAX_SECONDS

Prints "inserts=N failed=N max_ms=X p99_ms=Y" and exits 1 if any insert
failed.
"""
import os
import sqlite3
import sys
import time


def main(db, stop, seconds):
    conn = sqlite3.connect(db, timeout=5.0, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")
    # No fsync per commit (durable across crashes of the process, as litepush
    # itself runs in WAL mode): the timings then show waiting for the write
    # lock, not the disk's flush latency.
    conn.execute("PRAGMA synchronous = NORMAL")
    latencies, failed = [], 0
    end = time.monotonic() + float(seconds)
    while time.monotonic() < end and not os.path.exists(stop):
        started = time.monotonic()
        try:
            conn.execute("INSERT INTO messages(channel, event, data) VALUES ('live', 'tick', 'x')")
        except sqlite3.Error:
            failed += 1
        latencies.append(time.monotonic() - started)
        time.sleep(0.002)
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else 0
    print(
        "inserts=%d failed=%d max_ms=%.1f p99_ms=%.1f"
        % (len(latencies), failed, latencies[-1] * 1000 if latencies else 0, p99 * 1000)
    )
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
