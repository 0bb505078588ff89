#!/bin/sh
# Publishing to litepush from a shell script with the sqlite3 CLI.
#
#   publish.sh DB CHANNEL [EVENT] < data        one message; prints its id
#   publish.sh DB --order CUSTOMER CENTS        an order row and its message,
#                                               committed together
#
# Every value goes into the SQL as a hex literal (X'...'), so quotes, line
# breaks and any bytes in the data are safe without escaping rules. The data
# is stored as TEXT (CAST ... AS TEXT); drop the CAST to store a BLOB, which
# subscribers receive base64-encoded.
#
# .timeout sets SQLite's busy timeout: a publisher that finds the write lock
# taken (another publisher, litepush-prune) waits up to 5 s instead of failing
# at once. The database is in WAL mode (the programs set it, and it stays set
# in the file): readers never block this INSERT. The user running this needs
# write access to the database file and to its directory (push.db-wal and
# push.db-shm live beside it).
set -eu

usage() { echo "usage: $0 DB CHANNEL [EVENT] < data | $0 DB --order CUSTOMER CENTS" >&2; exit 2; }

# hex VALUE: an SQL blob literal holding VALUE's bytes.
hex() { printf "X'%s'" "$(printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n')"; }

[ $# -ge 2 ] || usage
db=$1

if [ "$2" = "--order" ]; then
    [ $# -eq 4 ] || usage
    case $4 in ''|*[!0-9]*) echo "CENTS must be a whole number" >&2; exit 2;; esac
    customer=$(hex "$3")
    # One transaction: the order and its message commit together, or neither
    # does. .bail on makes any failed statement end sqlite3 before COMMIT, and
    # the open transaction is then rolled back - without it the shell would go
    # on and commit half. BEGIN IMMEDIATE takes the write lock up front, so the
    # busy timeout applies here instead of a mid-transaction SQLITE_BUSY.
    # The orders table must live in the same file as messages: in WAL mode a
    # transaction across ATTACHed files is not atomic.
    sqlite3 -bail "$db" <<SQL
.timeout 5000
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS orders (
  id          INTEGER PRIMARY KEY,
  customer    TEXT NOT NULL,
  total_cents INTEGER NOT NULL
);
INSERT INTO orders(customer, total_cents) VALUES (CAST($customer AS TEXT), $4);
INSERT INTO messages(channel, event, data)
  SELECT 'orders', 'order.created',
         json_object('order', id, 'customer', customer, 'total_cents', total_cents)
    FROM orders WHERE id = last_insert_rowid();
SELECT id FROM messages WHERE rowid = last_insert_rowid();
COMMIT;
SQL
    exit
fi

[ $# -le 3 ] || usage
channel=$(hex "$2")
if [ $# -eq 3 ] && [ -n "$3" ]; then event="CAST($(hex "$3") AS TEXT)"; else event=NULL; fi
# od reads the data from standard input as it is, trailing newline included.
data="X'$(od -An -v -tx1 | tr -d ' \n')'"
sqlite3 -bail "$db" <<SQL
.timeout 5000
INSERT INTO messages(channel, event, data) VALUES (CAST($channel AS TEXT), $event, CAST($data AS TEXT));
SELECT last_insert_rowid();
SQL
