/*
 * qmat.h — inference-only low-precision copies of weight matrices and the
 * kernels that read them: IEEE half (f16) and int8 in blocks of 32 with one
 * fp32 scale per block (q8, like ggml's q8_0).
 *
 * Batch-1 generation streams every weight once per token, so its speed is
 * the memory bandwidth divided by the bytes of weights: f16 halves them, q8
 * takes them to 1.125 bytes per weight.  The matrix-vector kernels convert
 * inside the inner loop (no f32 copy of the matrix is ever made); several
 * rows (a prompt, a perplexity window) go through f32 tiles of the matrix
 * and sgemm instead.
 *
 * Layout: W[rows, cols] row-major with rows = output features and cols =
 * inputs (the transpose of HF Conv1D's [in, out]), so that a block of 32
 * runs along the input dimension, i.e. along the dot product.
 *   f16: h[rows, cols]
 *   q8:  q[rows, nb*32] int8 in [-127, 127], zero-padded past cols, and
 *        d[rows, nb] scales, nb = ceil(cols / 32): w = d * q, d = max|w| / 127
 * The q8 matrix-vector kernel also quantises its input vector to int8 per
 * block of 32 (same rule), so each block's dot product is an exact integer
 * sum times two scales; the many-row path applies the same rounding to its
 * inputs so that perplexity measures what generation computes.
 *
 * SIMD: on x86-64 with AVX2, FMA and F16C (checked at run time) the kernels
 * use them; elsewhere (or built with -DLMP_NO_SIMD) a portable scalar path
 * runs.  The scalar path does the
 * same float operations in the same order (8 lanes, fmaf), so the two give
 * bit-identical results — tests/check_qmat.c holds them to that.
 */
#ifndef LMP_QMAT_H
#define LMP_QMAT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Weight formats of a model used for inference. */
enum { LMP_WEIGHTS_F32 = 0, LMP_WEIGHTS_F16 = 1, LMP_WEIGHTS_Q8 = 2 };
#define LMP_WEIGHTS_CHOICES "f32|f16|q8"
#define LMP_Q8_BLOCK 32

/* "f32" / "f16" / "q8" -> LMP_WEIGHTS_*; anything else is an error naming
 * `what` (the flag or parameter) and the value. */
int lmp_weights_parse(const char *s, const char *what, int *fmt);
const char *lmp_weights_name(int fmt);

typedef struct lmp_qmat {
    int fmt;        /* LMP_WEIGHTS_F16 or LMP_WEIGHTS_Q8 */
    int rows, cols; /* W[rows, cols] */
    int nb;         /* q8: blocks per row */
    uint16_t *h;    /* f16: [rows, cols] */
    int8_t *q;      /* q8: [rows, nb * 32] */
    float *d;       /* q8: [rows, nb] */
} lmp_qmat;

/* A copy of w in format fmt.  w is [cols, rows] (HF Conv1D [in, out]) when
 * transposed, else [rows, cols].  `name` goes into errors: a weight whose
 * magnitude does not fit in f16 (it would round to infinity) is one. */
int lmp_qmat_new(lmp_qmat **out, int fmt, const float *w, int rows, int cols, int transposed,
                 const char *name);
void lmp_qmat_free(lmp_qmat *m);
/* Bytes a matrix-vector product reads from the matrix. */
size_t lmp_qmat_bytes(const lmp_qmat *m);

/* out[N, rows] = inp[N, cols] @ W^T + bias[rows] (bias may be NULL).  N == 1
 * is the matrix-vector kernel; N > 1 converts tiles of W to f32 for sgemm. */
void lmp_qmat_forward(float *out, const float *inp, const lmp_qmat *w, const float *bias, int N);

/* ------------------------------------------------------------ kernels */

/* out[OC] = W[OC, C] @ x[C] + bias[OC] (bias may be NULL), W in f16. */
void lmp_nn_matvec_f16_forward(float *out, const uint16_t *w, const float *x, const float *bias,
                        int OC, int C);
/* The same with W in q8 (q[OC, nb*32], d[OC, nb]); x is quantised per block
 * into xq[nb*32] and xd[nb] (scratch). */
void lmp_nn_matvec_q8_forward(float *out, const int8_t *q, const float *d, const float *x,
                       const float *bias, int OC, int C, int8_t *xq, float *xd);
/* Quantise x[C] to q8 blocks: q[nb*32] (zero-padded), d[nb]. */
void lmp_qmat_quantize_q8_row(int8_t *q, float *d, const float *x, int C);

/* f16 <-> f32, round to nearest even; overflow gives infinity, NaN stays a
 * (quiet) NaN with its sign, subnormals are kept. */
uint16_t lmp_f32_to_f16(float f);
float lmp_f16_to_f32(uint16_t h);

/* Whether the AVX2/FMA/F16C kernels run.  lmp_qmat_simd(0) forces the scalar
 * path, lmp_qmat_simd(1) restores the default; returns whether the SIMD path
 * is on afterwards (0 on CPUs without it).  For tests and benchmarks. */
int lmp_qmat_simd(int on);

#ifdef __cplusplus
}
#endif

#endif
