/*
 * gpt2_stages.c — the "gpt2" plugin: thin stages over core/nn/gpt2.h.
 *
 *   gpt2        a language model from a checkpoint (HF folder, .safetensors,
 *               llm.c .bin) or, with model=default, lmpipe's own default base
 *               (pipelines/pretrain-default.pipe, run as a sub-run and cached)
 *   generate    prompt in, continuation out (KV cache; temperature, top-k,
 *               top-p, repetition penalty), streamed to stdout, kept as text
 *   perplexity  mean next-token NLL of a text file in strided windows
 * generate and perplexity read the weights as f32, f16 or q8 (weights=):
 * the model is converted for the stage and set back to f32 after it, since
 * the same model may go on to a training stage.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpt2.h"
#include "gpt2_lm.h"
#include "lmpipe.h"
#include "paths.h"
#include "tokenizer.h"
#include "util.h"

/* ------------------------------------------------------------------ gpt2 */

static const lmp_param gpt2_params[] = {
    {"model", LMP_PATH, "default", LMP_UNBOUNDED, NULL,
     "checkpoint: HF folder, .safetensors or llm.c .bin; 'default': lmpipe's own base (built on first use)"},
    {"tokenizer", LMP_PATH, "auto", LMP_UNBOUNDED, NULL,
     "vocabulary folder; 'auto': the checkpoint folder's own vocab.json + merges.txt, else GPT-2's"},
    LMP_PARAM_END,
};
static const lmp_port gpt2_out[] = {
    {"lm", "lm", 0, "the language model with its tokenizer"},
    {"tokenizer", "tokenizer", 0, "the model's vocabulary (wire it to gpt2-bpe to tokenize data for it)"},
    LMP_PORT_END,
};

static int is_dir(const char *p)
{
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

static int gpt2_run(lmp_stage *st)
{
    const char *path = lmp_param_str(st, "model"), *tokp = lmp_param_str(st, "tokenizer");
    lmp_lm *lm = NULL;
    if (strcmp(path, "default") == 0) {
        if (lmp_subrun(st, "pretrain-default.pipe", "base", "model", (void **)&lm) != 0) return -1;
        if (strcmp(tokp, "auto") != 0) lmp_warn(st, "model=default brings its own tokenizer: tokenizer=%s ignored", tokp);
    } else {
        lmp_gpt2 *m;
        if (lmp_gpt2_load(path, &m) != 0) return -1;
        lmp_tokenizer *tok = NULL;
        char *dir;
        if (strcmp(tokp, "auto") != 0) {
            dir = strdupCheck(tokp);
        } else {
            char *vj = is_dir(path) ? lmp_strfmt("%s/vocab.json", path) : NULL;
            dir = vj && access(vj, R_OK) == 0 ? strdupCheck(path) : lmp_data_path("gpt2");
            free(vj);
        }
        int rc = lmp_tokenizer_load_dir(dir, &tok);
        free(dir);
        if (rc != 0 || lmp_gpt2_lm_new(m, tok, &lm) != 0) {
            if (tok) lmp_tokenizer_free(tok);
            lmp_gpt2_free(m);
            return -1;
        }
    }
    const lmp_gpt2 *m = lmp_gpt2_lm_model(lm);
    if (!m) {
        lmp_lm_free(lm);
        return -1;
    }
    const lmp_gpt2_config *c = &m->config;
    lmp_info(st, "GPT-2 %d layers x %d dims, %d heads, context %d, vocabulary %d (%zu parameters)", c->n_layer,
             c->n_embd, c->n_head, c->n_ctx, c->vocab_size, lmp_gpt2_num_params(c));
    char buf[32];
    snprintf(buf, sizeof buf, "%zu", lmp_gpt2_num_params(c));
    lmp_log_param(st, "num_params", buf);
    lmp_tokenizer *tok = lmp_tokenizer_ref(lm->tok);
    if (lmp_output(st, "lm", lm) != 0) return -1;
    if (lmp_output(st, "tokenizer", tok) != 0) return -1;
    return lmp_output_digest(st, "tokenizer", tok->digest);
}

/* ------------------------------------------------------- weight formats */

/* Convert the model to the stage's `weights` format (f32: nothing to do). */
static int stage_weights(lmp_stage *st, lmp_gpt2 *m)
{
    int fmt;
    if (lmp_weights_parse(lmp_param_str(st, "weights"), "weights", &fmt) != 0) return -1;
    if (fmt == LMP_WEIGHTS_F32) return 0;
    if (lmp_gpt2_set_weights(m, fmt) != 0) return -1;
    lmp_info(st, "weights %s: %.1f MiB of weight matrices read per token", lmp_weights_name(fmt),
             lmp_gpt2_weight_bytes_per_token(m) / 1048576.0);
    return 0;
}

/* -------------------------------------------------------------- generate */

static const lmp_param gen_params[] = {
    {"prompt", LMP_STRING, "The meaning of life is", LMP_UNBOUNDED, NULL,
     "the text to continue (empty: start from <|endoftext|>, as GPT-2's unconditional samples)"},
    {"max_new_tokens", LMP_INT, "64", 1, 1 << 20, NULL, "tokens to generate (stops early at <|endoftext|>)"},
    {"temperature", LMP_FLOAT, "0.8", 0, 100, NULL, "softmax temperature (0: greedy)"},
    {"top_k", LMP_INT, "40", 0, 1 << 20, NULL, "sample among the k most likely tokens (0: off)"},
    {"top_p", LMP_FLOAT, "1", 0, 1, NULL,
     "nucleus sampling: smallest set with this much probability (1: off; 0: only the most likely token)"},
    {"repetition_penalty", LMP_FLOAT, "1", 0.01, 100, NULL, "CTRL-style penalty on tokens already present (1: off)"},
    {"samples", LMP_INT, "1", 1, 256, NULL, "continuations to generate (batched)"},
    {"stream", LMP_BOOL, "true", LMP_UNBOUNDED, NULL, "print the first continuation to stdout as it is generated"},
    {"weights", LMP_ENUM, "f32", LMP_UNBOUNDED, LMP_WEIGHTS_CHOICES,
     "weight format of the linear layers and LM head: f32, f16 (IEEE half) or q8 (int8 per block of 32, "
     "like ggml's q8_0); converted at the start of the stage"},
    LMP_PARAM_END,
};
static const lmp_port lm_in[] = {{"lm", "lm", 0, "the language model"}, LMP_PORT_END};
static const lmp_port text_out[] = {{"text", "text", 0, "prompt + continuations, one block per sample"},
                                    LMP_PORT_END};

typedef struct {
    lmp_tokenizer *tok;
    int **ids;
    int *n, *cap;
    int stream;
} gen_state;

static int on_token(void *user, int seq, int token, const float *logits)
{
    gen_state *g = user;
    if (g->n[seq] == g->cap[seq]) {
        g->cap[seq] = g->cap[seq] ? 2 * g->cap[seq] : 64;
        g->ids[seq] = reallocCheck(g->ids[seq], (size_t)g->cap[seq] * sizeof(int));
    }
    g->ids[seq][g->n[seq]++] = token;
    if (g->stream && seq == 0 && token != lmp_bpe_eot(g->tok->bpe)) {
        char *text;
        size_t len;
        if (lmp_bpe_decode(g->tok->bpe, &token, 1, &text, &len) == 0) {
            fwrite(text, 1, len, stdout);
            fflush(stdout);
            free(text);
        }
    }
    return 0;
}

static int generate_body(lmp_stage *st, lmp_lm *lm, lmp_gpt2 *m);

static int generate_run(lmp_stage *st)
{
    lmp_lm *lm = lmp_input(st, "lm");
    lmp_gpt2 *m = lmp_gpt2_lm_model(lm);
    if (!m) return -1;
    if (stage_weights(st, m) != 0) return -1;
    int rc = generate_body(st, lm, m);
    lmp_gpt2_set_weights(m, LMP_WEIGHTS_F32);
    return rc;
}

static int generate_body(lmp_stage *st, lmp_lm *lm, lmp_gpt2 *m)
{
    const char *prompt = lmp_param_str(st, "prompt");
    int *pids;
    size_t plen;
    if (lmp_bpe_encode(lm->tok->bpe, prompt, strlen(prompt), 0, &pids, &plen) != 0) return -1;
    /* An empty prompt passes --check, so it must run: like GPT-2's
     * unconditional samples it starts from <|endoftext|>, the token that
     * precedes every document in training. */
    if (plen == 0) {
        if (lmp_bpe_eot(lm->tok->bpe) < 0) {
            free(pids);
            return lmp_error("the prompt is empty and the vocabulary has no <|endoftext|> token to start from");
        }
        pids[0] = lmp_bpe_eot(lm->tok->bpe);
        plen = 1;
    }
    if ((int)plen > m->config.n_ctx) {
        free(pids);
        return lmp_error("the prompt has %zu tokens, more than the model's context of %d", plen,
                         m->config.n_ctx);
    }
    lmp_gpt2_gen_opts o;
    lmp_gpt2_gen_opts_default(&o);
    o.max_new_tokens = (int)lmp_param_int(st, "max_new_tokens");
    o.temperature = (float)lmp_param_float(st, "temperature");
    o.top_k = (int)lmp_param_int(st, "top_k");
    o.top_p = (float)lmp_param_float(st, "top_p");
    o.repetition_penalty = (float)lmp_param_float(st, "repetition_penalty");
    o.seed = lmp_seed(st);
    o.eos_id = lmp_bpe_eot(lm->tok->bpe);
    int S = (int)lmp_param_int(st, "samples");
    const int **prompts = mallocCheck((size_t)S * sizeof *prompts);
    int *lens = mallocCheck((size_t)S * sizeof *lens);
    for (int s = 0; s < S; s++) prompts[s] = pids, lens[s] = (int)plen;
    gen_state g = {lm->tok, callocCheck((size_t)S, sizeof(int *)), callocCheck((size_t)S, sizeof(int)),
                   callocCheck((size_t)S, sizeof(int)), lmp_param_bool(st, "stream")};
    if (g.stream) printf("%s", prompt), fflush(stdout);
    double t0 = lmp_now();
    int rc = lmp_gpt2_generate(m, (const int *const *)prompts, lens, S, &o, on_token, &g);
    double dt = lmp_now() - t0;
    if (g.stream) printf("\n"), fflush(stdout);
    lmp_sbuf out = {0};
    lmp_sbuf_puts(&out, "");
    long total = 0;
    for (int s = 0; rc == 0 && s < S; s++) {
        char *text;
        size_t len;
        int n = g.n[s];
        if (n > 0 && g.ids[s][n - 1] == o.eos_id) n--; /* the stop token is not text */
        total += g.n[s];
        if (lmp_bpe_decode(lm->tok->bpe, g.ids[s], (size_t)n, &text, &len) != 0) {
            rc = -1;
            break;
        }
        lmp_sbuf_printf(&out, "%s--- sample %d ---\n%s", s ? "\n" : "", s + 1, prompt);
        lmp_sbuf_putn(&out, text, len);
        lmp_sbuf_putc(&out, '\n');
        free(text);
    }
    for (int s = 0; s < S; s++) free(g.ids[s]);
    free(g.ids), free(g.n), free(g.cap), free(prompts), free(lens), free(pids);
    if (rc != 0) {
        lmp_sbuf_free(&out);
        return -1;
    }
    lmp_log_metric(st, "tokens", -1, (double)total);
    lmp_log_metric(st, "tokens_per_s", -1, dt > 0 ? (double)total / dt : 0);
    char *path = lmp_strfmt("%s/generated.txt", lmp_workdir(st));
    rc = lmp_write_file_atomic(path, out.s, out.len);
    if (rc == 0) rc = lmp_log_artifact(st, "generated.txt", path);
    free(path);
    if (rc != 0) {
        lmp_sbuf_free(&out);
        return -1;
    }
    return lmp_output(st, "text", out.s);
}

/* ------------------------------------------------------------ perplexity */

static const lmp_param ppl_params[] = {
    {"file", LMP_PATH, NULL, LMP_UNBOUNDED, NULL, "UTF-8 text file to score (.gz: read decompressed)"},
    {"stride", LMP_INT, "0", 0, 1 << 20, NULL, "window start every this many tokens (0: n_ctx/2)"},
    {"max_tokens", LMP_INT, "0", 0, 1LL << 40, NULL, "score only the first this many tokens (0: all)"},
    {"weights", LMP_ENUM, "f32", LMP_UNBOUNDED, LMP_WEIGHTS_CHOICES,
     "weight format of the linear layers and LM head: f32, f16 or q8 (as generate's)"},
    LMP_PARAM_END,
};

static int perplexity_body(lmp_stage *st, lmp_lm *lm, lmp_gpt2 *m);

static int perplexity_run(lmp_stage *st)
{
    lmp_lm *lm = lmp_input(st, "lm");
    lmp_gpt2 *m = lmp_gpt2_lm_model(lm);
    if (!m) return -1;
    if (stage_weights(st, m) != 0) return -1;
    int rc = perplexity_body(st, lm, m);
    lmp_gpt2_set_weights(m, LMP_WEIGHTS_F32);
    return rc;
}

static int perplexity_body(lmp_stage *st, lmp_lm *lm, lmp_gpt2 *m)
{
    const char *file = lmp_param_str(st, "file");
    char *text;
    size_t len;
    if (lmp_read_text_file(file, 1u << 30, &text, &len) != 0) return -1;
    int *ids;
    size_t n;
    int rc = lmp_bpe_encode(lm->tok->bpe, text, len, 0, &ids, &n);
    free(text);
    if (rc != 0) return lmp_error("%s: %s", file, lmp_errmsg());
    int64_t max = lmp_param_int(st, "max_tokens");
    if (max > 0 && (int64_t)n > max) n = (size_t)max;
    if (n < 2) {
        free(ids);
        return lmp_error("%s: fewer than 2 tokens to score", file);
    }
    int stride = (int)lmp_param_int(st, "stride");
    if (stride > m->config.n_ctx) {
        free(ids);
        return lmp_error("stride %d is longer than the model's context of %d", stride, m->config.n_ctx);
    }
    lmp_gpt2_ppl r;
    rc = lmp_gpt2_perplexity(m, ids, (long)n, stride, &r);
    free(ids);
    if (rc != 0) return -1;
    lmp_log_metric(st, "nll", -1, r.nll);
    lmp_log_metric(st, "ppl", -1, r.ppl);
    lmp_log_metric(st, "tokens", -1, (double)r.tokens);
    lmp_info(st, "%s: nll=%.4f ppl=%.2f tokens=%ld", file, r.nll, r.ppl, r.tokens);
    return 0;
}

static const lmp_stage_def stages[] = {
    {.name = "gpt2", .description = "a GPT-2 language model from a checkpoint, or lmpipe's default base",
     .params = gpt2_params, .produces = gpt2_out, .run = gpt2_run},
    {.name = "generate", .description = "continue a prompt (KV cache; temperature, top-k, top-p, repetition penalty)",
     .params = gen_params, .consumes = lm_in, .produces = text_out, .flags = LMP_STAGE_SEEDED, .run = generate_run},
    {.name = "perplexity", .description = "perplexity of a text file in strided windows of the context",
     .params = ppl_params, .consumes = lm_in, .run = perplexity_run},
    {0},
};

LMP_PLUGIN_DEFINE("gpt2", PACKAGE_VERSION, "GPT-2 language models: load, generate, perplexity", stages);
