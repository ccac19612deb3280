/*
 * lm.c — the "lm" artifact type (see lm.h).
 */
#include "config.h"

#include <stdlib.h>

#include "lm.h"
#include "util.h"

int lmp_lm_new(lmp_gpt2 *model, lmp_tokenizer *tok, lmp_lm **out)
{
    *out = NULL;
    int V = lmp_bpe_vocab_size(tok->bpe);
    if (model->config.vocab_size < V)
        return lmp_error("%s: vocabulary of %d tokens is smaller than the tokenizer's %d",
                         model->source, model->config.vocab_size, V);
    lmp_lm *lm = callocCheck(1, sizeof *lm);
    lm->model = model;
    lm->tok = tok;
    *out = lm;
    return 0;
}

int lmp_lm_save(const void *p, const char *dir)
{
    const lmp_lm *lm = p;
    if (lmp_gpt2_save(lm->model, dir) != 0) return -1; /* creates dir */
    return lmp_tokenizer_save_dir(lm->tok, dir);
}

int lmp_lm_load(const char *dir, void **out)
{
    *out = NULL;
    lmp_tokenizer *tok;
    if (lmp_tokenizer_load_dir(dir, &tok) != 0) return -1;
    lmp_gpt2 *m;
    if (lmp_gpt2_load(dir, &m) != 0) {
        lmp_tokenizer_free(tok);
        return -1;
    }
    lmp_lm *lm;
    if (lmp_lm_new(m, tok, &lm) != 0) {
        lmp_gpt2_free(m);
        lmp_tokenizer_free(tok);
        return -1;
    }
    *out = lm;
    return 0;
}

void lmp_lm_free(void *p)
{
    lmp_lm *lm = p;
    if (!lm) return;
    lmp_gpt2_free(lm->model);
    lmp_tokenizer_free(lm->tok);
    free(lm);
}

const lmp_type lmp_type_lm = {
    "lm", "a GPT-2 language model and its tokenizer (HF folder)", lmp_lm_free, lmp_lm_save,
    lmp_lm_load,
};
