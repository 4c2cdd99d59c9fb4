/* tsan_store.c — random schedules of hint / acquire / release / shutdown /
 * free against the layer store and its prefetch pool, built with
 * ThreadSanitizer (CMake: test_store_tsan). A plain program rather than a
 * Criterion test so that TSan sees only our threads.
 *
 * Each schedule draws a store configuration (budget, policy, prefetch
 * distance, reader threads, queue size, host or staged slots, O_DIRECT) and a
 * reader that delays, fails with EIO or returns partial reads at random, then
 * runs a random mix of forward passes, out-of-order and nested acquisitions,
 * hints of random lengths, an optional shutdown midway and a free with reads
 * possibly in flight, while another thread reads the figures. It checks that
 * every acquired layer holds the file's bytes, that failures name the layer,
 * and the figures' invariants. TSan's report (exit code 66) fails the test.
 *
 * usage: test_store_tsan [SCHEDULES] [SEED]            (default 1000, 1) */
#include "backend.h"
#include "model.h"
#include "prefetch.h"
#include "store.h"
#include "strata.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHECK(c, ...)                                                                   \
    do {                                                                                \
        if (!(c)) {                                                                     \
            fprintf(stderr, "tsan_store:%d: schedule %d: check failed: %s: ", __LINE__, \
                    g_sched, #c);                                                       \
            fprintf(stderr, __VA_ARGS__);                                               \
            fprintf(stderr, "\n");                                                      \
            exit(1);                                                                    \
        }                                                                               \
    } while (0)

static int g_sched;
static st_model *g_model;

/* ---- a small model: 8 layers of ~43 KiB (Q8_0, 64 wide), the tiny model's tokenizer */
static void write_model(const char *path, const char *vocab) {
    const int E = 64, F = 128, NL = 8, NV = 32000;
    st_gguf *voc = NULL;
    st_error err = {0};
    CHECK(st_gguf_open(vocab, &voc, &err) == ST_OK, "%s", err.msg);
    st_gguf_writer *w = NULL;
    CHECK(st_gguf_writer_open(path, &w, &err) == ST_OK, "%s", err.msg);
    st_gguf_writer_kv_str(w, "general.architecture", "llama");
    st_gguf_writer_kv_u32(w, "llama.context_length", 64);
    st_gguf_writer_kv_u32(w, "llama.embedding_length", (uint32_t)E);
    st_gguf_writer_kv_u32(w, "llama.block_count", (uint32_t)NL);
    st_gguf_writer_kv_u32(w, "llama.feed_forward_length", (uint32_t)F);
    st_gguf_writer_kv_u32(w, "llama.attention.head_count", 2);
    st_gguf_writer_kv_u32(w, "llama.attention.head_count_kv", 2);
    st_gguf_writer_kv_u32(w, "llama.rope.dimension_count", (uint32_t)(E / 2));
    st_gguf_writer_kv_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    st_gguf_writer_kv_u32(w, "llama.vocab_size", (uint32_t)NV);
    for (int64_t i = 0; i < st_gguf_n_kv(voc); i++) {
        st_gguf_str k = st_gguf_key(voc, i);
        if (k.len >= 10 && !memcmp(k.ptr, "tokenizer.", 10)) st_gguf_writer_kv_copy(w, voc, i);
    }
    struct { char name[64]; st_type type; int64_t ne[2]; int nd; } t[2 + 9 * 8];
    int nt = 0;
#define ADD(ty, a, b, d, ...) do { snprintf(t[nt].name, 64, __VA_ARGS__); t[nt].type = ty; t[nt].ne[0] = a; t[nt].ne[1] = b; t[nt].nd = d; nt++; } while (0)
    ADD(ST_TYPE_Q8_0, E, NV, 2, "token_embd.weight");
    ADD(ST_TYPE_F32, E, 1, 1, "output_norm.weight");
    const char *mats[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    for (int l = 0; l < NL; l++) {
        ADD(ST_TYPE_F32, E, 1, 1, "blk.%d.attn_norm.weight", l);
        for (int k = 0; k < 7; k++) {
            if (k < 4) ADD(ST_TYPE_Q8_0, E, E, 2, "blk.%d.%s.weight", l, mats[k]);
            else if (k < 6) ADD(ST_TYPE_Q8_0, E, F, 2, "blk.%d.%s.weight", l, mats[k]);
            else ADD(ST_TYPE_Q8_0, F, E, 2, "blk.%d.%s.weight", l, mats[k]);
        }
        ADD(ST_TYPE_F32, E, 1, 1, "blk.%d.ffn_norm.weight", l);
    }
#undef ADD
    for (int i = 0; i < nt; i++) st_gguf_writer_add_tensor(w, t[i].name, t[i].type, t[i].nd, t[i].ne);
    CHECK(st_gguf_writer_write_header(w, &err) == ST_OK, "%s", err.msg);
    size_t maxb = (size_t)NV * E / 32 * 34;
    uint8_t *buf = malloc(maxb);
    uint32_t rng = 777;
    for (int i = 0; i < nt; i++) {
        size_t n = t[i].type == ST_TYPE_F32 ? (size_t)t[i].ne[0] * 4 : (size_t)(t[i].ne[0] * t[i].ne[1] / 32) * 34;
        for (size_t j = 0; j < n; j++) { rng = rng * 1664525u + 1013904223u; buf[j] = (uint8_t)(rng >> 24); }
        CHECK(st_gguf_writer_write_tensor_data(w, buf, n, &err) == ST_OK, "%s", err.msg);
    }
    free(buf);
    CHECK(st_gguf_writer_close(w, &err) == ST_OK, "%s", err.msg);
    st_gguf_close(voc);
}

/* ---- random numbers (per thread) */
static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}
static int rint_(uint64_t *s, int n) { return (int)(rnd(s) % (uint64_t)n); }

static bool ab_busy(const void *p);

/* ---- the reader */
typedef struct {
    atomic_int eio_per_mille, delay_per_mille, partial_per_mille;
    atomic_ullong seed;
    atomic_int calls;
} reader;

static ssize_t rnd_read(void *ctx, int fd, void *buf, size_t n, uint64_t off) {
    reader *r = ctx;
    CHECK(!ab_busy(buf), "a read into a buffer an upload is still reading");
    uint64_t s = atomic_fetch_add(&r->seed, 0x9E3779B97F4A7C15ull) | 1;
    rnd(&s);
    atomic_fetch_add(&r->calls, 1);
    if (rint_(&s, 1000) < atomic_load(&r->eio_per_mille)) {
        errno = EIO;
        return -1;
    }
    if (rint_(&s, 1000) < atomic_load(&r->delay_per_mille)) {
        struct timespec ts = {0, 1000L * (50 + rint_(&s, 400))};
        nanosleep(&ts, NULL);
    }
    if (n > 4096 && rint_(&s, 1000) < atomic_load(&r->partial_per_mille)) {
        size_t m = 4096 * (size_t)(1 + rint_(&s, 3)); /* never more than asked: chunks may be 8 KiB */
        if (m < n) n = m;
    }
    return pread(fd, buf, n, (off_t)off);
}

/* ---- a backend with plain malloc slots */
static atomic_int g_slots;
static void *tb_alloc(st_backend *b, size_t n) { (void)b; atomic_fetch_add(&g_slots, 1); return malloc(n); }
static void tb_free(st_backend *b, void *p) { (void)b; atomic_fetch_sub(&g_slots, 1); free(p); }
static st_status tb_upload(st_backend *b, void *slot, size_t off, const void *src, size_t n, st_error *err) {
    (void)b; (void)err;
    memcpy((uint8_t *)slot + off, src, n);
    return ST_OK;
}
static const st_backend_ops tb_ops = {.name = "tsan", .slot_alloc = tb_alloc, .slot_free = tb_free, .slot_upload = tb_upload};
static st_backend g_be = {&tb_ops};

/* ---- the same with pinned buffers and asynchronous uploads: a buffer is
 * "being read by the device" from its upload until host_wait; a read into
 * it meanwhile fails the run */
#define FA_CHECK(cond, msg) CHECK(cond, msg)
#include "fake_async.h"
static const st_backend_ops ab_ops = {.name = "tsan-async", .slot_alloc = tb_alloc, .slot_free = tb_free,
                                      .slot_upload = tb_upload, .host_alloc = ab_host_alloc, .host_free = ab_host_free,
                                      .slot_upload_async = ab_upload_async, .host_wait = ab_host_wait};
static st_backend g_abe = {&ab_ops};

/* ---- the figures reader */
typedef struct {
    st_store *s;
    atomic_bool stop;
    int n_slots;
    long reads;
} watcher;

static void *watch(void *a) {
    watcher *w = a;
    while (!atomic_load(&w->stop)) {
        st_store_figures f;
        st_store_get_stats(w->s, &f);
        CHECK(f.slots_used >= 0 && f.slots_used <= w->n_slots, "slots used %d of %d", f.slots_used, w->n_slots);
        CHECK(f.peak_resident_bytes <= (uint64_t)w->n_slots * f.slot_bytes, "peak %llu", (unsigned long long)f.peak_resident_bytes);
        for (int i = 0; i < f.n_layer; i++) CHECK(f.layer_state[i] <= ST_LAYER_PINNED, "state %d", f.layer_state[i]);
        CHECK(f.queue_depth <= f.queue_cap, "queue %d of %d", f.queue_depth, f.queue_cap);
        w->reads++;
        sched_yield();
    }
    return NULL;
}

static void check_layer(const st_layer *L, int il) {
    const uint8_t *file = st_gguf_base(g_model->gguf);
    for (int k = 0; k < ST_LAYER_N_TENSORS; k++) {
        const st_tensor *t = st_layer_tensor((st_layer *)L, k);
        CHECK(!memcmp(t->data, file + t->file_offset, t->nbytes), "layer %d tensor %d differs from the file", il, k);
    }
}

int main(int argc, char **argv) {
    int n_sched = argc > 1 ? atoi(argv[1]) : 1000;
    uint64_t seed0 = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
    char path[256];
    snprintf(path, sizeof path, "/tmp/strata-tsan-store-%d.gguf", (int)getpid());
    write_model(path, STRATA_SOURCE_DIR "/assets/tiny-14m-q8_0.gguf");
    st_model_params mp;
    st_model_params_default(&mp);
    st_error err = {0};
    CHECK(st_model_open(path, &mp, &g_model, &err) == ST_OK, "%s", err.msg);
    const int NL = g_model->hp.n_layer;

    static reader rd;
    long hc_fill_failures = 0, hc_loads = 0;
    long acquires = 0, failures = 0, shutdowns = 0, loads = 0, dedup = 0, dropped = 0, cancelled = 0, watch_reads = 0;
    uint64_t t0 = st_now_ns();
    for (g_sched = 0; g_sched < n_sched; g_sched++) {
        uint64_t rs = seed0 * 0x2545F4914F6CDD1Dull + (uint64_t)g_sched * 0x9E3779B97F4A7C15ull + 1;
        rnd(&rs);
        atomic_store(&rd.seed, rnd(&rs));
        bool faults = rint_(&rs, 4) == 0;
        atomic_store(&rd.eio_per_mille, faults ? 20 + rint_(&rs, 100) : 0);
        atomic_store(&rd.delay_per_mille, rint_(&rs, 3) == 0 ? 0 : rint_(&rs, 500));
        atomic_store(&rd.partial_per_mille, rint_(&rs, 2) ? 0 : 300);

        st_store_config c;
        st_store_config_default(&c);
        if (rint_(&rs, 3) == 0) c.mem_budget = 1; /* resolved below to a byte budget of k slots */
        else c.cache_layers = 1 + rint_(&rs, NL + 1);
        c.policy = rint_(&rs, 2) ? ST_CACHE_RING : ST_CACHE_LRU;
        int pf = rint_(&rs, 5);
        c.prefetch = pf == 0 ? ST_PREFETCH_OFF : pf == 1 ? ST_PREFETCH_AUTO : pf - 1;
        c.prefetch_threads = rint_(&rs, 5);
        c.queue_cap = rint_(&rs, 4);
        c.ring_slots = rint_(&rs, 3) == 0 ? 1 + rint_(&rs, NL) : 0;
        c.host_slots = rint_(&rs, 3) != 0;
        c.direct_io = rint_(&rs, 4) == 0;
        /* half the schedules split the ~43 KiB layers into 4-16 KiB chunks */
        c.chunk_bytes = rint_(&rs, 2) ? 0 : 4096u * (uint32_t)(1 + rint_(&rs, 4));
        st_backend *be = rint_(&rs, 2) ? &g_abe : &g_be;
        c.read = rnd_read;
        c.read_ctx = &rd;
        if (c.mem_budget) { /* probe the slot size with a 1-layer store, then budget k slots */
            st_store_config p = c;
            p.mem_budget = 0;
            p.cache_layers = 1;
            p.prefetch = ST_PREFETCH_OFF;
            st_store *probe = NULL;
            CHECK(st_store_new(g_model, be, &p, &probe, &err) == ST_OK, "%s", err.msg);
            st_store_figures f;
            st_store_get_stats(probe, &f);
            st_store_free(probe);
            c.mem_budget = f.fixed_bytes + (uint64_t)(1 + rint_(&rs, NL)) * f.slot_bytes + (uint64_t)rint_(&rs, 4096);
        }
        /* a third of the device-slot schedules keep 0..NL layers (~43 KiB
         * each) in a host cache, filled while the store is made */
        if (!c.host_slots && rint_(&rs, 3) == 0) c.host_cache = (uint64_t)rint_(&rs, NL + 1) * 45056 + (uint64_t)rint_(&rs, 4096);
        st_store *s = NULL;
        st_status nrc = st_store_new(g_model, be, &c, &s, &err);
        if (nrc != ST_OK && c.host_cache && faults) { /* an injected EIO while filling the cache */
            CHECK(nrc == ST_ERR_IO && strstr(err.msg, "layer ") && strstr(err.msg, "offset"), "message: %s", err.msg);
            CHECK(s == NULL, "a failed store returned");
            CHECK(atomic_load(&g_slots) == 0 && g_ab.n == 0, "a failed store left slots or buffers");
            hc_fill_failures++;
            continue;
        }
        CHECK(nrc == ST_OK, "%s", err.msg);
        st_store_figures f0;
        st_store_get_stats(s, &f0);
        if (c.mem_budget) CHECK(f0.slot_alloc_bytes + f0.fixed_bytes <= c.mem_budget, "budget exceeded");

        watcher w = {.s = s, .n_slots = f0.n_slots};
        pthread_t wt;
        pthread_create(&wt, NULL, watch, &w);

        int held[64], n_held = 0;
        /* layers held across steps: the streaming slots must leave one for the next acquire */
        int hold_limit = f0.n_ring > 0 ? f0.n_ring - 1 : 64;
        int steps = 10 + rint_(&rs, 50);
        int shutdown_at = rint_(&rs, 4) == 0 ? rint_(&rs, steps) : -1;
        int il = 0;
        for (int step = 0; step < steps; step++) {
            if (step == shutdown_at) {
                st_store_shutdown(s);
                shutdowns++;
            }
            int op = rint_(&rs, 10);
            if (op < 6 || n_held == 0) { /* the forward pattern: acquire, hint, check, release */
                if (op == 5) il = rint_(&rs, NL); /* or any layer */
                /* at most n_slots - 1 held across steps: the next acquire needs a slot */
                if (n_held > hold_limit) st_store_release(s, held[--n_held]);
                const st_layer *L = st_store_acquire(s, il, &err);
                acquires++;
                if (!L) {
                    CHECK(faults, "acquire of layer %d failed without faults: %s", il, err.msg);
                    char want[32];
                    snprintf(want, sizeof want, "layer %d", il);
                    CHECK(strstr(err.msg, want) && strstr(err.msg, "offset"), "message: %s", err.msg);
                    failures++;
                } else {
                    int n = rint_(&rs, 3) == 0 ? 1 + rint_(&rs, 4) : 0;
                    st_store_hint(s, il + 1, n);
                    check_layer(L, il);
                    if (rint_(&rs, 4) == 0 && n_held < hold_limit) held[n_held++] = il;
                    else st_store_release(s, il);
                }
                il = (il + 1) % NL;
            } else if (op < 8) { /* release something held */
                int k = rint_(&rs, n_held);
                st_store_release(s, held[k]);
                held[k] = held[--n_held];
            } else { /* a hint from anywhere */
                st_store_hint(s, rint_(&rs, NL), rint_(&rs, 5));
            }
        }
        if (rint_(&rs, 2))
            while (n_held) st_store_release(s, held[--n_held]);
        st_store_figures f;
        st_store_get_stats(s, &f);
        CHECK(f.acquires == f.ready + f.waits + f.sync_loads + f.errors,
              "acquires %llu != ready %llu + waits %llu + sync %llu + errors %llu", (unsigned long long)f.acquires,
              (unsigned long long)f.ready, (unsigned long long)f.waits, (unsigned long long)f.sync_loads,
              (unsigned long long)f.errors);
        CHECK(faults || f.errors == 0, "errors without faults");
        CHECK(f.peak_resident_bytes <= (uint64_t)f.n_slots * f.slot_bytes, "peak resident");
        loads += (long)f.loads;
        hc_loads += (long)f.host_cache_loads;
        CHECK(f.host_cache_loads <= f.loads + f.cancelled + f.errors + (uint64_t)f.n_slots, "host cache loads %llu, loads %llu",
              (unsigned long long)f.host_cache_loads, (unsigned long long)f.loads);
        dedup += (long)f.dedup;
        dropped += (long)f.dropped_full;
        /* free with reads possibly in flight and queued */
        atomic_store(&w.stop, true);
        pthread_join(wt, NULL);
        watch_reads += w.reads;
        st_store_shutdown(s);
        st_store_get_stats(s, &f);
        cancelled += (long)f.cancelled;
        for (int i = 0; i < NL; i++) CHECK(f.layer_state[i] != ST_LAYER_LOADING, "layer %d still loading after shutdown", i);
        st_store_free(s);
        CHECK(atomic_load(&g_slots) == 0, "%d slots not freed", atomic_load(&g_slots));
        CHECK(g_ab.n == 0, "%d pinned buffers not freed", g_ab.n);
    }
    double dt = (st_now_ns() - t0) / 1e9;
    st_model_close(g_model);
    unlink(path);
    printf("tsan_store: %d schedules in %.1f s: %ld acquisitions (%ld failed by injected EIO), %ld loads, %ld de-dup, "
           "%ld dropped (queue full), %ld cancelled, %ld shutdowns midway, %ld figure snapshots from another thread, "
           "%d reads; %ld loads from a host cache, %ld caches failed by injected EIO while filling\n",
           n_sched, dt, acquires, failures, loads, dedup, dropped, cancelled, shutdowns, watch_reads,
           atomic_load(&rd.calls), hc_loads, hc_fill_failures);
    return 0;
}
