/* gen.c — the engine thread: model loading and generation jobs, events to
 * the UI thread. */
#define _GNU_SOURCE
#include "gen.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { JOB_LOAD, JOB_GENERATE, JOB_QUIT } job_type;

typedef struct job {
    job_type type;
    int id;
    char *path;
    st_model_params mp;
    st_session_params sp;
    ui_turn *turns;          /* texts owned by the job */
    int n_turns;
    st_gen_params gp;
    struct job *next;
} job;

typedef struct evnode {
    ui_event ev;
    int cap;                 /* of ev.text, for appending */
    struct evnode *next;
} evnode;

struct ui_engine {
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;      /* jobs, events, busy */
    pthread_cond_t cv;
    job *jobs, *jobs_tail;
    evnode *evs, *evs_tail;
    int next_id;
    bool busy;
    int pipe_r, pipe_w;
    atomic_bool woken;
    atomic_int cancel_job;   /* id of a job to stop (0: none) */
    atomic_int running_job;

    pthread_mutex_t smu;     /* m and s, against the UI's stats calls */
    char gpu_name[128];      /* the GPU's name, copied while the session is held */
    st_model *m;
    st_session *s;

    atomic_uint_least64_t tokens, decode_ns;

    /* worker-only: the prompt format and the tokens in the KV cache */
    ui_prompt_fmt fmt;
    int32_t *kv;
    int kv_len, kv_cap;
};

/* ---- events ---------------------------------------------------------------- */

static void wake(ui_engine *e) {
    if (!atomic_exchange(&e->woken, true)) {
        char c = 1;
        ssize_t r = write(e->pipe_w, &c, 1);
        (void)r;
    }
}

static void post(ui_engine *e, const ui_event *ev) {
    evnode *n = calloc(1, sizeof *n);
    if (!n) { free(ev->text); return; }
    n->ev = *ev;
    n->cap = ev->len;
    pthread_mutex_lock(&e->mu);
    if (e->evs_tail) e->evs_tail->next = n;
    else e->evs = n;
    e->evs_tail = n;
    pthread_mutex_unlock(&e->mu);
    wake(e);
}

/* reply text: appended to the last queued TEXT event of the job if any */
static void post_text(ui_engine *e, int id, const char *s, int len) {
    if (len <= 0) return;
    pthread_mutex_lock(&e->mu);
    evnode *t = e->evs_tail;
    if (t && t->ev.type == UI_EV_TEXT && t->ev.job == id) {
        if (t->ev.len + len + 1 > t->cap) {
            int cap = (t->ev.len + len + 1) * 2;
            char *p = realloc(t->ev.text, (size_t)cap);
            if (!p) { pthread_mutex_unlock(&e->mu); return; }
            t->ev.text = p;
            t->cap = cap;
        }
        memcpy(t->ev.text + t->ev.len, s, (size_t)len);
        t->ev.len += len;
        t->ev.text[t->ev.len] = 0;
        pthread_mutex_unlock(&e->mu);
        wake(e);
        return;
    }
    pthread_mutex_unlock(&e->mu);
    ui_event ev = {.type = UI_EV_TEXT, .job = id, .len = len};
    ev.text = malloc((size_t)len + 1);
    if (!ev.text) return;
    memcpy(ev.text, s, (size_t)len);
    ev.text[len] = 0;
    post(e, &ev);
}

bool ui_engine_next_event(ui_engine *e, ui_event *ev) {
    char buf[64];
    atomic_store(&e->woken, false);
    while (read(e->pipe_r, buf, sizeof buf) > 0) {}
    pthread_mutex_lock(&e->mu);
    evnode *n = e->evs;
    if (n) {
        e->evs = n->next;
        if (!e->evs) e->evs_tail = NULL;
    }
    pthread_mutex_unlock(&e->mu);
    if (!n) return false;
    *ev = n->ev;
    free(n);
    return true;
}

int ui_engine_wake_fd(const ui_engine *e) { return e->pipe_r; }

/* ---- jobs ------------------------------------------------------------------- */

static void job_free(job *j) {
    if (!j) return;
    free(j->path);
    for (int i = 0; i < j->n_turns; i++) free((char *)j->turns[i].text);
    free(j->turns);
    free(j);
}

static int enqueue(ui_engine *e, job *j) {
    pthread_mutex_lock(&e->mu);
    j->id = ++e->next_id;
    if (e->jobs_tail) e->jobs_tail->next = j;
    else e->jobs = j;
    e->jobs_tail = j;
    e->busy = true;
    pthread_cond_signal(&e->cv);
    int id = j->id;
    pthread_mutex_unlock(&e->mu);
    return id;
}

int ui_engine_load(ui_engine *e, const char *path, const st_model_params *mp, const st_session_params *sp) {
    job *j = calloc(1, sizeof *j);
    if (!j || !(j->path = strdup(path))) { free(j); return -1; }
    j->type = JOB_LOAD;
    j->mp = *mp;
    j->sp = *sp;
    return enqueue(e, j);
}

int ui_engine_generate(ui_engine *e, const ui_turn *turns, int n, const st_gen_params *gp) {
    job *j = calloc(1, sizeof *j);
    if (!j) return -1;
    j->type = JOB_GENERATE;
    j->gp = *gp;
    j->turns = calloc((size_t)(n > 0 ? n : 1), sizeof *j->turns);
    if (!j->turns) { free(j); return -1; }
    for (int i = 0; i < n; i++) {
        j->turns[i].role = turns[i].role;
        j->turns[i].text = strdup(turns[i].text ? turns[i].text : "");
        j->n_turns = i + 1;
        if (!j->turns[i].text) { job_free(j); return -1; }
    }
    return enqueue(e, j);
}

void ui_engine_cancel(ui_engine *e) {
    pthread_mutex_lock(&e->mu);
    /* the last queued or running generation */
    int id = atomic_load(&e->running_job);
    for (job *j = e->jobs; j; j = j->next)
        if (j->type == JOB_GENERATE) id = j->id;
    atomic_store(&e->cancel_job, id);
    pthread_mutex_unlock(&e->mu);
    pthread_mutex_lock(&e->smu);
    if (e->s) st_session_cancel(e->s);
    pthread_mutex_unlock(&e->smu);
}

bool ui_engine_busy(ui_engine *e) {
    pthread_mutex_lock(&e->mu);
    bool b = e->busy;
    pthread_mutex_unlock(&e->mu);
    return b;
}

bool ui_engine_stats(ui_engine *e, st_stats *out) {
    pthread_mutex_lock(&e->smu);
    bool ok = e->s != NULL;
    if (ok) {
        st_session_stats(e->s, out);
        /* the name lives as long as the session: a copy for the UI */
        if (out->gpu_device) {
            snprintf(e->gpu_name, sizeof e->gpu_name, "%s", out->gpu_device);
            out->gpu_device = e->gpu_name;
        }
    }
    pthread_mutex_unlock(&e->smu);
    return ok;
}

void ui_engine_counters(ui_engine *e, uint64_t *tokens, uint64_t *decode_ns) {
    *tokens = atomic_load(&e->tokens);
    *decode_ns = atomic_load(&e->decode_ns);
}

/* ---- the worker ------------------------------------------------------------ */

static void do_load(ui_engine *e, job *j) {
    ui_event ev = {.type = UI_EV_LOAD_FAILED, .job = j->id};
    st_error err = {0};
    /* the old model goes first: two big models may not fit side by side */
    pthread_mutex_lock(&e->smu);
    st_session *os = e->s;
    st_model *om = e->m;
    e->s = NULL;
    e->m = NULL;
    pthread_mutex_unlock(&e->smu);
    st_session_free(os);
    st_model_close(om);
    ui_prompt_fmt_free(&e->fmt);
    e->kv_len = 0;

    st_model *m = NULL;
    st_session *s = NULL;
    if (st_model_open(j->path, &j->mp, &m, &err) || st_session_new(m, &j->sp, &s, &err)) {
        st_model_close(m);
        snprintf(ev.msg, sizeof ev.msg, "%s", err.msg);
        ev.status = err.code ? err.code : ST_ERR_INTERNAL;
        post(e, &ev);
        return;
    }
    int n_ctx = st_session_n_ctx(s);
    int32_t *kv = realloc(e->kv, sizeof *kv * (size_t)(n_ctx + 1));
    if (!kv) {
        st_session_free(s);
        st_model_close(m);
        snprintf(ev.msg, sizeof ev.msg, "out of memory");
        ev.status = ST_ERR_NOMEM;
        post(e, &ev);
        return;
    }
    e->kv = kv;
    e->kv_cap = n_ctx + 1;
    ui_prompt_fmt_init(&e->fmt, m);
    pthread_mutex_lock(&e->smu);
    e->m = m;
    e->s = s;
    pthread_mutex_unlock(&e->smu);
    ev.type = UI_EV_LOADED;
    st_model_get_info(m, &ev.info);
    ev.n_ctx = n_ctx;
    snprintf(ev.format, sizeof ev.format, "%s%s", e->fmt.name, e->fmt.fallback ? " (no template)" : "");
    st_stats ss;
    st_session_stats(s, &ss);
    snprintf(ev.backend, sizeof ev.backend, "%s%s%s%s", ss.backend ? ss.backend : "cpu", ss.gpu_device ? " (" : "",
             ss.gpu_device ? ss.gpu_device : "", ss.gpu_device ? ")" : "");
    ev.text = strdup(st_model_path(m));
    ev.len = ev.text ? (int)strlen(ev.text) : 0;
    post(e, &ev);
}

typedef struct {
    ui_engine *e;
    int id;
    char *reply;
    int len, cap, sent;
    const char *const *stops;
    bool hit_stop;
    uint64_t last_ns;
    bool first;
} gen_state;

/* the longest suffix of r[0..n) that begins some stop string */
static int held_back(const char *r, int n, const char *const *stops) {
    int hold = 0;
    for (int k = 0; stops[k]; k++) {
        int sl = (int)strlen(stops[k]);
        for (int l = sl - 1; l > hold; l--)
            if (l <= n && !memcmp(r + n - l, stops[k], (size_t)l)) { hold = l; break; }
    }
    return hold;
}

static bool on_token(void *user, int32_t token, const char *piece, int len) {
    gen_state *g = user;
    ui_engine *e = g->e;
    if (e->kv_len < e->kv_cap) e->kv[e->kv_len++] = token;
    uint64_t now = st_now_ns();
    if (!g->first) atomic_fetch_add(&e->decode_ns, now - g->last_ns);
    g->first = false;
    g->last_ns = now;
    atomic_fetch_add(&e->tokens, 1);
    if (g->len + len + 1 > g->cap) {
        int cap = (g->len + len + 1) * 2;
        char *p = realloc(g->reply, (size_t)cap);
        if (!p) return false;
        g->reply = p;
        g->cap = cap;
    }
    memcpy(g->reply + g->len, piece, (size_t)len);
    g->len += len;
    g->reply[g->len] = 0;
    /* a stop string ends the reply; text that may begin one waits */
    int from = g->sent > 16 ? g->sent - 16 : 0;
    for (int k = 0; g->stops[k]; k++) {
        char *hit = strstr(g->reply + from, g->stops[k]);
        if (hit) {
            int q = (int)(hit - g->reply);
            if (q > g->sent) post_text(e, g->id, g->reply + g->sent, q - g->sent);
            g->sent = g->len;
            g->hit_stop = true;
            return false;
        }
    }
    int upto = g->len - held_back(g->reply, g->len, g->stops);
    if (upto > g->sent) {
        post_text(e, g->id, g->reply + g->sent, upto - g->sent);
        g->sent = upto;
    }
    return atomic_load(&e->cancel_job) != g->id;
}

static void do_generate(ui_engine *e, job *j) {
    ui_event ev = {.type = UI_EV_DONE, .job = j->id};
    st_error err = {0};
    char *text = NULL;
    int32_t *toks = NULL;
    gen_state g = {.e = e, .id = j->id, .first = true};
    if (!e->s) {
        ev.status = ST_ERR_ARG;
        snprintf(ev.msg, sizeof ev.msg, "no model loaded (use /model FILE)");
        goto out;
    }
    st_session *s = e->s;
    const st_tokenizer *tok = st_model_tokenizer(e->m);
    int n_ctx = st_session_n_ctx(s);
    int reserve = n_ctx / 4 < 64 ? n_ctx / 4 : 64;     /* room left for the reply */
    g.stops = ui_prompt_stops(&e->fmt);
    bool add_special = true;

    /* render; leave out the oldest turns (not system ones) until it fits */
    int first = 0;
    while (first < j->n_turns && j->turns[first].role == UI_ROLE_SYSTEM) first++;
    int drop = 0;
    int64_t n = 0;
    ui_turn *view = malloc(sizeof *view * (size_t)(j->n_turns + 1));
    if (!view) { ev.status = ST_ERR_NOMEM; snprintf(ev.msg, sizeof ev.msg, "out of memory"); goto out; }
    bool tried_last = false;
    for (;;) {
        int k = 0;
        for (int i = 0; i < first; i++) view[k++] = j->turns[i];
        for (int i = first + drop; i < j->n_turns; i++) view[k++] = j->turns[i];
        free(text);
        text = ui_prompt_render(&e->fmt, view, k, &add_special, &err);
        if (!text) break;
        n = st_tok_encode(tok, text, strlen(text), add_special, true, NULL, 0);
        if (n < 0) break;
        /* keep at least the last turn */
        if (n + reserve <= n_ctx || first + drop + 1 >= j->n_turns) break;
        if (!tried_last) {
            /* first the last turn alone: when even that does not fit (a
             * huge paste), say so at once rather than tokenizing it again
             * for every turn left out */
            tried_last = true;
            int keep = drop;
            drop = j->n_turns - 1 - first;
            int kk = 0;
            for (int i = 0; i < first; i++) view[kk++] = j->turns[i];
            view[kk++] = j->turns[j->n_turns - 1];
            bool as = true;
            char *t1 = ui_prompt_render(&e->fmt, view, kk, &as, &err);
            int64_t n1 = t1 ? st_tok_encode(tok, t1, strlen(t1), as, true, NULL, 0) : -1;
            if (t1 && n1 >= n_ctx) {
                free(text);
                text = t1;
                n = n1;
                add_special = as;
                break;
            }
            free(t1);
            drop = keep;
        }
        drop++;
        /* start the kept part at a user turn */
        while (first + drop + 1 < j->n_turns && j->turns[first + drop].role != UI_ROLE_USER) drop++;
    }
    free(view);
    if (!text) { ev.status = err.code ? err.code : ST_ERR_NOMEM; snprintf(ev.msg, sizeof ev.msg, "%s", err.msg); goto out; }
    if (n < 0) { ev.status = ST_ERR_INTERNAL; snprintf(ev.msg, sizeof ev.msg, "cannot tokenize the conversation"); goto out; }
    ev.n_dropped = drop;
    if (n >= n_ctx) {
        /* the last message alone does not fit: nothing is evaluated */
        ev.status = ST_ERR_CONTEXT;
        ev.too_long = true;
        ev.n_tokens = n;
        ev.n_ctx_used = n_ctx;
        snprintf(ev.msg, sizeof ev.msg, "the message needs %lld tokens and the context holds %d", (long long)n, n_ctx);
        goto out;
    }
    toks = malloc(sizeof *toks * (size_t)(n > 0 ? n : 1));
    if (!toks) { ev.status = ST_ERR_NOMEM; snprintf(ev.msg, sizeof ev.msg, "out of memory"); goto out; }
    st_tok_encode(tok, text, strlen(text), add_special, true, toks, n);

    /* reuse the cache up to the first difference (at least one token is
     * evaluated: the reply needs fresh logits) */
    int p = 0;
    int lim = e->kv_len < (int)n ? e->kv_len : (int)n;
    while (p < lim && e->kv[p] == toks[p]) p++;
    if (p >= n) p = (int)n - 1;
    if (p < 0) p = 0;
    st_session_rewind(s, p);
    e->kv_len = p;
    for (int i = p; i < n; i++) e->kv[e->kv_len++] = toks[i];
    ev.n_reused = p;
    ev.n_new = (int)n - p;

    st_gen_params gp = j->gp;
    int room = n_ctx - (int)n;
    if (gp.n_predict < 0 || gp.n_predict > room) gp.n_predict = room;
    st_status st = ST_OK;
    if (atomic_load(&e->cancel_job) == j->id) {
        /* stopped before it began: nothing to evaluate */
        st = ST_ERR_CANCELLED;
        e->kv_len = p;
    } else {
        st = st_generate(s, toks + p, (int)n - p, &gp, on_token, &g, &err);
    }
    int np = st_session_n_past(s);
    if (e->kv_len > np) e->kv_len = np;
    if (!g.hit_stop && g.len > g.sent) post_text(e, j->id, g.reply + g.sent, g.len - g.sent);
    ev.stopped = st == ST_ERR_CANCELLED || atomic_load(&e->cancel_job) == j->id;
    if (st && st != ST_ERR_CANCELLED) {
        ev.status = st;
        snprintf(ev.msg, sizeof ev.msg, "%s", err.msg);
    }
    st_stats ss;
    st_session_stats(s, &ss);
    ev.stats = ss;
    ev.n_gen = ss.n_gen;
    ev.gen_ns = ss.gen_ns;
    ev.n_prompt = ss.n_prompt;
    ev.prompt_ns = ss.prompt_ns;
out:
    free(g.reply);
    free(text);
    free(toks);
    post(e, &ev);
}

static void *worker(void *arg) {
    ui_engine *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->jobs) {
            e->busy = false;
            pthread_cond_wait(&e->cv, &e->mu);
        }
        job *j = e->jobs;
        e->jobs = j->next;
        if (!e->jobs) e->jobs_tail = NULL;
        e->busy = true;
        atomic_store(&e->running_job, j->id);
        pthread_mutex_unlock(&e->mu);
        job_type t = j->type;
        if (t == JOB_LOAD) do_load(e, j);
        else if (t == JOB_GENERATE) do_generate(e, j);
        atomic_store(&e->running_job, 0);
        job_free(j);
        if (t == JOB_QUIT) break;
    }
    return NULL;
}

ui_engine *ui_engine_new(void) {
    ui_engine *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK)) { free(e); return NULL; }
    e->pipe_r = fds[0];
    e->pipe_w = fds[1];
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->smu, NULL);
    pthread_cond_init(&e->cv, NULL);
    if (pthread_create(&e->thread, NULL, worker, e)) {
        ui_engine_free(e);
        return NULL;
    }
    e->started = true;
    return e;
}

void ui_engine_free(ui_engine *e) {
    if (!e) return;
    if (e->started) {
        pthread_mutex_lock(&e->mu);
        /* drop the queued jobs, stop the running one, then quit */
        while (e->jobs) { job *j = e->jobs; e->jobs = j->next; job_free(j); }
        e->jobs_tail = NULL;
        pthread_mutex_unlock(&e->mu);
        atomic_store(&e->cancel_job, atomic_load(&e->running_job));
        pthread_mutex_lock(&e->smu);
        if (e->s) st_session_cancel(e->s);
        pthread_mutex_unlock(&e->smu);
        job *q = calloc(1, sizeof *q);
        if (q) {
            q->type = JOB_QUIT;
            enqueue(e, q);
            pthread_join(e->thread, NULL);
        } else pthread_cancel(e->thread);
    }
    while (e->evs) { evnode *n = e->evs; e->evs = n->next; free(n->ev.text); free(n); }
    st_session_free(e->s);
    st_model_close(e->m);
    ui_prompt_fmt_free(&e->fmt);
    free(e->kv);
    close(e->pipe_r);
    close(e->pipe_w);
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->smu);
    pthread_cond_destroy(&e->cv);
    free(e);
}
