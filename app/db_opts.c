#include "db_opts.h"

const char *const db_opts_help =
    "      --db PATH           the database (default: $XDG_DATA_HOME/strata/strata.db,\n"
    "                          else ~/.local/share/strata/strata.db)\n";

st_status db_open_path(const char *path, bool create, st_db **out, st_error *err) {
    char def[4096];
    *out = NULL;
    if (!path) {
        st_status rc = st_db_default_path(def, sizeof def, create, err);
        if (rc) return rc;
        path = def;
    }
    return st_db_open(path, create ? ST_DB_CREATE : 0, out, err);
}
