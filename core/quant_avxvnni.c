/* quant_avxvnni.c — AVX-VNNI dot products for decode (vec_dot), installed
 * over the AVX2 ones by quant.c when cpuid says AVX-VNNI (VEX-encoded 256-bit
 * vpdpbusd / vpdpwssd) and STRATA_NO_VNNI is not set.
 *
 * Compiled with -mavx2 -mfma -mf16c -mbmi2 -mavxvnni; only reached after the
 * cpuid check (st_quant_avxvnni_install is called by quant.c).
 *
 * Results are bit-identical to the AVX2 kernels of quant_avx2.c (and so to
 * its vec_dot_nc and gemm kernels): every kernel computes the same exact
 * integer sums and then the same float operations in the same order, the
 * "canonical order" documented there per type:
 *  - Q4_0 / Q5_0 / Q8_0: per 32-block b the exact integer sum isum, then
 *    a[b mod 4] = fmaf(isum, dx * dy, a[b mod 4]) over 4 accumulators (one
 *    4-wide FMA per 4 blocks), the result (a0 + a1) + (a2 + a3);
 *  - Q4_K / Q5_K: per super-block S = sum_j sc[j] * (q . y over sub-block j)
 *    and M = sum_j m[j] * ysum[j] (exact integers), u = fmaf(d, S,
 *    -(dmin * M)), acc = fmaf(u, y.d, acc);
 *  - Q6_K: S = sum_j sc[j] * (q . y - 32 * bsum[j]), acc = fmaf(d * y.d, S, acc);
 *  - Q2_K / Q3_K: 8 float lanes, each with the same integer partial sum as in
 *    the AVX2 kernel, summed at the end.
 * Only how the integers are obtained changes:
 *  - vpdpbusd (unsigned x signed bytes, 4 products summed into each int32
 *    lane, no int16 intermediate) replaces maddubs + madd + add; Q4_0/Q5_0's
 *    offset is a second vpdpbusd of the constant with the activations;
 *  - vpdpwssd (int16 pairs x int16, accumulated into int32) replaces madd +
 *    add where a per-sub-block scale multiplies maddubs' pair sums (K-quants),
 *    and folds Q6_K's -32 * bsum correction into the same accumulator;
 *  - Q4_K/Q5_K's packed 6-bit scales and mins are unpacked with two byte
 *    shuffles instead of scalar shifts.
 *
 * Q4_K/Q5_K/Q6_K go 4 super-blocks per step: their 4 horizontal sums share
 * one hadd tree and their float work is 4-wide (elementwise the same
 * operations), which shortens the dependency chain per super-block; in cache
 * that is +20% (Q4_K) over one super-block per step.
 *
 * Q4_0/Q5_0/Q8_0 used to be bound by their canonical order itself (one
 * fmaf per 32-block, each depending on the previous: 4 cycles per block,
 * Q4_0 about 16 GB/s in cache); with the 4-accumulator order the float
 * chain is one FMA per 4 blocks and the integer part sets the pace.
 *
 * The weight stream is prefetched ST_VNNI_PF_DIST bytes ahead into L2, one
 * prefetch per 64 bytes, as in quant_avx2.c. Measured end to end (tinyllama,
 * 2 threads) 2048 was worse than 4096; 8192, 16384 and the T0 hint were
 * within the noise of 4096. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "quant_impl.h"

void st_quant_avxvnni_install(st_type_traits *tbl);

#define ALWAYS_INLINE static inline __attribute__((always_inline))

#ifndef ST_VNNI_PF_DIST
#define ST_VNNI_PF_DIST 4096
#endif
#ifndef ST_VNNI_PF_HINT
#define ST_VNNI_PF_HINT _MM_HINT_T1
#endif
#define PF(p) _mm_prefetch((const char *)(p) + ST_VNNI_PF_DIST, ST_VNNI_PF_HINT)

ALWAYS_INLINE float h2f(st_fp16 h) { return _cvtsh_ss(h); }
ALWAYS_INLINE __m256i loadu256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
ALWAYS_INLINE __m128i loadu128(const void *p) { return _mm_loadu_si128((const __m128i *)p); }

/* acc + sum of 4 unsigned x signed byte products per int32 lane */
ALWAYS_INLINE __m256i dpbusd(__m256i acc, __m256i u8, __m256i s8) { return _mm256_dpbusd_avx_epi32(acc, u8, s8); }
/* acc + sum of 2 int16 x int16 products per int32 lane */
ALWAYS_INLINE __m256i dpwssd(__m256i acc, __m256i a, __m256i b) { return _mm256_dpwssd_avx_epi32(acc, a, b); }

ALWAYS_INLINE int hsum_i32(__m256i v) {
    __m128i u = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    u = _mm_add_epi32(u, _mm_shuffle_epi32(u, 0x4E));
    u = _mm_add_epi32(u, _mm_shuffle_epi32(u, 0xB1));
    return _mm_cvtsi128_si32(u);
}

/* fp16 d fields of 4 consecutive blocks -> [d0 d1 d2 d3] */
#define D4X(b)                                                                                          \
    _mm_cvtph_ps(_mm_cvtsi64_si128((long long)((uint64_t)(b)[0].d | ((uint64_t)(b)[1].d << 16) |      \
                                               ((uint64_t)(b)[2].d << 32) | ((uint64_t)(b)[3].d << 48))))

/* acc = fmaf(c[k], d[k], acc) for k = 0..3 in this order (the canonical
 * order of the K-quants' super-blocks) */
ALWAYS_INLINE float chain4(float acc, __m128 c, __m128 d) {
    float cf[4], df[4];
    _mm_storeu_ps(cf, c);
    _mm_storeu_ps(df, d);
    acc = fmaf(cf[0], df[0], acc);
    acc = fmaf(cf[1], df[1], acc);
    acc = fmaf(cf[2], df[2], acc);
    return fmaf(cf[3], df[3], acc);
}

/* the 4 accumulators of the 32-element types summed as (a0 + a1) + (a2 + a3) */
ALWAYS_INLINE float fold4(const float a[4]) { return (a[0] + a[1]) + (a[2] + a[3]); }

/* per-block int32 sums of 4 blocks' 8-lane partial sums -> [b0 b1 b2 b3] */
ALWAYS_INLINE __m128i blocksums4(__m256i p0, __m256i p1, __m256i p2, __m256i p3) {
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* 16 packed nibbles -> [low nibbles | high nibbles] (bytes 0..15 / 16..31) */
ALWAYS_INLINE __m256i nibbles32(const uint8_t *qs, __m256i shifts, __m256i m4) {
    const __m256i v = _mm256_broadcastsi128_si256(loadu128(qs));
    return _mm256_and_si256(_mm256_srlv_epi64(v, shifts), m4);
}

/* 32 bits -> 32 bytes, 0x10 where the bit is set (byte i <- bit i) */
ALWAYS_INLINE __m256i bits_to_0x10(const uint8_t *qh) {
    uint32_t b;
    memcpy(&b, qh, 4);
    const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000LL, 0x0101010101010101LL, 0x0202020202020202LL,
                                            0x0303030303030303LL);
    const __m256i bm = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)b), shuf);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bm), bm);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* ------------------------------------------------------------------------- */
/* Q8_0 x Q8_0: |x| . sign(y, x) in one vpdpbusd per block                     */

static void vec_dot_q8_0(int n, float *s, const void *vx, const void *vy) {
    const st_block_q8_0 *x = vx, *y = vy;
    const int nb = n / ST_QK8_0;
    const __m256i z = _mm256_setzero_si256();
    __m128 acc = _mm_setzero_ps(); /* [a0 a1 a2 a3]: block b into a[b mod 4] */
    int ib = 0;
    for (; ib + 4 <= nb; ib += 4) {
        PF(x + ib);
        PF((const char *)(x + ib) + 64);
        PF((const char *)(x + ib) + 128);
        __m256i p[4];
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            const __m256i xk = loadu256(x[ib + k].qs);
            p[k] = dpbusd(z, _mm256_sign_epi8(xk, xk), _mm256_sign_epi8(loadu256(y[ib + k].qs), xk));
        }
        const __m128 is = _mm_cvtepi32_ps(blocksums4(p[0], p[1], p[2], p[3]));
        acc = _mm_fmadd_ps(is, _mm_mul_ps(D4X(x + ib), D4X(y + ib)), acc);
    }
    float a[4];
    _mm_storeu_ps(a, acc);
    for (; ib < nb; ib++) {
        const __m256i xk = loadu256(x[ib].qs);
        const __m256i p = dpbusd(z, _mm256_sign_epi8(xk, xk), _mm256_sign_epi8(loadu256(y[ib].qs), xk));
        a[ib & 3] = fmaf((float)hsum_i32(p), h2f(x[ib].d) * h2f(y[ib].d), a[ib & 3]);
    }
    *s = fold4(a);
}

/* ------------------------------------------------------------------------- */
/* Q4_0 / Q5_0 x Q8_0: unsigned quants straight into vpdpbusd, minus the      */
/* offset (8 or 16) times the activations, also by vpdpbusd                   */

ALWAYS_INLINE void dot_q40_q50(int n, float *s, const void *vx, const void *vy, const bool five) {
    const st_block_q8_0 *y = vy;
    const int nb = n / 32;
    const size_t xsz = five ? sizeof(st_block_q5_0) : sizeof(st_block_q4_0);
    const __m256i m4 = _mm256_set1_epi8(0x0F), shifts = _mm256_setr_epi64x(0, 0, 4, 4);
    const __m256i off = _mm256_set1_epi8(five ? 16 : 8);
    const __m256i z = _mm256_setzero_si256();
    __m128 acc = _mm_setzero_ps(); /* [a0 a1 a2 a3]: block b into a[b mod 4] */
    int ib = 0;
    for (; ib + 4 <= nb; ib += 4) {
        const uint8_t *xb = (const uint8_t *)vx + (size_t)ib * xsz;
        PF(xb);
        PF(xb + 64);
        __m256i p[4];
        __m128 dx;
        if (five) {
            const st_block_q5_0 *x = (const st_block_q5_0 *)xb;
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m256i q = _mm256_or_si256(nibbles32(x[k].qs, shifts, m4), bits_to_0x10(x[k].qh));
                const __m256i yk = loadu256(y[ib + k].qs);
                p[k] = _mm256_sub_epi32(dpbusd(z, q, yk), dpbusd(z, off, yk));
            }
            dx = D4X(x);
        } else {
            const st_block_q4_0 *x = (const st_block_q4_0 *)xb;
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m256i yk = loadu256(y[ib + k].qs);
                p[k] = _mm256_sub_epi32(dpbusd(z, nibbles32(x[k].qs, shifts, m4), yk), dpbusd(z, off, yk));
            }
            dx = D4X(x);
        }
        const __m128 is = _mm_cvtepi32_ps(blocksums4(p[0], p[1], p[2], p[3]));
        acc = _mm_fmadd_ps(is, _mm_mul_ps(dx, D4X(y + ib)), acc);
    }
    float a[4];
    _mm_storeu_ps(a, acc);
    for (; ib < nb; ib++) {
        __m256i q;
        float dx;
        if (five) {
            const st_block_q5_0 *x = (const st_block_q5_0 *)vx + ib;
            q = _mm256_or_si256(nibbles32(x->qs, shifts, m4), bits_to_0x10(x->qh));
            dx = h2f(x->d);
        } else {
            const st_block_q4_0 *x = (const st_block_q4_0 *)vx + ib;
            q = nibbles32(x->qs, shifts, m4);
            dx = h2f(x->d);
        }
        const __m256i yk = loadu256(y[ib].qs);
        const __m256i p = _mm256_sub_epi32(dpbusd(z, q, yk), dpbusd(z, off, yk));
        a[ib & 3] = fmaf((float)hsum_i32(p), dx * h2f(y[ib].d), a[ib & 3]);
    }
    *s = fold4(a);
}
static void vec_dot_q4_0(int n, float *s, const void *x, const void *y) { dot_q40_q50(n, s, x, y, false); }
static void vec_dot_q5_0(int n, float *s, const void *x, const void *y) { dot_q40_q50(n, s, x, y, true); }

/* ------------------------------------------------------------------------- */
/* Q4_K / Q5_K x Q8_K                                                          */

/* The 12 packed bytes of 6-bit scales and mins -> [sc0..sc7, m0..m7]. Reads
 * 16 bytes from `scales` (the 4 after them belong to the block). */
ALWAYS_INLINE __m128i k4_scales_mins(const uint8_t *scales) {
    const __m128i v = loadu128(scales);
    /* [s0-3 | s8-11 | s4-7 | s8-11]: low 6 bits of sc0-3, low nibble of sc4-7,
     * low 6 bits of m0-3, high nibble of m4-7 */
    const __m128i a = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    /* the top 2 bits of sc4-7 come from s0-3, those of m4-7 from s4-7 */
    const __m128i b = _mm_shuffle_epi8(v, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
    const __m128i t1 = _mm_and_si128(a, _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0));
    const __m128i t2 = _mm_and_si128(_mm_srli_epi16(a, 4), _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15));
    const __m128i t3 = _mm_and_si128(_mm_srli_epi16(b, 2), _mm_setr_epi8(0, 0, 0, 0, 48, 48, 48, 48, 0, 0, 0, 0, 48, 48, 48, 48));
    return _mm_or_si128(_mm_or_si128(t1, t2), t3);
}

/* pshufb masks broadcasting int16 element k of each 128-bit lane */
#define W2(k) (2 * (k)), (2 * (k) + 1)
#define W16(k) W2(k), W2(k), W2(k), W2(k), W2(k), W2(k), W2(k), W2(k), W2(k), W2(k), W2(k), W2(k), W2(k), W2(k), W2(k), W2(k)
static const int8_t k_word_bcast[8][32] __attribute__((aligned(32))) = {
    {W16(0)}, {W16(1)}, {W16(2)}, {W16(3)}, {W16(4)}, {W16(5)}, {W16(6)}, {W16(7)},
};
#undef W16
#undef W2
ALWAYS_INLINE __m256i word_bcast(__m256i v, int k) {
    return _mm256_shuffle_epi8(v, _mm256_load_si256((const __m256i *)k_word_bcast[k]));
}

/* S (exact integer, 8 lanes to be summed) and the 8 lanes of M of one
 * Q4_K/Q5_K super-block against its Q8_K block y (at any address, as bytes:
 * read through q8k_*, quant_impl.h) */
ALWAYS_INLINE void q4k_q5k_block(const uint8_t *xb, const uint8_t *y, __m256i *sv, __m256i *mv, const bool five) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i b0 = _mm256_set1_epi8(0x01), b1 = _mm256_set1_epi8(0x02);
    /* [m0 m0 m1 m1 .. m7 m7]: each min against its two 16-element bsums */
    const __m128i mins_dup = _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
    /* Q4_K and Q5_K share d, dmin, scales at the same offsets */
    const st_block_q4_K *x4 = (const st_block_q4_K *)xb;
    const st_block_q5_K *x5 = (const st_block_q5_K *)xb;
    const __m128i sm = k4_scales_mins(x4->scales);
    const __m256i sc16 = _mm256_cvtepu8_epi16(sm);                   /* [sc0..7 | m0..7] */
    const __m256i scl = _mm256_permute2x128_si256(sc16, sc16, 0x00); /* [sc0..7 | sc0..7] */
    const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sm, mins_dup));
    const uint8_t *qs = five ? x5->qs : x4->qs;
    __m256i hb = five ? loadu256(x5->qh) : _mm256_setzero_si256();
    /* one accumulator per 64 elements (vpdpwssd has 4-5 cycles of latency) */
    __m256i sa[4];
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
        const __m256i pl = _mm256_maddubs_epi16(lo, loadu256(q8k_qs(y) + 64 * j));
        const __m256i ph = _mm256_maddubs_epi16(hi, loadu256(q8k_qs(y) + 64 * j + 32));
        sa[j] = dpwssd(_mm256_madd_epi16(pl, word_bcast(scl, 2 * j)), ph, word_bcast(scl, 2 * j + 1));
    }
    *sv = _mm256_add_epi32(_mm256_add_epi32(sa[0], sa[1]), _mm256_add_epi32(sa[2], sa[3]));
    *mv = _mm256_madd_epi16(loadu256(q8k_bsums(y)), mn16);
}

/* lane sums of 4 vectors -> [s0 s1 s2 s3] */
ALWAYS_INLINE __m128i hsum4_i32(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* 4 super-blocks per step: the horizontal sums and the int -> float work of
 * the 4 go through one hadd tree and 4-wide float ops (elementwise the same
 * operations as the scalar canonical order), which also keeps the latency
 * per super-block short enough for the out-of-order window to overlap them */
ALWAYS_INLINE void dot_q4k_q5k(int n, float *s, const void *vx, const void *vy, const bool five) {
    const int nb = n / ST_QK_K;
    const size_t xsz = five ? sizeof(st_block_q5_K) : sizeof(st_block_q4_K);
    float acc = 0.0f;
    int i = 0;
    for (; i + 4 <= nb; i += 4) {
        __m256i sv[4], mv[4];
        uint64_t hd = 0, hm = 0;
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            const uint8_t *xb = (const uint8_t *)vx + (size_t)(i + k) * xsz;
            PF(xb);
            PF(xb + 64);
            PF(xb + 128);
            if (five) PF(xb + 175);
            q4k_q5k_block(xb, q8k_block(vy, i + k), &sv[k], &mv[k], five);
            const st_block_q4_K *x4 = (const st_block_q4_K *)xb;
            hd |= (uint64_t)x4->d << (16 * k);
            hm |= (uint64_t)x4->dmin << (16 * k);
        }
        const __m128 S = _mm_cvtepi32_ps(hsum4_i32(sv[0], sv[1], sv[2], sv[3]));
        const __m128 M = _mm_cvtepi32_ps(hsum4_i32(mv[0], mv[1], mv[2], mv[3]));
        const __m128 d = _mm_cvtph_ps(_mm_cvtsi64_si128((long long)hd));
        const __m128 dmin = _mm_cvtph_ps(_mm_cvtsi64_si128((long long)hm));
        /* u = fmaf(d, S, -(dmin * M)) */
        const __m128 u = _mm_fmadd_ps(d, S, _mm_xor_ps(_mm_mul_ps(dmin, M), _mm_set1_ps(-0.0f)));
        acc = chain4(acc, u, _mm_setr_ps(q8k_d(q8k_block(vy, i)), q8k_d(q8k_block(vy, i + 1)), q8k_d(q8k_block(vy, i + 2)), q8k_d(q8k_block(vy, i + 3))));
    }
    for (; i < nb; i++) {
        const uint8_t *xb = (const uint8_t *)vx + (size_t)i * xsz;
        __m256i sv, mv;
        q4k_q5k_block(xb, q8k_block(vy, i), &sv, &mv, five);
        const st_block_q4_K *x4 = (const st_block_q4_K *)xb;
        const float u = fmaf(h2f(x4->d), (float)hsum_i32(sv), -(h2f(x4->dmin) * (float)hsum_i32(mv)));
        acc = fmaf(u, q8k_d(q8k_block(vy, i)), acc);
    }
    *s = acc;
}
static void vec_dot_q4_K(int n, float *s, const void *x, const void *y) { dot_q4k_q5k(n, s, x, y, false); }
static void vec_dot_q5_K(int n, float *s, const void *x, const void *y) { dot_q4k_q5k(n, s, x, y, true); }

/* ------------------------------------------------------------------------- */
/* Q6_K x Q8_K                                                                 */

/* S of one Q6_K super-block, as 8 lanes to be summed */
ALWAYS_INLINE __m256i q6k_block(const st_block_q6_K *x, const uint8_t *y) { /* y: as q4k_q5k_block */
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m3 = _mm256_set1_epi8(0x03), m30 = _mm256_set1_epi8(0x30);
    /* scales reordered [even sub-blocks | odd sub-blocks]: the 32 elements
     * 32v..32v+31 are sub-blocks 2v (low lane) and 2v+1 (high lane) */
    const __m128i eo = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    const __m128i sc8 = loadu128(x->scales);
    const __m256i e16 = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, eo));
    /* -32 * sum_j sc[j] * bsum[j] into an accumulator of its own (|32 sc| <= 4096) */
    const __m256i s16 = _mm256_cvtepi8_epi16(sc8);
    __m256i sa[4];
    sa[0] = _mm256_madd_epi16(loadu256(q8k_bsums(y)), _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(s16, 5)));
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const __m256i l0 = loadu256(x->ql + 64 * h), l1 = loadu256(x->ql + 64 * h + 32);
        const __m256i hh = loadu256(x->qh + 32 * h);
        __m256i q[4];
        q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hh, m3), 4));
        q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hh, 2), m30));
        q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hh, m30));
        q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(hh, 2), m30));
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            const int v = 4 * h + k;
            const __m256i p = _mm256_maddubs_epi16(q[k], loadu256(q8k_qs(y) + 32 * v));
            if (v == 0)
                sa[1] = _mm256_madd_epi16(p, word_bcast(e16, v));
            else if (v < 3)
                sa[v + 1] = _mm256_madd_epi16(p, word_bcast(e16, v));
            else
                sa[v & 3] = dpwssd(sa[v & 3], p, word_bcast(e16, v));
        }
    }
    return _mm256_add_epi32(_mm256_add_epi32(sa[0], sa[1]), _mm256_add_epi32(sa[2], sa[3]));
}

/* 4 super-blocks per step, as Q4_K */
static void vec_dot_q6_K(int n, float *s, const void *vx, const void *vy) {
    const st_block_q6_K *x = vx;
    const int nb = n / ST_QK_K;
    float acc = 0.0f;
    int i = 0;
    for (; i + 4 <= nb; i += 4) {
        __m256i sv[4];
        uint64_t hd = 0;
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            PF(x + i + k);
            PF((const char *)(x + i + k) + 64);
            PF((const char *)(x + i + k) + 128);
            PF((const char *)(x + i + k) + 192);
            sv[k] = q6k_block(x + i + k, q8k_block(vy, i + k));
            hd |= (uint64_t)x[i + k].d << (16 * k);
        }
        const __m128 S = _mm_cvtepi32_ps(hsum4_i32(sv[0], sv[1], sv[2], sv[3]));
        const __m128 d = _mm_cvtph_ps(_mm_cvtsi64_si128((long long)hd));
        /* acc = fmaf(d * y.d, S, acc) */
        acc = chain4(acc, S, _mm_mul_ps(d, _mm_setr_ps(q8k_d(q8k_block(vy, i)), q8k_d(q8k_block(vy, i + 1)), q8k_d(q8k_block(vy, i + 2)), q8k_d(q8k_block(vy, i + 3)))));
    }
    for (; i < nb; i++) {
        const uint8_t *y = q8k_block(vy, i);
        acc = fmaf(h2f(x[i].d) * q8k_d(y), (float)hsum_i32(q6k_block(x + i, y)), acc);
    }
    *s = acc;
}

/* ------------------------------------------------------------------------- */
/* Q2_K / Q3_K x Q8_K: the float order of these two is per lane (8 float     */
/* accumulators, summed at the end), so the integer partial sums must land in */
/* the same lanes as in the AVX2 kernels: vpdpwssd(acc, p, sc) is exactly     */
/* acc + madd(p, sc) lane by lane.                                            */

/* k-th pair of scales: scale 2k over the low lane, 2k+1 over the high lane */
#define R8(a, b) a, b, a, b, a, b, a, b, a, b, a, b, a, b, a, b
static const uint8_t k_pair[4][32] __attribute__((aligned(32))) = {
    {R8(0, 1), R8(2, 3)}, {R8(4, 5), R8(6, 7)}, {R8(8, 9), R8(10, 11)}, {R8(12, 13), R8(14, 15)}};
#undef R8
ALWAYS_INLINE __m256i pair_bcast(__m256i v, int k) {
    return _mm256_shuffle_epi8(v, _mm256_load_si256((const __m256i *)k_pair[k]));
}

/* the same horizontal sum as quant_avx2.c's (the order matters) */
ALWAYS_INLINE float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static void vec_dot_q2_K(int n, float *s, const void *vx, const void *vy) {
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
        __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            /* two literal immediates: clang wants a constant, gcc folds either after unrolling */
            const __m256i sc = h == 0 ? _mm256_permute2x128_si256(s16, s16, 0x00)
                                      : _mm256_permute2x128_si256(s16, s16, 0x11);
            const __m256i q2 = loadu256(x[i].qs + 32 * h);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(q2, 2 * j), m3);
                const __m256i p = _mm256_maddubs_epi16(q, loadu256(q8k_qs(y) + 128 * h + 32 * j));
                sumi = dpwssd(sumi, p, pair_bcast(sc, j));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum_ps(_mm256_add_ps(acc, accm));
}

/* Q3_K's 16 6-bit scales (0..63) from the 12 packed bytes: low 4 bits from
 * the nibbles of bytes 0..7, high 2 bits from bytes 8..11 */
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

static void vec_dot_q3_K(int n, float *s, const void *vx, const void *vy) {
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
         * sum = sum(sc * (q2 + 4h) * y) - 4 * sum(sc * bsums), the second
         * term folded into the accumulator's start (|4 sc| <= 128) */
        const __m128i sc8 = _mm_sub_epi8(q3k_scales(x[i].scales), _mm_set1_epi8(32));
        const __m256i s16 = _mm256_cvtepi8_epi16(sc8);
        const __m256i hm = loadu256(x[i].hmask);
        /* 4 integer accumulators (lane-wise sums are exact in any order) */
        __m256i sa[4];
        sa[0] = _mm256_madd_epi16(loadu256(q8k_bsums(y)), _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(s16, 2)));
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            /* two literal immediates: clang wants a constant, gcc folds either after unrolling */
            const __m256i sc = h == 0 ? _mm256_permute2x128_si256(s16, s16, 0x00)
                                      : _mm256_permute2x128_si256(s16, s16, 0x11);
            const __m256i q2 = loadu256(x[i].qs + 32 * h);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const __m256i bit = _mm256_set1_epi8((char)(1 << (4 * h + j)));
                const __m256i hb = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit), c4);
                const __m256i q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q2, 2 * j), m3), hb);
                const __m256i p = _mm256_maddubs_epi16(q, loadu256(q8k_qs(y) + 128 * h + 32 * j));
                if (h == 0 && j > 0)
                    sa[j] = _mm256_madd_epi16(p, pair_bcast(sc, j));
                else
                    sa[j] = dpwssd(sa[j], p, pair_bcast(sc, j));
            }
        }
        const __m256i sumi = _mm256_add_epi32(_mm256_add_epi32(sa[0], sa[1]), _mm256_add_epi32(sa[2], sa[3]));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum_ps(acc);
}

/* ------------------------------------------------------------------------- */

void st_quant_avxvnni_install(st_type_traits *tbl) {
    tbl[ST_TYPE_Q4_0].vec_dot = vec_dot_q4_0;
    tbl[ST_TYPE_Q5_0].vec_dot = vec_dot_q5_0;
    tbl[ST_TYPE_Q8_0].vec_dot = vec_dot_q8_0;
    tbl[ST_TYPE_Q4_K].vec_dot = vec_dot_q4_K;
    tbl[ST_TYPE_Q5_K].vec_dot = vec_dot_q5_K;
    tbl[ST_TYPE_Q6_K].vec_dot = vec_dot_q6_K;
    tbl[ST_TYPE_Q2_K].vec_dot = vec_dot_q2_K;
    tbl[ST_TYPE_Q3_K].vec_dot = vec_dot_q3_K;
}
