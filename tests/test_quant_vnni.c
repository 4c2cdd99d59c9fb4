/* test_quant_vnni.c — the AVX-VNNI decode kernels (core/quant_avxvnni.c).
 *
 * Each test process sets STRATA_NO_VNNI=1 before the first table look-up, so
 * st_type_traits_get() hands out the AVX2 kernels; the VNNI ones are obtained
 * by installing them over a copy of that table. Checked, for every type they
 * cover, over many lengths (every tail of the 4-block loops, the model's row
 * lengths) and weights both quantized and raw random bytes plus edge rows
 * (all zero, all quant bits set, extreme activations):
 *  - VNNI vec_dot bit-identical to the AVX2 vec_dot (and so to the AVX2
 *    vec_dot_nc and gemm kernels, which share its float order: a token's
 *    result must not depend on the path or the batch);
 *  - within float rounding of the scalar reference (the integer parts are
 *    exact; tolerance as in test_quant_simd.c);
 *  - each column of the (AVX2) vec_dot_nc bit-identical to VNNI vec_dot.
 * And the hook: with AVX-VNNI present and STRATA_NO_VNNI unset, the table
 * holds the VNNI kernels and st_cpu_has_avxvnni() says so.
 * Skipped (with the reason) when the CPU lacks AVX2 or AVX-VNNI. */
#include <criterion/criterion.h>
#include <cpuid.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

/* defined in core/quant_avxvnni.c (internal to core, declared here to test it) */
void st_quant_avxvnni_install(st_type_traits *tbl);

/* ---- random numbers ------------------------------------------------------- */

static uint64_t g_rng = 0xD1B54A32D192ED03ULL;
static uint64_t rnd_u64(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}
static float rnd_unit(void) { return (float)((rnd_u64() >> 40) * (1.0 / 16777216.0)); }
static float rnd_gauss(void) {
    float u1 = rnd_unit(), u2 = rnd_unit();
    if (u1 < 1e-7f) u1 = 1e-7f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}
static void rnd_floats(float *x, int n, float scale) {
    for (int i = 0; i < n; i++) {
        float v = rnd_gauss() * scale;
        if ((rnd_u64() & 63) == 0) v *= 10.0f;
        x[i] = v;
    }
}

/* ---- CPU and tables --------------------------------------------------------- */

static bool cpu_avxvnni(void) {
    if (__get_cpuid_max(0, NULL) < 7) return false;
    unsigned a, b, c, d;
    __cpuid_count(7, 1, a, b, c, d);
    (void)b;
    (void)c;
    (void)d;
    return (a >> 4) & 1u;
}

static void no_vnni(void) { setenv("STRATA_NO_VNNI", "1", 1); }

static const st_type k_types[] = {ST_TYPE_Q4_0, ST_TYPE_Q5_0, ST_TYPE_Q8_0, ST_TYPE_Q2_K,
                                  ST_TYPE_Q3_K, ST_TYPE_Q4_K, ST_TYPE_Q5_K, ST_TYPE_Q6_K};

static st_type_traits g_avx2[ST_TYPE_COUNT], g_vnni[ST_TYPE_COUNT];

/* the AVX2 table (STRATA_NO_VNNI is set) and a copy with the VNNI kernels */
static void tables(void) {
    if (!st_cpu_has_avx2()) cr_skip_test("CPU lacks AVX2/FMA/F16C (or STRATA_NO_SIMD is set)");
    if (!cpu_avxvnni()) cr_skip_test("CPU lacks AVX-VNNI (CPUID.(7,1):EAX bit 4)");
    cr_assert(!st_cpu_has_avxvnni(), "STRATA_NO_VNNI=1 did not turn the VNNI kernels off");
    for (int t = 0; t < ST_TYPE_COUNT; t++) g_avx2[t] = *st_type_traits_get((st_type)t);
    memcpy(g_vnni, g_avx2, sizeof g_vnni);
    st_quant_avxvnni_install(g_vnni);
}

/* ---- weight rows ------------------------------------------------------------ */

static void set_fp16(uint8_t *b, size_t off, float v) {
    const st_fp16 h = st_fp32_to_fp16(v);
    memcpy(b + off, &h, 2);
}

/* offsets of the fp16 scale fields (d, and dmin for the K-quants with mins) */
static void scale_fields(st_type t, size_t *d, size_t *dmin) {
    *dmin = SIZE_MAX;
    switch (t) {
    case ST_TYPE_Q4_0: *d = offsetof(st_block_q4_0, d); break;
    case ST_TYPE_Q5_0: *d = offsetof(st_block_q5_0, d); break;
    case ST_TYPE_Q8_0: *d = offsetof(st_block_q8_0, d); break;
    case ST_TYPE_Q2_K: *d = offsetof(st_block_q2_K, d), *dmin = offsetof(st_block_q2_K, dmin); break;
    case ST_TYPE_Q3_K: *d = offsetof(st_block_q3_K, d); break;
    case ST_TYPE_Q4_K: *d = offsetof(st_block_q4_K, d), *dmin = offsetof(st_block_q4_K, dmin); break;
    case ST_TYPE_Q5_K: *d = offsetof(st_block_q5_K, d), *dmin = offsetof(st_block_q5_K, dmin); break;
    case ST_TYPE_Q6_K: *d = offsetof(st_block_q6_K, d); break;
    default: cr_assert_fail("no scale fields for type %d", (int)t);
    }
}

enum wkind { W_QUANT, W_RAW, W_ONES, W_ZERO, W_NKIND };
static const char *const k_wkind[] = {"quantized", "raw-bytes", "all-bits-set", "all-zero"};

/* kind W_QUANT: the reference quantizer on gaussian floats; W_RAW: random
 * bytes (every quant and packed-scale bit pattern); W_ONES: every byte 0xFF
 * (largest quants and sub-scales); W_ZERO: zero bytes. Then sane fp16 scales
 * over the scale fields (except for W_QUANT). */
static void weight_row(st_type t, uint8_t *row, int n, enum wkind kind) {
    const st_type_traits *ref = st_type_traits_ref(t);
    const int nb = n / ref->blck_size;
    const size_t sz = (size_t)nb * ref->type_size;
    if (kind == W_QUANT) {
        float *xf = malloc(sizeof(float) * (size_t)n);
        rnd_floats(xf, n, (rnd_u64() & 1) ? 0.02f : 3.0f);
        cr_assert(st_quantize_row(t, xf, row, n) == sz);
        free(xf);
        return;
    }
    for (size_t i = 0; i < sz; i++) row[i] = kind == W_RAW ? (uint8_t)(rnd_u64() >> 56) : kind == W_ONES ? 0xFF : 0;
    size_t d, dmin;
    scale_fields(t, &d, &dmin);
    for (int b = 0; b < nb; b++) {
        uint8_t *blk = row + (size_t)b * ref->type_size;
        const float sign = (dmin == SIZE_MAX && (rnd_u64() & 1)) ? -1.0f : 1.0f;
        set_fp16(blk, d, sign * (1e-3f + rnd_unit() * 0.1f));
        if (dmin != SIZE_MAX) set_fp16(blk, dmin, 1e-3f + rnd_unit() * 0.1f);
    }
}

enum akind { A_GAUSS, A_BIG, A_ZEROS, A_EXTREME, A_NKIND };
static const char *const k_akind[] = {"gaussian", "large", "zero-prefix", "extreme"};

/* activations: gaussian; large scale; gaussian with the first 64 zero (and
 * all-zero blocks); +-1 so that the quantized values are all +-127 */
static void act_row(float *a, int n, enum akind kind) {
    rnd_floats(a, n, kind == A_BIG ? 100.0f : 1.0f);
    if (kind == A_ZEROS)
        for (int i = 0; i < n && i < 64; i++) a[i] = 0.0f;
    if (kind == A_EXTREME)
        for (int i = 0; i < n; i++) a[i] = (rnd_u64() & 1) ? 1.0f : -1.0f;
}

/* ---- checks ------------------------------------------------------------------- */

static void check_row(st_type t, const uint8_t *w, int n, const float *act, const char *what) {
    const st_type_traits *ref = st_type_traits_ref(t);
    const st_type vt = ref->vec_dot_type;
    const size_t ysz = st_row_size(vt, n);
    uint8_t *y = malloc(ysz * ST_VEC_DOT_NC_MAX + 64);
    st_type_traits_ref(vt)->from_float(act, y, n);

    float s_ref = NAN, s_avx2 = NAN, s_vnni = NAN;
    ref->vec_dot(n, &s_ref, w, y);
    g_avx2[t].vec_dot(n, &s_avx2, w, y);
    g_vnni[t].vec_dot(n, &s_vnni, w, y);
    cr_assert(memcmp(&s_vnni, &s_avx2, sizeof s_vnni) == 0, "%s %s n=%d: VNNI %.9g differs from AVX2 %.9g", what,
              ref->name, n, s_vnni, s_avx2);

    float *xf = malloc(sizeof(float) * (size_t)n), *yf = malloc(sizeof(float) * (size_t)n);
    ref->to_float(w, xf, n);
    st_type_traits_ref(vt)->to_float(y, yf, n);
    double mag = 0;
    for (int i = 0; i < n; i++) mag += fabs((double)xf[i] * (double)yf[i]);
    const double tol = 1e-5 * mag + 1e-6 * fabs((double)s_ref) + 1e-30;
    cr_assert(isfinite(s_ref) && fabs((double)s_vnni - (double)s_ref) <= tol,
              "%s %s n=%d: VNNI %.9g vs reference %.9g (sum|xy| %.6g)", what, ref->name, n, s_vnni, s_ref, mag);

    /* the prompt path (vec_dot_nc, AVX2) gives each column exactly what the
     * VNNI vec_dot gives it alone: copies of this row and others */
    const size_t by = ysz;
    for (int c = 1; c < ST_VEC_DOT_NC_MAX; c++) {
        rnd_floats(xf, n, c == 2 ? 30.0f : 1.0f);
        st_type_traits_ref(vt)->from_float(xf, y + (size_t)c * by, n);
    }
    for (int ny = 1; ny <= ST_VEC_DOT_NC_MAX; ny++) {
        float s_nc[ST_VEC_DOT_NC_MAX];
        g_avx2[t].vec_dot_nc(n, s_nc, w, y, by, ny);
        for (int c = 0; c < ny; c++) {
            float s1;
            g_vnni[t].vec_dot(n, &s1, w, y + (size_t)c * by);
            cr_assert(memcmp(&s1, &s_nc[c], sizeof s1) == 0, "%s %s n=%d ny=%d col %d: vec_dot_nc %.9g vs VNNI %.9g",
                      what, ref->name, n, ny, c, s_nc[c], s1);
        }
    }
    free(xf);
    free(yf);
    free(y);
}

static void suite(st_type t) {
    tables();
    cr_assert(g_vnni[t].vec_dot != g_avx2[t].vec_dot, "%s: no VNNI kernel installed", st_type_name(t));
    const int bs = st_type_traits_ref(t)->blck_size;
    /* 32-element types: 1..13 blocks (every tail of the 4-block loop), the
     * model's rows; K-quants: 1..6 super-blocks and the model's rows */
    static const int lens32[] = {32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 2048, 4096, 5632};
    static const int lensK[] = {256, 512, 768, 1024, 1280, 1536, 2048, 4096, 5632};
    const int *lens = bs == 32 ? lens32 : lensK;
    const int nlen = bs == 32 ? (int)(sizeof lens32 / sizeof *lens32) : (int)(sizeof lensK / sizeof *lensK);
    for (int li = 0; li < nlen; li++) {
        const int n = lens[li];
        uint8_t *w = malloc(st_row_size(t, n));
        float *act = malloc(sizeof(float) * (size_t)n);
        for (int wk = 0; wk < W_NKIND; wk++)
            for (int ak = 0; ak < A_NKIND; ak++) {
                weight_row(t, w, n, (enum wkind)wk);
                act_row(act, n, (enum akind)ak);
                char what[64];
                snprintf(what, sizeof what, "%s weights, %s activations", k_wkind[wk], k_akind[ak]);
                check_row(t, w, n, act, what);
            }
        free(w);
        free(act);
    }
}

#define VNNI_TEST(T, NAME)                                 \
    Test(quant_vnni_dot, NAME, .init = no_vnni) { suite(T); }

VNNI_TEST(ST_TYPE_Q4_0, q4_0)
VNNI_TEST(ST_TYPE_Q5_0, q5_0)
VNNI_TEST(ST_TYPE_Q8_0, q8_0)
VNNI_TEST(ST_TYPE_Q2_K, q2_k)
VNNI_TEST(ST_TYPE_Q3_K, q3_k)
VNNI_TEST(ST_TYPE_Q4_K, q4_k)
VNNI_TEST(ST_TYPE_Q5_K, q5_k)
VNNI_TEST(ST_TYPE_Q6_K, q6_k)

/* many random rows at the model's lengths, quantized and raw */
Test(quant_vnni_dot, random_rows, .init = no_vnni) {
    tables();
    for (size_t ti = 0; ti < sizeof k_types / sizeof *k_types; ti++) {
        const st_type t = k_types[ti];
        for (int rep = 0; rep < 40; rep++) {
            const int n = (rep & 1) ? 2048 : 5632;
            uint8_t *w = malloc(st_row_size(t, n));
            float *act = malloc(sizeof(float) * (size_t)n);
            weight_row(t, w, n, (rep & 2) ? W_RAW : W_QUANT);
            act_row(act, n, (enum akind)(rep % A_NKIND));
            check_row(t, w, n, act, "random");
            free(w);
            free(act);
        }
    }
}

/* the hook in quant.c: VNNI kernels in the table when the CPU has AVX-VNNI */
Test(quant_vnni_hook, installed) {
    if (!st_cpu_has_avx2()) cr_skip_test("CPU lacks AVX2/FMA/F16C (or STRATA_NO_SIMD is set)");
    if (!cpu_avxvnni()) cr_skip_test("CPU lacks AVX-VNNI (CPUID.(7,1):EAX bit 4)");
    if (getenv("STRATA_NO_VNNI")) cr_skip_test("STRATA_NO_VNNI is set in the environment");
    cr_assert(st_cpu_has_avxvnni());
    st_type_traits tbl[ST_TYPE_COUNT];
    for (int t = 0; t < ST_TYPE_COUNT; t++) tbl[t] = *st_type_traits_get((st_type)t);
    st_quant_avxvnni_install(tbl); /* idempotent over the installed table */
    for (size_t ti = 0; ti < sizeof k_types / sizeof *k_types; ti++) {
        const st_type t = k_types[ti];
        cr_assert(st_type_traits_get(t)->vec_dot == tbl[t].vec_dot, "%s: VNNI vec_dot not installed", st_type_name(t));
        cr_assert(st_type_traits_get(t)->vec_dot != st_type_traits_ref(t)->vec_dot);
    }
}

Test(quant_vnni_hook, env_off, .init = no_vnni) {
    if (!st_cpu_has_avx2()) cr_skip_test("CPU lacks AVX2/FMA/F16C (or STRATA_NO_SIMD is set)");
    cr_assert(!st_cpu_has_avxvnni());
    st_type_traits tbl[ST_TYPE_COUNT];
    for (int t = 0; t < ST_TYPE_COUNT; t++) tbl[t] = *st_type_traits_get((st_type)t);
    if (!cpu_avxvnni()) return;
    st_quant_avxvnni_install(tbl);
    cr_assert(st_type_traits_get(ST_TYPE_Q4_K)->vec_dot != tbl[ST_TYPE_Q4_K].vec_dot,
              "VNNI kernel in the table despite STRATA_NO_VNNI=1");
}
