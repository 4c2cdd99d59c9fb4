#include "store.h"

#include <stdatomic.h>
#include <stdlib.h>

struct st_store {
    const st_model *m;
    st_backend *be;
    _Atomic uint64_t acquires;
};

st_status st_store_new(const st_model *m, st_backend *be, st_store **out, st_error *err) {
    st_store *s = calloc(1, sizeof *s);
    if (!s) return st_error_set(err, ST_ERR_NOMEM, "layer store: out of memory");
    s->m = m;
    s->be = be;
    *out = s;
    return ST_OK;
}

void st_store_free(st_store *s) { free(s); }

const st_layer *st_store_acquire(st_store *s, int il, st_error *err) {
    if (il < 0 || il >= s->m->hp.n_layer) {
        st_error_set(err, ST_ERR_ARG, "layer store: layer %d out of range (0..%d)", il, s->m->hp.n_layer - 1);
        return NULL;
    }
    atomic_fetch_add_explicit(&s->acquires, 1, memory_order_relaxed);
    return &s->m->layers[il];
}

void st_store_release(st_store *s, int il) {
    (void)s;
    (void)il;
}

void st_store_hint(st_store *s, int il, int n) {
    (void)s;
    (void)il;
    (void)n;
}

void st_store_get_stats(const st_store *s, st_store_stats *o) {
    uint64_t a = atomic_load_explicit(&((st_store *)s)->acquires, memory_order_relaxed);
    o->acquires = a;
    o->ready = a;
    o->sync_loads = 0;
    o->stall_ns = 0;
    o->bytes_read = 0;
    o->resident_bytes = s->m->layer_bytes;
}
