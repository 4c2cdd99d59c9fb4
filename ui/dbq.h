/* dbq.h — the history database (db/) on its own thread, for the app.
 *
 * The UI thread never touches SQLite: it queues requests (list, search,
 * open, save a turn, delete, export, bench runs) and gets the answers back
 * as events, with a pipe to wake its poll(), like the engine thread. The
 * results are copied out of db/'s callbacks into plain arrays. */
#ifndef UI_DBQ_H
#define UI_DBQ_H

#include "strata.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct ui_db ui_db;

typedef struct ui_db_conv {
    int64_t id;
    char *title, *model;
    int64_t updated_ms;
    int n_messages;
} ui_db_conv;

typedef struct ui_db_hit {
    int64_t conv_id;
    char *title, *role, *snippet;   /* snippet: matches between \x01 and \x02 */
    int64_t created_ms;
} ui_db_hit;

typedef struct ui_db_msg {
    char *role, *content;
    bool stopped;
    double decode_tps;
} ui_db_msg;

typedef struct ui_db_bench {
    int64_t id, run, created_ms;
    char model[128], type[32], backend[16], test[32], commit[64];
    int n_threads, n_prompt, n_gen;
    double avg_ts, stddev_ts, ready_rate;
    bool budgeted;
    int cache_layers;
    uint64_t mem_budget;
} ui_db_bench;

typedef enum {
    UI_DB_OPENED,     /* msg: the path */
    UI_DB_FAILED,     /* msg: why (the request's kind in `req`) */
    UI_DB_CONVS,      /* convs[0..n) */
    UI_DB_HITS,       /* hits[0..n) for `query` */
    UI_DB_MESSAGES,   /* conv (one), msgs[0..n); system prompt in text */
    UI_DB_SAVED,      /* conv_id of the conversation written to (local = the app's key) */
    UI_DB_DELETED,    /* conv_id, n (messages) */
    UI_DB_EXPORTED,   /* msg: the file */
    UI_DB_BENCH,      /* bench[0..n) */
} ui_db_ev_type;

typedef struct ui_db_event {
    ui_db_ev_type type;
    int req;                     /* the request's id */
    char msg[512];
    char *text;                  /* MESSAGES: system prompt (may be NULL); HITS: the query */
    int n;
    ui_db_conv *convs;
    ui_db_hit *hits;
    ui_db_msg *msgs;
    ui_db_bench *bench;
    int64_t conv_id;
    int local;
    bool continue_it;            /* MESSAGES asked for to continue the conversation */
    bool closed;                 /* FAILED: SQLite found the file damaged; the database is
                                    closed, nothing more is read or written */
} ui_db_event;

/* path NULL: the default ($XDG_DATA_HOME/strata/strata.db). Starts the
 * thread and queues the open; NULL only when the thread cannot start. */
ui_db *ui_db_new(const char *path);
void ui_db_free(ui_db *d);
int ui_db_wake_fd(const ui_db *d);
bool ui_db_next_event(ui_db *d, ui_db_event *ev);
void ui_db_event_free(ui_db_event *ev);

int ui_db_list(ui_db *d, int limit);
/* Only the newest queued search runs (typing queues one per key). */
int ui_db_search(ui_db *d, const char *query);
int ui_db_open_conv(ui_db *d, int64_t id, bool continue_it);
int ui_db_delete(ui_db *d, int64_t id);
int ui_db_export(ui_db *d, int64_t id, const char *path);
int ui_db_bench_runs(ui_db *d, const char *model, const char *backend);

/* One exchange of the chat: the user's message and the reply. conv_id 0
 * with a new `local` key creates the conversation (title from the user's
 * text) and later saves with the same key go to it. */
typedef struct ui_db_turn {
    int64_t conv_id;
    int local;
    const char *model_name, *model_file, *system_prompt;
    const st_sampler_params *sampling;
    int max_reply;
    const char *user, *reply;
    bool stopped;
    const st_stats *stats;       /* the session's snapshot after the reply (NULL: none) */
} ui_db_turn;
int ui_db_save_turn(ui_db *d, const ui_db_turn *t);

#endif
