/*
 * check_rnn.c — the RNN classifier (core/kit/rnn.h) and the distillation loss
 * (lmp_nn_kd_loss_forward_backward in core/nn/nn.h).
 *
 * The RNN's forward/backward source (core/nn/rnn_impl.h) and the nn kernels are
 * compiled here a second time in double precision (names with _f64):
 *   - every gradient of every cell (elman, gru, lstm), one-layer and
 *     two-layer bidirectional, each pooling, with and without dropout,
 *     against central finite differences;
 *   - against PyTorch's nn.RNN / nn.GRU / nn.LSTM on a padded, packed batch
 *     (tests/fixtures/rnn/expected.safetensors): the double code to ~1e-9,
 *     the float classifier (through the classifier interface) to 1e-3 on the
 *     logits and every parameter gradient, as the issue asks;
 *   - padding: a padded batch gives each row's result alone (logits and,
 *     summed, gradients), whatever the padded ids are;
 *   - save / load through the kind registry, and the error messages.
 * The distillation loss: known values, finite differences in double, the
 * float kernel against the double one, logits so far apart that a
 * probability underflows (the loss stays finite: log-softmax, not log of a
 * softmax), and its errors.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "classifier.h"
#include "nn.h"
#include "optim.h"
#include "rnn.h"
#include "rnn_act.h"
#include "safetensors.h"

#define NN_REAL double
#define NN_FN(name) name##_f64
#define NN_GEMM cblas_dgemm
#define NN_GEMV cblas_dgemv
#include "nn_impl.h"
#define RNN_FN(name) name##_f64
#define RNN_GEMM cblas_dgemm
#include "rnn_impl.h"
#include "testutil.h"

#define RNN_MAX_T (3 + 8 * RNN_MAX_LAYERS)
/* Double backward vs central differences (h = 1e-5), per element with a floor
 * of 1e-3 of the tensor's largest entry.  The differences carry an absolute
 * noise of about eps |L| / h ~ 1e-11, and gradients through several steps
 * and layers span four decades, so the smallest counted entries (~1e-5) see
 * ~2e-6 of noise; a wrong term shows up at 1e-3 or more. */
#define FD_TOL 1e-5
#define TORCH_D_TOL 1e-9 /* double code vs PyTorch in float64 */
#define TORCH_F_TOL 1e-3 /* float classifier vs PyTorch (the bound) */

static lmp_rng rng;


static double rel_err_fd(const float *a, const double *b, size_t n)
{
    double *x = mallocCheck(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = a[i];
    double e = test_rel_err(x, b, n);
    free(x);
    return e;
}

/* ------------------------------------------------------------ a model in double */

typedef struct {
    lmp_rnn_config c;
    int nt;
    double *t[RNN_MAX_T], *g[RNN_MAX_T];
    size_t n[RNN_MAX_T];
    rnn_work_f64 w;
    lmp_rng rng;
} dmodel;

static void dm_init(dmodel *m, const lmp_rnn_config *c)
{
    memset(m, 0, sizeof *m);
    m->c = *c;
    ck_assert_int_eq(lmp_rnn_config_check(c), 0);
    m->nt = lmp_rnn_num_tensors(c);
    for (int i = 0; i < m->nt; i++) {
        char name[64];
        int64_t shape[2];
        int nd;
        m->n[i] = lmp_rnn_tensor_info(c, i, name, sizeof name, shape, &nd);
        m->t[i] = mallocCheck(m->n[i] * sizeof(double));
        m->g[i] = callocCheck(m->n[i], sizeof(double));
        for (size_t k = 0; k < m->n[i]; k++) m->t[i][k] = 2 * lmp_rng_uniform(&rng) - 1;
    }
}

static void dm_free(dmodel *m)
{
    for (int i = 0; i < m->nt; i++) free(m->t[i]), free(m->g[i]);
    rnn_work_free_f64(&m->w);
}

/* sum(logits * G), dropout masks drawn afresh from the same seed every call */
static double dm_loss(dmodel *m, const int *ids, const int *len, int B, int T, const double *G, int train,
                      double *logits)
{
    lmp_rng_seed(&m->rng, 77);
    ck_assert_msg(rnn_forward_f64(&m->w, &m->c, m->t, ids, len, B, T, logits, train, &m->rng) == 0, "%s",
                  lmp_errmsg());
    double s = 0;
    for (int i = 0; i < B * m->c.num_labels; i++) s += logits[i] * G[i];
    return s;
}

/* ------------------------------------------------------------ finite differences */

static const int fd_len[4] = {6, 2, 4, 4};
enum { FD_B = 4, FD_T = 6 };

static void fd_case(int cell, int layers, int bidir, int pooling, float dropout)
{
    lmp_rnn_config c = {.cell = cell, .vocab = 7, .embed = 4, .hidden = 3, .layers = layers,
                        .bidirectional = bidir, .pooling = pooling, .num_labels = 2, .dropout = dropout};
    dmodel m;
    dm_init(&m, &c);
    int ids[FD_B * FD_T];
    for (int i = 0; i < FD_B * FD_T; i++) ids[i] = (int)(lmp_rng_u64(&rng) % 7);
    double G[FD_B * 2], logits[FD_B * 2];
    for (int i = 0; i < FD_B * 2; i++) G[i] = 2 * lmp_rng_uniform(&rng) - 1;
    dm_loss(&m, ids, fd_len, FD_B, FD_T, G, 1, logits);
    rnn_backward_f64(&m.w, &m.c, m.t, m.g, G);
    const double h = 1e-5;
    for (int i = 0; i < m.nt; i++) {
        double *num = mallocCheck(m.n[i] * sizeof *num);
        for (size_t k = 0; k < m.n[i]; k++) {
            double old = m.t[i][k];
            m.t[i][k] = old + h;
            double lp = dm_loss(&m, ids, fd_len, FD_B, FD_T, G, 1, logits);
            m.t[i][k] = old - h;
            double lm = dm_loss(&m, ids, fd_len, FD_B, FD_T, G, 1, logits);
            m.t[i][k] = old;
            num[k] = (lp - lm) / (2 * h);
        }
        char name[64];
        int64_t shape[2];
        int nd;
        lmp_rnn_tensor_info(&c, i, name, sizeof name, shape, &nd);
        /* embedding rows of unused ids are 0 on both sides; every other tensor must have a gradient */
        ck_assert_msg(test_maxabs(num, m.n[i]) > 1e-8, "%s %s: finite differences all zero", lmp_rnn_cell_name(cell), name);
        double e = test_rel_err(m.g[i], num, m.n[i]);
        if (getenv("FD_DEBUG") && e > 1e-7)
            for (size_t k = 0; k < m.n[i]; k++) fprintf(stderr, "%s[%zu] %.12g %.12g\n", name, k, m.g[i][k], num[k]);
        ck_assert_msg(e <= FD_TOL, "%s layers=%d bidir=%d %s dropout=%g: %s: finite-difference relative error %g",
                      lmp_rnn_cell_name(cell), layers, bidir, lmp_rnn_pooling_name(pooling), dropout, name, e);
        free(num);
    }
    dm_free(&m);
}

START_TEST(fd_all_cells)
{
    lmp_rng_seed(&rng, 1000 + _i);
    int cell = _i / 6, shape = (_i / 3) % 2, pooling = _i % 3;
    fd_case(cell, shape ? 2 : 1, shape, pooling, 0);
    /* dropout between the layers and before the head, same masks each call */
    if (shape) fd_case(cell, 2, 1, pooling, 0.3f);
}
END_TEST

/* the check can fail: a wrong gradient is caught */
START_TEST(fd_detects_wrong_gradient)
{
    lmp_rng_seed(&rng, 5);
    lmp_rnn_config c = {.cell = LMP_RNN_GRU, .vocab = 7, .embed = 4, .hidden = 3, .layers = 1, .num_labels = 2};
    dmodel m;
    dm_init(&m, &c);
    int ids[FD_B * FD_T] = {0};
    double G[FD_B * 2] = {1, -1, 0.5, 2, -1, 1, 0.25, -0.5}, logits[FD_B * 2];
    dm_loss(&m, ids, fd_len, FD_B, FD_T, G, 1, logits);
    rnn_backward_f64(&m.w, &m.c, m.t, m.g, G);
    int i = 2; /* rnn.weight_hh_l0 */
    double old = m.t[i][4], h = 1e-5;
    m.t[i][4] = old + h;
    double lp = dm_loss(&m, ids, fd_len, FD_B, FD_T, G, 1, logits);
    m.t[i][4] = old - h;
    double lm = dm_loss(&m, ids, fd_len, FD_B, FD_T, G, 1, logits);
    double num = (lp - lm) / (2 * h);
    ck_assert_double_le(fabs(num - m.g[i][4]), 1e-8 * (1 + fabs(num)));
    ck_assert_double_gt(fabs(num - 1.01 * m.g[i][4]), 1e-6 * fabs(num)); /* 1% off is seen */
    dm_free(&m);
}
END_TEST

/* ------------------------------------------------------------ PyTorch fixtures */

static lmp_st *fx;

static void fx_open(void)
{
    const char *top = getenv("top_srcdir");
    char *p = lmp_strfmt("%s/tests/fixtures/rnn/expected.safetensors", top ? top : ".");
    ck_assert_msg(lmp_st_open(p, &fx) == 0, "%s", lmp_errmsg());
    free(p);
}

static const void *fx_get(const char *name, const char *dtype, int64_t *shape)
{
    const void *d;
    int64_t sh[LMP_ST_MAX_DIMS];
    int nd;
    ck_assert_msg(lmp_st_get(fx, name, dtype, &d, sh, &nd) == 0, "%s", lmp_errmsg());
    if (shape) shape[0] = sh[0], shape[1] = nd > 1 ? sh[1] : 1;
    return d;
}

/* The configuration of fixture case k. */
static lmp_rnn_config fx_config(int k)
{
    char key[64], cell[16], pool[16];
    snprintf(key, sizeof key, "c%d", k);
    const char *meta = lmp_st_metadata(fx, key);
    ck_assert_ptr_nonnull(meta);
    lmp_rnn_config c = {0};
    ck_assert_int_eq(sscanf(meta, "%15s %d %d %15s", cell, &c.layers, &c.bidirectional, pool), 4);
    ck_assert_int_eq(lmp_rnn_cell_parse(cell, &c.cell), 0);
    ck_assert_int_eq(lmp_rnn_pooling_parse(pool, &c.pooling), 0);
    int64_t sh[2];
    snprintf(key, sizeof key, "c%d.embedding.weight", k);
    fx_get(key, "F32", sh);
    c.vocab = (int)sh[0], c.embed = (int)sh[1];
    snprintf(key, sizeof key, "c%d.head.bias", k);
    fx_get(key, "F32", sh);
    c.num_labels = (int)sh[0];
    snprintf(key, sizeof key, "c%d.rnn.weight_hh_l0", k);
    fx_get(key, "F32", sh);
    c.hidden = (int)sh[1];
    return c;
}

static int fx_cases(void)
{
    const char *n = lmp_st_metadata(fx, "cases");
    ck_assert_ptr_nonnull(n);
    return atoi(n);
}

START_TEST(torch_double)
{
    fx_open();
    int64_t sh[2];
    const int *ids = fx_get("ids", "I32", sh), *len = fx_get("len", "I32", NULL);
    int B = (int)sh[0], T = (int)sh[1];
    const double *G = fx_get("G", "F64", NULL);
    int ncases = fx_cases();
    ck_assert_int_eq(ncases, 18);
    for (int k = 0; k < ncases; k++) {
        lmp_rnn_config c = fx_config(k);
        dmodel m;
        dm_init(&m, &c);
        for (int i = 0; i < m.nt; i++) {
            char name[64], key[96];
            int64_t shape[2];
            int nd;
            lmp_rnn_tensor_info(&c, i, name, sizeof name, shape, &nd);
            snprintf(key, sizeof key, "c%d.%s", k, name);
            const float *w = fx_get(key, "F32", NULL);
            for (size_t q = 0; q < m.n[i]; q++) m.t[i][q] = w[q];
        }
        double logits[64];
        dm_loss(&m, ids, len, B, T, G, 1, logits);
        rnn_backward_f64(&m.w, &m.c, m.t, m.g, G);
        char key[96];
        snprintf(key, sizeof key, "c%d.logits", k);
        double e = test_rel_err(logits, fx_get(key, "F64", NULL), (size_t)B * c.num_labels);
        ck_assert_msg(e <= TORCH_D_TOL, "case %d (%s): logits differ from torch by %g", k, lmp_st_metadata(fx, key), e);
        for (int i = 0; i < m.nt; i++) {
            char name[64];
            int64_t shape[2];
            int nd;
            lmp_rnn_tensor_info(&c, i, name, sizeof name, shape, &nd);
            snprintf(key, sizeof key, "c%d.grad.%s", k, name);
            e = test_rel_err(m.g[i], fx_get(key, "F64", NULL), m.n[i]);
            ck_assert_msg(e <= TORCH_D_TOL, "case %d: %s differs from torch by %g", k, key, e);
        }
        dm_free(&m);
    }
    lmp_st_close(fx);
}
END_TEST

START_TEST(torch_float_classifier)
{
    fx_open();
    int64_t sh[2];
    const int *ids = fx_get("ids", "I32", sh), *len = fx_get("len", "I32", NULL);
    int B = (int)sh[0], T = (int)sh[1];
    const double *G = fx_get("G", "F64", NULL);
    double worst = 0;
    for (int k = 0; k < fx_cases(); k++) {
        lmp_rnn_config c = fx_config(k);
        lmp_classifier *clf;
        ck_assert_int_eq(lmp_rnn_classifier_new(&c, 1, &clf), 0);
        ck_assert_str_eq(clf->kind, "rnn");
        lmp_params_group *g = clf->params(clf);
        ck_assert_ptr_nonnull(g);
        ck_assert_int_eq(g->count, lmp_rnn_num_tensors(&c));
        char key[96];
        for (int i = 0; i < g->count; i++) {
            snprintf(key, sizeof key, "c%d.%s", k, g->t[i].name);
            memcpy(g->t[i].data, fx_get(key, "F32", NULL), g->t[i].n * sizeof(float));
        }
        float logits[64], dl[64];
        for (int i = 0; i < B * c.num_labels; i++) dl[i] = (float)G[i];
        lmp_params_zero_grads(g);
        ck_assert_msg(clf->forward(clf, ids, len, B, T, logits, 1) == 0, "%s", lmp_errmsg());
        ck_assert_msg(clf->backward(clf, dl) == 0, "%s", lmp_errmsg());
        snprintf(key, sizeof key, "c%d.logits", k);
        double e = rel_err_fd(logits, fx_get(key, "F64", NULL), (size_t)B * c.num_labels);
        ck_assert_msg(e <= TORCH_F_TOL, "case %d: float logits differ from torch by %g", k, e);
        worst = fmax(worst, e);
        for (int i = 0; i < g->count; i++) {
            snprintf(key, sizeof key, "c%d.grad.%s", k, g->t[i].name);
            e = rel_err_fd(g->t[i].grad, fx_get(key, "F64", NULL), g->t[i].n);
            ck_assert_msg(e <= TORCH_F_TOL, "case %d: float %s differs from torch by %g", k, key, e);
            worst = fmax(worst, e);
        }
        clf->destroy(clf);
    }
    printf("float classifier vs torch: max relative error %.2e\n", worst);
    lmp_st_close(fx);
}
END_TEST

/* ------------------------------------------------------------ padding */

static lmp_classifier *random_clf(int cell, int layers, int bidir, int pooling, uint64_t seed)
{
    lmp_rnn_config c = {.cell = cell, .vocab = 11, .embed = 5, .hidden = 6, .layers = layers,
                        .bidirectional = bidir, .pooling = pooling, .num_labels = 3};
    lmp_classifier *clf;
    ck_assert_int_eq(lmp_rnn_classifier_new(&c, seed, &clf), 0);
    return clf;
}

static double max_rel_f(const float *a, const float *b, size_t n)
{
    double scale = 0, e = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs((double)a[i] - b[i]));
    return scale ? e / scale : e;
}

START_TEST(padding_is_each_row_alone)
{
    int cell = _i / 3, pooling = _i % 3;
    enum { B = 5, T = 8 };
    const int len[B] = {3, 8, 1, 5, 3};
    int ids[B * T];
    lmp_rng_seed(&rng, 42);
    for (int i = 0; i < B * T; i++) ids[i] = (int)(lmp_rng_u64(&rng) % 11);
    for (int shape = 0; shape < 2; shape++) {
        lmp_classifier *c = random_clf(cell, 1 + shape, shape, pooling, 9);
        lmp_params_group *g = c->params(c);
        size_t np = lmp_params_numel(g, 1);
        float logits[B * 3], alone[3], G[B * 3];
        for (int i = 0; i < B * 3; i++) G[i] = 2 * lmp_rng_uniform(&rng) - 1;
        lmp_params_zero_grads(g);
        ck_assert_int_eq(c->forward(c, ids, len, B, T, logits, 1), 0);
        ck_assert_int_eq(c->backward(c, G), 0);
        float *batch_grad = mallocCheck(np * sizeof(float)), *sum_grad = callocCheck(np, sizeof(float));
        memcpy(batch_grad, g->grad_mem, np * sizeof(float));
        for (int b = 0; b < B; b++) {
            lmp_params_zero_grads(g);
            ck_assert_int_eq(c->forward(c, ids + b * T, &len[b], 1, len[b], alone, 1), 0);
            ck_assert_int_eq(c->backward(c, G + b * 3), 0);
            for (size_t k = 0; k < np; k++) sum_grad[k] += g->grad_mem[k];
            ck_assert_msg(max_rel_f(logits + b * 3, alone, 3) <= 1e-5, "%s %s shape %d: row %d differs alone",
                          lmp_rnn_cell_name(cell), lmp_rnn_pooling_name(pooling), shape, b);
        }
        double e = max_rel_f(batch_grad, sum_grad, np);
        ck_assert_msg(e <= 1e-5, "%s %s shape %d: batch gradient vs sum of rows: %g", lmp_rnn_cell_name(cell),
                      lmp_rnn_pooling_name(pooling), shape, e);
        /* whatever sits in the padding, even ids outside the vocabulary, is never read */
        int junk[B * T];
        memcpy(junk, ids, sizeof junk);
        for (int b = 0; b < B; b++)
            for (int t = len[b]; t < T; t++) junk[b * T + t] = (t % 2) ? -1 : 1000;
        float again[B * 3];
        ck_assert_int_eq(c->forward(c, junk, len, B, T, again, 0), 0);
        ck_assert_int_eq(c->forward(c, ids, len, B, T, logits, 0), 0);
        ck_assert_int_eq(memcmp(again, logits, sizeof again), 0);
        free(batch_grad), free(sum_grad);
        c->destroy(c);
    }
}
END_TEST

/* ------------------------------------------------------------ save / load, errors */

static char tmpdir[64];

static void rm_tmpdir(void) { test_rmtree(tmpdir); }

static void write_text(const char *path, const char *text)
{
    ck_assert_int_eq(lmp_write_file_atomic(path, text, strlen(text)), 0);
}

START_TEST(save_load)
{
    strcpy(tmpdir, "/tmp/lmp_rnnXXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    lmp_classifier *c = random_clf(LMP_RNN_LSTM, 2, 1, LMP_RNN_POOL_MAX, 3), *d;
    strcpy(c->tokenizer_digest, "abc123");
    char *dir = lmp_strfmt("%s/clf", tmpdir);
    ck_assert_msg(lmp_type_classifier.save(c, dir) == 0, "%s", lmp_errmsg());
    ck_assert_msg(lmp_classifier_load(dir, &d) == 0, "%s", lmp_errmsg());
    ck_assert_str_eq(d->kind, "rnn");
    ck_assert_str_eq(d->tokenizer_digest, "abc123");
    ck_assert_int_eq(d->num_labels, 3);
    const lmp_rnn_config *k = lmp_rnn_classifier_config(d);
    ck_assert_ptr_nonnull(k);
    ck_assert_int_eq(k->cell, LMP_RNN_LSTM);
    ck_assert_int_eq(k->layers, 2);
    ck_assert_int_eq(k->bidirectional, 1);
    ck_assert_int_eq(k->pooling, LMP_RNN_POOL_MAX);
    int ids[6] = {1, 2, 3, 4, 5, 6}, len[2] = {3, 2};
    float a[6], b[6];
    ck_assert_int_eq(c->forward(c, ids, len, 2, 3, a, 0), 0);
    ck_assert_int_eq(d->forward(d, ids, len, 2, 3, b, 0), 0);
    ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
    d->destroy(d);

    /* a config that does not match the tensors, an unknown cell */
    char *json = lmp_strfmt("%s/classifier.json", dir), *text;
    size_t n;
    ck_assert_int_eq(lmp_read_file(json, 0, &text, &n), 0);
    char *bad = strdupCheck(text), *p = strstr(bad, "\"hidden\": 6");
    ck_assert_ptr_nonnull(p);
    p[10] = '7';
    write_text(json, bad);
    ck_assert_int_eq(lmp_classifier_load(dir, &d), -1);
    char *want = lmp_strfmt("%s/model.safetensors: tensor \"rnn.weight_ih_l0\" must be [28, 5] for the "
                            "configuration in classifier.json", dir);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want);
    strcpy(bad, text);
    p = strstr(bad, "\"lstm\"");
    ck_assert_ptr_nonnull(p);
    memcpy(p + 1, "lsxm", 4);
    write_text(json, bad);
    ck_assert_int_eq(lmp_classifier_load(dir, &d), -1);
    want = lmp_strfmt("%s: config.cell: unknown rnn cell 'lsxm' (elman, gru or lstm)", json);
    ck_assert_str_eq(lmp_errmsg(), want);
    free(want), free(bad), free(text), free(json), free(dir);
    c->destroy(c);
    rm_tmpdir();
}
END_TEST

START_TEST(errors)
{
    lmp_classifier *c = random_clf(LMP_RNN_GRU, 1, 0, LMP_RNN_POOL_LAST, 1);
    int ids[6] = {1, 2, 3, 4, 11, 6}, len[2] = {3, 2};
    float out[6] = {0};
    ck_assert_int_eq(c->forward(c, ids, len, 2, 3, out, 1), -1);
    ck_assert_str_eq(lmp_errmsg(), "rnn classifier: token id 11 at [1,1] out of range [0, 11)");
    len[1] = 0;
    ck_assert_int_eq(c->forward(c, ids, len, 2, 3, out, 1), -1);
    ck_assert_str_eq(lmp_errmsg(), "rnn classifier: row 1 has length 0, outside [1, 3]");
    len[1] = 1;
    ck_assert_int_eq(c->forward(c, ids, len, 2, 3, out, 0), 0);
    ck_assert_int_eq(c->backward(c, out), -1);
    ck_assert_str_eq(lmp_errmsg(), "rnn classifier: backward without a forward in training mode");
    c->destroy(c);
    lmp_rnn_config k = {.cell = LMP_RNN_GRU, .vocab = 5, .embed = 4, .hidden = 0, .layers = 1, .num_labels = 2};
    ck_assert_int_eq(lmp_rnn_classifier_new(&k, 1, &c), -1);
    ck_assert_str_eq(lmp_errmsg(), "rnn: hidden must be in [1, 65536] (got 0)");
    int cell;
    ck_assert_int_eq(lmp_rnn_cell_parse("rnn", &cell), -1);
    ck_assert_str_eq(lmp_errmsg(), "unknown rnn cell 'rnn' (elman, gru or lstm)");
}
END_TEST

START_TEST(embedding_init)
{
    lmp_classifier *c = random_clf(LMP_RNN_GRU, 1, 0, LMP_RNN_POOL_LAST, 1);
    float src[13 * 7], src2[13 * 7];
    lmp_rng_seed(&rng, 8);
    for (int i = 0; i < 13 * 7; i++) src[i] = lmp_rng_normal(&rng), src2[i] = 2 * src[i];
    memcpy(src + 7 * 3, src + 7 * 4, 7 * sizeof(float)); /* rows 3 and 4 alike */
    memcpy(src2 + 7 * 3, src2 + 7 * 4, 7 * sizeof(float));
    float *emb = lmp_rnn_classifier_tensor(c, 0), first[11 * 5];
    /* same width: copied */
    float same[13 * 5];
    for (int i = 0; i < 13 * 5; i++) same[i] = (float)i;
    ck_assert_int_eq(lmp_rnn_classifier_init_embedding(c, same, 13, 5, 1), 0);
    ck_assert_int_eq(memcmp(emb, same, sizeof first), 0);
    /* another width: a fixed linear projection */
    ck_assert_int_eq(lmp_rnn_classifier_init_embedding(c, src, 13, 7, 99), 0);
    memcpy(first, emb, sizeof first);
    ck_assert_int_eq(memcmp(emb + 5 * 3, emb + 5 * 4, 5 * sizeof(float)), 0);
    ck_assert_int_eq(lmp_rnn_classifier_init_embedding(c, src2, 13, 7, 99), 0);
    for (int i = 0; i < 11 * 5; i++) ck_assert_float_eq_tol(emb[i], 2 * first[i], 1e-5);
    ck_assert_int_eq(lmp_rnn_classifier_init_embedding(c, src, 10, 7, 99), -1);
    ck_assert_str_eq(lmp_errmsg(), "the embedding source has 10 tokens but the rnn's vocabulary has 11");
    c->destroy(c);
    /* norms are kept on average (768 -> 64) */
    lmp_rnn_config k = {.cell = LMP_RNN_ELMAN, .vocab = 50, .embed = 64, .hidden = 2, .layers = 1, .num_labels = 2};
    ck_assert_int_eq(lmp_rnn_classifier_new(&k, 1, &c), 0);
    float *big = mallocCheck(50 * 768 * sizeof(float));
    for (int i = 0; i < 50 * 768; i++) big[i] = lmp_rng_normal(&rng);
    ck_assert_int_eq(lmp_rnn_classifier_init_embedding(c, big, 50, 768, 7), 0);
    emb = lmp_rnn_classifier_tensor(c, 0);
    double ratio = 0;
    for (int v = 0; v < 50; v++) {
        double a = 0, b = 0;
        for (int i = 0; i < 768; i++) a += (double)big[v * 768 + i] * big[v * 768 + i];
        for (int i = 0; i < 64; i++) b += (double)emb[v * 64 + i] * emb[v * 64 + i];
        ratio += sqrt(b / a) / 50;
    }
    ck_assert_double_le(fabs(ratio - 1), 0.05);
    free(big);
    c->destroy(c);
}
END_TEST

/* ------------------------------------------------------------ fast activations */

START_TEST(fast_activations)
{
    double worst_t = 0, worst_s = 0;
    for (int k = -300000; k <= 300000; k++) {
        float x = (float)k * 1e-4f; /* [-30, 30] */
        if (k % 3 == 0) x = ldexpf(1.0f, k % 90 - 60) * (k < 0 ? -1 : 1); /* tiny to huge */
        double t = tanh((double)x), sg = 1 / (1 + exp(-(double)x));
        worst_t = fmax(worst_t, fabs(rnn_tanh(x) - t) / fmax(fabs(t), 1e-30));
        worst_s = fmax(worst_s, fabs(rnn_sigmoid(x) - sg) / fmax(sg, 1e-30));
    }
    printf("fast activations: max relative error tanh %.2e, sigmoid %.2e\n", worst_t, worst_s);
    ck_assert_double_le(worst_t, 4e-7); /* a few float ulps */
    ck_assert_double_le(worst_s, 4e-7);
    ck_assert_float_eq(rnn_tanh(100.0f), 1.0f);
    ck_assert_float_eq(rnn_tanh(-100.0f), -1.0f);
    ck_assert_float_eq(rnn_sigmoid(-200.0f), 0.0f);
    ck_assert_float_eq(rnn_sigmoid(200.0f), 1.0f);
    ck_assert_float_eq(rnn_tanh(0.0f), 0.0f);
    ck_assert_float_eq(rnn_sigmoid(0.0f), 0.5f);
}
END_TEST

/* ------------------------------------------------------------ distillation loss */

START_TEST(kd_known_values)
{
    /* T = 1: p = (3/4, 1/4), q = (1/2, 1/2) */
    double s[2] = {0, 0}, t[2] = {log(3.0), 0}, g[2] = {0, 0}, l;
    double v = kd_loss_forward_backward_f64(&l, g, s, t, 1, 2, 1, LMP_KD_KL, 1);
    ck_assert_double_eq_tol(v, 0.75 * log(1.5) + 0.25 * log(0.5), 1e-15);
    ck_assert_double_eq_tol(g[0], 0.5 - 0.75, 1e-15);
    ck_assert_double_eq_tol(g[1], 0.5 - 0.25, 1e-15);
    /* T^2 KL of the softened distributions, against a naive formula */
    double s3[3] = {1, -2, 0.5}, t3[3] = {3, 0, -1}, T = 2.5, ps = 0, pt = 0, kl = 0;
    for (int i = 0; i < 3; i++) ps += exp(s3[i] / T), pt += exp(t3[i] / T);
    for (int i = 0; i < 3; i++) {
        double p = exp(t3[i] / T) / pt, q = exp(s3[i] / T) / ps;
        kl += p * log(p / q);
    }
    ck_assert_double_eq_tol(kd_loss_forward_backward_f64(NULL, NULL, s3, t3, 1, 3, T, LMP_KD_KL, 1), T * T * kl,
                            1e-14);
    /* identical logits: nothing to learn */
    double z[3] = {0, 0, 0};
    ck_assert_double_eq_tol(kd_loss_forward_backward_f64(NULL, z, t3, t3, 1, 3, 4, LMP_KD_KL, 1), 0, 1e-15);
    ck_assert_double_le(test_maxabs(z, 3), 1e-15);
    /* MSE on logits: sum of squares per row, mean over rows, gradient 2 (s - t) / N */
    double ms[4] = {1, 2, 0, 0}, mt[4] = {0, 0, 0, 1}, mg[4] = {0};
    ck_assert_double_eq(kd_loss_forward_backward_f64(NULL, mg, ms, mt, 2, 2, 9, LMP_KD_MSE, 0.5), 3);
    ck_assert_double_eq(mg[0], 0.5);
    ck_assert_double_eq(mg[1], 1);
    ck_assert_double_eq(mg[3], -0.5);
    /* a student probability that underflows: log-softmax keeps the loss finite
     * (log of the softmax would be -inf) */
    double su[2] = {0, -2000}, tu[2] = {0, 0};
    v = kd_loss_forward_backward_f64(NULL, NULL, su, tu, 1, 2, 1, LMP_KD_KL, 1);
    ck_assert_double_eq_tol(v, 1000 - log(2.0), 1e-9);
    float sf[2] = {0, -2000}, tf[2] = {0, 0}, gf[2] = {0, 0};
    float vf = lmp_nn_kd_loss_forward_backward(NULL, gf, sf, tf, 1, 2, 1, LMP_KD_KL, 1);
    ck_assert_float_eq_tol(vf, 1000 - logf(2), 1e-3);
    ck_assert_float_eq_tol(gf[0], 0.5f, 1e-6);
    ck_assert_float_eq_tol(gf[1], -0.5f, 1e-6);
    /* a teacher probability that underflows contributes nothing */
    ck_assert_double_eq_tol(kd_loss_forward_backward_f64(NULL, NULL, tu, su, 1, 2, 1, LMP_KD_KL, 1), log(2.0), 1e-12);
}
END_TEST

START_TEST(kd_fd)
{
    enum { N = 5, V = 4 };
    lmp_rng_seed(&rng, 11);
    for (int kind = 0; kind < 2; kind++) {
        double s[N * V], t[N * V], g[N * V] = {0}, num[N * V], T = 2.5, h = 1e-6;
        for (int i = 0; i < N * V; i++) s[i] = 4 * lmp_rng_uniform(&rng) - 2, t[i] = 6 * lmp_rng_uniform(&rng) - 3;
        kd_loss_forward_backward_f64(NULL, g, s, t, N, V, T, kind, 0.7);
        for (int i = 0; i < N * V; i++) {
            double old = s[i];
            s[i] = old + h;
            double lp = kd_loss_forward_backward_f64(NULL, NULL, s, t, N, V, T, kind, 1);
            s[i] = old - h;
            double lm = kd_loss_forward_backward_f64(NULL, NULL, s, t, N, V, T, kind, 1);
            s[i] = old;
            num[i] = 0.7 * (lp - lm) / (2 * h);
        }
        double e = test_rel_err(g, num, N * V);
        ck_assert_msg(e <= FD_TOL, "kd %s: finite-difference relative error %g", kind ? "mse" : "kl", e);
        /* float kernel vs double, accumulating into a non-zero buffer */
        float sf[N * V], tf[N * V], gf[N * V], lf[N];
        double ld[N], gd[N * V];
        for (int i = 0; i < N * V; i++) sf[i] = (float)s[i], tf[i] = (float)t[i], gf[i] = 1, gd[i] = 1;
        for (int i = 0; i < N * V; i++) s[i] = sf[i], t[i] = tf[i];
        float mf = lmp_nn_kd_loss_forward_backward(lf, gf, sf, tf, N, V, (float)T, kind, 0.7f);
        double md = kd_loss_forward_backward_f64(ld, gd, s, t, N, V, T, kind, 0.7);
        ck_assert_double_le(fabs(mf - md), 1e-5 * fabs(md));
        double mean = 0;
        for (int i = 0; i < N; i++) mean += ld[i] / N;
        ck_assert_double_eq_tol(mean, md, 1e-12);
        ck_assert_double_le(rel_err_fd(gf, gd, N * V), 1e-5);
    }
}
END_TEST

START_TEST(kd_errors)
{
    float s[2] = {0, 1}, t[2] = {1, 0}, g[2] = {7, 7};
    ck_assert(isnan(lmp_nn_kd_loss_forward_backward(NULL, g, s, t, 1, 2, 0, LMP_KD_KL, 1)));
    ck_assert_str_eq(lmp_errmsg(), "kd loss: temperature must be > 0, got 0");
    ck_assert(g[0] == 7 && g[1] == 7);
    ck_assert(isnan(lmp_nn_kd_loss_forward_backward(NULL, g, s, t, 1, 2, 1, 5, 1)));
    ck_assert_str_eq(lmp_errmsg(), "kd loss: unknown kind 5");
    /* MSE ignores the temperature */
    ck_assert_float_eq(lmp_nn_kd_loss_forward_backward(NULL, NULL, s, t, 1, 2, 0, LMP_KD_MSE, 1), 2);
}
END_TEST

static Suite *rnn_suite(void)
{
    Suite *s = suite_create("rnn");
    TCase *tc = tcase_create("rnn");
    tcase_add_loop_test(tc, fd_all_cells, 0, 18);
    tcase_add_test(tc, fd_detects_wrong_gradient);
    tcase_add_test(tc, torch_double);
    tcase_add_test(tc, torch_float_classifier);
    tcase_add_loop_test(tc, padding_is_each_row_alone, 0, 9);
    tcase_add_test(tc, save_load);
    tcase_add_test(tc, errors);
    tcase_add_test(tc, embedding_init);
    tcase_add_test(tc, fast_activations);
    suite_add_tcase(s, tc);
    TCase *kd = tcase_create("kd");
    tcase_add_test(kd, kd_known_values);
    tcase_add_test(kd, kd_fd);
    tcase_add_test(kd, kd_errors);
    suite_add_tcase(s, kd);
    return s;
}

int main(void)
{
    int failed = test_run_suite(rnn_suite(), 0);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
