/* history_view.c — the History screen: the stored conversations (newest
 * first), incremental full-text search with the matches highlighted, a
 * conversation opened read-only, continue / export / delete. */
#define _XOPEN_SOURCE_EXTENDED 1
#include "draw.h"
#include "screens.h"
#include "db.h"

#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ui_unavailable_draw(ui_rect r, const char *title, const char *const *lines) {
    if (r.h <= 0 || r.w <= 0) return;
    ui_rule(r.y, r.x, r.w, title, UI_C_TITLE);
    int y = r.y + 2, w = r.w - 2 > 1 ? r.w - 2 : 1;
    /* each line wrapped (an error message names a path and says what to do) */
    for (int i = 0; lines[i] && y < r.y + r.h; i++) {
        int len = (int)strlen(lines[i]);
        ui_line L[16];
        int n = ui_wrap(lines[i], len, w, L, 16);
        for (int k = 0; k < n && k < 16 && y < r.y + r.h; k++, y++)
            ui_text(y, r.x + 2, w, lines[i] + L[k].start, L[k].len, i == 0 ? UI_C_WARN : UI_C_DIM);
    }
}

void ui_history_init(ui_history *h) {
    memset(h, 0, sizeof *h);
    ui_input_init(&h->search);
    ui_chat_init(&h->view);
}

static void free_lists(ui_history *h, bool convs, bool hits) {
    if (convs) {
        for (int i = 0; i < h->n_convs; i++) { free(h->convs[i].title); free(h->convs[i].model); }
        free(h->convs);
        h->convs = NULL;
        h->n_convs = 0;
    }
    if (hits) {
        for (int i = 0; i < h->n_hits; i++) { free(h->hits[i].title); free(h->hits[i].role); free(h->hits[i].snippet); }
        free(h->hits);
        h->hits = NULL;
        h->n_hits = 0;
    }
}

void ui_history_free(ui_history *h) {
    free_lists(h, true, true);
    ui_input_free(&h->search);
    ui_chat_free(&h->view);
}

static bool in_search(const ui_history *h) { return h->search.len > 0; }
static int count(const ui_history *h) { return in_search(h) ? h->n_hits : h->n_convs; }

static int64_t selected(const ui_history *h) {
    if (h->sel < 0 || h->sel >= count(h)) return 0;
    return in_search(h) ? h->hits[h->sel].conv_id : h->convs[h->sel].id;
}

static const ui_db_conv *conv_by_id(const ui_history *h, int64_t id) {
    for (int i = 0; i < h->n_convs; i++)
        if (h->convs[i].id == id) return &h->convs[i];
    return NULL;
}

void ui_history_on_event(ui_history *h, ui_db_event *ev) {
    switch (ev->type) {
    case UI_DB_CONVS:
        free_lists(h, true, false);
        h->convs = ev->convs;
        h->n_convs = ev->n;
        ev->convs = NULL;
        h->loaded = true;
        break;
    case UI_DB_HITS:
        if (!ev->text || strcmp(ev->text, h->search.buf)) break;   /* an older query */
        free_lists(h, false, true);
        h->hits = ev->hits;
        h->n_hits = ev->n;
        ev->hits = NULL;
        snprintf(h->hits_for, sizeof h->hits_for, "%s", ev->text);
        break;
    case UI_DB_MESSAGES: {
        if (ev->continue_it) break;
        ui_chat_clear(&h->view);
        const ui_db_conv *c = conv_by_id(h, ev->conv_id);
        snprintf(h->view.assistant_name, sizeof h->view.assistant_name, "%s", c && c->model[0] ? c->model : "Assistant");
        snprintf(h->view_title, sizeof h->view_title, "%s", c ? c->title : "conversation");
        if (ev->text) ui_chat_set_system(&h->view, ev->text);
        for (int i = 0; i < ev->n; i++) {
            const ui_db_msg *m = &ev->msgs[i];
            ui_msg_kind k = !strcmp(m->role, "user") ? UI_MSG_USER : !strcmp(m->role, "assistant") ? UI_MSG_ASSISTANT
                          : !strcmp(m->role, "system") ? UI_MSG_SYSTEM : UI_MSG_NOTE;
            ui_msg *x = ui_chat_add(&h->view, k, m->content);
            if (x && k == UI_MSG_ASSISTANT) {
                x->stopped = m->stopped;
                if (m->decode_tps > 0) snprintf(x->meta, sizeof x->meta, "%.1f tok/s", m->decode_tps);
            }
        }
        h->view.scroll = 0;
        ui_chat_scroll_home(&h->view);
        h->viewing = true;
        h->view_id = ev->conv_id;
        break;
    }
    case UI_DB_DELETED:
        if (h->viewing && h->view_id == ev->conv_id) h->viewing = false;
        break;
    default: break;
    }
    if (h->sel >= count(h)) h->sel = count(h) - 1;
    if (h->sel < 0) h->sel = 0;
}

/* the snippet with the matches (between \x01 and \x02) highlighted */
static int draw_snippet(int y, int x, int w, const char *s, ui_color base) {
    int used = 0;
    bool hl = false;
    while (*s && used < w) {
        const char *e = s;
        while (*e && *e != '\x01' && *e != '\x02') e++;
        if (e > s) {
            char buf[512];
            int n = (int)(e - s) < (int)sizeof buf ? (int)(e - s) : (int)sizeof buf - 1;
            for (int i = 0; i < n; i++) buf[i] = (s[i] == '\n' || s[i] == '\t' || s[i] == '\r') ? ' ' : s[i];
            used += ui_text(y, x + used, w - used, buf, n, hl ? UI_C_MATCH : base);
        }
        if (!*e) break;
        hl = *e == '\x01';
        s = e + 1;
    }
    return used;
}

void ui_history_draw(ui_history *h, ui_rect r) {
    h->cy = h->cx = -1;
    if (r.h <= 0 || r.w <= 0) return;
    if (!h->available) {
        const char *l[] = {"history database not available", "", h->err[0] ? h->err : "opening the database…", "",
                           "Conversations are not being stored. /save FILE writes the current one as Markdown.",
                           "F2 returns to the chat.", NULL};
        ui_unavailable_draw(r, "History", l);
        return;
    }
    if (h->viewing) {
        char t[300];
        snprintf(t, sizeof t, "History: %s (read-only)", h->view_title);
        ui_rule(r.y, r.x, r.w, t, UI_C_TITLE);
        ui_rect v = {r.y + 1, r.x + 1, r.h - 2, r.w - 1};
        if (v.h > 0) ui_chat_draw(&h->view, v, true);
        const char *hint = h->confirm_delete ? "Delete this conversation? y/n"
                                             : "c continue in the chat · e export Markdown · d delete · Esc back · PgUp/PgDn scroll";
        ui_text(r.y + r.h - 1, r.x + 1, r.w - 1, hint, (int)strlen(hint), h->confirm_delete ? UI_C_WARN : UI_C_DIM);
        return;
    }
    char t[96];
    if (in_search(h)) snprintf(t, sizeof t, "History · %d match%s", h->n_hits, h->n_hits == 1 ? "" : "es");
    else snprintf(t, sizeof t, "History · %d conversation%s", h->n_convs, h->n_convs == 1 ? "" : "s");
    ui_rule(r.y, r.x, r.w, t, UI_C_TITLE);
    if (r.h < 2) return;
    /* the search box */
    int y = r.y + 1, x = r.x + 1;
    x += ui_text(y, x, r.w - 1, "Search: ", 8, h->searching ? UI_C_TITLE : UI_C_DIM);
    int sx = x;
    x += ui_text(y, x, r.x + r.w - x, h->search.buf, h->search.len, UI_C_INPUT);
    if (!h->search.len && !h->searching) ui_text(y, sx, r.x + r.w - sx, "/ to search every message", 25, UI_C_DIM);
    if (h->searching) {
        int cx = sx + ui_str_width(h->search.buf, h->search.cur);
        if (cx < r.x + r.w) { h->cy = y; h->cx = cx; }
    }
    int top = r.y + 3, rows = r.h - 4;
    if (rows < 1) return;
    if (!h->loaded) { ui_text(top, r.x + 2, r.w - 2, "loading…", (int)strlen("loading…"), UI_C_DIM); return; }
    int n = count(h);
    if (n == 0) {
        const char *m = in_search(h) ? "no message matches" : "no conversations yet: what you send in the chat is stored here";
        ui_text(top, r.x + 2, r.w - 2, m, (int)strlen(m), UI_C_DIM);
    }
    if (h->sel < h->top) h->top = h->sel;
    if (h->sel >= h->top + rows) h->top = h->sel - rows + 1;
    int dw = 17, mw = r.w >= 90 ? 20 : 12, nw = 5;
    int tw = r.w - 2 - dw - mw - nw - 3;
    if (!in_search(h) && n > 0 && tw > 8) {
        ui_text(r.y + 2, r.x + 2, tw, "Title", 5, UI_C_DIM);
        ui_text(r.y + 2, r.x + 3 + tw, mw, "Model", 5, UI_C_DIM);
        ui_text(r.y + 2, r.x + 4 + tw + mw, dw, "Updated", 7, UI_C_DIM);
        ui_text(r.y + 2, r.x + 5 + tw + mw + dw, nw, " Msgs", 5, UI_C_DIM);
    }
    for (int i = 0; i < rows && h->top + i < n; i++) {
        int k = h->top + i, yy = top + i;
        bool sel = k == h->sel;
        ui_color c = sel && !h->searching ? UI_C_SELECT : UI_C_NORMAL;
        if (sel) ui_fill((ui_rect){yy, r.x, 1, r.w}, c);
        ui_text(yy, r.x, 2, sel ? ui_g()->arrow : " ", (int)strlen(sel ? ui_g()->arrow : " "), c);
        if (in_search(h)) {
            const ui_db_hit *hh = &h->hits[k];
            /* "title · role: snippet", the title cut to a third of the width */
            int tl = (int)strlen(hh->title), cut = ui_str_fit(hh->title, tl, r.w / 3);
            int used = ui_text(yy, r.x + 2, r.w / 3, hh->title, cut, sel ? c : UI_C_TITLE);
            if (cut < tl) used += ui_text(yy, r.x + 2 + used, 1, ui_g()->ellipsis, (int)strlen(ui_g()->ellipsis), UI_C_DIM);
            char role[48];
            int rl = snprintf(role, sizeof role, " · %s: ", hh->role);
            used += ui_text(yy, r.x + 2 + used, r.w - 3 - used, role, rl, sel ? c : UI_C_DIM);
            draw_snippet(yy, r.x + 2 + used, r.w - 3 - used, hh->snippet, c);
        } else if (tw > 8) {
            const ui_db_conv *cv = &h->convs[k];
            char date[32], nm[16];
            st_db_format_time(cv->updated_ms, date, sizeof date);
            int nl = snprintf(nm, sizeof nm, "%5d", cv->n_messages);
            ui_text(yy, r.x + 2, tw, cv->title, (int)strlen(cv->title), c);
            ui_text(yy, r.x + 3 + tw, mw, cv->model, (int)strlen(cv->model), sel ? c : UI_C_DIM);
            ui_text(yy, r.x + 4 + tw + mw, dw, date, (int)strlen(date), sel ? c : UI_C_DIM);
            ui_text(yy, r.x + 5 + tw + mw + dw, nw, nm, nl, c);
        } else {
            const ui_db_conv *cv = &h->convs[k];
            ui_text(yy, r.x + 2, r.w - 2, cv->title, (int)strlen(cv->title), c);
        }
    }
    const char *hint;
    if (h->confirm_delete) hint = "Delete the selected conversation and its messages? y/n";
    else if (h->searching) hint = "type to search · Enter/Down to the results · Esc clear";
    else hint = "Enter open · c continue · e export · d delete · / search · Esc chat";
    ui_text(r.y + r.h - 1, r.x + 1, r.w - 1, hint, (int)strlen(hint), h->confirm_delete ? UI_C_WARN : UI_C_DIM);
}

static ui_action act(ui_act_kind k, int64_t id, const char *t) { return (ui_action){k, id, t}; }

ui_action ui_history_key(ui_history *h, int type, int ch, int page) {
    bool code = type == KEY_CODE_YES;
    if (!h->available) return act(UI_ACT_NOT_HANDLED, 0, NULL);
    if (h->confirm_delete) {
        h->confirm_delete = false;
        int64_t id = h->viewing ? h->view_id : selected(h);
        if (!code && (ch == 'y' || ch == 'Y') && id) return act(UI_ACT_DELETE, id, NULL);
        return act(UI_ACT_REDRAW, 0, NULL);
    }
    if (h->viewing) {
        if (code) {
            switch (ch) {
            case KEY_UP: ui_chat_scroll(&h->view, 1); break;
            case KEY_DOWN: ui_chat_scroll(&h->view, -1); break;
            case KEY_PPAGE: ui_chat_scroll(&h->view, page); break;
            case KEY_NPAGE: ui_chat_scroll(&h->view, -page); break;
            case KEY_HOME: ui_chat_scroll_home(&h->view); break;
            case KEY_END: ui_chat_scroll_end(&h->view); break;
            case KEY_LEFT: case KEY_BACKSPACE: h->viewing = false; break;
            case KEY_DC: h->confirm_delete = true; break;
            default: return act(UI_ACT_NOT_HANDLED, 0, NULL);
            }
            return act(UI_ACT_REDRAW, 0, NULL);
        }
        switch (ch) {
        case 27: case 'q': h->viewing = false; return act(UI_ACT_REDRAW, 0, NULL);
        case 'c': return act(UI_ACT_CONTINUE, h->view_id, NULL);
        case 'e': return act(UI_ACT_EXPORT, h->view_id, NULL);
        case 'd': h->confirm_delete = true; return act(UI_ACT_REDRAW, 0, NULL);
        default: return act(UI_ACT_NOT_HANDLED, 0, NULL);
        }
    }
    if (h->searching) {
        ui_key k = UI_KEY_NONE;
        if (code) {
            switch (ch) {
            case KEY_LEFT: k = UI_KEY_LEFT; break;
            case KEY_RIGHT: k = UI_KEY_RIGHT; break;
            case KEY_HOME: k = UI_KEY_HOME; break;
            case KEY_END: k = UI_KEY_END; break;
            case KEY_BACKSPACE: k = UI_KEY_BACKSPACE; break;
            case KEY_DC: k = UI_KEY_DELETE; break;
            case KEY_DOWN: case KEY_ENTER: h->searching = false; h->sel = 0; return act(UI_ACT_REDRAW, 0, NULL);
            default: return act(UI_ACT_NOT_HANDLED, 0, NULL);
            }
        } else if (ch == 27) {
            h->searching = false;
            ui_input_set(&h->search, "");
            return act(UI_ACT_LIST, 0, NULL);
        } else if (ch == '\r' || ch == '\n' || ch == '\t') {
            h->searching = false;
            h->sel = 0;
            return act(UI_ACT_REDRAW, 0, NULL);
        } else if (ch == 8 || ch == 127) k = UI_KEY_BACKSPACE;
        else if (ch == 21) k = UI_KEY_KILL_START;
        else if (ch == 23) k = UI_KEY_KILL_WORD;
        else if (ch >= 0x20) {
            ui_input_key(&h->search, UI_KEY_CHAR, (uint32_t)ch);
            h->sel = 0;
            return act(UI_ACT_SEARCH, 0, h->search.buf);
        } else return act(UI_ACT_NOT_HANDLED, 0, NULL);
        int before = h->search.len;
        ui_input_key(&h->search, k, 0);
        if (h->search.len != before) {
            h->sel = 0;
            return h->search.len ? act(UI_ACT_SEARCH, 0, h->search.buf) : act(UI_ACT_LIST, 0, NULL);
        }
        return act(UI_ACT_REDRAW, 0, NULL);
    }
    int n = count(h);
    if (code) {
        switch (ch) {
        case KEY_UP: if (h->sel > 0) h->sel--; else { h->searching = true; } break;
        case KEY_DOWN: if (h->sel < n - 1) h->sel++; break;
        case KEY_PPAGE: h->sel -= page; if (h->sel < 0) h->sel = 0; break;
        case KEY_NPAGE: h->sel += page; if (h->sel > n - 1) h->sel = n - 1; if (h->sel < 0) h->sel = 0; break;
        case KEY_HOME: h->sel = 0; break;
        case KEY_END: h->sel = n > 0 ? n - 1 : 0; break;
        case KEY_ENTER: case KEY_RIGHT: return selected(h) ? act(UI_ACT_OPEN, selected(h), NULL) : act(UI_ACT_NONE, 0, NULL);
        case KEY_DC: if (selected(h)) h->confirm_delete = true; break;
        default: return act(UI_ACT_NOT_HANDLED, 0, NULL);
        }
        return act(UI_ACT_REDRAW, 0, NULL);
    }
    switch (ch) {
    case '/': h->searching = true; return act(UI_ACT_REDRAW, 0, NULL);
    case '\r': case '\n': case 'o': return selected(h) ? act(UI_ACT_OPEN, selected(h), NULL) : act(UI_ACT_NONE, 0, NULL);
    case 'c': return selected(h) ? act(UI_ACT_CONTINUE, selected(h), NULL) : act(UI_ACT_NONE, 0, NULL);
    case 'e': return selected(h) ? act(UI_ACT_EXPORT, selected(h), NULL) : act(UI_ACT_NONE, 0, NULL);
    case 'd': if (selected(h)) h->confirm_delete = true; return act(UI_ACT_REDRAW, 0, NULL);
    case 'r': return act(UI_ACT_SAY, 0, "renaming needs a title update in db/, which it does not offer yet");
    case 27:
        if (h->search.len) { ui_input_set(&h->search, ""); return act(UI_ACT_LIST, 0, NULL); }
        return act(UI_ACT_NOT_HANDLED, 0, NULL);
    default: return act(UI_ACT_NOT_HANDLED, 0, NULL);
    }
}
