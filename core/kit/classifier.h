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
#include <stdio.h>

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
    /* The input token embedding [*V, *C], row v for token v (read-only), for
     * a model initialised from this one (the rnn stage's embed_init); NULL
     * member: the kind has none. */
    const float *(*token_embedding)(const lmp_classifier *c, int *V, int *C);
};

extern const lmp_type lmp_type_classifier;

/* Loading a saved classifier: the type's load reads {"kind"} from
 * DIR/classifier.json and calls the loader registered for that kind.
 * Registering a kind twice with the same loader is harmless; with another,
 * an error. */
typedef int (*lmp_classifier_loader)(const char *dir, lmp_classifier **out);
int lmp_classifier_kind_register(const char *kind, lmp_classifier_loader load);
int lmp_classifier_load(const char *dir, lmp_classifier **out);

/* Register a kind from the file that implements it, core or plugin alike:
 *
 *     LMP_CLASSIFIER_KIND(rnn, "rnn", lmp_rnn_classifier_load)
 *
 * at file scope.  It is a constructor: it runs when the shared object that
 * holds it is loaded (liblmpipe before main, a plugin at dlopen, which the
 * registry does with RTLD_NODELETE so that the loader stays mapped), so
 * neither classifier.c nor the engine names any kind, and a kind is known
 * before any stage runs (a cache entry of it can be loaded without running
 * its plugin's stages).  liblmpipe is built shared only (configure.ac:
 * LT_INIT disable-static), so no linker drops the constructor's object the
 * way a static archive could, which is what an explicit init list would
 * otherwise be needed for.  A failure (the name taken by another loader)
 * is reported on stderr, as nothing can return it. */
#define LMP_CLASSIFIER_KIND(tag, kind, load)                                          \
    __attribute__((constructor)) static void lmp_classifier_kind_##tag(void)          \
    {                                                                                 \
        if (lmp_classifier_kind_register(kind, load) != 0)                            \
            fprintf(stderr, "lmpipe: %s\n", lmp_errmsg());                             \
    }

#endif
