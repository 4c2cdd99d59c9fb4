/* quant_avx2.c — AVX2/FMA/F16C kernels: dot products of quantized weight rows
 * with quantized activation rows, activation quantizers (Q8_0, Q8_1, Q8_K,
 * F16) and a few dequantizers.
 *
 * Compiled with -mavx2 -mfma -mf16c -mbmi2 and only reached after cpuid says
 * so (st_quant_avx2_install is called by quant.c). Every kernel computes the
 * same thing as the scalar reference in quant.c: the integer parts of the
 * block dot products are exact, only the order of the float accumulation
 * differs. The activation quantizers are bit-identical to the reference.
 *
 * Integer dot tricks used throughout:
 *  - unsigned quants (0..2^k-1) times signed int8 activations go straight into
 *    _mm256_maddubs_epi16 (no saturation possible for k <= 6);
 *  - a constant offset (Q4_0's -8, Q5_0's -16) is a second maddubs of the
 *    constant with the activations, subtracted at int16;
 *  - for the K-quants the offset / min terms go through Q8_K's bsums (sums of
 *    16 activations), so they cost one madd per super-block;
 *  - signed x signed (Q8_0) uses the abs/sign pair.
 *
 * Three kinds of products, for decode and for prompts:
 *  - vec_dot: one weight row, one activation row;
 *  - vec_dot_nc: one weight row, up to 4 activation rows (each weight block
 *    unpacked once for all of them);
 *  - gemm: 8 weight rows repacked once into an interleaved layout (one dword
 *    lane per row), then any number of activation rows (AVX-VNNI vpdpbusd
 *    where the CPU has it, AVX2 maddubs/madd otherwise).
 * For Q4_0, Q5_0, Q8_0, Q4_K, Q5_K and Q6_K all three follow one canonical
 * order of float operations per type (exact integer block sums, then the
 * same float steps in the same order; documented at the kernels), so a
 * token's logits are bit-identical whatever batch it is evaluated in. For
 * Q4_0/Q5_0/Q8_0 that order has 4 float accumulators (block b into
 * accumulator b mod 4, summed as (a0 + a1) + (a2 + a3) at the end), so that
 * no serial chain of one FMA per block bounds decode. For the other types
 * vec_dot_nc repeats vec_dot's operations per column. */
#include <cpuid.h>
#include <immintrin.h>
#include <stdbool.h>
#include <stdlib.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "quant_impl.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Software prefetch of the weight stream, ST_PF_DIST bytes ahead, into L2:
 * on the machines measured the hardware prefetchers alone left single-thread
 * matrix-vector products at 20-50% of the read bandwidth; one prefetch per
 * 64 bytes of weights brings them to 75-90% (see bench/kernel_bw.c). */
#ifndef ST_PF_DIST
#define ST_PF_DIST 4096
#endif
#ifndef ST_PF_HINT
#define ST_PF_HINT _MM_HINT_T1
#endif
#define PF(p) _mm_prefetch((const char *)(p) + ST_PF_DIST, ST_PF_HINT)

ALWAYS_INLINE float h2f(st_fp16 h) { return _cvtsh_ss(h); }

ALWAYS_INLINE float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

ALWAYS_INLINE float hsum_ps128(__m128 s) {
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

ALWAYS_INLINE __m256i loadu256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
ALWAYS_INLINE __m128i loadu128(const void *p) { return _mm_loadu_si128((const __m128i *)p); }

/* 16 packed nibbles -> 32 bytes: low nibbles in bytes 0..15, high in 16..31 */
ALWAYS_INLINE __m256i nibbles32(const uint8_t *qs) {
    const __m128i t = loadu128(qs);
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* 32 bits -> 32 bytes, 0x10 where the bit is set (byte i <- bit i) */
ALWAYS_INLINE __m256i bits_to_0x10(const uint8_t *qh) {
    uint32_t b;
    memcpy(&b, qh, 4);
    const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000LL, 0x0101010101010101LL,
                                            0x0202020202020202LL, 0x0303030303030303LL);
    const __m256i bm = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)b), shuf);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bm), bm);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* signed int8 x signed int8 -> 8 int32 partial sums */
ALWAYS_INLINE __m256i dot_i8(__m256i x, __m256i y) {
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* ------------------------------------------------------------------------- */
/* plain float types                                                          */

static void vec_dot_f32(int n, float *s, const void *vx, const void *vy) {
    const float *x = vx, *y = vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        PF(x + i);
        PF(x + i + 16);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) sum += st_ldf(x + i) * st_ldf(y + i); /* rows at any address */
    *s = sum;
}

ALWAYS_INLINE __m256 ld_f16(const st_fp16 *p) { return _mm256_cvtph_ps(loadu128(p)); }

static void vec_dot_f16(int n, float *s, const void *vx, const void *vy) {
    const st_fp16 *x = vx, *y = vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        PF(x + i);
        a0 = _mm256_fmadd_ps(ld_f16(x + i), ld_f16(y + i), a0);
        a1 = _mm256_fmadd_ps(ld_f16(x + i + 8), ld_f16(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(ld_f16(x + i + 16), ld_f16(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(ld_f16(x + i + 24), ld_f16(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(ld_f16(x + i), ld_f16(y + i), a0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) sum += h2f(x[i]) * h2f(y[i]);
    *s = sum;
}

ALWAYS_INLINE __m256 ld_bf16(const st_bf16 *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(loadu128(p)), 16));
}

ALWAYS_INLINE float bf2f(st_bf16 h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void vec_dot_bf16(int n, float *s, const void *vx, const void *vy) {
    const st_bf16 *x = vx, *y = vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        PF(x + i);
        a0 = _mm256_fmadd_ps(ld_bf16(x + i), ld_bf16(y + i), a0);
        a1 = _mm256_fmadd_ps(ld_bf16(x + i + 8), ld_bf16(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(ld_bf16(x + i + 16), ld_bf16(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(ld_bf16(x + i + 24), ld_bf16(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(ld_bf16(x + i), ld_bf16(y + i), a0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) sum += bf2f(x[i]) * bf2f(y[i]);
    *s = sum;
}

/* ------------------------------------------------------------------------- */
/* 32-element block types                                                     */

ALWAYS_INLINE __m256i dot_u8(__m256i q, __m256i y) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), _mm256_set1_epi16(1));
}

/* Scales of 4 consecutive 32-blocks: [dx0*dy0 .. dx3*dy3] in both 128-bit
 * lanes. The 8 fp16 values are packed in two GPRs and converted at once. */
#define SCALES4(x, y)                                                                                       \
    __extension__({                                                                                         \
        const uint64_t hx_ = (uint64_t)(x)[0].d | ((uint64_t)(x)[1].d << 16) | ((uint64_t)(x)[2].d << 32) | \
                             ((uint64_t)(x)[3].d << 48);                                                    \
        const uint64_t hy_ = (uint64_t)(y)[0].d | ((uint64_t)(y)[1].d << 16) | ((uint64_t)(y)[2].d << 32) | \
                             ((uint64_t)(y)[3].d << 48);                                                    \
        const __m256 f_ = _mm256_cvtph_ps(_mm_insert_epi64(_mm_cvtsi64_si128((long long)hx_), (long long)hy_, 1)); \
        _mm256_mul_ps(f_, _mm256_permute2f128_ps(f_, f_, 0x01));                                            \
    })

/* Q8_0 x Q8_0, 4 blocks per step: per-block int32 partial sums are reduced
 * with a hadd tree to [b0 b1 b2 b3 | b0 b1 b2 b3] (low / high 16 elements),
 * which lines up with the scale vector: one convert and one FMA per 4 blocks. */

/* 16 packed nibbles -> [low nibbles | high nibbles] without a lane insert:
 * broadcast the 16 bytes to both lanes, shift the high lane's qwords by 4 */
ALWAYS_INLINE __m256i nibbles32_b(const uint8_t *qs, __m256i shifts, __m256i m4) {
    const __m256i v = _mm256_broadcastsi128_si256(loadu128(qs));
    return _mm256_and_si256(_mm256_srlv_epi64(v, shifts), m4);
}

/* Q4_0 x Q8_0, 4 blocks per step. Per block: (q - 8) . y as 16 int16 pair
 * sums (maddubs of the unsigned nibbles minus maddubs of 8; |sum of 32| <=
 * 32 * 8 * 127 fits int16), then a hadd_epi16 tree and one madd give
 * [b0 b1 b2 b3 | b0 b1 b2 b3], scaled as in the Q8_0 kernel. */

/* m*s of 4 consecutive blocks (Q4_1/Q5_1 min term), as SCALES4 */
#define MINS4(x, y)                                                                                         \
    __extension__({                                                                                         \
        const uint64_t hx_ = (uint64_t)(x)[0].m | ((uint64_t)(x)[1].m << 16) | ((uint64_t)(x)[2].m << 32) | \
                             ((uint64_t)(x)[3].m << 48);                                                    \
        const uint64_t hy_ = (uint64_t)(y)[0].s | ((uint64_t)(y)[1].s << 16) | ((uint64_t)(y)[2].s << 32) | \
                             ((uint64_t)(y)[3].s << 48);                                                    \
        const __m256 f_ = _mm256_cvtph_ps(_mm_insert_epi64(_mm_cvtsi64_si128((long long)hx_), (long long)hy_, 1)); \
        _mm256_mul_ps(f_, _mm256_permute2f128_ps(f_, f_, 0x01));                                            \
    })

/* The other 32-blocks, 4 per step as Q4_0: the per-block int16 pair sums
 * stay within int16 through two hadd levels (8 products: <= 8*31*127), then
 * one madd widens to [b0 b1 b2 b3 | b0 b1 b2 b3]. */
static void vec_dot_q4_1_q8_1(int n, float *s, const void *vx, const void *vy) {
    const st_block_q4_1 *x = vx;
    const st_block_q8_1 *y = vy;
    const int nb = n / ST_QK4_1;
    const __m256i m4 = _mm256_set1_epi8(0x0F), shifts = _mm256_setr_epi64x(0, 0, 4, 4);
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    int ib = 0;
    for (; ib + 4 <= nb; ib += 4) {
        PF(x + ib);
        PF((const char *)(x + ib) + 64);
        __m256i w[4];
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) w[k] = _mm256_maddubs_epi16(nibbles32_b(x[ib + k].qs, shifts, m4), loadu256(y[ib + k].qs));
        const __m256i h = _mm256_hadd_epi16(_mm256_hadd_epi16(w[0], w[1]), _mm256_hadd_epi16(w[2], w[3]));
        const __m256i si = _mm256_madd_epi16(h, _mm256_set1_epi16(1));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(si), SCALES4(x + ib, y + ib), acc);
        accm = _mm256_add_ps(accm, MINS4(x + ib, y + ib));
    }
    float summ = hsum_ps128(_mm256_castps256_ps128(accm));
    for (; ib < nb; ib++) {
        const __m256i p = dot_u8(nibbles32(x[ib].qs), loadu256(y[ib].qs));
        const __m256 d = _mm256_set1_ps(h2f(x[ib].d) * h2f(y[ib].d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
        summ += h2f(x[ib].m) * h2f(y[ib].s);
    }
    *s = hsum_ps(acc) + summ;
}


static void vec_dot_q5_1_q8_1(int n, float *s, const void *vx, const void *vy) {
    const st_block_q5_1 *x = vx;
    const st_block_q8_1 *y = vy;
    const int nb = n / ST_QK5_1;
    const __m256i m4 = _mm256_set1_epi8(0x0F), shifts = _mm256_setr_epi64x(0, 0, 4, 4);
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    int ib = 0;
    for (; ib + 4 <= nb; ib += 4) {
        PF(x + ib);
        PF((const char *)(x + ib) + 64);
        __m256i w[4];
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            const __m256i q = _mm256_or_si256(nibbles32_b(x[ib + k].qs, shifts, m4), bits_to_0x10(x[ib + k].qh));
            w[k] = _mm256_maddubs_epi16(q, loadu256(y[ib + k].qs));
        }
        const __m256i h = _mm256_hadd_epi16(_mm256_hadd_epi16(w[0], w[1]), _mm256_hadd_epi16(w[2], w[3]));
        const __m256i si = _mm256_madd_epi16(h, _mm256_set1_epi16(1));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(si), SCALES4(x + ib, y + ib), acc);
        accm = _mm256_add_ps(accm, MINS4(x + ib, y + ib));
    }
    float summ = hsum_ps128(_mm256_castps256_ps128(accm));
    for (; ib < nb; ib++) {
        const __m256i q = _mm256_or_si256(nibbles32(x[ib].qs), bits_to_0x10(x[ib].qh));
        const __m256i p = dot_u8(q, loadu256(y[ib].qs));
        const __m256 d = _mm256_set1_ps(h2f(x[ib].d) * h2f(y[ib].d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
        summ += h2f(x[ib].m) * h2f(y[ib].s);
    }
    *s = hsum_ps(acc) + summ;
}

/* ------------------------------------------------------------------------- */
/* K-quants                                                                   */

/* pshufb masks over 8 int16 scales held in both 128-bit lanes:
 *  k_pair[k]: scale 2k broadcast over the low lane, 2k+1 over the high lane;
 *  k_one[k]:  scale k broadcast over both lanes. */
#define R8(a, b) a, b, a, b, a, b, a, b, a, b, a, b, a, b, a, b
static const uint8_t k_pair[4][32] __attribute__((aligned(32))) = {
    {R8(0, 1), R8(2, 3)}, {R8(4, 5), R8(6, 7)}, {R8(8, 9), R8(10, 11)}, {R8(12, 13), R8(14, 15)}};
static const uint8_t k_one[8][32] __attribute__((aligned(32))) = {
    {R8(0, 1), R8(0, 1)},   {R8(2, 3), R8(2, 3)},   {R8(4, 5), R8(4, 5)},   {R8(6, 7), R8(6, 7)},
    {R8(8, 9), R8(8, 9)},   {R8(10, 11), R8(10, 11)}, {R8(12, 13), R8(12, 13)}, {R8(14, 15), R8(14, 15)}};
#undef R8
ALWAYS_INLINE __m256i scale_pair_shuffle(int k) { return _mm256_load_si256((const __m256i *)k_pair[k]); }
ALWAYS_INLINE __m256i scale_shuffle(int k) { return _mm256_load_si256((const __m256i *)k_one[k]); }

static void vec_dot_q2_K_q8_K(int n, float *s, const void *vx, const void *vy) {
    const st_block_q2_K *x = vx;
    const int nb = n / ST_QK_K;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        PF(x + i);
        PF((const char *)(x + i) + 64);
        const uint8_t *y = q8k_block(vy, i); /* at any address: read through q8k_* */
        const float d = q8k_d(y) * h2f(x[i].d);
        const float dmin = -q8k_d(y) * h2f(x[i].dmin);
        const __m128i sc8 = loadu128(x[i].scales);
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4), m4));
        const __m256i prodm = _mm256_madd_epi16(mins, loadu256(q8k_bsums(y)));
        accm = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(prodm), accm);
        const __m256i s16 = _mm256_cvtepu8_epi16(_mm_and_si128(sc8, m4));
        const int8_t *q8 = q8k_qs(y);
        __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i sc = h == 0 ? _mm256_permute2x128_si256(s16, s16, 0x00)
                                      : _mm256_permute2x128_si256(s16, s16, 0x11);
            const __m256i q2 = loadu256(x[i].qs + 32 * h);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(q2, 2 * j), m3);
                const __m256i p = _mm256_maddubs_epi16(q, loadu256(q8 + 128 * h + 32 * j));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, _mm256_shuffle_epi8(sc, scale_pair_shuffle(j))));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum_ps(_mm256_add_ps(acc, accm));
}

/* Q3_K's 16 6-bit scales (raw, 0..63) from the 12 packed bytes */
ALWAYS_INLINE __m128i q3k_scales(const uint8_t *scales) {
    const uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
    uint32_t aux[4];
    memcpy(aux, scales, 12);
    const uint32_t tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
    aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
    aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
    aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
    return _mm_setr_epi32((int)aux[0], (int)aux[1], (int)aux[2], (int)aux[3]);
}

static void vec_dot_q3_K_q8_K(int n, float *s, const void *vx, const void *vy) {
    const st_block_q3_K *x = vx;
    const int nb = n / ST_QK_K;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m256i c4 = _mm256_set1_epi8(4);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        PF(x + i);
        PF((const char *)(x + i) + 64);
        const uint8_t *y = q8k_block(vy, i); /* at any address: read through q8k_* */
        const float d = q8k_d(y) * h2f(x[i].d);
        /* value = q2 + 4*hbit - 4, scale = sc - 32:
         * sum = sum(sc * (q2 + 4h) * y) - 4 * sum(sc * bsums) */
        const __m128i sc8 = _mm_sub_epi8(q3k_scales(x[i].scales), _mm_set1_epi8(32));
        const __m256i s16 = _mm256_cvtepi8_epi16(sc8);
        const __m256i corr = _mm256_madd_epi16(s16, loadu256(q8k_bsums(y)));
        const __m256i hm = loadu256(x[i].hmask);
        const int8_t *q8 = q8k_qs(y);
        __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i sc = h == 0 ? _mm256_permute2x128_si256(s16, s16, 0x00)
                                      : _mm256_permute2x128_si256(s16, s16, 0x11);
            const __m256i q2 = loadu256(x[i].qs + 32 * h);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const __m256i bit = _mm256_set1_epi8((char)(1 << (4 * h + j)));
                const __m256i hb = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit), c4);
                const __m256i q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q2, 2 * j), m3), hb);
                const __m256i p = _mm256_maddubs_epi16(q, loadu256(q8 + 128 * h + 32 * j));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, _mm256_shuffle_epi8(sc, scale_pair_shuffle(j))));
            }
        }
        sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(corr, 2));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum_ps(acc);
}

/* Q4_K / Q5_K: 8 6-bit scales and 8 6-bit mins -> bytes 0..7 scales, 8..15 mins */
ALWAYS_INLINE __m128i k4_scales_mins(const uint8_t *scales) {
    const uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
    uint32_t u[4];
    memcpy(u, scales, 12);
    u[3] = ((u[2] >> 4) & kmask2) | (((u[1] >> 6) & kmask3) << 4);
    const uint32_t uaux = u[1] & kmask1;
    u[1] = (u[2] & kmask2) | (((u[0] >> 6) & kmask3) << 4);
    u[2] = uaux;
    u[0] &= kmask1;
    return _mm_setr_epi32((int)u[0], (int)u[1], (int)u[2], (int)u[3]);
}




/* ------------------------------------------------------------------------- */
/* multi-column dots (st_vec_dot_nc_fn)                                        */
/*
 * One weight row against NY activation rows (NY = 2..4; 1 goes to the single
 * kernels above). Each weight block is loaded and unpacked once, its scales
 * decoded once; only the multiply-adds with the activations are repeated per
 * column, each column with its own accumulators. The integer math per block
 * is that of the single kernels, so the results are the same up to the order
 * of the float accumulation.
 *
 * The kernels are written once with NY a parameter and inlined with the
 * constant 2, 3 and 4, so the column loops unroll and the per-column
 * accumulator arrays live in registers. */

#define NCMAX ST_VEC_DOT_NC_MAX
/* An empty asm that claims to change v: pins the order of a column's
 * accumulation. Without it GCC sums the products of all sub-blocks in a tree
 * at the end of each super-block, keeping 8 products per column alive, and
 * with 4 columns they spill to the stack (20% slower). */
#define KEEP(v) __asm__("" : "+x"(v))
#define NC_Y(T, vy, by, c) ((const T *)((const uint8_t *)(vy) + (size_t)(c) * (by)))
/* Q8_K block i of column c, as bytes (read through q8k_*: rows at any address) */
#define NC_Q8K(vy, by, c, i) q8k_block((const uint8_t *)(vy) + (size_t)(c) * (by), i)

#define NC_DISPATCH(name, kern, single)                                                    \
    static void name(int n, float *s, const void *x, const void *y, size_t by, int ny) {  \
        switch (ny) {                                                                      \
        case 4: kern(n, s, x, y, by, 4); break;                                            \
        case 3: kern(n, s, x, y, by, 3); break;                                            \
        case 2: kern(n, s, x, y, by, 2); break;                                            \
        default: single(n, s, x, y); break;                                                \
        }                                                                                  \
    }

/* fp16 d fields of 4 consecutive blocks -> [d0 d1 d2 d3 d0 d1 d2 d3] */
#define D4(b, f)                                                                                       \
    _mm256_cvtph_ps(_mm_set1_epi64x((long long)((uint64_t)(b)[0].f | ((uint64_t)(b)[1].f << 16) |      \
                                                ((uint64_t)(b)[2].f << 32) | ((uint64_t)(b)[3].f << 48))))

/* [b0 b1 b2 b3 | b0 b1 b2 b3] int32 from per-block int16 pair sums (each
 * element of the result sums 16 pair sums; the hadd_epi16 levels add 4, so
 * each int16 pair sum must be <= 32767/4 in magnitude) */
ALWAYS_INLINE __m256i hsum4_i16(__m256i w0, __m256i w1, __m256i w2, __m256i w3) {
    const __m256i h = _mm256_hadd_epi16(_mm256_hadd_epi16(w0, w1), _mm256_hadd_epi16(w2, w3));
    return _mm256_madd_epi16(h, _mm256_set1_epi16(1));
}


/* The 4 accumulators of the 32-element types' canonical order (see below)
 * summed as (a0 + a1) + (a2 + a3) */
ALWAYS_INLINE float fold4(float a0, float a1, float a2, float a3) { return (a0 + a1) + (a2 + a3); }

ALWAYS_INLINE int hsum_i32(__m256i v) {
    __m128i u = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    u = _mm_add_epi32(u, _mm_shuffle_epi32(u, 0x4E));
    u = _mm_add_epi32(u, _mm_shuffle_epi32(u, 0xB1));
    return _mm_cvtsi128_si32(u);
}

/* [b0L b1L b2L b3L | b0H b1H b2H b3H] -> [b0 b1 b2 b3] */
ALWAYS_INLINE __m128i halves_add(__m256i h) {
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* fp16 d fields of 4 consecutive blocks -> [d0 d1 d2 d3] */
#define D4X(b, f)                                                                                      \
    _mm_cvtph_ps(_mm_cvtsi64_si128((long long)((uint64_t)(b)[0].f | ((uint64_t)(b)[1].f << 16) |       \
                                               ((uint64_t)(b)[2].f << 32) | ((uint64_t)(b)[3].f << 48))))

/* ---- Q8_0 x Q8_0 ----
 * Canonical float order of the 32-element types (Q4_0, Q5_0, Q8_0), shared
 * by vec_dot (NY = 1, AVX2 and AVX-VNNI), vec_dot_nc and the gemm kernels so
 * that a token gives bit-identical results whatever path and batch size
 * computes it: per block b, the exact integer sum isum_b (|isum| < 2^24, so
 * (float)isum is exact); four float accumulators a0..a3, all +0 at first;
 * block b goes into a[b mod 4] as a[b mod 4] = fmaf(isum_b, dx_b * dy_b,
 * a[b mod 4]), the blocks of each accumulator in increasing b (dx * dy is
 * exact: two fp16 values); the result is (a0 + a1) + (a2 + a3).
 * With 4 blocks per step that is one 4-wide FMA per step into [a0 a1 a2 a3]:
 * the serial dependency is one FMA latency per 4 blocks rather than per
 * block (a single chain of fmaf capped Q4_0 at ~16 GB/s in cache). A tail of
 * nb mod 4 blocks starts at a multiple of 4, so its block k goes into a[k]. */
ALWAYS_INLINE void nc_q8_0(int n, float *s, const void *vx, const void *vy, size_t by, const int NY) {
    const st_block_q8_0 *x = vx;
    const int nb = n / ST_QK8_0;
    const __m256i ones = _mm256_set1_epi16(1);
    __m128 acc[NCMAX];
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) acc[c] = _mm_setzero_ps();
    int ib = 0;
    for (; ib + 4 <= nb; ib += 4) {
        PF(x + ib);
        PF((const char *)(x + ib) + 64);
        PF((const char *)(x + ib) + 128);
        __m256i ax[4];
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            const __m256i xk = loadu256(x[ib + k].qs);
            ax[k] = _mm256_sign_epi8(xk, xk);
        }
        const __m128 dx = D4X(x + ib, d);
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) {
            const st_block_q8_0 *y = NC_Y(st_block_q8_0, vy, by, c) + ib;
            __m256i p[4];
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m256i sy = _mm256_sign_epi8(loadu256(y[k].qs), loadu256(x[ib + k].qs));
                p[k] = _mm256_madd_epi16(_mm256_maddubs_epi16(ax[k], sy), ones);
            }
            const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
            acc[c] = _mm_fmadd_ps(_mm_cvtepi32_ps(halves_add(h)), _mm_mul_ps(dx, D4X(y, d)), acc[c]);
        }
    }
    float a[NCMAX][4];
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) _mm_storeu_ps(a[c], acc[c]);
    for (; ib < nb; ib++) {
        const __m256i xk = loadu256(x[ib].qs);
        const float dx = h2f(x[ib].d);
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) {
            const st_block_q8_0 *y = NC_Y(st_block_q8_0, vy, by, c) + ib;
            a[c][ib & 3] = fmaf((float)hsum_i32(dot_i8(xk, loadu256(y->qs))), dx * h2f(y->d), a[c][ib & 3]);
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) s[c] = fold4(a[c][0], a[c][1], a[c][2], a[c][3]);
}
static void vec_dot_q8_0_seq(int n, float *s, const void *x, const void *y) { nc_q8_0(n, s, x, y, 0, 1); }
NC_DISPATCH(vec_dot_nc_q8_0_q8_0, nc_q8_0, vec_dot_q8_0_seq)

/* ---- Q4_0 / Q5_0 x Q8_0: signed quants (q - 8 or q - 16) through the sign
 * trick: |q| <= 16, so 8 products stay within int16 (16 * 127 * 8); the
 * canonical order of Q8_0 ---- */
ALWAYS_INLINE void nc_q40_q50(int n, float *s, const void *vx, const void *vy, size_t by, const int NY, const bool five) {
    const int nb = n / 32;
    const size_t xsz = five ? sizeof(st_block_q5_0) : sizeof(st_block_q4_0);
    const __m256i m4 = _mm256_set1_epi8(0x0F), shifts = _mm256_setr_epi64x(0, 0, 4, 4);
    const __m256i off = _mm256_set1_epi8(five ? 16 : 8);
    __m128 acc[NCMAX];
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) acc[c] = _mm_setzero_ps();
    int ib = 0;
    for (; ib + 4 <= nb; ib += 4) {
        const uint8_t *xb = (const uint8_t *)vx + (size_t)ib * xsz;
        PF(xb);
        PF(xb + 64);
        __m256i q[4], aq[4];
        __m128 dx;
        if (five) {
            const st_block_q5_0 *x = (const st_block_q5_0 *)xb;
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++)
                q[k] = _mm256_sub_epi8(_mm256_or_si256(nibbles32_b(x[k].qs, shifts, m4), bits_to_0x10(x[k].qh)), off);
            dx = D4X(x, d);
        } else {
            const st_block_q4_0 *x = (const st_block_q4_0 *)xb;
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) q[k] = _mm256_sub_epi8(nibbles32_b(x[k].qs, shifts, m4), off);
            dx = D4X(x, d);
        }
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) aq[k] = _mm256_sign_epi8(q[k], q[k]);
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) {
            const st_block_q8_0 *y = NC_Y(st_block_q8_0, vy, by, c) + ib;
            __m256i w[4];
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) w[k] = _mm256_maddubs_epi16(aq[k], _mm256_sign_epi8(loadu256(y[k].qs), q[k]));
            const __m256i si = hsum4_i16(w[0], w[1], w[2], w[3]);
            acc[c] = _mm_fmadd_ps(_mm_cvtepi32_ps(halves_add(si)), _mm_mul_ps(dx, D4X(y, d)), acc[c]);
        }
    }
    float a[NCMAX][4];
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) _mm_storeu_ps(a[c], acc[c]);
    for (; ib < nb; ib++) {
        __m256i q;
        float dx;
        if (five) {
            const st_block_q5_0 *x = (const st_block_q5_0 *)vx + ib;
            q = _mm256_sub_epi8(_mm256_or_si256(nibbles32(x->qs), bits_to_0x10(x->qh)), off);
            dx = h2f(x->d);
        } else {
            const st_block_q4_0 *x = (const st_block_q4_0 *)vx + ib;
            q = _mm256_sub_epi8(nibbles32(x->qs), off);
            dx = h2f(x->d);
        }
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) {
            const st_block_q8_0 *y = NC_Y(st_block_q8_0, vy, by, c) + ib;
            a[c][ib & 3] = fmaf((float)hsum_i32(dot_i8(q, loadu256(y->qs))), dx * h2f(y->d), a[c][ib & 3]);
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) s[c] = fold4(a[c][0], a[c][1], a[c][2], a[c][3]);
}
ALWAYS_INLINE void nc_q4_0(int n, float *s, const void *vx, const void *vy, size_t by, const int NY) {
    nc_q40_q50(n, s, vx, vy, by, NY, false);
}
ALWAYS_INLINE void nc_q5_0(int n, float *s, const void *vx, const void *vy, size_t by, const int NY) {
    nc_q40_q50(n, s, vx, vy, by, NY, true);
}
static void vec_dot_q4_0_seq(int n, float *s, const void *x, const void *y) { nc_q4_0(n, s, x, y, 0, 1); }
static void vec_dot_q5_0_seq(int n, float *s, const void *x, const void *y) { nc_q5_0(n, s, x, y, 0, 1); }
NC_DISPATCH(vec_dot_nc_q4_0_q8_0, nc_q4_0, vec_dot_q4_0_seq)
NC_DISPATCH(vec_dot_nc_q5_0_q8_0, nc_q5_0, vec_dot_q5_0_seq)

/* ---- Q4_1 / Q5_1 x Q8_1: unsigned quants straight into maddubs, the min
 * term m * s per block ---- */
ALWAYS_INLINE void nc_q41_q51(int n, float *s, const void *vx, const void *vy, size_t by, const int NY, const bool five) {
    const int nb = n / 32;
    const size_t xsz = five ? sizeof(st_block_q5_1) : sizeof(st_block_q4_1);
    const __m256i m4 = _mm256_set1_epi8(0x0F), shifts = _mm256_setr_epi64x(0, 0, 4, 4);
    __m256 acc[NCMAX], accm[NCMAX];
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) acc[c] = accm[c] = _mm256_setzero_ps();
    int ib = 0;
    for (; ib + 4 <= nb; ib += 4) {
        const uint8_t *xb = (const uint8_t *)vx + (size_t)ib * xsz;
        PF(xb);
        PF(xb + 64);
        __m256i q[4];
        __m256 dx, mx;
        if (five) {
            const st_block_q5_1 *x = (const st_block_q5_1 *)xb;
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) q[k] = _mm256_or_si256(nibbles32_b(x[k].qs, shifts, m4), bits_to_0x10(x[k].qh));
            dx = D4(x, d);
            mx = D4(x, m);
        } else {
            const st_block_q4_1 *x = (const st_block_q4_1 *)xb;
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) q[k] = nibbles32_b(x[k].qs, shifts, m4);
            dx = D4(x, d);
            mx = D4(x, m);
        }
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) {
            const st_block_q8_1 *y = NC_Y(st_block_q8_1, vy, by, c) + ib;
            __m256i w[4];
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) w[k] = _mm256_maddubs_epi16(q[k], loadu256(y[k].qs));
            const __m256i si = hsum4_i16(w[0], w[1], w[2], w[3]);
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(si), _mm256_mul_ps(dx, D4(y, d)), acc[c]);
            accm[c] = _mm256_fmadd_ps(mx, D4(y, s), accm[c]);
        }
    }
    float summ[NCMAX];
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) summ[c] = hsum_ps128(_mm256_castps256_ps128(accm[c]));
    for (; ib < nb; ib++) {
        __m256i q;
        float dx, mx;
        if (five) {
            const st_block_q5_1 *x = (const st_block_q5_1 *)vx + ib;
            q = _mm256_or_si256(nibbles32(x->qs), bits_to_0x10(x->qh));
            dx = h2f(x->d);
            mx = h2f(x->m);
        } else {
            const st_block_q4_1 *x = (const st_block_q4_1 *)vx + ib;
            q = nibbles32(x->qs);
            dx = h2f(x->d);
            mx = h2f(x->m);
        }
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) {
            const st_block_q8_1 *y = NC_Y(st_block_q8_1, vy, by, c) + ib;
            const __m256i p = dot_u8(q, loadu256(y->qs));
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(dx * h2f(y->d)), _mm256_cvtepi32_ps(p), acc[c]);
            summ[c] += mx * h2f(y->s);
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) s[c] = hsum_ps(acc[c]) + summ[c];
}
ALWAYS_INLINE void nc_q4_1(int n, float *s, const void *vx, const void *vy, size_t by, const int NY) {
    nc_q41_q51(n, s, vx, vy, by, NY, false);
}
ALWAYS_INLINE void nc_q5_1(int n, float *s, const void *vx, const void *vy, size_t by, const int NY) {
    nc_q41_q51(n, s, vx, vy, by, NY, true);
}
NC_DISPATCH(vec_dot_nc_q4_1_q8_1, nc_q4_1, vec_dot_q4_1_q8_1)
NC_DISPATCH(vec_dot_nc_q5_1_q8_1, nc_q5_1, vec_dot_q5_1_q8_1)

/* ---- Q4_K / Q5_K x Q8_K ----
 * Canonical float order of Q4_K/Q5_K, shared by vec_dot (NY = 1),
 * vec_dot_nc and the gemm kernel, so that a token's result does not depend
 * on the path or the batch: per super-block, the exact integer sums
 *   S = sum_j sc[j] * (q . y over sub-block j),  M = sum_j m[j] * ysum[j]
 * then u = fmaf(d, S, -(dmin * M)) and acc = fmaf(u, y.d, acc). */
ALWAYS_INLINE void nc_q4k_q5k(int n, float *s, const void *vx, const void *vy, size_t by, const int NY, const bool five) {
    const int nb = n / ST_QK_K;
    const size_t xsz = five ? sizeof(st_block_q5_K) : sizeof(st_block_q4_K);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i b0 = _mm256_set1_epi8(0x01), b1 = _mm256_set1_epi8(0x02);
    float acc[NCMAX];
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) acc[c] = 0.0f;
    for (int i = 0; i < nb; i++) {
        const uint8_t *xb = (const uint8_t *)vx + (size_t)i * xsz;
        PF(xb);
        PF(xb + 64);
        PF(xb + 128);
        /* Q4_K and Q5_K share d, dmin, scales at the same offsets */
        const st_block_q4_K *x4 = (const st_block_q4_K *)xb;
        const st_block_q5_K *x5 = (const st_block_q5_K *)xb;
        const float dx = h2f(x4->d), dmx = h2f(x4->dmin);
        const __m256i sm16 = _mm256_cvtepu8_epi16(k4_scales_mins(x4->scales)); /* lane0 scales, lane1 mins */
        const __m128i mins = _mm256_extracti128_si256(sm16, 1);
        const __m256i sc = _mm256_permute2x128_si256(sm16, sm16, 0x00);
        const uint8_t *qs = five ? x5->qs : x4->qs;
        __m256i hb = five ? loadu256(x5->qh) : _mm256_setzero_si256();
        __m256i sumi[NCMAX];
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) sumi[c] = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const __m256i b = loadu256(qs + 32 * j);
            __m256i lo = _mm256_and_si256(b, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
            if (five) {
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(hb, b0), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(hb, b1), 3));
                hb = _mm256_srli_epi16(hb, 2);
            }
            const __m256i slo = _mm256_shuffle_epi8(sc, scale_shuffle(2 * j));
            const __m256i shi = _mm256_shuffle_epi8(sc, scale_shuffle(2 * j + 1));
#pragma GCC unroll 4
            for (int c = 0; c < NY; c++) {
                const int8_t *q8 = q8k_qs(NC_Q8K(vy, by, c, i)) + 64 * j;
                const __m256i pl = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, loadu256(q8)), slo);
                const __m256i ph = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, loadu256(q8 + 32)), shi);
                sumi[c] = _mm256_add_epi32(sumi[c], _mm256_add_epi32(pl, ph));
                KEEP(sumi[c]);
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) {
            const uint8_t *y = NC_Q8K(vy, by, c, i);
            const __m256i bs = loadu256(q8k_bsums(y));
            const __m128i q8s = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
            const __m128i prodm = _mm_madd_epi16(mins, q8s);
            __m128i m = _mm_add_epi32(prodm, _mm_shuffle_epi32(prodm, 0x4E));
            m = _mm_add_epi32(m, _mm_shuffle_epi32(m, 0xB1));
            const float u = fmaf(dx, (float)hsum_i32(sumi[c]), -(dmx * (float)_mm_cvtsi128_si32(m)));
            acc[c] = fmaf(u, q8k_d(y), acc[c]);
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) s[c] = acc[c];
}
ALWAYS_INLINE void nc_q4_K(int n, float *s, const void *vx, const void *vy, size_t by, const int NY) {
    nc_q4k_q5k(n, s, vx, vy, by, NY, false);
}
ALWAYS_INLINE void nc_q5_K(int n, float *s, const void *vx, const void *vy, size_t by, const int NY) {
    nc_q4k_q5k(n, s, vx, vy, by, NY, true);
}
static void vec_dot_q4_K_seq(int n, float *s, const void *x, const void *y) { nc_q4_K(n, s, x, y, 0, 1); }
static void vec_dot_q5_K_seq(int n, float *s, const void *x, const void *y) { nc_q5_K(n, s, x, y, 0, 1); }
NC_DISPATCH(vec_dot_nc_q4_K_q8_K, nc_q4_K, vec_dot_q4_K_seq)
NC_DISPATCH(vec_dot_nc_q5_K_q8_K, nc_q5_K, vec_dot_q5_K_seq)

/* ---- Q6_K x Q8_K ----
 * Canonical order, shared with the gemm kernel: per super-block the exact
 * integer S = sum_j sc[j] * (q . y - 32 * bsum[j]) over the 16 sub-blocks (q
 * the unsigned 6-bit quants), then acc = fmaf(d * y.d, S, acc). */
ALWAYS_INLINE void nc_q6_K(int n, float *s, const void *vx, const void *vy, size_t by, const int NY) {
    const st_block_q6_K *x = vx;
    const int nb = n / ST_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m3 = _mm256_set1_epi8(0x03), m30 = _mm256_set1_epi8(0x30);
    float acc[NCMAX];
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) acc[c] = 0.0f;
    for (int i = 0; i < nb; i++) {
        PF(x + i);
        PF((const char *)(x + i) + 64);
        PF((const char *)(x + i) + 128);
        PF((const char *)(x + i) + 192);
        const float dx = h2f(x[i].d);
        const __m256i s16 = _mm256_cvtepi8_epi16(loadu128(x[i].scales));
        __m256i sumi[NCMAX];
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) sumi[c] = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i sc = h == 0 ? _mm256_permute2x128_si256(s16, s16, 0x00)
                                      : _mm256_permute2x128_si256(s16, s16, 0x11);
            const uint8_t *ql = x[i].ql + 64 * h;
            const uint8_t *qh = x[i].qh + 32 * h;
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m256i l = loadu256(ql + 32 * (k & 1));
                const __m256i hh = loadu256(qh);
                __m256i q;
                switch (k) {
                case 0: q = _mm256_or_si256(_mm256_and_si256(l, m4), _mm256_slli_epi16(_mm256_and_si256(hh, m3), 4)); break;
                case 1: q = _mm256_or_si256(_mm256_and_si256(l, m4), _mm256_and_si256(_mm256_slli_epi16(hh, 2), m30)); break;
                case 2: q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l, 4), m4), _mm256_and_si256(hh, m30)); break;
                default:
                    q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l, 4), m4),
                                        _mm256_and_si256(_mm256_srli_epi16(hh, 2), m30));
                    break;
                }
                const __m256i sk = _mm256_shuffle_epi8(sc, scale_pair_shuffle(k));
#pragma GCC unroll 4
                for (int c = 0; c < NY; c++) {
                    const int8_t *q8 = q8k_qs(NC_Q8K(vy, by, c, i)) + 128 * h + 32 * k;
                    sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(_mm256_maddubs_epi16(q, loadu256(q8)), sk));
                    KEEP(sumi[c]);
                }
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) {
            const uint8_t *y = NC_Q8K(vy, by, c, i);
            const __m256i corr = _mm256_madd_epi16(s16, loadu256(q8k_bsums(y)));
            const __m256i si = _mm256_sub_epi32(sumi[c], _mm256_slli_epi32(corr, 5));
            acc[c] = fmaf(dx * q8k_d(y), (float)hsum_i32(si), acc[c]);
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) s[c] = acc[c];
}
static void vec_dot_q6_K_seq(int n, float *s, const void *x, const void *y) { nc_q6_K(n, s, x, y, 0, 1); }
NC_DISPATCH(vec_dot_nc_q6_K_q8_K, nc_q6_K, vec_dot_q6_K_seq)

/* ---- Q3_K x Q8_K ---- */
ALWAYS_INLINE void nc_q3_K(int n, float *s, const void *vx, const void *vy, size_t by, const int NY) {
    const st_block_q3_K *x = vx;
    const int nb = n / ST_QK_K;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m256i c4 = _mm256_set1_epi8(4);
    __m256 acc[NCMAX];
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) acc[c] = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        PF(x + i);
        PF((const char *)(x + i) + 64);
        const float dx = h2f(x[i].d);
        const __m256i s16 = _mm256_cvtepi8_epi16(_mm_sub_epi8(q3k_scales(x[i].scales), _mm_set1_epi8(32)));
        const __m256i hm = loadu256(x[i].hmask);
        __m256i sumi[NCMAX];
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) sumi[c] = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i sc = h == 0 ? _mm256_permute2x128_si256(s16, s16, 0x00)
                                      : _mm256_permute2x128_si256(s16, s16, 0x11);
            const __m256i q2 = loadu256(x[i].qs + 32 * h);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const __m256i bit = _mm256_set1_epi8((char)(1 << (4 * h + j)));
                const __m256i hb = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit), c4);
                const __m256i q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q2, 2 * j), m3), hb);
                const __m256i sk = _mm256_shuffle_epi8(sc, scale_pair_shuffle(j));
#pragma GCC unroll 4
                for (int c = 0; c < NY; c++) {
                    const int8_t *q8 = q8k_qs(NC_Q8K(vy, by, c, i)) + 128 * h + 32 * j;
                    sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(_mm256_maddubs_epi16(q, loadu256(q8)), sk));
                    KEEP(sumi[c]);
                }
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) {
            const uint8_t *y = NC_Q8K(vy, by, c, i);
            const __m256i corr = _mm256_madd_epi16(s16, loadu256(q8k_bsums(y)));
            const __m256i si = _mm256_sub_epi32(sumi[c], _mm256_slli_epi32(corr, 2));
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(dx * q8k_d(y)), _mm256_cvtepi32_ps(si), acc[c]);
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) s[c] = hsum_ps(acc[c]);
}
NC_DISPATCH(vec_dot_nc_q3_K_q8_K, nc_q3_K, vec_dot_q3_K_q8_K)

/* ---- Q2_K x Q8_K ---- */
ALWAYS_INLINE void nc_q2_K(int n, float *s, const void *vx, const void *vy, size_t by, const int NY) {
    const st_block_q2_K *x = vx;
    const int nb = n / ST_QK_K;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m256 acc[NCMAX], accm[NCMAX];
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) acc[c] = accm[c] = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        PF(x + i);
        PF((const char *)(x + i) + 64);
        const float dx = h2f(x[i].d), mx = -h2f(x[i].dmin);
        const __m128i sc8 = loadu128(x[i].scales);
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4), m4));
        const __m256i s16 = _mm256_cvtepu8_epi16(_mm_and_si128(sc8, m4));
        __m256i sumi[NCMAX];
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) sumi[c] = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i sc = h == 0 ? _mm256_permute2x128_si256(s16, s16, 0x00)
                                      : _mm256_permute2x128_si256(s16, s16, 0x11);
            const __m256i q2 = loadu256(x[i].qs + 32 * h);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(q2, 2 * j), m3);
                const __m256i sk = _mm256_shuffle_epi8(sc, scale_pair_shuffle(j));
#pragma GCC unroll 4
                for (int c = 0; c < NY; c++) {
                    const int8_t *q8 = q8k_qs(NC_Q8K(vy, by, c, i)) + 128 * h + 32 * j;
                    sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(_mm256_maddubs_epi16(q, loadu256(q8)), sk));
                    KEEP(sumi[c]);
                }
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) {
            const uint8_t *y = NC_Q8K(vy, by, c, i);
            const __m256i prodm = _mm256_madd_epi16(mins, loadu256(q8k_bsums(y)));
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(dx * q8k_d(y)), _mm256_cvtepi32_ps(sumi[c]), acc[c]);
            accm[c] = _mm256_fmadd_ps(_mm256_set1_ps(mx * q8k_d(y)), _mm256_cvtepi32_ps(prodm), accm[c]);
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) s[c] = hsum_ps(_mm256_add_ps(acc[c], accm[c]));
}
NC_DISPATCH(vec_dot_nc_q2_K_q8_K, nc_q2_K, vec_dot_q2_K_q8_K)

/* ------------------------------------------------------------------------- */
/* repacked 8-row GEMM (AVX-VNNI)                                             */
/*
 * For prompt processing the caller repacks ST_GEMM_ROWS = 8 weight rows at a
 * time into an interleaved layout and reuses it for every token: one 32-byte
 * vector holds 4 consecutive quants of each of the 8 rows (one dword lane per
 * row), so a dot product step is one vpdpbusd of that vector with the
 * token's 4 matching activation bytes broadcast to all lanes, and the 8 lanes
 * end up holding the 8 rows' sums: no unpacking, no horizontal sums, and the
 * block scales of the 8 rows are one vector. vpdpbusd multiplies unsigned by
 * signed bytes and adds into int32 without saturation.
 *
 * Layouts, per block of blck_size elements of the 8 rows (lane r = row r):
 *  - 32-element types (Q4_0, Q5_0, Q8_0), 320 bytes: float d[8]; int32
 *    corr[8] = -128 * sum(w) of the row's block; int8 w[8 chunks][8][4], the
 *    signed quants (q - 8, q - 16, q). The activations are flipped to
 *    unsigned (y + 128, an xor with 0x80), and corr takes the 128 back out.
 *  - Q4_K / Q5_K and Q6_K: described at their repack functions.
 * The integer sums are exact; the float steps follow each type's canonical
 * order (see vec_dot_nc), so the results equal vec_dot's bit for bit. */

/* acc += u8 x s8 dot products of 4 bytes, per int32 lane (AVX-VNNI, VEX
 * encoded; written as asm so the file needs no -mavxvnni and the kernels are
 * only reached after cpuid said so) */
ALWAYS_INLINE __m256i dpbusd(__m256i acc, __m256i u, __m256i s) {
    __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(u), "xm"(s));
    return acc;
}

ALWAYS_INLINE __m256i bcast4(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* 8x8 transpose of 32-bit lanes: r[i] lane j -> r[j] lane i */
ALWAYS_INLINE void tr8x8(__m256i r[8]) {
    const __m256 t0 = _mm256_unpacklo_ps(_mm256_castsi256_ps(r[0]), _mm256_castsi256_ps(r[1]));
    const __m256 t1 = _mm256_unpackhi_ps(_mm256_castsi256_ps(r[0]), _mm256_castsi256_ps(r[1]));
    const __m256 t2 = _mm256_unpacklo_ps(_mm256_castsi256_ps(r[2]), _mm256_castsi256_ps(r[3]));
    const __m256 t3 = _mm256_unpackhi_ps(_mm256_castsi256_ps(r[2]), _mm256_castsi256_ps(r[3]));
    const __m256 t4 = _mm256_unpacklo_ps(_mm256_castsi256_ps(r[4]), _mm256_castsi256_ps(r[5]));
    const __m256 t5 = _mm256_unpackhi_ps(_mm256_castsi256_ps(r[4]), _mm256_castsi256_ps(r[5]));
    const __m256 t6 = _mm256_unpacklo_ps(_mm256_castsi256_ps(r[6]), _mm256_castsi256_ps(r[7]));
    const __m256 t7 = _mm256_unpackhi_ps(_mm256_castsi256_ps(r[6]), _mm256_castsi256_ps(r[7]));
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_castps_si256(_mm256_permute2f128_ps(u0, u4, 0x20));
    r[1] = _mm256_castps_si256(_mm256_permute2f128_ps(u1, u5, 0x20));
    r[2] = _mm256_castps_si256(_mm256_permute2f128_ps(u2, u6, 0x20));
    r[3] = _mm256_castps_si256(_mm256_permute2f128_ps(u3, u7, 0x20));
    r[4] = _mm256_castps_si256(_mm256_permute2f128_ps(u0, u4, 0x31));
    r[5] = _mm256_castps_si256(_mm256_permute2f128_ps(u1, u5, 0x31));
    r[6] = _mm256_castps_si256(_mm256_permute2f128_ps(u2, u6, 0x31));
    r[7] = _mm256_castps_si256(_mm256_permute2f128_ps(u3, u7, 0x31));
}

/* transposes 8 rows' 32-byte vectors and stores the 8 chunk vectors at dst */
ALWAYS_INLINE void tr_store(uint8_t *dst, __m256i v[8]) {
    tr8x8(v);
    for (int k = 0; k < 8; k++) _mm256_store_si256((__m256i *)(dst + 32 * k), v[k]);
}

#define R8B32_BYTES 320
#define R8K_BYTES 2560

/* ---- 32-element types ---- */

ALWAYS_INLINE void repack_b32(int n, const void *vx, size_t bx, void *vdst, const int type) {
    const int nb = n / 32;
    uint8_t *dst = vdst;
    const __m256i m4 = _mm256_set1_epi8(0x0F), shifts = _mm256_setr_epi64x(0, 0, 4, 4);
    const __m256i ones = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    for (int b = 0; b < nb; b++, dst += R8B32_BYTES) {
        __m256i v[8];
        float *d = (float *)dst;
        for (int r = 0; r < 8; r++) {
            const uint8_t *row = (const uint8_t *)vx + (size_t)r * bx;
            if (type == ST_TYPE_Q8_0) {
                const st_block_q8_0 *x = (const st_block_q8_0 *)row + b;
                v[r] = loadu256(x->qs);
                d[r] = h2f(x->d);
            } else if (type == ST_TYPE_Q4_0) {
                const st_block_q4_0 *x = (const st_block_q4_0 *)row + b;
                v[r] = _mm256_sub_epi8(nibbles32_b(x->qs, shifts, m4), _mm256_set1_epi8(8));
                d[r] = h2f(x->d);
            } else {
                const st_block_q5_0 *x = (const st_block_q5_0 *)row + b;
                v[r] = _mm256_sub_epi8(_mm256_or_si256(nibbles32_b(x->qs, shifts, m4), bits_to_0x10(x->qh)),
                                       _mm256_set1_epi8(16));
                d[r] = h2f(x->d);
            }
        }
        tr8x8(v);
        __m256i sw = _mm256_setzero_si256();
        for (int k = 0; k < 8; k++) {
            _mm256_store_si256((__m256i *)(dst + 64 + 32 * k), v[k]);
            sw = _mm256_add_epi32(sw, _mm256_madd_epi16(_mm256_maddubs_epi16(ones, v[k]), ones16));
        }
        _mm256_store_si256((__m256i *)(dst + 32), _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(sw, 7)));
    }
}
static void gemm_repack_q8_0(int n, const void *x, size_t bx, void *dst) { repack_b32(n, x, bx, dst, ST_TYPE_Q8_0); }
static void gemm_repack_q4_0(int n, const void *x, size_t bx, void *dst) { repack_b32(n, x, bx, dst, ST_TYPE_Q4_0); }
static void gemm_repack_q5_0(int n, const void *x, size_t bx, void *dst) { repack_b32(n, x, bx, dst, ST_TYPE_Q5_0); }

ALWAYS_INLINE void gemm_b32_cols(int n, float *s, size_t bs, const uint8_t *xr0, const uint8_t *vy, size_t by, const int NY) {
    const int nb = n / 32;
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    uint8_t yt[NCMAX][32] __attribute__((aligned(32)));
    /* the canonical order's 4 accumulators (block b into a[b mod 4]) one
     * after the other: a pass over blocks j, j + 4, j + 8, ... for a[j],
     * so that each column holds one accumulator in registers at a time */
    __m256 part[4][NCMAX];
    for (int j = 0; j < 4; j++) {
        __m256 acc[NCMAX];
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) acc[c] = _mm256_setzero_ps();
        for (int b = j; b < nb; b += 4) {
            const uint8_t *xr = xr0 + (size_t)b * R8B32_BYTES;
            /* two accumulators per column: vpdpbusd's latency (5) would leave
             * 4 dependency chains short of its throughput (2 per cycle) */
            __m256i isum[NCMAX], isum2[NCMAX];
#pragma GCC unroll 4
            for (int c = 0; c < NY; c++) {
                const st_block_q8_0 *y = NC_Y(st_block_q8_0, vy, by, c) + b;
                _mm256_store_si256((__m256i *)yt[c], _mm256_xor_si256(loadu256(y->qs), flip));
                isum[c] = _mm256_load_si256((const __m256i *)(xr + 32));
                isum2[c] = _mm256_setzero_si256();
            }
#pragma GCC unroll 8
            for (int k = 0; k < 8; k += 2) {
                const __m256i w = _mm256_load_si256((const __m256i *)(xr + 64 + 32 * k));
                const __m256i w2 = _mm256_load_si256((const __m256i *)(xr + 96 + 32 * k));
#pragma GCC unroll 4
                for (int c = 0; c < NY; c++) {
                    isum[c] = dpbusd(isum[c], bcast4(yt[c] + 4 * k), w);
                    isum2[c] = dpbusd(isum2[c], bcast4(yt[c] + 4 * k + 4), w2);
                }
            }
#pragma GCC unroll 4
            for (int c = 0; c < NY; c++) isum[c] = _mm256_add_epi32(isum[c], isum2[c]);
            const __m256 dx = _mm256_load_ps((const float *)xr);
#pragma GCC unroll 4
            for (int c = 0; c < NY; c++) {
                const st_block_q8_0 *y = NC_Y(st_block_q8_0, vy, by, c) + b;
                const __m256 d = _mm256_mul_ps(dx, _mm256_broadcast_ss(&st_fp16_table[y->d]));
                acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), d, acc[c]);
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) part[j][c] = acc[c];
    }
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++)
        _mm256_storeu_ps(s + (size_t)c * bs, _mm256_add_ps(_mm256_add_ps(part[0][c], part[1][c]), _mm256_add_ps(part[2][c], part[3][c])));
}

/* ---- Q4_K ---- */

/* Q4_K layout, 2560 bytes per super-block of 8 rows: sc[8][8] (scale of
 * sub-block j, row r, as the int16 pair (sc, sc)); int16 mn[4][8][2] (the mins of sub-blocks 2k, 2k+1 of
 * row r); float d[8], dmin[8]; at 512: uint8 q[64][8][4]. */
ALWAYS_INLINE void repack_q45_K(int n, const void *vx, size_t bx, void *vdst, const bool five) {
    const int nb = n / ST_QK_K;
    const size_t xsz = five ? sizeof(st_block_q5_K) : sizeof(st_block_q4_K);
    uint8_t *dst = vdst;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i b0 = _mm256_set1_epi8(0x01), b1 = _mm256_set1_epi8(0x02);
    for (int i = 0; i < nb; i++, dst += R8K_BYTES) {
        int32_t *sc = (int32_t *)dst;
        int16_t *mn = (int16_t *)(dst + 256);
        float *d = (float *)(dst + 384), *dmin = (float *)(dst + 416);
        /* Q4_K and Q5_K share d, dmin, scales at the same offsets */
        for (int r = 0; r < 8; r++) {
            const st_block_q4_K *x = (const st_block_q4_K *)((const uint8_t *)vx + (size_t)r * bx + (size_t)i * xsz);
            uint8_t sm[16];
            _mm_storeu_si128((__m128i *)sm, k4_scales_mins(x->scales));
            for (int j = 0; j < 8; j++) {
                sc[8 * j + r] = (int32_t)((uint32_t)sm[j] * 0x10001u); /* int16 pair (sc, sc) */
                mn[16 * (j >> 1) + 2 * r + (j & 1)] = sm[8 + j];
            }
            d[r] = h2f(x->d);
            dmin[r] = h2f(x->dmin);
        }
        __m256i hb[8];
        if (five)
            for (int r = 0; r < 8; r++)
                hb[r] = loadu256(((const st_block_q5_K *)((const uint8_t *)vx + (size_t)r * bx + (size_t)i * xsz))->qh);
        for (int j = 0; j < 4; j++) {
            __m256i lo[8], hi[8];
            for (int r = 0; r < 8; r++) {
                const uint8_t *xb = (const uint8_t *)vx + (size_t)r * bx + (size_t)i * xsz;
                const uint8_t *qs = five ? ((const st_block_q5_K *)xb)->qs : ((const st_block_q4_K *)xb)->qs;
                const __m256i b = loadu256(qs + 32 * j);
                lo[r] = _mm256_and_si256(b, m4);
                hi[r] = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
                if (five) {
                    lo[r] = _mm256_or_si256(lo[r], _mm256_slli_epi16(_mm256_and_si256(hb[r], b0), 4));
                    hi[r] = _mm256_or_si256(hi[r], _mm256_slli_epi16(_mm256_and_si256(hb[r], b1), 3));
                    hb[r] = _mm256_srli_epi16(hb[r], 2);
                }
            }
            tr_store(dst + 512 + 256 * (2 * j), lo);
            tr_store(dst + 512 + 256 * (2 * j + 1), hi);
        }
    }
}
static void gemm_repack_q4_K(int n, const void *x, size_t bx, void *dst) { repack_q45_K(n, x, bx, dst, false); }
/* Q5_K: the same layout with the 5-bit quants (the VNNI kernel is Q4_K's) */
static void gemm_repack_q5_K(int n, const void *x, size_t bx, void *dst) { repack_q45_K(n, x, bx, dst, true); }

ALWAYS_INLINE void gemm_q4_K_cols(int n, float *s, size_t bs, const uint8_t *xr, const uint8_t *vy, size_t by, const int NY) {
    const int nb = n / ST_QK_K;
    const __m256i ones16 = _mm256_set1_epi16(1);
    __m256 acc[NCMAX];
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) acc[c] = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++, xr += R8K_BYTES) {
        const uint8_t *q = xr + 512;
        __m256i S[NCMAX];
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) S[c] = _mm256_setzero_si256();
        for (int j = 0; j < 8; j++) {
            __m256i isum[NCMAX], isum2[NCMAX];
#pragma GCC unroll 4
            for (int c = 0; c < NY; c++) isum[c] = isum2[c] = _mm256_setzero_si256();
#pragma GCC unroll 8
            for (int k = 0; k < 8; k += 2) {
                const __m256i w = _mm256_load_si256((const __m256i *)(q + 256 * j + 32 * k));
                const __m256i w2 = _mm256_load_si256((const __m256i *)(q + 256 * j + 32 * k + 32));
#pragma GCC unroll 4
                for (int c = 0; c < NY; c++) {
                    const int8_t *yq = q8k_qs(NC_Q8K(vy, by, c, i)) + 32 * j + 4 * k;
                    isum[c] = dpbusd(isum[c], w, bcast4(yq));
                    isum2[c] = dpbusd(isum2[c], w2, bcast4(yq + 4));
                }
            }
            const __m256i scj = _mm256_and_si256(_mm256_load_si256((const __m256i *)(xr + 32 * j)), _mm256_set1_epi32(0xFFFF));
#pragma GCC unroll 4
            for (int c = 0; c < NY; c++)
                S[c] = _mm256_add_epi32(S[c], _mm256_mullo_epi32(_mm256_add_epi32(isum[c], isum2[c]), scj));
        }
        const __m256 d = _mm256_load_ps((const float *)(xr + 384)), dmin = _mm256_load_ps((const float *)(xr + 416));
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) {
            const uint8_t *y = NC_Q8K(vy, by, c, i);
            /* sub-block activation sums as int16 pairs (2k, 2k+1) in dwords 0, 1, 4, 5 */
            const __m256i ys32 = _mm256_madd_epi16(loadu256(q8k_bsums(y)), ones16);
            const __m256i ys16 = _mm256_packs_epi32(ys32, ys32);
            __m256i M = _mm256_setzero_si256();
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m256i pr = _mm256_permutevar8x32_epi32(ys16, _mm256_set1_epi32((k & 1) + 4 * (k >> 1)));
                M = _mm256_add_epi32(M, _mm256_madd_epi16(_mm256_load_si256((const __m256i *)(xr + 256 + 32 * k)), pr));
            }
            const __m256 u = _mm256_fmsub_ps(d, _mm256_cvtepi32_ps(S[c]), _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(M)));
            acc[c] = _mm256_fmadd_ps(u, _mm256_set1_ps(q8k_d(y)), acc[c]);
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) _mm256_storeu_ps(s + (size_t)c * bs, acc[c]);
}

/* ---- Q6_K ---- */

/* Q6_K layout, R8K6_BYTES per super-block of 8 rows: sc[16][8] as int16 pairs
 * (sc, sc); float
 * d[8]; at 576: uint8 q[64][8][4], the unsigned 6-bit quants. */
#define R8K6_BYTES 2624
static void gemm_repack_q6_K(int n, const void *vx, size_t bx, void *vdst) {
    const int nb = n / ST_QK_K;
    uint8_t *dst = vdst;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m3 = _mm256_set1_epi8(0x03), m30 = _mm256_set1_epi8(0x30);
    for (int i = 0; i < nb; i++, dst += R8K6_BYTES) {
        int32_t *sc = (int32_t *)dst;
        float *d = (float *)(dst + 512);
        for (int r = 0; r < 8; r++) {
            const st_block_q6_K *x = (const st_block_q6_K *)((const uint8_t *)vx + (size_t)r * bx) + i;
            d[r] = h2f(x->d);
            for (int j = 0; j < 16; j++) /* int16 pair (sc, sc) */
                sc[8 * j + r] = (int32_t)(((uint32_t)(uint16_t)x->scales[j] << 16) | (uint16_t)x->scales[j]);
        }
        for (int h = 0; h < 2; h++) {
            __m256i q[4][8];
            for (int r = 0; r < 8; r++) {
                const st_block_q6_K *x = (const st_block_q6_K *)((const uint8_t *)vx + (size_t)r * bx) + i;
                const __m256i l0 = loadu256(x->ql + 64 * h), l1 = loadu256(x->ql + 64 * h + 32);
                const __m256i hh = loadu256(x->qh + 32 * h);
                q[0][r] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hh, m3), 4));
                q[1][r] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hh, 2), m30));
                q[2][r] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hh, m30));
                q[3][r] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                          _mm256_and_si256(_mm256_srli_epi16(hh, 2), m30));
            }
            for (int v = 0; v < 4; v++) tr_store(dst + 576 + 256 * (4 * h + v), q[v]);
        }
    }
}

ALWAYS_INLINE void gemm_q6_K_cols(int n, float *s, size_t bs, const uint8_t *xr, const uint8_t *vy, size_t by, const int NY) {
    const int nb = n / ST_QK_K;
    __m256 acc[NCMAX];
    int32_t off[NCMAX][16] __attribute__((aligned(32)));
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) acc[c] = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++, xr += R8K6_BYTES) {
        __m256i S[NCMAX];
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) {
            const uint8_t *y = NC_Q8K(vy, by, c, i);
            /* -32 * the activation sums of the 16 sub-blocks */
            const __m256i b16 = loadu256(q8k_bsums(y));
            _mm256_store_si256((__m256i *)off[c], _mm256_slli_epi32(_mm256_sub_epi32(_mm256_setzero_si256(),
                                                     _mm256_cvtepi16_epi32(_mm256_castsi256_si128(b16))), 5));
            _mm256_store_si256((__m256i *)(off[c] + 8), _mm256_slli_epi32(_mm256_sub_epi32(_mm256_setzero_si256(),
                                                     _mm256_cvtepi16_epi32(_mm256_extracti128_si256(b16, 1))), 5));
            S[c] = _mm256_setzero_si256();
        }
        const uint8_t *q = xr + 576;
        for (int j = 0; j < 16; j++) {
            __m256i isum[NCMAX], isum2[NCMAX];
#pragma GCC unroll 4
            for (int c = 0; c < NY; c++) {
                isum[c] = _mm256_set1_epi32(off[c][j]);
                isum2[c] = _mm256_setzero_si256();
            }
#pragma GCC unroll 4
            for (int k = 0; k < 4; k += 2) {
                const __m256i w = _mm256_load_si256((const __m256i *)(q + 128 * j + 32 * k));
                const __m256i w2 = _mm256_load_si256((const __m256i *)(q + 128 * j + 32 * k + 32));
#pragma GCC unroll 4
                for (int c = 0; c < NY; c++) {
                    const int8_t *yq = q8k_qs(NC_Q8K(vy, by, c, i)) + 16 * j + 4 * k;
                    isum[c] = dpbusd(isum[c], w, bcast4(yq));
                    isum2[c] = dpbusd(isum2[c], w2, bcast4(yq + 4));
                }
            }
            const __m256i scj = _mm256_srai_epi32(_mm256_load_si256((const __m256i *)(xr + 32 * j)), 16);
#pragma GCC unroll 4
            for (int c = 0; c < NY; c++)
                S[c] = _mm256_add_epi32(S[c], _mm256_mullo_epi32(_mm256_add_epi32(isum[c], isum2[c]), scj));
        }
        const __m256 d = _mm256_load_ps((const float *)(xr + 512));
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++)
            acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(q8k_d(NC_Q8K(vy, by, c, i)))),
                                     _mm256_cvtepi32_ps(S[c]), acc[c]);
    }
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) _mm256_storeu_ps(s + (size_t)c * bs, acc[c]);
}


/* ---- the same products without VNNI (AVX2 only) ----
 * vpmaddubsw (u8 x s8 -> int16 pair sums) and vpmaddwd instead of vpdpbusd,
 * on the same repacked layouts; where the int16 partial sums would overflow
 * they are widened earlier. The integer block sums are the same exact values,
 * and the float steps those of the VNNI kernels. */

/* kind 0: Q4_0 (|w| <= 8: 8 chunks of y' * w stay within int16), 1: Q5_0
 * (|w| <= 16: 4 chunks), 2: Q8_0 (signed x signed: the sign trick, widened
 * per chunk) */
ALWAYS_INLINE void gemm_b32_avx2_cols(int n, float *s, size_t bs, const uint8_t *xr0, const uint8_t *vy, size_t by,
                                      const int NY, const int kind) {
    const int nb = n / 32;
    const __m256i flip = _mm256_set1_epi8((char)0x80), ones = _mm256_set1_epi16(1);
    uint8_t yt[NCMAX][32] __attribute__((aligned(32)));
    /* the canonical order's 4 accumulators (block b into a[b mod 4]) one
     * after the other: a pass over blocks j, j + 4, j + 8, ... for a[j],
     * so that each column holds one accumulator in registers at a time */
    __m256 part[4][NCMAX];
    for (int j = 0; j < 4; j++) {
        __m256 acc[NCMAX];
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) acc[c] = _mm256_setzero_ps();
        for (int b = j; b < nb; b += 4) {
            const uint8_t *xr = xr0 + (size_t)b * R8B32_BYTES;
            __m256i isum[NCMAX];
#pragma GCC unroll 4
            for (int c = 0; c < NY; c++) {
                const st_block_q8_0 *y = NC_Y(st_block_q8_0, vy, by, c) + b;
                const __m256i yv = loadu256(y->qs);
                _mm256_store_si256((__m256i *)yt[c], kind == 2 ? yv : _mm256_xor_si256(yv, flip));
                isum[c] = kind == 2 ? _mm256_setzero_si256() : _mm256_load_si256((const __m256i *)(xr + 32));
            }
            if (kind == 2) {
#pragma GCC unroll 8
                for (int k = 0; k < 8; k++) {
                    const __m256i w = _mm256_load_si256((const __m256i *)(xr + 64 + 32 * k));
                    const __m256i aw = _mm256_sign_epi8(w, w);
#pragma GCC unroll 4
                    for (int c = 0; c < NY; c++) {
                        const __m256i p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(bcast4(yt[c] + 4 * k), w));
                        isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(p, ones));
                    }
                }
            } else {
                const int per = kind == 0 ? 8 : 4;
#pragma GCC unroll 2
                for (int k0 = 0; k0 < 8; k0 += per) {
                    __m256i p16[NCMAX];
#pragma GCC unroll 4
                    for (int c = 0; c < NY; c++) p16[c] = _mm256_setzero_si256();
#pragma GCC unroll 8
                    for (int k = k0; k < k0 + per; k++) {
                        const __m256i w = _mm256_load_si256((const __m256i *)(xr + 64 + 32 * k));
#pragma GCC unroll 4
                        for (int c = 0; c < NY; c++) p16[c] = _mm256_add_epi16(p16[c], _mm256_maddubs_epi16(bcast4(yt[c] + 4 * k), w));
                    }
#pragma GCC unroll 4
                    for (int c = 0; c < NY; c++) isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(p16[c], ones));
                }
            }
            const __m256 dx = _mm256_load_ps((const float *)xr);
#pragma GCC unroll 4
            for (int c = 0; c < NY; c++) {
                const st_block_q8_0 *y = NC_Y(st_block_q8_0, vy, by, c) + b;
                const __m256 d = _mm256_mul_ps(dx, _mm256_broadcast_ss(&st_fp16_table[y->d]));
                acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), d, acc[c]);
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) part[j][c] = acc[c];
    }
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++)
        _mm256_storeu_ps(s + (size_t)c * bs, _mm256_add_ps(_mm256_add_ps(part[0][c], part[1][c]), _mm256_add_ps(part[2][c], part[3][c])));
}
ALWAYS_INLINE void gemm_q4_0_avx2_cols(int n, float *s, size_t bs, const uint8_t *xr, const uint8_t *vy, size_t by, const int NY) {
    gemm_b32_avx2_cols(n, s, bs, xr, vy, by, NY, 0);
}
ALWAYS_INLINE void gemm_q5_0_avx2_cols(int n, float *s, size_t bs, const uint8_t *xr, const uint8_t *vy, size_t by, const int NY) {
    gemm_b32_avx2_cols(n, s, bs, xr, vy, by, NY, 1);
}
ALWAYS_INLINE void gemm_q8_0_avx2_cols(int n, float *s, size_t bs, const uint8_t *xr, const uint8_t *vy, size_t by, const int NY) {
    gemm_b32_avx2_cols(n, s, bs, xr, vy, by, NY, 2);
}

/* Q4_K: q <= 15, so the 8 chunks of a sub-block sum within int16 (16 * 15 *
 * 127); one vpmaddwd with the (sc, sc) pairs applies the scale. */
ALWAYS_INLINE void gemm_q45_K_avx2_cols(int n, float *s, size_t bs, const uint8_t *xr, const uint8_t *vy, size_t by,
                                       const int NY, const bool five) {
    const int per = five ? 4 : 8; /* Q5_K: q <= 31, 4 chunks per int16 partial sum */
    const int nb = n / ST_QK_K;
    const __m256i ones16 = _mm256_set1_epi16(1);
    __m256 acc[NCMAX];
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) acc[c] = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++, xr += R8K_BYTES) {
        const uint8_t *q = xr + 512;
        __m256i S[NCMAX];
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) S[c] = _mm256_setzero_si256();
        for (int j = 0; j < 8; j++) {
            const __m256i scj = _mm256_load_si256((const __m256i *)(xr + 32 * j));
#pragma GCC unroll 2
            for (int k0 = 0; k0 < 8; k0 += per) {
                __m256i p16[NCMAX];
#pragma GCC unroll 4
                for (int c = 0; c < NY; c++) p16[c] = _mm256_setzero_si256();
#pragma GCC unroll 8
                for (int k = k0; k < k0 + per; k++) {
                    const __m256i w = _mm256_load_si256((const __m256i *)(q + 256 * j + 32 * k));
#pragma GCC unroll 4
                    for (int c = 0; c < NY; c++)
                        p16[c] = _mm256_add_epi16(p16[c], _mm256_maddubs_epi16(w, bcast4(q8k_qs(NC_Q8K(vy, by, c, i)) + 32 * j + 4 * k)));
                }
#pragma GCC unroll 4
                for (int c = 0; c < NY; c++) S[c] = _mm256_add_epi32(S[c], _mm256_madd_epi16(p16[c], scj));
            }
        }
        const __m256 d = _mm256_load_ps((const float *)(xr + 384)), dmin = _mm256_load_ps((const float *)(xr + 416));
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) {
            const uint8_t *y = NC_Q8K(vy, by, c, i);
            const __m256i ys32 = _mm256_madd_epi16(loadu256(q8k_bsums(y)), ones16);
            const __m256i ys16 = _mm256_packs_epi32(ys32, ys32);
            __m256i M = _mm256_setzero_si256();
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m256i pr = _mm256_permutevar8x32_epi32(ys16, _mm256_set1_epi32((k & 1) + 4 * (k >> 1)));
                M = _mm256_add_epi32(M, _mm256_madd_epi16(_mm256_load_si256((const __m256i *)(xr + 256 + 32 * k)), pr));
            }
            const __m256 u = _mm256_fmsub_ps(d, _mm256_cvtepi32_ps(S[c]), _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(M)));
            acc[c] = _mm256_fmadd_ps(u, _mm256_set1_ps(q8k_d(y)), acc[c]);
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) _mm256_storeu_ps(s + (size_t)c * bs, acc[c]);
}

ALWAYS_INLINE void gemm_q4_K_avx2_cols(int n, float *s, size_t bs, const uint8_t *xr, const uint8_t *vy, size_t by, const int NY) {
    gemm_q45_K_avx2_cols(n, s, bs, xr, vy, by, NY, false);
}
ALWAYS_INLINE void gemm_q5_K_avx2_cols(int n, float *s, size_t bs, const uint8_t *xr, const uint8_t *vy, size_t by, const int NY) {
    gemm_q45_K_avx2_cols(n, s, bs, xr, vy, by, NY, true);
}

/* Q6_K: q <= 63, so two chunks sum within int16 (4 * 63 * 127); the -32 *
 * bsum of a sub-block goes in as one more vpmaddwd of (sc, sc) with
 * (-16 * bsum, -16 * bsum) (|16 * bsum| <= 16 * 16 * 127 fits int16). */
ALWAYS_INLINE void gemm_q6_K_avx2_cols(int n, float *s, size_t bs, const uint8_t *xr, const uint8_t *vy, size_t by, const int NY) {
    const int nb = n / ST_QK_K;
    __m256 acc[NCMAX];
    int16_t off[NCMAX][16] __attribute__((aligned(32)));
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) acc[c] = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++, xr += R8K6_BYTES) {
        __m256i S[NCMAX];
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++) {
            const uint8_t *y = NC_Q8K(vy, by, c, i);
            _mm256_store_si256((__m256i *)off[c], _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(loadu256(q8k_bsums(y)), 4)));
            S[c] = _mm256_setzero_si256();
        }
        const uint8_t *q = xr + 576;
        for (int j = 0; j < 16; j++) {
            const __m256i scj = _mm256_load_si256((const __m256i *)(xr + 32 * j));
#pragma GCC unroll 4
            for (int c = 0; c < NY; c++) {
                const int8_t *yq = q8k_qs(NC_Q8K(vy, by, c, i)) + 16 * j;
                const __m256i w0 = _mm256_load_si256((const __m256i *)(q + 128 * j));
                const __m256i w1 = _mm256_load_si256((const __m256i *)(q + 128 * j + 32));
                const __m256i w2 = _mm256_load_si256((const __m256i *)(q + 128 * j + 64));
                const __m256i w3 = _mm256_load_si256((const __m256i *)(q + 128 * j + 96));
                const __m256i p01 = _mm256_add_epi16(_mm256_maddubs_epi16(w0, bcast4(yq)), _mm256_maddubs_epi16(w1, bcast4(yq + 4)));
                const __m256i p23 = _mm256_add_epi16(_mm256_maddubs_epi16(w2, bcast4(yq + 8)), _mm256_maddubs_epi16(w3, bcast4(yq + 12)));
                const __m256i o = _mm256_set1_epi16(off[c][j]);
                S[c] = _mm256_add_epi32(S[c], _mm256_add_epi32(_mm256_madd_epi16(p01, scj), _mm256_madd_epi16(p23, scj)));
                S[c] = _mm256_add_epi32(S[c], _mm256_madd_epi16(o, scj));
            }
        }
        const __m256 d = _mm256_load_ps((const float *)(xr + 512));
#pragma GCC unroll 4
        for (int c = 0; c < NY; c++)
            acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(q8k_d(NC_Q8K(vy, by, c, i)))),
                                     _mm256_cvtepi32_ps(S[c]), acc[c]);
    }
#pragma GCC unroll 4
    for (int c = 0; c < NY; c++) _mm256_storeu_ps(s + (size_t)c * bs, acc[c]);
}

/* any number of columns: groups of 4, then the rest */
#define GEMM_COLS(name, kern)                                                                                \
    static void name(int n, float *s, size_t bs, const void *xr, const void *y, size_t by, int ny) {        \
        const uint8_t *yb = y;                                                                              \
        int c = 0;                                                                                          \
        for (; c + 4 <= ny; c += 4) kern(n, s + (size_t)c * bs, bs, xr, yb + (size_t)c * by, by, 4);       \
        switch (ny - c) {                                                                                   \
        case 3: kern(n, s + (size_t)c * bs, bs, xr, yb + (size_t)c * by, by, 3); break;                     \
        case 2: kern(n, s + (size_t)c * bs, bs, xr, yb + (size_t)c * by, by, 2); break;                     \
        case 1: kern(n, s + (size_t)c * bs, bs, xr, yb + (size_t)c * by, by, 1); break;                     \
        default: break;                                                                                     \
        }                                                                                                   \
    }
GEMM_COLS(gemm_b32_vnni, gemm_b32_cols)
GEMM_COLS(gemm_q4_K_vnni, gemm_q4_K_cols)
GEMM_COLS(gemm_q6_K_vnni, gemm_q6_K_cols)
GEMM_COLS(gemm_q4_0_avx2, gemm_q4_0_avx2_cols)
GEMM_COLS(gemm_q5_0_avx2, gemm_q5_0_avx2_cols)
GEMM_COLS(gemm_q8_0_avx2, gemm_q8_0_avx2_cols)
GEMM_COLS(gemm_q4_K_avx2, gemm_q4_K_avx2_cols)
GEMM_COLS(gemm_q5_K_avx2, gemm_q5_K_avx2_cols)
GEMM_COLS(gemm_q6_K_avx2, gemm_q6_K_avx2_cols)

/* AVX-VNNI: CPUID.(EAX=7,ECX=1):EAX bit 4 (the YMM state check was done by
 * the caller's AVX2 test); STRATA_NO_VNNI=1 turns it off (tests, comparisons:
 * the AVX2 gemm kernels are used instead) */
static bool cpu_has_avx_vnni(void) {
    const char *e = getenv("STRATA_NO_VNNI");
    if (e && *e && strcmp(e, "0") != 0) return false;
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 7) return false;
    __cpuid_count(7, 1, a, b, c, d);
    (void)b;
    (void)c;
    (void)d;
    return (a >> 4) & 1;
}

/* ------------------------------------------------------------------------- */
/* activation quantizers                                                      */

ALWAYS_INLINE __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

ALWAYS_INLINE float hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* roundf semantics (half away from zero), exactly: t = trunc(v); v - t is
 * exact; step away from zero when |v - t| >= 0.5 */
ALWAYS_INLINE __m256i roundf_epi32(__m256 v) {
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = abs_ps(_mm256_sub_ps(v, t));
    const __m256 one = _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.0f)), _mm256_set1_ps(1.0f));
    const __m256 step = _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), one);
    return _mm256_cvttps_epi32(_mm256_add_ps(t, step));
}

/* 32 int32 (4 vectors) -> 32 int8 in order */
ALWAYS_INLINE __m256i pack_i32x32_i8(__m256i a, __m256i b, __m256i c, __m256i dd) {
    const __m256i ab = _mm256_packs_epi32(a, b);  /* a0-3 b0-3 | a4-7 b4-7 */
    const __m256i cd = _mm256_packs_epi32(c, dd);
    const __m256i r = _mm256_packs_epi16(ab, cd); /* a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7 */
    return _mm256_permutevar8x32_epi32(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* One Q8_0/Q8_1 block: returns d (as float, before fp16 rounding) and writes
 * 32 quants; *isum = sum of quants. */
ALWAYS_INLINE float quant_block_q8(const float *x, int8_t *qs, int *isum) {
    const __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    const __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    const __m256 mx = _mm256_max_ps(_mm256_max_ps(abs_ps(v0), abs_ps(v1)), _mm256_max_ps(abs_ps(v2), abs_ps(v3)));
    const float amax = hmax_ps(mx);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    const __m256i i0 = roundf_epi32(_mm256_mul_ps(v0, vid));
    const __m256i i1 = roundf_epi32(_mm256_mul_ps(v1, vid));
    const __m256i i2 = roundf_epi32(_mm256_mul_ps(v2, vid));
    const __m256i i3 = roundf_epi32(_mm256_mul_ps(v3, vid));
    if (isum) {
        __m256i t = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
        __m128i u = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
        u = _mm_add_epi32(u, _mm_shuffle_epi32(u, 0x4E));
        u = _mm_add_epi32(u, _mm_shuffle_epi32(u, 0xB1));
        *isum = _mm_cvtsi128_si32(u);
    }
    _mm256_storeu_si256((__m256i *)qs, pack_i32x32_i8(i0, i1, i2, i3));
    return d;
}

static void from_float_q8_0(const float *x, void *vy, int64_t n) {
    st_block_q8_0 *y = vy;
    const int64_t nb = n / ST_QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        const float d = quant_block_q8(x + i * ST_QK8_0, y[i].qs, NULL);
        y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    }
}

static void from_float_q8_1(const float *x, void *vy, int64_t n) {
    st_block_q8_1 *y = vy;
    const int64_t nb = n / ST_QK8_1;
    for (int64_t i = 0; i < nb; i++) {
        int sum;
        const float d = quant_block_q8(x + i * ST_QK8_1, y[i].qs, &sum);
        y[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        y[i].s = _cvtss_sh((float)sum * d, _MM_FROUND_TO_NEAREST_INT);
    }
}

static void from_float_q8_K(const float *x, void *vy, int64_t n) {
    const int64_t nb = n / ST_QK_K;
    for (int64_t i = 0; i < nb; i++, x += ST_QK_K) {
        /* the row may lie at any address: fields written through q8k_set_* */
        uint8_t *b = (uint8_t *)vy + (size_t)i * sizeof(st_block_q8_K);
        int8_t *qs = (int8_t *)(b + offsetof(st_block_q8_K, qs));
        /* max |x| and the signed value that has it (first one on ties) */
        __m256 vmax = _mm256_setzero_ps();
        for (int j = 0; j < ST_QK_K; j += 8) vmax = _mm256_max_ps(vmax, abs_ps(_mm256_loadu_ps(x + j)));
        const float amax = hmax_ps(vmax);
        if (amax == 0.0f) {
            memset(b, 0, sizeof(st_block_q8_K)); /* d = +0.0f (all bits zero), qs, bsums */
            continue;
        }
        float max = 0.0f;
        for (int j = 0; j < ST_QK_K; j++) {
            if (fabsf(x[j]) == amax) {
                max = x[j];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const __m256 vis = _mm256_set1_ps(iscale);
        const __m256i c127 = _mm256_set1_epi32(127);
        for (int j = 0; j < ST_QK_K; j += 32) {
            /* round to nearest even (the reference's nearest_int), clamp 127 */
            const __m256i i0 = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(vis, _mm256_loadu_ps(x + j))), c127);
            const __m256i i1 = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(vis, _mm256_loadu_ps(x + j + 8))), c127);
            const __m256i i2 = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(vis, _mm256_loadu_ps(x + j + 16))), c127);
            const __m256i i3 = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(vis, _mm256_loadu_ps(x + j + 24))), c127);
            const __m256i q = pack_i32x32_i8(i0, i1, i2, i3);
            _mm256_storeu_si256((__m256i *)(qs + j), q);
            /* bsums over 16 quants: maddubs with 1 gives pair sums */
            const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), _mm256_set1_epi16(1));
            /* p: lane0 = 4 sums of 4 (elements 0..15), lane1 = elements 16..31 */
            const __m256i p2 = _mm256_hadd_epi32(p, p);
            const __m256i p3 = _mm256_hadd_epi32(p2, p2);
            q8k_set_bsum(b, j / 16, (int16_t)_mm256_extract_epi32(p3, 0));
            q8k_set_bsum(b, j / 16 + 1, (int16_t)_mm256_extract_epi32(p3, 4));
        }
        q8k_set_d(b, 1.0f / iscale);
    }
}

static void from_float_f16(const float *x, void *vy, int64_t n) {
    st_fp16 *y = vy;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

/* ------------------------------------------------------------------------- */
/* dequantizers                                                               */

static void to_float_f16(const void *vx, float *y, int64_t n) {
    const st_fp16 *x = vx;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, ld_f16(x + i));
    for (; i < n; i++) y[i] = h2f(x[i]);
}

ALWAYS_INLINE void store_i8x32_scaled(float *y, __m256i q, __m256 d) {
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    _mm256_storeu_ps(y, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
    _mm256_storeu_ps(y + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
    _mm256_storeu_ps(y + 16, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
    _mm256_storeu_ps(y + 24, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
}

static void to_float_q8_0(const void *vx, float *y, int64_t n) {
    const st_block_q8_0 *x = vx;
    const int64_t nb = n / ST_QK8_0;
    for (int64_t i = 0; i < nb; i++) store_i8x32_scaled(y + i * 32, loadu256(x[i].qs), _mm256_set1_ps(h2f(x[i].d)));
}

static void to_float_q4_0(const void *vx, float *y, int64_t n) {
    const st_block_q4_0 *x = vx;
    const int64_t nb = n / ST_QK4_0;
    for (int64_t i = 0; i < nb; i++) {
        const __m256i q = _mm256_sub_epi8(nibbles32(x[i].qs), _mm256_set1_epi8(8));
        store_i8x32_scaled(y + i * 32, q, _mm256_set1_ps(h2f(x[i].d)));
    }
}

/* y[k] = d * q[k] - m for 32 unsigned bytes */
ALWAYS_INLINE void store_u8x32_affine(float *y, __m256i q, float d, float m) {
    const __m256 vd = _mm256_set1_ps(d), vm = _mm256_set1_ps(m);
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    for (int k = 0; k < 4; k++) {
        const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[k]));
        _mm256_storeu_ps(y + 8 * k, _mm256_sub_ps(_mm256_mul_ps(vd, f), vm));
    }
}

static void to_float_q4_K(const void *vx, float *y, int64_t n) {
    const st_block_q4_K *x = vx;
    const int64_t nb = n / ST_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
        uint8_t sm[16];
        _mm_storeu_si128((__m128i *)sm, k4_scales_mins(x[i].scales));
        for (int j = 0; j < 4; j++) {
            const __m256i b = loadu256(x[i].qs + 32 * j);
            store_u8x32_affine(y, _mm256_and_si256(b, m4), d * sm[2 * j], dmin * sm[8 + 2 * j]);
            store_u8x32_affine(y + 32, _mm256_and_si256(_mm256_srli_epi16(b, 4), m4), d * sm[2 * j + 1],
                               dmin * sm[8 + 2 * j + 1]);
            y += 64;
        }
    }
}

static void to_float_q6_K(const void *vx, float *y, int64_t n) {
    const st_block_q6_K *x = vx;
    const int64_t nb = n / ST_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m3 = _mm256_set1_epi8(0x03), m30 = _mm256_set1_epi8(0x30);
    const __m256i c32 = _mm256_set1_epi8(32);
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(x[i].d);
        const int8_t *sc = x[i].scales;
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i l0 = loadu256(x[i].ql + 64 * h);
            const __m256i l1 = loadu256(x[i].ql + 64 * h + 32);
            const __m256i hh = loadu256(x[i].qh + 32 * h);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hh, m3), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hh, 2), m30));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hh, m30));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                   _mm256_and_si256(_mm256_srli_epi16(hh, 2), m30));
            for (int k = 0; k < 4; k++) {
                const __m256i v = _mm256_sub_epi8(q[k], c32);
                const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
                const __m256 da = _mm256_set1_ps(d * sc[8 * h + 2 * k]);
                const __m256 db = _mm256_set1_ps(d * sc[8 * h + 2 * k + 1]);
                _mm256_storeu_ps(y, _mm256_mul_ps(da, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
                _mm256_storeu_ps(y + 8, _mm256_mul_ps(da, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
                _mm256_storeu_ps(y + 16, _mm256_mul_ps(db, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
                _mm256_storeu_ps(y + 24, _mm256_mul_ps(db, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
                y += 32;
            }
        }
    }
}

/* ------------------------------------------------------------------------- */

void st_quant_avx2_install(st_type_traits *tbl) {
    tbl[ST_TYPE_F32].vec_dot = vec_dot_f32;
    tbl[ST_TYPE_F16].vec_dot = vec_dot_f16;
    tbl[ST_TYPE_BF16].vec_dot = vec_dot_bf16;
    tbl[ST_TYPE_Q4_0].vec_dot = vec_dot_q4_0_seq;
    tbl[ST_TYPE_Q4_1].vec_dot = vec_dot_q4_1_q8_1;
    tbl[ST_TYPE_Q5_0].vec_dot = vec_dot_q5_0_seq;
    tbl[ST_TYPE_Q5_1].vec_dot = vec_dot_q5_1_q8_1;
    tbl[ST_TYPE_Q8_0].vec_dot = vec_dot_q8_0_seq;
    tbl[ST_TYPE_Q2_K].vec_dot = vec_dot_q2_K_q8_K;
    tbl[ST_TYPE_Q3_K].vec_dot = vec_dot_q3_K_q8_K;
    tbl[ST_TYPE_Q4_K].vec_dot = vec_dot_q4_K_seq;
    tbl[ST_TYPE_Q5_K].vec_dot = vec_dot_q5_K_seq;
    tbl[ST_TYPE_Q6_K].vec_dot = vec_dot_q6_K_seq;

    tbl[ST_TYPE_Q4_0].vec_dot_nc = vec_dot_nc_q4_0_q8_0;
    tbl[ST_TYPE_Q4_1].vec_dot_nc = vec_dot_nc_q4_1_q8_1;
    tbl[ST_TYPE_Q5_0].vec_dot_nc = vec_dot_nc_q5_0_q8_0;
    tbl[ST_TYPE_Q5_1].vec_dot_nc = vec_dot_nc_q5_1_q8_1;
    tbl[ST_TYPE_Q8_0].vec_dot_nc = vec_dot_nc_q8_0_q8_0;
    tbl[ST_TYPE_Q2_K].vec_dot_nc = vec_dot_nc_q2_K_q8_K;
    tbl[ST_TYPE_Q3_K].vec_dot_nc = vec_dot_nc_q3_K_q8_K;
    tbl[ST_TYPE_Q4_K].vec_dot_nc = vec_dot_nc_q4_K_q8_K;
    tbl[ST_TYPE_Q5_K].vec_dot_nc = vec_dot_nc_q5_K_q8_K;
    tbl[ST_TYPE_Q6_K].vec_dot_nc = vec_dot_nc_q6_K_q8_K;

    /* gemm on repacked rows: the VNNI kernels where cpuid has AVX-VNNI, else
     * the AVX2 ones (same layouts, same results); STRATA_NO_GEMM=1 leaves
     * prompts to vec_dot_nc */
    const char *no_gemm = getenv("STRATA_NO_GEMM");
    if (!(no_gemm && *no_gemm && strcmp(no_gemm, "0") != 0)) {
        const bool vnni = cpu_has_avx_vnni();
        tbl[ST_TYPE_Q8_0].gemm_repack = gemm_repack_q8_0;
        tbl[ST_TYPE_Q4_0].gemm_repack = gemm_repack_q4_0;
        tbl[ST_TYPE_Q5_0].gemm_repack = gemm_repack_q5_0;
        tbl[ST_TYPE_Q8_0].gemm = vnni ? gemm_b32_vnni : gemm_q8_0_avx2;
        tbl[ST_TYPE_Q4_0].gemm = vnni ? gemm_b32_vnni : gemm_q4_0_avx2;
        tbl[ST_TYPE_Q5_0].gemm = vnni ? gemm_b32_vnni : gemm_q5_0_avx2;
        tbl[ST_TYPE_Q8_0].gemm_block_bytes = tbl[ST_TYPE_Q4_0].gemm_block_bytes = tbl[ST_TYPE_Q5_0].gemm_block_bytes =
            R8B32_BYTES;
        tbl[ST_TYPE_Q4_K].gemm_repack = gemm_repack_q4_K;
        tbl[ST_TYPE_Q4_K].gemm = vnni ? gemm_q4_K_vnni : gemm_q4_K_avx2;
        tbl[ST_TYPE_Q4_K].gemm_block_bytes = R8K_BYTES;
        tbl[ST_TYPE_Q5_K].gemm_repack = gemm_repack_q5_K;
        tbl[ST_TYPE_Q5_K].gemm = vnni ? gemm_q4_K_vnni : gemm_q5_K_avx2;
        tbl[ST_TYPE_Q5_K].gemm_block_bytes = R8K_BYTES;
        tbl[ST_TYPE_Q6_K].gemm_repack = gemm_repack_q6_K;
        tbl[ST_TYPE_Q6_K].gemm = vnni ? gemm_q6_K_vnni : gemm_q6_K_avx2;
        tbl[ST_TYPE_Q6_K].gemm_block_bytes = R8K6_BYTES;
    }

    tbl[ST_TYPE_Q8_0].from_float = from_float_q8_0;
    tbl[ST_TYPE_Q8_1].from_float = from_float_q8_1;
    tbl[ST_TYPE_Q8_K].from_float = from_float_q8_K;
    tbl[ST_TYPE_F16].from_float = from_float_f16;

    tbl[ST_TYPE_F16].to_float = to_float_f16;
    tbl[ST_TYPE_Q8_0].to_float = to_float_q8_0;
    tbl[ST_TYPE_Q4_0].to_float = to_float_q4_0;
    tbl[ST_TYPE_Q4_K].to_float = to_float_q4_K;
    tbl[ST_TYPE_Q6_K].to_float = to_float_q6_K;
}
