/* test_arch.c — the architectures (llama, qwen2) and their options: Q/K/V
 * biases, NeoX rope, Llama-3 rope scaling (rope_freqs.weight or the
 * rope.scaling.* keys), sliding-window attention; shape checks at load; and
 * the random-weight files of `strata genmodel --arch/--rope-scaling/
 * --sliding-window/--tied`.
 *
 * Small F32 models (64 wide, 2 layers, 4/2 heads of 16) are written here with
 * the GGUF writer (the vocabulary copied from the bundled model) and run with
 * an F32 KV cache. They are checked against
 *   - a plain double-precision forward pass written here from the
 *     definitions (RMSNorm, Q/K/V + biases, rope with pair angles
 *     pos * base^(-2i/n_rot) / factor_i, causal attention with window,
 *     SwiGLU, tied LM head), and
 *   - equivalences that need no reference: a qwen2 file (NeoX rope) gives the
 *     logits of a llama file whose Q/K rows (and biases) are permuted the way
 *     llama.cpp's converter permutes them; llama3 scaling with factor 1 is
 *     plain rope bit for bit; a window W >= the sequence changes nothing and
 *     a small one changes only positions >= W. */
#include "model.h"
#include "strata.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define VOCAB_MODEL "assets/tiny-14m-q8_0.gguf"
#define MAXL 4
#define NTOK 24

/* ------------------------------------------------------------ the models */

typedef struct {
    const char *arch;       /* general.architecture */
    const char *prefix;     /* key prefix; NULL = arch */
    int n_embd, n_layer, n_head, n_head_kv, n_ff;
    float rope_base, eps;
    int swa;                /* attention.sliding_window; 0 = not written */
    /* llama3 rope scaling keys (rope.scaling.type = llama3) */
    bool llama3;
    float l3_factor, l3_low, l3_high;
    int l3_orig;
    const float *rope_freqs; /* rope_freqs.weight values, or NULL */
    int rope_freqs_len;      /* its length; 0 = n_rot/2 */
    bool biases;             /* write blk.N.attn_{q,k,v}.bias */
    /* faults for the load checks */
    int drop_bk_layer;       /* -1: none; else that layer's attn_k.bias is left out (0 = none too) */
    int bk_len;              /* 0: right; else the length written for blk.0.attn_k.bias */
    bool ffn_up_bias;        /* add blk.0.ffn_up.bias */
} spec;

/* float weights in GGUF layout: a [ne0 = in, ne1 = out] matrix is out rows of in */
typedef struct {
    int n_vocab;
    float *embd, *out_norm;
    struct { float *attn_norm, *wq, *wk, *wv, *wo, *ffn_norm, *wg, *wu, *wd, *bq, *bk, *bv; } L[MAXL];
} weights;

static spec base_spec(const char *arch) {
    spec s = {0};
    s.arch = arch;
    s.n_embd = 64;
    s.n_layer = 2;
    s.n_head = 4;
    s.n_head_kv = 2;
    s.n_ff = 128;
    s.rope_base = 10000.0f;
    s.eps = 1e-5f;
    s.drop_bk_layer = -1;
    s.biases = !strcmp(arch, "qwen2");
    return s;
}

static uint64_t g_rng;
static float frand(void) { /* uniform in [-1, 1) */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((g_rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}
static float *rnd(size_t n, float scale, float offset) {
    float *p = malloc(n * sizeof(float));
    cr_assert_not_null(p);
    for (size_t i = 0; i < n; i++) p[i] = offset + scale * frand();
    return p;
}

static int vocab_size(void) {
    st_gguf *g = NULL;
    st_error err = {0};
    cr_assert_eq(st_gguf_open(tu_source_path(VOCAB_MODEL), &g, &err), ST_OK, "%s", err.msg);
    int n = (int)st_gguf_find_tensor(g, "token_embd.weight")->ne[1];
    st_gguf_close(g);
    return n;
}

static weights make_weights(const spec *s, uint64_t seed) {
    weights w = {0};
    g_rng = seed * 0x9E3779B97F4A7C15ull + 1;
    int D = s->n_embd, hd = D / s->n_head, DKV = hd * s->n_head_kv, F = s->n_ff;
    w.n_vocab = vocab_size();
    w.embd = rnd((size_t)w.n_vocab * D, 1.0f, 0.0f);
    w.out_norm = rnd(D, 0.2f, 1.0f);
    for (int l = 0; l < s->n_layer; l++) {
        w.L[l].attn_norm = rnd(D, 0.2f, 1.0f);
        w.L[l].wq = rnd((size_t)D * D, 0.3f, 0.0f);
        w.L[l].wk = rnd((size_t)DKV * D, 0.3f, 0.0f);
        w.L[l].wv = rnd((size_t)DKV * D, 0.3f, 0.0f);
        w.L[l].wo = rnd((size_t)D * D, 0.2f, 0.0f);
        w.L[l].ffn_norm = rnd(D, 0.2f, 1.0f);
        w.L[l].wg = rnd((size_t)F * D, 0.2f, 0.0f);
        w.L[l].wu = rnd((size_t)F * D, 0.2f, 0.0f);
        w.L[l].wd = rnd((size_t)D * F, 0.2f, 0.0f);
        w.L[l].bq = rnd(D, 1.0f, 0.0f);
        w.L[l].bk = rnd(DKV, 1.0f, 0.0f);
        w.L[l].bv = rnd(DKV, 1.0f, 0.0f);
    }
    return w;
}

static void free_weights(weights *w) {
    free(w->embd);
    free(w->out_norm);
    for (int l = 0; l < MAXL; l++) {
        float **p = &w->L[l].attn_norm;
        for (int k = 0; k < 12; k++) free(p[k]);
    }
    memset(w, 0, sizeof *w);
}

static float *dup(const float *x, size_t n) {
    float *p = malloc(n * sizeof(float));
    cr_assert_not_null(p);
    memcpy(p, x, n * sizeof(float));
    return p;
}

static weights copy_weights(const spec *s, const weights *a) {
    weights w = *a;
    int D = s->n_embd, hd = D / s->n_head, DKV = hd * s->n_head_kv, F = s->n_ff;
    w.embd = dup(a->embd, (size_t)a->n_vocab * D);
    w.out_norm = dup(a->out_norm, D);
    for (int l = 0; l < s->n_layer; l++) {
        w.L[l].attn_norm = dup(a->L[l].attn_norm, D);
        w.L[l].wq = dup(a->L[l].wq, (size_t)D * D);
        w.L[l].wk = dup(a->L[l].wk, (size_t)DKV * D);
        w.L[l].wv = dup(a->L[l].wv, (size_t)DKV * D);
        w.L[l].wo = dup(a->L[l].wo, (size_t)D * D);
        w.L[l].ffn_norm = dup(a->L[l].ffn_norm, D);
        w.L[l].wg = dup(a->L[l].wg, (size_t)F * D);
        w.L[l].wu = dup(a->L[l].wu, (size_t)F * D);
        w.L[l].wd = dup(a->L[l].wd, (size_t)D * F);
        w.L[l].bq = dup(a->L[l].bq, D);
        w.L[l].bk = dup(a->L[l].bk, DKV);
        w.L[l].bv = dup(a->L[l].bv, DKV);
    }
    return w;
}

/* llama.cpp's converter permutes Q/K rows from the checkpoint's NeoX layout
 * (pairs (i, i + hd/2)) to the adjacent pairs of its "normal" rope:
 * w.reshape(n_head, 2, hd/2, ...).swapaxes(1, 2), i.e. new row h*hd + 2i + j
 * = old row h*hd + j*hd/2 + i. `cols` = 1 for a bias. */
static void permute_rows(float *w, int n_head, int hd, int cols) {
    size_t n = (size_t)n_head * hd * cols;
    float *o = malloc(n * sizeof(float));
    cr_assert_not_null(o);
    for (int h = 0; h < n_head; h++)
        for (int i = 0; i < hd / 2; i++)
            for (int j = 0; j < 2; j++)
                memcpy(o + ((size_t)h * hd + 2 * i + j) * cols, w + ((size_t)h * hd + j * hd / 2 + i) * cols,
                       (size_t)cols * sizeof(float));
    memcpy(w, o, n * sizeof(float));
    free(o);
}

static void put_tensor(st_gguf_writer *w, const char *name, int64_t ne0, int64_t ne1) {
    int64_t ne[2] = {ne0, ne1};
    st_gguf_writer_add_tensor(w, name, ST_TYPE_F32, ne1 ? 2 : 1, ne);
}

/* Writes <tmpdir>/<name>.gguf and returns its path (a static buffer per call). */
static const char *write_model(const char *name, const spec *s, const weights *W) {
    static char paths[8][512];
    static int k;
    char *path = paths[k++ & 7];
    snprintf(path, 512, "%s/%s.gguf", tu_tmpdir(), name);
    st_error err = {0};
    st_gguf *voc = NULL;
    cr_assert_eq(st_gguf_open(tu_source_path(VOCAB_MODEL), &voc, &err), ST_OK, "%s", err.msg);
    st_gguf_writer *w = NULL;
    cr_assert_eq(st_gguf_writer_open(path, &w, &err), ST_OK, "%s", err.msg);
    const char *P = s->prefix ? s->prefix : s->arch;
    int D = s->n_embd, hd = D / s->n_head, DKV = hd * s->n_head_kv, F = s->n_ff;
    char key[128];
#define KEY(x) (snprintf(key, sizeof key, "%s.%s", P, x), key)
    st_gguf_writer_kv_str(w, "general.architecture", s->arch);
    st_gguf_writer_kv_str(w, "general.name", name);
    st_gguf_writer_kv_u32(w, KEY("context_length"), 256);
    st_gguf_writer_kv_u32(w, KEY("embedding_length"), (uint32_t)D);
    st_gguf_writer_kv_u32(w, KEY("block_count"), (uint32_t)s->n_layer);
    st_gguf_writer_kv_u32(w, KEY("feed_forward_length"), (uint32_t)F);
    st_gguf_writer_kv_u32(w, KEY("attention.head_count"), (uint32_t)s->n_head);
    st_gguf_writer_kv_u32(w, KEY("attention.head_count_kv"), (uint32_t)s->n_head_kv);
    st_gguf_writer_kv_u32(w, KEY("rope.dimension_count"), (uint32_t)hd);
    st_gguf_writer_kv_f32(w, KEY("rope.freq_base"), s->rope_base);
    st_gguf_writer_kv_f32(w, KEY("attention.layer_norm_rms_epsilon"), s->eps);
    if (s->swa) st_gguf_writer_kv_u32(w, KEY("attention.sliding_window"), (uint32_t)s->swa);
    if (s->llama3) {
        st_gguf_writer_kv_str(w, KEY("rope.scaling.type"), "llama3");
        st_gguf_writer_kv_f32(w, KEY("rope.scaling.factor"), s->l3_factor);
        st_gguf_writer_kv_f32(w, KEY("rope.scaling.low_freq_factor"), s->l3_low);
        st_gguf_writer_kv_f32(w, KEY("rope.scaling.high_freq_factor"), s->l3_high);
        st_gguf_writer_kv_u32(w, KEY("rope.scaling.original_context_length"), (uint32_t)s->l3_orig);
    }
#undef KEY
    for (int64_t i = 0; i < st_gguf_n_kv(voc); i++) {
        st_gguf_str kk = st_gguf_key(voc, i);
        if (kk.len >= 10 && !memcmp(kk.ptr, "tokenizer.", 10)) st_gguf_writer_kv_copy(w, voc, i);
    }

    /* tensors, in the order their data follows */
    const float *data[16 * MAXL + 8];
    uint64_t size[16 * MAXL + 8];
    int n = 0;
    float *zeros = calloc((size_t)D * 4, sizeof(float));
    cr_assert_not_null(zeros);
#define T(nm, ptr, ne0, ne1) do { put_tensor(w, nm, ne0, ne1); data[n] = (ptr); \
        size[n++] = (uint64_t)(ne0) * (uint64_t)((ne1) ? (ne1) : 1) * 4; } while (0)
    int rf_len = s->rope_freqs_len ? s->rope_freqs_len : hd / 2;
    if (s->rope_freqs) T("rope_freqs.weight", s->rope_freqs, rf_len, 0);
    T("token_embd.weight", W->embd, D, W->n_vocab);
    for (int l = 0; l < s->n_layer; l++) {
        char nm[64];
#define B(sfx) (snprintf(nm, sizeof nm, "blk.%d.%s", l, sfx), nm)
        T(B("attn_norm.weight"), W->L[l].attn_norm, D, 0);
        T(B("attn_q.weight"), W->L[l].wq, D, D);
        T(B("attn_k.weight"), W->L[l].wk, D, DKV);
        T(B("attn_v.weight"), W->L[l].wv, D, DKV);
        if (s->biases) {
            T(B("attn_q.bias"), W->L[l].bq, D, 0);
            if (l != s->drop_bk_layer) {
                int len = l == 0 && s->bk_len ? s->bk_len : DKV;
                T(B("attn_k.bias"), len <= DKV ? W->L[l].bk : zeros, len, 0);
            }
            T(B("attn_v.bias"), W->L[l].bv, DKV, 0);
        }
        T(B("attn_output.weight"), W->L[l].wo, D, D);
        T(B("ffn_norm.weight"), W->L[l].ffn_norm, D, 0);
        T(B("ffn_gate.weight"), W->L[l].wg, D, F);
        T(B("ffn_up.weight"), W->L[l].wu, D, F);
        if (s->ffn_up_bias && l == 0) T(B("ffn_up.bias"), zeros, F, 0);
        T(B("ffn_down.weight"), W->L[l].wd, F, D);
#undef B
    }
    T("output_norm.weight", W->out_norm, D, 0); /* tied LM head */
#undef T
    cr_assert_eq(st_gguf_writer_write_header(w, &err), ST_OK, "%s", err.msg);
    for (int i = 0; i < n; i++)
        cr_assert_eq(st_gguf_writer_write_tensor_data(w, data[i], size[i], &err), ST_OK, "%s", err.msg);
    cr_assert_eq(st_gguf_writer_close(w, &err), ST_OK, "%s", err.msg);
    free(zeros);
    st_gguf_close(voc);
    return path;
}

/* ------------------------------------------------ the reference forward */

static void ref_rmsnorm(double *o, const double *x, const float *w, int n, double eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double k = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) o[i] = x[i] * k * w[i];
}

static void ref_matvec(double *o, const float *w, const float *b, const double *x, int in, int out) {
    for (int r = 0; r < out; r++) {
        double s = b ? b[r] : 0.0;
        for (int c = 0; c < in; c++) s += (double)w[(size_t)r * in + c] * x[c];
        o[r] = s;
    }
}

/* rotates each head's pairs by pos * base^(-2i/n_rot) / ff[i] */
static void ref_rope(double *v, int n_heads, int hd, int pos, double base, const float *ff, bool neox) {
    for (int h = 0; h < n_heads; h++) {
        double *x = v + (size_t)h * hd;
        for (int i = 0; i < hd / 2; i++) {
            double a = pos * pow(base, -2.0 * i / hd) / (ff ? ff[i] : 1.0);
            int i0 = neox ? i : 2 * i, i1 = neox ? i + hd / 2 : 2 * i + 1;
            double x0 = x[i0], x1 = x[i1];
            x[i0] = x0 * cos(a) - x1 * sin(a);
            x[i1] = x0 * sin(a) + x1 * cos(a);
        }
    }
}

/* logits[n][n_vocab] of tokens tok[0..n) at positions 0..n-1 */
static void ref_forward(const spec *s, const weights *W, const float *ff, bool neox, const int32_t *tok, int n,
                        float *logits) {
    int D = s->n_embd, hd = D / s->n_head, DKV = hd * s->n_head_kv, F = s->n_ff, V = W->n_vocab;
    double *x = calloc((size_t)n * D, sizeof(double)), *xn = calloc(D > F ? D : F, sizeof(double));
    double *q = calloc((size_t)n * D, sizeof(double)), *kk = calloc((size_t)n * DKV, sizeof(double));
    double *vv = calloc((size_t)n * DKV, sizeof(double)), *att = calloc((size_t)n * D, sizeof(double));
    double *g = calloc(F, sizeof(double)), *u = calloc(F, sizeof(double)), *o = calloc(D, sizeof(double));
    double *sc = calloc(n, sizeof(double));
    cr_assert(x && xn && q && kk && vv && att && g && u && o && sc);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < D; i++) x[(size_t)t * D + i] = W->embd[(size_t)tok[t] * D + i];
    for (int l = 0; l < s->n_layer; l++) {
        const float *bq = s->biases ? W->L[l].bq : NULL, *bk = s->biases ? W->L[l].bk : NULL,
                    *bv = s->biases ? W->L[l].bv : NULL;
        for (int t = 0; t < n; t++) {
            ref_rmsnorm(xn, x + (size_t)t * D, W->L[l].attn_norm, D, s->eps);
            ref_matvec(q + (size_t)t * D, W->L[l].wq, bq, xn, D, D);
            ref_matvec(kk + (size_t)t * DKV, W->L[l].wk, bk, xn, D, DKV);
            ref_matvec(vv + (size_t)t * DKV, W->L[l].wv, bv, xn, D, DKV);
            ref_rope(q + (size_t)t * D, s->n_head, hd, t, s->rope_base, ff, neox);
            ref_rope(kk + (size_t)t * DKV, s->n_head_kv, hd, t, s->rope_base, ff, neox);
        }
        for (int t = 0; t < n; t++) {
            int lo = s->swa > 0 && t - s->swa + 1 > 0 ? t - s->swa + 1 : 0;
            for (int h = 0; h < s->n_head; h++) {
                int kh = h / (s->n_head / s->n_head_kv);
                const double *qh = q + (size_t)t * D + (size_t)h * hd;
                double mx = -INFINITY, sum = 0;
                for (int p = lo; p <= t; p++) {
                    double d = 0;
                    for (int i = 0; i < hd; i++) d += qh[i] * kk[(size_t)p * DKV + (size_t)kh * hd + i];
                    sc[p] = d / sqrt((double)hd);
                    if (sc[p] > mx) mx = sc[p];
                }
                for (int p = lo; p <= t; p++) sum += (sc[p] = exp(sc[p] - mx));
                double *a = att + (size_t)t * D + (size_t)h * hd;
                for (int i = 0; i < hd; i++) {
                    double acc = 0;
                    for (int p = lo; p <= t; p++) acc += sc[p] * vv[(size_t)p * DKV + (size_t)kh * hd + i];
                    a[i] = acc / sum;
                }
            }
        }
        for (int t = 0; t < n; t++) {
            double *xt = x + (size_t)t * D;
            ref_matvec(o, W->L[l].wo, NULL, att + (size_t)t * D, D, D);
            for (int i = 0; i < D; i++) xt[i] += o[i];
            ref_rmsnorm(xn, xt, W->L[l].ffn_norm, D, s->eps);
            ref_matvec(g, W->L[l].wg, NULL, xn, D, F);
            ref_matvec(u, W->L[l].wu, NULL, xn, D, F);
            for (int i = 0; i < F; i++) g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
            ref_matvec(o, W->L[l].wd, NULL, g, F, D);
            for (int i = 0; i < D; i++) xt[i] += o[i];
        }
    }
    for (int t = 0; t < n; t++) {
        ref_rmsnorm(xn, x + (size_t)t * D, W->out_norm, D, s->eps);
        for (int r = 0; r < V; r++) {
            double acc = 0;
            for (int c = 0; c < D; c++) acc += (double)W->embd[(size_t)r * D + c] * xn[c];
            logits[(size_t)t * V + r] = (float)acc;
        }
    }
    free(x); free(xn); free(q); free(kk); free(vv); free(att); free(g); free(u); free(o); free(sc);
}

/* ------------------------------------------------------------ the engine */

static st_model *open_ok(const char *path) {
    st_model_params mp;
    st_model_params_default(&mp);
    mp.n_threads = 2;
    st_model *m = NULL;
    st_error err = {0};
    cr_assert_eq(st_model_open(path, &mp, &m, &err), ST_OK, "%s: %s", path, err.msg);
    return m;
}

/* Logits of every token, [n][n_vocab]: one batch of `batch` tokens, then the
 * rest one at a time. cache_layers > 0: through the layer store with a budget. */
static float *run_model(st_model *m, const int32_t *tok, int n, int batch, int cache_layers) {
    st_session_params sp;
    st_session_params_default(&sp);
    sp.n_ctx = 128;
    sp.kv_f32 = true;
    sp.cache_layers = cache_layers;
    st_session *s = NULL;
    st_error err = {0};
    cr_assert_eq(st_session_new(m, &sp, &s, &err), ST_OK, "%s", err.msg);
    int nv = st_tok_n_vocab(st_model_tokenizer(m));
    float *out = malloc((size_t)n * nv * sizeof(float));
    cr_assert_not_null(out);
    cr_assert_eq(st_session_eval(s, tok, batch, true, &err), ST_OK, "%s", err.msg);
    for (int i = 0; i < batch; i++) memcpy(out + (size_t)i * nv, st_session_logits(s, i), (size_t)nv * sizeof(float));
    for (int i = batch; i < n; i++) {
        cr_assert_eq(st_session_eval(s, tok + i, 1, false, &err), ST_OK, "%s", err.msg);
        memcpy(out + (size_t)i * nv, st_session_logits(s, 0), (size_t)nv * sizeof(float));
    }
    st_session_free(s);
    return out;
}

static float *run_file(const char *path, const int32_t *tok, int n) {
    st_model *m = open_ok(path);
    float *l = run_model(m, tok, n, n, 0);
    st_model_close(m);
    return l;
}

/* max |a - b| over token t's logits, relative to the largest |b| */
static double rel_err(const float *a, const float *b, int nv, int t) {
    double d = 0, mx = 1e-30;
    for (int i = 0; i < nv; i++) {
        double e = fabs((double)a[(size_t)t * nv + i] - b[(size_t)t * nv + i]);
        if (e > d) d = e;
        if (fabs(b[(size_t)t * nv + i]) > mx) mx = fabs(b[(size_t)t * nv + i]);
    }
    return d / mx;
}

static double max_rel_err(const float *a, const float *b, int nv, int n) {
    double e = 0;
    for (int t = 0; t < n; t++) {
        double x = rel_err(a, b, nv, t);
        if (x > e) e = x;
    }
    return e;
}

static bool same_row(const float *a, const float *b, int nv, int t) {
    return !memcmp(a + (size_t)t * nv, b + (size_t)t * nv, (size_t)nv * sizeof(float));
}

static void tokens(int32_t *tok, int n, int nv) {
    g_rng = 12345;
    for (int i = 0; i < n; i++) tok[i] = 3 + (int32_t)((frand() * 0.5f + 0.5f) * (float)(nv - 4));
}

#define TOL 2e-4 /* engine (float) vs reference (double) */

/* ------------------------------------------------------- against the reference */

Test(arch, llama_matches_reference) {
    spec s = base_spec("llama");
    weights W = make_weights(&s, 1);
    int32_t tok[NTOK];
    tokens(tok, NTOK, W.n_vocab);
    float *got = run_file(write_model("llama", &s, &W), tok, NTOK);
    float *ref = malloc((size_t)NTOK * W.n_vocab * sizeof(float));
    ref_forward(&s, &W, NULL, false, tok, NTOK, ref);
    double e = max_rel_err(got, ref, W.n_vocab, NTOK);
    cr_assert(e < TOL, "llama vs reference: relative error %g", e);
    free(got); free(ref);
    free_weights(&W);
}

Test(arch, qwen2_matches_reference) {
    spec s = base_spec("qwen2");
    weights W = make_weights(&s, 2);
    int32_t tok[NTOK];
    tokens(tok, NTOK, W.n_vocab);
    const char *path = write_model("qwen2", &s, &W);
    st_model *m = open_ok(path);
    st_model_info info;
    st_model_get_info(m, &info);
    cr_assert_str_eq(info.arch, "qwen2");
    cr_assert(m->hp.qkv_bias && m->hp.rope_type == ST_ROPE_NEOX);
    float *got = run_model(m, tok, NTOK, NTOK, 0);
    /* decode token by token after a short prompt, and through the layer store
     * with one layer resident (the biases stream with their layer) */
    float *dec = run_model(m, tok, NTOK, 5, 0);
    float *store = run_model(m, tok, NTOK, NTOK, 1);
    st_model_close(m);
    float *ref = malloc((size_t)NTOK * W.n_vocab * sizeof(float));
    ref_forward(&s, &W, NULL, true, tok, NTOK, ref);
    double e = max_rel_err(got, ref, W.n_vocab, NTOK);
    cr_assert(e < TOL, "qwen2 vs reference: relative error %g", e);
    e = max_rel_err(dec, ref, W.n_vocab, NTOK);
    cr_assert(e < TOL, "qwen2 decode vs reference: relative error %g", e);
    cr_assert(!memcmp(got, store, (size_t)NTOK * W.n_vocab * sizeof(float)), "the layer store changed the logits");
    /* the biases and the pairing matter: without them the reference differs */
    s.biases = false;
    ref_forward(&s, &W, NULL, true, tok, NTOK, ref);
    cr_assert(max_rel_err(got, ref, W.n_vocab, NTOK) > 100 * TOL, "biases made no difference");
    s.biases = true;
    ref_forward(&s, &W, NULL, false, tok, NTOK, ref);
    cr_assert(max_rel_err(got, ref, W.n_vocab, NTOK) > 100 * TOL, "NeoX pairing made no difference");
    free(got); free(dec); free(store); free(ref);
    free_weights(&W);
}

/* ------------------------------------------------------- NeoX vs permuted llama */

static void neox_vs_permuted(bool biases) {
    spec sq = base_spec("qwen2");
    weights W = make_weights(&sq, 3);
    int D = sq.n_embd, hd = D / sq.n_head, DKV = hd * sq.n_head_kv;
    if (!biases)
        for (int l = 0; l < sq.n_layer; l++) {
            memset(W.L[l].bq, 0, (size_t)D * sizeof(float));
            memset(W.L[l].bk, 0, (size_t)DKV * sizeof(float));
            memset(W.L[l].bv, 0, (size_t)DKV * sizeof(float));
        }
    spec sl = base_spec("llama");
    sl.biases = biases; /* llama takes optional Q/K/V biases */
    weights P = copy_weights(&sl, &W);
    for (int l = 0; l < sl.n_layer; l++) {
        permute_rows(P.L[l].wq, sl.n_head, hd, D);
        permute_rows(P.L[l].wk, sl.n_head_kv, hd, D);
        permute_rows(P.L[l].bq, sl.n_head, hd, 1);
        permute_rows(P.L[l].bk, sl.n_head_kv, hd, 1);
    }
    int32_t tok[NTOK];
    tokens(tok, NTOK, W.n_vocab);
    float *q = run_file(write_model(biases ? "neox_b" : "neox", &sq, &W), tok, NTOK);
    float *l = run_file(write_model(biases ? "perm_b" : "perm", &sl, &P), tok, NTOK);
    /* the same sums up to the order of the q.k products */
    double e = max_rel_err(l, q, W.n_vocab, NTOK);
    cr_assert(e < 1e-5, "qwen2 (NeoX) vs permuted llama: relative error %g", e);
    /* and not by accident: the unpermuted llama file differs */
    weights U = copy_weights(&sl, &W);
    float *u = run_file(write_model(biases ? "unperm_b" : "unperm", &sl, &U), tok, NTOK);
    cr_assert(max_rel_err(u, q, W.n_vocab, NTOK) > 1e-2, "the permutation made no difference");
    free(q); free(l); free(u);
    free_weights(&W); free_weights(&P); free_weights(&U);
}

Test(arch, neox_equals_permuted_llama) { neox_vs_permuted(false); }
Test(arch, neox_with_biases_equals_permuted_llama_with_biases) { neox_vs_permuted(true); }

/* ------------------------------------------------------- Llama-3 rope scaling */

/* The Llama-3 frequency factors, written out here from the definition:
 * wavelength 2*pi / freq_i; below orig/high: 1; above orig/low: factor;
 * between: 1 / ((1 - s) / factor + s), s = (orig / wavelength - low) / (high - low). */
static void l3_factors(float *ff, int n_rot, double base, double factor, double low, double high, double orig) {
    for (int i = 0; i < n_rot / 2; i++) {
        double wl = 2 * M_PI * pow(base, 2.0 * i / n_rot);
        if (wl < orig / high) ff[i] = 1.0f;
        else if (wl > orig / low) ff[i] = (float)factor;
        else {
            double sm = (orig / wl - low) / (high - low);
            ff[i] = (float)(1.0 / ((1 - sm) / factor + sm));
        }
    }
}

Test(arch, llama3_rope_scaling) {
    spec s = base_spec("llama");
    weights W = make_weights(&s, 4);
    int hd = s.n_embd / s.n_head;
    int32_t tok[NTOK];
    tokens(tok, NTOK, W.n_vocab);
    /* with orig 64, low 1, high 4 the 8 pairs (wavelengths 6.3 .. 19869) get
     * 1, two blended factors, and 8 for the rest: all visible within 24 positions */
    float ff[8];
    l3_factors(ff, hd, s.rope_base, 8, 1, 4, 64);
    cr_assert(ff[0] == 1.0f && ff[1] > 1.0f && ff[1] < 8.0f && ff[2] > ff[1] && ff[2] < 8.0f && ff[3] == 8.0f,
              "factors %g %g %g %g", ff[0], ff[1], ff[2], ff[3]);

    /* (a) the factors from the tensor (as in Llama-3.1 GGUFs, no keys) */
    spec st = s;
    st.rope_freqs = ff;
    float *a = run_file(write_model("l3_tensor", &st, &W), tok, NTOK);
    float *ref = malloc((size_t)NTOK * W.n_vocab * sizeof(float));
    ref_forward(&s, &W, ff, false, tok, NTOK, ref);
    double e = max_rel_err(a, ref, W.n_vocab, NTOK);
    cr_assert(e < TOL, "llama3 (tensor) vs reference: relative error %g", e);

    /* (b) computed from the keys: the same factors, the same logits */
    spec sk = s;
    sk.llama3 = true;
    sk.l3_factor = 8;
    sk.l3_low = 1;
    sk.l3_high = 4;
    sk.l3_orig = 64;
    st_model *m = open_ok(write_model("l3_keys", &sk, &W));
    cr_assert_not_null(m->hp.rope_freq_factors);
    for (int i = 0; i < hd / 2; i++)
        cr_assert(fabsf(m->hp.rope_freq_factors[i] - ff[i]) <= 1e-6f * ff[i], "factor %d: %.9g vs %.9g", i,
                  m->hp.rope_freq_factors[i], ff[i]);
    cr_assert_float_eq(m->hp.rope_scale, 1.0f, 0, "llama3's factor is not a linear scale");
    float *b = run_model(m, tok, NTOK, NTOK, 0);
    st_model_close(m);
    e = max_rel_err(b, a, W.n_vocab, NTOK);
    cr_assert(e < 1e-5, "llama3 keys vs tensor: relative error %g", e);

    /* (c) and it matters: plain rope differs after the first position */
    float *p = run_file(write_model("l3_plain", &s, &W), tok, NTOK);
    cr_assert(same_row(p, a, W.n_vocab, 0), "position 0 does not rotate");
    cr_assert(max_rel_err(p, a, W.n_vocab, NTOK) > 1e-2, "llama3 scaling made no difference");

    /* (d) factor 1, low = high = 1: plain rope, bit for bit; so is a tensor of ones */
    spec s1 = sk;
    s1.l3_factor = 1;
    s1.l3_high = 1;
    float *c = run_file(write_model("l3_one", &s1, &W), tok, NTOK);
    cr_assert(!memcmp(c, p, (size_t)NTOK * W.n_vocab * sizeof(float)), "llama3 with factor 1 is not plain rope");
    float ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    spec so = s;
    so.rope_freqs = ones;
    float *d = run_file(write_model("l3_ones", &so, &W), tok, NTOK);
    cr_assert(!memcmp(d, p, (size_t)NTOK * W.n_vocab * sizeof(float)), "rope_freqs of ones is not plain rope");
    free(a); free(b); free(c); free(d); free(p); free(ref);
    free_weights(&W);
}

/* ------------------------------------------------------- sliding window */

Test(arch, sliding_window) {
    spec s = base_spec("llama");
    weights W = make_weights(&s, 5);
    int32_t tok[NTOK];
    tokens(tok, NTOK, W.n_vocab);
    float *full = run_file(write_model("swa_none", &s, &W), tok, NTOK);
    /* W >= the sequence: nothing changes */
    spec sw = s;
    sw.swa = NTOK;
    float *big = run_file(write_model("swa_big", &sw, &W), tok, NTOK);
    cr_assert(!memcmp(big, full, (size_t)NTOK * W.n_vocab * sizeof(float)), "a window >= the sequence changed logits");
    /* W = 4: positions 0..3 see everything anyway; 4.. differ */
    sw.swa = 4;
    st_model *m = open_ok(write_model("swa_4", &sw, &W));
    cr_assert_eq(m->hp.n_swa, 4);
    float *win = run_model(m, tok, NTOK, NTOK, 0);
    float *dec = run_model(m, tok, NTOK, 3, 0); /* the window across decode steps */
    st_model_close(m);
    for (int t = 0; t < NTOK; t++) {
        if (t < 4) cr_assert(same_row(win, full, W.n_vocab, t), "position %d changed with window 4", t);
        else cr_assert(rel_err(win, full, W.n_vocab, t) > 1e-3, "position %d unchanged with window 4", t);
    }
    float *ref = malloc((size_t)NTOK * W.n_vocab * sizeof(float));
    ref_forward(&sw, &W, NULL, false, tok, NTOK, ref);
    double e = max_rel_err(win, ref, W.n_vocab, NTOK);
    cr_assert(e < TOL, "window 4 vs reference: relative error %g", e);
    e = max_rel_err(dec, ref, W.n_vocab, NTOK);
    cr_assert(e < TOL, "window 4, decode, vs reference: relative error %g", e);
    free(full); free(big); free(win); free(dec); free(ref);
    free_weights(&W);
}

/* ------------------------------------------------------- load checks */

static void expect_fail(const char *name, const spec *s, st_status code, const char *n1, const char *n2) {
    weights W = make_weights(s, 9);
    const char *path = write_model(name, s, &W);
    free_weights(&W);
    st_model_params mp;
    st_model_params_default(&mp);
    st_model *m = NULL;
    st_error err = {0};
    st_status rc = st_model_open(path, &mp, &m, &err);
    cr_assert_null(m);
    cr_assert_eq(rc, code, "%s: status %s, expected %s (%s)", name, st_status_str(rc), st_status_str(code), err.msg);
    cr_assert(strstr(err.msg, n1), "%s: message does not contain \"%s\": %s", name, n1, err.msg);
    if (n2) cr_assert(strstr(err.msg, n2), "%s: message does not contain \"%s\": %s", name, n2, err.msg);
}

Test(arch_load, unknown_architecture) {
    spec s = base_spec("llama");
    s.arch = "gemma";
    s.prefix = "gemma";
    expect_fail("gemma", &s, ST_ERR_UNSUPPORTED, "unsupported architecture 'gemma'", "(supported: llama, qwen2)");
}

Test(arch_load, keys_follow_the_architecture) {
    spec s = base_spec("qwen2");
    s.prefix = "llama"; /* qwen2 file with llama.* keys */
    expect_fail("qwen2_llama_keys", &s, ST_ERR_FORMAT, "'qwen2.embedding_length'", "missing");
}

Test(arch_load, qwen2_needs_biases) {
    spec s = base_spec("qwen2");
    s.biases = false;
    expect_fail("qwen2_nobias", &s, ST_ERR_FORMAT, "'blk.0.attn_q.bias'", "required by the qwen2 architecture");
    s.biases = true;
    s.drop_bk_layer = 1;
    expect_fail("qwen2_nobk1", &s, ST_ERR_FORMAT, "'blk.1.attn_k.bias'", "missing");
}

Test(arch_load, bias_shape) {
    spec s = base_spec("qwen2");
    s.bk_len = 64; /* n_embd instead of n_embd_kv = 32 */
    expect_fail("qwen2_bk64", &s, ST_ERR_FORMAT, "'blk.0.attn_k.bias'", "expected [32]");
}

Test(arch_load, llama_biases_all_or_none) {
    spec s = base_spec("llama");
    s.biases = true;
    s.drop_bk_layer = 0;
    expect_fail("llama_partial_bias", &s, ST_ERR_FORMAT, "layer 0 has 2 of the 3 Q/K/V biases", NULL);
}

Test(arch_load, other_biases_refused) {
    spec s = base_spec("llama");
    s.ffn_up_bias = true;
    expect_fail("ffn_bias", &s, ST_ERR_UNSUPPORTED, "'blk.0.ffn_up.bias'", "Q/K/V biases only");
}

Test(arch_load, rope_freqs_shape) {
    float ff[16];
    for (int i = 0; i < 16; i++) ff[i] = 1;
    spec s = base_spec("llama");
    s.rope_freqs = ff;
    s.rope_freqs_len = 16; /* n_rot/2 = 8 */
    expect_fail("rope_freqs16", &s, ST_ERR_FORMAT, "'rope_freqs.weight'", "expected [8]");
    s.rope_freqs_len = 0;
    ff[3] = 0;
    expect_fail("rope_freqs0", &s, ST_ERR_FORMAT, "rope frequency factor 3", "positive");
}

Test(arch_load, llama3_keys_checked) {
    spec s = base_spec("llama");
    s.llama3 = true;
    s.l3_factor = 8;
    s.l3_low = 4;
    s.l3_high = 1;
    s.l3_orig = 64;
    expect_fail("l3_bad", &s, ST_ERR_FORMAT, "llama3 rope scaling", "low_freq_factor <= high_freq_factor");
}

/* ------------------------------------------------------- strata genmodel */

static const char *strata_bin(void) {
    static char p[512];
    snprintf(p, sizeof p, "%s/strata", STRATA_BINARY_DIR);
    return p;
}

/* Runs strata genmodel --preset tiny --type Q8_0 -t 2 ARGS -o <tmp>/<name>.gguf */
static const char *genmodel(const char *name, const char *args) {
    static char paths[4][512];
    static int k;
    char *path = paths[k++ & 3];
    snprintf(path, 512, "%s/gen-%s.gguf", tu_tmpdir(), name);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' genmodel --preset tiny --type Q8_0 -t 2 %s -o '%s' 2>'%s.log'", strata_bin(), args,
             path, path);
    int rc = system(cmd);
    char log[600];
    snprintf(log, sizeof log, "%s.log", path);
    char *txt = tu_read_file(log, NULL);
    cr_assert(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "%s failed: %s", cmd, txt ? txt : "");
    free(txt);
    return path;
}

static void need_binary(void) {
    if (!tu_file_exists(strata_bin())) cr_skip_test("%s is not built", strata_bin());
}

static bool finite_all(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

Test(genmodel, llama_variants_share_weights) {
    need_binary();
    const char *plain = genmodel("llama", "");
    const char *swa = genmodel("llama-swa8", "--sliding-window 8");
    const char *l3 = genmodel("llama-l3", "--rope-scaling llama3");
    int32_t tok[16];
    st_model *m = open_ok(plain);
    int nv = st_tok_n_vocab(st_model_tokenizer(m));
    tokens(tok, 16, nv);
    float *a = run_model(m, tok, 16, 16, 0);
    cr_assert(finite_all(a, (size_t)16 * nv));
    cr_assert_null(m->hp.rope_freq_factors);
    cr_assert_eq(m->hp.n_swa, 0);
    st_model_close(m);

    m = open_ok(swa);
    cr_assert_eq(m->hp.n_swa, 8);
    float *b = run_model(m, tok, 16, 16, 0);
    st_model_close(m);
    for (int t = 0; t < 16; t++) {
        if (t < 8) cr_assert(same_row(a, b, nv, t), "position %d changed with window 8", t);
        else cr_assert(!same_row(a, b, nv, t), "position %d unchanged with window 8", t);
    }

    m = open_ok(l3);
    const st_hparams *hp = &m->hp;
    cr_assert_not_null(hp->rope_freq_factors);
    cr_assert_float_eq(hp->rope_base, 500000.0f, 0);
    float ff[64];
    l3_factors(ff, hp->n_rot, 500000.0, 8, 1, 4, 8192);
    for (int i = 0; i < hp->n_rot / 2; i++)
        cr_assert(fabsf(hp->rope_freq_factors[i] - ff[i]) <= 1e-6f * ff[i], "rope_freqs[%d] = %.9g, expected %.9g", i,
                  hp->rope_freq_factors[i], ff[i]);
    float *c = run_model(m, tok, 16, 16, 0);
    cr_assert(finite_all(c, (size_t)16 * nv));
    st_model_close(m);
    free(a); free(b); free(c);
}

Test(genmodel, qwen2_with_its_vocab) {
    need_binary();
    const char *voc = tu_shared_path("refs/tokenizer/ggml-vocab-qwen2.gguf");
    if (!tu_file_exists(voc)) cr_skip_test("%s is missing", voc);
    char args[700];
    snprintf(args, sizeof args, "--arch qwen2 --tied --vocab '%s'", voc);
    const char *path = genmodel("qwen2", args);
    st_model *m = open_ok(path);
    st_model_info info;
    st_model_get_info(m, &info);
    cr_assert_str_eq(info.arch, "qwen2");
    cr_assert(m->hp.qkv_bias && m->hp.rope_type == ST_ROPE_NEOX);
    cr_assert_eq(m->output.data, m->tok_embd.data, "--tied: the LM head is the embedding matrix");
    cr_assert_eq(info.n_vocab, 151936);
    /* the copied vocabulary is the qwen2 BPE one: one of its test vectors */
    const st_tokenizer *tk = st_model_tokenizer(m);
    int32_t ids[16];
    int64_t n = st_tok_encode(tk, "Hello world", 11, false, false, ids, 16);
    cr_assert_eq(n, 2);
    cr_assert(ids[0] == 9707 && ids[1] == 1879, "Hello world -> %d %d", ids[0], ids[1]);
    /* a forward pass and a few greedy tokens */
    int32_t tok[8];
    tokens(tok, 8, info.n_vocab);
    float *l = run_model(m, tok, 8, 8, 0);
    cr_assert(finite_all(l, (size_t)8 * info.n_vocab));
    free(l);
    st_model_close(m);
}
