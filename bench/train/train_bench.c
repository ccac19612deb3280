/*
 * train_bench.c — one full training step of a GPT-2 124M-shape model in
 * lmpipe (all weights trainable): zero grads, forward keeping activations,
 * fused LM loss + backward, global-norm clipping, AdamW.  Prints
 *   "lmpipe ms_per_step(median) min max gflop_per_step"
 * usage: train_bench [reps] [B] [T]   (threads: OPENBLAS_NUM_THREADS / OMP_NUM_THREADS)
 * One warm-up step (allocations, page faults) is not timed.
 */
#include <stdio.h>
#include <stdlib.h>

#include "gpt2.h"
#include "optim.h"
#include "util.h"

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 3, B = argc > 2 ? atoi(argv[2]) : 4,
        T = argc > 3 ? atoi(argv[3]) : 64;
    if (reps < 1 || reps > 100 || B < 1 || T < 1 || T > 1024) {
        fprintf(stderr, "usage: train_bench [reps 1-100] [B] [T <= 1024]\n");
        return 2;
    }
    lmp_gpt2_config c = { .n_layer = 12, .n_head = 12, .n_embd = 768, .n_ctx = 1024,
                          .vocab_size = 50257, .layer_norm_epsilon = 1e-5f };
    lmp_gpt2 *m;
    if (lmp_gpt2_init_random(&c, 1, &m) != 0) {
        fprintf(stderr, "%s\n", lmp_errmsg());
        return 1;
    }
    lmp_params_group g;
    lmp_params_init(&g);
    if (lmp_gpt2_params_add(m, &g, NULL, NULL) != 0) return 1;
    lmp_params_alloc_grads(&g);
    if (lmp_gpt2_bind_grads(m, &g) != 0) return 1;
    int *inp = mallocCheck((size_t)B * T * sizeof(int)), *tgt = mallocCheck((size_t)B * T * sizeof(int));
    lmp_rng r;
    lmp_rng_seed(&r, 7);
    for (int i = 0; i < B * T; i++) {
        inp[i] = (int)(lmp_rng_u64(&r) % c.vocab_size);
        tgt[i] = (int)(lmp_rng_u64(&r) % c.vocab_size);
    }
    double *ms = mallocCheck((size_t)reps * sizeof *ms);
    float loss = 0;
    for (int s = -1; s < reps; s++) {
        double t0 = lmp_now();
        lmp_params_zero_grads(&g);
        if (lmp_gpt2_forward(m, inp, NULL, B, T, 1) != 0 ||
            lmp_gpt2_backward_lm(m, tgt, &loss, NULL) != 0) {
            fprintf(stderr, "%s\n", lmp_errmsg());
            return 1;
        }
        lmp_params_clip_grad_norm(&g, 1.0f);
        lmp_params_adamw_step(&g, 1e-5, 0.9, 0.95, 1e-8, 0.1);
        if (s >= 0) ms[s] = (lmp_now() - t0) * 1e3;
    }
    qsort(ms, (size_t)reps, sizeof *ms, cmp);
    /* 6 N per token (forward 2N, backward 4N; N counts wte once, as the LM
     * head's matmul, and wpe, whose share is negligible) plus attention:
     * scores and weighted sum, 2 * 2 * T * C per token per layer forward
     * (causal masking is not exploited by the kernels), x3 with backward */
    double N = (double)lmp_gpt2_num_params(&c), tokens = (double)B * T;
    double flop = 6 * N * tokens + 3.0 * c.n_layer * 4.0 * B * (double)T * T * c.n_embd;
    printf("lmpipe %.1f %.1f %.1f %.2f loss=%.4f\n", ms[reps / 2], ms[0], ms[reps - 1], flop / 1e9, loss);
    lmp_params_free(&g);
    lmp_gpt2_free(m);
    free(inp), free(tgt), free(ms);
    return 0;
}
