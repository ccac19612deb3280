/*
 * ia3.c — a third-party adapter kind, to show that one needs no change to
 * the model code: IA3-style scaling of a layer's outputs, out <- out * l[out]
 * (PEFT's IA3 on non-feedforward layers), built from the installed headers
 * only (make installcheck builds it with pkg-config; make check in-tree).
 *
 *   ia3   targets=PATTERNS init=1.0 check=false
 *
 * consumes a classifier, freezes its base, attaches the scaling to the
 * selected layers and registers each vector in the classifier's parameter
 * group.  check=true then verifies, through the classifier interface alone,
 * that the model calls the adapter in forward and backward: it logs
 * `fd_rel_err` (analytic gradient of the scales against central differences)
 * and `loss_first` / `loss_last` over a few AdamW steps on a fixed batch.
 *
 * The kind saves and loads itself (lmp_adapter_ops save/load): a classifier
 * with IA3 attached is written by save-classifier and by the stage cache
 * (the stage is cacheable) as the model's folder plus ia3.safetensors, one
 * F32 vector [out] per scaled layer under PEFT IA3's key
 * (base_model.model.transformer.h.0.attn.c_proj.ia3_l), and read back in
 * another process, where LMP_ADAPTER_KIND has registered the kind when the
 * plugin was loaded.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <adapter.h>
#include <classifier.h>
#include <lmpipe.h>
#include <nn.h>
#include <optim.h>
#include <safetensors.h>
#include <util.h>

typedef struct {
    float *s;        /* [out] */
    float *y, *dy;   /* [N, out]: the input stream of the last forward, and our backward's output */
    size_t cap;
    lmp_params_group *g;
    int idx;
} ia3;

static void ia3_forward(lmp_adapter *a, const lmp_linear *l, float *out, const float *inp, int N)
{
    (void)inp;
    ia3 *x = a->ctx;
    size_t n = (size_t)N * l->out;
    if (n > x->cap) {
        free(x->y);
        x->y = mallocCheck(2 * n * sizeof(float));
        x->dy = x->y + n;
        x->cap = n;
    }
    memcpy(x->y, out, n * sizeof(float));
    for (int r = 0; r < N; r++)
        for (int j = 0; j < l->out; j++) out[(size_t)r * l->out + j] *= x->s[j];
}

static const float *ia3_backward(lmp_adapter *a, const lmp_linear *l, float *dinp, const float *dout,
                                 const float *inp, int N)
{
    (void)dinp, (void)inp;
    ia3 *x = a->ctx;
    float *ds = lmp_adapter_grad(x->g, x->idx);
    for (int r = 0; r < N; r++)
        for (int j = 0; j < l->out; j++) {
            size_t i = (size_t)r * l->out + j;
            if (ds) ds[j] += dout[i] * x->y[i];
            x->dy[i] = dout[i] * x->s[j];
        }
    return x->dy;
}

static int ia3_params(lmp_adapter *a, lmp_params_group *g)
{
    ia3 *x = a->ctx;
    char *name = lmp_strfmt("%s.ia3_l", a->layer->name);
    int rc = lmp_params_add(g, name, x->s, (size_t)a->layer->out, LMP_PARAM_TRAIN);
    free(name);
    x->g = g, x->idx = g->count - 1;
    return rc;
}

/* (x W + b) * s = x (W * s) + b * s, column by column */
static int ia3_merge(lmp_adapter *a, lmp_linear *l)
{
    ia3 *x = a->ctx;
    for (int i = 0; i < l->in; i++)
        for (int j = 0; j < l->out; j++) l->weight[(size_t)i * l->out + j] *= x->s[j];
    if (l->bias)
        for (int j = 0; j < l->out; j++) l->bias[j] *= x->s[j];
    return 0;
}

static void ia3_destroy(lmp_adapter *a)
{
    ia3 *x = a->ctx;
    free(x->s);
    free(x->y);
    free(x);
}

static int ia3_save(const lmp_adapter_host *h, const char *dir, const lmp_adapter_files *f);
static int ia3_load(lmp_adapter_host *h, const char *dir, const lmp_adapter_files *f);

static const lmp_adapter_ops ia3_ops = {
    .kind = "ia3", .forward = ia3_forward, .backward = ia3_backward,
    .params = ia3_params, .merge = ia3_merge, .destroy = ia3_destroy,
    .save = ia3_save, .load = ia3_load,
};

LMP_ADAPTER_KIND(ia3, &ia3_ops)

/* ---------------------------------------------------------------- save / load */

#define IA3_FILE "ia3.safetensors"
#define IA3_PREFIX "base_model.model."
#define IA3_SUFFIX ".ia3_l"

static int ia3_save(const lmp_adapter_host *h, const char *dir, const lmp_adapter_files *f)
{
    (void)f; /* the head is the model's to save */
    int n = 0, rc = 0;
    lmp_st_tensor *t = callocCheck((size_t)h->n_attached + 1, sizeof *t);
    int64_t *shape = callocCheck((size_t)h->n_attached + 1, sizeof *shape);
    for (int i = 0; i < h->n_attached && rc == 0; i++) {
        const lmp_adapter *a = h->attached[i];
        if (a->ops != &ia3_ops) continue;
        for (int k = 0; k < i; k++)
            if (h->attached[k]->ops == &ia3_ops && h->attached[k]->layer == a->layer)
                rc = lmp_error("%s: two ia3 adapters on %s cannot be saved", dir, a->layer->name);
        shape[n] = a->layer->out;
        t[n] = (lmp_st_tensor){ lmp_strfmt(IA3_PREFIX "%s%s" IA3_SUFFIX, h->prefix, a->layer->name), "F32", 1,
                                &shape[n], ((const ia3 *)a->ctx)->s };
        n++;
    }
    char *path = lmp_strfmt("%s/" IA3_FILE, dir);
    lmp_st_kv meta[] = { { "format", "pt" }, { "adapter", "ia3" } };
    if (rc == 0 && lmp_mkdirs(dir) == 0) rc = lmp_st_write(path, t, n, meta, 2);
    else rc = -1;
    for (int k = 0; k < n; k++) free((char *)t[k].name);
    free(t), free(shape), free(path);
    return rc;
}

/* The layer of h a key names, or NULL. */
static lmp_linear *layer_of(lmp_adapter_host *h, const char *key)
{
    size_t p = strlen(IA3_PREFIX), hp = strlen(h->prefix), kl = strlen(key), sl = strlen(IA3_SUFFIX);
    if (kl <= p + hp + sl || strncmp(key, IA3_PREFIX, p) != 0 || strncmp(key + p, h->prefix, hp) != 0 ||
        strcmp(key + kl - sl, IA3_SUFFIX) != 0)
        return NULL;
    size_t nl = kl - p - hp - sl;
    for (int i = 0; i < h->n_linears; i++)
        if (strlen(h->linears[i].name) == nl && strncmp(key + p + hp, h->linears[i].name, nl) == 0)
            return &h->linears[i];
    return NULL;
}

static int ia3_load(lmp_adapter_host *h, const char *dir, const lmp_adapter_files *f)
{
    (void)f;
    char *path = lmp_strfmt("%s/" IA3_FILE, dir);
    lmp_st *st;
    if (lmp_st_open(path, &st) != 0) {
        free(path);
        return -1;
    }
    int n = lmp_st_count(st), rc = n > 0 ? 0 : lmp_error("%s: no ia3 tensors", path);
    lmp_linear **at = callocCheck((size_t)n + 1, sizeof *at);
    const void **src = callocCheck((size_t)n + 1, sizeof *src);
    for (int k = 0; k < n && rc == 0; k++) { /* everything checked before anything is attached */
        const lmp_st_info *ti = lmp_st_info_at(st, k);
        if (!(at[k] = layer_of(h, ti->name)))
            rc = lmp_error("%s: tensor \"%s\" is not the ia3_l of a linear layer of the %s model", path, ti->name,
                           h->model);
        else if (ti->ndim != 1 || ti->shape[0] != at[k]->out || strcmp(ti->dtype, "F32") != 0)
            rc = lmp_error("%s: tensor \"%s\" must be F32 [%d]", path, ti->name, at[k]->out);
        else
            rc = lmp_st_get(st, ti->name, "F32", &src[k], NULL, NULL);
    }
    for (int k = 0; k < n && rc == 0; k++) {
        ia3 *x = callocCheck(1, sizeof *x);
        x->s = mallocCheck((size_t)at[k]->out * sizeof(float));
        memcpy(x->s, src[k], (size_t)at[k]->out * sizeof(float));
        x->idx = -1;
        rc = lmp_adapter_attach(h, at[k], lmp_adapter_new(&ia3_ops, x));
    }
    lmp_st_close(st);
    free(at), free(src), free(path);
    return rc; /* 0: the head is not here */
}

/* ---------------------------------------------------------------- the check */

enum { B = 3, T = 5 };
static const int ids[B * T] = { 5, 9, 2, 7, 1, 3, 3, 8, 0, 0, 6, 0, 0, 0, 0 };
static const int len[B] = { 5, 3, 1 };

static float batch_loss(lmp_classifier *c, int train, float *dlogits)
{
    float logits[B * 16];
    int labels[B];
    for (int b = 0; b < B; b++) labels[b] = b % c->num_labels;
    if (c->forward(c, ids, len, B, T, logits, train) != 0) return NAN;
    return lmp_nn_softmax_crossentropy_forward_backward(NULL, dlogits, logits, labels, B, c->num_labels);
}

static int check(lmp_stage *st, lmp_classifier *c, ia3 *x, int out)
{
    if (c->num_labels > 16) return lmp_error("ia3 check: at most 16 labels");
    lmp_params_group *g = c->params(c);
    float dlogits[B * 16] = { 0 };
    lmp_params_zero_grads(g);
    if (isnan(batch_loss(c, 1, dlogits)) || c->backward(c, dlogits) != 0) return -1;
    float *grad = lmp_adapter_grad(g, x->idx);
    double worst = 0;
    for (int k = 0; k < 3; k++) { /* the three largest gradient entries */
        int at = -1;
        for (int j = 0; j < out; j++)
            if (at < 0 || fabsf(grad[j]) > fabsf(grad[at])) at = j;
        float w = x->s[at], h = 1e-2f;
        x->s[at] = w + h;
        float lp = batch_loss(c, 0, NULL);
        x->s[at] = w - h;
        float lm = batch_loss(c, 0, NULL);
        x->s[at] = w;
        double fd = (lp - lm) / (2 * h);
        worst = fmax(worst, fabs(fd - grad[at]) / fmax(fabs(grad[at]), 1e-6));
        grad[at] = 0; /* the next-largest next time (the gradients are recomputed below) */
    }
    lmp_log_metric(st, "fd_rel_err", -1, worst);
    float first = 0, last = 0;
    for (int step = 0; step < 5; step++) {
        lmp_params_zero_grads(g);
        memset(dlogits, 0, sizeof dlogits);
        float loss = batch_loss(c, 1, dlogits);
        if (isnan(loss) || c->backward(c, dlogits) != 0) return -1;
        lmp_params_adamw_step(g, 0.05, 0.9, 0.999, 1e-8, 0);
        if (step == 0) first = loss;
        last = loss;
    }
    lmp_log_metric(st, "loss_first", -1, first);
    lmp_log_metric(st, "loss_last", -1, last);
    lmp_info(st, "gradient check: worst relative error %.3g; loss %.4f -> %.4f", worst, first, last);
    return 0;
}

/* ---------------------------------------------------------------- the stage */

static const lmp_param params[] = {
    {"targets", LMP_STRING, "attn.c_proj", LMP_UNBOUNDED, NULL, "layers to scale"},
    {"init", LMP_FLOAT, "1", LMP_UNBOUNDED, NULL, "initial scale"},
    {"check", LMP_BOOL, "false", LMP_UNBOUNDED, NULL, "verify gradients and a few training steps"},
    LMP_PARAM_END,
};
static const lmp_port in[] = {{"model", "classifier", 0, "the classifier to adapt"}, LMP_PORT_END};
static const lmp_port outp[] = {{"model", "classifier", 0, "the classifier with IA3 scaling"}, LMP_PORT_END};

static int run(lmp_stage *st)
{
    lmp_classifier *c = lmp_input_take(st, "model");
    lmp_adapter_host *h = c->adapters ? c->adapters(c) : NULL;
    unsigned char *sel = NULL;
    ia3 *first = NULL;
    int rc = -1, first_out = 0;
    if (!h) {
        lmp_error("the %s classifier has no linear layers", c->kind);
        goto done;
    }
    sel = mallocCheck((size_t)h->n_linears + 1);
    if (lmp_adapter_select(h, lmp_param_str(st, "targets"), sel) != 0) goto done;
    for (int i = 0; i < h->n_linears; i++) {
        if (!sel[i]) continue;
        ia3 *x = callocCheck(1, sizeof *x);
        x->s = mallocCheck((size_t)h->linears[i].out * sizeof(float));
        for (int j = 0; j < h->linears[i].out; j++) x->s[j] = (float)lmp_param_float(st, "init");
        x->idx = -1;
        if (lmp_adapter_attach(h, &h->linears[i], lmp_adapter_new(&ia3_ops, x)) != 0) goto done;
        if (!first) first = x, first_out = h->linears[i].out;
    }
    h->freeze_base = 1;
    lmp_params_group *g = c->params(c);
    if (!g) goto done;
    lmp_log_metric(st, "trainable_params", -1, (double)lmp_params_numel(g, 1));
    lmp_info(st, "%d ia3 adapters; %zu trainable parameters", lmp_adapter_count(h, "ia3"), lmp_params_numel(g, 1));
    if (lmp_param_bool(st, "check") && check(st, c, first, first_out) != 0) goto done;
    rc = 0;
done:
    free(sel);
    if (rc != 0) {
        c->destroy(c);
        return -1;
    }
    return lmp_output(st, "model", c);
}

static const lmp_stage_def stages[] = {
    {.name = "ia3", .description = "IA3-style output scaling (a test adapter kind)", .params = params,
     .consumes = in, .produces = outp, .flags = LMP_STAGE_CACHEABLE, .run = run},
    {0},
};

LMP_PLUGIN_DEFINE("ia3", "1.0", "an adapter kind from outside the tree", stages);
