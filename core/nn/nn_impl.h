/*
 * nn_impl.h — the bodies of the kernels declared in nn.h, written once over a
 * `real` type.  Not a public header: it is included by
 *   core/nn/nn.c        with NN_REAL float,  names as in nn.h, cblas_sgemm;
 *   tests/check_nn.c with NN_REAL double, names with _f64,  cblas_dgemm,
 * so the tests can check every backward kernel against central finite
 * differences in double precision, and the float kernels against the double
 * ones, from the very same source.
 *
 * Before including, define: NN_REAL, NN_FN(name), NN_GEMM, NN_GEMV.
 * <tgmath.h> makes exp/log/tanh/sqrt pick the float or double function from
 * the argument type; constants are written as (real) so float code stays in
 * float.
 */
#include <cblas.h>
#include <string.h>
#include <tgmath.h>

#include "exp_nonpos.h"
#include "nn.h"
#include "util.h"

typedef NN_REAL real;

/* Parallelise a loop only when it is large enough to pay for the threads. */
#ifndef NN_OMP_MIN
#define NN_OMP_MIN 32768
#endif

/* Column block for kernels that reduce over rows into per-column sums
 * (dweight, dbias): each thread owns a block of columns, so the sums need no
 * atomics and the result does not depend on the thread count. */
#ifndef NN_COLBLOCK
#define NN_COLBLOCK 64
#endif

/* ------------------------------------------------------------ embeddings */

static int NN_FN(nn_check_ids)(const int *ids, size_t n, int V, int T, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= V) {
            if (T > 0)
                return lmp_error("%s id %d at [%zu,%zu] out of range [0, %d)", what, ids[i],
                                 i / (size_t)T, i % (size_t)T, V);
            return lmp_error("%s id %d at row %zu out of range [0, %d)", what, ids[i], i, V);
        }
    }
    return 0;
}

int NN_FN(encoder_forward)(real *out, const int *inp, const real *wte, const real *wpe,
                           int B, int T, int C, int V)
{
    if (NN_FN(nn_check_ids)(inp, (size_t)B * T, V, T, "token") != 0) return -1;
    #pragma omp parallel for if ((size_t)B * T * C >= NN_OMP_MIN)
    for (int bt = 0; bt < B * T; bt++) {
        real *o = out + (size_t)bt * C;
        const real *we = wte + (size_t)inp[bt] * C;
        const real *pe = wpe + (size_t)(bt % T) * C;
        for (int i = 0; i < C; i++) o[i] = we[i] + pe[i];
    }
    return 0;
}

void NN_FN(encoder_backward)(real *dwte, real *dwpe, const real *dout, const int *inp,
                             int B, int T, int C)
{
    if (dwte) {
        /* A scatter: rows with the same token collide, so stay serial (N*C is tiny
         * next to the matmuls). */
        for (int bt = 0; bt < B * T; bt++) {
            const real *d = dout + (size_t)bt * C;
            real *g = dwte + (size_t)inp[bt] * C;
            for (int i = 0; i < C; i++) g[i] += d[i];
        }
    }
    if (dwpe) {
        #pragma omp parallel for if ((size_t)B * T * C >= NN_OMP_MIN)
        for (int t = 0; t < T; t++) {
            real *g = dwpe + (size_t)t * C;
            for (int b = 0; b < B; b++) {
                const real *d = dout + ((size_t)b * T + t) * C;
                for (int i = 0; i < C; i++) g[i] += d[i];
            }
        }
    }
}

int NN_FN(embedding_forward)(real *out, const int *ids, const real *table, int N, int V, int E)
{
    if (NN_FN(nn_check_ids)(ids, (size_t)N, V, 0, "embedding") != 0) return -1;
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * E, table + (size_t)ids[n] * E, (size_t)E * sizeof(real));
    return 0;
}

void NN_FN(embedding_backward)(real *dtable, const real *dout, const int *ids, int N, int E)
{
    if (!dtable) return;
    for (int n = 0; n < N; n++) {
        const real *d = dout + (size_t)n * E;
        real *g = dtable + (size_t)ids[n] * E;
        for (int i = 0; i < E; i++) g[i] += d[i];
    }
}

/* ------------------------------------------------------------ layernorm */

void NN_FN(layernorm_forward)(real *out, real *mean, real *rstd, const real *inp,
                              const real *weight, const real *bias, int N, int C)
{
    const real eps = (real)LAYERNORM_EPS;
    #pragma omp parallel for if ((size_t)N * C >= NN_OMP_MIN)
    for (int n = 0; n < N; n++) {
        const real *x = inp + (size_t)n * C;
        real m = 0;
        for (int i = 0; i < C; i++) m += x[i];
        m /= C;
        real var = 0; /* two passes: no cancellation for rows with a large mean */
        for (int i = 0; i < C; i++) { real d = x[i] - m; var += d * d; }
        var /= C;
        real s = (real)1 / sqrt(var + eps);
        real *o = out + (size_t)n * C;
        for (int i = 0; i < C; i++) o[i] = (x[i] - m) * s * weight[i] + bias[i];
        if (mean) mean[n] = m;
        if (rstd) rstd[n] = s;
    }
}

void NN_FN(layernorm_backward)(real *dinp, real *dweight, real *dbias, const real *dout,
                               const real *inp, const real *weight, const real *mean,
                               const real *rstd, int N, int C)
{
    if (dinp) {
        #pragma omp parallel for if ((size_t)N * C >= NN_OMP_MIN)
        for (int n = 0; n < N; n++) {
            const real *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
            real m = mean[n], s = rstd[n];
            /* dinp = s * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)) */
            real dnorm_mean = 0, dnorm_norm_mean = 0;
            for (int i = 0; i < C; i++) {
                real norm = (x[i] - m) * s, dnorm = weight[i] * d[i];
                dnorm_mean += dnorm;
                dnorm_norm_mean += dnorm * norm;
            }
            dnorm_mean /= C;
            dnorm_norm_mean /= C;
            real *g = dinp + (size_t)n * C;
            for (int i = 0; i < C; i++) {
                real norm = (x[i] - m) * s, dnorm = weight[i] * d[i];
                g[i] += (dnorm - dnorm_mean - norm * dnorm_norm_mean) * s;
            }
        }
    }
    if (dweight || dbias) {
        int nblk = (C + NN_COLBLOCK - 1) / NN_COLBLOCK;
        #pragma omp parallel for if ((size_t)N * C >= NN_OMP_MIN)
        for (int blk = 0; blk < nblk; blk++) {
            int c0 = blk * NN_COLBLOCK, c1 = c0 + NN_COLBLOCK < C ? c0 + NN_COLBLOCK : C;
            real gw[NN_COLBLOCK], gb[NN_COLBLOCK];
            for (int i = 0; i < c1 - c0; i++) gw[i] = gb[i] = 0;
            for (int n = 0; n < N; n++) {
                const real *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
                real m = mean[n], s = rstd[n];
                for (int i = c0; i < c1; i++) {
                    gw[i - c0] += (x[i] - m) * s * d[i];
                    gb[i - c0] += d[i];
                }
            }
            for (int i = c0; i < c1; i++) {
                if (dweight) dweight[i] += gw[i - c0];
                if (dbias) dbias[i] += gb[i - c0];
            }
        }
    }
}

/* ------------------------------------------------------------ matmul */

void NN_FN(matmul_forward)(real *out, const real *inp, const real *weight, const real *bias,
                           int N, int C, int OC)
{
    if (bias) {
        #pragma omp parallel for if ((size_t)N * OC >= NN_OMP_MIN)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof(real));
    }
    NN_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, OC, C, 1, inp, C, weight, OC,
            bias ? 1 : 0, out, OC);
}

/* dbias[OC] += column sums of dout[N,OC], in column blocks (see NN_COLBLOCK). */
static void NN_FN(nn_colsum_acc)(real *dbias, const real *dout, int N, int OC)
{
    int nblk = (OC + NN_COLBLOCK - 1) / NN_COLBLOCK;
    #pragma omp parallel for if ((size_t)N * OC >= NN_OMP_MIN)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * NN_COLBLOCK, c1 = c0 + NN_COLBLOCK < OC ? c0 + NN_COLBLOCK : OC;
        real acc[NN_COLBLOCK];
        for (int i = 0; i < c1 - c0; i++) acc[i] = 0;
        for (int n = 0; n < N; n++) {
            const real *d = dout + (size_t)n * OC;
            for (int i = c0; i < c1; i++) acc[i - c0] += d[i];
        }
        for (int i = c0; i < c1; i++) dbias[i] += acc[i - c0];
    }
}

void NN_FN(matmul_backward)(real *dinp, real *dweight, real *dbias, const real *dout,
                            const real *inp, const real *weight, int N, int C, int OC)
{
    if (dinp)
        NN_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, N, C, OC, 1, dout, OC, weight, OC,
                1, dinp, C);
    if (dweight)
        NN_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, C, OC, N, 1, inp, C, dout, OC,
                1, dweight, OC);
    if (dbias) NN_FN(nn_colsum_acc)(dbias, dout, N, OC);
}

void NN_FN(matmul_acc_forward)(real *out, const real *inp, const real *weight,
                               int N, int C, int OC, real alpha)
{
    NN_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, OC, C, alpha, inp, C, weight, OC,
            1, out, OC);
}

void NN_FN(matmul_acc_backward)(real *dinp, real *dweight, const real *dout, const real *inp,
                                const real *weight, int N, int C, int OC, real alpha)
{
    if (dinp)
        NN_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, N, C, OC, alpha, dout, OC, weight, OC,
                1, dinp, C);
    if (dweight)
        NN_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, C, OC, N, alpha, inp, C, dout, OC,
                1, dweight, OC);
}

/* ------------------------------------------------------------ attention */

/* The (b,h) loops below are serial around sgemm: each product is small
 * (T x T x hs), and OpenBLAS threads the larger ones itself; the row-wise
 * softmax between them runs as one OpenMP loop over all B*NH*T rows. */

void NN_FN(attention_forward)(real *out, real *att, const real *qkv, const int *mask,
                              int B, int T, int C, int NH)
{
    int hs = C / NH, C3 = 3 * C;
    real scale = (real)1 / sqrt((real)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const real *q = qkv + (size_t)b * T * C3 + (size_t)h * hs, *k = q + C;
            real *A = att + ((size_t)b * NH + h) * T * T;
            NN_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, scale, q, C3, k, C3,
                    0, A, T);
        }
    #pragma omp parallel for if ((size_t)B * NH * T * T >= NN_OMP_MIN)
    for (long r = 0; r < (long)B * NH * T; r++) {
        int t = (int)(r % T), b = (int)(r / ((long)NH * T));
        const int *mk = mask ? mask + (size_t)b * T : NULL;
        real *a = att + (size_t)r * T;
        real maxv = 0;
        int any = 0;
        for (int j = 0; j <= t; j++)
            if (!mk || mk[j]) {
                if (!any || a[j] > maxv) maxv = a[j];
                any = 1;
            }
        real sum = 0;
        for (int j = 0; j < T; j++) {
            if (j <= t && any && (!mk || mk[j])) {
                a[j] = exp(a[j] - maxv);
                sum += a[j];
            } else {
                a[j] = 0;
            }
        }
        if (any) {
            real inv = (real)1 / sum;
            for (int j = 0; j <= t; j++) a[j] *= inv;
        }
    }
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const real *v = qkv + (size_t)b * T * C3 + (size_t)h * hs + 2 * C;
            const real *A = att + ((size_t)b * NH + h) * T * T;
            NN_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1, A, T, v, C3,
                    0, out + (size_t)b * T * C + (size_t)h * hs, C);
        }
}

void NN_FN(attention_backward)(real *dqkv, real *scratch, const real *dout, const real *qkv,
                               const real *att, int B, int T, int C, int NH)
{
    if (!dqkv) return;
    int hs = C / NH, C3 = 3 * C;
    real scale = (real)1 / sqrt((real)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t bh = ((size_t)b * NH + h) * T * T;
            const real *v = qkv + (size_t)b * T * C3 + (size_t)h * hs + 2 * C;
            const real *d = dout + (size_t)b * T * C + (size_t)h * hs;
            real *dv = dqkv + (size_t)b * T * C3 + (size_t)h * hs + 2 * C;
            /* datt = dout_h @ v^T ;  dv += att^T @ dout_h */
            NN_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1, d, C, v, C3,
                    0, scratch + bh, T);
            NN_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1, att + bh, T, d, C,
                    1, dv, C3);
        }
    /* softmax backward, in place: dpre = att * (datt - sum(att * datt)).
     * Masked and future positions have att = 0, so they get no gradient. */
    #pragma omp parallel for if ((size_t)B * NH * T * T >= NN_OMP_MIN)
    for (long r = 0; r < (long)B * NH * T; r++) {
        const real *a = att + (size_t)r * T;
        real *g = scratch + (size_t)r * T;
        real dot = 0;
        for (int j = 0; j < T; j++) dot += a[j] * g[j];
        for (int j = 0; j < T; j++) g[j] = a[j] * (g[j] - dot);
    }
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t bh = ((size_t)b * NH + h) * T * T;
            const real *q = qkv + (size_t)b * T * C3 + (size_t)h * hs, *k = q + C;
            real *dq = dqkv + (size_t)b * T * C3 + (size_t)h * hs, *dk = dq + C;
            /* pre = scale * q k^T:  dq += scale dpre @ k ;  dk += scale dpre^T @ q */
            NN_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, scale, scratch + bh, T,
                    k, C3, 1, dq, C3);
            NN_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, scale, scratch + bh, T,
                    q, C3, 1, dk, C3);
        }
}

/* ------------------------------------------------------------ elementwise */

/* tanh for GELU as 1 - 2/(exp(2u)+1): glibc's tanhf costs ~40 ns, expf ~5 ns.
 * Near u = 0 this loses relative (not absolute, ~1e-7) accuracy, which GELU
 * does not see because it uses 1 + tanh.  Saturates cleanly: exp overflow
 * gives 1, underflow -1. */
#ifdef NN_GELU_FAST
/* The float build's GELU, written so that `omp simd` vectorises it (no libm
 * call, no float compare: integer masks instead): 2.5x the scalar expf
 * version with SSE2 alone, and GELU was 12-17% of a GPT-2 LoRA step.  With
 * h = 0.5 (1 + tanh u) = sigmoid(2u) and z = exp(-2|u|) in (0, 1]:
 *     h = (u < 0 ? z : 1) / (1 + z),   0.5 sech^2 u = 2 z / (1 + z)^2,
 * which also avoids the cancellation in 1 + tanh u for u << 0 (the float
 * result is then closer to the true value than the tanh formula in double).
 * z from exp_nonpos.h; |u| > 40 (or NaN) gives z = 0. */
static inline float nn_gelu_z(float u, uint32_t *neg)
{
    uint32_t ub, ab, zb;
    memcpy(&ub, &u, 4);
    *neg = ub >> 31;
    ab = ub & 0x7fffffffu;
    uint32_t keep = -(uint32_t)(ab <= 0x42200000u); /* |u| <= 40.0f */
    float a, z;
    memcpy(&a, &ab, 4);
    z = lmp_exp_nonpos(a * -2.0f);
    memcpy(&zb, &z, 4);
    zb &= keep;
    memcpy(&z, &zb, 4);
    return z;
}

/* h = sigmoid(2u), and 0.5 sech^2(u) in *hs (may be NULL) */
static inline float nn_gelu_h(float u, float *hs)
{
    uint32_t neg, zb, nb;
    float z = nn_gelu_z(u, &neg), num;
    memcpy(&zb, &z, 4);
    nb = (zb & -neg) | (0x3f800000u & (neg - 1u)); /* u < 0 ? z : 1 */
    memcpy(&num, &nb, 4);
    float q = 1.0f / (1.0f + z);
    if (hs) *hs = 2.0f * z * q * q;
    return num * q;
}
#else
static inline real NN_FN(nn_gelu_tanh)(real u)
{
    return (real)1 - (real)2 / (exp((real)2 * u) + (real)1);
}
#endif

void NN_FN(gelu_forward)(real *out, const real *inp, size_t n)
{
    const real s = (real)0.7978845608028654, c = (real)0.044715; /* sqrt(2/pi) */
#ifdef NN_GELU_FAST
    #pragma omp parallel for simd if (n >= NN_OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        real x = inp[i];
        out[i] = x * nn_gelu_h(s * (x + c * x * x * x), NULL);
    }
#else
    #pragma omp parallel for if (n >= NN_OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        real x = inp[i];
        out[i] = (real)0.5 * x * ((real)1 + NN_FN(nn_gelu_tanh)(s * (x + c * x * x * x)));
    }
#endif
}

void NN_FN(gelu_backward)(real *dinp, const real *inp, const real *dout, size_t n)
{
    if (!dinp) return;
    const real s = (real)0.7978845608028654, c = (real)0.044715;
#ifdef NN_GELU_FAST
    #pragma omp parallel for simd if (n >= NN_OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        real x = inp[i], hs;
        real h = nn_gelu_h(s * (x + c * x * x * x), &hs);
        dinp[i] += (h + x * hs * s * ((real)1 + (real)3 * c * x * x)) * dout[i];
    }
#else
    #pragma omp parallel for if (n >= NN_OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        real x = inp[i];
        real th = NN_FN(nn_gelu_tanh)(s * (x + c * x * x * x));
        real sech2 = (real)1 - th * th;
        real g = (real)0.5 * ((real)1 + th)
               + (real)0.5 * x * sech2 * s * ((real)1 + (real)3 * c * x * x);
        dinp[i] += g * dout[i];
    }
#endif
}

void NN_FN(residual_forward)(real *out, const real *inp1, const real *inp2, size_t n)
{
    #pragma omp parallel for if (n >= NN_OMP_MIN)
    for (size_t i = 0; i < n; i++) out[i] = inp1[i] + inp2[i];
}

void NN_FN(residual_backward)(real *dinp1, real *dinp2, const real *dout, size_t n)
{
    #pragma omp parallel for if (n >= NN_OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        if (dinp1) dinp1[i] += dout[i];
        if (dinp2) dinp2[i] += dout[i];
    }
}

void NN_FN(tanh_forward)(real *out, const real *inp, size_t n)
{
    #pragma omp parallel for if (n >= NN_OMP_MIN)
    for (size_t i = 0; i < n; i++) out[i] = tanh(inp[i]);
}

void NN_FN(tanh_backward)(real *dinp, const real *out, const real *dout, size_t n)
{
    if (!dinp) return;
    #pragma omp parallel for if (n >= NN_OMP_MIN)
    for (size_t i = 0; i < n; i++) dinp[i] += ((real)1 - out[i] * out[i]) * dout[i];
}

void NN_FN(sigmoid_forward)(real *out, const real *inp, size_t n)
{
    #pragma omp parallel for if (n >= NN_OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        real x = inp[i];
        if (x >= 0) {
            out[i] = (real)1 / ((real)1 + exp(-x));
        } else { /* exp(-x) would overflow for very negative x */
            real e = exp(x);
            out[i] = e / ((real)1 + e);
        }
    }
}

void NN_FN(sigmoid_backward)(real *dinp, const real *out, const real *dout, size_t n)
{
    if (!dinp) return;
    #pragma omp parallel for if (n >= NN_OMP_MIN)
    for (size_t i = 0; i < n; i++) dinp[i] += out[i] * ((real)1 - out[i]) * dout[i];
}

void NN_FN(dropout_forward)(real *out, real *mask, const real *inp, size_t n, real p,
                            lmp_rng *rng)
{
    if (p <= 0) {
        for (size_t i = 0; i < n; i++) { mask[i] = 1; out[i] = inp[i]; }
        return;
    }
    real keep = (real)1 / ((real)1 - p);
    for (size_t i = 0; i < n; i++) {
        mask[i] = lmp_rng_uniform(rng) < p ? 0 : keep;
        out[i] = inp[i] * mask[i];
    }
}

void NN_FN(dropout_backward)(real *dinp, const real *mask, const real *dout, size_t n)
{
    if (!dinp) return;
    #pragma omp parallel for if (n >= NN_OMP_MIN)
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * mask[i];
}

/* ------------------------------------------------------------ softmax / losses */

void NN_FN(softmax_forward)(real *probs, const real *logits, int N, int V)
{
    #pragma omp parallel for if ((size_t)N * V >= NN_OMP_MIN)
    for (int n = 0; n < N; n++) {
        const real *x = logits + (size_t)n * V;
        real *p = probs + (size_t)n * V;
        real maxv = x[0];
        for (int i = 1; i < V; i++) if (x[i] > maxv) maxv = x[i];
        real sum = 0;
        for (int i = 0; i < V; i++) { p[i] = exp(x[i] - maxv); sum += p[i]; }
        real inv = (real)1 / sum;
        for (int i = 0; i < V; i++) p[i] *= inv;
    }
}

void NN_FN(softmax_backward)(real *dlogits, const real *dprobs, const real *probs, int N, int V)
{
    if (!dlogits) return;
    #pragma omp parallel for if ((size_t)N * V >= NN_OMP_MIN)
    for (int n = 0; n < N; n++) {
        const real *p = probs + (size_t)n * V, *dp = dprobs + (size_t)n * V;
        real dot = 0;
        for (int i = 0; i < V; i++) dot += p[i] * dp[i];
        real *g = dlogits + (size_t)n * V;
        for (int i = 0; i < V; i++) g[i] += p[i] * (dp[i] - dot);
    }
}

/* Validate targets ([0,V) or -1) and count the non-ignored rows. */
static int NN_FN(nn_check_targets)(const int *targets, int N, int V, int *count)
{
    int c = 0;
    for (int n = 0; n < N; n++) {
        if (targets[n] == -1) continue;
        if (targets[n] < 0 || targets[n] >= V)
            return lmp_error("target %d at row %d out of range [0, %d)", targets[n], n, V);
        c++;
    }
    *count = c;
    return 0;
}

/* One row of softmax cross-entropy: returns the loss -log p[target] and, if
 * grad_scale != 0, adds grad_scale * (p - onehot) to g[V]. */
static real NN_FN(nn_xent_row)(real *g, const real *x, int target, int V, real grad_scale)
{
    real maxv = x[0];
    for (int i = 1; i < V; i++) if (x[i] > maxv) maxv = x[i];
    real sum = 0;
    for (int i = 0; i < V; i++) sum += exp(x[i] - maxv);
    real logz = maxv + log(sum);
    if (grad_scale != 0)
        for (int i = 0; i < V; i++)
            g[i] += grad_scale * (exp(x[i] - logz) - (i == target ? (real)1 : (real)0));
    return logz - x[target];
}

/* The same for a row that is overwritten by its own gradient (the LM head's
 * scratch): the exponentials are stored in place, so each is computed once.
 * grad_scale == 0: the row is left holding exp(x - max). */
static real NN_FN(nn_xent_row_inplace)(real *x, int target, int V, real grad_scale)
{
    real maxv = x[0];
    for (int i = 1; i < V; i++) if (x[i] > maxv) maxv = x[i];
    real xt = x[target], sum = 0;
    for (int i = 0; i < V; i++) {
        x[i] = exp(x[i] - maxv);
        sum += x[i];
    }
    if (grad_scale != 0) {
        real k = grad_scale / sum;
        for (int i = 0; i < V; i++) x[i] *= k;
        x[target] -= grad_scale;
    }
    return maxv + log(sum) - xt;
}

real NN_FN(softmax_crossentropy_forward_backward)(real *losses, real *dlogits, const real *logits,
                                                  const int *targets, int N, int V)
{
    int count = 0;
    if (NN_FN(nn_check_targets)(targets, N, V, &count) != 0) return NAN;
    if (count == 0) {
        if (losses) for (int n = 0; n < N; n++) losses[n] = 0;
        return 0;
    }
    real scale = dlogits ? (real)1 / count : 0;
    double total = 0;
    #pragma omp parallel for reduction(+:total) if ((size_t)N * V >= NN_OMP_MIN)
    for (int n = 0; n < N; n++) {
        real l = 0;
        if (targets[n] != -1)
            l = NN_FN(nn_xent_row)(dlogits ? dlogits + (size_t)n * V : NULL,
                                   logits + (size_t)n * V, targets[n], V, scale);
        if (losses) losses[n] = l;
        total += l;
    }
    return (real)(total / count);
}

/* One row of the distillation loss; adds scale * d(loss)/d(s) to g when g != NULL. */
static real NN_FN(nn_kd_row)(real *g, const real *s, const real *t, int V, real temp, int kind, real scale)
{
    if (kind == LMP_KD_MSE) {
        real l = 0;
        for (int i = 0; i < V; i++) {
            real d = s[i] - t[i];
            l += d * d;
            if (g) g[i] += scale * (real)2 * d;
        }
        return l;
    }
    /* log-softmax of both, each from its own log-sum-exp, so that neither
     * side is ever the log of a probability that underflowed to 0 */
    real ms = s[0], mt = t[0];
    for (int i = 1; i < V; i++) {
        if (s[i] > ms) ms = s[i];
        if (t[i] > mt) mt = t[i];
    }
    real zs = 0, zt = 0;
    for (int i = 0; i < V; i++) {
        zs += exp((s[i] - ms) / temp);
        zt += exp((t[i] - mt) / temp);
    }
    real lzs = log(zs), lzt = log(zt), kl = 0;
    for (int i = 0; i < V; i++) {
        real lq = (s[i] - ms) / temp - lzs, lp = (t[i] - mt) / temp - lzt, p = exp(lp);
        kl += p * (lp - lq);
        /* d(T^2 KL)/ds_i = T (q_i - p_i) */
        if (g) g[i] += scale * temp * (exp(lq) - p);
    }
    return temp * temp * kl;
}

real NN_FN(kd_loss_forward_backward)(real *losses, real *dstudent, const real *student, const real *teacher,
                                     int N, int V, real temperature, int kind, real scale)
{
    if (kind != LMP_KD_KL && kind != LMP_KD_MSE) {
        lmp_error("kd loss: unknown kind %d", kind);
        return NAN;
    }
    if (kind == LMP_KD_KL && !(temperature > 0)) {
        lmp_error("kd loss: temperature must be > 0, got %g", (double)temperature);
        return NAN;
    }
    if (N < 1) return 0;
    real gscale = scale / (real)N;
    double total = 0;
    #pragma omp parallel for reduction(+:total) if ((size_t)N * V >= NN_OMP_MIN)
    for (int n = 0; n < N; n++) {
        real l = NN_FN(nn_kd_row)(dstudent ? dstudent + (size_t)n * V : NULL, student + (size_t)n * V,
                                  teacher + (size_t)n * V, V, temperature, kind, gscale);
        if (losses) losses[n] = l;
        total += l;
    }
    return (real)(total / N);
}

real NN_FN(lmhead_xent_forward_backward)(const real *x, const real *wte, const int *targets,
                                         int N, int C, int V, real *dx, real *dwte,
                                         real *losses, real *scratch, int chunk)
{
    if (chunk < 1) {
        lmp_error("lmhead_xent: chunk must be >= 1, got %d", chunk);
        return NAN;
    }
    int count = 0;
    if (NN_FN(nn_check_targets)(targets, N, V, &count) != 0) return NAN;
    int grads = (dx || dwte) && count > 0;
    real scale = grads ? (real)1 / count : 0;
    double total = 0;
    for (int n0 = 0; n0 < N; n0 += chunk) {
        int m = N - n0 < chunk ? N - n0 : chunk;
        int live = 0;
        for (int i = 0; i < m; i++) live += targets[n0 + i] != -1;
        if (!live) { /* an all-ignored chunk (padding) costs nothing */
            if (losses) for (int i = 0; i < m; i++) losses[n0 + i] = 0;
            continue;
        }
        const real *xc = x + (size_t)n0 * C;
        /* logits[m,V] = x_chunk @ wte^T */
        NN_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, m, V, C, 1, xc, C, wte, C,
                0, scratch, V);
        double ctotal = 0;
        #pragma omp parallel for reduction(+:ctotal) if ((size_t)m * V >= NN_OMP_MIN)
        for (int i = 0; i < m; i++) {
            real *row = scratch + (size_t)i * V;
            int tg = targets[n0 + i];
            real l = 0;
            if (tg != -1) {
                /* the row becomes its own dlogits, in place */
                l = NN_FN(nn_xent_row_inplace)(row, tg, V, scale);
            } else if (grads) {
                memset(row, 0, (size_t)V * sizeof(real));
            }
            if (losses) losses[n0 + i] = l;
            ctotal += l;
        }
        total += ctotal;
        if (!grads) continue;
        /* dx_chunk += dlogits @ wte ;  dwte += dlogits^T @ x_chunk */
        if (dx)
            NN_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, C, V, 1, scratch, V, wte, C,
                    1, dx + (size_t)n0 * C, C);
        if (dwte)
            NN_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, V, C, m, 1, scratch, V, xc, C,
                    1, dwte, C);
    }
    return count ? (real)(total / count) : 0;
}

real NN_FN(lmhead_xent_forward)(const real *x, const real *wte, const int *targets,
                                int N, int C, int V, real *losses, real *scratch, int chunk)
{
    return NN_FN(lmhead_xent_forward_backward)(x, wte, targets, N, C, V, NULL, NULL, losses,
                                               scratch, chunk);
}

void NN_FN(lmhead_logits)(real *logits, const real *x, const real *wte, int C, int V)
{
    NN_GEMV(CblasRowMajor, CblasNoTrans, V, C, 1, wte, C, x, 1, 0, logits, 1);
}
