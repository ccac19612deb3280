/*
 * rnn.c — the RNN classifier of rnn.h: configuration, tensors, the
 * classifier object (forward/backward from rnn_impl.h compiled in float),
 * PyTorch's default initialisation, embedding initialisation from GPT-2's
 * wte, save and load (kind "rnn", registered here).
 */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonfile.h"
#include "nn.h"
#include "rnn.h"
#include "safetensors.h"
#include "util.h"

typedef float real;
#define NN_FN(name) lmp_nn_##name
#define RNN_FN(name) name
#define RNN_GEMM cblas_sgemm
#define RNN_FAST_ACT
#include "rnn_impl.h"

#define RNN_MAX_TENSORS (3 + 8 * RNN_MAX_LAYERS)

/* ------------------------------------------------------------ the classifier */

typedef struct {
    lmp_classifier c; /* first, so that c->impl == this */
    lmp_rnn_config cfg;
    int nt;
    float *mem;                    /* every tensor, one block */
    float *t[RNN_MAX_TENSORS];     /* into mem */
    size_t n[RNN_MAX_TENSORS];
    float *dt[RNN_MAX_TENSORS];    /* their gradients (NULL until params() ran) */
    lmp_params_group g;
    int g_built;
    rnn_work w;
    lmp_rng rng;                   /* dropout masks */
    uint64_t seed;
} rnn_cls;

static rnn_cls *self(const lmp_classifier *c) { return (rnn_cls *)c->impl; }

static int cls_forward(lmp_classifier *c, const int *ids, const int *len, int B, int T, float *logits, int train)
{
    rnn_cls *s = self(c);
    return rnn_forward(&s->w, &s->cfg, s->t, ids, len, B, T, logits, train, &s->rng);
}

static lmp_params_group *cls_params(lmp_classifier *c)
{
    rnn_cls *s = self(c);
    if (s->g_built) return &s->g;
    lmp_params_init(&s->g);
    for (int i = 0; i < s->nt; i++) {
        char name[64];
        int64_t shape[2];
        int nd;
        lmp_rnn_tensor_info(&s->cfg, i, name, sizeof name, shape, &nd);
        if (lmp_params_add(&s->g, name, s->t[i], s->n[i], LMP_PARAM_TRAIN | (nd == 1 ? LMP_PARAM_NO_DECAY : 0)) != 0) {
            lmp_params_free(&s->g);
            return NULL;
        }
    }
    lmp_params_alloc_grads(&s->g);
    for (int i = 0; i < s->nt; i++) s->dt[i] = s->g.t[i].grad;
    s->g_built = 1;
    return &s->g;
}

static int cls_backward(lmp_classifier *c, const float *dlogits)
{
    rnn_cls *s = self(c);
    if (!s->w.train) return lmp_error("rnn classifier: backward without a forward in training mode");
    if (!cls_params(c)) return -1;
    rnn_backward(&s->w, &s->cfg, s->t, s->dt, dlogits);
    return 0;
}

static void cls_destroy(lmp_classifier *c)
{
    if (!c) return;
    rnn_cls *s = self(c);
    if (s->g_built) lmp_params_free(&s->g);
    rnn_work_free(&s->w);
    free(s->mem);
    free(s);
}

static int cls_save(const lmp_classifier *c, const char *dir);

/* U(-k, k) */
static void uniform(float *x, size_t n, float k, lmp_rng *r)
{
    for (size_t i = 0; i < n; i++) x[i] = k * (2 * lmp_rng_uniform(r) - 1);
}

int lmp_rnn_classifier_new(const lmp_rnn_config *cfg, uint64_t seed, lmp_classifier **out)
{
    *out = NULL;
    if (lmp_rnn_config_check(cfg) != 0) return -1;
    rnn_cls *s = callocCheck(1, sizeof *s);
    s->cfg = *cfg;
    s->seed = seed;
    s->nt = lmp_rnn_num_tensors(cfg);
    size_t total = 0;
    for (int i = 0; i < s->nt; i++) {
        char name[64];
        int64_t shape[2];
        int nd;
        s->n[i] = lmp_rnn_tensor_info(cfg, i, name, sizeof name, shape, &nd);
        total += s->n[i];
    }
    s->mem = mallocCheck(total * sizeof(float));
    for (int i = 0, off = 0; i < s->nt; off += (int)s->n[i], i++) s->t[i] = s->mem + off;
    lmp_rng r;
    lmp_rng_seed(&r, seed ^ 0x726e6e696e6974); /* "rnninit" */
    for (size_t k = 0; k < s->n[0]; k++) s->t[0][k] = lmp_rng_normal(&r);
    float kr = 1.0f / sqrtf((float)cfg->hidden);
    for (int i = 1; i < s->nt - 2; i++) uniform(s->t[i], s->n[i], kr, &r);
    float kh = 1.0f / sqrtf((float)(cfg->hidden * (1 + cfg->bidirectional)));
    uniform(s->t[s->nt - 2], s->n[s->nt - 2], kh, &r);
    uniform(s->t[s->nt - 1], s->n[s->nt - 1], kh, &r);
    lmp_rng_seed(&s->rng, seed ^ 0x64726f70); /* "drop" */
    lmp_classifier *c = &s->c;
    c->kind = "rnn";
    c->num_labels = cfg->num_labels;
    c->max_len = 0;
    c->impl = s;
    c->forward = cls_forward;
    c->backward = cls_backward;
    c->params = cls_params;
    c->save = cls_save;
    c->destroy = cls_destroy;
    *out = c;
    return 0;
}

const lmp_rnn_config *lmp_rnn_classifier_config(const lmp_classifier *c)
{
    return c && c->destroy == cls_destroy ? &self(c)->cfg : NULL;
}

float *lmp_rnn_classifier_tensor(lmp_classifier *c, int i)
{
    if (!c || c->destroy != cls_destroy || i < 0 || i >= self(c)->nt) return NULL;
    return self(c)->t[i];
}

int lmp_rnn_classifier_init_embedding(lmp_classifier *c, const float *src, int src_vocab, int src_dim, uint64_t seed)
{
    rnn_cls *s = self(c);
    int V = s->cfg.vocab, E = s->cfg.embed;
    if (src_vocab < V)
        return lmp_error("the embedding source has %d tokens but the rnn's vocabulary has %d", src_vocab, V);
    if (src_dim == E) {
        memcpy(s->t[0], src, (size_t)V * E * sizeof(float));
        return 0;
    }
    float *P = mallocCheck((size_t)src_dim * E * sizeof *P);
    lmp_rng r;
    lmp_rng_seed(&r, seed);
    float sd = 1.0f / sqrtf((float)E);
    for (size_t k = 0; k < (size_t)src_dim * E; k++) P[k] = sd * lmp_rng_normal(&r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, V, E, src_dim, 1, src, src_dim, P, E, 0, s->t[0], E);
    free(P);
    return 0;
}

/* ------------------------------------------------------------ save / load */

static int cls_save(const lmp_classifier *c, const char *dir)
{
    const rnn_cls *s = self(c);
    const lmp_rnn_config *k = &s->cfg;
    if (lmp_mkdirs(dir) != 0) return -1;
    lmp_st_tensor t[RNN_MAX_TENSORS];
    char names[RNN_MAX_TENSORS][64];
    int64_t shapes[RNN_MAX_TENSORS][2];
    for (int i = 0; i < s->nt; i++) {
        lmp_rnn_tensor_info(k, i, names[i], sizeof names[i], shapes[i], &t[i].ndim);
        t[i].name = names[i], t[i].dtype = "F32", t[i].shape = shapes[i], t[i].data = s->t[i];
    }
    char *p = lmp_strfmt("%s/model.safetensors", dir);
    int rc = lmp_st_write(p, t, s->nt, NULL, 0);
    free(p);
    if (rc != 0) return -1;
    json_t *j = json_object(), *jc = json_object();
    json_object_set_new(j, "kind", json_string("rnn"));
    json_object_set_new(j, "num_labels", json_integer(c->num_labels));
    json_object_set_new(j, "tokenizer_digest", json_string(c->tokenizer_digest));
    json_object_set_new(jc, "cell", json_string(lmp_rnn_cell_name(k->cell)));
    json_object_set_new(jc, "vocab", json_integer(k->vocab));
    json_object_set_new(jc, "embed", json_integer(k->embed));
    json_object_set_new(jc, "hidden", json_integer(k->hidden));
    json_object_set_new(jc, "layers", json_integer(k->layers));
    json_object_set_new(jc, "bidirectional", json_boolean(k->bidirectional));
    json_object_set_new(jc, "pooling", json_string(lmp_rnn_pooling_name(k->pooling)));
    json_object_set_new(jc, "dropout", json_real(k->dropout));
    json_object_set_new(j, "config", jc);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->seed);
    json_object_set_new(j, "seed", json_string(seed));
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    char *body = lmp_strfmt("%s\n", text);
    p = lmp_strfmt("%s/classifier.json", dir);
    rc = lmp_write_file_atomic(p, body, strlen(body));
    free(p), free(body), free(text);
    json_decref(j);
    return rc;
}

/* An integer field of the config object, range-checked by config_check later. */
static int get_int(json_t *jc, const char *key, const char *path, int *out)
{
    json_t *v = json_object_get(jc, key);
    if (!json_is_integer(v)) return lmp_error("%s: config.%s missing or not an integer", path, key);
    json_int_t x = json_integer_value(v);
    if (x < -1000000000 || x > 1000000000) return lmp_error("%s: config.%s = %lld is out of range", path, key, (long long)x);
    *out = (int)x;
    return 0;
}

int lmp_rnn_classifier_load(const char *dir, lmp_classifier **out)
{
    *out = NULL;
    char *info = lmp_strfmt("%s/classifier.json", dir), *stp = lmp_strfmt("%s/model.safetensors", dir);
    json_t *j = NULL;
    lmp_st *st = NULL;
    lmp_classifier *c = NULL;
    int rc = -1;
    if (lmp_json_read_file(info, 1 << 20, 0, NULL, &j) != 0) goto done;
    json_t *jc = json_object_get(j, "config");
    const char *cell = json_string_value(json_object_get(jc, "cell"));
    const char *pool = json_string_value(json_object_get(jc, "pooling"));
    json_t *jd = json_object_get(jc, "dropout"), *jb = json_object_get(jc, "bidirectional");
    lmp_rnn_config k = {0};
    if (!json_is_object(jc)) {
        lmp_error("%s: no \"config\" object", info);
        goto done;
    }
    if (get_int(j, "num_labels", info, &k.num_labels) != 0) {
        lmp_error("%s: \"num_labels\" missing or not an integer", info);
        goto done;
    }
    if (get_int(jc, "vocab", info, &k.vocab) || get_int(jc, "embed", info, &k.embed) ||
        get_int(jc, "hidden", info, &k.hidden) || get_int(jc, "layers", info, &k.layers))
        goto done;
    char why[256];
    if (!cell || lmp_rnn_cell_parse(cell, &k.cell) != 0) {
        snprintf(why, sizeof why, "%s", cell ? lmp_errmsg() : "missing or not a string");
        lmp_error("%s: config.cell: %s", info, why);
        goto done;
    }
    if (!pool || lmp_rnn_pooling_parse(pool, &k.pooling) != 0) {
        snprintf(why, sizeof why, "%s", pool ? lmp_errmsg() : "missing or not a string");
        lmp_error("%s: config.pooling: %s", info, why);
        goto done;
    }
    if (!json_is_number(jd) || !json_is_boolean(jb)) {
        lmp_error("%s: config.dropout (a number) and config.bidirectional (true/false) are required", info);
        goto done;
    }
    k.dropout = (float)json_number_value(jd);
    k.bidirectional = json_is_true(jb);
    if (lmp_rnn_config_check(&k) != 0) {
        snprintf(why, sizeof why, "%s", lmp_errmsg());
        lmp_error("%s: %s", info, why);
        goto done;
    }
    const char *seed = json_string_value(json_object_get(j, "seed"));
    if (lmp_rnn_classifier_new(&k, seed ? strtoull(seed, NULL, 10) : 0, &c) != 0) goto done;
    const char *tok = json_string_value(json_object_get(j, "tokenizer_digest"));
    if (tok) snprintf(c->tokenizer_digest, sizeof c->tokenizer_digest, "%s", tok);
    if (lmp_st_open(stp, &st) != 0) goto done;
    rnn_cls *s = self(c);
    for (int i = 0; i < s->nt; i++) {
        char name[64];
        int64_t shape[2], got[LMP_ST_MAX_DIMS];
        int nd, gnd;
        lmp_rnn_tensor_info(&k, i, name, sizeof name, shape, &nd);
        const void *d;
        if (lmp_st_get(st, name, "F32", &d, got, &gnd) != 0) goto done;
        if (gnd != nd || got[0] != shape[0] || (nd == 2 && got[1] != shape[1])) {
            if (nd == 2)
                lmp_error("%s: tensor \"%s\" must be [%lld, %lld] for the configuration in classifier.json", stp,
                          name, (long long)shape[0], (long long)shape[1]);
            else
                lmp_error("%s: tensor \"%s\" must be [%lld] for the configuration in classifier.json", stp, name,
                          (long long)shape[0]);
            goto done;
        }
        memcpy(s->t[i], d, s->n[i] * sizeof(float));
    }
    rc = 0;
done:
    lmp_st_close(st);
    if (rc != 0 && c) c->destroy(c), c = NULL;
    json_decref(j);
    free(info), free(stp);
    *out = c;
    return rc;
}

LMP_CLASSIFIER_KIND(rnn, "rnn", lmp_rnn_classifier_load)
