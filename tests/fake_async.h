/* fake_async.h — pinned read buffers and asynchronous uploads for the
 * store's test backends (test_store.c, tsan_store.c), with the Vulkan
 * backend's contract: a buffer from host_alloc counts as being read by the
 * device from its slot_upload_async until host_wait, and may not be read
 * into, freed or uploaded from again meanwhile. The copy itself is made at
 * once by the includer's tb_upload.
 *
 * The includer defines tb_upload (a backend's slot_upload) and
 * FA_CHECK(cond, msg) (its test failure), then includes this file. */
#ifndef ST_TESTS_FAKE_ASYNC_H
#define ST_TESTS_FAKE_ASYNC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#define AB_MAX 256
static struct {
    pthread_mutex_t mu;
    void *buf[AB_MAX];
    size_t size[AB_MAX];
    atomic_int pending[AB_MAX];
    int n;
    atomic_int async_uploads, waits, overwrites;
} g_ab = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* the buffer holding p, or -1 */
static inline int ab_find(const void *p) {
    pthread_mutex_lock(&g_ab.mu);
    int r = -1;
    for (int i = 0; i < g_ab.n && r < 0; i++)
        if ((const uint8_t *)p >= (uint8_t *)g_ab.buf[i] && (const uint8_t *)p < (uint8_t *)g_ab.buf[i] + g_ab.size[i]) r = i;
    pthread_mutex_unlock(&g_ab.mu);
    return r;
}

/* whether p lies in a buffer an upload may still be reading */
static inline bool ab_busy(const void *p) {
    int i = ab_find(p);
    return i >= 0 && atomic_load(&g_ab.pending[i]);
}

static inline void *ab_host_alloc(st_backend *b, size_t n) {
    (void)b;
    pthread_mutex_lock(&g_ab.mu);
    void *p = g_ab.n < AB_MAX ? malloc(n) : NULL;
    if (p) {
        g_ab.buf[g_ab.n] = p;
        g_ab.size[g_ab.n] = n;
        atomic_store(&g_ab.pending[g_ab.n], 0);
        g_ab.n++;
    }
    pthread_mutex_unlock(&g_ab.mu);
    return p;
}

static inline bool ab_host_free(st_backend *b, void *p) {
    (void)b;
    pthread_mutex_lock(&g_ab.mu);
    bool mine = false;
    for (int i = 0; i < g_ab.n && !mine; i++)
        if (g_ab.buf[i] == p) {
            FA_CHECK(atomic_load(&g_ab.pending[i]) == 0, "a buffer freed while an upload may read it");
            free(p);
            g_ab.n--;
            g_ab.buf[i] = g_ab.buf[g_ab.n];
            g_ab.size[i] = g_ab.size[g_ab.n];
            atomic_store(&g_ab.pending[i], atomic_load(&g_ab.pending[g_ab.n]));
            mine = true;
        }
    pthread_mutex_unlock(&g_ab.mu);
    return mine;
}

static inline st_status ab_upload_async(st_backend *b, void *slot, size_t off, const void *src, size_t n, st_error *err) {
    int i = ab_find(src);
    FA_CHECK(i >= 0, "an async upload from a buffer not from host_alloc");
    FA_CHECK(atomic_exchange(&g_ab.pending[i], 1) == 0, "an async upload from a buffer still being read");
    atomic_fetch_add(&g_ab.async_uploads, 1);
    return tb_upload(b, slot, off, src, n, err);
}

static inline st_status ab_host_wait(st_backend *b, void *buf, st_error *err) {
    (void)b;
    (void)err;
    int i = ab_find(buf);
    FA_CHECK(i >= 0, "host_wait on a buffer not from host_alloc");
    atomic_store(&g_ab.pending[i], 0);
    atomic_fetch_add(&g_ab.waits, 1);
    return ST_OK;
}

#endif
