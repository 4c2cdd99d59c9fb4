/* mem.h — how much host memory a session may reserve, for the up-front check
 * in st_session_new.
 *
 * Why a check at all: the KV cache and the layer slots are allocated with
 * posix_memalign, which under Linux's overcommit succeeds for sizes the
 * machine cannot back; the pages are only touched as the context fills, and
 * the process is then OOM-killed in the middle of a reply. Refusing up front,
 * with the numbers, is what a user can act on.
 *
 * What is available: MemAvailable of /proc/meminfo (free memory plus what the
 * kernel can reclaim, page cache included: the mmapped weights are file-backed
 * and do not count), lowered to memory.max - memory.current of the process's
 * cgroup (v2) and of each ancestor that sets a limit (a container is killed at
 * its cgroup limit whatever the machine has). Overrides, first match wins:
 * st_set_mem_limit(), then STRATA_MEM_LIMIT=SIZE in the environment (bytes or
 * 512M / 2G / 1.5GiB ...; "off" disables the check). */
#ifndef ST_MEM_H
#define ST_MEM_H

#include "error.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct st_mem_avail {
    bool limited;       /* false: nothing to check against (STRATA_MEM_LIMIT=off, no /proc) */
    uint64_t bytes;     /* available bytes, when limited */
    char source[160];   /* where the figure comes from, for messages */
} st_mem_avail;

/* The figure the session check uses (overrides, then detection). Fails only
 * for a STRATA_MEM_LIMIT that is not a size (ST_ERR_ARG). */
st_status st_mem_available(st_mem_avail *out, st_error *err);

/* Detection alone, reading proc_dir/meminfo, proc_dir/self/cgroup and the
 * cgroup v2 tree under cgroup_root (tests point these at fake files). */
void st_mem_detect(const char *proc_dir, const char *cgroup_root, st_mem_avail *out);

/* "512M", "2G", "1.5GiB", "1073741824" -> bytes; false if not a size. */
bool st_mem_parse_size(const char *s, uint64_t *out);

/* "16.0 GiB", "26.5 MiB", "512 KiB", "100 B" into buf. */
const char *st_mem_fmt(uint64_t bytes, char *buf, size_t cap);

#endif
