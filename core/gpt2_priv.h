/*
 * gpt2_priv.h — what gpt2.c, gpt2_load.c and gpt2_generate.c share but the
 * public API does not show: where a model's parameters live and the helpers
 * that build an empty model for a config.
 */
#ifndef LMP_GPT2_PRIV_H
#define LMP_GPT2_PRIV_H

#include "gpt2.h"
#include "safetensors.h"

struct lmp_gpt2_storage {
    lmp_st *st;            /* safetensors file the parameters point into, or NULL */
    void *map;             /* llm.c checkpoint mapping, or NULL */
    size_t map_len;
    void **owned;          /* buffers allocated for parameters (copies, conversions) */
    int n_owned;
    int all_owned;         /* every parameter lives in owned memory */
    float *lm_scratch;     /* [LM_CHUNK, V] for the chunked LM head */
    int weights;           /* LMP_WEIGHTS_* of the inference copies (gpt2_weights.c) */
    struct lmp_qmat *wte_q; /* the LM head's copy [V, C], or NULL; the linears' are in l->packed */
};

/* Rows of the LM head computed at once by lmhead_xent_forward. */
#define GPT2_LM_CHUNK 32

/* A model for config c with names and shapes filled in, parameter pointers NULL. */
lmp_gpt2 *gpt2_new_shell(const lmp_gpt2_config *c, const char *source);
/* logits[n,V] of final-LayerNorm rows x[n,C] through the tied head. */
void gpt2_lm_logits(const lmp_gpt2 *m, const float *x, int n, float *logits);
/* n floats of zeroed memory owned (and freed) by the model. */
float *gpt2_own(lmp_gpt2 *m, size_t n);
/* Frees the f16 / q8 inference copies (gpt2_weights.c); back to f32. */
void gpt2_weights_free(lmp_gpt2 *m);
/* Frees what lmp_gpt2_bind_grads allocated (gpt2_backward.c); NULL is fine. */
void gpt2_train_free(struct lmp_gpt2_train *t);

/* One parameter tensor of a model: its HF GPT2Model name, where the model
 * keeps its pointer, element count and shape (d1 == 0 for a vector). */
typedef struct {
    char name[64];
    float **slot;
    size_t n;
    int d0, d1;
} gpt2_tensor;
/* Every tensor of m in a fixed order (wte, wpe, per block ln_1, attn.c_attn,
 * attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj (weight then bias), ln_f) into a
 * malloc'd array; *n receives the count (4 + 12 * n_layer). */
gpt2_tensor *gpt2_tensors(lmp_gpt2 *m, int *n);

#endif
