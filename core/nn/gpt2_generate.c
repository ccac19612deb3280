/*
 * gpt2_generate.c — text generation with a KV cache: a "ragged" forward over
 * rows that each carry (sequence, position), so one step can prefill some
 * sequences and extend others by one token, every linear layer seeing all
 * rows at once; attention of a row over its sequence's cached keys/values;
 * and the sampler (repetition penalty, temperature, top-k, top-p), applied in
 * Hugging Face's order.  See lmp_gpt2_generate in gpt2.h for the sliding
 * window used past n_ctx.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2_priv.h"
#include "nn.h"

typedef struct {
    int nseq, cap;  /* sequences, positions per sequence */
    float *k, *v;   /* [L, nseq, cap, C] */
} kvcache;

typedef struct {      /* per-row buffers for one step */
    int rows;         /* capacity */
    int *tok, *seq, *pos;
    float *x, *ln, *qkv, *atty, *proj, *fch, *fch_gelu, *lnf;
} step_ws;

static void ws_reserve(step_ws *w, int R, int C)
{
    if (R <= w->rows) return;
    size_t r = (size_t)R;
    w->tok = reallocCheck(w->tok, r * sizeof(int));
    w->seq = reallocCheck(w->seq, r * sizeof(int));
    w->pos = reallocCheck(w->pos, r * sizeof(int));
    w->x = reallocCheck(w->x, r * C * sizeof(float));
    w->ln = reallocCheck(w->ln, r * C * sizeof(float));
    w->qkv = reallocCheck(w->qkv, r * 3 * C * sizeof(float));
    w->atty = reallocCheck(w->atty, r * C * sizeof(float));
    w->proj = reallocCheck(w->proj, r * C * sizeof(float));
    w->fch = reallocCheck(w->fch, r * 4 * C * sizeof(float));
    w->fch_gelu = reallocCheck(w->fch_gelu, r * 4 * C * sizeof(float));
    w->lnf = reallocCheck(w->lnf, r * C * sizeof(float));
    w->rows = R;
}

static void ws_free(step_ws *w)
{
    free(w->tok);
    free(w->seq);
    free(w->pos);
    free(w->x);
    free(w->ln);
    free(w->qkv);
    free(w->atty);
    free(w->proj);
    free(w->fch);
    free(w->fch_gelu);
    free(w->lnf);
}

/*
 * Attention of R rows over a KV cache.  Row r belongs to sequence seq[r] at
 * position pos[r]; its query is qkv[r, 0:C] and it sees keys/values
 * 0..pos[r] of its sequence: kc, vc [nseq, cap, C], already holding this
 * step's rows.  out[R,C].  Causal masking is implied by the positions.
 */
static void attention_cached_forward(float *out, const float *qkv, const float *kc, const float *vc,
                                     const int *seq, const int *pos, int R, int C, int NH, int cap)
{
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    /* threads only pay off with enough work (and cost dearly on a busy machine) */
    size_t work = 0;
    for (int r = 0; r < R; r++) work += (size_t)(pos[r] + 1) * C;
#pragma omp parallel if (work >= (1u << 16))
    {
        float *w = mallocCheck((size_t)cap * sizeof(float));
#pragma omp for collapse(2) schedule(static)
        for (int r = 0; r < R; r++)
            for (int h = 0; h < NH; h++) {
                const float *q = qkv + (size_t)r * 3 * C + h * hs;
                const float *K = kc + (size_t)seq[r] * cap * C + h * hs;
                const float *Vv = vc + (size_t)seq[r] * cap * C + h * hs;
                int n = pos[r] + 1;
                float mx = -INFINITY;
                for (int j = 0; j < n; j++) {
                    const float *k = K + (size_t)j * C;
                    float s = 0;
                    for (int i = 0; i < hs; i++) s += q[i] * k[i];
                    s *= scale;
                    w[j] = s;
                    if (s > mx) mx = s;
                }
                float sum = 0;
                for (int j = 0; j < n; j++) {
                    w[j] = expf(w[j] - mx);
                    sum += w[j];
                }
                float inv = 1.0f / sum, *o = out + (size_t)r * C + h * hs;
                for (int i = 0; i < hs; i++) o[i] = 0;
                for (int j = 0; j < n; j++) {
                    const float *v = Vv + (size_t)j * C;
                    float a = w[j] * inv;
                    for (int i = 0; i < hs; i++) o[i] += a * v[i];
                }
            }
        free(w);
    }
}

/* Forward of w->tok/seq/pos[0..R) through the model, writing each row's keys
 * and values into the cache; final-LayerNorm output in w->lnf[R,C]. */
static void cached_forward(lmp_gpt2 *m, kvcache *kv, step_ws *w, int R)
{
    const lmp_gpt2_config *c = &m->config;
    int C = c->n_embd, V = c->vocab_size;
    size_t RC = (size_t)R * C, per_layer = (size_t)kv->nseq * kv->cap * C;
    for (int r = 0; r < R; r++) /* ids were validated; wpe shifted to the row's position */
        lmp_nn_encoder_forward(w->x + (size_t)r * C, &w->tok[r], m->wte, m->wpe + (size_t)w->pos[r] * C,
                        1, 1, C, V);
    for (int l = 0; l < c->n_layer; l++) {
        const lmp_gpt2_block *b = &m->h[l];
        float *kc = kv->k + l * per_layer, *vc = kv->v + l * per_layer;
        lmp_nn_layernorm_forward(w->ln, NULL, NULL, w->x, b->ln_1_w, b->ln_1_b, R, C);
        lmp_gpt2_linear_forward(b->c_attn, w->qkv, w->ln, R);
        for (int r = 0; r < R; r++) {
            size_t at = ((size_t)w->seq[r] * kv->cap + w->pos[r]) * C;
            memcpy(kc + at, w->qkv + (size_t)r * 3 * C + C, (size_t)C * sizeof(float));
            memcpy(vc + at, w->qkv + (size_t)r * 3 * C + 2 * C, (size_t)C * sizeof(float));
        }
        attention_cached_forward(w->atty, w->qkv, kc, vc, w->seq, w->pos, R, C, c->n_head, kv->cap);
        lmp_gpt2_linear_forward(b->attn_proj, w->proj, w->atty, R);
        lmp_nn_residual_forward(w->x, w->x, w->proj, RC);
        lmp_nn_layernorm_forward(w->ln, NULL, NULL, w->x, b->ln_2_w, b->ln_2_b, R, C);
        lmp_gpt2_linear_forward(b->c_fc, w->fch, w->ln, R);
        lmp_nn_gelu_forward(w->fch_gelu, w->fch, RC * 4);
        lmp_gpt2_linear_forward(b->mlp_proj, w->proj, w->fch_gelu, R);
        lmp_nn_residual_forward(w->x, w->x, w->proj, RC);
    }
    lmp_nn_layernorm_forward(w->lnf, NULL, NULL, w->x, m->ln_f_w, m->ln_f_b, R, C);
}

/* ------------------------------------------------------------ sampling */

typedef struct {
    float v;
    int i;
} cand;

/* a before b: larger logit first, then smaller token id (deterministic ties) */
static int cand_before(const cand *a, const cand *b) { return a->v > b->v || (a->v == b->v && a->i < b->i); }

static int cmp_cand(const void *pa, const void *pb)
{
    const cand *a = pa, *b = pb;
    return cand_before(a, b) ? -1 : cand_before(b, a) ? 1 : 0;
}

/* keep the k best of x[0..n) in heap[0..k) (min-heap on cand_before) */
static int top_k_select(const float *x, int n, int k, cand *heap)
{
    int size = 0;
    for (int i = 0; i < n; i++) {
        cand c = { x[i], i };
        if (size < k) {
            int j = size++;
            while (j > 0 && cand_before(&heap[(j - 1) / 2], &c)) {
                heap[j] = heap[(j - 1) / 2];
                j = (j - 1) / 2;
            }
            heap[j] = c;
        } else if (cand_before(&c, &heap[0])) {
            int j = 0;
            for (;;) {
                int a = 2 * j + 1, b = a + 1, s = j;
                const cand *worst = &c;
                if (a < size && cand_before(worst, &heap[a])) { s = a; worst = &heap[a]; }
                if (b < size && cand_before(worst, &heap[b])) s = b;
                if (s == j) break;
                heap[j] = heap[s];
                j = s;
            }
            heap[j] = c;
        }
    }
    return size;
}

/*
 * Choose the next token from raw logits[V] (left untouched).  work[V] and
 * cands[V] are scratch.  HF order: repetition penalty on tokens seen so far
 * (positive logits divided, negative multiplied), then temperature (0 =
 * greedy), top-k, top-p over the renormalised candidates, then a draw.
 */
static int choose_token(const float *logits, int V, const uint8_t *seen,
                        const lmp_gpt2_gen_opts *o, lmp_rng *rng, float *work, cand *cands)
{
    memcpy(work, logits, (size_t)V * sizeof(float));
    if (o->repetition_penalty != 1.0f)
        for (int v = 0; v < V; v++)
            if (seen[v]) work[v] = work[v] < 0 ? work[v] * o->repetition_penalty
                                               : work[v] / o->repetition_penalty;
    if (o->temperature == 0.0f) {
        int best = 0;
        for (int v = 1; v < V; v++)
            if (work[v] > work[best]) best = v;
        return best;
    }
    int n;
    if (o->top_k > 0 && o->top_k < V) {
        n = top_k_select(work, V, o->top_k, cands);
        qsort(cands, (size_t)n, sizeof *cands, cmp_cand);
    } else {
        n = V;
        for (int v = 0; v < V; v++) cands[v] = (cand){ work[v], v };
        if (o->top_p < 1.0f) qsort(cands, (size_t)n, sizeof *cands, cmp_cand);
    }
    /* probabilities in double, relative to the best logit */
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (cands[i].v > mx) mx = cands[i].v;
    double total = 0;
    for (int i = 0; i < n; i++) {
        double p = exp(((double)cands[i].v - mx) / o->temperature);
        cands[i].v = (float)p;
        total += p;
    }
    if (o->top_p < 1.0f) { /* smallest prefix whose mass reaches top_p */
        double cum = 0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            cum += cands[i].v;
            if (cum >= o->top_p * total) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
        total = cum;
    }
    double u = (double)(lmp_rng_u64(rng) >> 11) * (1.0 / 9007199254740992.0) * total, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += cands[i].v;
        if (u < acc) return cands[i].i;
    }
    return cands[n - 1].i;
}

/* ------------------------------------------------------------ generation */

void lmp_gpt2_gen_opts_default(lmp_gpt2_gen_opts *o)
{
    *o = (lmp_gpt2_gen_opts){ .max_new_tokens = 64, .temperature = 1.0f, .top_k = 0,
                              .top_p = 1.0f, .repetition_penalty = 1.0f, .seed = 1337,
                              .eos_id = LMP_GPT2_EOS, .window_keep = 0 };
}

typedef struct {
    int *toks;   /* prompt + generated */
    int n;       /* tokens so far */
    int s;       /* window start: cache position j holds toks[s + j] */
    int clen;    /* cache entries filled */
    int made;    /* tokens generated */
    int done;
    uint8_t *seen;
    lmp_rng rng;
} seq_state;

int lmp_gpt2_generate(lmp_gpt2 *m, const int *const *prompts, const int *prompt_lens, int n_seqs,
                      const lmp_gpt2_gen_opts *opts, lmp_gpt2_token_cb cb, void *user)
{
    const lmp_gpt2_config *c = &m->config;
    int n_ctx = c->n_ctx, V = c->vocab_size, C = c->n_embd;
    lmp_gpt2_gen_opts o;
    if (opts) o = *opts;
    else lmp_gpt2_gen_opts_default(&o);
    if (n_seqs < 1) return lmp_error("%s: generate needs at least one prompt", m->source);
    if (o.max_new_tokens < 0) return lmp_error("%s: max_new_tokens %d is negative", m->source, o.max_new_tokens);
    if (!(o.temperature >= 0 && isfinite(o.temperature)))
        return lmp_error("%s: temperature %g must be >= 0", m->source, o.temperature);
    if (o.top_k < 0) return lmp_error("%s: top_k %d is negative", m->source, o.top_k);
    /* top_p 0 keeps the one most likely token, as Hugging Face's top-p
     * warper does (it always keeps at least one) */
    if (!(o.top_p >= 0 && o.top_p <= 1))
        return lmp_error("%s: top_p %g must be in [0, 1]", m->source, o.top_p);
    if (!(o.repetition_penalty > 0 && isfinite(o.repetition_penalty)))
        return lmp_error("%s: repetition_penalty %g must be > 0", m->source, o.repetition_penalty);
    if (o.window_keep == 0) o.window_keep = n_ctx - n_ctx / 4 > 0 ? n_ctx - n_ctx / 4 : 1;
    if (o.window_keep < 1 || o.window_keep > n_ctx)
        return lmp_error("%s: window_keep %d out of range [1, %d]", m->source, o.window_keep, n_ctx);
    int maxp = 0;
    long total_rows = 0;
    for (int b = 0; b < n_seqs; b++) {
        int P = prompt_lens[b];
        if (P < 1 || P > n_ctx)
            return lmp_error("%s: prompt %d has %d tokens; it must have 1 to %d (the context)",
                             m->source, b, P, n_ctx);
        for (int t = 0; t < P; t++)
            if (prompts[b][t] < 0 || prompts[b][t] >= V)
                return lmp_error("%s: prompt %d: token id %d at position %d out of range [0, %d)",
                                 m->source, b, prompts[b][t], t, V);
        if (P > maxp) maxp = P;
        total_rows += P;
    }
    if (o.max_new_tokens == 0) return 0;

    kvcache kv = { .nseq = n_seqs };
    kv.cap = maxp + o.max_new_tokens < n_ctx ? maxp + o.max_new_tokens : n_ctx;
    size_t cache_floats = (size_t)c->n_layer * n_seqs * kv.cap * C;
    kv.k = mallocCheck(cache_floats * sizeof(float));
    kv.v = mallocCheck(cache_floats * sizeof(float));
    seq_state *ss = callocCheck((size_t)n_seqs, sizeof *ss);
    for (int b = 0; b < n_seqs; b++) {
        ss[b].toks = mallocCheck(((size_t)prompt_lens[b] + o.max_new_tokens) * sizeof(int));
        memcpy(ss[b].toks, prompts[b], (size_t)prompt_lens[b] * sizeof(int));
        ss[b].n = prompt_lens[b];
        ss[b].seen = callocCheck((size_t)V, 1);
        for (int t = 0; t < ss[b].n; t++) ss[b].seen[ss[b].toks[t]] = 1;
        lmp_rng_seed(&ss[b].rng, o.seed + (uint64_t)b * 0x9E3779B97F4A7C15ull);
    }
    step_ws w = { 0 };
    ws_reserve(&w, (int)total_rows, C);
    int *last_row = mallocCheck((size_t)n_seqs * sizeof(int));
    float *lastx = mallocCheck((size_t)n_seqs * C * sizeof(float));
    float *logits = mallocCheck((size_t)n_seqs * V * sizeof(float));
    float *work = mallocCheck((size_t)V * sizeof(float));
    cand *cands = mallocCheck((size_t)V * sizeof(cand));

    int rc = 0;
    for (int step = 1; rc == 0; step++) {
        /* rows of this step: the unseen part of each live sequence's window */
        int R = 0;
        for (int b = 0; b < n_seqs; b++) {
            seq_state *q = &ss[b];
            last_row[b] = -1;
            if (q->done) continue;
            if (q->n - q->s > kv.cap) { /* window full: slide and re-prefill */
                q->s = q->n - o.window_keep;
                q->clen = 0;
            }
            int need = q->n - q->s - q->clen;
            ws_reserve(&w, R + need, C);
            for (int j = 0; j < need; j++, R++) {
                w.tok[R] = q->toks[q->s + q->clen + j];
                w.seq[R] = b;
                w.pos[R] = q->clen + j;
            }
            q->clen += need;
            last_row[b] = R - 1;
        }
        if (R == 0) break;
        cached_forward(m, &kv, &w, R);
        int live = 0; /* the last row of each live sequence, then all their logits at once */
        for (int b = 0; b < n_seqs; b++)
            if (last_row[b] >= 0)
                memcpy(lastx + (size_t)live++ * C, w.lnf + (size_t)last_row[b] * C, (size_t)C * sizeof(float));
        gpt2_lm_logits(m, lastx, live, logits);
        for (int b = 0, k = 0; b < n_seqs; b++) {
            seq_state *q = &ss[b];
            if (last_row[b] < 0) continue;
            const float *lg = logits + (size_t)k++ * V;
            /* weights are checked at load: a non-finite logit is an overflow
             * in the forward pass, and sampling from it would be garbage */
            size_t bad = lmp_nn_first_nonfinite(lg, (size_t)V);
            if (bad < (size_t)V) {
                rc = lmp_error("%s: generation step %d (sequence %d): the logit of token %zu is %s "
                               "(the forward pass overflowed)", m->source, step, b, bad,
                               isnan(lg[bad]) ? "NaN" : lg[bad] > 0 ? "+Inf" : "-Inf");
                break;
            }
            int tok = choose_token(lg, V, q->seen, &o, &q->rng, work, cands);
            q->toks[q->n++] = tok;
            q->seen[tok] = 1;
            q->made++;
            int stop = cb ? cb(user, b, tok, lg) : 0;
            if (stop || tok == o.eos_id || q->made >= o.max_new_tokens) q->done = 1;
        }
    }
    for (int b = 0; b < n_seqs; b++) {
        free(ss[b].toks);
        free(ss[b].seen);
    }
    free(ss);
    free(kv.k);
    free(kv.v);
    ws_free(&w);
    free(last_row);
    free(lastx);
    free(logits);
    free(work);
    free(cands);
    return rc;
}
