/*
 * adapter.c — linear layers with adapter hooks, target patterns, and the
 * host's bookkeeping of attached adapters, saving and loading them kind by
 * kind, and the registry of kinds (see adapter.h).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "adapter.h"
#include "nn.h"
#include "qmat.h"

/* ------------------------------------------------------------ layers */

void lmp_linear_forward(const lmp_linear *l, float *out, const float *inp, int N)
{
    if (l->packed) {
        lmp_qmat_forward(out, inp, l->packed, l->bias, N);
    } else if (N == 1) {
        /* One row (a decoding step): OpenBLAS's sgemv streams the weights at
         * memory speed, while its sgemm with M=1 runs at a third of that on
         * the AVX-512 kernels (bench/gpt2/run.sh measures both). */
        if (l->bias) memcpy(out, l->bias, (size_t)l->out * sizeof(float));
        cblas_sgemv(CblasRowMajor, CblasTrans, l->in, l->out, 1.0f, l->weight, l->out, inp, 1,
                    l->bias ? 1.0f : 0.0f, out, 1);
    } else {
        lmp_nn_matmul_forward(out, inp, l->weight, l->bias, N, l->in, l->out);
    }
    for (lmp_adapter *a = l->adapters; a; a = a->next) a->ops->forward(a, l, out, inp, N);
}

/* Backward of a and every adapter after it on the layer: later ones first. */
static const float *chain_backward(lmp_adapter *a, const lmp_linear *l, float *dinp,
                                   const float *dout, const float *inp, int N)
{
    if (!a) return dout;
    const float *d = chain_backward(a->next, l, dinp, dout, inp, N);
    return a->ops->backward(a, l, dinp, d, inp, N);
}

void lmp_linear_backward(const lmp_linear *l, float *dinp, float *dweight, float *dbias,
                         const float *dout, const float *inp, int N)
{
    dout = chain_backward(l->adapters, l, dinp, dout, inp, N);
    lmp_nn_matmul_backward(dinp, dweight, dbias, dout, inp, l->weight, N, l->in, l->out);
}

/* ------------------------------------------------------------ patterns */

/* Glob with '*' only, over the whole of s. */
static int glob(const char *p, const char *s)
{
    for (; *p; p++, s++) {
        if (*p == '*') {
            while (p[1] == '*') p++;
            if (!p[1]) return 1;
            for (; *s; s++)
                if (glob(p + 1, s)) return 1;
            return 0;
        }
        if (*s != *p) return 0;
    }
    return *s == 0;
}

int lmp_adapter_match(const char *name, const char *pattern)
{
    if (!*pattern) return 0;
    if (glob(pattern, name)) return 1;
    for (const char *d = strchr(name, '.'); d; d = strchr(d + 1, '.'))
        if (glob(pattern, d + 1)) return 1;
    return 0;
}

int lmp_adapter_select(const lmp_adapter_host *h, const char *targets, unsigned char *selected)
{
    memset(selected, 0, (size_t)h->n_linears);
    char *list = strdupCheck(targets), *save = NULL;
    int rc = 0, any = 0;
    for (char *tok = strtok_r(list, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ' || *tok == '\t') tok++;
        size_t n = strlen(tok);
        while (n && (tok[n - 1] == ' ' || tok[n - 1] == '\t')) tok[--n] = 0;
        if (!n) continue;
        any = 1;
        int hits = 0;
        for (int i = 0; i < h->n_linears; i++)
            if (lmp_adapter_match(h->linears[i].name, tok)) selected[i] = 1, hits++;
        if (!hits)
            rc = lmp_error("targets: '%s' matches no linear layer of the %s model (names look like '%s')",
                           tok, h->model, h->n_linears ? h->linears[0].name : "?");
    }
    if (rc == 0 && !any) rc = lmp_error("targets: no layer pattern given");
    free(list);
    return rc;
}

/* ------------------------------------------------------------ attaching */

lmp_adapter *lmp_adapter_new(const lmp_adapter_ops *ops, void *ctx)
{
    lmp_adapter *a = callocCheck(1, sizeof *a);
    a->ops = ops;
    a->ctx = ctx;
    return a;
}

int lmp_adapter_attach(lmp_adapter_host *h, lmp_linear *l, lmp_adapter *a)
{
    if (l < h->linears || l >= h->linears + h->n_linears)
        return lmp_error("adapter %s: layer '%s' is not a layer of this %s model", a->ops->kind, l->name,
                         h->model);
    a->layer = l;
    a->host = h;
    a->next = NULL;
    lmp_adapter **p = &l->adapters;
    while (*p) p = &(*p)->next;
    *p = a;
    if (h->n_attached == h->cap_attached) {
        h->cap_attached = h->cap_attached ? 2 * h->cap_attached : 16;
        h->attached = reallocCheck(h->attached, (size_t)h->cap_attached * sizeof *h->attached);
    }
    h->attached[h->n_attached++] = a;
    h->changed = 1;
    return 0;
}

static void destroy(lmp_adapter *a)
{
    if (a->ops->destroy) a->ops->destroy(a);
    free(a);
}

void lmp_adapter_detach(lmp_adapter_host *h, lmp_adapter *a)
{
    for (lmp_adapter **p = &a->layer->adapters; *p; p = &(*p)->next)
        if (*p == a) {
            *p = a->next;
            break;
        }
    for (int i = 0; i < h->n_attached; i++)
        if (h->attached[i] == a) {
            memmove(h->attached + i, h->attached + i + 1, (size_t)(h->n_attached - i - 1) * sizeof *h->attached);
            h->n_attached--;
            break;
        }
    h->changed = 1;
    destroy(a);
}

int lmp_adapter_count(const lmp_adapter_host *h, const char *kind)
{
    int n = 0;
    for (int i = 0; i < h->n_attached; i++)
        n += !kind || strcmp(h->attached[i]->ops->kind, kind) == 0;
    return n;
}

int lmp_adapter_merge_all(lmp_adapter_host *h)
{
    for (int i = 0; i < h->n_attached; i++)
        if (!h->attached[i]->ops->merge)
            return lmp_error("adapter kind '%s' (on %s) cannot be merged into the base weights",
                             h->attached[i]->ops->kind, h->attached[i]->layer->name);
    while (h->n_attached > 0) {
        lmp_adapter *a = h->attached[0];
        if (h->make_writable && h->make_writable(h, a->layer) != 0) return -1;
        if (a->ops->merge(a, a->layer) != 0) return -1;
        lmp_adapter_detach(h, a);
    }
    return 0;
}

int lmp_adapter_host_params(lmp_adapter_host *h, lmp_params_group *g)
{
    for (int i = 0; i < h->n_attached; i++) {
        lmp_adapter *a = h->attached[i];
        if (a->ops->params && a->ops->params(a, g) != 0) return -1;
    }
    return 0;
}

void lmp_adapter_host_free(lmp_adapter_host *h)
{
    if (!h) return;
    for (int i = 0; i < h->n_linears; i++) h->linears[i].adapters = NULL;
    for (int i = 0; i < h->n_attached; i++) destroy(h->attached[i]);
    free(h->attached);
    h->attached = NULL;
    h->n_attached = h->cap_attached = 0;
    for (int k = 0; k < 2; k++) {
        free(h->scratch[k]);
        h->scratch[k] = NULL;
        h->scratch_n[k] = 0;
    }
}

/* ------------------------------------------------------------ saving */

#define MAX_KINDS 16
static const lmp_adapter_ops *registered[MAX_KINDS];
static int n_registered;

int lmp_adapter_kind_register(const lmp_adapter_ops *ops)
{
    const lmp_adapter_ops *known = lmp_adapter_kind_find(ops->kind);
    if (known) return known == ops ? 0 : lmp_error("adapter kind '%s' is already registered", ops->kind);
    if (n_registered == MAX_KINDS) return lmp_error("too many adapter kinds");
    registered[n_registered++] = ops;
    return 0;
}

const lmp_adapter_ops *lmp_adapter_kind_find(const char *kind)
{
    for (int i = 0; i < n_registered; i++)
        if (strcmp(registered[i]->kind, kind) == 0) return registered[i];
    return NULL;
}

int lmp_adapter_kinds(const lmp_adapter_host *h, const lmp_adapter_ops **kinds, int max)
{
    int n = 0;
    for (int i = 0; i < h->n_attached; i++) {
        int k = 0;
        while (k < n && kinds[k] != h->attached[i]->ops) k++;
        if (k == n && n < max) kinds[n++] = h->attached[i]->ops;
    }
    return n;
}

static int kind_rank(const lmp_adapter_ops *const *kinds, int n, const lmp_adapter_ops *ops)
{
    for (int k = 0; k < n; k++)
        if (kinds[k] == ops) return k;
    return n;
}

int lmp_adapter_host_save(const lmp_adapter_host *h, const char *dir, const lmp_adapter_files *f, int *extra_saved)
{
    *extra_saved = 0;
    const lmp_adapter_ops *kinds[MAX_KINDS];
    int n = lmp_adapter_kinds(h, kinds, MAX_KINDS);
    for (int k = 0; k < n; k++)
        if (!kinds[k]->save || !kinds[k]->load)
            return lmp_error("%s: adapter kind '%s' cannot be saved (its lmp_adapter_ops has no save/load)", dir,
                             kinds[k]->kind);
    for (int i = 0; i < h->n_linears; i++)
        for (const lmp_adapter *a = h->linears[i].adapters; a && a->next; a = a->next)
            if (kind_rank(kinds, n, a->ops) > kind_rank(kinds, n, a->next->ops))
                return lmp_error("%s: on %s a %s adapter follows a %s one, an order that loading kind by kind "
                                 "(%s first) would not restore", dir, h->linears[i].name, a->next->ops->kind,
                                 a->ops->kind, a->next->ops->kind);
    lmp_adapter_files none = { f->task_type, f->base, NULL, 0 };
    for (int k = 0; k < n; k++) {
        int r = kinds[k]->save(h, dir, *extra_saved ? &none : f);
        if (r < 0) return -1;
        *extra_saved |= r > 0;
    }
    return 0;
}

int lmp_adapter_host_load(lmp_adapter_host *h, const char *dir, const char *const *kinds, int n_kinds,
                          const lmp_adapter_files *f, int *extra_loaded)
{
    *extra_loaded = 0;
    lmp_adapter_files none = { f->task_type, f->base, NULL, 0 };
    for (int k = 0; k < n_kinds; k++) {
        const lmp_adapter_ops *ops = lmp_adapter_kind_find(kinds[k]);
        if (!ops) return lmp_error("%s: unknown adapter kind \"%s\" (is its plugin loaded?)", dir, kinds[k]);
        if (!ops->load) return lmp_error("%s: adapter kind '%s' cannot be loaded", dir, kinds[k]);
        int r = ops->load(h, dir, *extra_loaded ? &none : f);
        if (r < 0) return -1;
        *extra_loaded |= r > 0;
    }
    return 0;
}

/* ------------------------------------------------------------ for adapter kinds */

float *lmp_adapter_grad(lmp_params_group *g, int idx)
{
    if (!g || idx < 0 || idx >= g->count) return NULL;
    return g->t[idx].grad;
}

float *lmp_adapter_scratch(lmp_adapter_host *h, int which, size_t n)
{
    if (n > h->scratch_n[which]) {
        free(h->scratch[which]);
        h->scratch[which] = mallocCheck(n * sizeof(float));
        h->scratch_n[which] = n;
    }
    return h->scratch[which];
}
