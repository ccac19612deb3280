/*
 * gpt2_params.c — a GPT-2's parameter tensors by name, for training: the
 * enumeration every other piece uses (optimizer registration, gradient
 * binding, copies), making a loaded (read-only, memory-mapped) model
 * writable, and copying weights between two models of one config (resuming
 * from a checkpoint into the model being trained).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "gpt2_priv.h"
#include "optim.h"

gpt2_tensor *gpt2_tensors(lmp_gpt2 *m, int *n)
{
    const lmp_gpt2_config *c = &m->config;
    int L = c->n_layer, C = c->n_embd, k = 0;
    gpt2_tensor *t = callocCheck((size_t)(4 + 12 * L), sizeof *t);
#define ADD(nm, ptr, a, b)                                                   \
    do {                                                                     \
        snprintf(t[k].name, sizeof t[k].name, "%s", nm);                     \
        t[k].slot = &(ptr);                                                  \
        t[k].d0 = (a);                                                       \
        t[k].d1 = (b);                                                       \
        t[k].n = (size_t)(a) * (size_t)((b) ? (b) : 1);                      \
        k++;                                                                 \
    } while (0)
    ADD("wte.weight", m->wte, c->vocab_size, C);
    ADD("wpe.weight", m->wpe, c->n_ctx, C);
    for (int l = 0; l < L; l++) {
        lmp_gpt2_block *b = &m->h[l];
        char nm[64];
        snprintf(nm, sizeof nm, "h.%d.ln_1.weight", l);
        ADD(nm, b->ln_1_w, C, 0);
        snprintf(nm, sizeof nm, "h.%d.ln_1.bias", l);
        ADD(nm, b->ln_1_b, C, 0);
        for (int j = 0; j < 4; j++) {
            lmp_gpt2_linear *li = &m->linears[4 * l + j];
            if (j == 2) { /* ln_2 sits between attention and MLP, as in the forward */
                snprintf(nm, sizeof nm, "h.%d.ln_2.weight", l);
                ADD(nm, b->ln_2_w, C, 0);
                snprintf(nm, sizeof nm, "h.%d.ln_2.bias", l);
                ADD(nm, b->ln_2_b, C, 0);
            }
            snprintf(nm, sizeof nm, "%s.weight", li->name);
            ADD(nm, li->weight, li->in, li->out);
            snprintf(nm, sizeof nm, "%s.bias", li->name);
            ADD(nm, li->bias, li->out, 0);
        }
    }
    ADD("ln_f.weight", m->ln_f_w, C, 0);
    ADD("ln_f.bias", m->ln_f_b, C, 0);
#undef ADD
    *n = k;
    return t;
}

int lmp_gpt2_own_params(lmp_gpt2 *m)
{
    if (m->storage->all_owned) return 0;
    int n;
    gpt2_tensor *t = gpt2_tensors(m, &n);
    float *p = gpt2_own(m, lmp_gpt2_num_params(&m->config));
    for (int i = 0; i < n; i++) {
        memcpy(p, *t[i].slot, t[i].n * sizeof(float));
        *t[i].slot = p;
        p += t[i].n;
    }
    free(t);
    /* the mapping, now unreferenced, stays open until lmp_gpt2_free */
    m->storage->all_owned = 1;
    return 0;
}

int lmp_gpt2_params_add(lmp_gpt2 *m, lmp_params_group *g, lmp_gpt2_flags_fn fn, void *user)
{
    int n, rc = 0;
    gpt2_tensor *t = gpt2_tensors(m, &n);
    for (int i = 0; i < n && rc == 0; i++) {
        int flags = LMP_PARAM_TRAIN | (t[i].d1 == 0 ? LMP_PARAM_NO_DECAY : 0);
        if (fn) flags = fn(user, t[i].name, flags);
        if ((flags & LMP_PARAM_TRAIN) && !m->storage->all_owned)
            rc = lmp_error("%s: cannot train \"%s\": the parameters are read-only (memory-mapped); "
                           "call lmp_gpt2_own_params first",
                           m->source, t[i].name);
        else
            rc = lmp_params_add(g, t[i].name, *t[i].slot, t[i].n, flags);
    }
    free(t);
    return rc;
}

int lmp_gpt2_copy_params(lmp_gpt2 *dst, lmp_gpt2 *src)
{
    const lmp_gpt2_config *a = &dst->config, *b = &src->config;
    if (a->n_layer != b->n_layer || a->n_head != b->n_head || a->n_embd != b->n_embd ||
        a->n_ctx != b->n_ctx || a->vocab_size != b->vocab_size)
        return lmp_error("%s: config (n_layer %d, n_head %d, n_embd %d, n_ctx %d, vocab %d) "
                         "differs from %s's (n_layer %d, n_head %d, n_embd %d, n_ctx %d, vocab %d)",
                         src->source, b->n_layer, b->n_head, b->n_embd, b->n_ctx, b->vocab_size,
                         dst->source, a->n_layer, a->n_head, a->n_embd, a->n_ctx, a->vocab_size);
    if (!dst->storage->all_owned)
        return lmp_error("%s: cannot copy weights into read-only (memory-mapped) parameters",
                         dst->source);
    int n;
    gpt2_tensor *td = gpt2_tensors(dst, &n), *ts = gpt2_tensors(src, &n);
    for (int i = 0; i < n; i++) memcpy(*td[i].slot, *ts[i].slot, td[i].n * sizeof(float));
    free(td);
    free(ts);
    return 0;
}
