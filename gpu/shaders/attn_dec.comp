#version 450
/* attn_dec.comp — the attention of one-token passes (decoding) over an F16
 * cache whose rows allow 16-byte loads, head_dim a multiple of 8, at most
 * 128: the same function as attn.comp (its bindings, push constants,
 * chunks and merge, attn_out.glsl), laid out for latency.
 *
 * A decoding step's attention reads little (a 7B layer's keys and values
 * at 128 positions: 2 MiB over 32 workgroups) and its time is a chain of
 * dependent steps. attn.comp's vector path waits for the query, then the
 * keys, then the values, and reduces each step's scores through shared
 * memory in loops over the step's positions. Here every load of a round is
 * issued at once, before the query is even in shared memory (the first
 * round's before the position and chunking are read from dyn, see main):
 *   - the keys with TPP = WG / RND invocations per position of the round
 *     (RND = 128), each holding a part of its row (nvec / TPP of its nvec =
 *     head_dim / 8 16-byte vectors), whose dot products meet once in
 *     shared memory;
 *   - the values with one 16-byte vector of a position per invocation,
 *     npg = WG / nvec positions side by side, each invocation walking
 *     nvec / TPP positions of the round;
 * the round's maximum and sum are workgroup reductions (subgroup
 * operations where the device has them), and the output's partial sums
 * meet in shared memory at the end. A decoding chunk is a round by
 * default (vk_backend.c, attn_chunks), so short contexts have one chunk,
 * no merge. Workgroups of 512 (TPP 4) keep each invocation's chain of
 * dependent instructions short: one workgroup of 128 per head, each
 * invocation scoring a whole row and walking nvec positions of values, was
 * slower on the H100 (docs/VULKAN.md).
 *
 * FRESH: as in attn.comp (kv_store's step here: RoPE of the query and the
 * new key, the position's key and value from shared memory as F16, the
 * first workgroup of each KV head storing them into the cache). The
 * arithmetic is the same with and without FRESH: only where the
 * position's key and value come from differs. */
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer KC4 { uvec4 kc4[]; };   /* 8 halves */
layout(std430, binding = 2) readonly buffer VC4 { uvec4 vc4[]; };
layout(std430, binding = 3) writeonly buffer O { float o[]; };
layout(std430, binding = 4) writeonly buffer PART { float part[]; }; /* [t][h][c][head_dim + 2] */
layout(std430, binding = 5) readonly buffer DYN { uint dyn[]; };
layout(std430, binding = 6) coherent buffer CNT { uint cnt[]; };
layout(std430, binding = 4) coherent readonly buffer PARTC { float partc[]; };
layout(constant_id = 12) const bool FRESH = false;
layout(std430, binding = 1) writeonly buffer KCW { uint16_t kcw[]; };
layout(std430, binding = 2) writeonly buffer VCW { uint16_t vcw[]; };
layout(std430, binding = 7) readonly buffer KN { float kn[]; };
layout(std430, binding = 8) readonly buffer VN { float vn[]; };
layout(std430, binding = 9) readonly buffer CSB { float csb[]; };

layout(push_constant) uniform P {
    uint n_head, n_head_kv, head_dim;
    uint q_off, q_stride;
    uint kv_off, kv_stride;
    uint o_off, o_stride;
    uint kv_f32;
    float scale;
    uint vec_ok;
    uint cnt_head;
    uint n_rot;
    uint dec_chunk;         /* (attn_dec) the chunk length dyn holds unless a long context needed longer ones */
    uint kv_bound;          /* (attn_dec) elements of the cache bound (its speculative loads stay below) */
    uint qout;              /* 1: the output also quantized to Q8_0 blocks (bindings 10, 11) */
    /* chained after Q/K/V without a barrier (FRESH only): wait until
     * counter sig_idx of binding 6 reaches sig_n (their workgroups), read
     * the fresh rows through coherent views; sig_n 0: a barrier came first */
    uint sig_idx, sig_n;
} p;
layout(std430, binding = 0) coherent readonly buffer QC { float qc[]; };
/* the wait polls with plain loads: atomics from every waiting workgroup on
 * one address queue up where the producers' own atomics go */
layout(std430, binding = 6) coherent volatile readonly buffer CNTV { uint cntv[]; };
layout(std430, binding = 7) coherent readonly buffer KNC { float knc[]; };
layout(std430, binding = 8) coherent readonly buffer VNC { float vnc[]; };

/* qout: the output projection's activations (Q8_0 or Q4_0 weights) as
 * act.comp would quantize them, so that the projection needs no prologue
 * (a block of 32 lies within a head: head_dim % 32 == 0, the host checks):
 * the quants four to a word, each block's scale rounded to F16 */
layout(std430, binding = 10) writeonly buffer AQW { uint aqw[]; };
layout(std430, binding = 11) writeonly buffer ADQ { float adq[]; };
shared float qam[WG];
shared int qq[WG];

/* Element e of the output (token 0's row: the output's offset is 0), value
 * v, held by invocation tid < head_dim (mine); every invocation calls it.
 * act_body.glsl's arithmetic: the block's largest |v|, d = max / 127, q =
 * round_away(v / d) (v times 1 / d). */
void qout_store(uint e, float v, bool mine) {
    if (p.qout == 0) return; /* uniform */
    uint tid = gl_LocalInvocationID.x, l = tid & 31u;
    qam[tid] = mine ? abs(v) : 0.0;
    barrier();
    for (uint s = 16; s > 0; s >>= 1) {
        if (l < s) qam[tid] = max(qam[tid], qam[tid + s]);
        barrier();
    }
    float dd = qam[tid - l] / 127.0;
    float f = dd != 0.0 ? 1.0 / dd : 0.0;
    qq[tid] = mine ? int(round_away(v * f)) : 0;
    barrier();
    if (mine && l == 0) adq[e / 32] = fp16_round(dd);
    if (mine && (tid & 3u) == 0) {
        uint word = 0;
        for (uint k = 0; k < 4; k++) word |= (uint(qq[tid + k]) & 0xffu) << (8 * k);
        aqw[e / 4] = word;
    }
}

#define ATTN_QOUT
#include "attn_out.glsl"

/* the 16-byte vectors of a head row the pipeline takes (head_dim <= 8 *
 * MAXV): 4, 8 or 16, a pipeline each (vk_ctx.c), so that the arrays hold
 * what the head uses and no more (one size for all, 16, spilled registers
 * for head_dim 64) */
layout(constant_id = 13) const uint MAXV = 16;
/* A round is RND positions; TPP = WG / RND invocations share each
 * position's score (a part of its key row each) and, as WG / nvec groups
 * side by side, the round's values: more, shorter chains of dependent
 * instructions than one invocation per position (a multiprocessor runs
 * one such workgroup, and one warp per scheduler exposes every latency).
 * The host picks WG, a multiple of RND, with nvec % TPP == 0 and WG %
 * nvec == 0. */
const uint RND = 128;
const uint TPP = WG / RND;
const uint NV = MAXV / TPP;      /* the key (and value) vectors an invocation holds, at most */

shared float qsh[8 * MAXV];
shared uint knh[FRESH ? 8 * MAXV : 1], vnh[FRESH ? 8 * MAXV : 1];
shared float ssh[RND];           /* the round's weights e^(s - M) */
shared float psc[WG];            /* partial scores [position][part]; later the output's partial sums */
shared float vsh[8 * WG];        /* partial outputs [position group][dimension] */
shared float rmax[WG], rsum[WG]; /* reductions across subgroups (or the tree) */

#define FRESH_VEC(a, v)                                                                         \
    uvec4(a[8 * (v)] | a[8 * (v) + 1] << 16, a[8 * (v) + 2] | a[8 * (v) + 3] << 16,               \
          a[8 * (v) + 4] | a[8 * (v) + 5] << 16, a[8 * (v) + 6] | a[8 * (v) + 7] << 16)
#include "attn_util.glsl"

/* the workgroup's maximum and sum; every invocation gets them (uniform
 * control flow; a barrier of the caller separates two calls' uses of the
 * shared arrays) */
float wg_max_(float v) {
#ifndef NO_SUBGROUP
    if (USE_SG) {
        float m = subgroupMax(v);
        if (subgroupElect()) rmax[gl_SubgroupID] = m;
        barrier();
        float r = rmax[0];
        for (uint i = 1; i < gl_NumSubgroups; i++) r = max(r, rmax[i]);
        return r;
    }
#endif
    uint i = gl_LocalInvocationID.x;
    rmax[i] = v;
    barrier();
    for (uint s = WG / 2; s > 0; s >>= 1) {
        if (i < s) rmax[i] = max(rmax[i], rmax[i + s]);
        barrier();
    }
    return rmax[0];
}
float wg_sum_(float v) {
#ifndef NO_SUBGROUP
    if (USE_SG) {
        float s = subgroupAdd(v);
        if (subgroupElect()) rsum[gl_SubgroupID] = s;
        barrier();
        float r = rsum[0];
        for (uint i = 1; i < gl_NumSubgroups; i++) r += rsum[i];
        return r;
    }
#endif
    uint i = gl_LocalInvocationID.x;
    rsum[i] = v;
    barrier();
    for (uint s = WG / 2; s > 0; s >>= 1) {
        if (i < s) rsum[i] += rsum[i + s];
        barrier();
    }
    return rsum[0];
}

void main() {
    uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, ch = gl_WorkGroupID.z, tid = gl_LocalInvocationID.x;
    uint hd = p.head_dim, nvec = hd / 8, kvp = nvec / TPP;
    uint pi = tid / TPP, qi = tid % TPP;                  /* scores: position pi of the round, part qi of its row */
    uint npg = WG / nvec, vec = tid % nvec, pg = tid / nvec; /* values: vector vec of positions pg + i * npg */
    uint kvh = h / (p.n_head / p.n_head_kv);
    uint qb = p.q_off + t * p.q_stride + h * hd;
    uint rs = p.kv_stride >> 3;                           /* a position's row, in vectors */
    uint kvb = (p.kv_off + kvh * hd) >> 3;                /* position 0's vector 0 */
    uint vbound = p.kv_bound >> 3;                        /* vectors bound */
    /* The first round's loads do not wait for dyn (the position and the
     * chunking, a load of their own): they read the chunk's RND positions
     * as if its length were dec_chunk, the usual case, within the bound
     * cache; positions past the causal limit are loaded but not used. */
    uvec4 kr[NV], vr[NV];
    uint ps = ch * p.dec_chunk;
    for (uint i = 0; i < NV; i++) {
        uint ki = kvb + (ps + pi) * rs + qi * kvp + i;
        kr[i] = i < kvp && ki < vbound ? kc4[ki] : uvec4(0);
    }
    for (uint i = 0; i < NV; i++) {
        uint vi = kvb + (ps + pg + i * npg) * rs + vec;
        vr[i] = i < kvp && vi < vbound ? vc4[vi] : uvec4(0);
    }
    uint pos0 = dyn[0], chunk = dyn[1], n_chunks = dyn[2];
    uint pos = pos0 + t;
    uint c0 = ch * chunk, c1 = min(c0 + chunk, pos + 1);  /* empty past the causal limit */
    const float NEG_INF = uintBitsToFloat(0xff800000u);
    float M = NEG_INF, S = 0.0;
    float a8[8] = float[8](0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (uint p0 = c0; p0 < c1; p0 += RND) {
        uint cn = min(RND, c1 - p0);
        if (p0 != ps) { /* uniform: a later round, or a chunk longer than dec_chunk */
            uint kb = kvb + (p0 + pi) * rs + qi * kvp;
            for (uint i = 0; i < NV; i++) kr[i] = i < kvp && pi < cn ? kc4[kb + i] : uvec4(0);
            for (uint i = 0; i < NV; i++) {
                uint c = pg + i * npg;
                vr[i] = i < kvp && c < cn ? vc4[kvb + (p0 + c) * rs + vec] : uvec4(0);
            }
        }
        if (p0 == c0) { /* uniform: the query (and FRESH's key and value) with the first round's loads in flight */
            if (FRESH) {
                uint nb = t * p.kv_stride + kvh * hd;
                if (p.sig_n != 0u) { /* uniform: chained (the cache's loads above are in flight meanwhile) */
                    if (tid == 0u)
                        while (cntv[p.sig_idx] < p.sig_n) {
                        }
                    barrier();
                    memoryBarrierBuffer();
                    for (uint d = tid; d < hd; d += WG) {
                        qsh[d] = fp16_round(ROPE_AT(qc, qb, d, t));
                        knh[d] = float_to_half_bits(ROPE_AT(knc, nb, d, t));
                        vnh[d] = float_to_half_bits(vnc[nb + d]);
                    }
                    /* the last workgroup past the wait sets both counters
                     * back to 0 for the next pass */
                    if (tid == 0u && atomicAdd(cnt[p.sig_idx + 1u], 1u) == p.n_head * n_chunks - 1u) {
                        atomicExchange(cnt[p.sig_idx], 0u);
                        atomicExchange(cnt[p.sig_idx + 1u], 0u);
                    }
                } else {
                    for (uint d = tid; d < hd; d += WG) {
                        qsh[d] = fp16_round(ROPE_AT(q, qb, d, t));
                        knh[d] = float_to_half_bits(ROPE_AT(kn, nb, d, t));
                        vnh[d] = float_to_half_bits(vn[nb + d]);
                    }
                }
                barrier();
                /* the cache keeps them for the next tokens: one workgroup
                 * per KV head, the one whose chunk holds the position */
                if (h % (p.n_head / p.n_head_kv) == 0 && pos >= ch * chunk && pos < ch * chunk + chunk)
                    for (uint d = tid; d < hd; d += WG) {
                        uint ci = p.kv_off + pos * p.kv_stride + kvh * hd + d;
                        kcw[ci] = uint16_t(knh[d]);
                        vcw[ci] = uint16_t(vnh[d]);
                    }
            } else {
                for (uint d = tid; d < hd; d += WG) qsh[d] = fp16_round(q[qb + d]);
            }
            barrier();
        }
        if (FRESH) { /* the position being added is not in the cache yet */
            if (p0 + pi == pos)
                for (uint i = 0; i < NV; i++) kr[i] = i < kvp ? FRESH_VEC(knh, qi * kvp + i) : uvec4(0);
            for (uint i = 0; i < NV; i++)
                if (i < kvp && p0 + pg + i * npg == pos) vr[i] = FRESH_VEC(vnh, vec);
        }
        /* the scores: each part's dot product, then position tid's sum of
         * its parts (in order) */
        float sp = 0.0;
        for (uint i = 0; i < NV; i++)
            if (i < kvp) sp += dot8(kr[i], 8 * (qi * kvp + i));
        psc[tid] = sp;
        barrier();
        float s = NEG_INF;
        if (tid < cn) {
            float a = 0.0;
            for (uint k = 0; k < TPP; k++) a += psc[tid * TPP + k];
            s = a * p.scale;
        }
        float Mn = max(M, wg_max_(s));
        float ms = exp(M - Mn);     /* 0 on the first round (M = -inf) */
        float e = tid < cn ? exp(s - Mn) : 0.0;
        if (tid < RND) ssh[tid] = e;
        S = S * ms + wg_sum_(e);    /* (its barrier also publishes ssh) */
        for (uint j = 0; j < 8; j++) a8[j] *= ms;
        for (uint i = 0; i < NV; i++) {
            uint c = pg + i * npg;
            if (i < kvp && c < cn) {
                float w = ssh[c];
                for (uint j = 0; j < 4; j++) {
                    vec2 ev = unpackHalf2x16(vr[i][j]);
                    a8[2 * j] += w * ev.x;
                    a8[2 * j + 1] += w * ev.y;
                }
            }
        }
        M = Mn;
        barrier(); /* psc, ssh, rmax and rsum are rewritten by the next round */
    }
    /* the output: the position groups' partial sums, in two steps (WG / hd
     * parts of npg * nvec / WG = 8 groups each, then the parts), in order */
    for (uint j = 0; j < 8; j++) vsh[pg * hd + 8 * vec + j] = a8[j];
    barrier();
    uint parts = WG / hd, d = tid % hd, part = tid / hd;
    {
        float a = 0.0;
        for (uint k = 0; k < 8; k++) a += vsh[(part * 8 + k) * hd + d];
        psc[part * hd + d] = a;
    }
    barrier();
    float acc[4] = float[4](0.0, 0.0, 0.0, 0.0);
    if (tid < hd) {
        float a = 0.0;
        for (uint k = 0; k < parts; k++) a += psc[k * hd + tid];
        acc[0] = a;
    }
    attn_out(acc, M, S, t, h, ch, n_chunks);
}
