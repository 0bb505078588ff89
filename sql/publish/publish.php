<?php
// Publishing to litepush from PHP with PDO (Debian: php-sqlite3).
//
//   php publish.php DB CHANNEL EVENT DATA      one message ('' as EVENT: none)
//   php publish.php DB --order CUSTOMER CENTS  an order row and its message,
//                                              committed together
//
// In a web application, keep one PDO per request from litepush_connect()
// and call litepush_publish() wherever something happens.
//
// Notes:
// - PDO::ATTR_TIMEOUT (seconds) is SQLite's busy timeout: when another writer
//   (a publisher, litepush-prune) holds the write lock, wait up to 5 s
//   instead of failing with "database is locked".
// - PDO::beginTransaction() sends a deferred BEGIN; a transaction that reads
//   before it writes can then fail at its first write whatever the timeout.
//   So transactions here are opened with exec('BEGIN IMMEDIATE'), which takes
//   the write lock at once (the busy timeout applies), and closed with
//   exec('COMMIT') or exec('ROLLBACK').
// - The database is in WAL mode (the litepush programs set it and it stays
//   set in the file): readers never block a publisher. Do not change
//   journal_mode. The web server's user (www-data) needs write access to the
//   file and to its directory (push.db-wal and push.db-shm live beside it).
// - Your tables must be in the same file as messages for one transaction to
//   cover both: in WAL mode a transaction across ATTACHed files is not atomic.
// - A row becomes visible to subscribers when its transaction commits, and
//   never if it rolls back.

declare(strict_types=1);

function litepush_connect(string $path): PDO
{
    $pdo = new PDO('sqlite:' . $path, null, null, [
        PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
        PDO::ATTR_TIMEOUT => 5,
    ]);
    $pdo->exec('PRAGMA busy_timeout = 5000'); // the same as ATTR_TIMEOUT, spelled out
    return $pdo;
}

/**
 * Inserts one message and returns its id (the SSE event id).
 * A string is stored as TEXT; with $binary = true as a BLOB, which
 * subscribers receive base64-encoded. $event null is a plain "message".
 */
function litepush_publish(PDO $pdo, string $channel, string $data, ?string $event = null,
                          bool $binary = false): int
{
    $st = $pdo->prepare('INSERT INTO messages(channel, event, data) VALUES (?, ?, ?)');
    $st->bindValue(1, $channel, PDO::PARAM_STR);
    $st->bindValue(2, $event, $event === null ? PDO::PARAM_NULL : PDO::PARAM_STR);
    $st->bindValue(3, $data, $binary ? PDO::PARAM_LOB : PDO::PARAM_STR);
    $st->execute();
    return (int)$pdo->lastInsertId();
}

/** Records an order and publishes it in one transaction; returns [order id, message id]. */
function place_order(PDO $pdo, string $customer, int $totalCents): array
{
    $pdo->exec('CREATE TABLE IF NOT EXISTS orders ('
        . ' id INTEGER PRIMARY KEY, customer TEXT NOT NULL, total_cents INTEGER NOT NULL)');
    $pdo->exec('BEGIN IMMEDIATE');
    try {
        $st = $pdo->prepare('INSERT INTO orders(customer, total_cents) VALUES (?, ?)');
        $st->execute([$customer, $totalCents]);
        $orderId = (int)$pdo->lastInsertId();
        $json = json_encode(['order' => $orderId, 'customer' => $customer,
                             'total_cents' => $totalCents], JSON_THROW_ON_ERROR);
        $messageId = litepush_publish($pdo, 'orders', $json, 'order.created');
        $pdo->exec('COMMIT');
    } catch (Throwable $e) {
        $pdo->exec('ROLLBACK');
        throw $e;
    }
    return [$orderId, $messageId];
}

if (PHP_SAPI === 'cli' && realpath($argv[0] ?? '') === __FILE__) {
    try {
        if ($argc === 5 && $argv[2] === '--order' && ctype_digit($argv[4])) {
            [$orderId, $messageId] = place_order(litepush_connect($argv[1]), $argv[3], (int)$argv[4]);
            echo "order $orderId message $messageId\n";
        } elseif ($argc === 5 && strncmp($argv[2], '--', 2) !== 0) {
            $event = $argv[3] === '' ? null : $argv[3];
            echo litepush_publish(litepush_connect($argv[1]), $argv[2], $argv[4], $event), "\n";
        } else {
            fwrite(STDERR, "usage: php publish.php DB CHANNEL EVENT DATA | php publish.php DB --order CUSTOMER CENTS\n");
            exit(2);
        }
    } catch (PDOException $e) {
        fwrite(STDERR, 'publish.php: ' . $e->getMessage() . "\n");
        exit(1);
    }
}
