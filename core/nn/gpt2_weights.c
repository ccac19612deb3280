/*
 * gpt2_weights.c — the weight format a GPT-2 model uses for inference
 * (lmp_gpt2_set_weights): f16 or q8 copies (core/nn/qmat.h) of the four linear
 * layers of every block and of the tied LM head, made from the fp32
 * parameters, which stay as they are (training, the embedding lookup and
 * saving keep using them).
 */
#include "config.h"

#include <stdlib.h>

#include "gpt2_priv.h"
#include "qmat.h"

void gpt2_weights_free(lmp_gpt2 *m)
{
    for (int i = 0; i < m->n_linears; i++) {
        lmp_qmat_free((lmp_qmat *)m->linears[i].packed);
        m->linears[i].packed = NULL;
    }
    lmp_qmat_free(m->storage->wte_q);
    m->storage->wte_q = NULL;
    m->storage->weights = LMP_WEIGHTS_F32;
}

int lmp_gpt2_set_weights(lmp_gpt2 *m, int fmt)
{
    if (fmt != LMP_WEIGHTS_F32 && fmt != LMP_WEIGHTS_F16 && fmt != LMP_WEIGHTS_Q8)
        return lmp_error("%s: unknown weight format %d", m->source, fmt);
    gpt2_weights_free(m); /* a fresh copy even for the same format: the weights may have changed */
    if (fmt == LMP_WEIGHTS_F32) return 0;
    for (int i = 0; i < m->n_linears; i++) {
        lmp_linear *l = &m->linears[i];
        lmp_qmat *q;
        char *name = lmp_strfmt("%s: %s.weight", m->source, l->name);
        int rc = lmp_qmat_new(&q, fmt, l->weight, l->out, l->in, 1, name);
        free(name);
        if (rc != 0) {
            gpt2_weights_free(m);
            return -1;
        }
        l->packed = q;
    }
    char *name = lmp_strfmt("%s: wte.weight", m->source);
    int rc = lmp_qmat_new(&m->storage->wte_q, fmt, m->wte, m->config.vocab_size, m->config.n_embd, 0, name);
    free(name);
    if (rc != 0) {
        gpt2_weights_free(m);
        return -1;
    }
    m->storage->weights = fmt;
    return 0;
}

int lmp_gpt2_weights(const lmp_gpt2 *m) { return m->storage->weights; }

size_t lmp_gpt2_weight_bytes_per_token(const lmp_gpt2 *m)
{
    size_t total = 0;
    if (m->storage->wte_q) total += lmp_qmat_bytes(m->storage->wte_q);
    else total += (size_t)m->config.vocab_size * m->config.n_embd * sizeof(float);
    for (int i = 0; i < m->n_linears; i++) {
        const lmp_linear *l = &m->linears[i];
        total += l->packed ? lmp_qmat_bytes(l->packed) : (size_t)l->in * l->out * sizeof(float);
    }
    return total;
}
