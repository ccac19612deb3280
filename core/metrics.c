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

void lmp_cls_metrics_free(lmp_cls_metrics *m)
{
    free(m->precision);
    free(m->recall);
    free(m->f1);
    free(m->support);
    free(m->predicted);
    free(m->confusion);
    memset(m, 0, sizeof *m);
}

static double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

int lmp_cls_metrics_compute(const int *gold, const int *pred, const float *probs, int64_t n, int k,
                            lmp_cls_metrics *m)
{
    memset(m, 0, sizeof *m);
    if (k < 2) return lmp_error("metrics: need at least 2 classes, got %d", k);
    if (n < 1) return lmp_error("metrics: no examples");
    for (int64_t i = 0; i < n; i++) {
        if (gold[i] < 0 || gold[i] >= k)
            return lmp_error("metrics: example %lld: gold label %d out of range [0, %d)", (long long)i, gold[i], k);
        if (pred[i] < 0 || pred[i] >= k)
            return lmp_error("metrics: example %lld: predicted label %d out of range [0, %d)", (long long)i, pred[i],
                             k);
        for (int c = 0; probs && c < k; c++) {
            float p = probs[i * k + c];
            if (!(p >= 0.0f && p <= 1.0f))
                return lmp_error("metrics: example %lld: probability of class %d is %g, not in [0, 1]", (long long)i,
                                 c, (double)p);
        }
    }
    m->k = k;
    m->n = n;
    m->precision = callocCheck((size_t)k, sizeof *m->precision);
    m->recall = callocCheck((size_t)k, sizeof *m->recall);
    m->f1 = callocCheck((size_t)k, sizeof *m->f1);
    m->support = callocCheck((size_t)k, sizeof *m->support);
    m->predicted = callocCheck((size_t)k, sizeof *m->predicted);
    m->confusion = callocCheck((size_t)k * (size_t)k, sizeof *m->confusion);
    int64_t correct = 0;
    double nll = 0;
    for (int64_t i = 0; i < n; i++) {
        m->confusion[gold[i] * k + pred[i]]++;
        m->support[gold[i]]++;
        m->predicted[pred[i]]++;
        correct += gold[i] == pred[i];
        /* clamp so a confident mistake costs -log(1e-12), not infinity */
        if (probs) nll -= log(fmax((double)probs[i * k + gold[i]], 1e-12));
    }
    m->accuracy = (double)correct / (double)n;
    m->log_loss = probs ? nll / (double)n : NAN;

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
