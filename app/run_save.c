#include "run_save.h"

#include "db_opts.h"
#include "history.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct run_saver {
    st_db *db;
    int64_t conv;
    char *text;
    size_t len, cap;
    bool oom;
};

/* the prompt's first line, at most 60 bytes, cut at a UTF-8 boundary */
static void default_title(const char *prompt, char *buf, size_t n) {
    while (*prompt == ' ' || *prompt == '\n' || *prompt == '\t' || *prompt == '\r') prompt++;
    size_t l = strcspn(prompt, "\r\n");
    if (l > 60) {
        l = 60;
        while (l > 0 && ((unsigned char)prompt[l] & 0xc0) == 0x80) l--;
    }
    snprintf(buf, n, "%.*s", (int)l, prompt);
}

run_saver *run_save_begin(const char *db_path, const char *title, const st_model *m, const char *prompt,
                          const char *system_prompt, int n_prompt_tokens, const st_gen_params *gp) {
    st_error err = {0};
    run_saver *r = calloc(1, sizeof *r);
    if (!r) { fprintf(stderr, "strata run: out of memory: generating without saving\n"); return NULL; }
    if (db_open_path(db_path, true, &r->db, &err)) {
        fprintf(stderr, "strata run: cannot save this conversation: %s\nstrata run: generating without saving\n",
                err.msg);
        free(r);
        return NULL;
    }
    st_model_info mi;
    st_model_get_info(m, &mi);
    char file[PATH_MAX], hash[32], sampling[512], tbuf[128];
    if (!realpath(st_model_path(m), file)) snprintf(file, sizeof file, "%s", st_model_path(m));
    st_db_model_fingerprint(file, hash, sizeof hash);
    st_db_sampling_json(&gp->sampling, gp->n_predict, sampling, sizeof sampling);
    if (!title) {
        default_title(prompt, tbuf, sizeof tbuf);
        title = tbuf;
    }
    st_db_conversation c = {.title = title, .model_name = mi.name, .model_file = file, .model_hash = hash,
                            .system_prompt = system_prompt, .sampling = sampling};
    st_db_message um = {.role = "user", .content = prompt, .n_tokens = n_prompt_tokens};
    if (st_db_conv_create(r->db, &c, &um, 1, &r->conv, &err)) {
        fprintf(stderr, "strata run: cannot save this conversation: %s\nstrata run: generating without saving\n",
                err.msg);
        st_db_close(r->db);
        free(r);
        return NULL;
    }
    fprintf(stderr, "strata run: saving as conversation %lld in %s\n", (long long)r->conv, st_db_path(r->db));
    return r;
}

void run_save_piece(run_saver *r, const char *piece, int len) {
    if (!r || r->oom || len <= 0) return;
    if (r->len + (size_t)len + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < r->len + (size_t)len + 1) cap *= 2;
        char *t = realloc(r->text, cap);
        if (!t) { r->oom = true; return; }
        r->text = t;
        r->cap = cap;
    }
    memcpy(r->text + r->len, piece, (size_t)len);
    r->len += (size_t)len;
    r->text[r->len] = 0;
}

void run_save_end(run_saver *r, st_status st, const st_session *s) {
    if (!r) return;
    st_error err = {0};
    st_stats ss;
    st_session_stats(s, &ss);
    st_db_message am = {.conversation_id = r->conv, .role = "assistant", .content = r->text ? r->text : "",
                        .stopped = st != ST_OK};
    st_db_message_set_stats(&am, &ss);
    int64_t mid;
    if (r->oom)
        fprintf(stderr, "strata run: out of memory keeping the reply: it was not saved\n");
    else if (st_db_message_add(r->db, &am, &mid, &err))
        fprintf(stderr, "strata run: could not save the reply: %s\n", err.msg);
    else
        fprintf(stderr, "strata run: reply saved%s (conversation %lld, message %lld; strata history show %lld)\n",
                am.stopped ? ", marked stopped" : "", (long long)r->conv, (long long)mid, (long long)r->conv);
    st_db_close(r->db);
    free(r->text);
    free(r);
}
