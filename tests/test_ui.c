/* test_ui.c — the terminal app's pure parts: UTF-8 and column widths, word
 * wrapping (wide characters, emoji, combining marks, invalid bytes), the
 * screen layout from 1x1 to 200x60 (80x24, 60x16, 20x6 in detail), the line
 * editor's keys and history, the rule for typed and pasted bytes (invalid
 * UTF-8, control characters) and the input's size limits, and sparklines.
 * No terminal needed. */
#include "input.h"
#include "layout.h"
#include "panels.h"
#include "wrap.h"

#include <criterion/criterion.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void utf8_locale(void) {
    if (!setlocale(LC_ALL, "C.UTF-8") && !setlocale(LC_ALL, "en_US.UTF-8"))
        cr_skip_test("no UTF-8 locale");
}

TestSuite(wrap, .init = utf8_locale);
TestSuite(editor, .init = utf8_locale);

/* ---- UTF-8 and widths ---------------------------------------------------- */

Test(wrap, decode_and_widths) {
    uint32_t cp;
    cr_assert_eq(ui_utf8_decode("A", 1, &cp), 1); cr_assert_eq(cp, 'A');
    cr_assert_eq(ui_utf8_decode("é", 2, &cp), 2); cr_assert_eq(cp, 0xE9);
    cr_assert_eq(ui_utf8_decode("漢", 3, &cp), 3); cr_assert_eq(cp, 0x6F22);
    cr_assert_eq(ui_utf8_decode("🙂", 4, &cp), 4); cr_assert_eq(cp, 0x1F642);
    /* invalid: a lone continuation byte, an overlong form, a surrogate */
    cr_assert_eq(ui_utf8_decode("\x80", 1, &cp), 1); cr_assert_eq(cp, UI_REPLACEMENT);
    cr_assert_eq(ui_utf8_decode("\xC0\xAF", 2, &cp), 1); cr_assert_eq(cp, UI_REPLACEMENT);
    cr_assert_eq(ui_utf8_decode("\xED\xA0\x80", 3, &cp), 1); cr_assert_eq(cp, UI_REPLACEMENT);
    /* unfinished: the rest of the character has not arrived */
    cr_assert_eq(ui_utf8_decode("\xF0\x9F\x99", 3, &cp), 0);
    cr_assert_eq(ui_utf8_complete_len("ab\xF0\x9F\x99", 5), 2);
    cr_assert_eq(ui_utf8_complete_len("ab\xF0\x9F\x99\x82", 6), 6);
    cr_assert_eq(ui_utf8_complete_len("ab\x80", 3), 3);   /* invalid is not "unfinished" */

    cr_assert_eq(ui_str_width("hello", 5), 5);
    cr_assert_eq(ui_str_width("漢字", 6), 4);
    cr_assert_eq(ui_str_width("🙂", 4), 2);
    cr_assert_eq(ui_str_width("e\xCC\x81", 3), 1);       /* e + combining acute */
    cr_assert_eq(ui_str_width("a\x01" "b", 3), 2);       /* controls take no column */
    cr_assert_eq(ui_str_fit("漢字x", 7, 3), 3);           /* only 漢 fits in 3 columns */
    cr_assert_eq(ui_str_fit("漢字x", 7, 5), 7);

    char b[4];
    cr_assert_eq(ui_utf8_encode(0x1F642, b), 4);
    cr_assert(!memcmp(b, "🙂", 4));
    cr_assert_eq(ui_utf8_prev("a🙂", 5), 1);
    cr_assert_eq(ui_utf8_next("a🙂", 5, 1), 5);
}

/* ---- wrapping ------------------------------------------------------------- */

static int wrap(const char *s, int w, ui_line *L, int cap) { return ui_wrap(s, (int)strlen(s), w, L, cap); }

static void expect_lines(const char *s, int w, const char *const *want) {
    ui_line L[64];
    int n = wrap(s, w, L, 64);
    int k = 0;
    while (want[k]) k++;
    cr_assert_eq(n, k, "'%s' at %d: %d lines, expected %d", s, w, n, k);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(L[i].len, (int)strlen(want[i]), "'%s' at %d, line %d: '%.*s' expected '%s'", s, w, i, L[i].len, s + L[i].start, want[i]);
        cr_assert(!memcmp(s + L[i].start, want[i], (size_t)L[i].len), "'%s' line %d: '%.*s' expected '%s'", s, i, L[i].len, s + L[i].start, want[i]);
        cr_assert_eq(L[i].cols, ui_str_width(want[i], (int)strlen(want[i])));
    }
}

#define LINES(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(wrap, words) {
    expect_lines("hello world foo", 11, LINES("hello world", "foo"));
    expect_lines("hello world foo", 80, LINES("hello world foo"));
    expect_lines("aaa   bbb", 4, LINES("aaa", "bbb"));          /* spaces at a break are dropped */
    expect_lines("abcdefghij", 4, LINES("abcd", "efgh", "ij")); /* a long word is cut */
    expect_lines("ab abcdefgh", 4, LINES("ab", "abcd", "efgh"));
    expect_lines("a\n\nb", 10, LINES("a", "", "b"));            /* empty paragraphs stay */
    expect_lines("x\n", 10, LINES("x", ""));
    expect_lines("", 10, LINES(""));
    expect_lines("  indented", 20, LINES("  indented"));        /* leading spaces kept */
    expect_lines("word ", 4, LINES("word"));                    /* the overflowing space goes */
    expect_lines("one two", 1, LINES("o", "n", "e", "t", "w", "o"));
}

Test(wrap, wide_and_emoji) {
    /* CJK breaks between characters; no line wider than the width */
    expect_lines("漢字漢字漢字", 5, LINES("漢字", "漢字", "漢字"));
    expect_lines("漢字漢字漢字", 4, LINES("漢字", "漢字", "漢字"));
    expect_lines("hi 🙂🙂🙂", 4, LINES("hi", "🙂🙂", "🙂"));
    expect_lines("ok 日本語のテキスト", 8, LINES("ok 日本", "語のテキ", "スト"));
    /* a character wider than the width gets a line of its own */
    expect_lines("漢a", 1, LINES("漢", "a"));
    /* combining marks stay with their letter */
    expect_lines("e\xCC\x81" "e\xCC\x81" "e\xCC\x81", 2, LINES("e\xCC\x81" "e\xCC\x81", "e\xCC\x81"));
}

Test(wrap, invalid_and_unfinished) {
    ui_line L[8];
    const char *s = "ab\xFF\xFE" "cd\xF0\x9F";   /* invalid bytes, then half an emoji */
    int n = ui_wrap(s, (int)strlen(s), 3, L, 8);
    cr_assert_eq(n, 2);
    cr_assert_eq(L[0].cols, 3);    /* a b U+FFFD */
    cr_assert_eq(L[1].start, 3);
}

/* random text: every line fits (or is one character), the lines are in
 * order, and together they hold every character that is not a space at a
 * break or a newline */
Test(wrap, random_property) {
    const char *pieces[] = {"a", "bc", "word", " ", "  ", "\n", "漢", "字", "🙂", "é", "e\xCC\x81", "\t", "longlonglongword"};
    uint32_t x = 12345;
    char s[512];
    ui_line L[600];
    for (int iter = 0; iter < 3000; iter++) {
        int n = 0;
        int k = (int)(x % 40);
        for (int i = 0; i < k; i++) {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            const char *p = pieces[x % (sizeof pieces / sizeof pieces[0])];
            size_t pl = strlen(p);
            if (n + pl >= sizeof s) break;
            memcpy(s + n, p, pl);
            n += (int)pl;
        }
        s[n] = 0;
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        int w = 1 + (int)(x % 30);
        int nl = ui_wrap(s, n, w, L, 600);
        cr_assert(nl >= 1 && nl <= 600);
        int pos = 0;
        for (int i = 0; i < nl; i++) {
            cr_assert(L[i].start >= pos, "lines out of order ('%s' at %d)", s, w);
            cr_assert(L[i].start + L[i].len <= n);
            cr_assert_eq(L[i].cols, ui_str_width(s + L[i].start, L[i].len));
            if (L[i].cols > w) {
                uint32_t cp;
                cr_assert_eq(ui_utf8_decode(s + L[i].start, L[i].len, &cp), L[i].len, "line %d too wide ('%s' at %d)", i, s, w);
            }
            /* what lies between two lines is spaces and at most one newline */
            int nls = 0;
            for (int j = pos; j < L[i].start; j++) {
                cr_assert(s[j] == ' ' || s[j] == '\t' || s[j] == '\n', "'%s' at %d: byte %d (0x%02x) lost", s, w, j, (unsigned char)s[j]);
                nls += s[j] == '\n';
            }
            cr_assert(nls <= 1);
            for (int j = L[i].start; j < L[i].start + L[i].len; j++) cr_assert_neq(s[j], '\n');
            pos = L[i].start + L[i].len;
        }
        for (int j = pos; j < n; j++) cr_assert(s[j] == ' ' || s[j] == '\t' || s[j] == '\n');
    }
}

/* ---- layout ------------------------------------------------------------------ */

static bool inside(ui_rect r, int cols, int rows) {
    if (r.h == 0 && r.w == 0) return true;
    return r.h > 0 && r.w > 0 && r.y >= 0 && r.x >= 0 && r.y + r.h <= rows && r.x + r.w <= cols;
}

static bool overlap(ui_rect a, ui_rect b) {
    if (!a.h || !a.w || !b.h || !b.w) return false;
    return a.y < b.y + b.h && b.y < a.y + a.h && a.x < b.x + b.w && b.x < a.x + a.w;
}

static void check_layout(int cols, int rows, bool panels, int input) {
    ui_layout l;
    ui_layout_compute(cols, rows, panels, input, &l);
    ui_rect r[6] = {l.bar, l.main, l.sep, l.input, l.status, l.panels};
    int area = 0;
    for (int i = 0; i < 6; i++) {
        cr_assert(inside(r[i], cols, rows), "%dx%d: rect %d (%d,%d %dx%d) outside", cols, rows, i, r[i].y, r[i].x, r[i].h, r[i].w);
        for (int j = 0; j < i; j++) cr_assert(!overlap(r[i], r[j]), "%dx%d: rects %d and %d overlap", cols, rows, i, j);
        area += r[i].h * r[i].w;
    }
    cr_assert_eq(area, cols * rows, "%dx%d (panels %d, input %d): %d cells covered", cols, rows, panels, input, area);
    if (rows >= 3) cr_assert(l.main.h >= 1, "%dx%d: no conversation line", cols, rows);
    if (input > 0 && rows >= 2) cr_assert(l.input.h >= 1, "%dx%d: no input line", cols, rows);
    if (input == 0) cr_assert_eq(l.input.h, 0);
    if (cols < UI_PANELS_MIN_COLS || rows < UI_PANELS_MIN_ROWS || !panels) cr_assert_eq(l.mode, UI_PANELS_HIDDEN);
    if (l.mode == UI_PANELS_HIDDEN) cr_assert_eq(l.panels.h, 0);
}

Test(layout, every_size) {
    for (int c = 1; c <= 200; c += (c < 70 ? 1 : 7))
        for (int r = 1; r <= 60; r++)
            for (int in = 0; in <= 40; in += 8) {
                check_layout(c, r, true, in);
                check_layout(c, r, false, in);
            }
}

Test(layout, usual_sizes) {
    ui_layout l;
    /* 80x24: usable, panels below the chat */
    ui_layout_compute(80, 24, true, 1, &l);
    cr_assert_eq(l.mode, UI_PANELS_BELOW);
    cr_assert_eq(l.bar.h, 1);
    cr_assert_eq(l.status.y, 23);
    cr_assert(l.main.h >= 10, "80x24: %d conversation lines", l.main.h);
    cr_assert_eq(l.main.w, 80);
    cr_assert_eq(l.sep.h, 1);
    cr_assert(l.panels.y > l.input.y && l.panels.h >= 7 && l.panels.w == 80);
    /* 60x16: the smallest with panels */
    ui_layout_compute(60, 16, true, 1, &l);
    cr_assert_eq(l.mode, UI_PANELS_BELOW);
    cr_assert(l.main.h >= 3);
    /* below 60x16: chat only */
    ui_layout_compute(59, 24, true, 1, &l);
    cr_assert_eq(l.mode, UI_PANELS_HIDDEN);
    ui_layout_compute(80, 15, true, 1, &l);
    cr_assert_eq(l.mode, UI_PANELS_HIDDEN);
    cr_assert_eq(l.main.w, 80);
    /* 20x6: bar, conversation, input, status */
    ui_layout_compute(20, 6, true, 3, &l);
    cr_assert_eq(l.mode, UI_PANELS_HIDDEN);
    cr_assert_eq(l.bar.h, 1);
    cr_assert_eq(l.status.h, 1);
    cr_assert(l.main.h >= 2 && l.input.h >= 1);
    cr_assert_eq(l.bar.h + l.main.h + l.sep.h + l.input.h + l.status.h, 6);
    /* 100x30 and 130x40: panels beside the chat */
    ui_layout_compute(100, 30, true, 1, &l);
    cr_assert_eq(l.mode, UI_PANELS_SIDE);
    cr_assert(l.panels.w >= 34 && l.main.w + l.panels.w == 100);
    cr_assert_eq(l.panels.h, 28);
    ui_layout_compute(130, 40, true, 1, &l);
    cr_assert_eq(l.mode, UI_PANELS_SIDE);
    cr_assert(l.main.w >= 80);
    /* the input box grows with its text, up to a third of the body */
    ui_layout_compute(100, 30, true, 50, &l);
    cr_assert_eq(l.input.h, 28 / 3);
    /* panels off: the chat takes the width */
    ui_layout_compute(130, 40, false, 1, &l);
    cr_assert_eq(l.main.w, 130);
}

/* ---- line editor ---------------------------------------------------------- */

static void type(ui_input *in, const char *s) {
    for (int i = 0; s[i];) {
        uint32_t cp;
        int k = ui_utf8_decode(s + i, (int)strlen(s + i), &cp);
        ui_input_key(in, UI_KEY_CHAR, cp);
        i += k;
    }
}

#define KEY(in, k) ui_input_key(in, UI_KEY_##k, 0)

Test(editor, typing_and_moving) {
    ui_input in;
    ui_input_init(&in);
    type(&in, "hello");
    cr_assert_str_eq(in.buf, "hello");
    KEY(&in, LEFT); KEY(&in, LEFT);
    type(&in, "X");
    cr_assert_str_eq(in.buf, "helXlo");
    KEY(&in, HOME);
    type(&in, "[");
    KEY(&in, END);
    type(&in, "]");
    cr_assert_str_eq(in.buf, "[helXlo]");
    /* multi-byte characters move and delete as one */
    ui_input_set(&in, "a🙂b漢");
    KEY(&in, LEFT); KEY(&in, LEFT);
    cr_assert_eq(in.cur, 5);          /* after 🙂 */
    KEY(&in, BACKSPACE);
    cr_assert_str_eq(in.buf, "ab漢");
    KEY(&in, DELETE);
    cr_assert_str_eq(in.buf, "a漢");
    KEY(&in, RIGHT);
    cr_assert_eq(in.cur, in.len);
    cr_assert_eq(KEY(&in, RIGHT), UI_ED_IGNORED);
    /* control characters are not inserted */
    cr_assert_eq(ui_input_key(&in, UI_KEY_CHAR, 7), UI_ED_IGNORED);
    ui_input_free(&in);
}

Test(editor, kill_keys) {
    ui_input in;
    ui_input_init(&in);
    ui_input_set(&in, "one two  three");
    KEY(&in, KILL_WORD);                    /* Ctrl-W */
    cr_assert_str_eq(in.buf, "one two  ");
    KEY(&in, KILL_WORD);
    cr_assert_str_eq(in.buf, "one ");
    ui_input_set(&in, "alpha beta");
    KEY(&in, WORD_LEFT);
    cr_assert_eq(in.cur, 6);
    KEY(&in, KILL_END);                     /* Ctrl-K */
    cr_assert_str_eq(in.buf, "alpha ");
    KEY(&in, LEFT);
    KEY(&in, KILL_START);                   /* Ctrl-U */
    cr_assert_str_eq(in.buf, " ");
    cr_assert_eq(in.cur, 0);
    /* on a line of a multi-line text, the kills stay on that line */
    ui_input_set(&in, "first\nsecond\nthird");
    KEY(&in, UP);                           /* to "second", column 5 */
    KEY(&in, KILL_START);
    cr_assert_str_eq(in.buf, "first\nd\nthird");
    KEY(&in, KILL_END);
    cr_assert_str_eq(in.buf, "first\n\nthird");
    KEY(&in, KILL_END);                     /* at the end of a line: joins the next */
    cr_assert_str_eq(in.buf, "first\nthird");
    ui_input_free(&in);
}

Test(editor, newlines_and_lines) {
    ui_input in;
    ui_input_init(&in);
    type(&in, "ab");
    cr_assert_eq(KEY(&in, NEWLINE), UI_ED_CHANGED);
    type(&in, "cdef");
    cr_assert_str_eq(in.buf, "ab\ncdef");
    int line, col;
    ui_input_cursor_pos(&in, &line, &col);
    cr_assert_eq(line, 1); cr_assert_eq(col, 4);
    KEY(&in, UP);                           /* column 4 does not exist above: end of "ab" */
    ui_input_cursor_pos(&in, &line, &col);
    cr_assert_eq(line, 0); cr_assert_eq(col, 2);
    KEY(&in, HOME);
    KEY(&in, DOWN);
    ui_input_cursor_pos(&in, &line, &col);
    cr_assert_eq(line, 1); cr_assert_eq(col, 0);
    KEY(&in, END);
    cr_assert_eq(in.cur, in.len);
    /* a paste keeps its lines; CR LF and CR become LF, other controls go */
    ui_input_set(&in, "");
    ui_input_insert(&in, "x\r\ny\rz\x07!", 9);
    cr_assert_str_eq(in.buf, "x\ny\nz!");
    cr_assert_eq(KEY(&in, ENTER), UI_ED_SUBMIT);
    char *t = ui_input_take(&in);
    cr_assert_str_eq(t, "x\ny\nz!");
    free(t);
    cr_assert_eq(in.len, 0);
    ui_input_free(&in);
}

Test(editor, history) {
    ui_input in;
    ui_input_init(&in);
    const char *sent[] = {"first", "second", "third"};
    for (int i = 0; i < 3; i++) {
        type(&in, sent[i]);
        free(ui_input_take(&in));
    }
    free(ui_input_take(&in));               /* empty: not recorded */
    type(&in, "third");
    free(ui_input_take(&in));               /* a repeat: not recorded */
    cr_assert_eq(in.n_hist, 3);
    type(&in, "draft");
    KEY(&in, UP);
    cr_assert_str_eq(in.buf, "third");
    KEY(&in, UP);
    KEY(&in, UP);
    cr_assert_str_eq(in.buf, "first");
    cr_assert_eq(KEY(&in, UP), UI_ED_IGNORED);   /* the oldest */
    KEY(&in, DOWN);
    cr_assert_str_eq(in.buf, "second");
    KEY(&in, DOWN);
    KEY(&in, DOWN);
    cr_assert_str_eq(in.buf, "draft");      /* back to what was being typed */
    cr_assert_eq(KEY(&in, DOWN), UI_ED_IGNORED);
    /* a multi-line entry: Up moves inside it before going further back */
    ui_input_set(&in, "");
    ui_input_insert(&in, "l1\nl2", 5);
    free(ui_input_take(&in));
    KEY(&in, UP);
    cr_assert_str_eq(in.buf, "l1\nl2");
    KEY(&in, UP);
    cr_assert_str_eq(in.buf, "l1\nl2");     /* moved to its first line */
    KEY(&in, UP);
    cr_assert_str_eq(in.buf, "third");
    ui_input_free(&in);
}

/* ---- keys and pastes as bytes: the rule for invalid UTF-8 and controls ---- */

/* decodes s[0..n) byte by byte (then the end of the stream) */
static int feed_all(const char *s, int n, uint32_t *out) {
    ui_utf8_dec d = {0};
    int k = 0;
    for (int i = 0; i < n; i++) k += ui_utf8_feed(&d, (unsigned char)s[i], out + k);
    k += ui_utf8_flush(&d, out + k);
    return k;
}

/* a second implementation of the maximal-subpart rule, written from the
 * table in the Unicode standard (3.9, Table 3-7) */
static int ref_decode(const unsigned char *s, int n, uint32_t *out) {
    int k = 0;
    for (int i = 0; i < n;) {
        unsigned char b = s[i];
        int len = b < 0x80 ? 1 : b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3 : b >= 0xF0 && b <= 0xF4 ? 4 : 0;
        if (len == 1) { out[k++] = b; i++; continue; }
        if (len == 0) { out[k++] = UI_REPLACEMENT; i++; continue; }
        unsigned char lo = b == 0xE0 ? 0xA0 : b == 0xF0 ? 0x90 : 0x80;
        unsigned char hi = b == 0xED ? 0x9F : b == 0xF4 ? 0x8F : 0xBF;
        int j = 1;
        uint32_t v = b & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
        while (j < len && i + j < n && s[i + j] >= (j == 1 ? lo : 0x80) && s[i + j] <= (j == 1 ? hi : 0xBF)) {
            v = v << 6 | (s[i + j] & 0x3F);
            j++;
        }
        out[k++] = j == len ? v : UI_REPLACEMENT;
        i += j;
    }
    return k;
}

Test(wrap, utf8_stream_maximal_subparts) {
    /* the expected code points are Python's bytes.decode("utf-8", "replace") */
    static const struct { const char *in; int n; uint32_t out[6]; int k; } cases[] = {
        {"A\xc3(B", 4, {'A', 0xFFFD, '(', 'B'}, 4},
        {"\xe2\x82" "C", 3, {0xFFFD, 'C'}, 2},
        {"\xff", 1, {0xFFFD}, 1},
        {"\xed\xa0\x80", 3, {0xFFFD, 0xFFFD, 0xFFFD}, 3},       /* a surrogate */
        {"\xf0\x9f\x98\x80", 4, {0x1F600}, 1},
        {"\xc0\xaf", 2, {0xFFFD, 0xFFFD}, 2},                    /* overlong */
        {"\xf4\x90\x80\x80", 4, {0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}, 4},   /* > U+10FFFF */
        {"\xe0\x80", 2, {0xFFFD, 0xFFFD}, 2},
        {"\x80\x80", 2, {0xFFFD, 0xFFFD}, 2},
        {"\xf0\x9f\x98", 3, {0xFFFD}, 1},                        /* cut short at the end */
        {"\xf1\x80\x80\xc3\xa9", 5, {0xFFFD, 0xE9}, 2},
        {"\xc2", 1, {0xFFFD}, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint32_t out[16];
        int k = feed_all(cases[c].in, cases[c].n, out);
        cr_assert_eq(k, cases[c].k, "case %zu: %d code points", c, k);
        for (int i = 0; i < k; i++) cr_assert_eq(out[i], cases[c].out[i], "case %zu, code point %d: %x", c, i, out[i]);
    }
    /* random bytes (mostly high ones) against the reference */
    srand(11);
    for (int t = 0; t < 3000; t++) {
        unsigned char b[40];
        int n = rand() % 40;
        for (int i = 0; i < n; i++) {
            int r = rand() % 10;
            b[i] = (unsigned char)(r < 2 ? 0x20 + rand() % 0x5F : r < 6 ? 0x80 + rand() % 0x40 : 0xC0 + rand() % 0x40);
        }
        uint32_t x[64], y[64];
        int kx = feed_all((const char *)b, n, x), ky = ref_decode(b, n, y);
        cr_assert_eq(kx, ky, "case %d: %d vs %d code points", t, kx, ky);
        for (int i = 0; i < kx; i++) cr_assert_eq(x[i], y[i], "case %d, code point %d", t, i);
    }
}

Test(editor, paste_rule) {
    ui_input in;
    ui_input_init(&in);
    /* line breaks of every kind, a tab, C0 controls, NUL, DEL, C1 (U+0085,
     * U+009B), broken sequences, one cut short at the end */
    static const char paste[] = "p1\r\np2\rp3\np4\tq\x01\x02\x7f\xc2\x85r\xe2\x82s\x00t\x1b\x1bu\xc2\x9bv\xc3";
    ui_input_insert(&in, paste, (int)sizeof paste - 1);
    cr_assert_str_eq(in.buf, "p1\np2\np3\np4\tqr\xef\xbf\xbdstuv\xef\xbf\xbd");
    /* typed: control characters and C1 are not text */
    ui_input_set(&in, "");
    uint32_t typed[] = {'a', 0x07, 0x1B, 0x7F, 0x85, 0x9B, 0xD800, 0x110000, '\n', 0xFFFD, 0xE9, '\t', 'b'};
    for (size_t i = 0; i < sizeof typed / sizeof typed[0]; i++) ui_input_key(&in, UI_KEY_CHAR, typed[i]);
    cr_assert_str_eq(in.buf, "a\xef\xbf\xbd\xc3\xa9\tb");
    /* the text is always valid UTF-8, whatever is pasted */
    srand(12);
    for (int t = 0; t < 500; t++) {
        char b[64];
        int n = rand() % 64;
        for (int i = 0; i < n; i++) b[i] = (char)(rand() & 0xFF);
        ui_input_set(&in, "");
        ui_input_insert(&in, b, n);
        cr_assert_eq((int)strlen(in.buf), in.len);
        for (int i = 0; i < in.len;) {
            uint32_t cp;
            int k = ui_utf8_decode(in.buf + i, in.len - i, &cp);
            cr_assert_gt(k, 0, "case %d: unfinished at %d", t, i);
            cr_assert(cp == '\t' || cp == '\n' || (cp >= 0x20 && cp != 0x7F && !(cp >= 0x80 && cp < 0xA0)),
                      "case %d: control %x kept", t, cp);
            if (cp == UI_REPLACEMENT) cr_assert(!memcmp(in.buf + i, "\xef\xbf\xbd", 3), "case %d: invalid byte kept", t);
            i += k;
        }
    }
    ui_input_free(&in);
}

Test(editor, size_limits) {
    ui_input in;
    ui_input_init(&in);
    /* a paste past UI_INPUT_MAX is cut at a character boundary and flagged */
    int n = UI_INPUT_MAX + 1000;
    char *big = malloc((size_t)n);
    for (int i = 0; i + 3 <= n; i += 3) memcpy(big + i, "\xe6\xbc\xa2", 3);   /* 漢 */
    n -= n % 3;
    ui_input_insert(&in, big, n);
    cr_assert(in.overflow);
    cr_assert_leq(in.len, UI_INPUT_MAX);
    cr_assert_geq(in.len, UI_INPUT_MAX - 3);
    cr_assert_eq(in.len % 3, 0);
    cr_assert_eq(in.cur, in.len);
    in.overflow = false;
    while (in.len < UI_INPUT_MAX) cr_assert_eq(ui_input_key(&in, UI_KEY_CHAR, 'x'), UI_ED_CHANGED);
    cr_assert(!in.overflow);
    cr_assert_eq(ui_input_key(&in, UI_KEY_CHAR, 'x'), UI_ED_IGNORED);   /* full */
    cr_assert_eq(ui_input_key(&in, UI_KEY_NEWLINE, 0), UI_ED_IGNORED);
    cr_assert(in.overflow);
    cr_assert_eq(in.len, UI_INPUT_MAX);
    /* a 1 MiB paste in the middle of a text goes in in one step */
    ui_input_set(&in, "ab");
    in.cur = 1;
    ui_input_insert(&in, big, 1 << 20);
    cr_assert_eq(in.len, 2 + (1 << 20) - (1 << 20) % 3 + ((1 << 20) % 3 ? 3 : 0));
    cr_assert_eq(in.buf[0], 'a');
    cr_assert_eq(in.buf[in.len - 1], 'b');
    /* the input history keeps at most UI_INPUT_HISTORY_BYTES */
    for (int i = 0; i < 5; i++) {
        ui_input_set(&in, "");
        big[0] = (char)('a' + i);   /* distinct entries */
        ui_input_insert(&in, big, 3 << 20);
        free(ui_input_take(&in));
        cr_assert_leq(in.hist_bytes, (size_t)UI_INPUT_HISTORY_BYTES);
    }
    cr_assert_eq(in.n_hist, 2);
    free(big);
    ui_input_free(&in);
}

/* ---- sparklines ---------------------------------------------------------------- */

Test(panels, sparkline) {
    static const char *const lv[9] = {" ", "1", "2", "3", "4", "5", "6", "7", "8"};
    ui_series s;
    memset(&s, 0, sizeof s);
    char out[UI_SERIES_N * 4 + 1];
    /* nothing yet: all blank */
    cr_assert_eq(ui_sparkline(&s, 10, 0, lv, out, sizeof out), 10);
    cr_assert_str_eq(out, "          ");
    for (int i = 0; i < UI_SERIES_N; i++) ui_series_push(&s, false, 0);
    ui_series_push(&s, true, 50);
    ui_series_push(&s, false, 0);
    ui_series_push(&s, true, 100);
    /* one sample per cell at full width: the newest at the right */
    int n = ui_sparkline(&s, UI_SERIES_N, 100, lv, out, sizeof out);
    cr_assert_eq(n, UI_SERIES_N);
    cr_assert_eq(out[UI_SERIES_N - 1], '8');
    cr_assert_eq(out[UI_SERIES_N - 2], ' ');
    cr_assert_eq(out[UI_SERIES_N - 3], '5');     /* 1 + round(0.5 * 7) = 5 */
    /* narrower: samples averaged per cell; auto scale */
    n = ui_sparkline(&s, 40, 0, lv, out, sizeof out);
    cr_assert_eq(n, 40);
    cr_assert_eq(out[39], '8');
    cr_assert_eq(out[0], ' ');
    /* wider than the series: only UI_SERIES_N cells */
    cr_assert_eq(ui_sparkline(&s, 500, 0, lv, out, sizeof out), UI_SERIES_N);
    /* a small buffer is never overrun */
    cr_assert(ui_sparkline(&s, 40, 0, lv, out, 8) <= 7);
}
