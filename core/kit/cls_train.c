/*
 * cls_train.c — the classifier training loop of cls_train.h, shared by the train and kd stages.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "dist.h"
#include "cls_train.h"
#include "metrics.h"
#include "nn.h"
#include "util.h"

int lmp_fit_opts_read(lmp_stage *st, lmp_fit_opts *o)
{
    memset(o, 0, sizeof *o);
    o->epochs = (int)lmp_param_int(st, "epochs");
    o->batch = (int)lmp_param_int(st, "batch");
    o->accumulate = (int)lmp_param_int(st, "accumulate");
    o->eval_batch = (int)lmp_param_int(st, "eval_batch");
    if (o->batch % o->accumulate != 0)
        return lmp_error("batch %d is not a multiple of accumulate %d", o->batch, o->accumulate);
    o->max_len = (int)lmp_param_int(st, "max_len");
    if (strcmp(lmp_param_str(st, "padding"), "fixed") == 0) {
        if (o->max_len == 0) return lmp_error("padding=fixed needs max_len > 0");
        o->fixed_T = o->max_len;
    }
    if (lmp_optim_opts_read(st, &o->optim, 0) != 0) return -1;
    o->log_every = (int)lmp_param_int(st, "log_every");
    o->early_stopping = (int)lmp_param_int(st, "early_stopping");
    o->monitor = lmp_param_str(st, "monitor");
    o->restore_best = lmp_param_bool(st, "restore_best");
    o->shuffle = lmp_param_bool(st, "shuffle");
    /* grouping only pays where padding is dynamic, and only reorders rows
     * that are shuffled anyway: a file order asked for is kept */
    o->group = o->shuffle && !o->fixed_T ? (int)lmp_param_int(st, "group_by_length") : 0;
    o->max_steps = (int)lmp_param_int(st, "max_steps");
    o->eval_split = lmp_param_str(st, "eval_split");
    if ((o->early_stopping > 0 || o->restore_best) && !*o->eval_split)
        return lmp_error("early_stopping and restore_best need an eval_split");
    return 0;
}

/* a step's loss parts and its padded / real token counts travel with the
 * gradients' allreduce */
_Static_assert(LMP_FIT_MAX_PARTS + 2 <= LMP_OPTIM_EXTRA, "too many loss parts for the allreduce");

typedef struct {
    double loss;
    lmp_cls_metrics m;
} eval_result;

/* Cross-entropy and metrics of `c` on a whole split, in evaluation mode. */
static int evaluate_split(lmp_classifier *c, const lmp_dataset *d, const lmp_split *s, int batch, eval_result *r)
{
    int L = c->num_labels;
    float *logits = mallocCheck((size_t)s->n * (size_t)L * sizeof *logits);
    int *pred = mallocCheck((size_t)s->n * sizeof *pred);
    int rc = lmp_classifier_predict(c, d, s, batch, logits);
    if (rc == 0) {
        r->loss = lmp_nn_softmax_crossentropy_forward_backward(NULL, NULL, logits, s->label, s->n, L);
        for (int i = 0; i < s->n; i++) pred[i] = lmp_argmax(logits + (size_t)i * L, L);
        lmp_cls_metrics_compute(&r->m, s->label, pred, s->n, L);
    }
    free(logits);
    free(pred);
    return rc;
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

/* The default loss: mean cross-entropy against the gold labels. */
static double ce_loss(void *ctx, const float *logits, const int *labels, const int *idx, int n, int L, float *dlogits,
                      double *parts)
{
    (void)ctx, (void)idx, (void)parts;
    return lmp_nn_softmax_crossentropy_forward_backward(NULL, dlogits, logits, labels, n, L);
}

int lmp_fit(lmp_stage *st, const lmp_fit_opts *o, lmp_classifier *c, lmp_dataset *d, const lmp_fit_loss *loss)
{
    static const lmp_fit_loss ce = {ce_loss, NULL, 0, NULL};
    if (!loss) loss = &ce;
    if (loss->nparts < 0 || loss->nparts > LMP_FIT_MAX_PARTS)
        return lmp_error("a loss with %d parts (at most %d)", loss->nparts, LMP_FIT_MAX_PARTS);
    if (lmp_classifier_check_data(c, d) != 0) return -1;
    const lmp_split *train = lmp_dataset_split(d, "train");
    if (!train || train->n == 0) return lmp_error("dataset '%s' has no 'train' split", d->name);
    const lmp_split *dev = *o->eval_split ? lmp_dataset_split(d, o->eval_split) : NULL;
    if (*o->eval_split && !dev) return lmp_error("dataset '%s' has no split '%s' (eval_split)", d->name, o->eval_split);

    int batch = o->batch, micro = batch / o->accumulate, L = c->num_labels, np = loss->nparts;
    int max_T = o->max_len;
    if (c->max_len > 0 && (max_T == 0 || max_T > c->max_len)) max_T = c->max_len;
    /* a cut the tokenizer did not make (a context shorter than its max_len)
     * changes what the model learns from: say so, and which end goes */
    int cut = lmp_batch_count_cut(train, max_T);
    if (cut)
        lmp_warn(st, "%d of %d training sentences are longer than %s %d tokens: cut to fit%s", cut, train->n,
                 max_T == c->max_len ? "the classifier's" : "max_len", max_T,
                 d->truncate_left ? ", keeping their end (truncation=left)" : "");

    lmp_params_group *g = c->params(c);
    if (!g) return -1;
    size_t total = lmp_params_numel(g, 0), trainable = lmp_params_numel(g, 1);
    lmp_info(st, "%s classifier: %zu parameters, %zu trainable (%.4f%%)", c->kind, total, trainable,
             total ? 100.0 * (double)trainable / (double)total : 0.0);
    char buf[64];
    snprintf(buf, sizeof buf, "%zu", trainable);
    lmp_log_param(st, "trainable_params", buf);
    snprintf(buf, sizeof buf, "%zu", total);
    lmp_log_param(st, "total_params", buf);
    if (trainable == 0) return lmp_error("the classifier has no trainable parameters");

    int steps_per_epoch = (train->n + batch - 1) / batch, total_steps = steps_per_epoch * o->epochs;
    if (o->max_steps > 0 && o->max_steps < total_steps) total_steps = o->max_steps;
    lmp_rng rng;
    lmp_rng_seed(&rng, lmp_seed(st) ^ 0x7472616e);
    int *order = mallocCheck((size_t)train->n * sizeof *order);
    for (int i = 0; i < train->n; i++) order[i] = i;
    float *logits = mallocCheck((size_t)micro * (size_t)L * sizeof *logits);
    float *dlogits = mallocCheck((size_t)micro * (size_t)L * sizeof *dlogits);
    int *pred = mallocCheck((size_t)train->n * sizeof *pred), *gold = mallocCheck((size_t)train->n * sizeof *gold);
    float *best = o->restore_best ? mallocCheck(trainable * sizeof(float)) : NULL;
    double best_score = -INFINITY;
    int best_epoch = -1, since_best = 0, step = 0, rc = 0;
    lmp_batch b = {0};

    /* Data parallelism (dist.h): each rank takes a contiguous shard of every
     * batch, adds its rows' share of the mean-loss gradient, and one sum over
     * the gradient block (with the step's loss, its parts and a stop flag in
     * the slots after the gradients) gives every rank the whole batch's. */
    int ranks = lmp_dist_size();
    for (int epoch = 0; epoch < o->epochs && step < total_steps && rc == 0; epoch++) {
        if (o->shuffle) lmp_batch_order(train, order, batch, o->group, max_T, &rng);
        double loss_sum = 0, part_sum[LMP_FIT_MAX_PARTS] = {0}, padded = 0, real = 0;
        int seen = 0;
        double t_epoch = lmp_now(), t_reduce = lmp_dist_reduce_seconds();
        if (ranks > 1) {
            memset(pred, 0, (size_t)train->n * sizeof *pred);
            memset(gold, 0, (size_t)train->n * sizeof *gold);
        }
        for (int s0 = 0; s0 < train->n && step < total_steps && rc == 0; s0 += batch, step++) {
            int nb = train->n - s0 < batch ? train->n - s0 : batch;
            long lo, hi;
            lmp_dist_shard(nb, &lo, &hi);
            lmp_params_zero_grads(g);
            double step_loss = 0, step_parts[LMP_FIT_MAX_PARTS] = {0};
            int stop = 0; /* several ranks: a rank was interrupted, learnt in the step's sum */
            double step_padded = 0, step_real = 0; /* positions computed, real tokens */
            seen = s0 + (int)lo;
            for (int m0 = (int)lo; m0 < hi && rc == 0; m0 += micro) {
                int nm = hi - m0 < micro ? (int)hi - m0 : micro;
                const int *idx = order + s0 + m0;
                lmp_batch_fill(&b, d, train, idx, nm, o->fixed_T, max_T);
                step_padded += (double)b.B * b.T;
                for (int i = 0; i < nm; i++) step_real += b.len[i];
                if ((rc = c->forward(c, b.ids, b.len, b.B, b.T, logits, 1)) != 0) break;
                memset(dlogits, 0, (size_t)nm * L * sizeof *dlogits);
                double parts[LMP_FIT_MAX_PARTS] = {0};
                float l = (float)loss->fn(loss->ctx, logits, b.labels, idx, nm, L, dlogits, parts);
                /* the step's loss is the mean over its nb examples */
                float scale = (float)nm / (float)nb;
                for (int i = 0; i < nm * L; i++) dlogits[i] *= scale;
                step_loss += l * scale;
                for (int k = 0; k < np; k++) step_parts[k] += parts[k] * scale;
                for (int i = 0; i < nm; i++) {
                    pred[seen + i] = lmp_argmax(logits + (size_t)i * L, L);
                    gold[seen + i] = b.labels[i];
                }
                seen += nm;
                if ((rc = c->backward(c, dlogits)) != 0) break;
            }
            if (rc != 0) break;
            seen = s0 + nb;
            /* sum over the ranks (with the loss parts), clip, schedule, non-finite check, update */
            if (ranks > 1) {
                float *x = lmp_optim_extra(g);
                for (int k = 0; k < np; k++) x[k] = (float)step_parts[k];
                x[np] = (float)step_padded, x[np + 1] = (float)step_real; /* exact below 2^24 */
            }
            lmp_optim_info oi;
            rc = lmp_optim_step(g, &o->optim, step, total_steps, &step_loss, np + 2, &oi);
            if (ranks > 1) {
                for (int k = 0; k < np; k++) step_parts[k] = lmp_optim_extra(g)[k];
                step_padded = lmp_optim_extra(g)[np], step_real = lmp_optim_extra(g)[np + 1];
                stop = oi.stop; /* every rank stops after this same step */
                if (stop) lmp_set_interrupted();
            }
            padded += step_padded, real += step_real;
            float norm = oi.grad_norm, lr_t = oi.lr;
            if (oi.nonfinite) {
                lmp_log_metric(st, "nonfinite", step, 1);
                if (rc != 0) {
                    rc = lmp_error("step %d (epoch %d): %s", step, epoch + 1, lmp_errmsg());
                    break;
                }
                lmp_warn(st, "step %d: non-finite loss or gradient, step skipped", step);
                continue;
            }
            loss_sum += step_loss * nb;
            for (int k = 0; k < np; k++) part_sum[k] += step_parts[k] * nb;
            if (step % o->log_every == 0) {
                lmp_log_metric(st, "loss", step, step_loss);
                for (int k = 0; k < np; k++) lmp_log_metric(st, loss->part_names[k], step, step_parts[k]);
                lmp_log_metric(st, "lr", step, lr_t);
                lmp_log_metric(st, "grad_norm", step, norm);
            }
            lmp_progress(st, "steps", step + 1, total_steps);
            /* with several ranks only the summed flag counts: a signal that
             * reached one rank after the sum must wait for the next step */
            if (ranks > 1 ? stop : lmp_interrupted()) rc = lmp_error("interrupted at step %d", step);
        }
        if (rc != 0) break;
        /* the epoch's training time (evaluation excluded), and with several
         * ranks the part of it spent summing gradients */
        lmp_log_metric(st, "train_seconds", epoch + 1, lmp_now() - t_epoch);
        lmp_log_metric(st, "padding_waste", epoch + 1, real > 0 ? (padded - real) / real : 0);
        if (ranks > 1) lmp_log_metric(st, "allreduce_seconds", epoch + 1, lmp_dist_reduce_seconds() - t_reduce);
        if (ranks > 1) {
            lmp_dist_sum_ints(pred, (size_t)seen);
            lmp_dist_sum_ints(gold, (size_t)seen);
        }
        lmp_cls_metrics tm;
        lmp_cls_metrics_compute(&tm, gold, pred, seen, L);
        lmp_log_metric(st, "train_loss", epoch + 1, loss_sum / (seen ? seen : 1));
        lmp_log_metric(st, "train_acc", epoch + 1, tm.accuracy);
        lmp_log_metric(st, "train_mcc", epoch + 1, tm.mcc);
        for (int k = 0; k < np; k++) {
            char *key = lmp_strfmt("train_%s", loss->part_names[k]);
            lmp_log_metric(st, key, epoch + 1, part_sum[k] / (seen ? seen : 1));
            free(key);
        }
        if (!dev) {
            lmp_info(st, "epoch %d: train loss %.4f acc %.4f mcc %.4f", epoch + 1, loss_sum / seen, tm.accuracy, tm.mcc);
            continue;
        }
        eval_result er;
        if ((rc = evaluate_split(c, d, dev, o->eval_batch, &er)) != 0) break;
        lmp_log_metric(st, "dev_loss", epoch + 1, er.loss);
        lmp_log_metric(st, "dev_acc", epoch + 1, er.m.accuracy);
        lmp_log_metric(st, "dev_mcc", epoch + 1, er.m.mcc);
        lmp_info(st, "epoch %d: train loss %.4f acc %.4f mcc %.4f | %s loss %.4f acc %.4f mcc %.4f", epoch + 1,
                 loss_sum / seen, tm.accuracy, tm.mcc, o->eval_split, er.loss, er.m.accuracy, er.m.mcc);
        double score = strcmp(o->monitor, "dev_loss") == 0 ? -er.loss
                       : strcmp(o->monitor, "dev_acc") == 0 ? er.m.accuracy
                                                            : er.m.mcc;
        if (score > best_score) {
            best_score = score, best_epoch = epoch + 1, since_best = 0;
            if (best) snapshot(g, best, 0);
        } else if (o->early_stopping > 0 && ++since_best >= o->early_stopping) {
            lmp_info(st, "early stopping after epoch %d: no better %s for %d epochs", epoch + 1, o->monitor,
                     o->early_stopping);
            break;
        }
    }
    if (rc == 0 && best && best_epoch > 0) {
        snapshot(g, best, 1);
        lmp_info(st, "restored the weights of epoch %d (best %s)", best_epoch, o->monitor);
    }
    if (rc == 0 && best_epoch > 0) lmp_log_metric(st, "best_epoch", -1, best_epoch);
    lmp_batch_free(&b);
    free(order), free(logits), free(dlogits), free(pred), free(gold), free(best);
    return rc == 0 ? 0 : -1;
}
