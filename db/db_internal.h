/* db_internal.h — what the db/ modules share: the connection and helpers
 * around sqlite3 statements and transactions. Not for use outside db/. */
#ifndef ST_DB_INTERNAL_H
#define ST_DB_INTERNAL_H

#include "db.h"

#include <sqlite3.h>

struct st_db {
    sqlite3 *h;
    char path[4096];
    /* SQLite reported the file damaged (SQLITE_CORRUPT / SQLITE_NOTADB): the
     * connection writes nothing more (dbi_begin refuses) and closes without
     * a checkpoint, so the file stays as it was found. */
    bool damaged;
};

/* Fills err with "<path>: <what>: <sqlite message>" and returns a status
 * matching the SQLite error (ST_ERR_IO for I/O, full disk, locks; a damaged
 * file is ST_ERR_FORMAT and marks the connection damaged). */
st_status dbi_fail(st_db *db, st_error *err, const char *what);
/* Prepares sql; on failure fills err. */
st_status dbi_prepare(st_db *db, const char *sql, sqlite3_stmt **st, st_error *err);
/* Runs statements without results (schema, pragmas). */
st_status dbi_exec(st_db *db, const char *sql, st_error *err);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. The write lock is taken at BEGIN, so
 * a transaction never has to be retried half-way (no SQLITE_BUSY_SNAPSHOT).
 * dbi_begin refuses (ST_ERR_FORMAT) on a connection marked damaged. */
st_status dbi_begin(st_db *db, st_error *err);
st_status dbi_commit(st_db *db, st_error *err);
void dbi_rollback(st_db *db);
/* Binds a string, or NULL when s is NULL. */
int dbi_bind_text(sqlite3_stmt *st, int i, const char *s);
/* Column text, "" for NULL. */
const char *dbi_col_text(sqlite3_stmt *st, int i);

#endif
