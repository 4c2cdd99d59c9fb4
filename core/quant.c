/* quant.c — plain-C reference kernels for the GGUF/ggml tensor types, the
 * type-traits table, fp16/bf16 conversions and run-time SIMD selection.
 *
 * Block layouts and the arithmetic of every dequantizer and dot product follow
 * the ggml formats exactly (same integer decoding, same order of the float
 * operations where ggml's reference code fixes one), so results match what
 * llama.cpp computes from the same GGUF bytes. The K-quant quantizers use the
 * same kind of scale searches as ggml's reference quantizers (weighted least
 * squares over a small grid of candidate scales); their output need not be
 * bit-identical to llama.cpp's but is of the same quality. */
#include "quant.h"
#include "quant_impl.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define ST_X86 1
#endif

/* ---- layout checks: these must equal the GGUF block sizes ---------------- */
_Static_assert(sizeof(st_fp16) == 2, "fp16 is 2 bytes");
_Static_assert(sizeof(st_block_q4_0) == 18, "block_q4_0 size");
_Static_assert(sizeof(st_block_q4_1) == 20, "block_q4_1 size");
_Static_assert(sizeof(st_block_q5_0) == 22, "block_q5_0 size");
_Static_assert(sizeof(st_block_q5_1) == 24, "block_q5_1 size");
_Static_assert(sizeof(st_block_q8_0) == 34, "block_q8_0 size");
_Static_assert(sizeof(st_block_q8_1) == 36, "block_q8_1 size");
_Static_assert(sizeof(st_block_q2_K) == 84, "block_q2_K size");
_Static_assert(sizeof(st_block_q3_K) == 110, "block_q3_K size");
_Static_assert(sizeof(st_block_q4_K) == 144, "block_q4_K size");
_Static_assert(sizeof(st_block_q5_K) == 176, "block_q5_K size");
_Static_assert(sizeof(st_block_q6_K) == 210, "block_q6_K size");
_Static_assert(sizeof(st_block_q8_K) == 292, "block_q8_K size");

/* ========================================================================== */
/* fp16 / bf16                                                                */
/* ========================================================================== */

static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* Exact conversion, no table (the table is built from this). */
static float fp16_to_fp32_calc(st_fp16 h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in fp32 */
        float f = (float)mant * 0x1p-24f;
        return sign ? -f : f;
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (mant << 13)); /* inf / nan */
    return bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

float st_fp16_table[65536];

static void fp16_table_init(void) {
    for (uint32_t i = 0; i < 65536; i++) st_fp16_table[i] = fp16_to_fp32_calc((st_fp16)i);
}

static pthread_once_t g_table_once = PTHREAD_ONCE_INIT;

void st_quant_init(void) { pthread_once(&g_table_once, fp16_table_init); }

/* Builds the table at load time so that kernels reached through any path find
 * it ready; st_quant_init() stays as the explicit (idempotent) entry point. */
__attribute__((constructor)) static void quant_ctor(void) { st_quant_init(); }

#define FP16(h) (st_fp16_table[(h)])

float st_fp16_to_fp32(st_fp16 h) { return fp16_to_fp32_calc(h); }

/* fp32 -> fp16, round to nearest, ties to even; overflow to inf; subnormals
 * produced exactly; NaN stays a (quiet) NaN with the sign kept. */
st_fp16 st_fp32_to_fp16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    u &= 0x7fffffffu;
    if (u > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((u >> 13) & 0x3ffu)); /* NaN */
    if (u >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 (or inf) -> inf */
    uint32_t e = u >> 23;
    if (e < 113) {
        /* result is subnormal or zero: count units of 2^-24 */
        if (e < 102) return sign; /* below 2^-25: rounds to zero */
        uint32_t m = (u & 0x7fffffu) | 0x800000u; /* value = m * 2^(e-150) */
        uint32_t shift = 126 - e;                  /* 14..24 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q); /* q may reach 0x400, the smallest normal: correct */
    }
    uint32_t m = u & 0x7fffffu;
    uint32_t h = ((e - 112u) << 10) | (m >> 13);
    uint32_t rem = m & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* carry into the exponent is right */
    return (uint16_t)(sign | h);
}

float st_bf16_to_fp32(st_bf16 h) { return bits_f32((uint32_t)h << 16); }

st_bf16 st_fp32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (st_bf16)((u >> 16) | 0x40u); /* quiet NaN */
    return (st_bf16)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* Round to nearest (ties to even) for |f| < 2^22, ggml's trick: adding 1.5*2^23
 * puts the integer in the low mantissa bits. Kept as is so that quantizers
 * round exactly like ggml's. */
static inline int nearest_int(float f) {
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* ========================================================================== */
/* plain types                                                                */
/* ========================================================================== */

static void f32_to_float(const void *x, float *y, int64_t n) { memcpy(y, x, (size_t)n * sizeof(float)); }
static void f32_from_float(const float *x, void *y, int64_t n) { memcpy(y, x, (size_t)n * sizeof(float)); }

static void f16_to_float(const void *vx, float *y, int64_t n) {
    const st_fp16 *x = vx;
    for (int64_t i = 0; i < n; i++) y[i] = FP16(x[i]);
}
static void f16_from_float(const float *x, void *vy, int64_t n) {
    st_fp16 *y = vy;
    for (int64_t i = 0; i < n; i++) y[i] = st_fp32_to_fp16(x[i]);
}
static void bf16_to_float(const void *vx, float *y, int64_t n) {
    const st_bf16 *x = vx;
    for (int64_t i = 0; i < n; i++) y[i] = st_bf16_to_fp32(x[i]);
}
static void bf16_from_float(const float *x, void *vy, int64_t n) {
    st_bf16 *y = vy;
    for (int64_t i = 0; i < n; i++) y[i] = st_fp32_to_bf16(x[i]);
}

/* Like ggml's scalar paths: products in float, accumulated in double. Four
 * partial sums keep the loop from being one long dependency chain. */
static void vec_dot_f32(int n, float *s, const void *vx, const void *vy) {
    const float *x = vx, *y = vy; /* any address: read with st_ldf (quant_impl.h) */
    double a[4] = {0, 0, 0, 0};
    int i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++) a[k] += (double)(st_ldf(x + i + k) * st_ldf(y + i + k));
    for (; i < n; i++) a[0] += (double)(st_ldf(x + i) * st_ldf(y + i));
    *s = (float)((a[0] + a[1]) + (a[2] + a[3]));
}
static void vec_dot_f16(int n, float *s, const void *vx, const void *vy) {
    const st_fp16 *x = vx, *y = vy;
    double a[4] = {0, 0, 0, 0};
    int i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++) a[k] += (double)(FP16(x[i + k]) * FP16(y[i + k]));
    for (; i < n; i++) a[0] += (double)(FP16(x[i]) * FP16(y[i]));
    *s = (float)((a[0] + a[1]) + (a[2] + a[3]));
}
static void vec_dot_bf16(int n, float *s, const void *vx, const void *vy) {
    const st_bf16 *x = vx, *y = vy;
    double a[4] = {0, 0, 0, 0};
    int i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++) a[k] += (double)(st_bf16_to_fp32(x[i + k]) * st_bf16_to_fp32(y[i + k]));
    for (; i < n; i++) a[0] += (double)(st_bf16_to_fp32(x[i]) * st_bf16_to_fp32(y[i]));
    *s = (float)((a[0] + a[1]) + (a[2] + a[3]));
}

/* ========================================================================== */
/* 32-element block types                                                     */
/* ========================================================================== */

/* ---- Q4_0: d * (q - 8), q in 0..15; low nibbles = elements 0..15, high = 16..31 */
static void q4_0_to_float(const void *vx, float *y, int64_t n) {
    const st_block_q4_0 *x = vx;
    for (int64_t i = 0; i < n / ST_QK4_0; i++, y += ST_QK4_0) {
        const float d = FP16(x[i].d);
        for (int j = 0; j < ST_QK4_0 / 2; j++) {
            const int x0 = (x[i].qs[j] & 0x0F) - 8;
            const int x1 = (x[i].qs[j] >> 4) - 8;
            y[j] = x0 * d;
            y[j + ST_QK4_0 / 2] = x1 * d;
        }
    }
}

static void q4_0_from_float(const float *x, void *vy, int64_t n) {
    st_block_q4_0 *y = vy;
    for (int64_t i = 0; i < n / ST_QK4_0; i++, x += ST_QK4_0) {
        float amax = 0.0f, max = 0.0f; /* value of largest magnitude, with its sign */
        for (int j = 0; j < ST_QK4_0; j++) {
            if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        }
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = st_fp32_to_fp16(d);
        for (int j = 0; j < ST_QK4_0 / 2; j++) {
            const float x0 = x[j] * id, x1 = x[j + ST_QK4_0 / 2] * id;
            int q0 = (int8_t)(x0 + 8.5f), q1 = (int8_t)(x1 + 8.5f);
            if (q0 > 15) q0 = 15;
            if (q1 > 15) q1 = 15;
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* ---- Q4_1: d * q + m */
static void q4_1_to_float(const void *vx, float *y, int64_t n) {
    const st_block_q4_1 *x = vx;
    for (int64_t i = 0; i < n / ST_QK4_1; i++, y += ST_QK4_1) {
        const float d = FP16(x[i].d), m = FP16(x[i].m);
        for (int j = 0; j < ST_QK4_1 / 2; j++) {
            const int x0 = x[i].qs[j] & 0x0F;
            const int x1 = x[i].qs[j] >> 4;
            y[j] = x0 * d + m;
            y[j + ST_QK4_1 / 2] = x1 * d + m;
        }
    }
}

static void q4_1_from_float(const float *x, void *vy, int64_t n) {
    st_block_q4_1 *y = vy;
    for (int64_t i = 0; i < n / ST_QK4_1; i++, x += ST_QK4_1) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < ST_QK4_1; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = st_fp32_to_fp16(d);
        y[i].m = st_fp32_to_fp16(min);
        for (int j = 0; j < ST_QK4_1 / 2; j++) {
            const float x0 = (x[j] - min) * id, x1 = (x[j + ST_QK4_1 / 2] - min) * id;
            int q0 = (int8_t)(x0 + 0.5f), q1 = (int8_t)(x1 + 0.5f);
            if (q0 > 15) q0 = 15;
            if (q1 > 15) q1 = 15;
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* ---- Q5_0: d * (q - 16), q = 4 low bits from qs, 5th bit from qh (bit j for
 * element j, bit j+16 for element j+16) */
static void q5_0_to_float(const void *vx, float *y, int64_t n) {
    const st_block_q5_0 *x = vx;
    for (int64_t i = 0; i < n / ST_QK5_0; i++, y += ST_QK5_0) {
        const float d = FP16(x[i].d);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int j = 0; j < ST_QK5_0 / 2; j++) {
            const int h0 = (int)((qh >> j) << 4) & 0x10;
            const int h1 = (int)(qh >> (j + 12)) & 0x10;
            const int x0 = ((x[i].qs[j] & 0x0F) | h0) - 16;
            const int x1 = ((x[i].qs[j] >> 4) | h1) - 16;
            y[j] = x0 * d;
            y[j + ST_QK5_0 / 2] = x1 * d;
        }
    }
}

static void q5_0_from_float(const float *x, void *vy, int64_t n) {
    st_block_q5_0 *y = vy;
    for (int64_t i = 0; i < n / ST_QK5_0; i++, x += ST_QK5_0) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < ST_QK5_0; j++) {
            if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        }
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = st_fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < ST_QK5_0 / 2; j++) {
            const float x0 = x[j] * id, x1 = x[j + ST_QK5_0 / 2] * id;
            int q0 = (int8_t)(x0 + 16.5f), q1 = (int8_t)(x1 + 16.5f);
            if (q0 > 31) q0 = 31;
            if (q1 > 31) q1 = 31;
            y[i].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= ((uint32_t)(q0 & 0x10) >> 4) << j;
            qh |= ((uint32_t)(q1 & 0x10) >> 4) << (j + ST_QK5_0 / 2);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

/* ---- Q5_1: d * q + m, q 5-bit as in Q5_0 */
static void q5_1_to_float(const void *vx, float *y, int64_t n) {
    const st_block_q5_1 *x = vx;
    for (int64_t i = 0; i < n / ST_QK5_1; i++, y += ST_QK5_1) {
        const float d = FP16(x[i].d), m = FP16(x[i].m);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int j = 0; j < ST_QK5_1 / 2; j++) {
            const int h0 = (int)((qh >> j) << 4) & 0x10;
            const int h1 = (int)(qh >> (j + 12)) & 0x10;
            const int x0 = (x[i].qs[j] & 0x0F) | h0;
            const int x1 = (x[i].qs[j] >> 4) | h1;
            y[j] = x0 * d + m;
            y[j + ST_QK5_1 / 2] = x1 * d + m;
        }
    }
}

static void q5_1_from_float(const float *x, void *vy, int64_t n) {
    st_block_q5_1 *y = vy;
    for (int64_t i = 0; i < n / ST_QK5_1; i++, x += ST_QK5_1) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < ST_QK5_1; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = st_fp32_to_fp16(d);
        y[i].m = st_fp32_to_fp16(min);
        uint32_t qh = 0;
        for (int j = 0; j < ST_QK5_1 / 2; j++) {
            const float x0 = (x[j] - min) * id, x1 = (x[j + ST_QK5_1 / 2] - min) * id;
            const uint8_t q0 = (uint8_t)(x0 + 0.5f), q1 = (uint8_t)(x1 + 0.5f);
            y[i].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= ((uint32_t)(q0 & 0x10) >> 4) << j;
            qh |= ((uint32_t)(q1 & 0x10) >> 4) << (j + ST_QK5_1 / 2);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

/* ---- Q8_0: d * q */
static void q8_0_to_float(const void *vx, float *y, int64_t n) {
    const st_block_q8_0 *x = vx;
    for (int64_t i = 0; i < n / ST_QK8_0; i++, y += ST_QK8_0) {
        const float d = FP16(x[i].d);
        for (int j = 0; j < ST_QK8_0; j++) y[j] = x[i].qs[j] * d;
    }
}

static void q8_0_from_float(const float *x, void *vy, int64_t n) {
    st_block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / ST_QK8_0; i++, x += ST_QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < ST_QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = st_fp32_to_fp16(d);
        for (int j = 0; j < ST_QK8_0; j++) y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

/* ---- Q8_1: d * q, plus s = d * sum(q) for the min term of Q4_1/Q5_1 dots */
static void q8_1_to_float(const void *vx, float *y, int64_t n) {
    const st_block_q8_1 *x = vx;
    for (int64_t i = 0; i < n / ST_QK8_1; i++, y += ST_QK8_1) {
        const float d = FP16(x[i].d);
        for (int j = 0; j < ST_QK8_1; j++) y[j] = x[i].qs[j] * d;
    }
}

static void q8_1_from_float(const float *x, void *vy, int64_t n) {
    st_block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / ST_QK8_1; i++, x += ST_QK8_1) {
        float amax = 0.0f;
        for (int j = 0; j < ST_QK8_1; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = st_fp32_to_fp16(d);
        int sum = 0;
        for (int j = 0; j < ST_QK8_1; j++) {
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
            sum += y[i].qs[j];
        }
        y[i].s = st_fp32_to_fp16(sum * d);
    }
}

/* ---- dots of the 32-blocks against Q8_0 / Q8_1 activations ---------------- */

static void vec_dot_q4_0_q8_0(int n, float *s, const void *vx, const void *vy) {
    const st_block_q4_0 *x = vx;
    const st_block_q8_0 *y = vy;
    float sumf = 0;
    for (int i = 0; i < n / ST_QK8_0; i++) {
        int sumi = 0;
        for (int j = 0; j < ST_QK8_0 / 2; j++) {
            sumi += ((x[i].qs[j] & 0x0F) - 8) * y[i].qs[j];
            sumi += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + ST_QK8_0 / 2];
        }
        sumf += sumi * FP16(x[i].d) * FP16(y[i].d);
    }
    *s = sumf;
}

static void vec_dot_q4_1_q8_1(int n, float *s, const void *vx, const void *vy) {
    const st_block_q4_1 *x = vx;
    const st_block_q8_1 *y = vy;
    float sumf = 0;
    for (int i = 0; i < n / ST_QK8_1; i++) {
        int sumi = 0;
        for (int j = 0; j < ST_QK8_1 / 2; j++) {
            sumi += (x[i].qs[j] & 0x0F) * y[i].qs[j];
            sumi += (x[i].qs[j] >> 4) * y[i].qs[j + ST_QK8_1 / 2];
        }
        sumf += (FP16(x[i].d) * FP16(y[i].d)) * sumi + FP16(x[i].m) * FP16(y[i].s);
    }
    *s = sumf;
}

static void vec_dot_q5_0_q8_0(int n, float *s, const void *vx, const void *vy) {
    const st_block_q5_0 *x = vx;
    const st_block_q8_0 *y = vy;
    float sumf = 0;
    for (int i = 0; i < n / ST_QK8_0; i++) {
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        int sumi = 0;
        for (int j = 0; j < ST_QK8_0 / 2; j++) {
            const int h0 = (int)((qh >> j) << 4) & 0x10;
            const int h1 = (int)(qh >> (j + 12)) & 0x10;
            sumi += (((x[i].qs[j] & 0x0F) | h0) - 16) * y[i].qs[j];
            sumi += (((x[i].qs[j] >> 4) | h1) - 16) * y[i].qs[j + ST_QK8_0 / 2];
        }
        sumf += (FP16(x[i].d) * FP16(y[i].d)) * sumi;
    }
    *s = sumf;
}

static void vec_dot_q5_1_q8_1(int n, float *s, const void *vx, const void *vy) {
    const st_block_q5_1 *x = vx;
    const st_block_q8_1 *y = vy;
    float sumf = 0;
    for (int i = 0; i < n / ST_QK8_1; i++) {
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        int sumi = 0;
        for (int j = 0; j < ST_QK8_1 / 2; j++) {
            const int h0 = (int)((qh >> j) << 4) & 0x10;
            const int h1 = (int)(qh >> (j + 12)) & 0x10;
            sumi += ((x[i].qs[j] & 0x0F) | h0) * y[i].qs[j];
            sumi += ((x[i].qs[j] >> 4) | h1) * y[i].qs[j + ST_QK8_1 / 2];
        }
        sumf += (FP16(x[i].d) * FP16(y[i].d)) * sumi + FP16(x[i].m) * FP16(y[i].s);
    }
    *s = sumf;
}

static void vec_dot_q8_0_q8_0(int n, float *s, const void *vx, const void *vy) {
    const st_block_q8_0 *x = vx;
    const st_block_q8_0 *y = vy;
    float sumf = 0;
    for (int i = 0; i < n / ST_QK8_0; i++) {
        int sumi = 0;
        for (int j = 0; j < ST_QK8_0; j++) sumi += x[i].qs[j] * y[i].qs[j];
        sumf += sumi * (FP16(x[i].d) * FP16(y[i].d));
    }
    *s = sumf;
}

/* Q8_1 weights are not a GGUF weight type in practice; provided so that the
 * type is complete (dot with itself). */
static void vec_dot_q8_1_q8_1(int n, float *s, const void *vx, const void *vy) {
    const st_block_q8_1 *x = vx;
    const st_block_q8_1 *y = vy;
    float sumf = 0;
    for (int i = 0; i < n / ST_QK8_1; i++) {
        int sumi = 0;
        for (int j = 0; j < ST_QK8_1; j++) sumi += x[i].qs[j] * y[i].qs[j];
        sumf += sumi * (FP16(x[i].d) * FP16(y[i].d));
    }
    *s = sumf;
}

/* ========================================================================== */
/* K-quants: helpers for the scale searches                                  */
/* ========================================================================== */

#define GROUP_MAX_EPS 1e-15f

/* Symmetric quantization of n values to integers in [-nmax, nmax-1] with one
 * scale (stored in L as l + nmax). Picks the scale that minimises the error
 * weighted by x^2: starting from -nmax/max, tries 18 nearby inverse scales and
 * keeps the best least-squares fit. Returns the scale. */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx; /* = sumlx^2/suml2: larger means smaller error */
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Symmetric quantization to [-nmax, nmax-1] refined by coordinate descent on
 * each value (weights x^2), as Q3_K's reference quantizer does. L gets l+nmax. */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L) {
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                const int nl = clampi(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (nl != L[i]) {
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)nl;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0 ? sumlx / suml2 : 0.0f;
}

/* Asymmetric quantization x ~ scale * l - min, l in [0, nmax], min >= 0 in
 * the returned *the_min (the offset is never positive). Starts from the
 * min/max range, then tries nstep+1 inverse scales (rmin + rdelta*is + nmax)/range
 * and solves the weighted least squares for (scale, min) for each, keeping the
 * one with the smallest weighted error (abs error when use_mad). */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                              float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                              bool use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.0f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        const int l = clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
        L[i] = (uint8_t)l;
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            const float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                err += weights[i] * diff;
            }
            if (err < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = err;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* 6-bit scale and min j (0..7) of Q4_K/Q5_K from the 12 packed bytes:
 * j<4: low 6 bits of q[j] (scale) and q[j+4] (min); j>=4: low nibble / high
 * nibble of q[j+4] plus the top 2 bits of q[j-4] / q[j]. */
static inline void get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Q3_K: 16 6-bit scales (biased by 32) packed in 12 bytes: low nibbles in
 * bytes 0..7 (scales 0..7 low, 8..15 high nibble), top 2 bits in bytes 8..11. */
static inline void q3_k_unpack_scales(const uint8_t *packed, int8_t out[16]) {
    for (int j = 0; j < 16; j++) {
        const int lo = j < 8 ? (packed[j] & 0xF) : (packed[j - 8] >> 4);
        const int hi = (packed[8 + (j % 4)] >> (2 * (j / 4))) & 3;
        out[j] = (int8_t)((lo | (hi << 4)) - 32);
    }
}

/* ========================================================================== */
/* K-quants: dequantize                                                       */
/* ========================================================================== */

/* Q2_K: 16 sub-blocks of 16; value = d*sc*q - dmin*m, q 2-bit. qs holds
 * 2 x 32 bytes per 128 elements; bits (2k, 2k+1) of byte l give element
 * 32k + l of the 128 (k = 0..3). */
static void q2_k_to_float(const void *vx, float *y, int64_t n) {
    const st_block_q2_K *x = vx;
    for (int64_t i = 0; i < n / ST_QK_K; i++) {
        const float d = FP16(x[i].d), min = FP16(x[i].dmin);
        const uint8_t *q = x[i].qs;
        int is = 0;
        for (int half = 0; half < ST_QK_K; half += 128) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int part = 0; part < 2; part++) {
                    const uint8_t sc = x[i].scales[is++];
                    const float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                    for (int l = 0; l < 16; l++) *y++ = dl * ((int8_t)((q[l + 16 * part] >> shift) & 3)) - ml;
                }
            }
            q += 32;
        }
    }
}

/* Q3_K: 16 sub-blocks of 16; value = d*(sc-32)*(q - 4*!hbit), q 2 low bits as
 * in Q2_K, the high bit in hmask (bit k of hmask[l] for element 32k + l). */
static void q3_k_to_float(const void *vx, float *y, int64_t n) {
    const st_block_q3_K *x = vx;
    for (int64_t i = 0; i < n / ST_QK_K; i++) {
        const float d_all = FP16(x[i].d);
        int8_t scales[16];
        q3_k_unpack_scales(x[i].scales, scales);
        const uint8_t *q = x[i].qs, *hm = x[i].hmask;
        uint8_t m = 1;
        int is = 0;
        for (int half = 0; half < ST_QK_K; half += 128) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int part = 0; part < 2; part++) {
                    const float dl = d_all * scales[is++];
                    for (int l = 16 * part; l < 16 * part + 16; l++)
                        *y++ = dl * ((int8_t)((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                }
                m <<= 1;
            }
            q += 32;
        }
    }
}

/* Q4_K: 8 sub-blocks of 32; value = d*sc*q - dmin*m. Each 32 bytes of qs hold
 * 64 elements: low nibbles the first 32, high nibbles the next 32. */
static void q4_k_to_float(const void *vx, float *y, int64_t n) {
    const st_block_q4_K *x = vx;
    for (int64_t i = 0; i < n / ST_QK_K; i++) {
        const float d = FP16(x[i].d), min = FP16(x[i].dmin);
        const uint8_t *q = x[i].qs;
        for (int is = 0; is < 8; is += 2, q += 32) {
            uint8_t sc, m;
            get_scale_min_k4(is, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

/* Q5_K: as Q4_K with a 5th bit: bit 2k (first 32) / 2k+1 (next 32) of qh[l]
 * for the k-th group of 64. */
static void q5_k_to_float(const void *vx, float *y, int64_t n) {
    const st_block_q5_K *x = vx;
    for (int64_t i = 0; i < n / ST_QK_K; i++) {
        const float d = FP16(x[i].d), min = FP16(x[i].dmin);
        const uint8_t *ql = x[i].qs, *qh = x[i].qh;
        uint8_t u1 = 1, u2 = 2;
        for (int is = 0; is < 8; is += 2, ql += 32) {
            uint8_t sc, m;
            get_scale_min_k4(is, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; l++) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            u1 <<= 2;
            u2 <<= 2;
        }
    }
}

/* Q6_K: 16 sub-blocks of 16 with int8 scales; value = d*sc*(q-32), q 6-bit:
 * per 128 elements, 64 bytes of ql (nibbles) and 32 of qh (2 bits each). */
static void q6_k_to_float(const void *vx, float *y, int64_t n) {
    const st_block_q6_K *x = vx;
    for (int64_t i = 0; i < n / ST_QK_K; i++) {
        const float d = FP16(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int half = 0; half < ST_QK_K; half += 128) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = (int8_t)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = (int8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l + 0] = d * sc[is + 0] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

/* Q8_K rows may lie at any address: blocks are read through q8k_* and
 * written through q8k_set_* (quant_impl.h). */
static void q8_k_to_float(const void *vx, float *y, int64_t n) {
    for (int64_t i = 0; i < n / ST_QK_K; i++) {
        const uint8_t *b = q8k_block(vx, i);
        const float d = q8k_d(b);
        const int8_t *qs = q8k_qs(b);
        for (int j = 0; j < ST_QK_K; j++) *y++ = d * qs[j];
    }
}

/* ========================================================================== */
/* K-quants: quantize                                                         */
/* ========================================================================== */

/* Q8_K, exactly as ggml: d = max/-127 of the signed largest-magnitude value,
 * q = round(x/d) capped at 127, bsums = sums of 16 consecutive q. */
static void q8_k_from_float(const float *x, void *vy, int64_t n) {
    for (int64_t i = 0; i < n / ST_QK_K; i++, x += ST_QK_K) {
        uint8_t *b = (uint8_t *)vy + (size_t)i * sizeof(st_block_q8_K);
        int8_t *qs = (int8_t *)(b + offsetof(st_block_q8_K, qs));
        float amax = 0, max = 0;
        for (int j = 0; j < ST_QK_K; j++) {
            const float ax = fabsf(x[j]);
            if (ax > amax) { amax = ax; max = x[j]; }
        }
        if (!amax) {
            memset(b, 0, sizeof(st_block_q8_K)); /* d = +0.0f (all bits zero), qs, bsums */
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < ST_QK_K; j++) {
            const int v = nearest_int(iscale * x[j]);
            qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < ST_QK_K / 16; j++) {
            int sum = 0;
            for (int k = 0; k < 16; k++) sum += qs[16 * j + k];
            q8k_set_bsum(b, j, (int16_t)sum);
        }
        q8k_set_d(b, 1 / iscale);
    }
}

static void q2_k_from_float(const float *x, void *vy, int64_t n) {
    st_block_q2_K *y = vy;
    uint8_t L[ST_QK_K], Laux[16];
    float weights[16], mins[16], scales[16];
    const float q4scale = 15.f;
    for (int64_t i = 0; i < n / ST_QK_K; i++, x += ST_QK_K) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++) weights[l] = fabsf(x[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        memset(y[i].scales, 0, sizeof y[i].scales);
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < 16; j++) y[i].scales[j] = (uint8_t)clampi(nearest_int(iscale * scales[j]), 0, 15);
            y[i].d = st_fp32_to_fp16(max_scale / q4scale);
        } else {
            y[i].d = st_fp32_to_fp16(0.f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < 16; j++) y[i].scales[j] |= (uint8_t)(clampi(nearest_int(iscale * mins[j]), 0, 15) << 4);
            y[i].dmin = st_fp32_to_fp16(max_min / q4scale);
        } else {
            y[i].dmin = st_fp32_to_fp16(0.f);
        }
        /* re-quantize against the scales as stored */
        for (int j = 0; j < 16; j++) {
            const float d = FP16(y[i].d) * (y[i].scales[j] & 0xF);
            if (!d) continue;
            const float dm = FP16(y[i].dmin) * (y[i].scales[j] >> 4);
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (uint8_t)clampi(nearest_int((x[16 * j + l] + dm) / d), 0, 3);
        }
        for (int j = 0; j < ST_QK_K; j += 128)
            for (int l = 0; l < 32; l++)
                y[i].qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
    }
}

static void q3_k_from_float(const float *x, void *vy, int64_t n) {
    st_block_q3_K *y = vy;
    int8_t L[ST_QK_K];
    float scales[16];
    for (int64_t i = 0; i < n / ST_QK_K; i++, x += ST_QK_K) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
            const float sc = fabsf(scales[j]);
            if (sc > amax) { amax = sc; max_scale = scales[j]; }
        }
        memset(y[i].scales, 0, sizeof y[i].scales);
        if (max_scale) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; j++) {
                int l = clampi(nearest_int(iscale * scales[j]), -32, 31) + 32;
                if (j < 8) y[i].scales[j] = (uint8_t)(l & 0xF);
                else y[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
                l >>= 4;
                y[i].scales[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
            }
            y[i].d = st_fp32_to_fp16(1 / iscale);
        } else {
            y[i].d = st_fp32_to_fp16(0.f);
        }
        int8_t sc[16];
        q3_k_unpack_scales(y[i].scales, sc);
        for (int j = 0; j < 16; j++) {
            const float d = FP16(y[i].d) * sc[j];
            if (!d) continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(clampi(nearest_int(x[16 * j + l] / d), -4, 3) + 4);
        }
        /* high bit: element 32k + l (k = 0..7, l = 0..31) -> bit k of hmask[l] */
        memset(y[i].hmask, 0, sizeof y[i].hmask);
        for (int j = 0; j < ST_QK_K; j++) {
            if (L[j] > 3) {
                y[i].hmask[j % 32] |= (uint8_t)(1u << (j / 32));
                L[j] -= 4;
            }
        }
        for (int j = 0; j < ST_QK_K; j += 128)
            for (int l = 0; l < 32; l++)
                y[i].qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
    }
}

/* packs 8 6-bit scales and mins into the 12-byte Q4_K/Q5_K layout */
static void pack_scale_min_k4(const uint8_t ls[8], const uint8_t lm[8], uint8_t out[12]) {
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            out[j] = ls[j];
            out[j + 4] = lm[j];
        } else {
            out[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            out[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            out[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* common part of Q4_K and Q5_K: 8 sub-blocks of 32, levels 0..nmax, weights
 * rms + |x|. Fills scales/d/dmin of the block and L with the final levels. */
static void qk_x_quantize_block(const float *x, int nmax, float rmin, int nstep, uint8_t L[ST_QK_K],
                                uint8_t packed[12], st_fp16 *pd, st_fp16 *pdmin) {
    uint8_t Laux[32];
    float weights[32], mins[8], scales[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = (uint8_t)clampi(nearest_int(inv_scale * scales[j]), 0, 63);
        lm[j] = (uint8_t)clampi(nearest_int(inv_min * mins[j]), 0, 63);
    }
    memset(packed, 0, 12);
    pack_scale_min_k4(ls, lm, packed);
    *pd = st_fp32_to_fp16(max_scale / 63.f);
    *pdmin = st_fp32_to_fp16(max_min / 63.f);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        get_scale_min_k4(j, packed, &sc, &m);
        const float d = FP16(*pd) * sc;
        if (!d) continue;
        const float dm = FP16(*pdmin) * m;
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = (uint8_t)clampi(nearest_int((x[32 * j + l] + dm) / d), 0, nmax);
    }
}

static void q4_k_from_float(const float *x, void *vy, int64_t n) {
    st_block_q4_K *y = vy;
    uint8_t L[ST_QK_K];
    for (int64_t i = 0; i < n / ST_QK_K; i++, x += ST_QK_K) {
        qk_x_quantize_block(x, 15, -1.f, 20, L, y[i].scales, &y[i].d, &y[i].dmin);
        uint8_t *q = y[i].qs;
        for (int j = 0; j < ST_QK_K; j += 64, q += 32)
            for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    }
}

static void q5_k_from_float(const float *x, void *vy, int64_t n) {
    st_block_q5_K *y = vy;
    uint8_t L[ST_QK_K];
    for (int64_t i = 0; i < n / ST_QK_K; i++, x += ST_QK_K) {
        qk_x_quantize_block(x, 31, -0.5f, 15, L, y[i].scales, &y[i].d, &y[i].dmin);
        uint8_t *ql = y[i].qs, *qh = y[i].qh;
        memset(qh, 0, ST_QK_K / 8);
        uint8_t m1 = 1, m2 = 2;
        for (int j = 0; j < ST_QK_K; j += 64, ql += 32) {
            for (int l = 0; l < 32; l++) {
                int l1 = L[j + l], l2 = L[j + l + 32];
                if (l1 > 15) { l1 -= 16; qh[l] |= m1; }
                if (l2 > 15) { l2 -= 16; qh[l] |= m2; }
                ql[l] = (uint8_t)(l1 | (l2 << 4));
            }
            m1 <<= 2;
            m2 <<= 2;
        }
    }
}

static void q6_k_from_float(const float *x, void *vy, int64_t n) {
    st_block_q6_K *y = vy;
    int8_t L[ST_QK_K];
    float scales[16];
    for (int64_t i = 0; i < n / ST_QK_K; i++, x += ST_QK_K) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < 16; ib++) {
            scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            const float a = fabsf(scales[ib]);
            if (a > max_abs_scale) { max_abs_scale = a; max_scale = scales[ib]; }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -128.f / max_scale;
        y[i].d = st_fp32_to_fp16(1 / iscale);
        for (int ib = 0; ib < 16; ib++) y[i].scales[ib] = (int8_t)clampi(nearest_int(iscale * scales[ib]), -128, 127);
        for (int j = 0; j < 16; j++) {
            const float d = FP16(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(clampi(nearest_int(x[16 * j + l] / d), -32, 31) + 32);
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < ST_QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; l++) {
                const int a = L[j + l], b = L[j + l + 32], c = L[j + l + 64], e = L[j + l + 96];
                ql[l] = (uint8_t)((a & 0xF) | ((c & 0xF) << 4));
                ql[l + 32] = (uint8_t)((b & 0xF) | ((e & 0xF) << 4));
                qh[l] = (uint8_t)((a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6));
            }
        }
    }
}

/* ========================================================================== */
/* K-quants: dots against Q8_K                                                */
/* ========================================================================== */

/* Each super-block's integer sums are exact; the float combination is
 * d_w * d_a * isum (- dmin_w * d_a * sum(bsums * mins)), as in ggml. The
 * Q8_K row may lie at any address: its blocks are read through q8k_*. */

static void vec_dot_q2_k_q8_k(int n, float *s, const void *vx, const void *vy) {
    const st_block_q2_K *x = vx;
    float sumf = 0;
    for (int i = 0; i < n / ST_QK_K; i++) {
        const uint8_t *yb = q8k_block(vy, i);
        const float yd = q8k_d(yb);
        const uint8_t *q2 = x[i].qs, *sc = x[i].scales;
        const int8_t *q8 = q8k_qs(yb);
        int summs = 0;
        for (int j = 0; j < 16; j++) summs += q8k_bsum(yb, j) * (sc[j] >> 4);
        const float dall = yd * FP16(x[i].d);
        const float dmin = yd * FP16(x[i].dmin);
        int isum = 0, is = 0;
        for (int half = 0; half < ST_QK_K; half += 128, q2 += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int part = 0; part < 2; part++) {
                    int s1 = 0;
                    for (int l = 16 * part; l < 16 * part + 16; l++) s1 += q8[l] * ((q2[l] >> shift) & 3);
                    isum += (sc[is++] & 0xF) * s1;
                }
                q8 += 32;
            }
        }
        sumf += dall * isum - dmin * summs;
    }
    *s = sumf;
}

static void vec_dot_q3_k_q8_k(int n, float *s, const void *vx, const void *vy) {
    const st_block_q3_K *x = vx;
    float sumf = 0;
    for (int i = 0; i < n / ST_QK_K; i++) {
        const uint8_t *yb = q8k_block(vy, i);
        const float yd = q8k_d(yb);
        int8_t scales[16];
        q3_k_unpack_scales(x[i].scales, scales);
        const uint8_t *q3 = x[i].qs, *hm = x[i].hmask;
        const int8_t *q8 = q8k_qs(yb);
        uint8_t m = 1;
        int isum = 0, is = 0;
        for (int half = 0; half < ST_QK_K; half += 128, q3 += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int part = 0; part < 2; part++) {
                    int s1 = 0;
                    for (int l = 16 * part; l < 16 * part + 16; l++)
                        s1 += q8[l] * (((q3[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                    isum += scales[is++] * s1;
                }
                q8 += 32;
                m <<= 1;
            }
        }
        sumf += FP16(x[i].d) * yd * isum;
    }
    *s = sumf;
}

static void vec_dot_q4_k_q8_k(int n, float *s, const void *vx, const void *vy) {
    const st_block_q4_K *x = vx;
    float sumf = 0;
    for (int i = 0; i < n / ST_QK_K; i++) {
        const uint8_t *yb = q8k_block(vy, i);
        const float yd = q8k_d(yb);
        uint8_t sc[8], mn[8];
        for (int j = 0; j < 8; j++) get_scale_min_k4(j, x[i].scales, &sc[j], &mn[j]);
        int summs = 0;
        for (int j = 0; j < 16; j++) summs += q8k_bsum(yb, j) * mn[j / 2];
        const uint8_t *q4 = x[i].qs;
        const int8_t *q8 = q8k_qs(yb);
        int isum = 0;
        for (int j = 0; j < 8; j += 2, q4 += 32, q8 += 64) {
            int s1 = 0, s2 = 0;
            for (int l = 0; l < 32; l++) {
                s1 += q8[l] * (q4[l] & 0xF);
                s2 += q8[l + 32] * (q4[l] >> 4);
            }
            isum += sc[j] * s1 + sc[j + 1] * s2;
        }
        const float d = FP16(x[i].d) * yd;
        const float dmin = FP16(x[i].dmin) * yd;
        sumf += d * isum - dmin * summs;
    }
    *s = sumf;
}

static void vec_dot_q5_k_q8_k(int n, float *s, const void *vx, const void *vy) {
    const st_block_q5_K *x = vx;
    float sumf = 0;
    for (int i = 0; i < n / ST_QK_K; i++) {
        const uint8_t *yb = q8k_block(vy, i);
        const float yd = q8k_d(yb);
        uint8_t sc[8], mn[8];
        for (int j = 0; j < 8; j++) get_scale_min_k4(j, x[i].scales, &sc[j], &mn[j]);
        int summs = 0;
        for (int j = 0; j < 16; j++) summs += q8k_bsum(yb, j) * mn[j / 2];
        const uint8_t *ql = x[i].qs, *qh = x[i].qh;
        const int8_t *q8 = q8k_qs(yb);
        uint8_t u1 = 1, u2 = 2;
        int isum = 0;
        for (int j = 0; j < 8; j += 2, ql += 32, q8 += 64) {
            int s1 = 0, s2 = 0;
            for (int l = 0; l < 32; l++) {
                s1 += q8[l] * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0));
                s2 += q8[l + 32] * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0));
            }
            isum += sc[j] * s1 + sc[j + 1] * s2;
            u1 <<= 2;
            u2 <<= 2;
        }
        const float d = FP16(x[i].d) * yd;
        const float dmin = FP16(x[i].dmin) * yd;
        sumf += d * isum - dmin * summs;
    }
    *s = sumf;
}

static void vec_dot_q6_k_q8_k(int n, float *s, const void *vx, const void *vy) {
    const st_block_q6_K *x = vx;
    float sumf = 0;
    for (int i = 0; i < n / ST_QK_K; i++) {
        const uint8_t *yb = q8k_block(vy, i);
        const float yd = q8k_d(yb);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales, *q8 = q8k_qs(yb);
        int isum = 0;
        for (int half = 0; half < ST_QK_K; half += 128, ql += 64, qh += 32, sc += 8, q8 += 128) {
            for (int h = 0; h < 2; h++) { /* l in 16h..16h+15: sub-blocks h, h+2, h+4, h+6 */
                int s1 = 0, s2 = 0, s3 = 0, s4 = 0;
                for (int l = 16 * h; l < 16 * h + 16; l++) {
                    const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    s1 += q1 * q8[l + 0];
                    s2 += q2 * q8[l + 32];
                    s3 += q3 * q8[l + 64];
                    s4 += q4 * q8[l + 96];
                }
                isum += sc[h] * s1 + sc[h + 2] * s2 + sc[h + 4] * s3 + sc[h + 6] * s4;
            }
        }
        sumf += FP16(x[i].d) * yd * isum;
    }
    *s = sumf;
}

static void vec_dot_q8_k_q8_k(int n, float *s, const void *vx, const void *vy) {
    float sumf = 0;
    for (int i = 0; i < n / ST_QK_K; i++) {
        const uint8_t *xb = q8k_block(vx, i), *yb = q8k_block(vy, i);
        const float yd = q8k_d(yb);
        const int8_t *xq = q8k_qs(xb), *yq = q8k_qs(yb);
        int sumi = 0;
        for (int j = 0; j < ST_QK_K; j++) sumi += xq[j] * yq[j];
        sumf += q8k_d(xb) * yd * sumi;
    }
    *s = sumf;
}

/* ========================================================================== */
/* type traits                                                                */
/* ========================================================================== */

/* Multi-column dots (st_vec_dot_nc_fn) of the reference table: one vec_dot
 * per activation row. */
#define NC_LOOP(vd)                                                                                   \
    static void vd##_nc(int n, float *s, const void *x, const void *y, size_t by, int ny) {         \
        for (int j = 0; j < ny; j++) vd(n, s + j, x, (const uint8_t *)y + (size_t)j * by);           \
    }
NC_LOOP(vec_dot_f32)
NC_LOOP(vec_dot_f16)
NC_LOOP(vec_dot_bf16)
NC_LOOP(vec_dot_q4_0_q8_0)
NC_LOOP(vec_dot_q4_1_q8_1)
NC_LOOP(vec_dot_q5_0_q8_0)
NC_LOOP(vec_dot_q5_1_q8_1)
NC_LOOP(vec_dot_q8_0_q8_0)
NC_LOOP(vec_dot_q8_1_q8_1)
NC_LOOP(vec_dot_q2_k_q8_k)
NC_LOOP(vec_dot_q3_k_q8_k)
NC_LOOP(vec_dot_q4_k_q8_k)
NC_LOOP(vec_dot_q5_k_q8_k)
NC_LOOP(vec_dot_q6_k_q8_k)
NC_LOOP(vec_dot_q8_k_q8_k)
#undef NC_LOOP

#define PLAIN(nm, sz, vdt) { .name = nm, .blck_size = 1, .type_size = sz, .vec_dot_type = vdt }
#define NOKERN(nm, bs, sz, vdt) { .name = nm, .blck_size = bs, .type_size = sz, .is_quantized = true, .vec_dot_type = vdt }
#define FULL(nm, bs, sz, q, vdt, tf, ff, vd) \
    { .name = nm, .blck_size = bs, .type_size = sz, .is_quantized = q, .supported = true, \
      .vec_dot_type = vdt, .to_float = tf, .from_float = ff, .vec_dot = vd, .vec_dot_nc = vd##_nc }

static const st_type_traits g_ref[ST_TYPE_COUNT] = {
    [ST_TYPE_F32] = FULL("F32", 1, 4, false, ST_TYPE_F32, f32_to_float, f32_from_float, vec_dot_f32),
    [ST_TYPE_F16] = FULL("F16", 1, 2, false, ST_TYPE_F16, f16_to_float, f16_from_float, vec_dot_f16),
    [ST_TYPE_Q4_0] = FULL("Q4_0", ST_QK4_0, sizeof(st_block_q4_0), true, ST_TYPE_Q8_0, q4_0_to_float, q4_0_from_float, vec_dot_q4_0_q8_0),
    [ST_TYPE_Q4_1] = FULL("Q4_1", ST_QK4_1, sizeof(st_block_q4_1), true, ST_TYPE_Q8_1, q4_1_to_float, q4_1_from_float, vec_dot_q4_1_q8_1),
    [ST_TYPE_Q5_0] = FULL("Q5_0", ST_QK5_0, sizeof(st_block_q5_0), true, ST_TYPE_Q8_0, q5_0_to_float, q5_0_from_float, vec_dot_q5_0_q8_0),
    [ST_TYPE_Q5_1] = FULL("Q5_1", ST_QK5_1, sizeof(st_block_q5_1), true, ST_TYPE_Q8_1, q5_1_to_float, q5_1_from_float, vec_dot_q5_1_q8_1),
    [ST_TYPE_Q8_0] = FULL("Q8_0", ST_QK8_0, sizeof(st_block_q8_0), true, ST_TYPE_Q8_0, q8_0_to_float, q8_0_from_float, vec_dot_q8_0_q8_0),
    [ST_TYPE_Q8_1] = FULL("Q8_1", ST_QK8_1, sizeof(st_block_q8_1), true, ST_TYPE_Q8_1, q8_1_to_float, q8_1_from_float, vec_dot_q8_1_q8_1),
    [ST_TYPE_Q2_K] = FULL("Q2_K", ST_QK_K, sizeof(st_block_q2_K), true, ST_TYPE_Q8_K, q2_k_to_float, q2_k_from_float, vec_dot_q2_k_q8_k),
    [ST_TYPE_Q3_K] = FULL("Q3_K", ST_QK_K, sizeof(st_block_q3_K), true, ST_TYPE_Q8_K, q3_k_to_float, q3_k_from_float, vec_dot_q3_k_q8_k),
    [ST_TYPE_Q4_K] = FULL("Q4_K", ST_QK_K, sizeof(st_block_q4_K), true, ST_TYPE_Q8_K, q4_k_to_float, q4_k_from_float, vec_dot_q4_k_q8_k),
    [ST_TYPE_Q5_K] = FULL("Q5_K", ST_QK_K, sizeof(st_block_q5_K), true, ST_TYPE_Q8_K, q5_k_to_float, q5_k_from_float, vec_dot_q5_k_q8_k),
    [ST_TYPE_Q6_K] = FULL("Q6_K", ST_QK_K, sizeof(st_block_q6_K), true, ST_TYPE_Q8_K, q6_k_to_float, q6_k_from_float, vec_dot_q6_k_q8_k),
    [ST_TYPE_Q8_K] = FULL("Q8_K", ST_QK_K, sizeof(st_block_q8_K), true, ST_TYPE_Q8_K, q8_k_to_float, q8_k_from_float, vec_dot_q8_k_q8_k),
    /* known to ggml, no kernels here: names and sizes only */
    [ST_TYPE_IQ2_XXS] = NOKERN("IQ2_XXS", ST_QK_K, 66, ST_TYPE_Q8_K),
    [ST_TYPE_IQ2_XS] = NOKERN("IQ2_XS", ST_QK_K, 74, ST_TYPE_Q8_K),
    [ST_TYPE_IQ3_XXS] = NOKERN("IQ3_XXS", ST_QK_K, 98, ST_TYPE_Q8_K),
    [ST_TYPE_IQ1_S] = NOKERN("IQ1_S", ST_QK_K, 50, ST_TYPE_Q8_K),
    [ST_TYPE_IQ4_NL] = NOKERN("IQ4_NL", 32, 18, ST_TYPE_Q8_0),
    [ST_TYPE_IQ3_S] = NOKERN("IQ3_S", ST_QK_K, 110, ST_TYPE_Q8_K),
    [ST_TYPE_IQ2_S] = NOKERN("IQ2_S", ST_QK_K, 82, ST_TYPE_Q8_K),
    [ST_TYPE_IQ4_XS] = NOKERN("IQ4_XS", ST_QK_K, 136, ST_TYPE_Q8_K),
    [ST_TYPE_I8] = PLAIN("I8", 1, ST_TYPE_I8),
    [ST_TYPE_I16] = PLAIN("I16", 2, ST_TYPE_I16),
    [ST_TYPE_I32] = PLAIN("I32", 4, ST_TYPE_I32),
    [ST_TYPE_I64] = PLAIN("I64", 8, ST_TYPE_I64),
    [ST_TYPE_F64] = PLAIN("F64", 8, ST_TYPE_F64),
    [ST_TYPE_IQ1_M] = NOKERN("IQ1_M", ST_QK_K, 56, ST_TYPE_Q8_K),
    [ST_TYPE_BF16] = FULL("BF16", 1, 2, false, ST_TYPE_BF16, bf16_to_float, bf16_from_float, vec_dot_bf16),
    [ST_TYPE_TQ1_0] = NOKERN("TQ1_0", ST_QK_K, 54, ST_TYPE_Q8_K),
    [ST_TYPE_TQ2_0] = NOKERN("TQ2_0", ST_QK_K, 66, ST_TYPE_Q8_K),
    [39] = NOKERN("MXFP4", 32, 17, ST_TYPE_Q8_0), /* ggml's GGML_TYPE_MXFP4 */
};

/* ---- CPU detection ------------------------------------------------------- */

static bool no_simd_env(void) {
    const char *v = getenv("STRATA_NO_SIMD");
    return v && *v && strcmp(v, "0") != 0;
}

static bool cpu_has_avx2_hw(void) {
#ifdef ST_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28), f16c = c & (1u << 29);
    if (!(fma && osxsave && avx && f16c)) return false;
    /* the OS must save the YMM state (XCR0 bits 1 and 2) */
    unsigned xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    (void)xhi;
    if ((xlo & 6u) != 6u) return false;
    if (__get_cpuid_max(0, NULL) < 7) return false;
    __cpuid_count(7, 0, a, b, c, d);
    const bool avx2 = b & (1u << 5), bmi2 = b & (1u << 8); /* quant_avx2.c is built with -mbmi2 too */
    return avx2 && bmi2;
#else
    return false;
#endif
}

static st_type_traits g_fast[ST_TYPE_COUNT];
static bool g_use_avx2;
static pthread_once_t g_fast_once = PTHREAD_ONCE_INIT;

/* Default for builds without quant_avx2.c. Careful: core is a static library,
 * and a linker does not pull an archive member in for a symbol that is
 * already defined, even weakly, so with this default present quant_avx2.o
 * would silently never be linked. Hence the default exists only while
 * quant_avx2.c does not (after adding that file, quant.c must be recompiled:
 * a clean build or a touch). */
#if !__has_include("quant_avx2.c")
__attribute__((weak)) void st_quant_avx2_install(st_type_traits *tbl) { (void)tbl; }
#endif

/* AVX-VNNI decode kernels (quant_avxvnni.c, built with -mavxvnni), installed
 * over the AVX2 ones; the same static-library caveat as above. */
void st_quant_avxvnni_install(st_type_traits *tbl);
#if !__has_include("quant_avxvnni.c")
__attribute__((weak)) void st_quant_avxvnni_install(st_type_traits *tbl) { (void)tbl; }
#endif

/* AVX-VNNI: CPUID.(EAX=7,ECX=1):EAX bit 4 (VEX-encoded vpdpbusd/vpdpwssd on
 * YMM; the YMM state check is part of cpu_has_avx2_hw). STRATA_NO_VNNI=1
 * keeps the AVX2 kernels (benchmarks, tests). */
static bool cpu_has_avxvnni_hw(void) {
#ifdef ST_X86
    const char *v = getenv("STRATA_NO_VNNI");
    if (v && *v && strcmp(v, "0") != 0) return false;
    if (__get_cpuid_max(0, NULL) < 7) return false;
    unsigned a, b, c, d;
    __cpuid_count(7, 1, a, b, c, d);
    (void)b;
    (void)c;
    (void)d;
    return (a >> 4) & 1u;
#else
    return false;
#endif
}
static bool g_use_avxvnni;

/* Multi-column fallback of the fast table for types whose vec_dot was
 * replaced by a SIMD kernel but that have no multi-column SIMD kernel: one
 * call of the fast vec_dot per activation row. */
#define NC_FAST(T)                                                                                    \
    static void nc_fast_##T(int n, float *s, const void *x, const void *y, size_t by, int ny) {      \
        const st_vec_dot_fn dot = g_fast[ST_TYPE_##T].vec_dot;                                        \
        for (int j = 0; j < ny; j++) dot(n, s + j, x, (const uint8_t *)y + (size_t)j * by);           \
    }
NC_FAST(F32)
NC_FAST(F16)
NC_FAST(BF16)
NC_FAST(Q4_0)
NC_FAST(Q4_1)
NC_FAST(Q5_0)
NC_FAST(Q5_1)
NC_FAST(Q8_0)
NC_FAST(Q8_1)
NC_FAST(Q2_K)
NC_FAST(Q3_K)
NC_FAST(Q4_K)
NC_FAST(Q5_K)
NC_FAST(Q6_K)
NC_FAST(Q8_K)
#undef NC_FAST

static const st_vec_dot_nc_fn g_nc_fast[ST_TYPE_COUNT] = {
    [ST_TYPE_F32] = nc_fast_F32,   [ST_TYPE_F16] = nc_fast_F16,   [ST_TYPE_BF16] = nc_fast_BF16,
    [ST_TYPE_Q4_0] = nc_fast_Q4_0, [ST_TYPE_Q4_1] = nc_fast_Q4_1, [ST_TYPE_Q5_0] = nc_fast_Q5_0,
    [ST_TYPE_Q5_1] = nc_fast_Q5_1, [ST_TYPE_Q8_0] = nc_fast_Q8_0, [ST_TYPE_Q8_1] = nc_fast_Q8_1,
    [ST_TYPE_Q2_K] = nc_fast_Q2_K, [ST_TYPE_Q3_K] = nc_fast_Q3_K, [ST_TYPE_Q4_K] = nc_fast_Q4_K,
    [ST_TYPE_Q5_K] = nc_fast_Q5_K, [ST_TYPE_Q6_K] = nc_fast_Q6_K, [ST_TYPE_Q8_K] = nc_fast_Q8_K,
};

static void fast_init(void) {
    st_quant_init();
    memcpy(g_fast, g_ref, sizeof g_fast);
    g_use_avx2 = !no_simd_env() && cpu_has_avx2_hw();
    if (g_use_avx2) st_quant_avx2_install(g_fast);
    g_use_avxvnni = g_use_avx2 && cpu_has_avxvnni_hw();
    if (g_use_avxvnni) st_quant_avxvnni_install(g_fast);
    /* a SIMD vec_dot without a SIMD vec_dot_nc: loop over the SIMD vec_dot */
    for (int t = 0; t < ST_TYPE_COUNT; t++)
        if (g_fast[t].vec_dot != g_ref[t].vec_dot && g_fast[t].vec_dot_nc == g_ref[t].vec_dot_nc && g_nc_fast[t])
            g_fast[t].vec_dot_nc = g_nc_fast[t];
}

bool st_cpu_has_avx2(void) {
    pthread_once(&g_fast_once, fast_init);
    return g_use_avx2;
}

bool st_cpu_has_avxvnni(void) {
    pthread_once(&g_fast_once, fast_init);
    return g_use_avxvnni;
}

const st_type_traits *st_type_traits_get(st_type t) {
    pthread_once(&g_fast_once, fast_init);
    if ((unsigned)t >= ST_TYPE_COUNT) return NULL;
    return &g_fast[t];
}

const st_type_traits *st_type_traits_ref(st_type t) {
    st_quant_init();
    if ((unsigned)t >= ST_TYPE_COUNT) return NULL;
    return &g_ref[t];
}

const char *st_type_name(st_type t) {
    if ((unsigned)t >= ST_TYPE_COUNT) return NULL;
    return g_ref[t].name;
}

size_t st_row_size(st_type t, int64_t n) {
    if ((unsigned)t >= ST_TYPE_COUNT || !g_ref[t].name || n < 0) return 0;
    const int64_t bs = g_ref[t].blck_size;
    if (n % bs) return 0;
    return (size_t)(n / bs) * g_ref[t].type_size;
}

size_t st_quantize_row(st_type t, const float *x, void *out, int64_t n) {
    const st_type_traits *tr = st_type_traits_ref(t);
    if (!tr || !tr->from_float) return 0;
    const size_t sz = st_row_size(t, n);
    if (!sz && n) return 0;
    tr->from_float(x, out, n);
    return sz;
}
