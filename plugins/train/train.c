/*
 * train.c — the "train" plugin: supervised training of any classifier
 * (core/classifier.h: GPT-2 + adapters + head, the RNN student, ...) on a
 * tokenized dataset.
 *
 * One optimizer step per `batch` examples (split into `accumulate`
 * micro-batches), cross-entropy loss, Adam or AdamW with an optional warmup +
 * decay schedule and global-norm clipping, examples shuffled by the run's
 * seed, and after every epoch an evaluation on the dev split.  Logged:
 * per-step `loss` and `lr`; per epoch `train_loss`, `train_acc`, `train_mcc`
 * (running, over the epoch's training batches, in training mode) and
 * `dev_loss`, `dev_acc`, `dev_mcc` (a full pass in evaluation mode).
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
#include "nn.h"
#include "optim.h"
#include "util.h"

static const lmp_param train_params[] = {
    {"epochs", LMP_INT, "5", 1, 10000, NULL, "passes over the training split"},
    {"batch", LMP_INT, "32", 1, 65536, NULL, "examples per optimizer step"},
    {"accumulate", LMP_INT, "1", 1, 1024, NULL, "micro-batches per step (batch must divide by it)"},
    {"lr", LMP_FLOAT, "1e-3", 0, 10, NULL, "peak learning rate"},
    {"optimizer", LMP_ENUM, "adamw", LMP_UNBOUNDED, "adam|adamw", "adam: L2 in the gradient (torch Adam); adamw: decoupled decay"},
    {"weight_decay", LMP_FLOAT, "0", 0, 10, NULL, "weight decay (not applied to biases and norms with adamw)"},
    {"beta1", LMP_FLOAT, "0.9", 0, 0.999999, NULL, "Adam beta1"},
    {"beta2", LMP_FLOAT, "0.999", 0, 0.99999999, NULL, "Adam beta2"},
    {"eps", LMP_FLOAT, "1e-8", 0, 1, NULL, "Adam epsilon"},
    {"schedule", LMP_ENUM, "constant", LMP_UNBOUNDED, "constant|cosine|linear", "learning-rate schedule after warmup"},
    {"warmup", LMP_FLOAT, "0", 0, 1, NULL, "fraction of all steps spent in linear warmup"},
    {"min_lr", LMP_FLOAT, "0", 0, 10, NULL, "final learning rate of the cosine/linear schedules"},
    {"clip", LMP_FLOAT, "1.0", 0, 1e6, NULL, "clip the global gradient norm to this (0: off)"},
    {"padding", LMP_ENUM, "dynamic", LMP_UNBOUNDED, "dynamic|fixed", "pad each batch to its longest row, or to max_len"},
    {"max_len", LMP_INT, "0", 0, 1 << 20, NULL, "cut rows to this many tokens (0: the classifier's limit); padding=fixed pads to it"},
    {"shuffle", LMP_BOOL, "true", LMP_UNBOUNDED, NULL, "shuffle the training split every epoch (by the run's seed)"},
    {"eval_split", LMP_STRING, "dev", LMP_UNBOUNDED, NULL, "split evaluated after every epoch ('' to skip)"},
    {"eval_batch", LMP_INT, "128", 1, 65536, NULL, "batch size of the evaluation passes"},
    {"early_stopping", LMP_INT, "0", 0, 10000, NULL, "stop after this many epochs without a better monitor value (0: off)"},
    {"monitor", LMP_ENUM, "dev_mcc", LMP_UNBOUNDED, "dev_mcc|dev_acc|dev_loss", "what early stopping and restore_best watch"},
    {"restore_best", LMP_BOOL, "false", LMP_UNBOUNDED, NULL, "end with the weights of the best epoch by monitor"},
    {"on_nonfinite", LMP_ENUM, "stop", LMP_UNBOUNDED, "stop|skip", "a NaN/Inf loss or gradient: fail the stage, or skip that step"},
    {"log_every", LMP_INT, "1", 1, 1000000, NULL, "log the step loss every this many steps"},
    LMP_PARAM_END,
};

static const lmp_port train_in[] = {
    {"model", "classifier", 0, "the classifier to train (taken over and handed on)"},
    {"data", "dataset", 0, "a tokenized dataset with a 'train' split"},
    LMP_PORT_END,
};
static const lmp_port train_out[] = {{"model", "classifier", 0, "the trained classifier"}, LMP_PORT_END};

typedef struct {
    double loss;
    lmp_cls_metrics m;
} eval_result;

/* Loss and metrics of `c` on a whole split, in evaluation mode. */
static int evaluate_split(lmp_classifier *c, const lmp_dataset *d, const lmp_split *s, int batch,
                          eval_result *r)
{
    int L = c->num_labels;
    float *logits = mallocCheck((size_t)s->n * (size_t)L * sizeof *logits);
    int *pred = mallocCheck((size_t)s->n * sizeof *pred);
    int rc = lmp_classifier_predict(c, d, s, batch, logits);
    if (rc == 0) {
        r->loss = softmax_crossentropy_forward_backward(NULL, NULL, logits, s->label, s->n, L);
        for (int i = 0; i < s->n; i++) pred[i] = lmp_argmax(logits + (size_t)i * L, L);
        lmp_cls_metrics_compute(&r->m, s->label, pred, s->n, L);
    }
    free(logits);
    free(pred);
    return rc;
}

static void shuffle(int *idx, int n, lmp_rng *rng)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(lmp_rng_u64(rng) % (uint64_t)(i + 1));
        int t = idx[i];
        idx[i] = idx[j], idx[j] = t;
    }
}

/* Copy every trainable tensor's data into / out of one flat buffer. */
static void snapshot(lmp_params_group *g, float *buf, int restore)
{
    size_t off = 0;
    for (int i = 0; i < g->count; i++) {
        lmp_param_tensor *t = &g->t[i];
        if (!t->grad) continue;
        if (restore) memcpy(t->data, buf + off, t->n * sizeof(float));
        else memcpy(buf + off, t->data, t->n * sizeof(float));
        off += t->n;
    }
}

static int train_run(lmp_stage *st)
{
    lmp_dataset *d = lmp_input(st, "data");
    lmp_classifier *c = lmp_input(st, "model");
    if (lmp_classifier_check_data(c, d) != 0) return -1;
    const lmp_split *train = lmp_dataset_split(d, "train");
    if (!train || train->n == 0) return lmp_error("dataset '%s' has no 'train' split", d->name);
    const char *eval_name = lmp_param_str(st, "eval_split");
    const lmp_split *dev = *eval_name ? lmp_dataset_split(d, eval_name) : NULL;
    if (*eval_name && !dev) return lmp_error("dataset '%s' has no split '%s' (eval_split)", d->name, eval_name);

    int epochs = (int)lmp_param_int(st, "epochs"), batch = (int)lmp_param_int(st, "batch");
    int accum = (int)lmp_param_int(st, "accumulate"), eval_batch = (int)lmp_param_int(st, "eval_batch");
    if (batch % accum != 0) return lmp_error("batch %d is not a multiple of accumulate %d", batch, accum);
    int micro = batch / accum, L = c->num_labels;
    int fixed_T = strcmp(lmp_param_str(st, "padding"), "fixed") == 0 ? (int)lmp_param_int(st, "max_len") : 0;
    if (strcmp(lmp_param_str(st, "padding"), "fixed") == 0 && fixed_T == 0)
        return lmp_error("padding=fixed needs max_len > 0");
    int max_T = (int)lmp_param_int(st, "max_len");
    if (c->max_len > 0 && (max_T == 0 || max_T > c->max_len)) max_T = c->max_len;
    int adamw = strcmp(lmp_param_str(st, "optimizer"), "adamw") == 0;
    double lr = lmp_param_float(st, "lr"), wd = lmp_param_float(st, "weight_decay");
    double b1 = lmp_param_float(st, "beta1"), b2 = lmp_param_float(st, "beta2"), eps = lmp_param_float(st, "eps");
    float clip = (float)lmp_param_float(st, "clip"), min_lr = (float)lmp_param_float(st, "min_lr");
    lmp_lr_kind sched;
    lr_schedule_parse(lmp_param_str(st, "schedule"), &sched);
    int skip_nonfinite = strcmp(lmp_param_str(st, "on_nonfinite"), "skip") == 0;
    int log_every = (int)lmp_param_int(st, "log_every"), patience = (int)lmp_param_int(st, "early_stopping");
    const char *monitor = lmp_param_str(st, "monitor");
    int restore_best = lmp_param_bool(st, "restore_best");
    if ((patience > 0 || restore_best) && !dev)
        return lmp_error("early_stopping and restore_best need an eval_split");

    lmp_params_group *g = c->params(c);
    size_t total = lmp_params_numel(g, 0), trainable = lmp_params_numel(g, 1);
    lmp_info(st, "%s classifier: %zu parameters, %zu trainable (%.4f%%)", c->kind, total, trainable,
             total ? 100.0 * (double)trainable / (double)total : 0.0);
    char buf[64];
    snprintf(buf, sizeof buf, "%zu", trainable);
    lmp_log_param(st, "trainable_params", buf);
    snprintf(buf, sizeof buf, "%zu", total);
    lmp_log_param(st, "total_params", buf);
    if (trainable == 0) return lmp_error("the classifier has no trainable parameters");

    int steps_per_epoch = (train->n + batch - 1) / batch, total_steps = steps_per_epoch * epochs;
    int warmup = (int)(lmp_param_float(st, "warmup") * total_steps);
    lmp_rng rng;
    lmp_rng_seed(&rng, lmp_seed(st) ^ 0x7472616e);
    int *order = mallocCheck((size_t)train->n * sizeof *order);
    for (int i = 0; i < train->n; i++) order[i] = i;
    float *logits = mallocCheck((size_t)micro * (size_t)L * sizeof *logits);
    float *dlogits = mallocCheck((size_t)micro * (size_t)L * sizeof *dlogits);
    int *pred = mallocCheck((size_t)train->n * sizeof *pred), *gold = mallocCheck((size_t)train->n * sizeof *gold);
    float *best = restore_best ? mallocCheck(trainable * sizeof(float)) : NULL;
    double best_score = -INFINITY;
    int best_epoch = -1, since_best = 0, step = 0, rc = 0;
    lmp_batch b = {0};

    for (int epoch = 0; epoch < epochs && rc == 0; epoch++) {
        if (lmp_param_bool(st, "shuffle")) shuffle(order, train->n, &rng);
        double loss_sum = 0;
        int seen = 0;
        for (int s0 = 0; s0 < train->n && rc == 0; s0 += batch, step++) {
            int nb = train->n - s0 < batch ? train->n - s0 : batch;
            lmp_params_zero_grads(g);
            double step_loss = 0;
            for (int m0 = 0; m0 < nb && rc == 0; m0 += micro) {
                int nm = nb - m0 < micro ? nb - m0 : micro;
                lmp_batch_fill(&b, train, order + s0 + m0, nm, d->pad_id, fixed_T, max_T);
                if ((rc = c->forward(c, b.ids, b.len, b.B, b.T, logits, 1)) != 0) break;
                memset(dlogits, 0, (size_t)nm * L * sizeof *dlogits);
                float loss = softmax_crossentropy_forward_backward(NULL, dlogits, logits, b.labels, nm, L);
                /* the step's loss is the mean over its nb examples */
                float scale = (float)nm / (float)nb;
                for (int i = 0; i < nm * L; i++) dlogits[i] *= scale;
                step_loss += loss * scale;
                for (int i = 0; i < nm; i++) {
                    pred[seen + i] = lmp_argmax(logits + (size_t)i * L, L);
                    gold[seen + i] = b.labels[i];
                }
                seen += nm;
                if ((rc = c->backward(c, dlogits)) != 0) break;
            }
            if (rc != 0) break;
            float norm = lmp_params_clip_grad_norm(g, clip);
            if (!isfinite(step_loss) || !isfinite(norm)) {
                lmp_log_metric(st, "nonfinite", step, 1);
                if (!skip_nonfinite) {
                    rc = lmp_error("step %d (epoch %d): %s is %s; stopping (on_nonfinite=skip skips such steps)",
                                   step, epoch + 1, isfinite(step_loss) ? "the gradient norm" : "the loss",
                                   isnan(isfinite(step_loss) ? norm : step_loss) ? "NaN" : "infinite");
                    break;
                }
                lmp_warn(st, "step %d: non-finite loss or gradient, step skipped", step);
                continue;
            }
            float lr_t = lr_schedule(sched, step, total_steps, warmup, (float)lr, min_lr);
            if (adamw) {
                lmp_params_adamw_step(g, lr_t, b1, b2, eps, wd);
            } else {
                for (int i = 0; i < g->count; i++) {
                    lmp_param_tensor *t = &g->t[i];
                    if (t->grad) adam_update(t->data, t->grad, t->m, t->v, t->n, lr_t, b1, b2, eps, wd, g->step + 1);
                }
                g->step++;
            }
            loss_sum += step_loss * nb;
            if (step % log_every == 0) {
                lmp_log_metric(st, "loss", step, step_loss);
                lmp_log_metric(st, "lr", step, lr_t);
                lmp_log_metric(st, "grad_norm", step, norm);
            }
            lmp_progress(st, "steps", step + 1, total_steps);
            if (lmp_interrupted()) rc = lmp_error("interrupted at step %d", step);
        }
        if (rc != 0) break;
        lmp_cls_metrics tm;
        lmp_cls_metrics_compute(&tm, gold, pred, seen, L);
        lmp_log_metric(st, "train_loss", epoch + 1, loss_sum / (seen ? seen : 1));
        lmp_log_metric(st, "train_acc", epoch + 1, tm.accuracy);
        lmp_log_metric(st, "train_mcc", epoch + 1, tm.mcc);
        if (!dev) {
            lmp_info(st, "epoch %d: train loss %.4f acc %.4f mcc %.4f", epoch + 1, loss_sum / seen, tm.accuracy, tm.mcc);
            continue;
        }
        eval_result er;
        if ((rc = evaluate_split(c, d, dev, eval_batch, &er)) != 0) break;
        lmp_log_metric(st, "dev_loss", epoch + 1, er.loss);
        lmp_log_metric(st, "dev_acc", epoch + 1, er.m.accuracy);
        lmp_log_metric(st, "dev_mcc", epoch + 1, er.m.mcc);
        lmp_info(st, "epoch %d: train loss %.4f acc %.4f mcc %.4f | %s loss %.4f acc %.4f mcc %.4f", epoch + 1,
                 loss_sum / seen, tm.accuracy, tm.mcc, eval_name, er.loss, er.m.accuracy, er.m.mcc);
        double score = strcmp(monitor, "dev_loss") == 0 ? -er.loss
                       : strcmp(monitor, "dev_acc") == 0 ? er.m.accuracy
                                                         : er.m.mcc;
        if (score > best_score) {
            best_score = score, best_epoch = epoch + 1, since_best = 0;
            if (best) snapshot(g, best, 0);
        } else if (patience > 0 && ++since_best >= patience) {
            lmp_info(st, "early stopping after epoch %d: no better %s for %d epochs", epoch + 1, monitor, patience);
            break;
        }
    }
    if (rc == 0 && best && best_epoch > 0) {
        snapshot(g, best, 1);
        lmp_info(st, "restored the weights of epoch %d (best %s)", best_epoch, monitor);
    }
    if (rc == 0 && best_epoch > 0) lmp_log_metric(st, "best_epoch", -1, best_epoch);
    lmp_batch_free(&b);
    free(order), free(logits), free(dlogits), free(pred), free(gold), free(best);
    if (rc != 0) return -1;
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
