/* kernel_bw.c — single-thread vec_dot throughput per weight type, in GB/s of
 * weight bytes, against a plain AVX2 read loop over the same bytes.
 *
 * A decode step is a matrix-vector product over weights far larger than the
 * caches, so each kernel should run at (nearly) the speed memory delivers the
 * bytes. This walks a weight matrix of `MiB` (default 1024) worth of rows of
 * K = 4096 elements, dotting every row with one quantized activation row.
 *
 * Not part of the CMake build. Build by hand against the core library:
 *   cmake -S . -B build-simd && make -C build-simd strata_core
 *   gcc -O2 -mavx2 -mfma -mf16c -Icore bench/kernel_bw.c build-simd/libstrata_core.a -lm -lpthread -o kernel_bw
 *   ./kernel_bw [MiB] [reps] [TYPE ...]
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quant.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t g_rng = 0x243F6A8885A308D3ULL;
static float rnd_gauss(void) {
    double u[2];
    for (int k = 0; k < 2; k++) {
        g_rng ^= g_rng << 13;
        g_rng ^= g_rng >> 7;
        g_rng ^= g_rng << 17;
        u[k] = ((g_rng >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    }
    return (float)(sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]));
}

/* plain read of n bytes (n multiple of 128), 4 independent accumulators */
static __attribute__((noinline)) uint32_t read_bytes(const uint8_t *p, size_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < n; i += 128) {
        a0 = _mm256_add_epi32(a0, _mm256_load_si256((const __m256i *)(p + i)));
        a1 = _mm256_add_epi32(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_add_epi32(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_add_epi32(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    a0 = _mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3));
    return (uint32_t)_mm256_extract_epi32(a0, 0) ^ (uint32_t)_mm256_extract_epi32(a0, 5);
}

static double read_rate(const uint8_t *p, size_t n, int reps) {
    double best = 1e30;
    volatile uint32_t sink = 0;
    for (int r = 0; r < reps; r++) {
        const double t = now_s();
        sink ^= read_bytes(p, n & ~(size_t)127);
        const double dt = now_s() - t;
        if (dt < best) best = dt;
    }
    (void)sink;
    return (double)(n & ~(size_t)127) / best / 1e9;
}

int main(int argc, char **argv) {
    const double mib = argc > 1 ? atof(argv[1]) : 1024;
    const int reps = argc > 2 ? atoi(argv[2]) : 5;
    const int K = 4096;
    static const st_type all[] = {ST_TYPE_Q4_0, ST_TYPE_Q8_0, ST_TYPE_Q4_K, ST_TYPE_Q6_K, ST_TYPE_Q4_1,
                                  ST_TYPE_Q5_0, ST_TYPE_Q5_1, ST_TYPE_Q2_K, ST_TYPE_Q3_K, ST_TYPE_Q5_K,
                                  ST_TYPE_F16,  ST_TYPE_BF16, ST_TYPE_F32};
    st_type types[32];
    int ntypes = 0;
    if (argc > 3) {
        for (int a = 3; a < argc && ntypes < 32; a++)
            for (int t = 0; t < ST_TYPE_COUNT; t++)
                if (st_type_name((st_type)t) && strcmp(st_type_name((st_type)t), argv[a]) == 0) types[ntypes++] = (st_type)t;
    } else {
        ntypes = (int)(sizeof all / sizeof *all);
        memcpy(types, all, sizeof all);
    }

    const size_t total = (size_t)(mib * 1048576.0) & ~(size_t)4095;
    uint8_t *buf = aligned_alloc(64, total);
    if (!buf) {
        fprintf(stderr, "cannot allocate %g MiB\n", mib);
        return 1;
    }
    memset(buf, 1, total);
    printf("simd: %s; matrix %g MiB, rows of K=%d, best of %d, 1 thread\n", st_cpu_has_avx2() ? "AVX2" : "none", mib,
           K, reps);
    /* the read rate is measured again before every type (the machine is
     * noisy); the best of all is the reference */
    double rd = read_rate(buf, total, reps);
    double gbs_t[32] = {0};
    size_t rs_t[32] = {0};
    double ns_t[32] = {0};

    float *xf = malloc(sizeof(float) * (size_t)K * 16), *act = malloc(sizeof(float) * K);
    for (int i = 0; i < K; i++) act[i] = rnd_gauss();
    for (int i = 0; i < K * 16; i++) xf[i] = rnd_gauss() * 0.02f;
    void *y = aligned_alloc(64, 1 << 20);

    for (int ti = 0; ti < ntypes; ti++) {
        const st_type t = types[ti];
        const st_type_traits *tr = st_type_traits_get(t), *ref = st_type_traits_ref(t);
        if (!tr || !tr->vec_dot) continue;
        const size_t rs = st_row_size(t, K);
        const size_t nrows = total / rs;
        /* 16 distinct quantized rows, tiled over the whole matrix */
        for (int r = 0; r < 16; r++) st_quantize_row(t, xf + (size_t)r * K, buf + (size_t)r * rs, K);
        for (size_t r = 16; r < nrows; r++) memcpy(buf + r * rs, buf + (r % 16) * rs, rs);
        st_type_traits_get(tr->vec_dot_type)->from_float(act, y, K);
        float *out = malloc(sizeof(float) * nrows);

        /* sanity: fast vs reference on the first rows */
        for (int r = 0; r < 16; r++) {
            float a, b;
            tr->vec_dot(K, &a, buf + (size_t)r * rs, y);
            ref->vec_dot(K, &b, buf + (size_t)r * rs, y);
            if (fabsf(a - b) > 1e-4f * (fabsf(b) + 1e-3f)) printf("  MISMATCH %s row %d: %g vs %g\n", tr->name, r, a, b);
        }

        double best = 1e30;
        for (int rep = 0; rep < reps; rep++) {
            const double t0 = now_s();
            for (size_t r = 0; r < nrows; r++) tr->vec_dot(K, out + r, buf + r * rs, y);
            const double dt = now_s() - t0;
            if (dt < best) best = dt;
        }
        gbs_t[ti] = (double)(nrows * rs) / best / 1e9;
        rs_t[ti] = rs;
        ns_t[ti] = best / (double)nrows * 1e9;
        free(out);
        const double r2 = read_rate(buf, total, reps);
        if (r2 > rd) rd = r2;
    }
    printf("%-6s %9s %9s %7s %10s\n", "type", "B/row", "GB/s", "%read", "ns/row");
    printf("%-6s %9s %9.2f %7s\n", "read", "-", rd, "100%");
    for (int ti = 0; ti < ntypes; ti++)
        if (rs_t[ti])
            printf("%-6s %9zu %9.2f %6.1f%% %10.1f\n", st_type_name(types[ti]), rs_t[ti], gbs_t[ti],
                   100.0 * gbs_t[ti] / rd, ns_t[ti]);
    free(xf);
    free(act);
    free(y);
    free(buf);
    return 0;
}
