/* prompt.h — a conversation rendered as the model's prompt text, with the
 * model's chat template (core/chat.h: the GGUF's tokenizer.chat_template,
 * by family) or the plain "User:/Assistant:" fallback for models without
 * one (the bundled story model). The one place the app knows about chat
 * templates. */
#ifndef UI_PROMPT_H
#define UI_PROMPT_H

#include "chat.h"
#include "strata.h"
#include <stdbool.h>

typedef enum { UI_ROLE_SYSTEM = 0, UI_ROLE_USER, UI_ROLE_ASSISTANT } ui_role;

typedef struct ui_turn {
    ui_role role;
    const char *text;
} ui_turn;

typedef struct ui_prompt_fmt {
    st_chat_family family;
    bool fallback;           /* no template, or one of no known family */
    char *bos, *eos;         /* token texts the templates print (malloc'd; may be NULL) */
    char name[32];           /* "chatml", "plain", ... */
} ui_prompt_fmt;

/* The format for an open model (reads its GGUF's chat template). */
void ui_prompt_fmt_init(ui_prompt_fmt *f, const st_model *m);
void ui_prompt_fmt_free(ui_prompt_fmt *f);
/* The prompt text for turns[0..n) (malloc'd), ending with the opening of
 * the assistant's reply; *add_special: whether tokenizing should add BOS
 * (false when the template writes it). NULL with err set when the template
 * refuses the conversation. */
char *ui_prompt_render(const ui_prompt_fmt *f, const ui_turn *turns, int n, bool *add_special, st_error *err);
/* Strings that end a reply (not shown, not kept): NULL-terminated list. */
const char *const *ui_prompt_stops(const ui_prompt_fmt *f);

#endif
