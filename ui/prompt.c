/* prompt.c — conversation -> prompt text through core/chat.h. */
#include "prompt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ui_prompt_fmt_init(ui_prompt_fmt *f, const st_model *m) {
    memset(f, 0, sizeof *f);
    f->family = ST_CHAT_PLAIN;
    f->fallback = true;
    st_gguf *g = NULL;
    if (m && st_gguf_open(st_model_path(m), &g, NULL) == ST_OK) {
        char *t = st_chat_gguf_template(g);
        st_chat_family fam = st_chat_detect(t);
        if (fam != ST_CHAT_UNKNOWN) {
            f->family = fam;
            f->fallback = false;
        }
        free(t);
        st_gguf_close(g);
    }
    const st_tokenizer *tok = m ? st_model_tokenizer(m) : NULL;
    if (tok) {
        int32_t b = st_tok_bos(tok), e = st_tok_eos(tok);
        if (b >= 0 && st_tok_piece(tok, b)) f->bos = strdup(st_tok_piece(tok, b));
        if (e >= 0 && st_tok_piece(tok, e)) f->eos = strdup(st_tok_piece(tok, e));
    }
    snprintf(f->name, sizeof f->name, "%s", st_chat_family_name(f->family));
}

void ui_prompt_fmt_free(ui_prompt_fmt *f) {
    free(f->bos);
    free(f->eos);
    memset(f, 0, sizeof *f);
}

char *ui_prompt_render(const ui_prompt_fmt *f, const ui_turn *t, int n, bool *add_special, st_error *err) {
    static const char *const roles[] = {"system", "user", "assistant"};
    st_chat_msg *msgs = malloc(sizeof *msgs * (size_t)(n > 0 ? n : 1));
    if (!msgs) { st_error_set(err, ST_ERR_NOMEM, "out of memory"); return NULL; }
    for (int i = 0; i < n; i++) {
        const char *x = t[i].text ? t[i].text : "";
        /* replies as the templates expect them: without the leading space a
         * SentencePiece reply starts with */
        if (t[i].role == UI_ROLE_ASSISTANT) while (*x == ' ') x++;
        msgs[i].role = roles[t[i].role];
        msgs[i].content = x;
    }
    st_chat_params p;
    st_chat_params_default(&p);
    p.add_generation_prompt = true;
    p.bos_token = f->bos;
    p.eos_token = f->eos;
    char *out = NULL;
    size_t len = 0;
    st_status st = st_chat_render(f->family, msgs, n, &p, &out, &len, err);
    free(msgs);
    if (st) return NULL;
    size_t bl = f->bos ? strlen(f->bos) : 0;
    *add_special = !(bl && len >= bl && !memcmp(out, f->bos, bl));
    return out;
}

const char *const *ui_prompt_stops(const ui_prompt_fmt *f) {
    static const char *const plain[] = {"\nUser:", "\nAssistant:", "\nSystem:", NULL};
    static const char *const none[] = {NULL};
    return f->family == ST_CHAT_PLAIN ? plain : none;
}
