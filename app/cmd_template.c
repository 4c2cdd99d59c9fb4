/* cmd_template.c — `strata template`: render a conversation with a model's
 * chat template (or a template file) and print exactly the rendered prompt.
 * The conversation is a JSON list of {role, content} objects, read by the
 * small reader below (the strata binary does not link a JSON library). */
#include "app.h"
#include "args.h"
#include "strata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
    printf("usage: strata template (-m MODEL | --template-file FILE) --messages CONV.json [options]\n"
           "\n"
           "Renders the conversation with the chat template and prints the prompt exactly (nothing\n"
           "added: no newline at the end). CONV.json is a list of {\"role\": ..., \"content\": ...}\n"
           "objects (or an object whose \"messages\" member is such a list); '-' reads stdin.\n"
           "\n"
           "  -m, --model FILE          GGUF whose tokenizer.chat_template and BOS/EOS tokens to use\n"
           "      --template-file FILE  the template's Jinja text from a file (BOS/EOS empty unless given)\n"
           "      --messages FILE       the conversation\n"
           "      --bos S               the bos_token text (default: the model's)\n"
           "      --eos S               the eos_token text (default: the model's)\n"
           "      --add-generation-prompt  end with the header of the assistant's turn\n"
           "      --chat-template NAME  use the named family instead of detecting it\n"
           "      --no-fold             refuse a system message the template has no role for\n"
           "                            (default: fold it into the first user message)\n"
           "      --date YYYY-MM-DD     today's date for templates that print it (default: now)\n"
           "      --family              print the detected family's name and exit\n"
           "  -h, --help                this text\n"
           "\n"
           "families: %s\n",
           st_chat_family_list());
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
        if (cap - n - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
    }
    if (f != stdin) fclose(f);
    if (buf) { buf[n] = 0; if (len) *len = n; }
    return buf;
}

/* ---- a JSON reader for a list of {role, content} -------------------- */

typedef struct {
    const char *p, *end;
    char err[160];
} jp;

static void jws(jp *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static bool jfail(jp *j, const char *what) {
    if (!j->err[0]) snprintf(j->err, sizeof j->err, "%s", what);
    return false;
}

static void put_utf8(char **o, unsigned cp) {
    unsigned char *q = (unsigned char *)*o;
    if (cp < 0x80) *q++ = (unsigned char)cp;
    else if (cp < 0x800) { *q++ = (unsigned char)(0xc0 | cp >> 6); *q++ = (unsigned char)(0x80 | (cp & 0x3f)); }
    else if (cp < 0x10000) {
        *q++ = (unsigned char)(0xe0 | cp >> 12);
        *q++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        *q++ = (unsigned char)(0x80 | (cp & 0x3f));
    } else {
        *q++ = (unsigned char)(0xf0 | cp >> 18);
        *q++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
        *q++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        *q++ = (unsigned char)(0x80 | (cp & 0x3f));
    }
    *o = (char *)q;
}

static bool hex4(jp *j, unsigned *out) {
    if (j->end - j->p < 4) return jfail(j, "short \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = j->p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return jfail(j, "bad \\u escape");
    }
    j->p += 4;
    *out = v;
    return true;
}

/* A string at j->p; *out gets a malloc'd decoded copy when out != NULL. */
static bool jstring(jp *j, char **out) {
    if (j->p >= j->end || *j->p != '"') return jfail(j, "expected a string");
    j->p++;
    const char *s = j->p;
    while (j->p < j->end && *j->p != '"') j->p += (*j->p == '\\' && j->p + 1 < j->end) ? 2 : 1;
    if (j->p >= j->end) return jfail(j, "unterminated string");
    const char *e = j->p;
    j->p = s;
    char *buf = out ? malloc((size_t)(e - s) + 1) : NULL, *o = buf;
    if (out && !buf) return jfail(j, "out of memory");
    while (j->p < e) {
        char c = *j->p++;
        if ((unsigned char)c < 0x20) { free(buf); return jfail(j, "control character in a string"); }
        if (c != '\\') { if (o) *o++ = c; continue; }
        c = *j->p++;
        unsigned cp;
        switch (c) {
        case '"': case '\\': case '/': cp = (unsigned char)c; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (!hex4(j, &cp)) { free(buf); return false; }
            if (cp >= 0xd800 && cp <= 0xdbff) { /* a surrogate pair */
                unsigned lo;
                if (e - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u') { free(buf); return jfail(j, "lone surrogate"); }
                j->p += 2;
                if (!hex4(j, &lo)) { free(buf); return false; }
                if (lo < 0xdc00 || lo > 0xdfff) { free(buf); return jfail(j, "bad surrogate pair"); }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp <= 0xdfff) { free(buf); return jfail(j, "lone surrogate"); }
            if (cp == 0) { free(buf); return jfail(j, "\\u0000 in a string is not supported"); }
            break;
        default: free(buf); return jfail(j, "bad escape in a string");
        }
        if (o) put_utf8(&o, cp); /* an escape takes at least as many bytes as its UTF-8 */
    }
    j->p = e + 1;
    if (out) { *o = 0; *out = buf; }
    return true;
}

static bool jskip(jp *j, int depth);

static bool jskip_container(jp *j, int depth, char close, bool keys) {
    j->p++;
    jws(j);
    if (j->p < j->end && *j->p == close) { j->p++; return true; }
    for (;;) {
        if (keys) {
            if (!jstring(j, NULL)) return false;
            jws(j);
            if (j->p >= j->end || *j->p != ':') return jfail(j, "expected ':'");
            j->p++;
        }
        if (!jskip(j, depth + 1)) return false;
        jws(j);
        if (j->p < j->end && *j->p == ',') { j->p++; jws(j); continue; }
        if (j->p < j->end && *j->p == close) { j->p++; return true; }
        return jfail(j, "expected ',' or the end of a list/object");
    }
}

/* any value, discarded */
static bool jskip(jp *j, int depth) {
    jws(j);
    if (depth > 64) return jfail(j, "nested too deeply");
    if (j->p >= j->end) return jfail(j, "unexpected end");
    char c = *j->p;
    if (c == '"') return jstring(j, NULL);
    if (c == '[') return jskip_container(j, depth, ']', false);
    if (c == '{') return jskip_container(j, depth, '}', true);
    const char *s = j->p;
    while (j->p < j->end && (strchr("+-.eE", *j->p) || (*j->p >= '0' && *j->p <= '9') || (*j->p >= 'a' && *j->p <= 'z'))) j->p++;
    size_t n = (size_t)(j->p - s);
    if (n == 0) return jfail(j, "unexpected character");
    if ((n == 4 && (!memcmp(s, "true", 4) || !memcmp(s, "null", 4))) || (n == 5 && !memcmp(s, "false", 5))) return true;
    if (*s == '-' || (*s >= '0' && *s <= '9')) return true;
    return jfail(j, "bad literal");
}

typedef struct {
    st_chat_msg *m;
    int n, cap;
} msg_list;

static void free_msgs(msg_list *l) {
    for (int i = 0; i < l->n; i++) { free((char *)l->m[i].role); free((char *)l->m[i].content); }
    free(l->m);
}

static bool jmessages(jp *j, msg_list *l) {
    jws(j);
    if (j->p >= j->end || *j->p != '[') return jfail(j, "expected a list of messages");
    j->p++;
    jws(j);
    if (j->p < j->end && *j->p == ']') { j->p++; return true; }
    for (;;) {
        jws(j);
        if (j->p >= j->end || *j->p != '{') return jfail(j, "expected a message object {\"role\", \"content\"}");
        j->p++;
        char *role = NULL, *content = NULL;
        jws(j);
        if (j->p < j->end && *j->p == '}') j->p++;
        else for (;;) {
            char *key = NULL;
            jws(j);
            if (!jstring(j, &key)) goto bad;
            jws(j);
            if (j->p >= j->end || *j->p != ':') { free(key); jfail(j, "expected ':'"); goto bad; }
            j->p++;
            jws(j);
            char **slot = !strcmp(key, "role") ? &role : !strcmp(key, "content") ? &content : NULL;
            free(key);
            if (slot) {
                free(*slot);
                *slot = NULL;
                if (j->p < j->end && *j->p != '"') { jfail(j, "\"role\" and \"content\" must be strings"); goto bad; }
                if (!jstring(j, slot)) goto bad;
            } else if (!jskip(j, 1)) goto bad;
            jws(j);
            if (j->p < j->end && *j->p == ',') { j->p++; continue; }
            if (j->p < j->end && *j->p == '}') { j->p++; break; }
            jfail(j, "expected ',' or '}' in a message");
            goto bad;
        }
        if (!role || !content) { jfail(j, "a message lacks \"role\" or \"content\""); goto bad; }
        if (l->n == l->cap) {
            int cap = l->cap ? l->cap * 2 : 8;
            st_chat_msg *nm = realloc(l->m, (size_t)cap * sizeof *nm);
            if (!nm) { jfail(j, "out of memory"); goto bad; }
            l->m = nm;
            l->cap = cap;
        }
        l->m[l->n++] = (st_chat_msg){role, content};
        jws(j);
        if (j->p < j->end && *j->p == ',') { j->p++; continue; }
        if (j->p < j->end && *j->p == ']') { j->p++; return true; }
        return jfail(j, "expected ',' or ']' after a message");
    bad:
        free(role);
        free(content);
        return false;
    }
}

/* a list, or an object with a "messages" list */
static bool parse_conversation(const char *text, size_t len, msg_list *l, char *err, size_t cap) {
    jp j = {text, text + len, {0}};
    bool ok;
    jws(&j);
    if (j.p < j.end && *j.p == '{') {
        ok = false;
        bool found = false;
        j.p++;
        jws(&j);
        if (j.p < j.end && *j.p == '}') { j.p++; ok = true; }
        else for (;;) {
            char *key = NULL;
            jws(&j);
            if (!jstring(&j, &key)) break;
            jws(&j);
            if (j.p >= j.end || *j.p != ':') { free(key); jfail(&j, "expected ':'"); break; }
            j.p++;
            bool is_msgs = !strcmp(key, "messages") && !found;
            free(key);
            if (is_msgs) { if (!jmessages(&j, l)) break; found = true; }
            else if (!jskip(&j, 1)) break;
            jws(&j);
            if (j.p < j.end && *j.p == ',') { j.p++; continue; }
            if (j.p < j.end && *j.p == '}') { j.p++; ok = true; break; }
            jfail(&j, "expected ',' or '}'");
            break;
        }
        if (ok && !found) ok = jfail(&j, "the object has no \"messages\" list");
    } else ok = jmessages(&j, l);
    if (ok) {
        jws(&j);
        if (j.p != j.end) ok = jfail(&j, "trailing text after the conversation");
    }
    if (!ok) snprintf(err, cap, "%s at byte %ld", j.err, (long)(j.p - text));
    return ok;
}

/* ------------------------------------------------------------------ */

int cmd_template(int argc, char **argv) {
    const char *model = NULL, *tfile = NULL, *mfile = NULL, *bos = NULL, *eos = NULL, *name = NULL, *date = NULL;
    bool gen = false, no_fold = false, family_only = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define VAL(dst) do { if (!((dst) = arg_value(argc, argv, &i, "template"))) return 2; } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { help(); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) VAL(model);
        else if (!strcmp(a, "--template-file")) VAL(tfile);
        else if (!strcmp(a, "--messages")) VAL(mfile);
        else if (!strcmp(a, "--bos")) VAL(bos);
        else if (!strcmp(a, "--eos")) VAL(eos);
        else if (!strcmp(a, "--chat-template")) VAL(name);
        else if (!strcmp(a, "--date")) VAL(date);
        else if (!strcmp(a, "--add-generation-prompt")) gen = true;
        else if (!strcmp(a, "--no-fold")) no_fold = true;
        else if (!strcmp(a, "--family")) family_only = true;
        else { fprintf(stderr, "strata template: unknown option '%s' (see strata template --help)\n", a); return 2; }
#undef VAL
    }
    if ((model != NULL) == (tfile != NULL) && !name) {
        fprintf(stderr, "strata template: give one of -m MODEL or --template-file FILE (or --chat-template NAME)\n");
        return 2;
    }
    if (model && tfile) { fprintf(stderr, "strata template: -m and --template-file exclude each other\n"); return 2; }
    if (!mfile && !family_only) { fprintf(stderr, "strata template: no conversation given (--messages CONV.json)\n"); return 2; }
    st_chat_params p;
    st_chat_params_default(&p);
    p.add_generation_prompt = gen;
    p.no_fold = no_fold;
    if (date) {
        char tail;
        if (sscanf(date, "%d-%d-%d%c", &p.year, &p.month, &p.day, &tail) != 3 || p.year < 1 || p.month < 1 ||
            p.month > 12 || p.day < 1 || p.day > 31) {
            fprintf(stderr, "strata template: --date expects YYYY-MM-DD, got '%s'\n", date);
            return 2;
        }
    }

    st_error err = {0};
    st_gguf *g = NULL;
    char *tmpl = NULL, *mbos = NULL, *meos = NULL, *conv = NULL, *out = NULL;
    msg_list l = {0};
    int rc = 1;
    if (model) {
        if (st_gguf_open(model, &g, &err)) { fprintf(stderr, "strata template: %s\n", err.msg); goto done; }
        tmpl = st_chat_gguf_template(g);
        mbos = st_chat_gguf_token_text(g, "tokenizer.ggml.bos_token_id");
        meos = st_chat_gguf_token_text(g, "tokenizer.ggml.eos_token_id");
    } else if (tfile && !(tmpl = read_all(tfile, NULL))) {
        fprintf(stderr, "strata template: cannot read template file '%s'\n", tfile);
        goto done;
    }
    p.bos_token = bos ? bos : mbos;
    p.eos_token = eos ? eos : meos;

    st_chat_family f;
    if (name) {
        if ((f = st_chat_family_by_name(name)) == ST_CHAT_UNKNOWN) {
            fprintf(stderr, "strata template: unknown chat template '%s' (known: %s)\n", name, st_chat_family_list());
            rc = 2;
            goto done;
        }
    } else if ((f = st_chat_detect(tmpl)) == ST_CHAT_UNKNOWN) {
        fprintf(stderr, "strata template: %s; using the plain \"User:/Assistant:\" fallback (--chat-template NAME to choose a family)\n",
                tmpl && *tmpl ? "the chat template is of no family known here" : model ? "the model has no chat template" : "the template file is empty");
    }
    if (family_only) {
        printf("%s\n", f == ST_CHAT_UNKNOWN ? "unknown" : st_chat_family_name(f));
        rc = 0;
        goto done;
    }

    size_t clen = 0;
    if (!(conv = read_all(mfile, &clen))) { fprintf(stderr, "strata template: cannot read '%s'\n", mfile); goto done; }
    char jerr[256];
    if (!parse_conversation(conv, clen, &l, jerr, sizeof jerr)) {
        fprintf(stderr, "strata template: %s: %s\n", mfile, jerr);
        goto done;
    }
    size_t len = 0;
    if (st_chat_render(f, l.m, l.n, &p, &out, &len, &err)) { fprintf(stderr, "strata template: %s\n", err.msg); goto done; }
    if (fwrite(out, 1, len, stdout) != len || fflush(stdout)) { fprintf(stderr, "strata template: write error\n"); goto done; }
    rc = 0;
done:
    free(out);
    free_msgs(&l);
    free(conv);
    free(tmpl);
    free(mbos);
    free(meos);
    st_gguf_close(g);
    return rc;
}
