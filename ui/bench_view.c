/* bench_view.c — the Bench screen. Benchmark runs live in the history
 * database (db/), which this build does not use yet: the screen says so. */
#include "draw.h"
#include "screens.h"

#include <stddef.h>

void ui_bench_draw(ui_rect r) {
    static const char *const l[] = {
        "history database not available",
        "",
        "Benchmark runs are stored in the history database (db/), which this",
        "build does not have. `strata bench` prints its results instead.",
        "F2 returns to the chat.",
        NULL};
    ui_unavailable_draw(r, "Bench", l);
}
