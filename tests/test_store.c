/* test_store.c — the layer store with a budget: outputs bit-identical to the
 * in-place (mmap) path under every store configuration; slot contents equal
 * to the file; budget accounting; fault injection through the read hook
 * (delays, EIO, short reads) surfacing at acquire without hangs; shutdown
 * with reads in flight and a full queue; de-duplication and backpressure
 * counts; process RSS with a budget vs without on a generated model.
 * Runs the bundled tiny model (8 layers) with 2 compute threads. */
#include "backend.h"
#include "model.h"
#include "prefetch.h"
#include "store.h"
#include "strata.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MODEL "assets/tiny-14m-q8_0.gguf"
#define MAXT 256
#define N_GEN 12

static st_model *g_model;
static int g_nv;

static void open_model(void) {
    st_model_params mp;
    st_model_params_default(&mp);
    mp.n_threads = 2;
    st_error err = {0};
    cr_assert_eq(st_model_open(tu_source_path(MODEL), &mp, &g_model, &err), ST_OK, "%s", err.msg);
    g_nv = st_tok_n_vocab(st_model_tokenizer(g_model));
}
static void close_model(void) {
    st_store_set_default_read(NULL, NULL);
    st_model_close(g_model);
    g_model = NULL;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

/* ------------------------------------------------------------ a fault-injecting reader */

typedef enum { FI_NONE, FI_DELAY, FI_EIO, FI_SHORT, FI_PARTIAL, FI_GATE } fi_mode;

typedef struct {
    fi_mode mode;
    long delay_us;              /* FI_DELAY: every read sleeps this long */
    uint64_t lo, hi;            /* FI_EIO / FI_SHORT: reads overlapping [lo, hi) fail */
    atomic_bool gate_open;      /* FI_GATE: reads from threads other than `main` wait for it */
    pthread_t main;
    atomic_int calls, failures, blocked;
} fault;

static ssize_t fault_read(void *ctx, int fd, void *buf, size_t n, uint64_t off) {
    fault *f = ctx;
    atomic_fetch_add(&f->calls, 1);
    bool hit = off < f->hi && off + n > f->lo;
    switch (f->mode) {
    case FI_NONE: break;
    case FI_DELAY: sleep_us(f->delay_us); break;
    case FI_EIO:
        if (hit) { atomic_fetch_add(&f->failures, 1); errno = EIO; return -1; }
        break;
    case FI_SHORT: /* half of what was asked, then end of file */
        if (hit) {
            atomic_fetch_add(&f->failures, 1);
            if (off >= f->lo + 4096) return 0;
            ssize_t r = pread(fd, buf, n / 2, (off_t)off);
            return r;
        }
        break;
    case FI_PARTIAL: /* legal partial reads: at most 5000 bytes per call */
        if (n > 5000) n = 5000;
        break;
    case FI_GATE:
        if (!pthread_equal(pthread_self(), f->main)) {
            atomic_fetch_add(&f->blocked, 1);
            while (!atomic_load(&f->gate_open)) sleep_us(200);
            atomic_fetch_sub(&f->blocked, 1);
        }
        break;
    }
    return pread(fd, buf, n, (off_t)off);
}

/* ------------------------------------------------------------ a session run */

typedef struct {
    int n_prompt;
    float *prompt_logits;       /* [n_prompt][nv] */
    int n_gen;
    int32_t tok[N_GEN];
    float *gen_logits;          /* [N_GEN][nv]: the logits each token was picked from */
    st_store_figures fig;
} run_result;

typedef struct { st_session *s; run_result *r; } gen_ctx;

static bool on_token(void *user, int32_t tok, const char *piece, int len) {
    (void)piece;
    (void)len;
    gen_ctx *g = user;
    run_result *r = g->r;
    if (r->n_gen < N_GEN) {
        r->tok[r->n_gen] = tok;
        memcpy(r->gen_logits + (size_t)r->n_gen * g_nv, st_session_logits(g->s, -1), (size_t)g_nv * sizeof(float));
    }
    r->n_gen++;
    return true;
}

static const char *k_text = "Once upon a time, there was a little girl named Lily. She loved to play outside.";

/* Prompt with all logits (in batches of n_batch), then N_GEN greedy tokens. */
static void run_session(const st_session_params *sp, run_result *r) {
    memset(r, 0, sizeof *r);
    int32_t ids[MAXT];
    int64_t n = st_tok_encode(st_model_tokenizer(g_model), k_text, strlen(k_text), true, false, ids, MAXT);
    cr_assert(n > 5 && n < MAXT);
    st_session *s = NULL;
    st_error err = {0};
    cr_assert_eq(st_session_new(g_model, sp, &s, &err), ST_OK, "%s", err.msg);
    r->n_prompt = (int)n;
    r->prompt_logits = malloc((size_t)n * g_nv * sizeof(float));
    r->gen_logits = calloc((size_t)N_GEN * g_nv, sizeof(float));
    cr_assert_eq(st_session_eval(s, ids, (int)n, true, &err), ST_OK, "%s", err.msg);
    for (int i = 0; i < n; i++) memcpy(r->prompt_logits + (size_t)i * g_nv, st_session_logits(s, i), (size_t)g_nv * 4);
    st_session_rewind(s, 0);
    st_gen_params gp;
    st_gen_params_default(&gp);
    gp.sampling.temp = 0;
    gp.n_predict = N_GEN;
    gp.ignore_eos = true;
    gen_ctx g = {s, r};
    cr_assert_eq(st_generate(s, ids, (int)n, &gp, on_token, &g, &err), ST_OK, "%s", err.msg);
    cr_assert_eq(r->n_gen, N_GEN);
    st_stats ss;
    st_session_stats(s, &ss);
    r->fig = ss.store;
    st_session_free(s);
}

static void free_result(run_result *r) {
    free(r->prompt_logits);
    free(r->gen_logits);
}

static void assert_identical(const run_result *a, const run_result *b, const char *what) {
    cr_assert_eq(a->n_prompt, b->n_prompt);
    for (int i = 0; i < a->n_prompt; i++)
        cr_assert(!memcmp(a->prompt_logits + (size_t)i * g_nv, b->prompt_logits + (size_t)i * g_nv, (size_t)g_nv * 4),
                  "%s: prompt logits of position %d differ from the in-place run", what, i);
    for (int i = 0; i < N_GEN; i++) {
        cr_assert_eq(a->tok[i], b->tok[i], "%s: generated token %d is %d, in place %d", what, i, b->tok[i], a->tok[i]);
        cr_assert(!memcmp(a->gen_logits + (size_t)i * g_nv, b->gen_logits + (size_t)i * g_nv, (size_t)g_nv * 4),
                  "%s: logits of generated token %d differ from the in-place run", what, i);
    }
}

static st_session_params params(int n_batch) {
    st_session_params sp;
    st_session_params_default(&sp);
    sp.n_ctx = 128;
    sp.n_batch = n_batch;
    return sp;
}

/* ------------------------------------------------------------ identical outputs */

Test(store, outputs_are_bit_identical_under_every_configuration, .init = open_model, .fini = close_model,
     .timeout = 120) {
    st_model_info info;
    st_model_get_info(g_model, &info);
    cr_assert_eq(info.n_layer, 8);
    run_result ref;
    st_session_params sp = params(0);
    run_session(&sp, &ref);
    cr_assert_not(ref.fig.budgeted, "no budget: layers in place");
    cr_assert_eq(ref.fig.layer_state[0], ST_LAYER_MAPPED);
    cr_assert_eq(ref.fig.bytes_read, 0);

    struct {
        const char *name;
        int layers, policy, prefetch, threads, ring, n_batch;
        bool direct;
        int mem_budget_slots; /* >0: a byte budget of this many slots + the output tensors */
    } cfg[] = {
        {"budget of 2 layers", 2, ST_CACHE_RING, ST_PREFETCH_AUTO, 0, 0, 0, false, 0},
        {"prefetch off", 2, ST_CACHE_RING, ST_PREFETCH_OFF, 0, 0, 0, false, 0},
        {"1 prefetch thread", 2, ST_CACHE_RING, ST_PREFETCH_AUTO, 1, 0, 0, false, 0},
        {"4 prefetch threads, 6 layers", 6, ST_CACHE_RING, ST_PREFETCH_AUTO, 4, 3, 0, false, 0},
        {"direct io", 2, ST_CACHE_RING, ST_PREFETCH_AUTO, 0, 0, 0, true, 0},
        {"direct io, 5 layers, prefetch off", 5, ST_CACHE_RING, ST_PREFETCH_OFF, 0, 0, 0, true, 0},
        {"lru, 3 layers", 3, ST_CACHE_LRU, ST_PREFETCH_AUTO, 0, 0, 0, false, 0},
        {"lru, 2 layers, prefetch off", 2, ST_CACHE_LRU, ST_PREFETCH_OFF, 0, 0, 0, false, 0},
        {"ring 5 layers (pinned + ring), fixed distance 2", 5, ST_CACHE_RING, 2, 2, 3, 0, false, 0},
        {"all 8 layers pinned", 8, ST_CACHE_RING, ST_PREFETCH_AUTO, 0, 0, 0, false, 0},
        {"budget of 1 layer", 1, ST_CACHE_RING, ST_PREFETCH_AUTO, 0, 0, 0, false, 0},
        {"byte budget of 3 slots, batches of 4", 0, ST_CACHE_RING, ST_PREFETCH_AUTO, 0, 0, 4, false, 3},
    };
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        st_session_params p = params(cfg[i].n_batch);
        p.cache_layers = cfg[i].layers;
        p.cache_policy = cfg[i].policy;
        p.prefetch = cfg[i].prefetch;
        p.prefetch_threads = cfg[i].threads;
        p.ring_slots = cfg[i].ring;
        p.direct_io = cfg[i].direct;
        if (cfg[i].mem_budget_slots) {
            /* slot size: the largest layer, 4 KiB-aligned runs, + 4 KiB for aligning the slot */
            p.mem_budget = (uint64_t)cfg[i].mem_budget_slots * (ref.fig.resident_bytes / 8 + 2 * 4096 + 4096) + 8705024;
        }
        run_result r;
        run_session(&p, &r);
        assert_identical(&ref, &r, cfg[i].name);
        const st_store_figures *f = &r.fig;
        cr_assert(f->budgeted, "%s", cfg[i].name);
        int want_slots = cfg[i].mem_budget_slots ? cfg[i].mem_budget_slots : cfg[i].layers;
        cr_assert_eq(f->n_slots, want_slots, "%s: %d slots", cfg[i].name, f->n_slots);
        cr_assert(f->peak_resident_bytes <= (uint64_t)f->n_slots * f->slot_bytes, "%s: peak resident %llu > %d slots",
                  cfg[i].name, (unsigned long long)f->peak_resident_bytes, f->n_slots);
        if (p.mem_budget) cr_assert(f->slot_alloc_bytes + f->fixed_bytes <= p.mem_budget, "%s", cfg[i].name);
        cr_assert_eq(f->prefetch_on, cfg[i].prefetch != ST_PREFETCH_OFF && (f->n_slots > 1 || f->n_pinned > 0),
                     "%s", cfg[i].name);
        if (cfg[i].prefetch == ST_PREFETCH_OFF) cr_assert_eq(f->issued, 0);
        if (cfg[i].threads && f->prefetch_on) cr_assert_eq(f->prefetch_threads, cfg[i].threads);
        cr_assert_eq(f->errors, 0);
        cr_assert_eq(f->acquires, f->ready + f->waits + f->sync_loads, "%s: every acquisition is ready, waits or loads",
                     cfg[i].name);
        if (cfg[i].direct) cr_log_info("%s: O_DIRECT %s", cfg[i].name, f->direct_io ? "in use" : "refused by the filesystem");
        cr_log_info("%-48s slots %d (%d pinned), ready %.1f%%, sync %llu, waits %llu, loads %llu, dedup %llu, read %.1f MiB",
                    cfg[i].name, f->n_slots, f->n_pinned, 100.0 * f->ready / f->acquires,
                    (unsigned long long)f->sync_loads, (unsigned long long)f->waits, (unsigned long long)f->loads,
                    (unsigned long long)f->dedup, f->bytes_read / 1048576.0);
        if (cfg[i].layers == 8) cr_assert_eq(f->loads, 8, "all layers fit: each is read once");
        free_result(&r);
    }
    free_result(&ref);
}

/* Partial reads (legal: at most 5000 bytes per call) are continued, with
 * and without O_DIRECT, and the outputs stay identical. */
Test(store, partial_reads_are_continued, .init = open_model, .fini = close_model, .timeout = 60) {
    run_result ref, r;
    st_session_params sp = params(0);
    run_session(&sp, &ref);
    static fault f = {.mode = FI_PARTIAL};
    st_store_set_default_read(fault_read, &f);
    for (int direct = 0; direct < 2; direct++) {
        sp.cache_layers = 3;
        sp.direct_io = direct;
        run_session(&sp, &r);
        assert_identical(&ref, &r, direct ? "partial reads, O_DIRECT" : "partial reads");
        cr_assert_gt(atomic_load(&f.calls), 100);
        free_result(&r);
    }
    free_result(&ref);
}
