/* engine.c — sessions over a model: the forward loop over layers (through
 * the layer store and the backend interface), generation with a per-token
 * callback, cancellation and statistics that any thread may read. */
#include "backend.h"
#include "mem.h"
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
    _Atomic int finish;  /* st_finish of the last generate */
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

/* The host memory a CPU session will reserve (KV cache, activation
 * buffers, logits and embeddings, layer slots) against what the machine has
 * available (mem.h), before any of it is allocated: the allocations succeed
 * lazily under overcommit and the process would be OOM-killed while the
 * context fills. */
static st_status check_host_memory(const st_model *m, const st_session_params *p, int n_threads, st_error *err) {
    st_mem_avail av;
    st_status rc = st_mem_available(&av, err);
    if (rc || !av.limited) return rc;
    const st_hparams *hp = &m->hp;
    uint64_t kv, bufs;
    st_cpu_backend_bytes(hp, p->n_ctx, p->n_batch, p->kv_f32, n_threads, &kv, &bufs);
    bufs += (uint64_t)hp->n_vocab * 4 + (uint64_t)p->n_batch * (uint64_t)hp->n_embd * 4; /* logits, embeddings */
    st_store_config sc;
    st_store_config_from_session(&sc, p);
    sc.host_slots = true;
    st_store_plan plan;
    if ((rc = st_store_plan_slots(m, &sc, &plan, err))) return rc;
    uint64_t slots = (uint64_t)plan.n_slots * plan.slot_bytes;
    uint64_t need = kv + bufs + slots;
    if (need <= av.bytes) return ST_OK;
    char a[32], b[32], c[32], d[32], e[32], f[32];
    char slot_txt[160] = "no layer slots (weights in place from the mmap)";
    if (plan.budgeted)
        snprintf(slot_txt, sizeof slot_txt, "layer slots %s (%d x %s)", st_mem_fmt(slots, c, sizeof c), plan.n_slots,
                 st_mem_fmt(plan.slot_bytes, d, sizeof d));
    const char *advice = kv >= slots ? "use a smaller context (-c / n_ctx)" : "use a smaller layer budget (--cache-layers / --mem-budget)";
    return st_error_set(err, ST_ERR_NOMEM,
                        "not enough memory for this session: it needs %s = KV cache %s (2 x %d layers x n_ctx %d x %d x "
                        "%d bytes) + buffers %s + %s, but %s is available (%s); %s",
                        st_mem_fmt(need, a, sizeof a), st_mem_fmt(kv, b, sizeof b), hp->n_layer, p->n_ctx,
                        hp->head_dim * hp->n_head_kv, p->kv_f32 ? 4 : 2, st_mem_fmt(bufs, e, sizeof e), slot_txt,
                        st_mem_fmt(av.bytes, f, sizeof f), av.source, advice);
}

st_status st_session_new(st_model *m, const st_session_params *pp, st_session **out, st_error *err) {
    *out = NULL;
    st_session_params p;
    if (pp) p = *pp;
    else st_session_params_default(&p);
    if (p.n_ctx <= 0) p.n_ctx = m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096;
    if (p.n_ctx > ST_MAX_CTX)
        return st_error_set(err, ST_ERR_ARG, "context %d is too large: at most %d (2^22) positions", p.n_ctx, ST_MAX_CTX);
    if (p.n_batch <= 0) p.n_batch = 512;
    if (p.n_batch > p.n_ctx) p.n_batch = p.n_ctx;
    st_status rc = st_gguf_check_file(m->gguf, err);
    if (rc) return rc;
    st_session *s = calloc(1, sizeof *s);
    if (!s) return st_error_set(err, ST_ERR_NOMEM, "out of memory");
    s->m = m;
    s->p = p;
    int nth = m->params.n_threads > 0 ? m->params.n_threads : st_physical_cores();
    if ((rc = st_tp_new(nth, &s->tp, err))) goto fail;
    if (p.backend != ST_BACKEND_CPU) { /* a GPU backend (auto: if there is one) */
        rc = g_gpu_backend ? g_gpu_backend(m, &p, &s->be, err)
                           : st_error_set(err, ST_ERR_UNSUPPORTED, "this strata was built without a GPU backend");
        if (rc && p.backend != ST_BACKEND_AUTO) goto fail;
    }
    /* host memory is checked for the CPU backend; a GPU backend's KV cache
     * and slots are device memory, which it checks itself */
    if (!s->be && (rc = check_host_memory(m, &p, st_tp_n_threads(s->tp), err))) goto fail;
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

st_status st_session_check_prompt(const st_session *s, int n_prompt, st_error *err) {
    int n_ctx = s->p.n_ctx, held = s->n_past;
    if (n_prompt < 0) return st_error_set(err, ST_ERR_ARG, "negative prompt length %d", n_prompt);
    if ((int64_t)held + n_prompt < n_ctx) return ST_OK;
    if (held == 0)
        return st_error_set(err, ST_ERR_CONTEXT,
                            "the prompt is too long: %d tokens, the context holds %d (n_ctx %d), and at least one "
                            "position must stay free for the reply; use a larger context or a shorter prompt",
                            n_prompt, n_ctx, n_ctx);
    return st_error_set(err, ST_ERR_CONTEXT,
                        "the prompt does not fit: %d tokens after the %d already in the context of %d (n_ctx %d, %d "
                        "free), and at least one position must stay free for the reply; rewind the session or use a "
                        "larger context",
                        n_prompt, held, n_ctx, n_ctx, n_ctx - held);
}

const char *st_finish_str(st_finish f) {
    switch (f) {
    case ST_FINISH_NONE: return "none";
    case ST_FINISH_EOS: return "eos";
    case ST_FINISH_LENGTH: return "length";
    case ST_FINISH_CALLBACK: return "callback";
    case ST_FINISH_CONTEXT: return "context full";
    case ST_FINISH_CANCELLED: return "cancelled";
    case ST_FINISH_ERROR: return "error";
    }
    return "unknown";
}

/* One forward pass over a batch: embeddings, the layers in order (each
 * acquired from the store, the next ones hinted), then the LM head. */
static st_status forward_batch(st_session *s, const int32_t *tok, int n, bool all_logits, float *logits,
                               st_error *err) {
    st_model *m = s->m;
    const st_hparams *hp = &m->hp;
    const st_type_traits *et = st_type_traits_get(m->tok_embd.type);
    /* Before any weight is touched: a model file truncated since it was
     * opened would raise SIGBUS on the first mapped page past its new end
     * (embeddings, output, every layer without a budget); this turns a
     * truncation between forward passes into an error. One fstat. */
    st_status rc = st_gguf_check_file(m->gguf, err);
    if (rc) return rc;
    for (int i = 0; i < n; i++) {
        et->to_float((const uint8_t *)m->tok_embd.data + (size_t)tok[i] * m->tok_embd.row_bytes,
                     s->embd + (size_t)i * hp->n_embd, hp->n_embd);
    }
    rc = s->be->ops->begin(s->be, s->embd, n, s->n_past, err);
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
    if ((int64_t)s->n_past + n > s->p.n_ctx) {
        if (s->n_past == 0)
            return st_error_set(err, ST_ERR_CONTEXT, "%d tokens do not fit the context of %d (n_ctx %d)", n, s->p.n_ctx,
                                s->p.n_ctx);
        return st_error_set(err, ST_ERR_CONTEXT,
                            "context full: %d tokens in the cache + %d new exceed the context of %d (n_ctx %d, %d free)",
                            s->n_past, n, s->p.n_ctx, s->p.n_ctx, s->p.n_ctx - s->n_past);
    }
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
    st_finish fin = ST_FINISH_ERROR;
    atomic_store(&s->finish, ST_FINISH_NONE);
    atomic_store(&s->n_prompt, 0);
    atomic_store(&s->n_gen, 0);
    atomic_store(&s->prompt_ns, 0);
    atomic_store(&s->gen_ns, 0);
    atomic_store(&s->ttft_ns, 0);
    atomic_store(&s->cancel, false);
    int n_before = s->n_past;
    /* a prompt that leaves no room for the reply is refused before any
     * (possibly long) evaluation */
    st_status rc = n_prompt < 0 ? st_error_set(err, ST_ERR_ARG, "negative prompt length %d", n_prompt)
                 : gp->n_predict != 0 && n_prompt > 0 ? st_session_check_prompt(s, n_prompt, err)
                 : ST_OK;
    st_sampler *smp = NULL;
    if (!rc) rc = st_sampler_new(&gp->sampling, s->m->hp.n_vocab, &smp, err);
    if (rc) {
        atomic_store(&s->finish, ST_FINISH_ERROR);
        return rc;
    }
    for (int i = 0; i < n_prompt; i++) st_sampler_accept(smp, prompt[i]);
    atomic_store(&s->n_prompt, (uint64_t)n_prompt);

    atomic_store(&s->phase, ST_PHASE_PREFILL);
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
    fin = ST_FINISH_LENGTH;
    for (int i = 0; gp->n_predict < 0 || i < gp->n_predict; i++) {
        if (atomic_load(&s->cancel)) { rc = st_error_set(err, ST_ERR_CANCELLED, "cancelled"); goto done; }
        int32_t t = st_sampler_sample(smp, st_session_logits(s, -1));
        st_sampler_accept(smp, t);
        if (i == 0) atomic_store(&s->ttft_ns, st_now_ns() - t0);
        if (!gp->ignore_eos && st_tok_is_eog(tok, t)) { fin = ST_FINISH_EOS; break; }
        /* A token that cannot be evaluated is not emitted either: the text
         * and the cache stay in step. No context shift: generation stops. */
        if (s->n_past >= s->p.n_ctx) {
            if (n_before > 0)
                rc = st_error_set(err, ST_ERR_CONTEXT,
                                  "context full: n_ctx %d reached (%d tokens from before + %d prompt + %d generated); "
                                  "generation stopped",
                                  s->p.n_ctx, n_before, n_prompt, i);
            else
                rc = st_error_set(err, ST_ERR_CONTEXT,
                                  "context full: n_ctx %d reached (%d prompt + %d generated tokens); generation stopped",
                                  s->p.n_ctx, n_prompt, i);
            goto done;
        }
        int len = st_tok_token_to_piece(tok, t, piece, sizeof piece, false);
        if (len < 0) len = 0;
        if (len > (int)sizeof piece) len = (int)sizeof piece;
        bool go_on = !cb || cb(user, t, piece, len);
        rc = eval_impl(s, &t, 1, false, err);
        if (rc) goto done;
        atomic_store(&s->n_gen, (uint64_t)i + 1);
        atomic_store(&s->gen_ns, st_now_ns() - t1);
        if (!go_on) { fin = ST_FINISH_CALLBACK; break; }
    }
done:
    if (rc) fin = rc == ST_ERR_CANCELLED ? ST_FINISH_CANCELLED
                : rc == ST_ERR_CONTEXT && atomic_load(&s->phase) == ST_PHASE_DECODE ? ST_FINISH_CONTEXT
                : ST_FINISH_ERROR;
    atomic_store(&s->finish, fin);
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
    o->finish = (st_finish)atomic_load(&w->finish);
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
