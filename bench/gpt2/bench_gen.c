/*
 * bench_gen.c — the C side of bench/gpt2: built by run.sh against the
 * library of the build tree.
 *   bench_gen gen MODEL PROMPT_LEN NEW_TOKENS REPS [f32|f16|q8]  greedy KV-cache timing
 *   bench_gen logits MODEL IDS_FILE OUT_FILE          logits of one sequence (compare_124m.py)
 *   bench_gen ppl MODEL IDS_FILE STRIDE [f32|f16|q8]  strided perplexity (compare_124m.py, weights.sh)
 *   bench_gen bandwidth MIB REPS                      read bandwidth, stream-like sum
 *   bench_gen corename                                OpenBLAS kernels in use
 *   bench_gen gemv REPS                               sgemv vs sgemm with M=1 at 124M shapes
 *   bench_gen qmatvec REPS                            sgemv vs the f16 / q8 kernels at 124M shapes
 * IDS_FILE: whitespace-separated token ids.  OUT_FILE: raw float32 [T, V].
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cblas.h>

#include "blasenv.h"
#include "gpt2.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static long peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static int *read_ids(const char *path, int *n)
{
    FILE *f = fopen(path, "r");
    if (!f) { perror(path); exit(1); }
    int cap = 1024, k = 0, *ids = malloc(cap * sizeof(int)), x;
    while (fscanf(f, "%d", &x) == 1) {
        if (k == cap) ids = realloc(ids, (cap *= 2) * sizeof(int));
        ids[k++] = x;
    }
    fclose(f);
    *n = k;
    return ids;
}

typedef struct {
    int n;
    int ids[4096];
    double t_first;
} gen_state;

static double t_start;

static int on_token(void *user, int seq, int token, const float *logits)
{
    gen_state *g = user;
    if (g->n == 0) g->t_first = now() - t_start;
    g->ids[g->n++] = token;
    return 0;
}

static lmp_gpt2 *load_or_die(const char *path)
{
    lmp_gpt2 *m;
    if (lmp_gpt2_load(path, &m) != 0) {
        fprintf(stderr, "bench_gen: %s\n", lmp_errmsg());
        exit(1);
    }
    return m;
}

/* The weight format named by argv[i] when given (default f32). */
static void set_weights_or_die(lmp_gpt2 *m, int argc, char **argv, int i)
{
    int fmt = LMP_WEIGHTS_F32;
    if (i < argc && (lmp_weights_parse(argv[i], "weights", &fmt) != 0 || lmp_gpt2_set_weights(m, fmt) != 0)) {
        fprintf(stderr, "bench_gen: %s\n", lmp_errmsg());
        exit(1);
    }
}

int main(int argc, char **argv)
{
    lmp_blas_env_reexec(argv); /* as the lmpipe command does (blasenv.h) */
    if (argc >= 2 && strcmp(argv[1], "corename") == 0) {
        printf("%s\n", lmp_blas_corename());
        return 0;
    }
    if (argc >= 6 && strcmp(argv[1], "gen") == 0) {
        double t0 = now();
        lmp_gpt2 *m = load_or_die(argv[2]);
        set_weights_or_die(m, argc, argv, 6);
        double t_load = now() - t0;
        int P = atoi(argv[3]), N = atoi(argv[4]), reps = atoi(argv[5]);
        int *prompt = malloc(P * sizeof(int));
        for (int i = 0; i < P; i++) prompt[i] = (i * 7919 + 13) % m->config.vocab_size;
        lmp_gpt2_gen_opts o;
        lmp_gpt2_gen_opts_default(&o);
        o.max_new_tokens = N;
        o.temperature = 0;
        o.eos_id = -1;
        double total[16], decode[16];
        gen_state g;
        for (int r = 0; r < reps && r < 16; r++) {
            g.n = 0;
            t_start = now();
            const int *pp = prompt;
            if (lmp_gpt2_generate(m, &pp, &P, 1, &o, on_token, &g) != 0) {
                fprintf(stderr, "bench_gen: %s\n", lmp_errmsg());
                return 1;
            }
            total[r] = now() - t_start;
            decode[r] = total[r] - g.t_first; /* the N-1 tokens after the first */
        }
        qsort(total, reps, sizeof(double), cmp_double);
        qsort(decode, reps, sizeof(double), cmp_double);
        double tt = total[reps / 2], td = decode[reps / 2];
        printf("load_s %.3f\n", t_load);
        printf("total_s %.4f\n", tt);
        printf("tok_per_s %.2f\n", N / tt);
        printf("decode_tok_per_s %.2f\n", (N - 1) / td);
        printf("peak_rss_mib %.1f\n", peak_rss_kib() / 1024.0);
        printf("weight_mib %.1f\n", lmp_gpt2_num_params(&m->config) * 4.0 / 1048576.0);
        printf("stream_mib %.1f\n", lmp_gpt2_weight_bytes_per_token(m) / 1048576.0);
        printf("ids");
        for (int i = 0; i < g.n; i++) printf(" %d", g.ids[i]);
        printf("\n");
        lmp_gpt2_free(m);
        free(prompt);
        return 0;
    }
    if (argc >= 5 && strcmp(argv[1], "logits") == 0) {
        lmp_gpt2 *m = load_or_die(argv[2]);
        int T;
        int *ids = read_ids(argv[3], &T);
        size_t n = (size_t)T * m->config.vocab_size;
        float *lg = malloc(n * sizeof(float));
        if (lmp_gpt2_logits(m, ids, 1, T, NULL, 0, lg) != 0) {
            fprintf(stderr, "bench_gen: %s\n", lmp_errmsg());
            return 1;
        }
        FILE *f = fopen(argv[4], "wb");
        fwrite(lg, sizeof(float), n, f);
        fclose(f);
        lmp_gpt2_free(m);
        return 0;
    }
    if (argc >= 5 && strcmp(argv[1], "ppl") == 0) {
        lmp_gpt2 *m = load_or_die(argv[2]);
        set_weights_or_die(m, argc, argv, 5);
        int n;
        int *ids = read_ids(argv[3], &n);
        lmp_gpt2_ppl r;
        if (lmp_gpt2_perplexity(m, ids, n, atoi(argv[4]), &r) != 0) {
            fprintf(stderr, "bench_gen: %s\n", lmp_errmsg());
            return 1;
        }
        printf("nll=%.9f ppl=%.6f tokens=%ld\n", r.nll, r.ppl, r.tokens);
        lmp_gpt2_free(m);
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "bandwidth") == 0) {
        size_t n = (size_t)atol(argv[2]) * 1048576 / sizeof(float);
        int reps = atoi(argv[3]);
        float *a = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) a[i] = (float)(i & 1023);
        double best = 0, sink = 0;
        for (int r = 0; r < reps; r++) {
            double t = now();
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp parallel for reduction(+ : s0, s1, s2, s3)
            for (size_t i = 0; i < n; i += 4) {
                s0 += a[i];
                s1 += a[i + 1];
                s2 += a[i + 2];
                s3 += a[i + 3];
            }
            t = now() - t;
            sink += s0 + s1 + s2 + s3;
            double gbs = n * sizeof(float) / t / 1e9;
            if (gbs > best) best = gbs;
        }
        printf("read_gb_per_s %.2f\n", best);
        if (sink == 42) printf("\n");
        free(a);
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "gemv") == 0) {
        /* out[1,OC] = x[1,C] @ W[C,OC] (W row-major [in,out], as GPT-2 stores it) */
        int reps = atoi(argv[2]);
        int shapes[4][2] = { { 768, 2304 }, { 768, 768 }, { 768, 3072 }, { 3072, 768 } };
        for (int s = 0; s < 4; s++) {
            int C = shapes[s][0], OC = shapes[s][1], copies = 48; /* > cache: 12 layers' worth */
            size_t wn = (size_t)C * OC;
            float *W = malloc(wn * copies * sizeof(float)), *x = malloc(C * sizeof(float));
            float *y = malloc(OC * sizeof(float));
            for (size_t i = 0; i < wn * copies; i++) W[i] = (float)((i * 2654435761u) % 1000) * 1e-3f;
            for (int i = 0; i < C; i++) x[i] = 1.0f / (i + 1);
            double tg = 1e9, tm = 1e9;
            for (int r = 0; r < reps; r++) {
                double t = now();
                for (int k = 0; k < copies; k++)
                    cblas_sgemv(CblasRowMajor, CblasTrans, C, OC, 1, W + k * wn, OC, x, 1, 0, y, 1);
                t = (now() - t) / copies;
                if (t < tg) tg = t;
                t = now();
                for (int k = 0; k < copies; k++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, OC, C, 1, x, C,
                                W + k * wn, OC, 0, y, OC);
                t = (now() - t) / copies;
                if (t < tm) tm = t;
            }
            printf("gemv %dx%d: sgemv %.1f us (%.1f GB/s), sgemm M=1 %.1f us (%.1f GB/s)\n", C, OC,
                   tg * 1e6, wn * 4 / tg / 1e9, tm * 1e6, wn * 4 / tm / 1e9);
            free(W), free(x), free(y);
        }
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "qmatvec") == 0) {
        /* y[OC] = W x at the 124M shapes, 48 copies of each matrix (more than
         * the caches): GB/s of weight bytes per format */
        int reps = atoi(argv[2]);
        int shapes[5][2] = { { 768, 2304 }, { 768, 768 }, { 768, 3072 }, { 3072, 768 }, { 768, 50257 } };
        for (int s = 0; s < 5; s++) {
            int C = shapes[s][0], OC = shapes[s][1], copies = s == 4 ? 4 : 48;
            size_t wn = (size_t)C * OC;
            float *W = malloc(wn * copies * sizeof(float)), *x = malloc(C * sizeof(float));
            float *y = malloc(OC * sizeof(float));
            for (size_t i = 0; i < wn * copies; i++) W[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
            for (int i = 0; i < C; i++) x[i] = 1.0f / (i + 1);
            lmp_qmat *q[2][48];
            for (int k = 0; k < copies; k++)
                for (int f = 0; f < 2; f++)
                    if (lmp_qmat_new(&q[f][k], f ? LMP_WEIGHTS_Q8 : LMP_WEIGHTS_F16, W + k * wn, OC, C, 1, "W") != 0) return 1;
            double best[3] = { 1e9, 1e9, 1e9 };
            for (int r = 0; r < reps; r++)
                for (int f = 0; f < 3; f++) {
                    double t = now();
                    for (int k = 0; k < copies; k++)
                        if (f == 0) cblas_sgemv(CblasRowMajor, CblasTrans, C, OC, 1, W + k * wn, OC, x, 1, 0, y, 1);
                        else lmp_qmat_forward(y, x, q[f - 1][k], NULL, 1);
                    t = (now() - t) / copies;
                    if (t < best[f]) best[f] = t;
                }
            printf("matvec %dx%d: f32 %.1f us (%.1f GB/s), f16 %.1f us (%.1f GB/s), q8 %.1f us (%.1f GB/s)\n", C, OC,
                   best[0] * 1e6, wn * 4 / best[0] / 1e9, best[1] * 1e6, wn * 2 / best[1] / 1e9,
                   best[2] * 1e6, lmp_qmat_bytes(q[1][0]) / best[2] / 1e9);
            for (int k = 0; k < copies; k++) lmp_qmat_free(q[0][k]), lmp_qmat_free(q[1][k]);
            free(W), free(x), free(y);
        }
        return 0;
    }
    fprintf(stderr, "usage: bench_gen gen|logits|ppl|bandwidth|gemv|qmatvec ...\n");
    return 2;
}
