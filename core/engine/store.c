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
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "util.h"

/* generated from db/schema.sql and db/002-*.sql, ... (core/core.am) */
extern const char lmp_schema_sql_1[], lmp_schema_sql_2[];

#define BUSY_TIMEOUT_MS 30000

struct lmp_store {
    sqlite3 *db;
    char *path;
    int readonly;      /* opened by lmp_store_open_readonly: the guard below applies */
    const char *sql;   /* the statement being prepared, for naming what the guard refused */
    char refused[160]; /* what the guard refused in it, "" if nothing */
    int out_closed;    /* the reader of the output went away (EPIPE): print nothing more */
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

/* `filename` is what SQLite opens (a URI for the immutable fallback);
 * messages name `path`. */
static int open_db(const char *path, const char *filename, int flags, lmp_store **out)
{
    *out = NULL;
    lmp_store *s = callocCheck(1, sizeof *s);
    s->path = strdupCheck(path);
    if (sqlite3_open_v2(filename, &s->db, flags, NULL) != SQLITE_OK) {
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
    if (open_db(path, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &s) != 0) return -1;
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

/* ------------------------------------------------------- read-only access */

/* Whether `path` (and `path` + suffix) can be written by this user. */
static int can_write(const char *path, const char *suffix)
{
    char *p = lmp_strfmt("%s%s", path, suffix);
    int ok = access(p, F_OK) != 0 || access(p, W_OK) == 0;
    free(p);
    return ok;
}

int lmp_store_writable(const char *path)
{
    /* SQLite creates the -wal and -shm files beside the database */
    const char *slash = strrchr(path, '/');
    char *dir = slash ? lmp_strfmt("%.*s", (int)(slash - path + (slash == path)), path) : strdupCheck(".");
    int ok = access(path, W_OK) == 0 && access(dir, W_OK | X_OK) == 0 && can_write(path, "-wal") &&
             can_write(path, "-shm");
    free(dir);
    return ok;
}

/* Statements a read-only command may run: SELECT and WITH (recursive ones
 * too), EXPLAIN, read-only pragmas.  An allow-list, because what SQLite can
 * do beyond reading keeps growing: VACUUM INTO and ATTACH create files,
 * fts3_tokenizer() reads and plants raw pointers (a crash, or worse), and
 * load_extension() runs code. */
static const char *const pragmas_read[] = {
    /* these only read, whatever their argument (a table or index name, a limit) */
    "table_info", "table_xinfo", "table_list", "index_info", "index_xinfo", "index_list",
    "foreign_key_list", "foreign_key_check", "integrity_check", "quick_check", NULL,
};
static const char *const pragmas_get[] = {
    /* these read without an argument and set something with one */
    "user_version", "schema_version", "application_id", "data_version", "page_size", "page_count",
    "max_page_count", "freelist_count", "journal_mode", "encoding", "auto_vacuum", "foreign_keys",
    "synchronous", "cache_size", "database_list", "collation_list", "function_list", "module_list",
    "pragma_list", "compile_options", NULL,
};
static const char *const functions_denied[] = {"fts3_tokenizer", "load_extension", NULL};

static int in_list(const char *const *list, const char *name)
{
    for (int i = 0; name && list[i]; i++)
        if (strcasecmp(list[i], name) == 0) return 1;
    return 0;
}

/* The schema table, under its old name or its name since SQLite 3.33. */
static int is_schema_table(const char *name)
{
    static const char *const names[] = {"sqlite_master", "sqlite_temp_master", "sqlite_schema",
                                        "sqlite_temp_schema", NULL};
    return in_list(names, name);
}

/* The statement's text after blanks and comments (for VACUUM, which reaches
 * the authorizer as an ATTACH). */
static const char *skip_blank(const char *p)
{
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f') p++;
        if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n') p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *end = strstr(p + 2, "*/");
            p = end ? end + 2 : p + strlen(p);
        } else {
            return p;
        }
    }
}

/* The statement's first `n` words (up to a '(' or ';'), as the user wrote them. */
static void leading_words(const char *sql, int n, char *buf, size_t size)
{
    const char *p = skip_blank(sql), *end = p;
    for (int i = 0; i < n && *end; i++) {
        if (i) end += strspn(end, " \t\r\n");
        end += strcspn(end, " \t\r\n(;");
        if (*end == '(' || *end == ';') break;
    }
    snprintf(buf, size, "%.*s", (int)(end - p), p);
}

/* Name the refused action the way the user would have written it. */
static void describe_refusal(lmp_store *s, int action, const char *a3, const char *a4)
{
    char *what;
    const char *x = a3 ? a3 : "", *y = a4 ? a4 : "";
    /* CREATE, DROP and ANALYZE reach the authorizer first as a change of the
     * schema table: name the statement instead */
    if ((action == SQLITE_INSERT || action == SQLITE_DELETE) && s->sql && is_schema_table(x)) {
        leading_words(s->sql, 3, s->refused, sizeof s->refused);
        return;
    }
    switch (action) {
    case SQLITE_INSERT: what = lmp_strfmt("INSERT INTO %s", x); break;
    case SQLITE_UPDATE: what = lmp_strfmt("UPDATE %s", x); break;
    case SQLITE_DELETE: what = lmp_strfmt("DELETE FROM %s", x); break;
    case SQLITE_CREATE_TABLE: case SQLITE_CREATE_TEMP_TABLE: what = lmp_strfmt("CREATE TABLE %s", x); break;
    case SQLITE_CREATE_INDEX: case SQLITE_CREATE_TEMP_INDEX: what = lmp_strfmt("CREATE INDEX %s", x); break;
    case SQLITE_CREATE_VIEW: case SQLITE_CREATE_TEMP_VIEW: what = lmp_strfmt("CREATE VIEW %s", x); break;
    case SQLITE_CREATE_TRIGGER: case SQLITE_CREATE_TEMP_TRIGGER: what = lmp_strfmt("CREATE TRIGGER %s", x); break;
    case SQLITE_CREATE_VTABLE: what = lmp_strfmt("CREATE VIRTUAL TABLE %s USING %s", x, y); break;
    case SQLITE_DROP_TABLE: case SQLITE_DROP_TEMP_TABLE: what = lmp_strfmt("DROP TABLE %s", x); break;
    case SQLITE_DROP_INDEX: case SQLITE_DROP_TEMP_INDEX: what = lmp_strfmt("DROP INDEX %s", x); break;
    case SQLITE_DROP_VIEW: case SQLITE_DROP_TEMP_VIEW: what = lmp_strfmt("DROP VIEW %s", x); break;
    case SQLITE_DROP_TRIGGER: case SQLITE_DROP_TEMP_TRIGGER: what = lmp_strfmt("DROP TRIGGER %s", x); break;
    case SQLITE_DROP_VTABLE: what = lmp_strfmt("DROP TABLE %s", x); break;
    case SQLITE_ALTER_TABLE: what = lmp_strfmt("ALTER TABLE %s", y); break;
    case SQLITE_ANALYZE: what = strdupCheck("ANALYZE"); break;
    case SQLITE_REINDEX: what = strdupCheck("REINDEX"); break;
    case SQLITE_TRANSACTION: what = strdupCheck(x); break; /* BEGIN, COMMIT, ROLLBACK */
    case SQLITE_SAVEPOINT: what = lmp_strfmt("SAVEPOINT %s", y); break;
    case SQLITE_DETACH: what = lmp_strfmt("DETACH %s", x); break;
    case SQLITE_ATTACH:
        if (s->sql && strncasecmp(skip_blank(s->sql), "VACUUM", 6) == 0)
            what = *x ? lmp_strfmt("VACUUM INTO '%s'", x) : strdupCheck("VACUUM");
        else
            what = lmp_strfmt("ATTACH '%s'", x);
        break;
    case SQLITE_PRAGMA: what = a4 ? lmp_strfmt("PRAGMA %s = %s", x, y) : lmp_strfmt("PRAGMA %s", x); break;
    case SQLITE_FUNCTION: what = lmp_strfmt("function %s()", y); break;
    default: what = lmp_strfmt("SQLite action %d", action); break;
    }
    snprintf(s->refused, sizeof s->refused, "%s", what);
    free(what);
}

static int readonly_authorizer(void *ctx, int action, const char *a3, const char *a4, const char *db,
                               const char *trigger)
{
    lmp_store *s = ctx;
    (void)db;
    switch (action) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_RECURSIVE: return SQLITE_OK;
    case SQLITE_FUNCTION:
        if (!in_list(functions_denied, a4)) return SQLITE_OK;
        break;
    case SQLITE_PRAGMA:
        if (in_list(pragmas_read, a3) || (!a4 && in_list(pragmas_get, a3))) return SQLITE_OK;
        break;
    case SQLITE_UPDATE:
        /* SQLite asks this of the schema table while it declares an
         * eponymous virtual table (json_each, pragma_table_info); a real
         * UPDATE of the schema table is refused by SQLite itself, and the
         * connection is read-only besides. */
        if (!trigger && is_schema_table(a3)) return SQLITE_OK;
        break;
    }
    if (!s->refused[0]) describe_refusal(s, action, a3, a4);
    return SQLITE_DENY;
}

/* Read-only at every level: the connection, SQLite's defensive mode (no
 * writable_schema, no raw page writes), no fts3 tokenizer pointers, no
 * extensions, no attached databases, and the authorizer above. */
static void guard_readonly(lmp_store *s)
{
    s->readonly = 1;
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)0);
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, 0, (int *)0);
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, (int *)0);
    sqlite3_limit(s->db, SQLITE_LIMIT_ATTACHED, 0);
    sqlite3_set_authorizer(s->db, readonly_authorizer, s);
}

/* file:PATH?immutable=1, PATH percent-encoded. */
static char *immutable_uri(const char *path)
{
    lmp_sbuf b = {0};
    lmp_sbuf_puts(&b, "file:");
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("/._-~", *p))
            lmp_sbuf_putc(&b, (char)*p);
        else
            lmp_sbuf_printf(&b, "%%%02X", *p);
    }
    lmp_sbuf_puts(&b, "?immutable=1");
    return b.s;
}

/* The -wal file holds committed changes not yet copied into the database. */
static int wal_has_changes(const char *path)
{
    char *wal = lmp_strfmt("%s-wal", path);
    struct stat st;
    int has = stat(wal, &st) == 0 && st.st_size > 0;
    free(wal);
    return has;
}

/* Open, guard and read the schema version; *code is SQLite's error code
 * when that first read fails. */
static int open_guarded(const char *path, const char *filename, int flags, lmp_store **out, int *version,
                        int *code)
{
    *code = SQLITE_OK;
    if (open_db(path, filename, flags, out) != 0) return -1;
    guard_readonly(*out);
    if (get_user_version(*out, version) == 0) return 0;
    *code = sqlite3_extended_errcode((*out)->db);
    lmp_store_close(*out);
    *out = NULL;
    return -1;
}

int lmp_store_open_readonly(const char *path, lmp_store **out)
{
    *out = NULL;
    if (access(path, F_OK) != 0) return lmp_error("%s: no such database", path);
    lmp_store *s;
    int v, code;
    if (open_guarded(path, path, SQLITE_OPEN_READONLY, &s, &v, &code) != 0) {
        /* A reader of a WAL database needs its -shm file, and cannot create
         * one in a folder it may not write (SQLite says "readonly" or "cannot
         * open"; anything else, a busy or broken store, is the error).  With
         * no changes waiting in the -wal, the database file alone is the
         * whole store: read it as an immutable file, which needs neither.
         * Otherwise reading it alone would show an older store, so say why
         * it cannot be read. */
        if ((code & 0xff) != SQLITE_READONLY && (code & 0xff) != SQLITE_CANTOPEN) return -1;
        if (wal_has_changes(path)) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", lmp_errmsg());
            return lmp_error("%s (%s-wal holds changes not yet in the database, and its -shm file cannot be "
                             "opened or created here)", msg, path);
        }
        char *uri = immutable_uri(path);
        int rc = open_guarded(path, uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, &s, &v, &code);
        free(uri);
        if (rc != 0) return -1;
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
                    " started_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE run_id = ? AND stage = ?"
                    /* another MPI rank may have failed this stage already */
                    " AND status <> 'failed'",
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

/* The table's first rows are read before anything is printed, to size its
 * columns; the rest are printed as they come, with those widths (a wider
 * cell pushes the rest of its line), so a result of any length prints in
 * bounded memory. */
#define TABLE_PAGE 1000

/* Prepare the next statement of `*tail`.  On a read-only store, a statement
 * the guard refused (or one SQLite says may write) fails naming what it
 * would have done. */
static int prepare(lmp_store *s, const char **tail, sqlite3_stmt **st)
{
    s->sql = *tail;
    s->refused[0] = 0;
    int rc = sqlite3_prepare_v2(s->db, *tail, -1, st, tail);
    s->sql = NULL;
    if (rc == SQLITE_OK && *st && s->readonly && !sqlite3_stmt_readonly(*st)) {
        leading_words(sqlite3_sql(*st), 3, s->refused, sizeof s->refused);
        sqlite3_finalize(*st);
        *st = NULL;
        rc = SQLITE_AUTH;
    }
    if (rc == SQLITE_OK) return 0;
    if (s->refused[0]) return lmp_error("not allowed: the store is read-only here (%s)", s->refused);
    return lmp_error("%s", sqlite3_errmsg(s->db));
}

/* A cell's text: floats as %.6g, NULL as "NULL" (as "" in TSV). */
static const char *cell_text(sqlite3_stmt *st, int c, int tsv, char buf[64])
{
    if (sqlite3_column_type(st, c) == SQLITE_FLOAT) {
        snprintf(buf, 64, "%.6g", sqlite3_column_double(st, c));
        return buf;
    }
    const unsigned char *t = sqlite3_column_text(st, c);
    return t ? (const char *)t : (tsv ? "" : "NULL");
}

/* One cell: tab-separated, or padded to the column width (not the last column). */
static void print_cell(FILE *out, int c, int ncol, int tsv, int width, const char *text)
{
    if (tsv) fprintf(out, "%s%s", c ? "\t" : "", text);
    else fprintf(out, "%s%-*s", c ? "  " : "", c == ncol - 1 ? 0 : width, text);
}

static void print_header(sqlite3_stmt *st, int ncol, int tsv, const int *w, FILE *out)
{
    for (int c = 0; c < ncol; c++) print_cell(out, c, ncol, tsv, w[c], sqlite3_column_name(st, c));
    fputc('\n', out);
    if (tsv) return;
    for (int c = 0; c < ncol; c++) {
        fputs(c ? "  " : "", out);
        for (int i = 0; i < w[c]; i++) fputc('-', out);
    }
    fputc('\n', out);
}

/* A write to `out` failed with `err`: a reader that went away (`lmpipe sql
 * ... | head` with SIGPIPE ignored) ends the printing quietly; anything else
 * is an error. */
static int output_failed(lmp_store *s, int err)
{
    if (err == EPIPE) {
        s->out_closed = 1;
        return 0;
    }
    return lmp_error("writing the result: %s", err ? strerror(err) : "write error");
}

static int print_stmt(lmp_store *s, sqlite3_stmt *st, int tsv, FILE *out)
{
    if (s->out_closed) return 0;
    int ncol = sqlite3_column_count(st);
    size_t page = tsv || ncol == 0 ? 0 : TABLE_PAGE, nrow = 0;
    char **cells = page ? mallocCheck(page * (size_t)ncol * sizeof *cells) : NULL;
    char buf[64];
    int rc = SQLITE_ROW; /* SQLITE_ROW: there may be more rows */
    while (nrow < page && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int c = 0; c < ncol; c++) cells[nrow * ncol + c] = strdupCheck(cell_text(st, c, tsv, buf));
        nrow++;
    }
    int *w = callocCheck((size_t)(ncol ? ncol : 1), sizeof *w);
    for (int c = 0; c < ncol && !tsv; c++) {
        w[c] = (int)strlen(sqlite3_column_name(st, c));
        for (size_t r = 0; r < nrow; r++) {
            int l = (int)strlen(cells[r * ncol + c]);
            if (l > w[c]) w[c] = l;
        }
    }
    if (ncol > 0) print_header(st, ncol, tsv, w, out);
    for (size_t r = 0; r < nrow; r++) {
        for (int c = 0; c < ncol; c++) print_cell(out, c, ncol, tsv, w[c], cells[r * ncol + c]);
        fputc('\n', out);
    }
    for (size_t i = 0; i < nrow * (size_t)ncol; i++) free(cells[i]);
    free(cells);
    /* the rest, one row at a time; stop as soon as the output fails, or an
     * endless query would run on into a closed pipe */
    while (rc == SQLITE_ROW && !ferror(out) && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int c = 0; c < ncol; c++) print_cell(out, c, ncol, tsv, w[c], cell_text(st, c, tsv, buf));
        if (ncol > 0) fputc('\n', out);
    }
    int err = ferror(out) ? errno : 0; /* before anything else can change errno */
    free(w);
    if (!err && fflush(out) != 0) err = errno ? errno : EIO;
    if (err || ferror(out)) return output_failed(s, err);
    if (rc != SQLITE_DONE) return lmp_error("%s", sqlite3_errmsg(s->db));
    return 0;
}

int lmp_store_print_query(lmp_store *s, const char *sql, int tsv, FILE *out)
{
    const char *tail = sql;
    while (tail && *tail && !s->out_closed) {
        sqlite3_stmt *st = NULL;
        if (prepare(s, &tail, &st) != 0) return -1;
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
    if (prepare(s, &sql, &st) != 0) return -1;
    if (!st) return 0;
    for (int i = 1; i <= sqlite3_bind_parameter_count(st); i++) sqlite3_bind_int64(st, i, id);
    int rc = print_stmt(s, st, 0, out);
    sqlite3_finalize(st);
    return rc;
}
