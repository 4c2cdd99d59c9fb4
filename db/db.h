/* db.h — strata's SQLite database: the connection, its schema and its
 * migrations (docs/DATABASE.md).
 *
 * One file holds the conversation history (db/history.h) and the stored
 * benchmark runs (db/benchdb.h). The connection runs in WAL mode with
 * synchronous=FULL (a committed transaction survives a kill and a power
 * loss), foreign keys on and a busy timeout, so a reader and a writer in
 * different processes never see SQLITE_BUSY in practice. Every write is one
 * BEGIN IMMEDIATE transaction.
 *
 * db/ depends only on core's public header (strata.h) and sqlite3; core/
 * never includes SQLite. A connection is used by one thread at a time. */
#ifndef ST_DB_H
#define ST_DB_H

#include "strata.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The schema version this build writes (PRAGMA user_version). Older files are
 * migrated forward on open; newer ones are refused and left untouched. */
#define ST_DB_SCHEMA_VERSION 3

typedef struct st_db st_db;

enum {
    ST_DB_CREATE = 1,  /* create the file if it does not exist (not its directory) */
};

/* The default database path: $XDG_DATA_HOME/strata/strata.db, else
 * $HOME/.local/share/strata/strata.db. With create_dirs, the directories are
 * made (mode 0700) when missing. */
st_status st_db_default_path(char *buf, size_t n, bool create_dirs, st_error *err);

/* Opens (flags: ST_DB_CREATE) and migrates the database at path. Errors name
 * the file and say what is wrong: a missing or unwritable directory, a file
 * that is not a SQLite database, a SQLite database that is not strata's, a
 * schema newer than this build, a damaged file (PRAGMA quick_check, SQLite's
 * SQLITE_CORRUPT / SQLITE_NOTADB) or write-ahead log (an invalid header, a
 * committed transaction after a frame that fails its checksum, a log beside
 * an empty or missing file): ST_ERR_FORMAT, and neither file is modified
 * (no write, no checkpoint). An empty (0-byte) file without a log is a new
 * database. Without ST_DB_CREATE a missing file gives ST_ERR_IO with
 * err->msg saying so. The check reads the whole file: ~2-3 ms per MB. */
st_status st_db_open(const char *path, int flags, st_db **out, st_error *err);
/* True once SQLite has reported the file damaged on this connection: it then
 * refuses every write (ST_ERR_FORMAT) and closes without a checkpoint. */
bool st_db_damaged(const st_db *db);
void st_db_close(st_db *db);
const char *st_db_path(const st_db *db);
/* The schema version of the open file (after migration: ST_DB_SCHEMA_VERSION). */
int st_db_schema_version(st_db *db);
/* PRAGMA integrity_check: ST_OK when "ok", else the first problem in err. */
st_status st_db_integrity_check(st_db *db, st_error *err);

/* Milliseconds since the Unix epoch (the time stamps of the history). */
int64_t st_db_now_ms(void);
/* "2024-05-01 14:03" in local time. */
void st_db_format_time(int64_t ms, char *buf, size_t n);

#endif
