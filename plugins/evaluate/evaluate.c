/*
 * evaluate.c — the "evaluate" plugin: one stage that runs any classifier
 * (classifier.h) over one split of a tokenized dataset and records how well
 * it does.
 *
 *   evaluate   metrics <name>_acc, _mcc, _f1, _loss, per-class precision,
 *              recall and F1, confusion counts <name>_cm_<gold>_<pred>,
 *              the predicted-label distribution, and a predictions TSV
 *
 * Everything that can be checked before the first forward pass is checked
 * first (split, tokenization, labels, vocabulary: core/kit/batch.c's checks, the
 * same as train's), so a bad wiring fails at once with a message saying what
 * to change.  Batching is core/kit/batch.c's too: right-padded with the pad id,
 * T = the longest row of the batch, rows cut to the classifier's max_len at
 * the end the tokenizer cut.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "classifier.h"
#include "dataset.h"
#include "lmpipe.h"
#include "metrics.h"
#include "util.h"

static const lmp_param eval_params[] = {
    {"split", LMP_STRING, "dev", LMP_UNBOUNDED, NULL, "the split to evaluate: train, dev, ood, or any split's name"},
    {"batch", LMP_INT, "32", 1, 65536, NULL, "examples per forward pass"},
    {"name", LMP_STRING, "", LMP_UNBOUNDED, NULL, "prefix of the metric names (default: the split)"},
    LMP_PARAM_END,
};

static const lmp_port eval_in[] = {
    {"classifier", "classifier", 0, "the model to evaluate"},
    {"dataset", "dataset", 0, "a tokenized dataset"},
    LMP_PORT_END,
};

/* A label name usable inside a metric key; else the label's index. */
static char *key_label(const lmp_dataset *d, int i)
{
    const char *s = d->label_names[i];
    int ok = s && *s;
    for (const char *p = s; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-';
    return ok ? strdupCheck(s) : lmp_strfmt("%d", i);
}

/* TSV cell: the characters that would break a row are escaped. */
static void put_cell(lmp_sbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '\t': lmp_sbuf_puts(b, "\\t"); break;
        case '\n': lmp_sbuf_puts(b, "\\n"); break;
        case '\r': lmp_sbuf_puts(b, "\\r"); break;
        case '\\': lmp_sbuf_puts(b, "\\\\"); break;
        default: lmp_sbuf_putc(b, *s);
        }
    }
}

static int check_inputs(const lmp_classifier *c, const lmp_dataset *d, const lmp_split *s, const char *split)
{
    if (!s) {
        lmp_sbuf names = {0};
        lmp_sbuf_puts(&names, "");
        for (int i = 0; i < d->nsplits; i++) lmp_sbuf_printf(&names, "%s%s", i ? ", " : "", d->splits[i].name);
        lmp_error("dataset '%s' has no split '%s' (splits: %s)", d->name, split, names.s);
        lmp_sbuf_free(&names);
        return -1;
    }
    if (lmp_classifier_check_data(c, d) != 0) return -1;
    if (d->num_labels > LMP_CLS_MAX_LABELS)
        return lmp_error("dataset '%s' has %d labels; evaluate handles at most %d", d->name, d->num_labels,
                         LMP_CLS_MAX_LABELS);
    if (s->n == 0) return lmp_error("split '%s' of dataset '%s' is empty", split, d->name);
    if (!s->ids || !s->len) return lmp_error("split '%s' of dataset '%s' has no token ids", split, d->name);
    for (int i = 0; i < s->n; i++)
        if (s->len[i] < 1)
            return lmp_error("split '%s' example %d has no tokens (\"%.40s\")", split, i + 1, s->text[i]);
    return 0;
}

static int log_metrics(lmp_stage *st, const char *name, const lmp_dataset *d, const lmp_cls_metrics *m,
                       double loss)
{
    int rc = 0;
    char *key;
#define LOG(value, ...)                                             \
    do {                                                            \
        key = lmp_strfmt(__VA_ARGS__);                              \
        if (rc == 0) rc = lmp_log_metric(st, key, -1, (value));     \
        free(key);                                                  \
    } while (0)
    LOG(m->accuracy, "%s_acc", name);
    LOG(m->mcc, "%s_mcc", name);
    LOG(m->macro_f1, "%s_f1", name);
    LOG(loss, "%s_loss", name);
    LOG((double)m->n, "%s_n", name);
    LOG(m->collapsed, "%s_collapsed", name);
    for (int k = 0; k < m->k; k++) {
        char *lab = key_label(d, k);
        LOG(m->precision[k], "%s_precision_%s", name, lab);
        LOG(m->recall[k], "%s_recall_%s", name, lab);
        LOG(m->f1[k], "%s_f1_%s", name, lab);
        LOG((double)m->predicted[k] / (double)m->n, "%s_pred_frac_%s", name, lab);
        free(lab);
        for (int p = 0; p < m->k; p++) LOG((double)m->confusion[k * m->k + p], "%s_cm_%d_%d", name, k, p);
    }
#undef LOG
    /* label names, so a report can title confusion matrices */
    for (int k = 0; k < d->num_labels && rc == 0; k++) {
        key = lmp_strfmt("label_%d", k);
        rc = lmp_log_param(st, key, d->label_names[k]);
        free(key);
    }
    return rc;
}

static int write_predictions(lmp_stage *st, const char *name, const lmp_dataset *d, const lmp_split *s,
                             const int *pred, const float *probs)
{
    char *file = lmp_strfmt("%s_predictions.tsv", name);
    char *path = lmp_strfmt("%s/%s", lmp_workdir(st), file);
    lmp_sbuf b = {0};
    lmp_sbuf_puts(&b, "sentence\tgold\tpredicted");
    for (int k = 0; k < d->num_labels; k++) {
        lmp_sbuf_puts(&b, "\tp_");
        put_cell(&b, d->label_names[k]);
    }
    lmp_sbuf_putc(&b, '\n');
    lmp_atomic_file af;
    int rc = lmp_atomic_open(&af, path);
    for (int i = 0; i < s->n && rc == 0; i++) {
        put_cell(&b, s->text[i]);
        lmp_sbuf_putc(&b, '\t');
        put_cell(&b, d->label_names[s->label[i]]);
        lmp_sbuf_putc(&b, '\t');
        put_cell(&b, d->label_names[pred[i]]);
        for (int k = 0; k < d->num_labels; k++) lmp_sbuf_printf(&b, "\t%.6f", probs[(size_t)i * d->num_labels + k]);
        lmp_sbuf_putc(&b, '\n');
        if (b.len > (1u << 16) || i == s->n - 1) {
            rc = lmp_atomic_write(&af, b.s, b.len);
            b.len = 0;
        }
    }
    if (rc == 0) rc = lmp_atomic_commit(&af);
    else if (af.path) lmp_atomic_abort(&af);
    if (rc == 0) rc = lmp_log_artifact(st, file, path);
    lmp_sbuf_free(&b);
    free(path);
    free(file);
    return rc;
}

static int eval_run(lmp_stage *st)
{
    lmp_classifier *c = lmp_input(st, "classifier");
    const lmp_dataset *d = lmp_input(st, "dataset");
    const char *split = lmp_param_str(st, "split");
    const char *name = *lmp_param_str(st, "name") ? lmp_param_str(st, "name") : split;
    int batch = (int)lmp_param_int(st, "batch");
    const lmp_split *s = lmp_dataset_split((lmp_dataset *)d, split);
    if (check_inputs(c, d, s, split) != 0) return -1;
    int K = d->num_labels, n = s->n, cut = lmp_batch_count_cut(s, c->max_len);
    if (cut)
        lmp_warn(st, "%d of %d sentences of %s are longer than the classifier's %d tokens: cut to fit%s", cut, n, split,
                 c->max_len, d->truncate_left ? ", keeping their end (truncation=left)" : "");

    int *pred = mallocCheck((size_t)n * sizeof *pred);
    float *logits = mallocCheck((size_t)n * (size_t)K * sizeof *logits);
    float *probs = mallocCheck((size_t)n * (size_t)K * sizeof *probs);
    int rc = 0;
    double t0 = lmp_now();
    /* one batch at a time through core/kit/batch.c, on a view of the split, for progress */
    for (int b0 = 0; b0 < n && rc == 0; b0 += batch) {
        int B = n - b0 < batch ? n - b0 : batch;
        lmp_split view = *s;
        view.n = B;
        view.text += b0, view.label += b0, view.ids += b0, view.len += b0;
        if (view.source) view.source += b0;
        rc = lmp_classifier_predict(c, d, &view, batch, logits + (size_t)b0 * K);
        lmp_progress(st, split, b0 + B, n);
    }
    for (int i = 0; i < n && rc == 0; i++) {
        const float *z = logits + (size_t)i * K;
        for (int k = 0; k < K && rc == 0; k++)
            if (!isfinite(z[k]))
                rc = lmp_error("the classifier gave a non-finite logit (%g) for example %d of split '%s'", (double)z[k],
                               i + 1, split);
        lmp_softmax(z, probs + (size_t)i * K, K);
        pred[i] = lmp_argmax(z, K);
    }
    double secs = lmp_now() - t0;
    lmp_cls_metrics m;
    if (rc == 0) rc = lmp_cls_metrics_compute(&m, s->label, pred, n, K);
    if (rc == 0) {
        rc = log_metrics(st, name, d, &m, lmp_log_loss(probs, s->label, n, K));
        if (rc == 0) rc = write_predictions(st, name, d, s, pred, probs);
        lmp_info(st, "%s: accuracy %.4f, MCC %.4f, macro-F1 %.4f over %d examples (%.0f/s)", split, m.accuracy,
                 m.mcc, m.macro_f1, n, secs > 0 ? n / secs : 0.0);
        if (m.collapsed)
            lmp_warn(st, "predicts '%s' for %.1f%% of %s: the classifier has collapsed to one class",
                     d->label_names[m.majority], 100.0 * m.majority_frac, split);
    }
    free(pred);
    free(logits);
    free(probs);
    return rc;
}

static const lmp_stage_def stages[] = {
    {.name = "evaluate", .description = "run a classifier over a dataset split and record accuracy, MCC, F1, ...",
     .params = eval_params, .consumes = eval_in, .run = eval_run},
    {0},
};

LMP_PLUGIN_DEFINE("evaluate", PACKAGE_VERSION, "classifier evaluation", stages);
