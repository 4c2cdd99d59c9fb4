/* input.c — the chat input's line editor. */
#include "input.h"
#include "wrap.h"

#include <stdlib.h>
#include <string.h>

void ui_input_init(ui_input *in) {
    memset(in, 0, sizeof *in);
    in->hist_pos = -1;
    in->cap = 64;
    in->buf = calloc((size_t)in->cap, 1);
}

void ui_input_free(ui_input *in) {
    free(in->buf);
    for (int i = 0; i < in->n_hist; i++) free(in->hist[i]);
    free(in->draft);
    memset(in, 0, sizeof *in);
}

static bool reserve(ui_input *in, int extra) {
    if (!in->buf) return false;
    if (in->len + extra + 1 <= in->cap) return true;
    int cap = in->cap;
    while (in->len + extra + 1 > cap) cap *= 2;
    char *b = realloc(in->buf, (size_t)cap);
    if (!b) return false;
    in->buf = b;
    in->cap = cap;
    return true;
}

static void put(ui_input *in, const char *s, int n) {
    if (n <= 0 || !reserve(in, n)) return;
    memmove(in->buf + in->cur + n, in->buf + in->cur, (size_t)(in->len - in->cur + 1));
    memcpy(in->buf + in->cur, s, (size_t)n);
    in->len += n;
    in->cur += n;
}

static void erase(ui_input *in, int a, int b) {
    if (b <= a) return;
    memmove(in->buf + a, in->buf + b, (size_t)(in->len - b + 1));
    in->len -= b - a;
    if (in->cur >= b) in->cur -= b - a;
    else if (in->cur > a) in->cur = a;
}

static int line_start(const ui_input *in, int i) {
    while (i > 0 && in->buf[i - 1] != '\n') i--;
    return i;
}

static int line_end(const ui_input *in, int i) {
    while (i < in->len && in->buf[i] != '\n') i++;
    return i;
}

static bool sp(char c) { return c == ' ' || c == '\t' || c == '\n'; }

static int word_left(const ui_input *in, int i) {
    while (i > 0 && sp(in->buf[i - 1])) i--;
    while (i > 0 && !sp(in->buf[i - 1])) i--;
    return i;
}

static int word_right(const ui_input *in, int i) {
    while (i < in->len && sp(in->buf[i])) i++;
    while (i < in->len && !sp(in->buf[i])) i++;
    return i;
}

/* the byte offset in the line starting at ls whose display column is
 * closest to col without passing it */
static int at_column(const ui_input *in, int ls, int col) {
    int le = line_end(in, ls);
    return ls + ui_str_fit(in->buf + ls, le - ls, col);
}

void ui_input_cursor_pos(const ui_input *in, int *line, int *col) {
    int l = 0;
    for (int i = 0; i < in->cur; i++) l += in->buf[i] == '\n';
    int ls = line_start(in, in->cur);
    *line = l;
    *col = ui_str_width(in->buf + ls, in->cur - ls);
}

void ui_input_set(ui_input *in, const char *text) {
    in->len = in->cur = 0;
    if (in->buf) in->buf[0] = 0;
    ui_input_insert(in, text, (int)strlen(text));
}

void ui_input_insert(ui_input *in, const char *text, int n) {
    for (int i = 0; i < n; i++) {
        char c = text[i];
        if (c == '\r') {
            if (i + 1 < n && text[i + 1] == '\n') continue;
            c = '\n';
        }
        /* other control characters are dropped, tabs kept */
        if ((unsigned char)c < 0x20 && c != '\n' && c != '\t') continue;
        if (c == 0x7F) continue;
        put(in, &c, 1);
    }
}

static void history_show(ui_input *in, const char *s) {
    in->len = in->cur = 0;
    in->buf[0] = 0;
    put(in, s, (int)strlen(s));
}

char *ui_input_take(ui_input *in) {
    char *t = strdup(in->buf ? in->buf : "");
    if (!t) return NULL;
    if (t[0] && (in->n_hist == 0 || strcmp(in->hist[in->n_hist - 1], t))) {
        if (in->n_hist == UI_INPUT_HISTORY) {
            free(in->hist[0]);
            memmove(in->hist, in->hist + 1, sizeof in->hist[0] * (UI_INPUT_HISTORY - 1));
            in->n_hist--;
        }
        char *h = strdup(t);
        if (h) in->hist[in->n_hist++] = h;
    }
    free(in->draft);
    in->draft = NULL;
    in->hist_pos = -1;
    in->len = in->cur = 0;
    in->buf[0] = 0;
    return t;
}

ui_ed_result ui_input_key(ui_input *in, ui_key key, uint32_t cp) {
    if (!in->buf) return UI_ED_IGNORED;
    int c = in->cur, ls, le, col, dummy;
    switch (key) {
    case UI_KEY_CHAR: {
        if (cp < 0x20 && cp != '\t') return UI_ED_IGNORED;
        if (cp == 0x7F || cp > 0x10FFFF) return UI_ED_IGNORED;
        char b[4];
        put(in, b, ui_utf8_encode(cp, b));
        return UI_ED_CHANGED;
    }
    case UI_KEY_NEWLINE: put(in, "\n", 1); return UI_ED_CHANGED;
    case UI_KEY_ENTER: return UI_ED_SUBMIT;
    case UI_KEY_LEFT:
        if (c == 0) return UI_ED_IGNORED;
        in->cur = ui_utf8_prev(in->buf, c);
        return UI_ED_CHANGED;
    case UI_KEY_RIGHT:
        if (c >= in->len) return UI_ED_IGNORED;
        in->cur = ui_utf8_next(in->buf, in->len, c);
        return UI_ED_CHANGED;
    case UI_KEY_WORD_LEFT:
        if (c == 0) return UI_ED_IGNORED;
        in->cur = word_left(in, c);
        return UI_ED_CHANGED;
    case UI_KEY_WORD_RIGHT:
        if (c >= in->len) return UI_ED_IGNORED;
        in->cur = word_right(in, c);
        return UI_ED_CHANGED;
    case UI_KEY_HOME:
        ls = line_start(in, c);
        if (ls == c) return UI_ED_IGNORED;
        in->cur = ls;
        return UI_ED_CHANGED;
    case UI_KEY_END:
        le = line_end(in, c);
        if (le == c) return UI_ED_IGNORED;
        in->cur = le;
        return UI_ED_CHANGED;
    case UI_KEY_BACKSPACE:
        if (c == 0) return UI_ED_IGNORED;
        erase(in, ui_utf8_prev(in->buf, c), c);
        return UI_ED_CHANGED;
    case UI_KEY_DELETE:
        if (c >= in->len) return UI_ED_IGNORED;
        erase(in, c, ui_utf8_next(in->buf, in->len, c));
        return UI_ED_CHANGED;
    case UI_KEY_KILL_START:
        ls = line_start(in, c);
        if (ls == c) return UI_ED_IGNORED;
        erase(in, ls, c);
        return UI_ED_CHANGED;
    case UI_KEY_KILL_END:
        le = line_end(in, c);
        if (le == c) {                       /* at the end of a line: join the next one */
            if (c >= in->len) return UI_ED_IGNORED;
            le = c + 1;
        }
        erase(in, c, le);
        return UI_ED_CHANGED;
    case UI_KEY_KILL_WORD:
        if (c == 0) return UI_ED_IGNORED;
        erase(in, word_left(in, c), c);
        return UI_ED_CHANGED;
    case UI_KEY_UP:
        ls = line_start(in, c);
        if (ls > 0) {                         /* the line above, same column */
            ui_input_cursor_pos(in, &dummy, &col);
            in->cur = at_column(in, line_start(in, ls - 1), col);
            return UI_ED_CHANGED;
        }
        if (in->n_hist == 0 || in->hist_pos == 0) return UI_ED_IGNORED;
        if (in->hist_pos < 0) {
            free(in->draft);
            in->draft = strdup(in->buf);
            in->hist_pos = in->n_hist - 1;
        } else in->hist_pos--;
        history_show(in, in->hist[in->hist_pos]);
        return UI_ED_CHANGED;
    case UI_KEY_DOWN:
        le = line_end(in, c);
        if (le < in->len) {                   /* the line below, same column */
            ui_input_cursor_pos(in, &dummy, &col);
            in->cur = at_column(in, le + 1, col);
            return UI_ED_CHANGED;
        }
        if (in->hist_pos < 0) return UI_ED_IGNORED;
        if (++in->hist_pos >= in->n_hist) {
            in->hist_pos = -1;
            history_show(in, in->draft ? in->draft : "");
            free(in->draft);
            in->draft = NULL;
        } else history_show(in, in->hist[in->hist_pos]);
        return UI_ED_CHANGED;
    case UI_KEY_NONE: break;
    }
    return UI_ED_IGNORED;
}
