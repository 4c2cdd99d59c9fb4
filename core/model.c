/* model.c — a llama-family model read from a GGUF file: hyper-parameters
 * from the <arch>.* keys (general.architecture names the prefix) and a view
 * of every tensor, each checked for shape and type so that the forward pass
 * never meets a surprise. docs/ARCHITECTURE.md lists what each architecture
 * needs. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

st_tensor *st_layer_tensor(st_layer *l, int k) {
    st_tensor *t[ST_LAYER_N_TENSORS_ALL] = {&l->attn_norm, &l->wq, &l->wk, &l->wv, &l->wo, &l->ffn_norm,
                                            &l->w_gate, &l->w_up, &l->w_down, &l->bq, &l->bk, &l->bv};
    return (k >= 0 && k < ST_LAYER_N_TENSORS_ALL) ? t[k] : NULL;
}

/* The architectures: the same block (RMSNorm, attention with RoPE, SwiGLU),
 * differing in rope pairing and Q/K/V biases. */
typedef struct {
    const char *name;
    st_arch arch;
    st_rope_type rope;
    bool bias_required; /* Q/K/V biases: required (qwen2) or optional (llama) */
} arch_info;

static const arch_info k_archs[] = {
    {"llama", ST_ARCH_LLAMA, ST_ROPE_NORMAL, false},
    {"qwen2", ST_ARCH_QWEN2, ST_ROPE_NEOX, true},
};
#define SUPPORTED_ARCHS "llama, qwen2"

const char *st_arch_name(st_arch a) {
    for (size_t i = 0; i < sizeof k_archs / sizeof k_archs[0]; i++)
        if (k_archs[i].arch == a) return k_archs[i].name;
    return "unknown";
}

void st_rope_llama3_factors(float *ff, int n_rot, float base, float factor, float low_freq, float high_freq,
                            float orig_ctx) {
    const double lo_wl = (double)orig_ctx / low_freq;  /* longer than this: divided by factor */
    const double hi_wl = (double)orig_ctx / high_freq; /* shorter than this: unchanged */
    for (int i = 0; i < n_rot / 2; i++) {
        double freq = pow((double)base, -2.0 * i / n_rot);
        double wl = 2.0 * M_PI / freq;
        double f;
        if (wl < hi_wl) f = 1.0;
        else if (wl > lo_wl || high_freq == low_freq) f = factor;
        else {
            double smooth = ((double)orig_ctx / wl - low_freq) / ((double)high_freq - low_freq);
            f = 1.0 / ((1.0 - smooth) / factor + smooth);
        }
        ff[i] = (float)f;
    }
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Reads a required/optional integer hyper-parameter "<arch>.<key>". */
static st_status hp_int(const st_gguf *g, const char *path, const char *arch, const char *key,
                        bool required, int def, int lo, int hi, int *out, st_error *err) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    int64_t v;
    if (!st_gguf_get_i64(g, full, &v)) {
        if (st_gguf_find_key(g, full) >= 0)
            return st_error_set(err, ST_ERR_FORMAT, "%s: metadata '%s' has type %s, expected an integer",
                                path, full, st_gguf_vtype_name(st_gguf_kv_type(g, st_gguf_find_key(g, full))));
        if (required)
            return st_error_set(err, ST_ERR_FORMAT, "%s: required metadata key '%s' is missing", path, full);
        *out = def;
        return ST_OK;
    }
    if (v < lo || v > hi)
        return st_error_set(err, ST_ERR_FORMAT, "%s: metadata '%s' = %lld is out of range (expected %d..%d)",
                            path, full, (long long)v, lo, hi);
    *out = (int)v;
    return ST_OK;
}

static st_status hp_float(const st_gguf *g, const char *path, const char *arch, const char *key,
                          float def, float *out, st_error *err) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    if (!st_gguf_get_f32(g, full, out)) {
        if (st_gguf_find_key(g, full) >= 0)
            return st_error_set(err, ST_ERR_FORMAT, "%s: metadata '%s' is not a number", path, full);
        *out = def;
    }
    return ST_OK;
}

/* Binds a tensor view, checking its presence, shape and type. ne1 = 0 means
 * a 1-D tensor. `matrix` tensors must have a dot-product kernel; the others
 * (norms, embeddings) only need dequantization. */
static st_status bind(const st_model *m, const char *name, int64_t ne0, int64_t ne1, bool matrix,
                      bool optional, st_tensor *out, bool *found, st_error *err) {
    const st_gguf_tensor *t = st_gguf_find_tensor(m->gguf, name);
    if (found) *found = t != NULL;
    if (!t) {
        if (optional) return ST_OK;
        return st_error_set(err, ST_ERR_FORMAT, "%s: tensor '%s' is missing (required by the %s architecture)",
                            m->path, name, st_arch_name(m->hp.arch));
    }
    int want_dims = ne1 ? 2 : 1;
    bool ok = t->ne[0] == ne0 && t->ne[1] == (ne1 ? ne1 : 1) && t->ne[2] == 1 && t->ne[3] == 1;
    if (!ok) {
        char got[96], want[64];
        snprintf(got, sizeof got, "[%lld, %lld, %lld, %lld]", (long long)t->ne[0], (long long)t->ne[1],
                 (long long)t->ne[2], (long long)t->ne[3]);
        if (ne1) snprintf(want, sizeof want, "[%lld, %lld]", (long long)ne0, (long long)ne1);
        else snprintf(want, sizeof want, "[%lld]", (long long)ne0);
        (void)want_dims;
        return st_error_set(err, ST_ERR_FORMAT, "%s: tensor '%s' (offset %llu) has shape %s, expected %s",
                            m->path, name, (unsigned long long)t->offset, got, want);
    }
    const st_type_traits *tr = st_type_traits_get(t->type);
    if (!tr->name || !tr->supported || !tr->to_float || (matrix && !tr->vec_dot)) {
        return st_error_set(err, ST_ERR_UNSUPPORTED,
                            "%s: tensor '%s' has type %s, which strata cannot compute with "
                            "(supported: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K)",
                            m->path, name, tr->name ? tr->name : "unknown");
    }
    out->type = t->type;
    out->ne0 = t->ne[0];
    out->ne1 = t->ne[1];
    out->row_bytes = st_row_size(t->type, t->ne[0]);
    out->data = t->data;
    out->file_offset = t->offset;
    out->nbytes = t->size;
    return ST_OK;
}

void st_model_params_default(st_model_params *p) {
    memset(p, 0, sizeof *p);
}

void st_model_close(st_model *m) {
    if (!m) return;
    st_tok_free(m->tok);
    st_gguf_close(m->gguf);
    free(m->layers);
    free(m->rope_ff);
    free(m->path);
    free(m);
}

st_status st_model_open(const char *path, const st_model_params *p, st_model **out, st_error *err) {
    *out = NULL;
    st_model *m = calloc(1, sizeof *m);
    if (!m) return st_error_set(err, ST_ERR_NOMEM, "out of memory");
    if (p) m->params = *p;
    m->path = strdup(path);
    st_status rc = st_gguf_open(path, &m->gguf, err);
    if (rc) goto fail;
    const st_gguf *g = m->gguf;

    st_gguf_str arch;
    if (!st_gguf_get_str(g, "general.architecture", &arch)) {
        rc = st_error_set(err, ST_ERR_FORMAT, "%s: metadata 'general.architecture' is missing", path);
        goto fail;
    }
    const arch_info *ai = NULL;
    for (size_t i = 0; i < sizeof k_archs / sizeof k_archs[0]; i++)
        if (arch.len == strlen(k_archs[i].name) && !memcmp(arch.ptr, k_archs[i].name, arch.len)) ai = &k_archs[i];
    if (!ai) {
        rc = st_error_set(err, ST_ERR_UNSUPPORTED, "%s: unsupported architecture '%.*s' (supported: " SUPPORTED_ARCHS ")",
                          path, (int)(arch.len > 64 ? 64 : arch.len), arch.ptr);
        goto fail;
    }
    const char *A = ai->name; /* the prefix of the hyper-parameter keys */
    st_hparams *hp = &m->hp;
    hp->arch = ai->arch;
    hp->rope_type = ai->rope;
    if ((rc = hp_int(g, path, A, "embedding_length", true, 0, 1, 1 << 20, &hp->n_embd, err))) goto fail;
    if ((rc = hp_int(g, path, A, "block_count", true, 0, 1, 4096, &hp->n_layer, err))) goto fail;
    if ((rc = hp_int(g, path, A, "feed_forward_length", true, 0, 1, 1 << 22, &hp->n_ff, err))) goto fail;
    if ((rc = hp_int(g, path, A, "attention.head_count", true, 0, 1, 4096, &hp->n_head, err))) goto fail;
    if ((rc = hp_int(g, path, A, "attention.head_count_kv", false, hp->n_head, 1, 4096, &hp->n_head_kv, err))) goto fail;
    if ((rc = hp_int(g, path, A, "context_length", false, 2048, 1, 1 << 24, &hp->n_ctx_train, err))) goto fail;
    if (hp->n_embd % hp->n_head != 0) {
        rc = st_error_set(err, ST_ERR_FORMAT, "%s: %s.embedding_length %d is not a multiple of %s.attention.head_count %d",
                          path, A, hp->n_embd, A, hp->n_head);
        goto fail;
    }
    hp->head_dim = hp->n_embd / hp->n_head;
    if (hp->n_head % hp->n_head_kv != 0) {
        rc = st_error_set(err, ST_ERR_FORMAT, "%s: %s.attention.head_count %d is not a multiple of head_count_kv %d",
                          path, A, hp->n_head, hp->n_head_kv);
        goto fail;
    }
    if ((rc = hp_int(g, path, A, "rope.dimension_count", false, hp->head_dim, 2, hp->head_dim, &hp->n_rot, err))) goto fail;
    if (hp->n_rot % 2) {
        rc = st_error_set(err, ST_ERR_FORMAT, "%s: %s.rope.dimension_count %d must be even", path, A, hp->n_rot);
        goto fail;
    }
    if ((rc = hp_float(g, path, A, "rope.freq_base", 10000.0f, &hp->rope_base, err))) goto fail;
    if ((rc = hp_float(g, path, A, "attention.layer_norm_rms_epsilon", 1e-5f, &hp->rms_eps, err))) goto fail;
    if ((rc = hp_int(g, path, A, "attention.sliding_window", false, 0, 0, 1 << 30, &hp->n_swa, err))) goto fail;
    hp->rope_scale = 1.0f;
    bool llama3 = false;
    {
        char kt[96], kf[96], kl[96];
        snprintf(kt, sizeof kt, "%s.rope.scaling.type", A);
        snprintf(kf, sizeof kf, "%s.rope.scaling.factor", A);
        snprintf(kl, sizeof kl, "%s.rope.scale_linear", A);
        st_gguf_str stype;
        float factor = 0;
        bool has_type = st_gguf_get_str(g, kt, &stype);
        bool has_factor = st_gguf_get_f32(g, kf, &factor);
        bool none = has_type && stype.len == 4 && !memcmp(stype.ptr, "none", 4);
        llama3 = has_type && stype.len == 6 && !memcmp(stype.ptr, "llama3", 6);
        if (has_type && !none && !llama3 && !(stype.len == 6 && !memcmp(stype.ptr, "linear", 6))) {
            rc = st_error_set(err, ST_ERR_UNSUPPORTED,
                              "%s: rope scaling type '%.*s' is not supported (supported: none, linear, llama3)",
                              path, (int)(stype.len > 32 ? 32 : stype.len), stype.ptr);
            goto fail;
        }
        if (!has_factor) {
            /* older files: <arch>.rope.scale_linear */
            has_factor = st_gguf_get_f32(g, kl, &factor);
        }
        /* llama3: the factor scales the low frequencies only (rope_freq_factors below) */
        if (has_factor && !none && !llama3 && factor > 0.0f && factor != 1.0f) hp->rope_scale = 1.0f / factor;
    }
    if (!(hp->rope_base > 0) || !(hp->rms_eps > 0)) {
        rc = st_error_set(err, ST_ERR_FORMAT, "%s: rope.freq_base and layer_norm_rms_epsilon must be positive", path);
        goto fail;
    }

    if ((rc = st_tok_load(g, &m->tok, err))) {
        if (err) { /* name the file: the tokenizer only sees metadata */
            char msg[sizeof err->msg];
            memcpy(msg, err->msg, sizeof msg);
            int k = snprintf(err->msg, sizeof err->msg, "%.200s: ", path);
            if (k > 0 && (size_t)k < sizeof err->msg)
                snprintf(err->msg + k, sizeof err->msg - (size_t)k, "%.300s", msg);
        }
        goto fail;
    }

    /* vocabulary size: from the embedding matrix, which must agree with the tokenizer */
    const st_gguf_tensor *te = st_gguf_find_tensor(g, "token_embd.weight");
    if (!te) {
        rc = st_error_set(err, ST_ERR_FORMAT, "%s: tensor 'token_embd.weight' is missing (required by the %s architecture)", path, A);
        goto fail;
    }
    hp->n_vocab = (int)te->ne[1];
    if (hp->n_vocab != st_tok_n_vocab(m->tok)) {
        rc = st_error_set(err, ST_ERR_FORMAT, "%s: token_embd.weight has %d rows but the vocabulary has %d tokens",
                          path, hp->n_vocab, st_tok_n_vocab(m->tok));
        goto fail;
    }
    int n_embd_kv = hp->head_dim * hp->n_head_kv;

    /* Llama-3 rope scaling: per-pair angle divisors, from rope_freqs.weight
     * (what llama.cpp writes into Llama-3.1+ files) or from the keys */
    {
        st_tensor rf;
        bool has_rf = false;
        if ((rc = bind(m, "rope_freqs.weight", hp->n_rot / 2, 0, false, true, &rf, &has_rf, err))) goto fail;
        if (has_rf || llama3) {
            m->rope_ff = malloc((size_t)(hp->n_rot / 2) * sizeof(float));
            if (!m->rope_ff) { rc = st_error_set(err, ST_ERR_NOMEM, "out of memory"); goto fail; }
        }
        if (has_rf) {
            st_type_traits_get(rf.type)->to_float(rf.data, m->rope_ff, hp->n_rot / 2);
        } else if (llama3) {
            float factor, lo, hi, orig;
            if ((rc = hp_float(g, path, A, "rope.scaling.factor", 8.0f, &factor, err))) goto fail;
            if ((rc = hp_float(g, path, A, "rope.scaling.low_freq_factor", 1.0f, &lo, err))) goto fail;
            if ((rc = hp_float(g, path, A, "rope.scaling.high_freq_factor", 4.0f, &hi, err))) goto fail;
            int orig_ctx;
            if ((rc = hp_int(g, path, A, "rope.scaling.original_context_length", false, 8192, 1, 1 << 30, &orig_ctx, err)))
                goto fail;
            orig = (float)orig_ctx;
            if (!(factor > 0) || !(lo > 0) || !(hi >= lo) || !isfinite(factor) || !isfinite(hi)) {
                rc = st_error_set(err, ST_ERR_FORMAT,
                                  "%s: llama3 rope scaling needs factor > 0 and 0 < low_freq_factor <= high_freq_factor "
                                  "(got factor %g, low %g, high %g)", path, factor, lo, hi);
                goto fail;
            }
            st_rope_llama3_factors(m->rope_ff, hp->n_rot, hp->rope_base, factor, lo, hi, orig);
        }
        if (m->rope_ff) {
            for (int i = 0; i < hp->n_rot / 2; i++)
                if (!(m->rope_ff[i] > 0) || !isfinite(m->rope_ff[i])) {
                    rc = st_error_set(err, ST_ERR_FORMAT, "%s: rope frequency factor %d is %g (must be positive)",
                                      path, i, m->rope_ff[i]);
                    goto fail;
                }
            hp->rope_freq_factors = m->rope_ff;
        }
    }

    if ((rc = bind(m, "token_embd.weight", hp->n_embd, hp->n_vocab, false, false, &m->tok_embd, NULL, err))) goto fail;
    if ((rc = bind(m, "output_norm.weight", hp->n_embd, 0, false, false, &m->output_norm, NULL, err))) goto fail;
    bool has_out = false;
    if ((rc = bind(m, "output.weight", hp->n_embd, hp->n_vocab, true, true, &m->output, &has_out, err))) goto fail;
    if (!has_out) {
        /* tied embeddings: the LM head is the embedding matrix */
        if ((rc = bind(m, "token_embd.weight", hp->n_embd, hp->n_vocab, true, false, &m->output, NULL, err))) goto fail;
    }

    m->layers = calloc((size_t)hp->n_layer, sizeof(st_layer));
    if (!m->layers) { rc = st_error_set(err, ST_ERR_NOMEM, "out of memory"); goto fail; }
    for (int il = 0; il < hp->n_layer; il++) {
        st_layer *L = &m->layers[il];
        struct { const char *suffix; st_tensor *t; int64_t ne0, ne1; bool matrix; } spec[] = {
            {"attn_norm", &L->attn_norm, hp->n_embd, 0, false},
            {"attn_q", &L->wq, hp->n_embd, hp->n_embd, true},
            {"attn_k", &L->wk, hp->n_embd, n_embd_kv, true},
            {"attn_v", &L->wv, hp->n_embd, n_embd_kv, true},
            {"attn_output", &L->wo, hp->n_embd, hp->n_embd, true},
            {"ffn_norm", &L->ffn_norm, hp->n_embd, 0, false},
            {"ffn_gate", &L->w_gate, hp->n_embd, hp->n_ff, true},
            {"ffn_up", &L->w_up, hp->n_embd, hp->n_ff, true},
            {"ffn_down", &L->w_down, hp->n_ff, hp->n_embd, true},
        };
        for (size_t k = 0; k < sizeof spec / sizeof spec[0]; k++) {
            char name[96];
            snprintf(name, sizeof name, "blk.%d.%s.weight", il, spec[k].suffix);
            if ((rc = bind(m, name, spec[k].ne0, spec[k].ne1, spec[k].matrix, false, spec[k].t, NULL, err))) goto fail;
            m->layer_bytes += spec[k].t->nbytes;
        }
        /* Q/K/V biases: all three or none */
        struct { const char *suffix; st_tensor *t; int64_t ne0; } bspec[] = {
            {"attn_q", &L->bq, hp->n_embd}, {"attn_k", &L->bk, n_embd_kv}, {"attn_v", &L->bv, n_embd_kv}};
        int n_bias = 0;
        for (int k = 0; k < 3; k++) {
            char name[96];
            snprintf(name, sizeof name, "blk.%d.%s.bias", il, bspec[k].suffix);
            bool found = false;
            if ((rc = bind(m, name, bspec[k].ne0, 0, false, !ai->bias_required, bspec[k].t, &found, err))) goto fail;
            n_bias += found;
            m->layer_bytes += bspec[k].t->nbytes;
        }
        if (il == 0) hp->qkv_bias = n_bias > 0;
        if (n_bias != (hp->qkv_bias ? 3 : 0)) {
            rc = st_error_set(err, ST_ERR_FORMAT,
                              "%s: layer %d has %d of the 3 Q/K/V biases (blk.%d.attn_{q,k,v}.bias), layer 0 has %d",
                              path, il, n_bias, il, hp->qkv_bias ? 3 : 0);
            goto fail;
        }
    }
    /* biases strata does not compute would be silently ignored: refuse them */
    for (int64_t i = 0; i < st_gguf_n_tensors(g); i++) {
        const char *tn = st_gguf_tensor_at(g, i)->name;
        size_t n = strlen(tn);
        if (n > 5 && !strcmp(tn + n - 5, ".bias") && !strncmp(tn, "blk.", 4) && !strstr(tn, ".attn_q.bias") &&
            !strstr(tn, ".attn_k.bias") && !strstr(tn, ".attn_v.bias")) {
            rc = st_error_set(err, ST_ERR_UNSUPPORTED,
                              "%s: tensor '%s': strata computes Q/K/V biases only (the %s architecture has no others)",
                              path, tn, A);
            goto fail;
        }
    }

    st_gguf_str name;
    if (st_gguf_get_str(g, "general.name", &name) && name.len > 0)
        snprintf(m->name, sizeof m->name, "%.*s", (int)(name.len > 127 ? 127 : name.len), name.ptr);
    else
        snprintf(m->name, sizeof m->name, "%s", base_name(path));
    *out = m;
    return ST_OK;
fail:
    st_model_close(m);
    return rc;
}

const st_tokenizer *st_model_tokenizer(const st_model *m) { return m->tok; }
const char *st_model_path(const st_model *m) { return m->path; }

void st_model_get_info(const st_model *m, st_model_info *o) {
    memset(o, 0, sizeof *o);
    const st_hparams *hp = &m->hp;
    snprintf(o->name, sizeof o->name, "%s", m->name);
    snprintf(o->arch, sizeof o->arch, "%s", st_arch_name(hp->arch));
    o->n_vocab = hp->n_vocab;
    o->n_embd = hp->n_embd;
    o->n_layer = hp->n_layer;
    o->n_head = hp->n_head;
    o->n_head_kv = hp->n_head_kv;
    o->n_ff = hp->n_ff;
    o->n_ctx_train = hp->n_ctx_train;
    o->n_rot = hp->n_rot;
    o->file_size = st_gguf_file_size(m->gguf);
    o->layer_bytes = m->layer_bytes;
    /* the weight type that holds most of the block bytes, and the second if any */
    uint64_t by_type[ST_TYPE_COUNT] = {0};
    for (int64_t i = 0; i < st_gguf_n_tensors(m->gguf); i++) {
        const st_gguf_tensor *t = st_gguf_tensor_at(m->gguf, i);
        o->weight_bytes += t->size;
        int64_t n = 1;
        for (int d = 0; d < t->n_dims; d++) n *= t->ne[d];
        o->n_params += (uint64_t)n;
        if (t->n_dims >= 2 && (int)t->type < ST_TYPE_COUNT) by_type[t->type] += t->size;
    }
    int best = -1, second = -1;
    for (int t = 0; t < ST_TYPE_COUNT; t++) {
        if (!by_type[t]) continue;
        if (best < 0 || by_type[t] > by_type[best]) { second = best; best = t; }
        else if (second < 0 || by_type[t] > by_type[second]) second = t;
    }
    if (best >= 0 && second >= 0 && by_type[second] * 10 > by_type[best])
        snprintf(o->ftype, sizeof o->ftype, "%s/%s", st_type_name(best), st_type_name(second));
    else if (best >= 0)
        snprintf(o->ftype, sizeof o->ftype, "%s", st_type_name(best));
}
