/* fuzz_util.h — small helpers shared by the libFuzzer targets (tests/fuzz/).
 *
 * Data files are looked up at the path compiled in (STRATA_SOURCE_DIR /
 * STRATA_SHARED_DIR), then relative to the working directory, so that a
 * target built in one checkout can run from the root of another. */
#ifndef ST_FUZZ_UTIL_H
#define ST_FUZZ_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef STRATA_SOURCE_DIR
#define STRATA_SOURCE_DIR "."
#endif
#ifndef STRATA_SHARED_DIR
#define STRATA_SHARED_DIR "../shared"
#endif

/* The first of "<compiled dir>/<rel>", "./<rel>" that exists, into buf; NULL if neither. */
static inline const char *fz_find(const char *dir, const char *local_prefix, const char *rel, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", dir, rel);
    if (access(buf, R_OK) == 0) return buf;
    snprintf(buf, cap, "%s%s", local_prefix, rel);
    if (access(buf, R_OK) == 0) return buf;
    return NULL;
}
static inline const char *fz_source(const char *rel, char *buf, size_t cap) {
    return fz_find(STRATA_SOURCE_DIR, "", rel, buf, cap);
}
static inline const char *fz_shared(const char *rel, char *buf, size_t cap) {
    const char *p = fz_find(STRATA_SHARED_DIR, "../shared/", rel, buf, cap);
    return p ? p : fz_find("shared", "", rel, buf, cap);
}

/* Invariant check: a violated one aborts, which libFuzzer reports as a crash. */
#define FZ_CHECK(cond, ...)                                                          \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: invariant violated: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
            abort();                                                                 \
        }                                                                            \
    } while (0)

#endif
