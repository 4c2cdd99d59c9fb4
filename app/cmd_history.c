/* cmd_history.c — `strata history`: browse, search, export and delete the
 * saved conversations (db/history.h). */
#include "app.h"
#include "args.h"
#include "db_opts.h"
#include "history.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD "history"

static void help_main(FILE *f) {
    fprintf(f,
            "usage: strata history <command> [options]\n"
            "\n"
            "The conversations saved by `strata run --save`.\n"
            "\n"
            "  list [--limit N] [--model NAME]   id, title, model, messages, last activity (newest first)\n"
            "  show ID                           the conversation, with each reply's statistics\n"
            "  search WORDS... [--limit N]       full-text search with the matches highlighted\n"
            "  export ID [--format md|json]      Markdown for people, JSON for tools (to stdout)\n"
            "  rm ID                             delete a conversation and its messages\n"
            "\n"
            "Every command takes\n%s"
            "`strata history <command> --help` describes each.\n",
            db_opts_help);
}

static void help_sub(const char *sub) {
    if (!strcmp(sub, "list"))
        printf("usage: strata history list [--limit N] [--model NAME] [--db PATH]\n\n"
               "Lists the saved conversations, most recently active first.\n\n"
               "  -n, --limit N      at most N conversations (default 50; 0 = all)\n"
               "      --model NAME   only conversations whose model name or file contains NAME\n");
    else if (!strcmp(sub, "show"))
        printf("usage: strata history show ID [--db PATH]\n\n"
               "Prints conversation ID: its model, sampling settings and every message; each reply\n"
               "with its statistics (tokens, prompt and decode tok/s, time to first token, and the\n"
               "layer store's ready-when-needed rate when it had a budget). Replies stopped before\n"
               "they completed are marked [stopped].\n");
    else if (!strcmp(sub, "search"))
        printf("usage: strata history search WORDS... [--limit N] [--raw] [--db PATH]\n\n"
               "Full-text search over every message (SQLite FTS5): messages containing all the\n"
               "words, best matches first, with a snippet of each and the matches highlighted.\n\n"
               "  -n, --limit N   at most N results (default 20; 0 = all)\n"
               "      --raw       WORDS are an FTS5 query (\"exact phrase\", a OR b, NOT c, pre*)\n");
    else if (!strcmp(sub, "export"))
        printf("usage: strata history export ID [--format md|json] [--db PATH] > FILE\n\n"
               "Writes conversation ID to stdout as Markdown (default) or as one JSON object\n"
               "(id, title, model, system_prompt, sampling, created, updated, messages[] with\n"
               "role, content, n_tokens, created, stopped and stats).\n");
    else if (!strcmp(sub, "rm"))
        printf("usage: strata history rm ID [--db PATH]\n\n"
               "Deletes conversation ID with its messages (and their search index entries).\n");
}

typedef struct {
    const char *sub;
    const char *db;
    long limit;
    const char *model;
    const char *format;
    bool raw;
    char *pos[64];
    int n_pos;
} hargs;

static int parse(int argc, char **argv, hargs *a) {
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i], *v;
#define VAL() do { if (!(v = arg_value(argc, argv, &i, CMD))) return 2; } while (0)
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) { help_sub(a->sub); return -1; }
        else if (!strcmp(o, "--db")) { VAL(); a->db = v; }
        else if ((!strcmp(o, "-n") || !strcmp(o, "--limit")) && (!strcmp(a->sub, "list") || !strcmp(a->sub, "search"))) {
            VAL();
            if (!arg_int(CMD, o, v, 0, 1L << 30, &a->limit)) return 2;
        }
        else if (!strcmp(o, "--model") && !strcmp(a->sub, "list")) { VAL(); a->model = v; }
        else if (!strcmp(o, "--format") && !strcmp(a->sub, "export")) { VAL(); a->format = v; }
        else if (!strcmp(o, "--raw") && !strcmp(a->sub, "search")) a->raw = true;
        else if (o[0] == '-' && o[1] && strcmp(o, "-")) {
            fprintf(stderr, "strata " CMD " %s: unknown option '%s' (see strata " CMD " %s --help)\n", a->sub, o, a->sub);
            return 2;
        }
        else if (a->n_pos < 64) a->pos[a->n_pos++] = argv[i];
#undef VAL
    }
    return 0;
}

static bool parse_id(const char *sub, const char *s, int64_t *id) {
    char *e;
    errno = 0;
    long long v = strtoll(s, &e, 10);
    if (errno || e == s || *e || v <= 0) {
        fprintf(stderr, "strata " CMD " %s: expected a conversation id (a positive integer), got '%s'\n", sub, s);
        return false;
    }
    *id = v;
    return true;
}

/* Opens an existing database; *rc = 0 with *db NULL when there is none yet. */
static st_db *open_db(const hargs *a, int *rc) {
    char def[4096];
    const char *path = a->db;
    st_error err = {0};
    *rc = 0;
    if (!path) {
        if (st_db_default_path(def, sizeof def, false, &err)) { fprintf(stderr, "strata " CMD ": %s\n", err.msg); *rc = 1; return NULL; }
        path = def;
    }
    struct stat sb;
    if (stat(path, &sb) != 0 && errno == ENOENT) {
        if (!strcmp(a->sub, "list")) printf("no conversations yet (no database at %s)\n", path);
        else { fprintf(stderr, "strata " CMD " %s: no database at %s\n", a->sub, path); *rc = 1; }
        return NULL;
    }
    st_db *db = NULL;
    if (st_db_open(path, 0, &db, &err)) { fprintf(stderr, "strata " CMD ": %s\n", err.msg); *rc = 1; return NULL; }
    return db;
}

/* ---- list ---- */
static bool list_cb(void *user, const st_db_conversation *c) {
    int *n = user;
    if ((*n)++ == 0) printf("%6s  %-16s  %5s  %-24s  %s\n", "ID", "LAST ACTIVITY", "MSGS", "MODEL", "TITLE");
    char t[32];
    st_db_format_time(c->updated_ms, t, sizeof t);
    const char *model = *c->model_name ? c->model_name : c->model_file;
    printf("%6lld  %-16s  %5d  %-24.24s  %.60s\n", (long long)c->id, t, c->n_messages, model, c->title);
    return true;
}

/* ---- show ---- */
static bool show_conv(void *user, const st_db_conversation *c) {
    (void)user;
    char t1[32], t2[32];
    st_db_format_time(c->created_ms, t1, sizeof t1);
    st_db_format_time(c->updated_ms, t2, sizeof t2);
    printf("conversation %lld: %s\n", (long long)c->id, *c->title ? c->title : "(untitled)");
    printf("model: %s%s%s%s\n", c->model_name, *c->model_file ? " (" : "", c->model_file, *c->model_file ? ")" : "");
    printf("created %s · last activity %s · %d messages\n", t1, t2, c->n_messages);
    if (strcmp(c->sampling, "{}")) printf("sampling: %s\n", c->sampling);
    if (*c->system_prompt) printf("system prompt: %s\n", c->system_prompt);
    return true;
}

static bool show_msg(void *user, const st_db_message *m) {
    (void)user;
    char t[32];
    st_db_format_time(m->created_ms, t, sizeof t);
    printf("\n── %s · %s", m->role, t);
    if (m->has_stats) {
        printf(" · %d tokens · prompt %d tok, %.1f tok/s · decode %.1f tok/s · first token %.1f ms", m->n_tokens,
               m->n_prompt, m->prompt_tps, m->decode_tps, m->ttft_ms);
        if (m->ready_rate >= 0) printf(" · layers ready %.1f%%", 100 * m->ready_rate);
        if (m->backend) printf(" · %s", m->backend);
    }
    if (m->stopped) printf(" · [stopped]");
    printf("\n%s\n", m->content);
    return true;
}

/* ---- search ---- */
static bool search_cb(void *user, const st_db_search_hit *h) {
    int *n = user;
    (*n)++;
    char t[32];
    st_db_format_time(h->created_ms, t, sizeof t);
    printf("conversation %lld · %s · %s · %s\n", (long long)h->conversation_id, *h->title ? h->title : "(untitled)",
           h->role, t);
    /* one line: newlines in the snippet become spaces */
    fputs("    ", stdout);
    for (const char *p = h->snippet; *p; p++) putchar(*p == '\n' || *p == '\r' ? ' ' : *p);
    printf("\n\n");
    return true;
}

int cmd_history(int argc, char **argv) {
    /* options may come before the subcommand: strata history --db X list */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--db")) { i++; continue; }
        if (argv[i][0] == '-' && strcmp(argv[i], "-h") && strcmp(argv[i], "--help")) break;
        if (i > 1) { /* rotate the subcommand to argv[1] */
            char *sub = argv[i];
            memmove(&argv[2], &argv[1], (size_t)(i - 1) * sizeof *argv);
            argv[1] = sub;
        }
        break;
    }
    if (argc < 2) { help_main(stderr); return 2; }
    hargs a = {.sub = argv[1], .limit = -1, .format = "md"};
    if (!strcmp(a.sub, "-h") || !strcmp(a.sub, "--help") || !strcmp(a.sub, "help")) { help_main(stdout); return 0; }
    const char *subs[] = {"list", "show", "search", "export", "rm"};
    bool known = false;
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) known |= !strcmp(a.sub, subs[i]);
    if (!known) {
        if (a.sub[0] == '-') fprintf(stderr, "strata " CMD ": which command? (list, show, search, export, rm)\n\n");
        else fprintf(stderr, "strata " CMD ": unknown command '%s'\n\n", a.sub);
        help_main(stderr);
        return 2;
    }
    int prc = parse(argc, argv, &a);
    if (prc < 0) return 0;
    if (prc) return prc;

    int64_t id = 0;
    const bool wants_id = !strcmp(a.sub, "show") || !strcmp(a.sub, "export") || !strcmp(a.sub, "rm");
    if (wants_id) {
        if (a.n_pos != 1) {
            fprintf(stderr, "strata " CMD " %s: expected one conversation id (see strata " CMD " %s --help)\n", a.sub, a.sub);
            return 2;
        }
        if (!parse_id(a.sub, a.pos[0], &id)) return 2;
    } else if (!strcmp(a.sub, "list") && a.n_pos) {
        fprintf(stderr, "strata " CMD " list: unexpected argument '%s'\n", a.pos[0]);
        return 2;
    } else if (!strcmp(a.sub, "search") && !a.n_pos) {
        fprintf(stderr, "strata " CMD " search: what to search for? (strata " CMD " search WORDS...)\n");
        return 2;
    }
    st_db_export_format fmt = ST_DB_EXPORT_MD;
    if (!strcmp(a.sub, "export")) {
        if (!strcmp(a.format, "json")) fmt = ST_DB_EXPORT_JSON;
        else if (strcmp(a.format, "md") && strcmp(a.format, "markdown")) {
            fprintf(stderr, "strata " CMD " export: --format expects md or json, got '%s'\n", a.format);
            return 2;
        }
    }

    int rc;
    st_db *db = open_db(&a, &rc);
    if (!db) return rc;
    st_error err = {0};
    st_status st = ST_OK;
    if (!strcmp(a.sub, "list")) {
        int n = 0;
        st = st_db_conv_list(db, a.limit < 0 ? 50 : (int)a.limit, a.model, list_cb, &n, &err);
        if (!st && n == 0) printf(a.model ? "no conversations with model '%s'\n" : "no conversations yet\n", a.model);
    } else if (!strcmp(a.sub, "show")) {
        st = st_db_conv_get(db, id, show_conv, NULL, &err);
        if (!st) st = st_db_messages(db, id, show_msg, NULL, &err);
    } else if (!strcmp(a.sub, "search")) {
        size_t len = 1;
        for (int i = 0; i < a.n_pos; i++) len += strlen(a.pos[i]) + 1;
        char *q = calloc(1, len);
        if (!q) { st_db_close(db); fprintf(stderr, "strata " CMD ": out of memory\n"); return 1; }
        for (int i = 0; i < a.n_pos; i++) { if (i) strcat(q, " "); strcat(q, a.pos[i]); }
        bool tty = isatty(STDOUT_FILENO);
        int n = 0;
        st = st_db_search(db, q, a.raw, a.limit < 0 ? 20 : (int)a.limit, tty ? "\x1b[1;33m" : "**",
                          tty ? "\x1b[0m" : "**", search_cb, &n, &err);
        if (!st && n == 0) printf("no messages match '%s'\n", q);
        free(q);
    } else if (!strcmp(a.sub, "export")) {
        st = st_db_export(db, id, fmt, stdout, &err);
    } else if (!strcmp(a.sub, "rm")) {
        int n = 0;
        st = st_db_conv_delete(db, id, &n, &err);
        if (!st) printf("deleted conversation %lld (%d messages)\n", (long long)id, n);
    }
    st_db_close(db);
    if (st) {
        fprintf(stderr, "strata " CMD " %s: %s\n", a.sub, err.msg);
        return st == ST_ERR_ARG ? 2 : 1;
    }
    return 0;
}
