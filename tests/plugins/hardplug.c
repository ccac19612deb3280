/*
 * hardplug.c — stages for the reliability tests (tests/crash.test,
 * tests/nonfinite.test):
 *
 *   rewrite  replaces one artifact file again and again, atomically, and
 *            records each version (artifact row + a `version` metric), like a
 *            trainer writing checkpoints; `pause_ms` widens the window between
 *            the file's replacement and its record, where a SIGKILL leaves the
 *            database describing the previous version.  Version K's file is
 *            "rewrite version K\n", `bytes` filler bytes, "\nend K\n" — a reader
 *            can tell a complete version from a torn one.
 *   nanclf   a trainable two-label classifier (a bias per label plus a weight
 *            on the row length) that turns its loss (logits) or its gradient
 *            non-finite at one training step, for the train stage's
 *            on_nonfinite handling.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "classifier.h"
#include "lmpipe.h"
#include "optim.h"
#include "util.h"

/* ------------------------------------------------------------ rewrite */

static const lmp_param rewrite_params[] = {
    {"versions", LMP_INT, "1000", 1, 1000000, NULL, "how many versions to write"},
    {"bytes", LMP_INT, "65536", 0, 1 << 26, NULL, "filler bytes per version"},
    {"pause_ms", LMP_FLOAT, "0", 0, 10000, NULL, "sleep between replacing the file and recording it"},
    LMP_PARAM_END};

static int rewrite_run(lmp_stage *st)
{
    int64_t versions = lmp_param_int(st, "versions"), bytes = lmp_param_int(st, "bytes");
    double pause = lmp_param_float(st, "pause_ms");
    char *path = lmp_strfmt("%s/state.txt", lmp_workdir(st));
    int rc = 0;
    for (int64_t k = 0; k < versions && rc == 0; k++) {
        lmp_sbuf b = {0};
        lmp_sbuf_printf(&b, "rewrite version %lld\n", (long long)k);
        char *fill = mallocCheck((size_t)bytes + 1);
        memset(fill, 'a' + (int)(k % 26), (size_t)bytes);
        lmp_sbuf_putn(&b, fill, (size_t)bytes);
        free(fill);
        lmp_sbuf_printf(&b, "\nend %lld\n", (long long)k);
        rc = lmp_write_file_atomic(path, b.s, b.len);
        lmp_sbuf_free(&b);
        if (rc == 0 && pause > 0) usleep((useconds_t)(pause * 1000));
        if (rc == 0) rc = lmp_log_artifact(st, "state.txt", path);
        if (rc == 0) rc = lmp_log_metric(st, "version", k, (double)k);
        if (rc == 0 && lmp_interrupted()) rc = lmp_error("interrupted after version %lld", (long long)k);
    }
    free(path);
    return rc;
}

/* ------------------------------------------------------------ nanclf */

typedef struct {
    float w[3];            /* bias of label 0, bias of label 1, weight on the length */
    lmp_params_group g;
    int have_group;
    int step, at, in_grad; /* training forwards so far; the bad one; where */
    float bad;             /* NAN or INFINITY */
    int B;
    float len[65536];      /* row lengths of the last training forward */
} nanclf;

static int nan_forward(lmp_classifier *c, const int *ids, const int *len, int B, int T, float *logits, int train)
{
    nanclf *f = c->impl;
    if (B > 65536) return lmp_error("nanclf: batch too large");
    for (int b = 0; b < B; b++) {
        logits[2 * b] = f->w[0];
        logits[2 * b + 1] = f->w[1] + f->w[2] * (float)len[b];
    }
    if (!train) return 0;
    f->B = B;
    for (int b = 0; b < B; b++) f->len[b] = (float)len[b];
    if (f->step++ == f->at && !f->in_grad) logits[0] = f->bad;
    return 0;
}

static int nan_backward(lmp_classifier *c, const float *dlogits)
{
    nanclf *f = c->impl;
    float *g = f->g.t[0].grad;
    for (int b = 0; b < f->B; b++) {
        g[0] += dlogits[2 * b];
        g[1] += dlogits[2 * b + 1];
        g[2] += dlogits[2 * b + 1] * f->len[b];
    }
    if (f->step - 1 == f->at && f->in_grad) g[2] = f->bad;
    return 0;
}

static lmp_params_group *nan_params(lmp_classifier *c)
{
    nanclf *f = c->impl;
    if (!f->have_group) {
        lmp_params_init(&f->g);
        lmp_params_add(&f->g, "w", f->w, 3, LMP_PARAM_TRAIN);
        lmp_params_alloc_grads(&f->g);
        f->have_group = 1;
    }
    return &f->g;
}

static void nan_destroy(lmp_classifier *c)
{
    nanclf *f = c->impl;
    if (f->have_group) lmp_params_free(&f->g);
    free(f);
    free(c);
}

static const lmp_param nan_params_decl[] = {
    {"at_step", LMP_INT, "2", 0, 1000000, NULL, "the training step whose loss or gradient goes bad"},
    {"value", LMP_ENUM, "nan", LMP_UNBOUNDED, "nan|inf", "what it becomes"},
    {"where", LMP_ENUM, "loss", LMP_UNBOUNDED, "loss|grad", "a logit (so the loss) or a gradient"},
    LMP_PARAM_END};
static const lmp_port nan_out[] = {{"classifier", "classifier", 0, NULL}, LMP_PORT_END};

static int nanclf_run(lmp_stage *st)
{
    nanclf *f = callocCheck(1, sizeof *f);
    f->w[2] = -0.1f;
    f->at = (int)lmp_param_int(st, "at_step");
    f->bad = strcmp(lmp_param_str(st, "value"), "nan") == 0 ? NAN : INFINITY;
    f->in_grad = strcmp(lmp_param_str(st, "where"), "grad") == 0;
    lmp_classifier *c = callocCheck(1, sizeof *c);
    c->kind = "nanclf";
    c->num_labels = 2;
    c->impl = f;
    c->forward = nan_forward;
    c->backward = nan_backward;
    c->params = nan_params;
    c->destroy = nan_destroy;
    return lmp_output(st, "classifier", c);
}

static const lmp_stage_def stages[] = {
    {.name = "rewrite", .description = "rewrites an artifact file atomically, version after version (tests)",
     .params = rewrite_params, .run = rewrite_run},
    {.name = "nanclf", .description = "a classifier whose loss or gradient goes non-finite at one step (tests)",
     .params = nan_params_decl, .produces = nan_out, .run = nanclf_run},
    {0},
};

LMP_PLUGIN_DEFINE("hardplug", "1.0", "reliability test stages", stages);
