#define _GNU_SOURCE /* memmem */
#include "testutil.h"
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *tu_shared_path(const char *rel) {
    static __thread char buf[4][4096];
    static __thread int k;
    k = (k + 1) & 3;
    snprintf(buf[k], sizeof buf[k], "%s/%s", STRATA_SHARED_DIR, rel);
    return buf[k];
}

const char *tu_source_path(const char *rel) {
    static __thread char buf[4][4096];
    static __thread int k;
    k = (k + 1) & 3;
    snprintf(buf[k], sizeof buf[k], "%s/%s", STRATA_SOURCE_DIR, rel);
    return buf[k];
}

bool tu_file_exists(const char *path) { return access(path, R_OK) == 0; }

char *tu_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    if (buf) { buf[n] = 0; if (len) *len = (size_t)n; }
    return buf;
}

cJSON *tu_read_json(const char *path) {
    char *s = tu_read_file(path, NULL);
    if (!s) return NULL;
    cJSON *j = cJSON_Parse(s);
    free(s);
    return j;
}

const char *tu_tmpdir(void) {
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/strata-test-XXXXXX");
        if (!mkdtemp(dir)) snprintf(dir, sizeof dir, "/tmp");
    }
    return dir;
}

static const char *fast_dir_made;
static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    remove(path);
    return 0;
}
static void remove_fast_dir(void) {
    if (fast_dir_made) nftw(fast_dir_made, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *tu_fast_dir(const char *tag) {
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/dev/shm/strata-test-%.32s-XXXXXX", tag);
        if (access("/dev/shm", W_OK) != 0 || !mkdtemp(dir)) snprintf(dir, sizeof dir, "%s", tu_tmpdir());
        else {
            fast_dir_made = dir;
            atexit(remove_fast_dir); /* /dev/shm is memory: leave nothing behind */
        }
    }
    return dir;
}

int tu_vocab_cases_load(const char *vocab, tu_vocab_case **out, char *why, size_t why_cap) {
    static const char SEP[] = "\n__ggml_vocab_test__\n";
    char pi[1024], po[1024];
    snprintf(pi, sizeof pi, "%.1000s.inp", vocab);
    snprintf(po, sizeof po, "%.1000s.out", vocab);
    size_t il = 0, ol = 0;
    char *inp = tu_read_file(tu_shared_path(pi), &il);
    char *outp = tu_read_file(tu_shared_path(po), &ol);
    tu_vocab_case *cs = calloc(128, sizeof *cs);
    int nc = 0;
    const char *err = NULL;
    if (!inp || !outp || !cs) { err = "missing .inp/.out next to the vocab"; goto done; }
    size_t seplen = strlen(SEP);
    char *p = inp, *end = inp + il;
    while (p < end) {
        char *q = memmem(p, (size_t)(end - p), SEP, seplen);
        if (!q) { err = "the .inp must end with the separator"; goto done; }
        if (nc >= 128) { err = "more than 128 cases"; goto done; }
        cs[nc].len = (size_t)(q - p);
        cs[nc].text = malloc(cs[nc].len + 1);
        memcpy(cs[nc].text, p, cs[nc].len);
        cs[nc].text[cs[nc].len] = 0;
        nc++;
        p = q + seplen;
    }
    char *line = outp;
    for (int i = 0; i < nc; i++) {
        char *nl = strchr(line, '\n');
        if (!nl) { err = ".out has fewer lines than .inp has cases"; goto done; }
        *nl = 0;
        cs[i].ids = malloc(sizeof(int32_t) * (strlen(line) + 1));
        char *s = line, *e;
        for (;;) {
            long v = strtol(s, &e, 10);
            if (e == s) break;
            cs[i].ids[cs[i].n++] = (int32_t)v;
            s = e;
        }
        line = nl + 1;
    }
done:
    free(inp);
    free(outp);
    if (err) {
        snprintf(why, why_cap, "%s: %s", vocab, err);
        tu_vocab_cases_free(cs, nc);
        *out = NULL;
        return -1;
    }
    *out = cs;
    return nc;
}

void tu_vocab_cases_free(tu_vocab_case *cs, int nc) {
    if (!cs) return;
    for (int i = 0; i < nc; i++) {
        free(cs[i].text);
        free(cs[i].ids);
    }
    free(cs);
}
