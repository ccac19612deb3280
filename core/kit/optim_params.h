/*
 * optim_params.h — the optimizer's stage parameters: one table, spliced into
 * every training stage's parameter list (train, kd, pretrain), so that each
 * name has one meaning everywhere, and lmp_optim_opts_read, which checks
 * them and fills core/nn/optim.h's lmp_optim_opts.
 *
 *   lr            peak learning rate, [0, 10]
 *   optimizer     adamw (decoupled decay, not on biases and norms) | adam (L2)
 *   weight_decay, beta1, beta2, eps
 *   schedule      constant | cosine | linear, after warmup
 *   warmup        fraction of all steps in linear warmup, [0, 1]
 *   warmup_steps  steps of linear warmup (instead of warmup; both set: error)
 *   min_lr        final learning rate of cosine/linear
 *   min_lr_ratio  min_lr as a fraction of lr (used when min_lr is not set)
 *   clip          max global gradient norm (0: off)
 *   on_nonfinite  stop | skip: a NaN/Inf loss or gradient norm fails the
 *                 stage, or the step is skipped (and counted)
 *
 * The stages differ only in defaults (LMP_OPTIM_PARAMS: classifier
 * fine-tuning; LMP_OPTIM_LM_PARAMS: pretraining from scratch).  Old
 * spellings kept for one release (pretrain only): skip_nonfinite=BOOL
 * (-> on_nonfinite) and warmup=N, a whole number >= 1 counting steps
 * (-> warmup_steps=N); each logs a one-line deprecation warning and gives
 * the same run as the new spelling.
 */
#ifndef LMP_OPTIM_PARAMS_H
#define LMP_OPTIM_PARAMS_H

#include "lmpipe.h"
#include "optim.h"

/* The table, with a stage's defaults (strings) and the upper end of warmup
 * (1; pretrain: 1e9 for its deprecated step counts). */
#define LMP_OPTIM_PARAMS_WITH(LR, SCHEDULE, WEIGHT_DECAY, BETA2, WARMUP_STEPS, MIN_LR_RATIO, WARMUP_MAX, WARMUP_DOC) \
    {"lr", LMP_FLOAT, LR, 0, 10, NULL, "peak learning rate"},                                                   \
    {"optimizer", LMP_ENUM, "adamw", LMP_UNBOUNDED, "adam|adamw",                                               \
     "adam: L2 in the gradient (torch Adam); adamw: decoupled decay"},                                          \
    {"weight_decay", LMP_FLOAT, WEIGHT_DECAY, 0, 10, NULL,                                                      \
     "weight decay (not applied to biases and norms with adamw)"},                                              \
    {"beta1", LMP_FLOAT, "0.9", 0, 0.999999, NULL, "Adam beta1"},                                               \
    {"beta2", LMP_FLOAT, BETA2, 0, 0.99999999, NULL, "Adam beta2"},                                             \
    {"eps", LMP_FLOAT, "1e-8", 0, 1, NULL, "Adam epsilon"},                                                     \
    {"schedule", LMP_ENUM, SCHEDULE, LMP_UNBOUNDED, "constant|cosine|linear",                                   \
     "learning-rate schedule after warmup"},                                                                    \
    {"warmup", LMP_FLOAT, "0", 0, WARMUP_MAX, NULL, WARMUP_DOC},                                                \
    {"warmup_steps", LMP_INT, WARMUP_STEPS, 0, 1e9, NULL,                                                       \
     "steps of linear warmup (instead of warmup: set one of them)"},                                            \
    {"min_lr", LMP_FLOAT, "0", 0, 10, NULL, "final learning rate of the cosine/linear schedules"},              \
    {"min_lr_ratio", LMP_FLOAT, MIN_LR_RATIO, 0, 1, NULL,                                                       \
     "final learning rate as a fraction of lr (when min_lr is not set)"},                                       \
    {"clip", LMP_FLOAT, "1.0", 0, 1e9, NULL, "clip the global gradient norm to this (0: off)"},                 \
    {"on_nonfinite", LMP_ENUM, "stop", LMP_UNBOUNDED, "stop|skip",                                              \
     "a NaN/Inf loss or gradient: fail the stage, or skip that step"}

#define LMP_OPTIM_WARMUP_DOC "fraction of all steps spent in linear warmup"

/* Classifier training (train, kd): AdamW at 1e-3, constant, no decay. */
#define LMP_OPTIM_PARAMS LMP_OPTIM_PARAMS_WITH("1e-3", "constant", "0", "0.999", "0", "0", 1, LMP_OPTIM_WARMUP_DOC)

/* Pretraining (pretrain): AdamW at 2e-3, 100 warmup steps, cosine down to
 * lr/10, weight decay 0.1, beta2 0.95; with the old spellings. */
#define LMP_OPTIM_LM_PARAMS                                                                                     \
    LMP_OPTIM_PARAMS_WITH("2e-3", "cosine", "0.1", "0.95", "100", "0.1", 1e9,                                   \
                          LMP_OPTIM_WARMUP_DOC " (a whole number >= 1: the deprecated step count, as warmup_steps)"), \
    {"skip_nonfinite", LMP_BOOL, "false", LMP_UNBOUNDED, NULL, LMP_DEPRECATED "use on_nonfinite=skip|stop"}

/* For lmp_optim_opts_read: the stage has LMP_OPTIM_LM_PARAMS' old spellings. */
#define LMP_OPTIM_OLD_SPELLINGS 1

/* Read and check the table into o: warmup and warmup_steps, or min_lr and
 * min_lr_ratio, both set are an error naming them; with
 * LMP_OPTIM_OLD_SPELLINGS the old spellings are mapped (and warned about). */
int lmp_optim_opts_read(lmp_stage *st, lmp_optim_opts *o, int flags);

#endif
