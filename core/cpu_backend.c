/* cpu_backend.c — the llama forward pass on the CPU.
 *
 * Reads top to bottom like the math (llama2.c's run.c is the model), batched
 * over tokens for prompt processing:
 *
 *   x  += Wo · attention(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x))
 *   x  += Wdown · (silu(Wgate·n(x)) * Wup·n(x))
 *
 * Weights stay in their quantized type; activations are quantized once per
 * matrix product to the weight type's vec_dot_type and every output element
 * is one integer dot product (the same arithmetic as llama.cpp). The work of
 * each product is split over the thread pool by rows of the weight matrix. */
#include "backend.h"
#include "quant.h"
#include "threadpool.h"
#include "vec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cpu_be {
    st_backend base;
    st_hparams hp;
    int n_ctx, n_batch, n_embd_kv;
    bool kv_f32;
    st_threadpool *tp;

    int n_tok, pos0;          /* the batch in flight */
    float *x;                 /* [n_batch][n_embd] residual stream */
    float *xb;                /* [n_batch][n_embd] normed input / attention output */
    float *q;                 /* [n_batch][n_embd] */
    float *k, *v;             /* [n_batch][n_embd_kv] */
    float *hb, *hb2;          /* [n_batch][n_ff] */
    float *norm_w;            /* [n_embd] norm weights dequantized when not F32 */
    void *xq;                 /* quantized activations, [n_batch] rows of up to max(n_embd, n_ff) */
    size_t xq_row_cap;        /* bytes per row of xq */
    float *rope_cs;           /* [n_batch][n_rot] cos/sin pairs */
    uint8_t *kcache, *vcache; /* [n_layer][n_ctx][n_embd_kv] of F16 or F32 */
    size_t kv_elt;            /* bytes per cache element */
    void *qconv;              /* per thread: a query head converted to the cache type */
    float *vrow;              /* per thread: [2 * head_dim] attention accumulator */
} cpu_be;

/* ---------------------------------------------------------------- helpers */

static void rmsnorm(float *o, const float *x, const float *w, int n, float eps) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++) o[i] = (x[i] * scale) * w[i];
}

static const float *norm_weights(cpu_be *be, const st_tensor *t) {
    if (t->type == ST_TYPE_F32) return t->data;
    st_type_traits_get(t->type)->to_float(t->data, be->norm_w, t->ne0);
    return be->norm_w;
}

/* out[t][0..n) += bias, for T rows out_stride apart (Q/K/V biases). */
static void add_bias(cpu_be *be, const st_tensor *b, float *out, int n, int out_stride, int T) {
    const float *w = norm_weights(be, b); /* dequantized into norm_w ([n_embd]) unless F32 */
    for (int t = 0; t < T; t++) {
        float *o = out + (size_t)t * out_stride;
        for (int i = 0; i < n; i++) o[i] += w[i];
    }
}

/* ------------------------------------------------------- matrix products */

typedef struct {
    const st_tensor *w;
    const uint8_t *xq;   /* n_tok rows of the vec_dot_type, xq_stride apart */
    size_t xq_stride;
    float *out;          /* [n_tok][out_stride] */
    int out_stride;
    int n_tok;
    int rows_per_task;
    int tok_per_task;
    int n_row_tasks;
    st_vec_dot_fn dot;
    st_vec_dot_nc_fn dot_nc;
    st_gemm_repack_fn repack; /* NULL: no gemm kernel, use dot_nc */
    st_gemm_fn gemm;
    uint8_t *rp_buf;          /* per thread: ST_GEMM_ROWS repacked rows, rp_bytes each */
    size_t rp_bytes;
} matmul_job;

/* One task: a block of weight rows against a block of tokens. Decode (one
 * token): one vec_dot per row. Prompt: where the type has a gemm kernel, each
 * group of ST_GEMM_ROWS rows is repacked once into this thread's buffer (it
 * stays in L1/L2) and multiplied with all the task's tokens; otherwise (and
 * for the last rows short of a group) the tokens go in groups of up to
 * ST_VEC_DOT_NC_MAX through the multi-column kernel, which unpacks each weight
 * block once per group of tokens. */
static void matmul_task(void *p, int task, int thread) {
    const matmul_job *j = p;
    int rt = task % j->n_row_tasks, tt = task / j->n_row_tasks;
    int64_t r0 = (int64_t)rt * j->rows_per_task;
    int64_t r1 = r0 + j->rows_per_task;
    if (r1 > j->w->ne1) r1 = j->w->ne1;
    int t0 = tt * j->tok_per_task;
    int t1 = t0 + j->tok_per_task;
    if (t1 > j->n_tok) t1 = j->n_tok;
    const uint8_t *wd = j->w->data;
    const size_t rb = j->w->row_bytes;
    int n = (int)j->w->ne0;
    if (t1 - t0 == 1) {
        for (int64_t r = r0; r < r1; r++)
            j->dot(n, &j->out[(size_t)t0 * j->out_stride + r], wd + (size_t)r * rb, j->xq + (size_t)t0 * j->xq_stride);
        return;
    }
    const uint8_t *y0 = j->xq + (size_t)t0 * j->xq_stride;
    float *o0 = j->out + (size_t)t0 * j->out_stride;
    if (j->gemm) {
        uint8_t *buf = j->rp_buf + (size_t)thread * j->rp_bytes;
        for (; r0 + ST_GEMM_ROWS <= r1; r0 += ST_GEMM_ROWS) {
            j->repack(n, wd + (size_t)r0 * rb, rb, buf);
            /* the next group's rows come from memory while this one computes
             * (the repack would otherwise wait for them) */
            int64_t pr1 = r0 + 2 * ST_GEMM_ROWS;
            if (pr1 > j->w->ne1) pr1 = j->w->ne1;
            const uint8_t *pf0 = wd + (size_t)(r0 + ST_GEMM_ROWS) * rb, *pf1 = wd + (size_t)pr1 * rb;
            for (const uint8_t *pf = pf0; pf < pf1; pf += 64) __builtin_prefetch(pf, 0, 2);
            j->gemm(n, o0 + r0, (size_t)j->out_stride, buf, y0, j->xq_stride, t1 - t0);
        }
    }
    float s[ST_VEC_DOT_NC_MAX];
    for (int t = t0; t < t1; t += ST_VEC_DOT_NC_MAX) {
        int ny = t1 - t < ST_VEC_DOT_NC_MAX ? t1 - t : ST_VEC_DOT_NC_MAX;
        const uint8_t *y = j->xq + (size_t)t * j->xq_stride;
        float *o = j->out + (size_t)t * j->out_stride;
        for (int64_t r = r0; r < r1; r++) {
            j->dot_nc(n, s, wd + (size_t)r * rb, y, j->xq_stride, ny);
            for (int c = 0; c < ny; c++) o[(size_t)c * j->out_stride + r] = s[c];
        }
    }
}

/* Quantizes n_tok rows of x ([n_tok][n]) to the activation type of w. */
typedef struct {
    const float *x;
    int n;
    uint8_t *xq;
    size_t stride;
    st_from_float_fn from_float;
} quant_job;

static void quant_task(void *p, int t, int thread) {
    (void)thread;
    const quant_job *j = p;
    j->from_float(j->x + (size_t)t * j->n, j->xq + (size_t)t * j->stride, j->n);
}

static void quantize_input(cpu_be *be, st_type wtype, const float *x, int n, int n_tok) {
    const st_type_traits *vt = st_type_traits_get(st_type_traits_get(wtype)->vec_dot_type);
    quant_job qj = {x, n, be->xq, be->xq_row_cap, vt->from_float};
    st_tp_run(be->tp, quant_task, &qj, n_tok);
}

/* out[t][r] = dot(w row r, activation t) for the activations last quantized
 * by quantize_input (which must have used w's vec_dot_type). */
static void matmul(cpu_be *be, const st_tensor *w, float *out, int out_stride, int n_tok) {
    matmul_job j = {0};
    j.w = w;
    j.xq = be->xq;
    j.xq_stride = be->xq_row_cap;
    j.out = out;
    j.out_stride = out_stride;
    j.n_tok = n_tok;
    j.dot = st_type_traits_get(w->type)->vec_dot;
    j.dot_nc = st_type_traits_get(w->type)->vec_dot_nc;
    int nth = st_tp_n_threads(be->tp);
    const st_type_traits *tr = st_type_traits_get(w->type);
    /* repacking 8 rows costs about what 2-3 tokens of vec_dot_nc do */
    if (n_tok >= 4 && tr->gemm) {
        j.rp_bytes = ((size_t)(w->ne0 / tr->blck_size) * tr->gemm_block_bytes + 63) & ~(size_t)63;
        void *buf = NULL;
        if (posix_memalign(&buf, 64, j.rp_bytes * (size_t)nth) == 0) {
            j.rp_buf = buf;
            j.repack = tr->gemm_repack;
            j.gemm = tr->gemm;
        }
    }
    int64_t rows = w->ne1;
    /* decode: many small row chunks so threads finish together; prefill:
     * tiles of 16 rows x all tokens, so each weight row comes from memory
     * once (the activations, at most n_batch rows, stay in L2); tokens are
     * split too only where there are too few row tiles to share out */
    if (n_tok == 1) {
        int64_t chunks = (int64_t)nth * 8;
        int64_t rpt = (rows + chunks - 1) / chunks;
        if (rpt < 4) rpt = 4;
        j.rows_per_task = (int)rpt;
        j.tok_per_task = 1;
    } else {
        /* gemm: longer runs of row groups, so that prefetching the next group
         * overlaps most of them, where there are enough tiles to share out */
        j.rows_per_task = j.gemm && rows / 64 >= (int64_t)nth * 4 ? 64 : 16;
        j.tok_per_task = n_tok;
        if ((rows + 15) / 16 < (int64_t)nth * 4) j.tok_per_task = 8 * ST_VEC_DOT_NC_MAX;
    }
    j.n_row_tasks = (int)((rows + j.rows_per_task - 1) / j.rows_per_task);
    int n_tok_tasks = (n_tok + j.tok_per_task - 1) / j.tok_per_task;
    st_tp_run(be->tp, matmul_task, &j, j.n_row_tasks * n_tok_tasks);
    free(j.rp_buf);
}

/* ------------------------------------------------------------------ rope */

/* RoPE: pair i of each head (i < n_rot/2) rotates by
 * pos * scale * base^(-2i/n_rot), divided by the pair's frequency factor
 * where the model has them (Llama-3 rope scaling). The angle is built by
 * repeated multiplication, in float, exactly as ggml does, so positions far
 * into the context round the same way; with factors, as ggml's rope with
 * freq_factors: scale * (theta / factor[i]). cs holds (cos, sin) of pair i at
 * cs[2i], cs[2i+1]. */
static void rope_tables(cpu_be *be) {
    const st_hparams *hp = &be->hp;
    const float *ff = hp->rope_freq_factors;
    float theta_scale = powf(hp->rope_base, -2.0f / (float)hp->n_rot);
    for (int t = 0; t < be->n_tok; t++) {
        float *cs = be->rope_cs + (size_t)t * hp->n_rot;
        if (ff) {
            float theta = (float)(be->pos0 + t);
            for (int i = 0; i < hp->n_rot / 2; i++) {
                float a = hp->rope_scale * (theta / ff[i]);
                cs[2 * i] = cosf(a);
                cs[2 * i + 1] = sinf(a);
                theta *= theta_scale;
            }
            continue;
        }
        float theta = (float)(be->pos0 + t) * hp->rope_scale;
        for (int i = 0; i < hp->n_rot / 2; i++) {
            cs[2 * i] = cosf(theta);
            cs[2 * i + 1] = sinf(theta);
            theta *= theta_scale;
        }
    }
}

/* llama's "normal" RoPE on the GGUF layout: pair i is (2i, 2i+1). */
static void rope_apply(float *v, int n_heads, int head_dim, int n_rot, const float *cs) {
    for (int h = 0; h < n_heads; h++) {
        float *x = v + (size_t)h * head_dim;
        for (int i = 0; i < n_rot; i += 2) {
            float c = cs[i], s = cs[i + 1];
            float x0 = x[i], x1 = x[i + 1];
            x[i] = x0 * c - x1 * s;
            x[i + 1] = x0 * s + x1 * c;
        }
    }
}

/* NeoX RoPE (qwen2): pair i is (i, i + n_rot/2), same angles. */
static void rope_apply_neox(float *v, int n_heads, int head_dim, int n_rot, const float *cs) {
    int half = n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *x = v + (size_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            float c = cs[2 * i], s = cs[2 * i + 1];
            float x0 = x[i], x1 = x[i + half];
            x[i] = x0 * c - x1 * s;
            x[i + half] = x0 * s + x1 * c;
        }
    }
}

/* ------------------------------------------------------------- attention */

typedef struct {
    cpu_be *be;
    int il;
} attn_job;

static void *kv_at(cpu_be *be, uint8_t *cache, int il, int pos) {
    return cache + (((size_t)il * be->n_ctx + pos) * be->n_embd_kv) * be->kv_elt;
}

/* One task = one (token, head): softmax(q·K^T / sqrt(d)) · V over positions
 * 0..pos (causal; with a sliding window of W, pos-W+1..pos), in one pass
 * with an online softmax. The arithmetic follows llama.cpp's CPU flash
 * attention step for step (the query converted to the cache type for the K
 * dot products; for an F16 cache the weighted sum of V rows accumulates in
 * F16), because quantized models amplify tiny numeric differences through
 * their activation rounding, and we compare against llama.cpp's outputs. */
static void attn_task(void *p, int task, int thread) {
    const attn_job *j = p;
    cpu_be *be = j->be;
    const st_hparams *hp = &be->hp;
    int hd = hp->head_dim;
    int t = task / hp->n_head, h = task % hp->n_head;
    int kvh = h / (hp->n_head / hp->n_head_kv);
    int pos = be->pos0 + t;
    st_type ct = be->kv_f32 ? ST_TYPE_F32 : ST_TYPE_F16;
    const st_type_traits *tr = st_type_traits_get(ct);
    void *qc = (uint8_t *)be->qconv + (size_t)thread * hd * sizeof(float);
    float *acc = be->vrow + (size_t)thread * hd * 2; /* F32 accumulator, or F16 one in its first half */
    st_fp16 *acc16 = (st_fp16 *)acc;
    const float *q = be->q + (size_t)t * hp->n_embd + (size_t)h * hd;
    tr->from_float(q, qc, hd);
    float scale = 1.0f / sqrtf((float)hd);
    float M = -INFINITY, S = 0.0f;
    if (be->kv_f32) memset(acc, 0, (size_t)hd * sizeof(float));
    else memset(acc16, 0, (size_t)hd * sizeof(st_fp16));
    int p_lo = hp->n_swa > 0 && pos - hp->n_swa + 1 > 0 ? pos - hp->n_swa + 1 : 0;
    for (int p2 = p_lo; p2 <= pos; p2++) {
        const uint8_t *k = (const uint8_t *)kv_at(be, be->kcache, j->il, p2) + (size_t)kvh * hd * be->kv_elt;
        const uint8_t *v = (const uint8_t *)kv_at(be, be->vcache, j->il, p2) + (size_t)kvh * hd * be->kv_elt;
        float s;
        tr->vec_dot(hd, &s, k, qc);
        s *= scale;
        float ms = 1.0f, vs = 1.0f;
        if (s > M) {
            float Mold = M;
            M = s;
            ms = expf(Mold - M);
            if (be->kv_f32) for (int d = 0; d < hd; d++) acc[d] *= ms;
            else st_vec_scale_f16(hd, acc16, ms);
        } else {
            vs = expf(s - M);
        }
        if (be->kv_f32) {
            const float *vf = (const float *)v;
            for (int d = 0; d < hd; d++) acc[d] += vf[d] * vs;
        } else {
            st_vec_mad_f16(hd, acc16, (const st_fp16 *)v, vs);
        }
        S = S * ms + vs;
    }
    float inv = S == 0.0f ? 0.0f : 1.0f / S;
    float *out = be->xb + (size_t)t * hp->n_embd + (size_t)h * hd;
    if (be->kv_f32) for (int d = 0; d < hd; d++) out[d] = acc[d] * inv;
    else for (int d = 0; d < hd; d++) out[d] = st_fp16_to_fp32(acc16[d]) * inv;
}

/* ----------------------------------------------------------- elementwise */

typedef struct { float *g; const float *u; size_t n; } swiglu_job;

static void swiglu_task(void *p, int task, int thread) {
    (void)thread;
    const swiglu_job *j = p;
    size_t chunk = (j->n + 15) / 16;
    size_t i0 = (size_t)task * chunk, i1 = i0 + chunk;
    if (i1 > j->n) i1 = j->n;
    for (size_t i = i0; i < i1; i++) {
        float x = j->g[i];
        j->g[i] = x / (1.0f + expf(-x)) * j->u[i];
    }
}

/* ------------------------------------------------------- backend methods */

static st_status cpu_begin(st_backend *b, const float *x, int n_tok, int pos0, st_error *err) {
    cpu_be *be = (cpu_be *)b;
    if (n_tok < 1 || n_tok > be->n_batch)
        return st_error_set(err, ST_ERR_ARG, "batch of %d tokens (expected 1..%d)", n_tok, be->n_batch);
    if (pos0 < 0 || pos0 + n_tok > be->n_ctx)
        return st_error_set(err, ST_ERR_CONTEXT, "context full: %d + %d tokens exceed the context of %d",
                            pos0, n_tok, be->n_ctx);
    be->n_tok = n_tok;
    be->pos0 = pos0;
    memcpy(be->x, x, (size_t)n_tok * be->hp.n_embd * sizeof(float));
    rope_tables(be);
    return ST_OK;
}

static st_status cpu_layer(st_backend *b, int il, const st_layer *L, st_error *err) {
    (void)err;
    cpu_be *be = (cpu_be *)b;
    const st_hparams *hp = &be->hp;
    int T = be->n_tok, D = hp->n_embd, DKV = be->n_embd_kv, F = hp->n_ff;

    /* attention */
    const float *w = norm_weights(be, &L->attn_norm);
    for (int t = 0; t < T; t++) rmsnorm(be->xb + (size_t)t * D, be->x + (size_t)t * D, w, D, hp->rms_eps);
    /* Q, K and V share the quantized input when their types agree */
    quantize_input(be, L->wq.type, be->xb, D, T);
    matmul(be, &L->wq, be->q, D, T);
    if (st_type_traits_get(L->wk.type)->vec_dot_type != st_type_traits_get(L->wq.type)->vec_dot_type)
        quantize_input(be, L->wk.type, be->xb, D, T);
    matmul(be, &L->wk, be->k, DKV, T);
    if (st_type_traits_get(L->wv.type)->vec_dot_type != st_type_traits_get(L->wk.type)->vec_dot_type)
        quantize_input(be, L->wv.type, be->xb, D, T);
    matmul(be, &L->wv, be->v, DKV, T);
    if (L->bq.data) { /* qwen2: biases on the projections, before rope */
        add_bias(be, &L->bq, be->q, D, D, T);
        add_bias(be, &L->bk, be->k, DKV, DKV, T);
        add_bias(be, &L->bv, be->v, DKV, DKV, T);
    }

    st_type ct = be->kv_f32 ? ST_TYPE_F32 : ST_TYPE_F16;
    const st_type_traits *ctr = st_type_traits_get(ct);
    void (*rope)(float *, int, int, int, const float *) = hp->rope_type == ST_ROPE_NEOX ? rope_apply_neox : rope_apply;
    for (int t = 0; t < T; t++) {
        const float *cs = be->rope_cs + (size_t)t * hp->n_rot;
        rope(be->q + (size_t)t * D, hp->n_head, hp->head_dim, hp->n_rot, cs);
        rope(be->k + (size_t)t * DKV, hp->n_head_kv, hp->head_dim, hp->n_rot, cs);
        ctr->from_float(be->k + (size_t)t * DKV, kv_at(be, be->kcache, il, be->pos0 + t), DKV);
        ctr->from_float(be->v + (size_t)t * DKV, kv_at(be, be->vcache, il, be->pos0 + t), DKV);
    }
    attn_job aj = {be, il};
    st_tp_run(be->tp, attn_task, &aj, T * hp->n_head);

    quantize_input(be, L->wo.type, be->xb, D, T);
    matmul(be, &L->wo, be->q, D, T); /* q is free now: use it for the projection */
    for (size_t i = 0; i < (size_t)T * D; i++) be->x[i] += be->q[i];

    /* feed-forward (SwiGLU) */
    w = norm_weights(be, &L->ffn_norm);
    for (int t = 0; t < T; t++) rmsnorm(be->xb + (size_t)t * D, be->x + (size_t)t * D, w, D, hp->rms_eps);
    quantize_input(be, L->w_gate.type, be->xb, D, T);
    matmul(be, &L->w_gate, be->hb, F, T);
    if (st_type_traits_get(L->w_up.type)->vec_dot_type != st_type_traits_get(L->w_gate.type)->vec_dot_type)
        quantize_input(be, L->w_up.type, be->xb, D, T);
    matmul(be, &L->w_up, be->hb2, F, T);
    swiglu_job sj = {be->hb, be->hb2, (size_t)T * F};
    st_tp_run(be->tp, swiglu_task, &sj, 16);
    quantize_input(be, L->w_down.type, be->hb, F, T);
    matmul(be, &L->w_down, be->q, D, T);
    for (size_t i = 0; i < (size_t)T * D; i++) be->x[i] += be->q[i];
    return ST_OK;
}

static st_status cpu_end(st_backend *b, const st_tensor *out_norm, const st_tensor *out, float *logits,
                         bool all, st_error *err) {
    (void)err;
    cpu_be *be = (cpu_be *)b;
    const st_hparams *hp = &be->hp;
    int D = hp->n_embd;
    int t0 = all ? 0 : be->n_tok - 1;
    int n = be->n_tok - t0;
    const float *w = norm_weights(be, out_norm);
    for (int t = t0; t < be->n_tok; t++)
        rmsnorm(be->xb + (size_t)(t - t0) * D, be->x + (size_t)t * D, w, D, hp->rms_eps);
    quantize_input(be, out->type, be->xb, D, n);
    matmul(be, out, logits, hp->n_vocab, n);
    return ST_OK;
}

static void cpu_kv_truncate(st_backend *b, int n_past) {
    (void)b;
    (void)n_past; /* positions >= n_past are simply overwritten by the next batch */
}

static void *cpu_slot_alloc(st_backend *b, size_t bytes) {
    (void)b;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
    return p;
}

static void cpu_slot_free(st_backend *b, void *slot) {
    (void)b;
    free(slot);
}

static st_status cpu_slot_upload(st_backend *b, void *slot, size_t off, const void *src, size_t n, st_error *err) {
    (void)b;
    (void)err;
    memcpy((uint8_t *)slot + off, src, n);
    return ST_OK;
}

static void cpu_destroy(st_backend *b) {
    cpu_be *be = (cpu_be *)b;
    if (!be) return;
    free(be->x); free(be->xb); free(be->q); free(be->k); free(be->v);
    free(be->hb); free(be->hb2); free(be->norm_w); free(be->xq); free(be->rope_cs);
    free(be->kcache); free(be->vcache); free(be->qconv); free(be->vrow);
    free(be);
}

static const st_backend_ops cpu_ops = {
    .name = "cpu",
    .slot_alloc = cpu_slot_alloc,
    .slot_free = cpu_slot_free,
    .slot_upload = cpu_slot_upload,
    .begin = cpu_begin,
    .layer = cpu_layer,
    .end = cpu_end,
    .kv_truncate = cpu_kv_truncate,
    .destroy = cpu_destroy,
};

static void *xalloc(size_t n, bool *ok) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) { *ok = false; return NULL; }
    return p;
}

/* Bytes of one row of quantized activations: the largest row any weight
 * type needs (Q8_K rows are the biggest, 292 B / 256). */
static size_t xq_row_cap(const st_hparams *hp) {
    size_t D = (size_t)hp->n_embd, F = (size_t)hp->n_ff;
    size_t maxn = D > F ? D : F;
    size_t cap = 0;
    for (int t = 0; t < ST_TYPE_COUNT; t++) {
        const st_type_traits *tr = st_type_traits_get((st_type)t);
        if (!tr->name || !tr->supported) continue;
        size_t r = st_row_size(tr->vec_dot_type, (int64_t)maxn);
        if (r > cap) cap = r;
    }
    return (cap + 63) & ~(size_t)63;
}

/* Kept next to st_cpu_backend_new's allocations: the session's memory check
 * compares these figures with the available memory before allocating. */
void st_cpu_backend_bytes(const st_hparams *hp, int n_ctx, int n_batch, bool kv_f32, int n_threads,
                          uint64_t *kv_bytes, uint64_t *buf_bytes) {
    uint64_t B = (uint64_t)n_batch, D = (uint64_t)hp->n_embd, F = (uint64_t)hp->n_ff;
    uint64_t DKV = (uint64_t)hp->head_dim * (uint64_t)hp->n_head_kv, T = (uint64_t)(n_threads > 0 ? n_threads : 1);
    *kv_bytes = 2 * (uint64_t)hp->n_layer * (uint64_t)n_ctx * DKV * (kv_f32 ? 4 : 2);
    *buf_bytes = B * (3 * D + 2 * DKV + 2 * F) * 4 + D * 4 + B * xq_row_cap(hp) + B * (uint64_t)hp->n_rot * 4 +
                 T * (uint64_t)hp->head_dim * 12;
}

st_status st_cpu_backend_new(const st_hparams *hp, int n_ctx, int n_batch, bool kv_f32, st_threadpool *tp,
                             st_backend **out, st_error *err) {
    *out = NULL;
    cpu_be *be = calloc(1, sizeof *be);
    if (!be) return st_error_set(err, ST_ERR_NOMEM, "cpu backend: out of memory");
    be->base.ops = &cpu_ops;
    be->hp = *hp;
    be->n_ctx = n_ctx;
    be->n_batch = n_batch;
    be->kv_f32 = kv_f32;
    be->tp = tp;
    be->n_embd_kv = hp->head_dim * hp->n_head_kv;
    be->kv_elt = kv_f32 ? 4 : 2;
    int nth = st_tp_n_threads(tp);
    size_t B = (size_t)n_batch, D = (size_t)hp->n_embd, F = (size_t)hp->n_ff, DKV = (size_t)be->n_embd_kv;
    be->xq_row_cap = xq_row_cap(hp);
    bool ok = true;
    be->x = xalloc(B * D * 4, &ok);
    be->xb = xalloc(B * D * 4, &ok);
    be->q = xalloc(B * D * 4, &ok);
    be->k = xalloc(B * DKV * 4, &ok);
    be->v = xalloc(B * DKV * 4, &ok);
    be->hb = xalloc(B * F * 4, &ok);
    be->hb2 = xalloc(B * F * 4, &ok);
    be->norm_w = xalloc(D * 4, &ok);
    be->xq = xalloc(B * be->xq_row_cap, &ok);
    be->rope_cs = xalloc(B * (size_t)hp->n_rot * 4, &ok);
    size_t kv_bytes = (size_t)hp->n_layer * (size_t)n_ctx * DKV * be->kv_elt;
    be->kcache = xalloc(kv_bytes, &ok);
    be->vcache = xalloc(kv_bytes, &ok);
    be->qconv = xalloc((size_t)nth * (size_t)hp->head_dim * 4, &ok);
    be->vrow = xalloc((size_t)nth * (size_t)hp->head_dim * 8, &ok);
    if (!ok) {
        cpu_destroy(&be->base);
        return st_error_set(err, ST_ERR_NOMEM, "cpu backend: cannot allocate buffers for a context of %d (KV cache %zu MiB)",
                            n_ctx, 2 * kv_bytes >> 20);
    }
    *out = &be->base;
    return ST_OK;
}
