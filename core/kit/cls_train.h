/*
 * cls_train.h — the supervised training loop every classifier-training stage
 * shares (train, kd): batching through core/kit/batch.c, micro-batches, the
 * loss (cross-entropy, or the stage's own), global-norm clipping, Adam or
 * AdamW under a warmup + decay schedule, the non-finite policy, an
 * evaluation on the dev split after every epoch, early stopping and
 * restoring the best epoch.
 *
 * A stage lists LMP_FIT_PARAMS among its parameters, reads them with
 * lmp_fit_opts_read (which checks them) before it does anything costly, and
 * calls lmp_fit.  Logged: per step `loss`, `lr`, `grad_norm` and each named
 * part of the loss; per epoch `train_loss`, `train_acc`, `train_mcc` (running,
 * in training mode) and `train_<part>`, `train_seconds` (the epoch's
 * steps), `padding_waste` (padded positions computed / real tokens, over
 * the epoch's batches) and under mpirun `allreduce_seconds` (of them, summing gradients
 * over the ranks), and `dev_loss` (cross-entropy),
 * `dev_acc`, `dev_mcc` (a full pass in evaluation mode); `best_epoch`.
 */
#ifndef LMP_CLS_TRAIN_H
#define LMP_CLS_TRAIN_H

#include "classifier.h"
#include "dataset.h"
#include "lmpipe.h"
#include "optim.h"
#include "optim_params.h"

/* The training parameters, for a stage's lmp_param list (the optimizer's
 * are optim_params.h's, shared with pretrain). */
#define LMP_FIT_PARAMS                                                                                          \
    {"epochs", LMP_INT, "5", 1, 10000, NULL, "passes over the training split"},                                 \
    {"batch", LMP_INT, "32", 1, 65536, NULL, "examples per optimizer step"},                                    \
    {"accumulate", LMP_INT, "1", 1, 1024, NULL, "micro-batches per step (batch must divide by it)"},            \
    LMP_OPTIM_PARAMS,                                                                                           \
    {"padding", LMP_ENUM, "dynamic", LMP_UNBOUNDED, "dynamic|fixed",                                            \
     "pad each batch to its longest row, or to max_len"},                                                       \
    {"max_len", LMP_INT, "0", 0, 1 << 20, NULL,                                                                 \
     "cut rows to this many tokens (0: the classifier's limit); padding=fixed pads to it"},                    \
    {"shuffle", LMP_BOOL, "true", LMP_UNBOUNDED, NULL, "shuffle the training split every epoch (by the run's seed)"}, \
    {"group_by_length", LMP_INT, "50", 0, 1000000, NULL,                                                        \
     "with shuffle and dynamic padding: sort rows by length within chunks of this many batches, then shuffle "  \
     "the batches (Hugging Face's group_by_length uses 50; less padding computed); 0: off"},                  \
    {"max_steps", LMP_INT, "0", 0, 1 << 30, NULL, "stop after this many optimizer steps (0: all epochs)"},     \
    {"eval_split", LMP_STRING, "dev", LMP_UNBOUNDED, NULL, "split evaluated after every epoch ('' to skip)"},   \
    {"eval_batch", LMP_INT, "128", 1, 65536, NULL, "batch size of the evaluation passes"},                      \
    {"early_stopping", LMP_INT, "0", 0, 10000, NULL,                                                            \
     "stop after this many epochs without a better monitor value (0: off)"},                                    \
    {"monitor", LMP_ENUM, "dev_mcc", LMP_UNBOUNDED, "dev_mcc|dev_acc|dev_loss",                                 \
     "what early stopping and restore_best watch"},                                                             \
    {"restore_best", LMP_BOOL, "false", LMP_UNBOUNDED, NULL, "end with the weights of the best epoch by monitor"}, \
    {"log_every", LMP_INT, "1", 1, 1000000, NULL, "log the step loss every this many steps"}

typedef struct {
    int epochs, batch, accumulate, eval_batch;
    int fixed_T;  /* padding=fixed: pad to this; 0: dynamic */
    int max_len;  /* the max_len parameter (0: the classifier's limit) */
    lmp_optim_opts optim; /* the optimizer (optim.h) */
    int group;     /* group_by_length: chunk of batches sorted by length (0: off) */
    int max_steps; /* 0: every step of every epoch */
    int shuffle, early_stopping, restore_best, log_every;
    const char *eval_split, *monitor;
} lmp_fit_opts;

/* Read and check LMP_FIT_PARAMS (batch a multiple of accumulate, max_len
 * for padding=fixed, an eval_split for early stopping / restore_best). */
int lmp_fit_opts_read(lmp_stage *st, lmp_fit_opts *o);

/* A training loss.  For the n rows of a micro-batch — logits[n, L], gold
 * labels[n], and their indices idx[n] into the training split (to look up
 * per-example targets) — fn adds d(mean loss over the n rows)/d(logits) to
 * dlogits[n, L] (zeroed by the caller), stores the mean of each of its
 * nparts parts in parts[], and returns the mean loss; NAN with lmp_error()
 * set on failure. */
typedef struct {
    double (*fn)(void *ctx, const float *logits, const int *labels, const int *idx, int n, int L, float *dlogits,
                 double *parts);
    void *ctx;
    int nparts;                      /* at most LMP_FIT_MAX_PARTS */
    const char *const *part_names;   /* metric names of the parts, e.g. "ce_loss" */
} lmp_fit_loss;
#define LMP_FIT_MAX_PARTS 4

/* Train c on d's 'train' split (loss NULL: mean cross-entropy), evaluating
 * on o->eval_split after every epoch.  The dataset must suit c
 * (lmp_classifier_check_data).  On an error the classifier holds the
 * weights of the last step taken. */
int lmp_fit(lmp_stage *st, const lmp_fit_opts *o, lmp_classifier *c, lmp_dataset *d, const lmp_fit_loss *loss);

#endif
