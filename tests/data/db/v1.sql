-- Schema version 1 of strata's database (history only), frozen as shipped,
-- with a little data. test_db migrates it to the current version.
-- Never edit: a new schema version gets a new fixture (vN.sql) instead.
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

INSERT INTO conversations (id, title, model_name, model_file, model_hash, system_prompt, sampling, created, updated)
VALUES (1, 'Old talk about rivers', 'tiny', '/models/tiny.gguf', 'fp1:0123456789abcdef', 'You are terse.',
        '{"temp": 0.7}', 1700000000000, 1700000005000),
       (2, 'Second', 'tiny', '/models/tiny.gguf', '', '', '{}', 1700000100000, 1700000100000);
INSERT INTO messages (conversation_id, role, content, n_tokens, created, stopped, prompt_tps, decode_tps, ttft_ms, backend)
VALUES (1, 'user', 'Tell me about the longest river', 0, 1700000000000, 0, NULL, NULL, NULL, NULL),
       (1, 'assistant', 'The Nile is usually named the longest river.', 10, 1700000005000, 0, 250.5, 40.25, 12.5, 'cpu'),
       (2, 'user', 'hello', 0, 1700000100000, 0, NULL, NULL, NULL, NULL),
       (2, 'assistant', 'hel', 1, 1700000100000, 1, 100, 20, 5, 'cpu');
PRAGMA user_version = 1;
