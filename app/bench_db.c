#include "bench_db.h"

#include "args.h"
#include "db_opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *const bench_db_help =
    "Every run is stored in the database (see strata history); a stored run is listed,\n"
    "and two are compared, with\n"
    "  strata bench list [--model M] [--backend B] [--limit N] [--db PATH]\n"
    "  strata bench compare RUN_A RUN_B [--db PATH]   (tokens/s side by side, ratio B/A)\n"
    "\n"
    "  -o, --output FMT      md (the table, default), json (an array), jsonl (--json), csv or\n"
    "                        sql (CREATE TABLE + INSERTs: strata bench -o sql | sqlite3 llama-bench.db)\n"
    "      --no-save         do not store this run\n"
    "      --db PATH         the database (default: $XDG_DATA_HOME/strata/strata.db)\n";

bool bench_db_is_subcommand(int argc, char **argv) {
    return argc > 1 && (!strcmp(argv[1], "list") || !strcmp(argv[1], "compare"));
}

/* ---- storing ---- */
struct bench_saver {
    st_db *db;
    int64_t run;
    int n;
    bool failed;
};

bench_saver *bench_save_open(const char *db_path) {
    st_error err = {0};
    bench_saver *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (db_open_path(db_path, true, &s->db, &err)) {
        fprintf(stderr, "strata bench: cannot store the results: %s\nstrata bench: measuring without saving\n", err.msg);
        free(s);
        return NULL;
    }
    return s;
}

void bench_save_row(bench_saver *s, st_db_bench_row *r) {
    if (!s || s->failed) return;
    st_error err = {0};
    r->run = s->run;
    if (st_db_bench_add(s->db, r, &err)) {
        fprintf(stderr, "strata bench: could not store a result (the rest of this run is not stored either): %s\n",
                err.msg);
        s->failed = true;
        return;
    }
    s->run = r->run;
    s->n++;
}

void bench_save_close(bench_saver *s) {
    if (!s) return;
    if (s->n)
        fprintf(stderr, "strata bench: stored as run %lld in %s (strata bench list; strata bench compare %lld RUN)\n",
                (long long)s->run, st_db_path(s->db), (long long)s->run);
    st_db_close(s->db);
    free(s);
}

void bench_row_set_store(st_db_bench_row *r, const st_session_params *sp, const st_store_figures *t) {
    r->budgeted = t->budgeted;
    if (!t->budgeted) return;
    r->cache_layers = sp->cache_layers;
    r->mem_budget = sp->mem_budget;
    snprintf(r->cache_policy, sizeof r->cache_policy, "%s", t->policy == ST_CACHE_LRU ? "lru" : "ring");
    r->n_slots = t->n_slots;
    if (!t->prefetch_on || sp->prefetch == ST_PREFETCH_OFF) snprintf(r->prefetch, sizeof r->prefetch, "off");
    else if (sp->prefetch == ST_PREFETCH_AUTO) snprintf(r->prefetch, sizeof r->prefetch, "auto");
    else snprintf(r->prefetch, sizeof r->prefetch, "%d", sp->prefetch);
    r->prefetch_distance = t->distance_max;
    r->prefetch_threads = t->prefetch_threads;
    r->direct_io = t->direct_io;
    r->ready_rate = t->acquires ? (double)t->ready / t->acquires : 1.0;
    r->stall_ns = t->stall_ns;
    r->bytes_read = t->bytes_read;
    r->peak_resident_bytes = t->peak_resident_bytes;
    r->host_cache_bytes = t->host_cache_bytes;
}

/* ---- list / compare ---- */
static void help_list(void) {
    printf("usage: strata bench list [--model M] [--backend B] [--limit N] [--db PATH]\n\n"
           "The stored benchmark results, oldest run first: run, time, build commit, model,\n"
           "backend, threads, test, tokens/s (mean ± stddev), the layer store's settings and\n"
           "its ready-when-needed rate.\n\n"
           "  --model M     only models whose file, name or type contains M\n"
           "  --backend B   only backend B (CPU, Vulkan)\n"
           "  --limit N     only the newest N results\n");
}

static void help_compare(void) {
    printf("usage: strata bench compare RUN_A RUN_B [--db PATH]\n\n"
           "Puts two stored runs side by side, like llama.cpp's compare-llama-bench.py: the\n"
           "settings that differ, then each test of A next to the same test of B (same test\n"
           "and threads, preferring the same model) with tokens/s and the ratio B/A, and the\n"
           "layer store's ready rate and stall per token when either had a budget.\n");
}

static bool parse_run(const char *s, int64_t *out) {
    char *e;
    errno = 0;
    long long v = strtoll(s, &e, 10);
    if (errno || e == s || *e || v <= 0) {
        fprintf(stderr, "strata bench compare: expected a run number, got '%s' (see strata bench list)\n", s);
        return false;
    }
    *out = v;
    return true;
}

int cmd_bench_db(int argc, char **argv) {
    const bool list = !strcmp(argv[0], "list");
    const char *db_path = NULL;
    st_db_bench_filter f = {0};
    const char *pos[2];
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long l;
#define VAL() do { if (!(v = arg_value(argc, argv, &i, "bench"))) return 2; } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { list ? help_list() : help_compare(); return 0; }
        else if (!strcmp(a, "--db")) { VAL(); db_path = v; }
        else if (list && !strcmp(a, "--model")) { VAL(); f.model = v; }
        else if (list && !strcmp(a, "--backend")) { VAL(); f.backend = v; }
        else if (list && !strcmp(a, "--limit")) { VAL(); if (!arg_int("bench", a, v, 0, 1L << 30, &l)) return 2; f.limit = (int)l; }
        else if (a[0] == '-') { fprintf(stderr, "strata bench %s: unknown option '%s'\n", argv[0], a); return 2; }
        else if (!list && n_pos < 2) pos[n_pos++] = a;
        else { fprintf(stderr, "strata bench %s: unexpected argument '%s'\n", argv[0], a); return 2; }
#undef VAL
    }
    int64_t ra = 0, rb = 0;
    if (!list && (n_pos != 2 || !parse_run(pos[0], &ra) || !parse_run(pos[1], &rb))) {
        if (n_pos != 2) fprintf(stderr, "strata bench compare: expected two run numbers (see strata bench list)\n");
        return 2;
    }
    char def[4096];
    st_error err = {0};
    if (!db_path) {
        if (st_db_default_path(def, sizeof def, false, &err)) { fprintf(stderr, "strata bench: %s\n", err.msg); return 1; }
        db_path = def;
    }
    struct stat sb;
    if (stat(db_path, &sb) != 0 && errno == ENOENT) {
        if (list) { printf("no stored benchmark runs (no database at %s)\n", db_path); return 0; }
        fprintf(stderr, "strata bench compare: no database at %s\n", db_path);
        return 1;
    }
    st_db *db;
    if (st_db_open(db_path, 0, &db, &err)) { fprintf(stderr, "strata bench: %s\n", err.msg); return 1; }
    st_status st = list ? st_db_bench_print_list(db, &f, stdout, &err) : st_db_bench_compare(db, ra, rb, stdout, &err);
    st_db_close(db);
    if (st) {
        fprintf(stderr, "strata bench %s: %s\n", argv[0], err.msg);
        return st == ST_ERR_ARG ? 2 : 1;
    }
    return 0;
}

/* ---- helpers for building rows ---- */
char *bench_join_u64(const uint64_t *v, int n) {
    char *s = malloc((size_t)n * 21 + 1), *p = s;
    if (!s) return NULL;
    *p = 0;
    for (int i = 0; i < n; i++) p += sprintf(p, "%s%llu", i ? "," : "", (unsigned long long)v[i]);
    return s;
}

char *bench_join_double(const double *v, int n) {
    char *s = malloc((size_t)n * 32 + 1), *p = s;
    if (!s) return NULL;
    *p = 0;
    for (int i = 0; i < n; i++) p += sprintf(p, "%s%.6g", i ? "," : "", v[i]);
    return s;
}

bool bench_parse_output(const char *v, int *fmt, bool *jsonl) {
    *jsonl = false;
    if (!strcmp(v, "md")) *fmt = -1;
    else if (!strcmp(v, "jsonl")) { *fmt = -1; *jsonl = true; }
    else if (!strcmp(v, "json")) *fmt = ST_DB_OUT_JSON;
    else if (!strcmp(v, "csv")) *fmt = ST_DB_OUT_CSV;
    else if (!strcmp(v, "sql")) *fmt = ST_DB_OUT_SQL;
    else {
        fprintf(stderr, "strata bench: -o expects md, json, jsonl, csv or sql, got '%s'\n", v);
        return false;
    }
    return true;
}
