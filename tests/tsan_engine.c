/* tsan_engine.c — the engine's cross-thread entry points under
 * ThreadSanitizer (CMake: test_engine_tsan): st_session_stats and
 * st_session_cancel called from other threads while st_generate runs on the
 * bundled model with 2 compute threads (so the compute pool runs too), with
 * the layers used in place and streamed through the layer store (3 of 8
 * layers resident, prefetch thread). A plain program rather than a Criterion
 * test so that TSan sees only our threads.
 *
 * Per round and store configuration:
 *  1. stats: a thread takes snapshots (thousands a second) during a
 *     greedy generation of 4 tokens after a prompt of 14 (in batches of 4,
 *     8 or 16); phases only go forward (IDLE, PREFILL,
 *     DECODE, IDLE), n_gen and n_past never decrease, n_past stays in
 *     0..n_ctx; after the call the snapshot agrees with the session;
 *  2. cancel: a thread waits for DECODE with n_gen >= k (k random in 1..3)
 *     and cancels, while another one keeps taking snapshots; st_generate
 *     returns ST_ERR_CANCELLED with at least k tokens, and the next
 *     st_generate (no new prompt) runs normally: the cancel does not stick
 *     (the prompt's cache is reused: rewound to its last token);
 *  3. cancel at a random moment (0 to 1/8 or to 1/2 of the time step 1
 *     took: before, during or after the second half of the prompt, maybe
 *     after the call returned): ST_OK or ST_ERR_CANCELLED, the session stays
 *     consistent (n_past: the half prompt plus the batches completed, or the
 *     whole prompt plus the tokens evaluated) and usable (an interrupted
 *     prompt resumes from its completed batches).
 * TSan's report (exit code 66) fails the test. A round takes 5-10 s under
 * TSan on the 2-core dev box at load average 5-8 (the kernels are
 * instrumented too: TSan's range checks of the 32-byte loads dominate).
 *
 * usage: test_engine_tsan [ROUNDS] [SEED]                (default 1, 1) */
#include "strata.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(c, ...)                                                                              \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "tsan_engine:%d: round %d (%s): check failed: %s: ", __LINE__, g_round, \
                    g_cfg, #c);                                                                    \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static int g_round;
static const char *g_cfg = "";
static st_model *g_model;

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* ---- the stats reader: snapshots until told to stop, checking invariants */
typedef struct {
    st_session *s;
    atomic_bool done;
    int n_reads, seen[3];
    char err[256];
} reader;

static void *read_stats(void *p) {
    reader *r = p;
    uint64_t last_gen = 0;
    int last_past = -1, stage = 0; /* 0: IDLE before, 1: PREFILL, 2: DECODE, 3: IDLE after */
    while (!atomic_load(&r->done) || r->n_reads == 0) {
        st_stats ss;
        st_session_stats(r->s, &ss);
        r->n_reads++;
        if (r->n_reads % 4 == 0) sleep_us(100); /* leave the 2 compute threads some CPU */
        if (r->err[0]) continue;
        if (ss.phase < ST_PHASE_IDLE || ss.phase > ST_PHASE_DECODE) {
            snprintf(r->err, sizeof r->err, "phase %d", (int)ss.phase);
            continue;
        }
        r->seen[ss.phase]++;
        int st = ss.phase == ST_PHASE_PREFILL ? 1 : ss.phase == ST_PHASE_DECODE ? 2 : (stage == 0 ? 0 : 3);
        if (st < stage)
            snprintf(r->err, sizeof r->err, "phase went back: stage %d after %d (read %d)", st, stage, r->n_reads);
        else if (stage >= 2 && ss.n_gen < last_gen)
            snprintf(r->err, sizeof r->err, "n_gen decreased %llu -> %llu", (unsigned long long)last_gen,
                     (unsigned long long)ss.n_gen);
        else if (ss.n_past < last_past)
            snprintf(r->err, sizeof r->err, "n_past decreased %d -> %d", last_past, ss.n_past);
        else if (ss.n_past < 0 || ss.n_past > ss.n_ctx)
            snprintf(r->err, sizeof r->err, "n_past %d outside 0..%d", ss.n_past, ss.n_ctx);
        else if (ss.n_layer != 8 || ss.n_threads != 2 || !ss.backend)
            snprintf(r->err, sizeof r->err, "n_layer %d, n_threads %d, backend %s", ss.n_layer, ss.n_threads,
                     ss.backend ? ss.backend : "NULL");
        stage = st;
        if (stage >= 2) last_gen = ss.n_gen;
        last_past = ss.n_past;
    }
    return NULL;
}

/* ---- the canceller: at DECODE with n_gen >= after, or after a delay */
typedef struct {
    st_session *s;
    int after;      /* > 0: wait for this many generated tokens */
    long delay_us;  /* after == 0: cancel after this long */
    atomic_bool stop, sent;
} canceller;

static void *cancel_thread(void *p) {
    canceller *c = p;
    if (c->after > 0) {
        for (;;) {
            if (atomic_load(&c->stop)) return NULL;
            st_stats ss;
            st_session_stats(c->s, &ss);
            if (ss.phase == ST_PHASE_DECODE && ss.n_gen >= (uint64_t)c->after) break;
            sleep_us(100);
        }
    } else {
        sleep_us(c->delay_us);
    }
    atomic_store(&c->sent, true);
    st_session_cancel(c->s);
    return NULL;
}

typedef struct { int n; int32_t tok[512]; } tokbuf;
static bool collect(void *user, int32_t tok, const char *piece, int len) {
    (void)piece;
    (void)len;
    tokbuf *b = user;
    if (b->n < 512) b->tok[b->n++] = tok;
    return true;
}

static st_gen_params greedy(int n_predict) {
    st_gen_params gp;
    st_gen_params_default(&gp);
    gp.sampling.temp = 0;
    gp.n_predict = n_predict;
    gp.ignore_eos = true;
    return gp;
}

static void start(pthread_t *th, void *(*fn)(void *), void *arg) {
    CHECK(pthread_create(th, NULL, fn, arg) == 0, "pthread_create");
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 1;
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
    seed = seed * 0x9E3779B97F4A7C15ull + 1;
    st_model_params mp;
    st_model_params_default(&mp);
    mp.n_threads = 2;
    st_error err = {0};
    CHECK(st_model_open(STRATA_SOURCE_DIR "/assets/tiny-14m-q8_0.gguf", &mp, &g_model, &err) == ST_OK, "%s",
          err.msg);
    const char *text = "Once upon a time, there was a little girl named Lily.";
    int32_t ids[128];
    int64_t n = st_tok_encode(st_model_tokenizer(g_model), text, strlen(text), true, false, ids, 128);
    CHECK(n > 0 && n <= 128, "tokenize: %lld", (long long)n);

    long reads = 0, cancels = 0, late = 0, in_prompt = 0;
    int decode_seen = 0;
    uint64_t t0 = st_now_ns(), t_step[3] = {0, 0, 0}, t;
    for (g_round = 0; g_round < rounds; g_round++) {
        for (int cfg = 0; cfg < 2; cfg++) {
            g_cfg = cfg ? "store, 3 of 8 layers" : "in place";
            st_session_params sp;
            st_session_params_default(&sp);
            sp.n_ctx = 160;
            sp.n_batch = 4 << (rnd(&seed) % 3); /* several prompt batches, so cancels can land between them */
            if (cfg) sp.cache_layers = 3;
            st_session *s = NULL;
            CHECK(st_session_new(g_model, &sp, &s, &err) == ST_OK, "%s", err.msg);

            /* 1. stats during a whole generation */
            t = st_now_ns();
            reader r = {.s = s};
            pthread_t tr;
            start(&tr, read_stats, &r);
            st_gen_params gp = greedy(4);
            tokbuf got = {0};
            uint64_t tg = st_now_ns();
            st_status rc = st_generate(s, ids, (int)n, &gp, collect, &got, &err);
            tg = st_now_ns() - tg;
            atomic_store(&r.done, true);
            pthread_join(tr, NULL);
            CHECK(rc == ST_OK, "%s: %s", st_status_str(rc), err.msg);
            CHECK(got.n == 4, "%d tokens", got.n);
            CHECK(!r.err[0], "stats reader: %s", r.err);
            st_stats ss;
            st_session_stats(s, &ss);
            CHECK(ss.phase == ST_PHASE_IDLE && ss.n_gen == 4 && ss.n_prompt == (uint64_t)n, "phase %d, n_gen %llu",
                  (int)ss.phase, (unsigned long long)ss.n_gen);
            CHECK(ss.n_past == st_session_n_past(s) && ss.n_past == (int)n + 4, "n_past %d vs %d", ss.n_past,
                  st_session_n_past(s));
            reads += r.n_reads;
            decode_seen += r.seen[ST_PHASE_DECODE] > 0;

            /* 2. cancel at DECODE after k tokens, with a reader alongside */
            t_step[0] += st_now_ns() - t;
            t = st_now_ns();
            st_session_rewind(s, (int)n - 1);
            int k = 1 + (int)(rnd(&seed) % 3);
            canceller c = {.s = s, .after = k};
            reader r2 = {.s = s};
            pthread_t tc, tr2;
            start(&tc, cancel_thread, &c);
            start(&tr2, read_stats, &r2);
            gp = greedy(-1); /* until cancelled (or the context is full: a lost cancel) */
            got.n = 0;
            rc = st_generate(s, ids + n - 1, 1, &gp, collect, &got, &err);
            atomic_store(&c.stop, true);
            atomic_store(&r2.done, true);
            pthread_join(tc, NULL);
            pthread_join(tr2, NULL);
            CHECK(atomic_load(&c.sent), "generation ended (%s, %d tokens) before the cancel was sent",
                  st_status_str(rc), got.n);
            CHECK(rc == ST_ERR_CANCELLED, "%s after %d tokens (cancel after %d): %s", st_status_str(rc), got.n, k,
                  err.msg);
            CHECK(got.n >= k, "%d tokens, cancelled after %d", got.n, k);
            CHECK(!r2.err[0], "stats reader: %s", r2.err);
            reads += r2.n_reads;
            cancels++;
            int np = st_session_n_past(s);
            st_session_stats(s, &ss);
            CHECK(ss.phase == ST_PHASE_IDLE && ss.n_past == np, "phase %d, n_past %d vs %d", (int)ss.phase,
                  ss.n_past, np);
            gp = greedy(2);
            got.n = 0;
            rc = st_generate(s, NULL, 0, &gp, collect, &got, &err);
            CHECK(rc == ST_OK && got.n == 2, "after a cancel: %s, %d tokens: %s", st_status_str(rc), got.n, err.msg);
            CHECK(st_session_n_past(s) == np + 2, "n_past %d, expected %d", st_session_n_past(s), np + 2);
            CHECK(np >= (int)n + k, "n_past %d after %d tokens of %d", np, got.n, k);

            /* 3. a cancel at a random moment */
            t_step[1] += st_now_ns() - t;
            t = st_now_ns();
            const int h = (int)n / 2;
            st_session_rewind(s, h);
            const uint64_t range_us = tg / 1000 / ((rnd(&seed) & 1) ? 8 : 2); /* half the time early */
            canceller c3 = {.s = s, .delay_us = (long)(rnd(&seed) % (range_us + 1))};
            pthread_t tc3;
            start(&tc3, cancel_thread, &c3);
            gp = greedy(4);
            got.n = 0;
            rc = st_generate(s, ids + h, (int)n - h, &gp, collect, &got, &err);
            pthread_join(tc3, NULL);
            CHECK(rc == ST_OK || rc == ST_ERR_CANCELLED, "%s: %s", st_status_str(rc), err.msg);
            CHECK(rc == ST_ERR_CANCELLED || got.n == 4, "%s with %d tokens", st_status_str(rc), got.n);
            late += rc == ST_OK;
            np = st_session_n_past(s);
            in_prompt += rc == ST_ERR_CANCELLED && np < (int)n;
            /* a cancelled prompt keeps its completed batches */
            CHECK(np >= h && np <= (int)n + 4 && (np >= (int)n || (np - h) % sp.n_batch == 0),
                  "n_past %d (prompt %d..%d, batches of %d)", np, h, (int)n, sp.n_batch);
            st_session_stats(s, &ss);
            CHECK(ss.phase == ST_PHASE_IDLE && ss.n_past == np, "phase %d, n_past %d vs %d", (int)ss.phase,
                  ss.n_past, np);
            /* usable: an interrupted prompt resumes where its completed
             * batches end (a rewound cache has no logits to continue from) */
            gp = greedy(1);
            got.n = 0;
            rc = np >= (int)n ? st_generate(s, NULL, 0, &gp, collect, &got, &err)
                              : st_generate(s, ids + np, (int)n - np, &gp, collect, &got, &err);
            CHECK(rc == ST_OK && got.n == 1, "after a random cancel: %s, %d tokens: %s", st_status_str(rc), got.n,
                  err.msg);
            t_step[2] += st_now_ns() - t;
            st_session_free(s);
        }
    }
    st_model_close(g_model);
    printf("tsan_engine: %d rounds x 2 configurations in %.1f s: %ld snapshots (DECODE seen in %d of %d "
           "generations), %ld cancels at DECODE, %d random cancels (%ld in the prompt, %ld after the end); steps 1/2/3: %.1f/%.1f/%.1f s\n",
           rounds, (double)(st_now_ns() - t0) / 1e9, reads, decode_seen, 2 * rounds, cancels, 2 * rounds, in_prompt, late,
           (double)t_step[0] / 1e9, (double)t_step[1] / 1e9, (double)t_step[2] / 1e9);
    return 0;
}
