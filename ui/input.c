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

/* inserts s[0..n) (valid UTF-8) at the cursor; what would pass UI_INPUT_MAX
 * is cut at a character boundary and flagged */
static bool put(ui_input *in, const char *s, int n) {
    if (n > UI_INPUT_MAX - in->len) {
        n = UI_INPUT_MAX - in->len;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
        in->overflow = true;
    }
    if (n <= 0 || !reserve(in, n)) return false;
    memmove(in->buf + in->cur + n, in->buf + in->cur, (size_t)(in->len - in->cur + 1));
    memcpy(in->buf + in->cur, s, (size_t)n);
    in->len += n;
    in->cur += n;
    in->gen++;
    return true;
}

static void erase(ui_input *in, int a, int b) {
    if (b <= a) return;
    memmove(in->buf + a, in->buf + b, (size_t)(in->len - b + 1));
    in->len -= b - a;
    if (in->cur >= b) in->cur -= b - a;
    else if (in->cur > a) in->cur = a;
    in->gen++;
}

/* the characters the text may hold (see input.h) */
static bool keep_cp(uint32_t cp) {
    if (cp == '\t' || cp == '\n') return true;
    if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0)) return false;
    return cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
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
    in->gen++;
    ui_input_insert(in, text, (int)strlen(text));
}

void ui_input_insert(ui_input *in, const char *text, int n) {
    if (n <= 0) return;
    /* <= 3 bytes out per byte in (amortized: a broken sequence becomes one
     * U+FFFD) and a final U+FFFD; past UI_INPUT_MAX put() cuts it anyway */
    size_t room = (size_t)n * 3 + 16;
    if (room > (size_t)UI_INPUT_MAX + 16) room = (size_t)UI_INPUT_MAX + 16;
    char *o = malloc(room);
    if (!o) return;
    size_t k = 0;
    bool full = false;
    ui_utf8_dec d = {0};
    uint32_t cps[2];
    for (int i = 0; i <= n && !full; i++) {
        int m;
        if (i == n) m = ui_utf8_flush(&d, cps);
        else {
            unsigned char c = (unsigned char)text[i];
            if (c == '\r') {
                if (i + 1 < n && text[i + 1] == '\n') continue;
                c = '\n';
            }
            m = ui_utf8_feed(&d, c, cps);
        }
        for (int j = 0; j < m; j++) {
            if (!keep_cp(cps[j])) continue;
            if (k + 4 > room) { full = true; break; }
            k += (size_t)ui_utf8_encode(cps[j], o + k);
        }
    }
    put(in, o, (int)k);
    free(o);
}

static void history_show(ui_input *in, const char *s) {
    in->len = in->cur = 0;
    in->buf[0] = 0;
    in->gen++;
    put(in, s, (int)strlen(s));
}

char *ui_input_take(ui_input *in) {
    char *t = strdup(in->buf ? in->buf : "");
    if (!t) return NULL;
    if (t[0] && (in->n_hist == 0 || strcmp(in->hist[in->n_hist - 1], t))) {
        size_t l = strlen(t);
        /* the oldest go first: at most UI_INPUT_HISTORY entries and bytes */
        while (in->n_hist > 0 && (in->n_hist == UI_INPUT_HISTORY || in->hist_bytes + l > UI_INPUT_HISTORY_BYTES)) {
            in->hist_bytes -= strlen(in->hist[0]);
            free(in->hist[0]);
            memmove(in->hist, in->hist + 1, sizeof in->hist[0] * (size_t)(in->n_hist - 1));
            in->n_hist--;
        }
        char *h = strdup(t);
        if (h) {
            in->hist[in->n_hist++] = h;
            in->hist_bytes += l;
        }
    }
    free(in->draft);
    in->draft = NULL;
    in->hist_pos = -1;
    in->len = in->cur = 0;
    in->buf[0] = 0;
    in->gen++;
    return t;
}

ui_ed_result ui_input_key(ui_input *in, ui_key key, uint32_t cp) {
    if (!in->buf) return UI_ED_IGNORED;
    int c = in->cur, ls, le, col, dummy;
    switch (key) {
    case UI_KEY_CHAR: {
        if (cp == '\n' || !keep_cp(cp)) return UI_ED_IGNORED;
        char b[4];
        return put(in, b, ui_utf8_encode(cp, b)) ? UI_ED_CHANGED : UI_ED_IGNORED;
    }
    case UI_KEY_NEWLINE: return put(in, "\n", 1) ? UI_ED_CHANGED : UI_ED_IGNORED;
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
