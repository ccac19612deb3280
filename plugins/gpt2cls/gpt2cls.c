/*
 * gpt2cls.c — the "gpt2-classifier" plugin: a GPT-2 body with a sequence
 * classification head (core/kit/gpt2_classifier.h), as Hugging Face's
 * GPT2ForSequenceClassification.
 *
 *   gpt2-classifier   base=PATH num_labels=2 head_init_std=0.02 [@tokenizer=...]
 *
 * A tokenizer wired in (or the latest one before it) tags the classifier
 * with its vocabulary digest, so that training or evaluating it on ids from
 * another vocabulary is an error; without one it accepts any.
 *
 * A base that is a GPT2ForSequenceClassification checkpoint (score.weight
 * beside the body, as lora-merge path=DIR writes) brings its head: the
 * classifier starts from it, with its number of labels.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2_classifier.h"
#include "gpt2_lm.h"
#include "lmpipe.h"
#include "tokenizer.h"

static const lmp_param params[] = {
    {"base", LMP_PATH, "lm", LMP_UNBOUNDED, NULL,
     "GPT-2 checkpoint: HF folder, .safetensors or llm.c .bin; 'lm': take the wired-in language model"},
    {"num_labels", LMP_INT, "2", 1, 1000000, NULL, "classes of the head (a base with a head: its own)"},
    {"head_init_std", LMP_FLOAT, "0.02", 0, 10, NULL,
     "score.weight ~ N(0, std) (HF initializer_range), unless the base has a head"},
    LMP_PARAM_END,
};

static const lmp_port in[] = {
    {"lm", "lm", 1, "the base language model (taken over) when base=lm"},
    {"tokenizer", "tokenizer", 1, "the vocabulary the base was trained with (tags the classifier)"},
    LMP_PORT_END,
};
static const lmp_port out[] = {{"model", "classifier", 0, "the GPT-2 classifier"}, LMP_PORT_END};

static int run(lmp_stage *st)
{
    const char *base = lmp_param_str(st, "base");
    lmp_gpt2 *m;
    const lmp_tokenizer *tok = lmp_input(st, "tokenizer");
    char lm_digest[65] = "";
    if (strcmp(base, "lm") == 0) {
        lmp_lm *lm = lmp_input_take(st, "lm");
        if (!lm) return lmp_error("base=lm but no language model is wired in (add a gpt2 stage before, or set base=PATH)");
        memcpy(lm_digest, lm->tok->digest, sizeof lm_digest);
        if (!(m = lmp_gpt2_lm_take(lm))) {
            lmp_lm_free(lm);
            return lmp_error("base=lm: %s", lmp_errmsg());
        }
        base = m->source ? m->source : "lm";
    } else if (lmp_gpt2_load(base, &m) != 0) {
        return -1;
    }
    /* a GPT2ForSequenceClassification checkpoint's own head */
    int num_labels = (int)lmp_param_int(st, "num_labels"), saved_labels = 0;
    float *saved = NULL;
    /* (only a checkpoint named by base=PATH: a wired-in model's source may
     * be a description, "random" for one pretrained in this process) */
    int from_path = strcmp(lmp_param_str(st, "base"), "lm") != 0;
    int has_head = from_path ? lmp_gpt2_load_seq_cls_head(base, m->config.n_embd, &saved_labels, &saved) : 0;
    if (has_head > 0 && lmp_param_is_set(st, "num_labels") && num_labels != saved_labels) {
        lmp_error("num_labels=%d conflicts with the head score.weight of %s (%d labels)", num_labels, base,
                  saved_labels);
        has_head = -1;
    }
    lmp_classifier *c = NULL;
    if (has_head < 0 || lmp_gpt2_classifier_new(m, has_head ? saved_labels : num_labels, base, &c) != 0) {
        free(saved);
        lmp_gpt2_free(m);
        return -1;
    }
    if (has_head) {
        memcpy(lmp_gpt2_classifier_head(c), saved, (size_t)saved_labels * m->config.n_embd * sizeof(float));
        if (lmp_param_is_set(st, "head_init_std")) lmp_warn(st, "the base has a head: head_init_std is ignored");
        lmp_info(st, "the head: score.weight of %s", m->source);
    } else {
        lmp_gpt2_classifier_init_head(c, (float)lmp_param_float(st, "head_init_std"), lmp_seed(st) ^ 0x73636f7265);
    }
    free(saved);
    if (tok && lm_digest[0] && strcmp(tok->digest, lm_digest) != 0) {
        c->destroy(c);
        return lmp_error("the wired-in tokenizer (%.12s) is not the language model's (%.12s)", tok->digest, lm_digest);
    }
    if (tok && lmp_bpe_vocab_size(tok->bpe) > m->config.vocab_size) {
        int n = lmp_bpe_vocab_size(tok->bpe), v = m->config.vocab_size;
        c->destroy(c);
        return lmp_error("the tokenizer has %d tokens but %s has a vocabulary of %d", n, base, v);
    }
    if (tok) memcpy(c->tokenizer_digest, tok->digest, sizeof c->tokenizer_digest);
    else if (lm_digest[0]) memcpy(c->tokenizer_digest, lm_digest, sizeof c->tokenizer_digest);
    const lmp_gpt2_config *k = &m->config;
    lmp_info(st, "GPT-2 %d layers, %d heads, %d dims, context %d, vocabulary %d; head %d labels", k->n_layer,
             k->n_head, k->n_embd, k->n_ctx, k->vocab_size, c->num_labels);
    return lmp_output(st, "model", c);
}

static const lmp_stage_def stages[] = {
    {.name = "gpt2-classifier", .description = "GPT-2 with a sequence classification head on the last real token",
     .params = params, .consumes = in, .produces = out, .flags = LMP_STAGE_SEEDED, .run = run},
    {0},
};

LMP_PLUGIN_DEFINE("gpt2-classifier", PACKAGE_VERSION, "GPT-2 sequence classifier (GPT2ForSequenceClassification)",
                  stages);
