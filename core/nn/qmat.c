/*
 * qmat.c — f16 and q8 weight matrices for inference (see qmat.h): the
 * conversions, the matrix-vector kernels (AVX2/FMA/F16C when the CPU has
 * them, a scalar path with the same arithmetic otherwise) and the many-row
 * path through f32 tiles and sgemm.
 */
#include "config.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "qmat.h"
#include "util.h"

/* -DLMP_NO_SIMD builds only the portable path (as on any other CPU) */
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(LMP_NO_SIMD)
#define QMAT_X86 1
#include <immintrin.h>
#endif

/* Parallel regions cost a few microseconds: only for matrices big enough. */
#define QMAT_OMP_MIN (1 << 16)
/* Rows of W converted to f32 at once by the many-row path. */
#define QMAT_TILE 128

int lmp_weights_parse(const char *s, const char *what, int *fmt)
{
    static const char *const names[] = { "f32", "f16", "q8" };
    for (int i = 0; i < 3; i++)
        if (strcmp(s, names[i]) == 0) {
            *fmt = i;
            return 0;
        }
    return lmp_error("%s: unknown weight format '%s' (f32, f16 or q8)", what, s);
}

const char *lmp_weights_name(int fmt)
{
    return fmt == LMP_WEIGHTS_F16 ? "f16" : fmt == LMP_WEIGHTS_Q8 ? "q8" : "f32";
}

/* ------------------------------------------------------------ f16 scalars */

uint16_t lmp_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* infinity, or NaN: quiet, top payload bits kept (as F16C does) */
        return (uint16_t)(ax == 0x7f800000u ? sign | 0x7c00u : sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds past 65504 */
    if (ax < 0x38800000u) {                                   /* below 2^-14: subnormal or zero */
        if (ax < 0x33000000u) return (uint16_t)sign;          /* below 2^-25: rounds to zero */
        uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u, shift = 126 - e;
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++; /* may carry into the smallest normal */
        return (uint16_t)(sign | q);
    }
    uint32_t h = (ax - 0x38000000u) >> 13, rem = ax & 0x1fffu; /* rebias 127 -> 15 */
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

float lmp_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
    if (e == 0) {
        if (m == 0) {
            x = sign;
        } else { /* subnormal: normalise */
            uint32_t s = 0;
            while (!(m & 0x400u)) m <<= 1, s++;
            x = sign | ((113 - s) << 23) | ((m & 0x3ffu) << 13);
        }
    } else if (e == 31) {
        x = sign | 0x7f800000u | (m << 13);
    } else {
        x = sign | ((e + 112) << 23) | (m << 13);
    }
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

/* ------------------------------------------------------------ dispatch */

static int simd_on = -1; /* -1: not yet decided */

static int cpu_has_simd(void)
{
#ifdef QMAT_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}

static int use_simd(void)
{
    if (simd_on < 0) simd_on = cpu_has_simd();
    return simd_on;
}

int lmp_qmat_simd(int on)
{
    simd_on = on ? cpu_has_simd() : 0;
    return simd_on;
}

/* ------------------------------------------------------------ scalar kernels
 * Each mirrors its SIMD twin below lane for lane: 8-wide accumulators updated
 * with fmaf, combined and reduced in the same order. */

/* The SIMD horizontal sum of 8 lanes: (lo + hi) halves, then pairs. */
static float hsum8_scalar(const float a[8])
{
    float s[4];
    for (int i = 0; i < 4; i++) s[i] = a[i] + a[i + 4];
    float t0 = s[0] + s[2], t1 = s[1] + s[3];
    return t0 + t1;
}

static float dot_f16_scalar(const uint16_t *w, const float *x, int C)
{
    float acc[4][8] = { { 0 } };
    int i = 0;
    for (; i + 32 <= C; i += 32)
        for (int u = 0; u < 4; u++)
            for (int j = 0; j < 8; j++)
                acc[u][j] = fmaf(lmp_f16_to_f32(w[i + 8 * u + j]), x[i + 8 * u + j], acc[u][j]);
    for (; i + 8 <= C; i += 8)
        for (int j = 0; j < 8; j++) acc[0][j] = fmaf(lmp_f16_to_f32(w[i + j]), x[i + j], acc[0][j]);
    float a[8];
    for (int j = 0; j < 8; j++) a[j] = (acc[0][j] + acc[1][j]) + (acc[2][j] + acc[3][j]);
    float r = hsum8_scalar(a);
    for (; i < C; i++) r = fmaf(lmp_f16_to_f32(w[i]), x[i], r);
    return r;
}

/* One block's integer dot product as the SIMD path forms it: lane j holds
 * the sum of elements 4j .. 4j+3. */
static void block_q8_scalar(const int8_t *q, const int8_t *xq, float scale, float acc[8])
{
    for (int j = 0; j < 8; j++) {
        int32_t s = 0;
        for (int k = 4 * j; k < 4 * j + 4; k++) s += (int32_t)q[k] * xq[k];
        acc[j] = fmaf(scale, (float)s, acc[j]);
    }
}

static float dot_q8_scalar(const int8_t *q, const float *d, const int8_t *xq, const float *xd, int nb)
{
    float acc0[8] = { 0 }, acc1[8] = { 0 };
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        block_q8_scalar(q + 32 * b, xq + 32 * b, d[b] * xd[b], acc0);
        block_q8_scalar(q + 32 * (b + 1), xq + 32 * (b + 1), d[b + 1] * xd[b + 1], acc1);
    }
    if (b < nb) block_q8_scalar(q + 32 * b, xq + 32 * b, d[b] * xd[b], acc0);
    float a[8];
    for (int j = 0; j < 8; j++) a[j] = acc0[j] + acc1[j];
    return hsum8_scalar(a);
}

/* ------------------------------------------------------------ SIMD kernels */

#ifdef QMAT_X86
#define QMAT_TARGET __attribute__((target("avx2,fma,f16c")))

QMAT_TARGET static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s)); /* (s0 + s2, s1 + s3) */
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

QMAT_TARGET static float dot_f16_avx2(const uint16_t *w, const float *x, int C)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
#define CVT(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
    for (; i + 32 <= C; i += 32) {
        a0 = _mm256_fmadd_ps(CVT(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(CVT(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(CVT(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(CVT(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= C; i += 8) a0 = _mm256_fmadd_ps(CVT(w + i), _mm256_loadu_ps(x + i), a0);
#undef CVT
    float r = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < C; i++) r = fmaf(_cvtsh_ss(w[i]), x[i], r);
    return r;
}

/* acc += scale * (lane sums of 4 products of q and xq): |q|, |xq| <= 127, so
 * the pairwise int16 sums of maddubs cannot saturate (2 * 127 * 127). */
QMAT_TARGET static inline __m256 block_q8_avx2(const int8_t *q, const int8_t *xq, float scale, __m256 acc)
{
    __m256i w = _mm256_loadu_si256((const __m256i *)q), x = _mm256_loadu_si256((const __m256i *)xq);
    __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    __m256i p32 = _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
    return _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(p32), acc);
}

QMAT_TARGET static float dot_q8_avx2(const int8_t *q, const float *d, const int8_t *xq, const float *xd, int nb)
{
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        acc0 = block_q8_avx2(q + 32 * b, xq + 32 * b, d[b] * xd[b], acc0);
        acc1 = block_q8_avx2(q + 32 * (b + 1), xq + 32 * (b + 1), d[b + 1] * xd[b + 1], acc1);
    }
    if (b < nb) acc0 = block_q8_avx2(q + 32 * b, xq + 32 * b, d[b] * xd[b], acc0);
    return hsum8(_mm256_add_ps(acc0, acc1));
}

QMAT_TARGET static void f32_to_f16_avx2(uint16_t *dst, const float *src, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = lmp_f32_to_f16(src[i]);
}

QMAT_TARGET static void f16_to_f32_avx2(float *dst, const uint16_t *src, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = _cvtsh_ss(src[i]);
}
#endif

/* ------------------------------------------------------------ matrix-vector */

void lmp_nn_matvec_f16_forward(float *out, const uint16_t *w, const float *x, const float *bias,
                        int OC, int C)
{
    int simd = use_simd();
    #pragma omp parallel for schedule(static) if ((size_t)OC * C >= QMAT_OMP_MIN)
    for (int o = 0; o < OC; o++) {
        const uint16_t *row = w + (size_t)o * C;
#ifdef QMAT_X86
        float r = simd ? dot_f16_avx2(row, x, C) : dot_f16_scalar(row, x, C);
#else
        float r = dot_f16_scalar(row, x, C);
#endif
        out[o] = bias ? r + bias[o] : r;
    }
    (void)simd;
}

void lmp_qmat_quantize_q8_row(int8_t *q, float *d, const float *x, int C)
{
    int nb = (C + LMP_Q8_BLOCK - 1) / LMP_Q8_BLOCK;
    for (int b = 0; b < nb; b++) {
        int i0 = b * LMP_Q8_BLOCK, i1 = i0 + LMP_Q8_BLOCK < C ? i0 + LMP_Q8_BLOCK : C;
        float amax = 0;
        for (int i = i0; i < i1; i++) amax = fmaxf(amax, fabsf(x[i]));
        float scale = amax / 127.0f, inv = amax > 0 ? 127.0f / amax : 0.0f;
        d[b] = scale;
        for (int i = i0; i < i1; i++) {
            long v = lrintf(x[i] * inv);
            q[i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
        }
        for (int i = i1; i < i0 + LMP_Q8_BLOCK; i++) q[i] = 0;
    }
}

void lmp_nn_matvec_q8_forward(float *out, const int8_t *q, const float *d, const float *x,
                       const float *bias, int OC, int C, int8_t *xq, float *xd)
{
    int nb = (C + LMP_Q8_BLOCK - 1) / LMP_Q8_BLOCK, simd = use_simd();
    lmp_qmat_quantize_q8_row(xq, xd, x, C);
    #pragma omp parallel for schedule(static) if ((size_t)OC * C >= QMAT_OMP_MIN)
    for (int o = 0; o < OC; o++) {
        const int8_t *row = q + (size_t)o * nb * LMP_Q8_BLOCK;
        const float *rd = d + (size_t)o * nb;
#ifdef QMAT_X86
        float r = simd ? dot_q8_avx2(row, rd, xq, xd, nb) : dot_q8_scalar(row, rd, xq, xd, nb);
#else
        float r = dot_q8_scalar(row, rd, xq, xd, nb);
#endif
        out[o] = bias ? r + bias[o] : r;
    }
    (void)simd;
}

/* ------------------------------------------------------------ many rows */

/* Rows r0 .. r0+n of W as f32 into t[n, cols]. */
static void tile_to_f32(float *t, const lmp_qmat *w, int r0, int n)
{
    int C = w->cols, simd = use_simd();
    #pragma omp parallel for schedule(static) if ((size_t)n * C >= QMAT_OMP_MIN)
    for (int r = 0; r < n; r++) {
        float *dst = t + (size_t)r * C;
        if (w->fmt == LMP_WEIGHTS_F16) {
            const uint16_t *src = w->h + (size_t)(r0 + r) * C;
#ifdef QMAT_X86
            if (simd) {
                f16_to_f32_avx2(dst, src, C);
                continue;
            }
#endif
            for (int i = 0; i < C; i++) dst[i] = lmp_f16_to_f32(src[i]);
        } else {
            const int8_t *src = w->q + (size_t)(r0 + r) * w->nb * LMP_Q8_BLOCK;
            const float *d = w->d + (size_t)(r0 + r) * w->nb;
            for (int i = 0; i < C; i++) dst[i] = d[i / LMP_Q8_BLOCK] * (float)src[i];
        }
    }
    (void)simd;
}

void lmp_qmat_forward(float *out, const float *inp, const lmp_qmat *w, const float *bias, int N)
{
    int OC = w->rows, C = w->cols;
    if (N == 1) {
        if (w->fmt == LMP_WEIGHTS_F16) {
            lmp_nn_matvec_f16_forward(out, w->h, inp, bias, OC, C);
        } else {
            int8_t *xq = mallocCheck((size_t)w->nb * LMP_Q8_BLOCK);
            float *xd = mallocCheck((size_t)w->nb * sizeof(float));
            lmp_nn_matvec_q8_forward(out, w->q, w->d, inp, bias, OC, C, xq, xd);
            free(xq);
            free(xd);
        }
        return;
    }
    const float *x = inp;
    float *xr = NULL;
    if (w->fmt == LMP_WEIGHTS_Q8) { /* the inputs rounded as the matrix-vector kernel rounds them */
        xr = mallocCheck((size_t)N * C * sizeof(float));
        #pragma omp parallel if ((size_t)N * C >= QMAT_OMP_MIN)
        {
            int8_t *q = mallocCheck((size_t)w->nb * LMP_Q8_BLOCK);
            float *d = mallocCheck((size_t)w->nb * sizeof(float));
            #pragma omp for schedule(static)
            for (int n = 0; n < N; n++) {
                lmp_qmat_quantize_q8_row(q, d, inp + (size_t)n * C, C);
                for (int i = 0; i < C; i++) xr[(size_t)n * C + i] = d[i / LMP_Q8_BLOCK] * (float)q[i];
            }
            free(q);
            free(d);
        }
        x = xr;
    }
    if (bias)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof(float));
    int tile = OC < QMAT_TILE ? OC : QMAT_TILE;
    float *t = mallocCheck((size_t)tile * C * sizeof(float));
    for (int r0 = 0; r0 < OC; r0 += tile) {
        int n = OC - r0 < tile ? OC - r0 : tile;
        tile_to_f32(t, w, r0, n);
        /* out[:, r0:r0+n] (+)= x[N, C] @ t[n, C]^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, n, C, 1.0f, x, C, t, C,
                    bias ? 1.0f : 0.0f, out + r0, OC);
    }
    free(t);
    free(xr);
}

/* ------------------------------------------------------------ conversion */

/* dst[n] = src[n] in f16 (F16C when there, else lmp_f32_to_f16: the same bits). */
static void f32_to_f16_row(uint16_t *dst, const float *src, size_t n)
{
#ifdef QMAT_X86
    if (use_simd()) {
        f32_to_f16_avx2(dst, src, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = lmp_f32_to_f16(src[i]);
}

/* Zeroed memory for a matrix; big ones on 2 MB pages, which spare the TLB a
 * miss every 4 KB when the kernels stream them. */
static void *big_alloc(size_t bytes)
{
    const size_t huge = (size_t)2 << 20;
    if (bytes < huge) return callocCheck(1, bytes ? bytes : 1);
    size_t rounded = (bytes + huge - 1) / huge * huge;
    void *p = aligned_alloc(huge, rounded);
    if (!p) p = mallocCheck(rounded);
#ifdef MADV_HUGEPAGE
    madvise(p, rounded, MADV_HUGEPAGE);
#endif
    memset(p, 0, bytes);
    return p;
}

int lmp_qmat_new(lmp_qmat **out, int fmt, const float *w, int rows, int cols, int transposed,
                 const char *name)
{
    *out = NULL;
    if (fmt != LMP_WEIGHTS_F16 && fmt != LMP_WEIGHTS_Q8)
        return lmp_error("%s: no low-precision copy for weight format %d", name, fmt);
    if (rows < 1 || cols < 1) return lmp_error("%s: empty matrix [%d, %d]", name, rows, cols);
    size_t R = (size_t)rows, C = (size_t)cols;
    if (fmt == LMP_WEIGHTS_F16) { /* a weight that would become infinite is refused, not clipped */
        for (size_t i = 0; i < R * C; i++)
            if (!(fabsf(w[i]) < 65520.0f)) {
                size_t a = i / (transposed ? R : C), b = i % (transposed ? R : C);
                return lmp_error("%s: weight %g at [%zu,%zu] does not fit in f16 (largest 65504): "
                                 "use f32 or q8", name, w[i], a, b);
            }
    }
    lmp_qmat *m = callocCheck(1, sizeof *m);
    m->fmt = fmt;
    m->rows = rows;
    m->cols = cols;
    int nb = (cols + LMP_Q8_BLOCK - 1) / LMP_Q8_BLOCK;
    if (fmt == LMP_WEIGHTS_F16) {
        m->h = big_alloc(R * C * sizeof(uint16_t));
    } else {
        m->nb = nb;
        m->q = big_alloc(R * nb * LMP_Q8_BLOCK);
        m->d = big_alloc(R * nb * sizeof(float));
    }
    /* GATHER rows of W at a time: from [cols, rows] each reads one 64-byte
     * line per column instead of a line per element */
    enum { GATHER = 16 };
    #pragma omp parallel if (R * C >= QMAT_OMP_MIN)
    {
        float *buf = mallocCheck(GATHER * C * sizeof(float));
        #pragma omp for schedule(static)
        for (int r0 = 0; r0 < rows; r0 += GATHER) {
            int n = rows - r0 < GATHER ? rows - r0 : GATHER;
            const float *src = buf;
            if (transposed) {
                for (size_t c = 0; c < C; c++)
                    for (int j = 0; j < n; j++) buf[(size_t)j * C + c] = w[c * R + r0 + j];
            } else {
                src = w + (size_t)r0 * C;
            }
            for (int j = 0; j < n; j++) {
                const float *row = src + (size_t)j * C;
                size_t r = (size_t)r0 + j;
                if (fmt == LMP_WEIGHTS_F16)
                    f32_to_f16_row(m->h + r * C, row, C);
                else
                    lmp_qmat_quantize_q8_row(m->q + r * nb * LMP_Q8_BLOCK, m->d + r * nb, row, cols);
            }
        }
        free(buf);
    }
    *out = m;
    return 0;
}

void lmp_qmat_free(lmp_qmat *m)
{
    if (!m) return;
    free(m->h);
    free(m->q);
    free(m->d);
    free(m);
}

size_t lmp_qmat_bytes(const lmp_qmat *m)
{
    if (m->fmt == LMP_WEIGHTS_F16) return (size_t)m->rows * m->cols * sizeof(uint16_t);
    return (size_t)m->rows * m->nb * (LMP_Q8_BLOCK + sizeof(float));
}
