/* mm_load.glsl — the operands of the mat-mat kernels (matmul.comp, and
 * matmul_cm.comp): bindings and push constants (matvec.comp's, plus n_tok),
 * and loads in pieces of 8 consecutive k of one weight row or one token.
 * fetch_w / fetch_x read a piece's raw words from the buffers (issued one
 * step ahead), deq_w / deq_x turn them into 8 floats exactly as the CPU's
 * to_float does (d * q, d * sc * q - dmin * m; activations int8 x block
 * scale, or floats, rounded to F16 for F16 weights). A piece never
 * straddles a scale: 8 | 16 | 32. Compiled once per weight type: W_F32,
 * W_F16, W_Q4_0, W_Q8_0, W_Q4_K, W_Q5_K, W_Q6_K. */

layout(std430, binding = 0) readonly buffer W16 { uint16_t w16[]; };
layout(std430, binding = 0) readonly buffer W32 { float w32[]; };
layout(std430, binding = 0) readonly buffer WU { uint wu[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };   /* float types */
layout(std430, binding = 1) readonly buffer QS { uint qs[]; };  /* quantized types */
layout(std430, binding = 2) readonly buffer D { float yd[]; };
layout(std430, binding = 4) buffer O { float o[]; };

layout(push_constant) uniform P {
    uint n;          /* elements per row (a multiple of the block for quantized types) */
    uint nrows;
    uint w_off;      /* byte offset of row 0 in binding 0 (a multiple of 4 for Q4_K, of 2 otherwise) */
    uint row_bytes;
    uint x_off, x_stride; /* float types: activations of token t at x_off + t * x_stride */
    uint o_off, o_stride;
    uint add;        /* 1: o += result (residual), 0: o = result */
    uint gx;
    uint n_tok;
} p;

#include "half.glsl"
float wh(uint byte_off) { return unpackHalf2x16(uint(w16[byte_off >> 1])).x; }
/* 4 bytes from a 2-byte aligned offset */
uint w16x2(uint byte_off) { uint h = byte_off >> 1; return uint(w16[h]) | (uint(w16[h + 1]) << 16); }
uint ubyte(uint w, uint k) { return (w >> (8 * k)) & 0xFFu; }
int sbyte(uint w, uint k) { return bitfieldExtract(int(w), int(8 * k), 8); }

/* Q4_K / Q5_K: 6-bit scale and min of sub-block j from the 12 bytes as 3 words */
uint s12(uint s0, uint s1, uint s2, uint k) { return ubyte(k < 4 ? s0 : (k < 8 ? s1 : s2), k & 3u); }
void scale_min(uint j, uint s0, uint s1, uint s2, out float sc, out float m) {
    if (j < 4) {
        sc = float(s12(s0, s1, s2, j) & 63u);
        m = float(s12(s0, s1, s2, j + 4) & 63u);
    } else {
        sc = float((s12(s0, s1, s2, j + 4) & 0xFu) | ((s12(s0, s1, s2, j - 4) >> 6) << 4));
        m = float((s12(s0, s1, s2, j + 4) >> 4) | ((s12(s0, s1, s2, j) >> 6) << 4));
    }
}

/* ---- weights: fetch the raw words of a piece (row r, k..k+7), then
 * dequantize them to 8 floats */
#if defined(W_F32)
#define WRAW 8
void fetch_w(uint r, uint k, out uint raw[WRAW]) {
    uint b = (p.w_off + r * p.row_bytes) >> 2;
    [[unroll]] for (uint i = 0; i < 8; i++) raw[i] = k + i < p.n ? floatBitsToUint(w32[b + k + i]) : 0u;
}
void deq_w(uint raw[WRAW], uint k, out float v[8]) {
    [[unroll]] for (uint i = 0; i < 8; i++) v[i] = uintBitsToFloat(raw[i]);
}
#elif defined(W_F16)
#define WRAW 8
void fetch_w(uint r, uint k, out uint raw[WRAW]) {
    uint b = (p.w_off + r * p.row_bytes) >> 1;
    [[unroll]] for (uint i = 0; i < 8; i++) raw[i] = k + i < p.n ? uint(w16[b + k + i]) : 0u;
}
void deq_w(uint raw[WRAW], uint k, out float v[8]) {
    [[unroll]] for (uint i = 0; i < 8; i++) v[i] = unpackHalf2x16(raw[i]).x;
}
#elif defined(W_Q8_0)
#define WRAW 3
void fetch_w(uint r, uint k, out uint raw[WRAW]) {
    uint bb = p.w_off + r * p.row_bytes + (k / 32) * 34;
    uint q = bb + 2 + (k & 31u);
    raw[0] = uint(w16[bb >> 1]);
    raw[1] = w16x2(q);
    raw[2] = w16x2(q + 4);
}
void deq_w(uint raw[WRAW], uint k, out float v[8]) {
    float d = unpackHalf2x16(raw[0]).x;
    [[unroll]] for (uint i = 0; i < 4; i++) {
        v[i] = d * float(sbyte(raw[1], i));
        v[i + 4] = d * float(sbyte(raw[2], i));
    }
}
#elif defined(W_Q4_0)
#define WRAW 3
void fetch_w(uint r, uint k, out uint raw[WRAW]) {
    uint bb = p.w_off + r * p.row_bytes + (k / 32) * 18;
    uint q = bb + 2 + (k & 15u);   /* elements j < 16: low nibbles of bytes j, j >= 16: high nibbles of j - 16 */
    raw[0] = uint(w16[bb >> 1]);
    raw[1] = w16x2(q);
    raw[2] = w16x2(q + 4);
}
void deq_w(uint raw[WRAW], uint k, out float v[8]) {
    float d = unpackHalf2x16(raw[0]).x;
    uint sh = (k & 16u) != 0 ? 4u : 0u;
    [[unroll]] for (uint i = 0; i < 4; i++) {
        v[i] = d * float(int((ubyte(raw[1], i) >> sh) & 0xFu) - 8);
        v[i + 4] = d * float(int((ubyte(raw[2], i) >> sh) & 0xFu) - 8);
    }
}
#elif defined(W_Q4_K)
#define WRAW 6
/* 144-byte blocks: d, dmin (F16), 12 bytes of scales/mins, 128 bytes of
 * nibbles: element e = 64 q + l is the low (l < 32) or high nibble of byte
 * 32 q + l % 32, in sub-block e / 32 */
void fetch_w(uint r, uint k, out uint raw[WRAW]) {
    uint bw = (p.w_off + r * p.row_bytes + (k / 256) * 144) >> 2;
    uint e = k & 255u;
    uint qw = bw + 4 + 8 * (e / 64) + ((e & 31u) >> 2);
    raw[0] = wu[qw];
    raw[1] = wu[qw + 1];
    raw[2] = wu[bw];
    raw[3] = wu[bw + 1];
    raw[4] = wu[bw + 2];
    raw[5] = wu[bw + 3];
}
void deq_w(uint raw[WRAW], uint k, out float v[8]) {
    uint e = k & 255u, j = e / 32;
    uint sh = (e & 32u) != 0 ? 4u : 0u;
    float sc, m;
    scale_min(j, raw[3], raw[4], raw[5], sc, m);
    vec2 dm = unpackHalf2x16(raw[2]);
    float a = dm.x * sc, b = dm.y * m;
    [[unroll]] for (uint i = 0; i < 4; i++) {
        v[i] = a * float((ubyte(raw[0], i) >> sh) & 0xFu) - b;
        v[i + 4] = a * float((ubyte(raw[1], i) >> sh) & 0xFu) - b;
    }
}
#elif defined(W_Q5_K)
#define WRAW 8
/* 176-byte blocks: d, dmin, 12 bytes of scales/mins, qh[32], qs[128]:
 * element e = 64 q + l: nibble as Q4_K (qs at 48), plus 16 if bit e / 32 of
 * qh[l % 32] is set */
void fetch_w(uint r, uint k, out uint raw[WRAW]) {
    uint bb = p.w_off + r * p.row_bytes + (k / 256) * 176;
    uint e = k & 255u;
    uint qo = bb + 48 + 32 * (e / 64) + (e & 31u), ho = bb + 16 + (e & 31u);
    raw[0] = w16x2(qo);
    raw[1] = w16x2(qo + 4);
    raw[2] = w16x2(ho);
    raw[3] = w16x2(ho + 4);
    raw[4] = w16x2(bb);
    raw[5] = w16x2(bb + 4);
    raw[6] = w16x2(bb + 8);
    raw[7] = w16x2(bb + 12);
}
void deq_w(uint raw[WRAW], uint k, out float v[8]) {
    uint e = k & 255u, j = e / 32;
    uint sh = (e & 32u) != 0 ? 4u : 0u;
    float sc, m;
    scale_min(j, raw[5], raw[6], raw[7], sc, m);
    vec2 dm = unpackHalf2x16(raw[4]);
    float a = dm.x * sc, b = dm.y * m;
    [[unroll]] for (uint i = 0; i < 4; i++) {
        uint q0 = ((ubyte(raw[0], i) >> sh) & 0xFu) | (((ubyte(raw[2], i) >> j) & 1u) << 4);
        uint q1 = ((ubyte(raw[1], i) >> sh) & 0xFu) | (((ubyte(raw[3], i) >> j) & 1u) << 4);
        v[i] = a * float(q0) - b;
        v[i + 4] = a * float(q1) - b;
    }
}
#elif defined(W_Q6_K)
#define WRAW 6
/* 210-byte blocks: ql[128], qh[64], scales int8[16], d. Element e = 128 h +
 * 32 j + l (j < 4): low (j < 2) or high nibble of ql[64 h + 32 (j & 1) + l],
 * bits 2 j.. of qh[32 h + l] as bits 4-5, minus 32; scale sc[8 h + l / 16 + 2 j] */
void fetch_w(uint r, uint k, out uint raw[WRAW]) {
    uint bb = p.w_off + r * p.row_bytes + (k / 256) * 210;
    uint e = k & 255u, h = e / 128, j = (e / 32) & 3u, l = e & 31u;
    uint ql = bb + 64 * h + 32 * (j & 1u) + l, qh = bb + 128 + 32 * h + l;
    raw[0] = w16x2(ql);
    raw[1] = w16x2(ql + 4);
    raw[2] = w16x2(qh);
    raw[3] = w16x2(qh + 4);
    raw[4] = uint(w16[(bb + 192 + 8 * h + 2 * j + l / 16) >> 1]);  /* 2-aligned: the scale is byte (l / 16) of it */
    raw[5] = uint(w16[(bb + 208) >> 1]);
}
void deq_w(uint raw[WRAW], uint k, out float v[8]) {
    uint e = k & 255u, j = (e / 32) & 3u, l = e & 31u;
    uint sh = j >= 2 ? 4u : 0u, hs = 2 * j;
    float a = unpackHalf2x16(raw[5]).x * float(sbyte(raw[4], l / 16));
    [[unroll]] for (uint i = 0; i < 4; i++) {
        int q0 = int(((ubyte(raw[0], i) >> sh) & 0xFu) | (((ubyte(raw[2], i) >> hs) & 3u) << 4)) - 32;
        int q1 = int(((ubyte(raw[1], i) >> sh) & 0xFu) | (((ubyte(raw[3], i) >> hs) & 3u) << 4)) - 32;
        v[i] = a * float(q0);
        v[i + 4] = a * float(q1);
    }
}
#else
#error "matmul.comp: define the weight type (W_F32, W_F16, W_Q4_0, W_Q8_0, W_Q4_K, W_Q5_K, W_Q6_K)"
#endif

/* ---- activations: a piece is k..k+7 of token t */
#if defined(W_F32) || defined(W_F16)
#define XRAW 8
void fetch_x(uint t, uint k, out uint raw[XRAW]) {
    uint b = p.x_off + t * p.x_stride + k;
    [[unroll]] for (uint i = 0; i < 8; i++) raw[i] = k + i < p.n ? floatBitsToUint(x[b + i]) : 0u;
}
void deq_x(uint raw[XRAW], out float v[8]) {
    [[unroll]] for (uint i = 0; i < 8; i++) {
#if defined(W_F16)
        v[i] = fp16_round(uintBitsToFloat(raw[i]));
#else
        v[i] = uintBitsToFloat(raw[i]);
#endif
    }
}
#else
#define XRAW 3
#if defined(W_Q4_0) || defined(W_Q8_0)
const uint QB = 32;   /* Q8_0 activations */
#else
const uint QB = 256;  /* Q8_K activations */
#endif
void fetch_x(uint t, uint k, out uint raw[XRAW]) {
    uint i = (t * p.n + k) >> 2;
    raw[0] = qs[i];
    raw[1] = qs[i + 1];
    raw[2] = floatBitsToUint(yd[t * (p.n / QB) + k / QB]);
}
void deq_x(uint raw[XRAW], out float v[8]) {
    float d = uintBitsToFloat(raw[2]);
    [[unroll]] for (uint i = 0; i < 4; i++) {
        v[i] = d * float(sbyte(raw[0], i));
        v[i + 4] = d * float(sbyte(raw[1], i));
    }
}
#endif
