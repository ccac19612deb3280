/*
 * run.h — executing a checked pipeline: one row in `runs`, one per stage in
 * `stages`, every resolved parameter in `params`; stage outputs handed from
 * producer to consumer; cacheable stages reused; SIGINT/SIGTERM end the run
 * as 'interrupted', errors as 'failed'.
 */
#ifndef LMP_RUN_H
#define LMP_RUN_H

#include "pipeline.h"
#include "store.h"

typedef struct {
    const char *experiment; /* default "default" */
    uint64_t seed;
    int no_cache;           /* recompute cacheable stages */
    /* When set: at the end of a finished run, hand the value of this stage's
     * output port to *taken instead of freeing it (lmp_subrun). */
    const char *take_stage, *take_port;
    void **taken;
    char *taken_digest;     /* [65], may be NULL */
    /* The store's path, for MPI ranks other than 0, which run with a NULL
     * store (dist.h): where the data home is, and where to record a failure. */
    const char *store_path;
    int64_t sweep_id;       /* > 0: the run is part of this sweep */
} lmp_run_opts;

/* Returns 0 when the run finished, 1 when it failed or was interrupted (the
 * message is in lmp_errmsg()), -1 when it could not be recorded at all. */
int lmp_run_pipeline(lmp_pipeline *p, lmp_store *store, const lmp_run_opts *opts, int64_t *run_id);

/* A stage's own check (lmp_stage_def.check), for lmp_pipeline_check: 0 when
 * it has none or it passes. */
int lmp_stage_check(lmp_pstage *ps);

/* Where artifacts and the stage cache live: $LMPIPE_HOME, else
 * "<directory of the database>/lmpipe-data". */
char *lmp_data_home(const char *db_path);

#endif
