/* history.c — conversations, messages, search and export. */
#include "history.h"
#include "db_internal.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------
 * writing */
static st_status insert_message(st_db *db, const st_db_message *m, int64_t conv, int64_t now, int64_t *id,
                                st_error *err) {
    if (!m->role || !m->content) return st_error_set(err, ST_ERR_ARG, "a message needs a role and content");
    sqlite3_stmt *st;
    st_status rc = dbi_prepare(db,
                               "INSERT INTO messages (conversation_id, role, content, n_tokens, created, stopped, "
                               "prompt_tps, decode_tps, ttft_ms, backend, n_prompt, ready_rate) "
                               "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                               &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, conv);
    sqlite3_bind_text(st, 2, m->role, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, m->content, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 4, m->n_tokens);
    sqlite3_bind_int64(st, 5, m->created_ms ? m->created_ms : now);
    sqlite3_bind_int(st, 6, m->stopped);
    if (m->has_stats) {
        sqlite3_bind_double(st, 7, m->prompt_tps);
        sqlite3_bind_double(st, 8, m->decode_tps);
        sqlite3_bind_double(st, 9, m->ttft_ms);
        dbi_bind_text(st, 10, m->backend);
        sqlite3_bind_int(st, 11, m->n_prompt);
        if (m->ready_rate >= 0) sqlite3_bind_double(st, 12, m->ready_rate);
    }
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = dbi_fail(db, err, "saving a message");
        if (rc == ST_ERR_ARG) /* CHECK (role) */
            st_error_set(err, ST_ERR_ARG, "database '%s': cannot save a message with role '%s'", db->path, m->role);
    } else if (id) {
        *id = sqlite3_last_insert_rowid(db->h);
    }
    sqlite3_finalize(st);
    return rc;
}

st_status st_db_conv_create(st_db *db, const st_db_conversation *c, const st_db_message *msgs, int n_msgs,
                            int64_t *id, st_error *err) {
    const int64_t now = st_db_now_ms();
    st_status rc = dbi_begin(db, err);
    if (rc) return rc;
    sqlite3_stmt *st;
    if ((rc = dbi_prepare(db,
                          "INSERT INTO conversations (title, model_name, model_file, model_hash, system_prompt, "
                          "sampling, created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                          &st, err)))
        goto fail;
    sqlite3_bind_text(st, 1, c->title ? c->title : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, c->model_name ? c->model_name : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, c->model_file ? c->model_file : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, c->model_hash ? c->model_hash : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, c->system_prompt ? c->system_prompt : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 6, c->sampling && *c->sampling ? c->sampling : "{}", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 7, c->created_ms ? c->created_ms : now);
    sqlite3_bind_int64(st, 8, c->updated_ms ? c->updated_ms : now);
    int s = sqlite3_step(st);
    sqlite3_finalize(st);
    if (s != SQLITE_DONE) { rc = dbi_fail(db, err, "saving a conversation"); goto fail; }
    int64_t cid = sqlite3_last_insert_rowid(db->h);
    for (int i = 0; i < n_msgs; i++)
        if ((rc = insert_message(db, &msgs[i], cid, now, NULL, err))) goto fail;
    if ((rc = dbi_commit(db, err))) return rc;
    if (id) *id = cid;
    return ST_OK;
fail:
    dbi_rollback(db);
    return rc;
}

st_status st_db_message_add(st_db *db, const st_db_message *m, int64_t *id, st_error *err) {
    const int64_t now = st_db_now_ms();
    st_status rc = dbi_begin(db, err);
    if (rc) return rc;
    sqlite3_stmt *st;
    if ((rc = dbi_prepare(db, "UPDATE conversations SET updated = max(updated, ?1) WHERE id = ?2", &st, err))) goto fail;
    sqlite3_bind_int64(st, 1, m->created_ms ? m->created_ms : now);
    sqlite3_bind_int64(st, 2, m->conversation_id);
    int s = sqlite3_step(st);
    sqlite3_finalize(st);
    if (s != SQLITE_DONE) { rc = dbi_fail(db, err, "saving a message"); goto fail; }
    if (sqlite3_changes(db->h) != 1) {
        rc = st_error_set(err, ST_ERR_ARG, "database '%s': no conversation %lld", db->path,
                          (long long)m->conversation_id);
        goto fail;
    }
    if ((rc = insert_message(db, m, m->conversation_id, now, id, err))) goto fail;
    return dbi_commit(db, err);
fail:
    dbi_rollback(db);
    return rc;
}

st_status st_db_conv_delete(st_db *db, int64_t id, int *n_messages, st_error *err) {
    st_status rc = dbi_begin(db, err);
    if (rc) return rc;
    sqlite3_stmt *st;
    int n = 0;
    if ((rc = dbi_prepare(db, "SELECT count(*) FROM messages WHERE conversation_id = ?1", &st, err))) goto fail;
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    /* the messages go by ON DELETE CASCADE, their index rows by trigger */
    if ((rc = dbi_prepare(db, "DELETE FROM conversations WHERE id = ?1", &st, err))) goto fail;
    sqlite3_bind_int64(st, 1, id);
    int s = sqlite3_step(st);
    sqlite3_finalize(st);
    if (s != SQLITE_DONE) { rc = dbi_fail(db, err, "deleting a conversation"); goto fail; }
    if (sqlite3_changes(db->h) != 1) {
        rc = st_error_set(err, ST_ERR_ARG, "database '%s': no conversation %lld", db->path, (long long)id);
        goto fail;
    }
    if ((rc = dbi_commit(db, err))) return rc;
    if (n_messages) *n_messages = n;
    return ST_OK;
fail:
    dbi_rollback(db);
    return rc;
}

void st_db_message_set_stats(st_db_message *m, const st_stats *s) {
    m->has_stats = true;
    m->n_tokens = (int)s->n_gen;
    m->n_prompt = (int)s->n_prompt;
    m->prompt_tps = s->prompt_ns ? s->n_prompt / (s->prompt_ns / 1e9) : 0;
    m->decode_tps = s->gen_ns ? s->n_gen / (s->gen_ns / 1e9) : 0;
    m->ttft_ms = s->ttft_ns / 1e6;
    m->ready_rate = !s->store.budgeted ? -1.0 : s->store.acquires ? (double)s->store.ready / s->store.acquires : 1.0;
    m->backend = s->backend;
}

void st_db_sampling_json(const st_sampler_params *p, int n_predict, char *buf, size_t n) {
    snprintf(buf, n,
             "{\"temp\": %.6g, \"top_k\": %d, \"top_p\": %.6g, \"min_p\": %.6g, \"repeat_penalty\": %.6g, "
             "\"repeat_last_n\": %d, \"seed\": %llu, \"n_predict\": %d}",
             p->temp, p->top_k, p->top_p, p->min_p, p->repeat_penalty, p->repeat_last_n, (unsigned long long)p->seed,
             n_predict);
}

void st_db_model_fingerprint(const char *path, char *buf, size_t n) {
    if (n) buf[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat sb;
    if (fstat(fd, &sb) != 0) { close(fd); return; }
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    uint64_t size = (uint64_t)sb.st_size;
    for (int i = 0; i < 8; i++) { h ^= (size >> (8 * i)) & 0xff; h *= 0x100000001b3ull; }
    enum { CHUNK = 1 << 20 };
    unsigned char *b = malloc(CHUNK);
    if (!b) { close(fd); return; }
    off_t offs[2] = {0, size > CHUNK ? (off_t)(size - CHUNK) : 0};
    for (int k = 0; k < (size > CHUNK ? 2 : 1); k++) {
        ssize_t r = pread(fd, b, CHUNK, offs[k]);
        for (ssize_t i = 0; i < r; i++) { h ^= b[i]; h *= 0x100000001b3ull; }
    }
    free(b);
    close(fd);
    snprintf(buf, n, "fp1:%016llx", (unsigned long long)h);
}

/* ---------------------------------------------------------------------------
 * reading */
#define CONV_COLS                                                                                                    \
    "c.id, c.title, c.model_name, c.model_file, c.model_hash, c.system_prompt, c.sampling, c.created, c.updated, " \
    "(SELECT count(*) FROM messages m WHERE m.conversation_id = c.id)"

static void conv_from_row(sqlite3_stmt *st, st_db_conversation *c) {
    c->id = sqlite3_column_int64(st, 0);
    c->title = dbi_col_text(st, 1);
    c->model_name = dbi_col_text(st, 2);
    c->model_file = dbi_col_text(st, 3);
    c->model_hash = dbi_col_text(st, 4);
    c->system_prompt = dbi_col_text(st, 5);
    c->sampling = dbi_col_text(st, 6);
    c->created_ms = sqlite3_column_int64(st, 7);
    c->updated_ms = sqlite3_column_int64(st, 8);
    c->n_messages = sqlite3_column_int(st, 9);
}

static st_status step_convs(st_db *db, sqlite3_stmt *st, st_db_conv_cb cb, void *user, int *n, st_error *err) {
    int s;
    *n = 0;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        st_db_conversation c;
        conv_from_row(st, &c);
        ++*n;
        if (!cb(user, &c)) { s = SQLITE_DONE; break; }
    }
    st_status rc = s == SQLITE_DONE ? ST_OK : dbi_fail(db, err, "reading conversations");
    sqlite3_finalize(st);
    return rc;
}

st_status st_db_conv_list(st_db *db, int limit, const char *model, st_db_conv_cb cb, void *user, st_error *err) {
    sqlite3_stmt *st;
    st_status rc = dbi_prepare(db,
                               "SELECT " CONV_COLS " FROM conversations c "
                               "WHERE ?1 IS NULL OR instr(lower(c.model_name), lower(?1)) > 0 "
                               "OR instr(lower(c.model_file), lower(?1)) > 0 "
                               "ORDER BY c.updated DESC, c.id DESC LIMIT ?2",
                               &st, err);
    if (rc) return rc;
    dbi_bind_text(st, 1, model && *model ? model : NULL);
    sqlite3_bind_int(st, 2, limit > 0 ? limit : -1);
    int n;
    return step_convs(db, st, cb, user, &n, err);
}

st_status st_db_conv_get(st_db *db, int64_t id, st_db_conv_cb cb, void *user, st_error *err) {
    sqlite3_stmt *st;
    st_status rc = dbi_prepare(db, "SELECT " CONV_COLS " FROM conversations c WHERE c.id = ?1", &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, id);
    int n;
    if ((rc = step_convs(db, st, cb, user, &n, err))) return rc;
    if (n == 0) return st_error_set(err, ST_ERR_ARG, "database '%s': no conversation %lld", db->path, (long long)id);
    return ST_OK;
}

st_status st_db_messages(st_db *db, int64_t conversation_id, st_db_message_cb cb, void *user, st_error *err) {
    sqlite3_stmt *st;
    st_status rc = dbi_prepare(db,
                               "SELECT id, conversation_id, role, content, n_tokens, created, stopped, prompt_tps, "
                               "decode_tps, ttft_ms, backend, n_prompt, ready_rate "
                               "FROM messages WHERE conversation_id = ?1 ORDER BY id",
                               &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, conversation_id);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        st_db_message m = {0};
        m.id = sqlite3_column_int64(st, 0);
        m.conversation_id = sqlite3_column_int64(st, 1);
        m.role = dbi_col_text(st, 2);
        m.content = dbi_col_text(st, 3);
        m.n_tokens = sqlite3_column_int(st, 4);
        m.created_ms = sqlite3_column_int64(st, 5);
        m.stopped = sqlite3_column_int(st, 6) != 0;
        m.has_stats = sqlite3_column_type(st, 7) != SQLITE_NULL || sqlite3_column_type(st, 8) != SQLITE_NULL;
        m.prompt_tps = sqlite3_column_double(st, 7);
        m.decode_tps = sqlite3_column_double(st, 8);
        m.ttft_ms = sqlite3_column_double(st, 9);
        m.backend = sqlite3_column_type(st, 10) == SQLITE_NULL ? NULL : dbi_col_text(st, 10);
        m.n_prompt = sqlite3_column_int(st, 11);
        m.ready_rate = sqlite3_column_type(st, 12) == SQLITE_NULL ? -1.0 : sqlite3_column_double(st, 12);
        if (!cb(user, &m)) { s = SQLITE_DONE; break; }
    }
    rc = s == SQLITE_DONE ? ST_OK : dbi_fail(db, err, "reading messages");
    sqlite3_finalize(st);
    return rc;
}

/* each whitespace-separated word as an FTS5 string: "a""b" */
static char *quote_words(const char *q) {
    size_t n = strlen(q);
    char *out = malloc(3 * n + 3);
    if (!out) return NULL;
    char *o = out;
    const char *p = q;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
        if (!*p) break;
        if (o != out) *o++ = ' ';
        *o++ = '"';
        while (*p && !(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
            if (*p == '"') *o++ = '"';
            *o++ = *p++;
        }
        *o++ = '"';
    }
    *o = 0;
    return out;
}

st_status st_db_search(st_db *db, const char *query, bool raw, int limit, const char *hl_open, const char *hl_close,
                       st_db_search_cb cb, void *user, st_error *err) {
    char *q = raw ? strdup(query ? query : "") : quote_words(query ? query : "");
    if (!q) return st_error_set(err, ST_ERR_NOMEM, "out of memory");
    if (!*q) { free(q); return st_error_set(err, ST_ERR_ARG, "nothing to search for"); }
    sqlite3_stmt *st;
    st_status rc = dbi_prepare(db,
                               "SELECT m.conversation_id, m.id, c.title, m.role, "
                               "snippet(messages_fts, 0, ?1, ?2, '…', 16), m.created "
                               "FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid "
                               "JOIN conversations c ON c.id = m.conversation_id "
                               "WHERE messages_fts MATCH ?3 ORDER BY rank, m.id LIMIT ?4",
                               &st, err);
    if (rc) { free(q); return rc; }
    sqlite3_bind_text(st, 1, hl_open ? hl_open : "[", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, hl_close ? hl_close : "]", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, q, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 4, limit > 0 ? limit : -1);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        st_db_search_hit h = {
            .conversation_id = sqlite3_column_int64(st, 0),
            .message_id = sqlite3_column_int64(st, 1),
            .title = dbi_col_text(st, 2),
            .role = dbi_col_text(st, 3),
            .snippet = dbi_col_text(st, 4),
            .created_ms = sqlite3_column_int64(st, 5),
        };
        if (!cb(user, &h)) { s = SQLITE_DONE; break; }
    }
    if (s != SQLITE_DONE) {
        if ((sqlite3_errcode(db->h) & 0xff) == SQLITE_ERROR)
            rc = st_error_set(err, ST_ERR_ARG, "search '%s': %s", query, sqlite3_errmsg(db->h));
        else
            rc = dbi_fail(db, err, "searching");
    }
    sqlite3_finalize(st);
    free(q);
    return rc;
}

/* ---------------------------------------------------------------------------
 * export */

/* A JSON string; valid UTF-8 passes through, anything else becomes U+FFFD. */
static void json_str(FILE *f, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    while (*p) {
        unsigned c = *p;
        if (c < 0x80) {
            if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
            else if (c == '\n') fputs("\\n", f);
            else if (c == '\t') fputs("\\t", f);
            else if (c == '\r') fputs("\\r", f);
            else if (c < 0x20 || c == 0x7f) fprintf(f, "\\u%04x", c);
            else fputc((int)c, f);
            p++;
            continue;
        }
        int len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
        if (c > 0xf4) len = 0;
        bool ok = len > 0;
        uint32_t cp = len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
        for (int i = 1; ok && i < len; i++) {
            if ((p[i] & 0xc0) != 0x80) ok = false;
            else cp = (cp << 6) | (p[i] & 0x3f);
        }
        if (ok && ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))))
            ok = false;
        if (ok) { fwrite(p, 1, (size_t)len, f); p += len; }
        else { fputs("\\ufffd", f); p++; }
    }
    fputc('"', f);
}

static void iso_time(int64_t ms, char *buf, size_t n) {
    time_t t = (time_t)(ms / 1000);
    struct tm tmv;
    if (!gmtime_r(&t, &tmv) || !strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tmv)) snprintf(buf, n, "?");
}

typedef struct {
    FILE *f;
    st_db_export_format fmt;
    int n;
    bool sampling_is_json;
    st_db *db;
} export_ctx;

static bool export_conv(void *user, const st_db_conversation *c) {
    export_ctx *x = user;
    FILE *f = x->f;
    char created[32], updated[32];
    if (x->fmt == ST_DB_EXPORT_MD) {
        st_db_format_time(c->created_ms, created, sizeof created);
        st_db_format_time(c->updated_ms, updated, sizeof updated);
        fprintf(f, "# %s\n\n", *c->title ? c->title : "(untitled)");
        fprintf(f, "- conversation: %lld\n", (long long)c->id);
        if (*c->model_name || *c->model_file)
            fprintf(f, "- model: %s%s%s%s\n", c->model_name, *c->model_file ? " (`" : "", c->model_file,
                    *c->model_file ? "`)" : "");
        fprintf(f, "- created: %s, last activity: %s\n", created, updated);
        if (strcmp(c->sampling, "{}") != 0) fprintf(f, "- sampling: `%s`\n", c->sampling);
        if (*c->system_prompt) fprintf(f, "\n## System\n\n%s\n", c->system_prompt);
    } else {
        iso_time(c->created_ms, created, sizeof created);
        iso_time(c->updated_ms, updated, sizeof updated);
        fprintf(f, "{\n  \"id\": %lld,\n  \"title\": ", (long long)c->id);
        json_str(f, c->title);
        fputs(",\n  \"model\": {\"name\": ", f);
        json_str(f, c->model_name);
        fputs(", \"file\": ", f);
        json_str(f, c->model_file);
        fputs(", \"hash\": ", f);
        json_str(f, c->model_hash);
        fputs("},\n  \"system_prompt\": ", f);
        json_str(f, c->system_prompt);
        fputs(",\n  \"sampling\": ", f);
        if (x->sampling_is_json) fputs(c->sampling, f);
        else json_str(f, c->sampling);
        fprintf(f, ",\n  \"created\": \"%s\",\n  \"updated\": \"%s\",\n  \"messages\": [", created, updated);
    }
    return true;
}

static bool export_msg(void *user, const st_db_message *m) {
    export_ctx *x = user;
    FILE *f = x->f;
    if (x->fmt == ST_DB_EXPORT_MD) {
        const char *r = m->role;
        fprintf(f, "\n## %s\n\n%s\n", !strcmp(r, "user") ? "User" : !strcmp(r, "assistant") ? "Assistant" : "System",
                m->content);
        if (m->has_stats || m->stopped) {
            fputs("\n_", f);
            if (m->has_stats) {
                fprintf(f, "%d tokens · prompt %d tokens, %.1f tok/s · decode %.1f tok/s · first token %.0f ms",
                        m->n_tokens, m->n_prompt, m->prompt_tps, m->decode_tps, m->ttft_ms);
                if (m->ready_rate >= 0) fprintf(f, " · layers ready %.1f%%", 100 * m->ready_rate);
                if (m->backend) fprintf(f, " · %s", m->backend);
            }
            if (m->stopped) fputs(m->has_stats ? " · stopped" : "stopped", f);
            fputs("_\n", f);
        }
    } else {
        char t[32];
        iso_time(m->created_ms, t, sizeof t);
        fprintf(f, "%s\n    {\"id\": %lld, \"role\": ", x->n ? "," : "", (long long)m->id);
        json_str(f, m->role);
        fputs(", \"content\": ", f);
        json_str(f, m->content);
        fprintf(f, ", \"n_tokens\": %d, \"created\": \"%s\", \"stopped\": %s", m->n_tokens, t,
                m->stopped ? "true" : "false");
        if (m->has_stats) {
            fprintf(f, ", \"stats\": {\"n_prompt\": %d, \"prompt_tps\": %.6g, \"decode_tps\": %.6g, \"ttft_ms\": %.6g",
                    m->n_prompt, m->prompt_tps, m->decode_tps, m->ttft_ms);
            if (m->ready_rate >= 0) fprintf(f, ", \"ready_rate\": %.6g", m->ready_rate);
            if (m->backend) { fputs(", \"backend\": ", f); json_str(f, m->backend); }
            fputs("}", f);
        }
        fputs("}", f);
    }
    x->n++;
    return true;
}

st_status st_db_export(st_db *db, int64_t id, st_db_export_format fmt, FILE *f, st_error *err) {
    export_ctx x = {.f = f, .fmt = fmt, .db = db};
    /* one read transaction: a consistent snapshot even while a writer saves */
    st_status rc = dbi_exec(db, "BEGIN", err);
    if (rc) return rc;
    sqlite3_stmt *st;
    if ((rc = dbi_prepare(db, "SELECT CASE WHEN json_valid(sampling) THEN json_type(sampling) = 'object' ELSE 0 END "
                          "FROM conversations WHERE id = ?1", &st, err)))
        goto out;
    sqlite3_bind_int64(st, 1, id);
    x.sampling_is_json = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 1;
    sqlite3_finalize(st);
    if ((rc = st_db_conv_get(db, id, export_conv, &x, err))) goto out;
    if ((rc = st_db_messages(db, id, export_msg, &x, err))) goto out;
    if (fmt == ST_DB_EXPORT_JSON) fputs(x.n ? "\n  ]\n}\n" : "]\n}\n", f);
out:
    dbi_rollback(db);
    if (!rc && (fflush(f) != 0 || ferror(f))) rc = st_error_set(err, ST_ERR_IO, "writing the export failed");
    return rc;
}
