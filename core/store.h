/* store.h — the layer store: which transformer layers are resident, and
 * where. The forward loop asks for each layer with acquire() and gives it
 * back with release(); hint() announces the layers needed next.
 *
 * This first version keeps every layer resident in place in the mmap (no
 * copies, no threads); it is the seam where budgeted residency and the
 * prefetch pool plug in, with the same calls. */
#ifndef ST_STORE_H
#define ST_STORE_H

#include "backend.h"
#include "error.h"
#include "model.h"
#include <stdint.h>

typedef struct st_store st_store;

typedef struct st_store_stats {
    uint64_t acquires;       /* layer acquisitions */
    uint64_t ready;          /* acquisitions that did not wait */
    uint64_t sync_loads;     /* acquisitions that loaded synchronously */
    uint64_t stall_ns;       /* time spent waiting in acquire */
    uint64_t bytes_read;     /* bytes read from the file into slots */
    uint64_t resident_bytes; /* layer bytes resident now */
} st_store_stats;

st_status st_store_new(const st_model *m, st_backend *be, st_store **out, st_error *err);
void st_store_free(st_store *s);
/* Returns layer il, resident; NULL with err set if it could not be loaded. */
const st_layer *st_store_acquire(st_store *s, int il, st_error *err);
void st_store_release(st_store *s, int il);
void st_store_hint(st_store *s, int il, int n);
void st_store_get_stats(const st_store *s, st_store_stats *out);

#endif
