/* panels.c — live engine panels drawn from st_stats snapshots. */
#define _GNU_SOURCE
#include "panels.h"
#include "draw.h"
#include "wrap.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void ui_series_push(ui_series *s, bool has, float v) {
    s->head = (s->head + 1) % UI_SERIES_N;
    s->has[s->head] = has;
    s->v[s->head] = has ? v : 0.0f;
}

int ui_sparkline(const ui_series *s, int width, float max, const char *const lv[9], char *out, int cap) {
    if (width < 1 || cap < 1) { if (cap > 0) out[0] = 0; return 0; }
    int cells = width < UI_SERIES_N ? width : UI_SERIES_N;
    /* cell i covers samples [i*N/cells, (i+1)*N/cells) of the last N, oldest first;
     * when the width is at least N... cells == N: one sample per cell */
    int N = UI_SERIES_N;
    float val[UI_SERIES_N];
    bool has[UI_SERIES_N];
    float top = 0;
    for (int i = 0; i < cells; i++) {
        int a = i * N / cells, b = (i + 1) * N / cells;
        float sum = 0;
        int k = 0;
        for (int j = a; j < b; j++) {
            int idx = (s->head + 1 + j) % N;     /* j = 0: the oldest */
            if (s->has[idx]) { sum += s->v[idx]; k++; }
        }
        has[i] = k > 0;
        val[i] = k ? sum / k : 0;
        if (has[i] && val[i] > top) top = val[i];
    }
    if (max <= 0) max = top;
    int n = 0, written = 0;
    for (int i = 0; i < cells; i++) {
        int level = 0;
        if (has[i]) {
            level = max > 0 ? 1 + (int)(val[i] / max * 7.0f + 0.5f) : 1;
            if (level < 1) level = 1;
            if (level > 8) level = 8;
        }
        int gl = (int)strlen(lv[level]);
        if (n + gl + 1 > cap) break;
        memcpy(out + n, lv[level], (size_t)gl);
        n += gl;
        written++;
    }
    out[n] = 0;
    return written;
}

void ui_panels_init(ui_panels *p) {
    memset(p, 0, sizeof *p);
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    p->n_cpus = c > 0 ? (int)c : 1;
}

/* user + system CPU time of this process in clock ticks */
static uint64_t cpu_ticks(void) {
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f) return 0;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');   /* the command name may hold spaces */
    if (!p) return 0;
    unsigned long long ut = 0, st = 0;
    /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return 0;
    return ut + st;
}

void ui_panels_sample(ui_panels *p, bool have, const st_stats *st, uint64_t tokens, uint64_t dns, uint64_t now) {
    p->have = have;
    if (have) {
        p->st = *st;
        snprintf(p->gpu_name, sizeof p->gpu_name, "%s", st->gpu_device ? st->gpu_device : "");
        p->st.gpu_device = NULL;   /* not kept: the copy above is */
    }
    const st_store_figures *f = &p->st.store;
    if (p->sample_t0 == 0) {
        p->sample_t0 = now;
        p->b_tok = tokens;
        p->b_dns = dns;
        p->b_acq = f->acquires;
        p->b_ready = f->ready;
        p->b_cpu_ticks = cpu_ticks();
        p->b_wall = now;
        return;
    }
    if (now - p->sample_t0 < UI_SAMPLE_NS) return;
    /* decode */
    uint64_t dt = tokens - p->b_tok, dn = dns - p->b_dns;
    bool hd = dt > 0 && dn > 0;
    p->decode_now = hd ? (float)(dt / (dn / 1e9)) : 0;
    ui_series_push(&p->decode, hd, p->decode_now);
    /* prompt: one sample per finished prefill */
    uint64_t key = (p->st.n_prompt * 0x9E3779B97F4A7C15ull) ^ p->st.prompt_ns;
    bool hp = have && p->st.prompt_ns > 0 && p->st.phase != ST_PHASE_PREFILL && key != p->last_prompt_key;
    if (hp) p->last_prompt_key = key;
    ui_series_push(&p->prompt, hp, hp ? (float)(p->st.n_prompt / (p->st.prompt_ns / 1e9)) : 0);
    /* ready when needed */
    bool hr = false;
    float rv = 0;
    if (have && f->budgeted && f->acquires >= p->b_acq && f->ready >= p->b_ready) {
        uint64_t da = f->acquires - p->b_acq;
        if (da > 0) { hr = true; rv = 100.0f * (float)(f->ready - p->b_ready) / (float)da; }
    }
    if (hr) p->ready_now = rv;
    ui_series_push(&p->ready, hr, rv);
    /* CPU use, % of one core */
    uint64_t t = cpu_ticks();
    long hz = sysconf(_SC_CLK_TCK);
    double wall = (now - p->b_wall) / 1e9;
    p->cpu_now = (wall > 0 && hz > 0 && t >= p->b_cpu_ticks) ? (float)((t - p->b_cpu_ticks) / (double)hz / wall * 100.0) : 0;
    ui_series_push(&p->cpu, true, p->cpu_now);
    ui_series_push(&p->gpu, have && p->gpu_name[0], (float)(p->st.gpu_busy * 100.0));
    p->b_cpu_ticks = t;
    p->b_wall = now;
    p->sample_t0 = now;
    p->b_tok = tokens;
    p->b_dns = dns;
    p->b_acq = f->acquires;
    p->b_ready = f->ready;
}

/* ---- drawing --------------------------------------------------------------- */

typedef struct {
    int y, x, w, end;
} pen;

static bool room(const pen *p) { return p->y < p->end && p->w > 0; }

static void spark_line(pen *p, const ui_series *s, float max, ui_color c) {
    if (!room(p)) return;
    char buf[UI_SERIES_N * 4 + 1];
    ui_sparkline(s, p->w, max, ui_g()->spark, buf, sizeof buf);
    ui_text(p->y, p->x, p->w, buf, (int)strlen(buf), c);
    p->y++;
}

/* "label value unit" with the value emphasised, and optional right text */
static void figure(pen *p, const char *label, const char *value, const char *unit, ui_color vc, const char *right) {
    if (!room(p)) return;
    int x = p->x, e = p->x + p->w;
    x += ui_text(p->y, x, e - x, label, (int)strlen(label), UI_C_DIM);
    x += ui_text(p->y, x, e - x, value, (int)strlen(value), vc);
    x += ui_text(p->y, x, e - x, unit, (int)strlen(unit), UI_C_DIM);
    if (right && *right) {
        int rw = ui_str_width(right, (int)strlen(right));
        if (x + 1 + rw <= e) ui_text(p->y, e - rw, rw, right, (int)strlen(right), UI_C_DIM);
    }
    p->y++;
}

static void plain(pen *p, ui_color c, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void plain(pen *p, ui_color c, const char *fmt, ...) {
    if (!room(p)) return;
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ui_text(p->y, p->x, p->w, buf, (int)strlen(buf), c);
    p->y++;
}

static void fmt_rate(char *b, int cap, double r) {
    if (r <= 0) snprintf(b, (size_t)cap, "-");
    else snprintf(b, (size_t)cap, r < 100 ? "%.2f" : r < 10000 ? "%.1f" : "%.0f", r);
}

static void box_speed(const ui_panels *P, pen *p) {
    const st_stats *s = &P->st;
    char v[32], r[48];
    fmt_rate(v, sizeof v, s->gen_ns ? s->n_gen / (s->gen_ns / 1e9) : 0);
    r[0] = 0;
    if (s->ttft_ns) snprintf(r, sizeof r, "ttft %.1f ms", s->ttft_ns / 1e6);
    figure(p, "decode ", v, " tok/s", UI_C_VALUE, r);
    spark_line(p, &P->decode, 0, UI_C_SPARK);
    fmt_rate(v, sizeof v, s->prompt_ns ? s->n_prompt / (s->prompt_ns / 1e9) : 0);
    snprintf(r, sizeof r, "%llu tok", (unsigned long long)s->n_prompt);
    figure(p, "prompt ", v, " tok/s", UI_C_VALUE, s->n_prompt ? r : "");
    spark_line(p, &P->prompt, 0, UI_C_SPARK2);
    snprintf(r, sizeof r, "%llu", (unsigned long long)s->n_gen);
    figure(p, "reply  ", r, " tokens", UI_C_VALUE, NULL);
}

static void box_prefetch(const ui_panels *P, pen *p) {
    const st_store_figures *f = &P->st.store;
    if (!f->budgeted) {
        plain(p, UI_C_DIM, "no layer budget:");
        plain(p, UI_C_DIM, "all mapped in place");
        plain(p, UI_C_DIM, "(--cache-layers N");
        plain(p, UI_C_DIM, "streams them)");
        return;
    }
    char v[32], r[64];
    double rate = f->acquires ? 100.0 * (double)f->ready / (double)f->acquires : 0;
    snprintf(v, sizeof v, f->acquires ? "%.1f%%" : "-", rate);
    ui_color vc = !f->acquires ? UI_C_VALUE : rate >= 95 ? UI_C_GOOD : rate >= 70 ? UI_C_WARN : UI_C_BAD;
    snprintf(r, sizeof r, "now %.0f%%", P->ready_now);
    figure(p, "ready ", v, " when needed", vc, f->acquires ? r : "");
    spark_line(p, &P->ready, 100.0f, UI_C_SPARK);
    plain(p, UI_C_NORMAL, "sync %llu · waits %llu · stall %.1f ms", (unsigned long long)f->sync_loads,
          (unsigned long long)f->waits, f->stall_ns / 1e6);
    if (f->prefetch_on)
        plain(p, UI_C_NORMAL, "distance %d (max %d/%d) · queue %d/%d", f->distance, f->distance_max, f->distance_limit,
              f->queue_depth, f->queue_cap);
    else plain(p, UI_C_NORMAL, "prefetch off: loads are synchronous");
    char b[32];
    ui_fmt_bytes(b, sizeof b, (double)f->bytes_read);
    plain(p, UI_C_DIM, "read %s · %.0f MB/s · %d thr%s", b, f->read_mbps, f->prefetch_threads, f->direct_io ? " · direct" : "");
    if (f->host_cache_layers > 0 && room(p)) { /* GPU slots fed from pinned RAM: loads without reads */
        ui_fmt_bytes(b, sizeof b, (double)f->host_cache_bytes);
        plain(p, UI_C_DIM, "host cache %d layers · %s · %llu loads", f->host_cache_layers, b,
              (unsigned long long)f->host_cache_loads);
    }
}

static ui_color layer_color(int st) {
    switch (st) {
    case ST_LAYER_LOADING: return UI_C_L_LOADING;
    case ST_LAYER_RESIDENT: return UI_C_L_RESIDENT;
    case ST_LAYER_PINNED: return UI_C_L_PINNED;
    case ST_LAYER_MAPPED: return UI_C_L_MAPPED;
    default: return UI_C_L_ABSENT;
    }
}

static void box_layers(const ui_panels *P, pen *p) {
    const st_store_figures *f = &P->st.store;
    int n = f->n_layer ? f->n_layer : P->st.n_layer;
    if (n > ST_STATS_MAX_LAYERS) n = ST_STATS_MAX_LAYERS;
    const ui_glyphs *g = ui_g();
    /* the map: one cell per layer, rows of the panel's width */
    for (int i = 0; i < n && room(p);) {
        int x = p->x;
        for (; i < n && x < p->x + p->w; i++) {
            int s = f->layer_state[i];
            if (s < 0 || s > 4) s = 0;
            ui_text(p->y, x, 1, g->layer[s], (int)strlen(g->layer[s]), layer_color(s));
            x++;
        }
        p->y++;
    }
    if (!room(p)) return;
    char used[32], cap[32];
    if (f->budgeted) {
        uint64_t budget = f->budget_bytes ? f->budget_bytes : (uint64_t)f->n_slots * f->slot_bytes + f->fixed_bytes;
        uint64_t inuse = (uint64_t)f->slots_used * f->slot_bytes + f->fixed_bytes;
        ui_fmt_bytes(used, sizeof used, (double)inuse);
        ui_fmt_bytes(cap, sizeof cap, (double)budget);
        char lab[96];
        int ll = snprintf(lab, sizeof lab, " %s/%s", used, cap);
        int bw = p->w - ui_str_width(lab, ll) - 2;
        int x = p->x;
        if (bw >= 4) {
            int full = budget ? (int)((double)inuse / (double)budget * bw + 0.5) : 0;
            if (full > bw) full = bw;
            x += ui_text(p->y, x, 1, "[", 1, UI_C_DIM);
            for (int k = 0; k < bw; k++)
                x += ui_text(p->y, x, 1, k < full ? g->bar_full : g->bar_empty,
                             (int)strlen(k < full ? g->bar_full : g->bar_empty), k < full ? UI_C_L_RESIDENT : UI_C_L_ABSENT);
            x += ui_text(p->y, x, 1, "]", 1, UI_C_DIM);
        }
        ui_text(p->y, x, p->x + p->w - x, lab, ll, UI_C_NORMAL);
        p->y++;
        if (f->policy == ST_CACHE_LRU) plain(p, UI_C_DIM, "slots %d/%d · lru", f->slots_used, f->n_slots);
        else plain(p, UI_C_DIM, "slots %d/%d · %d pinned · %d ring", f->slots_used, f->n_slots, f->n_pinned, f->n_ring);
        if (room(p)) {
            int x2 = p->x, e = p->x + p->w;
            static const struct { int st; const char *name; } leg[] = {
                {ST_LAYER_PINNED, "pin "}, {ST_LAYER_RESIDENT, "res "}, {ST_LAYER_LOADING, "load "}, {ST_LAYER_ABSENT, "out"}};
            for (int k = 0; k < 4; k++) {
                x2 += ui_text(p->y, x2, e - x2, g->layer[leg[k].st], (int)strlen(g->layer[leg[k].st]), layer_color(leg[k].st));
                x2 += ui_text(p->y, x2, e - x2, leg[k].name, (int)strlen(leg[k].name), UI_C_DIM);
            }
            p->y++;
        }
    } else {
        ui_fmt_bytes(used, sizeof used, (double)(P->st.resident_bytes ? P->st.resident_bytes : 0));
        int x2 = p->x;
        x2 += ui_text(p->y, x2, p->w, g->layer[ST_LAYER_MAPPED], (int)strlen(g->layer[ST_LAYER_MAPPED]), UI_C_L_MAPPED);
        ui_text(p->y, x2, p->x + p->w - x2, " mapped from the file", 21, UI_C_DIM);
        p->y++;
    }
}

/* a bar of used/total and its label, on one line */
static void usage_bar(pen *p, const char *label, uint64_t used, uint64_t total) {
    if (!room(p)) return;
    const ui_glyphs *g = ui_g();
    char u[32], t[32], lab[96];
    ui_fmt_bytes(u, sizeof u, (double)used);
    ui_fmt_bytes(t, sizeof t, (double)total);
    int ll = snprintf(lab, sizeof lab, " %s/%s", u, t);
    int x = p->x;
    x += ui_text(p->y, x, p->w, label, (int)strlen(label), UI_C_DIM);
    int bw = p->x + p->w - x - ui_str_width(lab, ll) - 2;
    if (bw >= 4 && total) {
        int full = (int)((double)used / (double)total * bw + 0.5);
        if (full > bw) full = bw;
        x += ui_text(p->y, x, 1, "[", 1, UI_C_DIM);
        for (int k = 0; k < bw; k++)
            x += ui_text(p->y, x, 1, k < full ? g->bar_full : g->bar_empty, (int)strlen(k < full ? g->bar_full : g->bar_empty),
                         k < full ? UI_C_SPARK2 : UI_C_L_ABSENT);
        x += ui_text(p->y, x, 1, "]", 1, UI_C_DIM);
    }
    ui_text(p->y, x, p->x + p->w - x, lab, ll, UI_C_NORMAL);
    p->y++;
}

static void box_system(const ui_panels *P, pen *p) {
    const st_stats *s = &P->st;
    char v[32], r[64], a[32], b[32];
    if (P->gpu_name[0]) {
        /* the GPU backend: device, busy fraction (timestamp queries), VRAM */
        plain(p, UI_C_VALUE, "%s", P->gpu_name);
        snprintf(v, sizeof v, "%.0f%%", s->gpu_busy * 100.0);
        snprintf(r, sizeof r, "%s backend", s->backend ? s->backend : "gpu");
        figure(p, "busy ", v, "", UI_C_VALUE, r);
        spark_line(p, &P->gpu, 100.0f, UI_C_SPARK);
        if (s->gpu_vram_budget) usage_bar(p, "vram ", s->gpu_vram_used, s->gpu_vram_budget);
    }
    /* the CPU: threads and use */
    snprintf(v, sizeof v, "%.0f%%", P->cpu_now);
    snprintf(r, sizeof r, "%d threads, %d cpus", s->n_threads, P->n_cpus);
    if (!P->gpu_name[0]) {
        char be[32];
        snprintf(be, sizeof be, "%s backend", s->backend ? s->backend : "cpu");
        figure(p, "", be, "", UI_C_VALUE, r);
        figure(p, "use ", v, " of a core", UI_C_VALUE, NULL);
        spark_line(p, &P->cpu, (float)(P->n_cpus * 100), UI_C_SPARK2);
    } else figure(p, "cpu ", v, "", UI_C_VALUE, r);
    ui_fmt_bytes(a, sizeof a, (double)s->rss_bytes);
    ui_fmt_bytes(b, sizeof b, (double)s->peak_rss_bytes);
    snprintf(r, sizeof r, "peak %s", b);
    figure(p, "rss ", a, "", UI_C_VALUE, r);
    snprintf(v, sizeof v, "%d/%d", s->n_past, s->n_ctx);
    figure(p, "ctx ", v, " tokens", UI_C_VALUE, NULL);
}

typedef void (*box_fn)(const ui_panels *, pen *);

static void titled(const ui_panels *P, int y, int x, int w, int end, const char *title, box_fn fn, int *used) {
    ui_rule(y, x, w, title, UI_C_TITLE);
    pen p = {y + 1, x, w, end};
    fn(P, &p);
    if (used) *used = p.y - y;
}

void ui_panels_draw(const ui_panels *P, ui_rect r, ui_panel_mode mode) {
    if (r.h <= 0 || r.w <= 0) return;
    char lt[48];
    snprintf(lt, sizeof lt, "Layers %d", P->st.store.n_layer ? P->st.store.n_layer : P->st.n_layer);
    bool gpu = P->have && P->gpu_name[0];
    struct { const char *t; box_fn fn; } boxes[4] = {
        {"Speed", box_speed}, {"Prefetch", box_prefetch}, {lt, box_layers}, {gpu ? "GPU" : "CPU + memory", box_system}};
    if (!P->have) {
        ui_rule(r.y, r.x, r.w, "Engine", UI_C_TITLE);
        if (r.h > 1) ui_text(r.y + 1, r.x + 1, r.w - 1, "no model loaded", 15, UI_C_DIM);
        return;
    }
    if (mode == UI_PANELS_SIDE) {
        ui_vline(r.y, r.x, r.h, UI_C_BORDER);
        int x = r.x + 2, w = r.w - 3, y = r.y, end = r.y + r.h;
        for (int i = 0; i < 4 && y < end - 1; i++) {
            int used = 0;
            titled(P, y, x - 1, w + 1, end, boxes[i].t, boxes[i].fn, &used);
            y += used;
        }
        return;
    }
    /* below the chat: boxes side by side, the layer map second */
    static const int order[4] = {0, 2, 1, 3};
    int ncol = r.w / 22;
    if (ncol > 4) ncol = 4;
    if (ncol < 1) ncol = 1;
    int cw = r.w / ncol;
    for (int i = 0; i < ncol; i++) {
        int x = r.x + i * cw, w = (i == ncol - 1 ? r.w - i * cw : cw - 1);
        titled(P, r.y, x, w, r.y + r.h, boxes[order[i]].t, boxes[order[i]].fn, NULL);
    }
}
