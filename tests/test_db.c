/* test_db.c — db/: schema migrations from every earlier version, refusal of
 * newer and foreign files, history writes/reads/search/export/delete, bench
 * rows and their output formats, a concurrent reader while writers save,
 * errors (missing or read-only directory, full disk), damaged files and
 * write-ahead logs (refused, never written) and what a crash leaves (opens). */
#define _GNU_SOURCE
#include "benchdb.h"
#include "db_internal.h"
#include "history.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *db_dir(void) { return tu_fast_dir("db"); }

static char *tmp_path(const char *name) {
    static int k;
    char *p = malloc(4200);
    snprintf(p, 4200, "%s/db%d-%d-%s", db_dir(), (int)getpid(), k++, name);
    return p;
}

static void rm_db(const char *path) {
    char b[4300];
    unlink(path);
    snprintf(b, sizeof b, "%s-wal", path);
    unlink(b);
    snprintf(b, sizeof b, "%s-shm", path);
    unlink(b);
}

/* a database made by plain SQLite from a script */
static void make_db(const char *path, const char *sql) {
    rm_db(path);
    sqlite3 *h;
    cr_assert_eq(sqlite3_open(path, &h), SQLITE_OK);
    char *msg = NULL;
    cr_assert_eq(sqlite3_exec(h, sql, NULL, NULL, &msg), SQLITE_OK, "%s", msg ? msg : "");
    sqlite3_close(h);
}

static int64_t q_int(st_db *db, const char *sql) {
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db->h, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db->h));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* the schema as text, for comparing a migrated file with a fresh one */
static char *schema_of(st_db *db) {
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db->h,
                                    "SELECT type || ' ' || name || ' ' || tbl_name || ' ' || coalesce(sql, '') "
                                    "FROM sqlite_master ORDER BY type, name",
                                    -1, &st, NULL),
                 SQLITE_OK);
    size_t cap = 1 << 16, n = 0;
    char *s = calloc(1, cap);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        size_t l = strlen(t);
        while (n + l + 2 > cap) s = realloc(s, cap *= 2);
        memcpy(s + n, t, l);
        n += l;
        s[n++] = '\n';
        s[n] = 0;
    }
    sqlite3_finalize(st);
    return s;
}

static bool file_bytes_equal(const char *path, const char *bytes, size_t len) {
    size_t n;
    char *b = tu_read_file(path, &n);
    bool eq = b && n == len && memcmp(b, bytes, len) == 0;
    free(b);
    return eq;
}

/* ---------------------------------------------------------------------------
 * schema */
Test(schema, fresh_file_is_current_wal_fk) {
    char *p = tmp_path("fresh.db");
    st_db *db;
    st_error err = {0};
    cr_assert_eq(st_db_open(p, ST_DB_CREATE, &db, &err), ST_OK, "%s", err.msg);
    cr_assert_eq(st_db_schema_version(db), ST_DB_SCHEMA_VERSION);
    cr_assert_eq(q_int(db, "PRAGMA foreign_keys"), 1);
    cr_assert_eq(q_int(db, "PRAGMA synchronous"), 2); /* FULL */
    cr_assert_eq(q_int(db, "PRAGMA busy_timeout"), 5000);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db->h, "PRAGMA journal_mode", -1, &st, NULL);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    cr_assert_eq(st_db_integrity_check(db, &err), ST_OK, "%s", err.msg);
    st_db_close(db);
    /* opening again changes nothing */
    cr_assert_eq(st_db_open(p, 0, &db, &err), ST_OK, "%s", err.msg);
    cr_assert_eq(st_db_schema_version(db), ST_DB_SCHEMA_VERSION);
    st_db_close(db);
    free(p);
}

typedef struct { int n; char buf[8][256]; } msgs_seen;
static bool seen_msg(void *u, const st_db_message *m) {
    msgs_seen *s = u;
    if (s->n < 8) snprintf(s->buf[s->n], 256, "%s|%s|%d|%d|%.2f|%.2f", m->role, m->content, m->stopped, m->has_stats,
                           m->decode_tps, m->ready_rate);
    s->n++;
    return true;
}
static bool count_hit(void *u, const st_db_search_hit *h) { (void)h; ++*(int *)u; return true; }

/* every earlier version's fixture migrates to the current schema, data kept */
Test(schema, migrates_every_earlier_version) {
    char *fresh = tmp_path("fresh2.db");
    st_db *db;
    st_error err = {0};
    cr_assert_eq(st_db_open(fresh, ST_DB_CREATE, &db, &err), ST_OK, "%s", err.msg);
    char *want = schema_of(db);
    st_db_close(db);
    int found = 0;
    for (int v = 1; v < ST_DB_SCHEMA_VERSION; v++) {
        char rel[64];
        snprintf(rel, sizeof rel, "tests/data/db/v%d.sql", v);
        char *sql = tu_read_file(tu_source_path(rel), NULL);
        cr_assert(sql, "fixture %s missing: every earlier schema version needs one", rel);
        found++;
        char *p = tmp_path("old.db");
        make_db(p, sql);
        free(sql);
        cr_assert_eq(st_db_open(p, 0, &db, &err), ST_OK, "v%d: %s", v, err.msg);
        cr_assert_eq(st_db_schema_version(db), ST_DB_SCHEMA_VERSION);
        char *got = schema_of(db);
        cr_assert_str_eq(got, want, "v%d migrated:\n%s\nfresh:\n%s", v, got, want);
        free(got);
        cr_assert_eq(st_db_integrity_check(db, &err), ST_OK, "%s", err.msg);
        /* the fixture's data survived and works with the new code */
        msgs_seen s = {0};
        cr_assert_eq(st_db_messages(db, 1, seen_msg, &s, &err), ST_OK, "%s", err.msg);
        cr_assert_eq(s.n, 2);
        cr_assert_str_eq(s.buf[1], "assistant|The Nile is usually named the longest river.|0|1|40.25|-1.00");
        int hits = 0;
        cr_assert_eq(st_db_search(db, "nile", false, 0, "[", "]", count_hit, &hits, &err), ST_OK, "%s", err.msg);
        cr_assert_eq(hits, 1);
        /* new tables and columns are usable */
        st_db_message m = {.conversation_id = 2, .role = "assistant", .content = "a new reply", .has_stats = true,
                           .ready_rate = 0.5, .n_prompt = 3};
        cr_assert_eq(st_db_message_add(db, &m, NULL, &err), ST_OK, "%s", err.msg);
        st_db_bench_row r;
        st_db_bench_row_init(&r);
        cr_assert_eq(st_db_bench_add(db, &r, &err), ST_OK, "%s", err.msg);
        st_db_close(db);
        free(p);
    }
    cr_assert_eq(found, ST_DB_SCHEMA_VERSION - 1);
    free(want);
    free(fresh);
}

Test(schema, newer_version_refused_untouched) {
    char *p = tmp_path("newer.db");
    make_db(p, "CREATE TABLE future (x); INSERT INTO future VALUES (42); PRAGMA user_version = 99;");
    size_t len;
    char *before = tu_read_file(p, &len);
    st_db *db = NULL;
    st_error err = {0};
    cr_assert_eq(st_db_open(p, ST_DB_CREATE, &db, &err), ST_ERR_UNSUPPORTED);
    cr_assert_null(db);
    cr_assert(strstr(err.msg, "schema version 99") && strstr(err.msg, "newer") && strstr(err.msg, "not modified"),
              "%s", err.msg);
    cr_assert(file_bytes_equal(p, before, len), "the file changed");
    char w[4300];
    snprintf(w, sizeof w, "%s-wal", p);
    cr_assert(!tu_file_exists(w), "a WAL was left beside it");
    free(before);
    free(p);
}

Test(schema, foreign_sqlite_and_non_sqlite_refused) {
    char *p = tmp_path("foreign.db");
    make_db(p, "CREATE TABLE contacts (name TEXT); INSERT INTO contacts VALUES ('x');");
    size_t len;
    char *before = tu_read_file(p, &len);
    st_db *db = NULL;
    st_error err = {0};
    cr_assert_eq(st_db_open(p, ST_DB_CREATE, &db, &err), ST_ERR_FORMAT);
    cr_assert(strstr(err.msg, "not strata's"), "%s", err.msg);
    cr_assert(file_bytes_equal(p, before, len));
    free(before);

    char *q = tmp_path("text.db");
    FILE *f = fopen(q, "w");
    fputs("this is a text file, not a database\n", f);
    fclose(f);
    cr_assert_eq(st_db_open(q, ST_DB_CREATE, &db, &err), ST_ERR_FORMAT);
    cr_assert(strstr(err.msg, "not a SQLite database"), "%s", err.msg);
    cr_assert(file_bytes_equal(q, "this is a text file, not a database\n", 36));
    free(p);
    free(q);
}

Test(schema, missing_and_readonly_directory) {
    st_db *db = NULL;
    st_error err = {0};
    char p[4300];
    snprintf(p, sizeof p, "%s/no/such/dir/x.db", db_dir());
    cr_assert_eq(st_db_open(p, ST_DB_CREATE, &db, &err), ST_ERR_IO);
    cr_assert(strstr(err.msg, "does not exist"), "%s", err.msg);
    /* without CREATE a missing file is an error, and nothing is created */
    char *q = tmp_path("absent.db");
    cr_assert_eq(st_db_open(q, 0, &db, &err), ST_ERR_IO);
    cr_assert(strstr(err.msg, "no database"), "%s", err.msg);
    cr_assert(!tu_file_exists(q));
    /* a directory nobody may write: /proc for root, a 0555 directory otherwise */
    char ro[4300];
    if (geteuid() == 0) snprintf(ro, sizeof ro, "/proc/strata-test.db");
    else {
        snprintf(ro, sizeof ro, "%s/ro%d", db_dir(), (int)getpid());
        mkdir(ro, 0555);
        chmod(ro, 0555);
        strcat(ro, "/x.db");
    }
    cr_assert_neq(st_db_open(ro, ST_DB_CREATE, &db, &err), ST_OK);
    cr_assert_null(db);
    cr_assert(strstr(err.msg, ro) && strstr(err.msg, "cannot create"), "%s", err.msg);
    free(q);
}

/* ---------------------------------------------------------------------------
 * history */
static st_db *fresh_db(const char *name) {
    char *p = tmp_path(name);
    st_db *db;
    st_error err = {0};
    cr_assert_eq(st_db_open(p, ST_DB_CREATE, &db, &err), ST_OK, "%s", err.msg);
    free(p);
    return db;
}

static int64_t add_conv(st_db *db, const char *title, const char *user, const char *reply) {
    st_error err = {0};
    st_db_conversation c = {.title = title, .model_name = "tiny", .model_file = "/m/tiny.gguf",
                            .sampling = "{\"temp\": 0}"};
    st_db_message u = {.role = "user", .content = user};
    int64_t id;
    cr_assert_eq(st_db_conv_create(db, &c, &u, 1, &id, &err), ST_OK, "%s", err.msg);
    if (reply) {
        st_db_message a = {.conversation_id = id, .role = "assistant", .content = reply, .has_stats = true,
                           .n_tokens = 5, .decode_tps = 12.5, .ready_rate = -1, .backend = "cpu"};
        cr_assert_eq(st_db_message_add(db, &a, NULL, &err), ST_OK, "%s", err.msg);
    }
    return id;
}

typedef struct { int n; char snip[4][512]; int64_t conv[4]; } hits;
static bool collect_hit(void *u, const st_db_search_hit *h) {
    hits *x = u;
    if (x->n < 4) { snprintf(x->snip[x->n], 512, "%s", h->snippet); x->conv[x->n] = h->conversation_id; }
    x->n++;
    return true;
}

Test(history, search_snippets_and_quoting) {
    st_db *db = fresh_db("search.db");
    st_error err = {0};
    int64_t a = add_conv(db, "Rivers", "Which river is the longest?", "The Nile, at about 6650 km, is the longest river.");
    int64_t b = add_conv(db, "Mountains", "How tall is Everest?", "Everest is 8849 m tall.");
    hits h = {0};
    cr_assert_eq(st_db_search(db, "longest river", false, 0, "<b>", "</b>", collect_hit, &h, &err), ST_OK, "%s", err.msg);
    cr_assert_eq(h.n, 2); /* the question and the answer */
    cr_assert_eq(h.conv[0], a);
    cr_assert(strstr(h.snip[0], "<b>longest</b>") || strstr(h.snip[1], "<b>longest</b>"), "%s | %s", h.snip[0], h.snip[1]);
    memset(&h, 0, sizeof h);
    cr_assert_eq(st_db_search(db, "EVEREST", false, 0, "[", "]", collect_hit, &h, &err), ST_OK);
    cr_assert_eq(h.n, 2);
    cr_assert_eq(h.conv[0], b);
    /* punctuation and FTS5 operators in plain words are harmless */
    memset(&h, 0, sizeof h);
    cr_assert_eq(st_db_search(db, "\"Nile, AND OR( -*", false, 0, "[", "]", collect_hit, &h, &err), ST_OK, "%s", err.msg);
    cr_assert_eq(h.n, 0);
    /* raw queries use FTS5 syntax; a bad one is a clear error */
    memset(&h, 0, sizeof h);
    cr_assert_eq(st_db_search(db, "nile OR everest", true, 0, "[", "]", collect_hit, &h, &err), ST_OK, "%s", err.msg);
    cr_assert_eq(h.n, 3);
    cr_assert_eq(st_db_search(db, "AND (", true, 0, "[", "]", collect_hit, &h, &err), ST_ERR_ARG);
    cr_assert(strstr(err.msg, "syntax"), "%s", err.msg);
    cr_assert_eq(st_db_search(db, "   ", false, 0, "[", "]", collect_hit, &h, &err), ST_ERR_ARG);
    st_db_close(db);
}

Test(history, delete_cascades_messages_and_index) {
    st_db *db = fresh_db("delete.db");
    st_error err = {0};
    int64_t a = add_conv(db, "Zebras", "zebra stripes?", "Zebra stripes deter flies.");
    add_conv(db, "Other", "something else", "another reply");
    int n = -1;
    cr_assert_eq(st_db_conv_delete(db, a, &n, &err), ST_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_eq(q_int(db, "SELECT count(*) FROM messages WHERE conversation_id = 1"), 0);
    cr_assert_eq(q_int(db, "SELECT count(*) FROM messages"), 2);
    cr_assert_eq(q_int(db, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'zebra'"), 0);
    cr_assert_eq(q_int(db, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'another'"), 1);
    cr_assert_eq(dbi_exec(db, "INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')", &err), ST_OK,
                 "%s", err.msg);
    hits h = {0};
    cr_assert_eq(st_db_search(db, "zebra", false, 0, "[", "]", collect_hit, &h, &err), ST_OK);
    cr_assert_eq(h.n, 0);
    cr_assert_eq(st_db_conv_delete(db, a, &n, &err), ST_ERR_ARG);
    cr_assert(strstr(err.msg, "no conversation"), "%s", err.msg);
    /* a message for a conversation that is gone is refused */
    st_db_message m = {.conversation_id = a, .role = "user", .content = "x"};
    cr_assert_eq(st_db_message_add(db, &m, NULL, &err), ST_ERR_ARG);
    st_db_close(db);
}

Test(history, stopped_reply_and_order) {
    st_db *db = fresh_db("stopped.db");
    st_error err = {0};
    int64_t a = add_conv(db, "t", "count to ten", NULL);
    st_db_message r = {.conversation_id = a, .role = "assistant", .content = "one two th", .stopped = true,
                       .has_stats = true, .ready_rate = 0.75};
    cr_assert_eq(st_db_message_add(db, &r, NULL, &err), ST_OK);
    msgs_seen s = {0};
    cr_assert_eq(st_db_messages(db, a, seen_msg, &s, &err), ST_OK);
    cr_assert_eq(s.n, 2);
    cr_assert_str_eq(s.buf[0], "user|count to ten|0|0|0.00|-1.00");
    cr_assert_str_eq(s.buf[1], "assistant|one two th|1|1|0.00|0.75");
    st_db_message bad = {.conversation_id = a, .role = "robot", .content = "x"};
    cr_assert_eq(st_db_message_add(db, &bad, NULL, &err), ST_ERR_ARG);
    cr_assert_eq(q_int(db, "SELECT count(*) FROM messages"), 2);
    st_db_close(db);
}

static char *export_to_string(st_db *db, int64_t id, st_db_export_format fmt) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    st_error err = {0};
    cr_assert_eq(st_db_export(db, id, fmt, f, &err), ST_OK, "%s", err.msg);
    fclose(f);
    return buf;
}

Test(history, export_markdown_and_json) {
    st_db *db = fresh_db("export.db");
    st_error err = {0};
    /* quotes, backslashes, control characters, a UTF-8 character, and a
     * reply stopped in the middle of one (invalid UTF-8) */
    const char *user = "Say \"hi\" \\ then\ttab\nnewline \x01 and caf\xc3\xa9";
    int64_t a = add_conv(db, "Export \"me\"", user, "Hello! caf\xc3");
    char *md = export_to_string(db, a, ST_DB_EXPORT_MD);
    cr_assert(strstr(md, "# Export \"me\""), "%s", md);
    cr_assert(strstr(md, "## User\n\nSay \"hi\""), "%s", md);
    cr_assert(strstr(md, "## Assistant\n\nHello!"), "%s", md);
    cr_assert(strstr(md, "12.5 tok/s"), "%s", md);
    free(md);
    char *js = export_to_string(db, a, ST_DB_EXPORT_JSON);
    cJSON *j = cJSON_Parse(js);
    cr_assert(j, "export is not JSON:\n%s", js);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "title")->valuestring, "Export \"me\"");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "model"), "name")->valuestring, "tiny");
    cr_assert(cJSON_IsObject(cJSON_GetObjectItem(j, "sampling")));
    cJSON *ms = cJSON_GetObjectItem(j, "messages");
    cr_assert_eq(cJSON_GetArraySize(ms), 2);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(ms, 0), "content")->valuestring, user);
    cJSON *r = cJSON_GetArrayItem(ms, 1);
    cr_assert_str_eq(cJSON_GetObjectItem(r, "role")->valuestring, "assistant");
    cr_assert_str_eq(cJSON_GetObjectItem(r, "content")->valuestring, "Hello! caf\xef\xbf\xbd"); /* U+FFFD */
    cr_assert_float_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "stats"), "decode_tps")->valuedouble, 12.5, 1e-9);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "stopped")));
    cJSON_Delete(j);
    free(js);
    /* a sampling text that is not a JSON object is exported as a string */
    st_db_conversation c = {.title = "x", .sampling = "temp=0.5"};
    int64_t b;
    cr_assert_eq(st_db_conv_create(db, &c, NULL, 0, &b, &err), ST_OK);
    js = export_to_string(db, b, ST_DB_EXPORT_JSON);
    j = cJSON_Parse(js);
    cr_assert(j, "%s", js);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "sampling")->valuestring, "temp=0.5");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "messages")), 0);
    cJSON_Delete(j);
    free(js);
    FILE *devnull = fopen("/dev/null", "w");
    cr_assert_eq(st_db_export(db, 999, ST_DB_EXPORT_JSON, devnull, &err), ST_ERR_ARG);
    fclose(devnull);
    st_db_close(db);
}

typedef struct { int n; int64_t ids[16]; } convs_seen;
static bool seen_conv(void *u, const st_db_conversation *c) {
    convs_seen *s = u;
    if (s->n < 16) s->ids[s->n] = c->id;
    s->n++;
    return true;
}

Test(history, list_order_limit_and_model_filter) {
    st_db *db = fresh_db("list.db");
    st_error err = {0};
    int64_t a = add_conv(db, "a", "first", NULL);
    int64_t b = add_conv(db, "b", "second", NULL);
    st_db_conversation c = {.title = "c", .model_name = "Llama-7B", .model_file = "/x/llama.gguf"};
    int64_t cid;
    cr_assert_eq(st_db_conv_create(db, &c, NULL, 0, &cid, &err), ST_OK);
    /* a new message makes a the most recently active */
    st_db_message m = {.conversation_id = a, .role = "assistant", .content = "later", .created_ms = st_db_now_ms() + 1000};
    cr_assert_eq(st_db_message_add(db, &m, NULL, &err), ST_OK);
    convs_seen s = {0};
    cr_assert_eq(st_db_conv_list(db, 0, NULL, seen_conv, &s, &err), ST_OK);
    cr_assert_eq(s.n, 3);
    cr_assert_eq(s.ids[0], a);
    memset(&s, 0, sizeof s);
    cr_assert_eq(st_db_conv_list(db, 2, NULL, seen_conv, &s, &err), ST_OK);
    cr_assert_eq(s.n, 2);
    memset(&s, 0, sizeof s);
    cr_assert_eq(st_db_conv_list(db, 0, "llama", seen_conv, &s, &err), ST_OK);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(s.ids[0], cid);
    (void)b;
    st_db_close(db);
}

/* a full disk (max_page_count stands in for it): a clear error, the
 * transaction rolled back, the file intact, later writes fine */
Test(history, full_disk_is_a_clear_error) {
    st_db *db = fresh_db("full.db");
    st_error err = {0};
    int64_t a = add_conv(db, "t", "hello", NULL);
    int64_t pages = q_int(db, "PRAGMA page_count");
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld", (long long)pages + 2);
    cr_assert_eq(dbi_exec(db, sql, &err), ST_OK);
    size_t big = 1 << 20;
    char *text = malloc(big + 1);
    for (size_t i = 0; i < big; i++) text[i] = (char)('a' + (i * 7 + i / 13) % 26);
    text[big] = 0;
    st_db_message m = {.conversation_id = a, .role = "assistant", .content = text};
    cr_assert_eq(st_db_message_add(db, &m, NULL, &err), ST_ERR_IO);
    cr_assert(strstr(err.msg, "full"), "%s", err.msg);
    free(text);
    cr_assert_eq(q_int(db, "SELECT count(*) FROM messages"), 1);
    cr_assert_eq(st_db_integrity_check(db, &err), ST_OK, "%s", err.msg);
    cr_assert_eq(dbi_exec(db, "PRAGMA max_page_count = 1073741823", &err), ST_OK);
    st_db_message ok = {.conversation_id = a, .role = "assistant", .content = "small"};
    cr_assert_eq(st_db_message_add(db, &ok, NULL, &err), ST_OK, "%s", err.msg);
    st_db_close(db);
}

/* ---------------------------------------------------------------------------
 * a reader (the history browser) while writers save: no SQLITE_BUSY */
typedef struct {
    const char *path;
    int id;
    int n;
    st_status rc;
    char msg[512];
    volatile int *done;
} worker;

static void *writer(void *arg) {
    worker *w = arg;
    st_db *db;
    st_error err = {0};
    if ((w->rc = st_db_open(w->path, 0, &db, &err))) { snprintf(w->msg, sizeof w->msg, "%s", err.msg); return NULL; }
    for (int i = 0; i < w->n && !w->rc; i++) {
        char text[128];
        snprintf(text, sizeof text, "writer %d message %d about turbines", w->id, i);
        st_db_conversation c = {.title = text};
        st_db_message u = {.role = "user", .content = text};
        int64_t id;
        if ((w->rc = st_db_conv_create(db, &c, &u, 1, &id, &err))) break;
        st_db_message a = {.conversation_id = id, .role = "assistant", .content = "a reply about generators"};
        w->rc = st_db_message_add(db, &a, NULL, &err);
    }
    if (w->rc) snprintf(w->msg, sizeof w->msg, "%s", err.msg);
    st_db_close(db);
    return NULL;
}

static bool nothing_conv(void *u, const st_db_conversation *c) { (void)u; (void)c; return true; }
static bool nothing_msg(void *u, const st_db_message *m) { (void)u; (void)m; return true; }

static void *reader(void *arg) {
    worker *w = arg;
    while (!*w->done && !w->rc) {
        st_db *db; /* a fresh connection each round, like `strata history` */
        st_error err = {0};
        if ((w->rc = st_db_open(w->path, 0, &db, &err))) { snprintf(w->msg, sizeof w->msg, "%s", err.msg); break; }
        int hits = 0;
        FILE *devnull = fopen("/dev/null", "w");
        if (!w->rc) w->rc = st_db_conv_list(db, 20, NULL, nothing_conv, NULL, &err);
        if (!w->rc) w->rc = st_db_search(db, "turbines", false, 10, "[", "]", count_hit, &hits, &err);
        if (!w->rc) w->rc = st_db_messages(db, 1, nothing_msg, NULL, &err);
        if (!w->rc) w->rc = st_db_export(db, 1, ST_DB_EXPORT_JSON, devnull, &err);
        fclose(devnull);
        if (w->rc) snprintf(w->msg, sizeof w->msg, "%s", err.msg);
        st_db_close(db);
        w->n++;
    }
    return NULL;
}

Test(concurrency, readers_while_writers_save) {
    char *p = tmp_path("conc.db");
    st_db *db;
    st_error err = {0};
    cr_assert_eq(st_db_open(p, ST_DB_CREATE, &db, &err), ST_OK);
    add_conv(db, "seed", "seed", "seed");
    st_db_close(db);
    volatile int done = 0;
    worker w[4] = {{p, 0, 40, 0, "", &done}, {p, 1, 40, 0, "", &done}, {p, 2, 0, 0, "", &done}, {p, 3, 0, 0, "", &done}};
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, i < 2 ? writer : reader, &w[i]);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    done = 1;
    pthread_join(t[2], NULL);
    pthread_join(t[3], NULL);
    for (int i = 0; i < 4; i++) cr_assert_eq(w[i].rc, ST_OK, "worker %d: %s", i, w[i].msg);
    cr_assert_gt(w[2].n + w[3].n, 0);
    cr_assert_eq(st_db_open(p, 0, &db, &err), ST_OK);
    cr_assert_eq(q_int(db, "SELECT count(*) FROM conversations"), 81);
    cr_assert_eq(q_int(db, "SELECT count(*) FROM messages"), 162);
    cr_assert_eq(st_db_integrity_check(db, &err), ST_OK, "%s", err.msg);
    st_db_close(db);
    free(p);
}

/* ---------------------------------------------------------------------------
 * bench rows */
static st_db_bench_row bench_row(const char *test, int threads, double ts, bool budget) {
    st_db_bench_row r;
    st_db_bench_row_init(&r);
    snprintf(r.backends, sizeof r.backends, "CPU");
    snprintf(r.model_filename, sizeof r.model_filename, "/models/tiny \"q8\".gguf");
    snprintf(r.model_type, sizeof r.model_type, "Q8_0");
    snprintf(r.test, sizeof r.test, "%s", test);
    r.n_threads = threads;
    r.n_prompt = test[0] == 'p' ? 512 : 0;
    r.n_gen = test[0] == 't' ? 128 : 0;
    r.reps = 2;
    r.avg_ts = ts;
    r.stddev_ts = 1.5;
    r.avg_ns = 1000000;
    r.samples_ns = "1000000,1000001";
    r.samples_ts = "100.5,99.5";
    snprintf(r.test_time, sizeof r.test_time, "2024-01-01T00:00:00Z");
    if (budget) {
        r.budgeted = true;
        r.cache_layers = 4;
        snprintf(r.cache_policy, sizeof r.cache_policy, "ring");
        snprintf(r.prefetch, sizeof r.prefetch, "auto");
        r.ready_rate = 0.9;
        r.stall_ns = 123456;
    }
    return r;
}

typedef struct { int n; st_db_bench_row last; char tag[96]; } rows_seen;
static bool seen_row(void *u, const st_db_bench_row *r) {
    rows_seen *s = u;
    s->n++;
    s->last = *r;
    if (r->samples_ns) snprintf(s->tag, sizeof s->tag, "%s|%s", r->test, r->samples_ns);
    return true;
}

Test(bench, store_list_compare) {
    st_db *db = fresh_db("bench.db");
    st_error err = {0};
    st_db_bench_row a1 = bench_row("pp512", 4, 100, false), a2 = bench_row("tg128", 4, 20, false);
    cr_assert_eq(st_db_bench_add(db, &a1, &err), ST_OK, "%s", err.msg);
    cr_assert_eq(a1.run, a1.id);
    a2.run = a1.run;
    cr_assert_eq(st_db_bench_add(db, &a2, &err), ST_OK);
    st_db_bench_row b1 = bench_row("tg128", 4, 25, true), b2 = bench_row("pp512", 4, 150, true);
    cr_assert_eq(st_db_bench_add(db, &b1, &err), ST_OK);
    b2.run = b1.run;
    cr_assert_eq(st_db_bench_add(db, &b2, &err), ST_OK);
    cr_assert_neq(a1.run, b1.run);

    rows_seen s = {0};
    st_db_bench_filter f = {.run = b1.run};
    cr_assert_eq(st_db_bench_list(db, &f, seen_row, &s, &err), ST_OK);
    cr_assert_eq(s.n, 2);
    cr_assert_str_eq(s.tag, "pp512|1000000,1000001");
    cr_assert(s.last.budgeted);
    cr_assert_str_eq(s.last.cache_policy, "ring");
    cr_assert_str_eq(s.last.build_commit, st_db_build_commit());
    memset(&s, 0, sizeof s);
    f = (st_db_bench_filter){.model = "Q8_0", .backend = "cpu"};
    cr_assert_eq(st_db_bench_list(db, &f, seen_row, &s, &err), ST_OK);
    cr_assert_eq(s.n, 4);
    memset(&s, 0, sizeof s);
    f = (st_db_bench_filter){.model = "q4_k"};
    cr_assert_eq(st_db_bench_list(db, &f, seen_row, &s, &err), ST_OK);
    cr_assert_eq(s.n, 0);
    /* an unbudgeted row has NULL store columns */
    cr_assert_eq(q_int(db, "SELECT count(*) FROM bench_runs WHERE cache_policy IS NULL AND ready_rate IS NULL"), 2);

    char *buf = NULL;
    size_t len = 0;
    FILE *o = open_memstream(&buf, &len);
    cr_assert_eq(st_db_bench_compare(db, a1.run, b1.run, o, &err), ST_OK, "%s", err.msg);
    fclose(o);
    /* matched by test: pp512 100 -> 150 (1.500), tg128 20 -> 25 (1.250) */
    cr_assert(strstr(buf, "1.500") && strstr(buf, "1.250"), "%s", buf);
    cr_assert(strstr(buf, "budgeted"), "the differing setting is listed:\n%s", buf);
    free(buf);
    o = fopen("/dev/null", "w");
    cr_assert_eq(st_db_bench_compare(db, a1.run, 9999, o, &err), ST_ERR_ARG);
    cr_assert_eq(st_db_bench_print_list(db, NULL, o, &err), ST_OK);
    fclose(o);
    st_db_close(db);
}

static char *print_rows(st_db_out_format fmt, const st_db_bench_row *r, int n) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    st_db_bench_print_begin(f, fmt);
    for (int i = 0; i < n; i++) st_db_bench_print_row(f, fmt, &r[i], i == 0);
    st_db_bench_print_end(f, fmt);
    fclose(f);
    return buf;
}

Test(bench, output_formats) {
    st_db_bench_row r[2] = {bench_row("pp512", 4, 100.25, false), bench_row("tg128", 2, 20.5, true)};
    /* JSON: an array that parses, store fields null when not budgeted */
    char *js = print_rows(ST_DB_OUT_JSON, r, 2);
    cJSON *j = cJSON_Parse(js);
    cr_assert(j, "%s", js);
    cr_assert_eq(cJSON_GetArraySize(j), 2);
    cJSON *o0 = cJSON_GetArrayItem(j, 0), *o1 = cJSON_GetArrayItem(j, 1);
    cr_assert_str_eq(cJSON_GetObjectItem(o0, "model_filename")->valuestring, "/models/tiny \"q8\".gguf");
    cr_assert_float_eq(cJSON_GetObjectItem(o0, "avg_ts")->valuedouble, 100.25, 1e-9);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(o0, "cache_policy")));
    cr_assert_str_eq(cJSON_GetObjectItem(o1, "cache_policy")->valuestring, "ring");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o1, "samples_ts")), 2);
    cJSON_Delete(j);
    free(js);
    /* SQL: runs in sqlite3 and gives the rows back */
    char *sql = print_rows(ST_DB_OUT_SQL, r, 2);
    sqlite3 *h;
    sqlite3_open(":memory:", &h);
    char *msg = NULL;
    cr_assert_eq(sqlite3_exec(h, sql, NULL, NULL, &msg), SQLITE_OK, "%s\n%s", msg, sql);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(h, "SELECT count(*), sum(avg_ts), max(model_filename), count(cache_policy) FROM test", -1, &st, NULL);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(st, 0), 2);
    cr_assert_float_eq(sqlite3_column_double(st, 1), 120.75, 1e-9);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 2), "/models/tiny \"q8\".gguf");
    cr_assert_eq(sqlite3_column_int(st, 3), 1);
    sqlite3_finalize(st);
    sqlite3_close(h);
    free(sql);
    /* CSV: a header and one line per row, same number of fields */
    char *csv = print_rows(ST_DB_OUT_CSV, r, 2);
    int lines = 0;
    for (char *p = csv; *p; p++) lines += *p == '\n';
    cr_assert_eq(lines, 3, "%s", csv);
    cr_assert(!strncmp(csv, "build_commit,", 13), "%s", csv);
    cr_assert(strstr(csv, "\"/models/tiny \"\"q8\"\".gguf\""), "%s", csv);
    free(csv);
}

Test(bench, build_and_cpu_info) {
    cr_assert(st_db_build_commit()[0]);
    char cpu[128];
    st_db_cpu_info(cpu, sizeof cpu);
    cr_assert(cpu[0]);
}

/* ---------------------------------------------------------------------------
 * damaged files (docs/DATABASE.md, "A damaged file"): refused with
 * ST_ERR_FORMAT, a message naming the file, and neither the file nor its
 * write-ahead log changes by a byte */

static size_t file_size(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 ? (size_t)sb.st_size : 0;
}

/* deterministic garbage */
static void garbage(unsigned char *b, size_t n, uint64_t seed) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        b[i] = (unsigned char)(x >> 24);
    }
}

static void overwrite(const char *path, long off, const void *b, size_t n) {
    FILE *f = fopen(path, "r+b");
    cr_assert(f, "%s", path);
    cr_assert_eq(fseek(f, off, SEEK_SET), 0);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

static void overwrite_garbage(const char *path, long off, size_t n, uint64_t seed) {
    unsigned char *b = malloc(n);
    garbage(b, n, seed);
    overwrite(path, off, b, n);
    free(b);
}

static char *wal_of(const char *p) {
    char *w = malloc(4300);
    snprintf(w, 4300, "%s-wal", p);
    return w;
}

/* a strata database of 40 conversations (about 30 pages), checkpointed: no WAL */
static char *make_history(const char *name) {
    char *p = tmp_path(name);
    rm_db(p);
    st_db *db;
    st_error err = {0};
    cr_assert_eq(st_db_open(p, ST_DB_CREATE, &db, &err), ST_OK, "%s", err.msg);
    char body[700];
    for (int i = 0; i < 40; i++) {
        char t[32];
        snprintf(t, sizeof t, "conversation %d", i);
        for (int k = 0; k < (int)sizeof body - 1; k++) body[k] = "abcdefgh ijklmnop"[(k * 7 + i) % 17];
        body[sizeof body - 1] = 0;
        add_conv(db, t, body, body);
    }
    st_db_close(db);
    char *w = wal_of(p);
    cr_assert(!tu_file_exists(w), "the WAL was not checkpointed away");
    free(w);
    return p;
}

/* n more committed transactions left in the WAL, as a process killed
 * before its checkpoint leaves them */
static void leave_wal(const char *p, int n) {
    sqlite3 *h;
    cr_assert_eq(sqlite3_open(p, &h), SQLITE_OK);
    char *msg = NULL;
    cr_assert_eq(sqlite3_exec(h, "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;", NULL, NULL, &msg), SQLITE_OK,
                 "%s", msg ? msg : "");
    for (int i = 0; i < n; i++) {
        char sql[200];
        snprintf(sql, sizeof sql, "INSERT INTO conversations (title, created, updated) VALUES ('in the WAL %d', 1, 1)", i);
        cr_assert_eq(sqlite3_exec(h, sql, NULL, NULL, &msg), SQLITE_OK, "%s", msg ? msg : "");
    }
    sqlite3_db_config(h, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    sqlite3_close(h);
    char *w = wal_of(p);
    cr_assert(tu_file_exists(w));
    free(w);
}

static size_t wal_frame_size(const char *p) {
    char *w = wal_of(p);
    size_t n;
    unsigned char *b = (unsigned char *)tu_read_file(w, &n);
    cr_assert(b && n >= 32);
    size_t page = (size_t)b[8] << 24 | (size_t)b[9] << 16 | (size_t)b[10] << 8 | b[11];
    free(b);
    free(w);
    return 24 + page;
}

/* opening fails with ST_ERR_FORMAT, the message has `expect` and the path,
 * and the file and its WAL are byte for byte what they were */
static void expect_refused_flags(const char *p, const char *expect, const char *what, int first_flags) {
    char *w = wal_of(p);
    size_t n_db = 0, n_wal = 0;
    char *db_before = tu_file_exists(p) ? tu_read_file(p, &n_db) : NULL;
    char *wal_before = tu_file_exists(w) ? tu_read_file(w, &n_wal) : NULL;
    for (int flags = first_flags; flags <= ST_DB_CREATE; flags += ST_DB_CREATE) {
        st_db *db = NULL;
        st_error err = {0};
        st_status st = st_db_open(p, flags, &db, &err);
        cr_assert_eq(st, ST_ERR_FORMAT, "%s: opened (%d): %s", what, st, err.msg);
        cr_assert_null(db);
        cr_assert(strstr(err.msg, expect), "%s: expected '%s' in: %s", what, expect, err.msg);
        cr_assert(strstr(err.msg, p), "%s: the message does not name the file: %s", what, err.msg);
        if (db_before) cr_assert(file_bytes_equal(p, db_before, n_db), "%s: the file changed", what);
        else cr_assert(!tu_file_exists(p) || file_size(p) == 0, "%s: a file was created", what);
        if (wal_before) cr_assert(file_bytes_equal(w, wal_before, n_wal), "%s: the WAL changed", what);
    }
    free(db_before);
    free(wal_before);
    free(w);
}

static void expect_refused(const char *p, const char *expect, const char *what) {
    expect_refused_flags(p, expect, what, 0);
}

static int64_t count_convs(const char *p) {
    st_db *db;
    st_error err = {0};
    cr_assert_eq(st_db_open(p, 0, &db, &err), ST_OK, "%s", err.msg);
    int64_t n = q_int(db, "SELECT count(*) FROM conversations");
    st_db_close(db);
    return n;
}

Test(damaged, database_file_refused_untouched) {
    /* garbage in the header after the magic string (page size, counters...) */
    char *p = make_history("hdr.db");
    overwrite_garbage(p, 16, 84, 1);
    expect_refused(p, "is damaged", "garbage header");
    /* one page in the middle overwritten: with garbage, with zeros */
    long size = (long)file_size(p);
    cr_assert_geq(size, 20 * 4096, "only %ld bytes", size);
    free(p);
    p = make_history("page.db");
    overwrite_garbage(p, (size / 4096 / 2) * 4096, 4096, 2);
    expect_refused(p, "is damaged", "a page of garbage");
    free(p);
    p = make_history("zero.db");
    unsigned char zero[4096] = {0};
    overwrite(p, 7 * 4096, zero, sizeof zero);
    expect_refused(p, "is damaged", "a page of zeros");
    free(p);
    /* truncated: in a page, at a page boundary, inside the header */
    long cuts[] = {size / 2 + 1000, (size / 4096 / 2) * 4096, 50};
    for (int i = 0; i < 3; i++) {
        p = make_history("cut.db");
        cr_assert_eq(truncate(p, cuts[i]), 0);
        expect_refused(p, "is damaged", "truncated");
        free(p);
    }
    /* not SQLite at all (the first 16 bytes) */
    p = make_history("magic.db");
    overwrite_garbage(p, 0, 100, 3);
    expect_refused(p, "not a SQLite database", "garbage from byte 0");
    free(p);
}

Test(damaged, write_ahead_log_refused_untouched) {
    /* garbage for a WAL beside an intact file */
    char *p = make_history("walg.db");
    char *w = wal_of(p);
    unsigned char g[20000];
    garbage(g, sizeof g, 4);
    FILE *f = fopen(w, "wb");
    fwrite(g, 1, sizeof g, f);
    fclose(f);
    expect_refused(p, "write-ahead log", "a WAL of garbage");
    free(p);
    free(w);
    /* a real WAL whose header checksum fails (a salt changed) */
    p = make_history("walh.db");
    leave_wal(p, 3);
    w = wal_of(p);
    overwrite_garbage(w, 16, 4, 5);
    expect_refused(p, "header fails its checksum", "a WAL header");
    free(w);
    free(p);
    /* a frame of the first transaction damaged, committed ones after it:
     * SQLite would stop at the frame and drop them */
    p = make_history("walf.db");
    leave_wal(p, 5);
    w = wal_of(p);
    overwrite_garbage(w, 32 + 24 + 100, 200, 6);
    expect_refused(p, "frame 1 fails its checksum", "a damaged frame");
    free(w);
    free(p);
    /* a WAL beside an empty or a missing file: SQLite would delete it */
    p = make_history("wale.db");
    leave_wal(p, 2);
    cr_assert_eq(truncate(p, 0), 0);
    expect_refused(p, "is empty but its write-ahead log", "a WAL beside an empty file");
    unlink(p);
    /* (without ST_DB_CREATE a missing file is "no database at") */
    expect_refused_flags(p, "is missing but its write-ahead log", "a WAL beside no file", ST_DB_CREATE);
    free(p);
}

/* what a crash leaves is not damage: a WAL of committed transactions opens
 * with all of them; one whose last commit was torn opens without it */
Test(damaged, crash_leftovers_open) {
    char *p = make_history("crash1.db");
    leave_wal(p, 4);
    cr_assert_eq(count_convs(p), 44);
    free(p);
    p = make_history("crash2.db");
    leave_wal(p, 4);
    char *w = wal_of(p);
    size_t n = file_size(w), fs = wal_frame_size(p);
    cr_assert_eq((n - 32) % fs, 0);
    overwrite_garbage(w, (long)(n - fs + 24 + 10), 100, 7);   /* the last frame: the last commit */
    cr_assert_eq(count_convs(p), 43);
    free(w);
    free(p);
    /* an empty file (touch) is a new database */
    p = tmp_path("touched.db");
    rm_db(p);
    fclose(fopen(p, "w"));
    st_db *db;
    st_error err = {0};
    cr_assert_eq(st_db_open(p, 0, &db, &err), ST_OK, "%s", err.msg);
    cr_assert_eq(st_db_schema_version(db), ST_DB_SCHEMA_VERSION);
    st_db_close(db);
    free(p);
}

/* damage SQLite meets after the open: the connection writes nothing more,
 * not even the checkpoint its close would do */
Test(damaged, found_while_open_stops_writes) {
    char *p = make_history("late.db");
    st_db *db;
    st_error err = {0};
    cr_assert_eq(st_db_open(p, 0, &db, &err), ST_OK, "%s", err.msg);
    int64_t id = add_conv(db, "in the WAL", "user text", "a reply");   /* a transaction in the WAL */
    /* every page but the first (the schema) overwritten behind SQLite's back,
     * and the pages SQLite has cached dropped */
    long size = (long)file_size(p);
    overwrite_garbage(p, 4096, (size_t)(size - 4096), 8);
    sqlite3_db_release_memory(db->h);
    size_t n_db;
    char *damaged = tu_read_file(p, &n_db);
    msgs_seen s = {0};
    hits h = {0};
    st_status st = st_db_messages(db, 1, seen_msg, &s, &err);
    if (st == ST_OK) st = st_db_search(db, "abcdefgh", false, 10, "[", "]", collect_hit, &h, &err);
    cr_assert_eq(st, ST_ERR_FORMAT, "reading a damaged file: %d %s", st, err.msg);
    cr_assert(strstr(err.msg, "is damaged") && strstr(err.msg, p), "%s", err.msg);
    cr_assert(st_db_damaged(db));
    st_db_message m = {.conversation_id = id, .role = "user", .content = "more"};
    cr_assert_eq(st_db_message_add(db, &m, NULL, &err), ST_ERR_FORMAT);
    cr_assert(strstr(err.msg, "is damaged"), "%s", err.msg);
    st_db_close(db);
    cr_assert(file_bytes_equal(p, damaged, n_db), "the damaged file was written to");
    char *w = wal_of(p);
    cr_assert(tu_file_exists(w), "the WAL was checkpointed away");
    free(w);
    free(damaged);
    free(p);
}
