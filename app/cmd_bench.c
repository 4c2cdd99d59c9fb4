/* cmd_bench.c — `strata bench`: prompt-processing and generation speed, the
 * way llama-bench measures them, so the figures compare.
 *
 *   ppN: evaluate a prompt of N tokens (BOS + random ids) from an empty cache.
 *   tgN: N single-token evaluations from an empty cache, the first one BOS,
 *        the rest random ids (no sampling: the forward pass is what is timed).
 *
 * Each test runs once to warm up, then -r times; the table shows the mean and
 * sample standard deviation of tokens/s over the repetitions, and the weight
 * bandwidth that rate implies (bytes of weights one forward pass reads x
 * forward passes per second).
 *
 * Results are collected into an array of bench_result (one per test) and
 * printed by the markdown or JSON printer as each test finishes. */
#include "app.h"
#include "args.h"
#include "bench_db.h"
#include "store_opts.h"
#include "backend_opts.h"
#include "strata.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define CMD "bench"
#define MAX_LIST 32

/* ---------------------------------------------------------------------------
 * results */
typedef enum { TEST_PP, TEST_TG } test_kind;

typedef struct bench_result {
    /* the model */
    char model_path[1024];
    char model_name[128];   /* general.name */
    char model_label[96];   /* "llama 1.1B Q4_K_M" */
    char model_type[32];    /* file type, e.g. "Q4_K_M" (general.file_type) or the block weight types */
    char arch[32];
    uint64_t file_size;     /* bytes */
    uint64_t n_params;
    uint64_t weight_bytes;  /* all tensors */
    uint64_t pass_bytes;    /* weight bytes one forward pass reads (token_embd: one row per token) */
    /* the setup */
    char backend[16];       /* "CPU" */
    int n_threads;
    int n_batch;
    int n_ctx;
    bool avx2;
    /* the test */
    test_kind kind;
    char test[32];          /* "pp512", "tg128" */
    int n_prompt, n_gen;
    int reps;
    double *samples_ts;     /* tokens/s of each repetition */
    uint64_t *samples_ns;   /* wall time of each repetition */
    double avg_ts, stddev_ts;
    double avg_gbps;        /* pass_bytes x forward passes per second, mean over reps */
    uint64_t peak_rss_bytes; /* of the process, after the test */
    /* the layer store over the timed repetitions (counters: differences) */
    bool budgeted;
    st_store_figures store;
    char timestamp[32];     /* UTC, ISO 8601, when the test started */
} bench_result;

static void result_free(bench_result *r) {
    free(r->samples_ts);
    free(r->samples_ns);
}

static void result_stats(bench_result *r) {
    double sum = 0;
    for (int i = 0; i < r->reps; i++) sum += r->samples_ts[i];
    r->avg_ts = r->reps ? sum / r->reps : 0;
    double ss = 0;
    for (int i = 0; i < r->reps; i++) ss += (r->samples_ts[i] - r->avg_ts) * (r->samples_ts[i] - r->avg_ts);
    r->stddev_ts = r->reps > 1 ? sqrt(ss / (r->reps - 1)) : 0;
    /* forward passes per test: tg evaluates one token per pass; pp splits the
     * prompt into batches of n_batch tokens */
    int passes = r->kind == TEST_TG ? r->n_gen : (r->n_prompt + r->n_batch - 1) / r->n_batch;
    double gb = 0;
    for (int i = 0; i < r->reps; i++)
        if (r->samples_ns[i]) gb += (double)r->pass_bytes * passes / (r->samples_ns[i] / 1e9) / 1e9;
    r->avg_gbps = r->reps ? gb / r->reps : 0;
}

/* the database row of a result (db/benchdb.h); free samples_ns/_ts after */
static void result_row(const bench_result *b, const st_session_params *sp, st_db_bench_row *r) {
    st_db_bench_row_init(r);
    snprintf(r->backends, sizeof r->backends, "%s", b->backend);
    snprintf(r->model_filename, sizeof r->model_filename, "%s", b->model_path);
    snprintf(r->model_name, sizeof r->model_name, "%s", b->model_name);
    snprintf(r->model_type, sizeof r->model_type, "%s", b->model_type);
    r->model_size = b->file_size;
    r->model_n_params = b->n_params;
    r->n_batch = b->n_batch;
    r->n_ctx = b->n_ctx;
    r->n_threads = b->n_threads;
    snprintf(r->test, sizeof r->test, "%s", b->test);
    r->n_prompt = b->n_prompt;
    r->n_gen = b->n_gen;
    r->reps = b->reps;
    snprintf(r->test_time, sizeof r->test_time, "%s", b->timestamp);
    double sum = 0, ss = 0;
    for (int i = 0; i < b->reps; i++) sum += (double)b->samples_ns[i];
    double mean = b->reps ? sum / b->reps : 0;
    for (int i = 0; i < b->reps; i++) ss += ((double)b->samples_ns[i] - mean) * ((double)b->samples_ns[i] - mean);
    r->avg_ns = (uint64_t)(mean + 0.5);
    r->stddev_ns = b->reps > 1 ? (uint64_t)(sqrt(ss / (b->reps - 1)) + 0.5) : 0;
    r->avg_ts = b->avg_ts;
    r->stddev_ts = b->stddev_ts;
    r->samples_ns = bench_join_u64(b->samples_ns, b->reps);
    r->samples_ts = bench_join_double(b->samples_ts, b->reps);
    r->avg_gbps = b->avg_gbps;
    r->peak_rss_bytes = b->peak_rss_bytes;
    if (b->budgeted) bench_row_set_store(r, sp, &b->store);
}

/* ---------------------------------------------------------------------------
 * printers */
/* with a budget, the layer store's columns follow */
static void print_md_header(FILE *f, bool store) {
    fprintf(f, "| %-24s | %10s | %8s | %-7s | %7s | %10s | %20s | %8s |", "model", "size", "params", "backend",
            "threads", "test", "t/s", "GB/s");
    if (store)
        fprintf(f, " %-14s | %7s | %9s | %9s | %9s | %4s | %9s |", "store", "ready", "stall/tok", "MiB/tok", "read GB/s",
                "dist", "peak MiB");
    fprintf(f, "\n| %-24s | %10s | %8s | %-7s | %7s | %10s | %20s | %8s |", "------------------------", "---------:",
            "-------:", "-------", "------:", "---------:", "-------------------:", "-------:");
    if (store)
        fprintf(f, " %-14s | %7s | %9s | %9s | %8s | %4s | %9s |", "--------------", "------:", "--------:", "--------:",
                "--------:", "---:", "--------:");
    fprintf(f, "\n");
    fflush(f);
}

static void print_md_row(FILE *f, const bench_result *r) {
    char size[32], params[32], ts[48];
    if (r->file_size >= (1ull << 30)) snprintf(size, sizeof size, "%.2f GiB", r->file_size / 1073741824.0);
    else snprintf(size, sizeof size, "%.2f MiB", r->file_size / 1048576.0);
    if (r->n_params >= 1000000000ull) snprintf(params, sizeof params, "%.2f B", r->n_params / 1e9);
    else snprintf(params, sizeof params, "%.2f M", r->n_params / 1e6);
    snprintf(ts, sizeof ts, "%.2f ± %.2f", r->avg_ts, r->stddev_ts);
    /* "±" is two bytes but one column: widen the field by one */
    fprintf(f, "| %-24s | %10s | %8s | %-7s | %7d | %10s | %21s | %8.2f |", r->model_label, size, params,
            r->backend, r->n_threads, r->test, ts, r->avg_gbps);
    if (r->budgeted) {
        const st_store_figures *t = &r->store;
        char mode[32], ready[16];
        snprintf(mode, sizeof mode, "%s %d+%d/%d%s", t->policy == ST_CACHE_LRU ? "lru" : "ring", t->n_pinned, t->n_ring,
                 t->n_layer, t->prefetch_on ? "" : " sync");
        snprintf(ready, sizeof ready, "%.1f%%", t->acquires ? 100.0 * t->ready / t->acquires : 100.0);
        int toks = r->kind == TEST_TG ? r->n_gen : r->n_prompt;
        double per = (double)toks * (r->reps ? r->reps : 1);
        fprintf(f, " %-14s | %7s | %6.1f ms | %9.1f | %9.2f | %4d | %9.1f |", mode, ready, t->stall_ns / 1e6 / per,
                t->bytes_read / 1048576.0 / per, t->read_busy_ns ? t->bytes_read / (double)t->read_busy_ns : 0.0,
                t->distance_max, t->peak_resident_bytes / 1048576.0);
    }
    fprintf(f, "\n");
    fflush(f);
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* one JSON object per line (JSON Lines) */
static void print_json(FILE *f, const bench_result *r) {
    fputs("{\"model\": ", f);
    json_str(f, r->model_path);
    fputs(", \"model_name\": ", f);
    json_str(f, r->model_name);
    fputs(", \"model_label\": ", f);
    json_str(f, r->model_label);
    fputs(", \"arch\": ", f);
    json_str(f, r->arch);
    fputs(", \"type\": ", f);
    json_str(f, r->model_type);
    fprintf(f, ", \"file_size\": %llu, \"n_params\": %llu, \"weight_bytes\": %llu, \"pass_bytes\": %llu",
            (unsigned long long)r->file_size, (unsigned long long)r->n_params, (unsigned long long)r->weight_bytes,
            (unsigned long long)r->pass_bytes);
    fputs(", \"backend\": ", f);
    json_str(f, r->backend);
    fprintf(f, ", \"n_threads\": %d, \"n_batch\": %d, \"n_ctx\": %d, \"avx2\": %s", r->n_threads, r->n_batch,
            r->n_ctx, r->avx2 ? "true" : "false");
    fputs(", \"test\": ", f);
    json_str(f, r->test);
    fprintf(f, ", \"n_prompt\": %d, \"n_gen\": %d, \"reps\": %d, \"samples_ts\": [", r->n_prompt, r->n_gen, r->reps);
    for (int i = 0; i < r->reps; i++) fprintf(f, "%s%.6g", i ? ", " : "", r->samples_ts[i]);
    fputs("], \"samples_ns\": [", f);
    for (int i = 0; i < r->reps; i++) fprintf(f, "%s%llu", i ? ", " : "", (unsigned long long)r->samples_ns[i]);
    fprintf(f, "], \"avg_ts\": %.6g, \"stddev_ts\": %.6g, \"avg_gbps\": %.6g, \"peak_rss_bytes\": %llu", r->avg_ts,
            r->stddev_ts, r->avg_gbps, (unsigned long long)r->peak_rss_bytes);
    if (r->budgeted) {
        const st_store_figures *t = &r->store;
        fprintf(f,
                ", \"store\": {\"policy\": \"%s\", \"n_slots\": %d, \"n_pinned\": %d, \"n_ring\": %d, \"slot_bytes\": %llu, "
                "\"budget_bytes\": %llu, \"fixed_bytes\": %llu, \"prefetch\": %s, \"prefetch_threads\": %d, "
                "\"direct_io\": %s, \"acquires\": %llu, \"ready\": %llu, \"waits\": %llu, \"sync_loads\": %llu, "
                "\"errors\": %llu, \"stall_ns\": %llu, \"bytes_read\": %llu, \"read_busy_ns\": %llu, \"issued\": %llu, "
                "\"dedup\": %llu, \"dropped_full\": %llu, \"no_slot\": %llu, \"distance_max\": %d, "
                "\"distance_limit\": %d, \"queue_peak\": %d, \"peak_resident_bytes\": %llu, \"bytes_uploaded\": %llu, "
                "\"host_cache_layers\": %d, \"host_cache_bytes\": %llu, \"host_cache_loads\": %llu}",
                t->policy == ST_CACHE_LRU ? "lru" : "ring", t->n_slots, t->n_pinned, t->n_ring,
                (unsigned long long)t->slot_bytes, (unsigned long long)t->budget_bytes,
                (unsigned long long)t->fixed_bytes, t->prefetch_on ? "true" : "false", t->prefetch_threads,
                t->direct_io ? "true" : "false", (unsigned long long)t->acquires, (unsigned long long)t->ready,
                (unsigned long long)t->waits, (unsigned long long)t->sync_loads, (unsigned long long)t->errors,
                (unsigned long long)t->stall_ns, (unsigned long long)t->bytes_read,
                (unsigned long long)t->read_busy_ns, (unsigned long long)t->issued, (unsigned long long)t->dedup,
                (unsigned long long)t->dropped_full, (unsigned long long)t->no_slot, t->distance_max,
                t->distance_limit, t->queue_peak, (unsigned long long)t->peak_resident_bytes,
                (unsigned long long)t->bytes_uploaded, t->host_cache_layers, (unsigned long long)t->host_cache_bytes,
                (unsigned long long)t->host_cache_loads);
    }
    fputs(", \"timestamp\": ", f);
    json_str(f, r->timestamp);
    fputs(", \"strata_version\": ", f);
    json_str(f, STRATA_VERSION);
    fputs("}\n", f);
    fflush(f);
}

/* ---------------------------------------------------------------------------
 * model description */

/* llama.cpp's LLAMA_FTYPE_* names */
static const char *llama_ftype_name(uint32_t ft) {
    switch (ft) {
    case 0: return "F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 7: return "Q8_0";
    case 8: return "Q5_0";
    case 9: return "Q5_1";
    case 10: return "Q2_K";
    case 11: return "Q3_K_S";
    case 12: return "Q3_K_M";
    case 13: return "Q3_K_L";
    case 14: return "Q4_K_S";
    case 15: return "Q4_K_M";
    case 16: return "Q5_K_S";
    case 17: return "Q5_K_M";
    case 18: return "Q6_K";
    case 32: return "BF16";
    default: return NULL;
    }
}

typedef struct {
    char name[128], label[96], type[32], arch[32];
    uint64_t file_size, n_params, weight_bytes, pass_bytes;
} model_desc;

static st_status describe_model(const char *path, const st_model *m, model_desc *d, st_error *err) {
    memset(d, 0, sizeof *d);
    st_model_info mi;
    st_model_get_info(m, &mi);
    snprintf(d->name, sizeof d->name, "%s", mi.name);
    snprintf(d->arch, sizeof d->arch, "%s", mi.arch);
    d->file_size = mi.file_size;
    d->n_params = mi.n_params;
    /* the weight bytes of a forward pass come from the tensor table: every
     * tensor, except that token_embd.weight is only looked up (one row per
     * token) unless it doubles as the output matrix */
    st_gguf *g = NULL;
    st_status rc = st_gguf_open(path, &g, err);
    if (rc) return rc;
    uint32_t ft;
    const char *ftn = st_gguf_get_u32(g, "general.file_type", &ft) ? llama_ftype_name(ft) : NULL;
    snprintf(d->type, sizeof d->type, "%s", ftn ? ftn : mi.ftype);
    const st_gguf_tensor *emb = st_gguf_find_tensor(g, "token_embd.weight");
    const bool tied = st_gguf_find_tensor(g, "output.weight") == NULL;
    for (int64_t i = 0; i < st_gguf_n_tensors(g); i++) d->weight_bytes += st_gguf_tensor_at(g, i)->size;
    d->pass_bytes = d->weight_bytes;
    if (emb && !tied && emb->ne[1] > 0) d->pass_bytes -= emb->size - emb->size / (uint64_t)emb->ne[1];
    st_gguf_close(g);
    char psz[16];
    if (d->n_params >= 1000000000ull) snprintf(psz, sizeof psz, "%.1fB", d->n_params / 1e9);
    else snprintf(psz, sizeof psz, "%.0fM", d->n_params / 1e6);
    snprintf(d->label, sizeof d->label, "%s %s %s", d->arch, psz, d->type);
    return ST_OK;
}

/* ---------------------------------------------------------------------------
 * running */
static volatile sig_atomic_t g_stop;
static st_session *volatile g_session;

static void on_sigint(int sig) {
    (void)sig;
    g_stop = 1;
    if (g_session) st_session_cancel(g_session);
}

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct {
    st_session *s;
    int32_t *toks;  /* scratch for prompts */
    int n_vocab;
    int32_t bos;
    uint64_t rng;
} runner;

static int32_t random_token(runner *r) { return (int32_t)(rng_next(&r->rng) % (uint64_t)r->n_vocab); }

/* one timed run of a test; returns its wall time in *ns */
static st_status run_once(runner *r, test_kind kind, int n, uint64_t *ns, st_error *err) {
    st_session_rewind(r->s, 0);
    st_status rc = ST_OK;
    if (kind == TEST_PP) {
        for (int i = 0; i < n; i++) r->toks[i] = random_token(r);
        if (r->bos >= 0) r->toks[0] = r->bos;
        uint64_t t0 = st_now_ns();
        rc = st_session_eval(r->s, r->toks, n, false, err);
        *ns = st_now_ns() - t0;
    } else {
        int32_t tok = r->bos >= 0 ? r->bos : random_token(r);
        uint64_t t0 = st_now_ns();
        for (int i = 0; i < n && !rc; i++) {
            rc = st_session_eval(r->s, &tok, 1, false, err);
            tok = random_token(r);
        }
        *ns = st_now_ns() - t0;
    }
    return rc;
}

static void help(void) {
    printf("usage: strata bench -m model.gguf [-m model2.gguf ...] [options]\n"
           "\n"
           "Measures prompt processing (ppN: one prompt of N tokens) and generation (tgN: N\n"
           "single-token steps) like llama-bench: one warm-up run, then R repetitions; prints\n"
           "mean ± standard deviation of tokens/s and the weight bandwidth that implies (bytes\n"
           "of weights a forward pass reads x passes per second).\n"
           "\n"
           "  -m, --model FILE      GGUF model (repeat for several; default: the bundled one)\n"
           "  -p, --n-prompt N,...  prompt lengths (default 512; 0 = no pp test)\n"
           "  -n, --n-gen N,...     generation lengths (default 128; 0 = no tg test)\n"
           "  -r, --repetitions R   timed repetitions of each test (default 5)\n"
           "  -t, --threads N,...   compute threads (default: physical cores)\n"
           "  -b, --batch-size N    prompt tokens per forward batch (default 512)\n"
           "      --seed S          seed of the random token ids (default 1)\n"
           "      --no-warmup       skip the warm-up run\n"
           "      --json            print one JSON object per test (JSON Lines) instead of the table\n"
           "  -v, --verbose         print each repetition's time on stderr\n"
           "  -h, --help            this text\n"
           "\n"
           "With a layer-store budget (below), each row adds the store's figures over the timed\n"
           "repetitions: layout (pinned+streaming/layers), ready-when-needed rate, stall and MiB\n"
           "read per token, read throughput while reading, prefetch distance reached, peak\n"
           "resident layer bytes.\n"
           "\n%s\n%s", store_opts_help, backend_opts_help);
    printf("\n%s", bench_db_help);
}

/* "128,512" -> list; each value in lo..hi */
static bool parse_list(const char *opt, const char *v, long lo, long hi, long *out, int *n) {
    *n = 0;
    const char *p = v;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        char item[32];
        if (len == 0 || len >= sizeof item || *n == MAX_LIST) {
            fprintf(stderr, "strata " CMD ": %s expects a comma-separated list of up to %d integers, got '%s'\n", opt,
                    MAX_LIST, v);
            return false;
        }
        memcpy(item, p, len);
        item[len] = 0;
        if (!arg_int(CMD, opt, item, lo, hi, &out[*n])) return false;
        (*n)++;
        if (!c) return true;
        p = c + 1;
    }
}

int cmd_bench(int argc, char **argv) {
    if (bench_db_is_subcommand(argc, argv)) return cmd_bench_db(argc - 1, argv + 1);
    const char *models[MAX_LIST];
    int n_models = 0;
    long pp[MAX_LIST] = {512}, tg[MAX_LIST] = {128}, th[MAX_LIST] = {0};
    int n_pp = 1, n_tg = 1, n_th = 1;
    long reps = 5, batch = 512;
    uint64_t seed = 1;
    bool json = false, warmup = true, verbose = false;
    bool save = true;           /* store the results (bench_db.h) */
    const char *db_path = NULL;
    int out_fmt = -1;           /* -o json|csv|sql: an st_db_out_format */
    st_session_params store_p;
    st_session_params_default(&store_p);
    backend_opts_default(&store_p);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int reps_store_rc;
#define VAL() do { if (!(v = arg_value(argc, argv, &i, CMD))) return 2; } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { help(); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            VAL();
            if (n_models == MAX_LIST) { fprintf(stderr, "strata " CMD ": at most %d models\n", MAX_LIST); return 2; }
            models[n_models++] = v;
        }
        else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) { VAL(); if (!parse_list(a, v, 0, 1 << 20, pp, &n_pp)) return 2; }
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) { VAL(); if (!parse_list(a, v, 0, 1 << 20, tg, &n_tg)) return 2; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { VAL(); if (!parse_list(a, v, 1, 512, th, &n_th)) return 2; }
        else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions")) { VAL(); if (!arg_int(CMD, a, v, 1, 100000, &reps)) return 2; }
        else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) { VAL(); if (!arg_int(CMD, a, v, 1, 1 << 16, &batch)) return 2; }
        else if (!strcmp(a, "--seed")) {
            VAL();
            char *e;
            seed = strtoull(v, &e, 10);
            if (*e || e == v || *v == '-') { fprintf(stderr, "strata " CMD ": --seed expects a non-negative integer, got '%s'\n", v); return 2; }
        }
        else if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) { VAL(); if (!bench_parse_output(v, &out_fmt, &json)) return 2; }
        else if (!strcmp(a, "--no-save")) save = false;
        else if (!strcmp(a, "--db")) { VAL(); db_path = v; }
        else if (!strcmp(a, "--no-warmup")) warmup = false;
        else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) verbose = true;
        else if ((reps_store_rc = store_opt_parse(CMD, argc, argv, &i, &store_p)) != 0) { if (reps_store_rc < 0) return 2; }
        else if ((reps_store_rc = backend_opt_parse(CMD, argc, argv, &i, &store_p)) != 0) { if (reps_store_rc < 0) return 2; }
        else { fprintf(stderr, "strata " CMD ": unknown option '%s' (see strata " CMD " --help)\n", a); return 2; }
#undef VAL
    }
    if (n_models == 0) {
        const char *d = default_model_path();
        if (!d) { fprintf(stderr, "strata " CMD ": no model given (-m FILE) and the bundled model was not found\n"); return 2; }
        models[n_models++] = d;
    }
    for (int i = 0; i < n_models; i++) {
        struct stat sb;
        if (stat(models[i], &sb) != 0 || !S_ISREG(sb.st_mode)) {
            fprintf(stderr, "strata " CMD ": model file '%s' not found\n", models[i]);
            return 1;
        }
    }
    int max_len = 1;
    int n_tests = 0;
    for (int i = 0; i < n_pp; i++) if (pp[i] > 0) { n_tests++; if (pp[i] > max_len) max_len = (int)pp[i]; }
    for (int i = 0; i < n_tg; i++) if (tg[i] > 0) { n_tests++; if (tg[i] > max_len) max_len = (int)tg[i]; }
    if (n_tests == 0) { fprintf(stderr, "strata " CMD ": nothing to do (-p and -n are all 0)\n"); return 2; }

    const int n_results_cap = n_models * n_th * n_tests;
    bench_result *res = calloc((size_t)n_results_cap, sizeof *res);
    int32_t *toks = malloc((size_t)max_len * sizeof *toks);
    if (!res || !toks) { fprintf(stderr, "strata " CMD ": out of memory\n"); free(res); free(toks); return 1; }
    int n_res = 0, rc = 0;
    st_error err = {0};
    signal(SIGINT, on_sigint);
    bench_saver *saver = save ? bench_save_open(db_path) : NULL;
    int n_out = 0;

    for (int mi = 0; mi < n_models && !rc && !g_stop; mi++) {
        for (int ti = 0; ti < n_th && !rc && !g_stop; ti++) {
            st_model_params mp;
            st_model_params_default(&mp);
            mp.n_threads = (int)th[ti];
            st_model *m = NULL;
            st_session *s = NULL;
            model_desc md;
            if (st_model_open(models[mi], &mp, &m, &err) || describe_model(models[mi], m, &md, &err)) {
                fprintf(stderr, "strata " CMD ": %s\n", err.msg);
                st_model_close(m);
                rc = 1;
                break;
            }
            st_session_params sp = store_p;
            sp.n_ctx = max_len;
            sp.n_batch = (int)batch;
            if (st_session_new(m, &sp, &s, &err)) {
                fprintf(stderr, "strata " CMD ": %s\n", err.msg);
                st_model_close(m);
                rc = 1;
                break;
            }
            g_session = s;
            st_stats ss;
            st_session_stats(s, &ss);
            store_host_cache_notice(stderr, CMD, &sp, ss.backend, &ss.store);
            const st_tokenizer *tok = st_model_tokenizer(m);
            st_model_info info;
            st_model_get_info(m, &info);
            int n_vocab = st_tok_n_vocab(tok) < info.n_vocab ? st_tok_n_vocab(tok) : info.n_vocab;
            runner r = {.s = s, .toks = toks, .n_vocab = n_vocab > 0 ? n_vocab : 1,
                        .bos = st_tok_add_bos(tok) ? st_tok_bos(tok) : -1, .rng = seed};
            for (int k = 0; k < n_pp + n_tg && !rc && !g_stop; k++) {
                const test_kind kind = k < n_pp ? TEST_PP : TEST_TG;
                const int n = (int)(kind == TEST_PP ? pp[k] : tg[k - n_pp]);
                if (n <= 0) continue;
                bench_result *b = &res[n_res];
                snprintf(b->model_path, sizeof b->model_path, "%s", models[mi]);
                snprintf(b->model_name, sizeof b->model_name, "%s", md.name);
                snprintf(b->model_label, sizeof b->model_label, "%s", md.label);
                snprintf(b->model_type, sizeof b->model_type, "%s", md.type);
                snprintf(b->arch, sizeof b->arch, "%s", md.arch);
                b->file_size = md.file_size;
                b->n_params = md.n_params;
                b->weight_bytes = md.weight_bytes;
                b->pass_bytes = md.pass_bytes;
                snprintf(b->backend, sizeof b->backend, "%s", ss.backend && !strcmp(ss.backend, "cpu") ? "CPU" : ss.backend ? ss.backend : "?");
                b->n_threads = ss.n_threads;
                b->n_batch = (int)batch;
                b->n_ctx = st_session_n_ctx(s);
                b->avx2 = st_cpu_has_avx2();
                b->kind = kind;
                b->n_prompt = kind == TEST_PP ? n : 0;
                b->n_gen = kind == TEST_TG ? n : 0;
                snprintf(b->test, sizeof b->test, "%s%d", kind == TEST_PP ? "pp" : "tg", n);
                time_t now = time(NULL);
                struct tm tmv;
                gmtime_r(&now, &tmv);
                strftime(b->timestamp, sizeof b->timestamp, "%Y-%m-%dT%H:%M:%SZ", &tmv);
                b->samples_ts = calloc((size_t)reps, sizeof *b->samples_ts);
                b->samples_ns = calloc((size_t)reps, sizeof *b->samples_ns);
                n_res++;
                if (!b->samples_ts || !b->samples_ns) { fprintf(stderr, "strata " CMD ": out of memory\n"); rc = 1; break; }
                uint64_t ns;
                st_status st = ST_OK;
                if (warmup) st = run_once(&r, kind, n, &ns, &err);
                st_stats s0;
                st_session_stats(s, &s0);
                for (int rep = 0; rep < reps && !st; rep++) {
                    st = run_once(&r, kind, n, &ns, &err);
                    if (st) break;
                    b->samples_ns[b->reps] = ns;
                    b->samples_ts[b->reps] = ns ? n / (ns / 1e9) : 0;
                    b->reps++;
                    if (verbose)
                        fprintf(stderr, "strata " CMD ": %s %s rep %d: %.3f ms, %.2f t/s\n", md.label, b->test, rep + 1,
                                ns / 1e6, b->samples_ts[b->reps - 1]);
                }
                if (st == ST_ERR_CANCELLED || g_stop) { fprintf(stderr, "strata " CMD ": interrupted\n"); rc = 130; break; }
                if (st) { fprintf(stderr, "strata " CMD ": %s %s: %s\n", md.label, b->test, err.msg); rc = 1; break; }
                b->peak_rss_bytes = st_peak_rss_bytes();
                st_stats s1;
                st_session_stats(s, &s1);
                b->budgeted = s1.store.budgeted;
                b->store = s1.store; /* layout, peaks; the counters become differences */
#define D(f) b->store.f = s1.store.f - s0.store.f
                D(acquires); D(ready); D(waits); D(sync_loads); D(errors); D(stall_ns); D(loads); D(bytes_read);
                D(read_busy_ns); D(issued); D(dedup); D(dropped_full); D(no_slot); D(cancelled);
                D(bytes_uploaded); D(host_cache_loads);
#undef D
                result_stats(b);
                st_db_bench_row row;
                result_row(b, &store_p, &row);
                bench_save_row(saver, &row);
                if (out_fmt >= 0) {
                    if (n_out == 0) st_db_bench_print_begin(stdout, (st_db_out_format)out_fmt);
                    st_db_bench_print_row(stdout, (st_db_out_format)out_fmt, &row, n_out == 0);
                } else if (json) print_json(stdout, b);
                else {
                    if (n_res == 1) print_md_header(stdout, b->budgeted);
                    print_md_row(stdout, b);
                }
                n_out++;
                free((char *)row.samples_ns);
                free((char *)row.samples_ts);
            }
            g_session = NULL;
            st_session_free(s);
            st_model_close(m);
        }
    }
    signal(SIGINT, SIG_DFL);
    if (out_fmt >= 0 && n_out > 0) st_db_bench_print_end(stdout, (st_db_out_format)out_fmt);
    bench_save_close(saver);
    if (!json && out_fmt < 0 && n_out > 0) {
        printf("\npeak RSS: %.1f MiB   (GB/s: weight bytes read per forward pass x passes per second)\n",
               st_peak_rss_bytes() / 1048576.0);
        if (res[0].budgeted)
            printf("store: pinned+streaming slots/layers; ready = acquisitions that did not wait; read GB/s = bytes "
                   "read / time a read was running\n");
    }
    for (int i = 0; i < n_res; i++) result_free(&res[i]);
    free(res);
    free(toks);
    return rc;
}
