/*
 * data.c — the "data" plugin: stages that read datasets from disk.
 *
 *   cola   the CoLA public release (raw TSVs) as a "dataset" with splits
 *          train (in_domain_train), dev (in_domain_dev) and ood
 *          (out_of_domain_dev), labels unacceptable (0) / acceptable (1)
 *
 * Reading is fast, so the stage is not cached; its output digest is the
 * dataset's content hash, so stages downstream are cached by content.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset.h"
#include "lmpipe.h"
#include "paths.h"
#include "util.h"

#define DATA_DIR_VAR "${LMPIPE_DATA_DIR}"

static const lmp_param cola_params[] = {
    {"dir", LMP_PATH, DATA_DIR_VAR "/cola", LMP_UNBOUNDED, NULL,
     "folder with in_domain_train.tsv, in_domain_dev.tsv, out_of_domain_dev.tsv (default: the copy "
     "shipped in the data folder, $LMPIPE_DATA_DIR or " LMP_PKGDATADIR "/data)"},
    {"max_train", LMP_INT, "0", 0, 1e9, NULL, "keep only the first N training rows (0: all), for quick runs"},
    LMP_PARAM_END,
};

static const lmp_port cola_out[] = {{"dataset", "dataset", 0, "CoLA: splits train, dev, ood"}, LMP_PORT_END};

/* The dir parameter with a leading ${LMPIPE_DATA_DIR} resolved now, at run
 * time: the default must work wherever the pipeline runs. */
static char *resolve_dir(const char *dir)
{
    size_t l = strlen(DATA_DIR_VAR);
    if (strncmp(dir, DATA_DIR_VAR, l) != 0) return strdupCheck(dir);
    return lmp_strfmt("%s%s", lmp_data_dir(), dir + l);
}

static const struct {
    const char *split, *file;
} cola_files[] = {
    {"train", "in_domain_train.tsv"},
    {"dev", "in_domain_dev.tsv"},
    {"ood", "out_of_domain_dev.tsv"},
};

static int cola_run(lmp_stage *st)
{
    char *dir = resolve_dir(lmp_param_str(st, "dir"));
    int64_t max_train = lmp_param_int(st, "max_train");
    lmp_dataset *d = lmp_dataset_new("cola", 2);
    free(d->label_names[0]);
    free(d->label_names[1]);
    d->label_names[0] = strdupCheck("unacceptable");
    d->label_names[1] = strdupCheck("acceptable");
    int rc = 0;
    for (size_t i = 0; i < sizeof cola_files / sizeof cola_files[0] && rc == 0; i++) {
        char *path = lmp_strfmt("%s/%s", dir, cola_files[i].file);
        lmp_split *s = lmp_dataset_add_split(d, cola_files[i].split);
        rc = lmp_data_verify(path);
        if (rc == 0) rc = lmp_cola_read(path, s);
        if (rc != 0 && access(path, F_OK) != 0)
            rc = lmp_error("%s (set the stage's dir= or LMPIPE_DATA_DIR)", lmp_errmsg());
        if (rc == 0 && i == 0 && max_train > 0 && max_train < s->n) {
            for (int k = (int)max_train; k < s->n; k++) free(s->text[k]), free(s->source[k]);
            s->n = (int)max_train;
        }
        free(path);
    }
    if (rc != 0) {
        lmp_dataset_free(d);
        free(dir);
        return -1;
    }
    lmp_log_param(st, "resolved_dir", dir);
    free(dir);
    for (int i = 0; i < d->nsplits; i++) {
        const lmp_split *s = &d->splits[i];
        int pos = 0;
        for (int k = 0; k < s->n; k++) pos += s->label[k] == 1;
        char *key = lmp_strfmt("%s_rows", s->name);
        lmp_log_metric(st, key, -1, s->n);
        free(key);
        /* the share of acceptable sentences is the majority-class baseline's accuracy */
        key = lmp_strfmt("%s_label1_frac", s->name);
        lmp_log_metric(st, key, -1, (double)pos / s->n);
        free(key);
        lmp_info(st, "%s: %d sentences, %.1f%% acceptable", s->name, s->n, 100.0 * pos / s->n);
    }
    lmp_dataset_update_digest(d);
    char digest[65];
    memcpy(digest, d->digest, sizeof digest);
    if (lmp_output(st, "dataset", d) != 0) return -1;
    return lmp_output_digest(st, "dataset", digest);
}

static const lmp_stage_def stages[] = {
    {.name = "cola", .description = "read CoLA (train, in-domain dev, out-of-domain dev) into a dataset",
     .params = cola_params, .produces = cola_out, .run = cola_run},
    {0},
};

LMP_PLUGIN_DEFINE("data", PACKAGE_VERSION, "dataset readers (CoLA)", stages);
