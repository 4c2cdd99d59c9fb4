/* schema.c — the schema, as an ordered list of migrations. Migration i takes
 * a file from version i to version i+1; a fresh file runs all of them, so a
 * new database and a migrated one end up with the same schema.
 *
 * Never edit a migration that has shipped: add the next one and keep a
 * fixture of the previous version under tests/data/db/ (test_db_schema
 * migrates every fixture and compares the result with a fresh file). */
#include "schema.h"

static const char *const migrations[] = {
    /* ---- 0 -> 1: conversations, messages, full-text index ---- */
    "CREATE TABLE conversations (\n"
    "  id            INTEGER PRIMARY KEY,\n"
    "  title         TEXT    NOT NULL DEFAULT '',\n"
    "  model_name    TEXT    NOT NULL DEFAULT '',\n"
    "  model_file    TEXT    NOT NULL DEFAULT '',\n"
    "  model_hash    TEXT    NOT NULL DEFAULT '',\n"
    "  system_prompt TEXT    NOT NULL DEFAULT '',\n"
    "  sampling      TEXT    NOT NULL DEFAULT '{}',\n"
    "  created       INTEGER NOT NULL,\n"
    "  updated       INTEGER NOT NULL\n"
    ");\n"
    "CREATE INDEX conversations_updated ON conversations(updated);\n"
    "CREATE TABLE messages (\n"
    "  id              INTEGER PRIMARY KEY,\n"
    "  conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,\n"
    "  role            TEXT    NOT NULL CHECK (role IN ('system', 'user', 'assistant')),\n"
    "  content         TEXT    NOT NULL,\n"
    "  n_tokens        INTEGER NOT NULL DEFAULT 0,\n"
    "  created         INTEGER NOT NULL,\n"
    "  stopped         INTEGER NOT NULL DEFAULT 0,\n"
    "  prompt_tps      REAL,\n"
    "  decode_tps      REAL,\n"
    "  ttft_ms         REAL,\n"
    "  backend         TEXT\n"
    ");\n"
    "CREATE INDEX messages_conversation ON messages(conversation_id, id);\n"
    "CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages', content_rowid='id');\n"
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN\n"
    "  INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);\n"
    "END;\n"
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN\n"
    "  INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);\n"
    "END;\n"
    "CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN\n"
    "  INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);\n"
    "  INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);\n"
    "END;\n",

    /* ---- 1 -> 2: the layer store's figures per reply; benchmark runs ---- */
    "ALTER TABLE messages ADD COLUMN n_prompt INTEGER;\n"
    "ALTER TABLE messages ADD COLUMN ready_rate REAL;\n"
    "CREATE TABLE bench_runs (\n"
    "  id                  INTEGER PRIMARY KEY,\n"
    "  run                 INTEGER NOT NULL,\n"  /* one `strata bench` invocation */
    "  build_commit        TEXT    NOT NULL DEFAULT 'unknown',\n"
    "  build_number        INTEGER,\n"
    "  strata_version      TEXT    NOT NULL DEFAULT '',\n"
    "  cpu_info            TEXT    NOT NULL DEFAULT '',\n"
    "  gpu_info            TEXT    NOT NULL DEFAULT '',\n"
    "  backends            TEXT    NOT NULL DEFAULT '',\n"
    "  model_filename      TEXT    NOT NULL DEFAULT '',\n"
    "  model_name          TEXT    NOT NULL DEFAULT '',\n"
    "  model_type          TEXT    NOT NULL DEFAULT '',\n"
    "  model_size          INTEGER NOT NULL DEFAULT 0,\n"
    "  model_n_params      INTEGER NOT NULL DEFAULT 0,\n"
    "  n_batch             INTEGER NOT NULL DEFAULT 0,\n"
    "  n_ctx               INTEGER NOT NULL DEFAULT 0,\n"
    "  n_threads           INTEGER NOT NULL DEFAULT 0,\n"
    "  test                TEXT    NOT NULL DEFAULT '',\n"
    "  n_prompt            INTEGER NOT NULL DEFAULT 0,\n"
    "  n_gen               INTEGER NOT NULL DEFAULT 0,\n"
    "  reps                INTEGER NOT NULL DEFAULT 0,\n"
    "  test_time           TEXT    NOT NULL DEFAULT '',\n"
    "  avg_ns              INTEGER NOT NULL DEFAULT 0,\n"
    "  stddev_ns           INTEGER NOT NULL DEFAULT 0,\n"
    "  avg_ts              REAL    NOT NULL DEFAULT 0,\n"
    "  stddev_ts           REAL    NOT NULL DEFAULT 0,\n"
    "  samples_ns          TEXT,\n"
    "  samples_ts          TEXT,\n"
    "  avg_gbps            REAL,\n"
    "  budgeted            INTEGER NOT NULL DEFAULT 0,\n"
    "  cache_layers        INTEGER,\n"
    "  mem_budget          INTEGER,\n"
    "  cache_policy        TEXT,\n"
    "  n_slots             INTEGER,\n"
    "  prefetch            TEXT,\n"
    "  prefetch_distance   INTEGER,\n"
    "  prefetch_threads    INTEGER,\n"
    "  direct_io           INTEGER,\n"
    "  ready_rate          REAL,\n"
    "  stall_ns            INTEGER,\n"
    "  bytes_read          INTEGER,\n"
    "  peak_resident_bytes INTEGER,\n"
    "  peak_rss_bytes      INTEGER,\n"
    "  vram_budget         INTEGER,\n"
    "  created             INTEGER NOT NULL\n"
    ");\n"
    "CREATE INDEX bench_runs_run ON bench_runs(run);\n",

    /* ---- 2 -> 3: the layer store's host cache (pinned memory for streamed GPU layers) ---- */
    "ALTER TABLE bench_runs ADD COLUMN host_cache_bytes INTEGER;\n",
};

int st_db_n_migrations(void) { return (int)(sizeof migrations / sizeof migrations[0]); }

const char *st_db_migration(int from_version) {
    if (from_version < 0 || from_version >= st_db_n_migrations()) return 0;
    return migrations[from_version];
}
