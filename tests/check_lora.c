/* check_lora.c — adapters, LoRA and the GPT-2 sequence classifier against
 * the PyTorch reference (tests/fixtures/lora/, made by make_fixtures.py in
 * float64 on the GPT-2 reference model):
 *  - target patterns and their error messages;
 *  - the classifier's logits on a padded batch (last real token), and a
 *    fresh LoRA (B = 0) leaving them bit-for-bit unchanged;
 *  - a PEFT folder in the reference layout: logits, loss, every LoRA and
 *    head gradient (norm-relative error <= 1e-3);
 *  - 5 AdamW steps replayed as the train stage takes them: the loss at every
 *    step and the final logits (relative error <= 1e-3);
 *  - save / load through the classifier type (PEFT folder + head), regex
 *    targets kept through round trips, merge (<= 1e-4 from unmerged) and
 *    the merged model as a GPT2ForSequenceClassification checkpoint read
 *    back to the same logits, adapter dropout against finite
 *    differences, an output-scaling adapter chained after LoRA;
 *  - every PEFT validation error, with its exact message. */
#include "config.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "classifier.h"
#include "gpt2_classifier.h"
#include "lora.h"
#include "nn.h"
#include "safetensors.h"
#include "util.h"
#include "testutil.h"

#define GRAD_TOL 1e-3
#define STEP_TOL 1e-3

static lmp_st *ref;
static char tmpdir[64];

static char *fixture(const char *rel) { return test_fixture(NULL, rel); }

static const void *ref_get(const char *name, const char *dtype, int64_t *n) { return test_st_get(ref, name, dtype, n); }

static void make_tmpdir(void) { test_mkdtemp(tmpdir, "lora"); }
static void remove_tmpdir(void) { test_rmtree(tmpdir); }

/* The tiny GPT-2 as a 2-label classifier with the fixture's head. */
static lmp_classifier *classifier(void)
{
    char *base = fixture("gpt2/tiny-hf");
    lmp_gpt2 *m;
    ck_assert_msg(lmp_gpt2_load(base, &m) == 0, "%s", lmp_errmsg());
    lmp_classifier *c;
    ck_assert_msg(lmp_gpt2_classifier_new(m, 2, base, &c) == 0, "%s", lmp_errmsg());
    free(base);
    char *p = fixture("lora/peft/adapter_model.safetensors");
    lmp_st *st;
    ck_assert_msg(lmp_st_open(p, &st) == 0, "%s", lmp_errmsg());
    const void *d;
    ck_assert_int_eq(lmp_st_get(st, "base_model.model.score.weight", "F32", &d, NULL, NULL), 0);
    memcpy(lmp_gpt2_classifier_head(c), d, 2 * 32 * sizeof(float));
    lmp_st_close(st);
    free(p);
    return c;
}

static const char *const head_key[] = { "score.weight", NULL };

static lmp_classifier *peft_classifier(void)
{
    lmp_classifier *c = classifier();
    char *dir = fixture("lora/peft");
    lmp_lora_config cfg;
    ck_assert_msg(lmp_lora_load(c->adapters(c), dir, head_key, &cfg, NULL) == 0, "%s", lmp_errmsg());
    free(dir);
    ck_assert_int_eq(cfg.rank, 4);
    ck_assert(cfg.alpha == 8);
    ck_assert_str_eq(cfg.targets, "c_attn,attn.c_proj,c_fc,mlp.c_proj");
    c->adapters(c)->freeze_base = 1;
    return c;
}

/* logits[4, 2] of the fixture batch */
static void batch_logits(lmp_classifier *c, float *logits, int train)
{
    const int *ids = ref_get("batch.ids", "I32", NULL), *len = ref_get("batch.len", "I32", NULL);
    ck_assert_msg(c->forward(c, ids, len, 4, 6, logits, train) == 0, "%s", lmp_errmsg());
}

/* max |a - b| / max |b| */
static double rel_err(const float *a, const float *b, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return m > 0 ? d / m : d;
}

/* ---------------------------------------------------------------- patterns */

START_TEST(patterns)
{
    ck_assert(lmp_adapter_match("h.3.attn.c_attn", "h.3.attn.c_attn"));
    ck_assert(lmp_adapter_match("h.3.attn.c_attn", "attn.c_attn"));
    ck_assert(lmp_adapter_match("h.3.attn.c_attn", "c_attn"));
    ck_assert(!lmp_adapter_match("h.3.attn.c_attn", "n.c_attn"));
    ck_assert(!lmp_adapter_match("h.3.attn.c_attn", "attn"));
    ck_assert(!lmp_adapter_match("h.3.attn.c_proj", "mlp.c_proj"));
    ck_assert(lmp_adapter_match("h.3.mlp.c_proj", "c_proj"));
    ck_assert(lmp_adapter_match("h.13.mlp.c_fc", "h.1*.mlp.c_fc"));
    ck_assert(!lmp_adapter_match("h.2.mlp.c_fc", "h.1*.mlp.c_fc"));
    ck_assert(lmp_adapter_match("h.0.attn.c_proj", "h.*.attn.*"));
    ck_assert(lmp_adapter_match("h.0.attn.c_proj", "*"));
    ck_assert(lmp_adapter_match("h.0.attn.c_proj", "attn.*"));
    ck_assert(!lmp_adapter_match("h.0.attn.c_proj", ""));

    lmp_classifier *c = classifier();
    lmp_adapter_host *h = c->adapters(c);
    ck_assert_int_eq(h->n_linears, 8);
    unsigned char sel[8];
    ck_assert_int_eq(lmp_adapter_select(h, " c_proj , h.0.mlp.c_fc", sel), 0);
    unsigned char want[8] = { 0, 1, 1, 1, 0, 1, 0, 1 };
    ck_assert_int_eq(memcmp(sel, want, 8), 0);
    ck_assert_int_eq(lmp_adapter_select(h, "c_attn,attn.q_proj", sel), -1);
    ck_assert_str_eq(lmp_errmsg(), "targets: 'attn.q_proj' matches no linear layer of the gpt2 model "
                                   "(names look like 'h.0.attn.c_attn')");
    ck_assert_int_eq(lmp_adapter_select(h, " , ", sel), -1);
    ck_assert_str_eq(lmp_errmsg(), "targets: no layer pattern given");
    lmp_lora_config cfg = { .rank = 4, .alpha = 8, .targets = "h.2.*" };
    lmp_rng rng;
    lmp_rng_seed(&rng, 1);
    ck_assert_int_eq(lmp_lora_attach(h, &cfg, &rng), -1);
    ck_assert_str_eq(lmp_errmsg(), "targets: 'h.2.*' matches no linear layer of the gpt2 model "
                                   "(names look like 'h.0.attn.c_attn')");
    ck_assert_int_eq(lmp_adapter_count(h, NULL), 0);
    cfg.targets = "c_fc";
    cfg.rank = 0;
    ck_assert_int_eq(lmp_lora_attach(h, &cfg, &rng), -1);
    ck_assert_str_eq(lmp_errmsg(), "lora: LoRA rank 0 must be at least 1");
    cfg.rank = 2;
    cfg.dropout = 1;
    ck_assert_int_eq(lmp_lora_attach(h, &cfg, &rng), -1);
    ck_assert_str_eq(lmp_errmsg(), "lora: LoRA dropout 1 outside [0, 1)");
    cfg.dropout = 0;
    ck_assert_int_eq(lmp_lora_attach(h, &cfg, &rng), 0);
    ck_assert_int_eq(lmp_lora_count(h), 2);
    ck_assert_int_eq(lmp_lora_attach(h, &cfg, &rng), -1);
    ck_assert_str_eq(lmp_errmsg(), "lora: the gpt2 model already has LoRA adapters");
    c->destroy(c);
}
END_TEST

/* ---------------------------------------------------------------- logits */

START_TEST(base_logits_and_fresh_adapter_exact)
{
    lmp_classifier *c = classifier();
    float base[8], after[8];
    batch_logits(c, base, 0);
    ck_assert_double_le(rel_err(base, ref_get("logits.base", "F32", NULL), 8), 1e-5);

    /* fresh LoRA on every layer: B = 0, so the output is exactly the base's */
    lmp_adapter_host *h = c->adapters(c);
    lmp_lora_config cfg = { .rank = 4, .alpha = 16, .targets = LMP_LORA_DEFAULT_TARGETS };
    lmp_rng rng;
    lmp_rng_seed(&rng, 7);
    ck_assert_msg(lmp_lora_attach(h, &cfg, &rng) == 0, "%s", lmp_errmsg());
    ck_assert_int_eq(lmp_lora_count(h), 8);
    batch_logits(c, after, 0);
    ck_assert_int_eq(memcmp(base, after, sizeof base), 0);
    batch_logits(c, after, 1);
    ck_assert_int_eq(memcmp(base, after, sizeof base), 0);

    /* A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's kaiming_uniform_(a=sqrt(5))), B = 0 */
    for (int i = 0; i < h->n_linears; i++) {
        float *A, *B;
        int r;
        ck_assert_int_eq(lmp_lora_weights(&h->linears[i], &A, &B, &r), 0);
        ck_assert_int_eq(r, 4);
        int in = h->linears[i].in;
        double bound = 1 / sqrt((double)in), sum2 = 0, top = 0;
        for (int k = 0; k < in * r; k++) {
            ck_assert(fabs(A[k]) <= bound);
            sum2 += (double)A[k] * A[k];
            top = fmax(top, fabs(A[k]));
        }
        /* variance bound^2 / 3, within sampling error of 128..512 draws */
        double var = sum2 / (in * r);
        ck_assert_msg(var > 0.75 * bound * bound / 3 && var < 1.25 * bound * bound / 3, "var %g", var);
        ck_assert(top > 0.9 * bound);
        for (int k = 0; k < r * h->linears[i].out; k++) ck_assert(B[k] == 0);
    }
    /* the trainable parameters: 8 adapters + the head; the body frozen */
    h->freeze_base = 1;
    lmp_params_group *g = c->params(c);
    ck_assert_ptr_nonnull(g);
    size_t lora_n = 2 * 4 * ((32 + 96) + (32 + 32) + (32 + 128) + (128 + 32));
    ck_assert_uint_eq(lmp_params_numel(g, 1), lora_n + 2 * 32);
    ck_assert_uint_eq(lmp_params_numel(g, 0), lora_n + 2 * 32 + 30752 /* the body */);
    ck_assert_ptr_null(lmp_params_find(g, "h.0.attn.c_attn.weight")->grad);
    ck_assert_ptr_nonnull(lmp_params_find(g, "h.0.attn.c_attn.lora_A.weight")->grad);
    ck_assert_ptr_nonnull(lmp_params_find(g, "score.weight")->grad);
    /* bad lengths, and a backward that has no training forward to follow */
    const int *ids = ref_get("batch.ids", "I32", NULL);
    int bad_len[4] = { 6, 0, 1, 5 };
    ck_assert_int_eq(c->forward(c, ids, bad_len, 4, 6, after, 0), -1);
    ck_assert_str_eq(lmp_errmsg(), "gpt2 classifier: row 1 has length 0, outside [1, 6]");
    bad_len[1] = 7;
    ck_assert_int_eq(c->forward(c, ids, bad_len, 4, 6, after, 0), -1);
    ck_assert_str_eq(lmp_errmsg(), "gpt2 classifier: row 1 has length 7, outside [1, 6]");
    float dl[8] = { 0 };
    batch_logits(c, after, 0);
    ck_assert_int_eq(c->backward(c, dl), -1);
    ck_assert_str_eq(lmp_errmsg(), "gpt2 classifier: backward without a forward in training mode");
    c->destroy(c);
}
END_TEST

/* ---------------------------------------------------------------- gradients */

/* forward (train) + mean cross-entropy + backward on the fixture batch */
static float batch_backward(lmp_classifier *c)
{
    lmp_params_group *g = c->params(c);
    ck_assert_ptr_nonnull(g);
    lmp_params_zero_grads(g);
    float logits[8], dlogits[8] = { 0 };
    batch_logits(c, logits, 1);
    float loss = lmp_nn_softmax_crossentropy_forward_backward(NULL, dlogits, logits, ref_get("batch.labels", "I32", NULL),
                                                       4, 2);
    ck_assert_msg(c->backward(c, dlogits) == 0, "%s", lmp_errmsg());
    return loss;
}

/* worst norm-relative error of every LoRA and head gradient */
static double lora_grads_error(lmp_classifier *c, int *checked)
{
    lmp_params_group *g = c->params(c);
    lmp_adapter_host *h = c->adapters(c);
    double worst = 0;
    *checked = 0;
    for (int i = 0; i < h->n_linears; i++) {
        const lmp_linear *l = &h->linears[i];
        float *A, *B;
        int r;
        if (lmp_lora_weights(l, &A, &B, &r) != 0) continue;
        char key[128];
        /* ours are A^T [in, r] and B^T [r, out]; the reference is PEFT's [r, in], [out, r] */
        for (int which = 0; which < 2; which++) {
            snprintf(key, sizeof key, "%s.lora_%c.weight", l->name, which ? 'B' : 'A');
            lmp_param_tensor *t = lmp_params_find(g, key);
            ck_assert_ptr_nonnull(t);
            snprintf(key, sizeof key, "grad.%s.lora_%c", l->name, which ? 'B' : 'A');
            int64_t n;
            const float *want = ref_get(key, "F32", &n);
            ck_assert_int_eq(n, (int64_t)t->n);
            int rows = which ? l->out : r, cols = which ? r : l->in; /* reference [rows, cols] */
            float *tr = mallocCheck(t->n * sizeof(float));
            for (int a = 0; a < rows; a++)
                for (int b = 0; b < cols; b++) tr[(size_t)a * cols + b] = t->grad[(size_t)b * rows + a];
            double e = rel_err(tr, want, t->n);
            if (e > GRAD_TOL) fprintf(stderr, "%s: error %.3g\n", key, e);
            worst = fmax(worst, e);
            free(tr);
            (*checked)++;
        }
    }
    double e = rel_err(lmp_params_find(g, "score.weight")->grad, ref_get("grad.score", "F32", NULL), 64);
    (*checked)++;
    return fmax(worst, e);
}

START_TEST(peft_fixture_logits_and_grads)
{
    lmp_classifier *c = peft_classifier();
    float logits[8];
    batch_logits(c, logits, 0);
    ck_assert_double_le(rel_err(logits, ref_get("logits.lora", "F32", NULL), 8), 1e-5);
    float loss = batch_backward(c);
    double want = *(const double *)ref_get("loss", "F64", NULL);
    ck_assert_msg(fabs(loss - want) <= 1e-5 * want, "loss %.8g, reference %.8g", loss, want);
    int checked;
    double e = lora_grads_error(c, &checked);
    ck_assert_int_eq(checked, 17);
    ck_assert_msg(e <= GRAD_TOL, "worst gradient error %.3g", e);
    /* the frozen body got no gradient memory at all */
    lmp_params_group *g = c->params(c);
    ck_assert_uint_eq(g->n_trainable, 2 * 4 * ((32 + 96) + (32 + 32) + (32 + 128) + (128 + 32)) + 64);
    c->destroy(c);
}
END_TEST

/* One optimizer step exactly as plugins/train/train.c takes it (one micro-
 * batch): zero, forward in training mode, mean cross-entropy, backward, clip
 * the global norm, AdamW. */
static float train_step(lmp_classifier *c, const int *ids, const int *len, const int *labels, int B, int T,
                        double lr, double wd, float clip)
{
    lmp_params_group *g = c->params(c);
    ck_assert_ptr_nonnull(g);
    lmp_params_zero_grads(g);
    float *logits = mallocCheck((size_t)B * 2 * sizeof(float)), *dlogits = callocCheck((size_t)B * 2, sizeof(float));
    ck_assert_msg(c->forward(c, ids, len, B, T, logits, 1) == 0, "%s", lmp_errmsg());
    float loss = lmp_nn_softmax_crossentropy_forward_backward(NULL, dlogits, logits, labels, B, 2);
    ck_assert_msg(c->backward(c, dlogits) == 0, "%s", lmp_errmsg());
    float norm = lmp_params_clip_grad_norm(g, clip);
    ck_assert(isfinite(norm));
    lmp_params_adamw_step(g, lr, 0.9, 0.999, 1e-8, wd);
    free(logits), free(dlogits);
    return loss;
}

START_TEST(training_replay_matches_torch)
{
    lmp_classifier *c = peft_classifier();
    const int *ids = ref_get("train.ids", "I32", NULL), *len = ref_get("train.len", "I32", NULL);
    const int *labels = ref_get("train.labels", "I32", NULL);
    const double *losses = ref_get("train.losses", "F64", NULL);
    ck_assert_str_eq(lmp_st_metadata(ref, "steps"), "5");
    for (int step = 0; step < 5; step++) {
        int s0 = (step * 4) % 8;
        float loss = train_step(c, ids + s0 * 6, len + s0, labels + s0, 4, 6, 3e-3, 0.01, 1.0f);
        double e = fabs(loss - losses[step]) / fabs(losses[step]);
        ck_assert_msg(e <= STEP_TOL, "step %d: loss %.7g, torch %.7g (rel err %.3g)", step, loss, losses[step], e);
    }
    float logits[8];
    batch_logits(c, logits, 0);
    ck_assert_double_le(rel_err(logits, ref_get("train.final_logits", "F32", NULL), 8), STEP_TOL);
    c->destroy(c);
}
END_TEST

/* ---------------------------------------------------------------- files */

static json_t *read_json(const char *path)
{
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    ck_assert_msg(j != NULL, "%s: %s", path, e.text);
    return j;
}

START_TEST(save_and_load_peft_folder)
{
    make_tmpdir();
    lmp_classifier *c = peft_classifier();
    float before[8], after[8];
    batch_logits(c, before, 0);
    char *dir = lmp_strfmt("%s/clf", tmpdir);
    ck_assert_msg(lmp_type_classifier.save(c, dir) == 0, "%s", lmp_errmsg());

    /* the PEFT layout */
    char *p = lmp_strfmt("%s/adapter_config.json", dir);
    json_t *j = read_json(p);
    free(p);
    ck_assert_str_eq(json_string_value(json_object_get(j, "peft_type")), "LORA");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "r")), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "lora_alpha")), 8);
    ck_assert(json_is_true(json_object_get(j, "fan_in_fan_out")));
    ck_assert(json_is_false(json_object_get(j, "use_rslora")));
    ck_assert_str_eq(json_string_value(json_object_get(j, "bias")), "none");
    ck_assert_str_eq(json_string_value(json_object_get(j, "task_type")), "SEQ_CLS");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "modules_to_save"), 1)), "score");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "target_modules"), 3)), "mlp.c_proj");
    json_decref(j);
    p = lmp_strfmt("%s/adapter_model.safetensors", dir);
    lmp_st *st;
    ck_assert_int_eq(lmp_st_open(p, &st), 0);
    free(p);
    ck_assert_int_eq(lmp_st_count(st), 17);
    const lmp_st_info *ti = lmp_st_find(st, "base_model.model.transformer.h.1.mlp.c_fc.lora_A.weight");
    ck_assert_ptr_nonnull(ti);
    ck_assert(ti->shape[0] == 4 && ti->shape[1] == 32);
    ti = lmp_st_find(st, "base_model.model.transformer.h.1.mlp.c_fc.lora_B.weight");
    ck_assert(ti->shape[0] == 128 && ti->shape[1] == 4);
    ti = lmp_st_find(st, "base_model.model.score.weight");
    ck_assert(ti->shape[0] == 2 && ti->shape[1] == 32);
    /* byte-for-byte the reference's tensors */
    char *fp = fixture("lora/peft/adapter_model.safetensors");
    lmp_st *orig;
    ck_assert_int_eq(lmp_st_open(fp, &orig), 0);
    free(fp);
    for (int i = 0; i < lmp_st_count(orig); i++) {
        const lmp_st_info *oi = lmp_st_info_at(orig, i);
        const void *a, *b;
        ck_assert_msg(lmp_st_get(st, oi->name, "F32", &a, NULL, NULL) == 0, "%s", lmp_errmsg());
        ck_assert_int_eq(lmp_st_get(orig, oi->name, "F32", &b, NULL, NULL), 0);
        ck_assert_int_eq(memcmp(a, b, oi->nbytes), 0);
    }
    lmp_st_close(orig);
    lmp_st_close(st);
    p = lmp_strfmt("%s/classifier.json", dir);
    j = read_json(p);
    free(p);
    ck_assert_str_eq(json_string_value(json_object_get(j, "kind")), "gpt2");
    ck_assert(json_is_object(json_object_get(j, "base"))); /* unchanged base: referenced, not copied */
    json_decref(j);

    /* back through the type's load */
    void *v;
    ck_assert_msg(lmp_type_classifier.load(dir, &v) == 0, "%s", lmp_errmsg());
    lmp_classifier *d = v;
    ck_assert_int_eq(lmp_lora_count(d->adapters(d)), 8);
    ck_assert(d->adapters(d)->freeze_base);
    batch_logits(d, after, 0);
    ck_assert_int_eq(memcmp(before, after, sizeof before), 0);
    d->destroy(d);
    /* the referenced base must still be the file it was */
    p = lmp_strfmt("%s/classifier.json", dir);
    j = read_json(p);
    json_t *jb = json_object_get(j, "base");
    long long bytes = json_integer_value(json_object_get(jb, "bytes"));
    json_object_set_new(jb, "bytes", json_integer(bytes + 1));
    ck_assert_int_eq(json_dump_file(j, p, 0), 0);
    json_decref(j);
    ck_assert_int_eq(lmp_classifier_load(dir, &d), -1);
    char *tiny = fixture("gpt2/tiny-hf");
    char *want = lmp_strfmt("%s: base model %s has %lld bytes but had %lld when the classifier was saved", p, tiny,
                            bytes, bytes + 1);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want), free(tiny), free(p);

    /* glob targets are written as PEFT's regex form and read back */
    lmp_classifier *e = classifier();
    lmp_lora_config cfg = { .rank = 2, .alpha = 3.5, .rslora = 1, .targets = "h.1.*,h.0.mlp.c_fc" };
    lmp_rng rng;
    lmp_rng_seed(&rng, 3);
    ck_assert_int_eq(lmp_lora_attach(e->adapters(e), &cfg, &rng), 0);
    ck_assert_int_eq(lmp_lora_count(e->adapters(e)), 5);
    char *dir2 = lmp_strfmt("%s/glob", tmpdir);
    ck_assert_msg(e->save(e, dir2) == 0, "%s", lmp_errmsg());
    p = lmp_strfmt("%s/adapter_config.json", dir2);
    j = read_json(p);
    free(p);
    ck_assert_str_eq(json_string_value(json_object_get(j, "target_modules")), "(.*\\.)?(h\\.1\\..*|h\\.0\\.mlp\\.c_fc)");
    ck_assert(json_is_true(json_object_get(j, "use_rslora")));
    ck_assert(json_real_value(json_object_get(j, "lora_alpha")) == 3.5);
    json_decref(j);
    lmp_classifier *f;
    ck_assert_msg(lmp_classifier_load(dir2, &f) == 0, "%s", lmp_errmsg());
    ck_assert_int_eq(lmp_lora_count(f->adapters(f)), 5);
    ck_assert_float_eq(lmp_lora_scaling(lmp_lora_config_of(f->adapters(f))), 3.5f / sqrtf(2));
    f->destroy(f);
    e->destroy(e);
    free(dir2);

    c->destroy(c);
    free(dir);
    remove_tmpdir();
}
END_TEST

START_TEST(merge_matches_unmerged)
{
    make_tmpdir();
    lmp_classifier *c = peft_classifier();
    float before[8], after[8];
    batch_logits(c, before, 0);
    lmp_gpt2 *m = lmp_gpt2_classifier_model(c);
    ck_assert(!lmp_gpt2_owns_params(m)); /* mapped read-only: the merge must copy first */
    ck_assert_msg(lmp_adapter_merge_all(c->adapters(c)) == 0, "%s", lmp_errmsg());
    ck_assert(lmp_gpt2_owns_params(m));
    ck_assert_int_eq(lmp_adapter_count(c->adapters(c), NULL), 0);
    batch_logits(c, after, 0);
    ck_assert_double_le(rel_err(after, before, 8), 1e-4);
    ck_assert_int_ne(memcmp(before, after, sizeof before), 0); /* really a different computation */
    /* the merged classifier carries its whole body */
    char *dir = lmp_strfmt("%s/merged", tmpdir);
    ck_assert_msg(c->save(c, dir) == 0, "%s", lmp_errmsg());
    lmp_classifier *d;
    ck_assert_msg(lmp_classifier_load(dir, &d) == 0, "%s", lmp_errmsg());
    float again[8];
    batch_logits(d, again, 0);
    ck_assert_int_eq(memcmp(after, again, sizeof after), 0);
    /* ... and its model/ folder is a plain GPT-2 checkpoint */
    char *mp = lmp_strfmt("%s/model", dir);
    lmp_gpt2 *plain;
    ck_assert_msg(lmp_gpt2_load(mp, &plain) == 0, "%s", lmp_errmsg());
    ck_assert_int_eq(memcmp(plain->linears[6].weight, m->linears[6].weight, 128 * 32 * sizeof(float)), 0);
    lmp_gpt2_free(plain);
    d->destroy(d);

    /* as transformers' GPT2ForSequenceClassification: the body under
     * "transformer.", score.weight beside it; lmpipe reads it back as a
     * language model and, with its head, as the same classifier */
    char *hf = lmp_strfmt("%s/hf", tmpdir);
    ck_assert_msg(lmp_gpt2_save_seq_cls(m, hf, lmp_gpt2_classifier_head(c), 2, 0) == 0, "%s", lmp_errmsg());
    char *stp = lmp_strfmt("%s/model.safetensors", hf);
    lmp_st *st;
    ck_assert_int_eq(lmp_st_open(stp, &st), 0);
    ck_assert_int_eq(lmp_st_count(st), 4 + 12 * 2 + 1);
    ck_assert_ptr_nonnull(lmp_st_find(st, "transformer.h.1.mlp.c_fc.weight"));
    ck_assert_ptr_nonnull(lmp_st_find(st, "score.weight"));
    ck_assert_ptr_null(lmp_st_find(st, "wte.weight"));
    lmp_st_close(st);
    ck_assert_msg(lmp_gpt2_load(hf, &plain) == 0, "%s", lmp_errmsg());
    ck_assert_int_eq(memcmp(plain->linears[6].weight, m->linears[6].weight, 128 * 32 * sizeof(float)), 0);
    int L;
    float *head;
    ck_assert_int_eq(lmp_gpt2_load_seq_cls_head(hf, 32, &L, &head), 1);
    ck_assert_int_eq(L, 2);
    ck_assert_int_eq(memcmp(head, lmp_gpt2_classifier_head(c), 2 * 32 * sizeof(float)), 0);
    ck_assert_msg(lmp_gpt2_classifier_new(plain, L, hf, &d) == 0, "%s", lmp_errmsg());
    memcpy(lmp_gpt2_classifier_head(d), head, 2 * 32 * sizeof(float));
    free(head);
    batch_logits(d, again, 0);
    ck_assert_int_eq(memcmp(after, again, sizeof after), 0);
    d->destroy(d);
    char *cfgp = lmp_strfmt("%s/config.json", hf);
    json_t *j = read_json(cfgp);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "architectures"), 0)),
                     "GPT2ForSequenceClassification");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "id2label"), "1")), "LABEL_1");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "label2id"), "LABEL_0")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "pad_token_id")), 0);
    /* a config that counts other labels than the head has */
    json_object_del(json_object_get(j, "id2label"), "1");
    ck_assert_int_eq(json_dump_file(j, cfgp, 0), 0);
    json_decref(j);
    ck_assert_int_eq(lmp_gpt2_load_seq_cls_head(hf, 32, &L, &head), -1);
    char *want = lmp_strfmt("%s/config.json: id2label has 1 labels but score.weight in %s has 2 rows", hf, stp);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want);
    ck_assert_int_eq(lmp_gpt2_load_seq_cls_head(hf, 31, &L, &head), -1);
    want = lmp_strfmt("%s: tensor \"score.weight\" must be [num_labels, 31] (F32, F16 or BF16)", stp);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want);
    /* a language model has no head; a pad id outside the vocabulary is refused */
    char *tiny = fixture("gpt2/tiny-hf");
    ck_assert_int_eq(lmp_gpt2_load_seq_cls_head(tiny, 32, &L, &head), 0);
    ck_assert_ptr_null(head);
    ck_assert_int_eq(lmp_gpt2_save_seq_cls(m, hf, lmp_gpt2_classifier_head(c), 2, 101), -1);
    want = lmp_strfmt("%s: pad_token_id 101 is not in the vocabulary [0, 101)", hf);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want), free(tiny), free(cfgp), free(stp), free(hf);
    c->destroy(c);
    free(mp), free(dir);
    remove_tmpdir();
}
END_TEST

/* ---------------------------------------------------------------- dropout, chaining */

/* Mean cross-entropy of the fixture batch in training mode with the host's
 * RNG reset, so that every call draws the same dropout masks. */
static float loss_fixed_masks(lmp_classifier *c)
{
    lmp_rng_seed(&c->adapters(c)->rng, 99);
    float logits[8];
    batch_logits(c, logits, 1);
    return lmp_nn_softmax_crossentropy_forward_backward(NULL, NULL, logits, ref_get("batch.labels", "I32", NULL), 4, 2);
}

/* central differences on the largest-gradient entry of `name` */
static void fd_check(lmp_classifier *c, const char *name, float tol)
{
    lmp_params_group *g = c->params(c);
    lmp_params_zero_grads(g);
    lmp_rng_seed(&c->adapters(c)->rng, 99);
    float logits[8], dlogits[8] = { 0 };
    batch_logits(c, logits, 1);
    lmp_nn_softmax_crossentropy_forward_backward(NULL, dlogits, logits, ref_get("batch.labels", "I32", NULL), 4, 2);
    ck_assert_int_eq(c->backward(c, dlogits), 0);
    lmp_param_tensor *t = lmp_params_find(g, name);
    ck_assert_ptr_nonnull(t);
    size_t at = 0;
    for (size_t j = 0; j < t->n; j++)
        if (fabsf(t->grad[j]) > fabsf(t->grad[at])) at = j;
    float w = t->data[at], h = 1e-2f;
    t->data[at] = w + h;
    float lp = loss_fixed_masks(c);
    t->data[at] = w - h;
    float lm = loss_fixed_masks(c);
    t->data[at] = w;
    float fd = (lp - lm) / (2 * h);
    ck_assert_msg(fabsf(fd - t->grad[at]) <= tol * fabsf(t->grad[at]), "%s[%zu]: backward %g, differences %g", name,
                  at, t->grad[at], fd);
}

START_TEST(dropout_masks_and_gradients)
{
    lmp_classifier *c = classifier();
    lmp_adapter_host *h = c->adapters(c);
    char *dir = fixture("lora/peft");
    ck_assert_int_eq(lmp_lora_load(h, dir, head_key, NULL, NULL), 0);
    free(dir);
    float eval[8], t1[8], t2[8];
    batch_logits(c, eval, 0);
    /* PEFT's value was 0: give the loaded adapters dropout 0.3 by reloading with it set */
    c->destroy(c);
    make_tmpdir();
    c = peft_classifier();
    char *d2 = lmp_strfmt("%s/drop", tmpdir);
    ck_assert_int_eq(c->save(c, d2), 0);
    c->destroy(c);
    char *cfgp = lmp_strfmt("%s/adapter_config.json", d2);
    json_t *j = read_json(cfgp);
    json_object_set_new(j, "lora_dropout", json_real(0.3));
    ck_assert_int_eq(json_dump_file(j, cfgp, 0), 0);
    json_decref(j);
    ck_assert_msg(lmp_classifier_load(d2, &c) == 0, "%s", lmp_errmsg());
    ck_assert(lmp_lora_config_of(c->adapters(c))->dropout == 0.3);
    /* evaluation: no dropout; training: masks from the host's RNG */
    float e2[8];
    batch_logits(c, e2, 0);
    ck_assert_int_eq(memcmp(eval, e2, sizeof eval), 0);
    batch_logits(c, t1, 1);
    batch_logits(c, t2, 1);
    ck_assert(rel_err(t1, eval, 8) > 1e-4);
    ck_assert(rel_err(t1, t2, 8) > 1e-6); /* fresh masks each forward */
    float a = loss_fixed_masks(c), b = loss_fixed_masks(c);
    ck_assert(a == b);
    /* backward regenerates the masks it used: finite differences agree */
    fd_check(c, "h.0.attn.c_attn.lora_A.weight", 0.02f);
    fd_check(c, "h.1.mlp.c_fc.lora_B.weight", 0.02f);
    fd_check(c, "h.0.mlp.c_proj.lora_A.weight", 0.02f);
    c->destroy(c);
    free(cfgp), free(d2);
    remove_tmpdir();
}
END_TEST

/* An output-scaling kind (IA3-like): out *= s.  Its backward must hand the
 * scaled gradient on to LoRA and the base matmul. */
typedef struct {
    float *s, *y, *dy;
    size_t cap;
    lmp_params_group *g;
    int idx;
} scale_ad;

static void scale_forward(lmp_adapter *a, const lmp_linear *l, float *out, const float *inp, int N)
{
    (void)inp;
    scale_ad *x = a->ctx;
    size_t n = (size_t)N * l->out;
    if (n > x->cap) {
        x->y = reallocCheck(x->y, n * sizeof(float));
        x->dy = reallocCheck(x->dy, n * sizeof(float));
        x->cap = n;
    }
    memcpy(x->y, out, n * sizeof(float));
    for (size_t i = 0; i < n; i++) out[i] *= x->s[i % l->out];
}

static const float *scale_backward(lmp_adapter *a, const lmp_linear *l, float *dinp, const float *dout,
                                   const float *inp, int N)
{
    (void)dinp, (void)inp;
    scale_ad *x = a->ctx;
    float *ds = lmp_adapter_grad(x->g, x->idx);
    for (size_t i = 0; i < (size_t)N * l->out; i++) {
        if (ds) ds[i % l->out] += dout[i] * x->y[i];
        x->dy[i] = dout[i] * x->s[i % l->out];
    }
    return x->dy;
}

static int scale_params(lmp_adapter *a, lmp_params_group *g)
{
    scale_ad *x = a->ctx;
    char *n = lmp_strfmt("%s.scale", a->layer->name);
    int rc = lmp_params_add(g, n, x->s, a->layer->out, LMP_PARAM_TRAIN);
    free(n);
    x->g = g, x->idx = g->count - 1;
    return rc;
}

static void scale_destroy(lmp_adapter *a)
{
    scale_ad *x = a->ctx;
    free(x->s), free(x->y), free(x->dy), free(x);
}

static const lmp_adapter_ops scale_ops = { .kind = "scale", .forward = scale_forward, .backward = scale_backward,
                                           .params = scale_params, .destroy = scale_destroy };

START_TEST(output_scaling_adapter_after_lora)
{
    lmp_classifier *c = peft_classifier();
    lmp_adapter_host *h = c->adapters(c);
    lmp_linear *l = &h->linears[2]; /* h.0.mlp.c_fc: LoRA first, then the scale */
    scale_ad *x = callocCheck(1, sizeof *x);
    x->s = mallocCheck((size_t)l->out * sizeof(float));
    for (int i = 0; i < l->out; i++) x->s[i] = 1 + 0.5f * sinf((float)i);
    ck_assert_int_eq(lmp_adapter_attach(h, l, lmp_adapter_new(&scale_ops, x)), 0);
    ck_assert_int_eq(lmp_adapter_count(h, "scale"), 1);
    fd_check(c, "h.0.mlp.c_fc.scale", 0.02f);
    fd_check(c, "h.0.mlp.c_fc.lora_B.weight", 0.02f); /* through the scale */
    fd_check(c, "h.0.attn.c_attn.lora_A.weight", 0.02f); /* below it */
    /* PEFT cannot hold it; merging needs every kind to merge */
    ck_assert_int_eq(c->save(c, "/nonexistent/x"), -1);
    ck_assert_int_eq(lmp_adapter_merge_all(h), -1);
    ck_assert_str_eq(lmp_errmsg(), "adapter kind 'scale' (on h.0.mlp.c_fc) cannot be merged into the base weights");
    ck_assert_int_eq(lmp_lora_count(h), 8); /* nothing was merged */
    lmp_adapter_detach(h, h->attached[8]);
    ck_assert_int_eq(lmp_adapter_count(h, NULL), 8);
    c->destroy(c);
}
END_TEST

/* ---------------------------------------------------------------- kinds, saved */

static int scale_save(const lmp_adapter_host *h, const char *dir, const lmp_adapter_files *f)
{
    (void)h, (void)dir, (void)f;
    return 0;
}

static int scale_load(lmp_adapter_host *h, const char *dir, const lmp_adapter_files *f)
{
    (void)h, (void)dir, (void)f;
    return 0;
}

static const lmp_adapter_ops saving_scale_ops = { .kind = "scale", .forward = scale_forward,
                                                  .backward = scale_backward, .params = scale_params,
                                                  .destroy = scale_destroy, .save = scale_save,
                                                  .load = scale_load };

static void set_adapters(const char *dir, json_t *value)
{
    char *p = lmp_strfmt("%s/classifier.json", dir);
    json_t *j = read_json(p);
    if (value) json_object_set_new(j, "adapters", value);
    else json_object_del(j, "adapters");
    ck_assert_int_eq(json_dump_file(j, p, JSON_INDENT(2)), 0);
    json_decref(j);
    free(p);
}

/* classifier.json lists the kinds saved; a folder without the list (older
 * lmpipe) with PEFT files is LoRA's; kinds are found by name; a layer's
 * adapters in an order loading kind by kind would not restore are refused */
START_TEST(adapter_kinds_saved_by_name)
{
    make_tmpdir();
    ck_assert_ptr_eq(lmp_adapter_kind_find("lora"), lmp_adapter_kind_find("lora"));
    ck_assert_ptr_nonnull(lmp_adapter_kind_find("lora"));
    ck_assert_ptr_null(lmp_adapter_kind_find("dora"));
    lmp_classifier *c = peft_classifier(), *d;
    float before[8], after[8];
    batch_logits(c, before, 0);
    char *dir = lmp_strfmt("%s/clf", tmpdir), *p = lmp_strfmt("%s/classifier.json", dir);
    ck_assert_msg(c->save(c, dir) == 0, "%s", lmp_errmsg());
    json_t *j = read_json(p);
    json_t *a = json_object_get(j, "adapters");
    ck_assert_int_eq(json_array_size(a), 1);
    ck_assert_str_eq(json_string_value(json_array_get(a, 0)), "lora");
    json_decref(j);
    set_adapters(dir, NULL);
    ck_assert_msg(lmp_classifier_load(dir, &d) == 0, "%s", lmp_errmsg());
    ck_assert_int_eq(lmp_lora_count(d->adapters(d)), 8);
    batch_logits(d, after, 0);
    ck_assert_int_eq(memcmp(before, after, sizeof before), 0);
    d->destroy(d);
    json_t *bad = json_array();
    json_array_append_new(bad, json_string("lora"));
    json_array_append_new(bad, json_string("dora"));
    set_adapters(dir, bad);
    ck_assert_int_eq(lmp_classifier_load(dir, &d), -1);
    char *want = lmp_strfmt("%s: unknown adapter kind \"dora\" (is its plugin loaded?)", dir);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want);
    set_adapters(dir, json_integer(3));
    ck_assert_int_eq(lmp_classifier_load(dir, &d), -1);
    want = lmp_strfmt("%s: \"adapters\" must be a list of at most 16 adapter kinds", p);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want);
    c->destroy(c);
    /* a scale on h.0.mlp.c_fc, then LoRA, then a scale on h.0.attn.c_attn:
     * there the scale follows LoRA, though its kind was attached first */
    c = classifier();
    lmp_adapter_host *h = c->adapters(c);
    lmp_lora_config cfg = { .rank = 2, .alpha = 4, .targets = LMP_LORA_DEFAULT_TARGETS };
    lmp_rng rng;
    lmp_rng_seed(&rng, 1);
    for (int k = 0; k < 2; k++) {
        lmp_linear *l = &h->linears[k == 0 ? 2 : 0];
        scale_ad *x = callocCheck(1, sizeof *x);
        x->s = mallocCheck((size_t)l->out * sizeof(float));
        for (int i = 0; i < l->out; i++) x->s[i] = 1;
        ck_assert_int_eq(lmp_adapter_attach(h, l, lmp_adapter_new(&saving_scale_ops, x)), 0);
        if (k == 0) ck_assert_msg(lmp_lora_attach(h, &cfg, &rng) == 0, "%s", lmp_errmsg());
    }
    const lmp_adapter_ops *kinds[4];
    ck_assert_int_eq(lmp_adapter_kinds(h, kinds, 4), 2);
    ck_assert_str_eq(kinds[0]->kind, "scale");
    ck_assert_int_eq(c->save(c, dir), -1);
    want = lmp_strfmt("%s: on h.0.attn.c_attn a scale adapter follows a lora one, an order that loading kind by kind "
                      "(scale first) would not restore", dir);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want);
    c->destroy(c);
    free(dir), free(p);
    remove_tmpdir();
}
END_TEST

/* ---------------------------------------------------------------- PEFT errors */

/* Copy the fixture folder to tmpdir/name, then let the caller spoil it. */
static char *peft_copy(const char *name)
{
    char *src = fixture("lora/peft");
    char *dst = lmp_strfmt("%s/%s", tmpdir, name);
    char *cmd = lmp_strfmt("cp -r '%s' '%s' && chmod -R u+w '%s'", src, dst, dst); /* distcheck: srcdir is read-only */
    ck_assert_int_eq(system(cmd), 0);
    free(cmd), free(src);
    return dst;
}

static void edit_config(const char *dir, const char *key, json_t *value)
{
    char *p = lmp_strfmt("%s/adapter_config.json", dir);
    json_t *j = read_json(p);
    if (value) json_object_set_new(j, key, value);
    else json_object_del(j, key);
    ck_assert_int_eq(json_dump_file(j, p, JSON_INDENT(2)), 0);
    json_decref(j);
    free(p);
}

/* Rewrite adapter_model.safetensors: drop `drop`, replace `key` by a [d0, d1]
 * zero tensor (key may be new). */
static void edit_tensors(const char *dir, const char *drop, const char *key, int64_t d0, int64_t d1)
{
    char *p = lmp_strfmt("%s/adapter_model.safetensors", dir);
    lmp_st *st;
    ck_assert_int_eq(lmp_st_open(p, &st), 0);
    int n = lmp_st_count(st), k = 0;
    lmp_st_tensor *t = callocCheck((size_t)n + 1, sizeof *t);
    int64_t (*shapes)[LMP_ST_MAX_DIMS] = callocCheck((size_t)n + 1, sizeof *shapes);
    float *zeros = callocCheck(key ? (size_t)(d0 * d1) : 1, sizeof(float));
    for (int i = 0; i < n; i++) {
        const lmp_st_info *ti = lmp_st_info_at(st, i);
        if ((drop && strcmp(ti->name, drop) == 0) || (key && strcmp(ti->name, key) == 0)) continue;
        const void *d;
        ck_assert_int_eq(lmp_st_get(st, ti->name, NULL, &d, shapes[k], NULL), 0);
        t[k] = (lmp_st_tensor){ ti->name, ti->dtype, ti->ndim, shapes[k], d };
        k++;
    }
    if (key) {
        shapes[k][0] = d0, shapes[k][1] = d1;
        t[k++] = (lmp_st_tensor){ key, "F32", 2, shapes[k - 1], zeros };
    }
    char *tmp = lmp_strfmt("%s.new", p);
    ck_assert_int_eq(lmp_st_write(tmp, t, k, NULL, 0), 0);
    lmp_st_close(st);
    ck_assert_int_eq(rename(tmp, p), 0);
    free(t), free(shapes), free(zeros), free(tmp), free(p);
}

/* lmp_lora_load of dir into a fresh classifier fails with exactly `want`
 * (with "DIR" replaced by dir) and attaches nothing. */
static void expect_load_error(const char *dir, const char *want_fmt)
{
    lmp_classifier *c = classifier();
    static const char *const extra[] = { "score.weight", NULL };
    ck_assert_int_eq(lmp_lora_load(c->adapters(c), dir, extra, NULL, NULL), -1);
    lmp_sbuf want = { 0 };
    lmp_sbuf_puts(&want, "");
    for (const char *p = want_fmt; *p; p++) {
        if (strncmp(p, "DIR", 3) == 0) lmp_sbuf_puts(&want, dir), p += 2;
        else lmp_sbuf_putc(&want, *p);
    }
    ck_assert_str_eq(lmp_errmsg(), want.s);
    ck_assert_int_eq(lmp_adapter_count(c->adapters(c), NULL), 0);
    lmp_sbuf_free(&want);
    c->destroy(c);
}

/* Load the PEFT folder `from` into a fresh classifier and save it to `to`:
 * the adapters attached, and adapter_config.json's bytes. */
static char *round_trip(const char *from, const char *to, int want_adapters)
{
    lmp_classifier *c = classifier();
    lmp_lora_config cfg;
    ck_assert_msg(lmp_lora_load(c->adapters(c), from, head_key, &cfg, NULL) == 0, "%s", lmp_errmsg());
    ck_assert_int_eq(lmp_lora_count(c->adapters(c)), want_adapters);
    ck_assert_msg(c->save(c, to) == 0, "%s", lmp_errmsg());
    c->destroy(c);
    char *p = lmp_strfmt("%s/adapter_config.json", to), *text;
    size_t len;
    ck_assert_int_eq(lmp_read_file(p, 1 << 20, &text, &len), 0);
    free(p);
    return text;
}

static char *target_modules(const char *config_text)
{
    json_t *j = json_loads(config_text, 0, NULL);
    ck_assert_ptr_nonnull(j);
    char *s = json_dumps(json_object_get(j, "target_modules"), JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(j);
    return s;
}

/* target_modules keeps its kind through any number of load / save round
 * trips: a regex stays that regex (not escaped again as a glob), a list a
 * list; from the second save on the whole adapter_config.json is fixed. */
START_TEST(targets_survive_round_trips)
{
    make_tmpdir();
    static const char *const forms[] = {
        "\"(.*\\\\.)?(h\\\\.1\\\\..*|h\\\\.0\\\\.mlp\\\\.c_fc)\"", /* what lmp_lora_save writes for globs */
        "\".*\\\\.h\\\\.\\\\d+\\\\.(attn\\\\.c_(attn|proj)|mlp\\\\.c_(fc|proj))\"", /* hand-written PEFT regex */
        "[\"c_attn\",\"attn.c_proj\",\"c_fc\",\"mlp.c_proj\"]",        /* the fixture's list */
    };
    for (int f = 0; f < 3; f++) {
        char *dir = peft_copy(f == 0 ? "glob" : f == 1 ? "regex" : "list");
        json_t *tm = json_loads(forms[f], JSON_DECODE_ANY, NULL);
        ck_assert_ptr_nonnull(tm);
        int want = 8;
        if (f == 0) { /* the glob form selects h.1's four layers and h.0.mlp.c_fc */
            lmp_classifier *e = classifier();
            lmp_lora_config cfg = { .rank = 4, .alpha = 8, .targets = "h.1.*,h.0.mlp.c_fc" };
            lmp_rng rng;
            lmp_rng_seed(&rng, 3);
            ck_assert_int_eq(lmp_lora_attach(e->adapters(e), &cfg, &rng), 0);
            ck_assert_msg(e->save(e, dir) == 0, "%s", lmp_errmsg());
            e->destroy(e);
            want = 5;
        }
        edit_config(dir, "target_modules", tm);
        char *prev = NULL;
        for (int round = 1; round <= 3; round++) {
            char *next = lmp_strfmt("%s/%s.%d", tmpdir, f == 0 ? "glob" : f == 1 ? "regex" : "list", round);
            char *text = round_trip(round == 1 ? dir : prev, next, want);
            char *got = target_modules(text);
            ck_assert_str_eq(got, forms[f]);
            if (round > 1) {
                char *p = lmp_strfmt("%s/adapter_config.json", prev), *before;
                size_t len;
                ck_assert_int_eq(lmp_read_file(p, 1 << 20, &before, &len), 0);
                ck_assert_str_eq(text, before);
                free(p), free(before);
            }
            free(got), free(text), free(prev);
            prev = next;
        }
        free(prev), free(dir);
    }
    /* a regex given to attach selects as PEFT would */
    lmp_classifier *c = classifier();
    lmp_lora_config cfg = { .rank = 2, .alpha = 4, .targets = "transformer\\.h\\.0\\..*", .targets_regex = 1 };
    lmp_rng rng;
    lmp_rng_seed(&rng, 5);
    ck_assert_msg(lmp_lora_attach(c->adapters(c), &cfg, &rng) == 0, "%s", lmp_errmsg());
    ck_assert_int_eq(lmp_lora_count(c->adapters(c)), 4);
    c->destroy(c);
    c = classifier();
    cfg.targets = "h\\.0\\..*"; /* a full match: the prefix is part of the name */
    ck_assert_int_eq(lmp_lora_attach(c->adapters(c), &cfg, &rng), -1);
    ck_assert_str_eq(lmp_errmsg(), "lora: target_modules 'h\\.0\\..*' matches no linear layer of the gpt2 model");
    c->destroy(c);
    remove_tmpdir();
}
END_TEST

START_TEST(peft_validation_errors)
{
    make_tmpdir();
    char *d;
    d = lmp_strfmt("%s/none", tmpdir);
    expect_load_error(d, "DIR: not a PEFT adapter folder (no such directory)");
    free(d);
    d = peft_copy("noconfig");
    char *p = lmp_strfmt("%s/adapter_config.json", d);
    unlink(p);
    free(p);
    expect_load_error(d, "DIR: no adapter_config.json in the folder");
    free(d);
    d = peft_copy("badjson");
    p = lmp_strfmt("%s/adapter_config.json", d);
    ck_assert_int_eq(lmp_write_file_atomic(p, "{\"r\": 4,\n", 9), 0);
    free(p);
    expect_load_error(d, "DIR/adapter_config.json:2:0: not valid JSON: string or '}' expected near end of file");
    free(d);
    d = peft_copy("ia3");
    edit_config(d, "peft_type", json_string("IA3"));
    expect_load_error(d, "DIR/adapter_config.json: peft_type \"IA3\" is not supported (only LORA)");
    free(d);
    d = peft_copy("nor");
    edit_config(d, "r", NULL);
    expect_load_error(d, "DIR/adapter_config.json: \"r\" must be a positive integer");
    free(d);
    d = peft_copy("bias");
    edit_config(d, "bias", json_string("all"));
    expect_load_error(d, "DIR/adapter_config.json: bias \"all\" is not supported (only \"none\")");
    free(d);
    d = peft_copy("dora");
    edit_config(d, "use_dora", json_true());
    expect_load_error(d, "DIR/adapter_config.json: use_dora is not supported (plain LoRA only)");
    free(d);
    d = peft_copy("pattern");
    json_t *rp = json_object();
    json_object_set_new(rp, "c_fc", json_integer(8));
    edit_config(d, "rank_pattern", rp);
    expect_load_error(d, "DIR/adapter_config.json: rank_pattern is not supported (one r and lora_alpha for every layer)");
    free(d);
    d = peft_copy("targets");
    json_t *tm = json_array();
    json_array_append_new(tm, json_string("q_proj"));
    edit_config(d, "target_modules", tm);
    expect_load_error(d, "DIR/adapter_config.json: target_modules [q_proj] matches no linear layer of the gpt2 model");
    free(d);
    d = peft_copy("regex");
    edit_config(d, "target_modules", json_string("h.(0"));
    expect_load_error(d, "DIR/adapter_config.json: target_modules regex: missing closing parenthesis at offset 4");
    free(d);
    d = peft_copy("rmismatch");
    edit_config(d, "r", json_integer(8));
    expect_load_error(d, "DIR/adapter_model.safetensors: tensor \"base_model.model.transformer.h.0.attn.c_attn.lora_A.weight\" "
                         "has rank 4 but adapter_config.json has r = 8");
    free(d);
    d = peft_copy("missing");
    edit_tensors(d, "base_model.model.transformer.h.1.mlp.c_proj.lora_B.weight", NULL, 0, 0);
    expect_load_error(d, "DIR/adapter_model.safetensors: missing tensor "
                         "\"base_model.model.transformer.h.1.mlp.c_proj.lora_B.weight\"");
    free(d);
    d = peft_copy("shape");
    edit_tensors(d, NULL, "base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight", 4, 31);
    expect_load_error(d, "DIR/adapter_model.safetensors: tensor \"base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight\" "
                         "has shape [4, 31], expected [4, 32]");
    free(d);
    d = peft_copy("unknown");
    edit_tensors(d, NULL, "base_model.model.transformer.h.0.attn.c_attn.lora_C.weight", 2, 2);
    expect_load_error(d, "DIR/adapter_model.safetensors: unexpected tensor "
                         "\"base_model.model.transformer.h.0.attn.c_attn.lora_C.weight\" "
                         "(not a LoRA weight of a targeted layer of the gpt2 model)");
    free(d);
    d = peft_copy("untargeted"); /* a layer's weights present but not in target_modules */
    json_t *t2 = json_array();
    json_array_append_new(t2, json_string("c_attn"));
    edit_config(d, "target_modules", t2);
    expect_load_error(d, "DIR/adapter_model.safetensors: unexpected tensor "
                         "\"base_model.model.transformer.h.0.attn.c_proj.lora_A.weight\" "
                         "(not a LoRA weight of a targeted layer of the gpt2 model)");
    free(d);
    d = peft_copy("nofile");
    p = lmp_strfmt("%s/adapter_model.safetensors", d);
    unlink(p);
    free(p);
    expect_load_error(d, "DIR: no adapter_model.safetensors in the folder");
    free(d);
    /* the head is checked by the classifier's own load */
    lmp_classifier *c = peft_classifier();
    d = lmp_strfmt("%s/cls", tmpdir);
    ck_assert_int_eq(c->save(c, d), 0);
    c->destroy(c);
    edit_tensors(d, NULL, "base_model.model.score.weight", 3, 32);
    ck_assert_int_eq(lmp_classifier_load(d, &c), -1);
    p = lmp_strfmt("%s/adapter_model.safetensors: tensor \"base_model.model.score.weight\" must be F32 [2, 32] "
                   "(num_labels, n_embd)",
                   d);
    ck_assert_str_eq(lmp_errmsg(), p);
    free(p), free(d);
    remove_tmpdir();
}
END_TEST

int main(void)
{
    char *p = fixture("lora/expected.safetensors");
    if (lmp_st_open(p, &ref) != 0) {
        fprintf(stderr, "%s\n", lmp_errmsg());
        return 1;
    }
    free(p);
    Suite *s = suite_create("lora");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, patterns);
    tcase_add_test(tc, base_logits_and_fresh_adapter_exact);
    tcase_add_test(tc, peft_fixture_logits_and_grads);
    tcase_add_test(tc, training_replay_matches_torch);
    tcase_add_test(tc, save_and_load_peft_folder);
    tcase_add_test(tc, merge_matches_unmerged);
    tcase_add_test(tc, dropout_masks_and_gradients);
    tcase_add_test(tc, output_scaling_adapter_after_lora);
    tcase_add_test(tc, adapter_kinds_saved_by_name);
    tcase_add_test(tc, peft_validation_errors);
    tcase_add_test(tc, targets_survive_round_trips);
    suite_add_tcase(s, tc);
    int failed = test_run_suite(s, 1);
    lmp_st_close(ref);
    return failed ? 1 : 0;
}
