/* wrap.h — UTF-8 text measured in terminal columns and word-wrapped.
 *
 * Pure functions (no ncurses): the chat view, the input box and the panels
 * all measure and wrap text through here, and tests/test_ui.c checks them.
 * Widths come from wcwidth(), so the process must have set an UTF-8 locale
 * (setlocale(LC_ALL, "")) for wide characters and emoji to count as 2. */
#ifndef UI_WRAP_H
#define UI_WRAP_H

#include <stdbool.h>
#include <stdint.h>

#define UI_REPLACEMENT 0xFFFDu

/* Decodes the code point at s[0..n). Returns the bytes it takes (>= 1) and
 * sets *cp; an invalid or overlong sequence takes 1 byte and gives U+FFFD.
 * Returns 0 when s holds only the beginning of a valid sequence (the rest
 * has not arrived yet: a token may end in the middle of a character). */
int ui_utf8_decode(const char *s, int n, uint32_t *cp);
/* Encodes cp (<= 0x10FFFF) into out[4]; returns its length. */
int ui_utf8_encode(uint32_t cp, char *out);
/* Length of s[0..n) without an incomplete sequence at its end. */
int ui_utf8_complete_len(const char *s, int n);
/* Byte offset of the code point before / after byte offset i. */
int ui_utf8_prev(const char *s, int i);
int ui_utf8_next(const char *s, int n, int i);

/* Incremental UTF-8 decoding of a byte stream (keys as the terminal sends
 * them, pasted text). Invalid input follows the Unicode "maximal subpart"
 * practice (as WHATWG's decoder and Python's errors="replace" do): each
 * maximal prefix of a valid sequence that is cut short, and each byte that
 * cannot begin one, becomes one U+FFFD; the byte that broke a sequence is
 * decoded afresh. Valid UTF-8 passes through unchanged. */
typedef struct ui_utf8_dec {
    uint32_t v;
    int need;                /* continuation bytes the pending sequence still needs (0: none) */
    unsigned char lo, hi;    /* the allowed range of the next byte */
} ui_utf8_dec;
/* Feeds one byte; writes 0, 1 or 2 code points to out[] and returns how many. */
int ui_utf8_feed(ui_utf8_dec *d, unsigned char b, uint32_t out[2]);
/* Ends the stream: an unfinished sequence gives one U+FFFD (returns 1). */
int ui_utf8_flush(ui_utf8_dec *d, uint32_t *out);
/* True while a sequence is half-way. */
bool ui_utf8_pending(const ui_utf8_dec *d);

/* Columns a code point takes: 2 for wide (CJK, emoji), 0 for combining marks
 * and control characters (which are not drawn), 1 for a tab (drawn as a
 * space) and for anything wcwidth does not know (drawn as U+FFFD). */
int ui_cp_width(uint32_t cp);
/* Columns of s[0..n). */
int ui_str_width(const char *s, int n);
/* Byte length of the longest prefix of s[0..n) that fits in `cols` columns. */
int ui_str_fit(const char *s, int n, int cols);

/* One display line: bytes [start, start+len) of the text, `cols` wide. */
typedef struct ui_line {
    int start, len, cols;
} ui_line;

/* Word-wraps s[0..n) to `width` columns (width < 1 is taken as 1). '\n'
 * ends a line (an empty paragraph gives one empty line); lines break after
 * spaces, and between wide characters (CJK text has no spaces); the spaces
 * at a break are dropped; a word longer than the width is cut at a
 * character boundary; a character wider than the width gets a line of its
 * own. Writes at most cap lines; returns the number of lines needed. */
int ui_wrap(const char *s, int n, int width, ui_line *out, int cap);

#endif
