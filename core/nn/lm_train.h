/*
 * lm_train.h — causal-language-model training of a GPT-2 on a token stream:
 * batches of windows from the stream in a shuffled order, the training step
 * (forward, fused LM loss, backward, gradient accumulation over
 * micro-batches, clipping, AdamW on a learning-rate schedule), handling of
 * non-finite losses and gradients, held-out evaluation, and checkpoints that
 * resume a run exactly (the same losses as an uninterrupted run, at the same
 * thread count).
 *
 *     lmp_lm_train_opts o; lmp_lm_train_opts_default(&o);
 *     o.B = 8; o.T = 128; o.steps = 1000; o.optim.lr = 1e-3; ...
 *     lmp_lm_trainer *tr;
 *     lmp_lm_trainer_new(model, &o, tokens, n, seed, &tr);
 *     if (have_checkpoint) lmp_lm_trainer_load(tr, dir, NULL);
 *     while (tr->step < o.steps) {
 *         lmp_lm_step_info info;
 *         if (lmp_lm_train_step(tr, &info) != 0) fail(lmp_errmsg());
 *         ... log info.loss, info.lr, info.grad_norm ...
 *         if (time to) lmp_lm_trainer_save(tr, dir, NULL);
 *     }
 *     lmp_lm_trainer_free(tr);
 */
#ifndef LMP_LM_TRAIN_H
#define LMP_LM_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "gpt2.h"
#include "optim.h"
#include "util.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ data */

/* A token stream read as windows of T+1 tokens (inputs and their next-token
 * targets) starting every T tokens; each epoch visits every window once, in
 * an order shuffled by a seed drawn from the trainer's RNG at the epoch's
 * start (or in stream order when shuffle is 0).  Position = (epoch, pos). */
typedef struct {
    const int *tokens; /* not owned */
    size_t n;
    int T;
    size_t n_windows;
    int shuffle;
    uint64_t epoch;      /* epochs begun; 0 before the first window */
    size_t pos;          /* windows of the current epoch used */
    uint64_t epoch_seed; /* what the current order was shuffled with */
    uint32_t *order;     /* [n_windows] */
} lmp_lm_data;

/* ------------------------------------------------------------ training */

typedef struct {
    int B, T;             /* micro-batch: B windows of T tokens */
    int accum;            /* micro-batches per optimizer step (default 1) */
    int steps;            /* optimizer steps in the whole run (the schedule's length) */
    lmp_optim_opts optim; /* the optimizer (optim.h); defaults here: cosine, lr 1e-3,
                             min_lr 0, no warmup, betas 0.9 / 0.95, eps 1e-8, weight
                             decay 0.1, clip 1, stop on a non-finite step */
    int shuffle;          /* shuffle the windows each epoch (default 1) */
} lmp_lm_train_opts;

void lmp_lm_train_opts_default(lmp_lm_train_opts *o);

typedef struct {
    lmp_gpt2 *m;              /* not owned; its parameters are updated in place */
    lmp_lm_train_opts o;
    lmp_params_group g;       /* every model tensor, trainable */
    lmp_lm_data data;
    lmp_rng rng;              /* draws each epoch's shuffle seed */
    int step;                 /* optimizer steps done (skipped ones included) */
    int skipped;              /* steps skipped for non-finite values */
    int64_t tokens_seen;      /* target tokens trained on */
    int *inp, *tgt;           /* [B,T] */
    int stop;                 /* data-parallel (dist.h): a rank was interrupted; all ranks
                                 learn it in the same step, so all stop after it */
} lmp_lm_trainer;

typedef struct {
    int step;         /* 1-based number of the step just done */
    float loss;       /* mean over its micro-batches */
    float grad_norm;  /* before clipping */
    float lr;
    int skipped;      /* non-finite: no update was made */
    int64_t tokens;   /* target tokens in this step */
    double seconds;   /* wall time of the step */
} lmp_lm_step_info;

/* A trainer for m (made writable with lmp_gpt2_own_params; all tensors
 * trainable, 1-D ones without weight decay) on tokens[n] (not copied: keep
 * them alive), RNG seeded with seed.  Errors: bad options, T > n_ctx, too
 * few tokens for one window, a token id out of the vocabulary. */
int lmp_lm_trainer_new(lmp_gpt2 *m, const lmp_lm_train_opts *o, const int *tokens, size_t n,
                       uint64_t seed, lmp_lm_trainer **out);
void lmp_lm_trainer_free(lmp_lm_trainer *tr);

/* One training step: zero the gradients; for each of `accum` micro-batches
 * the next B windows, forward, LM loss and backward; scale by 1/accum; then
 * lmp_optim_step (sum over ranks, clip, schedule, non-finite check, AdamW).
 * A non-finite loss or gradient norm fails with "step N: the loss is NaN;
 * stopping (on_nonfinite=skip skips such steps)" (the model is not updated;
 * info is filled, skipped = 1, so the caller can log it) unless
 * optim.skip_nonfinite is set, in which case the step counts but changes
 * nothing and info->skipped is 1. */
int lmp_lm_train_step(lmp_lm_trainer *tr, lmp_lm_step_info *info);

/* Mean next-token loss of m over tokens[n] read as consecutive windows of
 * T+1 tokens (stride T), B windows per forward, at most max_windows windows
 * (<= 0: all).  Errors: too few tokens for one window. */
int lmp_lm_eval(lmp_gpt2 *m, const int *tokens, size_t n, int B, int T, long max_windows,
                double *loss);

/* ------------------------------------------------------------ checkpoints */

/* Save everything a resumed run needs into directory dir, replaced
 * atomically (ckptdir.h): model.safetensors (the weights), optimizer.bin
 * (AdamW moments and step, lmp_params_state_save), trainer.json (step,
 * skipped, tokens seen, RNG state, data position, options, model config, and
 * the caller's `extra` JSON object text, may be NULL). */
int lmp_lm_trainer_save(const lmp_lm_trainer *tr, const char *dir, const char *extra);

/* Restore a checkpoint into tr (created with the same model config, B, T,
 * accum and token stream): weights, optimizer state, step, RNG, data
 * position.  *extra (may be NULL) receives the saved extra JSON text
 * (malloc'd, or NULL).  Errors name the file and what does not match; on
 * error tr is unchanged.  A checkpoint left as DIR.old.PID by a save that
 * was interrupted mid-swap is recovered first (ckptdir.h). */
int lmp_lm_trainer_load(lmp_lm_trainer *tr, const char *dir, char **extra);

#ifdef __cplusplus
}
#endif

#endif
