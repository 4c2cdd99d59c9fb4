#include "vec.h"

#include <math.h>
#include <pthread.h>

void st_vec_mad_f16_ref(int n, st_fp16 *y, const st_fp16 *x, float v) {
    for (int i = 0; i < n; i++) y[i] = st_fp32_to_fp16(fmaf(st_fp16_to_fp32(x[i]), v, st_fp16_to_fp32(y[i])));
}

void st_vec_scale_f16_ref(int n, st_fp16 *y, float v) {
    for (int i = 0; i < n; i++) y[i] = st_fp32_to_fp16(st_fp16_to_fp32(y[i]) * v);
}

static void (*g_mad)(int, st_fp16 *, const st_fp16 *, float) = st_vec_mad_f16_ref;
static void (*g_scale)(int, st_fp16 *, float) = st_vec_scale_f16_ref;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void pick(void) {
    if (st_cpu_has_avx2()) {
        g_mad = st_vec_mad_f16_avx2;
        g_scale = st_vec_scale_f16_avx2;
    }
}

void st_vec_mad_f16(int n, st_fp16 *y, const st_fp16 *x, float v) {
    pthread_once(&g_once, pick);
    g_mad(n, y, x, v);
}

void st_vec_scale_f16(int n, st_fp16 *y, float v) {
    pthread_once(&g_once, pick);
    g_scale(n, y, v);
}
