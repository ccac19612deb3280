/*
 * fakeclf.c — a tokenizer and a classifier simple enough to check the
 * evaluate stage's numbers by hand.
 *
 *   faketok   one token per space-separated word, id = the word's length
 *             (capped at 31), pad id 0; cacheable, so a second run loads
 *             the tokenized dataset from the stage cache
 *   fakeclf   a "classifier" with a rule: `short` says acceptable iff the
 *             sentence has at most `threshold` words, `constant` always says
 *             `label`; it checks the batch contract evaluate must keep
 *             (T = longest row, padding = pad id) and fails loudly if not;
 *             its kind "fake" registers itself (LMP_CLASSIFIER_KIND), so
 *             save-classifier / load-classifier and the stage cache take it
 *             like the core's kinds: a classifier kind from outside the core
 */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "classifier.h"
#include "dataset.h"
#include "lmpipe.h"
#include "util.h"

#define FAKE_VOCAB 32
#define FAKE_PAD 0

static void faketok_digest(char out[65])
{
    lmp_sha256 s;
    lmp_sha256_init(&s);
    lmp_sha256_update(&s, "faketok-v1", 10);
    lmp_sha256_final(&s, out);
}

static const lmp_param tok_params[] = {LMP_PARAM_END};
static const lmp_port tok_in[] = {{"dataset", "dataset", 0, NULL}, LMP_PORT_END};
static const lmp_port tok_out[] = {{"dataset", "dataset", 0, "the same dataset, tokenized"}, LMP_PORT_END};

static int tok_run(lmp_stage *st)
{
    lmp_dataset *d = lmp_dataset_copy(lmp_input(st, "dataset"));
    d->tokenized = 1;
    d->vocab_size = FAKE_VOCAB;
    d->pad_id = FAKE_PAD;
    d->max_len = 0;
    faketok_digest(d->tokenizer_digest);
    for (int k = 0; k < d->nsplits; k++) {
        lmp_split *s = &d->splits[k];
        s->ids = callocCheck((size_t)s->n + 1, sizeof *s->ids);
        s->len = callocCheck((size_t)s->n + 1, sizeof *s->len);
        for (int i = 0; i < s->n; i++) {
            s->ids[i] = mallocCheck((strlen(s->text[i]) + 1) * sizeof **s->ids);
            for (const char *p = s->text[i]; *p;) {
                while (*p == ' ') p++;
                if (!*p) break;
                int l = 0;
                while (p[l] && p[l] != ' ') l++;
                s->ids[i][s->len[i]++] = l < FAKE_VOCAB ? l : FAKE_VOCAB - 1;
                p += l;
            }
            if (s->len[i] > d->max_len) d->max_len = s->len[i];
        }
    }
    lmp_dataset_update_digest(d);
    return lmp_output(st, "dataset", d);
}

typedef struct {
    int rule; /* 0 short, 1 constant, 2 nan */
    int threshold, label, pad;
} fake;

static int fake_forward(lmp_classifier *c, const int *ids, const int *len, int B, int T, float *logits, int train)
{
    fake *f = c->impl;
    int longest = 0;
    if (train) return lmp_error("fakeclf: forward called with train=1 during evaluation");
    for (int b = 0; b < B; b++) {
        longest = len[b] > longest ? len[b] : longest;
        for (int t = len[b]; t < T; t++)
            if (ids[b * T + t] != f->pad)
                return lmp_error("fakeclf: row %d position %d is %d, not the pad id %d", b, t, ids[b * T + t], f->pad);
    }
    if (longest != T) return lmp_error("fakeclf: T = %d but the longest row has %d tokens", T, longest);
    for (int b = 0; b < B; b++) {
        float *z = logits + b * c->num_labels;
        for (int k = 0; k < c->num_labels; k++) z[k] = 0;
        if (f->rule == 0) z[1] = (float)f->threshold + 0.5f - (float)len[b];
        else if (f->rule == 1) z[f->label % c->num_labels] = 2;
        else z[0] = NAN;
    }
    return 0;
}

static void fake_destroy(lmp_classifier *c)
{
    free(c->impl);
    free(c);
}

static int fake_save(const lmp_classifier *c, const char *dir);

static lmp_classifier *fake_new(fake *f, int num_labels, int max_len)
{
    lmp_classifier *c = callocCheck(1, sizeof *c);
    c->kind = "fake";
    c->num_labels = num_labels;
    c->max_len = max_len;
    c->impl = f;
    c->forward = fake_forward;
    c->save = fake_save;
    c->destroy = fake_destroy;
    return c;
}

/* DIR/classifier.json: {"kind": "fake", the rule and its settings} */
static int fake_save(const lmp_classifier *c, const char *dir)
{
    const fake *f = c->impl;
    if (lmp_mkdirs(dir) != 0) return -1;
    char *p = lmp_strfmt("%s/classifier.json", dir);
    char *body = lmp_strfmt("{\"kind\": \"fake\", \"rule\": %d, \"threshold\": %d, \"label\": %d, \"pad\": %d, "
                            "\"num_labels\": %d, \"max_len\": %d, \"tokenizer_digest\": \"%s\"}\n",
                            f->rule, f->threshold, f->label, f->pad, c->num_labels, c->max_len, c->tokenizer_digest);
    int rc = lmp_write_file_atomic(p, body, strlen(body));
    free(p), free(body);
    return rc;
}

static int fake_load(const char *dir, lmp_classifier **out)
{
    *out = NULL;
    char *p = lmp_strfmt("%s/classifier.json", dir);
    json_error_t jerr;
    json_t *j = json_load_file(p, 0, &jerr);
    int rule, threshold, label, pad, num_labels, max_len;
    const char *tok;
    int rc = !j ? lmp_error("%s: %s", p, jerr.text)
             : json_unpack(j, "{s:i, s:i, s:i, s:i, s:i, s:i, s:s}", "rule", &rule, "threshold", &threshold, "label",
                           &label, "pad", &pad, "num_labels", &num_labels, "max_len", &max_len, "tokenizer_digest",
                           &tok) != 0
             ? lmp_error("%s: not a fake classifier", p)
             : 0;
    if (rc == 0) {
        fake *f = callocCheck(1, sizeof *f);
        *f = (fake){ rule, threshold, label, pad };
        *out = fake_new(f, num_labels, max_len);
        snprintf((*out)->tokenizer_digest, sizeof (*out)->tokenizer_digest, "%s", tok);
    }
    json_decref(j);
    free(p);
    return rc;
}

LMP_CLASSIFIER_KIND(fake, "fake", fake_load)

static const lmp_param clf_params[] = {
    {"rule", LMP_ENUM, "short", LMP_UNBOUNDED, "short|constant|nan", "how to classify"},
    {"threshold", LMP_INT, "4", 0, 1000, NULL, "short: at most this many words is acceptable"},
    {"label", LMP_INT, "1", 0, 100, NULL, "constant: the label"},
    {"num_labels", LMP_INT, "2", 2, 100, NULL, "labels the classifier has"},
    {"max_len", LMP_INT, "0", 0, 100000, NULL, "longest input (0: any)"},
    {"tokenizer", LMP_STRING, "faketok", LMP_UNBOUNDED, NULL, "faketok, '' (any), or a digest"},
    {"pad", LMP_INT, "0", 0, 1 << 30, NULL, "the pad id padding must use (faketok's is 0)"},
    LMP_PARAM_END,
};
static const lmp_port clf_out[] = {{"classifier", "classifier", 0, NULL}, LMP_PORT_END};

static int clf_run(lmp_stage *st)
{
    fake *f = callocCheck(1, sizeof *f);
    const char *rule = lmp_param_str(st, "rule");
    f->rule = strcmp(rule, "short") == 0 ? 0 : strcmp(rule, "constant") == 0 ? 1 : 2;
    f->threshold = (int)lmp_param_int(st, "threshold");
    f->label = (int)lmp_param_int(st, "label");
    f->pad = (int)lmp_param_int(st, "pad");
    lmp_classifier *c = fake_new(f, (int)lmp_param_int(st, "num_labels"), (int)lmp_param_int(st, "max_len"));
    const char *tok = lmp_param_str(st, "tokenizer");
    if (strcmp(tok, "faketok") == 0) faketok_digest(c->tokenizer_digest);
    else snprintf(c->tokenizer_digest, sizeof c->tokenizer_digest, "%s", tok);
    return lmp_output(st, "classifier", c);
}

static const lmp_stage_def stages[] = {
    {.name = "faketok", .description = "word-length tokenizer (tests)", .params = tok_params, .consumes = tok_in,
     .produces = tok_out, .flags = LMP_STAGE_CACHEABLE, .run = tok_run},
    {.name = "fakeclf", .description = "rule-based classifier (tests)", .params = clf_params, .produces = clf_out,
     .run = clf_run},
    {0},
};

LMP_PLUGIN_DEFINE("fakeclf", "1.0", "a fake tokenizer and classifier for the evaluate tests", stages);
