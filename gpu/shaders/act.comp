#version 450
/* The activations the weight kernels read, in one dispatch per step:
 *   mode 0: y = x                               (after attention)
 *   mode 1: y = (x * s) * w, s = 1/sqrt(mean(x^2) + eps)   (RMSNorm)
 *   mode 2: y = silu(g) * u                     (SwiGLU; x is g, in place)
 * y is written as floats (for float weights and the next steps) and, unless
 * kind is 2, quantized to the blocks that the weight kernels dot against,
 * rounding exactly as the CPU's reference quantizers do:
 *   kind 0, Q8_0: blocks of 32, d = amax / 127 (kept as the F16 the CPU
 *                 stores), q = roundf(y / d)
 *   kind 1, Q8_K: blocks of 256, d = max / -127 of the signed largest value
 *                 (the first of equals), q = nearest-even(y * -127 / max)
 *                 capped at 127, and the sum of each 16 q (bsums)
 * q go to qs[] four to a word (row r starts at word r * n / 4), d to d[]
 * (row r at r * n / block), bsums to bs[] (row r at r * n / 16).
 *
 * Fusing the three steps with the quantization saves a dispatch and a
 * barrier each, and a pass over the row: the separate kernels took 18-33 us
 * each on an H200 for a 4096-wide row, one workgroup of 64 walking it.
 *
 * Workgroup (c, t) covers elements [c * WG * 16, (c + 1) * WG * 16) of row
 * t (so a 4096-wide row is spread over 4 workgroups; RMSNorm's sum of
 * squares is computed by each of them over the whole row: 16 KB from the
 * cache, cheaper than another dispatch). Each invocation owns 16
 * consecutive elements (one bsum); a block's largest value is found through
 * shared memory by the first invocation of the block, so no subgroup size
 * is assumed. */
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 0) buffer X4 { vec4 x4[]; };
layout(std430, binding = 1) readonly buffer W32 { float w32[]; };
layout(std430, binding = 1) readonly buffer W16 { uint16_t w16[]; };
layout(std430, binding = 1) readonly buffer W4 { uvec4 w4[]; };
layout(std430, binding = 2) writeonly buffer O { float o[]; };
layout(std430, binding = 2) writeonly buffer O4 { vec4 o4[]; };
layout(std430, binding = 3) writeonly buffer QS { uint qs[]; };
layout(std430, binding = 4) writeonly buffer D { float d[]; };
layout(std430, binding = 5) writeonly buffer BS { int bs[]; };

layout(push_constant) uniform P {
    uint n, x_off, x_stride;
    uint w_off;            /* mode 1: byte offset of the weight in binding 1; mode 2: float offset of u */
    uint w_type;           /* mode 1: 0 F32, 1 F16 */
    uint o_off, o_stride;
    uint mode, kind;
    float eps;
} p;

shared float amx[WG];
shared float asv[WG];      /* the signed value of that largest |y| */
shared float bd[WG];       /* per invocation: its block's scale factor (id or iscale) */

float wv(uint i) {
    return p.w_type == 0 ? w32[p.w_off / 4 + i] : half_bits_to_float(uint(w16[p.w_off / 2 + i]));
}

float yval(uint xb, uint e, float scale) {
    if (p.mode == 1) return (x[xb + e] * scale) * wv(e);
    if (p.mode == 2) {
        float g = x[xb + e];
        precise float y = g / (1.0 + exp(-g)) * w32[p.w_off + p.x_stride * gl_WorkGroupID.y + e];
        return y;
    }
    return x[xb + e];
}

void main() {
    uint t = gl_WorkGroupID.y, tid = gl_LocalInvocationID.x;
    uint xb = p.x_off + t * p.x_stride, ob = p.o_off + t * p.o_stride;
    float scale = 1.0;
    if (p.mode == 1) {
        float ss = 0.0;
        if ((xb & 3u) == 0 && (p.n & 3u) == 0) {
            /* 16-byte loads, eight in flight per step (a 4096-wide row in
             * two steps of a 64-wide workgroup): a loop of one load and one
             * add per step waited for every load (the sum of a 4096-wide
             * row took most of this kernel's time) */
            vec4 s4 = vec4(0.0);
            for (uint i = tid * 4; i < p.n; i += WG * 32) {
                vec4 v[8];
                for (uint k = 0; k < 8; k++) v[k] = i + k * WG * 4 < p.n ? x4[(xb + i + k * WG * 4) >> 2] : vec4(0.0);
                s4 += ((v[0] * v[0] + v[1] * v[1]) + (v[2] * v[2] + v[3] * v[3])) +
                      ((v[4] * v[4] + v[5] * v[5]) + (v[6] * v[6] + v[7] * v[7]));
            }
            ss = (s4.x + s4.y) + (s4.z + s4.w);
        } else {
            for (uint i = tid; i < p.n; i += WG) ss += x[xb + i] * x[xb + i];
        }
        ss = wg_sum(ss);
        scale = 1.0 / sqrt(ss / float(p.n) + p.eps);
    }
    uint bsz = p.kind == 0 ? 32u : 256u;
    uint per = bsz / 16;             /* invocations per block */
    uint nb = p.n / bsz;
    {
        uint r0 = gl_WorkGroupID.x * WG * 16;
        uint e0 = r0 + tid * 16;
        bool mine = e0 < p.n;
        float y[16];
        float am = 0.0, sv = 0.0;
        /* 16-byte loads and stores where everything is aligned (uniform
         * but for the row's last group), all issued before the arithmetic */
        bool fast = e0 + 16 <= p.n && (xb & 3u) == 0 && (ob & 3u) == 0 &&
                    (p.mode != 1 || (p.w_off & 15u) == 0) && (p.mode != 2 || ((p.w_off + p.x_stride * t) & 3u) == 0);
        if (fast) {
            vec4 xv[4];
            for (uint v = 0; v < 4; v++) xv[v] = x4[(xb + e0) / 4 + v];
            if (p.mode == 1 && p.w_type == 0) {
                for (uint v = 0; v < 4; v++) {
                    vec4 w = uintBitsToFloat(w4[(p.w_off / 4 + e0) / 4 + v]);
                    for (uint k = 0; k < 4; k++) y[4 * v + k] = (xv[v][k] * scale) * w[k];
                }
            } else if (p.mode == 1) {
                for (uint v = 0; v < 2; v++) {
                    uvec4 h = w4[(p.w_off / 2 + e0) / 8 + v];
                    for (uint k = 0; k < 4; k++) {
                        vec2 w = unpackHalf2x16(h[k]);
                        uint j = 8 * v + 2 * k;
                        y[j] = (xv[j / 4][j % 4] * scale) * w.x;
                        y[j + 1] = (xv[(j + 1) / 4][(j + 1) % 4] * scale) * w.y;
                    }
                }
            } else if (p.mode == 2) {
                for (uint v = 0; v < 4; v++) {
                    vec4 u = uintBitsToFloat(w4[(p.w_off + p.x_stride * t + e0) / 4 + v]);
                    for (uint k = 0; k < 4; k++) {
                        float g = xv[v][k];
                        precise float yy = g / (1.0 + exp(-g)) * u[k];
                        y[4 * v + k] = yy;
                    }
                }
            } else {
                for (uint v = 0; v < 4; v++)
                    for (uint k = 0; k < 4; k++) y[4 * v + k] = xv[v][k];
            }
            for (uint v = 0; v < 4; v++) o4[(ob + e0) / 4 + v] = vec4(y[4 * v], y[4 * v + 1], y[4 * v + 2], y[4 * v + 3]);
        } else {
            for (uint j = 0; j < 16; j++) y[j] = e0 + j < p.n ? yval(xb, e0 + j, scale) : 0.0;
            for (uint j = 0; j < 16; j++)
                if (e0 + j < p.n) o[ob + e0 + j] = y[j];
        }
        for (uint j = 0; j < 16; j++) {
            float ay = abs(y[j]);
            if (ay > am) { am = ay; sv = y[j]; }
        }
        if (p.kind == 2) return;   /* uniform */
        amx[tid] = am;
        asv[tid] = sv;
        barrier();
        uint first = tid - tid % per;
        if (mine && tid == first) {
            /* the block's largest |y|, the first of equals (as the CPU scans) */
            float bm = 0.0, mx = 0.0;
            for (uint k = 0; k < per; k++)
                if (amx[tid + k] > bm) { bm = amx[tid + k]; mx = asv[tid + k]; }
            uint b = e0 / bsz;
            if (p.kind == 0) {
                float dd = bm / 127.0;
                d[t * nb + b] = fp16_round(dd);
                bd[tid] = dd != 0.0 ? 1.0 / dd : 0.0;
            } else {
                float iscale = mx == 0.0 ? 0.0 : -127.0 / mx;
                d[t * nb + b] = mx == 0.0 ? 0.0 : 1.0 / iscale;
                bd[tid] = iscale;
            }
        }
        barrier();
        if (mine) {
            float f = bd[first];
            uint qb = (t * p.n + e0) / 4;
            int sum = 0;
            for (uint w = 0; w < 4; w++) {
                uint word = 0;
                for (uint k = 0; k < 4; k++) {
                    int q = p.kind == 0 ? int(round_away(y[4 * w + k] * f)) : min(int(roundEven(f * y[4 * w + k])), 127);
                    sum += q;
                    word |= (uint(q) & 0xffu) << (8 * k);
                }
                qs[qb + w] = word;
            }
            if (p.kind == 1) bs[(t * p.n + e0) / 16] = sum;
        }
    }
}
