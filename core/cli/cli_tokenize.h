/*
 * cli_tokenize.h — the `lmpipe tokenize` and `lmpipe detokenize` subcommands
 * (cli_tokenize.c).  argv[0] is the subcommand's name.  Return 0 on success,
 * 1 on failure (message on stderr), 2 on a usage error.
 */
#ifndef LMP_CLI_TOKENIZE_H
#define LMP_CLI_TOKENIZE_H

int lmp_cli_tokenize(int argc, char **argv);
int lmp_cli_detokenize(int argc, char **argv);

#endif
