/* test_chat.c — chat templates against renders of a real Jinja engine.
 *
 * Every case of every file in ../shared/refs/chat-templates (23 real
 * templates x 3 conversations x add_generation_prompt on/off, rendered by
 * jinja2 and checked with a second engine) must come out byte-identical, and
 * each file's template must be detected as the family of its name. Cases the
 * template refuses (a system message for gemma and mistral-v0.2) must be
 * refused with no_fold and, folded, equal the reference's `fold` render.
 * Three of the files are bundled in tests/data/chat-templates so the core
 * families are tested without ../shared. Then: names, the fallback,
 * refusals, details the references do not exercise, and model plumbing. */
#include "strata.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MSGS 16

/* the fixed "now" of the reference renders: 2026-11-26 */
static void ref_params(st_chat_params *p, const cJSON *ref, bool gen) {
    st_chat_params_default(p);
    p->add_generation_prompt = gen;
    const cJSON *sp = cJSON_GetObjectItem(ref, "special_tokens");
    const cJSON *b = cJSON_GetObjectItem(sp, "bos_token"), *e = cJSON_GetObjectItem(sp, "eos_token");
    p->bos_token = cJSON_IsString(b) ? b->valuestring : NULL;
    p->eos_token = cJSON_IsString(e) ? e->valuestring : NULL;
    p->year = 2026;
    p->month = 11;
    p->day = 26;
}

static int read_conv(const cJSON *conv, st_chat_msg *m) {
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, conv) {
        cr_assert_lt(n, MAX_MSGS);
        m[n].role = cJSON_GetObjectItem(e, "role")->valuestring;
        m[n].content = cJSON_GetObjectItem(e, "content")->valuestring;
        n++;
    }
    return n;
}

/* Where got and want part, with a little context on each side, escaped. */
static void diff_hint(char *out, size_t cap, const char *got, const char *want) {
    size_t i = 0;
    while (got[i] && got[i] == want[i]) i++;
    size_t from = i > 24 ? i - 24 : 0;
    size_t n = 0;
    const char *lab[2] = {"got", "want"};
    const char *s[2] = {got, want};
    n += (size_t)snprintf(out + n, cap - n, "first difference at byte %zu (got %zu bytes, want %zu):", i, strlen(got), strlen(want));
    for (int k = 0; k < 2 && n < cap; k++) {
        n += (size_t)snprintf(out + n, cap - n, "\n      %-4s ...\"", lab[k]);
        size_t len = strlen(s[k]);
        for (size_t j = from; j < len && j < i + 40 && n + 8 < cap; j++) {
            unsigned char ch = (unsigned char)s[k][j];
            if (ch == '\n') n += (size_t)snprintf(out + n, cap - n, "\\n");
            else if (ch == '"') n += (size_t)snprintf(out + n, cap - n, "\\\"");
            else if (ch < 0x20) n += (size_t)snprintf(out + n, cap - n, "\\x%02x", ch);
            else out[n++] = (char)ch, out[n] = 0;
        }
        if (n < cap) n += (size_t)snprintf(out + n, cap - n, "\"...");
    }
}

/* Checks one reference file; returns the number of failed checks and adds
 * identical/total case counts. */
static int check_ref_file(const char *path, int *ok_cases, int *n_cases) {
    cJSON *ref = tu_read_json(path);
    cr_assert_not_null(ref, "cannot read or parse %s", path);
    const char *name = cJSON_GetObjectItem(ref, "name")->valuestring;
    const char *tmpl = cJSON_GetObjectItem(ref, "template")->valuestring;
    int fails = 0, ok = 0, total = 0;

    st_chat_family want_f = st_chat_family_by_name(name);
    st_chat_family f = st_chat_detect(tmpl);
    if (want_f == ST_CHAT_UNKNOWN || f != want_f) {
        cr_log_error("%s: template detected as '%s', expected the family '%s'", name,
                     f == ST_CHAT_UNKNOWN ? "(unknown)" : st_chat_family_name(f), name);
        fails++;
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(ref, "cases")) {
        const char *id = cJSON_GetObjectItem(c, "id")->valuestring;
        bool gen = cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt"));
        st_chat_msg m[MAX_MSGS];
        int n = read_conv(cJSON_GetObjectItem(c, "conversation"), m);
        st_chat_params p;
        ref_params(&p, ref, gen);
        const cJSON *exp = cJSON_GetObjectItem(c, "expected");
        char *out = NULL;
        size_t len = 0;
        st_error err = {0};
        char hint[1024];
        total++;
        if (cJSON_IsString(exp)) {
            st_status st = st_chat_render(f, m, n, &p, &out, &len, &err);
            if (st) { cr_log_error("%s %s: refused: %s", name, id, err.msg); fails++; }
            else if (len != strlen(exp->valuestring) || memcmp(out, exp->valuestring, len)) {
                diff_hint(hint, sizeof hint, out, exp->valuestring);
                cr_log_error("%s %s: render differs from the reference: %s", name, id, hint);
                fails++;
            } else ok++;
            free(out);
            continue;
        }
        /* a refused case: refused without folding, folded equal to `fold` */
        const cJSON *fold = cJSON_GetObjectItem(c, "fold");
        cr_assert_not_null(fold, "%s %s: neither expected nor fold", name, id);
        bool case_ok = true;
        p.no_fold = true;
        st_status st = st_chat_render(f, m, n, &p, &out, &len, &err);
        if (st != ST_ERR_ARG) { cr_log_error("%s %s: the template refuses this conversation, we did not (no_fold)", name, id); case_ok = false; }
        else cr_log_info("%s %s: refused as the reference does (%s): %s", name, id,
                         cJSON_GetObjectItem(cJSON_GetObjectItem(c, "error"), "message")->valuestring, err.msg);
        free(out);
        out = NULL;
        p.no_fold = false;
        const char *want = cJSON_GetObjectItem(fold, "expected")->valuestring;
        st = st_chat_render(f, m, n, &p, &out, &len, &err);
        if (st) { cr_log_error("%s %s: fold refused: %s", name, id, err.msg); case_ok = false; }
        else if (len != strlen(want) || memcmp(out, want, len)) {
            diff_hint(hint, sizeof hint, out, want);
            cr_log_error("%s %s (fold): render differs from the reference's fold: %s", name, id, hint);
            case_ok = false;
        }
        free(out);
        out = NULL;
        /* the reference's folded conversation, rendered as given, is the same text */
        st_chat_msg fm[MAX_MSGS];
        int fn = read_conv(cJSON_GetObjectItem(fold, "conversation"), fm);
        st = st_chat_render(f, fm, fn, &p, &out, &len, &err);
        if (st || len != strlen(want) || memcmp(out, want, len)) {
            cr_log_error("%s %s (fold conversation): render differs from the reference's fold", name, id);
            case_ok = false;
        }
        free(out);
        if (case_ok) ok++;
        else fails++;
    }
    cr_log_info("chat template %-26s family %-16s %d/%d cases identical", name, st_chat_family_name(f), ok, total);
    *ok_cases += ok;
    *n_cases += total;
    cJSON_Delete(ref);
    return fails;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* every *.json in dir, sorted; returns failures; *n_files gets the count */
static int check_ref_dir(const char *dir, int *n_files, int *ok_cases, int *n_cases) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    char *names[256];
    int nn = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && nn < 256) {
        size_t l = strlen(e->d_name);
        if (l > 5 && !strcmp(e->d_name + l - 5, ".json")) names[nn++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)nn, sizeof *names, name_cmp);
    int fails = 0;
    for (int i = 0; i < nn; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        fails += check_ref_file(path, ok_cases, n_cases);
        free(names[i]);
    }
    *n_files = nn;
    return fails;
}

Test(chat, shared_references) {
    const char *dir = tu_shared_path("refs/chat-templates");
    if (!tu_file_exists(dir)) cr_skip_test("%s is absent (../shared not available)", dir);
    int files = 0, ok = 0, total = 0;
    int fails = check_ref_dir(dir, &files, &ok, &total);
    cr_log_info("chat templates (shared): %d files, %d/%d cases identical", files, ok, total);
    cr_assert_geq(files, 23, "expected the 23 reference files in %s, found %d", dir, files);
    cr_assert_eq(fails, 0, "%d check(s) failed (see above)", fails);
}

Test(chat, bundled_references) {
    const char *dir = tu_source_path("tests/data/chat-templates");
    int files = 0, ok = 0, total = 0;
    int fails = check_ref_dir(dir, &files, &ok, &total);
    cr_assert_geq(fails, 0, "cannot open %s", dir);
    cr_assert_geq(files, 3, "expected at least 3 bundled reference files in %s", dir);
    cr_log_info("chat templates (bundled): %d files, %d/%d cases identical", files, ok, total);
    cr_assert_eq(fails, 0, "%d check(s) failed (see above)", fails);
}

/* ---- names ---- */

Test(chat, names_round_trip) {
    for (int f = 0; f < ST_CHAT_COUNT; f++) {
        const char *n = st_chat_family_name((st_chat_family)f);
        cr_assert_eq(st_chat_family_by_name(n), f, "name %s", n);
        cr_assert_not_null(strstr(st_chat_family_list(), n));
    }
    cr_assert_eq(st_chat_family_by_name("gemma-bos"), ST_CHAT_GEMMA2);
    cr_assert_eq(st_chat_family_by_name("deepseek-r1-distill-llama"), ST_CHAT_DEEPSEEK_R1);
    cr_assert_eq(st_chat_family_by_name("mistral-v3-tekken"), ST_CHAT_MISTRAL_NEMO);
    cr_assert_eq(st_chat_family_by_name("no-such-template"), ST_CHAT_UNKNOWN);
    cr_assert_eq(st_chat_family_by_name(NULL), ST_CHAT_UNKNOWN);
    cr_assert_str_eq(st_chat_family_name(ST_CHAT_UNKNOWN), "plain");
}

static char *render(st_chat_family f, const st_chat_msg *m, int n, bool gen, const char *bos, const char *eos) {
    st_chat_params p;
    st_chat_params_default(&p);
    p.add_generation_prompt = gen;
    p.bos_token = bos;
    p.eos_token = eos;
    char *out = NULL;
    st_error err = {0};
    cr_assert_eq(st_chat_render(f, m, n, &p, &out, NULL, &err), ST_OK, "%s: %s", st_chat_family_name(f), err.msg);
    return out;
}

static const st_chat_msg CONV_B[] = {{"system", "You are a helpful assistant."},
                                     {"user", "Hi!"},
                                     {"assistant", "Hello! How can I help?"},
                                     {"user", "Tell me a joke."}};

Test(chat, override_by_name) {
    /* any family renders any conversation when chosen by name */
    char *s = render(st_chat_family_by_name("chatml"), CONV_B + 1, 1, true, NULL, NULL);
    cr_assert_str_eq(s, "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n");
    free(s);
    s = render(st_chat_family_by_name("llama2"), CONV_B, 2, true, "<s>", "</s>");
    cr_assert_str_eq(s, "<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHi! [/INST]");
    free(s);
}

/* ---- fallback ---- */

Test(chat, fallback) {
    cr_assert_eq(st_chat_detect(NULL), ST_CHAT_UNKNOWN);
    cr_assert_eq(st_chat_detect(""), ST_CHAT_UNKNOWN);
    cr_assert_eq(st_chat_detect("{{ messages[0]['content'] }}"), ST_CHAT_UNKNOWN);
    cr_assert_eq(st_chat_detect("{% for m in messages %}[SYSTEM_PROMPT]{{ m.content }}[INST]{% endfor %}"), ST_CHAT_UNKNOWN);
    char *s = render(ST_CHAT_UNKNOWN, CONV_B, 4, true, "<s>", "</s>");
    cr_assert_str_eq(s, "System: You are a helpful assistant.\nUser: Hi!\nAssistant: Hello! How can I help?\n"
                        "User: Tell me a joke.\nAssistant:");
    free(s);
    s = render(ST_CHAT_PLAIN, CONV_B + 1, 1, false, NULL, NULL);
    cr_assert_str_eq(s, "User: Hi!\n");
    free(s);
}

/* ---- refusals ---- */

static st_status try_render(st_chat_family f, const st_chat_msg *m, int n, char *msg, size_t cap) {
    st_chat_params p;
    st_chat_params_default(&p);
    char *out = NULL;
    st_error err = {0};
    st_status st = st_chat_render(f, m, n, &p, &out, NULL, &err);
    free(out);
    snprintf(msg, cap, "%s", err.msg);
    return st;
}

Test(chat, refusals) {
    char msg[512];
    static const st_chat_msg two_users[] = {{"user", "a"}, {"user", "b"}};
    static const st_chat_msg sys_only[] = {{"system", "s"}};
    static const st_chat_msg sys_asst[] = {{"system", "s"}, {"assistant", "a"}};
    static const st_chat_msg odd_role[] = {{"user", "a"}, {"assistant", "b"}, {"user", "c"}, {"critic", "d"}};
    st_chat_family alt[] = {ST_CHAT_LLAMA2, ST_CHAT_MISTRAL_V02, ST_CHAT_MISTRAL_V1, ST_CHAT_MISTRAL_V3,
                            ST_CHAT_MISTRAL_NEMO, ST_CHAT_GEMMA, ST_CHAT_GEMMA2};
    for (size_t i = 0; i < sizeof alt / sizeof alt[0]; i++) {
        cr_assert_eq(try_render(alt[i], two_users, 2, msg, sizeof msg), ST_ERR_ARG, "%s", st_chat_family_name(alt[i]));
        cr_assert_not_null(strstr(msg, "alternate"), "%s: %s", st_chat_family_name(alt[i]), msg);
    }
    /* a system message with no user message to fold into */
    cr_assert_eq(try_render(ST_CHAT_GEMMA, sys_only, 1, msg, sizeof msg), ST_ERR_ARG);
    cr_assert_not_null(strstr(msg, "system role not supported"), "%s", msg);
    cr_assert_eq(try_render(ST_CHAT_MISTRAL_V02, sys_asst, 2, msg, sizeof msg), ST_ERR_ARG);
    /* unknown roles where the template raises */
    cr_assert_eq(try_render(ST_CHAT_MISTRAL_V1, odd_role, 4, msg, sizeof msg), ST_ERR_ARG);
    cr_assert_not_null(strstr(msg, "critic"), "%s", msg);
    /* no messages */
    cr_assert_eq(try_render(ST_CHAT_CHATML, NULL, 0, msg, sizeof msg), ST_ERR_ARG);
    /* templates without checks accept anything */
    cr_assert_eq(try_render(ST_CHAT_CHATML, two_users, 2, msg, sizeof msg), ST_OK);
    cr_assert_eq(try_render(ST_CHAT_LLAMA3, sys_only, 1, msg, sizeof msg), ST_OK);
}

/* ---- details the reference conversations do not reach ---- */

Test(chat, details) {
    /* str.strip()/|trim remove Unicode whitespace (NBSP, ideographic space), not other characters */
    static const st_chat_msg ws[] = {{"user", "\xc2\xa0\xe3\x80\x80 x\xe2\x80\xa8\t"}, {"assistant", "\xc3\xa9 "}};
    char *s = render(ST_CHAT_GEMMA, ws, 2, false, NULL, NULL);
    cr_assert_str_eq(s, "<start_of_turn>user\nx<end_of_turn>\n<start_of_turn>model\n\xc3\xa9<end_of_turn>\n");
    free(s);
    /* llama3.1 writes tool results with |tojson */
    static const st_chat_msg tool[] = {{"user", "q"}, {"tool", "say \"hi\"\n\xc3\xa9\x01"}};
    s = render(ST_CHAT_LLAMA31, tool, 2, false, "<|begin_of_text|>", NULL);
    cr_assert_not_null(strstr(s, "<|start_header_id|>ipython<|end_header_id|>\n\n\"say \\\"hi\\\"\\n\xc3\xa9\\u0001\"<|eot_id|>"), "%s", s);
    free(s);
    /* deepseek-r1 keeps only what follows the last </think> of an assistant turn */
    static const st_chat_msg think[] = {{"user", "q"}, {"assistant", "<think>a</think>b</think>c"}};
    s = render(ST_CHAT_DEEPSEEK_R1, think, 2, false, "", NULL);
    cr_assert_str_eq(s, "<\xef\xbd\x9cUser\xef\xbd\x9c>q<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>c<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>");
    free(s);
    /* smollm3: /no_think in the system message switches thinking off and is removed */
    static const st_chat_msg nothink[] = {{"system", "Be brief. /no_think  "}, {"user", "q"}, {"assistant", "\n\na"}};
    s = render(ST_CHAT_SMOLLM3, nothink, 3, true, NULL, NULL);
    cr_assert_str_eq(s, "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nReasoning Mode: /no_think\n\n"
                        "## Custom Instructions\n\nBe brief.\n\n<|im_end|>\n<|im_start|>user\nq<|im_end|>\n"
                        "<|im_start|>assistant\n<think>\n\n</think>\na<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n");
    free(s);
    /* phi3.5 skips an empty system message, phi3-system does not */
    static const st_chat_msg empty_sys[] = {{"system", ""}, {"user", "q"}};
    s = render(ST_CHAT_PHI35, empty_sys, 2, true, NULL, NULL);
    cr_assert_str_eq(s, "<|user|>\nq<|end|>\n<|assistant|>\n");
    free(s);
    s = render(ST_CHAT_PHI3_SYSTEM, empty_sys, 2, true, NULL, NULL);
    cr_assert_str_eq(s, "<|system|>\n<|end|>\n<|user|>\nq<|end|>\n<|assistant|>\n");
    free(s);
    /* openchat title-cases the role */
    static const st_chat_msg oc[] = {{"my_tool-role", "x"}};
    s = render(ST_CHAT_OPENCHAT, oc, 1, false, "<s>", NULL);
    cr_assert_str_eq(s, "<s>GPT4 Correct My_Tool-Role: x<|end_of_turn|>");
    free(s);
    /* mistral-v3 (v0.3): no reference render; the structure of the HF template */
    s = render(ST_CHAT_MISTRAL_V3, CONV_B, 4, true, "<s>", "</s>");
    cr_assert_str_eq(s, "<s>[INST] Hi![/INST] Hello! How can I help?</s>[INST] You are a helpful assistant.\n\nTell me a joke.[/INST]");
    free(s);
    cr_assert_eq(st_chat_detect("{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}{{ \"[INST] \" + m.content + \"[/INST]\" }}"
                                "{% else %}{{ \" \" + m.content|trim + eos_token }}{% endif %}{% endfor %}"),
                 ST_CHAT_MISTRAL_V3);
    /* llama3.2 formats the given date as %d %b %Y */
    st_chat_params p;
    st_chat_params_default(&p);
    p.year = 2025; p.month = 1; p.day = 5;
    char *out = NULL;
    st_error err = {0};
    cr_assert_eq(st_chat_render(ST_CHAT_LLAMA32, CONV_B + 1, 1, &p, &out, NULL, &err), ST_OK);
    cr_assert_not_null(strstr(out, "Today Date: 05 Jan 2025\n\n"), "%s", out);
    free(out);
}

/* ---- models ---- */

Test(chat, gguf_template_and_tokens) {
    char path[512];
    snprintf(path, sizeof path, "%s/chat-vocab.gguf", tu_tmpdir());
    st_error err = {0};
    st_gguf_writer *w = NULL;
    cr_assert_eq(st_gguf_writer_open(path, &w, &err), ST_OK, "%s", err.msg);
    const char *toks[] = {"<unk>", "<s>", "</s>", "hi"};
    st_gguf_writer_kv_str(w, "general.architecture", "llama");
    st_gguf_writer_kv_arr_str(w, "tokenizer.ggml.tokens", toks, 4);
    st_gguf_writer_kv_u32(w, "tokenizer.ggml.bos_token_id", 1);
    st_gguf_writer_kv_u32(w, "tokenizer.ggml.eos_token_id", 2);
    st_gguf_writer_kv_str(w, "tokenizer.chat_template", "{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}");
    cr_assert_eq(st_gguf_writer_write_header(w, &err), ST_OK, "%s", err.msg);
    cr_assert_eq(st_gguf_writer_close(w, &err), ST_OK, "%s", err.msg);
    st_gguf *g = NULL;
    cr_assert_eq(st_gguf_open(path, &g, &err), ST_OK, "%s", err.msg);
    char *t = st_chat_gguf_template(g);
    cr_assert_not_null(t);
    cr_assert_eq(st_chat_detect(t), ST_CHAT_CHATML);
    char *b = st_chat_gguf_token_text(g, "tokenizer.ggml.bos_token_id");
    char *e = st_chat_gguf_token_text(g, "tokenizer.ggml.eos_token_id");
    cr_assert_str_eq(b, "<s>");
    cr_assert_str_eq(e, "</s>");
    cr_assert_null(st_chat_gguf_token_text(g, "tokenizer.ggml.padding_token_id"));
    free(t);
    free(b);
    free(e);
    st_gguf_close(g);
}

Test(chat, bundled_model_prompt) {
    const char *path = tu_source_path("assets/tiny-14m-q8_0.gguf");
    if (!tu_file_exists(path)) cr_skip_test("%s is absent", path);
    st_error err = {0};
    st_model_params mp;
    st_model_params_default(&mp);
    mp.n_threads = 1;
    st_model *m = NULL;
    cr_assert_eq(st_model_open(path, &mp, &m, &err), ST_OK, "%s", err.msg);
    /* the story model has no template: the plain fallback, with a notice */
    st_chat_prompt cp;
    cr_assert_eq(st_chat_model_prompt(m, NULL, "Be kind.", "Tell a story.", &cp, &err), ST_OK, "%s", err.msg);
    cr_assert(cp.fallback);
    cr_assert_eq(cp.family, ST_CHAT_PLAIN);
    cr_assert_neq(cp.notice[0], 0);
    cr_assert_str_eq(cp.text, "System: Be kind.\nUser: Tell a story.\nAssistant:");
    cr_assert(cp.add_special);
    st_chat_prompt_free(&cp);
    /* chosen by name: the model's BOS/EOS texts; no second BOS when the template writes it */
    cr_assert_eq(st_chat_model_prompt(m, "llama2", NULL, "Hi", &cp, &err), ST_OK, "%s", err.msg);
    cr_assert(!cp.fallback);
    cr_assert_str_eq(cp.text, "<s>[INST] Hi [/INST]");
    cr_assert(!cp.add_special);
    st_chat_prompt_free(&cp);
    cr_assert_eq(st_chat_model_prompt(m, "gemma", "S", "Hi", &cp, &err), ST_OK, "%s", err.msg);
    cr_assert_str_eq(cp.text, "<start_of_turn>user\nS\n\nHi<end_of_turn>\n<start_of_turn>model\n");
    cr_assert(cp.add_special);
    st_chat_prompt_free(&cp);
    cr_assert_eq(st_chat_model_prompt(m, "nonsense", NULL, "Hi", &cp, &err), ST_ERR_ARG);
    cr_assert_not_null(strstr(err.msg, "chatml"), "%s", err.msg);
    st_model_close(m);
}
