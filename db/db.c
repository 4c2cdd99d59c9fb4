/* db.c — the connection: path, open, pragmas, migrations, helpers. */
#include "db_internal.h"
#include "schema.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BUSY_TIMEOUT_MS 5000

_Static_assert(ST_DB_SCHEMA_VERSION > 0, "schema version");

/* ---------------------------------------------------------------------------
 * helpers shared by the db/ modules */
st_status dbi_fail(st_db *db, st_error *err, const char *what) {
    int rc = sqlite3_extended_errcode(db->h);
    int prim = rc & 0xff;
    int sys = sqlite3_system_errno(db->h);
    const char *hint = "";
    st_status code = ST_ERR_IO;
    switch (prim) {
    case SQLITE_FULL: hint = " (the disk or the file system is full)"; break;
    case SQLITE_READONLY: hint = " (the database or its directory is read-only)"; break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: hint = " (another process held the database for too long)"; break;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT: hint = " (not a SQLite database, or damaged)"; code = ST_ERR_FORMAT; break;
    case SQLITE_NOMEM: code = ST_ERR_NOMEM; break;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE: code = ST_ERR_ARG; break;
    case SQLITE_ERROR: code = ST_ERR_INTERNAL; break;
    default: break;
    }
    if (sys && (prim == SQLITE_CANTOPEN || prim == SQLITE_IOERR || prim == SQLITE_FULL || prim == SQLITE_READONLY))
        return st_error_set(err, code, "database '%s': %s: %s: %s%s", db->path, what, sqlite3_errmsg(db->h),
                            strerror(sys), hint);
    return st_error_set(err, code, "database '%s': %s: %s%s", db->path, what, sqlite3_errmsg(db->h), hint);
}

st_status dbi_prepare(st_db *db, const char *sql, sqlite3_stmt **st, st_error *err) {
    if (sqlite3_prepare_v2(db->h, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return dbi_fail(db, err, "preparing a statement");
    }
    return ST_OK;
}

st_status dbi_exec(st_db *db, const char *sql, st_error *err) {
    char *msg = NULL;
    if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        sqlite3_free(msg);
        return dbi_fail(db, err, "executing SQL");
    }
    return ST_OK;
}

st_status dbi_begin(st_db *db, st_error *err) {
    if (sqlite3_exec(db->h, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return dbi_fail(db, err, "starting a write transaction");
    return ST_OK;
}

st_status dbi_commit(st_db *db, st_error *err) {
    if (sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        st_status rc = dbi_fail(db, err, "committing");
        dbi_rollback(db);
        return rc;
    }
    return ST_OK;
}

void dbi_rollback(st_db *db) {
    if (!sqlite3_get_autocommit(db->h)) sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

int dbi_bind_text(sqlite3_stmt *st, int i, const char *s) {
    return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

const char *dbi_col_text(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : "";
}

/* ---------------------------------------------------------------------------
 * paths */
static st_status mkdirs(const char *path, st_error *err) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return st_error_set(err, ST_ERR_ARG, "database directory path too long: %s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0700) != 0 && errno != EEXIST)
                return st_error_set(err, ST_ERR_IO, "cannot create the directory '%s' for the database: %s", buf,
                                    strerror(errno));
            *p = c;
            if (!c) break;
        }
    }
    return ST_OK;
}

st_status st_db_default_path(char *buf, size_t n, bool create_dirs, st_error *err) {
    char dir[4096];
    const char *xdg = getenv("XDG_DATA_HOME");
    if (xdg && xdg[0] == '/') {
        snprintf(dir, sizeof dir, "%s/strata", xdg);
    } else {
        const char *home = getenv("HOME");
        if (!home || !*home) {
            struct passwd *pw = getpwuid(getuid());
            home = pw ? pw->pw_dir : NULL;
        }
        if (!home || !*home)
            return st_error_set(err, ST_ERR_IO, "no database path: neither XDG_DATA_HOME nor HOME is set (use --db PATH)");
        snprintf(dir, sizeof dir, "%s/.local/share/strata", home);
    }
    if ((size_t)snprintf(buf, n, "%s/strata.db", dir) >= n)
        return st_error_set(err, ST_ERR_ARG, "database path too long: %s/strata.db", dir);
    if (create_dirs) return mkdirs(dir, err);
    return ST_OK;
}

/* ---------------------------------------------------------------------------
 * open */
static int read_user_version(st_db *db, int *v) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->h, "PRAGMA user_version", -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *v = sqlite3_column_int(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

static st_status migrate(st_db *db, st_error *err) {
    st_status rc = dbi_begin(db, err);
    if (rc) return rc;
    int v = 0;
    if (read_user_version(db, &v) != SQLITE_OK) {
        rc = dbi_fail(db, err, "reading the schema version");
        dbi_rollback(db);
        return rc;
    }
    for (; v < ST_DB_SCHEMA_VERSION; v++) {
        char *msg = NULL;
        if (sqlite3_exec(db->h, st_db_migration(v), NULL, NULL, &msg) != SQLITE_OK) {
            st_error_set(err, ST_ERR_INTERNAL, "database '%s': migrating the schema from version %d to %d: %s%s",
                         db->path, v, v + 1, msg ? msg : sqlite3_errmsg(db->h),
                         msg && strstr(msg, "fts5") ? " (this SQLite lacks FTS5)" : "");
            sqlite3_free(msg);
            dbi_rollback(db);
            return err ? err->code : ST_ERR_INTERNAL;
        }
    }
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", ST_DB_SCHEMA_VERSION);
    if ((rc = dbi_exec(db, sql, err))) { dbi_rollback(db); return rc; }
    return dbi_commit(db, err);
}

static void parent_dir(const char *path, char *dir, size_t n) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, n, ".");
    else if (slash == path) snprintf(dir, n, "/");
    else snprintf(dir, n, "%.*s", (int)(slash - path), path);
}

st_status st_db_open(const char *path, int flags, st_db **out, st_error *err) {
    *out = NULL;
    if (!path || !*path) return st_error_set(err, ST_ERR_ARG, "no database path given");
    char dir[4096];
    parent_dir(path, dir, sizeof dir);
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return st_error_set(err, ST_ERR_IO, "cannot open the database '%s': its directory '%s' %s", path, dir,
                            errno == ENOENT ? "does not exist" : strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return st_error_set(err, ST_ERR_IO, "cannot open the database '%s': '%s' is not a directory", path, dir);
    bool exists = stat(path, &sb) == 0;
    if (exists && S_ISDIR(sb.st_mode))
        return st_error_set(err, ST_ERR_IO, "cannot open the database '%s': it is a directory", path);
    if (!exists && !(flags & ST_DB_CREATE))
        return st_error_set(err, ST_ERR_IO, "no database at '%s'", path);
    if (exists && sb.st_size > 0) {
        /* say "not a SQLite database" before SQLite says something vaguer */
        unsigned char hdr[16] = {0};
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return st_error_set(err, ST_ERR_IO, "cannot open the database '%s': %s", path, strerror(errno));
        ssize_t r = read(fd, hdr, sizeof hdr);
        close(fd);
        if (r != (ssize_t)sizeof hdr || memcmp(hdr, "SQLite format 3", 16) != 0)
            return st_error_set(err, ST_ERR_FORMAT,
                                "'%s' is not a SQLite database (it does not start with \"SQLite format 3\"); "
                                "strata leaves it alone: move it away or use --db with another path",
                                path);
    }

    st_db *db = calloc(1, sizeof *db);
    if (!db) return st_error_set(err, ST_ERR_NOMEM, "out of memory opening the database");
    snprintf(db->path, sizeof db->path, "%s", path);
    int oflags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | ((flags & ST_DB_CREATE) ? SQLITE_OPEN_CREATE : 0);
    st_status rc;
    if (sqlite3_open_v2(path, &db->h, oflags, NULL) != SQLITE_OK) {
        if (!db->h) { free(db); return st_error_set(err, ST_ERR_NOMEM, "out of memory opening the database"); }
        rc = dbi_fail(db, err, exists ? "cannot open" : "cannot create");
        goto fail;
    }
    sqlite3_extended_result_codes(db->h, 1);
    sqlite3_busy_timeout(db->h, BUSY_TIMEOUT_MS);
    if (sqlite3_db_readonly(db->h, "main") == 1) {
        rc = st_error_set(err, ST_ERR_IO, "database '%s' is read-only: strata needs to write to it (and to create "
                          "'%s-wal' beside it)", path, path);
        goto fail;
    }
    int v = 0;
    if (read_user_version(db, &v) != SQLITE_OK) { rc = dbi_fail(db, err, "reading the schema version"); goto fail; }
    if (v > ST_DB_SCHEMA_VERSION) {
        rc = st_error_set(err, ST_ERR_UNSUPPORTED,
                          "database '%s' has schema version %d, newer than this strata (%s) understands (%d); "
                          "it was not modified: use a newer strata, or --db with another path",
                          path, v, STRATA_VERSION, ST_DB_SCHEMA_VERSION);
        goto fail;
    }
    if (v == 0) {
        /* version 0 and tables: some other program's database */
        sqlite3_stmt *st;
        if ((rc = dbi_prepare(db, "SELECT count(*) FROM sqlite_master", &st, err))) goto fail;
        int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
        sqlite3_finalize(st);
        if (n < 0) { rc = dbi_fail(db, err, "reading the schema"); goto fail; }
        if (n > 0) {
            rc = st_error_set(err, ST_ERR_FORMAT,
                              "'%s' is a SQLite database but not strata's (no schema version, %d schema objects); "
                              "it was not modified: use --db with another path",
                              path, n);
            goto fail;
        }
    }
    /* WAL: readers and the writer do not block each other; synchronous=FULL:
     * each commit is on disk before it returns (survives a power loss, not
     * only a kill). One fsync per reply or bench row costs nothing here. */
    sqlite3_stmt *st;
    if ((rc = dbi_prepare(db, "PRAGMA journal_mode = WAL", &st, err))) goto fail;
    int src = sqlite3_step(st);
    sqlite3_finalize(st);
    if (src != SQLITE_ROW) { rc = dbi_fail(db, err, "switching to WAL mode"); goto fail; }
    if ((rc = dbi_exec(db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;", err))) goto fail;
    if (v < ST_DB_SCHEMA_VERSION && (rc = migrate(db, err))) goto fail;
    *out = db;
    return ST_OK;
fail:
    sqlite3_close(db->h);
    free(db);
    return rc;
}

void st_db_close(st_db *db) {
    if (!db) return;
    sqlite3_close_v2(db->h);
    free(db);
}

const char *st_db_path(const st_db *db) { return db->path; }

int st_db_schema_version(st_db *db) {
    int v = -1;
    read_user_version(db, &v);
    return v;
}

st_status st_db_integrity_check(st_db *db, st_error *err) {
    sqlite3_stmt *st;
    st_status rc = dbi_prepare(db, "PRAGMA integrity_check", &st, err);
    if (rc) return rc;
    int s = sqlite3_step(st);
    if (s != SQLITE_ROW) {
        rc = dbi_fail(db, err, "integrity check");
    } else if (strcmp(dbi_col_text(st, 0), "ok") != 0) {
        rc = st_error_set(err, ST_ERR_FORMAT, "database '%s' failed its integrity check: %s", db->path,
                          dbi_col_text(st, 0));
    }
    sqlite3_finalize(st);
    return rc;
}

int64_t st_db_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void st_db_format_time(int64_t ms, char *buf, size_t n) {
    time_t t = (time_t)(ms / 1000);
    struct tm tmv;
    if (!localtime_r(&t, &tmv) || !strftime(buf, n, "%Y-%m-%d %H:%M", &tmv)) snprintf(buf, n, "?");
}
