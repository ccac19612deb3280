/*
 * bench_lora.c — the lmpipe side of bench/lora: one LoRA fine-tuning step
 * of a GPT-2 sequence classifier at 124M shapes, timed.
 *
 *   bench_lora step HF_DIR B T REPS   LoRA r=4 on attn.c_attn, attn.c_proj,
 *                                     mlp.c_fc, mlp.c_proj; base frozen and
 *                                     memory-mapped; one AdamW step per rep as
 *                                     the train stage takes it (zero, forward,
 *                                     cross-entropy, backward, clip, AdamW) on
 *                                     a fixed batch; one warm-up step first
 *   bench_lora sgemm REPS             sgemm GFLOP/s at the step's biggest
 *                                     shape, for the fraction of peak
 * Prints "key value" lines, the OpenBLAS kernel family among them.  Like the
 * lmpipe command, it first makes OpenBLAS use the right kernels for the CPU
 * (core/base/blasenv.h) unless OPENBLAS_CORETYPE is set.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "blasenv.h"
#include "gpt2_classifier.h"
#include "lora.h"
#include "nn.h"

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return v[n / 2];
}

static int step_bench(const char *dir, int B, int T, int reps)
{
    lmp_gpt2 *m;
    lmp_classifier *c;
    if (lmp_gpt2_load(dir, &m) != 0 || lmp_gpt2_classifier_new(m, 2, dir, &c) != 0) {
        fprintf(stderr, "%s\n", lmp_errmsg());
        return 1;
    }
    lmp_gpt2_classifier_init_head(c, 0.02f, 1);
    lmp_adapter_host *h = c->adapters(c);
    lmp_lora_config cfg = { .rank = 4, .alpha = 8, .targets = LMP_LORA_DEFAULT_TARGETS };
    lmp_rng rng;
    lmp_rng_seed(&rng, 2);
    if (lmp_lora_attach(h, &cfg, &rng) != 0) {
        fprintf(stderr, "%s\n", lmp_errmsg());
        return 1;
    }
    h->freeze_base = 1;
    lmp_params_group *g = c->params(c);
    int V = m->config.vocab_size, N = B * T;
    int *ids = malloc((size_t)N * sizeof *ids), *len = malloc((size_t)B * sizeof *len);
    int *labels = malloc((size_t)B * sizeof *labels);
    for (int i = 0; i < N; i++) ids[i] = (int)(((long)i * 7919 + 13) % V);
    for (int b = 0; b < B; b++) len[b] = T, labels[b] = b % 2;
    float *logits = malloc((size_t)B * 2 * sizeof(float)), *dlogits = malloc((size_t)B * 2 * sizeof(float));
    double *times = malloc((size_t)reps * sizeof *times);
    float loss = 0;
    for (int r = -1; r < reps; r++) {
        double t0 = lmp_now();
        lmp_params_zero_grads(g);
        if (c->forward(c, ids, len, B, T, logits, 1) != 0) {
            fprintf(stderr, "%s\n", lmp_errmsg());
            return 1;
        }
        memset(dlogits, 0, (size_t)B * 2 * sizeof(float));
        loss = lmp_nn_softmax_crossentropy_forward_backward(NULL, dlogits, logits, labels, B, 2);
        if (c->backward(c, dlogits) != 0) {
            fprintf(stderr, "%s\n", lmp_errmsg());
            return 1;
        }
        lmp_params_clip_grad_norm(g, 1.0f);
        lmp_params_adamw_step(g, 1e-3, 0.9, 0.999, 1e-8, 0.0);
        if (r >= 0) times[r] = lmp_now() - t0;
        fprintf(stderr, "step %d: loss %.5f\n", r + 1, loss);
    }
    /* matmul work: every linear forward, every input gradient but block 0's
     * c_attn (nothing below it needs one), LoRA's four small products */
    double fl = 0;
    for (int i = 0; i < m->n_linears; i++) {
        const lmp_linear *l = &m->linears[i];
        double base = 2.0 * N * l->in * l->out, lora = 2.0 * N * cfg.rank * (l->in + l->out);
        fl += base + (i ? base : 0) + 3 * lora;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double s = median(times, reps);
    printf("s_per_step %.4f\n", s);
    printf("tok_per_s %.1f\n", N / s);
    printf("gflop_per_step %.2f\n", fl / 1e9);
    printf("gflop_per_s %.2f\n", fl / 1e9 / s);
    printf("trainable %zu\n", lmp_params_numel(g, 1));
    printf("total %zu\n", lmp_params_numel(g, 0));
    printf("peak_rss_mib %.1f\n", ru.ru_maxrss / 1024.0);
    printf("last_loss %.6f\n", loss);
    c->destroy(c);
    free(ids), free(len), free(labels), free(logits), free(dlogits), free(times);
    return 0;
}

static int sgemm_bench(int reps)
{
    int M = 512, K = 768, N = 3072; /* mlp.c_fc forward at B*T = 512 */
    float *a = malloc((size_t)M * K * 4), *b = malloc((size_t)K * N * 4), *c = malloc((size_t)M * N * 4);
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)K * N; i++) b[i] = (float)(i % 5) * 0.1f;
    double *t = malloc((size_t)reps * sizeof *t);
    for (int r = -1; r < reps; r++) {
        double t0 = lmp_now();
        for (int k = 0; k < 10; k++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1, a, K, b, N, 0, c, N);
        if (r >= 0) t[r] = (lmp_now() - t0) / 10;
    }
    printf("sgemm_gflop_per_s %.2f\n", 2.0 * M * N * K / median(t, reps) / 1e9);
    free(a), free(b), free(c), free(t);
    return 0;
}

int main(int argc, char **argv)
{
    lmp_blas_env_reexec(argv);
    printf("kernel %s\n", lmp_blas_corename());
    if (argc == 6 && strcmp(argv[1], "step") == 0) return step_bench(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
    if (argc == 3 && strcmp(argv[1], "sgemm") == 0) return sgemm_bench(atoi(argv[2]));
    fprintf(stderr, "usage: bench_lora step HF_DIR B T REPS | sgemm REPS\n");
    return 2;
}
