/* vk_backend.c — the llama forward pass on a Vulkan device, implementing
 * core's backend interface (core/backend.h). The math is the CPU backend's
 * (core/cpu_backend.c), kernel for kernel; see docs/VULKAN.md.
 *
 * A forward pass records one command buffer: begin() copies the batch's
 * embeddings and RoPE table (computed on the host exactly as the CPU does)
 * into device buffers, layer() records the block's kernels, end() records the
 * final norm and LM head, submits, waits and copies the logits back.
 *
 * Where weights live. The st_layer handed to layer() points either
 *  - into the mmap (the layer store without a budget): the backend keeps a
 *    device copy of each layer, keyed by its index and checked against the
 *    tensors' host pointers, uploaded through the staging buffer the first
 *    time the layer is used (so the whole model ends up resident); the same
 *    for the output norm and output matrix, keyed by host pointer; or
 *  - into a slot (the layer store with a budget, host_slots = false):
 *    slot_alloc() reserves an address range of the slot's size that is never
 *    mapped (PROT_NONE) and allocates device memory of that size; the store
 *    computes tensor addresses inside that range as if it were memory, and
 *    the backend maps an address back to (device buffer, offset). A layer
 *    read from a slot is submitted at the end of layer() and the slot
 *    remembers that submission (a timeline semaphore value): slot_upload()
 *    makes the copy into the slot wait for it on the GPU, so a slot is never
 *    overwritten while a kernel still reads it.
 *
 * Replay. A one-token (decode) pass records the same commands every time
 * except for its position: the position, the attention's chunking and the
 * attention's group count (an indirect dispatch) come from a small device
 * buffer (dyn) that begin() fills with the embeddings, and the KV cache is
 * bound whole. So the pass is kept as parts (the head: copies in; one per
 * layer; the tail: norm, LM head, logits out), each a command buffer
 * recorded once and submitted again for every token while what it uses is
 * the same (its signature: device buffers and offsets of the weights, the
 * tensors' shapes and types, and a generation count bumped whenever device
 * memory is freed). Recording a pass cost the host about as long as the GPU
 * ran it; replaying costs a signature check per layer and one submission.
 * Layers read from slots (streaming) are recorded every time, as are
 * prompt batches. STRATA_VK_GRAPH=0 turns replay off; the per-dispatch
 * profile (STRATA_VK_PROFILE=1) does too. The parts come in two sets, used
 * by turns, so that the next one-token pass can be queued before the host
 * knows its token (see "Passes queued ahead"; STRATA_VK_SPEC=0 turns that
 * off). */
#define _GNU_SOURCE
#include "vk_backend.h"

#include "model.h"
#include "quant.h"
#include "vk_ctx.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define NCB 16 /* command buffers in rotation */
/* A pass is submitted in pieces of this many layers, so that the GPU starts
 * on the first layers while the host still records the rest (recording a
 * 7B pass's ~500 dispatches takes about as long as running them). */
#define SUBMIT_LAYERS 4
/* Flash-decoding: attention splits the positions of a (head, token) into up
 * to this many chunks of at least ATTN_MIN_CHUNK positions, at most
 * ATTN_PART_BYTES of partial results in all. Short chunks keep the GPU busy
 * at short contexts (32 heads x 1 chunk is 32 workgroups on 132 SMs). */
#define ATTN_MAX_CHUNKS 128
#define ATTN_MIN_CHUNK 32
#define ATTN_DEC_ROUND 128 /* attn_dec.comp's RND: positions a round */
#define ATTN_PART_BYTES ((VkDeviceSize)32 << 20)
/* dyn: the pass's values read by the kernels (uint32 words) */
#define DYN_POS0 0    /* first position of the batch */
#define DYN_CHUNK 1   /* attention positions per chunk */
#define DYN_NCHUNKS 2 /* attention chunks */
#define DYN_IND 4     /* attention's indirect dispatch: heads, tokens, chunks */
#define DYN_WORDS 8
#define GSIG 64       /* words of a part's signature */
enum { SPEC_NONE, SPEC_PENDING, SPEC_LIVE, SPEC_CANCELLED };
#define BUSY_BUCKETS 128          /* of BUSY_BUCKET_NS each: more than a second */
#define BUSY_BUCKET_NS 10000000ull

typedef struct slot_rec {
    uint8_t *va;                /* reserved, never mapped */
    size_t size;
    vk_alloc mem;
    _Atomic uint64_t last_use;  /* timeline value of the last submission reading it */
} slot_rec;

typedef struct layer_copy {
    const void *key[ST_LAYER_N_TENSORS];
    uint64_t bytes;
    vk_alloc mem;
    VkDeviceSize off[ST_LAYER_N_TENSORS];
    bool valid;
} layer_copy;

typedef struct fixed_copy {
    const void *key;
    uint64_t nbytes;
    vk_alloc mem;
} fixed_copy;

/* A recorded part of a decode pass (see "Replay" above). */
typedef struct gpart {
    VkCommandBuffer cb;
    uint64_t sig[GSIG];
    int nsig;
    bool valid;
} gpart;

#define MAX_FIXED 8
#define MAX_PINNED 1024 /* the readers' buffers (2 each) and the host cache's layers */

/* A read buffer of the layer store (host_alloc): pinned memory the
 * transfer queue copies from, with a command buffer and fence of its own,
 * so that every buffer can have a copy in flight (slot_upload_async) while
 * its reader fills the other one. */
typedef struct vk_pin {
    vk_hbuf h;
    VkCommandPool pool;
    VkCommandBuffer cb;
    VkFence fence;
    bool inflight;  /* a copy from it was submitted and not waited for (its one user, the store's reader, keeps this) */
} vk_pin;

typedef struct vk_be {
    st_backend base;
    st_vk_ctx *c;
    st_hparams hp;
    int n_ctx, n_batch, dkv, maxn;
    bool kv_f32;
    size_t kv_elt;

    /* device buffers */
    vk_alloc x, xb, q, k, v, hb, hb2;  /* activations, F32 */
    vk_alloc aq, ad, ab;               /* quantized activations: int8 x4 words, block scales, bsums */
    vk_alloc cs;                       /* [n_batch][n_rot] cos/sin */
    vk_alloc logits;                   /* [n_batch][n_vocab] */
    vk_alloc kc, vc;                   /* [n_layer][n_ctx][dkv] */
    vk_alloc part;                     /* attention chunks: [n_batch][n_head][ATTN_PART_CHUNKS][head_dim + 2] */
    vk_alloc dyn;                      /* the pass's position and attention chunking (DYN_*) */
    vk_alloc cnt;                      /* attention: chunks finished per (head, token), kept at 0 between dispatches;
                                          then two per layer for the chain (Q/K/V workgroups done, attention workgroups past it) */
    uint32_t mv_sig;                   /* while recording a chained Q/K/V: the counter + 1 its workgroups bump */
    uint32_t mv_sig_wgs;               /* ... and the workgroups recorded */
    uint32_t sig_base;                 /* the chain's first counter in cnt (after the heads') */
    _Atomic uint64_t chained;          /* layers recorded chained (figures) */
    bool fuse;                         /* the Q/K/V epilogue on (STRATA_VK_FUSE=0: off) */
    /* host buffers, one pair per part set (see "Passes queued ahead"):
     * [0] for a whole batch, [1] for one token */
    vk_hbuf in[2];                     /* embeddings + RoPE table + dyn */
    vk_hbuf out[2];                    /* logits read-back, then the pass's two timestamps */

    VkCommandPool pool;
    VkCommandBuffer cb[NCB];
    uint64_t cb_value[NCB];            /* timeline value of cb's last submission */
    bool cb_ts[NCB];                   /* timestamps written, not yet read */
    int cur;
    bool recording;
    bool live_ts;                      /* the command buffer being recorded has a start timestamp */
    bool in_pass;                      /* between begin() and end() */
    /* replay (see the top of the file) */
    bool graph_on;                     /* replay one-token passes */
    bool graph;                        /* this pass is assembled from parts */
    gpart *gp;                         /* two sets of n_layer + 2: [0] head, [1 + il] layer il, [n_layer + 1] tail */
    int gs;                            /* the set (and host buffer pair) of the next one-token pass: 0 or 1 */
    int pass_parts;                    /* parts this pass queued (replayed or recorded) */
    bool pass_live;                    /* ... and whether it recorded a command buffer live */
    VkCommandBuffer *pend;             /* parts of the submission being assembled, in order */
    int npend;
    bool gts_pend;                     /* the assembled submission ends a timed part pass */
    bool gts_open;                     /* its query pair 2 * NCB was started, not yet read */
    uint64_t gts_value;                /* the timeline value that completes it */
    int gts_half;                      /* its part set (query pair, host buffer) */
    /* The tails copy their pair into the host buffer (CPU devices:
     * lavapipe's vkGetQueryPoolResults waits for the device to go idle,
     * which a pass queued ahead keeps it from); elsewhere it is read as
     * it was (the copy cost the H100 ~15 us a token) */
    bool ts_copy;
    _Atomic uint64_t gen;              /* bumped when device memory is freed */
    _Atomic uint64_t parts_recorded, parts_replayed;
    VkSemaphore tl;
    uint64_t submitted;
    VkFence fences[2];                 /* for passes waited on (a fence wait is prompt on lavapipe); in turn */
    int fi;
    /* the pass queued ahead (see "Passes queued ahead"); spec becomes
     * SPEC_PENDING or SPEC_CANCELLED only under c->mu_spec (another
     * thread's submission may release it), LIVE and NONE only in the
     * backend's own thread */
    bool spec_on;                      /* STRATA_VK_SPEC=0: never */
    _Atomic int spec;
    VkSemaphore go;                    /* timeline: the host signals it to release the pass */
    uint64_t go_value;
    uint64_t spec_value;               /* the pass's value on tl */
    VkFence spec_fence;
    int spec_pos, spec_next;           /* its position; LIVE: its layers found to match so far */
    uint32_t spec_dyn[DYN_WORDS];
    float *spec_cs;                    /* its RoPE row */
    VkCommandBuffer *spec_cbs;
    _Atomic uint64_t spec_run, spec_cancelled, spec_abandoned;
    uint64_t spin_ns;                  /* how long a pass's wait polls before it sleeps (0: it sleeps at once) */
    bool attn_dec;                     /* one-token passes use attn_dec.comp (where a layer's cache rows allow) */
    uint32_t attn_dec_chunk;           /* ... with chunks of at least this many positions */
    int attn_dec_size;                 /* ... its pipeline for the head row: 0, 1, 2 for 4, 8, 16 vectors */
    bool pass_slots;                   /* this pass reads layers from slots (streaming) */
    VkQueryPool qp;

    int n_tok, pos0;
    int half;                          /* this pass's host buffer pair */
    float *cs_host;

    layer_copy *lc;
    fixed_copy fc[MAX_FIXED];
    int nfc;
    pthread_mutex_t mu_slots;
    slot_rec **slots;
    int nslots, capslots;
    _Atomic int nslots_pub;            /* nslots, for slot_find's check without the lock */
    vk_pin *pinned[MAX_PINNED];        /* the store's read buffers (host_alloc), under mu_slots */
    int npinned;

    _Atomic uint64_t busy_ns, submits, weight_bytes, uploaded;
    /* STRATA_VK_PROFILE: host time per pass from begin() to the final
     * submission, and waiting for it */
    uint64_t t_begin, host_ns, wait_ns, host_passes;
    /* one-token passes replayed whole, from the third on: the host's steps
     * between two passes (STRATA_VK_PROFILE=host): fence seen -> end()
     * returns, -> next begin(), -> submission, the submission, -> fence
     * seen; and the pass's GPU time (timestamps) */
    uint64_t t_fence, t_fence_prev, t_ret, t_sub0, t_sub1, last_gpu, ph[6], ph_n, rec_at_begin;
    /* GPU time per 10 ms of host time, for the busy fraction of the last second */
    pthread_mutex_t mu_busy;
    uint64_t busy_idx[BUSY_BUCKETS], busy_bucket[BUSY_BUCKETS];
} vk_be;

/* ------------------------------------------------------------ commands */

static st_status vkerr(VkResult r, const char *what, st_error *err) {
    if (r == VK_SUCCESS) return ST_OK;
    return st_error_set(err, ST_ERR_INTERNAL, "vulkan: %s failed (%s)", what, vk_result_str(r));
}

static st_status wait_value(vk_be *be, uint64_t v, st_error *err) {
    if (v == 0) return ST_OK;
    VkSemaphoreWaitInfo wi = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_WAIT_INFO, .semaphoreCount = 1, .pSemaphores = &be->tl, .pValues = &v};
    return vkerr(vkWaitSemaphores(be->c->dev, &wi, UINT64_MAX), "vkWaitSemaphores", err);
}

/* Books dur ns of GPU time that ended about now: spread backwards over the
 * 10 ms buckets it covered. */
static void busy_add(vk_be *be, uint64_t dur) {
    uint64_t now = st_now_ns();
    atomic_fetch_add(&be->busy_ns, dur);
    pthread_mutex_lock(&be->mu_busy);
    uint64_t idx = now / BUSY_BUCKET_NS, end = now;
    for (int n = 0; dur > 0 && n < BUSY_BUCKETS; n++, idx--) {
        uint64_t start = idx * BUSY_BUCKET_NS, part = end - start;
        if (part > dur) part = dur;
        int b = (int)(idx % BUSY_BUCKETS);
        if (be->busy_idx[b] != idx) {
            be->busy_idx[b] = idx;
            be->busy_bucket[b] = 0;
        }
        be->busy_bucket[b] += part;
        dur -= part;
        end = start;
    }
    pthread_mutex_unlock(&be->mu_busy);
}

/* Where host buffer pair h's logits hold n_tok rows, and the timestamps
 * after them; the embeddings, RoPE rows and dyn words in in[h]. */
static int half_cap(const vk_be *be, int h) { return h ? 1 : be->n_batch; }
static size_t ts_at(const vk_be *be, int h) { return ((size_t)half_cap(be, h) * be->hp.n_vocab * sizeof(float) + 15) & ~(size_t)15; }
static size_t cs_at(const vk_be *be, int h) { return (size_t)half_cap(be, h) * be->hp.n_embd * sizeof(float); }
static size_t dyn_at(const vk_be *be, int h) {
    return (cs_at(be, h) + (size_t)half_cap(be, h) * be->hp.n_rot * sizeof(float) + 15) & ~(size_t)15;
}

/* Adds the GPU time of finished command buffers to busy_ns. */
static void collect_ts(vk_be *be) {
    if (!be->qp) return;
    uint64_t done = 0;
    vkGetSemaphoreCounterValue(be->c->dev, be->tl, &done);
    /* lavapipe's vkGetQueryPoolResults waits for the device to go idle,
     * which a pass queued ahead keeps it from: there (ts_copy) those
     * results wait */
    bool held = false;
    if (be->ts_copy) {
        pthread_mutex_lock(&be->c->mu_spec);
        held = be->c->spec_owner != NULL;
        pthread_mutex_unlock(&be->c->mu_spec);
    }
    for (int i = 0; i < NCB && !held; i++) {
        if (!be->cb_ts[i] || be->cb_value[i] > done) continue;
        uint64_t t[2];
        if (vkGetQueryPoolResults(be->c->dev, be->qp, (uint32_t)(2 * i), 2, sizeof t, t, sizeof t[0], VK_QUERY_RESULT_64_BIT) == VK_SUCCESS &&
            t[1] >= t[0])
            busy_add(be, (uint64_t)((double)(t[1] - t[0]) * be->c->ts_period));
        be->cb_ts[i] = false;
    }
    /* a pass from parts: pair 2 * NCB + 2 * h (a pair per part set, so that
     * a pass queued ahead does not reset the one read here), read where
     * its tail copied it on a CPU device (see ts_copy) */
    if (be->gts_open && be->gts_value && be->gts_value <= done) {
        uint64_t t[2] = {1, 0};
        int h = be->gts_half;
        if (be->ts_copy) memcpy(t, (const uint8_t *)be->out[h].map + ts_at(be, h), sizeof t);
        else if (vkGetQueryPoolResults(be->c->dev, be->qp, (uint32_t)(2 * NCB + 2 * h), 2, sizeof t, t, sizeof t[0], VK_QUERY_RESULT_64_BIT) != VK_SUCCESS)
            t[0] = 1, t[1] = 0;
        if (t[1] >= t[0]) {
            be->last_gpu = (uint64_t)((double)(t[1] - t[0]) * be->c->ts_period);
            busy_add(be, be->last_gpu);
        }
        be->gts_open = false;
        be->gts_value = 0;
    }
}

static st_status cb_begin(vk_be *be, st_error *err) {
    if (be->recording) return ST_OK;
    st_status rc = wait_value(be, be->cb_value[be->cur], err);
    if (rc) return rc;
    collect_ts(be);
    VkCommandBuffer cb = be->cb[be->cur];
    if ((rc = vkerr(vkResetCommandBuffer(cb, 0), "vkResetCommandBuffer", err))) return rc;
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO, .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    if ((rc = vkerr(vkBeginCommandBuffer(cb, &bi), "vkBeginCommandBuffer", err))) return rc;
    /* A command buffer recorded live is timed on its own. In a pass
     * assembled from parts, the head and tail time the whole pass, but only
     * when it is one submission: a live one in between (a layer read from
     * a slot) means the GPU may wait between submissions, so the pass's
     * interval is dropped and its live parts are timed instead. */
    be->live_ts = be->qp != VK_NULL_HANDLE;
    if (be->graph) be->gts_open = false;
    if (be->live_ts) {
        vkCmdResetQueryPool(cb, be->qp, (uint32_t)(2 * be->cur), 2);
        vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, be->qp, (uint32_t)(2 * be->cur));
    }
    vk_prof_start(be->c, cb);
    be->recording = true;
    be->pass_live = true;
    return ST_OK;
}

/* A pass queued ahead that another submission released (spec_release) has
 * been taken care of: later waits include it. Under c->mu_spec. */
static void spec_pickup(vk_be *be) {
    if (be->spec != SPEC_CANCELLED) return;
    be->submitted = be->spec_value;
    be->spec = SPEC_NONE;
}

/* The next fence for a pass waited on: the one before it was waited for. */
static VkFence next_fence(vk_be *be) {
    be->fi ^= 1;
    vkResetFences(be->c->dev, 1, &be->fences[be->fi]);
    return be->fences[be->fi];
}

/* Waits for the pass submitted with fence f. */
static st_status pass_wait(vk_be *be, VkFence f, st_error *err) {
    st_vk_ctx *c = be->c;
    /* Poll first: a thread asleep in the fence wait wakes tens of
     * microseconds after the GPU finishes and then runs the next token's
     * host work slowly, on a core gone cold (H200, tinyllama Q4_K_M
     * decode: 810-829 vs 751-765 tok/s). One-token passes only, up to
     * spin_ns, and not while layers stream (the store's readers need the
     * cores); prompts sleep at once. */
    bool spin = be->spin_ns && be->graph && !be->pass_slots;
    uint64_t t0 = spin ? st_now_ns() : 0;
    while (spin && vkGetFenceStatus(c->dev, f) == VK_NOT_READY && st_now_ns() - t0 < be->spin_ns) {}
    st_status rc = vkerr(vkWaitForFences(c->dev, 1, &f, VK_TRUE, UINT64_MAX), "vkWaitForFences", err);
    if (c->prof_host) be->t_fence = st_now_ns();
    collect_ts(be);
    if (!rc) vk_prof_collect(c);
    return rc;
}

/* One batch of n command buffers on the compute queue, signalling tl at
 * be->submitted + 1 (*sig) and fence f: after the uploads made so far and,
 * for a pass queued ahead (go != 0), after the pass before it and the
 * host's signal of `go` at value go. The caller holds the queue's claim
 * (vk_queue_claim). */
static VkResult queue_batch(vk_be *be, const VkCommandBuffer *cbs, int n, uint64_t go, VkFence f, uint64_t *sig) {
    st_vk_ctx *c = be->c;
    uint64_t up = atomic_load(&c->up_value);
    VkSemaphore sems[3];
    uint64_t vals[3];
    VkPipelineStageFlags stages[3];
    uint32_t nw = 0;
    if (up) {
        sems[nw] = c->up_sem, vals[nw] = up;
        stages[nw++] = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    }
    if (go) {
        sems[nw] = be->tl, vals[nw] = be->submitted, stages[nw++] = VK_PIPELINE_STAGE_ALL_COMMANDS_BIT;
        sems[nw] = be->go, vals[nw] = go, stages[nw++] = VK_PIPELINE_STAGE_ALL_COMMANDS_BIT;
    }
    *sig = be->submitted + 1;
    VkTimelineSemaphoreSubmitInfo ts = {.sType = VK_STRUCTURE_TYPE_TIMELINE_SEMAPHORE_SUBMIT_INFO,
                                        .waitSemaphoreValueCount = nw,
                                        .pWaitSemaphoreValues = vals,
                                        .signalSemaphoreValueCount = 1,
                                        .pSignalSemaphoreValues = sig};
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                       .pNext = &ts,
                       .waitSemaphoreCount = nw,
                       .pWaitSemaphores = sems,
                       .pWaitDstStageMask = stages,
                       .commandBufferCount = (uint32_t)n,
                       .pCommandBuffers = cbs,
                       .signalSemaphoreCount = 1,
                       .pSignalSemaphores = &be->tl};
    pthread_mutex_lock(&c->mu_qc);
    VkResult r = vkQueueSubmit(c->q_compute, 1, &si, f);
    pthread_mutex_unlock(&c->mu_qc);
    return r;
}

/* Ends the command buffer being recorded and submits it after the parts
 * assembled before it (one submission, in order; it waits on the GPU for
 * the uploads made so far), with fence f (none: VK_NULL_HANDLE). */
static st_status cb_submit_f(vk_be *be, VkFence f, st_error *err) {
    st_vk_ctx *c = be->c;
    st_status rc;
    int ring = -1;
    if (be->recording) {
        VkCommandBuffer cb = be->cb[be->cur];
        if (be->live_ts) vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, be->qp, (uint32_t)(2 * be->cur + 1));
        be->recording = false;
        if ((rc = vkerr(vkEndCommandBuffer(cb), "vkEndCommandBuffer", err))) return rc;
        ring = be->cur;
        be->pend[be->npend++] = cb;
    }
    if (be->npend == 0) return ST_OK;
    if (c->prof_host && f) be->t_sub0 = st_now_ns();
    vk_queue_claim(c); /* releases a pass queued ahead (this backend's too) */
    spec_pickup(be);
    uint64_t sig;
    VkResult r = queue_batch(be, be->pend, be->npend, 0, f, &sig);
    vk_queue_unclaim(c);
    if (c->prof_host && f) be->t_sub1 = st_now_ns();
    be->npend = 0;
    if ((rc = vkerr(r, "vkQueueSubmit", err))) return rc;
    be->submitted = sig;
    if (ring >= 0) {
        be->cb_value[ring] = sig;
        be->cb_ts[ring] = be->live_ts;
        be->cur = (be->cur + 1) % NCB;
    }
    if (be->gts_pend) {
        be->gts_pend = false;
        be->gts_value = sig;
        be->gts_half = be->half;
    }
    atomic_fetch_add(&be->submits, 1);
    return ST_OK;
}

/* The same; with wait, until it has run. */
static st_status cb_submit(vk_be *be, bool wait, st_error *err) {
    if (be->npend == 0 && !be->recording) return wait ? wait_value(be, be->submitted, err) : ST_OK;
    VkFence f = wait ? next_fence(be) : VK_NULL_HANDLE;
    st_status rc = cb_submit_f(be, f, err);
    return rc || !wait ? rc : pass_wait(be, f, err);
}

/* Replay: starts recording part g (after submitting whatever is being
 * recorded live, so that the order holds); *cb receives its command
 * buffer. */
static st_status part_begin(vk_be *be, gpart *g, VkCommandBuffer *cb, st_error *err) {
    st_status rc;
    if (be->recording && (rc = cb_submit(be, false, err))) return rc;
    g->valid = false;
    if (!g->cb) {
        VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                           .commandPool = be->pool,
                                           .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                           .commandBufferCount = 1};
        if ((rc = vkerr(vkAllocateCommandBuffers(be->c->dev, &cai, &g->cb), "vkAllocateCommandBuffers", err))) return rc;
    }
    if ((rc = vkerr(vkResetCommandBuffer(g->cb, 0), "vkResetCommandBuffer", err))) return rc;
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    if ((rc = vkerr(vkBeginCommandBuffer(g->cb, &bi), "vkBeginCommandBuffer", err))) return rc;
    *cb = g->cb;
    return ST_OK;
}

/* Ends part g's recording (rc: how recording went; a failed part stays
 * invalid) and remembers its signature. */
static st_status part_end(vk_be *be, gpart *g, const uint64_t *sig, int nsig, st_status rc, st_error *err) {
    st_status e = vkerr(vkEndCommandBuffer(g->cb), "vkEndCommandBuffer", rc ? NULL : err);
    if (rc) return rc;
    if (e) return e;
    memcpy(g->sig, sig, (size_t)nsig * sizeof *sig);
    g->nsig = nsig;
    g->valid = true;
    be->pend[be->npend++] = g->cb;
    be->pass_parts++;
    atomic_fetch_add(&be->parts_recorded, 1);
    return ST_OK;
}

/* Replay: whether part g was recorded with this signature; if so, it is
 * queued for the next submission (after submitting whatever is being
 * recorded live). */
static st_status part_reuse(vk_be *be, gpart *g, const uint64_t *sig, int nsig, bool *reused, st_error *err) {
    *reused = g->valid && g->nsig == nsig && memcmp(g->sig, sig, (size_t)nsig * sizeof *sig) == 0;
    if (!*reused) return ST_OK;
    st_status rc;
    if (be->recording && (rc = cb_submit(be, false, err))) return rc;
    be->pend[be->npend++] = g->cb;
    be->pass_parts++;
    atomic_fetch_add(&be->parts_replayed, 1);
    return ST_OK;
}

/* ------------------------------------------------------------ weights */

static slot_rec *slot_find(vk_be *be, const void *p) {
    slot_rec *r = NULL;
    /* (a store without a budget has none: no lock per layer and token; a
     * slot is created before any tensor that points into it exists) */
    if (atomic_load_explicit(&be->nslots_pub, memory_order_acquire) == 0) return NULL;
    pthread_mutex_lock(&be->mu_slots);
    for (int i = 0; i < be->nslots; i++)
        if ((const uint8_t *)p >= be->slots[i]->va && (const uint8_t *)p < be->slots[i]->va + be->slots[i]->size) {
            r = be->slots[i];
            break;
        }
    pthread_mutex_unlock(&be->mu_slots);
    return r;
}

/* A weight on the device: buffer range + offset of the tensor's first byte. */
typedef struct {
    const vk_alloc *mem;
    VkDeviceSize off;
    slot_rec *slot;  /* set when it lives in a slot */
} dev_tensor;

static bool type_ok(st_type t) {
    switch (t) {
    case ST_TYPE_F32: case ST_TYPE_F16: case ST_TYPE_Q4_0: case ST_TYPE_Q8_0:
    case ST_TYPE_Q4_K: case ST_TYPE_Q5_K: case ST_TYPE_Q6_K:
        return true;
    default:
        return false;
    }
}

static st_status check_type(const st_tensor *t, bool norm, const char *what, st_error *err) {
    if (norm ? (t->type == ST_TYPE_F32 || t->type == ST_TYPE_F16) : type_ok(t->type)) return ST_OK;
    return st_error_set(err, ST_ERR_UNSUPPORTED,
                        "vulkan backend: %s has type %s, which it cannot compute with yet (%s); use --backend cpu",
                        what, st_type_name(t->type) ? st_type_name(t->type) : "?",
                        norm ? "norms: F32 F16" : "supported: F32 F16 Q4_0 Q8_0 Q4_K Q5_K Q6_K");
}

static st_status fixed_tensor(vk_be *be, const st_tensor *t, dev_tensor *out, st_error *err) {
    slot_rec *s = slot_find(be, t->data);
    if (s) {
        *out = (dev_tensor){&s->mem, (VkDeviceSize)((const uint8_t *)t->data - s->va), s};
        return ST_OK;
    }
    for (int i = 0; i < be->nfc; i++)
        if (be->fc[i].key == t->data && be->fc[i].nbytes == t->nbytes) {
            *out = (dev_tensor){&be->fc[i].mem, 0, NULL};
            return ST_OK;
        }
    if (be->nfc == MAX_FIXED) return st_error_set(err, ST_ERR_INTERNAL, "vulkan backend: too many output tensors");
    fixed_copy *f = &be->fc[be->nfc];
    st_status rc = vk_alloc_dev(be->c, t->nbytes, &f->mem, err);
    if (!rc) rc = vk_upload(be->c, &f->mem, 0, t->data, t->nbytes, VK_NULL_HANDLE, 0, err);
    if (rc) {
        vk_free_dev(be->c, &f->mem);
        return rc;
    }
    f->key = t->data;
    f->nbytes = t->nbytes;
    be->nfc++;
    atomic_fetch_add(&be->weight_bytes, t->nbytes);
    atomic_fetch_add(&be->uploaded, t->nbytes);
    *out = (dev_tensor){&f->mem, 0, NULL};
    return ST_OK;
}

/* The device copies of layer il's tensors (from its slot, or its resident
 * copy, uploaded now if missing or stale). */
static st_status layer_tensors(vk_be *be, int il, const st_layer *L, dev_tensor dt[ST_LAYER_N_TENSORS], st_error *err) {
    slot_rec *s = slot_find(be, L->wq.data);
    if (s) {
        for (int k = 0; k < ST_LAYER_N_TENSORS; k++) {
            const st_tensor *t = st_layer_tensor((st_layer *)L, k);
            if ((const uint8_t *)t->data < s->va || (const uint8_t *)t->data + t->nbytes > s->va + s->size)
                return st_error_set(err, ST_ERR_INTERNAL, "vulkan backend: layer %d: tensor %d lies outside its slot", il, k);
            dt[k] = (dev_tensor){&s->mem, (VkDeviceSize)((const uint8_t *)t->data - s->va), s};
        }
        return ST_OK;
    }
    layer_copy *lc = &be->lc[il];
    bool same = lc->valid;
    for (int k = 0; k < ST_LAYER_N_TENSORS && same; k++) same = lc->key[k] == st_layer_tensor((st_layer *)L, k)->data;
    if (!same) {
        if (lc->valid) {
            st_status rc = cb_submit(be, true, err); /* the old copy may be in use */
            if (rc) return rc;
            atomic_fetch_sub(&be->weight_bytes, lc->bytes);
            vk_free_dev(be->c, &lc->mem);
            atomic_fetch_add(&be->gen, 1); /* recorded parts may name it */
            lc->valid = false;
        }
        VkDeviceSize total = 0;
        for (int k = 0; k < ST_LAYER_N_TENSORS; k++) {
            lc->off[k] = total;
            total += (st_layer_tensor((st_layer *)L, k)->nbytes + 255) & ~(VkDeviceSize)255;
        }
        st_status rc = vk_alloc_dev(be->c, total, &lc->mem, err);
        lc->bytes = 0;
        for (int k = 0; k < ST_LAYER_N_TENSORS && !rc; k++) {
            const st_tensor *t = st_layer_tensor((st_layer *)L, k);
            rc = vk_upload(be->c, &lc->mem, lc->off[k], t->data, t->nbytes, VK_NULL_HANDLE, 0, err);
            if (!rc) {
                atomic_fetch_add(&be->uploaded, t->nbytes);
                atomic_fetch_add(&be->weight_bytes, t->nbytes);
                lc->bytes += t->nbytes;
            }
        }
        if (rc) {
            atomic_fetch_sub(&be->weight_bytes, lc->bytes);
            vk_free_dev(be->c, &lc->mem);
            return rc;
        }
        for (int k = 0; k < ST_LAYER_N_TENSORS; k++) lc->key[k] = st_layer_tensor((st_layer *)L, k)->data;
        lc->valid = true;
    }
    for (int k = 0; k < ST_LAYER_N_TENSORS; k++) dt[k] = (dev_tensor){&lc->mem, lc->off[k], NULL};
    return ST_OK;
}

/* ------------------------------------------------------------ kernels */

static st_status pipe(vk_be *be, vk_pipe_id id, VkPipeline *p, st_error *err) {
    *p = vk_pipeline(be->c, id, err);
    return *p ? ST_OK : (err && err->code ? err->code : ST_ERR_INTERNAL);
}

static uint32_t groups(const vk_be *be, uint64_t invocations) {
    return (uint32_t)((invocations + be->c->wg - 1) / be->c->wg);
}

/* How act.comp quantizes activations for weights of type wt: 0 to Q8_0, 1
 * to Q8_K, 2 not at all (float weights). */
static uint32_t act_kind(st_type wt) {
    if (wt == ST_TYPE_F32 || wt == ST_TYPE_F16) return 2;
    return st_type_traits_get(wt)->vec_dot_type == ST_TYPE_Q8_K ? 1 : 0;
}

/* One act.comp dispatch over n_rows rows of n: mode 0 copies xin, 1 applies
 * RMSNorm with weight w (F32/F16), 2 SwiGLU of xin (gate) and u; the floats
 * go to out, the quantized activations (kind) to aq/ad/ab. */
static st_status rec_act(vk_be *be, VkCommandBuffer cb, uint32_t mode, const vk_alloc *xin, uint32_t x_off, uint32_t n,
                         const dev_tensor *w, st_type wt, const vk_alloc *u, const vk_alloc *out, uint32_t kind, int n_rows,
                         bool wide, st_error *err) {
    VkPipeline p;
    /* wide: where a prologue would run but the prologues are off
     * (STRATA_VK_FUSE=0, for comparisons), act runs as the prologue would,
     * bit for bit */
    st_status rc = pipe(be, wide ? VKP_ACT_W : VKP_ACT, &p, err);
    if (rc) return rc;
    uint32_t w_off = 0;
    vk_bind wb = vk_bind_all(xin);
    if (mode == 1) wb = vk_bind_range(be->c, w->mem, w->off, (VkDeviceSize)n * (wt == ST_TYPE_F32 ? 4 : 2), &w_off);
    if (mode == 2) wb = vk_bind_all(u);
    vk_bind b[6] = {vk_bind_all(xin), wb, vk_bind_all(out), vk_bind_all(&be->aq), vk_bind_all(&be->ad), vk_bind_all(&be->ab)};
    struct { uint32_t n, x_off, x_stride, w_off, w_type, o_off, o_stride, mode, kind; float eps; } pc = {
        n, x_off, n, w_off, wt == ST_TYPE_F16 ? 1u : 0u, 0, n, mode, kind, be->hp.rms_eps};
    uint32_t per = (wide ? be->c->mv_wg : be->c->wg) * 16;  /* elements per workgroup */
    vk_dispatch(be->c, cb, p, b, 6, &pc, sizeof pc, (n + per - 1) / per, (uint32_t)n_rows, 1);
    return ST_OK;
}

/* RMSNorm of n_rows rows of x (from x_off) into xb, quantized for weights of type next */
static st_status rec_rmsnorm(vk_be *be, VkCommandBuffer cb, uint32_t x_off, const dev_tensor *w, st_type wt, st_type next, int n_rows,
                             bool wide, st_error *err) {
    return rec_act(be, cb, 1, &be->x, x_off, (uint32_t)be->hp.n_embd, w, wt, NULL, &be->xb, act_kind(next), n_rows, wide, err);
}

/* Quantizes n_rows rows of n floats of `in` to the activation type of weight
 * type wt (nothing to do for float weights). */
static st_status rec_quantize(vk_be *be, VkCommandBuffer cb, st_type wt, const vk_alloc *in, uint32_t n, int n_rows, bool wide,
                              st_error *err) {
    if (act_kind(wt) == 2) return ST_OK;
    return rec_act(be, cb, 0, in, 0, n, NULL, ST_TYPE_F32, NULL, in, act_kind(wt), n_rows, wide, err);
}

static vk_pipe_id matvec_pipe(st_type t) {
    switch (t) {
    case ST_TYPE_F32: return VKP_MATVEC_F32;
    case ST_TYPE_F16: return VKP_MATVEC_F16;
    case ST_TYPE_Q4_0: return VKP_MATVEC_Q4_0;
    case ST_TYPE_Q8_0: return VKP_MATVEC_Q8_0;
    case ST_TYPE_Q4_K: return VKP_MATVEC_Q4_K;
    case ST_TYPE_Q5_K: return VKP_MATVEC_Q5_K;
    default: return VKP_MATVEC_Q6_K;
    }
}

/* o[t][r] (+)= dot(W row r, activations of token t) for t < n_tok. For float
 * weights the activations are the floats of xin (rows of ncols), for
 * quantized ones what rec_quantize left. o rows are o_stride apart. */
/* Rows of one workgroup of matvec.comp: WG / LANES groups (WG = mv_wg;
 * LANES = the subgroup size with subgroup arithmetic, else the workgroup)
 * of NR rows (vk_mv_nr by type for the quantized types, 1 for F32/F16; the shader's
 * NR). */
/* The mat-vec types that run with workgroups of mv_wg (the others with
 * wg): vk_ctx.c, vk_mv_wide */
static bool mv_wide(st_type t) { return vk_mv_wide((int)matvec_pipe(t) - VKP_MATVEC_F32); }

static uint32_t matvec_nr(const vk_be *be, st_type t) {
    return (t == ST_TYPE_F32 || t == ST_TYPE_F16) ? 1 : vk_mv_nr(be->c, (int)matvec_pipe(t) - VKP_MATVEC_F32);
}

static uint32_t matvec_rows(const vk_be *be, st_type t) {
    const st_vk_ctx *c = be->c;
    uint32_t wg = mv_wide(t) ? c->mv_wg : c->wg;
    uint32_t lanes = c->subgroup_arith ? c->subgroup_size : wg;
    return (wg / lanes) * matvec_nr(be, t);
}

/* Prompt batches of at least c->mm_min_tok tokens use matmul.comp: the
 * large tiles from half a large tile's tokens on (the cooperative-matrix
 * kernel instead where enabled, not for F32 weights: its small tiles for
 * products of at most 256 rows, whose large tiles would leave most of the
 * GPU idle), else the small ones (where they fit the device). -1: the
 * mat-vec kernel. */
static int matmul_variant(const st_vk_ctx *c, st_type t, int64_t nrows, int n_tok) {
    if (c->mm_min_tok == 0 || n_tok < (int)c->mm_min_tok) return -1;
    if (c->coopmat && t != ST_TYPE_F32 && n_tok >= (int)(c->mm[VK_MM_CM].bn / 2))
        return nrows <= 256 && c->mm[VK_MM_CM_S].ok ? VK_MM_CM_S : VK_MM_CM;
    if (c->mm[VK_MM_LARGE].ok && (n_tok >= (int)(c->mm[VK_MM_LARGE].bn / 2) || !c->mm[VK_MM_SMALL].ok)) return VK_MM_LARGE;
    return c->mm[VK_MM_SMALL].ok ? VK_MM_SMALL : -1;
}

static vk_pipe_id matmul_pipe(st_type t, int variant) {
    int base = variant == VK_MM_SMALL  ? VKP_MATMUL_S_F32
               : variant == VK_MM_CM   ? VKP_MATMUL_CM_F32
               : variant == VK_MM_CM_S ? VKP_MATMUL_CMS_F32
                                       : VKP_MATMUL_F32;
    return (vk_pipe_id)(base + (int)matvec_pipe(t) - VKP_MATVEC_F32);
}

/* matvec.comp's push constants (matmul.comp reads the first 11) */
typedef struct {
    uint32_t n, nrows, w_off, row_bytes, x_off, x_stride, o_off, o_stride, add, gx, n_tok;
    uint32_t g1, g2, nrows1, nrows2, w_off1, w_off2, o_off1, o_off2, o_stride1, o_stride2;
    uint32_t e0, e1, e2, e3;
    uint32_t pro, pro_w_off, pro_w_type;
    float pro_eps;
    uint32_t n_groups, g_stride;
    uint32_t sig; /* 0, or the counter + 1 each workgroup bumps when done (chain) */
} mv_push;

/* A mat-vec prologue (matvec.comp; mode 0: none): act's step computed by
 * every workgroup from the floats of src (from element src_off) into
 * shared memory; mode 1 copies, 2 RMSNorm with weight w (F32/F16, w_off
 * bytes into its binding), 3 SwiGLU with u = w (w_off floats). */
typedef struct {
    uint32_t mode;
    vk_bind src, w;
    uint32_t src_off, w_off, w_type;
    uint32_t groups;  /* workgroups at most (0: c->mv_pro_groups), for products that run side by side */
} mv_pro;

/* A mat-vec epilogue (matvec.comp's EPI; epi 0: none): the buffers of
 * bindings 5-7 and the e* push constants. */
typedef struct {
    int epi;
    vk_bind b5, b6, b7;
    uint32_t e0, e1, e2, e3;
} mv_epi;

/* The grid of a mat-vec dispatch of `total` row groups: one workgroup per
 * group, or where a prologue runs at most c->mv_pro_groups workgroups,
 * each computing every g_stride-th group after one prologue (matvec.comp);
 * c->mv_groups caps the others the same way (0: no cap). */
static void mv_grid(const vk_be *be, uint32_t total, const mv_pro *pr, mv_push *pc, uint32_t *gx, uint32_t *gy) {
    uint32_t cap = pr && pr->mode ? (pr->groups ? pr->groups : be->c->mv_pro_groups) : be->c->mv_groups;
    uint32_t n = cap && total > cap ? cap : total;
    vk_grid(be->c, n, gx, gy);
    pc->gx = *gx;
    pc->n_groups = total;
    pc->g_stride = *gx * *gy;
}

static vk_pipe_id matvec_epi_pipe(st_type t, int epi, const mv_pro *pr) {
    int k = (int)matvec_pipe(t) - VKP_MATVEC_F32;
    if (pr && pr->mode) return (vk_pipe_id)((epi ? VKP_MATVEC_PE1_F32 : VKP_MATVEC_P_F32) + k);
    return epi ? (vk_pipe_id)(VKP_MATVEC_E1_F32 + k) : matvec_pipe(t);
}

/* Bindings 1-3 and the push constants of a prologue */
static void mv_pro_set(vk_be *be, vk_bind *b, const mv_pro *pr, mv_push *pc) {
    if (!pr || !pr->mode) return;
    b[1] = pr->src;
    b[2] = pr->w;
    b[3] = pr->src;
    pc->x_off = pr->src_off;
    pc->pro = pr->mode;
    pc->pro_w_off = pr->w_off;
    pc->pro_w_type = pr->w_type;
    pc->pro_eps = be->hp.rms_eps;
}

/* Whether a prologue can feed a product of weight type t over rows of n:
 * quantized weights (float ones read the floats act writes), a row that
 * fits the prologue's shared memory, one token (shared memory holds one
 * row). */
static bool pro_fits(const vk_be *be, uint32_t mode, st_type t, uint32_t n, int n_tok) {
    return n_tok == 1 && (be->c->pro_modes & mode) && be->c->pro_n && n <= be->c->pro_n && n <= be->c->pro_maxn && n % 32 == 0 && mv_wide(t);
}

static bool pro_ok(const vk_be *be, uint32_t mode, st_type t, uint32_t n, int n_tok) {
    return be->fuse && pro_fits(be, mode, t, n, n_tok);
}

/* Bindings 5-8 of a mat-vec dispatch: the epilogue's, else the outputs
 * again (bindings the shader declares must be bound). */
static void mv_binds(vk_be *be, vk_bind *b, const vk_bind *o1, const vk_bind *o2, const mv_epi *e, mv_push *pc) {
    if (e && e->epi) {
        b[5] = e->b5;
        b[6] = e->b6;
        b[7] = e->b7;
        pc->e0 = e->e0;
        pc->e1 = e->e1;
        pc->e2 = e->e2;
        pc->e3 = e->e3;
    } else {
        b[5] = *o1;
        b[6] = *o2;
        b[7] = vk_bind_all(&be->cs);
    }
    b[8] = vk_bind_all(&be->dyn);
    b[9] = vk_bind_all(&be->cnt);
    pc->sig = be->mv_sig;
}

static st_status rec_matvec_e(vk_be *be, VkCommandBuffer cb, const st_tensor *w, const dev_tensor *dw, const vk_alloc *xin,
                              const vk_bind *ob, uint32_t o_off, uint32_t o_stride, bool add, int n_tok, bool bar,
                              const mv_epi *e, const mv_pro *pr, st_error *err) {
    int v = matmul_variant(be->c, w->type, w->ne1, n_tok);
    if (v >= 0) pr = NULL;
    VkPipeline p;
    st_status rc = pipe(be, v >= 0 ? matmul_pipe(w->type, v) : matvec_epi_pipe(w->type, e ? e->epi : 0, pr), &p, err);
    if (rc) return rc;
    uint32_t skip;
    vk_bind wb = vk_bind_range(be->c, dw->mem, dw->off, w->nbytes, &skip);
    if (wb.range > be->c->ssbo_range)
        return st_error_set(err, ST_ERR_UNSUPPORTED, "vulkan backend: a %.1f MiB weight exceeds the device's storage buffer range (%.1f MiB)",
                            w->nbytes / 1048576.0, be->c->ssbo_range / 1048576.0);
    bool flt = w->type == ST_TYPE_F32 || w->type == ST_TYPE_F16;
    /* bindings 5 and 6: matvec's second and third outputs (unused here) */
    vk_bind b[10] = {wb, vk_bind_all(flt ? xin : &be->aq), vk_bind_all(&be->ad), vk_bind_all(&be->ab), *ob};
    if ((w->type == ST_TYPE_Q4_K || w->type == ST_TYPE_Q5_K) && (skip % 16 || w->row_bytes % 16))
        return st_error_set(err, ST_ERR_UNSUPPORTED, "vulkan backend: a %s weight is not 16-byte aligned on the device (the file's alignment is below 16)",
                            st_type_name(w->type));
    uint32_t gx, gy, gz = (uint32_t)n_tok, rpw = matvec_rows(be, w->type);
    if (v >= 0) { /* a prompt batch: tiles of bm rows x bn tokens */
        rpw = be->c->mm[v].bm;
        gz = ((uint32_t)n_tok + be->c->mm[v].bn - 1) / be->c->mm[v].bn;
    }
    mv_push pc = {(uint32_t)w->ne0, (uint32_t)w->ne1, skip, (uint32_t)w->row_bytes, 0, (uint32_t)w->ne0, o_off, o_stride, add ? 1u : 0u, 0,
                  (uint32_t)n_tok, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    if (v >= 0) { /* (matmul.comp: one workgroup per tile) */
        vk_grid(be->c, (uint32_t)((w->ne1 + rpw - 1) / rpw), &gx, &gy);
        pc.gx = gx;
    } else {
        mv_grid(be, (uint32_t)((w->ne1 + rpw - 1) / rpw), pr, &pc, &gx, &gy);
    }
    mv_binds(be, b, ob, ob, e, &pc);
    mv_pro_set(be, b, pr, &pc);
    int nb = v >= 0 ? 5 : 10;
    if (v < 0) be->mv_sig_wgs += gx * gy * gz;
    if (bar) vk_dispatch(be->c, cb, p, b, nb, &pc, sizeof pc, gx, gy, gz);
    else vk_dispatch_nb(be->c, cb, p, b, nb, &pc, sizeof pc, gx, gy, gz);
    return ST_OK;
}

static st_status rec_matvec_b(vk_be *be, VkCommandBuffer cb, const st_tensor *w, const dev_tensor *dw, const vk_alloc *xin,
                              const vk_bind *ob, uint32_t o_off, uint32_t o_stride, bool add, int n_tok, bool bar,
                              st_error *err) {
    return rec_matvec_e(be, cb, w, dw, xin, ob, o_off, o_stride, add, n_tok, bar, NULL, NULL, err);
}

/* Q, K and V (or gate and up) in one matvec dispatch: n matrices of the same
 * type and width in the same device allocation, into outputs ob[i] (row
 * stride o_stride[i]), set (not added). Returns ST_OK with *done false when
 * they do not qualify (a prompt batch, types or widths differ, separate
 * allocations, a range beyond the device's limit): the caller records them
 * one by one. */
static st_status rec_matvec_group(vk_be *be, VkCommandBuffer cb, int n, const st_tensor *const *w, const dev_tensor *dw,
                                  const vk_bind *ob, const uint32_t *o_stride, int n_tok, const mv_epi *e, const mv_pro *pr,
                                  bool *done, st_error *err) {
    *done = false;
    if (matmul_variant(be->c, w[0]->type, w[0]->ne1, n_tok) >= 0) return ST_OK;
    /* the pair-of-rows epilogue needs the pairs in one group (NR even: the
     * quantized types) */
    if (e && e->epi == 1 && matvec_nr(be, w[0]->type) % 2) return ST_OK;
    VkDeviceSize lo = dw[0].off, hi = dw[0].off + w[0]->nbytes;
    for (int i = 1; i < n; i++) {
        if (w[i]->type != w[0]->type || w[i]->ne0 != w[0]->ne0 || w[i]->row_bytes != w[0]->row_bytes || dw[i].mem != dw[0].mem)
            return ST_OK;
        if (dw[i].off < lo) lo = dw[i].off;
        if (dw[i].off + w[i]->nbytes > hi) hi = dw[i].off + w[i]->nbytes;
    }
    uint32_t skip;
    vk_bind wb = vk_bind_range(be->c, dw[0].mem, lo, hi - lo, &skip);
    if (wb.range > be->c->ssbo_range || hi - lo > UINT32_MAX / 2) return ST_OK;
    uint32_t off[3], g[3], rpw = matvec_rows(be, w[0]->type), total = 0;
    for (int i = 0; i < n; i++) {
        off[i] = skip + (uint32_t)(dw[i].off - lo);
        if ((w[0]->type == ST_TYPE_Q4_K || w[0]->type == ST_TYPE_Q5_K) && (off[i] % 16 || w[0]->row_bytes % 16)) return ST_OK;
        g[i] = total;
        total += (uint32_t)((w[i]->ne1 + rpw - 1) / rpw);
    }
    VkPipeline p;
    st_status rc = pipe(be, matvec_epi_pipe(w[0]->type, e ? e->epi : 0, pr), &p, err);
    if (rc) return rc;
    bool flt = w[0]->type == ST_TYPE_F32 || w[0]->type == ST_TYPE_F16;
    vk_bind b[10] = {wb, vk_bind_all(flt ? &be->xb : &be->aq), vk_bind_all(&be->ad), vk_bind_all(&be->ab), ob[0]};
    uint32_t gx, gy;
    mv_push pc = {(uint32_t)w[0]->ne0, (uint32_t)w[0]->ne1, off[0], (uint32_t)w[0]->row_bytes, 0, (uint32_t)w[0]->ne0, 0, o_stride[0], 0, 0,
                  (uint32_t)n_tok, g[1], n > 2 ? g[2] : 0, (uint32_t)w[1]->ne1, n > 2 ? (uint32_t)w[2]->ne1 : 0, off[1],
                  n > 2 ? off[2] : 0, 0, 0, o_stride[1], n > 2 ? o_stride[2] : 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    mv_grid(be, total, pr, &pc, &gx, &gy);
    mv_binds(be, b, &ob[1], n > 2 ? &ob[2] : &ob[1], e, &pc);
    mv_pro_set(be, b, pr, &pc);
    be->mv_sig_wgs += gx * gy * (uint32_t)n_tok;
    if (be->mv_sig) vk_dispatch_nb(be->c, cb, p, b, 10, &pc, sizeof pc, gx, gy, (uint32_t)n_tok); /* chained: no barrier */
    else vk_dispatch(be->c, cb, p, b, 10, &pc, sizeof pc, gx, gy, (uint32_t)n_tok);
    *done = true;
    return ST_OK;
}

static st_status rec_matvec(vk_be *be, VkCommandBuffer cb, const st_tensor *w, const dev_tensor *dw, const vk_alloc *xin,
                            const vk_bind *ob, uint32_t o_off, uint32_t o_stride, bool add, int n_tok, st_error *err) {
    return rec_matvec_b(be, cb, w, dw, xin, ob, o_off, o_stride, add, n_tok, true, err);
}

/* ------------------------------------------------------------ backend methods */

/* The attention's chunking for a batch of n_tok tokens from pos0 (see
 * ATTN_*): chunk positions each, n_chunks chunks. */
static void attn_chunks(const vk_be *be, int n_tok, int pos0, uint32_t *chunk_, uint32_t *n_chunks_) {
    uint32_t hd = (uint32_t)be->hp.head_dim, nh = (uint32_t)be->hp.n_head, kv_len = (uint32_t)(pos0 + n_tok);
    uint32_t chunk = n_tok == 1 && be->attn_dec ? be->attn_dec_chunk : ATTN_MIN_CHUNK;
    uint64_t per = (uint64_t)n_tok * nh * (hd + 2) * 4;  /* bytes of one chunk's partials for the batch */
    uint32_t max_chunks = (uint32_t)(be->part.size / per);
    if (max_chunks > ATTN_MAX_CHUNKS) max_chunks = ATTN_MAX_CHUNKS;
    /* prompt batches have parallelism enough in their tokens: one chunk
     * (no merge) from 16 tokens on; on the H200 pp512 took 7862 vs 7134
     * tok/s (tinyllama Q4_K_M) and 1808 vs 1780 (llama2-7b Q4_K_M) */
    uint32_t pcap = be->c->attn_prompt_chunks ? be->c->attn_prompt_chunks : n_tok >= 16 ? 1 : 0;
    if (n_tok > 1 && pcap && max_chunks > pcap) max_chunks = pcap;
    if (max_chunks < 1) max_chunks = 1;
    uint32_t n_chunks = (kv_len + chunk - 1) / chunk;
    if (n_chunks > max_chunks) {
        n_chunks = max_chunks;
        chunk = (kv_len + n_chunks - 1) / n_chunks;
        n_chunks = (kv_len + chunk - 1) / chunk;
    }
    *chunk_ = chunk;
    *n_chunks_ = n_chunks;
}

/* The head of a pass: the batch's embeddings, RoPE table and dyn words from
 * host buffer in[h] into the device buffers, then a barrier for the kernels
 * and the indirect dispatch that read them. The host may write in[h] after
 * the submission, before it releases a pass queued ahead: the first barrier
 * makes those writes visible to the copies (no cost measured on the H100). */
static void rec_head(vk_be *be, VkCommandBuffer cb, int h, size_t xb, size_t csb) {
    VkMemoryBarrier hb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_HOST_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT};
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_HOST_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &hb, 0, NULL, 0, NULL);
    VkBufferCopy c1 = {0, be->x.off, xb}, c2 = {cs_at(be, h), be->cs.off, csb}, c3 = {dyn_at(be, h), be->dyn.off, DYN_WORDS * 4};
    vkCmdCopyBuffer(cb, be->in[h].buf, be->x.buf, 1, &c1);
    vkCmdCopyBuffer(cb, be->in[h].buf, be->cs.buf, 1, &c2);
    vkCmdCopyBuffer(cb, be->in[h].buf, be->dyn.buf, 1, &c3);
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                                           VK_ACCESS_INDIRECT_COMMAND_READ_BIT};
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_DRAW_INDIRECT_BIT,
                         0, 1, &mb, 0, NULL, 0, NULL);
}

/* The RoPE rows of positions pos0.., as the CPU backend builds them. */
static void rope_rows(const vk_be *be, int pos0, int n_tok, float *out) {
    const st_hparams *hp = &be->hp;
    float theta_scale = powf(hp->rope_base, -2.0f / (float)hp->n_rot);
    for (int t = 0; t < n_tok; t++) {
        float *cs = out + (size_t)t * hp->n_rot;
        float theta = (float)(pos0 + t) * hp->rope_scale;
        for (int i = 0; i < hp->n_rot / 2; i++) {
            cs[2 * i] = cosf(theta);
            cs[2 * i + 1] = sinf(theta);
            theta *= theta_scale;
        }
    }
}

static void dyn_words(const vk_be *be, int n_tok, int pos0, uint32_t dyn[DYN_WORDS]) {
    memset(dyn, 0, DYN_WORDS * sizeof *dyn);
    dyn[DYN_POS0] = (uint32_t)pos0;
    attn_chunks(be, n_tok, pos0, &dyn[DYN_CHUNK], &dyn[DYN_NCHUNKS]);
    dyn[DYN_IND] = (uint32_t)be->hp.n_head;
    dyn[DYN_IND + 1] = (uint32_t)n_tok;
    dyn[DYN_IND + 2] = dyn[DYN_NCHUNKS];
}

/* ------------------------------------------------------------ passes queued ahead
 *
 * Between two one-token passes the GPU waited for the host: the logits'
 * copy, the engine and sampler, the parts' signature checks, vkQueueSubmit
 * (13-29 us on the H100) and the GPU's start. So when a one-token pass was
 * replayed whole from parts, end() submits the next one-token pass before
 * it waits for this one: the same parts from the other set (their
 * signatures equal to this pass's), at the next position, waiting on the
 * GPU for timeline semaphore `go`. The next begin() of one token (at any
 * position: the parts do not depend on it) writes the embedding, the RoPE
 * row and the dyn words (computed by end() for the next position, again
 * for another) into the pass's host buffer and signals `go` (LIVE): the
 * GPU starts while
 * the host checks each layer() against the part the pass runs, and end()
 * queues the pass after it.
 *
 * Every other path releases it first. A pass queued ahead must not stay
 * in the queue while anything else is submitted behind it (that would wait
 * for its signal), nor while its parts' memory is freed:
 *  - a begin() for a prompt batch, destroy(), and any other submission to
 *    the compute queue (vk_queue_claim: another backend of the device, an
 *    upload where there is no transfer queue) signal `go` with the dyn
 *    words of its position (spec_release): it runs on stale inputs and
 *    writes only beyond the cache's valid positions (n_past), which the
 *    next batch there overwrites, and its own set's host buffers, so costs
 *    one pass of GPU time;
 *  - a layer (or tail) that no longer matches the part it ran, found LIVE
 *    (a layer's weights moved): once it has finished, its head and the
 *    parts that matched are queued again (the same inputs, the same cache
 *    rows rewritten) and the pass goes on as any other (spec_abandon).
 * The two sets (and their host buffers) let the pass queued ahead be
 * submitted while the one before it still runs and its logits are read.
 * It also waits on the GPU for that pass (tl), so that a release while the
 * host still waits for it cannot overlap them.
 *
 * On the H100 (tinyllama Q8_0, STRATA_VK_PROFILE=host) the host's signal
 * costs ~10 us and the GPU starts ~8 us after it, where the submission
 * cost 12-16 us and the GPU started 14-18 us after it: 6-12 us a token
 * (0.5-1%). A host-set event (vkSetEvent, 0.6 us) woke the GPU 20-25 us
 * later, no better; a first dispatch polling a host-memory word missed the
 * host's store on the H100 until it gave up (docs/VULKAN.md). */

/* c->spec_release, under c->mu_spec (see above). */
static void spec_release(void *owner) {
    vk_be *be = owner;
    memcpy((uint8_t *)be->in[be->gs].map + dyn_at(be, be->gs), be->spec_dyn, sizeof be->spec_dyn);
    VkSemaphoreSignalInfo si = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_SIGNAL_INFO, .semaphore = be->go, .value = be->go_value};
    vkSignalSemaphore(be->c->dev, &si);
    be->spec = SPEC_CANCELLED;
    atomic_fetch_add(&be->spec_cancelled, 1);
}

/* After a pass from part set `half` (its own pass submitted), queues the
 * next one-token pass, at position pos, from set be->gs. */
static void spec_queue(vk_be *be, int half, int pos) {
    st_vk_ctx *c = be->c;
    int np = be->hp.n_layer + 2, h = be->gs;
    const gpart *cur = be->gp + (size_t)half * np, *nx = be->gp + (size_t)h * np;
    for (int k = 0; k < np; k++) {
        if (!nx[k].valid || nx[k].nsig != cur[k].nsig || memcmp(nx[k].sig, cur[k].sig, (size_t)cur[k].nsig * sizeof *cur[k].sig))
            return;
        be->spec_cbs[k] = nx[k].cb;
    }
    dyn_words(be, 1, pos, be->spec_dyn);
    rope_rows(be, pos, 1, be->spec_cs);
    uint64_t go = be->go_value + 1, sig;
    VkFence f = next_fence(be);
    vk_queue_claim(c);
    if (queue_batch(be, be->spec_cbs, np, go, f, &sig) == VK_SUCCESS) {
        be->spec = SPEC_PENDING;
        be->spec_value = sig;
        be->spec_fence = f;
        be->spec_pos = pos;
        be->go_value = go;
        c->spec_owner = be;
        atomic_fetch_add(&be->submits, 1);
    }
    vk_queue_unclaim(c);
}

/* LIVE: the pass ran parts of which the one for layer be->spec_next (or
 * the tail) no longer matches (see above). */
static st_status spec_abandon(vk_be *be, st_error *err) {
    st_status rc = wait_value(be, be->submitted, err);
    if (rc) return rc;
    int np = be->hp.n_layer + 2;
    gpart *g = be->gp + (size_t)be->gs * np;
    be->npend = 0;
    for (int k = 0; k <= be->spec_next; k++) be->pend[be->npend++] = g[k].cb;
    be->pass_parts = be->npend;
    be->spec = SPEC_NONE;
    be->gts_open = false; /* the interval is the abandoned pass's */
    atomic_fetch_add(&be->spec_abandoned, 1);
    return ST_OK;
}

static st_status vk_begin(st_backend *b, const float *x, int n_tok, int pos0, st_error *err) {
    vk_be *be = (vk_be *)b;
    st_vk_ctx *c = be->c;
    if (c->prof_host) {
        be->t_begin = st_now_ns();
        be->rec_at_begin = atomic_load(&be->parts_recorded);
    }
    const st_hparams *hp = &be->hp;
    if (n_tok < 1 || n_tok > be->n_batch)
        return st_error_set(err, ST_ERR_ARG, "batch of %d tokens (expected 1..%d)", n_tok, be->n_batch);
    if (pos0 < 0 || pos0 + n_tok > be->n_ctx)
        return st_error_set(err, ST_ERR_CONTEXT, "context full: %d + %d tokens exceed the context of %d", pos0, n_tok, be->n_ctx);
    /* a pass that failed half-way left a command buffer open or parts
     * queued: drop them */
    if (be->recording) {
        vkEndCommandBuffer(be->cb[be->cur]);
        be->recording = false;
    }
    be->npend = 0;
    be->gts_pend = false;
    be->pass_parts = 0;
    be->pass_live = false;
    be->pass_slots = false;
    size_t xb = (size_t)n_tok * hp->n_embd * sizeof(float), csb = (size_t)n_tok * hp->n_rot * sizeof(float);
    st_status rc;
    /* the pass queued ahead: this one, or released */
    pthread_mutex_lock(&c->mu_spec);
    if (be->spec == SPEC_PENDING && n_tok == 1) { /* at any position: its parts do not depend on it */
        int h = be->gs;
        memcpy(be->in[h].map, x, xb);
        if (pos0 != be->spec_pos) {
            rope_rows(be, pos0, 1, be->spec_cs);
            dyn_words(be, 1, pos0, be->spec_dyn);
        }
        memcpy((uint8_t *)be->in[h].map + cs_at(be, h), be->spec_cs, csb);
        memcpy((uint8_t *)be->in[h].map + dyn_at(be, h), be->spec_dyn, sizeof be->spec_dyn);
        if (c->prof_host) be->t_sub0 = st_now_ns();
        VkSemaphoreSignalInfo si = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_SIGNAL_INFO, .semaphore = be->go, .value = be->go_value};
        rc = vkerr(vkSignalSemaphore(c->dev, &si), "vkSignalSemaphore", err);
        if (c->prof_host) be->t_sub1 = st_now_ns();
        if (rc) { /* a pass that cannot be released would hold the queue: as good as a lost device */
            pthread_mutex_unlock(&c->mu_spec);
            return rc;
        }
        c->spec_owner = NULL;
        be->spec = SPEC_LIVE;
        pthread_mutex_unlock(&c->mu_spec);
        be->submitted = be->spec_value;
        be->n_tok = 1;
        be->pos0 = pos0;
        be->graph = true;
        be->half = h;
        be->in_pass = true;
        be->spec_next = 0;
        be->pass_parts = 1;
        be->gts_open = be->qp != VK_NULL_HANDLE;
        be->gts_value = be->spec_value;
        be->gts_half = h;
        return ST_OK;
    }
    if (be->spec == SPEC_PENDING) {
        spec_release(be);
        c->spec_owner = NULL;
    }
    spec_pickup(be);
    be->spec = SPEC_NONE; /* a LIVE pass that failed half-way has been waited for below */
    pthread_mutex_unlock(&c->mu_spec);
    if ((rc = wait_value(be, be->submitted, err))) return rc;
    collect_ts(be);
    be->n_tok = n_tok;
    be->pos0 = pos0;
    be->graph = be->graph_on && n_tok == 1;
    be->half = be->graph ? be->gs : 0;
    be->in_pass = true;
    int h = be->half;
    rope_rows(be, pos0, n_tok, be->cs_host);
    uint32_t dyn[DYN_WORDS];
    dyn_words(be, n_tok, pos0, dyn);
    memcpy(be->in[h].map, x, xb);
    memcpy((uint8_t *)be->in[h].map + cs_at(be, h), be->cs_host, csb);
    memcpy((uint8_t *)be->in[h].map + dyn_at(be, h), dyn, sizeof dyn);
    if (be->graph) {
        gpart *g = &be->gp[(size_t)h * (hp->n_layer + 2)];
        uint64_t sig[2] = {atomic_load(&be->gen), (uint64_t)n_tok};
        bool reused;
        if ((rc = part_reuse(be, g, sig, 2, &reused, err))) return rc;
        be->gts_open = be->qp != VK_NULL_HANDLE;
        if (reused) return ST_OK;
        VkCommandBuffer cb;
        if ((rc = part_begin(be, g, &cb, err))) return rc;
        if (be->qp) { /* the pass's GPU time: from here to the tail */
            vkCmdResetQueryPool(cb, be->qp, (uint32_t)(2 * NCB + 2 * h), 2);
            vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, be->qp, (uint32_t)(2 * NCB + 2 * h));
        }
        rec_head(be, cb, h, xb, csb);
        be->gts_open = be->qp != VK_NULL_HANDLE;
        return part_end(be, g, sig, 2, ST_OK, err);
    }
    if ((rc = cb_begin(be, err))) return rc;
    rec_head(be, be->cb[be->cur], h, xb, csb);
    return ST_OK;
}

/* Records layer il's kernels into cb (weights dt on the device). */
static st_status rec_layer(vk_be *be, VkCommandBuffer cb, int il, const st_layer *L, const dev_tensor *dt, st_error *err) {
    const st_hparams *hp = &be->hp;
    st_vk_ctx *c = be->c;
    int T = be->n_tok;
    uint32_t D = (uint32_t)hp->n_embd, DKV = (uint32_t)be->dkv, F = (uint32_t)hp->n_ff;
    st_status rc;
    /* one-token passes fold steps into the products' epilogues (matvec.comp) */
    bool fuse = be->fuse && T == 1;
    VkDeviceSize layer_bytes = (VkDeviceSize)be->n_ctx * DKV * be->kv_elt;
    /* the whole layer's cache where the device can bind it (so that the
     * commands do not depend on the position: replay), else what the batch
     * uses */
    VkDeviceSize used = layer_bytes <= c->ssbo_range ? layer_bytes : (VkDeviceSize)(be->pos0 + T) * DKV * be->kv_elt;
    uint32_t kskip, vskip;
    vk_bind kcb = vk_bind_range(c, &be->kc, (VkDeviceSize)il * layer_bytes, used, &kskip);
    vk_bind vcb = vk_bind_range(c, &be->vc, (VkDeviceSize)il * layer_bytes, used, &vskip);
    if (kcb.range > c->ssbo_range)
        return st_error_set(err, ST_ERR_UNSUPPORTED, "vulkan backend: a layer's KV cache (%.1f MiB) exceeds the device's storage buffer range",
                            kcb.range / 1048576.0);
    /* attention: the RMSNorm in the Q/K/V products' prologue where it can
     * be (one-token passes, quantized weights), else act's dispatch */
    bool pro_qkv = pro_ok(be, 2, L->wq.type, D, T) && pro_ok(be, 2, L->wk.type, D, T) && pro_ok(be, 2, L->wv.type, D, T);
    mv_pro pr_qkv = {0};
    if (pro_qkv) {
        uint32_t woff;
        vk_bind nw = vk_bind_range(c, dt[0].mem, dt[0].off, (VkDeviceSize)D * (L->attn_norm.type == ST_TYPE_F32 ? 4 : 2), &woff);
        pr_qkv = (mv_pro){2, vk_bind_all(&be->x), nw, 0, woff, L->attn_norm.type == ST_TYPE_F16 ? 1u : 0u, 0};
    } else if ((rc = rec_rmsnorm(be, cb, 0, &dt[0], L->attn_norm.type, L->wq.type, T,
                                 pro_fits(be, 2, L->wq.type, D, T) && pro_fits(be, 2, L->wk.type, D, T) && pro_fits(be, 2, L->wv.type, D, T),
                                 err))) {
        return rc;
    }
    /* The attention's path, decided before Q/K/V: a chained one (below)
     * needs them without their epilogue. */
    uint32_t hd = (uint32_t)hp->head_dim, nh = (uint32_t)hp->n_head;
    uint32_t vec = be->kv_f32 ? 4 : 8;  /* cache elements per 16 bytes */
    uint32_t kv_off = (uint32_t)(kskip / be->kv_elt);
    uint32_t vec_ok = (kv_off % vec == 0 && DKV % vec == 0 && hd % vec == 0) ? (c->attn_fast ? 2u : 1u) : 0u;
    uint32_t nvec = hd / 8;
    bool dec = T == 1 && be->attn_dec && vec_ok == 2; /* attn_dec.comp (be->attn_dec: its other conditions) */
    /* Chained (c->chain, one-token passes, attn_dec with FRESH): no barrier
     * between Q/K/V and the attention. Each Q/K/V workgroup counts itself
     * in counter sig_base + 2 il once its rows are stored; the attention's
     * workgroups, launched meanwhile, request the cache's keys and values
     * (which Q/K/V do not write: FRESH stores the position's itself) and
     * wait for the count before they read the fresh rows; the last of them
     * sets the counters back to 0. The drain and launch of a dependent
     * dispatch (~3.5 us on the H100) leave the critical path. */
    bool chain = dec && fuse && c->chain && pro_qkv && !be->kv_f32 && hd <= 256;
    uint32_t sig_idx = be->sig_base + 2 * (uint32_t)il, sig_n = 0;
    if (chain) {
        be->mv_sig = sig_idx + 1;
        be->mv_sig_wgs = 0;
    }
    /* Q, K, V with RoPE and the cache stores in their epilogue */
    mv_epi e_qkv = {1, kcb, vcb, vk_bind_all(&be->cs), (uint32_t)hp->head_dim, (uint32_t)hp->n_rot, (uint32_t)(kskip / be->kv_elt),
                    be->kv_f32 ? 1u : 0u};
    const st_tensor *const qkv[3] = {&L->wq, &L->wk, &L->wv};
    const vk_alloc *qkv_out[3] = {&be->q, &be->k, &be->v};
    uint32_t qkv_n[3] = {D, DKV, DKV};
    /* Q, K and V are independent: one dispatch when they share type and
     * allocation; else no barrier between them, unless the activations must
     * be quantized again for another type (the products before must have
     * read them first) */
    bool fused = false;
    {
        vk_bind ob[3] = {vk_bind_all(qkv_out[0]), vk_bind_all(qkv_out[1]), vk_bind_all(qkv_out[2])};
        if ((rc = rec_matvec_group(be, cb, 3, qkv, &dt[1], ob, qkv_n, T, fuse && !chain ? &e_qkv : NULL, pro_qkv ? &pr_qkv : NULL,
                                   &fused, err))) {
            be->mv_sig = 0;
            return rc;
        }
    }
    /* ... their prologue workgroups shared out by rows: the three run side
     * by side, and more workgroups than fit at once (two a multiprocessor)
     * leave a second, partial wave */
    uint64_t rows_qkv = (uint64_t)qkv[0]->ne1 + qkv[1]->ne1 + qkv[2]->ne1;
    for (int i = 0; i < 3 && !fused; i++) {
        mv_pro pr_i = pr_qkv;
        if (pro_qkv) {
            pr_i.groups = (uint32_t)(c->mv_pro_groups * (uint64_t)qkv[i]->ne1 / rows_qkv);
            if (pr_i.groups < 1) pr_i.groups = 1;
        }
        st_type prev = i ? st_type_traits_get(qkv[i - 1]->type)->vec_dot_type : ST_TYPE_COUNT;
        if (!pro_qkv && i && st_type_traits_get(qkv[i]->type)->vec_dot_type != prev) {
            vk_barrier_compute(cb);
            if ((rc = rec_quantize(be, cb, qkv[i]->type, &be->xb, D, T, false, err))) return rc;
        }
        vk_bind ob = vk_bind_all(qkv_out[i]);
        if ((rc = rec_matvec_e(be, cb, qkv[i], &dt[1 + i], &be->xb, &ob, 0, qkv_n[i], false, T, i == 2 && !chain, NULL,
                               pro_qkv ? &pr_i : NULL, err))) {
            be->mv_sig = 0;
            return rc;
        }
    }
    if (chain) {
        sig_n = be->mv_sig_wgs;
        be->mv_sig = 0;
        atomic_fetch_add(&be->chained, 1);
    }
    bool epi_done = fused && !chain; /* the epilogue stored the keys and values */
    VkPipeline p;
    uint32_t gx, gy;
    /* Where the Q/K/V epilogue did not store the keys and values (Q, K and
     * V computed apart: their types differ, or one row per group, the
     * K-quants', leaves RoPE's pairs of rows in different groups), the
     * attention does kv_store's step for one-token passes on its vector
     * path (attn.comp, "fresh"): a dispatch and a barrier fewer (H100,
     * tinyllama Q4_K_M 849-868 vs 817-823 tok/s, llama2-7b Q4_K_M
     * 325-326 vs 320-321). The conditions are the shader's for that path. */
    bool fresh = chain || (fuse && !epi_done && vec_ok == 2 && !be->kv_f32 && hd <= 256 && (dec || (nvec <= c->wg && c->wg % nvec == 0)));
    /* RoPE on the queries, keys (with RoPE) and values into the cache: one
     * dispatch, unless the Q/K/V epilogue or the attention does it */
    if (!(epi_done && fuse) && !fresh) {
        if ((rc = pipe(be, VKP_KV_STORE, &p, err))) return rc;
        vk_grid(c, groups(be, (uint64_t)T * DKV + (uint64_t)T * hp->n_head * (hp->n_rot / 2)), &gx, &gy);
        vk_bind bb[6] = {vk_bind_all(&be->k), vk_bind_all(&be->v), vk_bind_all(&be->cs), kcb, vcb, vk_bind_all(&be->q)};
        struct { uint32_t n_kv, head_dim, n_rot, n_tok, k_off, v_off, stride, cache_off, kv_f32, gx, n_head, q_off, q_stride; } pc = {
            DKV, (uint32_t)hp->head_dim, (uint32_t)hp->n_rot, (uint32_t)T, 0, 0, DKV,
            (uint32_t)(kskip / be->kv_elt), be->kv_f32 ? 1u : 0u, gx, (uint32_t)hp->n_head, 0, D};
        vk_bind bd[7] = {bb[0], bb[1], bb[2], bb[3], bb[4], bb[5], vk_bind_all(&be->dyn)};
        vk_dispatch(c, cb, p, bd, 7, &pc, sizeof pc, gx, gy, 1);
    }
    /* attention: one workgroup per (head, token, chunk of positions); the
     * chunking and the group count come from dyn (attn_chunks); the last
     * chunk of a head merges the chunks */
    /* (attn_dec: the pipeline whose arrays hold a head row: 4, 8 or 16 vectors) */
    vk_pipe_id dp = (fresh ? VKP_ATTN_DF4 : VKP_ATTN_D4) + be->attn_dec_size;
    /* attn_dec quantizes its output for an output projection of Q8_0 or
     * Q4_0 weights (blocks of 32 within a head), which then needs no
     * prologue: its quantization step's latency, ~1 us a layer, is gone
     * (the same arithmetic as act's: replay_identical compares) */
    bool qout = dec && fuse && act_kind(L->wo.type) == 0 && hd % 32 == 0 && D % 32 == 0;
    if ((rc = pipe(be, dec ? dp : fresh ? VKP_ATTN_F : VKP_ATTN, &p, err))) return rc;
    {
        vk_bind bb[12] = {vk_bind_all(&be->q), kcb, vcb, vk_bind_all(&be->xb), vk_bind_all(&be->part), vk_bind_all(&be->dyn),
                          vk_bind_all(&be->cnt), vk_bind_all(&be->k), vk_bind_all(&be->v), vk_bind_all(&be->cs),
                          vk_bind_all(&be->aq), vk_bind_all(&be->ad)};
        struct { uint32_t n_head, n_head_kv, head_dim, q_off, q_stride, kv_off, kv_stride, o_off, o_stride, kv_f32; float scale;
                 uint32_t vec_ok, cnt_head, n_rot, dec_chunk, kv_bound, qout, sig_idx, sig_n; } pc = {
            nh, (uint32_t)hp->n_head_kv, hd, 0, D, kv_off, DKV, 0, D, be->kv_f32 ? 1u : 0u,
            1.0f / sqrtf((float)hp->head_dim), vec_ok, 0, (uint32_t)hp->n_rot, be->attn_dec_chunk,
            (uint32_t)(kcb.range / be->kv_elt), qout ? 1u : 0u, sig_idx, sig_n};
        vk_dispatch_indirect(c, cb, p, bb, dec ? 12 : 10, &pc, sizeof pc, be->dyn.buf, be->dyn.off + DYN_IND * 4);
    }
    vk_bind xbind = vk_bind_all(&be->x);
    /* the output projection, the attention's output quantized in its
     * prologue where it can be */
    bool pro_wo = !qout && pro_ok(be, 1, L->wo.type, D, T);
    mv_pro pr_wo = {1, vk_bind_all(&be->xb), vk_bind_all(&be->xb), 0, 0, 0, 0};
    if (!pro_wo && !qout && (rc = rec_quantize(be, cb, L->wo.type, &be->xb, D, T, pro_fits(be, 1, L->wo.type, D, T), err))) return rc;
    if ((rc = rec_matvec_e(be, cb, &L->wo, &dt[4], &be->xb, &xbind, 0, D, true, T, true, NULL, pro_wo ? &pr_wo : NULL, err))) return rc;

    /* feed-forward: the RMSNorm in gate/up's prologue where it can be */
    bool pro_gu = pro_ok(be, 2, L->w_gate.type, D, T) && pro_ok(be, 2, L->w_up.type, D, T);
    mv_pro pr_gu = {0};
    if (pro_gu) {
        uint32_t woff;
        vk_bind nw = vk_bind_range(c, dt[5].mem, dt[5].off, (VkDeviceSize)D * (L->ffn_norm.type == ST_TYPE_F32 ? 4 : 2), &woff);
        pr_gu = (mv_pro){2, vk_bind_all(&be->x), nw, 0, woff, L->ffn_norm.type == ST_TYPE_F16 ? 1u : 0u, 0};
    } else if ((rc = rec_rmsnorm(be, cb, 0, &dt[5], L->ffn_norm.type, L->w_gate.type, T,
                                 pro_fits(be, 2, L->w_gate.type, D, T) && pro_fits(be, 2, L->w_up.type, D, T), err))) {
        return rc;
    }
    vk_bind hb = vk_bind_all(&be->hb), hb2 = vk_bind_all(&be->hb2);
    bool requant = !pro_gu && st_type_traits_get(L->w_up.type)->vec_dot_type != st_type_traits_get(L->w_gate.type)->vec_dot_type;
    /* gate and up are independent: one dispatch where they qualify */
    bool gu = false;
    {
        const st_tensor *const g2[2] = {&L->w_gate, &L->w_up};
        vk_bind ob[2] = {hb, hb2};
        uint32_t st[2] = {F, F};
        if ((rc = rec_matvec_group(be, cb, 2, g2, &dt[6], ob, st, T, NULL, pro_gu ? &pr_gu : NULL, &gu, err))) return rc;
    }
    if (!gu) {
        const mv_pro *pg = pro_gu ? &pr_gu : NULL;
        if ((rc = rec_matvec_e(be, cb, &L->w_gate, &dt[6], &be->xb, &hb, 0, F, false, T, requant, NULL, pg, err))) return rc;
        if (requant && (rc = rec_quantize(be, cb, L->w_up.type, &be->xb, D, T, false, err))) return rc;
        if ((rc = rec_matvec_e(be, cb, &L->w_up, &dt[7], &be->xb, &hb2, 0, F, false, T, true, NULL, pg, err))) return rc;
    }
    /* SwiGLU, quantized for the down projection: in its prologue where it
     * can be */
    bool pro_dn = pro_ok(be, 4, L->w_down.type, F, T);
    mv_pro pr_dn = {3, vk_bind_all(&be->hb), vk_bind_all(&be->hb2), 0, 0, 0, 0};
    if (!pro_dn &&
        (rc = rec_act(be, cb, 2, &be->hb, 0, F, NULL, ST_TYPE_F32, &be->hb2, &be->hb, act_kind(L->w_down.type), T,
                      pro_fits(be, 4, L->w_down.type, F, T), err)))
        return rc;
    if ((rc = rec_matvec_e(be, cb, &L->w_down, &dt[8], &be->hb, &xbind, 0, D, true, T, true, NULL, pro_dn ? &pr_dn : NULL, err))) return rc;

    return ST_OK;
}

/* A layer part's signature: what its recorded commands depend on besides
 * the buffers the backend owns. */
static int layer_sig(vk_be *be, const st_layer *L, const dev_tensor *dt, uint64_t *sig) {
    int n = 0;
    sig[n++] = atomic_load(&be->gen);
    sig[n++] = (uint64_t)be->n_tok;
    for (int k = 0; k < ST_LAYER_N_TENSORS; k++) {
        const st_tensor *t = st_layer_tensor((st_layer *)L, k);
        sig[n++] = (uint64_t)(uintptr_t)dt[k].mem->buf;
        sig[n++] = dt[k].mem->off + dt[k].off;
        sig[n++] = (uint64_t)t->type | (uint64_t)t->row_bytes << 8;
        sig[n++] = (uint64_t)t->ne0 | (uint64_t)t->ne1 << 32;
    }
    return n;
}

static st_status vk_layer(st_backend *b, int il, const st_layer *L, st_error *err) {
    vk_be *be = (vk_be *)b;
    static const char *const names[ST_LAYER_N_TENSORS] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                                          "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"};
    st_status rc;
    for (int k = 0; k < ST_LAYER_N_TENSORS; k++) {
        const st_tensor *t = st_layer_tensor((st_layer *)L, k);
        bool norm = k == 0 || k == 5;
        if (norm ? (t->type == ST_TYPE_F32 || t->type == ST_TYPE_F16) : type_ok(t->type)) continue;
        char what[64]; /* named only on failure: this runs for every layer of every token */
        snprintf(what, sizeof what, "blk.%d.%s", il, names[k]);
        return check_type(t, norm, what, err);
    }
    dev_tensor dt[ST_LAYER_N_TENSORS];
    if ((rc = layer_tensors(be, il, L, dt, err))) return rc;
    if (!be->in_pass) return st_error_set(err, ST_ERR_ARG, "vulkan backend: layer() without begin()");

    VkDeviceSize layer_bytes = (VkDeviceSize)be->n_ctx * be->dkv * be->kv_elt;
    bool part = be->graph && !dt[1].slot && layer_bytes <= be->c->ssbo_range;
    if (be->spec == SPEC_LIVE && !part && (rc = spec_abandon(be, err))) return rc; /* recorded live below */
    if (part) {
        uint64_t sig[GSIG];
        int ns = layer_sig(be, L, dt, sig);
        gpart *g = &be->gp[(size_t)be->half * (be->hp.n_layer + 2) + 1 + il];
        if (be->spec == SPEC_LIVE) { /* the pass queued ahead ran g: is it this layer? */
            if (il == be->spec_next && g->valid && g->nsig == ns && memcmp(g->sig, sig, (size_t)ns * sizeof *sig) == 0) {
                be->spec_next++;
                be->pass_parts++;
                atomic_fetch_add(&be->parts_replayed, 1);
                return ST_OK;
            }
            if ((rc = spec_abandon(be, err))) return rc;
        }
        bool reused;
        if ((rc = part_reuse(be, g, sig, ns, &reused, err)) || reused) return rc;
        VkCommandBuffer cb;
        if ((rc = part_begin(be, g, &cb, err))) return rc;
        return part_end(be, g, sig, ns, rec_layer(be, cb, il, L, dt, err), err);
    }
    if (!be->recording && (rc = cb_begin(be, err))) return rc;
    if ((rc = rec_layer(be, be->cb[be->cur], il, L, dt, err))) return rc;

    /* a layer read from a slot is submitted now, so that the slot knows
     * when it may be overwritten; others every SUBMIT_LAYERS layers */
    if (!dt[1].slot && il % SUBMIT_LAYERS == SUBMIT_LAYERS - 1) {
        if ((rc = cb_submit(be, false, err))) return rc;
        if ((rc = cb_begin(be, err))) return rc;
    } else if (dt[1].slot) {
        be->pass_slots = true;
        if ((rc = cb_submit(be, false, err))) return rc;
        for (int k = 0; k < ST_LAYER_N_TENSORS; k++)
            if (dt[k].slot) atomic_store(&dt[k].slot->last_use, be->submitted);
        if ((rc = cb_begin(be, err))) return rc;
    }
    return ST_OK;
}

/* The tail of a pass: final norm of tokens t0.. (n of them), LM head into
 * the logits, copied to the host buffer. */
static st_status rec_tail(vk_be *be, VkCommandBuffer cb, const st_tensor *out_norm, const st_tensor *out, const dev_tensor *dn,
                          const dev_tensor *dout, int t0, int n, st_error *err) {
    uint32_t D = (uint32_t)be->hp.n_embd, V = (uint32_t)be->hp.n_vocab;
    VkDeviceSize lbytes = (VkDeviceSize)n * V * sizeof(float);
    st_status rc;
    /* the final RMSNorm in the LM head's prologue where it can be */
    bool pro = pro_ok(be, 8, out->type, D, n);
    mv_pro pr = {0};
    if (pro) {
        uint32_t woff;
        vk_bind nw = vk_bind_range(be->c, dn->mem, dn->off, (VkDeviceSize)D * (out_norm->type == ST_TYPE_F32 ? 4 : 2), &woff);
        pr = (mv_pro){2, vk_bind_all(&be->x), nw, (uint32_t)t0 * D, woff, out_norm->type == ST_TYPE_F16 ? 1u : 0u, 0};
    } else if ((rc = rec_rmsnorm(be, cb, (uint32_t)t0 * D, dn, out_norm->type, out->type, n, pro_fits(be, 8, out->type, D, n), err))) {
        return rc;
    }
    uint32_t skip;
    vk_bind lb = vk_bind_range(be->c, &be->logits, 0, lbytes, &skip);
    if ((rc = rec_matvec_e(be, cb, out, dout, &be->xb, &lb, skip / 4, V, false, n, true, NULL, pro ? &pr : NULL, err))) return rc;
    VkBufferCopy cp = {be->logits.off, 0, lbytes};
    vk_barrier(cb); /* compute -> transfer */
    vkCmdCopyBuffer(cb, be->logits.buf, be->out[be->half].buf, 1, &cp);
    /* a pass assembled from parts is timed from the head to here; the pair
     * goes to the host buffer with the logits (collect_ts) */
    if (be->graph && be->qp) {
        uint32_t q = (uint32_t)(2 * NCB + 2 * be->half);
        vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, be->qp, q + 1);
        if (be->ts_copy)
            vkCmdCopyQueryPoolResults(cb, be->qp, q, 2, be->out[be->half].buf, ts_at(be, be->half), sizeof(uint64_t),
                                      VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
    }
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT, .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    return ST_OK;
}

static st_status vk_end(st_backend *b, const st_tensor *out_norm, const st_tensor *out, float *logits, bool all, st_error *err) {
    vk_be *be = (vk_be *)b;
    const st_hparams *hp = &be->hp;
    uint32_t V = (uint32_t)hp->n_vocab;
    int t0 = all ? 0 : be->n_tok - 1, n = be->n_tok - t0;
    st_status rc;
    if ((rc = check_type(out_norm, true, "output_norm", err)) || (rc = check_type(out, false, "output", err))) return rc;
    dev_tensor dn, dout;
    if ((rc = fixed_tensor(be, out_norm, &dn, err)) || (rc = fixed_tensor(be, out, &dout, err))) return rc;
    if (!be->in_pass) return st_error_set(err, ST_ERR_ARG, "vulkan backend: end() without begin()");
    VkDeviceSize lbytes = (VkDeviceSize)n * V * sizeof(float);
    if (lbytes > be->c->ssbo_range)
        return st_error_set(err, ST_ERR_UNSUPPORTED, "vulkan backend: logits of %d tokens (%.1f MiB) exceed the device's storage buffer range; use a smaller batch",
                            n, lbytes / 1048576.0);
    bool live_ok = false; /* a pass queued ahead that ran this very tail */
    if (be->graph && !dn.slot && !dout.slot) {
        uint64_t sig[16];
        int ns = 0;
        sig[ns++] = atomic_load(&be->gen);
        sig[ns++] = (uint64_t)t0 | (uint64_t)n << 32;
        const dev_tensor *d2[2] = {&dn, &dout};
        const st_tensor *t2[2] = {out_norm, out};
        for (int i = 0; i < 2; i++) {
            sig[ns++] = (uint64_t)(uintptr_t)d2[i]->mem->buf;
            sig[ns++] = d2[i]->mem->off + d2[i]->off;
            sig[ns++] = (uint64_t)t2[i]->type | (uint64_t)t2[i]->row_bytes << 8;
            sig[ns++] = (uint64_t)t2[i]->ne0 | (uint64_t)t2[i]->ne1 << 32;
        }
        gpart *g = &be->gp[(size_t)be->half * (hp->n_layer + 2) + 1 + hp->n_layer];
        if (be->spec == SPEC_LIVE) {
            live_ok = be->spec_next == hp->n_layer && g->valid && g->nsig == ns && memcmp(g->sig, sig, (size_t)ns * sizeof *sig) == 0;
            if (!live_ok && (rc = spec_abandon(be, err))) return rc;
        }
        bool reused = live_ok;
        if (!live_ok && (rc = part_reuse(be, g, sig, ns, &reused, err))) return rc;
        if (!reused) {
            VkCommandBuffer cb;
            if ((rc = part_begin(be, g, &cb, err))) return rc;
            if ((rc = part_end(be, g, sig, ns, rec_tail(be, cb, out_norm, out, &dn, &dout, t0, n, err), err))) return rc;
        }
        if (live_ok) {
            be->pass_parts++;
            atomic_fetch_add(&be->parts_replayed, 1);
        }
    } else {
        if (be->spec == SPEC_LIVE && (rc = spec_abandon(be, err))) return rc;
        if (!be->recording && (rc = cb_begin(be, err))) return rc;
        if ((rc = rec_tail(be, be->cb[be->cur], out_norm, out, &dn, &dout, t0, n, err))) return rc;
    }
    be->gts_pend = be->graph && be->gts_open && !live_ok;
    uint64_t t_sub = be->c->prof_host ? st_now_ns() : 0;
    be->in_pass = false;
    VkFence f = VK_NULL_HANDLE;
    if (live_ok) {
        f = be->spec_fence;
        be->spec = SPEC_NONE;
        atomic_fetch_add(&be->spec_run, 1);
    } else if (be->npend || be->recording) {
        f = next_fence(be);
        if ((rc = cb_submit_f(be, f, err))) return rc;
    }
    /* the next one-token pass, queued ahead while this one runs */
    int h = be->half;
    bool whole = be->graph && !be->pass_live && !be->pass_slots && be->pass_parts == hp->n_layer + 2;
    if (be->graph) be->gs ^= 1;
    if (whole && be->spec_on && be->pos0 + 1 < be->n_ctx) spec_queue(be, h, be->pos0 + 1);
    if (f && (rc = pass_wait(be, f, err))) return rc;
    if (!f && (rc = wait_value(be, be->submitted, err))) return rc;
    if (be->c->prof_host) {
        uint64_t now = st_now_ns();
        be->host_ns += t_sub - be->t_begin;
        be->wait_ns += now - t_sub;
        be->host_passes++;
        /* a one-token pass replayed whole after one that was: its steps */
        bool rep = be->graph && atomic_load(&be->parts_recorded) == be->rec_at_begin && !be->pass_slots;
        if (rep && be->t_ret && be->host_passes > 3) {
            uint64_t t[6] = {be->t_ret - be->t_fence_prev, be->t_begin - be->t_ret, be->t_sub0 - be->t_begin,
                             be->t_sub1 - be->t_sub0, be->t_fence - be->t_sub1, be->last_gpu};
            for (int i = 0; i < 6; i++) be->ph[i] += t[i];
            be->ph_n++;
        }
    }
    memcpy(logits, be->out[h].map, lbytes);
    if (be->c->prof_host) {
        be->t_fence_prev = be->t_fence;
        be->t_ret = st_now_ns();
    }
    return ST_OK;
}

static void vk_kv_truncate(st_backend *b, int n_past) {
    (void)b;
    (void)n_past; /* positions >= n_past are overwritten by the next batch */
}

/* ------------------------------------------------------------ slots */

static void *vk_slot_alloc(st_backend *b, size_t bytes) {
    vk_be *be = (vk_be *)b;
    if (bytes == 0) bytes = 1;
    slot_rec *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    void *va = mmap(NULL, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (va == MAP_FAILED) {
        free(s);
        return NULL;
    }
    st_error e = {0};
    if (vk_alloc_dev(be->c, bytes, &s->mem, &e)) {
        munmap(va, bytes);
        free(s);
        return NULL;
    }
    s->va = va;
    s->size = bytes;
    pthread_mutex_lock(&be->mu_slots);
    if (be->nslots == be->capslots) {
        int nc = be->capslots ? 2 * be->capslots : 8;
        slot_rec **ns = realloc(be->slots, (size_t)nc * sizeof *ns);
        if (!ns) {
            pthread_mutex_unlock(&be->mu_slots);
            vk_free_dev(be->c, &s->mem);
            munmap(va, bytes);
            free(s);
            return NULL;
        }
        be->slots = ns;
        be->capslots = nc;
    }
    be->slots[be->nslots++] = s;
    atomic_store_explicit(&be->nslots_pub, be->nslots, memory_order_release);
    pthread_mutex_unlock(&be->mu_slots);
    atomic_fetch_add(&be->weight_bytes, bytes);
    return va;
}

static void slot_release(vk_be *be, slot_rec *s) {
    wait_value(be, atomic_load(&s->last_use), NULL);
    vk_free_dev(be->c, &s->mem);
    atomic_fetch_add(&be->gen, 1);
    munmap(s->va, s->size);
    atomic_fetch_sub(&be->weight_bytes, s->size);
    free(s);
}

static void vk_slot_free(st_backend *b, void *slot) {
    vk_be *be = (vk_be *)b;
    slot_rec *s = NULL;
    pthread_mutex_lock(&be->mu_slots);
    for (int i = 0; i < be->nslots; i++)
        if (be->slots[i]->va == slot) {
            s = be->slots[i];
            be->slots[i] = be->slots[--be->nslots];
            atomic_store_explicit(&be->nslots_pub, be->nslots, memory_order_release);
            break;
        }
    pthread_mutex_unlock(&be->mu_slots);
    if (s) slot_release(be, s);
}

/* The pinned buffer holding [src, src + n), and src's offset in it. */
static vk_pin *pin_find(vk_be *be, const void *src, size_t n, VkDeviceSize *off) {
    vk_pin *pn = NULL;
    pthread_mutex_lock(&be->mu_slots);
    for (int i = 0; i < be->npinned && !pn; i++) {
        const uint8_t *m = be->pinned[i]->h.map;
        if ((const uint8_t *)src >= m && (const uint8_t *)src + n <= m + be->pinned[i]->h.size) {
            pn = be->pinned[i];
            *off = (VkDeviceSize)((const uint8_t *)src - m);
        }
    }
    pthread_mutex_unlock(&be->mu_slots);
    return pn;
}

/* Waits for the copy in flight from pn, if any. */
static st_status pin_wait(vk_be *be, vk_pin *pn, st_error *err) {
    if (!pn->inflight) return ST_OK;
    pn->inflight = false;
    VkResult r = vkWaitForFences(be->c->dev, 1, &pn->fence, VK_TRUE, UINT64_MAX);
    return r == VK_SUCCESS ? ST_OK : vkerr(r, "vkWaitForFences (upload)", err);
}

static void pin_free(vk_be *be, vk_pin *pn) {
    if (!pn) return;
    pin_wait(be, pn, NULL);
    VkDevice dev = be->c->dev;
    if (pn->fence) vkDestroyFence(dev, pn->fence, NULL);
    if (pn->pool) vkDestroyCommandPool(dev, pn->pool, NULL); /* frees cb */
    vk_hbuf_free(be->c, &pn->h);
    free(pn);
}

static st_status vk_slot_upload(st_backend *b, void *slot, size_t off, const void *src, size_t n, st_error *err) {
    vk_be *be = (vk_be *)b;
    slot_rec *s = slot_find(be, slot);
    if (!s || (uint8_t *)slot != s->va) return st_error_set(err, ST_ERR_ARG, "vulkan backend: upload to an unknown slot");
    /* from one of our pinned buffers: the DMA reads it directly */
    VkDeviceSize po = 0;
    vk_pin *pn = pin_find(be, src, n, &po);
    st_status rc = pn ? pin_wait(be, pn, err) : ST_OK;
    if (!rc)
        rc = pn ? vk_upload_pinned(be->c, &s->mem, off, pn->h.buf, po, n, be->tl, atomic_load(&s->last_use), err)
                : vk_upload(be->c, &s->mem, off, src, n, be->tl, atomic_load(&s->last_use), err);
    if (!rc) atomic_fetch_add(&be->uploaded, n);
    return rc;
}

/* The copy from a pinned buffer is submitted on the buffer's own command
 * buffer and returns: the store reads its next chunk meanwhile. Compute
 * submitted later waits for it on the GPU (the upload timeline), and the
 * copy waits for the compute still reading the slot (last_use). */
static st_status vk_slot_upload_async(st_backend *b, void *slot, size_t off, const void *src, size_t n, st_error *err) {
    vk_be *be = (vk_be *)b;
    slot_rec *s = slot_find(be, slot);
    if (!s || (uint8_t *)slot != s->va) return st_error_set(err, ST_ERR_ARG, "vulkan backend: upload to an unknown slot");
    VkDeviceSize po = 0;
    vk_pin *pn = pin_find(be, src, n, &po);
    if (!pn) return vk_slot_upload(b, slot, off, src, n, err); /* not a buffer of ours: copied at once */
    st_status rc = pin_wait(be, pn, err); /* its command buffer is free again */
    if (!rc)
        rc = vk_upload_pinned_async(be->c, pn->cb, pn->fence, &s->mem, off, pn->h.buf, po, n, be->tl,
                                    atomic_load(&s->last_use), err);
    if (!rc) {
        pn->inflight = true;
        atomic_fetch_add(&be->uploaded, n);
    }
    return rc;
}

static st_status vk_host_wait(st_backend *b, void *buf, st_error *err) {
    vk_be *be = (vk_be *)b;
    VkDeviceSize po = 0;
    vk_pin *pn = pin_find(be, buf, 1, &po);
    return pn ? pin_wait(be, pn, err) : ST_OK;
}

/* Host-visible memory the transfer queue copies from directly: the layer
 * store reads the file into it, so a streamed byte is copied once on the
 * host (by the read) instead of twice. */
static void *vk_host_alloc(st_backend *b, size_t bytes) {
    vk_be *be = (vk_be *)b;
    st_vk_ctx *c = be->c;
    vk_pin *pn = calloc(1, sizeof *pn);
    if (!pn) return NULL;
    st_error e = {0};
    VkCommandPoolCreateInfo cpi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                   .queueFamilyIndex = c->qf_transfer};
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    bool ok = !vk_hbuf_new(c, bytes, &pn->h, &e) && vkCreateCommandPool(c->dev, &cpi, NULL, &pn->pool) == VK_SUCCESS &&
              vkCreateFence(c->dev, &fi, NULL, &pn->fence) == VK_SUCCESS;
    if (ok) {
        VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                           .commandPool = pn->pool,
                                           .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                           .commandBufferCount = 1};
        ok = vkAllocateCommandBuffers(c->dev, &cai, &pn->cb) == VK_SUCCESS;
    }
    pthread_mutex_lock(&be->mu_slots);
    if (ok && be->npinned < MAX_PINNED) be->pinned[be->npinned++] = pn;
    else ok = false;
    pthread_mutex_unlock(&be->mu_slots);
    if (!ok) {
        pin_free(be, pn);
        return NULL;
    }
    return pn->h.map;
}

static bool vk_host_free(st_backend *b, void *p) {
    vk_be *be = (vk_be *)b;
    vk_pin *pn = NULL;
    pthread_mutex_lock(&be->mu_slots);
    for (int i = 0; i < be->npinned && !pn; i++)
        if (be->pinned[i]->h.map == p) {
            pn = be->pinned[i];
            be->pinned[i] = be->pinned[--be->npinned];
        }
    pthread_mutex_unlock(&be->mu_slots);
    pin_free(be, pn); /* waits for its copy in flight */
    return pn != NULL;
}

/* ------------------------------------------------------------ create / destroy */

static void vk_destroy(st_backend *b) {
    vk_be *be = (vk_be *)b;
    if (!be) return;
    st_vk_ctx *c = be->c;
    if (c && c->prof_host && be->host_passes)
        fprintf(stderr, "vulkan profile (host): %llu passes, %.1f us recording + %.1f us waiting for the GPU per pass\n",
                (unsigned long long)be->host_passes, be->host_ns / 1e3 / be->host_passes, be->wait_ns / 1e3 / be->host_passes);
    if (c && c->prof_host && be->ph_n) {
        double n = (double)be->ph_n * 1e3;
        fprintf(stderr, "vulkan profile (host, %llu one-token passes replayed whole): fence seen -> end() returns %.1f us, "
                        "-> next begin() %.1f, -> submission %.1f, submission %.1f, -> fence seen %.1f (GPU time %.1f)\n",
                (unsigned long long)be->ph_n, be->ph[0] / n, be->ph[1] / n, be->ph[2] / n, be->ph[3] / n, be->ph[4] / n, be->ph[5] / n);
    }
    if (c) {
        if (be->recording) vkEndCommandBuffer(be->cb[be->cur]);
        /* a pass queued ahead runs (this backend's, released by the claim
         * as any other's), and the queue is waited for: lavapipe's queue
         * thread still holds a batch's objects for a while after its
         * semaphore signals, and a released pass has no fence waited for */
        vk_queue_claim(c);
        spec_pickup(be);
        pthread_mutex_lock(&c->mu_qc);
        vkQueueWaitIdle(c->q_compute);
        pthread_mutex_unlock(&c->mu_qc);
        vk_queue_unclaim(c);
        if (be->tl) wait_value(be, be->submitted, NULL);
        for (int i = 0; i < be->nslots; i++) slot_release(be, be->slots[i]);
        for (int i = 0; i < be->npinned; i++) pin_free(be, be->pinned[i]);
        if (be->lc)
            for (int il = 0; il < be->hp.n_layer; il++)
                if (be->lc[il].valid) vk_free_dev(c, &be->lc[il].mem);
        for (int i = 0; i < be->nfc; i++) vk_free_dev(c, &be->fc[i].mem);
        vk_alloc *bufs[] = {&be->x, &be->xb, &be->q, &be->k, &be->v, &be->hb, &be->hb2, &be->aq, &be->ad,
                            &be->ab, &be->cs, &be->logits, &be->kc, &be->vc, &be->part, &be->dyn, &be->cnt};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) vk_free_dev(c, bufs[i]);
        for (int h = 0; h < 2; h++) {
            vk_hbuf_free(c, &be->in[h]);
            vk_hbuf_free(c, &be->out[h]);
            if (be->fences[h]) vkDestroyFence(c->dev, be->fences[h], NULL);
        }
        if (be->qp) vkDestroyQueryPool(c->dev, be->qp, NULL);
        if (be->pool) vkDestroyCommandPool(c->dev, be->pool, NULL);
        if (be->tl) vkDestroySemaphore(c->dev, be->tl, NULL);
        if (be->go) vkDestroySemaphore(c->dev, be->go, NULL);
        vk_ctx_put(c);
    }
    pthread_mutex_destroy(&be->mu_slots);
    pthread_mutex_destroy(&be->mu_busy);
    free(be->slots);
    free(be->lc);
    free(be->cs_host);
    free(be->gp);
    free(be->spec_cs);
    free(be->spec_cbs);
    free(be->pend);
    free(be);
}

static void vk_stats(st_backend *b, st_backend_stats *o) {
    vk_be *be = (vk_be *)b;
    memset(o, 0, sizeof *o);
    o->device = be->c->props.deviceName;
    o->busy_ns = atomic_load(&be->busy_ns);
    o->vram_used = atomic_load(&be->c->allocated);
    o->vram_budget = be->c->vram_bytes;
    uint64_t now = st_now_ns() / BUSY_BUCKET_NS, sum = 0;
    uint64_t window = 1000000000ull / BUSY_BUCKET_NS;
    pthread_mutex_lock(&be->mu_busy);
    for (int i = 0; i < BUSY_BUCKETS; i++)
        if (be->busy_idx[i] <= now && be->busy_idx[i] + window > now) sum += be->busy_bucket[i];
    pthread_mutex_unlock(&be->mu_busy);
    o->busy = sum / 1e9 > 1.0 ? 1.0 : sum / 1e9;
}

static const st_backend_ops vk_ops = {
    .name = "vulkan",
    .slot_alloc = vk_slot_alloc,
    .slot_free = vk_slot_free,
    .slot_upload = vk_slot_upload,
    .host_alloc = vk_host_alloc,
    .host_free = vk_host_free,
    .slot_upload_async = vk_slot_upload_async,
    .host_wait = vk_host_wait,
    .begin = vk_begin,
    .layer = vk_layer,
    .end = vk_end,
    .kv_truncate = vk_kv_truncate,
    .destroy = vk_destroy,
    .stats = vk_stats,
};

st_status st_vk_backend_new(const st_hparams *hp, int n_ctx, int n_batch, bool kv_f32, int device, st_backend **out,
                            st_error *err) {
    *out = NULL;
    if (n_ctx < 1 || n_batch < 1) return st_error_set(err, ST_ERR_ARG, "vulkan backend: context %d, batch %d", n_ctx, n_batch);
    vk_be *be = calloc(1, sizeof *be);
    if (!be) return st_error_set(err, ST_ERR_NOMEM, "out of memory");
    be->base.ops = &vk_ops;
    pthread_mutex_init(&be->mu_slots, NULL);
    pthread_mutex_init(&be->mu_busy, NULL);
    be->hp = *hp;
    be->n_ctx = n_ctx;
    be->n_batch = n_batch;
    be->kv_f32 = kv_f32;
    be->kv_elt = kv_f32 ? 4 : 2;
    be->dkv = hp->head_dim * hp->n_head_kv;
    be->maxn = hp->n_embd > hp->n_ff ? hp->n_embd : hp->n_ff;
    st_status rc = vk_ctx_get(device, &be->c, err);
    if (rc) goto fail;
    st_vk_ctx *c = be->c;
    if (hp->head_dim > 4 * (int)c->wg || hp->n_rot > hp->head_dim || hp->n_rot % 2 || hp->n_head % hp->n_head_kv) {
        rc = st_error_set(err, ST_ERR_UNSUPPORTED, "vulkan backend: head_dim %d / n_rot %d / heads %d:%d not supported",
                          hp->head_dim, hp->n_rot, hp->n_head, hp->n_head_kv);
        goto fail;
    }
    /* architecture features the shaders do not compute yet (docs/ARCHITECTURE.md,
     * "Architectures"): refuse, so that auto falls back to the CPU */
    if (hp->qkv_bias || hp->rope_type != ST_ROPE_NORMAL || hp->rope_freq_factors || hp->n_swa) {
        char need[128] = "";
        if (hp->qkv_bias) strcat(need, ", Q/K/V biases");
        if (hp->rope_type != ST_ROPE_NORMAL) strcat(need, ", NeoX rope");
        if (hp->rope_freq_factors) strcat(need, ", rope frequency factors");
        if (hp->n_swa) strcat(need, ", a sliding window");
        rc = st_error_set(err, ST_ERR_UNSUPPORTED, "vulkan backend: this %s model needs %s, not supported yet",
                          st_arch_name(hp->arch), need + 2);
        goto fail;
    }
    be->lc = calloc((size_t)hp->n_layer, sizeof *be->lc);
    be->cs_host = malloc((size_t)n_batch * hp->n_rot * sizeof(float) + 1);
    be->gp = calloc(2 * ((size_t)hp->n_layer + 2), sizeof *be->gp);
    be->spec_cs = malloc((size_t)hp->n_rot * sizeof(float) + 1);
    be->spec_cbs = calloc((size_t)hp->n_layer + 2, sizeof *be->spec_cbs);
    /* a submission holds at most every part and one live command buffer */
    be->pend = calloc((size_t)hp->n_layer + 3, sizeof *be->pend);
    const char *ge = getenv("STRATA_VK_GRAPH");
    be->graph_on = !c->prof && !(ge && strcmp(ge, "0") == 0);
    /* waits poll for up to 20 ms on a GPU (not on a CPU device such as
     * lavapipe, whose workers need every core); STRATA_VK_SPIN=0: never,
     * =1: on every device */
    const char *se = getenv("STRATA_VK_SPIN");
    bool spin = se ? strcmp(se, "0") != 0 : c->props.deviceType != VK_PHYSICAL_DEVICE_TYPE_CPU;
    be->spin_ns = spin ? 20000000ull : 0;
    /* one-token passes queued ahead (see "Passes queued ahead");
     * STRATA_VK_SPEC=0: never */
    const char *sp = getenv("STRATA_VK_SPEC");
    be->spec_on = !(sp && strcmp(sp, "0") == 0);
    const char *tc = getenv("STRATA_VK_TS_COPY");
    be->ts_copy = tc ? strcmp(tc, "0") != 0 : c->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
    /* decoding's attention: attn_dec.comp where its conditions hold (an
     * F16 cache; head_dim a multiple of 8 up to 128, its 16-byte vectors a
     * multiple of the invocations per position and dividing the
     * workgroup); chunks of a round (128 positions) unless
     * STRATA_VK_ATTN_DEC_CHUNK says otherwise (tests: several rounds a
     * chunk, or merges) */
    {
        uint32_t hd = (uint32_t)hp->head_dim, nv = hd / 8;
        be->attn_dec_size = nv <= 4 ? 0 : nv <= 8 ? 1 : 2;
        uint32_t maxv = 4u << be->attn_dec_size;
        uint32_t dw = c->attn_dec_wg ? vk_attn_dec_wg(c, maxv) : 0, tpp = dw / ATTN_DEC_ROUND;
        be->attn_dec = dw && c->attn_fast && !kv_f32 && hd % 8 == 0 && hd <= 128 && (hd / 8) % tpp == 0 && dw % (hd / 8) == 0;
        const char *dc = getenv("STRATA_VK_ATTN_DEC_CHUNK");
        be->attn_dec_chunk = dc && atoi(dc) > 0 ? (uint32_t)atoi(dc) : ATTN_DEC_ROUND;
    }
    const char *fe = getenv("STRATA_VK_FUSE");
    be->fuse = !(fe && strcmp(fe, "0") == 0);
    if (!be->lc || !be->cs_host || !be->gp || !be->pend || !be->spec_cs || !be->spec_cbs) { rc = st_error_set(err, ST_ERR_NOMEM, "out of memory"); goto fail; }
    VkDeviceSize B = (VkDeviceSize)n_batch, D = (VkDeviceSize)hp->n_embd, F = (VkDeviceSize)hp->n_ff,
                 DKV = (VkDeviceSize)be->dkv, M = (VkDeviceSize)be->maxn;
    VkDeviceSize kv_bytes = (VkDeviceSize)hp->n_layer * (VkDeviceSize)n_ctx * DKV * be->kv_elt;
    /* attention partials: what the context can use, at most ATTN_PART_BYTES */
    VkDeviceSize part_bytes = B * (VkDeviceSize)hp->n_head * (VkDeviceSize)((n_ctx + ATTN_MIN_CHUNK - 1) / ATTN_MIN_CHUNK) *
                              (VkDeviceSize)(hp->head_dim + 2) * 4;
    if (part_bytes > ATTN_PART_BYTES) part_bytes = ATTN_PART_BYTES;
    struct { vk_alloc *a; VkDeviceSize n; } bufs[] = {
        {&be->x, B * D * 4}, {&be->xb, B * D * 4}, {&be->q, B * D * 4}, {&be->k, B * DKV * 4}, {&be->v, B * DKV * 4},
        {&be->hb, B * F * 4}, {&be->hb2, B * F * 4}, {&be->aq, B * M}, {&be->ad, B * (M / 32 + 1) * 4},
        {&be->ab, B * (M / 16 + 1) * 4}, {&be->cs, B * (VkDeviceSize)hp->n_rot * 4 + 4},
        {&be->logits, B * (VkDeviceSize)hp->n_vocab * 4}, {&be->kc, kv_bytes}, {&be->vc, kv_bytes},
        {&be->part, part_bytes}, {&be->dyn, DYN_WORDS * 4}, {&be->cnt, ((VkDeviceSize)hp->n_head * B + 2 * (VkDeviceSize)hp->n_layer) * 4}};
    be->sig_base = (uint32_t)(hp->n_head * B);
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) bufs[i].a->block = -1;
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0] && !rc; i++) rc = vk_alloc_dev(c, bufs[i].n, bufs[i].a, err);
    if (rc) goto fail;
    {   /* the epilogues' counters start at 0 (and each use leaves them so) */
        void *zero = calloc(1, be->cnt.size);
        rc = zero ? vk_upload(c, &be->cnt, 0, zero, be->cnt.size, VK_NULL_HANDLE, 0, err) : st_error_set(err, ST_ERR_NOMEM, "out of memory");
        free(zero);
        if (rc) goto fail;
    }
    for (int h = 0; h < 2; h++) {
        if ((rc = vk_hbuf_new(c, dyn_at(be, h) + DYN_WORDS * 4, &be->in[h], err))) goto fail;
        if ((rc = vk_hbuf_new(c, ts_at(be, h) + 2 * sizeof(uint64_t), &be->out[h], err))) goto fail;
    }
    VkCommandPoolCreateInfo cpi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                   .queueFamilyIndex = c->qf_compute};
    if ((rc = vkerr(vkCreateCommandPool(c->dev, &cpi, NULL, &be->pool), "vkCreateCommandPool", err))) goto fail;
    VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                       .commandPool = be->pool,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                       .commandBufferCount = NCB};
    if ((rc = vkerr(vkAllocateCommandBuffers(c->dev, &cai, be->cb), "vkAllocateCommandBuffers", err))) goto fail;
    VkSemaphoreTypeCreateInfo sti = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_TYPE_CREATE_INFO, .semaphoreType = VK_SEMAPHORE_TYPE_TIMELINE};
    VkSemaphoreCreateInfo sci = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO, .pNext = &sti};
    if ((rc = vkerr(vkCreateSemaphore(c->dev, &sci, NULL, &be->tl), "vkCreateSemaphore", err))) goto fail;
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    for (int h = 0; h < 2; h++)
        if ((rc = vkerr(vkCreateFence(c->dev, &fci, NULL, &be->fences[h]), "vkCreateFence", err))) goto fail;
    if ((rc = vkerr(vkCreateSemaphore(c->dev, &sci, NULL, &be->go), "vkCreateSemaphore", err))) goto fail;
    c->spec_release = spec_release;
    if (c->ts_period > 0) {
        /* a pair per ring command buffer, and one per set of parts */
        VkQueryPoolCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO, .queryType = VK_QUERY_TYPE_TIMESTAMP, .queryCount = 2 * NCB + 4};
        if (vkCreateQueryPool(c->dev, &qi, NULL, &be->qp) != VK_SUCCESS) be->qp = VK_NULL_HANDLE;
    }
    *out = &be->base;
    return ST_OK;
fail:
    vk_destroy(&be->base);
    return rc ? rc : ST_ERR_INTERNAL;
}

bool st_vk_backend_figures_get(st_backend *b, st_vk_backend_figures *o) {
    memset(o, 0, sizeof *o);
    if (!b || b->ops != &vk_ops) return false;
    vk_be *be = (vk_be *)b;
    o->device = be->c->props.deviceName;
    o->busy_ns = atomic_load(&be->busy_ns);
    o->submits = atomic_load(&be->submits);
    o->vram_used = atomic_load(&be->c->allocated);
    o->vram_total = be->c->vram_bytes;
    o->weight_bytes = atomic_load(&be->weight_bytes);
    o->uploaded_bytes = atomic_load(&be->uploaded);
    o->parts_recorded = atomic_load(&be->parts_recorded);
    o->parts_replayed = atomic_load(&be->parts_replayed);
    o->spec_run = atomic_load(&be->spec_run);
    o->spec_cancelled = atomic_load(&be->spec_cancelled);
    o->spec_abandoned = atomic_load(&be->spec_abandoned);
    o->chained_layers = atomic_load(&be->chained);
    return true;
}

static st_status test_finish(vk_be *be, const vk_alloc *src, size_t bytes, void *dst, st_error *err);

st_status st_vk_backend_counters(st_backend *b, uint32_t *nonzero, st_error *err) {
    *nonzero = 0;
    if (!b || b->ops != &vk_ops) return st_error_set(err, ST_ERR_ARG, "not a Vulkan backend");
    vk_be *be = (vk_be *)b;
    size_t n = (size_t)be->cnt.size;
    if (n > be->out[0].size) return st_error_set(err, ST_ERR_INTERNAL, "counters larger than the read-back buffer");
    uint32_t *w = malloc(n);
    if (!w) return st_error_set(err, ST_ERR_NOMEM, "out of memory");
    st_status rc = cb_begin(be, err);
    if (!rc) rc = test_finish(be, &be->cnt, n, w, err);
    for (size_t i = 0; !rc && i < n / 4; i++) *nonzero += w[i] != 0;
    free(w);
    return rc;
}

/* ------------------------------------------------------------ engine hook */

static st_status vk_factory(const st_model *m, const st_session_params *p, st_backend **out, st_error *err) {
    int dev = p->device;
    if (p->backend == ST_BACKEND_AUTO) {
        dev = st_vk_probe_device(dev, err);
        if (dev < 0) return err && err->code ? err->code : ST_ERR_UNSUPPORTED;
    }
    return st_vk_backend_new(&m->hp, p->n_ctx, p->n_batch, p->kv_f32, dev, out, err);
}

void st_vk_register(void) { st_register_gpu_backend(vk_factory); }

/* ------------------------------------------------------------ test hooks */

/* A backend shaped so that its buffers hold the kernel's operands: rows of
 * n (n_embd = n_ff = n), n_tok tokens, n_out outputs per token. */
static st_status test_be(int device, int n, int n_tok, int n_out, vk_be **out, st_error *err) {
    st_hparams hp = {0};
    hp.n_vocab = n_out;
    hp.n_embd = n;
    hp.n_ff = n;
    hp.n_layer = 1;
    hp.n_head = 1;
    hp.n_head_kv = 1;
    hp.head_dim = 2;
    hp.n_rot = 2;
    hp.rope_base = 10000.0f;
    hp.rope_scale = 1.0f;
    hp.rms_eps = 1e-5f;
    st_backend *b = NULL;
    st_status rc = st_vk_backend_new(&hp, 1, n_tok, false, device, &b, err);
    *out = (vk_be *)b;
    return rc;
}

/* Submits what was recorded, copies `bytes` of src to the read-back buffer
 * and from there to dst. */
static st_status test_finish(vk_be *be, const vk_alloc *src, size_t bytes, void *dst, st_error *err) {
    VkCommandBuffer cb = be->cb[be->cur];
    VkBufferCopy cp = {src->off, 0, bytes};
    vk_barrier(cb); /* compute -> transfer */
    vkCmdCopyBuffer(cb, src->buf, be->out[0].buf, 1, &cp);
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT, .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    st_status rc = cb_submit(be, true, err);
    if (!rc) memcpy(dst, be->out[0].map, bytes);
    return rc;
}

st_status st_vk_test_matvec(int device, int type, const void *w, int ncols, int nrows, const float *x, int n_tok,
                            float *out, st_error *err) {
    vk_be *be = NULL;
    st_tensor t = {0};
    t.type = (st_type)type;
    t.ne0 = ncols;
    t.ne1 = nrows;
    t.row_bytes = st_row_size(t.type, ncols);
    t.data = w;
    t.nbytes = (uint64_t)t.row_bytes * (uint64_t)nrows;
    st_status rc = check_type(&t, false, "test weight", err);
    if (!rc) rc = test_be(device, ncols, n_tok, nrows, &be, err);
    dev_tensor dw;
    if (!rc) rc = fixed_tensor(be, &t, &dw, err);
    if (!rc) rc = vk_upload(be->c, &be->xb, 0, x, (size_t)n_tok * ncols * sizeof(float), VK_NULL_HANDLE, 0, err);
    if (!rc) rc = cb_begin(be, err);
    if (!rc) rc = rec_quantize(be, be->cb[be->cur], t.type, &be->xb, (uint32_t)ncols, n_tok, false, err);
    vk_bind ob;
    if (!rc) {
        ob = vk_bind_all(&be->logits);
        rc = rec_matvec(be, be->cb[be->cur], &t, &dw, &be->xb, &ob, 0, (uint32_t)nrows, false, n_tok, err);
    }
    if (!rc) rc = test_finish(be, &be->logits, (size_t)n_tok * nrows * sizeof(float), out, err);
    if (be) vk_destroy(&be->base);
    return rc;
}

const char *st_vk_test_kernel(int device, int type, int nrows, int n_tok) {
    st_vk_ctx *c = NULL;
    st_error err = {0};
    if (vk_ctx_get(device, &c, &err)) return NULL;
    int v = matmul_variant(c, (st_type)type, nrows, n_tok);
    const char *name = vk_pipe_name(v >= 0 ? matmul_pipe((st_type)type, v) : matvec_pipe((st_type)type));
    vk_ctx_put(c);
    return name;
}

st_status st_vk_test_rmsnorm(int device, const float *x, const float *w, int n, int n_tok, float eps, float *out,
                             st_error *err) {
    vk_be *be = NULL;
    st_tensor t = {0};
    t.type = ST_TYPE_F32;
    t.ne0 = n;
    t.ne1 = 1;
    t.row_bytes = (size_t)n * 4;
    t.data = w;
    t.nbytes = t.row_bytes;
    st_status rc = test_be(device, n, n_tok, n, &be, err);
    if (!rc) be->hp.rms_eps = eps;
    dev_tensor dw;
    if (!rc) rc = fixed_tensor(be, &t, &dw, err);
    if (!rc) rc = vk_upload(be->c, &be->x, 0, x, (size_t)n_tok * n * sizeof(float), VK_NULL_HANDLE, 0, err);
    if (!rc) rc = cb_begin(be, err);
    if (!rc) rc = rec_rmsnorm(be, be->cb[be->cur], 0, &dw, ST_TYPE_F32, ST_TYPE_F32, n_tok, false, err);
    if (!rc) rc = test_finish(be, &be->xb, (size_t)n_tok * n * sizeof(float), out, err);
    if (be) vk_destroy(&be->base);
    return rc;
}

st_status st_vk_test_swiglu(int device, float *g, const float *u, int n, st_error *err) {
    vk_be *be = NULL;
    st_status rc = test_be(device, n, 1, n, &be, err);
    if (!rc) rc = vk_upload(be->c, &be->hb, 0, g, (size_t)n * sizeof(float), VK_NULL_HANDLE, 0, err);
    if (!rc) rc = vk_upload(be->c, &be->hb2, 0, u, (size_t)n * sizeof(float), VK_NULL_HANDLE, 0, err);
    if (!rc) rc = cb_begin(be, err);
    if (!rc) rc = rec_act(be, be->cb[be->cur], 2, &be->hb, 0, (uint32_t)n, NULL, ST_TYPE_F32, &be->hb2, &be->hb, 2, 1, false, err);
    if (!rc) rc = test_finish(be, &be->hb, (size_t)n * sizeof(float), g, err);
    if (be) vk_destroy(&be->base);
    return rc;
}

/* ------------------------------------------------------------ microbenchmarks */

/* GPU time between two timestamps written around `reps` recorded ops. */
static st_status bench_time(vk_be *be, VkQueryPool qp, double *sec, int reps, st_error *err) {
    st_status rc = cb_submit(be, true, err);
    if (rc) return rc;
    uint64_t t[2];
    if (vkGetQueryPoolResults(be->c->dev, qp, 0, 2, sizeof t, t, sizeof t[0], VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT) != VK_SUCCESS)
        return st_error_set(err, ST_ERR_INTERNAL, "vulkan: timestamps unavailable");
    *sec = (double)(t[1] - t[0]) * be->c->ts_period * 1e-9 / reps;
    return ST_OK;
}

static st_status bench_qp(vk_be *be, VkQueryPool *qp, st_error *err) {
    if (be->c->ts_period <= 0) return st_error_set(err, ST_ERR_UNSUPPORTED, "vulkan: the device has no timestamps");
    VkQueryPoolCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO, .queryType = VK_QUERY_TYPE_TIMESTAMP, .queryCount = 2};
    return vkerr(vkCreateQueryPool(be->c->dev, &qi, NULL, qp), "vkCreateQueryPool", err);
}

st_status st_vk_bench_matvec(int device, int n, const int *types, const int *cols, const int *rows, int n_tok, int reps, bool chained,
                             double *sec, st_error *err) {
    int maxc = 0, maxr = 0;
    for (int j = 0; j < n; j++) {
        if (cols[j] > maxc) maxc = cols[j];
        if (rows[j] > maxr) maxr = rows[j];
    }
    vk_be *be = NULL;
    VkQueryPool qp = VK_NULL_HANDLE;
    st_status rc = test_be(device, maxc, n_tok, maxr, &be, err);
    if (!rc) rc = bench_qp(be, &qp, err);
    for (int j = 0; j < n && !rc; j++) {
        st_tensor t = {0};
        t.type = (st_type)types[j];
        t.ne0 = cols[j];
        t.ne1 = rows[j];
        t.row_bytes = st_row_size(t.type, cols[j]);
        t.nbytes = (uint64_t)t.row_bytes * (uint64_t)rows[j];
        /* copies of the matrix, cycled, so that every product reads from
         * device memory and not from the L2 cache (50-60 MiB on H100/H200) */
        int ncopy = (int)((512ull << 20) / t.nbytes) + 1;
        if (ncopy > 64) ncopy = 64;
        vk_alloc mem[64];
        int nmem = 0;
        if ((rc = check_type(&t, false, "bench weight", err))) break;
        uint8_t *host = malloc(t.nbytes);
        if (!host) rc = st_error_set(err, ST_ERR_NOMEM, "out of memory");
        uint64_t s = 0x9E3779B97F4A7C15ull;
        for (uint64_t i = 0; host && i < t.nbytes; i++) {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            host[i] = (uint8_t)s;
        }
        for (int i = 0; i < ncopy && !rc; i++) {
            rc = vk_alloc_dev(be->c, t.nbytes, &mem[i], err);
            if (!rc) nmem++;
            if (!rc) rc = vk_upload(be->c, &mem[i], 0, host, t.nbytes, VK_NULL_HANDLE, 0, err);
        }
        free(host);
        if (!rc) rc = cb_begin(be, err);
        VkCommandBuffer cb = rc ? VK_NULL_HANDLE : be->cb[be->cur];
        vk_bind ob = vk_bind_all(&be->logits);
        if (!rc) rc = rec_quantize(be, cb, t.type, &be->xb, (uint32_t)cols[j], n_tok, false, err);
        if (!rc) {
            /* a warm-up pass over every copy, then the timed ones */
            for (int i = 0; i < ncopy && !rc; i++) {
                dev_tensor dw = {&mem[i], 0, NULL};
                rc = rec_matvec(be, cb, &t, &dw, &be->xb, &ob, 0, (uint32_t)rows[j], false, n_tok, err);
            }
            vkCmdResetQueryPool(cb, qp, 0, 2);
            vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, qp, 0);
            for (int r = 0; r < reps && !rc; r++) {
                dev_tensor dw = {&mem[r % ncopy], 0, NULL};
                rc = rec_matvec_b(be, cb, &t, &dw, &be->xb, &ob, 0, (uint32_t)rows[j], false, n_tok, chained, err);
            }
            vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, qp, 1);
        }
        if (!rc) rc = bench_time(be, qp, &sec[j], reps, err);
        for (int i = 0; i < nmem; i++) vk_free_dev(be->c, &mem[i]);
    }
    if (qp) vkDestroyQueryPool(be->c->dev, qp, NULL);
    if (be) vk_destroy(&be->base);
    return rc;
}

st_status st_vk_bench_copy(int device, uint64_t bytes, int reps, double *read_sec, double *d2d_sec, double *h2d_sec,
                           double *pinned_gbs, st_error *err) {
    vk_be *be = NULL;
    vk_alloc a = {.block = -1}, b = {.block = -1};
    VkQueryPool qp = VK_NULL_HANDLE;
    uint8_t *host = NULL;
    bytes &= ~(uint64_t)15;
    st_status rc = test_be(device, 64, 1, 64, &be, err);
    if (!rc) rc = vk_alloc_dev(be->c, bytes, &a, err);
    if (!rc) rc = vk_alloc_dev(be->c, bytes, &b, err);
    if (!rc) rc = bench_qp(be, &qp, err);
    VkPipeline p = VK_NULL_HANDLE;
    if (!rc) rc = pipe(be, VKP_BW_READ, &p, err);
    /* reads by a compute shader */
    if (!rc) rc = cb_begin(be, err);
    if (!rc) {
        VkCommandBuffer cb = be->cb[be->cur];
        uint32_t gx, gy;
        vk_grid(be->c, 8192, &gx, &gy);
        vk_bind bb[2] = {vk_bind_all(&a), vk_bind_all(&be->logits)};
        struct { uint32_t n16, gx; } pc = {(uint32_t)(bytes / 16), gx};
        vk_dispatch(be->c, cb, p, bb, 2, &pc, sizeof pc, gx, gy, 1); /* warm-up */
        vkCmdResetQueryPool(cb, qp, 0, 2);
        vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, qp, 0);
        for (int r = 0; r < reps; r++) {
            bb[0] = vk_bind_all(r % 2 ? &a : &b);
            vk_dispatch(be->c, cb, p, bb, 2, &pc, sizeof pc, gx, gy, 1);
        }
        vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, qp, 1);
        rc = bench_time(be, qp, read_sec, reps, err);
    }
    /* vkCmdCopyBuffer */
    if (!rc) rc = cb_begin(be, err);
    if (!rc) {
        VkCommandBuffer cb = be->cb[be->cur];
        VkBufferCopy cp = {a.off, b.off, bytes};
        vkCmdCopyBuffer(cb, a.buf, b.buf, 1, &cp); /* warm-up */
        vk_barrier(cb);
        vkCmdResetQueryPool(cb, qp, 0, 2);
        vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, qp, 0);
        for (int r = 0; r < reps; r++) {
            VkBufferCopy c2 = r % 2 ? (VkBufferCopy){b.off, a.off, bytes} : cp;
            vkCmdCopyBuffer(cb, r % 2 ? b.buf : a.buf, r % 2 ? a.buf : b.buf, 1, &c2);
            vk_barrier(cb);
        }
        vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, qp, 1);
        rc = bench_time(be, qp, d2d_sec, reps, err);
    }
    /* DMA alone: the pinned staging buffer to device memory (GPU time). The
     * first copies on a fresh machine ran at half the rate (27 vs 51 GB/s on
     * an H100: mappings set up on first use), so a round of warm-up, then
     * the best of three: the bound streaming is held to is the link's best. */
    for (int round = 0; round < 4 && !rc; round++) {
        rc = cb_begin(be, err);
        if (rc) break;
        VkCommandBuffer cb = be->cb[be->cur];
        VkDeviceSize sb = be->c->staging.size;
        VkBufferCopy cp = {0, a.off, sb};
        vkCmdResetQueryPool(cb, qp, 0, 2);
        vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, qp, 0);
        for (int r = 0; r < reps; r++) vkCmdCopyBuffer(cb, be->c->staging.buf, a.buf, 1, &cp);
        vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, qp, 1);
        double s;
        rc = bench_time(be, qp, &s, reps, err);
        if (!rc && round > 0 && (double)sb / s / 1e9 > *pinned_gbs) *pinned_gbs = (double)sb / s / 1e9;
    }
    /* host to device through the staging path the layer store uses (memcpy
     * into pinned staging + copy on the transfer queue), from pageable memory */
    if (!rc && !(host = malloc(bytes))) rc = st_error_set(err, ST_ERR_NOMEM, "out of memory");
    if (!rc) {
        memset(host, 1, bytes);
        rc = vk_upload(be->c, &a, 0, host, bytes, VK_NULL_HANDLE, 0, err);
        uint64_t t0 = st_now_ns();
        for (int r = 0; r < reps && !rc; r++) rc = vk_upload(be->c, &a, 0, host, bytes, VK_NULL_HANDLE, 0, err);
        uint64_t v = atomic_load(&be->c->up_value);
        VkSemaphoreWaitInfo wi = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_WAIT_INFO, .semaphoreCount = 1, .pSemaphores = &be->c->up_sem, .pValues = &v};
        if (!rc) rc = vkerr(vkWaitSemaphores(be->c->dev, &wi, UINT64_MAX), "vkWaitSemaphores", err);
        *h2d_sec = (double)(st_now_ns() - t0) * 1e-9 / reps;
    }
    free(host);
    if (qp) vkDestroyQueryPool(be->c->dev, qp, NULL);
    if (a.block >= 0) vk_free_dev(be->c, &a);
    if (b.block >= 0) vk_free_dev(be->c, &b);
    if (be) vk_destroy(&be->base);
    return rc;
}
