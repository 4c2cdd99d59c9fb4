/* store_opts.h — the layer store's command-line options (shared by run and
 * bench) and the report of its figures. */
#ifndef ST_STORE_OPTS_H
#define ST_STORE_OPTS_H

#include "strata.h"
#include <stdio.h>

/* The options' help lines. */
extern const char *const store_opts_help;
/* If argv[*i] is a store option, parses it (and its value, advancing *i)
 * into p: returns 1, or -1 after printing an error. 0: not a store option. */
int store_opt_parse(const char *cmd, int argc, char **argv, int *i, st_session_params *p);
/* A --host-cache that caches nothing: why, in one line (nothing otherwise).
 * backend: the session's (st_stats.backend). */
void store_host_cache_notice(FILE *f, const char *cmd, const st_session_params *p, const char *backend,
                             const st_store_figures *t);
/* One line always (the store's mode); with a budget, its figures. */
void store_print_figures(FILE *f, const st_store_figures *t);

#endif
