/* draw.h — colours (256 / 8 / monochrome), glyphs (UTF-8 or ASCII) and
 * text drawing helpers over ncurses (stdscr). */
#ifndef UI_DRAW_H
#define UI_DRAW_H

#include "layout.h"
#include <stdbool.h>

typedef enum {
    UI_C_NORMAL = 0,
    UI_C_USER, UI_C_USER_HEAD,
    UI_C_ASSIST, UI_C_ASSIST_HEAD,
    UI_C_SYSTEM, UI_C_NOTE, UI_C_ERROR,
    UI_C_BAR, UI_C_TAB, UI_C_TAB_ACTIVE, UI_C_BUSY,
    UI_C_STATUS, UI_C_KEY,
    UI_C_BORDER, UI_C_TITLE, UI_C_DIM, UI_C_VALUE,
    UI_C_SPARK, UI_C_SPARK2, UI_C_GOOD, UI_C_WARN, UI_C_BAD,
    UI_C_L_ABSENT, UI_C_L_LOADING, UI_C_L_RESIDENT, UI_C_L_PINNED, UI_C_L_MAPPED,
    UI_C_MATCH, UI_C_SELECT, UI_C_INPUT,
    UI_C__N
} ui_color;

typedef struct ui_glyphs {
    const char *hline, *vline, *spark[9], *bar_full, *bar_empty, *cursor_row;
    const char *layer[5];     /* by st_layer_state */
    const char *ellipsis, *dot, *arrow;
} ui_glyphs;

/* After initscr: picks 256 colours, 8 colours or attributes only, and UTF-8
 * or ASCII glyphs from the locale. */
void ui_theme_init(void);
int ui_theme_colors(void);            /* 256, 8 or 0 */
bool ui_theme_utf8(void);
const ui_glyphs *ui_g(void);
int ui_attr(ui_color c);              /* attributes incl. the colour pair */

/* Draws UTF-8 text at (y, x), at most maxw columns (characters that would
 * cross the edge are left out); returns the columns drawn. */
int ui_text(int y, int x, int maxw, const char *s, int n, ui_color c);
int ui_textf(int y, int x, int maxw, ui_color c, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void ui_fill(ui_rect r, ui_color c);
void ui_hline(int y, int x, int w, ui_color c);
void ui_vline(int y, int x, int h, ui_color c);
/* A title on a horizontal rule: "── Title ───────" */
void ui_rule(int y, int x, int w, const char *title, ui_color title_c);
/* Formats bytes as "12.3 MiB". */
void ui_fmt_bytes(char *buf, int cap, double bytes);

#endif
