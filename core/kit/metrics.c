/*
 * metrics.c — classification metrics (see metrics.h).  Counts are exact
 * integers; every ratio is formed from them once, in double.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "util.h"

int lmp_argmax(const float *x, int k)
{
    int best = 0;
    for (int i = 1; i < k; i++)
        if (x[i] > x[best] || (isnan(x[best]) && !isnan(x[i]))) best = i;
    return best;
}

void lmp_softmax(const float *logits, float *probs, int k)
{
    double mx = logits[0], sum = 0;
    for (int i = 1; i < k; i++)
        if (logits[i] > mx) mx = logits[i];
    for (int i = 0; i < k; i++) sum += exp((double)logits[i] - mx);
    for (int i = 0; i < k; i++) probs[i] = (float)(exp((double)logits[i] - mx) / sum);
}

double lmp_log_loss(const float *probs, const int *gold, int64_t n, int k)
{
    double nll = 0;
    for (int64_t i = 0; i < n; i++) {
        float p = probs[i * k + gold[i]];
        if (!(p >= 0.0f && p <= 1.0f)) return NAN;
        nll -= log(fmax((double)p, 1e-12));
    }
    return n > 0 ? nll / (double)n : NAN;
}

static double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

int lmp_cls_metrics_compute(lmp_cls_metrics *m, const int *gold, const int *pred, int64_t n, int k)
{
    memset(m, 0, sizeof *m);
    if (k < 2 || k > LMP_CLS_MAX_LABELS)
        return lmp_error("metrics: %d classes, expected 2 to %d", k, LMP_CLS_MAX_LABELS);
    if (n < 1) return lmp_error("metrics: no examples");
    for (int64_t i = 0; i < n; i++) {
        if (gold[i] < 0 || gold[i] >= k)
            return lmp_error("metrics: example %lld: gold label %d out of range [0, %d)", (long long)i, gold[i], k);
        if (pred[i] < 0 || pred[i] >= k)
            return lmp_error("metrics: example %lld: predicted label %d out of range [0, %d)", (long long)i, pred[i],
                             k);
    }
    m->k = k;
    m->n = n;
    int64_t correct = 0;
    for (int64_t i = 0; i < n; i++) {
        m->confusion[gold[i] * k + pred[i]]++;
        m->support[gold[i]]++;
        m->predicted[pred[i]]++;
        correct += gold[i] == pred[i];
    }
    m->accuracy = (double)correct / (double)n;

    /* MCC = (c s - sum_k p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)),
     * c correct, s total, p_k predicted and t_k gold counts of class k. */
    double s = (double)n, c = (double)correct, pt = 0, pp = 0, tt = 0;
    for (int j = 0; j < k; j++) {
        pt += (double)m->predicted[j] * (double)m->support[j];
        pp += (double)m->predicted[j] * (double)m->predicted[j];
        tt += (double)m->support[j] * (double)m->support[j];
    }
    double den = (s * s - pp) * (s * s - tt);
    m->mcc = den > 0 ? (c * s - pt) / sqrt(den) : 0.0;

    int present = 0;
    double f1sum = 0;
    for (int j = 0; j < k; j++) {
        double tp = (double)m->confusion[j * k + j];
        m->precision[j] = ratio(tp, (double)m->predicted[j]);
        m->recall[j] = ratio(tp, (double)m->support[j]);
        /* 2PR / (P + R), in the form that needs one division */
        m->f1[j] = ratio(2 * tp, (double)(m->predicted[j] + m->support[j]));
        if (m->support[j] || m->predicted[j]) {
            present++;
            f1sum += m->f1[j];
        }
        if (m->predicted[j] > m->predicted[m->majority]) m->majority = j;
    }
    m->macro_f1 = ratio(f1sum, present);
    m->majority_frac = (double)m->predicted[m->majority] / s;
    m->collapsed = m->majority_frac > LMP_COLLAPSE_FRAC;
    return 0;
}
