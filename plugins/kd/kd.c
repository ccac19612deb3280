/*
 * kd.c — the "kd" plugin: knowledge distillation of a teacher classifier
 * into a student classifier (any kinds: GPT-2 + LoRA into the RNN, ...).
 *
 *   kd  alpha=0.5 temperature=2 loss=kl|mse  + every parameter of `train`
 *       @student=S @teacher=T [@data=D] [@teacher_data=TD]
 *
 * The loss of a batch is
 *   alpha * CE(gold, student) + (1 - alpha) * T^2 * KL(softmax(teacher/T) || softmax(student/T))
 * (Hinton et al. 2015; core/nn/nn.h's lmp_nn_kd_loss_forward_backward takes log-
 * softmaxes of both sides), or with loss=mse the squared distance of the
 * logit vectors in place of the second term (Tang et al. 2019).  The
 * training loop is core/kit/cls_train.c's, the same as train's, with the same
 * parameters and per-epoch metrics; per step it also logs the parts
 * `ce_loss` and `kd_loss`.
 *
 * Teacher and student may read different tokenizations of the same
 * examples: `data` is tokenized for the student, `teacher_data` (default:
 * data) for the teacher.  Before anything is computed, each classifier is
 * checked against its dataset (label count, vocabulary), and the two
 * datasets' training splits must hold the same examples (texts and labels,
 * in order).
 *
 * The teacher runs once over the training split (evaluation mode) and its
 * logits are kept in the cache directory under
 *   sha256(teacher classifier's digest, teacher data's digest, split)
 * so a later distillation from the same teacher on the same data does not
 * run it again (metric teacher_cache_hit 1; teacher_cache=false neither
 * reads nor writes the cache).  The teacher's digest covers all its
 * weights: a loaded teacher's includes the base checkpoint it refers to
 * (clfio.c), one trained in the pipeline derives from the stage keys, which
 * hash its base checkpoint's files (by content up to 64 MiB, core/engine/run.c).
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "classifier.h"
#include "dataset.h"
#include "dist.h"
#include "cls_train.h"
#include "lmpipe.h"
#include "metrics.h"
#include "nn.h"
#include "util.h"

static const lmp_param kd_params[] = {
    {"alpha", LMP_FLOAT, "0.5", 0, 1, NULL, "weight of the cross-entropy with the gold labels (1 - alpha: the distillation term)"},
    {"temperature", LMP_FLOAT, "2", 0.01, 1000, NULL, "softmax temperature T of loss=kl (the term is scaled by T^2)"},
    {"loss", LMP_ENUM, "kl", LMP_UNBOUNDED, "kl|mse",
     "distillation term: T^2 KL of the softened distributions, or squared distance of the logits"},
    {"teacher_batch", LMP_INT, "32", 1, 65536, NULL, "rows per forward pass of the teacher"},
    {"teacher_cache", LMP_BOOL, "true", LMP_UNBOUNDED, NULL, "reuse / keep the teacher's logits in the cache directory"},
    LMP_FIT_PARAMS,
    LMP_PARAM_END,
};

static const lmp_port kd_in[] = {
    {"student", "classifier", 0, "the classifier to train (taken over and handed on)"},
    {"teacher", "classifier", 0, "the classifier whose outputs it learns from (only read)"},
    {"data", "dataset", 0, "the examples, tokenized for the student, with a 'train' split"},
    {"teacher_data", "dataset", 1, "the same examples tokenized for the teacher (default: data)"},
    LMP_PORT_END,
};
static const lmp_port kd_out[] = {{"student", "classifier", 0, "the distilled student"}, LMP_PORT_END};

/* The two datasets hold the same training examples, in the same order. */
static int check_aligned(const lmp_dataset *d, lmp_dataset *td)
{
    if (td->num_labels != d->num_labels)
        return lmp_error("teacher_data '%s' has %d labels but data '%s' has %d", td->name, td->num_labels, d->name,
                         d->num_labels);
    const lmp_split *s = lmp_dataset_split((lmp_dataset *)d, "train"), *ts = lmp_dataset_split(td, "train");
    if (!s || !ts) return 0; /* lmp_fit names the missing split */
    if (ts->n != s->n)
        return lmp_error("the train split has %d examples in teacher_data but %d in data: they must be the same examples",
                         ts->n, s->n);
    for (int i = 0; i < s->n; i++) {
        if (strcmp(s->text[i], ts->text[i]) != 0)
            return lmp_error("train example %d differs between data and teacher_data: the teacher must see the "
                             "student's examples (tokenized its own way)", i + 1);
        if (s->label[i] != ts->label[i])
            return lmp_error("train example %d has label %d in data but %d in teacher_data", i + 1, s->label[i],
                             ts->label[i]);
    }
    return 0;
}

#define CACHE_MAGIC "LMPKDT1"

/* <cachedir>/kd-teacher/<sha256(teacher, teacher data, split)>.logits */
static char *cache_path(lmp_stage *st, const lmp_dataset *td, const char *split)
{
    const char *tdig = lmp_input_digest(st, "teacher");
    lmp_sha256 h;
    lmp_sha256_init(&h);
    char *head = lmp_strfmt("lmpipe-kd-teacher-logits-v1\n%s\n%s\n%s\n", tdig ? tdig : "-", td->digest, split);
    lmp_sha256_update(&h, head, strlen(head));
    free(head);
    char key[65];
    lmp_sha256_final(&h, key);
    char *dir = lmp_strfmt("%s/kd-teacher", lmp_cachedir(st));
    lmp_mkdirs(dir);
    char *path = lmp_strfmt("%s/%s.logits", dir, key);
    free(dir);
    return path;
}

/* 1: logits[n, L] read from path; 0: no usable entry. */
static int cache_read(lmp_stage *st, const char *path, int n, int L, float *logits)
{
    char *data;
    size_t len, want = 16 + (size_t)n * L * sizeof(float);
    if (access(path, F_OK) != 0 || lmp_read_file(path, want + 1, &data, &len) != 0) return 0;
    int32_t hn, hl;
    int ok = len == want && memcmp(data, CACHE_MAGIC, 8) == 0;
    if (ok) {
        memcpy(&hn, data + 8, 4), memcpy(&hl, data + 12, 4);
        ok = hn == n && hl == L;
    }
    if (ok) memcpy(logits, data + 16, want - 16);
    else lmp_warn(st, "%s: not a teacher-logits file for %d x %d: recomputing", path, n, L);
    free(data);
    return ok;
}

static int cache_write(const char *path, int n, int L, const float *logits)
{
    size_t len = 16 + (size_t)n * L * sizeof(float);
    char *buf = mallocCheck(len);
    int32_t hn = n, hl = L;
    memcpy(buf, CACHE_MAGIC, 8), memcpy(buf + 8, &hn, 4), memcpy(buf + 12, &hl, 4);
    memcpy(buf + 16, logits, len - 16);
    int rc = lmp_write_file_atomic(path, buf, len);
    free(buf);
    return rc;
}

/* The teacher's logits on its training split: from the cache or computed. */
static int teacher_logits(lmp_stage *st, lmp_classifier *teacher, lmp_dataset *td, float *logits)
{
    lmp_split *ts = lmp_dataset_split(td, "train");
    int n = ts->n, L = teacher->num_labels, use_cache = lmp_param_bool(st, "teacher_cache");
    char *path = use_cache ? cache_path(st, td, "train") : NULL;
    int hit = use_cache && cache_read(st, path, n, L, logits), rc = 0;
    if (lmp_dist_size() > 1) { /* under mpirun: reuse the file only if every rank could read it */
        int all = hit;
        lmp_dist_sum_ints(&all, 1);
        hit = all == lmp_dist_size();
    }
    if (hit) {
        lmp_info(st, "teacher logits of %d train examples read from the cache (%s)", n, path);
    } else {
        double t0 = lmp_now();
        if (lmp_classifier_predict(teacher, td, ts, (int)lmp_param_int(st, "teacher_batch"), logits) != 0) {
            free(path);
            return lmp_error("teacher: %s", lmp_errmsg());
        }
        for (size_t i = 0; i < (size_t)n * L; i++)
            if (!isfinite(logits[i])) {
                free(path);
                return lmp_error("the teacher gave a non-finite logit (%g) for train example %zu", logits[i],
                                 i / (size_t)L + 1);
            }
        lmp_info(st, "teacher logits of %d train examples computed in %.1f s", n, lmp_now() - t0);
        if (use_cache && lmp_dist_writer() && cache_write(path, n, L, logits) != 0)
            lmp_warn(st, "could not cache the teacher's logits: %s", lmp_errmsg());
    }
    lmp_log_metric(st, "teacher_cache_hit", -1, hit);
    /* how good the targets are */
    int *pred = mallocCheck((size_t)n * sizeof *pred);
    for (int i = 0; i < n; i++) pred[i] = lmp_argmax(logits + (size_t)i * L, L);
    lmp_cls_metrics m;
    if (lmp_cls_metrics_compute(&m, ts->label, pred, n, L) == 0) {
        lmp_log_metric(st, "teacher_train_acc", -1, m.accuracy);
        lmp_log_metric(st, "teacher_train_mcc", -1, m.mcc);
        lmp_info(st, "teacher on train: accuracy %.4f, MCC %.4f", m.accuracy, m.mcc);
    }
    free(pred);
    free(path);
    return rc;
}

typedef struct {
    const float *teacher; /* [n_train, L] */
    float *t;             /* [batch, L] the micro-batch's rows */
    float alpha, temperature;
    int kind;
} kd_ctx;

static double kd_loss(void *vctx, const float *logits, const int *labels, const int *idx, int n, int L, float *dlogits,
                      double *parts)
{
    kd_ctx *k = vctx;
    for (int i = 0; i < n; i++) memcpy(k->t + (size_t)i * L, k->teacher + (size_t)idx[i] * L, (size_t)L * sizeof(float));
    float ce = lmp_nn_softmax_crossentropy_forward_backward(NULL, dlogits, logits, labels, n, L);
    if (isnan(ce)) return NAN;
    for (int i = 0; i < n * L; i++) dlogits[i] *= k->alpha;
    float kd = lmp_nn_kd_loss_forward_backward(NULL, dlogits, logits, k->t, n, L, k->temperature, k->kind, 1 - k->alpha);
    parts[0] = ce, parts[1] = kd;
    return (double)k->alpha * ce + (1.0 - k->alpha) * kd;
}

static int kd_run(lmp_stage *st)
{
    lmp_classifier *student = lmp_input(st, "student"), *teacher = lmp_input(st, "teacher");
    lmp_dataset *d = lmp_input(st, "data"), *td = lmp_input(st, "teacher_data");
    if (!td) td = d;
    if (student == teacher)
        return lmp_error("student and teacher are the same classifier: wire them explicitly "
                         "(@student=STAGE @teacher=STAGE)");
    if (lmp_classifier_check_data(student, d) != 0) return lmp_error("student: %s", lmp_errmsg());
    if (lmp_classifier_check_data(teacher, td) != 0) return lmp_error("teacher: %s", lmp_errmsg());
    if (td != d && check_aligned(d, td) != 0) return -1;
    lmp_fit_opts o;
    if (lmp_fit_opts_read(st, &o) != 0) return -1;
    const lmp_split *train = lmp_dataset_split(d, "train");
    if (!train || train->n == 0) return lmp_error("dataset '%s' has no 'train' split", d->name);
    int kind = strcmp(lmp_param_str(st, "loss"), "mse") == 0 ? LMP_KD_MSE : LMP_KD_KL;
    if (kind == LMP_KD_MSE && lmp_param_is_set(st, "temperature"))
        lmp_warn(st, "loss=mse compares logits: the temperature is not used");
    int L = student->num_labels;
    float *tl = mallocCheck((size_t)train->n * L * sizeof *tl);
    kd_ctx k = {tl, mallocCheck((size_t)o.batch * L * sizeof(float)), (float)lmp_param_float(st, "alpha"),
                (float)lmp_param_float(st, "temperature"), kind};
    static const char *const parts[] = {"ce_loss", "kd_loss"};
    lmp_fit_loss loss = {kd_loss, &k, 2, parts};
    int rc = teacher_logits(st, teacher, td, tl);
    if (rc == 0) {
        lmp_info(st, "distilling: %.2f x cross-entropy + %.2f x %s", k.alpha, 1 - k.alpha,
                 kind == LMP_KD_MSE ? "MSE of the logits" : "T^2 KL of the softened distributions");
        rc = lmp_fit(st, &o, student, d, &loss);
    }
    free(tl), free(k.t);
    if (rc != 0) return -1;
    lmp_input_take(st, "student");
    return lmp_output(st, "student", student);
}

static const lmp_stage_def stages[] = {
    {.name = "kd", .description = "knowledge distillation: train a student classifier on a teacher's soft targets",
     .params = kd_params, .consumes = kd_in, .produces = kd_out, .flags = LMP_STAGE_SEEDED, .run = kd_run},
    {0},
};

LMP_PLUGIN_DEFINE("kd", PACKAGE_VERSION, "knowledge distillation (Hinton KL with temperature, or logit MSE)", stages);
