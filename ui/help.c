/* help.c — the help screen: every key and command. */
#include "draw.h"
#include "screens.h"

#include <string.h>

typedef struct { const char *key, *what; } entry;

/* key == NULL: a section title (what) */
static const entry help[] = {
    {NULL, "Screens"},
    {"F2  or 1", "chat"},
    {"F3  or 2", "history: conversations, search"},
    {"F4  or 3", "bench: stored benchmark runs"},
    {"F1  or ?", "this help"},
    {"F5  or p", "live panels on/off (beside the chat, or below it when narrow)"},
    {"Tab", "focus: input <-> conversation (there 1 2 3 ? p switch screens)"},
    {"F10 or Ctrl-Q", "quit (asks first while a reply is being generated)"},
    {NULL, "Chat input"},
    {"Enter", "send"},
    {"Alt-Enter, Ctrl-J", "new line in the message (a paste keeps its lines: bracketed paste)"},
    {"Esc or Ctrl-C", "stop the reply being generated (the partial reply is kept)"},
    {"Left Right", "move by character; Ctrl-Left/Right, Alt-B/F: by word"},
    {"Home End, Ctrl-A Ctrl-E", "start / end of the line"},
    {"Ctrl-U  Ctrl-K", "delete to the start / end of the line"},
    {"Ctrl-W", "delete the word before the cursor"},
    {"Backspace Delete", "delete a character"},
    {"Up Down", "move between lines; on the first/last line: earlier messages"},
    {"PgUp PgDn, wheel", "scroll the conversation"},
    {NULL, "Conversation (after Tab)"},
    {"Up Down PgUp PgDn", "scroll"},
    {"Home End", "top / bottom (End follows new text)"},
    {NULL, "Commands (type in the input, Enter)"},
    {"/system TEXT", "set the system prompt (empty: none)"},
    {"/temp T", "temperature (0 = greedy)"},
    {"/top-p P  /top-k K", "nucleus / top-k sampling"},
    {"/seed N", "random seed"},
    {"/max N", "longest reply in tokens (-1: until the end of sequence)"},
    {"/clear", "clear the conversation (keeps the settings)"},
    {"/new", "start a new conversation"},
    {"/save [FILE]", "write the conversation as Markdown"},
    {"/model FILE", "open another GGUF model"},
    {"/help", "this help"},
    {NULL, "Panels"},
    {"Speed", "decode and prompt tok/s of the last reply; sparklines: last 60 s"},
    {"Prefetch", "layers ready when needed (%), sync loads, stall, distance, queue"},
    {"Layers", "one cell per layer: pinned, resident, loading, absent; slot bytes"},
    {"CPU + memory", "backend, threads, CPU use, resident memory, context used"},
};

int ui_help_lines(void) { return (int)(sizeof help / sizeof help[0]) + 2; }

void ui_help_draw(ui_rect r, int *scroll) {
    if (r.h <= 0 || r.w <= 0) return;
    int n = (int)(sizeof help / sizeof help[0]);
    int total = n + 2;
    int most = total - r.h;
    if (most < 0) most = 0;
    if (*scroll > most) *scroll = most;
    if (*scroll < 0) *scroll = 0;
    int kw = 0;
    for (int i = 0; i < n; i++)
        if (help[i].key && (int)strlen(help[i].key) > kw) kw = (int)strlen(help[i].key);
    if (kw > r.w / 2) kw = r.w / 2;
    for (int l = *scroll, y = r.y; l < total && y < r.y + r.h; l++, y++) {
        if (l == 0) { ui_text(y, r.x + 1, r.w - 1, "strata: keys and commands", 25, UI_C_TITLE); continue; }
        if (l == 1) continue;
        const entry *e = &help[l - 2];
        if (!e->key) { ui_rule(y, r.x, r.w, e->what, UI_C_TITLE); continue; }
        ui_text(y, r.x + 2, kw, e->key, (int)strlen(e->key), UI_C_KEY);
        ui_text(y, r.x + 4 + kw, r.w - 4 - kw, e->what, (int)strlen(e->what), UI_C_NORMAL);
    }
}
