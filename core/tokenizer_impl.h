/* tokenizer_impl.h — internals shared by tokenizer.c (vocabulary, special
 * tokens, SentencePiece, dispatch) and tokenizer_bpe.c (byte-level BPE).
 * Not part of the public API. */
#ifndef ST_TOKENIZER_IMPL_H
#define ST_TOKENIZER_IMPL_H

#include "tokenizer.h"
#include "unicode.h"

/* token attributes, as llama.cpp's llama_token_attr bits */
enum {
    ATTR_UNKNOWN = 1 << 0,
    ATTR_UNUSED = 1 << 1,
    ATTR_NORMAL = 1 << 2,
    ATTR_CONTROL = 1 << 3,
    ATTR_USER_DEFINED = 1 << 4,
    ATTR_BYTE = 1 << 5,
    ATTR_LSTRIP = 1 << 7,
    ATTR_RSTRIP = 1 << 8,
};

typedef struct st_bpe st_bpe;

struct st_tokenizer {
    int32_t n_vocab;
    /* token texts: NUL-terminated strings inside `blob` */
    char *blob;
    size_t *off;
    uint32_t *len;
    float *score;
    int32_t *type;   /* effective GGUF token type */
    uint16_t *attr;  /* llama.cpp attribute bits */
    /* rendered pieces (token_to_piece with special = true), inside `pblob` */
    char *pblob;
    size_t *poff;
    uint32_t *plen;
    uint8_t *eog;
    uint32_t max_token_len;

    /* text -> id: open addressing, linear probing; -1 = empty slot */
    int32_t *ht;
    uint32_t ht_mask;

    /* control / user-defined / unknown tokens, longest text first */
    int32_t *special;
    int32_t n_special;

    int32_t byte_tok[256];  /* byte -> token (-1: none) */

    int32_t bos, eos, unk, sep, pad, mask, eot, eom;
    bool add_bos, add_eos, add_space_prefix;
    bool clean_spaces;      /* llama.cpp's clean_up_tokenization_spaces in detokenize */

    st_bpe *bpe;            /* NULL: SentencePiece */
};

/* id of the token whose text is exactly s[0..n), -1 if none */
int32_t st_tok__lookup(const st_tokenizer *t, const char *s, size_t n);
uint64_t st_tok__hash(const char *s, size_t n);
/* grows *p (elements of elem bytes) to at least need elements */
bool st_tok__grow(void **p, size_t *cap, size_t need, size_t elem);

/* the encoder's output: writes up to cap ids, counts them all */
typedef struct {
    int32_t *ids;
    int64_t cap;
    int64_t n;
} st_tok_out;

static inline void st_tok__emit(st_tok_out *o, int32_t id) {
    if (o->n < o->cap) o->ids[o->n] = id;
    o->n++;
}

/* ---- tokenizer_bpe.c ------------------------------------------------------ */

/* what tokenizer.ggml.pre selects */
typedef struct {
    const char *name;
    uint8_t rules[4];   /* st_pre_rule, applied in order */
    uint8_t n_rules;
    bool ignore_merges; /* a pre-token that is a whole vocab entry is emitted as is */
    bool add_bos;       /* default of add_bos before the GGUF key */
    bool clean_spaces;
} st_bpe_pre;

/* NULL if the name is not known */
const st_bpe_pre *st_bpe_find_pre(const char *name, size_t len);
/* the supported names, comma-separated, for error messages */
void st_bpe_pre_names(char *buf, size_t cap);

/* Reads tokenizer.ggml.merges and builds the BPE tables; t's vocabulary and
 * hash map must be ready. Sets t->bpe. */
st_status st_bpe_init(st_tokenizer *t, const st_gguf *g, const st_bpe_pre *pre, st_error *err);
void st_bpe_free(st_bpe *b);

/* Byte-level decode of a NORMAL token's text (llama.cpp's llama_decode_text):
 * each code point back to its byte. Writes to dst when not NULL; returns the
 * length. */
size_t st_bpe_decode_text(const char *s, size_t n, char *dst);

typedef struct st_bpe_scratch st_bpe_scratch;
void st_bpe_scratch_free(st_bpe_scratch *s);

/* Tokenizes one raw fragment (text between special tokens): pre-tokenize,
 * then BPE each piece. *sp is created on first use. false: out of memory. */
bool st_bpe_fragment(const st_tokenizer *t, st_bpe_scratch **sp, const char *text, size_t len, st_tok_out *o);

/* llama.cpp's clean_up_tokenization_spaces over s[0..n) in place; returns
 * the new length */
size_t st_bpe_clean_spaces(char *s, size_t n);

#endif
