/*
 * pipeline.h — pipeline files: parsing, command-line overrides, and the
 * check that binds every stage to its plugin, every parameter to its
 * declaration and every consumed artifact to an earlier producer — all
 * before the first stage runs.
 *
 * The format (README "Pipeline files" has the full description):
 *
 *     # comment
 *     set EPOCHS=5                        # a variable, used as ${EPOCHS}
 *     include common.pipe                 # paths relative to this file
 *     data  cola   dir=${LMPIPE_DATA_DIR:-/usr/share/lmpipe}/cola
 *     fit   train  epochs=${EPOCHS} lr=1e-3 \
 *                  @model=clf              # wire port 'model' to stage clf
 *
 * Each stage line is NAME STAGE-TYPE followed by key=value parameters and
 * @port=stage[.port] wirings.  Unwired inputs take the latest earlier output
 * of the right artifact type.  ${VAR} looks in -D definitions, then `set`
 * lines above, then the environment; ${VAR:-default} falls back to default.
 */
#ifndef LMP_PIPELINE_H
#define LMP_PIPELINE_H

#include "param.h"
#include "registry.h"

typedef struct {
    char *key, *value;
    const char *file; /* where it was written ("-p" for overrides) */
    int line;
} lmp_setting;

typedef struct {
    int stage; /* index of the producing stage */
    int port;  /* index into its def->produces */
    int automatic; /* wired by type to the latest producer, not by @port=stage */
} lmp_binding;

typedef struct {
    char *name, *type;
    const char *file;
    int line;
    lmp_setting *params;
    int nparams;
    lmp_setting *wires;
    int nwires;
    /* filled by lmp_pipeline_check: */
    const lmp_stage_entry *entry;
    lmp_param_value *values; /* one per declared parameter, in declaration order */
    int nvalues;
    lmp_binding *inputs;     /* one per consumed port; stage = -1 when unwired */
} lmp_pstage;

typedef struct {
    char *path;   /* as given */
    char *text;   /* the text of the file and its includes, as read */
    lmp_pstage *stages;
    int nstages;
    char **files; /* every file read (owned strings that settings point into) */
    int nfiles;
} lmp_pipeline;

typedef struct {
    char **names, **values;
    int n;
} lmp_vars;

void lmp_vars_set(lmp_vars *v, const char *name, const char *value);
const char *lmp_vars_get(const lmp_vars *v, const char *name);
void lmp_vars_free(lmp_vars *v);

int lmp_pipeline_parse_file(const char *path, const lmp_vars *defines, lmp_pipeline **out);
int lmp_pipeline_parse_string(const char *name, const char *text, const lmp_vars *defines,
                              lmp_pipeline **out);
/* Apply `-p stage.key=value` (checked again by lmp_pipeline_check). */
int lmp_pipeline_override(lmp_pipeline *p, const char *spec);
/* Bind to plugins, validate parameters, type-check the artifact flow. */
int lmp_pipeline_check(lmp_pipeline *p);
void lmp_pipeline_free(lmp_pipeline *p);

#endif
