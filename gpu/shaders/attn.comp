#version 450
/* Attention of one (token, head) over the KV cache, positions 0..pos0+t
 * (causal): softmax(q K^T * scale) V, with the query rounded to F16 for an
 * F16 cache (as the CPU backend does) and everything else in F32.
 *
 * Flash-decoding: the positions are cut into n_chunks chunks of `chunk`
 * and workgroup (h, t, c) walks chunk c alone, so that a
 * long context keeps the whole GPU busy even for one token. With one chunk
 * the result is written normalized; with more, each chunk writes its
 * maximum score M, its sum S and its unnormalized output to part[], and
 * the chunk that finishes last merges them (attn_out.glsl).
 *
 * Inside a chunk, positions are taken WG at a time: each invocation scores
 * one position (16-byte loads of its key row where rows are aligned), the
 * step's maximum and e^(s - M) go through shared memory, then every
 * invocation adds the weighted values for its own dimensions d = tid + k *
 * WG (so the head dimension may be up to 4 * WG): the value loads of a
 * step do not depend on each other, so they are all in flight at once (the
 * earlier version, one online-softmax update per position, waited for each
 * load in turn). */
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer KC16 { uint16_t kc16[]; };
layout(std430, binding = 1) readonly buffer KC32 { float kc32[]; };
layout(std430, binding = 1) readonly buffer KC4 { uvec4 kc4[]; };   /* 8 halves or 4 floats */
layout(std430, binding = 2) readonly buffer VC16 { uint16_t vc16[]; };
layout(std430, binding = 2) readonly buffer VC32 { float vc32[]; };
layout(std430, binding = 2) readonly buffer VC4 { uvec4 vc4[]; };   /* 8 halves */
layout(std430, binding = 3) writeonly buffer O { float o[]; };
layout(std430, binding = 4) writeonly buffer PART { float part[]; }; /* [t][h][c][head_dim + 2] */
/* the pass's first position, chunk length and chunk count (also the
 * indirect dispatch's z), written by the host each pass, so that a recorded
 * command buffer replays unchanged (vk_backend.c, "Replay") */
layout(std430, binding = 5) readonly buffer DYN { uint dyn[]; };
layout(std430, binding = 6) coherent buffer CNT { uint cnt[]; };
layout(std430, binding = 4) coherent readonly buffer PARTC { float partc[]; };  /* the other chunks' partials */
/* FRESH (one-token passes whose Q, K and V were computed apart, decoding):
 * kv_store's step here. The queries (binding 0) and the new key (binding 7)
 * are not rotated yet and the new key and value (binding 8) are not in the
 * cache: RoPE with the table in binding 9, exactly as kv_store.comp does;
 * the position's key and value come from shared memory as F16, and the
 * first workgroup of each KV head stores them into the cache for the next
 * tokens. A dispatch and a barrier fewer per such layer. */
/* (a specialization constant: the pipeline of prompts and of fused layers
 * carries none of it) */
layout(constant_id = 12) const bool FRESH = false;
layout(std430, binding = 1) writeonly buffer KCW { uint16_t kcw[]; };
layout(std430, binding = 2) writeonly buffer VCW { uint16_t vcw[]; };
layout(std430, binding = 7) readonly buffer KN { float kn[]; };
layout(std430, binding = 8) readonly buffer VN { float vn[]; };
layout(std430, binding = 9) readonly buffer CSB { float csb[]; };

layout(push_constant) uniform P {
    uint n_head, n_head_kv, head_dim;
    uint q_off, q_stride;   /* token t's queries at q_off + t * q_stride */
    uint kv_off, kv_stride; /* position j's row of this layer at kv_off + j * kv_stride */
    uint o_off, o_stride;
    uint kv_f32;
    float scale;
    uint vec_ok;            /* key rows (kv_off, kv_stride, head_dim) allow 16-byte loads; 2: and the vector path */
    uint cnt_head;          /* counters: (head, token) at cnt_head + t * n_head + h */
    uint n_rot;             /* (FRESH) */
    uint dec_chunk;         /* (attn_dec) the chunk length dyn holds unless a long context needed longer ones */
    uint kv_bound;          /* (attn_dec) elements of the cache bound (its speculative loads stay below) */
} p;

#include "attn_out.glsl"

shared float qsh[4 * WG];
shared float ssh[WG];
shared float smax[WG];
/* the F16 path by 16-byte vectors (see main): partial scores [position][vector]
 * and partial outputs [position group][dimension] */
shared float psc[WG * 32];
shared float vsh[WG * 8];
shared uint knh[FRESH ? 256 : 1], vnh[FRESH ? 256 : 1];  /* FRESH: the position's key and value, F16 bits (head_dim <= 256 on that path) */

/* fresh: the 8 halves of vector v of the position's key or value (a
 * function: written as a macro taking the shared array, the prompt
 * pipeline, where FRESH is off, compiled slower on the H100: llama2-7b
 * pp512 4578-4597 vs 4643-4679 tok/s) */
uvec4 fresh_vec(bool key, uint v) {
    uint b = 8 * v;
    return key ? uvec4(knh[b] | knh[b + 1] << 16, knh[b + 2] | knh[b + 3] << 16, knh[b + 4] | knh[b + 5] << 16, knh[b + 6] | knh[b + 7] << 16)
               : uvec4(vnh[b] | vnh[b + 1] << 16, vnh[b + 2] | vnh[b + 3] << 16, vnh[b + 4] | vnh[b + 5] << 16, vnh[b + 6] | vnh[b + 7] << 16);
}

#include "attn_util.glsl"

float kval(uint i) { return p.kv_f32 != 0 ? kc32[i] : half_bits_to_float(uint(kc16[i])); }
float vval(uint i) { return p.kv_f32 != 0 ? vc32[i] : half_bits_to_float(uint(vc16[i])); }

/* q . K[row at kb] */
float score(uint kb, uint hd) {
    float s = 0.0;
    if (p.vec_ok != 0) {
        if (p.kv_f32 != 0) {
            for (uint d = 0; d < hd; d += 4) {
                vec4 k = uintBitsToFloat(kc4[(kb + d) >> 2]);
                s += k.x * qsh[d] + k.y * qsh[d + 1] + k.z * qsh[d + 2] + k.w * qsh[d + 3];
            }
        } else {
            /* 32 dimensions a step (hd % 8 == 0: a shorter last step) */
            float s1 = 0.0, s2 = 0.0, s3 = 0.0;
            for (uint d = 0; d < hd; d += 32) {
                uvec4 k0 = kc4[(kb + d) >> 3];
                uvec4 k1 = d + 8 < hd ? kc4[(kb + d + 8) >> 3] : uvec4(0);
                uvec4 k2 = d + 16 < hd ? kc4[(kb + d + 16) >> 3] : uvec4(0);
                uvec4 k3 = d + 24 < hd ? kc4[(kb + d + 24) >> 3] : uvec4(0);
                s += dot8(k0, d);
                if (d + 8 < hd) s1 += dot8(k1, d + 8);
                if (d + 16 < hd) s2 += dot8(k2, d + 16);
                if (d + 24 < hd) s3 += dot8(k3, d + 24);
            }
            s += (s1 + s2) + s3;
        }
        return s;
    }
    for (uint d = 0; d < hd; d++) s += kval(kb + d) * qsh[d];
    return s;
}

void main() {
    uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, ch = gl_WorkGroupID.z, tid = gl_LocalInvocationID.x;
    uint hd = p.head_dim;
    uint kvh = h / (p.n_head / p.n_head_kv);
    uint pos0 = dyn[0], chunk = dyn[1], n_chunks = dyn[2];
    uint pos = pos0 + t;
    uint qb = p.q_off + t * p.q_stride + h * hd;
    if (FRESH) { /* uniform */
        uint kb = t * p.kv_stride + kvh * hd;
        for (uint d = tid; d < hd; d += WG) {
            qsh[d] = fp16_round(ROPE_AT(q, qb, d, t));
            knh[d] = float_to_half_bits(ROPE_AT(kn, kb, d, t));
            vnh[d] = float_to_half_bits(vn[kb + d]);
        }
        barrier();
        /* the cache keeps them for the next tokens: one workgroup per KV
         * head, the one whose chunk holds the position */
        if (h % (p.n_head / p.n_head_kv) == 0 && pos >= ch * chunk && pos < ch * chunk + chunk)
            for (uint d = tid; d < hd; d += WG) {
                uint ci = p.kv_off + pos * p.kv_stride + kvh * hd + d;
                kcw[ci] = uint16_t(knh[d]);
                vcw[ci] = uint16_t(vnh[d]);
            }
    } else {
        for (uint d = tid; d < hd; d += WG) qsh[d] = p.kv_f32 != 0 ? q[qb + d] : fp16_round(q[qb + d]);
    }
    barrier();
    const float NEG_INF = uintBitsToFloat(0xff800000u);
    float acc[4] = float[4](0.0, 0.0, 0.0, 0.0);
    float M = NEG_INF, S = 0.0;
    uint kvb = p.kv_off + kvh * hd;
    uint c0 = ch * chunk, c1 = min(c0 + chunk, pos + 1);  /* empty past the causal limit */
    /* F16 cache with 16-byte rows (the usual case): each invocation owns
     * one 16-byte vector (8 dimensions) of every npg-th position of a step,
     * so that keys and values are read 16 bytes at a time, four positions'
     * loads in flight; the partial scores and outputs meet in shared
     * memory. (The general path below scores one position per invocation
     * and reads the values 2 bytes a load.) */
    uint nvec = hd / 8;
    bool fast = p.vec_ok == 2 && p.kv_f32 == 0 && nvec <= 32 && nvec <= WG && WG % nvec == 0;  /* uniform */
    if (fast) {
        uint npg = WG / nvec, vec = tid % nvec, pg = tid / nvec, dv = 8 * vec;
        float a8[8] = float[8](0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        for (uint p0 = c0; p0 < c1; p0 += WG) {
            uint cn = min(WG, c1 - p0);
            uint rb = (kvb + p0 * p.kv_stride + dv) >> 3, rs = p.kv_stride >> 3;  /* in vectors */
            for (uint c = pg; c < cn; c += 4 * npg) {
                uvec4 k0 = kc4[rb + c * rs];
                uvec4 k1 = c + npg < cn ? kc4[rb + (c + npg) * rs] : uvec4(0);
                uvec4 k2 = c + 2 * npg < cn ? kc4[rb + (c + 2 * npg) * rs] : uvec4(0);
                uvec4 k3 = c + 3 * npg < cn ? kc4[rb + (c + 3 * npg) * rs] : uvec4(0);
                if (FRESH) { /* the position being added is not in the cache */
                    uint pc = pos - p0;
                    if (c == pc) k0 = fresh_vec(true, vec);
                    if (c + npg == pc) k1 = fresh_vec(true, vec);
                    if (c + 2 * npg == pc) k2 = fresh_vec(true, vec);
                    if (c + 3 * npg == pc) k3 = fresh_vec(true, vec);
                }
                psc[c * nvec + vec] = dot8(k0, dv);
                if (c + npg < cn) psc[(c + npg) * nvec + vec] = dot8(k1, dv);
                if (c + 2 * npg < cn) psc[(c + 2 * npg) * nvec + vec] = dot8(k2, dv);
                if (c + 3 * npg < cn) psc[(c + 3 * npg) * nvec + vec] = dot8(k3, dv);
            }
            barrier();
            float s = NEG_INF;
            if (tid < cn) {
                float a = 0.0;
                for (uint v = 0; v < nvec; v++) a += psc[tid * nvec + v];
                s = a * p.scale;
            }
            smax[tid] = s;
            barrier();
            float mb = NEG_INF;
            for (uint c = 0; c < cn; c++) mb = max(mb, smax[c]);
            float Mn = max(M, mb);
            float ms = exp(M - Mn);     /* 0 on the first step (M = -inf) */
            ssh[tid] = tid < cn ? exp(s - Mn) : 0.0;
            barrier();
            float ps = 0.0;
            for (uint c = 0; c < cn; c++) ps += ssh[c];
            S = S * ms + ps;
            for (uint j = 0; j < 8; j++) a8[j] *= ms;
            for (uint c = pg; c < cn; c += 4 * npg) {
                uvec4 v0 = vc4[rb + c * rs];
                uvec4 v1 = c + npg < cn ? vc4[rb + (c + npg) * rs] : uvec4(0);
                uvec4 v2 = c + 2 * npg < cn ? vc4[rb + (c + 2 * npg) * rs] : uvec4(0);
                uvec4 v3 = c + 3 * npg < cn ? vc4[rb + (c + 3 * npg) * rs] : uvec4(0);
                if (FRESH) {
                    uint pc = pos - p0;
                    if (c == pc) v0 = fresh_vec(false, vec);
                    if (c + npg == pc) v1 = fresh_vec(false, vec);
                    if (c + 2 * npg == pc) v2 = fresh_vec(false, vec);
                    if (c + 3 * npg == pc) v3 = fresh_vec(false, vec);
                }
                float w0 = ssh[c];
                float w1 = c + npg < cn ? ssh[c + npg] : 0.0;
                float w2 = c + 2 * npg < cn ? ssh[c + 2 * npg] : 0.0;
                float w3 = c + 3 * npg < cn ? ssh[c + 3 * npg] : 0.0;
                for (uint j = 0; j < 4; j++) {
                    vec2 e0 = unpackHalf2x16(v0[j]), e1 = unpackHalf2x16(v1[j]), e2 = unpackHalf2x16(v2[j]), e3 = unpackHalf2x16(v3[j]);
                    a8[2 * j] += (w0 * e0.x + w1 * e1.x) + (w2 * e2.x + w3 * e3.x);
                    a8[2 * j + 1] += (w0 * e0.y + w1 * e1.y) + (w2 * e2.y + w3 * e3.y);
                }
            }
            M = Mn;
            barrier();
        }
        for (uint j = 0; j < 8; j++) vsh[pg * hd + dv + j] = a8[j];
        barrier();
        for (uint k = 0; k < 4; k++) {
            uint d = tid + k * WG;
            if (d < hd) {
                float a = 0.0;
                for (uint g = 0; g < npg; g++) a += vsh[g * hd + d];
                acc[k] = a;
            }
        }
    } else {
        for (uint p0 = c0; p0 < c1; p0 += WG) {
            uint j = p0 + tid;
            float s = j < c1 ? score(kvb + j * p.kv_stride, hd) * p.scale : NEG_INF;
            smax[tid] = s;
            barrier();
            uint cn = min(WG, c1 - p0);
            float mb = NEG_INF;
            for (uint c = 0; c < cn; c++) mb = max(mb, smax[c]);
            float Mn = max(M, mb);
            float ms = exp(M - Mn);     /* 0 on the first step (M = -inf) */
            ssh[tid] = j < c1 ? exp(s - Mn) : 0.0;
            barrier();
            float ps = 0.0;
            for (uint c = 0; c < cn; c++) ps += ssh[c];
            S = S * ms + ps;
            for (uint k = 0; k < 4; k++) acc[k] *= ms;
            uint vb = kvb + p0 * p.kv_stride;
            for (uint k = 0; k < 4; k++) {
                uint d = tid + k * WG;
                if (d < hd) {
                    /* four positions a step, four sums: the loads of a step
                     * are issued together */
                    float a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
                    uint c = 0, st = p.kv_stride;
                    for (; c + 4 <= cn; c += 4) {
                        uint vi = vb + c * st + d;
                        a0 += ssh[c] * vval(vi);
                        a1 += ssh[c + 1] * vval(vi + st);
                        a2 += ssh[c + 2] * vval(vi + 2 * st);
                        a3 += ssh[c + 3] * vval(vi + 3 * st);
                    }
                    for (; c < cn; c++) a0 += ssh[c] * vval(vb + c * st + d);
                    acc[k] += (a0 + a1) + (a2 + a3);
                }
            }
            M = Mn;
            barrier();
        }
    }
    attn_out(acc, M, S, t, h, ch, n_chunks);
}
