#version 450
/* The mat-mat of matmul.comp on tensor cores: VK_NV_cooperative_matrix,
 * 16x16x16 products of F16 matrices into F32 accumulators, subgroup scope.
 * Only loaded where the device has the extension and that shape
 * (vk_ctx.c, cm_probe) and STRATA_VK_COOPMAT=1 asks for it: no other
 * device ever sees this SPIR-V (it needs Float16, VulkanMemoryModel and
 * CooperativeMatrixNV).
 *
 * A workgroup of MM_WG invocations (MM_WG / SG subgroups) computes BM rows
 * x BN tokens; each subgroup a WM x WN part of it as (WM/16) x (WN/16)
 * accumulator fragments. K goes in steps of BK (16, 32 or 64): the workgroup
 * dequantizes the weight tile and the activation tile (mm_load.glsl, the
 * same pieces and arithmetic as matmul.comp) to F16 in shared memory, both
 * k-contiguous (As[m][k], Bs[t][k], rows padded by 8 halves so that the
 * fragment loads hit distinct banks), one 16-byte store per piece; then
 * every subgroup loads its A fragments (row-major) and B fragments (as
 * column-major K x N) and multiplies. At the end each fragment goes
 * through a per-subgroup F32 staging area in shared memory to the output
 * (bounds, the residual add).
 *
 * Precision: the weights and activations are rounded to F16 (11 bits) on
 * the way into the products, which the CPU does not do for quantized
 * types (a relative 2^-11 per operand; F16 weights are exact, and their
 * activations are rounded to F16 on the CPU too). tests/test_vulkan.c
 * allows 2e-3 x sum |w x| when this path is on. Not for F32 weights.
 *
 * -DCM_EMULATE (the CMake option STRATA_VK_CM_EMULATE, for testing on
 * devices without the extension, e.g. lavapipe) replaces the three
 * cooperative-matrix operations by plain code with the same memory layout
 * semantics: a fragment load is its offset and stride, a lane owns
 * accumulator elements e = lane + SG q (column-major: row e % 16, column
 * e / 16) and the product reads the F16 tiles itself; everything else
 * (tiles, packing, fragment offsets, staging, output) is this code. */
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_8bit_storage : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#ifndef CM_EMULATE
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_NV_cooperative_matrix : require
#endif

layout(constant_id = 1) const uint SG = 32;    /* the device's subgroup size */
layout(constant_id = 3) const uint MM_WG = 256;
layout(constant_id = 4) const uint BM = 64;    /* rows per tile */
layout(constant_id = 5) const uint BN = 64;    /* tokens per tile */
layout(constant_id = 6) const uint BK = 64;    /* k per step: 16, 32 or 64 */
layout(constant_id = 7) const uint WM = 32;    /* rows per subgroup: a multiple of 16 */
layout(constant_id = 8) const uint WN = 16;    /* tokens per subgroup: a multiple of 16 */
layout(local_size_x_id = 3) in;

#include "mm_load.glsl"

const uint KP = BK / 8;                          /* pieces per row (token) and step */
const uint NPA = (BM * KP + MM_WG - 1) / MM_WG;
const uint NPB = (BN * KP + MM_WG - 1) / MM_WG;
const uint RS = (BK + 8) / 8;                    /* a padded row of the tiles, in uvec4 (8 halves) */
const uint FM = WM / 16, FN = WN / 16;           /* fragments per subgroup */
const uint SUBS = MM_WG / SG;

/* the weight tile (BM rows from 0) and the activation tile (BN tokens from
 * BO) in one array, which also stages the results at the end (16 x 16 F32
 * = 64 uvec4 per subgroup; the host checks SUBS * 64 <= (BM + BN) * RS):
 * one allocation of shared memory, not two (32 KiB on lavapipe) */
const uint BO = BM * RS;
shared uvec4 T[(BM + BN) * RS];
#define As(i) T[i]
#define Bs(i) T[BO + (i)]

#ifdef CM_EMULATE
#define UNROLL /* plain loops: lavapipe compiles fully unrolled emulation slowly */
const uint NE = 256 / SG;  /* accumulator elements per lane */
/* half h of a tile of uvec4s (8 halves each) */
float tile_h(bool b, uint h) {
    uvec4 q = b ? Bs(h / 8) : As(h / 8);
    return unpackHalf2x16(q[(h & 7u) / 2] >> (16 * (h & 1u))).x;
}
#endif

#ifndef UNROLL
#define UNROLL [[unroll]]
#endif

#ifdef CM_EMULATE
uvec4 pack8(float v[8]) {
    return uvec4(packHalf2x16(vec2(v[0], v[1])), packHalf2x16(vec2(v[2], v[3])), packHalf2x16(vec2(v[4], v[5])),
                 packHalf2x16(vec2(v[6], v[7])));
}
#else
/* F16 conversions (round to nearest even), not packHalf2x16 (NVIDIA's
 * rounds otherwise: a bias towards zero in every product) */
uvec4 pack8(float v[8]) {
    return uvec4(packFloat2x16(f16vec2(v[0], v[1])), packFloat2x16(f16vec2(v[2], v[3])), packFloat2x16(f16vec2(v[4], v[5])),
                 packFloat2x16(f16vec2(v[6], v[7])));
}
#endif

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint r0 = (gl_WorkGroupID.y * p.gx + gl_WorkGroupID.x) * BM;
    uint t0 = gl_WorkGroupID.z * BN;
    if (r0 >= p.nrows) return; /* the whole workgroup */
    uint sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    uint wm0 = (sg % (BM / WM)) * WM, wn0 = (sg / (BM / WM)) * WN;

    uint wr[NPA], wk[NPA], xt[NPB], xk[NPB];
    bool wv[NPA], xv[NPB];
    [[unroll]] for (uint i = 0; i < NPA; i++) {
        uint a = tid + i * MM_WG;
        wv[i] = a < BM * KP;
        wr[i] = min(r0 + a / KP, p.nrows - 1);
        wk[i] = 8 * (a % KP);
    }
    [[unroll]] for (uint i = 0; i < NPB; i++) {
        uint a = tid + i * MM_WG;
        xv[i] = a < BN * KP;
        xt[i] = min(t0 + a / KP, p.n_tok - 1);
        xk[i] = 8 * (a % KP);
    }

#ifdef CM_EMULATE
    float acc[FM * FN][NE];
    for (uint i = 0; i < FM * FN; i++)
        for (uint q = 0; q < NE; q++) acc[i][q] = 0.0;
#else
    fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> acc[FM * FN];
    [[unroll]] for (uint i = 0; i < FM * FN; i++) acc[i] = fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0);
#endif

    /* BK = 64 need not divide n (a Q8_0 row of 7 blocks): pieces at k >= n
     * are not read and count as zeros */
    uint wraw[NPA][WRAW], xraw[NPB][XRAW];
    [[unroll]] for (uint i = 0; i < NPA; i++)
        if (wv[i] && wk[i] < p.n) fetch_w(wr[i], wk[i], wraw[i]);
    [[unroll]] for (uint i = 0; i < NPB; i++)
        if (xv[i] && xk[i] < p.n) fetch_x(xt[i], xk[i], xraw[i]);

    for (uint k0 = 0; k0 < p.n; k0 += BK) {
        barrier();
        [[unroll]] for (uint i = 0; i < NPA; i++) {
            if (!wv[i]) continue;
            float v[8];
            deq_w(wraw[i], k0 + wk[i], v);
            if (k0 + wk[i] >= p.n) v = float[8](0, 0, 0, 0, 0, 0, 0, 0);
            As(((tid + i * MM_WG) / KP) * RS + wk[i] / 8) = pack8(v);
        }
        [[unroll]] for (uint i = 0; i < NPB; i++) {
            if (!xv[i]) continue;
            float v[8];
            deq_x(xraw[i], v);
            if (k0 + xk[i] >= p.n) v = float[8](0, 0, 0, 0, 0, 0, 0, 0);
            Bs(((tid + i * MM_WG) / KP) * RS + xk[i] / 8) = pack8(v);
        }
        barrier();
        if (k0 + BK < p.n) {
            [[unroll]] for (uint i = 0; i < NPA; i++)
                if (wv[i] && k0 + BK + wk[i] < p.n) fetch_w(wr[i], k0 + BK + wk[i], wraw[i]);
            [[unroll]] for (uint i = 0; i < NPB; i++)
                if (xv[i] && k0 + BK + xk[i] < p.n) fetch_x(xt[i], k0 + BK + xk[i], xraw[i]);
        }
        UNROLL for (uint kk = 0; kk < BK / 16; kk++) {
#ifdef CM_EMULATE
            /* A (m, k) at As[fa + m * RS] half k (row-major), B (k, t) at Bs[fb + t * RS] half k (column-major) */
            for (uint j = 0; j < FN; j++)
                for (uint i = 0; i < FM; i++) {
                    uint fa = (wm0 + 16 * i) * RS + 2 * kk, fb = (wn0 + 16 * j) * RS + 2 * kk;
                    for (uint q = 0; q < NE; q++) {
                        uint e = lane + SG * q, m = e & 15u, t = e / 16;
                        float s = 0.0;
                        for (uint k = 0; k < 16; k++) s += tile_h(false, 8 * (fa + m * RS) + k) * tile_h(true, 8 * (fb + t * RS) + k);
                        acc[j * FM + i][q] += s;
                    }
                }
#else
            fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> fa[FM];
            [[unroll]] for (uint i = 0; i < FM; i++) coopMatLoadNV(fa[i], T, (wm0 + 16 * i) * RS + 2 * kk, RS, false);
            [[unroll]] for (uint j = 0; j < FN; j++) {
                fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> fb;
                coopMatLoadNV(fb, T, BO + (wn0 + 16 * j) * RS + 2 * kk, RS, true);
                [[unroll]] for (uint i = 0; i < FM; i++) acc[j * FM + i] = coopMatMulAddNV(fa[i], fb, acc[j * FM + i]);
            }
#endif
        }
    }

    /* fragment (m, t) -> float t * 16 + m of the subgroup's 64 uvec4 of T -> o */
    barrier(); /* every subgroup is done with the tiles */
    UNROLL for (uint j = 0; j < FN; j++)
        UNROLL for (uint i = 0; i < FM; i++) {
#ifdef CM_EMULATE
            for (uint q = 0; q < NE; q++) {
                uint e = lane + SG * q;
                T[sg * 64 + e / 4][e & 3u] = floatBitsToUint(acc[j * FM + i][q]);
            }
#else
            coopMatStoreNV(acc[j * FM + i], T, sg * 64, 4, true);
#endif
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            for (uint e = lane; e < 256; e += SG) {
                uint r = r0 + wm0 + 16 * i + (e & 15u), t = t0 + wn0 + 16 * j + e / 16;
                if (r < p.nrows && t < p.n_tok) {
                    uint oi = p.o_off + t * p.o_stride + r;
                    float v = uintBitsToFloat(T[sg * 64 + e / 4][e & 3u]);
                    o[oi] = p.add != 0 ? o[oi] + v : v;
                }
            }
            subgroupMemoryBarrierShared();
            subgroupBarrier();
        }
}
