/* sampler.c — choosing the next token from the logits.
 *
 * The chain is llama.cpp's default order: repetition penalty over the last N
 * tokens, top-k, top-p, min-p, temperature, then a draw from the remaining
 * distribution with a seeded RNG (same seed, same tokens). Temperature <= 0
 * means greedy: the argmax after penalties. */
#include "strata.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct { int32_t id; float logit; float p; } cand;

struct st_sampler {
    st_sampler_params p;
    int n_vocab;
    cand *c;
    int32_t *hist;      /* ring of recent tokens */
    int hist_len, hist_pos;
    uint8_t *seen;      /* n_vocab flags, for de-duplicating the penalty window */
    uint64_t rng[4];
};

void st_sampler_params_default(st_sampler_params *p) {
    p->temp = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->seed = 0xC0FFEEULL;
}

/* xoshiro256** seeded by splitmix64 */
static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t rng_next(uint64_t *s) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return r;
}
static double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0); }

st_status st_sampler_new(const st_sampler_params *p, int n_vocab, st_sampler **out, st_error *err) {
    *out = NULL;
    if (n_vocab <= 0) return st_error_set(err, ST_ERR_ARG, "sampler: vocabulary size %d", n_vocab);
    st_sampler *s = calloc(1, sizeof *s);
    if (!s) return st_error_set(err, ST_ERR_NOMEM, "sampler: out of memory");
    s->p = *p;
    if (s->p.repeat_last_n < 0) s->p.repeat_last_n = 0;
    s->n_vocab = n_vocab;
    s->c = malloc((size_t)n_vocab * sizeof(cand));
    s->seen = calloc((size_t)n_vocab, 1);
    s->hist = malloc((size_t)(s->p.repeat_last_n > 0 ? s->p.repeat_last_n : 1) * sizeof(int32_t));
    if (!s->c || !s->seen || !s->hist) { st_sampler_free(s); return st_error_set(err, ST_ERR_NOMEM, "sampler: out of memory"); }
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix(&x);
    *out = s;
    return ST_OK;
}

void st_sampler_free(st_sampler *s) {
    if (!s) return;
    free(s->c);
    free(s->seen);
    free(s->hist);
    free(s);
}

void st_sampler_accept(st_sampler *s, int32_t token) {
    int n = s->p.repeat_last_n;
    if (n <= 0) return;
    s->hist[s->hist_pos] = token;
    s->hist_pos = (s->hist_pos + 1) % n;
    if (s->hist_len < n) s->hist_len++;
}

static int cmp_logit_desc(const void *a, const void *b) {
    float x = ((const cand *)a)->logit, y = ((const cand *)b)->logit;
    if (x > y) return -1;
    if (x < y) return 1;
    return ((const cand *)a)->id - ((const cand *)b)->id;
}

/* Moves the k largest candidates to the front, sorted (k << n: a heap pass). */
static void top_k_sort(cand *c, int n, int k) {
    if (k >= n) { qsort(c, (size_t)n, sizeof *c, cmp_logit_desc); return; }
    /* min-heap of size k over c[0..k) */
    for (int i = k / 2 - 1; i >= 0; i--) {
        int j = i;
        for (;;) {
            int l = 2 * j + 1, m = j;
            if (l < k && cmp_logit_desc(&c[l], &c[m]) > 0) m = l;
            if (l + 1 < k && cmp_logit_desc(&c[l + 1], &c[m]) > 0) m = l + 1;
            if (m == j) break;
            cand t = c[j]; c[j] = c[m]; c[m] = t; j = m;
        }
    }
    for (int i = k; i < n; i++) {
        if (cmp_logit_desc(&c[i], &c[0]) < 0) {
            c[0] = c[i];
            int j = 0;
            for (;;) {
                int l = 2 * j + 1, m = j;
                if (l < k && cmp_logit_desc(&c[l], &c[m]) > 0) m = l;
                if (l + 1 < k && cmp_logit_desc(&c[l + 1], &c[m]) > 0) m = l + 1;
                if (m == j) break;
                cand t = c[j]; c[j] = c[m]; c[m] = t; j = m;
            }
        }
    }
    qsort(c, (size_t)k, sizeof *c, cmp_logit_desc);
}

static void softmax(cand *c, int n) {
    float mx = c[0].logit;
    for (int i = 1; i < n; i++) if (c[i].logit > mx) mx = c[i].logit;
    double sum = 0;
    for (int i = 0; i < n; i++) { c[i].p = expf(c[i].logit - mx); sum += c[i].p; }
    for (int i = 0; i < n; i++) c[i].p = (float)(c[i].p / sum);
}

int32_t st_sampler_sample(st_sampler *s, const float *logits) {
    const st_sampler_params *p = &s->p;
    int n = s->n_vocab;
    cand *c = s->c;
    for (int i = 0; i < n; i++) { c[i].id = i; c[i].logit = logits[i]; c[i].p = 0; }

    /* repetition penalty: each distinct recent token once */
    if (p->repeat_penalty != 1.0f && s->hist_len > 0) {
        for (int i = 0; i < s->hist_len; i++) {
            int32_t t = s->hist[i];
            if (t < 0 || t >= n || s->seen[t]) continue;
            s->seen[t] = 1;
            if (c[t].logit <= 0) c[t].logit *= p->repeat_penalty;
            else c[t].logit /= p->repeat_penalty;
        }
        for (int i = 0; i < s->hist_len; i++) if (s->hist[i] >= 0 && s->hist[i] < n) s->seen[s->hist[i]] = 0;
    }

    if (p->temp <= 0.0f) {
        int best = 0;
        for (int i = 1; i < n; i++) if (c[i].logit > c[best].logit) best = i;
        return c[best].id;
    }

    /* top-k (leaves c[0..n) sorted by logit, descending) */
    if (p->top_k > 0 && p->top_k < n) { top_k_sort(c, n, p->top_k); n = p->top_k; }
    else qsort(c, (size_t)n, sizeof *c, cmp_logit_desc);

    /* top-p: the smallest prefix whose probability mass reaches p */
    if (p->top_p < 1.0f) {
        softmax(c, n);
        double cum = 0;
        for (int i = 0; i < n; i++) {
            cum += c[i].p;
            if (cum >= p->top_p) { n = i + 1; break; }
        }
    }
    /* min-p: drop tokens less likely than min_p times the best one */
    if (p->min_p > 0.0f && n > 1) {
        float thr = c[0].logit + logf(p->min_p);
        int k = 1;
        while (k < n && c[k].logit >= thr) k++;
        n = k;
    }
    for (int i = 0; i < n; i++) c[i].logit /= p->temp;
    softmax(c, n);
    double r = rng_uniform(s->rng), cum = 0;
    for (int i = 0; i < n; i++) {
        cum += c[i].p;
        if (r < cum) return c[i].id;
    }
    return c[n - 1].id;
}
