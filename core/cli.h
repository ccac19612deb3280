/*
 * cli.h — the lmpipe subcommands.  Each takes argv starting at the command
 * name and returns the process exit code (0 ok, 1 failed, 2 usage).
 */
#ifndef LMP_CLI_H
#define LMP_CLI_H

#include <stdio.h>

extern const char *lmp_cli_db;          /* --db */
extern const char *lmp_cli_plugin_path; /* --plugin-path */

int lmp_cli_run(int argc, char **argv);
int lmp_cli_runs(int argc, char **argv);
int lmp_cli_show(int argc, char **argv);
int lmp_cli_compare(int argc, char **argv);
int lmp_cli_sql(int argc, char **argv);
int lmp_cli_plugins(int argc, char **argv);
int lmp_cli_inspect(int argc, char **argv);

/* Shared by the commands: "--help" anywhere in argv. */
int lmp_cli_wants_help(int argc, char **argv);

#endif
