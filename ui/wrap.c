/* wrap.c — UTF-8 decoding, column widths (wcwidth) and word wrapping. */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700   /* wcwidth */
#endif
#include "wrap.h"

#include <wchar.h>

static int cont(unsigned char c) { return (c & 0xC0) == 0x80; }

int ui_utf8_decode(const char *str, int n, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)str;
    if (n <= 0) { *cp = UI_REPLACEMENT; return 0; }
    unsigned char b = s[0];
    if (b < 0x80) { *cp = b; return 1; }
    int need;
    uint32_t v;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (b >= 0xC2 && b <= 0xDF) { need = 1; v = b & 0x1F; }
    else if (b >= 0xE0 && b <= 0xEF) {
        need = 2; v = b & 0x0F;
        if (b == 0xE0) lo = 0xA0;          /* overlong */
        if (b == 0xED) hi = 0x9F;          /* surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3; v = b & 0x07;
        if (b == 0xF0) lo = 0x90;          /* overlong */
        if (b == 0xF4) hi = 0x8F;          /* > U+10FFFF */
    } else { *cp = UI_REPLACEMENT; return 1; }
    for (int k = 1; k <= need; k++) {
        if (k >= n) { *cp = UI_REPLACEMENT; return 0; }   /* valid so far, rest missing */
        unsigned char c = s[k];
        if (k == 1 ? (c < lo || c > hi) : !cont(c)) { *cp = UI_REPLACEMENT; return 1; }
        v = (v << 6) | (c & 0x3F);
    }
    *cp = v;
    return need + 1;
}

/* b with no sequence pending: 1 code point out, or 0 when b begins one */
static int utf8_start(ui_utf8_dec *d, unsigned char b, uint32_t *out) {
    if (b < 0x80) { *out = b; return 1; }
    d->lo = 0x80;
    d->hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) { d->need = 1; d->v = b & 0x1Fu; }
    else if (b >= 0xE0 && b <= 0xEF) {
        d->need = 2; d->v = b & 0x0Fu;
        if (b == 0xE0) d->lo = 0xA0;       /* overlong */
        if (b == 0xED) d->hi = 0x9F;       /* surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        d->need = 3; d->v = b & 0x07u;
        if (b == 0xF0) d->lo = 0x90;       /* overlong */
        if (b == 0xF4) d->hi = 0x8F;       /* > U+10FFFF */
    } else { *out = UI_REPLACEMENT; return 1; }
    return 0;
}

int ui_utf8_feed(ui_utf8_dec *d, unsigned char b, uint32_t out[2]) {
    if (!d->need) return utf8_start(d, b, out);
    if (b >= d->lo && b <= d->hi) {
        d->v = (d->v << 6) | (b & 0x3Fu);
        d->lo = 0x80;
        d->hi = 0xBF;
        if (--d->need) return 0;
        out[0] = d->v;
        return 1;
    }
    /* the sequence is cut short: one U+FFFD for it, then b afresh */
    d->need = 0;
    out[0] = UI_REPLACEMENT;
    return 1 + utf8_start(d, b, &out[1]);
}

int ui_utf8_flush(ui_utf8_dec *d, uint32_t *out) {
    if (!d->need) return 0;
    d->need = 0;
    *out = UI_REPLACEMENT;
    return 1;
}

bool ui_utf8_pending(const ui_utf8_dec *d) { return d->need != 0; }

int ui_utf8_encode(uint32_t cp, char *o) {
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = UI_REPLACEMENT;
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int ui_utf8_complete_len(const char *s, int n) {
    /* only the last 3 bytes can start an unfinished sequence */
    for (int i = n - 1; i >= 0 && i >= n - 3; i--) {
        unsigned char c = (unsigned char)s[i];
        if (!cont(c)) {
            uint32_t cp;
            return ui_utf8_decode(s + i, n - i, &cp) == 0 ? i : n;
        }
    }
    return n;
}

int ui_utf8_prev(const char *s, int i) {
    if (i <= 0) return 0;
    int j = i - 1;
    while (j > 0 && i - j < 4 && cont((unsigned char)s[j])) j--;
    uint32_t cp;
    int k = ui_utf8_decode(s + j, i - j, &cp);
    return (k == i - j) ? j : i - 1;   /* stray continuation bytes go one at a time */
}

int ui_utf8_next(const char *s, int n, int i) {
    if (i >= n) return n;
    uint32_t cp;
    int k = ui_utf8_decode(s + i, n - i, &cp);
    return i + (k > 0 ? k : n - i);
}

int ui_cp_width(uint32_t cp) {
    if (cp == '\t') return 1;
    if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0)) return 0;
    if (cp < 0x7F) return 1;
    int w = wcwidth((wchar_t)cp);
    return w < 0 ? 1 : w;
}

int ui_str_width(const char *s, int n) {
    int cols = 0;
    for (int i = 0; i < n;) {
        uint32_t cp;
        int k = ui_utf8_decode(s + i, n - i, &cp);
        if (k == 0) break;
        cols += ui_cp_width(cp);
        i += k;
    }
    return cols;
}

int ui_str_fit(const char *s, int n, int cols) {
    int used = 0, i = 0;
    while (i < n) {
        uint32_t cp;
        int k = ui_utf8_decode(s + i, n - i, &cp);
        if (k == 0) break;
        int w = ui_cp_width(cp);
        if (used + w > cols) break;
        used += w;
        i += k;
    }
    return i;
}

static int is_space(uint32_t cp) { return cp == ' ' || cp == '\t'; }

/* skips spaces from byte i of s[0..n) */
static int skip_spaces(const char *s, int n, int i) {
    while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
    return i;
}

int ui_wrap(const char *s, int n, int width, ui_line *out, int cap) {
    if (width < 1) width = 1;
    int count = 0;
#define EMIT(st, ln, cl) do { if (count < cap) { out[count].start = (st); out[count].len = (ln); out[count].cols = (cl); } count++; } while (0)
    int p = 0;
    for (;;) {
        int pe = p;
        while (pe < n && s[pe] != '\n') pe++;
        /* one paragraph: s[p..pe) */
        int ls = p, cols = 0, brk = -1, brk_cols = 0;
        bool prev_space = false;
        int i = p;
        while (i < pe) {
            uint32_t cp;
            int k = ui_utf8_decode(s + i, pe - i, &cp);
            int w;
            if (k == 0) { k = pe - i; w = 0; }   /* unfinished character at the end */
            else w = ui_cp_width(cp);
            if (k > 0 && is_space(cp)) {
                if (cols + w > width) {           /* a space overflows: break here, drop the spaces */
                    int end = prev_space ? brk : i, ec = prev_space ? brk_cols : cols;
                    EMIT(ls, end - ls, ec);
                    i = ls = skip_spaces(s, pe, i);
                    cols = 0; brk = -1; prev_space = false;
                    if (ls == pe) goto next;      /* only spaces were left */
                    continue;
                }
                if (!prev_space) { brk = i; brk_cols = cols; }
                prev_space = true;
                cols += w;
                i += k;
                continue;
            }
            if (cols + w > width && i > ls) {
                if (brk > ls) {                   /* break at the last opportunity */
                    EMIT(ls, brk - ls, brk_cols);
                    ls = skip_spaces(s, pe, brk);
                    cols = ui_str_width(s + ls, i - ls);
                } else {                          /* no opportunity: cut the word here */
                    EMIT(ls, i - ls, cols);
                    ls = i;
                    cols = 0;
                }
                brk = -1; prev_space = false;
                continue;                         /* look at this character again */
            }
            if (w == 2 && i > ls && !prev_space) { brk = i; brk_cols = cols; }
            prev_space = false;
            cols += w;
            i += k;
            if (w == 2) { brk = i; brk_cols = cols; }
        }
        EMIT(ls, pe - ls, cols);
    next:
        if (pe >= n) break;
        p = pe + 1;
    }
#undef EMIT
    return count;
}
