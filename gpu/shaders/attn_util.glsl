/* attn_util.glsl — what attn.comp and attn_dec.comp share: RoPE of the
 * fresh query and key (kv_store.comp's arithmetic) and the 8-wide F16 dot
 * product with the query. Included after the bindings (csb, binding 9),
 * push constants (p.n_rot) and the query's shared copy qsh. */

/* fresh: RoPE of element d of a head whose elements start at b in x (the
 * pair (d & ~1, d | 1) turns by the token's angle; kv_store.comp's
 * arithmetic) */
#define ROPE_AT(x, b, d, t)                                                                 \
    ((d) < p.n_rot ? rope_pair((x)[(b) + ((d) & ~1u)], (x)[(b) + ((d) | 1u)], (d), (t)) : (x)[(b) + (d)])
float rope_pair(float x0, float x1, uint d, uint t) {
    uint i0 = t * p.n_rot + (d & ~1u);
    float c = csb[i0], s = csb[i0 + 1];
    precise float y = (d & 1u) == 0 ? x0 * c - x1 * s : x0 * s + x1 * c;
    return y;
}

/* 8 F16 keys (16 bytes) . q[d..d+7] */
float dot8(uvec4 k, uint d) {
    vec2 a = unpackHalf2x16(k.x), b = unpackHalf2x16(k.y), c = unpackHalf2x16(k.z), e = unpackHalf2x16(k.w);
    return a.x * qsh[d] + a.y * qsh[d + 1] + b.x * qsh[d + 2] + b.y * qsh[d + 3] +
           c.x * qsh[d + 4] + c.y * qsh[d + 5] + e.x * qsh[d + 6] + e.y * qsh[d + 7];
}
