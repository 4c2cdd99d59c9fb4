/* history_view.c — the History screen. The history database (db/) is not
 * part of this build yet, so the screen says so instead of showing
 * anything made up. */
#include "draw.h"
#include "screens.h"

#include <string.h>

void ui_unavailable_draw(ui_rect r, const char *title, const char *const *lines) {
    if (r.h <= 0 || r.w <= 0) return;
    ui_rule(r.y, r.x, r.w, title, UI_C_TITLE);
    int y = r.y + 2;
    for (int i = 0; lines[i] && y < r.y + r.h; i++, y++)
        ui_text(y, r.x + 2, r.w - 2, lines[i], (int)strlen(lines[i]), i == 0 ? UI_C_WARN : UI_C_DIM);
}

void ui_history_draw(ui_rect r) {
    static const char *const l[] = {
        "history database not available",
        "",
        "This build of strata has no history database (db/), so conversations",
        "are not stored. /save FILE writes the current one as Markdown.",
        "F2 returns to the chat.",
        NULL};
    ui_unavailable_draw(r, "History", l);
}
