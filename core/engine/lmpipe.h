/*
 * lmpipe.h — the interface between the lmpipe core and its stage plugins.
 *
 * A plugin is a shared object (libtool module) that exports one symbol,
 * `lmpipe_plugin`, of type `lmp_plugin`.  The descriptor names the plugin and
 * lists the stages it provides.  A stage declares typed parameters, the typed
 * artifacts it consumes and produces, and a run function.  The core parses a
 * pipeline file, type-checks the wiring of artifacts between stages, validates
 * every parameter, and only then runs the stages in order, recording params,
 * metrics and artifacts in the experiment store (SQLite).
 *
 * Minimal plugin:
 *
 *     #include <lmpipe.h>
 *     static const lmp_param hello_params[] = {
 *         { "times", LMP_INT, "1", 1, 100, NULL, "how often to greet" },
 *         LMP_PARAM_END
 *     };
 *     static int hello_run(lmp_stage *st) {
 *         for (long i = 0; i < lmp_param_int(st, "times"); i++)
 *             lmp_log_metric(st, "greetings", i, i + 1);
 *         return 0;
 *     }
 *     static const lmp_stage_def hello_stages[] = {
 *         { .name = "hello", .description = "greets", .params = hello_params,
 *           .run = hello_run },
 *         { 0 }
 *     };
 *     LMP_PLUGIN_DEFINE("hello", "1.0", "an example plugin", hello_stages);
 *
 * Build it against an installed lmpipe with
 *     cc -shared -fPIC hello.c -o hello.so $(pkg-config --cflags --libs lmpipe)
 * and run it with `lmpipe --plugin-path DIR ...`.
 *
 * Conventions: functions returning int give 0 on success and -1 on failure,
 * with a one-line message available from lmp_errmsg().
 */
#ifndef LMPIPE_H
#define LMPIPE_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a struct below changes layout or meaning. */
#define LMP_ABI_VERSION 3u /* 2: lmp_stage_def.check; 3: lmp_lm is a family table (kit/lm.h),
                                * lmp_classifier.token_embedding, lmp_adapter_ops.save/load */

/* ---------------------------------------------------------------- errors */

/* lmp_error, lmp_errmsg and lmp_interrupted: errors.h */

/* ------------------------------------------------------------ parameters */

typedef enum {
    LMP_INT,    /* 64-bit signed integer, range [min, max] */
    LMP_FLOAT,  /* double, range [min, max] */
    LMP_BOOL,   /* true/false, yes/no, on/off, 1/0 */
    LMP_STRING, /* any text */
    LMP_ENUM,   /* one of `choices`, a '|'-separated list */
    LMP_PATH,   /* a filesystem path (existence is the stage's business) */
    LMP_FILES   /* input files, comma- or colon-separated; '' stands for the
                 * files `choices` names (below).  The stage key hashes every
                 * file's content, so an edited file is never served from the
                 * stage cache; read the list with lmp_param_files. */
} lmp_ptype;

typedef struct {
    const char *key;     /* NULL terminates a list */
    lmp_ptype type;
    const char *def;     /* default, as it would be written in a pipeline file */
    double min, max;     /* inclusive range for LMP_INT / LMP_FLOAT (min > max: unbounded) */
    const char *choices; /* LMP_ENUM: "a|b|c"; LMP_FILES: what '' stands for,
                          * files in $LMPIPE_DATA_DIR ("corpus/a.txt,corpus/b.txt") */
    const char *doc;     /* one line */
} lmp_param;

#define LMP_PARAM_END { NULL, LMP_INT, NULL, 0, 0, NULL, NULL }

/* An old spelling kept for one release: a parameter whose doc starts with
 * LMP_DEPRECATED, the rest naming what replaces it (LMP_DEPRECATED "use
 * on_nonfinite=skip|stop").  Setting it logs the one-line warning
 * "parameter 'KEY' is deprecated (removed in the next release): use ...";
 * left unset it is no part of the stage key.  The stage maps its value. */
#define LMP_DEPRECATED "deprecated (removed in the next release): "
int lmp_param_deprecated(const lmp_param *p);
#define LMP_UNBOUNDED 1, -1

/* ------------------------------------------------------------- artifacts */

/*
 * An artifact type: the name used for wiring and type checking, and how to
 * free, save and load a value of it.  save/load are optional; a stage can be
 * cached only if every type it produces has both.
 */
typedef struct lmp_type {
    const char *name;
    const char *doc;
    void (*free)(void *value);
    int (*save)(const void *value, const char *path);
    int (*load)(const char *path, void **value);
} lmp_type;

typedef struct {
    const char *name; /* port name, unique within the stage; NULL terminates */
    const char *type; /* artifact type name */
    int optional;     /* a consumed port that may stay unwired */
    const char *doc;
} lmp_port;

#define LMP_PORT_END { NULL, NULL, 0, NULL }

/* Register an artifact type (core types are registered at start-up). */
int lmp_type_register(const lmp_type *type);
const lmp_type *lmp_type_find(const char *name);

/* ---------------------------------------------------------------- stages */

typedef struct lmp_stage lmp_stage; /* a running stage, opaque */

enum {
    LMP_STAGE_CACHEABLE = 1u << 0, /* outputs depend only on params + inputs: reuse them */
    LMP_STAGE_SEEDED = 1u << 1     /* outputs also depend on the run's seed */
};

typedef struct {
    const char *name; /* NULL terminates a list */
    const char *description;
    const lmp_param *params;
    const lmp_port *consumes;
    const lmp_port *produces;
    unsigned flags;
    int (*run)(lmp_stage *st);
    /* Optional, called by the pipeline check once the parameters are
     * resolved, before anything runs: refuse a combination of settings that
     * cannot work (a model that cannot fit in memory, say) with 0 / -1 and a
     * message.  It may read parameters (lmp_param_*) and nothing else. */
    int (*check)(lmp_stage *st);
} lmp_stage_def;

typedef struct {
    uint32_t abi_version; /* LMP_ABI_VERSION the plugin was built against */
    const char *name;
    const char *version;
    const char *description;
    const lmp_stage_def *stages;
    const lmp_type *const *types; /* NULL-terminated extra artifact types, or NULL */
} lmp_plugin;

#define LMP_PLUGIN_SYMBOL "lmpipe_plugin"
#define LMP_PLUGIN_DEFINE(name, version, description, stages)                  \
    __attribute__((visibility("default"))) const lmp_plugin lmpipe_plugin = { \
        LMP_ABI_VERSION, name, version, description, stages, NULL }

/* ------------------------------------------------ what a running stage can do */

/* Resolved parameter values (defaults included).  Asking for an undeclared
 * key or the wrong type is a programming error and aborts. */
int64_t lmp_param_int(lmp_stage *st, const char *key);
double lmp_param_float(lmp_stage *st, const char *key);
int lmp_param_bool(lmp_stage *st, const char *key);
const char *lmp_param_str(lmp_stage *st, const char *key); /* STRING, ENUM, PATH */
/* Whether the pipeline or command line set `key` explicitly. */
int lmp_param_is_set(lmp_stage *st, const char *key);
/* An LMP_FILES parameter's files, in order, as the stage key hashed them
 * ('' resolved in $LMPIPE_DATA_DIR); an unreadable one is an error naming
 * it.  NULL-terminated; free with lmp_files_free. */
int lmp_param_files(lmp_stage *st, const char *key, char ***files, int *n);
void lmp_files_free(char **files);

/* The value wired to a consumed port, or NULL for an unwired optional port. */
void *lmp_input(lmp_stage *st, const char *port);
/* Take ownership of an input value (a trainer that updates a model in place
 * and hands it on as its own output).  Later consumers of the same value get
 * an error naming this stage. */
void *lmp_input_take(lmp_stage *st, const char *port);
/* Hand a produced value to the core, which owns it from now on. */
int lmp_output(lmp_stage *st, const char *port, void *value);

/* Each artifact value has a digest (hex SHA-256) that identifies it for the
 * stage cache: by default derived from the producing stage's plugin, version,
 * parameters and input digests; a stage that knows its output's content (a
 * data reader hashing its files) can set it instead, after lmp_output(). */
int lmp_output_digest(lmp_stage *st, const char *port, const char *digest);
const char *lmp_input_digest(lmp_stage *st, const char *port); /* NULL if unwired */

/* Run another pipeline file as a run of its own in the same store (the
 * default base model's pretraining, say, which the stage cache makes cheap
 * after the first time) and take the value of `stage`'s output `port`.
 * Relative paths are looked up beside the current pipeline file, then in
 * lmpipe's pipelines folder. */
int lmp_subrun(lmp_stage *st, const char *pipeline, const char *stage, const char *port, void **value);

/* The stage's name in the pipeline, its run's id, and the run's seed. */
const char *lmp_stage_name(lmp_stage *st);
int64_t lmp_run_id(lmp_stage *st);
uint64_t lmp_seed(lmp_stage *st);
/* A directory private to this stage of this run, for artifact files. */
const char *lmp_workdir(lmp_stage *st);
/* A directory shared by all runs, for caches a stage manages itself. */
const char *lmp_cachedir(lmp_stage *st);

/* Record a metric value (step is the epoch, step or -1 for a final value). */
int lmp_log_metric(lmp_stage *st, const char *key, int64_t step, double value);
/* Record a file as an artifact of this stage (its sha256 and size are stored). */
int lmp_log_artifact(lmp_stage *st, const char *name, const char *path);
/* Record an extra key/value in the params table (e.g. a derived count). */
int lmp_log_param(lmp_stage *st, const char *key, const char *value);

/* Messages on stderr, prefixed with the stage name. */
void lmp_info(lmp_stage *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lmp_warn(lmp_stage *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Progress of a long loop: a bar with rate and ETA on a terminal, periodic lines otherwise. */
void lmp_progress(lmp_stage *st, const char *what, int64_t done, int64_t total);

#ifdef __cplusplus
}
#endif
#endif /* LMPIPE_H */
