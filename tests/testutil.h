/* testutil.h — helpers shared by the Criterion tests. */
#ifndef ST_TESTUTIL_H
#define ST_TESTUTIL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* "<shared>/<rel>" into a static buffer (one per call site: copy if needed) */
const char *tu_shared_path(const char *rel);
/* "<source>/<rel>" */
const char *tu_source_path(const char *rel);
bool tu_file_exists(const char *path);
/* Reads a whole file; NULL if absent. *len may be NULL. Caller frees. */
char *tu_read_file(const char *path, size_t *len);
/* Parses a JSON file; NULL if absent or invalid. Caller cJSON_Delete()s. */
cJSON *tu_read_json(const char *path);
/* A fresh temporary directory for the test (removed by nobody; under /tmp). */
const char *tu_tmpdir(void);

#endif
