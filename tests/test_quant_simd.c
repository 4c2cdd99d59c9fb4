/* test_quant_simd.c — the AVX2 kernels (core/quant_avx2.c) against the
 * plain-C reference kernels (core/quant.c).
 *
 *  - vec_dot of every supported weight type: equal to the reference within
 *    float rounding (the integer parts are exact; only the order of float
 *    accumulation differs), for weights made by the reference quantizer and
 *    for raw random bytes (every quant bit pattern) with sane fp16 scales;
 *  - from_float of the activation types Q8_0, Q8_1, Q8_K (and F16):
 *    bit-identical, including rounding ties and all-zero blocks;
 *  - to_float fast paths: bit-identical;
 *  - vec_dot_nc (one weight row, 1..ST_VEC_DOT_NC_MAX activation rows): each
 *    column bit-identical to vec_dot, for every type;
 *  - gemm on repacked rows (AVX-VNNI kernels where the CPU has them, and the
 *    AVX2 ones): 8 rows x ny columns bit-identical to vec_dot;
 *  - Q4_0/Q5_0/Q8_0 vec_dot (AVX-VNNI and AVX2) bit-identical to their
 *    canonical float order (4 accumulators by block mod 4) written in C.
 * Skipped when the CPU (or STRATA_NO_SIMD) leaves the reference in place. */
#include <criterion/criterion.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "testutil.h"

/* ---- deterministic random numbers --------------------------------------- */

static uint64_t g_rng = 0x9E3779B97F4A7C15ULL;

static uint64_t rnd_u64(void) {
    uint64_t x = g_rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return g_rng = x;
}
static float rnd_unit(void) { return (float)((rnd_u64() >> 40) * (1.0 / 16777216.0)); } /* [0,1) */
static float rnd_gauss(void) {
    float u1 = rnd_unit(), u2 = rnd_unit();
    if (u1 < 1e-7f) u1 = 1e-7f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}
/* gaussian with occasional outliers, like real weights/activations */
static void rnd_floats(float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) {
        float v = rnd_gauss() * scale;
        if ((rnd_u64() & 127) == 0) v *= 8.0f;
        x[i] = v;
    }
}
static void rnd_bytes(void *p, size_t n) {
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(rnd_u64() >> 56);
}
static st_fp16 rnd_scale_fp16(bool allow_neg) {
    float v = 1e-3f + rnd_unit() * 0.1f;
    if (allow_neg && (rnd_u64() & 1)) v = -v;
    return st_fp32_to_fp16(v);
}

static bool skip_if_no_simd(void) {
    if (!st_cpu_has_avx2()) return true;
    return false;
}

#define REQUIRE_SIMD()                                                                          \
    do {                                                                                        \
        if (skip_if_no_simd()) cr_skip_test("CPU lacks AVX2/FMA/F16C (or STRATA_NO_SIMD is set)"); \
    } while (0)

/* ---- weight rows ------------------------------------------------------------ */

/* Raw random bytes, then sane fp16 values written over the scale fields so
 * that every bit pattern of the quants (and of the packed sub-scales) shows up
 * without infinities or NaNs. */
static void raw_weight_row(st_type t, void *row, int64_t n) {
    const st_type_traits *tr = st_type_traits_ref(t);
    const int64_t nb = n / tr->blck_size;
    uint8_t *base = row;
    rnd_bytes(row, (size_t)nb * tr->type_size);
    for (int64_t i = 0; i < nb; i++) {
        uint8_t *b = base + (size_t)i * tr->type_size;
        st_fp16 h;
#define SETH(T, field, neg)                        \
    do {                                           \
        h = rnd_scale_fp16(neg);                   \
        memcpy(b + offsetof(T, field), &h, 2);     \
    } while (0)
        switch (t) {
        case ST_TYPE_Q4_0: SETH(st_block_q4_0, d, true); break;
        case ST_TYPE_Q4_1: SETH(st_block_q4_1, d, true); SETH(st_block_q4_1, m, true); break;
        case ST_TYPE_Q5_0: SETH(st_block_q5_0, d, true); break;
        case ST_TYPE_Q5_1: SETH(st_block_q5_1, d, true); SETH(st_block_q5_1, m, true); break;
        case ST_TYPE_Q8_0: SETH(st_block_q8_0, d, true); break;
        case ST_TYPE_Q2_K: SETH(st_block_q2_K, d, false); SETH(st_block_q2_K, dmin, false); break;
        case ST_TYPE_Q3_K: SETH(st_block_q3_K, d, true); break;
        case ST_TYPE_Q4_K: SETH(st_block_q4_K, d, false); SETH(st_block_q4_K, dmin, false); break;
        case ST_TYPE_Q5_K: SETH(st_block_q5_K, d, false); SETH(st_block_q5_K, dmin, false); break;
        case ST_TYPE_Q6_K: SETH(st_block_q6_K, d, true); break;
        default: break;
        }
#undef SETH
    }
}

/* ---- vec_dot ---------------------------------------------------------------- */

static double g_worst_rel; /* largest |fast - ref| / sum|x*y| seen (for the log) */

/* Compares fast vs reference vec_dot of a weight row (type t, n elements)
 * with activations made from `act` by the reference quantizer. */
static void check_dot(st_type t, const void *wrow, const float *act, int n, const char *what) {
    const st_type_traits *ref = st_type_traits_ref(t);
    const st_type_traits *fast = st_type_traits_get(t);
    const st_type vt = ref->vec_dot_type;
    const st_type_traits *vref = st_type_traits_ref(vt);
    const size_t ysz = st_row_size(vt, n);
    cr_assert(ysz > 0, "%s: no row size for vec_dot_type of %s at n=%d", what, ref->name, n);
    void *yq = malloc(ysz);
    vref->from_float(act, yq, n);

    float s_ref = NAN, s_fast = NAN;
    ref->vec_dot(n, &s_ref, wrow, yq);
    fast->vec_dot(n, &s_fast, wrow, yq);

    /* magnitude: sum |x_i * y_i| over the dequantized rows */
    float *xf = malloc(sizeof(float) * (size_t)n), *yf = malloc(sizeof(float) * (size_t)n);
    ref->to_float(wrow, xf, n);
    vref->to_float(yq, yf, n);
    double mag = 0;
    for (int i = 0; i < n; i++) mag += fabs((double)xf[i] * (double)yf[i]);
    free(xf);
    free(yf);
    free(yq);

    cr_assert(isfinite(s_ref), "%s %s n=%d: reference dot not finite (%g)", what, ref->name, n, s_ref);
    const double diff = fabs((double)s_fast - (double)s_ref);
    const double tol = 1e-5 * mag + 1e-6 * fabs((double)s_ref) + 1e-30;
    if (mag > 0 && diff / mag > g_worst_rel) g_worst_rel = diff / mag;
    cr_assert(diff <= tol, "%s %s n=%d: fast %.9g vs ref %.9g (diff %.3g, sum|xy| %.6g, rel %.3g)", what,
              ref->name, n, s_fast, s_ref, diff, mag, mag > 0 ? diff / mag : 0.0);
}

static void dot_suite(st_type t) {
    const st_type_traits *ref = st_type_traits_ref(t);
    cr_assert(ref && ref->vec_dot, "type %d has no reference vec_dot", (int)t);
    const st_type_traits *fast = st_type_traits_get(t);
    cr_assert(fast->vec_dot != ref->vec_dot, "%s: no SIMD vec_dot installed", ref->name);
    const int bs = ref->blck_size;
    const int lens32[] = {32, 64, 96, 160, 256, 4096, 4192, 11008};
    const int lensK[] = {256, 512, 768, 4096, 11008};
    const int lensF[] = {1, 7, 8, 31, 33, 256, 1001, 4096, 11008};
    const int *lens;
    int nlen;
    if (bs == 1) {
        lens = lensF;
        nlen = (int)(sizeof lensF / sizeof *lensF);
    } else if (bs == 32) {
        lens = lens32;
        nlen = (int)(sizeof lens32 / sizeof *lens32);
    } else {
        lens = lensK;
        nlen = (int)(sizeof lensK / sizeof *lensK);
    }
    g_worst_rel = 0;
    for (int li = 0; li < nlen; li++) {
        const int n = lens[li];
        const size_t wsz = st_row_size(t, n);
        cr_assert(wsz > 0);
        void *w = malloc(wsz);
        float *xf = malloc(sizeof(float) * (size_t)n), *act = malloc(sizeof(float) * (size_t)n);
        for (int rep = 0; rep < 4; rep++) {
            const float wscale = rep == 3 ? 30.0f : 0.05f;
            rnd_floats(xf, n, wscale);
            rnd_floats(act, n, rep == 2 ? 100.0f : 1.0f);
            if (rep == 1) /* one all-zero activation block, one spiky one */
                for (int i = 0; i < n && i < 2 * (bs > 1 ? bs : 16); i++) act[i] = i < (bs > 1 ? bs : 16) ? 0.0f : (i & 7 ? 0.01f : -50.0f);
            cr_assert(st_quantize_row(t, xf, w, n) == wsz, "%s: quantize_row failed", ref->name);
            check_dot(t, w, act, n, "quantized");
            if (ref->is_quantized) {
                raw_weight_row(t, w, n);
                check_dot(t, w, act, n, "raw-bytes");
            }
        }
        free(w);
        free(xf);
        free(act);
    }
    cr_log_info("%s: worst |fast-ref|/sum|xy| = %.3g", ref->name, g_worst_rel);
}

#define DOT_TEST(T, NAME)      \
    Test(quant_simd_dot, NAME) { \
        REQUIRE_SIMD();        \
        dot_suite(T);          \
    }

DOT_TEST(ST_TYPE_F32, f32)
DOT_TEST(ST_TYPE_F16, f16)
DOT_TEST(ST_TYPE_BF16, bf16)
DOT_TEST(ST_TYPE_Q4_0, q4_0)
DOT_TEST(ST_TYPE_Q4_1, q4_1)
DOT_TEST(ST_TYPE_Q5_0, q5_0)
DOT_TEST(ST_TYPE_Q5_1, q5_1)
DOT_TEST(ST_TYPE_Q8_0, q8_0)
DOT_TEST(ST_TYPE_Q2_K, q2_k)
DOT_TEST(ST_TYPE_Q3_K, q3_k)
DOT_TEST(ST_TYPE_Q4_K, q4_k)
DOT_TEST(ST_TYPE_Q5_K, q5_k)
DOT_TEST(ST_TYPE_Q6_K, q6_k)

/* The fast path and the reference must agree on the activations too: the
 * full pipeline (fast from_float + fast vec_dot) against the reference one. */
Test(quant_simd_dot, pipeline_fast_activations) {
    REQUIRE_SIMD();
    const st_type types[] = {ST_TYPE_Q4_0, ST_TYPE_Q4_1, ST_TYPE_Q5_0, ST_TYPE_Q5_1, ST_TYPE_Q8_0,
                             ST_TYPE_Q2_K, ST_TYPE_Q3_K, ST_TYPE_Q4_K, ST_TYPE_Q5_K, ST_TYPE_Q6_K};
    const int n = 4096;
    float *xf = malloc(sizeof(float) * n), *act = malloc(sizeof(float) * n);
    void *w = malloc(st_row_size(ST_TYPE_Q8_0, n) + 1024);
    void *ya = malloc(st_row_size(ST_TYPE_Q8_K, n) + 1024), *yb = malloc(st_row_size(ST_TYPE_Q8_K, n) + 1024);
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        const st_type t = types[k];
        const st_type_traits *ref = st_type_traits_ref(t), *fast = st_type_traits_get(t);
        const st_type vt = ref->vec_dot_type;
        rnd_floats(xf, n, 0.05f);
        rnd_floats(act, n, 1.0f);
        st_quantize_row(t, xf, w, n);
        st_type_traits_ref(vt)->from_float(act, ya, n);
        st_type_traits_get(vt)->from_float(act, yb, n);
        cr_assert(memcmp(ya, yb, st_row_size(vt, n)) == 0, "%s: activations differ", st_type_name(vt));
        float sr, sf;
        ref->vec_dot(n, &sr, w, ya);
        fast->vec_dot(n, &sf, w, yb);
        cr_assert(fabsf(sf - sr) <= 1e-4f * (fabsf(sr) + 1.0f), "%s: %g vs %g", ref->name, sf, sr);
    }
    free(xf);
    free(act);
    free(w);
    free(ya);
    free(yb);
}

/* ---- vec_dot_nc (multi-column dots) ---------------------------------------- */

/* vec_dot_nc of one weight row against ny activation rows `by` bytes apart
 * (by larger than a row, so a kernel reading the wrong row shows) must give
 * each column's vec_dot exactly (fast nc = fast vec_dot, reference nc =
 * reference vec_dot), and so the reference within float rounding. */
static void check_nc(st_type t, const void *wrow, int n, int ny, const char *what) {
    const st_type_traits *ref = st_type_traits_ref(t), *fast = st_type_traits_get(t);
    const st_type vt = ref->vec_dot_type;
    const size_t ysz = st_row_size(vt, n);
    const size_t by = ysz + 64 + 2 * (rnd_u64() % 8);
    uint8_t *y = malloc(by * ST_VEC_DOT_NC_MAX);
    float *xf = malloc(sizeof(float) * (size_t)n), *act = malloc(sizeof(float) * (size_t)n);
    ref->to_float(wrow, xf, n);
    double mag[ST_VEC_DOT_NC_MAX];
    for (int c = 0; c < ny; c++) {
        rnd_floats(act, n, c == 2 ? 100.0f : 1.0f);
        if (c == 1) /* an all-zero block */
            for (int i = 0; i < n && i < 32; i++) act[i] = 0.0f;
        st_type_traits_ref(vt)->from_float(act, y + (size_t)c * by, n);
        st_type_traits_ref(vt)->to_float(y + (size_t)c * by, act, n);
        mag[c] = 0;
        for (int i = 0; i < n; i++) mag[c] += fabs((double)xf[i] * (double)act[i]);
    }
    float s_nc[ST_VEC_DOT_NC_MAX + 1], s_rnc[ST_VEC_DOT_NC_MAX + 1];
    s_nc[ny] = s_rnc[ny] = 12345.0f; /* must stay untouched */
    fast->vec_dot_nc(n, s_nc, wrow, y, by, ny);
    ref->vec_dot_nc(n, s_rnc, wrow, y, by, ny);
    cr_assert(s_nc[ny] == 12345.0f && s_rnc[ny] == 12345.0f, "%s %s n=%d ny=%d: wrote past s[ny-1]", what,
              ref->name, n, ny);
    for (int c = 0; c < ny; c++) {
        float s_ref, s_fast;
        ref->vec_dot(n, &s_ref, wrow, y + (size_t)c * by);
        fast->vec_dot(n, &s_fast, wrow, y + (size_t)c * by);
        cr_assert(memcmp(&s_rnc[c], &s_ref, sizeof s_ref) == 0, "%s %s n=%d ny=%d col %d: reference nc %.9g vs vec_dot %.9g",
                  what, ref->name, n, ny, c, s_rnc[c], s_ref);
        /* bit-identical to the fast vec_dot: a token's result must not depend
         * on the batch it came in (decode uses vec_dot, prompts vec_dot_nc) */
        cr_assert(memcmp(&s_nc[c], &s_fast, sizeof s_fast) == 0,
                  "%s %s n=%d ny=%d col %d: nc %.9g differs from vec_dot %.9g", what, ref->name, n, ny, c, s_nc[c], s_fast);
        const double tol = 1e-5 * mag[c] + 1e-6 * fabs((double)s_ref) + 1e-30;
        cr_assert(fabs((double)s_nc[c] - s_fast) <= tol && fabs((double)s_nc[c] - s_ref) <= tol,
                  "%s %s n=%d ny=%d col %d: nc %.9g vs fast %.9g vs ref %.9g (sum|xy| %.6g)", what, ref->name, n,
                  ny, c, s_nc[c], s_fast, s_ref, mag[c]);
    }
    free(y);
    free(xf);
    free(act);
}

static void nc_suite(st_type t) {
    const st_type_traits *ref = st_type_traits_ref(t), *fast = st_type_traits_get(t);
    cr_assert(ref->vec_dot_nc && fast->vec_dot_nc, "%s: no vec_dot_nc", ref->name);
    const int bs = ref->blck_size;
    const int lens32[] = {32, 64, 96, 128, 160, 224, 2048, 4192, 5632};
    const int lensK[] = {256, 512, 768, 2048, 5632};
    const int lensF[] = {1, 7, 8, 33, 256, 1001, 2048};
    const int *lens = bs == 1 ? lensF : bs == 32 ? lens32 : lensK;
    const int nlen = bs == 1 ? (int)(sizeof lensF / sizeof *lensF)
                   : bs == 32 ? (int)(sizeof lens32 / sizeof *lens32) : (int)(sizeof lensK / sizeof *lensK);
    for (int li = 0; li < nlen; li++) {
        const int n = lens[li];
        const size_t wsz = st_row_size(t, n);
        void *w = malloc(wsz);
        float *xf = malloc(sizeof(float) * (size_t)n);
        for (int ny = 1; ny <= ST_VEC_DOT_NC_MAX; ny++) {
            rnd_floats(xf, n, ny == 3 ? 30.0f : 0.05f);
            cr_assert(st_quantize_row(t, xf, w, n) == wsz);
            check_nc(t, w, n, ny, "quantized");
            if (ref->is_quantized) {
                raw_weight_row(t, w, n);
                check_nc(t, w, n, ny, "raw-bytes");
            }
        }
        free(w);
        free(xf);
    }
}

/* the quantized types must have a SIMD multi-column kernel, not the loop */
static void require_simd_nc(st_type t) {
    const st_type_traits *ref = st_type_traits_ref(t), *fast = st_type_traits_get(t);
    cr_assert(fast->vec_dot_nc != ref->vec_dot_nc, "%s: no SIMD vec_dot_nc installed", ref->name);
}

#define NC_TEST(T, NAME, SIMD_NC)        \
    Test(quant_simd_dot_nc, NAME) {      \
        REQUIRE_SIMD();                  \
        if (SIMD_NC) require_simd_nc(T); \
        nc_suite(T);                     \
    }

NC_TEST(ST_TYPE_F32, f32, false)
NC_TEST(ST_TYPE_F16, f16, false)
NC_TEST(ST_TYPE_BF16, bf16, false)
NC_TEST(ST_TYPE_Q4_0, q4_0, true)
NC_TEST(ST_TYPE_Q4_1, q4_1, true)
NC_TEST(ST_TYPE_Q5_0, q5_0, true)
NC_TEST(ST_TYPE_Q5_1, q5_1, true)
NC_TEST(ST_TYPE_Q8_0, q8_0, true)
NC_TEST(ST_TYPE_Q2_K, q2_k, true)
NC_TEST(ST_TYPE_Q3_K, q3_k, true)
NC_TEST(ST_TYPE_Q4_K, q4_k, true)
NC_TEST(ST_TYPE_Q5_K, q5_k, true)
NC_TEST(ST_TYPE_Q6_K, q6_k, true)

/* ---- gemm on repacked rows (where the CPU has a kernel) ---------------------- */

/* 8 weight rows repacked, ny activation rows: s[c * bs + r] bit-identical to
 * the fast vec_dot of row r and column c (and so within float rounding of the
 * reference); nothing else of s written. */
static void check_gemm(st_type t, const uint8_t *w, size_t bx, int n, int ny, const char *what) {
    const st_type_traits *ref = st_type_traits_ref(t), *fast = st_type_traits_get(t);
    const st_type vt = ref->vec_dot_type;
    const size_t ysz = st_row_size(vt, n);
    const size_t by = ysz + 32 + 2 * (rnd_u64() % 8);
    const size_t bs = ST_GEMM_ROWS + 3;
    uint8_t *y = malloc(by * (size_t)ny);
    void *xr = NULL;
    cr_assert(posix_memalign(&xr, 64, (size_t)(n / ref->blck_size) * fast->gemm_block_bytes) == 0);
    float *s = malloc(sizeof(float) * bs * (size_t)ny);
    float *xf = malloc(sizeof(float) * (size_t)n), *act = malloc(sizeof(float) * (size_t)n);
    double *mag = calloc((size_t)ny * ST_GEMM_ROWS, sizeof(double));
    for (int c = 0; c < ny; c++) {
        rnd_floats(act, n, c % 3 == 2 ? 100.0f : 1.0f);
        if (c % 3 == 1)
            for (int i = 0; i < n && i < 64; i++) act[i] = 0.0f;
        st_type_traits_ref(vt)->from_float(act, y + (size_t)c * by, n);
    }
    for (int r = 0; r < ST_GEMM_ROWS; r++) {
        ref->to_float(w + (size_t)r * bx, xf, n);
        for (int c = 0; c < ny; c++) {
            st_type_traits_ref(vt)->to_float(y + (size_t)c * by, act, n);
            for (int i = 0; i < n; i++) mag[c * ST_GEMM_ROWS + r] += fabs((double)xf[i] * (double)act[i]);
        }
    }
    for (size_t i = 0; i < bs * (size_t)ny; i++) s[i] = 12345.0f;
    fast->gemm_repack(n, w, bx, xr);
    fast->gemm(n, s, bs, xr, y, by, ny);
    for (int c = 0; c < ny; c++) {
        for (int r = 0; r < (int)bs; r++) {
            const float got = s[(size_t)c * bs + r];
            if (r >= ST_GEMM_ROWS) {
                cr_assert(got == 12345.0f, "%s %s n=%d ny=%d: wrote s[%d * bs + %d]", what, ref->name, n, ny, c, r);
                continue;
            }
            float s_ref, s_fast;
            ref->vec_dot(n, &s_ref, w + (size_t)r * bx, y + (size_t)c * by);
            fast->vec_dot(n, &s_fast, w + (size_t)r * bx, y + (size_t)c * by);
            cr_assert(memcmp(&got, &s_fast, sizeof got) == 0, "%s %s n=%d ny=%d row %d col %d: gemm %.9g differs from vec_dot %.9g",
                      what, ref->name, n, ny, r, c, got, s_fast);
            const double m = mag[c * ST_GEMM_ROWS + r];
            const double tol = 2e-5 * m + 1e-6 * fabs((double)s_ref) + 1e-30;
            cr_assert(fabs((double)got - s_ref) <= tol, "%s %s n=%d ny=%d row %d col %d: gemm %.9g vs ref %.9g (sum|xy| %.6g)",
                      what, ref->name, n, ny, r, c, got, s_ref, m);
        }
    }
    free(y);
    free(xr);
    free(s);
    free(xf);
    free(act);
    free(mag);
}

static void gemm_suite(st_type t) {
    const st_type_traits *ref = st_type_traits_ref(t), *fast = st_type_traits_get(t);
    if (!fast->gemm) cr_skip_test("%s: no gemm kernel on this CPU", ref->name);
    cr_assert(fast->gemm_repack && fast->gemm_block_bytes > 0);
    const int bs = ref->blck_size;
    /* 32-element types: 1..7 blocks (every tail of the 4 accumulators) */
    const int lens32[] = {32, 64, 96, 128, 160, 192, 224, 2048, 4192, 5632};
    const int lensK[] = {256, 512, 2048, 5632};
    const int *lens = bs == 32 ? lens32 : lensK;
    const int nlen = bs == 32 ? (int)(sizeof lens32 / sizeof *lens32) : (int)(sizeof lensK / sizeof *lensK);
    const int nys[] = {1, 2, 3, 4, 5, 7, 9};
    for (int li = 0; li < nlen; li++) {
        const int n = lens[li];
        const size_t rsz = st_row_size(t, n), bx = rsz + 2 * ref->type_size;
        uint8_t *w = malloc(bx * ST_GEMM_ROWS);
        float *xf = malloc(sizeof(float) * (size_t)n);
        for (size_t k = 0; k < sizeof nys / sizeof *nys; k++) {
            for (int r = 0; r < ST_GEMM_ROWS; r++) {
                rnd_floats(xf, n, (k + r) % 5 == 3 ? 30.0f : 0.05f);
                cr_assert(st_quantize_row(t, xf, w + (size_t)r * bx, n) == rsz);
            }
            check_gemm(t, w, bx, n, nys[k], "quantized");
            for (int r = 0; r < ST_GEMM_ROWS; r++) raw_weight_row(t, w + (size_t)r * bx, n);
            check_gemm(t, w, bx, n, nys[k], "raw-bytes");
        }
        free(w);
        free(xf);
    }
}

#define GEMM_TEST(T, NAME)           \
    Test(quant_simd_gemm, NAME) {    \
        REQUIRE_SIMD();              \
        gemm_suite(T);               \
    }

GEMM_TEST(ST_TYPE_Q4_0, q4_0)
GEMM_TEST(ST_TYPE_Q5_0, q5_0)
GEMM_TEST(ST_TYPE_Q8_0, q8_0)
GEMM_TEST(ST_TYPE_Q4_K, q4_k)
GEMM_TEST(ST_TYPE_Q5_K, q5_k)
GEMM_TEST(ST_TYPE_Q6_K, q6_k)

/* with AVX-VNNI turned off (or absent) the AVX2 gemm kernels are used: the
 * same layouts, the same results */
static void no_vnni(void) { setenv("STRATA_NO_VNNI", "1", 1); }
#define GEMM_TEST_AVX2(T, NAME)                                          \
    Test(quant_simd_gemm_avx2, NAME, .init = no_vnni) {                 \
        REQUIRE_SIMD();                                                  \
        cr_assert(st_type_traits_get(T)->gemm != NULL, "no AVX2 gemm"); \
        gemm_suite(T);                                                   \
    }
GEMM_TEST_AVX2(ST_TYPE_Q4_0, q4_0)
GEMM_TEST_AVX2(ST_TYPE_Q5_0, q5_0)
GEMM_TEST_AVX2(ST_TYPE_Q8_0, q8_0)
GEMM_TEST_AVX2(ST_TYPE_Q4_K, q4_k)
GEMM_TEST_AVX2(ST_TYPE_Q5_K, q5_k)
GEMM_TEST_AVX2(ST_TYPE_Q6_K, q6_k)

/* ---- the canonical float order of the 32-element types -------------------- */

/* The order documented in core/quant_avx2.c, written out in plain C: per
 * block b the exact integer sum isum_b, a[b mod 4] = fmaf(isum_b, dx * dy,
 * a[b mod 4]), result (a0 + a1) + (a2 + a3). vec_dot (and so vec_dot_nc
 * and gemm, bit-identical to it) must give exactly this: pinning the order
 * here keeps a change to it from going unnoticed. */
static int block32_isum(st_type t, const uint8_t *xb, const int8_t *yq) {
    int sum = 0;
    if (t == ST_TYPE_Q8_0) {
        const st_block_q8_0 *x = (const st_block_q8_0 *)xb;
        for (int j = 0; j < 32; j++) sum += x->qs[j] * yq[j];
    } else if (t == ST_TYPE_Q4_0) {
        const st_block_q4_0 *x = (const st_block_q4_0 *)xb;
        for (int j = 0; j < 16; j++)
            sum += ((x->qs[j] & 0x0F) - 8) * yq[j] + ((x->qs[j] >> 4) - 8) * yq[j + 16];
    } else {
        const st_block_q5_0 *x = (const st_block_q5_0 *)xb;
        uint32_t qh;
        memcpy(&qh, x->qh, 4);
        for (int j = 0; j < 16; j++) {
            const int lo = (x->qs[j] & 0x0F) | (int)(((qh >> j) & 1u) << 4);
            const int hi = (x->qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
            sum += (lo - 16) * yq[j] + (hi - 16) * yq[j + 16];
        }
    }
    return sum;
}

static float canonical_b32(st_type t, int n, const void *w, const void *y) {
    const st_type_traits *ref = st_type_traits_ref(t);
    const st_block_q8_0 *yb = y;
    float a[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int b = 0; b < n / 32; b++) {
        const uint8_t *xb = (const uint8_t *)w + (size_t)b * ref->type_size;
        st_fp16 dxh;
        memcpy(&dxh, xb, 2); /* d is the first field of all three blocks */
        const float d = st_fp16_to_fp32(dxh) * st_fp16_to_fp32(yb[b].d);
        a[b & 3] = fmaf((float)block32_isum(t, xb, yb[b].qs), d, a[b & 3]);
    }
    return (a[0] + a[1]) + (a[2] + a[3]);
}

static void canonical_suite(st_type t) {
    const st_type_traits *fast = st_type_traits_get(t);
    const int lens[] = {32, 64, 96, 128, 160, 192, 224, 256, 288, 2048, 4192, 5632};
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        const int n = lens[li];
        void *w = malloc(st_row_size(t, n)), *y = malloc(st_row_size(ST_TYPE_Q8_0, n));
        float *xf = malloc(sizeof(float) * (size_t)n);
        for (int rep = 0; rep < 8; rep++) {
            rnd_floats(xf, n, (rep & 2) ? 30.0f : 0.05f);
            if (rep & 1)
                raw_weight_row(t, w, n);
            else
                st_quantize_row(t, xf, w, n);
            rnd_floats(xf, n, (rep & 4) ? 100.0f : 1.0f);
            if (rep == 4)
                for (int i = 0; i < n && i < 64; i++) xf[i] = 0.0f;
            st_type_traits_ref(ST_TYPE_Q8_0)->from_float(xf, y, n);
            float got = NAN;
            fast->vec_dot(n, &got, w, y);
            const float want = canonical_b32(t, n, w, y);
            cr_assert(memcmp(&got, &want, sizeof got) == 0, "%s n=%d rep %d: vec_dot %.9g, canonical order %.9g",
                      fast->name, n, rep, got, want);
        }
        free(w);
        free(y);
        free(xf);
    }
}

#define ORDER_TEST(T, NAME)                                                       \
    Test(quant_simd_order, NAME) { REQUIRE_SIMD(); canonical_suite(T); }          \
    Test(quant_simd_order_avx2, NAME, .init = no_vnni) { REQUIRE_SIMD(); canonical_suite(T); }
ORDER_TEST(ST_TYPE_Q4_0, q4_0)
ORDER_TEST(ST_TYPE_Q5_0, q5_0)
ORDER_TEST(ST_TYPE_Q8_0, q8_0)

/* STRATA_NO_GEMM=1: no gemm kernels, prompts go through vec_dot_nc */
static void no_gemm(void) { setenv("STRATA_NO_GEMM", "1", 1); }
Test(quant_simd_gemm_off, env, .init = no_gemm) {
    REQUIRE_SIMD();
    for (int t = 0; t < ST_TYPE_COUNT; t++) cr_assert(st_type_traits_get((st_type)t)->gemm == NULL, "type %d", t);
}

/* ---- from_float (activation quantizers): bit-identical ------------------- */

/* Inputs that stress the rounding: random at several scales, all-zero blocks,
 * exact .5 ties (amax 127 makes d = 1 for Q8_0/Q8_1; max -127 makes
 * iscale = 1 for Q8_K), a lone spike, tiny (subnormal-ish) values. */
static void stress_input(float *x, int64_t n, int kind) {
    switch (kind) {
    case 0: rnd_floats(x, n, 1.0f); break;
    case 1: rnd_floats(x, n, 1e-3f); break;
    case 2: rnd_floats(x, n, 1e3f); break;
    case 3: /* zeros in every other 32-block and every other 256-block */
        rnd_floats(x, n, 1.0f);
        for (int64_t i = 0; i < n; i++)
            if (((i / 32) & 1) || ((i / 256) & 1)) x[i] = 0.0f;
        break;
    case 4: /* ties */
        for (int64_t i = 0; i < n; i++) {
            const int r = (int)(rnd_u64() % 253) - 126; /* -126..126 */
            x[i] = (float)r + ((rnd_u64() & 1) ? 0.5f : 0.0f);
            if (x[i] > 126.5f) x[i] = 126.5f;
            if (x[i] < -126.5f) x[i] = -126.5f;
        }
        for (int64_t i = 0; i < n; i += 32) x[i] = (i / 32) & 1 ? 127.0f : -127.0f;
        break;
    case 5: /* one spike per block */
        for (int64_t i = 0; i < n; i++) x[i] = rnd_gauss() * 1e-2f;
        for (int64_t i = 0; i < n; i += 32) x[i + (int64_t)(rnd_u64() % 32)] = (rnd_u64() & 1) ? 40.0f : -40.0f;
        break;
    case 6: rnd_floats(x, n, 1e-6f); break;
    case 7: /* the same magnitude with both signs: first occurrence wins */
        for (int64_t i = 0; i < n; i++) x[i] = rnd_gauss();
        for (int64_t i = 0; i < n; i += 64) {
            x[i + 3] = 9.0f;
            x[i + 7] = -9.0f;
        }
        break;
    default: break;
    }
}

static void check_from_float(st_type t) {
    const st_type_traits *ref = st_type_traits_ref(t), *fast = st_type_traits_get(t);
    cr_assert(fast->from_float != ref->from_float, "%s: no SIMD from_float installed", ref->name);
    const int64_t lens[] = {256, 512, 4096, 11008};
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        const int64_t n = lens[li];
        const size_t sz = st_row_size(t, n);
        float *x = malloc(sizeof(float) * (size_t)n);
        uint8_t *a = malloc(sz), *b = malloc(sz);
        for (int kind = 0; kind < 8; kind++) {
            stress_input(x, n, kind);
            memset(a, 0xAA, sz);
            memset(b, 0x55, sz);
            ref->from_float(x, a, n);
            fast->from_float(x, b, n);
            if (memcmp(a, b, sz) != 0) {
                size_t off = 0;
                while (a[off] == b[off]) off++;
                cr_assert_fail("%s from_float n=%lld input kind %d: first difference at byte %zu (block %zu, "
                               "byte %zu in block): ref %02x fast %02x",
                               ref->name, (long long)n, kind, off, off / ref->type_size, off % ref->type_size,
                               a[off], b[off]);
            }
        }
        free(x);
        free(a);
        free(b);
    }
}

Test(quant_simd_from_float, q8_0) { REQUIRE_SIMD(); check_from_float(ST_TYPE_Q8_0); }
Test(quant_simd_from_float, q8_1) { REQUIRE_SIMD(); check_from_float(ST_TYPE_Q8_1); }
Test(quant_simd_from_float, q8_k) { REQUIRE_SIMD(); check_from_float(ST_TYPE_Q8_K); }
Test(quant_simd_from_float, f16) { REQUIRE_SIMD(); check_from_float(ST_TYPE_F16); }

/* Exhaustive-ish Q8_0 rounding check: each value of a block scaled so that
 * x*id lands on or next to every half-integer in range. */
Test(quant_simd_from_float, q8_0_all_half_steps) {
    REQUIRE_SIMD();
    const st_type_traits *ref = st_type_traits_ref(ST_TYPE_Q8_0), *fast = st_type_traits_get(ST_TYPE_Q8_0);
    enum { N = 32 * 256 * 3 };
    float *x = malloc(sizeof(float) * N);
    const size_t sz = st_row_size(ST_TYPE_Q8_0, N);
    uint8_t *a = malloc(sz), *b = malloc(sz);
    int64_t k = 0;
    for (int v = -254; v <= 254 && k + 32 <= N; v++) {
        for (int nudge = -1; nudge <= 1 && k + 32 <= N; nudge++) {
            x[k] = 127.0f;
            for (int j = 1; j < 32; j++) x[k + j] = nextafterf((float)v * 0.5f, nudge < 0 ? -INFINITY : INFINITY);
            if (nudge == 0)
                for (int j = 1; j < 32; j++) x[k + j] = (float)v * 0.5f;
            k += 32;
        }
    }
    for (; k < N; k++) x[k] = 0.0f;
    ref->from_float(x, a, N);
    fast->from_float(x, b, N);
    cr_assert(memcmp(a, b, sz) == 0, "Q8_0 rounding of half steps differs");
    free(x);
    free(a);
    free(b);
}

/* ---- to_float fast paths: bit-identical ---------------------------------- */

static bool same_float(float a, float b) {
    if (isnan(a) && isnan(b)) return true;
    return memcmp(&a, &b, sizeof a) == 0;
}

static void check_to_float(st_type t) {
    const st_type_traits *ref = st_type_traits_ref(t), *fast = st_type_traits_get(t);
    cr_assert(fast->to_float != ref->to_float, "%s: no SIMD to_float installed", ref->name);
    const int64_t lens[] = {256, 4096, 11008};
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        const int64_t n = lens[li];
        const size_t sz = st_row_size(t, n);
        void *w = malloc(sz);
        float *x = malloc(sizeof(float) * (size_t)n), *a = malloc(sizeof(float) * (size_t)n),
              *b = malloc(sizeof(float) * (size_t)n);
        for (int mode = 0; mode < 2; mode++) {
            if (mode == 0 || !ref->is_quantized) {
                rnd_floats(x, n, mode ? 3.0f : 0.05f);
                st_quantize_row(t, x, w, n);
            } else {
                raw_weight_row(t, w, n);
            }
            ref->to_float(w, a, n);
            fast->to_float(w, b, n);
            for (int64_t i = 0; i < n; i++)
                if (!same_float(a[i], b[i]))
                    cr_assert_fail("%s to_float n=%lld mode %d: element %lld: ref %.9g fast %.9g", ref->name,
                                   (long long)n, mode, (long long)i, a[i], b[i]);
        }
        free(w);
        free(x);
        free(a);
        free(b);
    }
}

Test(quant_simd_to_float, f16) { REQUIRE_SIMD(); check_to_float(ST_TYPE_F16); }
Test(quant_simd_to_float, q8_0) { REQUIRE_SIMD(); check_to_float(ST_TYPE_Q8_0); }
Test(quant_simd_to_float, q4_0) { REQUIRE_SIMD(); check_to_float(ST_TYPE_Q4_0); }
Test(quant_simd_to_float, q4_k) { REQUIRE_SIMD(); check_to_float(ST_TYPE_Q4_K); }
Test(quant_simd_to_float, q6_k) { REQUIRE_SIMD(); check_to_float(ST_TYPE_Q6_K); }

/* F16 to_float over every bit pattern */
Test(quant_simd_to_float, f16_all_patterns) {
    REQUIRE_SIMD();
    const st_type_traits *ref = st_type_traits_ref(ST_TYPE_F16), *fast = st_type_traits_get(ST_TYPE_F16);
    st_fp16 *h = malloc(sizeof(st_fp16) * 65536);
    float *a = malloc(sizeof(float) * 65536), *b = malloc(sizeof(float) * 65536);
    for (int i = 0; i < 65536; i++) h[i] = (st_fp16)i;
    ref->to_float(h, a, 65536);
    fast->to_float(h, b, 65536);
    for (int i = 0; i < 65536; i++)
        if (!same_float(a[i], b[i])) cr_assert_fail("fp16 %04x: ref %.9g fast %.9g", i, a[i], b[i]);
    free(h);
    free(a);
    free(b);
}
