/* cmd_run.c — `strata run`: generate a continuation of a prompt, streaming
 * tokens to stdout, with a statistics line on stderr. */
#include "app.h"
#include "args.h"
#include "db_opts.h"
#include "run_save.h"
#include "store_opts.h"
#include "backend_opts.h"
#include "strata.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
    printf("usage: strata run [-m model.gguf] [-p PROMPT | -f FILE] [-n N] [options]\n"
           "\n"
           "Generates a continuation of PROMPT and streams it to stdout; statistics go to stderr.\n"
           "\n"
           "  -m, --model FILE        GGUF model (default: the bundled tiny-14m Q8_0)\n"
           "  -p, --prompt TEXT       prompt (default: \"Once upon a time\")\n"
           "  -f, --file FILE         read the prompt from FILE\n"
           "  -n, --n-predict N       tokens to generate (default 64; -1 = until end of sequence)\n"
           "  -t, --threads N         compute threads (default: physical cores)\n"
           "  -c, --ctx-size N        context length (default: the model's, at most 4096)\n"
           "  -b, --batch-size N      prompt tokens per forward batch (default 512)\n"
           "      --temp T            temperature (default 0.8; 0 = greedy)\n"
           "      --top-k K           keep the K most likely tokens (default 40; 0 = off)\n"
           "      --top-p P           nucleus sampling (default 0.95; 1 = off)\n"
           "      --min-p P           drop tokens below P x the best one's probability (default 0.05)\n"
           "      --repeat-penalty R  penalise recent tokens (default 1.0 = off)\n"
           "      --repeat-last-n N   how many recent tokens the penalty looks at (default 64)\n"
           "      --seed S            random seed (default: fixed, so runs repeat)\n"
           "      --ignore-eos        keep generating past end-of-sequence\n"
           "      --ids               print generated token ids instead of text\n"
           "      --no-echo           do not print the prompt before the continuation\n"
           "      --kv-f32            keep the KV cache in F32 (default F16)\n"
           "      --chat              one-shot chat: PROMPT is a user message, rendered with the model's\n"
           "                          chat template (docs/CHAT.md); stops at the end of the turn; no echo\n"
           "      --system TEXT       with --chat: a system message\n"
           "      --chat-template NAME  with --chat: this template family instead of the model's\n"
           "      --save              save the prompt and the reply as a conversation (strata history)\n"
           "      --title TEXT        the saved conversation's title (default: the prompt's first line)\n"
           "%s"

           "  -h, --help              this text\n"
           "\n%s\n%s", db_opts_help, store_opts_help, backend_opts_help);
}

static st_session *g_session;

static void on_sigint(int sig) {
    (void)sig;
    if (g_session) st_session_cancel(g_session);
}

typedef struct { bool ids; int n; run_saver *save; } out_state;

static bool on_token(void *user, int32_t token, const char *piece, int len) {
    out_state *o = user;
    if (o->ids) printf("%s%d", o->n ? " " : "", token);
    else fwrite(piece, 1, (size_t)len, stdout);
    o->n++;
    run_save_piece(o->save, piece, len);
    fflush(stdout);
    return true;
}

static char *read_text_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) buf[n] = 0;
    return buf;
}

int cmd_run(int argc, char **argv) {
    const char *model = NULL, *prompt = "Once upon a time", *file = NULL;
    long n_predict = 64, threads = 0, ctx = 0, batch = 0;
    const char *chat_system = NULL, *chat_tmpl = NULL;
    bool ids = false, echo = true, kv_f32 = false, chat = false, save = false;
    const char *db_path = NULL, *title = NULL;
    st_session_params sp;
    st_session_params_default(&sp);
    backend_opts_default(&sp);
    st_gen_params gp;
    st_gen_params_default(&gp);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        double d;
        long l;
#define VAL() do { if (!(v = arg_value(argc, argv, &i, "run"))) return 2; } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { help(); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { VAL(); model = v; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { VAL(); prompt = v; }
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) { VAL(); file = v; }
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) { VAL(); if (!arg_int("run", a, v, -1, 1 << 24, &n_predict)) return 2; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { VAL(); if (!arg_int("run", a, v, 1, 512, &threads)) return 2; }
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) { VAL(); if (!arg_int("run", a, v, 1, 1 << 22, &ctx)) return 2; }
        else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) { VAL(); if (!arg_int("run", a, v, 1, 1 << 16, &batch)) return 2; }
        else if (!strcmp(a, "--temp")) { VAL(); if (!arg_float("run", a, v, &d)) return 2; gp.sampling.temp = (float)d; }
        else if (!strcmp(a, "--top-k")) { VAL(); if (!arg_int("run", a, v, 0, 1 << 30, &l)) return 2; gp.sampling.top_k = (int)l; }
        else if (!strcmp(a, "--top-p")) { VAL(); if (!arg_float("run", a, v, &d)) return 2; gp.sampling.top_p = (float)d; }
        else if (!strcmp(a, "--min-p")) { VAL(); if (!arg_float("run", a, v, &d)) return 2; gp.sampling.min_p = (float)d; }
        else if (!strcmp(a, "--repeat-penalty")) { VAL(); if (!arg_float("run", a, v, &d)) return 2; gp.sampling.repeat_penalty = (float)d; }
        else if (!strcmp(a, "--repeat-last-n")) { VAL(); if (!arg_int("run", a, v, 0, 1 << 20, &l)) return 2; gp.sampling.repeat_last_n = (int)l; }
        else if (!strcmp(a, "--seed")) { VAL(); char *e; gp.sampling.seed = strtoull(v, &e, 10); if (*e || e == v) { fprintf(stderr, "strata run: --seed expects a non-negative integer, got '%s'\n", v); return 2; } }
        else if (!strcmp(a, "--ignore-eos")) gp.ignore_eos = true;
        else if (!strcmp(a, "--ids")) ids = true;
        else if (!strcmp(a, "--no-echo")) echo = false;
        else if (!strcmp(a, "--kv-f32")) kv_f32 = true;
        else if (!strcmp(a, "--chat")) chat = true;
        else if (!strcmp(a, "--system")) { VAL(); chat_system = v; }
        else if (!strcmp(a, "--chat-template")) { VAL(); chat_tmpl = v; }
        else if (!strcmp(a, "--save")) save = true;
        else if (!strcmp(a, "--title")) { VAL(); title = v; }
        else if (!strcmp(a, "--db")) { VAL(); db_path = v; }
        else if ((l = store_opt_parse("run", argc, argv, &i, &sp)) != 0) { if (l < 0) return 2; }
        else if ((l = backend_opt_parse("run", argc, argv, &i, &sp)) != 0) { if (l < 0) return 2; }
        else { fprintf(stderr, "strata run: unknown option '%s' (see strata run --help)\n", a); return 2; }
#undef VAL
    }
    if (!model && !(model = default_model_path())) {
        fprintf(stderr, "strata run: no model given (-m FILE) and the bundled model was not found\n");
        return 2;
    }
    char *ptext = NULL;
    if (file) {
        if (!(ptext = read_text_file(file))) { fprintf(stderr, "strata run: cannot read prompt file '%s'\n", file); return 1; }
        prompt = ptext;
    }
    gp.n_predict = (int)n_predict;

    st_error err = {0};
    st_model_params mp;
    st_model_params_default(&mp);
    mp.n_threads = (int)threads;
    st_model *m = NULL;
    st_session *s = NULL;
    int32_t *toks = NULL;
    st_chat_prompt cp = {0};
    int rc = 1;
    if (st_model_open(model, &mp, &m, &err)) { fprintf(stderr, "strata run: %s\n", err.msg); goto out; }
    sp.n_ctx = (int)ctx;
    sp.n_batch = (int)batch;
    sp.kv_f32 = kv_f32;
    if (st_session_new(m, &sp, &s, &err)) { fprintf(stderr, "strata run: %s\n", err.msg); goto out; }
    backend_report(stderr, "run", &sp, s);
    {
        st_stats ss0;
        st_session_stats(s, &ss0);
        store_host_cache_notice(stderr, "run", &sp, ss0.backend, &ss0.store);
    }

    const st_tokenizer *tok = st_model_tokenizer(m);
    const char *user_text = prompt; /* what --save keeps as the user's message */
    if (chat) { /* the prompt becomes a user turn of the model's chat template */
        if (st_chat_model_prompt(m, chat_tmpl, chat_system, prompt, &cp, &err)) { fprintf(stderr, "strata run: %s\n", err.msg); goto out; }
        if (cp.fallback) fprintf(stderr, "strata run: %s\n", cp.notice);
        prompt = cp.text;
        echo = false;
    }
    size_t plen = strlen(prompt);
    int64_t n = st_tok_encode(tok, prompt, plen, chat ? cp.add_special : true, chat, NULL, 0);
    if (n < 0) { fprintf(stderr, "strata run: cannot tokenize the prompt\n"); goto out; }
    toks = malloc((size_t)(n > 0 ? n : 1) * sizeof *toks);
    if (!toks) goto out;
    st_tok_encode(tok, prompt, plen, chat ? cp.add_special : true, chat, toks, n);
    if (n == 0) { fprintf(stderr, "strata run: the prompt is empty and the model adds no BOS token\n"); goto out; }
    /* before echoing anything: the prompt and one reply token must fit */
    if (n > INT32_MAX || (gp.n_predict != 0 && st_session_check_prompt(s, (int)n, &err))) {
        if (n > INT32_MAX) snprintf(err.msg, sizeof err.msg, "the prompt is too long: %lld tokens", (long long)n);
        fprintf(stderr, "strata run: %s (-c sets the context)\n", err.msg);
        goto out;
    }
    if (echo && !ids) { fputs(prompt, stdout); fflush(stdout); }

    g_session = s;
    signal(SIGINT, on_sigint);
    out_state os = {ids, 0, save ? run_save_begin(db_path, title, m, user_text, chat ? chat_system : NULL, (int)n, &gp) : NULL};
    st_status st = st_generate(s, toks, (int)n, &gp, on_token, &os, &err);
    signal(SIGINT, SIG_DFL);
    g_session = NULL;
    printf("\n");
    fflush(stdout);
    st_stats ss;
    st_session_stats(s, &ss);
    /* The end of the context ends the reply, as llama.cpp's CLI without
     * context shift: what was generated stands (exit status 0), and the
     * reason is said. */
    if (st == ST_ERR_CONTEXT && ss.finish == ST_FINISH_CONTEXT) {
        fprintf(stderr, "strata run: %s (-c sets the context)\n", err.msg);
        rc = 0;
    } else if (st && st != ST_ERR_CANCELLED) {
        fprintf(stderr, "strata run: %s\n", err.msg);
    } else {
        rc = 0;
    }
    if (st == ST_ERR_CANCELLED) fprintf(stderr, "strata run: stopped\n");

    double pt = ss.prompt_ns / 1e9, gt = ss.gen_ns / 1e9;
    fprintf(stderr,
            "prompt: %llu tokens, %.2f tok/s | generated: %llu tokens, %.2f tok/s | "
            "first token: %.1f ms | peak memory: %.1f MiB | threads: %d\n",
            (unsigned long long)ss.n_prompt, pt > 0 ? ss.n_prompt / pt : 0.0, (unsigned long long)ss.n_gen,
            gt > 0 ? ss.n_gen / gt : 0.0, ss.ttft_ns / 1e6, ss.peak_rss_bytes / 1048576.0, ss.n_threads);
    store_print_figures(stderr, &ss.store);
    if (ss.gpu_device) {
        double wall = (ss.prompt_ns + ss.gen_ns) / 1e9;
        fprintf(stderr, "gpu: %s | busy %.0f%% of the last second, %.0f%% of the run (%.1f ms) | VRAM %.1f of %.1f MiB\n",
                ss.gpu_device, 100.0 * ss.gpu_busy, wall > 0 ? 100.0 * ss.gpu_busy_ns / 1e9 / wall : 0.0,
                ss.gpu_busy_ns / 1e6, ss.gpu_vram_used / 1048576.0, ss.gpu_vram_budget / 1048576.0);
    }
    run_save_end(os.save, st, s);
out:
    st_chat_prompt_free(&cp);
    free(toks);
    free(ptext);
    st_session_free(s);
    st_model_close(m);
    return rc;
}
