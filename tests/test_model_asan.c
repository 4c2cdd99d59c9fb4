/* test_model_asan.c — the llama loader on crafted files, under ASan + UBSan.
 *
 * Each case writes a modified copy of the bundled model with the GGUF writer
 * (every key copied except the ones changed, tensor data copied from the
 * source mmap, tensors dropped/reshaped/retyped as the case needs) and checks
 * that st_model_open fails with the right status and a message that names
 * the problem. Two positive cases check that an explicit output.weight and
 * linear rope scaling load and compute as they should. */
#include "model.h"
#include "strata.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MODEL "assets/tiny-14m-q8_0.gguf"

/* ------------------------------------------------------------ the writer */

/* KV_U64/KV_I32: an integer of that GGUF type (u: the value; KV_I32 takes i);
 * KV_ARR_TRUNC: the source's array value cut to its first u elements */
enum { KV_NONE = 0, KV_DROP, KV_STR, KV_U32, KV_F32, KV_U64, KV_I32, KV_ARR_TRUNC };
enum { T_NONE = 0, T_DROP, T_RESHAPE, T_ADD_COPY };

typedef struct {
    int op;
    const char *key;
    const char *s;
    uint64_t u;
    float f;
    int32_t i;
} kv_mod;

typedef struct {
    int op;
    const char *name;    /* the tensor changed (T_ADD_COPY: the new tensor's name) */
    const char *from;    /* T_ADD_COPY: the source tensor whose type, shape and data it copies */
    st_type type;        /* T_RESHAPE: new type */
    int64_t ne0, ne1;    /* T_RESHAPE: new shape (ne1 = 0: 1-D) */
} t_mod;

typedef struct {
    kv_mod kv[4];
    t_mod t[2];
} mods;

static const kv_mod *find_kv_mod(const mods *m, const char *key) {
    for (int i = 0; i < 4; i++)
        if (m->kv[i].op && !strcmp(m->kv[i].key, key)) return &m->kv[i];
    return NULL;
}

static const t_mod *find_t_mod(const mods *m, const char *name) {
    for (int i = 0; i < 2; i++)
        if (m->t[i].op && m->t[i].op != T_ADD_COPY && !strcmp(m->t[i].name, name)) return &m->t[i];
    return NULL;
}

/* The writer has no u64 setter: a one-key GGUF holding the value is crafted
 * by hand and its key copied. */
static void put_u64(st_gguf_writer *w, const char *key, uint64_t v) {
    char path[512];
    snprintf(path, sizeof path, "%s/u64-key.gguf", tu_tmpdir());
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    uint32_t ver = 3, type = ST_GGUF_UINT64;
    uint64_t nt = 0, nkv = 1, kl = strlen(key);
    fwrite("GGUF", 1, 4, f);
    fwrite(&ver, 4, 1, f);
    fwrite(&nt, 8, 1, f);
    fwrite(&nkv, 8, 1, f);
    fwrite(&kl, 8, 1, f);
    fwrite(key, 1, kl, f);
    fwrite(&type, 4, 1, f);
    fwrite(&v, 8, 1, f);
    fclose(f);
    st_gguf *g = NULL;
    st_error err = {0};
    cr_assert_eq(st_gguf_open(path, &g, &err), ST_OK, "%s", err.msg);
    st_gguf_writer_kv_copy(w, g, 0);
    st_gguf_close(g);
    unlink(path);
}

/* An array of the source file cut to its first n elements. */
static void put_arr_trunc(st_gguf_writer *w, const st_gguf *g, const char *key, uint64_t n) {
    int64_t i = st_gguf_find_key(g, key);
    cr_assert_geq(i, 0, "no key %s", key);
    st_gguf_vtype et;
    uint64_t have;
    cr_assert(st_gguf_get_arr(g, i, &et, &have));
    cr_assert_leq(n, have);
    if (et == ST_GGUF_STRING) {
        char **v = calloc(n ? n : 1, sizeof *v);
        cr_assert_not_null(v);
        for (uint64_t j = 0; j < n; j++) {
            st_gguf_str s = st_gguf_arr_str(g, i, j);
            v[j] = malloc(s.len + 1);
            cr_assert_not_null(v[j]);
            memcpy(v[j], s.ptr, s.len);
            v[j][s.len] = 0;
        }
        st_gguf_writer_kv_arr_str(w, key, (const char *const *)v, n);
        for (uint64_t j = 0; j < n; j++) free(v[j]);
        free(v);
    } else {
        st_gguf_writer_kv_arr(w, key, et, st_gguf_arr_data(g, i), n);
    }
}

static void put_kv(st_gguf_writer *w, const st_gguf *g, const kv_mod *k) {
    switch (k->op) {
    case KV_STR: st_gguf_writer_kv_str(w, k->key, k->s); break;
    case KV_U32: st_gguf_writer_kv_u32(w, k->key, (uint32_t)k->u); break;
    case KV_F32: st_gguf_writer_kv_f32(w, k->key, k->f); break;
    case KV_U64: put_u64(w, k->key, k->u); break;
    case KV_I32: st_gguf_writer_kv_i32(w, k->key, k->i); break;
    case KV_ARR_TRUNC: put_arr_trunc(w, g, k->key, k->u); break;
    default: break;
    }
}

/* Data for a reshaped tensor: the source bytes repeated/truncated to the new size. */
static void *reshaped_data(const st_gguf_tensor *src, uint64_t size) {
    uint8_t *d = malloc(size ? size : 1);
    cr_assert_not_null(d);
    for (uint64_t o = 0; o < size; o += src->size) {
        uint64_t k = size - o < src->size ? size - o : src->size;
        memcpy(d + o, src->data, k);
    }
    return d;
}

static uint64_t tensor_size(st_type type, int64_t ne0, int64_t ne1) {
    size_t rs = st_row_size(type, ne0);
    cr_assert(rs > 0, "type %d has no row size for %lld elements", (int)type, (long long)ne0);
    return (uint64_t)rs * (uint64_t)(ne1 ? ne1 : 1);
}

/* Writes a modified copy of the bundled model to <tmpdir>/<name>.gguf and returns its path. */
static const char *write_variant(const char *name, const mods *md) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s.gguf", tu_tmpdir(), name);
    st_error err = {0};
    st_gguf *g = NULL;
    cr_assert_eq(st_gguf_open(tu_source_path(MODEL), &g, &err), ST_OK, "%s", err.msg);
    st_gguf_writer *w = NULL;
    cr_assert_eq(st_gguf_writer_open(path, &w, &err), ST_OK, "%s", err.msg);

    /* metadata: copies, with the changed keys in place and the new ones at the end */
    bool used[4] = {0};
    for (int64_t i = 0; i < st_gguf_n_kv(g); i++) {
        st_gguf_str k = st_gguf_key(g, i);
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)k.len, k.ptr);
        const kv_mod *km = find_kv_mod(md, key);
        if (!km) { st_gguf_writer_kv_copy(w, g, i); continue; }
        used[km - md->kv] = true;
        put_kv(w, g, km);
    }
    for (int i = 0; i < 4; i++)
        if (md->kv[i].op && !used[i]) put_kv(w, g, &md->kv[i]);

    /* tensor table */
    int64_t nt = st_gguf_n_tensors(g);
    const st_gguf_tensor **src = calloc((size_t)nt + 2, sizeof *src);
    uint64_t *sizes = calloc((size_t)nt + 2, sizeof *sizes);
    const t_mod **tm = calloc((size_t)nt + 2, sizeof *tm);
    cr_assert(src && sizes && tm);
    int n = 0;
    for (int64_t i = 0; i < nt; i++) {
        const st_gguf_tensor *t = st_gguf_tensor_at(g, i);
        const t_mod *m = find_t_mod(md, t->name);
        if (m && m->op == T_DROP) continue;
        if (m && m->op == T_RESHAPE) {
            int64_t ne[2] = {m->ne0, m->ne1};
            st_gguf_writer_add_tensor(w, t->name, m->type, m->ne1 ? 2 : 1, ne);
            sizes[n] = tensor_size(m->type, m->ne0, m->ne1);
        } else {
            st_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne);
            sizes[n] = t->size;
        }
        src[n] = t;
        tm[n] = m;
        n++;
    }
    for (int i = 0; i < 2; i++) {
        if (md->t[i].op != T_ADD_COPY) continue;
        const st_gguf_tensor *t = st_gguf_find_tensor(g, md->t[i].from);
        cr_assert_not_null(t, "no tensor %s to copy", md->t[i].from);
        st_gguf_writer_add_tensor(w, md->t[i].name, t->type, t->n_dims, t->ne);
        src[n] = t;
        sizes[n] = t->size;
        tm[n] = NULL;
        n++;
    }
    cr_assert_eq(st_gguf_writer_write_header(w, &err), ST_OK, "%s", err.msg);
    for (int i = 0; i < n; i++) {
        if (tm[i] && tm[i]->op == T_RESHAPE) {
            void *d = reshaped_data(src[i], sizes[i]);
            cr_assert_eq(st_gguf_writer_write_tensor_data(w, d, sizes[i], &err), ST_OK, "%s", err.msg);
            free(d);
        } else {
            cr_assert_eq(st_gguf_writer_write_tensor_data(w, src[i]->data, sizes[i], &err), ST_OK, "%s", err.msg);
        }
    }
    cr_assert_eq(st_gguf_writer_close(w, &err), ST_OK, "%s", err.msg);
    free(src);
    free(sizes);
    free(tm);
    st_gguf_close(g);
    return path;
}

static st_model_params params(void) {
    st_model_params mp;
    st_model_params_default(&mp);
    mp.n_threads = 2;
    return mp;
}

/* Opens a variant that must fail with `code` and a message holding every one of `needles`. */
static void expect_fail(const char *name, const mods *md, st_status code, const char *const *needles) {
    const char *path = write_variant(name, md);
    st_model_params mp = params();
    st_model *m = (st_model *)0x1;
    st_error err = {0};
    st_status rc = st_model_open(path, &mp, &m, &err);
    cr_log_info("%s: %s: %s", name, st_status_str(rc), err.msg);
    cr_assert_null(m, "%s: *out must be NULL on failure", name);
    cr_assert_eq(rc, code, "%s: status %s, expected %s (message: %s)", name, st_status_str(rc), st_status_str(code),
                 err.msg);
    cr_assert_eq(err.code, code, "%s: err.code %d, expected %d", name, err.code, code);
    for (int i = 0; needles[i]; i++)
        cr_assert(strstr(err.msg, needles[i]), "%s: message does not contain \"%s\": %s", name, needles[i], err.msg);
    unlink(path);
}

#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ------------------------------------------------------------ errors */

Test(model_errors, unsupported_architecture) {
    mods md = {.kv = {{KV_STR, "general.architecture", .s = "gpt2"}}};
    expect_fail("arch_gpt2", &md, ST_ERR_UNSUPPORTED, NEEDLES("unsupported architecture 'gpt2' (supported: llama, qwen2)"));
}

Test(model_errors, missing_architecture) {
    mods md = {.kv = {{.op = KV_DROP, .key = "general.architecture"}}};
    expect_fail("arch_missing", &md, ST_ERR_FORMAT, NEEDLES("general.architecture", "missing"));
}

Test(model_errors, missing_embedding_length) {
    mods md = {.kv = {{.op = KV_DROP, .key = "llama.embedding_length"}}};
    expect_fail("no_embd", &md, ST_ERR_FORMAT, NEEDLES("llama.embedding_length", "missing"));
}

Test(model_errors, embedding_length_wrong_type) {
    mods md = {.kv = {{KV_STR, "llama.embedding_length", .s = "256"}}};
    expect_fail("embd_str", &md, ST_ERR_FORMAT, NEEDLES("llama.embedding_length", "expected an integer"));
}

Test(model_errors, head_count_not_dividing_embedding) {
    mods md = {.kv = {{KV_U32, "llama.attention.head_count", .u = 3}, {KV_U32, "llama.attention.head_count_kv", .u = 3}}};
    expect_fail("heads_3", &md, ST_ERR_FORMAT,
                NEEDLES("llama.embedding_length 256", "not a multiple of", "llama.attention.head_count 3"));
}

Test(model_errors, head_count_kv_not_dividing_head_count) {
    mods md = {.kv = {{KV_U32, "llama.attention.head_count_kv", .u = 3}}};
    expect_fail("kv_heads_3", &md, ST_ERR_FORMAT, NEEDLES("head_count 4", "not a multiple of", "head_count_kv 3"));
}

Test(model_errors, head_count_zero) {
    mods md = {.kv = {{KV_U32, "llama.attention.head_count", .u = 0}}};
    expect_fail("heads_0", &md, ST_ERR_FORMAT, NEEDLES("llama.attention.head_count", "out of range"));
}

Test(model_errors, odd_rope_dimension_count) {
    mods md = {.kv = {{KV_U32, "llama.rope.dimension_count", .u = 63}}};
    expect_fail("rope_dim_63", &md, ST_ERR_FORMAT, NEEDLES("llama.rope.dimension_count 63", "even"));
}

Test(model_errors, missing_vocabulary) {
    mods md = {.kv = {{.op = KV_DROP, .key = "tokenizer.ggml.tokens"}}};
    expect_fail("no_tokens", &md, ST_ERR_FORMAT, NEEDLES("tokenizer.ggml.tokens"));
}

Test(model_errors, missing_tensor) {
    mods md = {.t = {{.op = T_DROP, .name = "blk.3.ffn_up.weight"}}};
    expect_fail("no_ffn_up", &md, ST_ERR_FORMAT, NEEDLES("'blk.3.ffn_up.weight'", "missing"));
}

Test(model_errors, missing_output_norm) {
    mods md = {.t = {{.op = T_DROP, .name = "output_norm.weight"}}};
    expect_fail("no_output_norm", &md, ST_ERR_FORMAT, NEEDLES("'output_norm.weight'", "missing"));
}

Test(model_errors, wrong_shape) {
    /* attn_k is [n_embd, head_dim * n_head_kv] = [256, 128]; declare it [256, 256] with data of that size */
    mods md = {.t = {{T_RESHAPE, "blk.2.attn_k.weight", .type = ST_TYPE_Q8_0, .ne0 = 256, .ne1 = 256}}};
    expect_fail("attn_k_256", &md, ST_ERR_FORMAT,
                NEEDLES("'blk.2.attn_k.weight'", "shape", "[256, 256", "expected [256, 128]"));
}

Test(model_errors, wrong_shape_norm_2d) {
    mods md = {.t = {{T_RESHAPE, "blk.5.ffn_norm.weight", .type = ST_TYPE_F32, .ne0 = 256, .ne1 = 2}}};
    expect_fail("ffn_norm_2d", &md, ST_ERR_FORMAT, NEEDLES("'blk.5.ffn_norm.weight'", "shape", "expected [256]"));
}

Test(model_errors, embedding_rows_not_vocab) {
    mods md = {.t = {{T_RESHAPE, "token_embd.weight", .type = ST_TYPE_Q8_0, .ne0 = 256, .ne1 = 31999}}};
    expect_fail("embd_31999", &md, ST_ERR_FORMAT, NEEDLES("token_embd.weight", "31999", "32000"));
}

Test(model_errors, unsupported_matrix_type) {
    /* IQ2_XXS (ggml id 16): known to the GGUF reader (256-element blocks of
     * 66 bytes) but strata has no kernels for it */
    cr_assert_eq(st_row_size(ST_TYPE_IQ2_XXS, 256), 66);
    mods md = {.t = {{T_RESHAPE, "blk.1.attn_q.weight", .type = ST_TYPE_IQ2_XXS, .ne0 = 256, .ne1 = 256}}};
    expect_fail("attn_q_iq2xxs", &md, ST_ERR_UNSUPPORTED, NEEDLES("'blk.1.attn_q.weight'", "IQ2_XXS"));
}

Test(model_errors, unsupported_norm_type) {
    /* an integer type for a norm: a well-formed file strata cannot compute with */
    mods md = {.t = {{T_RESHAPE, "output_norm.weight", .type = ST_TYPE_I32, .ne0 = 256, .ne1 = 0}}};
    expect_fail("norm_i32", &md, ST_ERR_UNSUPPORTED, NEEDLES("'output_norm.weight'", "I32"));
}

Test(model_errors, unsupported_rope_scaling) {
    mods md = {.kv = {{KV_STR, "llama.rope.scaling.type", .s = "yarn"}, {KV_F32, "llama.rope.scaling.factor", .f = 4}}};
    expect_fail("rope_yarn", &md, ST_ERR_UNSUPPORTED, NEEDLES("rope scaling type 'yarn'"));
}

/* ---- absurd hyper-parameters: each refused by name and value before
 * anything is sized by it (docs/HARDENING.md, the fault matrix) */

#define OUT_OF_RANGE(key, val) NEEDLES("'" key "'", "= " val, "out of range")

Test(model_errors, head_dim_zero) {
    /* 512 heads over 256 dimensions: an integer head_dim would be 0 */
    mods md = {.kv = {{KV_U32, "llama.attention.head_count", .u = 512}, {KV_U32, "llama.attention.head_count_kv", .u = 512}}};
    expect_fail("head_dim_0", &md, ST_ERR_FORMAT, NEEDLES("embedding_length 256", "not a multiple of", "head_count 512"));
}

Test(model_errors, context_length_2_pow_40) {
    mods md = {.kv = {{KV_U64, "llama.context_length", .u = 1ull << 40}}};
    expect_fail("ctx_2e40", &md, ST_ERR_FORMAT, OUT_OF_RANGE("llama.context_length", "1099511627776"));
}

Test(model_errors, context_length_zero) {
    mods md = {.kv = {{KV_U32, "llama.context_length", .u = 0}}};
    expect_fail("ctx_0", &md, ST_ERR_FORMAT, OUT_OF_RANGE("llama.context_length", "0"));
}

Test(model_errors, block_count_zero) {
    mods md = {.kv = {{KV_U32, "llama.block_count", .u = 0}}};
    expect_fail("layers_0", &md, ST_ERR_FORMAT, OUT_OF_RANGE("llama.block_count", "0"));
}

Test(model_errors, block_count_wraps_u32) {
    /* 2^32 + 8 would be 8 (the real count) if truncated to 32 bits */
    mods md = {.kv = {{KV_U64, "llama.block_count", .u = (1ull << 32) + 8}}};
    expect_fail("layers_2e32p8", &md, ST_ERR_FORMAT, OUT_OF_RANGE("llama.block_count", "4294967304"));
}

Test(model_errors, block_count_absurd) {
    mods md = {.kv = {{KV_U32, "llama.block_count", .u = 1000000}}};
    expect_fail("layers_1e6", &md, ST_ERR_FORMAT, OUT_OF_RANGE("llama.block_count", "1000000"));
}

Test(model_errors, block_count_more_than_tensors) {
    mods md = {.kv = {{KV_U32, "llama.block_count", .u = 9}}};
    expect_fail("layers_9", &md, ST_ERR_FORMAT, NEEDLES("'blk.8.", "missing"));
}

Test(model_errors, embedding_length_absurd) {
    mods md = {.kv = {{KV_U64, "llama.embedding_length", .u = 1ull << 40}}};
    expect_fail("embd_2e40", &md, ST_ERR_FORMAT, OUT_OF_RANGE("llama.embedding_length", "1099511627776"));
}

Test(model_errors, feed_forward_length_zero) {
    mods md = {.kv = {{KV_U32, "llama.feed_forward_length", .u = 0}}};
    expect_fail("ff_0", &md, ST_ERR_FORMAT, OUT_OF_RANGE("llama.feed_forward_length", "0"));
}

Test(model_errors, feed_forward_length_disagrees_with_tensors) {
    mods md = {.kv = {{KV_U32, "llama.feed_forward_length", .u = 1024}}};
    expect_fail("ff_1024", &md, ST_ERR_FORMAT, NEEDLES("'blk.0.ffn_", "shape", "1024"));
}

Test(model_errors, head_count_negative) {
    mods md = {.kv = {{KV_I32, "llama.attention.head_count", .i = -4}}};
    expect_fail("heads_neg", &md, ST_ERR_FORMAT, OUT_OF_RANGE("llama.attention.head_count", "-4"));
}

Test(model_errors, head_count_kv_zero) {
    mods md = {.kv = {{KV_U32, "llama.attention.head_count_kv", .u = 0}}};
    expect_fail("kv_heads_0", &md, ST_ERR_FORMAT, OUT_OF_RANGE("llama.attention.head_count_kv", "0"));
}

Test(model_errors, head_count_kv_above_head_count) {
    mods md = {.kv = {{KV_U32, "llama.attention.head_count_kv", .u = 8}}};
    expect_fail("kv_heads_8", &md, ST_ERR_FORMAT, NEEDLES("head_count 4", "not a multiple of", "head_count_kv 8"));
}

Test(model_errors, rope_dimension_zero) {
    mods md = {.kv = {{KV_U32, "llama.rope.dimension_count", .u = 0}}};
    expect_fail("rope_dim_0", &md, ST_ERR_FORMAT, OUT_OF_RANGE("llama.rope.dimension_count", "0"));
}

Test(model_errors, rope_dimension_above_head_dim) {
    mods md = {.kv = {{KV_U32, "llama.rope.dimension_count", .u = 128}}};
    expect_fail("rope_dim_128", &md, ST_ERR_FORMAT, OUT_OF_RANGE("llama.rope.dimension_count", "128"));
}

Test(model_errors, rope_freq_base_zero) {
    mods md = {.kv = {{KV_F32, "llama.rope.freq_base", .f = 0.0f}}};
    expect_fail("rope_base_0", &md, ST_ERR_FORMAT, NEEDLES("freq_base", "positive"));
}

Test(model_errors, rms_epsilon_nan) {
    mods md = {.kv = {{KV_F32, "llama.attention.layer_norm_rms_epsilon", .f = NAN}}};
    expect_fail("rms_eps_nan", &md, ST_ERR_FORMAT, NEEDLES("layer_norm_rms_epsilon", "positive"));
}

Test(model_errors, rms_epsilon_negative) {
    mods md = {.kv = {{KV_F32, "llama.attention.layer_norm_rms_epsilon", .f = -1e-5f}}};
    expect_fail("rms_eps_neg", &md, ST_ERR_FORMAT, NEEDLES("layer_norm_rms_epsilon", "positive"));
}

/* ---- the vocabulary against the embedding matrix and itself */

Test(model_errors, vocab_smaller_than_embedding) {
    mods md = {.kv = {{KV_ARR_TRUNC, "tokenizer.ggml.tokens", .u = 31999}, {KV_ARR_TRUNC, "tokenizer.ggml.scores", .u = 31999},
                      {KV_ARR_TRUNC, "tokenizer.ggml.token_type", .u = 31999}}};
    expect_fail("vocab_31999", &md, ST_ERR_FORMAT, NEEDLES("token_embd.weight", "32000", "31999"));
}

Test(model_errors, scores_shorter_than_tokens) {
    mods md = {.kv = {{KV_ARR_TRUNC, "tokenizer.ggml.scores", .u = 1000}}};
    expect_fail("scores_1000", &md, ST_ERR_FORMAT, NEEDLES("tokenizer.ggml.scores", "1000", "32000"));
}

Test(model_errors, token_types_shorter_than_tokens) {
    mods md = {.kv = {{KV_ARR_TRUNC, "tokenizer.ggml.token_type", .u = 7}}};
    expect_fail("token_type_7", &md, ST_ERR_FORMAT, NEEDLES("tokenizer.ggml.token_type", "7", "32000"));
}

Test(model_errors, empty_vocabulary) {
    mods md = {.kv = {{KV_ARR_TRUNC, "tokenizer.ggml.tokens", .u = 0}, {.op = KV_DROP, .key = "tokenizer.ggml.scores"},
                      {.op = KV_DROP, .key = "tokenizer.ggml.token_type"}}};
    expect_fail("vocab_0", &md, ST_ERR_FORMAT, NEEDLES("tokenizer.ggml.tokens", "empty"));
}

Test(model_errors, unsupported_tokenizer_model) {
    mods md = {.kv = {{KV_STR, "tokenizer.ggml.model", .s = "bert"}}};
    expect_fail("tok_bert", &md, ST_ERR_UNSUPPORTED, NEEDLES("bert"));
}

Test(model_errors, output_weight_wrong_shape) {
    mods md = {.t = {{T_ADD_COPY, "output.weight", .from = "blk.0.attn_q.weight"}}};
    expect_fail("output_256x256", &md, ST_ERR_FORMAT, NEEDLES("'output.weight'", "shape", "expected [256, 32000]"));
}

/* ---- sessions: the context a caller asks for is bounded before allocation */

Test(model_errors, session_context_too_large) {
    st_model_params mp = params();
    st_model *m = NULL;
    st_error err = {0};
    cr_assert_eq(st_model_open(tu_source_path(MODEL), &mp, &m, &err), ST_OK, "%s", err.msg);
    const int asks[] = {(1 << 22) + 1, 1 << 30, 0x7fffffff};
    for (size_t i = 0; i < sizeof asks / sizeof asks[0]; i++) {
        st_session_params sp;
        st_session_params_default(&sp);
        sp.n_ctx = asks[i];
        st_session *s = (st_session *)0x1;
        st_status rc = st_session_new(m, &sp, &s, &err);
        cr_log_info("n_ctx %d: %s: %s", asks[i], st_status_str(rc), err.msg);
        cr_assert_neq(rc, ST_OK, "a context of %d was accepted", asks[i]);
        cr_assert_null(s);
        char num[16];
        snprintf(num, sizeof num, "%d", asks[i]);
        cr_assert(strstr(err.msg, num), "the message should give the context asked for (%d): %s", asks[i], err.msg);
    }
    st_model_close(m);
}

Test(model_errors, vocab_only_file) {
    const char *path = tu_shared_path("refs/tokenizer/ggml-vocab-llama-spm.gguf");
    if (!tu_file_exists(path)) cr_skip_test("%s is absent", path);
    st_model_params mp = params();
    st_model *m = NULL;
    st_error err = {0};
    st_status rc = st_model_open(path, &mp, &m, &err);
    cr_log_info("vocab-only: %s: %s", st_status_str(rc), err.msg);
    cr_assert_null(m);
    cr_assert_eq(rc, ST_ERR_FORMAT, "status %s: %s", st_status_str(rc), err.msg);
    cr_assert(strstr(err.msg, "token_embd.weight") && strstr(err.msg, "missing"), "message: %s", err.msg);
}

Test(model_errors, nonexistent_path) {
    char path[512];
    snprintf(path, sizeof path, "%s/does-not-exist.gguf", tu_tmpdir());
    st_model_params mp = params();
    st_model *m = NULL;
    st_error err = {0};
    st_status rc = st_model_open(path, &mp, &m, &err);
    cr_assert_null(m);
    cr_assert_eq(rc, ST_ERR_IO, "status %s: %s", st_status_str(rc), err.msg);
    cr_assert(strstr(err.msg, "does-not-exist.gguf"), "message should name the file: %s", err.msg);
}

Test(model_errors, not_a_gguf) {
    char path[512];
    snprintf(path, sizeof path, "%s/text.gguf", tu_tmpdir());
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs("this is not a model file, just some text long enough to be read\n", f);
    fclose(f);
    st_model_params mp = params();
    st_model *m = NULL;
    st_error err = {0};
    st_status rc = st_model_open(path, &mp, &m, &err);
    cr_assert_null(m);
    cr_assert_eq(rc, ST_ERR_FORMAT, "status %s: %s", st_status_str(rc), err.msg);
    unlink(path);
}

/* ------------------------------------------------------------ positive cases */

static const int32_t k_prompt[] = {1, 9038, 2501, 263, 931, 29892, 727, 471}; /* BOS "Once upon a time, there was" */
#define N_PROMPT ((int)(sizeof k_prompt / sizeof k_prompt[0]))

/* Opens path, evaluates the prompt with all logits and returns them (N_PROMPT x n_vocab). */
static float *run_logits(const char *path, int *n_vocab) {
    st_model_params mp = params();
    st_model *m = NULL;
    st_error err = {0};
    cr_assert_eq(st_model_open(path, &mp, &m, &err), ST_OK, "open %s: %s", path, err.msg);
    st_model_info info;
    st_model_get_info(m, &info);
    *n_vocab = info.n_vocab;
    st_session_params sp;
    st_session_params_default(&sp);
    sp.n_ctx = 64;
    st_session *s = NULL;
    cr_assert_eq(st_session_new(m, &sp, &s, &err), ST_OK, "%s", err.msg);
    cr_assert_eq(st_session_eval(s, k_prompt, N_PROMPT, true, &err), ST_OK, "%s", err.msg);
    float *out = malloc((size_t)N_PROMPT * info.n_vocab * sizeof(float));
    cr_assert_not_null(out);
    for (int i = 0; i < N_PROMPT; i++) {
        const float *l = st_session_logits(s, i);
        cr_assert_not_null(l);
        memcpy(out + (size_t)i * info.n_vocab, l, (size_t)info.n_vocab * sizeof(float));
    }
    st_session_free(s);
    st_model_close(m);
    return out;
}

static double max_abs(const float *v, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs(v[i]));
    return m;
}
static double max_diff(const float *a, const float *b, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

Test(model_ok, explicit_output_weight_equals_tied) {
    mods md = {.t = {{T_ADD_COPY, "output.weight", .from = "token_embd.weight"}}};
    const char *path = write_variant("explicit_output", &md);
    char p2[512];
    snprintf(p2, sizeof p2, "%s", path);
    int nv = 0, nv2 = 0;
    float *tied = run_logits(tu_source_path(MODEL), &nv);
    float *expl = run_logits(p2, &nv2);
    cr_assert_eq(nv, nv2);
    for (int i = 0; i < N_PROMPT; i++) {
        const float *a = tied + (size_t)i * nv, *b = expl + (size_t)i * nv;
        double d = max_diff(a, b, nv);
        cr_assert(d <= 1e-6 * max_abs(a, nv), "position %d: logits differ by %g with an explicit output.weight", i, d);
    }
    free(tied);
    free(expl);
    unlink(p2);
}

Test(model_ok, linear_rope_scaling) {
    mods md = {.kv = {{KV_STR, "llama.rope.scaling.type", .s = "linear"}, {KV_F32, "llama.rope.scaling.factor", .f = 2.0f}}};
    const char *path = write_variant("rope_linear2", &md);
    char p2[512];
    snprintf(p2, sizeof p2, "%s", path);
    /* the loader reads it as a position multiplier of 1/2 */
    {
        st_model_params mp = params();
        st_model *m = NULL;
        st_error err = {0};
        cr_assert_eq(st_model_open(p2, &mp, &m, &err), ST_OK, "%s", err.msg);
        cr_assert_float_eq(m->hp.rope_scale, 0.5f, 1e-7);
        st_model_close(m);
    }
    int nv = 0, nv2 = 0;
    float *orig = run_logits(tu_source_path(MODEL), &nv);
    float *scaled = run_logits(p2, &nv2);
    cr_assert_eq(nv, nv2);
    /* position 0: rotation by angle 0 either way, identical logits */
    double d0 = max_diff(orig, scaled, nv);
    cr_assert(d0 <= 1e-6 * max_abs(orig, nv), "position 0 differs by %g with rope scaling", d0);
    /* later positions see different angles */
    for (int i = 1; i < N_PROMPT; i++) {
        double d = max_diff(orig + (size_t)i * nv, scaled + (size_t)i * nv, nv);
        cr_assert(d > 1e-3, "position %d: rope scaling changed the logits by only %g", i, d);
    }
    free(orig);
    free(scaled);
    unlink(p2);
}

Test(model_ok, rope_scaling_none_ignores_factor) {
    mods md = {.kv = {{KV_STR, "llama.rope.scaling.type", .s = "none"}, {KV_F32, "llama.rope.scaling.factor", .f = 2.0f}}};
    const char *path = write_variant("rope_none", &md);
    st_model_params mp = params();
    st_model *m = NULL;
    st_error err = {0};
    cr_assert_eq(st_model_open(path, &mp, &m, &err), ST_OK, "%s", err.msg);
    cr_assert_float_eq(m->hp.rope_scale, 1.0f, 0);
    st_model_close(m);
    unlink(path);
}
