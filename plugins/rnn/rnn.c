/*
 * rnn.c — the "rnn" plugin: stage `rnn` makes a fresh recurrent classifier
 * (core/kit/rnn.h: embedding, Elman / GRU / LSTM layers, pooling, linear head),
 * to be trained by `train` or distilled into by `kd`.
 *
 *   rnn  cell=elman|gru|lstm embed=256 hidden=256 layers=1 bidirectional=false
 *        dropout=0 pooling=last|mean|max num_labels=2 [vocab_size=N]
 *        [embed_init=random|lm|init_from|wte_from [wte_from=PATH]]
 *
 * The vocabulary size comes from the tokenizer wired in (which also tags
 * the classifier, so data from another vocabulary is refused) or from
 * vocab_size.  The embedding may start from a GPT-2 token embedding (wte):
 * that of the language model wired to `lm` (embed_init=lm; e.g. a gpt2
 * stage's), of the GPT-2 classifier wired to init_from (embed_init=init_from),
 * or of a checkpoint (embed_init=wte_from, wte_from=HF folder, .safetensors
 * or .bin), projected by a fixed random matrix when its width differs from
 * `embed`.  The source's vocabulary must be the student's: its tokenizer
 * digest, when both have one, must match.
 *
 * Optional inputs are wired to the latest earlier producer of their type,
 * and one that a later-wired stage took over (gpt2-classifier takes the lm)
 * cannot be read: put this stage before such a consumer, or wire it.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "classifier.h"
#include "gpt2.h"
#include "lm.h"
#include "lmpipe.h"
#include "rnn.h"
#include "tokenizer.h"
#include "util.h"

static const lmp_param params[] = {
    {"cell", LMP_ENUM, "elman", LMP_UNBOUNDED, "elman|gru|lstm", "recurrent cell: tanh RNN (the original study), GRU or LSTM"},
    {"embed", LMP_INT, "256", 1, 65536, NULL, "embedding width"},
    {"hidden", LMP_INT, "256", 1, 65536, NULL, "hidden state width (per direction)"},
    {"layers", LMP_INT, "1", 1, 16, NULL, "stacked recurrent layers"},
    {"bidirectional", LMP_BOOL, "false", LMP_UNBOUNDED, NULL, "also run each layer right to left"},
    {"dropout", LMP_FLOAT, "0", 0, 0.99, NULL, "dropout between layers and before the head (training only)"},
    {"pooling", LMP_ENUM, "last", LMP_UNBOUNDED, "last|mean|max", "sentence vector: last real state, or mean / max over real tokens"},
    {"num_labels", LMP_INT, "2", 1, 32, NULL, "classes of the head"},
    {"vocab_size", LMP_INT, "0", 0, 1 << 24, NULL, "embedding rows (0: the wired tokenizer's vocabulary)"},
    {"embed_init", LMP_ENUM, "random", LMP_UNBOUNDED, "random|lm|init_from|wte_from",
     "embedding: N(0,1), or the wte of the wired lm, of the GPT-2 classifier wired to init_from, or of wte_from"},
    {"wte_from", LMP_PATH, "-", LMP_UNBOUNDED, NULL,
     "GPT-2 checkpoint (HF folder, .safetensors, .bin) for embed_init=wte_from ('-': none)"},
    LMP_PARAM_END,
};

static const lmp_port in[] = {
    {"tokenizer", "tokenizer", 1, "the vocabulary of the ids (sets vocab_size, tags the classifier)"},
    {"lm", "lm", 1, "a language model whose token embedding initialises ours (embed_init=lm)"},
    {"init_from", "classifier", 1, "a GPT-2 classifier whose token embedding initialises ours (embed_init=init_from)"},
    LMP_PORT_END,
};
static const lmp_port out[] = {{"model", "classifier", 0, "the RNN classifier, freshly initialised"}, LMP_PORT_END};

/* The source of the embedding's initial values, per embed_init. */
static int init_embedding(lmp_stage *st, lmp_classifier *c)
{
    const char *how = lmp_param_str(st, "embed_init");
    uint64_t seed = 0x70726f6a; /* "proj": the same projection for every run */
    if (strcmp(how, "random") == 0) {
        if (strcmp(lmp_param_str(st, "wte_from"), "-") != 0) lmp_warn(st, "wte_from is ignored: embed_init=random");
        return 0;
    }
    if (strcmp(how, "lm") == 0) {
        const lmp_lm *lm = lmp_input(st, "lm");
        if (!lm) return lmp_error("embed_init=lm but no language model is wired to lm");
        if (c->tokenizer_digest[0] && strcmp(lm->tok->digest, c->tokenizer_digest) != 0)
            return lmp_error("lm: the language model's vocabulary (%.12s) is not the tokenizer's (%.12s)",
                             lm->tok->digest, c->tokenizer_digest);
        if (!lm->ops->token_embedding)
            return lmp_error("lm: a %s language model has no token embedding", lm->ops->family);
        int V, C;
        const float *wte = lm->ops->token_embedding(lm, &V, &C);
        if (lmp_rnn_classifier_init_embedding(c, wte, V, C, seed) != 0) return lmp_error("lm: %s", lmp_errmsg());
        lmp_info(st, "embedding initialised from the wte [%d, %d] of the language model", V, C);
        return 0;
    }
    if (strcmp(how, "init_from") == 0) {
        lmp_classifier *src = lmp_input(st, "init_from");
        if (!src) return lmp_error("embed_init=init_from but no classifier is wired to init_from");
        if (!src->token_embedding)
            return lmp_error("init_from: a %s classifier has no GPT-2 token embedding", src->kind);
        if (src->tokenizer_digest[0] && c->tokenizer_digest[0] && strcmp(src->tokenizer_digest, c->tokenizer_digest) != 0)
            return lmp_error("init_from: the GPT-2 classifier's vocabulary (%.12s) is not the tokenizer's (%.12s)",
                             src->tokenizer_digest, c->tokenizer_digest);
        int V, C;
        const float *wte = src->token_embedding(src, &V, &C);
        if (lmp_rnn_classifier_init_embedding(c, wte, V, C, seed) != 0) return lmp_error("init_from: %s", lmp_errmsg());
        lmp_info(st, "embedding initialised from the GPT-2 wte [%d, %d] of init_from", V, C);
        return 0;
    }
    const char *path = lmp_param_str(st, "wte_from");
    if (strcmp(path, "-") == 0) return lmp_error("embed_init=wte_from needs wte_from=PATH (a GPT-2 checkpoint)");
    lmp_gpt2 *m;
    if (lmp_gpt2_load(path, &m) != 0) return -1;
    int rc = lmp_rnn_classifier_init_embedding(c, m->wte, m->config.vocab_size, m->config.n_embd, seed);
    if (rc != 0) lmp_error("%s: %s", path, lmp_errmsg());
    else lmp_info(st, "embedding initialised from the wte [%d, %d] of %s", m->config.vocab_size, m->config.n_embd, path);
    lmp_gpt2_free(m);
    return rc;
}

/* The configuration the parameters give (vocab: vocab_size, 0 for the tokenizer's). */
static int config_of(lmp_stage *st, lmp_rnn_config *k)
{
    memset(k, 0, sizeof *k);
    if (lmp_rnn_cell_parse(lmp_param_str(st, "cell"), &k->cell) != 0 ||
        lmp_rnn_pooling_parse(lmp_param_str(st, "pooling"), &k->pooling) != 0)
        return -1;
    k->embed = (int)lmp_param_int(st, "embed");
    k->hidden = (int)lmp_param_int(st, "hidden");
    k->layers = (int)lmp_param_int(st, "layers");
    k->bidirectional = lmp_param_bool(st, "bidirectional");
    k->dropout = (float)lmp_param_float(st, "dropout");
    k->num_labels = (int)lmp_param_int(st, "num_labels");
    k->vocab = (int)lmp_param_int(st, "vocab_size");
    return 0;
}

static size_t num_params(const lmp_rnn_config *k)
{
    size_t n = 0;
    for (int i = 0; i < lmp_rnn_num_tensors(k); i++) {
        char name[64];
        int64_t shape[2];
        int nd;
        n += lmp_rnn_tensor_info(k, i, name, sizeof name, shape, &nd);
    }
    return n;
}

/* Check time: weights that cannot fit in memory (embed=65536 hidden=65536
 * layers=16 is 137 billion parameters) are refused before anything runs.
 * The weights alone: training adds gradients and optimizer state, but
 * that is the trainer's stage. */
static int check(lmp_stage *st)
{
    lmp_rnn_config k;
    if (config_of(st, &k) != 0) return -1;
    size_t n = num_params(&k); /* without a vocabulary yet: the tokenizer's comes at run time */
    char what[96];
    snprintf(what, sizeof what, "%zu parameters (4 bytes each)", n);
    return lmp_check_memory(4.0 * (double)n, what);
}

static int run(lmp_stage *st)
{
    lmp_rnn_config k;
    if (config_of(st, &k) != 0) return -1;
    const lmp_tokenizer *tok = lmp_input(st, "tokenizer");
    int tv = tok ? lmp_bpe_vocab_size(tok->bpe) : 0;
    if (k.vocab == 0 && !tok) return lmp_error("no tokenizer is wired in: set vocab_size");
    if (k.vocab == 0) k.vocab = tv;
    if (tok && k.vocab < tv)
        return lmp_error("vocab_size=%d is smaller than the tokenizer's vocabulary of %d", k.vocab, tv);
    lmp_classifier *c;
    if (lmp_rnn_classifier_new(&k, lmp_seed(st) ^ 0x726e6e, &c) != 0) return -1;
    if (tok) memcpy(c->tokenizer_digest, tok->digest, sizeof c->tokenizer_digest);
    if (init_embedding(st, c) != 0) {
        c->destroy(c);
        return -1;
    }
    size_t n = num_params(&k);
    char buf[32];
    snprintf(buf, sizeof buf, "%zu", n);
    lmp_log_param(st, "parameters", buf);
    lmp_info(st, "%s%s, %d layer%s, hidden %d, embedding %d x %d, pooling %s, %d labels: %zu parameters",
             k.bidirectional ? "bidirectional " : "", lmp_rnn_cell_name(k.cell), k.layers, k.layers > 1 ? "s" : "",
             k.hidden, k.vocab, k.embed, lmp_rnn_pooling_name(k.pooling), k.num_labels, n);
    return lmp_output(st, "model", c);
}

static const lmp_stage_def stages[] = {
    {.name = "rnn", .description = "a recurrent classifier (Elman/GRU/LSTM, PyTorch's equations), freshly initialised",
     .params = params, .consumes = in, .produces = out, .flags = LMP_STAGE_SEEDED, .run = run, .check = check},
    {0},
};

LMP_PLUGIN_DEFINE("rnn", PACKAGE_VERSION, "recurrent sequence classifiers (the distillation student)", stages);
