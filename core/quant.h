/* quant.h — tensor element types, GGUF-compatible block layouts, and the
 * per-type kernels (dequantize, quantize, dot product).
 *
 * The type ids are ggml's, so they can be read straight from a GGUF tensor
 * table. Quantized weights stay quantized in memory; a dot product of a weight
 * row with an activation row first quantizes the activations to the weight
 * type's `vec_dot_type` (Q8_0, Q8_1 or Q8_K blocks, as in llama.cpp) and then
 * runs an integer dot product block by block. */
#ifndef ST_QUANT_H
#define ST_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    ST_TYPE_F32 = 0,
    ST_TYPE_F16 = 1,
    ST_TYPE_Q4_0 = 2,
    ST_TYPE_Q4_1 = 3,
    /* 4, 5: removed Q4_2/Q4_3 */
    ST_TYPE_Q5_0 = 6,
    ST_TYPE_Q5_1 = 7,
    ST_TYPE_Q8_0 = 8,
    ST_TYPE_Q8_1 = 9,
    ST_TYPE_Q2_K = 10,
    ST_TYPE_Q3_K = 11,
    ST_TYPE_Q4_K = 12,
    ST_TYPE_Q5_K = 13,
    ST_TYPE_Q6_K = 14,
    ST_TYPE_Q8_K = 15,
    ST_TYPE_IQ2_XXS = 16,
    ST_TYPE_IQ2_XS = 17,
    ST_TYPE_IQ3_XXS = 18,
    ST_TYPE_IQ1_S = 19,
    ST_TYPE_IQ4_NL = 20,
    ST_TYPE_IQ3_S = 21,
    ST_TYPE_IQ2_S = 22,
    ST_TYPE_IQ4_XS = 23,
    ST_TYPE_I8 = 24,
    ST_TYPE_I16 = 25,
    ST_TYPE_I32 = 26,
    ST_TYPE_I64 = 27,
    ST_TYPE_F64 = 28,
    ST_TYPE_IQ1_M = 29,
    ST_TYPE_BF16 = 30,
    /* 31..33: removed Q4_0_4_4 etc. */
    ST_TYPE_TQ1_0 = 34,
    ST_TYPE_TQ2_0 = 35,
    ST_TYPE_COUNT = 40
} st_type;

#define ST_QK4_0 32
#define ST_QK4_1 32
#define ST_QK5_0 32
#define ST_QK5_1 32
#define ST_QK8_0 32
#define ST_QK8_1 32
#define ST_QK_K 256
#define ST_K_SCALE_SIZE 12

typedef uint16_t st_fp16;  /* IEEE half, stored as bits */
typedef uint16_t st_bf16;  /* bfloat16, stored as bits */

/* Block layouts: byte-for-byte those of GGUF files (ggml-common.h). */
typedef struct { st_fp16 d; uint8_t qs[ST_QK4_0 / 2]; } st_block_q4_0;              /* 18 B */
typedef struct { st_fp16 d, m; uint8_t qs[ST_QK4_1 / 2]; } st_block_q4_1;           /* 20 B */
typedef struct { st_fp16 d; uint8_t qh[4]; uint8_t qs[ST_QK5_0 / 2]; } st_block_q5_0;   /* 22 B */
typedef struct { st_fp16 d, m; uint8_t qh[4]; uint8_t qs[ST_QK5_1 / 2]; } st_block_q5_1; /* 24 B */
typedef struct { st_fp16 d; int8_t qs[ST_QK8_0]; } st_block_q8_0;                   /* 34 B */
typedef struct { st_fp16 d, s; int8_t qs[ST_QK8_1]; } st_block_q8_1;                /* 36 B: s = d * sum(qs) */
typedef struct {
    uint8_t scales[ST_QK_K / 16]; /* 4-bit scale | 4-bit min per 16 */
    uint8_t qs[ST_QK_K / 4];
    st_fp16 d, dmin;
} st_block_q2_K;                                                                    /* 84 B */
typedef struct {
    uint8_t hmask[ST_QK_K / 8];
    uint8_t qs[ST_QK_K / 4];
    uint8_t scales[12];
    st_fp16 d;
} st_block_q3_K;                                                                    /* 110 B */
typedef struct {
    st_fp16 d, dmin;
    uint8_t scales[ST_K_SCALE_SIZE];
    uint8_t qs[ST_QK_K / 2];
} st_block_q4_K;                                                                    /* 144 B */
typedef struct {
    st_fp16 d, dmin;
    uint8_t scales[ST_K_SCALE_SIZE];
    uint8_t qh[ST_QK_K / 8];
    uint8_t qs[ST_QK_K / 2];
} st_block_q5_K;                                                                    /* 176 B */
typedef struct {
    uint8_t ql[ST_QK_K / 2];
    uint8_t qh[ST_QK_K / 4];
    int8_t scales[ST_QK_K / 16];
    st_fp16 d;
} st_block_q6_K;                                                                    /* 210 B */
typedef struct {
    float d;
    int8_t qs[ST_QK_K];
    int16_t bsums[ST_QK_K / 16];
} st_block_q8_K;                                                                    /* 292 B */

typedef void (*st_to_float_fn)(const void *x, float *y, int64_t n);
typedef void (*st_from_float_fn)(const float *x, void *y, int64_t n);
/* s = dot(x, y) over n elements; x is a row of the weight type, y a row of
 * its vec_dot_type (already quantized). */
typedef void (*st_vec_dot_fn)(int n, float *s, const void *x, const void *y);
/* Multi-column dot, for batches of tokens: s[j] = dot(x, y + j * by) for j in
 * [0, ny), 1 <= ny <= ST_VEC_DOT_NC_MAX. x is one weight row of n elements, y
 * the first of ny activation rows of the vec_dot_type, `by` bytes apart. Each
 * weight block is loaded and unpacked once for all ny rows; the results equal
 * vec_dot's within float rounding (the same integer math, only the order of
 * the float accumulation may differ). Activation rows (here, in vec_dot and
 * in gemm) may start at any even address: the kernels read Q8_K blocks and
 * F32 values through memcpy / unaligned loads (quant_impl.h), and the other
 * vec_dot types hold only 2-byte fields. */
typedef void (*st_vec_dot_nc_fn)(int n, float *s, const void *x, const void *y, size_t by, int ny);
#define ST_VEC_DOT_NC_MAX 4

/* Batched products on repacked weight rows, for prompt processing (optional:
 * NULL where this CPU or type has none; the caller then uses vec_dot_nc).
 * gemm_repack converts ST_GEMM_ROWS consecutive weight rows of n elements
 * (x, rows bx bytes apart) into the kernel's interleaved layout at dst, which
 * holds n / blck_size * gemm_block_bytes bytes and is 32-byte aligned. gemm
 * then computes s[c * bs + r] = dot(row r, y + c * by) for r in
 * [0, ST_GEMM_ROWS) and c in [0, ny), any ny >= 1, y rows of the vec_dot_type
 * as for vec_dot. Repacking once per block of rows and reusing it for every
 * token turns the per-token work into plain multiply-adds on 8 rows at once
 * (one lane per row), with no per-block unpacking or horizontal sums. Results
 * equal vec_dot's within float rounding (exact integer block sums; the float
 * scaling is grouped differently). */
#define ST_GEMM_ROWS 8
typedef void (*st_gemm_repack_fn)(int n, const void *x, size_t bx, void *dst);
typedef void (*st_gemm_fn)(int n, float *s, size_t bs, const void *xr, const void *y, size_t by, int ny);

typedef struct st_type_traits {
    const char *name;        /* "Q4_K", "F16", ... */
    int blck_size;           /* elements per block (1 for plain types) */
    size_t type_size;        /* bytes per block */
    bool is_quantized;
    bool supported;          /* we can compute with it (to_float and vec_dot set) */
    st_type vec_dot_type;    /* what activations are converted to */
    st_to_float_fn to_float;      /* dequantize a row; n multiple of blck_size */
    st_from_float_fn from_float;  /* quantize a row; NULL where not provided */
    st_vec_dot_fn vec_dot;        /* NULL where not supported */
    st_vec_dot_nc_fn vec_dot_nc;  /* set wherever vec_dot is (SIMD or a loop over vec_dot) */
    size_t gemm_block_bytes;      /* repacked bytes per blck_size elements of ST_GEMM_ROWS rows */
    st_gemm_repack_fn gemm_repack; /* NULL where there is no gemm kernel */
    st_gemm_fn gemm;
} st_type_traits;

/* Fastest kernels for this CPU (AVX2/FMA when cpuid says so). Valid for any
 * t < ST_TYPE_COUNT; unknown ids get name NULL. Thread-safe after first call. */
const st_type_traits *st_type_traits_get(st_type t);
/* Plain-C reference kernels, which the SIMD ones are tested against. */
const st_type_traits *st_type_traits_ref(st_type t);

/* true when the running CPU has AVX2+FMA+F16C and the SIMD kernels are used */
bool st_cpu_has_avx2(void);
/* true when, on top of that, the CPU has AVX-VNNI and its decode kernels
 * (vec_dot for Q4_0, Q5_0, Q8_0, Q2_K..Q6_K) are used; STRATA_NO_VNNI=1
 * turns them off. Results are bit-identical either way. */
bool st_cpu_has_avxvnni(void);

const char *st_type_name(st_type t);  /* NULL for unknown ids */
/* bytes of a row of n elements; 0 if n is not a multiple of the block size */
size_t st_row_size(st_type t, int64_t n);

float st_fp16_to_fp32(st_fp16 h);
st_fp16 st_fp32_to_fp16(float f);
float st_bf16_to_fp32(st_bf16 h);
st_bf16 st_fp32_to_bf16(float f);

/* Quantize n floats into `out` for the given type using the reference
 * quantizer (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K..Q6_K, Q8_K, F16, BF16,
 * F32). Returns bytes written, 0 if the type has no quantizer. */
size_t st_quantize_row(st_type t, const float *x, void *out, int64_t n);

#endif
