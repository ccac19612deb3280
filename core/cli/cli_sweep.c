/*
 * cli_sweep.c — `lmpipe sweep`: run a pipeline over a grid of parameter
 * values.  Every -p STAGE.KEY=V1,V2,... and --seeds S1,S2,... is one axis
 * of the grid; each combination is one run in the store, tagged with the
 * sweep (sweeps table, runs.sweep_id).  Under mpirun the combinations are
 * dealt out to the ranks (combination i to rank i mod N), each run on one
 * rank by itself; otherwise they run one after another.  Every combination
 * is checked before the first one runs.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dist.h"
#include "registry.h"
#include "store.h"
#include "util.h"

static const char SWEEP_USAGE[] =
    "lmpipe sweep FILE [-p STAGE.KEY=V1,V2,...]... [--seeds S1,S2,...] [-D VAR=VALUE]...\n"
    "                  [--experiment NAME] [--seed N] [--no-cache] [--check]";

/* One axis: the "STAGE.KEY=" prefix (or NULL for --seeds) and its values. */
typedef struct {
    char *prefix;
    char **values;
    int n;
} axis;

/* Split "a,b,c" into its values (empty ones refused). */
static int split_values(const char *list, const char *what, axis *ax)
{
    char *copy = strdupCheck(list), *save = NULL;
    for (char *v = strtok_r(copy, ",", &save); v; v = strtok_r(NULL, ",", &save)) {
        ax->values = reallocCheck(ax->values, (size_t)(ax->n + 1) * sizeof *ax->values);
        ax->values[ax->n++] = strdupCheck(v);
    }
    int bad = ax->n == 0 || list[0] == ',' || list[strlen(list) - 1] == ',' || strstr(list, ",,");
    free(copy);
    return bad ? lmp_error("%s: an empty value in the list '%s'", what, list) : 0;
}

static void axes_free(axis *axes, int n)
{
    for (int i = 0; i < n; i++) {
        free(axes[i].prefix);
        for (int k = 0; k < axes[i].n; k++) free(axes[i].values[k]);
        free(axes[i].values);
    }
    free(axes);
}

/* The overrides and seed of combination c (mixed radix over the axes, the
 * last axis fastest); a description like "f.lr=1e-3 seed=2". */
static void combination(const axis *axes, int naxes, long c, char **over, uint64_t *seed, lmp_sbuf *desc)
{
    /* the -p axes come first, so axis i's override is over[i]; --seeds is last */
    int k = 0;
    for (int i = naxes - 1; i >= 0; i--) {
        const char *v = axes[i].values[c % axes[i].n];
        c /= axes[i].n;
        if (axes[i].prefix) over[i] = lmp_strfmt("%s%s", axes[i].prefix, v), k++;
        else *seed = strtoull(v, NULL, 10);
    }
    for (int i = 0; i < k; i++) lmp_sbuf_printf(desc, "%s%s", i ? " " : "", over[i]);
    lmp_sbuf_printf(desc, "%sseed=%llu", k ? " " : "", (unsigned long long)*seed);
}

/* Combination c of the grid as a checked pipeline, its seed and its
 * description; 0, or the exit code after the error was printed. */
static int load_combination(const lmp_cli_run_args *a, const axis *axes, int naxes, int has_seeds, long c,
                            lmp_pipeline **p, uint64_t *seed, lmp_sbuf *desc)
{
    char **over = callocCheck((size_t)naxes + 1, sizeof *over);
    *seed = a->opts.seed;
    combination(axes, naxes, c, over, seed, desc);
    int nover = has_seeds ? naxes - 1 : naxes;
    int r = lmp_cli_load_pipeline("sweep", a, over, nover, p);
    for (int i = 0; i < nover; i++) free(over[i]);
    free(over);
    return r;
}

int lmp_cli_sweep(int argc, char **argv)
{
    if (lmp_cli_wants_help(argc, argv)) {
        printf("usage: %s\n\n"
               "Run a pipeline once for every combination of the listed values.  Each\n"
               "combination is a run of its own, tagged with the sweep in the store:\n"
               "  SELECT * FROM run_summary WHERE run_id IN (SELECT id FROM runs WHERE sweep_id = N)\n"
               "Launched with mpirun -np N, the ranks share out the combinations.\n\n"
               "  -p STAGE.KEY=V1,V2  an axis of the grid (one value: a fixed override)\n"
               "  --seeds S1,S2       the run seeds as an axis (default: --seed, 1)\n"
               "  other options       as for lmpipe run\n",
               SWEEP_USAGE);
        return 0;
    }
    /* take --seeds out, leave the rest to the run options parser */
    const char *seeds = NULL;
    char **rest = mallocCheck((size_t)(argc + 1) * sizeof *rest);
    int nrest = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--seeds") == 0) {
            if (i + 1 >= argc) {
                free(rest);
                return lmp_cli_usage_error("sweep", SWEEP_USAGE, "%s needs a value", "--seeds");
            }
            seeds = argv[++i];
        } else {
            rest[nrest++] = argv[i];
        }
    }
    rest[nrest] = NULL;
    lmp_cli_run_args a;
    axis *axes = NULL;
    int naxes = 0, rc = lmp_cli_run_args_parse(nrest, rest, "sweep", SWEEP_USAGE, &a);
    lmp_store *store = NULL;
    lmp_sbuf grid = {0};
    long total = 1;
    if (rc != 0) goto out;
    rc = 2;
    axes = callocCheck((size_t)a.noverrides + 1, sizeof *axes);
    for (int i = 0; i < a.noverrides; i++) {
        const char *eq = strchr(a.overrides[i], '=');
        if (!eq) {
            rc = lmp_cli_usage_error("sweep", SWEEP_USAGE, "-p %s: expected STAGE.KEY=V1,V2,...", a.overrides[i]);
            goto out;
        }
        axis *ax = &axes[naxes++];
        ax->prefix = strndup(a.overrides[i], (size_t)(eq - a.overrides[i] + 1));
        char what[256];
        snprintf(what, sizeof what, "-p %s", a.overrides[i]);
        if (split_values(eq + 1, what, ax) != 0) {
            rc = lmp_cli_fail("sweep", 2);
            goto out;
        }
        lmp_sbuf_printf(&grid, "%s-p %s", grid.len ? " " : "", a.overrides[i]);
    }
    if (seeds) {
        axis *ax = &axes[naxes++];
        if (split_values(seeds, "--seeds", ax) != 0) {
            rc = lmp_cli_fail("sweep", 2);
            goto out;
        }
        for (int k = 0; k < ax->n; k++) {
            char *end;
            strtoull(ax->values[k], &end, 10);
            if (*end || ax->values[k][0] == '-') {
                rc = lmp_cli_usage_error("sweep", SWEEP_USAGE, "--seeds: '%s' is not a non-negative integer",
                                         ax->values[k]);
                goto out;
            }
        }
        lmp_sbuf_printf(&grid, "%s--seeds %s", grid.len ? " " : "", seeds);
    }
    for (int i = 0; i < naxes; i++) {
        if (total * axes[i].n > 100000) {
            lmp_error("the grid has more than 100000 combinations");
            rc = lmp_cli_fail("sweep", 2);
            goto out;
        }
        total *= axes[i].n;
    }
    if (lmp_registry_load(lmp_cli_plugin_path) != 0) {
        rc = lmp_cli_fail("sweep", 1);
        goto out;
    }
    /* every combination checks before any runs */
    for (long c = 0; c < total; c++) {
        lmp_sbuf desc = {0};
        uint64_t seed;
        lmp_pipeline *p;
        int r = load_combination(&a, axes, naxes, seeds != NULL, c, &p, &seed, &desc);
        if (r != 0) fprintf(stderr, "lmpipe sweep: (in combination %ld: %s)\n", c + 1, desc.s);
        lmp_sbuf_free(&desc);
        lmp_pipeline_free(p);
        if (r != 0) {
            rc = r;
            goto out;
        }
    }
    int world = lmp_dist_world(), me = lmp_dist_world_rank();
    if (a.check_only) {
        if (me == 0) printf("%s: %ld combinations, ok\n", a.file, total);
        rc = 0;
        goto out;
    }
    const char *db = lmp_store_default_path(lmp_cli_db);
    a.opts.store_path = db;
    /* rank 0 creates the database and the sweep, then every rank writes its own runs */
    long sweep_id = 0;
    if (me == 0) {
        int64_t id = 0;
        if (lmp_store_open(db, &store) != 0 ||
            lmp_store_begin_sweep(store, a.file, grid.s ? grid.s : "", (int)total, world, &id) != 0) {
            if (world > 1) lmp_dist_abort(lmp_errmsg(), 1);
            rc = lmp_cli_fail("sweep", 1);
            goto out;
        }
        lmp_store_reap_dead_runs(store);
        sweep_id = (long)id;
    }
    lmp_dist_world_bcast_long(&sweep_id);
    if (me != 0 && lmp_store_open(db, &store) != 0) lmp_dist_abort(lmp_errmsg(), 1);
    a.opts.sweep_id = sweep_id;
    if (me == 0) fprintf(stderr, "lmpipe sweep: sweep %ld: %ld runs of %s over %d rank(s)\n", sweep_id, total, a.file, world);
    lmp_dist_solo(1);
    int counts[2] = {0, 0}; /* runs done, runs failed */
    for (long c = me; c < total && !lmp_interrupted(); c += world) {
        lmp_sbuf desc = {0};
        uint64_t seed;
        lmp_pipeline *p;
        int r = load_combination(&a, axes, naxes, seeds != NULL, c, &p, &seed, &desc);
        int64_t run_id = 0;
        if (r == 0) {
            lmp_run_opts o = a.opts;
            o.seed = seed;
            r = lmp_run_pipeline(p, store, &o, &run_id);
            lmp_pipeline_free(p);
        }
        counts[0]++;
        counts[1] += r != 0;
        if (r != 0)
            fprintf(stderr, "lmpipe sweep: run %lld (%s) %s: %s\n", (long long)run_id, desc.s,
                    lmp_interrupted() ? "interrupted" : "failed", lmp_errmsg());
        else
            fprintf(stderr, "lmpipe sweep: run %lld (%s) finished\n", (long long)run_id, desc.s);
        lmp_sbuf_free(&desc);
    }
    lmp_dist_solo(0);
    lmp_dist_world_sum_ints(counts, 2);
    if (me == 0)
        fprintf(stderr, "lmpipe sweep: sweep %ld: %d of %ld runs done, %d failed (see: lmpipe runs --sweep %ld)\n",
                sweep_id, counts[0], total, counts[1], sweep_id);
    rc = counts[1] > 0 || counts[0] < total ? 1 : 0;
out:
    lmp_store_close(store);
    lmp_sbuf_free(&grid);
    axes_free(axes, naxes);
    lmp_cli_run_args_free(&a);
    free(rest);
    return rc;
}
