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

#define AX(i) x[i]
#define AX4(i) x4[i]
#define AW32(i) w32[i]
#define AW16(i) uint(w16[i])
#define AW4(i) w4[i]
#define AO_STORE(i, v) o[i] = (v)
#define AO4_STORE(i, v) o4[i] = (v)
#define AQ_STORE(i, w) qs[i] = (w)
#define AD_STORE(i, v) d[i] = (v)
#define ABS_STORE(i, v) bs[i] = (v)
#include "act_body.glsl"

layout(push_constant) uniform P {
    uint n, x_off, x_stride, w_off, w_type, o_off, o_stride, mode, kind;
    float eps;
} p;

void main() {
    act_p a = act_p(p.n, p.x_off, p.x_stride, p.w_off, p.w_type, p.o_off, p.o_stride, p.mode, p.kind, p.eps);
    uint t = gl_WorkGroupID.y;
    act_chunk(a, gl_WorkGroupID.x, t, act_scale(a, t));
}
