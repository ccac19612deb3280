/*
 * classifier.h — the interface every sequence classifier implements (GPT-2
 * with adapters and a classification head, the RNN student, ...), so one
 * `train` stage, one `kd` stage and one `evaluate` stage serve them all.
 * Artifact type "classifier".
 *
 * Batches are right-padded token ids [B, T] with the real length of each row;
 * a classifier must ignore positions at or past len[b].
 */
#ifndef LMP_CLASSIFIER_H
#define LMP_CLASSIFIER_H

#include <stddef.h>

#include "adapter.h"
#include "lmpipe.h"
#include "optim.h"

typedef struct lmp_classifier lmp_classifier;

struct lmp_classifier {
    const char *kind;        /* "gpt2", "rnn", ... */
    int num_labels;
    int max_len;             /* longest sequence it accepts (0: unlimited) */
    char tokenizer_digest[65]; /* the vocabulary its ids must come from ("" = any) */
    void *impl;

    /* logits[B, num_labels] for ids[B, T]; `train` keeps activations for backward
     * and enables dropout. */
    int (*forward)(lmp_classifier *c, const int *ids, const int *len, int B, int T, float *logits,
                   int train);
    /* Accumulate parameter gradients from dlogits[B, num_labels] of the last
     * forward with train=1. */
    int (*backward)(lmp_classifier *c, const float *dlogits);
    /* Every parameter tensor, trainable ones with grad/m/v memory allocated
     * (core/nn/optim.h); the trainer zeroes grads and steps the optimizer. */
    lmp_params_group *(*params)(lmp_classifier *c);
    /* Save to a directory / load from one (the type's save/load use these).
     * The directory must contain classifier.json with at least {"kind": ...},
     * by which the type's load finds the kind's loader. */
    int (*save)(const lmp_classifier *c, const char *dir);
    void (*destroy)(lmp_classifier *c);
    /* The model's linear layers, for adapter stages (core/nn/adapter.h); NULL
     * (the member or its result) when the classifier has none. */
    lmp_adapter_host *(*adapters)(lmp_classifier *c);
};

extern const lmp_type lmp_type_classifier;

/* Loading a saved classifier: the type's load reads {"kind"} from
 * DIR/classifier.json and calls the loader registered for that kind (the
 * core's kinds are built in; a plugin adds its own at load time). */
typedef int (*lmp_classifier_loader)(const char *dir, lmp_classifier **out);
int lmp_classifier_kind_register(const char *kind, lmp_classifier_loader load);
int lmp_classifier_load(const char *dir, lmp_classifier **out);

#endif
