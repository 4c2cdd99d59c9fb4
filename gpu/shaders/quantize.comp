#version 450
/* Activation rows (F32) to the 8-bit blocks the weight kernels dot against,
 * rounding exactly as the CPU's reference quantizers do:
 *   kind 0, Q8_0: blocks of 32, d = amax / 127 (kept as the F16 the CPU
 *                 stores), q = roundf(x / d)
 *   kind 1, Q8_K: blocks of 256, d = max / -127 of the signed largest value,
 *                 q = nearest-even(x * -127 / max) capped at 127, and the sum
 *                 of each 16 q (bsums)
 * q go to qs[] four to a word (row r starts at word r * n / 4), d to d[]
 * (row r at r * n / block), bsums to bs[] (row r at r * n / 16). One
 * invocation per block. */
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer QS { uint qs[]; };
layout(std430, binding = 2) writeonly buffer D { float d[]; };
layout(std430, binding = 3) writeonly buffer BS { int bs[]; };

layout(push_constant) uniform P {
    uint n, n_rows, x_off, x_stride, kind, gx;
} p;

void main() {
    uint bsz = p.kind == 0 ? 32u : 256u;
    uint nb = p.n / bsz;
    uint gid = group_index(p.gx) * WG + gl_LocalInvocationID.x;
    if (gid >= nb * p.n_rows) return;
    uint r = gid / nb, b = gid % nb;
    uint xb = p.x_off + r * p.x_stride + b * bsz;
    uint qb = (r * p.n + b * bsz) / 4;
    if (p.kind == 0) {
        float amax = 0.0;
        for (uint j = 0; j < 32; j++) amax = max(amax, abs(x[xb + j]));
        float dd = amax / 127.0;
        float id = dd != 0.0 ? 1.0 / dd : 0.0;
        d[r * nb + b] = fp16_round(dd);
        for (uint w = 0; w < 8; w++) {
            uint word = 0;
            for (uint k = 0; k < 4; k++) {
                int q = int(round_away(x[xb + 4 * w + k] * id));
                word |= (uint(q) & 0xffu) << (8 * k);
            }
            qs[qb + w] = word;
        }
        return;
    }
    float amax = 0.0, mx = 0.0;
    for (uint j = 0; j < 256; j++) {
        float ax = abs(x[xb + j]);
        if (ax > amax) { amax = ax; mx = x[xb + j]; }
    }
    uint sb = (r * p.n + b * 256) / 16;
    if (amax == 0.0) {
        d[r * nb + b] = 0.0;
        for (uint w = 0; w < 64; w++) qs[qb + w] = 0;
        for (uint j = 0; j < 16; j++) bs[sb + j] = 0;
        return;
    }
    float iscale = -127.0 / mx;
    for (uint g = 0; g < 16; g++) {
        int sum = 0;
        for (uint w = 0; w < 4; w++) {
            uint word = 0;
            for (uint k = 0; k < 4; k++) {
                int q = min(int(roundEven(iscale * x[xb + 16 * g + 4 * w + k])), 127);
                sum += q;
                word |= (uint(q) & 0xffu) << (8 * k);
            }
            qs[qb + 4 * g + w] = word;
        }
        bs[sb + g] = sum;
    }
    d[r * nb + b] = 1.0 / iscale;
}
