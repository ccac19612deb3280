/*
 * optim.h — optimizers for lmpipe's trainers: Adam / AdamW updates, gradient
 * clipping by global norm, learning-rate schedules, and a parameter group
 * that owns gradient and moment memory for the trainable tensors only (frozen
 * tensors — e.g. LoRA's base weights — get none).
 *
 * Gradient accumulation is the trainer's job: zero the grads once per
 * optimizer step, run forward/backward on each of K micro-batches (backward
 * kernels accumulate), scale the loss gradient by 1/K (or the grads after),
 * then clip and step once.
 */
#ifndef LMP_OPTIM_H
#define LMP_OPTIM_H

#include <stddef.h>

#include "util.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ updates */

/* AdamW (Loshchilov & Hutter; same arithmetic as torch.optim.AdamW):
 *   p -= lr * weight_decay * p                         (decoupled decay)
 *   m = beta1 m + (1-beta1) g,   v = beta2 v + (1-beta2) g^2
 *   p -= lr * (m / (1-beta1^t)) / (sqrt(v / (1-beta2^t)) + eps)
 * t is the 1-based step number.  params, grads, m, v: [n].
 * The hyperparameters are double so that 1 - beta2 etc. are formed as torch
 * forms them (0.999f would make 1 - beta2 off by 1.3e-5 relative); the
 * per-element arithmetic is float. */
void lmp_adamw_update(float *params, const float *grads, float *m, float *v, size_t n,
                  double lr, double beta1, double beta2, double eps, double weight_decay, int t);
/* Adam with classic L2 regularisation (torch.optim.Adam's weight_decay):
 * g' = g + weight_decay * p, then the Adam update above without the decoupled term. */
void lmp_adam_update(float *params, const float *grads, float *m, float *v, size_t n,
                 double lr, double beta1, double beta2, double eps, double weight_decay, int t);

/* Global L2 norm over `count` gradient tensors grads[i][ns[i]] (NULL entries
 * are skipped), accumulated in double.  If max_norm > 0 and the norm exceeds
 * it, every gradient is scaled by max_norm / (norm + 1e-6) (as torch's
 * clip_grad_norm_).  Returns the norm before clipping.  A non-finite norm is
 * returned as is and the gradients are left untouched, so the trainer can
 * skip the step. */
float lmp_clip_grad_norm(float *const *grads, const size_t *ns, int count, float max_norm);

/* ------------------------------------------------------------ schedules */

typedef enum {
    LMP_LR_CONSTANT = 0, /* base_lr after warmup */
    LMP_LR_COSINE,       /* cosine from base_lr down to min_lr at step == total */
    LMP_LR_LINEAR        /* straight line from base_lr down to min_lr at step == total */
} lmp_lr_kind;

/* Learning rate for 0-based `step` of `total`.  All kinds start with a linear
 * warmup: step < warmup gives base_lr * (step+1) / warmup (so step 0 is not
 * zero).  After it, with r = (step - warmup) / (total - warmup):
 *   constant: base_lr;  cosine: min_lr + 0.5 (1 + cos(pi r)) (base_lr - min_lr);
 *   linear: base_lr + r (min_lr - base_lr).
 * Steps >= total give min_lr for the decaying kinds. */
float lmp_lr_schedule(lmp_lr_kind kind, int step, int total, int warmup, float base_lr, float min_lr);
/* "constant" | "cosine" | "linear" -> kind; anything else: -1 with an error
 * naming the accepted values. */
int lmp_lr_schedule_parse(const char *name, lmp_lr_kind *kind);
const char *lmp_lr_schedule_name(lmp_lr_kind kind);

/* ------------------------------------------------------------ parameter groups */

/* Flags for lmp_params_add. */
#define LMP_PARAM_FROZEN   0
#define LMP_PARAM_TRAIN    1 /* gets grad, m, v */
#define LMP_PARAM_NO_DECAY 2 /* with TRAIN: excluded from weight decay (biases, layernorms) */

typedef struct {
    char *name;
    float *data;   /* not owned: points into the model's (or a mapped file's) memory */
    size_t n;
    int flags;
    float *grad;   /* [n], NULL for frozen tensors */
    float *m, *v;  /* AdamW moments, NULL for frozen tensors */
} lmp_param_tensor;

typedef struct {
    lmp_param_tensor *t;
    int count, cap;
    size_t n_trainable;              /* elements in trainable tensors */
    float *grad_mem, *m_mem, *v_mem; /* one contiguous block each, owned */
    int step;                        /* optimizer steps taken so far (AdamW's t - 1) */
    int allocated;                   /* lmp_params_alloc_grads has run */
} lmp_params_group;

void lmp_params_init(lmp_params_group *g);
/* Register a tensor.  Errors: duplicate or empty name, n == 0, data == NULL,
 * or called after lmp_params_alloc_grads. */
int lmp_params_add(lmp_params_group *g, const char *name, float *data, size_t n, int flags);
/* Allocate zeroed grad/m/v for the trainable tensors and point each
 * lmp_param_tensor's grad/m/v into them.  Call once after the last add. */
void lmp_params_alloc_grads(lmp_params_group *g);
void lmp_params_zero_grads(lmp_params_group *g);

/* Data-parallel training (dist.h): the gradient block has LMP_GRAD_EXTRA
 * float slots after the gradients, zeroed with them, where a training loop
 * puts the scalars (its loss, example counts, a stop flag) that must be
 * summed over the ranks together with the gradients, so that a step costs
 * one allreduce.  lmp_params_sum_grads sums the gradients and the first
 * nextra slots over all ranks (nothing with one rank). */
#define LMP_GRAD_EXTRA 8
float *lmp_params_grad_extra(lmp_params_group *g);
void lmp_params_sum_grads(lmp_params_group *g, int nextra);
/* The tensor called `name`, or NULL. */
lmp_param_tensor *lmp_params_find(lmp_params_group *g, const char *name);
/* Element count over all tensors, or trainable ones only. */
size_t lmp_params_numel(const lmp_params_group *g, int trainable_only);
/* lmp_clip_grad_norm over the group's trainable grads. */
float lmp_params_clip_grad_norm(lmp_params_group *g, float max_norm);
/* One AdamW step on every trainable tensor (weight decay skipped for
 * LMP_PARAM_NO_DECAY ones); increments g->step. */
void lmp_params_adamw_step(lmp_params_group *g, double lr, double beta1, double beta2,
                           double eps, double weight_decay);
void lmp_params_free(lmp_params_group *g);

/* One Adam step on every trainable tensor (torch Adam: weight_decay as L2 in
 * the gradient, on every tensor alike); increments g->step. */
void lmp_params_adam_step(lmp_params_group *g, double lr, double beta1, double beta2, double eps,
                          double weight_decay);

/* ------------------------------------------------------------ the optimizer step */

/* What every training loop's optimizer does, with one meaning per field
 * (the stages read it from the parameters of core/kit/optim_params.h). */
typedef struct {
    int adamw;             /* 1: AdamW (decoupled decay, not on LMP_PARAM_NO_DECAY tensors);
                              0: Adam with weight_decay as L2 in the gradient */
    double lr, min_lr;     /* peak learning rate; final one of the decaying schedules */
    lmp_lr_kind schedule;  /* after warmup */
    double warmup;         /* fraction of all steps in linear warmup (when warmup_steps < 0) */
    int warmup_steps;      /* steps of linear warmup; < 0: (int)(warmup * total steps) */
    double beta1, beta2, eps, weight_decay;
    double clip;           /* max global gradient norm; <= 0: no clipping */
    int skip_nonfinite;    /* on_nonfinite: 0 stop (fail the step), 1 skip it */
} lmp_optim_opts;

/* Defaults: AdamW, lr 1e-3, constant, no warmup, betas 0.9 / 0.999, eps
 * 1e-8, no weight decay, clip 1, stop on non-finite values. */
void lmp_optim_opts_default(lmp_optim_opts *o);
/* Steps of linear warmup in a run of `total` steps. */
int lmp_optim_warmup_steps(const lmp_optim_opts *o, int total);

typedef struct {
    float grad_norm; /* before clipping */
    float lr;        /* the schedule's rate for this step */
    int nonfinite;   /* the loss or the gradient norm was NaN/Inf: no update was made */
    int stop;        /* several ranks: one was interrupted (all learn it in the same step) */
} lmp_optim_info;

/* Slots for a loop's own scalars (counts, loss parts) to be summed over the
 * ranks with the gradients in lmp_optim_step: at most LMP_OPTIM_EXTRA, written
 * after the backward passes (lmp_params_zero_grads zeroes them). */
#define LMP_OPTIM_EXTRA (LMP_GRAD_EXTRA - 2)
float *lmp_optim_extra(lmp_params_group *g);

/* One optimizer step, 0-based `step` of `total`, on the gradients the
 * caller's backward passes accumulated in g:
 *   1. several ranks (dist.h): sum the gradients over the ranks in one
 *      allreduce with *loss (this rank's part of the step's loss; on return
 *      the sum, rounded to float), an interrupt flag (-> info->stop) and the
 *      caller's nextra slots of lmp_optim_extra;
 *   2. clip the global norm to o->clip (lmp_params_clip_grad_norm);
 *   3. the learning rate of the schedule at `step` (warmup, then decay);
 *   4. a non-finite *loss or norm: info->nonfinite = 1 and no update; with
 *      skip_nonfinite the step returns 0, else -1 with the one-line error
 *      "the loss is NaN; stopping (on_nonfinite=skip skips such steps)" (or
 *      "the gradient norm is infinite; ..."), for the caller to prefix with
 *      the step it names;
 *   5. AdamW (or Adam) at that rate; g->step counts the updates.
 * The float arithmetic is the loops' own (bit-identical to them). */
int lmp_optim_step(lmp_params_group *g, const lmp_optim_opts *o, int step, int total, double *loss,
                   int nextra, lmp_optim_info *info);

/* Optimizer state (step, and m, v of each trainable tensor by name) for
 * checkpoints.  serialize returns a malloc'd buffer; deserialize checks the
 * magic, the tensor names, sizes and order against the group and fails with a
 * message prefixed by `what` (e.g. the checkpoint's file name) without
 * changing the group.  save/load write/read a file (atomically). */
void *lmp_params_state_serialize(const lmp_params_group *g, size_t *len);
int lmp_params_state_deserialize(lmp_params_group *g, const void *buf, size_t len,
                                 const char *what);
int lmp_params_state_save(const lmp_params_group *g, const char *path);
int lmp_params_state_load(lmp_params_group *g, const char *path);

#ifdef __cplusplus
}
#endif

#endif
