/* cmd_genmodel.c — `strata genmodel`: write a llama or qwen2 GGUF of a named
 * shape with random weights, for benchmarks (speed depends on shapes and
 * types only) and for tests of each architecture and its options (Q/K/V
 * biases, Llama-3 rope scaling, sliding window, tied output).
 *
 * The file is laid out as llama.cpp writes it (names, order, metadata, the
 * per-tensor type mix of each file type), with the vocabulary copied from a
 * GGUF that has one (the bundled tiny model's Llama-2 vocabulary by default).
 *
 * Weights are N(0, 0.02) values from a seeded generator: every row has its own
 * xoshiro256** state derived from (seed, tensor, row), so the output does not
 * depend on the number of threads. Normal values come from a 65536-entry
 * table of the inverse normal CDF at the bin midpoints (rescaled to unit
 * variance), indexed by 16 random bits: four values per 64-bit draw.
 *
 * Tensor data is produced in chunks of rows that worker threads quantize in
 * parallel into one of two buffers while the main thread writes the other to
 * the file, so memory stays at a few tens of MiB whatever the model size. */
#include "app.h"
#include "args.h"
#include "strata.h"
#include "model.h" /* st_rope_llama3_factors */
#include "quant.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD "genmodel"

/* ---------------------------------------------------------------------------
 * shapes and file types */
typedef struct {
    const char *name;
    int n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
} preset;

static const preset k_presets[] = {
    {"tinyllama-1.1b", 2048, 22, 32, 4, 5632, 2048},
    {"llama2-7b", 4096, 32, 32, 32, 11008, 4096},
    /* small enough for tests; row lengths are multiples of 256 for the K types */
    {"tiny", 256, 4, 8, 4, 768, 512},
};

typedef enum { FT_F32, FT_F16, FT_Q8_0, FT_Q4_0, FT_Q4_K_M } ftype;

typedef struct {
    const char *name;
    ftype ft;
    uint32_t llama_ftype; /* general.file_type: llama.cpp's LLAMA_FTYPE_* */
} ftype_info;

static const ftype_info k_ftypes[] = {
    {"F32", FT_F32, 0}, {"F16", FT_F16, 1}, {"Q4_0", FT_Q4_0, 2}, {"Q8_0", FT_Q8_0, 7}, {"Q4_K_M", FT_Q4_K_M, 15},
};

/* llama.cpp's use_more_bits(): the layers of a Q4_K_M model whose attn_v and
 * ffn_down get Q6_K. */
static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

typedef enum { K_TOKEN_EMBD, K_OUTPUT, K_NORM, K_ATTN_V, K_FFN_DOWN, K_MATRIX, K_BIAS, K_ROPE_FREQS } tkind;

/* the type llama.cpp gives a tensor of this kind in layer il */
static st_type tensor_type(ftype ft, tkind k, int il, int n_layer) {
    if (k == K_NORM || k == K_BIAS || k == K_ROPE_FREQS) return ST_TYPE_F32;
    switch (ft) {
    case FT_F32: return ST_TYPE_F32;
    case FT_F16: return ST_TYPE_F16;
    case FT_Q8_0: return ST_TYPE_Q8_0;
    case FT_Q4_0: return k == K_OUTPUT ? ST_TYPE_Q6_K : ST_TYPE_Q4_0;
    case FT_Q4_K_M:
        if (k == K_OUTPUT) return ST_TYPE_Q6_K;
        if ((k == K_ATTN_V || k == K_FFN_DOWN) && use_more_bits(il, n_layer)) return ST_TYPE_Q6_K;
        return ST_TYPE_Q4_K;
    }
    return ST_TYPE_F32;
}

typedef struct {
    char name[64];
    st_type type;
    int n_dims;
    int64_t ne[2];   /* ne[0]: row length, ne[1]: rows */
    bool ones;       /* norm weights: all 1.0 */
    const float *values; /* F32 data given (rope_freqs.weight), one row */
    uint64_t seed_index; /* the tensor's random stream */
    size_t row_size; /* bytes of one row in `type` */
    uint64_t bytes;
} tdesc;

/* ---------------------------------------------------------------------------
 * random numbers */
static inline uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct { uint64_t s[4]; } xoshiro;

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t xo_next(xoshiro *r) { /* xoshiro256** */
    uint64_t *s = r->s;
    const uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return res;
}

static void xo_seed(xoshiro *r, uint64_t seed, uint64_t tensor, uint64_t row) {
    uint64_t x = seed ^ (tensor * 0xD1B54A32D192ED03ull) ^ (row * 0x8CB92BA72F3D8DD7ull);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

#define NTAB 65536
static float g_normal[NTAB];

/* Phi^-1(p) by bisection on erfc (double precision; only used for the table) */
static double inv_normal_cdf(double p) {
    double lo = -10, hi = 10;
    for (int it = 0; it < 80; it++) {
        double mid = 0.5 * (lo + hi);
        if (0.5 * erfc(-mid / sqrt(2.0)) < p) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}

static void normal_table_init(void) {
    /* the table is symmetric: compute one half, mirror it */
    double var = 0;
    for (int i = 0; i < NTAB / 2; i++) {
        double v = inv_normal_cdf((i + 0.5) / NTAB);
        g_normal[i] = (float)v;
        g_normal[NTAB - 1 - i] = (float)-v;
        var += 2 * v * v;
    }
    float k = (float)(1.0 / sqrt(var / NTAB)); /* exact unit variance */
    for (int i = 0; i < NTAB; i++) g_normal[i] *= k;
}

static void fill_normal(float *x, int64_t n, float std, xoshiro *r) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint64_t b = xo_next(r);
        x[i + 0] = std * g_normal[b & 0xffff];
        x[i + 1] = std * g_normal[(b >> 16) & 0xffff];
        x[i + 2] = std * g_normal[(b >> 32) & 0xffff];
        x[i + 3] = std * g_normal[b >> 48];
    }
    if (i < n) {
        uint64_t b = xo_next(r);
        for (; i < n; i++, b >>= 16) x[i] = std * g_normal[b & 0xffff];
    }
}

/* ---------------------------------------------------------------------------
 * fast K-quant encoders
 *
 * The reference Q4_K/Q6_K quantizers search for the best scale of every
 * sub-block (about 10 Melem/s per core), which would make a 7B file take many
 * minutes. Weights here are random, so the rounding quality does not matter,
 * only the format: these encoders take the sub-block range directly (min/max
 * for Q4_K, max magnitude for Q6_K). They are checked against the core's
 * dequantizers before use (fast_quant_selftest) and --exact-quant uses the
 * reference quantizers instead. */
static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

static void fast_q4_K(const float *x, st_block_q4_K *y, int64_t n) {
    for (int64_t b = 0; b < n / ST_QK_K; b++, x += ST_QK_K, y++) {
        float sc[8], mn[8], max_sc = 0, max_mn = 0;
        for (int j = 0; j < 8; j++) {
            float lo = x[j * 32], hi = x[j * 32];
            for (int l = 1; l < 32; l++) {
                float v = x[j * 32 + l];
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
            if (lo > 0) lo = 0; /* the offset is a non-negative min subtracted */
            sc[j] = (hi - lo) / 15.0f;
            mn[j] = -lo;
            if (sc[j] > max_sc) max_sc = sc[j];
            if (mn[j] > max_mn) max_mn = mn[j];
        }
        const float d = max_sc / 63.0f, dmin = max_mn / 63.0f;
        y->d = st_fp32_to_fp16(d);
        y->dmin = st_fp32_to_fp16(dmin);
        const float dq = st_fp16_to_fp32(y->d), dmq = st_fp16_to_fp32(y->dmin);
        uint8_t ls[8], lm[8];
        for (int j = 0; j < 8; j++) {
            ls[j] = (uint8_t)clampi(dq > 0 ? (int)lrintf(sc[j] / dq) : 0, 0, 63);
            lm[j] = (uint8_t)clampi(dmq > 0 ? (int)lrintf(mn[j] / dmq) : 0, 0, 63);
        }
        for (int j = 0; j < 4; j++) {
            y->scales[j] = (uint8_t)(ls[j] | ((ls[j + 4] >> 4) << 6));
            y->scales[j + 4] = (uint8_t)(lm[j] | ((lm[j + 4] >> 4) << 6));
            y->scales[j + 8] = (uint8_t)((ls[j + 4] & 0xF) | ((lm[j + 4] & 0xF) << 4));
        }
        uint8_t q[ST_QK_K];
        for (int j = 0; j < 8; j++) {
            const float s = dq * ls[j], m = dmq * lm[j], inv = s > 0 ? 1.0f / s : 0.0f;
            for (int l = 0; l < 32; l++) q[j * 32 + l] = (uint8_t)clampi((int)lrintf((x[j * 32 + l] + m) * inv), 0, 15);
        }
        for (int c = 0; c < 4; c++) /* 64 values per 32 bytes: low nibbles first sub-block */
            for (int l = 0; l < 32; l++) y->qs[c * 32 + l] = (uint8_t)(q[c * 64 + l] | (q[c * 64 + 32 + l] << 4));
    }
}

static void fast_q6_K(const float *x, st_block_q6_K *y, int64_t n) {
    for (int64_t b = 0; b < n / ST_QK_K; b++, x += ST_QK_K, y++) {
        float sc[16], max_abs_sc = 0;
        for (int j = 0; j < 16; j++) {
            float amax = 0;
            for (int l = 0; l < 16; l++) {
                float a = fabsf(x[j * 16 + l]);
                amax = a > amax ? a : amax;
            }
            sc[j] = amax / 31.0f;
            if (sc[j] > max_abs_sc) max_abs_sc = sc[j];
        }
        const float d = max_abs_sc / 127.0f;
        y->d = st_fp32_to_fp16(d);
        const float dq = st_fp16_to_fp32(y->d);
        uint8_t q[ST_QK_K];
        for (int j = 0; j < 16; j++) {
            int ls = clampi(dq > 0 ? (int)lrintf(sc[j] / dq) : 0, 0, 127);
            y->scales[j] = (int8_t)ls;
            const float s = dq * ls, inv = s > 0 ? 1.0f / s : 0.0f;
            for (int l = 0; l < 16; l++) q[j * 16 + l] = (uint8_t)(clampi((int)lrintf(x[j * 16 + l] * inv), -32, 31) + 32);
        }
        for (int h = 0; h < 2; h++) { /* two halves of 128: 64 bytes of ql, 32 of qh each */
            const uint8_t *qq = q + h * 128;
            uint8_t *ql = y->ql + h * 64, *qh = y->qh + h * 32;
            for (int l = 0; l < 32; l++) {
                const uint8_t q1 = qq[l], q2 = qq[l + 32], q3 = qq[l + 64], q4 = qq[l + 96];
                ql[l] = (uint8_t)((q1 & 0xF) | ((q3 & 0xF) << 4));
                ql[l + 32] = (uint8_t)((q2 & 0xF) | ((q4 & 0xF) << 4));
                qh[l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
            }
        }
    }
}

static bool g_fast_quant = true;

static size_t quantize_row(st_type t, const float *x, void *out, int64_t n) {
    if (g_fast_quant && t == ST_TYPE_Q4_K) { fast_q4_K(x, out, n); return st_row_size(t, n); }
    if (g_fast_quant && t == ST_TYPE_Q6_K) { fast_q6_K(x, out, n); return st_row_size(t, n); }
    return st_quantize_row(t, x, out, n);
}

/* Round trip through the core's reference dequantizer: the error of the fast
 * encoders must be close to the reference quantizer's. */
static bool fast_quant_selftest(void) {
    enum { N = 4 * ST_QK_K };
    static float x[N], y[N];
    static uint8_t q[N * 2];
    xoshiro r = {{1, 2, 3, 4}};
    for (int it = 0; it < 8; it++) xo_next(&r);
    fill_normal(x, N, 0.02f, &r);
    x[5] = 0.3f; /* an outlier, and a sub-block of one sign */
    for (int i = 512; i < 544; i++) x[i] = fabsf(x[i]) + 0.01f;
    const st_type types[2] = {ST_TYPE_Q4_K, ST_TYPE_Q6_K};
    for (int k = 0; k < 2; k++) {
        const st_type_traits *tr = st_type_traits_ref(types[k]);
        if (!tr || !tr->to_float) return false;
        double e_fast = 0, e_ref = 0;
        if (types[k] == ST_TYPE_Q4_K) fast_q4_K(x, (st_block_q4_K *)q, N);
        else fast_q6_K(x, (st_block_q6_K *)q, N);
        tr->to_float(q, y, N);
        for (int i = 0; i < N; i++) e_fast += (double)(x[i] - y[i]) * (x[i] - y[i]);
        if (st_quantize_row(types[k], x, q, N) == 0) return false;
        tr->to_float(q, y, N);
        for (int i = 0; i < N; i++) e_ref += (double)(x[i] - y[i]) * (x[i] - y[i]);
        if (!(e_fast <= 2.0 * e_ref + 1e-12)) return false;
    }
    return true;
}

/* ---------------------------------------------------------------------------
 * worker pool: fills a buffer with rows [row0, row0+nrows) of one tensor */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv_job, cv_done;
    uint64_t job_id;   /* bumped for every job */
    int n_busy;        /* workers still on the current job */
    bool quit;
    int n_workers;
    /* the job */
    const tdesc *t;
    uint64_t tensor_index, seed; /* tensor_index: the tdesc's seed_index */
    int64_t row0, nrows;
    uint8_t *out;
    atomic_int_fast64_t next; /* next row (relative) to take */
    atomic_int failed;
} pool;

#define ROWS_PER_GRAB 4

static void do_rows(pool *p, float *scratch) {
    const tdesc *t = p->t;
    const int64_t n = t->ne[0];
    for (;;) {
        int64_t r0 = atomic_fetch_add(&p->next, ROWS_PER_GRAB);
        if (r0 >= p->nrows) break;
        int64_t r1 = r0 + ROWS_PER_GRAB < p->nrows ? r0 + ROWS_PER_GRAB : p->nrows;
        for (int64_t r = r0; r < r1; r++) {
            uint8_t *dst = p->out + (size_t)r * t->row_size;
            if (t->ones) {
                for (int64_t j = 0; j < n; j++) scratch[j] = 1.0f;
                memcpy(dst, scratch, (size_t)n * sizeof(float));
                continue;
            }
            if (t->values) {
                memcpy(dst, t->values, (size_t)n * sizeof(float));
                continue;
            }
            xoshiro rng;
            xo_seed(&rng, p->seed, p->tensor_index, (uint64_t)(p->row0 + r));
            fill_normal(scratch, n, 0.02f, &rng);
            if (t->type == ST_TYPE_F32) memcpy(dst, scratch, (size_t)n * sizeof(float));
            else if (quantize_row(t->type, scratch, dst, n) != t->row_size) atomic_store(&p->failed, 1);
        }
    }
}

typedef struct { pool *p; float *scratch; } worker_arg;

static void *worker_main(void *arg) {
    worker_arg *wa = arg;
    pool *p = wa->p;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->job_id == seen) pthread_cond_wait(&p->cv_job, &p->mu);
        if (p->quit) break;
        seen = p->job_id;
        pthread_mutex_unlock(&p->mu);
        do_rows(p, wa->scratch);
        pthread_mutex_lock(&p->mu);
        if (--p->n_busy == 0) pthread_cond_signal(&p->cv_done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void pool_start(pool *p, const tdesc *t, uint64_t ti, uint64_t seed, int64_t row0, int64_t nrows, uint8_t *out) {
    pthread_mutex_lock(&p->mu);
    p->t = t;
    p->tensor_index = ti;
    p->seed = seed;
    p->row0 = row0;
    p->nrows = nrows;
    p->out = out;
    atomic_store(&p->next, 0);
    p->n_busy = p->n_workers;
    p->job_id++;
    pthread_cond_broadcast(&p->cv_job);
    pthread_mutex_unlock(&p->mu);
}

static void pool_wait(pool *p) {
    pthread_mutex_lock(&p->mu);
    while (p->n_busy > 0) pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

/* ---------------------------------------------------------------------------
 * command */
static void help(void) {
    printf("usage: strata genmodel --preset NAME --type TYPE -o OUT.gguf [options]\n"
           "\n"
           "Writes a llama or qwen2 GGUF with random weights (normal, std 0.02; norms 1.0)\n"
           "in the layout, metadata and per-tensor type mix that llama.cpp uses, for\n"
           "benchmarks and tests.\n"
           "\n"
           "  --preset NAME     tinyllama-1.1b (2048 wide, 22 layers, 32/4 heads, ffn 5632),\n"
           "                    llama2-7b (4096 wide, 32 layers, 32/32 heads, ffn 11008),\n"
           "                    tiny (256 wide, 4 layers, 8/4 heads, ffn 768)\n"
           "  --type TYPE       F32 | F16 | Q8_0 | Q4_0 | Q4_K_M (as llama.cpp mixes them:\n"
           "                    Q4_0 and Q4_K_M keep output.weight in Q6_K; Q4_K_M also\n"
           "                    attn_v and ffn_down of about half the layers)\n"
           "  -o, --output FILE the GGUF to write (replaced if it exists)\n"
           "      --seed N      random seed (default 42); same seed, same file\n"
           "      --layers N    override the number of layers\n"
           "      --vocab FILE  copy the tokenizer.* keys from this GGUF (default: the\n"
           "                    bundled tiny-14m model, which has the Llama-2 vocabulary;\n"
           "                    for qwen2: ../shared/refs/tokenizer/ggml-vocab-qwen2.gguf)\n"
           "      --arch ARCH   llama (default) or qwen2 (Q/K/V biases, NeoX rope, rope\n"
           "                    base 1e6, rms eps 1e-6); keys are written as ARCH.*\n"
           "      --rope-scaling llama3\n"
           "                    Llama-3.1 rope scaling: rope.scaling.type/factor (8)/\n"
           "                    low_freq_factor (1)/high_freq_factor (4)/\n"
           "                    original_context_length (8192) keys, rope base 500000,\n"
           "                    and the rope_freqs.weight tensor of the factors\n"
           "      --sliding-window W  attention.sliding_window = W (Mistral-style)\n"
           "      --tied        no output.weight: the LM head is token_embd.weight\n"
           "      --exact-quant use the reference quantizers for Q4_K/Q6_K (best rounding,\n"
           "                    about 10x slower) instead of the fast range-based encoders\n"
           "  -t, --threads N   quantizing threads (default: online CPUs, at most 16)\n"
           "  -h, --help        this text\n");
}

static double now_s(void) { return st_now_ns() / 1e9; }

int cmd_genmodel(int argc, char **argv) {
    const char *preset_name = NULL, *type_name = NULL, *out_path = NULL, *vocab_path = NULL;
    const char *arch = "llama", *rope_scaling = NULL;
    uint64_t seed = 42;
    long layers = 0, threads = 0, swa = 0;
    bool exact_quant = false, tied = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
#define VAL() do { if (!(v = arg_value(argc, argv, &i, CMD))) return 2; } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { help(); return 0; }
        else if (!strcmp(a, "--preset")) { VAL(); preset_name = v; }
        else if (!strcmp(a, "--type")) { VAL(); type_name = v; }
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) { VAL(); out_path = v; }
        else if (!strcmp(a, "--vocab")) { VAL(); vocab_path = v; }
        else if (!strcmp(a, "--exact-quant")) exact_quant = true;
        else if (!strcmp(a, "--tied")) tied = true;
        else if (!strcmp(a, "--arch")) {
            VAL();
            if (strcmp(v, "llama") && strcmp(v, "qwen2")) {
                fprintf(stderr, "strata " CMD ": unknown architecture '%s' (known: llama, qwen2)\n", v);
                return 2;
            }
            arch = v;
        }
        else if (!strcmp(a, "--rope-scaling")) {
            VAL();
            if (strcmp(v, "llama3")) {
                fprintf(stderr, "strata " CMD ": unknown rope scaling '%s' (known: llama3)\n", v);
                return 2;
            }
            rope_scaling = v;
        }
        else if (!strcmp(a, "--sliding-window")) { VAL(); if (!arg_int(CMD, a, v, 1, 1 << 24, &swa)) return 2; }
        else if (!strcmp(a, "--layers")) { VAL(); if (!arg_int(CMD, a, v, 1, 4096, &layers)) return 2; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { VAL(); if (!arg_int(CMD, a, v, 1, 256, &threads)) return 2; }
        else if (!strcmp(a, "--seed")) {
            VAL();
            char *e;
            errno = 0;
            seed = strtoull(v, &e, 10);
            if (errno || *e || e == v || *v == '-') {
                fprintf(stderr, "strata " CMD ": --seed expects a non-negative integer, got '%s'\n", v);
                return 2;
            }
        }
        else { fprintf(stderr, "strata " CMD ": unknown option '%s' (see strata " CMD " --help)\n", a); return 2; }
#undef VAL
    }
    if (!preset_name || !type_name || !out_path) {
        fprintf(stderr, "strata " CMD ": --preset, --type and -o are required (see strata " CMD " --help)\n");
        return 2;
    }
    const preset *pr = NULL;
    for (size_t i = 0; i < sizeof k_presets / sizeof k_presets[0]; i++)
        if (!strcmp(preset_name, k_presets[i].name)) pr = &k_presets[i];
    if (!pr) {
        fprintf(stderr, "strata " CMD ": unknown preset '%s' (known: tinyllama-1.1b, llama2-7b, tiny)\n", preset_name);
        return 2;
    }
    const ftype_info *fi = NULL;
    for (size_t i = 0; i < sizeof k_ftypes / sizeof k_ftypes[0]; i++)
        if (!strcasecmp(type_name, k_ftypes[i].name)) fi = &k_ftypes[i];
    if (!fi) {
        fprintf(stderr, "strata " CMD ": unknown type '%s' (known: F32, F16, Q8_0, Q4_0, Q4_K_M)\n", type_name);
        return 2;
    }
    if (!vocab_path && !(vocab_path = default_model_path())) {
        fprintf(stderr, "strata " CMD ": the bundled model (assets/tiny-14m-q8_0.gguf) was not found; "
                        "name a GGUF with a vocabulary with --vocab FILE\n");
        return 2;
    }
    const int n_embd = pr->n_embd, n_head = pr->n_head, n_head_kv = pr->n_head_kv, n_ff = pr->n_ff;
    const int n_layer = layers > 0 ? (int)layers : pr->n_layer;
    const int head_dim = n_embd / n_head, n_embd_kv = head_dim * n_head_kv;
    const bool qwen2 = !strcmp(arch, "qwen2"), llama3 = rope_scaling != NULL;
    /* rope and norm constants of the real models */
    const float rope_base = llama3 ? 500000.0f : qwen2 ? 1000000.0f : 10000.0f;
    const float rms_eps = qwen2 ? 1e-6f : 1e-5f;
    const float l3_factor = 8.0f, l3_low = 1.0f, l3_high = 4.0f;
    const int l3_orig_ctx = 8192;
    float *rope_ff = NULL;
    if (threads <= 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        threads = nc < 1 ? 1 : nc > 16 ? 16 : nc;
    }

    st_error err = {0};
    st_gguf *voc = NULL;
    st_gguf_writer *w = NULL;
    tdesc *td = NULL;
    pool p;
    memset(&p, 0, sizeof p);
    pthread_t *tids = NULL;
    worker_arg *wargs = NULL;
    int n_started = 0;
    bool pool_ready = false;
    uint8_t *buf[2] = {NULL, NULL};
    int rc = 1;

    if (st_gguf_open(vocab_path, &voc, &err)) {
        fprintf(stderr, "strata " CMD ": cannot read the vocabulary: %s\n", err.msg);
        return 1;
    }
    int64_t ki = st_gguf_find_key(voc, "tokenizer.ggml.tokens");
    st_gguf_vtype et;
    uint64_t n_vocab = 0;
    if (ki < 0 || !st_gguf_get_arr(voc, ki, &et, &n_vocab) || et != ST_GGUF_STRING || n_vocab == 0 ||
        n_vocab > (1u << 24)) {
        fprintf(stderr, "strata " CMD ": %s has no usable tokenizer.ggml.tokens array\n", vocab_path);
        st_gguf_close(voc);
        return 1;
    }

    /* ---- tensor table, llama.cpp's names and order ----
     * Each tensor draws from the random stream of its seed index: the
     * tensors of a plain llama file are numbered in order (as they always
     * were), the extra ones (biases) after them, so the variants of one
     * preset and seed share their weights. */
    const int n_tensors = 3 + 9 * n_layer + (qwen2 ? 3 * n_layer : 0) + (llama3 ? 1 : 0);
    td = calloc((size_t)n_tensors, sizeof *td);
    if (!td) { fprintf(stderr, "strata " CMD ": out of memory\n"); goto out; }
    int nt = 0;
    uint64_t seed_plain = 0, seed_extra = (uint64_t)1 << 32;
#define ADD(kind, il, ne0, ne1, ...) do { \
        tdesc *t_ = &td[nt++]; \
        snprintf(t_->name, sizeof t_->name, __VA_ARGS__); \
        t_->type = tensor_type(fi->ft, kind, il, n_layer); \
        t_->ones = (kind) == K_NORM; \
        t_->n_dims = (kind) == K_NORM || (kind) == K_BIAS || (kind) == K_ROPE_FREQS ? 1 : 2; \
        t_->ne[0] = (ne0); t_->ne[1] = (ne1); \
        t_->seed_index = (kind) == K_BIAS || (kind) == K_ROPE_FREQS ? seed_extra++ : seed_plain++; \
    } while (0)
    if (llama3) { /* llama.cpp writes the factors first */
        rope_ff = malloc((size_t)(head_dim / 2) * sizeof(float));
        if (!rope_ff) { fprintf(stderr, "strata " CMD ": out of memory\n"); goto out; }
        st_rope_llama3_factors(rope_ff, head_dim, rope_base, l3_factor, l3_low, l3_high, (float)l3_orig_ctx);
        ADD(K_ROPE_FREQS, 0, head_dim / 2, 1, "rope_freqs.weight");
        td[nt - 1].values = rope_ff;
    }
    ADD(K_TOKEN_EMBD, 0, n_embd, (int64_t)n_vocab, "token_embd.weight");
    for (int il = 0; il < n_layer; il++) {
        ADD(K_NORM, il, n_embd, 1, "blk.%d.attn_norm.weight", il);
        ADD(K_MATRIX, il, n_embd, n_embd, "blk.%d.attn_q.weight", il);
        if (qwen2) ADD(K_BIAS, il, n_embd, 1, "blk.%d.attn_q.bias", il);
        ADD(K_MATRIX, il, n_embd, n_embd_kv, "blk.%d.attn_k.weight", il);
        if (qwen2) ADD(K_BIAS, il, n_embd_kv, 1, "blk.%d.attn_k.bias", il);
        ADD(K_ATTN_V, il, n_embd, n_embd_kv, "blk.%d.attn_v.weight", il);
        if (qwen2) ADD(K_BIAS, il, n_embd_kv, 1, "blk.%d.attn_v.bias", il);
        ADD(K_MATRIX, il, n_embd, n_embd, "blk.%d.attn_output.weight", il);
        ADD(K_NORM, il, n_embd, 1, "blk.%d.ffn_norm.weight", il);
        ADD(K_MATRIX, il, n_embd, n_ff, "blk.%d.ffn_gate.weight", il);
        ADD(K_MATRIX, il, n_embd, n_ff, "blk.%d.ffn_up.weight", il);
        ADD(K_FFN_DOWN, il, n_ff, n_embd, "blk.%d.ffn_down.weight", il);
    }
    ADD(K_NORM, 0, n_embd, 1, "output_norm.weight");
    if (!tied) ADD(K_OUTPUT, 0, n_embd, (int64_t)n_vocab, "output.weight");
#undef ADD
    uint64_t total_bytes = 0, n_params = 0;
    int64_t max_ne0 = 0;
    for (int i = 0; i < nt; i++) {
        tdesc *t = &td[i];
        t->row_size = st_row_size(t->type, t->ne[0]);
        if (!t->row_size) {
            fprintf(stderr, "strata " CMD ": %s: row length %lld does not fit %s blocks\n", t->name,
                    (long long)t->ne[0], st_type_name(t->type));
            goto out;
        }
        t->bytes = (uint64_t)t->row_size * (uint64_t)t->ne[1];
        total_bytes += t->bytes;
        n_params += (uint64_t)t->ne[0] * (uint64_t)t->ne[1];
        if (t->ne[0] > max_ne0) max_ne0 = t->ne[0];
    }

    /* ---- metadata ---- */
    if (st_gguf_writer_open(out_path, &w, &err)) { fprintf(stderr, "strata " CMD ": %s\n", err.msg); goto out; }
    char gname[160], key[96];
    snprintf(gname, sizeof gname, "strata random %s%s%s%s %s%s%s", qwen2 ? "qwen2 " : "", pr->name,
             layers > 0 ? " (layers changed)" : "", llama3 ? " llama3-rope" : "", fi->name, swa ? " swa" : "",
             tied ? " tied" : "");
    st_gguf_writer_kv_str(w, "general.architecture", arch);
    st_gguf_writer_kv_str(w, "general.name", gname);
#define KEY(k) (snprintf(key, sizeof key, "%s.%s", arch, k), key)
    st_gguf_writer_kv_u32(w, KEY("context_length"), (uint32_t)pr->n_ctx);
    st_gguf_writer_kv_u32(w, KEY("embedding_length"), (uint32_t)n_embd);
    st_gguf_writer_kv_u32(w, KEY("block_count"), (uint32_t)n_layer);
    st_gguf_writer_kv_u32(w, KEY("feed_forward_length"), (uint32_t)n_ff);
    st_gguf_writer_kv_u32(w, KEY("rope.dimension_count"), (uint32_t)head_dim);
    st_gguf_writer_kv_u32(w, KEY("attention.head_count"), (uint32_t)n_head);
    st_gguf_writer_kv_u32(w, KEY("attention.head_count_kv"), (uint32_t)n_head_kv);
    st_gguf_writer_kv_f32(w, KEY("attention.layer_norm_rms_epsilon"), rms_eps);
    st_gguf_writer_kv_f32(w, KEY("rope.freq_base"), rope_base);
    st_gguf_writer_kv_u32(w, KEY("vocab_size"), (uint32_t)n_vocab);
    if (swa) st_gguf_writer_kv_u32(w, KEY("attention.sliding_window"), (uint32_t)swa);
    if (llama3) {
        st_gguf_writer_kv_str(w, KEY("rope.scaling.type"), "llama3");
        st_gguf_writer_kv_f32(w, KEY("rope.scaling.factor"), l3_factor);
        st_gguf_writer_kv_f32(w, KEY("rope.scaling.low_freq_factor"), l3_low);
        st_gguf_writer_kv_f32(w, KEY("rope.scaling.high_freq_factor"), l3_high);
        st_gguf_writer_kv_u32(w, KEY("rope.scaling.original_context_length"), (uint32_t)l3_orig_ctx);
    }
#undef KEY
    st_gguf_writer_kv_u32(w, "general.file_type", fi->llama_ftype);
    st_gguf_writer_kv_u32(w, "general.quantization_version", 2);
    st_gguf_writer_kv_bool(w, "strata.random_weights", true);
    char seed_str[32];
    snprintf(seed_str, sizeof seed_str, "%llu", (unsigned long long)seed);
    st_gguf_writer_kv_str(w, "strata.random_seed", seed_str);
    int n_tok_keys = 0;
    for (int64_t i = 0; i < st_gguf_n_kv(voc); i++) {
        st_gguf_str k = st_gguf_key(voc, i);
        if (k.len >= 10 && !memcmp(k.ptr, "tokenizer.", 10)) {
            st_gguf_writer_kv_copy(w, voc, i);
            n_tok_keys++;
        }
    }
    for (int i = 0; i < nt; i++) st_gguf_writer_add_tensor(w, td[i].name, td[i].type, td[i].n_dims, td[i].ne);
    if (st_gguf_writer_write_header(w, &err)) { fprintf(stderr, "strata " CMD ": %s\n", err.msg); goto out; }

    fprintf(stderr, "strata " CMD ": %s %s %s, %d layers, %llu params, vocab %llu (%d tokenizer keys from %s), "
                    "%d tensors, %.1f MiB of weights, %ld threads\n",
            arch, pr->name, fi->name, n_layer, (unsigned long long)n_params, (unsigned long long)n_vocab, n_tok_keys,
            vocab_path, nt, total_bytes / 1048576.0, threads);

    /* ---- workers and buffers ---- */
    normal_table_init();
    (void)st_type_traits_get(ST_TYPE_F32); /* initialise the quantizer tables before the threads start */
    if (exact_quant) g_fast_quant = false;
    else if (!fast_quant_selftest()) {
        fprintf(stderr, "strata " CMD ": warning: the fast Q4_K/Q6_K encoders failed their self-test; "
                        "using the (slower) reference quantizers\n");
        g_fast_quant = false;
    }
    uint64_t max_bytes = 0;
    for (int i = 0; i < nt; i++)
        if (td[i].bytes > max_bytes) max_bytes = td[i].bytes;
    if (max_bytes > SIZE_MAX / 2) { fprintf(stderr, "strata " CMD ": tensor too large\n"); goto out; }
    buf[0] = malloc((size_t)max_bytes);
    buf[1] = malloc((size_t)max_bytes);
    p.n_workers = (int)threads;
    tids = calloc((size_t)threads, sizeof *tids);
    wargs = calloc((size_t)threads, sizeof *wargs);
    if (!buf[0] || !buf[1] || !tids || !wargs) { fprintf(stderr, "strata " CMD ": out of memory\n"); goto out; }
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv_job, NULL);
    pthread_cond_init(&p.cv_done, NULL);
    pool_ready = true;
    for (int i = 0; i < threads; i++) {
        wargs[i].p = &p;
        wargs[i].scratch = malloc((size_t)max_ne0 * sizeof(float));
        if (!wargs[i].scratch || pthread_create(&tids[i], NULL, worker_main, &wargs[i])) {
            free(wargs[i].scratch);
            wargs[i].scratch = NULL;
            fprintf(stderr, "strata " CMD ": cannot start worker threads\n");
            goto out;
        }
        n_started++;
        p.n_workers = n_started;
    }

    /* ---- data ----
     * The writer takes each tensor's data in one call, so a tensor is the unit
     * of streaming: the workers fill tensor k+1 into one buffer while this
     * thread writes tensor k from the other. At most two tensors are in
     * memory (the largest is output.weight or token_embd.weight). */
    const double t0 = now_s();
    double last_report = 0;
    const bool tty = isatty(2);
    uint64_t done_bytes = 0;
    pool_start(&p, &td[0], td[0].seed_index, seed, 0, td[0].ne[1], buf[0]);
    for (int i = 0; i < nt; i++) {
        pool_wait(&p);
        if (atomic_load(&p.failed)) {
            fprintf(stderr, "strata " CMD ": %s: quantizing to %s failed\n", td[i].name, st_type_name(td[i].type));
            goto out;
        }
        if (i + 1 < nt) pool_start(&p, &td[i + 1], td[i + 1].seed_index, seed, 0, td[i + 1].ne[1], buf[(i + 1) & 1]);
        if (st_gguf_writer_write_tensor_data(w, buf[i & 1], td[i].bytes, &err)) {
            pool_wait(&p);
            goto werr;
        }
        done_bytes += td[i].bytes;
        double t = now_s();
        if (i + 1 == nt || t - last_report >= (tty ? 0.2 : 5.0)) {
            last_report = t;
            double el = t - t0, frac = (double)done_bytes / (double)total_bytes;
            fprintf(stderr, "%s[%3.0f%%] %7.1f / %.1f MiB  %5.1f s  eta %5.1f s  %-28s%s", tty ? "\r" : "",
                    100 * frac, done_bytes / 1048576.0, total_bytes / 1048576.0, el,
                    frac > 0 ? el / frac - el : 0.0, td[i].name, tty ? "" : "\n");
        }
    }
    if (tty) fputc('\n', stderr);
    if (st_gguf_writer_close(w, &err)) {
        w = NULL;
        goto werr;
    }
    w = NULL;
    {
        double el = now_s() - t0;
        struct stat sb;
        uint64_t fsz = stat(out_path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
        fprintf(stderr, "strata " CMD ": wrote %s: %llu bytes (%.2f MiB) in %.1f s (%.1f MiB/s)\n", out_path,
                (unsigned long long)fsz, fsz / 1048576.0, el, el > 0 ? total_bytes / 1048576.0 / el : 0.0);
    }
    rc = 0;
    goto out;
werr:
    fprintf(stderr, "strata " CMD ": %s\n", err.msg);
out:
    if (pool_ready) {
        pthread_mutex_lock(&p.mu);
        p.quit = true;
        pthread_cond_broadcast(&p.cv_job);
        pthread_mutex_unlock(&p.mu);
        for (int i = 0; i < n_started; i++) {
            pthread_join(tids[i], NULL);
            free(wargs[i].scratch);
        }
        pthread_mutex_destroy(&p.mu);
        pthread_cond_destroy(&p.cv_job);
        pthread_cond_destroy(&p.cv_done);
    }
    free(tids);
    free(wargs);
    free(buf[0]);
    free(buf[1]);
    if (w) {
        st_status cs = st_gguf_writer_close(w, &err);
        if (cs && rc == 0) { fprintf(stderr, "strata " CMD ": %s\n", err.msg); rc = 1; }
    }
    free(td);
    free(rope_ff);
    st_gguf_close(voc);
    return rc;
}
