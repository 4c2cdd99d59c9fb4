/* common.glsl — included by every strata compute shader.
 *
 * Sizes come from the device through specialization constants, never from
 * literals: WG is the workgroup size (a multiple of the device's subgroup
 * size), SG the subgroup size the device reports, USE_SG whether subgroup
 * arithmetic may be used for reductions (else a shared-memory tree). The
 * *_nosg variants (-DNO_SUBGROUP) carry no subgroup code at all, for
 * devices without subgroup arithmetic. */
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_8bit_storage : require
#ifndef NO_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
/* The full variant also uses the packed 4 x 8-bit integer dot product
 * (SPV_KHR_integer_dot_product, core in Vulkan 1.3: DP4A on NVIDIA).
 * Debian 12's glslang (12.0) has no GL_EXT_integer_dot_product, so the
 * SPIR-V instruction (OpSDot, 4450; capabilities DotProduct 6019 and
 * DotProductInput4x8BitPacked 6018) is declared through
 * GL_EXT_spirv_intrinsics. Devices without the feature get the _nosg
 * variant (no subgroups, no dot product instruction). */
#extension GL_EXT_spirv_intrinsics : require
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot4_(uint a, uint b, spirv_literal int fmt);
#endif

/* sum over the 4 bytes of a and y of signed a[k] * signed y[k] */
int sdot4(uint a, uint y) {
#ifndef NO_SUBGROUP
    return sdot4_(a, y, 0);
#else
    int ai = int(a), yi = int(y);
    return bitfieldExtract(ai, 0, 8) * bitfieldExtract(yi, 0, 8) + bitfieldExtract(ai, 8, 8) * bitfieldExtract(yi, 8, 8) +
           bitfieldExtract(ai, 16, 8) * bitfieldExtract(yi, 16, 8) + bitfieldExtract(ai, 24, 8) * bitfieldExtract(yi, 24, 8);
#endif
}

layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint SG = 32;
layout(constant_id = 2) const bool USE_SG = true;
layout(local_size_x_id = 0) in;

shared float red_[WG];

/* Sum of v over the workgroup; every invocation gets the result. Must be
 * reached by all invocations (uniform control flow). */
float wg_sum(float v) {
#ifndef NO_SUBGROUP
    if (USE_SG) {
        float s = subgroupAdd(v);
        if (subgroupElect()) red_[gl_SubgroupID] = s;
        barrier();
        float t = 0.0;
        for (uint i = 0; i < gl_NumSubgroups; i++) t += red_[i];
        barrier();
        return t;
    }
#endif
    uint i = gl_LocalInvocationID.x;
    red_[i] = v;
    barrier();
    for (uint s = WG / 2; s > 0; s >>= 1) {
        if (i < s) red_[i] += red_[i + s];
        barrier();
    }
    float t = red_[0];
    barrier();
    return t;
}

/* The workgroup's linear index when the grid is folded into x and y (x is
 * limited to 65535 groups on many devices): gx groups per row of the grid. */
uint group_index(uint gx) { return gl_WorkGroupID.y * gx + gl_WorkGroupID.x; }

#include "half.glsl"
float half_bits_to_float(uint h) { return unpackHalf2x16(h).x; }

/* roundf: half away from zero, exactly (no x + 0.5 double rounding) */
float round_away(float v) {
    float r = trunc(v);
    if (abs(v - r) >= 0.5) r += sign(v);
    return r;
}
