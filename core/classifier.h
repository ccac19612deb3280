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
     * (core/optim.h); the trainer zeroes grads and steps the optimizer. */
    lmp_params_group *(*params)(lmp_classifier *c);
    /* Save to a directory / load from one (the type's save/load use these). */
    int (*save)(const lmp_classifier *c, const char *dir);
    void (*destroy)(lmp_classifier *c);
};

extern const lmp_type lmp_type_classifier;

#endif
