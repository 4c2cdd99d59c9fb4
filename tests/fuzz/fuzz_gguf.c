/* fuzz_gguf.c — libFuzzer target: the GGUF reader, the tokenizer loader, the
 * chat-template lookup and the llama loader on arbitrary bytes.
 *
 * The input is written to a memfd and opened through /proc/self/fd/N, the
 * same code path as a file on disk (open, fstat, mmap). When st_gguf_open
 * accepts it, every key, value, array element and tensor is walked and the
 * reader's guarantees are checked (keys and tensors found by name are the
 * same entries, tensor data lies inside the file). Then the tokenizer is
 * built from the metadata and used, the chat template and BOS/EOS texts are
 * looked up, and st_model_open validates the file as a model; a model that
 * opens gets a session and evaluates one token. Nothing may crash, leak,
 * hit undefined behaviour, or fail with anything but a FORMAT/UNSUPPORTED
 * (or, for the tokenizer/model, ARG/NOMEM) error with a message. */
#define _GNU_SOURCE
#include "chat.h"
#include "fuzz_util.h"
#include "gguf.h"
#include "strata.h"
#include "tokenizer.h"

#include <stdint.h>
#include <sys/mman.h>

static int g_fd = -1;
static char g_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_fd = memfd_create("fuzz.gguf", MFD_CLOEXEC);
    if (g_fd < 0) { perror("memfd_create"); abort(); }
    snprintf(g_path, sizeof g_path, "/proc/self/fd/%d", g_fd);
    return 0;
}

static volatile uint8_t g_sink;
static void touch(const void *p, uint64_t n) { /* ASan checks every byte we claim to own */
    const uint8_t *b = p;
    uint8_t x = 0;
    for (uint64_t i = 0; i < n; i++) x ^= b[i];
    g_sink = x;
}

static void check_error(st_status st, const st_error *e, const char *what) {
    FZ_CHECK(st != ST_OK, "%s", what);
    FZ_CHECK(e->code == st, "%s: err.code %d != status %d", what, e->code, st);
    FZ_CHECK(e->msg[0] != 0, "%s: empty error message", what);
    FZ_CHECK(memchr(e->msg, 0, sizeof e->msg) != NULL, "%s: message not terminated", what);
}

static void walk_metadata(const st_gguf *g) {
    uint64_t fsize = st_gguf_file_size(g);
    const uint8_t *base = st_gguf_base(g);
    char buf[512], key[300];
    int64_t n_kv = st_gguf_n_kv(g);
    for (int64_t i = 0; i < n_kv; i++) {
        st_gguf_str k = st_gguf_key(g, i);
        FZ_CHECK(k.ptr && (const uint8_t *)k.ptr >= base && (uint64_t)((const uint8_t *)k.ptr - base) + k.len <= fsize,
                 "key %lld outside the file", (long long)i);
        st_gguf_vtype t = st_gguf_kv_type(g, i);
        FZ_CHECK(t >= 0 && t < ST_GGUF_VTYPE_COUNT, "kv %lld: type %d", (long long)i, (int)t);
        FZ_CHECK(st_gguf_vtype_name(t) != NULL, "type name");
        st_gguf_format_value(g, i, buf, sizeof buf, (int)(i % 5) - 1);
        FZ_CHECK(memchr(buf, 0, sizeof buf), "format_value not terminated");
        if (k.len < sizeof key && !memchr(k.ptr, 0, k.len)) {
            memcpy(key, k.ptr, k.len);
            key[k.len] = 0;
            FZ_CHECK(st_gguf_find_key(g, key) == i, "find_key('%s') != %lld", key, (long long)i);
            uint32_t u32;
            int64_t i64;
            float f;
            bool b;
            st_gguf_str s;
            (void)st_gguf_get_u32(g, key, &u32);
            (void)st_gguf_get_i64(g, key, &i64);
            (void)st_gguf_get_f32(g, key, &f);
            (void)st_gguf_get_bool(g, key, &b);
            if (st_gguf_get_str(g, key, &s)) touch(s.ptr, s.len);
        }
        st_gguf_vtype et;
        uint64_t n;
        if (!st_gguf_get_arr(g, i, &et, &n)) continue;
        if (et == ST_GGUF_STRING) {
            uint64_t lim = n < 4096 ? n : 4096;
            for (uint64_t j = 0; j < lim; j++) {
                st_gguf_str s = st_gguf_arr_str(g, i, j);
                touch(s.ptr, s.len);
            }
            if (n) touch(st_gguf_arr_str(g, i, n - 1).ptr, st_gguf_arr_str(g, i, n - 1).len);
        } else if (et == ST_GGUF_ARRAY) {
            uint64_t lim = n < 256 ? n : 256;
            for (uint64_t j = 0; j < lim; j++) {
                st_gguf_vtype et2;
                uint64_t n2;
                const void *d;
                FZ_CHECK(st_gguf_arr_arr(g, i, j, &et2, &n2, &d), "arr_arr %llu of %llu", (unsigned long long)j,
                         (unsigned long long)n);
            }
            FZ_CHECK(!st_gguf_arr_arr(g, i, n, NULL, NULL, NULL), "arr_arr past the end");
        } else {
            const void *d = st_gguf_arr_data(g, i);
            static const unsigned sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
            if (n) FZ_CHECK(d != NULL, "array data");
            if (d) touch(d, n * sz[et]);
        }
    }
}

static void walk_tensors(const st_gguf *g) {
    uint64_t fsize = st_gguf_file_size(g), data_off = st_gguf_data_offset(g), align = st_gguf_alignment(g);
    const uint8_t *base = st_gguf_base(g);
    int64_t nt = st_gguf_n_tensors(g);
    /* without tensors the padding before the (empty) data section may be
     * missing, as in llama.cpp's vocab-only files: the offset may then lie
     * past the end of the file */
    FZ_CHECK(align > 0 && (data_off <= fsize || nt == 0) && data_off % align == 0,
             "data offset %llu alignment %llu file size %llu (%lld tensors)", (unsigned long long)data_off,
             (unsigned long long)align, (unsigned long long)fsize, (long long)nt);
    for (int64_t i = 0; i < nt; i++) {
        const st_gguf_tensor *t = st_gguf_tensor_at(g, i);
        FZ_CHECK(t && t->name, "tensor %lld", (long long)i);
        FZ_CHECK(t->n_dims >= 1 && t->n_dims <= ST_GGUF_MAX_DIMS, "n_dims %d", t->n_dims);
        FZ_CHECK(t->offset >= data_off && t->offset <= fsize && t->size <= fsize - t->offset,
                 "tensor '%s' [%llu, +%llu) outside the data section", t->name, (unsigned long long)t->offset,
                 (unsigned long long)t->size);
        FZ_CHECK((t->offset - data_off) % align == 0, "tensor '%s' not aligned", t->name);
        FZ_CHECK(t->data == base + t->offset, "tensor '%s' data pointer", t->name);
        if (t->size) touch(t->data, t->size < 4096 ? t->size : 4096);
        const st_gguf_tensor *f = st_gguf_find_tensor(g, t->name);
        FZ_CHECK(f == t, "find_tensor('%s')", t->name);
    }
}

static void use_tokenizer(const st_gguf *g) {
    st_tokenizer *t = NULL;
    st_error e = {0};
    st_status st = st_tok_load(g, &t, &e);
    if (st) {
        check_error(st, &e, "st_tok_load");
        FZ_CHECK(t == NULL, "tokenizer set on failure");
        return;
    }
    int32_t nv = st_tok_n_vocab(t);
    FZ_CHECK(nv > 0, "n_vocab %d", nv);
    static const char text[] = "Hello world! <s> caf\xC3\xA9 \xF0\x9F\xA6\x99 \xFF\x80 12345\n\t  x";
    int32_t ids[256];
    for (int ps = 0; ps < 2; ps++) {
        int64_t n = st_tok_encode(t, text, sizeof text - 1, true, ps, ids, 256);
        if (n < 0) continue; /* a vocab that cannot encode this text */
        int64_t m = n < 256 ? n : 256;
        for (int64_t i = 0; i < m; i++) FZ_CHECK(ids[i] >= 0 && ids[i] < nv, "id %d of %d", ids[i], nv);
        char out[1024];
        int64_t dl = st_tok_decode(t, ids, m, out, sizeof out, true, ps);
        FZ_CHECK(dl >= 0, "decode");
        (void)st_tok_detokenize(t, ids, m, out, sizeof out, true, ps);
    }
    int32_t lim = nv < 512 ? nv : 512;
    for (int32_t id = 0; id < lim; id++) {
        char piece[64];
        int k = st_tok_token_to_piece(t, id, piece, sizeof piece, id & 1);
        FZ_CHECK(k >= 0, "token_to_piece(%d)", id);
        const char *p = st_tok_piece(t, id);
        if (p) touch(p, strlen(p));
        (void)st_tok_type(t, id);
        (void)st_tok_is_eog(t, id);
    }
    FZ_CHECK(st_tok_token_to_piece(t, nv, NULL, 0, true) <= 0, "token_to_piece past the vocab");
    st_tok_free(t);
}

static void use_chat(const st_gguf *g) {
    char *tmpl = st_chat_gguf_template(g);
    st_chat_family f = st_chat_detect(tmpl);
    char *bos = st_chat_gguf_token_text(g, "tokenizer.ggml.bos_token_id");
    char *eos = st_chat_gguf_token_text(g, "tokenizer.ggml.eos_token_id");
    st_chat_params p;
    st_chat_params_default(&p);
    p.add_generation_prompt = true;
    p.bos_token = bos;
    p.eos_token = eos;
    p.year = 2024, p.month = 1, p.day = 2;
    st_chat_msg msgs[] = {{"system", "be brief"}, {"user", "hi"}};
    char *out = NULL;
    size_t len = 0;
    st_error e = {0};
    if (st_chat_render(f, msgs, 2, &p, &out, &len, &e) == ST_OK) FZ_CHECK(strlen(out) == len, "render length");
    free(out);
    free(tmpl);
    free(bos);
    free(eos);
}

static void use_model(void) {
    st_model_params mp;
    st_model_params_default(&mp);
    mp.n_threads = 1;
    st_model *m = (st_model *)0x1;
    st_error e = {0};
    st_status st = st_model_open(g_path, &mp, &m, &e);
    if (st) {
        check_error(st, &e, "st_model_open");
        FZ_CHECK(m == NULL, "model set on failure");
        FZ_CHECK(st == ST_ERR_FORMAT || st == ST_ERR_UNSUPPORTED || st == ST_ERR_ARG,
                 "st_model_open: unexpected status %s: %s", st_status_str(st), e.msg);
        return;
    }
    st_model_info info;
    st_model_get_info(m, &info);
    st_chat_prompt cp;
    if (st_chat_model_prompt(m, NULL, "sys", "hello", &cp, &e) == ST_OK) {
        int32_t ids[64];
        (void)st_tok_encode(st_model_tokenizer(m), cp.text, cp.len, cp.add_special, true, ids, 64);
        st_chat_prompt_free(&cp);
    }
    /* one token through the whole forward pass (the file is small: libFuzzer's max_len) */
    st_session_params sp;
    st_session_params_default(&sp);
    sp.n_ctx = 4;
    st_session *s = NULL;
    if (st_session_new(m, &sp, &s, &e) == ST_OK) {
        int32_t tok = st_tok_bos(st_model_tokenizer(m));
        if (tok < 0 || tok >= info.n_vocab) tok = 0;
        if (st_session_eval(s, &tok, 1, false, &e) == ST_OK) touch(st_session_logits(s, 0), (uint64_t)info.n_vocab * 4);
        st_session_free(s);
    }
    st_model_close(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (ftruncate(g_fd, 0) != 0) abort();
    if (size && pwrite(g_fd, data, size, 0) != (ssize_t)size) abort();
    st_gguf *g = (st_gguf *)0x1;
    st_error e = {0};
    st_status st = st_gguf_open(g_path, &g, &e);
    if (st) {
        check_error(st, &e, "st_gguf_open");
        FZ_CHECK(g == NULL, "st_gguf set on failure");
        FZ_CHECK(st == ST_ERR_FORMAT || st == ST_ERR_UNSUPPORTED, "st_gguf_open: unexpected status %s: %s",
                 st_status_str(st), e.msg);
        return 0;
    }
    FZ_CHECK(st_gguf_file_size(g) == size, "file size %llu != %zu", (unsigned long long)st_gguf_file_size(g), size);
    walk_metadata(g);
    walk_tensors(g);
    use_tokenizer(g);
    use_chat(g);
    st_gguf_close(g);
    use_model();
    return 0;
}
