/* ui.h — the strata terminal app (ncurses), as app/cmd_chat.c starts it.
 *
 * ui/ uses only core/strata.h (and db/'s public header for the history and
 * bench screens); the engine never calls ncurses. */
#ifndef UI_UI_H
#define UI_UI_H

#include "strata.h"
#include <stdbool.h>

typedef struct ui_options {
    const char *model_path;      /* GGUF to open at start (NULL: none, /model picks one) */
    st_model_params model;
    st_session_params session;
    st_sampler_params sampling;
    int max_reply;               /* tokens per reply at most (<= 0: until EOS or context full) */
    const char *system_prompt;   /* NULL: none */
    bool panels;                 /* show the live panels at start */
    bool mouse;                  /* capture the mouse wheel */
    bool history;                /* store the conversation in the history database */
    const char *db_path;         /* NULL: the default ($XDG_DATA_HOME/strata/strata.db) */
} ui_options;

void ui_options_default(ui_options *o);
/* Runs the app until the user quits; returns the process exit status.
 * Needs a terminal on stdin and stdout. */
int ui_run(const ui_options *o);

#endif
