/* benchdb.h — stored benchmark results (table bench_runs) and their
 * llama-bench compatible output formats.
 *
 * A row is one test (pp512, tg128, ...) of one `strata bench` invocation;
 * the rows of one invocation share a run number (the id of its first row).
 * The columns follow llama-bench where they apply (names included) and add
 * the layer store's figures. */
#ifndef ST_DB_BENCHDB_H
#define ST_DB_BENCHDB_H

#include "db.h"

#include <stdio.h>

typedef struct st_db_bench_row {
    int64_t id, run;            /* run 0 on insert: a new run, numbered by this row's id */
    int64_t created_ms;         /* 0 on insert: now */
    /* build and machine */
    char build_commit[64];      /* `git describe --always --dirty` at build time, or "unknown" */
    char strata_version[16];
    char cpu_info[128];         /* /proc/cpuinfo "model name" */
    char gpu_info[128];
    char backends[16];          /* "CPU" */
    /* model */
    char model_filename[1024];
    char model_name[128];
    char model_type[32];        /* "Q4_K_M" */
    uint64_t model_size, model_n_params;
    /* settings */
    int n_batch, n_ctx, n_threads;
    /* the test and its results */
    char test[32];              /* "pp512", "tg128" */
    int n_prompt, n_gen, reps;
    char test_time[32];         /* UTC ISO 8601, when the test started */
    uint64_t avg_ns, stddev_ns;
    double avg_ts, stddev_ts;
    const char *samples_ns;     /* comma-separated, as llama-bench; borrowed (readers: valid in the callback) */
    const char *samples_ts;
    double avg_gbps;            /* weight bytes a pass reads x passes per second */
    /* the layer store (columns are NULL when not budgeted) */
    bool budgeted;
    int cache_layers;           /* 0: budget in bytes */
    uint64_t mem_budget;        /* 0: budget in layers */
    char cache_policy[8];       /* "ring", "lru" */
    int n_slots;
    char prefetch[8];           /* "auto", "off" or the fixed distance */
    int prefetch_distance;      /* the largest distance reached */
    int prefetch_threads;
    bool direct_io;
    double ready_rate;          /* acquisitions that did not wait, 0..1 */
    uint64_t stall_ns, bytes_read, peak_resident_bytes;
    uint64_t peak_rss_bytes;    /* of the process */
    uint64_t vram_budget;       /* Vulkan: device memory budget (0: none) */
    uint64_t host_cache_bytes;  /* the store's host cache: pinned memory holding streamed GPU layers (0: none) */
} st_db_bench_row;

/* Zeroes r and fills the build and machine fields and strata_version. */
void st_db_bench_row_init(st_db_bench_row *r);
/* The build's commit (`git describe --always --dirty`) or "unknown". */
const char *st_db_build_commit(void);
/* The CPU's model name from /proc/cpuinfo, or "unknown". */
void st_db_cpu_info(char *buf, size_t n);

/* Stores a row in its own transaction; sets r->id (and r->run when it was 0). */
st_status st_db_bench_add(st_db *db, st_db_bench_row *r, st_error *err);

typedef struct st_db_bench_filter {
    const char *model;    /* part of the model file, name or type; NULL: any */
    const char *backend;  /* NULL: any */
    int64_t run;          /* 0: any */
    int limit;            /* <= 0: all (the newest runs' rows when limited) */
} st_db_bench_filter;
typedef bool (*st_db_bench_cb)(void *user, const st_db_bench_row *r);
/* Rows oldest first (by run, then id). */
st_status st_db_bench_list(st_db *db, const st_db_bench_filter *f, st_db_bench_cb cb, void *user, st_error *err);
/* Prints the stored rows as a table (bench list). */
st_status st_db_bench_print_list(st_db *db, const st_db_bench_filter *f, FILE *out, st_error *err);
/* Side by side: each test of run a matched with the same test of run b
 * (same threads, and the same model when both runs have it), with the ratio
 * b/a of tokens/s; settings that differ are listed first. */
st_status st_db_bench_compare(st_db *db, int64_t run_a, int64_t run_b, FILE *out, st_error *err);

/* llama-bench's -o formats: CSV (a header, then one line per test), JSON (an
 * array of objects), SQL (CREATE TABLE IF NOT EXISTS test + INSERTs, for
 * `| sqlite3 file.db`). begin before the first row, end after the last. */
typedef enum { ST_DB_OUT_CSV, ST_DB_OUT_JSON, ST_DB_OUT_SQL } st_db_out_format;
void st_db_bench_print_begin(FILE *f, st_db_out_format fmt);
void st_db_bench_print_row(FILE *f, st_db_out_format fmt, const st_db_bench_row *r, bool first);
void st_db_bench_print_end(FILE *f, st_db_out_format fmt);

#endif
