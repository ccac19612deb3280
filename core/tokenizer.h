/*
 * tokenizer.h — the "tokenizer" artifact type: a loaded byte-level BPE
 * (core/bpe.h) together with the files it came from and their digest, which
 * datasets and models carry so that ids from one vocabulary are never fed to
 * a model of another.  Saved as a folder holding vocab.json + merges.txt.
 */
#ifndef LMP_TOKENIZER_H
#define LMP_TOKENIZER_H

#include "bpe.h"
#include "lmpipe.h"

typedef struct {
    lmp_bpe *bpe;
    char *vocab_path, *merges_path; /* the files it was loaded from */
    char digest[65];                /* sha256 over both files' bytes */
} lmp_tokenizer;

extern const lmp_type lmp_type_tokenizer;

/* Load from a folder with vocab.json + merges.txt or encoder.json + vocab.bpe. */
int lmp_tokenizer_load(const char *dir, lmp_tokenizer **out);
/* Write vocab.json + merges.txt into `dir` (created), atomically each. */
int lmp_tokenizer_save(const lmp_tokenizer *t, const char *dir);
void lmp_tokenizer_free(lmp_tokenizer *t);

#endif
