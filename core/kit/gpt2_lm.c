/*
 * gpt2_lm.c — GPT-2 as a language-model family (see gpt2_lm.h): its
 * lmp_lm_ops, and the loader of family "gpt2", registered here.
 */
#include "config.h"

#include "gpt2_lm.h"
#include "util.h"

static int g_save(const lmp_lm *lm, const char *dir) { return lmp_gpt2_save(lm->impl, dir); }

static const float *g_token_embedding(const lmp_lm *lm, int *V, int *C)
{
    const lmp_gpt2 *m = lm->impl;
    *V = m->config.vocab_size;
    *C = m->config.n_embd;
    return m->wte;
}

static void g_free(lmp_lm *lm) { lmp_gpt2_free(lm->impl); }

static const lmp_lm_ops gpt2_lm_ops = {
    .family = "gpt2", .save = g_save, .token_embedding = g_token_embedding, .free = g_free,
};

int lmp_gpt2_lm_new(lmp_gpt2 *model, lmp_tokenizer *tok, lmp_lm **out)
{
    *out = NULL;
    int V = lmp_bpe_vocab_size(tok->bpe);
    if (model->config.vocab_size < V)
        return lmp_error("%s: vocabulary of %d tokens is smaller than the tokenizer's %d",
                         model->source, model->config.vocab_size, V);
    *out = lmp_lm_new(&gpt2_lm_ops, model, tok);
    return 0;
}

lmp_gpt2 *lmp_gpt2_lm_model(const lmp_lm *lm)
{
    if (lm->ops != &gpt2_lm_ops) {
        lmp_error("the language model is a %s model, not GPT-2", lm->ops->family);
        return NULL;
    }
    return lm->impl;
}

lmp_gpt2 *lmp_gpt2_lm_take(lmp_lm *lm)
{
    lmp_gpt2 *m = lmp_gpt2_lm_model(lm);
    if (!m) return NULL;
    lm->impl = NULL; /* g_free frees NULL: nothing */
    lmp_lm_free(lm);
    return m;
}

static int gpt2_lm_load(const char *dir, lmp_tokenizer *tok, lmp_lm **out)
{
    *out = NULL;
    lmp_gpt2 *m;
    if (lmp_gpt2_load(dir, &m) != 0) return -1;
    if (lmp_gpt2_lm_new(m, tok, out) != 0) {
        lmp_gpt2_free(m);
        return -1;
    }
    return 0;
}

LMP_LM_FAMILY(gpt2, "gpt2", gpt2_lm_load)
