/* gen_seeds.c — writes the fuzz targets' seed corpora (scripts/fuzz.sh runs it).
 *
 *   gen_seeds OUTDIR    -> OUTDIR/gguf, OUTDIR/tokenizer, OUTDIR/chat
 *
 * gguf: a complete small llama model made from the bundled one (its first
 * 320 vocabulary entries, n_embd 32, one layer: about 30 KB, which
 * st_model_open loads), the same with model-level faults (0 heads, head_dim
 * 0, n_ctx 2^40, absurd layer counts, missing/wrong tensors, vocab
 * mismatches), prefixes of it and of the bundled model. The malformed
 * GGUF fixtures of tests/test_gguf_asan.c join them when the script runs that
 * test with STRATA_SEED_DIR set.
 * tokenizer: texts (ASCII, accents, CJK, emoji, control tokens, invalid
 * UTF-8) for each vocab and flag combination.
 * chat: every bundled / shared chat-template reference's template text with
 * a few conversations, in fuzz_chat's input layout. */
#include "fuzz_util.h"
#include "gguf.h"
#include "strata.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>

static char g_out[1024];
static int g_count;

static void put_file(const char *sub, const char *name, const void *data, size_t n) {
    char path[1400];
    snprintf(path, sizeof path, "%s/%s/%s", g_out, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n)) { perror(path); exit(1); }
    fclose(f);
    g_count++;
}

static void *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(sz > 0 ? (size_t)sz : 1);
    if (sz > 0 && fread(p, 1, (size_t)sz, f) != (size_t)sz) { free(p); fclose(f); return NULL; }
    fclose(f);
    *n = (size_t)sz;
    return p;
}

/* ------------------------------------------------------------ the small model */

#define V 320
#define E 32
#define FF 64
#define NH 2
#define NKV 1
#define HD (E / NH)

enum { M_OK, M_HEADS0, M_HEADDIM0, M_CTX40, M_LAYERS0, M_LAYERS_HUGE, M_LAYERS_MORE, M_KV0, M_ROPE_BASE0,
       M_EPS_NAN, M_VOCAB_MISMATCH, M_SCORES_SHORT, M_NO_FFN_DOWN, M_WRONG_SHAPE, M_FF0, M_EMBD_HUGE, M_COUNT };
static const char *const MNAME[M_COUNT] = {"ok", "heads0", "headdim0", "ctx2e40", "layers0", "layers_huge",
                                           "layers_more", "kv0", "rope_base0", "eps_nan", "vocab_mismatch",
                                           "scores_short", "no_ffn_down", "wrong_shape", "ff0", "embd_huge"};

/* Q8_0 rows of small deterministic values: d = 1/128 (f16 0x2000), quants in -8..8 */
static void *q8_data(int64_t ne0, int64_t ne1, uint64_t *size) {
    int64_t nb = ne0 / 32 * ne1;
    uint8_t *d = malloc((size_t)nb * 34);
    for (int64_t b = 0; b < nb; b++) {
        d[b * 34] = 0x00, d[b * 34 + 1] = 0x20;
        for (int i = 0; i < 32; i++) d[b * 34 + 2 + i] = (uint8_t)(int8_t)((b * 7 + i * 5) % 17 - 8);
    }
    *size = (uint64_t)nb * 34;
    return d;
}
static void *f32_ones(int64_t n, uint64_t *size) {
    float *d = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) d[i] = 1.0f;
    *size = (uint64_t)n * 4;
    return d;
}

/* a kv holding a u64 (the writer has no u64 setter): copied from a crafted one-key GGUF */
static void kv_u64(st_gguf_writer *w, const char *key, uint64_t v) {
    char path[1400];
    snprintf(path, sizeof path, "%s/u64.tmp", g_out);
    FILE *f = fopen(path, "wb");
    uint32_t ver = 3, type = ST_GGUF_UINT64;
    uint64_t nt = 0, nkv = 1, kl = strlen(key);
    fwrite("GGUF", 1, 4, f), fwrite(&ver, 4, 1, f), fwrite(&nt, 8, 1, f), fwrite(&nkv, 8, 1, f);
    fwrite(&kl, 8, 1, f), fwrite(key, 1, kl, f), fwrite(&type, 4, 1, f), fwrite(&v, 8, 1, f);
    fclose(f);
    st_gguf *g = NULL;
    st_error e = {0};
    if (st_gguf_open(path, &g, &e)) { fprintf(stderr, "%s\n", e.msg); exit(1); }
    st_gguf_writer_kv_copy(w, g, 0);
    st_gguf_close(g);
    unlink(path);
}

static void write_small_model(const st_gguf *src, int fault, const char *path) {
    st_error e = {0};
    st_gguf_writer *w = NULL;
    if (st_gguf_writer_open(path, &w, &e)) { fprintf(stderr, "%s\n", e.msg); exit(1); }
    st_gguf_writer_kv_str(w, "general.architecture", "llama");
    st_gguf_writer_kv_str(w, "general.name", "strata-fuzz-seed");
    if (fault == M_CTX40) kv_u64(w, "llama.context_length", 1ull << 40);
    else st_gguf_writer_kv_u32(w, "llama.context_length", 32);
    if (fault == M_EMBD_HUGE) kv_u64(w, "llama.embedding_length", 1ull << 33);
    else st_gguf_writer_kv_u32(w, "llama.embedding_length", E);
    if (fault == M_LAYERS_HUGE) kv_u64(w, "llama.block_count", (1ull << 32) + 1);
    else st_gguf_writer_kv_u32(w, "llama.block_count", fault == M_LAYERS0 ? 0 : fault == M_LAYERS_MORE ? 2 : 1);
    st_gguf_writer_kv_u32(w, "llama.feed_forward_length", fault == M_FF0 ? 0 : FF);
    st_gguf_writer_kv_u32(w, "llama.attention.head_count", fault == M_HEADS0 ? 0 : fault == M_HEADDIM0 ? 64 : NH);
    st_gguf_writer_kv_u32(w, "llama.attention.head_count_kv", fault == M_KV0 ? 0 : NKV);
    st_gguf_writer_kv_u32(w, "llama.rope.dimension_count", HD);
    st_gguf_writer_kv_f32(w, "llama.rope.freq_base", fault == M_ROPE_BASE0 ? 0.0f : 10000.0f);
    st_gguf_writer_kv_f32(w, "llama.attention.layer_norm_rms_epsilon", fault == M_EPS_NAN ? NAN : 1e-5f);
    st_gguf_writer_kv_str(w, "tokenizer.ggml.model", "llama");
    int nv = fault == M_VOCAB_MISMATCH ? V - 1 : V;
    const char *toks[V];
    int64_t ki = st_gguf_find_key(src, "tokenizer.ggml.tokens");
    char *tokbuf[V];
    for (int i = 0; i < nv; i++) {
        st_gguf_str s = st_gguf_arr_str(src, ki, (uint64_t)i);
        tokbuf[i] = malloc((size_t)s.len + 1);
        memcpy(tokbuf[i], s.ptr, (size_t)s.len);
        tokbuf[i][s.len] = 0;
        toks[i] = tokbuf[i];
    }
    st_gguf_writer_kv_arr_str(w, "tokenizer.ggml.tokens", toks, (uint64_t)nv);
    float scores[V];
    int32_t types[V];
    memcpy(scores, st_gguf_arr_data(src, st_gguf_find_key(src, "tokenizer.ggml.scores")), sizeof scores);
    memcpy(types, st_gguf_arr_data(src, st_gguf_find_key(src, "tokenizer.ggml.token_type")), sizeof types);
    st_gguf_writer_kv_arr(w, "tokenizer.ggml.scores", ST_GGUF_FLOAT32, scores, fault == M_SCORES_SHORT ? nv - 3 : nv);
    st_gguf_writer_kv_arr(w, "tokenizer.ggml.token_type", ST_GGUF_INT32, types, (uint64_t)nv);
    st_gguf_writer_kv_u32(w, "tokenizer.ggml.bos_token_id", 1);
    st_gguf_writer_kv_u32(w, "tokenizer.ggml.eos_token_id", 2);
    st_gguf_writer_kv_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    st_gguf_writer_kv_bool(w, "tokenizer.ggml.add_bos_token", true);
    st_gguf_writer_kv_str(w, "tokenizer.chat_template",
                          "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                          "'<|im_end|>' + '\\n'}}{% endfor %}");

    struct { const char *name; int64_t ne0, ne1; } ts[16];
    int n = 0;
    ts[n++] = (typeof(ts[0])){"token_embd.weight", E, V};
    ts[n++] = (typeof(ts[0])){"output_norm.weight", E, 0};
    ts[n++] = (typeof(ts[0])){"blk.0.attn_norm.weight", E, 0};
    ts[n++] = (typeof(ts[0])){"blk.0.attn_q.weight", E, E};
    ts[n++] = (typeof(ts[0])){"blk.0.attn_k.weight", E, fault == M_WRONG_SHAPE ? E : HD * NKV};
    ts[n++] = (typeof(ts[0])){"blk.0.attn_v.weight", E, HD * NKV};
    ts[n++] = (typeof(ts[0])){"blk.0.attn_output.weight", E, E};
    ts[n++] = (typeof(ts[0])){"blk.0.ffn_norm.weight", E, 0};
    ts[n++] = (typeof(ts[0])){"blk.0.ffn_gate.weight", E, FF};
    ts[n++] = (typeof(ts[0])){"blk.0.ffn_up.weight", E, FF};
    if (fault != M_NO_FFN_DOWN) ts[n++] = (typeof(ts[0])){"blk.0.ffn_down.weight", FF, E};
    for (int i = 0; i < n; i++) {
        int64_t ne[2] = {ts[i].ne0, ts[i].ne1};
        st_gguf_writer_add_tensor(w, ts[i].name, ts[i].ne1 ? ST_TYPE_Q8_0 : ST_TYPE_F32, ts[i].ne1 ? 2 : 1, ne);
    }
    if (st_gguf_writer_write_header(w, &e)) { fprintf(stderr, "%s\n", e.msg); exit(1); }
    for (int i = 0; i < n; i++) {
        uint64_t size;
        void *d = ts[i].ne1 ? q8_data(ts[i].ne0, ts[i].ne1, &size) : f32_ones(ts[i].ne0, &size);
        if (st_gguf_writer_write_tensor_data(w, d, size, &e)) { fprintf(stderr, "%s\n", e.msg); exit(1); }
        free(d);
    }
    if (st_gguf_writer_close(w, &e)) { fprintf(stderr, "%s\n", e.msg); exit(1); }
    for (int i = 0; i < nv; i++) free(tokbuf[i]);
    g_count++;
}

static void gguf_seeds(void) {
    char buf[1024], path[1400];
    const char *model = fz_source("assets/tiny-14m-q8_0.gguf", buf, sizeof buf);
    if (!model) { fprintf(stderr, "gen_seeds: assets/tiny-14m-q8_0.gguf not found\n"); exit(1); }
    st_gguf *src = NULL;
    st_error e = {0};
    if (st_gguf_open(model, &src, &e)) { fprintf(stderr, "%s\n", e.msg); exit(1); }
    for (int f = 0; f < M_COUNT; f++) {
        snprintf(path, sizeof path, "%s/gguf/small-%s.gguf", g_out, MNAME[f]);
        write_small_model(src, f, path);
        /* the valid one must load, the others must not */
        st_model_params mp;
        st_model_params_default(&mp);
        mp.n_threads = 1;
        st_model *m = NULL;
        st_status st = st_model_open(path, &mp, &m, &e);
        if ((st == ST_OK) != (f == M_OK)) {
            fprintf(stderr, "gen_seeds: small-%s: st_model_open gave %s: %s\n", MNAME[f], st_status_str(st), st ? e.msg : "");
            exit(1);
        }
        st_model_close(m);
    }
    st_gguf_close(src);
    /* prefixes of the small model and of the bundled one */
    snprintf(path, sizeof path, "%s/gguf/small-ok.gguf", g_out);
    size_t n;
    uint8_t *small = read_all(path, &n);
    static const size_t cuts[] = {0, 4, 8, 16, 24, 40, 100, 1000, 4000, 8000};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "small-prefix-%zu.gguf", cuts[i]);
        put_file("gguf", name, small, cuts[i] < n ? cuts[i] : n);
        snprintf(name, sizeof name, "small-cut-%zu.gguf", cuts[i]);
        if (cuts[i] < n) put_file("gguf", name, small, n - cuts[i] - 1);
    }
    free(small);
    uint8_t *big = read_all(model, &n);
    put_file("gguf", "tiny14m-prefix-4k.gguf", big, 4096);
    put_file("gguf", "tiny14m-prefix-32k.gguf", big, 32768);
    free(big);
}

/* ------------------------------------------------------------ tokenizer */

static void tokenizer_seeds(void) {
    static const char *const texts[] = {
        "", " ", "  ", "Hello world", " Hello world", "Hello  world\n\nnew line\ttab",
        "Once upon a time, there was a little girl named Lily.",
        "caf\xC3\xA9 na\xC3\xAFve r\xC3\xA9sum\xC3\xA9", "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", "\xF0\x9F\xA6\x99\xF0\x9F\x98\x80",
        "<s>", "</s>", "<unk>", "<s>Hello</s>", "a<s>b", "\xE2\x96\x81\xE2\x96\x81x", "3.14159 12345678901234567890",
        "don't I'll we've", "\xFF\xFE\x80", "\xC3", "\xE2\x82", "\xF0\x9F\xA6", "a\x00" "b", "\r\n\r\n",
        "    indented code();\n", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "<|im_start|>user\nhi<|im_end|>", "\xEF\xBB\xBF" "BOM", "\xE2\x80\x8B zero width", "A\xCC\x8A combining",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        size_t len = strlen(texts[i]);
        if (i == 22) len = 3; /* "a\0b" */
        for (int fl = 0; fl < 16; fl += (i % 3 == 0 ? 1 : 5)) {
            uint8_t d[256];
            d[0] = (uint8_t)fl;
            memcpy(d + 1, texts[i], len);
            char name[64];
            snprintf(name, sizeof name, "text-%02zu-%02d", i, fl);
            put_file("tokenizer", name, d, len + 1);
        }
    }
}

/* ------------------------------------------------------------ chat */

static void chat_seed(const char *name, uint8_t sel, uint8_t flags, const char *tmpl, const char *const *parts, int np) {
    size_t cap = 5 + strlen(tmpl) + 1, n = 0;
    for (int i = 0; i < np; i++) cap += strlen(parts[i]) + 1;
    uint8_t *d = malloc(cap);
    d[n++] = sel, d[n++] = flags, d[n++] = 51, d[n++] = 7, d[n++] = 26;
    memcpy(d + n, tmpl, strlen(tmpl)), n += strlen(tmpl);
    for (int i = 0; i < np; i++) {
        d[n++] = 0;
        memcpy(d + n, parts[i], strlen(parts[i])), n += strlen(parts[i]);
    }
    put_file("chat", name, d, n);
    free(d);
}

static void chat_dir(const char *dir) {
    DIR *dp = opendir(dir);
    if (!dp) return;
    struct dirent *de;
    static const char *const conv_a[] = {"system", "You are helpful.", "user", "Hello!", "assistant", "Hi there.", "user", "How are you?"};
    static const char *const conv_b[] = {"user", "  spaced  ", "assistant", "", "user", "caf\xC3\xA9 \xF0\x9F\xA6\x99 \"q\"\n"};
    static const char *const conv_c[] = {"system", "s", "tool", "{\"x\": 1}", "user", "u"};
    while ((de = readdir(dp))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json")) continue;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t n;
        char *js = read_all(path, &n);
        if (!js) continue;
        js = realloc(js, n + 1);
        js[n] = 0;
        cJSON *j = cJSON_Parse(js);
        free(js);
        const cJSON *t = j ? cJSON_GetObjectItemCaseSensitive(j, "template") : NULL;
        if (cJSON_IsString(t)) {
            char name[300];
            snprintf(name, sizeof name, "tmpl-%.*s-a", (int)(l - 5), de->d_name);
            chat_seed(name, 0xFF, 1, t->valuestring, conv_a, 8);
            snprintf(name, sizeof name, "tmpl-%.*s-b", (int)(l - 5), de->d_name);
            chat_seed(name, 0xFF, 0x1E, t->valuestring, conv_b, 6);
            snprintf(name, sizeof name, "tmpl-%.*s-c", (int)(l - 5), de->d_name);
            chat_seed(name, 0xFF, 3, t->valuestring, conv_c, 6);
        }
        cJSON_Delete(j);
    }
    closedir(dp);
}

static void chat_seeds(void) {
    char buf[1024];
    const char *d = fz_source("tests/data/chat-templates", buf, sizeof buf);
    if (d) chat_dir(d);
    d = fz_shared("refs/chat-templates", buf, sizeof buf);
    if (d) chat_dir(d);
    static const char *const conv[] = {"system", "sys", "user", "hi", "assistant", "yo", "user", "again"};
    for (int f = 0; f < ST_CHAT_COUNT; f++) {
        char name[64];
        snprintf(name, sizeof name, "family-%02d", f);
        chat_seed(name, (uint8_t)f, (uint8_t)(f & 1), "", conv, 8);
        snprintf(name, sizeof name, "family-%02d-bad", f);
        chat_seed(name, (uint8_t)f, 2, "", conv + 2, 5);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: gen_seeds OUTDIR\n"); return 2; }
    snprintf(g_out, sizeof g_out, "%s", argv[1]);
    static const char *const subs[] = {"", "/gguf", "/tokenizer", "/chat"};
    for (int i = 0; i < 4; i++) {
        char p[1100];
        snprintf(p, sizeof p, "%s%s", g_out, subs[i]);
        if (mkdir(p, 0755) && errno != EEXIST) { perror(p); return 1; }
    }
    gguf_seeds();
    tokenizer_seeds();
    chat_seeds();
    printf("gen_seeds: %d seeds in %s\n", g_count, g_out);
    return 0;
}
