/* chat.c — chat-template families: detection by markers and one renderer per
 * family, each written to produce what its Jinja template produces under
 * transformers (trim_blocks, lstrip_blocks). Where a template reads a
 * variable the caller does not pass (tools, date_string, enable_thinking),
 * the renderer follows the template's default, as transformers does.
 * The comments give the Jinja expressions each piece of output stands for. */
#include "chat.h"
#include "model.h"
#include "strata.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------ */
/* names                                                               */

static const char *const NAMES[ST_CHAT_COUNT] = {
    [ST_CHAT_PLAIN] = "plain",
    [ST_CHAT_LLAMA2] = "llama2",
    [ST_CHAT_MISTRAL_V02] = "mistral-v0.2",
    [ST_CHAT_MISTRAL_V1] = "mistral-v1",
    [ST_CHAT_MISTRAL_V3] = "mistral-v3",
    [ST_CHAT_MISTRAL_NEMO] = "mistral-nemo",
    [ST_CHAT_CHATML] = "chatml",
    [ST_CHAT_QWEN25] = "qwen2.5",
    [ST_CHAT_SMOLLM3] = "smollm3",
    [ST_CHAT_LLAMA3] = "llama3",
    [ST_CHAT_LLAMA3_GENPROMPT] = "llama3-genprompt",
    [ST_CHAT_LLAMA31] = "llama3.1",
    [ST_CHAT_LLAMA32] = "llama3.2",
    [ST_CHAT_ZEPHYR] = "zephyr",
    [ST_CHAT_PHI3] = "phi3",
    [ST_CHAT_PHI3_SYSTEM] = "phi3-system",
    [ST_CHAT_PHI35] = "phi3.5",
    [ST_CHAT_GEMMA] = "gemma",
    [ST_CHAT_GEMMA2] = "gemma2",
    [ST_CHAT_DEEPSEEK_CODER] = "deepseek-coder",
    [ST_CHAT_DEEPSEEK_R1] = "deepseek-r1",
    [ST_CHAT_VICUNA] = "vicuna",
    [ST_CHAT_VICUNA_ORCA] = "vicuna-orca",
    [ST_CHAT_OPENCHAT] = "openchat",
};

static const struct { const char *alias; st_chat_family f; } ALIASES[] = {
    {"gemma-bos", ST_CHAT_GEMMA2},
    {"mistral-v3-tekken", ST_CHAT_MISTRAL_NEMO},
    {"mistral", ST_CHAT_MISTRAL_V1},
    {"llama-2", ST_CHAT_LLAMA2},
    {"deepseek-r1-distill-llama", ST_CHAT_DEEPSEEK_R1},
    {"qwen2", ST_CHAT_QWEN25},
    {"qwen", ST_CHAT_QWEN25},
    {"phi-3", ST_CHAT_PHI3},
    {"none", ST_CHAT_PLAIN},
};

const char *st_chat_family_name(st_chat_family f) {
    if (f <= ST_CHAT_UNKNOWN || f >= ST_CHAT_COUNT) return NAMES[ST_CHAT_PLAIN];
    return NAMES[f];
}

st_chat_family st_chat_family_by_name(const char *name) {
    if (!name) return ST_CHAT_UNKNOWN;
    for (int i = 0; i < ST_CHAT_COUNT; i++)
        if (!strcmp(name, NAMES[i])) return (st_chat_family)i;
    for (size_t i = 0; i < sizeof ALIASES / sizeof ALIASES[0]; i++)
        if (!strcmp(name, ALIASES[i].alias)) return ALIASES[i].f;
    return ST_CHAT_UNKNOWN;
}

const char *st_chat_family_list(void) {
    static char buf[512];
    if (!buf[0]) {
        size_t n = 0;
        for (int i = 0; i < ST_CHAT_COUNT && n < sizeof buf; i++)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? ", " : "", NAMES[i]);
    }
    return buf;
}

bool st_chat_refuses_system(st_chat_family f) {
    return f == ST_CHAT_GEMMA || f == ST_CHAT_GEMMA2 || f == ST_CHAT_MISTRAL_V02;
}

void st_chat_params_default(st_chat_params *p) {
    memset(p, 0, sizeof *p);
    p->add_generation_prompt = true;
}

/* ------------------------------------------------------------------ */
/* detection                                                           */

static bool has(const char *t, const char *s) { return strstr(t, s) != NULL; }

/* pat with each ' standing for either quote character (Jinja string
 * literals may use ' or "); the quotes of one match need not agree. */
static bool has_quoted(const char *t, const char *pat) {
    size_t n = strlen(pat);
    for (const char *p = t; *p; p++) {
        size_t i = 0;
        for (; i < n && p[i]; i++) {
            if (pat[i] == '\'') {
                if (p[i] != '\'' && p[i] != '"') break;
            } else if (p[i] != pat[i]) break;
        }
        if (i == n) return true;
    }
    return false;
}

st_chat_family st_chat_detect(const char *t) {
    if (!t || !*t) return ST_CHAT_UNKNOWN;
    if (has(t, "<|im_start|>")) {
        if (has(t, "Reasoning Mode") || has(t, "SmolLM")) return ST_CHAT_SMOLLM3;
        if (has(t, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")) return ST_CHAT_QWEN25;
        return ST_CHAT_CHATML;
    }
    if (has(t, "<|start_header_id|>")) {
        if (has(t, "Cutting Knowledge Date")) return has(t, "strftime_now") ? ST_CHAT_LLAMA32 : ST_CHAT_LLAMA31;
        return has(t, "add_generation_prompt") ? ST_CHAT_LLAMA3_GENPROMPT : ST_CHAT_LLAMA3;
    }
    if (has(t, "<start_of_turn>")) return has(t, "bos_token") ? ST_CHAT_GEMMA2 : ST_CHAT_GEMMA;
    if (has(t, "<\xef\xbd\x9cUser\xef\xbd\x9c>")) return ST_CHAT_DEEPSEEK_R1; /* <｜User｜> */
    if (has(t, "[INST]")) {
        if (has(t, "<<SYS>>")) return ST_CHAT_LLAMA2;
        if (has_quoted(t, "' [INST] ")) return ST_CHAT_MISTRAL_V1;   /* ' [INST] ' + ... */
        if (has_quoted(t, "' [/INST]'")) return ST_CHAT_MISTRAL_V02; /* '[INST] ' + content + ' [/INST]' */
        if (has_quoted(t, "[INST]'")) return ST_CHAT_MISTRAL_NEMO;   /* "[INST]" + content + "[/INST]" */
        if (has_quoted(t, "[INST] '")) return ST_CHAT_MISTRAL_V3;    /* "[INST] " + content + "[/INST]" */
        return ST_CHAT_UNKNOWN;
    }
    if (has(t, "<|user|>")) {
        if (has(t, "<|end|>")) {
            if (!has(t, "<|system|>")) return ST_CHAT_PHI3;
            return has_quoted(t, "'system' and message") ? ST_CHAT_PHI35 : ST_CHAT_PHI3_SYSTEM;
        }
        return ST_CHAT_ZEPHYR;
    }
    if (has(t, "### Instruction:")) return ST_CHAT_DEEPSEEK_CODER;
    if (has(t, "GPT4 Correct ")) return ST_CHAT_OPENCHAT;
    if (has(t, "USER: ") && has(t, "ASSISTANT:")) return has(t, "SYSTEM: ") ? ST_CHAT_VICUNA_ORCA : ST_CHAT_VICUNA;
    return ST_CHAT_UNKNOWN;
}

/* ------------------------------------------------------------------ */
/* output buffer                                                       */

typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void putn(sbuf *b, const char *s, size_t n) {
    if (b->oom || !n) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) { b->oom = true; return; }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void puts_(sbuf *b, const char *s) {
    if (s) putn(b, s, strlen(s));
}

/* ------------------------------------------------------------------ */
/* Python string methods on UTF-8                                      */

/* Length of the whitespace character at s[0..n) as Python's str.isspace()
 * sees it (U+0009-000D, U+001C-001F, space, U+0085, U+00A0, U+1680,
 * U+2000-200A, U+2028, U+2029, U+202F, U+205F, U+3000); 0 if none. */
static size_t ws_len(const unsigned char *s, size_t n) {
    if (!n) return 0;
    if ((s[0] >= 0x09 && s[0] <= 0x0d) || (s[0] >= 0x1c && s[0] <= 0x20)) return 1;
    if (n >= 2 && s[0] == 0xc2 && (s[1] == 0x85 || s[1] == 0xa0)) return 2;
    if (n >= 3) {
        unsigned cp = 0;
        if ((s[0] & 0xf0) == 0xe0 && (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80)
            cp = ((unsigned)(s[0] & 0x0f) << 12) | ((unsigned)(s[1] & 0x3f) << 6) | (s[2] & 0x3f);
        if (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
            cp == 0x205f || cp == 0x3000)
            return 3;
    }
    return 0;
}

typedef struct { const char *p; size_t n; } span;

static span sp(const char *s) { return (span){s ? s : "", s ? strlen(s) : 0}; }

static span lstrip(span s) {
    size_t k;
    while ((k = ws_len((const unsigned char *)s.p, s.n)) > 0) { s.p += k; s.n -= k; }
    return s;
}

static span rstrip(span s) {
    for (;;) {
        if (!s.n) return s;
        /* start of the last character: back over up to 3 continuation bytes */
        size_t st = s.n - 1;
        while (st > 0 && s.n - st < 4 && (((unsigned char)s.p[st]) & 0xc0) == 0x80) st--;
        if (ws_len((const unsigned char *)s.p + st, s.n - st) != s.n - st) return s;
        s.n = st;
    }
}

static span strip(span s) { return rstrip(lstrip(s)); } /* str.strip() and Jinja's |trim */

static void put_span(sbuf *b, span s) { putn(b, s.p, s.n); }

static bool eq(const char *a, const char *b) { return a && !strcmp(a, b); }

/* Python's json.dumps(s, ensure_ascii=False) of a string */
static void put_json_str(sbuf *b, const char *s) {
    putn(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': putn(b, "\\\"", 2); break;
        case '\\': putn(b, "\\\\", 2); break;
        case '\n': putn(b, "\\n", 2); break;
        case '\r': putn(b, "\\r", 2); break;
        case '\t': putn(b, "\\t", 2); break;
        case '\b': putn(b, "\\b", 2); break;
        case '\f': putn(b, "\\f", 2); break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                putn(b, esc, 6);
            } else putn(b, (const char *)p, 1);
        }
    }
    putn(b, "\"", 1);
}

/* ------------------------------------------------------------------ */
/* renderers                                                           */

typedef struct {
    const st_chat_msg *m;
    int n;
    const st_chat_params *p;
    const char *bos, *eos;
    const char *fam;  /* name, for messages */
    st_error *err;
} rctx;

#define ALTERNATE_MSG "conversation roles must alternate user/assistant/user/assistant/..."

static st_status refuse_alternate(rctx *c, int i, const char *after_system) {
    return st_error_set(c->err, ST_ERR_ARG, "%s template: %s%s (message %d is '%s')", c->fam,
                        after_system ? after_system : "", ALTERNATE_MSG, i + 1, c->m[i].role);
}

/* (message['role'] == 'user') != (index % 2 == 0) */
static bool breaks_alternation(const st_chat_msg *m, int index) { return eq(m->role, "user") != (index % 2 == 0); }

static st_status r_plain(rctx *c, sbuf *b) {
    for (int i = 0; i < c->n; i++) {
        const char *r = c->m[i].role;
        if (eq(r, "system")) puts_(b, "System: ");
        else if (eq(r, "user")) puts_(b, "User: ");
        else if (eq(r, "assistant")) puts_(b, "Assistant: ");
        else { puts_(b, r); puts_(b, ": "); }
        puts_(b, c->m[i].content);
        puts_(b, "\n");
    }
    if (c->p->add_generation_prompt) puts_(b, "Assistant:");
    return ST_OK;
}

static st_status r_llama2(rctx *c, sbuf *b) {
    int s = 0;
    const char *sys = NULL;
    if (eq(c->m[0].role, "system")) { sys = c->m[0].content; s = 1; }
    for (int i = s; i < c->n; i++) {
        int k = i - s;
        const st_chat_msg *m = &c->m[i];
        if (breaks_alternation(m, k)) return refuse_alternate(c, i, NULL);
        if (eq(m->role, "user")) {
            puts_(b, c->bos);
            puts_(b, "[INST] ");
            if (k == 0 && sys) {
                /* ('<<SYS>>\n' + system + '\n<</SYS>>\n\n' + content).strip() */
                sbuf t = {0};
                puts_(&t, "<<SYS>>\n");
                puts_(&t, sys);
                puts_(&t, "\n<</SYS>>\n\n");
                puts_(&t, m->content);
                if (t.oom) { free(t.p); b->oom = true; return ST_ERR_NOMEM; }
                put_span(b, strip((span){t.p ? t.p : "", t.n}));
                free(t.p);
            } else put_span(b, strip(sp(m->content)));
            puts_(b, " [/INST]");
        } else if (eq(m->role, "assistant")) {
            puts_(b, " ");
            put_span(b, strip(sp(m->content)));
            puts_(b, " ");
            puts_(b, c->eos);
        }
    }
    return ST_OK;
}

static st_status r_mistral_v02(rctx *c, sbuf *b) {
    puts_(b, c->bos);
    for (int i = 0; i < c->n; i++) {
        const st_chat_msg *m = &c->m[i];
        if (breaks_alternation(m, i)) return refuse_alternate(c, i, NULL);
        if (eq(m->role, "user")) {
            puts_(b, "[INST] ");
            puts_(b, m->content);
            puts_(b, " [/INST]");
        } else if (eq(m->role, "assistant")) {
            puts_(b, m->content);
            puts_(b, c->eos);
        } else
            return st_error_set(c->err, ST_ERR_ARG, "%s template: only user and assistant roles are supported (message %d is '%s')",
                                c->fam, i + 1, m->role);
    }
    return ST_OK;
}

static st_status r_mistral_v1(rctx *c, sbuf *b) {
    int s = 0;
    const char *sys = NULL;
    if (eq(c->m[0].role, "system")) { sys = c->m[0].content; s = 1; }
    puts_(b, c->bos);
    for (int i = s; i < c->n; i++) {
        const st_chat_msg *m = &c->m[i];
        if (breaks_alternation(m, i - s)) return refuse_alternate(c, i, "after the optional system message, ");
        if (eq(m->role, "user")) {
            puts_(b, " [INST] ");
            if (i == s && sys) { puts_(b, sys); puts_(b, "\n\n"); }
            puts_(b, m->content);
            puts_(b, " [/INST]");
        } else if (eq(m->role, "assistant")) {
            puts_(b, " ");
            puts_(b, m->content);
            puts_(b, c->eos);
        } else
            return st_error_set(c->err, ST_ERR_ARG,
                                "%s template: only user and assistant roles are supported, with the exception of an "
                                "initial optional system message (message %d is '%s')",
                                c->fam, i + 1, m->role);
    }
    return ST_OK;
}

/* mistral-nemo (v3-tekken) and v3 (Mistral-7B-Instruct-v0.3): the system
 * message goes in front of the LAST message when that is a user turn. */
static st_status r_mistral_v3(rctx *c, sbuf *b, bool tekken) {
    int s = 0;
    const char *sys = NULL;
    if (eq(c->m[0].role, "system")) { sys = c->m[0].content; s = 1; }
    int idx = 0;
    for (int i = s; i < c->n; i++) {
        const st_chat_msg *m = &c->m[i];
        if (eq(m->role, "tool") || eq(m->role, "tool_results")) continue;
        if (breaks_alternation(m, idx)) return refuse_alternate(c, i, "after the optional system message, ");
        idx++;
    }
    puts_(b, c->bos);
    for (int i = s; i < c->n; i++) {
        const st_chat_msg *m = &c->m[i];
        if (eq(m->role, "user")) {
            puts_(b, tekken ? "[INST]" : "[INST] ");
            if (i == c->n - 1 && sys) { puts_(b, sys); puts_(b, "\n\n"); }
            puts_(b, m->content);
            puts_(b, "[/INST]");
        } else if (eq(m->role, "assistant")) {
            if (tekken) puts_(b, m->content);
            else { puts_(b, " "); put_span(b, strip(sp(m->content))); }
            puts_(b, c->eos);
        } else if (eq(m->role, "tool") || eq(m->role, "tool_results")) {
            return st_error_set(c->err, ST_ERR_ARG, "%s template: tool results need a tool_call_id, which plain messages do not carry (message %d)",
                                c->fam, i + 1);
        } else
            return st_error_set(c->err, ST_ERR_ARG,
                                "%s template: only user and assistant roles are supported, with the exception of an "
                                "initial optional system message (message %d is '%s')",
                                c->fam, i + 1, m->role);
    }
    return ST_OK;
}

static void chatml_turn(sbuf *b, const char *role, const char *content) {
    puts_(b, "<|im_start|>");
    puts_(b, role);
    puts_(b, "\n");
    puts_(b, content);
    puts_(b, "<|im_end|>\n");
}

static st_status r_chatml(rctx *c, sbuf *b) {
    for (int i = 0; i < c->n; i++) chatml_turn(b, c->m[i].role, c->m[i].content);
    if (c->p->add_generation_prompt) puts_(b, "<|im_start|>assistant\n");
    return ST_OK;
}

static st_status r_qwen25(rctx *c, sbuf *b) {
    if (eq(c->m[0].role, "system")) chatml_turn(b, "system", c->m[0].content);
    else puts_(b, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n");
    for (int i = 0; i < c->n; i++) {
        const st_chat_msg *m = &c->m[i];
        if (eq(m->role, "user") || (eq(m->role, "system") && i > 0) || eq(m->role, "assistant")) {
            chatml_turn(b, m->role, m->content);
        } else if (eq(m->role, "tool")) {
            /* consecutive tool results share one user turn */
            if (i == 0 || !eq(c->m[i - 1].role, "tool")) puts_(b, "<|im_start|>user");
            puts_(b, "\n<tool_response>\n");
            puts_(b, m->content);
            puts_(b, "\n</tool_response>");
            if (i == c->n - 1 || !eq(c->m[i + 1].role, "tool")) puts_(b, "<|im_end|>\n");
        }
    }
    if (c->p->add_generation_prompt) puts_(b, "<|im_start|>assistant\n");
    return ST_OK;
}

static const char SMOL_THINK_DEFAULT[] =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face. Your role as an assistant involves "
    "thoroughly exploring questions through a systematic thinking process before providing the final precise and "
    "accurate solutions. This requires engaging in a comprehensive cycle of analysis, summarizing, exploration, "
    "reassessment, reflection, backtracking, and iteration to develop well-considered thinking process. Please "
    "structure your response into two main sections: Thought and Solution using the specified format: <think> "
    "Thought section </think> Solution section. In the Thought section, detail your reasoning process in steps. Each "
    "step should include detailed considerations such as analysing questions, summarizing relevant findings, "
    "brainstorming new ideas, verifying the accuracy of the current steps, refining any errors, and revisiting "
    "previous steps. In the Solution section, based on various attempts, explorations, and reflections from the "
    "Thought section, systematically present the final solution that you deem correct. The Solution section should "
    "be logical, accurate, and concise and detail necessary steps needed to reach the conclusion.\n\n";

/* s with every occurrence of `what` removed (str.replace(what, "")) */
static void remove_all(sbuf *out, span s, const char *what) {
    size_t wn = strlen(what);
    size_t i = 0;
    while (i < s.n) {
        if (i + wn <= s.n && !memcmp(s.p + i, what, wn)) { i += wn; continue; }
        putn(out, s.p + i, 1);
        i++;
    }
}

static st_status r_smollm3(rctx *c, sbuf *b) {
    bool think = true; /* enable_thinking defaults to true */
    sbuf ci = {0};
    bool have_ci = false;
    if (eq(c->m[0].role, "system")) {
        const char *sm = c->m[0].content;
        if (has(sm, "/no_think")) think = false;
        else if (has(sm, "/think")) think = true;
        sbuf t = {0};
        remove_all(&t, sp(sm), "/no_think");
        remove_all(&ci, (span){t.p ? t.p : "", t.n}, "/think");
        free(t.p);
        if (t.oom || ci.oom) { free(ci.p); b->oom = true; return ST_ERR_NOMEM; }
        span r = rstrip((span){ci.p ? ci.p : "", ci.n});
        ci.n = r.n;
        have_ci = ci.n > 0;
    }
    puts_(b, "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nReasoning Mode: ");
    puts_(b, think ? "/think" : "/no_think");
    puts_(b, "\n\n## Custom Instructions\n\n");
    if (have_ci) { putn(b, ci.p, ci.n); puts_(b, "\n\n"); }
    else if (think) puts_(b, SMOL_THINK_DEFAULT);
    else puts_(b, "You are a helpful AI assistant named SmolLM, trained by Hugging Face.\n\n");
    free(ci.p);
    puts_(b, "<|im_end|>\n");
    for (int i = 0; i < c->n; i++) {
        const st_chat_msg *m = &c->m[i];
        if (eq(m->role, "user")) chatml_turn(b, "user", m->content);
        else if (eq(m->role, "assistant")) {
            puts_(b, "<|im_start|>assistant\n");
            if (!think) puts_(b, "<think>\n\n</think>\n");
            const char *s = m->content;
            while (*s == '\n') s++; /* content.lstrip("\n") */
            puts_(b, s);
            puts_(b, "<|im_end|>\n");
        } else if (eq(m->role, "tool")) chatml_turn(b, "user", m->content);
    }
    if (c->p->add_generation_prompt) {
        puts_(b, "<|im_start|>assistant\n");
        if (!think) puts_(b, "<think>\n\n</think>\n");
    }
    return ST_OK;
}

static void llama3_turn(sbuf *b, const char *role, span content) {
    puts_(b, "<|start_header_id|>");
    puts_(b, role);
    puts_(b, "<|end_header_id|>\n\n");
    put_span(b, content);
    puts_(b, "<|eot_id|>");
}

static st_status r_llama3(rctx *c, sbuf *b, bool always_header) {
    for (int i = 0; i < c->n; i++) {
        if (i == 0) puts_(b, c->bos);
        llama3_turn(b, c->m[i].role, strip(sp(c->m[i].content)));
    }
    if (always_header || c->p->add_generation_prompt) puts_(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return ST_OK;
}

static void today(const st_chat_params *p, int *y, int *mo, int *d) {
    if (p->year > 0 && p->month >= 1 && p->month <= 12 && p->day >= 1 && p->day <= 31) {
        *y = p->year; *mo = p->month; *d = p->day;
        return;
    }
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    *y = tm.tm_year + 1900; *mo = tm.tm_mon + 1; *d = tm.tm_mday;
}

static st_status r_llama31(rctx *c, sbuf *b, bool clock) {
    char date[32];
    if (clock) { /* strftime_now("%d %b %Y") */
        static const char *const MON[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        int y, mo, d;
        today(c->p, &y, &mo, &d);
        snprintf(date, sizeof date, "%02d %s %04d", d, MON[mo - 1], y);
    } else snprintf(date, sizeof date, "26 Jul 2024"); /* the template's date_string default */
    int s = 0;
    span sys = sp("");
    if (eq(c->m[0].role, "system")) { sys = strip(sp(c->m[0].content)); s = 1; }
    puts_(b, c->bos);
    puts_(b, "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: ");
    puts_(b, date);
    puts_(b, "\n\n");
    put_span(b, sys);
    puts_(b, "<|eot_id|>");
    for (int i = s; i < c->n; i++) {
        const st_chat_msg *m = &c->m[i];
        if (eq(m->role, "ipython") || eq(m->role, "tool")) {
            /* a string "is iterable", so the template writes it with |tojson */
            puts_(b, "<|start_header_id|>ipython<|end_header_id|>\n\n");
            put_json_str(b, m->content);
            puts_(b, "<|eot_id|>");
        } else llama3_turn(b, m->role, strip(sp(m->content)));
    }
    if (c->p->add_generation_prompt) puts_(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return ST_OK;
}

static st_status r_zephyr(rctx *c, sbuf *b) {
    for (int i = 0; i < c->n; i++) {
        const st_chat_msg *m = &c->m[i];
        const char *tag = eq(m->role, "user") ? "<|user|>\n"
                          : eq(m->role, "system") ? "<|system|>\n"
                          : eq(m->role, "assistant") ? "<|assistant|>\n" : NULL;
        if (tag) {
            puts_(b, tag);
            puts_(b, m->content);
            puts_(b, c->eos);
            puts_(b, "\n");
        }
    }
    if (c->p->add_generation_prompt) puts_(b, "<|assistant|>\n");
    return ST_OK;
}

static st_status r_phi3(rctx *c, sbuf *b) {
    puts_(b, c->bos);
    for (int i = 0; i < c->n; i++) {
        const st_chat_msg *m = &c->m[i];
        if (eq(m->role, "user")) {
            puts_(b, "<|user|>\n");
            puts_(b, m->content);
            puts_(b, "<|end|>\n<|assistant|>\n");
        } else if (eq(m->role, "assistant")) {
            puts_(b, m->content);
            puts_(b, "<|end|>\n");
        } /* the template has no branch for other roles: a system message is dropped */
    }
    return ST_OK;
}

static st_status r_phi3_system(rctx *c, sbuf *b, bool skip_empty_system) {
    for (int i = 0; i < c->n; i++) {
        const st_chat_msg *m = &c->m[i];
        const char *tag = NULL;
        if (eq(m->role, "system")) { if (!skip_empty_system || m->content[0]) tag = "<|system|>\n"; }
        else if (eq(m->role, "user")) tag = "<|user|>\n";
        else if (eq(m->role, "assistant")) tag = "<|assistant|>\n";
        if (tag) {
            puts_(b, tag);
            puts_(b, m->content);
            puts_(b, "<|end|>\n");
        }
    }
    if (c->p->add_generation_prompt) puts_(b, "<|assistant|>\n");
    else puts_(b, c->eos);
    return ST_OK;
}

static st_status r_gemma(rctx *c, sbuf *b, bool bos) {
    if (bos) puts_(b, c->bos);
    if (eq(c->m[0].role, "system"))
        return st_error_set(c->err, ST_ERR_ARG, "%s template: system role not supported", c->fam);
    for (int i = 0; i < c->n; i++) {
        const st_chat_msg *m = &c->m[i];
        if (breaks_alternation(m, i)) return refuse_alternate(c, i, NULL);
        puts_(b, "<start_of_turn>");
        puts_(b, eq(m->role, "assistant") ? "model" : m->role);
        puts_(b, "\n");
        put_span(b, strip(sp(m->content)));
        puts_(b, "<end_of_turn>\n");
    }
    if (c->p->add_generation_prompt) puts_(b, "<start_of_turn>model\n");
    return ST_OK;
}

static st_status r_deepseek_coder(rctx *c, sbuf *b) {
    bool found = false;
    for (int i = 0; i < c->n; i++) found |= eq(c->m[i].role, "system");
    puts_(b, c->bos);
    if (!found)
        puts_(b, "You are an AI programming assistant, utilizing the Deepseek Coder model, developed by Deepseek "
                 "Company, and you only answer questions related to computer science. For politically sensitive "
                 "questions, security and privacy issues, and other non-computer science questions, you will refuse "
                 "to answer\n");
    for (int i = 0; i < c->n; i++) {
        const st_chat_msg *m = &c->m[i];
        if (eq(m->role, "system")) puts_(b, m->content);
        else if (eq(m->role, "user")) {
            puts_(b, "### Instruction:\n");
            puts_(b, m->content);
            puts_(b, "\n");
        } else { /* every other role is written as a response */
            puts_(b, "### Response:\n");
            puts_(b, m->content);
            puts_(b, "\n<|EOT|>\n");
        }
    }
    if (c->p->add_generation_prompt) puts_(b, "### Response:\n");
    return ST_OK;
}

#define DS_USER "<\xef\xbd\x9cUser\xef\xbd\x9c>"                                                /* <｜User｜> */
#define DS_ASSISTANT "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>"                                   /* <｜Assistant｜> */
#define DS_EOS "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"             /* <｜end▁of▁sentence｜> */
#define DS_TOOL_OUTPUTS_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81outputs\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define DS_TOOL_OUTPUTS_END "<\xef\xbd\x9ctool\xe2\x96\x81outputs\xe2\x96\x81" "end\xef\xbd\x9c>"
#define DS_TOOL_OUTPUT_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81output\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define DS_TOOL_OUTPUT_END "<\xef\xbd\x9ctool\xe2\x96\x81output\xe2\x96\x81" "end\xef\xbd\x9c>"

static st_status r_deepseek_r1(rctx *c, sbuf *b) {
    const char *sys = "";
    for (int i = 0; i < c->n; i++)
        if (eq(c->m[i].role, "system")) sys = c->m[i].content; /* the last one wins */
    puts_(b, c->bos);
    puts_(b, sys);
    bool is_tool = false, output_first = true;
    for (int i = 0; i < c->n; i++) {
        const st_chat_msg *m = &c->m[i];
        if (eq(m->role, "user")) {
            is_tool = false;
            puts_(b, DS_USER);
            puts_(b, m->content);
        } else if (eq(m->role, "assistant")) {
            if (is_tool) {
                puts_(b, DS_TOOL_OUTPUTS_END);
                puts_(b, m->content);
                puts_(b, DS_EOS);
                is_tool = false;
            } else {
                /* content.split('</think>')[-1] */
                const char *s = m->content, *q;
                while ((q = strstr(s, "</think>")) != NULL) s = q + 8;
                puts_(b, DS_ASSISTANT);
                puts_(b, s);
                puts_(b, DS_EOS);
            }
        } else if (eq(m->role, "tool")) {
            is_tool = true;
            if (output_first) {
                puts_(b, DS_TOOL_OUTPUTS_BEGIN DS_TOOL_OUTPUT_BEGIN);
                output_first = false;
            } else puts_(b, "\n" DS_TOOL_OUTPUT_BEGIN);
            puts_(b, m->content);
            puts_(b, DS_TOOL_OUTPUT_END);
        }
    }
    if (is_tool) puts_(b, DS_TOOL_OUTPUTS_END);
    if (c->p->add_generation_prompt && !is_tool) puts_(b, DS_ASSISTANT "<think>\n");
    return ST_OK;
}

static st_status r_vicuna(rctx *c, sbuf *b, bool orca) {
    for (int i = 0; i < c->n; i++) {
        const st_chat_msg *m = &c->m[i];
        if (eq(m->role, "system")) {
            if (orca) puts_(b, "SYSTEM: ");
            puts_(b, m->content);
            puts_(b, orca ? "\n" : "\n\n");
        } else if (eq(m->role, "user")) {
            puts_(b, "USER: ");
            puts_(b, m->content);
            puts_(b, "\n");
        } else {
            puts_(b, "ASSISTANT: ");
            puts_(b, m->content);
            puts_(b, "</s>\n");
        }
    }
    if (c->p->add_generation_prompt) puts_(b, "ASSISTANT:");
    return ST_OK;
}

/* Python's str.title() for the role name (ASCII letters; other bytes are
 * copied and, when non-ASCII, count as letters) */
static void put_title(sbuf *b, const char *s) {
    bool prev_letter = false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char ch = (char)*p;
        bool letter = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z');
        if (letter) ch = prev_letter ? (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p)
                                     : (char)((*p >= 'a' && *p <= 'z') ? *p - 32 : *p);
        prev_letter = letter || *p >= 0x80;
        putn(b, &ch, 1);
    }
}

static st_status r_openchat(rctx *c, sbuf *b) {
    puts_(b, c->bos);
    for (int i = 0; i < c->n; i++) {
        puts_(b, "GPT4 Correct ");
        put_title(b, c->m[i].role);
        puts_(b, ": ");
        puts_(b, c->m[i].content);
        puts_(b, "<|end_of_turn|>");
    }
    if (c->p->add_generation_prompt) puts_(b, "GPT4 Correct Assistant:");
    return ST_OK;
}

/* ------------------------------------------------------------------ */

st_status st_chat_render(st_chat_family f, const st_chat_msg *msgs, int n, const st_chat_params *pp, char **out,
                         size_t *out_len, st_error *err) {
    if (!out) return st_error_set(err, ST_ERR_ARG, "chat: no output pointer");
    *out = NULL;
    if (out_len) *out_len = 0;
    if (f <= ST_CHAT_UNKNOWN || f >= ST_CHAT_COUNT) f = ST_CHAT_PLAIN;
    st_chat_params defp;
    if (!pp) { st_chat_params_default(&defp); pp = &defp; }
    if (n <= 0 || !msgs) return st_error_set(err, ST_ERR_ARG, "chat: no messages to render");
    for (int i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content)
            return st_error_set(err, ST_ERR_ARG, "chat: message %d has no %s", i + 1, msgs[i].role ? "content" : "role");

    /* fold a leading system message into the first user turn for templates
     * without a system role: system.strip() + "\n\n" + user content */
    st_chat_msg *folded = NULL;
    char *fold_text = NULL;
    if (st_chat_refuses_system(f) && eq(msgs[0].role, "system")) {
        if (pp->no_fold)
            return st_error_set(err, ST_ERR_ARG, "%s template: system role not supported (and folding it into the first user message was turned off)",
                                NAMES[f]);
        if (n < 2 || !eq(msgs[1].role, "user"))
            return st_error_set(err, ST_ERR_ARG,
                                "%s template: system role not supported, and there is no user message right after the system message to fold it into",
                                NAMES[f]);
        sbuf t = {0};
        put_span(&t, strip(sp(msgs[0].content)));
        puts_(&t, "\n\n");
        puts_(&t, msgs[1].content);
        folded = malloc((size_t)(n - 1) * sizeof *folded);
        if (t.oom || !t.p || !folded) { free(t.p); free(folded); return st_error_set(err, ST_ERR_NOMEM, "chat: out of memory"); }
        fold_text = t.p;
        memcpy(folded, msgs + 1, (size_t)(n - 1) * sizeof *folded);
        folded[0].content = fold_text;
        msgs = folded;
        n--;
    }

    rctx c = {msgs, n, pp, pp->bos_token ? pp->bos_token : "", pp->eos_token ? pp->eos_token : "", NAMES[f], err};
    sbuf b = {0};
    st_status st;
    switch (f) {
    case ST_CHAT_LLAMA2: st = r_llama2(&c, &b); break;
    case ST_CHAT_MISTRAL_V02: st = r_mistral_v02(&c, &b); break;
    case ST_CHAT_MISTRAL_V1: st = r_mistral_v1(&c, &b); break;
    case ST_CHAT_MISTRAL_V3: st = r_mistral_v3(&c, &b, false); break;
    case ST_CHAT_MISTRAL_NEMO: st = r_mistral_v3(&c, &b, true); break;
    case ST_CHAT_CHATML: st = r_chatml(&c, &b); break;
    case ST_CHAT_QWEN25: st = r_qwen25(&c, &b); break;
    case ST_CHAT_SMOLLM3: st = r_smollm3(&c, &b); break;
    case ST_CHAT_LLAMA3: st = r_llama3(&c, &b, true); break;
    case ST_CHAT_LLAMA3_GENPROMPT: st = r_llama3(&c, &b, false); break;
    case ST_CHAT_LLAMA31: st = r_llama31(&c, &b, false); break;
    case ST_CHAT_LLAMA32: st = r_llama31(&c, &b, true); break;
    case ST_CHAT_ZEPHYR: st = r_zephyr(&c, &b); break;
    case ST_CHAT_PHI3: st = r_phi3(&c, &b); break;
    case ST_CHAT_PHI3_SYSTEM: st = r_phi3_system(&c, &b, false); break;
    case ST_CHAT_PHI35: st = r_phi3_system(&c, &b, true); break;
    case ST_CHAT_GEMMA: st = r_gemma(&c, &b, false); break;
    case ST_CHAT_GEMMA2: st = r_gemma(&c, &b, true); break;
    case ST_CHAT_DEEPSEEK_CODER: st = r_deepseek_coder(&c, &b); break;
    case ST_CHAT_DEEPSEEK_R1: st = r_deepseek_r1(&c, &b); break;
    case ST_CHAT_VICUNA: st = r_vicuna(&c, &b, false); break;
    case ST_CHAT_VICUNA_ORCA: st = r_vicuna(&c, &b, true); break;
    case ST_CHAT_OPENCHAT: st = r_openchat(&c, &b); break;
    default: st = r_plain(&c, &b); break;
    }
    free(folded);
    free(fold_text);
    if (!st && b.oom) st = st_error_set(err, ST_ERR_NOMEM, "chat: out of memory");
    if (!st && !b.p) { /* an empty render */
        b.p = calloc(1, 1);
        if (!b.p) st = st_error_set(err, ST_ERR_NOMEM, "chat: out of memory");
    }
    if (st) { free(b.p); return st; }
    *out = b.p;
    if (out_len) *out_len = b.n;
    return ST_OK;
}

/* ------------------------------------------------------------------ */
/* models                                                              */

static char *dup_n(const char *s, size_t n) {
    char *r = malloc(n + 1);
    if (!r) return NULL;
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

char *st_chat_gguf_template(const st_gguf *g) {
    st_gguf_str s;
    if (!g || !st_gguf_get_str(g, "tokenizer.chat_template", &s)) return NULL;
    return dup_n(s.ptr, (size_t)s.len);
}

char *st_chat_gguf_token_text(const st_gguf *g, const char *id_key) {
    int64_t id;
    if (!g || !id_key || !st_gguf_get_i64(g, id_key, &id) || id < 0) return NULL;
    int64_t k = st_gguf_find_key(g, "tokenizer.ggml.tokens");
    st_gguf_vtype et;
    uint64_t n;
    if (k < 0 || !st_gguf_get_arr(g, k, &et, &n) || et != ST_GGUF_STRING || (uint64_t)id >= n) return NULL;
    st_gguf_str s = st_gguf_arr_str(g, k, (uint64_t)id);
    return dup_n(s.ptr, (size_t)s.len);
}

st_status st_chat_model_prompt(const struct st_model *m, const char *name, const char *system, const char *user,
                               st_chat_prompt *out, st_error *err) {
    memset(out, 0, sizeof *out);
    if (!m || !user) return st_error_set(err, ST_ERR_ARG, "chat: no model or no user message");
    st_chat_family f;
    if (name) {
        f = st_chat_family_by_name(name);
        if (f == ST_CHAT_UNKNOWN)
            return st_error_set(err, ST_ERR_ARG, "unknown chat template '%s' (known: %s)", name, st_chat_family_list());
    } else {
        char *tmpl = st_chat_gguf_template(m->gguf);
        f = st_chat_detect(tmpl);
        if (f == ST_CHAT_UNKNOWN) {
            out->fallback = true;
            snprintf(out->notice, sizeof out->notice,
                     tmpl ? "the model's chat template is of no family known here; using the plain \"User:/Assistant:\" format (--chat-template NAME to choose one)"
                          : "the model has no chat template; using the plain \"User:/Assistant:\" format (--chat-template NAME to choose one)");
            f = ST_CHAT_PLAIN;
        }
        free(tmpl);
    }
    const st_tokenizer *tok = st_model_tokenizer(m);
    int32_t bos = tok ? st_tok_bos(tok) : -1, eos = tok ? st_tok_eos(tok) : -1;
    st_chat_params p;
    st_chat_params_default(&p);
    p.add_generation_prompt = true;
    p.bos_token = bos >= 0 ? st_tok_piece(tok, bos) : NULL;
    p.eos_token = eos >= 0 ? st_tok_piece(tok, eos) : NULL;
    st_chat_msg msgs[2];
    int n = 0;
    if (system) msgs[n++] = (st_chat_msg){"system", system};
    msgs[n++] = (st_chat_msg){"user", user};
    st_status st = st_chat_render(f, msgs, n, &p, &out->text, &out->len, err);
    if (st) return st;
    out->family = f;
    /* the template may write BOS itself: do not add a second one */
    size_t bl = p.bos_token ? strlen(p.bos_token) : 0;
    out->add_special = !(bl && out->len >= bl && !memcmp(out->text, p.bos_token, bl));
    return ST_OK;
}

void st_chat_prompt_free(st_chat_prompt *p) {
    if (!p) return;
    free(p->text);
    p->text = NULL;
}
