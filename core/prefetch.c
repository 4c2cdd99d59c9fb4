/* prefetch.c — the prefetch pool (see prefetch.h). */
#include "prefetch.h"

#include <stdlib.h>

#ifdef ST_NO_PREFETCH

bool st_prefetch_available(void) { return false; }
st_status st_prefetch_new(int n_threads, int queue_cap, const st_pf_callbacks *cb, void *ctx, st_prefetch **out,
                          st_error *err) {
    (void)n_threads;
    (void)queue_cap;
    (void)cb;
    (void)ctx;
    *out = NULL;
    return st_error_set(err, ST_ERR_UNSUPPORTED, "prefetch was compiled out (STRATA_PREFETCH=OFF)");
}
bool st_prefetch_submit(st_prefetch *p, st_pf_job job) { (void)p; (void)job; return false; }
bool st_prefetch_stopping(const st_prefetch *p) { (void)p; return true; }
void st_prefetch_wake(st_prefetch *p) { (void)p; }
void st_prefetch_shutdown(st_prefetch *p) { (void)p; }
void st_prefetch_free(st_prefetch *p) { (void)p; }
int st_prefetch_n_threads(const st_prefetch *p) { (void)p; return 0; }
int st_prefetch_queue_cap(const st_prefetch *p) { (void)p; return 0; }
int st_prefetch_queue_depth(const st_prefetch *p) { (void)p; return 0; }
int st_prefetch_queue_peak(const st_prefetch *p) { (void)p; return 0; }

#else

#include <pthread.h>
#include <stdatomic.h>

struct st_prefetch {
    pthread_mutex_t mu;
    pthread_cond_t cv;     /* a job or shared work arrived, or stop */
    unsigned gen;          /* bumped by wake(): shared work appeared */
    st_pf_job *q;          /* ring buffer of cap jobs */
    int cap, head, count;
    bool stop;
    atomic_bool stopping;  /* = stop, readable without the lock */
    bool shut;             /* shutdown completed */
    _Atomic int depth, peak;
    st_pf_callbacks cb;
    void *ctx;
    int n_threads, n_started;
    pthread_t *th;
    struct worker_arg { st_prefetch *p; int id; } *args;
};

bool st_prefetch_available(void) { return true; }

static void *worker(void *arg) {
    struct worker_arg *wa = arg;
    st_prefetch *p = wa->p;
    unsigned seen = 0; /* the wake generation this worker last looked for shared work at */
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && p->count == 0 && p->gen == seen) pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop) { /* queued jobs are cancelled by shutdown, not run */
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        if (p->count > 0) {
            st_pf_job job = p->q[p->head];
            p->head = (p->head + 1) % p->cap;
            p->count--;
            atomic_store_explicit(&p->depth, p->count, memory_order_relaxed);
            pthread_mutex_unlock(&p->mu);
            p->cb.run(p->ctx, wa->id, job);
            continue;
        }
        /* Noted before looking: work shared after this bumps gen again, so a
         * worker that found nothing cannot sleep through it. */
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        if (p->cb.help)
            while (p->cb.help(p->ctx, wa->id))
                if (atomic_load_explicit(&p->depth, memory_order_relaxed) > 0) break; /* a job first */
    }
}

st_status st_prefetch_new(int n_threads, int queue_cap, const st_pf_callbacks *cb, void *ctx, st_prefetch **out,
                          st_error *err) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 256 || queue_cap < 1 || queue_cap > (1 << 20) || !cb || !cb->run || !cb->cancel)
        return st_error_set(err, ST_ERR_ARG, "prefetch pool: bad arguments (%d threads, queue of %d)", n_threads,
                            queue_cap);
    st_prefetch *p = calloc(1, sizeof *p);
    if (!p) return st_error_set(err, ST_ERR_NOMEM, "prefetch pool: out of memory");
    p->q = calloc((size_t)queue_cap, sizeof *p->q);
    p->th = calloc((size_t)n_threads, sizeof *p->th);
    p->args = calloc((size_t)n_threads, sizeof *p->args);
    if (!p->q || !p->th || !p->args) {
        free(p->q); free(p->th); free(p->args); free(p);
        return st_error_set(err, ST_ERR_NOMEM, "prefetch pool: out of memory");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->cap = queue_cap;
    p->cb = *cb;
    p->ctx = ctx;
    p->n_threads = n_threads;
    for (int i = 0; i < n_threads; i++) {
        p->args[i].p = p;
        p->args[i].id = i;
        if (pthread_create(&p->th[i], NULL, worker, &p->args[i]) != 0) {
            st_prefetch_free(p); /* joins the ones started */
            return st_error_set(err, ST_ERR_INTERNAL, "prefetch pool: cannot start thread %d of %d", i + 1, n_threads);
        }
        p->n_started = i + 1;
    }
    *out = p;
    return ST_OK;
}

bool st_prefetch_submit(st_prefetch *p, st_pf_job job) {
    if (!p) return false;
    pthread_mutex_lock(&p->mu);
    if (p->stop || p->count == p->cap) {
        pthread_mutex_unlock(&p->mu);
        return false;
    }
    p->q[(p->head + p->count) % p->cap] = job;
    p->count++;
    atomic_store_explicit(&p->depth, p->count, memory_order_relaxed);
    if (p->count > atomic_load_explicit(&p->peak, memory_order_relaxed))
        atomic_store_explicit(&p->peak, p->count, memory_order_relaxed);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return true;
}

void st_prefetch_wake(st_prefetch *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->gen++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

bool st_prefetch_stopping(const st_prefetch *p) {
    return !p || atomic_load_explicit(&((st_prefetch *)p)->stopping, memory_order_acquire);
}

void st_prefetch_shutdown(st_prefetch *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    if (p->shut) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    p->stop = true;
    atomic_store_explicit(&p->stopping, true, memory_order_release);
    /* Take the queued jobs out. With stop set nobody else touches the ring
     * again (submit refuses, workers leave), so they are handed back to the
     * owner without the pool's lock held. */
    int head = p->head, n = p->count;
    p->count = 0;
    atomic_store_explicit(&p->depth, 0, memory_order_relaxed);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < n; i++) p->cb.cancel(p->ctx, p->q[(head + i) % p->cap]);
    /* workers finish the job in hand (the owner's run may poll stopping) */
    for (int i = 0; i < p->n_started; i++) pthread_join(p->th[i], NULL);
    pthread_mutex_lock(&p->mu);
    p->shut = true;
    pthread_mutex_unlock(&p->mu);
}

void st_prefetch_free(st_prefetch *p) {
    if (!p) return;
    st_prefetch_shutdown(p);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->q);
    free(p->th);
    free(p->args);
    free(p);
}

int st_prefetch_n_threads(const st_prefetch *p) { return p ? p->n_threads : 0; }
int st_prefetch_queue_cap(const st_prefetch *p) { return p ? p->cap : 0; }
int st_prefetch_queue_depth(const st_prefetch *p) {
    return p ? atomic_load_explicit(&((st_prefetch *)p)->depth, memory_order_relaxed) : 0;
}
int st_prefetch_queue_peak(const st_prefetch *p) {
    return p ? atomic_load_explicit(&((st_prefetch *)p)->peak, memory_order_relaxed) : 0;
}

#endif
