/* prefetch.h — the prefetch pool: K worker threads that take load requests
 * from a bounded queue and run them through a callback of the owner (the
 * layer store). The pool knows nothing about layers or files: a job is two
 * integers, and the owner's `run` callback does the work.
 *
 * Shared work: besides jobs, the owner may have work any worker can take a
 * piece of (the store's layer chunks: one layer's load split over several
 * readers). wake() says some appeared; an idle worker then calls `help`
 * until it returns false, checking between pieces for queued jobs, which
 * come first (taking a job is cheap: it only makes more shared work).
 *
 *   submit()   never blocks and never allocates: a full queue (or a pool that
 *              is shutting down) refuses the job and the caller decides
 *   shutdown() stops intake, hands every queued job back through `cancel`,
 *              waits for the jobs in flight, joins every thread; idempotent
 *
 * Lock order: the owner may call submit() with its own lock held; the pool
 * never calls back into the owner with the pool's lock held.
 *
 * Compiled out (every call fails or does nothing) when ST_NO_PREFETCH is
 * defined (CMake: -DSTRATA_PREFETCH=OFF); st_prefetch_available() says which. */
#ifndef ST_PREFETCH_H
#define ST_PREFETCH_H

#include "error.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct st_prefetch st_prefetch;

typedef struct st_pf_job {
    int layer;
    int slot;
} st_pf_job;

typedef struct st_pf_callbacks {
    /* Runs one job on worker `worker` (0..K-1). */
    void (*run)(void *ctx, int worker, st_pf_job job);
    /* A queued job that will never run (shutdown). */
    void (*cancel)(void *ctx, st_pf_job job);
    /* Optional: does one piece of shared work on worker `worker`; false
     * when there was none to take. */
    bool (*help)(void *ctx, int worker);
} st_pf_callbacks;

bool st_prefetch_available(void);

st_status st_prefetch_new(int n_threads, int queue_cap, const st_pf_callbacks *cb, void *ctx, st_prefetch **out,
                          st_error *err);
/* Queues a job; false when the queue is full or the pool is shutting down. */
bool st_prefetch_submit(st_prefetch *p, st_pf_job job);
/* Shared work appeared: idle workers call `help`. Never blocks on work;
 * the owner may call it with its own lock held. */
void st_prefetch_wake(st_prefetch *p);
/* True once shutdown has begun (workers may poll it to abandon long work). */
bool st_prefetch_stopping(const st_prefetch *p);
void st_prefetch_shutdown(st_prefetch *p);
void st_prefetch_free(st_prefetch *p); /* shuts down first if needed */

int st_prefetch_n_threads(const st_prefetch *p);
int st_prefetch_queue_cap(const st_prefetch *p);
/* Jobs queued now (not counting those running), and the most ever queued. */
int st_prefetch_queue_depth(const st_prefetch *p);
int st_prefetch_queue_peak(const st_prefetch *p);

#endif
