/*
 * cli.h — the lmpipe subcommands.  Each takes argv starting at the command
 * name and returns the process exit code (0 ok, 1 failed, 2 usage).
 *
 * The read commands (runs, show, compare, sql, plot, report) read the store
 * with SELECTs of their own over lmp_store_db; this folder is the only place
 * outside store.c that issues SQL, and it never writes with it (store.h).
 */
#ifndef LMP_CLI_H
#define LMP_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "pipeline.h"
#include "run.h"

extern const char *lmp_cli_db;          /* --db */
extern const char *lmp_cli_plugin_path; /* --plugin-path */

int lmp_cli_run(int argc, char **argv);
int lmp_cli_runs(int argc, char **argv);
int lmp_cli_show(int argc, char **argv);
int lmp_cli_compare(int argc, char **argv);
int lmp_cli_sql(int argc, char **argv);
int lmp_cli_plugins(int argc, char **argv);
int lmp_cli_inspect(int argc, char **argv);

/* cli_report.c */
int lmp_cli_plot(int argc, char **argv);
int lmp_cli_report(int argc, char **argv);

/* cli_sweep.c */
int lmp_cli_sweep(int argc, char **argv);

/* Shared by the commands: "--help" anywhere in argv. */
int lmp_cli_wants_help(int argc, char **argv);
/* A positive decimal id (run, sweep): 0, or -1 when s is not one. */
int lmp_cli_parse_id(const char *s, int64_t *id);
/* Print "lmpipe CMD: <lmp_errmsg()>" and return code. */
int lmp_cli_fail(const char *cmd, int code);
/* Print "lmpipe CMD: <fmt with arg>" and the usage line; return 2. */
int lmp_cli_usage_error(const char *cmd, const char *usage, const char *fmt, const char *arg);

/* The options of `lmpipe run` (and `lmpipe sweep`). */
typedef struct {
    const char *file;
    char **overrides; /* -p values, pointing into argv */
    int noverrides;
    lmp_vars defines; /* -D */
    lmp_run_opts opts;
    int check_only;
} lmp_cli_run_args;
/* 0, or the exit code of a usage error (printed). */
int lmp_cli_run_args_parse(int argc, char **argv, const char *cmd, const char *usage, lmp_cli_run_args *a);
void lmp_cli_run_args_free(lmp_cli_run_args *a);
/* Parse a->file with a->defines, apply the overrides, check: 0, or the exit
 * code after printing the error. */
int lmp_cli_load_pipeline(const char *cmd, const lmp_cli_run_args *a, char *const *overrides, int noverrides,
                          lmp_pipeline **out);

#endif
