/*
 * check_metrics.c — classification metrics and log loss against values worked out by
 * hand (binary, three classes, degenerate cases where a ratio is undefined)
 * and against an independent sklearn-style implementation
 * (tests/fixtures/metrics/expected.py) on generated label arrays.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "metrics.h"
#include "util.h"
#include "testutil.h"

#define EPS 1e-12

static void near(double got, double want, const char *what)
{
    ck_assert_msg(fabs(got - want) <= EPS * (1 + fabs(want)), "%s: got %.17g, want %.17g", what, got, want);
}

START_TEST(binary_by_hand)
{
    /* TP 4, TN 2, FP 1, FN 1 (the evaluate test's fixture) */
    int gold[] = {1, 1, 0, 0, 1, 1, 0, 1}, pred[] = {1, 1, 0, 1, 0, 1, 0, 1};
    lmp_cls_metrics m;
    ck_assert_int_eq(lmp_cls_metrics_compute(&m, gold, pred, 8, 2), 0);
    near(m.accuracy, 0.75, "accuracy");
    near(m.mcc, 7.0 / 15.0, "mcc"); /* (4*2 - 1*1) / sqrt(5*5*3*3) */
    near(m.precision[1], 0.8, "precision 1");
    near(m.recall[1], 0.8, "recall 1");
    near(m.precision[0], 2.0 / 3.0, "precision 0");
    near(m.f1[0], 2.0 / 3.0, "f1 0");
    near(m.f1[1], 0.8, "f1 1");
    near(m.macro_f1, (0.8 + 2.0 / 3.0) / 2, "macro f1");
    ck_assert_int_eq(m.confusion[0 * 2 + 0], 2);
    ck_assert_int_eq(m.confusion[0 * 2 + 1], 1);
    ck_assert_int_eq(m.confusion[1 * 2 + 0], 1);
    ck_assert_int_eq(m.confusion[1 * 2 + 1], 4);
    ck_assert_int_eq(m.support[1], 5);
    ck_assert_int_eq(m.predicted[1], 5);
    ck_assert_int_eq(m.majority, 1);
    near(m.majority_frac, 5.0 / 8.0, "majority frac");
    ck_assert_int_eq(m.collapsed, 0);

    /* perfect and perfectly wrong */
    int inv[] = {0, 0, 1, 1, 0, 0, 1, 0};
    ck_assert_int_eq(lmp_cls_metrics_compute(&m, gold, gold, 8, 2), 0);
    near(m.mcc, 1, "perfect mcc");
    near(m.macro_f1, 1, "perfect f1");
    ck_assert_int_eq(lmp_cls_metrics_compute(&m, gold, inv, 8, 2), 0);
    near(m.mcc, -1, "inverted mcc");
    near(m.accuracy, 0, "inverted accuracy");
}
END_TEST

START_TEST(probabilities)
{
    int gold[] = {0, 1, 1};
    float probs[] = {0.75f, 0.25f, 0.5f, 0.5f, 1.0f, 0.0f};
    /* -(log .75 + log .5 + log 1e-12) / 3: a certain mistake is clamped */
    near(lmp_log_loss(probs, gold, 3, 2), -(log(0.75) + log(0.5) + log(1e-12)) / 3, "log loss");
    float bad[] = {0.5f, 0.5f, 0.5f, 1.5f, 1, 0};
    ck_assert(isnan(lmp_log_loss(bad, gold, 3, 2)));
    float nan_p[] = {NAN, 1, 0, 1, 1, 0};
    ck_assert(isnan(lmp_log_loss(nan_p, gold, 3, 2)));

    float z[] = {1, 3, 2}, p[3];
    lmp_softmax(z, p, 3);
    double s = exp(1) + exp(3) + exp(2);
    ck_assert(fabs(p[1] - exp(3) / s) < 1e-7); /* float */
    ck_assert(fabs(p[0] + p[1] + p[2] - 1) < 1e-6);
    float big[] = {1000, 999};
    lmp_softmax(big, p, 2);
    ck_assert(fabs(p[0] - 1 / (1 + exp(-1))) < 1e-6);
    ck_assert_int_eq(lmp_argmax(z, 3), 1);
    float tie[] = {2, 2, 1};
    ck_assert_int_eq(lmp_argmax(tie, 3), 0);
    float nanfirst[] = {NAN, -5, -6};
    ck_assert_int_eq(lmp_argmax(nanfirst, 3), 1);
}
END_TEST

START_TEST(three_classes_by_hand)
{
    /* confusion (rows gold):  [2 1 0]  [0 2 1]  [1 0 3] */
    int gold[] = {0, 0, 0, 1, 1, 1, 2, 2, 2, 2}, pred[] = {0, 0, 1, 1, 1, 2, 0, 2, 2, 2};
    lmp_cls_metrics m;
    ck_assert_int_eq(lmp_cls_metrics_compute(&m, gold, pred, 10, 3), 0);
    near(m.accuracy, 0.7, "accuracy");
    /* c=7, s=10, t=(3,3,4), p=(3,3,4): (70 - 34) / (100 - 34) */
    near(m.mcc, 36.0 / 66.0, "mcc");
    near(m.f1[0], 2.0 / 3.0, "f1 0");
    near(m.f1[1], 2.0 / 3.0, "f1 1");
    near(m.f1[2], 0.75, "f1 2");
    near(m.macro_f1, (2.0 / 3 + 2.0 / 3 + 0.75) / 3, "macro f1");
    ck_assert_int_eq(m.confusion[2 * 3 + 0], 1);
}
END_TEST

START_TEST(degenerate)
{
    lmp_cls_metrics m;
    /* everything predicted as one class: MCC undefined -> 0, collapse flagged */
    int gold[] = {0, 1, 1, 0, 1}, ones[] = {1, 1, 1, 1, 1};
    ck_assert_int_eq(lmp_cls_metrics_compute(&m, gold, ones, 5, 2), 0);
    ck_assert(m.mcc == 0.0);
    near(m.accuracy, 0.6, "accuracy");
    ck_assert(m.precision[0] == 0.0 && m.recall[0] == 0.0 && m.f1[0] == 0.0);
    near(m.f1[1], 0.75, "f1 1");
    near(m.macro_f1, 0.375, "macro f1 (class 0 is in gold, so it counts)");
    ck_assert_int_eq(m.collapsed, 1);
    ck_assert_int_eq(m.majority, 1);
    near(m.majority_frac, 1, "majority frac");
    /* all gold one class, predictions right: MCC still undefined -> 0 */
    ck_assert_int_eq(lmp_cls_metrics_compute(&m, ones, ones, 5, 2), 0);
    ck_assert(m.mcc == 0.0);
    near(m.accuracy, 1, "accuracy");
    near(m.macro_f1, 1, "macro f1 over the one class present");
    /* one example */
    ck_assert_int_eq(lmp_cls_metrics_compute(&m, gold, gold, 1, 2), 0);
    ck_assert(m.mcc == 0.0 && !isnan(m.mcc));
    /* collapse threshold: 19 of 20 is 95%, not more */
    int g20[20] = {0}, p20[20];
    for (int i = 0; i < 20; i++) p20[i] = i == 0 ? 0 : 1;
    ck_assert_int_eq(lmp_cls_metrics_compute(&m, g20, p20, 20, 2), 0);
    ck_assert_int_eq(m.collapsed, 0);
    int g21[21] = {0}, p21[21];
    for (int i = 0; i < 21; i++) p21[i] = 1;
    p21[0] = 0;
    ck_assert_int_eq(lmp_cls_metrics_compute(&m, g21, p21, 21, 2), 0);
    ck_assert_int_eq(m.collapsed, 1); /* 20/21 = 95.2% */

    /* errors */
    int badg[] = {0, 2};
    ck_assert_int_eq(lmp_cls_metrics_compute(&m, badg, gold, 2, 2), -1);
    ck_assert_str_eq(lmp_errmsg(), "metrics: example 1: gold label 2 out of range [0, 2)");
    ck_assert_int_eq(lmp_cls_metrics_compute(&m, gold, badg, 2, 2), -1);
    ck_assert_str_eq(lmp_errmsg(), "metrics: example 1: predicted label 2 out of range [0, 2)");
    ck_assert_int_eq(lmp_cls_metrics_compute(&m, gold, gold, 0, 2), -1);
    ck_assert_str_eq(lmp_errmsg(), "metrics: no examples");
    ck_assert_int_eq(lmp_cls_metrics_compute(&m, gold, gold, 2, 1), -1);
    ck_assert_str_eq(lmp_errmsg(), "metrics: 1 classes, expected 2 to 32");
    ck_assert_int_eq(lmp_cls_metrics_compute(&m, gold, gold, 2, 33), -1);
    ck_assert_str_eq(lmp_errmsg(), "metrics: 33 classes, expected 2 to 32");
    ck_assert_int_eq(m.k, 0); /* zeroed on error */
}
END_TEST

/* ---- against tests/fixtures/metrics/expected.py */

static unsigned lcg_next(uint64_t *x)
{
    *x = (*x * 1103515245u + 12345u) % 2147483648u;
    return (unsigned)(*x >> 16);
}

typedef struct {
    int n, k, seed, hide;
    double acc, mcc, macro_f1, prec[4], rec[4], f1[4];
} ref_case;

/* pasted from expected.py's output */
static const ref_case refs[] = {
    {1000, 2, 1, -1, 0.85199999999999998, 0.7043796144218134, 0.85184829265167528, {0.86497890295358648, 0.84030418250950567}, {0.82995951417004044, 0.87351778656126478}, {0.84710743801652899, 0.85658914728682167}},
    {500, 3, 7, -1, 0.81999999999999995, 0.72989819522505495, 0.82008461714465197, {0.82208588957055218, 0.80368098159509205, 0.83333333333333337}, {0.84810126582278478, 0.80864197530864201, 0.80555555555555558}, {0.83489096573208721, 0.80615384615384611, 0.81920903954802271}},
    {200, 4, 3, 3, 0.80500000000000005, 0.68305318435824003, 0.78784043022409289, {0.839622641509434, 0.70909090909090911, 0.84615384615384615, 0}, {0.85576923076923073, 0.8125, 0.6875, 0}, {0.84761904761904761, 0.75728155339805836, 0.75862068965517238, 0}},
};

START_TEST(against_reference)
{
    for (size_t c = 0; c < sizeof refs / sizeof refs[0]; c++) {
        const ref_case *r = &refs[c];
        int *gold = mallocCheck((size_t)r->n * sizeof *gold), *pred = mallocCheck((size_t)r->n * sizeof *pred);
        uint64_t x = (uint64_t)r->seed;
        for (int i = 0; i < r->n; i++) {
            int a = (int)(lcg_next(&x) % (unsigned)r->k);
            if (a == r->hide) a = 0;
            int b = lcg_next(&x) % 10 < 7 ? a : (int)(lcg_next(&x) % (unsigned)r->k);
            if (b == r->hide) b = 0;
            gold[i] = a, pred[i] = b;
        }
        lmp_cls_metrics m;
        ck_assert_int_eq(lmp_cls_metrics_compute(&m, gold, pred, r->n, r->k), 0);
        near(m.accuracy, r->acc, "accuracy");
        near(m.mcc, r->mcc, "mcc");
        near(m.macro_f1, r->macro_f1, "macro f1");
        for (int k = 0; k < r->k; k++) {
            near(m.precision[k], r->prec[k], "precision");
            near(m.recall[k], r->rec[k], "recall");
            near(m.f1[k], r->f1[k], "f1");
        }
        free(gold);
        free(pred);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, binary_by_hand);
    tcase_add_test(tc, probabilities);
    tcase_add_test(tc, three_classes_by_hand);
    tcase_add_test(tc, degenerate);
    tcase_add_test(tc, against_reference);
    suite_add_tcase(s, tc);
    int failed = test_run_suite(s, 0);
    return failed ? 1 : 0;
}
