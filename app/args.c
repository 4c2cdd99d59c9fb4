#include "args.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *arg_value(int argc, char **argv, int *i, const char *cmd) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "strata %s: option %s needs a value\n", cmd, argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

bool arg_int(const char *cmd, const char *opt, const char *v, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "strata %s: %s expects an integer in %ld..%ld, got '%s'\n", cmd, opt, lo, hi, v);
        return false;
    }
    *out = x;
    return true;
}

bool arg_float(const char *cmd, const char *opt, const char *v, double *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || x != x) {
        fprintf(stderr, "strata %s: %s expects a number, got '%s'\n", cmd, opt, v);
        return false;
    }
    *out = x;
    return true;
}

bool arg_size(const char *cmd, const char *opt, const char *v, uint64_t *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    double mul = 1;
    if (*end == 'k' || *end == 'K') { mul = 1024.0; end++; }
    else if (*end == 'm' || *end == 'M') { mul = 1024.0 * 1024; end++; }
    else if (*end == 'g' || *end == 'G') { mul = 1024.0 * 1024 * 1024; end++; }
    else if (*end == 't' || *end == 'T') { mul = 1024.0 * 1024 * 1024 * 1024; end++; }
    if (mul > 1 && (*end == 'i')) end++;
    if (mul > 1 && (*end == 'B' || *end == 'b')) end++;
    if (errno || end == v || *end || !(x >= 0) || x * mul > 1.8e19) {
        fprintf(stderr, "strata %s: %s expects a size like 512M or 2G, got '%s'\n", cmd, opt, v);
        return false;
    }
    *out = (uint64_t)(x * mul);
    return true;
}

const char *default_model_path(void) {
    static char buf[2 * PATH_MAX + 64];
    const char *rel[] = {"../assets/tiny-14m-q8_0.gguf", "../share/strata/tiny-14m-q8_0.gguf", "assets/tiny-14m-q8_0.gguf"};
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
            snprintf(buf, sizeof buf, "%s/%s", exe, rel[i]);
            if (access(buf, R_OK) == 0) return buf;
        }
    }
    if (access("assets/tiny-14m-q8_0.gguf", R_OK) == 0) return "assets/tiny-14m-q8_0.gguf";
    return NULL;
}
