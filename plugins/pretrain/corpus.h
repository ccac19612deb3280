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
 * corpus, $LMPIPE_DATA_DIR/corpus/{moby-dick,state-of-the-union}.txt.
 * Every file must exist.  Returns a NULL-terminated array (free with
 * corpus_files_free). */
int corpus_files(const char *spec, char ***files, int *n);
void corpus_files_free(char **files);

/* The token ids of the files in order, each file followed by the
 * tokenizer's end-of-text token when it has one.  Cached in
 * <cachedir>/tokens/<key>.bin, key = SHA-256 of the tokenizer's digest and
 * the files' contents (so a changed file or vocabulary is re-tokenized).
 * *hit says whether the cache was used. */
int corpus_tokens(lmp_stage *st, lmp_tokenizer *tok, char **files, int nfiles, int **ids,
                  size_t *n, int *hit);

#endif
