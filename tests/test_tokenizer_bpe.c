#define _GNU_SOURCE
/* test_tokenizer_bpe.c — the byte-level BPE tokenizer (tokenizer.ggml.model =
 * "gpt2") against llama.cpp's own test vectors for three vocabs (GPT-2,
 * Llama-3 "llama-bpe", Qwen2; 46 cases each, add_special = false,
 * parse_special = false), round trips, special tokens, piece rendering,
 * the pre-tokenizer splitters and Unicode tables, errors and speed. */
#include "gguf.h"
#include "testutil.h"
#include "tokenizer.h"
#include "unicode.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GPT2_VOCAB "refs/tokenizer/ggml-vocab-gpt-2.gguf"
#define LLAMA3_VOCAB "refs/tokenizer/ggml-vocab-llama-bpe.gguf"
#define QWEN2_VOCAB "refs/tokenizer/ggml-vocab-qwen2.gguf"

static st_tokenizer *load_path(const char *path) {
    st_error err = {0};
    st_gguf *g = NULL;
    st_status rc = st_gguf_open(path, &g, &err);
    cr_assert_eq(rc, ST_OK, "st_gguf_open(%s): %s", path, err.msg);
    st_tokenizer *t = NULL;
    rc = st_tok_load(g, &t, &err);
    st_gguf_close(g); /* the tokenizer must not depend on the mapping */
    cr_assert_eq(rc, ST_OK, "st_tok_load(%s): %s", path, err.msg);
    cr_assert_not_null(t);
    return t;
}

static st_tokenizer *load_or_skip(const char *rel) {
    const char *p = tu_shared_path(rel);
    if (!tu_file_exists(p)) cr_skip_test("shared test data absent (%s)", p);
    return load_path(p);
}

static int32_t *encode(const st_tokenizer *t, const char *s, size_t len, bool add_special, bool parse_special,
                       int64_t *n) {
    int64_t need = st_tok_encode(t, s, len, add_special, parse_special, NULL, 0);
    cr_assert_geq(need, 0, "encode failed");
    int32_t *ids = malloc(sizeof *ids * (size_t)(need + 1));
    int64_t got = st_tok_encode(t, s, len, add_special, parse_special, ids, need);
    cr_assert_eq(got, need);
    *n = need;
    return ids;
}

static char *decode(const st_tokenizer *t, const int32_t *ids, int64_t n, bool special, int64_t *len) {
    int64_t need = st_tok_decode(t, ids, n, NULL, 0, false, special);
    cr_assert_geq(need, 0);
    char *buf = malloc((size_t)need + 1);
    int64_t got = st_tok_decode(t, ids, n, buf, need + 1, false, special);
    cr_assert_eq(got, need);
    if (len) *len = need;
    return buf;
}

static void fmt_ids(char *out, size_t cap, const int32_t *ids, int64_t n) {
    size_t k = 0;
    out[0] = 0;
    for (int64_t i = 0; i < n && k + 16 < cap; i++) k += (size_t)snprintf(out + k, cap - k, "%s%d", i ? " " : "", ids[i]);
}

/* ---- the 46 llama.cpp cases -------------------------------------------- */


static int load_cases(const char *vocab, tu_vocab_case **out) {
    char why[512];
    int nc = tu_vocab_cases_load(vocab, out, why, sizeof why);
    cr_assert_geq(nc, 0, "%s", why);
    return nc;
}

#define free_cases tu_vocab_cases_free

/* all 46 cases identical; prints each differing input and both id lists */
static void check_vectors(const char *vocab, const char *name) {
    st_tokenizer *t = load_or_skip(vocab);
    tu_vocab_case *cs;
    int nc = load_cases(vocab, &cs);
    cr_assert_eq(nc, 46, "expected 46 cases, found %d", nc);
    int fails = 0;
    static char a[16384], b[16384];
    for (int i = 0; i < nc; i++) {
        int64_t n;
        int32_t *ids = encode(t, cs[i].text, cs[i].len, false, false, &n);
        if (n != cs[i].n || memcmp(ids, cs[i].ids, sizeof *ids * (size_t)n) != 0) {
            fmt_ids(a, sizeof a, cs[i].ids, cs[i].n);
            fmt_ids(b, sizeof b, ids, n);
            cr_log_error("%s case %d: input '%s'\n  expected: %s\n  got:      %s", name, i, cs[i].text, a, b);
            fails++;
        }
        free(ids);
    }
    cr_log_info("%s: %d/%d cases identical", name, nc - fails, nc);
    cr_expect_eq(fails, 0, "%s: %d of %d cases differ", name, fails, nc);
    free_cases(cs, nc);
    st_tok_free(t);
}

Test(tokenizer_bpe, gpt2_46_cases) { check_vectors(GPT2_VOCAB, "gpt-2"); }
Test(tokenizer_bpe, llama_bpe_46_cases) { check_vectors(LLAMA3_VOCAB, "llama-bpe"); }
Test(tokenizer_bpe, qwen2_46_cases) { check_vectors(QWEN2_VOCAB, "qwen2"); }

/* decode(encode(x)) == x, with and without the BOS the vocab asks for;
 * llama.cpp's detokenize agrees where it does not clean up spaces */
static void check_round_trip(const char *vocab, bool clean_spaces) {
    st_tokenizer *t = load_or_skip(vocab);
    tu_vocab_case *cs;
    int nc = load_cases(vocab, &cs);
    int fails = 0;
    for (int i = 0; i < nc; i++) {
        for (int add = 0; add < 2; add++) {
            int64_t n, dl;
            int32_t *ids = encode(t, cs[i].text, cs[i].len, add, false, &n);
            char *s = decode(t, ids, n, false, &dl);
            if ((size_t)dl != cs[i].len || memcmp(s, cs[i].text, cs[i].len) != 0) {
                cr_log_error("%s round trip %d (add_special %d): '%s' -> '%s'", vocab, i, add, cs[i].text, s);
                fails++;
            }
            char buf[4096];
            int64_t m = st_tok_detokenize(t, ids, n, buf, sizeof buf, true, false);
            cr_assert(m >= 0 && m < (int64_t)sizeof buf);
            if (!clean_spaces) {
                cr_expect(m == dl && memcmp(buf, s, (size_t)m) == 0, "%s detokenize %d: '%s'", vocab, i, buf);
            } else {
                cr_expect_leq(m, dl);
            }
            free(s);
            free(ids);
        }
    }
    cr_expect_eq(fails, 0);
    free_cases(cs, nc);
    st_tok_free(t);
}

Test(tokenizer_bpe, gpt2_round_trip) { check_round_trip(GPT2_VOCAB, true); }
Test(tokenizer_bpe, llama_bpe_round_trip) { check_round_trip(LLAMA3_VOCAB, true); }
Test(tokenizer_bpe, qwen2_round_trip) { check_round_trip(QWEN2_VOCAB, false); }

/* ---- vocab properties ---------------------------------------------------- */

static void expect_ids(const st_tokenizer *t, const char *s, bool add_special, bool parse_special,
                       const int32_t *want, int64_t nwant) {
    int64_t n;
    int32_t *ids = encode(t, s, strlen(s), add_special, parse_special, &n);
    char a[512], b[512];
    fmt_ids(a, sizeof a, want, nwant);
    fmt_ids(b, sizeof b, ids, n);
    cr_expect(n == nwant && (n == 0 || memcmp(ids, want, sizeof *ids * (size_t)n) == 0),
              "'%s' (add_special %d, parse_special %d): expected [%s], got [%s]", s, add_special, parse_special, a, b);
    free(ids);
}

#define IDS(...) (int32_t[]){__VA_ARGS__}, (int64_t)(sizeof((int32_t[]){__VA_ARGS__}) / sizeof(int32_t))

Test(tokenizer_bpe, gpt2_properties) {
    st_tokenizer *t = load_or_skip(GPT2_VOCAB);
    cr_expect_eq(st_tok_n_vocab(t), 50257);
    cr_expect_eq(st_tok_bos(t), 50256);
    cr_expect_eq(st_tok_eos(t), 50256);
    cr_expect_eq(st_tok_unk(t), -1);
    cr_expect(!st_tok_add_bos(t));
    cr_expect(!st_tok_add_eos(t));
    cr_expect(!st_tok_add_space_prefix(t));
    cr_expect(st_tok_is_eog(t, 50256), "<|endoftext|>");
    cr_expect(!st_tok_is_eog(t, 15496));
    cr_expect_str_eq(st_tok_piece(t, 15496), "Hello");
    cr_expect_str_eq(st_tok_piece(t, 995), "\xC4\xA0world"); /* "Ġworld" */
    expect_ids(t, "Hello world", false, false, IDS(15496, 995));
    expect_ids(t, "Hello world", true, false, IDS(15496, 995)); /* GPT-2 adds nothing */
    expect_ids(t, "", true, false, NULL, 0);
    st_tok_free(t);
}

Test(tokenizer_bpe, llama_bpe_properties) {
    st_tokenizer *t = load_or_skip(LLAMA3_VOCAB);
    cr_expect_eq(st_tok_n_vocab(t), 128256);
    cr_expect_eq(st_tok_bos(t), 128000);
    cr_expect_eq(st_tok_eos(t), 128001);
    /* no eot key: found by text; <|end_of_text|> and <|eot_id|> both qualify
     * and the lowest id wins (both are end-of-generation either way) */
    cr_expect_eq(st_tok_eot(t), 128001);
    cr_expect(st_tok_add_bos(t));
    cr_expect(!st_tok_add_eos(t));
    cr_expect(st_tok_is_eog(t, 128001), "<|end_of_text|>");
    cr_expect(st_tok_is_eog(t, 128009), "<|eot_id|>");
    cr_expect(!st_tok_is_eog(t, 128000));
    cr_expect(!st_tok_is_eog(t, 128006), "<|start_header_id|>");
    cr_expect_eq(st_tok_type(t, 128000), ST_TOKTYPE_CONTROL);
    cr_expect_eq(st_tok_type(t, 9906), ST_TOKTYPE_NORMAL);
    expect_ids(t, "Hello world", false, false, IDS(9906, 1917));
    expect_ids(t, "Hello world", true, false, IDS(128000, 9906, 1917));
    expect_ids(t, "", true, false, IDS(128000));
    st_tok_free(t);
}

Test(tokenizer_bpe, qwen2_properties) {
    st_tokenizer *t = load_or_skip(QWEN2_VOCAB);
    cr_expect_eq(st_tok_n_vocab(t), 151936);
    cr_expect_eq(st_tok_bos(t), 151643);
    cr_expect_eq(st_tok_eos(t), 151643);
    cr_expect_eq(st_tok_pad(t), 151643);
    cr_expect(!st_tok_add_bos(t));
    cr_expect(st_tok_is_eog(t, 151643), "<|endoftext|>");
    cr_expect(st_tok_is_eog(t, 151645), "<|im_end|>");
    cr_expect(!st_tok_is_eog(t, 151644), "<|im_start|>");
    /* the regular token "</s>" is control-looking: llama.cpp makes it control and EOG */
    cr_expect_eq(st_tok_find(t, "</s>", 4), 128247);
    cr_expect(st_tok_is_eog(t, 128247));
    cr_expect_eq(st_tok_type(t, 128247), ST_TOKTYPE_CONTROL);
    cr_expect_eq(st_tok_type(t, 151700), ST_TOKTYPE_UNUSED);
    expect_ids(t, "Hello world", false, false, IDS(9707, 1879));
    expect_ids(t, "Hello world", true, false, IDS(9707, 1879));
    st_tok_free(t);
}

/* ---- special tokens ---------------------------------------------------- */

Test(tokenizer_bpe, special_tokens) {
    st_tokenizer *t = load_or_skip(LLAMA3_VOCAB);
    const char *chat = "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>";
    expect_ids(t, chat, true, true, IDS(128000, 128006, 882, 128007, 271, 13347, 0, 128009));
    expect_ids(t, "<|begin_of_text|>Hello<|eot_id|>", false, true, IDS(128000, 9906, 128009));
    /* without parse_special the same text is ordinary text */
    int64_t n;
    int32_t *ids = encode(t, chat, strlen(chat), false, false, &n);
    for (int64_t i = 0; i < n; i++) cr_expect_lt(ids[i], 128000, "no special id without parse_special");
    char *s = decode(t, ids, n, false, NULL);
    cr_expect_str_eq(s, chat);
    free(s);
    free(ids);
    /* decoding: special tokens render only with special = true */
    ids = encode(t, chat, strlen(chat), true, true, &n);
    s = decode(t, ids, n, false, NULL);
    cr_expect_str_eq(s, "user\n\nHi!");
    free(s);
    s = decode(t, ids, n, true, NULL);
    cr_expect_str_eq(s, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>");
    free(s);
    free(ids);
    st_tok_free(t);

    t = load_or_skip(QWEN2_VOCAB);
    expect_ids(t, "<|im_start|>user\nHi<|im_end|>\n", false, true, IDS(151644, 872, 198, 13048, 151645, 198));
    expect_ids(t, "a</s>b", false, true, IDS(64, 128247, 65));
    ids = encode(t, "<|im_start|>", 12, false, false, &n);
    cr_expect_gt(n, 1);
    free(ids);
    st_tok_free(t);

    t = load_or_skip(GPT2_VOCAB);
    expect_ids(t, "Hi<|endoftext|>", false, true, IDS(17250, 50256));
    st_tok_free(t);
}

/* ---- pieces --------------------------------------------------------------- */

Test(tokenizer_bpe, token_to_piece) {
    st_tokenizer *t = load_or_skip(GPT2_VOCAB);
    char buf[64];
    int n = st_tok_token_to_piece(t, 995, buf, sizeof buf, false);
    cr_expect(n == 6 && memcmp(buf, " world", 6) == 0);
    n = st_tok_token_to_piece(t, 198, buf, sizeof buf, false); /* "Ċ" */
    cr_expect(n == 1 && buf[0] == '\n');
    n = st_tok_token_to_piece(t, 50256, buf, sizeof buf, false);
    cr_expect_eq(n, 0, "control tokens render only with special");
    n = st_tok_token_to_piece(t, 50256, buf, sizeof buf, true);
    cr_expect(n == 13 && memcmp(buf, "<|endoftext|>", 13) == 0);
    cr_expect_eq(st_tok_token_to_piece(t, 995, NULL, 0, false), 6);

    /* streaming: the pieces of an emoji's byte tokens concatenate to its UTF-8 */
    const char *emoji = "\xF0\x9F\xA6\x99 \xE6\x97\xA5\xE6\x9C\xAC";
    int64_t nid;
    int32_t *ids = encode(t, emoji, strlen(emoji), false, false, &nid);
    char acc[64];
    int k = 0;
    for (int64_t i = 0; i < nid; i++) k += st_tok_token_to_piece(t, ids[i], acc + k, (int)sizeof acc - k, false);
    cr_expect(k == (int)strlen(emoji) && memcmp(acc, emoji, (size_t)k) == 0);
    free(ids);

    /* clean_up_tokenization_spaces (GPT-2: on) in detokenize only */
    const char *txt = "Hello , world ! It ' s I 'm";
    ids = encode(t, txt, strlen(txt), false, false, &nid);
    char *d = decode(t, ids, nid, false, NULL);
    cr_expect_str_eq(d, txt, "decode keeps the text");
    free(d);
    cr_expect_eq(st_tok_detokenize(t, ids, nid, buf, sizeof buf, false, false), 22);
    cr_expect_str_eq(buf, "Hello, world! It's I'm");
    /* a short buffer: NUL-terminated, full length reported */
    cr_expect_eq(st_tok_detokenize(t, ids, nid, buf, 6, false, false), 22);
    cr_expect_str_eq(buf, "Hello");
    free(ids);
    st_tok_free(t);
}

/* every token whose text is valid UTF-8: decode -> encode -> decode is stable
 * (as llama.cpp's test-tokenizer-1-bpe) */
static bool valid_utf8(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < n;) {
        unsigned c = s[i], cp;
        size_t k;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1Fu; }
        else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 0x0Fu; }
        else if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 0x07u; }
        else return false;
        if (i + k >= n) return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + j] & 0x3Fu);
        }
        if (k == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return false;
        if (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) return false;
        i += k + 1;
    }
    return true;
}

static void check_every_token(const char *vocab) {
    st_tokenizer *t = load_or_skip(vocab);
    int bad = 0, checked = 0;
    char s1[512], s2[2048];
    int32_t ids[512];
    for (int32_t id = 0; id < st_tok_n_vocab(t); id++) {
        if (st_tok_type(t, id) != ST_TOKTYPE_NORMAL) continue;
        int64_t n1 = st_tok_decode(t, &id, 1, s1, sizeof s1, false, true);
        cr_assert(n1 >= 0 && n1 < (int64_t)sizeof s1);
        if (!valid_utf8(s1, (size_t)n1)) continue;
        checked++;
        int64_t m = st_tok_encode(t, s1, (size_t)n1, false, false, ids, 512);
        cr_assert(m >= 0 && m <= 512);
        int64_t n2 = st_tok_decode(t, ids, m, s2, sizeof s2, false, true);
        if (n2 != n1 || memcmp(s1, s2, (size_t)n1) != 0) {
            if (bad++ < 10) cr_log_error("%s token %d '%s': '%s' -> '%s'", vocab, id, st_tok_piece(t, id), s1, s2);
        }
    }
    cr_log_info("%s: %d tokens checked", vocab, checked);
    cr_expect_gt(checked, st_tok_n_vocab(t) / 2);
    cr_expect_eq(bad, 0, "%d tokens are not stable", bad);
    st_tok_free(t);
}

Test(tokenizer_bpe, every_token_stable_gpt2) { check_every_token(GPT2_VOCAB); }
Test(tokenizer_bpe, every_token_stable_llama_bpe) { check_every_token(LLAMA3_VOCAB); }
Test(tokenizer_bpe, every_token_stable_qwen2) { check_every_token(QWEN2_VOCAB); }

/* ---- random input: never crashes, counts consistent, valid text round-trips */
Test(tokenizer_bpe, random_input) {
    const char *vocabs[] = {GPT2_VOCAB, LLAMA3_VOCAB, QWEN2_VOCAB};
    static const char *const atoms[] = {"a", "B", "the", "'s", "'LL", "'", " ", "  ", "\n", "\r\n", "\t", ".", "!!",
                                        "3", "12345", "<|endoftext|>", "<|eot_id|>", "<|im_end|>", "\xC3\xA9",
                                        "\xE6\x97\xA5", "\xF0\x9F\xA6\x99", "\xE2\x80\x93", "\xC2\xA0", "\xE3\x80\x80",
                                        "Hello", "\xD9\xA3", "\xCC\x81"};
    static const char *const junk[] = {"\xFF", "\x80", "\xE2", "\xF0\x9F", "\xC3", "\x00", "\xC0\x80", "\xED\xA0\x80"};
    for (int v = 0; v < 3; v++) {
        st_tokenizer *t = load_or_skip(vocabs[v]);
        unsigned seed = 777u + (unsigned)v;
        char text[512];
        int32_t ids[2048], ids2[2048];
        for (int iter = 0; iter < 1500; iter++) {
            bool valid = iter % 3 != 0;
            size_t len = 0;
            int parts = (int)((seed = seed * 1103515245u + 12345u) >> 16) % 40;
            for (int k = 0; k < parts; k++) {
                seed = seed * 1103515245u + 12345u;
                unsigned r = seed >> 16;
                const char *a;
                size_t al;
                if (!valid && r % 5 == 0) {
                    a = junk[(r / 5) % (sizeof junk / sizeof junk[0])];
                    al = a[0] ? strlen(a) : 1;
                } else {
                    a = atoms[(r / 7) % (sizeof atoms / sizeof atoms[0])];
                    al = strlen(a);
                }
                if (len + al >= sizeof text) break;
                memcpy(text + len, a, al);
                len += al;
            }
            for (int ps = 0; ps < 2; ps++) {
                int64_t n = st_tok_encode(t, text, len, true, ps, ids, 2048);
                cr_assert(n >= 0 && n <= 2048);
                int64_t n2 = st_tok_encode(t, text, len, true, ps, ids2, n / 2);
                cr_assert_eq(n2, n);
                cr_assert(n / 2 == 0 || memcmp(ids, ids2, sizeof *ids * (size_t)(n / 2)) == 0);
                for (int64_t i = 0; i < n; i++) cr_assert(ids[i] >= 0 && ids[i] < st_tok_n_vocab(t));
                if (valid) {
                    char out[4096];
                    int64_t dl = st_tok_decode(t, ids, n, out, sizeof out, false, true);
                    int64_t skip = st_tok_add_bos(t) ? (int64_t)strlen(st_tok_piece(t, st_tok_bos(t))) : 0;
                    cr_assert(dl - skip == (int64_t)len && memcmp(out + skip, text, len) == 0,
                              "%s round trip (parse_special %d): '%.*s' -> '%s'", vocabs[v], ps, (int)len, text,
                              out + skip);
                }
            }
        }
        st_tok_free(t);
    }
}

/* ---- speed ------------------------------------------------------------------ */

static void check_speed(const char *vocab) {
    st_tokenizer *t = load_or_skip(vocab);
    const char *chunk = "Once upon a time, there was a little girl named Lily. She loved to play with her toys "
                        "and run around outside.\n\tCaf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\xA6\x99 3.14159!  "
                        "int main(void) { return 0; }   \n\n  I'll've you're 1234567 \xD0\x9F\xD1\x80\xD0\xB8 ";
    size_t cl = strlen(chunk), cap = 100 * 1024;
    char *text = malloc(cap + 1);
    size_t len = 0;
    while (len + cl <= cap) {
        memcpy(text + len, chunk, cl);
        len += cl;
    }
    text[len] = 0;
    int32_t *ids = malloc(sizeof *ids * (len + 2));
    double best = 1e9;
    int64_t n = 0;
    for (int rep = 0; rep < 3; rep++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        n = st_tok_encode(t, text, len, true, true, ids, (int64_t)len + 2);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
        if (ms < best) best = ms;
    }
    cr_log_info("%s: encoded %zu bytes into %lld tokens in %.2f ms", vocab, len, (long long)n, best);
    cr_expect_gt(n, 0);
    /* logged, not asserted: speed is judged in benchmarks, never by a timed test */
    char *d = decode(t, ids, n, false, NULL);
    cr_expect(strcmp(d, text) == 0, "100 KB round trip");
    free(d);
    free(ids);
    free(text);
    st_tok_free(t);
}

Test(tokenizer_bpe, speed_100kb_gpt2) { check_speed(GPT2_VOCAB); }
Test(tokenizer_bpe, speed_100kb_llama_bpe) { check_speed(LLAMA3_VOCAB); }
Test(tokenizer_bpe, speed_100kb_qwen2) { check_speed(QWEN2_VOCAB); }

/* ---- Unicode tables and splitters (no vocab needed) ------------------------ */

Test(unicode, categories) {
    /* the ASCII fast path agrees with the generated table */
    for (uint32_t c = 0; c < 128; c++) {
        uint8_t f = st_uflags(c);
        cr_expect_eq(f & ST_UF_CAT, st_ucat(c), "U+%04X", c);
        cr_expect_eq(!!(f & ST_UF_WS), st_uspace(c), "U+%04X", c);
    }
    cr_expect_eq(st_ucat('A'), ST_UCAT_L);
    cr_expect_eq(st_ucat(0xE9), ST_UCAT_L);      /* é */
    cr_expect_eq(st_ucat(0x65E5), ST_UCAT_L);    /* 日 (a CJK First/Last range) */
    cr_expect_eq(st_ucat(0xAC00), ST_UCAT_L);    /* 가 (Hangul range) */
    cr_expect_eq(st_ucat(0x0663), ST_UCAT_N);    /* ٣ */
    cr_expect_eq(st_ucat(0x2167), ST_UCAT_N);    /* Ⅷ (Nl) */
    cr_expect_eq(st_ucat(0x3002), ST_UCAT_P);    /* 。 */
    cr_expect_eq(st_ucat(0x20AC), ST_UCAT_S);    /* € */
    cr_expect_eq(st_ucat(0x1F999), ST_UCAT_S);   /* 🦙 */
    cr_expect_eq(st_ucat(0x0301), ST_UCAT_M);    /* combining acute */
    cr_expect_eq(st_ucat(0x00A0), ST_UCAT_Z);
    cr_expect_eq(st_ucat(0xD800), ST_UCAT_C);    /* surrogate */
    cr_expect_eq(st_ucat(0x0378), ST_UCAT_UNDEF); /* unassigned */
    cr_expect_eq(st_ucat(0x110000), ST_UCAT_UNDEF);
    cr_expect(st_uspace(0x85) && st_uspace(0xA0) && st_uspace(0x3000) && st_uspace(0x2029));
    cr_expect(!st_uspace(0x200B) && !st_uspace(0x1C) && !st_uspace('a'));
}

Test(unicode, gpt2_bytes_and_utf8) {
    bool seen[400] = {0};
    for (int b = 0; b < 256; b++) {
        uint32_t c = st_gpt2_byte_to_cpt((uint8_t)b);
        cr_assert_lt(c, 400);
        cr_expect(!seen[c], "byte %d maps to a used code point", b);
        seen[c] = true;
        cr_expect_eq(st_gpt2_cpt_to_byte(c), b);
    }
    cr_expect_eq(st_gpt2_byte_to_cpt(' '), 0x120);  /* Ġ */
    cr_expect_eq(st_gpt2_byte_to_cpt('\n'), 0x10A); /* Ċ */
    cr_expect_eq(st_gpt2_byte_to_cpt(0xAD), 0x143);
    cr_expect_eq(st_gpt2_cpt_to_byte(0x144), -1);
    cr_expect_eq(st_gpt2_cpt_to_byte(0x20), -1);

    uint32_t c[16];
    /* valid, overlong (kept, as llama.cpp), stray continuation, truncated */
    size_t n = st_utf8_decode("a\xC3\xA9\xC0\x80\x80\xE6\x97", 8, c);
    cr_assert_eq(n, 6);
    cr_expect(c[0] == 'a' && c[1] == 0xE9 && c[2] == 0 && c[3] == 0xFFFD && c[4] == 0xFFFD && c[5] == 0xFFFD);
    char u[4];
    cr_expect(st_utf8_encode(0x1F999, u) == 4 && memcmp(u, "\xF0\x9F\xA6\x99", 4) == 0);
}

/* splits s with the rules; returns the pieces joined by '|' */
static const char *split(const char *s, const st_pre_rule *rules, int nr) {
    static char out[1024];
    uint32_t c[256], a[256], b[256];
    uint8_t f[256];
    size_t n = st_utf8_decode(s, strlen(s), c);
    for (size_t i = 0; i < n; i++) f[i] = st_uflags(c[i]);
    a[0] = (uint32_t)n;
    size_t np = n ? 1 : 0;
    uint32_t *in = a, *o = b;
    for (int r = 0; r < nr; r++) {
        np = st_pre_split(rules[r], c, f, in, np, o);
        uint32_t *t = in;
        in = o;
        o = t;
    }
    size_t k = 0, p0 = 0;
    for (size_t p = 0; p < np; p++) {
        if (p) out[k++] = '|';
        for (size_t i = p0; i < p0 + in[p]; i++) k += (size_t)st_utf8_encode(c[i], out + k);
        p0 += in[p];
    }
    out[k] = 0;
    return out;
}

#define SPLIT1(s, r) split(s, (st_pre_rule[]){r}, 1)

Test(unicode, splitters) {
    cr_expect_str_eq(SPLIT1("Hello world's   test!! 12345\n\n", ST_PRE_GPT2),
                     "Hello| world|'s|  | test|!!| 12345|\n\n");
    cr_expect_str_eq(SPLIT1("I'LL don't", ST_PRE_GPT2), "I|'|LL| don|'t");
    cr_expect_str_eq(SPLIT1("I'LL don't", ST_PRE_LLAMA3), "I|'LL| don|'t");
    cr_expect_str_eq(SPLIT1("12345 abc", ST_PRE_LLAMA3), "123|45| abc");
    cr_expect_str_eq(SPLIT1("12345 abc", ST_PRE_QWEN2), "1|2|3|4|5| abc");
    cr_expect_str_eq(SPLIT1("a  \n\n  b", ST_PRE_LLAMA3), "a|  \n\n| | b");
    cr_expect_str_eq(SPLIT1("x !!\n\ny", ST_PRE_LLAMA3), "x| !!\n\n|y");
    cr_expect_str_eq(SPLIT1("\tword (x)", ST_PRE_LLAMA3), "\tword| (|x|)");
    cr_expect_str_eq(SPLIT1("   ", ST_PRE_LLAMA3), "   ");
    cr_expect_str_eq(SPLIT1("a\xE3\x80\x80" "b", ST_PRE_LLAMA3), "a|\xE3\x80\x80" "b");
    cr_expect_str_eq(SPLIT1("ab+=c..d", ST_PRE_PUNCT_RUNS), "ab|+=|c|..|d");
    cr_expect_str_eq(SPLIT1("a1\xD9\xA3" "2b", ST_PRE_NUM_RUNS), "a|1\xD9\xA3" "2|b");
    cr_expect_str_eq(SPLIT1("a12b", ST_PRE_NUM_EACH), "a|1|2|b");
    cr_expect_str_eq(SPLIT1("1234567", ST_PRE_DIGIT3), "123|456|7");
    cr_expect_str_eq(split("x=1234567", (st_pre_rule[]){ST_PRE_PUNCT_RUNS, ST_PRE_GPT2, ST_PRE_NUM_RUNS,
                                                         ST_PRE_DIGIT3}, 4),
                     "x|=|123|456|7");
}

/* ---- errors: a tiny GGUF written here ------------------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
} wbuf;

static void put(wbuf *w, const void *d, size_t n) {
    if (w->n + n > w->cap) {
        w->cap = (w->n + n) * 2 + 64;
        w->p = realloc(w->p, w->cap);
    }
    memcpy(w->p + w->n, d, n);
    w->n += n;
}
static void put_u32(wbuf *w, uint32_t v) { put(w, &v, 4); }
static void put_u64(wbuf *w, uint64_t v) { put(w, &v, 8); }
static void put_str(wbuf *w, const char *s) {
    put_u64(w, strlen(s));
    put(w, s, strlen(s));
}
static void kv_str(wbuf *w, const char *k, const char *v) {
    put_str(w, k);
    put_u32(w, 8);
    put_str(w, v);
}
static void kv_strs(wbuf *w, const char *k, const char *const *v, int n) {
    put_str(w, k);
    put_u32(w, 9);
    put_u32(w, 8);
    put_u64(w, (uint64_t)n);
    for (int i = 0; i < n; i++) put_str(w, v[i]);
}

/* a vocab-only GGUF with the given model / pre (NULL: key absent) and merges */
static const char *write_vocab(const char *name, const char *model, const char *pre, bool merges) {
    static const char *const toks[] = {"a", "b", "ab", "\xC4\xA0", "\xC4\xA0" "ab", "<|endoftext|>"};
    static const char *const mrg[] = {"a b", "\xC4\xA0 ab"};
    wbuf w = {0};
    put(&w, "GGUF", 4);
    put_u32(&w, 3);
    put_u64(&w, 0);
    put_u64(&w, (uint64_t)(2 + (pre != NULL) + merges));
    kv_str(&w, "tokenizer.ggml.model", model);
    if (pre) kv_str(&w, "tokenizer.ggml.pre", pre);
    kv_strs(&w, "tokenizer.ggml.tokens", toks, 6);
    if (merges) kv_strs(&w, "tokenizer.ggml.merges", mrg, 2);
    while (w.n % 32) put(&w, "", 1);
    static char path[600];
    snprintf(path, sizeof path, "%s/%s.gguf", tu_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(w.p, 1, w.n, f), w.n);
    fclose(f);
    free(w.p);
    return path;
}

static st_status try_load(const char *path, st_tokenizer **t, st_error *err) {
    st_gguf *g = NULL;
    cr_assert_eq(st_gguf_open(path, &g, err), ST_OK, "%s", err->msg);
    *t = (st_tokenizer *)(uintptr_t)1;
    st_status rc = st_tok_load(g, t, err);
    st_gguf_close(g);
    return rc;
}

Test(tokenizer_bpe, errors) {
    st_error err = {0};
    st_tokenizer *t;
    st_status rc = try_load(write_vocab("bert", "bert", NULL, false), &t, &err);
    cr_expect_eq(rc, ST_ERR_UNSUPPORTED);
    cr_expect_null(t);
    cr_expect_str_eq(err.msg, "tokenizer model 'bert' not supported (supported: llama, gpt2)");

    rc = try_load(write_vocab("pre", "gpt2", "tekken-x", true), &t, &err);
    cr_expect_eq(rc, ST_ERR_UNSUPPORTED);
    cr_expect_null(t);
    cr_expect(strstr(err.msg, "pre-tokenizer 'tekken-x'") && strstr(err.msg, "llama-bpe") && strstr(err.msg, "qwen2"),
              "%s", err.msg);

    rc = try_load(write_vocab("nomerges", "gpt2", "gpt-2", false), &t, &err);
    cr_expect_eq(rc, ST_ERR_FORMAT);
    cr_expect(strstr(err.msg, "tokenizer.ggml.merges") != NULL, "%s", err.msg);

    /* a minimal valid one: no pre key -> "default"; the merges apply */
    rc = try_load(write_vocab("tiny", "gpt2", NULL, true), &t, &err);
    cr_assert_eq(rc, ST_OK, "%s", err.msg);
    expect_ids(t, "ab ab", false, false, IDS(2, 4));
    expect_ids(t, "ba", false, false, IDS(1, 0));
    expect_ids(t, "abc", false, false, IDS(2)); /* 'c' is no token: dropped, as llama.cpp */
    st_tok_free(t);
}
