/*
 * tokenizer.h — the "tokenizer" artifact type: a byte-level BPE (bpe.h)
 * together with the exact bytes of the files it was loaded from, so it can
 * be saved again unchanged and identified by content.
 *
 * Saved as a folder holding vocab.json + merges.txt (the Hugging Face names;
 * OpenAI's encoder.json + vocab.bpe are the same formats and are accepted by
 * lmp_tokenizer_load_dir).  digest = hex SHA-256 over "vocab.json\0", its
 * bytes, "merges.txt\0", its bytes: the same vocabulary gives the same
 * digest whatever folder it came from (datasets record it as
 * tokenizer_digest).
 *
 * A tokenizer is shared, not copied, by the artifacts built on it (a
 * language model keeps the one it was trained with): lmp_tokenizer_ref
 * takes a reference, the type's free drops one.  Not thread-safe (nor is
 * lmp_bpe).
 */
#ifndef LMP_TOKENIZER_H
#define LMP_TOKENIZER_H

#include <stddef.h>

#include "bpe.h"
#include "lmpipe.h"

typedef struct {
    lmp_bpe *bpe;
    char *vocab_json, *merges_txt; /* the files' bytes, NUL-terminated */
    size_t vocab_len, merges_len;
    char digest[65];
    int refs;
} lmp_tokenizer;

extern const lmp_type lmp_type_tokenizer; /* "tokenizer", value lmp_tokenizer * */

/* Load from a folder: vocab.json + merges.txt, else encoder.json + vocab.bpe.
 * Errors name the folder or the file (see lmp_bpe_load). */
int lmp_tokenizer_load_dir(const char *dir, lmp_tokenizer **out);
/* Write dir/vocab.json and dir/merges.txt (atomically each; creates dir). */
int lmp_tokenizer_save_dir(const lmp_tokenizer *t, const char *dir);
lmp_tokenizer *lmp_tokenizer_ref(lmp_tokenizer *t);
void lmp_tokenizer_free(void *t); /* drops a reference */

#endif
