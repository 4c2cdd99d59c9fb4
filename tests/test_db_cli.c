/* test_db_cli.c — the database through the strata binary: `strata run --save`
 * killed with SIGKILL at random moments (the file stays intact and keeps
 * every prompt and reply the process reported saved), Ctrl-C keeps a stopped
 * reply, bad databases (not SQLite, newer schema, missing or read-only
 * directory, full disk, a damaged file or WAL: never written) leave
 * generation and benchmarks working, and `strata history`. */
#define _GNU_SOURCE
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STRATA STRATA_BINARY_DIR "/strata"

static const char *model(void) {
    static char p[4096];
    snprintf(p, sizeof p, "%s", tu_source_path("assets/tiny-14m-q8_0.gguf"));
    return p;
}

static const char *fast_dir(void) { return tu_fast_dir("cli"); }

static void path_in(char *buf, size_t n, const char *dir, const char *name) {
    static int k;
    snprintf(buf, n, "%s/cli%d-%d-%s", dir, (int)getpid(), k++, name);
}

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* starts argv with stdout/stderr to files; fsize > 0: RLIMIT_FSIZE (a full disk) */
static pid_t spawn(char *const argv[], const char *out, const char *err, long fsize) {
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0) _exit(127);
        dup2(o, 1);
        dup2(e, 2);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        if (fsize > 0) {
            struct rlimit rl = {(rlim_t)fsize, (rlim_t)fsize};
            setrlimit(RLIMIT_FSIZE, &rl);
            signal(SIGXFSZ, SIG_IGN); /* writes past the limit fail with EFBIG */
        }
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

typedef struct {
    int status;  /* exit status, or 128 + signal */
    char *out, *err;
} result;

static void result_free(result *r) { free(r->out); free(r->err); }

static result run_cmd(char *const argv[], long fsize) {
    char out[4200], err[4200];
    path_in(out, sizeof out, fast_dir(), "out");
    path_in(err, sizeof err, fast_dir(), "err");
    pid_t pid = spawn(argv, out, err, fsize);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    result r = {WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), tu_read_file(out, NULL), tu_read_file(err, NULL)};
    if (!r.out) r.out = strdup("");
    if (!r.err) r.err = strdup("");
    unlink(out);
    unlink(err);
    return r;
}

static sqlite3 *open_raw(const char *db) {
    sqlite3 *h;
    cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK, "%s", db);
    sqlite3_busy_timeout(h, 5000);
    return h;
}

static char *q_text(sqlite3 *h, const char *sql, int64_t arg) {
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(h));
    sqlite3_bind_int64(st, 1, arg);
    char *s = NULL;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) s = strdup((const char *)sqlite3_column_text(st, 0));
    else cr_assert(rc == SQLITE_ROW || rc == SQLITE_DONE, "%s: %s", sql, sqlite3_errmsg(h));
    sqlite3_finalize(st);
    return s;
}

static void assert_intact(sqlite3 *h) {
    char *ic = q_text(h, "PRAGMA integrity_check", 0);
    cr_assert_str_eq(ic, "ok");
    free(ic);
    char *msg = NULL;
    cr_assert_eq(sqlite3_exec(h, "INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')", NULL, NULL, &msg),
                 SQLITE_OK, "FTS index: %s", msg ? msg : "");
}

/* ---------------------------------------------------------------------------
 * crash safety */
typedef struct {
    int64_t conv;      /* reported saved before generation */
    char prompt[64];
    int64_t msg;       /* reply reported saved (0: none) */
    char *reply;
} saved;

static void kill_runs(const char *dir, int iterations, uint64_t seed) {
    char db[4200], out[4200], err[4200];
    path_in(db, sizeof db, dir, "crash.db");
    path_in(out, sizeof out, dir, "crash.out");
    path_in(err, sizeof err, dir, "crash.err");
    saved *sv = calloc((size_t)iterations + 3, sizeof *sv);
    int n_sv = 0, n_replies = 0, n_early = 0;
    uint64_t full_us = 0;
    srand((unsigned)seed);
    uint64_t cal[3];
    for (int it = -3; it < iterations; it++) {
        char prompt[64], npred[16], seedbuf[16];
        snprintf(prompt, sizeof prompt, "Story %d: the little fox", it);
        snprintf(npred, sizeof npred, "%d", 4 + (it & 7));
        snprintf(seedbuf, sizeof seedbuf, "%d", it + 2);
        char *argv[] = {STRATA, "run", "-m", (char *)model(), "-t", "1", "-n", npred, "--seed", seedbuf, "--no-echo",
                        "--save", "--db", db, "-p", prompt, NULL};
        unlink(out); /* a child killed before it opens them must not leave the last run's */
        unlink(err);
        uint64_t t0 = now_us();
        pid_t pid = spawn(argv, out, err, 0);
        int st;
        if (it < 0) {
            /* runs to the end: how long a whole run takes (the median of 3) */
            cr_assert_eq(waitpid(pid, &st, 0), pid);
            cal[it + 3] = now_us() - t0;
            cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
            if (it == -1) {
                uint64_t a = cal[0], b = cal[1], c = cal[2];
                full_us = a > b ? (b > c ? b : a > c ? c : a) : (a > c ? a : b > c ? c : b);
            }
        } else {
            /* a moment in the first half of the run, anywhere in it, or in
             * its tail: after it reported the reply saved (the statistics,
             * the checkpoint of the close, the exit). The tail is found by
             * watching stderr, not by the calibration's time: on a loaded
             * machine runs take several times as long as it measured */
            uint64_t r = (uint64_t)rand();
            bool reaped = false;
            if (it % 3 == 2) {
                for (int k = 0; k < 60000 && !reaped; k++) {   /* (a hang check: 60 s) */
                    char *e = tu_read_file(err, NULL);
                    bool saved = e && strstr(e, "reply saved");
                    free(e);
                    if (saved) break;
                    reaped = waitpid(pid, &st, WNOHANG) == pid;
                    usleep(1000);
                }
                if (!reaped) usleep((useconds_t)(r % (full_us / 4 + 1)));
            } else usleep((useconds_t)(it % 3 == 0 ? r % (full_us / 2 + 1) : r % (full_us + 1)));
            if (!reaped) {
                kill(pid, SIGKILL);
                cr_assert_eq(waitpid(pid, &st, 0), pid);
            }
        }
        /* what the process said it had saved */
        char *e = tu_read_file(err, NULL), *o = tu_read_file(out, NULL);
        const char *p;
        long long conv = 0, c2 = 0, mid = 0;
        if (e && (p = strstr(e, "saving as conversation "))) sscanf(p, "saving as conversation %lld", &conv);
        if (e && (p = strstr(e, "reply saved (conversation "))) sscanf(p, "reply saved (conversation %lld, message %lld", &c2, &mid);
        if (conv) { /* the calibration runs' saves must survive the kills too */
            saved *s = &sv[n_sv++];
            s->conv = conv;
            snprintf(s->prompt, sizeof s->prompt, "%s", prompt);
            if (mid) {
                cr_assert_eq(c2, conv);
                cr_assert(o && strlen(o) > 0);
                o[strlen(o) - 1] = 0; /* the newline after the reply */
                s->msg = mid;
                s->reply = strdup(o);
                n_replies++;
            }
        }
        if (it >= 0 && !mid) n_early++;
        /* what a kill left behind (a WAL, a torn last frame) never looks
         * damaged to the next run: every run that got to say so saved */
        cr_assert(!e || (!strstr(e, "cannot save") && !strstr(e, "could not save")),
                  "iteration %d: the run could not save:\n%s", it, e);
        free(e);
        free(o);
        /* the file is intact and holds everything reported saved, so far;
         * every other time the next run meets the killed one's WAL instead
         * (this check's close would checkpoint it away) */
        if (it >= 0 && (it & 1) && it != iterations - 1) continue;
        if (access(db, F_OK) != 0) continue; /* killed before it was created */
        sqlite3 *h = open_raw(db);
        assert_intact(h);
        for (int i = 0; i < n_sv; i++) {
            char *u = q_text(h, "SELECT content FROM messages WHERE conversation_id = ?1 AND role = 'user'", sv[i].conv);
            cr_assert(u && !strcmp(u, sv[i].prompt), "iteration %d: conversation %lld lost its prompt '%s' (has '%s')",
                      it, (long long)sv[i].conv, sv[i].prompt, u ? u : "(none)");
            free(u);
            if (!sv[i].msg) continue;
            char *r = q_text(h, "SELECT content FROM messages WHERE id = ?1 AND role = 'assistant' AND stopped = 0",
                             sv[i].msg);
            cr_assert(r, "iteration %d: reply %lld was reported saved and is gone", it, (long long)sv[i].msg);
            cr_assert_str_eq(r, sv[i].reply, "reply %lld differs from what was printed", (long long)sv[i].msg);
            free(r);
        }
        sqlite3_close(h);
    }
    /* the random moments covered both sides of the commits */
    cr_assert_geq(n_replies, 3 + (iterations >= 50 ? iterations / 10 : 0),
                  "only %d of %d runs completed (a run takes %llu us)", n_replies - 3, iterations,
                  (unsigned long long)full_us);
    cr_assert_geq(n_early, iterations >= 50 ? iterations / 10 : 1,
                  "only %d of %d runs were killed before the reply was saved", n_early, iterations);
    cr_log_info("%d kills: %d replies saved, %d killed before (a whole run: %llu us)", iterations, n_replies - 3,
                n_early, (unsigned long long)full_us);
    for (int i = 0; i < n_sv; i++) free(sv[i].reply);
    free(sv);
}

Test(crash, sigkill_100_times, .timeout = 120) {
    kill_runs(fast_dir(), 100, (uint64_t)time(NULL));
}

/* the same on the disk, where commits wait for fsync and kills land in it */
Test(crash, sigkill_on_disk, .timeout = 120) {
    kill_runs(tu_tmpdir(), 12, (uint64_t)time(NULL) + 1);
}

/* ---------------------------------------------------------------------------
 * a reply stopped with Ctrl-C is kept, marked stopped */
Test(run_save, ctrl_c_keeps_stopped_reply, .timeout = 60) {
    char db[4200], out[4200], err[4200];
    path_in(db, sizeof db, fast_dir(), "stop.db");
    path_in(out, sizeof out, fast_dir(), "stop.out");
    path_in(err, sizeof err, fast_dir(), "stop.err");
    char *argv[] = {STRATA, "run", "-m", (char *)model(), "-t", "1", "-n", "100000", "--ignore-eos", "-c", "2048",
                    "--no-echo", "--save", "--db", db, "--title", "stopped one", "-p", "Once", NULL};
    pid_t pid = spawn(argv, out, err, 0);
    /* wait for some output, then Ctrl-C */
    for (int i = 0; i < 2000; i++) {
        struct stat sb;
        if (stat(out, &sb) == 0 && sb.st_size > 20) break;
        usleep(5000);
    }
    kill(pid, SIGINT);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    char *e = tu_read_file(err, NULL), *o = tu_read_file(out, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", e);
    cr_assert(strstr(e, "reply saved, marked stopped"), "%s", e);
    o[strlen(o) - 1] = 0;
    sqlite3 *h = open_raw(db);
    char *r = q_text(h, "SELECT content FROM messages WHERE role = 'assistant' AND stopped = 1", 0);
    cr_assert(r && !strcmp(r, o), "stored '%s' printed '%s'", r, o);
    char *t = q_text(h, "SELECT title FROM conversations", 0);
    cr_assert_str_eq(t, "stopped one");
    free(r);
    free(t);
    free(e);
    free(o);
    sqlite3_close(h);
}

/* ---------------------------------------------------------------------------
 * bad databases: a clear error, and the text is generated anyway */
static void run_with_bad_db(const char *db, long fsize, const char *expect) {
    char *argv[] = {STRATA, "run", "-m", (char *)model(), "-t", "1", "-n", "6", "--no-echo", "--save", "--db",
                    (char *)db, "-p", "Once upon a time", NULL};
    result r = run_cmd(argv, fsize);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_gt(strlen(r.out), 3, "no text generated:\n%s", r.err);
    cr_assert(strstr(r.err, expect), "expected '%s' in:\n%s", expect, r.err);
    cr_assert(strstr(r.err, "without saving") || strstr(r.err, "could not save the reply"), "%s", r.err);
    result_free(&r);
}

Test(run_save, bad_databases_still_generate, .timeout = 60) {
    char p[4200];
    /* not a SQLite file: refused, untouched */
    path_in(p, sizeof p, fast_dir(), "notes.txt");
    FILE *f = fopen(p, "w");
    fputs("my notes, not a database\n", f);
    fclose(f);
    run_with_bad_db(p, 0, "not a SQLite database");
    char *c = tu_read_file(p, NULL);
    cr_assert_str_eq(c, "my notes, not a database\n");
    free(c);
    /* a newer schema */
    path_in(p, sizeof p, fast_dir(), "newer.db");
    sqlite3 *h;
    sqlite3_open(p, &h);
    sqlite3_exec(h, "CREATE TABLE t (x); PRAGMA user_version = 1000;", NULL, NULL, NULL);
    sqlite3_close(h);
    run_with_bad_db(p, 0, "newer than this strata");
    /* a missing directory */
    path_in(p, sizeof p, fast_dir(), "missing/dir/x.db");
    run_with_bad_db(p, 0, "does not exist");
    /* a read-only directory (/proc for root, who may write anywhere else) */
    if (geteuid() == 0) snprintf(p, sizeof p, "/proc/strata-test.db");
    else {
        path_in(p, sizeof p, fast_dir(), "ro");
        mkdir(p, 0555);
        strcat(p, "/x.db");
    }
    run_with_bad_db(p, 0, "cannot create");
}

/* a damaged file: every command says so, naming the file; run and bench go
 * on without it; neither the file nor its WAL changes by a byte */
static result history(const char *db, const char *a1, const char *a2, const char *a3);
static void damage_cli_check(const char *db, const char *expect) {
    char wal[4300];
    snprintf(wal, sizeof wal, "%s-wal", db);
    size_t n_db = 0, n_wal = 0;
    char *b_db = tu_read_file(db, &n_db), *b_wal = access(wal, F_OK) == 0 ? tu_read_file(wal, &n_wal) : NULL;
    result r = history(db, "list", NULL, NULL);
    cr_assert_eq(r.status, 1, "history list on a damaged file: %d\n%s%s", r.status, r.out, r.err);
    cr_assert(strstr(r.err, expect) && strstr(r.err, db), "%s", r.err);
    result_free(&r);
    run_with_bad_db(db, 0, expect);
    char *argv[] = {STRATA, "bench", "-m", (char *)model(), "-p", "8", "-n", "4", "-r", "1", "-t", "1", "--db",
                    (char *)db, NULL};
    r = run_cmd(argv, 0);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "| llama"), "bench measured nothing:\n%s", r.out);
    cr_assert(strstr(r.err, "cannot store the results") && strstr(r.err, expect), "%s", r.err);
    result_free(&r);
    size_t n;
    char *a_db = tu_read_file(db, &n);
    cr_assert(a_db && n == n_db && !memcmp(a_db, b_db, n), "the damaged file was written to");
    free(a_db);
    if (b_wal) {
        char *a_wal = tu_read_file(wal, &n);
        cr_assert(a_wal && n == n_wal && !memcmp(a_wal, b_wal, n), "the WAL was written to");
        free(a_wal);
    }
    free(b_db);
    free(b_wal);
}

Test(run_save, damaged_database_never_written, .timeout = 120) {
    char db[4200];
    path_in(db, sizeof db, fast_dir(), "damaged.db");
    /* a history of a few conversations, then a page in the middle zeroed */
    for (int i = 0; i < 3; i++) {
        char *argv[] = {STRATA, "run", "-m", (char *)model(), "-t", "1", "-n", "4", "--no-echo", "--save", "--db", db,
                        "-p", "Once upon a time there was a long prompt to fill a few pages of the database", NULL};
        result r = run_cmd(argv, 0);
        cr_assert_eq(r.status, 0, "%s", r.err);
        result_free(&r);
    }
    struct stat sb;
    cr_assert_eq(stat(db, &sb), 0);
    cr_assert_geq(sb.st_size, 8 * 4096);
    char zero[4096] = {0};
    int fd = open(db, O_WRONLY);
    cr_assert_eq(pwrite(fd, zero, sizeof zero, (sb.st_size / 4096 / 2) * 4096), (ssize_t)sizeof zero);
    close(fd);
    damage_cli_check(db, "is damaged");
    /* an intact file beside a WAL of garbage */
    path_in(db, sizeof db, fast_dir(), "walgarbage.db");
    char *argv[] = {STRATA, "run", "-m", (char *)model(), "-t", "1", "-n", "4", "--no-echo", "--save", "--db", db,
                    "-p", "a story", NULL};
    result r = run_cmd(argv, 0);
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    char wal[4300];
    snprintf(wal, sizeof wal, "%s-wal", db);
    FILE *f = fopen(wal, "wb");
    for (int i = 0; i < 5000; i++) fputc((i * 7919) & 0xff, f);
    fclose(f);
    damage_cli_check(db, "write-ahead log");
}

Test(run_save, full_disk_still_generates, .timeout = 60) {
    char db[4200];
    path_in(db, sizeof db, tu_tmpdir(), "full.db");
    /* a database with a conversation in it; then no file may grow past 8 KiB */
    char *argv[] = {STRATA, "run", "-m", (char *)model(), "-t", "1", "-n", "4", "--no-echo", "--save", "--db", db,
                    "-p", "first", NULL};
    result r = run_cmd(argv, 0);
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    struct stat sb;
    stat(db, &sb);
    run_with_bad_db(db, 8192, "cannot save this conversation");
    sqlite3 *h = open_raw(db);
    assert_intact(h);
    char *n = q_text(h, "SELECT count(*) FROM messages", 0);
    cr_assert_str_eq(n, "2");
    free(n);
    sqlite3_close(h);
}

/* ---------------------------------------------------------------------------
 * strata history */
static result history(const char *db, const char *a1, const char *a2, const char *a3) {
    char *argv[] = {STRATA, "history", (char *)a1, "--db", (char *)db, (char *)a2, (char *)a3, NULL};
    return run_cmd(argv, 0);
}

Test(history_cli, list_show_search_export_rm, .timeout = 60) {
    char db[4200];
    path_in(db, sizeof db, fast_dir(), "hist.db");
    result r = history(db, "list", NULL, NULL);
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "no conversations yet"), "%s", r.out);
    result_free(&r);
    const char *prompts[] = {"The old lighthouse keeper", "A recipe for pancakes"};
    for (int i = 0; i < 2; i++) {
        char *argv[] = {STRATA, "run", "-m", (char *)model(), "-t", "1", "-n", "6", "--save", "--db", db, "-p",
                        (char *)prompts[i], NULL};
        r = run_cmd(argv, 0);
        cr_assert_eq(r.status, 0, "%s", r.err);
        result_free(&r);
    }
    r = history(db, "list", NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "The old lighthouse keeper") && strstr(r.out, "A recipe for pancakes"), "%s", r.out);
    cr_assert(strstr(r.out, "A recipe") < strstr(r.out, "The old"), "newest first:\n%s", r.out);
    result_free(&r);
    r = history(db, "show", "1", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "── user") && strstr(r.out, "── assistant") && strstr(r.out, "tok/s"), "%s", r.out);
    result_free(&r);
    r = history(db, "search", "lighthouse", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "**lighthouse**") && strstr(r.out, "conversation 1"), "%s", r.out);
    result_free(&r);
    r = history(db, "export", "2", "--format");
    cr_assert_neq(r.status, 0); /* --format without its value */
    result_free(&r);
    char *argv[] = {STRATA, "history", "export", "2", "--format", "json", "--db", db, NULL};
    r = run_cmd(argv, 0);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cJSON *j = cJSON_Parse(r.out);
    cr_assert(j, "%s", r.out);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "title")->valuestring, "A recipe for pancakes");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "messages")), 2);
    cJSON_Delete(j);
    result_free(&r);
    r = history(db, "export", "2", NULL);
    cr_assert(strstr(r.out, "# A recipe for pancakes") && strstr(r.out, "## Assistant"), "%s", r.out);
    result_free(&r);
    r = history(db, "rm", "1", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "deleted conversation 1 (2 messages)"), "%s", r.out);
    result_free(&r);
    r = history(db, "show", "1", NULL);
    cr_assert_neq(r.status, 0);
    cr_assert(strstr(r.err, "no conversation 1"), "%s", r.err);
    result_free(&r);
    r = history(db, "search", "lighthouse", NULL);
    cr_assert(strstr(r.out, "no messages match"), "%s", r.out);
    result_free(&r);
    /* every subcommand has --help */
    const char *subs[] = {"list", "show", "search", "export", "rm"};
    for (int i = 0; i < 5; i++) {
        r = history(db, subs[i], "--help", NULL);
        cr_assert_eq(r.status, 0);
        cr_assert(strstr(r.out, "usage: strata history"), "%s", r.out);
        result_free(&r);
    }
    r = history(db, "show", "abc", NULL);
    cr_assert_eq(r.status, 2);
    result_free(&r);
}

/* ---------------------------------------------------------------------------
 * strata bench: runs stored, listed, compared; llama-bench output formats */
static result bench(const char *db, const char *o1, const char *o2, const char *o3, const char *o4) {
    char *argv[] = {STRATA, "bench", "-m", (char *)model(), "-p", "8", "-n", "4", "-r", "2", "-t", "1", "--db",
                    (char *)db, (char *)o1, (char *)o2, (char *)o3, (char *)o4, NULL};
    return run_cmd(argv, 0);
}

static int count_rows(const char *db) {
    sqlite3 *h = open_raw(db);
    char *n = q_text(h, "SELECT count(*) FROM bench_runs", 0);
    int v = atoi(n);
    free(n);
    sqlite3_close(h);
    return v;
}

/* --host-cache: on the CPU it caches nothing and says why; the run's row
 * records the bytes cached (0); 0 is refused */
Test(bench_cli, host_cache_option, .timeout = 120) {
    char db[4200];
    path_in(db, sizeof db, fast_dir(), "bench_hc.db");
    result r = bench(db, "--cache-layers", "2", "--host-cache", "all");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.err, "--host-cache caches nothing: the CPU backend's layer slots are host memory already"), "%s",
              r.err);
    result_free(&r);
    sqlite3 *h = open_raw(db);
    char *v = q_text(h, "SELECT group_concat(ifnull(host_cache_bytes, 'null')) FROM bench_runs", 0);
    cr_assert_str_eq(v, "0,0");
    free(v);
    sqlite3_close(h);
    r = bench(db, "--cache-layers", "2", "--host-cache", "0");
    cr_assert_eq(r.status, 2, "%s", r.err);
    cr_assert(strstr(r.err, "--host-cache must be positive"), "%s", r.err);
    result_free(&r);
}

Test(bench_cli, store_list_compare_formats, .timeout = 120) {
    char db[4200];
    path_in(db, sizeof db, fast_dir(), "bench.db");
    result r = bench(db, NULL, NULL, NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "| llama"), "the table:\n%s", r.out);
    cr_assert(strstr(r.err, "stored as run 1"), "%s", r.err);
    result_free(&r);
    cr_assert_eq(count_rows(db), 2);
    /* JSON: an array that parses; the run is stored with the store's figures */
    r = bench(db, "--cache-layers", "4", "-o", "json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cJSON *j = cJSON_Parse(r.out);
    cr_assert(j && cJSON_IsArray(j), "%s", r.out);
    cr_assert_eq(cJSON_GetArraySize(j), 2);
    cJSON *o = cJSON_GetArrayItem(j, 0);
    cr_assert_str_eq(cJSON_GetObjectItem(o, "test")->valuestring, "pp8");
    cr_assert_str_eq(cJSON_GetObjectItem(o, "cache_policy")->valuestring, "ring");
    cr_assert(cJSON_GetObjectItem(o, "avg_ts")->valuedouble > 0);
    cr_assert(cJSON_GetObjectItem(o, "build_commit")->valuestring[0]);
    cJSON_Delete(j);
    cr_assert(strstr(r.err, "stored as run 3"), "%s", r.err);
    result_free(&r);
    cr_assert_eq(count_rows(db), 4);
    /* SQL: what sqlite3 would be fed; --no-save stores nothing */
    r = bench(db, "-o", "sql", "--no-save", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    sqlite3 *h;
    sqlite3_open(":memory:", &h);
    char *msg = NULL;
    cr_assert_eq(sqlite3_exec(h, r.out, NULL, NULL, &msg), SQLITE_OK, "%s\n%s", msg, r.out);
    char *n = q_text(h, "SELECT count(*) FROM test WHERE avg_ts > 0", 0);
    cr_assert_str_eq(n, "2");
    free(n);
    sqlite3_close(h);
    result_free(&r);
    cr_assert_eq(count_rows(db), 4);
    /* CSV: a header and a line per test */
    r = bench(db, "-o", "csv", "--no-save", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    int lines = 0;
    for (char *p = r.out; *p; p++) lines += *p == '\n';
    cr_assert_eq(lines, 3, "%s", r.out);
    result_free(&r);
    /* list and compare */
    char *la[] = {STRATA, "bench", "list", "--db", db, NULL};
    r = run_cmd(la, 0);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "pp8") && strstr(r.out, "ring 4L"), "%s", r.out);
    result_free(&r);
    char *ca[] = {STRATA, "bench", "compare", "1", "3", "--db", db, NULL};
    r = run_cmd(ca, 0);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "B/A") && strstr(r.out, "tg4") && strstr(r.out, "cache_layers"), "%s", r.out);
    result_free(&r);
    char *cb[] = {STRATA, "bench", "compare", "1", "99", "--db", db, NULL};
    r = run_cmd(cb, 0);
    cr_assert_neq(r.status, 0);
    cr_assert(strstr(r.err, "no stored benchmark run 99"), "%s", r.err);
    result_free(&r);
    /* a database that cannot be used: measured anyway */
    char bad[4200];
    path_in(bad, sizeof bad, fast_dir(), "bench-notes.txt");
    FILE *f = fopen(bad, "w");
    fputs("not a database\n", f);
    fclose(f);
    r = bench(bad, NULL, NULL, NULL, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "| llama"), "%s", r.out);
    cr_assert(strstr(r.err, "not a SQLite database") && strstr(r.err, "without saving"), "%s", r.err);
    result_free(&r);
}

/* --chat: the saved user message is what the user typed, not the rendered template */
Test(run_save, chat_keeps_user_text_and_system_prompt, .timeout = 60) {
    char db[4200];
    path_in(db, sizeof db, fast_dir(), "chat.db");
    char *argv[] = {STRATA, "run", "-m", (char *)model(), "-t", "1", "-n", "4", "--chat", "--system", "Be brief.",
                    "--save", "--db", db, "-p", "Hi there", NULL};
    result r = run_cmd(argv, 0);
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    sqlite3 *h = open_raw(db);
    char *u = q_text(h, "SELECT content FROM messages WHERE role = 'user'", 0);
    char *sys = q_text(h, "SELECT system_prompt FROM conversations", 0);
    cr_assert_str_eq(u, "Hi there");
    cr_assert_str_eq(sys, "Be brief.");
    free(u);
    free(sys);
    sqlite3_close(h);
}
