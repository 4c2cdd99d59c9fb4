/* screens.h — the screens other than the chat: help, history, bench.
 *
 * History and Bench show what the database thread (dbq.h) sent last; their
 * key handlers return an action for app.c to carry out (a database request,
 * a screen change), so they never block. */
#ifndef UI_SCREENS_H
#define UI_SCREENS_H

#include "chat_view.h"
#include "dbq.h"
#include "input.h"
#include "layout.h"
#include <stdbool.h>
#include <stdint.h>

/* Help (F1 or ?): every key and command; scroll: first line shown (clamped). */
void ui_help_draw(ui_rect r, int *scroll);
int ui_help_lines(void);

/* A screen that says what is missing: a title, then lines (NULL-terminated). */
void ui_unavailable_draw(ui_rect r, const char *title, const char *const *lines);

typedef enum {
    UI_ACT_NONE = 0,
    UI_ACT_REDRAW,
    UI_ACT_LIST,        /* reload the list */
    UI_ACT_SEARCH,      /* text: the query */
    UI_ACT_OPEN,        /* id: read-only view */
    UI_ACT_CONTINUE,    /* id: into the chat */
    UI_ACT_DELETE,      /* id (confirmed) */
    UI_ACT_EXPORT,      /* id */
    UI_ACT_BENCH,       /* reload the bench rows with the filters */
    UI_ACT_NOT_HANDLED, /* the key is for app.c (screen switches, quit) */
    UI_ACT_SAY,         /* text: a message for the status line */
} ui_act_kind;

typedef struct ui_action {
    ui_act_kind kind;
    int64_t id;
    const char *text;
} ui_action;

/* ---- History (F3 or 2) ---- */
typedef struct ui_history {
    bool available;              /* the database opened */
    char err[512];               /* why not */
    bool loaded;                 /* a list came */
    ui_db_conv *convs;
    int n_convs;
    ui_db_hit *hits;
    int n_hits;
    char hits_for[256];          /* the query the hits answer */
    ui_input search;
    bool searching;              /* typing goes to the search box */
    int sel, top;
    bool confirm_delete;
    /* a conversation opened read-only */
    bool viewing;
    int64_t view_id;
    ui_chat view;
    char view_title[256];
    int cy, cx;                  /* where the cursor goes (search box), -1: hidden */
} ui_history;

void ui_history_init(ui_history *h);
void ui_history_free(ui_history *h);
/* Takes the arrays out of a database event (CONVS, HITS, MESSAGES). */
void ui_history_on_event(ui_history *h, ui_db_event *ev);
void ui_history_draw(ui_history *h, ui_rect r);
/* type: OK (character) or KEY_CODE_YES (key code). */
ui_action ui_history_key(ui_history *h, int type, int ch, int page);

/* ---- Bench (F4 or 3) ---- */
typedef struct ui_bench {
    bool available;
    char err[512];
    bool loaded;
    ui_db_bench *rows;
    int n;
    int sel, top;
    int64_t mark[2];             /* runs marked for comparison (0: none) */
    ui_input filter;             /* model filter */
    bool editing;
    int backend;                 /* 0 any, 1 CPU, 2 Vulkan */
    int cy, cx;                  /* where the cursor goes (filter box), -1: hidden */
} ui_bench;

void ui_bench_init(ui_bench *b);
void ui_bench_free(ui_bench *b);
void ui_bench_on_event(ui_bench *b, ui_db_event *ev);
void ui_bench_draw(ui_bench *b, ui_rect r);
ui_action ui_bench_key(ui_bench *b, int type, int ch, int page);
const char *ui_bench_backend(const ui_bench *b);   /* the backend filter (NULL: any) */

#endif
