/*
 * gpt2_lm.h — GPT-2 as a language-model family (core/kit/lm.h): family
 * "gpt2", a folder of model.safetensors + config.json (lmp_gpt2_save), loaded
 * with its weights mapped read-only (lmp_gpt2_load): a stage that trains a
 * loaded model calls lmp_gpt2_own_params first.
 */
#ifndef LMP_GPT2_LM_H
#define LMP_GPT2_LM_H

#include "gpt2.h"
#include "lm.h"

/* Takes ownership of model and of one reference to tok.  Errors if the
 * model's vocabulary is smaller than the tokenizer's (ids would not fit);
 * on error nothing is taken. */
int lmp_gpt2_lm_new(lmp_gpt2 *model, lmp_tokenizer *tok, lmp_lm **out);
/* The GPT-2 of lm, or NULL with an error when lm is of another family. */
lmp_gpt2 *lmp_gpt2_lm_model(const lmp_lm *lm);
/* Take the GPT-2 out of lm and free the rest (the tokenizer reference
 * included); NULL with an error, lm untouched, for another family. */
lmp_gpt2 *lmp_gpt2_lm_take(lmp_lm *lm);

#endif
