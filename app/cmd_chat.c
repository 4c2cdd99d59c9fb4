/* cmd_chat.c — `strata chat` (and `strata` with no arguments): the terminal
 * app (ui/). Parses the options into ui_options; the app does the rest. */
#include "app.h"
#include "args.h"
#include "backend_opts.h"
#include "store_opts.h"
#include "strata.h"
#include "ui.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void help(void) {
    printf("usage: strata chat [-m model.gguf] [options]\n"
           "       strata                      (the same, on the bundled model)\n"
           "\n"
           "The terminal app: chat with a model, tokens streaming in, with live panels\n"
           "of the engine (speed, prefetch, layer map, CPU, memory). F1 in the app lists\n"
           "every key; Esc stops a reply, F10 quits.\n"
           "\n"
           "  -m, --model FILE        GGUF model (default: the bundled tiny-14m Q8_0)\n"
           "      --last              open the model used last time (default: the bundled one)\n"
           "  -t, --threads N         compute threads (default: physical cores)\n"
           "  -c, --ctx-size N        context length (default: the model's, at most 4096)\n"
           "  -n, --max-reply N       longest reply in tokens (default 256; -1 = until end of sequence)\n"
           "      --system TEXT       system prompt\n"
           "      --temp T            temperature (default 0.8; 0 = greedy)\n"
           "      --top-k K           (default 40; 0 = off)\n"
           "      --top-p P           (default 0.95; 1 = off)\n"
           "      --min-p P           (default 0.05)\n"
           "      --repeat-penalty R  (default 1.0 = off)\n"
           "      --seed S            random seed\n"
           "      --kv-f32            keep the KV cache in F32 (default F16)\n"
           "      --no-panels         start with the panels hidden (F5 toggles them)\n"
           "      --no-mouse          leave the mouse to the terminal (no wheel scrolling)\n"
           "      --db FILE           history database (default: $XDG_DATA_HOME/strata/strata.db)\n"
           "      --no-history        do not store the conversation\n"
           "  -h, --help              this text\n"
           "\n%s\n%s", backend_opts_help, store_opts_help);
}

/* $XDG_STATE_HOME/strata/last-model (or ~/.local/state/...) */
static bool state_path(char *buf, size_t cap, bool mkdirs) {
    const char *x = getenv("XDG_STATE_HOME"), *h = getenv("HOME");
    char dir[4096];
    if (x && *x) snprintf(dir, sizeof dir, "%s/strata", x);
    else if (h && *h) snprintf(dir, sizeof dir, "%s/.local/state/strata", h);
    else return false;
    if (mkdirs) {
        /* create each missing level */
        for (char *p = dir + 1; *p; p++)
            if (*p == '/') { *p = 0; mkdir(dir, 0755); *p = '/'; }
        mkdir(dir, 0755);
    }
    return snprintf(buf, cap, "%s/last-model", dir) < (int)cap;
}

static const char *last_model(void) {
    static char path[4096];
    char sp[4096];
    if (!state_path(sp, sizeof sp, false)) return NULL;
    FILE *f = fopen(sp, "r");
    if (!f) return NULL;
    bool ok = fgets(path, sizeof path, f) != NULL;
    fclose(f);
    if (!ok) return NULL;
    path[strcspn(path, "\n")] = 0;
    return path[0] && access(path, R_OK) == 0 ? path : NULL;
}

static void remember_model(const char *model) {
    char sp[4096], abs[4096];
    if (!realpath(model, abs) || !state_path(sp, sizeof sp, true)) return;
    FILE *f = fopen(sp, "w");
    if (!f) return;
    fprintf(f, "%s\n", abs);
    fclose(f);
}

int cmd_chat(int argc, char **argv) {
    ui_options o;
    ui_options_default(&o);
    backend_opts_default(&o.session);
    const char *model = NULL;
    bool last = false;
    long l;
    double d;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
#define VAL() do { if (!(v = arg_value(argc, argv, &i, "chat"))) return 2; } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { help(); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { VAL(); model = v; }
        else if (!strcmp(a, "--last")) last = true;
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { VAL(); if (!arg_int("chat", a, v, 1, 512, &l)) return 2; o.model.n_threads = (int)l; }
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) { VAL(); if (!arg_int("chat", a, v, 16, 1 << 22, &l)) return 2; o.session.n_ctx = (int)l; }
        else if (!strcmp(a, "-n") || !strcmp(a, "--max-reply")) { VAL(); if (!arg_int("chat", a, v, -1, 1 << 24, &l) || l == 0) { if (l == 0) fprintf(stderr, "strata chat: %s must not be 0\n", a); return 2; } o.max_reply = (int)l; }
        else if (!strcmp(a, "--system")) { VAL(); o.system_prompt = v; }
        else if (!strcmp(a, "--temp")) { VAL(); if (!arg_float("chat", a, v, &d)) return 2; o.sampling.temp = (float)d; }
        else if (!strcmp(a, "--top-k")) { VAL(); if (!arg_int("chat", a, v, 0, 1 << 30, &l)) return 2; o.sampling.top_k = (int)l; }
        else if (!strcmp(a, "--top-p")) { VAL(); if (!arg_float("chat", a, v, &d)) return 2; o.sampling.top_p = (float)d; }
        else if (!strcmp(a, "--min-p")) { VAL(); if (!arg_float("chat", a, v, &d)) return 2; o.sampling.min_p = (float)d; }
        else if (!strcmp(a, "--repeat-penalty")) { VAL(); if (!arg_float("chat", a, v, &d)) return 2; o.sampling.repeat_penalty = (float)d; }
        else if (!strcmp(a, "--seed")) { VAL(); char *e; o.sampling.seed = strtoull(v, &e, 10); if (*e || e == v) { fprintf(stderr, "strata chat: --seed expects a non-negative integer, got '%s'\n", v); return 2; } }
        else if (!strcmp(a, "--kv-f32")) o.session.kv_f32 = true;
        else if (!strcmp(a, "--no-panels")) o.panels = false;
        else if (!strcmp(a, "--no-mouse")) o.mouse = false;
        else if (!strcmp(a, "--db")) { VAL(); o.db_path = v; }
        else if (!strcmp(a, "--no-history")) o.history = false;
        else if ((l = store_opt_parse("chat", argc, argv, &i, &o.session)) != 0) { if (l < 0) return 2; }
        else if ((l = backend_opt_parse("chat", argc, argv, &i, &o.session)) != 0) { if (l < 0) return 2; }
        else { fprintf(stderr, "strata chat: unknown option '%s' (see strata chat --help)\n", a); return 2; }
#undef VAL
    }
    if (!model && last) model = last_model();
    if (!model) model = default_model_path();
    o.model_path = model;   /* NULL: the app starts without one (/model FILE) */
    if (model) remember_model(model);
    return ui_run(&o);
}
