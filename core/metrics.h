/*
 * metrics.h — classification metrics from gold and predicted labels (and,
 * optionally, predicted probabilities): accuracy, Matthews correlation
 * (multi-class form), macro-F1, per-class precision/recall/F1, confusion
 * matrix, predicted-label distribution, and whether the predictions have
 * collapsed onto one class.
 *
 * Undefined ratios are 0, never NaN: precision of a class never predicted,
 * recall of a class never seen, MCC when all gold or all predicted labels
 * are one class.  This matches sklearn with zero_division=0.
 */
#ifndef LMP_METRICS_H
#define LMP_METRICS_H

#include <stdint.h>

/* A class that takes more than this share of the predictions means collapse. */
#define LMP_COLLAPSE_FRAC 0.95

typedef struct {
    int k;                /* number of classes */
    int64_t n;            /* examples */
    double accuracy;
    double mcc;           /* Matthews correlation, Gorodkin's K-class form (binary: the usual one) */
    double macro_f1;      /* mean F1 over the classes present in gold or predictions */
    double log_loss;      /* mean -log p(gold) (probabilities given), else NaN */
    double *precision;    /* [k] */
    double *recall;       /* [k] */
    double *f1;           /* [k] */
    int64_t *support;     /* [k] gold counts */
    int64_t *predicted;   /* [k] predicted counts */
    int64_t *confusion;   /* [k * k], confusion[g * k + p]: gold g predicted p */
    int majority;         /* the most predicted class (lowest index on ties) */
    double majority_frac; /* its share of the predictions */
    int collapsed;        /* majority_frac > LMP_COLLAPSE_FRAC */
} lmp_cls_metrics;

/* gold[n], pred[n] in [0, k); probs[n * k] rows of class probabilities or
 * NULL.  Errors (n < 1, k < 2, a label out of range, a probability outside
 * [0, 1]) name the example. */
int lmp_cls_metrics_compute(const int *gold, const int *pred, const float *probs, int64_t n, int k,
                            lmp_cls_metrics *m);
void lmp_cls_metrics_free(lmp_cls_metrics *m);

/* Index of the largest of x[k] (lowest index on ties; NaN never wins). */
int lmp_argmax(const float *x, int k);
/* probs[k] = softmax(logits[k]), computed in double for stability. */
void lmp_softmax(const float *logits, float *probs, int k);

#endif
