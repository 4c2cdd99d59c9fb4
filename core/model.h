/* model.h — the llama architecture: hyper-parameters and tensor views of a
 * GGUF file, checked for shape and type at load. Internal to core/. */
#ifndef ST_MODEL_H
#define ST_MODEL_H

#include "gguf.h"
#include "quant.h"
#include "strata.h"
#include "tokenizer.h"

typedef struct st_hparams {
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
} st_layer;

#define ST_LAYER_N_TENSORS 9

struct st_model {
    char *path;
    st_gguf *gguf;
    st_tokenizer *tok;
    st_hparams hp;
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

#endif
