/* testutil.h — helpers shared by the Criterion tests. */
#ifndef ST_TESTUTIL_H
#define ST_TESTUTIL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
/* A fresh directory in /dev/shm (removed with its contents when the process
 * exits) when there is one, else tu_tmpdir(): databases commit with fsync
 * (synchronous=FULL), which costs ~100 ms a commit on some disks. */
const char *tu_fast_dir(const char *tag);

/* llama.cpp's tokenizer test vectors: NAME.inp holds the cases separated by
 * "\n__ggml_vocab_test__\n", NAME.out one line of ids per case. */
typedef struct {
    char *text;
    size_t len;
    int32_t *ids;
    int64_t n;
} tu_vocab_case;
/* Loads "<shared>/<vocab>.inp/.out"; returns the case count, or -1 with a
 * reason in why[] when the files are missing or malformed. */
int tu_vocab_cases_load(const char *vocab, tu_vocab_case **out, char *why, size_t why_cap);
void tu_vocab_cases_free(tu_vocab_case *cs, int nc);

#endif
