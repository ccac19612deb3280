/*
 * gpt2.c — the GPT-2 model: linear layers with adapter hooks, the model
 * shell, the full-sequence fp32 forward on nn.h's kernels with llm.c-style
 * activations, logits at chosen positions, loss and strided perplexity.
 * Checkpoints are in gpt2_load.c, KV-cache generation in gpt2_generate.c.
 */
#include "config.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "gpt2_priv.h"
#include "nn.h"

#define HUGE_PAGE ((size_t)2 << 20)

/* ------------------------------------------------------------ linear layers */

void lmp_gpt2_linear_forward(const lmp_gpt2_linear *l, float *out, const float *inp, int N)
{
    lmp_linear_forward(l, out, inp, N);
}

void lmp_gpt2_linear_backward(const lmp_gpt2_linear *l, float *dinp, float *dweight, float *dbias,
                          const float *dout, const float *inp, int N)
{
    lmp_linear_backward(l, dinp, dweight, dbias, dout, inp, N);
}

/* ------------------------------------------------------------ config and shell */

int lmp_gpt2_config_check(const lmp_gpt2_config *c, const char *what)
{
    if (c->n_layer < 1 || c->n_layer > 1000)
        return lmp_error("%s: n_layer %d out of range [1, 1000]", what, c->n_layer);
    if (c->n_head < 1 || c->n_head > 1024)
        return lmp_error("%s: n_head %d out of range [1, 1024]", what, c->n_head);
    if (c->n_embd < 1 || c->n_embd > 65536)
        return lmp_error("%s: n_embd %d out of range [1, 65536]", what, c->n_embd);
    if (c->n_embd % c->n_head != 0)
        return lmp_error("%s: n_head %d does not divide n_embd %d", what, c->n_head, c->n_embd);
    if (c->n_ctx < 1 || c->n_ctx > 1048576)
        return lmp_error("%s: n_positions %d out of range [1, 1048576]", what, c->n_ctx);
    if (c->vocab_size < 1 || c->vocab_size > 16777216)
        return lmp_error("%s: vocab_size %d out of range [1, 16777216]", what, c->vocab_size);
    /* nn.h's layernorm has GPT-2's epsilon built in */
    if (!(fabsf(c->layer_norm_epsilon - LAYERNORM_EPS) <= 1e-9f))
        return lmp_error("%s: layer_norm_epsilon %g not supported (only %g)", what,
                         c->layer_norm_epsilon, LAYERNORM_EPS);
    return 0;
}

size_t lmp_gpt2_num_params(const lmp_gpt2_config *c)
{
    size_t C = (size_t)c->n_embd;
    return (size_t)c->vocab_size * C + (size_t)c->n_ctx * C +
           (size_t)c->n_layer * (12 * C * C + 13 * C) + 2 * C;
}

float *gpt2_own(lmp_gpt2 *m, size_t n)
{
    struct lmp_gpt2_storage *s = m->storage;
    s->owned = reallocCheck(s->owned, (size_t)(s->n_owned + 1) * sizeof *s->owned);
    size_t bytes = (n ? n : 1) * sizeof(float);
    float *p;
    if (bytes >= HUGE_PAGE) {
        /* Weights are streamed once per generated token: 2 MB pages spare the
         * TLB a miss every 4 KB. */
        size_t rounded = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
        p = aligned_alloc(HUGE_PAGE, rounded);
        if (!p) p = mallocCheck(rounded);
#ifdef MADV_HUGEPAGE
        madvise(p, rounded, MADV_HUGEPAGE);
#endif
        memset(p, 0, bytes);
    } else {
        p = callocCheck(n ? n : 1, sizeof(float));
    }
    s->owned[s->n_owned++] = p;
    return p;
}

void lmp_gpt2_free(lmp_gpt2 *m)
{
    if (!m) return;
    struct lmp_gpt2_storage *s = m->storage;
    if (m->train) s->train_free(m->train); /* only bind_grads sets m->train */
    if (s) {
        lmp_st_close(s->st);
        if (s->map) lmp_unmap_file(s->map, s->map_len);
        for (int i = 0; i < s->n_owned; i++) free(s->owned[i]);
        free(s->owned);
        free(s->lm_scratch);
        gpt2_weights_free(m);
        free(s);
    }
    free(m->acts.memory);
    free(m->acts.inputs);
    free(m->h);
    free(m->linears);
    free(m->source);
    free(m);
}

int lmp_gpt2_owns_params(const lmp_gpt2 *m) { return m->storage->all_owned; }

lmp_gpt2_linear *lmp_gpt2_find_linear(lmp_gpt2 *m, const char *name)
{
    for (int i = 0; i < m->n_linears; i++)
        if (strcmp(m->linears[i].name, name) == 0) return &m->linears[i];
    return NULL;
}

int lmp_gpt2_init_random(const lmp_gpt2_config *c, uint64_t seed, lmp_gpt2 **out)
{
    *out = NULL;
    if (lmp_gpt2_config_check(c, "random GPT-2") != 0) return -1;
    lmp_gpt2 *m = gpt2_new_shell(c, "random");
    float *p = gpt2_own(m, lmp_gpt2_num_params(c));
    m->storage->all_owned = 1;
    lmp_rng rng;
    lmp_rng_seed(&rng, seed);
    /* The table's tensors in PyTorch's order, one after another (the layout
     * lmp_gpt2_own_params gives): normal(0, 0.02) draws go to wte, wpe, then
     * each block's four weights in turn; LayerNorm weights 1, biases 0. */
    int n;
    gpt2_tensor *t = gpt2_tensors(m, &n);
    for (int k = 0; k < n; k++) {
        int init = t[k].def->init;
        *t[k].slot = p;
        for (size_t i = 0; i < t[k].n; i++)
            p[i] = init == GPT2_INIT_NORMAL ? 0.02f * lmp_rng_normal(&rng) : init == GPT2_INIT_ONES;
        p += t[k].n;
    }
    free(t);
    *out = m;
    return 0;
}

/* ------------------------------------------------------------ activations */

void gpt2_carve(float **block, size_t *cap, float **const *ptrs, const size_t *sizes, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) total += sizes[i];
    if (total > *cap) {
        free(*block);
        *block = mallocCheck(total * sizeof(float));
        *cap = total;
    }
    float *p = *block;
    for (int i = 0; i < n; i++) {
        *ptrs[i] = p;
        p += sizes[i];
    }
}

/* Carve m->acts for a (B, T) batch out of one block, like llm.c's.  With
 * dynamic padding every batch has its own T: the block only grows, so a
 * training epoch allocates (and page-faults in) its ~100s of MB once rather
 * than at every step. */
static void acts_prepare(lmp_gpt2 *m, int B, int T, int layers)
{
    lmp_gpt2_acts *a = &m->acts;
    if (a->memory && a->B == B && a->T == T && a->layers == layers) return;
    size_t C = (size_t)m->config.n_embd, NH = (size_t)m->config.n_head, Lk = (size_t)layers;
    size_t BT = (size_t)B * T;
    if (BT > a->cap_inputs) {
        free(a->inputs);
        a->inputs = mallocCheck(BT * sizeof(int));
        a->cap_inputs = BT;
    }
    float **ptrs[] = { &a->encoded, &a->ln1, &a->ln1_mean, &a->ln1_rstd, &a->qkv, &a->atty,
                       &a->att, &a->attproj, &a->residual2, &a->ln2, &a->ln2_mean, &a->ln2_rstd,
                       &a->fch, &a->fch_gelu, &a->fcproj, &a->residual3, &a->lnf, &a->lnf_mean,
                       &a->lnf_rstd };
    size_t sizes[] = { BT * C, Lk * BT * C, Lk * BT, Lk * BT, Lk * BT * 3 * C, Lk * BT * C,
                       Lk * B * NH * T * T, Lk * BT * C, Lk * BT * C, Lk * BT * C, Lk * BT, Lk * BT,
                       Lk * BT * 4 * C, Lk * BT * 4 * C, Lk * BT * C, Lk * BT * C, BT * C, BT, BT };
    gpt2_carve(&a->memory, &a->floats, ptrs, sizes, (int)(sizeof sizes / sizeof sizes[0]));
    a->B = B;
    a->T = T;
    a->layers = layers;
}

/* ------------------------------------------------------------ forward */

int lmp_gpt2_forward(lmp_gpt2 *m, const int *inputs, const int *mask, int B, int T,
                     int for_backward)
{
    const lmp_gpt2_config *c = &m->config;
    if (B < 1 || T < 1) return lmp_error("%s: empty batch (B=%d, T=%d)", m->source, B, T);
    if (T > c->n_ctx)
        return lmp_error("%s: sequence of %d tokens exceeds the context of %d", m->source, T,
                         c->n_ctx);
    if (for_backward && m->storage->weights != LMP_WEIGHTS_F32) /* backward reads the f32 weights */
        return lmp_error("%s: training needs f32 weights, the model is set to %s for inference",
                         m->source, lmp_weights_name(m->storage->weights));
    int L = c->n_layer, C = c->n_embd, NH = c->n_head, V = c->vocab_size;
    acts_prepare(m, B, T, for_backward ? L : 1);
    lmp_gpt2_acts *a = &m->acts;
    a->for_backward = 0;
    if (lmp_nn_encoder_forward(a->encoded, inputs, m->wte, m->wpe, B, T, C, V) != 0) return -1;
    memcpy(a->inputs, inputs, (size_t)B * T * sizeof(int));
    size_t BT = (size_t)B * T, BTC = BT * C;
    const float *residual = a->encoded;
    for (int l = 0; l < L; l++) {
        size_t li = for_backward ? (size_t)l : 0;
        const lmp_gpt2_block *blk = &m->h[l];
        float *ln1 = a->ln1 + li * BTC, *ln1_mean = a->ln1_mean + li * BT;
        float *ln1_rstd = a->ln1_rstd + li * BT, *qkv = a->qkv + li * BTC * 3;
        float *atty = a->atty + li * BTC, *att = a->att + li * (size_t)B * NH * T * T;
        float *attproj = a->attproj + li * BTC, *residual2 = a->residual2 + li * BTC;
        float *ln2 = a->ln2 + li * BTC, *ln2_mean = a->ln2_mean + li * BT;
        float *ln2_rstd = a->ln2_rstd + li * BT, *fch = a->fch + li * BTC * 4;
        float *fch_gelu = a->fch_gelu + li * BTC * 4, *fcproj = a->fcproj + li * BTC;
        float *residual3 = a->residual3 + li * BTC;

        lmp_nn_layernorm_forward(ln1, ln1_mean, ln1_rstd, residual, blk->ln_1_w, blk->ln_1_b, (int)BT, C);
        lmp_gpt2_linear_forward(blk->c_attn, qkv, ln1, (int)BT);
        lmp_nn_attention_forward(atty, att, qkv, mask, B, T, C, NH);
        lmp_gpt2_linear_forward(blk->attn_proj, attproj, atty, (int)BT);
        lmp_nn_residual_forward(residual2, residual, attproj, BTC);
        lmp_nn_layernorm_forward(ln2, ln2_mean, ln2_rstd, residual2, blk->ln_2_w, blk->ln_2_b, (int)BT, C);
        lmp_gpt2_linear_forward(blk->c_fc, fch, ln2, (int)BT);
        lmp_nn_gelu_forward(fch_gelu, fch, BTC * 4);
        lmp_gpt2_linear_forward(blk->mlp_proj, fcproj, fch_gelu, (int)BT);
        lmp_nn_residual_forward(residual3, residual2, fcproj, BTC);
        residual = residual3;
    }
    lmp_nn_layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, residual, m->ln_f_w, m->ln_f_b, (int)BT, C);
    a->for_backward = for_backward != 0;
    return 0;
}

void gpt2_lm_logits(const lmp_gpt2 *m, const float *x, int n, float *logits)
{
    int C = m->config.n_embd, V = m->config.vocab_size;
    if (m->storage->wte_q) lmp_qmat_forward(logits, x, m->storage->wte_q, NULL, n);
    else if (n == 1) lmp_nn_lmhead_logits(logits, x, m->wte, C, V);
    else /* logits[n,V] = x[n,C] @ wte^T: wte is read once for all rows */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, V, C, 1.0f, x, C, m->wte, C, 0.0f,
                    logits, V);
}

int lmp_gpt2_logits(lmp_gpt2 *m, const int *inputs, int B, int T, const int *positions,
                    int n_pos, float *logits)
{
    if (!positions) n_pos = T;
    for (int i = 0; positions && i < n_pos; i++)
        if (positions[i] < 0 || positions[i] >= T)
            return lmp_error("%s: logits position %d out of range [0, %d)", m->source,
                             positions[i], T);
    if (lmp_gpt2_forward(m, inputs, NULL, B, T, 0) != 0) return -1;
    int C = m->config.n_embd;
    if (!positions) { /* every position: one product over all B*T rows */
        gpt2_lm_logits(m, m->acts.lnf, B * T, logits);
        return 0;
    }
    float *rows = mallocCheck((size_t)B * n_pos * C * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int i = 0; i < n_pos; i++)
            memcpy(rows + ((size_t)b * n_pos + i) * C, m->acts.lnf + ((size_t)b * T + positions[i]) * C,
                   (size_t)C * sizeof(float));
    gpt2_lm_logits(m, rows, B * n_pos, logits);
    free(rows);
    return 0;
}

static float *lm_scratch(lmp_gpt2 *m)
{
    struct lmp_gpt2_storage *s = m->storage;
    if (!s->lm_scratch)
        s->lm_scratch = mallocCheck((size_t)GPT2_LM_CHUNK * m->config.vocab_size * sizeof(float));
    return s->lm_scratch;
}

/* Rows of the LM head per chunk from a low-precision copy: each chunk
 * converts all of wte to f32 tile by tile, so chunks are larger than
 * GPT2_LM_CHUNK (256 x 50257 floats of scratch: 51 MB). */
#define GPT2_LM_CHUNK_Q 256

/* lmp_nn_lmhead_xent_forward through m->storage->wte_q: mean loss over rows whose
 * target is not -1, losses[N] (may be NULL) per row.  Targets are checked. */
static float lmhead_xent_packed(lmp_gpt2 *m, const float *x, const int *targets, int N,
                                float *losses)
{
    int C = m->config.n_embd, V = m->config.vocab_size;
    int chunk = N < GPT2_LM_CHUNK_Q ? N : GPT2_LM_CHUNK_Q;
    float *logits = mallocCheck((size_t)chunk * V * sizeof(float));
    float *row_loss = mallocCheck((size_t)chunk * sizeof(float));
    double total = 0;
    long count = 0;
    for (int n0 = 0; n0 < N; n0 += chunk) {
        int n = N - n0 < chunk ? N - n0 : chunk, live = 0;
        for (int i = 0; i < n; i++) live += targets[n0 + i] != -1;
        if (live) {
            lmp_qmat_forward(logits, x + (size_t)n0 * C, m->storage->wte_q, NULL, n);
            lmp_nn_softmax_crossentropy_forward_backward(row_loss, NULL, logits, targets + n0, n, V);
        } else {
            for (int i = 0; i < n; i++) row_loss[i] = 0;
        }
        for (int i = 0; i < n; i++) total += row_loss[i];
        count += live;
        if (losses) memcpy(losses + n0, row_loss, (size_t)n * sizeof(float));
    }
    free(logits);
    free(row_loss);
    return count ? (float)(total / count) : 0.0f;
}

/* lmp_gpt2_loss; `where` ("" or "window ...: ") goes into its messages after the model's name. */
static int gpt2_loss(lmp_gpt2 *m, const int *inputs, const int *targets, int B, int T,
                     float *losses, float *mean, const char *where)
{
    int V = m->config.vocab_size;
    /* targets first, so that a NaN below can only mean non-finite numbers */
    for (int i = 0; i < B * T; i++)
        if (targets[i] != -1 && (targets[i] < 0 || targets[i] >= V))
            return lmp_error("%s: %starget %d at [%d,%d] out of range [0, %d)", m->source, where,
                             targets[i], i / T, i % T, V);
    if (lmp_gpt2_forward(m, inputs, NULL, B, T, 0) != 0) return -1;
    float r = m->storage->wte_q
                  ? lmhead_xent_packed(m, m->acts.lnf, targets, B * T, losses)
                  : lmp_nn_lmhead_xent_forward(m->acts.lnf, m->wte, targets, B * T, m->config.n_embd, V,
                                        losses, lm_scratch(m), GPT2_LM_CHUNK);
    if (!isfinite(r))
        return lmp_error("%s: %sthe loss is %s: the forward pass overflowed (non-finite activations)",
                         m->source, where, isnan(r) ? "NaN" : "infinite");
    if (mean) *mean = r;
    return 0;
}

int lmp_gpt2_loss(lmp_gpt2 *m, const int *inputs, const int *targets, int B, int T,
                  float *losses, float *mean)
{
    return gpt2_loss(m, inputs, targets, B, T, losses, mean, "");
}

int lmp_gpt2_perplexity(lmp_gpt2 *m, const int *ids, long n, int stride, lmp_gpt2_ppl *out)
{
    int n_ctx = m->config.n_ctx;
    if (stride <= 0) stride = n_ctx / 2 > 0 ? n_ctx / 2 : 1;
    if (stride > n_ctx)
        return lmp_error("%s: perplexity stride %d exceeds the context of %d (tokens would be skipped)",
                         m->source, stride, n_ctx);
    if (n < 2) return lmp_error("%s: perplexity needs at least 2 tokens, got %ld", m->source, n);
    int V = m->config.vocab_size;
    for (long i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return lmp_error("%s: token id %d at position %ld out of range [0, %d)", m->source,
                             ids[i], i, V);
    int *targets = mallocCheck((size_t)n_ctx * sizeof *targets);
    float *losses = mallocCheck((size_t)n_ctx * sizeof *losses);
    double total = 0;
    long count = 0, prev_end = 0;
    int rc = 0;
    for (long begin = 0;; begin += stride) {
        long end = begin + n_ctx < n ? begin + n_ctx : n;
        int T = (int)(end - begin);
        /* row t predicts ids[begin+t+1]; score only tokens no earlier window scored */
        long first = prev_end > begin + 1 ? prev_end : begin + 1;
        for (int t = 0; t < T; t++) {
            long j = begin + t + 1;
            targets[t] = (j >= first && j < end) ? ids[j] : -1;
        }
        char where[80];
        snprintf(where, sizeof where, "window of tokens [%ld, %ld): ", begin, end);
        if ((rc = gpt2_loss(m, ids + begin, targets, 1, T, losses, NULL, where)) != 0) break;
        for (int t = 0; t < T; t++)
            if (targets[t] >= 0) {
                total += losses[t];
                count++;
            }
        prev_end = end;
        if (end == n) break;
    }
    free(targets);
    free(losses);
    if (rc) return rc;
    out->nll = total / (double)count;
    out->ppl = exp(out->nll);
    out->tokens = count;
    return 0;
}
