/* bench_db.h — `strata bench`'s database side: storing each test's row,
 * `strata bench list` and `strata bench compare`. */
#ifndef ST_BENCH_DB_H
#define ST_BENCH_DB_H

#include "benchdb.h"

/* help lines of the options below and of list/compare */
extern const char *const bench_db_help;

/* `strata bench list ...` / `strata bench compare A B` (argv[0] is list or compare). */
int cmd_bench_db(int argc, char **argv);
/* true when argv[1] names one of them */
bool bench_db_is_subcommand(int argc, char **argv);

typedef struct bench_saver bench_saver;
/* Opens the database (db_path NULL: the default). On failure says why and
 * that the results will not be saved, and returns NULL (the bench goes on). */
bench_saver *bench_save_open(const char *db_path);
/* Stores one row (the first one numbers the run); reports a failure once. */
void bench_save_row(bench_saver *s, st_db_bench_row *r);
/* Says where the run went and frees s (NULL is fine). */
void bench_save_close(bench_saver *s);

/* The layer store's columns of r from the session's settings and the
 * figures over the timed repetitions. */
void bench_row_set_store(st_db_bench_row *r, const st_session_params *sp, const st_store_figures *t);

/* "1,2,3" (malloc'ed; NULL when out of memory) for samples_ns / samples_ts */
char *bench_join_u64(const uint64_t *v, int n);
char *bench_join_double(const double *v, int n);
/* -o FMT: md (*fmt -1), jsonl (*fmt -1, *jsonl), json, csv, sql (an st_db_out_format);
 * false after printing an error */
bool bench_parse_output(const char *v, int *fmt, bool *jsonl);

#endif
