#version 450
/* RMSNorm with the weight multiply: out[t][i] = (x[t][i] * scale) * w[i],
 * scale = 1 / sqrt(mean(x^2) + eps). One workgroup per row. The weight is
 * F32 or F16 (w_type), w_off its byte offset in the bound range. */
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W32 { float w32[]; };
layout(std430, binding = 1) readonly buffer W16 { uint16_t w16[]; };
layout(std430, binding = 2) writeonly buffer O { float o[]; };

layout(push_constant) uniform P {
    uint n, x_off, x_stride, w_off, w_type, o_off, o_stride;
    float eps;
} p;

float wv(uint i) {
    return p.w_type == 0 ? w32[p.w_off / 4 + i] : half_bits_to_float(uint(w16[p.w_off / 2 + i]));
}

void main() {
    uint t = gl_WorkGroupID.x, tid = gl_LocalInvocationID.x;
    uint xb = p.x_off + t * p.x_stride, ob = p.o_off + t * p.o_stride;
    float ss = 0.0;
    for (uint i = tid; i < p.n; i += WG) ss += x[xb + i] * x[xb + i];
    ss = wg_sum(ss);
    float scale = 1.0 / sqrt(ss / float(p.n) + p.eps);
    for (uint i = tid; i < p.n; i += WG) o[ob + i] = (x[xb + i] * scale) * wv(i);
}
