/* test_vec.c — the attention helpers: SIMD == plain C, bit for bit. */
#include "vec.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

static float frand(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return ((float)((*s >> 8) & 0xFFFF) / 32768.0f) - 1.0f;
}

Test(vec, mad_f16_simd_equals_reference) {
    if (!st_cpu_has_avx2()) cr_skip_test("CPU without AVX2/F16C (or STRATA_NO_SIMD set)");
    unsigned seed = 7;
    for (int n = 1; n <= 130; n += 3) {
        st_fp16 x[130], y1[130], y2[130];
        for (int i = 0; i < n; i++) {
            x[i] = st_fp32_to_fp16(frand(&seed) * 4);
            y1[i] = y2[i] = st_fp32_to_fp16(frand(&seed) * 4);
        }
        float v = frand(&seed);
        st_vec_mad_f16_ref(n, y1, x, v);
        st_vec_mad_f16_avx2(n, y2, x, v);
        for (int i = 0; i < n; i++) cr_assert_eq(y1[i], y2[i], "n=%d i=%d: %04x vs %04x", n, i, y1[i], y2[i]);
        st_vec_scale_f16_ref(n, y1, v);
        st_vec_scale_f16_avx2(n, y2, v);
        for (int i = 0; i < n; i++) cr_assert_eq(y1[i], y2[i], "scale n=%d i=%d", n, i);
    }
}

Test(vec, mad_f16_accumulates) {
    st_fp16 x[16], y[16];
    for (int i = 0; i < 16; i++) { x[i] = st_fp32_to_fp16((float)i); y[i] = st_fp32_to_fp16(1.0f); }
    st_vec_mad_f16(16, y, x, 0.5f);
    for (int i = 0; i < 16; i++) cr_assert_float_eq(st_fp16_to_fp32(y[i]), 1.0f + 0.5f * i, 1e-3);
    st_vec_scale_f16(16, y, 2.0f);
    for (int i = 0; i < 16; i++) cr_assert_float_eq(st_fp16_to_fp32(y[i]), 2.0f + i, 1e-3);
}
