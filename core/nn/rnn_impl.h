/*
 * rnn_impl.h — the forward and backward passes of the RNN classifier
 * (rnn_model.h), written once over a `real` type, as nn_impl.h is: core/kit/rnn.c
 * compiles them in float for the classifier, tests/check_rnn.c in double to
 * check every gradient against central finite differences.
 *
 * Before including: typedef `real`; define RNN_FN(name) (the names to give
 * the functions here), NN_FN(name) (the names of the nn.h kernels used:
 * dropout, embedding backward) and RNN_GEMM (cblas_sgemm / cblas_dgemm).
 *
 * Layout: everything runs on PACKED sequences, as PyTorch's
 * pack_padded_sequence: the rows are sorted by length (longest first, stable),
 * and step t holds the nt[t] rows longer than t, at packed rows
 * off[t] .. off[t] + nt[t] - 1.  So padding is never computed, a state is
 * never updated by a padded step, and the previous states of step t are the
 * first rows of step t - 1 (forward) or t + 1 (backward direction; the rows
 * that start at t get zeros).  Per layer and direction, the input products
 * of all steps are ONE gemm ([N, in] x [in, G*H]); each step adds the
 * recurrent product of its rows (a gemm over the batch); the backward pass
 * mirrors this and forms dW_ih, dW_hh and the input gradient with one gemm
 * each over all steps.
 */
#include <cblas.h>
#include <string.h>
#include <tgmath.h>

#include "rnn_model.h"
#include "util.h"

#ifndef RNN_MAX_LAYERS
#define RNN_MAX_LAYERS 16
#endif
/* Parallelise a step's elementwise gate loop only when it pays. */
#ifndef RNN_OMP_MIN
#define RNN_OMP_MIN 16384
#endif

/* Saved state of the last forward (its activations) and backward scratch. */
typedef struct {
    int B, T, N, train, dropped; /* dropped: dropout masks were drawn */
    int capB, capT, capN, capLD;  /* capacities of the buffers below */
    int *perm;   /* [B] sorted row -> batch row */
    int *lens;   /* [B] sorted lengths */
    int *nt;     /* [T] active rows of step t */
    int *off;    /* [T+1] first packed row of step t */
    int *cnt;    /* [T+2] scratch of the sort */
    int *ids;    /* [N] packed token ids */
    int *argmax; /* [B, D] max pooling */
    real *x0;    /* [N, E] embeddings */
    real *y[RNN_MAX_LAYERS];     /* [N, D] each layer's output, both directions */
    real *ydrop[RNN_MAX_LAYERS]; /* [N, D] dropped-out output (input of layer l + 1) */
    real *ymask[RNN_MAX_LAYERS]; /* [N, D] its mask */
    real *gates[2 * RNN_MAX_LAYERS]; /* [N, G*H] per layer and direction: gate activations */
    real *hprev[2 * RNN_MAX_LAYERS]; /* [N, H] the state each step started from */
    real *aux[2 * RNN_MAX_LAYERS];   /* [N, H] GRU: W_hn h + b_hn; LSTM: the new cell state */
    real *cprev[2 * RNN_MAX_LAYERS]; /* [N, H] LSTM: the cell state each step started from */
    real *tmp;   /* [B, G*H] a step's recurrent product (GRU) */
    real *feat, *featdrop, *featmask; /* [B, D] pooled features */
    real *logits; /* [B, L] sorted rows */
    /* backward */
    real *dya, *dyb; /* [N, max(E, D)] gradient of a layer's output / input */
    real *dg, *dgh;  /* [N, G*H] pre-activation gradients: input side, hidden side (GRU) */
    real *dh, *dc;   /* [B, H] gradient of the carried state */
    real *dfeat;     /* [B, D] */
    real *dlog;      /* [B, L] */
} RNN_FN(rnn_work);

static void RNN_FN(rnn_work_free)(RNN_FN(rnn_work) *w)
{
    free(w->perm), free(w->lens), free(w->nt), free(w->off), free(w->cnt), free(w->ids), free(w->argmax);
    free(w->x0), free(w->tmp), free(w->feat), free(w->featdrop), free(w->featmask), free(w->logits);
    for (int i = 0; i < RNN_MAX_LAYERS; i++) free(w->y[i]), free(w->ydrop[i]), free(w->ymask[i]);
    for (int i = 0; i < 2 * RNN_MAX_LAYERS; i++)
        free(w->gates[i]), free(w->hprev[i]), free(w->aux[i]), free(w->cprev[i]);
    free(w->dya), free(w->dyb), free(w->dg), free(w->dgh), free(w->dh), free(w->dc), free(w->dfeat), free(w->dlog);
    memset(w, 0, sizeof *w);
}

#define RNN_ALLOC(p, n) ((p) = mallocCheck((size_t)(n) * sizeof *(p) + 1))

/* Make room for B rows, T steps, N packed rows (grows, never shrinks). */
static void RNN_FN(rnn_work_reserve)(RNN_FN(rnn_work) *w, const lmp_rnn_config *c, int B, int T, int N)
{
    if (B <= w->capB && T <= w->capT && N <= w->capN && c->layers * (1 + c->bidirectional) == w->capLD) return;
    int cB = B > w->capB ? B : w->capB, cT = T > w->capT ? T : w->capT, cN = N > w->capN ? N : w->capN;
    RNN_FN(rnn_work_free)(w);
    int H = c->hidden, dirs = 1 + c->bidirectional, D = H * dirs, GH = lmp_rnn_gates(c->cell) * H;
    int wide = D > c->embed ? D : c->embed;
    size_t n = (size_t)cN;
    RNN_ALLOC(w->perm, cB), RNN_ALLOC(w->lens, cB), RNN_ALLOC(w->nt, cT), RNN_ALLOC(w->off, cT + 1);
    RNN_ALLOC(w->cnt, cT + 2), RNN_ALLOC(w->ids, n), RNN_ALLOC(w->argmax, (size_t)cB * D);
    RNN_ALLOC(w->x0, n * c->embed), RNN_ALLOC(w->tmp, (size_t)cB * GH);
    RNN_ALLOC(w->feat, (size_t)cB * D), RNN_ALLOC(w->featdrop, (size_t)cB * D);
    RNN_ALLOC(w->featmask, (size_t)cB * D), RNN_ALLOC(w->logits, (size_t)cB * c->num_labels);
    for (int l = 0; l < c->layers; l++) {
        RNN_ALLOC(w->y[l], n * D);
        if (l + 1 < c->layers) RNN_ALLOC(w->ydrop[l], n * D), RNN_ALLOC(w->ymask[l], n * D);
        for (int d = 0; d < dirs; d++) {
            int ld = l * dirs + d;
            RNN_ALLOC(w->gates[ld], n * GH), RNN_ALLOC(w->hprev[ld], n * H);
            if (c->cell != LMP_RNN_ELMAN) RNN_ALLOC(w->aux[ld], n * H);
            if (c->cell == LMP_RNN_LSTM) RNN_ALLOC(w->cprev[ld], n * H);
        }
    }
    RNN_ALLOC(w->dya, n * wide), RNN_ALLOC(w->dyb, n * wide), RNN_ALLOC(w->dg, n * GH);
    if (c->cell == LMP_RNN_GRU) RNN_ALLOC(w->dgh, n * GH);
    RNN_ALLOC(w->dh, (size_t)cB * H), RNN_ALLOC(w->dc, (size_t)cB * H);
    RNN_ALLOC(w->dfeat, (size_t)cB * D), RNN_ALLOC(w->dlog, (size_t)cB * c->num_labels);
    w->capB = cB, w->capT = cT, w->capN = cN, w->capLD = c->layers * dirs;
}

#ifdef RNN_FAST_ACT
#include "rnn_act.h"
#define RNN_SIGMOID(x) rnn_sigmoid(x)
#define RNN_TANH(x) rnn_tanh(x)
#else
static inline real RNN_FN(rnn_sigmoid)(real x)
{
    if (x >= 0) return (real)1 / ((real)1 + exp(-x));
    real e = exp(x); /* exp(-x) would overflow */
    return e / ((real)1 + e);
}
#define RNN_SIGMOID(x) RNN_FN(rnn_sigmoid)(x)
#define RNN_TANH(x) tanh(x)
#endif

/* Index of a layer/direction tensor: k = 0 weight_ih, 1 weight_hh, 2 bias_ih, 3 bias_hh. */
static inline int RNN_FN(rnn_ti)(const lmp_rnn_config *c, int l, int d, int k)
{
    return 1 + (l * (1 + c->bidirectional) + d) * 4 + k;
}

/* One layer, one direction, forward: in[N, in_dim] -> the direction's
 * columns of y[N, D]. */
static void RNN_FN(rnn_layer_forward)(RNN_FN(rnn_work) *w, const lmp_rnn_config *c, real *const *W, int l,
                                      int d, const real *in, int in_dim)
{
    int H = c->hidden, dirs = 1 + c->bidirectional, D = H * dirs, cell = c->cell;
    int GH = lmp_rnn_gates(cell) * H, N = w->N, T = w->T, ld = l * dirs + d;
    const real *Wih = W[RNN_FN(rnn_ti)(c, l, d, 0)], *Whh = W[RNN_FN(rnn_ti)(c, l, d, 1)];
    const real *bih = W[RNN_FN(rnn_ti)(c, l, d, 2)], *bhh = W[RNN_FN(rnn_ti)(c, l, d, 3)];
    real *g = w->gates[ld], *hp_all = w->hprev[ld], *aux = w->aux[ld], *cp_all = w->cprev[ld];
    real *y = w->y[l] + (size_t)d * H;
    /* every step's input product at once; b_hh folds in too, except GRU's
     * b_hn, which sits inside r * (...) */
    int fold = cell == LMP_RNN_GRU ? 2 * H : GH;
    for (int r = 0; r < N; r++) {
        real *gr = g + (size_t)r * GH;
        for (int j = 0; j < fold; j++) gr[j] = bih[j] + bhh[j];
        for (int j = fold; j < GH; j++) gr[j] = bih[j];
    }
    RNN_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, N, GH, in_dim, 1, in, in_dim, Wih, in_dim, 1, g, GH);
    for (int s = 0; s < T; s++) {
        int t = d == 0 ? s : T - 1 - s, n = w->nt[t];
        if (n == 0) continue;
        int pt = d == 0 ? t - 1 : t + 1;
        int m = pt >= 0 && pt < T ? (w->nt[pt] < n ? w->nt[pt] : n) : 0; /* rows with a previous state */
        size_t o = (size_t)w->off[t];
        real *hp = hp_all + o * H, *gt = g + o * GH;
        for (int i = 0; i < m; i++)
            memcpy(hp + (size_t)i * H, y + ((size_t)w->off[pt] + i) * D, (size_t)H * sizeof(real));
        memset(hp + (size_t)m * H, 0, (size_t)(n - m) * H * sizeof(real));
        real *cp = NULL;
        if (cell == LMP_RNN_LSTM) {
            cp = cp_all + o * H;
            for (int i = 0; i < m; i++)
                memcpy(cp + (size_t)i * H, aux + ((size_t)w->off[pt] + i) * H, (size_t)H * sizeof(real));
            memset(cp + (size_t)m * H, 0, (size_t)(n - m) * H * sizeof(real));
        }
        real *hw = w->tmp;
        if (cell == LMP_RNN_GRU) {
            if (m > 0)
                RNN_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, m, GH, H, 1, hp, H, Whh, H, 0, hw, GH);
            memset(hw + (size_t)m * GH, 0, (size_t)(n - m) * GH * sizeof(real));
        } else if (m > 0) {
            RNN_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, m, GH, H, 1, hp, H, Whh, H, 1, gt, GH);
        }
        #pragma omp parallel for if ((size_t)n * GH >= RNN_OMP_MIN)
        for (int i = 0; i < n; i++) {
            real *gi = gt + (size_t)i * GH, *yi = y + (o + i) * D;
            const real *hpi = hp + (size_t)i * H;
            if (cell == LMP_RNN_ELMAN) {
                #pragma omp simd
                for (int j = 0; j < H; j++) yi[j] = gi[j] = RNN_TANH(gi[j]);
            } else if (cell == LMP_RNN_GRU) {
                const real *hwi = hw + (size_t)i * GH;
                real *hn = aux + (o + i) * H;
                #pragma omp simd
                for (int j = 0; j < H; j++) {
                    real r = RNN_SIGMOID(gi[j] + hwi[j]);
                    real z = RNN_SIGMOID(gi[H + j] + hwi[H + j]);
                    real hnj = hwi[2 * H + j] + bhh[2 * H + j];
                    real nn = RNN_TANH(gi[2 * H + j] + r * hnj);
                    gi[j] = r, gi[H + j] = z, gi[2 * H + j] = nn, hn[j] = hnj;
                    yi[j] = ((real)1 - z) * nn + z * hpi[j];
                }
            } else {
                const real *cpi = cp + (size_t)i * H;
                real *ci = aux + (o + i) * H;
                #pragma omp simd
                for (int j = 0; j < H; j++) {
                    real ig = RNN_SIGMOID(gi[j]), fg = RNN_SIGMOID(gi[H + j]);
                    real gg = RNN_TANH(gi[2 * H + j]), og = RNN_SIGMOID(gi[3 * H + j]);
                    real cc = fg * cpi[j] + ig * gg;
                    gi[j] = ig, gi[H + j] = fg, gi[2 * H + j] = gg, gi[3 * H + j] = og;
                    ci[j] = cc;
                    yi[j] = og * RNN_TANH(cc);
                }
            }
        }
    }
}

/* One layer, one direction, backward: from the gradient of its columns of
 * y (dy[N, D]), accumulate its parameter gradients (each may be NULL) and,
 * when din != NULL, din[N, in_dim] += the gradient of its input. */
static void RNN_FN(rnn_layer_backward)(RNN_FN(rnn_work) *w, const lmp_rnn_config *c, real *const *W,
                                       real *const *dW, int l, int d, const real *dy, const real *in,
                                       int in_dim, real *din)
{
    int H = c->hidden, dirs = 1 + c->bidirectional, D = H * dirs, cell = c->cell;
    int GH = lmp_rnn_gates(cell) * H, N = w->N, T = w->T, ld = l * dirs + d;
    const real *Wih = W[RNN_FN(rnn_ti)(c, l, d, 0)], *Whh = W[RNN_FN(rnn_ti)(c, l, d, 1)];
    real *dWih = dW[RNN_FN(rnn_ti)(c, l, d, 0)], *dWhh = dW[RNN_FN(rnn_ti)(c, l, d, 1)];
    real *dbih = dW[RNN_FN(rnn_ti)(c, l, d, 2)], *dbhh = dW[RNN_FN(rnn_ti)(c, l, d, 3)];
    const real *g = w->gates[ld], *hp_all = w->hprev[ld], *aux = w->aux[ld], *cp_all = w->cprev[ld];
    real *dg = w->dg, *dgh = cell == LMP_RNN_GRU ? w->dgh : w->dg, *dh = w->dh, *dc = w->dc;
    dy += (size_t)d * H;
    memset(dh, 0, (size_t)w->B * H * sizeof(real));
    memset(dc, 0, (size_t)w->B * H * sizeof(real));
    for (int s = 0; s < T; s++) {
        int t = d == 0 ? T - 1 - s : s, n = w->nt[t];
        if (n == 0) continue;
        size_t o = (size_t)w->off[t];
        const real *gt = g + o * GH, *hp = hp_all + o * H;
        real *dgt = dg + o * GH, *dght = dgh + o * GH;
        #pragma omp parallel for if ((size_t)n * GH >= RNN_OMP_MIN)
        for (int i = 0; i < n; i++) {
            const real *gi = gt + (size_t)i * GH, *dyi = dy + (o + i) * D, *hpi = hp + (size_t)i * H;
            real *dgi = dgt + (size_t)i * GH, *dghi = dght + (size_t)i * GH, *dhi = dh + (size_t)i * H;
            if (cell == LMP_RNN_ELMAN) {
                #pragma omp simd
                for (int j = 0; j < H; j++) {
                    real hh = gi[j], dhj = dhi[j] + dyi[j];
                    dgi[j] = dhj * ((real)1 - hh * hh);
                    dhi[j] = 0; /* the recurrent gemm below adds the rest */
                }
            } else if (cell == LMP_RNN_GRU) {
                const real *hn = aux + (o + i) * H;
                #pragma omp simd
                for (int j = 0; j < H; j++) {
                    real r = gi[j], z = gi[H + j], nn = gi[2 * H + j], dhj = dhi[j] + dyi[j];
                    real dnpre = dhj * ((real)1 - z) * ((real)1 - nn * nn);
                    real dz = dhj * (hpi[j] - nn) * z * ((real)1 - z);
                    real dr = dnpre * hn[j] * r * ((real)1 - r);
                    dgi[j] = dghi[j] = dr;
                    dgi[H + j] = dghi[H + j] = dz;
                    dgi[2 * H + j] = dnpre;
                    dghi[2 * H + j] = dnpre * r;
                    dhi[j] = dhj * z;
                }
            } else {
                const real *ci = aux + (o + i) * H, *cpi = cp_all + (o + i) * H;
                real *dci = dc + (size_t)i * H;
                #pragma omp simd
                for (int j = 0; j < H; j++) {
                    real ig = gi[j], fg = gi[H + j], gg = gi[2 * H + j], og = gi[3 * H + j];
                    real dhj = dhi[j] + dyi[j], tc = RNN_TANH(ci[j]);
                    real dcc = dci[j] + dhj * og * ((real)1 - tc * tc);
                    dgi[j] = dcc * gg * ig * ((real)1 - ig);
                    dgi[H + j] = dcc * cpi[j] * fg * ((real)1 - fg);
                    dgi[2 * H + j] = dcc * ig * ((real)1 - gg * gg);
                    dgi[3 * H + j] = dhj * tc * og * ((real)1 - og);
                    dci[j] = dcc * fg;
                    dhi[j] = 0;
                }
            }
        }
        /* the state gradient of the step before (in processing order) */
        int pt = d == 0 ? t - 1 : t + 1;
        int m = pt >= 0 && pt < T ? (w->nt[pt] < n ? w->nt[pt] : n) : 0;
        if (m > 0) RNN_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, H, GH, 1, dght, GH, Whh, H, 1, dh, H);
        if (d == 0 && pt >= 0 && w->nt[pt] > n) { /* rows whose last step is pt start with zero gradient */
            memset(dh + (size_t)n * H, 0, (size_t)(w->nt[pt] - n) * H * sizeof(real));
            memset(dc + (size_t)n * H, 0, (size_t)(w->nt[pt] - n) * H * sizeof(real));
        }
    }
    if (dWih) RNN_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, GH, in_dim, N, 1, dg, GH, in, in_dim, 1, dWih, in_dim);
    if (dWhh) RNN_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, GH, H, N, 1, dgh, GH, hp_all, H, 1, dWhh, H);
    if (dbih || dbhh) {
        for (int r = 0; r < N; r++) {
            const real *a = dg + (size_t)r * GH, *b = dgh + (size_t)r * GH;
            if (dbih) for (int j = 0; j < GH; j++) dbih[j] += a[j];
            if (dbhh) for (int j = 0; j < GH; j++) dbhh[j] += b[j];
        }
    }
    if (din) RNN_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in_dim, GH, 1, dg, GH, Wih, in_dim, 1, din, in_dim);
}

/* logits[B, L] for ids[B, T] (right-padded, real lengths len[B]).
 * W: the tensors in lmp_rnn_tensor_info's order.  train: dropout on (masks
 * from rng) and the activations kept for rnn_backward.  Errors (nothing
 * written to logits): an empty batch, a length outside [1, T], a token id
 * outside [0, V) at a real position. */
static int RNN_FN(rnn_forward)(RNN_FN(rnn_work) *w, const lmp_rnn_config *c, real *const *W, const int *ids,
                               const int *len, int B, int T, real *logits, int train, lmp_rng *rng)
{
    w->train = 0;
    if (B < 1 || T < 1) return lmp_error("rnn classifier: empty batch (B=%d, T=%d)", B, T);
    int N = 0, V = c->vocab;
    for (int b = 0; b < B; b++) {
        if (len[b] < 1 || len[b] > T)
            return lmp_error("rnn classifier: row %d has length %d, outside [1, %d]", b, len[b], T);
        N += len[b];
        for (int t = 0; t < len[b]; t++) {
            int id = ids[(size_t)b * T + t];
            if (id < 0 || id >= V)
                return lmp_error("rnn classifier: token id %d at [%d,%d] out of range [0, %d)", id, b, t, V);
        }
    }
    int H = c->hidden, E = c->embed, dirs = 1 + c->bidirectional, D = H * dirs, L = c->num_labels;
    RNN_FN(rnn_work_reserve)(w, c, B, T, N);
    w->B = B, w->T = T, w->N = N;
    /* stable sort by length, longest first (counting sort) */
    memset(w->cnt, 0, (size_t)(T + 2) * sizeof(int));
    for (int b = 0; b < B; b++) w->cnt[len[b]]++;
    for (int k = T, pos = 0; k >= 1; k--) {
        int nk = w->cnt[k];
        w->cnt[k] = pos;
        pos += nk;
    }
    for (int b = 0; b < B; b++) {
        int i = w->cnt[len[b]]++;
        w->perm[i] = b;
        w->lens[i] = len[b];
    }
    for (int t = 0, i = B; t < T; t++) {
        while (i > 0 && w->lens[i - 1] <= t) i--;
        w->nt[t] = i;
    }
    w->off[0] = 0;
    for (int t = 0; t < T; t++) w->off[t + 1] = w->off[t] + w->nt[t];
    for (int t = 0; t < T; t++)
        for (int i = 0; i < w->nt[t]; i++) w->ids[w->off[t] + i] = ids[(size_t)w->perm[i] * T + t];
    const real *emb = W[0];
    for (int r = 0; r < N; r++)
        memcpy(w->x0 + (size_t)r * E, emb + (size_t)w->ids[r] * E, (size_t)E * sizeof(real));

    real p = (real)c->dropout;
    int drop = train && p > 0;
    w->dropped = drop;
    for (int l = 0; l < c->layers; l++) {
        const real *in = l == 0 ? w->x0 : (drop ? w->ydrop[l - 1] : w->y[l - 1]);
        int in_dim = l == 0 ? E : D;
        for (int d = 0; d < dirs; d++) RNN_FN(rnn_layer_forward)(w, c, W, l, d, in, in_dim);
        if (drop && l + 1 < c->layers)
            NN_FN(dropout_forward)(w->ydrop[l], w->ymask[l], w->y[l], (size_t)N * D, p, rng);
    }
    /* pooling over each row's real steps */
    const real *y = w->y[c->layers - 1];
    for (int i = 0; i < B; i++) {
        real *f = w->feat + (size_t)i * D;
        int li = w->lens[i];
        if (c->pooling == LMP_RNN_POOL_LAST) {
            memcpy(f, y + ((size_t)w->off[li - 1] + i) * D, (size_t)H * sizeof(real));
            if (dirs == 2) memcpy(f + H, y + ((size_t)w->off[0] + i) * D + H, (size_t)H * sizeof(real));
        } else if (c->pooling == LMP_RNN_POOL_MEAN) {
            memset(f, 0, (size_t)D * sizeof(real));
            for (int t = 0; t < li; t++) {
                const real *yt = y + ((size_t)w->off[t] + i) * D;
                for (int j = 0; j < D; j++) f[j] += yt[j];
            }
            for (int j = 0; j < D; j++) f[j] /= (real)li;
        } else {
            int *am = w->argmax + (size_t)i * D;
            memcpy(f, y + (size_t)i * D, (size_t)D * sizeof(real)); /* t = 0: off[0] = 0 */
            memset(am, 0, (size_t)D * sizeof(int));
            for (int t = 1; t < li; t++) {
                const real *yt = y + ((size_t)w->off[t] + i) * D;
                for (int j = 0; j < D; j++)
                    if (yt[j] > f[j]) f[j] = yt[j], am[j] = t;
            }
        }
    }
    const real *fx = w->feat;
    if (drop) {
        NN_FN(dropout_forward)(w->featdrop, w->featmask, w->feat, (size_t)B * D, p, rng);
        fx = w->featdrop;
    }
    int ih = RNN_FN(rnn_ti)(c, c->layers, 0, 0); /* head.weight, then head.bias */
    const real *hw = W[ih], *hb = W[ih + 1];
    for (int i = 0; i < B; i++) memcpy(w->logits + (size_t)i * L, hb, (size_t)L * sizeof(real));
    RNN_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, B, L, D, 1, fx, D, hw, D, 1, w->logits, L);
    for (int i = 0; i < B; i++)
        memcpy(logits + (size_t)w->perm[i] * L, w->logits + (size_t)i * L, (size_t)L * sizeof(real));
    w->train = train != 0;
    return 0;
}

/* Accumulate every parameter gradient (dW[i] may be NULL: frozen) from
 * dlogits[B, L] of the last forward, which must have had train = 1. */
static void RNN_FN(rnn_backward)(RNN_FN(rnn_work) *w, const lmp_rnn_config *c, real *const *W, real *const *dW,
                                 const real *dlogits)
{
    int B = w->B, N = w->N, H = c->hidden, E = c->embed, dirs = 1 + c->bidirectional, D = H * dirs;
    int L = c->num_labels, ih = RNN_FN(rnn_ti)(c, c->layers, 0, 0);
    const real *hw = W[ih];
    real *dhw = dW[ih], *dhb = dW[ih + 1];
    for (int i = 0; i < B; i++)
        memcpy(w->dlog + (size_t)i * L, dlogits + (size_t)w->perm[i] * L, (size_t)L * sizeof(real));
    const real *fx = w->dropped ? w->featdrop : w->feat;
    if (dhw) RNN_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, L, D, B, 1, w->dlog, L, fx, D, 1, dhw, D);
    if (dhb)
        for (int i = 0; i < B; i++)
            for (int k = 0; k < L; k++) dhb[k] += w->dlog[(size_t)i * L + k];
    RNN_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, D, L, 1, w->dlog, L, hw, D, 0, w->dfeat, D);
    if (w->dropped)
        for (size_t k = 0; k < (size_t)B * D; k++) w->dfeat[k] *= w->featmask[k];
    /* pooling: the gradient of the top layer's outputs */
    real *dy = w->dya, *dnext = w->dyb;
    memset(dy, 0, (size_t)N * D * sizeof(real));
    for (int i = 0; i < B; i++) {
        const real *df = w->dfeat + (size_t)i * D;
        int li = w->lens[i];
        if (c->pooling == LMP_RNN_POOL_LAST) {
            real *a = dy + ((size_t)w->off[li - 1] + i) * D;
            for (int j = 0; j < H; j++) a[j] += df[j];
            if (dirs == 2) {
                real *b = dy + ((size_t)w->off[0] + i) * D + H;
                for (int j = 0; j < H; j++) b[j] += df[H + j];
            }
        } else if (c->pooling == LMP_RNN_POOL_MEAN) {
            for (int t = 0; t < li; t++) {
                real *a = dy + ((size_t)w->off[t] + i) * D;
                for (int j = 0; j < D; j++) a[j] += df[j] / (real)li;
            }
        } else {
            const int *am = w->argmax + (size_t)i * D;
            for (int j = 0; j < D; j++) dy[((size_t)w->off[am[j]] + i) * D + j] += df[j];
        }
    }
    for (int l = c->layers - 1; l >= 0; l--) {
        const real *in = l == 0 ? w->x0 : (w->dropped ? w->ydrop[l - 1] : w->y[l - 1]);
        int in_dim = l == 0 ? E : D;
        /* the input gradient is needed below the top layer, and at layer 0 only for the embedding */
        real *din = l > 0 || dW[0] ? dnext : NULL;
        if (din) memset(din, 0, (size_t)N * in_dim * sizeof(real));
        for (int d = 0; d < dirs; d++) RNN_FN(rnn_layer_backward)(w, c, W, dW, l, d, dy, in, in_dim, din);
        if (l > 0 && w->dropped)
            for (size_t k = 0; k < (size_t)N * D; k++) din[k] *= w->ymask[l - 1][k];
        real *sw = dy;
        dy = dnext, dnext = sw;
    }
    if (dW[0]) NN_FN(embedding_backward)(dW[0], dy, w->ids, N, E);
}
