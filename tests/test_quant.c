/* test_quant.c — the reference kernels of core/quant.c: block layouts and the
 * type table, fp16/bf16 conversions, quantize/dequantize accuracy, dot
 * products against quantized activations, and golden checks against the
 * tiny-14m GGUF files (F32 file = ground truth). */
#include "gguf.h"
#include "quant.h"
#include "quant_impl.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers -------------------------------------------------------------- */

static uint64_t rng_state;
static void rng_seed(uint64_t s) { rng_state = s * 0x9E3779B97F4A7C15ull + 1; }
static uint64_t rng_u64(void) {
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}
static double rng_unif(void) { return ((rng_u64() >> 11) + 0.5) * 0x1p-53; } /* (0,1) */
static float rng_normal(void) {
    return (float)(sqrt(-2.0 * log(rng_unif())) * cos(2.0 * M_PI * rng_unif()));
}
static void fill_normal(float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) x[i] = scale * rng_normal();
}

static float bits_f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t f_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static double rel_rmse(const float *a, const float *ref, int64_t n) {
    double e = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)a[i] - ref[i];
        e += d * d;
        s += (double)ref[i] * ref[i];
    }
    return s > 0 ? sqrt(e / s) : sqrt(e);
}

/* every type with a reference quantizer */
static const st_type k_quantizable[] = {
    ST_TYPE_F32, ST_TYPE_F16, ST_TYPE_BF16, ST_TYPE_Q4_0, ST_TYPE_Q4_1, ST_TYPE_Q5_0, ST_TYPE_Q5_1,
    ST_TYPE_Q8_0, ST_TYPE_Q8_1, ST_TYPE_Q8_K, ST_TYPE_Q2_K, ST_TYPE_Q3_K, ST_TYPE_Q4_K, ST_TYPE_Q5_K,
    ST_TYPE_Q6_K,
};
#define N_QUANTIZABLE (int)(sizeof k_quantizable / sizeof k_quantizable[0])

/* weight types and the activation type llama.cpp quantizes to for them */
static const struct { st_type w, a; } k_weight_types[] = {
    {ST_TYPE_F32, ST_TYPE_F32},   {ST_TYPE_F16, ST_TYPE_F16},   {ST_TYPE_BF16, ST_TYPE_BF16},
    {ST_TYPE_Q4_0, ST_TYPE_Q8_0}, {ST_TYPE_Q4_1, ST_TYPE_Q8_1}, {ST_TYPE_Q5_0, ST_TYPE_Q8_0},
    {ST_TYPE_Q5_1, ST_TYPE_Q8_1}, {ST_TYPE_Q8_0, ST_TYPE_Q8_0}, {ST_TYPE_Q2_K, ST_TYPE_Q8_K},
    {ST_TYPE_Q3_K, ST_TYPE_Q8_K}, {ST_TYPE_Q4_K, ST_TYPE_Q8_K}, {ST_TYPE_Q5_K, ST_TYPE_Q8_K},
    {ST_TYPE_Q6_K, ST_TYPE_Q8_K},
};
#define N_WEIGHT_TYPES (int)(sizeof k_weight_types / sizeof k_weight_types[0])

/* Relative RMS error bound of quantize->dequantize on N(0,1) data. Measured
 * (the same as with ggml's reference quantizers, which ours reproduce):
 * F16 .00021, BF16 .0017, Q8_0/Q8_1 .0054, Q8_K .0070, Q6_K .0177,
 * Q5_K .036, Q5_1 .038, Q5_0 .043, Q4_K .072, Q4_1 .079, Q4_0 .086,
 * Q3_K .150, Q2_K .30. Bounds are ~1.2x that; uniform and offset data come
 * out lower. */
static double rmse_bound(st_type t) {
    switch (t) {
    case ST_TYPE_F32: return 1e-7;
    case ST_TYPE_F16: return 3e-4;
    case ST_TYPE_BF16: return 2.2e-3;
    case ST_TYPE_Q8_0: case ST_TYPE_Q8_1: return 0.0065;
    case ST_TYPE_Q8_K: return 0.0085;
    case ST_TYPE_Q6_K: return 0.021;
    case ST_TYPE_Q5_K: return 0.043;
    case ST_TYPE_Q5_0: return 0.051;
    case ST_TYPE_Q5_1: return 0.046;
    case ST_TYPE_Q4_K: return 0.085;
    case ST_TYPE_Q4_0: return 0.10;
    case ST_TYPE_Q4_1: return 0.094;
    case ST_TYPE_Q3_K: return 0.18;
    case ST_TYPE_Q2_K: return 0.36;
    default: return 0;
    }
}

/* ---- layouts and the type table ----------------------------------------- */

Test(quant, block_sizes) {
    cr_assert_eq(sizeof(st_block_q4_0), 18);
    cr_assert_eq(sizeof(st_block_q4_1), 20);
    cr_assert_eq(sizeof(st_block_q5_0), 22);
    cr_assert_eq(sizeof(st_block_q5_1), 24);
    cr_assert_eq(sizeof(st_block_q8_0), 34);
    cr_assert_eq(sizeof(st_block_q8_1), 36);
    cr_assert_eq(sizeof(st_block_q2_K), 84);
    cr_assert_eq(sizeof(st_block_q3_K), 110);
    cr_assert_eq(sizeof(st_block_q4_K), 144);
    cr_assert_eq(sizeof(st_block_q5_K), 176);
    cr_assert_eq(sizeof(st_block_q6_K), 210);
    cr_assert_eq(sizeof(st_block_q8_K), 292);
}

Test(quant, type_table) {
    /* name, block size and block bytes of every ggml type (ggml.c's table) */
    static const struct { int id; const char *name; int bs; size_t sz; } k[] = {
        {0, "F32", 1, 4},           {1, "F16", 1, 2},          {2, "Q4_0", 32, 18},
        {3, "Q4_1", 32, 20},        {6, "Q5_0", 32, 22},       {7, "Q5_1", 32, 24},
        {8, "Q8_0", 32, 34},        {9, "Q8_1", 32, 36},       {10, "Q2_K", 256, 84},
        {11, "Q3_K", 256, 110},     {12, "Q4_K", 256, 144},    {13, "Q5_K", 256, 176},
        {14, "Q6_K", 256, 210},     {15, "Q8_K", 256, 292},    {16, "IQ2_XXS", 256, 66},
        {17, "IQ2_XS", 256, 74},    {18, "IQ3_XXS", 256, 98},  {19, "IQ1_S", 256, 50},
        {20, "IQ4_NL", 32, 18},     {21, "IQ3_S", 256, 110},   {22, "IQ2_S", 256, 82},
        {23, "IQ4_XS", 256, 136},   {24, "I8", 1, 1},          {25, "I16", 1, 2},
        {26, "I32", 1, 4},          {27, "I64", 1, 8},         {28, "F64", 1, 8},
        {29, "IQ1_M", 256, 56},     {30, "BF16", 1, 2},        {34, "TQ1_0", 256, 54},
        {35, "TQ2_0", 256, 66},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        const st_type_traits *tr = st_type_traits_ref((st_type)k[i].id);
        cr_assert_not_null(tr);
        cr_assert_not_null(tr->name, "type %d has no name", k[i].id);
        cr_assert_str_eq(tr->name, k[i].name);
        cr_assert_str_eq(st_type_name((st_type)k[i].id), k[i].name);
        cr_assert_eq(tr->blck_size, k[i].bs, "%s block size", k[i].name);
        cr_assert_eq(tr->type_size, k[i].sz, "%s type size", k[i].name);
        const st_type_traits *fast = st_type_traits_get((st_type)k[i].id);
        cr_assert_str_eq(fast->name, tr->name);
        cr_assert_eq(fast->type_size, tr->type_size);
    }
    /* removed ids */
    const int removed[] = {4, 5, 31, 32, 33};
    for (size_t i = 0; i < sizeof removed / sizeof removed[0]; i++) {
        cr_assert_null(st_type_name((st_type)removed[i]));
        cr_assert_eq(st_row_size((st_type)removed[i], 256), 0);
    }
    cr_assert_null(st_type_name((st_type)ST_TYPE_COUNT));
    cr_assert_null(st_type_name((st_type)1000));
    cr_assert_null(st_type_traits_get((st_type)ST_TYPE_COUNT));
    /* every id below the count is valid to ask about */
    for (int t = 0; t < ST_TYPE_COUNT; t++) {
        cr_assert_not_null(st_type_traits_get((st_type)t));
        cr_assert_not_null(st_type_traits_ref((st_type)t));
    }

    /* quantization flags */
    cr_assert(!st_type_traits_ref(ST_TYPE_F32)->is_quantized);
    cr_assert(!st_type_traits_ref(ST_TYPE_F16)->is_quantized);
    cr_assert(!st_type_traits_ref(ST_TYPE_BF16)->is_quantized);
    cr_assert(st_type_traits_ref(ST_TYPE_Q4_K)->is_quantized);
    cr_assert(st_type_traits_ref(ST_TYPE_IQ2_XXS)->is_quantized);
    cr_assert(!st_type_traits_ref(ST_TYPE_IQ2_XXS)->supported);
    cr_assert(!st_type_traits_ref(ST_TYPE_TQ1_0)->supported);
    cr_assert(!st_type_traits_ref(ST_TYPE_I32)->supported);

    /* kernels and activation types as llama.cpp pairs them */
    for (int i = 0; i < N_WEIGHT_TYPES; i++) {
        const st_type_traits *tr = st_type_traits_ref(k_weight_types[i].w);
        cr_assert(tr->supported, "%s supported", tr->name);
        cr_assert_not_null(tr->to_float, "%s to_float", tr->name);
        cr_assert_not_null(tr->vec_dot, "%s vec_dot", tr->name);
        cr_assert_eq(tr->vec_dot_type, k_weight_types[i].a, "%s vec_dot_type", tr->name);
        const st_type_traits *fast = st_type_traits_get(k_weight_types[i].w);
        cr_assert(fast->supported && fast->to_float && fast->vec_dot);
        cr_assert_eq(fast->vec_dot_type, k_weight_types[i].a);
    }
    for (int i = 0; i < N_QUANTIZABLE; i++) {
        const st_type_traits *tr = st_type_traits_ref(k_quantizable[i]);
        cr_assert_not_null(tr->from_float, "%s from_float", tr->name);
        cr_assert_not_null(tr->to_float, "%s to_float", tr->name);
    }
}

Test(quant, row_size) {
    cr_assert_eq(st_row_size(ST_TYPE_F32, 10), 40);
    cr_assert_eq(st_row_size(ST_TYPE_F16, 7), 14);
    cr_assert_eq(st_row_size(ST_TYPE_BF16, 3), 6);
    cr_assert_eq(st_row_size(ST_TYPE_Q4_0, 64), 36);
    cr_assert_eq(st_row_size(ST_TYPE_Q4_0, 33), 0);
    cr_assert_eq(st_row_size(ST_TYPE_Q8_0, 4096), 128 * 34);
    cr_assert_eq(st_row_size(ST_TYPE_Q6_K, 512), 420);
    cr_assert_eq(st_row_size(ST_TYPE_Q4_K, 256 * 11008 / 256), 11008 / 256 * 144);
    cr_assert_eq(st_row_size(ST_TYPE_Q2_K, 128), 0);
    cr_assert_eq(st_row_size(ST_TYPE_Q4_K, 0), 0);
    /* 64-bit sizes */
    cr_assert_eq(st_row_size(ST_TYPE_Q8_0, (int64_t)32 << 30), (size_t)34 << 30);

    float x[256] = {0};
    uint8_t out[512];
    cr_assert_eq(st_quantize_row(ST_TYPE_Q4_K, x, out, 256), 144);
    cr_assert_eq(st_quantize_row(ST_TYPE_IQ2_XXS, x, out, 256), 0);
    cr_assert_eq(st_quantize_row(ST_TYPE_Q4_0, x, out, 31), 0);
}

Test(quant, cpu_detection_and_env) {
    /* st_cpu_has_avx2 is stable and the fast table exists either way */
    bool a = st_cpu_has_avx2();
    cr_assert_eq(a, st_cpu_has_avx2());
    const char *e = getenv("STRATA_NO_SIMD");
    if (e && strcmp(e, "1") == 0) {
        cr_assert(!a, "STRATA_NO_SIMD=1 must select the scalar table");
        for (int i = 0; i < N_WEIGHT_TYPES; i++)
            cr_assert_eq(st_type_traits_get(k_weight_types[i].w)->vec_dot,
                         st_type_traits_ref(k_weight_types[i].w)->vec_dot);
    }
}

/* ---- fp16 ----------------------------------------------------------------- */

static bool half_is_nan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }

Test(fp16, exhaustive_roundtrip_and_table) {
    st_quant_init();
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = st_fp16_to_fp32((st_fp16)h);
        const float t = st_fp16_table[h];
        if (half_is_nan((uint16_t)h)) {
            cr_assert(isnan(f) && isnan(t), "h=%04x", h);
            cr_assert(half_is_nan(st_fp32_to_fp16(f)), "nan stays nan: h=%04x", h);
            cr_assert_eq(st_fp32_to_fp16(f) & 0x8000, h & 0x8000, "nan sign h=%04x", h);
            continue;
        }
        cr_assert_eq(f_bits(f), f_bits(t), "table mismatch at %04x", h);
        cr_assert_eq(st_fp32_to_fp16(f), h, "roundtrip %04x -> %a -> %04x", h, f, st_fp32_to_fp16(f));
    }
}

Test(fp16, decode_values) {
    cr_assert_eq(st_fp16_to_fp32(0x3c00), 1.0f);
    cr_assert_eq(st_fp16_to_fp32(0xc000), -2.0f);
    cr_assert_eq(st_fp16_to_fp32(0x7bff), 65504.0f);
    cr_assert_eq(st_fp16_to_fp32(0x0001), 0x1p-24f);
    cr_assert_eq(st_fp16_to_fp32(0x03ff), 1023 * 0x1p-24f);
    cr_assert_eq(st_fp16_to_fp32(0x0400), 0x1p-14f);
    cr_assert_eq(f_bits(st_fp16_to_fp32(0x8000)), 0x80000000u);
    cr_assert(isinf(st_fp16_to_fp32(0x7c00)) && st_fp16_to_fp32(0x7c00) > 0);
    cr_assert(isinf(st_fp16_to_fp32(0xfc00)) && st_fp16_to_fp32(0xfc00) < 0);
    cr_assert(isnan(st_fp16_to_fp32(0x7e00)));
}

Test(fp16, encode_rounding_specials) {
    cr_assert_eq(st_fp32_to_fp16(1.0f), 0x3c00);
    cr_assert_eq(st_fp32_to_fp16(-0.0f), 0x8000);
    cr_assert_eq(st_fp32_to_fp16(0.0f), 0x0000);
    cr_assert_eq(st_fp32_to_fp16(65504.0f), 0x7bff);
    cr_assert_eq(st_fp32_to_fp16(65519.996f), 0x7bff);
    cr_assert_eq(st_fp32_to_fp16(65520.0f), 0x7c00); /* tie with an odd mantissa -> inf */
    cr_assert_eq(st_fp32_to_fp16(1e10f), 0x7c00);
    cr_assert_eq(st_fp32_to_fp16(-1e10f), 0xfc00);
    cr_assert_eq(st_fp32_to_fp16(INFINITY), 0x7c00);
    cr_assert_eq(st_fp32_to_fp16(-INFINITY), 0xfc00);
    cr_assert(half_is_nan(st_fp32_to_fp16(NAN)));
    cr_assert(half_is_nan(st_fp32_to_fp16(bits_f(0x7f800001u)))); /* signalling payload in low bits */
    cr_assert_eq(st_fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00);        /* tie -> even */
    cr_assert_eq(st_fp32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02);    /* tie -> even (up) */
    cr_assert_eq(st_fp32_to_fp16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
    cr_assert_eq(st_fp32_to_fp16(2047.5f), 0x67ff + 1);            /* rounds to 2048 */
    /* subnormals */
    cr_assert_eq(st_fp32_to_fp16(0x1p-24f), 0x0001);
    cr_assert_eq(st_fp32_to_fp16(0x1p-25f), 0x0000);               /* tie -> even (0) */
    cr_assert_eq(st_fp32_to_fp16(0x1p-25f * 1.0001f), 0x0001);
    cr_assert_eq(st_fp32_to_fp16(3 * 0x1p-25f), 0x0002);           /* 1.5 units -> 2 */
    cr_assert_eq(st_fp32_to_fp16(5 * 0x1p-25f), 0x0002);           /* 2.5 units -> 2 */
    cr_assert_eq(st_fp32_to_fp16(-0x1p-24f), 0x8001);
    cr_assert_eq(st_fp32_to_fp16(0x1p-14f - 0x1p-26f), 0x0400);    /* rounds up into the normals */
    cr_assert_eq(st_fp32_to_fp16(1e-30f), 0x0000);
    cr_assert_eq(st_fp32_to_fp16(-1e-30f), 0x8000);
    cr_assert_eq(st_fp32_to_fp16(FLT_MIN), 0x0000);
}

/* round-to-nearest-even checked against neighbours, computed in double */
Test(fp16, encode_random_is_nearest_even) {
    rng_seed(11);
    for (int it = 0; it < 2000000; it++) {
        /* random bit patterns over the interesting exponent range */
        uint32_t u = (uint32_t)rng_u64();
        uint32_t e = 96 + (uint32_t)(rng_u64() % 48); /* 2^-31 .. 2^16 */
        u = (u & 0x807fffffu) | (e << 23);
        const float f = bits_f(u);
        const uint16_t h = st_fp32_to_fp16(f);
        cr_assert_eq(h & 0x8000, (u >> 16) & 0x8000);
        const double a = fabs((double)f);
        const uint16_t m = h & 0x7fff;
        if (a >= 65520.0) {
            cr_assert_eq(m, 0x7c00, "%a", f);
            continue;
        }
        cr_assert(m < 0x7c00, "%a -> %04x", f, h);
        const double v = st_fp16_to_fp32(m);
        const double up = m + 1 < 0x7c00 ? st_fp16_to_fp32((st_fp16)(m + 1)) : 65536.0;
        const double dn = m > 0 ? st_fp16_to_fp32((st_fp16)(m - 1)) : -1.0;
        const double err = fabs(a - v);
        cr_assert(err <= fabs(up - a) && err <= fabs(a - dn), "%a -> %04x not nearest", f, h);
        if (err == fabs(up - a) || err == fabs(a - dn)) cr_assert((m & 1) == 0, "%a tie not even", f);
    }
}

/* ---- bf16 ----------------------------------------------------------------- */

Test(bf16, exhaustive_roundtrip) {
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = st_bf16_to_fp32((st_bf16)h);
        cr_assert_eq(f_bits(f), h << 16);
        const bool nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
        if (nan) {
            const st_bf16 b = st_fp32_to_bf16(f);
            cr_assert((b & 0x7f80) == 0x7f80 && (b & 0x40), "nan quiet: %04x -> %04x", h, b);
        } else {
            cr_assert_eq(st_fp32_to_bf16(f), h, "bf16 roundtrip %04x", h);
        }
    }
}

Test(bf16, rounding) {
    cr_assert_eq(st_fp32_to_bf16(1.0f), 0x3f80);
    cr_assert_eq(st_fp32_to_bf16(bits_f(0x3f808000u)), 0x3f80); /* tie -> even */
    cr_assert_eq(st_fp32_to_bf16(bits_f(0x3f818000u)), 0x3f82); /* tie -> even (up) */
    cr_assert_eq(st_fp32_to_bf16(bits_f(0x3f808001u)), 0x3f81);
    cr_assert_eq(st_fp32_to_bf16(bits_f(0x3f807fffu)), 0x3f80);
    cr_assert_eq(st_fp32_to_bf16(FLT_MAX), 0x7f80);             /* overflows to inf */
    cr_assert_eq(st_fp32_to_bf16(-INFINITY), 0xff80);
    cr_assert_eq(st_fp32_to_bf16(-0.0f), 0x8000);
    cr_assert_eq(st_fp32_to_bf16(bits_f(0x00018000u)), 0x0002);  /* subnormals round too */
    const st_bf16 n = st_fp32_to_bf16(bits_f(0x7f800001u));
    cr_assert((n & 0x7f80) == 0x7f80 && (n & 0x7f), "nan stays nan");
    rng_seed(12);
    for (int it = 0; it < 1000000; it++) {
        const uint32_t u = (uint32_t)rng_u64();
        if ((u & 0x7f800000u) == 0x7f800000u) continue;
        const st_bf16 b = st_fp32_to_bf16(bits_f(u));
        const uint32_t lo = u & 0xffff0000u, r = u & 0xffffu;
        uint32_t want = lo >> 16;
        if (r > 0x8000u || (r == 0x8000u && (want & 1))) want++;
        cr_assert_eq(b, want, "%08x", u);
    }
}

/* ---- quantize -> dequantize ---------------------------------------------- */

static void roundtrip_check(st_type t, const float *x, int64_t n, double bound, const char *what) {
    const st_type_traits *tr = st_type_traits_ref(t);
    const size_t sz = st_row_size(t, n);
    cr_assert_gt(sz, 0);
    uint8_t *q = malloc(sz);
    float *y = malloc((size_t)n * sizeof *y);
    cr_assert_eq(st_quantize_row(t, x, q, n), sz);
    tr->to_float(q, y, n);
    for (int64_t i = 0; i < n; i++) cr_assert(isfinite(y[i]), "%s %s: y[%ld] not finite", tr->name, what, (long)i);
    const double e = rel_rmse(y, x, n);
    cr_assert_leq(e, bound, "%s %s: relative rmse %.5f > %.5f", tr->name, what, e, bound);
    free(q);
    free(y);
}

Test(quant, roundtrip_normal) {
    const int64_t n = 256 * 64;
    float *x = malloc(n * sizeof *x);
    rng_seed(1);
    fill_normal(x, n, 1.0f);
    for (int i = 0; i < N_QUANTIZABLE; i++) roundtrip_check(k_quantizable[i], x, n, rmse_bound(k_quantizable[i]), "N(0,1)");
    /* a different scale changes nothing relative */
    fill_normal(x, n, 0.02f);
    for (int i = 0; i < N_QUANTIZABLE; i++) roundtrip_check(k_quantizable[i], x, n, rmse_bound(k_quantizable[i]), "N(0,0.02)");
    free(x);
}

Test(quant, roundtrip_quality_is_meaningful) {
    /* Sanity of the test itself: the data must be hard enough that each
     * format lands near its expected error (within 0.8x..1.2x). */
    static const struct { st_type t; double lo; } k[] = {
        {ST_TYPE_Q8_0, 0.0043}, {ST_TYPE_Q6_K, 0.014}, {ST_TYPE_Q5_K, 0.029}, {ST_TYPE_Q4_K, 0.058},
        {ST_TYPE_Q4_0, 0.069},  {ST_TYPE_Q3_K, 0.12},  {ST_TYPE_Q2_K, 0.24},
    };
    const int64_t n = 256 * 64;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    uint8_t *q = malloc(st_row_size(ST_TYPE_Q8_K, n));
    rng_seed(2);
    fill_normal(x, n, 1.0f);
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        st_quantize_row(k[i].t, x, q, n);
        st_type_traits_ref(k[i].t)->to_float(q, y, n);
        const double e = rel_rmse(y, x, n);
        cr_assert_geq(e, k[i].lo, "%s: rmse %.5f suspiciously low (test data broken?)", st_type_name(k[i].t), e);
        cr_assert_leq(e, rmse_bound(k[i].t));
    }
    free(x);
    free(y);
    free(q);
}

Test(quant, roundtrip_shapes) {
    /* offsets, uniform data, outliers, large and small magnitudes */
    const int64_t n = 256 * 16;
    float *x = malloc(n * sizeof *x);
    rng_seed(3);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(rng_unif() * 2 - 1);
    for (int i = 0; i < N_QUANTIZABLE; i++) roundtrip_check(k_quantizable[i], x, n, rmse_bound(k_quantizable[i]), "uniform");
    for (int64_t i = 0; i < n; i++) x[i] = 3.0f + 0.5f * rng_normal(); /* all positive: mins matter */
    for (int i = 0; i < N_QUANTIZABLE; i++) roundtrip_check(k_quantizable[i], x, n, rmse_bound(k_quantizable[i]), "offset");
    fill_normal(x, n, 1000.0f);
    for (int i = 0; i < N_QUANTIZABLE; i++) roundtrip_check(k_quantizable[i], x, n, rmse_bound(k_quantizable[i]), "x1000");
    fill_normal(x, n, 1e-3f);
    for (int i = 0; i < N_QUANTIZABLE; i++) roundtrip_check(k_quantizable[i], x, n, rmse_bound(k_quantizable[i]), "x1e-3");
    /* sparse outliers: heavy tails cost accuracy, so only a loose bound */
    fill_normal(x, n, 1.0f);
    for (int64_t i = 0; i < n; i += 97) x[i] *= 20.0f;
    for (int i = 0; i < N_QUANTIZABLE; i++) roundtrip_check(k_quantizable[i], x, n, 4 * rmse_bound(k_quantizable[i]) + 1e-6, "outliers");
    free(x);
}

Test(quant, zeros_and_constants) {
    const int64_t n = 512;
    float x[512], y[512];
    uint8_t q[2048];
    for (int i = 0; i < N_QUANTIZABLE; i++) {
        const st_type t = k_quantizable[i];
        memset(x, 0, sizeof x);
        memset(q, 0xAB, sizeof q);
        cr_assert_gt(st_quantize_row(t, x, q, n), 0);
        st_type_traits_ref(t)->to_float(q, y, n);
        for (int j = 0; j < n; j++) cr_assert_eq(y[j], 0.0f, "%s: zero row -> %g at %d", st_type_name(t), y[j], j);
        /* constant rows: represented closely */
        for (int j = 0; j < n; j++) x[j] = -0.75f;
        st_quantize_row(t, x, q, n);
        st_type_traits_ref(t)->to_float(q, y, n);
        for (int j = 0; j < n; j++) cr_assert(fabsf(y[j] + 0.75f) < 0.75f * 0.1f, "%s: const row -> %g", st_type_name(t), y[j]);
        /* one non-zero block among zero blocks */
        memset(x, 0, sizeof x);
        x[300] = 2.0f;
        st_quantize_row(t, x, q, n);
        st_type_traits_ref(t)->to_float(q, y, n);
        for (int j = 0; j < n; j++) cr_assert(fabsf(y[j] - x[j]) < 0.2f, "%s: spike row %d -> %g", st_type_name(t), j, y[j]);
    }
}

/* ---- activation formats: exactly ggml's ---------------------------------- */

Test(quant, q8_k_matches_ggml_definition) {
    const int64_t n = 256 * 8;
    float *x = malloc(n * sizeof *x);
    st_block_q8_K *q = malloc((n / 256) * sizeof *q);
    rng_seed(4);
    fill_normal(x, n, 0.7f);
    x[5] = -4.0f; /* block 0's largest magnitude is negative */
    st_quantize_row(ST_TYPE_Q8_K, x, q, n);
    for (int64_t b = 0; b < n / 256; b++) {
        const float *xb = x + 256 * b;
        float amax = 0, max = 0;
        for (int j = 0; j < 256; j++)
            if (fabsf(xb[j]) > amax) { amax = fabsf(xb[j]); max = xb[j]; }
        const float iscale = -127.f / max;
        cr_assert_eq(f_bits(q[b].d), f_bits(1 / iscale), "block %ld d", (long)b);
        for (int j = 0; j < 256; j++) {
            float r = nearbyintf(iscale * xb[j]);
            if (r > 127) r = 127;
            cr_assert_eq(q[b].qs[j], (int)r, "block %ld q[%d]", (long)b, j);
        }
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++) s += q[b].qs[16 * g + j];
            cr_assert_eq(q[b].bsums[g], s, "block %ld bsums[%d]", (long)b, g);
        }
    }
    /* the largest-magnitude value maps to -127 exactly (d carries the sign) */
    cr_assert_eq(q[0].qs[5], -127);
    cr_assert(q[0].d > 0);
    /* zero block: all zero, bsums too */
    memset(x, 0, 256 * sizeof *x);
    memset(q, 0x55, sizeof *q);
    st_quantize_row(ST_TYPE_Q8_K, x, q, 256);
    cr_assert_eq(q[0].d, 0.0f);
    for (int g = 0; g < 16; g++) cr_assert_eq(q[0].bsums[g], 0);
    free(x);
    free(q);
}

Test(quant, q8_0_q8_1_match_ggml_definition) {
    const int64_t n = 32 * 16;
    float x[512];
    st_block_q8_0 a[16];
    st_block_q8_1 b[16];
    rng_seed(5);
    fill_normal(x, n, 2.0f);
    st_quantize_row(ST_TYPE_Q8_0, x, a, n);
    st_quantize_row(ST_TYPE_Q8_1, x, b, n);
    for (int k = 0; k < 16; k++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * k + j]));
        const float d = amax / 127, id = 1.0f / d;
        cr_assert_eq(a[k].d, st_fp32_to_fp16(d));
        cr_assert_eq(b[k].d, st_fp32_to_fp16(d));
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            const int want = (int)roundf(x[32 * k + j] * id);
            cr_assert_eq(a[k].qs[j], want);
            cr_assert_eq(b[k].qs[j], want);
            sum += want;
        }
        cr_assert_eq(b[k].s, st_fp32_to_fp16(sum * d));
    }
}

/* ---- hand-made blocks: decode known bit patterns -------------------------- */

Test(quant, handmade_blocks) {
    float y[256];
    /* Q4_0: d = 0.5, element j (j<16) = low nibble of qs[j], j+16 the high one */
    st_block_q4_0 b40 = {.d = st_fp32_to_fp16(0.5f)};
    for (int j = 0; j < 16; j++) b40.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    st_type_traits_ref(ST_TYPE_Q4_0)->to_float(&b40, y, 32);
    for (int j = 0; j < 16; j++) {
        cr_assert_eq(y[j], 0.5f * (j - 8));
        cr_assert_eq(y[j + 16], 0.5f * (7 - j));
    }
    /* Q5_0: high bit of element j in bit j of qh, element j+16 in bit j+16 */
    st_block_q5_0 b50 = {.d = st_fp32_to_fp16(1.0f)};
    const uint32_t qh = 0x80000001u; /* element 0 and element 31 */
    memcpy(b50.qh, &qh, 4);
    memset(b50.qs, 0, sizeof b50.qs);
    st_type_traits_ref(ST_TYPE_Q5_0)->to_float(&b50, y, 32);
    for (int j = 0; j < 32; j++) cr_assert_eq(y[j], (j == 0 || j == 31) ? 0.0f : -16.0f, "q5_0 %d", j);
    /* Q4_K: scales 0..3 in the low 6 bits of bytes 0..3, mins in 4..7;
     * scales 4..7 in nibbles of bytes 8..11 with top bits in bytes 0..3 */
    st_block_q4_K b4k;
    memset(&b4k, 0, sizeof b4k);
    b4k.d = st_fp32_to_fp16(1.0f);
    b4k.dmin = st_fp32_to_fp16(1.0f);
    b4k.scales[0] = 1;                /* sub-block 0: scale 1, min 0 */
    b4k.scales[8] = 0x02 | (0x3 << 4); /* sub-block 4: scale 2 + (top bits of byte 0)<<4, min 3 */
    b4k.scales[0] |= 0x40;             /* sub-block 4 scale += 16 -> 18 */
    for (int j = 0; j < 128; j++) b4k.qs[j] = 0x21; /* low nibble 1, high 2 */
    st_type_traits_ref(ST_TYPE_Q4_K)->to_float(&b4k, y, 256);
    for (int j = 0; j < 32; j++) cr_assert_eq(y[j], 1.0f);        /* 1*1 - 0 */
    for (int j = 32; j < 64; j++) cr_assert_eq(y[j], 0.0f);       /* scale 0 */
    for (int j = 128; j < 160; j++) cr_assert_eq(y[j], 18.0f - 3.0f, "q4_k %d = %g", j, y[j]);
    /* Q6_K: element 0 = (ql[0] low | qh[0] bits 0-1 << 4) - 32, scale[0] */
    st_block_q6_K b6k;
    memset(&b6k, 0, sizeof b6k);
    b6k.d = st_fp32_to_fp16(0.25f);
    for (int j = 0; j < 16; j++) b6k.scales[j] = (int8_t)(j - 8);
    b6k.ql[0] = 0x0F;   /* el 0 low 15; el 64 low 0 */
    b6k.qh[0] = 0x03;   /* el 0 high 3 -> q = 63 */
    b6k.ql[32] = 0x50;  /* el 96 low 5, el 32 low 0 */
    b6k.qh[0] |= 0x80;  /* el 96 high 2 -> q = 37 */
    st_type_traits_ref(ST_TYPE_Q6_K)->to_float(&b6k, y, 256);
    cr_assert_eq(y[0], 0.25f * -8 * 31);
    cr_assert_eq(y[96], 0.25f * (6 - 8) * 5);   /* sub-block 6 */
    cr_assert_eq(y[32], 0.25f * (2 - 8) * -32);  /* sub-block 2, q = 0 */
}

/* ---- dot products --------------------------------------------------------- */

/* Q4_1/Q5_1 dots use the Q8_1 block's s = d*sum(q), stored as fp16, for the
 * min term; the dequantized dot uses the exact sum. Slack for that rounding:
 * |m| * |s| * 2^-11 per block, with |m| <= max |w| of the block. */
static double q8_1_s_slack(st_type at, const void *aq, const float *wd, int64_t n) {
    if (at != ST_TYPE_Q8_1) return 0;
    const st_block_q8_1 *b = aq;
    double t = 0;
    for (int64_t k = 0; k < n / 32; k++) {
        double wmax = 0;
        for (int i = 0; i < 32; i++) wmax = fmax(wmax, fabs(wd[32 * k + i]));
        t += wmax * fabs(st_fp16_to_fp32(b[k].s)) * 0x1p-10;
    }
    return t;
}

/* dot of weight row w (type wt, quantized from wf) with activation x, through
 * the given traits: returns vec_dot(w, quant(x)) and, in *exact, the double
 * dot of the dequantized weight with the dequantized activation and in
 * *vs_float the dot with the float activation; *bound is the worst-case
 * effect of activation quantization (sum |w_i| * max error of x_i). */
static float dot_through(const st_type_traits *wtr, const st_type_traits *atr, const void *wq, const float *x,
                         int n, double *exact, double *vs_float, double *bound, double *mag) {
    const st_type at = wtr->vec_dot_type;
    uint8_t *aq = malloc(st_row_size(at, n));
    float *wd = malloc(n * sizeof *wd), *ad = malloc(n * sizeof *ad);
    atr->from_float(x, aq, n);
    wtr->to_float(wq, wd, n);
    st_type_traits_ref(at)->to_float(aq, ad, n);
    float s = NAN;
    wtr->vec_dot(n, &s, wq, aq);
    double e = 0, f = 0, b = 0, m = 0;
    const int bs = st_type_traits_ref(at)->blck_size;
    for (int i0 = 0; i0 < n; i0 += bs) {
        double amax = 0;
        for (int i = i0; i < i0 + bs; i++) amax = fmax(amax, fabs(x[i]));
        for (int i = i0; i < i0 + bs; i++) {
            e += (double)wd[i] * ad[i];
            f += (double)wd[i] * x[i];
            m += fabs((double)wd[i] * ad[i]);
            double maxerr;
            switch (at) {
            case ST_TYPE_F32: maxerr = 0; break;
            case ST_TYPE_F16: maxerr = fabs(x[i]) * 0x1p-11 + 0x1p-25; break;
            case ST_TYPE_BF16: maxerr = fabs(x[i]) * 0x1p-8; break;
            default: maxerr = amax / 127 * 0.6; break; /* half a step + fp16 rounding of d */
            }
            b += fabs(wd[i]) * maxerr;
        }
    }
    *exact = e;
    *vs_float = f;
    *bound = b;
    *mag = m + q8_1_s_slack(at, aq, wd, n) / 2e-5;
    free(aq);
    free(wd);
    free(ad);
    return s;
}

static void check_dots(const st_type_traits *(*get)(st_type), const char *which) {
    const int sizes[] = {256, 768, 4096};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const int n = sizes[si];
        float *w = malloc(n * sizeof *w), *x = malloc(n * sizeof *x);
        for (int wi = 0; wi < N_WEIGHT_TYPES; wi++) {
            const st_type wt = k_weight_types[wi].w;
            const st_type_traits *wtr = get(wt), *atr = get(wtr->vec_dot_type);
            cr_assert_not_null(atr->from_float, "%s: %s has no from_float", which, atr->name);
            uint8_t *wq = malloc(st_row_size(wt, n));
            for (int rep = 0; rep < 4; rep++) {
                rng_seed(100 + rep * 7 + si);
                fill_normal(w, n, 0.05f);
                fill_normal(x, n, rep == 3 ? 30.0f : 1.0f);
                if (rep == 2)
                    for (int i = 0; i < n; i++) x[i] = fabsf(x[i]) + 0.5f; /* positive: min terms */
                st_quantize_row(wt, w, wq, n);
                double exact, vs_float, bound, mag;
                const float s = dot_through(wtr, atr, wq, x, n, &exact, &vs_float, &bound, &mag);
                cr_assert(isfinite(s), "%s %s n=%d: not finite", which, wtr->name, n);
                /* the kernel computes the dot of the dequantized values... */
                const double tol = 2e-5 * mag + 1e-6 * fabs(exact) + 1e-30;
                cr_assert(fabs(s - exact) <= tol, "%s %s n=%d rep=%d: vec_dot %.7g vs dequantized dot %.7g (tol %.3g)",
                          which, wtr->name, n, rep, s, exact, tol);
                /* ...which is the float dot up to activation quantization */
                cr_assert(fabs(s - vs_float) <= bound + tol, "%s %s n=%d rep=%d: vec_dot %.7g vs float activations %.7g (bound %.3g)",
                          which, wtr->name, n, rep, s, vs_float, bound + tol);
            }
            free(wq);
        }
        free(w);
        free(x);
    }
}

Test(quant, vec_dot_ref) { check_dots(st_type_traits_ref, "ref"); }
Test(quant, vec_dot_fast_table) { check_dots(st_type_traits_get, "fast"); }

Test(quant, vec_dot_fast_matches_ref) {
    /* same quantized inputs through both tables: the SIMD kernels may sum in
     * another order, nothing more */
    const int n = 4096;
    float *w = malloc(n * sizeof *w), *x = malloc(n * sizeof *x);
    rng_seed(77);
    fill_normal(w, n, 0.05f);
    fill_normal(x, n, 1.0f);
    for (int wi = 0; wi < N_WEIGHT_TYPES; wi++) {
        const st_type wt = k_weight_types[wi].w, at = k_weight_types[wi].a;
        uint8_t *wq = malloc(st_row_size(wt, n)), *aq = malloc(st_row_size(at, n));
        float *wd = malloc(n * sizeof *wd), *ad = malloc(n * sizeof *ad);
        st_quantize_row(wt, w, wq, n);
        st_quantize_row(at, x, aq, n);
        st_type_traits_ref(wt)->to_float(wq, wd, n);
        st_type_traits_ref(at)->to_float(aq, ad, n);
        double mag = 0;
        for (int i = 0; i < n; i++) mag += fabs((double)wd[i] * ad[i]);
        mag += q8_1_s_slack(at, aq, wd, n) / 2e-5;
        float sr = NAN, sf = NAN;
        st_type_traits_ref(wt)->vec_dot(n, &sr, wq, aq);
        st_type_traits_get(wt)->vec_dot(n, &sf, wq, aq);
        cr_assert(fabs((double)sr - sf) <= 2e-5 * mag, "%s: ref %.7g fast %.7g", st_type_name(wt), sr, sf);
        /* fast dequantizers must be exact */
        float *wf = malloc(n * sizeof *wf);
        st_type_traits_get(wt)->to_float(wq, wf, n);
        cr_assert_eq(memcmp(wf, wd, n * sizeof *wf), 0, "%s: fast to_float differs", st_type_name(wt));
        free(wf);
        free(wq);
        free(aq);
        free(wd);
        free(ad);
    }
    free(w);
    free(x);
}

/* ---- golden checks against the tiny-14m GGUF files ---------------------- */

static st_gguf *open_model(const char *name) {
    const char *path = tu_shared_path(name);
    if (!tu_file_exists(path)) return NULL;
    st_gguf *g = NULL;
    st_error err = {0};
    cr_assert_eq(st_gguf_open(path, &g, &err), ST_OK, "%s: %s", path, err.msg);
    return g;
}

/* Relative RMS error of the file's dequantized tensors against the F32 file:
 * what llama.cpp's quantizer reached (measured: Q8_0 .0065, Q6_K .021,
 * Q5_K .037, Q5_1 .038, Q4_K .072, Q4_0 .088, Q3_K .153, Q2_K .30 at worst
 * over tensors). A wrong bit layout gives ~1 or more. */
static double golden_bound(st_type t) {
    switch (t) {
    case ST_TYPE_Q8_0: return 0.01;
    case ST_TYPE_Q6_K: return 0.03;
    case ST_TYPE_Q5_K: case ST_TYPE_Q5_1: return 0.05;
    case ST_TYPE_Q4_K: return 0.10;
    case ST_TYPE_Q4_0: return 0.12;
    case ST_TYPE_Q3_K: return 0.20;
    case ST_TYPE_Q2_K: return 0.40;
    default: return 0;
    }
}

static void golden_file(const char *file, const st_type *expect, int n_expect) {
    st_gguf *f32 = open_model("models/tiny-14m-f32.gguf");
    if (!f32) cr_skip_test("shared models not found at %s", tu_shared_path("models"));
    st_gguf *g = open_model(file);
    if (!g) {
        st_gguf_close(f32);
        cr_skip_test("%s not found", tu_shared_path(file));
    }
    int seen[ST_TYPE_COUNT] = {0};
    long blocks_same[ST_TYPE_COUNT] = {0}, blocks_all[ST_TYPE_COUNT] = {0};
    for (int64_t ti = 0; ti < st_gguf_n_tensors(g); ti++) {
        const st_gguf_tensor *t = st_gguf_tensor_at(g, ti);
        const st_gguf_tensor *r = st_gguf_find_tensor(f32, t->name);
        cr_assert_not_null(r, "%s: %s absent from the F32 file", file, t->name);
        cr_assert_eq(r->type, ST_TYPE_F32);
        const int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        cr_assert_eq(n, r->ne[0] * r->ne[1] * r->ne[2] * r->ne[3]);
        if (t->type == ST_TYPE_F32) continue;
        const st_type_traits *tr = st_type_traits_ref(t->type);
        cr_assert(tr->supported, "%s: %s has unsupported type %d", file, t->name, t->type);
        cr_assert_eq(t->size, st_row_size(t->type, t->ne[0]) * (uint64_t)(n / t->ne[0]));
        seen[t->type]++;
        const float *ref = r->data;
        float *y = malloc(n * sizeof *y);
        tr->to_float(t->data, y, n);
        const double e = rel_rmse(y, ref, n);
        cr_assert_leq(e, golden_bound(t->type), "%s: %s (%s) rel rmse %.4f > %.4f", file, t->name, tr->name, e,
                      golden_bound(t->type));
        /* the fast table's dequantizer gives the same bits */
        float *y2 = malloc(n * sizeof *y2);
        st_type_traits_get(t->type)->to_float(t->data, y2, n);
        cr_assert_eq(memcmp(y, y2, n * sizeof *y), 0, "%s: %s fast to_float differs", file, t->name);
        free(y2);

        /* our reference quantizer on the F32 weights reproduces llama.cpp's
         * blocks (it is the same algorithm; allow a few to differ, e.g.
         * under other float contraction settings) */
        const size_t rs = (size_t)t->size;
        uint8_t *q = malloc(rs);
        cr_assert_eq(st_quantize_row(t->type, ref, q, n), rs);
        const size_t bsz = tr->type_size;
        for (size_t b = 0; b < rs / bsz; b++) {
            blocks_all[t->type]++;
            if (!memcmp(q + b * bsz, (const uint8_t *)t->data + b * bsz, bsz)) blocks_same[t->type]++;
        }
        tr->to_float(q, y, n);
        const double e2 = rel_rmse(y, ref, n);
        cr_assert_leq(e2, e * 1.02 + 1e-6, "%s: %s our %s quantization rmse %.5f vs llama.cpp %.5f", file, t->name,
                      tr->name, e2, e);

        /* dot products on the real bytes: a few rows against an activation */
        const int64_t ne0 = t->ne[0];
        const st_type at = tr->vec_dot_type;
        float *x = malloc(ne0 * sizeof *x), *wd = malloc(ne0 * sizeof *wd), *ad = malloc(ne0 * sizeof *ad);
        uint8_t *aq = malloc(st_row_size(at, ne0));
        rng_seed(9 + ti);
        fill_normal(x, ne0, 1.0f);
        st_quantize_row(at, x, aq, ne0);
        st_type_traits_ref(at)->to_float(aq, ad, ne0);
        const size_t row_bytes = st_row_size(t->type, ne0);
        for (int64_t row = 0; row < n / ne0; row += 1 + (n / ne0) / 7) {
            const uint8_t *wrow = (const uint8_t *)t->data + row * row_bytes;
            tr->to_float(wrow, wd, ne0);
            double exact = 0, mag = 0;
            for (int64_t i = 0; i < ne0; i++) {
                exact += (double)wd[i] * ad[i];
                mag += fabs((double)wd[i] * ad[i]);
            }
            float s = NAN, sf = NAN;
            tr->vec_dot((int)ne0, &s, wrow, aq);
            st_type_traits_get(t->type)->vec_dot((int)ne0, &sf, wrow, aq);
            mag += q8_1_s_slack(at, aq, wd, ne0) / 2e-5;
            cr_assert(fabs(s - exact) <= 2e-5 * mag + 1e-30, "%s: %s row %ld dot %.7g vs %.7g", file, t->name, (long)row, s, exact);
            cr_assert(fabs(sf - exact) <= 2e-5 * mag + 1e-30, "%s: %s row %ld fast dot %.7g vs %.7g", file, t->name, (long)row, sf, exact);
        }
        free(x);
        free(wd);
        free(ad);
        free(aq);
        free(q);
        free(y);
    }
    for (int i = 0; i < n_expect; i++)
        cr_assert_gt(seen[expect[i]], 0, "%s: no %s tensor found", file, st_type_name(expect[i]));
    for (int t = 0; t < ST_TYPE_COUNT; t++) {
        if (!blocks_all[t]) continue;
        cr_assert_geq(blocks_same[t], blocks_all[t] * 99 / 100, "%s: %s only %ld of %ld blocks identical to llama.cpp's", file,
                      st_type_name((st_type)t), blocks_same[t], blocks_all[t]);
    }
    st_gguf_close(g);
    st_gguf_close(f32);
}

#define GOLDEN(tag, file, ...)                                             \
    Test(golden, tag, .timeout = 300) {                                    \
        static const st_type expect[] = {__VA_ARGS__};                     \
        golden_file("models/" file, expect, sizeof expect / sizeof expect[0]); \
    }

GOLDEN(q8_0, "tiny-14m-q8_0.gguf", ST_TYPE_Q8_0)
GOLDEN(q6_k, "tiny-14m-q6_k.gguf", ST_TYPE_Q6_K)
GOLDEN(q5_k_m, "tiny-14m-q5_k_m.gguf", ST_TYPE_Q5_K, ST_TYPE_Q6_K)
GOLDEN(q4_k_m, "tiny-14m-q4_k_m.gguf", ST_TYPE_Q4_K, ST_TYPE_Q6_K)
GOLDEN(q3_k_m, "tiny-14m-q3_k_m.gguf", ST_TYPE_Q3_K, ST_TYPE_Q4_K, ST_TYPE_Q5_K, ST_TYPE_Q6_K)
GOLDEN(q2_k, "tiny-14m-q2_k.gguf", ST_TYPE_Q2_K, ST_TYPE_Q3_K, ST_TYPE_Q6_K)
GOLDEN(q4_0, "tiny-14m-q4_0.gguf", ST_TYPE_Q4_0, ST_TYPE_Q6_K)
GOLDEN(q5_1, "tiny-14m-q5_1.gguf", ST_TYPE_Q5_1, ST_TYPE_Q6_K)
