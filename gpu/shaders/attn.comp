#version 450
/* Attention of one (token, head) over the KV cache, positions 0..pos0+t
 * (causal), in one pass with an online softmax. The arithmetic mirrors the
 * CPU backend's (itself llama.cpp's CPU flash attention): with an F16 cache
 * the query is rounded to F16 for the K dot products and the weighted sum of
 * V accumulates in F16, rounded after every step; with an F32 cache all is
 * F32.
 *
 * Flash-decoding: the positions are cut into n_chunks chunks of `chunk`
 * (a multiple of WG) and workgroup (h, t, c) walks chunk c alone, so that a
 * long context keeps the whole GPU busy even for one token. With one chunk
 * the result is written normalized, exactly as a single pass; with more,
 * each chunk writes its running maximum M, its sum S and its unnormalized
 * output to part[] and attn_combine.comp merges them (in F32).
 *
 * Inside a chunk, positions are taken WG at a time: each invocation scores
 * one position into shared memory, then every invocation runs the online
 * softmax over them for its own dimensions d = tid + k * WG (so the head
 * dimension may be up to 4 * WG). */
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer KC16 { uint16_t kc16[]; };
layout(std430, binding = 1) readonly buffer KC32 { float kc32[]; };
layout(std430, binding = 2) readonly buffer VC16 { uint16_t vc16[]; };
layout(std430, binding = 2) readonly buffer VC32 { float vc32[]; };
layout(std430, binding = 3) writeonly buffer O { float o[]; };
layout(std430, binding = 4) writeonly buffer PART { float part[]; }; /* [t][h][c][head_dim + 2] */

layout(push_constant) uniform P {
    uint n_head, n_head_kv, head_dim, pos0;
    uint q_off, q_stride;   /* token t's queries at q_off + t * q_stride */
    uint kv_off, kv_stride; /* position j's row of this layer at kv_off + j * kv_stride */
    uint o_off, o_stride;
    uint kv_f32;
    float scale;
    uint chunk, n_chunks;
} p;

shared float qsh[4 * WG];
shared float ssh[WG];

float kval(uint i) { return p.kv_f32 != 0 ? kc32[i] : half_bits_to_float(uint(kc16[i])); }
float vval(uint i) { return p.kv_f32 != 0 ? vc32[i] : half_bits_to_float(uint(vc16[i])); }

void main() {
    uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, ch = gl_WorkGroupID.z, tid = gl_LocalInvocationID.x;
    uint hd = p.head_dim;
    uint kvh = h / (p.n_head / p.n_head_kv);
    uint pos = p.pos0 + t;
    uint qb = p.q_off + t * p.q_stride + h * hd;
    for (uint d = tid; d < hd; d += WG) qsh[d] = p.kv_f32 != 0 ? q[qb + d] : fp16_round(q[qb + d]);
    barrier();
    float acc[4] = float[4](0.0, 0.0, 0.0, 0.0);
    float M = uintBitsToFloat(0xff800000u), S = 0.0;
    uint kvb = p.kv_off + kvh * hd;
    uint c0 = ch * p.chunk, c1 = min(c0 + p.chunk, pos + 1);  /* empty past the causal limit */
    for (uint p0 = c0; p0 < c1; p0 += WG) {
        uint j = p0 + tid;
        float s = 0.0;
        if (j < c1) {
            uint kb = kvb + j * p.kv_stride;
            for (uint d = 0; d < hd; d++) s += kval(kb + d) * qsh[d];
        }
        ssh[tid] = s * p.scale;
        barrier();
        uint cn = min(WG, c1 - p0);
        for (uint c = 0; c < cn; c++) {
            float sc = ssh[c];
            float ms = 1.0, vs = 1.0;
            uint vb = kvb + (p0 + c) * p.kv_stride;
            if (sc > M) {
                float Mold = M;
                M = sc;
                ms = exp(Mold - M);
                for (uint k = 0; k < 4; k++) {
                    precise float a = acc[k] * ms;
                    acc[k] = p.kv_f32 != 0 ? a : fp16_round(a);
                }
            } else {
                vs = exp(sc - M);
            }
            for (uint k = 0; k < 4; k++) {
                uint d = tid + k * WG;
                if (d < hd) {
                    precise float a = fma(vval(vb + d), vs, acc[k]);
                    acc[k] = p.kv_f32 != 0 ? a : fp16_round(a);
                }
            }
            precise float S2 = S * ms + vs;
            S = S2;
        }
        barrier();
    }
    if (p.n_chunks > 1) {
        uint pb = ((t * p.n_head + h) * p.n_chunks + ch) * (hd + 2);
        for (uint k = 0; k < 4; k++) {
            uint d = tid + k * WG;
            if (d < hd) part[pb + d] = acc[k];
        }
        if (tid == 0) {
            part[pb + hd] = M;
            part[pb + hd + 1] = S;
        }
        return;
    }
    float inv = S == 0.0 ? 0.0 : 1.0 / S;
    uint ob = p.o_off + t * p.o_stride + h * hd;
    for (uint k = 0; k < 4; k++) {
        uint d = tid + k * WG;
        if (d < hd) o[ob + d] = acc[k] * inv;
    }
}
