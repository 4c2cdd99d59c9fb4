/* gguf.c — GGUF v2/v3 reader (validated, over an mmap) and streaming writer.
 *
 * File layout (all little-endian):
 *   "GGUF" u32 version, u64 n_tensors, u64 n_kv
 *   n_kv x { string key, u32 value type, value }
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset }
 *   padding to general.alignment, then the data section
 * where string = u64 length + bytes and array = u32 elem type, u64 n, elements.
 *
 * Validation rule: nothing read from the file is used before it has been
 * checked against the file size with overflow-safe 64-bit arithmetic, and no
 * allocation is sized by a count that has not first been bounded by the bytes
 * left in the file. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* strdup, O_CLOEXEC, mmap under -std=c11 */
#endif
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c assumes a little-endian host"
#endif

#define GGUF_MAX_NAME (64u * 1024u) /* longest key / tensor name accepted */
#define GGUF_MAX_DEPTH 8            /* deepest array nesting accepted */

/* ---------------------------------------------------------------------------
 * Private type table: GGUF validation must not depend on the kernels. Sizes are
 * ggml's (ggml-common.h block structs). */
typedef struct { const char *name; uint32_t blck; uint32_t size; } ttype;

static const ttype k_types[] = {
    [0] = {"F32", 1, 4},        [1] = {"F16", 1, 2},
    [2] = {"Q4_0", 32, 18},     [3] = {"Q4_1", 32, 20},
    [6] = {"Q5_0", 32, 22},     [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},     [9] = {"Q8_1", 32, 36},
    [10] = {"Q2_K", 256, 84},   [11] = {"Q3_K", 256, 110},
    [12] = {"Q4_K", 256, 144},  [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},  [15] = {"Q8_K", 256, 292},
    [16] = {"IQ2_XXS", 256, 66}, [17] = {"IQ2_XS", 256, 74},
    [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},  [21] = {"IQ3_S", 256, 110},
    [22] = {"IQ2_S", 256, 82},  [23] = {"IQ4_XS", 256, 136},
    [24] = {"I8", 1, 1},        [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},       [27] = {"I64", 1, 8},
    [28] = {"F64", 1, 8},       [29] = {"IQ1_M", 256, 56},
    [30] = {"BF16", 1, 2},
    [34] = {"TQ1_0", 256, 54},  [35] = {"TQ2_0", 256, 66},
    [39] = {"MXFP4", 32, 17},
};
#define N_TTYPES (sizeof k_types / sizeof k_types[0])

static const ttype *ttype_get(uint32_t t) {
    if (t >= N_TTYPES || !k_types[t].name) return NULL;
    return &k_types[t];
}

/* bytes of a tensor; false on a row not a multiple of the block or overflow */
static bool tensor_bytes(const ttype *tt, const int64_t ne[ST_GGUF_MAX_DIMS], uint64_t *out) {
    if (ne[0] % tt->blck) return false;
    uint64_t b;
    if (__builtin_mul_overflow((uint64_t)(ne[0] / tt->blck), (uint64_t)tt->size, &b)) return false;
    for (int d = 1; d < ST_GGUF_MAX_DIMS; d++)
        if (__builtin_mul_overflow(b, (uint64_t)ne[d], &b)) return false;
    *out = b;
    return true;
}

/* ---------------------------------------------------------------------------
 * value types */
static const char *const k_vtype_names[ST_GGUF_VTYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64",
};
static const uint8_t k_vtype_size[ST_GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *st_gguf_vtype_name(st_gguf_vtype t) {
    return (unsigned)t < ST_GGUF_VTYPE_COUNT ? k_vtype_names[t] : "?";
}

/* ---------------------------------------------------------------------------
 * the open file */
typedef struct {
    uint64_t key_off, key_len;
    uint64_t val_off, val_end;  /* value bytes [val_off, val_end) (after the type field) */
    uint32_t type;
    uint32_t arr_type;          /* arrays: element type */
    uint64_t arr_n;             /* arrays: element count */
    uint64_t arr_data;          /* arrays: offset of the first element */
    uint64_t *elem_off;         /* arrays of STRING / ARRAY: offset of each element */
} kv_t;

struct st_gguf {
    char *path;
    int fd;
    const uint8_t *map;
    uint64_t size;
    struct timespec mtime;      /* at open: st_gguf_check_file compares */
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset;
    int64_t n_kv;
    kv_t *kv;
    int64_t n_tensors;
    st_gguf_tensor *tensors;
    int64_t *kv_hash; uint64_t kv_hash_mask;
    int64_t *t_hash; uint64_t t_hash_mask;
};

static uint64_t hash_bytes(const void *p, uint64_t n) {
    const uint8_t *s = p;
    uint64_t h = 1469598103934665603ull;
    for (uint64_t i = 0; i < n; i++) { h ^= s[i]; h *= 1099511628211ull; }
    return h ^ (h >> 29);
}

/* ---------------------------------------------------------------------------
 * parsing cursor */
typedef struct {
    const uint8_t *p;
    uint64_t size, pos;
    const char *path;
    st_error *err;
} cur;

static uint16_t ld16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t ld32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t ld64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static st_status fmt_err(cur *c, uint64_t off, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static st_status fmt_err(cur *c, uint64_t off, const char *fmt, ...) {
    char m[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    return st_error_set(c->err, ST_ERR_FORMAT, "%s: offset %" PRIu64 ": %s", c->path, off, m);
}

static st_status need(cur *c, uint64_t n, const char *what) {
    if (n > c->size - c->pos)
        return fmt_err(c, c->pos, "%s (%" PRIu64 " bytes) runs past end of file (%" PRIu64 " bytes)",
                       what, n, c->size);
    return ST_OK;
}

static st_status rd32(cur *c, uint32_t *v, const char *what) {
    st_status s = need(c, 4, what);
    if (s) return s;
    *v = ld32(c->p + c->pos);
    c->pos += 4;
    return ST_OK;
}

static st_status rd64(cur *c, uint64_t *v, const char *what) {
    st_status s = need(c, 8, what);
    if (s) return s;
    *v = ld64(c->p + c->pos);
    c->pos += 8;
    return ST_OK;
}

/* printable, bounded rendering of file bytes for messages */
static const char *show(char *buf, size_t cap, const uint8_t *p, uint64_t n) {
    size_t k = 0;
    uint64_t lim = n > 80 ? 80 : n;
    for (uint64_t i = 0; i < lim && k + 1 < cap; i++) buf[k++] = (p[i] >= 32 && p[i] < 127) ? (char)p[i] : '?';
    if (n > lim && k + 4 < cap) { memcpy(buf + k, "...", 3); k += 3; }
    buf[k] = 0;
    return buf;
}

static st_status rd_str(cur *c, uint64_t *off, uint64_t *len, const char *what, uint64_t maxlen) {
    uint64_t at = c->pos, n;
    st_status s = rd64(c, &n, what);
    if (s) return s;
    if (n > c->size - c->pos)
        return fmt_err(c, at, "string length %" PRIu64 " of %s runs past end of file (%" PRIu64 " bytes)", n, what,
                       c->size);
    if (maxlen && n > maxlen)
        return fmt_err(c, at, "string length %" PRIu64 " of %s is too long (at most %" PRIu64 " bytes)", n, what,
                       maxlen);
    *off = c->pos;
    *len = n;
    c->pos += n;
    return ST_OK;
}

/* Validates an array body (elem type, count, elements) at c->pos. If kv is
 * non-NULL (top level) fills its array fields and the element index. */
static st_status parse_value(cur *c, uint32_t type, int depth, kv_t *kv, const char *key);

static st_status parse_array(cur *c, int depth, kv_t *kv, const char *key) {
    uint64_t at = c->pos;
    uint32_t et;
    uint64_t n;
    st_status s;
    if (depth >= GGUF_MAX_DEPTH)
        return fmt_err(c, at, "key '%s': arrays nested deeper than %d levels", key, GGUF_MAX_DEPTH);
    if ((s = rd32(c, &et, "array element type"))) return s;
    if (et >= ST_GGUF_VTYPE_COUNT)
        return fmt_err(c, at, "key '%s': unknown array element value type %" PRIu32 " (expected 0..%d)", key, et,
                       ST_GGUF_VTYPE_COUNT - 1);
    if ((s = rd64(c, &n, "array length"))) return s;
    uint64_t rem = c->size - c->pos;
    uint64_t min = et == ST_GGUF_STRING ? 8 : et == ST_GGUF_ARRAY ? 12 : k_vtype_size[et];
    if (n > rem / min)
        return fmt_err(c, at + 4,
                       "key '%s': array length %" PRIu64 " of %s is impossible (%" PRIu64
                       " bytes left, file has %" PRIu64 " bytes)",
                       key, n, k_vtype_names[et], rem, c->size);
    if (kv) {
        kv->arr_type = et;
        kv->arr_n = n;
        kv->arr_data = c->pos;
    }
    if (et != ST_GGUF_STRING && et != ST_GGUF_ARRAY) {
        if (et == ST_GGUF_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (c->p[c->pos + i] > 1)
                    return fmt_err(c, c->pos + i, "key '%s': bool array element %" PRIu64 " is %u (expected 0 or 1)",
                                   key, i, c->p[c->pos + i]);
        c->pos += n * min;
        return ST_OK;
    }
    uint64_t *idx = NULL;
    if (kv && n) {
        idx = malloc(n * sizeof *idx);
        if (!idx) return st_error_set(c->err, ST_ERR_NOMEM, "%s: out of memory indexing key '%s'", c->path, key);
        kv->elem_off = idx;
    }
    for (uint64_t i = 0; i < n; i++) {
        if (idx) idx[i] = c->pos;
        if (et == ST_GGUF_STRING) {
            uint64_t o, l;
            if ((s = rd_str(c, &o, &l, "array string", 0))) return s;
        } else if ((s = parse_value(c, ST_GGUF_ARRAY, depth + 1, NULL, key))) {
            return s;
        }
    }
    return ST_OK;
}

static st_status parse_value(cur *c, uint32_t type, int depth, kv_t *kv, const char *key) {
    st_status s;
    switch (type) {
    case ST_GGUF_STRING: {
        uint64_t o, l;
        char what[160];
        snprintf(what, sizeof what, "value of key '%s'", key);
        return rd_str(c, &o, &l, what, 0);
    }
    case ST_GGUF_ARRAY:
        return parse_array(c, depth, kv, key);
    case ST_GGUF_BOOL:
        if ((s = need(c, 1, "bool value"))) return s;
        if (c->p[c->pos] > 1)
            return fmt_err(c, c->pos, "key '%s': bool value is %u (expected 0 or 1)", key, c->p[c->pos]);
        c->pos += 1;
        return ST_OK;
    default:
        if (type >= ST_GGUF_VTYPE_COUNT) return ST_ERR_INTERNAL;
        if ((s = need(c, k_vtype_size[type], "value"))) return s;
        c->pos += k_vtype_size[type];
        return ST_OK;
    }
}

/* ---------------------------------------------------------------------------
 * hash tables (open addressing, linear probing, -1 = empty) */
static int64_t *hash_alloc(int64_t n, uint64_t *mask) {
    uint64_t cap = 16;
    while (cap < (uint64_t)n * 2) cap *= 2;
    int64_t *t = malloc(cap * sizeof *t);
    if (t) memset(t, 0xff, cap * sizeof *t);
    *mask = cap - 1;
    return t;
}

static void gguf_free(st_gguf *g) {
    if (!g) return;
    if (g->kv)
        for (int64_t i = 0; i < g->n_kv; i++) free(g->kv[i].elem_off);
    free(g->kv);
    if (g->tensors)
        for (int64_t i = 0; i < g->n_tensors; i++) free((char *)g->tensors[i].name);
    free(g->tensors);
    free(g->kv_hash);
    free(g->t_hash);
    if (g->map && g->size) munmap((void *)g->map, g->size);
    if (g->fd >= 0) close(g->fd);
    free(g->path);
    free(g);
}

void st_gguf_close(st_gguf *g) { gguf_free(g); }

static int64_t find_key_n(const st_gguf *g, const char *key, uint64_t len) {
    if (!g->kv_hash) return -1;
    for (uint64_t h = hash_bytes(key, len) & g->kv_hash_mask;; h = (h + 1) & g->kv_hash_mask) {
        int64_t i = g->kv_hash[h];
        if (i < 0) return -1;
        const kv_t *kv = &g->kv[i];
        if (kv->key_len == len && memcmp(g->map + kv->key_off, key, len) == 0) return i;
    }
}

static st_status parse(st_gguf *g, st_error *err) {
    cur c = {.p = g->map, .size = g->size, .pos = 0, .path = g->path, .err = err};
    st_status s;
    uint32_t magic, version;
    uint64_t n_tensors, n_kv;
    char sb[100];

    if (g->size < 4 || memcmp(g->map, "GGUF", 4) != 0)
        return fmt_err(&c, 0, "bad magic '%s' (expected 'GGUF')", show(sb, sizeof sb, g->map, g->size < 4 ? g->size : 4));
    c.pos = 4;
    (void)magic;
    if ((s = rd32(&c, &version, "version"))) return s;
    if (version == 1)
        return st_error_set(err, ST_ERR_UNSUPPORTED,
                            "%s: offset 4: GGUF version 1 is not supported (expected version 2 or 3)", g->path);
    if (version != 2 && version != 3) {
        uint32_t sw = __builtin_bswap32(version);
        if ((version & 0xffff) == 0 && sw >= 1 && sw <= 3)
            return st_error_set(err, ST_ERR_UNSUPPORTED,
                                "%s: offset 4: big-endian GGUF (version %" PRIu32
                                " byte-swapped) is not supported (expected a little-endian file)",
                                g->path, sw);
        return st_error_set(err, ST_ERR_UNSUPPORTED,
                            "%s: offset 4: GGUF version %" PRIu32 " is not supported (expected version 2 or 3)",
                            g->path, version);
    }
    g->version = version;
    if ((s = rd64(&c, &n_tensors, "tensor count"))) return s;
    if ((s = rd64(&c, &n_kv, "kv count"))) return s;
    {
        uint64_t rem = c.size - c.pos;
        /* smallest kv: key length 8 + type 4 + u8 1; smallest tensor info:
         * name length 8 + n_dims 4 + one dim 8 + type 4 + offset 8 */
        if (n_tensors > rem / 32)
            return fmt_err(&c, 8, "tensor count %" PRIu64 " is impossible (file has %" PRIu64 " bytes)", n_tensors,
                           c.size);
        if (n_kv > rem / 13)
            return fmt_err(&c, 16, "kv count %" PRIu64 " is impossible (file has %" PRIu64 " bytes)", n_kv, c.size);
        if (n_tensors * 32 + n_kv * 13 > rem)
            return fmt_err(&c, 8,
                           "tensor count %" PRIu64 " and kv count %" PRIu64 " are impossible (file has %" PRIu64
                           " bytes)",
                           n_tensors, n_kv, c.size);
    }

    /* ---- key/values ---- */
    g->kv = calloc(n_kv ? n_kv : 1, sizeof *g->kv);
    if (!g->kv) return st_error_set(err, ST_ERR_NOMEM, "%s: out of memory for %" PRIu64 " keys", g->path, n_kv);
    for (uint64_t i = 0; i < n_kv; i++) {
        kv_t *kv = &g->kv[i];
        uint64_t at = c.pos;
        char what[40], key[100];
        snprintf(what, sizeof what, "key of kv %" PRIu64, i);
        if ((s = rd_str(&c, &kv->key_off, &kv->key_len, what, GGUF_MAX_NAME))) return s;
        g->n_kv = (int64_t)i + 1; /* from here on kv i owns memory to free */
        show(key, sizeof key, g->map + kv->key_off, kv->key_len);
        uint64_t tat = c.pos;
        if ((s = rd32(&c, &kv->type, "value type"))) return s;
        if (kv->type >= ST_GGUF_VTYPE_COUNT)
            return fmt_err(&c, tat, "key '%s': unknown value type %" PRIu32 " (expected 0..%d)", key, kv->type,
                           ST_GGUF_VTYPE_COUNT - 1);
        kv->val_off = c.pos;
        if ((s = parse_value(&c, kv->type, 0, kv, key))) return s;
        kv->val_end = c.pos;
        (void)at;
    }
    g->n_kv = (int64_t)n_kv;
    g->kv_hash = hash_alloc(g->n_kv, &g->kv_hash_mask);
    if (!g->kv_hash) return st_error_set(err, ST_ERR_NOMEM, "%s: out of memory", g->path);
    for (int64_t i = 0; i < g->n_kv; i++) {
        const kv_t *kv = &g->kv[i];
        const char *k = (const char *)g->map + kv->key_off;
        uint64_t h = hash_bytes(k, kv->key_len) & g->kv_hash_mask;
        for (;; h = (h + 1) & g->kv_hash_mask) {
            int64_t j = g->kv_hash[h];
            if (j < 0) { g->kv_hash[h] = i; break; }
            if (g->kv[j].key_len == kv->key_len && memcmp(g->map + g->kv[j].key_off, k, kv->key_len) == 0)
                return fmt_err(&c, kv->key_off - 8, "duplicate key '%s' (kv %" PRId64 " and kv %" PRId64 ")",
                               show(sb, sizeof sb, (const uint8_t *)k, kv->key_len), j, i);
        }
    }

    /* ---- alignment ---- */
    g->alignment = ST_GGUF_DEFAULT_ALIGNMENT;
    {
        int64_t ai = find_key_n(g, "general.alignment", strlen("general.alignment"));
        if (ai >= 0) {
            const kv_t *kv = &g->kv[ai];
            if (kv->type != ST_GGUF_UINT32)
                return fmt_err(&c, kv->val_off - 4, "general.alignment has type %s (expected u32)",
                               k_vtype_names[kv->type]);
            uint32_t a = ld32(g->map + kv->val_off);
            if (a == 0 || (a & (a - 1)))
                return fmt_err(&c, kv->val_off, "general.alignment %" PRIu32 " is not a nonzero power of two", a);
            g->alignment = a;
        }
    }

    /* ---- tensor infos ---- */
    g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
    uint64_t *info_off = malloc((n_tensors ? n_tensors : 1) * sizeof *info_off);
    if (!g->tensors || !info_off) {
        free(info_off);
        return st_error_set(err, ST_ERR_NOMEM, "%s: out of memory for %" PRIu64 " tensors", g->path, n_tensors);
    }
#define TFAIL(...) do { s = fmt_err(&c, __VA_ARGS__); goto tfail; } while (0)
    for (uint64_t i = 0; i < n_tensors; i++) {
        st_gguf_tensor *t = &g->tensors[i];
        uint64_t at = c.pos, no, nl;
        char what[48], name[100];
        info_off[i] = at;
        snprintf(what, sizeof what, "name of tensor %" PRIu64, i);
        if ((s = rd_str(&c, &no, &nl, what, GGUF_MAX_NAME))) goto tfail;
        show(name, sizeof name, g->map + no, nl);
        if (nl == 0) TFAIL(at, "tensor %" PRIu64 " has an empty name", i);
        if (memchr(g->map + no, 0, nl)) TFAIL(at, "tensor %" PRIu64 " name '%s' contains a NUL byte", i, name);
        char *nm = malloc(nl + 1);
        if (!nm) { s = st_error_set(err, ST_ERR_NOMEM, "%s: out of memory", g->path); goto tfail; }
        memcpy(nm, g->map + no, nl);
        nm[nl] = 0;
        t->name = nm;
        g->n_tensors = (int64_t)i + 1;

        uint32_t nd, type;
        uint64_t dat = c.pos;
        if ((s = rd32(&c, &nd, "n_dims"))) goto tfail;
        if (nd == 0 || nd > ST_GGUF_MAX_DIMS)
            TFAIL(dat, "tensor '%s': n_dims %" PRIu32 " (expected 1..%d)", name, nd, ST_GGUF_MAX_DIMS);
        t->n_dims = (int)nd;
        for (int d = 0; d < ST_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t v, vat = c.pos;
            if ((s = rd64(&c, &v, "tensor dimension"))) goto tfail;
            if (v == 0 || v > (uint64_t)INT64_MAX)
                TFAIL(vat, "tensor '%s': ne[%" PRIu32 "] = %" PRId64 " (expected > 0)", name, d, (int64_t)v);
            t->ne[d] = (int64_t)v;
        }
        int64_t nel = 1;
        for (int d = 0; d < ST_GGUF_MAX_DIMS; d++)
            if (__builtin_mul_overflow(nel, t->ne[d], &nel))
                TFAIL(dat, "tensor '%s': element count overflows 64 bits", name);
        uint64_t tat = c.pos;
        if ((s = rd32(&c, &type, "tensor type"))) goto tfail;
        const ttype *tt = ttype_get(type);
        if (!tt) TFAIL(tat, "tensor '%s': unknown tensor type %" PRIu32 " (expected a ggml type id such as 0 = F32, 8 = Q8_0)", name, type);
        t->type = (st_type)type;
        if (t->ne[0] % tt->blck)
            TFAIL(dat, "tensor '%s': row length %" PRId64 " is not a multiple of the %s block size %" PRIu32, name,
                  t->ne[0], tt->name, tt->blck);
        if (!tensor_bytes(tt, t->ne, &t->size)) TFAIL(dat, "tensor '%s': byte size overflows 64 bits", name);
        if ((s = rd64(&c, &t->offset, "tensor offset"))) goto tfail;
    }
    g->n_tensors = (int64_t)n_tensors;

    /* ---- data section ---- */
    {
        uint64_t a = g->alignment, d;
        if (__builtin_add_overflow(c.pos, a - 1, &d)) TFAIL(c.pos, "data offset overflows 64 bits");
        g->data_offset = d / a * a;
    }
    g->t_hash = hash_alloc(g->n_tensors, &g->t_hash_mask);
    if (!g->t_hash) { s = st_error_set(err, ST_ERR_NOMEM, "%s: out of memory", g->path); goto tfail; }
    for (int64_t i = 0; i < g->n_tensors; i++) {
        st_gguf_tensor *t = &g->tensors[i];
        uint64_t rel = t->offset, abs, end;
        /* message prefix: file, tensor, where its info lies */
#define TERR(...) do { \
            char m_[300]; snprintf(m_, sizeof m_, __VA_ARGS__); \
            s = st_error_set(err, ST_ERR_FORMAT, "%s: tensor '%s' (offset %" PRIu64 "): %s", g->path, t->name, info_off[i], m_); \
            goto tfail; } while (0)
        if (rel % g->alignment)
            TERR("data offset %" PRIu64 " is not a multiple of the alignment %" PRIu64 " (misaligned)", rel,
                 g->alignment);
        if (__builtin_add_overflow(g->data_offset, rel, &abs))
            TERR("data offset %" PRIu64 " + data section start %" PRIu64 " overflows 64 bits", rel, g->data_offset);
        if (__builtin_add_overflow(abs, t->size, &end))
            TERR("data offset %" PRIu64 " + size %" PRIu64 " overflows 64 bits", abs, t->size);
        if (end > g->size)
            TERR("data [%" PRIu64 ", %" PRIu64 ") lies past end of file (%" PRIu64 " bytes)", abs, end, g->size);
        t->offset = abs;
        t->data = g->map + abs;
        uint64_t h = hash_bytes(t->name, strlen(t->name)) & g->t_hash_mask;
        for (;; h = (h + 1) & g->t_hash_mask) {
            int64_t j = g->t_hash[h];
            if (j < 0) { g->t_hash[h] = i; break; }
            if (strcmp(g->tensors[j].name, t->name) == 0)
                TERR("duplicate tensor name (also tensor %" PRId64 ")", j);
        }
#undef TERR
    }
#undef TFAIL
    free(info_off);
    return ST_OK;
tfail:
    free(info_off);
    return s;
}

st_status st_gguf_open(const char *path, st_gguf **out, st_error *err) {
    *out = NULL;
    if (!path) return st_error_set(err, ST_ERR_ARG, "st_gguf_open: path is NULL");
    st_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(path))) {
        free(g);
        return st_error_set(err, ST_ERR_NOMEM, "%s: out of memory", path);
    }
    g->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (g->fd < 0) {
        int e = errno;
        gguf_free(g);
        return st_error_set(err, ST_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    struct stat sa;
    if (fstat(g->fd, &sa) != 0) {
        int e = errno;
        gguf_free(g);
        return st_error_set(err, ST_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sa.st_mode)) {
        gguf_free(g);
        return st_error_set(err, ST_ERR_IO, "%s: not a regular file", path);
    }
    if (sa.st_size == 0) {
        gguf_free(g);
        return st_error_set(err, ST_ERR_FORMAT, "%s: offset 0: file is empty (expected a GGUF header, 24 bytes at least)",
                            path);
    }
    if ((uint64_t)sa.st_size > SIZE_MAX) {
        gguf_free(g);
        return st_error_set(err, ST_ERR_IO, "%s: file too large to map", path);
    }
    g->size = (uint64_t)sa.st_size;
    g->mtime = sa.st_mtim;
    void *m = mmap(NULL, (size_t)g->size, PROT_READ, MAP_PRIVATE, g->fd, 0);
    if (m == MAP_FAILED) {
        int e = errno;
        g->size = 0;
        gguf_free(g);
        return st_error_set(err, ST_ERR_IO, "%s: cannot mmap %" PRIu64 " bytes: %s", path, (uint64_t)sa.st_size,
                            strerror(e));
    }
    g->map = m;
    st_status s = parse(g, err);
    if (s) {
        gguf_free(g);
        return s;
    }
    *out = g;
    return ST_OK;
}

/* ---------------------------------------------------------------------------
 * accessors */
const char *st_gguf_path(const st_gguf *g) { return g->path; }
uint32_t st_gguf_version(const st_gguf *g) { return g->version; }
uint64_t st_gguf_file_size(const st_gguf *g) { return g->size; }
uint64_t st_gguf_data_offset(const st_gguf *g) { return g->data_offset; }
uint64_t st_gguf_alignment(const st_gguf *g) { return g->alignment; }
const void *st_gguf_base(const st_gguf *g) { return g->map; }
int st_gguf_fd(const st_gguf *g) { return g->fd; }

st_status st_gguf_check_file(const st_gguf *g, st_error *err) {
    struct stat sb;
    if (fstat(g->fd, &sb) != 0) {
        int e = errno;
        return st_error_set(err, ST_ERR_IO, "%s: cannot stat: %s", g->path, strerror(e));
    }
    if ((uint64_t)sb.st_size < g->size)
        return st_error_set(err, ST_ERR_IO,
                            "%s was truncated while in use: %" PRIu64 " bytes now, %" PRIu64
                            " when opened (its weights can no longer be read; reopen the model)",
                            g->path, (uint64_t)sb.st_size, g->size);
    if ((uint64_t)sb.st_size != g->size || sb.st_mtim.tv_sec != g->mtime.tv_sec || sb.st_mtim.tv_nsec != g->mtime.tv_nsec)
        return st_error_set(err, ST_ERR_IO,
                            "%s was modified while in use (%s changed since it was opened): the weights in memory and "
                            "on disk may differ; reopen the model",
                            g->path, (uint64_t)sb.st_size != g->size ? "its size" : "its modification time");
    return ST_OK;
}

int64_t st_gguf_n_kv(const st_gguf *g) { return g->n_kv; }

int64_t st_gguf_find_key(const st_gguf *g, const char *key) {
    if (!key) return -1;
    return find_key_n(g, key, strlen(key));
}

st_gguf_str st_gguf_key(const st_gguf *g, int64_t i) {
    if (i < 0 || i >= g->n_kv) return (st_gguf_str){NULL, 0};
    return (st_gguf_str){(const char *)g->map + g->kv[i].key_off, g->kv[i].key_len};
}

st_gguf_vtype st_gguf_kv_type(const st_gguf *g, int64_t i) {
    if (i < 0 || i >= g->n_kv) return ST_GGUF_VTYPE_COUNT;
    return (st_gguf_vtype)g->kv[i].type;
}

/* integer value of kv at offset p with type t; false for non-integer types */
static bool int_value(uint32_t t, const uint8_t *p, bool *neg, uint64_t *mag) {
    int64_t s;
    *neg = false;
    switch (t) {
    case ST_GGUF_UINT8: *mag = p[0]; return true;
    case ST_GGUF_UINT16: *mag = ld16(p); return true;
    case ST_GGUF_UINT32: *mag = ld32(p); return true;
    case ST_GGUF_UINT64: *mag = ld64(p); return true;
    case ST_GGUF_INT8: s = (int8_t)p[0]; break;
    case ST_GGUF_INT16: s = (int16_t)ld16(p); break;
    case ST_GGUF_INT32: s = (int32_t)ld32(p); break;
    case ST_GGUF_INT64: s = (int64_t)ld64(p); break;
    default: return false;
    }
    if (s < 0) { *neg = true; *mag = (uint64_t)0 - (uint64_t)s; }
    else *mag = (uint64_t)s;
    return true;
}

static const kv_t *kv_by_key(const st_gguf *g, const char *key) {
    int64_t i = st_gguf_find_key(g, key);
    return i < 0 ? NULL : &g->kv[i];
}

bool st_gguf_get_u32(const st_gguf *g, const char *key, uint32_t *out) {
    const kv_t *kv = kv_by_key(g, key);
    bool neg;
    uint64_t m;
    if (!kv || !int_value(kv->type, g->map + kv->val_off, &neg, &m) || neg || m > UINT32_MAX) return false;
    *out = (uint32_t)m;
    return true;
}

bool st_gguf_get_i64(const st_gguf *g, const char *key, int64_t *out) {
    const kv_t *kv = kv_by_key(g, key);
    bool neg;
    uint64_t m;
    if (!kv || !int_value(kv->type, g->map + kv->val_off, &neg, &m)) return false;
    if (neg) {
        if (m > (uint64_t)INT64_MAX + 1) return false;
        *out = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
    } else {
        if (m > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)m;
    }
    return true;
}

bool st_gguf_get_f32(const st_gguf *g, const char *key, float *out) {
    const kv_t *kv = kv_by_key(g, key);
    if (!kv) return false;
    const uint8_t *p = g->map + kv->val_off;
    bool neg;
    uint64_t m;
    if (kv->type == ST_GGUF_FLOAT32) { memcpy(out, p, 4); return true; }
    if (kv->type == ST_GGUF_FLOAT64) { double d; memcpy(&d, p, 8); *out = (float)d; return true; }
    if (!int_value(kv->type, p, &neg, &m)) return false;
    *out = neg ? -(float)m : (float)m;
    return true;
}

bool st_gguf_get_bool(const st_gguf *g, const char *key, bool *out) {
    const kv_t *kv = kv_by_key(g, key);
    if (!kv || kv->type != ST_GGUF_BOOL) return false;
    *out = g->map[kv->val_off] != 0;
    return true;
}

bool st_gguf_get_str(const st_gguf *g, const char *key, st_gguf_str *out) {
    const kv_t *kv = kv_by_key(g, key);
    if (!kv || kv->type != ST_GGUF_STRING) return false;
    out->len = ld64(g->map + kv->val_off);
    out->ptr = (const char *)g->map + kv->val_off + 8;
    return true;
}

bool st_gguf_get_arr(const st_gguf *g, int64_t i, st_gguf_vtype *elem_type, uint64_t *n) {
    if (i < 0 || i >= g->n_kv || g->kv[i].type != ST_GGUF_ARRAY) return false;
    if (elem_type) *elem_type = (st_gguf_vtype)g->kv[i].arr_type;
    if (n) *n = g->kv[i].arr_n;
    return true;
}

const void *st_gguf_arr_data(const st_gguf *g, int64_t i) {
    if (i < 0 || i >= g->n_kv || g->kv[i].type != ST_GGUF_ARRAY) return NULL;
    const kv_t *kv = &g->kv[i];
    if (kv->arr_type == ST_GGUF_STRING || kv->arr_type == ST_GGUF_ARRAY) return NULL;
    return g->map + kv->arr_data;
}

st_gguf_str st_gguf_arr_str(const st_gguf *g, int64_t i, uint64_t j) {
    if (i < 0 || i >= g->n_kv) return (st_gguf_str){NULL, 0};
    const kv_t *kv = &g->kv[i];
    if (kv->type != ST_GGUF_ARRAY || kv->arr_type != ST_GGUF_STRING || j >= kv->arr_n) return (st_gguf_str){NULL, 0};
    uint64_t o = kv->elem_off[j];
    return (st_gguf_str){(const char *)g->map + o + 8, ld64(g->map + o)};
}

bool st_gguf_arr_arr(const st_gguf *g, int64_t i, uint64_t j, st_gguf_vtype *elem_type, uint64_t *n,
                     const void **data) {
    if (i < 0 || i >= g->n_kv) return false;
    const kv_t *kv = &g->kv[i];
    if (kv->type != ST_GGUF_ARRAY || kv->arr_type != ST_GGUF_ARRAY || j >= kv->arr_n) return false;
    uint64_t o = kv->elem_off[j];
    if (elem_type) *elem_type = (st_gguf_vtype)ld32(g->map + o);
    if (n) *n = ld64(g->map + o + 4);
    if (data) *data = g->map + o + 12;
    return true;
}

/* ---------------------------------------------------------------------------
 * display */
typedef struct { char *buf; size_t cap, len; bool trunc; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->trunc) return;
    if (b->len + n + 1 > b->cap) {
        n = b->cap > b->len + 1 ? b->cap - b->len - 1 : 0;
        b->trunc = true;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = 0;
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char t[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t, sizeof t, fmt, ap);
    va_end(ap);
    if (n > 0) sb_put(b, t, (size_t)n < sizeof t ? (size_t)n : sizeof t - 1);
}

static void sb_str(sbuf *b, const uint8_t *p, uint64_t n) {
    sb_put(b, "\"", 1);
    for (uint64_t i = 0; i < n && !b->trunc; i++) {
        uint8_t ch = p[i];
        if (ch == '"' || ch == '\\') { char e[2] = {'\\', (char)ch}; sb_put(b, e, 2); }
        else if (ch == '\n') sb_put(b, "\\n", 2);
        else if (ch == '\t') sb_put(b, "\\t", 2);
        else if (ch == '\r') sb_put(b, "\\r", 2);
        else if (ch < 32 || ch == 127) sb_printf(b, "\\x%02x", ch);
        else sb_put(b, (const char *)&ch, 1);
    }
    sb_put(b, "\"", 1);
}

/* formats a scalar at p; returns its size in the file */
static uint64_t fmt_scalar(sbuf *b, uint32_t t, const uint8_t *p) {
    switch (t) {
    case ST_GGUF_UINT8: sb_printf(b, "%u", p[0]); return 1;
    case ST_GGUF_INT8: sb_printf(b, "%d", (int8_t)p[0]); return 1;
    case ST_GGUF_UINT16: sb_printf(b, "%u", ld16(p)); return 2;
    case ST_GGUF_INT16: sb_printf(b, "%d", (int16_t)ld16(p)); return 2;
    case ST_GGUF_UINT32: sb_printf(b, "%" PRIu32, ld32(p)); return 4;
    case ST_GGUF_INT32: sb_printf(b, "%" PRId32, (int32_t)ld32(p)); return 4;
    case ST_GGUF_UINT64: sb_printf(b, "%" PRIu64, ld64(p)); return 8;
    case ST_GGUF_INT64: sb_printf(b, "%" PRId64, (int64_t)ld64(p)); return 8;
    case ST_GGUF_FLOAT32: { float f; memcpy(&f, p, 4); sb_printf(b, "%g", f); return 4; }
    case ST_GGUF_FLOAT64: { double d; memcpy(&d, p, 8); sb_printf(b, "%g", d); return 8; }
    case ST_GGUF_BOOL: sb_printf(b, "%s", p[0] ? "true" : "false"); return 1;
    case ST_GGUF_STRING: { uint64_t n = ld64(p); sb_str(b, p + 8, n); return 8 + n; }
    }
    return 0;
}

/* size in bytes of a validated value of type t at p */
static uint64_t value_size(uint32_t t, const uint8_t *p) {
    if (t == ST_GGUF_STRING) return 8 + ld64(p);
    if (t != ST_GGUF_ARRAY) return k_vtype_size[t];
    uint32_t et = ld32(p);
    uint64_t n = ld64(p + 4), sz = 12;
    if (et != ST_GGUF_STRING && et != ST_GGUF_ARRAY) return sz + n * k_vtype_size[et];
    for (uint64_t i = 0; i < n; i++) sz += value_size(et, p + sz);
    return sz;
}

/* formats an array body (elem type, n, elements) at p */
static void fmt_array(sbuf *b, const uint8_t *p, int max_items) {
    uint32_t et = ld32(p);
    uint64_t n = ld64(p + 4), o = 12;
    sb_put(b, "[", 1);
    for (uint64_t i = 0; i < n && !b->trunc; i++) {
        if (i) sb_put(b, ", ", 2);
        if (max_items >= 0 && i >= (uint64_t)max_items) {
            sb_printf(b, "... (%" PRIu64 " more)", n - i);
            break;
        }
        if (et == ST_GGUF_ARRAY) {
            fmt_array(b, p + o, max_items);
            o += value_size(et, p + o);
        } else {
            o += fmt_scalar(b, et, p + o);
        }
    }
    sb_put(b, "]", 1);
}

char *st_gguf_format_value(const st_gguf *g, int64_t i, char *buf, size_t cap, int max_items) {
    if (!buf || cap == 0) return buf;
    buf[0] = 0;
    if (i < 0 || i >= g->n_kv) return buf;
    sbuf b = {buf, cap, 0, false};
    const kv_t *kv = &g->kv[i];
    if (kv->type == ST_GGUF_ARRAY) fmt_array(&b, g->map + kv->val_off, max_items);
    else fmt_scalar(&b, kv->type, g->map + kv->val_off);
    if (b.trunc && cap >= 4) memcpy(buf + cap - 4, "...", 4);
    return buf;
}

/* ---------------------------------------------------------------------------
 * tensors */
int64_t st_gguf_n_tensors(const st_gguf *g) { return g->n_tensors; }

const st_gguf_tensor *st_gguf_tensor_at(const st_gguf *g, int64_t i) {
    if (i < 0 || i >= g->n_tensors) return NULL;
    return &g->tensors[i];
}

const st_gguf_tensor *st_gguf_find_tensor(const st_gguf *g, const char *name) {
    if (!name || !g->t_hash) return NULL;
    for (uint64_t h = hash_bytes(name, strlen(name)) & g->t_hash_mask;; h = (h + 1) & g->t_hash_mask) {
        int64_t j = g->t_hash[h];
        if (j < 0) return NULL;
        if (strcmp(g->tensors[j].name, name) == 0) return &g->tensors[j];
    }
}


/* ---------------------------------------------------------------------------
 * writer */
typedef struct {
    char *name;
    uint32_t type;
    int n_dims;
    int64_t ne[ST_GGUF_MAX_DIMS];
    uint64_t size, offset;
} wtensor;

/* a growable set of NUL-terminated strings (not owned) */
typedef struct { const char **slot; uint64_t cap, n; } strset;

/* returns 1 if inserted, 0 if present, -1 on out of memory */
static int strset_add(strset *s, const char *k) {
    if ((s->n + 1) * 2 > s->cap) {
        uint64_t nc = s->cap ? s->cap * 2 : 64;
        const char **ns = calloc(nc, sizeof *ns);
        if (!ns) return -1;
        for (uint64_t i = 0; i < s->cap; i++)
            if (s->slot[i])
                for (uint64_t h = hash_bytes(s->slot[i], strlen(s->slot[i])) & (nc - 1);; h = (h + 1) & (nc - 1))
                    if (!ns[h]) { ns[h] = s->slot[i]; break; }
        free(s->slot);
        s->slot = ns;
        s->cap = nc;
    }
    for (uint64_t h = hash_bytes(k, strlen(k)) & (s->cap - 1);; h = (h + 1) & (s->cap - 1)) {
        if (!s->slot[h]) { s->slot[h] = k; s->n++; return 1; }
        if (strcmp(s->slot[h], k) == 0) return 0;
    }
}

struct st_gguf_writer {
    char *path;
    FILE *f;
    uint8_t *kv; size_t kv_len, kv_cap;
    int64_t n_kv;
    char **keys; int64_t keys_cap;   /* copies, for the duplicate check */
    strset key_set, tensor_set;
    wtensor *t; int64_t n_t, t_cap;
    uint32_t alignment;
    int64_t align_val_pos;           /* position of general.alignment's u32 in kv, or -1 */
    st_status status;                /* sticky error from the void add functions */
    char msg[512];
    bool header_written;
    int64_t next;                    /* next tensor whose data is expected */
    uint64_t pos;                    /* bytes written so far */
};

static void w_fail(st_gguf_writer *w, st_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void w_fail(st_gguf_writer *w, st_status code, const char *fmt, ...) {
    if (w->status) return; /* keep the first error */
    char m[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    w->status = code;
    snprintf(w->msg, sizeof w->msg, "%s: %s", w->path, m);
}

static bool w_put(st_gguf_writer *w, const void *p, size_t n) {
    if (w->status) return false;
    if (n > w->kv_cap - w->kv_len) {
        size_t nc = w->kv_cap ? w->kv_cap : 4096;
        while (n > nc - w->kv_len) {
            if (nc > SIZE_MAX / 2) { w_fail(w, ST_ERR_NOMEM, "metadata too large"); return false; }
            nc *= 2;
        }
        uint8_t *nb = realloc(w->kv, nc);
        if (!nb) { w_fail(w, ST_ERR_NOMEM, "out of memory for metadata"); return false; }
        w->kv = nb;
        w->kv_cap = nc;
    }
    if (n) memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
    return true;
}
static void w_u32(st_gguf_writer *w, uint32_t v) { w_put(w, &v, 4); }
static void w_u64(st_gguf_writer *w, uint64_t v) { w_put(w, &v, 8); }
static void w_str(st_gguf_writer *w, const char *s, uint64_t n) { w_u64(w, n); w_put(w, s, (size_t)n); }

/* writes key + type; false if the key is invalid or a duplicate */
static bool w_key(st_gguf_writer *w, const char *key, st_gguf_vtype type) {
    if (w->status) return false;
    if (w->header_written) { w_fail(w, ST_ERR_ARG, "key '%s' added after write_header", key ? key : "(null)"); return false; }
    if (!key || !*key) { w_fail(w, ST_ERR_ARG, "empty key"); return false; }
    if (strlen(key) > GGUF_MAX_NAME) { w_fail(w, ST_ERR_ARG, "key too long"); return false; }
    if (w->n_kv == w->keys_cap) {
        int64_t nc = w->keys_cap ? w->keys_cap * 2 : 32;
        char **nk = realloc(w->keys, (size_t)nc * sizeof *nk);
        if (!nk) { w_fail(w, ST_ERR_NOMEM, "out of memory"); return false; }
        w->keys = nk;
        w->keys_cap = nc;
    }
    char *k = strdup(key);
    if (!k) { w_fail(w, ST_ERR_NOMEM, "out of memory"); return false; }
    int r = strset_add(&w->key_set, k);
    if (r <= 0) {
        free(k);
        if (r < 0) w_fail(w, ST_ERR_NOMEM, "out of memory");
        else w_fail(w, ST_ERR_ARG, "duplicate key '%s'", key);
        return false;
    }
    w->keys[w->n_kv++] = k;
    w_str(w, key, strlen(key));
    w_u32(w, (uint32_t)type);
    return !w->status;
}

static bool is_align_key(const char *key) { return key && strcmp(key, "general.alignment") == 0; }

st_status st_gguf_writer_open(const char *path, st_gguf_writer **out, st_error *err) {
    *out = NULL;
    if (!path) return st_error_set(err, ST_ERR_ARG, "st_gguf_writer_open: path is NULL");
    st_gguf_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return st_error_set(err, ST_ERR_NOMEM, "%s: out of memory", path);
    }
    w->f = fopen(path, "wb");
    if (!w->f) {
        int e = errno;
        free(w->path);
        free(w);
        return st_error_set(err, ST_ERR_IO, "%s: cannot create: %s", path, strerror(e));
    }
    w->alignment = ST_GGUF_DEFAULT_ALIGNMENT;
    w->align_val_pos = -1;
    *out = w;
    return ST_OK;
}

void st_gguf_writer_set_alignment(st_gguf_writer *w, uint32_t alignment) {
    if (w->header_written) { w_fail(w, ST_ERR_ARG, "alignment set after write_header"); return; }
    if (alignment == 0 || (alignment & (alignment - 1))) {
        w_fail(w, ST_ERR_ARG, "alignment %" PRIu32 " is not a nonzero power of two", alignment);
        return;
    }
    w->alignment = alignment;
    if (w->align_val_pos >= 0 && !w->status) memcpy(w->kv + w->align_val_pos, &alignment, 4);
}

void st_gguf_writer_kv_u32(st_gguf_writer *w, const char *key, uint32_t v) {
    if (!w_key(w, key, ST_GGUF_UINT32)) return;
    if (is_align_key(key)) {
        w->align_val_pos = (int64_t)w->kv_len;
        w_u32(w, v);
        st_gguf_writer_set_alignment(w, v);
        return;
    }
    w_u32(w, v);
}

void st_gguf_writer_kv_i32(st_gguf_writer *w, const char *key, int32_t v) {
    if (w_key(w, key, ST_GGUF_INT32)) w_put(w, &v, 4);
}

void st_gguf_writer_kv_f32(st_gguf_writer *w, const char *key, float v) {
    if (w_key(w, key, ST_GGUF_FLOAT32)) w_put(w, &v, 4);
}

void st_gguf_writer_kv_bool(st_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    if (w_key(w, key, ST_GGUF_BOOL)) w_put(w, &b, 1);
}

void st_gguf_writer_kv_str(st_gguf_writer *w, const char *key, const char *v) {
    if (!v) { w_fail(w, ST_ERR_ARG, "key '%s': NULL string", key ? key : "(null)"); return; }
    if (w_key(w, key, ST_GGUF_STRING)) w_str(w, v, strlen(v));
}

void st_gguf_writer_kv_arr(st_gguf_writer *w, const char *key, st_gguf_vtype elem_type, const void *data, uint64_t n) {
    if ((unsigned)elem_type >= ST_GGUF_VTYPE_COUNT || elem_type == ST_GGUF_STRING || elem_type == ST_GGUF_ARRAY) {
        w_fail(w, ST_ERR_ARG, "key '%s': kv_arr needs a plain element type, got %d", key ? key : "(null)", (int)elem_type);
        return;
    }
    uint64_t bytes;
    if (__builtin_mul_overflow(n, (uint64_t)k_vtype_size[elem_type], &bytes) || bytes > SIZE_MAX ||
        (n && !data)) {
        w_fail(w, ST_ERR_ARG, "key '%s': bad array (%" PRIu64 " elements)", key ? key : "(null)", n);
        return;
    }
    if (elem_type == ST_GGUF_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (((const uint8_t *)data)[i] > 1) {
                w_fail(w, ST_ERR_ARG, "key '%s': bool element %" PRIu64 " is not 0 or 1", key, i);
                return;
            }
    if (!w_key(w, key, ST_GGUF_ARRAY)) return;
    w_u32(w, (uint32_t)elem_type);
    w_u64(w, n);
    w_put(w, data, (size_t)bytes);
}

void st_gguf_writer_kv_arr_str(st_gguf_writer *w, const char *key, const char *const *strs, uint64_t n) {
    if (n && !strs) { w_fail(w, ST_ERR_ARG, "key '%s': NULL string array", key ? key : "(null)"); return; }
    for (uint64_t i = 0; i < n; i++)
        if (!strs[i]) { w_fail(w, ST_ERR_ARG, "key '%s': string %" PRIu64 " is NULL", key ? key : "(null)", i); return; }
    if (!w_key(w, key, ST_GGUF_ARRAY)) return;
    w_u32(w, ST_GGUF_STRING);
    w_u64(w, n);
    for (uint64_t i = 0; i < n; i++) w_str(w, strs[i], strlen(strs[i]));
}

void st_gguf_writer_kv_copy(st_gguf_writer *w, const st_gguf *src, int64_t i) {
    if (!src || i < 0 || i >= src->n_kv) { w_fail(w, ST_ERR_ARG, "kv_copy: no kv %" PRId64 " in source", i); return; }
    const kv_t *kv = &src->kv[i];
    char *key = malloc(kv->key_len + 1);
    if (!key) { w_fail(w, ST_ERR_NOMEM, "out of memory"); return; }
    memcpy(key, src->map + kv->key_off, kv->key_len);
    key[kv->key_len] = 0;
    if (strlen(key) != kv->key_len) {
        w_fail(w, ST_ERR_ARG, "kv_copy: key %" PRId64 " contains a NUL byte", i);
    } else if (w_key(w, key, (st_gguf_vtype)kv->type)) {
        if (is_align_key(key) && kv->type == ST_GGUF_UINT32) {
            uint32_t a = ld32(src->map + kv->val_off);
            w->align_val_pos = (int64_t)w->kv_len;
            w_put(w, src->map + kv->val_off, 4);
            st_gguf_writer_set_alignment(w, a);
        } else {
            w_put(w, src->map + kv->val_off, (size_t)(kv->val_end - kv->val_off));
        }
    }
    free(key);
}

void st_gguf_writer_add_tensor(st_gguf_writer *w, const char *name, st_type type, int n_dims, const int64_t *ne) {
    if (w->status) return;
    if (w->header_written) { w_fail(w, ST_ERR_ARG, "tensor added after write_header"); return; }
    if (!name || !*name || strlen(name) > GGUF_MAX_NAME) { w_fail(w, ST_ERR_ARG, "bad tensor name"); return; }
    const ttype *tt = ttype_get((uint32_t)type);
    if (!tt) { w_fail(w, ST_ERR_ARG, "tensor '%s': unknown tensor type %d", name, (int)type); return; }
    if (n_dims < 1 || n_dims > ST_GGUF_MAX_DIMS || !ne) {
        w_fail(w, ST_ERR_ARG, "tensor '%s': n_dims %d (expected 1..%d)", name, n_dims, ST_GGUF_MAX_DIMS);
        return;
    }
    wtensor t = {.type = (uint32_t)type, .n_dims = n_dims};
    for (int d = 0; d < ST_GGUF_MAX_DIMS; d++) t.ne[d] = d < n_dims ? ne[d] : 1;
    int64_t nel = 1;
    for (int d = 0; d < ST_GGUF_MAX_DIMS; d++)
        if (t.ne[d] <= 0 || __builtin_mul_overflow(nel, t.ne[d], &nel)) {
            w_fail(w, ST_ERR_ARG, "tensor '%s': bad shape (ne[%d] = %" PRId64 " or element count overflow)", name, d,
                   t.ne[d]);
            return;
        }
    if (!tensor_bytes(tt, t.ne, &t.size)) {
        w_fail(w, ST_ERR_ARG, "tensor '%s': row length %" PRId64 " is not a multiple of the %s block size %" PRIu32,
               name, t.ne[0], tt->name, tt->blck);
        return;
    }
    if (w->n_t == w->t_cap) {
        int64_t nc = w->t_cap ? w->t_cap * 2 : 64;
        wtensor *nt = realloc(w->t, (size_t)nc * sizeof *nt);
        if (!nt) { w_fail(w, ST_ERR_NOMEM, "out of memory"); return; }
        w->t = nt;
        w->t_cap = nc;
    }
    if (!(t.name = strdup(name))) { w_fail(w, ST_ERR_NOMEM, "out of memory"); return; }
    int r = strset_add(&w->tensor_set, t.name);
    if (r <= 0) {
        free(t.name);
        if (r < 0) w_fail(w, ST_ERR_NOMEM, "out of memory");
        else w_fail(w, ST_ERR_ARG, "duplicate tensor name '%s'", name);
        return;
    }
    w->t[w->n_t++] = t;
}

static st_status w_write(st_gguf_writer *w, const void *p, uint64_t n, st_error *err) {
    if (n && fwrite(p, 1, (size_t)n, w->f) != (size_t)n) {
        int e = errno;
        w_fail(w, ST_ERR_IO, "write failed at offset %" PRIu64 ": %s", w->pos, strerror(e));
        return st_error_set(err, w->status, "%s", w->msg);
    }
    w->pos += n;
    return ST_OK;
}

static st_status w_pad(st_gguf_writer *w, st_error *err) {
    static const uint8_t zeros[256];
    uint64_t pad = (w->alignment - w->pos % w->alignment) % w->alignment;
    while (pad) {
        uint64_t k = pad < sizeof zeros ? pad : sizeof zeros;
        st_status s = w_write(w, zeros, k, err);
        if (s) return s;
        pad -= k;
    }
    return ST_OK;
}

st_status st_gguf_writer_write_header(st_gguf_writer *w, st_error *err) {
    if (!w->status && w->header_written) w_fail(w, ST_ERR_ARG, "write_header called twice");
    if (!w->status && w->alignment != ST_GGUF_DEFAULT_ALIGNMENT && w->align_val_pos < 0) {
        if (w_key(w, "general.alignment", ST_GGUF_UINT32)) {
            w->align_val_pos = (int64_t)w->kv_len;
            w_u32(w, w->alignment);
        }
    }
    if (w->status) return st_error_set(err, w->status, "%s", w->msg);
    /* tensor offsets, relative to the data section */
    uint64_t off = 0;
    for (int64_t i = 0; i < w->n_t; i++) {
        w->t[i].offset = off;
        uint64_t padded;
        if (__builtin_add_overflow(off, w->t[i].size, &off) ||
            __builtin_add_overflow(off, (uint64_t)w->alignment - 1, &padded)) {
            w_fail(w, ST_ERR_ARG, "data section size overflows 64 bits");
            return st_error_set(err, w->status, "%s", w->msg);
        }
        off = padded / w->alignment * w->alignment;
    }
    w->header_written = true;
    st_status s;
    uint32_t version = 3;
    uint64_t nt = (uint64_t)w->n_t, nkv = (uint64_t)w->n_kv;
    if ((s = w_write(w, "GGUF", 4, err)) || (s = w_write(w, &version, 4, err)) || (s = w_write(w, &nt, 8, err)) ||
        (s = w_write(w, &nkv, 8, err)) || (s = w_write(w, w->kv, w->kv_len, err)))
        return s;
    for (int64_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        uint64_t nl = strlen(t->name), ne;
        uint32_t nd = (uint32_t)t->n_dims, ty = t->type;
        if ((s = w_write(w, &nl, 8, err)) || (s = w_write(w, t->name, nl, err)) || (s = w_write(w, &nd, 4, err)))
            return s;
        for (int d = 0; d < t->n_dims; d++) {
            ne = (uint64_t)t->ne[d];
            if ((s = w_write(w, &ne, 8, err))) return s;
        }
        if ((s = w_write(w, &ty, 4, err)) || (s = w_write(w, &t->offset, 8, err))) return s;
    }
    return w_pad(w, err);
}

st_status st_gguf_writer_write_tensor_data(st_gguf_writer *w, const void *data, uint64_t size, st_error *err) {
    if (w->status) return st_error_set(err, w->status, "%s", w->msg);
    if (!w->header_written)
        return st_error_set(err, ST_ERR_ARG, "%s: tensor data written before write_header", w->path);
    if (w->next >= w->n_t)
        return st_error_set(err, ST_ERR_ARG, "%s: more tensor data than tensors (%" PRId64 ")", w->path, w->n_t);
    const wtensor *t = &w->t[w->next];
    if (size != t->size || (size && !data))
        return st_error_set(err, ST_ERR_ARG, "%s: tensor '%s': got %" PRIu64 " bytes of data, expected %" PRIu64,
                            w->path, t->name, size, t->size);
    st_status s = w_write(w, data, size, err);
    if (s) return s;
    if ((s = w_pad(w, err))) return s;
    w->next++;
    return ST_OK;
}

st_status st_gguf_writer_close(st_gguf_writer *w, st_error *err) {
    if (!w) return ST_OK;
    st_status s = ST_OK;
    if (w->status) {
        s = st_error_set(err, w->status, "%s", w->msg);
    } else if (!w->header_written || w->next < w->n_t) {
        s = st_error_set(err, ST_ERR_ARG, "%s: closed before all data was written (%" PRId64 " of %" PRId64
                         " tensors%s)", w->path, w->next, w->n_t, w->header_written ? "" : ", no header");
    }
    if (w->f) {
        if (fclose(w->f) != 0 && !s) {
            int e = errno;
            s = st_error_set(err, ST_ERR_IO, "%s: close failed: %s", w->path, strerror(e));
        }
    }
    if (s) unlink(w->path); /* never leave a half-written model behind */
    for (int64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    free(w->keys);
    for (int64_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->t);
    free(w->key_set.slot);
    free(w->tensor_set.slot);
    free(w->kv);
    free(w->path);
    free(w);
    return s;
}
