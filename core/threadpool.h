/* threadpool.h — a persistent pool of worker threads for the forward pass.
 *
 * A decode step dispatches a few hundred small parallel jobs per token, so
 * waking threads through a condition variable each time would cost more than
 * the work. Workers spin on a generation counter for a short while after each
 * job and only then sleep; the calling thread takes part in every job. */
#ifndef ST_THREADPOOL_H
#define ST_THREADPOOL_H

#include "error.h"

typedef struct st_threadpool st_threadpool;

/* fn is called with (ctx, task index, thread index) for task = 0..n_tasks-1,
 * spread over the threads; thread index is in [0, n_threads). */
typedef void (*st_task_fn)(void *ctx, int task, int thread);

st_status st_tp_new(int n_threads, st_threadpool **out, st_error *err);
void st_tp_free(st_threadpool *tp);
int st_tp_n_threads(const st_threadpool *tp);
/* Runs all tasks and returns when they are done. Not reentrant. */
void st_tp_run(st_threadpool *tp, st_task_fn fn, void *ctx, int n_tasks);

/* Physical cores of this machine (falls back to online CPUs). */
int st_physical_cores(void);

#endif
