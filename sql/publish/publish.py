#!/usr/bin/env python3
"""Publishing to litepush from Python's standard sqlite3 module.

    publish.py DB CHANNEL EVENT DATA     one message ('' as EVENT: none); prints its id
    publish.py DB --order CUSTOMER CENTS an order row and its message, committed together

Publishing is an INSERT into the table messages; every subscriber of the
channel receives the row as soon as the transaction commits, and never if it
rolls back. So a message can be part of the application's own transaction:
an order and the "order created" event become visible together, or not at all.

Notes:
- timeout=5.0 is SQLite's busy timeout: when another writer (a publisher,
  litepush-prune) holds the write lock, wait up to 5 s instead of failing.
- isolation_level=None turns off the module's implicit transactions: a lone
  INSERT commits at once, and a transaction is written out as BEGIN IMMEDIATE
  ... COMMIT. IMMEDIATE takes the write lock at BEGIN, where the busy timeout
  applies; a deferred BEGIN that reads first can fail with "database is
  locked" at its first write, whatever the timeout.
- The database is in WAL mode (the litepush programs set it and it stays set
  in the file): readers, litepush included, never block a publisher. Do not
  change journal_mode. The process needs write access to the file and its
  directory (push.db-wal and push.db-shm live beside it).
- Keep transactions short: the write lock is held from BEGIN IMMEDIATE to
  COMMIT, and other publishers wait meanwhile.
- The application's tables must be in the same file as messages for one
  transaction to cover both: in WAL mode a transaction across ATTACHed
  files is not atomic.
"""
import json
import sqlite3
import sys


def connect(path):
    """Opens the log for publishing."""
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")  # the same as timeout=5.0, spelled out
    return conn


def publish(conn, channel, data, event=None):
    """Inserts one message and returns its id (the SSE event id).

    data: str is stored as TEXT; bytes as a BLOB, which subscribers receive
    base64-encoded; anything else is sent as its JSON text. event=None is a
    plain SSE "message". Outside a transaction this commits at once.
    """
    if not isinstance(data, (str, bytes)):
        data = json.dumps(data, separators=(",", ":"))
    cur = conn.execute(
        "INSERT INTO messages(channel, event, data) VALUES (?, ?, ?)", (channel, event, data)
    )
    return cur.lastrowid


def place_order(conn, customer, total_cents):
    """Records an order and publishes it in one transaction.

    Returns (order_id, message_id). If anything fails, both inserts are
    rolled back and subscribers see nothing.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS orders ("
        " id INTEGER PRIMARY KEY, customer TEXT NOT NULL, total_cents INTEGER NOT NULL)"
    )
    conn.execute("BEGIN IMMEDIATE")
    try:
        cur = conn.execute(
            "INSERT INTO orders(customer, total_cents) VALUES (?, ?)", (customer, total_cents)
        )
        order_id = cur.lastrowid
        message_id = publish(
            conn,
            "orders",
            {"order": order_id, "customer": customer, "total_cents": total_cents},
            event="order.created",
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return order_id, message_id


def main(argv):
    if len(argv) == 5 and argv[2] == "--order" and argv[4].isdigit():
        conn = connect(argv[1])
        order_id, message_id = place_order(conn, argv[3], int(argv[4]))
        print(f"order {order_id} message {message_id}")
    elif len(argv) == 5 and not argv[2].startswith("--"):
        conn = connect(argv[1])
        print(publish(conn, argv[2], argv[4], event=argv[3] or None))
    else:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    conn.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except sqlite3.Error as e:
        print(f"publish.py: {e}", file=sys.stderr)
        sys.exit(1)
