/* vk_backend.h — the Vulkan implementation of core's backend interface
 * (core/backend.h). For the engine's hook and the tests; see docs/VULKAN.md. */
#ifndef ST_VK_BACKEND_H
#define ST_VK_BACKEND_H

#include "backend.h"
#include "strata_vk.h"

/* A Vulkan backend for a model's hyper-parameters: n_ctx positions of KV
 * cache (F16, or F32 with kv_f32), batches of up to n_batch tokens, on
 * device `device` (-1: the preferred device). */
st_status st_vk_backend_new(const st_hparams *hp, int n_ctx, int n_batch, bool kv_f32, int device,
                            st_backend **out, st_error *err);

/* Figures of a Vulkan backend (b must be one). */
typedef struct st_vk_backend_figures {
    const char *device;        /* the device's name */
    uint64_t busy_ns;          /* GPU time of all submitted work (timestamp queries; 0 if unsupported) */
    uint64_t submits;          /* command buffers submitted */
    uint64_t vram_used;        /* device memory this process holds on the device */
    uint64_t vram_total;       /* the device's largest device-local heap */
    uint64_t weight_bytes;     /* weights resident on the device (copies + slots) */
    uint64_t uploaded_bytes;   /* bytes copied to the device through staging */
    uint64_t parts_recorded;   /* decode-pass parts recorded for replay (vk_backend.c, "Replay") */
    uint64_t parts_replayed;   /* ... and submitted again without recording */
    uint64_t spec_run;         /* one-token passes queued ahead that ran as queued ("Passes queued ahead") */
    uint64_t spec_cancelled;   /* ... released for another batch, position or submission */
    uint64_t spec_abandoned;   /* ... found not to match a layer or the tail, and run again from there */
    uint64_t chained_layers;   /* layers recorded with the attention chained after Q/K/V (vk_backend.c, "chain") */
} st_vk_backend_figures;
bool st_vk_backend_figures_get(st_backend *b, st_vk_backend_figures *out);
/* Test hook: the counter words (attention merges, chain) that are not 0;
 * every pass leaves them all 0. Releases a pass queued ahead first. */
st_status st_vk_backend_counters(st_backend *b, uint32_t *nonzero, st_error *err);

/* Test hooks: run one kernel on host data through the backend's device
 * (the same pipelines as the forward pass). All return ST_OK or an error. */
/* out[t][r] = dot(W row r, x[t]) for W of type `type` ([nrows] rows of ncols,
 * GGUF bytes), x [n_tok][ncols] floats, activations quantized on the GPU as
 * the forward pass does. */
st_status st_vk_test_matvec(int device, int type, const void *w, int ncols, int nrows, const float *x, int n_tok,
                            float *out, st_error *err);
/* The kernel (pipeline name: "matvec_q4_k", "matmul_s_q4_k",
 * "matmul_cm_q4_k", ...) that rec_matvec uses for a weight of `type` with
 * nrows rows and a batch of n_tok tokens on `device`; NULL if the device
 * cannot be opened. */
const char *st_vk_test_kernel(int device, int type, int nrows, int n_tok);
/* out[t] = rmsnorm(x[t]) * w, w F32 */
st_status st_vk_test_rmsnorm(int device, const float *x, const float *w, int n, int n_tok, float eps, float *out,
                             st_error *err);
/* g = silu(g) * u over n elements, in place */
st_status st_vk_test_swiglu(int device, float *g, const float *u, int n, st_error *err);

/* Microbenchmarks (bench/vk_microbench.c). sec[j]: GPU seconds per mat-vec
 * of types[j] ([rows[j]] x [cols[j]] random bytes, n_tok tokens; copies
 * cycled so that the weights come from device memory, not the cache),
 * averaged over reps. chained: a barrier after every product, each waiting
 * for the one before as in a forward pass; else back to back, independent
 * (what the shader reads when the dispatch gaps overlap). */
st_status st_vk_bench_matvec(int device, int n, const int *types, const int *cols, const int *rows, int n_tok, int reps, bool chained,
                             double *sec, st_error *err);
/* Seconds per read of `bytes` by a compute shader and per device-to-device
 * copy (GPU time), per upload of `bytes` from pageable host memory through
 * the staging path (wall time), and the GB/s of the DMA alone from the
 * pinned staging buffer (GPU time). */
st_status st_vk_bench_copy(int device, uint64_t bytes, int reps, double *read_sec, double *d2d_sec, double *h2d_sec,
                           double *pinned_gbs, st_error *err);

#endif
