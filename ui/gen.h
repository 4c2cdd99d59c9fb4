/* gen.h — the engine thread of the terminal app.
 *
 * One worker thread owns the model and the session and runs jobs (load a
 * model, answer a conversation); the UI thread never waits on it. Results
 * come back as events in a queue, with a pipe to wake the UI's poll().
 * Only ui_engine_stats() and ui_engine_cancel() touch the session from the
 * UI thread (st_session_stats / st_session_cancel are thread-safe; a mutex
 * keeps the session from being freed under them).
 *
 * The worker keeps a copy of the tokens in the KV cache. A new turn renders
 * the whole conversation, tokenizes it, keeps the longest common prefix with
 * the cache and evaluates only the rest: a follow-up costs the new turn's
 * tokens, an edited or reloaded conversation re-evaluates from where it
 * differs. When the conversation outgrows the context, the oldest turns are
 * left out of the prompt (the screen keeps them). */
#ifndef UI_GEN_H
#define UI_GEN_H

#include "prompt.h"
#include "strata.h"
#include <stdbool.h>
#include <stdint.h>

typedef enum {
    UI_EV_LOADED,       /* text: the model's path; info, n_ctx, format */
    UI_EV_LOAD_FAILED,  /* msg */
    UI_EV_TEXT,         /* text[0..len): more of the reply */
    UI_EV_DONE,         /* the reply ended: status, msg, figures below */
} ui_ev_type;

typedef struct ui_event {
    ui_ev_type type;
    int job;
    char *text;              /* malloc'd (TEXT, LOADED); the receiver frees it */
    int len;
    st_status status;
    char msg[512];
    /* LOADED */
    st_model_info info;
    int n_ctx;
    char format[64];
    char backend[160];       /* "cpu", "vulkan (device name)" */
    /* DONE */
    bool stopped;            /* cancelled by the user (the partial reply is kept) */
    int n_new, n_reused;     /* prompt tokens evaluated / taken from the cache */
    int n_dropped;           /* oldest turns left out to fit the context */
    bool too_long;           /* status ST_ERR_CONTEXT: the last message alone (with the
                                system prompt) does not fit the context; nothing was
                                evaluated. n_tokens: what it needs, n_ctx: the context */
    int64_t n_tokens;
    int n_ctx_used;
    uint64_t n_gen, gen_ns, n_prompt, prompt_ns;
    st_stats stats;          /* the session's snapshot after the reply */
} ui_event;

typedef struct ui_engine ui_engine;

ui_engine *ui_engine_new(void);
void ui_engine_free(ui_engine *e);   /* cancels what runs, joins the thread */
/* Read end of the wake-up pipe: readable when events are waiting. */
int ui_engine_wake_fd(const ui_engine *e);
/* Pops the next event; false when none. The caller frees ev->text. */
bool ui_engine_next_event(ui_engine *e, ui_event *ev);

/* Queue jobs; each returns its job id (> 0), or -1. */
int ui_engine_load(ui_engine *e, const char *path, const st_model_params *mp, const st_session_params *sp);
int ui_engine_generate(ui_engine *e, const ui_turn *turns, int n, const st_gen_params *gp);
/* Stops the running generation (or the next one, if it has not started). */
void ui_engine_cancel(ui_engine *e);
bool ui_engine_busy(ui_engine *e);

/* A statistics snapshot of the session; false while there is none. */
bool ui_engine_stats(ui_engine *e, st_stats *out);
/* Tokens generated and time spent between consecutive tokens, summed over
 * the session's life (monotonic: the panels' decode rate is their deltas). */
void ui_engine_counters(ui_engine *e, uint64_t *tokens, uint64_t *decode_ns);

#endif
