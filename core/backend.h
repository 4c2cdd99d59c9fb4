/* backend.h — the compute backend interface (ggml-style struct of function
 * pointers). The CPU backend lives in core/cpu_backend.c, the Vulkan one in
 * gpu/. The engine and the layer store are written once against this.
 *
 * A backend instance belongs to one session: it owns the activations and the
 * KV cache. A forward pass over a batch of tokens is
 *
 *   begin(x, n_tok, pos0)          embeddings of the batch, [n_tok][n_embd]
 *   layer(il, &layer) for il = 0..n_layer-1   (layer acquired from the store)
 *   end(output_norm, output, logits, all)     final norm + LM head
 */
#ifndef ST_BACKEND_H
#define ST_BACKEND_H

#include "error.h"
#include "model.h"
#include <stdbool.h>
#include <stddef.h>

typedef struct st_backend st_backend;

/* A GPU backend's figures for st_stats (see the gpu_* fields there). */
typedef struct st_backend_stats {
    const char *device;
    double busy;            /* fraction of the last second */
    uint64_t busy_ns;
    uint64_t vram_used, vram_budget;
} st_backend_stats;

typedef struct st_backend_ops {
    const char *name;
    /* Layer slots, for the layer store: memory a layer's bytes can be copied
     * into (host memory for the CPU backend, device memory for Vulkan). */
    void *(*slot_alloc)(st_backend *be, size_t bytes);
    void (*slot_free)(st_backend *be, void *slot);
    st_status (*slot_upload)(st_backend *be, void *slot, size_t off, const void *src, size_t n, st_error *err);
    /* Optional (NULL for the CPU): host memory the device copies from
     * directly (pinned), for the store's read buffers, so that a layer goes
     * file -> pinned buffer -> device with one host copy instead of two.
     * slot_upload from such a buffer has finished reading it on return.
     * host_free returns false for memory it did not allocate. */
    void *(*host_alloc)(st_backend *be, size_t bytes);
    bool (*host_free)(st_backend *be, void *p);
    /* Optional (NULL: the store uses slot_upload): slot_upload from a
     * host_alloc buffer that returns once the copy is queued, before the
     * device has read src, so that the store reads the next chunk into its
     * other buffer meanwhile. The bytes are in the slot for every layer()
     * call made after it returns, as with slot_upload. The buffer holding src
     * must not be written, nor freed, before host_wait on it returns. */
    st_status (*slot_upload_async)(st_backend *be, void *slot, size_t off, const void *src, size_t n, st_error *err);
    /* Returns once the device has finished reading host_alloc buffer buf
     * (every slot_upload_async from it); at once when nothing is pending. */
    st_status (*host_wait)(st_backend *be, void *buf, st_error *err);

    st_status (*begin)(st_backend *be, const float *x, int n_tok, int pos0, st_error *err);
    st_status (*layer)(st_backend *be, int il, const st_layer *l, st_error *err);
    /* logits: [n_tok][n_vocab] if all, else [n_vocab] for the last token */
    st_status (*end)(st_backend *be, const st_tensor *out_norm, const st_tensor *out, float *logits, bool all, st_error *err);
    /* Forget KV entries at positions >= n_past. */
    void (*kv_truncate)(st_backend *be, int n_past);
    void (*destroy)(st_backend *be);
    /* Optional (NULL for the CPU): figures for st_session_stats; any thread. */
    void (*stats)(st_backend *be, st_backend_stats *out);
} st_backend_ops;

struct st_backend {
    const st_backend_ops *ops;
};

typedef struct st_threadpool st_threadpool;

/* CPU backend for a model's hyper-parameters, n_ctx positions of KV cache,
 * batches of up to n_batch tokens. */
st_status st_cpu_backend_new(const st_hparams *hp, int n_ctx, int n_batch, bool kv_f32,
                             st_threadpool *tp, st_backend **out, st_error *err);
/* What st_cpu_backend_new allocates for these settings: the KV cache (K and
 * V: 2 x n_layer x n_ctx x n_embd_kv x 2 or 4 bytes) and the activation
 * buffers, in bytes, computed without allocating. */
void st_cpu_backend_bytes(const st_hparams *hp, int n_ctx, int n_batch, bool kv_f32, int n_threads,
                          uint64_t *kv_bytes, uint64_t *buf_bytes);

#endif
