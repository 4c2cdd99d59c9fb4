#version 450
/* Matrix-vector products over weights in their GGUF type, read block by
 * block straight from the storage buffer: o[t][r] (+)= dot(W row r, y[t]).
 * One workgroup per (weight row, token); its invocations stride over the
 * row's units (a 32-block, a quarter of a 256-super-block, or an element for
 * the float types) and the partial sums are reduced over the workgroup.
 *
 * The arithmetic is the CPU's: activations were quantized by quantize.comp
 * to the weight type's vec_dot_type (Q8_0 for Q4_0/Q8_0, Q8_K for the
 * K-quants; for F16 weights they are rounded to F16 here), every block's
 * integer sum is exact, and the float scaling of each block follows the CPU
 * reference kernel; only the order in which block results are added differs.
 *
 * Compiled once per weight type: -DW_F32, -DW_F16, -DW_Q4_0, -DW_Q8_0,
 * -DW_Q4_K, -DW_Q5_K, -DW_Q6_K. */
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer W8 { uint8_t w8[]; };
layout(std430, binding = 0) readonly buffer W16 { uint16_t w16[]; };
layout(std430, binding = 0) readonly buffer W32 { float w32[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };   /* float types */
layout(std430, binding = 1) readonly buffer QS { uint qs[]; };  /* quantized types */
layout(std430, binding = 2) readonly buffer D { float yd[]; };
layout(std430, binding = 3) readonly buffer BS { int bs[]; };
layout(std430, binding = 4) buffer O { float o[]; };

layout(push_constant) uniform P {
    uint n;          /* elements per row */
    uint nrows;
    uint w_off;      /* byte offset of row 0 in binding 0 */
    uint row_bytes;
    uint x_off, x_stride; /* float types: activations of token t at x_off + t * x_stride */
    uint o_off, o_stride;
    uint add;        /* 1: o += result (residual), 0: o = result */
    uint gx;
} p;

uint wb(uint i) { return uint(w8[i]); }
int wsb(uint i) { return bitfieldExtract(int(uint(w8[i])), 0, 8); }
float wh(uint byte_off) { return half_bits_to_float(uint(w16[byte_off >> 1])); }
/* activation e of token t, an int8 */
int yq(uint t, uint e) {
    uint i = t * p.n + e;
    return bitfieldExtract(int(qs[i >> 2]), int(8 * (i & 3u)), 8);
}

/* Q4_K / Q5_K: 6-bit scale and min of sub-block j from the 12 bytes at s */
void scale_min_k4(uint j, uint s, out int sc, out int m) {
    if (j < 4) {
        sc = int(wb(s + j) & 63u);
        m = int(wb(s + j + 4) & 63u);
    } else {
        sc = int((wb(s + j + 4) & 0xFu) | ((wb(s + j - 4) >> 6) << 4));
        m = int((wb(s + j + 4) >> 4) | ((wb(s + j) >> 6) << 4));
    }
}

void main() {
    uint r = group_index(p.gx);
    if (r >= p.nrows) return;
    uint t = gl_WorkGroupID.z, tid = gl_LocalInvocationID.x;
    uint rb = p.w_off + r * p.row_bytes;
    float acc = 0.0;
#if defined(W_F32)
    uint xo = p.x_off + t * p.x_stride;
    for (uint i = tid; i < p.n; i += WG) acc += w32[(rb >> 2) + i] * x[xo + i];
#elif defined(W_F16)
    uint xo = p.x_off + t * p.x_stride;
    for (uint i = tid; i < p.n; i += WG) acc += wh(rb + 2 * i) * fp16_round(x[xo + i]);
#elif defined(W_Q8_0)
    uint nb = p.n / 32;
    for (uint b = tid; b < nb; b += WG) {
        uint bb = rb + b * 34;
        int sumi = 0;
        for (uint j = 0; j < 32; j++) sumi += wsb(bb + 2 + j) * yq(t, b * 32 + j);
        acc += float(sumi) * (wh(bb) * yd[t * nb + b]);
    }
#elif defined(W_Q4_0)
    uint nb = p.n / 32;
    for (uint b = tid; b < nb; b += WG) {
        uint bb = rb + b * 18;
        int sumi = 0;
        for (uint j = 0; j < 16; j++) {
            uint q = wb(bb + 2 + j);
            sumi += (int(q & 0xFu) - 8) * yq(t, b * 32 + j);
            sumi += (int(q >> 4) - 8) * yq(t, b * 32 + j + 16);
        }
        acc += float(sumi) * wh(bb) * yd[t * nb + b];
    }
#elif defined(W_Q4_K) || defined(W_Q5_K)
    uint nb = p.n / 256;
    for (uint u = tid; u < nb * 4; u += WG) {
        uint i = u >> 2, q = u & 3u;
#if defined(W_Q4_K)
        uint bb = rb + i * 144, qo = bb + 16 + 32 * q;
#else
        uint bb = rb + i * 176, qo = bb + 48 + 32 * q, qh = bb + 16;
        uint u1 = 1u << (2 * q), u2 = 2u << (2 * q);
#endif
        int sc0, m0, sc1, m1;
        scale_min_k4(2 * q, bb + 4, sc0, m0);
        scale_min_k4(2 * q + 1, bb + 4, sc1, m1);
        uint e0 = i * 256 + 64 * q;
        int s1 = 0, s2 = 0;
        for (uint l = 0; l < 32; l++) {
            uint v = wb(qo + l);
            int lo = int(v & 0xFu), hi = int(v >> 4);
#if defined(W_Q5_K)
            uint h = wb(qh + l);
            lo += (h & u1) != 0 ? 16 : 0;
            hi += (h & u2) != 0 ? 16 : 0;
#endif
            s1 += yq(t, e0 + l) * lo;
            s2 += yq(t, e0 + 32 + l) * hi;
        }
        int isum = sc0 * s1 + sc1 * s2;
        uint g = (t * p.n + e0) / 16;
        int summs = (bs[g] + bs[g + 1]) * m0 + (bs[g + 2] + bs[g + 3]) * m1;
        float dy = yd[t * nb + i];
        acc += (wh(bb) * dy) * float(isum) - (wh(bb + 2) * dy) * float(summs);
    }
#elif defined(W_Q6_K)
    uint nb = p.n / 256;
    for (uint u = tid; u < nb * 4; u += WG) {
        uint i = u >> 2, half_ = (u & 3u) >> 1, h = u & 1u;
        uint bb = rb + i * 210;
        uint ql = bb + 64 * half_, qh = bb + 128 + 32 * half_, sc = bb + 192 + 8 * half_;
        uint e0 = i * 256 + 128 * half_;
        int s1 = 0, s2 = 0, s3 = 0, s4 = 0;
        for (uint l = 16 * h; l < 16 * h + 16; l++) {
            uint a = wb(ql + l), b2 = wb(ql + l + 32), c = wb(qh + l);
            int q1 = int((a & 0xFu) | (((c >> 0) & 3u) << 4)) - 32;
            int q2 = int((b2 & 0xFu) | (((c >> 2) & 3u) << 4)) - 32;
            int q3 = int((a >> 4) | (((c >> 4) & 3u) << 4)) - 32;
            int q4 = int((b2 >> 4) | (((c >> 6) & 3u) << 4)) - 32;
            s1 += q1 * yq(t, e0 + l);
            s2 += q2 * yq(t, e0 + l + 32);
            s3 += q3 * yq(t, e0 + l + 64);
            s4 += q4 * yq(t, e0 + l + 96);
        }
        int isum = wsb(sc + h) * s1 + wsb(sc + h + 2) * s2 + wsb(sc + h + 4) * s3 + wsb(sc + h + 6) * s4;
        acc += (wh(bb + 208) * yd[t * nb + i]) * float(isum);
    }
#else
#error "matvec.comp: define the weight type (W_F32, W_F16, W_Q4_0, W_Q8_0, W_Q4_K, W_Q5_K, W_Q6_K)"
#endif
    acc = wg_sum(acc);
    if (tid == 0) {
        uint oi = p.o_off + t * p.o_stride + r;
        o[oi] = p.add != 0 ? o[oi] + acc : acc;
    }
}
