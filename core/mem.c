/* mem.c — available host memory for the session check (see mem.h). */
#include "mem.h"

#include "strata.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Atomic uint64_t g_limit; /* ST_MEM_DETECT: no override */

void st_set_mem_limit(uint64_t bytes) { atomic_store(&g_limit, bytes); }

bool st_mem_parse_size(const char *s, uint64_t *out) {
    if (!s) return false;
    while (isspace((unsigned char)*s)) s++;
    if (!isdigit((unsigned char)*s) && *s != '.') return false; /* no sign, no "inf" */
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || end == s || !(x >= 0)) return false;
    double mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1024.0; break;
    case 'm': case 'M': mul = 1024.0 * 1024; break;
    case 'g': case 'G': mul = 1024.0 * 1024 * 1024; break;
    case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; break;
    default: break;
    }
    if (mul > 1) {
        end++;
        if (*end == 'i') end++;
        if (*end == 'B' || *end == 'b') end++;
    } else if (*end == 'B' || *end == 'b') {
        end++;
    }
    while (isspace((unsigned char)*end)) end++;
    if (*end || x * mul >= 1.8e19) return false;
    *out = (uint64_t)(x * mul);
    return true;
}

const char *st_mem_fmt(uint64_t b, char *buf, size_t cap) {
    if (b >= (1ull << 30)) snprintf(buf, cap, "%.1f GiB", b / 1073741824.0);
    else if (b >= (1ull << 20)) snprintf(buf, cap, "%.1f MiB", b / 1048576.0);
    else if (b >= (1ull << 10)) snprintf(buf, cap, "%.1f KiB", b / 1024.0);
    else snprintf(buf, cap, "%" PRIu64 " B", b);
    return buf;
}

/* "Key:   123 kB" from a meminfo-style file; false if absent. */
static bool meminfo_kb(const char *path, const char *key, uint64_t *out) {
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char line[256];
    size_t kl = strlen(key);
    bool found = false;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            char *e;
            unsigned long long v = strtoull(line + kl + 1, &e, 10);
            if (e != line + kl + 1) { *out = (uint64_t)v * 1024; found = true; }
            break;
        }
    }
    fclose(f);
    return found;
}

/* One number (or "max") from a cgroup file. */
static bool read_u64_file(const char *path, uint64_t *out, bool *is_max) {
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char buf[64] = {0};
    bool ok = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    if (!ok) return false;
    if (is_max) *is_max = !strncmp(buf, "max", 3);
    if (is_max && *is_max) return true;
    char *e;
    errno = 0;
    unsigned long long v = strtoull(buf, &e, 10);
    if (errno || e == buf) return false;
    *out = (uint64_t)v;
    return true;
}

/* dir/name into buf; false if it does not fit (then nothing is read) */
static bool join(char *buf, size_t cap, const char *dir, const char *name) {
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    return n > 0 && (size_t)n < cap;
}

/* "file N" of memory.stat: page cache charged to the cgroup, which the kernel
 * reclaims before it kills anything (the counterpart of MemAvailable's). */
static uint64_t cgroup_file_bytes(const char *dir) {
    char path[4200];
    if (!join(path, sizeof path, dir, "memory.stat")) return 0;
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[256];
    uint64_t v = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "file ", 5)) { v = strtoull(line + 5, NULL, 10); break; }
    fclose(f);
    return v;
}

void st_mem_detect(const char *proc_dir, const char *cgroup_root, st_mem_avail *out) {
    memset(out, 0, sizeof *out);
    char path[4200];
    uint64_t v;
    if (join(path, sizeof path, proc_dir, "meminfo") && meminfo_kb(path, "MemAvailable", &v)) {
        out->limited = true;
        out->bytes = v;
        snprintf(out->source, sizeof out->source, "MemAvailable");
    }
    /* cgroup v2: "0::/path" in /proc/self/cgroup; the limit of every level
     * from the process's group up to the root applies */
    if (!join(path, sizeof path, proc_dir, "self/cgroup")) return;
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[4096], rel[4096] = "";
    bool v2 = false;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "0::", 3)) {
            line[strcspn(line, "\n")] = 0;
            snprintf(rel, sizeof rel, "%s", line + 3);
            v2 = true;
            break;
        }
    }
    fclose(f);
    if (!v2) return;
    char dir[4200];
    int dn = snprintf(dir, sizeof dir, "%s%s", cgroup_root, strcmp(rel, "/") ? rel : "");
    if (dn < 0 || (size_t)dn >= sizeof dir) return;
    size_t root_len = strlen(cgroup_root);
    for (;;) {
        uint64_t max = 0, cur = 0;
        bool is_max = true;
        if (join(path, sizeof path, dir, "memory.max") && read_u64_file(path, &max, &is_max) && !is_max) {
            if (join(path, sizeof path, dir, "memory.current") && read_u64_file(path, &cur, NULL)) {
                uint64_t file = cgroup_file_bytes(dir);
                uint64_t used = cur > file ? cur - file : 0;
                uint64_t avail = max > used ? max - used : 0;
                if (!out->limited || avail < out->bytes) {
                    out->limited = true;
                    out->bytes = avail;
                    snprintf(out->source, sizeof out->source, "cgroup %s: memory.max %" PRIu64 " - %" PRIu64 " in use",
                             strlen(dir) > root_len ? dir + root_len : "/", max, used);
                }
            }
        }
        /* one level up, stopping at the root */
        if (strlen(dir) <= root_len) break;
        char *slash = strrchr(dir + root_len, '/');
        if (!slash) break;
        *slash = 0;
    }
}

st_status st_mem_available(st_mem_avail *out, st_error *err) {
    memset(out, 0, sizeof *out);
    uint64_t lim = atomic_load(&g_limit);
    if (lim == ST_MEM_UNLIMITED) {
        snprintf(out->source, sizeof out->source, "st_set_mem_limit (no limit)");
        return ST_OK;
    }
    if (lim != ST_MEM_DETECT) {
        out->limited = true;
        out->bytes = lim;
        snprintf(out->source, sizeof out->source, "st_set_mem_limit");
        return ST_OK;
    }
    const char *env = getenv("STRATA_MEM_LIMIT");
    if (env && *env) {
        if (!strcmp(env, "off") || !strcmp(env, "none")) {
            snprintf(out->source, sizeof out->source, "STRATA_MEM_LIMIT=off");
            return ST_OK;
        }
        uint64_t b;
        if (!st_mem_parse_size(env, &b))
            return st_error_set(err, ST_ERR_ARG, "STRATA_MEM_LIMIT='%s' is not a size (bytes, or like 512M, 2G; off = no check)",
                                env);
        out->limited = true;
        out->bytes = b;
        snprintf(out->source, sizeof out->source, "STRATA_MEM_LIMIT");
        return ST_OK;
    }
    st_mem_detect("/proc", "/sys/fs/cgroup", out);
    return ST_OK;
}
