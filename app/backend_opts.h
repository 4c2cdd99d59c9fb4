/* backend_opts.h — the compute-backend options of run and bench
 * (--backend cpu|vulkan|auto, --device N) and the line saying what was
 * chosen. */
#ifndef ST_BACKEND_OPTS_H
#define ST_BACKEND_OPTS_H

#include "strata.h"
#include <stdio.h>

extern const char *const backend_opts_help;
/* The command line's default: auto (a discrete Vulkan GPU if there is one). */
void backend_opts_default(st_session_params *p);
/* If argv[*i] is a backend option, parses it into p: returns 1, or -1 after
 * printing an error; 0: not a backend option. */
int backend_opt_parse(const char *cmd, int argc, char **argv, int *i, st_session_params *p);
/* After st_session_new: with auto, one line saying which backend runs
 * (and, on the CPU, why not the GPU). */
void backend_report(FILE *f, const char *cmd, const st_session_params *p, const st_session *s);

#endif
