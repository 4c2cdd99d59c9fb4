/* layout.h — where each part of the screen goes, for any terminal size
 * (a pure function, checked by tests/test_ui.c from 1x1 up).
 *
 *   +-------------------------------------------+---------+
 *   | bar: screens, model, state                           |
 *   +-------------------------------------------+---------+
 *   | main: conversation (or history, bench,     | panels  |   side: >= 100 cols
 *   |       help)                                | (side)  |
 *   | sep: ── input box title ───────────────── |         |
 *   | input                                      |         |
 *   +-------------------------------------------+---------+
 *   | (panels below the chat: 60..99 cols)                 |
 *   | status: model, backend, context, key hints           |
 *   +------------------------------------------------------+
 *
 * Below 60x16 the panels are hidden (chat only); below 4 rows the bar goes,
 * below 10 rows the input box loses its title line. */
#ifndef UI_LAYOUT_H
#define UI_LAYOUT_H

#include <stdbool.h>

typedef struct ui_rect {
    int y, x, h, w;
} ui_rect;

typedef enum { UI_PANELS_HIDDEN = 0, UI_PANELS_SIDE, UI_PANELS_BELOW } ui_panel_mode;

#define UI_SIDE_MIN_COLS 100
#define UI_PANELS_MIN_COLS 60
#define UI_PANELS_MIN_ROWS 16

typedef struct ui_layout {
    int cols, rows;
    ui_rect bar, main, sep, input, status, panels;
    ui_panel_mode mode;
} ui_layout;

/* input_lines: lines the input text wants (0: no input box, as on the
 * history/bench/help screens); panels: whether the user wants them. */
void ui_layout_compute(int cols, int rows, bool panels, int input_lines, ui_layout *l);

#endif
