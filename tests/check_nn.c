/*
 * check_nn.c — the kernels of nn.h.
 *
 * The kernel source (core/nn/nn_impl.h) is compiled here a second time in double
 * precision (names with _f64, cblas_dgemm).  For every kernel:
 *   - the forward is compared with an independent naive reference or known values;
 *   - in double, the backward is checked against central finite differences of
 *     the scalar L = sum(out * G) for a random G (or of the returned loss);
 *   - the float kernels from liblmpipe are checked against the double ones;
 *   - backward accumulates (+=): running it twice gives twice the gradient;
 *   - NULL gradients (frozen tensors) skip their work without touching the rest.
 */
#include "config.h"

#include <check.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

#define NN_REAL double
#define NN_FN(name) name##_f64
#define NN_GEMM cblas_dgemm
#define NN_GEMV cblas_dgemv
#include "nn_impl.h"
#include "testutil.h"

#ifndef FD_TOL
#define FD_TOL 1e-6  /* double backward vs central differences, per element */
#endif
#ifndef F32_TOL
#define F32_TOL 1e-5 /* float vs double kernels, relative to the tensor's max */
#endif

/* ------------------------------------------------------------ helpers */

static lmp_rng rng;

/* Test buffers are registered here and freed after each test (a checked
 * fixture), so the sanitizer build's leak checker stays quiet. */
static void *arena[512];
static int n_arena;
static void *keep(void *p)
{
    ck_assert_int_lt(n_arena, 512);
    return arena[n_arena++] = p;
}
static void arena_free(void)
{
    while (n_arena > 0) free(arena[--n_arena]);
}

static double *rnd(size_t n, double lo, double hi)
{
    double *x = keep(mallocCheck(n * sizeof *x));
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * lmp_rng_uniform(&rng);
    return x;
}
static double *dz(size_t n) { return keep(callocCheck(n ? n : 1, sizeof(double))); }
static float *fz(size_t n) { return keep(callocCheck(n ? n : 1, sizeof(float))); }
static float *tof(const double *x, size_t n)
{
    float *f = keep(mallocCheck((n ? n : 1) * sizeof *f));
    for (size_t i = 0; i < n; i++) f[i] = (float)x[i];
    return f;
}
static double dot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}
/* float result vs double reference: max abs difference over the reference's max. */
static double rel_err_f(const float *f, const double *d, size_t n)
{
    double scale = test_maxabs(d, n), e = 0;
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs((double)f[i] - d[i]));
    if (scale == 0) return e;
    return e / scale;
}
static double max_diff_ff(const float *a, const float *b, size_t n)
{
    double e = 0;
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs((double)a[i] - b[i]));
    return e;
}
#define CHECK_F32(what, f, d, n) do { \
        double e_ = rel_err_f((f), (d), (n)); \
        ck_assert_msg(e_ <= F32_TOL, "%s: float vs double relative error %g", (what), e_); \
    } while (0)

/* Central finite differences of L over every element of x[n], against grad. */
typedef double (*loss_fn)(void *ctx);
static double fd_err(loss_fn L, void *ctx, double *x, size_t n, const double *grad)
{
    const double h = 1e-5;
    double *num = dz(n);
    for (size_t i = 0; i < n; i++) {
        double old = x[i];
        x[i] = old + h;
        double lp = L(ctx);
        x[i] = old - h;
        double lm = L(ctx);
        x[i] = old;
        num[i] = (lp - lm) / (2 * h);
    }
    L(ctx); /* leave the context's outputs as they are at x, not x - h */
    double e = test_rel_err(grad, num, n);
    /* a gradient that is all zero would make the comparison vacuous */
    ck_assert_msg(test_maxabs(num, n) > 1e-8, "finite differences are all zero");
    return e;
}
#define CHECK_FD(what, L, ctx, x, n, grad) do { \
        double e_ = fd_err((L), (ctx), (x), (n), (grad)); \
        ck_assert_msg(e_ <= FD_TOL, "%s: finite-difference relative error %g", (what), e_); \
    } while (0)

/* After a second backward into the same buffer, g must be exactly 2 * once. */
static void check_twice(const char *what, const double *g, const double *once, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs(g[i] - 2 * once[i]) <= 1e-12 * (1 + fabs(once[i])),
                      "%s: backward does not accumulate at %zu (%g vs 2 x %g)", what, i, g[i],
                      once[i]);
}
static double *dup(const double *x, size_t n)
{
    double *y = keep(mallocCheck(n * sizeof *y));
    memcpy(y, x, n * sizeof *y);
    return y;
}

/* One context type shared by the loss functions below. */
typedef struct {
    int B, T, C, V, NH, N, OC, maxT;
    double alpha;
    const int *ids, *mask;
    double *in[3];
    double *out, *G, *aux[3];
    size_t nout;
} ctx_t;

/* ------------------------------------------------------------ tests */

static double L_tanh(void *p)
{
    ctx_t *k = p;
    tanh_forward_f64(k->out, k->in[0], k->nout);
    return dot(k->out, k->G, k->nout);
}

START_TEST(fd_detects_wrong_gradient)
{
    /* The finite-difference harness must be able to fail: a gradient off by
     * 1e-4 in one element is rejected. */
    lmp_rng_seed(&rng, 1);
    int n = 50;
    double *x = rnd(n, -2, 2), *G = rnd(n, -1, 1), *out = dz(n), *g = dz(n);
    ctx_t c = { .in = { x }, .out = out, .G = G, .nout = n };
    tanh_forward_f64(out, x, n);
    tanh_backward_f64(g, out, G, n);
    ck_assert_double_le(fd_err(L_tanh, &c, x, n, g), FD_TOL);
    g[7] *= 1.0001;
    ck_assert_double_gt(fd_err(L_tanh, &c, x, n, g), FD_TOL);
}
END_TEST

static double L_encoder(void *p)
{
    ctx_t *k = p;
    ck_assert_int_eq(encoder_forward_f64(k->out, k->ids, k->in[0], k->in[1], k->B, k->T, k->C,
                                         k->V), 0);
    return dot(k->out, k->G, k->nout);
}

START_TEST(encoder)
{
    lmp_rng_seed(&rng, 2);
    int B = 2, T = 3, C = 4, V = 5, maxT = 4, N = B * T;
    int ids[] = { 1, 4, 1, 0, 2, 1 }; /* a repeated token: the scatter must add */
    double *wte = rnd(V * C, -1, 1), *wpe = rnd(maxT * C, -1, 1), *G = rnd(N * C, -1, 1);
    double *out = dz(N * C), *dwte = dz(V * C), *dwpe = dz(maxT * C);
    ctx_t c = { .B = B, .T = T, .C = C, .V = V, .ids = ids, .in = { wte, wpe }, .out = out,
                .G = G, .nout = N * C };
    L_encoder(&c);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int i = 0; i < C; i++)
                ck_assert_double_eq(out[(b * T + t) * C + i],
                                    wte[ids[b * T + t] * C + i] + wpe[t * C + i]);
    encoder_backward_f64(dwte, dwpe, G, ids, B, T, C);
    CHECK_FD("encoder dwte", L_encoder, &c, wte, V * C, dwte);
    CHECK_FD("encoder dwpe", L_encoder, &c, wpe, maxT * C, dwpe);
    double *w1 = dup(dwte, V * C), *p1 = dup(dwpe, maxT * C);
    encoder_backward_f64(dwte, dwpe, G, ids, B, T, C);
    check_twice("encoder dwte", dwte, w1, V * C);
    check_twice("encoder dwpe", dwpe, p1, maxT * C);

    float *fwte = tof(wte, V * C), *fwpe = tof(wpe, maxT * C), *fG = tof(G, N * C);
    float *fout = fz(N * C), *fdwte = fz(V * C), *fdwpe = fz(maxT * C);
    ck_assert_int_eq(lmp_nn_encoder_forward(fout, ids, fwte, fwpe, B, T, C, V), 0);
    CHECK_F32("encoder out", fout, out, N * C);
    lmp_nn_encoder_backward(fdwte, NULL, fG, ids, B, T, C); /* frozen wpe */
    CHECK_F32("encoder dwte", fdwte, w1, V * C);
    lmp_nn_encoder_backward(NULL, fdwpe, fG, ids, B, T, C); /* frozen wte */
    CHECK_F32("encoder dwpe", fdwpe, p1, maxT * C);

    /* a bad id fails with a message and leaves out untouched */
    int bad[] = { 1, 4, 1, 0, 2, 5 };
    for (int i = 0; i < N * C; i++) fout[i] = 42;
    ck_assert_int_eq(lmp_nn_encoder_forward(fout, bad, fwte, fwpe, B, T, C, V), -1);
    ck_assert_str_eq(lmp_errmsg(), "token id 5 at [1,2] out of range [0, 5)");
    for (int i = 0; i < N * C; i++) ck_assert_float_eq(fout[i], 42);
    bad[5] = -1;
    ck_assert_int_eq(lmp_nn_encoder_forward(fout, bad, fwte, fwpe, B, T, C, V), -1);
    ck_assert_str_eq(lmp_errmsg(), "token id -1 at [1,2] out of range [0, 5)");
}
END_TEST

static double L_embedding(void *p)
{
    ctx_t *k = p;
    ck_assert_int_eq(embedding_forward_f64(k->out, k->ids, k->in[0], k->N, k->V, k->C), 0);
    return dot(k->out, k->G, k->nout);
}

START_TEST(embedding)
{
    lmp_rng_seed(&rng, 3);
    int N = 5, V = 4, E = 3;
    int ids[] = { 3, 0, 3, 3, 1 };
    double *tab = rnd(V * E, -1, 1), *G = rnd(N * E, -1, 1), *out = dz(N * E), *dt = dz(V * E);
    ctx_t c = { .N = N, .V = V, .C = E, .ids = ids, .in = { tab }, .out = out, .G = G,
                .nout = N * E };
    L_embedding(&c);
    ck_assert_double_eq(out[2 * E + 1], tab[3 * E + 1]);
    embedding_backward_f64(dt, G, ids, N, E);
    CHECK_FD("embedding dtable", L_embedding, &c, tab, V * E, dt);
    double *once = dup(dt, V * E);
    embedding_backward_f64(dt, G, ids, N, E);
    check_twice("embedding dtable", dt, once, V * E);
    embedding_backward_f64(NULL, G, ids, N, E); /* frozen: nothing to do, no crash */

    float *ft = tof(tab, V * E), *fo = fz(N * E), *fG = tof(G, N * E), *fdt = fz(V * E);
    ck_assert_int_eq(lmp_nn_embedding_forward(fo, ids, ft, N, V, E), 0);
    CHECK_F32("embedding out", fo, out, N * E);
    lmp_nn_embedding_backward(fdt, fG, ids, N, E);
    CHECK_F32("embedding dtable", fdt, once, V * E);
    int bad[] = { 3, 0, 3, 3, 4 };
    ck_assert_int_eq(lmp_nn_embedding_forward(fo, bad, ft, N, V, E), -1);
    ck_assert_str_eq(lmp_errmsg(), "embedding id 4 at row 4 out of range [0, 4)");
}
END_TEST

static double L_layernorm(void *p)
{
    ctx_t *k = p;
    layernorm_forward_f64(k->out, k->aux[0], k->aux[1], k->in[0], k->in[1], k->in[2], k->N, k->C);
    return dot(k->out, k->G, k->nout);
}

START_TEST(layernorm)
{
    lmp_rng_seed(&rng, 4);
    int N = 4, C = 7;
    double *x = rnd(N * C, -2, 3), *w = rnd(C, 0.5, 1.5), *b = rnd(C, -0.5, 0.5);
    for (int i = 0; i < C; i++) x[i] += 100; /* a row with a large mean */
    double *G = rnd(N * C, -1, 1), *out = dz(N * C), *mean = dz(N), *rstd = dz(N);
    ctx_t c = { .N = N, .C = C, .in = { x, w, b }, .aux = { mean, rstd }, .out = out, .G = G,
                .nout = N * C };
    L_layernorm(&c);
    /* reference: normalised rows have mean 0 and variance 1/(1 + eps/var) */
    for (int n = 0; n < N; n++) {
        double m = 0, v = 0;
        for (int i = 0; i < C; i++) m += x[n * C + i] / C;
        for (int i = 0; i < C; i++) v += (x[n * C + i] - m) * (x[n * C + i] - m) / C;
        ck_assert_double_eq_tol(mean[n], m, 1e-12);
        ck_assert_double_eq_tol(rstd[n], 1 / sqrt(v + 1e-5), 1e-10);
        for (int i = 0; i < C; i++)
            ck_assert_double_eq_tol(out[n * C + i],
                                    (x[n * C + i] - m) / sqrt(v + 1e-5) * w[i] + b[i], 1e-10);
    }
    double *dx = dz(N * C), *dw = dz(C), *db = dz(C);
    layernorm_backward_f64(dx, dw, db, G, x, w, mean, rstd, N, C);
    CHECK_FD("layernorm dinp", L_layernorm, &c, x, N * C, dx);
    CHECK_FD("layernorm dweight", L_layernorm, &c, w, C, dw);
    CHECK_FD("layernorm dbias", L_layernorm, &c, b, C, db);
    double *dx1 = dup(dx, N * C), *dw1 = dup(dw, C), *db1 = dup(db, C);
    layernorm_backward_f64(dx, dw, db, G, x, w, mean, rstd, N, C);
    check_twice("layernorm dinp", dx, dx1, N * C);
    check_twice("layernorm dweight", dw, dw1, C);
    check_twice("layernorm dbias", db, db1, C);

    float *fx = tof(x, N * C), *fw = tof(w, C), *fb = tof(b, C), *fG = tof(G, N * C);
    float *fo = fz(N * C), *fo2 = fz(N * C), *fm = fz(N), *fr = fz(N);
    lmp_nn_layernorm_forward(fo, fm, fr, fx, fw, fb, N, C);
    CHECK_F32("layernorm out", fo, out, N * C);
    lmp_nn_layernorm_forward(fo2, NULL, NULL, fx, fw, fb, N, C); /* generation: no stats */
    ck_assert_double_eq(max_diff_ff(fo, fo2, N * C), 0);
    float *fdx = fz(N * C), *fdw = fz(C), *fdb = fz(C);
    lmp_nn_layernorm_backward(fdx, NULL, NULL, fG, fx, fw, fm, fr, N, C);
    CHECK_F32("layernorm dinp", fdx, dx1, N * C);
    lmp_nn_layernorm_backward(NULL, fdw, NULL, fG, fx, fw, fm, fr, N, C);
    CHECK_F32("layernorm dweight", fdw, dw1, C);
    lmp_nn_layernorm_backward(NULL, NULL, fdb, fG, fx, fw, fm, fr, N, C);
    CHECK_F32("layernorm dbias", fdb, db1, C);
}
END_TEST

static double L_matmul(void *p)
{
    ctx_t *k = p;
    matmul_forward_f64(k->out, k->in[0], k->in[1], k->in[2], k->N, k->C, k->OC);
    return dot(k->out, k->G, k->nout);
}

START_TEST(matmul)
{
    lmp_rng_seed(&rng, 5);
    int N = 5, C = 6, OC = 4;
    double *x = rnd(N * C, -1, 1), *w = rnd(C * OC, -1, 1), *b = rnd(OC, -1, 1);
    double *G = rnd(N * OC, -1, 1), *out = dz(N * OC);
    ctx_t c = { .N = N, .C = C, .OC = OC, .in = { x, w, b }, .out = out, .G = G,
                .nout = N * OC };
    L_matmul(&c);
    for (int n = 0; n < N; n++) /* [in, out] layout: out = x @ W + b */
        for (int o = 0; o < OC; o++) {
            double s = b[o];
            for (int i = 0; i < C; i++) s += x[n * C + i] * w[i * OC + o];
            ck_assert_double_eq_tol(out[n * OC + o], s, 1e-12);
        }
    double *dx = dz(N * C), *dw = dz(C * OC), *db = dz(OC);
    matmul_backward_f64(dx, dw, db, G, x, w, N, C, OC);
    CHECK_FD("matmul dinp", L_matmul, &c, x, N * C, dx);
    CHECK_FD("matmul dweight", L_matmul, &c, w, C * OC, dw);
    CHECK_FD("matmul dbias", L_matmul, &c, b, OC, db);
    double *dx1 = dup(dx, N * C), *dw1 = dup(dw, C * OC), *db1 = dup(db, OC);
    matmul_backward_f64(dx, dw, db, G, x, w, N, C, OC);
    check_twice("matmul dinp", dx, dx1, N * C);
    check_twice("matmul dweight", dw, dw1, C * OC);
    check_twice("matmul dbias", db, db1, OC);

    float *fx = tof(x, N * C), *fw = tof(w, C * OC), *fb = tof(b, OC), *fG = tof(G, N * OC);
    float *fo = fz(N * OC);
    lmp_nn_matmul_forward(fo, fx, fw, fb, N, C, OC);
    CHECK_F32("matmul out", fo, out, N * OC);
    /* no bias: out = x @ W */
    double *out_nb = dz(N * OC);
    matmul_forward_f64(out_nb, x, w, NULL, N, C, OC);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++)
            ck_assert_double_eq_tol(out_nb[n * OC + o], out[n * OC + o] - b[o], 1e-12);
    /* frozen weight (LoRA base): inp is not even read */
    float *fdx = fz(N * C), *fdw = fz(C * OC), *fdb = fz(OC);
    lmp_nn_matmul_backward(fdx, NULL, NULL, fG, NULL, fw, N, C, OC);
    CHECK_F32("matmul dinp (frozen)", fdx, dx1, N * C);
    /* first layer: no dinp, weight is not read */
    lmp_nn_matmul_backward(NULL, fdw, fdb, fG, fx, NULL, N, C, OC);
    CHECK_F32("matmul dweight", fdw, dw1, C * OC);
    CHECK_F32("matmul dbias", fdb, db1, OC);
}
END_TEST

static double L_matmul_acc(void *p)
{
    ctx_t *k = p;
    memcpy(k->out, k->aux[0], k->nout * sizeof(double));
    matmul_acc_forward_f64(k->out, k->in[0], k->in[1], k->N, k->C, k->OC, k->alpha);
    return dot(k->out, k->G, k->nout);
}

START_TEST(matmul_acc)
{
    lmp_rng_seed(&rng, 6);
    int N = 4, C = 5, OC = 3;
    double alpha = 0.7;
    double *x = rnd(N * C, -1, 1), *w = rnd(C * OC, -1, 1), *base = rnd(N * OC, -1, 1);
    double *G = rnd(N * OC, -1, 1), *out = dz(N * OC), *ref = dz(N * OC);
    ctx_t c = { .N = N, .C = C, .OC = OC, .alpha = alpha, .in = { x, w }, .aux = { base },
                .out = out, .G = G, .nout = N * OC };
    L_matmul_acc(&c);
    matmul_forward_f64(ref, x, w, NULL, N, C, OC);
    for (int i = 0; i < N * OC; i++) ck_assert_double_eq_tol(out[i], base[i] + alpha * ref[i], 1e-12);
    double *dx = dz(N * C), *dw = dz(C * OC);
    matmul_acc_backward_f64(dx, dw, G, x, w, N, C, OC, alpha);
    CHECK_FD("matmul_acc dinp", L_matmul_acc, &c, x, N * C, dx);
    CHECK_FD("matmul_acc dweight", L_matmul_acc, &c, w, C * OC, dw);
    double *dx1 = dup(dx, N * C), *dw1 = dup(dw, C * OC);
    matmul_acc_backward_f64(dx, dw, G, x, w, N, C, OC, alpha);
    check_twice("matmul_acc dinp", dx, dx1, N * C);
    check_twice("matmul_acc dweight", dw, dw1, C * OC);

    float *fx = tof(x, N * C), *fw = tof(w, C * OC), *fG = tof(G, N * OC), *fo = tof(base, N * OC);
    lmp_nn_matmul_acc_forward(fo, fx, fw, N, C, OC, (float)alpha);
    CHECK_F32("matmul_acc out", fo, out, N * OC);
    float *fdx = fz(N * C), *fdw = fz(C * OC);
    lmp_nn_matmul_acc_backward(fdx, NULL, fG, NULL, fw, N, C, OC, (float)alpha);
    lmp_nn_matmul_acc_backward(NULL, fdw, fG, fx, NULL, N, C, OC, (float)alpha);
    CHECK_F32("matmul_acc dinp", fdx, dx1, N * C);
    CHECK_F32("matmul_acc dweight", fdw, dw1, C * OC);
}
END_TEST

/* Naive causal attention with a key mask, straight from the definition. */
static void attention_ref(double *out, const double *qkv, const int *mask, int B, int T, int C,
                          int NH)
{
    int hs = C / NH;
    double *w = dz(T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const double *q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= t; j++) {
                    w[j] = -INFINITY;
                    if (mask && !mask[b * T + j]) continue;
                    const double *k = qkv + ((size_t)b * T + j) * 3 * C + C + h * hs;
                    w[j] = dot(q, k, hs) / sqrt(hs);
                    mx = fmax(mx, w[j]);
                }
                for (int j = 0; j <= t; j++) {
                    w[j] = w[j] == -INFINITY ? 0 : exp(w[j] - mx);
                    sum += w[j];
                }
                double *o = out + ((size_t)b * T + t) * C + h * hs;
                for (int i = 0; i < hs; i++) {
                    double s = 0;
                    for (int j = 0; j <= t; j++)
                        s += w[j] * qkv[((size_t)b * T + j) * 3 * C + 2 * C + h * hs + i];
                    o[i] = sum > 0 ? s / sum : 0;
                }
            }
}

static double L_attention(void *p)
{
    ctx_t *k = p;
    attention_forward_f64(k->out, k->aux[0], k->in[0], k->mask, k->B, k->T, k->C, k->NH);
    return dot(k->out, k->G, k->nout);
}

static void attention_case(const int *mask)
{
    int B = 3, T = 5, C = 8, NH = 2;
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, na = (size_t)B * NH * T * T;
    double *qkv = rnd(nq, -1.5, 1.5), *G = rnd(no, -1, 1), *out = dz(no), *att = dz(na);
    double *ref = dz(no);
    ctx_t c = { .B = B, .T = T, .C = C, .NH = NH, .mask = mask, .in = { qkv }, .aux = { att },
                .out = out, .G = G, .nout = no };
    L_attention(&c);
    attention_ref(ref, qkv, mask, B, T, C, NH);
    ck_assert_double_le(test_rel_err(out, ref, no), 1e-12);
    double *dqkv = dz(nq), *scratch = dz(na);
    attention_backward_f64(dqkv, scratch, G, qkv, att, B, T, C, NH);
    CHECK_FD("attention dqkv", L_attention, &c, qkv, nq, dqkv);
    double *once = dup(dqkv, nq);
    attention_backward_f64(dqkv, scratch, G, qkv, att, B, T, C, NH);
    check_twice("attention dqkv", dqkv, once, nq);
    attention_backward_f64(NULL, scratch, G, qkv, att, B, T, C, NH); /* frozen: no-op */

    float *fq = tof(qkv, nq), *fG = tof(G, no), *fo = fz(no), *fa = fz(na), *fs = fz(na);
    float *fd = fz(nq);
    lmp_nn_attention_forward(fo, fa, fq, mask, B, T, C, NH);
    CHECK_F32("attention out", fo, out, no);
    CHECK_F32("attention att", fa, att, na);
    lmp_nn_attention_backward(fd, fs, fG, fq, fa, B, T, C, NH);
    CHECK_F32("attention dqkv", fd, once, nq);
}

START_TEST(attention_causal)
{
    lmp_rng_seed(&rng, 7);
    attention_case(NULL);
}
END_TEST

START_TEST(attention_padding_mask)
{
    lmp_rng_seed(&rng, 8);
    /* batch 0 full, batch 1 right-padded to 3 real tokens, batch 2 all padding */
    int mask[] = { 1, 1, 1, 1, 1,  1, 1, 1, 0, 0,  0, 0, 0, 0, 0 };
    attention_case(mask);

    /* Right padding must not change the real tokens' outputs: they match a
     * run on the unpadded length-3 sequence, whatever the padding holds. */
    int T = 5, C = 8, NH = 2, m1[] = { 1, 1, 1, 0, 0 };
    double *qkv = rnd(T * 3 * C, -1, 1), *out = dz(T * C), *att = dz(NH * T * T);
    double *out3 = dz(3 * C), *att3 = dz(NH * 9);
    attention_forward_f64(out, att, qkv, m1, 1, T, C, NH);
    attention_forward_f64(out3, att3, qkv, NULL, 1, 3, C, NH);
    for (int i = 0; i < 3 * C; i++) ck_assert_double_eq_tol(out[i], out3[i], 1e-14);
    /* padded keys get zero weight, every query row still sums to 1 */
    for (int h = 0; h < NH; h++)
        for (int t = 0; t < T; t++) {
            double s = 0;
            for (int j = 0; j < T; j++) s += att[(h * T + t) * T + j];
            ck_assert_double_eq_tol(s, 1, 1e-14);
            ck_assert_double_eq(att[(h * T + t) * T + 3], 0);
            ck_assert_double_eq(att[(h * T + t) * T + 4], 0);
        }
    /* an all-padding sequence gives zeros, not NaN */
    int m0[] = { 0, 0, 0, 0, 0 };
    attention_forward_f64(out, att, qkv, m0, 1, T, C, NH);
    for (int i = 0; i < T * C; i++) ck_assert_double_eq(out[i], 0);
}
END_TEST

START_TEST(attention_gpt2_shape)
{
    /* float vs double at a GPT-2-like head size (hs = 64), where the sgemm paths matter */
    lmp_rng_seed(&rng, 9);
    int B = 2, T = 32, C = 128, NH = 2;
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, na = (size_t)B * NH * T * T;
    double *qkv = rnd(nq, -1, 1), *G = rnd(no, -1, 1), *out = dz(no), *att = dz(na);
    double *dq = dz(nq), *s = dz(na), *ref = dz(no);
    attention_forward_f64(out, att, qkv, NULL, B, T, C, NH);
    attention_ref(ref, qkv, NULL, B, T, C, NH);
    ck_assert_double_le(test_rel_err(out, ref, no), 1e-12);
    attention_backward_f64(dq, s, G, qkv, att, B, T, C, NH);
    float *fq = tof(qkv, nq), *fG = tof(G, no), *fo = fz(no), *fa = fz(na), *fs = fz(na);
    float *fd = fz(nq);
    lmp_nn_attention_forward(fo, fa, fq, NULL, B, T, C, NH);
    lmp_nn_attention_backward(fd, fs, fG, fq, fa, B, T, C, NH);
    CHECK_F32("attention out", fo, out, no);
    CHECK_F32("attention dqkv", fd, dq, nq);
}
END_TEST

/* Elementwise kernels: forward(out, inp, n) with a backward from either the
 * input or the output. */
typedef void (*ew_fwd64)(double *, const double *, size_t);
typedef void (*ew_bwd64)(double *, const double *, const double *, size_t);
typedef void (*ew_fwd32)(float *, const float *, size_t);
typedef void (*ew_bwd32)(float *, const float *, const float *, size_t);
static ew_fwd64 ew_f;

static double L_ew(void *p)
{
    ctx_t *k = p;
    ew_f(k->out, k->in[0], k->nout);
    return dot(k->out, k->G, k->nout);
}

static void ew_case(const char *what, ew_fwd64 f, ew_bwd64 b, ew_fwd32 f32, ew_bwd32 b32,
                    int from_output, double lo, double hi)
{
    size_t n = 97;
    double *x = rnd(n, lo, hi), *G = rnd(n, -1, 1), *out = dz(n), *dx = dz(n);
    ctx_t c = { .in = { x }, .out = out, .G = G, .nout = n };
    ew_f = f;
    L_ew(&c);
    b(dx, from_output ? out : x, G, n);
    CHECK_FD(what, L_ew, &c, x, n, dx);
    double *once = dup(dx, n);
    b(dx, from_output ? out : x, G, n);
    check_twice(what, dx, once, n);
    b(NULL, from_output ? out : x, G, n); /* frozen: no-op */
    float *fx = tof(x, n), *fG = tof(G, n), *fo = fz(n), *fd = fz(n);
    f32(fo, fx, n);
    CHECK_F32(what, fo, out, n);
    b32(fd, from_output ? fo : fx, fG, n);
    CHECK_F32(what, fd, once, n);
}

START_TEST(elementwise)
{
    lmp_rng_seed(&rng, 10);
    ew_case("gelu", gelu_forward_f64, gelu_backward_f64, lmp_nn_gelu_forward, lmp_nn_gelu_backward, 0, -4, 4);
    ew_case("tanh", tanh_forward_f64, tanh_backward_f64, lmp_nn_tanh_forward, lmp_nn_tanh_backward, 1, -3, 3);
    ew_case("sigmoid", sigmoid_forward_f64, sigmoid_backward_f64, lmp_nn_sigmoid_forward,
            lmp_nn_sigmoid_backward, 1, -8, 8);
    /* gelu_new known values (computed with Python's math module) */
    float x[] = { 1.0f, -0.5f, 3.0f }, y[3];
    lmp_nn_gelu_forward(y, x, 3);
    ck_assert_float_eq_tol(y[0], 0.8411919906082768f, 1e-7);
    ck_assert_float_eq_tol(y[1], -0.15428599017485606f, 1e-7);
    ck_assert_float_eq_tol(y[2], 2.996362607918227f, 1e-6);
    /* sigmoid at extremes: no overflow, no NaN */
    float big[] = { -100.0f, 100.0f, 0.0f }, s[3];
    lmp_nn_sigmoid_forward(s, big, 3);
    ck_assert(s[0] >= 0.0f && s[0] < 1e-40f);
    ck_assert_float_eq(s[1], 1.0f);
    ck_assert_float_eq(s[2], 0.5f);
}
END_TEST

START_TEST(residual)
{
    lmp_rng_seed(&rng, 11);
    size_t n = 40;
    double *a = rnd(n, -1, 1), *b = rnd(n, -1, 1), *G = rnd(n, -1, 1), *o = dz(n);
    double *da = dz(n), *db = dz(n);
    residual_forward_f64(o, a, b, n);
    for (size_t i = 0; i < n; i++) ck_assert_double_eq(o[i], a[i] + b[i]);
    residual_backward_f64(da, db, G, n);
    residual_backward_f64(da, NULL, G, n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_double_eq(da[i], 2 * G[i]);
        ck_assert_double_eq(db[i], G[i]);
    }
    float *fa = tof(a, n), *fb = tof(b, n);
    lmp_nn_residual_forward(fa, fa, fb, n); /* in place */
    CHECK_F32("residual", fa, o, n);
}
END_TEST

static double L_dropout(void *p)
{
    ctx_t *k = p;
    lmp_rng r;
    lmp_rng_seed(&r, 99); /* same mask every call */
    dropout_forward_f64(k->out, k->aux[0], k->in[0], k->nout, k->alpha, &r);
    return dot(k->out, k->G, k->nout);
}

START_TEST(dropout)
{
    lmp_rng_seed(&rng, 12);
    size_t n = 2000;
    double *x = rnd(n, -1, 1), *G = rnd(n, -1, 1), *out = dz(n), *mask = dz(n), *dx = dz(n);
    ctx_t c = { .alpha = 0.25, .in = { x }, .aux = { mask }, .out = out, .G = G, .nout = n };
    L_dropout(&c);
    size_t dropped = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert(mask[i] == 0 || fabs(mask[i] - 1 / 0.75) < 1e-12);
        dropped += mask[i] == 0;
        ck_assert_double_eq(out[i], x[i] * mask[i]);
    }
    ck_assert_msg(dropped > 420 && dropped < 580, "dropped %zu of 2000 at p = 0.25", dropped);
    dropout_backward_f64(dx, mask, G, n);
    CHECK_FD("dropout", L_dropout, &c, x, n, dx);
    /* reproducible: the same seed gives the same float mask */
    lmp_rng r1, r2;
    lmp_rng_seed(&r1, 5);
    lmp_rng_seed(&r2, 5);
    float *fx = tof(x, n), *o1 = fz(n), *o2 = fz(n), *m1 = fz(n), *m2 = fz(n);
    lmp_nn_dropout_forward(o1, m1, fx, n, 0.1f, &r1);
    lmp_nn_dropout_forward(o2, m2, fx, n, 0.1f, &r2);
    ck_assert_double_eq(max_diff_ff(m1, m2, n), 0);
    lmp_nn_dropout_forward(o1, m1, fx, n, 0.0f, &r1); /* p = 0: identity */
    ck_assert_double_eq(max_diff_ff(o1, fx, n), 0);
}
END_TEST

static double L_softmax(void *p)
{
    ctx_t *k = p;
    softmax_forward_f64(k->out, k->in[0], k->N, k->V);
    return dot(k->out, k->G, k->nout);
}

START_TEST(softmax)
{
    lmp_rng_seed(&rng, 13);
    int N = 4, V = 6;
    double *x = rnd(N * V, -3, 3), *G = rnd(N * V, -1, 1), *p = dz(N * V), *dx = dz(N * V);
    x[0] = 500; /* would overflow exp without the max subtraction */
    ctx_t c = { .N = N, .V = V, .in = { x }, .out = p, .G = G, .nout = N * V };
    L_softmax(&c);
    for (int n = 0; n < N; n++) {
        double s = 0, z = 0, mx = -INFINITY;
        for (int i = 0; i < V; i++) mx = fmax(mx, x[n * V + i]);
        for (int i = 0; i < V; i++) z += exp(x[n * V + i] - mx);
        for (int i = 0; i < V; i++) {
            ck_assert_double_eq_tol(p[n * V + i], exp(x[n * V + i] - mx) / z, 1e-15);
            s += p[n * V + i];
        }
        ck_assert_double_eq_tol(s, 1, 1e-14);
    }
    softmax_backward_f64(dx, G, p, N, V);
    CHECK_FD("softmax", L_softmax, &c, x, N * V, dx);
    double *once = dup(dx, N * V);
    softmax_backward_f64(dx, G, p, N, V);
    check_twice("softmax", dx, once, N * V);
    float *fx = tof(x, N * V), *fG = tof(G, N * V), *fp = fz(N * V), *fd = fz(N * V);
    lmp_nn_softmax_forward(fp, fx, N, V);
    CHECK_F32("softmax", fp, p, N * V);
    lmp_nn_softmax_backward(fd, fG, fp, N, V);
    CHECK_F32("softmax backward", fd, once, N * V);
}
END_TEST

static double L_xent(void *p)
{
    ctx_t *k = p;
    return softmax_crossentropy_forward_backward_f64(NULL, NULL, k->in[0], k->ids, k->N, k->V);
}

START_TEST(crossentropy)
{
    lmp_rng_seed(&rng, 14);
    int N = 5, V = 4;
    int tg[] = { 1, -1, 3, 0, 3 };
    double *x = rnd(N * V, -2, 2), *dx = dz(N * V), *losses = dz(N);
    ctx_t c = { .N = N, .V = V, .ids = tg, .in = { x } };
    double mean = softmax_crossentropy_forward_backward_f64(losses, dx, x, tg, N, V);
    double ref = 0;
    for (int n = 0; n < N; n++) {
        if (tg[n] < 0) { ck_assert_double_eq(losses[n], 0); continue; }
        double z = 0;
        for (int i = 0; i < V; i++) z += exp(x[n * V + i]);
        double l = log(z) - x[n * V + tg[n]];
        ck_assert_double_eq_tol(losses[n], l, 1e-13);
        ref += l / 4; /* mean over the 4 non-ignored rows */
    }
    ck_assert_double_eq_tol(mean, ref, 1e-13);
    for (int i = 0; i < V; i++) ck_assert_double_eq(dx[1 * V + i], 0); /* ignored row */
    CHECK_FD("crossentropy", L_xent, &c, x, N * V, dx);
    double *once = dup(dx, N * V);
    softmax_crossentropy_forward_backward_f64(NULL, dx, x, tg, N, V);
    check_twice("crossentropy", dx, once, N * V);

    float *fx = tof(x, N * V), *fd = fz(N * V), *fl = fz(N);
    float fm = lmp_nn_softmax_crossentropy_forward_backward(fl, fd, fx, tg, N, V);
    ck_assert_double_eq_tol(fm, mean, 1e-6);
    CHECK_F32("crossentropy dlogits", fd, once, N * V);
    CHECK_F32("crossentropy losses", fl, losses, N);

    /* every row ignored: loss 0, no gradient */
    int none[] = { -1, -1, -1, -1, -1 };
    memset(fd, 0, N * V * sizeof(float));
    ck_assert_float_eq(lmp_nn_softmax_crossentropy_forward_backward(fl, fd, fx, none, N, V), 0);
    for (int i = 0; i < N * V; i++) ck_assert_float_eq(fd[i], 0);
    /* a bad target: NAN, message, nothing written */
    int bad[] = { 1, -1, 4, 0, 3 };
    fl[0] = 7;
    ck_assert(isnan(lmp_nn_softmax_crossentropy_forward_backward(fl, fd, fx, bad, N, V)));
    ck_assert_str_eq(lmp_errmsg(), "target 4 at row 2 out of range [0, 4)");
    ck_assert_float_eq(fl[0], 7);
    bad[2] = -2;
    ck_assert(isnan(lmp_nn_softmax_crossentropy_forward_backward(fl, fd, fx, bad, N, V)));
    ck_assert_str_eq(lmp_errmsg(), "target -2 at row 2 out of range [0, 4)");
}
END_TEST

static double L_lmhead(void *p)
{
    ctx_t *k = p;
    return lmhead_xent_forward_backward_f64(k->in[0], k->in[1], k->ids, k->N, k->C, k->V, NULL,
                                            NULL, NULL, k->aux[0], 4);
}

START_TEST(lmhead_fd)
{
    lmp_rng_seed(&rng, 15);
    int N = 7, C = 5, V = 11;
    int tg[] = { 3, -1, 10, 0, -1, 7, 3 };
    double *x = rnd(N * C, -1, 1), *wte = rnd(V * C, -1, 1), *scratch = dz(4 * V);
    double *dx = dz(N * C), *dw = dz(V * C);
    ctx_t c = { .N = N, .C = C, .V = V, .ids = tg, .in = { x, wte }, .aux = { scratch } };
    lmhead_xent_forward_backward_f64(x, wte, tg, N, C, V, dx, dw, NULL, scratch, 4);
    CHECK_FD("lmhead dx", L_lmhead, &c, x, N * C, dx);
    CHECK_FD("lmhead dwte", L_lmhead, &c, wte, V * C, dw);
    double *dx1 = dup(dx, N * C), *dw1 = dup(dw, V * C);
    lmhead_xent_forward_backward_f64(x, wte, tg, N, C, V, dx, dw, NULL, scratch, 3);
    check_twice("lmhead dx", dx, dx1, N * C);
    check_twice("lmhead dwte", dw, dw1, V * C);
}
END_TEST

START_TEST(lmhead_vs_unfused)
{
    /* The fused, chunked head against matmul + softmax_crossentropy (all
     * float), for several chunk sizes, with ignored targets and a whole chunk
     * of them; and the float fused head against the double one. */
    lmp_rng_seed(&rng, 16);
    int N = 40, C = 16, V = 300;
    int *tg = keep(mallocCheck(N * sizeof(int)));
    for (int n = 0; n < N; n++) tg[n] = (int)(lmp_rng_u64(&rng) % V);
    tg[3] = tg[17] = -1;
    for (int n = 8; n < 16; n++) tg[n] = -1; /* rows 8..15: one whole chunk of 8 */
    double *x = rnd(N * C, -1, 1), *wte = rnd(V * C, -1, 1);
    float *fx = tof(x, N * C), *fw = tof(wte, V * C);

    /* unfused: logits = x @ wte^T via lmp_nn_matmul_forward with a transposed copy */
    float *wT = fz(C * V), *logits = fz(N * V), *dlogits = fz(N * V), *ul = fz(N);
    for (int v = 0; v < V; v++)
        for (int i = 0; i < C; i++) wT[i * V + v] = fw[v * C + i];
    lmp_nn_matmul_forward(logits, fx, wT, NULL, N, C, V);
    float umean = lmp_nn_softmax_crossentropy_forward_backward(ul, dlogits, logits, tg, N, V);
    float *udx = fz(N * C), *udwT = fz(C * V), *udw = fz(V * C);
    lmp_nn_matmul_backward(udx, udwT, NULL, dlogits, fx, wT, N, C, V);
    for (int v = 0; v < V; v++)
        for (int i = 0; i < C; i++) udw[v * C + i] = udwT[i * V + v];

    int chunks[] = { 1, 3, 8, 40, 64 };
    float *scratch = fz(64 * V), *dx = fz(N * C), *dw = fz(V * C), *l = fz(N);
    for (int k = 0; k < 5; k++) {
        memset(dx, 0, N * C * sizeof(float));
        memset(dw, 0, V * C * sizeof(float));
        float m = lmp_nn_lmhead_xent_forward_backward(fx, fw, tg, N, C, V, dx, dw, l, scratch, chunks[k]);
        ck_assert_msg(fabsf(m - umean) <= 1e-5f * fabsf(umean), "chunk %d: loss %g vs %g",
                      chunks[k], m, umean);
        ck_assert_msg(max_diff_ff(l, ul, N) <= 1e-5, "chunk %d: row losses differ", chunks[k]);
        ck_assert_msg(max_diff_ff(dx, udx, N * C) <= 1e-6, "chunk %d: dx differs", chunks[k]);
        ck_assert_msg(max_diff_ff(dw, udw, V * C) <= 1e-6, "chunk %d: dwte differs", chunks[k]);
        for (int n = 8; n < 16; n++) ck_assert_float_eq(l[n], 0);
        /* forward only gives the same loss */
        float mf = lmp_nn_lmhead_xent_forward(fx, fw, tg, N, C, V, NULL, scratch, chunks[k]);
        ck_assert_float_eq(mf, m);
    }
    /* one gradient at a time (frozen embedding / frozen input) */
    memset(dx, 0, N * C * sizeof(float));
    lmp_nn_lmhead_xent_forward_backward(fx, fw, tg, N, C, V, dx, NULL, NULL, scratch, 8);
    ck_assert(max_diff_ff(dx, udx, N * C) <= 1e-6);
    memset(dw, 0, V * C * sizeof(float));
    lmp_nn_lmhead_xent_forward_backward(fx, fw, tg, N, C, V, NULL, dw, NULL, scratch, 8);
    ck_assert(max_diff_ff(dw, udw, V * C) <= 1e-6);

    /* float fused vs double fused */
    double *ddx = dz(N * C), *ddw = dz(V * C), *dscr = dz(8 * V);
    double dm = lmhead_xent_forward_backward_f64(x, wte, tg, N, C, V, ddx, ddw, NULL, dscr, 8);
    ck_assert_double_eq_tol(umean, dm, 1e-5 * dm);
    memset(dx, 0, N * C * sizeof(float));
    memset(dw, 0, V * C * sizeof(float));
    lmp_nn_lmhead_xent_forward_backward(fx, fw, tg, N, C, V, dx, dw, NULL, scratch, 8);
    CHECK_F32("lmhead dx", dx, ddx, N * C);
    CHECK_F32("lmhead dwte", dw, ddw, V * C);

    /* generation logits for one position match the full logits' row */
    float *gl = fz(V);
    lmp_nn_lmhead_logits(gl, fx + 5 * C, fw, C, V);
    ck_assert(max_diff_ff(gl, logits + 5 * V, V) <= 1e-5);
}
END_TEST

/* lmp_nn_first_nonfinite: NaN and both infinities found at their index, in the
 * first block, across a block boundary and in a short tail. */
START_TEST(nonfinite_scan)
{
    size_t n = 3 * 4096 + 17;
    float *x = mallocCheck(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)i - 5000.0f;
    x[7] = FLT_MAX;
    ck_assert_uint_eq(lmp_nn_first_nonfinite(x, n), n);
    ck_assert_uint_eq(lmp_nn_first_nonfinite(x, 0), 0);
    const size_t at[] = { 0, 4095, 4096, n - 1 };
    const float bad[] = { NAN, INFINITY, -INFINITY };
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++)
        for (size_t k = 0; k < 3; k++) {
            float keep = x[at[i]];
            x[at[i]] = bad[k];
            ck_assert_uint_eq(lmp_nn_first_nonfinite(x, n), at[i]);
            x[n - 1] = NAN; /* a later one does not matter */
            ck_assert_uint_eq(lmp_nn_first_nonfinite(x, n), at[i]);
            x[n - 1] = (float)(n - 1) - 5000.0f;
            x[at[i]] = keep;
        }
    free(x);
}
END_TEST

START_TEST(lmhead_errors)
{
    float x[4] = { 0 }, w[6] = { 0 }, s[6], dx[4], l[2] = { 5, 5 };
    int tg[2] = { 1, 3 };
    ck_assert(isnan(lmp_nn_lmhead_xent_forward_backward(x, w, tg, 2, 2, 3, dx, NULL, l, s, 2)));
    ck_assert_str_eq(lmp_errmsg(), "target 3 at row 1 out of range [0, 3)");
    ck_assert_float_eq(l[0], 5);
    tg[1] = 2;
    ck_assert(isnan(lmp_nn_lmhead_xent_forward(x, w, tg, 2, 2, 3, l, s, 0)));
    ck_assert_str_eq(lmp_errmsg(), "lmhead_xent: chunk must be >= 1, got 0");
    /* all-zero logits: loss is log V */
    ck_assert_float_eq_tol(lmp_nn_lmhead_xent_forward(x, w, tg, 2, 2, 3, l, s, 1), logf(3), 1e-6);
    int none[2] = { -1, -1 };
    ck_assert_float_eq(lmp_nn_lmhead_xent_forward(x, w, none, 2, 2, 3, l, s, 1), 0);
}
END_TEST

static Suite *nn_suite(void)
{
    Suite *s = suite_create("nn");
    TCase *tc = tcase_create("kernels");
    tcase_add_checked_fixture(tc, NULL, arena_free);
    tcase_add_test(tc, fd_detects_wrong_gradient);
    tcase_add_test(tc, encoder);
    tcase_add_test(tc, embedding);
    tcase_add_test(tc, layernorm);
    tcase_add_test(tc, matmul);
    tcase_add_test(tc, matmul_acc);
    tcase_add_test(tc, attention_causal);
    tcase_add_test(tc, attention_padding_mask);
    tcase_add_test(tc, attention_gpt2_shape);
    tcase_add_test(tc, elementwise);
    tcase_add_test(tc, residual);
    tcase_add_test(tc, dropout);
    tcase_add_test(tc, softmax);
    tcase_add_test(tc, crossentropy);
    tcase_add_test(tc, lmhead_fd);
    tcase_add_test(tc, lmhead_vs_unfused);
    tcase_add_test(tc, lmhead_errors);
    tcase_add_test(tc, nonfinite_scan);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int failed = test_run_suite(nn_suite(), 0);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
