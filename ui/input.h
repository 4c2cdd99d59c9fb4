/* input.h — the chat input's line editor (no ncurses: keys arrive as
 * ui_key values, so tests/test_ui.c can drive it).
 *
 * The text is UTF-8 and may hold several lines ('\n' from Alt-Enter, Ctrl-J
 * or a paste). Emacs-style keys as in readline: Ctrl-A/E to the start/end
 * of the line, Ctrl-U/K kill to the start/end of the line, Ctrl-W kills the
 * word before the cursor. Up/Down move between lines of a multi-line text
 * and, from its first/last line, through the history of sent inputs. */
#ifndef UI_INPUT_H
#define UI_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    UI_KEY_NONE = 0,
    UI_KEY_CHAR,        /* a character: ui_input_key's cp */
    UI_KEY_LEFT, UI_KEY_RIGHT, UI_KEY_UP, UI_KEY_DOWN,
    UI_KEY_WORD_LEFT, UI_KEY_WORD_RIGHT,
    UI_KEY_HOME, UI_KEY_END,      /* of the line (Ctrl-A / Ctrl-E too) */
    UI_KEY_BACKSPACE, UI_KEY_DELETE,
    UI_KEY_KILL_START,  /* Ctrl-U */
    UI_KEY_KILL_END,    /* Ctrl-K */
    UI_KEY_KILL_WORD,   /* Ctrl-W */
    UI_KEY_NEWLINE,     /* Alt-Enter, Ctrl-J: a line break in the text */
    UI_KEY_ENTER,       /* send */
} ui_key;

typedef enum {
    UI_ED_IGNORED = 0,  /* not an editing key (or nothing to do) */
    UI_ED_CHANGED,      /* text or cursor changed */
    UI_ED_SUBMIT,       /* Enter: ui_input_take() the text */
} ui_ed_result;

#define UI_INPUT_HISTORY 100
/* The text holds at most this many bytes: a longer paste is cut (at a
 * character boundary) and `overflow` set. The history keeps at most
 * UI_INPUT_HISTORY_BYTES in all (the oldest entries go first). */
#define UI_INPUT_MAX (4 << 20)
#define UI_INPUT_HISTORY_BYTES (8 << 20)

typedef struct ui_input {
    char *buf;          /* NUL-terminated UTF-8, always valid (see ui_input_insert) */
    int len, cap;
    int cur;            /* cursor: byte offset, on a character boundary */
    unsigned gen;       /* changes whenever the text does (for caches of its layout) */
    bool overflow;      /* text was dropped at UI_INPUT_MAX (the caller clears it) */
    char *hist[UI_INPUT_HISTORY];  /* oldest first */
    int n_hist;
    size_t hist_bytes;
    int hist_pos;       /* -1: editing the draft; else the entry shown */
    char *draft;        /* the text being edited before Up went into the history */
} ui_input;

void ui_input_init(ui_input *in);
void ui_input_free(ui_input *in);
/* UI_KEY_CHAR inserts cp unless it is a control character: C0 other than
 * Tab (a line break is UI_KEY_NEWLINE), DEL and C1 (U+0080-U+009F) are
 * ignored, as are surrogates and values past U+10FFFF. */
ui_ed_result ui_input_key(ui_input *in, ui_key key, uint32_t cp);
/* Inserts text (a paste) at the cursor, in one step. The rule for what a
 * paste may hold, which tests/tui_e2e.sh checks byte for byte: "\r\n" and
 * '\r' become '\n'; invalid UTF-8 becomes U+FFFD (one per maximal subpart:
 * ui_utf8_feed); control characters other than '\n' and Tab (C0, DEL, C1)
 * are dropped; everything else is kept as it is. */
void ui_input_insert(ui_input *in, const char *text, int n);
/* Replaces the text (cursor at the end). */
void ui_input_set(ui_input *in, const char *text);
/* The text sent by Enter: returns a malloc'd copy, records it in the history
 * (unless empty or equal to the last entry) and clears the editor. */
char *ui_input_take(ui_input *in);
/* Line (counted in '\n') and display column of the cursor. */
void ui_input_cursor_pos(const ui_input *in, int *line, int *col);

#endif
