/* vec_avx2.c — AVX2/FMA/F16C versions of vec.h (compiled with -mavx2 -mfma
 * -mf16c; called only after the cpuid check). */
#include "vec.h"

#include <immintrin.h>

void st_vec_mad_f16_avx2(int n, st_fp16 *y, const st_fp16 *x, float v) {
    const __m256 vv = _mm256_set1_ps(v);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 yf = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i)));
        __m256 xf = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i)));
        yf = _mm256_fmadd_ps(xf, vv, yf);
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(yf, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    if (i < n) st_vec_mad_f16_ref(n - i, y + i, x + i, v);
}

void st_vec_scale_f16_avx2(int n, st_fp16 *y, float v) {
    const __m256 vv = _mm256_set1_ps(v);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 yf = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i)));
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_mul_ps(yf, vv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    if (i < n) st_vec_scale_f16_ref(n - i, y + i, v);
}
