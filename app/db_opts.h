/* db_opts.h — opening strata's database from the command line (--db PATH),
 * shared by history, run --save and bench. */
#ifndef ST_DB_OPTS_H
#define ST_DB_OPTS_H

#include "db.h"

/* The --db help line. */
extern const char *const db_opts_help;
/* Opens the database at path (NULL: the default path, its directories
 * created). create: make the file when missing. On failure fills err (the
 * caller decides how to report it) and returns its status. */
st_status db_open_path(const char *path, bool create, st_db **out, st_error *err);

#endif
