#version 450
/* llama "normal" RoPE in place on the queries: adjacent pairs (2i, 2i+1) of
 * each head rotate by the angle whose cos/sin the host computed for the
 * token (cs[t][2i], cs[t][2i+1]: built exactly as the CPU backend builds
 * them, by repeated float multiplication). One invocation per pair. */
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer CS { float cs[]; };

layout(push_constant) uniform P {
    uint n_head, head_dim, n_rot, n_tok, off, stride, gx;
} p;

void main() {
    uint np = p.n_rot / 2;
    uint gid = group_index(p.gx) * WG + gl_LocalInvocationID.x;
    if (gid >= p.n_tok * p.n_head * np) return;
    uint i = gid % np, h = (gid / np) % p.n_head, t = gid / (np * p.n_head);
    uint b = p.off + t * p.stride + h * p.head_dim + 2 * i;
    float c = cs[t * p.n_rot + 2 * i], s = cs[t * p.n_rot + 2 * i + 1];
    float x0 = q[b], x1 = q[b + 1];
    precise float y0 = x0 * c - x1 * s;
    precise float y1 = x0 * s + x1 * c;
    q[b] = y0;
    q[b + 1] = y1;
}
