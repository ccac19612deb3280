/*
 * nn.h — the numerical kernels shared by the GPT-2, LoRA and RNN code:
 * forward/backward pairs over flat, row-major float arrays, in the style of
 * llm.c's train_gpt2.c.
 *
 * Conventions
 *  - Shapes are given in the comment above each kernel.  N = B*T rows.
 *  - Linear-layer weights use Hugging Face Conv1D's [in, out] layout, so GPT-2
 *    safetensors can be used in place:  out = inp @ W + b.
 *  - Backward kernels ACCUMULATE (+=) into gradient buffers; the caller zeroes
 *    them once per optimizer step (which is also what makes gradient
 *    accumulation over micro-batches work).  Any gradient pointer may be NULL,
 *    meaning "frozen / not needed": that work is skipped entirely (e.g. a LoRA
 *    base weight's dweight = NULL skips its sgemm).
 *  - Every matmul goes through cblas_sgemm; row/elementwise loops use OpenMP.
 *  - Kernels do not allocate.  Scratch buffers are passed in, sized as noted.
 *  - The few kernels that index tables with data (token ids, targets) check
 *    them first and fail without writing anything: int-returning ones return
 *    -1, float-returning ones return NAN; both set lmp_error().
 *
 * The kernel bodies live in nn_impl.h, written over a `real` type so that the
 * tests also compile them in double precision (names with an _f64 suffix) to
 * check every backward against central finite differences.
 */
#ifndef LMP_NN_H
#define LMP_NN_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ embeddings */

/* GPT-2 token + position embedding.
 * out[B,T,C] = wte[inp[b,t]] + wpe[t].  inp[B,T] ids must lie in [0,V) and
 * T <= maxT (the caller sizes wpe); a bad id returns -1 ("token id 50257 at
 * [0,3] out of range [0, 50257)", [b,t]) with out untouched. */
int lmp_nn_encoder_forward(float *out, const int *inp, const float *wte, const float *wpe,
                    int B, int T, int C, int V);
/* dwte[V,C] += scatter of dout[B,T,C] by inp; dwpe[maxT,C] += sum over b.
 * Either gradient may be NULL.  inp must have passed lmp_nn_encoder_forward. */
void lmp_nn_encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp,
                      int B, int T, int C);

/* A general lookup table (the RNN student's embeddings).
 * out[N,E] = table[ids[n]] with table[V,E]; bad ids return -1, out untouched. */
int lmp_nn_embedding_forward(float *out, const int *ids, const float *table, int N, int V, int E);
/* dtable[V,E] += scatter of dout[N,E] by ids (dtable may be NULL). */
void lmp_nn_embedding_backward(float *dtable, const float *dout, const int *ids, int N, int E);

/* ------------------------------------------------------------ layernorm */

#define LAYERNORM_EPS 1e-5f

/* out[N,C] = (inp - mean) * rstd * weight[C] + bias[C], eps = 1e-5 (GPT-2).
 * mean[N] and rstd[N] are saved for backward; either may be NULL when no
 * backward will follow (generation). */
void lmp_nn_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int N, int C);
/* dinp[N,C], dweight[C], dbias[C] += ...  (each may be NULL). */
void lmp_nn_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int N, int C);

/* ------------------------------------------------------------ matmul */

/* out[N,OC] = inp[N,C] @ weight[C,OC] + bias[OC]  (bias may be NULL). */
void lmp_nn_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                    int N, int C, int OC);
/* dinp[N,C]    += dout[N,OC] @ weight^T
 * dweight[C,OC] += inp^T @ dout
 * dbias[OC]    += column sums of dout          (each may be NULL).
 * inp is read only for dweight and weight only for dinp, so a frozen layer
 * (dweight == NULL) costs one sgemm, not two. */
void lmp_nn_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int N, int C, int OC);

/* out[N,OC] += alpha * inp[N,C] @ weight[C,OC] — for adding a scaled low-rank
 * (LoRA) path onto an existing output without a temporary. */
void lmp_nn_matmul_acc_forward(float *out, const float *inp, const float *weight,
                        int N, int C, int OC, float alpha);
/* The matching backward: dinp += alpha * dout @ weight^T,
 * dweight += alpha * inp^T @ dout (each may be NULL). */
void lmp_nn_matmul_acc_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                         const float *weight, int N, int C, int OC, float alpha);

/* ------------------------------------------------------------ attention */

/* Causal multi-head self-attention, scale 1/sqrt(hs), hs = C/NH.
 * qkv[B,T,3C]: per row q | k | v, head h at columns h*hs .. h*hs+hs-1 of each.
 * att[B,NH,T,T]: softmax probabilities, saved for backward (no separate preatt
 * buffer is needed: scores are computed into att and normalised in place).
 * mask[B,T] (may be NULL): 1 = real token, 0 = padding; padded keys get zero
 * weight.  A query with no visible key (all-padding row) gets att = 0, out = 0.
 * out[B,T,C]. */
void lmp_nn_attention_forward(float *out, float *att, const float *qkv, const int *mask,
                       int B, int T, int C, int NH);
/* dqkv[B,T,3C] += ...  (may be NULL, then nothing is done).
 * scratch[B,NH,T,T] is overwritten. */
void lmp_nn_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                        const float *att, int B, int T, int C, int NH);

/* ------------------------------------------------------------ elementwise */

/* GELU, tanh approximation (HF "gelu_new"):
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).  out/inp [n]. */
void lmp_nn_gelu_forward(float *out, const float *inp, size_t n);
/* dinp[n] += gelu'(inp) * dout. */
void lmp_nn_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* out[n] = inp1 + inp2 (out may alias either input). */
void lmp_nn_residual_forward(float *out, const float *inp1, const float *inp2, size_t n);
/* dinp1 += dout, dinp2 += dout (either may be NULL). */
void lmp_nn_residual_backward(float *dinp1, float *dinp2, const float *dout, size_t n);

/* out[n] = tanh(inp) / backward from the saved output: dinp += (1 - out^2) dout. */
void lmp_nn_tanh_forward(float *out, const float *inp, size_t n);
void lmp_nn_tanh_backward(float *dinp, const float *out, const float *dout, size_t n);
/* out[n] = 1/(1+exp(-inp)) / dinp += out (1 - out) dout. */
void lmp_nn_sigmoid_forward(float *out, const float *inp, size_t n);
void lmp_nn_sigmoid_backward(float *dinp, const float *out, const float *dout, size_t n);

/* Inverted dropout with drop probability p in [0,1): mask[n] receives 0 or
 * 1/(1-p) (drawn sequentially from rng, so results are reproducible
 * regardless of thread count) and out = inp * mask.  p == 0: out = inp,
 * mask filled with 1.  out may alias inp. */
void lmp_nn_dropout_forward(float *out, float *mask, const float *inp, size_t n, float p, lmp_rng *rng);
/* dinp[n] += dout * mask. */
void lmp_nn_dropout_backward(float *dinp, const float *mask, const float *dout, size_t n);

/* ------------------------------------------------------------ softmax / losses */

/* probs[N,V] = softmax over the last dimension of logits[N,V] (max-subtracted). */
void lmp_nn_softmax_forward(float *probs, const float *logits, int N, int V);
/* dlogits[N,V] += probs * (dprobs - sum_v(probs * dprobs)). */
void lmp_nn_softmax_backward(float *dlogits, const float *dprobs, const float *probs, int N, int V);

/* Softmax + cross-entropy for small V (classifier heads).
 * logits[N,V], targets[N] in [0,V) or -1 (= ignore the row).
 * losses[N] (may be NULL): per-row loss, 0 for ignored rows.
 * dlogits[N,V] (may be NULL) += d(mean loss)/d(logits), the mean being over
 * the non-ignored rows.  Returns that mean loss (0 if every row is ignored),
 * or NAN with lmp_error() set — and nothing written — if a target is out of
 * range ("target 7 at row 2 out of range [0, 2)"). */
float lmp_nn_softmax_crossentropy_forward_backward(float *losses, float *dlogits, const float *logits,
                                            const int *targets, int N, int V);

/* Knowledge distillation: a soft-target loss between student logits
 * student[N,V] and teacher logits teacher[N,V], averaged over the N rows.
 *   LMP_KD_KL   T^2 KL(softmax(teacher/T) || softmax(student/T))  (Hinton et
 *               al. 2015; T^2 keeps the gradient's scale independent of T):
 *               both log-softmaxes from their own log-sum-exp (the KL takes
 *               LOG-probabilities of the student), d/dstudent = T (q - p)
 *   LMP_KD_MSE  sum_v (student - teacher)^2, the squared L2 distance of the
 *               logit vectors (Tang et al. 2019); temperature unused
 * losses[N] (may be NULL): per-row loss.  dstudent[N,V] (may be NULL) +=
 * scale * d(mean loss)/d(student) (scale: the loss's weight in a sum, e.g.
 * 1 - alpha).  Returns the mean loss, or NAN with lmp_error() set and nothing
 * written for a temperature <= 0 (KL) or an unknown kind. */
enum { LMP_KD_KL = 0, LMP_KD_MSE = 1 };
float lmp_nn_kd_loss_forward_backward(float *losses, float *dstudent, const float *student, const float *teacher,
                               int N, int V, float temperature, int kind, float scale);

/* Fused, chunked language-model head + cross-entropy, logits = x @ wte^T
 * (tied GPT-2 embedding), never materialising the N x V logits: `chunk` rows
 * at a time go through sgemm into scratch[chunk*V], softmax, loss and
 * gradient.
 *   x[N,C], wte[V,C], targets[N] in [0,V) or -1 (ignored)
 *   dx[N,C]   (may be NULL) += d(mean loss)/dx
 *   dwte[V,C] (may be NULL) += d(mean loss)/dwte
 *   losses[N] (may be NULL): per-row loss, 0 for ignored rows
 * Returns the mean loss over non-ignored rows (0 if none), or NAN with
 * lmp_error() set and nothing written if a target is out of range or
 * chunk < 1.  Chunks whose targets are all -1 are skipped outright.
 * Chunk size: each chunk re-reads and re-writes all of dwte, so bigger is
 * faster: at N=256, C=768, V=50257 (one thread, SkylakeX kernels) chunk 256
 * (scratch 256*50257 floats = 51 MB) took 537 ms for forward+backward, about
 * the sgemm rate, chunk 64 728 ms, chunk 16 1654 ms. */
float lmp_nn_lmhead_xent_forward_backward(const float *x, const float *wte, const int *targets,
                                   int N, int C, int V, float *dx, float *dwte,
                                   float *losses, float *scratch, int chunk);
/* Forward only (evaluation / perplexity): same as above with dx = dwte = NULL. */
float lmp_nn_lmhead_xent_forward(const float *x, const float *wte, const int *targets,
                          int N, int C, int V, float *losses, float *scratch, int chunk);
/* Generation: logits[V] = wte[V,C] @ x[C] for one position (the last). */
void lmp_nn_lmhead_logits(float *logits, const float *x, const float *wte, int C, int V);

/* ------------------------------------------------------------ checks */

/* Index of the first NaN or infinity in x[0..n), or n when every value is
 * finite.  Loaders run it over every weight, so it is one pass that
 * vectorises: blocks are tested with a branch-free OR of exponent masks and
 * only a block that has a bad value is searched. */
size_t lmp_nn_first_nonfinite(const float *x, size_t n);

#ifdef __cplusplus
}
#endif

#endif
