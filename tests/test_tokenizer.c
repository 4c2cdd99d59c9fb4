#define _GNU_SOURCE
/* test_tokenizer.c — the SentencePiece tokenizer against llama.cpp's own test
 * vectors (ggml-vocab-llama-spm.gguf, 46 cases), the HF reference prompts of
 * the bundled tiny model, round trips, piece rendering and errors. */
#include "gguf.h"
#include "testutil.h"
#include "tokenizer.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SPM_VOCAB "refs/tokenizer/ggml-vocab-llama-spm.gguf"

static st_tokenizer *load_tok(const char *path) {
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

static st_tokenizer *load_spm_or_skip(void) {
    const char *p = tu_shared_path(SPM_VOCAB);
    if (!tu_file_exists(p)) cr_skip_test("shared test data absent (%s)", p);
    return load_tok(p);
}

static st_tokenizer *load_bundled(void) { return load_tok(tu_source_path("assets/tiny-14m-q8_0.gguf")); }

/* encodes into a malloc'd array; *n = count */
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

static char *decode(const st_tokenizer *t, const int32_t *ids, int64_t n, bool strip, bool special, int64_t *len) {
    int64_t need = st_tok_decode(t, ids, n, NULL, 0, strip, special);
    cr_assert_geq(need, 0);
    char *buf = malloc((size_t)need + 1);
    int64_t got = st_tok_decode(t, ids, n, buf, need + 1, strip, special);
    cr_assert_eq(got, need);
    if (len) *len = need;
    return buf;
}

static void fmt_ids(char *out, size_t cap, const int32_t *ids, int64_t n) {
    size_t k = 0;
    out[0] = 0;
    for (int64_t i = 0; i < n && k + 16 < cap; i++) k += (size_t)snprintf(out + k, cap - k, "%s%d", i ? " " : "", ids[i]);
}

/* ---- the 46 llama.cpp cases ------------------------------------------- */


static int load_cases(tu_vocab_case **out) {
    char why[512];
    int nc = tu_vocab_cases_load(SPM_VOCAB, out, why, sizeof why);
    cr_assert_geq(nc, 0, "%s", why);
    return nc;
}

#define free_cases tu_vocab_cases_free

Test(tokenizer, llama_spm_46_cases) {
    st_tokenizer *t = load_spm_or_skip();
    tu_vocab_case *cs;
    int nc = load_cases(&cs);
    cr_assert_eq(nc, 46, "expected 46 cases, found %d", nc);
    int fails = 0;
    static char a[16384], b[16384];
    for (int i = 0; i < nc; i++) {
        int64_t n;
        int32_t *ids = encode(t, cs[i].text, cs[i].len, false, false, &n);
        if (n != cs[i].n || memcmp(ids, cs[i].ids, sizeof *ids * (size_t)n) != 0) {
            fmt_ids(a, sizeof a, cs[i].ids, cs[i].n);
            fmt_ids(b, sizeof b, ids, n);
            cr_log_error("case %d: input '%s'\n  expected: %s\n  got:      %s", i, cs[i].text, a, b);
            fails++;
        }
        free(ids);
    }
    cr_log_info("llama-spm: %d/%d cases identical", nc - fails, nc);
    cr_expect_eq(fails, 0, "%d of %d cases differ", fails, nc);
    free_cases(cs, nc);
    st_tok_free(t);
}

/* decode(encode(text)) == text: the encoder's space prefix is removed again */
Test(tokenizer, llama_spm_round_trip) {
    st_tokenizer *t = load_spm_or_skip();
    tu_vocab_case *cs;
    int nc = load_cases(&cs);
    int fails = 0;
    for (int i = 0; i < nc; i++) {
        for (int with_bos = 0; with_bos < 2; with_bos++) {
            int64_t n, dl;
            int32_t *ids = encode(t, cs[i].text, cs[i].len, with_bos, false, &n);
            char *s = decode(t, ids, n, true, false, &dl);
            if ((size_t)dl != cs[i].len || memcmp(s, cs[i].text, cs[i].len) != 0) {
                cr_log_error("round trip %d (bos %d): '%s' -> '%s'", i, with_bos, cs[i].text, s);
                fails++;
            }
            /* llama.cpp's own detokenize agrees when there is no BOS */
            if (!with_bos) {
                char buf[4096];
                int64_t m = st_tok_detokenize(t, ids, n, buf, sizeof buf, false, false);
                cr_expect_eq(m, dl);
                cr_expect(m < (int64_t)sizeof buf && memcmp(buf, s, (size_t)m) == 0);
            }
            free(s);
            free(ids);
        }
    }
    cr_expect_eq(fails, 0);
    free_cases(cs, nc);
    st_tok_free(t);
}

Test(tokenizer, llama_spm_vocab_properties) {
    st_tokenizer *t = load_spm_or_skip();
    cr_expect_eq(st_tok_n_vocab(t), 32000);
    cr_expect_eq(st_tok_bos(t), 1);
    cr_expect_eq(st_tok_eos(t), 2);
    cr_expect_eq(st_tok_unk(t), 0);
    cr_expect(st_tok_add_bos(t));
    cr_expect(!st_tok_add_eos(t));
    cr_expect(st_tok_add_space_prefix(t));
    cr_expect(st_tok_is_eog(t, 2));
    cr_expect(!st_tok_is_eog(t, 1));
    cr_expect(!st_tok_is_eog(t, 15043));
    cr_expect_eq(st_tok_type(t, 0), ST_TOKTYPE_UNKNOWN);
    cr_expect_eq(st_tok_type(t, 1), ST_TOKTYPE_CONTROL);
    cr_expect_eq(st_tok_type(t, 13), ST_TOKTYPE_BYTE);
    cr_expect_eq(st_tok_type(t, 15043), ST_TOKTYPE_NORMAL);
    cr_expect_str_eq(st_tok_piece(t, 15043), "\xE2\x96\x81Hello");
    cr_expect_str_eq(st_tok_piece(t, 13), "<0x0A>");
    cr_expect_str_eq(st_tok_piece(t, 1), "<s>");
    cr_expect_null(st_tok_piece(t, 32000));
    cr_expect_eq(st_tok_find(t, "<0x0A>", 6), 13);
    cr_expect_eq(st_tok_find(t, "nope-not-a-token", 16), -1);
    st_tok_free(t);
}

/* ---- special tokens, BOS/EOS, edge cases ------------------------------- */

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

Test(tokenizer, special_tokens_and_bos) {
    st_tokenizer *t = load_spm_or_skip();
    expect_ids(t, "", false, false, NULL, 0);
    expect_ids(t, "", true, false, (int32_t[]){1}, 1);
    expect_ids(t, "Hello", true, false, (int32_t[]){1, 15043}, 2);
    expect_ids(t, " ", false, false, (int32_t[]){259}, 1);
    /* parse_special: <s>, </s> become tokens and the text after a special
     * token gets the space prefix again (llama.cpp's is_prev_special) */
    expect_ids(t, "<s>Hello</s>", false, true, (int32_t[]){1, 15043, 2}, 3);
    expect_ids(t, "Hello</s>Hello", false, true, (int32_t[]){15043, 2, 15043}, 3);
    expect_ids(t, "<s><s>", false, true, (int32_t[]){1, 1}, 2);
    /* without parse_special the text of control tokens is plain text */
    int64_t n;
    int32_t *ids = encode(t, "<s>Hello</s>", 12, false, false, &n);
    cr_expect_gt(n, 3);
    for (int64_t i = 0; i < n; i++) cr_expect(ids[i] != 1 && ids[i] != 2);
    char *s = decode(t, ids, n, true, false, NULL);
    cr_expect_str_eq(s, "<s>Hello</s>");
    free(s);
    free(ids);
    st_tok_free(t);
}

Test(tokenizer, capacity_and_errors) {
    st_tokenizer *t = load_spm_or_skip();
    int32_t ids[2] = {-7, -7};
    /* "Hello world" needs 2 tokens; with cap 1 only the first is written */
    cr_expect_eq(st_tok_encode(t, "Hello world", 11, false, false, ids, 1), 2);
    cr_expect_eq(ids[0], 15043);
    cr_expect_eq(ids[1], -7);
    cr_expect_eq(st_tok_encode(t, NULL, 3, false, false, ids, 2), -1);
    char buf[8];
    cr_expect_eq(st_tok_decode(t, (int32_t[]){32000}, 1, buf, sizeof buf, true, false), -1);
    /* truncated decode still NUL-terminates and reports the full length */
    int32_t hw[2] = {15043, 3186};
    cr_expect_eq(st_tok_decode(t, hw, 2, buf, 4, true, false), 11);
    cr_expect_str_eq(buf, "Hel");
    st_tok_free(t);
}

/* ---- piece rendering ---------------------------------------------------- */

Test(tokenizer, token_to_piece) {
    st_tokenizer *t = load_spm_or_skip();
    char buf[64];
    int n;
    n = st_tok_token_to_piece(t, 15043, buf, sizeof buf, false);
    cr_expect(n == 6 && memcmp(buf, " Hello", 6) == 0);
    n = st_tok_token_to_piece(t, 13, buf, sizeof buf, false);
    cr_expect(n == 1 && buf[0] == '\n');
    n = st_tok_token_to_piece(t, 3 + 0xF0, buf, sizeof buf, false);
    cr_expect(n == 1 && (unsigned char)buf[0] == 0xF0, "<0xF0> renders as the raw byte");
    cr_expect_eq(st_tok_token_to_piece(t, 1, buf, sizeof buf, false), 0);
    n = st_tok_token_to_piece(t, 1, buf, sizeof buf, true);
    cr_expect(n == 3 && memcmp(buf, "<s>", 3) == 0);
    cr_expect_eq(st_tok_token_to_piece(t, 0, buf, sizeof buf, false), 0, "<unk> renders as nothing");
    n = st_tok_token_to_piece(t, 0, buf, sizeof buf, true);
    cr_expect(n == 5 && memcmp(buf, "<unk>", 5) == 0);
    /* too small a buffer: length needed is still returned */
    cr_expect_eq(st_tok_token_to_piece(t, 15043, buf, 2, false), 6);
    cr_expect_eq(st_tok_token_to_piece(t, 15043, NULL, 0, false), 6);

    /* streaming: the byte tokens of an emoji concatenate to its UTF-8 */
    const char *llama = "\xF0\x9F\xA6\x99"; /* U+1F999 */
    int64_t nid;
    int32_t *ids = encode(t, llama, 4, false, false, &nid);
    int32_t want[] = {29871, 243, 162, 169, 156};
    cr_assert_eq(nid, 5);
    cr_expect(memcmp(ids, want, sizeof want) == 0);
    char acc[32];
    int k = 0;
    for (int64_t i = 0; i < nid; i++) k += st_tok_token_to_piece(t, ids[i], acc + k, (int)sizeof acc - k, false);
    cr_expect(k == 5 && memcmp(acc, " \xF0\x9F\xA6\x99", 5) == 0);
    free(ids);

    /* decode vs llama.cpp's detokenize around BOS */
    int32_t bh[2] = {1, 15043};
    char *s = decode(t, bh, 2, true, false, NULL);
    cr_expect_str_eq(s, "Hello");
    free(s);
    s = decode(t, bh, 2, false, false, NULL);
    cr_expect_str_eq(s, " Hello");
    free(s);
    s = decode(t, bh, 2, true, true, NULL);
    cr_expect_str_eq(s, "<s>Hello");
    free(s);
    s = decode(t, bh + 1, 1, true, false, NULL);
    cr_expect_str_eq(s, "Hello");
    free(s);
    cr_expect_eq(st_tok_detokenize(t, bh, 2, buf, sizeof buf, false, false), 6);
    cr_expect_str_eq(buf, " Hello", "llama.cpp keeps the space after BOS");
    cr_expect_eq(st_tok_detokenize(t, bh, 2, buf, sizeof buf, true, false), 6);
    cr_expect_str_eq(buf, " Hello");
    cr_expect_eq(st_tok_detokenize(t, bh + 1, 1, buf, sizeof buf, false, false), 5);
    cr_expect_str_eq(buf, "Hello");
    cr_expect_eq(st_tok_detokenize(t, bh, 2, buf, sizeof buf, false, true), 9);
    cr_expect_str_eq(buf, "<s> Hello");
    st_tok_free(t);
}

/* ---- errors -------------------------------------------------------------- */

/* BPE vocabularies load since the BPE tokenizer (tests/test_tokenizer_bpe.c
 * covers them and the unsupported-model error) */
Test(tokenizer, gpt2_loads_as_bpe) {
    const char *p = tu_shared_path("refs/tokenizer/ggml-vocab-gpt-2.gguf");
    if (!tu_file_exists(p)) cr_skip_test("shared test data absent (%s)", p);
    st_tokenizer *t = load_tok(p);
    cr_expect_eq(st_tok_n_vocab(t), 50257);
    cr_expect(!st_tok_add_space_prefix(t));
    st_tok_free(t);
}

Test(tokenizer, null_args) {
    st_error err = {0};
    st_tokenizer *t = NULL;
    cr_expect_eq(st_tok_load(NULL, &t, &err), ST_ERR_ARG);
    cr_expect_eq(st_tok_encode(NULL, "a", 1, false, false, NULL, 0), -1);
    st_tok_free(NULL);
}

/* ---- the bundled model against the HF reference prompts ------------------ */

Test(tokenizer, bundled_model_basics) {
    st_tokenizer *t = load_bundled();
    cr_expect_eq(st_tok_n_vocab(t), 32000);
    cr_expect_eq(st_tok_bos(t), 1);
    cr_expect_eq(st_tok_eos(t), 2);
    cr_expect(st_tok_add_bos(t));
    expect_ids(t, "Once upon a time", true, false, (int32_t[]){1, 9038, 2501, 263, 931}, 5);
    expect_ids(t, "", true, false, (int32_t[]){1}, 1);
    /* tabs, double spaces, newline, accents, CJK, emoji (byte fallback) */
    const char *s = "Prices: 3.14159, 2,718 & 1e-5!\tTab  and  double  spaces\nNew line: caf\xC3\xA9 Zo\xC3\xAB "
                    "na\xC3\xAFve \xE2\x80\x93 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9F\xA6\x99\xF0\x9F\x9A\x80 "
                    "\xC2\xBD \xE2\x88\x91 x\xC2\xB2 [INST] #42 @home";
    int32_t want[] = {1,     1588,  1575,  29901, 29871, 29941, 29889, 29896, 29946, 29896, 29945, 29929, 29892,
                      29871, 29906, 29892, 29955, 29896, 29947, 669,   29871, 29896, 29872, 29899, 29945, 29991,
                      12,    8863,  29871, 322,   29871, 3765,  29871, 8162,  13,    4373,  1196,  29901, 274,
                      28059, 17421, 30083, 1055,  30085, 345,   785,   29871, 30325, 30346, 30968, 29871, 243,
                      162,   169,   156,   243,   162,   157,   131,   29871, 30226, 29871, 31060, 921,   30088,
                      518,   25580, 29962, 396,   29946, 29906, 732,   5184};
    expect_ids(t, s, true, false, want, (int64_t)(sizeof want / sizeof want[0]));
    int64_t n;
    int32_t *ids = encode(t, s, strlen(s), true, false, &n);
    char *d = decode(t, ids, n, true, false, NULL);
    cr_expect_str_eq(d, s);
    free(d);
    free(ids);
    st_tok_free(t);
}

Test(tokenizer, refs_prompts) {
    const char *p = tu_shared_path("refs/tiny-14m-f32.refs.json");
    if (!tu_file_exists(p)) cr_skip_test("shared test data absent (%s)", p);
    cJSON *j = tu_read_json(p);
    cr_assert_not_null(j);
    st_tokenizer *t = load_bundled();
    cJSON *prompts = cJSON_GetObjectItem(j, "prompts");
    cr_assert(cJSON_IsArray(prompts));
    int np = 0;
    cJSON *pr;
    cJSON_ArrayForEach(pr, prompts) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(pr, "name"));
        const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(pr, "text"));
        cJSON *tids = cJSON_GetObjectItem(pr, "token_ids");
        cJSON *tpieces = cJSON_GetObjectItem(pr, "token_pieces");
        cr_assert(text && cJSON_IsArray(tids) && cJSON_IsArray(tpieces));
        int64_t n;
        int32_t *ids = encode(t, text, strlen(text), true, false, &n);
        int nw = cJSON_GetArraySize(tids);
        bool same = n == nw;
        for (int i = 0; same && i < nw; i++) same = ids[i] == (int32_t)cJSON_GetArrayItem(tids, i)->valuedouble;
        if (!same) {
            char a[8192], b[8192];
            int32_t *w = malloc(sizeof *w * (size_t)(nw + 1));
            for (int i = 0; i < nw; i++) w[i] = (int32_t)cJSON_GetArrayItem(tids, i)->valuedouble;
            fmt_ids(a, sizeof a, w, nw);
            fmt_ids(b, sizeof b, ids, n);
            free(w);
            cr_log_error("prompt %s: '%s'\n  expected: %s\n  got:      %s", name, text, a, b);
        }
        cr_expect(same, "prompt %s tokenizes differently", name);
        for (int i = 0; same && i < nw; i++) {
            const char *want = cJSON_GetStringValue(cJSON_GetArrayItem(tpieces, i));
            cr_expect_str_eq(st_tok_piece(t, ids[i]), want, "prompt %s token %d", name, i);
        }
        char *d = decode(t, ids, n, true, false, NULL);
        cr_expect_str_eq(d, text, "prompt %s round trip", name);
        free(d);
        free(ids);
        np++;
    }
    cr_expect_eq(np, 6);
    st_tok_free(t);
    cJSON_Delete(j);
}

/* ---- speed ----------------------------------------------------------------- */

Test(tokenizer, speed_100kb) {
    st_tokenizer *t = load_bundled();
    const char *chunk = "Once upon a time, there was a little girl named Lily. She loved to play with her toys "
                        "and run around outside.\n\tCaf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\xA6\x99 3.14159!  ";
    size_t cl = strlen(chunk), cap = 100 * 1024;
    char *text = malloc(cap + 1);
    size_t len = 0;
    while (len + cl <= cap) {
        memcpy(text + len, chunk, cl);
        len += cl;
    }
    text[len] = 0;
    int32_t *ids = malloc(sizeof *ids * (len + 2));
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int64_t n = st_tok_encode(t, text, len, true, true, ids, (int64_t)len + 2);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    cr_log_info("encoded %zu bytes into %lld tokens in %.2f ms", len, (long long)n, ms);
    cr_expect_gt(n, 0);
    /* logged, not asserted: speed is judged in benchmarks, never by a timed test */
    /* the result equals tokenizing the chunks one by one only where the space
     * prefix does not interfere; just check the round trip here */
    char *d = decode(t, ids, n, true, false, NULL);
    cr_expect(strcmp(d, text) == 0, "100 KB round trip");
    free(d);
    free(ids);
    free(text);
    st_tok_free(t);
}

/* ---- every token: detokenize -> tokenize -> detokenize is stable ---------
 * (llama.cpp's test-tokenizer-1-spm, with special tokens rendered/parsed) */
Test(tokenizer, every_token_stable) {
    st_tokenizer *t = load_spm_or_skip();
    int bad = 0;
    char s1[256], s2[1024];
    int32_t ids[256];
    for (int32_t id = 0; id < st_tok_n_vocab(t); id++) {
        int64_t n1 = st_tok_detokenize(t, &id, 1, s1, sizeof s1, false, true);
        cr_assert(n1 >= 0 && n1 < (int64_t)sizeof s1);
        int64_t m = st_tok_encode(t, s1, (size_t)n1, false, true, ids, 256);
        cr_assert(m >= 0 && m <= 256);
        int64_t n2 = st_tok_detokenize(t, ids, m, s2, sizeof s2, false, true);
        if (n2 != n1 || memcmp(s1, s2, (size_t)n1) != 0) {
            if (bad++ < 10) cr_log_error("token %d '%s': '%s' -> '%s'", id, st_tok_piece(t, id), s1, s2);
        }
    }
    cr_expect_eq(bad, 0, "%d tokens are not stable", bad);
    st_tok_free(t);
}

/* ---- random input: never crashes, counts consistent, valid text round-trips */
Test(tokenizer, random_input) {
    st_tokenizer *t = load_bundled();
    static const char *const atoms[] = {"a", "b", "e", "the", " ", "  ", "\n", "\t", ".", ",", "3", "<s>", "</s>",
                                        "<unk>", "\xC3\xA9", "\xE6\x97\xA5", "\xF0\x9F\xA6\x99", "\xE2\x80\x93",
                                        "Hello", "\xD0\xBD"};
    static const char *const junk[] = {"\xFF", "\x80", "\xE2", "\xF0\x9F", "\xC3", "\x00"};
    unsigned seed = 12345;
    char text[512];
    int32_t ids[2048], ids2[2048];
    for (int iter = 0; iter < 3000; iter++) {
        bool valid = iter % 3 != 0;
        size_t len = 0;
        int parts = (int)((seed = seed * 1103515245u + 12345u) >> 16) % 40;
        for (int k = 0; k < parts; k++) {
            seed = seed * 1103515245u + 12345u;
            unsigned r = seed >> 16;
            const char *a;
            size_t al;
            if (!valid && r % 5 == 0) {
                a = junk[(r / 5) % 6];
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
            cr_assert(n >= 1 && n <= 2048);
            cr_assert_eq(ids[0], 1);
            /* a short buffer gets the same prefix */
            int64_t n2 = st_tok_encode(t, text, len, true, ps, ids2, n / 2);
            cr_assert_eq(n2, n);
            cr_assert(n / 2 == 0 || memcmp(ids, ids2, sizeof *ids * (size_t)(n / 2)) == 0);
            for (int64_t i = 0; i < n; i++) cr_assert(ids[i] >= 0 && ids[i] < st_tok_n_vocab(t));
            if (valid) {
                /* parse_special output must be decoded with special = true */
                char out[2048];
                int64_t dl = st_tok_decode(t, ids, n, out, sizeof out, true, ps);
                if (ps) { /* BOS rendered as "<s>" */
                    cr_assert(dl >= 3 && memcmp(out, "<s>", 3) == 0);
                    /* text after a parsed special token gets the space prefix
                     * again (as llama.cpp), so only texts without them round-trip */
                    if (memchr(text, '<', len)) continue;
                    cr_assert(dl - 3 == (int64_t)len && memcmp(out + 3, text, len) == 0,
                              "round trip (parse_special): '%.*s' -> '%s'", (int)len, text, out + 3);
                } else {
                    cr_assert(dl == (int64_t)len && memcmp(out, text, len) == 0, "round trip: '%.*s' -> '%s'",
                              (int)len, text, out);
                }
            }
        }
    }
    st_tok_free(t);
}
