/*
 * gpt2_tensors.c — the one table of a GPT-2's parameter tensors, and what is
 * built from it: the model shell (linear layers named and shaped by it), the
 * enumeration in PyTorch's named_parameters() order (optimizer registration,
 * copies, finite checks, safetensors load and save) and the slots of the
 * gradients.  Init (gpt2.c), the llm.c reader (gpt2_load.c) and gradient
 * binding (gpt2_backward.c) walk the same table.
 *
 * The rows are in llm.c's checkpoint order: wte, wpe, then each per-block
 * tensor for all layers at once, then ln_f.  A tensor's pointer lives at
 * `off` in lmp_gpt2 (global), lmp_gpt2_block (a block's LayerNorm) or
 * lmp_linear (lin >= 0: a block's linear layer 0..3); its gradient pointer at
 * `goff` in gpt2_grads or gpt2_block_grads, so binding goes by slot, never by
 * position.  Shapes are ours ([in, out] like HF's Conv1D); llm.c stores the
 * four weights per block as nn.Linear [out, in] (llmc_t).
 */
#include "config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2_priv.h"

enum { D_1, D_V, D_T, D_C, D_3C, D_4C }; /* D_1: no second dimension */

#define G(nm, f, d0, d1, init) { nm, 0, -1, offsetof(lmp_gpt2, f), offsetof(gpt2_grads, f), d0, d1, init, 0 }
#define LN(nm, f, init) { nm, 1, -1, offsetof(lmp_gpt2_block, f), offsetof(gpt2_block_grads, f), D_C, D_1, init, 0 }
#define LW(nm, k, d0, d1) { nm, 1, k, offsetof(lmp_linear, weight), offsetof(gpt2_block_grads, w[k]), d0, d1, GPT2_INIT_NORMAL, 1 }
#define LB(nm, k, d0) { nm, 1, k, offsetof(lmp_linear, bias), offsetof(gpt2_block_grads, b[k]), d0, D_1, GPT2_INIT_ZEROS, 0 }

const gpt2_tensor_def gpt2_tensor_table[GPT2_N_DEFS] = {
    G("wte.weight", wte, D_V, D_C, GPT2_INIT_NORMAL), /* [V,C]; llm.c pads to Vp rows */
    G("wpe.weight", wpe, D_T, D_C, GPT2_INIT_NORMAL), /* [n_ctx,C] */
    LN("ln_1.weight", ln_1_w, GPT2_INIT_ONES),
    LN("ln_1.bias", ln_1_b, GPT2_INIT_ZEROS),
    LW("attn.c_attn.weight", 0, D_C, D_3C),
    LB("attn.c_attn.bias", 0, D_3C),
    LW("attn.c_proj.weight", 1, D_C, D_C),
    LB("attn.c_proj.bias", 1, D_C),
    LN("ln_2.weight", ln_2_w, GPT2_INIT_ONES),
    LN("ln_2.bias", ln_2_b, GPT2_INIT_ZEROS),
    LW("mlp.c_fc.weight", 2, D_C, D_4C),
    LB("mlp.c_fc.bias", 2, D_4C),
    LW("mlp.c_proj.weight", 3, D_4C, D_C),
    LB("mlp.c_proj.bias", 3, D_C),
    G("ln_f.weight", ln_f_w, D_C, D_1, GPT2_INIT_ONES),
    G("ln_f.bias", ln_f_b, D_C, D_1, GPT2_INIT_ZEROS),
};

static int dim(const lmp_gpt2_config *c, int d)
{
    int C = c->n_embd;
    switch (d) {
    case D_V: return c->vocab_size;
    case D_T: return c->n_ctx;
    case D_C: return C;
    case D_3C: return 3 * C;
    case D_4C: return 4 * C;
    default: return 0;
    }
}

gpt2_tensor gpt2_tensor_at(lmp_gpt2 *m, const gpt2_tensor_def *d, int l)
{
    gpt2_tensor t = { .def = d, .layer = d->block ? l : -1 };
    char *base = !d->block ? (char *)m : d->lin < 0 ? (char *)&m->h[l] : (char *)&m->linears[4 * l + d->lin];
    t.slot = (float **)(base + d->off);
    t.d0 = dim(&m->config, d->d0);
    t.d1 = dim(&m->config, d->d1);
    t.n = (size_t)t.d0 * (size_t)(t.d1 ? t.d1 : 1);
    if (d->block) snprintf(t.name, sizeof t.name, "h.%d.%s", l, d->name);
    else snprintf(t.name, sizeof t.name, "%s", d->name);
    return t;
}

float **gpt2_grad_slot(gpt2_grads *g, const gpt2_tensor *t)
{
    char *base = t->layer < 0 ? (char *)g : (char *)&g->h[t->layer];
    return (float **)(base + t->def->goff);
}

lmp_gpt2 *gpt2_new_shell(const lmp_gpt2_config *c, const char *source)
{
    lmp_gpt2 *m = callocCheck(1, sizeof *m);
    m->config = *c;
    m->source = strdupCheck(source);
    m->storage = callocCheck(1, sizeof *m->storage);
    int L = c->n_layer;
    m->h = callocCheck((size_t)L, sizeof *m->h);
    m->n_linears = 4 * L;
    m->linears = callocCheck((size_t)m->n_linears, sizeof *m->linears);
    for (int l = 0; l < L; l++) {
        for (const gpt2_tensor_def *d = gpt2_tensor_table; d < gpt2_tensor_table + GPT2_N_DEFS; d++) {
            if (d->lin < 0 || d->off != offsetof(lmp_linear, weight)) continue;
            lmp_gpt2_linear *li = &m->linears[4 * l + d->lin];
            /* "attn.c_attn.weight" -> "h.<l>.attn.c_attn" */
            snprintf(li->name, sizeof li->name, "h.%d.%.*s", l, (int)(strlen(d->name) - strlen(".weight")),
                     d->name);
            li->in = dim(c, d->d0);
            li->out = dim(c, d->d1);
        }
        m->h[l].c_attn = &m->linears[4 * l + 0];
        m->h[l].attn_proj = &m->linears[4 * l + 1];
        m->h[l].c_fc = &m->linears[4 * l + 2];
        m->h[l].mlp_proj = &m->linears[4 * l + 3];
    }
    return m;
}

gpt2_tensor *gpt2_tensors(lmp_gpt2 *m, int *n)
{
    int L = m->config.n_layer, k = 0;
    gpt2_tensor *t = callocCheck((size_t)(4 + 12 * L), sizeof *t);
    const gpt2_tensor_def *d = gpt2_tensor_table, *end = gpt2_tensor_table + GPT2_N_DEFS;
    for (; d < end && !d->block; d++) t[k++] = gpt2_tensor_at(m, d, -1);
    const gpt2_tensor_def *blk = d;
    for (; d < end && d->block; d++) {}
    for (int l = 0; l < L; l++)
        for (const gpt2_tensor_def *b = blk; b < d; b++) t[k++] = gpt2_tensor_at(m, b, l);
    for (; d < end; d++) t[k++] = gpt2_tensor_at(m, d, -1);
    *n = k;
    return t;
}
