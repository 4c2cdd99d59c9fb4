/* store.c — the layer store (see store.h and docs/STORE.md). */
#define _GNU_SOURCE /* O_DIRECT */
#include "store.h"

#include "prefetch.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ALIGN 4096u              /* slot layout and O_DIRECT granule */
#define CHUNK (16u << 20)        /* bytes per read call (and staging buffer) */
#define MERGE_GAP (64u << 10)    /* tensors closer than this are read in one run */
#define DIST_CAP 8               /* the most layers a hint looks ahead */

enum { LS_ABSENT = 0, LS_LOADING, LS_RESIDENT, LS_ERROR };

typedef struct {
    uint64_t file_off; /* aligned down to ALIGN */
    uint64_t len;      /* aligned up to ALIGN (may run past the end of the file) */
    uint64_t slot_off; /* where the run starts in the slot (multiple of ALIGN) */
} run_t;

typedef struct {
    st_layer view;                              /* tensors pointed into the slot */
    run_t runs[ST_LAYER_N_TENSORS_ALL];
    int n_runs;
    uint64_t toff[ST_LAYER_N_TENSORS_ALL];      /* each tensor's offset in the slot */
    uint64_t bytes;                             /* tensor bytes (resident accounting) */
    uint64_t span;                              /* slot bytes this layer needs */
    /* under mu */
    int state;
    int slot;
    int refs;
    bool pinned;
    bool used;        /* acquired since it was loaded (lru: a prefetch never evicts an unused prefetch) */
    st_status err_code;
    char err_msg[sizeof(((st_error *)0)->msg)];
} layer_t;

typedef struct {
    void *handle;      /* from slot_alloc */
    uint8_t *base;     /* handle, aligned up to ALIGN for host slots */
    int layer;         /* -1: empty */
    uint64_t tick;     /* last use (lru) */
} slot_t;

static st_store_read_fn g_default_read;
static void *g_default_read_ctx;

void st_store_set_default_read(st_store_read_fn fn, void *ctx) {
    g_default_read = fn;
    g_default_read_ctx = ctx;
}

struct st_store {
    const st_model *m;
    st_backend *be;
    st_store_config cfg;
    int n_layer;
    bool budgeted;
    _Atomic uint64_t acquires, ready;

    /* ---- slots mode ---- */
    layer_t *L;
    slot_t *slots;
    int n_slots, n_pinned, n_ring;
    uint64_t slot_bytes, alloc_bytes, fixed_bytes, file_size;
    const char *path;
    int fd, dfd;              /* buffered fd (the gguf's), O_DIRECT fd or -1 */
    atomic_bool direct;       /* O_DIRECT in use (cleared if the filesystem refuses) */
    st_store_read_fn read;
    void *read_ctx;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int waiters;
    int cursor;               /* the layer acquired last */
    uint64_t tick;
    int dist, dist_limit;
    bool adaptive;
    bool stopped;             /* prefetch shut down */
    int advised;              /* last layer given a WILLNEED hint, -1 none */
    st_prefetch *pool;
    uint8_t *sync_staging;    /* non-host slots: staging for reads in acquire */
    uint8_t **staging;        /* per worker */
    int n_workers;

    pthread_mutex_t io_mu;    /* read busy-time accounting */
    int io_active;
    uint64_t io_t0;

    /* figures, readable without the lock */
    _Atomic uint64_t sync_loads, waits, stall_ns, errors, loads, bytes_read, read_busy_ns;
    _Atomic uint64_t issued, dedup, dropped_full, no_slot, cancelled;
    _Atomic uint64_t resident_bytes, peak_resident;
    _Atomic int a_dist, a_dist_max, slots_used;
    _Atomic uint8_t *state_pub;
    _Atomic int16_t *slot_pub;
};

void st_store_config_default(st_store_config *c) { memset(c, 0, sizeof *c); }

void st_store_config_from_session(st_store_config *c, const st_session_params *p) {
    st_store_config_default(c);
    c->cache_layers = p->cache_layers;
    c->mem_budget = p->mem_budget;
    c->policy = p->cache_policy;
    c->prefetch = p->prefetch;
    c->prefetch_threads = p->prefetch_threads;
    c->ring_slots = p->ring_slots;
    c->direct_io = p->direct_io;
}

static uint64_t align_down(uint64_t x) { return x & ~(uint64_t)(ALIGN - 1); }
static uint64_t align_up(uint64_t x) { return (x + ALIGN - 1) & ~(uint64_t)(ALIGN - 1); }

static ssize_t default_pread(void *ctx, int fd, void *buf, size_t n, uint64_t off) {
    (void)ctx;
    return pread(fd, buf, n, (off_t)off);
}

/* ------------------------------------------------------------ layout */

/* The layer's tensors (the optional ones where present) sorted by file
 * offset and merged into runs (a run is read with one call per CHUNK); in
 * the slot each run keeps its position modulo ALIGN, so every tensor is
 * aligned there as in the mmap. */
static void layout_layer(layer_t *ly, const st_layer *src) {
    ly->view = *src;
    const st_tensor *t[ST_LAYER_N_TENSORS_ALL];
    int idx[ST_LAYER_N_TENSORS_ALL];
    int nt = 0;
    for (int k = 0; k < ST_LAYER_N_TENSORS_ALL; k++) {
        t[k] = st_layer_tensor((st_layer *)src, k);
        if (t[k]->data) idx[nt++] = k;
    }
    for (int a = 1; a < nt; a++) /* insertion sort by offset */
        for (int b = a; b > 0 && t[idx[b]]->file_offset < t[idx[b - 1]]->file_offset; b--) {
            int x = idx[b]; idx[b] = idx[b - 1]; idx[b - 1] = x;
        }
    ly->n_runs = 0;
    ly->bytes = 0;
    uint64_t rs = 0, re = 0, slot_off = 0;
    int first_in_run = 0;
    for (int i = 0; i <= nt; i++) {
        const st_tensor *x = i < nt ? t[idx[i]] : NULL;
        if (x) ly->bytes += x->nbytes;
        if (i > 0 && (!x || x->file_offset > re + MERGE_GAP)) { /* close the run */
            run_t *r = &ly->runs[ly->n_runs++];
            r->file_off = align_down(rs);
            r->len = align_up(re) - r->file_off;
            r->slot_off = slot_off;
            for (int j = first_in_run; j < i; j++) ly->toff[idx[j]] = slot_off + (t[idx[j]]->file_offset - r->file_off);
            slot_off += r->len;
            first_in_run = i;
        }
        if (!x) break;
        if (i == first_in_run) { rs = x->file_offset; re = x->file_offset + x->nbytes; }
        else if (x->file_offset + x->nbytes > re) re = x->file_offset + x->nbytes;
    }
    ly->span = slot_off;
}

static void point_layer(st_store *s, int il, int sl) {
    layer_t *ly = &s->L[il];
    for (int k = 0; k < ST_LAYER_N_TENSORS_ALL; k++)
        if (st_layer_tensor(&ly->view, k)->data) st_layer_tensor(&ly->view, k)->data = s->slots[sl].base + ly->toff[k];
}

/* ------------------------------------------------------------ reads */

static void io_begin(st_store *s) {
    pthread_mutex_lock(&s->io_mu);
    if (s->io_active++ == 0) s->io_t0 = st_now_ns();
    pthread_mutex_unlock(&s->io_mu);
}

static void io_end(st_store *s) {
    pthread_mutex_lock(&s->io_mu);
    if (--s->io_active == 0) atomic_fetch_add_explicit(&s->read_busy_ns, st_now_ns() - s->io_t0, memory_order_relaxed);
    pthread_mutex_unlock(&s->io_mu);
}

/* Reads n bytes at off into dst, of which the first `need` must arrive (the
 * rest may lie past the end of the file). Partial reads are continued;
 * end of file before `need` is a short read. */
static st_status read_full(st_store *s, int il, uint8_t *dst, size_t n, uint64_t off, size_t need, st_error *err) {
    size_t got = 0;
    while (got < n) {
        bool direct = atomic_load_explicit(&s->direct, memory_order_relaxed);
        /* O_DIRECT needs aligned offsets and lengths; after a partial read, finish buffered */
        int fd = direct && (got % ALIGN) == 0 ? s->dfd : s->fd;
        ssize_t r = s->read(s->read_ctx, fd, dst + got, n - got, off + got);
        if (r < 0) {
            int e = errno;
            if (e == EINTR || e == EAGAIN) continue;
            if (e == EINVAL && fd == s->dfd && fd >= 0) { /* the filesystem refuses O_DIRECT after all */
                atomic_store(&s->direct, false);
                continue;
            }
            return st_error_set(err, ST_ERR_IO, "layer %d: read of %zu bytes at offset %" PRIu64 " of %s failed: %s", il,
                                n - got, off + got, s->path, strerror(e));
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    if (got < need) {
        /* end of file before the layer's bytes: say how large the file is now
         * (truncated while in use, or replaced in place by a shorter one) */
        struct stat sb;
        if (fstat(s->fd, &sb) == 0 && (uint64_t)sb.st_size < s->file_size)
            return st_error_set(err, ST_ERR_IO,
                                "layer %d: short read at offset %" PRIu64 " of %s: %zu of %zu bytes: the file is now %" PRIu64
                                " bytes, %" PRIu64 " when opened (truncated while in use)",
                                il, off + got, s->path, got, need, (uint64_t)sb.st_size, s->file_size);
        return st_error_set(err, ST_ERR_IO,
                            "layer %d: short read at offset %" PRIu64 " of %s: %zu of %zu bytes (file truncated?)", il,
                            off + got, s->path, got, need);
    }
    return ST_OK;
}

/* Copies layer il from the file into slot sl. */
static st_status load_layer(st_store *s, int il, int sl, uint8_t *staging, bool sync, st_error *err) {
    layer_t *ly = &s->L[il];
    slot_t *slot = &s->slots[sl];
    st_status rc = ST_OK;
    uint64_t total_read = 0;
    io_begin(s);
    for (int ri = 0; ri < ly->n_runs && !rc; ri++) {
        const run_t *r = &ly->runs[ri];
        uint64_t avail = r->file_off < s->file_size ? s->file_size - r->file_off : 0;
        uint64_t want = r->len < avail ? r->len : avail; /* bytes that exist */
        for (uint64_t done = 0; done < want && !rc; done += CHUNK) {
            if (!sync && st_prefetch_stopping(s->pool)) { rc = ST_ERR_CANCELLED; break; }
            size_t n = r->len - done < CHUNK ? (size_t)(r->len - done) : CHUNK;
            size_t need = want - done < n ? (size_t)(want - done) : n;
            uint8_t *dst = staging ? staging : slot->base + r->slot_off + done;
            rc = read_full(s, il, dst, n, r->file_off + done, need, err);
            if (!rc && staging) rc = s->be->ops->slot_upload(s->be, slot->handle, (size_t)(slot->base - (uint8_t *)slot->handle) + r->slot_off + done, staging, need, err);
            if (!rc) total_read += need;
        }
    }
    io_end(s);
    atomic_fetch_add_explicit(&s->bytes_read, total_read, memory_order_relaxed);
    if (rc == ST_ERR_CANCELLED) st_error_set(err, ST_ERR_CANCELLED, "layer %d: load cancelled (shutdown)", il);
    return rc;
}

/* ------------------------------------------------------------ residency (under mu) */

static void publish_layer(st_store *s, int il) {
    const layer_t *ly = &s->L[il];
    uint8_t st = ly->state == LS_RESIDENT ? (ly->pinned ? ST_LAYER_PINNED : ST_LAYER_RESIDENT)
               : ly->state == LS_LOADING  ? ST_LAYER_LOADING
                                          : ST_LAYER_ABSENT;
    atomic_store_explicit(&s->state_pub[il], st, memory_order_relaxed);
}

static void set_slot(st_store *s, int sl, int il) {
    int old = s->slots[sl].layer;
    s->slots[sl].layer = il;
    atomic_store_explicit(&s->slot_pub[sl], (int16_t)il, memory_order_relaxed);
    if (old < 0 && il >= 0) atomic_fetch_add_explicit(&s->slots_used, 1, memory_order_relaxed);
    if (old >= 0 && il < 0) atomic_fetch_sub_explicit(&s->slots_used, 1, memory_order_relaxed);
}

static int dist_of(const st_store *s, int il) { return (il - s->cursor + s->n_layer) % s->n_layer; }

/* A slot for layer j, or -1. Empty slots first; otherwise the victim is a
 * resident layer nobody holds: ring = the one needed farthest in the future
 * (for a hint, only one needed after j), lru = the one used longest ago. */
static int pick_slot(st_store *s, int j, bool for_acquire) {
    if (s->L[j].pinned) return j; /* the ring's pinned layers own slots 0..P-1 */
    int lo = s->n_pinned, best = -1;
    uint64_t best_score = 0;
    int dj = dist_of(s, j);
    for (int k = lo; k < s->n_slots; k++) {
        int y = s->slots[k].layer;
        if (y < 0) return k;
        const layer_t *ly = &s->L[y];
        if (ly->refs > 0 || ly->state != LS_RESIDENT) continue;
        uint64_t score;
        if (s->cfg.policy == ST_CACHE_RING) {
            int dy = dist_of(s, y);
            if (!for_acquire && dy <= dj) continue;
            score = (uint64_t)dy;
        } else {
            if (!for_acquire && !ly->used) continue;
            score = UINT64_MAX - s->slots[k].tick;
        }
        if (best < 0 || score > best_score) { best = k; best_score = score; }
    }
    return best;
}

static void assign(st_store *s, int il, int sl) {
    int y = s->slots[sl].layer;
    if (y >= 0 && y != il) {
        layer_t *old = &s->L[y];
        old->state = LS_ABSENT;
        old->slot = -1;
        atomic_fetch_sub_explicit(&s->resident_bytes, old->bytes, memory_order_relaxed);
        publish_layer(s, y);
    }
    set_slot(s, sl, il);
    s->L[il].slot = sl;
    s->L[il].used = false;
    s->L[il].state = LS_LOADING;
    point_layer(s, il, sl);
    publish_layer(s, il);
}

static void unassign(st_store *s, int il) {
    layer_t *ly = &s->L[il];
    if (ly->slot >= 0) set_slot(s, ly->slot, -1);
    ly->slot = -1;
}

static void finish_load_locked(st_store *s, int il, st_status rc, const st_error *e) {
    layer_t *ly = &s->L[il];
    if (rc == ST_OK) {
        ly->state = LS_RESIDENT;
        s->slots[ly->slot].tick = ++s->tick;
        uint64_t r = atomic_fetch_add_explicit(&s->resident_bytes, ly->bytes, memory_order_relaxed) + ly->bytes;
        if (r > atomic_load_explicit(&s->peak_resident, memory_order_relaxed))
            atomic_store_explicit(&s->peak_resident, r, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->loads, 1, memory_order_relaxed);
    } else {
        unassign(s, il);
        if (rc == ST_ERR_CANCELLED) {
            ly->state = LS_ABSENT;
            atomic_fetch_add_explicit(&s->cancelled, 1, memory_order_relaxed);
        } else {
            ly->state = LS_ERROR;
            ly->err_code = rc;
            snprintf(ly->err_msg, sizeof ly->err_msg, "%s", e && e->msg[0] ? e->msg : "read failed");
        }
    }
    publish_layer(s, il);
    pthread_cond_broadcast(&s->cv);
}

/* ------------------------------------------------------------ pool callbacks */

static void pf_run(void *ctx, int worker, st_pf_job job) {
    st_store *s = ctx;
    st_error e = {0};
    st_status rc = load_layer(s, job.layer, job.slot, s->staging ? s->staging[worker] : NULL, false, &e);
    pthread_mutex_lock(&s->mu);
    finish_load_locked(s, job.layer, rc, &e);
    pthread_mutex_unlock(&s->mu);
}

static void pf_cancel(void *ctx, st_pf_job job) {
    st_store *s = ctx;
    pthread_mutex_lock(&s->mu);
    finish_load_locked(s, job.layer, ST_ERR_CANCELLED, NULL);
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------ create / free */

static void *aligned_buf(size_t n) {
    void *p = NULL;
    return posix_memalign(&p, ALIGN, n) == 0 ? p : NULL;
}

/* A read buffer for non-host slots: the backend's pinned memory when it
 * offers some (one host copy fewer per byte), else ours. */
static void *staging_buf(st_store *s) {
    if (s->be->ops->host_alloc) {
        void *p = s->be->ops->host_alloc(s->be, CHUNK);
        if (p) return p;
    }
    return aligned_buf(CHUNK);
}

static void staging_free(st_store *s, void *p) {
    if (p && s->be->ops->host_free && s->be->ops->host_free(s->be, p)) return;
    free(p);
}

/* The slot arithmetic of a budget (st_store_new and st_store_plan_slots):
 * the largest layer's span sets the slot size, the budget the count. L, when
 * given, receives every layer's layout. */
static st_status plan_slots(const st_model *m, const st_store_config *c, layer_t *L, st_store_plan *o, st_error *err) {
    memset(o, 0, sizeof *o);
    int nl = m->hp.n_layer;
    uint64_t span = 0;
    for (int il = 0; il < nl; il++) {
        layer_t tmp, *ly = L ? &L[il] : &tmp;
        layout_layer(ly, &m->layers[il]);
        if (ly->span > span) span = ly->span;
    }
    o->budgeted = true;
    o->slot_span = span;
    o->slot_bytes = span + (c->host_slots ? ALIGN : 0);
    o->fixed_bytes = m->output.nbytes + m->output_norm.nbytes;
    int n = nl;
    if (c->cache_layers > 0 && c->cache_layers < n) n = c->cache_layers;
    if (c->mem_budget > 0) {
        if (c->mem_budget < o->fixed_bytes + o->slot_bytes)
            return st_error_set(err, ST_ERR_ARG,
                                "memory budget of %.1f MiB is too small for %s: the output tensors take %.1f MiB and "
                                "one layer slot %.1f MiB (at least %.1f MiB)",
                                c->mem_budget / 1048576.0, m->path, o->fixed_bytes / 1048576.0,
                                o->slot_bytes / 1048576.0, (o->fixed_bytes + o->slot_bytes) / 1048576.0);
        uint64_t k = (c->mem_budget - o->fixed_bytes) / o->slot_bytes;
        if (k < (uint64_t)n) n = (int)k;
    }
    if (c->cache_layers < 0) return st_error_set(err, ST_ERR_ARG, "cache layers must be positive, got %d", c->cache_layers);
    o->n_slots = n;
    return ST_OK;
}

st_status st_store_plan_slots(const st_model *m, const st_store_config *cfg, st_store_plan *out, st_error *err) {
    memset(out, 0, sizeof *out);
    if (!cfg || (cfg->cache_layers == 0 && cfg->mem_budget == 0)) return ST_OK; /* mmap: no slots */
    return plan_slots(m, cfg, NULL, out, err);
}

static st_status store_slots_init(st_store *s, st_error *err) {
    const st_model *m = s->m;
    const st_store_config *c = &s->cfg;
    int nl = s->n_layer;
    s->L = calloc((size_t)nl, sizeof *s->L);
    if (!s->L) return st_error_set(err, ST_ERR_NOMEM, "layer store: out of memory");
    st_store_plan plan;
    st_status prc = plan_slots(m, c, s->L, &plan, err);
    if (prc) return prc;
    for (int il = 0; il < nl; il++) s->L[il].slot = -1;
    s->slot_bytes = plan.slot_span;
    s->alloc_bytes = plan.slot_bytes;
    s->fixed_bytes = plan.fixed_bytes;
    s->file_size = st_gguf_file_size(m->gguf);
    int n = plan.n_slots;
    s->n_slots = n;

    /* pinned set + ring; the prefetch distance the slots allow */
    if (n >= nl) {
        s->n_ring = 0;
        s->n_pinned = c->policy == ST_CACHE_RING ? nl : 0;
        s->dist_limit = nl - 1 < 4 ? nl - 1 : 4;
    } else if (c->policy == ST_CACHE_RING) {
        /* auto: 4 streaming slots (prefetch distance 3), or all of them when
         * fewer. A smaller ring pins more layers (fewer bytes per token) but
         * leaves the reader idle while the pinned layers compute and absorbs
         * no jitter: on tinyllama with 6 of 22 layers, rings of 2/3/4 were
         * ready when needed 83/97/99.9% of the time.
         * Device slots (GPU): every slot streams. There the reads, not the
         * compute, set the pace, and they scale with the loads in flight:
         * llama2-7b Q8_0 with 8 slots on an H200 decoded 2.5 tok/s with 4
         * pinned + 4 streaming, 3.75 with 8 streaming (docs/VULKAN.md). */
        int r = c->ring_slots > 0 ? c->ring_slots : !c->host_slots ? n : n < 4 ? n : 4;
        if (r > n) r = n;
        s->n_ring = r;
        s->n_pinned = n - r;
        s->dist_limit = r - 1;
    } else {
        s->n_ring = n;
        s->n_pinned = 0;
        s->dist_limit = n - 1;
    }
    if (s->dist_limit > DIST_CAP) s->dist_limit = DIST_CAP;
    for (int il = 0; il < s->n_pinned; il++) s->L[il].pinned = true;

    s->slots = calloc((size_t)n, sizeof *s->slots);
    s->state_pub = calloc((size_t)nl, sizeof *s->state_pub);
    s->slot_pub = calloc((size_t)n, sizeof *s->slot_pub);
    if (!s->slots || !s->state_pub || !s->slot_pub) return st_error_set(err, ST_ERR_NOMEM, "layer store: out of memory");
    for (int k = 0; k < n; k++) {
        s->slots[k].layer = -1;
        atomic_store(&s->slot_pub[k], -1);
    }
    for (int k = 0; k < n; k++) {
        void *h = s->be->ops->slot_alloc(s->be, (size_t)s->alloc_bytes);
        if (!h)
            return st_error_set(err, ST_ERR_NOMEM, "layer store: cannot allocate slot %d of %d (%.1f MiB)", k + 1, n,
                                s->alloc_bytes / 1048576.0);
        s->slots[k].handle = h;
        s->slots[k].base = c->host_slots ? (uint8_t *)align_up((uintptr_t)h) : h;
    }

    s->fd = st_gguf_fd(m->gguf);
    s->dfd = -1;
    if (c->direct_io) {
        /* The file the model has open, not whatever is at its path now (it
         * may have been replaced since): reopen the descriptor through /proc,
         * and use the O_DIRECT one only if it is the same inode. */
        char fdpath[64];
        snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", s->fd);
        s->dfd = open(fdpath, O_RDONLY | O_DIRECT | O_CLOEXEC);
        if (s->dfd < 0) s->dfd = open(s->path, O_RDONLY | O_DIRECT | O_CLOEXEC);
        struct stat a, b;
        if (s->dfd >= 0 && (fstat(s->fd, &a) || fstat(s->dfd, &b) || a.st_dev != b.st_dev || a.st_ino != b.st_ino)) {
            close(s->dfd);
            s->dfd = -1;
        }
        if (s->dfd >= 0) atomic_store(&s->direct, true); /* else: buffered reads (the figures say so) */
    }
    if (!c->host_slots) {
        if (!(s->sync_staging = staging_buf(s))) return st_error_set(err, ST_ERR_NOMEM, "layer store: out of memory");
    }

    /* prefetch */
    s->dist = s->dist_limit < 2 ? s->dist_limit : 2;
    s->adaptive = c->prefetch == ST_PREFETCH_AUTO;
    if (c->prefetch > 0) s->dist = c->prefetch < s->dist_limit ? c->prefetch : s->dist_limit;
    if (c->prefetch != ST_PREFETCH_OFF && s->dist_limit >= 1 && st_prefetch_available()) {
        /* readers: 2 beside CPU compute; for device slots one per layer in
         * flight up to 6 (the GPU computes meanwhile: the host copies are
         * the limit and run in parallel) */
        int k = c->prefetch_threads > 0 ? c->prefetch_threads
              : !c->host_slots       ? (s->dist_limit < 6 ? (s->dist_limit < 1 ? 1 : s->dist_limit) : 6)
                                     : (s->dist_limit < 2 ? 1 : 2);
        int q = c->queue_cap > 0 ? c->queue_cap : (2 * s->dist_limit > 4 ? 2 * s->dist_limit : 4);
        if (!c->host_slots) {
            s->staging = calloc((size_t)k, sizeof *s->staging);
            if (!s->staging) return st_error_set(err, ST_ERR_NOMEM, "layer store: out of memory");
            for (int i = 0; i < k; i++)
                if (!(s->staging[i] = staging_buf(s))) return st_error_set(err, ST_ERR_NOMEM, "layer store: out of memory");
        }
        s->n_workers = k;
        st_pf_callbacks cb = {pf_run, pf_cancel};
        st_status rc = st_prefetch_new(k, q, &cb, s, &s->pool, err);
        if (rc) return rc;
    } else {
        s->dist = 0;
        s->stopped = true;
    }
    atomic_store(&s->a_dist, s->dist);
    atomic_store(&s->a_dist_max, s->dist);
    return ST_OK;
}

st_status st_store_new(const st_model *m, st_backend *be, const st_store_config *cfg, st_store **out, st_error *err) {
    *out = NULL;
    st_store *s = calloc(1, sizeof *s);
    if (!s) return st_error_set(err, ST_ERR_NOMEM, "layer store: out of memory");
    s->m = m;
    s->be = be;
    if (cfg) s->cfg = *cfg;
    else st_store_config_default(&s->cfg);
    s->n_layer = m->hp.n_layer;
    s->path = m->path;
    s->fd = s->dfd = -1;
    s->advised = -1;
    s->cursor = 0;
    s->read = s->cfg.read ? s->cfg.read : g_default_read ? g_default_read : default_pread;
    s->read_ctx = s->cfg.read ? s->cfg.read_ctx : g_default_read ? g_default_read_ctx : NULL;
    if (s->cfg.policy != ST_CACHE_RING && s->cfg.policy != ST_CACHE_LRU) {
        int pol = (int)s->cfg.policy;
        free(s);
        return st_error_set(err, ST_ERR_ARG, "layer store: unknown cache policy %d", pol);
    }
    s->budgeted = s->cfg.cache_layers != 0 || s->cfg.mem_budget != 0;
    if (s->budgeted) {
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->cv, NULL);
        pthread_mutex_init(&s->io_mu, NULL);
        st_status rc = store_slots_init(s, err);
        if (rc) {
            st_store_free(s);
            return rc;
        }
    }
    *out = s;
    return ST_OK;
}

void st_store_shutdown(st_store *s) {
    if (!s || !s->budgeted) return;
    pthread_mutex_lock(&s->mu);
    s->stopped = true;
    pthread_mutex_unlock(&s->mu);
    st_prefetch_shutdown(s->pool); /* cancels the queue, waits for the reads in flight, joins */
}

void st_store_free(st_store *s) {
    if (!s) return;
    if (s->budgeted) {
        st_store_shutdown(s);
        st_prefetch_free(s->pool);
        if (s->slots)
            for (int k = 0; k < s->n_slots; k++)
                if (s->slots[k].handle) s->be->ops->slot_free(s->be, s->slots[k].handle);
        if (s->dfd >= 0) close(s->dfd);
        if (s->staging)
            for (int i = 0; i < s->n_workers; i++) staging_free(s, s->staging[i]);
        free(s->staging);
        staging_free(s, s->sync_staging);
        free(s->slots);
        free((void *)s->state_pub);
        free((void *)s->slot_pub);
        free(s->L);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->io_mu);
    }
    free(s);
}

bool st_store_budgeted(const st_store *s) { return s->budgeted; }

/* ------------------------------------------------------------ acquire / release / hint */

static void grow_distance(st_store *s) {
    if (s->adaptive && !s->stopped && s->dist < s->dist_limit) {
        s->dist++;
        atomic_store_explicit(&s->a_dist, s->dist, memory_order_relaxed);
        if (s->dist > atomic_load_explicit(&s->a_dist_max, memory_order_relaxed))
            atomic_store_explicit(&s->a_dist_max, s->dist, memory_order_relaxed);
    }
}

static bool any_loading(const st_store *s) {
    for (int k = 0; k < s->n_slots; k++) {
        int y = s->slots[k].layer;
        if (y >= 0 && s->L[y].state == LS_LOADING) return true;
    }
    return false;
}

static void wait_cv(st_store *s) {
    s->waiters++;
    pthread_cond_wait(&s->cv, &s->mu);
    s->waiters--;
}

const st_layer *st_store_acquire(st_store *s, int il, st_error *err) {
    if (il < 0 || il >= s->n_layer) {
        st_error_set(err, ST_ERR_ARG, "layer store: layer %d out of range (0..%d)", il, s->n_layer - 1);
        return NULL;
    }
    atomic_fetch_add_explicit(&s->acquires, 1, memory_order_relaxed);
    if (!s->budgeted) {
        atomic_fetch_add_explicit(&s->ready, 1, memory_order_relaxed);
        return &s->m->layers[il];
    }
    pthread_mutex_lock(&s->mu);
    s->cursor = il;
    layer_t *ly = &s->L[il];
    uint64_t t0 = 0;
    bool loaded = false;
    const st_layer *res = NULL;
    for (;;) {
        if (ly->state == LS_RESIDENT) {
            ly->refs++;
            ly->used = true;
            s->slots[ly->slot].tick = ++s->tick;
            res = &ly->view;
            break;
        }
        if (!t0) {
            t0 = st_now_ns();
            grow_distance(s);
        }
        if (ly->state == LS_ERROR) {
            st_error_set(err, ly->err_code, "%s", ly->err_msg);
            ly->state = LS_ABSENT; /* reported once; a later acquire tries again */
            publish_layer(s, il);
            break;
        }
        if (ly->state == LS_LOADING) {
            wait_cv(s);
            continue;
        }
        int sl = pick_slot(s, il, true);
        if (sl < 0) {
            if (any_loading(s)) { wait_cv(s); continue; }
            st_error_set(err, ST_ERR_INTERNAL, "layer store: no slot for layer %d: all %d slots are held", il, s->n_slots);
            break;
        }
        assign(s, il, sl);
        loaded = true;
        pthread_mutex_unlock(&s->mu);
        st_error e = {0};
        st_status rc = load_layer(s, il, sl, s->sync_staging, true, &e);
        pthread_mutex_lock(&s->mu);
        finish_load_locked(s, il, rc, &e);
    }
    pthread_mutex_unlock(&s->mu);
    /* each acquisition is counted once: ready, failed, loaded here, or waited */
    if (t0) atomic_fetch_add_explicit(&s->stall_ns, st_now_ns() - t0, memory_order_relaxed);
    _Atomic uint64_t *ctr = !t0 ? &s->ready : !res ? &s->errors : loaded ? &s->sync_loads : &s->waits;
    atomic_fetch_add_explicit(ctr, 1, memory_order_relaxed);
    return res;
}

void st_store_release(st_store *s, int il) {
    if (!s->budgeted || il < 0 || il >= s->n_layer) return;
    pthread_mutex_lock(&s->mu);
    layer_t *ly = &s->L[il];
    if (ly->refs > 0) ly->refs--;
    if (ly->refs == 0 && s->waiters) pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void st_store_hint(st_store *s, int il, int n) {
    if (!s->budgeted || !s->pool) return;
    uint64_t adv_off = 0, adv_len = 0;
    pthread_mutex_lock(&s->mu);
    if (s->stopped) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    int nl = s->n_layer;
    il = ((il % nl) + nl) % nl;
    int d = n > 0 ? (n < s->dist_limit ? n : s->dist_limit) : s->dist;
    int k = 0, step = 0;
    for (; step < nl && k < d; step++) {
        int j = (il + step) % nl;
        layer_t *ly = &s->L[j];
        if (j == s->cursor && ly->refs > 0) continue;
        if (ly->pinned && (ly->state == LS_RESIDENT || ly->state == LS_LOADING)) continue; /* no load needed */
        k++;
        if (ly->state == LS_RESIDENT || ly->state == LS_LOADING) {
            atomic_fetch_add_explicit(&s->dedup, 1, memory_order_relaxed);
            continue;
        }
        if (ly->state == LS_ERROR) continue; /* left for acquire to report */
        if (st_prefetch_queue_depth(s->pool) >= st_prefetch_queue_cap(s->pool)) {
            atomic_fetch_add_explicit(&s->dropped_full, 1, memory_order_relaxed);
            break;
        }
        int sl = pick_slot(s, j, false);
        if (sl < 0) {
            atomic_fetch_add_explicit(&s->no_slot, 1, memory_order_relaxed);
            if (n <= 0 && s->adaptive && s->dist > 1) {
                s->dist = k - 1 > 1 ? k - 1 : 1;
                atomic_store_explicit(&s->a_dist, s->dist, memory_order_relaxed);
            }
            break;
        }
        assign(s, j, sl);
        if (!st_prefetch_submit(s->pool, (st_pf_job){j, sl})) { /* only when shutting down */
            unassign(s, j);
            ly->state = LS_ABSENT;
            publish_layer(s, j);
            break;
        }
        atomic_fetch_add_explicit(&s->issued, 1, memory_order_relaxed);
    }
    /* Ask the kernel to start reading the next streamed layer beyond the
     * window into the page cache (not with O_DIRECT). */
    if (!atomic_load_explicit(&s->direct, memory_order_relaxed) && k >= d) {
        for (; step < nl; step++) {
            int j = (il + step) % nl;
            if (s->L[j].state == LS_ABSENT) {
                if (j != s->advised) {
                    s->advised = j;
                    adv_off = s->L[j].runs[0].file_off;
                    const run_t *last = &s->L[j].runs[s->L[j].n_runs - 1];
                    adv_len = last->file_off + last->len - adv_off;
                }
                break;
            }
            if (!s->L[j].pinned) break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (adv_len) posix_fadvise(s->fd, (off_t)adv_off, (off_t)adv_len, POSIX_FADV_WILLNEED);
}

/* ------------------------------------------------------------ figures */

void st_store_get_stats(const st_store *cs, st_store_figures *o) {
    st_store *s = (st_store *)cs;
    memset(o, 0, sizeof *o);
    int nl = s->n_layer;
    o->n_layer = nl;
    o->budgeted = s->budgeted;
    o->policy = s->cfg.policy;
    o->acquires = atomic_load_explicit(&s->acquires, memory_order_relaxed);
    o->ready = atomic_load_explicit(&s->ready, memory_order_relaxed);
    if (!s->budgeted) {
        o->resident_bytes = o->peak_resident_bytes = s->m->layer_bytes;
        for (int i = 0; i < nl && i < ST_STATS_MAX_LAYERS; i++) o->layer_state[i] = ST_LAYER_MAPPED;
        return;
    }
    o->budget_bytes = s->cfg.mem_budget;
    o->slot_bytes = s->alloc_bytes;
    o->fixed_bytes = s->fixed_bytes;
    o->n_slots = s->n_slots;
    o->n_pinned = s->n_pinned;
    o->n_ring = s->n_ring;
    o->slots_used = atomic_load_explicit(&s->slots_used, memory_order_relaxed);
    o->sync_loads = atomic_load_explicit(&s->sync_loads, memory_order_relaxed);
    o->waits = atomic_load_explicit(&s->waits, memory_order_relaxed);
    o->stall_ns = atomic_load_explicit(&s->stall_ns, memory_order_relaxed);
    o->errors = atomic_load_explicit(&s->errors, memory_order_relaxed);
    o->loads = atomic_load_explicit(&s->loads, memory_order_relaxed);
    o->bytes_read = atomic_load_explicit(&s->bytes_read, memory_order_relaxed);
    o->read_busy_ns = atomic_load_explicit(&s->read_busy_ns, memory_order_relaxed);
    o->read_mbps = o->read_busy_ns ? o->bytes_read * 1e3 / o->read_busy_ns : 0;
    o->prefetch_on = s->pool != NULL;
    o->direct_io = atomic_load_explicit(&s->direct, memory_order_relaxed);
    o->prefetch_threads = st_prefetch_n_threads(s->pool);
    o->distance = atomic_load_explicit(&s->a_dist, memory_order_relaxed);
    o->distance_max = atomic_load_explicit(&s->a_dist_max, memory_order_relaxed);
    o->distance_limit = s->pool ? s->dist_limit : 0;
    o->issued = atomic_load_explicit(&s->issued, memory_order_relaxed);
    o->dedup = atomic_load_explicit(&s->dedup, memory_order_relaxed);
    o->dropped_full = atomic_load_explicit(&s->dropped_full, memory_order_relaxed);
    o->no_slot = atomic_load_explicit(&s->no_slot, memory_order_relaxed);
    o->cancelled = atomic_load_explicit(&s->cancelled, memory_order_relaxed);
    o->queue_cap = st_prefetch_queue_cap(s->pool);
    o->queue_depth = st_prefetch_queue_depth(s->pool);
    o->queue_peak = st_prefetch_queue_peak(s->pool);
    o->resident_bytes = atomic_load_explicit(&s->resident_bytes, memory_order_relaxed);
    o->peak_resident_bytes = atomic_load_explicit(&s->peak_resident, memory_order_relaxed);
    o->slot_alloc_bytes = (uint64_t)s->n_slots * s->alloc_bytes;
    for (int i = 0; i < nl && i < ST_STATS_MAX_LAYERS; i++)
        o->layer_state[i] = atomic_load_explicit(&s->state_pub[i], memory_order_relaxed);
    for (int i = 0; i < ST_STATS_MAX_LAYERS; i++)
        o->slot_layer[i] = i < s->n_slots ? atomic_load_explicit(&s->slot_pub[i], memory_order_relaxed) : -1;
}
