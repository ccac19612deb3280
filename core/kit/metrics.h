/*
 * metrics.h — classification metrics from gold and predicted labels:
 * accuracy, Matthews correlation (multi-class form), macro-F1, per-class
 * precision/recall/F1, confusion matrix, predicted-label distribution, and
 * whether the predictions have collapsed onto one class.  The result is a
 * plain struct (no heap memory), so a training loop can compute it every
 * epoch without freeing anything.
 *
 * Undefined ratios are 0, never NaN: precision of a class never predicted,
 * recall of a class never seen, MCC when all gold or all predicted labels
 * are one class.  This matches sklearn with zero_division=0.
 */
#ifndef LMP_METRICS_H
#define LMP_METRICS_H

#include <stdint.h>

#define LMP_CLS_MAX_LABELS 32
/* A class that takes more than this share of the predictions means collapse. */
#define LMP_COLLAPSE_FRAC 0.95

typedef struct {
    int k;                /* number of classes */
    int64_t n;            /* examples */
    double accuracy;
    double mcc;           /* Matthews correlation, Gorodkin's K-class form (binary: the usual one) */
    double macro_f1;      /* mean F1 over the classes present in gold or predictions */
    double precision[LMP_CLS_MAX_LABELS];
    double recall[LMP_CLS_MAX_LABELS];
    double f1[LMP_CLS_MAX_LABELS];
    int64_t support[LMP_CLS_MAX_LABELS];   /* gold counts */
    int64_t predicted[LMP_CLS_MAX_LABELS]; /* predicted counts */
    int64_t confusion[LMP_CLS_MAX_LABELS * LMP_CLS_MAX_LABELS]; /* [gold * k + pred] */
    int majority;         /* the most predicted class (lowest index on ties) */
    double majority_frac; /* its share of the predictions */
    int collapsed;        /* majority_frac > LMP_COLLAPSE_FRAC */
} lmp_cls_metrics;

/* gold[n] and pred[n] in [0, k).  Errors (n < 1, k outside [2,
 * LMP_CLS_MAX_LABELS], a label out of range) name the example; *m is then
 * zeroed. */
int lmp_cls_metrics_compute(lmp_cls_metrics *m, const int *gold, const int *pred, int64_t n, int k);

/* Mean -log p(gold) over probs[n, k] (rows of class probabilities); each
 * p is clamped to >= 1e-12, so one confident mistake costs 27.6, not Inf.
 * Returns NaN if a probability is outside [0, 1]. */
double lmp_log_loss(const float *probs, const int *gold, int64_t n, int k);

/* Index of the largest of x[k] (lowest index on ties; NaN never wins). */
int lmp_argmax(const float *x, int k);
/* probs[k] = softmax(logits[k]), computed in double for stability. */
void lmp_softmax(const float *logits, float *probs, int k);

#endif
