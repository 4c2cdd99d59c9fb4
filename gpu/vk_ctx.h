/* vk_ctx.h — the Vulkan device context of gpu/ (internal): instance and
 * device selection, queues, sub-allocated device memory, host-visible
 * buffers, the staging upload path, compute pipelines from the embedded
 * SPIR-V and command recording helpers. One context per device, shared by
 * every session that uses it (reference counted). See docs/VULKAN.md. */
#ifndef ST_VK_CTX_H
#define ST_VK_CTX_H

#include "error.h"
#include "strata_vk.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <vulkan/vulkan.h>

/* The pipelines, one per shader of gpu/shaders (names as in vk_shaders.c). */
typedef enum {
    VKP_ACT, VKP_KV_STORE, VKP_ATTN,
    VKP_MATVEC_F32, VKP_MATVEC_F16, VKP_MATVEC_Q4_0, VKP_MATVEC_Q8_0,
    VKP_MATVEC_Q4_K, VKP_MATVEC_Q5_K, VKP_MATVEC_Q6_K,
    VKP_BW_READ,
    /* matmul.comp with the large tiles (mm[VK_MM_LARGE]) and the same
     * SPIR-V with the small ones (mm[VK_MM_SMALL]) */
    VKP_MATMUL_F32, VKP_MATMUL_F16, VKP_MATMUL_Q4_0, VKP_MATMUL_Q8_0,
    VKP_MATMUL_Q4_K, VKP_MATMUL_Q5_K, VKP_MATMUL_Q6_K,
    VKP_MATMUL_S_F32, VKP_MATMUL_S_F16, VKP_MATMUL_S_Q4_0, VKP_MATMUL_S_Q8_0,
    VKP_MATMUL_S_Q4_K, VKP_MATMUL_S_Q5_K, VKP_MATMUL_S_Q6_K,
    /* matmul_cm.comp: cooperative matrices (VK_NV_cooperative_matrix,
     * mm[VK_MM_CM]); only created when c->coopmat */
    VKP_MATMUL_CM_F32, VKP_MATMUL_CM_F16, VKP_MATMUL_CM_Q4_0, VKP_MATMUL_CM_Q8_0,
    VKP_MATMUL_CM_Q4_K, VKP_MATMUL_CM_Q5_K, VKP_MATMUL_CM_Q6_K,
    /* matvec with its epilogue (matvec.comp's EPI 1), per type as above */
    VKP_MATVEC_E1_F32, VKP_MATVEC_E1_F16, VKP_MATVEC_E1_Q4_0, VKP_MATVEC_E1_Q8_0,
    VKP_MATVEC_E1_Q4_K, VKP_MATVEC_E1_Q5_K, VKP_MATVEC_E1_Q6_K,
    /* ... with the prologue (PRO_N = pro_n), without and with EPI 1 */
    VKP_MATVEC_P_F32, VKP_MATVEC_P_F16, VKP_MATVEC_P_Q4_0, VKP_MATVEC_P_Q8_0,
    VKP_MATVEC_P_Q4_K, VKP_MATVEC_P_Q5_K, VKP_MATVEC_P_Q6_K,
    VKP_MATVEC_PE1_F32, VKP_MATVEC_PE1_F16, VKP_MATVEC_PE1_Q4_0, VKP_MATVEC_PE1_Q8_0,
    VKP_MATVEC_PE1_Q4_K, VKP_MATVEC_PE1_Q5_K, VKP_MATVEC_PE1_Q6_K,
    VKP_ACT_W,  /* act with the mat-vec's workgroup size (bit-identical to the prologue) */
    /* matmul_cm.comp with the small tiles (mm[VK_MM_CM_S]: products of few
     * rows); only created when c->coopmat */
    VKP_MATMUL_CMS_F32, VKP_MATMUL_CMS_F16, VKP_MATMUL_CMS_Q4_0, VKP_MATMUL_CMS_Q8_0,
    VKP_MATMUL_CMS_Q4_K, VKP_MATMUL_CMS_Q5_K, VKP_MATMUL_CMS_Q6_K,
    VKP_ATTN_F,  /* attn storing the new key and value (its FRESH, one-token passes) */
    /* attn_dec: one-token passes, F16 cache (workgroups of attn_dec_wg),
     * for head rows of up to 4, 8 and 16 16-byte vectors (its MAXV), then
     * the same with FRESH */
    VKP_ATTN_D4, VKP_ATTN_D8, VKP_ATTN_D16,
    VKP_ATTN_DF4, VKP_ATTN_DF8, VKP_ATTN_DF16,
    VKP_COUNT
} vk_pipe_id;

#define VK_MAX_BINDINGS 12

/* The tile shape of matmul.comp pipelines (its specialization constants
 * 3-8): a workgroup of wg = (bm / tm) * (bn / tn) invocations computes bm
 * rows x bn tokens, k in steps of bk, tm x tn per invocation. Fitted to the
 * device's limits (invocations, shared memory) when the context opens;
 * ok = false: that variant is not used. For matmul_cm.comp (VK_MM_CM), tm
 * x tn is the part of one subgroup (multiples of 16) and wg = (bm / tm) *
 * (bn / tn) * the subgroup size. */
typedef struct vk_mm_cfg {
    uint32_t wg, bm, bn, bk, tm, tn;
    bool ok;
} vk_mm_cfg;
enum { VK_MM_LARGE, VK_MM_SMALL, VK_MM_CM, VK_MM_CM_S, VK_MM_N };
#define VK_PUSH_BYTES 128
#define VK_PROF_MAX 4096
#define VK_STAGING_SLOTS 4

/* A range of a device-local pool block (sub-allocation). */
typedef struct vk_alloc {
    VkBuffer buf;        /* the block's buffer */
    VkDeviceSize off;    /* where this allocation starts in it */
    VkDeviceSize size;
    int block;           /* -1: none */
} vk_alloc;

/* A buffer with its own memory, host-visible and mapped (staging, inputs,
 * read-back). */
typedef struct vk_hbuf {
    VkBuffer buf;
    VkDeviceMemory mem;
    void *map;
    VkDeviceSize size;
} vk_hbuf;

typedef struct vk_block {
    VkDeviceMemory mem;
    VkBuffer buf;
    VkDeviceSize size;
    /* free ranges, sorted by offset */
    VkDeviceSize *fo, *fs;
    int nfree, capfree;
} vk_block;

typedef struct st_vk_ctx {
    int index;                       /* physical device index */
    int refs;
    VkInstance inst;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice phys;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties memprops;
    VkDevice dev;
    uint32_t qf_compute, qf_transfer;
    VkQueue q_compute, q_transfer;   /* the same queue when the device has no separate transfer family */
    bool separate_transfer;
    pthread_mutex_t mu_qc, mu_qt;    /* queue access (external synchronization); mu_qt unused without a transfer queue */
    /* A pass queued ahead, waiting on the GPU for its host's signal
     * (vk_backend.c, "Passes queued ahead"): work submitted behind it on
     * the compute queue would wait for that signal too, so every other
     * submission to that queue first releases it (vk_queue_claim). The
     * pending pass's backend, and its release (both under mu_spec, which
     * is taken before mu_qc). */
    pthread_mutex_t mu_spec;
    void *spec_owner;
    void (*spec_release)(void *owner);
    uint32_t subgroup_size;
    bool subgroup_arith;
    uint32_t wg;                     /* workgroup size of the kernels: a multiple of the subgroup size */
    uint32_t mv_wg, mv_nr;           /* matvec.comp's (and act.comp's) workgroup size; rows per group (quantized types) */
    uint32_t mv_nr_k[7];             /* rows per group by mat-vec type (VKP_MATVEC_* order): see vk_ctx.c */
    uint32_t pro_n;                  /* the mat-vec prologue's capacity in elements (0: no prologue) */
    uint32_t pro_maxn;               /* ... used for rows of at most this many elements */
    uint32_t mv_pro_groups, mv_groups;  /* mat-vec workgroups at most, with a prologue / without (0: one per row group) */
    bool pipe_stats;                 /* STRATA_VK_PIPE_STATS=1: each pipeline's driver statistics on stderr */
    uint32_t pro_modes;              /* ... for these steps: 1 the attention output, 2 the norms, 4 SwiGLU, 8 the final norm */
    bool attn_fast;                  /* attn.comp's 16-byte-vector path for F16 caches */
    uint32_t attn_dec_wg;            /* attn_dec.comp's workgroup size (a multiple of its 128-position round); 0: not used */
    bool chain;                      /* one-token passes: the attention chained after Q/K/V without a barrier (vk_backend.c) */
    uint32_t attn_prompt_chunks;     /* 0: prompt batches chunk like decoding; else at most this many chunks */
    vk_mm_cfg mm[VK_MM_N];           /* matmul tiles: large, small, cooperative matrix */
    bool coopmat;                    /* VK_NV_cooperative_matrix (16x16x16 F16 -> F32) enabled and asked for (STRATA_VK_COOPMAT=1) */
    uint32_t mm_min_tok;             /* prompt batches of at least this many tokens use matmul (0: never) */
    VkDeviceSize ssbo_align, ssbo_range;
    uint32_t max_groups_x;
    float ts_period;                 /* ns per timestamp tick; 0 = no timestamps */
    uint32_t mt_device, mt_host;     /* memory types */
    uint64_t vram_bytes;             /* size of the largest device-local heap */
    VkDeviceSize vram_limit;         /* STRATA_VK_VRAM_LIMIT (tests): device memory beyond it is refused; 0 = none */

    /* device memory pools */
    pthread_mutex_t mu_alloc;
    vk_block *blocks;
    int nblocks;
    _Atomic uint64_t allocated;

    /* pipelines (created on first use) */
    pthread_mutex_t mu_pipe;
    VkDescriptorSetLayout dsl;
    VkPipelineLayout layout;
    VkPipeline pipes[VKP_COUNT];
    PFN_vkCmdPushDescriptorSetKHR push_desc;

    /* uploads: a staging ring of VK_STAGING_SLOTS slots, each with a command
     * buffer on the transfer queue (or the compute queue) and a fence; a
     * timeline semaphore counting uploads */
    pthread_mutex_t mu_up;
    vk_hbuf staging;
    VkCommandPool up_pool;
    VkCommandBuffer up_cb[VK_STAGING_SLOTS];
    VkFence up_fence[VK_STAGING_SLOTS];
    bool up_busy[VK_STAGING_SLOTS];     /* a copy from the slot was submitted (its fence) */
    bool up_filling[VK_STAGING_SLOTS];  /* a thread is writing into the slot */
    pthread_cond_t up_cv;               /* a slot was released */
    int up_next;
    VkSemaphore up_sem;
    _Atomic uint64_t up_value;

    /* STRATA_VK_PROFILE=1: a timestamp after every dispatch; GPU time per
     * pipeline is summed and printed on stderr when the context closes.
     * For benchmarking one session at a time (not thread-safe). */
    bool prof;
    bool prof_host;                  /* =1 or =host: host recording vs waiting time per pass (no timestamps with =host) */
    VkQueryPool prof_qp;
    uint32_t prof_n;
    int16_t prof_id[VK_PROF_MAX];
    double prof_ns[VKP_COUNT + 1];
    uint64_t prof_cnt[VKP_COUNT + 1];
} st_vk_ctx;

/* Opens (or shares) the context of device `index`, -1 = the preferred
 * device (a discrete GPU first). */
st_status vk_ctx_get(int index, st_vk_ctx **out, st_error *err);
void vk_ctx_put(st_vk_ctx *c);

/* Device-local memory from the pools; a zero-size request gets a minimal one. */
st_status vk_alloc_dev(st_vk_ctx *c, VkDeviceSize size, vk_alloc *out, st_error *err);
void vk_free_dev(st_vk_ctx *c, vk_alloc *a);
/* Before a submission to the compute queue: takes mu_spec and releases a
 * pass queued ahead there (the submitter's own included); vk_queue_unclaim
 * after the submission. */
void vk_queue_claim(st_vk_ctx *c);
void vk_queue_unclaim(st_vk_ctx *c);
st_status vk_hbuf_new(st_vk_ctx *c, VkDeviceSize size, vk_hbuf *out, st_error *err);
void vk_hbuf_free(st_vk_ctx *c, vk_hbuf *b);

/* Copies n host bytes into dst at off through the staging ring, on the
 * transfer queue. Returns once src has been copied into the ring (src may
 * be reused); the copies land later: compute submissions wait for them on
 * the GPU (up_sem). If wait_sem is not NULL, the GPU copy first waits for
 * it to reach wait_value (the compute work still reading the destination).
 * Thread-safe; several threads copy into their slots at once. */
st_status vk_upload(st_vk_ctx *c, const vk_alloc *dst, VkDeviceSize off, const void *src, size_t n,
                    VkSemaphore wait_sem, uint64_t wait_value, st_error *err);

/* The same from n bytes of a host-visible buffer the device copies from
 * directly (no host copy); returns once the copy has landed. */
st_status vk_upload_pinned(st_vk_ctx *c, const vk_alloc *dst, VkDeviceSize off, VkBuffer src, VkDeviceSize src_off, size_t n,
                           VkSemaphore wait_sem, uint64_t wait_value, st_error *err);

/* The same recorded on the caller's command buffer (from a pool of the
 * transfer family, qf_transfer) and signalled on its fence, returning once
 * submitted: the caller owns cb and waits for fence before reusing src or
 * cb. Compute submissions wait for the copy on the GPU as for vk_upload; the
 * copy starts after the copies submitted before it have landed. */
st_status vk_upload_pinned_async(st_vk_ctx *c, VkCommandBuffer cb, VkFence fence, const vk_alloc *dst, VkDeviceSize off,
                                 VkBuffer src, VkDeviceSize src_off, size_t n, VkSemaphore wait_sem, uint64_t wait_value,
                                 st_error *err);

/* Whether the mat-vec of type index k (F32, F16, Q4_0, Q8_0, Q4_K, Q5_K,
 * Q6_K: VKP_MATVEC_* order) runs with workgroups of mv_wg (else wg). */
bool vk_mv_wide(int k);
/* Rows per group of the mat-vec of type index k (the shader's NR). */
uint32_t vk_mv_nr(const st_vk_ctx *c, int k);
VkPipeline vk_pipeline(st_vk_ctx *c, vk_pipe_id id, st_error *err);
const char *vk_pipe_name(vk_pipe_id id);
uint32_t vk_attn_dec_wg(const st_vk_ctx *c, uint32_t maxv);

/* A storage-buffer binding: the byte range [off, off + range) of buf. */
typedef struct vk_bind {
    VkBuffer buf;
    VkDeviceSize off, range;
} vk_bind;

/* Binding for bytes [off, off + n) of a: the range starts at an offset
 * aligned for the device; *skip gets the bytes from there to off. */
vk_bind vk_bind_range(const st_vk_ctx *c, const vk_alloc *a, VkDeviceSize off, VkDeviceSize n, uint32_t *skip);
static inline vk_bind vk_bind_all(const vk_alloc *a) { vk_bind b = {a->buf, a->off, a->size}; return b; }

/* Records one dispatch: pushes the bindings (0..nb-1) and push constants,
 * then a compute-to-compute memory barrier after it (a transfer reading its
 * output needs vk_barrier first). */
void vk_dispatch(st_vk_ctx *c, VkCommandBuffer cb, VkPipeline pipe, const vk_bind *b, int nb, const void *push,
                 uint32_t push_bytes, uint32_t gx, uint32_t gy, uint32_t gz);
/* The same without the barrier: for dispatches independent of the next
 * ones (the caller records vk_barrier before whatever depends on them). */
void vk_dispatch_nb(st_vk_ctx *c, VkCommandBuffer cb, VkPipeline pipe, const vk_bind *b, int nb, const void *push,
                    uint32_t push_bytes, uint32_t gx, uint32_t gy, uint32_t gz);
/* Compute and transfer writes before it -> reads and writes after it. */
/* vk_dispatch with the group counts read by the device from args at
 * args_off (three uint32: x, y, z; the buffer written before a barrier that
 * includes VK_ACCESS_INDIRECT_COMMAND_READ_BIT); then a compute barrier. */
void vk_dispatch_indirect(st_vk_ctx *c, VkCommandBuffer cb, VkPipeline pipe, const vk_bind *b, int nb, const void *push,
                          uint32_t push_bytes, VkBuffer args, VkDeviceSize args_off);
void vk_barrier(VkCommandBuffer cb);
/* Compute shader writes -> compute shader reads and writes (lighter: the
 * barrier between two dispatches). */
void vk_barrier_compute(VkCommandBuffer cb);
/* Profiling marks (no-ops unless STRATA_VK_PROFILE=1): vk_prof_start at the
 * start of a command buffer, vk_prof_collect once every submission so far
 * has finished. */
void vk_prof_start(st_vk_ctx *c, VkCommandBuffer cb);
void vk_prof_collect(st_vk_ctx *c);
/* Splits n workgroups into a grid (*gx, *gy) with gx <= the device limit. */
void vk_grid(const st_vk_ctx *c, uint32_t n, uint32_t *gx, uint32_t *gy);

/* Validation messages of severity error seen so far (STRATA_VK_VALIDATION=1). */
uint64_t vk_validation_errors(void);

const char *vk_result_str(VkResult r);

#endif
