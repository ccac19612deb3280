/*
 * pretrain.c — stage "pretrain": causal-LM training of a GPT-2-architecture
 * model from scratch on text files, with the core trainer (core/nn/lm_train.h).
 *
 * The files are tokenized once with the input tokenizer (cached, see
 * corpus.h); the last val_fraction of the token stream is held out.  Every
 * step logs loss, lr, grad_norm and tokens_per_s; every eval_every steps
 * val_loss and val_ppl; every sample_every steps a generated sample is
 * written as a text artifact.  With checkpoint_every > 0 the run is
 * checkpointed into <cachedir>/pretrain/<key> (key: every parameter that
 * shapes the run, the seed and the token stream), and a later run with the
 * same key continues from there when resume is on (the losses continue
 * exactly where the interrupted run stopped); SIGINT/SIGTERM saves a
 * checkpoint before stopping.  The checkpoint is removed once the model is
 * produced: the stage cache keeps the result.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckptdir.h"
#include "dist.h"
#include "corpus.h"
#include "gpt2_lm.h"
#include "stages.h"
#include "lm_train.h"
#include "optim_params.h"
#include "util.h"

static const lmp_param params[] = {
    {"n_layer", LMP_INT, "4", 1, 48, NULL, "transformer blocks"},
    {"n_head", LMP_INT, "4", 1, 64, NULL, "attention heads (must divide n_embd)"},
    {"n_embd", LMP_INT, "192", 8, 4096, NULL, "model width"},
    {"n_ctx", LMP_INT, "128", 8, 4096, NULL, "context length (position embeddings)"},
    CORPUS_FILES_PARAM,
    {"tokens", LMP_INT, "0", 0, 1e15, NULL, "training-token budget; sets steps when > 0"},
    {"steps", LMP_INT, "1000", 1, 1e9, NULL, "optimizer steps (when tokens is 0)"},
    {"batch", LMP_INT, "16", 1, 4096, NULL, "sequences per micro-batch"},
    {"seq", LMP_INT, "0", 0, 4096, NULL, "tokens per sequence (0: n_ctx)"},
    {"accum", LMP_INT, "1", 1, 1024, NULL, "micro-batches per optimizer step"},
    LMP_OPTIM_LM_PARAMS,
    {"val_fraction", LMP_FLOAT, "0.02", 0, 0.5, NULL, "held-out share at the end of the token stream"},
    {"eval_every", LMP_INT, "250", 0, 1e9, NULL, "steps between held-out evaluations (0: only at the end)"},
    {"eval_tokens", LMP_INT, "32768", 0, 1e15, NULL, "held-out tokens per periodic evaluation (0: all; the final one uses all)"},
    {"checkpoint_every", LMP_INT, "250", 0, 1e9, NULL, "steps between checkpoints (0: none)"},
    {"resume", LMP_BOOL, "true", LMP_UNBOUNDED, NULL, "continue from this configuration's checkpoint if there is one"},
    {"sample_every", LMP_INT, "500", 0, 1e9, NULL, "steps between logged text samples (0: only at the end)"},
    {"sample_prompt", LMP_STRING, "The", LMP_UNBOUNDED, NULL, "prompt of the samples ('': start from <|endoftext|>)"},
    {"sample_tokens", LMP_INT, "48", 1, 4096, NULL, "tokens per sample"},
    {"temperature", LMP_FLOAT, "0.8", 0, 100, NULL, "sampling temperature (0: greedy)"},
    {"top_k", LMP_INT, "40", 0, 1e9, NULL, "sample from the k most likely tokens (0: all)"},
    {"seed", LMP_INT, "-1", -1, 9.2e18, NULL, "initialisation and data-order seed (-1: the run's seed)"},
    LMP_PARAM_END,
};

/* Parameters that do not change the trained weights: left out of the checkpoint key. */
static const char *const not_shaping[] = {"eval_every", "eval_tokens", "checkpoint_every", "resume",
                                          "sample_every", "sample_prompt", "sample_tokens",
                                          "temperature", "top_k", NULL};

static const lmp_port consumes[] = {{"tokenizer", "tokenizer", 0, "the vocabulary (bpe-train)"}, LMP_PORT_END};
static const lmp_port produces[] = {{"model", "lm", 0, "the trained language model with its tokenizer"},
                                    LMP_PORT_END};

static char *param_text(lmp_stage *st, const lmp_param *p)
{
    switch (p->type) {
    case LMP_INT: return lmp_strfmt("%lld", (long long)lmp_param_int(st, p->key));
    case LMP_FLOAT: return lmp_strfmt("%.17g", lmp_param_float(st, p->key));
    case LMP_BOOL: return lmp_strfmt("%d", lmp_param_bool(st, p->key));
    default: return strdupCheck(lmp_param_str(st, p->key));
    }
}

/* The checkpoint folder of this configuration. */
static char *checkpoint_dir(lmp_stage *st, uint64_t seed, const char *tok_digest, const int *ids, size_t n)
{
    lmp_sha256 h;
    lmp_sha256_init(&h);
    lmp_sha256_update(&h, "lmpipe-pretrain-ckpt-v1", 24);
    for (const lmp_param *p = params; p->key; p++) {
        int skip = 0;
        for (int i = 0; not_shaping[i]; i++) skip |= strcmp(p->key, not_shaping[i]) == 0;
        if (skip) continue;
        char *v = param_text(st, p);
        lmp_sha256_update(&h, p->key, strlen(p->key) + 1);
        lmp_sha256_update(&h, v, strlen(v) + 1);
        free(v);
    }
    lmp_sha256_update(&h, &seed, sizeof seed);
    lmp_sha256_update(&h, tok_digest, 64);
    lmp_sha256_update(&h, ids, n * sizeof *ids);
    char key[65];
    lmp_sha256_final(&h, key);
    return lmp_strfmt("%s/pretrain/%s", lmp_cachedir(st), key);
}

typedef struct {
    int *toks, n, cap;
} collect;

static int on_token(void *user, int seq, int token, const float *logits)
{
    (void)seq, (void)logits;
    collect *c = user;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->toks = reallocCheck(c->toks, (size_t)c->cap * sizeof *c->toks);
    }
    c->toks[c->n++] = token;
    return 0;
}

/* Generate a sample, write it to <workdir>/samples/step-N.txt and record it. */
static int log_sample(lmp_stage *st, lmp_gpt2 *m, lmp_tokenizer *tok, int step, uint64_t seed)
{
    const char *prompt = lmp_param_str(st, "sample_prompt");
    int *pids = NULL;
    size_t np = 0;
    if (lmp_bpe_encode(tok->bpe, prompt, strlen(prompt), 0, &pids, &np) != 0) return -1;
    int eot = lmp_bpe_eot(tok->bpe);
    if (np == 0) {
        pids[0] = eot >= 0 ? eot : 0;
        np = 1;
    }
    if (np > (size_t)m->config.n_ctx) np = (size_t)m->config.n_ctx; /* keep the prompt's start */
    lmp_gpt2_gen_opts o;
    lmp_gpt2_gen_opts_default(&o);
    o.max_new_tokens = (int)lmp_param_int(st, "sample_tokens");
    o.temperature = (float)lmp_param_float(st, "temperature");
    o.top_k = (int)lmp_param_int(st, "top_k");
    o.eos_id = eot;
    o.seed = seed + (uint64_t)step;
    collect c = {0};
    int plen = (int)np;
    const int *pp = pids;
    int rc = lmp_gpt2_generate(m, &pp, &plen, 1, &o, on_token, &c);
    char *text = NULL, *gen = NULL;
    size_t tlen;
    if (rc == 0) rc = lmp_bpe_decode(tok->bpe, pids, np, &text, &tlen);
    if (rc == 0) rc = lmp_bpe_decode(tok->bpe, c.toks, (size_t)c.n, &gen, &tlen);
    if (rc == 0) {
        char *body = lmp_strfmt("%s%s\n", text, gen);
        char *name = lmp_strfmt("samples/step-%06d.txt", step);
        char *path = lmp_strfmt("%s/%s", lmp_workdir(st), name);
        char *dir = lmp_strfmt("%s/samples", lmp_workdir(st));
        rc = lmp_mkdirs(dir);
        if (rc == 0) rc = lmp_write_file_atomic(path, body, strlen(body));
        if (rc == 0) rc = lmp_log_artifact(st, name, path);
        lmp_info(st, "sample at step %d: %s", step, body);
        free(body), free(name), free(path), free(dir);
    }
    free(text), free(gen), free(c.toks), free(pids);
    return rc;
}

/* GPT-2's initialisation: N(0, 0.02), the projections into the residual
 * stream scaled down by 1/sqrt(2 n_layer) so the stream's variance does not
 * grow with depth. */
static int init_model(const lmp_gpt2_config *c, uint64_t seed, lmp_gpt2 **m)
{
    if (lmp_gpt2_init_random(c, seed, m) != 0) return -1;
    float s = 1.0f / sqrtf(2.0f * c->n_layer);
    for (int l = 0; l < c->n_layer; l++) {
        lmp_gpt2_linear *ps[2] = { (*m)->h[l].attn_proj, (*m)->h[l].mlp_proj };
        for (int k = 0; k < 2; k++)
            for (size_t i = 0; i < (size_t)ps[k]->in * ps[k]->out; i++) ps[k]->weight[i] *= s;
    }
    return 0;
}

static int evaluate(lmp_stage *st, lmp_gpt2 *m, const int *val, size_t nval, int B, int T, long windows,
                    int step)
{
    double loss;
    if (lmp_lm_eval(m, val, nval, B, T, windows, &loss) != 0) return -1;
    lmp_log_metric(st, "val_loss", step, loss);
    lmp_log_metric(st, "val_ppl", step, exp(loss));
    if (step >= 0) lmp_info(st, "step %d: held-out loss %.4f, perplexity %.2f", step, loss, exp(loss));
    else lmp_info(st, "final held-out loss %.4f, perplexity %.2f", loss, exp(loss));
    return 0;
}

/* Check time: a shape whose training cannot fit in memory is refused before
 * the tokenizer is even trained.  What is sure to be needed: the weights,
 * their gradients and AdamW's two moments (4 floats per parameter), and the
 * forward activations of one micro-batch (core/nn/gpt2.h, lmp_gpt2_acts:
 * 18 C + NH T floats per token and layer); the vocabulary is not known yet,
 * so it counts as 256 (the byte alphabet every BPE vocabulary has). */
static int check(lmp_stage *st)
{
    lmp_gpt2_config c = { .n_layer = (int)lmp_param_int(st, "n_layer"), .n_head = (int)lmp_param_int(st, "n_head"),
                          .n_embd = (int)lmp_param_int(st, "n_embd"), .n_ctx = (int)lmp_param_int(st, "n_ctx"),
                          .vocab_size = 256 };
    double B = (double)lmp_param_int(st, "batch"), T = (double)lmp_param_int(st, "seq");
    if (T == 0) T = c.n_ctx;
    double L = c.n_layer, C = c.n_embd, NH = c.n_head, np = (double)lmp_gpt2_num_params(&c);
    double floats = 4 * np + B * T * (L * (18 * C + NH * T) + 2 * C);
    char what[160];
    snprintf(what, sizeof what, "%.0f parameters with their gradients and AdamW state, and the activations of "
             "a batch of %.0f x %.0f tokens", np, B, T);
    return lmp_check_memory(4 * floats, what);
}

static int run(lmp_stage *st)
{
    lmp_tokenizer *tok = lmp_input(st, "tokenizer");
    int64_t seed_param = lmp_param_int(st, "seed");
    uint64_t seed = seed_param >= 0 ? (uint64_t)seed_param : lmp_seed(st);
    lmp_gpt2_config c = { .n_layer = (int)lmp_param_int(st, "n_layer"),
                          .n_head = (int)lmp_param_int(st, "n_head"),
                          .n_embd = (int)lmp_param_int(st, "n_embd"),
                          .n_ctx = (int)lmp_param_int(st, "n_ctx"),
                          .vocab_size = lmp_bpe_vocab_size(tok->bpe),
                          .layer_norm_epsilon = 1e-5f };
    if (lmp_gpt2_config_check(&c, "pretrain") != 0) return -1;
    lmp_lm_train_opts o;
    lmp_lm_train_opts_default(&o);
    o.B = (int)lmp_param_int(st, "batch");
    o.T = lmp_param_int(st, "seq") ? (int)lmp_param_int(st, "seq") : c.n_ctx;
    o.accum = (int)lmp_param_int(st, "accum");
    if (o.T > c.n_ctx) return lmp_error("seq %d exceeds n_ctx %d", o.T, c.n_ctx);
    int64_t per_step = (int64_t)o.B * o.T * o.accum, budget = lmp_param_int(st, "tokens");
    int64_t steps = budget > 0 ? (budget + per_step - 1) / per_step : lmp_param_int(st, "steps");
    if (steps > 1000000000) return lmp_error("tokens %lld need %lld steps (too many)", (long long)budget, (long long)steps);
    o.steps = (int)steps;
    if (lmp_optim_opts_read(st, &o.optim, LMP_OPTIM_OLD_SPELLINGS) != 0) return -1;

    /* data */
    char **files;
    int nfiles, hit;
    if (lmp_param_files(st, "files", &files, &nfiles) != 0) return -1;
    int *ids;
    size_t n;
    double t0 = lmp_now();
    int rc = corpus_tokens(st, tok, files, nfiles, &ids, &n, &hit);
    lmp_files_free(files);
    if (rc != 0) return -1;
    lmp_info(st, "%zu tokens from %d file(s) (%s, %.1f s)", n, nfiles, hit ? "cached" : "tokenized",
             lmp_now() - t0);
    size_t nval = (size_t)((double)n * lmp_param_float(st, "val_fraction"));
    size_t ntrain = n - nval;
    if (nval > 0 && nval < (size_t)o.T + 1) {
        free(ids);
        return lmp_error("val_fraction %g holds out %zu tokens, fewer than one window of %d",
                         lmp_param_float(st, "val_fraction"), nval, o.T + 1);
    }

    lmp_gpt2 *m = NULL;
    lmp_lm_trainer *tr = NULL;
    char *ckpt = NULL;
    if (init_model(&c, seed, &m) != 0 || lmp_lm_trainer_new(m, &o, ids, ntrain, seed ^ 0x5eedULL, &tr) != 0)
        goto fail;
    int64_t every_ckpt = lmp_param_int(st, "checkpoint_every");
    if (every_ckpt > 0) ckpt = checkpoint_dir(st, seed, tok->digest, ids, n);
    /* under mpirun rank 0 owns the checkpoint: it decides whether to resume
     * and the other ranks read the same folder (the data home is shared) */
    int writer = lmp_dist_writer();
    long resume = ckpt && lmp_param_bool(st, "resume") && (!writer || lmp_ckptdir_recover(ckpt));
    if (lmp_dist_size() > 1) lmp_dist_bcast_long(&resume);
    if (resume) {
        if (lmp_lm_trainer_load(tr, ckpt, NULL) != 0) goto fail;
        lmp_info(st, "resuming from %s at step %d", ckpt, tr->step);
    }
    size_t np = lmp_gpt2_num_params(&c);
    char *v = lmp_strfmt("%zu", np);
    lmp_log_param(st, "n_params", v);
    free(v);
    v = lmp_strfmt("%d", o.steps);
    lmp_log_param(st, "n_steps", v);
    free(v);
    v = lmp_strfmt("%zu", ntrain);
    lmp_log_param(st, "train_stream_tokens", v);
    free(v);
    lmp_info(st, "%d layers x %d wide, %d heads, vocab %d: %.2fM parameters; %d steps of %lld tokens, %zu training tokens in the stream, %zu held out",
             c.n_layer, c.n_embd, c.n_head, c.vocab_size, np / 1e6, o.steps, (long long)per_step, ntrain, nval);

    int64_t every_eval = lmp_param_int(st, "eval_every"), every_sample = lmp_param_int(st, "sample_every");
    long eval_windows = lmp_param_int(st, "eval_tokens") > 0 ? (long)(lmp_param_int(st, "eval_tokens") / o.T) + 1 : 0;
    double t_train = 0;
    int64_t tokens_timed = 0;
    while (tr->step < o.steps) {
        /* several ranks stop together, at the step whose reduction told them */
        if (lmp_dist_size() > 1 ? tr->stop : lmp_interrupted()) {
            lmp_set_interrupted();
            if (ckpt && writer && lmp_lm_trainer_save(tr, ckpt, NULL) == 0)
                lmp_error("interrupted at step %d (checkpoint saved; run again to resume)", tr->step);
            else
                lmp_error("interrupted at step %d", tr->step);
            goto fail;
        }
        lmp_lm_step_info info = {0};
        if (lmp_lm_train_step(tr, &info) != 0) {
            if (info.skipped) lmp_log_metric(st, "nonfinite", info.step, 1);
            goto fail;
        }
        t_train += info.seconds;
        tokens_timed += info.tokens;
        lmp_log_metric(st, "loss", info.step, info.loss);
        lmp_log_metric(st, "lr", info.step, info.lr);
        lmp_log_metric(st, "grad_norm", info.step, info.grad_norm);
        lmp_log_metric(st, "tokens_per_s", info.step, info.tokens / info.seconds);
        if (info.skipped) {
            lmp_log_metric(st, "nonfinite", info.step, 1);
            lmp_warn(st, "step %d: loss %g, gradient norm %g: skipped", info.step, info.loss, info.grad_norm);
        }
        lmp_progress(st, "steps", info.step, o.steps);
        if (nval && every_eval > 0 && info.step % every_eval == 0 && info.step < o.steps &&
            evaluate(st, m, ids + ntrain, nval, o.B, o.T, eval_windows, info.step) != 0)
            goto fail;
        if (writer && every_sample > 0 && info.step % every_sample == 0 && info.step < o.steps &&
            log_sample(st, m, tok, info.step, seed) != 0)
            goto fail;
        if (ckpt && writer && info.step % every_ckpt == 0 && info.step < o.steps &&
            lmp_lm_trainer_save(tr, ckpt, NULL) != 0)
            goto fail;
    }
    if (tokens_timed) {
        lmp_log_metric(st, "train_seconds", -1, t_train);
        lmp_log_metric(st, "train_tokens_per_s", -1, tokens_timed / t_train);
    }
    lmp_log_metric(st, "train_tokens", -1, (double)tr->tokens_seen);
    if (nval && evaluate(st, m, ids + ntrain, nval, o.B, o.T, 0, -1) != 0) goto fail;
    if (writer && log_sample(st, m, tok, tr->step, seed) != 0) goto fail;
    lmp_lm_trainer_free(tr);
    tr = NULL;
    free(ids);
    ids = NULL;
    if (ckpt && writer) lmp_remove_tree(ckpt);
    free(ckpt);
    lmp_lm *lm;
    if (lmp_gpt2_lm_new(m, lmp_tokenizer_ref(tok), &lm) != 0) {
        lmp_tokenizer_free(tok);
        lmp_gpt2_free(m);
        return -1;
    }
    return lmp_output(st, "model", lm);

fail:
    lmp_lm_trainer_free(tr);
    lmp_gpt2_free(m);
    free(ids);
    free(ckpt);
    return -1;
}

const lmp_stage_def pretrain_stage = {
    .name = "pretrain",
    .description = "train a GPT-2-architecture causal language model from scratch on text files",
    .params = params,
    .consumes = consumes,
    .produces = produces,
    .flags = LMP_STAGE_CACHEABLE | LMP_STAGE_SEEDED,
    .run = run,
    .check = check,
};
