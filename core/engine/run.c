/*
 * run.c — the pipeline executor and the API a running stage sees
 * (lmp_param_*, lmp_input/lmp_output, lmp_log_*, ... from lmpipe.h).
 *
 * Order of a run: record the run and all its stages as 'pending', then for
 * each stage: record its resolved parameters, compute its cache key, reuse
 * cached outputs or run it, store outputs of cacheable stages, record the
 * outcome.  The store is written as things happen, so a crash loses nothing
 * that was logged.
 *
 * Under mpirun (dist.h) every rank runs every stage; only rank 0 has the
 * store (the others get NULL and record nothing), writes artifacts into the
 * run's folder and stores cache entries.  The others work in a private
 * scratch folder, reuse a cache entry when rank 0 does (read from the same
 * data home, which must be shared), and a failure on any rank is recorded as
 * the run's failure before MPI_Abort ends every rank.
 */
#include "config.h"

#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckptdir.h"
#include "dist.h"
#include "paths.h"
#include "progress.h"
#include "run.h"
#include "types.h"
#include "util.h"

typedef struct {
    const lmp_type *type;
    void *data;
    char digest[65];
    int present;
    const char *taken_by; /* stage that took ownership with lmp_input_take */
} lmp_value;

typedef struct {
    lmp_pipeline *p;
    lmp_store *store;
    const lmp_run_opts *opts;
    int64_t run_id;
    char *home;
    char *scratch;       /* MPI ranks other than 0: their private work folder */
    lmp_value **outputs; /* [stage][produced port] */
} lmp_runctx;

struct lmp_stage {
    lmp_runctx *run;
    int index;
    lmp_pstage *ps;
    const lmp_stage_def *def;
    char key[65]; /* provenance / cache key */
    char *workdir;
    char *cachedir;
    lmp_progress_state progress;
    char *oom_where;       /* "stage 'NAME' (TYPE)", for a failed allocation */
    struct lmp_stage *outer; /* the stage that started this one's run (lmp_subrun) */
};

/* ------------------------------------------------------------ signals */

static void on_signal(int sig)
{
    if (lmp_interrupt_note(sig)) _exit(128 + sig); /* second signal: stop now; the store reaps the run later */
}

/* ------------------------------------------------------------ parameters */

static lmp_param_value *value_of(lmp_stage *st, const char *key, int type_ok_mask)
{
    for (int i = 0; i < st->ps->nvalues; i++) {
        lmp_param_value *v = &st->ps->values[i];
        if (strcmp(v->spec->key, key) == 0) {
            if (!(type_ok_mask & (1 << v->spec->type))) {
                fprintf(stderr, "lmpipe: bug in stage '%s' (%s): parameter '%s' read with the wrong type\n",
                        st->ps->name, st->def->name, key);
                abort();
            }
            return v;
        }
    }
    fprintf(stderr, "lmpipe: bug in stage '%s' (%s): reads undeclared parameter '%s'\n", st->ps->name,
            st->def->name, key);
    abort();
}

int64_t lmp_param_int(lmp_stage *st, const char *key) { return value_of(st, key, 1 << LMP_INT)->i; }
double lmp_param_float(lmp_stage *st, const char *key)
{
    return value_of(st, key, 1 << LMP_FLOAT | 1 << LMP_INT)->f;
}
int lmp_param_bool(lmp_stage *st, const char *key) { return (int)value_of(st, key, 1 << LMP_BOOL)->i; }
const char *lmp_param_str(lmp_stage *st, const char *key)
{
    return value_of(st, key, 1 << LMP_STRING | 1 << LMP_ENUM | 1 << LMP_PATH | 1 << LMP_FILES)->text;
}
int lmp_param_is_set(lmp_stage *st, const char *key) { return value_of(st, key, ~0)->is_set; }

int lmp_param_files(lmp_stage *st, const char *key, char ***files, int *n)
{
    lmp_param_value *v = value_of(st, key, 1 << LMP_FILES);
    if (lmp_files_resolve(v->spec, v->text, files, n) != 0) return -1;
    /* what '' stood for, or the list as given, in the store */
    lmp_sbuf list = {0};
    for (int i = 0; i < *n; i++) {
        if (i) lmp_sbuf_putn(&list, ",", 1);
        lmp_sbuf_putn(&list, (*files)[i], strlen((*files)[i]));
    }
    char *name = lmp_strfmt("resolved_%s", key);
    lmp_log_param(st, name, list.s);
    free(name);
    free(list.s);
    return 0;
}

/* ------------------------------------------------------------ artifacts */

static int port_of(const lmp_port *ports, const char *name)
{
    for (int i = 0; ports && ports[i].name; i++)
        if (strcmp(ports[i].name, name) == 0) return i;
    return -1;
}

static lmp_value *input_value(lmp_stage *st, const char *port)
{
    int i = port_of(st->def->consumes, port);
    if (i < 0) {
        fprintf(stderr, "lmpipe: bug in stage '%s' (%s): reads undeclared input '%s'\n", st->ps->name,
                st->def->name, port);
        abort();
    }
    lmp_binding b = st->ps->inputs[i];
    if (b.stage < 0) return NULL;
    lmp_value *v = &st->run->outputs[b.stage][b.port];
    /* an optional input wired by type to a value another stage has taken
     * over is simply absent (an explicit @port=stage is an error, below) */
    if (v->taken_by && b.automatic && st->def->consumes[i].optional) return NULL;
    return v->present || v->taken_by ? v : NULL;
}

void *lmp_input(lmp_stage *st, const char *port)
{
    lmp_value *v = input_value(st, port);
    return v && v->present ? v->data : NULL;
}

void *lmp_input_take(lmp_stage *st, const char *port)
{
    lmp_value *v = input_value(st, port);
    if (!v || !v->present) return NULL;
    v->present = 0;
    v->taken_by = st->ps->name;
    return v->data;
}

const char *lmp_input_digest(lmp_stage *st, const char *port)
{
    lmp_value *v = input_value(st, port);
    return v ? v->digest : NULL;
}

static lmp_value *output_value(lmp_stage *st, const char *port)
{
    int i = port_of(st->def->produces, port);
    return i < 0 ? NULL : &st->run->outputs[st->index][i];
}

static void output_default_digest(lmp_stage *st, const char *port, char out[65])
{
    lmp_sha256 h;
    lmp_sha256_init(&h);
    lmp_sha256_update(&h, st->key, 64);
    lmp_sha256_update(&h, "/", 1);
    lmp_sha256_update(&h, port, strlen(port));
    lmp_sha256_final(&h, out);
}

int lmp_output(lmp_stage *st, const char *port, void *value)
{
    lmp_value *v = output_value(st, port);
    if (!v) return lmp_error("stage '%s' (%s) has no output port '%s'", st->ps->name, st->def->name, port);
    if (v->present && v->type->free) v->type->free(v->data);
    v->data = value;
    v->present = 1;
    output_default_digest(st, port, v->digest);
    return 0;
}

int lmp_output_digest(lmp_stage *st, const char *port, const char *digest)
{
    lmp_value *v = output_value(st, port);
    if (!v || !v->present) return lmp_error("stage '%s': output '%s' was not produced", st->ps->name, port);
    snprintf(v->digest, sizeof v->digest, "%s", digest);
    return 0;
}

/* ------------------------------------------------------------ context */

const char *lmp_stage_name(lmp_stage *st) { return st->ps->name; }
int64_t lmp_run_id(lmp_stage *st) { return st->run->run_id; }
uint64_t lmp_seed(lmp_stage *st) { return st->run->opts->seed; }

const char *lmp_workdir(lmp_stage *st)
{
    if (!st->workdir) {
        if (st->run->scratch) st->workdir = lmp_strfmt("%s/%s", st->run->scratch, st->ps->name);
        else st->workdir = lmp_strfmt("%s/runs/%lld/%s", st->run->home, (long long)st->run->run_id, st->ps->name);
        if (lmp_mkdirs(st->workdir) != 0) fprintf(stderr, "lmpipe: %s\n", lmp_errmsg());
    }
    return st->workdir;
}

const char *lmp_cachedir(lmp_stage *st)
{
    if (!st->cachedir) {
        st->cachedir = lmp_strfmt("%s/cache", st->run->home);
        if (lmp_mkdirs(st->cachedir) != 0) fprintf(stderr, "lmpipe: %s\n", lmp_errmsg());
    }
    return st->cachedir;
}

int lmp_log_metric(lmp_stage *st, const char *key, int64_t step, double value)
{
    return lmp_store_metric(st->run->store, st->run->run_id, st->ps->name, key, step, value);
}

int lmp_log_param(lmp_stage *st, const char *key, const char *value)
{
    return lmp_store_param(st->run->store, st->run->run_id, st->ps->name, key, value);
}

int lmp_log_artifact(lmp_stage *st, const char *name, const char *path)
{
    char hex[65];
    int64_t bytes;
    if (!st->run->store) return 0; /* an MPI rank other than 0 */
    if (lmp_sha256_path(path, hex, &bytes) != 0) return -1;
    return lmp_store_artifact(st->run->store, st->run->run_id, st->ps->name, name, path, hex, bytes);
}

static void vmessage(lmp_stage *st, const char *kind, const char *fmt, va_list ap)
{
    lmp_progress_clear(&st->progress);
    fprintf(stderr, "[%s] %s", st->ps->name, kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void lmp_info(lmp_stage *st, const char *fmt, ...)
{
    if (lmp_dist_rank() != 0) return; /* rank 0 speaks for all */
    va_list ap;
    va_start(ap, fmt);
    vmessage(st, "", fmt, ap);
    va_end(ap);
}

void lmp_warn(lmp_stage *st, const char *fmt, ...)
{
    /* every rank runs the same stages on the same data, so rank 0's warnings
     * are the others' too; what goes wrong on one rank alone is an error */
    if (lmp_dist_rank() != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vmessage(st, "warning: ", fmt, ap);
    va_end(ap);
}

void lmp_progress(lmp_stage *st, const char *what, int64_t done, int64_t total)
{
    if (lmp_dist_rank() != 0) return;
    lmp_progress_update(&st->progress, st->ps->name, what, done, total);
}

/* ------------------------------------------------------------ sub-runs */

static char *find_pipeline(lmp_stage *st, const char *name)
{
    if (name[0] == '/') return strdupCheck(name);
    char *dir = strdupCheck(st->ps->file);
    char *beside = lmp_strfmt("%s/%s", dirname(dir), name);
    free(dir);
    if (access(beside, R_OK) == 0) return beside;
    free(beside);
    char *rel = lmp_strfmt("pipelines/%s", name);
    char *p = lmp_running_from_build_tree() ? lmp_strfmt("%s/%s", LMP_SRCDIR, rel) : NULL;
    if (!p || access(p, R_OK) != 0) {
        free(p);
        p = lmp_strfmt("%s/%s", LMP_PKGDATADIR, rel);
    }
    free(rel);
    return p;
}

int lmp_subrun(lmp_stage *st, const char *pipeline, const char *stage, const char *port, void **value)
{
    *value = NULL;
    char *path = find_pipeline(st, pipeline);
    lmp_pipeline *p;
    if (lmp_pipeline_parse_file(path, NULL, &p) != 0) {
        free(path);
        return -1;
    }
    free(path);
    if (lmp_pipeline_check(p) != 0) {
        lmp_pipeline_free(p);
        return -1;
    }
    lmp_run_opts o = *st->run->opts;
    o.experiment = "subruns";
    o.take_stage = stage;
    o.take_port = port;
    o.taken = value;
    o.taken_digest = NULL;
    int64_t id = 0;
    lmp_info(st, "running %s as a run of its own", p->path);
    int rc = lmp_run_pipeline(p, st->run->store, &o, &id);
    lmp_pipeline_free(p);
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    lmp_log_param(st, "subrun", ids);
    if (rc != 0) return lmp_error("sub-run %lld (%s) failed: %s", (long long)id, pipeline, lmp_errmsg());
    if (!*value) return lmp_error("sub-run %lld (%s) has no output %s.%s", (long long)id, pipeline, stage, port);
    return 0;
}

/* ------------------------------------------------------------ executor */

char *lmp_data_home(const char *db_path)
{
    const char *env = getenv("LMPIPE_HOME");
    if (env && *env) return strdupCheck(env);
    char *copy = strdupCheck(db_path);
    char *home = lmp_strfmt("%s/lmpipe-data", dirname(copy));
    free(copy);
    return home;
}

/* Files up to this size are keyed by content, larger ones by size and
 * modification time: hashing a 6 GB checkpoint at every run would cost more
 * than the cache saves. */
#define CONTENT_KEYED_BYTES (64 << 20)

/* What a path parameter names, for the stage key: a file up to
 * CONTENT_KEYED_BYTES by content, a larger one by size and modification
 * time; a folder by its own size and time and each entry's (content for a
 * file up to that size too: the base checkpoint of a classifier, say, so a
 * replaced base never reuses what was computed over the old one).  A path
 * that does not exist adds nothing. */
static void path_fingerprint(lmp_sha256 *h, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return;
    if (S_ISREG(st.st_mode) && st.st_size <= CONTENT_KEYED_BYTES) {
        char hex[65];
        if (lmp_sha256_file_memo(path, hex) == 0) lmp_sha256_update(h, hex, 64);
        return;
    }
    char buf[128];
    int n = snprintf(buf, sizeof buf, "%lld:%lld.%09ld", (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                     st.st_mtim.tv_nsec);
    lmp_sha256_update(h, buf, (size_t)n);
    if (!S_ISDIR(st.st_mode)) return;
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    /* order-independent: xor of per-entry hashes */
    unsigned char acc[32] = {0};
    while ((e = readdir(d))) {
        char *full = lmp_strfmt("%s/%s", path, e->d_name);
        struct stat es;
        if (e->d_name[0] != '.' && stat(full, &es) == 0) {
            char line[512], hex[65];
            int k = snprintf(line, sizeof line, "%s:%lld:%lld.%09ld", e->d_name, (long long)es.st_size,
                             (long long)es.st_mtim.tv_sec, es.st_mtim.tv_nsec);
            if (S_ISREG(es.st_mode) && es.st_size <= CONTENT_KEYED_BYTES && lmp_sha256_file_memo(full, hex) == 0)
                k = snprintf(line, sizeof line, "%s:%s", e->d_name, hex);
            lmp_sha256 eh;
            lmp_sha256_init(&eh);
            lmp_sha256_update(&eh, line, (size_t)k);
            lmp_sha256_final(&eh, hex);
            for (int i = 0; i < 32; i++) {
                unsigned int byte;
                sscanf(hex + 2 * i, "%2x", &byte);
                acc[i] ^= (unsigned char)byte;
            }
        }
        free(full);
    }
    closedir(d);
    lmp_sha256_update(h, acc, sizeof acc);
}

/* What an LMP_FILES parameter names, for the stage key: each file's
 * content, in order ('' resolved to the declared default files, so the
 * corpus in the data folder counts as much as one named explicitly).  A
 * file that cannot be read adds a mark; the stage reports it when it runs. */
static void files_fingerprint(lmp_sha256 *h, const lmp_param *spec, const char *text)
{
    char **files, hex[65];
    int n;
    if (lmp_files_resolve(spec, text, &files, &n) != 0) {
        lmp_sha256_update(h, "?", 1);
        return;
    }
    for (int i = 0; i < n; i++) {
        if (lmp_sha256_file_memo(files[i], hex) == 0) lmp_sha256_update(h, hex, 64);
        else lmp_sha256_update(h, "-", 1);
    }
    lmp_files_free(files);
}

/* The stage's key: what it is, how it is set, what it reads. */
static void stage_key(lmp_stage *st)
{
    lmp_sha256 h;
    lmp_sha256_init(&h);
    const lmp_stage_entry *e = st->ps->entry;
    char *head = lmp_strfmt("lmpipe-stage-v2\n%s\n%s\n%s\n", e->plugin->name, e->plugin->version, e->def->name);
    lmp_sha256_update(&h, head, strlen(head));
    free(head);
    for (int i = 0; i < st->ps->nvalues; i++) {
        lmp_param_value *v = &st->ps->values[i];
        if (!v->is_set && lmp_param_deprecated(v->spec)) continue; /* an old spelling not used */
        lmp_sha256_update(&h, v->spec->key, strlen(v->spec->key) + 1);
        lmp_sha256_update(&h, v->text, strlen(v->text) + 1);
        /* a parameter naming files or a folder: their content counts, so an
         * edited corpus or checkpoint is not served from the cache */
        if (v->spec->type == LMP_PATH) path_fingerprint(&h, v->text);
        else if (v->spec->type == LMP_FILES) files_fingerprint(&h, v->spec, v->text);
    }
    for (int i = 0; st->def->consumes && st->def->consumes[i].name; i++) {
        lmp_value *v = input_value(st, st->def->consumes[i].name);
        lmp_sha256_update(&h, st->def->consumes[i].name, strlen(st->def->consumes[i].name) + 1);
        lmp_sha256_update(&h, v ? v->digest : "-", v ? 64 : 1);
    }
    if (st->def->flags & LMP_STAGE_SEEDED) {
        char seed[32];
        snprintf(seed, sizeof seed, "seed=%llu", (unsigned long long)st->run->opts->seed);
        lmp_sha256_update(&h, seed, strlen(seed));
    }
    lmp_sha256_final(&h, st->key);
}

static int cacheable(const lmp_stage_def *d)
{
    if (!(d->flags & LMP_STAGE_CACHEABLE)) return 0;
    for (int i = 0; d->produces && d->produces[i].name; i++) {
        const lmp_type *t = lmp_type_find(d->produces[i].type);
        if (!t || !t->save || !t->load) return 0;
    }
    return 1;
}

/* Load every output from <cache>/<key>/<port>; 1 = hit, 0 = miss. */
static int cache_load(lmp_stage *st)
{
    char *dir = lmp_strfmt("%s/%s", lmp_cachedir(st), st->key);
    char *done = lmp_strfmt("%s/complete", dir);
    int hit = access(done, F_OK) == 0;
    for (int i = 0; hit && st->def->produces[i].name; i++) {
        const lmp_port *port = &st->def->produces[i];
        const lmp_type *t = lmp_type_find(port->type);
        char *path = lmp_strfmt("%s/%s", dir, port->name);
        char *dpath = lmp_strfmt("%s.digest", path), *digest = NULL;
        size_t dlen = 0;
        void *data;
        if (lmp_read_file(dpath, 64, &digest, &dlen) != 0 || dlen != 64) {
            lmp_warn(st, "cache entry %s has no digest, recomputing", dir);
            hit = 0;
        } else if (t->load(path, &data) != 0) {
            lmp_warn(st, "cache entry %s unusable, recomputing: %s", path, lmp_errmsg());
            hit = 0;
        } else {
            lmp_output(st, port->name, data);
            lmp_output_digest(st, port->name, digest); /* as the producing run set it */
            lmp_log_artifact(st, port->name, path);
        }
        free(digest);
        free(dpath);
        free(path);
    }
    free(done);
    free(dir);
    return hit;
}

/* Save outputs into a temporary directory, then rename it into place:
 * a cache entry is complete or absent. */
static int cache_store(lmp_stage *st)
{
    char *dir = lmp_strfmt("%s/%s", lmp_cachedir(st), st->key);
    char *tmp = lmp_temp_dir(dir); /* a fresh name: see lmp_temp_file */
    int rc = tmp ? 0 : -1;
    for (int i = 0; rc == 0 && st->def->produces[i].name; i++) {
        const lmp_port *port = &st->def->produces[i];
        lmp_value *v = output_value(st, port->name);
        char *path = lmp_strfmt("%s/%s", tmp, port->name), *dpath = lmp_strfmt("%s.digest", path);
        rc = v->type->save(v->data, path);
        if (rc == 0) rc = lmp_write_file_atomic(dpath, v->digest, 64);
        free(dpath);
        free(path);
    }
    if (rc == 0) {
        char *done = lmp_strfmt("%s/complete", tmp);
        rc = lmp_write_file_atomic(done, st->key, 64);
        free(done);
    }
    if (rc == 0 && rename(tmp, dir) != 0) {
        /* another process stored the same entry first: theirs is as good */
        if (access(dir, F_OK) != 0) rc = lmp_error("%s: cannot store cache entry", dir);
    }
    if (tmp) lmp_remove_tree(tmp);
    for (int i = 0; rc == 0 && st->def->produces[i].name; i++) {
        char *path = lmp_strfmt("%s/%s", dir, st->def->produces[i].name);
        lmp_log_artifact(st, st->def->produces[i].name, path);
        free(path);
    }
    free(tmp);
    free(dir);
    return rc;
}

/* Whether to reuse the cache entry, decided by rank 0 for all ranks; the
 * other ranks then load the same entry (the data home is shared). */
static int cache_hit(lmp_stage *st)
{
    long hit = lmp_dist_writer() ? cache_load(st) : 0;
    lmp_dist_bcast_long(&hit);
    if (hit && !lmp_dist_writer() && !cache_load(st))
        lmp_dist_abort(lmp_strfmt("cache entry %s/%s, which rank 0 reuses, cannot be read here: "
                                  "the data home (LMPIPE_HOME) must be shared by all ranks",
                                  lmp_cachedir(st), st->key),
                       1);
    return (int)hit;
}

/* Out of memory while a stage runs (util.h, lmp_oom_set): record the stage
 * and its run failed -- and the runs that started it, for a sub-run --
 * rather than leave them 'running' for the next command to call
 * interrupted.  Small SQLite allocations only, after the big one failed. */
static int on_oom(const char *msg, void *arg)
{
    lmp_stage *st = arg;
    for (lmp_stage *s = st; s; s = s->outer) {
        lmp_store *store = s->run->store, *own = NULL;
        /* an MPI rank without the store opens it, as dist_fail does */
        if (!store && s->run->opts->store_path && lmp_store_open(s->run->opts->store_path, &own) == 0) store = own;
        lmp_store_mark_failed(store, s->run->run_id, s->ps->name, msg);
        lmp_store_close(own);
    }
    fprintf(stderr, "lmpipe run: run %lld failed: %s\n", (long long)st->run->run_id, msg);
    return 1;
}

int lmp_stage_check(lmp_pstage *ps)
{
    const lmp_stage_def *d = ps->entry->def;
    if (!d->check) return 0;
    lmp_stage st = {0}; /* no run: parameters only */
    st.index = -1;
    st.ps = ps;
    st.def = d;
    return d->check(&st);
}

static int run_stage(lmp_runctx *rc, int i, const char **status)
{
    lmp_pstage *ps = &rc->p->stages[i];
    lmp_stage st = {0};
    st.run = rc;
    st.index = i;
    st.ps = ps;
    st.def = ps->entry->def;
    *status = "failed";
    for (int k = 0; k < ps->nvalues; k++)
        if (lmp_store_param(rc->store, rc->run_id, ps->name, ps->values[k].spec->key, ps->values[k].text) != 0)
            return -1;
    for (int k = 0; st.def->consumes && st.def->consumes[k].name; k++) {
        lmp_binding b = ps->inputs[k];
        if (b.stage < 0) continue;
        lmp_value *v = &rc->outputs[b.stage][b.port];
        if (v->taken_by && b.automatic && st.def->consumes[k].optional) continue;
        if (v->taken_by)
            return lmp_error("stage '%s' needs input '%s' from stage '%s', but stage '%s' took it over; "
                             "wire '%s' to '%s' instead",
                             ps->name, st.def->consumes[k].name, rc->p->stages[b.stage].name, v->taken_by,
                             st.def->consumes[k].name, v->taken_by);
        if (!v->present && !st.def->consumes[k].optional)
            return lmp_error("stage '%s' needs input '%s', which stage '%s' did not produce", ps->name,
                             st.def->consumes[k].name, rc->p->stages[b.stage].name);
    }
    stage_key(&st);
    for (int k = 0; k < ps->nvalues; k++)
        if (ps->values[k].is_set && lmp_param_deprecated(ps->values[k].spec))
            lmp_warn(&st, "parameter '%s' is %s", ps->values[k].spec->key, ps->values[k].spec->doc);
    int use_cache = cacheable(st.def);
    if (lmp_store_stage_begin(rc->store, rc->run_id, ps->name, use_cache ? st.key : NULL) != 0) return -1;
    double t0 = lmp_now();
    int r = 0;
    lmp_oom_hook prev_hook;
    void *prev_arg;
    const char *prev_where;
    st.oom_where = lmp_strfmt("stage '%s' (%s)", ps->name, ps->type);
    lmp_oom_set(on_oom, &st, st.oom_where, &prev_hook, &prev_arg, &prev_where);
    st.outer = prev_hook == on_oom ? prev_arg : NULL;
    if (use_cache && !rc->opts->no_cache && cache_hit(&st)) {
        lmp_info(&st, "reusing cached result %.12s", st.key);
        *status = "cached";
    } else {
        r = st.def->run(&st);
        lmp_progress_clear(&st.progress);
        if (r == 0 && lmp_interrupted()) r = lmp_error("interrupted");
        if (r != 0) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", *lmp_errmsg() ? lmp_errmsg() : "failed without a message");
            lmp_error("stage '%s' (%s): %s", ps->name, ps->type, msg);
        }
        for (int k = 0; r == 0 && st.def->produces && st.def->produces[k].name; k++) {
            lmp_value *v = &rc->outputs[i][k];
            if (!v->present && !st.def->produces[k].optional)
                r = lmp_error("stage '%s' (%s) finished without producing its output '%s'", ps->name,
                              ps->type, st.def->produces[k].name);
        }
        if (r == 0 && use_cache && lmp_dist_writer() && cache_store(&st) != 0)
            lmp_warn(&st, "could not cache the result: %s", lmp_errmsg());
        *status = r == 0 ? "finished" : lmp_interrupted() ? "interrupted" : "failed";
    }
    lmp_oom_set(prev_hook, prev_arg, prev_where, NULL, NULL, NULL);
    free(st.oom_where);
    char err[1024];
    snprintf(err, sizeof err, "%s", lmp_errmsg());
    lmp_store_stage_end(rc->store, rc->run_id, ps->name, *status, lmp_now() - t0);
    free(st.workdir);
    free(st.cachedir);
    if (r != 0) lmp_error("%s", err);
    return r;
}

/* The data home takes every artifact and cache entry: one that cannot be
 * written is found before the first stage runs, naming the folder and the
 * system's reason, not hours later at the first file a stage writes. */
static int home_writable(const char *home)
{
    static const char *const sub[] = {"", "/runs", "/cache"};
    const char *env = getenv("LMPIPE_HOME");
    const char *what = env && *env ? "data home (LMPIPE_HOME)" : "data home";
    for (int i = 0; i < 3; i++) {
        char *dir = lmp_strfmt("%s%s", home, sub[i]), *probe = lmp_strfmt("%s/.write-test", dir), *tmp;
        int rc = lmp_mkdirs(dir), fd = -1;
        if (rc != 0) {
            lmp_error("%s %s is not writable: %s", what, home, lmp_errmsg());
        } else if ((fd = lmp_temp_file(probe, &tmp)) < 0) {
            rc = lmp_error("%s %s is not writable: %s: cannot create a file: %s", what, home, dir, strerror(errno));
        } else {
            close(fd);
            unlink(tmp);
            free(tmp);
        }
        free(probe);
        free(dir);
        if (rc != 0) return -1;
    }
    return 0;
}

/* Record a failure on this rank as the run's (rank 0 already has; another
 * rank opens the store itself), then MPI_Abort every rank. */
static void dist_fail(lmp_runctx *rc, const char *stage, const char *err)
{
    char *msg = lmp_strfmt("rank %d of %d: %s", lmp_dist_rank(), lmp_dist_size(), err);
    lmp_store *own = NULL;
    if (!rc->store && rc->opts->store_path && access(rc->opts->store_path, F_OK) == 0 &&
        lmp_store_open(rc->opts->store_path, &own) == 0) {
        lmp_store_mark_failed(own, rc->run_id, stage, msg);
        lmp_store_close(own);
    }
    free(msg);
    if (rc->scratch) lmp_remove_tree(rc->scratch);
    lmp_dist_abort(err, 1);
}

int lmp_run_pipeline(lmp_pipeline *p, lmp_store *store, const lmp_run_opts *opts, int64_t *run_id)
{
    lmp_runctx rc = {0};
    rc.p = p;
    rc.store = store;
    rc.opts = opts;
    rc.home = lmp_data_home(store ? lmp_store_path(store) : opts->store_path);
    if (!store && opts->store_path) lmp_protect_file(opts->store_path); /* as lmp_store_open does */
    if (store && lmp_store_begin_run(store, opts->experiment ? opts->experiment : "default", p->path, p->text,
                                     opts->seed, &rc.run_id) != 0) {
        if (lmp_dist_size() > 1) lmp_dist_abort(lmp_errmsg(), 1);
        free(rc.home);
        return -1;
    }
    if (opts->sweep_id > 0 && lmp_store_set_sweep(store, rc.run_id, opts->sweep_id) != 0)
        fprintf(stderr, "lmpipe: warning: run %lld not tagged with sweep %lld: %s\n", (long long)rc.run_id,
                (long long)opts->sweep_id, lmp_errmsg());
    if (lmp_dist_size() > 1) {
        long id = (long)rc.run_id;
        lmp_dist_bcast_long(&id);
        rc.run_id = id;
        lmp_store_set_world_size(store, rc.run_id, lmp_dist_size());
        if (!store) {
            const char *tmp = getenv("TMPDIR");
            rc.scratch = lmp_strfmt("%s/lmpipe-run%lld-rank%d-XXXXXX", tmp && *tmp ? tmp : "/tmp",
                                    (long long)rc.run_id, lmp_dist_rank());
            if (!mkdtemp(rc.scratch)) lmp_dist_abort(lmp_strfmt("%s: cannot create a scratch folder", rc.scratch), 1);
        }
    }
    *run_id = rc.run_id;
    for (int i = 0; i < p->nstages; i++) {
        const lmp_stage_entry *e = p->stages[i].entry;
        char *plugin = lmp_strfmt("%s:%s", e->plugin->name, e->def->name);
        int r = lmp_store_stage_add(store, rc.run_id, p->stages[i].name, plugin, e->plugin->version, i);
        free(plugin);
        if (r != 0) {
            lmp_store_end_run(store, rc.run_id, "failed", lmp_errmsg());
            free(rc.home);
            return -1;
        }
    }
    rc.outputs = callocCheck((size_t)p->nstages, sizeof *rc.outputs);
    for (int i = 0; i < p->nstages; i++) {
        const lmp_port *prod = p->stages[i].entry->def->produces;
        int n = 0;
        while (prod && prod[n].name) n++;
        rc.outputs[i] = callocCheck((size_t)(n ? n : 1), sizeof **rc.outputs);
        for (int k = 0; k < n; k++) rc.outputs[i][k].type = lmp_type_find(prod[k].type);
    }
    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    lmp_interrupt_clear();
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    int result = 0, failed_stage = -1;
    const char *status = "finished";
    if (lmp_dist_writer() && home_writable(rc.home) != 0) result = 1;
    for (int i = 0; i < p->nstages && result == 0; i++) {
        if (run_stage(&rc, i, &status) != 0) result = 1, failed_stage = i;
    }
    const char *run_status = result == 0 ? "finished" : lmp_interrupted() ? "interrupted" : "failed";
    char err[1024];
    snprintf(err, sizeof err, "%s", lmp_errmsg());
    if (lmp_store_end_run(store, rc.run_id, run_status, result ? err : NULL) != 0) result = -1;
    else if (result) lmp_error("%s", err);
    /* a failure on one rank leaves the others waiting in a collective: record
     * it and end them all (sub-runs leave that to the run that started them) */
    if (result && !lmp_interrupted() && lmp_dist_size() > 1 && !opts->taken)
        dist_fail(&rc, failed_stage >= 0 ? p->stages[failed_stage].name : NULL, err);
    if (rc.scratch) {
        lmp_remove_tree(rc.scratch);
        free(rc.scratch);
    }

    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    for (int i = 0; i < p->nstages; i++) {
        const lmp_port *prod = p->stages[i].entry->def->produces;
        for (int k = 0; prod && prod[k].name; k++) {
            lmp_value *v = &rc.outputs[i][k];
            if (result == 0 && v->present && opts->taken && strcmp(p->stages[i].name, opts->take_stage) == 0 &&
                strcmp(prod[k].name, opts->take_port) == 0) {
                *opts->taken = v->data;
                if (opts->taken_digest) memcpy(opts->taken_digest, v->digest, 65);
                v->present = 0;
            }
            if (v->present && v->type && v->type->free) v->type->free(v->data);
        }
        free(rc.outputs[i]);
    }
    free(rc.outputs);
    free(rc.home);
    return result;
}
