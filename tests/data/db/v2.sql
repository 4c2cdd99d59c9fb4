-- Schema version 2 of strata's database (history and benchmark runs),
-- frozen as shipped, with a little data. test_db migrates it to the current
-- version. Never edit: a new schema version gets a new fixture (vN.sql) instead.
CREATE TABLE conversations (
  id            INTEGER PRIMARY KEY,
  title         TEXT    NOT NULL DEFAULT '',
  model_name    TEXT    NOT NULL DEFAULT '',
  model_file    TEXT    NOT NULL DEFAULT '',
  model_hash    TEXT    NOT NULL DEFAULT '',
  system_prompt TEXT    NOT NULL DEFAULT '',
  sampling      TEXT    NOT NULL DEFAULT '{}',
  created       INTEGER NOT NULL,
  updated       INTEGER NOT NULL
);
CREATE INDEX conversations_updated ON conversations(updated);
CREATE TABLE messages (
  id              INTEGER PRIMARY KEY,
  conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  role            TEXT    NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
  content         TEXT    NOT NULL,
  n_tokens        INTEGER NOT NULL DEFAULT 0,
  created         INTEGER NOT NULL,
  stopped         INTEGER NOT NULL DEFAULT 0,
  prompt_tps      REAL,
  decode_tps      REAL,
  ttft_ms         REAL,
  backend         TEXT
);
CREATE INDEX messages_conversation ON messages(conversation_id, id);
CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages', content_rowid='id');
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
  INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
  INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
  INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
  INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;

ALTER TABLE messages ADD COLUMN n_prompt INTEGER;
ALTER TABLE messages ADD COLUMN ready_rate REAL;
CREATE TABLE bench_runs (
  id                  INTEGER PRIMARY KEY,
  run                 INTEGER NOT NULL,
  build_commit        TEXT    NOT NULL DEFAULT 'unknown',
  build_number        INTEGER,
  strata_version      TEXT    NOT NULL DEFAULT '',
  cpu_info            TEXT    NOT NULL DEFAULT '',
  gpu_info            TEXT    NOT NULL DEFAULT '',
  backends            TEXT    NOT NULL DEFAULT '',
  model_filename      TEXT    NOT NULL DEFAULT '',
  model_name          TEXT    NOT NULL DEFAULT '',
  model_type          TEXT    NOT NULL DEFAULT '',
  model_size          INTEGER NOT NULL DEFAULT 0,
  model_n_params      INTEGER NOT NULL DEFAULT 0,
  n_batch             INTEGER NOT NULL DEFAULT 0,
  n_ctx               INTEGER NOT NULL DEFAULT 0,
  n_threads           INTEGER NOT NULL DEFAULT 0,
  test                TEXT    NOT NULL DEFAULT '',
  n_prompt            INTEGER NOT NULL DEFAULT 0,
  n_gen               INTEGER NOT NULL DEFAULT 0,
  reps                INTEGER NOT NULL DEFAULT 0,
  test_time           TEXT    NOT NULL DEFAULT '',
  avg_ns              INTEGER NOT NULL DEFAULT 0,
  stddev_ns           INTEGER NOT NULL DEFAULT 0,
  avg_ts              REAL    NOT NULL DEFAULT 0,
  stddev_ts           REAL    NOT NULL DEFAULT 0,
  samples_ns          TEXT,
  samples_ts          TEXT,
  avg_gbps            REAL,
  budgeted            INTEGER NOT NULL DEFAULT 0,
  cache_layers        INTEGER,
  mem_budget          INTEGER,
  cache_policy        TEXT,
  n_slots             INTEGER,
  prefetch            TEXT,
  prefetch_distance   INTEGER,
  prefetch_threads    INTEGER,
  direct_io           INTEGER,
  ready_rate          REAL,
  stall_ns            INTEGER,
  bytes_read          INTEGER,
  peak_resident_bytes INTEGER,
  peak_rss_bytes      INTEGER,
  vram_budget         INTEGER,
  created             INTEGER NOT NULL
);
CREATE INDEX bench_runs_run ON bench_runs(run);

INSERT INTO conversations (id, title, model_name, model_file, model_hash, system_prompt, sampling, created, updated)
VALUES (1, 'Old talk about rivers', 'tiny', '/models/tiny.gguf', 'fp1:0123456789abcdef', 'You are terse.',
        '{"temp": 0.7}', 1700000000000, 1700000005000),
       (2, 'Second', 'tiny', '/models/tiny.gguf', '', '', '{}', 1700000100000, 1700000100000);
INSERT INTO messages (conversation_id, role, content, n_tokens, created, stopped, prompt_tps, decode_tps, ttft_ms, backend,
                      n_prompt, ready_rate)
VALUES (1, 'user', 'Tell me about the longest river', 0, 1700000000000, 0, NULL, NULL, NULL, NULL, NULL, NULL),
       (1, 'assistant', 'The Nile is usually named the longest river.', 10, 1700000005000, 0, 250.5, 40.25, 12.5, 'cpu', 8, -1),
       (2, 'user', 'hello', 0, 1700000100000, 0, NULL, NULL, NULL, NULL, NULL, NULL),
       (2, 'assistant', 'hel', 1, 1700000100000, 1, 100, 20, 5, 'cpu', 2, 0.5);
INSERT INTO bench_runs (run, build_commit, strata_version, model_filename, model_type, test, n_prompt, n_gen, reps,
                        avg_ns, avg_ts, budgeted, cache_layers, cache_policy, n_slots, prefetch, created)
VALUES (1, 'e9a1496', '0.1.0', '/models/tiny.gguf', 'Q8_0', 'tg128', 0, 128, 3, 1000000, 128.5, 1, 2, 'ring', 2, 'auto',
        1700000200000);
PRAGMA user_version = 2;
