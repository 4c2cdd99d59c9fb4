/* dbq.c — the history database on its own thread. */
#define _GNU_SOURCE
#include "dbq.h"
#include "db.h"
#include "history.h"
#include "benchdb.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { J_OPEN, J_LIST, J_SEARCH, J_MSGS, J_SAVE, J_DELETE, J_EXPORT, J_BENCH, J_QUIT } jtype;

typedef struct djob {
    jtype type;
    int id;
    char *s1, *s2;               /* path / query / model / file; backend */
    int64_t conv_id;
    int limit;
    bool flag;
    /* J_SAVE */
    int local;
    char *model_name, *model_file, *system, *user, *reply, *sampling_json;
    bool stopped;
    bool has_stats;
    st_stats stats;
    struct djob *next;
} djob;

typedef struct devnode {
    ui_db_event ev;
    struct devnode *next;
} devnode;

#define MAX_LOCAL 64

struct ui_db {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    djob *jobs, *tail;
    devnode *evs, *evtail;
    int next_id;
    int pipe_r, pipe_w;
    atomic_bool woken;
    /* thread-only */
    st_db *db;
    char open_err[512];
    struct { int local; int64_t id; } map[MAX_LOCAL];
    int n_map;
};

static char *sdup(const char *s) { return s ? strdup(s) : NULL; }

static void post(ui_db *d, const ui_db_event *ev) {
    devnode *n = calloc(1, sizeof *n);
    if (!n) { ui_db_event e = *ev; ui_db_event_free(&e); return; }
    n->ev = *ev;
    pthread_mutex_lock(&d->mu);
    if (d->evtail) d->evtail->next = n;
    else d->evs = n;
    d->evtail = n;
    pthread_mutex_unlock(&d->mu);
    if (!atomic_exchange(&d->woken, true)) {
        char c = 1;
        ssize_t r = write(d->pipe_w, &c, 1);
        (void)r;
    }
}

static void fail(ui_db *d, const djob *j, const char *msg) {
    ui_db_event ev = {.type = UI_DB_FAILED, .req = j->id};
    snprintf(ev.msg, sizeof ev.msg, "%s", msg);
    post(d, &ev);
}

void ui_db_event_free(ui_db_event *ev) {
    for (int i = 0; ev->convs && i < ev->n; i++) { free(ev->convs[i].title); free(ev->convs[i].model); }
    for (int i = 0; ev->hits && i < ev->n; i++) { free(ev->hits[i].title); free(ev->hits[i].role); free(ev->hits[i].snippet); }
    for (int i = 0; ev->msgs && i < ev->n; i++) { free(ev->msgs[i].role); free(ev->msgs[i].content); }
    free(ev->convs);
    free(ev->hits);
    free(ev->msgs);
    free(ev->bench);
    free(ev->text);
    memset(ev, 0, sizeof *ev);
}

bool ui_db_next_event(ui_db *d, ui_db_event *ev) {
    char buf[64];
    atomic_store(&d->woken, false);
    while (read(d->pipe_r, buf, sizeof buf) > 0) {}
    pthread_mutex_lock(&d->mu);
    devnode *n = d->evs;
    if (n) {
        d->evs = n->next;
        if (!d->evs) d->evtail = NULL;
    }
    pthread_mutex_unlock(&d->mu);
    if (!n) return false;
    *ev = n->ev;
    free(n);
    return true;
}

int ui_db_wake_fd(const ui_db *d) { return d->pipe_r; }

/* ---- collecting results ------------------------------------------------------- */

typedef struct {
    void *a;
    int n, cap;
    size_t sz;
    bool oom;
} vec;

static void *vec_push(vec *v) {
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 32;
        void *p = realloc(v->a, (size_t)cap * v->sz);
        if (!p) { v->oom = true; return NULL; }
        v->a = p;
        v->cap = cap;
    }
    void *e = (char *)v->a + (size_t)v->n++ * v->sz;
    memset(e, 0, v->sz);
    return e;
}

static bool on_conv(void *u, const st_db_conversation *c) {
    ui_db_conv *o = vec_push(u);
    if (!o) return false;
    o->id = c->id;
    o->title = sdup(c->title ? c->title : "");
    o->model = sdup(c->model_name ? c->model_name : "");
    o->updated_ms = c->updated_ms;
    o->n_messages = c->n_messages;
    return true;
}

static bool on_hit(void *u, const st_db_search_hit *h) {
    ui_db_hit *o = vec_push(u);
    if (!o) return false;
    o->conv_id = h->conversation_id;
    o->title = sdup(h->title ? h->title : "");
    o->role = sdup(h->role ? h->role : "");
    o->snippet = sdup(h->snippet ? h->snippet : "");
    o->created_ms = h->created_ms;
    return true;
}

static bool on_msg(void *u, const st_db_message *m) {
    ui_db_msg *o = vec_push(u);
    if (!o) return false;
    o->role = sdup(m->role ? m->role : "");
    o->content = sdup(m->content ? m->content : "");
    o->stopped = m->stopped;
    o->decode_tps = m->has_stats ? m->decode_tps : 0;
    return true;
}

typedef struct { char *system; } conv_one;

static bool on_conv_one(void *u, const st_db_conversation *c) {
    conv_one *o = u;
    o->system = sdup(c->system_prompt && *c->system_prompt ? c->system_prompt : NULL);
    return false;
}

static bool on_bench(void *u, const st_db_bench_row *r) {
    ui_db_bench *o = vec_push(u);
    if (!o) return false;
    o->id = r->id;
    o->run = r->run;
    o->created_ms = r->created_ms;
    snprintf(o->model, sizeof o->model, "%.127s", r->model_name[0] ? r->model_name : r->model_filename);
    snprintf(o->type, sizeof o->type, "%s", r->model_type);
    snprintf(o->backend, sizeof o->backend, "%s", r->backends);
    snprintf(o->test, sizeof o->test, "%s", r->test);
    snprintf(o->commit, sizeof o->commit, "%s", r->build_commit);
    o->n_threads = r->n_threads;
    o->n_prompt = r->n_prompt;
    o->n_gen = r->n_gen;
    o->avg_ts = r->avg_ts;
    o->stddev_ts = r->stddev_ts;
    o->ready_rate = r->ready_rate;
    o->budgeted = r->budgeted;
    o->cache_layers = r->cache_layers;
    o->mem_budget = r->mem_budget;
    return true;
}

/* ---- jobs ---------------------------------------------------------------------- */

static int64_t local_id(ui_db *d, int local) {
    for (int i = 0; i < d->n_map; i++)
        if (d->map[i].local == local) return d->map[i].id;
    return 0;
}

static void set_local(ui_db *d, int local, int64_t id) {
    if (d->n_map == MAX_LOCAL) { memmove(d->map, d->map + 1, sizeof d->map[0] * (MAX_LOCAL - 1)); d->n_map--; }
    d->map[d->n_map].local = local;
    d->map[d->n_map].id = id;
    d->n_map++;
}

static void title_of(const char *user, char *buf, size_t n) {
    size_t k = 0;
    while (*user == ' ' || *user == '\n') user++;
    for (const char *p = user; *p && k + 1 < n; p++) buf[k++] = (*p == '\n' || *p == '\t') ? ' ' : *p;
    buf[k] = 0;
    if (k > 60) {
        /* cut at a character boundary */
        k = 60;
        while (k > 0 && ((unsigned char)buf[k] & 0xC0) == 0x80) k--;
        strcpy(buf + k, "…");
    }
}

static void run_job(ui_db *d, djob *j) {
    st_error err = {0};
    ui_db_event ev = {.req = j->id};
    if (j->type == J_OPEN) {
        char path[4096];
        const char *p = j->s1;
        if (!p) {
            if (st_db_default_path(path, sizeof path, true, &err)) { snprintf(d->open_err, sizeof d->open_err, "%s", err.msg); fail(d, j, err.msg); return; }
            p = path;
        }
        if (st_db_open(p, ST_DB_CREATE, &d->db, &err)) { snprintf(d->open_err, sizeof d->open_err, "%s", err.msg); fail(d, j, err.msg); return; }
        ev.type = UI_DB_OPENED;
        snprintf(ev.msg, sizeof ev.msg, "%.500s", p);
        post(d, &ev);
        return;
    }
    if (!d->db) { fail(d, j, d->open_err[0] ? d->open_err : "the history database is not open"); return; }
    vec v = {0};
    st_status st = ST_OK;
    switch (j->type) {
    case J_LIST:
        v.sz = sizeof(ui_db_conv);
        st = st_db_conv_list(d->db, j->limit, NULL, on_conv, &v, &err);
        ev.type = UI_DB_CONVS;
        ev.convs = v.a;
        break;
    case J_SEARCH:
        v.sz = sizeof(ui_db_hit);
        st = st_db_search(d->db, j->s1, false, 200, "\x01", "\x02", on_hit, &v, &err);
        ev.type = UI_DB_HITS;
        ev.hits = v.a;
        ev.text = sdup(j->s1);
        break;
    case J_MSGS: {
        conv_one c1 = {0};
        st = st_db_conv_get(d->db, j->conv_id, on_conv_one, &c1, &err);
        if (!st) {
            v.sz = sizeof(ui_db_msg);
            st = st_db_messages(d->db, j->conv_id, on_msg, &v, &err);
        }
        ev.type = UI_DB_MESSAGES;
        ev.msgs = v.a;
        ev.text = c1.system;
        ev.conv_id = j->conv_id;
        ev.continue_it = j->flag;
        break;
    }
    case J_SAVE: {
        int64_t id = j->conv_id ? j->conv_id : local_id(d, j->local);
        st_db_message m[2];
        memset(m, 0, sizeof m);
        m[0].role = "user";
        m[0].content = j->user;
        m[1].role = "assistant";
        m[1].content = j->reply;
        m[1].stopped = j->stopped;
        if (j->has_stats) st_db_message_set_stats(&m[1], &j->stats);
        if (!id) {
            char title[128], hash[64];
            title_of(j->user, title, sizeof title);
            st_db_model_fingerprint(j->model_file, hash, sizeof hash);
            st_db_conversation c = {.title = title, .model_name = j->model_name, .model_file = j->model_file,
                                    .model_hash = hash, .system_prompt = j->system, .sampling = j->sampling_json};
            st = st_db_conv_create(d->db, &c, m, 2, &id, &err);
            if (!st) set_local(d, j->local, id);
        } else {
            m[0].conversation_id = m[1].conversation_id = id;
            st = st_db_message_add(d->db, &m[0], NULL, &err);
            if (!st) st = st_db_message_add(d->db, &m[1], NULL, &err);
        }
        ev.type = UI_DB_SAVED;
        ev.conv_id = id;
        ev.local = j->local;
        break;
    }
    case J_DELETE: {
        int n = 0;
        st = st_db_conv_delete(d->db, j->conv_id, &n, &err);
        ev.type = UI_DB_DELETED;
        ev.conv_id = j->conv_id;
        ev.n = n;
        for (int i = 0; i < d->n_map; i++)
            if (d->map[i].id == j->conv_id) d->map[i].id = -1;
        break;
    }
    case J_EXPORT: {
        FILE *f = fopen(j->s1, "w");
        if (!f) { snprintf(err.msg, sizeof err.msg, "cannot write %s", j->s1); st = ST_ERR_IO; break; }
        st = st_db_export(d->db, j->conv_id, ST_DB_EXPORT_MD, f, &err);
        if (fclose(f) && !st) { snprintf(err.msg, sizeof err.msg, "cannot write %s", j->s1); st = ST_ERR_IO; }
        ev.type = UI_DB_EXPORTED;
        snprintf(ev.msg, sizeof ev.msg, "%s", j->s1);
        break;
    }
    case J_BENCH: {
        v.sz = sizeof(ui_db_bench);
        st_db_bench_filter f = {.model = j->s1, .backend = j->s2, .limit = 2000};
        st = st_db_bench_list(d->db, &f, on_bench, &v, &err);
        ev.type = UI_DB_BENCH;
        ev.bench = v.a;
        break;
    }
    default: break;
    }
    ev.n = ev.type == UI_DB_DELETED ? ev.n : v.n;
    if (st || v.oom) {
        ui_db_event_free(&ev);
        if (st_db_damaged(d->db)) {
            /* damaged on disk: leave the file as it is (the connection
             * writes nothing more; closing it does no checkpoint) */
            st_db_close(d->db);
            d->db = NULL;
            snprintf(d->open_err, sizeof d->open_err, "%s", err.msg);
            ui_db_event f = {.type = UI_DB_FAILED, .req = j->id, .closed = true};
            snprintf(f.msg, sizeof f.msg, "%s", err.msg);
            post(d, &f);
            return;
        }
        fail(d, j, v.oom ? "out of memory" : err.msg);
        return;
    }
    post(d, &ev);
}

static void job_free(djob *j) {
    free(j->s1); free(j->s2); free(j->model_name); free(j->model_file); free(j->system);
    free(j->user); free(j->reply); free(j->sampling_json);
    free(j);
}

static void *worker(void *arg) {
    ui_db *d = arg;
    for (;;) {
        pthread_mutex_lock(&d->mu);
        while (!d->jobs) pthread_cond_wait(&d->cv, &d->mu);
        djob *j = d->jobs;
        d->jobs = j->next;
        if (!d->jobs) d->tail = NULL;
        /* a newer search makes this one pointless */
        bool skip = false;
        if (j->type == J_SEARCH)
            for (djob *k = d->jobs; k; k = k->next) if (k->type == J_SEARCH) skip = true;
        pthread_mutex_unlock(&d->mu);
        jtype t = j->type;
        if (!skip && t != J_QUIT) run_job(d, j);
        job_free(j);
        if (t == J_QUIT) break;
    }
    return NULL;
}

static int enqueue(ui_db *d, djob *j) {
    pthread_mutex_lock(&d->mu);
    j->id = ++d->next_id;
    if (d->tail) d->tail->next = j;
    else d->jobs = j;
    d->tail = j;
    pthread_cond_signal(&d->cv);
    int id = j->id;
    pthread_mutex_unlock(&d->mu);
    return id;
}

static djob *job(jtype t) {
    djob *j = calloc(1, sizeof *j);
    if (j) j->type = t;
    return j;
}

ui_db *ui_db_new(const char *path) {
    ui_db *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK)) { free(d); return NULL; }
    d->pipe_r = fds[0];
    d->pipe_w = fds[1];
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    if (pthread_create(&d->thread, NULL, worker, d)) {
        close(fds[0]);
        close(fds[1]);
        free(d);
        return NULL;
    }
    djob *j = job(J_OPEN);
    if (j) {
        j->s1 = sdup(path);
        enqueue(d, j);
    }
    return d;
}

void ui_db_free(ui_db *d) {
    if (!d) return;
    /* queued saves still run: a reply that completed is written */
    djob *q = job(J_QUIT);
    if (q) {
        enqueue(d, q);
        pthread_join(d->thread, NULL);
    } else pthread_cancel(d->thread);
    while (d->jobs) { djob *j = d->jobs; d->jobs = j->next; job_free(j); }
    while (d->evs) { devnode *n = d->evs; d->evs = n->next; ui_db_event_free(&n->ev); free(n); }
    st_db_close(d->db);
    close(d->pipe_r);
    close(d->pipe_w);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d);
}

int ui_db_list(ui_db *d, int limit) {
    djob *j = job(J_LIST);
    if (!j) return -1;
    j->limit = limit;
    return enqueue(d, j);
}

int ui_db_search(ui_db *d, const char *query) {
    djob *j = job(J_SEARCH);
    if (!j || !(j->s1 = sdup(query))) { free(j); return -1; }
    return enqueue(d, j);
}

int ui_db_open_conv(ui_db *d, int64_t id, bool continue_it) {
    djob *j = job(J_MSGS);
    if (!j) return -1;
    j->conv_id = id;
    j->flag = continue_it;
    return enqueue(d, j);
}

int ui_db_delete(ui_db *d, int64_t id) {
    djob *j = job(J_DELETE);
    if (!j) return -1;
    j->conv_id = id;
    return enqueue(d, j);
}

int ui_db_export(ui_db *d, int64_t id, const char *path) {
    djob *j = job(J_EXPORT);
    if (!j || !(j->s1 = sdup(path))) { free(j); return -1; }
    j->conv_id = id;
    return enqueue(d, j);
}

int ui_db_bench_runs(ui_db *d, const char *model, const char *backend) {
    djob *j = job(J_BENCH);
    if (!j) return -1;
    j->s1 = model && *model ? sdup(model) : NULL;
    j->s2 = backend && *backend ? sdup(backend) : NULL;
    return enqueue(d, j);
}

int ui_db_save_turn(ui_db *d, const ui_db_turn *t) {
    djob *j = job(J_SAVE);
    if (!j) return -1;
    j->conv_id = t->conv_id;
    j->local = t->local;
    j->model_name = sdup(t->model_name ? t->model_name : "");
    j->model_file = sdup(t->model_file ? t->model_file : "");
    j->system = sdup(t->system_prompt);
    j->user = sdup(t->user ? t->user : "");
    j->reply = sdup(t->reply ? t->reply : "");
    j->stopped = t->stopped;
    if (t->stats) { j->stats = *t->stats; j->has_stats = true; }   /* backend: a static name */
    char js[512] = "{}";
    if (t->sampling) st_db_sampling_json(t->sampling, t->max_reply, js, sizeof js);
    j->sampling_json = sdup(js);
    if (!j->model_name || !j->model_file || !j->user || !j->reply || !j->sampling_json) { job_free(j); return -1; }
    return enqueue(d, j);
}
