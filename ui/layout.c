/* layout.c — screen areas for a terminal size. */
#include "layout.h"

#include <string.h>

static ui_rect rect(int y, int x, int h, int w) {
    ui_rect r = {y, x, h > 0 ? h : 0, w > 0 ? w : 0};
    if (r.h == 0 || r.w == 0) r.h = r.w = 0;
    return r;
}

void ui_layout_compute(int cols, int rows, bool panels, int input_lines, ui_layout *l) {
    memset(l, 0, sizeof *l);
    l->cols = cols;
    l->rows = rows;
    if (cols < 1 || rows < 1) return;

    int bar = rows >= 4 ? 1 : 0;
    int status = rows >= 2 ? 1 : 0;
    int body = rows - bar - status;               /* rows for main + input (+ panels) */

    ui_panel_mode mode = UI_PANELS_HIDDEN;
    if (panels && cols >= UI_PANELS_MIN_COLS && rows >= UI_PANELS_MIN_ROWS)
        mode = cols >= UI_SIDE_MIN_COLS ? UI_PANELS_SIDE : UI_PANELS_BELOW;

    int chat_w = cols, pw = 0, ph = 0;
    if (mode == UI_PANELS_SIDE) {
        pw = cols * 3 / 10;
        if (pw < 34) pw = 34;
        if (pw > 46) pw = 46;
        chat_w = cols - pw;
    } else if (mode == UI_PANELS_BELOW) {
        ph = rows >= 30 ? 9 : 7;
        if (body - ph < 5) mode = UI_PANELS_HIDDEN, ph = 0;
        body -= ph;
    }

    int in = 0, sep = 0;
    if (input_lines > 0) {
        int most = body / 3;
        if (most < 1) most = 1;
        in = input_lines < most ? input_lines : most;
        if (body - in < 1) in = body > 1 ? body - 1 : body;   /* keep a line of conversation */
        sep = (rows >= 10 && body - in >= 4) ? 1 : 0;
    }
    int main_h = body - in - sep;

    int y = 0;
    l->bar = rect(y, 0, bar, cols);
    y += bar;
    l->main = rect(y, 0, main_h, chat_w);
    y += main_h;
    l->sep = rect(y, 0, sep, chat_w);
    y += sep;
    l->input = rect(y, 0, in, chat_w);
    y += in;
    if (mode == UI_PANELS_BELOW) {
        l->panels = rect(y, 0, ph, cols);
        y += ph;
    } else if (mode == UI_PANELS_SIDE) {
        l->panels = rect(bar, chat_w, rows - bar - status, pw);
    }
    l->status = rect(rows - status, 0, status, cols);
    l->mode = mode;
}
