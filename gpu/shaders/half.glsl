/* half.glsl — float -> F16 rounded to nearest, ties to even, as the CPU's
 * st_fp32_to_fp16 does. packHalf2x16's rounding is the implementation's:
 * NVIDIA's is not to nearest (F16 activations and Q8_0 block scales came out
 * one F16 step off the CPU's), so the result is corrected to the nearer of
 * it and its neighbour towards x (ties to the even code). Included by
 * common.glsl and mm_load.glsl. */
#ifndef HALF_GLSL
#define HALF_GLSL
uint float_to_half_bits(float x) {
    uint h = packHalf2x16(vec2(x, 0.0)) & 0xffffu;
    float a = unpackHalf2x16(h).x;
    if (a != x && (h & 0x7c00u) != 0x7c00u && !isnan(x)) {
        uint h2 = abs(x) > abs(a) ? h + 1u : h - 1u;   /* sign and magnitude: +-1 is one step in magnitude */
        float b = unpackHalf2x16(h2).x;
        float da = abs(x - a), db = abs(x - b);
        if (db < da || (db == da && (h2 & 1u) == 0u)) h = h2;
    }
    return h;
}
float fp16_round(float x) { return unpackHalf2x16(float_to_half_bits(x)).x; }
#endif
