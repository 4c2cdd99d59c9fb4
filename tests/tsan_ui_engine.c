/* tsan_ui_engine.c — the terminal app's engine thread (ui/gen.c) under
 * ThreadSanitizer (CMake: test_ui_engine_tsan, built from ui/gen.c and
 * ui/prompt.c with -fsanitize=thread; no terminal involved). The test is the
 * UI thread: it polls the wake-up pipe and pops events as ui/app.c does, and
 * between events takes the panels' figures (ui_engine_stats,
 * ui_engine_counters, ui_engine_busy) while the worker loads the bundled
 * model and generates with 2 compute threads. Per round (the second one with
 * the layer store streaming 3 of 8 layers):
 *  1. load; a reply of at most 6 tokens (ST_OK, counters advanced by them);
 *  2. a follow-up turn (KV prefix reuse) cancelled after its first text;
 *  3. a generation cancelled while still queued behind a load: DONE stopped,
 *     nothing evaluated; the model reloaded while the UI reads the stats
 *     (the session is freed under the smu mutex);
 *  4. ui_engine_free while a generation runs (cancel, join).
 * Invariants: events arrive for the jobs in order, text only for the running
 * generation, the counters never decrease, a snapshot has the model's 8
 * layers. TSan's report (exit code 66) fails the test. About 2-4 s a round
 * under TSan on a 2-core machine, depending on its load.
 *
 * usage: test_ui_engine_tsan [ROUNDS]                      (default 2) */
#include "gen.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c, ...)                                                                              \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "tsan_ui_engine:%d: round %d: check failed: %s: ", __LINE__, g_round, #c); \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static int g_round;

/* the UI side: what it has seen */
typedef struct {
    ui_engine *e;
    uint64_t tokens, decode_ns;   /* last counters */
    long polls, snapshots, text_bytes, events;
    int text_job, text_events;    /* TEXT of the current job */
} ui_side;

/* one turn of the UI loop: figures, then wait up to 5 ms for events */
static void refresh(ui_side *u) {
    st_stats ss;
    if (ui_engine_stats(u->e, &ss)) {
        u->snapshots++;
        CHECK(ss.n_layer == 8 && ss.n_threads == 2, "snapshot: n_layer %d, n_threads %d", ss.n_layer, ss.n_threads);
        CHECK(ss.n_past >= 0 && ss.n_past <= ss.n_ctx, "snapshot: n_past %d of %d", ss.n_past, ss.n_ctx);
    }
    uint64_t t, d;
    ui_engine_counters(u->e, &t, &d);
    CHECK(t >= u->tokens && d >= u->decode_ns, "counters went back: %llu -> %llu tokens",
          (unsigned long long)u->tokens, (unsigned long long)t);
    u->tokens = t;
    u->decode_ns = d;
    (void)ui_engine_busy(u->e);
    struct pollfd pf = {ui_engine_wake_fd(u->e), POLLIN, 0};
    poll(&pf, 1, 5);
    u->polls++;
}

/* Runs the UI loop until job `id` ends (LOADED / LOAD_FAILED / DONE), which
 * is returned. With cancel_after_text, cancels once the job's first text came. */
static ui_event wait_job(ui_side *u, int id, bool cancel_after_text) {
    bool cancelled = false;
    for (long spins = 0;; spins++) {
        CHECK(spins < 200000, "job %d did not end", id); /* 1000 s: a hang */
        refresh(u);
        ui_event ev;
        while (ui_engine_next_event(u->e, &ev)) {
            u->events++;
            CHECK(ev.job <= id, "event of job %d while waiting for %d", ev.job, id);
            if (ev.type == UI_EV_TEXT) {
                CHECK(ev.text && (int)strlen(ev.text) == ev.len && ev.len > 0, "text event of %d bytes", ev.len);
                CHECK(ev.job == id, "text of job %d while %d runs", ev.job, id);
                u->text_bytes += ev.len;
                u->text_events++;
                free(ev.text);
                if (cancel_after_text && !cancelled) {
                    ui_engine_cancel(u->e);
                    cancelled = true;
                }
                continue;
            }
            if (ev.job == id) return ev;
            free(ev.text); /* an earlier job's end (one we did not wait for) */
        }
    }
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 2;
    const char *model = STRATA_SOURCE_DIR "/assets/tiny-14m-q8_0.gguf";
    long dones = 0, stopped = 0;
    for (g_round = 0; g_round < rounds; g_round++) {
        ui_side u = {.e = ui_engine_new()};
        CHECK(u.e, "ui_engine_new");
        st_model_params mp;
        st_model_params_default(&mp);
        mp.n_threads = 2;
        st_session_params sp;
        st_session_params_default(&sp);
        sp.n_ctx = 256;
        if (g_round % 2) sp.cache_layers = 3;
        st_gen_params gp;
        st_gen_params_default(&gp);
        gp.sampling.temp = 0;
        gp.ignore_eos = true;

        /* 1. load, one reply */
        int id = ui_engine_load(u.e, model, &mp, &sp);
        ui_event ev = wait_job(&u, id, false);
        CHECK(ev.type == UI_EV_LOADED, "load: %d %s", (int)ev.type, ev.msg);
        CHECK(ev.n_ctx == 256 && ev.info.n_layer == 8, "n_ctx %d, n_layer %d", ev.n_ctx, ev.info.n_layer);
        free(ev.text);
        ui_turn turns[3] = {{UI_ROLE_USER, "Tell me a story about a cat."}, {UI_ROLE_ASSISTANT, NULL},
                            {UI_ROLE_USER, "What happened next?"}};
        gp.n_predict = 6;
        uint64_t tok0 = u.tokens;
        id = ui_engine_generate(u.e, turns, 1, &gp);
        ev = wait_job(&u, id, false);
        CHECK(ev.type == UI_EV_DONE && ev.status == ST_OK && !ev.stopped, "reply: type %d, %s, stopped %d: %s",
              (int)ev.type, st_status_str(ev.status), ev.stopped, ev.msg);
        CHECK(ev.n_gen >= 1 && ev.n_gen <= 6 && ev.n_new > 0, "n_gen %llu, n_new %d", (unsigned long long)ev.n_gen,
              ev.n_new);
        dones++;
        refresh(&u);
        CHECK(u.tokens - tok0 == ev.n_gen, "counters: %llu tokens for a reply of %llu",
              (unsigned long long)(u.tokens - tok0), (unsigned long long)ev.n_gen);

        /* 2. a follow-up turn, cancelled after its first text */
        turns[1].text = "Once upon a time there was a cat.";
        gp.n_predict = -1;
        id = ui_engine_generate(u.e, turns, 3, &gp);
        ev = wait_job(&u, id, true);
        CHECK(ev.type == UI_EV_DONE, "follow-up: type %d", (int)ev.type);
        /* a stop string may end the reply before the cancel lands */
        CHECK(ev.stopped || ev.status == ST_OK, "follow-up: %s: %s", st_status_str(ev.status), ev.msg);
        CHECK(ev.n_reused > 0, "follow-up reused no cached token");
        dones++;
        stopped += ev.stopped;

        /* 3. a generation queued behind a load, cancelled before it starts;
         *    the load runs while the UI keeps reading the stats */
        int lid = ui_engine_load(u.e, model, &mp, &sp);
        id = ui_engine_generate(u.e, turns, 1, &gp);
        ui_engine_cancel(u.e);
        ev = wait_job(&u, lid, false);
        CHECK(ev.type == UI_EV_LOADED, "reload: %d %s", (int)ev.type, ev.msg);
        free(ev.text);
        ev = wait_job(&u, id, false);
        CHECK(ev.type == UI_EV_DONE && ev.stopped && ev.n_gen == 0, "queued cancel: stopped %d, n_gen %llu, %s",
              ev.stopped, (unsigned long long)ev.n_gen, st_status_str(ev.status));
        dones++;
        stopped++;

        /* 4. free while generating */
        id = ui_engine_generate(u.e, turns, 1, &gp);
        uint64_t t_start = u.tokens;
        for (long spins = 0; u.tokens < t_start + 2; spins++) {
            CHECK(spins < 200000, "the last generation produced no tokens");
            refresh(&u);
            ui_event e2;
            while (ui_engine_next_event(u.e, &e2)) {
                CHECK(e2.type == UI_EV_TEXT || e2.job != id, "job %d ended early: %s", id, e2.msg);
                free(e2.text);
            }
        }
        ui_engine_free(u.e);
        printf("tsan_ui_engine: round %d%s: %ld polls, %ld snapshots, %ld events, %d text events (%ld bytes)\n",
               g_round, sp.cache_layers ? " (layer store)" : "", u.polls, u.snapshots, u.events, u.text_events,
               u.text_bytes);
    }
    printf("tsan_ui_engine: %d rounds, %ld replies (%ld stopped)\n", rounds, dones, stopped);
    return 0;
}
