/* fuzz_tokenizer.c — libFuzzer target: arbitrary bytes through the tokenizer.
 *
 * Vocabularies are loaded once: the bundled model's (SentencePiece, always)
 * and, when ../shared has them, the byte-level BPE test vocabs of gpt-2 and
 * llama-bpe (Llama-3). Input byte 0 picks the vocab (bits 0-1) and the flags
 * add_special (bit 2) and parse_special (bit 3); the rest is the text.
 *
 * Invariants checked on every input:
 *  - encode never fails on any bytes, ids are in the vocabulary, and a short
 *    buffer gets the same count and the same leading ids (tokenizer.h);
 *  - decode / detokenize / token_to_piece report the same length whatever
 *    the buffer, NUL-terminate, and never write past cap (the buffers are
 *    heap blocks of exactly cap bytes, so ASan sees any overrun);
 *  - round trip, as tokenizer.h documents it: for valid UTF-8 encoded
 *    without parse_special, st_tok_decode(remove_leading_space, !special)
 *    gives the text back byte for byte. SentencePiece exception (as in
 *    llama.cpp): the encoder writes spaces as U+2581 "▁" and the decoder
 *    turns every U+2581 back into a space, so texts containing U+2581 itself
 *    are not checked. */
#include "fuzz_util.h"
#include "gguf.h"
#include "tokenizer.h"

#include <stdbool.h>
#include <stdint.h>

#define MAX_VOCABS 4
static st_tokenizer *g_tok[MAX_VOCABS];
static bool g_spm[MAX_VOCABS];
static int g_n;

static void load(const char *path, bool spm) {
    if (!path) return;
    st_gguf *g = NULL;
    st_error e = {0};
    if (st_gguf_open(path, &g, &e)) { fprintf(stderr, "fuzz_tokenizer: %s\n", e.msg); abort(); }
    if (st_tok_load(g, &g_tok[g_n], &e)) { fprintf(stderr, "fuzz_tokenizer: %s: %s\n", path, e.msg); abort(); }
    st_gguf_close(g);
    g_spm[g_n++] = spm;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char buf[1024];
    const char *p = fz_source("assets/tiny-14m-q8_0.gguf", buf, sizeof buf);
    if (!p) { fprintf(stderr, "fuzz_tokenizer: assets/tiny-14m-q8_0.gguf not found\n"); abort(); }
    load(p, true);
    load(fz_shared("refs/tokenizer/ggml-vocab-gpt-2.gguf", buf, sizeof buf), false);
    load(fz_shared("refs/tokenizer/ggml-vocab-llama-bpe.gguf", buf, sizeof buf), false);
    fprintf(stderr, "fuzz_tokenizer: %d vocab(s)\n", g_n);
    return 0;
}

static bool valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t k;
        uint32_t cp;
        if ((c & 0xE0) == 0xC0) { k = 1; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { k = 2; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { k = 3; cp = c & 0x07; }
        else return false;
        if (i + k >= n) return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

static bool contains(const uint8_t *s, size_t n, const char *pat) {
    size_t m = strlen(pat);
    for (size_t i = 0; i + m <= n; i++)
        if (!memcmp(s + i, pat, m)) return true;
    return false;
}

/* decode into a heap block of exactly cap bytes; checks the length and the terminator */
static int64_t decode_cap(const st_tokenizer *t, const int32_t *ids, int64_t n, int64_t cap, bool detok, bool a,
                          bool b, int64_t want, char **keep) {
    char *buf = cap ? malloc((size_t)cap) : NULL;
    int64_t r = detok ? st_tok_detokenize(t, ids, n, buf, cap, a, b) : st_tok_decode(t, ids, n, buf, cap, a, b);
    FZ_CHECK(r >= 0, "%s returned %lld", detok ? "detokenize" : "decode", (long long)r);
    if (want >= 0) FZ_CHECK(r == want, "length %lld with cap %lld, %lld with a full buffer", (long long)r, (long long)cap, (long long)want);
    if (cap > 0) {
        int64_t k = r < cap - 1 ? r : cap - 1;
        FZ_CHECK(buf[k] == 0, "not NUL-terminated at %lld (cap %lld)", (long long)k, (long long)cap);
    }
    if (keep) *keep = buf;
    else free(buf);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t flags = data[0];
    const st_tokenizer *t = g_tok[(flags & 3) % g_n];
    bool spm = g_spm[(flags & 3) % g_n];
    bool add_special = flags & 4, parse_special = flags & 8;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int32_t nv = st_tok_n_vocab(t);

    /* encode: first into a small buffer, then into one of the size it asked for */
    int64_t cap0 = (int64_t)(len / 4);
    int32_t *ids0 = malloc(sizeof(int32_t) * (size_t)(cap0 ? cap0 : 1));
    int64_t n = st_tok_encode(t, text, len, add_special, parse_special, ids0, cap0);
    FZ_CHECK(n >= 0, "encode failed on %zu bytes", len);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    int64_t n2 = st_tok_encode(t, text, len, add_special, parse_special, ids, n);
    FZ_CHECK(n2 == n, "encode: %lld tokens with cap %lld, %lld with cap %lld", (long long)n, (long long)cap0,
             (long long)n2, (long long)n);
    int64_t common = n < cap0 ? n : cap0;
    FZ_CHECK(common == 0 || !memcmp(ids, ids0, sizeof(int32_t) * (size_t)common), "short buffer got other ids");
    free(ids0);
    for (int64_t i = 0; i < n; i++) FZ_CHECK(ids[i] >= 0 && ids[i] < nv, "id %d at %lld of vocab %d", ids[i], (long long)i, nv);
    if (add_special && st_tok_add_bos(t) && st_tok_bos(t) >= 0) FZ_CHECK(n >= 1 && ids[0] == st_tok_bos(t), "no BOS");

    /* decode and detokenize: every flag combination, full / short / empty buffers */
    char *full = NULL;
    for (int detok = 0; detok < 2; detok++)
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++) {
                bool keep = !detok && a && !b;
                char *out = NULL;
                int64_t need = decode_cap(t, ids, n, 0, detok, a, b, -1, NULL);
                decode_cap(t, ids, n, need + 1, detok, a, b, need, keep ? &out : NULL);
                decode_cap(t, ids, n, need / 2 + 1, detok, a, b, need, NULL);
                decode_cap(t, ids, n, 1, detok, a, b, need, NULL);
                if (keep) full = out;
            }

    /* round trip */
    int64_t dl = (int64_t)strlen(full); /* full: decode(remove_leading_space, !special), NUL-terminated */
    if (!parse_special && valid_utf8(data + 1, len) && !(spm && contains(data + 1, len, "\xE2\x96\x81")) &&
        !memchr(text, 0, len)) {
        FZ_CHECK(dl == (int64_t)len && !memcmp(full, text, len), "round trip (%s, add_special %d): %zu bytes in, %lld out",
                 spm ? "spm" : "bpe", add_special, len, (long long)dl);
    }
    free(full);

    /* pieces */
    int64_t lim = n < 64 ? n : 64;
    for (int64_t i = 0; i < lim; i++) {
        for (int sp = 0; sp < 2; sp++) {
            int need = st_tok_token_to_piece(t, ids[i], NULL, 0, sp);
            FZ_CHECK(need >= 0, "token_to_piece(%d)", ids[i]);
            char *pb = malloc((size_t)need + 1);
            FZ_CHECK(st_tok_token_to_piece(t, ids[i], pb, need, sp) == need, "token_to_piece length");
            if (need > 1) FZ_CHECK(st_tok_token_to_piece(t, ids[i], pb, need - 1, sp) == need, "short piece length");
            free(pb);
        }
        FZ_CHECK(st_tok_piece(t, ids[i]) != NULL, "piece(%d)", ids[i]);
        (void)st_tok_is_eog(t, ids[i]);
    }
    /* find: the text as one vocabulary string */
    int32_t id = st_tok_find(t, text, len);
    if (id >= 0) FZ_CHECK(id < nv && strlen(st_tok_piece(t, id)) == len && !memcmp(st_tok_piece(t, id), text, len), "find");
    free(ids);
    return 0;
}
