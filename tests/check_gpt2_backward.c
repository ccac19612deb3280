/* check_gpt2_backward.c — the GPT-2 backward pass against PyTorch autograd
 * (tests/fixtures/gpt2/grads.safetensors, made by make_grad_fixtures.py in
 * float64): the gradient of every parameter for the causal-LM loss and for a
 * loss on the last real token's hidden state with right padding; central
 * finite differences end to end; frozen tensors and the skipped lower
 * blocks; accumulation; adapters' backward hooks; and the error paths. */
#include "config.h"
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "gpt2.h"
#include "safetensors.h"
#include "util.h"
#include "testutil.h"

/* max |g - g_ref| / max |g_ref| per tensor (a norm-relative error: small
 * entries of a tensor are not held to a relative bound of their own) */
#define GRAD_TOL 1e-3

static lmp_st *ref;
static int quiet; /* grads_error: don't report tensors over the tolerance */

static char *fixture(const char *name) { return test_fixture("gpt2", name); }

static const void *ref_get(const char *name, const char *dtype, int64_t *n) { return test_st_get(ref, name, dtype, n); }

/* The tiny model, writable, every tensor registered with flags from fn. */
static lmp_gpt2 *trainable(lmp_params_group *g, lmp_gpt2_flags_fn fn, void *user)
{
    char *p = fixture("tiny-hf");
    lmp_gpt2 *m = NULL;
    ck_assert_msg(lmp_gpt2_load(p, &m) == 0, "%s", lmp_errmsg());
    free(p);
    ck_assert_int_eq(lmp_gpt2_own_params(m), 0);
    lmp_params_init(g);
    ck_assert_msg(lmp_gpt2_params_add(m, g, fn, user) == 0, "%s", lmp_errmsg());
    lmp_params_alloc_grads(g);
    ck_assert_msg(lmp_gpt2_bind_grads(m, g) == 0, "%s", lmp_errmsg());
    return m;
}

/* Worst norm-relative error over the group's trainable tensors against
 * "<prefix>.grad.<name>"; every tensor of the model must be in the fixture. */
static double grads_error(lmp_params_group *g, const char *prefix, int *checked)
{
    double worst = 0;
    *checked = 0;
    for (int i = 0; i < g->count; i++) {
        lmp_param_tensor *t = &g->t[i];
        char key[128];
        snprintf(key, sizeof key, "%s.grad.%s", prefix, t->name);
        int64_t n;
        const float *r = ref_get(key, "F32", &n);
        ck_assert_int_eq(n, (int64_t)t->n);
        if (!t->grad) continue;
        double dmax = 0, rmax = 0;
        for (size_t j = 0; j < t->n; j++) {
            dmax = fmax(dmax, fabs((double)t->grad[j] - r[j]));
            rmax = fmax(rmax, fabs((double)r[j]));
        }
        double e = rmax > 0 ? dmax / rmax : dmax;
        if (e > GRAD_TOL && !quiet) fprintf(stderr, "%s: %s error %.3g (max |g| %.3g)\n", prefix, t->name, e, rmax);
        worst = fmax(worst, e);
        (*checked)++;
    }
    return worst;
}

static float lm_backward(lmp_gpt2 *m)
{
    int64_t n;
    const int *ids = ref_get("lm.ids", "I32", &n);
    const int *targets = ref_get("lm.targets", "I32", NULL);
    ck_assert_int_eq(n, 48);
    ck_assert_msg(lmp_gpt2_forward(m, ids, NULL, 3, 16, 1) == 0, "%s", lmp_errmsg());
    float loss = NAN;
    ck_assert_msg(lmp_gpt2_backward_lm(m, targets, &loss, NULL) == 0, "%s", lmp_errmsg());
    return loss;
}

START_TEST(lm_grads_match_autograd)
{
    lmp_params_group g;
    lmp_gpt2 *m = trainable(&g, NULL, NULL);
    ck_assert_int_eq(g.count, 4 + 12 * 2);
    ck_assert_ptr_nonnull(lmp_params_find(&g, "h.1.mlp.c_proj.bias"));
    ck_assert_int_eq(lmp_params_find(&g, "h.0.ln_2.weight")->flags,
                     LMP_PARAM_TRAIN | LMP_PARAM_NO_DECAY);
    ck_assert_int_eq(lmp_params_find(&g, "wte.weight")->flags, LMP_PARAM_TRAIN);
    float loss = lm_backward(m);
    double want = *(const double *)ref_get("lm.loss", "F64", NULL);
    ck_assert_msg(fabs(loss - want) <= 1e-5 * fabs(want), "loss %.7g, reference %.7g", loss, want);
    int checked;
    double e = grads_error(&g, "lm", &checked);
    ck_assert_int_eq(checked, 28);
    ck_assert_msg(e <= GRAD_TOL, "worst gradient error %.3g", e);

    /* a second backward accumulates: every gradient doubles (up to rounding
     * where one gradient has two sources, as the tied wte has) */
    float *first = mallocCheck(g.n_trainable * sizeof(float)), big = 0;
    memcpy(first, g.grad_mem, g.n_trainable * sizeof(float));
    for (size_t i = 0; i < g.n_trainable; i++) big = fmaxf(big, fabsf(first[i]));
    lm_backward(m);
    for (size_t i = 0; i < g.n_trainable; i++)
        ck_assert_float_le(fabsf(g.grad_mem[i] - 2 * first[i]), 1e-6f * big);
    free(first);
    lmp_params_free(&g);
    lmp_gpt2_free(m);
}
END_TEST

static void hidden_backward(lmp_gpt2 *m)
{
    int B = 3, T = 12, C = m->config.n_embd;
    const int *ids = ref_get("hid.ids", "I32", NULL), *mask = ref_get("hid.mask", "I32", NULL);
    const float *G = ref_get("hid.G", "F32", NULL);
    ck_assert_msg(lmp_gpt2_forward(m, ids, mask, B, T, 1) == 0, "%s", lmp_errmsg());
    float *dlnf = callocCheck((size_t)B * T * C, sizeof(float));
    double loss = 0;
    for (int b = 0; b < B; b++) {
        int last = 0;
        for (int t = 0; t < T; t++)
            if (mask[b * T + t]) last = t;
        for (int i = 0; i < C; i++) {
            size_t at = ((size_t)b * T + last) * C + i;
            dlnf[at] = G[b * C + i];
            loss += (double)m->acts.lnf[at] * G[b * C + i];
        }
    }
    double want = *(const double *)ref_get("hid.loss", "F64", NULL);
    ck_assert_msg(fabs(loss - want) <= 1e-4 * fabs(want) + 1e-5, "loss %.7g, reference %.7g", loss, want);
    ck_assert_msg(lmp_gpt2_backward_from_hidden(m, dlnf) == 0, "%s", lmp_errmsg());
    free(dlnf);
}

START_TEST(hidden_grads_with_padding_match_autograd)
{
    lmp_params_group g;
    lmp_gpt2 *m = trainable(&g, NULL, NULL);
    hidden_backward(m);
    int checked;
    double e = grads_error(&g, "hid", &checked);
    ck_assert_int_eq(checked, 28);
    ck_assert_msg(e <= GRAD_TOL, "worst gradient error %.3g", e);
    /* without the mask the left-padded row's last token attends to its pads:
     * the same loss then has different gradients (so the mask is what matched) */
    lmp_params_zero_grads(&g);
    const int *ids = ref_get("hid.ids", "I32", NULL);
    const float *G = ref_get("hid.G", "F32", NULL);
    ck_assert_int_eq(lmp_gpt2_forward(m, ids, NULL, 3, 12, 1), 0);
    float *dlnf = callocCheck(3 * 12 * 32, sizeof(float));
    const int last[3] = { 11, 6, 11 };
    for (int b = 0; b < 3; b++)
        for (int i = 0; i < 32; i++) dlnf[(b * 12 + last[b]) * 32 + i] = G[b * 32 + i];
    ck_assert_int_eq(lmp_gpt2_backward_from_hidden(m, dlnf), 0);
    free(dlnf);
    quiet = 1;
    ck_assert_double_gt(grads_error(&g, "hid", &checked), 0.05);
    quiet = 0;
    lmp_params_free(&g);
    lmp_gpt2_free(m);
}
END_TEST

/* Freeze everything but block 1's attention and ln_f. */
static int only_upper(void *user, const char *name, int def)
{
    (void)user;
    return strncmp(name, "h.1.attn.", 9) == 0 || strncmp(name, "ln_f.", 5) == 0 ? def
                                                                              : LMP_PARAM_FROZEN;
}

static int calls_fwd, calls_bwd;
static void count_fwd(lmp_gpt2_adapter *a, const lmp_gpt2_linear *l, float *out, const float *inp, int N)
{
    (void)a, (void)l, (void)out, (void)inp, (void)N;
    calls_fwd++;
}
static const float *count_bwd(lmp_gpt2_adapter *a, const lmp_gpt2_linear *l, float *dinp,
                             const float *dout, const float *inp, int N)
{
    (void)l, (void)dinp, (void)inp, (void)N;
    calls_bwd++;
    *(int *)a->ctx += 1;
    return dout;
}
static const lmp_adapter_ops count_ops = { .kind = "count", .forward = count_fwd, .backward = count_bwd };

START_TEST(frozen_tensors_and_adapters)
{
    lmp_params_group g;
    lmp_gpt2 *m = trainable(&g, only_upper, NULL);
    ck_assert_int_eq(g.count, 28);
    ck_assert_ptr_null(lmp_params_find(&g, "wte.weight")->grad);
    ck_assert_ptr_null(lmp_params_find(&g, "h.1.mlp.c_fc.weight")->grad);
    ck_assert_uint_eq(g.n_trainable, 32 * 96 + 96 + 32 * 32 + 32 + 64);
    lm_backward(m);
    int checked;
    double e = grads_error(&g, "lm", &checked);
    ck_assert_int_eq(checked, 6);
    ck_assert_msg(e <= GRAD_TOL, "worst gradient error %.3g", e);

    /* an adapter on block 0's c_fc: the gradient now has to reach block 0,
     * and every adapter's backward runs once per backward */
    int hits[8] = { 0 };
    lmp_gpt2_adapter ad[8];
    for (int i = 0; i < m->n_linears; i++) {
        ad[i] = (lmp_gpt2_adapter){ .ops = &count_ops, .ctx = &hits[i] };
        m->linears[i].adapters = &ad[i];
    }
    lmp_params_zero_grads(&g);
    calls_fwd = calls_bwd = 0;
    lm_backward(m);
    ck_assert_int_eq(calls_fwd, 8);
    ck_assert_int_eq(calls_bwd, 8);
    for (int i = 0; i < 8; i++) ck_assert_int_eq(hits[i], 1);
    ck_assert_double_le(grads_error(&g, "lm", &checked), GRAD_TOL);
    /* only block 1's adapters: block 0 is skipped, its adapters never called */
    for (int i = 0; i < 4; i++) m->linears[i].adapters = NULL;
    calls_bwd = 0;
    lm_backward(m);
    ck_assert_int_eq(calls_bwd, 4);
    lmp_params_free(&g);
    lmp_gpt2_free(m);
}
END_TEST

/* Central differences of the mean LM loss, in float with a step big enough
 * that rounding (~1e-6 on the loss) stays well below the 0.5% allowed. */
START_TEST(finite_differences_end_to_end)
{
    lmp_params_group g;
    lmp_gpt2 *m = trainable(&g, NULL, NULL);
    lm_backward(m);
    const int *ids = ref_get("lm.ids", "I32", NULL), *targets = ref_get("lm.targets", "I32", NULL);
    const char *names[] = { "wte.weight", "wpe.weight", "h.0.ln_1.weight", "h.0.attn.c_attn.weight",
                            "h.0.attn.c_attn.bias", "h.1.attn.c_proj.weight", "h.1.ln_2.bias",
                            "h.1.mlp.c_fc.weight", "h.0.mlp.c_proj.weight", "ln_f.weight" };
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        lmp_param_tensor *t = lmp_params_find(&g, names[k]);
        size_t at = 0; /* the entry with the largest gradient */
        for (size_t j = 0; j < t->n; j++)
            if (fabsf(t->grad[j]) > fabsf(t->grad[at])) at = j;
        float w = t->data[at], h = 1e-2f, lp, lm;
        t->data[at] = w + h;
        ck_assert_int_eq(lmp_gpt2_loss(m, ids, targets, 3, 16, NULL, &lp), 0);
        t->data[at] = w - h;
        ck_assert_int_eq(lmp_gpt2_loss(m, ids, targets, 3, 16, NULL, &lm), 0);
        t->data[at] = w;
        double fd = ((double)lp - lm) / (2.0 * h), an = t->grad[at];
        ck_assert_msg(fabs(fd - an) <= 5e-3 * fabs(an) + 1e-4, "%s[%zu]: backward %.6g, finite difference %.6g",
                      names[k], at, an, fd);
    }
    lmp_params_free(&g);
    lmp_gpt2_free(m);
}
END_TEST

START_TEST(shapes_change_and_errors)
{
    lmp_params_group g;
    lmp_gpt2 *m = trainable(&g, NULL, NULL);
    int ids[40], targets[40];
    for (int i = 0; i < 40; i++) ids[i] = (i * 7) % 101, targets[i] = (i * 7 + 7) % 101;
    /* backward without a forward that kept activations */
    ck_assert_int_eq(lmp_gpt2_forward(m, ids, NULL, 2, 20, 0), 0);
    ck_assert_int_eq(lmp_gpt2_backward_lm(m, targets, NULL, NULL), -1);
    char *msg = lmp_strfmt("%s: backward needs a forward that kept its activations "
                           "(lmp_gpt2_forward with for_backward = 1)", m->source);
    ck_assert_str_eq(lmp_errmsg(), msg);
    free(msg);
    /* a bad target: an error, no gradient written */
    ck_assert_int_eq(lmp_gpt2_forward(m, ids, NULL, 2, 20, 1), 0);
    targets[5] = 101;
    ck_assert_int_eq(lmp_gpt2_backward_lm(m, targets, NULL, NULL), -1);
    ck_assert_str_eq(lmp_errmsg(), "target 101 at row 5 out of range [0, 101)");
    for (size_t i = 0; i < g.n_trainable; i++) ck_assert_float_eq(g.grad_mem[i], 0);
    targets[5] = 3;
    /* shapes (2,20) then (3,16): the reference still matches */
    float loss;
    ck_assert_int_eq(lmp_gpt2_backward_lm(m, targets, &loss, NULL), 0);
    ck_assert(isfinite(loss));
    lmp_params_zero_grads(&g);
    lm_backward(m);
    int checked;
    ck_assert_double_le(grads_error(&g, "lm", &checked), GRAD_TOL);
    lmp_params_free(&g);
    lmp_gpt2_free(m);

    /* read-only (mapped) weights cannot be trained; frozen ones can be registered */
    char *p = fixture("tiny-hf");
    ck_assert_int_eq(lmp_gpt2_load(p, &m), 0);
    lmp_params_init(&g);
    ck_assert_int_eq(lmp_gpt2_params_add(m, &g, NULL, NULL), -1);
    msg = lmp_strfmt("%s: cannot train \"wte.weight\": the parameters are read-only "
                           "(memory-mapped); call lmp_gpt2_own_params first", p);
    ck_assert_str_eq(lmp_errmsg(), msg);
    free(msg);
    lmp_params_free(&g);
    lmp_params_init(&g);
    ck_assert_int_eq(lmp_gpt2_backward_lm(m, targets, NULL, NULL), -1);
    msg = lmp_strfmt("%s: backward before lmp_gpt2_bind_grads", p);
    ck_assert_str_eq(lmp_errmsg(), msg);
    free(msg);
    ck_assert_int_eq(lmp_gpt2_bind_grads(m, &g), -1);
    msg = lmp_strfmt("%s: lmp_gpt2_bind_grads before lmp_params_alloc_grads", p);
    ck_assert_str_eq(lmp_errmsg(), msg);
    free(msg);
    lmp_params_free(&g);
    free(p);
    lmp_gpt2_free(m);
}
END_TEST

int main(void)
{
    char *p = fixture("grads.safetensors");
    if (lmp_st_open(p, &ref) != 0) {
        fprintf(stderr, "%s\n", lmp_errmsg());
        return 1;
    }
    free(p);
    Suite *s = suite_create("gpt2_backward");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, lm_grads_match_autograd);
    tcase_add_test(tc, hidden_grads_with_padding_match_autograd);
    tcase_add_test(tc, frozen_tensors_and_adapters);
    tcase_add_test(tc, finite_differences_end_to_end);
    tcase_add_test(tc, shapes_change_and_errors);
    suite_add_tcase(s, tc);
    int failed = test_run_suite(s, 1);
    lmp_st_close(ref);
    return failed ? 1 : 0;
}
