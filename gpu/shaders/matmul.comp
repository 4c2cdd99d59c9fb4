#version 450
/* Matrix-matrix products for prompt batches: o[t][r] (+)= dot(W row r, y[t])
 * for all rows r and tokens t < n_tok, over weights in their GGUF type.
 *
 * Tiling (sizes are specialization constants, chosen by the host from the
 * device's limits: vk_ctx.c, mm_fit): a workgroup of MM_WG invocations
 * computes a tile of BM rows x BN tokens. It walks K in steps of BK (8, 16
 * or 32; a step never straddles a quant block): each step the workgroup
 * loads the weight tile (BM x BK) and the activation tile (BK x BN),
 * dequantized to float, into shared memory (k-major: As[k][m], Bs[k][t]);
 * every invocation then accumulates a TM x TN register micro-tile (rows
 * 4*(i*BM/TM + tr) + 0..3 for i < TM/4, tokens 4*(j*BN/TN + tc) + 0..3 for
 * j < TN/4: vec4 reads of shared memory, consecutive invocations on
 * consecutive vec4s, so no bank conflicts). MM_WG = (BM/TM) * (BN/TN).
 * The global loads of step s+1 are issued before the arithmetic of step s
 * (into registers, raw) and dequantized into shared memory after it.
 *
 * Loads are in pieces of 8 consecutive k of one row (or one token), in
 * mm_load.glsl: a Q8_0 piece is 8 bytes of a block, Q4_0/Q4_K 8 nibbles,
 * Q5_K 8 nibbles and 8 high bits, Q6_K 8 low nibbles and 8 two-bit pairs;
 * one scale (and min) per piece, since 8 | 16 | 32.
 *
 * The arithmetic is the CPU's up to the order of float additions: the
 * activations are the ones quantize.comp left (Q8_0 blocks for Q4_0/Q8_0
 * weights, Q8_K for the K-quants: int8 x block scale), for F16 weights the
 * floats rounded to F16, for F32 the floats; each weight is dequantized
 * exactly as the CPU's to_float does (d * q, d * sc * q - dmin * m), the
 * products and sums are float (fma).
 *
 * Bindings and push constants are matvec.comp's (plus n_tok): the grid is
 * (row tiles folded into x and y, token tiles in z). Compiled once per
 * weight type: -DW_F32, -DW_F16, -DW_Q4_0, -DW_Q8_0, -DW_Q4_K, -DW_Q5_K,
 * -DW_Q6_K. Needs no subgroup operations (the _nosg build is the same). */
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_8bit_storage : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_GOOGLE_include_directive : require

layout(constant_id = 3) const uint MM_WG = 256;
layout(constant_id = 4) const uint BM = 128;  /* rows per tile (a multiple of TM) */
layout(constant_id = 5) const uint BN = 128;  /* tokens per tile (a multiple of TN) */
layout(constant_id = 6) const uint BK = 16;   /* k per step: 8, 16 or 32 */
layout(constant_id = 7) const uint TM = 8;    /* rows per invocation: a multiple of 4 */
layout(constant_id = 8) const uint TN = 8;    /* tokens per invocation: a multiple of 4 */
layout(local_size_x_id = 3) in;

#include "mm_load.glsl"

const uint KP = BK / 8;                       /* pieces per row (token) and step */
const uint NPA = (BM * KP + MM_WG - 1) / MM_WG;  /* weight pieces per invocation and step */
const uint NPB = (BN * KP + MM_WG - 1) / MM_WG;  /* activation pieces per invocation and step */
const uint TR = BM / TM, TC = BN / TN;        /* invocations along rows / tokens */

shared vec4 As[BK * BM / 4];
shared vec4 Bs[BK * BN / 4];

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint r0 = (gl_WorkGroupID.y * p.gx + gl_WorkGroupID.x) * BM;
    uint t0 = gl_WorkGroupID.z * BN;
    if (r0 >= p.nrows) return; /* past the rows (the grid folded into x and y): the whole workgroup */
    uint tr = tid % TR, tc = tid / TR;

    /* this invocation's load pieces: weight piece a = tid + i MM_WG is row
     * a % BM, k part a / BM (rows fastest: conflict-free shared stores);
     * likewise for the tokens. Rows / tokens past the end load the last one
     * again (never stored). */
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

    vec4 acc[(TM / 4) * TN];
    [[unroll]] for (uint i = 0; i < (TM / 4) * TN; i++) acc[i] = vec4(0.0);

    uint wraw[NPA][WRAW], xraw[NPB][XRAW];
    [[unroll]] for (uint i = 0; i < NPA; i++)
        if (wv[i]) fetch_w(wr[i], wk[i], wraw[i]);
    [[unroll]] for (uint i = 0; i < NPB; i++)
        if (xv[i]) fetch_x(xt[i], xk[i], xraw[i]);

    for (uint k0 = 0; k0 < p.n; k0 += BK) {
        barrier(); /* the previous step's reads of As/Bs are done */
        [[unroll]] for (uint i = 0; i < NPA; i++) {
            if (!wv[i]) continue;
            float v[8];
            deq_w(wraw[i], k0 + wk[i], v);
            uint a = tid + i * MM_WG, m = a / KP;
            [[unroll]] for (uint e = 0; e < 8; e++) As[(wk[i] + e) * (BM / 4) + m / 4][m & 3u] = v[e];
        }
        [[unroll]] for (uint i = 0; i < NPB; i++) {
            if (!xv[i]) continue;
            float v[8];
            deq_x(xraw[i], v);
            uint a = tid + i * MM_WG, t = a / KP;
            [[unroll]] for (uint e = 0; e < 8; e++) Bs[(xk[i] + e) * (BN / 4) + t / 4][t & 3u] = v[e];
        }
        barrier();
        /* the next step's loads, in flight during the arithmetic */
        if (k0 + BK < p.n) {
            [[unroll]] for (uint i = 0; i < NPA; i++)
                if (wv[i]) fetch_w(wr[i], k0 + BK + wk[i], wraw[i]);
            [[unroll]] for (uint i = 0; i < NPB; i++)
                if (xv[i]) fetch_x(xt[i], k0 + BK + xk[i], xraw[i]);
        }
        [[unroll]] for (uint kk = 0; kk < BK; kk++) {
            vec4 a[TM / 4], b[TN / 4];
            [[unroll]] for (uint i = 0; i < TM / 4; i++) a[i] = As[kk * (BM / 4) + i * TR + tr];
            [[unroll]] for (uint j = 0; j < TN / 4; j++) b[j] = Bs[kk * (BN / 4) + j * TC + tc];
            [[unroll]] for (uint j = 0; j < TN / 4; j++)
                [[unroll]] for (uint c = 0; c < 4; c++)
                    [[unroll]] for (uint i = 0; i < TM / 4; i++)
                        acc[(4 * j + c) * (TM / 4) + i] = fma(a[i], vec4(b[j][c]), acc[(4 * j + c) * (TM / 4) + i]);
        }
    }

    [[unroll]] for (uint j = 0; j < TN / 4; j++)
        [[unroll]] for (uint c = 0; c < 4; c++) {
            uint t = t0 + 4 * (j * TC + tc) + c;
            if (t >= p.n_tok) continue;
            [[unroll]] for (uint i = 0; i < TM / 4; i++) {
                vec4 v = acc[(4 * j + c) * (TM / 4) + i];
                uint rb = r0 + 4 * (i * TR + tr);
                [[unroll]] for (uint e = 0; e < 4; e++) {
                    uint r = rb + e;
                    if (r < p.nrows) {
                        uint oi = p.o_off + t * p.o_stride + r;
                        o[oi] = p.add != 0 ? o[oi] + v[e] : v[e];
                    }
                }
            }
        }
}
