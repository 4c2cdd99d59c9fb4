/* screens.h — the screens other than the chat: help, history, bench. */
#ifndef UI_SCREENS_H
#define UI_SCREENS_H

#include "layout.h"
#include <stdbool.h>

/* Help (F1 or ?): every key and command; scroll: first line shown (clamped). */
void ui_help_draw(ui_rect r, int *scroll);
int ui_help_lines(void);

/* History (F3 or 2) and Bench (F4 or 3): conversations and benchmark runs
 * from the history database (db/). */
void ui_history_draw(ui_rect r);
void ui_bench_draw(ui_rect r);
/* A screen that says what is missing: a title, then lines (NULL-terminated). */
void ui_unavailable_draw(ui_rect r, const char *title, const char *const *lines);

#endif
