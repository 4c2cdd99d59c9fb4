#version 450
/* Matrix-vector products over weights in their GGUF type, read block by
 * block straight from the storage buffer: o[t][r] (+)= dot(W row r, y[t]).
 *
 * Layout: a workgroup of WG invocations is cut into NG = WG / LANES groups
 * of LANES invocations (LANES = the subgroup size SG when subgroup
 * arithmetic is used, else the whole workgroup); each group computes NR
 * consecutive rows for one token (z of the grid), its lanes striding over
 * the row's units, and reduces with subgroupAdd (no shared memory, no
 * barrier). So a workgroup covers NG * NR rows (a row group), and computes
 * row groups g, g + g_stride, ... of the dispatch (one, unless the host
 * launched fewer workgroups than groups: with a prologue). The activations
 * of a unit are loaded once and used for all NR rows. Where the device's
 * subgroups turn out not to be SG wide, the same groups reduce through
 * shared memory.
 *
 * Units (what one lane handles per step):
 *   Q4_K, Q5_K: a quarter super-block (64 weights) with 16-byte loads (144-
 *         and 176-byte blocks keep 16-byte alignment), 4 units per block
 *   Q6_K: 16 positions l of a 128-half (64 weights: ql, ql+32, qh), 4 units
 *         per block, 16 bytes at a time as aligned words (210-byte blocks
 *         are 2-byte aligned)
 *   Q8_0: a 32-block as nine aligned words (34-byte blocks are 2-byte
 *         aligned: shifted by 16 bits where needed)
 *   Q4_0: a 32-block as five aligned words (18-byte blocks, likewise)
 *   F32, F16: an element
 * Products of 4 bytes go through sdot4 (common.glsl: the packed integer dot
 * product instruction where the device has it).
 *
 * The arithmetic is the CPU's: activations were quantized by act.comp
 * to the weight type's vec_dot_type (Q8_0 for Q4_0/Q8_0, Q8_K for the
 * K-quants; for F16 weights they are rounded to F16 here), every block's
 * integer sums are exact, and the float scaling follows the CPU reference
 * kernel; what differs is the order in which the parts are added (a block
 * may be split over lanes, each part scaled on its own).
 *
 * Compiled once per weight type: -DW_F32, -DW_F16, -DW_Q4_0, -DW_Q8_0,
 * -DW_Q4_K, -DW_Q5_K, -DW_Q6_K. The host's rows per workgroup
 * (vk_backend.c, matvec_rows) must agree with NR here.
 *
 * Epilogue (specialization constant EPI = 1, one-token passes): Q, K and
 * V in one dispatch (NR = 2, so a group holds the pair of adjacent rows
 * RoPE rotates) apply RoPE to the query and key rows, store the queries to
 * binding 4 and the keys and values straight into the KV cache (bindings 5
 * and 6, F16 or F32) at the pass's position (binding 8) with the cos/sin
 * table (binding 7): what kv_store.comp does, the same way, without its
 * dispatch and barrier (~5 us on an H200). (Running act.comp's steps in the
 * last workgroup of a product instead was measured slower than their own
 * dispatch: one workgroup walking a row is a chain of dependent loads.)
 *
 * Prologue (one-token passes, quantized types; `pro` != 0 in a pipeline
 * whose PRO_N is the capacity): instead of reading activations act.comp
 * quantized in a dispatch of its own, every workgroup computes them from
 * the floats in binding 1 into shared memory first: pro 1 copies (the
 * attention output), 2 applies RMSNorm with the weight in binding 2, 3
 * SwiGLU with u in binding 2; act_body.glsl's arithmetic with the same
 * workgroup size as act.comp, so the activations are bit-identical. Each
 * workgroup repeats the step for the whole row (a few KB from the cache),
 * in parallel, where the separate dispatch cost a launch and a barrier
 * on the critical path; the host launches two workgroups a multiprocessor
 * (vk_ctx.c, mv_pro_groups), each then computing several row groups, so
 * the step is paid once per workgroup, not once per row group. */
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer W8 { uint8_t w8[]; };
layout(std430, binding = 0) readonly buffer W16 { uint16_t w16[]; };
layout(std430, binding = 0) readonly buffer W32 { float w32[]; };
layout(std430, binding = 0) readonly buffer WU { uint wu[]; };
layout(std430, binding = 0) readonly buffer W4 { uvec4 w4[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };   /* float types */
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 1) readonly buffer QS { uint qs[]; };  /* quantized types */
layout(std430, binding = 1) readonly buffer QS4 { uvec4 qs4[]; };
layout(std430, binding = 2) readonly buffer D { float yd[]; };
layout(std430, binding = 3) readonly buffer BS { int bs[]; };
layout(std430, binding = 3) readonly buffer BS4 { ivec4 bs4[]; };
layout(std430, binding = 4) buffer O { float o[]; };
layout(std430, binding = 5) writeonly buffer O1 { float o1[]; };
layout(std430, binding = 6) writeonly buffer O2 { float o2[]; };
/* the epilogue (see above) */
layout(constant_id = 9) const uint EPI = 0;
layout(std430, binding = 5) writeonly buffer KC16 { uint16_t kc16[]; };
layout(std430, binding = 5) writeonly buffer KC32 { float kc32[]; };
layout(std430, binding = 6) writeonly buffer VC16 { uint16_t vc16[]; };
layout(std430, binding = 6) writeonly buffer VC32 { float vc32[]; };
layout(std430, binding = 7) readonly buffer CS { float cs[]; };
layout(std430, binding = 8) readonly buffer DYN { uint dyn[]; };
/* the prologue (see above): floats in, the norm weight or u, shared out */
layout(constant_id = 11) const uint PRO_N = 64;  /* 64: no prologue (the arrays must not be empty) */
layout(std430, binding = 1) readonly buffer PX { float px[]; };
layout(std430, binding = 1) readonly buffer PX4 { vec4 px4[]; };
layout(std430, binding = 2) readonly buffer PW32 { float pw32[]; };
layout(std430, binding = 2) readonly buffer PW16 { uint16_t pw16[]; };
layout(std430, binding = 2) readonly buffer PW4 { uvec4 pw4[]; };
/* The quantized row in 16-byte slots, slot k stored at k ^ ((k >> 3) & 7)
 * (pswz): the mat-vec's lanes read 16-byte slots 64 or 32 bytes apart (a
 * Q4_K lane's quarter super-block, a Q8_0 lane's block), which in a plain
 * layout fall into 2 of the 8 16-byte bank groups: 4-way conflicts for
 * every load (16-way with the 4-byte loads used before, which made
 * prologues cost more than the dispatch they saved on 4096-wide rows).
 * XOR-ing the slot's low 3 bits with the next 3 spreads 8 consecutive
 * lanes over all 8 groups. The bsums likewise as 16-byte slots (a Q4_K
 * lane's four). */
shared uvec4 sq4[PRO_N / 16];
shared float sd[PRO_N / 32];
shared ivec4 sbs4[PRO_N / 64];
uint pswz(uint k) { return k ^ ((k >> 3) & 7u); }
#define AX(i) px[i]
#define AX4(i) px4[i]
#define AW32(i) pw32[i]
#define AW16(i) uint(pw16[i])
#define AW4(i) pw4[i]
#define AO_STORE(i, v)
#define AO4_STORE(i, v)
#define AQ_STORE(i, w) sq4[pswz((i) >> 2)][(i) & 3u] = (w)
#define AD_STORE(i, v) sd[i] = (v)
#define ABS_STORE(i, v) sbs4[(i) >> 2][(i) & 3u] = (v)
#include "act_body.glsl"

/* One dispatch may compute up to three matrices of the same type and width
 * that lie in the same buffer (Q, K and V; gate and up): the workgroups from
 * g1 on compute the second (rows nrows1 at w_off1, into binding 5), from g2
 * on the third (binding 6); g1 = 0: one matrix. Each dispatch saved is a
 * launch and a barrier fewer per layer. */
layout(push_constant) uniform P {
    uint n;          /* elements per row */
    uint nrows;
    uint w_off;      /* byte offset of row 0 in binding 0 (a multiple of 4 for Q4_K) */
    uint row_bytes;
    uint x_off, x_stride; /* float types: activations of token t at x_off + t * x_stride */
    uint o_off, o_stride;
    uint add;        /* 1: o += result (residual), 0: o = result (first matrix only) */
    uint gx;
    uint n_tok_;     /* (matmul's) */
    uint g1, g2, nrows1, nrows2, w_off1, w_off2, o_off1, o_off2, o_stride1, o_stride2;
    /* EPI 1: head_dim, n_rot, the layer's first cache element in bindings
     * 5/6, kv_f32 */
    uint e0, e1, e2, e3;
    /* the prologue: 0 none, 1 copy, 2 RMSNorm, 3 SwiGLU; the weight's byte
     * offset (RMSNorm) or u's float offset (SwiGLU) in binding 2, its type
     * (0 F32, 1 F16), eps */
    uint pro, pro_w_off, pro_w_type;
    float pro_eps;
    /* the row groups (of NG * NR rows) of all the dispatch's matrices, and
     * the workgroups in the grid: workgroup g computes groups g, g +
     * g_stride, ... (one each where the grid covers them all; fewer
     * workgroups than groups where a prologue runs: see main) */
    uint n_groups, g_stride;
    /* the attention chained after Q/K/V without a barrier (vk_backend.c,
     * "chain"): 0 none, else the counter (binding 9) + 1 that every
     * workgroup bumps once its rows are stored */
    uint sig;
} p;
layout(std430, binding = 9) coherent buffer SIGB { uint sigb[]; };

/* This workgroup's rows are stored: made visible to the device, then
 * counted (the classic fence-then-count; every invocation calls it). */
void signal_done() {
    if (p.sig == 0u) return; /* uniform */
    memoryBarrierBuffer();
    barrier();
    if (gl_LocalInvocationID.x == 0u) atomicAdd(sigb[p.sig - 1u], 1u);
}

#if defined(W_Q4_0) || defined(W_Q8_0)
const uint ACT_KIND = 0;  /* Q8_0 activations */
#else
const uint ACT_KIND = 1;  /* Q8_K */
#endif
bool pro_on() { return PRO_N > 64 && p.pro != 0; }
/* the quantized activations: from the prologue's shared copy or binding 1-3 */
uint YQW(uint i) { return pro_on() ? sq4[pswz(i >> 2)][i & 3u] : qs[i]; }
uvec4 YQ4(uint i) { return pro_on() ? sq4[pswz(i)] : qs4[i]; }
float YD(uint i) { return pro_on() ? sd[i] : yd[i]; }
/* the four bsums from i (a multiple of 4: a quarter super-block's) in one load */
ivec4 YBS4(uint i) { return pro_on() ? sbs4[i >> 2] : bs4[i >> 2]; }


/* rows per group: 1 for F32/F16; for the quantized types the host's
 * choice (2 unless STRATA_VK_MV_NR says otherwise, vk_ctx.c) */
layout(constant_id = 10) const uint NRQ = 2;
#if defined(W_F32) || defined(W_F16)
const uint NR = 1;
#else
const uint NR = NRQ;
#endif

const uint LANES = USE_SG ? SG : WG;
const uint NG = WG / LANES;

uint wb(uint i) { return uint(w8[i]); }
int wsb(uint i) { return bitfieldExtract(int(uint(w8[i])), 0, 8); }
float wh(uint byte_off) { return half_bits_to_float(uint(w16[byte_off >> 1])); }
/* 4 bytes from a 2-byte aligned offset */
uint w16x2(uint byte_off) { uint h = byte_off >> 1; return uint(w16[h]) | (uint(w16[h + 1]) << 16); }
/* 8 bytes from a 2-byte aligned offset as three aligned words, shifted by
 * 16 bits when the offset is not 4-byte aligned (no branch: lanes of a
 * subgroup may differ); the third word lies at most 4 bytes past the 8 */
uvec2 w8x(uint byte_off) {
    uint w = byte_off >> 2;
    uint a = wu[w], b = wu[w + 1], c = wu[w + 2];
    return (byte_off & 2u) == 0 ? uvec2(a, b) : uvec2((a >> 16) | (b << 16), (b >> 16) | (c << 16));
}
/* 16 bytes from a 2-byte aligned offset as five aligned words, likewise
 * (the fifth lies at most 4 bytes past the 16) */
uvec4 w16x(uint byte_off) {
    uint w = byte_off >> 2;
    uint a = wu[w], b = wu[w + 1], c = wu[w + 2], d = wu[w + 3], e = wu[w + 4];
    return (byte_off & 2u) == 0 ? uvec4(a, b, c, d)
                                : uvec4((a >> 16) | (b << 16), (b >> 16) | (c << 16), (c >> 16) | (d << 16), (d >> 16) | (e << 16));
}
/* activation e of token t, an int8 */
int yq(uint t, uint e) {
    uint i = t * p.n + e;
    return bitfieldExtract(int(YQW(i >> 2)), int(8 * (i & 3u)), 8);
}
/* the word holding activations e..e+3 of token t (e a multiple of 4) */
uint yw(uint t, uint e) { return YQW((t * p.n + e) >> 2); }

/* sum over 4 bytes: a[k] * signed y[k], a's bytes below 128 (quant values) */
int dot4u(uint a, uint y) { return sdot4(a, y); }
/* signed a[k] * signed y[k] */
int dot4s(uint a, uint y) { return sdot4(a, y); }
int sum4(uint y) { return sdot4(0x01010101u, y); }
/* 32 quant values (a then b, 4 bytes a word) . 32 activations (ya then yb) */
int dot32(uvec4 a, uvec4 b, uvec4 ya, uvec4 yb) {
    return dot4u(a.x, ya.x) + dot4u(a.y, ya.y) + dot4u(a.z, ya.z) + dot4u(a.w, ya.w) +
           dot4u(b.x, yb.x) + dot4u(b.y, yb.y) + dot4u(b.z, yb.z) + dot4u(b.w, yb.w);
}

/* Q4_K / Q5_K: the 6-bit scale and min of sub-blocks 2q and 2q+1 from the
 * 12 scale bytes as 3 words s0 s1 s2, without branches (q differs between
 * the lanes of a subgroup): bytes 0-3 hold the low 6 bits of scales 0-3
 * (their top 2 bits: the high bits of scales 4-7), bytes 4-7 the same for
 * mins 0-3, bytes 8-11 the low 4 bits of scales 4-7 (low nibble) and mins
 * 4-7 (high nibble). */
void scale_min_pair(uint q, uint s0, uint s1, uint s2, out int sc0, out int m0, out int sc1, out int m1) {
    uint sh = 16u * (q & 1u);                   /* which 16 bits of a word hold sub-blocks 2q, 2q+1 */
    bool lo = q < 2u;
    uint a = (lo ? s0 : s2) >> sh;              /* the scales, or (q >= 2) the 4-bit parts */
    uint hs = s0 >> sh, hm = s1 >> sh;          /* the mins (q < 2); the top 2 bits (q >= 2) */
    sc0 = int(lo ? (a & 63u) : ((a & 0xFu) | ((hs >> 6) & 3u) << 4));
    sc1 = int(lo ? ((a >> 8) & 63u) : (((a >> 8) & 0xFu) | ((hs >> 14) & 3u) << 4));
    m0 = int(lo ? (hm & 63u) : (((a >> 4) & 0xFu) | ((hm >> 6) & 3u) << 4));
    m1 = int(lo ? ((hm >> 8) & 63u) : (((a >> 12) & 0xFu) | ((hm >> 14) & 3u) << 4));
}

shared float gred_[WG];

/* the row group being computed (set_group): its matrix (seg: 0, or 1/2
 * for the second and third of a fused dispatch), that matrix's row count,
 * the group's first row, the matrix's and each row's first byte in
 * binding 0 */
uint seg, nrows, r0, w_off;
uint rb[NR];

void set_group(uint gi, uint grp) {
    uint gbase = 0;
    seg = 0;
    if (p.g1 != 0 && gi >= p.g1) {
        seg = 1;
        gbase = p.g1;
        if (p.g2 != 0 && gi >= p.g2) {
            seg = 2;
            gbase = p.g2;
        }
    }
    nrows = seg == 0 ? p.nrows : seg == 1 ? p.nrows1 : p.nrows2;
    w_off = seg == 0 ? p.w_off : seg == 1 ? p.w_off1 : p.w_off2;
    r0 = ((gi - gbase) * NG + grp) * NR;
    /* rows past the end compute row nrows-1 again and are not stored */
    for (uint k = 0; k < NR; k++) rb[k] = w_off + min(r0 + k, nrows - 1) * p.row_bytes;
}

/* EPI 1: RoPE on the pair of rows r0, r0 + 1 (values v0, v1) of segment seg
 * (0 queries, 1 keys, 2 values) of token t, then the stores */
void rope_store(float v0, float v1, uint r0, uint seg, uint t, uint nrows) {
    uint hd = p.e0, nrot = p.e1;
    uint j = r0 % hd;
    float y0 = v0, y1 = v1;
    if (seg < 2 && j < nrot) {
        float c = cs[t * nrot + j], s = cs[t * nrot + j + 1];
        precise float a = v0 * c - v1 * s;
        precise float b = v0 * s + v1 * c;
        y0 = a;
        y1 = b;
    }
    if (seg == 0) {
        uint oi = p.o_off + t * p.o_stride + r0;
        o[oi] = y0;
        o[oi + 1] = y1;
        return;
    }
    uint ci = p.e2 + (dyn[0] + t) * nrows + r0;
    if (p.e3 != 0) {
        if (seg == 1) { kc32[ci] = y0; kc32[ci + 1] = y1; }
        else { vc32[ci] = y0; vc32[ci + 1] = y1; }
    } else {
        if (seg == 1) {
            kc16[ci] = uint16_t(float_to_half_bits(y0));
            kc16[ci + 1] = uint16_t(float_to_half_bits(y1));
        } else {
            vc16[ci] = uint16_t(float_to_half_bits(y0));
            vc16[ci + 1] = uint16_t(float_to_half_bits(y1));
        }
    }
}

/* Sum over the LANES invocations of a group; all invocations of the
 * workgroup must call it (uniform control flow). */
float group_sum(float v, bool sg, uint grp, uint lane) {
#ifndef NO_SUBGROUP
    if (sg) return subgroupAdd(v);
#endif
    uint base = grp * LANES;
    gred_[base + lane] = v;
    barrier();
    for (uint s = LANES / 2; s > 0; s >>= 1) {
        if (lane < s) gred_[base + lane] += gred_[base + lane + s];
        barrier();
    }
    float t = gred_[base];
    barrier();
    return t;
}

/* The prologue (see the top); reached by every invocation (barriers). */
void run_prologue() {
#if !defined(W_F32) && !defined(W_F16)
    if (pro_on()) { /* uniform */
        act_p a = act_p(p.n, p.x_off, p.n, p.pro_w_off, p.pro_w_type, 0u, p.n, p.pro - 1u, ACT_KIND, p.pro_eps);
        float sc = act_scale(a, 0u);
        for (uint c = 0; c * WG * 16 < p.n; c++) act_chunk(a, c, 0u, sc);
        barrier();
    }
#endif
}

/* Q4_K: the weights of the two units of the step from u0 into hd, qa, qb
 * (see main; a macro: arrays sized by specialization constants do not pass
 * through function parameters with Debian's glslang) */
#define Q4K_FETCH(U0)                                                              \
    for (uint v = 0; v < 2; v++) {                                                 \
        uint u = min(v == 1 && (U0) + LANES < nb * 4 ? (U0) + LANES : (U0), nb * 4 - 1); \
        uint i = u >> 2, q = u & 3u;                                               \
        for (uint k = 0; k < NR; k++) {                                            \
            uint bq = (rb[k] + i * 144) >> 4;                                      \
            hd[2 * k + v] = w4[bq];                                                \
            qa[2 * k + v] = w4[bq + 1 + 2 * q];                                    \
            qb[2 * k + v] = w4[bq + 2 + 2 * q];                                    \
        }                                                                          \
    }

void main() {
    bool sg = false;
    uint grp, lane;
#ifndef NO_SUBGROUP
    sg = USE_SG && gl_SubgroupSize == SG && gl_NumSubgroups == NG;
#endif
    if (sg) {
#ifndef NO_SUBGROUP
        grp = gl_SubgroupID;
        lane = gl_SubgroupInvocationID;
#endif
    } else {
        grp = gl_LocalInvocationID.x / LANES;
        lane = gl_LocalInvocationID.x % LANES;
    }
    /* Workgroup g computes row groups g, g + g_stride, ... With a prologue
     * the host launches fewer workgroups than groups (about two per
     * multiprocessor, vk_ctx.c): the prologue is paid once per workgroup
     * instead of once per group, where a grid of one workgroup per group
     * ran in several waves, each paying it again. (uniform: the loop
     * depends on the workgroup only) */
    uint gi = group_index(p.gx);
    if (gi >= p.n_groups) {
        signal_done();
        return;
    }
    uint t = gl_WorkGroupID.z;
    set_group(gi, grp);
    float acc[NR];
#if defined(W_Q4_K)
    /* the first group's first step, requested after the prologue: loads
     * requested before it, to overlap, kept 48 more registers live through
     * it, and then only one workgroup fit a multiprocessor (H100: 7B
     * Q4_K_M decode 251-259 vs 289-291 tok/s, docs/VULKAN.md) */
    uint nb = p.n / 256;
    uvec4 hd[2 * NR], qa[2 * NR], qb[2 * NR];
#endif
    run_prologue();
#if defined(W_Q4_K)
    Q4K_FETCH(lane)
#endif
    for (;;) {
        for (uint k = 0; k < NR; k++) acc[k] = 0.0;
#if defined(W_F32) || defined(W_F16)
        uint xo = p.x_off + t * p.x_stride;
        /* 16-byte loads where rows and activations are aligned (uniform) */
        bool vec = (w_off & 15u) == 0 && (p.row_bytes & 15u) == 0 && (xo & 3u) == 0 && (p.x_stride & 3u) == 0 && (p.n & 7u) == 0;
#endif
#if defined(W_F32)
        if (vec) {
            for (uint i = lane * 4; i < p.n; i += LANES * 4) {
                vec4 w = uintBitsToFloat(w4[(rb[0] + 4 * i) >> 4]);
                vec4 xv = x4[(xo + i) >> 2];
                acc[0] += w.x * xv.x + w.y * xv.y + w.z * xv.z + w.w * xv.w;
            }
        } else {
            for (uint i = lane; i < p.n; i += LANES) acc[0] += w32[(rb[0] >> 2) + i] * x[xo + i];
        }
#elif defined(W_F16)
        if (vec) {
            for (uint i = lane * 8; i < p.n; i += LANES * 8) {
                uvec4 w = w4[(rb[0] + 2 * i) >> 4];
                vec4 xa = x4[(xo + i) >> 2], xb = x4[(xo + i + 4) >> 2];
                vec2 a = unpackHalf2x16(w.x), b = unpackHalf2x16(w.y), c = unpackHalf2x16(w.z), d = unpackHalf2x16(w.w);
                acc[0] += a.x * fp16_round(xa.x) + a.y * fp16_round(xa.y) + b.x * fp16_round(xa.z) + b.y * fp16_round(xa.w) +
                          c.x * fp16_round(xb.x) + c.y * fp16_round(xb.y) + d.x * fp16_round(xb.z) + d.y * fp16_round(xb.w);
            }
        } else {
            for (uint i = lane; i < p.n; i += LANES) acc[0] += wh(rb[0] + 2 * i) * fp16_round(x[xo + i]);
        }
#elif defined(W_Q8_0)
        /* unit: a whole 34-byte block as nine aligned words (blocks are only
         * 2-byte aligned): the words from the one holding the block's first
         * byte; the scale is that word's low half (the block starts 4-byte
         * aligned) or high half, the 32 quants the next 8 words, shifted by 16
         * bits in the first case. Nine 4-byte loads a block instead of twenty
         * 2-byte ones (the ninth word may reach 2 bytes past the block: the
         * binding is rounded up to 4 bytes, vk_bind_range) */
        uint nb = p.n / 32;
        /* two blocks a lane per step (b and b + LANES), the words of both
         * requested before either is used: a 4096-wide row took four
         * dependent rounds of loads, now two (H100, tg128: llama2-7b Q8_0
         * 257.6 vs 249.2 tok/s, tinyllama Q8_0 814.9 vs 810.7; three or
         * four blocks a step lost: 253-255 and 782-791, registers 113 vs
         * 79). The sum runs over the blocks in the same order as before. */
        for (uint b = lane; b < nb; b += 2 * LANES) {
            uint U[2][NR][9];
            for (uint v = 0; v < 2; v++) {
                uint bv = min(b + v * LANES, nb - 1); /* (a second block past the row: loaded, not used) */
                for (uint k = 0; k < NR; k++) {
                    uint w0 = (rb[k] + bv * 34) >> 2;
                    for (uint i = 0; i < 9; i++) U[v][k][i] = wu[w0 + i];
                }
            }
            for (uint v = 0; v < 2; v++) {
                uint bv = b + v * LANES;
                if (bv >= nb) break;
                uint yo = (t * p.n + bv * 32) >> 4;
                uvec4 ya = YQ4(yo), yb = YQ4(yo + 1);
                float dy = YD(t * nb + bv);
                for (uint k = 0; k < NR; k++) {
                    bool al = ((rb[k] + bv * 34) & 2u) == 0;
                    float d = unpackHalf2x16(al ? U[v][k][0] : U[v][k][0] >> 16).x;
                    uint q[8];
                    for (uint j = 0; j < 8; j++) q[j] = al ? (U[v][k][j] >> 16) | (U[v][k][j + 1] << 16) : U[v][k][j + 1];
                    int sumi = dot4s(q[0], ya.x) + dot4s(q[1], ya.y) + dot4s(q[2], ya.z) + dot4s(q[3], ya.w) +
                               dot4s(q[4], yb.x) + dot4s(q[5], yb.y) + dot4s(q[6], yb.z) + dot4s(q[7], yb.w);
                    acc[k] += float(sumi) * (d * dy);
                }
            }
        }
#elif defined(W_Q4_0)
        /* unit: a block (32 weights: low nibbles 0..15, high 16..31) as four
         * 32-bit words from 16-bit pairs (18-byte blocks are 2-byte aligned);
         * sum (q - 8) y = sum q y - 8 sum y, all integer as on the CPU. One
         * block a lane per step: two, as Q8_0 takes them, lost on the H100
         * (llama2-7b Q4_0 314.6-316.8 vs 331.6-332.5 tok/s) */
        uint nb = p.n / 32;
        for (uint b = lane; b < nb; b += LANES) {
            uint yo = (t * p.n + b * 32) >> 2;
            uint y[8];
            for (uint j = 0; j < 8; j++) y[j] = YQW(yo + j);
            int ysum = 0;
            for (uint j = 0; j < 8; j++) ysum += sum4(y[j]);
            float dy = YD(t * nb + b);
            for (uint k = 0; k < NR; k++) {
                /* the 18-byte block as five aligned words, as Q8_0's */
                uint bb = rb[k] + b * 18, w0 = bb >> 2;
                uint U[5];
                for (uint i = 0; i < 5; i++) U[i] = wu[w0 + i];
                bool al = (bb & 2u) == 0;
                float d = unpackHalf2x16(al ? U[0] : U[0] >> 16).x;
                int sumi = -8 * ysum;
                for (uint j = 0; j < 4; j++) {
                    uint q = al ? (U[j] >> 16) | (U[j + 1] << 16) : U[j + 1];
                    sumi += dot4u(q & 0x0F0F0F0Fu, y[j]) + dot4u((q >> 4) & 0x0F0F0F0Fu, y[4 + j]);
                }
                acc[k] += float(sumi) * d * dy;
            }
        }
#elif defined(W_Q4_K)
        /* unit: a quarter super-block (64 weights: 32 bytes of nibbles, low
         * nibbles weights 0..31, high 32..63) with 16-byte loads: the block's
         * 16-byte head (d, dmin, 12 bytes of scales) and two of nibbles; blocks
         * of 144 bytes keep 16-byte alignment (the host checks w_off) */
        /* two units per step, their loads issued together (more bytes in flight
         * per lane: the loop is short, 2 steps for a 4096-wide row); the first
         * step's weights were requested at main's head or, for a later
         * group, at the loop's tail (hd, qa, qb) */
        for (uint u0 = lane; u0 < nb * 4; u0 += 2 * LANES) {
            if (u0 != lane) {
                Q4K_FETCH(u0)
            }
            uvec4 ya0[2], ya1[2], yb0[2], yb1[2];
            uint us[2] = uint[2](u0, u0 + LANES);
            bool ok1 = u0 + LANES < nb * 4;
            /* with a prologue each unit's activations are read from shared
             * memory where they are used, not both units' up front: 124
             * registers instead of 128 (H100: 7B 302.6 vs 299.2 tok/s,
             * tinyllama Q4_K_M 744.7 vs 728) */
            const bool late = PRO_N > 64;
            for (uint v = 0; v < 2 && !late; v++) {
                uint u = v == 1 && !ok1 ? u0 : us[v];
                uint i = u >> 2, q = u & 3u;
                uint yo = (t * p.n + i * 256 + 64 * q) >> 4;
                ya0[v] = YQ4(yo); ya1[v] = YQ4(yo + 1); yb0[v] = YQ4(yo + 2); yb1[v] = YQ4(yo + 3);
            }
            for (uint v = 0; v < 2; v++) {
                if (v == 1 && !ok1) break;
                uint u = us[v];
                uint i = u >> 2, q = u & 3u;
                uint g = (t * p.n + i * 256 + 64 * q) / 16;
                ivec4 ys4 = YBS4(g);
                int ysum_lo = ys4.x + ys4.y, ysum_hi = ys4.z + ys4.w;
                float dy = YD(t * nb + i);
                uvec4 A0, A1, B0, B1;
                if (late) {
                    uint yo = (t * p.n + i * 256 + 64 * q) >> 4;
                    A0 = YQ4(yo); A1 = YQ4(yo + 1); B0 = YQ4(yo + 2); B1 = YQ4(yo + 3);
                } else {
                    A0 = ya0[v]; A1 = ya1[v]; B0 = yb0[v]; B1 = yb1[v];
                }
                for (uint k = 0; k < NR; k++) {
                    uvec4 h = hd[2 * k + v], a = qa[2 * k + v], b = qb[2 * k + v];
                    int sc0, m0, sc1, m1;
                    scale_min_pair(q, h.y, h.z, h.w, sc0, m0, sc1, m1);
                    const uint M4 = 0x0F0F0F0Fu;
                    int s_lo = dot32(a & M4, b & M4, A0, A1);
                    int s_hi = dot32((a >> 4) & M4, (b >> 4) & M4, B0, B1);
                    int isum = sc0 * s_lo + sc1 * s_hi;
                    int summs = ysum_lo * m0 + ysum_hi * m1;
                    vec2 dm = unpackHalf2x16(h.x);
                    acc[k] += (dm.x * dy) * float(isum) - (dm.y * dy) * float(summs);
                }
            }
        }
#elif defined(W_Q5_K)
        /* unit: a quarter super-block as for Q4_K, 16-byte loads (176-byte
         * blocks keep 16-byte alignment): the head, the 32 bytes of high bits
         * (bit 2q of byte l: weight l's fifth bit, bit 2q+1: weight 32+l's) and
         * the quarter's 32 bytes of nibbles */
        uint nb = p.n / 256;
        for (uint u = lane; u < nb * 4; u += LANES) {
            uint i = u >> 2, q = u & 3u;
            uint e0 = i * 256 + 64 * q;
            uint yo = (t * p.n + e0) >> 4;
            uvec4 ya0 = YQ4(yo), ya1 = YQ4(yo + 1), yb0 = YQ4(yo + 2), yb1 = YQ4(yo + 3);
            uint g = (t * p.n + e0) / 16;
            ivec4 ys4 = YBS4(g);
            int ysum_lo = ys4.x + ys4.y, ysum_hi = ys4.z + ys4.w;
            float dy = YD(t * nb + i);
            for (uint k = 0; k < NR; k++) {
                uint bq = (rb[k] + i * 176) >> 4;
                uvec4 hd = w4[bq], h0 = w4[bq + 1], h1 = w4[bq + 2], qa = w4[bq + 3 + 2 * q], qb = w4[bq + 4 + 2 * q];
                int sc0, m0, sc1, m1;
                scale_min_pair(q, hd.y, hd.z, hd.w, sc0, m0, sc1, m1);
                const uint M4 = 0x0F0F0F0Fu, M1 = 0x01010101u;
                uint sl = 2 * q, sh = 2 * q + 1;
                /* the nibbles with their fifth bits */
                int s_lo = dot32((qa & M4) | (((h0 >> sl) & M1) << 4), (qb & M4) | (((h1 >> sl) & M1) << 4), ya0, ya1);
                int s_hi = dot32(((qa >> 4) & M4) | (((h0 >> sh) & M1) << 4), ((qb >> 4) & M4) | (((h1 >> sh) & M1) << 4), yb0, yb1);
                int isum = sc0 * s_lo + sc1 * s_hi;
                int summs = ysum_lo * m0 + ysum_hi * m1;
                vec2 dm = unpackHalf2x16(hd.x);
                acc[k] += (dm.x * dy) * float(isum) - (dm.y * dy) * float(summs);
            }
        }
#elif defined(W_Q6_K)
        /* unit: 16 positions l of a 128-half (64 weights: ql[l..l+16) and
         * ql[l+32..l+48) for the four places, qh[l..l+16) for their top
         * bits, one scale per place) as 16-byte pieces from aligned words
         * (210-byte blocks are 2-byte aligned: w16x), 4 units a block as for
         * Q4_K. Each place's activations are 16 consecutive bytes (one
         * 16-byte load) whose sum is one Q8_K bsum. Twice the bytes per
         * lane and step of the 8-position unit used before, without a
         * second unit's registers (an 11008-wide row: 5.4 steps, not 11) */
        uint nb = p.n / 256;
        for (uint u = lane; u < nb * 4; u += LANES) {
            uint i = u >> 2, half_ = (u >> 1) & 1u, h2 = u & 1u;
            uint e0 = i * 256 + 128 * half_ + 16 * h2;
            uint yo = (t * p.n + e0) >> 4;
            uvec4 y0 = YQ4(yo), y1 = YQ4(yo + 2), y2 = YQ4(yo + 4), y3 = YQ4(yo + 6);
            uint g = (t * p.n + e0) >> 4;  /* this unit's bsums: g, g + 2, g + 4, g + 6 */
            ivec4 b0 = YBS4(g & ~3u), b1 = YBS4((g & ~3u) + 4);
            ivec4 ys = ivec4(b0[h2], b0[h2 + 2], b1[h2], b1[h2 + 2]);
            float dy = YD(t * nb + i);
            for (uint k = 0; k < NR; k++) {
                uint bb = rb[k] + i * 210;
                uint ql = bb + 64 * half_ + 16 * h2;
                uvec4 A = w16x(ql), B = w16x(ql + 32), C = w16x(bb + 128 + 32 * half_ + 16 * h2);
                uvec2 SC = w8x(bb + 192 + 8 * half_);
                float d = wh(bb + 208);
                const uint M4 = 0x0F0F0F0Fu, M2 = 0x03030303u;
                ivec4 s4 = ivec4(0);
                for (uint w = 0; w < 4; w++) {
                    uint a = A[w], b = B[w], c = C[w];
                    s4.x += dot4u((a & M4) | ((c & M2) << 4), y0[w]);
                    s4.y += dot4u((b & M4) | (((c >> 2) & M2) << 4), y1[w]);
                    s4.z += dot4u(((a >> 4) & M4) | (((c >> 4) & M2) << 4), y2[w]);
                    s4.w += dot4u(((b >> 4) & M4) | (((c >> 6) & M2) << 4), y3[w]);
                }
                /* (q - 32) * y summed: the 6-bit values minus 32 times the
                 * sum of y; place j's scale is byte h2 + 2j of the half's 8 */
                int sc0 = bitfieldExtract(int(SC.x), int(8 * h2), 8), sc1 = bitfieldExtract(int(SC.x), int(8 * h2 + 16), 8);
                int sc2 = bitfieldExtract(int(SC.y), int(8 * h2), 8), sc3 = bitfieldExtract(int(SC.y), int(8 * h2 + 16), 8);
                int isum = sc0 * (s4.x - 32 * ys.x) + sc1 * (s4.y - 32 * ys.y) + sc2 * (s4.z - 32 * ys.z) + sc3 * (s4.w - 32 * ys.w);
                acc[k] += (d * dy) * float(isum);
            }
        }
#else
#error "matvec.comp: define the weight type (W_F32, W_F16, W_Q4_0, W_Q8_0, W_Q4_K, W_Q5_K, W_Q6_K)"
#endif
        /* (setting the next group up and requesting its loads before the
         * sums were summed and stored was slower: more registers live) */
        uint cr0 = r0, cseg = seg, cnrows = nrows;
        float vs[NR];
        for (uint k = 0; k < NR; k++) vs[k] = group_sum(acc[k], sg, grp, lane);
        if (EPI == 1 && NR % 2 == 0) { /* (the host uses EPI 1 with NR even only) */
            for (uint k = 0; k < NR; k += 2)
                if (lane == 0 && cr0 + k < cnrows) rope_store(vs[k], vs[min(k + 1, NR - 1)], cr0 + k, cseg, t, cnrows);
        } else {
            for (uint k = 0; k < NR; k++) {
                float v = vs[k];
                uint r = cr0 + k;
                if (lane == 0 && r < cnrows) {
                    if (cseg == 0) {
                        uint oi = p.o_off + t * p.o_stride + r;
                        o[oi] = p.add != 0 ? o[oi] + v : v;
                    } else if (cseg == 1) {
                        o1[p.o_off1 + t * p.o_stride1 + r] = v;
                    } else {
                        o2[p.o_off2 + t * p.o_stride2 + r] = v;
                    }
                }
            }
        }
        gi += p.g_stride;
        if (gi >= p.n_groups) break;
        set_group(gi, grp);
#if defined(W_Q4_K)
        Q4K_FETCH(lane)
#endif
    }
    signal_done();
}
