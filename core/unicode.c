/* unicode.c — UTF-8, categories, the GPT-2 byte mapping and the BPE
 * pre-tokenizer splitters (see unicode.h).
 *
 * The splitters implement the regexes of llama.cpp's BPE pre-tokenizers by
 * hand, with the regex semantics (leftmost alternative that matches, greedy
 * quantifiers with backtracking) worked out per alternative. Each piece is
 * matched on its own: a lookahead at the end of a piece sees the end of the
 * text. Written from the regexes themselves; no code copied. */
#include "unicode.h"

/* ------------------------------------------------------------------ */
/* categories                                                          */

int st_ucat(uint32_t cpt) {
    if (cpt > 0x10FFFF) return ST_UCAT_UNDEF;
    /* last entry whose first code point is <= cpt */
    size_t lo = 0, hi = st_ucat_tab_n;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if ((st_ucat_tab[mid] >> 3) <= cpt) lo = mid;
        else hi = mid;
    }
    return (int)(st_ucat_tab[lo] & 7);
}

bool st_uspace(uint32_t cpt) {
    for (size_t i = 0; i < st_uws_tab_n; i++) {
        if (cpt < st_uws_tab[i][0]) return false;
        if (cpt <= st_uws_tab[i][1]) return true;
    }
    return false;
}

uint8_t st_uflags(uint32_t cpt) {
    if (cpt < 128) { /* ASCII without the table (st_ucat gives the same) */
        uint8_t f = ST_UF_IN;
        if ((cpt | 32) >= 'a' && (cpt | 32) <= 'z') return f | ST_UCAT_L;
        if (cpt >= '0' && cpt <= '9') return f | ST_UCAT_N;
        if (cpt == ' ') return f | ST_UCAT_Z | ST_UF_WS;
        if (cpt < 32 || cpt == 127) return (uint8_t)(f | ST_UCAT_C | (cpt >= 9 && cpt <= 13 ? ST_UF_WS : 0));
        switch (cpt) {
        case '$': case '+': case '<': case '=': case '>': case '^': case '`': case '|': case '~':
            return f | ST_UCAT_S;
        default:
            return f | ST_UCAT_P;
        }
    }
    return (uint8_t)(st_ucat(cpt) | ST_UF_IN | (st_uspace(cpt) ? ST_UF_WS : 0));
}

/* ------------------------------------------------------------------ */
/* UTF-8                                                               */

uint32_t st_utf8_next(const char *str, size_t len, size_t *pos) {
    const uint8_t *s = (const uint8_t *)str;
    size_t i = *pos;
    uint8_t b = s[i];
    if (b < 0x80) {
        *pos = i + 1;
        return b;
    }
    size_t k = 0; /* continuation bytes */
    uint32_t c = 0;
    if (!(b & 0x40)) k = 0; /* a stray continuation byte */
    else if (!(b & 0x20)) { k = 1; c = b & 0x1Fu; }
    else if (!(b & 0x10)) { k = 2; c = b & 0x0Fu; }
    else if (!(b & 0x08)) { k = 3; c = b & 0x07u; }
    bool ok = k > 0 && i + k < len; /* all k continuation bytes present */
    for (size_t j = 1; ok && j <= k; j++)
        if ((s[i + j] & 0xC0) != 0x80) ok = false;
    if (!ok) {
        *pos = i + 1;
        return 0xFFFD;
    }
    for (size_t j = 1; j <= k; j++) c = (c << 6) | (s[i + j] & 0x3Fu);
    *pos = i + k + 1;
    return c > 0x10FFFF ? 0xFFFD : c;
}

size_t st_utf8_decode(const char *str, size_t len, uint32_t *cpts) {
    size_t n = 0;
    for (size_t i = 0; i < len;) cpts[n++] = st_utf8_next(str, len, &i);
    return n;
}

int st_utf8_encode(uint32_t c, char *out) {
    uint8_t *o = (uint8_t *)out;
    if (c < 0x80) { o[0] = (uint8_t)c; return 1; }
    if (c < 0x800) {
        o[0] = (uint8_t)(0xC0 | (c >> 6));
        o[1] = (uint8_t)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (c >> 12));
        o[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (c >> 18));
    o[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

/* ------------------------------------------------------------------ */
/* GPT-2 bytes <-> unicode                                             */

static inline bool gpt2_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/* The 68 others, in byte order: 0x00-0x20 (33), 0x7F-0xA0 (34), 0xAD. */
uint32_t st_gpt2_byte_to_cpt(uint8_t b) {
    if (gpt2_printable(b)) return b;
    if (b <= 0x20) return 256u + b;
    if (b <= 0xA0) return 256u + 33u + (b - 0x7Fu);
    return 256u + 67u; /* 0xAD */
}

int st_gpt2_cpt_to_byte(uint32_t c) {
    if (c < 256) return gpt2_printable(c) ? (int)c : -1;
    if (c < 256 + 33) return (int)(c - 256);
    if (c < 256 + 67) return (int)(0x7F + (c - 256 - 33));
    if (c == 256 + 67) return 0xAD;
    return -1;
}

/* ------------------------------------------------------------------ */
/* pre-tokenizer splitters                                             */

/* one piece [a, b) of the text being split */
typedef struct {
    const uint32_t *c;
    const uint8_t *f;
    size_t b;
    uint32_t *out;
    size_t n_out;
    size_t prev; /* end of the last piece written */
} span;

/* flags at p, 0 past the end of the piece */
static inline uint8_t F(const span *s, size_t p) { return p < s->b ? s->f[p] : 0; }
static inline bool is_l(uint8_t f) { return (f & ST_UF_CAT) == ST_UCAT_L; }
static inline bool is_n(uint8_t f) { return (f & ST_UF_CAT) == ST_UCAT_N; }
static inline bool is_ws(uint8_t f) { return (f & ST_UF_WS) != 0; }
/* [^\s\p{L}\p{N}]: a code point that is none of those */
static inline bool is_other(uint8_t f) { return (f & ST_UF_IN) && !is_ws(f) && !is_l(f) && !is_n(f); }
static inline bool is_crlf(uint32_t c) { return c == '\r' || c == '\n'; }
static inline uint32_t lower_ascii(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* ends the current piece at `end` (nothing for an empty one) */
static inline void cut(span *s, size_t end) {
    if (end > s->prev) s->out[s->n_out++] = (uint32_t)(end - s->prev);
    s->prev = end;
}

/* length of the contraction 's 't 're 've 'm 'll 'd at pos (0: none) */
static size_t contraction(const span *s, size_t pos, bool any_case) {
    if (s->c[pos] != '\'' || pos + 1 >= s->b) return 0;
    uint32_t x = s->c[pos + 1];
    if (any_case) x = lower_ascii(x);
    if (x == 's' || x == 't' || x == 'm' || x == 'd') return 2;
    if (pos + 2 >= s->b) return 0;
    uint32_t y = s->c[pos + 2];
    if (any_case) y = lower_ascii(y);
    if ((x == 'r' && y == 'e') || (x == 'v' && y == 'e') || (x == 'l' && y == 'l')) return 3;
    return 0;
}

/* \s+(?!\S)|\s+ at pos, where a whitespace run of nw > 0 starts: a run that
 * is followed by a non-space gives that code point's last space to it */
static size_t space_run_end(const span *s, size_t pos, size_t nw) {
    if (nw > 1 && pos + nw < s->b) return pos + nw - 1;
    return pos + nw;
}

static void split_gpt2(span *s, size_t a) {
    size_t pos = a;
    while (pos < s->b) {
        size_t k = contraction(s, pos, false);
        if (k) {
            pos += k;
            cut(s, pos);
            continue;
        }
        uint32_t c = s->c[pos];
        /* the optional leading space of the next three alternatives */
        size_t q = c == ' ' ? pos + 1 : pos;
        uint8_t f = F(s, q);
        if (is_l(f) || is_n(f) || is_other(f)) {
            /*  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+ */
            bool (*same)(uint8_t) = is_l(f) ? is_l : is_n(f) ? is_n : is_other;
            pos = q + 1;
            while (same(F(s, pos))) pos++;
            cut(s, pos);
            continue;
        }
        size_t nw = 0;
        while (is_ws(F(s, pos + nw))) nw++;
        if (nw) {
            pos = space_run_end(s, pos, nw);
            cut(s, pos);
            continue;
        }
        cut(s, ++pos); /* not reached: every code point matches something */
    }
}

static void split_llama3(span *s, size_t a, size_t max_digits) {
    size_t pos = a;
    while (pos < s->b) {
        size_t k = contraction(s, pos, true);
        if (k) {
            pos += k;
            cut(s, pos);
            continue;
        }
        uint32_t c = s->c[pos];
        uint8_t f = s->f[pos];
        /* [^\r\n\p{L}\p{N}]?\p{L}+ */
        if (is_l(f) || (!is_crlf(c) && !is_n(f) && is_l(F(s, pos + 1)))) {
            pos++;
            while (is_l(F(s, pos))) pos++;
            cut(s, pos);
            continue;
        }
        /* \p{N}{1,max} */
        if (is_n(f)) {
            size_t start = pos;
            while (is_n(F(s, pos)) && pos - start < max_digits) pos++;
            cut(s, pos);
            continue;
        }
        /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
        size_t q = c == ' ' ? pos + 1 : pos;
        if (is_other(F(s, q))) {
            pos = q + 1;
            while (is_other(F(s, pos))) pos++;
            while (pos < s->b && is_crlf(s->c[pos])) pos++;
            cut(s, pos);
            continue;
        }
        /* \s*[\r\n]+ : a whitespace run holding a CR/LF ends after its last one */
        size_t nw = 0, end_crlf = 0;
        while (is_ws(F(s, pos + nw))) {
            if (is_crlf(s->c[pos + nw])) end_crlf = pos + nw + 1;
            nw++;
        }
        if (end_crlf) {
            pos = end_crlf;
            cut(s, pos);
            continue;
        }
        /* \s+(?!\S)|\s+ */
        if (nw) {
            pos = space_run_end(s, pos, nw);
            cut(s, pos);
            continue;
        }
        cut(s, ++pos); /* not reached */
    }
}

static inline bool punct_class(uint32_t c, uint8_t f, bool backtick) {
    if ((f & ST_UF_CAT) == ST_UCAT_P) return true;
    switch (c) {
    case '$': case '+': case '<': case '=': case '>': case '^': case '~': case '|': return true;
    case '`': return backtick;
    default: return false;
    }
}

/* X+ (runs = true) or X (runs = false) for a class X; unmatched text between
 * matches stays in pieces of its own */
static void split_class(span *s, size_t a, st_pre_rule rule) {
    size_t pos = a;
    while (pos < s->b) {
        bool m;
        switch (rule) {
        case ST_PRE_PUNCT_RUNS: m = punct_class(s->c[pos], s->f[pos], false); break;
        case ST_PRE_PUNCT_RUNS_BT: m = punct_class(s->c[pos], s->f[pos], true); break;
        default: m = is_n(s->f[pos]); break; /* NUM_RUNS, NUM_EACH */
        }
        if (!m) {
            pos++;
            continue;
        }
        cut(s, pos); /* the unmatched text before */
        pos++;
        if (rule != ST_PRE_NUM_EACH) {
            for (;;) {
                bool more;
                if (pos >= s->b) break;
                if (rule == ST_PRE_NUM_RUNS) more = is_n(s->f[pos]);
                else more = punct_class(s->c[pos], s->f[pos], rule == ST_PRE_PUNCT_RUNS_BT);
                if (!more) break;
                pos++;
            }
        }
        cut(s, pos);
    }
    cut(s, s->b);
}

static inline bool ascii_digit(uint32_t c) { return c >= '0' && c <= '9'; }

static void split_digit3(span *s, size_t a) {
    size_t pos = a;
    while (pos < s->b) {
        if (pos + 3 <= s->b && ascii_digit(s->c[pos]) && ascii_digit(s->c[pos + 1]) && ascii_digit(s->c[pos + 2])) {
            cut(s, pos);
            pos += 3;
            cut(s, pos);
        } else {
            pos++;
        }
    }
    cut(s, s->b);
}

size_t st_pre_split(st_pre_rule rule, const uint32_t *cpts, const uint8_t *flags, const uint32_t *in, size_t n_in,
                    uint32_t *out) {
    span s = {cpts, flags, 0, out, 0, 0};
    size_t a = 0;
    for (size_t i = 0; i < n_in; i++) {
        s.b = a + in[i];
        s.prev = a;
        switch (rule) {
        case ST_PRE_GPT2: split_gpt2(&s, a); break;
        case ST_PRE_LLAMA3: split_llama3(&s, a, 3); break;
        case ST_PRE_QWEN2: split_llama3(&s, a, 1); break;
        case ST_PRE_DIGIT3: split_digit3(&s, a); break;
        default: split_class(&s, a, rule); break;
        }
        a = s.b;
    }
    return s.n_out;
}
