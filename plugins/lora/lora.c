/*
 * lora.c — the "lora" plugin: LoRA adapters on a classifier's linear layers
 * (core/nn/lora.h), and folding them back into the base weights.
 *
 *   lora        freeze the base, attach fresh LoRA (or load=PEFT folder), log
 *               the trainable-parameter count as PEFT's print_trainable_parameters
 *   lora-merge  W += scaling * A B for every adapter, detach; path=DIR also
 *               writes the merged classifier: for GPT-2 a Hugging Face
 *               GPT2ForSequenceClassification checkpoint (lmp_gpt2_save_seq_cls)
 *               with the wired-in tokenizer's vocab.json + merges.txt, which
 *               transformers loads with its head, the gpt2 stage and
 *               `lmpipe generate` as a language model, and gpt2-classifier
 *               (base=DIR) as this classifier again; another kind saves
 *               itself (its classifier.json folder)
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classifier.h"
#include "dist.h"
#include "gpt2_classifier.h"
#include "lmpipe.h"
#include "lora.h"
#include "tokenizer.h"

static const lmp_param lora_params[] = {
    {"rank", LMP_INT, "4", 1, 4096, NULL, "r: rank of the update A B"},
    {"alpha", LMP_FLOAT, "8", LMP_UNBOUNDED, NULL, "lora_alpha: the update is scaled by alpha / rank"},
    {"rslora", LMP_BOOL, "false", LMP_UNBOUNDED, NULL, "rank-stabilised scaling alpha / sqrt(rank)"},
    {"dropout", LMP_FLOAT, "0", 0, 0.99, NULL, "dropout on the adapter input (training only)"},
    {"targets", LMP_STRING, LMP_LORA_DEFAULT_TARGETS, LMP_UNBOUNDED, NULL,
     "layers: comma-separated names, dot-suffixes or globs with *"},
    {"init", LMP_ENUM, "kaiming", LMP_UNBOUNDED, "kaiming|gaussian",
     "A ~ kaiming_uniform(a=sqrt(5)) as PEFT, or N(0, 1/rank); B = 0"},
    {"load", LMP_PATH, "-", LMP_UNBOUNDED, NULL,
     "load a PEFT adapter folder instead of initialising ('-': fresh); rank, alpha, rslora, dropout and targets "
     "given as well must agree with it"},
    LMP_PARAM_END,
};

static const lmp_port in[] = {{"model", "classifier", 0, "the classifier to adapt (taken over)"}, LMP_PORT_END};
static const lmp_port out[] = {{"model", "classifier", 0, "the classifier with LoRA adapters"}, LMP_PORT_END};

/* 124447488 -> "124,447,488" */
static void grouped(char *buf, size_t cap, size_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%zu", v), k = 0;
    for (int i = 0; i < n && (size_t)k + 2 < cap; i++) {
        if (i && (n - i) % 3 == 0) buf[k++] = ',';
        buf[k++] = tmp[i];
    }
    buf[k] = 0;
}

/* The head of a PEFT SEQ_CLS folder, when the classifier has one. */
static int load_head(lmp_classifier *c, lmp_st *st)
{
    float *head = lmp_gpt2_classifier_head(c);
    const char *key = "base_model.model.score.weight";
    const lmp_st_info *ti = lmp_st_find(st, key);
    if (!head || !ti) return 0;
    int C = lmp_gpt2_classifier_model(c)->config.n_embd;
    if (ti->ndim != 2 || ti->shape[0] != c->num_labels || ti->shape[1] != C || strcmp(ti->dtype, "F32") != 0)
        return lmp_error("%s: tensor \"%s\" must be F32 [%d, %d] (num_labels, n_embd)", lmp_st_path(st), key,
                         c->num_labels, C);
    const void *d;
    if (lmp_st_get(st, key, "F32", &d, NULL, NULL) != 0) return -1;
    memcpy(head, d, (size_t)c->num_labels * C * sizeof(float));
    return 1;
}

/* The folder decides what a loaded adapter is; a value the pipeline gave
 * explicitly (lmp_param_is_set) and the folder contradicts would be ignored
 * without a word, so it is refused, naming both.  Targets agree when they
 * select the same layers, however spelled. */
static int conflict(const char *key, const char *mine, const char *dir, const char *peft_key, const char *theirs)
{
    return lmp_error("%s=%s conflicts with %s/adapter_config.json %s=%s", key, mine, dir, peft_key, theirs);
}

static int check_loaded(lmp_stage *st, const lmp_adapter_host *h, const lmp_lora_config *cfg, const char *dir)
{
    char a[64], b[64];
    if (lmp_param_is_set(st, "rank") && lmp_param_int(st, "rank") != cfg->rank) {
        snprintf(a, sizeof a, "%lld", (long long)lmp_param_int(st, "rank"));
        snprintf(b, sizeof b, "%d", cfg->rank);
        return conflict("rank", a, dir, "r", b);
    }
    static const char *const floats[][2] = { { "alpha", "lora_alpha" }, { "dropout", "lora_dropout" } };
    for (int i = 0; i < 2; i++) {
        double mine = lmp_param_float(st, floats[i][0]), theirs = i == 0 ? cfg->alpha : cfg->dropout;
        if (lmp_param_is_set(st, floats[i][0]) && mine != theirs) {
            snprintf(a, sizeof a, "%g", mine);
            snprintf(b, sizeof b, "%g", theirs);
            return conflict(floats[i][0], a, dir, floats[i][1], b);
        }
    }
    if (lmp_param_is_set(st, "rslora") && lmp_param_bool(st, "rslora") != cfg->rslora)
        return conflict("rslora", lmp_param_bool(st, "rslora") ? "true" : "false", dir, "use_rslora",
                        cfg->rslora ? "true" : "false");
    if (!lmp_param_is_set(st, "targets")) return 0;
    const char *targets = lmp_param_str(st, "targets");
    unsigned char *sel = mallocCheck((size_t)h->n_linears + 1);
    int rc = lmp_adapter_select(h, targets, sel);
    for (int i = 0; i < h->n_linears && rc == 0; i++) {
        int has = 0;
        for (const lmp_adapter *ad = h->linears[i].adapters; ad && !has; ad = ad->next)
            has = strcmp(ad->ops->kind, "lora") == 0;
        if (has != sel[i]) {
            char *theirs = lmp_strfmt(cfg->targets_regex ? "'%s'" : "[%s]", cfg->targets);
            rc = conflict("targets", targets, dir, "target_modules", theirs);
            free(theirs);
        }
    }
    free(sel);
    return rc;
}

static int lora_run(lmp_stage *st)
{
    lmp_classifier *c = lmp_input_take(st, "model");
    lmp_adapter_host *h = c->adapters ? c->adapters(c) : NULL;
    int rc = 0;
    if (!h) {
        rc = lmp_error("the %s classifier has no linear layers to adapt", c->kind);
        goto fail;
    }
    lmp_rng_seed(&h->rng, lmp_seed(st) ^ 0x64726f70); /* adapter dropout */
    const char *load = lmp_param_str(st, "load");
    if (strcmp(load, "-") != 0) {
        static const char *const extra[] = { "score.weight", NULL };
        lmp_lora_config cfg;
        lmp_st *file;
        if ((rc = lmp_lora_load(h, load, extra, &cfg, &file)) != 0) goto fail;
        int head = load_head(c, file);
        lmp_st_close(file);
        if (head < 0) {
            rc = -1;
            goto fail;
        }
        if ((rc = check_loaded(st, h, &cfg, load)) != 0) goto fail;
        lmp_info(st, "loaded %d LoRA adapters (r = %d, alpha = %g, targets %s)%s from %s", lmp_lora_count(h),
                 cfg.rank, cfg.alpha, cfg.targets, head ? " and the score head" : "", load);
    } else {
        lmp_lora_config cfg = {
            .rank = (int)lmp_param_int(st, "rank"),
            .alpha = lmp_param_float(st, "alpha"),
            .rslora = lmp_param_bool(st, "rslora"),
            .dropout = lmp_param_float(st, "dropout"),
            .targets = lmp_param_str(st, "targets"),
            .init = strcmp(lmp_param_str(st, "init"), "gaussian") == 0 ? LMP_LORA_INIT_GAUSSIAN : LMP_LORA_INIT_KAIMING,
        };
        lmp_rng rng;
        lmp_rng_seed(&rng, lmp_seed(st) ^ 0x6c6f7261);
        if ((rc = lmp_lora_attach(h, &cfg, &rng)) != 0) goto fail;
        lmp_info(st, "attached LoRA to %d layers (r = %d, scaling %g)", lmp_lora_count(h), cfg.rank,
                 lmp_lora_scaling(&cfg));
    }
    h->freeze_base = 1;
    lmp_params_group *g = c->params(c);
    if (!g) {
        rc = -1;
        goto fail;
    }
    size_t total = lmp_params_numel(g, 0), trainable = lmp_params_numel(g, 1);
    char a[32], b[32];
    grouped(a, sizeof a, trainable);
    grouped(b, sizeof b, total);
    double pct = total ? 100.0 * (double)trainable / (double)total : 0;
    lmp_info(st, "trainable params: %s || all params: %s || trainable%%: %.4f", a, b, pct);
    snprintf(a, sizeof a, "%zu", trainable);
    snprintf(b, sizeof b, "%zu", total);
    lmp_log_param(st, "trainable_params", a);
    lmp_log_param(st, "total_params", b);
    lmp_log_metric(st, "trainable_params", -1, (double)trainable);
    lmp_log_metric(st, "trainable_pct", -1, pct);
    return lmp_output(st, "model", c);
fail:
    c->destroy(c);
    return rc ? rc : -1;
}

static const lmp_param merge_params[] = {
    {"path", LMP_PATH, "-", LMP_UNBOUNDED, NULL,
     "also write the merged classifier here, for GPT-2 as a transformers GPT2ForSequenceClassification folder ('-': don't)"},
    {"pad_id", LMP_INT, "-1", -1, 1 << 30, NULL,
     "pad_token_id written to config.json (-1: the tokenizer's <|endoftext|>, as gpt2-bpe pads)"},
    LMP_PARAM_END,
};
static const lmp_port merge_in[] = {
    {"model", "classifier", 0, "the classifier to merge (taken over)"},
    {"tokenizer", "tokenizer", 1, "its vocabulary: written beside the checkpoint, and its <|endoftext|> is the pad id"},
    LMP_PORT_END,
};

/* The pad_token_id of the checkpoint: transformers finds each row's last
 * real token by it, so it must be the id the classifier was padded with. */
static int merged_pad_id(lmp_stage *st, const lmp_tokenizer *tok, int vocab, int *pad)
{
    int p = (int)lmp_param_int(st, "pad_id");
    if (p < 0 && tok && (p = lmp_bpe_eot(tok->bpe)) < 0)
        return lmp_error("the tokenizer has no <|endoftext|> to pad with: set pad_id");
    if (p < 0 && vocab > LMP_GPT2_EOS) p = LMP_GPT2_EOS; /* GPT-2's own vocabulary */
    if (p < 0)
        return lmp_error("path=%s needs a pad_token_id: wire in the tokenizer or set pad_id (the vocabulary of %d "
                         "tokens is not GPT-2's)",
                         lmp_param_str(st, "path"), vocab);
    if (p >= vocab) return lmp_error("pad_id=%d is not in the model's vocabulary [0, %d)", p, vocab);
    *pad = p;
    return 0;
}

/* DIR as transformers' GPT2ForSequenceClassification, with the vocabulary;
 * every file recorded with its sha256. */
static int save_merged(lmp_stage *st, lmp_classifier *c, const lmp_tokenizer *tok, int pad, const char *dir)
{
    lmp_gpt2 *m = lmp_gpt2_classifier_model(c);
    if (lmp_gpt2_save_seq_cls(m, dir, lmp_gpt2_classifier_head(c), c->num_labels, pad) != 0) return -1;
    if (tok && lmp_tokenizer_save_dir(tok, dir) != 0) return -1;
    static const char *const files[] = { "config.json", "model.safetensors", "vocab.json", "merges.txt" };
    int rc = 0;
    for (int i = 0; i < (tok ? 4 : 2) && rc == 0; i++) {
        char *p = lmp_strfmt("%s/%s", dir, files[i]);
        rc = lmp_log_artifact(st, files[i], p);
        free(p);
    }
    return rc;
}

static int merge_run(lmp_stage *st)
{
    lmp_classifier *c = lmp_input_take(st, "model");
    const lmp_tokenizer *tok = lmp_input(st, "tokenizer");
    lmp_adapter_host *h = c->adapters ? c->adapters(c) : NULL;
    int n = h ? lmp_adapter_count(h, NULL) : 0, rc = 0, pad = -1;
    const char *path = lmp_param_str(st, "path");
    int hf = strcmp(path, "-") != 0 && lmp_gpt2_classifier_model(c) != NULL;
    if (n == 0) rc = lmp_error("the %s classifier has no adapters to merge", c->kind);
    if (rc == 0 && hf && tok && c->tokenizer_digest[0] && strcmp(tok->digest, c->tokenizer_digest) != 0)
        rc = lmp_error("the wired-in tokenizer (%.12s) is not the classifier's (%.12s)", tok->digest,
                       c->tokenizer_digest);
    if (rc == 0 && hf) rc = merged_pad_id(st, tok, lmp_gpt2_classifier_model(c)->config.vocab_size, &pad);
    if (rc == 0) rc = lmp_adapter_merge_all(h);
    if (rc == 0 && strcmp(path, "-") != 0 && lmp_dist_writer()) { /* under mpirun rank 0 writes (dist.h) */
        char *full = path[0] == '/' ? strdupCheck(path) : lmp_strfmt("%s/%s", lmp_workdir(st), path);
        rc = hf ? save_merged(st, c, tok, pad, full) : c->save(c, full);
        if (rc == 0)
            lmp_info(st, "wrote the merged classifier to %s%s", full, hf ? " (GPT2ForSequenceClassification)" : "");
        free(full);
    }
    if (rc != 0) {
        c->destroy(c);
        return -1;
    }
    lmp_info(st, "merged %d adapters into the base weights", n);
    return lmp_output(st, "model", c);
}

static const lmp_stage_def stages[] = {
    {.name = "lora", .description = "freeze the base and attach LoRA adapters (or load a PEFT folder)",
     .params = lora_params, .consumes = in, .produces = out, .flags = LMP_STAGE_SEEDED, .run = lora_run},
    {.name = "lora-merge", .description = "fold the adapters into the base weights",
     .params = merge_params, .consumes = merge_in, .produces = out, .run = merge_run},
    {0},
};

LMP_PLUGIN_DEFINE("lora", PACKAGE_VERSION, "LoRA adapters in the Hugging Face PEFT format", stages);
