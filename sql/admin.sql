-- litepush: operator views and queries, for the sqlite3 command-line shell.
--
--   sqlite3 /var/lib/litepush/push.db < sql/admin.sql      (once; safe to repeat)
--   sqlite3 -box /var/lib/litepush/push.db "SELECT * FROM litepush_channels"
--
-- This file only creates views (CREATE VIEW IF NOT EXISTS, in one short
-- transaction): it never changes a row, and it may be run while publishers
-- and streams are busy. The named queries further down are comments: paste
-- them into an interactive `sqlite3 push.db` session after setting their
-- :parameters with `.param set`.
--
-- Times: created_at is milliseconds since 1970 (UTC). Debian 12's SQLite
-- 3.40 has no unixepoch(), so times are shown with
-- datetime(created_at / 1000, 'unixepoch') and "now" in ms is
-- CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER).
--
-- Cost on a large log (1 000 000 rows): litepush_last_id, litepush_recent
-- and litepush_size read a few pages (milliseconds); litepush_rates reads
-- the last day's rows only (it assumes created_at grows with id, as it does
-- with the column's default); litepush_channels reads the (channel, id)
-- index (0.2 s); the hourly views read and group the whole table (1.5-3 s).
-- A view reads in its own snapshot and never blocks a publisher (WAL).
--
-- Compatibility: every program that opens the file must then understand
-- these views: SQLite 3.16 or later (2017; Debian 9 and later).
-- To pick up a changed definition after an upgrade, drop the views first:
--   DROP VIEW IF EXISTS litepush_last_id; DROP VIEW IF EXISTS litepush_channels;
--   DROP VIEW IF EXISTS litepush_recent; DROP VIEW IF EXISTS litepush_rates;
--   DROP VIEW IF EXISTS litepush_hourly; DROP VIEW IF EXISTS litepush_channel_hourly;
--   DROP VIEW IF EXISTS litepush_size;
-- and run this file again.

.timeout 5000
BEGIN IMMEDIATE;

-- litepush_last_id: one row.
--   last_id         highest id in the log now (0 when empty)
--   issued_max      highest id ever issued (AUTOINCREMENT; survives pruning):
--                   the next row gets a higher id
--   oldest_id       lowest id still kept (0 when empty)
--   pruned_through  highest id that litepush-prune deleted (0 if never), from
--                   the whole log ('pruned_through') or one channel
--                   ('pruned_through:<channel>', written by --channel)
-- A client resuming from an id below oldest_id - 1 gets litepush.reset.
CREATE VIEW IF NOT EXISTS litepush_last_id AS
SELECT coalesce((SELECT max(id) FROM messages), 0) AS last_id,
       coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0) AS issued_max,
       coalesce((SELECT min(id) FROM messages), 0) AS oldest_id,
       coalesce((SELECT max(value) FROM litepush_meta
                 WHERE key = 'pruned_through' OR key LIKE 'pruned_through:%'), 0)
         AS pruned_through;

-- litepush_channels: one row per channel: how many rows are kept, their
-- id range and time range (UTC). It reads only the (channel, id) index and
-- two rows per channel (bytes per channel: see data_per_channel below).
CREATE VIEW IF NOT EXISTS litepush_channels AS
SELECT g.channel,
       g.messages,
       g.first_id,
       g.last_id,
       (SELECT datetime(created_at / 1000, 'unixepoch') FROM messages WHERE id = g.first_id)
         AS first_utc,
       (SELECT datetime(created_at / 1000, 'unixepoch') FROM messages WHERE id = g.last_id)
         AS last_utc
  FROM (SELECT channel, count(*) AS messages, min(id) AS first_id, max(id) AS last_id
          FROM messages GROUP BY channel) g
 ORDER BY g.channel;

-- litepush_recent: the newest 10 rows of every channel, newest first, with
-- the first 80 characters of the data (line breaks shown as spaces; BLOBs
-- as "(binary)"). The channel list is walked through the (channel, id) index,
-- one step per channel, so this stays fast on a large log.
--   SELECT * FROM litepush_recent WHERE channel = 'news';
CREATE VIEW IF NOT EXISTS litepush_recent AS
WITH RECURSIVE channels(name) AS (
  SELECT min(channel) FROM messages
  UNION ALL
  SELECT (SELECT min(channel) FROM messages WHERE channel > name)
    FROM channels WHERE name IS NOT NULL
)
SELECT m.channel,
       m.id,
       coalesce(m.event, 'message') AS event,
       datetime(m.created_at / 1000, 'unixepoch') AS created_utc,
       length(CAST(m.data AS BLOB)) AS bytes,
       CASE WHEN typeof(m.data) = 'blob' THEN '(binary)'
            ELSE substr(replace(replace(m.data, char(13), ' '), char(10), ' '), 1, 80)
       END AS preview
  FROM channels c
  JOIN messages m
    ON m.channel = c.name
   AND m.id >= coalesce((SELECT id FROM messages WHERE channel = c.name
                          ORDER BY id DESC LIMIT 1 OFFSET 9), 0)
 ORDER BY m.channel, m.id DESC;

-- litepush_rates: one row per channel that had rows in the last 24 hours:
-- counts over the last minute, hour and day, and the mean rate of each
-- (messages per second).
CREATE VIEW IF NOT EXISTS litepush_rates AS
WITH now(ms) AS (
  SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
),
last_day AS (
  SELECT m.channel, m.created_at, n.ms
    FROM messages m, now n
   WHERE m.id > coalesce((SELECT id FROM messages
                           WHERE created_at < (SELECT ms FROM now) - 86400000
                           ORDER BY id DESC LIMIT 1), 0)
     AND m.created_at >= n.ms - 86400000
)
SELECT channel,
       sum(created_at >= ms - 60000) AS last_minute,
       sum(created_at >= ms - 3600000) AS last_hour,
       count(*) AS last_day,
       round(sum(created_at >= ms - 60000) / 60.0, 3) AS per_sec_minute,
       round(sum(created_at >= ms - 3600000) / 3600.0, 3) AS per_sec_hour,
       round(count(*) / 86400.0, 4) AS per_sec_day
  FROM last_day
 GROUP BY channel
 ORDER BY last_minute DESC, last_hour DESC, last_day DESC, channel;

-- litepush_hourly: rows per hour (UTC) over all channels, newest hour
-- first: count, mean rate, number of channels and bytes of data.
--   SELECT * FROM litepush_hourly LIMIT 24;
CREATE VIEW IF NOT EXISTS litepush_hourly AS
SELECT strftime('%Y-%m-%d %H:00', created_at / 1000, 'unixepoch') AS hour_utc,
       count(*) AS messages,
       round(count(*) / 3600.0, 3) AS per_sec,
       count(DISTINCT channel) AS channels,
       sum(length(CAST(data AS BLOB))) AS data_bytes
  FROM messages
 GROUP BY hour_utc
 ORDER BY hour_utc DESC;

-- litepush_channel_hourly: the same per channel and hour.
--   SELECT * FROM litepush_channel_hourly WHERE channel = 'news' LIMIT 48;
CREATE VIEW IF NOT EXISTS litepush_channel_hourly AS
SELECT strftime('%Y-%m-%d %H:00', created_at / 1000, 'unixepoch') AS hour_utc,
       channel,
       count(*) AS messages,
       round(count(*) / 3600.0, 3) AS per_sec,
       sum(length(CAST(data AS BLOB))) AS data_bytes
  FROM messages
 GROUP BY hour_utc, channel
 ORDER BY hour_utc DESC, channel;

-- litepush_size: the size of the database file (without the -wal file):
-- bytes = page_count * page_size, and the part of it on the free list
-- (left by deleted rows; new rows reuse it, VACUUM would return it).
CREATE VIEW IF NOT EXISTS litepush_size AS
SELECT page_count * page_size AS bytes,
       round(page_count * page_size / 1048576.0, 1) AS mib,
       freelist_count * page_size AS free_bytes,
       page_count,
       page_size
  FROM pragma_page_count(), pragma_page_size(), pragma_freelist_count();

COMMIT;

-- ---------------------------------------------------------------------------
-- Named queries. In `sqlite3 push.db`, set the parameters, then paste the
-- query. Quote text and times with single quotes: `.param set :day 2024-05-01`
-- would store the number 2018 (2024 minus 5 minus 1).
--
-- history_between: one channel's rows between two UTC times, oldest first.
--   .param set :channel 'news'
--   .param set :from '2024-05-01 00:00:00'
--   .param set :to '2024-05-02 00:00:00'
--   SELECT id, coalesce(event, 'message') AS event,
--          datetime(created_at / 1000, 'unixepoch') AS created_utc, data
--     FROM messages
--    WHERE channel = :channel
--      AND created_at >= CAST((julianday(:from) - 2440587.5) * 86400000 AS INTEGER)
--      AND created_at <  CAST((julianday(:to) - 2440587.5) * 86400000 AS INTEGER)
--    ORDER BY id;
--
-- after_id: what a client resuming from id :after in :channel would be sent.
--   .param set :channel 'news'
--   .param set :after 1200
--   SELECT id, event, data FROM messages
--    WHERE channel = :channel AND id > :after ORDER BY id LIMIT 100;
--
-- data_per_channel: bytes of data per channel (reads the whole table).
--   SELECT channel, count(*) AS messages, sum(length(CAST(data AS BLOB))) AS data_bytes,
--          max(length(CAST(data AS BLOB))) AS largest
--     FROM messages GROUP BY channel ORDER BY data_bytes DESC;
--
-- events_per_channel: rows per event type in each channel.
--   SELECT channel, coalesce(event, 'message') AS event, count(*) AS messages
--     FROM messages GROUP BY channel, event ORDER BY channel, messages DESC;
--
-- log_size: the file's size, from the pragmas (always available):
--   SELECT * FROM litepush_size;
-- and, per table and index, from the dbstat virtual table (compiled into
-- Debian's sqlite3 shell; "no such table: dbstat" elsewhere):
--   SELECT name, count(*) AS pages, sum(pgsize) AS bytes, sum(unused) AS unused_bytes
--     FROM dbstat GROUP BY name ORDER BY bytes DESC;
-- The write-ahead log is a separate file, push.db-wal; it is folded back
-- into push.db and emptied by:
--   PRAGMA wal_checkpoint(TRUNCATE);
--
-- Deleting old rows: use litepush-prune (small transactions, records
-- pruned_through), not a DELETE here, which would hold the write lock, and so
-- every publisher, for as long as it runs.
