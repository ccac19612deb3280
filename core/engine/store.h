/*
 * store.h — the experiment store: one SQLite database (schema in
 * db/schema.sql) that records every run, its stages, resolved parameters,
 * metric history and artifact files.  WAL mode with a busy timeout, so several
 * lmpipe processes can write to one database at once.
 *
 * Who speaks SQL: every write goes through the functions below (store.c).
 * Reads of recorded runs are SQL over the schema, and only the CLI's read
 * commands (runs, show, compare, sql, plot, report: core/cli) issue them,
 * through lmp_store_db on a store opened read-only where it can be.  Those
 * commands are the schema's query surface (`sql` takes SQL by nature, the
 * rest print query results), so a read API here would be one function per
 * query used once.  No other layer (base, nn, kit, plugins, the rest of
 * engine) issues SQL or calls lmp_store_db.
 */
#ifndef LMP_STORE_H
#define LMP_STORE_H

#include <stdint.h>
#include <stdio.h>
#include <sqlite3.h>

typedef struct lmp_store lmp_store;

#define LMP_STORE_SCHEMA_VERSION 2

/* Open (creating and migrating if needed) the database at `path`. */
int lmp_store_open(const char *path, lmp_store **out);
/* Open read-only (the commands that only read: sql, runs, show, compare,
 * plot, report): no migration, no reaping, nothing written, not even the
 * -shm file where the folder is not writable (then a database whose -wal
 * holds no changes is read as an immutable file).  Only reads are allowed:
 * SELECT, WITH, EXPLAIN, read-only pragmas; anything else fails preparing,
 * "not allowed: the store is read-only here (WHAT)". */
int lmp_store_open_readonly(const char *path, lmp_store **out);
/* Whether this user can write the store at `path`: the file, its folder
 * (where SQLite creates the -wal and -shm files) and those files. */
int lmp_store_writable(const char *path);
void lmp_store_close(lmp_store *s);
/* The connection, for the CLI's SELECTs only (see the top of this file). */
sqlite3 *lmp_store_db(lmp_store *s);
const char *lmp_store_path(lmp_store *s);

/* The database path: --db, else $LMPIPE_DB, else ./lmpipe.db. */
const char *lmp_store_default_path(const char *cli_value);

int lmp_store_begin_run(lmp_store *s, const char *experiment, const char *pipeline,
                        const char *pipeline_text, uint64_t seed, int64_t *run_id);
/* status: finished | failed | interrupted; error may be NULL.  Only a run
 * still 'running' changes: a failure another MPI rank recorded stays. */
int lmp_store_end_run(lmp_store *s, int64_t run_id, const char *status, const char *error);
/* Another MPI rank's failure (dist.h): the run, and the stage when not
 * NULL, become 'failed' whatever rank 0 recorded before or after. */
int lmp_store_mark_failed(lmp_store *s, int64_t run_id, const char *stage, const char *error);
/* A sweep (`lmpipe sweep`): its row, and a run's membership. */
int lmp_store_begin_sweep(lmp_store *s, const char *pipeline, const char *grid, int combinations, int world_size,
                          int64_t *sweep_id);
int lmp_store_set_sweep(lmp_store *s, int64_t run_id, int64_t sweep_id);
/* The number of MPI ranks that ran it (dist.h). */
int lmp_store_set_world_size(lmp_store *s, int64_t run_id, int world_size);

int lmp_store_stage_add(lmp_store *s, int64_t run_id, const char *stage, const char *plugin,
                        const char *plugin_version, int position);
int lmp_store_stage_begin(lmp_store *s, int64_t run_id, const char *stage, const char *cache_key);
/* status: finished | failed | interrupted | cached; a stage already ended
 * keeps its status.  The write functions accept a NULL store (an MPI rank
 * other than 0) and then record nothing. */
int lmp_store_stage_end(lmp_store *s, int64_t run_id, const char *stage, const char *status,
                        double seconds);

int lmp_store_param(lmp_store *s, int64_t run_id, const char *stage, const char *key,
                    const char *value);
int lmp_store_metric(lmp_store *s, int64_t run_id, const char *stage, const char *key,
                     int64_t step, double value);
int lmp_store_artifact(lmp_store *s, int64_t run_id, const char *stage, const char *name,
                       const char *path, const char *sha256, int64_t bytes);

/* Mark runs left 'running' by a process of this host that no longer exists
 * (killed with SIGKILL, power loss) as 'interrupted'.  Returns how many. */
int lmp_store_reap_dead_runs(lmp_store *s);

/* Run `sql` and print the result as an aligned table (or tab-separated when
 * `tsv`), row by row as SQLite produces them: the table's first 1000 rows
 * size its columns.  Errors name the statement's problem as SQLite reports
 * it.  A reader that stops reading (EPIPE) ends the printing, and every later
 * print on this store, quietly: that is not an error. */
int lmp_store_print_query(lmp_store *s, const char *sql, int tsv, FILE *out);
/* Same, with one int64 parameter bound to every '?'. */
int lmp_store_print_query_id(lmp_store *s, const char *sql, int64_t id, FILE *out);

#endif
