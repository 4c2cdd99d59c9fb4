/* draw.c — theme (colours, glyphs) and text drawing over ncursesw. */
#define _XOPEN_SOURCE_EXTENDED 1
#define _GNU_SOURCE
#include "draw.h"
#include "wrap.h"

#include <curses.h>
#include <langinfo.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <wchar.h>

typedef struct {
    short fg256, bg256, fg8, bg8;
    int a_color;   /* attributes added with colours */
    int a_mono;    /* attributes without colours */
} theme_entry;

#define D (-1)
static const theme_entry theme[UI_C__N] = {
    [UI_C_NORMAL]      = {D, D, D, D, 0, 0},
    [UI_C_USER]        = {117, D, COLOR_CYAN, D, 0, A_BOLD},
    [UI_C_USER_HEAD]   = {75, D, COLOR_CYAN, D, A_BOLD, A_BOLD | A_UNDERLINE},
    [UI_C_ASSIST]      = {230, D, COLOR_GREEN, D, 0, 0},
    [UI_C_ASSIST_HEAD] = {114, D, COLOR_GREEN, D, A_BOLD, A_UNDERLINE},
    [UI_C_SYSTEM]      = {180, D, COLOR_YELLOW, D, 0, A_DIM},
    [UI_C_NOTE]        = {245, D, D, D, 0, A_DIM},
    [UI_C_ERROR]       = {203, D, COLOR_RED, D, A_BOLD, A_BOLD},
    [UI_C_BAR]         = {252, 236, COLOR_WHITE, COLOR_BLUE, 0, A_REVERSE},
    [UI_C_TAB]         = {250, 236, COLOR_WHITE, COLOR_BLUE, 0, A_REVERSE},
    [UI_C_TAB_ACTIVE]  = {16, 110, COLOR_BLACK, COLOR_CYAN, A_BOLD, A_BOLD},
    [UI_C_BUSY]        = {221, 236, COLOR_YELLOW, COLOR_BLUE, A_BOLD, A_REVERSE | A_BOLD},
    [UI_C_STATUS]      = {250, 235, COLOR_BLACK, COLOR_WHITE, 0, A_REVERSE},
    [UI_C_KEY]         = {222, 235, COLOR_BLUE, COLOR_WHITE, A_BOLD, A_REVERSE | A_BOLD},
    [UI_C_BORDER]      = {240, D, COLOR_BLUE, D, 0, 0},
    [UI_C_TITLE]       = {180, D, COLOR_YELLOW, D, A_BOLD, A_BOLD},
    [UI_C_DIM]         = {244, D, D, D, 0, A_DIM},
    [UI_C_VALUE]       = {255, D, D, D, A_BOLD, A_BOLD},
    [UI_C_SPARK]       = {114, D, COLOR_GREEN, D, 0, 0},
    [UI_C_SPARK2]      = {75, D, COLOR_CYAN, D, 0, 0},
    [UI_C_GOOD]        = {114, D, COLOR_GREEN, D, A_BOLD, A_BOLD},
    [UI_C_WARN]        = {221, D, COLOR_YELLOW, D, A_BOLD, A_BOLD},
    [UI_C_BAD]         = {203, D, COLOR_RED, D, A_BOLD, A_BOLD | A_UNDERLINE},
    [UI_C_L_ABSENT]    = {239, D, D, D, 0, A_DIM},
    [UI_C_L_LOADING]   = {221, D, COLOR_YELLOW, D, A_BOLD, 0},
    [UI_C_L_RESIDENT]  = {114, D, COLOR_GREEN, D, 0, 0},
    [UI_C_L_PINNED]    = {75, D, COLOR_BLUE, D, A_BOLD, A_BOLD},
    [UI_C_L_MAPPED]    = {109, D, COLOR_CYAN, D, 0, 0},
    [UI_C_MATCH]       = {16, 221, COLOR_BLACK, COLOR_YELLOW, 0, A_REVERSE},
    [UI_C_SELECT]      = {255, 238, COLOR_BLACK, COLOR_CYAN, A_BOLD, A_REVERSE},
    [UI_C_INPUT]       = {D, D, D, D, 0, 0},
};
#undef D

static int n_colors;     /* 256, 8 or 0 */
static bool utf8;
static int attrs[UI_C__N];

static const ui_glyphs glyphs_utf8 = {
    .hline = "─", .vline = "│",
    .spark = {" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"},
    .bar_full = "█", .bar_empty = "░", .cursor_row = "▌",
    .layer = {"·", "░", "▓", "█", "▪"},
    .ellipsis = "…", .dot = "·", .arrow = "›",
};
static const ui_glyphs glyphs_ascii = {
    .hline = "-", .vline = "|",
    .spark = {" ", "_", ".", "-", "~", "=", "*", "#", "@"},
    .bar_full = "#", .bar_empty = ".", .cursor_row = ">",
    .layer = {".", "~", "=", "#", "m"},
    .ellipsis = "~", .dot = "|", .arrow = ">",
};

void ui_theme_init(void) {
    const char *cs = nl_langinfo(CODESET);
    utf8 = cs && (!strcmp(cs, "UTF-8") || !strcmp(cs, "utf8"));
    n_colors = 0;
    if (has_colors() && start_color() == OK) {
        bool dflt = use_default_colors() == OK;
        n_colors = COLORS >= 256 ? 256 : 8;
        for (int i = 1; i < UI_C__N && i < COLOR_PAIRS; i++) {
            const theme_entry *t = &theme[i];
            short fg = n_colors == 256 ? t->fg256 : t->fg8;
            short bg = n_colors == 256 ? t->bg256 : t->bg8;
            if (!dflt) {
                if (fg < 0) fg = COLOR_WHITE;
                if (bg < 0) bg = COLOR_BLACK;
            }
            init_pair((short)i, fg, bg);
        }
    }
    for (int i = 0; i < UI_C__N; i++) {
        if (n_colors && i < COLOR_PAIRS) attrs[i] = (int)COLOR_PAIR(i) | theme[i].a_color;
        else attrs[i] = theme[i].a_mono;
    }
    /* 8 colours: the dim greys of the 256 palette become A_DIM */
    if (n_colors == 8) {
        attrs[UI_C_NOTE] |= A_DIM;
        attrs[UI_C_DIM] |= A_DIM;
        attrs[UI_C_L_ABSENT] |= A_DIM;
    }
}

int ui_theme_colors(void) { return n_colors; }
bool ui_theme_utf8(void) { return utf8; }
const ui_glyphs *ui_g(void) { return utf8 ? &glyphs_utf8 : &glyphs_ascii; }
int ui_attr(ui_color c) { return (unsigned)c < UI_C__N ? attrs[c] : 0; }

int ui_text(int y, int x, int maxw, const char *s, int n, ui_color c) {
    if (maxw <= 0 || n <= 0 || y < 0 || x < 0) return 0;
    wchar_t buf[512];
    int k = 0, cols = 0;
    for (int i = 0; i < n && k < (int)(sizeof buf / sizeof buf[0]) - 1;) {
        uint32_t cp;
        int b = ui_utf8_decode(s + i, n - i, &cp);
        if (b == 0) break;
        i += b;
        int w = ui_cp_width(cp);
        if (cp == '\t') cp = ' ';
        else if (w == 0) {
            /* combining marks join the character before; controls are skipped */
            if (cp >= 0x20 && !(cp >= 0x7F && cp < 0xA0) && k > 0 && utf8) buf[k++] = (wchar_t)cp;
            continue;
        } else if (!utf8 && cp >= 0x80) {
            cp = '?';
            w = 1;
        } else if (wcwidth((wchar_t)cp) < 0) {
            cp = UI_REPLACEMENT;
        }
        if (cols + w > maxw) break;
        buf[k++] = (wchar_t)cp;
        cols += w;
    }
    if (k == 0) return 0;
    buf[k] = 0;
    attrset(ui_attr(c));
    mvaddnwstr(y, x, buf, k);
    attrset(A_NORMAL);
    return cols;
}

int ui_textf(int y, int x, int maxw, ui_color c, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return 0;
    if (n >= (int)sizeof buf) n = (int)sizeof buf - 1;
    return ui_text(y, x, maxw, buf, n, c);
}

void ui_fill(ui_rect r, ui_color c) {
    for (int i = 0; i < r.h; i++) mvhline(r.y + i, r.x, ' ' | (chtype)ui_attr(c), r.w);
}

static void repeat(int y, int x, int n, const char *g, ui_color c) {
    char buf[4 * 512 + 1];
    int gl = (int)strlen(g), k = 0;
    if (n > 512) n = 512;
    for (int i = 0; i < n; i++) { memcpy(buf + k, g, (size_t)gl); k += gl; }
    ui_text(y, x, n, buf, k, c);
}

void ui_hline(int y, int x, int w, ui_color c) { repeat(y, x, w, ui_g()->hline, c); }

void ui_vline(int y, int x, int h, ui_color c) {
    for (int i = 0; i < h; i++) ui_text(y + i, x, 1, ui_g()->vline, (int)strlen(ui_g()->vline), c);
}

void ui_rule(int y, int x, int w, const char *title, ui_color tc) {
    ui_hline(y, x, w, UI_C_BORDER);
    if (title && *title && w > 4) {
        int n = (int)strlen(title);
        int cw = ui_text(y, x + 2, w - 3, " ", 1, tc);
        cw += ui_text(y, x + 2 + cw, w - 3 - cw, title, n, tc);
        ui_text(y, x + 2 + cw, w - 2 - cw, " ", 1, tc);
    }
}

void ui_fmt_bytes(char *buf, int cap, double b) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4) { b /= 1024; i++; }
    if (i == 0) snprintf(buf, (size_t)cap, "%.0f B", b);
    else snprintf(buf, (size_t)cap, b < 10 ? "%.2f %s" : b < 100 ? "%.1f %s" : "%.0f %s", b, u[i]);
}
