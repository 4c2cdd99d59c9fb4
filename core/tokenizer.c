/* tokenizer.c — the vocabulary shared by both tokenizer kinds (tokens, types,
 * special ids, end-of-generation set, special-token partition, rendered
 * pieces), the dispatch on tokenizer.ggml.model ("llama" -> SentencePiece,
 * "gpt2" -> byte-level BPE in tokenizer_bpe.c), and the SentencePiece
 * tokenizer itself, behaving as llama.cpp's LLAMA_VOCAB_TYPE_SPM path in
 * llama-vocab.cpp:
 *
 *   encode:  split the text around special tokens (tokenizer_st_partition),
 *            then for each raw fragment: optional "▁" prefix (only at the start
 *            or right after a special token), ' ' -> "▁", split into UTF-8
 *            characters, merge adjacent pairs highest score first (ties:
 *            leftmost), and emit each final symbol as its vocab id or, when
 *            the symbol is not a token, as <0xNN> byte tokens.
 *   decode:  token_to_piece ("▁" -> ' ', byte tokens -> raw byte, control /
 *            unknown tokens -> "" unless special) with the leading-space strip.
 *
 * Written from scratch against the documented behaviour; no code copied. */
#define _GNU_SOURCE
#include "tokenizer_impl.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPACE_MARK "\xE2\x96\x81" /* U+2581 "▁" */
#define SPACE_MARK_LEN 3

/* ------------------------------------------------------------------ */
/* hash map                                                            */

uint64_t st_tok__hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static int32_t lookup(const st_tokenizer *t, const char *s, size_t n) {
    if (n > t->max_token_len) return -1;
    uint32_t i = (uint32_t)st_tok__hash(s, n) & t->ht_mask;
    for (;;) {
        int32_t id = t->ht[i];
        if (id < 0) return -1;
        if (t->len[id] == n && memcmp(t->blob + t->off[id], s, n) == 0) return id;
        i = (i + 1) & t->ht_mask;
    }
}

int32_t st_tok__lookup(const st_tokenizer *t, const char *s, size_t n) { return lookup(t, s, n); }

/* ------------------------------------------------------------------ */
/* loading                                                             */

void st_tok_free(st_tokenizer *t) {
    if (!t) return;
    free(t->blob);
    free(t->off);
    free(t->len);
    free(t->score);
    free(t->type);
    free(t->attr);
    free(t->pblob);
    free(t->poff);
    free(t->plen);
    free(t->eog);
    free(t->ht);
    free(t->special);
    st_bpe_free(t->bpe);
    free(t);
}

static const char *const EOT_TEXTS[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]", "<end_of_utterance>", NULL};
static const char *const EOM_TEXTS[] = {"<|eom_id|>", NULL};
static const char *const FIM_PRE_TEXTS[] = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>",
                                            "<|code_prefix|>", "<|prefix|>", NULL};
static const char *const FIM_SUF_TEXTS[] = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<SUF>",
                                            "<|code_suffix|>", "<|suffix|>", NULL};
static const char *const FIM_MID_TEXTS[] = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<MID>",
                                            "<|code_middle|>", "<|middle|>", NULL};
static const char *const FIM_PAD_TEXTS[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL};
static const char *const FIM_REP_TEXTS[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
                                            "<reponame>", NULL};
static const char *const FIM_SEP_TEXTS[] = {"<|file_sep|>", NULL};
static const char *const EOG_TEXTS[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>", NULL};

static int32_t find_cstr(const st_tokenizer *t, const char *s) { return lookup(t, s, strlen(s)); }

/* Marks a token found by its text as control (llama.cpp overrides the type of
 * "control-looking" tokens such as <|eot_id|> that were not CONTROL). */
static void force_control(st_tokenizer *t, int32_t id) {
    if (!(t->attr[id] & ATTR_CONTROL)) {
        t->attr[id] |= ATTR_CONTROL;
        t->type[id] = ST_TOKTYPE_CONTROL;
    }
}

/* For a special id not given by a key: the first token (lowest id) whose text
 * is in `texts` becomes it; every matching token is forced to control. */
static int32_t detect_by_text(st_tokenizer *t, int32_t given, const char *const *texts) {
    if (given >= 0) return given;
    int32_t best = -1;
    for (int k = 0; texts[k]; k++) {
        int32_t id = find_cstr(t, texts[k]);
        if (id < 0) continue;
        force_control(t, id);
        if (best < 0 || id < best) best = id;
    }
    return best;
}

/* Reads an optional token-id key. Absent: keeps *id. */
static st_status read_id_key(const st_gguf *g, const char *key, int32_t n_vocab, int32_t *id, st_error *err) {
    if (st_gguf_find_key(g, key) < 0) return ST_OK;
    int64_t v;
    if (!st_gguf_get_i64(g, key, &v))
        return st_error_set(err, ST_ERR_FORMAT, "tokenizer: %s is not an integer", key);
    if (v < 0 || v >= n_vocab)
        return st_error_set(err, ST_ERR_FORMAT, "tokenizer: %s = %lld is out of range (vocab has %d tokens)",
                            key, (long long)v, n_vocab);
    *id = (int32_t)v;
    return ST_OK;
}

static st_status read_bool_key(const st_gguf *g, const char *key, bool *out, st_error *err) {
    if (st_gguf_find_key(g, key) < 0) return ST_OK;
    if (!st_gguf_get_bool(g, key, out))
        return st_error_set(err, ST_ERR_FORMAT, "tokenizer: %s is not a bool", key);
    return ST_OK;
}

static int cmp_special(const void *a, const void *b, void *ctx) {
    const st_tokenizer *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (t->len[x] != t->len[y]) return t->len[x] > t->len[y] ? -1 : 1;
    return (x > y) - (x < y);
}

static bool contains_ci(const char *hay, size_t n, const char *needle) {
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++) {
        size_t j = 0;
        while (j < m && tolower((unsigned char)hay[i + j]) == needle[j]) j++;
        if (j == m) return true;
    }
    return false;
}

/* The rendered piece of token id (special = true), written to dst unless
 * dst is NULL; returns its length. */
static size_t render_piece(const st_tokenizer *t, int32_t id, char *dst) {
    const char *s = t->blob + t->off[id];
    uint32_t n = t->len[id];
    uint16_t a = t->attr[id];
    if (a & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED)) {
        if (dst) memcpy(dst, s, n);
        return n;
    }
    if (t->bpe) /* BPE: normal tokens byte-decoded, all other types render as nothing */
        return (a & ATTR_NORMAL) ? st_bpe_decode_text(s, n, dst) : 0;
    if (!dst) return n; /* the SPM renderings are never longer than the text */
    if (a & ATTR_NORMAL) {
        size_t k = 0;
        for (uint32_t i = 0; i < n;) {
            if (i + SPACE_MARK_LEN <= n && memcmp(s + i, SPACE_MARK, SPACE_MARK_LEN) == 0) {
                dst[k++] = ' ';
                i += SPACE_MARK_LEN;
            } else {
                dst[k++] = s[i++];
            }
        }
        return k;
    }
    if (a & ATTR_BYTE) {
        /* as llama.cpp: strtol of the two characters after "<0x" */
        char hex[3] = {0, 0, 0};
        if (n > 3) hex[0] = s[3];
        if (n > 4) hex[1] = s[4];
        dst[0] = (char)(uint8_t)strtol(hex, NULL, 16);
        return 1;
    }
    return 0; /* unused / undefined tokens render as nothing */
}

st_status st_tok_load(const st_gguf *g, st_tokenizer **out, st_error *err) {
    st_status rc = ST_OK;
    if (!out) return st_error_set(err, ST_ERR_ARG, "st_tok_load: out is NULL");
    *out = NULL;
    if (!g) return st_error_set(err, ST_ERR_ARG, "st_tok_load: gguf is NULL");

    st_gguf_str model;
    if (st_gguf_find_key(g, "tokenizer.ggml.model") < 0)
        return st_error_set(err, ST_ERR_FORMAT, "tokenizer: missing key tokenizer.ggml.model");
    if (!st_gguf_get_str(g, "tokenizer.ggml.model", &model))
        return st_error_set(err, ST_ERR_FORMAT, "tokenizer: tokenizer.ggml.model is not a string");
    bool is_bpe = model.len == 4 && memcmp(model.ptr, "gpt2", 4) == 0;
    if (!is_bpe && !(model.len == 5 && memcmp(model.ptr, "llama", 5) == 0)) {
        int n = model.len > 64 ? 64 : (int)model.len;
        return st_error_set(err, ST_ERR_UNSUPPORTED,
                            "tokenizer model '%.*s' not supported (supported: llama, gpt2)", n, model.ptr);
    }
    /* BPE: the pre-tokenizer (tokenizer.ggml.pre; absent: "default") */
    const st_bpe_pre *pre = NULL;
    if (is_bpe) {
        st_gguf_str ps = {"default", 7};
        if (st_gguf_find_key(g, "tokenizer.ggml.pre") >= 0 && !st_gguf_get_str(g, "tokenizer.ggml.pre", &ps))
            return st_error_set(err, ST_ERR_FORMAT, "tokenizer: tokenizer.ggml.pre is not a string");
        pre = st_bpe_find_pre(ps.ptr, ps.len);
        if (!pre) {
            int n = ps.len > 64 ? 64 : (int)ps.len;
            char names[512];
            st_bpe_pre_names(names, sizeof names);
            return st_error_set(err, ST_ERR_UNSUPPORTED,
                                "BPE pre-tokenizer '%.*s' (tokenizer.ggml.pre) not supported (supported: %s)", n,
                                ps.ptr, names);
        }
    }

    int64_t ki = st_gguf_find_key(g, "tokenizer.ggml.tokens");
    st_gguf_vtype et;
    uint64_t n_tok = 0;
    if (ki < 0) return st_error_set(err, ST_ERR_FORMAT, "tokenizer: missing key tokenizer.ggml.tokens");
    if (!st_gguf_get_arr(g, ki, &et, &n_tok) || et != ST_GGUF_STRING)
        return st_error_set(err, ST_ERR_FORMAT, "tokenizer: tokenizer.ggml.tokens is not an array of strings");
    if (n_tok == 0) return st_error_set(err, ST_ERR_FORMAT, "tokenizer: tokenizer.ggml.tokens is empty");
    if (n_tok > (uint64_t)INT32_MAX / 4)
        return st_error_set(err, ST_ERR_FORMAT, "tokenizer: tokenizer.ggml.tokens has too many entries (%llu)",
                            (unsigned long long)n_tok);
    int32_t n = (int32_t)n_tok;

    int64_t si = st_gguf_find_key(g, "tokenizer.ggml.scores");
    const uint8_t *scores = NULL;
    st_gguf_vtype st = ST_GGUF_FLOAT32;
    if (si >= 0) {
        uint64_t ns;
        if (!st_gguf_get_arr(g, si, &st, &ns) || (st != ST_GGUF_FLOAT32 && st != ST_GGUF_FLOAT64))
            return st_error_set(err, ST_ERR_FORMAT, "tokenizer: tokenizer.ggml.scores is not an array of floats");
        if (ns != n_tok)
            return st_error_set(err, ST_ERR_FORMAT,
                                "tokenizer: tokenizer.ggml.scores has %llu entries but tokenizer.ggml.tokens has %llu",
                                (unsigned long long)ns, (unsigned long long)n_tok);
        scores = st_gguf_arr_data(g, si);
    }
    int64_t ti = st_gguf_find_key(g, "tokenizer.ggml.token_type");
    const uint8_t *types = NULL;
    st_gguf_vtype tt = ST_GGUF_INT32;
    if (ti >= 0) {
        uint64_t nt;
        if (!st_gguf_get_arr(g, ti, &tt, &nt) || (tt != ST_GGUF_INT32 && tt != ST_GGUF_UINT32))
            return st_error_set(err, ST_ERR_FORMAT, "tokenizer: tokenizer.ggml.token_type is not an array of int32");
        if (nt != n_tok)
            return st_error_set(err, ST_ERR_FORMAT,
                                "tokenizer: tokenizer.ggml.token_type has %llu entries but tokenizer.ggml.tokens has %llu",
                                (unsigned long long)nt, (unsigned long long)n_tok);
        types = st_gguf_arr_data(g, ti);
    }

    st_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return st_error_set(err, ST_ERR_NOMEM, "tokenizer: out of memory");
    t->n_vocab = n;
    t->off = malloc(sizeof *t->off * (size_t)n);
    t->len = malloc(sizeof *t->len * (size_t)n);
    t->score = malloc(sizeof *t->score * (size_t)n);
    t->type = malloc(sizeof *t->type * (size_t)n);
    t->attr = malloc(sizeof *t->attr * (size_t)n);
    t->poff = malloc(sizeof *t->poff * (size_t)n);
    t->plen = malloc(sizeof *t->plen * (size_t)n);
    t->eog = calloc((size_t)n, 1);
    uint32_t cap = 1;
    while (cap < (uint32_t)n * 2u) cap <<= 1;
    t->ht = malloc(sizeof *t->ht * cap);
    t->ht_mask = cap - 1;
    if (!t->off || !t->len || !t->score || !t->type || !t->attr || !t->poff || !t->plen || !t->eog || !t->ht) {
        rc = st_error_set(err, ST_ERR_NOMEM, "tokenizer: out of memory");
        goto fail;
    }
    memset(t->ht, 0xff, sizeof *t->ht * cap);

    /* texts: llama.cpp renames an empty token to "[EMPTY_<i>]" */
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        st_gguf_str s = st_gguf_arr_str(g, ki, (uint64_t)i);
        if (s.len > UINT32_MAX / 2) {
            rc = st_error_set(err, ST_ERR_FORMAT, "tokenizer: token %d is too long (%llu bytes)", i,
                              (unsigned long long)s.len);
            goto fail;
        }
        total += (s.len ? s.len : 24) + 1;
    }
    t->blob = malloc(total);
    if (!t->blob) {
        rc = st_error_set(err, ST_ERR_NOMEM, "tokenizer: out of memory");
        goto fail;
    }
    size_t pos = 0;
    for (int32_t i = 0; i < n; i++) {
        st_gguf_str s = st_gguf_arr_str(g, ki, (uint64_t)i);
        t->off[i] = pos;
        if (s.len == 0) {
            int k = snprintf(t->blob + pos, 24, "[EMPTY_%d]", i);
            t->len[i] = (uint32_t)k;
        } else {
            memcpy(t->blob + pos, s.ptr, s.len);
            t->len[i] = (uint32_t)s.len;
        }
        pos += t->len[i];
        t->blob[pos++] = 0;
        if (t->len[i] > t->max_token_len) t->max_token_len = t->len[i];

        float sc = 0.0f;
        if (scores) {
            if (st == ST_GGUF_FLOAT32) {
                memcpy(&sc, scores + 4 * (size_t)i, 4);
            } else {
                double d;
                memcpy(&d, scores + 8 * (size_t)i, 8);
                sc = (float)d;
            }
        }
        t->score[i] = sc;
        int32_t ty = ST_TOKTYPE_NORMAL;
        if (types) memcpy(&ty, types + 4 * (size_t)i, 4);
        uint16_t a;
        switch (ty) {
        case ST_TOKTYPE_NORMAL: a = ATTR_NORMAL; break;
        case ST_TOKTYPE_UNKNOWN: a = ATTR_UNKNOWN; break;
        case ST_TOKTYPE_CONTROL: a = ATTR_CONTROL; break;
        case ST_TOKTYPE_USER_DEFINED: a = ATTR_USER_DEFINED; break;
        case ST_TOKTYPE_UNUSED: a = ATTR_UNUSED; break;
        case ST_TOKTYPE_BYTE: a = ATTR_BYTE; break;
        default: a = 0; ty = ST_TOKTYPE_UNDEFINED; break;
        }
        t->type[i] = ty;
        t->attr[i] = a;
    }
    for (int32_t i = 0; i < n; i++) {
        const char *s = t->blob + t->off[i];
        uint32_t h = (uint32_t)st_tok__hash(s, t->len[i]) & t->ht_mask;
        while (t->ht[h] >= 0) {
            int32_t o = t->ht[h];
            if (t->len[o] == t->len[i] && memcmp(t->blob + t->off[o], s, t->len[i]) == 0) {
                rc = st_error_set(err, ST_ERR_FORMAT, "tokenizer: tokens %d and %d have the same text '%.*s'", o, i,
                                  (int)(t->len[i] > 64 ? 64 : t->len[i]), s);
                goto fail;
            }
            h = (h + 1) & t->ht_mask;
        }
        t->ht[h] = i;
    }

    /* defaults (as llama.cpp's for SPM / BPE), then the keys */
    t->sep = t->pad = t->mask = t->eot = t->eom = -1;
    t->add_eos = false;
    if (is_bpe) {
        t->bos = t->eos = 11 < n ? 11 : -1;
        t->unk = -1;
        t->add_bos = pre->add_bos;
        t->add_space_prefix = false;
        t->clean_spaces = pre->clean_spaces;
    } else {
        t->bos = 1 < n ? 1 : -1;
        t->eos = 2 < n ? 2 : -1;
        t->unk = 0;
        t->add_bos = true;
        t->add_space_prefix = true;
        t->clean_spaces = false;
    }
    int32_t fim_pre = -1, fim_suf = -1, fim_mid = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;
    struct { const char *key; int32_t *id; } ids[] = {
        {"tokenizer.ggml.bos_token_id", &t->bos},
        {"tokenizer.ggml.eos_token_id", &t->eos},
        {"tokenizer.ggml.eot_token_id", &t->eot},
        {"tokenizer.ggml.eom_token_id", &t->eom},
        {"tokenizer.ggml.unknown_token_id", &t->unk},
        {"tokenizer.ggml.seperator_token_id", &t->sep},
        {"tokenizer.ggml.padding_token_id", &t->pad},
        {"tokenizer.ggml.mask_token_id", &t->mask},
        {"tokenizer.ggml.fim_pre_token_id", &fim_pre},
        {"tokenizer.ggml.fim_suf_token_id", &fim_suf},
        {"tokenizer.ggml.fim_mid_token_id", &fim_mid},
        {"tokenizer.ggml.fim_pad_token_id", &fim_pad},
        {"tokenizer.ggml.fim_rep_token_id", &fim_rep},
        {"tokenizer.ggml.fim_sep_token_id", &fim_sep},
        {"tokenizer.ggml.prefix_token_id", &fim_pre},
        {"tokenizer.ggml.suffix_token_id", &fim_suf},
        {"tokenizer.ggml.middle_token_id", &fim_mid},
    };
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++)
        if ((rc = read_id_key(g, ids[k].key, n, ids[k].id, err))) goto fail;
    if ((rc = read_bool_key(g, "tokenizer.ggml.add_bos_token", &t->add_bos, err))) goto fail;
    if ((rc = read_bool_key(g, "tokenizer.ggml.add_eos_token", &t->add_eos, err))) goto fail;
    if ((rc = read_bool_key(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, err))) goto fail;
    if (t->add_bos && t->bos < 0) {
        rc = st_error_set(err, ST_ERR_FORMAT, "tokenizer: add_bos_token is set but there is no BOS token");
        goto fail;
    }
    if (t->add_eos && t->eos < 0) {
        rc = st_error_set(err, ST_ERR_FORMAT, "tokenizer: add_eos_token is set but there is no EOS token");
        goto fail;
    }
    if (t->unk >= n) t->unk = -1;
    if (is_bpe && (rc = st_bpe_init(t, g, pre, err))) goto fail;

    /* special tokens recognised by their text, as llama.cpp does */
    t->eot = detect_by_text(t, t->eot, EOT_TEXTS);
    t->eom = detect_by_text(t, t->eom, EOM_TEXTS);
    (void)detect_by_text(t, fim_pre, FIM_PRE_TEXTS);
    (void)detect_by_text(t, fim_suf, FIM_SUF_TEXTS);
    (void)detect_by_text(t, fim_mid, FIM_MID_TEXTS);
    fim_pad = detect_by_text(t, fim_pad, FIM_PAD_TEXTS);
    fim_rep = detect_by_text(t, fim_rep, FIM_REP_TEXTS);
    fim_sep = detect_by_text(t, fim_sep, FIM_SEP_TEXTS);

    /* end-of-generation set */
    if (fim_pad >= 0) t->eog[fim_pad] = 1;
    if (fim_rep >= 0) t->eog[fim_rep] = 1;
    if (fim_sep >= 0) t->eog[fim_sep] = 1;
    for (int k = 0; EOG_TEXTS[k]; k++) {
        int32_t id = find_cstr(t, EOG_TEXTS[k]);
        if (id < 0) continue;
        t->eog[id] = 1;
        force_control(t, id);
    }
    {
        static const char *const always_render[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>", NULL};
        for (int k = 0; always_render[k]; k++) {
            int32_t id = find_cstr(t, always_render[k]);
            if (id >= 0) {
                t->attr[id] = ATTR_USER_DEFINED;
                t->type[id] = ST_TOKTYPE_USER_DEFINED;
            }
        }
    }
    if (t->eos >= 0) t->eog[t->eos] = 1;
    if (t->eot >= 0) t->eog[t->eot] = 1;
    if (t->eom >= 0) t->eog[t->eom] = 1;
    {
        /* harmony / solar-open: "<|end|>" is not EOG when <|return|>+<|call|> (or <|calls|>+<|flush|>) exist */
        int32_t ret = find_cstr(t, "<|return|>"), call = find_cstr(t, "<|call|>"), calls = find_cstr(t, "<|calls|>");
        int32_t flush = find_cstr(t, "<|flush|>"), end = find_cstr(t, "<|end|>");
        bool has_call = (call >= 0 && t->eog[call]) || (calls >= 0 && t->eog[calls]);
        bool has_ret = ret >= 0 && t->eog[ret], has_flush = flush >= 0 && t->eog[flush];
        if (end >= 0 && t->eog[end] && ((has_ret && has_call) || (has_call && has_flush))) {
            t->eog[end] = 0;
            t->attr[end] = ATTR_USER_DEFINED;
            t->type[end] = ST_TOKTYPE_USER_DEFINED;
        }
        /* gemma4 / paddleocr: "</s>" is not EOG when "<|tool_response>" is */
        int32_t tr = find_cstr(t, "<|tool_response>"), s = find_cstr(t, "</s>");
        if (tr >= 0 && t->eog[tr] && s >= 0 && t->eog[s]) {
            t->eog[s] = 0;
            t->attr[s] = ATTR_NORMAL;
            t->type[s] = ST_TOKTYPE_NORMAL;
        }
    }

    /* special-token cache: control, user-defined and unknown tokens, longest first */
    int32_t ns = 0;
    for (int32_t i = 0; i < n; i++)
        if (t->attr[i] & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN)) ns++;
    t->special = malloc(sizeof *t->special * (size_t)(ns ? ns : 1));
    if (!t->special) {
        rc = st_error_set(err, ST_ERR_NOMEM, "tokenizer: out of memory");
        goto fail;
    }
    for (int32_t i = 0; i < n; i++)
        if (t->attr[i] & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN)) t->special[t->n_special++] = i;
    qsort_r(t->special, (size_t)t->n_special, sizeof *t->special, cmp_special, t);

    /* rendered pieces (as llama.cpp's cache_token_to_piece, special = true) */
    if (is_bpe) {
        total = 1;
        for (int32_t i = 0; i < n; i++) total += render_piece(t, i, NULL);
    }
    t->pblob = malloc(total);
    if (!t->pblob) {
        rc = st_error_set(err, ST_ERR_NOMEM, "tokenizer: out of memory");
        goto fail;
    }
    pos = 0;
    for (int32_t i = 0; i < n; i++) {
        t->poff[i] = pos;
        t->plen[i] = (uint32_t)render_piece(t, i, t->pblob + pos);
        pos += t->plen[i];
    }

    /* per-model attributes: Phi-3 strips whitespace after its special tokens */
    {
        st_gguf_str name;
        if (st_gguf_get_str(g, "general.name", &name) &&
            (contains_ci(name.ptr, name.len, "phi-3") || contains_ci(name.ptr, name.len, "phi3"))) {
            for (int32_t k = 0; k < t->n_special; k++) t->attr[t->special[k]] |= ATTR_RSTRIP;
            int32_t id;
            if ((id = find_cstr(t, "</s>")) >= 0) t->attr[id] |= ATTR_RSTRIP;
            static const char *const no_rstrip[] = {"<unk>", "<s>", "<|endoftext|>", NULL};
            for (int k = 0; no_rstrip[k]; k++)
                if ((id = find_cstr(t, no_rstrip[k])) >= 0) t->attr[id] &= (uint16_t)~ATTR_RSTRIP;
        }
    }

    /* byte tokens: BPE: the byte's GPT-2 character; SPM (fallback): "<0xNN>",
     * else the single byte as a token */
    for (int b = 0; b < 256 && is_bpe; b++) {
        char buf[4];
        int k = st_utf8_encode(st_gpt2_byte_to_cpt((uint8_t)b), buf);
        t->byte_tok[b] = lookup(t, buf, (size_t)k);
    }
    for (int b = 0; b < 256 && !is_bpe; b++) {
        char buf[8];
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        int32_t id = find_cstr(t, buf);
        if (id < 0) {
            char c = (char)b;
            id = lookup(t, &c, 1);
        }
        t->byte_tok[b] = id;
    }

    *out = t;
    return ST_OK;
fail:
    st_tok_free(t);
    return rc;
}

/* ------------------------------------------------------------------ */
/* accessors                                                           */

int32_t st_tok_n_vocab(const st_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t st_tok_bos(const st_tokenizer *t) { return t ? t->bos : -1; }
int32_t st_tok_eos(const st_tokenizer *t) { return t ? t->eos : -1; }
int32_t st_tok_unk(const st_tokenizer *t) { return t ? t->unk : -1; }
int32_t st_tok_pad(const st_tokenizer *t) { return t ? t->pad : -1; }
int32_t st_tok_eot(const st_tokenizer *t) { return t ? t->eot : -1; }
bool st_tok_add_bos(const st_tokenizer *t) { return t && t->add_bos; }
bool st_tok_add_eos(const st_tokenizer *t) { return t && t->add_eos; }
bool st_tok_add_space_prefix(const st_tokenizer *t) { return t && t->add_space_prefix; }

bool st_tok_is_eog(const st_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_vocab && t->eog[id];
}

int st_tok_type(const st_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab) return ST_TOKTYPE_UNDEFINED;
    return t->type[id];
}

const char *st_tok_piece(const st_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab) return NULL;
    return t->blob + t->off[id];
}

int32_t st_tok_find(const st_tokenizer *t, const char *text, size_t len) {
    if (!t || (!text && len)) return -1;
    return lookup(t, text, len);
}

/* ------------------------------------------------------------------ */
/* encoding                                                            */

typedef st_tok_out outbuf;
#define emit st_tok__emit

typedef struct {
    uint32_t off;  /* into the escaped text */
    uint32_t n;    /* bytes; 0 once merged into its left neighbour */
    int32_t prev, next;
} sym_t;

typedef struct {
    float score;
    int32_t left, right;
    uint32_t size;
} bigram_t;

typedef struct {
    char *text;
    size_t text_cap;
    sym_t *sym;
    size_t sym_cap;
    bigram_t *heap;
    size_t heap_n, heap_cap;
} scratch;

bool st_tok__grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}
#define grow st_tok__grow

/* a comes out of the queue before b: higher score, then leftmost */
static inline bool before(const bigram_t *a, const bigram_t *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static bool heap_push(scratch *s, bigram_t b) {
    if (!grow((void **)&s->heap, &s->heap_cap, s->heap_n + 1, sizeof *s->heap)) return false;
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&b, &s->heap[p])) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = b;
    return true;
}

static bigram_t heap_pop(scratch *s) {
    bigram_t top = s->heap[0];
    bigram_t last = s->heap[--s->heap_n];
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

static bool try_add_bigram(const st_tokenizer *t, scratch *s, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return true;
    /* adjacent symbols are contiguous in the text */
    uint32_t size = s->sym[left].n + s->sym[right].n;
    int32_t id = lookup(t, s->text + s->sym[left].off, size);
    if (id < 0) return true;
    bigram_t b = {t->score[id], left, right, size};
    return heap_push(s, b);
}

/* Tokenizes one raw fragment (llm_tokenizer_spm_session::tokenize).
 * Returns false on allocation failure or a symbol that cannot be encoded. */
static bool spm_fragment(const st_tokenizer *t, scratch *s, const char *src, size_t len, bool prefix, outbuf *o) {
    /* escape: optional "▁" prefix, ' ' -> "▁" */
    size_t need = (len + 1) * SPACE_MARK_LEN;
    if (need > (size_t)INT32_MAX) return false;
    if (!grow((void **)&s->text, &s->text_cap, need, 1)) return false;
    size_t tl = 0;
    if (prefix) {
        memcpy(s->text, SPACE_MARK, SPACE_MARK_LEN);
        tl = SPACE_MARK_LEN;
    }
    for (size_t i = 0; i < len; i++) {
        if (src[i] == ' ') {
            memcpy(s->text + tl, SPACE_MARK, SPACE_MARK_LEN);
            tl += SPACE_MARK_LEN;
        } else {
            s->text[tl++] = src[i];
        }
    }
    if (tl == 0) return true;

    /* split into UTF-8 characters (length from the lead byte, as llama.cpp) */
    if (!grow((void **)&s->sym, &s->sym_cap, tl, sizeof *s->sym)) return false;
    static const uint8_t utf8_len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    int32_t nsym = 0;
    for (size_t off = 0; off < tl;) {
        size_t cl = utf8_len[(uint8_t)s->text[off] >> 4];
        if (cl > tl - off) cl = tl - off;
        s->sym[nsym].off = (uint32_t)off;
        s->sym[nsym].n = (uint32_t)cl;
        s->sym[nsym].prev = nsym - 1;
        off += cl;
        s->sym[nsym].next = off == tl ? -1 : nsym + 1;
        nsym++;
    }

    s->heap_n = 0;
    for (int32_t i = 1; i < nsym; i++)
        if (!try_add_bigram(t, s, i - 1, i)) return false;

    while (s->heap_n) {
        bigram_t b = heap_pop(s);
        sym_t *l = &s->sym[b.left], *r = &s->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s->sym[r->next].prev = b.left;
        if (!try_add_bigram(t, s, l->prev, b.left)) return false;
        if (!try_add_bigram(t, s, b.left, s->sym[b.left].next)) return false;
    }

    /* Every merged symbol is a vocab token, so llama.cpp's resegment via
     * rev_merge never applies: a symbol is either a token or a single
     * character that falls back to its bytes. */
    for (int32_t i = 0; i != -1; i = s->sym[i].next) {
        const char *p = s->text + s->sym[i].off;
        uint32_t sn = s->sym[i].n;
        int32_t id = lookup(t, p, sn);
        if (id >= 0) {
            emit(o, id);
            continue;
        }
        bool all = true;
        for (uint32_t j = 0; j < sn; j++)
            if (t->byte_tok[(uint8_t)p[j]] < 0) all = false;
        if (all) {
            for (uint32_t j = 0; j < sn; j++) emit(o, t->byte_tok[(uint8_t)p[j]]);
        } else if (t->unk >= 0) {
            /* no byte tokens (llama.cpp would throw here): one UNK per character */
            emit(o, t->unk);
        } else {
            return false;
        }
    }
    return true;
}

typedef struct {
    int32_t tok;  /* -1: raw text */
    size_t off, len;
} frag_t;

static inline bool is_space_c(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* tokenizer_st_partition: split raw fragments around special-token texts. */
static bool partition(const st_tokenizer *t, const char *text, bool parse_special, frag_t **fr, size_t *nfr,
                      size_t *capfr) {
    frag_t *nb = NULL;
    size_t ncap = 0;
    for (int32_t k = 0; k < t->n_special; k++) {
        int32_t id = t->special[k];
        uint16_t a = t->attr[id];
        if (!parse_special && (a & (ATTR_CONTROL | ATTR_UNKNOWN))) continue;
        const char *stext = t->blob + t->off[id];
        size_t slen = t->len[id];
        size_t nn = 0;
        bool any = false;
        for (size_t f = 0; f < *nfr; f++) {
            frag_t cur = (*fr)[f];
            if (cur.tok >= 0 || cur.len < slen) {
                if (!grow((void **)&nb, &ncap, nn + 1, sizeof *nb)) goto oom;
                nb[nn++] = cur;
                continue;
            }
            size_t off = cur.off, len = cur.len;
            for (;;) {
                const char *m = len >= slen ? memmem(text + off, len, stext, slen) : NULL;
                if (!m) {
                    if (len > 0) {
                        if (!grow((void **)&nb, &ncap, nn + 1, sizeof *nb)) goto oom;
                        nb[nn++] = (frag_t){-1, off, len};
                    }
                    break;
                }
                any = true;
                size_t mpos = (size_t)(m - text);
                size_t llen = mpos - off;
                if (a & ATTR_LSTRIP)
                    while (llen > 0 && is_space_c(text[off + llen - 1])) llen--;
                if (!grow((void **)&nb, &ncap, nn + 2, sizeof *nb)) goto oom;
                if (llen > 0) nb[nn++] = (frag_t){-1, off, llen};
                nb[nn++] = (frag_t){id, 0, 0};
                size_t roff = mpos + slen, rlen = off + len - roff;
                if (a & ATTR_RSTRIP)
                    while (rlen > 0 && is_space_c(text[roff])) {
                        roff++;
                        rlen--;
                    }
                off = roff;
                len = rlen;
            }
        }
        if (any) {
            frag_t *tmp = *fr;
            size_t tc = *capfr;
            *fr = nb;
            *capfr = ncap;
            *nfr = nn;
            nb = tmp;
            ncap = tc;
        }
    }
    free(nb);
    return true;
oom:
    free(nb);
    return false;
}

int64_t st_tok_encode(const st_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
                      int32_t *ids, int64_t cap) {
    if (!t || (!text && len) || cap < 0 || (!ids && cap > 0)) return -1;
    outbuf o = {ids, cap, 0};
    frag_t *fr = NULL;
    size_t nfr = 0, capfr = 0;
    scratch s = {0};
    st_bpe_scratch *bs = NULL;
    int64_t ret = -1;

    if (len > 0) {
        if (!grow((void **)&fr, &capfr, 1, sizeof *fr)) goto done;
        fr[0] = (frag_t){-1, 0, len};
        nfr = 1;
        if (!partition(t, text, parse_special, &fr, &nfr, &capfr)) goto done;
    }

    bool prev_special = true; /* the first fragment gets the space prefix */
    if (add_special && t->add_bos) {
        emit(&o, t->bos);
        prev_special = true;
    }
    for (size_t f = 0; f < nfr; f++) {
        if (fr[f].tok >= 0) {
            emit(&o, fr[f].tok);
            prev_special = true;
        } else if (t->bpe) {
            if (!st_bpe_fragment(t, &bs, text + fr[f].off, fr[f].len, &o)) goto done;
        } else {
            if (!spm_fragment(t, &s, text + fr[f].off, fr[f].len, t->add_space_prefix && prev_special, &o))
                goto done;
            prev_special = false;
        }
    }
    if (add_special && t->add_eos) emit(&o, t->eos);
    ret = o.n;
done:
    free(fr);
    free(s.text);
    free(s.sym);
    free(s.heap);
    st_bpe_scratch_free(bs);
    return ret;
}

/* ------------------------------------------------------------------ */
/* decoding                                                            */

int st_tok_token_to_piece(const st_tokenizer *t, int32_t id, char *buf, int cap, bool special) {
    if (!t || id < 0 || id >= t->n_vocab) return 0;
    if (!special && (t->attr[id] & (ATTR_UNKNOWN | ATTR_CONTROL))) return 0;
    int n = (int)t->plen[id];
    if (buf && cap > 0) memcpy(buf, t->pblob + t->poff[id], (size_t)(n < cap ? n : cap));
    return n;
}

/* Shared by decode and detokenize: strip_at is the index of the token whose
 * piece loses one leading space (-1: none). */
static int64_t decode_impl(const st_tokenizer *t, const int32_t *ids, int64_t n, char *buf, int64_t cap,
                           int64_t strip_at, bool special) {
    int64_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_vocab) return -1;
        if (!special && (t->attr[id] & (ATTR_UNKNOWN | ATTR_CONTROL))) continue;
        const char *p = t->pblob + t->poff[id];
        int64_t pn = t->plen[id];
        if (i == strip_at && pn > 0 && p[0] == ' ') {
            p++;
            pn--;
        }
        if (cap > 0 && total < cap - 1) {
            int64_t room = cap - 1 - total;
            memcpy(buf + total, p, (size_t)(pn < room ? pn : room));
        }
        total += pn;
    }
    if (cap > 0) buf[total < cap - 1 ? total : cap - 1] = 0;
    return total;
}

int64_t st_tok_decode(const st_tokenizer *t, const int32_t *ids, int64_t n, char *buf, int64_t cap,
                      bool remove_leading_space, bool special) {
    if (!t || n < 0 || (!ids && n > 0) || cap < 0 || (!buf && cap > 0)) return -1;
    int64_t strip_at = -1;
    if (remove_leading_space && t->add_space_prefix) {
        strip_at = 0;
        /* the space the encoder put after BOS */
        if (n > 0 && t->bos >= 0 && ids[0] == t->bos) strip_at = 1;
    }
    return decode_impl(t, ids, n, buf, cap, strip_at, special);
}

int64_t st_tok_detokenize(const st_tokenizer *t, const int32_t *ids, int64_t n, char *buf, int64_t cap,
                          bool remove_special, bool unparse_special) {
    if (!t || n < 0 || (!ids && n > 0) || cap < 0 || (!buf && cap > 0)) return -1;
    int64_t strip_at = t->add_space_prefix ? 0 : -1;
    if (remove_special && t->add_bos && n > 0 && ids[0] == t->bos) {
        strip_at = -1;
        ids++;
        n--;
    }
    if (remove_special && t->add_eos && n > 0 && ids[n - 1] == t->eos) n--;
    if (!t->clean_spaces) return decode_impl(t, ids, n, buf, cap, strip_at, unparse_special);
    /* clean_up_tokenization_spaces works on the whole text: render it all,
     * clean, then copy what fits */
    int64_t need = decode_impl(t, ids, n, NULL, 0, strip_at, unparse_special);
    if (need < 0) return -1;
    char *tmp = malloc((size_t)need + 1);
    if (!tmp) return -1;
    decode_impl(t, ids, n, tmp, need + 1, strip_at, unparse_special);
    int64_t m = (int64_t)st_bpe_clean_spaces(tmp, (size_t)need);
    if (cap > 0) {
        int64_t k = m < cap - 1 ? m : cap - 1;
        memcpy(buf, tmp, (size_t)k);
        buf[k] = 0;
    }
    free(tmp);
    return m;
}
