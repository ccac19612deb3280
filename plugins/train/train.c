/*
 * train.c — the "train" plugin: supervised training of any classifier
 * (core/kit/classifier.h: GPT-2 + adapters + head, the RNN student, ...) on a
 * tokenized dataset.
 *
 * The loop is core/kit/cls_train.c's, shared with the kd stage: one optimizer step
 * per `batch` examples (split into `accumulate` micro-batches), cross-entropy
 * loss, Adam or AdamW with an optional warmup + decay schedule and
 * global-norm clipping, examples shuffled by the run's seed, and after every
 * epoch an evaluation on the dev split.  Logged: per-step `loss`, `lr` and
 * `grad_norm`; per epoch `train_loss`, `train_acc`, `train_mcc` (running,
 * over the epoch's training batches, in training mode) and `dev_loss`,
 * `dev_acc`, `dev_mcc` (a full pass in evaluation mode).
 */
#include "config.h"

#include "batch.h"
#include "classifier.h"
#include "dataset.h"
#include "cls_train.h"
#include "lmpipe.h"

static const lmp_param train_params[] = {
    LMP_FIT_PARAMS,
    LMP_PARAM_END,
};

static const lmp_port train_in[] = {
    {"model", "classifier", 0, "the classifier to train (taken over and handed on)"},
    {"data", "dataset", 0, "a tokenized dataset with a 'train' split"},
    LMP_PORT_END,
};
static const lmp_port train_out[] = {{"model", "classifier", 0, "the trained classifier"}, LMP_PORT_END};

static int train_run(lmp_stage *st)
{
    lmp_dataset *d = lmp_input(st, "data");
    lmp_classifier *c = lmp_input(st, "model");
    lmp_fit_opts o;
    if (lmp_classifier_check_data(c, d) != 0 || lmp_fit_opts_read(st, &o) != 0) return -1;
    if (lmp_fit(st, &o, c, d, NULL) != 0) return -1;
    lmp_input_take(st, "model");
    return lmp_output(st, "model", c);
}

static const lmp_stage_def stages[] = {
    {.name = "train", .description = "supervised training of a classifier on a tokenized dataset",
     .params = train_params, .consumes = train_in, .produces = train_out, .flags = LMP_STAGE_SEEDED,
     .run = train_run},
    {0},
};

LMP_PLUGIN_DEFINE("train", PACKAGE_VERSION, "classifier training: Adam/AdamW, schedules, early stopping", stages);
