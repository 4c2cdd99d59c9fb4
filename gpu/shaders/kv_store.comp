#version 450
/* The batch's keys (with RoPE, as rope_q.comp) and values into the KV cache
 * of one layer, as F16 (kv_f32 = 0) or F32. One invocation per element of
 * [n_tok][n_embd_kv]. */
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer K { float k[]; };
layout(std430, binding = 1) readonly buffer V { float v[]; };
layout(std430, binding = 2) readonly buffer CS { float cs[]; };
layout(std430, binding = 3) writeonly buffer KC16 { uint16_t kc16[]; };
layout(std430, binding = 3) writeonly buffer KC32 { float kc32[]; };
layout(std430, binding = 4) writeonly buffer VC16 { uint16_t vc16[]; };
layout(std430, binding = 4) writeonly buffer VC32 { float vc32[]; };

layout(push_constant) uniform P {
    uint n_kv;       /* elements per token: n_head_kv * head_dim */
    uint head_dim, n_rot, n_tok;
    uint k_off, v_off, stride;  /* token t of k at k_off + t * stride */
    uint cache_off;  /* element of (this layer, position pos0) in the cache ranges */
    uint kv_f32, gx;
} p;

void main() {
    uint gid = group_index(p.gx) * WG + gl_LocalInvocationID.x;
    if (gid >= p.n_tok * p.n_kv) return;
    uint t = gid / p.n_kv, e = gid % p.n_kv;
    uint j = e % p.head_dim;
    uint kb = p.k_off + t * p.stride;
    float kv = k[kb + e];
    if (j < p.n_rot) {
        uint e0 = e & ~1u;
        float c = cs[t * p.n_rot + (j & ~1u)], s = cs[t * p.n_rot + (j & ~1u) + 1];
        float x0 = k[kb + e0], x1 = k[kb + e0 + 1];
        precise float y = (j & 1u) == 0 ? x0 * c - x1 * s : x0 * s + x1 * c;
        kv = y;
    }
    float vv = v[p.v_off + t * p.stride + e];
    uint ci = p.cache_off + t * p.n_kv + e;
    if (p.kv_f32 != 0) {
        kc32[ci] = kv;
        vc32[ci] = vv;
    } else {
        kc16[ci] = uint16_t(float_to_half_bits(kv));
        vc16[ci] = uint16_t(float_to_half_bits(vv));
    }
}
