/* chat.h — chat templates: recognise the family of a model's
 * tokenizer.chat_template (Jinja text) by its markers and render a list of
 * {role, content} messages the way that template renders them under
 * transformers' apply_chat_template (jinja2, trim_blocks + lstrip_blocks),
 * byte for byte. There is no Jinja interpreter: each family is a hand-written
 * renderer (docs/CHAT.md lists them and how detection works).
 *
 *   fam = st_chat_detect(template_text);        // ST_CHAT_UNKNOWN: not recognised
 *   st_chat_render(fam, msgs, n, &params, &text, &len, &err);
 *
 * Templates that have no system role (gemma, mistral-v0.2) get a leading
 * system message folded into the first user message
 * (system.strip() + "\n\n" + user), unless params.no_fold asks for the
 * template's refusal instead. Conversations a template refuses for other
 * reasons (roles that do not alternate, roles it does not know) are refused
 * with ST_ERR_ARG and a message saying why. */
#ifndef ST_CHAT_H
#define ST_CHAT_H

#include "error.h"
#include "gguf.h"
#include <stdbool.h>
#include <stddef.h>

struct st_model;

typedef enum st_chat_family {
    ST_CHAT_UNKNOWN = -1,      /* not recognised; renders as ST_CHAT_PLAIN */
    ST_CHAT_PLAIN = 0,         /* the fallback: "User: ...\nAssistant:" */
    ST_CHAT_LLAMA2,            /* <s>[INST] <<SYS>>...<</SYS>> user [/INST] assistant </s> */
    ST_CHAT_MISTRAL_V02,       /* <s>[INST] user [/INST]assistant</s> (no system role: folds) */
    ST_CHAT_MISTRAL_V1,        /* <s> [INST] system\n\nuser [/INST] assistant</s> */
    ST_CHAT_MISTRAL_V3,        /* <s>[INST] user[/INST] assistant</s> (v0.3; system before the last user turn) */
    ST_CHAT_MISTRAL_NEMO,      /* <s>[INST]user[/INST]assistant</s> (v3-tekken) */
    ST_CHAT_CHATML,            /* <|im_start|>role\ncontent<|im_end|>\n */
    ST_CHAT_QWEN25,            /* chatml with Qwen's default system message */
    ST_CHAT_SMOLLM3,           /* chatml with SmolLM3's metadata system block */
    ST_CHAT_LLAMA3,            /* Llama-3 as first released: assistant header always appended */
    ST_CHAT_LLAMA3_GENPROMPT,  /* Llama-3, fixed: assistant header only with add_generation_prompt */
    ST_CHAT_LLAMA31,           /* Llama-3.1: system header with the knowledge/today dates */
    ST_CHAT_LLAMA32,           /* Llama-3.2: as 3.1, today's date from the clock */
    ST_CHAT_ZEPHYR,            /* <|user|>\ncontent</s>\n */
    ST_CHAT_PHI3,              /* Phi-3 original: no system role (dropped), <|assistant|> after each user turn */
    ST_CHAT_PHI3_SYSTEM,       /* Phi-3 revised: <|system|> role, eos without generation prompt */
    ST_CHAT_PHI35,             /* Phi-3.5: as phi3-system, an empty system message is skipped */
    ST_CHAT_GEMMA,             /* <start_of_turn>user\n...<end_of_turn>\n (no system role: folds) */
    ST_CHAT_GEMMA2,            /* gemma with a leading bos_token (gemma-2, HF gemma-7b-it) */
    ST_CHAT_DEEPSEEK_CODER,    /* ### Instruction: / ### Response: with a default system text */
    ST_CHAT_DEEPSEEK_R1,       /* <｜User｜>...<｜Assistant｜>...<｜end▁of▁sentence｜> */
    ST_CHAT_VICUNA,            /* system\n\nUSER: ...\nASSISTANT: ...</s>\n */
    ST_CHAT_VICUNA_ORCA,       /* vicuna with "SYSTEM: " */
    ST_CHAT_OPENCHAT,          /* GPT4 Correct User: ...<|end_of_turn|> */
    ST_CHAT_COUNT
} st_chat_family;

typedef struct st_chat_msg {
    const char *role;     /* "system", "user", "assistant", "tool", ... */
    const char *content;  /* UTF-8 */
} st_chat_msg;

typedef struct st_chat_params {
    bool add_generation_prompt;
    const char *bos_token;  /* the templates' bos_token; NULL renders as nothing, like an undefined Jinja variable */
    const char *eos_token;
    /* "today" for templates that print the date (llama3.2's strftime_now);
     * 0 = the local date now */
    int year, month, day;
    bool no_fold;           /* refuse a system message the template has no role for, instead of folding it */
} st_chat_params;

void st_chat_params_default(st_chat_params *p);

/* The family of a template text by its markers; ST_CHAT_UNKNOWN when the
 * text is NULL, empty or of no family known here. */
st_chat_family st_chat_detect(const char *tmpl);

/* Canonical name of a family ("chatml"; "plain" for the fallback and for
 * ST_CHAT_UNKNOWN), and the family of a name or alias (ST_CHAT_UNKNOWN if none). */
const char *st_chat_family_name(st_chat_family f);
st_chat_family st_chat_family_by_name(const char *name);
/* All canonical names, comma-separated (for help texts and errors). */
const char *st_chat_family_list(void);
/* True for the families whose template raises on a system message. */
bool st_chat_refuses_system(st_chat_family f);

/* Renders n messages. *out gets a malloc'd NUL-terminated string (free()),
 * *len its length (out_len may be NULL). ST_ERR_ARG when the template
 * refuses the conversation; ST_ERR_NOMEM. */
st_status st_chat_render(st_chat_family f, const st_chat_msg *msgs, int n, const st_chat_params *p,
                         char **out, size_t *out_len, st_error *err);

/* ---- models ---- */
/* tokenizer.chat_template of an open GGUF as a malloc'd string; NULL if absent. */
char *st_chat_gguf_template(const st_gguf *g);
/* The vocabulary text of the token whose id the key holds
 * ("tokenizer.ggml.bos_token_id"), malloc'd; NULL if absent. */
char *st_chat_gguf_token_text(const st_gguf *g, const char *id_key);

/* A one-shot chat prompt for a model. */
typedef struct st_chat_prompt {
    char *text;            /* malloc'd, NUL-terminated */
    size_t len;
    st_chat_family family; /* the renderer used (ST_CHAT_PLAIN for the fallback) */
    bool fallback;         /* the model's template was absent or not recognised */
    bool add_special;      /* tokenize with add_special: false when the text already starts with BOS */
    char notice[256];      /* with fallback: why, in one line */
} st_chat_prompt;

/* [system] + user, rendered with the model's template (or the family named
 * by `name` when non-NULL) with add_generation_prompt and the model's BOS/EOS
 * texts. ST_ERR_ARG for an unknown name or a refused conversation. */
st_status st_chat_model_prompt(const struct st_model *m, const char *name, const char *system, const char *user,
                               st_chat_prompt *out, st_error *err);
void st_chat_prompt_free(st_chat_prompt *p);

#endif
