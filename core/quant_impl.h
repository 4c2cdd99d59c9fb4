/* quant_impl.h — internal to core/quant*.c: how the SIMD kernels plug into
 * the type-traits table. Not part of any public interface. */
#ifndef ST_QUANT_IMPL_H
#define ST_QUANT_IMPL_H

#include "quant.h"

#include <stddef.h>
#include <string.h>

/* Defined in quant_avx2.c (compiled with -mavx2 -mfma -mf16c). Overwrites the
 * vec_dot (and, where faster, from_float/to_float) entries of `tbl`, indexed by
 * st_type, with AVX2 kernels. Called once by quant.c after cpuid says the CPU
 * has AVX2, FMA and F16C. */
void st_quant_avx2_install(st_type_traits *tbl);

/* fp16 -> fp32 for every half bit pattern (exact; NaN payloads kept). Filled
 * once by st_quant_init(), which runs at program load (constructor) and is
 * also called by st_type_traits_get/ref; calling it again is cheap. */
extern float st_fp16_table[65536];
void st_quant_init(void);

/* ---- Q8_K blocks and F32 values at any address ----------------------------
 * The kernels take activation rows at any address (vec_dot_nc and gemm take
 * rows `by` bytes apart, any by; test_quant_simd packs them at strides that
 * are not multiples of 4), and st_block_q8_K (a float and int16s) has 4-byte
 * alignment: reading it through a `const st_block_q8_K *` there would be a
 * misaligned access, undefined in C (UBSan: alignment). So the kernels
 * address Q8_K blocks as bytes and read their fields through these helpers:
 * a memcpy of a float / int16 is the same single load on x86-64 (movss,
 * vbroadcastss or a folded memory operand), and qs / bsums are byte pointers
 * that the SIMD code loads with loadu anyway. The other vec_dot types (Q8_0,
 * Q8_1, F16) only hold 2-byte fields and their rows are an even number of
 * bytes, as is every `by` the engine passes. */
static inline const uint8_t *q8k_block(const void *y, int64_t i) {
    return (const uint8_t *)y + (size_t)i * sizeof(st_block_q8_K);
}
static inline float q8k_d(const uint8_t *b) {
    float d;
    memcpy(&d, b + offsetof(st_block_q8_K, d), sizeof d);
    return d;
}
static inline const int8_t *q8k_qs(const uint8_t *b) { return (const int8_t *)(b + offsetof(st_block_q8_K, qs)); }
/* the 16 int16 bsums as bytes (for loadu), or one of them */
static inline const uint8_t *q8k_bsums(const uint8_t *b) { return b + offsetof(st_block_q8_K, bsums); }
static inline int q8k_bsum(const uint8_t *b, int j) {
    int16_t v;
    memcpy(&v, q8k_bsums(b) + sizeof v * (size_t)j, sizeof v);
    return v;
}
/* writers (the Q8_K quantizers) */
static inline void q8k_set_d(uint8_t *b, float d) { memcpy(b + offsetof(st_block_q8_K, d), &d, sizeof d); }
static inline void q8k_set_bsum(uint8_t *b, int j, int16_t v) {
    memcpy(b + offsetof(st_block_q8_K, bsums) + sizeof v * (size_t)j, &v, sizeof v);
}
/* one float at any address */
static inline float st_ldf(const void *p) {
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}

#endif
