/*
 * gpt2_params.c — a GPT-2's parameter tensors by name, for training:
 * registering them with an optimizer (the enumeration is gpt2_tensors.c's), making a loaded (read-only, memory-mapped) model
 * writable, and copying weights between two models of one config (resuming
 * from a checkpoint into the model being trained).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "gpt2_priv.h"
#include "optim.h"

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
