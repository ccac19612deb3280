/*
 * gpt2_priv.h — what the GPT-2 files share but the public API does not show:
 * where a model's parameters live, the tensor table (gpt2_tensors.c) and the
 * helpers that build an empty model for a config.  The files depend in one
 * direction: gpt2_tensors.c <- gpt2.c <- gpt2_params.c, gpt2_load.c,
 * gpt2_backward.c, gpt2_generate.c.
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
    /* frees m->train; set by lmp_gpt2_bind_grads (gpt2_backward.c) */
    void (*train_free)(struct lmp_gpt2_train *t);
};

/* Rows of the LM head computed at once by lmp_nn_lmhead_xent_forward. */
#define GPT2_LM_CHUNK 32

/* A model for config c with names and shapes filled in, parameter pointers NULL
 * (gpt2_tensors.c). */
lmp_gpt2 *gpt2_new_shell(const lmp_gpt2_config *c, const char *source);
/* logits[n,V] of final-LayerNorm rows x[n,C] through the tied head. */
void gpt2_lm_logits(const lmp_gpt2 *m, const float *x, int n, float *logits);
/* n floats of zeroed memory owned (and freed) by the model. */
float *gpt2_own(lmp_gpt2 *m, size_t n);
/* Point ptrs[i] at consecutive runs of sizes[i] floats in *block, which
 * only grows (to *cap floats): scratch for a (B, T) that changes every step
 * is allocated, and page-faulted in, once. */
void gpt2_carve(float **block, size_t *cap, float **const *ptrs, const size_t *sizes, int n);
/* Frees the f16 / q8 inference copies (gpt2_weights.c); back to f32. */
void gpt2_weights_free(lmp_gpt2 *m);

/* Gradient pointers, slot for slot like the parameters (NULL: not trained). */
typedef struct {
    float *ln_1_w, *ln_1_b, *ln_2_w, *ln_2_b;
    float *w[4], *b[4]; /* c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj */
} gpt2_block_grads;
typedef struct {
    float *wte, *wpe, *ln_f_w, *ln_f_b;
    gpt2_block_grads *h; /* [n_layer] */
} gpt2_grads;

enum { GPT2_INIT_NORMAL, GPT2_INIT_ZEROS, GPT2_INIT_ONES }; /* normal(0, 0.02) */

/* One row of the tensor table (gpt2_tensors.c says how to read it). */
typedef struct {
    const char *name; /* HF GPT2Model name; per-block ones after "h.<l>." */
    int block;        /* one per block */
    int lin;          /* block: its linear layer 0..3, or -1 */
    size_t off;       /* offsetof its pointer in lmp_gpt2 / lmp_gpt2_block / lmp_linear */
    size_t goff;      /* offsetof its gradient pointer in gpt2_grads / gpt2_block_grads */
    int d0, d1;       /* shape, as dims of the config (gpt2_tensors.c) */
    int init;         /* GPT2_INIT_* */
    int llmc_t;       /* llm.c stores it transposed, [d1, d0] */
} gpt2_tensor_def;
#define GPT2_N_DEFS 16
extern const gpt2_tensor_def gpt2_tensor_table[GPT2_N_DEFS];

/* One parameter tensor of a model: its HF GPT2Model name, where the model
 * keeps its pointer, element count and shape (d1 == 0 for a vector). */
typedef struct {
    char name[64];
    float **slot;
    size_t n;
    int d0, d1;
    int layer; /* block, or -1 */
    const gpt2_tensor_def *def;
} gpt2_tensor;
/* Row d of the table for block l (ignored for a global tensor) of m. */
gpt2_tensor gpt2_tensor_at(lmp_gpt2 *m, const gpt2_tensor_def *d, int l);
/* Every tensor of m in PyTorch's named_parameters() order (wte, wpe, per
 * block ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj (weight
 * then bias), ln_f) into a malloc'd array; *n receives the count (4 + 12 * n_layer). */
gpt2_tensor *gpt2_tensors(lmp_gpt2 *m, int *n);
/* Where g keeps the gradient of t. */
float **gpt2_grad_slot(gpt2_grads *g, const gpt2_tensor *t);

#endif
