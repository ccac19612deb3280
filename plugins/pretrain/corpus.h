/*
 * corpus.h — the text files a pretraining stage reads and their token
 * stream, tokenized once and cached.
 */
#ifndef PRETRAIN_CORPUS_H
#define PRETRAIN_CORPUS_H

#include <stddef.h>

#include "lmpipe.h"
#include "tokenizer.h"

/* The `files` parameter of both stages: input files, so the stage key
 * hashes their content (LMP_FILES); '' is the corpus shipped in the data
 * folder (gzip-compressed; a plain .txt beside it is preferred).  Read it
 * with lmp_param_files, which checks each file against its folder's
 * manifest and logs the list as the parameter `resolved_files`. */
#define CORPUS_FILES_PARAM                                                                         \
    {"files", LMP_FILES, "", LMP_UNBOUNDED, "corpus/moby-dick.txt,corpus/state-of-the-union.txt", \
     "text files (.gz: read decompressed), comma- or colon-separated ('': the corpus in the data folder)"}

/* The token ids of the files in order, each file followed by the
 * tokenizer's end-of-text token when it has one.  Cached in
 * <cachedir>/tokens/<key>.bin, key = SHA-256 of the tokenizer's digest and
 * the files' contents (so a changed file or vocabulary is re-tokenized).
 * *hit says whether the cache was used. */
int corpus_tokens(lmp_stage *st, lmp_tokenizer *tok, char **files, int nfiles, int **ids,
                  size_t *n, int *hit);

#endif
