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
void adamw_update(float *params, const float *grads, float *m, float *v, size_t n,
                  double lr, double beta1, double beta2, double eps, double weight_decay, int t);
/* Adam with classic L2 regularisation (torch.optim.Adam's weight_decay):
 * g' = g + weight_decay * p, then the Adam update above without the decoupled term. */
void adam_update(float *params, const float *grads, float *m, float *v, size_t n,
                 double lr, double beta1, double beta2, double eps, double weight_decay, int t);

/* Global L2 norm over `count` gradient tensors grads[i][ns[i]] (NULL entries
 * are skipped), accumulated in double.  If max_norm > 0 and the norm exceeds
 * it, every gradient is scaled by max_norm / (norm + 1e-6) (as torch's
 * clip_grad_norm_).  Returns the norm before clipping.  A non-finite norm is
 * returned as is and the gradients are left untouched, so the trainer can
 * skip the step. */
float clip_grad_norm(float *const *grads, const size_t *ns, int count, float max_norm);

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
float lr_schedule(lmp_lr_kind kind, int step, int total, int warmup, float base_lr, float min_lr);
/* "constant" | "cosine" | "linear" -> kind; anything else: -1 with an error
 * naming the accepted values. */
int lr_schedule_parse(const char *name, lmp_lr_kind *kind);
const char *lr_schedule_name(lmp_lr_kind kind);

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
/* clip_grad_norm over the group's trainable grads. */
float lmp_params_clip_grad_norm(lmp_params_group *g, float max_norm);
/* One AdamW step on every trainable tensor (weight decay skipped for
 * LMP_PARAM_NO_DECAY ones); increments g->step. */
void lmp_params_adamw_step(lmp_params_group *g, double lr, double beta1, double beta2,
                           double eps, double weight_decay);
void lmp_params_free(lmp_params_group *g);

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
