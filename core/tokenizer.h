/* tokenizer.h — the tokenizer built from a GGUF vocab, behaving exactly as
 * llama.cpp's, of either kind tokenizer.ggml.model names:
 *   "llama": SentencePiece (llm_tokenizer_spm): score-driven bigram merges,
 *            byte fallback to <0xNN>, detokenization with leading-space
 *            handling;
 *   "gpt2":  byte-level BPE (llm_tokenizer_bpe): the pre-tokenizer that
 *            tokenizer.ggml.pre selects (gpt-2, llama-bpe, qwen2, default and
 *            relatives), merges by rank from tokenizer.ggml.merges, byte-level
 *            detokenization (core/tokenizer_bpe.c, core/unicode.c).
 * Both: add_bos/add_eos from the GGUF keys (BPE: add_bos defaults to true
 * for the Llama-3 pre-tokenizer, else false), control / user-defined tokens,
 * end-of-generation tokens found by id keys and by text. Other models give
 * ST_ERR_UNSUPPORTED naming them. */
#ifndef ST_TOKENIZER_H
#define ST_TOKENIZER_H

#include "error.h"
#include "gguf.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct st_tokenizer st_tokenizer;

/* token types as in GGUF tokenizer.ggml.token_type */
enum {
    ST_TOKTYPE_UNDEFINED = 0,
    ST_TOKTYPE_NORMAL = 1,
    ST_TOKTYPE_UNKNOWN = 2,
    ST_TOKTYPE_CONTROL = 3,
    ST_TOKTYPE_USER_DEFINED = 4,
    ST_TOKTYPE_UNUSED = 5,
    ST_TOKTYPE_BYTE = 6,
};

/* Builds the tokenizer from the tokenizer.ggml.* keys of an open GGUF. The
 * tokenizer copies what it needs; the st_gguf may be closed afterwards. */
st_status st_tok_load(const st_gguf *g, st_tokenizer **out, st_error *err);
void st_tok_free(st_tokenizer *t);

int32_t st_tok_n_vocab(const st_tokenizer *t);
int32_t st_tok_bos(const st_tokenizer *t);   /* -1 if none */
int32_t st_tok_eos(const st_tokenizer *t);
bool st_tok_add_bos(const st_tokenizer *t);  /* tokenizer.ggml.add_bos_token (default true for llama) */
bool st_tok_add_eos(const st_tokenizer *t);
bool st_tok_is_eog(const st_tokenizer *t, int32_t id);  /* end of generation: EOS, EOT, ... */
int st_tok_type(const st_tokenizer *t, int32_t id);

/* Tokenizes len bytes of UTF-8 text. add_special: prepend BOS / append EOS
 * as the GGUF's add_bos/add_eos say. parse_special: recognise the text of
 * control/user-defined tokens (e.g. "<s>") as those tokens.
 * Writes at most cap ids; returns the number of tokens the text needs
 * (which may exceed cap: call again with a bigger buffer), or -1 on error. */
int64_t st_tok_encode(const st_tokenizer *t, const char *text, size_t len,
                      bool add_special, bool parse_special, int32_t *ids, int64_t cap);

/* The raw vocabulary string of a token ("▁Hello", "<0x0A>", "<s>", BPE "Ġworld"). */
const char *st_tok_piece(const st_tokenizer *t, int32_t id);

/* Text of one token as llama.cpp's token_to_piece renders it: SPM: "▁"
 * becomes a space, byte tokens become their byte; BPE: each character of a
 * normal token becomes its byte (a multi-byte character may span tokens);
 * control tokens render as nothing unless `special`. Writes up to cap bytes (not NUL-terminated); returns the
 * length needed. */
int st_tok_token_to_piece(const st_tokenizer *t, int32_t id, char *buf, int cap, bool special);

/* Detokenizes ids into buf as llama.cpp's detokenize does (a leading space
 * after BOS is removed when the vocab adds a space prefix), but never cleans
 * up spaces (BPE: decode(encode(text)) == text for valid UTF-8). NUL-terminates
 * when cap > 0; returns the length needed without the NUL. */
int64_t st_tok_decode(const st_tokenizer *t, const int32_t *ids, int64_t n,
                      char *buf, int64_t cap, bool remove_leading_space, bool special);

/* ---- additions ---- */
int32_t st_tok_unk(const st_tokenizer *t);   /* -1 if none */
int32_t st_tok_pad(const st_tokenizer *t);   /* -1 if none */
int32_t st_tok_eot(const st_tokenizer *t);   /* end of turn, -1 if none */
bool st_tok_add_space_prefix(const st_tokenizer *t); /* tokenizer.ggml.add_space_prefix (default true) */
/* id of the token whose vocabulary string is exactly text[0..len), -1 if none */
int32_t st_tok_find(const st_tokenizer *t, const char *text, size_t len);

/* Exactly llama.cpp's llama_detokenize(remove_special, unparse_special): the
 * first token's piece loses one leading space when the vocab adds a space
 * prefix, except that with remove_special a leading BOS is dropped and then
 * nothing is stripped (so [BOS, "▁Hello"] gives " Hello"); with remove_special
 * a trailing EOS is dropped when add_eos. BPE vocabs whose pre-tokenizer
 * sets clean_spaces (gpt-2, llama-bpe, ...) then get llama.cpp's
 * clean_up_tokenization_spaces (" ," -> ",", " 's" -> "'s", ...); the length
 * returned is that of the cleaned text. NUL-terminates when cap > 0;
 * returns the length needed without the NUL, -1 on a bad id. st_tok_decode
 * differs in stripping the space of the token after a leading BOS and in
 * never cleaning up spaces. */
int64_t st_tok_detokenize(const st_tokenizer *t, const int32_t *ids, int64_t n,
                          char *buf, int64_t cap, bool remove_special, bool unparse_special);

#endif
