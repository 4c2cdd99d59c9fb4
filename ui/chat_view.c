/* chat_view.c — the conversation and its wrapped, scrollable view. */
#include "chat_view.h"
#include "draw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INDENT 2

void ui_chat_init(ui_chat *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->assistant_name, sizeof c->assistant_name, "Assistant");
}

static void msg_free(ui_msg *m) {
    free(m->text);
    free(m->lines);
}

void ui_chat_clear(ui_chat *c) {
    for (int i = 0; i < c->n; i++) msg_free(&c->msgs[i]);
    c->n = 0;
    c->scroll = 0;
}

void ui_chat_free(ui_chat *c) {
    ui_chat_clear(c);
    free(c->msgs);
    c->msgs = NULL;
    c->cap = 0;
}

ui_msg *ui_chat_add(ui_chat *c, ui_msg_kind kind, const char *text) {
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 16;
        ui_msg *p = realloc(c->msgs, sizeof *p * (size_t)cap);
        if (!p) return NULL;
        c->msgs = p;
        c->cap = cap;
    }
    ui_msg *m = &c->msgs[c->n];
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->wrap_w = -1;
    m->cap = 64;
    m->text = calloc((size_t)m->cap, 1);
    if (!m->text) return NULL;
    c->n++;
    if (text) ui_msg_append(m, text, (int)strlen(text));
    return m;
}

void ui_msg_append(ui_msg *m, const char *text, int len) {
    if (len <= 0) return;
    if (m->len + len + 1 > m->cap) {
        int cap = m->cap;
        while (m->len + len + 1 > cap) cap *= 2;
        char *p = realloc(m->text, (size_t)cap);
        if (!p) return;
        m->text = p;
        m->cap = cap;
    }
    memcpy(m->text + m->len, text, (size_t)len);
    m->len += len;
    m->text[m->len] = 0;
}

void ui_chat_remove(ui_chat *c, int i) {
    if (i < 0 || i >= c->n) return;
    msg_free(&c->msgs[i]);
    memmove(c->msgs + i, c->msgs + i + 1, sizeof *c->msgs * (size_t)(c->n - i - 1));
    c->n--;
}

void ui_chat_set_system(ui_chat *c, const char *text) {
    bool has = c->n > 0 && c->msgs[0].kind == UI_MSG_SYSTEM;
    if (!text || !*text) {
        if (has) {
            msg_free(&c->msgs[0]);
            memmove(c->msgs, c->msgs + 1, sizeof *c->msgs * (size_t)(c->n - 1));
            c->n--;
        }
        return;
    }
    if (has) {
        c->msgs[0].len = 0;
        c->msgs[0].text[0] = 0;
        c->msgs[0].wrap_w = -1;
        ui_msg_append(&c->msgs[0], text, (int)strlen(text));
        return;
    }
    if (!ui_chat_add(c, UI_MSG_SYSTEM, text)) return;
    ui_msg m = c->msgs[c->n - 1];
    memmove(c->msgs + 1, c->msgs, sizeof *c->msgs * (size_t)(c->n - 1));
    c->msgs[0] = m;
}

int ui_chat_turns(const ui_chat *c, ui_turn **out) {
    ui_turn *t = malloc(sizeof *t * (size_t)(c->n + 1));
    int k = 0;
    if (!t) { *out = NULL; return 0; }
    for (int i = 0; i < c->n; i++) {
        const ui_msg *m = &c->msgs[i];
        if (m->kind == UI_MSG_USER) t[k++] = (ui_turn){UI_ROLE_USER, m->text};
        else if (m->kind == UI_MSG_ASSISTANT) t[k++] = (ui_turn){UI_ROLE_ASSISTANT, m->text};
        else if (m->kind == UI_MSG_SYSTEM) t[k++] = (ui_turn){UI_ROLE_SYSTEM, m->text};
    }
    *out = t;
    return k;
}

/* ---- view ------------------------------------------------------------------ */

static bool has_header(const ui_msg *m) { return m->kind == UI_MSG_USER || m->kind == UI_MSG_ASSISTANT || m->kind == UI_MSG_SYSTEM; }

/* the part of the text shown: no leading blank lines/spaces, no trailing
 * white space once complete, no unfinished character */
static void shown(const ui_msg *m, int *a, int *b) {
    int s = 0, e = ui_utf8_complete_len(m->text, m->len);
    while (s < e && (m->text[s] == ' ' || m->text[s] == '\n' || m->text[s] == '\r')) s++;
    if (!m->streaming)
        while (e > s && (m->text[e - 1] == ' ' || m->text[e - 1] == '\n' || m->text[e - 1] == '\t' || m->text[e - 1] == '\r')) e--;
    *a = s;
    *b = e;
}

static void rewrap(ui_msg *m, int width) {
    int a, b;
    shown(m, &a, &b);
    if (m->wrap_w == width && m->wrap_len == m->len && m->wrap_shown == (m->streaming ? 1 : 0)) return;
    int w = width - INDENT;
    if (w < 1) w = 1;
    int n = ui_wrap(m->text + a, b - a, w, m->lines, m->lines_cap);
    if (n > m->lines_cap) {
        ui_line *p = realloc(m->lines, sizeof *p * (size_t)n);
        if (!p) { m->n_lines = m->lines_cap; return; }
        m->lines = p;
        m->lines_cap = n;
        n = ui_wrap(m->text + a, b - a, w, m->lines, m->lines_cap);
    }
    for (int i = 0; i < n; i++) m->lines[i].start += a;
    m->n_lines = n;
    m->wrap_w = width;
    m->wrap_len = m->len;
    m->wrap_shown = m->streaming ? 1 : 0;
}

static int msg_height(ui_msg *m, int width) {
    rewrap(m, width);
    return (has_header(m) ? 1 : 0) + m->n_lines + 1;
}

static int total_lines(ui_chat *c, int width) {
    int t = 0;
    for (int i = 0; i < c->n; i++) t += msg_height(&c->msgs[i], width);
    return t;
}

void ui_chat_scroll(ui_chat *c, int lines) {
    c->scroll += lines;
    if (c->scroll < 0) c->scroll = 0;
    int most = c->last_total - c->last_h;
    if (most < 0) most = 0;
    if (c->scroll > most) c->scroll = most;
}

void ui_chat_scroll_home(ui_chat *c) { c->scroll = 1 << 29; ui_chat_scroll(c, 0); }
void ui_chat_scroll_end(ui_chat *c) { c->scroll = 0; }

static void draw_line(ui_chat *c, const ui_msg *m, int k, int y, ui_rect r) {
    int hdr = has_header(m) ? 1 : 0;
    if (hdr && k == 0) {
        int x = r.x;
        if (m->kind == UI_MSG_USER) x += ui_text(y, x, r.w, "You", 3, UI_C_USER_HEAD);
        else if (m->kind == UI_MSG_SYSTEM) x += ui_text(y, x, r.w, "System prompt", 13, UI_C_SYSTEM);
        else {
            x += ui_text(y, x, r.w, c->assistant_name, (int)strlen(c->assistant_name), UI_C_ASSIST_HEAD);
            if (m->stopped) x += ui_text(y, x, r.x + r.w - x, "  stopped", 9, UI_C_WARN);
            if (m->meta[0]) {
                x += ui_text(y, x, r.x + r.w - x, "  ", 2, UI_C_DIM);
                ui_text(y, x, r.x + r.w - x, m->meta, (int)strlen(m->meta), UI_C_DIM);
            } else if (m->streaming) {
                x += ui_text(y, x, r.x + r.w - x, "  ", 2, UI_C_DIM);
                ui_text(y, x, r.x + r.w - x, "generating…", (int)strlen("generating…"), UI_C_BUSY);
            }
        }
        return;
    }
    int li = k - hdr;
    if (li < 0 || li >= m->n_lines) return;   /* the blank line after the message */
    ui_color col = m->kind == UI_MSG_USER ? UI_C_USER : m->kind == UI_MSG_ASSISTANT ? UI_C_ASSIST
                 : m->kind == UI_MSG_SYSTEM ? UI_C_SYSTEM : m->kind == UI_MSG_ERROR ? UI_C_ERROR : UI_C_NOTE;
    const ui_line *L = &m->lines[li];
    int x = r.x + INDENT;
    if (!hdr && li == 0) ui_text(y, r.x, INDENT, m->kind == UI_MSG_ERROR ? "! " : "» ", 2, col);
    x += ui_text(y, x, r.x + r.w - x, m->text + L->start, L->len, col);
    if (m->streaming && li == m->n_lines - 1)
        ui_text(y, x, r.x + r.w - x, ui_g()->cursor_row, (int)strlen(ui_g()->cursor_row), UI_C_ASSIST_HEAD);
}

void ui_chat_draw(ui_chat *c, ui_rect r, bool focused) {
    if (r.h <= 0 || r.w <= 0) return;
    int total = total_lines(c, r.w);
    /* reading back while a reply grows: the view stays where it is */
    if (c->scroll > 0 && c->last_w == r.w && total > c->last_total) c->scroll += total - c->last_total;
    c->last_total = total;
    c->last_w = r.w;
    c->last_h = r.h;
    int most = total - r.h;
    if (most < 0) most = 0;
    if (c->scroll > most) c->scroll = most;
    int top = total - r.h - c->scroll;
    if (top < 0) top = 0;
    int L = 0, y = r.y;
    for (int i = 0; i < c->n && y < r.y + r.h; i++) {
        ui_msg *m = &c->msgs[i];
        int h = msg_height(m, r.w);
        if (L + h <= top) { L += h; continue; }
        for (int k = (top > L ? top - L : 0); k < h && y < r.y + r.h; k++, y++) draw_line(c, m, k, y, r);
        L += h;
    }
    if (c->n == 0 && r.h >= 3) {
        const char *t1 = "Type a message and press Enter.";
        const char *t2 = "F1 or ? (after Tab) for help, F10 to quit.";
        int w1 = ui_str_width(t1, (int)strlen(t1)), w2 = ui_str_width(t2, (int)strlen(t2));
        int yy = r.y + r.h / 2 - 1;
        ui_text(yy, r.x + (r.w > w1 ? (r.w - w1) / 2 : 0), r.w, t1, (int)strlen(t1), UI_C_DIM);
        ui_text(yy + 1, r.x + (r.w > w2 ? (r.w - w2) / 2 : 0), r.w, t2, (int)strlen(t2), UI_C_DIM);
    }
    if (c->scroll > 0) {
        char b[64];
        int n = snprintf(b, sizeof b, " %d more %s (End) ", c->scroll, focused ? "lines" : "lines, Tab");
        int w = ui_str_width(b, n);
        ui_text(r.y + r.h - 1, r.x + (r.w > w ? r.w - w : 0), r.w, b, n, UI_C_TAB_ACTIVE);
    }
    if (top > 0 && focused) ui_text(r.y, r.x + r.w - 1, 1, "^", 1, UI_C_DIM);
}

bool ui_chat_save_markdown(const ui_chat *c, const char *path, const char *model) {
    FILE *f = fopen(path, "w");
    if (!f) return false;
    fprintf(f, "# Conversation with %s\n\n", model ? model : "a model");
    for (int i = 0; i < c->n; i++) {
        const ui_msg *m = &c->msgs[i];
        int a, b;
        shown(m, &a, &b);
        if (m->kind == UI_MSG_NOTE || m->kind == UI_MSG_ERROR) continue;
        const char *who = m->kind == UI_MSG_USER ? "You" : m->kind == UI_MSG_SYSTEM ? "System" : "Assistant";
        fprintf(f, "**%s:**", who);
        if (m->meta[0]) fprintf(f, " _(%s%s)_", m->stopped ? "stopped; " : "", m->meta);
        fprintf(f, "\n\n%.*s\n\n", b - a, m->text + a);
    }
    return fclose(f) == 0;
}
