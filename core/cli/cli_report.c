/*
 * cli_report.c — `lmpipe plot` (SVG files of metric curves and a comparison
 * bar chart) and `lmpipe report` (one self-contained HTML page comparing
 * runs side by side: parameters, final metrics, curves, confusion matrices,
 * text samples, stage timings).  Both only read the store.
 *
 * Curves: every metric logged with step >= 0, one chart per (run, stage,
 * group), where a key's group is the part after its last '_' — so train_loss
 * and dev_loss share a "loss" chart, train_acc and dev_acc an "acc" chart.
 * The comparison chart shows the last value of the keys named by --metric,
 * or by default of every key whose group is acc, accuracy, mcc or f1.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "store.h"
#include "svg.h"
#include "util.h"

/* Text artifacts at most this big are shown in the report. */
#define SAMPLE_MAX_BYTES (64 * 1024)

static int usage_error(const char *cmd, const char *usage, const char *msg, const char *arg)
{
    fprintf(stderr, "lmpipe %s: %s%s\nusage: %s\n", cmd, msg, arg, usage);
    return 2;
}

/* ------------------------------------------------------------ reading */

/* Run `sql` with every '?' bound to `id`; call `row` for each result row. */
static int query(lmp_store *s, const char *sql, int64_t id, void (*row)(sqlite3_stmt *, void *), void *ctx)
{
    sqlite3 *db = lmp_store_db(s);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return lmp_error("%s: %s", lmp_store_path(s), sqlite3_errmsg(db));
    for (int i = 1; i <= sqlite3_bind_parameter_count(st); i++) sqlite3_bind_int64(st, i, id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) row(st, ctx);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return lmp_error("%s: %s", lmp_store_path(s), sqlite3_errmsg(db));
    return 0;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    return t ? t : "";
}

static double col_double(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static const char *group_of(const char *key)
{
    const char *u = strrchr(key, '_');
    return u && u[1] ? u + 1 : key;
}

static int is_cm_key(const char *key) { return strstr(key, "_cm_") != NULL; }

/* One metric's history (steps >= 0). */
typedef struct {
    char *stage, *key;
    int n;
    double *x, *y;
} curve;

typedef struct {
    curve *c;
    int n;
    char *const *only; /* --metric filter, NULL-terminated, or NULL */
} curves;

/* Whether `key` of `stage` is named by the filter (as KEY or STAGE.KEY). */
static int selected(char *const *only, const char *stage, const char *key)
{
    if (!only) return 1;
    for (int i = 0; only[i]; i++) {
        size_t l = strlen(stage);
        if (strcmp(only[i], key) == 0 ||
            (strncmp(only[i], stage, l) == 0 && only[i][l] == '.' && strcmp(only[i] + l + 1, key) == 0))
            return 1;
    }
    return 0;
}

static void curve_row(sqlite3_stmt *st, void *ctx)
{
    curves *cs = ctx;
    const char *stage = col_text(st, 0), *key = col_text(st, 1);
    if (is_cm_key(key) || !selected(cs->only, stage, key)) return;
    curve *c = cs->n ? &cs->c[cs->n - 1] : NULL;
    if (!c || strcmp(c->stage, stage) != 0 || strcmp(c->key, key) != 0) {
        cs->c = reallocCheck(cs->c, (size_t)(cs->n + 1) * sizeof *cs->c);
        c = &cs->c[cs->n++];
        *c = (curve){strdupCheck(stage), strdupCheck(key), 0, NULL, NULL};
    }
    double x = (double)sqlite3_column_int64(st, 2), y = col_double(st, 3);
    if (c->n && c->x[c->n - 1] == x) { /* the same step logged again: the later value wins */
        c->y[c->n - 1] = y;
        return;
    }
    c->x = reallocCheck(c->x, (size_t)(c->n + 1) * sizeof *c->x);
    c->y = reallocCheck(c->y, (size_t)(c->n + 1) * sizeof *c->y);
    c->x[c->n] = x;
    c->y[c->n++] = y;
}

static void curves_free(curves *cs)
{
    for (int i = 0; i < cs->n; i++) free(cs->c[i].stage), free(cs->c[i].key), free(cs->c[i].x), free(cs->c[i].y);
    free(cs->c);
    cs->c = NULL;
    cs->n = 0;
}

static int load_curves(lmp_store *s, int64_t id, char *const *only, curves *cs)
{
    *cs = (curves){NULL, 0, only};
    return query(s,
                 "SELECT m.stage, m.key, m.step, m.value FROM metrics m JOIN stages s ON s.run_id = m.run_id"
                 " AND s.stage = m.stage WHERE m.run_id = ? AND m.step >= 0"
                 " ORDER BY s.position, m.key, m.step, m.rowid",
                 id, curve_row, cs);
}

/* The charts of one run: one per (stage, group) in order of appearance. */
typedef struct {
    char *stage, *group;
    lmp_svg_series *series;
    int n;
} chart;

static int build_charts(const curves *cs, chart **out)
{
    chart *ch = NULL;
    int n = 0;
    for (int i = 0; i < cs->n; i++) {
        const curve *c = &cs->c[i];
        const char *g = group_of(c->key);
        int j = 0;
        while (j < n && !(strcmp(ch[j].stage, c->stage) == 0 && strcmp(ch[j].group, g) == 0)) j++;
        if (j == n) {
            ch = reallocCheck(ch, (size_t)(n + 1) * sizeof *ch);
            ch[n++] = (chart){c->stage, strdupCheck(g), NULL, 0};
        }
        ch[j].series = reallocCheck(ch[j].series, (size_t)(ch[j].n + 1) * sizeof *ch[j].series);
        ch[j].series[ch[j].n++] = (lmp_svg_series){c->key, c->x, c->y, c->n};
    }
    *out = ch;
    return n;
}

static void charts_free(chart *ch, int n)
{
    for (int i = 0; i < n; i++) free(ch[i].group), free(ch[i].series);
    free(ch);
}

static char *chart_svg(int64_t id, const chart *c)
{
    char *title = lmp_strfmt("run %lld · %s · %s", (long long)id, c->stage, c->group);
    char *svg = lmp_svg_line_chart(title, "step", c->group, c->series, c->n);
    free(title);
    return svg;
}

/* Final values for the comparison chart. */
typedef struct {
    char **names; /* "stage.key" */
    int n;
    double *v; /* [n * nruns] */
    int nruns, run;
    char *const *only;
} finals;

static int is_headline(const char *key)
{
    const char *g = group_of(key);
    return strcmp(g, "acc") == 0 || strcmp(g, "accuracy") == 0 || strcmp(g, "mcc") == 0 || strcmp(g, "f1") == 0;
}

static void final_row(sqlite3_stmt *st, void *ctx)
{
    finals *f = ctx;
    const char *stage = col_text(st, 0), *key = col_text(st, 1);
    if (f->only ? !selected(f->only, stage, key) : !is_headline(key)) return;
    char *name = lmp_strfmt("%s.%s", stage, key);
    int j = 0;
    while (j < f->n && strcmp(f->names[j], name) != 0) j++;
    if (j == f->n) {
        f->names = reallocCheck(f->names, (size_t)(f->n + 1) * sizeof *f->names);
        f->names[f->n++] = name;
        f->v = reallocCheck(f->v, (size_t)f->n * (size_t)f->nruns * sizeof *f->v);
        for (int r = 0; r < f->nruns; r++) f->v[(size_t)j * f->nruns + r] = NAN;
    } else {
        free(name);
    }
    f->v[(size_t)j * f->nruns + f->run] = col_double(st, 2);
}

static const char LATEST_SQL[] = "SELECT m.stage, m.key, m.value, m.step FROM latest_metrics m JOIN stages s ON"
                                 " s.run_id = m.run_id AND s.stage = m.stage WHERE m.run_id = ?"
                                 " ORDER BY s.position, m.key";

static int load_finals(lmp_store *s, const int64_t *ids, int nruns, char *const *only, finals *f)
{
    *f = (finals){NULL, 0, NULL, nruns, 0, only};
    for (int r = 0; r < nruns; r++) {
        f->run = r;
        if (query(s, LATEST_SQL, ids[r], final_row, f) != 0) return -1;
    }
    return 0;
}

static void finals_free(finals *f)
{
    for (int i = 0; i < f->n; i++) free(f->names[i]);
    free(f->names);
    free(f->v);
}

static char **run_labels(const int64_t *ids, int n)
{
    char **l = mallocCheck((size_t)n * sizeof *l);
    for (int i = 0; i < n; i++) l[i] = lmp_strfmt("run %lld", (long long)ids[i]);
    return l;
}

static void free_strs(char **v, int n)
{
    for (int i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

static char *compare_svg(const finals *f, const int64_t *ids, int nruns)
{
    char **labels = run_labels(ids, nruns);
    char *svg = lmp_svg_bar_chart("final metrics", (const char *const *)f->names, f->n, (const char *const *)labels,
                                  nruns, f->v);
    free_strs(labels, nruns);
    return svg;
}

/* ------------------------------------------------------------ shared setup */

static int open_runs(const char *cmd, const int64_t *ids, int n, lmp_store **out)
{
    const char *path = lmp_store_default_path(lmp_cli_db);
    *out = NULL;
    if (access(path, F_OK) != 0) {
        lmp_error("%s: no such database (run a pipeline first, or pass --db)", path);
        return lmp_cli_fail(cmd, 1);
    }
    if (lmp_store_open_readonly(path, out) != 0) return lmp_cli_fail(cmd, 1);
    sqlite3 *db = lmp_store_db(*out);
    for (int i = 0; i < n; i++) {
        sqlite3_stmt *st;
        int found = 0;
        if (sqlite3_prepare_v2(db, "SELECT 1 FROM runs WHERE id = ?", -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, ids[i]);
            found = sqlite3_step(st) == SQLITE_ROW;
            sqlite3_finalize(st);
        }
        if (!found) {
            lmp_error("no run %lld in %s", (long long)ids[i], path);
            lmp_store_close(*out);
            *out = NULL;
            return lmp_cli_fail(cmd, 1);
        }
    }
    return 0;
}

/* A file name part: anything but letters, digits, '.', '_', '-' becomes '_'. */
static void sanitize(char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' ||
              *s == '_' || *s == '-'))
            *s = '_';
}

/* ------------------------------------------------------------------ plot */

static const char PLOT_USAGE[] = "lmpipe plot RUN... [--metric KEY]... [--out DIR]";

/* A --metric that names nothing is a typo: say so, with the closest key. */
static int check_metric_names(lmp_store *s, const int64_t *ids, int n, char *const *only)
{
    /* every "stage.key" of the runs, one per line */
    lmp_sbuf keys = {0};
    lmp_sbuf_puts(&keys, "");
    for (int r = 0; r < n; r++) {
        sqlite3_stmt *st;
        sqlite3 *db = lmp_store_db(s);
        if (sqlite3_prepare_v2(db, "SELECT DISTINCT stage, key FROM metrics WHERE run_id = ?", -1, &st, NULL) !=
            SQLITE_OK)
            return lmp_error("%s: %s", lmp_store_path(s), sqlite3_errmsg(db));
        sqlite3_bind_int64(st, 1, ids[r]);
        while (sqlite3_step(st) == SQLITE_ROW)
            lmp_sbuf_printf(&keys, "%s.%s\n", col_text(st, 0), col_text(st, 1));
        sqlite3_finalize(st);
    }
    int rc = 0;
    for (int i = 0; only[i] && rc == 0; i++) {
        int found = 0, best_d = 1 << 30;
        char *best = NULL;
        for (char *line = keys.s; *line && !found;) {
            char *nl = strchr(line, '\n');
            *nl = 0;
            char *dot = strchr(line, '.');
            *dot = 0;
            found = selected((char *const[]){only[i], NULL}, line, dot + 1);
            *dot = '.';
            int d1 = lmp_edit_distance(only[i], dot + 1), d2 = lmp_edit_distance(only[i], line);
            int d = d1 < d2 ? d1 : d2;
            if (d < best_d) {
                best_d = d;
                free(best);
                best = strdupCheck(d1 <= d2 ? dot + 1 : line);
            }
            *nl = '\n';
            line = nl + 1;
        }
        if (!found) {
            if (best && best_d <= 2 + (int)strlen(only[i]) / 4)
                rc = lmp_error("no metric '%s' in the runs given; did you mean '%s'?", only[i], best);
            else
                rc = lmp_error("no metric '%s' in the runs given", only[i]);
        }
        free(best);
    }
    lmp_sbuf_free(&keys);
    return rc;
}

static int write_svg(const char *dir, const char *name, const char *svg)
{
    char *path = lmp_strfmt("%s/%s", dir, name);
    int rc = lmp_write_file_atomic(path, svg, strlen(svg));
    if (rc == 0) printf("%s\n", path);
    free(path);
    return rc;
}

int lmp_cli_plot(int argc, char **argv)
{
    if (lmp_cli_wants_help(argc, argv)) {
        printf("usage: %s\n\n"
               "Write SVG charts of the runs' metrics: for each run and stage, curves of every\n"
               "metric logged per step or epoch (keys sharing a suffix, like train_loss and\n"
               "dev_loss, share a chart), and one bar chart comparing the runs' final values\n"
               "(default: keys ending in _acc, _accuracy, _mcc, _f1).  Prints the files' paths.\n\n"
               "  --metric KEY  plot only KEY (or STAGE.KEY); repeatable\n"
               "  --out DIR     where to write (default: the current directory)\n",
               PLOT_USAGE);
        return 0;
    }
    int64_t *ids = mallocCheck((size_t)argc * sizeof *ids);
    char **only = callocCheck((size_t)argc, sizeof *only);
    int n = 0, nonly = 0, rc = 0;
    const char *out = ".";
    lmp_store *s = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--metric") == 0 || strcmp(argv[i], "--out") == 0) {
            if (i + 1 >= argc) {
                rc = usage_error("plot", PLOT_USAGE, argv[i], " needs a value");
                goto done;
            }
            if (argv[i][2] == 'm') only[nonly++] = argv[++i];
            else out = argv[++i];
        } else if (lmp_cli_parse_id(argv[i], &ids[n]) == 0) {
            n++;
        } else {
            rc = usage_error("plot", PLOT_USAGE, argv[i][0] == '-' ? "unknown option " : "not a run id: ", argv[i]);
            goto done;
        }
    }
    if (n == 0) {
        rc = usage_error("plot", PLOT_USAGE, "no run ids given", "");
        goto done;
    }
    if ((rc = open_runs("plot", ids, n, &s)) != 0) goto done;
    char *const *filter = nonly ? only : NULL;
    if (filter && check_metric_names(s, ids, n, filter) != 0) {
        rc = lmp_cli_fail("plot", 1);
        goto done;
    }
    if (lmp_mkdirs(out) != 0) {
        rc = lmp_cli_fail("plot", 1);
        goto done;
    }
    int files = 0;
    for (int r = 0; r < n && rc == 0; r++) {
        curves cs;
        if (load_curves(s, ids[r], filter, &cs) != 0) {
            curves_free(&cs);
            rc = lmp_cli_fail("plot", 1);
            break;
        }
        chart *ch;
        int nch = build_charts(&cs, &ch);
        for (int c = 0; c < nch && rc == 0; c++) {
            char *svg = chart_svg(ids[r], &ch[c]);
            char *name = lmp_strfmt("run%lld-%s-%s.svg", (long long)ids[r], ch[c].stage, ch[c].group);
            sanitize(name);
            if (write_svg(out, name, svg) != 0) rc = lmp_cli_fail("plot", 1);
            files++;
            free(name);
            free(svg);
        }
        charts_free(ch, nch);
        curves_free(&cs);
    }
    finals f = {0};
    if (rc == 0 && load_finals(s, ids, n, filter, &f) != 0) rc = lmp_cli_fail("plot", 1);
    if (rc == 0 && f.n > 0) {
        lmp_sbuf name = {0};
        lmp_sbuf_puts(&name, "compare");
        if (n <= 16)
            for (int r = 0; r < n; r++) lmp_sbuf_printf(&name, "-%lld", (long long)ids[r]);
        else
            lmp_sbuf_printf(&name, "-%d-runs-%lld-%lld", n, (long long)ids[0], (long long)ids[n - 1]);
        lmp_sbuf_puts(&name, ".svg");
        char *svg = compare_svg(&f, ids, n);
        if (write_svg(out, name.s, svg) != 0) rc = lmp_cli_fail("plot", 1);
        files++;
        free(svg);
        lmp_sbuf_free(&name);
    }
    finals_free(&f);
    if (rc == 0 && files == 0) {
        lmp_error("nothing to plot: the runs have no per-step metrics%s", filter ? " of those keys" : " and no final acc/mcc/f1");
        rc = lmp_cli_fail("plot", 1);
    }
done:
    lmp_store_close(s);
    free(ids);
    free(only);
    return rc;
}

/* ---------------------------------------------------------------- report */

/* A table with one row per (stage, key) and one column per run. */
typedef struct {
    char *stage, *key;
    char **val; /* [nruns], NULL: absent in that run */
} xrow;

typedef struct {
    xrow *rows;
    int n, nruns, run;
    int skip_cm;
} xtable;

static void xtable_set(xtable *t, const char *stage, const char *key, const char *val)
{
    int i = 0;
    while (i < t->n && !(strcmp(t->rows[i].stage, stage) == 0 && strcmp(t->rows[i].key, key) == 0)) i++;
    if (i == t->n) {
        t->rows = reallocCheck(t->rows, (size_t)(t->n + 1) * sizeof *t->rows);
        t->rows[t->n++] = (xrow){strdupCheck(stage), strdupCheck(key), callocCheck((size_t)t->nruns, sizeof(char *))};
    }
    free(t->rows[i].val[t->run]);
    t->rows[i].val[t->run] = strdupCheck(val);
}

static void xtable_free(xtable *t)
{
    for (int i = 0; i < t->n; i++) {
        free_strs(t->rows[i].val, t->nruns);
        free(t->rows[i].stage);
        free(t->rows[i].key);
    }
    free(t->rows);
}

static void param_row(sqlite3_stmt *st, void *ctx) { xtable_set(ctx, col_text(st, 0), col_text(st, 1), col_text(st, 2)); }

static void metric_row(sqlite3_stmt *st, void *ctx)
{
    xtable *t = ctx;
    if (t->skip_cm && is_cm_key(col_text(st, 1))) return;
    char buf[64];
    double v = col_double(st, 2);
    if (isnan(v)) snprintf(buf, sizeof buf, "NaN");
    else snprintf(buf, sizeof buf, "%.6g", v);
    xtable_set(t, col_text(st, 0), col_text(st, 1), buf);
}

static void timing_row(sqlite3_stmt *st, void *ctx)
{
    char buf[128];
    if (sqlite3_column_type(st, 2) == SQLITE_NULL) snprintf(buf, sizeof buf, "%s", col_text(st, 3));
    else snprintf(buf, sizeof buf, "%.3f s (%s)", sqlite3_column_double(st, 2), col_text(st, 3));
    xtable_set(ctx, col_text(st, 0), col_text(st, 1), buf);
}

static void html(lmp_sbuf *b, const char *s) { lmp_xml_escape(b, s); }

/* c1 NULL: a table without the stage column */
static void table_head(lmp_sbuf *b, const int64_t *ids, int n, const char *c1, const char *c2)
{
    lmp_sbuf_puts(b, "<table>\n<tr>");
    if (c1) lmp_sbuf_printf(b, "<th>%s</th>", c1);
    lmp_sbuf_printf(b, "<th>%s</th>", c2);
    for (int r = 0; r < n; r++) lmp_sbuf_printf(b, "<th>run %lld</th>", (long long)ids[r]);
    lmp_sbuf_puts(b, "</tr>\n");
}

/* Rows whose values are not all the same (or missing somewhere) get class diff. */
static void xtable_html(lmp_sbuf *b, const xtable *t, const int64_t *ids, const char *c1, const char *c2, int mark)
{
    if (t->n == 0) {
        lmp_sbuf_puts(b, "<p class=\"none\">none</p>\n");
        return;
    }
    table_head(b, ids, t->nruns, c1, c2);
    for (int i = 0; i < t->n; i++) {
        const xrow *row = &t->rows[i];
        int differ = 0;
        for (int r = 1; r < t->nruns; r++) {
            const char *a = row->val[0], *z = row->val[r];
            if (!a || !z ? a != z : strcmp(a, z) != 0) differ = 1;
        }
        lmp_sbuf_puts(b, mark && differ ? "<tr class=\"diff\">" : "<tr>");
        if (c1) {
            lmp_sbuf_puts(b, "<td>");
            html(b, row->stage);
            lmp_sbuf_puts(b, "</td>");
        }
        lmp_sbuf_puts(b, "<td>");
        html(b, row->key);
        lmp_sbuf_puts(b, "</td>");
        for (int r = 0; r < t->nruns; r++) {
            if (!row->val[r]) {
                lmp_sbuf_puts(b, "<td class=\"absent\">—</td>");
                continue;
            }
            lmp_sbuf_puts(b, "<td>");
            html(b, row->val[r]);
            lmp_sbuf_puts(b, "</td>");
        }
        lmp_sbuf_puts(b, "</tr>\n");
    }
    lmp_sbuf_puts(b, "</table>\n");
}

static int add_table(lmp_sbuf *b, lmp_store *s, const int64_t *ids, int n, const char *sql,
                     void (*row)(sqlite3_stmt *, void *), int skip_cm, const char *c1, const char *c2, int mark)
{
    xtable t = {NULL, 0, n, 0, skip_cm};
    int rc = 0;
    for (int r = 0; r < n && rc == 0; r++) {
        t.run = r;
        rc = query(s, sql, ids[r], row, &t);
    }
    if (rc == 0) xtable_html(b, &t, ids, c1, c2, mark);
    xtable_free(&t);
    return rc;
}

/* ---- confusion matrices: metrics <prefix>_cm_<gold>_<pred> */

typedef struct {
    char *stage, *prefix;
    int k;                /* classes seen (max index + 1) */
    double cell[16][16];  /* NaN: not logged */
} cmat;

typedef struct {
    cmat *m;
    int n;
} cmats;

#define CM_MAX 16

static void cm_row(sqlite3_stmt *st, void *ctx)
{
    cmats *cs = ctx;
    const char *stage = col_text(st, 0), *key = col_text(st, 1), *at = strstr(key, "_cm_");
    int g, p, used = 0;
    /* the last "_cm_" in the key, so a prefix may itself contain one */
    for (const char *q = at; q; q = strstr(q + 1, "_cm_")) at = q;
    if (!at || sscanf(at + 4, "%d_%d%n", &g, &p, &used) != 2 || at[4 + used] || g < 0 || p < 0 || g >= CM_MAX ||
        p >= CM_MAX)
        return;
    int j = 0;
    size_t pl = (size_t)(at - key);
    while (j < cs->n && !(strcmp(cs->m[j].stage, stage) == 0 && strlen(cs->m[j].prefix) == pl &&
                          strncmp(cs->m[j].prefix, key, pl) == 0))
        j++;
    if (j == cs->n) {
        cs->m = reallocCheck(cs->m, (size_t)(cs->n + 1) * sizeof *cs->m);
        cmat *m = &cs->m[cs->n++];
        m->stage = strdupCheck(stage);
        m->prefix = strndup(key, pl);
        if (!m->prefix) m->prefix = strdupCheck("");
        m->k = 0;
        for (int a = 0; a < CM_MAX; a++)
            for (int c = 0; c < CM_MAX; c++) m->cell[a][c] = NAN;
    }
    cmat *m = &cs->m[j];
    m->cell[g][p] = col_double(st, 2);
    if (g + 1 > m->k) m->k = g + 1;
    if (p + 1 > m->k) m->k = p + 1;
}

static void cmats_free(cmats *cs)
{
    for (int i = 0; i < cs->n; i++) free(cs->m[i].stage), free(cs->m[i].prefix);
    free(cs->m);
}

/* Label names an evaluate stage records as params label_0, label_1, ... */
static char *label_name(lmp_store *s, int64_t id, const char *stage, int k)
{
    sqlite3_stmt *st;
    char *name = NULL;
    if (sqlite3_prepare_v2(lmp_store_db(s), "SELECT value FROM params WHERE run_id = ? AND stage = ? AND key = ?", -1,
                           &st, NULL) == SQLITE_OK) {
        char key[32];
        snprintf(key, sizeof key, "label_%d", k);
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_text(st, 2, stage, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, key, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) name = strdupCheck(col_text(st, 0));
        sqlite3_finalize(st);
    }
    return name ? name : lmp_strfmt("%d", k);
}

static void cm_html(lmp_sbuf *b, lmp_store *s, int64_t id, const cmat *m)
{
    double total = 0, mx = 0;
    for (int g = 0; g < m->k; g++)
        for (int p = 0; p < m->k; p++)
            if (isfinite(m->cell[g][p])) total += m->cell[g][p], mx = fmax(mx, m->cell[g][p]);
    lmp_sbuf_puts(b, "<table class=\"cm\">\n<caption>");
    html(b, m->stage);
    lmp_sbuf_puts(b, " · ");
    html(b, m->prefix);
    lmp_sbuf_puts(b, " (rows: gold, columns: predicted)</caption>\n<tr><th></th>");
    char **names = mallocCheck((size_t)m->k * sizeof *names);
    for (int k = 0; k < m->k; k++) {
        names[k] = label_name(s, id, m->stage, k);
        lmp_sbuf_puts(b, "<th>");
        html(b, names[k]);
        lmp_sbuf_puts(b, "</th>");
    }
    lmp_sbuf_puts(b, "</tr>\n");
    for (int g = 0; g < m->k; g++) {
        lmp_sbuf_puts(b, "<tr><th>");
        html(b, names[g]);
        lmp_sbuf_puts(b, "</th>");
        for (int p = 0; p < m->k; p++) {
            double v = m->cell[g][p];
            if (!isfinite(v)) {
                lmp_sbuf_puts(b, "<td class=\"absent\">—</td>");
                continue;
            }
            /* shade by count: the diagonal green, the rest red */
            double a = mx > 0 ? 0.1 + 0.6 * v / mx : 0;
            lmp_sbuf_printf(b, "<td style=\"background: rgba(%s, %.2f)\">%.0f<small>%.1f%%</small></td>",
                            g == p ? "44, 160, 44" : "214, 39, 40", a, v, total > 0 ? 100 * v / total : 0.0);
        }
        lmp_sbuf_puts(b, "</tr>\n");
    }
    lmp_sbuf_puts(b, "</table>\n");
    free_strs(names, m->k);
}

/* ---- text samples: small .txt artifacts */

typedef struct {
    char **stage, **name, **path;
    int64_t *bytes;
    int n;
} samples;

static void sample_row(sqlite3_stmt *st, void *ctx)
{
    samples *sm = ctx;
    const char *name = col_text(st, 1);
    size_t l = strlen(name);
    if (l < 4 || strcmp(name + l - 4, ".txt") != 0 || sqlite3_column_int64(st, 3) > SAMPLE_MAX_BYTES) return;
    int i = sm->n++;
    sm->stage = reallocCheck(sm->stage, (size_t)sm->n * sizeof(char *));
    sm->name = reallocCheck(sm->name, (size_t)sm->n * sizeof(char *));
    sm->path = reallocCheck(sm->path, (size_t)sm->n * sizeof(char *));
    sm->stage[i] = strdupCheck(col_text(st, 0));
    sm->name[i] = strdupCheck(name);
    sm->path[i] = strdupCheck(col_text(st, 2));
}

static void samples_free(samples *sm)
{
    free_strs(sm->stage, sm->n);
    free_strs(sm->name, sm->n);
    free_strs(sm->path, sm->n);
}

static void sample_html(lmp_sbuf *b, const char *stage, const char *name, const char *path)
{
    lmp_sbuf_puts(b, "<div class=\"sample\"><div class=\"cap\">");
    html(b, stage);
    lmp_sbuf_puts(b, " · ");
    html(b, name);
    lmp_sbuf_puts(b, "</div>");
    char *text;
    size_t len;
    if (lmp_read_file(path, SAMPLE_MAX_BYTES, &text, &len) != 0) {
        lmp_sbuf_puts(b, "<p class=\"none\">");
        html(b, lmp_errmsg());
        lmp_sbuf_puts(b, "</p></div>\n");
        return;
    }
    lmp_sbuf_puts(b, "<pre>");
    if (memchr(text, 0, len)) lmp_sbuf_puts(b, "(binary file)");
    else html(b, text);
    lmp_sbuf_puts(b, "</pre></div>\n");
    free(text);
}

/* ---- the page */

static const char REPORT_CSS[] =
    "body { font: 14px/1.4 sans-serif; margin: 1.5em; color: #222; }\n"
    "h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }\n"
    "table { border-collapse: collapse; margin: 0.5em 0; }\n"
    "th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: left; vertical-align: top; }\n"
    "th { background: #f3f3f3; }\n"
    "tr.diff td { background: #fff3b0; }\n"
    "td.absent { color: #aaa; }\n"
    ".runs { display: grid; gap: 1em; align-items: start; }\n"
    ".runs > div { min-width: 0; overflow-x: auto; }\n"
    ".runs h3 { font-size: 1em; margin: 0.2em 0; }\n"
    "svg.chart { display: block; box-sizing: border-box; max-width: 100%; height: auto; border: 1px solid #eee; }\n"
    "table.cm td { text-align: right; min-width: 4em; } table.cm small { color: #555; margin-left: 0.4em; }\n"
    "caption { text-align: left; font-weight: bold; padding: 2px 0; }\n"
    ".sample .cap { font-weight: bold; }\n"
    "pre { white-space: pre-wrap; background: #f8f8f8; border: 1px solid #eee; padding: 0.5em; max-height: 30em;"
    " overflow: auto; }\n"
    ".none { color: #888; font-style: italic; }\n";

/* A row of per-run cells. */
static void runs_open(lmp_sbuf *b, int n)
{
    lmp_sbuf_printf(b, "<div class=\"runs\" style=\"grid-template-columns: repeat(%d, minmax(0, 1fr))\">\n", n);
}

static const char REPORT_USAGE[] = "lmpipe report RUN... [--out FILE]";

static int build_report(lmp_store *s, const int64_t *ids, int n, lmp_sbuf *b, int *ncharts)
{
    int rc = 0;
    *ncharts = 0;
    lmp_sbuf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>lmpipe report: ");
    for (int r = 0; r < n; r++) lmp_sbuf_printf(b, "%srun %lld", r ? ", " : "", (long long)ids[r]);
    lmp_sbuf_printf(b, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>lmpipe report: ", REPORT_CSS);
    for (int r = 0; r < n; r++) lmp_sbuf_printf(b, "%srun %lld", r ? ", " : "", (long long)ids[r]);
    lmp_sbuf_puts(b, "</h1>\n<p>database: <code>");
    html(b, lmp_store_path(s));
    lmp_sbuf_puts(b, "</code></p>\n");

    /* the runs themselves, then parameters: one column per run */
    lmp_sbuf_puts(b, "<h2>Runs</h2>\n");
    rc = add_table(b, s, ids, n,
                   "SELECT '', 'experiment', e.name FROM runs r JOIN experiments e ON e.id = r.experiment_id WHERE r.id = ?"
                   " UNION ALL SELECT '', 'pipeline', pipeline FROM runs WHERE id = ?"
                   " UNION ALL SELECT '', 'status', status FROM runs WHERE id = ?"
                   " UNION ALL SELECT '', 'seed', seed FROM runs WHERE id = ?"
                   " UNION ALL SELECT '', 'started', started_at FROM runs WHERE id = ?"
                   " UNION ALL SELECT '', 'seconds', duration_s FROM run_summary WHERE run_id = ?"
                   " UNION ALL SELECT '', 'lmpipe', lmpipe_version FROM runs WHERE id = ?"
                   " UNION ALL SELECT '', 'error', error FROM runs WHERE id = ? AND error IS NOT NULL",
                   param_row, 0, NULL, "", 0);
    lmp_sbuf_puts(b, "<h2>Parameters</h2>\n<p>Rows that differ between the runs are highlighted.</p>\n");
    if (rc == 0)
        rc = add_table(b, s, ids, n,
                       "SELECT p.stage, p.key, p.value FROM params p JOIN stages s ON s.run_id = p.run_id AND"
                       " s.stage = p.stage WHERE p.run_id = ? ORDER BY s.position, p.key",
                       param_row, 0, "stage", "parameter", n > 1);
    lmp_sbuf_puts(b, "<h2>Final metrics</h2>\n<p>The last value logged of each metric (confusion counts below).</p>\n");
    if (rc == 0) rc = add_table(b, s, ids, n, LATEST_SQL, metric_row, 1, "stage", "metric", 0);

    /* comparison chart */
    finals f = {0};
    if (rc == 0) rc = load_finals(s, ids, n, NULL, &f);
    if (rc == 0 && f.n > 0) {
        lmp_sbuf_puts(b, "<h2>Comparison</h2>\n");
        char *svg = compare_svg(&f, ids, n);
        lmp_sbuf_puts(b, svg);
        free(svg);
        (*ncharts)++;
    }
    finals_free(&f);

    /* curves: one row per (stage, group), one cell per run */
    curves *cs = callocCheck((size_t)n, sizeof *cs);
    chart **ch = callocCheck((size_t)n, sizeof *ch);
    int *nch = callocCheck((size_t)n, sizeof *nch);
    for (int r = 0; r < n && rc == 0; r++) {
        rc = load_curves(s, ids[r], NULL, &cs[r]);
        if (rc == 0) nch[r] = build_charts(&cs[r], &ch[r]);
    }
    lmp_sbuf_puts(b, "<h2>Curves</h2>\n");
    int any = 0;
    for (int r = 0; r < n && rc == 0; r++) {
        for (int c = 0; c < nch[r]; c++) {
            /* the first run having this chart lays out the row */
            int first = 1;
            for (int q = 0; q < r && first; q++)
                for (int d = 0; d < nch[q] && first; d++)
                    if (strcmp(ch[q][d].stage, ch[r][c].stage) == 0 && strcmp(ch[q][d].group, ch[r][c].group) == 0)
                        first = 0;
            if (!first) continue;
            any = 1;
            runs_open(b, n);
            for (int q = 0; q < n; q++) {
                lmp_sbuf_puts(b, "<div>");
                int found = 0;
                for (int d = 0; d < nch[q] && !found; d++)
                    if (strcmp(ch[q][d].stage, ch[r][c].stage) == 0 && strcmp(ch[q][d].group, ch[r][c].group) == 0) {
                        char *svg = chart_svg(ids[q], &ch[q][d]);
                        lmp_sbuf_puts(b, svg);
                        free(svg);
                        (*ncharts)++;
                        found = 1;
                    }
                if (!found) lmp_sbuf_printf(b, "<p class=\"none\">run %lld: no such curves</p>", (long long)ids[q]);
                lmp_sbuf_puts(b, "</div>\n");
            }
            lmp_sbuf_puts(b, "</div>\n");
        }
    }
    if (!any) lmp_sbuf_puts(b, "<p class=\"none\">no metrics logged per step</p>\n");
    for (int r = 0; r < n; r++) {
        charts_free(ch[r], nch[r]);
        curves_free(&cs[r]);
    }
    free(cs), free(ch), free(nch);

    /* confusion matrices, text samples and timings: one column per run */
    lmp_sbuf_puts(b, "<h2>Confusion matrices</h2>\n");
    runs_open(b, n);
    for (int r = 0; r < n && rc == 0; r++) {
        cmats cm = {0};
        rc = query(s, LATEST_SQL, ids[r], cm_row, &cm);
        lmp_sbuf_printf(b, "<div><h3>run %lld</h3>\n", (long long)ids[r]);
        for (int i = 0; i < cm.n; i++) cm_html(b, s, ids[r], &cm.m[i]);
        if (cm.n == 0) lmp_sbuf_puts(b, "<p class=\"none\">none</p>");
        lmp_sbuf_puts(b, "</div>\n");
        cmats_free(&cm);
    }
    lmp_sbuf_puts(b, "</div>\n<h2>Text samples</h2>\n");
    runs_open(b, n);
    for (int r = 0; r < n && rc == 0; r++) {
        samples sm = {0};
        rc = query(s, "SELECT stage, name, path, bytes FROM artifacts WHERE run_id = ? ORDER BY stage, name", ids[r],
                   sample_row, &sm);
        lmp_sbuf_printf(b, "<div><h3>run %lld</h3>\n", (long long)ids[r]);
        for (int i = 0; i < sm.n; i++) sample_html(b, sm.stage[i], sm.name[i], sm.path[i]);
        if (sm.n == 0) lmp_sbuf_puts(b, "<p class=\"none\">none</p>");
        lmp_sbuf_puts(b, "</div>\n");
        samples_free(&sm);
    }
    lmp_sbuf_puts(b, "</div>\n<h2>Stage timings</h2>\n");
    if (rc == 0)
        rc = add_table(b, s, ids, n,
                       "SELECT stage, plugin, seconds, status FROM stages WHERE run_id = ? ORDER BY position",
                       timing_row, 0, "stage", "plugin", 0);
    lmp_sbuf_puts(b, "</body>\n</html>\n");
    return rc;
}

int lmp_cli_report(int argc, char **argv)
{
    if (lmp_cli_wants_help(argc, argv)) {
        printf("usage: %s\n\n"
               "Write one self-contained HTML page (inline SVG and CSS, nothing fetched) comparing\n"
               "the runs side by side: parameters (differences highlighted), final metrics, a\n"
               "comparison chart, metric curves, confusion matrices (metrics *_cm_GOLD_PRED),\n"
               "small .txt artifacts (e.g. generated samples) and stage timings.\n\n"
               "  --out FILE  write the page to FILE (atomically) instead of standard output\n",
               REPORT_USAGE);
        return 0;
    }
    int64_t *ids = mallocCheck((size_t)argc * sizeof *ids);
    int n = 0, rc = 0;
    const char *out = NULL;
    lmp_store *s = NULL;
    lmp_sbuf b = {0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0) {
            if (i + 1 >= argc) {
                rc = usage_error("report", REPORT_USAGE, argv[i], " needs a value");
                goto done;
            }
            out = argv[++i];
        } else if (lmp_cli_parse_id(argv[i], &ids[n]) == 0) {
            n++;
        } else {
            rc = usage_error("report", REPORT_USAGE, argv[i][0] == '-' ? "unknown option " : "not a run id: ",
                             argv[i]);
            goto done;
        }
    }
    if (n == 0) {
        rc = usage_error("report", REPORT_USAGE, "no run ids given", "");
        goto done;
    }
    if ((rc = open_runs("report", ids, n, &s)) != 0) goto done;
    int ncharts;
    if (build_report(s, ids, n, &b, &ncharts) != 0) {
        rc = lmp_cli_fail("report", 1);
        goto done;
    }
    if (out) {
        if (lmp_write_file_atomic(out, b.s, b.len) != 0) rc = lmp_cli_fail("report", 1);
        else fprintf(stderr, "lmpipe report: wrote %s (%d charts)\n", out, ncharts);
    } else if (fwrite(b.s, 1, b.len, stdout) != b.len || fflush(stdout) != 0) {
        lmp_error("standard output: %s", strerror(errno));
        rc = lmp_cli_fail("report", 1);
    }
done:
    lmp_sbuf_free(&b);
    lmp_store_close(s);
    free(ids);
    return rc;
}
