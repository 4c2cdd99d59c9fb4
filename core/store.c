/* store.c — the layer store (see store.h and docs/STORE.md). */
#define _GNU_SOURCE /* O_DIRECT */
#include "store.h"

#include "mem.h"
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
#define CHUNK (16u << 20)        /* default bytes per chunk: one read call, one upload, one buffer */
/* ... for device slots: llama2-7b Q8_0 streamed through 8 slots by 12
 * readers decoded on an H100 at 6.18-6.43 tok/s in 4 MiB chunks vs
 * 5.69-6.00 in 6 MiB and 4.74-5.47 in 8 MiB (runs alternated), on an H200
 * at 6.50 in 4 MiB vs 6.65-6.75 in 8 MiB and 5.30-5.51 in 16 MiB (more
 * pieces keep more readers on the layer needed next; docs/VULKAN.md,
 * "Streaming") */
#define CHUNK_DEV (4u << 20)
#define CHUNK_MAX (64u << 20)    /* the most a configured chunk may be */
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
    /* The load in progress (LS_LOADING) is split into chunks that any
     * reader may take, so that several fill the layer needed next at once;
     * the last chunk to finish completes the load. */
    int n_chunks;     /* chunks of the runs' bytes (constant after init) */
    bool open;        /* chunks are handed out (a queued prefetch is not open yet) */
    bool sync;        /* loaded for an acquire: shutdown lets it finish */
    int ck_next;      /* the next chunk to hand out */
    int ck_left;      /* chunks not finished, handed out or not */
    st_error ck_err;  /* the load's first failure (code ST_OK: none) */
    st_status err_code;
    char err_msg[sizeof(((st_error *)0)->msg)];
    /* The host cache (device slots only): the layer's slot image kept in
     * pinned host memory, read from the file once when the store is made.
     * Its loads are one upload, no read. */
    uint8_t *hc;
    bool hc_pending;  /* an upload from hc may still be reading it (the loading reader's) */
} layer_t;

typedef struct {
    void *handle;      /* from slot_alloc */
    uint8_t *base;     /* handle, aligned up to ALIGN for host slots */
    int layer;         /* -1: empty */
    uint64_t tick;     /* last use (lru) */
} slot_t;

/* A reader's buffers for device slots (none for host slots: reads land in
 * the slot). Two when the backend uploads asynchronously, so that the file
 * read into one overlaps the DMA from the other. */
typedef struct {
    uint8_t *buf[2];
    bool pinned[2];   /* from host_alloc: the device copies from it directly */
    bool pending[2];  /* an async upload may still be reading it */
    int next;
} reader_t;

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
    uint64_t chunk;           /* bytes per chunk (and per reader buffer) */
    bool async;               /* the backend has slot_upload_async + host_wait */
    reader_t sync_rd;         /* acquire's buffers (device slots) */
    int n_hc;                 /* layers in the host cache */
    uint64_t hc_bytes;        /* its pinned memory */
    reader_t *rd;             /* each worker's */
    int n_workers;

    pthread_mutex_t io_mu;    /* read busy-time accounting */
    int io_active;
    uint64_t io_t0;

    /* figures, readable without the lock */
    _Atomic uint64_t sync_loads, waits, stall_ns, errors, loads, bytes_read, read_busy_ns;
    _Atomic uint64_t io_open_since;  /* start of the busy interval in progress, 0 if none (for stats) */
    _Atomic uint64_t issued, dedup, dropped_full, no_slot, cancelled;
    _Atomic uint64_t hc_loads, bytes_uploaded;
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
    c->chunk_bytes = p->prefetch_chunk;
    c->host_cache = p->host_cache;
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
    if (s->io_active++ == 0) {
        s->io_t0 = st_now_ns();
        atomic_store_explicit(&s->io_open_since, s->io_t0, memory_order_relaxed);
    }
    pthread_mutex_unlock(&s->io_mu);
}

static void io_end(st_store *s) {
    pthread_mutex_lock(&s->io_mu);
    if (--s->io_active == 0) {
        atomic_store_explicit(&s->io_open_since, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->read_busy_ns, st_now_ns() - s->io_t0, memory_order_relaxed);
    }
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

/* Bytes of run r that exist in the file as opened (the rest of its last
 * 4 KiB may lie past the end). */
static uint64_t run_want(const st_store *s, const run_t *r) {
    uint64_t avail = r->file_off < s->file_size ? s->file_size - r->file_off : 0;
    return r->len < avail ? r->len : avail;
}

static int layer_chunks(const st_store *s, const layer_t *ly) {
    int n = 0;
    for (int ri = 0; ri < ly->n_runs; ri++) n += (int)((run_want(s, &ly->runs[ri]) + s->chunk - 1) / s->chunk);
    return n;
}

/* The buffer a reader's next chunk goes into: the one not written last,
 * once the device has finished reading it. */
static st_status reader_buf(st_store *s, reader_t *rd, int *b, st_error *err) {
    *b = rd->buf[1] ? rd->next : 0;
    rd->next = *b ^ 1;
    if (!rd->pending[*b]) return ST_OK;
    rd->pending[*b] = false;
    return s->be->ops->host_wait(s->be, rd->buf[*b], err);
}

/* Where chunk k of a layer lies: its run, its offset in the run, the bytes
 * to read (n) and those of them that exist in the file (need). */
static const run_t *chunk_at(const st_store *s, const layer_t *ly, int k, uint64_t *done, size_t *n, size_t *need) {
    const run_t *r = ly->runs;
    uint64_t want = 0;
    for (int ri = 0; ri < ly->n_runs; ri++, r++) {
        want = run_want(s, r);
        int nc = (int)((want + s->chunk - 1) / s->chunk);
        if (k < nc) break;
        k -= nc;
    }
    *done = (uint64_t)k * s->chunk;
    *n = r->len - *done < s->chunk ? (size_t)(r->len - *done) : (size_t)s->chunk;
    *need = want - *done < *n ? (size_t)(want - *done) : *n;
    return r;
}

/* A layer in the host cache loads as one upload of its slot image from
 * pinned memory: no read, no host copy; the device's copy engine alone. */
static st_status hc_upload(st_store *s, layer_t *ly, const slot_t *slot, st_error *err) {
    st_status rc = ST_OK;
    if (ly->hc_pending) { /* last pass's upload of it: long done */
        ly->hc_pending = false;
        if ((rc = s->be->ops->host_wait(s->be, ly->hc, err))) return rc;
    }
    size_t off = (size_t)(slot->base - (uint8_t *)slot->handle);
    rc = s->be->ops->slot_upload_async(s->be, slot->handle, off, ly->hc, (size_t)ly->span, err);
    ly->hc_pending = true; /* even on failure: waited for before reuse */
    if (!rc) atomic_fetch_add_explicit(&s->bytes_uploaded, ly->span, memory_order_relaxed);
    return rc;
}

/* Copies chunk k of layer il from the file into slot sl: read into the slot
 * (host slots) or into one of the reader's buffers and uploaded. */
static st_status run_chunk(st_store *s, reader_t *rd, int il, int sl, int k, st_error *err) {
    layer_t *ly = &s->L[il]; /* the layout is constant; hc_pending is the loader's */
    const slot_t *slot = &s->slots[sl];
    if (ly->hc) return hc_upload(s, ly, slot, err);
    uint64_t done;
    size_t n, need;
    const run_t *r = chunk_at(s, ly, k, &done, &n, &need);
    bool staged = !s->cfg.host_slots;
    int b = 0;
    st_status rc = staged ? reader_buf(s, rd, &b, err) : ST_OK;
    if (rc) return rc;
    uint8_t *dst = staged ? rd->buf[b] : slot->base + r->slot_off + done;
    io_begin(s);
    rc = read_full(s, il, dst, n, r->file_off + done, need, err);
    if (!rc && staged) {
        size_t off = (size_t)(slot->base - (uint8_t *)slot->handle) + r->slot_off + done;
        if (s->async && rd->pinned[b]) {
            rc = s->be->ops->slot_upload_async(s->be, slot->handle, off, dst, need, err);
            rd->pending[b] = true; /* even on failure: the buffer is waited for before reuse */
        } else {
            rc = s->be->ops->slot_upload(s->be, slot->handle, off, dst, need, err);
        }
        if (!rc) atomic_fetch_add_explicit(&s->bytes_uploaded, need, memory_order_relaxed);
    }
    io_end(s);
    if (!rc) atomic_fetch_add_explicit(&s->bytes_read, need, memory_order_relaxed);
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
        /* counted with the load, not the upload: a load cancelled after its
         * upload is no load, so host_cache_loads never exceeds loads */
        if (ly->hc) atomic_fetch_add_explicit(&s->hc_loads, 1, memory_order_relaxed);
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

/* ------------------------------------------------------------ chunks (under mu) */

/* The last chunk of il's load finished: resident, or failed with the first
 * error any of its chunks met. */
static void close_load(st_store *s, int il) {
    layer_t *ly = &s->L[il];
    ly->open = false;
    finish_load_locked(s, il, ly->ck_err.code, &ly->ck_err);
}

/* Layer il (LOADING in its slot) is handed out chunk by chunk from now on;
 * idle readers are told, and an acquirer waiting for it may help. */
static void open_load(st_store *s, int il, bool sync) {
    layer_t *ly = &s->L[il];
    ly->open = true;
    ly->sync = sync;
    ly->ck_next = 0;
    ly->ck_left = ly->n_chunks;
    memset(&ly->ck_err, 0, sizeof ly->ck_err);
    if (ly->ck_left == 0) {
        close_load(s, il);
        return;
    }
    if (s->pool && !s->stopped) st_prefetch_wake(s->pool);
    if (s->waiters) pthread_cond_broadcast(&s->cv);
}

/* No more chunks of il are handed out; those in flight still finish. */
static void abandon_load(layer_t *ly) {
    ly->ck_left -= ly->n_chunks - ly->ck_next;
    ly->ck_next = ly->n_chunks;
}

/* The next chunk of the open load needed soonest (of layer `only` if >= 0). */
static bool take_chunk(st_store *s, int only, int *il, int *k, int *sl) {
    int best = -1, best_d = 0;
    for (int j = 0; j < s->n_slots; j++) {
        int y = s->slots[j].layer;
        if (y < 0 || (only >= 0 && y != only)) continue;
        const layer_t *ly = &s->L[y];
        if (ly->state != LS_LOADING || !ly->open || ly->ck_next >= ly->n_chunks) continue;
        int d = dist_of(s, y);
        if (best < 0 || d < best_d) { best = y; best_d = d; }
    }
    if (best < 0) return false;
    *il = best;
    *k = s->L[best].ck_next++;
    *sl = s->L[best].slot;
    return true;
}

/* A chunk of il finished (e->code: how); the first failure ends the load
 * (the chunks not handed out are dropped), the last chunk completes it. */
static void chunk_done(st_store *s, int il, const st_error *e) {
    layer_t *ly = &s->L[il];
    if (e->code && !ly->ck_err.code) {
        ly->ck_err = *e;
        abandon_load(ly);
    }
    if (--ly->ck_left == 0) close_load(s, il);
}

/* Takes, reads and completes one chunk (of `only` if >= 0) on reader rd;
 * false when there was none. Called with mu held; returns with it held. */
static bool do_chunk(st_store *s, reader_t *rd, int only) {
    int il, k, sl;
    if (!take_chunk(s, only, &il, &k, &sl)) return false;
    pthread_mutex_unlock(&s->mu);
    st_error e = {0};
    st_status rc = run_chunk(s, rd, il, sl, k, &e);
    if (rc && !e.code) e.code = rc;
    pthread_mutex_lock(&s->mu);
    chunk_done(s, il, &e);
    return true;
}

/* ------------------------------------------------------------ pool callbacks */

/* A queued prefetch reached a worker: its chunks go out to every reader. */
static void pf_run(void *ctx, int worker, st_pf_job job) {
    (void)worker;
    st_store *s = ctx;
    pthread_mutex_lock(&s->mu);
    if (s->stopped) finish_load_locked(s, job.layer, ST_ERR_CANCELLED, NULL);
    else open_load(s, job.layer, false);
    pthread_mutex_unlock(&s->mu);
}

/* One chunk of the open load needed soonest; none once shutting down. */
static bool pf_help(void *ctx, int worker) {
    st_store *s = ctx;
    pthread_mutex_lock(&s->mu);
    bool did = !s->stopped && do_chunk(s, &s->rd[worker], -1);
    pthread_mutex_unlock(&s->mu);
    return did;
}

static void pf_cancel(void *ctx, st_pf_job job) {
    st_store *s = ctx;
    pthread_mutex_lock(&s->mu);
    finish_load_locked(s, job.layer, ST_ERR_CANCELLED, NULL);
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------ host cache */

/* The host cache is filled when the store is made: every chunk of every
 * cached layer, read by a few threads into the layer's pinned image (the
 * slot layout, so that a load is one upload of it). */
typedef struct {
    st_store *s;
    int (*jobs)[2];          /* {layer, chunk} */
    int n_jobs;
    atomic_int next;
    atomic_bool failed;
    pthread_mutex_t mu;
    st_error err;            /* the first failure */
} hc_fill_t;

static void *hc_fill_worker(void *a) {
    hc_fill_t *f = a;
    st_store *s = f->s;
    for (;;) {
        int j = atomic_fetch_add(&f->next, 1);
        if (j >= f->n_jobs || atomic_load(&f->failed)) break;
        int il = f->jobs[j][0];
        layer_t *ly = &s->L[il];
        uint64_t done;
        size_t n, need;
        const run_t *r = chunk_at(s, ly, f->jobs[j][1], &done, &n, &need);
        st_error e = {0};
        io_begin(s);
        st_status rc = read_full(s, il, ly->hc + r->slot_off + done, n, r->file_off + done, need, &e);
        io_end(s);
        if (rc) {
            pthread_mutex_lock(&f->mu);
            if (!f->err.code) {
                f->err = e;
                if (!f->err.code) f->err.code = rc;
            }
            pthread_mutex_unlock(&f->mu);
            atomic_store(&f->failed, true);
            break;
        }
        atomic_fetch_add_explicit(&s->bytes_read, need, memory_order_relaxed);
        if (need < n) memset(ly->hc + r->slot_off + done + need, 0, n - need); /* past the end of the file */
    }
    return NULL;
}

/* Keeps as many streamed layers as cfg.host_cache bytes hold in pinned host
 * memory (host_alloc), read from the file now. Needs device slots and a
 * backend that uploads from its own pinned memory asynchronously; without,
 * there is nothing to gain and nothing is cached. */
static st_status hc_init(st_store *s, int n_readers, st_error *err) {
    const st_store_config *c = &s->cfg;
    if (!c->host_cache || c->host_slots || !s->async || !s->be->ops->host_alloc || s->n_pinned >= s->n_layer) return ST_OK;
    uint64_t total = 0;
    int n = 0;
    for (int il = s->n_pinned; il < s->n_layer && total + s->L[il].span <= c->host_cache; il++, n++)
        total += s->L[il].span;
    if (!n) return ST_OK;
    st_mem_avail av;
    st_status rc = st_mem_available(&av, err);
    if (rc) return rc;
    if (av.limited && total > av.bytes) {
        char a[32], b[32];
        return st_error_set(err, ST_ERR_NOMEM,
                            "host cache of %d layers (%s of pinned memory) for %s: only %s is available (%s); "
                            "use a smaller --host-cache",
                            n, st_mem_fmt(total, a, sizeof a), s->path, st_mem_fmt(av.bytes, b, sizeof b), av.source);
    }
    int n_jobs = 0;
    for (int il = s->n_pinned; il < s->n_pinned + n; il++) {
        layer_t *ly = &s->L[il];
        if (!(ly->hc = s->be->ops->host_alloc(s->be, (size_t)ly->span))) {
            char a[32];
            return st_error_set(err, ST_ERR_NOMEM, "host cache: cannot allocate %s of pinned memory for layer %d (%d of %d done)",
                                st_mem_fmt(ly->span, a, sizeof a), il, il - s->n_pinned, n);
        }
        s->n_hc++;
        s->hc_bytes += ly->span;
        n_jobs += ly->n_chunks;
    }
    hc_fill_t f = {.s = s, .n_jobs = n_jobs};
    pthread_mutex_init(&f.mu, NULL);
    f.jobs = malloc((size_t)(n_jobs ? n_jobs : 1) * sizeof *f.jobs);
    if (!f.jobs) {
        pthread_mutex_destroy(&f.mu);
        return st_error_set(err, ST_ERR_NOMEM, "layer store: out of memory");
    }
    for (int il = s->n_pinned, j = 0; il < s->n_pinned + n; il++)
        for (int k = 0; k < s->L[il].n_chunks; k++, j++) f.jobs[j][0] = il, f.jobs[j][1] = k;
    int nt = n_readers < 1 ? 1 : n_readers > n_jobs ? n_jobs : n_readers;
    pthread_t th[64];
    int started = 0;
    if (nt > 64) nt = 64;
    for (int i = 1; i < nt; i++)
        if (!pthread_create(&th[started], NULL, hc_fill_worker, &f)) started++;
    hc_fill_worker(&f); /* this thread reads too */
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    free(f.jobs);
    pthread_mutex_destroy(&f.mu);
    if (f.err.code) {
        *err = f.err;
        return f.err.code;
    }
    for (int il = s->n_pinned; il < s->n_pinned + n; il++) s->L[il].n_chunks = 1; /* a load: one upload */
    return ST_OK;
}

/* ------------------------------------------------------------ create / free */

static void *aligned_buf(size_t n) {
    void *p = NULL;
    return posix_memalign(&p, ALIGN, n) == 0 ? p : NULL;
}

/* A read buffer for device slots: the backend's pinned memory when it
 * offers some (one host copy fewer per byte), else ours. */
static void *staging_buf(st_store *s, bool *pinned) {
    *pinned = false;
    if (s->be->ops->host_alloc) {
        void *p = s->be->ops->host_alloc(s->be, (size_t)s->chunk);
        if (p) {
            *pinned = true;
            return p;
        }
    }
    return aligned_buf((size_t)s->chunk);
}

static void staging_free(st_store *s, void *p) {
    if (p && s->be->ops->host_free && s->be->ops->host_free(s->be, p)) return;
    free(p);
}

/* A reader's buffers: the second only where uploads are asynchronous (with
 * slot_upload the first is free again on return). */
static bool reader_init(st_store *s, reader_t *rd) {
    memset(rd, 0, sizeof *rd);
    if (!(rd->buf[0] = staging_buf(s, &rd->pinned[0]))) return false;
    if (s->async && rd->pinned[0] && !(rd->buf[1] = staging_buf(s, &rd->pinned[1]))) return false;
    return true;
}

/* Waits for the uploads still reading the reader's buffers (before the
 * slots or the buffers are freed). */
static void reader_drain(st_store *s, reader_t *rd) {
    for (int b = 0; b < 2; b++)
        if (rd->pending[b]) {
            rd->pending[b] = false;
            st_error e = {0};
            s->be->ops->host_wait(s->be, rd->buf[b], &e); /* a failure: the device is gone, nothing to wait for */
        }
}

static void reader_free(st_store *s, reader_t *rd) {
    for (int b = 0; b < 2; b++) staging_free(s, rd->buf[b]);
    memset(rd, 0, sizeof *rd);
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
        if (c->mem_budget < o->fixed_bytes + o->slot_bytes) {
            char b[32], f[32], sl[32], t[32]; /* "512 KiB", not "0.0 MiB", for a small budget */
            return st_error_set(err, ST_ERR_ARG,
                                "memory budget of %s is too small for %s: the output tensors take %s and one layer slot "
                                "%s (at least %s)",
                                st_mem_fmt(c->mem_budget, b, sizeof b), m->path, st_mem_fmt(o->fixed_bytes, f, sizeof f),
                                st_mem_fmt(o->slot_bytes, sl, sizeof sl),
                                st_mem_fmt(o->fixed_bytes + o->slot_bytes, t, sizeof t));
        }
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
    s->chunk = c->chunk_bytes ? align_up(c->chunk_bytes) : c->host_slots ? CHUNK : CHUNK_DEV;
    if (s->chunk > CHUNK_MAX) s->chunk = CHUNK_MAX;
    for (int il = 0; il < nl; il++) s->L[il].n_chunks = layer_chunks(s, &s->L[il]);
    s->async = s->be->ops->slot_upload_async && s->be->ops->host_wait;
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
    if (!c->host_slots && !reader_init(s, &s->sync_rd))
        return st_error_set(err, ST_ERR_NOMEM, "layer store: out of memory");

    /* prefetch */
    s->dist = s->dist_limit < 2 ? s->dist_limit : 2;
    s->adaptive = c->prefetch == ST_PREFETCH_AUTO;
    if (c->prefetch > 0) s->dist = c->prefetch < s->dist_limit ? c->prefetch : s->dist_limit;
    if (c->prefetch != ST_PREFETCH_OFF && s->dist_limit >= 1 && st_prefetch_available()) {
        /* Readers: 2 beside CPU compute. For device slots the GPU computes
         * meanwhile and the host's reads set the pace; each layer's chunks
         * are shared by every reader, so they scale with the threads, not
         * with the layers in flight: one per CPU up to 12 (a pread into
         * pinned memory runs ~5 GB/s per thread, PCIe ~50 GB/s). */
        int cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
        int k = c->prefetch_threads > 0 ? c->prefetch_threads
              : !c->host_slots       ? (cpus < 2 ? 2 : cpus > 12 ? 12 : cpus)
                                     : (s->dist_limit < 2 ? 1 : 2);
        int q = c->queue_cap > 0 ? c->queue_cap : (2 * s->dist_limit > 4 ? 2 * s->dist_limit : 4);
        s->rd = calloc((size_t)k, sizeof *s->rd);
        if (!s->rd) return st_error_set(err, ST_ERR_NOMEM, "layer store: out of memory");
        s->n_workers = k;
        if (!c->host_slots)
            for (int i = 0; i < k; i++)
                if (!reader_init(s, &s->rd[i])) return st_error_set(err, ST_ERR_NOMEM, "layer store: out of memory");
        st_pf_callbacks cb = {pf_run, pf_cancel, pf_help};
        st_status rc = st_prefetch_new(k, q, &cb, s, &s->pool, err);
        if (rc) return rc;
    } else {
        s->dist = 0;
        s->stopped = true;
    }
    atomic_store(&s->a_dist, s->dist);
    atomic_store(&s->a_dist_max, s->dist);
    int cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    return hc_init(s, s->n_workers ? s->n_workers : cpus < 1 ? 1 : cpus > 12 ? 12 : cpus, err);
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
    /* Prefetches under way hand out no more chunks: the ones in flight
     * finish, then the layer is cancelled (or resident, if every chunk had
     * been handed out). A load for an acquire is left to finish. */
    for (int k = 0; k < s->n_slots; k++) {
        int y = s->slots[k].layer;
        if (y < 0) continue;
        layer_t *ly = &s->L[y];
        if (ly->state != LS_LOADING || !ly->open || ly->sync || ly->ck_next >= ly->n_chunks) continue;
        if (!ly->ck_err.code) st_error_set(&ly->ck_err, ST_ERR_CANCELLED, "layer %d: load cancelled (shutdown)", y);
        abandon_load(ly);
        if (ly->ck_left == 0) close_load(s, y);
    }
    pthread_mutex_unlock(&s->mu);
    st_prefetch_shutdown(s->pool); /* cancels the queue, waits for the chunks in flight, joins */
}

void st_store_free(st_store *s) {
    if (!s) return;
    if (s->budgeted) {
        st_store_shutdown(s);
        st_prefetch_free(s->pool);
        /* no upload may still read a buffer, or write a slot, as they go */
        if (s->rd)
            for (int i = 0; i < s->n_workers; i++) reader_drain(s, &s->rd[i]);
        reader_drain(s, &s->sync_rd);
        if (s->L)
            for (int il = 0; il < s->n_layer; il++)
                if (s->L[il].hc_pending) {
                    st_error e = {0};
                    s->be->ops->host_wait(s->be, s->L[il].hc, &e); /* a failure: the device is gone */
                    s->L[il].hc_pending = false;
                }
        if (s->slots)
            for (int k = 0; k < s->n_slots; k++)
                if (s->slots[k].handle) s->be->ops->slot_free(s->be, s->slots[k].handle);
        if (s->dfd >= 0) close(s->dfd);
        if (s->rd)
            for (int i = 0; i < s->n_workers; i++) reader_free(s, &s->rd[i]);
        free(s->rd);
        reader_free(s, &s->sync_rd);
        if (s->L)
            for (int il = 0; il < s->n_layer; il++)
                if (s->L[il].hc) staging_free(s, s->L[il].hc);
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
            /* help with its chunks (a load of ours, or a prefetch under way);
             * when all are handed out, wait for the last to land */
            if (!do_chunk(s, &s->sync_rd, il)) wait_cv(s);
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
        open_load(s, il, true); /* the readers help: the loop above takes its chunks too */
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
            if (s->L[j].state == LS_ABSENT && !s->L[j].hc) {
                if (j != s->advised) {
                    s->advised = j;
                    adv_off = s->L[j].runs[0].file_off;
                    const run_t *last = &s->L[j].runs[s->L[j].n_runs - 1];
                    adv_len = last->file_off + last->len - adv_off;
                }
                break;
            }
            if (!s->L[j].pinned && !s->L[j].hc) break;
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
    /* loads and host cache loads are counted together under the lock: read
     * them together, so that with every layer cached they are equal even
     * while a prefetch finishes */
    pthread_mutex_lock(&s->mu);
    o->loads = atomic_load_explicit(&s->loads, memory_order_relaxed);
    o->host_cache_loads = atomic_load_explicit(&s->hc_loads, memory_order_relaxed);
    pthread_mutex_unlock(&s->mu);
    o->bytes_read = atomic_load_explicit(&s->bytes_read, memory_order_relaxed);
    /* with readers overlapping, the busy interval may have been open since
     * long ago (several readers keep it open): count it up to now */
    uint64_t open = atomic_load_explicit(&s->io_open_since, memory_order_relaxed);
    o->read_busy_ns = atomic_load_explicit(&s->read_busy_ns, memory_order_relaxed);
    if (open) {
        uint64_t now = st_now_ns();
        if (now > open) o->read_busy_ns += now - open;
    }
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
    o->host_cache_layers = s->n_hc;
    o->host_cache_bytes = s->hc_bytes;
    o->bytes_uploaded = atomic_load_explicit(&s->bytes_uploaded, memory_order_relaxed);
    for (int i = 0; i < nl && i < ST_STATS_MAX_LAYERS; i++)
        o->layer_state[i] = atomic_load_explicit(&s->state_pub[i], memory_order_relaxed);
    for (int i = 0; i < ST_STATS_MAX_LAYERS; i++)
        o->slot_layer[i] = i < s->n_slots ? atomic_load_explicit(&s->slot_pub[i], memory_order_relaxed) : -1;
}
