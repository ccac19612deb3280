/*
 * gpt2.h — the GPT-2 language model: checkpoints (Hugging Face folders,
 * .safetensors files, llm.c .bin files), the fp32 forward pass on the kernels
 * of nn.h, loss / perplexity, and KV-cache text generation.
 *
 * Parameters are flat float arrays, one per tensor, with linear weights in
 * HF Conv1D's [in, out] layout, so a safetensors checkpoint is memory-mapped
 * and used in place (read-only: never write through a pointer of a loaded
 * model unless lmp_gpt2_owns_params says so).  The LM head is tied to wte.
 *
 * The four linear layers of each block are listed by name in
 * model->linears ("h.3.attn.c_attn", "h.3.attn.c_proj", "h.3.mlp.c_fc",
 * "h.3.mlp.c_proj") and every linear op of every forward goes through
 * lmp_gpt2_linear_forward, so an adapter (LoRA) attached to a layer is applied
 * everywhere: training, evaluation and generation.
 */
#ifndef LMP_GPT2_H
#define LMP_GPT2_H

#include <stddef.h>
#include <stdint.h>

#include "adapter.h"
#include "optim.h"
#include "qmat.h"
#include "util.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LMP_GPT2_EOS 50256 /* <|endoftext|> */

typedef struct {
    int n_layer, n_head, n_embd;
    int n_ctx;      /* n_positions: rows of wpe, the longest sequence */
    int vocab_size;
    float layer_norm_epsilon; /* 1e-5 for every GPT-2; the kernels support only that */
} lmp_gpt2_config;

/* ------------------------------------------------------------ linear layers */

/* The linear layers and their adapter hooks are core/nn/adapter.h's; these names
 * remain for the GPT-2 code. */
typedef lmp_linear lmp_gpt2_linear;
typedef lmp_adapter lmp_gpt2_adapter;

/* lmp_linear_forward / lmp_linear_backward (adapter.h). */
void lmp_gpt2_linear_forward(const lmp_gpt2_linear *l, float *out, const float *inp, int N);
void lmp_gpt2_linear_backward(const lmp_gpt2_linear *l, float *dinp, float *dweight, float *dbias,
                          const float *dout, const float *inp, int N);

/* ------------------------------------------------------------ the model */

typedef struct {
    float *ln_1_w, *ln_1_b;      /* [C] */
    lmp_gpt2_linear *c_attn;     /* C -> 3C */
    lmp_gpt2_linear *attn_proj;  /* C -> C   (attn.c_proj) */
    float *ln_2_w, *ln_2_b;      /* [C] */
    lmp_gpt2_linear *c_fc;       /* C -> 4C */
    lmp_gpt2_linear *mlp_proj;   /* 4C -> C  (mlp.c_proj) */
} lmp_gpt2_block;

/* Activations of one forward over a (B, T) batch, laid out like llm.c's so
 * that a backward pass can use them.  Per-layer tensors hold `layers` copies:
 * n_layer when kept for backward, 1 (reused by every layer) otherwise. */
typedef struct {
    int B, T, layers;
    float *encoded;   /* [B,T,C] */
    float *ln1;       /* [layers,B,T,C] */
    float *ln1_mean, *ln1_rstd; /* [layers,B,T] */
    float *qkv;       /* [layers,B,T,3C] */
    float *atty;      /* [layers,B,T,C] */
    float *att;       /* [layers,B,NH,T,T] */
    float *attproj;   /* [layers,B,T,C] */
    float *residual2; /* [layers,B,T,C] */
    float *ln2;       /* [layers,B,T,C] */
    float *ln2_mean, *ln2_rstd; /* [layers,B,T] */
    float *fch;       /* [layers,B,T,4C] */
    float *fch_gelu;  /* [layers,B,T,4C] */
    float *fcproj;    /* [layers,B,T,C] */
    float *residual3; /* [layers,B,T,C]: output of each block */
    float *lnf;       /* [B,T,C] */
    float *lnf_mean, *lnf_rstd; /* [B,T] */
    float *memory;    /* the one allocation */
    size_t floats;    /* what it holds: the largest shape so far, re-carved for smaller ones */
    int *inputs;      /* [B,T] copy of the token ids, for the embedding backward */
    size_t cap_inputs;
    int for_backward; /* the last forward kept every layer (backward may run) */
} lmp_gpt2_acts;

typedef struct lmp_gpt2 {
    lmp_gpt2_config config;
    float *wte;                /* [V,C]; also the LM head */
    float *wpe;                /* [n_ctx,C] */
    lmp_gpt2_block *h;         /* [n_layer] */
    float *ln_f_w, *ln_f_b;    /* [C] */
    lmp_gpt2_linear *linears;  /* [n_linears] = 4 per block, in block order */
    int n_linears;
    char *source;              /* what it was loaded from */
    lmp_gpt2_acts acts;        /* of the last lmp_gpt2_forward */
    struct lmp_gpt2_storage *storage; /* private: mappings and owned memory */
    struct lmp_gpt2_train *train;     /* private: bound gradients, backward buffers */
} lmp_gpt2;

/* Load a model from a Hugging Face folder (config.json + model.safetensors),
 * a .safetensors file (config from its __metadata__, else config.json next to
 * it) or an llm.c checkpoint (.bin, version 3 / fp32).  Every tensor's shape
 * is checked against the config, and every weight must be finite (a NaN or
 * infinity is an error naming the tensor and the index); errors name the
 * file and the tensor.  A
 * config.json key that changes the math away from what the kernels do
 * (scale_attn_weights false, scale_attn_by_inverse_layer_idx true, n_inner
 * other than 4 * n_embd, an activation other than gelu_new) is an error
 * naming it. */
int lmp_gpt2_load(const char *path, lmp_gpt2 **model);
/* A model with random weights (N(0, 0.02), LayerNorm 1/0, biases 0). */
int lmp_gpt2_init_random(const lmp_gpt2_config *config, uint64_t seed, lmp_gpt2 **model);
void lmp_gpt2_free(lmp_gpt2 *m);
/* Whether the parameters live in memory the model owns (writable). */
int lmp_gpt2_owns_params(const lmp_gpt2 *m);
/* Save as safetensors with plain GPT2Model key names ("h.0.attn.c_attn.weight")
 * and the config in __metadata__.  A path ending in ".safetensors" writes that
 * one file; any other path is a folder that receives model.safetensors and a
 * config.json, loadable by HF transformers' GPT2LMHeadModel.from_pretrained. */
int lmp_gpt2_save(const lmp_gpt2 *m, const char *path);
/* The same as a Hugging Face GPT2ForSequenceClassification checkpoint, for
 * GPT2ForSequenceClassification.from_pretrained: the body's tensors under
 * "transformer." ("transformer.h.0.attn.c_attn.weight"), the head
 * "score.weight" = head [num_labels, n_embd] (no bias) beside them, and a
 * config.json with that architecture, id2label / label2id (LABEL_0, ...) and
 * pad_token_id.  lmp_gpt2_load reads it as a language model (the prefix is
 * stripped, score.weight ignored). */
int lmp_gpt2_save_seq_cls(const lmp_gpt2 *m, const char *path, const float *head, int num_labels, int pad_token_id);
/* The head of such a checkpoint (a folder's model.safetensors, or a
 * .safetensors file): 1 with *head (malloc'd, fp32 [*num_labels, n_embd])
 * when it has "score.weight", 0 when it has none (a language model, an llm.c
 * file), -1 when the head's shape or dtype is wrong or config.json's
 * id2label counts other labels. */
int lmp_gpt2_load_seq_cls_head(const char *path, int n_embd, int *num_labels, float **head);
/* Check a config for sanity; `what` names its source in the message. */
int lmp_gpt2_config_check(const lmp_gpt2_config *c, const char *what);
size_t lmp_gpt2_num_params(const lmp_gpt2_config *c);
lmp_gpt2_linear *lmp_gpt2_find_linear(lmp_gpt2 *m, const char *name);

/* ------------------------------------------------------------ forward */

/* Forward over inputs[B,T] up to the final LayerNorm (m->acts.lnf).
 * mask[B,T] (may be NULL): 1 real token, 0 padding (keys masked out).
 * for_backward: keep every layer's activations.  Errors: T > n_ctx, ids out
 * of range. */
int lmp_gpt2_forward(lmp_gpt2 *m, const int *inputs, const int *mask, int B, int T,
                     int for_backward);
/* Logits at `positions` (n_pos of them; NULL = all T) of every sequence:
 * logits[B, n_pos, V]. */
int lmp_gpt2_logits(lmp_gpt2 *m, const int *inputs, int B, int T, const int *positions,
                    int n_pos, float *logits);
/* Next-token cross-entropy: targets[B,T] in [0,V) or -1 (ignored).
 * losses[B,T] (may be NULL) receives per-token NLL (0 where ignored);
 * *mean the mean over scored tokens.  The LM head is chunked, never B*T*V.
 * Errors: a target out of range, and a NaN or infinite loss (weights are
 * checked at load, so that means the forward pass overflowed). */
int lmp_gpt2_loss(lmp_gpt2 *m, const int *inputs, const int *targets, int B, int T,
                  float *losses, float *mean);

typedef struct {
    double nll;  /* mean next-token negative log-likelihood (nats) */
    double ppl;  /* exp(nll) */
    long tokens; /* tokens scored: n - 1 */
} lmp_gpt2_ppl;

/* Perplexity of ids[n] with Hugging Face's strided-window recipe: windows of
 * n_ctx tokens starting every `stride` tokens (stride <= 0: n_ctx / 2); each
 * token after the first is scored exactly once, in the first window that
 * reaches it, so it sees at least n_ctx - stride tokens of context (all of
 * them near the start).  stride must be in [1, n_ctx]. */
int lmp_gpt2_perplexity(lmp_gpt2 *m, const int *ids, long n, int stride, lmp_gpt2_ppl *out);

/* ------------------------------------------------------------ training
 * (core/nn/gpt2_params.c, core/nn/gpt2_backward.c)
 *
 * Parameters are registered in an lmp_params_group (optim.h) under Hugging
 * Face GPT2Model names: "wte.weight", "wpe.weight", "h.0.ln_1.weight",
 * "h.0.ln_1.bias", "h.0.attn.c_attn.weight", "h.0.attn.c_attn.bias",
 * "h.0.attn.c_proj.*", "h.0.ln_2.*", "h.0.mlp.c_fc.*", "h.0.mlp.c_proj.*",
 * ..., "ln_f.weight", "ln_f.bias" (the names lmp_gpt2_save writes).
 *
 * A training step:
 *
 *     lmp_gpt2_own_params(m);                       // loaded models are read-only
 *     lmp_params_group g; lmp_params_init(&g);
 *     lmp_gpt2_params_add(m, &g, NULL, NULL);        // or a flags callback: freeze some
 *     ... add adapter / head tensors to g ...
 *     lmp_params_alloc_grads(&g);
 *     lmp_gpt2_bind_grads(m, &g);
 *     for each step:
 *         lmp_params_zero_grads(&g);
 *         lmp_gpt2_forward(m, inputs, mask, B, T, 1);       // keep activations
 *         lmp_gpt2_backward_lm(m, targets, &loss, NULL);     // causal LM
 *           or: compute dlnf[B,T,C] from m->acts.lnf with your head, then
 *               lmp_gpt2_backward_from_hidden(m, dlnf);      // e.g. classification
 *         lmp_params_clip_grad_norm(&g, 1.0f);
 *         lmp_params_adamw_step(&g, lr, 0.9, 0.999, 1e-8, wd);
 *
 * Padding: a mask given to the forward reaches the backward through the
 * saved attention probabilities (padded keys have probability 0, so they get
 * no gradient); give padded positions target -1 / zero dlnf.  Backward
 * accumulates into the gradients; several forward/backward pairs before one
 * optimizer step accumulate micro-batches (scale by 1/K afterwards).
 */

/* Copy every parameter into one block of memory the model owns (a loaded
 * safetensors checkpoint is a read-only mapping), so an optimizer may update
 * it.  No-op for a model that owns its parameters already.  Returns 0. */
int lmp_gpt2_own_params(lmp_gpt2 *m);

/* Optimizer flags of one tensor: called with its name and the default
 * (LMP_PARAM_TRAIN, plus LMP_PARAM_NO_DECAY for vectors: biases and
 * LayerNorm parameters); return LMP_PARAM_FROZEN (0) to freeze it. */
typedef int (*lmp_gpt2_flags_fn)(void *user, const char *name, int default_flags);

/* Register every tensor of m in g with the flags fn gives (fn NULL: all
 * trainable with the default flags).  Frozen tensors get no gradient memory.
 * Error if a trainable tensor's memory is read-only (see lmp_gpt2_own_params)
 * or a name is already in g.  Other tensors (adapters, heads) may be added to
 * g before lmp_params_alloc_grads. */
int lmp_gpt2_params_add(lmp_gpt2 *m, lmp_params_group *g, lmp_gpt2_flags_fn fn, void *user);

/* After lmp_params_alloc_grads(g): the backward passes below accumulate into
 * g's gradient buffers, found by name; a tensor that is frozen or not in g
 * gets none and its dweight work is skipped.  Errors: g not allocated, or a
 * tensor of that name that is not this model's.  Call again after changing g. */
int lmp_gpt2_bind_grads(lmp_gpt2 *m, lmp_params_group *g);

/* Causal-LM loss and backward for the last lmp_gpt2_forward(..., for_backward
 * = 1) over (B, T): targets[B,T] in [0,V) or -1 (ignored); *loss (may be NULL)
 * receives the mean over scored targets, losses[B,T] (may be NULL) the
 * per-token values.  Adds d(mean loss) to the bound gradients (the tied LM
 * head's share of wte's included).  A NaN loss from non-finite weights is
 * returned, not an error; a target out of range is an error and nothing is
 * written. */
int lmp_gpt2_backward_lm(lmp_gpt2 *m, const int *targets, float *loss, float *losses);

/* Backward from d(loss)/d(final LayerNorm output) dlnf[B,T,C] (same layout as
 * m->acts.lnf) of the last forward with for_backward = 1, for heads other
 * than the LM head (sequence classification on the last real token: dlnf is
 * zero except at those rows). */
int lmp_gpt2_backward_from_hidden(lmp_gpt2 *m, const float *dlnf);

/* Copy all weights of src into dst (same config; dst must own its
 * parameters).  For resuming training from a checkpoint into a live model. */
int lmp_gpt2_copy_params(lmp_gpt2 *dst, lmp_gpt2 *src);

/* ------------------------------------------------------------ weight formats
 * (core/nn/gpt2_weights.c, kernels in core/nn/qmat.h) */

/* The weights inference reads: LMP_WEIGHTS_F32 (the parameters themselves;
 * the default), LMP_WEIGHTS_F16 or LMP_WEIGHTS_Q8 (qmat.h): a copy of the
 * four linear layers of every block and of the tied LM head (wte) in that
 * format, made now from the fp32 parameters — call again after changing
 * them.  The embedding lookup stays exact (fp32 wte, wpe), and so do biases,
 * LayerNorms and the KV cache.  Forward, logits, loss, perplexity and
 * generation use the copies; a forward for training (for_backward) is an
 * error until the model is set back to f32, which frees them.  Errors (a
 * weight beyond f16's range names the tensor) leave the model at f32. */
int lmp_gpt2_set_weights(lmp_gpt2 *m, int fmt);
int lmp_gpt2_weights(const lmp_gpt2 *m);
/* Bytes of weight matrices one decoding step streams (the 4 linears per
 * block and the LM head) in the current format: the bandwidth bound's
 * numerator. */
size_t lmp_gpt2_weight_bytes_per_token(const lmp_gpt2 *m);

/* ------------------------------------------------------------ generation */

typedef struct {
    int max_new_tokens;       /* default 64 */
    float temperature;        /* 0: greedy (default 1) */
    int top_k;                /* 0: off (default 0) */
    float top_p;              /* nucleus, 1: off (default 1); 0: only the most likely token */
    float repetition_penalty; /* CTRL / HF: 1 off (default 1) */
    uint64_t seed;            /* sequence b samples from lmp_rng seeded with seed + b * golden */
    int eos_id;               /* stop after emitting it; -1: never (default 50256) */
    int window_keep;          /* tokens kept when the context slides (0: n_ctx - n_ctx/4) */
} lmp_gpt2_gen_opts;

void lmp_gpt2_gen_opts_default(lmp_gpt2_gen_opts *o);

/* Called for every generated token as soon as it is chosen.  logits[V] are
 * the model's raw next-token logits that produced it (before penalty,
 * temperature and filtering).  Return non-zero to stop that sequence. */
typedef int (*lmp_gpt2_token_cb)(void *user, int seq, int token, const float *logits);

/*
 * Generate continuations of n_seqs prompts (prompts[b] of prompt_lens[b]
 * tokens, 1..n_ctx each) with a KV cache, all sequences batched through each
 * step.  A sequence stops after max_new_tokens, after emitting eos_id, or when
 * its callback returns non-zero.
 *
 * Sliding window: the next token after tokens[0..N) is predicted from the
 * window tokens[s..N) with positions 0..N-s-1.  When that window would exceed
 * n_ctx, s jumps to N - window_keep and the kept tokens are re-prefilled into
 * the cache (their positions restart at 0), so generation may run past n_ctx
 * at the cost of one prefill every n_ctx - window_keep tokens.
 *
 * A NaN or infinite logit (the forward pass overflowed) stops generation
 * with an error naming the step and the sequence.
 */
int lmp_gpt2_generate(lmp_gpt2 *m, const int *const *prompts, const int *prompt_lens, int n_seqs,
                      const lmp_gpt2_gen_opts *opts, lmp_gpt2_token_cb cb, void *user);

/* ------------------------------------------------------------ CLI (core/cli/cli_generate.c) */

/* lmpipe generate --model PATH (--prompt TEXT | --prompt-ids 1,2,3) [options] */
int lmp_cli_generate(int argc, char **argv);
/* lmpipe perplexity --model PATH [--stride N] FILE */
int lmp_cli_perplexity(int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif
