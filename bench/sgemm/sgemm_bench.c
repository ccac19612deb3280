/*
 * sgemm_bench.c — this machine's OpenBLAS sgemm throughput at the shapes
 * GPT-2 124M training uses, as the yardstick other benchmarks quote
 * ("fraction of sgemm peak").
 *
 * usage: sgemm_bench [reps]   (threads: set OPENBLAS_NUM_THREADS; run.sh does)
 * Each measurement repeats the product until it has run >= 0.2 s, and the
 * median GFLOP/s of `reps` (default 5) measurements is printed.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    const char *what;
    int M, K, N;    /* C[M,N] = op(A)[M,K] @ op(B)[K,N] */
    int ta, tb;     /* transposes as the kernels in core/nn/nn_impl.h issue them */
} shape;

static const shape shapes[] = {
    { "qkv fwd      x@W",        256,  768, 2304, 0, 0 },
    { "fc fwd       x@W",        256,  768, 3072, 0, 0 },
    { "fcproj fwd   x@W",        256, 3072,  768, 0, 0 },
    { "fc dinp      dout@W^T",   256, 3072,  768, 0, 1 },
    { "fc dweight   x^T@dout",   768,  256, 3072, 1, 0 },
    { "lmhead chunk x@wte^T",     64,  768, 50257, 0, 1 },
    { "square",                 1024, 1024, 1024, 0, 0 },
};

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    if (argc > 1 && strcmp(argv[1], "0") == 0) return 0; /* just load OpenBLAS (run.sh) */
    if (reps < 1 || reps > 100) {
        fprintf(stderr, "sgemm_bench: reps must be 1..100\n");
        return 2;
    }
    const char *thr = getenv("OPENBLAS_NUM_THREADS");
    printf("%-26s %5s %5s %6s %3s %7s %8s %8s %8s\n", "shape", "M", "K", "N", "thr",
           "GFLOP", "median", "min", "max");
    double peak = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const shape *sh = &shapes[s];
        size_t na = (size_t)sh->M * sh->K, nb = (size_t)sh->K * sh->N, nc = (size_t)sh->M * sh->N;
        float *A = malloc(na * sizeof(float)), *B = malloc(nb * sizeof(float));
        float *C = malloc(nc * sizeof(float));
        if (!A || !B || !C) { fprintf(stderr, "sgemm_bench: out of memory\n"); return 1; }
        for (size_t i = 0; i < na; i++) A[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
        for (size_t i = 0; i < nb; i++) B[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
        memset(C, 0, nc * sizeof(float));
        int lda = sh->ta ? sh->M : sh->K, ldb = sh->tb ? sh->K : sh->N;
        double flop = 2.0 * sh->M * sh->K * sh->N, g[100];
#define GEMM() cblas_sgemm(CblasRowMajor, sh->ta ? CblasTrans : CblasNoTrans,              \
                           sh->tb ? CblasTrans : CblasNoTrans, sh->M, sh->N, sh->K, 1.0f, A, \
                           lda, B, ldb, 0.0f, C, sh->N)
        GEMM(); /* warm up: page in, thread pool up */
        for (int r = 0; r < reps; r++) {
            int iters = 0;
            double t0 = now(), t;
            do { GEMM(); iters++; } while ((t = now() - t0) < 0.2);
            g[r] = flop * iters / t / 1e9;
        }
        qsort(g, reps, sizeof g[0], cmp);
        double med = reps % 2 ? g[reps / 2] : 0.5 * (g[reps / 2 - 1] + g[reps / 2]);
        if (med > peak) peak = med;
        printf("%-26s %5d %5d %6d %3s %7.3f %8.1f %8.1f %8.1f\n", sh->what, sh->M, sh->K, sh->N,
               thr ? thr : "?", flop / 1e9, med, g[0], g[reps - 1]);
        free(A); free(B); free(C);
    }
    printf("peak (best median) with %s thread(s): %.1f GFLOP/s\n", thr ? thr : "?", peak);
    return 0;
}
