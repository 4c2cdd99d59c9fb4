/* strata.h — the public API of the strata engine.
 *
 * This is what the terminal UI, the database layer, the benchmarks and the
 * CLI use; nothing above core/ includes any other core header except
 * error.h, gguf.h and tokenizer.h (which this one pulls in).
 *
 *   st_model_open()  ->  st_session_new()  ->  st_generate(cb) ... -> free
 *
 * Threading: one thread drives a session (st_generate / st_session_eval);
 * st_session_cancel() and st_session_stats() may be called from any thread. */
#ifndef STRATA_H
#define STRATA_H

#include "error.h"
#include "gguf.h"
#include "tokenizer.h"
#include "chat.h"
#include <stdbool.h>
#include <stdint.h>

#define STRATA_VERSION "0.1.0"

typedef struct st_model st_model;
typedef struct st_session st_session;

/* ---- model ---- */
typedef struct st_model_params {
    int n_threads;  /* compute threads; 0 = number of physical cores */
} st_model_params;

void st_model_params_default(st_model_params *p);
/* Opens a GGUF file, validates the architecture and every tensor's shape and
 * type, and loads the tokenizer. Weights are used in place from the mmap. */
st_status st_model_open(const char *path, const st_model_params *p, st_model **out, st_error *err);
void st_model_close(st_model *m);

typedef struct st_model_info {
    char name[128];        /* general.name or the file's base name */
    char arch[32];         /* "llama" */
    char ftype[32];        /* most common weight type of the blocks, e.g. "Q4_K" or "Q4_K/Q6_K" */
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx_train, n_rot;
    uint64_t n_params;
    uint64_t file_size;
    uint64_t weight_bytes; /* bytes of all tensors */
    uint64_t layer_bytes;  /* bytes of the transformer blocks */
} st_model_info;
void st_model_get_info(const st_model *m, st_model_info *out);
const st_tokenizer *st_model_tokenizer(const st_model *m);
const char *st_model_path(const st_model *m);

/* ---- session: a context (KV cache) over a model ---- */
/* The layer store (docs/STORE.md). With neither cache_layers nor mem_budget
 * the layers are used in place from the mmap (no copies, no threads). With
 * either, at most that many layers are resident in slots, streamed from the
 * file with prefetch. */
typedef enum { ST_CACHE_RING = 0, ST_CACHE_LRU = 1 } st_cache_policy;
#define ST_PREFETCH_AUTO 0    /* adaptive prefetch distance */
#define ST_PREFETCH_OFF (-1)  /* no prefetch threads: every load is synchronous */

typedef enum { ST_BACKEND_CPU = 0, ST_BACKEND_VULKAN = 1, ST_BACKEND_AUTO = 2 } st_backend_kind;

typedef struct st_session_params {
    int n_ctx;        /* context length; 0 = min(model's training context, 4096) */
    int n_batch;      /* prompt tokens per forward batch; 0 = 512 */
    bool kv_f32;      /* KV cache in F32 instead of F16 */
    /* layer store; all 0 = the default (layers in place from the mmap) */
    int cache_layers;        /* budget in layers; 0 = none */
    uint64_t mem_budget;     /* budget in bytes (layer slots + resident output tensors); 0 = none */
    st_cache_policy cache_policy;
    int prefetch;            /* ST_PREFETCH_AUTO, ST_PREFETCH_OFF, or a fixed distance in layers */
    int prefetch_threads;    /* 0 = auto */
    int ring_slots;          /* streaming slots of the ring policy; 0 = auto */
    bool direct_io;          /* O_DIRECT reads into aligned slots (falls back to pread if unsupported) */
    uint32_t prefetch_chunk; /* bytes per read/upload chunk, the unit the readers share a layer's load in; 0 = 16 MiB */
    uint64_t host_cache;     /* GPU slots: bytes of pinned host memory that keep streamed layers (read once); 0 = none */
    /* compute backend (docs/VULKAN.md) */
    st_backend_kind backend; /* ST_BACKEND_CPU (the default), ST_BACKEND_VULKAN, ST_BACKEND_AUTO */
    int device;              /* Vulkan device index (strata devices); -1 = choose (a discrete GPU first) */
} st_session_params;

/* GPU backends live outside core (gpu/): a program that links one registers
 * it (st_vk_register()), and sessions asking for ST_BACKEND_VULKAN, or
 * ST_BACKEND_AUTO, get it from this hook. AUTO: the hook fails when there is
 * no suitable device and the session falls back to the CPU. */
typedef struct st_backend st_backend;
typedef st_status (*st_gpu_backend_fn)(const st_model *m, const st_session_params *p, st_backend **out, st_error *err);
void st_register_gpu_backend(st_gpu_backend_fn fn);

/* The longest context a session accepts (positions): 2^22. */
#define ST_MAX_CTX (1 << 22)

void st_session_params_default(st_session_params *p);
/* Refuses, before allocating anything, n_ctx above ST_MAX_CTX (ST_ERR_ARG,
 * the message states the limit) and a session whose host memory (KV cache
 * 2 x n_layer x n_ctx x n_embd_kv x 2 or 4 bytes, activation buffers, layer
 * slots) exceeds what is available (ST_ERR_NOMEM, the message gives every
 * figure and where the available figure comes from; see st_set_mem_limit). */
st_status st_session_new(st_model *m, const st_session_params *p, st_session **out, st_error *err);
void st_session_free(st_session *s);
int st_session_n_ctx(const st_session *s);
int st_session_n_past(const st_session *s);   /* tokens in the KV cache */
/* Forget everything after the first n_past tokens (keeps the cache prefix). */
void st_session_rewind(st_session *s, int n_past);
/* Whether a prompt of n_prompt tokens fits after what the session holds
 * with room left for at least one generated token (n_past + n_prompt <
 * n_ctx). Otherwise ST_ERR_CONTEXT with a message naming the prompt's tokens,
 * the ones already held and n_ctx. st_generate checks this itself before
 * evaluating anything; callers use it to refuse before echoing a prompt. */
st_status st_session_check_prompt(const st_session *s, int n_prompt, st_error *err);

/* Runs the model over n tokens appended at position n_past. With all_logits,
 * logits of every token are kept (st_session_logits(s, i) for i < n);
 * otherwise only the last one (i = n-1). */
st_status st_session_eval(st_session *s, const int32_t *tokens, int n, bool all_logits, st_error *err);
const float *st_session_logits(const st_session *s, int i);

/* ---- sampling ---- */
typedef struct st_sampler_params {
    float temp;            /* <= 0: greedy (argmax) */
    int top_k;             /* <= 0: off */
    float top_p;           /* >= 1: off */
    float min_p;           /* <= 0: off */
    float repeat_penalty;  /* 1: off */
    int repeat_last_n;     /* window of recent tokens the penalty looks at */
    uint64_t seed;
} st_sampler_params;
void st_sampler_params_default(st_sampler_params *p);  /* llama.cpp's defaults */

typedef struct st_sampler st_sampler;
st_status st_sampler_new(const st_sampler_params *p, int n_vocab, st_sampler **out, st_error *err);
void st_sampler_free(st_sampler *s);
/* Records a token as part of the history (prompt or generated). */
void st_sampler_accept(st_sampler *s, int32_t token);
/* Picks the next token from logits[n_vocab] (not modified). */
int32_t st_sampler_sample(st_sampler *s, const float *logits);

/* ---- generation ---- */
/* Called for each generated token with its text (raw bytes: a UTF-8
 * character may be split across tokens). Return false to stop. */
typedef bool (*st_token_cb)(void *user, int32_t token, const char *piece, int len);

typedef struct st_gen_params {
    int n_predict;          /* tokens to generate; < 0: until EOS or context full */
    bool ignore_eos;
    st_sampler_params sampling;
} st_gen_params;
void st_gen_params_default(st_gen_params *p);

/* Evaluates the prompt (after what the session already holds) and generates.
 * Returns ST_OK when done (n_predict reached, EOS, or the callback said stop),
 * ST_ERR_CANCELLED after st_session_cancel, ST_ERR_CONTEXT when the context
 * is full. The generated tokens stay in the session's KV cache.
 *
 * Context: a prompt that leaves no room for a generated token (see
 * st_session_check_prompt) is refused before anything is evaluated
 * (ST_ERR_CONTEXT, n_predict != 0). When the cache reaches n_ctx during
 * generation, generation stops (no sliding window, no context shift): every
 * token emitted so far is in the cache, the next one is not emitted, the call
 * returns ST_ERR_CONTEXT with a message giving n_ctx and the prompt and
 * generated counts, and st_stats.finish says ST_FINISH_CONTEXT. The session
 * stays usable (st_session_rewind makes room). */
st_status st_generate(st_session *s, const int32_t *prompt, int n_prompt,
                      const st_gen_params *p, st_token_cb cb, void *user, st_error *err);
/* Asks a running st_generate / st_session_eval to stop; thread-safe. */
void st_session_cancel(st_session *s);

/* ---- statistics: a snapshot any thread may take at any time ---- */
typedef enum { ST_PHASE_IDLE = 0, ST_PHASE_PREFILL, ST_PHASE_DECODE } st_phase;

/* Why the last st_generate ended. */
typedef enum {
    ST_FINISH_NONE = 0,    /* no generate yet, or one is running */
    ST_FINISH_EOS,         /* an end-of-generation token */
    ST_FINISH_LENGTH,      /* n_predict tokens generated */
    ST_FINISH_CALLBACK,    /* the token callback returned false */
    ST_FINISH_CONTEXT,     /* the context filled up during generation (ST_ERR_CONTEXT) */
    ST_FINISH_CANCELLED,   /* st_session_cancel */
    ST_FINISH_ERROR,       /* any other failure, a refused prompt included (the return code says which) */
} st_finish;
const char *st_finish_str(st_finish f);  /* "eos", "length", "callback", "context full", ... */

typedef enum {
    ST_LAYER_ABSENT = 0,   /* not in memory */
    ST_LAYER_LOADING,      /* a read into a slot is queued or running */
    ST_LAYER_RESIDENT,     /* in a slot, may be evicted */
    ST_LAYER_PINNED,       /* in a slot for good (the ring policy's pinned set) */
    ST_LAYER_MAPPED,       /* used in place from the mmap (no budget) */
} st_layer_state;

#define ST_STATS_MAX_LAYERS 512  /* per-layer arrays below cover this many layers */

typedef struct st_store_figures {
    bool budgeted;             /* false: layers in place from the mmap */
    st_cache_policy policy;
    uint64_t budget_bytes;     /* the byte budget asked for (0 = given in layers) */
    uint64_t slot_bytes;       /* bytes of one slot (the largest layer, aligned) */
    uint64_t fixed_bytes;      /* resident non-layer tensors counted in the budget (output, output_norm) */
    int n_slots, n_pinned, n_ring;
    int slots_used;            /* slots holding a layer (resident or loading) now */
    /* acquisitions */
    uint64_t acquires;
    /* each acquisition is exactly one of ready / waits / sync_loads / errors */
    uint64_t ready;            /* found resident: did not wait */
    uint64_t waits;            /* waited for a load in flight (a prefetch) */
    uint64_t sync_loads;       /* loaded by the acquiring thread */
    uint64_t errors;           /* failed (read error, short read) */
    uint64_t stall_ns;         /* time acquisitions spent waiting or loading */
    /* reads */
    uint64_t loads;            /* layer loads completed (prefetch + sync) */
    uint64_t bytes_read;
    uint64_t read_busy_ns;     /* wall time during which at least one read was running */
    double read_mbps;          /* bytes_read / read_busy_ns, MB/s (1e6) */
    /* prefetch */
    bool prefetch_on;
    bool direct_io;            /* O_DIRECT in use */
    int prefetch_threads;
    int distance;              /* prefetch distance now */
    int distance_max;          /* the most it reached */
    int distance_limit;        /* the most the slots allow */
    uint64_t issued;           /* prefetch requests queued */
    uint64_t dedup;            /* requests for layers already resident or in flight, dropped */
    uint64_t dropped_full;     /* requests dropped because the queue was full */
    uint64_t no_slot;          /* requests not made because no slot could take them */
    uint64_t cancelled;        /* queued requests cancelled (shutdown) */
    int queue_cap, queue_depth, queue_peak;
    /* residency */
    uint64_t resident_bytes;       /* layer bytes resident now */
    uint64_t peak_resident_bytes;
    uint64_t slot_alloc_bytes;     /* bytes of slot memory allocated */
    /* device slots */
    uint64_t bytes_uploaded;       /* bytes copied into the slots (from reads and from the host cache) */
    int host_cache_layers;         /* streamed layers kept in pinned host memory */
    uint64_t host_cache_bytes;     /* that memory */
    uint64_t host_cache_loads;     /* loads served from it: one upload, no read */
    int n_layer;
    uint8_t layer_state[ST_STATS_MAX_LAYERS];  /* st_layer_state of each layer */
    int16_t slot_layer[ST_STATS_MAX_LAYERS];   /* layer in each slot, -1 = empty */
} st_store_figures;

typedef struct st_stats {
    st_phase phase;
    uint64_t n_prompt;       /* prompt tokens evaluated by the last generate */
    uint64_t prompt_ns;
    uint64_t n_gen;          /* tokens generated by the last generate */
    uint64_t gen_ns;
    uint64_t ttft_ns;        /* time to first token of the last generate */
    st_finish finish;        /* why the last generate ended */
    uint64_t total_tokens;   /* all tokens evaluated by this session */
    int n_past, n_ctx;
    /* layer store */
    int n_layer;
    uint64_t layer_acquires;
    uint64_t layer_sync_loads;
    uint64_t stall_ns;
    uint64_t bytes_read;
    uint64_t resident_bytes;
    st_store_figures store;   /* everything the layer store knows */
    /* process */
    uint64_t rss_bytes;       /* current resident set */
    uint64_t peak_rss_bytes;  /* VmHWM */
    int n_threads;
    const char *backend;      /* "cpu" */
    /* GPU backend (0 / NULL with the CPU backend) */
    const char *gpu_device;   /* the device's name, valid while the session lives */
    double gpu_busy;          /* fraction of the last second the GPU was running this session's work (timestamp queries) */
    uint64_t gpu_busy_ns;     /* GPU time of all the session's work so far */
    uint64_t gpu_vram_used;   /* device memory this process holds on the device */
    uint64_t gpu_vram_budget; /* device memory it may use (the device-local heap) */
} st_stats;
void st_session_stats(const st_session *s, st_stats *out);

/* ---- host memory limit of the session check (st_session_new) ----
 * ST_MEM_DETECT (the default): MemAvailable, lowered to the cgroup's limit,
 * unless STRATA_MEM_LIMIT=SIZE (or "off") is set in the environment;
 * ST_MEM_UNLIMITED: no check; anything else: that many bytes are available.
 * For tests, and for machines where swap makes more usable than that. */
#define ST_MEM_DETECT 0
#define ST_MEM_UNLIMITED UINT64_MAX
void st_set_mem_limit(uint64_t bytes);

/* Process memory figures from /proc/self/status (0 if unavailable). */
uint64_t st_peak_rss_bytes(void);
uint64_t st_rss_bytes(void);
/* Monotonic clock in nanoseconds. */
uint64_t st_now_ns(void);

#endif
