/* bench_view.c — the Bench screen: stored benchmark runs in a table,
 * filtered by model and backend, two runs marked to compare (ratios per
 * test), and a chart of decode tok/s over the runs of the selected row's
 * model and backend. */
#define _XOPEN_SOURCE_EXTENDED 1
#include "draw.h"
#include "screens.h"
#include "db.h"

#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const backends[] = {NULL, "CPU", "Vulkan"};

void ui_bench_init(ui_bench *b) {
    memset(b, 0, sizeof *b);
    ui_input_init(&b->filter);
}

void ui_bench_free(ui_bench *b) {
    free(b->rows);
    ui_input_free(&b->filter);
}

const char *ui_bench_backend(const ui_bench *b) { return backends[b->backend % 3]; }

void ui_bench_on_event(ui_bench *b, ui_db_event *ev) {
    if (ev->type != UI_DB_BENCH) return;
    free(b->rows);
    b->rows = ev->bench;
    b->n = ev->n;
    ev->bench = NULL;
    b->loaded = true;
    if (b->sel >= b->n) b->sel = b->n - 1;
    if (b->sel < 0) b->sel = 0;
}

static bool marked(const ui_bench *b, int64_t run) { return run && (b->mark[0] == run || b->mark[1] == run); }

static bool is_decode(const ui_db_bench *r) { return r->n_gen > 0 && r->n_prompt == 0; }

static void budget_str(const ui_db_bench *r, char *buf, int n) {
    if (!r->budgeted) snprintf(buf, (size_t)n, "-");
    else if (r->cache_layers) snprintf(buf, (size_t)n, "%d lay", r->cache_layers);
    else ui_fmt_bytes(buf, n, (double)r->mem_budget);
}

/* the compare lines: each test of run A against the same test of run B */
static int draw_compare(const ui_bench *b, int y, int x, int w, int maxh) {
    int used = 0;
    char t[128];
    snprintf(t, sizeof t, "Compare run %lld (A) with run %lld (B)", (long long)b->mark[0], (long long)b->mark[1]);
    ui_rule(y, x, w, t, UI_C_TITLE);
    used++;
    for (int i = 0; i < b->n && used < maxh; i++) {
        const ui_db_bench *a = &b->rows[i];
        if (a->run != b->mark[0]) continue;
        for (int j = 0; j < b->n; j++) {
            const ui_db_bench *c = &b->rows[j];
            if (c->run != b->mark[1] || strcmp(c->test, a->test) || c->n_threads != a->n_threads) continue;
            double ratio = a->avg_ts > 0 ? c->avg_ts / a->avg_ts : 0;
            char line[256];
            int n = snprintf(line, sizeof line, "  %-8s %3d thr   A %9.2f t/s   B %9.2f t/s   ", a->test, a->n_threads, a->avg_ts, c->avg_ts);
            int xx = x + ui_text(y + used, x, w, line, n, UI_C_NORMAL);
            n = snprintf(line, sizeof line, "B/A %.3fx", ratio);
            ui_text(y + used, xx, x + w - xx, line, n, ratio >= 1.0 ? UI_C_GOOD : UI_C_BAD);
            used++;
            break;
        }
    }
    if (used == 1 && used < maxh) {
        ui_text(y + used, x + 2, w - 2, "no test in common (same test and threads)", 41, UI_C_DIM);
        used++;
    }
    return used;
}

/* decode tok/s of the runs of the selected row's model and backend, as bars */
static void draw_chart(const ui_bench *b, int y, int x, int w, int h) {
    if (h < 3 || b->sel >= b->n) return;
    const ui_db_bench *s = &b->rows[b->sel];
    char t[256];
    snprintf(t, sizeof t, "Decode tok/s over runs · %s · %s", s->model, s->backend);
    ui_rule(y, x, w, t, UI_C_TITLE);
    int idx[512], k = 0;
    double top = 0;
    for (int i = 0; i < b->n && k < 512; i++) {
        const ui_db_bench *r = &b->rows[i];
        if (!is_decode(r) || strcmp(r->model, s->model) || strcmp(r->backend, s->backend)) continue;
        idx[k++] = i;
        if (r->avg_ts > top) top = r->avg_ts;
    }
    if (k == 0) { ui_text(y + 1, x + 2, w - 2, "no decode (tg) tests for this model and backend", 47, UI_C_DIM); return; }
    int lw = 9;                        /* axis labels */
    int cols = w - lw - 1;
    int first = k > cols / 2 ? k - cols / 2 : 0;   /* bars 1 wide + a gap; the newest runs */
    int bh = h - 2;                    /* bar rows (the last row: labels) */
    const ui_glyphs *g = ui_g();
    char lab[32];
    int ll = snprintf(lab, sizeof lab, "%8.1f", top);
    ui_text(y + 1, x, lw, lab, ll, UI_C_DIM);
    ll = snprintf(lab, sizeof lab, "%8.1f", 0.0);
    ui_text(y + bh, x, lw, lab, ll, UI_C_DIM);
    for (int i = first; i < k; i++) {
        const ui_db_bench *r = &b->rows[idx[i]];
        int cx = x + lw + 1 + (i - first) * 2;
        if (cx >= x + w) break;
        int eighths = top > 0 ? (int)(r->avg_ts / top * bh * 8 + 0.5) : 0;
        bool sel = idx[i] == b->sel;
        for (int row = 0; row < bh; row++) {
            int lvl = eighths - row * 8;
            if (lvl <= 0) break;
            if (lvl > 8) lvl = 8;
            const char *gl = g->spark[lvl];
            ui_text(y + bh - row, cx, 1, gl, (int)strlen(gl), sel ? UI_C_WARN : marked(b, r->run) ? UI_C_SPARK2 : UI_C_SPARK);
        }
    }
    char foot[96];
    int fl = snprintf(foot, sizeof foot, "%d run%s, oldest left; highlighted: the selected row", k, k == 1 ? "" : "s");
    ui_text(y + h - 1, x + lw + 1, w - lw - 1, foot, fl, UI_C_DIM);
}

void ui_bench_draw(ui_bench *b, ui_rect r) {
    b->cy = b->cx = -1;
    if (r.h <= 0 || r.w <= 0) return;
    if (!b->available) {
        const char *l[] = {"history database not available", "", b->err[0] ? b->err : "opening the database…", "",
                           "Benchmark runs are stored there by `strata bench`.", "F2 returns to the chat.", NULL};
        ui_unavailable_draw(r, "Bench", l);
        return;
    }
    char t[160];
    snprintf(t, sizeof t, "Bench · %d row%s", b->n, b->n == 1 ? "" : "s");
    ui_rule(r.y, r.x, r.w, t, UI_C_TITLE);
    if (r.h < 3) return;
    int y = r.y + 1, x = r.x + 1;
    x += ui_text(y, x, r.w - 1, "Model: ", 7, b->editing ? UI_C_TITLE : UI_C_DIM);
    int fx = x;
    x += ui_text(y, x, r.x + r.w - x, b->filter.buf, b->filter.len, UI_C_INPUT);
    if (!b->filter.len) x += ui_text(y, x, r.x + r.w - x, b->editing ? "" : "any (/ to filter)", b->editing ? 0 : 17, UI_C_DIM);
    char bf[64];
    int bl = snprintf(bf, sizeof bf, "   Backend: %s (b)", ui_bench_backend(b) ? ui_bench_backend(b) : "any");
    ui_text(y, x, r.x + r.w - x, bf, bl, UI_C_DIM);
    if (b->editing) {
        int cx = fx + ui_str_width(b->filter.buf, b->filter.cur);
        if (cx < r.x + r.w) { b->cy = y; b->cx = cx; }
    }
    if (!b->loaded) { ui_text(r.y + 3, r.x + 2, r.w - 2, "loading…", (int)strlen("loading…"), UI_C_DIM); return; }
    if (b->n == 0) {
        const char *m = "no stored benchmark runs (strata bench stores its results here)";
        ui_text(r.y + 3, r.x + 2, r.w - 2, m, (int)strlen(m), UI_C_DIM);
        return;
    }
    /* areas: table, compare, chart, hint */
    bool cmp = b->mark[0] && b->mark[1];
    int chart_h = r.h >= 24 ? 9 : r.h >= 16 ? 6 : 0;
    int cmp_h = cmp ? (r.h >= 20 ? 6 : 3) : 0;
    int table_h = r.h - 3 - chart_h - cmp_h - 1;
    if (table_h < 2) { chart_h = 0; cmp_h = cmp ? 2 : 0; table_h = r.h - 4 - cmp_h; }
    int ty = r.y + 2;
    char line[512];
    /* the model column takes what the others leave */
    int mw = r.w - 84;
    if (mw < 8) mw = 8;
    if (mw > 32) mw = 32;
    int n = snprintf(line, sizeof line, "  %5s  %-11s  %-*.*s %-7.7s %-7.7s %-7.7s %9s %7s %3s %-7s %6s", "run", "date", mw, mw, "model",
                     "type", "backend", "test", "t/s", "±", "thr", "budget", "ready");
    ui_text(ty, r.x, r.w, line, n, UI_C_DIM);
    int rows = table_h - 1;
    if (b->sel < b->top) b->top = b->sel;
    if (rows > 0 && b->sel >= b->top + rows) b->top = b->sel - rows + 1;
    for (int i = 0; i < rows && b->top + i < b->n; i++) {
        int k = b->top + i;
        const ui_db_bench *w = &b->rows[k];
        char date[32], bud[32], rd[16];
        st_db_format_time(w->created_ms, date, sizeof date);
        budget_str(w, bud, sizeof bud);
        if (w->budgeted) snprintf(rd, sizeof rd, "%.1f%%", w->ready_rate * 100);
        else snprintf(rd, sizeof rd, "-");
        const char *mk = b->mark[0] == w->run ? "A" : b->mark[1] == w->run ? "B" : " ";
        /* "2024-05-01 14:03" -> "05-01 14:03" */
        const char *d = strlen(date) >= 16 ? date + 5 : date;
        n = snprintf(line, sizeof line, "%s %5lld  %-11s  %-*.*s %-7.7s %-7.7s %-7.7s %9.2f %7.2f %3d %-7s %6s", mk, (long long)w->run,
                     d, mw, mw, w->model, w->type, w->backend, w->test, w->avg_ts, w->stddev_ts, w->n_threads, bud, rd);
        ui_color c = k == b->sel && !b->editing ? UI_C_SELECT : marked(b, w->run) ? UI_C_SPARK2 : UI_C_NORMAL;
        if (k == b->sel) ui_fill((ui_rect){ty + 1 + i, r.x, 1, r.w}, c);
        ui_text(ty + 1 + i, r.x, r.w, line, n, c);
    }
    int yy = ty + table_h;
    if (cmp_h) {
        draw_compare(b, yy, r.x, r.w, cmp_h);
        yy += cmp_h;
    }
    if (chart_h) draw_chart(b, yy, r.x, r.w, chart_h);
    const char *hint = b->editing ? "type a model name (part of it) · Enter done · Esc clear"
                                  : "space mark A/B (compare) · x clear marks · / model · b backend · Esc chat";
    ui_text(r.y + r.h - 1, r.x + 1, r.w - 1, hint, (int)strlen(hint), UI_C_DIM);
}

static ui_action act(ui_act_kind k) { return (ui_action){k, 0, NULL}; }

ui_action ui_bench_key(ui_bench *b, int type, int ch, int page) {
    bool code = type == KEY_CODE_YES;
    if (!b->available) return act(UI_ACT_NOT_HANDLED);
    if (b->editing) {
        ui_key k = UI_KEY_NONE;
        if (code) {
            switch (ch) {
            case KEY_LEFT: k = UI_KEY_LEFT; break;
            case KEY_RIGHT: k = UI_KEY_RIGHT; break;
            case KEY_BACKSPACE: k = UI_KEY_BACKSPACE; break;
            case KEY_DC: k = UI_KEY_DELETE; break;
            case KEY_ENTER: case KEY_DOWN: b->editing = false; return act(UI_ACT_REDRAW);
            default: return act(UI_ACT_NOT_HANDLED);
            }
        } else if (ch == 27) { b->editing = false; ui_input_set(&b->filter, ""); return act(UI_ACT_BENCH); }
        else if (ch == '\r' || ch == '\n' || ch == '\t') { b->editing = false; return act(UI_ACT_REDRAW); }
        else if (ch == 8 || ch == 127) k = UI_KEY_BACKSPACE;
        else if (ch == 21) k = UI_KEY_KILL_START;
        else if (ch >= 0x20) { ui_input_key(&b->filter, UI_KEY_CHAR, (uint32_t)ch); b->sel = 0; return act(UI_ACT_BENCH); }
        else return act(UI_ACT_NOT_HANDLED);
        int before = b->filter.len;
        ui_input_key(&b->filter, k, 0);
        if (before != b->filter.len) { b->sel = 0; return act(UI_ACT_BENCH); }
        return act(UI_ACT_REDRAW);
    }
    if (code) {
        switch (ch) {
        case KEY_UP: if (b->sel > 0) b->sel--; break;
        case KEY_DOWN: if (b->sel < b->n - 1) b->sel++; break;
        case KEY_PPAGE: b->sel -= page; if (b->sel < 0) b->sel = 0; break;
        case KEY_NPAGE: b->sel += page; if (b->sel > b->n - 1) b->sel = b->n - 1; if (b->sel < 0) b->sel = 0; break;
        case KEY_HOME: b->sel = 0; break;
        case KEY_END: b->sel = b->n > 0 ? b->n - 1 : 0; break;
        default: return act(UI_ACT_NOT_HANDLED);
        }
        return act(UI_ACT_REDRAW);
    }
    switch (ch) {
    case ' ': {
        if (b->sel >= b->n) return act(UI_ACT_NONE);
        int64_t run = b->rows[b->sel].run;
        if (b->mark[0] == run) { b->mark[0] = b->mark[1]; b->mark[1] = 0; }
        else if (b->mark[1] == run) b->mark[1] = 0;
        else if (!b->mark[0]) b->mark[0] = run;
        else if (!b->mark[1]) b->mark[1] = run;
        else { b->mark[0] = b->mark[1]; b->mark[1] = run; }
        return act(UI_ACT_REDRAW);
    }
    case 'x': b->mark[0] = b->mark[1] = 0; return act(UI_ACT_REDRAW);
    case '/': b->editing = true; return act(UI_ACT_REDRAW);
    case 'b': b->backend = (b->backend + 1) % 3; b->sel = 0; return act(UI_ACT_BENCH);
    default: return act(UI_ACT_NOT_HANDLED);
    }
}
