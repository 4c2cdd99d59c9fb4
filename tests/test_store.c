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
    bool hit = off >= (f->lo & ~(uint64_t)4095) && off < f->hi; /* reads that start in the range */
    switch (f->mode) {
    case FI_NONE: break;
    case FI_DELAY: sleep_us(f->delay_us); break;
    case FI_EIO:
        if (hit) { atomic_fetch_add(&f->failures, 1); errno = EIO; return -1; }
        break;
    case FI_SHORT: /* half of what was asked, then end of file */
        if (hit) {
            atomic_fetch_add(&f->failures, 1);
            if (off != (f->lo & ~(uint64_t)4095)) return 0;
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
        cr_assert_eq(f->prefetch_on,
                     st_prefetch_available() && cfg[i].prefetch != ST_PREFETCH_OFF && (f->n_slots > 1 || f->n_pinned > 0),
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

/* ------------------------------------------------------------ store-level tests with a test backend */

/* Slots from malloc; `opaque` makes the store treat them as device memory
 * (staging buffer + slot_upload), the path a Vulkan backend takes. */
typedef struct {
    st_backend base;
    atomic_int slots, uploads;
    atomic_ullong upload_bytes;
} test_be;

static void *tb_alloc(st_backend *b, size_t n) {
    atomic_fetch_add(&((test_be *)b)->slots, 1);
    return malloc(n);
}
static void tb_free(st_backend *b, void *p) {
    atomic_fetch_sub(&((test_be *)b)->slots, 1);
    free(p);
}
static st_status tb_upload(st_backend *b, void *slot, size_t off, const void *src, size_t n, st_error *err) {
    (void)err;
    test_be *t = (test_be *)b;
    atomic_fetch_add(&t->uploads, 1);
    atomic_fetch_add(&t->upload_bytes, n);
    memcpy((uint8_t *)slot + off, src, n);
    return ST_OK;
}
static const st_backend_ops tb_ops = {.name = "test", .slot_alloc = tb_alloc, .slot_free = tb_free, .slot_upload = tb_upload};

static test_be g_be = {.base = {.ops = &tb_ops}};

static st_store *new_store(const st_store_config *c) {
    st_store *s = NULL;
    st_error err = {0};
    cr_assert_eq(st_store_new(g_model, &g_be.base, c, &s, &err), ST_OK, "%s", err.msg);
    return s;
}

static st_store_config cfg_layers(int n, st_cache_policy pol, int prefetch, bool host) {
    st_store_config c;
    st_store_config_default(&c);
    c.cache_layers = n;
    c.policy = pol;
    c.prefetch = prefetch;
    c.host_slots = host;
    return c;
}

/* The acquired layer's tensors hold exactly the file's bytes. */
static void check_layer(const st_layer *L, int il) {
    cr_assert_not_null(L, "layer %d", il);
    const uint8_t *file = st_gguf_base(g_model->gguf);
    for (int k = 0; k < ST_LAYER_N_TENSORS; k++) {
        const st_tensor *t = st_layer_tensor((st_layer *)L, k);
        const st_tensor *ref = st_layer_tensor(&g_model->layers[il], k);
        cr_assert_eq(t->nbytes, ref->nbytes);
        cr_assert_eq(t->file_offset, ref->file_offset);
        cr_assert(!memcmp(t->data, file + t->file_offset, t->nbytes), "layer %d tensor %d differs from the file", il, k);
    }
}

/* Three passes over the 8 layers in order, hinting the next, each layer
 * checked against the file. */
static void sweep_3(st_store *s) {
    for (int pass = 0; pass < 3; pass++)
        for (int il = 0; il < 8; il++) {
            st_error err = {0};
            const st_layer *L = st_store_acquire(s, il, &err);
            cr_assert_not_null(L, "%s", err.msg);
            st_store_hint(s, il + 1, 0);
            check_layer(L, il);
            st_store_release(s, il);
        }
}

static st_store_figures figs(const st_store *s) {
    st_store_figures f;
    st_store_get_stats(s, &f);
    return f;
}

static void layer_range(int il, uint64_t *lo, uint64_t *hi) {
    *lo = UINT64_MAX;
    *hi = 0;
    for (int k = 0; k < ST_LAYER_N_TENSORS; k++) {
        const st_tensor *t = st_layer_tensor(&g_model->layers[il], k);
        if (t->file_offset < *lo) *lo = t->file_offset;
        if (t->file_offset + t->nbytes > *hi) *hi = t->file_offset + t->nbytes;
    }
}

Test(store, slots_hold_the_file_bytes, .init = open_model, .fini = close_model, .timeout = 60) {
    for (int host = 0; host < 2; host++)
        for (int direct = 0; direct < 2; direct++)
            for (int pol = 0; pol < 2; pol++)
                for (int pf = 0; pf < 2; pf++) {
                    st_store_config c = cfg_layers(3, pol, pf ? ST_PREFETCH_AUTO : ST_PREFETCH_OFF, host);
                    c.direct_io = direct;
                    int up0 = atomic_load(&g_be.uploads);
                    st_store *s = new_store(&c);
                    cr_assert_eq(atomic_load(&g_be.slots), 3);
                    sweep_3(s);
                    st_store_figures f = figs(s);
                    cr_assert_eq(f.acquires, 24);
                    cr_assert(f.peak_resident_bytes <= 3 * f.slot_bytes);
                    cr_assert_leq(f.slots_used, 3);
                    if (!host) cr_assert_gt(atomic_load(&g_be.uploads), up0, "device slots are filled by slot_upload");
                    else cr_assert_eq(atomic_load(&g_be.uploads), up0, "host slots are read into directly");
                    st_store_free(s);
                    cr_assert_eq(atomic_load(&g_be.slots), 0, "every slot freed");
                }
}

Test(store, budget_arithmetic, .init = open_model, .fini = close_model, .timeout = 30) {
    /* more layers than the model has: all resident, pinned */
    st_store_config c = cfg_layers(100, ST_CACHE_RING, ST_PREFETCH_AUTO, true);
    st_store *s = new_store(&c);
    st_store_figures f = figs(s);
    cr_assert_eq(f.n_slots, 8);
    cr_assert_eq(f.n_pinned, 8);
    st_store_free(s);
    /* a byte budget too small for the output tensors and one slot: a clear error */
    c = cfg_layers(0, ST_CACHE_RING, ST_PREFETCH_AUTO, true);
    c.mem_budget = 4 << 20;
    st_error err = {0};
    cr_assert_eq(st_store_new(g_model, &g_be.base, &c, &s, &err), ST_ERR_ARG);
    cr_assert(strstr(err.msg, "too small") && strstr(err.msg, "MiB"), "%s", err.msg);
    cr_log_info("%s", err.msg);
    /* exactly 4 slots: the budget is never exceeded by slots + output tensors */
    c.mem_budget = 0;
    c.cache_layers = 1;
    s = new_store(&c);
    f = figs(s);
    st_store_free(s);
    c.cache_layers = 0;
    c.mem_budget = f.fixed_bytes + 4 * f.slot_bytes + f.slot_bytes - 1;
    s = new_store(&c);
    st_store_figures g = figs(s);
    cr_assert_eq(g.n_slots, 4);
    cr_assert_leq(g.slot_alloc_bytes + g.fixed_bytes, c.mem_budget);
    st_store_free(s);
    /* ring slots: auto and explicit */
    c = cfg_layers(6, ST_CACHE_RING, ST_PREFETCH_AUTO, true);
    c.ring_slots = 4;
    s = new_store(&c);
    g = figs(s);
    cr_assert_eq(g.n_pinned, 2);
    cr_assert_eq(g.n_ring, 4);
    if (st_prefetch_available()) cr_assert_eq(g.distance_limit, 3);
    st_store_free(s);
}

/* ------------------------------------------------------------ faults */

static void assert_session_error(const st_session_params *sp, const char *want, int layer) {
    int32_t ids[MAXT];
    int64_t n = st_tok_encode(st_model_tokenizer(g_model), k_text, strlen(k_text), true, false, ids, MAXT);
    st_session *s = NULL;
    st_error err = {0};
    cr_assert_eq(st_session_new(g_model, sp, &s, &err), ST_OK, "%s", err.msg);
    st_status rc = st_session_eval(s, ids, (int)n, false, &err);
    cr_assert_eq(rc, ST_ERR_IO, "eval with a failing read: %s (%s)", st_status_str(rc), err.msg);
    char lay[32];
    snprintf(lay, sizeof lay, "layer %d", layer);
    cr_assert(strstr(err.msg, lay), "the message names the layer: %s", err.msg);
    cr_assert(strstr(err.msg, "tiny-14m-q8_0.gguf"), "the message names the file: %s", err.msg);
    cr_assert(strstr(err.msg, "offset"), "the message gives the offset: %s", err.msg);
    cr_assert(strstr(err.msg, want), "expected '%s' in: %s", want, err.msg);
    cr_assert_eq(st_session_n_past(s), 0, "a failed eval leaves the cache as it was");
    st_stats ss;
    st_session_stats(s, &ss);
    cr_assert_geq(ss.store.errors, 1);
    cr_log_info("prefetch %d: %s", sp->prefetch, err.msg);
    st_session_free(s);
}

Test(store, read_errors_surface_at_acquire, .init = open_model, .fini = close_model, .timeout = 30) {
    static fault f = {.mode = FI_EIO};
    layer_range(3, &f.lo, &f.hi);
    st_store_set_default_read(fault_read, &f);
    for (int pf = 0; pf < 2; pf++) {
        st_session_params sp = params(0);
        sp.cache_layers = 2;
        sp.prefetch = pf ? ST_PREFETCH_AUTO : ST_PREFETCH_OFF;
        f.mode = FI_EIO;
        assert_session_error(&sp, "Input/output error", 3);
        f.mode = FI_SHORT;
        assert_session_error(&sp, "short read", 3);
    }
    cr_assert_gt(atomic_load(&f.failures), 0);
    /* once the file reads again, the same session recovers */
    st_session_params sp = params(0);
    sp.cache_layers = 2;
    st_session *s = NULL;
    st_error err = {0};
    cr_assert_eq(st_session_new(g_model, &sp, &s, &err), ST_OK);
    int32_t ids[4] = {1, 450, 3234, 338};
    f.mode = FI_EIO;
    cr_assert_eq(st_session_eval(s, ids, 4, false, &err), ST_ERR_IO);
    f.mode = FI_NONE;
    cr_assert_eq(st_session_eval(s, ids, 4, false, &err), ST_OK, "after the fault is gone: %s", err.msg);
    st_session_free(s);
}

Test(store, slow_reads_stall_but_give_the_same_output, .init = open_model, .fini = close_model, .timeout = 60) {
    run_result ref, r;
    st_session_params sp = params(0);
    run_session(&sp, &ref);
    static fault f = {.mode = FI_DELAY, .delay_us = 1500};
    st_store_set_default_read(fault_read, &f);
    sp.cache_layers = 4;
    sp.ring_slots = 4;
    run_session(&sp, &r);
    assert_identical(&ref, &r, "1.5 ms per read");
    cr_assert_gt(r.fig.stall_ns, 0);
    if (st_prefetch_available()) cr_assert_gt(r.fig.distance_max, 1, "the distance grows while acquisitions stall");
    cr_log_info("slow reads: ready %.1f%%, waits %llu, stall %.1f ms, distance max %d of %d",
                100.0 * r.fig.ready / r.fig.acquires, (unsigned long long)r.fig.waits, r.fig.stall_ns / 1e6,
                r.fig.distance_max, r.fig.distance_limit);
    free_result(&r);
    free_result(&ref);
}

/* ------------------------------------------------------------ shutdown, de-dup, backpressure */

static double now_s(void) { return st_now_ns() / 1e9; }

static void wait_for(atomic_int *v, int want) {
    double t0 = now_s();
    while (atomic_load(v) != want) {
        cr_assert(now_s() - t0 < 10, "timed out waiting");
        sleep_us(200);
    }
}

typedef struct { st_store *s; } shut_arg;
static void *shutdown_thread(void *a) {
    st_store_shutdown(((shut_arg *)a)->s);
    return NULL;
}

/* One reader thread blocked inside a read, a queue of 2 full: the counts are
 * exact, shutdown cancels the queue and waits for the read in flight. */
Test(store, dedup_backpressure_and_shutdown_with_a_full_queue, .init = open_model, .fini = close_model, .timeout = 30) {
    if (!st_prefetch_available()) cr_skip_test("prefetch compiled out");
    static fault f = {.mode = FI_GATE};
    f.main = pthread_self();
    st_store_config c = cfg_layers(7, ST_CACHE_LRU, ST_PREFETCH_AUTO, true);
    c.prefetch_threads = 1;
    c.queue_cap = 2;
    c.read = fault_read;
    c.read_ctx = &f;
    st_store *s = new_store(&c);
    st_error err = {0};
    const st_layer *L = st_store_acquire(s, 0, &err); /* the main thread's reads pass */
    check_layer(L, 0);
    st_store_hint(s, 1, 1);
    wait_for(&f.blocked, 1); /* layer 1 is in flight, blocked */
    st_store_figures fg = figs(s);
    cr_assert_eq(fg.issued, 1);
    cr_assert_eq(fg.layer_state[1], ST_LAYER_LOADING);
    cr_assert_eq(fg.queue_depth, 0);

    st_store_hint(s, 1, 6); /* 1: in flight (de-dup); 2, 3: queued; 4: queue full */
    fg = figs(s);
    cr_assert_eq(fg.issued, 3);
    cr_assert_eq(fg.dedup, 1);
    cr_assert_eq(fg.dropped_full, 1);
    cr_assert_eq(fg.queue_depth, 2);
    cr_assert_eq(fg.queue_peak, 2);
    cr_assert_eq(fg.layer_state[2], ST_LAYER_LOADING);
    cr_assert_eq(fg.layer_state[3], ST_LAYER_LOADING);
    cr_assert_eq(fg.layer_state[4], ST_LAYER_ABSENT);
    st_store_hint(s, 2, 2); /* both queued already */
    cr_assert_eq(figs(s).dedup, 3);

    /* shutdown: the queue is cancelled at once, the read in flight is waited for */
    shut_arg a = {s};
    pthread_t th;
    pthread_create(&th, NULL, shutdown_thread, &a);
    double t0 = now_s();
    while (figs(s).cancelled < 2) {
        cr_assert(now_s() - t0 < 10, "queued requests not cancelled");
        sleep_us(200);
    }
    fg = figs(s);
    cr_assert_eq(fg.layer_state[2], ST_LAYER_ABSENT);
    cr_assert_eq(fg.layer_state[3], ST_LAYER_ABSENT);
    cr_assert_eq(fg.layer_state[1], ST_LAYER_LOADING, "still in flight");
    cr_assert_eq(fg.queue_depth, 0);
    sleep_us(20000);
    atomic_store(&f.gate_open, true);
    pthread_join(th, NULL);
    fg = figs(s);
    cr_assert_eq(fg.layer_state[1], ST_LAYER_RESIDENT, "the read in flight completed");
    cr_assert_eq(fg.cancelled, 2);
    /* after shutdown: hints do nothing, acquire loads synchronously */
    uint64_t issued = fg.issued;
    st_store_hint(s, 2, 3);
    cr_assert_eq(figs(s).issued, issued);
    st_store_release(s, 0);
    for (int il = 1; il < 8; il++) {
        L = st_store_acquire(s, il, &err);
        check_layer(L, il);
        st_store_release(s, il);
    }
    fg = figs(s);
    cr_assert_eq(fg.ready, 1, "layer 1 was resident");
    cr_assert_eq(fg.sync_loads, 1 + 6);
    st_store_free(s);
}

/* Shutdown with reads in flight on several threads and more queued. */
Test(store, shutdown_with_reads_in_flight, .init = open_model, .fini = close_model, .timeout = 30) {
    static fault f = {.mode = FI_DELAY, .delay_us = 100000};
    st_store_config c = cfg_layers(7, ST_CACHE_LRU, ST_PREFETCH_AUTO, true);
    c.prefetch_threads = 2;
    c.queue_cap = 8;
    c.read = fault_read;
    c.read_ctx = &f;
    for (int rep = 0; rep < 2; rep++) {
        st_store *s = new_store(&c);
        st_store_hint(s, 1, 6);
        st_store_figures fg = figs(s);
        cr_assert_eq(fg.issued, st_prefetch_available() ? 6 : 0);
        sleep_us(20000); /* let both workers start a read */
        double t0 = now_s();
        if (rep == 0) st_store_shutdown(s);
        st_store_free(s); /* (rep 1: free shuts down itself) */
        double dt = now_s() - t0;
        cr_assert_lt(dt, 5.0, "shutdown took %.3f s with 100 ms reads in flight (a hang check, not a speed test)", dt);
        cr_log_info("shutdown with 2 reads in flight and 4 queued: %.1f ms", dt * 1e3);
    }
}

/* The session is freed while its prefetches are queued and in flight. */
Test(store, session_freed_mid_generation, .init = open_model, .fini = close_model, .timeout = 30) {
    static fault f = {.mode = FI_DELAY, .delay_us = 30000};
    st_store_set_default_read(fault_read, &f);
    for (int rep = 0; rep < 3; rep++) {
        st_session_params sp = params(0);
        sp.cache_layers = 6;
        sp.ring_slots = 4;
        sp.prefetch_threads = 2;
        st_session *s = NULL;
        st_error err = {0};
        cr_assert_eq(st_session_new(g_model, &sp, &s, &err), ST_OK);
        int32_t ids[3] = {1, 450, 3234};
        cr_assert_eq(st_session_eval(s, ids, 3, false, &err), ST_OK, "%s", err.msg);
        st_stats ss;
        st_session_stats(s, &ss);
        if (st_prefetch_available()) cr_assert_gt(ss.store.issued, 0);
        double t0 = now_s();
        st_session_free(s);
        double dt = now_s() - t0;
        cr_assert_lt(dt, 1.0, "free took %.3f s", dt);
    }
}

/* ------------------------------------------------------------ one layer, several readers */

/* A backend like test_be with pinned read buffers and asynchronous uploads
 * (the Vulkan path): the copy is made at once, but the buffer counts as
 * being read by the device until host_wait; the reader below fails the test
 * if the store reads into such a buffer (double buffering gone wrong). */
#define FA_CHECK(cond, msg) cr_assert(cond, msg)
#include "fake_async.h"
static const st_backend_ops ab_ops = {.name = "test-async", .slot_alloc = tb_alloc, .slot_free = tb_free,
                                      .slot_upload = tb_upload, .host_alloc = ab_host_alloc, .host_free = ab_host_free,
                                      .slot_upload_async = ab_upload_async, .host_wait = ab_host_wait};
static test_be g_abe = {.base = {.ops = &ab_ops}};

/* Reads that sleep, fail at one offset, and note which threads read which
 * bytes and whether a read landed in a buffer an upload was still reading. */
#define PR_THREADS 16
typedef struct {
    long delay_us;
    atomic_ullong fail_off;           /* a read starting here fails with EIO (0: none) */
    uint64_t lo, hi;                  /* the layer watched */
    pthread_t th[PR_THREADS];
    int n_th;
    pthread_mutex_t mu;
    atomic_int calls;
} par_reader;

static ssize_t par_read(void *ctx, int fd, void *buf, size_t n, uint64_t off) {
    par_reader *r = ctx;
    atomic_fetch_add(&r->calls, 1);
    int i = ab_find(buf);
    if (i >= 0 && atomic_load(&g_ab.pending[i])) atomic_fetch_add(&g_ab.overwrites, 1);
    if (off >= r->lo && off < r->hi) {
        pthread_mutex_lock(&r->mu);
        bool seen = false;
        for (int k = 0; k < r->n_th; k++) seen |= pthread_equal(r->th[k], pthread_self());
        if (!seen && r->n_th < PR_THREADS) r->th[r->n_th++] = pthread_self();
        pthread_mutex_unlock(&r->mu);
    }
    if (r->delay_us) sleep_us(r->delay_us);
    if (off == atomic_load(&r->fail_off)) {
        errno = EIO;
        return -1;
    }
    return pread(fd, buf, n, (off_t)off);
}

static void wait_state(st_store *s, int il, int state) {
    double t0 = now_s();
    while (figs(s).layer_state[il] != state) {
        cr_assert(now_s() - t0 < 10, "layer %d never reached state %d", il, state);
        sleep_us(500);
    }
}

/* One layer split into 16 KiB chunks (~52 for the tiny model's 0.8 MiB
 * layers) and read by 4 threads at once: identical bytes, in host slots and
 * through double-buffered async uploads; a read error in a middle chunk
 * fails that layer alone, with the offset of that chunk, and the next
 * acquire reads it again; a shutdown mid-layer cancels the rest of it. */
Test(store, one_layer_read_by_several_readers, .init = open_model, .fini = close_model, .timeout = 60) {
    if (!st_prefetch_available()) cr_skip_test("prefetch compiled out");
    const uint32_t CK = 16 << 10;
    for (int host = 0; host < 2; host++) {
        static par_reader pr = {.mu = PTHREAD_MUTEX_INITIALIZER};
        st_store_config c = cfg_layers(3, ST_CACHE_LRU, ST_PREFETCH_AUTO, host);
        c.prefetch_threads = 4;
        c.chunk_bytes = CK;
        c.read = par_read;
        c.read_ctx = &pr;
        st_store *s = NULL;
        st_error err = {0};
        cr_assert_eq(st_store_new(g_model, &g_abe.base, &c, &s, &err), ST_OK, "%s", err.msg);
        if (!host) cr_assert_eq(g_ab.n, 2 * 4 + 2, "two pinned buffers per reader (4 threads + acquire)");

        /* layer 1, prefetched: every reader takes chunks of it */
        layer_range(1, &pr.lo, &pr.hi);
        pr.lo &= ~(uint64_t)4095;
        pr.n_th = 0;
        pr.delay_us = 3000;
        st_store_hint(s, 1, 1);
        wait_state(s, 1, ST_LAYER_RESIDENT);
        cr_assert_geq(pr.n_th, 3, "%d of 4 readers read layer 1 (50 chunks of 3 ms each)", pr.n_th);
        cr_log_info("%s slots: layer 1 read by %d threads", host ? "host" : "device", pr.n_th);
        const st_layer *L = st_store_acquire(s, 1, &err);
        check_layer(L, 1);
        st_store_release(s, 1);
        st_store_figures f = figs(s);
        cr_assert_eq(f.loads, 1);
        cr_assert_eq(f.ready, 1);
        cr_assert_eq(f.bytes_read, (pr.hi + 4095) / 4096 * 4096 - pr.lo, "the layer's runs, read once");

        /* an EIO in the 6th chunk of layer 3 (prefetched, then acquired) */
        uint64_t lo3, hi3;
        layer_range(3, &lo3, &hi3);
        uint64_t bad = (lo3 & ~(uint64_t)4095) + 5 * (uint64_t)CK;
        atomic_store(&pr.fail_off, bad);
        pr.delay_us = 500;
        st_store_hint(s, 3, 1);
        L = st_store_acquire(s, 3, &err);
        cr_assert_null(L);
        char want[96];
        snprintf(want, sizeof want, "layer 3: read of %u bytes at offset %llu of", CK, (unsigned long long)bad);
        cr_assert(strstr(err.msg, want) && strstr(err.msg, "Input/output error") && strstr(err.msg, "tiny-14m-q8_0.gguf"),
                  "%s", err.msg);
        cr_log_info("%s", err.msg);
        f = figs(s);
        cr_assert_eq(f.errors, 1);
        cr_assert_eq(f.layer_state[3], ST_LAYER_ABSENT, "a failed layer holds no slot");
        cr_assert_eq(f.slots_used, 1);
        for (int il = 0; il < 8; il++) cr_assert_neq(f.layer_state[il], ST_LAYER_LOADING);
        atomic_store(&pr.fail_off, 0);
        L = st_store_acquire(s, 3, &err); /* read again */
        cr_assert_not_null(L, "%s", err.msg);
        check_layer(L, 3);
        st_store_release(s, 3);

        /* shutdown with layer 5 half read: the rest is never read */
        pr.delay_us = 20000;
        st_store_hint(s, 5, 1);
        sleep_us(30000);
        int calls = atomic_load(&pr.calls);
        double t0 = now_s();
        st_store_shutdown(s);
        double dt = now_s() - t0;
        f = figs(s);
        cr_assert_eq(f.layer_state[5], ST_LAYER_ABSENT);
        cr_assert_eq(f.cancelled, 1);
        cr_assert_lt(atomic_load(&pr.calls) - calls, 8, "at most the 4 chunks in flight finish");
        cr_assert_lt(dt, 1.0, "shutdown took %.3f s with 20 ms reads", dt);
        pr.delay_us = 0;
        L = st_store_acquire(s, 5, &err); /* synchronously after shutdown */
        check_layer(L, 5);
        st_store_release(s, 5);
        if (!host) {
            cr_assert_gt(atomic_load(&g_ab.async_uploads), 100);
            cr_assert_gt(atomic_load(&g_ab.waits), 0);
        }
        cr_assert_eq(atomic_load(&g_ab.overwrites), 0, "a read into a buffer an upload was still reading");
        st_store_free(s);
        cr_assert_eq(g_ab.n, 0, "every pinned buffer freed");
        cr_assert_eq(atomic_load(&g_abe.slots), 0, "every slot freed");
    }
}

/* A forward pass loaded through 4 readers in 16 KiB chunks, the async
 * backend and the acquirer's help gives the file's bytes for every layer. */
Test(store, chunked_passes_hold_the_file_bytes, .init = open_model, .fini = close_model, .timeout = 60) {
    for (int host = 0; host < 2; host++)
        for (int pol = 0; pol < 2; pol++) {
            st_store_config c = cfg_layers(3, pol, ST_PREFETCH_AUTO, host);
            c.prefetch_threads = 4;
            c.chunk_bytes = 16 << 10;
            st_store *s = NULL;
            st_error err = {0};
            cr_assert_eq(st_store_new(g_model, &g_abe.base, &c, &s, &err), ST_OK, "%s", err.msg);
            sweep_3(s);
            st_store_figures f = figs(s);
            cr_assert_eq(f.acquires, 24);
            cr_assert_eq(f.errors, 0);
            st_store_free(s);
            cr_assert_eq(g_ab.n, 0);
            cr_assert_eq(atomic_load(&g_abe.slots), 0);
        }
    cr_assert_eq(atomic_load(&g_ab.overwrites), 0);
}

/* The host cache: streamed layers kept in the backend's pinned memory, read
 * from the file once when the store is made; their loads are one upload
 * each and read nothing. Every layer holds the file's bytes, with prefetch
 * on and off, all layers or some cached; host slots cache nothing; a read
 * error while filling it fails the store naming layer, file and offset and
 * leaks nothing; a memory limit below it is a clear error. */
Test(store, host_cache_loads_without_reads, .init = open_model, .fini = close_model, .timeout = 60) {
    static par_reader pr = {.mu = PTHREAD_MUTEX_INITIALIZER};
    st_store_config c0 = cfg_layers(3, ST_CACHE_RING, ST_PREFETCH_OFF, false);
    st_store *s = new_store(&c0);
    uint64_t span = figs(s).slot_bytes; /* device slots: the largest layer's image */
    st_store_free(s);
    for (int pf = 0; pf < 2; pf++)
        for (int ncache = 3; ncache <= 8; ncache += 5) {
            st_store_config c = cfg_layers(3, ST_CACHE_RING, pf ? ST_PREFETCH_AUTO : ST_PREFETCH_OFF, false);
            c.host_cache = ncache * span + span / 2;
            c.chunk_bytes = 64 << 10; /* the fill is shared by the readers in chunks too */
            c.read = par_read;
            c.read_ctx = &pr;
            st_error err = {0};
            cr_assert_eq(st_store_new(g_model, &g_abe.base, &c, &s, &err), ST_OK, "%s", err.msg);
            st_store_figures f0 = figs(s);
            cr_assert_eq(f0.host_cache_layers, ncache);
            cr_assert_leq(f0.host_cache_bytes, (uint64_t)ncache * span, "each layer's own image, at most a slot");
            cr_assert_gt(f0.host_cache_bytes, (uint64_t)(ncache - 1) * span);
            cr_assert_geq(f0.bytes_read + 4096 * ncache, f0.host_cache_bytes, "the cached layers read when the store is made");
            int calls0 = atomic_load(&pr.calls);
            sweep_3(s);
            /* a prefetch of the next pass's first layers may still be in
             * flight: stop the readers so the figures below hold still */
            st_store_shutdown(s);
            st_store_figures f = figs(s);
            cr_assert_eq(f.errors, 0);
            if (ncache == 8) {
                cr_assert_eq(atomic_load(&pr.calls), calls0, "nothing read after the fill");
                cr_assert_eq(f.bytes_read, f0.bytes_read);
                cr_assert_eq(f.host_cache_loads, f.loads);
            } else {
                cr_assert_gt(f.bytes_read, f0.bytes_read, "layers 3..7 are read from the file");
                cr_log_info("prefetch %d: %llu of %llu loads from the host cache", pf, (unsigned long long)f.host_cache_loads, (unsigned long long)f.loads);
                cr_assert_gt(f.host_cache_loads, 3, "layers 0..2 loaded from the cache, and again in later passes");
                cr_assert_lt(f.host_cache_loads, f.loads);
            }
            cr_assert_gt(f.bytes_uploaded, f.bytes_read - f0.bytes_read, "the file's bytes and the cache's are uploaded");
            st_store_free(s);
            cr_assert_eq(g_ab.n, 0, "every pinned buffer freed, the cache's too");
            cr_assert_eq(atomic_load(&g_abe.slots), 0);
        }
    cr_assert_eq(atomic_load(&g_ab.overwrites), 0);

    /* host slots (the CPU's) are host memory already: nothing is cached */
    st_store_config c = cfg_layers(3, ST_CACHE_RING, ST_PREFETCH_AUTO, true);
    c.host_cache = 1ull << 30;
    s = new_store(&c);
    cr_assert_eq(figs(s).host_cache_layers, 0);
    sweep_3(s);
    st_store_free(s);

    /* a read error while filling: the store is not made, the message names
     * the layer, the file and the offset, and every buffer is freed */
    c = cfg_layers(3, ST_CACHE_RING, ST_PREFETCH_AUTO, false);
    c.host_cache = 8 * span;
    c.chunk_bytes = 64 << 10;
    c.read = par_read;
    c.read_ctx = &pr;
    uint64_t lo4, hi4;
    layer_range(4, &lo4, &hi4);
    uint64_t bad = (lo4 & ~(uint64_t)4095) + 2 * (64 << 10);
    atomic_store(&pr.fail_off, bad);
    st_error err = {0};
    s = NULL;
    cr_assert_eq(st_store_new(g_model, &g_abe.base, &c, &s, &err), ST_ERR_IO);
    cr_assert_null(s);
    char want[96];
    snprintf(want, sizeof want, "layer 4: read of %u bytes at offset %llu of", 64u << 10, (unsigned long long)bad);
    cr_assert(strstr(err.msg, want) && strstr(err.msg, "Input/output error") && strstr(err.msg, "tiny-14m-q8_0.gguf"), "%s",
              err.msg);
    cr_log_info("%s", err.msg);
    atomic_store(&pr.fail_off, 0);
    cr_assert_eq(g_ab.n, 0, "every pinned buffer freed");
    cr_assert_eq(atomic_load(&g_abe.slots), 0);

    /* more than the memory available: a clear error, nothing allocated */
    st_set_mem_limit(4 * span);
    memset(&err, 0, sizeof err);
    cr_assert_eq(st_store_new(g_model, &g_abe.base, &c, &s, &err), ST_ERR_NOMEM);
    st_set_mem_limit(ST_MEM_DETECT);
    cr_assert(strstr(err.msg, "host cache of 8 layers") && strstr(err.msg, "--host-cache"), "%s", err.msg);
    cr_log_info("%s", err.msg);
    cr_assert_eq(g_ab.n, 0);
    cr_assert_eq(atomic_load(&g_abe.slots), 0);
}

/* ------------------------------------------------------------ process RSS */
#ifndef STORE_TEST_NO_RSS

/* A llama model big enough to see in the RSS (8 layers of 13.6 MiB, Q8_0,
 * embeddings tied), random weights, the tiny model's tokenizer. */
static void write_big_model(const char *path) {
    const int E = 1024, F = 2816, NL = 8, NV = 32000;
    st_gguf *voc = NULL;
    st_error err = {0};
    cr_assert_eq(st_gguf_open(tu_source_path(MODEL), &voc, &err), ST_OK, "%s", err.msg);
    st_gguf_writer *w = NULL;
    cr_assert_eq(st_gguf_writer_open(path, &w, &err), ST_OK, "%s", err.msg);
    st_gguf_writer_kv_str(w, "general.architecture", "llama");
    st_gguf_writer_kv_str(w, "general.name", "store-rss-test");
    st_gguf_writer_kv_u32(w, "llama.context_length", 256);
    st_gguf_writer_kv_u32(w, "llama.embedding_length", (uint32_t)E);
    st_gguf_writer_kv_u32(w, "llama.block_count", (uint32_t)NL);
    st_gguf_writer_kv_u32(w, "llama.feed_forward_length", (uint32_t)F);
    st_gguf_writer_kv_u32(w, "llama.attention.head_count", 8);
    st_gguf_writer_kv_u32(w, "llama.attention.head_count_kv", 8);
    st_gguf_writer_kv_u32(w, "llama.rope.dimension_count", (uint32_t)(E / 8));
    st_gguf_writer_kv_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    st_gguf_writer_kv_f32(w, "llama.rope.freq_base", 10000.0f);
    st_gguf_writer_kv_u32(w, "llama.vocab_size", (uint32_t)NV);
    for (int64_t i = 0; i < st_gguf_n_kv(voc); i++) {
        st_gguf_str k = st_gguf_key(voc, i);
        if (k.len >= 10 && !memcmp(k.ptr, "tokenizer.", 10)) st_gguf_writer_kv_copy(w, voc, i);
    }
    struct { char name[64]; int type; int64_t ne[2]; int nd; } t[2 + 9 * 8];
    int nt = 0;
#define ADD(nm, ty, a, b, d) do { snprintf(t[nt].name, 64, "%s", nm); t[nt].type = ty; t[nt].ne[0] = a; t[nt].ne[1] = b; t[nt].nd = d; nt++; } while (0)
    ADD("token_embd.weight", ST_TYPE_Q8_0, E, NV, 2);
    ADD("output_norm.weight", ST_TYPE_F32, E, 1, 1);
    for (int l = 0; l < NL; l++) {
        char n[64];
        const char *mats[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
        for (int k = 0; k < 7; k++) {
            snprintf(n, sizeof n, "blk.%d.%s.weight", l, mats[k]);
            if (k < 4) ADD(n, ST_TYPE_Q8_0, E, E, 2);
            else if (k < 6) ADD(n, ST_TYPE_Q8_0, E, F, 2);
            else ADD(n, ST_TYPE_Q8_0, F, E, 2);
        }
        snprintf(n, sizeof n, "blk.%d.attn_norm.weight", l);
        ADD(n, ST_TYPE_F32, E, 1, 1);
        snprintf(n, sizeof n, "blk.%d.ffn_norm.weight", l);
        ADD(n, ST_TYPE_F32, E, 1, 1);
    }
#undef ADD
    for (int i = 0; i < nt; i++) st_gguf_writer_add_tensor(w, t[i].name, (st_type)t[i].type, t[i].nd, t[i].ne);
    cr_assert_eq(st_gguf_writer_write_header(w, &err), ST_OK, "%s", err.msg);
    size_t maxb = (size_t)NV * E / 32 * 34;
    uint8_t *buf = malloc(maxb);
    uint32_t rng = 12345;
    for (int i = 0; i < nt; i++) {
        size_t n;
        if (t[i].type == ST_TYPE_F32) {
            n = (size_t)t[i].ne[0] * 4;
            for (size_t j = 0; j < n / 4; j++) ((float *)buf)[j] = 1.0f;
        } else {
            size_t nb = (size_t)(t[i].ne[0] * t[i].ne[1] / 32);
            n = nb * 34;
            for (size_t b = 0; b < nb; b++) {
                uint8_t *blk = buf + b * 34;
                blk[0] = 0x00; blk[1] = 0x14; /* fp16 0.00098 */
                for (int q = 0; q < 32; q++) { rng = rng * 1664525u + 1013904223u; blk[2 + q] = (uint8_t)(rng >> 24); }
            }
        }
        cr_assert_eq(st_gguf_writer_write_tensor_data(w, buf, n, &err), ST_OK, "%s", err.msg);
    }
    free(buf);
    cr_assert_eq(st_gguf_writer_close(w, &err), ST_OK, "%s", err.msg);
    st_gguf_close(voc);
}

typedef struct { uint64_t peak_rss, slots, fixed, peak_resident, layer_bytes; int n_slots; } rss_result;

/* In a child process (a fresh RSS): open, optionally run 4 + 4 tokens. */
static rss_result measure_rss(const char *path, int cache_layers, uint64_t mem_budget, bool run) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        rss_result r = {0};
        st_model_params mp;
        st_model_params_default(&mp);
        mp.n_threads = 2;
        st_model *m = NULL;
        st_error err = {0};
        if (st_model_open(path, &mp, &m, &err)) _exit(3);
        if (run) {
            st_session_params sp;
            st_session_params_default(&sp);
            sp.n_ctx = 64;
            sp.cache_layers = cache_layers;
            sp.mem_budget = mem_budget;
            st_session *s = NULL;
            if (st_session_new(m, &sp, &s, &err)) _exit(4);
            int32_t ids[4] = {1, 450, 3234, 338};
            st_gen_params gp;
            st_gen_params_default(&gp);
            gp.sampling.temp = 0;
            gp.n_predict = 4;
            gp.ignore_eos = true;
            if (st_generate(s, ids, 4, &gp, NULL, NULL, &err)) _exit(5);
            st_stats ss;
            st_session_stats(s, &ss);
            r.slots = ss.store.slot_alloc_bytes;
            r.fixed = ss.store.fixed_bytes;
            r.peak_resident = ss.store.peak_resident_bytes;
            r.n_slots = ss.store.n_slots;
            r.peak_rss = st_peak_rss_bytes();
            st_session_free(s);
        } else {
            r.peak_rss = st_peak_rss_bytes();
        }
        st_model_info info;
        st_model_get_info(m, &info);
        r.layer_bytes = info.layer_bytes;
        st_model_close(m);
        if (write(fds[1], &r, sizeof r) != sizeof r) _exit(6);
        _exit(0);
    }
    close(fds[1]);
    rss_result r = {0};
    ssize_t got = read(fds[0], &r, sizeof r);
    close(fds[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed (status %d)", st);
    cr_assert_eq(got, (ssize_t)sizeof r);
    return r;
}

Test(store, process_rss_stays_within_the_budget, .timeout = 120) {
    char path[512];
    snprintf(path, sizeof path, "%s/store-rss.gguf", tu_tmpdir());
    write_big_model(path);
    const double MiB = 1048576.0;
    rss_result base = measure_rss(path, 0, 0, false);
    rss_result none = measure_rss(path, 0, 0, true);
    rss_result two = measure_rss(path, 2, 0, true);
    rss_result bud = measure_rss(path, 0, 48u << 20, true);
    unlink(path);
    cr_log_info("peak RSS: model open %.1f MiB; no budget %.1f MiB; 2 layers %.1f MiB (slots %.1f); "
                "48 MiB budget %.1f MiB (%d slots %.1f + output %.1f); layers %.1f MiB",
                base.peak_rss / MiB, none.peak_rss / MiB, two.peak_rss / MiB, two.slots / MiB, bud.peak_rss / MiB,
                bud.n_slots, bud.slots / MiB, bud.fixed / MiB, base.layer_bytes / MiB);
    uint64_t layer = base.layer_bytes / 8;
    /* without a budget every layer is touched through the mmap */
    cr_assert_gt(none.peak_rss, base.peak_rss + 7 * layer);
    /* with one: at most the slots more, + the output matrix, activations and KV */
    const uint64_t slack = 24u << 20;
    cr_assert_leq(two.peak_resident, 2 * layer + 2 * 16384);
    cr_assert_leq(two.peak_rss, base.peak_rss + two.slots + two.fixed + slack, "2 layers: %.1f MiB",
                  two.peak_rss / MiB);
    cr_assert_lt(two.peak_rss + 5 * layer, none.peak_rss);
    cr_assert_leq(bud.slots + bud.fixed, 48u << 20);
    cr_assert_leq(bud.peak_rss, base.peak_rss + (48u << 20) + slack, "48 MiB budget: %.1f MiB", bud.peak_rss / MiB);
}
#endif
