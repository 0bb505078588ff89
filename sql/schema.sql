-- litepush message log. Publishing is an INSERT; the row id is the SSE event id.
-- The programs run this on every start (every statement is IF NOT EXISTS).
PRAGMA journal_mode = WAL;

CREATE TABLE IF NOT EXISTS messages (
  id         INTEGER PRIMARY KEY AUTOINCREMENT, -- the event id; never reused, even after pruning
  channel    TEXT NOT NULL DEFAULT 'default',
  event      TEXT,                              -- SSE event type; NULL = plain "message"; names starting with "litepush." are the server's: never insert them
  data       BLOB NOT NULL,                     -- normally TEXT; a BLOB value is binary
  created_at INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) -- ms since 1970; unixepoch() needs SQLite 3.42, Debian 12 has 3.40
);
CREATE INDEX IF NOT EXISTS messages_channel_id ON messages(channel, id);

-- Bookkeeping for operators' tools: 'pruned_through' is the highest id that
-- retention deleted, so that a resume from before it gets a litepush.reset.
CREATE TABLE IF NOT EXISTS litepush_meta (
  key   TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
