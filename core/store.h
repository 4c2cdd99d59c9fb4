/* store.h — the layer store: which transformer layers are resident, and
 * where. The forward loop asks for each layer with acquire() and gives it
 * back with release(); hint() announces the layers needed next.
 *
 * Two modes:
 *  - mmap (no budget): every layer is used in place from the mmap; acquire is
 *    an index and two relaxed counters, hint and release do nothing, no thread
 *    and no copy exist.
 *  - slots (a budget in layers or bytes): layers are copied from the file into
 *    at most n_slots slots allocated through the backend, each large enough for
 *    the largest layer, and streamed through them. Policy `ring` pins the first
 *    layers and rotates the rest through a few streaming slots in the cyclic
 *    order of the forward pass (0..n-1, then 0 of the next token), prefetching
 *    ahead; policy `lru` evicts the least recently used layer. Loads run on the
 *    prefetch pool (prefetch.h) or, with prefetch off, in acquire.
 *
 * Threading: one thread drives acquire/release/hint (the session's);
 * st_store_get_stats may be called from any thread at any time and takes no
 * lock (every figure is an atomic). See docs/STORE.md. */
#ifndef ST_STORE_H
#define ST_STORE_H

#include "backend.h"
#include "error.h"
#include "model.h"
#include "strata.h"
#include <stdint.h>
#include <sys/types.h>

typedef struct st_store st_store;

/* The one syscall the store's reads go through (default: pread). A test hook
 * to inject delays, errors and short reads: the store's code path is the same,
 * only this call is wrapped. Returns bytes read, 0 at end of file, -1 + errno. */
typedef ssize_t (*st_store_read_fn)(void *ctx, int fd, void *buf, size_t n, uint64_t off);

typedef struct st_store_config {
    int cache_layers;            /* budget in layers; 0 = none */
    uint64_t mem_budget;         /* budget in bytes (slots + fixed tensors); 0 = none */
    st_cache_policy policy;
    int prefetch;                /* ST_PREFETCH_AUTO / ST_PREFETCH_OFF / fixed distance */
    int prefetch_threads;        /* 0 = auto */
    int ring_slots;              /* 0 = auto */
    int queue_cap;               /* prefetch queue; 0 = auto */
    bool direct_io;
    uint32_t chunk_bytes;        /* bytes per chunk, the unit a layer's load is split into
                                    for the readers (rounded up to 4 KiB, at most 64 MiB);
                                    0 = 16 MiB. Small in the tests, to split small layers */
    bool host_slots;             /* slots are host memory: read straight into them
                                    (else through a staging buffer and slot_upload) */
    uint64_t host_cache;         /* device slots: bytes of pinned host memory that keep
                                    streamed layers, read from the file once when the
                                    store is made; their loads are one upload each */
    st_store_read_fn read;       /* NULL = the process default (st_store_set_default_read) */
    void *read_ctx;
} st_store_config;

void st_store_config_default(st_store_config *c);
/* From the session parameters (the engine's path). */
void st_store_config_from_session(st_store_config *c, const st_session_params *p);

/* Test hook: the reader used by stores whose config names none (NULL = pread). */
void st_store_set_default_read(st_store_read_fn fn, void *ctx);

/* What st_store_new would allocate for cfg, computed without allocating
 * (the session's memory check): n_slots slots of slot_bytes each. All zero
 * without a budget (mmap mode). Fails as st_store_new does for a byte budget
 * too small for one slot and the output tensors. */
typedef struct st_store_plan {
    bool budgeted;
    int n_slots;
    uint64_t slot_span;    /* bytes of the largest layer's runs */
    uint64_t slot_bytes;   /* bytes allocated per slot (span, +4 KiB to align host slots) */
    uint64_t fixed_bytes;  /* output tensors counted in a byte budget (used from the mmap) */
} st_store_plan;
st_status st_store_plan_slots(const st_model *m, const st_store_config *cfg, st_store_plan *out, st_error *err);

st_status st_store_new(const st_model *m, st_backend *be, const st_store_config *cfg, st_store **out, st_error *err);
/* Shuts the prefetch pool down (cancels queued reads, waits for the ones in
 * flight, joins the threads), then frees the slots. */
void st_store_free(st_store *s);
/* Returns layer il, resident; NULL with err set (naming the layer, the file
 * and the offset) if it could not be loaded. Every successful acquire must be
 * matched by a release before the layer can be evicted. */
const st_layer *st_store_acquire(st_store *s, int il, st_error *err);
void st_store_release(st_store *s, int il);
/* The layers after il (cyclic) will be needed next: start loading up to n of
 * them that are not resident (n <= 0: the store's own, adaptive, distance).
 * Never blocks on I/O; requests that find the queue full are dropped. */
void st_store_hint(st_store *s, int il, int n);
/* Stops prefetching for good (what st_store_free does first); acquire still
 * works, loading synchronously. Idempotent. */
void st_store_shutdown(st_store *s);
bool st_store_budgeted(const st_store *s);
void st_store_get_stats(const st_store *s, st_store_figures *out);

#endif
