/* engine.c — sessions over a model: the forward loop over layers (through
 * the layer store and the backend interface), generation with a per-token
 * callback, cancellation and statistics that any thread may read. */
#include "backend.h"
#include "model.h"
#include "store.h"
#include "strata.h"
#include "threadpool.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct st_session {
    st_model *m;
    st_session_params p;
    st_threadpool *tp;
    st_backend *be;
    st_store *store;
    int n_past;
    float *logits;      /* [n_logits][n_vocab] */
    int n_logits_cap;   /* rows allocated */
    int n_logits;       /* rows valid after the last eval */
    float *embd;        /* [n_batch][n_embd] */
    atomic_bool cancel;
    /* statistics, written by the generating thread, read by anyone */
    _Atomic int phase;
    _Atomic uint64_t n_prompt, prompt_ns, n_gen, gen_ns, ttft_ns, total_tokens;
    _Atomic int n_past_pub;
};

uint64_t st_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t proc_status_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t fl = strlen(field);
    uint64_t v = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, field, fl) && line[fl] == ':') {
            v = strtoull(line + fl + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

uint64_t st_peak_rss_bytes(void) { return proc_status_kb("VmHWM") * 1024; }
uint64_t st_rss_bytes(void) { return proc_status_kb("VmRSS") * 1024; }

void st_session_params_default(st_session_params *p) {
    memset(p, 0, sizeof *p);
    p->device = -1;
}

static st_gpu_backend_fn g_gpu_backend;
void st_register_gpu_backend(st_gpu_backend_fn fn) { g_gpu_backend = fn; }

void st_gen_params_default(st_gen_params *p) {
    p->n_predict = -1;
    p->ignore_eos = false;
    st_sampler_params_default(&p->sampling);
}

st_status st_session_new(st_model *m, const st_session_params *pp, st_session **out, st_error *err) {
    *out = NULL;
    st_session_params p;
    if (pp) p = *pp;
    else st_session_params_default(&p);
    if (p.n_ctx <= 0) p.n_ctx = m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096;
    if (p.n_ctx > (1 << 22)) return st_error_set(err, ST_ERR_ARG, "context %d is too large", p.n_ctx);
    if (p.n_batch <= 0) p.n_batch = 512;
    if (p.n_batch > p.n_ctx) p.n_batch = p.n_ctx;
    st_session *s = calloc(1, sizeof *s);
    if (!s) return st_error_set(err, ST_ERR_NOMEM, "out of memory");
    s->m = m;
    s->p = p;
    st_status rc;
    int nth = m->params.n_threads > 0 ? m->params.n_threads : st_physical_cores();
    if ((rc = st_tp_new(nth, &s->tp, err))) goto fail;
    if (p.backend != ST_BACKEND_CPU) { /* a GPU backend (auto: if there is one) */
        rc = g_gpu_backend ? g_gpu_backend(m, &p, &s->be, err)
                           : st_error_set(err, ST_ERR_UNSUPPORTED, "this strata was built without a GPU backend");
        if (rc && p.backend != ST_BACKEND_AUTO) goto fail;
    }
    if (!s->be && (rc = st_cpu_backend_new(&m->hp, p.n_ctx, p.n_batch, p.kv_f32, s->tp, &s->be, err))) goto fail;
    st_store_config sc;
    st_store_config_from_session(&sc, &p);
    /* the CPU backend's slots are host memory: reads go straight into them */
    sc.host_slots = !strcmp(s->be->ops->name, "cpu");
    if ((rc = st_store_new(m, s->be, &sc, &s->store, err))) goto fail;
    s->n_logits_cap = 1;
    s->logits = malloc((size_t)m->hp.n_vocab * sizeof(float));
    s->embd = malloc((size_t)p.n_batch * m->hp.n_embd * sizeof(float));
    if (!s->logits || !s->embd) { rc = st_error_set(err, ST_ERR_NOMEM, "out of memory"); goto fail; }
    atomic_store(&s->n_past_pub, 0);
    *out = s;
    return ST_OK;
fail:
    st_session_free(s);
    return rc;
}

void st_session_free(st_session *s) {
    if (!s) return;
    st_store_free(s->store);
    if (s->be) s->be->ops->destroy(s->be);
    st_tp_free(s->tp);
    free(s->logits);
    free(s->embd);
    free(s);
}

int st_session_n_ctx(const st_session *s) { return s->p.n_ctx; }
int st_session_n_past(const st_session *s) { return s->n_past; }

void st_session_rewind(st_session *s, int n_past) {
    if (n_past < 0) n_past = 0;
    if (n_past < s->n_past) {
        s->n_past = n_past;
        s->n_logits = 0; /* the logits belonged to a token that is gone */
        s->be->ops->kv_truncate(s->be, n_past);
        atomic_store(&s->n_past_pub, n_past);
    }
}

void st_session_cancel(st_session *s) { atomic_store(&s->cancel, true); }

/* One forward pass over a batch: embeddings, the layers in order (each
 * acquired from the store, the next ones hinted), then the LM head. */
static st_status forward_batch(st_session *s, const int32_t *tok, int n, bool all_logits, float *logits,
                               st_error *err) {
    st_model *m = s->m;
    const st_hparams *hp = &m->hp;
    const st_type_traits *et = st_type_traits_get(m->tok_embd.type);
    for (int i = 0; i < n; i++) {
        et->to_float((const uint8_t *)m->tok_embd.data + (size_t)tok[i] * m->tok_embd.row_bytes,
                     s->embd + (size_t)i * hp->n_embd, hp->n_embd);
    }
    st_status rc = s->be->ops->begin(s->be, s->embd, n, s->n_past, err);
    if (rc) return rc;
    for (int il = 0; il < hp->n_layer; il++) {
        if (atomic_load_explicit(&s->cancel, memory_order_relaxed))
            return st_error_set(err, ST_ERR_CANCELLED, "cancelled");
        const st_layer *L = st_store_acquire(s->store, il, err);
        if (!L) return err ? err->code : ST_ERR_INTERNAL;
        /* the layers after this one (cyclic: after the last comes layer 0 of
         * the next token) start loading while this one computes */
        st_store_hint(s->store, il + 1, 0);
        rc = s->be->ops->layer(s->be, il, L, err);
        st_store_release(s->store, il);
        if (rc) return rc;
    }
    rc = s->be->ops->end(s->be, &m->output_norm, &m->output, logits, all_logits, err);
    if (rc) return rc;
    s->n_past += n;
    atomic_store(&s->n_past_pub, s->n_past);
    atomic_fetch_add(&s->total_tokens, (uint64_t)n);
    return ST_OK;
}

/* Evaluates n tokens; all ids are checked before any work so that a bad id
 * leaves the cache as it was. Does not touch the cancel flag. */
static st_status eval_impl(st_session *s, const int32_t *tokens, int n, bool all_logits, st_error *err) {
    if (n <= 0) return st_error_set(err, ST_ERR_ARG, "nothing to evaluate");
    if (s->n_past + n > s->p.n_ctx)
        return st_error_set(err, ST_ERR_CONTEXT, "context full: %d tokens in the cache + %d new exceed the context of %d",
                            s->n_past, n, s->p.n_ctx);
    int nv = s->m->hp.n_vocab;
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= nv)
            return st_error_set(err, ST_ERR_ARG, "token %d of %d: id %d out of range (vocabulary of %d)", i, n, tokens[i], nv);
    int rows = all_logits ? n : 1;
    if (rows > s->n_logits_cap) {
        float *l = realloc(s->logits, (size_t)rows * nv * sizeof(float));
        if (!l) return st_error_set(err, ST_ERR_NOMEM, "out of memory for %d rows of logits", rows);
        s->logits = l;
        s->n_logits_cap = rows;
    }
    /* The logits always belong to the last token in the cache: a batch that
     * fails (or is cancelled) before its end leaves both as they were. */
    for (int i = 0; i < n; i += s->p.n_batch) {
        int nb = n - i < s->p.n_batch ? n - i : s->p.n_batch;
        float *dst = all_logits ? s->logits + (size_t)i * nv : s->logits;
        st_status rc = forward_batch(s, tokens + i, nb, all_logits, dst, err);
        if (rc) return rc;
        s->n_logits = all_logits ? i + nb : 1;
    }
    return ST_OK;
}

st_status st_session_eval(st_session *s, const int32_t *tokens, int n, bool all_logits, st_error *err) {
    atomic_store(&s->cancel, false);
    return eval_impl(s, tokens, n, all_logits, err);
}

const float *st_session_logits(const st_session *s, int i) {
    if (i < 0) i = s->n_logits - 1;
    if (i < 0 || i >= s->n_logits) return NULL;
    return s->logits + (size_t)i * s->m->hp.n_vocab;
}

st_status st_generate(st_session *s, const int32_t *prompt, int n_prompt, const st_gen_params *gp,
                      st_token_cb cb, void *user, st_error *err) {
    st_gen_params defp;
    if (!gp) { st_gen_params_default(&defp); gp = &defp; }
    const st_tokenizer *tok = s->m->tok;
    st_sampler *smp = NULL;
    st_status rc = st_sampler_new(&gp->sampling, s->m->hp.n_vocab, &smp, err);
    if (rc) return rc;
    for (int i = 0; i < n_prompt; i++) st_sampler_accept(smp, prompt[i]);

    atomic_store(&s->n_prompt, (uint64_t)n_prompt);
    atomic_store(&s->n_gen, 0);
    atomic_store(&s->prompt_ns, 0);
    atomic_store(&s->gen_ns, 0);
    atomic_store(&s->ttft_ns, 0);
    atomic_store(&s->phase, ST_PHASE_PREFILL);
    atomic_store(&s->cancel, false);
    uint64_t t0 = st_now_ns();
    if (n_prompt > 0) {
        rc = eval_impl(s, prompt, n_prompt, false, err);
        if (rc) goto done;
    } else if (s->n_logits == 0) {
        rc = st_error_set(err, ST_ERR_ARG, "empty prompt and no previous tokens to continue from");
        goto done;
    }
    uint64_t t1 = st_now_ns();
    atomic_store(&s->prompt_ns, t1 - t0);
    atomic_store(&s->phase, ST_PHASE_DECODE);

    /* Every emitted token is also evaluated, so the reply stays in the KV
     * cache and a follow-up continues from it without recomputation; the
     * generation rate counts those evaluations. */
    char piece[256];
    for (int i = 0; gp->n_predict < 0 || i < gp->n_predict; i++) {
        if (atomic_load(&s->cancel)) { rc = st_error_set(err, ST_ERR_CANCELLED, "cancelled"); goto done; }
        int32_t t = st_sampler_sample(smp, st_session_logits(s, -1));
        st_sampler_accept(smp, t);
        if (i == 0) atomic_store(&s->ttft_ns, st_now_ns() - t0);
        if (!gp->ignore_eos && st_tok_is_eog(tok, t)) break;
        /* a token that cannot be evaluated is not emitted either */
        if (s->n_past >= s->p.n_ctx) { rc = st_error_set(err, ST_ERR_CONTEXT, "context full (%d tokens)", s->p.n_ctx); goto done; }
        int len = st_tok_token_to_piece(tok, t, piece, sizeof piece, false);
        if (len < 0) len = 0;
        if (len > (int)sizeof piece) len = (int)sizeof piece;
        bool go_on = !cb || cb(user, t, piece, len);
        rc = eval_impl(s, &t, 1, false, err);
        if (rc) goto done;
        atomic_store(&s->n_gen, (uint64_t)i + 1);
        atomic_store(&s->gen_ns, st_now_ns() - t1);
        if (!go_on) break;
    }
done:
    atomic_store(&s->phase, ST_PHASE_IDLE);
    st_sampler_free(smp);
    return rc;
}

void st_session_stats(const st_session *s, st_stats *o) {
    st_session *w = (st_session *)s;
    memset(o, 0, sizeof *o);
    o->phase = (st_phase)atomic_load(&w->phase);
    o->n_prompt = atomic_load(&w->n_prompt);
    o->prompt_ns = atomic_load(&w->prompt_ns);
    o->n_gen = atomic_load(&w->n_gen);
    o->gen_ns = atomic_load(&w->gen_ns);
    o->ttft_ns = atomic_load(&w->ttft_ns);
    o->total_tokens = atomic_load(&w->total_tokens);
    o->n_past = atomic_load(&w->n_past_pub);
    o->n_ctx = s->p.n_ctx;
    o->n_layer = s->m->hp.n_layer;
    st_store_get_stats(s->store, &o->store);
    o->layer_acquires = o->store.acquires;
    o->layer_sync_loads = o->store.sync_loads;
    o->stall_ns = o->store.stall_ns;
    o->bytes_read = o->store.bytes_read;
    o->resident_bytes = o->store.resident_bytes;
    o->rss_bytes = st_rss_bytes();
    o->peak_rss_bytes = st_peak_rss_bytes();
    o->n_threads = st_tp_n_threads(s->tp);
    o->backend = s->be->ops->name;
    if (s->be->ops->stats) {
        st_backend_stats bs = {0};
        s->be->ops->stats(s->be, &bs);
        o->gpu_device = bs.device;
        o->gpu_busy = bs.busy;
        o->gpu_busy_ns = bs.busy_ns;
        o->gpu_vram_used = bs.vram_used;
        o->gpu_vram_budget = bs.vram_budget;
    }
}
