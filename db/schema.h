/* schema.h — the ordered migrations (db/schema.c). */
#ifndef ST_DB_SCHEMA_H
#define ST_DB_SCHEMA_H

/* Number of migrations; equals ST_DB_SCHEMA_VERSION. */
int st_db_n_migrations(void);
/* The SQL taking a file from version from_version to from_version + 1. */
const char *st_db_migration(int from_version);

#endif
