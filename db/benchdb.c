/* benchdb.c — bench_runs: storing, listing, comparing, and the llama-bench
 * output formats. One table of field descriptors drives the INSERT, the
 * SELECT and every printer, so the columns are written down once. */
#include "benchdb.h"
#include "db_internal.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------
 * the columns */
typedef enum { F_STR, F_INT, F_U64, F_DBL, F_BOOL, F_PSTR } ftype;
enum { K_SETTING = 1, K_STORE = 2, K_RESULT = 4, K_VRAM = 8 };
typedef struct {
    const char *name;
    ftype t;
    size_t off, size;
    int kind;  /* K_SETTING: listed by compare when it differs; K_STORE: NULL unless budgeted */
} field;

#define R st_db_bench_row
#define FS(n, k) {#n, F_STR, offsetof(R, n), sizeof(((R *)0)->n), k}
#define FI(n, k) {#n, F_INT, offsetof(R, n), 0, k}
#define FU(n, k) {#n, F_U64, offsetof(R, n), 0, k}
#define FD(n, k) {#n, F_DBL, offsetof(R, n), 0, k}
#define FB(n, k) {#n, F_BOOL, offsetof(R, n), 0, k}
#define FP(n, k) {#n, F_PSTR, offsetof(R, n), 0, k}
static const field fields[] = {
    FS(build_commit, K_SETTING), FS(strata_version, K_SETTING), FS(cpu_info, K_SETTING), FS(gpu_info, K_SETTING),
    FS(backends, K_SETTING), FS(model_filename, K_SETTING), FS(model_name, 0), FS(model_type, K_SETTING),
    FU(model_size, 0), FU(model_n_params, 0), FI(n_batch, K_SETTING), FI(n_ctx, 0), FI(n_threads, K_SETTING),
    FS(test, 0), FI(n_prompt, 0), FI(n_gen, 0), FI(reps, 0), FS(test_time, 0),
    FU(avg_ns, K_RESULT), FU(stddev_ns, K_RESULT), FD(avg_ts, K_RESULT), FD(stddev_ts, K_RESULT),
    FP(samples_ns, K_RESULT), FP(samples_ts, K_RESULT), FD(avg_gbps, K_RESULT),
    FB(budgeted, K_SETTING), FI(cache_layers, K_SETTING | K_STORE), FU(mem_budget, K_SETTING | K_STORE),
    FS(cache_policy, K_SETTING | K_STORE), FI(n_slots, K_SETTING | K_STORE), FS(prefetch, K_SETTING | K_STORE),
    FI(prefetch_distance, K_STORE | K_RESULT), FI(prefetch_threads, K_SETTING | K_STORE),
    FB(direct_io, K_SETTING | K_STORE), FD(ready_rate, K_STORE | K_RESULT), FU(stall_ns, K_STORE | K_RESULT),
    FU(bytes_read, K_STORE | K_RESULT), FU(peak_resident_bytes, K_STORE | K_RESULT),
    FU(peak_rss_bytes, K_RESULT), FU(vram_budget, K_SETTING | K_VRAM),
    FU(host_cache_bytes, K_SETTING | K_STORE),
};
#undef R
#define N_FIELDS ((int)(sizeof fields / sizeof fields[0]))

static bool field_null(const field *fd, const st_db_bench_row *r) {
    if ((fd->kind & K_STORE) && !r->budgeted) return true;
    if ((fd->kind & K_VRAM) && !r->vram_budget) return true;
    if (fd->t == F_PSTR) return *(const char *const *)((const char *)r + fd->off) == NULL;
    return false;
}

#define FV(type) (*(const type *)((const char *)r + fd->off))

/* ---------------------------------------------------------------------------
 * build and machine */
#include "strata_build_commit.h" /* generated at build time: STRATA_BUILD_COMMIT */

const char *st_db_build_commit(void) { return STRATA_BUILD_COMMIT[0] ? STRATA_BUILD_COMMIT : "unknown"; }

void st_db_cpu_info(char *buf, size_t n) {
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        char *c = strchr(line, ':');
        if (!c) continue;
        c++;
        while (*c == ' ' || *c == '\t') c++;
        size_t l = strlen(c);
        while (l && (c[l - 1] == '\n' || c[l - 1] == ' ')) c[--l] = 0;
        snprintf(buf, n, "%s", c);
        break;
    }
    fclose(f);
}

void st_db_bench_row_init(st_db_bench_row *r) {
    memset(r, 0, sizeof *r);
    snprintf(r->build_commit, sizeof r->build_commit, "%s", st_db_build_commit());
    snprintf(r->strata_version, sizeof r->strata_version, "%s", STRATA_VERSION);
    st_db_cpu_info(r->cpu_info, sizeof r->cpu_info);
}

/* ---------------------------------------------------------------------------
 * storing and reading */
st_status st_db_bench_add(st_db *db, st_db_bench_row *r, st_error *err) {
    char sql[4096];
    int o = snprintf(sql, sizeof sql, "INSERT INTO bench_runs (run, created");
    for (int i = 0; i < N_FIELDS; i++) o += snprintf(sql + o, sizeof sql - (size_t)o, ", %s", fields[i].name);
    o += snprintf(sql + o, sizeof sql - (size_t)o, ") VALUES (?, ?");
    for (int i = 0; i < N_FIELDS; i++) o += snprintf(sql + o, sizeof sql - (size_t)o, ", ?");
    snprintf(sql + o, sizeof sql - (size_t)o, ")");

    st_status rc = dbi_begin(db, err);
    if (rc) return rc;
    sqlite3_stmt *st;
    if ((rc = dbi_prepare(db, sql, &st, err))) { dbi_rollback(db); return rc; }
    if (r->run) sqlite3_bind_int64(st, 1, r->run);
    else sqlite3_bind_int(st, 1, 0); /* set to the row id below */
    sqlite3_bind_int64(st, 2, r->created_ms ? r->created_ms : st_db_now_ms());
    for (int i = 0; i < N_FIELDS; i++) {
        const field *fd = &fields[i];
        int k = i + 3;
        if (field_null(fd, r)) { sqlite3_bind_null(st, k); continue; }
        switch (fd->t) {
        case F_STR: sqlite3_bind_text(st, k, (const char *)r + fd->off, -1, SQLITE_TRANSIENT); break;
        case F_PSTR: sqlite3_bind_text(st, k, FV(char *), -1, SQLITE_TRANSIENT); break;
        case F_INT: sqlite3_bind_int(st, k, FV(int)); break;
        case F_U64: sqlite3_bind_int64(st, k, (sqlite3_int64)FV(uint64_t)); break;
        case F_DBL: sqlite3_bind_double(st, k, FV(double)); break;
        case F_BOOL: sqlite3_bind_int(st, k, FV(bool)); break;
        }
    }
    int s = sqlite3_step(st);
    sqlite3_finalize(st);
    if (s != SQLITE_DONE) { rc = dbi_fail(db, err, "saving a benchmark result"); dbi_rollback(db); return rc; }
    int64_t id = sqlite3_last_insert_rowid(db->h);
    if (!r->run) {
        if ((rc = dbi_prepare(db, "UPDATE bench_runs SET run = id WHERE id = ?1", &st, err))) { dbi_rollback(db); return rc; }
        sqlite3_bind_int64(st, 1, id);
        s = sqlite3_step(st);
        sqlite3_finalize(st);
        if (s != SQLITE_DONE) { rc = dbi_fail(db, err, "saving a benchmark result"); dbi_rollback(db); return rc; }
    }
    if ((rc = dbi_commit(db, err))) return rc;
    r->id = id;
    if (!r->run) r->run = id;
    return ST_OK;
}

static void row_from_stmt(sqlite3_stmt *st, st_db_bench_row *r) {
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(st, 0);
    r->run = sqlite3_column_int64(st, 1);
    r->created_ms = sqlite3_column_int64(st, 2);
    for (int i = 0; i < N_FIELDS; i++) {
        const field *fd = &fields[i];
        int k = i + 3;
        void *p = (char *)r + fd->off;
        if (sqlite3_column_type(st, k) == SQLITE_NULL) continue;
        switch (fd->t) {
        case F_STR: snprintf(p, fd->size, "%s", dbi_col_text(st, k)); break;
        case F_PSTR: *(const char **)p = dbi_col_text(st, k); break;
        case F_INT: *(int *)p = sqlite3_column_int(st, k); break;
        case F_U64: *(uint64_t *)p = (uint64_t)sqlite3_column_int64(st, k); break;
        case F_DBL: *(double *)p = sqlite3_column_double(st, k); break;
        case F_BOOL: *(bool *)p = sqlite3_column_int(st, k) != 0; break;
        }
    }
}

st_status st_db_bench_list(st_db *db, const st_db_bench_filter *f, st_db_bench_cb cb, void *user, st_error *err) {
    static const st_db_bench_filter none = {0};
    if (!f) f = &none;
    char sql[4096];
    int o = snprintf(sql, sizeof sql, "SELECT id, run, created");
    for (int i = 0; i < N_FIELDS; i++) o += snprintf(sql + o, sizeof sql - (size_t)o, ", %s", fields[i].name);
    /* with a limit: the newest rows, still printed oldest first */
    snprintf(sql + o, sizeof sql - (size_t)o,
             " FROM (SELECT * FROM bench_runs WHERE (?1 IS NULL OR instr(lower(model_filename), lower(?1)) > 0 "
             "OR instr(lower(model_name), lower(?1)) > 0 OR instr(lower(model_type), lower(?1)) > 0) "
             "AND (?2 IS NULL OR instr(lower(backends), lower(?2)) > 0) AND (?3 = 0 OR run = ?3) "
             "ORDER BY run DESC, id DESC LIMIT ?4) ORDER BY run, id");
    sqlite3_stmt *st;
    st_status rc = dbi_prepare(db, sql, &st, err);
    if (rc) return rc;
    dbi_bind_text(st, 1, f->model && *f->model ? f->model : NULL);
    dbi_bind_text(st, 2, f->backend && *f->backend ? f->backend : NULL);
    sqlite3_bind_int64(st, 3, f->run);
    sqlite3_bind_int(st, 4, f->limit > 0 ? f->limit : -1);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        st_db_bench_row r;
        row_from_stmt(st, &r);
        if (!cb(user, &r)) { s = SQLITE_DONE; break; }
    }
    rc = s == SQLITE_DONE ? ST_OK : dbi_fail(db, err, "reading benchmark results");
    sqlite3_finalize(st);
    return rc;
}

/* ---------------------------------------------------------------------------
 * list and compare */
static void fmt_store(const st_db_bench_row *r, char *buf, size_t n) {
    if (!r->budgeted) { snprintf(buf, n, "-"); return; }
    char b[32];
    if (r->mem_budget) snprintf(b, sizeof b, "%.0fM", r->mem_budget / 1048576.0);
    else snprintf(b, sizeof b, "%dL", r->cache_layers);
    char hc[32] = "";
    if (r->host_cache_bytes) snprintf(hc, sizeof hc, " hc=%.0fM", r->host_cache_bytes / 1048576.0);
    snprintf(buf, n, "%s %s pf=%s%s%s", r->cache_policy, b, r->prefetch, r->direct_io ? " dio" : "", hc);
}

static void short_model(const st_db_bench_row *r, char *buf, size_t n) {
    const char *base = strrchr(r->model_filename, '/');
    base = base ? base + 1 : r->model_filename;
    snprintf(buf, n, "%.40s", base);
}

typedef struct {
    FILE *out;
    int n;
} list_ctx;

static bool list_row(void *user, const st_db_bench_row *r) {
    list_ctx *x = user;
    FILE *f = x->out;
    if (x->n++ == 0) {
        fprintf(f, "| %5s | %-16s | %-14s | %-28s | %-7s | %7s | %8s | %20s | %-22s | %7s |\n", "run", "time", "commit",
                "model", "backend", "threads", "test", "t/s", "store", "ready");
        fprintf(f, "| ----: | ---------------- | -------------- | ---------------------------- | ------- | ------: | "
                   "-------: | -------------------: | ---------------------- | ------: |\n");
    }
    char t[32], m[48], ts[48], store[96], ready[16];
    st_db_format_time(r->created_ms, t, sizeof t);
    short_model(r, m, sizeof m);
    snprintf(ts, sizeof ts, "%.2f ± %.2f", r->avg_ts, r->stddev_ts);
    fmt_store(r, store, sizeof store);
    if (r->budgeted) snprintf(ready, sizeof ready, "%.1f%%", 100 * r->ready_rate);
    else snprintf(ready, sizeof ready, "-");
    fprintf(f, "| %5lld | %-16s | %-14.14s | %-28.28s | %-7s | %7d | %8s | %21s | %-22s | %7s |\n", (long long)r->run, t,
            r->build_commit, m, r->backends, r->n_threads, r->test, ts, store, ready);
    return true;
}

st_status st_db_bench_print_list(st_db *db, const st_db_bench_filter *f, FILE *out, st_error *err) {
    list_ctx x = {out, 0};
    st_status rc = st_db_bench_list(db, f, list_row, &x, err);
    if (!rc && x.n == 0) fprintf(out, "no stored benchmark runs%s\n", f && (f->model || f->backend) ? " match" : "");
    return rc;
}

typedef struct {
    st_db_bench_row *rows;
    int n, cap;
} row_vec;

static bool collect(void *user, const st_db_bench_row *r) {
    row_vec *v = user;
    if (v->n == v->cap) {
        int cap = v->cap ? 2 * v->cap : 16;
        st_db_bench_row *nr = realloc(v->rows, (size_t)cap * sizeof *nr);
        if (!nr) return false;
        v->rows = nr;
        v->cap = cap;
    }
    v->rows[v->n] = *r;
    v->rows[v->n].samples_ns = v->rows[v->n].samples_ts = NULL; /* borrowed: gone after the callback */
    v->n++;
    return true;
}

static void field_str(const field *fd, const st_db_bench_row *r, char *buf, size_t n) {
    if (field_null(fd, r)) { snprintf(buf, n, "-"); return; }
    switch (fd->t) {
    case F_STR: snprintf(buf, n, "%s", (const char *)r + fd->off); break;
    case F_PSTR: snprintf(buf, n, "%s", FV(char *)); break;
    case F_INT: snprintf(buf, n, "%d", FV(int)); break;
    case F_U64: snprintf(buf, n, "%llu", (unsigned long long)FV(uint64_t)); break;
    case F_DBL: snprintf(buf, n, "%.6g", FV(double)); break;
    case F_BOOL: snprintf(buf, n, "%s", FV(bool) ? "true" : "false"); break;
    }
}

st_status st_db_bench_compare(st_db *db, int64_t run_a, int64_t run_b, FILE *out, st_error *err) {
    row_vec a = {0}, b = {0};
    st_db_bench_filter fa = {.run = run_a}, fb = {.run = run_b};
    st_status rc = st_db_bench_list(db, &fa, collect, &a, err);
    if (!rc) rc = st_db_bench_list(db, &fb, collect, &b, err);
    if (rc) goto out;
    if (!a.n || !b.n) {
        rc = st_error_set(err, ST_ERR_ARG, "no stored benchmark run %lld (see strata bench list)",
                          (long long)(!a.n ? run_a : run_b));
        goto out;
    }
    /* match: same test and threads, then prefer the same model file, then the same type */
    int *match = malloc((size_t)a.n * sizeof *match);
    bool *used = calloc((size_t)b.n, sizeof *used);
    if (!match || !used) { free(match); free(used); rc = st_error_set(err, ST_ERR_NOMEM, "out of memory"); goto out; }
    for (int i = 0; i < a.n; i++) {
        match[i] = -1;
        for (int pass = 0; pass < 3 && match[i] < 0; pass++)
            for (int j = 0; j < b.n && match[i] < 0; j++) {
                const st_db_bench_row *x = &a.rows[i], *y = &b.rows[j];
                if (used[j] || strcmp(x->test, y->test) || x->n_threads != y->n_threads) continue;
                if (pass == 0 && strcmp(x->model_filename, y->model_filename)) continue;
                if (pass == 1 && strcmp(x->model_type, y->model_type)) continue;
                match[i] = j;
                used[j] = true;
            }
    }
    char ta[32], tb[32];
    st_db_format_time(a.rows[0].created_ms, ta, sizeof ta);
    st_db_format_time(b.rows[0].created_ms, tb, sizeof tb);
    fprintf(out, "A: run %lld, %s, %s\nB: run %lld, %s, %s\n", (long long)run_a, ta, a.rows[0].build_commit,
            (long long)run_b, tb, b.rows[0].build_commit);
    /* the settings that differ (between the first matched pair) */
    int i0 = 0;
    while (i0 < a.n && match[i0] < 0) i0++;
    const st_db_bench_row *pa = &a.rows[i0 < a.n ? i0 : 0], *pb = &b.rows[i0 < a.n ? match[i0] : 0];
    bool any = false;
    for (int k = 0; k < N_FIELDS; k++) {
        if (!(fields[k].kind & K_SETTING)) continue;
        char va[1100], vb[1100];
        field_str(&fields[k], pa, va, sizeof va);
        field_str(&fields[k], pb, vb, sizeof vb);
        if (strcmp(va, vb)) {
            if (!any) fputs("\ndiffering settings:\n", out);
            fprintf(out, "  %-18s A: %s\n  %-18s B: %s\n", fields[k].name, va, "", vb);
            any = true;
        }
    }
    if (!any) fputs("\nsettings: the same\n", out);
    bool store = false;
    for (int i = 0; i < a.n; i++) store |= a.rows[i].budgeted;
    for (int j = 0; j < b.n; j++) store |= b.rows[j].budgeted;
    fprintf(out, "\n| %-28s | %8s | %7s | %12s | %12s | %7s |", "model", "test", "threads", "A t/s", "B t/s", "B/A");
    if (store) fprintf(out, " %7s | %7s | %10s | %10s |", "A ready", "B ready", "A stall/t", "B stall/t");
    fprintf(out, "\n| ---------------------------- | -------: | ------: | -----------: | -----------: | ------: |");
    if (store) fprintf(out, " ------: | ------: | ---------: | ---------: |");
    fputc('\n', out);
    for (int i = 0; i < a.n; i++) {
        if (match[i] < 0) continue;
        const st_db_bench_row *x = &a.rows[i], *y = &b.rows[match[i]];
        char m[48];
        short_model(x, m, sizeof m);
        fprintf(out, "| %-28.28s | %8s | %7d | %12.2f | %12.2f | %7.3f |", m, x->test, x->n_threads, x->avg_ts, y->avg_ts,
                x->avg_ts > 0 ? y->avg_ts / x->avg_ts : 0.0);
        if (store) {
            char r[2][16], s[2][24];
            const st_db_bench_row *xy[2] = {x, y};
            for (int k = 0; k < 2; k++) {
                const st_db_bench_row *z = xy[k];
                int toks = z->n_gen ? z->n_gen : z->n_prompt;
                double per = (double)toks * (z->reps ? z->reps : 1);
                if (z->budgeted) {
                    snprintf(r[k], sizeof r[k], "%.1f%%", 100 * z->ready_rate);
                    snprintf(s[k], sizeof s[k], "%.2f ms", per > 0 ? z->stall_ns / 1e6 / per : 0.0);
                } else {
                    snprintf(r[k], sizeof r[k], "-");
                    snprintf(s[k], sizeof s[k], "-");
                }
            }
            fprintf(out, " %7s | %7s | %10s | %10s |", r[0], r[1], s[0], s[1]);
        }
        fputc('\n', out);
    }
    int unmatched = 0;
    for (int i = 0; i < a.n; i++) unmatched += match[i] < 0;
    for (int j = 0; j < b.n; j++) unmatched += !used[j];
    if (unmatched) fprintf(out, "\n%d test(s) without a counterpart in the other run are not shown\n", unmatched);
    free(match);
    free(used);
out:
    free(a.rows);
    free(b.rows);
    return rc;
}

/* ---------------------------------------------------------------------------
 * llama-bench output formats */
static void csv_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void sql_str(FILE *f, const char *s) {
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static const char *sql_type(ftype t) {
    return t == F_STR || t == F_PSTR ? "TEXT" : t == F_DBL ? "REAL" : "INTEGER";
}

void st_db_bench_print_begin(FILE *f, st_db_out_format fmt) {
    if (fmt == ST_DB_OUT_CSV) {
        for (int i = 0; i < N_FIELDS; i++) fprintf(f, "%s%s", i ? "," : "", fields[i].name);
        fputc('\n', f);
    } else if (fmt == ST_DB_OUT_JSON) {
        fputs("[\n", f);
    } else {
        fputs("CREATE TABLE IF NOT EXISTS test (\n", f);
        for (int i = 0; i < N_FIELDS; i++)
            fprintf(f, "  %s %s%s\n", fields[i].name, sql_type(fields[i].t), i + 1 < N_FIELDS ? "," : "");
        fputs(");\n", f);
    }
    fflush(f);
}

void st_db_bench_print_row(FILE *f, st_db_out_format fmt, const st_db_bench_row *r, bool first) {
    if (fmt == ST_DB_OUT_JSON) fputs(first ? "  {\n" : ",\n  {\n", f);
    if (fmt == ST_DB_OUT_SQL) {
        fputs("INSERT INTO test (", f);
        for (int i = 0; i < N_FIELDS; i++) fprintf(f, "%s%s", i ? ", " : "", fields[i].name);
        fputs(") VALUES (", f);
    }
    for (int i = 0; i < N_FIELDS; i++) {
        const field *fd = &fields[i];
        if (fmt == ST_DB_OUT_CSV && i) fputc(',', f);
        if (fmt == ST_DB_OUT_SQL && i) fputs(", ", f);
        if (fmt == ST_DB_OUT_JSON) fprintf(f, "    \"%s\": ", fd->name);
        bool null = field_null(fd, r);
        if (null) {
            if (fmt != ST_DB_OUT_CSV) fputs(fmt == ST_DB_OUT_JSON ? "null" : "NULL", f);
        } else if (fd->t == F_STR || fd->t == F_PSTR) {
            const char *s = fd->t == F_STR ? (const char *)r + fd->off : FV(char *);
            if (fmt == ST_DB_OUT_JSON && fd->t == F_PSTR) {
                fprintf(f, "[%s]", s); /* numbers separated by commas: a JSON array */
            } else {
                (fmt == ST_DB_OUT_CSV ? csv_str : fmt == ST_DB_OUT_SQL ? sql_str : json_str)(f, s);
            }
        } else if (fd->t == F_DBL && !isfinite(FV(double))) {
            fputs(fmt == ST_DB_OUT_CSV ? "" : fmt == ST_DB_OUT_JSON ? "null" : "NULL", f);
        } else if (fd->t == F_BOOL && fmt == ST_DB_OUT_JSON) {
            fputs(FV(bool) ? "true" : "false", f);
        } else {
            char v[64];
            field_str(fd, r, v, sizeof v);
            if (fd->t == F_BOOL) snprintf(v, sizeof v, "%d", FV(bool) ? 1 : 0);
            fputs(v, f);
        }
        if (fmt == ST_DB_OUT_JSON) fputs(i + 1 < N_FIELDS ? ",\n" : "\n  }", f);
    }
    if (fmt == ST_DB_OUT_SQL) fputs(");", f);
    if (fmt != ST_DB_OUT_JSON) fputc('\n', f);
    fflush(f);
}

void st_db_bench_print_end(FILE *f, st_db_out_format fmt) {
    if (fmt == ST_DB_OUT_JSON) fputs("\n]\n", f);
    fflush(f);
}
