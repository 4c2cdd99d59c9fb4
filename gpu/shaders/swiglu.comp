#version 450
/* SwiGLU in place: g[i] = silu(g[i]) * u[i], silu(x) = x / (1 + exp(-x)). */
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) buffer G { float g[]; };
layout(std430, binding = 1) readonly buffer U { float u[]; };

layout(push_constant) uniform P { uint n, g_off, u_off, gx; } p;

void main() {
    uint i = group_index(p.gx) * WG + gl_LocalInvocationID.x;
    if (i >= p.n) return;
    float x = g[p.g_off + i];
    precise float y = x / (1.0 + exp(-x)) * u[p.u_off + i];
    g[p.g_off + i] = y;
}
