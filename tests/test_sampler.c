/* test_sampler.c — st_sampler_*: greedy, top-k, seeding, the distribution of
 * draws against softmax(logits / temp), top-p, min-p, the repetition
 * penalty and its window, and degenerate vocabularies. */
#include "strata.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOW (-1e9f) /* "impossible" logit */

/* every filter off: the plain softmax(logits / temp) */
static st_sampler_params plain(float temp, uint64_t seed) {
    st_sampler_params p;
    st_sampler_params_default(&p);
    p.temp = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.seed = seed;
    return p;
}

static st_sampler *new_sampler(const st_sampler_params *p, int n_vocab) {
    st_sampler *s = NULL;
    st_error err = {0};
    cr_assert_eq(st_sampler_new(p, n_vocab, &s, &err), ST_OK, "%s", err.msg);
    cr_assert_not_null(s);
    return s;
}

/* deterministic pseudo-random logits in [-8, 8) */
static void fill_logits(float *l, int n, uint32_t seed) {
    uint32_t x = seed * 2654435761u + 1;
    for (int i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        l[i] = (float)(x % 16000u) / 1000.0f - 8.0f;
    }
}

static int argmax(const float *l, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) if (l[i] > l[b]) b = i;
    return b;
}

/* Draws n times and counts. */
static void histogram(st_sampler *s, const float *logits, int n_vocab, int n, int *count) {
    memset(count, 0, (size_t)n_vocab * sizeof(int));
    for (int i = 0; i < n; i++) {
        int32_t t = st_sampler_sample(s, logits);
        cr_assert(t >= 0 && t < n_vocab, "token %d out of range", t);
        count[t]++;
    }
}

/* |freq - p| within k standard errors of a binomial proportion */
static void check_freq(const char *what, int token, int count, int n, double p, double k) {
    double f = (double)count / n;
    double se = sqrt(p * (1 - p) / n);
    cr_assert(fabs(f - p) <= k * se + 1e-12, "%s: token %d drawn with frequency %.4f, expected %.4f (±%.4f)", what,
              token, f, p, k * se);
}

/* ------------------------------------------------------------ greedy */

Test(sampler, temp0_is_argmax) {
    enum { NV = 5000 };
    static float l[NV];
    for (uint32_t round = 0; round < 20; round++) {
        fill_logits(l, NV, round);
        st_sampler_params p;
        st_sampler_params_default(&p); /* top-k, top-p, min-p on: irrelevant at temp 0 */
        p.temp = 0;
        p.seed = round;
        st_sampler *s = new_sampler(&p, NV);
        for (int k = 0; k < 3; k++) cr_assert_eq(st_sampler_sample(s, l), argmax(l, NV), "round %u", round);
        p.temp = -1; /* negative: also greedy */
        st_sampler_free(s);
        s = new_sampler(&p, NV);
        cr_assert_eq(st_sampler_sample(s, l), argmax(l, NV));
        st_sampler_free(s);
    }
}

Test(sampler, logits_not_modified) {
    enum { NV = 1000 };
    static float l[NV], copy[NV];
    fill_logits(l, NV, 7);
    memcpy(copy, l, sizeof l);
    st_sampler_params p;
    st_sampler_params_default(&p);
    p.repeat_penalty = 1.3f;
    st_sampler *s = new_sampler(&p, NV);
    for (int i = 0; i < 10; i++) st_sampler_accept(s, i * 37);
    for (int i = 0; i < 10; i++) st_sampler_sample(s, l);
    cr_assert(memcmp(l, copy, sizeof l) == 0, "st_sampler_sample modified the logits");
    st_sampler_free(s);
}

Test(sampler, top_k1_is_argmax_at_any_temperature) {
    enum { NV = 3000 };
    static float l[NV];
    const float temps[] = {0.1f, 0.8f, 1.0f, 2.0f, 10.0f, 100.0f};
    for (uint32_t round = 0; round < 5; round++) {
        fill_logits(l, NV, 100 + round);
        int best = argmax(l, NV);
        for (size_t ti = 0; ti < sizeof temps / sizeof temps[0]; ti++) {
            st_sampler_params p = plain(temps[ti], 1234 + round);
            p.top_k = 1;
            st_sampler *s = new_sampler(&p, NV);
            for (int k = 0; k < 50; k++)
                cr_assert_eq(st_sampler_sample(s, l), best, "temp %.1f draw %d", temps[ti], k);
            st_sampler_free(s);
        }
    }
}

Test(sampler, ties_at_temp0_pick_a_maximum) {
    float l[8] = {0, 3, 1, 3, 3, -2, 0, 1};
    st_sampler_params p = plain(0, 1);
    st_sampler *s = new_sampler(&p, 8);
    int32_t t = st_sampler_sample(s, l);
    cr_assert(t == 1 || t == 3 || t == 4, "greedy chose %d, not one of the maxima", t);
    st_sampler_free(s);
}

/* ------------------------------------------------------------ seeding */

static void draw_seq(uint64_t seed, const float *l, int nv, int n, int32_t *out) {
    st_sampler_params p = plain(1.0f, seed);
    st_sampler *s = new_sampler(&p, nv);
    for (int i = 0; i < n; i++) {
        out[i] = st_sampler_sample(s, l);
        st_sampler_accept(s, out[i]);
    }
    st_sampler_free(s);
}

Test(sampler, same_seed_same_sequence) {
    enum { NV = 1000, N = 200 };
    static float flat[NV]; /* all zero: uniform */
    int32_t a[N], b[N], c[N];
    draw_seq(42, flat, NV, N, a);
    draw_seq(42, flat, NV, N, b);
    draw_seq(43, flat, NV, N, c);
    cr_assert(memcmp(a, b, sizeof a) == 0, "the same seed gave different sequences");
    int same = 0;
    for (int i = 0; i < N; i++) same += a[i] == c[i];
    /* uniform over 1000: about 0.2 coincidences expected */
    cr_assert(same < 10, "seeds 42 and 43 agree on %d of %d draws", same, N);
    /* and the draws use the whole vocabulary, not a handful of ids */
    static char seen[NV];
    int distinct = 0;
    for (int i = 0; i < N; i++) if (!seen[a[i]]++) distinct++;
    cr_assert(distinct > 150, "only %d distinct tokens in %d uniform draws", distinct, N);
}

Test(sampler, seed_zero_is_valid) {
    enum { NV = 100, N = 64 };
    static float flat[NV];
    int32_t a[N], b[N];
    draw_seq(0, flat, NV, N, a);
    draw_seq(0, flat, NV, N, b);
    cr_assert(memcmp(a, b, sizeof a) == 0);
    int distinct = 0;
    static char seen[NV];
    for (int i = 0; i < N; i++) if (!seen[a[i]]++) distinct++;
    cr_assert(distinct > 20, "seed 0: only %d distinct tokens in %d draws", distinct, N);
}

/* ------------------------------------------------------------ distribution */

/* 4 live tokens at scattered ids, the rest impossible */
#define NV_D 300
static const int k_ids[4] = {7, 123, 200, 299};
static const float k_logits[4] = {2.0f, 1.2f, 0.5f, -0.7f};

static void live_logits(float *l) {
    for (int i = 0; i < NV_D; i++) l[i] = LOW;
    for (int k = 0; k < 4; k++) l[k_ids[k]] = k_logits[k];
}

static void softmax_ref(const float *x, int n, float temp, double *p) {
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < n; i++) mx = fmax(mx, x[i] / temp);
    for (int i = 0; i < n; i++) { p[i] = exp(x[i] / temp - mx); sum += p[i]; }
    for (int i = 0; i < n; i++) p[i] /= sum;
}

static void check_distribution(float temp, uint64_t seed) {
    enum { N = 20000 };
    float l[NV_D];
    int count[NV_D];
    live_logits(l);
    double p[4];
    softmax_ref(k_logits, 4, temp, p);
    st_sampler_params sp = plain(temp, seed);
    st_sampler *s = new_sampler(&sp, NV_D);
    histogram(s, l, NV_D, N, count);
    st_sampler_free(s);
    int live = 0;
    char what[64];
    snprintf(what, sizeof what, "temp %.2f", temp);
    for (int k = 0; k < 4; k++) {
        check_freq(what, k_ids[k], count[k_ids[k]], N, p[k], 4.5);
        live += count[k_ids[k]];
    }
    cr_assert_eq(live, N, "%s: %d draws of impossible tokens", what, N - live);
}

Test(sampler, frequencies_match_softmax_temp1) { check_distribution(1.0f, 1); }
Test(sampler, frequencies_match_softmax_temp07) { check_distribution(0.7f, 2); }
Test(sampler, frequencies_match_softmax_temp2) { check_distribution(2.0f, 3); }

Test(sampler, top_k_renormalizes_over_the_k_best) {
    enum { N = 20000 };
    float l[NV_D];
    int count[NV_D];
    live_logits(l);
    st_sampler_params sp = plain(1.0f, 9);
    sp.top_k = 2;
    st_sampler *s = new_sampler(&sp, NV_D);
    histogram(s, l, NV_D, N, count);
    st_sampler_free(s);
    double p[2];
    softmax_ref(k_logits, 2, 1.0f, p);
    check_freq("top_k 2", k_ids[0], count[k_ids[0]], N, p[0], 4.5);
    check_freq("top_k 2", k_ids[1], count[k_ids[1]], N, p[1], 4.5);
    cr_assert_eq(count[k_ids[0]] + count[k_ids[1]], N, "tokens outside the top 2 were drawn");
}

/* ------------------------------------------------------------ top-p, min-p */

Test(sampler, top_p_half_keeps_only_the_head) {
    enum { NV = 50, N = 4000 };
    float l[NV];
    int count[NV];
    /* probabilities 0.6, 0.2, 0.1, 0.1 (rest impossible): the head alone reaches 0.5 */
    for (int i = 0; i < NV; i++) l[i] = LOW;
    l[10] = logf(0.6f); l[20] = logf(0.2f); l[30] = logf(0.1f); l[40] = logf(0.1f);
    st_sampler_params sp = plain(1.0f, 5);
    sp.top_p = 0.5f;
    st_sampler *s = new_sampler(&sp, NV);
    histogram(s, l, NV, N, count);
    st_sampler_free(s);
    cr_assert_eq(count[10], N, "top_p 0.5 drew something other than the head (head %d of %d)", count[10], N);

    /* probabilities 0.3, 0.28, 0.22, 0.2: the two best reach 0.5, renormalized to 0.3/0.58, 0.28/0.58 */
    for (int i = 0; i < NV; i++) l[i] = LOW;
    l[3] = logf(0.3f); l[4] = logf(0.28f); l[5] = logf(0.22f); l[6] = logf(0.2f);
    sp.seed = 6;
    s = new_sampler(&sp, NV);
    enum { N2 = 20000 };
    int count2[NV];
    histogram(s, l, NV, N2, count2);
    st_sampler_free(s);
    cr_assert_eq(count2[3] + count2[4], N2, "top_p 0.5 kept more than the two best (%d %d)", count2[5], count2[6]);
    check_freq("top_p 0.5", 3, count2[3], N2, 0.3 / 0.58, 4.5);
}

Test(sampler, top_p_one_is_off) {
    enum { N = 20000 };
    float l[NV_D];
    int count[NV_D];
    live_logits(l);
    st_sampler_params sp = plain(1.0f, 11);
    sp.top_p = 1.0f;
    st_sampler *s = new_sampler(&sp, NV_D);
    histogram(s, l, NV_D, N, count);
    st_sampler_free(s);
    cr_assert(count[k_ids[3]] > 0, "top_p = 1 dropped the least likely live token");
}

Test(sampler, min_p_drops_tokens_below_fraction_of_best) {
    enum { NV = 64, N = 20000 };
    float l[NV];
    int count[NV];
    /* probabilities 0.4, 0.3, 0.15, 0.1, 0.05; min_p 0.3 -> threshold 0.12: keep the first three */
    const float pr[5] = {0.4f, 0.3f, 0.15f, 0.1f, 0.05f};
    const int id[5] = {60, 1, 33, 2, 50};
    for (int i = 0; i < NV; i++) l[i] = LOW;
    for (int k = 0; k < 5; k++) l[id[k]] = logf(pr[k]);
    st_sampler_params sp = plain(1.0f, 21);
    sp.min_p = 0.3f;
    st_sampler *s = new_sampler(&sp, NV);
    histogram(s, l, NV, N, count);
    st_sampler_free(s);
    cr_assert_eq(count[id[3]], 0, "min_p 0.3: token with p = 0.25 p_max was drawn %d times", count[id[3]]);
    cr_assert_eq(count[id[4]], 0, "min_p 0.3: token with p = 0.125 p_max was drawn %d times", count[id[4]]);
    double kept = 0.4 + 0.3 + 0.15;
    for (int k = 0; k < 3; k++) check_freq("min_p 0.3", id[k], count[id[k]], N, pr[k] / kept, 4.5);

    /* min_p relative to p_max, not absolute: the same shape scaled down among
     * many tiny tokens keeps the same three */
    for (int i = 0; i < NV; i++) l[i] = LOW;
    for (int k = 0; k < 5; k++) l[id[k]] = logf(pr[k]) + 3.0f;
    sp.seed = 22;
    s = new_sampler(&sp, NV);
    histogram(s, l, NV, 2000, count);
    st_sampler_free(s);
    cr_assert_eq(count[id[3]] + count[id[4]], 0);
}

/* ------------------------------------------------------------ repetition penalty */

Test(sampler, repeat_penalty_divides_positive_logits) {
    enum { NV = 16 };
    float l[NV];
    for (int i = 0; i < NV; i++) l[i] = -5;
    l[0] = 2.0f; /* 2.0 / 1.3 = 1.54 < 1.9 */
    l[1] = 1.9f;
    st_sampler_params sp = plain(0, 1);
    sp.repeat_penalty = 1.3f;
    sp.repeat_last_n = 4;
    st_sampler *s = new_sampler(&sp, NV);
    cr_assert_eq(st_sampler_sample(s, l), 0, "no history: the best token");
    st_sampler_accept(s, 0);
    cr_assert_eq(st_sampler_sample(s, l), 1, "token 0 accepted: its logit 2.0 / 1.3 falls below 1.9");
    st_sampler_free(s);
}

Test(sampler, repeat_penalty_multiplies_negative_logits) {
    enum { NV = 16 };
    float l[NV];
    for (int i = 0; i < NV; i++) l[i] = -10;
    l[2] = -1.0f; /* -1.0 * 1.3 = -1.3 < -1.2 */
    l[3] = -1.2f;
    st_sampler_params sp = plain(0, 1);
    sp.repeat_penalty = 1.3f;
    sp.repeat_last_n = 4;
    st_sampler *s = new_sampler(&sp, NV);
    cr_assert_eq(st_sampler_sample(s, l), 2);
    st_sampler_accept(s, 2);
    cr_assert_eq(st_sampler_sample(s, l), 3, "token 2 accepted: -1.0 * 1.3 falls below -1.2");
    st_sampler_free(s);
}

Test(sampler, repeat_penalty_once_per_distinct_token) {
    enum { NV = 16 };
    float l[NV];
    for (int i = 0; i < NV; i++) l[i] = -5;
    l[0] = 2.0f; /* once: 1.54 > 1.4; twice would be 1.18 < 1.4 */
    l[1] = 1.4f;
    st_sampler_params sp = plain(0, 1);
    sp.repeat_penalty = 1.3f;
    sp.repeat_last_n = 8;
    st_sampler *s = new_sampler(&sp, NV);
    for (int i = 0; i < 5; i++) st_sampler_accept(s, 0);
    cr_assert_eq(st_sampler_sample(s, l), 0, "a token repeated 5 times was penalized more than once");
    /* and the de-duplication state does not leak into the next call */
    cr_assert_eq(st_sampler_sample(s, l), 0);
    st_sampler_free(s);
}

Test(sampler, repeat_penalty_only_within_window) {
    enum { NV = 16 };
    float l[NV];
    for (int i = 0; i < NV; i++) l[i] = -5;
    l[0] = 2.0f;
    l[1] = 1.9f;
    st_sampler_params sp = plain(0, 1);
    sp.repeat_penalty = 1.3f;
    sp.repeat_last_n = 3;
    st_sampler *s = new_sampler(&sp, NV);
    st_sampler_accept(s, 0);
    st_sampler_accept(s, 5);
    st_sampler_accept(s, 6);
    cr_assert_eq(st_sampler_sample(s, l), 1, "token 0 is the oldest of the last 3: still penalized");
    st_sampler_accept(s, 7); /* token 0 leaves the window */
    cr_assert_eq(st_sampler_sample(s, l), 0, "token 0 left the window of 3: no penalty");
    for (int i = 0; i < 10; i++) st_sampler_accept(s, 8 + (i % 3)); /* the ring wraps several times */
    cr_assert_eq(st_sampler_sample(s, l), 0);
    st_sampler_accept(s, 0);
    cr_assert_eq(st_sampler_sample(s, l), 1, "after wrapping, a new occurrence is penalized again");
    st_sampler_free(s);

    /* repeat_last_n = 0: no window at all */
    sp.repeat_last_n = 0;
    s = new_sampler(&sp, NV);
    st_sampler_accept(s, 0);
    cr_assert_eq(st_sampler_sample(s, l), 0, "repeat_last_n 0 must disable the penalty");
    st_sampler_free(s);
}

Test(sampler, repeat_penalty_changes_the_distribution) {
    enum { N = 20000 };
    float l[NV_D];
    int count[NV_D];
    live_logits(l);
    st_sampler_params sp = plain(1.0f, 31);
    sp.repeat_penalty = 1.5f;
    st_sampler *s = new_sampler(&sp, NV_D);
    st_sampler_accept(s, k_ids[0]); /* 2.0 -> 1.333 */
    st_sampler_accept(s, k_ids[3]); /* -0.7 -> -1.05 */
    histogram(s, l, NV_D, N, count);
    st_sampler_free(s);
    float pen[4] = {k_logits[0] / 1.5f, k_logits[1], k_logits[2], k_logits[3] * 1.5f};
    double p[4];
    softmax_ref(pen, 4, 1.0f, p);
    for (int k = 0; k < 4; k++) check_freq("penalized", k_ids[k], count[k_ids[k]], N, p[k], 4.5);
}

Test(sampler, out_of_range_history_is_ignored) {
    enum { NV = 8 };
    float l[NV] = {1, 2, 3, 4, 5, 6, 7, 8};
    st_sampler_params sp = plain(0, 1);
    sp.repeat_penalty = 2.0f;
    sp.repeat_last_n = 4;
    st_sampler *s = new_sampler(&sp, NV);
    st_sampler_accept(s, -1);
    st_sampler_accept(s, NV);
    st_sampler_accept(s, 1 << 30);
    cr_assert_eq(st_sampler_sample(s, l), 7);
    st_sampler_free(s);
}

/* ------------------------------------------------------------ degenerate sizes */

Test(sampler, vocabulary_of_one) {
    float l[1] = {-3.0f};
    st_sampler_params sp;
    st_sampler_params_default(&sp); /* top-k 40 > n_vocab, top-p, min-p */
    sp.repeat_penalty = 1.1f;
    st_sampler *s = new_sampler(&sp, 1);
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(st_sampler_sample(s, l), 0);
        st_sampler_accept(s, 0);
    }
    st_sampler_free(s);
    sp.temp = 0;
    s = new_sampler(&sp, 1);
    cr_assert_eq(st_sampler_sample(s, l), 0);
    st_sampler_free(s);
    sp = plain(1.0f, 3);
    sp.top_p = 0.1f;
    sp.min_p = 0.9f;
    s = new_sampler(&sp, 1);
    cr_assert_eq(st_sampler_sample(s, l), 0);
    st_sampler_free(s);
}

Test(sampler, vocabulary_of_zero_rejected) {
    st_sampler_params sp;
    st_sampler_params_default(&sp);
    st_sampler *s = (st_sampler *)0x1;
    st_error err = {0};
    cr_assert_eq(st_sampler_new(&sp, 0, &s, &err), ST_ERR_ARG);
    cr_assert_null(s);
    cr_assert(err.msg[0]);
    cr_assert_eq(st_sampler_new(&sp, -5, &s, &err), ST_ERR_ARG);
}

Test(sampler, top_k_larger_than_vocabulary) {
    enum { NV = 5, N = 20000 };
    float l[NV] = {0.1f, 0.9f, -0.3f, 0.4f, 0.0f};
    int count[NV];
    st_sampler_params sp = plain(1.0f, 77);
    sp.top_k = 1000;
    st_sampler *s = new_sampler(&sp, NV);
    histogram(s, l, NV, N, count);
    st_sampler_free(s);
    double p[NV];
    softmax_ref(l, NV, 1.0f, p);
    for (int k = 0; k < NV; k++) check_freq("top_k > n_vocab", k, count[k], N, p[k], 4.5);
}

Test(sampler, all_logits_equal_low) {
    /* every token "impossible": the sampler must still return a valid id (no NaN path) */
    enum { NV = 10 };
    float l[NV];
    for (int i = 0; i < NV; i++) l[i] = LOW;
    st_sampler_params sp;
    st_sampler_params_default(&sp);
    st_sampler *s = new_sampler(&sp, NV);
    for (int i = 0; i < 20; i++) {
        int32_t t = st_sampler_sample(s, l);
        cr_assert(t >= 0 && t < NV);
    }
    st_sampler_free(s);
}
