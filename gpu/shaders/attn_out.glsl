/* attn_out.glsl — the end of an attention workgroup (attn.comp,
 * attn_dec.comp): its output for (token t, head h), or, with several chunks,
 * its chunk's partials and the merge by the chunk that finishes last.
 * Included after the including shader's bindings: o (3), part and its
 * coherent view partc (4), the counters cnt (6) and push constants p with
 * head_dim, n_head and cnt_head. With ATTN_QOUT defined (attn_dec.comp,
 * workgroups of at least head_dim) the output is also handed to
 * qout_store(element, value, mine), which every invocation reaches.
 *
 * The merge: with M the largest chunk maximum,
 *   out[d] = sum_c acc_c[d] e^(M_c - M) / sum_c S_c e^(M_c - M),
 * chunks that saw no position (S = 0, past the causal limit) adding
 * nothing. The last workgroup sees the others' partials through the
 * `coherent` view after a device-scope memory barrier on both sides of the
 * counter, and leaves the counter at 0 (a dispatch and a barrier fewer than
 * a merge kernel). */

shared bool last_;

/* Counts this workgroup at counter i (after its stores); true in every
 * invocation of the workgroup that brought it to `total` (which resets it).
 * The stores of all counted workgroups are visible to the last one. */
bool last_of(uint i, uint total) {
    memoryBarrierBuffer();
    barrier();
    if (gl_LocalInvocationID.x == 0) {
        last_ = atomicAdd(cnt[i], 1u) == total - 1u;
        if (last_) cnt[i] = 0u;
    }
    barrier();
    bool l = last_;
    if (l) memoryBarrierBuffer();
    return l;
}

/* the merge's per-chunk maximum, sum and weight (at most 128 chunks:
 * ATTN_MAX_CHUNKS in vk_backend.c) */
shared float mch[128], sch[128], wch[128];

/* acc[k]: the unnormalized output of dimension tid + k * WG; M, S: the
 * chunk's maximum score and sum of weights. Uniform control flow. */
void attn_out(float acc[4], float M, float S, uint t, uint h, uint ch, uint n_chunks) {
    uint tid = gl_LocalInvocationID.x, hd = p.head_dim;
    uint ob = p.o_off + t * p.o_stride + h * hd;
    if (n_chunks <= 1) {
        float inv = S == 0.0 ? 0.0 : 1.0 / S;
        for (uint k = 0; k < 4; k++) {
            uint d = tid + k * WG;
            if (d < hd) o[ob + d] = acc[k] * inv;
        }
#ifdef ATTN_QOUT
        qout_store(ob + tid, acc[0] * inv, tid < hd);
#endif
        return;
    }
    uint pb = ((t * p.n_head + h) * n_chunks + ch) * (hd + 2);
    for (uint k = 0; k < 4; k++) {
        uint d = tid + k * WG;
        if (d < hd) part[pb + d] = acc[k];
    }
    if (tid == 0) {
        part[pb + hd] = M;
        part[pb + hd + 1] = S;
    }
    if (!last_of(p.cnt_head + t * p.n_head + h, n_chunks)) return;
    /* the chunks' maxima and sums into shared memory first, all loads at
     * once (a loop branching on each loaded sum waited for every load in
     * turn), then each chunk's weight e^(M_c - M) (-1: the chunk saw no
     * position), then the weighted sums of the outputs, whose loads no
     * longer depend on one another */
    const float NEG_INF = uintBitsToFloat(0xff800000u);
    uint w = hd + 2, base = (t * p.n_head + h) * n_chunks * w;
    for (uint c = tid; c < n_chunks; c += WG) {
        mch[c] = partc[base + c * w + hd];
        sch[c] = partc[base + c * w + hd + 1];
    }
    barrier();
    float MM = NEG_INF;
    for (uint c = 0; c < n_chunks; c++)
        if (sch[c] > 0.0) MM = max(MM, mch[c]);
    for (uint c = tid; c < n_chunks; c += WG) wch[c] = sch[c] > 0.0 ? exp(mch[c] - MM) : -1.0;
    barrier();
    float SS = 0.0;
    for (uint c = 0; c < n_chunks; c++)
        if (sch[c] > 0.0) SS += sch[c] * wch[c];
    float inv = SS == 0.0 ? 0.0 : 1.0 / SS;
#ifdef ATTN_QOUT
    float qv = 0.0;
#endif
    for (uint d = tid; d < hd; d += WG) {
        float a = 0.0;
        for (uint c = 0; c < n_chunks; c++) {
            float pv = partc[base + c * w + d], wc = wch[c];
            a += wc >= 0.0 ? pv * wc : 0.0;
        }
        o[ob + d] = a * inv;
#ifdef ATTN_QOUT
        qv = a * inv;
#endif
    }
#ifdef ATTN_QOUT
    qout_store(ob + tid, qv, tid < hd);
#endif
}
