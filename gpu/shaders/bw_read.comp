#version 450
/* Reads a buffer once, 16 bytes per load, grid-stride: the device's read
 * bandwidth, the roofline that bench/vk_microbench compares the mat-vec
 * kernels with (a vkCmdCopyBuffer on NVIDIA ran far below it). */
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer A { uvec4 a[]; };
layout(std430, binding = 1) writeonly buffer O { uint o[]; };

layout(push_constant) uniform P { uint n16, gx; } p;

void main() {
    uint nthreads = gl_NumWorkGroups.x * gl_NumWorkGroups.y * WG;
    uvec4 acc = uvec4(0);
    for (uint i = group_index(p.gx) * WG + gl_LocalInvocationID.x; i < p.n16; i += nthreads) acc ^= a[i];
    /* a store that depends on every load, so none is optimized away */
    if ((acc.x ^ acc.y ^ acc.z ^ acc.w) == 0x9E3779B9u) o[0] = 1u;
}
