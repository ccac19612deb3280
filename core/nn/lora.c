/*
 * lora.c — the LoRA adapter kind: forward/backward on nn.h's kernels,
 * parameters, merge, and the Hugging Face PEFT adapter folder (see lora.h),
 * which is also the kind's save/load of core/nn/adapter.h (kind "lora",
 * registered here).
 */
#include "config.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <math.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "jsonfile.h"
#include "lora.h"
#include "nn.h"

typedef struct {
    lmp_lora_config cfg; /* targets: owned copy */
    int r;
    float scale, p;      /* scaling, dropout probability */
    float *A, *B;        /* [in, r], [r, out]: one allocation */
    float *u, *du;       /* [N, r]: dropout(x) A of the last forward, and its gradient */
    size_t cap;          /* rows u and du hold */
    int dropped;         /* the last forward applied dropout ... */
    uint8_t *bits;       /* ... keeping these inputs: [N * in] bits, 1 = kept */
    size_t bits_cap;     /* bytes bits holds */
    lmp_params_group *g;
    int iA, iB;
} lora;

/* ------------------------------------------------------------ the adapter */

/* lmp_nn_dropout_forward's draws and results, out[n] = inp * mask, with the mask
 * kept as bits for the backward instead of a float mask redrawn there: the
 * masks were drawn twice per step, one RNG call per input element each time
 * (8% of a LoRA CoLA epoch's profile). */
static void dropout_bits_forward(float *out, uint8_t *bits, const float *inp, size_t n, float p, lmp_rng *rng)
{
    float keep = 1.0f / (1.0f - p);
    lmp_rng r = *rng;
    memset(bits, 0, (n + 7) / 8);
    for (size_t i = 0; i < n; i++) {
        float m = lmp_rng_uniform_inline(&r) < p ? 0 : keep;
        out[i] = inp[i] * m;
        bits[i >> 3] |= (uint8_t)((m != 0) << (i & 7));
    }
    *rng = r;
}

/* The forward's mask[n] (keep or 0) and dropped input d[n] = inp * mask,
 * bit for bit, from its bits. */
static void dropout_bits_expand(float *d, float *mask, const uint8_t *bits, const float *inp, size_t n, float p)
{
    float keep = 1.0f / (1.0f - p);
    #pragma omp parallel for if (n >= 65536)
    for (size_t i = 0; i < n; i++) {
        mask[i] = (bits[i >> 3] >> (i & 7)) & 1 ? keep : 0;
        d[i] = inp[i] * mask[i];
    }
}

static void lora_forward(lmp_adapter *a, const lmp_linear *l, float *out, const float *inp, int N)
{
    lora *x = a->ctx;
    if ((size_t)N > x->cap) {
        free(x->u);
        x->u = mallocCheck((size_t)N * 2 * x->r * sizeof(float));
        x->du = x->u + (size_t)N * x->r;
        x->cap = (size_t)N;
    }
    const float *xin = inp;
    size_t nin = (size_t)N * l->in;
    x->dropped = a->host->train && x->p > 0;
    if (x->dropped) {
        if ((nin + 7) / 8 > x->bits_cap) {
            free(x->bits);
            x->bits_cap = (nin + 7) / 8;
            x->bits = mallocCheck(x->bits_cap);
        }
        float *d = lmp_adapter_scratch(a->host, 0, nin);
        dropout_bits_forward(d, x->bits, inp, nin, x->p, &a->host->rng);
        xin = d;
    }
    lmp_nn_matmul_forward(x->u, xin, x->A, NULL, N, l->in, x->r);
    lmp_nn_matmul_acc_forward(out, x->u, x->B, N, x->r, l->out, x->scale);
}

static const float *lora_backward(lmp_adapter *a, const lmp_linear *l, float *dinp, const float *dout,
                                  const float *inp, int N)
{
    lora *x = a->ctx;
    float *dA = lmp_adapter_grad(x->g, x->iA), *dB = lmp_adapter_grad(x->g, x->iB);
    int r = x->r;
    /* du = scaling * dout B^T;  dB += scaling * u^T dout */
    memset(x->du, 0, (size_t)N * r * sizeof(float));
    lmp_nn_matmul_acc_backward(x->du, dB, dout, x->u, x->B, N, r, l->out, x->scale);
    if (!dA && !dinp) return dout;
    if (!x->dropped) { /* dA += x^T du;  dinp += du A^T */
        lmp_nn_matmul_backward(dinp, dA, NULL, x->du, inp, x->A, N, l->in, r);
        return dout;
    }
    size_t nin = (size_t)N * l->in;
    float *d = lmp_adapter_scratch(a->host, 0, nin), *mask = lmp_adapter_scratch(a->host, 1, nin);
    dropout_bits_expand(d, mask, x->bits, inp, nin, x->p); /* the forward's draws */
    if (dA) lmp_nn_matmul_backward(NULL, dA, NULL, x->du, d, x->A, N, l->in, r);
    if (dinp) {
        memset(d, 0, nin * sizeof(float));
        lmp_nn_matmul_backward(d, NULL, NULL, x->du, NULL, x->A, N, l->in, r);
        lmp_nn_dropout_backward(dinp, mask, d, nin);
    }
    return dout;
}

static int lora_params(lmp_adapter *a, lmp_params_group *g)
{
    lora *x = a->ctx;
    const lmp_linear *l = a->layer;
    char *na = lmp_strfmt("%s.lora_A.weight", l->name);
    char *nb = lmp_strfmt("%s.lora_B.weight", l->name);
    int rc = lmp_params_add(g, na, x->A, (size_t)l->in * x->r, LMP_PARAM_TRAIN);
    x->iA = g->count - 1;
    if (rc == 0) rc = lmp_params_add(g, nb, x->B, (size_t)x->r * l->out, LMP_PARAM_TRAIN);
    x->iB = g->count - 1;
    x->g = rc == 0 ? g : NULL;
    free(na);
    free(nb);
    return rc;
}

/* W [in, out] += scaling * A [in, r] B [r, out] */
static int lora_merge(lmp_adapter *a, lmp_linear *l)
{
    lora *x = a->ctx;
    lmp_nn_matmul_acc_forward(l->weight, x->A, x->B, l->in, x->r, l->out, x->scale);
    return 0;
}

static void lora_destroy(lmp_adapter *a)
{
    lora *x = a->ctx;
    free((char *)x->cfg.targets);
    free(x->A);
    free(x->u);
    free(x->bits);
    free(x);
}

static int lora_kind_save(const lmp_adapter_host *h, const char *dir, const lmp_adapter_files *f);
static int lora_kind_load(lmp_adapter_host *h, const char *dir, const lmp_adapter_files *f);

static const lmp_adapter_ops lora_ops = {
    .kind = "lora",
    .forward = lora_forward,
    .backward = lora_backward,
    .params = lora_params,
    .merge = lora_merge,
    .destroy = lora_destroy,
    .save = lora_kind_save,
    .load = lora_kind_load,
};

LMP_ADAPTER_KIND(lora, &lora_ops)

/* ------------------------------------------------------------ targets */

/* Our patterns select layers by lmp_adapter_select; PEFT's target_modules
 * (a loaded folder's, or a regex) by PEFT's own rule, below, on the HF
 * module names. */

static char *module_name(const lmp_adapter_host *h, const lmp_linear *l)
{
    return lmp_strfmt("%s%s", h->prefix, l->name);
}

/* PEFT's string target_modules, compiled to match whole module names. */
static pcre2_code *regex_compile(const char *regex, const char *what)
{
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, PCRE2_ANCHORED | PCRE2_ENDANCHORED, &err,
                                   &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        lmp_error("%s: target_modules regex: %s at offset %zu", what, (char *)msg, (size_t)off);
    }
    return re;
}

/* PEFT's check_target_module_exists: fullmatch for a regex (re), else the
 * name itself or a dot-suffix of it is in the comma-joined list. */
static int peft_targets(const char *list, const pcre2_code *re, const char *module, const char *what)
{
    if (re) {
        /* A pathological regex ("(.*)*x") must fail fast, not backtrack for minutes. */
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
        pcre2_match_context *mc = pcre2_match_context_create(NULL);
        if (!md || !mc) {
            fprintf(stderr, "lmpipe: out of memory at %s:%d\n", __FILE__, __LINE__);
            exit(1);
        }
        pcre2_set_match_limit(mc, 100000);
        pcre2_set_depth_limit(mc, 10000);
        int r = pcre2_match(re, (PCRE2_SPTR)module, PCRE2_ZERO_TERMINATED, 0, 0, md, mc);
        pcre2_match_context_free(mc);
        pcre2_match_data_free(md);
        if (r >= 0 || r == PCRE2_ERROR_NOMATCH) return r >= 0;
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(r, msg, sizeof msg);
        return lmp_error("%s: target_modules regex on \"%s\": %s", what, module, (char *)msg);
    }
    char *copy = strdupCheck(list), *save = NULL;
    int hit = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && !hit; tok = strtok_r(NULL, ",", &save)) {
        size_t a = strlen(module), b = strlen(tok);
        hit = strcmp(module, tok) == 0 || (a > b && module[a - b - 1] == '.' && strcmp(module + a - b, tok) == 0);
    }
    free(copy);
    return hit;
}

/* sel[i] = 1 for every layer of h that target_modules selects: `targets`
 * compiled as `re`, or the comma-joined list when re is NULL.  Errors name
 * `what`: the regex giving up, or nothing selected. */
static int peft_select(const lmp_adapter_host *h, const char *targets, const pcre2_code *re, const char *what,
                       unsigned char *sel)
{
    int hits = 0;
    memset(sel, 0, (size_t)h->n_linears);
    for (int i = 0; i < h->n_linears; i++) {
        char *mod = module_name(h, &h->linears[i]);
        int t = peft_targets(targets, re, mod, what);
        free(mod);
        if (t < 0) return -1;
        sel[i] = (unsigned char)t;
        hits += t;
    }
    if (!hits)
        return lmp_error("%s: target_modules %s%s%s matches no linear layer of the %s model", what, re ? "'" : "[",
                         targets, re ? "'" : "]", h->model);
    return 0;
}

/* ------------------------------------------------------------ attaching */

float lmp_lora_scaling(const lmp_lora_config *c)
{
    return (float)(c->rslora ? c->alpha / sqrt((double)c->rank) : c->alpha / c->rank);
}

static lora *lora_new(const lmp_lora_config *c, const lmp_linear *l)
{
    lora *x = callocCheck(1, sizeof *x);
    x->cfg = *c;
    x->cfg.targets = strdupCheck(c->targets ? c->targets : "");
    x->r = c->rank;
    x->scale = lmp_lora_scaling(c);
    x->p = (float)c->dropout;
    x->A = callocCheck((size_t)(l->in + l->out) * c->rank, sizeof(float));
    x->B = x->A + (size_t)l->in * c->rank;
    x->iA = x->iB = -1;
    return x;
}

static int config_check(const lmp_lora_config *c, const char *what)
{
    if (c->rank < 1) return lmp_error("%s: LoRA rank %d must be at least 1", what, c->rank);
    if (!(c->dropout >= 0 && c->dropout < 1))
        return lmp_error("%s: LoRA dropout %g outside [0, 1)", what, c->dropout);
    if (!isfinite(c->alpha)) return lmp_error("%s: lora_alpha is not finite", what);
    return 0;
}

int lmp_lora_count(const lmp_adapter_host *h) { return lmp_adapter_count(h, "lora"); }

static lora *first_lora(const lmp_adapter_host *h)
{
    for (int i = 0; i < h->n_attached; i++)
        if (h->attached[i]->ops == &lora_ops) return h->attached[i]->ctx;
    return NULL;
}

const lmp_lora_config *lmp_lora_config_of(const lmp_adapter_host *h)
{
    lora *x = first_lora(h);
    return x ? &x->cfg : NULL;
}

int lmp_lora_weights(const lmp_linear *l, float **A, float **B, int *rank)
{
    for (lmp_adapter *a = l->adapters; a; a = a->next)
        if (a->ops == &lora_ops) {
            lora *x = a->ctx;
            *A = x->A, *B = x->B, *rank = x->r;
            return 0;
        }
    *A = *B = NULL;
    *rank = 0;
    return lmp_error("layer '%s' has no LoRA adapter", l->name);
}

int lmp_lora_attach(lmp_adapter_host *h, const lmp_lora_config *c, lmp_rng *rng)
{
    if (config_check(c, "lora") != 0) return -1;
    if (lmp_lora_count(h) > 0) return lmp_error("lora: the %s model already has LoRA adapters", h->model);
    unsigned char *sel = mallocCheck((size_t)h->n_linears + 1);
    int rc;
    if (c->targets_regex) { /* PEFT's string form, as a loaded folder's */
        pcre2_code *re = regex_compile(c->targets, "lora");
        rc = re ? peft_select(h, c->targets, re, "lora", sel) : -1;
        pcre2_code_free(re);
    } else {
        rc = lmp_adapter_select(h, c->targets, sel);
    }
    if (rc != 0) {
        free(sel);
        return -1;
    }
    for (int i = 0; i < h->n_linears; i++) {
        if (!sel[i]) continue;
        lmp_linear *l = &h->linears[i];
        lora *x = lora_new(c, l);
        size_t nA = (size_t)l->in * c->rank;
        if (c->init == LMP_LORA_INIT_GAUSSIAN) {
            for (size_t k = 0; k < nA; k++) x->A[k] = lmp_rng_normal(rng) / (float)c->rank;
        } else { /* kaiming_uniform_(a=sqrt(5)) on [r, in]: gain sqrt(1/3), bound gain*sqrt(3/in) */
            float bound = 1.0f / sqrtf((float)l->in);
            for (size_t k = 0; k < nA; k++) x->A[k] = (2 * lmp_rng_uniform(rng) - 1) * bound;
        }
        lmp_adapter_attach(h, l, lmp_adapter_new(&lora_ops, x));
    }
    free(sel);
    return 0;
}

/* ------------------------------------------------------------ PEFT files */

#define KEY_PREFIX "base_model.model."

/* The regex (PEFT's string form of target_modules, matched with fullmatch
 * against module names) equivalent to our patterns: a glob matching the
 * layer name or a dot-suffix of it. */
static char *targets_regex(const char *targets)
{
    lmp_sbuf b = {0};
    lmp_sbuf_puts(&b, "(.*\\.)?(");
    char *list = strdupCheck(targets), *save = NULL;
    int first = 1;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ' || *tok == '\t') tok++;
        size_t n = strlen(tok);
        while (n && (tok[n - 1] == ' ' || tok[n - 1] == '\t')) tok[--n] = 0;
        if (!n) continue;
        if (!first) lmp_sbuf_putc(&b, '|');
        first = 0;
        for (const char *p = tok; *p; p++) {
            if (*p == '*') lmp_sbuf_puts(&b, ".*");
            else {
                if (strchr("\\^$.|?+()[]{}", *p)) lmp_sbuf_putc(&b, '\\');
                lmp_sbuf_putc(&b, *p);
            }
        }
    }
    lmp_sbuf_putc(&b, ')');
    free(list);
    return b.s;
}

/* target_modules as PEFT reads it: a regex as itself, globs as the
 * equivalent regex, plain names and dot-suffixes as a list. */
static json_t *targets_json(const lmp_lora_config *c)
{
    const char *targets = c->targets;
    if (c->targets_regex) return json_string(targets);
    if (strchr(targets, '*')) {
        char *re = targets_regex(targets);
        json_t *j = json_string(re);
        free(re);
        return j;
    }
    json_t *arr = json_array();
    char *list = strdupCheck(targets), *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ' || *tok == '\t') tok++;
        size_t n = strlen(tok);
        while (n && (tok[n - 1] == ' ' || tok[n - 1] == '\t')) tok[--n] = 0;
        if (n) json_array_append_new(arr, json_string(tok));
    }
    free(list);
    return arr;
}

/* dst[c, r] = src[r, c] */
static void transpose(float *dst, const float *src, int rows, int cols)
{
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) dst[(size_t)j * rows + i] = src[(size_t)i * cols + j];
}

/* The PEFT folder of h's LoRA adapters (those of other kinds are theirs to save). */
static int peft_save(const lmp_adapter_host *h, const char *dir, const char *task_type, const char *base,
                     const lmp_lora_extra *extra, int n_extra)
{
    const lmp_lora_config *c = lmp_lora_config_of(h);
    if (lmp_mkdirs(dir) != 0) return -1;

    int n = 2 * lmp_lora_count(h) + n_extra;
    lmp_st_tensor *t = callocCheck((size_t)n, sizeof *t);
    int64_t (*shapes)[2] = callocCheck((size_t)n, sizeof *shapes);
    char **names = callocCheck((size_t)n, sizeof *names);
    float **bufs = callocCheck((size_t)n, sizeof *bufs);
    int k = 0;
    for (int i = 0; i < h->n_attached; i++) {
        if (h->attached[i]->ops != &lora_ops) continue;
        const lmp_linear *l = h->attached[i]->layer;
        lora *x = h->attached[i]->ctx;
        char *mod = module_name(h, l);
        /* lora_A.weight [r, in] = A^T;  lora_B.weight [out, r] = B^T */
        names[k] = lmp_strfmt(KEY_PREFIX "%s.lora_A.weight", mod);
        bufs[k] = mallocCheck((size_t)l->in * x->r * sizeof(float));
        transpose(bufs[k], x->A, l->in, x->r);
        shapes[k][0] = x->r, shapes[k][1] = l->in;
        t[k] = (lmp_st_tensor){ names[k], "F32", 2, shapes[k], bufs[k] };
        k++;
        names[k] = lmp_strfmt(KEY_PREFIX "%s.lora_B.weight", mod);
        bufs[k] = mallocCheck((size_t)x->r * l->out * sizeof(float));
        transpose(bufs[k], x->B, x->r, l->out);
        shapes[k][0] = l->out, shapes[k][1] = x->r;
        t[k] = (lmp_st_tensor){ names[k], "F32", 2, shapes[k], bufs[k] };
        k++;
        free(mod);
    }
    for (int i = 0; i < n_extra; i++, k++) {
        names[k] = lmp_strfmt(KEY_PREFIX "%s", extra[i].name);
        shapes[k][0] = extra[i].shape[0], shapes[k][1] = extra[i].shape[1];
        t[k] = (lmp_st_tensor){ names[k], "F32", extra[i].ndim, shapes[k], extra[i].data };
    }
    char *stp = lmp_strfmt("%s/adapter_model.safetensors", dir);
    lmp_st_kv meta[] = { { "format", "pt" } };
    int rc = lmp_st_write(stp, t, n, meta, 1);
    free(stp);
    for (int i = 0; i < n; i++) free(names[i]), free(bufs[i]);
    free(t), free(shapes), free(names), free(bufs);
    if (rc != 0) return -1;

    /* adapter_config.json as PEFT's save_pretrained writes it (sorted keys) */
    json_t *j = json_object();
    json_object_set_new(j, "alpha_pattern", json_object());
    json_object_set_new(j, "base_model_name_or_path", base ? json_string(base) : json_null());
    json_object_set_new(j, "bias", json_string("none"));
    json_object_set_new(j, "fan_in_fan_out", json_true()); /* GPT-2's Conv1D stores [in, out] */
    json_object_set_new(j, "inference_mode", json_true());
    json_object_set_new(j, "init_lora_weights",
                        c->init == LMP_LORA_INIT_GAUSSIAN ? json_string("gaussian") : json_true());
    json_object_set_new(j, "layers_pattern", json_null());
    json_object_set_new(j, "layers_to_transform", json_null());
    json_object_set_new(j, "lora_alpha", c->alpha == floor(c->alpha) && fabs(c->alpha) < 1e15
                                             ? json_integer((json_int_t)c->alpha)
                                             : json_real(c->alpha));
    json_object_set_new(j, "lora_dropout", json_real(c->dropout));
    json_t *mts;
    if (task_type && strcmp(task_type, "SEQ_CLS") == 0) { /* what PeftModelForSequenceClassification adds */
        mts = json_array();
        json_array_append_new(mts, json_string("classifier"));
        json_array_append_new(mts, json_string("score"));
    } else if (n_extra > 0) {
        mts = json_array();
        for (int i = 0; i < n_extra; i++) {
            char *m = strdupCheck(extra[i].name), *dot = strrchr(m, '.');
            if (dot) *dot = 0;
            json_array_append_new(mts, json_string(m));
            free(m);
        }
    } else {
        mts = json_null();
    }
    json_object_set_new(j, "modules_to_save", mts);
    json_object_set_new(j, "peft_type", json_string("LORA"));
    json_object_set_new(j, "r", json_integer(c->rank));
    json_object_set_new(j, "rank_pattern", json_object());
    json_object_set_new(j, "revision", json_null());
    json_object_set_new(j, "target_modules", targets_json(c));
    json_object_set_new(j, "task_type", task_type ? json_string(task_type) : json_null());
    json_object_set_new(j, "use_dora", json_false());
    json_object_set_new(j, "use_rslora", json_boolean(c->rslora));
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    json_decref(j);
    char *cfgp = lmp_strfmt("%s/adapter_config.json", dir);
    char *body = lmp_strfmt("%s\n", s);
    rc = lmp_write_file_atomic(cfgp, body, strlen(body));
    free(body), free(cfgp), free(s);
    return rc;
}

int lmp_lora_save(const lmp_adapter_host *h, const char *dir, const char *task_type, const char *base,
                  const lmp_lora_extra *extra, int n_extra)
{
    if (!lmp_lora_config_of(h)) return lmp_error("%s: the %s model has no LoRA adapters to save", dir, h->model);
    for (int i = 0; i < h->n_attached; i++)
        if (h->attached[i]->ops != &lora_ops)
            return lmp_error("%s: adapter kind '%s' on %s cannot be saved in a PEFT LoRA folder", dir,
                             h->attached[i]->ops->kind, h->attached[i]->layer->name);
    return peft_save(h, dir, task_type, base, extra, n_extra);
}

/* The kind's save (adapter.h): the PEFT folder, the model's extra tensors
 * (its head) in it as modules_to_save. */
static int lora_kind_save(const lmp_adapter_host *h, const char *dir, const lmp_adapter_files *f)
{
    lmp_lora_extra *x = callocCheck((size_t)f->n_extra + 1, sizeof *x);
    for (int i = 0; i < f->n_extra; i++)
        x[i] = (lmp_lora_extra){ f->extra[i].name, f->extra[i].data, f->extra[i].ndim,
                                 { f->extra[i].shape[0], f->extra[i].shape[1] } };
    int rc = peft_save(h, dir, f->task_type, f->base, x, f->n_extra);
    free(x);
    return rc != 0 ? -1 : f->n_extra > 0;
}

/* ---- loading */

typedef struct {
    lmp_lora_config cfg;  /* cfg.targets_regex: target_modules is a regex */
    char *targets_text;   /* list joined with commas, or the regex */
    pcre2_code *re;       /* the regex, compiled */
} peft_config;

static int bad_key(const char *path, const char *key, const char *want)
{
    return lmp_error("%s: \"%s\" must be %s", path, key, want);
}

static int read_peft_config(const char *path, peft_config *pc)
{
    json_t *root;
    if (lmp_json_read_file(path, 1 << 20, 0, NULL, &root) != 0) return -1;
    int rc = -1;
    json_t *v;
    memset(pc, 0, sizeof *pc);
    lmp_lora_config *c = &pc->cfg;
    v = json_object_get(root, "peft_type");
    if (!json_is_string(v)) {
        bad_key(path, "peft_type", "a string");
        goto done;
    }
    if (strcmp(json_string_value(v), "LORA") != 0) {
        lmp_error("%s: peft_type \"%s\" is not supported (only LORA)", path, json_string_value(v));
        goto done;
    }
    v = json_object_get(root, "r");
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1 << 20) {
        bad_key(path, "r", "a positive integer");
        goto done;
    }
    c->rank = (int)json_integer_value(v);
    v = json_object_get(root, "lora_alpha");
    if (v && !json_is_number(v)) {
        bad_key(path, "lora_alpha", "a number");
        goto done;
    }
    c->alpha = v ? json_number_value(v) : 8; /* PEFT's default */
    v = json_object_get(root, "lora_dropout");
    if (v && !json_is_number(v)) {
        bad_key(path, "lora_dropout", "a number");
        goto done;
    }
    c->dropout = v ? json_number_value(v) : 0;
    v = json_object_get(root, "use_rslora");
    if (v && !json_is_boolean(v)) {
        bad_key(path, "use_rslora", "true or false");
        goto done;
    }
    c->rslora = v && json_is_true(v);
    v = json_object_get(root, "init_lora_weights");
    c->init = json_is_string(v) && strcmp(json_string_value(v), "gaussian") == 0 ? LMP_LORA_INIT_GAUSSIAN
                                                                                 : LMP_LORA_INIT_KAIMING;
    v = json_object_get(root, "bias");
    if (v && !json_is_null(v) && (!json_is_string(v) || strcmp(json_string_value(v), "none") != 0)) {
        lmp_error("%s: bias \"%s\" is not supported (only \"none\")", path,
                  json_is_string(v) ? json_string_value(v) : "?");
        goto done;
    }
    if (json_is_true(json_object_get(root, "use_dora"))) {
        lmp_error("%s: use_dora is not supported (plain LoRA only)", path);
        goto done;
    }
    static const char *const patterns[] = { "rank_pattern", "alpha_pattern" };
    for (int i = 0; i < 2; i++) {
        v = json_object_get(root, patterns[i]);
        if (v && !json_is_null(v) && (!json_is_object(v) || json_object_size(v) > 0)) {
            lmp_error("%s: %s is not supported (one r and lora_alpha for every layer)", path, patterns[i]);
            goto done;
        }
    }
    v = json_object_get(root, "layers_to_transform");
    if (v && !json_is_null(v)) {
        lmp_error("%s: layers_to_transform is not supported (use target_modules)", path);
        goto done;
    }
    v = json_object_get(root, "target_modules");
    if (json_is_string(v)) {
        c->targets_regex = 1;
        pc->targets_text = strdupCheck(json_string_value(v));
        if (!(pc->re = regex_compile(pc->targets_text, path))) goto done;
    } else if (json_is_array(v) && json_array_size(v) > 0) {
        lmp_sbuf b = {0};
        lmp_sbuf_puts(&b, "");
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e) || !*json_string_value(e) || strchr(json_string_value(e), ',')) {
                lmp_sbuf_free(&b);
                bad_key(path, "target_modules", "a regex or a list of module names");
                goto done;
            }
            if (i) lmp_sbuf_putc(&b, ',');
            lmp_sbuf_puts(&b, json_string_value(e));
        }
        pc->targets_text = b.s;
    } else {
        bad_key(path, "target_modules", "a regex or a list of module names");
        goto done;
    }
    c->targets = pc->targets_text;
    rc = config_check(c, path);
done:
    json_decref(root);
    return rc;
}

static void peft_config_free(peft_config *pc)
{
    free(pc->targets_text);
    pcre2_code_free(pc->re);
}

/* The F32 data of `key`, checked to be [d0, d1]; `rank_dim` (0 or 1) is the
 * dimension holding r, reported as a rank mismatch when only it differs. */
static int get_matrix(lmp_st *st, const char *key, int64_t d0, int64_t d1, int rank_dim, const float **out)
{
    const lmp_st_info *ti = lmp_st_find(st, key);
    if (!ti) return lmp_error("%s: missing tensor \"%s\"", lmp_st_path(st), key);
    int64_t want[2] = { d0, d1 };
    if (ti->ndim == 2 && ti->shape[1 - rank_dim] == want[1 - rank_dim] && ti->shape[rank_dim] != want[rank_dim])
        return lmp_error("%s: tensor \"%s\" has rank %lld but adapter_config.json has r = %lld", lmp_st_path(st),
                         key, (long long)ti->shape[rank_dim], (long long)want[rank_dim]);
    if (ti->ndim != 2 || ti->shape[0] != d0 || ti->shape[1] != d1) {
        char have[200], exp[64];
        lmp_st_shape_text(have, sizeof have, ti->shape, ti->ndim);
        lmp_st_shape_text(exp, sizeof exp, want, 2);
        return lmp_error("%s: tensor \"%s\" has shape %s, expected %s", lmp_st_path(st), key, have, exp);
    }
    if (strcmp(ti->dtype, "F32") != 0)
        return lmp_error("%s: tensor \"%s\" has dtype %s, expected F32", lmp_st_path(st), key, ti->dtype);
    const void *d;
    if (lmp_st_get(st, key, "F32", &d, NULL, NULL) != 0) return -1;
    *out = d;
    return 0;
}

int lmp_lora_load(lmp_adapter_host *h, const char *dir, const char *const *extra, lmp_lora_config *cfg,
                  lmp_st **st_out)
{
    if (st_out) *st_out = NULL;
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return lmp_error("%s: not a PEFT adapter folder (no such directory)", dir);
    if (lmp_lora_count(h) > 0) return lmp_error("%s: the %s model already has LoRA adapters", dir, h->model);
    char *cfgp = lmp_strfmt("%s/adapter_config.json", dir);
    char *stp = lmp_strfmt("%s/adapter_model.safetensors", dir);
    peft_config pc = { 0 };
    lmp_st *st = NULL;
    int n = h->n_linears, rc = -1, bad = 0;
    unsigned char *sel = callocCheck((size_t)n + 1, 1);
    const float **As = callocCheck((size_t)n + 1, sizeof *As), **Bs = callocCheck((size_t)n + 1, sizeof *Bs);
    if (stat(cfgp, &sb) != 0) {
        lmp_error("%s: no adapter_config.json in the folder", dir);
        free(cfgp), free(stp), free(sel), free(As), free(Bs);
        return -1;
    }
    if (read_peft_config(cfgp, &pc) != 0) goto out;
    if (stat(stp, &sb) != 0) {
        char *bin = lmp_strfmt("%s/adapter_model.bin", dir);
        lmp_error("%s: no adapter_model.safetensors in the folder%s", dir,
                  stat(bin, &sb) == 0 ? " (adapter_model.bin is not supported: convert it to safetensors)" : "");
        free(bin);
        goto out;
    }
    if (lmp_st_open(stp, &st) != 0) goto out;

    if (peft_select(h, pc.targets_text, pc.re, cfgp, sel) != 0) goto out;
    for (int i = 0; i < n && !bad; i++) {
        if (!sel[i]) continue;
        lmp_linear *l = &h->linears[i];
        char *mod = module_name(h, l);
        char *ka = lmp_strfmt(KEY_PREFIX "%s.lora_A.weight", mod);
        char *kb = lmp_strfmt(KEY_PREFIX "%s.lora_B.weight", mod);
        if (get_matrix(st, ka, pc.cfg.rank, l->in, 0, &As[i]) != 0 ||
            get_matrix(st, kb, l->out, pc.cfg.rank, 1, &Bs[i]) != 0)
            bad = 1;
        free(ka), free(kb), free(mod);
    }
    if (bad) goto out;
    /* every key must be accounted for */
    for (int k = 0; k < lmp_st_count(st); k++) {
        const char *key = lmp_st_info_at(st, k)->name;
        int known = 0;
        if (strncmp(key, KEY_PREFIX, strlen(KEY_PREFIX)) == 0) {
            const char *rest = key + strlen(KEY_PREFIX);
            for (int e = 0; extra && extra[e] && !known; e++) known = strcmp(rest, extra[e]) == 0;
            for (int i = 0; i < n && !known; i++) {
                if (!sel[i]) continue;
                size_t pl = strlen(h->prefix), nl = strlen(h->linears[i].name);
                known = strncmp(rest, h->prefix, pl) == 0 && strncmp(rest + pl, h->linears[i].name, nl) == 0 &&
                        (strcmp(rest + pl + nl, ".lora_A.weight") == 0 || strcmp(rest + pl + nl, ".lora_B.weight") == 0);
            }
        }
        if (!known) {
            lmp_error("%s: unexpected tensor \"%s\" (not a LoRA weight of a targeted layer of the %s model)", stp,
                      key, h->model);
            goto out;
        }
    }
    /* all checked: attach */
    for (int i = 0; i < n; i++) {
        if (!sel[i]) continue;
        lmp_linear *l = &h->linears[i];
        lora *x = lora_new(&pc.cfg, l);
        transpose(x->A, As[i], pc.cfg.rank, l->in);
        transpose(x->B, Bs[i], l->out, pc.cfg.rank);
        lmp_adapter_attach(h, l, lmp_adapter_new(&lora_ops, x));
    }
    if (cfg) *cfg = *lmp_lora_config_of(h);
    rc = 0;
out:
    peft_config_free(&pc);
    if (rc == 0 && st_out) *st_out = st;
    else lmp_st_close(st);
    free(cfgp), free(stp), free(sel), free(As), free(Bs);
    return rc == 0 ? 0 : -1;
}

/* The kind's load (adapter.h): the PEFT folder, and the model's extra
 * tensors from it, each required, F32 of the model's shape. */
static int lora_kind_load(lmp_adapter_host *h, const char *dir, const lmp_adapter_files *f)
{
    const char **names = callocCheck((size_t)f->n_extra + 1, sizeof *names);
    for (int i = 0; i < f->n_extra; i++) names[i] = f->extra[i].name;
    lmp_st *st = NULL;
    int rc = lmp_lora_load(h, dir, names, NULL, &st);
    free(names);
    for (int i = 0; rc == 0 && i < f->n_extra; i++) {
        const lmp_adapter_tensor *e = &f->extra[i];
        char *key = lmp_strfmt(KEY_PREFIX "%s", e->name);
        const lmp_st_info *ti = lmp_st_find(st, key);
        const void *d;
        if (!ti) {
            rc = lmp_error("%s: missing tensor \"%s\"", lmp_st_path(st), key);
        } else if (ti->ndim != e->ndim || ti->shape[0] != e->shape[0] || (e->ndim == 2 && ti->shape[1] != e->shape[1]) ||
                   strcmp(ti->dtype, "F32") != 0) {
            if (e->ndim == 2)
                rc = lmp_error("%s: tensor \"%s\" must be F32 [%lld, %lld] (%s)", lmp_st_path(st), key,
                               (long long)e->shape[0], (long long)e->shape[1], e->dims);
            else
                rc = lmp_error("%s: tensor \"%s\" must be F32 [%lld] (%s)", lmp_st_path(st), key,
                               (long long)e->shape[0], e->dims);
        } else if ((rc = lmp_st_get(st, key, "F32", &d, NULL, NULL)) == 0) {
            memcpy(e->data, d, (size_t)e->shape[0] * (e->ndim == 2 ? (size_t)e->shape[1] : 1) * sizeof(float));
        }
        free(key);
    }
    lmp_st_close(st);
    return rc != 0 ? -1 : f->n_extra > 0;
}
