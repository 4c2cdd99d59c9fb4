/* panels.h — the live panels: speed (decode/prompt tok/s), prefetch
 * (ready-when-needed rate, sync loads, stall, distance, queue), the layer
 * map with slot occupancy, the backend (CPU threads and use; the GPU's
 * figures once the Vulkan backend reports them) and process memory.
 *
 * ui_panels_sample() is fed a statistics snapshot about 10 times a second;
 * every 0.5 s it closes a sample of each series, so a series of 120 covers
 * the last 60 s. Drawing never touches the engine. */
#ifndef UI_PANELS_H
#define UI_PANELS_H

#include "layout.h"
#include "strata.h"
#include <stdbool.h>
#include <stdint.h>

#define UI_SERIES_N 120
#define UI_SAMPLE_NS 500000000ull

typedef struct ui_series {
    float v[UI_SERIES_N];
    bool has[UI_SERIES_N];   /* false: nothing happened in that interval */
    int head;                /* index of the newest sample */
} ui_series;

void ui_series_push(ui_series *s, bool has, float v);
/* Sparkline of the last `width` samples (or all UI_SERIES_N spread over the
 * width when it is narrower), scaled to [0, max] (max <= 0: the largest
 * sample shown), as UTF-8 into out (cap bytes). levels: the 9 glyphs from
 * blank to full. Returns the number of cells written. */
int ui_sparkline(const ui_series *s, int width, float max, const char *const levels[9], char *out, int cap);

typedef struct ui_panels {
    ui_series decode, prompt, ready, cpu, gpu;
    st_stats st;
    bool have;
    uint64_t sample_t0;                /* start of the open sample */
    uint64_t b_tok, b_dns;             /* decode counters at its start */
    uint64_t b_acq, b_ready;           /* store counters at its start */
    uint64_t b_cpu_ticks, b_wall;
    uint64_t last_prompt_key;          /* n_prompt ^ prompt_ns last recorded */
    float decode_now, ready_now, cpu_now;
    char gpu_name[128];                /* st_stats.gpu_device, copied ("" on the CPU) */
    int n_cpus;
} ui_panels;

void ui_panels_init(ui_panels *p);
/* have: false while no session exists (st ignored). tokens/decode_ns: the
 * engine thread's monotonic counters (ui_engine_counters). */
void ui_panels_sample(ui_panels *p, bool have, const st_stats *st, uint64_t tokens, uint64_t decode_ns, uint64_t now_ns);
void ui_panels_draw(const ui_panels *p, ui_rect r, ui_panel_mode mode);

#endif
