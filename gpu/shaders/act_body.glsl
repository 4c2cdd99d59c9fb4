/* act_body.glsl — act.comp's step as functions, for act.comp and for the
 * mat-vec's prologue (matvec.comp), so that both compute bit-identical
 * activations. The includer defines, before including it, the accessors
 *   AX(i) AX4(i)              the input floats (float / vec4 index)
 *   AW32(i) AW16(i) AW4(i)    mode 1: the norm weight (F32 / F16 bits /
 *                             16 bytes); mode 2: u (AW32 and AW4, floats)
 *   AO_STORE(i, v) AO4_STORE(i, v)   the float output
 *   AQ_STORE(i, w) AD_STORE(i, v) ABS_STORE(i, v)   quantized words, block
 *                             scales, bsums
 * and includes common.glsl first. */
struct act_p {
    uint n, x_off, x_stride;
    uint w_off;            /* mode 1: byte offset of the weight; mode 2: float offset of u */
    uint w_type;           /* mode 1: 0 F32, 1 F16 */
    uint o_off, o_stride;
    uint mode, kind;
    float eps;
};

shared float amx[WG];
shared float asv[WG];      /* the signed value of that largest |y| */
shared float bd[WG];       /* per invocation: its block's scale factor (id or iscale) */

float wv(act_p p, uint i) {
    return p.w_type == 0 ? AW32(p.w_off / 4 + i) : half_bits_to_float(AW16(p.w_off / 2 + i));
}

float yval(act_p p, uint t, uint xb, uint e, float scale) {
    if (p.mode == 1) return (AX(xb + e) * scale) * wv(p, e);
    if (p.mode == 2) {
        float g = AX(xb + e);
        precise float y = g / (1.0 + exp(-g)) * AW32(p.w_off + p.x_stride * t + e);
        return y;
    }
    return AX(xb + e);
}

/* RMSNorm's 1/sqrt(mean(x^2) + eps) of row t (mode 1; else 1). Reached by
 * every invocation of the workgroup. */
float act_scale(act_p p, uint t) {
    uint tid = gl_LocalInvocationID.x;
    uint xb = p.x_off + t * p.x_stride;
    float scale = 1.0;
    if (p.mode == 1) {
        float ss = 0.0;
        if ((xb & 3u) == 0 && (p.n & 3u) == 0) {
            /* 16-byte loads, eight in flight per step (a 4096-wide row in
             * two steps of a 64-wide workgroup): a loop of one load and one
             * add per step waited for every load (the sum of a 4096-wide
             * row took most of this kernel's time) */
            vec4 s4 = vec4(0.0);
            for (uint i = tid * 4; i < p.n; i += WG * 32) {
                vec4 v[8];
                for (uint k = 0; k < 8; k++) v[k] = i + k * WG * 4 < p.n ? AX4((xb + i + k * WG * 4) >> 2) : vec4(0.0);
                s4 += ((v[0] * v[0] + v[1] * v[1]) + (v[2] * v[2] + v[3] * v[3])) +
                      ((v[4] * v[4] + v[5] * v[5]) + (v[6] * v[6] + v[7] * v[7]));
            }
            ss = (s4.x + s4.y) + (s4.z + s4.w);
        } else {
            for (uint i = tid; i < p.n; i += WG) ss += AX(xb + i) * AX(xb + i);
        }
        ss = wg_sum(ss);
        scale = 1.0 / sqrt(ss / float(p.n) + p.eps);
    }
    return scale;
}

/* Elements [c * WG * 16, (c + 1) * WG * 16) of row t. Reached by every
 * invocation of the workgroup (barriers). */
void act_chunk(act_p p, uint c, uint t, float scale) {
    uint tid = gl_LocalInvocationID.x;
    uint xb = p.x_off + t * p.x_stride, ob = p.o_off + t * p.o_stride;
    uint bsz = p.kind == 0 ? 32u : 256u;
    uint per = bsz / 16;             /* invocations per block */
    uint nb = p.n / bsz;
    {
        uint r0 = c * WG * 16;
        uint e0 = r0 + tid * 16;
        bool mine = e0 < p.n;
        float y[16];
        float am = 0.0, sv = 0.0;
        /* 16-byte loads and stores where everything is aligned (uniform
         * but for the row's last group), all issued before the arithmetic */
        bool fast = e0 + 16 <= p.n && (xb & 3u) == 0 && (ob & 3u) == 0 &&
                    (p.mode != 1 || (p.w_off & 15u) == 0) && (p.mode != 2 || ((p.w_off + p.x_stride * t) & 3u) == 0);
        if (fast) {
            vec4 xv[4];
            for (uint v = 0; v < 4; v++) xv[v] = AX4((xb + e0) / 4 + v);
            if (p.mode == 1 && p.w_type == 0) {
                for (uint v = 0; v < 4; v++) {
                    vec4 w = uintBitsToFloat(AW4((p.w_off / 4 + e0) / 4 + v));
                    for (uint k = 0; k < 4; k++) y[4 * v + k] = (xv[v][k] * scale) * w[k];
                }
            } else if (p.mode == 1) {
                for (uint v = 0; v < 2; v++) {
                    uvec4 h = AW4((p.w_off / 2 + e0) / 8 + v);
                    for (uint k = 0; k < 4; k++) {
                        vec2 w = unpackHalf2x16(h[k]);
                        uint j = 8 * v + 2 * k;
                        y[j] = (xv[j / 4][j % 4] * scale) * w.x;
                        y[j + 1] = (xv[(j + 1) / 4][(j + 1) % 4] * scale) * w.y;
                    }
                }
            } else if (p.mode == 2) {
                for (uint v = 0; v < 4; v++) {
                    vec4 u = uintBitsToFloat(AW4((p.w_off + p.x_stride * t + e0) / 4 + v));
                    for (uint k = 0; k < 4; k++) {
                        float g = xv[v][k];
                        precise float yy = g / (1.0 + exp(-g)) * u[k];
                        y[4 * v + k] = yy;
                    }
                }
            } else {
                for (uint v = 0; v < 4; v++)
                    for (uint k = 0; k < 4; k++) y[4 * v + k] = xv[v][k];
            }
            for (uint v = 0; v < 4; v++) AO4_STORE((ob + e0) / 4 + v, vec4(y[4 * v], y[4 * v + 1], y[4 * v + 2], y[4 * v + 3]));
        } else {
            for (uint j = 0; j < 16; j++) y[j] = e0 + j < p.n ? yval(p, t, xb, e0 + j, scale) : 0.0;
            for (uint j = 0; j < 16; j++)
                if (e0 + j < p.n) AO_STORE(ob + e0 + j, y[j]);
        }
        for (uint j = 0; j < 16; j++) {
            float ay = abs(y[j]);
            if (ay > am) { am = ay; sv = y[j]; }
        }
        if (p.kind == 2) return;   /* uniform */
        amx[tid] = am;
        asv[tid] = sv;
        barrier();
        uint first = tid - tid % per;
        if (mine && tid == first) {
            /* the block's largest |y|, the first of equals (as the CPU scans) */
            float bm = 0.0, mx = 0.0;
            for (uint k = 0; k < per; k++)
                if (amx[tid + k] > bm) { bm = amx[tid + k]; mx = asv[tid + k]; }
            uint b = e0 / bsz;
            if (p.kind == 0) {
                float dd = bm / 127.0;
                AD_STORE(t * nb + b, fp16_round(dd));
                bd[tid] = dd != 0.0 ? 1.0 / dd : 0.0;
            } else {
                float iscale = mx == 0.0 ? 0.0 : -127.0 / mx;
                AD_STORE(t * nb + b, mx == 0.0 ? 0.0 : 1.0 / iscale);
                bd[tid] = iscale;
            }
        }
        barrier();
        if (mine) {
            float f = bd[first];
            uint qb = (t * p.n + e0) / 4;
            int sum = 0;
            for (uint w = 0; w < 4; w++) {
                uint word = 0;
                for (uint k = 0; k < 4; k++) {
                    int q = p.kind == 0 ? int(round_away(y[4 * w + k] * f)) : min(int(roundEven(f * y[4 * w + k])), 127);
                    sum += q;
                    word |= (uint(q) & 0xffu) << (8 * k);
                }
                AQ_STORE(qb + w, word);
            }
            if (p.kind == 1) ABS_STORE((t * p.n + e0) / 16, sum);
        }
    }
}
