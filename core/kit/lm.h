/*
 * lm.h — the "lm" artifact type: a causal language model of some family and
 * the tokenizer its ids come from.
 *
 * A family implements lmp_lm_ops (GPT-2: core/kit/gpt2_lm.h) and registers
 * the loader of its saved folders under its name, which is the "model_type"
 * of the folder's config.json (LMP_LM_FAMILY, in the family's own file, as
 * classifier kinds do): neither this file nor the engine names a family.
 * Saved as a folder: the family's files (GPT-2: model.safetensors and
 * config.json, loadable by Hugging Face transformers) and the tokenizer's
 * vocab.json + merges.txt (lmp_tokenizer_save_dir).
 *
 * What every family offers is in the table; a stage that needs one family's
 * own machinery (generate and perplexity run GPT-2's KV cache and windows)
 * asks for it through that family's accessor (lmp_gpt2_lm_model), which
 * fails with a message naming the family the lm is.
 */
#ifndef LMP_LM_H
#define LMP_LM_H

#include <stdio.h>

#include "lmpipe.h"
#include "tokenizer.h"

typedef struct lmp_lm lmp_lm;

typedef struct {
    const char *family; /* "gpt2": the model_type its config.json records */
    /* Write the model's files into dir (created if needed). */
    int (*save)(const lmp_lm *lm, const char *dir);
    /* The input token embedding [*V, *C], row v for token v (read-only);
     * NULL member: the family has none. */
    const float *(*token_embedding)(const lmp_lm *lm, int *V, int *C);
    /* Free the model (impl); the tokenizer and lm itself are lm.c's. */
    void (*free)(lmp_lm *lm);
} lmp_lm_ops;

struct lmp_lm {
    const lmp_lm_ops *ops;
    void *impl;         /* the family's model */
    lmp_tokenizer *tok; /* a reference (lmp_tokenizer_ref) */
};

extern const lmp_type lmp_type_lm; /* "lm", value lmp_lm * */

/* An lm around impl and one reference to tok (both owned from now on). */
lmp_lm *lmp_lm_new(const lmp_lm_ops *ops, void *impl, lmp_tokenizer *tok);
int lmp_lm_save(const void *lm, const char *dir);
int lmp_lm_load(const char *dir, void **lm);
void lmp_lm_free(void *lm);

/* Loading: lmp_lm_load reads the tokenizer, then the model_type of
 * DIR/config.json, and calls the loader registered for it, which takes tok
 * when it succeeds. */
typedef int (*lmp_lm_loader)(const char *dir, lmp_tokenizer *tok, lmp_lm **out);
int lmp_lm_family_register(const char *family, lmp_lm_loader load);

/* Register a family from its own file (see LMP_CLASSIFIER_KIND in
 * classifier.h for why a constructor). */
#define LMP_LM_FAMILY(tag, family, load)                                \
    __attribute__((constructor)) static void lmp_lm_family_##tag(void)  \
    {                                                                   \
        if (lmp_lm_family_register(family, load) != 0)                  \
            fprintf(stderr, "lmpipe: %s\n", lmp_errmsg());              \
    }

#endif
