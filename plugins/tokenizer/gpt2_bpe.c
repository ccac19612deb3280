/*
 * gpt2_bpe.c — the "tokenizer" plugin: stage `gpt2-bpe` loads a GPT-2
 * byte-level BPE vocabulary (GPT-2's own by default, or one learned by
 * bpe-train and wired in) and, when a dataset is wired in, tokenizes every
 * split of a copy of it: ids cut to max_len from the chosen side, the pad id
 * and the vocabulary's digest recorded so later stages batch and check it.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "lmpipe.h"
#include "paths.h"
#include "tokenizer.h"
#include "util.h"

static const lmp_param params[] = {
    {"vocab", LMP_PATH, "default", LMP_UNBOUNDED, NULL,
     "folder with vocab.json + merges.txt or encoder.json + vocab.bpe ('default': GPT-2's, shipped with lmpipe)"},
    {"max_len", LMP_INT, "128", 1, 1 << 20, NULL, "longest token sequence kept per example"},
    {"truncation", LMP_ENUM, "right", LMP_UNBOUNDED, "right|left", "which end of a too-long sequence is cut"},
    {"pad_id", LMP_INT, "-1", -1, 1 << 30, NULL, "id used for padding (-1: the vocabulary's <|endoftext|>)"},
    {"special", LMP_BOOL, "false", LMP_UNBOUNDED, NULL, "read <|endoftext|> in the text as the special token"},
    LMP_PARAM_END,
};

static const lmp_port consumes[] = {
    {"data", "dataset", 1, "a dataset to tokenize (optional)"},
    {"tokenizer", "tokenizer", 1, "use this vocabulary (e.g. from bpe-train) instead of `vocab`"},
    LMP_PORT_END,
};

static const lmp_port produces[] = {
    {"tokenizer", "tokenizer", 0, "the vocabulary"},
    {"data", "dataset", 1, "the dataset with token ids (when one was wired in)"},
    LMP_PORT_END,
};

static int tokenize_dataset(lmp_stage *st, lmp_tokenizer *tok, lmp_dataset *d)
{
    int max_len = (int)lmp_param_int(st, "max_len"), left = strcmp(lmp_param_str(st, "truncation"), "left") == 0;
    int flags = lmp_param_bool(st, "special") ? LMP_BPE_SPECIAL : 0;
    int pad = (int)lmp_param_int(st, "pad_id"), V = lmp_bpe_vocab_size(tok->bpe);
    const char *vocab = lmp_bpe_source(tok->bpe);
    if (pad < 0 && (pad = lmp_bpe_eot(tok->bpe)) < 0) /* the default names what is missing */
        return lmp_error("%s has no '<|endoftext|>' token to pad with; set pad_id to one of its ids, 0 to %d",
                         vocab, V - 1);
    if (pad >= V) return lmp_error("pad_id %d is not in the vocabulary %s (ids 0 to %d)", pad, vocab, V - 1);
    long total = 0, cut = 0, tokens = 0, done = 0;
    for (int s = 0; s < d->nsplits; s++) total += d->splits[s].n;
    for (int s = 0; s < d->nsplits; s++) {
        lmp_split *sp = &d->splits[s];
        for (int i = 0; i < sp->n; i++) free(sp->ids ? sp->ids[i] : NULL);
        free(sp->ids);
        free(sp->len);
        sp->ids = callocCheck((size_t)(sp->n ? sp->n : 1), sizeof *sp->ids);
        sp->len = callocCheck((size_t)(sp->n ? sp->n : 1), sizeof *sp->len);
        for (int i = 0; i < sp->n; i++) {
            int *ids;
            size_t n;
            if (lmp_bpe_encode(tok->bpe, sp->text[i], strlen(sp->text[i]), flags, &ids, &n) != 0)
                return lmp_error("%s split, example %d: %s", sp->name, i + 1, lmp_errmsg());
            if (n == 0) return lmp_error("%s split, example %d: the text has no tokens", sp->name, i + 1);
            if ((int)n > max_len) {
                if (left) memmove(ids, ids + n - max_len, (size_t)max_len * sizeof *ids);
                n = (size_t)max_len;
                cut++;
            }
            sp->ids[i] = ids;
            sp->len[i] = (int)n;
            tokens += (long)n;
            lmp_progress(st, "examples", ++done, total);
        }
    }
    d->tokenized = 1;
    memcpy(d->tokenizer_digest, tok->digest, sizeof d->tokenizer_digest);
    d->vocab_size = V;
    d->pad_id = pad;
    d->max_len = max_len;
    d->truncate_left = left; /* later cuts (a shorter model context) take the same end */
    lmp_dataset_update_digest(d);
    lmp_log_metric(st, "tokens", -1, (double)tokens);
    lmp_log_metric(st, "tokens_per_example", -1, total ? (double)tokens / (double)total : 0);
    lmp_log_metric(st, "truncated", -1, (double)cut);
    if (cut) lmp_warn(st, "%ld of %ld examples were longer than max_len=%d and were cut", cut, total, max_len);
    return 0;
}

static int run(lmp_stage *st)
{
    lmp_tokenizer *tok = lmp_input(st, "tokenizer");
    int owned = 0;
    if (!tok) {
        const char *v = lmp_param_str(st, "vocab");
        char *dir = strcmp(v, "default") == 0 ? lmp_data_path("gpt2") : strdupCheck(v);
        int rc = lmp_tokenizer_load_dir(dir, &tok);
        free(dir);
        if (rc != 0) return -1;
        owned = 1;
    } else if (lmp_param_is_set(st, "vocab")) {
        lmp_warn(st, "a tokenizer is wired in: the vocab parameter is ignored");
    }
    lmp_log_param(st, "vocab_digest", tok->digest);
    lmp_info(st, "vocabulary of %d tokens (%.12s)", lmp_bpe_vocab_size(tok->bpe), tok->digest);
    const lmp_dataset *in = lmp_input(st, "data");
    if (in) {
        lmp_dataset *d = lmp_dataset_copy(in);
        if (tokenize_dataset(st, tok, d) != 0) {
            lmp_dataset_free(d);
            if (owned) lmp_tokenizer_free(tok);
            return -1;
        }
        lmp_output(st, "data", d);
        lmp_output_digest(st, "data", d->digest);
    }
    /* hand on a reference of our own: a wired-in tokenizer stays its producer's too */
    lmp_output(st, "tokenizer", owned ? tok : lmp_tokenizer_ref(tok));
    return lmp_output_digest(st, "tokenizer", tok->digest);
}

static const lmp_stage_def stages[] = {
    {.name = "gpt2-bpe", .description = "GPT-2 byte-level BPE: load a vocabulary, tokenize a dataset",
     .params = params, .consumes = consumes, .produces = produces, .run = run},
    {0},
};

LMP_PLUGIN_DEFINE("tokenizer", PACKAGE_VERSION, "GPT-2 byte-level BPE tokenization", stages);
