#version 450
/* RoPE on the queries (in place) and the batch's keys (with RoPE) and
 * values into the KV cache of one layer, as F16 (kv_f32 = 0) or F32, in one
 * dispatch (one launch and barrier fewer per layer than two kernels).
 * llama "normal" RoPE: adjacent pairs (2i, 2i+1) of each head rotate by the
 * angle whose cos/sin the host computed for the token (cs[t][2i],
 * cs[t][2i+1]: built exactly as the CPU backend builds them, by repeated
 * float multiplication); partial rotary (n_rot < head_dim) leaves the rest.
 * Invocations [0, n_tok * n_kv): one element of the keys/values each; the
 * next n_tok * n_head * n_rot / 2: one query pair each. */
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(std430, binding = 0) readonly buffer K { float k[]; };
layout(std430, binding = 1) readonly buffer V { float v[]; };
layout(std430, binding = 2) readonly buffer CS { float cs[]; };
layout(std430, binding = 3) writeonly buffer KC16 { uint16_t kc16[]; };
layout(std430, binding = 3) writeonly buffer KC32 { float kc32[]; };
layout(std430, binding = 4) writeonly buffer VC16 { uint16_t vc16[]; };
layout(std430, binding = 4) writeonly buffer VC32 { float vc32[]; };
layout(std430, binding = 5) buffer Q { float q[]; };
/* the pass's position (written by the host each pass, so that a recorded
 * command buffer replays unchanged: vk_backend.c, "Replay") */
layout(std430, binding = 6) readonly buffer DYN { uint dyn[]; };

layout(push_constant) uniform P {
    uint n_kv;       /* elements per token: n_head_kv * head_dim */
    uint head_dim, n_rot, n_tok;
    uint k_off, v_off, stride;  /* token t of k at k_off + t * stride */
    uint cache_off;  /* element of (this layer, position 0) in the cache ranges */
    uint kv_f32, gx;
    uint n_head, q_off, q_stride;  /* token t's queries at q_off + t * q_stride */
} p;

void main() {
    uint gid = group_index(p.gx) * WG + gl_LocalInvocationID.x;
    if (gid >= p.n_tok * p.n_kv) {
        uint np = p.n_rot / 2, g = gid - p.n_tok * p.n_kv;
        if (g >= p.n_tok * p.n_head * np) return;
        uint i = g % np, h = (g / np) % p.n_head, tq = g / (np * p.n_head);
        uint b = p.q_off + tq * p.q_stride + h * p.head_dim + 2 * i;
        float c = cs[tq * p.n_rot + 2 * i], s = cs[tq * p.n_rot + 2 * i + 1];
        float x0 = q[b], x1 = q[b + 1];
        precise float y0 = x0 * c - x1 * s;
        precise float y1 = x0 * s + x1 * c;
        q[b] = y0;
        q[b + 1] = y1;
        return;
    }
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
    uint ci = p.cache_off + (dyn[0] + t) * p.n_kv + e;
    if (p.kv_f32 != 0) {
        kc32[ci] = kv;
        vc32[ci] = vv;
    } else {
        kc16[ci] = uint16_t(float_to_half_bits(kv));
        vc16[ci] = uint16_t(float_to_half_bits(vv));
    }
}
