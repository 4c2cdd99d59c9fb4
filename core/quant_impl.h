/* quant_impl.h — internal to core/quant*.c: how the SIMD kernels plug into
 * the type-traits table. Not part of any public interface. */
#ifndef ST_QUANT_IMPL_H
#define ST_QUANT_IMPL_H

#include "quant.h"

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

#endif
