/*
 * main.c — the lmpipe command: dispatches to the subcommands.
 *
 * Exit codes: 0 ok, 1 the run (or command) failed, 2 usage error (bad
 * command line or a pipeline that does not check).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blasenv.h"
#include "cli.h"
#include "cli_tokenize.h"
#include "dist.h"
#include "gpt2.h"
#include "paths.h"
#include "util.h"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"run", lmp_cli_run, "run a pipeline file and record it in the store"},
    {"sweep", lmp_cli_sweep, "run a pipeline over a grid of parameter values (across MPI ranks under mpirun)"},
    {"runs", lmp_cli_runs, "list recent runs"},
    {"show", lmp_cli_show, "show one run: params, metrics, artifacts, stage timings"},
    {"compare", lmp_cli_compare, "compare runs: differing params, metrics side by side"},
    {"sql", lmp_cli_sql, "run a read-only SQL query against the store"},
    {"plugins", lmp_cli_plugins, "list the plugins and the stages they provide"},
    {"inspect", lmp_cli_inspect, "describe a stage: parameters, inputs, outputs"},
    {"tokenize", lmp_cli_tokenize, "print the GPT-2 BPE token ids of a text"},
    {"detokenize", lmp_cli_detokenize, "turn token ids back into text"},
    {"generate", lmp_cli_generate, "continue a prompt with a GPT-2 model (KV cache, sampling)"},
    {"perplexity", lmp_cli_perplexity, "perplexity of a text file under a GPT-2 model"},
    {"plot", lmp_cli_plot, "write SVG charts of runs' metric curves and final metrics"},
    {"report", lmp_cli_report, "write one HTML page comparing runs side by side"},
    {NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lmpipe [--db PATH] [--plugin-path DIRS] COMMAND [ARGS]\n"
            "\n"
            "Compose ML pipelines from plugin stages; every run is recorded in SQLite.\n"
            "\ncommands:\n");
    for (const command *c = commands; c->name; c++) fprintf(out, "  %-12s %s\n", c->name, c->summary);
    fprintf(out,
            "\nglobal options (anywhere on the line):\n"
            "  --db PATH           experiment database (default: $LMPIPE_DB, else ./lmpipe.db)\n"
            "  --plugin-path DIRS  colon-separated plugin directories searched first\n"
            "                      (then $LMPIPE_PLUGIN_PATH, the build tree, %s)\n"
            "\n'lmpipe COMMAND --help' describes a command.\n",
            LMP_PKGLIBDIR);
}

int main(int argc, char **argv)
{
    lmp_blas_env_reexec(argv);
    lmp_dist_init(&argc, &argv); /* under mpirun: the ranks of a data-parallel run */
    lmp_data_dir_resolve();
    /* Pull the global options out wherever they are, so every command sees the rest. */
    int n = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            while (i < argc) argv[n++] = argv[i++];
            break;
        }
        const char **slot = strcmp(argv[i], "--db") == 0            ? &lmp_cli_db
                            : strcmp(argv[i], "--plugin-path") == 0 ? &lmp_cli_plugin_path
                                                                    : NULL;
        if (slot) {
            if (i + 1 >= argc) {
                fprintf(stderr, "lmpipe: %s needs a value\n", argv[i]);
                return 2;
            }
            *slot = argv[++i];
        } else if (strncmp(argv[i], "--db=", 5) == 0) {
            lmp_cli_db = argv[i] + 5;
        } else if (strncmp(argv[i], "--plugin-path=", 14) == 0) {
            lmp_cli_plugin_path = argv[i] + 14;
        } else {
            argv[n++] = argv[i];
        }
    }
    argc = n;
    argv[argc] = NULL;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("lmpipe %s (OpenBLAS kernels: %s)\n", PACKAGE_VERSION, lmp_blas_corename());
        return 0;
    }
    for (const command *c = commands; c->name; c++)
        if (strcmp(argv[1], c->name) == 0) {
            int rc = c->fn(argc - 1, argv + 1);
            lmp_dist_finalize();
            return rc;
        }
    const char *best = NULL;
    int best_d = 1 << 30, d;
    for (const command *c = commands; c->name; c++)
        if (lmp_is_close(argv[1], c->name, &d) && d < best_d) best_d = d, best = c->name;
    if (best) fprintf(stderr, "lmpipe: unknown command '%s'; did you mean '%s'?\n", argv[1], best);
    else fprintf(stderr, "lmpipe: unknown command '%s' (see lmpipe --help)\n", argv[1]);
    return 2;
}
