#version 450
/* Attention for prompt batches: NQ consecutive tokens of one head per
 * workgroup, so that every key and value row read from the cache serves NQ
 * queries (attn.comp, one token a workgroup, read the whole cache once per
 * token and head: 14-15% of a llama2-7b prompt pass on an H100).
 *
 * Workgroup (h, tile): tokens t0 .. t0 + NQ - 1 of head h, causal (token t
 * sees positions 0 .. pos0 + t). Positions go in steps of KT: the step's
 * keys into shared memory (F16, 16-byte rows padded by one vector so that
 * a quarter subgroup's 16-byte reads hit distinct banks), every (query,
 * position) score, then per query the online-softmax update (the running
 * maximum M and sum S, the factor e^(M_old - M_new) for the outputs), then
 * the step's values into the same shared memory and every (query, 8
 * dimensions) output accumulates its weighted values. Queries are rounded
 * to F16 as the CPU does for an F16 cache; everything else is F32.
 *
 * Only for an F16 cache whose rows allow 16-byte loads and head_dim a
 * multiple of 8 up to 128 (the host checks; otherwise attn.comp). Bindings
 * as attn.comp's (0 queries, 1 keys, 2 values, 3 output, 5 dyn: the pass's
 * first position). */
#extension GL_GOOGLE_include_directive : require
#include "half.glsl"

layout(local_size_x = 128) in;
const uint NT = 128;   /* invocations */
const uint NQ = 16;    /* tokens a workgroup */
const uint KT = 64;    /* positions a step */
const uint HV = 16;    /* at most head_dim / 8 vectors a row (head_dim <= 128) */
const uint RS = HV + 1;

layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer KC4 { uvec4 kc4[]; };
layout(std430, binding = 2) readonly buffer VC4 { uvec4 vc4[]; };
layout(std430, binding = 3) writeonly buffer O { float o[]; };
layout(std430, binding = 5) readonly buffer DYN { uint dyn[]; };

layout(push_constant) uniform P {
    uint n_head, n_head_kv, head_dim;
    uint q_off, q_stride;   /* token t's queries at q_off + t * q_stride */
    uint kv_off, kv_stride; /* position j's row of this layer at kv_off + j * kv_stride (halves) */
    uint o_off, o_stride;
    uint n_tok;
    float scale;
} p;

shared uvec4 kv[KT * RS];      /* the step's keys, then its values */
shared float qs[NQ * HV * 8];  /* the queries, [query][dimension] */
shared float ps[NQ * KT];      /* scores, then weights e^(s - M) */
shared float mq[NQ], sq[NQ], fq[NQ];  /* running maximum, sum; this step's rescale factor */

float dot8(uvec4 k, uint qb) {
    vec2 a = unpackHalf2x16(k.x), b = unpackHalf2x16(k.y), c = unpackHalf2x16(k.z), e = unpackHalf2x16(k.w);
    return a.x * qs[qb] + a.y * qs[qb + 1] + b.x * qs[qb + 2] + b.y * qs[qb + 3] +
           c.x * qs[qb + 4] + c.y * qs[qb + 5] + e.x * qs[qb + 6] + e.y * qs[qb + 7];
}

void main() {
    uint h = gl_WorkGroupID.x, t0 = gl_WorkGroupID.y * NQ, tid = gl_LocalInvocationID.x;
    uint hd = p.head_dim, nv = hd / 8;
    uint kvh = h / (p.n_head / p.n_head_kv);
    uint nq = min(NQ, p.n_tok - t0);
    uint pos0 = dyn[0];
    uint plast = pos0 + t0 + nq - 1;              /* the last position any of the tokens sees */
    const float NEG_INF = uintBitsToFloat(0xff800000u);

    for (uint i = tid; i < NQ * HV * 8; i += NT) {
        uint qi = i / (HV * 8), d = i % (HV * 8);
        qs[i] = qi < nq && d < hd ? fp16_round(q[p.q_off + (t0 + qi) * p.q_stride + h * hd + d]) : 0.0;
    }
    if (tid < NQ) {
        mq[tid] = NEG_INF;
        sq[tid] = 0.0;
    }
    /* outputs: pair j = tid + k NT is query j / HV, dimensions 8 (j % HV) .. +7 */
    const uint NP = NQ * HV / NT;
    float acc[NP][8];
    for (uint k = 0; k < NP; k++)
        for (uint e = 0; e < 8; e++) acc[k][e] = 0.0;

    uint kvb = (p.kv_off + kvh * hd) >> 3, rs = p.kv_stride >> 3;   /* in vectors */
    for (uint p0 = 0; p0 <= plast; p0 += KT) {
        uint cn = min(KT, plast + 1 - p0);
        barrier();   /* the previous step's values are read */
        for (uint i = tid; i < KT * HV; i += NT) {
            uint c = i / HV, v = i % HV;
            if (c < cn && v < nv) kv[c * RS + v] = kc4[kvb + (p0 + c) * rs + v];
        }
        barrier();
        for (uint j = tid; j < NQ * KT; j += NT) {
            uint qi = j / KT, c = j % KT;
            float s = NEG_INF;
            if (qi < nq && c < cn && p0 + c <= pos0 + t0 + qi) {
                float a = 0.0;
                for (uint v = 0; v < nv; v++) a += dot8(kv[c * RS + v], qi * HV * 8 + 8 * v);
                s = a * p.scale;
            }
            ps[j] = s;
        }
        barrier();
        if (tid < NQ) {
            uint qi = tid;
            float M = mq[qi], mb = NEG_INF;
            for (uint c = 0; c < cn; c++) mb = max(mb, ps[qi * KT + c]);
            float Mn = max(M, mb);
            if (Mn == NEG_INF) {       /* nothing seen yet (a token past the batch) */
                for (uint c = 0; c < cn; c++) ps[qi * KT + c] = 0.0;
                fq[qi] = 1.0;
            } else {
                float sum = 0.0;
                for (uint c = 0; c < cn; c++) {
                    float w = exp(ps[qi * KT + c] - Mn);   /* 0 for masked positions */
                    ps[qi * KT + c] = w;
                    sum += w;
                }
                float f = exp(M - Mn);   /* 0 on the first step (M = -inf) */
                sq[qi] = sq[qi] * f + sum;
                mq[qi] = Mn;
                fq[qi] = f;
            }
        }
        for (uint i = tid; i < KT * HV; i += NT) {
            uint c = i / HV, v = i % HV;
            if (c < cn && v < nv) kv[c * RS + v] = vc4[kvb + (p0 + c) * rs + v];
        }
        barrier();
        for (uint k = 0; k < NP; k++) {
            uint j = tid + k * NT, qi = j / HV, v = j % HV;
            if (v >= nv) continue;
            float f = fq[qi];
            for (uint e = 0; e < 8; e++) acc[k][e] *= f;
            for (uint c = 0; c < cn; c++) {
                float w = ps[qi * KT + c];
                uvec4 x = kv[c * RS + v];
                vec2 a = unpackHalf2x16(x.x), b = unpackHalf2x16(x.y), cc = unpackHalf2x16(x.z), d = unpackHalf2x16(x.w);
                acc[k][0] += w * a.x; acc[k][1] += w * a.y; acc[k][2] += w * b.x; acc[k][3] += w * b.y;
                acc[k][4] += w * cc.x; acc[k][5] += w * cc.y; acc[k][6] += w * d.x; acc[k][7] += w * d.y;
            }
        }
    }
    barrier();
    for (uint k = 0; k < NP; k++) {
        uint j = tid + k * NT, qi = j / HV, v = j % HV;
        if (qi >= nq || v >= nv) continue;
        float S = sq[qi], inv = S == 0.0 ? 0.0 : 1.0 / S;
        uint ob = p.o_off + (t0 + qi) * p.o_stride + h * hd + 8 * v;
        for (uint e = 0; e < 8; e++) o[ob + e] = acc[k][e] * inv;
    }
}
