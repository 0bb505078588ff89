-- litepush: the message log in PostgreSQL. The programs run this file when
-- the table or one of its triggers is absent and their role may create
-- them; otherwise run it once as the owner (safe to repeat):
--   psql "postgresql://owner@db.example/app" -f sql/schema-postgresql.sql
--
-- Publishing is a plain INSERT from any client, inside any transaction:
--   INSERT INTO messages(channel, event, data) VALUES ('news', 'update', 'hello');
-- A binary row sets data_bin instead of data (sent base64-encoded).
--
-- Commit order. Readers follow the log by id (id > cursor), so a smaller id
-- must never become visible after a larger one. With a plain sequence it
-- could: two transactions take ids 7 and 8, and 8 commits first. The
-- trigger litepush_assign_id therefore takes a transaction-level advisory
-- lock before it draws the id: the next publisher waits until the holder
-- commits or rolls back, so ids become visible in increasing order, as
-- they do with SQLite's single writer. Cost: publishers are serialized
-- from their first INSERT into messages to their COMMIT (keep those
-- transactions short), and each INSERT takes one more lock.
--
-- Copying a log with its ids (moving from SQLite): in the copying session
--   SET litepush.keep_ids = on;
-- makes the trigger keep the id given; afterwards set the sequence to the
-- highest id ever issued: SELECT setval('messages_id_seq', N);

CREATE SEQUENCE IF NOT EXISTS messages_id_seq AS BIGINT;

CREATE TABLE IF NOT EXISTS messages (
  id         BIGINT PRIMARY KEY,       -- set by litepush_assign_id; never reused
  channel    TEXT NOT NULL DEFAULT 'default',
  event      TEXT,                     -- SSE event type; NULL = plain "message"
  data       TEXT,                     -- UTF-8 text, the usual case
  data_bin   BYTEA,                    -- a binary row (data is NULL)
  created_at BIGINT NOT NULL
             DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint, -- ms since 1970
  CONSTRAINT messages_one_payload CHECK ((data IS NULL) <> (data_bin IS NULL))
);
ALTER SEQUENCE messages_id_seq OWNED BY messages.id;
CREATE INDEX IF NOT EXISTS messages_channel_id ON messages(channel, id);

-- Retention marks: 'pruned_through' and 'pruned_through:<channel>'.
CREATE TABLE IF NOT EXISTS litepush_meta (
  key   TEXT PRIMARY KEY,
  value BIGINT NOT NULL
);

-- 1818850405 is the advisory lock key of the log ('lite' in ASCII).
CREATE OR REPLACE FUNCTION litepush_assign_id() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(1818850405);
  IF NEW.id IS NULL OR coalesce(current_setting('litepush.keep_ids', true), '') <> 'on' THEN
    NEW.id := nextval('messages_id_seq');
  END IF;
  RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER litepush_assign_id BEFORE INSERT ON messages
  FOR EACH ROW EXECUTE FUNCTION litepush_assign_id();

-- Wakes every litepush process (LISTEN litepush) at commit; PostgreSQL
-- folds the notifications of one transaction into one.
CREATE OR REPLACE FUNCTION litepush_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('litepush', '');
  RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER litepush_notify AFTER INSERT ON messages
  FOR EACH STATEMENT EXECUTE FUNCTION litepush_notify();
