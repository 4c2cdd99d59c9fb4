#version 450
/* Merges the chunks of attn.comp for one (head, token): with M the largest
 * chunk maximum, out[d] = sum_c acc_c[d] e^(M_c - M) / sum_c S_c e^(M_c - M).
 * Chunks that saw no position (S = 0, past the causal limit) add nothing.
 * Workgroup (h, t); invocations over the head's dimensions. Recorded for
 * every pass (the chunk count comes from the pass's buffer, not from the
 * command buffer), it does nothing when there was one chunk. */
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer PART { float part[]; };
layout(std430, binding = 1) writeonly buffer O { float o[]; };
layout(std430, binding = 2) readonly buffer DYN { uint dyn[]; };  /* [2]: the pass's chunk count */

layout(push_constant) uniform P {
    uint n_head, head_dim, o_off, o_stride;
} p;

void main() {
    uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, tid = gl_LocalInvocationID.x;
    uint hd = p.head_dim, w = hd + 2, n_chunks = dyn[2];
    if (n_chunks <= 1) return;  /* attn.comp wrote the result itself */
    uint base = (t * p.n_head + h) * n_chunks * w;
    float M = uintBitsToFloat(0xff800000u);
    for (uint c = 0; c < n_chunks; c++)
        if (part[base + c * w + hd + 1] > 0.0) M = max(M, part[base + c * w + hd]);
    float S = 0.0;
    for (uint c = 0; c < n_chunks; c++) {
        float Sc = part[base + c * w + hd + 1];
        if (Sc > 0.0) S += Sc * exp(part[base + c * w + hd] - M);
    }
    float inv = S == 0.0 ? 0.0 : 1.0 / S;
    for (uint d = tid; d < hd; d += WG) {
        float a = 0.0;
        for (uint c = 0; c < n_chunks; c++) {
            float Sc = part[base + c * w + hd + 1];
            if (Sc > 0.0) a += part[base + c * w + d] * exp(part[base + c * w + hd] - M);
        }
        o[p.o_off + t * p.o_stride + h * hd + d] = a * inv;
    }
}
