#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* An idle worker first spins (a few microseconds: the gap between the jobs of
 * one forward pass), then yields its core for a while (so that on a loaded
 * machine the thread it waits for can run), and only then sleeps on the
 * condition variable (between user turns). */
#define SPIN_ITERS 2000
#define YIELD_ITERS 2000

struct st_threadpool {
    int n_threads;           /* including the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint gen;         /* bumped for every job */
    atomic_int next_task;
    atomic_int n_done;       /* workers finished with the current job */
    atomic_bool stop;
    st_task_fn fn;
    void *ctx;
    int n_tasks;
};

typedef struct { st_threadpool *tp; int idx; } worker_arg;

static void do_tasks(st_threadpool *tp, int thread) {
    for (;;) {
        int t = atomic_fetch_add_explicit(&tp->next_task, 1, memory_order_relaxed);
        if (t >= tp->n_tasks) break;
        tp->fn(tp->ctx, t, thread);
    }
}

static void *worker_main(void *p) {
    worker_arg *a = p;
    st_threadpool *tp = a->tp;
    int idx = a->idx;
    free(a);
    unsigned seen = 0; /* gen starts at 0; a job may be published before this thread runs */
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&tp->gen, memory_order_acquire)) == seen) {
            if (atomic_load_explicit(&tp->stop, memory_order_relaxed)) return NULL;
            if (++spins < SPIN_ITERS) { cpu_relax(); continue; }
            if (spins < SPIN_ITERS + YIELD_ITERS) { sched_yield(); continue; }
            pthread_mutex_lock(&tp->mu);
            while (atomic_load(&tp->gen) == seen && !atomic_load(&tp->stop))
                pthread_cond_wait(&tp->cv, &tp->mu);
            pthread_mutex_unlock(&tp->mu);
            spins = 0;
        }
        seen = g;
        if (atomic_load(&tp->stop)) return NULL;
        do_tasks(tp, idx);
        atomic_fetch_add_explicit(&tp->n_done, 1, memory_order_acq_rel);
    }
}

st_status st_tp_new(int n_threads, st_threadpool **out, st_error *err) {
    *out = NULL;
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 512) return st_error_set(err, ST_ERR_ARG, "thread count %d is too large (at most 512)", n_threads);
    st_threadpool *tp = calloc(1, sizeof *tp);
    if (!tp) return st_error_set(err, ST_ERR_NOMEM, "thread pool: out of memory");
    tp->n_threads = n_threads;
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->cv, NULL);
    tp->threads = calloc((size_t)n_threads, sizeof(pthread_t));
    if (!tp->threads) { free(tp); return st_error_set(err, ST_ERR_NOMEM, "thread pool: out of memory"); }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *a = malloc(sizeof *a);
        if (!a) { tp->n_threads = i; st_tp_free(tp); return st_error_set(err, ST_ERR_NOMEM, "thread pool: out of memory"); }
        a->tp = tp;
        a->idx = i;
        int rc = pthread_create(&tp->threads[i], NULL, worker_main, a);
        if (rc != 0) {
            free(a);
            tp->n_threads = i;
            st_tp_free(tp);
            return st_error_set(err, ST_ERR_INTERNAL, "thread pool: cannot start thread %d: %s", i, strerror(rc));
        }
    }
    *out = tp;
    return ST_OK;
}

void st_tp_free(st_threadpool *tp) {
    if (!tp) return;
    pthread_mutex_lock(&tp->mu);
    atomic_store(&tp->stop, true);
    pthread_cond_broadcast(&tp->cv);
    pthread_mutex_unlock(&tp->mu);
    for (int i = 1; i < tp->n_threads; i++) pthread_join(tp->threads[i], NULL);
    pthread_mutex_destroy(&tp->mu);
    pthread_cond_destroy(&tp->cv);
    free(tp->threads);
    free(tp);
}

int st_tp_n_threads(const st_threadpool *tp) { return tp->n_threads; }

void st_tp_run(st_threadpool *tp, st_task_fn fn, void *ctx, int n_tasks) {
    if (n_tasks <= 0) return;
    if (tp->n_threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    tp->fn = fn;
    tp->ctx = ctx;
    tp->n_tasks = n_tasks;
    atomic_store_explicit(&tp->next_task, 0, memory_order_relaxed);
    atomic_store_explicit(&tp->n_done, 0, memory_order_relaxed);
    pthread_mutex_lock(&tp->mu);
    atomic_fetch_add_explicit(&tp->gen, 1, memory_order_release);
    pthread_cond_broadcast(&tp->cv);
    pthread_mutex_unlock(&tp->mu);
    do_tasks(tp, 0);
    for (int spins = 0; atomic_load_explicit(&tp->n_done, memory_order_acquire) < tp->n_threads - 1; spins++) {
        if (spins < SPIN_ITERS) cpu_relax();
        else sched_yield();
    }
}

int st_physical_cores(void) {
    /* count distinct (physical id, core id) pairs in /proc/cpuinfo */
    FILE *f = fopen("/proc/cpuinfo", "r");
    int n = 0;
    if (f) {
        char line[256];
        int phys = 0, pairs[1024][2], np = 0;
        while (fgets(line, sizeof line, f)) {
            int v;
            if (sscanf(line, "physical id : %d", &v) == 1) phys = v;
            else if (sscanf(line, "core id : %d", &v) == 1) {
                int dup = 0;
                for (int i = 0; i < np; i++) if (pairs[i][0] == phys && pairs[i][1] == v) { dup = 1; break; }
                if (!dup && np < 1024) { pairs[np][0] = phys; pairs[np][1] = v; np++; }
            }
        }
        fclose(f);
        n = np;
    }
    if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}
