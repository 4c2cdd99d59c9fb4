/* GGUF reader/writer tests: the bundled tiny model, writer round trips, and
 * crafted malformed files (each must fail with its own specific error, never
 * crash). Runs against the ASan+UBSan build of core. */
#include "gguf.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- a tiny little-endian byte builder for crafting files ---- */
typedef struct { uint8_t *p; size_t n, cap; } bb;

static void bb_put(bb *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n) nc *= 2;
        b->p = realloc(b->p, nc);
        cr_assert_not_null(b->p);
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void bb_u8(bb *b, uint8_t v) { bb_put(b, &v, 1); }
static void bb_u16(bb *b, uint16_t v) { bb_put(b, &v, 2); }
static void bb_u32(bb *b, uint32_t v) { bb_put(b, &v, 4); }
static void bb_u64(bb *b, uint64_t v) { bb_put(b, &v, 8); }
static void bb_f32(bb *b, float v) { bb_put(b, &v, 4); }
static void bb_f64(bb *b, double v) { bb_put(b, &v, 8); }
static void bb_str(bb *b, const char *s) { bb_u64(b, strlen(s)); bb_put(b, s, strlen(s)); }
static void bb_pad(bb *b, size_t a) { while (b->n % a) bb_u8(b, 0); }
static void bb_free(bb *b) { free(b->p); *b = (bb){0}; }

static void bb_header(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    bb_put(b, "GGUF", 4);
    bb_u32(b, version);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}
static void bb_kv(bb *b, const char *key, uint32_t type) { bb_str(b, key); bb_u32(b, type); }
static void bb_tensor(bb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off) {
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) bb_u64(b, ne[i]);
    bb_u32(b, type);
    bb_u64(b, off);
}

static const char *tmp_path(const char *name) {
    static char buf[8][512];
    static int k;
    k = (k + 1) & 7;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tu_tmpdir(), name);
    return buf[k];
}

/* With STRATA_SEED_DIR set, every crafted file is also saved there as
 * <n>-<name> (scripts/fuzz.sh uses them as fuzz_gguf's seed corpus). */
static void seed_dump(const bb *b, const char *name) {
    const char *dir = getenv("STRATA_SEED_DIR");
    static unsigned n;
    static unsigned bulk;
    if (!dir || !*dir || b->n > (1u << 20)) return;
    /* the truncation and mutation loops write thousands: keep every 25th */
    if ((!strcmp(name, "trunc.gguf") || !strcmp(name, "fuzz.gguf")) && bulk++ % 25) return;
    char path[1024];
    snprintf(path, sizeof path, "%s/%04u-%s", dir, n++, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "STRATA_SEED_DIR: cannot write %s", path);
    if (b->n) cr_assert_eq(fwrite(b->p, 1, b->n, f), b->n);
    fclose(f);
}

static const char *bb_write(const bb *b, const char *name) {
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    if (b->n) cr_assert_eq(fwrite(b->p, 1, b->n, f), b->n);
    fclose(f);
    seed_dump(b, name);
    return path;
}

/* opens the bytes of b and expects failure with `code` and `substr` in the message */
static void expect_fail_at(const bb *b, size_t len, st_status code, const char *substr, const char *name) {
    bb t = *b;
    t.n = len;
    const char *path = bb_write(&t, name);
    st_gguf *g = (st_gguf *)0x1;
    st_error e = {0};
    st_status s = st_gguf_open(path, &g, &e);
    cr_assert_null(g, "%s: expected failure", name);
    cr_assert_eq(s, code, "%s: status %d (%s), expected %d: %s", name, s, st_status_str(s), code, e.msg);
    cr_assert_eq(e.code, code);
    cr_assert(strstr(e.msg, substr) != NULL, "%s: message lacks '%s': %s", name, substr, e.msg);
    cr_assert(strstr(e.msg, path) != NULL, "%s: message does not name the file: %s", name, e.msg);
}
static void expect_fail(const bb *b, st_status code, const char *substr, const char *name) {
    expect_fail_at(b, b->n, code, substr, name);
}

/* A small valid file: 3 kvs and two tensors (F32 [4] and Q8_0 [32, 2]). */
static void build_valid(bb *b) {
    bb_header(b, 3, 2, 3);
    bb_kv(b, "general.architecture", ST_GGUF_STRING);
    bb_str(b, "llama");
    bb_kv(b, "tokenizer.ggml.tokens", ST_GGUF_ARRAY);
    bb_u32(b, ST_GGUF_STRING);
    bb_u64(b, 3);
    bb_str(b, "<unk>");
    bb_str(b, "<s>");
    bb_str(b, "</s>");
    bb_kv(b, "llama.block_count", ST_GGUF_UINT32);
    bb_u32(b, 1);
    bb_tensor(b, "a.weight", 1, (uint64_t[]){4}, ST_TYPE_F32, 0);
    bb_tensor(b, "b.weight", 2, (uint64_t[]){32, 2}, ST_TYPE_Q8_0, 32);
    bb_pad(b, 32);
    for (int i = 0; i < 32 + 68; i++) bb_u8(b, (uint8_t)i);
}

static st_gguf *open_ok(const char *path) {
    st_gguf *g = NULL;
    st_error e = {0};
    st_status s = st_gguf_open(path, &g, &e);
    cr_assert_eq(s, ST_OK, "open %s: %s", path, e.msg);
    cr_assert_not_null(g);
    return g;
}

static bool str_eq(st_gguf_str s, const char *c) { return s.ptr && s.len == strlen(c) && memcmp(s.ptr, c, s.len) == 0; }

/* ======================================================================== */
Test(gguf, tiny_model) {
    st_gguf *g = open_ok(tu_source_path("assets/tiny-14m-q8_0.gguf"));
    cr_assert_eq(st_gguf_version(g), 3);
    cr_assert_eq(st_gguf_file_size(g), 16134400);
    cr_assert_eq(st_gguf_alignment(g), 32);
    cr_assert_eq(st_gguf_data_offset(g) % 32, 0);
    cr_assert_eq(st_gguf_n_kv(g), 24);
    cr_assert_eq(st_gguf_n_tensors(g), 74);
    cr_assert_geq(st_gguf_fd(g), 0);
    cr_assert_not_null(st_gguf_base(g));
    cr_assert(strstr(st_gguf_path(g), "tiny-14m-q8_0.gguf"));

    uint32_t u;
    int64_t i64;
    float f;
    bool bo;
    st_gguf_str s;
    cr_assert(st_gguf_get_u32(g, "llama.embedding_length", &u));
    cr_assert_eq(u, 256);
    cr_assert(st_gguf_get_u32(g, "llama.block_count", &u));
    cr_assert_eq(u, 8);
    cr_assert(st_gguf_get_u32(g, "llama.attention.head_count_kv", &u));
    cr_assert_eq(u, 2);
    cr_assert(st_gguf_get_i64(g, "llama.feed_forward_length", &i64));
    cr_assert_eq(i64, 768);
    cr_assert(st_gguf_get_f32(g, "llama.rope.freq_base", &f));
    cr_assert_float_eq(f, 10000.0f, 1e-3);
    cr_assert(st_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f));
    cr_assert_float_eq(f, 1e-5f, 1e-9);
    cr_assert(st_gguf_get_f32(g, "llama.block_count", &f)); /* integers convert */
    cr_assert_float_eq(f, 8.0f, 0);
    cr_assert(st_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &bo));
    cr_assert(bo);
    cr_assert(st_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &bo));
    cr_assert(!bo);
    cr_assert(st_gguf_get_str(g, "general.architecture", &s));
    cr_assert(str_eq(s, "llama"));
    cr_assert(st_gguf_get_str(g, "general.name", &s));
    cr_assert(str_eq(s, "strata-tiny-14m"));
    cr_assert(!st_gguf_get_str(g, "llama.block_count", &s)); /* wrong type */
    cr_assert(!st_gguf_get_u32(g, "general.architecture", &u));
    cr_assert(!st_gguf_get_u32(g, "no.such.key", &u));
    cr_assert(!st_gguf_get_bool(g, "llama.block_count", &bo));
    cr_assert_eq(st_gguf_find_key(g, "no.such.key"), -1);

    int64_t k = st_gguf_find_key(g, "tokenizer.ggml.tokens");
    cr_assert_geq(k, 0);
    cr_assert(str_eq(st_gguf_key(g, k), "tokenizer.ggml.tokens"));
    cr_assert_eq(st_gguf_kv_type(g, k), ST_GGUF_ARRAY);
    st_gguf_vtype et;
    uint64_t n;
    cr_assert(st_gguf_get_arr(g, k, &et, &n));
    cr_assert_eq(et, ST_GGUF_STRING);
    cr_assert_eq(n, 32000);
    cr_assert_null(st_gguf_arr_data(g, k));
    cr_assert(str_eq(st_gguf_arr_str(g, k, 0), "<unk>"));
    cr_assert(str_eq(st_gguf_arr_str(g, k, 1), "<s>"));
    cr_assert(str_eq(st_gguf_arr_str(g, k, 2), "</s>"));
    cr_assert(str_eq(st_gguf_arr_str(g, k, 29871), "\xe2\x96\x81")); /* U+2581 */
    cr_assert_null(st_gguf_arr_str(g, k, 32000).ptr);
    cr_assert_null(st_gguf_arr_str(g, st_gguf_find_key(g, "general.name"), 0).ptr);

    k = st_gguf_find_key(g, "tokenizer.ggml.scores");
    cr_assert(st_gguf_get_arr(g, k, &et, &n));
    cr_assert_eq(et, ST_GGUF_FLOAT32);
    cr_assert_eq(n, 32000);
    cr_assert_not_null(st_gguf_arr_data(g, k));
    k = st_gguf_find_key(g, "tokenizer.ggml.token_type");
    cr_assert(st_gguf_get_arr(g, k, &et, &n));
    cr_assert_eq(et, ST_GGUF_INT32);
    int32_t tt1;
    memcpy(&tt1, (const char *)st_gguf_arr_data(g, k) + 4, 4);
    cr_assert_eq(tt1, 3); /* <s> is a control token */

    char buf[256];
    k = st_gguf_find_key(g, "tokenizer.ggml.tokens");
    st_gguf_format_value(g, k, buf, sizeof buf, 3);
    cr_assert(strstr(buf, "[\"<unk>\", \"<s>\", \"</s>\", ... (31997 more)]"), "%s", buf);
    st_gguf_format_value(g, st_gguf_find_key(g, "llama.embedding_length"), buf, sizeof buf, 3);
    cr_assert_str_eq(buf, "256");
    st_gguf_format_value(g, st_gguf_find_key(g, "tokenizer.ggml.add_bos_token"), buf, sizeof buf, 3);
    cr_assert_str_eq(buf, "true");
    st_gguf_format_value(g, k, buf, 16, -1); /* truncated, never overflows */
    cr_assert_eq(strlen(buf), 15);

    struct { const char *name; int n_dims; int64_t ne0, ne1; } want[] = {
        {"token_embd.weight", 2, 256, 32000},      {"output_norm.weight", 1, 256, 1},
        {"blk.0.attn_q.weight", 2, 256, 256},      {"blk.0.attn_k.weight", 2, 256, 128},
        {"blk.7.attn_v.weight", 2, 256, 128},      {"blk.3.attn_output.weight", 2, 256, 256},
        {"blk.0.ffn_gate.weight", 2, 256, 768},    {"blk.5.ffn_up.weight", 2, 256, 768},
        {"blk.0.ffn_down.weight", 2, 768, 256},    {"blk.0.attn_norm.weight", 1, 256, 1},
        {"blk.7.ffn_norm.weight", 1, 256, 1},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const st_gguf_tensor *t = st_gguf_find_tensor(g, want[i].name);
        cr_assert_not_null(t, "%s", want[i].name);
        cr_assert_str_eq(t->name, want[i].name);
        cr_assert_eq(t->n_dims, want[i].n_dims, "%s", want[i].name);
        cr_assert_eq(t->ne[0], want[i].ne0, "%s", want[i].name);
        cr_assert_eq(t->ne[1], want[i].ne1, "%s", want[i].name);
        cr_assert_eq(t->ne[2], 1);
        cr_assert_eq(t->ne[3], 1);
        if (t->n_dims == 2) {
            cr_assert_eq(t->type, ST_TYPE_Q8_0, "%s", want[i].name);
            cr_assert_eq(t->size, (uint64_t)(t->ne[0] / 32 * 34 * t->ne[1]));
        } else {
            cr_assert_eq(t->type, ST_TYPE_F32);
            cr_assert_eq(t->size, 1024);
        }
        cr_assert_eq(t->offset % 32, 0);
        cr_assert_geq(t->offset, st_gguf_data_offset(g));
        cr_assert_leq(t->offset + t->size, st_gguf_file_size(g));
        cr_assert_eq((const char *)t->data, (const char *)st_gguf_base(g) + t->offset);
    }
    cr_assert_null(st_gguf_find_tensor(g, "output.weight"));
    cr_assert_null(st_gguf_tensor_at(g, 74));
    cr_assert_null(st_gguf_tensor_at(g, -1));
    int64_t params = 0;
    for (int64_t i = 0; i < 74; i++) {
        const st_gguf_tensor *t = st_gguf_tensor_at(g, i);
        cr_assert_eq(st_gguf_find_tensor(g, t->name), t);
        params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    }
    cr_assert_eq(params, 14487808);
    st_gguf_close(g);
}

Test(gguf, shared_files_open) {
    const char *files[] = {
        "models/tiny-14m-f32.gguf",     "models/tiny-14m-q2_k.gguf",    "models/tiny-14m-q3_k_m.gguf",
        "models/tiny-14m-q4_0.gguf",    "models/tiny-14m-q4_k_m.gguf",  "models/tiny-14m-q5_1.gguf",
        "models/tiny-14m-q5_k_m.gguf",  "models/tiny-14m-q6_k.gguf",    "refs/tokenizer/ggml-vocab-gpt-2.gguf",
        "refs/tokenizer/ggml-vocab-llama-bpe.gguf", "refs/tokenizer/ggml-vocab-llama-spm.gguf",
        "refs/tokenizer/ggml-vocab-qwen2.gguf",
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        const char *p = tu_shared_path(files[i]);
        if (!tu_file_exists(p)) continue;
        st_gguf *g = open_ok(p);
        char buf[512];
        for (int64_t k = 0; k < st_gguf_n_kv(g); k++) st_gguf_format_value(g, k, buf, sizeof buf, 8);
        st_gguf_close(g);
    }
}

Test(gguf, io_errors) {
    st_gguf *g = (st_gguf *)0x1;
    st_error e = {0};
    cr_assert_eq(st_gguf_open(tmp_path("does-not-exist.gguf"), &g, &e), ST_ERR_IO);
    cr_assert_null(g);
    cr_assert(strstr(e.msg, "does-not-exist.gguf"), "%s", e.msg);
    cr_assert_eq(st_gguf_open(tu_tmpdir(), &g, &e), ST_ERR_IO);
    cr_assert_null(g);
}

Test(gguf, crafted_valid_file) {
    bb b = {0};
    build_valid(&b);
    st_gguf *g = open_ok(bb_write(&b, "valid.gguf"));
    cr_assert_eq(st_gguf_n_tensors(g), 2);
    cr_assert_eq(st_gguf_data_offset(g) % 32, 0);
    const st_gguf_tensor *t = st_gguf_find_tensor(g, "b.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->size, 68);
    cr_assert_eq(t->offset, st_gguf_data_offset(g) + 32);
    cr_assert_eq(((const uint8_t *)t->data)[0], 32);
    int64_t k = st_gguf_find_key(g, "tokenizer.ggml.tokens");
    cr_assert(str_eq(st_gguf_arr_str(g, k, 2), "</s>"));
    st_gguf_close(g);
    bb_free(&b);
}

/* Every prefix of a valid file must fail cleanly (the data section is needed
 * too), and so must many truncation points of the real model. */
Test(gguf, truncated_everywhere) {
    bb b = {0};
    build_valid(&b);
    for (size_t len = 0; len < b.n; len++) {
        bb t = b;
        t.n = len;
        const char *path = bb_write(&t, "trunc.gguf");
        st_gguf *g = (st_gguf *)0x1;
        st_error e = {0};
        st_status s = st_gguf_open(path, &g, &e);
        cr_assert_eq(s, ST_ERR_FORMAT, "len %zu: status %d: %s", len, s, e.msg);
        cr_assert_null(g);
        if (len == 0) cr_assert(strstr(e.msg, "empty"), "%s", e.msg);
        else if (len < 4) cr_assert(strstr(e.msg, "magic"), "%s", e.msg);
        else cr_assert(strstr(e.msg, "past end") || strstr(e.msg, "impossible"), "len %zu: %s", len, e.msg);
    }
    bb_free(&b);

    /* the real model: a copy truncated step by step (descending, so it is written once) */
    size_t n;
    char *data = tu_read_file(tu_source_path("assets/tiny-14m-q8_0.gguf"), &n);
    cr_assert_not_null(data);
    const char *path = tmp_path("trunc-model.gguf");
    FILE *f = fopen(path, "wb");
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
    free(data);
    size_t lens[8192];
    int nl = 0;
    for (size_t l = n - 1; l > 1000000 && nl < 300; l -= 1 + (l % 49999)) lens[nl++] = l;  /* data section */
    for (size_t l = 728320; l > 2000 && nl < 3000; l -= 200 + (l % 157)) lens[nl++] = l;  /* metadata */
    for (size_t l = 1999;; l--) { lens[nl++] = l; if (l == 0) break; }                       /* every byte */
    for (int i = 0; i < nl; i++) {
        cr_assert_eq(truncate(path, (off_t)lens[i]), 0);
        st_gguf *g = (st_gguf *)0x1;
        st_error e = {0};
        st_status s = st_gguf_open(path, &g, &e);
        cr_assert_eq(s, ST_ERR_FORMAT, "len %zu: status %d: %s", lens[i], s, e.msg);
        cr_assert_null(g);
    }
}

/* ---- malformed files, one specific error each ---- */
Test(gguf, empty_file) {
    bb b = {0};
    expect_fail(&b, ST_ERR_FORMAT, "empty", "empty.gguf");
}

Test(gguf, bad_magic) {
    bb b = {0};
    build_valid(&b);
    memcpy(b.p, "GGML", 4);
    expect_fail(&b, ST_ERR_FORMAT, "magic", "magic.gguf");
    bb_free(&b);
}

Test(gguf, version_1_and_others) {
    bb b = {0};
    bb_header(&b, 1, 0, 0);
    expect_fail(&b, ST_ERR_UNSUPPORTED, "version 1", "v1.gguf");
    bb_free(&b);
    bb_header(&b, 4, 0, 0);
    expect_fail(&b, ST_ERR_UNSUPPORTED, "version 4", "v4.gguf");
    bb_free(&b);
    /* a big-endian file: version 3 byte-swapped */
    bb_put(&b, "GGUF", 4);
    bb_u32(&b, 0x03000000u);
    bb_u64(&b, 0);
    bb_u64(&b, 0);
    expect_fail(&b, ST_ERR_UNSUPPORTED, "big-endian", "be.gguf");
    bb_free(&b);
    /* version 2 is fine */
    bb_header(&b, 2, 0, 0);
    st_gguf *g = open_ok(bb_write(&b, "v2.gguf"));
    cr_assert_eq(st_gguf_version(g), 2);
    st_gguf_close(g);
    bb_free(&b);
}

Test(gguf, absurd_counts) {
    bb b = {0};
    bb_header(&b, 3, 1ull << 60, 0);
    while (b.n < 1000) bb_u8(&b, 0);
    expect_fail(&b, ST_ERR_FORMAT, "tensor count 1152921504606846976 is impossible", "ntensors.gguf");
    bb_free(&b);
    bb_header(&b, 3, 0, 1ull << 60);
    while (b.n < 1000) bb_u8(&b, 0);
    expect_fail(&b, ST_ERR_FORMAT, "kv count", "nkv.gguf");
    bb_free(&b);
    bb_header(&b, 3, UINT64_MAX, UINT64_MAX);
    expect_fail(&b, ST_ERR_FORMAT, "count", "nmax.gguf");
    bb_free(&b);
}

Test(gguf, string_length_past_end) {
    bb b = {0};
    bb_header(&b, 3, 0, 1);
    bb_kv(&b, "general.name", ST_GGUF_STRING);
    bb_u64(&b, 1000);
    bb_put(&b, "abc", 3);
    expect_fail(&b, ST_ERR_FORMAT, "string length 1000", "strlen.gguf");
    bb_free(&b);
    /* key length near 2^64 */
    bb_header(&b, 3, 0, 1);
    bb_u64(&b, UINT64_MAX - 3);
    bb_put(&b, "abcdefghijklmnop", 16);
    expect_fail(&b, ST_ERR_FORMAT, "string length", "keylen.gguf");
    bb_free(&b);
    /* a string inside an array */
    bb_header(&b, 3, 0, 1);
    bb_kv(&b, "tokenizer.ggml.tokens", ST_GGUF_ARRAY);
    bb_u32(&b, ST_GGUF_STRING);
    bb_u64(&b, 2);
    bb_str(&b, "a");
    bb_u64(&b, 1ull << 40);
    expect_fail(&b, ST_ERR_FORMAT, "string length", "arrstrlen.gguf");
    bb_free(&b);
}

Test(gguf, unknown_value_type) {
    bb b = {0};
    bb_header(&b, 3, 0, 1);
    bb_kv(&b, "x.y", 13);
    bb_u64(&b, 0);
    expect_fail(&b, ST_ERR_FORMAT, "unknown value type 13", "vtype.gguf");
    bb_free(&b);
    bb_header(&b, 3, 0, 1);
    bb_kv(&b, "x.y", ST_GGUF_ARRAY);
    bb_u32(&b, 0xffffffffu);
    bb_u64(&b, 0);
    expect_fail(&b, ST_ERR_FORMAT, "value type", "arrvtype.gguf");
    bb_free(&b);
}

Test(gguf, bad_bool) {
    bb b = {0};
    bb_header(&b, 3, 0, 1);
    bb_kv(&b, "x.flag", ST_GGUF_BOOL);
    bb_u8(&b, 2);
    expect_fail(&b, ST_ERR_FORMAT, "bool", "bool.gguf");
    bb_free(&b);
}

static void one_tensor(bb *b, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off, size_t data) {
    bb_header(b, 3, 1, 0);
    bb_tensor(b, "blk.0.attn_q.weight", n_dims, ne, type, off);
    bb_pad(b, 32);
    for (size_t i = 0; i < data; i++) bb_u8(b, 0);
}

Test(gguf, unknown_tensor_type) {
    bb b = {0};
    one_tensor(&b, 1, (uint64_t[]){32}, 4, 0, 256); /* removed Q4_2 */
    expect_fail(&b, ST_ERR_FORMAT, "unknown tensor type 4", "ttype4.gguf");
    bb_free(&b);
    one_tensor(&b, 1, (uint64_t[]){32}, 1000, 0, 256);
    expect_fail(&b, ST_ERR_FORMAT, "tensor type", "ttype1000.gguf");
    bb_free(&b);
}

Test(gguf, bad_n_dims) {
    bb b = {0};
    one_tensor(&b, 5, (uint64_t[]){1, 1, 1, 1, 1}, ST_TYPE_F32, 0, 64);
    expect_fail(&b, ST_ERR_FORMAT, "n_dims 5", "ndims5.gguf");
    bb_free(&b);
    one_tensor(&b, 0, NULL, ST_TYPE_F32, 0, 64);
    expect_fail(&b, ST_ERR_FORMAT, "n_dims 0", "ndims0.gguf");
    bb_free(&b);
}

Test(gguf, bad_shape) {
    bb b = {0};
    one_tensor(&b, 2, (uint64_t[]){4, 0}, ST_TYPE_F32, 0, 64);
    expect_fail(&b, ST_ERR_FORMAT, "ne[1] = 0", "ne0.gguf");
    bb_free(&b);
    one_tensor(&b, 1, (uint64_t[]){(uint64_t)-5}, ST_TYPE_F32, 0, 64);
    expect_fail(&b, ST_ERR_FORMAT, "ne[0] = -5", "neneg.gguf");
    bb_free(&b);
    one_tensor(&b, 3, (uint64_t[]){1ull << 30, 1ull << 30, 1ull << 30}, ST_TYPE_F32, 0, 64);
    expect_fail(&b, ST_ERR_FORMAT, "element count overflow", "nelover.gguf");
    bb_free(&b);
    /* elements fit int64 but bytes do not */
    one_tensor(&b, 2, (uint64_t[]){1ull << 31, 1ull << 31}, ST_TYPE_F64, 0, 64);
    expect_fail(&b, ST_ERR_FORMAT, "overflow", "bytesover.gguf");
    bb_free(&b);
    one_tensor(&b, 2, (uint64_t[]){33, 2}, ST_TYPE_Q8_0, 0, 256);
    expect_fail(&b, ST_ERR_FORMAT, "not a multiple of the Q8_0 block size 32", "blk.gguf");
    bb_free(&b);
}

Test(gguf, tensor_offsets) {
    bb b = {0};
    one_tensor(&b, 1, (uint64_t[]){8}, ST_TYPE_F32, UINT64_MAX - 31, 64);
    expect_fail(&b, ST_ERR_FORMAT, "overflow", "offover.gguf");
    bb_free(&b);
    one_tensor(&b, 1, (uint64_t[]){8}, ST_TYPE_F32, 64, 64);
    expect_fail(&b, ST_ERR_FORMAT, "past end of file", "pastend.gguf");
    bb_free(&b);
    one_tensor(&b, 1, (uint64_t[]){8}, ST_TYPE_F32, 0, 31); /* data cut short */
    expect_fail(&b, ST_ERR_FORMAT, "lies past end of file", "short.gguf");
    bb_free(&b);
    one_tensor(&b, 1, (uint64_t[]){8}, ST_TYPE_F32, 8, 64);
    expect_fail(&b, ST_ERR_FORMAT, "misaligned", "misalign.gguf");
    bb_free(&b);
    /* the message names the tensor */
    one_tensor(&b, 1, (uint64_t[]){8}, ST_TYPE_F32, 8, 64);
    expect_fail(&b, ST_ERR_FORMAT, "tensor 'blk.0.attn_q.weight'", "misalign2.gguf");
    bb_free(&b);
}

Test(gguf, duplicates) {
    bb b = {0};
    bb_header(&b, 3, 2, 0);
    bb_tensor(&b, "w", 1, (uint64_t[]){8}, ST_TYPE_F32, 0);
    bb_tensor(&b, "w", 1, (uint64_t[]){8}, ST_TYPE_F32, 32);
    bb_pad(&b, 32);
    for (int i = 0; i < 64; i++) bb_u8(&b, 0);
    expect_fail(&b, ST_ERR_FORMAT, "duplicate tensor name", "duptensor.gguf");
    bb_free(&b);
    bb_header(&b, 3, 0, 3);
    bb_kv(&b, "a", ST_GGUF_UINT8);
    bb_u8(&b, 1);
    bb_kv(&b, "b", ST_GGUF_UINT8);
    bb_u8(&b, 1);
    bb_kv(&b, "a", ST_GGUF_STRING);
    bb_str(&b, "x");
    expect_fail(&b, ST_ERR_FORMAT, "duplicate key 'a'", "dupkey.gguf");
    bb_free(&b);
}

static void align_file(bb *b, uint32_t type, uint64_t v) {
    bb_header(b, 3, 0, 1);
    bb_kv(b, "general.alignment", type);
    if (type == ST_GGUF_UINT32) bb_u32(b, (uint32_t)v);
    else bb_u64(b, v);
}

Test(gguf, bad_alignment) {
    bb b = {0};
    align_file(&b, ST_GGUF_UINT32, 0);
    expect_fail(&b, ST_ERR_FORMAT, "alignment 0 is not a nonzero power of two", "align0.gguf");
    bb_free(&b);
    align_file(&b, ST_GGUF_UINT32, 3);
    expect_fail(&b, ST_ERR_FORMAT, "alignment 3", "align3.gguf");
    bb_free(&b);
    align_file(&b, ST_GGUF_UINT64, 64);
    expect_fail(&b, ST_ERR_FORMAT, "expected u32", "align64.gguf");
    bb_free(&b);
    /* a good alignment moves the data section and is enforced on offsets */
    bb_header(&b, 3, 1, 1);
    bb_kv(&b, "general.alignment", ST_GGUF_UINT32);
    bb_u32(&b, 256);
    bb_tensor(&b, "w", 1, (uint64_t[]){8}, ST_TYPE_F32, 0);
    size_t off_field = b.n - 8;
    bb_pad(&b, 256);
    for (int i = 0; i < 32; i++) bb_u8(&b, 0);
    st_gguf *g = open_ok(bb_write(&b, "align256.gguf"));
    cr_assert_eq(st_gguf_alignment(g), 256);
    cr_assert_eq(st_gguf_data_offset(g), 256);
    st_gguf_close(g);
    memcpy(b.p + off_field, &(uint64_t){32}, 8); /* offset field -> 32: misaligned for 256 */
    expect_fail(&b, ST_ERR_FORMAT, "not a multiple of the alignment 256", "align256bad.gguf");
    bb_free(&b);
}

Test(gguf, nested_arrays) {
    bb b = {0};
    /* absurd nested length */
    bb_header(&b, 3, 0, 1);
    bb_kv(&b, "x.nested", ST_GGUF_ARRAY);
    bb_u32(&b, ST_GGUF_ARRAY);
    bb_u64(&b, 1);
    bb_u32(&b, ST_GGUF_UINT32);
    bb_u64(&b, 1ull << 62);
    bb_u32(&b, 7);
    expect_fail(&b, ST_ERR_FORMAT, "array length 4611686018427387904", "nestlen.gguf");
    bb_free(&b);
    /* absurd outer length */
    bb_header(&b, 3, 0, 1);
    bb_kv(&b, "x.nested", ST_GGUF_ARRAY);
    bb_u32(&b, ST_GGUF_ARRAY);
    bb_u64(&b, UINT64_MAX);
    bb_u32(&b, ST_GGUF_UINT32);
    bb_u64(&b, 0);
    expect_fail(&b, ST_ERR_FORMAT, "array length", "outerlen.gguf");
    bb_free(&b);
    /* nesting too deep */
    bb_header(&b, 3, 0, 1);
    bb_kv(&b, "x.deep", ST_GGUF_ARRAY);
    for (int i = 0; i < 100; i++) { bb_u32(&b, ST_GGUF_ARRAY); bb_u64(&b, 1); }
    bb_u32(&b, ST_GGUF_UINT8);
    bb_u64(&b, 0);
    expect_fail(&b, ST_ERR_FORMAT, "nested deeper", "deep.gguf");
    bb_free(&b);
    /* unknown type inside a nested array */
    bb_header(&b, 3, 0, 1);
    bb_kv(&b, "x.nested", ST_GGUF_ARRAY);
    bb_u32(&b, ST_GGUF_ARRAY);
    bb_u64(&b, 1);
    bb_u32(&b, 99);
    bb_u64(&b, 0);
    expect_fail(&b, ST_ERR_FORMAT, "value type 99", "nesttype.gguf");
    bb_free(&b);
}

Test(gguf, long_tensor_name) {
    bb b = {0};
    bb_header(&b, 3, 1, 0);
    char *name = malloc(70000);
    memset(name, 'a', 69999);
    name[69999] = 0;
    bb_tensor(&b, name, 1, (uint64_t[]){8}, ST_TYPE_F32, 0);
    free(name);
    bb_pad(&b, 32);
    for (int i = 0; i < 32; i++) bb_u8(&b, 0);
    expect_fail(&b, ST_ERR_FORMAT, "too long", "longname.gguf");
    bb_free(&b);
}

/* ---- writer ---- */

/* A crafted source with every value type, nested arrays and an empty array. */
static void build_all_types(bb *b) {
    bb_header(b, 3, 0, 17);
    bb_kv(b, "t.u8", ST_GGUF_UINT8); bb_u8(b, 200);
    bb_kv(b, "t.i8", ST_GGUF_INT8); bb_u8(b, (uint8_t)-100);
    bb_kv(b, "t.u16", ST_GGUF_UINT16); bb_u16(b, 60000);
    bb_kv(b, "t.i16", ST_GGUF_INT16); bb_u16(b, (uint16_t)-30000);
    bb_kv(b, "t.u32", ST_GGUF_UINT32); bb_u32(b, 4000000000u);
    bb_kv(b, "t.i32", ST_GGUF_INT32); bb_u32(b, (uint32_t)-2000000000);
    bb_kv(b, "t.f32", ST_GGUF_FLOAT32); bb_f32(b, 1.5f);
    bb_kv(b, "t.bool", ST_GGUF_BOOL); bb_u8(b, 1);
    bb_kv(b, "t.str", ST_GGUF_STRING); bb_str(b, "h\xc3\xa9llo\n");
    bb_kv(b, "t.u64", ST_GGUF_UINT64); bb_u64(b, UINT64_MAX);
    bb_kv(b, "t.i64", ST_GGUF_INT64); bb_u64(b, (uint64_t)INT64_MIN);
    bb_kv(b, "t.f64", ST_GGUF_FLOAT64); bb_f64(b, -2.25);
    bb_kv(b, "t.arr_i16", ST_GGUF_ARRAY); bb_u32(b, ST_GGUF_INT16); bb_u64(b, 3);
    bb_u16(b, 1); bb_u16(b, (uint16_t)-2); bb_u16(b, 3);
    bb_kv(b, "t.arr_empty", ST_GGUF_ARRAY); bb_u32(b, ST_GGUF_STRING); bb_u64(b, 0);
    /* [[1, 2], [], [3]] as u8 */
    bb_kv(b, "t.nested", ST_GGUF_ARRAY); bb_u32(b, ST_GGUF_ARRAY); bb_u64(b, 3);
    bb_u32(b, ST_GGUF_UINT8); bb_u64(b, 2); bb_u8(b, 1); bb_u8(b, 2);
    bb_u32(b, ST_GGUF_UINT8); bb_u64(b, 0);
    bb_u32(b, ST_GGUF_UINT8); bb_u64(b, 1); bb_u8(b, 3);
    /* [["a", "bc"], [[true]]]: strings and a third level */
    bb_kv(b, "t.nested2", ST_GGUF_ARRAY); bb_u32(b, ST_GGUF_ARRAY); bb_u64(b, 2);
    bb_u32(b, ST_GGUF_STRING); bb_u64(b, 2); bb_str(b, "a"); bb_str(b, "bc");
    bb_u32(b, ST_GGUF_ARRAY); bb_u64(b, 1); bb_u32(b, ST_GGUF_BOOL); bb_u64(b, 1); bb_u8(b, 1);
    bb_kv(b, "t.arr_f64", ST_GGUF_ARRAY); bb_u32(b, ST_GGUF_FLOAT64); bb_u64(b, 2);
    bb_f64(b, 0.5); bb_f64(b, 1e300);
}

static void check_all_types(const st_gguf *g) {
    char buf[256];
    struct { const char *key; st_gguf_vtype type; const char *text; } want[] = {
        {"t.u8", ST_GGUF_UINT8, "200"},
        {"t.i8", ST_GGUF_INT8, "-100"},
        {"t.u16", ST_GGUF_UINT16, "60000"},
        {"t.i16", ST_GGUF_INT16, "-30000"},
        {"t.u32", ST_GGUF_UINT32, "4000000000"},
        {"t.i32", ST_GGUF_INT32, "-2000000000"},
        {"t.f32", ST_GGUF_FLOAT32, "1.5"},
        {"t.bool", ST_GGUF_BOOL, "true"},
        {"t.str", ST_GGUF_STRING, "\"h\xc3\xa9llo\\n\""},
        {"t.u64", ST_GGUF_UINT64, "18446744073709551615"},
        {"t.i64", ST_GGUF_INT64, "-9223372036854775808"},
        {"t.f64", ST_GGUF_FLOAT64, "-2.25"},
        {"t.arr_i16", ST_GGUF_ARRAY, "[1, -2, 3]"},
        {"t.arr_empty", ST_GGUF_ARRAY, "[]"},
        {"t.nested", ST_GGUF_ARRAY, "[[1, 2], [], [3]]"},
        {"t.nested2", ST_GGUF_ARRAY, "[[\"a\", \"bc\"], [[true]]]"},
        {"t.arr_f64", ST_GGUF_ARRAY, "[0.5, 1e+300]"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int64_t k = st_gguf_find_key(g, want[i].key);
        cr_assert_geq(k, 0, "%s", want[i].key);
        cr_assert_eq(st_gguf_kv_type(g, k), want[i].type, "%s", want[i].key);
        st_gguf_format_value(g, k, buf, sizeof buf, -1);
        cr_assert_str_eq(buf, want[i].text, "%s", want[i].key);
    }
    /* getters and range checks */
    uint32_t u;
    int64_t i64;
    float f;
    cr_assert(st_gguf_get_u32(g, "t.u8", &u) && u == 200);
    cr_assert(st_gguf_get_u32(g, "t.u32", &u) && u == 4000000000u);
    cr_assert(!st_gguf_get_u32(g, "t.i8", &u));  /* negative */
    cr_assert(!st_gguf_get_u32(g, "t.u64", &u)); /* too big */
    cr_assert(st_gguf_get_i64(g, "t.i64", &i64) && i64 == INT64_MIN);
    cr_assert(st_gguf_get_i64(g, "t.i16", &i64) && i64 == -30000);
    cr_assert(!st_gguf_get_i64(g, "t.u64", &i64));
    cr_assert(st_gguf_get_f32(g, "t.f64", &f) && f == -2.25f);
    cr_assert(st_gguf_get_f32(g, "t.i32", &f) && f == -2e9f);
    cr_assert(!st_gguf_get_f32(g, "t.str", &f));
    /* nested access */
    int64_t k = st_gguf_find_key(g, "t.nested");
    st_gguf_vtype et;
    uint64_t n;
    const void *d;
    cr_assert(st_gguf_get_arr(g, k, &et, &n) && et == ST_GGUF_ARRAY && n == 3);
    cr_assert_null(st_gguf_arr_data(g, k));
    cr_assert(st_gguf_arr_arr(g, k, 2, &et, &n, &d) && et == ST_GGUF_UINT8 && n == 1);
    cr_assert_eq(*(const uint8_t *)d, 3);
    cr_assert(st_gguf_arr_arr(g, k, 0, &et, &n, &d) && n == 2 && ((const uint8_t *)d)[1] == 2);
    cr_assert(!st_gguf_arr_arr(g, k, 3, &et, &n, &d));
    cr_assert(!st_gguf_arr_arr(g, st_gguf_find_key(g, "t.arr_i16"), 0, &et, &n, &d));
    k = st_gguf_find_key(g, "t.arr_empty");
    cr_assert(st_gguf_get_arr(g, k, &et, &n) && et == ST_GGUF_STRING && n == 0);
    cr_assert_null(st_gguf_arr_str(g, k, 0).ptr);
    /* abbreviation */
    st_gguf_format_value(g, st_gguf_find_key(g, "t.arr_i16"), buf, sizeof buf, 1);
    cr_assert_str_eq(buf, "[1, ... (2 more)]");
}

Test(gguf, crafted_all_types) {
    bb b = {0};
    build_all_types(&b);
    st_gguf *g = open_ok(bb_write(&b, "alltypes.gguf"));
    check_all_types(g);
    st_gguf_close(g);
    bb_free(&b);
}

Test(gguf, writer_round_trip) {
    bb b = {0};
    build_all_types(&b);
    st_gguf *src = open_ok(bb_write(&b, "alltypes-src.gguf"));
    bb_free(&b);

    const char *path = tmp_path("roundtrip.gguf");
    st_gguf_writer *w;
    st_error e = {0};
    cr_assert_eq(st_gguf_writer_open(path, &w, &e), ST_OK, "%s", e.msg);
    for (int64_t i = 0; i < st_gguf_n_kv(src); i++) st_gguf_writer_kv_copy(w, src, i);
    st_gguf_writer_kv_u32(w, "w.u32", 123456);
    st_gguf_writer_kv_i32(w, "w.i32", -7);
    st_gguf_writer_kv_f32(w, "w.f32", 0.25f);
    st_gguf_writer_kv_bool(w, "w.bool", false);
    st_gguf_writer_kv_str(w, "w.str", "strata");
    float fa[3] = {1, 2, 3.5f};
    st_gguf_writer_kv_arr(w, "w.arr_f32", ST_GGUF_FLOAT32, fa, 3);
    const char *strs[] = {"<unk>", "<s>", "", "\xe2\x96\x81the"};
    st_gguf_writer_kv_arr_str(w, "w.arr_str", strs, 4);

    struct { const char *name; st_type type; int nd; int64_t ne[4]; uint64_t size; } ts[] = {
        {"t.f32", ST_TYPE_F32, 1, {5}, 20},
        {"t.q8_0", ST_TYPE_Q8_0, 2, {64, 3}, 2 * 34 * 3},
        {"t.q4_k", ST_TYPE_Q4_K, 3, {256, 2, 2}, 144 * 4},
        {"t.f16", ST_TYPE_F16, 4, {3, 1, 2, 1}, 12},
        {"t.q6_k", ST_TYPE_Q6_K, 2, {512, 1}, 420},
        {"t.bf16", ST_TYPE_BF16, 1, {7}, 14},
    };
    int nt = sizeof ts / sizeof ts[0];
    for (int i = 0; i < nt; i++) st_gguf_writer_add_tensor(w, ts[i].name, ts[i].type, ts[i].nd, ts[i].ne);
    cr_assert_eq(st_gguf_writer_write_header(w, &e), ST_OK, "%s", e.msg);
    for (int i = 0; i < nt; i++) {
        uint8_t *d = malloc(ts[i].size);
        for (uint64_t j = 0; j < ts[i].size; j++) d[j] = (uint8_t)(j * 7 + i);
        cr_assert_eq(st_gguf_writer_write_tensor_data(w, d, ts[i].size, &e), ST_OK, "%s", e.msg);
        free(d);
    }
    cr_assert_eq(st_gguf_writer_close(w, &e), ST_OK, "%s", e.msg);

    st_gguf *g = open_ok(path);
    cr_assert_eq(st_gguf_version(g), 3);
    cr_assert_eq(st_gguf_alignment(g), 32);
    cr_assert_eq(st_gguf_n_kv(g), st_gguf_n_kv(src) + 7);
    check_all_types(g);
    uint32_t u;
    int64_t i64;
    float f;
    bool bo = true;
    st_gguf_str s;
    cr_assert(st_gguf_get_u32(g, "w.u32", &u) && u == 123456);
    cr_assert(st_gguf_get_i64(g, "w.i32", &i64) && i64 == -7);
    cr_assert(st_gguf_get_f32(g, "w.f32", &f) && f == 0.25f);
    cr_assert(st_gguf_get_bool(g, "w.bool", &bo) && !bo);
    cr_assert(st_gguf_get_str(g, "w.str", &s) && str_eq(s, "strata"));
    int64_t k = st_gguf_find_key(g, "w.arr_f32");
    st_gguf_vtype et;
    uint64_t n;
    cr_assert(st_gguf_get_arr(g, k, &et, &n) && et == ST_GGUF_FLOAT32 && n == 3);
    cr_assert_eq(memcmp(st_gguf_arr_data(g, k), fa, sizeof fa), 0);
    k = st_gguf_find_key(g, "w.arr_str");
    cr_assert(st_gguf_get_arr(g, k, &et, &n) && et == ST_GGUF_STRING && n == 4);
    for (int i = 0; i < 4; i++) cr_assert(str_eq(st_gguf_arr_str(g, k, (uint64_t)i), strs[i]), "%d", i);

    cr_assert_eq(st_gguf_n_tensors(g), nt);
    for (int i = 0; i < nt; i++) {
        const st_gguf_tensor *t = st_gguf_tensor_at(g, i);
        cr_assert_str_eq(t->name, ts[i].name);
        cr_assert_eq(t->type, ts[i].type);
        cr_assert_eq(t->n_dims, ts[i].nd);
        for (int d = 0; d < 4; d++) cr_assert_eq(t->ne[d], d < ts[i].nd ? ts[i].ne[d] : 1);
        cr_assert_eq(t->size, ts[i].size, "%s", t->name);
        cr_assert_eq(t->offset % 32, 0);
        const uint8_t *d = t->data;
        for (uint64_t j = 0; j < t->size; j++) cr_assert_eq(d[j], (uint8_t)(j * 7 + i));
    }
    st_gguf_close(g);
    st_gguf_close(src);
}

Test(gguf, writer_copies_tiny_model) {
    st_gguf *src = open_ok(tu_source_path("assets/tiny-14m-q8_0.gguf"));
    const char *path = tmp_path("copy.gguf");
    st_gguf_writer *w;
    st_error e = {0};
    cr_assert_eq(st_gguf_writer_open(path, &w, &e), ST_OK, "%s", e.msg);
    st_gguf_writer_set_alignment(w, 64);
    for (int64_t i = 0; i < st_gguf_n_kv(src); i++) st_gguf_writer_kv_copy(w, src, i);
    for (int64_t i = 0; i < st_gguf_n_tensors(src); i++) {
        const st_gguf_tensor *t = st_gguf_tensor_at(src, i);
        st_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne);
    }
    cr_assert_eq(st_gguf_writer_write_header(w, &e), ST_OK, "%s", e.msg);
    for (int64_t i = 0; i < st_gguf_n_tensors(src); i++) {
        const st_gguf_tensor *t = st_gguf_tensor_at(src, i);
        cr_assert_eq(st_gguf_writer_write_tensor_data(w, t->data, t->size, &e), ST_OK, "%s", e.msg);
    }
    cr_assert_eq(st_gguf_writer_close(w, &e), ST_OK, "%s", e.msg);

    st_gguf *g = open_ok(path);
    cr_assert_eq(st_gguf_alignment(g), 64);
    cr_assert_eq(st_gguf_n_kv(g), st_gguf_n_kv(src) + 1); /* + general.alignment */
    int64_t k = st_gguf_find_key(g, "tokenizer.ggml.tokens");
    cr_assert(str_eq(st_gguf_arr_str(g, k, 29871), "\xe2\x96\x81"));
    char b1[4096], b2[4096];
    for (int64_t i = 0; i < st_gguf_n_kv(src); i++) {
        st_gguf_str key = st_gguf_key(src, i);
        cr_assert(key.len == st_gguf_key(g, i).len && memcmp(key.ptr, st_gguf_key(g, i).ptr, key.len) == 0);
        cr_assert_str_eq(st_gguf_format_value(src, i, b1, sizeof b1, 100),
                         st_gguf_format_value(g, i, b2, sizeof b2, 100));
    }
    for (int64_t i = 0; i < st_gguf_n_tensors(src); i++) {
        const st_gguf_tensor *a = st_gguf_tensor_at(src, i), *t = st_gguf_find_tensor(g, a->name);
        cr_assert_not_null(t);
        cr_assert_eq(t->offset % 64, 0);
        cr_assert_eq(t->size, a->size);
        cr_assert_eq(memcmp(t->data, a->data, a->size), 0, "%s", a->name);
    }
    st_gguf_close(g);
    st_gguf_close(src);
}

Test(gguf, writer_errors) {
    st_gguf_writer *w;
    st_error e = {0};
    const char *path = tmp_path("werr.gguf");
    /* duplicate tensor names are refused at write_header */
    cr_assert_eq(st_gguf_writer_open(path, &w, &e), ST_OK);
    st_gguf_writer_add_tensor(w, "a", ST_TYPE_F32, 1, (int64_t[]){4});
    st_gguf_writer_add_tensor(w, "a", ST_TYPE_F32, 1, (int64_t[]){4});
    cr_assert_eq(st_gguf_writer_write_header(w, &e), ST_ERR_ARG);
    cr_assert(strstr(e.msg, "duplicate tensor name 'a'"), "%s", e.msg);
    cr_assert_neq(st_gguf_writer_close(w, &e), ST_OK);
    cr_assert(!tu_file_exists(path));

    /* duplicate keys */
    cr_assert_eq(st_gguf_writer_open(path, &w, &e), ST_OK);
    st_gguf_writer_kv_u32(w, "k", 1);
    st_gguf_writer_kv_str(w, "k", "x");
    cr_assert_eq(st_gguf_writer_write_header(w, &e), ST_ERR_ARG);
    cr_assert(strstr(e.msg, "duplicate key 'k'"), "%s", e.msg);
    st_gguf_writer_close(w, NULL);

    /* bad shapes and alignment */
    cr_assert_eq(st_gguf_writer_open(path, &w, &e), ST_OK);
    st_gguf_writer_add_tensor(w, "q", ST_TYPE_Q4_0, 1, (int64_t[]){33});
    cr_assert_eq(st_gguf_writer_write_header(w, &e), ST_ERR_ARG);
    cr_assert(strstr(e.msg, "block size"), "%s", e.msg);
    st_gguf_writer_close(w, NULL);
    cr_assert_eq(st_gguf_writer_open(path, &w, &e), ST_OK);
    st_gguf_writer_set_alignment(w, 3);
    cr_assert_eq(st_gguf_writer_write_header(w, &e), ST_ERR_ARG);
    cr_assert(strstr(e.msg, "power of two"), "%s", e.msg);
    st_gguf_writer_close(w, NULL);

    /* wrong data size; closing early removes the partial file */
    cr_assert_eq(st_gguf_writer_open(path, &w, &e), ST_OK);
    st_gguf_writer_add_tensor(w, "a", ST_TYPE_F32, 1, (int64_t[]){4});
    st_gguf_writer_add_tensor(w, "b", ST_TYPE_F32, 1, (int64_t[]){4});
    cr_assert_eq(st_gguf_writer_write_header(w, &e), ST_OK, "%s", e.msg);
    float x[4] = {0};
    cr_assert_eq(st_gguf_writer_write_tensor_data(w, x, 12, &e), ST_ERR_ARG);
    cr_assert(strstr(e.msg, "expected 16"), "%s", e.msg);
    cr_assert_eq(st_gguf_writer_write_tensor_data(w, x, 16, &e), ST_OK, "%s", e.msg);
    cr_assert_eq(st_gguf_writer_close(w, &e), ST_ERR_ARG);
    cr_assert(strstr(e.msg, "1 of 2"), "%s", e.msg);
    cr_assert(!tu_file_exists(path));

    /* an unwritable path */
    cr_assert_eq(st_gguf_writer_open("/nonexistent-dir/x.gguf", &w, &e), ST_ERR_IO);
}

/* A >4 GiB sparse file: 64-bit offsets and sizes end to end (sparse, so no
 * disk is used; skipped where the filesystem cannot hold it). */
Test(gguf, large_file_offsets) {
    const char *path = tmp_path("big.gguf");
    st_error e = {0};
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    bb b = {0};
    bb_header(&b, 3, 3, 0);
    uint64_t huge = (uint64_t)(1 << 20) * 4500;
    bb_tensor(&b, "small", 1, (uint64_t[]){8}, ST_TYPE_F32, 0);
    bb_tensor(&b, "huge", 2, (uint64_t[]){1 << 20, 4500}, ST_TYPE_I8, 32);
    bb_tensor(&b, "tail", 1, (uint64_t[]){8}, ST_TYPE_F32, 32 + huge);
    bb_pad(&b, 32);
    size_t data_off = b.n;
    bb_put(&b, x, 32);
    bb_write(&b, "big.gguf");
    if (truncate(path, (off_t)(data_off + 32 + huge + 32)) != 0) {
        cr_log_warn("cannot create a sparse 4.4 GiB file; skipped");
        bb_free(&b);
        return;
    }
    st_gguf *g = open_ok(path);
    cr_assert_gt(st_gguf_file_size(g), 4ull << 30);
    const st_gguf_tensor *t = st_gguf_find_tensor(g, "tail");
    cr_assert_eq(t->offset, data_off + 32 + huge);
    cr_assert_eq(st_gguf_find_tensor(g, "huge")->size, huge);
    st_gguf_close(g);
    /* and one byte short fails with a 64-bit offset in the message */
    cr_assert_eq(truncate(path, (off_t)(data_off + 32 + huge + 31)), 0);
    g = (st_gguf *)0x1;
    cr_assert_eq(st_gguf_open(path, &g, &e), ST_ERR_FORMAT);
    cr_assert(strstr(e.msg, "past end of file"), "%s", e.msg);
    unlink(path);
    bb_free(&b);
}

/* Deterministic mutation fuzzing: random byte and field corruptions of the
 * crafted files. Each must either open (and then be fully walkable) or fail
 * with a FORMAT/UNSUPPORTED error; ASan/UBSan catch anything else. */
Test(gguf, mutation_fuzz) {
    bb src[2] = {{0}, {0}};
    build_valid(&src[0]);
    build_all_types(&src[1]);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    const uint64_t specials[] = {0, 1, 2, 3, 4, 5, 12, 13, 31, 32, 255, 65536, 1ull << 31, 1ull << 32,
                                 1ull << 62, 1ull << 63, UINT64_MAX - 31, UINT64_MAX};
    int opened = 0;
    for (int iter = 0; iter < 3000; iter++) {
        const bb *s = &src[iter & 1];
        bb m = {0};
        bb_put(&m, s->p, s->n);
        int nmut = 1 + (int)((rng >> 60) & 3);
        for (int k = 0; k < nmut; k++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = (size_t)((rng >> 17) % m.n);
            switch ((rng >> 8) & 3) {
            case 0: m.p[at] ^= (uint8_t)(1u << ((rng >> 40) & 7)); break;
            case 1: m.p[at] = (uint8_t)(rng >> 48); break;
            default:
                if (at + 8 <= m.n) memcpy(m.p + at, &specials[(rng >> 33) % (sizeof specials / 8)], 8);
                break;
            }
        }
        if ((rng >> 30) % 5 == 0) m.n = (size_t)((rng >> 5) % (m.n + 1)); /* also truncate */
        const char *path = bb_write(&m, "fuzz.gguf");
        bb_free(&m);
        st_gguf *g = NULL;
        st_error e = {0};
        st_status st = st_gguf_open(path, &g, &e);
        if (st == ST_OK) {
            opened++;
            char buf[512];
            for (int64_t i = 0; i < st_gguf_n_kv(g); i++) {
                st_gguf_format_value(g, i, buf, sizeof buf, -1);
                st_gguf_vtype et;
                uint64_t n;
                if (st_gguf_get_arr(g, i, &et, &n) && n)
                    (void)(et == ST_GGUF_STRING ? (void)st_gguf_arr_str(g, i, n - 1)
                                                : (void)st_gguf_arr_arr(g, i, n - 1, NULL, NULL, NULL));
            }
            for (int64_t i = 0; i < st_gguf_n_tensors(g); i++) {
                const st_gguf_tensor *t = st_gguf_tensor_at(g, i);
                cr_assert_leq(t->offset + t->size, st_gguf_file_size(g));
                volatile uint8_t sink = t->size ? ((const uint8_t *)t->data)[t->size - 1] : 0;
                (void)sink;
            }
            st_gguf_close(g);
        } else {
            cr_assert(st == ST_ERR_FORMAT || st == ST_ERR_UNSUPPORTED, "iter %d: status %d: %s", iter, st, e.msg);
            cr_assert_null(g);
            cr_assert_gt(strlen(e.msg), 0);
        }
    }
    cr_log_info("mutation fuzz: %d of 3000 opened", opened);
    bb_free(&src[0]);
    bb_free(&src[1]);
}
