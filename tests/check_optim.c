/*
 * check_optim.c — AdamW/Adam against hand-computed values and against
 * torch.optim numbers (tests/fixtures/optim/torch_adam.txt, made by
 * make_fixture.py there), gradient clipping, learning-rate schedules,
 * parameter groups and their saved optimizer state, and the one optimizer
 * step (lmp_optim_step) every training loop takes.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "optim.h"
#include "testutil.h"

/* lmp_errmsg() must equal the formatted message. */
#define ASSERT_ERRF(...) do { \
        char want_[512]; \
        snprintf(want_, sizeof want_, __VA_ARGS__); \
        ck_assert_str_eq(lmp_errmsg(), want_); \
    } while (0)

START_TEST(adamw_by_hand)
{
    /* one weight, three steps; expected values from the AdamW formulas in
     * double (Python: p *= 1-lr*wd; m, v; p -= lr*mhat/(sqrt(vhat)+eps)) */
    float p = 1.0f, m = 0, v = 0;
    const float g[3] = { 0.5f, -0.25f, 0.125f };
    const double want_p[3] = { 0.899000002, 0.8714672987058463, 0.8365529176159483 };
    const double want_m[3] = { 0.05, 0.02, 0.0305 };
    const double want_v[3] = { 0.00025, 0.00031225, 0.00032756275 };
    for (int t = 1; t <= 3; t++) {
        lmp_adamw_update(&p, &g[t - 1], &m, &v, 1, 0.1, 0.9, 0.999, 1e-8, 0.01, t);
        ck_assert_double_eq_tol(p, want_p[t - 1], 1e-6);
        ck_assert_double_eq_tol(m, want_m[t - 1], 1e-8);
        ck_assert_double_eq_tol(v, want_v[t - 1], 1e-9);
    }
    /* the first step of Adam moves every weight by ~lr regardless of |g| */
    float q[2] = { 0, 0 }, gq[2] = { 1e-3f, -50.0f }, mq[2] = { 0 }, vq[2] = { 0 };
    lmp_adamw_update(q, gq, mq, vq, 2, 0.01f, 0.9f, 0.999f, 1e-8f, 0.0f, 1);
    ck_assert_float_eq_tol(q[0], -0.01f, 1e-6);
    ck_assert_float_eq_tol(q[1], 0.01f, 1e-6);
}
END_TEST

/* Reads the next n floats from *s. */
static void read_floats(char **s, float *out, int n)
{
    for (int i = 0; i < n; i++) {
        char *end;
        out[i] = strtof(*s, &end);
        ck_assert_msg(end != *s, "fixture: expected a number");
        *s = end;
    }
}

START_TEST(adam_vs_torch)
{
    const char *top = getenv("top_srcdir");
    char *path = lmp_strfmt("%s/tests/fixtures/optim/torch_adam.txt", top ? top : ".");
    char *text;
    size_t len;
    ck_assert_msg(lmp_read_file(path, 0, &text, &len) == 0, "%s", lmp_errmsg());
    char *s = strchr(text, '\n') + 1; /* skip the comment line */
    int cases = 0;
    while (*s) {
        char name[32];
        double lr, b1, b2, eps, wd;
        int steps, n, used;
        ck_assert_int_eq(sscanf(s, "%31s %lf %lf %lf %lf %lf %d %d%n", name, &lr, &b1, &b2, &eps, &wd,
                                &steps, &n, &used), 8);
        s += used;
        float *p = calloc(n, sizeof(float)), *g = calloc((size_t)n * steps, sizeof(float));
        float *want = calloc((size_t)n * steps, sizeof(float));
        float *m = calloc(n, sizeof(float)), *v = calloc(n, sizeof(float));
        read_floats(&s, p, n);
        read_floats(&s, g, n * steps);
        read_floats(&s, want, n * steps);
        int l2 = strncmp(name, "adam_", 5) == 0;
        for (int t = 1; t <= steps; t++) {
            if (l2)
                lmp_adam_update(p, g + (t - 1) * n, m, v, n, lr, b1, b2, eps, wd, t);
            else
                lmp_adamw_update(p, g + (t - 1) * n, m, v, n, lr, b1, b2, eps, wd, t);
            for (int i = 0; i < n; i++) {
                float w = want[(t - 1) * n + i];
                ck_assert_msg(fabsf(p[i] - w) <= 1e-7f * fmaxf(1, fabsf(w)),
                              "%s step %d param %d: %.9g vs torch %.9g", name, t, i, p[i], w);
            }
        }
        free(p); free(g); free(want); free(m); free(v);
        cases++;
        while (*s == '\n' || *s == ' ') s++;
    }
    ck_assert_int_eq(cases, 3);
    free(text);
    free(path);
}
END_TEST

START_TEST(clipping)
{
    float a[2] = { 3, 4 }, b[1] = { 12 };
    float *gs[3] = { a, NULL, b };
    size_t ns[3] = { 2, 99, 1 };
    ck_assert_float_eq_tol(lmp_clip_grad_norm(gs, ns, 3, 20.0f), 13.0f, 1e-6); /* under: unchanged */
    ck_assert_float_eq(a[0], 3);
    ck_assert_float_eq_tol(lmp_clip_grad_norm(gs, ns, 3, 0.0f), 13.0f, 1e-6); /* 0: no clipping */
    ck_assert_float_eq(b[0], 12);
    ck_assert_float_eq_tol(lmp_clip_grad_norm(gs, ns, 3, 6.5f), 13.0f, 1e-6);
    double c = 6.5 / (13 + 1e-6);
    ck_assert_float_eq_tol(a[0], 3 * c, 1e-6);
    ck_assert_float_eq_tol(a[1], 4 * c, 1e-6);
    ck_assert_float_eq_tol(b[0], 12 * c, 1e-6);
    ck_assert_float_eq_tol(lmp_clip_grad_norm(gs, ns, 3, 100.0f), 6.5f, 1e-5);
    /* a non-finite norm is reported and nothing is scaled */
    b[0] = INFINITY;
    ck_assert(isinf(lmp_clip_grad_norm(gs, ns, 3, 1.0f)));
    ck_assert_float_eq_tol(a[0], 3 * c, 1e-6);
    b[0] = NAN;
    ck_assert(isnan(lmp_clip_grad_norm(gs, ns, 3, 1.0f)));
    ck_assert_float_eq_tol(a[0], 3 * c, 1e-6);
}
END_TEST

START_TEST(schedules)
{
    const float base = 1e-3f, lo = 1e-4f;
    /* warmup (all kinds): (step+1)/warmup */
    for (int k = 0; k < 3; k++) {
        ck_assert_float_eq_tol(lmp_lr_schedule(k, 0, 100, 10, base, lo), 1e-4f, 1e-10);
        ck_assert_float_eq_tol(lmp_lr_schedule(k, 4, 100, 10, base, lo), 5e-4f, 1e-10);
        ck_assert_float_eq_tol(lmp_lr_schedule(k, 9, 100, 10, base, lo), 1e-3f, 1e-10);
        ck_assert_float_eq_tol(lmp_lr_schedule(k, 10, 100, 10, base, lo), 1e-3f, 1e-10);
    }
    /* halfway through the decay */
    ck_assert_float_eq_tol(lmp_lr_schedule(LMP_LR_COSINE, 55, 100, 10, base, lo), 5.5e-4f, 1e-10);
    ck_assert_float_eq_tol(lmp_lr_schedule(LMP_LR_LINEAR, 55, 100, 10, base, lo), 5.5e-4f, 1e-10);
    ck_assert_float_eq_tol(lmp_lr_schedule(LMP_LR_CONSTANT, 55, 100, 10, base, lo), 1e-3f, 1e-10);
    /* a quarter: cosine is above linear */
    ck_assert_float_eq_tol(lmp_lr_schedule(LMP_LR_COSINE, 10 + 90 / 4, 100, 10, base, lo),
                           lo + 0.5 * (1 + cos(M_PI * 22 / 90.0)) * (base - lo), 1e-10);
    ck_assert_float_eq_tol(lmp_lr_schedule(LMP_LR_LINEAR, 10 + 90 / 4, 100, 10, base, lo),
                           base + 22 / 90.0 * (lo - base), 1e-10);
    /* the end and beyond */
    ck_assert_float_eq_tol(lmp_lr_schedule(LMP_LR_COSINE, 99, 100, 10, base, lo),
                           lo + 0.5 * (1 + cos(M_PI * 89 / 90.0)) * (base - lo), 1e-10);
    ck_assert_float_eq(lmp_lr_schedule(LMP_LR_COSINE, 100, 100, 10, base, lo), lo);
    ck_assert_float_eq(lmp_lr_schedule(LMP_LR_LINEAR, 150, 100, 10, base, lo), lo);
    ck_assert_float_eq(lmp_lr_schedule(LMP_LR_CONSTANT, 150, 100, 10, base, lo), base);
    /* no warmup: step 0 is base_lr */
    ck_assert_float_eq(lmp_lr_schedule(LMP_LR_COSINE, 0, 100, 0, base, 0), base);
    ck_assert_float_eq_tol(lmp_lr_schedule(LMP_LR_LINEAR, 50, 100, 0, base, 0), 5e-4f, 1e-10);

    lmp_lr_kind k;
    ck_assert_int_eq(lmp_lr_schedule_parse("cosine", &k), 0);
    ck_assert_int_eq(k, LMP_LR_COSINE);
    ck_assert_int_eq(lmp_lr_schedule_parse("linear", &k), 0);
    ck_assert_int_eq(k, LMP_LR_LINEAR);
    ck_assert_str_eq(lmp_lr_schedule_name(LMP_LR_CONSTANT), "constant");
    ck_assert_int_eq(lmp_lr_schedule_parse("cos", &k), -1);
    ck_assert_str_eq(lmp_errmsg(),
                     "unknown learning-rate schedule 'cos' (expected constant, cosine or linear)");
}
END_TEST

/* A small "model": a weight, a bias (no decay) and a frozen tensor. */
typedef struct { float w[6], b[3], frozen[4]; } toy;

static void toy_init(toy *t)
{
    for (int i = 0; i < 6; i++) t->w[i] = 0.1f * (i + 1);
    for (int i = 0; i < 3; i++) t->b[i] = -0.2f * i;
    for (int i = 0; i < 4; i++) t->frozen[i] = 7;
}

static void toy_group(lmp_params_group *g, toy *t)
{
    lmp_params_init(g);
    ck_assert_int_eq(lmp_params_add(g, "w", t->w, 6, LMP_PARAM_TRAIN), 0);
    ck_assert_int_eq(lmp_params_add(g, "base", t->frozen, 4, LMP_PARAM_FROZEN), 0);
    ck_assert_int_eq(lmp_params_add(g, "b", t->b, 3, LMP_PARAM_TRAIN | LMP_PARAM_NO_DECAY), 0);
    lmp_params_alloc_grads(g);
}

static void toy_grads(lmp_params_group *g, int step)
{
    lmp_params_zero_grads(g);
    for (int i = 0; i < 6; i++) lmp_params_find(g, "w")->grad[i] = 0.3f * sinf(i + step);
    for (int i = 0; i < 3; i++) lmp_params_find(g, "b")->grad[i] = 0.2f * cosf(i * step);
}

START_TEST(param_group)
{
    toy t;
    toy_init(&t);
    lmp_params_group g;
    lmp_params_init(&g);
    ck_assert_int_eq(lmp_params_add(&g, "w", t.w, 6, LMP_PARAM_TRAIN), 0);
    ck_assert_int_eq(lmp_params_add(&g, "w", t.w, 6, LMP_PARAM_TRAIN), -1);
    ck_assert_str_eq(lmp_errmsg(), "parameter 'w' added twice");
    ck_assert_int_eq(lmp_params_add(&g, "", t.w, 6, LMP_PARAM_TRAIN), -1);
    ck_assert_str_eq(lmp_errmsg(), "parameter with an empty name");
    ck_assert_int_eq(lmp_params_add(&g, "z", t.w, 0, LMP_PARAM_TRAIN), -1);
    ck_assert_str_eq(lmp_errmsg(), "parameter 'z' has no elements");
    ck_assert_int_eq(lmp_params_add(&g, "z", NULL, 3, LMP_PARAM_TRAIN), -1);
    ck_assert_str_eq(lmp_errmsg(), "parameter 'z' has no data");
    ck_assert_int_eq(lmp_params_add(&g, "z", t.w, 3, 8), -1);
    ck_assert_str_eq(lmp_errmsg(), "parameter 'z': unknown flags 0x8");
    lmp_params_free(&g);

    toy_group(&g, &t);
    ck_assert_int_eq(lmp_params_add(&g, "late", t.w, 1, LMP_PARAM_TRAIN), -1);
    ck_assert_str_eq(lmp_errmsg(), "parameter 'late' added after lmp_params_alloc_grads");
    ck_assert_uint_eq(lmp_params_numel(&g, 0), 13);
    ck_assert_uint_eq(lmp_params_numel(&g, 1), 9);
    ck_assert_uint_eq(g.n_trainable, 9); /* the frozen tensor gets no grad/m/v memory */
    lmp_param_tensor *fr = lmp_params_find(&g, "base");
    ck_assert_ptr_null(fr->grad);
    ck_assert_ptr_null(fr->m);
    ck_assert_ptr_null(lmp_params_find(&g, "nope"));

    /* the group step equals lmp_adamw_update per tensor, decay only on w */
    float w[6], b[3], mw[6] = { 0 }, vw[6] = { 0 }, mb[3] = { 0 }, vb[3] = { 0 };
    memcpy(w, t.w, sizeof w);
    memcpy(b, t.b, sizeof b);
    for (int s = 1; s <= 3; s++) {
        toy_grads(&g, s);
        lmp_adamw_update(w, lmp_params_find(&g, "w")->grad, mw, vw, 6, 0.01, 0.9, 0.95, 1e-8, 0.1, s);
        lmp_adamw_update(b, lmp_params_find(&g, "b")->grad, mb, vb, 3, 0.01, 0.9, 0.95, 1e-8, 0.0, s);
        lmp_params_adamw_step(&g, 0.01, 0.9, 0.95, 1e-8, 0.1);
    }
    ck_assert_int_eq(g.step, 3);
    ck_assert_int_eq(memcmp(w, t.w, sizeof w), 0);
    ck_assert_int_eq(memcmp(b, t.b, sizeof b), 0);
    for (int i = 0; i < 4; i++) ck_assert_float_eq(t.frozen[i], 7);

    /* clipping covers all trainable grads */
    toy_grads(&g, 1);
    double ss = 0;
    for (int i = 0; i < 6; i++) ss += pow(lmp_params_find(&g, "w")->grad[i], 2);
    for (int i = 0; i < 3; i++) ss += pow(lmp_params_find(&g, "b")->grad[i], 2);
    ck_assert_float_eq_tol(lmp_params_clip_grad_norm(&g, 0.1f), sqrt(ss), 1e-6);
    ck_assert_float_eq_tol(lmp_params_clip_grad_norm(&g, 0.0f), 0.1f, 1e-6);
    lmp_params_zero_grads(&g);
    ck_assert_float_eq(lmp_params_clip_grad_norm(&g, 1.0f), 0);
    lmp_params_free(&g);
}
END_TEST

START_TEST(optimizer_state)
{
    toy t1, t2;
    toy_init(&t1);
    lmp_params_group g1, g2;
    toy_group(&g1, &t1);
    for (int s = 1; s <= 2; s++) {
        toy_grads(&g1, s);
        lmp_params_adamw_step(&g1, 0.01, 0.9, 0.95, 1e-8, 0.1);
    }
    char dir[] = "/tmp/lmp_optimXXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char *path = lmp_strfmt("%s/opt.bin", dir);
    ck_assert_int_eq(lmp_params_state_save(&g1, path), 0);

    /* resume: same weights, loaded moments and step -> identical next step */
    t2 = t1;
    toy_group(&g2, &t2);
    ck_assert_int_eq(lmp_params_state_load(&g2, path), 0);
    ck_assert_int_eq(g2.step, 2);
    toy_grads(&g1, 3);
    toy_grads(&g2, 3);
    lmp_params_adamw_step(&g1, 0.01, 0.9, 0.95, 1e-8, 0.1);
    lmp_params_adamw_step(&g2, 0.01, 0.9, 0.95, 1e-8, 0.1);
    ck_assert_int_eq(memcmp(&t1, &t2, sizeof t1), 0);

    /* bad states fail with a message and leave the group as it was */
    size_t len;
    unsigned char *buf = lmp_params_state_serialize(&g1, &len);
    ck_assert_uint_eq(len, 8 + 8 + 4 + (4 + 1 + 8 + 2 * 6 * 4) + (4 + 1 + 8 + 2 * 3 * 4));
    float m0 = g2.t[0].m[0];
    int step0 = g2.step;
    ck_assert_int_eq(lmp_params_state_deserialize(&g2, buf, len - 1, "ck.bin"), -1);
    ck_assert_str_eq(lmp_errmsg(), "ck.bin: optimizer state truncated at byte 106");
    ck_assert_float_eq(g2.t[0].m[0], m0);
    ck_assert_int_eq(g2.step, step0);
    unsigned char *big = malloc(len + 3);
    memcpy(big, buf, len);
    ck_assert_int_eq(lmp_params_state_deserialize(&g2, big, len + 3, "ck.bin"), -1);
    ck_assert_str_eq(lmp_errmsg(), "ck.bin: 3 trailing bytes after optimizer state");
    buf[0] = 'X';
    ck_assert_int_eq(lmp_params_state_deserialize(&g2, buf, len, "ck.bin"), -1);
    ck_assert_str_eq(lmp_errmsg(), "ck.bin: not an lmpipe optimizer state (bad magic)");
    buf[0] = 'L';
    buf[24] = 'q'; /* first tensor's name "w" -> "q" */
    ck_assert_int_eq(lmp_params_state_deserialize(&g2, buf, len, "ck.bin"), -1);
    ck_assert_str_eq(lmp_errmsg(), "ck.bin: optimizer state tensor 'q' does not match parameter 'w'");
    ck_assert_float_eq(g2.t[0].m[0], m0);
    free(buf);

    /* a group with another shape */
    lmp_params_group g3;
    float w7[7] = { 0 }, b3[3] = { 0 };
    lmp_params_init(&g3);
    lmp_params_add(&g3, "w", w7, 7, LMP_PARAM_TRAIN);
    ck_assert_int_eq(lmp_params_state_load(&g3, path), -1);
    ASSERT_ERRF("%s: optimizer state loaded before lmp_params_alloc_grads", path);
    lmp_params_add(&g3, "b", b3, 3, LMP_PARAM_TRAIN);
    lmp_params_alloc_grads(&g3);
    ck_assert_int_eq(lmp_params_state_load(&g3, path), -1);
    ASSERT_ERRF("%s: optimizer state tensor 'w' has 6 elements, expected 7", path);
    lmp_params_free(&g3);
    lmp_params_init(&g3);
    lmp_params_add(&g3, "w", w7, 6, LMP_PARAM_TRAIN);
    lmp_params_alloc_grads(&g3);
    ck_assert_int_eq(lmp_params_state_load(&g3, path), -1);
    ASSERT_ERRF("%s: optimizer state has 2 tensors, the model has 1 trainable", path);
    lmp_params_free(&g3);

    char *missing = lmp_strfmt("%s/none.bin", dir);
    ck_assert_int_eq(lmp_params_state_load(&g2, missing), -1);
    ASSERT_ERRF("%s: No such file or directory", missing);

    unlink(path);
    rmdir(dir);
    free(path);
    free(missing);
    free(big);
    lmp_params_free(&g1);
    lmp_params_free(&g2);
}
END_TEST

/* ------------------------------------------------------------ lmp_optim_step */

/* Two trainable tensors (the second without decay) with set data and grads. */
static void step_group(lmp_params_group *g, float *w, float *b)
{
    for (int i = 0; i < 6; i++) w[i] = 0.1f * (float)(i - 2);
    for (int i = 0; i < 3; i++) b[i] = 0.05f * (float)i;
    lmp_params_init(g);
    ck_assert_int_eq(lmp_params_add(g, "w", w, 6, LMP_PARAM_TRAIN), 0);
    ck_assert_int_eq(lmp_params_add(g, "b", b, 3, LMP_PARAM_TRAIN | LMP_PARAM_NO_DECAY), 0);
    lmp_params_alloc_grads(g);
    for (size_t i = 0; i < g->n_trainable; i++) g->grad_mem[i] = 0.7f * (float)i - 2.0f;
}

static void step_opts(lmp_optim_opts *o)
{
    lmp_optim_opts_default(o);
    o->lr = 3e-2;
    o->min_lr = 1e-3;
    o->schedule = LMP_LR_LINEAR;
    o->warmup_steps = 2;
    o->weight_decay = 0.1;
    o->beta2 = 0.95;
    o->clip = 0.5;
}

/* The step is clip -> schedule -> AdamW (or Adam), bit for bit, whichever
 * of them the parts would give. */
START_TEST(optim_step_is_its_parts)
{
    for (int adamw = 0; adamw < 2; adamw++) {
        float w1[6], b1[3], w2[6], b2[3];
        lmp_params_group g1, g2;
        step_group(&g1, w1, b1);
        step_group(&g2, w2, b2);
        lmp_optim_opts o;
        step_opts(&o);
        o.adamw = adamw;
        for (int step = 0; step < 5; step++) {
            for (size_t i = 0; i < g1.n_trainable; i++)
                g1.grad_mem[i] = g2.grad_mem[i] = 0.3f * (float)(i + step) - 1.0f;
            double loss = 1.25;
            lmp_optim_info info;
            ck_assert_int_eq(lmp_optim_step(&g1, &o, step, 10, &loss, 0, &info), 0);
            ck_assert(loss == 1.25); /* one rank: as given */
            float norm = lmp_params_clip_grad_norm(&g2, 0.5f);
            float lr = lmp_lr_schedule(LMP_LR_LINEAR, step, 10, 2, 3e-2f, 1e-3f);
            if (adamw) lmp_params_adamw_step(&g2, lr, 0.9, 0.95, 1e-8, 0.1);
            else lmp_params_adam_step(&g2, lr, 0.9, 0.95, 1e-8, 0.1);
            ck_assert(info.grad_norm == norm);
            ck_assert(info.lr == lr);
            ck_assert_int_eq(info.nonfinite, 0);
            ck_assert_int_eq(info.stop, 0);
            ck_assert_int_eq(memcmp(w1, w2, sizeof w1), 0);
            ck_assert_int_eq(memcmp(b1, b2, sizeof b1), 0);
            ck_assert_int_eq(memcmp(g1.m_mem, g2.m_mem, g1.n_trainable * sizeof(float)), 0);
        }
        ck_assert_int_eq(g1.step, 5);
        lmp_params_free(&g1);
        lmp_params_free(&g2);
    }
}
END_TEST

/* A NaN/Inf loss or gradient norm: on_nonfinite=stop fails naming what went
 * bad, skip returns 0; neither changes the weights, the moments or the count. */
START_TEST(optim_step_nonfinite)
{
    float w[6], b[3], w0[6];
    lmp_params_group g;
    step_group(&g, w, b);
    memcpy(w0, w, sizeof w);
    lmp_optim_opts o;
    step_opts(&o);
    lmp_optim_info info;
    double loss = NAN;
    ck_assert_int_eq(lmp_optim_step(&g, &o, 0, 10, &loss, 0, &info), -1);
    ck_assert_str_eq(lmp_errmsg(), "the loss is NaN; stopping (on_nonfinite=skip skips such steps)");
    ck_assert_int_eq(info.nonfinite, 1);
    loss = -INFINITY;
    ck_assert_int_eq(lmp_optim_step(&g, &o, 0, 10, &loss, 0, &info), -1);
    ck_assert_str_eq(lmp_errmsg(), "the loss is infinite; stopping (on_nonfinite=skip skips such steps)");
    loss = 1;
    g.grad_mem[4] = INFINITY;
    ck_assert_int_eq(lmp_optim_step(&g, &o, 0, 10, &loss, 0, &info), -1);
    ck_assert_str_eq(lmp_errmsg(), "the gradient norm is infinite; stopping (on_nonfinite=skip skips such steps)");
    g.grad_mem[4] = NAN;
    ck_assert_int_eq(lmp_optim_step(&g, &o, 0, 10, &loss, 0, &info), -1);
    ck_assert_str_eq(lmp_errmsg(), "the gradient norm is NaN; stopping (on_nonfinite=skip skips such steps)");
    ck_assert(isnan(info.grad_norm));
    o.skip_nonfinite = 1;
    ck_assert_int_eq(lmp_optim_step(&g, &o, 0, 10, &loss, 0, &info), 0);
    ck_assert_int_eq(info.nonfinite, 1);
    ck_assert_int_eq(g.step, 0);
    ck_assert_int_eq(memcmp(w, w0, sizeof w), 0);
    for (size_t i = 0; i < g.n_trainable; i++) ck_assert(g.m_mem[i] == 0 && g.v_mem[i] == 0);
    /* the next finite step is AdamW's first */
    g.grad_mem[4] = 1;
    ck_assert_int_eq(lmp_optim_step(&g, &o, 1, 10, &loss, 0, &info), 0);
    ck_assert_int_eq(info.nonfinite, 0);
    ck_assert_int_eq(g.step, 1);
    lmp_params_free(&g);
}
END_TEST

/* warmup (a fraction of the run) and warmup_steps (a count): a count wins
 * when >= 0; pretrain's deprecated step-count warmup=N maps to
 * warmup_steps=N and gives its old schedule exactly. */
START_TEST(optim_warmup_fraction_or_steps)
{
    lmp_optim_opts o;
    lmp_optim_opts_default(&o);
    ck_assert_int_eq(lmp_optim_warmup_steps(&o, 1000), 0);
    o.warmup = 0.06;
    o.warmup_steps = -1;
    ck_assert_int_eq(lmp_optim_warmup_steps(&o, 1000), 60);
    ck_assert_int_eq(lmp_optim_warmup_steps(&o, 25), 1); /* (int)(0.06 * 25) */
    o.warmup_steps = 100;
    ck_assert_int_eq(lmp_optim_warmup_steps(&o, 1000), 100);
    /* old pretrain: warmup=5 steps, cosine from lr down to lr * 0.1 */
    float w[6], b[3];
    lmp_params_group g;
    step_group(&g, w, b);
    lmp_optim_opts_default(&o);
    o.schedule = LMP_LR_COSINE;
    o.lr = 3e-3;
    o.min_lr = o.lr * 0.1;
    o.warmup_steps = 5;
    for (int step = 0; step < 30; step++) {
        double loss = 1;
        lmp_optim_info info;
        ck_assert_int_eq(lmp_optim_step(&g, &o, step, 30, &loss, 0, &info), 0);
        ck_assert(info.lr == lmp_lr_schedule(LMP_LR_COSINE, step, 30, 5, 3e-3f, (float)(3e-3 * 0.1)));
    }
    lmp_params_free(&g);
}
END_TEST

static Suite *optim_suite(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");
    tcase_add_test(tc, adamw_by_hand);
    tcase_add_test(tc, adam_vs_torch);
    tcase_add_test(tc, clipping);
    tcase_add_test(tc, schedules);
    tcase_add_test(tc, param_group);
    tcase_add_test(tc, optimizer_state);
    tcase_add_test(tc, optim_step_is_its_parts);
    tcase_add_test(tc, optim_step_nonfinite);
    tcase_add_test(tc, optim_warmup_fraction_or_steps);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int failed = test_run_suite(optim_suite(), 0);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
