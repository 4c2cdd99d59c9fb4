/* chat_view.h — the conversation: messages, and their word-wrapped view
 * with scrolling (the display lines of each message are cached per width). */
#ifndef UI_CHAT_VIEW_H
#define UI_CHAT_VIEW_H

#include "layout.h"
#include "prompt.h"
#include "wrap.h"
#include <stdbool.h>

typedef enum {
    UI_MSG_USER = 0,
    UI_MSG_ASSISTANT,
    UI_MSG_SYSTEM,      /* the system prompt (sent to the model) */
    UI_MSG_NOTE,        /* the app's own notes and errors (not sent) */
    UI_MSG_ERROR,
} ui_msg_kind;

typedef struct ui_msg {
    ui_msg_kind kind;
    char *text;
    int len, cap;
    bool streaming;     /* a reply still arriving */
    bool stopped;       /* a reply stopped by the user (kept as it was) */
    char meta[128];     /* figures after a reply: "42 tokens · 512.3 tok/s" */
    /* wrap cache */
    int wrap_w, wrap_len, wrap_shown;
    ui_line *lines;
    int n_lines, lines_cap;
} ui_msg;

typedef struct ui_chat {
    ui_msg *msgs;
    int n, cap;
    int scroll;         /* display lines above the bottom (0: follow the end) */
    int last_h, last_total, last_w;   /* from the last draw, for paging */
    char assistant_name[128];
} ui_chat;

void ui_chat_init(ui_chat *c);
void ui_chat_free(ui_chat *c);
void ui_chat_clear(ui_chat *c);
/* Appends a message (text copied); returns it, NULL on allocation failure. */
ui_msg *ui_chat_add(ui_chat *c, ui_msg_kind kind, const char *text);
void ui_msg_append(ui_msg *m, const char *text, int len);
/* Removes message i (later ones move up). */
void ui_chat_remove(ui_chat *c, int i);
/* Sets the system prompt: the first message, added, replaced or (empty
 * text) removed. */
void ui_chat_set_system(ui_chat *c, const char *text);
/* The turns to send to the model (user, assistant and system messages;
 * pointers into the messages, valid until the chat changes). Returns the
 * count; *out is malloc'd. */
int ui_chat_turns(const ui_chat *c, ui_turn **out);
/* Scrolling by display lines (+ = back in time); ui_chat_scroll_end() follows. */
void ui_chat_scroll(ui_chat *c, int lines);
void ui_chat_scroll_home(ui_chat *c);
void ui_chat_scroll_end(ui_chat *c);
/* Draws into r (ncurses). */
void ui_chat_draw(ui_chat *c, ui_rect r, bool focused);
/* Writes the conversation as Markdown; false on an I/O error. */
bool ui_chat_save_markdown(const ui_chat *c, const char *path, const char *model);

#endif
