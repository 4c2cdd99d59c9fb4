/* gguf.h — reading GGUF v2/v3 files: validated metadata and tensor table over
 * an mmap of the file.
 *
 * Everything read from the file is checked against the file size with
 * overflow-safe 64-bit arithmetic before it is used. After st_gguf_open
 * succeeds, every key, value, string and tensor returned here lies inside the
 * file and every tensor's data lies inside the data section, aligned to
 * general.alignment. */
#ifndef ST_GGUF_H
#define ST_GGUF_H

#include "error.h"
#include "quant.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    ST_GGUF_UINT8 = 0,
    ST_GGUF_INT8 = 1,
    ST_GGUF_UINT16 = 2,
    ST_GGUF_INT16 = 3,
    ST_GGUF_UINT32 = 4,
    ST_GGUF_INT32 = 5,
    ST_GGUF_FLOAT32 = 6,
    ST_GGUF_BOOL = 7,
    ST_GGUF_STRING = 8,
    ST_GGUF_ARRAY = 9,
    ST_GGUF_UINT64 = 10,
    ST_GGUF_INT64 = 11,
    ST_GGUF_FLOAT64 = 12,
    ST_GGUF_VTYPE_COUNT
} st_gguf_vtype;

#define ST_GGUF_MAX_DIMS 4
#define ST_GGUF_DEFAULT_ALIGNMENT 32

typedef struct st_gguf st_gguf;

/* A string inside the mapped file: not NUL-terminated. */
typedef struct { const char *ptr; uint64_t len; } st_gguf_str;

typedef struct st_gguf_tensor {
    const char *name;         /* NUL-terminated copy owned by the st_gguf */
    st_type type;
    int n_dims;
    int64_t ne[ST_GGUF_MAX_DIMS]; /* ggml order: ne[0] is the row length; unused dims are 1 */
    uint64_t offset;          /* absolute byte offset of the data in the file */
    uint64_t size;            /* bytes of data */
    const void *data;         /* pointer into the mmap */
} st_gguf_tensor;

/* Opens, maps and validates `path`. On failure *out is NULL and err says
 * which field at which byte offset was wrong and what was expected. */
st_status st_gguf_open(const char *path, st_gguf **out, st_error *err);
void st_gguf_close(st_gguf *g);

const char *st_gguf_path(const st_gguf *g);
uint32_t st_gguf_version(const st_gguf *g);
uint64_t st_gguf_file_size(const st_gguf *g);
uint64_t st_gguf_data_offset(const st_gguf *g);  /* start of the tensor data section */
uint64_t st_gguf_alignment(const st_gguf *g);
const void *st_gguf_base(const st_gguf *g);      /* the mmap, file offset 0 */
int st_gguf_fd(const st_gguf *g);                /* for pread by the layer store */
/* Whether the open file is still the one that was mapped: ST_ERR_IO naming
 * the file if it shrank (touching a mapped page past the new end of file
 * would raise SIGBUS) or its size or modification time changed (written in
 * place). A file replaced by rename is not a change: the descriptor and the
 * mapping keep the old inode. One fstat; the engine calls it before each
 * forward pass. */
st_status st_gguf_check_file(const st_gguf *g, st_error *err);

/* ---- metadata ---- */
int64_t st_gguf_n_kv(const st_gguf *g);
int64_t st_gguf_find_key(const st_gguf *g, const char *key);  /* -1 if absent */
st_gguf_str st_gguf_key(const st_gguf *g, int64_t i);
st_gguf_vtype st_gguf_kv_type(const st_gguf *g, int64_t i);

/* Scalar getters by key. They return false when the key is absent or its
 * value cannot be represented in the requested type (integer getters accept
 * any integer type whose value fits; get_f32 accepts FLOAT32/FLOAT64 and
 * integers). */
bool st_gguf_get_u32(const st_gguf *g, const char *key, uint32_t *out);
bool st_gguf_get_i64(const st_gguf *g, const char *key, int64_t *out);
bool st_gguf_get_f32(const st_gguf *g, const char *key, float *out);
bool st_gguf_get_bool(const st_gguf *g, const char *key, bool *out);
bool st_gguf_get_str(const st_gguf *g, const char *key, st_gguf_str *out);

/* Arrays. For an array value at kv index i: element type and count. For
 * arrays of plain numbers/bools, st_gguf_arr_data points at the packed
 * little-endian elements in the file. For arrays of strings, use
 * st_gguf_arr_str (O(1): the offsets are indexed at open time). Nested arrays
 * (arrays of arrays) are validated and can be walked with st_gguf_arr_arr. */
bool st_gguf_get_arr(const st_gguf *g, int64_t i, st_gguf_vtype *elem_type, uint64_t *n);
const void *st_gguf_arr_data(const st_gguf *g, int64_t i);
st_gguf_str st_gguf_arr_str(const st_gguf *g, int64_t i, uint64_t j);
/* For an array of arrays at kv i: element j's element type, count and a
 * pointer to its raw elements in the file (for strings: the first u64 length
 * prefix; for arrays: the first nested array header). O(1). False when kv i is
 * not an array of arrays or j is out of range.
 * Note: pointers into the map (arr_data, arr_arr data) are NOT aligned for
 * their element type; read elements with memcpy. */
bool st_gguf_arr_arr(const st_gguf *g, int64_t i, uint64_t j, st_gguf_vtype *elem_type, uint64_t *n,
                     const void **data);

/* Formats the value of kv i as text for display (arrays abbreviated after
 * max_items elements). Returns buf. */
char *st_gguf_format_value(const st_gguf *g, int64_t i, char *buf, size_t cap, int max_items);

/* ---- tensors ---- */
int64_t st_gguf_n_tensors(const st_gguf *g);
const st_gguf_tensor *st_gguf_tensor_at(const st_gguf *g, int64_t i);
const st_gguf_tensor *st_gguf_find_tensor(const st_gguf *g, const char *name); /* NULL if absent */

const char *st_gguf_vtype_name(st_gguf_vtype t);

/* ---- writing (benchmark-model generator, test fixtures) ----
 * A streaming writer: add all key/values and tensor descriptions, then write
 * each tensor's data in the order the tensors were added. */
typedef struct st_gguf_writer st_gguf_writer;
st_status st_gguf_writer_open(const char *path, st_gguf_writer **out, st_error *err);
void st_gguf_writer_set_alignment(st_gguf_writer *w, uint32_t alignment);
void st_gguf_writer_kv_u32(st_gguf_writer *w, const char *key, uint32_t v);
void st_gguf_writer_kv_i32(st_gguf_writer *w, const char *key, int32_t v);
void st_gguf_writer_kv_f32(st_gguf_writer *w, const char *key, float v);
void st_gguf_writer_kv_bool(st_gguf_writer *w, const char *key, bool v);
void st_gguf_writer_kv_str(st_gguf_writer *w, const char *key, const char *v);
/* array of plain values (elem_type not STRING/ARRAY), n packed elements */
void st_gguf_writer_kv_arr(st_gguf_writer *w, const char *key, st_gguf_vtype elem_type, const void *data, uint64_t n);
/* array of strings */
void st_gguf_writer_kv_arr_str(st_gguf_writer *w, const char *key, const char *const *strs, uint64_t n);
/* copies key i (any type, including nested arrays) from an open file */
void st_gguf_writer_kv_copy(st_gguf_writer *w, const st_gguf *src, int64_t i);
void st_gguf_writer_add_tensor(st_gguf_writer *w, const char *name, st_type type, int n_dims, const int64_t *ne);
/* Writes the header, kv section and tensor table (call once, after all adds). */
st_status st_gguf_writer_write_header(st_gguf_writer *w, st_error *err);
/* Appends data for the next tensor in order; `size` must equal its size. Pads to the alignment. */
st_status st_gguf_writer_write_tensor_data(st_gguf_writer *w, const void *data, uint64_t size, st_error *err);
st_status st_gguf_writer_close(st_gguf_writer *w, st_error *err);  /* frees w in every case */

#endif
