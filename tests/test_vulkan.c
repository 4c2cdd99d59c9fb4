/* test_vulkan.c — the Vulkan backend (gpu/) against the CPU backend.
 *
 * CI has no GPU: it runs on Mesa's lavapipe (subgroups of 8). Every test
 * skips, saying why, when there is no usable Vulkan device. ctest sets
 * STRATA_VK_VALIDATION=1, so the Khronos validation layer (when installed)
 * checks every call, and each test ends by asserting it reported no error.
 *
 *  - kernels: mat-vec (1 and 7 tokens) and the tiled mat-mat of prompt
 *    batches (37 and 70 tokens: the small and the large tiles) for every
 *    weight type (F32 F16 Q4_0 Q8_0 Q4_K Q5_K Q6_K) vs the CPU reference dot
 *    products on the same quantized activations;
 *    RMSNorm; SwiGLU; random inputs of sizes that are not multiples of the
 *    workgroup.
 *  - a random two-layer model of awkward shape (GQA, partial RoPE, vocabulary
 *    of 77, 70-token prompt in batches of 32 so attention spans several
 *    chunks, then decoding): RoPE, the KV cache and attention, F16 and F32
 *    caches, float and quantized weights, logits of every batch vs the CPU.
 *  - the bundled tiny-14m Q8_0: greedy continuations identical to the CPU
 *    backend for every reference prompt, logits within tolerance; the other
 *    tiny-14m quantizations under ../shared when present.
 *  - streaming: a 2-layer budget (device slots, prefetch threads uploading
 *    while the GPU computes) gives the same tokens as fully resident. */
#include "backend.h"
#include "model.h"
#include "quant.h"
#include "strata.h"
#include "testutil.h"
#include "threadpool.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef STRATA_VULKAN
#include "vk_backend.h"

/* ------------------------------------------------------------ helpers */

static int g_dev = -2; /* -2: not looked up yet, -1: none */

static void need_device(void) {
    if (g_dev == -2) {
        st_error err = {0};
        g_dev = st_vk_pick_device(-1, false, &err);
        if (g_dev < 0) fprintf(stderr, "test_vulkan: %s\n", err.msg);
    }
    if (g_dev < 0) cr_skip_test("no usable Vulkan device (install mesa-vulkan-drivers for lavapipe)");
}

static void no_validation_errors(void) {
    cr_assert_eq(st_vk_validation_errors(), 0, "the Vulkan validation layer reported %llu errors (see stderr)",
                 (unsigned long long)st_vk_validation_errors());
}

static uint64_t g_rng = 88172645463325252ull;
static float frand(void) { /* uniform in [-1, 1) */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

static void fill(float *v, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) v[i] = frand() * scale;
}

/* ------------------------------------------------------------ kernels */

/* Each type on sizes that are not multiples of the workgroup or tile: rows
 * x columns (columns a multiple of the type's block), n_tok tokens (from 8
 * on, prompt batches go through matmul.comp: 37 tokens the small tiles, 70
 * the large ones, on lavapipe). The CPU reference: activations quantized to
 * the vec_dot_type by the reference quantizer, then the reference vec_dot.
 * Tolerance: 1e-5 of sum |w x| (the block sums are exact; only the order of
 * the float additions differs); 2e-3 where the cooperative-matrix kernel
 * runs (STRATA_VK_COOPMAT=1 on a device that has it: operands rounded to
 * F16). */
static void check_matvec_n(st_type t, int ncols, int nrows, int n_tok) {
    need_device();
    const st_type_traits *tr = st_type_traits_ref(t);
    const st_type_traits *vt = st_type_traits_ref(tr->vec_dot_type);
    size_t rb = st_row_size(t, ncols), vb = st_row_size(tr->vec_dot_type, ncols);
    float *wf = malloc((size_t)nrows * ncols * sizeof(float)), *x = malloc((size_t)n_tok * ncols * sizeof(float));
    uint8_t *w = malloc(rb * nrows), *xq = malloc(vb * n_tok);
    float *wd = malloc((size_t)ncols * sizeof(float)), *xd = malloc((size_t)ncols * sizeof(float));
    float *gpu = malloc((size_t)n_tok * nrows * sizeof(float));
    fill(wf, (size_t)nrows * ncols, 1.0f);
    fill(x, (size_t)n_tok * ncols, 2.0f);
    for (int r = 0; r < nrows; r++) cr_assert(st_quantize_row(t, wf + (size_t)r * ncols, w + rb * r, ncols) == rb);
    st_error err = {0};
    const char *kern = st_vk_test_kernel(g_dev, t, nrows, n_tok);
    cr_assert_not_null(kern);
    double tol = strstr(kern, "_cm") ? 2e-3 : 1e-5;
    cr_assert_eq(st_vk_test_matvec(g_dev, t, w, ncols, nrows, x, n_tok, gpu, &err), ST_OK, "%s: %s", st_type_name(t), err.msg);
    double worst = 0;
    for (int k = 0; k < n_tok; k++) {
        vt->from_float(x + (size_t)k * ncols, xq + vb * k, ncols);
        vt->to_float(xq + vb * k, xd, ncols);
        for (int r = 0; r < nrows; r++) {
            float ref;
            tr->vec_dot(ncols, &ref, w + rb * r, xq + vb * k);
            tr->to_float(w + rb * r, wd, ncols);
            double mag = 0;
            for (int i = 0; i < ncols; i++) mag += fabs((double)wd[i] * xd[i]);
            double d = fabs((double)gpu[(size_t)k * nrows + r] - ref);
            cr_assert(d <= tol * mag + 1e-6, "%s %s %dx%d token %d row %d: gpu %.7g cpu %.7g (sum|wx| %.3g)", kern, st_type_name(t),
                      nrows, ncols, k, r, gpu[(size_t)k * nrows + r], ref, mag);
            if (mag > 0 && d / mag > worst) worst = d / mag;
        }
    }
    fprintf(stderr, "%-14s %3dx%-4d %2d tokens: worst |gpu-cpu| / sum|wx| = %.2g\n", kern, nrows, ncols, n_tok, worst);
    free(wf); free(x); free(w); free(xq); free(wd); free(xd); free(gpu);
    no_validation_errors();
}

/* 1 and 7 tokens (mat-vec), 37 and 70 (mat-mat, small and large tiles) */
static void check_matvec(st_type t, int ncols, int nrows) {
    static const int toks[] = {1, 7, 37, 70};
    for (size_t i = 0; i < sizeof toks / sizeof toks[0]; i++) check_matvec_n(t, ncols, nrows, toks[i]);
}

Test(vulkan_kernels, matvec_f32) { check_matvec(ST_TYPE_F32, 203, 37); check_matvec(ST_TYPE_F32, 40, 131); }
Test(vulkan_kernels, matvec_f16) { check_matvec(ST_TYPE_F16, 203, 37); check_matvec(ST_TYPE_F16, 19, 131); }
Test(vulkan_kernels, matvec_q4_0) { check_matvec(ST_TYPE_Q4_0, 32 * 7, 37); check_matvec(ST_TYPE_Q4_0, 32 * 3, 131); }
/* 201 blocks a row: more than two a lane on every subgroup size, so
 * that a lane's second block of a step (matvec.comp) is used, and the
 * last step has lanes without one */
Test(vulkan_kernels, matvec_q8_0) { check_matvec(ST_TYPE_Q8_0, 32 * 7, 37); check_matvec(ST_TYPE_Q8_0, 32 * 201, 19); }
Test(vulkan_kernels, matvec_q4_k) { check_matvec(ST_TYPE_Q4_K, 256 * 3, 19); check_matvec(ST_TYPE_Q4_K, 256, 131); }
Test(vulkan_kernels, matvec_q5_k) { check_matvec(ST_TYPE_Q5_K, 256 * 3, 19); check_matvec(ST_TYPE_Q5_K, 256, 131); }
Test(vulkan_kernels, matvec_q6_k) { check_matvec(ST_TYPE_Q6_K, 256 * 3, 19); check_matvec(ST_TYPE_Q6_K, 256 * 2, 131); }
/* a single block per row, and more rows than threads in a workgroup (and
 * than a large tile) */
Test(vulkan_kernels, matvec_small_rows) {
    check_matvec(ST_TYPE_Q8_0, 32, 131);
    check_matvec(ST_TYPE_Q6_K, 256, 70);
}

/* more than 256 rows: the cooperative-matrix kernel's large tiles (up to
 * 256 rows take its small ones), rows and tokens not multiples of them */
Test(vulkan_kernels, matmul_many_rows) {
    check_matvec_n(ST_TYPE_Q4_K, 512, 300, 70);
    check_matvec_n(ST_TYPE_Q8_0, 224, 270, 37);
    check_matvec_n(ST_TYPE_F16, 203, 300, 70);
}

Test(vulkan_kernels, rmsnorm) {
    need_device();
    int n = 203, nt = 5;
    float *x = malloc((size_t)n * nt * 4), *w = malloc((size_t)n * 4), *o = malloc((size_t)n * nt * 4);
    fill(x, (size_t)n * nt, 3.0f);
    fill(w, (size_t)n, 1.0f);
    st_error err = {0};
    cr_assert_eq(st_vk_test_rmsnorm(g_dev, x, w, n, nt, 1e-5f, o, &err), ST_OK, "%s", err.msg);
    for (int t = 0; t < nt; t++) {
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (double)x[t * n + i] * x[t * n + i];
        float scale = 1.0f / sqrtf((float)(ss / n) + 1e-5f);
        for (int i = 0; i < n; i++) {
            float ref = (x[t * n + i] * scale) * w[i];
            cr_assert(fabsf(o[t * n + i] - ref) <= 1e-5f * (fabsf(ref) + 1e-3f), "row %d [%d]: gpu %g cpu %g", t, i, o[t * n + i], ref);
        }
    }
    free(x); free(w); free(o);
    no_validation_errors();
}

Test(vulkan_kernels, swiglu) {
    need_device();
    int n = 1001;
    float *g = malloc((size_t)n * 4), *u = malloc((size_t)n * 4), *ref = malloc((size_t)n * 4);
    fill(g, (size_t)n, 8.0f);
    fill(u, (size_t)n, 2.0f);
    for (int i = 0; i < n; i++) ref[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    st_error err = {0};
    cr_assert_eq(st_vk_test_swiglu(g_dev, g, u, n, &err), ST_OK, "%s", err.msg);
    for (int i = 0; i < n; i++)
        cr_assert(fabsf(g[i] - ref[i]) <= 1e-5f * (fabsf(ref[i]) + 1e-3f), "[%d]: gpu %g cpu %g", i, g[i], ref[i]);
    free(g); free(u); free(ref);
    no_validation_errors();
}

/* ------------------------------------------------------------ random model */

typedef struct {
    st_hparams hp;
    st_layer *layers;
    st_tensor out_norm, out;
    void *bufs[64];
    int nbufs;
} rmodel;

static void rtensor(rmodel *m, st_tensor *t, st_type type, int ne0, int ne1, float scale, float bias) {
    float *f = malloc((size_t)ne0 * ne1 * sizeof(float));
    fill(f, (size_t)ne0 * ne1, scale);
    for (size_t i = 0; i < (size_t)ne0 * ne1; i++) f[i] += bias;
    t->type = type;
    t->ne0 = ne0;
    t->ne1 = ne1;
    t->row_bytes = st_row_size(type, ne0);
    t->nbytes = (uint64_t)t->row_bytes * ne1;
    uint8_t *d = malloc(t->nbytes);
    for (int r = 0; r < ne1; r++) st_quantize_row(type, f + (size_t)r * ne0, d + t->row_bytes * r, ne0);
    t->data = d;
    m->bufs[m->nbufs++] = d;
    free(f);
}

/* n_embd 128, 4 heads of 32 over 2 KV heads, RoPE on 16 of the 32 dims, FFN
 * 96, vocabulary 77, 2 layers. wtype for the projections, ftype for the FFN
 * and output, ntype for the norms. */
/* a random model of width D (a multiple of 32) and FFN F; K-quant weights
 * need multiples of 256 */
static void rmodel_make_hd(rmodel *m, st_type wtype, st_type vtype, st_type ftype, st_type ntype, int D_, int F_, int hd) {
    memset(m, 0, sizeof *m);
    st_hparams *hp = &m->hp;
    hp->n_vocab = 77;
    hp->n_embd = D_;
    hp->n_layer = 2;
    hp->n_head = D_ / hd;
    hp->n_head_kv = hd == 32 ? 2 : 1;
    hp->head_dim = hd;
    hp->n_ff = F_;
    hp->n_rot = hd / 2;
    hp->n_ctx_train = 256;
    hp->rope_base = 10000.0f;
    hp->rope_scale = 1.0f;
    hp->rms_eps = 1e-5f;
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    int D = hp->n_embd, DKV = hp->head_dim * hp->n_head_kv, F = hp->n_ff;
    for (int il = 0; il < hp->n_layer; il++) {
        st_layer *L = &m->layers[il];
        rtensor(m, &L->attn_norm, ntype, D, 1, 0.2f, 1.0f);
        rtensor(m, &L->wq, wtype, D, D, 0.15f, 0);
        rtensor(m, &L->wk, wtype, D, DKV, 0.15f, 0);
        rtensor(m, &L->wv, vtype, D, DKV, 0.15f, 0);
        rtensor(m, &L->wo, wtype, D, D, 0.1f, 0);
        rtensor(m, &L->ffn_norm, ntype, D, 1, 0.2f, 1.0f);
        rtensor(m, &L->w_gate, ftype, D, F, 0.15f, 0);
        rtensor(m, &L->w_up, ftype, D, F, 0.15f, 0);
        rtensor(m, &L->w_down, ftype, F, D, 0.1f, 0);
    }
    rtensor(m, &m->out_norm, ntype, D, 1, 0.2f, 1.0f);
    rtensor(m, &m->out, ftype, D, hp->n_vocab, 0.3f, 0);
}

static void rmodel_make_dims(rmodel *m, st_type wtype, st_type vtype, st_type ftype, st_type ntype, int D_, int F_) {
    rmodel_make_hd(m, wtype, vtype, ftype, ntype, D_, F_, 32);
}

static void rmodel_free(rmodel *m) {
    for (int i = 0; i < m->nbufs; i++) free(m->bufs[i]);
    free(m->layers);
}

static void forward(st_backend *be, const rmodel *m, const float *x, int n, int pos0, float *logits) {
    st_error err = {0};
    cr_assert_eq(be->ops->begin(be, x, n, pos0, &err), ST_OK, "%s: begin: %s", be->ops->name, err.msg);
    for (int il = 0; il < m->hp.n_layer; il++)
        cr_assert_eq(be->ops->layer(be, il, &m->layers[il], &err), ST_OK, "%s: layer %d: %s", be->ops->name, il, err.msg);
    cr_assert_eq(be->ops->end(be, &m->out_norm, &m->out, logits, true, &err), ST_OK, "%s: end: %s", be->ops->name, err.msg);
}

/* The same batches through both backends: a 70-token prompt in batches of
 * 32 (one attention chunk from 16 tokens on), 10 single tokens (3 chunks of
 * 32 merged, see attn.comp), batches up to 197 positions, single tokens (7
 * chunks), then a rewind to 50 and 3 more tokens (positions overwritten in
 * the cache). Every row of logits within tol x max|logit|. */
static void check_rmodel_hd(st_type wtype, st_type ftype, st_type ntype, bool kv_f32, double tol, int D, int F, int hd) {
    need_device();
    rmodel m;
    rmodel_make_hd(&m, wtype, wtype, ftype, ntype, D, F, hd);
    const st_hparams *hp = &m.hp;
    st_error err = {0};
    st_threadpool *tp = NULL;
    cr_assert_eq(st_tp_new(2, &tp, &err), ST_OK);
    st_backend *cpu = NULL, *gpu = NULL;
    int n_ctx = 224, n_batch = 32;
    cr_assert_eq(st_cpu_backend_new(hp, n_ctx, n_batch, kv_f32, tp, &cpu, &err), ST_OK, "%s", err.msg);
    cr_assert_eq(st_vk_backend_new(hp, n_ctx, n_batch, kv_f32, g_dev, &gpu, &err), ST_OK, "%s", err.msg);
    int V = hp->n_vocab;
    float *x = malloc((size_t)n_batch * D * 4), *lc = malloc((size_t)n_batch * V * 4), *lg = malloc((size_t)n_batch * V * 4);
    int sched[][2] = {{0, 32}, {32, 32}, {64, 6}, {70, 1}, {71, 1}, {72, 1}, {73, 1}, {74, 1},
                      {75, 1}, {76, 1}, {77, 1}, {78, 1}, {79, 1}, {80, 32}, {112, 32}, {144, 32}, {176, 20},
                      {196, 1}, {197, 1}, {50, 1}, {51, 2}, {53, 1}};
    double worst = 0;
    for (size_t b = 0; b < sizeof sched / sizeof sched[0]; b++) {
        int pos0 = sched[b][0], n = sched[b][1];
        if (b > 0 && pos0 < sched[b - 1][0]) {
            cpu->ops->kv_truncate(cpu, pos0);
            gpu->ops->kv_truncate(gpu, pos0);
        }
        fill(x, (size_t)n * D, 1.0f);
        forward(cpu, &m, x, n, pos0, lc);
        forward(gpu, &m, x, n, pos0, lg);
        for (int t = 0; t < n; t++) {
            double mx = 0, md = 0;
            for (int i = 0; i < V; i++) {
                double a = lc[(size_t)t * V + i];
                if (fabs(a) > mx) mx = fabs(a);
                double d = fabs(a - lg[(size_t)t * V + i]);
                if (d > md) md = d;
            }
            cr_assert(md <= tol * mx, "%s/%s%s, head_dim %d: position %d: max |logit diff| %.3g > %.1g x max|logit| %.3g",
                      st_type_name(wtype), st_type_name(ftype), kv_f32 ? " F32 KV" : "", hd, pos0 + t, md, tol, mx);
            if (md / mx > worst) worst = md / mx;
        }
    }
    fprintf(stderr, "random model %s/%s/%s%s, head_dim %d: worst max|diff| / max|logit| = %.2g (tolerance %.1g)\n", st_type_name(wtype),
            st_type_name(ftype), st_type_name(ntype), kv_f32 ? " F32 KV" : " F16 KV", hd, worst, tol);
    gpu->ops->destroy(gpu);
    cpu->ops->destroy(cpu);
    st_tp_free(tp);
    free(x); free(lc); free(lg);
    rmodel_free(&m);
    no_validation_errors();
}

static void check_rmodel(st_type wtype, st_type ftype, st_type ntype, bool kv_f32, double tol) {
    check_rmodel_hd(wtype, ftype, ntype, kv_f32, tol, 128, 96, 32);
}

/* F32 weights and cache: nothing is rounded to fewer bits on the way, so the
 * two agree to float accuracy (the CPU adds in double, the GPU in float) */
Test(vulkan_model, random_f32) { check_rmodel(ST_TYPE_F32, ST_TYPE_F32, ST_TYPE_F32, true, 1e-5); }
/* F16 weights and cache: activations and the attention accumulator are
 * rounded to F16 (11 bits) as on the CPU; a value within float noise of a
 * rounding boundary may round the other way, one F16 step (5e-4 relative) */
Test(vulkan_model, random_f16) { check_rmodel(ST_TYPE_F16, ST_TYPE_F16, ST_TYPE_F16, false, 3e-3); }
/* quantized weights: activations are rounded to 8 bits before each product,
 * where one step is up to 1/127 of a block's largest value */
Test(vulkan_model, random_quantized) { check_rmodel(ST_TYPE_Q8_0, ST_TYPE_Q4_0, ST_TYPE_F32, false, 3e-2); }
/* heads of 128 and 64 (one KV head: grouped queries), the decoding
 * attention's other array sizes (attn_dec.comp's MAXV 16 and 8; the
 * models above have heads of 32). Rows of 256 round more on the way than
 * the 128 above: the worst is 0.41% and 0.46% of the largest logit, the
 * same with attn.comp for decoding (STRATA_VK_ATTN_DEC=0) */
Test(vulkan_model, random_head_dims) {
    check_rmodel_hd(ST_TYPE_F16, ST_TYPE_F16, ST_TYPE_F16, false, 6e-3, 256, 96, 128);
    check_rmodel_hd(ST_TYPE_F16, ST_TYPE_F16, ST_TYPE_F16, false, 6e-3, 256, 96, 64);
}

/* Replay, the mat-vec prologues and the Q/K/V epilogue (vk_backend.c,
 * matvec.comp): decode passes assembled from recorded parts, with the
 * norms, SwiGLU and quantization in the products' prologues and RoPE and
 * the KV-cache stores in the Q/K/V product, give bit-identical logits to
 * passes recorded afresh with act.comp and kv_store.comp dispatches
 * (STRATA_VK_GRAPH=0 STRATA_VK_FUSE=0), at positions that need 1 to 4
 * attention chunks, across a rewind, with prompt batches between them
 * (recorded live), and parts are in fact replayed. */
static void check_replay(st_type wtype, st_type vtype, st_type ftype, int D_, int F_) {
    need_device();
    rmodel m;
    rmodel_make_dims(&m, wtype, vtype, ftype, ST_TYPE_F32, D_, F_);
    const st_hparams *hp = &m.hp;
    st_error err = {0};
    st_backend *be[2] = {NULL, NULL};
    int n_ctx = 224, n_batch = 32, V = hp->n_vocab, D = hp->n_embd;
    for (int i = 0; i < 2; i++) {
        setenv("STRATA_VK_GRAPH", i ? "0" : "1", 1);
        setenv("STRATA_VK_FUSE", i ? "0" : "1", 1);
        cr_assert_eq(st_vk_backend_new(hp, n_ctx, n_batch, false, g_dev, &be[i], &err), ST_OK, "%s", err.msg);
    }
    unsetenv("STRATA_VK_GRAPH");
    unsetenv("STRATA_VK_FUSE");
    float *x = malloc((size_t)n_batch * D * 4), *l0 = malloc((size_t)n_batch * V * 4), *l1 = malloc((size_t)n_batch * V * 4);
    int pos = 0, steps = 0;
    for (int round = 0; round < 3; round++) {
        int n_prompt = round == 0 ? 31 : 7;
        for (int b = 0; b < 2; b++) {
            if (round == 2 && b == 0) { /* rewind */
                pos = 40;
                be[0]->ops->kv_truncate(be[0], pos);
                be[1]->ops->kv_truncate(be[1], pos);
            }
            int n = b == 0 ? n_prompt : 1;
            int reps = b == 0 ? 1 : 60;
            for (int r = 0; r < reps; r++, pos += n, steps++) {
                fill(x, (size_t)n * D, 1.0f);
                forward(be[0], &m, x, n, pos, l0);
                forward(be[1], &m, x, n, pos, l1);
                cr_assert(memcmp(l0, l1, (size_t)n * V * 4) == 0, "position %d (%d tokens): replayed logits differ", pos, n);
            }
        }
    }
    st_vk_backend_figures f0, f1;
    cr_assert(st_vk_backend_figures_get(be[0], &f0) && st_vk_backend_figures_get(be[1], &f1));
    fprintf(stderr, "replay: %d passes to position %d, bit-identical; parts recorded %llu, replayed %llu\n", steps, pos,
            (unsigned long long)f0.parts_recorded, (unsigned long long)f0.parts_replayed);
    /* head, 2 layers and tail once, then replayed by every later decode pass */
    /* (two sets of parts: see "Passes queued ahead" in vk_backend.c) */
    cr_assert_eq(f0.parts_recorded, (uint64_t)(hp->n_layer + 2) * 2);
    cr_assert_geq(f0.parts_replayed, (uint64_t)(hp->n_layer + 2) * 170);
    cr_assert_eq(f1.parts_recorded + f1.parts_replayed, 0);
    /* every counter (the attention's merges, the chain's) back at 0 after
     * each pass; with STRATA_VK_CHAIN=1 (test_vulkan_chain*) the decode
     * passes ran chained */
    for (int i = 0; i < 2; i++) {
        uint32_t nz = 99;
        st_error err = {0};
        cr_assert_eq(st_vk_backend_counters(be[i], &nz, &err), ST_OK, "%s", err.msg);
        cr_assert_eq(nz, 0, "backend %d: %u counter words left nonzero", i, nz);
    }
    const char *chn = getenv("STRATA_VK_CHAIN");
    if (chn && atoi(chn)) cr_assert_gt(f0.chained_layers, 0, "STRATA_VK_CHAIN=1: no layer was chained");
    fprintf(stderr, "replay: %llu layer recordings chained\n", (unsigned long long)f0.chained_layers);
    for (int i = 0; i < 2; i++) be[i]->ops->destroy(be[i]);
    free(x); free(l0); free(l1);
    rmodel_free(&m);
    no_validation_errors();
}

Test(vulkan_model, replay_identical, .timeout = 120) { check_replay(ST_TYPE_Q8_0, ST_TYPE_Q8_0, ST_TYPE_Q4_0, 128, 96); }
/* the K-quants' prologues (Q4_K reads its activations from shared memory
 * in 16-byte slots, Q6_K in words), and V of another type than Q and K (as
 * in Q4_K_M files: Q, K and V in a dispatch each, sharing the prologue
 * workgroups). With STRATA_VK_PRO_GROUPS=3 (ctest's
 * test_vulkan_groups_replay) each workgroup computes several row groups */
Test(vulkan_model, replay_identical_kquants, .timeout = 120) { check_replay(ST_TYPE_Q4_K, ST_TYPE_Q6_K, ST_TYPE_Q6_K, 256, 512); }

/* One-token passes queued ahead ("Passes queued ahead" in vk_backend.c):
 * a backend that queues them and one that never does (STRATA_VK_SPEC=0)
 * give bit-identical logits over a schedule that runs queued passes as
 * queued (also after a pause, and at an earlier position after a rewind),
 * releases them (another backend's pass between two tokens, a prompt
 * batch) and abandons one
 * (layer 1's weights moved between two tokens: the same bytes at another
 * address, uploaded again), and each of those paths was taken. */
Test(vulkan_model, queued_ahead, .timeout = 120) {
    need_device();
    rmodel m;
    rmodel_make_dims(&m, ST_TYPE_Q8_0, ST_TYPE_Q8_0, ST_TYPE_Q4_0, ST_TYPE_F32, 128, 96);
    const st_hparams *hp = &m.hp;
    int n_ctx = 224, n_batch = 32, V = hp->n_vocab, D = hp->n_embd;
    /* layer 1 again, its tensors copied elsewhere */
    st_layer moved = m.layers[1];
    for (int k = 0; k < ST_LAYER_N_TENSORS; k++) {
        st_tensor *t = st_layer_tensor(&moved, k);
        void *d = malloc(t->nbytes);
        memcpy(d, t->data, t->nbytes);
        t->data = d;
        m.bufs[m.nbufs++] = d;
    }
    /* (position, tokens): a prompt, tokens, a rewind, a prompt batch, tokens */
    enum { OTHER = 1, MOVE = 2, PAUSE = 4 };
    int sched[64][3], ns = 0;
    sched[ns][0] = 0, sched[ns][1] = 31, sched[ns++][2] = 0;
    for (int p = 31; p < 51; p++) sched[ns][0] = p, sched[ns][1] = 1, sched[ns++][2] = p == 40 ? OTHER : p == 45 ? MOVE : p == 48 ? PAUSE : 0;
    for (int p = 35; p < 40; p++) sched[ns][0] = p, sched[ns][1] = 1, sched[ns++][2] = 0;
    sched[ns][0] = 40, sched[ns][1] = 7, sched[ns++][2] = 0;
    for (int p = 47; p < 60; p++) sched[ns][0] = p, sched[ns][1] = 1, sched[ns++][2] = 0;
    float *x = malloc((size_t)ns * n_batch * D * 4), *l[2];
    for (int i = 0; i < ns; i++) fill(x + (size_t)i * n_batch * D, (size_t)sched[i][1] * D, 1.0f);
    st_error err = {0};
    st_backend *be[3];
    st_vk_backend_figures f[2];
    for (int i = 0; i < 2; i++) {
        l[i] = malloc((size_t)ns * n_batch * V * 4);
        setenv("STRATA_VK_SPEC", i ? "0" : "1", 1);
        cr_assert_eq(st_vk_backend_new(hp, n_ctx, n_batch, false, g_dev, &be[i], &err), ST_OK, "%s", err.msg);
        cr_assert_eq(st_vk_backend_new(hp, n_ctx, n_batch, false, g_dev, &be[2], &err), ST_OK, "%s", err.msg);
        unsetenv("STRATA_VK_SPEC");
        rmodel mm = m;
        st_layer layers[2] = {m.layers[0], m.layers[1]};
        mm.layers = layers;
        for (int s = 0; s < ns; s++) {
            int pos0 = sched[s][0], n = sched[s][1];
            if (s > 0 && pos0 < sched[s - 1][0] + sched[s - 1][1]) be[i]->ops->kv_truncate(be[i], pos0);
            if (sched[s][2] & OTHER) forward(be[2], &mm, x, 1, 0, l[i]);
            if (sched[s][2] & MOVE) layers[1] = moved;
            if (sched[s][2] & PAUSE) usleep(300000);
            forward(be[i], &mm, x + (size_t)s * n_batch * D, n, pos0, l[i] + (size_t)s * n_batch * V);
        }
        be[2]->ops->destroy(be[2]);
        cr_assert(st_vk_backend_figures_get(be[i], &f[i]));
        be[i]->ops->destroy(be[i]);
    }
    for (int s = 0; s < ns; s++)
        cr_assert(memcmp(l[0] + (size_t)s * n_batch * V, l[1] + (size_t)s * n_batch * V, (size_t)sched[s][1] * V * 4) == 0,
                  "step %d (position %d, %d tokens): logits differ with passes queued ahead", s, sched[s][0], sched[s][1]);
    fprintf(stderr, "queued ahead: %d steps bit-identical; passes run as queued %llu, released %llu, abandoned %llu\n", ns,
            (unsigned long long)f[0].spec_run, (unsigned long long)f[0].spec_cancelled, (unsigned long long)f[0].spec_abandoned);
    cr_assert_geq(f[0].spec_run, 25);
    cr_assert_geq(f[0].spec_cancelled, 2); /* the other backend, the prompt batch */
    cr_assert_geq(f[0].spec_abandoned, 1);
    cr_assert_eq(f[1].spec_run + f[1].spec_cancelled + f[1].spec_abandoned, 0);
    free(x); free(l[0]); free(l[1]);
    rmodel_free(&m);
    no_validation_errors();
}

/* ------------------------------------------------------------ tiny-14m */

#define GREEDY_N 12
/* Logits of the two backends on the same tokens. Quantized models round
 * their activations to 8 bits before every product, so a float-order
 * difference anywhere upstream (RMSNorm and dot products add in a different
 * order on the GPU) can move an activation by one quantization step. Measured
 * on lavapipe, 16 greedy steps of once_upon on the Q8_0, Q6_K, Q5_K_M and
 * Q4_K_M files: Vulkan vs CPU max |diff| 0.13-0.29, mean 0.036-0.063, worst
 * step's mean 0.08-0.18; the CPU's own F16-KV vs F32-KV runs differ as much:
 * 0.15-0.28, 0.032-0.059, 0.08-0.13. Since attention accumulates in F32
 * on the GPU (flash-attention steps, attn.comp) where the CPU rounds its
 * accumulator to F16 after every position as llama.cpp's CPU kernel does,
 * all 6 prompts on the 5 files: max 0.19-0.49 (Q5_K_M, with attention
 * in chunks of 32 combined in F32), mean 0.034-0.076; one step
 * of unusual_chars on Q4_K_M moves as a whole (step mean 0.265: an
 * activation one quantization step apart early in the pass). A real error
 * moves logits by whole units. The bounds leave room for other devices'
 * float arithmetic. */
#define LOGIT_MAX 0.6        /* any logit, any step */
#define LOGIT_STEP_MEAN 0.35 /* mean over the vocabulary, any step */
#define LOGIT_MEAN 0.08      /* mean over all steps of a model */
/* a CPU margin below this is a tie at that precision: the greedy comparison
 * of that prompt stops there (as tests/test_refs.c does against llama.cpp) */
#define QUANT_TIE 0.1

static uint32_t g_chunk; /* streamed sessions: bytes per read chunk (0: default) */
static int g_readers;    /* and reader threads (0: auto) */
static uint64_t g_host_cache; /* and pinned host memory for streamed layers (0: none) */
static int g_want_hc = -1;    /* layers the host cache must hold (-1: not checked) */

static st_session *session(st_model *m, st_backend_kind kind, int cache_layers) {
    st_session_params sp;
    st_session_params_default(&sp);
    if (kind == ST_BACKEND_VULKAN) {
        sp.prefetch_chunk = g_chunk;
        sp.prefetch_threads = g_readers;
        sp.host_cache = g_host_cache;
    }
    sp.n_ctx = 256;
    sp.backend = kind;
    sp.device = kind == ST_BACKEND_VULKAN ? g_dev : -1;
    sp.cache_layers = cache_layers;
    st_session *s = NULL;
    st_error err = {0};
    cr_assert_eq(st_session_new(m, &sp, &s, &err), ST_OK, "session: %s", err.msg);
    st_stats ss;
    st_session_stats(s, &ss);
    cr_assert_str_eq(ss.backend, kind == ST_BACKEND_VULKAN ? "vulkan" : "cpu");
    return s;
}

static int argmax(const float *v, int n, float *margin) {
    int b = 0, s = -1;
    for (int i = 1; i < n; i++) {
        if (v[i] > v[b]) { s = b; b = i; }
        else if (s < 0 || v[i] > v[s]) s = i;
    }
    if (margin) *margin = v[b] - v[s];
    return b;
}

/* Greedy continuations of the reference prompts on the CPU and on Vulkan:
 * identical tokens; at every step the logits within LOGIT_TOL. With
 * cache_layers, the Vulkan session streams layers through that many slots. */
static void check_model(const char *path, const char *refs, int n_gen, int cache_layers, int max_prompts) {
    need_device();
    if (!tu_file_exists(path)) cr_skip_test("%s not found", path);
    cJSON *j = tu_read_json(refs);
    cr_assert_not_null(j, "cannot read %s", refs);
    st_vk_register();
    st_model_params mp;
    st_model_params_default(&mp);
    mp.n_threads = 2;
    st_model *m = NULL;
    st_error err = {0};
    cr_assert_eq(st_model_open(path, &mp, &m, &err), ST_OK, "%s", err.msg);
    st_model_info info;
    st_model_get_info(m, &info);
    int nv = info.n_vocab;
    st_session *cs = session(m, ST_BACKEND_CPU, 0), *gs = session(m, ST_BACKEND_VULKAN, cache_layers);
    const cJSON *pr;
    int np = 0;
    double worst = 0, sum = 0;
    long cnt = 0;
    int ties = 0, steps = 0;
    cJSON_ArrayForEach(pr, cJSON_GetObjectItem(j, "prompts")) {
        if (np++ >= max_prompts) break;
        const char *name = cJSON_GetObjectItem(pr, "name")->valuestring;
        int32_t ids[512];
        int n = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(pr, "token_ids")) if (n < 512) ids[n++] = (int32_t)e->valuedouble;
        st_session_rewind(cs, 0);
        st_session_rewind(gs, 0);
        cr_assert_eq(st_session_eval(cs, ids, n, false, &err), ST_OK, "%s", err.msg);
        cr_assert_eq(st_session_eval(gs, ids, n, false, &err), ST_OK, "%s: vulkan: %s", name, err.msg);
        for (int k = 0; k < n_gen; k++) {
            const float *lc = st_session_logits(cs, -1), *lg = st_session_logits(gs, -1);
            double md = 0, sd = 0;
            for (int i = 0; i < nv; i++) {
                double d = fabs((double)lc[i] - lg[i]);
                if (d > md) md = d;
                sd += d;
            }
            sum += sd;
            cnt += nv;
            if (md > worst) worst = md;
            cr_assert(md <= LOGIT_MAX, "%s: step %d: max |logit diff| %.4f > %.2f", name, k, md, LOGIT_MAX);
            cr_assert(sd / nv <= LOGIT_STEP_MEAN, "%s: step %d: mean |logit diff| %.4f > %.2f", name, k, sd / nv, LOGIT_STEP_MEAN);
            float margin;
            int32_t tc = argmax(lc, nv, &margin), tg = argmax(lg, nv, NULL);
            steps++;
            if (margin < QUANT_TIE) { /* a near-tie: either token is right */
                ties++;
                break;
            }
            cr_assert_eq(tg, tc, "%s: step %d: vulkan picks %d, cpu %d (cpu margin %.4f)", name, k, tg, tc, margin);
            cr_assert_eq(st_session_eval(cs, &tc, 1, false, &err), ST_OK, "%s", err.msg);
            cr_assert_eq(st_session_eval(gs, &tg, 1, false, &err), ST_OK, "%s: vulkan: %s", name, err.msg);
        }
    }
    fprintf(stderr, "%s%s: %d prompts, %d greedy steps identical (%d stopped at a near-tie); logits max |diff| %.4f, mean %.5f\n",
            path, cache_layers ? " (streamed)" : "", np > max_prompts ? max_prompts : np, steps - ties, ties, worst,
            cnt ? sum / cnt : 0.0);
    cr_assert(cnt == 0 || sum / cnt <= LOGIT_MEAN, "%s: mean |logit diff| %.4f > %.2f", path, sum / cnt, LOGIT_MEAN);
    if (g_want_hc >= 0) {
        st_stats ss;
        st_session_stats(gs, &ss);
        const st_store_figures *t = &ss.store;
        cr_assert_eq(t->host_cache_layers, g_want_hc);
        /* every load of a cached layer came from pinned memory; the file was read for the others only */
        cr_assert_geq(t->host_cache_loads, (uint64_t)g_want_hc, "%llu loads from the host cache", (unsigned long long)t->host_cache_loads);
        if (g_want_hc < t->n_layer) cr_assert_lt(t->host_cache_loads, t->loads);
        else cr_assert_eq(t->host_cache_loads, t->loads, "every layer cached: no load reads the file");
        cr_assert_gt(t->bytes_uploaded, t->bytes_read, "uploads %llu, reads %llu", (unsigned long long)t->bytes_uploaded,
                     (unsigned long long)t->bytes_read);
        fprintf(stderr, "host cache: %d layers, %llu of %llu loads from it; read %.1f MiB, uploaded %.1f MiB\n",
                t->host_cache_layers, (unsigned long long)t->host_cache_loads, (unsigned long long)t->loads,
                t->bytes_read / 1048576.0, t->bytes_uploaded / 1048576.0);
    }
    st_session_free(gs);
    st_session_free(cs);
    st_model_close(m);
    cJSON_Delete(j);
    no_validation_errors();
}

Test(vulkan_model, tiny_q8_0_greedy, .timeout = 240) {
    check_model(tu_source_path("assets/tiny-14m-q8_0.gguf"), tu_source_path("tests/data/tiny-14m-q8_0.llamacpp.json"), GREEDY_N, 0, 99);
}

/* 2 layer slots of device memory for 8 layers: streamed through the ring
 * with the prefetch threads uploading while the GPU computes */
Test(vulkan_model, tiny_q8_0_streamed, .timeout = 240) {
    check_model(tu_source_path("assets/tiny-14m-q8_0.gguf"), tu_source_path("tests/data/tiny-14m-q8_0.llamacpp.json"), 8, 2, 2);
}

/* The same with each layer's load split into 16 KiB chunks shared by 4
 * readers, each uploading from two pinned buffers asynchronously */
Test(vulkan_model, tiny_q8_0_streamed_chunks, .timeout = 240) {
    g_chunk = 16 << 10;
    g_readers = 4;
    check_model(tu_source_path("assets/tiny-14m-q8_0.gguf"), tu_source_path("tests/data/tiny-14m-q8_0.llamacpp.json"), 8, 2, 2);
}

/* The same with a host cache: 3 of the 8 layers kept in pinned host memory
 * (read once when the session starts, then one upload per load), the rest
 * read from the file as above; then all 8 */
Test(vulkan_model, tiny_q8_0_streamed_host_cache, .timeout = 240) {
    g_host_cache = 3 * 839680 + 4096; /* 3 of tiny-14m's 820 KiB layer images */
    g_want_hc = 3;
    check_model(tu_source_path("assets/tiny-14m-q8_0.gguf"), tu_source_path("tests/data/tiny-14m-q8_0.llamacpp.json"), 8, 2, 2);
}
Test(vulkan_model, tiny_q8_0_streamed_host_cache_all, .timeout = 240) {
    g_host_cache = 1ull << 30;
    g_want_hc = 8;
    check_model(tu_source_path("assets/tiny-14m-q8_0.gguf"), tu_source_path("tests/data/tiny-14m-q8_0.llamacpp.json"), 8, 2, 2);
}

/* the other quantizations (K-quants, Q4_0) when ../shared has them */
static void check_shared(const char *stem) {
    char model[256], refs[256];
    snprintf(model, sizeof model, "models/tiny-14m-%s.gguf", stem);
    snprintf(refs, sizeof refs, "refs/tiny-14m-%s.llamacpp.json", stem);
    char mp[512];
    snprintf(mp, sizeof mp, "%s", tu_shared_path(model));
    check_model(mp, tu_shared_path(refs), 8, 0, 99);
}
Test(vulkan_model, tiny_q4_0, .timeout = 240) { check_shared("q4_0"); }
Test(vulkan_model, tiny_q4_k_m, .timeout = 240) { check_shared("q4_k_m"); }
Test(vulkan_model, tiny_q5_k_m, .timeout = 240) { check_shared("q5_k_m"); }
Test(vulkan_model, tiny_q6_k, .timeout = 240) { check_shared("q6_k"); }

/* --backend vulkan with a device that does not exist: an error, not a crash */
Test(vulkan_model, bad_device) {
    need_device();
    st_vk_register();
    st_model_params mp;
    st_model_params_default(&mp);
    st_model *m = NULL;
    st_error err = {0};
    cr_assert_eq(st_model_open(tu_source_path("assets/tiny-14m-q8_0.gguf"), &mp, &m, &err), ST_OK, "%s", err.msg);
    st_session_params sp;
    st_session_params_default(&sp);
    sp.backend = ST_BACKEND_VULKAN;
    sp.device = 200;
    st_session *s = NULL;
    cr_assert_neq(st_session_new(m, &sp, &s, &err), ST_OK);
    cr_assert(strstr(err.msg, "device") != NULL, "message: %s", err.msg);
    st_model_close(m);
}

/* VRAM exhausted (STRATA_VK_VRAM_LIMIT makes the pool refuse device memory
 * beyond it, as a full device does): the model does not fit, so the first
 * pass fails with ST_ERR_NOMEM naming the sizes and the options, the
 * session stays usable (the same clear error again, no crash), and once the
 * device has room (the limit lifted, a new device context) the same model
 * runs. (Streaming cannot rescue this model: its output matrix and the
 * batch's logits outweigh its 8 small layers.) */
Test(vulkan_model, vram_exhausted, .timeout = 240) {
    need_device();
    st_vk_register();
    cr_assert_eq(setenv("STRATA_VK_VRAM_LIMIT", "13M", 1), 0); /* read when the device context opens: once per test process */
    st_model_params mp;
    st_model_params_default(&mp);
    st_model *m = NULL;
    st_error err = {0};
    cr_assert_eq(st_model_open(tu_source_path("assets/tiny-14m-q8_0.gguf"), &mp, &m, &err), ST_OK, "%s", err.msg);
    int32_t toks[4] = {1, 450, 4996, 2501};
    st_session_params sp;
    st_session_params_default(&sp);
    sp.n_ctx = 64;
    sp.backend = ST_BACKEND_VULKAN;
    sp.device = g_dev;
    st_session *s = NULL;
    st_status rc = st_session_new(m, &sp, &s, &err);
    if (rc == ST_OK) {
        for (int round = 0; round < 2; round++) {
            memset(&err, 0, sizeof err);
            rc = st_session_eval(s, toks, 4, false, &err);
            cr_assert_eq(rc, ST_ERR_NOMEM, "round %d: %d (%s)", round, rc, err.msg);
            cr_assert(strstr(err.msg, "device memory") && strstr(err.msg, "--vram-budget"), "message: %s", err.msg);
        }
        st_session_free(s);
    } else { /* refused at creation: the same error */
        cr_assert_eq(rc, ST_ERR_NOMEM, "%d (%s)", rc, err.msg);
        cr_assert(strstr(err.msg, "--vram-budget"), "message: %s", err.msg);
    }
    fprintf(stderr, "vram_exhausted: %s\n", err.msg);
    cr_assert_eq(unsetenv("STRATA_VK_VRAM_LIMIT"), 0);
    s = NULL;
    cr_assert_eq(st_session_new(m, &sp, &s, &err), ST_OK, "after: %s", err.msg);
    cr_assert_eq(st_session_eval(s, toks, 4, false, &err), ST_OK, "after: %s", err.msg);
    st_session_free(s);
    st_model_close(m);
    no_validation_errors();
}

#else /* built without Vulkan */

Test(vulkan, not_built) { cr_skip_test("built with -DSTRATA_VULKAN=OFF"); }

#endif
