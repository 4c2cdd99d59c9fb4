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
/* what a damaged file's message ends with */
#define DAMAGED_HINT                                                                                               \
    "strata leaves it as it is and writes nothing to it; to save what is readable: sqlite3 FILE .recover | "      \
    "sqlite3 NEW.db, then --db NEW.db (docs/DATABASE.md)"

/* from now on the connection writes nothing: no transaction (dbi_begin) and
 * no checkpoint when it closes (that would copy the WAL into the file) */
static void mark_damaged(st_db *db) {
    db->damaged = true;
    sqlite3_db_config(db->h, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
}

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
    case SQLITE_CORRUPT:
        mark_damaged(db);
        return st_error_set(err, ST_ERR_FORMAT, "database '%s' is damaged (%s: %s); " DAMAGED_HINT, db->path, what,
                            sqlite3_errmsg(db->h));
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
    if (db->damaged)
        return st_error_set(err, ST_ERR_FORMAT, "database '%s' is damaged; " DAMAGED_HINT, db->path);
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
 * the write-ahead log (https://www.sqlite.org/fileformat.html#the_write_ahead_log)
 *
 * SQLite ignores a WAL whose header is invalid and stops reading one at the
 * first frame that fails its checksum: transactions committed after that
 * point would be dropped without a word, and the next write or checkpoint
 * would overwrite them. It also deletes the WAL of an empty database file.
 * These checks find those cases before SQLite reads the log. */
#define WAL_HDR 32
#define WAL_FRAME_HDR 24

static uint32_t rd_be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}
static uint32_t rd_le32(const unsigned char *p) {
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | (uint32_t)p[0];
}

/* SQLite's WAL checksum over n bytes (a multiple of 8), continuing s[] */
static void wal_cksum(bool big, const unsigned char *d, size_t n, uint32_t s[2]) {
    for (size_t i = 0; i + 8 <= n; i += 8) {
        s[0] += (big ? rd_be32(d + i) : rd_le32(d + i)) + s[1];
        s[1] += (big ? rd_be32(d + i + 4) : rd_le32(d + i + 4)) + s[0];
    }
}

static st_status wal_damaged(st_error *err, const char *path, const char *why) {
    return st_error_set(err, ST_ERR_FORMAT,
                        "the write-ahead log '%s-wal' of the database is damaged (%s): SQLite would drop the "
                        "transactions it holds. strata leaves both files as they are; move the -wal file away "
                        "to use the database without them (docs/DATABASE.md)",
                        path, why);
}

/* The header (and, with frames, every frame) of path's WAL. Without frames
 * it only reads the header: that is safe without a lock (SQLite writes it in
 * one 32-byte write); the frames are read with the write lock held, when no
 * writer can append or restart the log. */
static st_status wal_check(const char *path, bool frames, st_error *err) {
    char wal[4200];
    snprintf(wal, sizeof wal, "%s-wal", path);
    int fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return ST_OK;
        return st_error_set(err, ST_ERR_IO, "cannot read the write-ahead log '%s': %s", wal, strerror(errno));
    }
    struct stat sb;
    unsigned char h[WAL_HDR];
    st_status rc = ST_OK;
    /* shorter than a header: SQLite had not written one, nothing is in it */
    if (fstat(fd, &sb) != 0 || sb.st_size < WAL_HDR) goto out;
    if (pread(fd, h, WAL_HDR, 0) != WAL_HDR) {
        rc = st_error_set(err, ST_ERR_IO, "cannot read the write-ahead log '%s': %s", wal, strerror(errno));
        goto out;
    }
    uint32_t magic = rd_be32(h), page = rd_be32(h + 8);
    bool big = magic & 1;
    uint32_t c[2] = {0, 0};
    wal_cksum(big, h, 24, c);
    if ((magic & ~1u) != 0x377f0682u) { rc = wal_damaged(err, path, "its header is not a SQLite WAL header"); goto out; }
    if (rd_be32(h + 4) != 3007000u || page < 512 || page > 65536 || (page & (page - 1))) {
        rc = wal_damaged(err, path, "its header has an unknown version or page size");
        goto out;
    }
    if (c[0] != rd_be32(h + 24) || c[1] != rd_be32(h + 28)) {
        rc = wal_damaged(err, path, "its header fails its checksum");
        goto out;
    }
    if (!frames) goto out;
    /* A frame that fails its checksum (or carries another generation's salt)
     * ends what SQLite reads. Frames after it are stale ones from before the
     * log was restarted, or the rest of a rolled-back transaction: neither
     * holds a commit frame that checks out against its predecessor. One that
     * does is a committed transaction SQLite would lose. */
    size_t fsz = WAL_FRAME_HDR + page;
    unsigned char *f = malloc(fsz);
    if (!f) { rc = st_error_set(err, ST_ERR_NOMEM, "out of memory reading '%s'", wal); goto out; }
    uint32_t prev[2] = {rd_be32(h + 24), rd_be32(h + 28)};
    long long bad = 0, i = 1;
    for (off_t off = WAL_HDR; off + (off_t)fsz <= sb.st_size; off += (off_t)fsz, i++) {
        if (pread(fd, f, fsz, off) != (ssize_t)fsz) break;
        uint32_t k[2] = {prev[0], prev[1]};
        wal_cksum(big, f, 8, k);
        wal_cksum(big, f + WAL_FRAME_HDR, page, k);
        bool ok = rd_be32(f) != 0 && !memcmp(f + 8, h + 16, 8) && k[0] == rd_be32(f + 16) && k[1] == rd_be32(f + 20);
        if (!ok && !bad) bad = i;
        else if (ok && bad && rd_be32(f + 4) != 0) {
            char why[160];
            snprintf(why, sizeof why, "frame %lld fails its checksum, and a transaction committed after it ends at frame %lld",
                     bad, i);
            rc = wal_damaged(err, path, why);
            break;
        }
        prev[0] = rd_be32(f + 16);
        prev[1] = rd_be32(f + 20);
    }
    free(f);
out:
    close(fd);
    return rc;
}

/* the first problem PRAGMA quick_check reports ("ok": none). It reads the
 * whole file: 2-3 ms per MB on a loaded 2-core machine (docs/DATABASE.md). */
static st_status quick_check(st_db *db, st_error *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, "PRAGMA quick_check(1)", -1, &st, NULL) != SQLITE_OK) return dbi_fail(db, err, "checking it");
    int s = sqlite3_step(st);
    st_status rc = ST_OK;
    if (s != SQLITE_ROW) rc = dbi_fail(db, err, "checking it");
    else if (strcmp(dbi_col_text(st, 0), "ok") != 0) {
        char what[200];
        snprintf(what, sizeof what, "%s", dbi_col_text(st, 0));
        for (char *p = what; *p; p++)
            if (*p == '\n') *p = ' ';
        mark_damaged(db);
        rc = st_error_set(err, ST_ERR_FORMAT, "database '%s' is damaged (quick_check: %s); " DAMAGED_HINT, db->path,
                          what);
    }
    sqlite3_finalize(st);
    return rc;
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

    /* a WAL SQLite would ignore, or delete (beside an empty file) */
    st_status rc = wal_check(path, false, err);
    if (rc) return rc;
    char walp[4200];
    snprintf(walp, sizeof walp, "%s-wal", path);
    struct stat wb;
    bool has_wal = stat(walp, &wb) == 0 && wb.st_size >= WAL_HDR;
    if (has_wal && (!exists || sb.st_size == 0))
        return st_error_set(err, ST_ERR_FORMAT,
                            "the database '%s' is %s but its write-ahead log '%s' holds %lld bytes (SQLite would "
                            "delete it): strata leaves both as they are; move the -wal file away to start a new "
                            "history there (docs/DATABASE.md)",
                            path, exists ? "empty" : "missing", walp, (long long)wb.st_size);

    st_db *db = calloc(1, sizeof *db);
    if (!db) return st_error_set(err, ST_ERR_NOMEM, "out of memory opening the database");
    snprintf(db->path, sizeof db->path, "%s", path);
    int oflags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | ((flags & ST_DB_CREATE) ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(path, &db->h, oflags, NULL) != SQLITE_OK) {
        if (!db->h) { free(db); return st_error_set(err, ST_ERR_NOMEM, "out of memory opening the database"); }
        rc = dbi_fail(db, err, exists ? "cannot open" : "cannot create");
        goto fail;
    }
    sqlite3_extended_result_codes(db->h, 1);
    sqlite3_busy_timeout(db->h, BUSY_TIMEOUT_MS);
    /* nothing is written, not even by the checkpoint a close does, until
     * the file has passed the checks below */
    sqlite3_db_config(db->h, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    if (sqlite3_db_readonly(db->h, "main") == 1) {
        rc = st_error_set(err, ST_ERR_IO, "database '%s' is read-only: strata needs to write to it (and to create "
                          "'%s-wal' beside it)", path, path);
        goto fail;
    }
    if (has_wal) {
        /* every frame of the log, with the write lock held */
        if (sqlite3_exec(db->h, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) { rc = dbi_fail(db, err, "opening it"); goto fail; }
        rc = wal_check(path, true, err);
        dbi_rollback(db);
        if (rc) goto fail;
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
    /* damage anywhere in the file: found before anything is written */
    if (exists && sb.st_size > 0 && (rc = quick_check(db, err))) goto fail;
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
    sqlite3_db_config(db->h, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, (int *)NULL);
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

bool st_db_damaged(const st_db *db) { return db && db->damaged; }

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
