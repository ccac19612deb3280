/*
 * bpe_train.c — stage "bpe-train": learn a byte-level BPE vocabulary of
 * vocab_size tokens (lmp_bpe_train, GPT-2's pre-tokenizer and file formats,
 * "<|endoftext|>" as the last id) from text files; produces a tokenizer.
 */
#include "config.h"

#include <stdlib.h>

#include "corpus.h"
#include "stages.h"
#include "tokenizer.h"
#include "util.h"

static const lmp_param params[] = {
    {"vocab_size", LMP_INT, "8192", 257, 1000000, NULL, "tokens in the vocabulary, <|endoftext|> included"},
    CORPUS_FILES_PARAM,
    {"min_count", LMP_INT, "2", 1, 1000000000, NULL, "stop merging when no pair occurs this often"},
    LMP_PARAM_END,
};

static const lmp_port produces[] = {{"tokenizer", "tokenizer", 0, "the learned vocabulary"}, LMP_PORT_END};

static int run(lmp_stage *st)
{
    char **files;
    int nfiles;
    if (lmp_param_files(st, "files", &files, &nfiles) != 0) return -1;
    char *dir = lmp_strfmt("%s/tokenizer", lmp_workdir(st));
    double t0 = lmp_now();
    lmp_info(st, "learning %lld tokens from %d file(s)", (long long)lmp_param_int(st, "vocab_size"), nfiles);
    int rc = lmp_bpe_train((const char *const *)files, nfiles, (int)lmp_param_int(st, "vocab_size"), dir,
                           (int)lmp_param_int(st, "min_count"));
    lmp_files_free(files);
    lmp_tokenizer *tok = NULL;
    if (rc == 0) rc = lmp_tokenizer_load_dir(dir, &tok);
    free(dir);
    if (rc != 0) return -1;
    int V = lmp_bpe_vocab_size(tok->bpe);
    lmp_log_metric(st, "vocab_size", -1, V);
    lmp_log_metric(st, "seconds", -1, lmp_now() - t0);
    if (V < lmp_param_int(st, "vocab_size"))
        lmp_warn(st, "only %d tokens: no pair occurs min_count times any more", V);
    /* The output keeps the default digest (from this stage's key): a content
     * digest set with lmp_output_digest is not restored when the stage cache
     * is reused, which would change every downstream key on the second run. */
    return lmp_output(st, "tokenizer", tok);
}

const lmp_stage_def pretrain_bpe_train_stage = {
    .name = "bpe-train",
    .description = "learn a byte-level BPE vocabulary (GPT-2 format) from text files",
    .params = params,
    .produces = produces,
    .flags = LMP_STAGE_CACHEABLE,
    .run = run,
};
