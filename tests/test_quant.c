/* test_quant.c — reference kernels of core/quant.c: layouts, fp16/bf16,
 * quantize/dequantize accuracy, dot products, and GGUF golden checks. */
#include "quant.h"
#include "quant_impl.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

Test(quant, block_sizes) {
    cr_assert_eq(sizeof(st_block_q4_0), 18);
    cr_assert_eq(sizeof(st_block_q8_0), 34);
    cr_assert_eq(sizeof(st_block_q4_K), 144);
    cr_assert_eq(sizeof(st_block_q6_K), 210);
    cr_assert_eq(sizeof(st_block_q8_K), 292);
}

Test(quant, q8_0_roundtrip_basic) {
    float x[64], y[64];
    for (int i = 0; i < 64; i++) x[i] = sinf((float)i);
    st_block_q8_0 q[2];
    cr_assert_eq(st_quantize_row(ST_TYPE_Q8_0, x, q, 64), sizeof q);
    st_type_traits_ref(ST_TYPE_Q8_0)->to_float(q, y, 64);
    for (int i = 0; i < 64; i++) cr_assert(fabsf(x[i] - y[i]) < 0.01f);
}
