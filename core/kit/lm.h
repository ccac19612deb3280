/*
 * lm.h — the "lm" artifact type: a GPT-2-architecture language model and
 * the tokenizer its ids come from.
 *
 * Saved as a folder loadable by Hugging Face transformers
 * (GPT2LMHeadModel + GPT2TokenizerFast.from_pretrained):
 *   model.safetensors  config.json  (lmp_gpt2_save)
 *   vocab.json  merges.txt         (lmp_tokenizer_save_dir)
 * Loading maps the weights read-only (lmp_gpt2_load): a stage that trains a
 * loaded model calls lmp_gpt2_own_params first.
 */
#ifndef LMP_LM_H
#define LMP_LM_H

#include "gpt2.h"
#include "lmpipe.h"
#include "tokenizer.h"

typedef struct {
    lmp_gpt2 *model;
    lmp_tokenizer *tok; /* a reference (lmp_tokenizer_ref) */
} lmp_lm;

extern const lmp_type lmp_type_lm; /* "lm", value lmp_lm * */

/* Takes ownership of model and of one reference to tok.  Errors if the
 * model's vocabulary is smaller than the tokenizer's (ids would not fit);
 * on error nothing is taken. */
int lmp_lm_new(lmp_gpt2 *model, lmp_tokenizer *tok, lmp_lm **out);
int lmp_lm_save(const void *lm, const char *dir);
int lmp_lm_load(const char *dir, void **lm);
void lmp_lm_free(void *lm);

#endif
