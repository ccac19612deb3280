/*
 * gpt2_backward.c — the GPT-2 backward pass: from the LM loss (the fused,
 * chunked LM head of nn.h gives d(lnf) and the head's share of d(wte)) or
 * from a caller's d(final hidden states), through the final LayerNorm, every
 * block in reverse (MLP, attention, both LayerNorms, the residual stream) to
 * the embeddings.  Only nn.h's kernels are used, and every linear op goes
 * through lmp_gpt2_linear_backward so attached adapters (LoRA) get their
 * gradients too.
 *
 * Gradients are accumulated (+=) into the buffers of an lmp_params_group
 * bound with lmp_gpt2_bind_grads; a tensor without a gradient (frozen, or
 * not registered) is passed as NULL, which skips its dweight work.  Blocks
 * below the lowest one that has a trainable tensor or an adapter are not
 * visited at all when the embeddings are frozen too.
 *
 * Activation gradients need only a few [B,T,*] buffers, reused by every
 * layer (the forward's activations are what backward reads per layer):
 *   dres [B,T,C]   gradient of the residual stream, carried down the blocks
 *   dc   [B,T,C]   d(ln1|atty|ln2|lnf out), one at a time
 *   d4a  [B,T,4C]  d(fch_gelu), then d(qkv) (3C of it)
 *   d4b  [B,T,4C]  d(fch)
 *   datt [B,NH,T,T] lmp_nn_attention_backward's scratch
 * allocated for the largest (B, T) shape so far and re-carved for smaller ones.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2_priv.h"
#include "nn.h"
#include "optim.h"

struct lmp_gpt2_train {
    lmp_params_group *g;
    gpt2_grads d; /* the parameters' gradients, NULL where not trained */
    /* activation gradients for one (B, T) shape */
    int B, T;
    size_t cap; /* floats mem holds: the largest shape so far */
    float *mem, *dres, *dc, *d4a, *d4b, *datt, *dlnf;
    /* LM head scratch: lm_chunk rows of V logits */
    float *lm_scratch;
    int lm_chunk;
};

static void train_free(struct lmp_gpt2_train *t)
{
    if (!t) return;
    free(t->d.h);
    free(t->mem);
    free(t->lm_scratch);
    free(t);
}

int lmp_gpt2_bind_grads(lmp_gpt2 *m, lmp_params_group *g)
{
    if (!g->allocated)
        return lmp_error("%s: lmp_gpt2_bind_grads before lmp_params_alloc_grads", m->source);
    int n, L = m->config.n_layer;
    gpt2_tensor *t = gpt2_tensors(m, &n);
    gpt2_grads d = { .h = callocCheck((size_t)L, sizeof *d.h) };
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        lmp_param_tensor *pt = lmp_params_find(g, t[i].name);
        if (!pt) continue;
        if (pt->data != *t[i].slot || pt->n != t[i].n)
            rc = lmp_error("%s: parameter group's \"%s\" is not this model's tensor", m->source,
                           t[i].name);
        else
            *gpt2_grad_slot(&d, &t[i]) = pt->grad; /* by slot: the table's order is free */
    }
    free(t);
    if (rc) {
        free(d.h);
        return -1;
    }
    struct lmp_gpt2_train *tr = m->train;
    if (!tr) {
        tr = m->train = callocCheck(1, sizeof *tr);
        m->storage->train_free = train_free;
    }
    free(tr->d.h);
    tr->d = d;
    tr->g = g;
    return 0;
}

/* Carve the activation-gradient buffers for (B, T); they only grow, so
 * batches of changing length (dynamic padding) allocate nothing. */
static void train_prepare(lmp_gpt2 *m, int B, int T)
{
    struct lmp_gpt2_train *tr = m->train;
    if (tr->mem && tr->B == B && tr->T == T) return;
    size_t C = (size_t)m->config.n_embd, NH = (size_t)m->config.n_head, BT = (size_t)B * T;
    size_t sizes[] = { BT * C, BT * C, BT * 4 * C, BT * 4 * C, (size_t)B * NH * T * T, BT * C };
    float **ptrs[] = { &tr->dres, &tr->dc, &tr->d4a, &tr->d4b, &tr->datt, &tr->dlnf };
    gpt2_carve(&tr->mem, &tr->cap, ptrs, sizes, (int)(sizeof sizes / sizeof sizes[0]));
    tr->B = B;
    tr->T = T;
}

static int check_ready(lmp_gpt2 *m)
{
    if (!m->train || !m->train->d.h)
        return lmp_error("%s: backward before lmp_gpt2_bind_grads", m->source);
    if (!m->acts.for_backward)
        return lmp_error("%s: backward needs a forward that kept its activations "
                         "(lmp_gpt2_forward with for_backward = 1)",
                         m->source);
    return 0;
}

static int block_needs_grad(const lmp_gpt2 *m, int l)
{
    const gpt2_block_grads *bg = &m->train->d.h[l];
    if (bg->ln_1_w || bg->ln_1_b || bg->ln_2_w || bg->ln_2_b) return 1;
    for (int j = 0; j < 4; j++)
        if (bg->w[j] || bg->b[j] || m->linears[4 * l + j].adapters) return 1;
    return 0;
}

/* Backward from tr->dlnf (d loss / d acts.lnf) down to the embeddings. */
static void backward_body(lmp_gpt2 *m)
{
    struct lmp_gpt2_train *tr = m->train;
    lmp_gpt2_acts *a = &m->acts;
    const lmp_gpt2_config *c = &m->config;
    int B = a->B, T = a->T, L = c->n_layer, C = c->n_embd, NH = c->n_head;
    size_t BT = (size_t)B * T, BTC = BT * C;

    /* the lowest block gradients must reach */
    int emb = tr->d.wte || tr->d.wpe, lo = emb ? 0 : L;
    for (int l = 0; l < L && lo == L; l++)
        if (block_needs_grad(m, l)) lo = l;
    int need_dres = emb || lo < L; /* does anything below ln_f need d(residual)? */

    const float *last = L ? a->residual3 + (size_t)(L - 1) * BTC : a->encoded;
    memset(tr->dres, 0, BTC * sizeof(float));
    lmp_nn_layernorm_backward(need_dres ? tr->dres : NULL, tr->d.ln_f_w, tr->d.ln_f_b, tr->dlnf, last,
                       m->ln_f_w, a->lnf_mean, a->lnf_rstd, (int)BT, C);
    if (!need_dres) return;

    for (int l = L - 1; l >= lo; l--) {
        const lmp_gpt2_block *blk = &m->h[l];
        const gpt2_block_grads *bg = &tr->d.h[l];
        size_t li = (size_t)l;
        const float *residual = l ? a->residual3 + (li - 1) * BTC : a->encoded;
        const float *ln1 = a->ln1 + li * BTC, *ln1_mean = a->ln1_mean + li * BT;
        const float *ln1_rstd = a->ln1_rstd + li * BT, *qkv = a->qkv + li * BTC * 3;
        const float *atty = a->atty + li * BTC, *att = a->att + li * (size_t)B * NH * T * T;
        const float *residual2 = a->residual2 + li * BTC;
        const float *ln2 = a->ln2 + li * BTC, *ln2_mean = a->ln2_mean + li * BT;
        const float *ln2_rstd = a->ln2_rstd + li * BT, *fch = a->fch + li * BTC * 4;
        const float *fch_gelu = a->fch_gelu + li * BTC * 4;
        /* below this block, does anything still need the residual's gradient? */
        int below = l > lo || emb;

        /* residual3 = residual2 + fcproj: dres is d(fcproj) and passes on to residual2 */
        memset(tr->d4a, 0, BTC * 4 * sizeof(float));
        lmp_gpt2_linear_backward(blk->mlp_proj, tr->d4a, bg->w[3], bg->b[3], tr->dres, fch_gelu, (int)BT);
        memset(tr->d4b, 0, BTC * 4 * sizeof(float));
        lmp_nn_gelu_backward(tr->d4b, fch, tr->d4a, BTC * 4);
        memset(tr->dc, 0, BTC * sizeof(float));
        lmp_gpt2_linear_backward(blk->c_fc, tr->dc, bg->w[2], bg->b[2], tr->d4b, ln2, (int)BT);
        lmp_nn_layernorm_backward(tr->dres, bg->ln_2_w, bg->ln_2_b, tr->dc, residual2, blk->ln_2_w,
                           ln2_mean, ln2_rstd, (int)BT, C);

        /* residual2 = residual + attproj: dres is d(attproj) and passes on to residual */
        memset(tr->dc, 0, BTC * sizeof(float));
        lmp_gpt2_linear_backward(blk->attn_proj, tr->dc, bg->w[1], bg->b[1], tr->dres, atty, (int)BT);
        float *dqkv = tr->d4a;
        memset(dqkv, 0, BTC * 3 * sizeof(float));
        lmp_nn_attention_backward(dqkv, tr->datt, tr->dc, qkv, att, B, T, C, NH);
        /* d(ln1) is needed for ln_1's own gradients or to go further down */
        int need_dln1 = below || bg->ln_1_w || bg->ln_1_b;
        memset(tr->dc, 0, BTC * sizeof(float));
        lmp_gpt2_linear_backward(blk->c_attn, need_dln1 ? tr->dc : NULL, bg->w[0], bg->b[0], dqkv, ln1,
                             (int)BT);
        if (need_dln1)
            lmp_nn_layernorm_backward(below ? tr->dres : NULL, bg->ln_1_w, bg->ln_1_b, tr->dc, residual,
                               blk->ln_1_w, ln1_mean, ln1_rstd, (int)BT, C);
    }
    if (emb) lmp_nn_encoder_backward(tr->d.wte, tr->d.wpe, tr->dres, a->inputs, B, T, C);
}

int lmp_gpt2_backward_from_hidden(lmp_gpt2 *m, const float *dlnf)
{
    if (check_ready(m) != 0) return -1;
    train_prepare(m, m->acts.B, m->acts.T);
    struct lmp_gpt2_train *tr = m->train;
    memcpy(tr->dlnf, dlnf, (size_t)tr->B * tr->T * m->config.n_embd * sizeof(float));
    backward_body(m);
    return 0;
}

/* LM-head rows computed at once: as many as fit 16M floats (64 MB) of
 * logits, all of them when that is the whole batch — bigger chunks mean
 * fewer passes over d(wte) (see nn.h). */
static int lm_chunk_rows(int BT, int V)
{
    long rows = (16L << 20) / V;
    if (rows < 1) rows = 1;
    return rows < BT ? (int)rows : BT;
}

int lmp_gpt2_backward_lm(lmp_gpt2 *m, const int *targets, float *loss, float *losses)
{
    if (check_ready(m) != 0) return -1;
    lmp_gpt2_acts *a = &m->acts;
    train_prepare(m, a->B, a->T);
    struct lmp_gpt2_train *tr = m->train;
    int BT = a->B * a->T, C = m->config.n_embd, V = m->config.vocab_size;
    int chunk = lm_chunk_rows(BT, V);
    if (tr->lm_chunk < chunk) {
        free(tr->lm_scratch);
        tr->lm_scratch = mallocCheck((size_t)chunk * V * sizeof(float));
        tr->lm_chunk = chunk;
    }
    memset(tr->dlnf, 0, (size_t)BT * C * sizeof(float));
    float mean = lmp_nn_lmhead_xent_forward_backward(a->lnf, m->wte, targets, BT, C, V, tr->dlnf,
                                              tr->d.wte, losses, tr->lm_scratch, tr->lm_chunk);
    if (isnan(mean)) {
        /* a bad target is an error (message set); a NaN loss from the model is not */
        for (int i = 0; i < BT; i++)
            if (targets[i] < -1 || targets[i] >= V) return -1;
    }
    if (loss) *loss = mean;
    backward_body(m);
    return 0;
}
