/*
 * corpus.h — the text files a pretraining stage reads and their token
 * stream, tokenized once and cached.
 */
#ifndef PRETRAIN_CORPUS_H
#define PRETRAIN_CORPUS_H

#include <stddef.h>

#include "lmpipe.h"
#include "tokenizer.h"

/* The `files` parameter: a comma- or colon-separated list; empty means the
 * corpus, corpus/{moby-dick,state-of-the-union}.txt of the data folder
 * (or their .txt.gz, as lmpipe ships them).  Every file must exist and
 * match the data folder's manifest when one lists it (lmp_data_verify);
 * a name ending in .gz is read decompressed.  The list is logged as the
 * stage's parameter `resolved_files`.  Returns a NULL-terminated array (free with
 * corpus_files_free). */
int corpus_files(lmp_stage *st, const char *spec, char ***files, int *n);
void corpus_files_free(char **files);

/* The token ids of the files in order, each file followed by the
 * tokenizer's end-of-text token when it has one.  Cached in
 * <cachedir>/tokens/<key>.bin, key = SHA-256 of the tokenizer's digest and
 * the files' contents (so a changed file or vocabulary is re-tokenized).
 * *hit says whether the cache was used. */
int corpus_tokens(lmp_stage *st, lmp_tokenizer *tok, char **files, int nfiles, int **ids,
                  size_t *n, int *hit);

#endif
