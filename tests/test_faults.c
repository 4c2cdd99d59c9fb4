/* test_faults.c — I/O faults and resource limits (issue 8):
 *  - memory: the up-front check of st_session_new (KV cache, buffers, layer
 *    slots against the available memory; STRATA_MEM_LIMIT and
 *    st_set_mem_limit; /proc/meminfo and cgroup v2 parsing on fake files),
 *    the stated context limit;
 *  - context: a prompt longer than the context is refused before anything is
 *    evaluated, generation stops at a full context with finish reason
 *    ST_FINISH_CONTEXT and the session stays usable; `strata run` for both;
 *  - the model file truncated, replaced (rename) or written in place while a
 *    session streams from it, with and without a layer budget, between tokens
 *    and in the middle of a forward pass (a read hook truncates the file from
 *    inside the read a prefetch thread makes): errors naming the file (and the
 *    layer and offset), no SIGBUS, no hang, what a new prompt / session gets.
 * Every file fault works on a copy of the bundled model in a temporary
 * directory. test_faults_asan runs the same tests against the sanitized core. */
#define _GNU_SOURCE
#include "backend.h"
#include "mem.h"
#include "model.h"
#include "store.h"
#include "strata.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MODEL "assets/tiny-14m-q8_0.gguf"
#define STRATA STRATA_BINARY_DIR "/strata"
#define MAXT 256

static const char *k_text = "Once upon a time, there was a little girl named Lily. She loved to play outside.";

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

static st_model *open_model_at(const char *path) {
    st_model_params mp;
    st_model_params_default(&mp);
    mp.n_threads = 2;
    st_model *m = NULL;
    st_error err = {0};
    cr_assert_eq(st_model_open(path, &mp, &m, &err), ST_OK, "%s", err.msg);
    return m;
}

static st_session_params params(int n_ctx) {
    st_session_params sp;
    st_session_params_default(&sp);
    sp.n_ctx = n_ctx;
    sp.backend = ST_BACKEND_CPU;
    return sp;
}

static int tokenize(const st_model *m, const char *text, int32_t *ids, int cap) {
    int64_t n = st_tok_encode(st_model_tokenizer(m), text, strlen(text), true, false, ids, cap);
    cr_assert(n > 0 && n <= cap, "tokenize: %lld", (long long)n);
    return (int)n;
}

static bool has(const char *msg, const char *needle) { return strstr(msg, needle) != NULL; }

static void copy_file(const char *from, const char *to) {
    size_t n = 0;
    char *b = tu_read_file(from, &n);
    cr_assert_not_null(b, "read %s", from);
    FILE *f = fopen(to, "wb");
    cr_assert_not_null(f, "create %s", to);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
    free(b);
}

/* a copy of the bundled model in this test's temporary directory */
static const char *model_copy(const char *name, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", tu_tmpdir(), name);
    copy_file(tu_source_path(MODEL), buf);
    return buf;
}

static uint64_t file_size(const char *path) {
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0, "stat %s", path);
    return (uint64_t)sb.st_size;
}

/* first byte of layer il in the file */
static uint64_t layer_start(const st_model *m, int il) {
    uint64_t lo = UINT64_MAX;
    for (int k = 0; k < ST_LAYER_N_TENSORS; k++) {
        const st_tensor *t = st_layer_tensor(&m->layers[il], k);
        if (t->file_offset < lo) lo = t->file_offset;
    }
    return lo;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* .fini: this test's temporary directory (model copies, fake /proc) goes */
static void rm_tmpdir(void) {
    const char *d = tu_tmpdir();
    if (!strncmp(d, "/tmp/strata-test-", 17)) nftw(d, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ================================================================ memory */

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "create %s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* dir/name into buf (asserting it fits) */
static const char *pj(char *buf, size_t cap, const char *dir, const char *name) {
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    cr_assert(n > 0 && (size_t)n < cap, "path too long");
    return buf;
}

static void mkdir_p(const char *dir) {
    char b[1024];
    snprintf(b, sizeof b, "%s", dir);
    for (char *p = b + 1; *p; p++)
        if (*p == '/') { *p = 0; mkdir(b, 0755); *p = '/'; }
    mkdir(b, 0755);
}

Test(mem, detection_from_meminfo_and_cgroup_v2, .fini = rm_tmpdir) {
    char proc[512], cg[512], p[1024];
    snprintf(proc, sizeof proc, "%s/proc", tu_tmpdir());
    snprintf(cg, sizeof cg, "%s/cgroup", tu_tmpdir());
    snprintf(p, sizeof p, "%s/self", proc);
    mkdir_p(p);
    write_text(pj(p, sizeof p, proc, "meminfo"), "MemTotal:       24683656 kB\nMemFree:        20000000 kB\nMemAvailable:    8000000 kB\n");
    /* no cgroup v2 line (cgroup v1 only): MemAvailable */
    write_text(pj(p, sizeof p, proc, "self/cgroup"), "12:memory:/docker/abc\n1:name=systemd:/\n");
    st_mem_avail av;
    st_mem_detect(proc, cg, &av);
    cr_assert(av.limited);
    cr_assert_eq(av.bytes, 8000000ull * 1024);
    cr_assert_str_eq(av.source, "MemAvailable");

    /* cgroup v2 at /a/b: b has no limit ("max"), a allows 2 GiB of which
     * 1.5 GiB are in use, 0.5 GiB of that page cache: 1 GiB left */
    write_text(p, "0::/a/b\n");
    char a[1024], b[1024];
    snprintf(a, sizeof a, "%s/a", cg);
    snprintf(b, sizeof b, "%s/a/b", cg);
    mkdir_p(b);
    write_text(pj(p, sizeof p, b, "memory.max"), "max\n");
    write_text(pj(p, sizeof p, b, "memory.current"), "1000\n");
    write_text(pj(p, sizeof p, a, "memory.max"), "2147483648\n");
    write_text(pj(p, sizeof p, a, "memory.current"), "1610612736\n");
    write_text(pj(p, sizeof p, a, "memory.stat"), "anon 1073741824\nfile 536870912\nkernel 0\n");
    st_mem_detect(proc, cg, &av);
    cr_log_info("cgroup: %llu bytes from %s", (unsigned long long)av.bytes, av.source);
    cr_assert(av.limited);
    cr_assert_eq(av.bytes, 1ull << 30, "2 GiB - (1.5 GiB - 0.5 GiB of page cache) = 1 GiB, got %llu",
                 (unsigned long long)av.bytes);
    cr_assert(has(av.source, "cgroup /a") && has(av.source, "memory.max"), "source: %s", av.source);

    /* a limit above what the machine has: MemAvailable stays the figure */
    write_text(pj(p, sizeof p, a, "memory.max"), "1099511627776\n");
    st_mem_detect(proc, cg, &av);
    cr_assert_eq(av.bytes, 8000000ull * 1024);
    /* over the limit already: 0 available, not a wrapped-around number */
    write_text(p, "1000\n");
    st_mem_detect(proc, cg, &av);
    cr_assert(av.limited);
    cr_assert_eq(av.bytes, 0);

    /* nothing readable: no limit to check against */
    st_mem_detect("/nonexistent-proc", "/nonexistent-cgroup", &av);
    cr_assert_not(av.limited);

    /* the real machine, for the log */
    st_mem_detect("/proc", "/sys/fs/cgroup", &av);
    char s[32];
    cr_log_info("this machine: %s available (%s)", av.limited ? st_mem_fmt(av.bytes, s, sizeof s) : "no limit", av.source);
}

Test(mem, sizes) {
    struct { const char *s; uint64_t v; } ok[] = {
        {"0", 0}, {"100", 100}, {"100B", 100}, {"1k", 1024}, {"1KiB", 1024}, {"512M", 512ull << 20},
        {"1.5G", 3ull << 29}, {"2GiB", 2ull << 30}, {"1gb", 1ull << 30}, {"1T", 1ull << 40}, {" 64M ", 64ull << 20},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 1;
        cr_assert(st_mem_parse_size(ok[i].s, &v), "'%s' should parse", ok[i].s);
        cr_assert_eq(v, ok[i].v, "'%s': %llu", ok[i].s, (unsigned long long)v);
    }
    const char *bad[] = {"", "abc", "-1", "1X", "1e30", "G", "1.5.2G", "inf", "nan", "+5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v;
        cr_assert_not(st_mem_parse_size(bad[i], &v), "'%s' should not parse", bad[i]);
    }
    char b[32];
    cr_assert_str_eq(st_mem_fmt(16ull << 30, b, sizeof b), "16.0 GiB");
    cr_assert_str_eq(st_mem_fmt(3ull << 19, b, sizeof b), "1.5 MiB");
    cr_assert_str_eq(st_mem_fmt(100, b, sizeof b), "100 B");
}

Test(mem, overrides) {
    st_mem_avail av;
    st_error err = {0};
    setenv("STRATA_MEM_LIMIT", "1G", 1);
    cr_assert_eq(st_mem_available(&av, &err), ST_OK);
    cr_assert(av.limited);
    cr_assert_eq(av.bytes, 1ull << 30);
    cr_assert_str_eq(av.source, "STRATA_MEM_LIMIT");
    setenv("STRATA_MEM_LIMIT", "off", 1);
    cr_assert_eq(st_mem_available(&av, &err), ST_OK);
    cr_assert_not(av.limited);
    /* the function wins over the environment */
    st_set_mem_limit(123456789);
    cr_assert_eq(st_mem_available(&av, &err), ST_OK);
    cr_assert(av.limited && av.bytes == 123456789);
    st_set_mem_limit(ST_MEM_UNLIMITED);
    setenv("STRATA_MEM_LIMIT", "1k", 1);
    cr_assert_eq(st_mem_available(&av, &err), ST_OK);
    cr_assert_not(av.limited);
    st_set_mem_limit(ST_MEM_DETECT);
    /* a malformed value is an error, not silently ignored */
    setenv("STRATA_MEM_LIMIT", "lots", 1);
    cr_assert_eq(st_mem_available(&av, &err), ST_ERR_ARG);
    cr_assert(has(err.msg, "STRATA_MEM_LIMIT") && has(err.msg, "lots"), "%s", err.msg);
    st_model *m = open_model_at(tu_source_path(MODEL));
    st_session_params sp = params(64);
    st_session *s = NULL;
    cr_assert_eq(st_session_new(m, &sp, &s, &err), ST_ERR_ARG, "%s", err.msg);
    cr_assert_null(s);
    unsetenv("STRATA_MEM_LIMIT");
    cr_assert_eq(st_session_new(m, &sp, &s, &err), ST_OK, "%s", err.msg);
    st_session_free(s);
    st_model_close(m);
}

/* What st_session_new will compare, from the same functions it uses. */
static uint64_t session_need(const st_model *m, const st_session_params *sp) {
    uint64_t kv, bufs;
    int n_batch = sp->n_batch > 0 ? sp->n_batch : 512;
    if (n_batch > sp->n_ctx) n_batch = sp->n_ctx;
    st_cpu_backend_bytes(&m->hp, sp->n_ctx, n_batch, sp->kv_f32, 2, &kv, &bufs);
    st_store_config sc;
    st_store_config_from_session(&sc, sp);
    sc.host_slots = true;
    st_store_plan plan;
    st_error err = {0};
    cr_assert_eq(st_store_plan_slots(m, &sc, &plan, &err), ST_OK, "%s", err.msg);
    return kv + bufs + (uint64_t)m->hp.n_vocab * 4 + (uint64_t)n_batch * m->hp.n_embd * 4 +
           (uint64_t)plan.n_slots * plan.slot_bytes;
}

Test(mem, session_refused_up_front_with_the_numbers, .timeout = 120) {
    st_model *m = open_model_at(tu_source_path(MODEL));
    st_error err = {0};
    st_session *s = NULL;
    st_set_mem_limit(64ull << 20);

    /* n_ctx 2^20: 2 x 8 layers x 1048576 x 128 x 2 bytes = 4 GiB of KV cache */
    st_session_params sp = params(1 << 20);
    st_status rc = st_session_new(m, &sp, &s, &err);
    cr_log_info("%s", err.msg);
    cr_assert_eq(rc, ST_ERR_NOMEM, "%s: %s", st_status_str(rc), err.msg);
    cr_assert_null(s);
    const char *want[] = {"not enough memory", "KV cache 4.0 GiB", "2 x 8 layers x n_ctx 1048576 x 128 x 2 bytes",
                          "64.0 MiB is available", "st_set_mem_limit", "smaller context"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) cr_assert(has(err.msg, want[i]), "'%s' in: %s", want[i], err.msg);
    /* F32 cache: twice the bytes, and the message says 4-byte elements */
    sp.kv_f32 = true;
    cr_assert_eq(st_session_new(m, &sp, &s, &err), ST_ERR_NOMEM);
    cr_assert(has(err.msg, "KV cache 8.0 GiB") && has(err.msg, "x 4 bytes"), "%s", err.msg);

    /* exactly the figure fits, one byte less does not */
    sp = params(512);
    uint64_t need = session_need(m, &sp);
    st_set_mem_limit(need);
    cr_assert_eq(st_session_new(m, &sp, &s, &err), ST_OK, "with %llu bytes: %s", (unsigned long long)need, err.msg);
    st_session_free(s);
    s = NULL;
    st_set_mem_limit(need - 1);
    cr_assert_eq(st_session_new(m, &sp, &s, &err), ST_ERR_NOMEM);

    /* the layer budget counts: 2 slots fit where 8 do not */
    sp.cache_layers = 2;
    uint64_t need2 = session_need(m, &sp);
    sp.cache_layers = 8;
    uint64_t need8 = session_need(m, &sp);
    cr_assert_gt(need8, need2);
    st_set_mem_limit(need2);
    rc = st_session_new(m, &sp, &s, &err);
    cr_log_info("%s", err.msg);
    cr_assert_eq(rc, ST_ERR_NOMEM, "%s", err.msg);
    cr_assert(has(err.msg, "layer slots") && has(err.msg, "(8 x ") && has(err.msg, "smaller layer budget"), "%s", err.msg);
    sp.cache_layers = 2;
    cr_assert_eq(st_session_new(m, &sp, &s, &err), ST_OK, "%s", err.msg);
    st_session_free(s);
    s = NULL;

    /* no limit: the same context is only bounded by ST_MAX_CTX */
    st_set_mem_limit(ST_MEM_UNLIMITED);
    sp = params(4096);
    cr_assert_eq(st_session_new(m, &sp, &s, &err), ST_OK, "%s", err.msg);
    st_session_free(s);
    st_model_close(m);
}

Test(mem, too_large_context_states_the_limit) {
    st_model *m = open_model_at(tu_source_path(MODEL));
    st_error err = {0};
    st_session *s = NULL;
    st_session_params sp = params(ST_MAX_CTX + 1);
    cr_assert_eq(st_session_new(m, &sp, &s, &err), ST_ERR_ARG);
    cr_assert(has(err.msg, "4194305") && has(err.msg, "at most 4194304"), "%s", err.msg);
    st_model_close(m);
}

/* ================================================================ context */

typedef struct {
    int n;
    int32_t tok[MAXT];
    int stop_at;          /* > 0: return false at this count */
    st_session *cancel;   /* with stop_at: cancel instead of returning false */
} collect;

static bool on_collect(void *user, int32_t t, const char *piece, int len) {
    (void)piece;
    (void)len;
    collect *c = user;
    if (c->n < MAXT) c->tok[c->n] = t;
    c->n++;
    if (c->stop_at > 0 && c->n == c->stop_at) {
        if (c->cancel) st_session_cancel(c->cancel);
        else return false;
    }
    return true;
}

static st_gen_params greedy(int n) {
    st_gen_params gp;
    st_gen_params_default(&gp);
    gp.sampling.temp = 0;
    gp.n_predict = n;
    gp.ignore_eos = true;
    return gp;
}

static st_stats stats(const st_session *s) {
    st_stats ss;
    st_session_stats(s, &ss);
    return ss;
}

Test(context, prompt_longer_than_the_context_is_refused_before_evaluating) {
    st_model *m = open_model_at(tu_source_path(MODEL));
    int32_t ids[MAXT];
    int n = tokenize(m, k_text, ids, MAXT);
    cr_assert_geq(n, 20);
    st_session_params sp = params(16);
    st_session *s = NULL;
    st_error err = {0};
    cr_assert_eq(st_session_new(m, &sp, &s, &err), ST_OK, "%s", err.msg);
    st_gen_params gp = greedy(8);
    collect c = {0};
    st_status rc = st_generate(s, ids, 20, &gp, on_collect, &c, &err);
    cr_log_info("%s", err.msg);
    cr_assert_eq(rc, ST_ERR_CONTEXT, "%s: %s", st_status_str(rc), err.msg);
    cr_assert(has(err.msg, "20 tokens") && has(err.msg, "n_ctx 16"), "names the count and n_ctx: %s", err.msg);
    st_stats ss = stats(s);
    cr_assert_eq(ss.total_tokens, 0, "nothing was evaluated");
    cr_assert_eq(ss.n_prompt, 0);
    cr_assert_eq(ss.n_past, 0);
    cr_assert_eq(c.n, 0);
    cr_assert_eq(ss.finish, ST_FINISH_ERROR);
    cr_assert_eq(ss.phase, ST_PHASE_IDLE);
    /* the boundary: n_ctx - 1 prompt tokens leave one for the reply */
    cr_assert_eq(st_session_check_prompt(s, 16, &err), ST_ERR_CONTEXT);
    cr_assert_eq(st_session_check_prompt(s, 15, &err), ST_OK);
    gp = greedy(-1);
    cr_assert_eq(st_generate(s, ids, 15, &gp, on_collect, &c, &err), ST_ERR_CONTEXT, "%s", err.msg);
    cr_assert_eq(c.n, 1, "exactly one token fits after 15");
    cr_assert_eq(stats(s).finish, ST_FINISH_CONTEXT);
    /* a prompt only evaluated (n_predict 0) may fill the context exactly */
    st_session_rewind(s, 0);
    gp = greedy(0);
    cr_assert_eq(st_generate(s, ids, 16, &gp, NULL, NULL, &err), ST_OK, "%s", err.msg);
    cr_assert_eq(st_session_n_past(s), 16);
    /* on top of what the session holds: the free room is named */
    st_session_rewind(s, 10);
    gp = greedy(4);
    rc = st_generate(s, ids + 10, 6, &gp, NULL, NULL, &err);
    cr_assert_eq(rc, ST_ERR_CONTEXT);
    cr_assert(has(err.msg, "6 tokens after the 10 already") && has(err.msg, "6 free"), "%s", err.msg);
    cr_assert_eq(st_session_n_past(s), 10, "the cache is as it was");
    /* st_session_eval says the same numbers */
    st_session_rewind(s, 0);
    cr_assert_eq(st_session_eval(s, ids, 20, false, &err), ST_ERR_CONTEXT);
    cr_assert(has(err.msg, "20 tokens") && has(err.msg, "n_ctx 16"), "%s", err.msg);
    st_session_free(s);
    st_model_close(m);
}

Test(context, generation_stops_at_a_full_context_and_the_session_stays_usable) {
    st_model *m = open_model_at(tu_source_path(MODEL));
    int32_t ids[MAXT];
    tokenize(m, k_text, ids, MAXT);
    st_session_params sp = params(16);
    st_session *s = NULL;
    st_error err = {0};
    cr_assert_eq(st_session_new(m, &sp, &s, &err), ST_OK, "%s", err.msg);
    st_gen_params gp = greedy(100);
    collect c = {0};
    st_status rc = st_generate(s, ids, 5, &gp, on_collect, &c, &err);
    cr_log_info("%s", err.msg);
    cr_assert_eq(rc, ST_ERR_CONTEXT, "%s: %s", st_status_str(rc), err.msg);
    cr_assert(has(err.msg, "n_ctx 16") && has(err.msg, "5 prompt + 11 generated"), "%s", err.msg);
    st_stats ss = stats(s);
    cr_assert_eq(ss.finish, ST_FINISH_CONTEXT);
    cr_assert_str_eq(st_finish_str(ss.finish), "context full");
    cr_assert_eq(ss.n_gen, 11);
    cr_assert_eq(c.n, 11, "every emitted token is in the cache");
    cr_assert_eq(ss.n_past, 16);

    /* continuing a full context: stops at once, and says what it held */
    collect c2 = {0};
    rc = st_generate(s, NULL, 0, &gp, on_collect, &c2, &err);
    cr_assert_eq(rc, ST_ERR_CONTEXT);
    cr_assert(has(err.msg, "16 tokens from before") && has(err.msg, "0 generated"), "%s", err.msg);
    cr_assert_eq(c2.n, 0);

    /* rewound, the same prompt gives the same tokens */
    st_session_rewind(s, 0);
    collect c3 = {0};
    gp = greedy(6);
    cr_assert_eq(st_generate(s, ids, 5, &gp, on_collect, &c3, &err), ST_OK, "%s", err.msg);
    cr_assert_eq(c3.n, 6);
    cr_assert(!memcmp(c.tok, c3.tok, 6 * sizeof(int32_t)), "same greedy tokens after the rewind");
    cr_assert_eq(stats(s).finish, ST_FINISH_LENGTH);

    /* the other finish reasons */
    st_session_rewind(s, 0);
    collect c4 = {.stop_at = 2};
    cr_assert_eq(st_generate(s, ids, 5, &gp, on_collect, &c4, &err), ST_OK);
    cr_assert_eq(stats(s).finish, ST_FINISH_CALLBACK);
    st_session_rewind(s, 0);
    collect c5 = {.stop_at = 2, .cancel = s};
    cr_assert_eq(st_generate(s, ids, 5, &gp, on_collect, &c5, &err), ST_ERR_CANCELLED);
    cr_assert_eq(stats(s).finish, ST_FINISH_CANCELLED);
    st_session_free(s);
    st_model_close(m);
}

/* ================================================================ strata run */

#ifndef FAULTS_TEST_NO_CLI
typedef struct {
    int status;  /* exit status, or 128 + signal */
    char *out, *err;
} cli_result;

/* Runs the strata binary with STRATA_MEM_LIMIT=mem_limit (NULL: unset);
 * a hang check kills it after 120 s. */
static cli_result run_strata(const char *mem_limit, char *const argv[]) {
    if (!tu_file_exists(STRATA)) cr_skip_test("%s is not built", STRATA);
    char out[600], errp[600];
    snprintf(out, sizeof out, "%s/cli.out", tu_tmpdir());
    snprintf(errp, sizeof errp, "%s/cli.err", tu_tmpdir());
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0) _exit(127);
        dup2(o, 1);
        dup2(e, 2);
        if (mem_limit) setenv("STRATA_MEM_LIMIT", mem_limit, 1);
        else unsetenv("STRATA_MEM_LIMIT");
        alarm(120); /* a hang check, not a timing */
        execv(STRATA, argv);
        _exit(127);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cli_result r = {WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), tu_read_file(out, NULL), tu_read_file(errp, NULL)};
    if (!r.out) r.out = strdup("");
    if (!r.err) r.err = strdup("");
    unlink(out);
    unlink(errp);
    return r;
}

static void cli_free(cli_result *r) {
    free(r->out);
    free(r->err);
}

Test(cli, run_context_and_memory_limits, .timeout = 300, .fini = rm_tmpdir) {
    const char *model = tu_source_path(MODEL);
    /* generation into a full context: the text stands, the reason is said, exit 0 */
    char *a1[] = {STRATA, "run", "-m", (char *)model, "--backend", "cpu", "-t", "2", "-c", "20", "-n", "-1",
                  "--ignore-eos", "--temp", "0", "-p", "Once upon a time", NULL};
    cli_result r = run_strata(NULL, a1);
    cr_log_info("exit %d\n%s%s", r.status, r.out, r.err);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(has(r.err, "context full: n_ctx 20 reached (5 prompt + 15 generated tokens)"), "%s", r.err);
    cr_assert(has(r.out, "Once upon a time") && strlen(r.out) > strlen("Once upon a time") + 5, "%s", r.out);
    cli_free(&r);

    /* a prompt longer than the context: refused before anything is printed */
    char *a2[] = {STRATA, "run", "-m", (char *)model, "--backend", "cpu", "-t", "2", "-c", "5", "-p",
                  "Once upon a time there was", NULL};
    r = run_strata(NULL, a2);
    cr_log_info("exit %d\n%s%s", r.status, r.out, r.err);
    cr_assert_eq(r.status, 1);
    cr_assert(has(r.err, "the prompt is too long: 7 tokens, the context holds 5 (n_ctx 5)"), "%s", r.err);
    cr_assert_str_eq(r.out, "", "no echo of a refused prompt");
    cli_free(&r);

    /* a context the memory cannot hold: refused with the numbers */
    char *a3[] = {STRATA, "run", "-m", (char *)model, "--backend", "cpu", "-t", "2", "-c", "2000000", "-n", "2", NULL};
    r = run_strata("256M", a3);
    cr_log_info("exit %d\n%s%s", r.status, r.out, r.err);
    cr_assert_eq(r.status, 1);
    cr_assert(has(r.err, "not enough memory") && has(r.err, "n_ctx 2000000") && has(r.err, "256.0 MiB is available (STRATA_MEM_LIMIT)"),
              "%s", r.err);
    cli_free(&r);
}
#endif

/* ================================================================ file faults */

/* A token callback that does something to the model file after k tokens. */
typedef enum { ACT_NONE, ACT_TRUNCATE, ACT_RENAME, ACT_WRITE, ACT_ARM } act_kind;
typedef struct {
    act_kind act;
    int at;                 /* after this many tokens */
    const char *path;       /* the model's copy */
    const char *other;      /* ACT_RENAME: renamed over path */
    uint64_t cut;           /* ACT_TRUNCATE: new size; ACT_WRITE: offset written */
    atomic_bool *arm;       /* ACT_ARM: sets it */
    int n;
    int32_t tok[MAXT];
} file_act;

static void truncate_to(const char *path, uint64_t size) {
    int fd = open(path, O_WRONLY);
    cr_assert_geq(fd, 0, "open %s", path);
    cr_assert_eq(ftruncate(fd, (off_t)size), 0);
    close(fd);
}

static void write_in_place(const char *path, uint64_t off) {
    /* the modification time must move: the clock ticks at least once */
    sleep_ms(20);
    int fd = open(path, O_WRONLY);
    cr_assert_geq(fd, 0, "open %s", path);
    uint8_t junk[4096];
    memset(junk, 0x5a, sizeof junk);
    cr_assert_eq(pwrite(fd, junk, sizeof junk, (off_t)off), (ssize_t)sizeof junk);
    close(fd);
}

static bool on_act(void *user, int32_t t, const char *piece, int len) {
    (void)piece;
    (void)len;
    file_act *a = user;
    if (a->n < MAXT) a->tok[a->n] = t;
    if (++a->n == a->at) {
        switch (a->act) {
        case ACT_NONE: break;
        case ACT_TRUNCATE: truncate_to(a->path, a->cut); break;
        case ACT_RENAME: cr_assert_eq(rename(a->other, a->path), 0, "rename: %s", strerror(errno)); break;
        case ACT_WRITE: write_in_place(a->path, a->cut); break;
        case ACT_ARM: atomic_store(a->arm, true); break;
        }
    }
    return true;
}

static st_session_params budget_params(int layers, int prefetch, bool direct) {
    st_session_params sp = params(128);
    sp.cache_layers = layers;
    sp.prefetch = prefetch;
    sp.direct_io = direct;
    return sp;
}

/* greedy tokens of an undisturbed run of the bundled model */
static void reference_tokens(int32_t *tok, int n_gen) {
    st_model *m = open_model_at(tu_source_path(MODEL));
    int32_t ids[MAXT];
    int n = tokenize(m, k_text, ids, MAXT);
    st_session_params sp = params(128);
    st_session *s = NULL;
    st_error err = {0};
    cr_assert_eq(st_session_new(m, &sp, &s, &err), ST_OK, "%s", err.msg);
    st_gen_params gp = greedy(n_gen);
    file_act a = {0};
    cr_assert_eq(st_generate(s, ids, n, &gp, on_act, &a, &err), ST_OK, "%s", err.msg);
    memcpy(tok, a.tok, (size_t)n_gen * sizeof *tok);
    st_session_free(s);
    st_model_close(m);
}

/* Truncated between two tokens: the next forward pass refuses before it
 * touches a weight (without a budget the layers are mmapped: reading one past
 * the new end would be SIGBUS); a new prompt and a new session say the same;
 * reopening the file says what is wrong with it. */
static void truncated_between_tokens(const st_session_params *sp, const char *name) {
    char path[600];
    model_copy(name, path, sizeof path);
    st_model *m = open_model_at(path);
    int32_t ids[MAXT];
    int n = tokenize(m, k_text, ids, MAXT);
    st_session *s = NULL;
    st_error err = {0};
    cr_assert_eq(st_session_new(m, sp, &s, &err), ST_OK, "%s", err.msg);
    uint64_t size = file_size(path);
    file_act a = {.act = ACT_TRUNCATE, .at = 3, .path = path, .cut = layer_start(m, 2) + 1000};
    st_gen_params gp = greedy(12);
    st_status rc = st_generate(s, ids, n, &gp, on_act, &a, &err);
    cr_log_info("%s, budget %d: %s", name, sp->cache_layers, err.msg);
    cr_assert_eq(rc, ST_ERR_IO, "%s: %s", st_status_str(rc), err.msg);
    cr_assert(has(err.msg, name) && has(err.msg, "truncated while in use"), "%s", err.msg);
    char num[32];
    snprintf(num, sizeof num, "%llu when opened", (unsigned long long)size);
    cr_assert(has(err.msg, num), "gives the sizes: %s", err.msg);
    st_stats ss = stats(s);
    cr_assert_eq(ss.finish, ST_FINISH_ERROR);
    cr_assert_eq(a.n, 3, "generation stopped at the fault");
    cr_assert_eq(ss.n_past, n + 2, "the cache holds what was evaluated before the fault");
    /* a new prompt on the same session: the same clear error */
    int32_t one = ids[1];
    cr_assert_eq(st_session_eval(s, &one, 1, false, &err), ST_ERR_IO);
    cr_assert(has(err.msg, "truncated while in use"), "%s", err.msg);
    st_session_free(s);
    /* a new session: refused at creation */
    s = NULL;
    cr_assert_eq(st_session_new(m, sp, &s, &err), ST_ERR_IO);
    cr_assert_null(s);
    cr_assert(has(err.msg, "truncated while in use") && has(err.msg, "reopen"), "%s", err.msg);
    st_model_close(m);
    /* reopening: the GGUF reader names what is missing */
    st_model_params mp;
    st_model_params_default(&mp);
    st_model *m2 = NULL;
    rc = st_model_open(path, &mp, &m2, &err);
    cr_log_info("reopen: %s", err.msg);
    cr_assert_neq(rc, ST_OK);
    cr_assert_null(m2);
    cr_assert(has(err.msg, name), "%s", err.msg);
    unlink(path);
}

Test(file, truncated_between_tokens, .timeout = 120, .fini = rm_tmpdir) {
    st_session_params sp = params(128);
    truncated_between_tokens(&sp, "trunc-mmap.gguf");
    sp = budget_params(2, ST_PREFETCH_AUTO, false);
    truncated_between_tokens(&sp, "trunc-budget.gguf");
    sp = budget_params(2, ST_PREFETCH_OFF, false);
    truncated_between_tokens(&sp, "trunc-budget-sync.gguf");
}

/* A reader that truncates the file from inside a read of layer >= 3 (on
 * whichever thread makes it: a prefetch worker or the acquirer), then reads:
 * pread past the new end returns 0 or a short count, as it would if another
 * process truncated the file at that moment. */
typedef struct {
    const char *path;
    uint64_t cut;
    atomic_bool armed, done, by_worker;
    atomic_int worker_reads;
    pthread_t main;
} trunc_hook;

static ssize_t trunc_read(void *ctx, int fd, void *buf, size_t n, uint64_t off) {
    trunc_hook *h = ctx;
    if (!pthread_equal(pthread_self(), h->main)) atomic_fetch_add(&h->worker_reads, 1);
    if (atomic_load(&h->armed) && off + n > h->cut && !atomic_exchange(&h->done, true)) {
        atomic_store(&h->by_worker, !pthread_equal(pthread_self(), h->main));
        int wfd = open(h->path, O_WRONLY);
        if (wfd >= 0) {
            if (ftruncate(wfd, (off_t)h->cut) != 0) {}
            close(wfd);
        }
    }
    return pread(fd, buf, n, (off_t)off);
}

static void truncated_mid_pass(int prefetch, bool direct, bool during_decode, const char *name) {
    char path[600];
    model_copy(name, path, sizeof path);
    st_model *m = open_model_at(path);
    static trunc_hook h;
    memset(&h, 0, sizeof h);
    h.path = path;
    h.cut = layer_start(m, 3) + 4096;
    h.main = pthread_self();
    atomic_store(&h.armed, !during_decode);
    st_store_set_default_read(trunc_read, &h);
    int32_t ids[MAXT];
    int n = tokenize(m, k_text, ids, MAXT);
    st_session_params sp = budget_params(2, prefetch, direct);
    st_session *s = NULL;
    st_error err = {0};
    cr_assert_eq(st_session_new(m, &sp, &s, &err), ST_OK, "%s", err.msg);
    file_act a = {.act = during_decode ? ACT_ARM : ACT_NONE, .at = 2, .arm = &h.armed};
    st_gen_params gp = greedy(12);
    st_status rc = st_generate(s, ids, n, &gp, on_act, &a, &err);
    cr_log_info("%s (prefetch %d, direct %d, %s): %s; %d reads on prefetch threads, the failing one on %s", name,
                prefetch, direct, during_decode ? "decode" : "prompt", err.msg, atomic_load(&h.worker_reads),
                atomic_load(&h.by_worker) ? "a prefetch thread" : "the session's thread");
    cr_assert(atomic_load(&h.done), "the hook truncated the file");
    /* Decoding with 2 slots, layer 3 is hinted (slot assigned, state loading)
     * while layer 2 computes, so the read that fails is a prefetch thread's
     * and the acquirer waiting for it must be woken with its error. */
    if (prefetch != ST_PREFETCH_OFF && during_decode)
        cr_assert(atomic_load(&h.by_worker), "the failing read ran on a prefetch thread");
    if (prefetch == ST_PREFETCH_OFF) cr_assert_not(atomic_load(&h.by_worker));
    cr_assert_eq(rc, ST_ERR_IO, "%s: %s", st_status_str(rc), err.msg);
    cr_assert(has(err.msg, "layer 3") && has(err.msg, name) && has(err.msg, "offset"), "names layer, file, offset: %s",
              err.msg);
    cr_assert(has(err.msg, "short read") && has(err.msg, "truncated while in use"), "%s", err.msg);
    st_stats ss = stats(s);
    cr_assert_geq(ss.store.errors, 1);
    cr_assert_eq(ss.finish, ST_FINISH_ERROR);
    cr_assert_eq(ss.phase, ST_PHASE_IDLE);
    if (during_decode) cr_assert_eq(a.n, 2, "stopped at the token whose pass failed");
    else cr_assert_eq(ss.n_past, 0, "a failed prompt leaves the cache as it was");
    /* the next prompt: refused before reading (the file is shorter than when opened) */
    cr_assert_eq(st_session_eval(s, ids, 2, false, &err), ST_ERR_IO);
    cr_assert(has(err.msg, "truncated while in use"), "%s", err.msg);
    /* freeing joins the prefetch threads: no hang (the test's timeout is the check) */
    st_session_free(s);
    st_store_set_default_read(NULL, NULL);
    st_model_close(m);
    unlink(path);
}

Test(file, truncated_in_the_middle_of_a_forward_pass, .timeout = 180, .fini = rm_tmpdir) {
    truncated_mid_pass(ST_PREFETCH_AUTO, false, false, "mid-prompt-prefetch.gguf");
    truncated_mid_pass(ST_PREFETCH_OFF, false, false, "mid-prompt-sync.gguf");
    truncated_mid_pass(ST_PREFETCH_AUTO, false, true, "mid-decode-prefetch.gguf");
    truncated_mid_pass(ST_PREFETCH_OFF, false, true, "mid-decode-sync.gguf");
    truncated_mid_pass(ST_PREFETCH_AUTO, true, true, "mid-decode-direct.gguf");
}

/* Replaced by rename while streaming: the descriptor and the mapping keep the
 * old inode, so the session goes on with the weights it started with (and a
 * new session on the same model too), bit for bit. The replacement is junk of
 * another size: any read through the path would show. */
static void replaced_by_rename(const st_session_params *sp, bool before_session, const char *name,
                               const int32_t *ref, int n_gen) {
    char path[600], other[600];
    model_copy(name, path, sizeof path);
    cr_assert_lt(snprintf(other, sizeof other, "%.590s.new", path), (int)sizeof other);
    FILE *f = fopen(other, "wb");
    cr_assert_not_null(f);
    for (int i = 0; i < 100000; i++) fputs("not a model ", f);
    cr_assert_eq(fclose(f), 0);
    st_model *m = open_model_at(path);
    if (before_session) cr_assert_eq(rename(other, path), 0);
    int32_t ids[MAXT];
    int n = tokenize(m, k_text, ids, MAXT);
    st_error err = {0};
    for (int round = 0; round < 2; round++) {
        st_session *s = NULL;
        cr_assert_eq(st_session_new(m, sp, &s, &err), ST_OK, "%s", err.msg);
        file_act a = {.act = round == 0 && !before_session ? ACT_RENAME : ACT_NONE, .at = 3, .path = path, .other = other};
        st_gen_params gp = greedy(n_gen);
        cr_assert_eq(st_generate(s, ids, n, &gp, on_act, &a, &err), ST_OK, "%s round %d: %s", name, round, err.msg);
        cr_assert_eq(a.n, n_gen);
        for (int i = 0; i < n_gen; i++)
            cr_assert_eq(a.tok[i], ref[i], "%s round %d: token %d is %d, undisturbed %d", name, round, i, a.tok[i], ref[i]);
        st_session_free(s);
    }
    cr_assert_lt(file_size(path), 2000000, "the path now holds the replacement");
    st_model_close(m);
    unlink(path);
}

Test(file, replaced_by_rename_while_streaming, .timeout = 180, .fini = rm_tmpdir) {
    enum { NG = 10 };
    int32_t ref[NG];
    reference_tokens(ref, NG);
    st_session_params sp = params(128);
    replaced_by_rename(&sp, false, "rename-mmap.gguf", ref, NG);
    sp = budget_params(2, ST_PREFETCH_AUTO, false);
    replaced_by_rename(&sp, false, "rename-budget.gguf", ref, NG);
    sp = budget_params(2, ST_PREFETCH_AUTO, true);
    replaced_by_rename(&sp, false, "rename-direct.gguf", ref, NG);
    /* replaced between st_model_open and st_session_new: the O_DIRECT
     * descriptor the store opens is the model's file, not the path's */
    replaced_by_rename(&sp, true, "rename-before-direct.gguf", ref, NG);
}

/* Written in place (same size): the weights on disk and in use may differ;
 * the next forward pass says so. */
static void written_in_place(const st_session_params *sp, const char *name) {
    char path[600];
    model_copy(name, path, sizeof path);
    st_model *m = open_model_at(path);
    int32_t ids[MAXT];
    int n = tokenize(m, k_text, ids, MAXT);
    st_session *s = NULL;
    st_error err = {0};
    cr_assert_eq(st_session_new(m, sp, &s, &err), ST_OK, "%s", err.msg);
    file_act a = {.act = ACT_WRITE, .at = 3, .path = path, .cut = layer_start(m, 5)};
    st_gen_params gp = greedy(12);
    st_status rc = st_generate(s, ids, n, &gp, on_act, &a, &err);
    cr_log_info("%s: %s", name, err.msg);
    cr_assert_eq(rc, ST_ERR_IO, "%s: %s", st_status_str(rc), err.msg);
    cr_assert(has(err.msg, name) && has(err.msg, "modified while in use") && has(err.msg, "modification time"), "%s",
              err.msg);
    cr_assert_eq(a.n, 3);
    st_session_free(s);
    st_model_close(m);
    /* reopened, it is a (different) model again */
    m = open_model_at(path);
    s = NULL;
    cr_assert_eq(st_session_new(m, sp, &s, &err), ST_OK, "%s", err.msg);
    cr_assert_eq(st_session_eval(s, ids, 4, false, &err), ST_OK, "%s", err.msg);
    st_session_free(s);
    st_model_close(m);
    unlink(path);
}

Test(file, written_in_place_while_streaming, .timeout = 120, .fini = rm_tmpdir) {
    st_session_params sp = params(128);
    written_in_place(&sp, "write-mmap.gguf");
    sp = budget_params(2, ST_PREFETCH_AUTO, false);
    written_in_place(&sp, "write-budget.gguf");
}
