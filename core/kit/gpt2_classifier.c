/*
 * gpt2_classifier.c — GPT-2 sequence classification (see gpt2_classifier.h):
 * forward to the last real token, the `score` head, backward through
 * lmp_gpt2_backward_from_hidden, the parameter group, save and load (kind
 * "gpt2", registered here).
 */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gpt2_classifier.h"
#include "jsonfile.h"
#include "safetensors.h"

typedef struct {
    lmp_classifier c; /* first, so that c->impl == this */
    lmp_gpt2 *m;
    lmp_adapter_host host;
    float *score;     /* [L, C] */
    lmp_params_group g;
    int g_built, i_score;
    int base_changed; /* the body's weights may differ from base_path's */
    char *base_path;
    /* loaded from a folder that refers to base_path: its weights' SHA-256
     * then, and whether classifier.json recorded the same (0: no record) */
    char base_sha256[65];
    int base_verified;
    /* the last forward */
    int B, T, cap_B, cap_BT, trained;
    int *mask, *last; /* [B, T], [B] */
    float *h, *dh;    /* [B, C] */
    float *dlnf;      /* [B, T, C] */
} gpt2_cls;

static gpt2_cls *self(const lmp_classifier *c) { return (gpt2_cls *)c->impl; }

/* ------------------------------------------------------------ forward / backward */

static int cls_forward(lmp_classifier *c, const int *ids, const int *len, int B, int T, float *logits, int train)
{
    gpt2_cls *s = self(c);
    int C = s->m->config.n_embd, L = c->num_labels;
    if (B < 1 || T < 1) return lmp_error("gpt2 classifier: empty batch (B=%d, T=%d)", B, T);
    for (int b = 0; b < B; b++)
        if (len[b] < 1 || len[b] > T)
            return lmp_error("gpt2 classifier: row %d has length %d, outside [1, %d]", b, len[b], T);
    if (B > s->cap_B || (size_t)B * T > (size_t)s->cap_BT) {
        s->cap_B = B > s->cap_B ? B : s->cap_B;
        s->cap_BT = B * T > s->cap_BT ? B * T : s->cap_BT;
        free(s->mask), free(s->last), free(s->h), free(s->dlnf);
        s->mask = mallocCheck((size_t)s->cap_BT * sizeof *s->mask);
        s->last = mallocCheck((size_t)s->cap_B * sizeof *s->last);
        s->h = mallocCheck((size_t)s->cap_B * 2 * C * sizeof(float));
        s->dh = s->h + (size_t)s->cap_B * C;
        s->dlnf = NULL; /* sized on first backward */
    }
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) s->mask[(size_t)b * T + t] = t < len[b];
        s->last[b] = len[b] - 1;
    }
    s->host.train = train != 0;
    s->trained = 0;
    int rc = lmp_gpt2_forward(s->m, ids, s->mask, B, T, train != 0);
    s->host.train = 0;
    if (rc != 0) return -1;
    s->B = B, s->T = T;
    const float *lnf = s->m->acts.lnf;
    for (int b = 0; b < B; b++) {
        const float *hb = lnf + ((size_t)b * T + s->last[b]) * C;
        memcpy(s->h + (size_t)b * C, hb, (size_t)C * sizeof(float));
        for (int k = 0; k < L; k++) {
            const float *w = s->score + (size_t)k * C;
            float acc = 0;
            for (int i = 0; i < C; i++) acc += hb[i] * w[i];
            logits[(size_t)b * L + k] = acc;
        }
    }
    s->trained = train != 0;
    return 0;
}

static lmp_params_group *cls_params(lmp_classifier *c);

static int cls_backward(lmp_classifier *c, const float *dlogits)
{
    gpt2_cls *s = self(c);
    if (!s->trained) return lmp_error("gpt2 classifier: backward without a forward in training mode");
    if (!cls_params(c)) return -1;
    int B = s->B, T = s->T, C = s->m->config.n_embd, L = c->num_labels;
    float *dscore = s->g.t[s->i_score].grad;
    for (int b = 0; b < B; b++) {
        const float *dl = dlogits + (size_t)b * L, *hb = s->h + (size_t)b * C;
        float *dh = s->dh + (size_t)b * C;
        memset(dh, 0, (size_t)C * sizeof(float));
        for (int k = 0; k < L; k++) {
            const float *w = s->score + (size_t)k * C;
            float *dw = dscore ? dscore + (size_t)k * C : NULL;
            for (int i = 0; i < C; i++) {
                dh[i] += dl[k] * w[i];
                if (dw) dw[i] += dl[k] * hb[i];
            }
        }
    }
    if (!s->dlnf) s->dlnf = mallocCheck((size_t)s->cap_BT * C * sizeof(float));
    memset(s->dlnf, 0, (size_t)B * T * C * sizeof(float));
    for (int b = 0; b < B; b++)
        memcpy(s->dlnf + ((size_t)b * T + s->last[b]) * C, s->dh + (size_t)b * C, (size_t)C * sizeof(float));
    return lmp_gpt2_backward_from_hidden(s->m, s->dlnf);
}

/* ------------------------------------------------------------ parameters */

static int freeze_all(void *user, const char *name, int def)
{
    (void)user, (void)name, (void)def;
    return LMP_PARAM_FROZEN;
}

static lmp_params_group *cls_params(lmp_classifier *c)
{
    gpt2_cls *s = self(c);
    if (s->g_built && !s->host.changed) return &s->g;
    if (s->g_built) lmp_params_free(&s->g);
    s->g_built = 0;
    lmp_params_init(&s->g);
    if (!s->host.freeze_base) { /* the body trains too: it must be writable */
        lmp_gpt2_own_params(s->m);
        s->base_changed = 1;
    }
    int rc = lmp_gpt2_params_add(s->m, &s->g, s->host.freeze_base ? freeze_all : NULL, NULL);
    if (rc == 0) rc = lmp_params_add(&s->g, "score.weight", s->score, (size_t)c->num_labels * s->m->config.n_embd,
                                     LMP_PARAM_TRAIN);
    s->i_score = s->g.count - 1;
    if (rc == 0) rc = lmp_adapter_host_params(&s->host, &s->g);
    if (rc == 0) {
        lmp_params_alloc_grads(&s->g);
        rc = lmp_gpt2_bind_grads(s->m, &s->g);
    }
    if (rc != 0) {
        lmp_params_free(&s->g);
        return NULL;
    }
    s->g_built = 1;
    s->host.changed = 0;
    return &s->g;
}

static lmp_adapter_host *cls_adapters(lmp_classifier *c) { return &self(c)->host; }

static const float *cls_token_embedding(const lmp_classifier *c, int *V, int *C)
{
    const lmp_gpt2 *m = self(c)->m;
    *V = m->config.vocab_size;
    *C = m->config.n_embd;
    return m->wte;
}

static int make_writable(lmp_adapter_host *h, lmp_linear *l)
{
    (void)l;
    gpt2_cls *s = h->model_ctx;
    s->base_changed = 1;
    return lmp_gpt2_own_params(s->m);
}

/* ------------------------------------------------------------ create / destroy */

static void cls_destroy(lmp_classifier *c)
{
    if (!c) return;
    gpt2_cls *s = self(c);
    lmp_adapter_host_free(&s->host);
    if (s->g_built) lmp_params_free(&s->g);
    lmp_gpt2_free(s->m);
    free(s->score), free(s->base_path);
    free(s->mask), free(s->last), free(s->h), free(s->dlnf);
    free(s);
}

static int cls_save(const lmp_classifier *c, const char *dir);

int lmp_gpt2_classifier_new(lmp_gpt2 *m, int num_labels, const char *base_path, lmp_classifier **out)
{
    *out = NULL;
    if (num_labels < 1 || num_labels > 1000000)
        return lmp_error("gpt2 classifier: num_labels %d out of range [1, 1000000]", num_labels);
    gpt2_cls *s = callocCheck(1, sizeof *s);
    s->m = m;
    s->score = callocCheck((size_t)num_labels * m->config.n_embd, sizeof(float));
    s->base_path = base_path ? strdupCheck(base_path) : NULL;
    s->base_changed = !base_path;
    s->host = (lmp_adapter_host){ .model = "gpt2", .prefix = "transformer.", .linears = m->linears,
                                  .n_linears = m->n_linears, .model_ctx = s, .make_writable = make_writable };
    lmp_rng_seed(&s->host.rng, 0x6c6f7261);
    lmp_classifier *c = &s->c;
    c->kind = "gpt2";
    c->num_labels = num_labels;
    c->max_len = m->config.n_ctx;
    c->impl = s;
    c->forward = cls_forward;
    c->backward = cls_backward;
    c->params = cls_params;
    c->save = cls_save;
    c->destroy = cls_destroy;
    c->adapters = cls_adapters;
    c->token_embedding = cls_token_embedding;
    *out = c;
    return 0;
}

void lmp_gpt2_classifier_init_head(lmp_classifier *c, float std, uint64_t seed)
{
    gpt2_cls *s = self(c);
    lmp_rng rng;
    lmp_rng_seed(&rng, seed);
    size_t n = (size_t)c->num_labels * s->m->config.n_embd;
    for (size_t i = 0; i < n; i++) s->score[i] = std * lmp_rng_normal(&rng);
}

lmp_gpt2 *lmp_gpt2_classifier_model(lmp_classifier *c)
{
    return c && c->destroy == cls_destroy ? self(c)->m : NULL;
}

float *lmp_gpt2_classifier_head(lmp_classifier *c)
{
    return c && c->destroy == cls_destroy ? self(c)->score : NULL;
}

int lmp_gpt2_classifier_base(lmp_classifier *c, const char **path, const char **sha256, int *verified)
{
    if (!c || c->destroy != cls_destroy || !self(c)->base_sha256[0]) return 0;
    gpt2_cls *s = self(c);
    *path = s->base_path;
    *sha256 = s->base_sha256;
    *verified = s->base_verified;
    return 1;
}

/* ------------------------------------------------------------ save / load */

/* The safetensors file whose size identifies a base checkpoint. */
static char *weights_file(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return lmp_strfmt("%s/model.safetensors", path);
    return strdupCheck(path);
}

static int file_bytes(const char *path, long long *bytes)
{
    char *f = weights_file(path);
    struct stat sb;
    int rc = stat(f, &sb);
    if (rc != 0) lmp_error("%s: %s", f, strerror(errno));
    else *bytes = (long long)sb.st_size;
    free(f);
    return rc == 0 ? 0 : -1;
}

/* The SHA-256 of a base checkpoint's weights file (what `sha256sum` says):
 * the size alone does not tell two bases of one shape apart. */
static int base_digest(const char *path, char hex[65])
{
    char *f = weights_file(path);
    int rc = lmp_sha256_file_memo(f, hex);
    free(f);
    return rc;
}

static int cls_save(const lmp_classifier *c, const char *dir)
{
    gpt2_cls *s = self(c);
    if (lmp_mkdirs(dir) != 0) return -1;
    json_t *j = json_object();
    json_object_set_new(j, "kind", json_string("gpt2"));
    json_object_set_new(j, "num_labels", json_integer(c->num_labels));
    json_object_set_new(j, "tokenizer_digest", json_string(c->tokenizer_digest));
    json_object_set_new(j, "freeze_base", json_boolean(s->host.freeze_base));
    int rc = 0;
    long long bytes = 0;
    char sha[65];
    if (s->base_changed || !s->base_path || file_bytes(s->base_path, &bytes) != 0 ||
        base_digest(s->base_path, sha) != 0) {
        char *mdir = lmp_strfmt("%s/model", dir);
        rc = lmp_gpt2_save(s->m, mdir);
        free(mdir);
        json_object_set_new(j, "base", json_string("model"));
    } else {
        json_t *b = json_object();
        json_object_set_new(b, "path", json_string(s->base_path));
        json_object_set_new(b, "bytes", json_integer(bytes));
        json_object_set_new(b, "sha256", json_string(sha));
        json_object_set_new(j, "base", b);
    }
    int C = s->m->config.n_embd, head_saved = 0;
    lmp_adapter_tensor head = { "score.weight", s->score, 2, { c->num_labels, C }, "num_labels, n_embd" };
    lmp_adapter_files f = { "SEQ_CLS", s->base_path, &head, 1 };
    if (rc == 0 && lmp_adapter_count(&s->host, NULL) > 0) {
        /* each kind its files (LoRA: the PEFT folder, with the head); the
         * kinds, in order, for the load */
        rc = lmp_adapter_host_save(&s->host, dir, &f, &head_saved);
        const lmp_adapter_ops *kinds[16];
        int n = lmp_adapter_kinds(&s->host, kinds, 16);
        json_t *ja = json_array();
        for (int k = 0; k < n; k++) json_array_append_new(ja, json_string(kinds[k]->kind));
        json_object_set_new(j, "adapters", ja);
    }
    if (rc == 0 && !head_saved) {
        int64_t shape[2] = { c->num_labels, C };
        lmp_st_tensor t = { "score.weight", "F32", 2, shape, s->score };
        char *p = lmp_strfmt("%s/score.safetensors", dir);
        rc = lmp_st_write(p, &t, 1, NULL, 0);
        free(p);
    }
    if (rc == 0) {
        char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        char *body = lmp_strfmt("%s\n", text);
        char *p = lmp_strfmt("%s/classifier.json", dir);
        rc = lmp_write_file_atomic(p, body, strlen(body));
        free(p), free(body), free(text);
    }
    json_decref(j);
    return rc;
}

/* score.weight [L, C] (F32) of `st` under `key` into dst. */
static int read_head(lmp_st *st, const char *key, int L, int C, float *dst)
{
    const lmp_st_info *ti = lmp_st_find(st, key);
    if (!ti) return lmp_error("%s: missing tensor \"%s\"", lmp_st_path(st), key);
    if (ti->ndim != 2 || ti->shape[0] != L || ti->shape[1] != C || strcmp(ti->dtype, "F32") != 0)
        return lmp_error("%s: tensor \"%s\" must be F32 [%d, %d] (num_labels, n_embd)", lmp_st_path(st), key, L, C);
    const void *d;
    if (lmp_st_get(st, key, "F32", &d, NULL, NULL) != 0) return -1;
    memcpy(dst, d, (size_t)L * C * sizeof(float));
    return 0;
}

/* The base a saved classifier refers to must be the one it was trained
 * over: a head and adapters over another body of the same shape load
 * without complaint and predict nonsense.  sha: the base's digest now;
 * *verified: whether classifier.json recorded one (older lmpipe did not:
 * the caller warns). */
static int check_base(const char *info, const char *base, const json_t *recorded, char sha[65], int *verified)
{
    *verified = 0;
    if (base_digest(base, sha) != 0) return -1;
    if (!recorded) return 0;
    const char *want = json_string_value(recorded);
    if (!want || strlen(want) != 64) return lmp_error("%s: \"base\".\"sha256\" must be 64 hex digits", info);
    if (strcmp(want, sha) == 0) {
        *verified = 1;
        return 0;
    }
    char *f = weights_file(base);
    lmp_error("%s: base model %s has sha256 %s, but the classifier was trained over sha256 %s: "
              "refusing to load it over another base", info, f, sha, want);
    free(f);
    return -1;
}

int lmp_gpt2_classifier_load(const char *dir, lmp_classifier **out)
{
    *out = NULL;
    char *info = lmp_strfmt("%s/classifier.json", dir), *base = NULL, sha[65] = "";
    int verified = 0;
    json_t *j = NULL;
    lmp_gpt2 *m = NULL;
    lmp_classifier *c = NULL;
    lmp_st *st = NULL;
    int rc = -1;
    if (lmp_json_read_file(info, 1 << 20, 0, NULL, &j) != 0) goto done;
    json_t *nl = json_object_get(j, "num_labels"), *jb = json_object_get(j, "base");
    const char *tok = json_string_value(json_object_get(j, "tokenizer_digest"));
    if (!json_is_integer(nl)) {
        lmp_error("%s: \"num_labels\" missing or not an integer", info);
        goto done;
    }
    if (json_is_string(jb) && strcmp(json_string_value(jb), "model") == 0) {
        char *mdir = lmp_strfmt("%s/model", dir);
        rc = lmp_gpt2_load(mdir, &m);
        free(mdir);
    } else if (json_is_object(jb) && json_is_string(json_object_get(jb, "path")) &&
               json_is_integer(json_object_get(jb, "bytes"))) {
        base = strdupCheck(json_string_value(json_object_get(jb, "path")));
        long long want = json_integer_value(json_object_get(jb, "bytes")), have;
        if ((rc = file_bytes(base, &have)) == 0 && have != want)
            rc = lmp_error("%s: base model %s has %lld bytes but had %lld when the classifier was saved", info,
                           base, have, want);
        if (rc == 0) rc = check_base(info, base, json_object_get(jb, "sha256"), sha, &verified);
        if (rc == 0) rc = lmp_gpt2_load(base, &m);
    } else {
        lmp_error("%s: \"base\" must be \"model\" or {\"path\", \"bytes\"}", info);
        goto done;
    }
    if (rc != 0) goto done;
    if ((rc = lmp_gpt2_classifier_new(m, (int)json_integer_value(nl), base, &c)) != 0) goto done;
    m = NULL;
    gpt2_cls *s = self(c);
    s->base_changed = !base;
    memcpy(s->base_sha256, sha, sizeof sha);
    s->base_verified = verified;
    s->host.freeze_base = json_is_true(json_object_get(j, "freeze_base"));
    if (tok) snprintf(c->tokenizer_digest, sizeof c->tokenizer_digest, "%s", tok);
    /* the adapter kinds, in the order saved; a folder from before that list
     * was recorded has LoRA's PEFT files or no adapters */
    json_t *ja = json_object_get(j, "adapters");
    const char *kinds[16];
    int n_kinds = 0, head_loaded = 0;
    if (ja && (!json_is_array(ja) || json_array_size(ja) > 16))
        rc = lmp_error("%s: \"adapters\" must be a list of at most 16 adapter kinds", info);
    for (size_t k = 0; rc == 0 && ja && k < json_array_size(ja); k++)
        if (!(kinds[n_kinds++] = json_string_value(json_array_get(ja, k))))
            rc = lmp_error("%s: \"adapters\"[%zu] is not an adapter kind's name", info, k);
    if (!ja) {
        char *peft = lmp_strfmt("%s/adapter_config.json", dir);
        struct stat sb;
        if (stat(peft, &sb) == 0) kinds[n_kinds++] = "lora";
        free(peft);
    }
    lmp_adapter_tensor head = { "score.weight", s->score, 2, { c->num_labels, s->m->config.n_embd }, "num_labels, n_embd" };
    lmp_adapter_files f = { "SEQ_CLS", base, &head, 1 };
    if (rc == 0 && n_kinds) rc = lmp_adapter_host_load(&s->host, dir, kinds, n_kinds, &f, &head_loaded);
    if (rc == 0 && !head_loaded) {
        char *p = lmp_strfmt("%s/score.safetensors", dir);
        rc = lmp_st_open(p, &st);
        free(p);
        if (rc == 0) rc = read_head(st, "score.weight", c->num_labels, s->m->config.n_embd, s->score);
    }
done:
    lmp_st_close(st);
    lmp_gpt2_free(m);
    if (rc != 0 && c) c->destroy(c), c = NULL;
    json_decref(j);
    free(info), free(base);
    *out = c;
    return c ? 0 : -1;
}

LMP_CLASSIFIER_KIND(gpt2, "gpt2", lmp_gpt2_classifier_load)
