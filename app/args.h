/* args.h — small helpers for parsing subcommand options. */
#ifndef ST_ARGS_H
#define ST_ARGS_H

#include <stdbool.h>
#include <stdint.h>

/* Fetches the value of option argv[*i] (advancing *i); prints an error and
 * returns NULL when it is missing. */
const char *arg_value(int argc, char **argv, int *i, const char *cmd);
/* Parses an integer/float option value, printing an error naming the option. */
bool arg_int(const char *cmd, const char *opt, const char *v, long lo, long hi, long *out);
bool arg_float(const char *cmd, const char *opt, const char *v, double *out);
/* "512M", "2G", "1.5GiB", "1000000" -> bytes */
bool arg_size(const char *cmd, const char *opt, const char *v, uint64_t *out);
/* the bundled default model, found next to the binary or in the source tree */
const char *default_model_path(void);

#endif
