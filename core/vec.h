/* vec.h — small vector helpers of the forward pass that are not weight
 * kernels: the F16 accumulator of attention. AVX2/F16C versions are chosen
 * at run time; the plain-C ones are the reference. */
#ifndef ST_VEC_H
#define ST_VEC_H

#include "quant.h"

/* y[i] = fp16(fp32(y[i]) + fp32(x[i]) * v), rounding to nearest even */
void st_vec_mad_f16(int n, st_fp16 *y, const st_fp16 *x, float v);
/* y[i] = fp16(fp32(y[i]) * v) */
void st_vec_scale_f16(int n, st_fp16 *y, float v);

/* the plain-C versions, for tests */
void st_vec_mad_f16_ref(int n, st_fp16 *y, const st_fp16 *x, float v);
void st_vec_scale_f16_ref(int n, st_fp16 *y, float v);

/* defined in vec_avx2.c */
void st_vec_mad_f16_avx2(int n, st_fp16 *y, const st_fp16 *x, float v);
void st_vec_scale_f16_avx2(int n, st_fp16 *y, float v);

#endif
