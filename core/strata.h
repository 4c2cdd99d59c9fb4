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
typedef struct st_session_params {
    int n_ctx;        /* context length; 0 = min(model's training context, 4096) */
    int n_batch;      /* prompt tokens per forward batch; 0 = 512 */
    bool kv_f32;      /* KV cache in F32 instead of F16 */
} st_session_params;

void st_session_params_default(st_session_params *p);
st_status st_session_new(st_model *m, const st_session_params *p, st_session **out, st_error *err);
void st_session_free(st_session *s);
int st_session_n_ctx(const st_session *s);
int st_session_n_past(const st_session *s);   /* tokens in the KV cache */
/* Forget everything after the first n_past tokens (keeps the cache prefix). */
void st_session_rewind(st_session *s, int n_past);

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
 * is full. The generated tokens stay in the session's KV cache. */
st_status st_generate(st_session *s, const int32_t *prompt, int n_prompt,
                      const st_gen_params *p, st_token_cb cb, void *user, st_error *err);
/* Asks a running st_generate / st_session_eval to stop; thread-safe. */
void st_session_cancel(st_session *s);

/* ---- statistics: a snapshot any thread may take at any time ---- */
typedef enum { ST_PHASE_IDLE = 0, ST_PHASE_PREFILL, ST_PHASE_DECODE } st_phase;

typedef struct st_stats {
    st_phase phase;
    uint64_t n_prompt;       /* prompt tokens evaluated by the last generate */
    uint64_t prompt_ns;
    uint64_t n_gen;          /* tokens generated by the last generate */
    uint64_t gen_ns;
    uint64_t ttft_ns;        /* time to first token of the last generate */
    uint64_t total_tokens;   /* all tokens evaluated by this session */
    int n_past, n_ctx;
    /* layer store */
    int n_layer;
    uint64_t layer_acquires;
    uint64_t layer_sync_loads;
    uint64_t stall_ns;
    uint64_t bytes_read;
    uint64_t resident_bytes;
    /* process */
    uint64_t rss_bytes;       /* current resident set */
    uint64_t peak_rss_bytes;  /* VmHWM */
    int n_threads;
    const char *backend;      /* "cpu" */
} st_stats;
void st_session_stats(const st_session *s, st_stats *out);

/* Process memory figures from /proc/self/status (0 if unavailable). */
uint64_t st_peak_rss_bytes(void);
uint64_t st_rss_bytes(void);
/* Monotonic clock in nanoseconds. */
uint64_t st_now_ns(void);

#endif
