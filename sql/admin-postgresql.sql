-- litepush: operator views for a PostgreSQL log (the counterpart of
-- sql/admin.sql), for psql:
--
--   psql "postgresql://owner@db.example/app" -f sql/admin-postgresql.sql   (safe to repeat)
--   psql "postgresql://..." -c "SELECT * FROM litepush_channels"
--
-- Only views (CREATE OR REPLACE VIEW, one transaction); no row is changed.
-- Times: created_at is milliseconds since 1970 (UTC), as in SQLite, shown
-- with to_timestamp(created_at / 1000.0).

BEGIN;

-- litepush_last_id: one row.
--   last_id         highest id in the log now (0 when empty)
--   issued_max      highest id ever issued (the sequence; survives pruning)
--   oldest_id       lowest id still kept (0 when empty)
--   pruned_through  highest id litepush-prune deleted (0 if never)
CREATE OR REPLACE VIEW litepush_last_id AS
SELECT coalesce((SELECT max(id) FROM messages), 0) AS last_id,
       (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM messages_id_seq) AS issued_max,
       coalesce((SELECT min(id) FROM messages), 0) AS oldest_id,
       coalesce((SELECT max(value) FROM litepush_meta
                 WHERE key = 'pruned_through' OR key LIKE 'pruned_through:%'), 0)
         AS pruned_through;

-- litepush_channels: one row per channel: rows kept, id and time range.
CREATE OR REPLACE VIEW litepush_channels AS
SELECT g.channel, g.messages, g.first_id, g.last_id,
       (SELECT to_timestamp(created_at / 1000.0) FROM messages WHERE id = g.first_id) AS first_utc,
       (SELECT to_timestamp(created_at / 1000.0) FROM messages WHERE id = g.last_id) AS last_utc
  FROM (SELECT channel, count(*) AS messages, min(id) AS first_id, max(id) AS last_id
          FROM messages GROUP BY channel) g
 ORDER BY g.channel;

-- litepush_recent: the newest 10 rows of every channel, newest first, with
-- the first 80 characters of the data ("(binary)" for data_bin rows).
CREATE OR REPLACE VIEW litepush_recent AS
SELECT r.channel, r.id, r.event, to_timestamp(r.created_at / 1000.0) AS created_utc,
       CASE WHEN r.data_bin IS NOT NULL THEN '(binary)'
            ELSE left(regexp_replace(r.data, '[\r\n]+', ' ', 'g'), 80) END AS data
  FROM (SELECT DISTINCT channel FROM messages) c
  CROSS JOIN LATERAL (SELECT * FROM messages m WHERE m.channel = c.channel
                       ORDER BY id DESC LIMIT 10) r
 ORDER BY r.channel, r.id DESC;

-- litepush_rates: rows published in the last minute, hour and day.
CREATE OR REPLACE VIEW litepush_rates AS
SELECT count(*) FILTER (WHERE created_at >= now_ms - 60000) AS last_minute,
       count(*) FILTER (WHERE created_at >= now_ms - 3600000) AS last_hour,
       count(*) AS last_day
  FROM (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now_ms) n
  JOIN messages ON created_at >= n.now_ms - 86400000;

-- litepush_size: the table's and its indexes' size on disk.
CREATE OR REPLACE VIEW litepush_size AS
SELECT pg_size_pretty(pg_table_size('messages')) AS table_size,
       pg_size_pretty(pg_indexes_size('messages')) AS index_size,
       (SELECT count(*) FROM messages) AS messages;

-- litepush_load: the connections litepush programs hold (application_name
-- litepush), by client address and state: about two per event loop.
CREATE OR REPLACE VIEW litepush_load AS
SELECT client_addr, state, count(*) AS connections
  FROM pg_stat_activity WHERE application_name = 'litepush'
 GROUP BY client_addr, state ORDER BY client_addr, state;

COMMIT;
