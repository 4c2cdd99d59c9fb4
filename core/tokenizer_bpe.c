/* tokenizer_bpe.c — byte-level BPE (tokenizer.ggml.model = "gpt2"), behaving
 * as llama.cpp's LLAMA_VOCAB_TYPE_BPE path:
 *
 *   encode:  for each raw fragment (text between special tokens): decode
 *            UTF-8 to code points (invalid bytes -> U+FFFD), split into
 *            pre-tokens by the rules tokenizer.ggml.pre selects (unicode.c),
 *            then per pre-token: optionally (ignore_merges, Llama-3) emit it
 *            whole when it is a vocab entry; else start from one symbol per
 *            byte (its GPT-2 character) and apply the merges of
 *            tokenizer.ggml.merges lowest rank first (ties: leftmost); emit
 *            each final symbol as its token, or, when it is not one, each of
 *            its encoded bytes that is a one-byte token.
 *   decode:  normal tokens map each character back to its byte; control /
 *            user-defined / unknown tokens render their text; detokenize may
 *            clean up spaces as clean_up_tokenization_spaces does.
 *
 * Symbols are identified by id: vocab tokens keep theirs, and the few merge
 * parts / results that are not tokens get ids from n_vocab up, so a merge is
 * a lookup of an id pair. Written from the documented behaviour; no code
 * copied. */
#include "tokenizer_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* pre-tokenizers                                                      */

#define R(x) ST_PRE_##x
static const st_bpe_pre PRES[] = {
    /* name              rules                                              n  ignore add_bos clean */
    {"default",          {R(PUNCT_RUNS), R(GPT2), R(NUM_RUNS), R(DIGIT3)}, 4, false, false, true},
    {"gpt-2",            {R(GPT2)},                                        1, false, false, true},
    {"gpt2",             {R(GPT2)},                                        1, false, false, true},
    {"phi-2",            {R(GPT2)},                                        1, false, false, true},
    {"mpt",              {R(GPT2)},                                        1, false, false, true},
    {"olmo",             {R(GPT2)},                                        1, false, false, true},
    {"jais",             {R(GPT2)},                                        1, false, false, true},
    {"exaone4",          {R(GPT2)},                                        1, false, false, true},
    {"trillion",         {R(GPT2)},                                        1, false, false, false},
    {"granite-docling",  {R(GPT2)},                                        1, false, false, false},
    {"llama3",           {R(LLAMA3)},                                      1, true,  true,  true},
    {"llama-v3",         {R(LLAMA3)},                                      1, true,  true,  true},
    {"llama-bpe",        {R(LLAMA3)},                                      1, true,  true,  true},
    {"falcon3",          {R(LLAMA3)},                                      1, true,  true,  true},
    {"falcon-h1",        {R(LLAMA3)},                                      1, true,  true,  true},
    {"pixtral",          {R(LLAMA3)},                                      1, true,  true,  true},
    {"midm-2.0",         {R(LLAMA3)},                                      1, true,  true,  true},
    {"lfm2",             {R(LLAMA3)},                                      1, true,  true,  true},
    {"dbrx",             {R(LLAMA3)},                                      1, false, false, true},
    {"smaug-bpe",        {R(LLAMA3)},                                      1, false, false, true},
    {"qwen2",            {R(QWEN2)},                                       1, false, false, false},
    {"deepseek-r1-qwen", {R(QWEN2)},                                       1, false, false, false},
    {"kormo",            {R(QWEN2)},                                       1, false, false, false},
    {"hunyuan",          {R(QWEN2)},                                       1, false, false, false},
    {"stablelm2",        {R(QWEN2)},                                       1, false, false, true},
    {"megrez",           {R(QWEN2)},                                       1, false, false, true},
    {"starcoder",        {R(NUM_EACH), R(GPT2)},                           2, false, false, true},
    {"refact",           {R(NUM_EACH), R(GPT2)},                           2, false, false, true},
    {"codeshell",        {R(NUM_EACH), R(GPT2)},                           2, false, false, true},
    {"exaone",           {R(NUM_EACH), R(GPT2)},                           2, false, false, true},
    {"minerva-7b",       {R(NUM_EACH), R(GPT2)},                           2, false, false, true},
    {"command-r",        {R(NUM_EACH), R(GPT2)},                           2, false, false, false},
    {"smollm",           {R(NUM_EACH), R(GPT2)},                           2, false, false, false},
    {"falcon",           {R(PUNCT_RUNS_BT), R(GPT2), R(DIGIT3)},           3, false, false, true},
};
#undef R

const st_bpe_pre *st_bpe_find_pre(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof PRES / sizeof PRES[0]; i++)
        if (strlen(PRES[i].name) == len && memcmp(PRES[i].name, name, len) == 0) return &PRES[i];
    return NULL;
}

void st_bpe_pre_names(char *buf, size_t cap) {
    size_t k = 0;
    if (cap) buf[0] = 0;
    for (size_t i = 0; i < sizeof PRES / sizeof PRES[0]; i++) {
        int w = snprintf(buf + k, cap - k, "%s%s", i ? ", " : "", PRES[i].name);
        if (w < 0 || (size_t)w >= cap - k) break;
        k += (size_t)w;
    }
}

/* ------------------------------------------------------------------ */
/* tables                                                              */

#define EMPTY_KEY UINT64_MAX

typedef struct {
    uint64_t key; /* pair_key(left, right), EMPTY_KEY: free slot */
    uint32_t rank;
    int32_t res;
} merge_t;

struct st_bpe {
    const st_bpe_pre *pre;
    int32_t n_vocab;
    /* symbols that are not vocab tokens: ids n_vocab + i */
    char *xblob;
    size_t xblob_n, xblob_cap;
    size_t *xoff;
    uint32_t *xlen;
    size_t x_n, x_cap;
    int32_t *xht; /* -1 empty, else extra index */
    uint32_t xht_mask;
    /* merges: (left id, right id) -> rank and merged symbol; open addressing */
    merge_t *merge;
    uint32_t m_mask;
    uint32_t n_merges;
    /* each byte: its GPT-2 character's UTF-8 and symbol id (-1: none) */
    char enc[256][2];
    uint8_t enc_len[256];
    int32_t byte_sym[256];
};

void st_bpe_free(st_bpe *b) {
    if (!b) return;
    free(b->xblob);
    free(b->xoff);
    free(b->xlen);
    free(b->xht);
    free(b->merge);
    free(b);
}

static int32_t x_find(const st_bpe *b, const char *s, size_t n, uint64_t h) {
    for (uint32_t i = (uint32_t)h & b->xht_mask;; i = (i + 1) & b->xht_mask) {
        int32_t k = b->xht[i];
        if (k < 0) return -1;
        if (b->xlen[k] == n && memcmp(b->xblob + b->xoff[k], s, n) == 0) return k;
    }
}

/* symbol id of a text: its token, else its extra id, else -1 */
static int32_t sym_find(const st_tokenizer *t, const st_bpe *b, const char *s, size_t n) {
    int32_t id = st_tok__lookup(t, s, n);
    if (id >= 0 || b->x_n == 0) return id;
    int32_t k = x_find(b, s, n, st_tok__hash(s, n));
    return k < 0 ? -1 : b->n_vocab + k;
}

static bool x_rehash(st_bpe *b, uint32_t cap) {
    int32_t *ht = malloc(sizeof *ht * cap);
    if (!ht) return false;
    memset(ht, 0xff, sizeof *ht * cap);
    for (size_t k = 0; k < b->x_n; k++) {
        uint32_t i = (uint32_t)st_tok__hash(b->xblob + b->xoff[k], b->xlen[k]) & (cap - 1);
        while (ht[i] >= 0) i = (i + 1) & (cap - 1);
        ht[i] = (int32_t)k;
    }
    free(b->xht);
    b->xht = ht;
    b->xht_mask = cap - 1;
    return true;
}

/* symbol id of a text, adding it as an extra symbol if needed; -1: no memory */
static int32_t sym_get(const st_tokenizer *t, st_bpe *b, const char *s, size_t n) {
    int32_t id = st_tok__lookup(t, s, n);
    if (id >= 0) return id;
    uint64_t h = st_tok__hash(s, n);
    int32_t k = x_find(b, s, n, h);
    if (k >= 0) return b->n_vocab + k;
    if ((size_t)b->n_vocab + b->x_n >= INT32_MAX) return -1;
    if ((b->x_n + 1) * 2 > (size_t)b->xht_mask + 1 && !x_rehash(b, (b->xht_mask + 1) * 2)) return -1;
    if (!st_tok__grow((void **)&b->xblob, &b->xblob_cap, b->xblob_n + n + 1, 1)) return -1;
    size_t c1 = b->x_cap, c2 = b->x_cap;
    if (!st_tok__grow((void **)&b->xoff, &c1, b->x_n + 1, sizeof *b->xoff)) return -1;
    if (!st_tok__grow((void **)&b->xlen, &c2, b->x_n + 1, sizeof *b->xlen)) return -1;
    b->x_cap = c1 < c2 ? c1 : c2;
    memcpy(b->xblob + b->xblob_n, s, n);
    b->xoff[b->x_n] = b->xblob_n;
    b->xlen[b->x_n] = (uint32_t)n;
    b->xblob_n += n;
    b->xblob[b->xblob_n++] = 0;
    uint32_t i = (uint32_t)h & b->xht_mask;
    while (b->xht[i] >= 0) i = (i + 1) & b->xht_mask;
    b->xht[i] = (int32_t)b->x_n;
    return b->n_vocab + (int32_t)b->x_n++;
}

static inline uint64_t pair_key(int32_t l, int32_t r) { return ((uint64_t)(uint32_t)l << 32) | (uint32_t)r; }
static inline uint32_t pair_hash(uint64_t k) { return (uint32_t)((k * 0x9E3779B97F4A7C15ull) >> 32); }

/* slot of a merge, or of the empty slot where it would go */
static inline uint32_t merge_slot(const st_bpe *b, uint64_t key) {
    uint32_t i = pair_hash(key) & b->m_mask;
    while (b->merge[i].key != EMPTY_KEY && b->merge[i].key != key) i = (i + 1) & b->m_mask;
    return i;
}

st_status st_bpe_init(st_tokenizer *t, const st_gguf *g, const st_bpe_pre *pre, st_error *err) {
    st_status rc = ST_OK;
    int64_t mi = st_gguf_find_key(g, "tokenizer.ggml.merges");
    st_gguf_vtype et;
    uint64_t nm = 0;
    if (mi < 0) return st_error_set(err, ST_ERR_FORMAT, "tokenizer: BPE vocab without tokenizer.ggml.merges");
    if (!st_gguf_get_arr(g, mi, &et, &nm) || et != ST_GGUF_STRING)
        return st_error_set(err, ST_ERR_FORMAT, "tokenizer: tokenizer.ggml.merges is not an array of strings");
    if (nm > (uint64_t)INT32_MAX / 4)
        return st_error_set(err, ST_ERR_FORMAT, "tokenizer: tokenizer.ggml.merges has too many entries (%llu)",
                            (unsigned long long)nm);

    st_bpe *b = calloc(1, sizeof *b);
    if (!b) return st_error_set(err, ST_ERR_NOMEM, "tokenizer: out of memory");
    t->bpe = b; /* freed with t */
    b->pre = pre;
    b->n_vocab = t->n_vocab;
    b->n_merges = (uint32_t)nm;
    uint32_t cap = 64;
    while (cap < nm + nm / 2) cap <<= 1; /* load <= 2/3 */
    b->merge = malloc(sizeof *b->merge * cap);
    b->m_mask = cap - 1;
    char *cat = NULL;
    size_t cat_cap = 0;
    if (!b->merge || !x_rehash(b, 256)) goto oom;
    for (uint32_t i = 0; i < cap; i++) b->merge[i].key = EMPTY_KEY;

    for (uint64_t r = 0; r < nm; r++) {
        st_gguf_str m = st_gguf_arr_str(g, mi, r);
        /* "LEFT RIGHT": split at the first space after the first byte */
        const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', m.len - 1) : NULL;
        if (!sp) continue; /* llama.cpp keeps it as ("", ""), which never matches */
        size_t ln = (size_t)(sp - m.ptr), rn = m.len - ln - 1;
        if (!st_tok__grow((void **)&cat, &cat_cap, ln + rn + 1, 1)) goto oom;
        memcpy(cat, m.ptr, ln);
        memcpy(cat + ln, sp + 1, rn);
        int32_t l = sym_get(t, b, m.ptr, ln), rr = sym_get(t, b, sp + 1, rn), res = sym_get(t, b, cat, ln + rn);
        if (l < 0 || rr < 0 || res < 0) goto oom;
        uint64_t key = pair_key(l, rr);
        uint32_t i = merge_slot(b, key);
        if (b->merge[i].key == key) continue; /* a repeated pair keeps its first rank */
        b->merge[i] = (merge_t){key, (uint32_t)r, res};
    }
    free(cat);

    for (int c = 0; c < 256; c++) {
        char u[4];
        int k = st_utf8_encode(st_gpt2_byte_to_cpt((uint8_t)c), u);
        memcpy(b->enc[c], u, (size_t)k);
        b->enc_len[c] = (uint8_t)k;
        b->byte_sym[c] = sym_find(t, b, u, (size_t)k);
    }
    return ST_OK;
oom:
    free(cat);
    rc = st_error_set(err, ST_ERR_NOMEM, "tokenizer: out of memory building the BPE merges");
    return rc;
}

/* ------------------------------------------------------------------ */
/* encoding                                                            */

typedef struct {
    uint32_t off; /* into the word's bytes */
    uint32_t n;   /* bytes; 0 once merged into its left neighbour */
    int32_t prev, next;
    int32_t id;   /* symbol id, -1 for a byte no merge knows */
} bsym;

typedef struct {
    uint32_t rank;
    int32_t left, right;
    uint32_t size;
    int32_t res;
} bpair;

struct st_bpe_scratch {
    uint32_t *cpts;
    uint8_t *flags;
    uint32_t *pa, *pb; /* piece lengths, ping-pong */
    size_t cp_cap, fl_cap, pa_cap, pb_cap;
    char *word;
    size_t word_cap;
    char *enc;
    size_t enc_cap;
    bsym *sym;
    size_t sym_cap;
    bpair *heap;
    size_t heap_n, heap_cap;
};

void st_bpe_scratch_free(st_bpe_scratch *s) {
    if (!s) return;
    free(s->cpts);
    free(s->flags);
    free(s->pa);
    free(s->pb);
    free(s->word);
    free(s->enc);
    free(s->sym);
    free(s->heap);
    free(s);
}

/* a leaves the queue before b: lower rank, then leftmost */
static inline bool before(const bpair *a, const bpair *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static bool heap_push(st_bpe_scratch *s, bpair p) {
    if (!st_tok__grow((void **)&s->heap, &s->heap_cap, s->heap_n + 1, sizeof *s->heap)) return false;
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!before(&p, &s->heap[up])) break;
        s->heap[i] = s->heap[up];
        i = up;
    }
    s->heap[i] = p;
    return true;
}

static bpair heap_pop(st_bpe_scratch *s) {
    bpair top = s->heap[0];
    bpair last = s->heap[--s->heap_n];
    size_t n = s->heap_n, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(&s->heap[c + 1], &s->heap[c])) c++;
        if (!before(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

static bool try_pair(const st_bpe *b, st_bpe_scratch *s, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return true;
    int32_t l = s->sym[left].id, r = s->sym[right].id;
    if (l < 0 || r < 0) return true;
    uint64_t key = pair_key(l, r);
    uint32_t i = merge_slot(b, key);
    if (b->merge[i].key != key) return true;
    bpair p = {b->merge[i].rank, left, right, s->sym[left].n + s->sym[right].n, b->merge[i].res};
    return heap_push(s, p);
}

/* the GPT-2 encoding of w[0..n) into s->enc; returns its length, (size_t)-1 on OOM */
static size_t encode_bytes(const st_bpe *b, st_bpe_scratch *s, const char *w, size_t n) {
    if (!st_tok__grow((void **)&s->enc, &s->enc_cap, 2 * n + 1, 1)) return (size_t)-1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)w[i];
        memcpy(s->enc + k, b->enc[c], b->enc_len[c]);
        k += b->enc_len[c];
    }
    return k;
}

/* BPE of one pre-token w[0..n) (raw bytes) */
static bool bpe_word(const st_tokenizer *t, st_bpe_scratch *s, const char *w, size_t n, st_tok_out *o) {
    const st_bpe *b = t->bpe;
    if (n == 0) return true;
    if (b->pre->ignore_merges) {
        size_t k = encode_bytes(b, s, w, n);
        if (k == (size_t)-1) return false;
        int32_t id = st_tok__lookup(t, s->enc, k);
        if (id >= 0) {
            st_tok__emit(o, id);
            return true;
        }
    }
    if (n > INT32_MAX) return false;
    if (!st_tok__grow((void **)&s->sym, &s->sym_cap, n, sizeof *s->sym)) return false;
    int32_t ns = (int32_t)n;
    for (int32_t i = 0; i < ns; i++) {
        s->sym[i] = (bsym){(uint32_t)i, 1, i - 1, i + 1 < ns ? i + 1 : -1, b->byte_sym[(uint8_t)w[i]]};
    }
    s->heap_n = 0;
    for (int32_t i = 1; i < ns; i++)
        if (!try_pair(b, s, i - 1, i)) return false;
    while (s->heap_n) {
        bpair p = heap_pop(s);
        bsym *l = &s->sym[p.left], *r = &s->sym[p.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != p.size) continue; /* stale */
        l->n += r->n;
        l->id = p.res;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s->sym[r->next].prev = p.left;
        if (!try_pair(b, s, l->prev, p.left)) return false;
        if (!try_pair(b, s, p.left, s->sym[p.left].next)) return false;
    }
    for (int32_t i = 0; i != -1; i = s->sym[i].next) {
        const bsym *y = &s->sym[i];
        if (y->id >= 0 && y->id < t->n_vocab) {
            st_tok__emit(o, y->id);
            continue;
        }
        /* not a token: each byte of its encoding that is a one-byte token */
        size_t k = encode_bytes(b, s, w + y->off, y->n);
        if (k == (size_t)-1) return false;
        for (size_t j = 0; j < k; j++) {
            int32_t id = st_tok__lookup(t, s->enc + j, 1);
            if (id >= 0) st_tok__emit(o, id);
        }
    }
    return true;
}

bool st_bpe_fragment(const st_tokenizer *t, st_bpe_scratch **sp, const char *text, size_t len, st_tok_out *o) {
    if (len == 0) return true;
    if (!*sp && !(*sp = calloc(1, sizeof **sp))) return false;
    st_bpe_scratch *s = *sp;
    const st_bpe *b = t->bpe;
    if (len > UINT32_MAX) return false;
    if (!st_tok__grow((void **)&s->cpts, &s->cp_cap, len, sizeof *s->cpts) ||
        !st_tok__grow((void **)&s->flags, &s->fl_cap, len, sizeof *s->flags) ||
        !st_tok__grow((void **)&s->pa, &s->pa_cap, len, sizeof *s->pa) ||
        !st_tok__grow((void **)&s->pb, &s->pb_cap, len, sizeof *s->pb))
        return false;
    size_t n = st_utf8_decode(text, len, s->cpts);
    for (size_t i = 0; i < n; i++) s->flags[i] = st_uflags(s->cpts[i]);

    /* pre-tokenize: the whole fragment is one piece, then each rule splits */
    uint32_t *in = s->pa, *out = s->pb;
    in[0] = (uint32_t)n;
    size_t np = 1;
    for (int r = 0; r < b->pre->n_rules; r++) {
        np = st_pre_split((st_pre_rule)b->pre->rules[r], s->cpts, s->flags, in, np, out);
        uint32_t *tmp = in;
        in = out;
        out = tmp;
    }

    /* each piece back to UTF-8, then BPE */
    size_t c0 = 0;
    for (size_t p = 0; p < np; p++) {
        size_t m = in[p];
        if (!st_tok__grow((void **)&s->word, &s->word_cap, 4 * m + 1, 1)) return false;
        size_t wl = 0;
        for (size_t i = 0; i < m; i++) wl += (size_t)st_utf8_encode(s->cpts[c0 + i], s->word + wl);
        c0 += m;
        if (!bpe_word(t, s, s->word, wl, o)) return false;
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* decoding                                                            */

size_t st_bpe_decode_text(const char *s, size_t n, char *dst) {
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c = st_utf8_next(s, n, &i);
        int byte = st_gpt2_cpt_to_byte(c);
        if (byte >= 0) {
            if (dst) dst[k] = (char)byte;
            k++;
            continue;
        }
        /* as llama.cpp: "[UNK_BYTE_0x" + the character's UTF-8 in hex + the whole text + "]" */
        char u[4], hex[16];
        int ul = st_utf8_encode(c, u);
        size_t hl = 0;
        for (int j = 0; j < ul; j++) hl += (size_t)snprintf(hex + hl, sizeof hex - hl, "%02x", (uint8_t)u[j]);
        if (dst) {
            memcpy(dst + k, "[UNK_BYTE_0x", 12);
            memcpy(dst + k + 12, hex, hl);
            memcpy(dst + k + 12 + hl, s, n);
            dst[k + 12 + hl + n] = ']';
        }
        k += 12 + hl + n + 1;
    }
    return k;
}

/* clean_up_tokenization_spaces, pass by pass as llama.cpp's detokenize runs
 * them (each pass compacts in place and keeps the first byte):
 *   1. " ?", " !", " .", " ,"  -> drop the space
 *   2. " ' "                   -> "'" (the byte after is blanked to NUL first,
 *                                 so it is not seen as a space later)
 *   3. " 's", " 'm", " 're", " 've" -> drop the space */
size_t st_bpe_clean_spaces(char *s, size_t n) {
    if (n == 0) return 0;
    size_t w = 1;
    for (size_t i = 1; i < n; i++) {
        char x = s[i];
        if (s[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) w--;
        s[w++] = x;
    }
    n = w;
    w = 1;
    for (size_t i = 1; i < n; i++) {
        char x = s[i];
        if (x == '\'' && i + 1 < n && s[i - 1] == ' ' && s[i + 1] == ' ') {
            w--;
            s[++i] = 0;
        }
        s[w++] = x;
    }
    n = w;
    w = 1;
    for (size_t i = 1; i < n; i++) {
        char x = s[i];
        if (s[i - 1] == ' ' && x == '\'' && i + 1 < n) {
            char x1 = s[i + 1];
            if (x1 == 's' || x1 == 'm') w--;
            else if (i + 2 < n && ((x1 == 'r' && s[i + 2] == 'e') || (x1 == 'v' && s[i + 2] == 'e'))) w--;
        }
        s[w++] = x;
    }
    return w;
}
