/* model.h — the supported architectures (llama, qwen2; docs/ARCHITECTURE.md):
 * hyper-parameters and tensor views of a GGUF file, checked for shape and
 * type at load. Internal to core/. */
#ifndef ST_MODEL_H
#define ST_MODEL_H

#include "gguf.h"
#include "quant.h"
#include "strata.h"
#include "tokenizer.h"

typedef enum { ST_ARCH_LLAMA = 0, ST_ARCH_QWEN2 = 1 } st_arch;

/* How RoPE pairs the dimensions of a head (both use the angle of pair i,
 * pos * base^(-2i/n_rot), for i < n_rot/2):
 *   NORMAL: adjacent pairs (2i, 2i+1)     llama (GGUF's permuted Q/K rows)
 *   NEOX:   pairs (i, i + n_rot/2)        qwen2 (the checkpoint's own layout) */
typedef enum { ST_ROPE_NORMAL = 0, ST_ROPE_NEOX = 1 } st_rope_type;

typedef struct st_hparams {
    st_arch arch;
    st_rope_type rope_type;
    int n_vocab;
    int n_embd;
    int n_layer;
    int n_head;
    int n_head_kv;
    int head_dim;      /* n_embd / n_head */
    int n_ff;
    int n_rot;         /* rope.dimension_count */
    int n_ctx_train;
    float rope_base;   /* rope.freq_base */
    float rope_scale;  /* position multiplier: 1 / rope.scaling.factor for linear scaling */
    float rms_eps;
    /* Per-pair divisors of the rope angle, [n_rot/2] (Llama-3 rope scaling:
     * the rope_freqs.weight tensor, or computed from rope.scaling.* when the
     * type is llama3); NULL = none. Pair i turns by
     * rope_scale * (pos * base^(-2i/n_rot) / rope_freq_factors[i]).
     * Owned by the model. */
    const float *rope_freq_factors;
    int n_swa;         /* attention.sliding_window: a query at pos sees keys at
                        * pos - n_swa + 1 .. pos; 0 = no window */
    bool qkv_bias;     /* the layers have Q/K/V biases (qwen2; optional for llama) */
} st_hparams;

/* A 2-D view of a weight: ne0 elements per row, ne1 rows, row_bytes apart.
 * `data` points into the mmap, or into a layer-store slot. */
typedef struct st_tensor {
    st_type type;
    int64_t ne0, ne1;
    size_t row_bytes;
    const void *data;
    uint64_t file_offset;  /* where the bytes live in the file */
    uint64_t nbytes;
} st_tensor;

/* One transformer block: the unit of residency of the layer store. */
typedef struct st_layer {
    st_tensor attn_norm, wq, wk, wv, wo;
    st_tensor ffn_norm, w_gate, w_up, w_down;
    /* optional tensors (data NULL, nbytes 0 when absent): Q/K/V biases,
     * [n_embd] / [n_embd_kv] / [n_embd_kv], added after the projections */
    st_tensor bq, bk, bv;
} st_layer;

/* st_layer_tensor(l, k): k < ST_LAYER_N_TENSORS are the tensors every layer
 * has; ST_LAYER_N_TENSORS <= k < ST_LAYER_N_TENSORS_ALL the optional ones. */
#define ST_LAYER_N_TENSORS 9
#define ST_LAYER_N_TENSORS_ALL 12

struct st_model {
    char *path;
    st_gguf *gguf;
    st_tokenizer *tok;
    st_hparams hp;
    float *rope_ff;         /* storage of hp.rope_freq_factors */
    st_tensor tok_embd;     /* [n_embd, n_vocab] */
    st_tensor output_norm;  /* [n_embd] */
    st_tensor output;       /* [n_embd, n_vocab]; = tok_embd when tied */
    st_layer *layers;       /* n_layer, views into the mmap */
    uint64_t layer_bytes;   /* bytes of all blocks */
    st_model_params params;
    char name[128];
};

/* The tensors of a layer in a fixed order, for loops over them. */
st_tensor *st_layer_tensor(st_layer *l, int k);

/* "llama", "qwen2" */
const char *st_arch_name(st_arch a);

/* Llama-3 rope scaling: the divisor of each of the n_rot/2 pair angles
 * (1 for wavelengths below orig_ctx / high_freq, `factor` above
 * orig_ctx / low_freq, a smooth blend between). */
void st_rope_llama3_factors(float *ff, int n_rot, float base, float factor, float low_freq, float high_freq,
                            float orig_ctx);

#endif
