/* app.c — the terminal app's main loop: keys, engine events, statistics
 * sampling and drawing. Runs on the main thread; the engine runs on its
 * own (gen.c) and the loop never waits for it: poll() on the terminal and
 * the engine's wake-up pipe, with a timeout for the 10 Hz panel updates. */
#define _XOPEN_SOURCE_EXTENDED 1
#define _GNU_SOURCE
#include "chat_view.h"
#include "dbq.h"
#include "draw.h"
#include "gen.h"
#include "input.h"
#include "layout.h"
#include "panels.h"
#include "screens.h"
#include "ui.h"

#include <curses.h>
#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KEY_PASTE_BEGIN 0x7F01
#define KEY_PASTE_END 0x7F02
#define FRAME_NS 33000000ull     /* redraw at most ~30 times a second */
#define STATS_NS 100000000ull    /* panels: 10 Hz */

typedef enum { SCR_CHAT = 0, SCR_HISTORY, SCR_BENCH, SCR_HELP } screen;

typedef struct app {
    ui_options opt;
    ui_engine *eng;
    ui_chat chat;
    ui_input in;
    ui_panels pan;
    screen scr;
    bool focus_input;
    bool panels;
    /* model */
    bool loaded, loading;
    int load_job;
    st_model_info info;
    int n_ctx;
    char format[64];
    char path[PATH_MAX];
    /* generation */
    st_sampler_params sp;
    int max_reply;
    bool generating;
    int gen_job;
    int reply;               /* index of the reply being generated */
    /* screen state */
    int help_scroll;
    bool quit_ask, quit;
    char flash[256];
    uint64_t flash_until;
    bool paste;              /* inside a bracketed paste */
    char *pbuf;              /* its text not yet inserted (ui_input_insert: one step per batch) */
    size_t plen, pcap;
    bool paste_cr;           /* the last pasted character was a CR (a LF after it is dropped) */
    bool dirty;
    /* keys: wgetch's bytes are decoded here (ui_utf8_feed) rather than by
     * wget_wch, which swallows the input after an invalid byte */
    ui_utf8_dec dec;
    struct { int type; wint_t ch; } q[4];   /* keys read ahead */
    int nq;
    int k_cleft, k_cright;
    int input_top;
    /* the input's wrapped lines, for in.gen at width wrap_w (a 1 MB paste
     * is not wrapped again on every frame) */
    ui_line *wrap;
    int n_wrap, wrap_cap, wrap_w;
    unsigned wrap_gen;
    uint64_t next_stats;     /* when the panels sample next */
    /* history database */
    ui_db *db;
    int db_open_req;
    ui_history hist;
    ui_bench bench;
    int64_t conv_id;         /* the stored conversation the chat continues (0: a new one) */
    int conv_local;          /* the app's key for the chat's conversation */
    bool db_warned;
} app;

static volatile sig_atomic_t g_signal, g_winch;
static void on_signal(int sig) { g_signal = sig; }
static void on_winch(int sig) { (void)sig; g_winch = 1; }

/* The terminal's new size, taken here rather than in ncurses' own SIGWINCH
 * handler: that one can interrupt the read of an escape sequence and lose
 * the key (an Esc pressed while the window is resized). */
static void apply_resize(app *a) {
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) resizeterm(ws.ws_row, ws.ws_col);
    clearok(curscr, TRUE);
    a->dirty = true;
}

static void say(app *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(app *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->flash, sizeof a->flash, fmt, ap);
    va_end(ap);
    a->flash_until = st_now_ns() + 4000000000ull;
    a->dirty = true;
}

static void note(app *a, ui_msg_kind k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(app *a, ui_msg_kind k, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ui_chat_add(&a->chat, k, buf);
    ui_chat_scroll_end(&a->chat);
    a->dirty = true;
}

/* ---- actions ---------------------------------------------------------------- */

static void load_model(app *a, const char *path) {
    if (a->generating) { say(a, "stop the reply first (Esc)"); return; }
    a->loaded = false;
    a->loading = true;
    a->conv_id = 0;          /* replies of another model: another conversation */
    a->conv_local++;
    snprintf(a->path, sizeof a->path, "%s", path);
    a->load_job = ui_engine_load(a->eng, path, &a->opt.model, &a->opt.session);
    if (a->load_job < 0) { a->loading = false; note(a, UI_MSG_ERROR, "out of memory"); }
    a->dirty = true;
}

static void send_message(app *a, const char *text) {
    if (!a->loaded) {
        note(a, UI_MSG_ERROR, a->loading ? "the model is still loading" : "no model loaded: /model FILE opens one");
        return;
    }
    ui_chat_add(&a->chat, UI_MSG_USER, text);
    ui_turn *t = NULL;
    int n = ui_chat_turns(&a->chat, &t);
    ui_msg *r = ui_chat_add(&a->chat, UI_MSG_ASSISTANT, NULL);
    if (!t || !r) { free(t); note(a, UI_MSG_ERROR, "out of memory"); return; }
    r->streaming = true;
    a->reply = a->chat.n - 1;
    st_gen_params gp;
    st_gen_params_default(&gp);
    gp.sampling = a->sp;
    gp.n_predict = a->max_reply > 0 ? a->max_reply : -1;
    a->gen_job = ui_engine_generate(a->eng, t, n, &gp);
    free(t);
    if (a->gen_job < 0) {
        r->streaming = false;
        note(a, UI_MSG_ERROR, "out of memory");
        return;
    }
    a->generating = true;
    ui_chat_scroll_end(&a->chat);
    a->dirty = true;
}

static void stop_generation(app *a) {
    if (!a->generating) return;
    ui_engine_cancel(a->eng);
    say(a, "stopping…");
}

static bool parse_num(const char *s, double *out) {
    char *e;
    if (!s || !*s) return false;
    *out = strtod(s, &e);
    while (*e == ' ') e++;
    return *e == 0;
}

static void command(app *a, const char *line) {
    char cmd[32];
    const char *arg = line + 1;
    int k = 0;
    while (*arg && *arg != ' ' && k < (int)sizeof cmd - 1) cmd[k++] = *arg++;
    cmd[k] = 0;
    while (*arg == ' ') arg++;
    double v;
    if (!strcmp(cmd, "help") || !strcmp(cmd, "?")) { a->scr = SCR_HELP; a->dirty = true; }
    else if (!strcmp(cmd, "system")) {
        if (a->generating) { say(a, "stop the reply first (Esc)"); return; }
        ui_chat_set_system(&a->chat, arg);
        note(a, UI_MSG_NOTE, *arg ? "system prompt set" : "system prompt removed");
    } else if (!strcmp(cmd, "temp")) {
        if (!parse_num(arg, &v) || v < 0 || v > 100) { say(a, "/temp expects a number >= 0, e.g. /temp 0.7"); return; }
        a->sp.temp = (float)v;
        say(a, "temperature %.2f%s", v, v == 0 ? " (greedy)" : "");
    } else if (!strcmp(cmd, "top-p")) {
        if (!parse_num(arg, &v) || v <= 0 || v > 1) { say(a, "/top-p expects a number in (0, 1]"); return; }
        a->sp.top_p = (float)v;
        say(a, "top-p %.3f", v);
    } else if (!strcmp(cmd, "top-k")) {
        if (!parse_num(arg, &v) || v < 0 || v != (int)v) { say(a, "/top-k expects an integer >= 0 (0 = off)"); return; }
        a->sp.top_k = (int)v;
        say(a, "top-k %d", (int)v);
    } else if (!strcmp(cmd, "seed")) {
        char *e;
        unsigned long long s = strtoull(arg, &e, 10);
        if (!*arg || *e) { say(a, "/seed expects a non-negative integer"); return; }
        a->sp.seed = s;
        say(a, "seed %llu", s);
    } else if (!strcmp(cmd, "max")) {
        if (!parse_num(arg, &v) || v != (int)v || v < -1 || v == 0) { say(a, "/max expects a number of tokens (-1: no limit)"); return; }
        a->max_reply = (int)v;
        say(a, v < 0 ? "replies until the end of sequence" : "replies of at most %d tokens", (int)v);
    } else if (!strcmp(cmd, "clear") || !strcmp(cmd, "new")) {
        if (a->generating) { say(a, "stop the reply first (Esc)"); return; }
        /* the system prompt stays */
        char *sys = (a->chat.n && a->chat.msgs[0].kind == UI_MSG_SYSTEM) ? strdup(a->chat.msgs[0].text) : NULL;
        ui_chat_clear(&a->chat);
        a->conv_id = 0;
        a->conv_local++;
        if (sys) ui_chat_set_system(&a->chat, sys);
        free(sys);
        say(a, !strcmp(cmd, "new") ? "new conversation" : "conversation cleared");
    } else if (!strcmp(cmd, "save")) {
        char path[PATH_MAX];
        if (*arg) snprintf(path, sizeof path, "%s", arg);
        else {
            time_t t = time(NULL);
            struct tm tm;
            localtime_r(&t, &tm);
            strftime(path, sizeof path, "strata-chat-%Y%m%d-%H%M%S.md", &tm);
        }
        if (ui_chat_save_markdown(&a->chat, path, a->loaded ? a->info.name : NULL)) note(a, UI_MSG_NOTE, "saved to %s", path);
        else note(a, UI_MSG_ERROR, "cannot write %s: %s", path, strerror(errno));
    } else if (!strcmp(cmd, "model")) {
        if (!*arg) { say(a, "/model FILE: the GGUF file to open"); return; }
        load_model(a, arg);
    } else {
        say(a, "unknown command /%s (F1 lists them)", cmd);
    }
}

static void submit(app *a) {
    char *t = ui_input_take(&a->in);
    if (!t) return;
    /* trim */
    char *s = t;
    while (*s == ' ' || *s == '\n' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t')) s[--n] = 0;
    if (*s == '/' && !strchr(s, '\n')) command(a, s);
    else if (*s) {
        if (a->generating) {
            ui_input_set(&a->in, s);
            say(a, "a reply is being generated: Esc stops it");
        } else send_message(a, s);
    }
    free(t);
    a->dirty = true;
}

static void request_quit(app *a) {
    if (a->generating && !a->quit_ask) {
        a->quit_ask = true;
        a->dirty = true;
        return;
    }
    a->quit = true;
}

/* ---- engine events ---------------------------------------------------------- */

/* A message longer than the whole context (a huge paste): nothing reached
 * the model, so it leaves the conversation (and is not stored) and goes
 * back to the input to be cut down. */
static void reject_message(app *a, const ui_event *ev) {
    bool back = false;
    if (a->reply >= 1 && a->reply < a->chat.n && a->chat.msgs[a->reply - 1].kind == UI_MSG_USER) {
        if (a->in.len == 0) {
            ui_input_set(&a->in, a->chat.msgs[a->reply - 1].text);
            back = true;
        }
        ui_chat_remove(&a->chat, a->reply);
        ui_chat_remove(&a->chat, a->reply - 1);
    }
    a->reply = a->chat.n;
    note(a, UI_MSG_ERROR, "message not sent: it needs %lld tokens and the context holds %d. %s", (long long)ev->n_tokens,
         ev->n_ctx_used, back ? "It is back in the input to shorten (Ctrl-C clears it)." : "Up brings it back.");
}

static void on_event(app *a, ui_event *ev) {
    switch (ev->type) {
    case UI_EV_LOADED:
        if (ev->job != a->load_job) break;
        a->loaded = true;
        a->loading = false;
        a->next_stats = 0;   /* the panels show the new session at once */
        a->info = ev->info;
        a->n_ctx = ev->n_ctx;
        snprintf(a->format, sizeof a->format, "%s", ev->format);
        snprintf(a->chat.assistant_name, sizeof a->chat.assistant_name, "%s", ev->info.name);
        note(a, UI_MSG_NOTE, "%s: %s, %d layers, %.1fM parameters, context %d, prompt format: %s, backend: %s", ev->info.name,
             ev->info.ftype, ev->info.n_layer, ev->info.n_params / 1e6, ev->n_ctx, ev->format, ev->backend);
        break;
    case UI_EV_LOAD_FAILED:
        if (ev->job != a->load_job) break;
        a->loading = false;
        note(a, UI_MSG_ERROR, "cannot open the model: %s", ev->msg);
        note(a, UI_MSG_NOTE, "/model FILE opens another one");
        break;
    case UI_EV_TEXT:
        if (ev->job != a->gen_job || a->reply >= a->chat.n) break;
        ui_msg_append(&a->chat.msgs[a->reply], ev->text, ev->len);
        a->dirty = true;
        break;
    case UI_EV_DONE: {
        if (ev->job != a->gen_job) break;
        a->generating = false;
        if (ev->too_long) {
            reject_message(a, ev);
            if (a->quit_ask) a->quit = true;
            a->dirty = true;
            break;
        }
        if (a->reply < a->chat.n) {
            ui_msg *m = &a->chat.msgs[a->reply];
            m->streaming = false;
            char tps[32] = "";
            if (ev->gen_ns && ev->n_gen) snprintf(tps, sizeof tps, " · %.1f tok/s", ev->n_gen / (ev->gen_ns / 1e9));
            m->stopped = ev->stopped;
            snprintf(m->meta, sizeof m->meta, "%llu tok%s · prompt %d (+%d cached)",
                     (unsigned long long)ev->n_gen, tps, ev->n_new, ev->n_reused);
            if (ev->status && ev->status != ST_ERR_CONTEXT && m->len == 0 && !ev->stopped) {
                /* nothing came: drop the empty reply, keep the error */
                m->meta[0] = 0;
            }
        }
        if (a->db && a->reply >= 1 && a->reply < a->chat.n && a->chat.msgs[a->reply - 1].kind == UI_MSG_USER) {
            ui_msg *m = &a->chat.msgs[a->reply];
            const char *sys = a->chat.n && a->chat.msgs[0].kind == UI_MSG_SYSTEM ? a->chat.msgs[0].text : NULL;
            const char *rp = m->text;
            while (*rp == ' ') rp++;
            ui_db_turn t = {.conv_id = a->conv_id, .local = a->conv_local, .model_name = a->info.name, .model_file = a->path,
                            .system_prompt = sys, .sampling = &a->sp, .max_reply = a->max_reply,
                            .user = a->chat.msgs[a->reply - 1].text, .reply = rp, .stopped = ev->stopped || ev->status,
                            .stats = &ev->stats};
            if (ui_db_save_turn(a->db, &t) < 0) note(a, UI_MSG_ERROR, "out of memory");
        }
        if (ev->n_dropped) note(a, UI_MSG_NOTE, "the %d oldest messages no longer fit the context and were left out of the prompt", ev->n_dropped);
        if (ev->status == ST_ERR_CONTEXT)
            note(a, UI_MSG_ERROR, "%s%s (/clear starts over)", strncmp(ev->msg, "context full", 12) ? "context full: " : "",
                 ev->msg);
        else if (ev->status) note(a, UI_MSG_ERROR, "%s", ev->msg);
        if (ev->stopped) say(a, "stopped");
        if (a->quit_ask) a->quit = true;
        a->dirty = true;
        break;
    }
    }
}

/* ---- database events ---------------------------------------------------------- */

static void refresh_history(app *a) {
    if (!a->db || !a->hist.available) return;
    if (a->hist.search.len) ui_db_search(a->db, a->hist.search.buf);
    else ui_db_list(a->db, 0);
}

static void refresh_bench(app *a) {
    if (!a->db || !a->bench.available) return;
    ui_db_bench_runs(a->db, a->bench.filter.buf, ui_bench_backend(&a->bench));
}

static void continue_conversation(app *a, ui_db_event *ev) {
    if (a->generating) { say(a, "stop the reply first (Esc)"); return; }
    ui_chat_clear(&a->chat);
    if (ev->text) ui_chat_set_system(&a->chat, ev->text);
    for (int i = 0; i < ev->n; i++) {
        const ui_db_msg *m = &ev->msgs[i];
        ui_msg_kind k = !strcmp(m->role, "user") ? UI_MSG_USER : !strcmp(m->role, "assistant") ? UI_MSG_ASSISTANT : UI_MSG_SYSTEM;
        if (k == UI_MSG_SYSTEM && ev->text) continue;   /* already the conversation's system prompt */
        ui_msg *x = ui_chat_add(&a->chat, k, m->content);
        if (x && k == UI_MSG_ASSISTANT) {
            x->stopped = m->stopped;
            if (m->decode_tps > 0) snprintf(x->meta, sizeof x->meta, "%.1f tok/s", m->decode_tps);
        }
    }
    a->conv_id = ev->conv_id;
    a->conv_local++;
    note(a, UI_MSG_NOTE, "continuing conversation %lld: the next message reads it into the context", (long long)ev->conv_id);
    a->scr = SCR_CHAT;
    a->focus_input = true;
}

static void on_db_event(app *a, ui_db_event *ev) {
    switch (ev->type) {
    case UI_DB_OPENED:
        a->hist.available = a->bench.available = true;
        refresh_history(a);
        refresh_bench(a);
        break;
    case UI_DB_FAILED:
        if (ev->req == a->db_open_req || ev->closed) {
            /* no database (or a damaged one, closed): the chat goes on, nothing is stored */
            a->hist.available = a->bench.available = false;
            snprintf(a->hist.err, sizeof a->hist.err, "%s", ev->msg);
            snprintf(a->bench.err, sizeof a->bench.err, "%s", ev->msg);
            if (!a->db_warned) note(a, UI_MSG_ERROR, "history not stored: %s", ev->msg);
            a->db_warned = true;
        } else say(a, "history: %s", ev->msg);
        break;
    case UI_DB_CONVS:
    case UI_DB_HITS:
        ui_history_on_event(&a->hist, ev);
        break;
    case UI_DB_MESSAGES:
        if (ev->continue_it) continue_conversation(a, ev);
        else ui_history_on_event(&a->hist, ev);
        break;
    case UI_DB_SAVED:
        if (ev->local == a->conv_local) a->conv_id = ev->conv_id;
        refresh_history(a);
        break;
    case UI_DB_DELETED:
        ui_history_on_event(&a->hist, ev);
        if (a->conv_id == ev->conv_id) { a->conv_id = 0; a->conv_local++; }
        say(a, "deleted the conversation and its %d messages", ev->n);
        refresh_history(a);
        break;
    case UI_DB_EXPORTED:
        say(a, "exported to %s", ev->msg);
        break;
    case UI_DB_BENCH:
        ui_bench_on_event(&a->bench, ev);
        break;
    }
    a->dirty = true;
}

static void do_action(app *a, ui_action x) {
    char path[64];
    switch (x.kind) {
    case UI_ACT_LIST: if (a->db) ui_db_list(a->db, 0); break;
    case UI_ACT_SEARCH: if (a->db) ui_db_search(a->db, x.text); break;
    case UI_ACT_OPEN: if (a->db) ui_db_open_conv(a->db, x.id, false); break;
    case UI_ACT_CONTINUE: if (a->db) ui_db_open_conv(a->db, x.id, true); break;
    case UI_ACT_DELETE: if (a->db) ui_db_delete(a->db, x.id); break;
    case UI_ACT_EXPORT:
        snprintf(path, sizeof path, "strata-conversation-%lld.md", (long long)x.id);
        if (a->db) ui_db_export(a->db, x.id, path);
        break;
    case UI_ACT_BENCH: refresh_bench(a); break;
    case UI_ACT_SAY: say(a, "%s", x.text); break;
    default: break;
    }
    a->dirty = true;
}

/* ---- keys ------------------------------------------------------------------- */

static void queue_key(app *a, bool front, int type, wint_t ch) {
    if (a->nq == (int)(sizeof a->q / sizeof a->q[0])) return;   /* (never more than 3) */
    if (front) memmove(a->q + 1, a->q, sizeof a->q[0] * (size_t)a->nq);
    int i = front ? 0 : a->nq;
    a->q[i].type = type;
    a->q[i].ch = ch;
    a->nq++;
}

/* reads a key: OK (a character in *ch), KEY_CODE_YES (a key code) or ERR.
 * Bytes are decoded as UTF-8 with ui_utf8_feed's rule: each broken
 * sequence or stray byte gives one U+FFFD, and the key after it is kept.
 * (wgetch, not wget_wch: given an invalid byte, wget_wch goes on reading
 * into its buffer until it is full and returns ERR, losing all of it.) */
static int read_key(app *a, wint_t *ch) {
    if (a->nq) {
        int t = a->q[0].type;
        *ch = a->q[0].ch;
        memmove(a->q, a->q + 1, sizeof a->q[0] * (size_t)--a->nq);
        return t;
    }
    for (;;) {
        int c = wgetch(stdscr);
        if (c == ERR) return ERR;
        uint32_t cps[2];
        if (c >= KEY_MIN) {
            /* a key the terminal sent (an escape sequence) cuts a sequence
             * short; KEY_RESIZE does not: resizeterm() puts it at the front
             * of ncurses' queue, possibly between the bytes of a character
             * (a resize during a paste turned an emoji into 3 U+FFFD) */
            if (c != KEY_RESIZE && ui_utf8_flush(&a->dec, cps)) {
                queue_key(a, false, KEY_CODE_YES, (wint_t)c);
                *ch = cps[0];
                return OK;
            }
            *ch = (wint_t)c;
            return KEY_CODE_YES;
        }
        int m = ui_utf8_feed(&a->dec, (unsigned char)c, cps);
        if (m == 0) continue;
        if (m == 2) queue_key(a, false, OK, cps[1]);
        *ch = cps[0];
        return OK;
    }
}

static void unread_key(app *a, int type, wint_t ch) { queue_key(a, true, type, ch); }

/* pasted text: "\r\n" and '\r' become '\n' here (the pair may be split
 * between two batches); the rest of the rule is ui_input_insert's */
static void paste_add(app *a, uint32_t c) {
    if (c == '\n' && a->paste_cr) { a->paste_cr = false; return; }
    a->paste_cr = c == '\r';
    if (c == '\r') c = '\n';
    if (a->plen + 4 > a->pcap) {
        size_t cap = a->pcap ? a->pcap * 2 : 4096;
        char *p = realloc(a->pbuf, cap);
        if (!p) return;
        a->pbuf = p;
        a->pcap = cap;
    }
    a->plen += (size_t)ui_utf8_encode(c, a->pbuf + a->plen);
}

static void paste_flush(app *a) {
    if (!a->plen) return;
    ui_input_insert(&a->in, a->pbuf, (int)a->plen);
    a->plen = 0;
    a->dirty = true;
    if (a->in.overflow) {
        a->in.overflow = false;
        say(a, "the input holds at most %d MiB: the rest of the paste was dropped", UI_INPUT_MAX >> 20);
    }
}

static void switch_screen(app *a, screen s) {
    if (s == SCR_HISTORY && a->scr != SCR_HISTORY) refresh_history(a);
    if (s == SCR_BENCH && a->scr != SCR_BENCH) refresh_bench(a);
    a->scr = s;
    if (s == SCR_CHAT) a->focus_input = true;
    a->dirty = true;
}

static bool edit(app *a, ui_key k, uint32_t cp) {
    ui_ed_result r = ui_input_key(&a->in, k, cp);
    if (r == UI_ED_SUBMIT) submit(a);
    if (r != UI_ED_IGNORED) a->dirty = true;
    return r != UI_ED_IGNORED;
}

static void scroll_view(app *a, int lines) {
    if (a->scr == SCR_HELP) a->help_scroll -= lines;
    else if (a->scr == SCR_CHAT) ui_chat_scroll(&a->chat, lines);
    a->dirty = true;
}

static int page(app *a) { return a->chat.last_h > 2 ? a->chat.last_h - 2 : 1; }

static void on_code(app *a, int k) {
    bool in_editor = a->scr == SCR_CHAT && a->focus_input;
    if (k == KEY_RESIZE) {
        /* the terminal may have dropped what was outside the smaller size
         * (tmux does): repaint everything */
        clearok(curscr, TRUE);
        a->dirty = true;
        return;
    }
    if (k == KEY_PASTE_BEGIN) { a->paste = true; a->paste_cr = false; return; }
    if (k == KEY_PASTE_END) { paste_flush(a); a->paste = false; a->paste_cr = false; return; }
    if (a->paste) {
        /* inside a paste only text counts: a key code here is an escape
         * sequence in the pasted text (Enter aside) */
        if (k == KEY_ENTER && in_editor) paste_add(a, '\n');
        return;
    }
    if (k == KEY_F(1)) { switch_screen(a, SCR_HELP); return; }
    if (k == KEY_F(2)) { switch_screen(a, SCR_CHAT); return; }
    if (k == KEY_F(3)) { switch_screen(a, SCR_HISTORY); return; }
    if (k == KEY_F(4)) { switch_screen(a, SCR_BENCH); return; }
    if (k == KEY_F(5)) { a->panels = !a->panels; a->dirty = true; return; }
    if (k == KEY_F(10)) { request_quit(a); return; }
    if (k == KEY_MOUSE) {
        MEVENT me;
        if (getmouse(&me) == OK) {
            if (me.bstate & BUTTON4_PRESSED) scroll_view(a, 3);
#ifdef BUTTON5_PRESSED
            else if (me.bstate & BUTTON5_PRESSED) scroll_view(a, -3);
#endif
        }
        return;
    }
    if (a->scr == SCR_HISTORY || a->scr == SCR_BENCH) {
        int pg = LINES > 10 ? LINES - 10 : 1;
        ui_action x = a->scr == SCR_HISTORY ? ui_history_key(&a->hist, KEY_CODE_YES, k, pg) : ui_bench_key(&a->bench, KEY_CODE_YES, k, pg);
        if (x.kind != UI_ACT_NOT_HANDLED) { do_action(a, x); return; }
    }
    if (k == KEY_PPAGE) { scroll_view(a, page(a)); return; }
    if (k == KEY_NPAGE) { scroll_view(a, -page(a)); return; }
    if (in_editor) {
        ui_key e = UI_KEY_NONE;
        switch (k) {
        case KEY_LEFT: e = UI_KEY_LEFT; break;
        case KEY_RIGHT: e = UI_KEY_RIGHT; break;
        case KEY_UP: e = UI_KEY_UP; break;
        case KEY_DOWN: e = UI_KEY_DOWN; break;
        case KEY_HOME: e = UI_KEY_HOME; break;
        case KEY_END: e = UI_KEY_END; break;
        case KEY_BACKSPACE: e = UI_KEY_BACKSPACE; break;
        case KEY_DC: e = UI_KEY_DELETE; break;
        case KEY_ENTER: e = a->paste ? UI_KEY_NEWLINE : UI_KEY_ENTER; break;
        default:
            if (k == a->k_cleft && k > 0) e = UI_KEY_WORD_LEFT;
            else if (k == a->k_cright && k > 0) e = UI_KEY_WORD_RIGHT;
        }
        if (e != UI_KEY_NONE) edit(a, e, 0);
        return;
    }
    switch (k) {
    case KEY_UP: scroll_view(a, 1); break;
    case KEY_DOWN: scroll_view(a, -1); break;
    case KEY_HOME: if (a->scr == SCR_CHAT) ui_chat_scroll_home(&a->chat); else a->help_scroll = 0; a->dirty = true; break;
    case KEY_END: if (a->scr == SCR_CHAT) ui_chat_scroll_end(&a->chat); else a->help_scroll = 1 << 20; a->dirty = true; break;
    default: break;
    }
}

static void on_char(app *a, wint_t c) {
    bool in_editor = a->scr == SCR_CHAT && a->focus_input;
    if (a->quit_ask) {
        if (c == 'y' || c == 'Y') { stop_generation(a); a->quit = true; }
        else { a->quit_ask = false; a->dirty = true; }
        return;
    }
    if (a->paste) {
        /* pasted text goes in as it is (line breaks too), in one step per
         * batch of keys (paste_flush); elsewhere only into a search or
         * filter box being typed in, and never as commands (a "d" then "y"
         * in the text must not delete a conversation) */
        if (in_editor) paste_add(a, (uint32_t)c);
        else if (c >= 0x20 && c != 0x7F && ((a->scr == SCR_HISTORY && a->hist.searching && !a->hist.viewing) ||
                                            (a->scr == SCR_BENCH && a->bench.editing))) {
            int pg = LINES > 10 ? LINES - 10 : 1;
            ui_action x = a->scr == SCR_HISTORY ? ui_history_key(&a->hist, OK, (int)c, pg) : ui_bench_key(&a->bench, OK, (int)c, pg);
            if (x.kind != UI_ACT_NOT_HANDLED) do_action(a, x);
        }
        return;
    }
    if ((a->scr == SCR_HISTORY || a->scr == SCR_BENCH) && c != 3 && c != 17 && c != 12) {
        int pg = LINES > 10 ? LINES - 10 : 1;
        ui_action x = a->scr == SCR_HISTORY ? ui_history_key(&a->hist, OK, (int)c, pg) : ui_bench_key(&a->bench, OK, (int)c, pg);
        if (x.kind != UI_ACT_NOT_HANDLED) { do_action(a, x); return; }
        if (c == 27) {   /* Esc on a list: back to the chat (or stop a reply) */
            if (a->generating) stop_generation(a);
            else switch_screen(a, SCR_CHAT);
            return;
        }
    }
    switch (c) {
    case 3:   /* Ctrl-C */
        if (a->generating) stop_generation(a);
        else if (in_editor && a->in.len) { ui_input_set(&a->in, ""); a->dirty = true; }
        else say(a, "Ctrl-C stops a reply; F10 or Ctrl-Q quits");
        return;
    case 17:  /* Ctrl-Q */
        request_quit(a);
        return;
    case 27: { /* Esc, or Alt-<key> */
        wint_t n;
        int t = read_key(a, &n);
        if (t == OK && (n == '\r' || n == '\n')) { if (in_editor) edit(a, UI_KEY_NEWLINE, 0); return; }
        if (t == OK && (n == 'b' || n == 'B')) { if (in_editor) edit(a, UI_KEY_WORD_LEFT, 0); return; }
        if (t == OK && (n == 'f' || n == 'F')) { if (in_editor) edit(a, UI_KEY_WORD_RIGHT, 0); return; }
        if (t != ERR) unread_key(a, t, n);
        if (a->generating) stop_generation(a);
        else if (a->scr != SCR_CHAT) switch_screen(a, SCR_CHAT);
        return;
    }
    case 12:  /* Ctrl-L: redraw everything */
        clearok(curscr, TRUE);
        a->dirty = true;
        return;
    case '\t':
        if (a->scr == SCR_CHAT) { a->focus_input = !a->focus_input; a->dirty = true; }
        return;
    default: break;
    }
    if (!in_editor) {
        switch (c) {
        case '1': switch_screen(a, SCR_CHAT); return;
        case '2': switch_screen(a, SCR_HISTORY); return;
        case '3': switch_screen(a, SCR_BENCH); return;
        case '?': switch_screen(a, SCR_HELP); return;
        case 'p': case 'P': a->panels = !a->panels; a->dirty = true; return;
        case 'q': if (a->scr != SCR_CHAT) switch_screen(a, SCR_CHAT); return;
        case '\r': case '\n': case 'i':
            if (a->scr == SCR_CHAT) { a->focus_input = true; a->dirty = true; }
            return;
        default: return;
        }
    }
    switch (c) {
    case '\r': edit(a, UI_KEY_ENTER, 0); return;   /* (inside a bracketed paste: a line break, above) */
    case '\n': edit(a, UI_KEY_NEWLINE, 0); return;
    case 1: edit(a, UI_KEY_HOME, 0); return;
    case 5: edit(a, UI_KEY_END, 0); return;
    case 2: edit(a, UI_KEY_LEFT, 0); return;
    case 6: edit(a, UI_KEY_RIGHT, 0); return;
    case 4: edit(a, UI_KEY_DELETE, 0); return;
    case 21: edit(a, UI_KEY_KILL_START, 0); return;
    case 11: edit(a, UI_KEY_KILL_END, 0); return;
    case 23: edit(a, UI_KEY_KILL_WORD, 0); return;
    case 8: case 127: edit(a, UI_KEY_BACKSPACE, 0); return;
    default:
        if (c >= 0x20) edit(a, UI_KEY_CHAR, (uint32_t)c);
    }
}

/* ---- drawing ---------------------------------------------------------------- */

static void draw_bar(app *a, ui_rect r) {
    if (r.h <= 0) return;
    ui_fill(r, UI_C_BAR);
    int x = r.x, e = r.x + r.w;
    x += ui_text(r.y, x, e - x, " strata ", 8, UI_C_BAR);
    static const char *names[] = {"1 Chat", "2 History", "3 Bench", "? Help"};
    for (int i = 0; i < 4; i++) {
        char b[32];
        int n = snprintf(b, sizeof b, " %s ", names[i]);
        x += ui_text(r.y, x, e - x, b, n, (int)a->scr == i ? UI_C_TAB_ACTIVE : UI_C_TAB);
    }
    char st[128];
    ui_color c = UI_C_BAR;
    if (a->loading) snprintf(st, sizeof st, "loading model… ");
    else if (a->generating) {
        const st_stats *s = &a->pan.st;
        if (s->phase == ST_PHASE_PREFILL) snprintf(st, sizeof st, "● reading the prompt… ");
        else if (s->gen_ns && s->n_gen) snprintf(st, sizeof st, "● generating %.1f tok/s ", s->n_gen / (s->gen_ns / 1e9));
        else snprintf(st, sizeof st, "● generating ");
        c = UI_C_BUSY;
    } else if (a->loaded) snprintf(st, sizeof st, "ready ");
    else snprintf(st, sizeof st, "no model ");
    int w = ui_str_width(st, (int)strlen(st));
    if (x + w + 1 <= e) ui_text(r.y, e - w, w, st, (int)strlen(st), c);
}

static void draw_status(app *a, ui_rect r) {
    if (r.h <= 0) return;
    ui_fill(r, UI_C_STATUS);
    int x = r.x + 1, e = r.x + r.w;
    if (a->quit_ask) {
        const char *q = "A reply is being generated. Stop it and quit? (y/n)";
        ui_text(r.y, x, e - x, q, (int)strlen(q), UI_C_KEY);
        return;
    }
    char left[256];
    const st_stats *s = &a->pan.st;
    if (a->loaded) {
        int n_past = a->pan.have ? s->n_past : 0;
        snprintf(left, sizeof left, "%s │ %s %dt │ ctx %d/%d │ T %.2f", a->info.name, a->pan.have && s->backend ? s->backend : "cpu",
                 a->pan.have ? s->n_threads : 0, n_past, a->n_ctx, a->sp.temp);
        /* narrow: the model and the context only */
        if (ui_str_width(left, (int)strlen(left)) + 24 > r.w) snprintf(left, sizeof left, "%s │ ctx %d/%d", a->info.name, n_past, a->n_ctx);
    } else snprintf(left, sizeof left, "%s", a->loading ? "loading…" : "no model (/model FILE)");
    x += ui_text(r.y, x, e - x, left, (int)strlen(left), UI_C_STATUS);
    const char *hint;
    ui_color hc = UI_C_KEY;
    if (a->flash[0] && st_now_ns() < a->flash_until) hint = a->flash;
    else if (a->generating) hint = "Esc stop · F10 quit";
    else if (a->scr != SCR_CHAT) hint = "F2 chat · F1 help · F10 quit";
    else if (a->focus_input) hint = "Enter send · Tab scroll · F1 help · F10 quit";
    else hint = "PgUp/PgDn Home/End · Tab type · F1 help · F10 quit";
    int hw = ui_str_width(hint, (int)strlen(hint));
    if (x + 3 + hw > e && hint != a->flash) {
        hint = a->generating ? "Esc stop" : "F1 help · F10 quit";   /* the short form */
        hw = ui_str_width(hint, (int)strlen(hint));
    }
    if (x + 3 + hw <= e) ui_text(r.y, e - hw - 1, hw, hint, (int)strlen(hint), hc);
    else if (x + 3 < e) ui_text(r.y, x + 2, e - x - 3, hint, (int)strlen(hint), hc);
}

static int input_wrap_width(int w) { return w - 2 > 1 ? w - 2 : 1; }

/* the input's lines at wrap width ww (cached); NULL when out of memory */
static const ui_line *input_wrap(app *a, int ww, int *n) {
    if (!a->wrap || a->wrap_w != ww || a->wrap_gen != a->in.gen) {
        int k = ui_wrap(a->in.buf, a->in.len, ww, NULL, 0);
        if (k > a->wrap_cap) {
            ui_line *p = realloc(a->wrap, sizeof *p * (size_t)k);
            if (!p) { *n = 0; return NULL; }
            a->wrap = p;
            a->wrap_cap = k;
        }
        if (!a->wrap) {
            a->wrap = malloc(sizeof *a->wrap);
            if (!a->wrap) { *n = 0; return NULL; }
            a->wrap_cap = 1;
        }
        ui_wrap(a->in.buf, a->in.len, ww, a->wrap, k);
        a->n_wrap = k;
        a->wrap_w = ww;
        a->wrap_gen = a->in.gen;
    }
    *n = a->n_wrap;
    return a->wrap;
}

/* lines the input text needs at width w */
static int input_lines(app *a, int w) {
    int n;
    input_wrap(a, input_wrap_width(w), &n);
    return n < 1 ? 1 : n;
}

static void draw_input(app *a, ui_rect sep, ui_rect r, int *cy, int *cx) {
    *cy = *cx = -1;
    if (sep.h > 0) {
        ui_rule(sep.y, sep.x, sep.w, a->focus_input ? "Message" : "Message (Tab to type)", a->focus_input ? UI_C_TITLE : UI_C_DIM);
        const char *h = a->in.len ? "Enter send · Alt-Enter new line" : "";
        int hw = ui_str_width(h, (int)strlen(h));
        if (hw && sep.w > hw + 30) ui_text(sep.y, sep.x + sep.w - hw - 2, hw, h, (int)strlen(h), UI_C_DIM);
    }
    if (r.h <= 0) return;
    int ww = input_wrap_width(r.w);
    int n;
    const ui_line *L = input_wrap(a, ww, &n);
    if (!L || n < 1) return;
    /* the cursor's line and column */
    int c = a->in.cur, cl = 0;
    for (int i = 0; i < n; i++)
        if (c >= L[i].start) cl = i;
    int end = L[cl].start + L[cl].len;
    int ccol = ui_str_width(a->in.buf + L[cl].start, (c < end ? c : end) - L[cl].start) + (c > end ? c - end : 0);
    if (ccol > ww - 1 && r.w > 2) ccol = ww;
    if (cl < a->input_top) a->input_top = cl;
    if (cl >= a->input_top + r.h) a->input_top = cl - r.h + 1;
    if (a->input_top > n - r.h) a->input_top = n - r.h > 0 ? n - r.h : 0;
    for (int i = 0; i < r.h && a->input_top + i < n; i++) {
        int li = a->input_top + i;
        if (li == 0) ui_text(r.y + i, r.x, 2, ui_g()->arrow, (int)strlen(ui_g()->arrow), a->focus_input ? UI_C_USER_HEAD : UI_C_DIM);
        ui_text(r.y + i, r.x + 2, ww, a->in.buf + L[li].start, L[li].len, UI_C_INPUT);
    }
    if (a->in.len == 0 && a->focus_input && r.w > 12) {
        const char *ph = a->loaded ? "Type a message, /help for commands" : "/model FILE opens a model";
        ui_text(r.y, r.x + 2, ww, ph, (int)strlen(ph), UI_C_DIM);
    }
    *cy = r.y + cl - a->input_top;
    *cx = r.x + 2 + ccol;
    if (*cx >= r.x + r.w) *cx = r.x + r.w - 1;
}

static void draw(app *a) {
    int rows = LINES, cols = COLS;
    erase();
    bool chat = a->scr == SCR_CHAT;
    int want = 1;
    if (chat) {
        /* the input's height depends on the width the layout gives it */
        ui_layout l0;
        ui_layout_compute(cols, rows, a->panels, 1, &l0);
        want = input_lines(a, l0.input.w > 0 ? l0.input.w : cols);
    }
    ui_layout l;
    ui_layout_compute(cols, rows, a->panels && chat, chat ? want : 0, &l);
    draw_bar(a, l.bar);
    int cy = -1, cx = -1;
    switch (a->scr) {
    case SCR_CHAT:
        ui_chat_draw(&a->chat, l.main, !a->focus_input);
        draw_input(a, l.sep, l.input, &cy, &cx);
        if (l.mode != UI_PANELS_HIDDEN) ui_panels_draw(&a->pan, l.panels, l.mode);
        break;
    case SCR_HISTORY:
        ui_history_draw(&a->hist, l.main);
        cy = a->hist.cy, cx = a->hist.cx;
        break;
    case SCR_BENCH:
        ui_bench_draw(&a->bench, l.main);
        cy = a->bench.cy, cx = a->bench.cx;
        break;
    case SCR_HELP: ui_help_draw(l.main, &a->help_scroll); break;
    }
    draw_status(a, l.status);
    if (cy >= 0 && cx >= 0 && (!chat || a->focus_input) && !a->quit_ask) {
        curs_set(1);
        move(cy, cx);
    } else curs_set(0);
    wnoutrefresh(stdscr);
    doupdate();
}

/* ---- main loop --------------------------------------------------------------- */

void ui_options_default(ui_options *o) {
    memset(o, 0, sizeof *o);
    st_model_params_default(&o->model);
    st_session_params_default(&o->session);
    st_sampler_params_default(&o->sampling);
    o->max_reply = 256;
    o->panels = true;
    o->mouse = true;
    o->history = true;
}

int ui_run(const ui_options *opt) {
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "strata chat: needs a terminal (for pipes and scripts: strata run)\n");
        return 2;
    }
    setlocale(LC_ALL, "");
    app A;
    app *a = &A;
    memset(a, 0, sizeof *a);
    a->opt = *opt;
    a->sp = opt->sampling;
    a->max_reply = opt->max_reply;
    a->panels = opt->panels;
    a->focus_input = true;
    ui_chat_init(&a->chat);
    ui_input_init(&a->in);
    ui_panels_init(&a->pan);
    ui_history_init(&a->hist);
    ui_bench_init(&a->bench);
    /* the worker threads (and the engine's own, which they start) leave the
     * terminal's signals to this one */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGWINCH);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    if (opt->history) {
        a->db = ui_db_new(opt->db_path);
        a->db_open_req = 1;   /* the open is the database thread's first request */
        if (!a->db) snprintf(a->hist.err, sizeof a->hist.err, "cannot start the database thread");
    } else {
        snprintf(a->hist.err, sizeof a->hist.err, "history is off (--no-history)");
        snprintf(a->bench.err, sizeof a->bench.err, "history is off (--no-history)");
    }
    a->eng = ui_engine_new();
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!a->eng) { fprintf(stderr, "strata chat: cannot start the engine thread\n"); ui_db_free(a->db); return 1; }
    struct sigaction wa = {0};
    wa.sa_handler = on_winch;
    wa.sa_flags = SA_RESTART;
    sigaction(SIGWINCH, &wa, NULL);   /* before initscr: ncurses then leaves SIGWINCH alone */

    if (!initscr()) { ui_engine_free(a->eng); return 1; }
    raw();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    set_escdelay(25);
    ui_theme_init();
    define_key("\033[200~", KEY_PASTE_BEGIN);
    define_key("\033[201~", KEY_PASTE_END);
    a->k_cleft = key_defined("\033[1;5D");
    a->k_cright = key_defined("\033[1;5C");
    if (opt->mouse) {
        mmask_t mm = BUTTON4_PRESSED;
#ifdef BUTTON5_PRESSED
        mm |= BUTTON5_PRESSED;
#endif
        mousemask(mm, NULL);
        mouseinterval(0);
    }
    printf("\033[?2004h");   /* bracketed paste */
    fflush(stdout);
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    if (opt->system_prompt && *opt->system_prompt) ui_chat_set_system(&a->chat, opt->system_prompt);
    if (opt->model_path) load_model(a, opt->model_path);
    else note(a, UI_MSG_NOTE, "no model: /model FILE opens one");

    uint64_t last_draw = 0;
    a->dirty = true;
    while (!a->quit && !g_signal) {
        uint64_t now = st_now_ns();
        /* statistics for the panels and the status line */
        if (now >= a->next_stats) {
            st_stats s;
            bool have = ui_engine_stats(a->eng, &s);
            uint64_t tok, dns;
            ui_engine_counters(a->eng, &tok, &dns);
            ui_panels_sample(&a->pan, have, &s, tok, dns, now);
            a->next_stats = now + STATS_NS;
            if (have || a->generating) a->dirty = true;
        }
        if (g_winch) {
            g_winch = 0;
            apply_resize(a);
        }
        if (a->flash[0] && now >= a->flash_until) { a->flash[0] = 0; a->dirty = true; }
        if (a->dirty && now - last_draw >= FRAME_NS) {
            draw(a);
            a->dirty = false;
            last_draw = now;
        }
        uint64_t wait = a->next_stats > now ? a->next_stats - now : 0;
        if (a->dirty) {
            uint64_t f = last_draw + FRAME_NS > now ? last_draw + FRAME_NS - now : 0;
            if (f < wait) wait = f;
        }
        struct pollfd fds[3] = {{STDIN_FILENO, POLLIN, 0}, {ui_engine_wake_fd(a->eng), POLLIN, 0}, {a->db ? ui_db_wake_fd(a->db) : -1, POLLIN, 0}};
        int pr = a->nq ? 1 : poll(fds, 3, (int)(wait / 1000000ull));
        if (pr < 0 && errno != EINTR) break;
        ui_event ev;
        while (ui_engine_next_event(a->eng, &ev)) {
            on_event(a, &ev);
            free(ev.text);
        }
        ui_db_event dev;
        while (a->db && ui_db_next_event(a->db, &dev)) {
            on_db_event(a, &dev);
            ui_db_event_free(&dev);
        }
        wint_t ch;
        int t;
        while (!a->quit && (t = read_key(a, &ch)) != ERR) {
            if (t == KEY_CODE_YES) on_code(a, (int)ch);
            else on_char(a, ch);
        }
        paste_flush(a);     /* what arrived of a paste shows at once */
        if (fds[0].revents & (POLLHUP | POLLERR)) break;
    }

    printf("\033[?2004l");
    fflush(stdout);
    endwin();
    ui_engine_free(a->eng);
    ui_db_free(a->db);      /* after the engine: a reply that ended is written */
    ui_history_free(&a->hist);
    ui_bench_free(&a->bench);
    ui_chat_free(&a->chat);
    ui_input_free(&a->in);
    free(a->pbuf);
    free(a->wrap);
    return 0;
}
