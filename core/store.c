/*
 * store.c — the SQLite experiment store (see store.h and db/schema.sql).
 *
 * Every write is its own short transaction, so whatever was logged before a
 * crash stays.  WAL mode lets readers run beside a writer and, with the busy
 * timeout, lets several processes log into one database at once.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "util.h"

/* generated from db/schema.sql and db/002-*.sql, ... (core/core.am) */
extern const char lmp_schema_sql_1[], lmp_schema_sql_2[];

#define BUSY_TIMEOUT_MS 30000

struct lmp_store {
    sqlite3 *db;
    char *path;
};

/* Migrations: entry i brings a database from user_version i to i+1.
 * Never edit a released entry; append a new one. */
static const char *const migrations[] = {
    lmp_schema_sql_1, /* db/schema.sql */
    lmp_schema_sql_2, /* db/002-sweeps.sql */
};
#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

static int db_fail(lmp_store *s, const char *what)
{
    return lmp_error("%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

/* SQLite returns SQLITE_BUSY without waiting for the busy timeout where
 * waiting could deadlock: two processes creating one new database both read
 * it, then both need its write lock to switch it to WAL.  Such a statement
 * did nothing, so it is tried again after a short random pause, for as long
 * as the busy timeout would have waited. */
static int exec(lmp_store *s, const char *sql)
{
    double t0 = lmp_now();
    unsigned seed = (unsigned)getpid();
    for (;;) {
        char *msg = NULL;
        int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
        if (rc == SQLITE_OK) return 0;
        if ((rc & 0xff) == SQLITE_BUSY && lmp_now() - t0 < BUSY_TIMEOUT_MS / 1000.0) {
            sqlite3_free(msg);
            usleep(1000 + rand_r(&seed) % 20000);
            continue;
        }
        lmp_error("%s: %s", s->path, msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return -1;
    }
}

const char *lmp_store_default_path(const char *cli_value)
{
    if (cli_value && *cli_value) return cli_value;
    const char *env = getenv("LMPIPE_DB");
    if (env && *env) return env;
    return "lmpipe.db";
}

static int get_user_version(lmp_store *s, int *v)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return db_fail(s, "cannot read schema version");
    int rc = sqlite3_step(st);
    *v = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) return db_fail(s, "cannot read schema version");
    return 0;
}

static int migrate(lmp_store *s)
{
    /* BEGIN IMMEDIATE: two processes creating one new database must not both migrate */
    if (exec(s, "BEGIN IMMEDIATE") != 0) return -1;
    int v;
    if (get_user_version(s, &v) != 0) goto fail;
    if (v > N_MIGRATIONS) {
        lmp_error("%s: database schema version %d is newer than this lmpipe supports (%d)",
                  s->path, v, N_MIGRATIONS);
        goto fail;
    }
    if (v == 0) {
        /* a non-empty database without our version is someone else's file */
        sqlite3_stmt *st;
        sqlite3_prepare_v2(s->db, "SELECT count(*) FROM sqlite_master", -1, &st, NULL);
        int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
        sqlite3_finalize(st);
        if (n > 0) {
            lmp_error("%s: not an lmpipe database (it has tables but no lmpipe schema version)", s->path);
            goto fail;
        }
    }
    for (; v < N_MIGRATIONS; v++) {
        if (exec(s, migrations[v]) != 0) goto fail;
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v + 1);
        if (exec(s, pragma) != 0) goto fail;
    }
    return exec(s, "COMMIT");
fail:;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", lmp_errmsg());
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return lmp_error("%s", msg);
}

static int open_db(const char *path, int flags, lmp_store **out)
{
    *out = NULL;
    lmp_store *s = callocCheck(1, sizeof *s);
    s->path = strdupCheck(path);
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
        lmp_error("%s: cannot open database: %s", path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
        lmp_store_close(s);
        return -1;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    *out = s;
    return 0;
}

int lmp_store_open(const char *path, lmp_store **out)
{
    lmp_store *s;
    if (open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &s) != 0) return -1;
    /* journal_mode=WAL fails with SQLITE_NOTADB on a non-database file */
    if (exec(s, "PRAGMA journal_mode=WAL") != 0 || exec(s, "PRAGMA synchronous=NORMAL") != 0 ||
        exec(s, "PRAGMA foreign_keys=ON") != 0 || migrate(s) != 0) {
        lmp_store_close(s);
        return -1;
    }
    lmp_protect_file(path); /* no output of this process may replace it (util.h) */
    *out = s;
    return 0;
}

int lmp_store_open_readonly(const char *path, lmp_store **out)
{
    if (access(path, F_OK) != 0) return lmp_error("%s: no such database", path);
    lmp_store *s;
    if (open_db(path, SQLITE_OPEN_READONLY, &s) != 0) return -1;
    int v;
    if (get_user_version(s, &v) != 0) {
        lmp_store_close(s);
        return -1;
    }
    if (v == 0) {
        lmp_store_close(s);
        return lmp_error("%s: not an lmpipe database", path);
    }
    lmp_protect_file(path); /* `report --out`, `plot --out` must not replace it either */
    *out = s;
    return 0;
}

void lmp_store_close(lmp_store *s)
{
    if (!s) return;
    if (s->db) sqlite3_close_v2(s->db);
    free(s->path);
    free(s);
}

sqlite3 *lmp_store_db(lmp_store *s) { return s->db; }
const char *lmp_store_path(lmp_store *s) { return s->path; }

/* Prepare, bind text/int64/double arguments described by `types`
 * ('t' text, 'i' int64, 'd' double, 'n' null), step once, finalize. */
/* Every write goes through here.  A NULL store is the store of an MPI rank
 * other than 0 (dist.h), which records nothing: the write succeeds. */
static int run_stmt(lmp_store *s, const char *sql, const char *types, ...)
{
    if (!s) return 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) return db_fail(s, "prepare");
    va_list ap;
    va_start(ap, types);
    for (int i = 0; types[i]; i++) {
        switch (types[i]) {
        case 't': {
            const char *v = va_arg(ap, const char *);
            if (v) sqlite3_bind_text(st, i + 1, v, -1, SQLITE_TRANSIENT);
            else sqlite3_bind_null(st, i + 1);
            break;
        }
        case 'i': sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t)); break;
        case 'd': sqlite3_bind_double(st, i + 1, va_arg(ap, double)); break;
        case 'n': sqlite3_bind_null(st, i + 1); break;
        }
    }
    va_end(ap);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return db_fail(s, "write failed");
    return 0;
}

int lmp_store_begin_run(lmp_store *s, const char *experiment, const char *pipeline,
                        const char *pipeline_text, uint64_t seed, int64_t *run_id)
{
    char host[256] = "unknown";
    gethostname(host, sizeof host - 1);
    if (exec(s, "BEGIN IMMEDIATE") != 0) return -1;
    if (run_stmt(s, "INSERT OR IGNORE INTO experiments(name) VALUES (?)", "t", experiment) != 0 ||
        run_stmt(s,
                 "INSERT INTO runs(experiment_id, pipeline, pipeline_text, status, seed, host, pid, lmpipe_version)"
                 " SELECT id, ?, ?, 'running', ?, ?, ?, ? FROM experiments WHERE name = ?",
                 "ttititt", pipeline, pipeline_text, (int64_t)seed, host, (int64_t)getpid(),
                 PACKAGE_VERSION, experiment) != 0) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    *run_id = sqlite3_last_insert_rowid(s->db);
    return exec(s, "COMMIT");
}

int lmp_store_end_run(lmp_store *s, int64_t run_id, const char *status, const char *error)
{
    return run_stmt(s,
                    "UPDATE runs SET status = ?, error = ?,"
                    " finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ? AND status = 'running'",
                    "tti", status, error, run_id);
}

int lmp_store_mark_failed(lmp_store *s, int64_t run_id, const char *stage, const char *error)
{
    if (stage && run_stmt(s, "UPDATE stages SET status = 'failed' WHERE run_id = ? AND stage = ?", "it", run_id,
                          stage) != 0)
        return -1;
    return run_stmt(s,
                    "UPDATE runs SET status = 'failed', error = ?,"
                    " finished_at = coalesce(finished_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) WHERE id = ?",
                    "ti", error, run_id);
}

int lmp_store_begin_sweep(lmp_store *s, const char *pipeline, const char *grid, int combinations, int world_size,
                          int64_t *sweep_id)
{
    if (run_stmt(s, "INSERT INTO sweeps(pipeline, grid, combinations, world_size) VALUES (?, ?, ?, ?)", "ttii",
                 pipeline, grid, (int64_t)combinations, (int64_t)world_size) != 0)
        return -1;
    *sweep_id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

int lmp_store_set_sweep(lmp_store *s, int64_t run_id, int64_t sweep_id)
{
    return run_stmt(s, "UPDATE runs SET sweep_id = ? WHERE id = ?", "ii", sweep_id, run_id);
}

int lmp_store_set_world_size(lmp_store *s, int64_t run_id, int world_size)
{
    return run_stmt(s, "UPDATE runs SET world_size = ? WHERE id = ?", "ii", (int64_t)world_size, run_id);
}

int lmp_store_stage_add(lmp_store *s, int64_t run_id, const char *stage, const char *plugin,
                        const char *plugin_version, int position)
{
    return run_stmt(s,
                    "INSERT INTO stages(run_id, stage, plugin, plugin_version, status, position)"
                    " VALUES (?, ?, ?, ?, 'pending', ?)",
                    "ittti", run_id, stage, plugin, plugin_version,
                    (int64_t)position);
}

int lmp_store_stage_begin(lmp_store *s, int64_t run_id, const char *stage, const char *cache_key)
{
    return run_stmt(s,
                    "UPDATE stages SET status = 'running', cache_key = ?,"
                    " started_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE run_id = ? AND stage = ?",
                    "tit", cache_key, run_id, stage);
}

int lmp_store_stage_end(lmp_store *s, int64_t run_id, const char *stage, const char *status,
                        double seconds)
{
    return run_stmt(s,
                    "UPDATE stages SET status = ?, seconds = ?,"
                    " finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE run_id = ? AND stage = ?"
                    " AND status IN ('pending', 'running')",
                    "tdit", status, seconds, run_id, stage);
}

int lmp_store_param(lmp_store *s, int64_t run_id, const char *stage, const char *key,
                    const char *value)
{
    return run_stmt(s, "INSERT OR REPLACE INTO params(run_id, stage, key, value) VALUES (?, ?, ?, ?)",
                    "ittt", run_id, stage, key, value);
}

int lmp_store_metric(lmp_store *s, int64_t run_id, const char *stage, const char *key,
                     int64_t step, double value)
{
    if (value != value || value - value != 0) /* NaN or Inf: SQLite has no NaN; store NULL */
        return run_stmt(s, "INSERT INTO metrics(run_id, stage, key, step, value) VALUES (?, ?, ?, ?, NULL)",
                        "itti", run_id, stage, key, step);
    return run_stmt(s, "INSERT INTO metrics(run_id, stage, key, step, value) VALUES (?, ?, ?, ?, ?)",
                    "ittid", run_id, stage, key, step, value);
}

int lmp_store_artifact(lmp_store *s, int64_t run_id, const char *stage, const char *name,
                       const char *path, const char *sha256, int64_t bytes)
{
    return run_stmt(s,
                    "INSERT OR REPLACE INTO artifacts(run_id, stage, name, path, sha256, bytes)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    "itttti", run_id, stage, name, path, sha256, bytes);
}

/* A run killed after an artifact file was replaced (atomically: the file is
 * always one complete version) but before the new version was recorded leaves
 * a row with the previous version's digest.  Record what is on disk. */
static void reconcile_artifacts(lmp_store *s, int64_t run_id)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT stage, name, path, sha256 FROM artifacts WHERE run_id = ?", -1, &st,
                           NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(st, 1, run_id);
    char **rows = NULL; /* stage, name, sha256 and size of each row that is out of date */
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *path = (const char *)sqlite3_column_text(st, 2), *had = (const char *)sqlite3_column_text(st, 3);
        char hex[65];
        int64_t bytes;
        if (!path || !had || lmp_sha256_path(path, hex, &bytes) != 0 || strcmp(hex, had) == 0) continue;
        rows = reallocCheck(rows, (size_t)(n + 4) * sizeof *rows);
        rows[n++] = strdupCheck((const char *)sqlite3_column_text(st, 0));
        rows[n++] = strdupCheck((const char *)sqlite3_column_text(st, 1));
        rows[n++] = strdupCheck(hex);
        rows[n++] = lmp_strfmt("%lld", (long long)bytes);
    }
    sqlite3_finalize(st);
    for (int i = 0; i < n; i += 4)
        run_stmt(s, "UPDATE artifacts SET sha256 = ?, bytes = ? WHERE run_id = ? AND stage = ? AND name = ?", "tiitt",
                 rows[i + 2], (int64_t)strtoll(rows[i + 3], NULL, 10), run_id, rows[i], rows[i + 1]);
    for (int i = 0; i < n; i++) free(rows[i]);
    free(rows);
}

int lmp_store_reap_dead_runs(lmp_store *s)
{
    char host[256] = "unknown";
    gethostname(host, sizeof host - 1);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT id, pid FROM runs WHERE status = 'running' AND host = ?",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(s, "prepare");
    sqlite3_bind_text(st, 1, host, -1, SQLITE_TRANSIENT);
    int64_t dead[256];
    int ndead = 0;
    while (sqlite3_step(st) == SQLITE_ROW && ndead < 256) {
        pid_t pid = (pid_t)sqlite3_column_int64(st, 1);
        if (kill(pid, 0) != 0 && errno == ESRCH) dead[ndead++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    for (int i = 0; i < ndead; i++) {
        run_stmt(s,
                 "UPDATE runs SET status = 'interrupted', error = 'the lmpipe process died without finishing'"
                 " WHERE id = ? AND status = 'running'",
                 "i", dead[i]);
        run_stmt(s, "UPDATE stages SET status = 'interrupted' WHERE run_id = ? AND status = 'running'",
                 "i", dead[i]);
        reconcile_artifacts(s, dead[i]);
    }
    return ndead;
}

/* ------------------------------------------------------------ table output */

/* One cell: tab-separated, or padded to the column width (not the last column). */
static void print_cell(FILE *out, int c, int ncol, int tsv, int width, const char *text)
{
    if (tsv) fprintf(out, "%s%s", c ? "\t" : "", text);
    else fprintf(out, "%s%-*s", c ? "  " : "", c == ncol - 1 ? 0 : width, text);
}

static int print_stmt(lmp_store *s, sqlite3_stmt *st, int tsv, FILE *out)
{
    int ncol = sqlite3_column_count(st);
    size_t nrow = 0, cap = 16;
    char **cells = mallocCheck(cap * (size_t)(ncol ? ncol : 1) * sizeof *cells);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (nrow + 1 >= cap) {
            cap *= 2;
            cells = reallocCheck(cells, cap * (size_t)ncol * sizeof *cells);
        }
        for (int c = 0; c < ncol; c++) {
            const unsigned char *t = sqlite3_column_text(st, c);
            if (sqlite3_column_type(st, c) == SQLITE_FLOAT) {
                char buf[64];
                snprintf(buf, sizeof buf, "%.6g", sqlite3_column_double(st, c));
                cells[nrow * ncol + c] = strdupCheck(buf);
            } else {
                cells[nrow * ncol + c] = strdupCheck(t ? (const char *)t : (tsv ? "" : "NULL"));
            }
        }
        nrow++;
    }
    int ok = rc == SQLITE_DONE;
    if (ok && ncol > 0) {
        int *w = callocCheck((size_t)ncol, sizeof *w);
        for (int c = 0; c < ncol; c++) {
            w[c] = (int)strlen(sqlite3_column_name(st, c));
            for (size_t r = 0; r < nrow; r++) {
                int l = (int)strlen(cells[r * ncol + c]);
                if (l > w[c]) w[c] = l;
            }
        }
        for (int c = 0; c < ncol; c++)
            print_cell(out, c, ncol, tsv, w[c], sqlite3_column_name(st, c));
        fputc('\n', out);
        if (!tsv) {
            for (int c = 0; c < ncol; c++) {
                fputs(c ? "  " : "", out);
                for (int i = 0; i < w[c]; i++) fputc('-', out);
            }
            fputc('\n', out);
        }
        for (size_t r = 0; r < nrow; r++) {
            for (int c = 0; c < ncol; c++) print_cell(out, c, ncol, tsv, w[c], cells[r * ncol + c]);
            fputc('\n', out);
        }
        free(w);
    }
    for (size_t i = 0; i < nrow * (size_t)ncol; i++) free(cells[i]);
    free(cells);
    if (!ok) return lmp_error("%s", sqlite3_errmsg(s->db));
    return 0;
}

int lmp_store_print_query(lmp_store *s, const char *sql, int tsv, FILE *out)
{
    const char *tail = sql;
    while (tail && *tail) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(s->db, tail, -1, &st, &tail) != SQLITE_OK)
            return lmp_error("%s", sqlite3_errmsg(s->db));
        if (!st) break; /* trailing whitespace or comment */
        int rc = print_stmt(s, st, tsv, out);
        sqlite3_finalize(st);
        if (rc != 0) return -1;
    }
    return 0;
}

int lmp_store_print_query_id(lmp_store *s, const char *sql, int64_t id, FILE *out)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return lmp_error("%s", sqlite3_errmsg(s->db));
    for (int i = 1; i <= sqlite3_bind_parameter_count(st); i++) sqlite3_bind_int64(st, i, id);
    int rc = print_stmt(s, st, 0, out);
    sqlite3_finalize(st);
    return rc;
}
