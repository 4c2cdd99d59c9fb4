/* cmd_info.c — `strata info`: a GGUF dump (header, metadata, tensor table,
 * parameter and byte summary). */
#include "app.h"
#include "gguf.h"
#include "quant.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: strata info -m MODEL.gguf [--all]\n"
            "\n"
            "Prints a GGUF file's header, metadata key/values, tensor table and a\n"
            "summary (parameters, bytes by tensor type).\n"
            "\n"
            "  -m, --model PATH   the GGUF file\n"
            "  -a, --all          print arrays and long strings in full\n"
            "  -h, --help         this help\n");
}

/* prints n bytes with control characters replaced (names come from the file) */
static void put_clean(const char *s, uint64_t n, int width) {
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        putchar(c < 32 || c == 127 ? '?' : c);
    }
    for (int64_t i = (int64_t)n; i < width; i++) putchar(' ');
}

static const char *human(uint64_t b, char *buf, size_t cap) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int k = 0;
    while (v >= 1024 && k < 4) { v /= 1024; k++; }
    if (k == 0) snprintf(buf, cap, "%" PRIu64 " B", b);
    else snprintf(buf, cap, "%.2f %s", v, u[k]);
    return buf;
}

static const char *type_name(st_type t) {
    const char *n = st_type_name(t);
    return n ? n : "?";
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    bool all = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-a") || !strcmp(a, "--all")) {
            all = true;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "strata info: %s needs a file name\n", a);
                return 1;
            }
            path = argv[++i];
        } else if (!strncmp(a, "--model=", 8)) {
            path = a + 8;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "strata info: unknown option '%s'\n", a);
            usage(stderr);
            return 1;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "strata info: unexpected argument '%s'\n", a);
            return 1;
        }
    }
    if (!path) {
        fprintf(stderr, "strata info: no model given (use -m MODEL.gguf)\n");
        usage(stderr);
        return 1;
    }

    st_gguf *g = NULL;
    st_error err = {0};
    if (st_gguf_open(path, &g, &err) != ST_OK) {
        fprintf(stderr, "strata info: %s\n", err.msg);
        return 1;
    }

    char hb[32];
    printf("path:        %s\n", st_gguf_path(g));
    printf("version:     %" PRIu32 "\n", st_gguf_version(g));
    printf("file size:   %" PRIu64 " bytes (%s)\n", st_gguf_file_size(g), human(st_gguf_file_size(g), hb, sizeof hb));
    printf("alignment:   %" PRIu64 "\n", st_gguf_alignment(g));
    printf("data offset: %" PRIu64 "\n", st_gguf_data_offset(g));
    printf("n_kv:        %" PRId64 "\n", st_gguf_n_kv(g));
    printf("n_tensors:   %" PRId64 "\n", st_gguf_n_tensors(g));

    /* ---- metadata ---- */
    size_t cap = all ? 1 << 16 : 160;
    char *buf = malloc(cap);
    if (!buf) {
        fprintf(stderr, "strata info: out of memory\n");
        st_gguf_close(g);
        return 1;
    }
    int key_w = 20;
    for (int64_t i = 0; i < st_gguf_n_kv(g); i++) {
        st_gguf_str k = st_gguf_key(g, i);
        if (k.len > (uint64_t)key_w && k.len <= 60) key_w = (int)k.len;
    }
    printf("\nmetadata:\n  %5s  %-*s  %-16s  %s\n", "idx", key_w, "key", "type", "value");
    for (int64_t i = 0; i < st_gguf_n_kv(g); i++) {
        st_gguf_str k = st_gguf_key(g, i);
        st_gguf_vtype t = st_gguf_kv_type(g, i);
        char tb[64];
        if (t == ST_GGUF_ARRAY) {
            st_gguf_vtype et;
            uint64_t n;
            st_gguf_get_arr(g, i, &et, &n);
            snprintf(tb, sizeof tb, "arr[%s,%" PRIu64 "]", st_gguf_vtype_name(et), n);
        } else {
            snprintf(tb, sizeof tb, "%s", st_gguf_vtype_name(t));
        }
        if (all) {
            /* grow until the whole value fits (a 150k-token vocab is a few MiB) */
            for (;;) {
                st_gguf_format_value(g, i, buf, cap, -1);
                if (strlen(buf) + 1 < cap || cap >= ((size_t)1 << 30)) break;
                char *nb = realloc(buf, cap * 2);
                if (!nb) break;
                buf = nb;
                cap *= 2;
            }
        } else {
            st_gguf_format_value(g, i, buf, cap, 8);
        }
        printf("  %5" PRId64 "  ", i);
        put_clean(k.ptr, k.len, key_w);
        printf("  %-16s  %s\n", tb, buf);
    }
    free(buf);

    /* ---- tensors ---- */
    int name_w = 12;
    for (int64_t i = 0; i < st_gguf_n_tensors(g); i++) {
        size_t l = strlen(st_gguf_tensor_at(g, i)->name);
        if (l > (size_t)name_w && l <= 60) name_w = (int)l;
    }
    printf("\ntensors:\n  %5s  %-*s  %-7s  %-24s  %12s  %12s\n", "idx", name_w, "name", "type", "shape", "offset",
           "bytes");
    uint64_t params_by[ST_TYPE_COUNT] = {0}, bytes_by[ST_TYPE_COUNT] = {0}, count_by[ST_TYPE_COUNT] = {0};
    uint64_t params = 0, bytes = 0;
    for (int64_t i = 0; i < st_gguf_n_tensors(g); i++) {
        const st_gguf_tensor *t = st_gguf_tensor_at(g, i);
        char shape[96];
        int n = snprintf(shape, sizeof shape, "[");
        uint64_t nel = 1;
        for (int d = 0; d < t->n_dims; d++) {
            n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%" PRId64, d ? ", " : "", t->ne[d]);
            nel *= (uint64_t)t->ne[d];
        }
        snprintf(shape + n, sizeof shape - (size_t)n, "]");
        printf("  %5" PRId64 "  ", i);
        put_clean(t->name, strlen(t->name), name_w);
        printf("  %-7s  %-24s  %12" PRIu64 "  %12" PRIu64 "\n", type_name(t->type), shape, t->offset, t->size);
        params += nel;
        bytes += t->size;
        if ((unsigned)t->type < ST_TYPE_COUNT) {
            params_by[t->type] += nel;
            bytes_by[t->type] += t->size;
            count_by[t->type]++;
        }
    }

    /* ---- summary ---- */
    printf("\nsummary:\n");
    printf("  parameters:   %" PRIu64 " (%.2f M)\n", params, (double)params / 1e6);
    printf("  tensor bytes: %" PRIu64 " (%s)", bytes, human(bytes, hb, sizeof hb));
    if (params) printf(", %.2f bits per parameter", 8.0 * (double)bytes / (double)params);
    printf("\n");
    for (int t = 0; t < ST_TYPE_COUNT; t++) {
        if (!count_by[t]) continue;
        printf("  %-7s %5" PRIu64 " tensors  %12" PRIu64 " params  %12" PRIu64 " bytes (%s)\n", type_name((st_type)t),
               count_by[t], params_by[t], bytes_by[t], human(bytes_by[t], hb, sizeof hb));
    }
    st_gguf_close(g);
    return 0;
}
