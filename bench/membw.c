/* membw.c — memory read bandwidth, measured the way a decode step reads its
 * weights: sum a large float array (default 1 GiB) with T threads, each
 * summing its own contiguous slice; best of several passes.
 *
 *   gcc -O2 -mavx2 -pthread bench/membw.c -o membw     (run_cpu_bench.sh does this)
 *   ./membw [-s MiB] [-t 1,2,...] [-r passes]
 *
 * Output: one line per thread count, "threads N: X.XX GB/s" (GB = 1e9 bytes),
 * which bench/run_cpu_bench.sh parses. Built with -mavx2 the inner loop uses
 * 256-bit loads and four independent accumulators; otherwise SSE2 (any
 * x86-64) or plain C with independent accumulators. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__AVX2__) || defined(__SSE2__)
#include <immintrin.h>
#endif

#define MAX_THREADS 256

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* n is a multiple of 32 */
static float sum_floats(const float *x, size_t n) {
#if defined(__AVX2__)
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_load_ps(x + i));
        a1 = _mm256_add_ps(a1, _mm256_load_ps(x + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_load_ps(x + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_load_ps(x + i + 24));
    }
    __m256 a = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    float t[8];
    _mm256_storeu_ps(t, a);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
#elif defined(__SSE2__)
    __m128 a0 = _mm_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < n; i += 16) {
        a0 = _mm_add_ps(a0, _mm_load_ps(x + i));
        a1 = _mm_add_ps(a1, _mm_load_ps(x + i + 4));
        a2 = _mm_add_ps(a2, _mm_load_ps(x + i + 8));
        a3 = _mm_add_ps(a3, _mm_load_ps(x + i + 12));
    }
    __m128 a = _mm_add_ps(_mm_add_ps(a0, a1), _mm_add_ps(a2, a3));
    float t[4];
    _mm_storeu_ps(t, a);
    return t[0] + t[1] + t[2] + t[3];
#else
    float a[8] = {0};
    for (size_t i = 0; i < n; i += 8)
        for (int k = 0; k < 8; k++) a[k] += x[i + k];
    return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
#endif
}

typedef struct {
    const float *x;
    size_t n;          /* elements of this thread's slice */
    pthread_barrier_t *start, *done;
    int passes;
    float result;
    int fill;          /* first pass: write the slice (first touch) */
} slice;

static void *worker(void *arg) {
    slice *s = arg;
    if (s->fill) {
        float *w = (float *)s->x;
        for (size_t i = 0; i < s->n; i++) w[i] = (float)(i & 1023) * 1e-3f;
    }
    pthread_barrier_wait(s->done);
    for (int p = 0; p < s->passes; p++) {
        pthread_barrier_wait(s->start);
        s->result += sum_floats(s->x, s->n);
        pthread_barrier_wait(s->done);
    }
    return NULL;
}

/* Runs `passes` timed passes over the array with nt threads; returns the best GB/s. */
static double measure(float *x, size_t n, int nt, int passes, int fill, double *checksum) {
    pthread_t tid[MAX_THREADS];
    slice sl[MAX_THREADS];
    pthread_barrier_t start, done;
    pthread_barrier_init(&start, NULL, (unsigned)nt + 1);
    pthread_barrier_init(&done, NULL, (unsigned)nt + 1);
    size_t per = n / (size_t)nt / 32 * 32;
    for (int t = 0; t < nt; t++) {
        sl[t] = (slice){.x = x + per * (size_t)t, .n = t == nt - 1 ? n - per * (size_t)(nt - 1) : per,
                        .start = &start, .done = &done, .passes = passes, .fill = fill};
        if (pthread_create(&tid[t], NULL, worker, &sl[t])) {
            fprintf(stderr, "membw: cannot start thread %d\n", t);
            exit(1);
        }
    }
    pthread_barrier_wait(&done); /* array written */
    double best = 0;
    for (int p = 0; p < passes; p++) {
        double t0 = now_s();
        pthread_barrier_wait(&start);
        pthread_barrier_wait(&done);
        double dt = now_s() - t0;
        double gbs = (double)n * sizeof(float) / dt / 1e9;
        if (gbs > best) best = gbs;
    }
    for (int t = 0; t < nt; t++) {
        pthread_join(tid[t], NULL);
        *checksum += sl[t].result;
    }
    pthread_barrier_destroy(&start);
    pthread_barrier_destroy(&done);
    return best;
}

static void usage(void) {
    fprintf(stderr, "usage: membw [-s MiB (default 1024)] [-t THREADS,... (default 1,<online CPUs>)] [-r passes (default 5)]\n");
}

int main(int argc, char **argv) {
    long mib = 1024, passes = 5;
    int threads[64], n_threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-s") && i + 1 < argc) mib = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) passes = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) {
            char *p = argv[++i];
            while (*p && n_threads < 64) {
                char *e;
                long v = strtol(p, &e, 10);
                if (e == p || v < 1 || v > MAX_THREADS) { usage(); return 2; }
                threads[n_threads++] = (int)v;
                p = *e == ',' ? e + 1 : e;
                if (*e && *e != ',') { usage(); return 2; }
            }
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(); return 0; }
        else { usage(); return 2; }
    }
    if (mib < 1 || passes < 1) { usage(); return 2; }
    if (n_threads == 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        threads[n_threads++] = 1;
        if (nc > 1) threads[n_threads++] = (int)(nc > MAX_THREADS ? MAX_THREADS : nc);
    }
    size_t bytes = (size_t)mib << 20;
    size_t n = bytes / sizeof(float) / 32 * 32;
    float *x = aligned_alloc(64, bytes);
    if (!x) { fprintf(stderr, "membw: cannot allocate %ld MiB\n", mib); return 1; }
#if defined(__AVX2__)
    const char *isa = "AVX2";
#elif defined(__SSE2__)
    const char *isa = "SSE2";
#else
    const char *isa = "C";
#endif
    printf("membw: sum of a %ld MiB float array, %s, best of %ld passes\n", mib, isa, passes);
    fflush(stdout);
    double checksum = 0;
    for (int i = 0; i < n_threads; i++) {
        double gbs = measure(x, n, threads[i], (int)passes, i == 0, &checksum);
        printf("threads %d: %.2f GB/s\n", threads[i], gbs);
        fflush(stdout);
    }
    fprintf(stderr, "membw: checksum %g\n", checksum); /* keeps the sums alive */
    free(x);
    return 0;
}
