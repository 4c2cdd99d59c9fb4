/* fuzz_chat.c — libFuzzer target: chat-template detection and rendering on
 * arbitrary template text and conversations.
 *
 * Input layout: byte 0 picks the renderer (0..ST_CHAT_COUNT-1: that family;
 * anything else: the family st_chat_detect finds in the template text, or
 * ST_CHAT_UNKNOWN); byte 1 holds flags (bit 0 add_generation_prompt, bit 1
 * no_fold, bit 2 no bos_token, bit 3 no eos_token, bit 4 a date from bytes
 * 2-4, which may be invalid); the rest is NUL-separated: the template text,
 * then role, content, role, content, ... (at most 64 messages; a message
 * without content gets an empty one).
 *
 * Invariants: no crash; detect is deterministic and names a family; the
 * render either succeeds with a NUL-terminated text whose length is *len and
 * is bounded by the input (each content byte at most 6 output bytes, the
 * \u00XX escape of JSON, plus a fixed amount per message and per render), or
 * fails with ST_ERR_ARG and a message. */
#include "chat.h"
#include "fuzz_util.h"

#include <stdint.h>

#define MAX_MSGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 5) return 0;
    uint8_t sel = data[0], flags = data[1];
    /* a NUL-terminated copy of the rest, so that every part is a C string */
    size_t n = size - 5;
    char *buf = malloc(n + 1);
    memcpy(buf, data + 5, n);
    buf[n] = 0;

    const char *parts[1 + 2 * MAX_MSGS];
    int np = 0;
    for (size_t i = 0; np < (int)(sizeof parts / sizeof parts[0]);) {
        parts[np++] = buf + i;
        size_t l = strlen(buf + i);
        if (i + l >= n) break;
        i += l + 1;
    }
    const char *tmpl = parts[0];
    st_chat_family det = st_chat_detect(tmpl);
    FZ_CHECK(det == ST_CHAT_UNKNOWN || (det >= 0 && det < ST_CHAT_COUNT), "detect gave %d", (int)det);
    FZ_CHECK(st_chat_detect(tmpl) == det, "detect is not deterministic");
    FZ_CHECK(st_chat_family_name(det) != NULL, "family name");
    st_chat_family byname = st_chat_family_by_name(tmpl);
    FZ_CHECK(byname == ST_CHAT_UNKNOWN || (byname >= 0 && byname < ST_CHAT_COUNT), "by_name gave %d", (int)byname);
    if (byname != ST_CHAT_UNKNOWN)
        FZ_CHECK(st_chat_family_by_name(st_chat_family_name(byname)) == byname, "name round trip");

    st_chat_family fam = sel < ST_CHAT_COUNT ? (st_chat_family)sel : det;
    st_chat_msg msgs[MAX_MSGS];
    int nm = 0;
    size_t in_bytes = strlen(tmpl);
    for (int i = 1; i < np && nm < MAX_MSGS; i += 2) {
        msgs[nm].role = parts[i];
        msgs[nm].content = i + 1 < np ? parts[i + 1] : "";
        in_bytes += strlen(msgs[nm].role) + strlen(msgs[nm].content);
        nm++;
    }
    st_chat_params p;
    st_chat_params_default(&p);
    p.add_generation_prompt = flags & 1;
    p.no_fold = flags & 2;
    p.bos_token = (flags & 4) ? NULL : "<s>";
    p.eos_token = (flags & 8) ? NULL : "</s>";
    if (flags & 16) {
        p.year = (int8_t)data[2] * 40;
        p.month = (int8_t)data[3];
        p.day = (int8_t)data[4];
    } else {
        p.year = 2024, p.month = 7, p.day = 26; /* keep the output independent of the clock */
    }
    char *out = (char *)0x1;
    size_t len = 12345;
    st_error e = {0};
    st_status st = st_chat_render(fam, msgs, nm, &p, &out, &len, &e);
    if (st == ST_OK) {
        FZ_CHECK(out != NULL, "no output");
        FZ_CHECK(strlen(out) == len, "length %zu but strlen %zu", len, strlen(out));
        size_t bound = 6 * in_bytes + 1024 * (size_t)(nm + 1) + 4096;
        FZ_CHECK(len <= bound, "output of %zu bytes for %zu bytes in %d messages (bound %zu)", len, in_bytes, nm, bound);
        free(out);
    } else {
        FZ_CHECK(st == ST_ERR_ARG, "render: status %d: %s", (int)st, e.msg);
        FZ_CHECK(e.code == st && e.msg[0], "render: error without a message");
        FZ_CHECK(out == (char *)0x1 || out == NULL, "output set on failure");
        if (nm == 0) FZ_CHECK(strstr(e.msg, "no messages") != NULL, "%s", e.msg);
    }
    free(buf);
    return 0;
}
