/*
 * testplug.c — stages for the engine's tests: a producer and consumer of a
 * private artifact type (with save/load, so it can be cached), a stage that
 * fails, one that logs many metrics, one that runs until interrupted, and one
 * that logs what a training stage would (curves, confusion counts, samples).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist.h"
#include "lmpipe.h"
#include "util.h"

/* "number": a heap-allocated double */
static void num_free(void *v) { free(v); }
static int num_save(const void *v, const char *path)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%.17g\n", *(const double *)v);
    return lmp_write_file_atomic(path, buf, (size_t)n);
}
static int num_load(const char *path, void **v)
{
    char *data;
    size_t n;
    if (lmp_read_file(path, 64, &data, &n) != 0) return -1;
    double *d = mallocCheck(sizeof *d);
    *d = strtod(data, NULL);
    free(data);
    *v = d;
    return 0;
}
static const lmp_type number_type = {"number", "a double (tests)", num_free, num_save, num_load};
static const lmp_type *const types[] = {&number_type, NULL};

static const lmp_param source_params[] = {
    {"value", LMP_FLOAT, "1.5", -1e6, 1e6, NULL, "the number"},
    {"count_file", LMP_STRING, "-", LMP_UNBOUNDED, NULL, "append a line here each time the stage really runs (a log, not an input: not part of the cache key)"},
    {"mode", LMP_ENUM, "plain", LMP_UNBOUNDED, "plain|double|negate", "how to transform value"},
    {"verbose", LMP_BOOL, "false", LMP_UNBOUNDED, NULL, "say more"},
    {"label", LMP_STRING, "x", LMP_UNBOUNDED, NULL, "a label"},
    {"epochs", LMP_INT, "3", 1, 100, NULL, "how many"},
    LMP_PARAM_END,
};
static const lmp_port number_out[] = {{"out", "number", 0, NULL}, LMP_PORT_END};
static const lmp_port number_in[] = {{"in", "number", 0, NULL}, LMP_PORT_END};
static const lmp_port number_in_opt[] = {{"in", "number", 1, NULL}, LMP_PORT_END};

static int source_run(lmp_stage *st)
{
    const char *cf = lmp_param_str(st, "count_file");
    if (strcmp(cf, "-") != 0) {
        FILE *f = fopen(cf, "a");
        if (f) fputs("ran\n", f), fclose(f);
    }
    double *v = mallocCheck(sizeof *v);
    *v = lmp_param_float(st, "value");
    const char *mode = lmp_param_str(st, "mode");
    if (strcmp(mode, "double") == 0) *v *= 2;
    if (strcmp(mode, "negate") == 0) *v = -*v;
    for (int64_t e = 0; e < lmp_param_int(st, "epochs"); e++) lmp_log_metric(st, "loss", e, 1.0 / (double)(e + 1));
    return lmp_output(st, "out", v);
}

static const lmp_param sink_params[] = {
    {"take", LMP_BOOL, "false", LMP_UNBOUNDED, NULL, "take the number over (lmp_input_take) and free it"},
    LMP_PARAM_END};
static const lmp_param no_params[] = {LMP_PARAM_END};
static int sink_run(lmp_stage *st)
{
    int take = lmp_param_bool(st, "take");
    double *v = take ? lmp_input_take(st, "in") : lmp_input(st, "in");
    lmp_log_metric(st, "seen", -1, v ? *v : -999);
    if (take) free(v);
    return 0;
}

static const lmp_param fail_params[] = {
    {"message", LMP_STRING, "boom", LMP_UNBOUNDED, NULL, "the error"},
    {"rank", LMP_INT, "-1", -1, 1 << 20, NULL, "fail on this MPI rank only (-1: on every rank)"}, LMP_PARAM_END};
static int fail_run(lmp_stage *st)
{
    lmp_log_metric(st, "before_failure", 0, 42);
    int64_t rank = lmp_param_int(st, "rank");
    if (rank >= 0 && rank != lmp_dist_rank()) return 0;
    return lmp_error("%s", lmp_param_str(st, "message"));
}

static const lmp_param spin_params[] = {
    {"seconds", LMP_FLOAT, "30", 0, 3600, NULL, "how long to run"},
    {"metrics_per_second", LMP_INT, "50", 1, 100000, NULL, "log rate"},
    LMP_PARAM_END};
static int spin_run(lmp_stage *st)
{
    double t0 = lmp_now(), dur = lmp_param_float(st, "seconds");
    int64_t rate = lmp_param_int(st, "metrics_per_second"), step = 0;
    while (lmp_now() - t0 < dur) {
        if (lmp_interrupted()) return lmp_error("interrupted at step %lld", (long long)step);
        if (lmp_log_metric(st, "step", step, (double)step) != 0) return -1;
        step++;
        usleep((useconds_t)(1000000 / rate));
    }
    return 0;
}

/* takes its input over (like a trainer updating a model in place) */
static int bump_run(lmp_stage *st)
{
    double *v = lmp_input_take(st, "in");
    *v += 1;
    return lmp_output(st, "out", v);
}

/* gets its number from another pipeline run as a sub-run */
static const lmp_param fetch_params[] = {
    {"pipeline", LMP_PATH, NULL, LMP_UNBOUNDED, NULL, "pipeline file with a stage 'a' producing a number"},
    LMP_PARAM_END};
static int fetch_run(lmp_stage *st)
{
    void *v;
    if (lmp_subrun(st, lmp_param_str(st, "pipeline"), "a", "out", &v) != 0) return -1;
    return lmp_output(st, "out", v);
}

static const lmp_param noout_params[] = {LMP_PARAM_END};
static int noout_run(lmp_stage *st) { return 0; }

/* A training stage's worth of metrics, for the plot and report tests:
 * per-epoch train/dev loss, accuracy and MCC, final dev metrics with
 * confusion counts and label names, and a small text sample artifact. */
static const lmp_param trainlog_params[] = {
    {"epochs", LMP_INT, "3", 1, 100, NULL, "how many"},
    {"quality", LMP_FLOAT, "0.8", 0, 1, NULL, "final dev accuracy"},
    {"sample", LMP_STRING, "", LMP_UNBOUNDED, NULL, "write this text as samples.txt ('': no file)"},
    LMP_PARAM_END};
static int trainlog_run(lmp_stage *st)
{
    int64_t n = lmp_param_int(st, "epochs");
    double q = lmp_param_float(st, "quality");
    for (int64_t e = 0; e < n; e++) {
        double f = (double)(e + 1) / (double)n;
        lmp_log_metric(st, "train_loss", e, 1.0 / (double)(e + 1));
        lmp_log_metric(st, "dev_loss", e, 1.2 / (double)(e + 1));
        lmp_log_metric(st, "train_acc", e, 0.5 + (q - 0.4) * f);
        lmp_log_metric(st, "dev_acc", e, 0.5 + (q - 0.5) * f);
        lmp_log_metric(st, "dev_mcc", e, (2 * q - 1) * f);
    }
    /* 100 dev examples, 60 gold acceptable */
    int tp = (int)(60 * q + 0.5), tn = (int)(40 * q + 0.5);
    lmp_log_metric(st, "dev_acc", -1, (tp + tn) / 100.0);
    lmp_log_metric(st, "dev_cm_0_0", -1, tn);
    lmp_log_metric(st, "dev_cm_0_1", -1, 40 - tn);
    lmp_log_metric(st, "dev_cm_1_0", -1, 60 - tp);
    lmp_log_metric(st, "dev_cm_1_1", -1, tp);
    lmp_log_param(st, "label_0", "un<acc>");
    lmp_log_param(st, "label_1", "acc");
    const char *sample = lmp_param_str(st, "sample");
    if (!*sample) return 0;
    char *path = lmp_strfmt("%s/samples.txt", lmp_workdir(st));
    int rc = lmp_write_file_atomic(path, sample, strlen(sample));
    if (rc == 0) rc = lmp_log_artifact(st, "samples.txt", path);
    free(path);
    return rc;
}

static const lmp_stage_def stages[] = {
    {.name = "source", .description = "produces a number", .params = source_params, .produces = number_out,
     .flags = LMP_STAGE_CACHEABLE, .run = source_run},
    {.name = "sink", .description = "consumes a number", .params = sink_params, .consumes = number_in,
     .run = sink_run},
    {.name = "maybe-sink", .description = "consumes a number if there is one", .params = sink_params,
     .consumes = number_in_opt, .run = sink_run},
    {.name = "fail", .description = "fails (on every rank, or on one: rank=N)", .params = fail_params, .run = fail_run},
    {.name = "spin", .description = "logs metrics until done or interrupted", .params = spin_params,
     .run = spin_run},
    {.name = "bump", .description = "adds one to a number it takes over", .params = no_params,
     .consumes = number_in, .produces = number_out, .run = bump_run},
    {.name = "fetch", .description = "a number from a sub-run", .params = fetch_params, .produces = number_out,
     .run = fetch_run},
    {.name = "forgetful", .description = "declares an output but never produces it", .params = noout_params,
     .produces = number_out, .run = noout_run},
    {.name = "trainlog", .description = "logs training curves and final metrics", .params = trainlog_params,
     .run = trainlog_run},
    {0},
};

__attribute__((visibility("default"))) const lmp_plugin lmpipe_plugin = {
    LMP_ABI_VERSION, "testplug", "1.0", "engine test stages", stages, types};
