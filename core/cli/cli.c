/*
 * cli.c — the engine's subcommands: run, runs, show, compare, sql, plugins,
 * inspect.  Queries go through store.c's table printer, so what a command
 * shows is what `lmpipe sql` and the sqlite3 shell see.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dist.h"
#include "param.h"
#include "pipeline.h"
#include "registry.h"
#include "run.h"
#include "store.h"
#include "types.h"
#include "util.h"

const char *lmp_cli_db;
const char *lmp_cli_plugin_path;

int lmp_cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
    return 0;
}

int lmp_cli_fail(const char *cmd, int code)
{
    fprintf(stderr, "lmpipe %s: %s\n", cmd, lmp_errmsg());
    return code;
}

int lmp_cli_usage_error(const char *cmd, const char *usage, const char *fmt, const char *arg)
{
    fprintf(stderr, "lmpipe %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nusage: %s\n", usage);
    return 2;
}

int lmp_cli_parse_id(const char *s, int64_t *id)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v <= 0) return -1;
    *id = v;
    return 0;
}

/* Open the store for reading; a missing database is an error, not created.
 * With `maintain`, a store this user can write is also migrated and has its
 * killed runs marked interrupted; one it cannot write (a shared store in
 * someone else's folder) is only read. */
static int open_existing(const char *cmd, lmp_store **s, int maintain)
{
    const char *path = lmp_store_default_path(lmp_cli_db);
    if (access(path, F_OK) != 0) {
        lmp_error("%s: no such database (run a pipeline first, or pass --db)", path);
        return lmp_cli_fail(cmd, 1);
    }
    int writable = maintain && lmp_store_writable(path);
    if ((writable ? lmp_store_open(path, s) : lmp_store_open_readonly(path, s)) != 0) return lmp_cli_fail(cmd, 1);
    if (writable) lmp_store_reap_dead_runs(*s);
    return 0;
}

/* ------------------------------------------------------------------- run */

static const char RUN_USAGE[] =
    "lmpipe run FILE [-p STAGE.KEY=VALUE]... [-D VAR=VALUE]... [--experiment NAME] [--seed N]\n"
    "                [--no-cache] [--check]";

void lmp_cli_run_args_free(lmp_cli_run_args *a)
{
    lmp_vars_free(&a->defines);
    free(a->overrides);
    memset(a, 0, sizeof *a);
}

int lmp_cli_run_args_parse(int argc, char **argv, const char *cmd, const char *usage, lmp_cli_run_args *a)
{
    memset(a, 0, sizeof *a);
    a->opts.experiment = "default";
    a->opts.seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int has_val = i + 1 < argc;
        if (strcmp(arg, "-p") == 0 || strcmp(arg, "-D") == 0 || strcmp(arg, "--experiment") == 0 ||
            strcmp(arg, "--seed") == 0) {
            if (!has_val) return lmp_cli_usage_error(cmd, usage, "%s needs a value", arg);
            const char *v = argv[++i];
            if (arg[1] == 'p') {
                a->overrides = reallocCheck(a->overrides, (size_t)(a->noverrides + 1) * sizeof *a->overrides);
                a->overrides[a->noverrides++] = (char *)v;
            } else if (arg[1] == 'D') {
                const char *eq = strchr(v, '=');
                if (!eq || eq == v) return lmp_cli_usage_error(cmd, usage, "-D %s: expected VAR=VALUE", v);
                char *name = strndup(v, (size_t)(eq - v));
                lmp_vars_set(&a->defines, name, eq + 1);
                free(name);
            } else if (arg[2] == 'e') {
                a->opts.experiment = v;
            } else {
                int64_t seed;
                if (lmp_cli_parse_id(v, &seed) != 0 && strcmp(v, "0") != 0)
                    return lmp_cli_usage_error(cmd, usage, "--seed %s: expected a non-negative integer", v);
                a->opts.seed = strcmp(v, "0") == 0 ? 0 : (uint64_t)seed;
            }
        } else if (strcmp(arg, "--no-cache") == 0) {
            a->opts.no_cache = 1;
        } else if (strcmp(arg, "--check") == 0) {
            a->check_only = 1;
        } else if (arg[0] == '-' && arg[1]) {
            return lmp_cli_usage_error(cmd, usage, "unknown option %s", arg);
        } else if (a->file) {
            return lmp_cli_usage_error(cmd, usage, "more than one pipeline file (%s)", arg);
        } else {
            a->file = arg;
        }
    }
    if (!a->file) return lmp_cli_usage_error(cmd, usage, "%s", "no pipeline file given");
    return 0;
}

int lmp_cli_load_pipeline(const char *cmd, const lmp_cli_run_args *a, char *const *overrides, int noverrides,
                          lmp_pipeline **out)
{
    *out = NULL;
    lmp_pipeline *p;
    if (lmp_pipeline_parse_file(a->file, &a->defines, &p) != 0) return lmp_cli_fail(cmd, 2);
    for (int i = 0; i < noverrides; i++)
        if (lmp_pipeline_override(p, overrides[i]) != 0) {
            lmp_pipeline_free(p);
            return lmp_cli_fail(cmd, 2);
        }
    if (lmp_pipeline_check(p) != 0) {
        lmp_pipeline_free(p);
        return lmp_cli_fail(cmd, 2);
    }
    *out = p;
    return 0;
}

int lmp_cli_run(int argc, char **argv)
{
    if (lmp_cli_wants_help(argc, argv)) {
        printf("usage: %s\n\n"
               "Check the pipeline (stages, parameters, artifact types), then run it and record\n"
               "the run in the store.  Under mpirun, the ranks run it together (data-parallel\n"
               "training; rank 0 records it).\n\n"
               "  -p STAGE.KEY=VALUE  override a stage parameter\n"
               "  -D VAR=VALUE        define ${VAR} for the pipeline file (wins over 'set' and the environment)\n"
               "  --experiment NAME   group the run under NAME (default: default)\n"
               "  --seed N            the run's seed (default: 1)\n"
               "  --no-cache          recompute cacheable stages instead of reusing earlier results\n"
               "  --check             check the pipeline and stop\n",
               RUN_USAGE);
        return 0;
    }
    lmp_cli_run_args a;
    lmp_pipeline *p = NULL;
    lmp_store *store = NULL;
    int rc = lmp_cli_run_args_parse(argc, argv, "run", RUN_USAGE, &a);
    if (rc != 0) goto out;
    if (lmp_registry_load(lmp_cli_plugin_path) != 0) {
        rc = lmp_cli_fail("run", 1);
        goto out;
    }
    if ((rc = lmp_cli_load_pipeline("run", &a, a.overrides, a.noverrides, &p)) != 0) goto out;
    if (a.check_only) {
        printf("%s: %d stages, ok\n", a.file, p->nstages);
        goto out;
    }
    const char *db = lmp_store_default_path(lmp_cli_db);
    a.opts.store_path = db;
    /* under mpirun only rank 0 writes the store (dist.h) */
    if (lmp_dist_writer() && lmp_store_open(db, &store) != 0) {
        if (lmp_dist_size() > 1) lmp_dist_abort(lmp_errmsg(), 1);
        rc = lmp_cli_fail("run", 1);
        goto out;
    }
    if (store) lmp_store_reap_dead_runs(store);
    int64_t run_id = 0;
    double t0 = lmp_now();
    int r = lmp_run_pipeline(p, store, &a.opts, &run_id);
    if (!lmp_dist_writer()) {
        rc = r != 0;
    } else if (r != 0) {
        fprintf(stderr, "lmpipe run: run %lld %s: %s\n", (long long)run_id,
                lmp_interrupted() ? "interrupted" : "failed", lmp_errmsg());
        rc = 1;
    } else {
        fprintf(stderr, "lmpipe run: run %lld finished in %.1fs (db %s; see: lmpipe show %lld)\n",
                (long long)run_id, lmp_now() - t0, db, (long long)run_id);
        rc = 0;
    }
out:
    lmp_store_close(store);
    lmp_pipeline_free(p);
    lmp_cli_run_args_free(&a);
    return rc;
}

/* ------------------------------------------------------------------ runs */

int lmp_cli_runs(int argc, char **argv)
{
    static const char usage[] = "lmpipe runs [--limit N] [--experiment NAME] [--sweep N]";
    if (lmp_cli_wants_help(argc, argv)) {
        printf("usage: %s\n\nList recent runs, newest first (default limit 20); with --sweep, the runs of\n"
               "that sweep (lmpipe sweep) with the values of its grid.\n", usage);
        return 0;
    }
    int64_t limit = 20, sweep = 0;
    const char *experiment = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
            if (lmp_cli_parse_id(argv[++i], &limit) != 0)
                return lmp_cli_usage_error("runs", usage, "--limit %s: expected a positive integer", argv[i]);
        } else if (strcmp(argv[i], "--sweep") == 0 && i + 1 < argc) {
            if (lmp_cli_parse_id(argv[++i], &sweep) != 0)
                return lmp_cli_usage_error("runs", usage, "--sweep %s: expected a positive integer", argv[i]);
        } else if (strcmp(argv[i], "--experiment") == 0 && i + 1 < argc) {
            experiment = argv[++i];
        } else {
            return lmp_cli_usage_error("runs", usage, "unexpected argument %s", argv[i]);
        }
    }
    lmp_store *s;
    int rc = open_existing("runs", &s, 1);
    if (rc) return rc;
    if (sweep) {
        /* a run's values on the grid: its params named in the sweep's "-p STAGE.KEY=" */
        char *q = sqlite3_mprintf(
            "SELECT id, status, seed, group_concat(v, ' ') AS grid_values, seconds FROM ("
            " SELECT r.id, r.status, r.seed, rs.duration_s AS seconds, p.stage || '.' || p.key || '=' || p.value AS v"
            " FROM runs r JOIN sweeps w ON w.id = r.sweep_id JOIN run_summary rs ON rs.run_id = r.id"
            " LEFT JOIN params p ON p.run_id = r.id AND instr(w.grid, '-p ' || p.stage || '.' || p.key || '=') > 0"
            " WHERE r.sweep_id = %lld ORDER BY r.id, instr(w.grid, '-p ' || p.stage || '.' || p.key || '='))"
            " GROUP BY id ORDER BY id LIMIT %lld",
            (long long)sweep, (long long)(limit == 20 ? 100000 : limit));
        rc = lmp_store_print_query(s, q, 0, stdout) != 0 ? lmp_cli_fail("runs", 1) : 0;
        sqlite3_free(q);
        lmp_store_close(s);
        return rc;
    }
    char *sql = sqlite3_mprintf("SELECT run_id AS id, experiment, pipeline, status, seed, started_at AS started,"
                                " duration_s AS seconds FROM run_summary WHERE %s%Q"
                                " ORDER BY run_id DESC LIMIT %lld",
                                experiment ? "experiment = " : "1 OR ", experiment ? experiment : "",
                                (long long)limit);
    rc = lmp_store_print_query(s, sql, 0, stdout) != 0 ? lmp_cli_fail("runs", 1) : 0;
    sqlite3_free(sql);
    lmp_store_close(s);
    return rc;
}

/* ------------------------------------------------------------------ show */

static int run_exists(lmp_store *s, int64_t id)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(lmp_store_db(s), "SELECT 1 FROM runs WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_int64(st, 1, id);
    int ok = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return ok;
}

int lmp_cli_show(int argc, char **argv)
{
    static const char usage[] = "lmpipe show RUN";
    if (lmp_cli_wants_help(argc, argv)) {
        printf("usage: %s\n\nShow a run: its record, stage timings, resolved parameters, final metrics "
               "and artifacts.\n",
               usage);
        return 0;
    }
    int64_t id;
    if (argc != 2) return lmp_cli_usage_error("show", usage, "%s", "expected one run id");
    if (lmp_cli_parse_id(argv[1], &id) != 0) return lmp_cli_usage_error("show", usage, "'%s' is not a run id", argv[1]);
    lmp_store *s;
    int rc = open_existing("show", &s, 1);
    if (rc) return rc;
    if (!run_exists(s, id)) {
        lmp_error("no run %lld in %s", (long long)id, lmp_store_path(s));
        lmp_store_close(s);
        return lmp_cli_fail("show", 1);
    }
    static const struct {
        const char *title, *sql;
    } parts[] = {
        {"run", "SELECT r.id, e.name AS experiment, r.pipeline, r.status, r.seed, r.host, r.lmpipe_version AS version,"
                " r.world_size AS ranks, coalesce(r.sweep_id, '') AS sweep, r.started_at, r.finished_at, s.duration_s AS seconds, coalesce(r.error, '') AS error"
                " FROM runs r JOIN experiments e ON e.id = r.experiment_id JOIN run_summary s ON s.run_id = r.id"
                " WHERE r.id = ?"},
        {"stages", "SELECT stage, plugin, plugin_version AS version, status, round(seconds, 3) AS seconds,"
                   " coalesce(substr(cache_key, 1, 12), '') AS cache_key FROM stages WHERE run_id = ? ORDER BY position"},
        {"params", "SELECT p.stage, p.key, p.value FROM params p JOIN stages s ON s.run_id = p.run_id AND"
                   " s.stage = p.stage WHERE p.run_id = ? ORDER BY s.position, p.key"},
        {"metrics (last value)", "SELECT m.stage, m.key, m.step, m.value FROM latest_metrics m JOIN stages s ON"
                                 " s.run_id = m.run_id AND s.stage = m.stage WHERE m.run_id = ?"
                                 " ORDER BY s.position, m.key"},
        {"artifacts", "SELECT stage, name, bytes, substr(sha256, 1, 12) AS sha256, path FROM artifacts"
                      " WHERE run_id = ? ORDER BY stage, name"},
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0] && rc == 0; i++) {
        printf("%s%s\n", i ? "\n" : "", parts[i].title);
        if (lmp_store_print_query_id(s, parts[i].sql, id, stdout) != 0) rc = lmp_cli_fail("show", 1);
    }
    lmp_store_close(s);
    return rc;
}

/* --------------------------------------------------------------- compare */

int lmp_cli_compare(int argc, char **argv)
{
    static const char usage[] = "lmpipe compare RUN RUN...";
    if (lmp_cli_wants_help(argc, argv)) {
        printf("usage: %s\n\nParameters that differ between the runs, and every final metric side by side.\n",
               usage);
        return 0;
    }
    if (argc < 3) return lmp_cli_usage_error("compare", usage, "%s", "expected at least two run ids");
    int n = argc - 1;
    int64_t *ids = mallocCheck((size_t)n * sizeof *ids);
    for (int i = 0; i < n; i++)
        if (lmp_cli_parse_id(argv[i + 1], &ids[i]) != 0) {
            free(ids);
            return lmp_cli_usage_error("compare", usage, "'%s' is not a run id", argv[i + 1]);
        }
    lmp_store *s;
    int rc = open_existing("compare", &s, 1);
    if (rc) {
        free(ids);
        return rc;
    }
    for (int i = 0; i < n; i++)
        if (!run_exists(s, ids[i])) {
            lmp_error("no run %lld in %s", (long long)ids[i], lmp_store_path(s));
            lmp_store_close(s);
            free(ids);
            return lmp_cli_fail("compare", 1);
        }
    lmp_sbuf cols = {0}, in = {0};
    for (int i = 0; i < n; i++) {
        lmp_sbuf_printf(&cols, ", max(CASE WHEN run_id = %lld THEN value END) AS \"run %lld\"", (long long)ids[i],
                        (long long)ids[i]);
        lmp_sbuf_printf(&in, "%s%lld", i ? ", " : "", (long long)ids[i]);
    }
    char *q1 = lmp_strfmt("SELECT stage, key%s FROM params WHERE run_id IN (%s) GROUP BY stage, key"
                          " HAVING count(DISTINCT value) > 1 OR count(*) < %d ORDER BY stage, key",
                          cols.s, in.s, n);
    char *q2 = lmp_strfmt("SELECT stage, key%s FROM latest_metrics WHERE run_id IN (%s) GROUP BY stage, key"
                          " ORDER BY stage, key",
                          cols.s, in.s);
    printf("params that differ\n");
    if (lmp_store_print_query(s, q1, 0, stdout) != 0) rc = lmp_cli_fail("compare", 1);
    printf("\nmetrics (last value)\n");
    if (rc == 0 && lmp_store_print_query(s, q2, 0, stdout) != 0) rc = lmp_cli_fail("compare", 1);
    free(q1);
    free(q2);
    lmp_sbuf_free(&cols);
    lmp_sbuf_free(&in);
    free(ids);
    lmp_store_close(s);
    return rc;
}

/* ------------------------------------------------------------------- sql */

int lmp_cli_sql(int argc, char **argv)
{
    static const char usage[] = "lmpipe sql [--tsv] \"SELECT ...\"";
    if (lmp_cli_wants_help(argc, argv)) {
        printf("usage: %s\n\nRun SQL against the store, read-only, and print the result as a table\n"
               "(--tsv: tab-separated, for scripts).  Tables: experiments, runs, stages, params,\n"
               "metrics, artifacts; views: run_summary, latest_metrics (see db/schema.sql).\n",
               usage);
        return 0;
    }
    int tsv = 0;
    const char *sql = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tsv") == 0) tsv = 1;
        else if (!sql) sql = argv[i];
        else return lmp_cli_usage_error("sql", usage, "%s", "expected one SQL string (quote it)");
    }
    if (!sql) return lmp_cli_usage_error("sql", usage, "%s", "no SQL given");
    lmp_store *s;
    int rc = open_existing("sql", &s, 0);
    if (rc) return rc;
    rc = lmp_store_print_query(s, sql, tsv, stdout) != 0 ? lmp_cli_fail("sql", 1) : 0;
    lmp_store_close(s);
    return rc;
}

/* --------------------------------------------------------------- plugins */

int lmp_cli_plugins(int argc, char **argv)
{
    if (lmp_cli_wants_help(argc, argv)) {
        printf("usage: lmpipe plugins\n\nList every stage on the plugin search path with its plugin and file.\n");
        return 0;
    }
    if (argc > 1) return lmp_cli_usage_error("plugins", "lmpipe plugins", "unexpected argument %s", argv[1]);
    if (lmp_registry_load(lmp_cli_plugin_path) != 0) return lmp_cli_fail("plugins", 1);
    int w = 5;
    for (int i = 0; i < lmp_registry_count(); i++) {
        int l = (int)strlen(lmp_registry_at(i)->def->name);
        if (l > w) w = l;
    }
    printf("%-*s  %-16s  %s\n", w, "stage", "plugin", "description");
    for (int i = 0; i < lmp_registry_count(); i++) {
        const lmp_stage_entry *e = lmp_registry_at(i);
        char plug[64];
        snprintf(plug, sizeof plug, "%s %s", e->plugin->name, e->plugin->version);
        printf("%-*s  %-16s  %s\n", w, e->def->name, plug, e->def->description ? e->def->description : "");
    }
    printf("\n%d stages; search path: %s\n", lmp_registry_count(), lmp_registry_search_path());
    return 0;
}

/* --------------------------------------------------------------- inspect */

static void print_ports(const char *title, const lmp_port *ports)
{
    printf("\n%s\n", title);
    if (!ports || !ports->name) {
        printf("  (none)\n");
        return;
    }
    for (const lmp_port *p = ports; p->name; p++) {
        const lmp_type *t = lmp_type_find(p->type);
        printf("  %-14s %-12s %s%s\n", p->name, p->type, p->optional ? "(optional) " : "",
               p->doc ? p->doc : (t && t->doc ? t->doc : ""));
    }
}

int lmp_cli_inspect(int argc, char **argv)
{
    static const char usage[] = "lmpipe inspect STAGE";
    if (lmp_cli_wants_help(argc, argv)) {
        printf("usage: %s\n\nDescribe a stage like gst-inspect: plugin, file, inputs, outputs, and every\n"
               "parameter with its type, default, range and documentation.\n",
               usage);
        return 0;
    }
    if (argc != 2) return lmp_cli_usage_error("inspect", usage, "%s", "expected one stage name");
    if (lmp_registry_load(lmp_cli_plugin_path) != 0) return lmp_cli_fail("inspect", 1);
    const lmp_stage_entry *e = lmp_registry_find(argv[1]);
    if (!e) {
        const char *sug = lmp_registry_suggest(argv[1]);
        if (sug) lmp_error("no stage '%s'; did you mean '%s'?", argv[1], sug);
        else lmp_error("no stage '%s' (see: lmpipe plugins)", argv[1]);
        return lmp_cli_fail("inspect", 1);
    }
    const lmp_stage_def *d = e->def;
    printf("Stage           %s\n", d->name);
    printf("Description     %s\n", d->description ? d->description : "");
    printf("Plugin          %s %s — %s\n", e->plugin->name, e->plugin->version,
           e->plugin->description ? e->plugin->description : "");
    printf("File            %s\n", e->file);
    printf("Flags           %s%s%s\n", d->flags & LMP_STAGE_CACHEABLE ? "cacheable " : "",
           d->flags & LMP_STAGE_SEEDED ? "seeded " : "", d->flags ? "" : "none");
    print_ports("Consumes", d->consumes);
    print_ports("Produces", d->produces);
    printf("\nParameters\n");
    if (!d->params || !d->params->key) printf("  (none)\n");
    for (const lmp_param *p = d->params; p && p->key; p++) {
        char range[256];
        lmp_param_range_str(p, range, sizeof range);
        printf("  %-18s %-7s default: %-12s%s%s\n", p->key, lmp_ptype_name(p->type), p->def ? p->def : "(required)",
               *range ? (p->type == LMP_ENUM ? " choices: " : " range: ") : "", range);
        if (p->doc) printf("  %-18s %s\n", "", p->doc);
    }
    return 0;
}
