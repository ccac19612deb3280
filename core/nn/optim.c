/*
 * optim.c — Adam/AdamW updates, global-norm clipping, learning-rate
 * schedules and parameter groups (see optim.h).
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "optim.h"

#define OPTIM_OMP_MIN 16384

/* ------------------------------------------------------------ updates */

/* The shared Adam arithmetic, in torch's order of operations: the scalars are
 * computed in double, the per-element work in float. */
static void adam_core(float *params, const float *grads, float *m, float *v, size_t n,
                      double lr, double beta1, double beta2, double eps, double decoupled_decay,
                      double l2, int t)
{
    double bc1 = 1.0 - pow(beta1, t), bc2 = 1.0 - pow(beta2, t);
    float step_size = (float)(lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float decay = (float)(1.0 - lr * decoupled_decay);
    float b1 = (float)beta1, b2 = (float)beta2, b1c = (float)(1.0 - beta1),
          b2c = (float)(1.0 - beta2), fe = (float)eps, fl2 = (float)l2;
    /* Branch-free so that it vectorises (simd: per element the same
     * operations in the same order as a scalar loop; sqrt and division are
     * exact): without L2, fl2 = 0 adds 0 to g; without decoupled decay,
     * decay = 1 leaves p as it is. */
    #pragma omp parallel for simd if (n >= OPTIM_OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        float p = params[i], g = grads[i];
        g += fl2 * p;
        p *= decay;
        float mi = b1 * m[i] + b1c * g;
        float vi = b2 * v[i] + b2c * g * g;
        m[i] = mi;
        v[i] = vi;
        params[i] = p - step_size * (mi / (sqrtf(vi) / bc2_sqrt + fe));
    }
}

void lmp_adamw_update(float *params, const float *grads, float *m, float *v, size_t n,
                  double lr, double beta1, double beta2, double eps, double weight_decay, int t)
{
    adam_core(params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, 0.0, t);
}

void lmp_adam_update(float *params, const float *grads, float *m, float *v, size_t n,
                 double lr, double beta1, double beta2, double eps, double weight_decay, int t)
{
    adam_core(params, grads, m, v, n, lr, beta1, beta2, eps, 0.0, weight_decay, t);
}

float lmp_clip_grad_norm(float *const *grads, const size_t *ns, int count, float max_norm)
{
    double sumsq = 0;
    for (int k = 0; k < count; k++) {
        const float *g = grads[k];
        if (!g) continue;
        size_t n = ns[k];
        double s = 0;
        /* in double, so the vectorised order of the sum does not matter */
        #pragma omp parallel for simd reduction(+:s) if (n >= OPTIM_OMP_MIN)
        for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
        sumsq += s;
    }
    double norm = sqrt(sumsq);
    if (!isfinite(norm) || max_norm <= 0 || norm <= max_norm) return (float)norm;
    float coef = (float)(max_norm / (norm + 1e-6));
    for (int k = 0; k < count; k++) {
        float *g = grads[k];
        if (!g) continue;
        size_t n = ns[k];
        #pragma omp parallel for simd if (n >= OPTIM_OMP_MIN)
        for (size_t i = 0; i < n; i++) g[i] *= coef;
    }
    return (float)norm;
}

/* ------------------------------------------------------------ schedules */

float lmp_lr_schedule(lmp_lr_kind kind, int step, int total, int warmup, float base_lr, float min_lr)
{
    if (step < warmup) return (float)((double)base_lr * (step + 1) / warmup);
    if (kind == LMP_LR_CONSTANT) return base_lr;
    if (step >= total) return min_lr;
    double r = (double)(step - warmup) / (double)(total - warmup);
    if (kind == LMP_LR_COSINE)
        return (float)(min_lr + 0.5 * (1.0 + cos(M_PI * r)) * ((double)base_lr - min_lr));
    return (float)(base_lr + r * ((double)min_lr - base_lr));
}

static const char *const lr_names[] = { "constant", "cosine", "linear" };

int lmp_lr_schedule_parse(const char *name, lmp_lr_kind *kind)
{
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, lr_names[i]) == 0) {
            *kind = (lmp_lr_kind)i;
            return 0;
        }
    return lmp_error("unknown learning-rate schedule '%s' (expected constant, cosine or linear)",
                     name ? name : "");
}

const char *lmp_lr_schedule_name(lmp_lr_kind kind)
{
    return (unsigned)kind < 3 ? lr_names[kind] : "?";
}

/* ------------------------------------------------------------ parameter groups */

void lmp_params_init(lmp_params_group *g)
{
    memset(g, 0, sizeof *g);
}

lmp_param_tensor *lmp_params_find(lmp_params_group *g, const char *name)
{
    for (int i = 0; i < g->count; i++)
        if (strcmp(g->t[i].name, name) == 0) return &g->t[i];
    return NULL;
}

int lmp_params_add(lmp_params_group *g, const char *name, float *data, size_t n, int flags)
{
    if (!name || !*name) return lmp_error("parameter with an empty name");
    if (g->grad_mem || g->allocated)
        return lmp_error("parameter '%s' added after lmp_params_alloc_grads", name);
    if (lmp_params_find(g, name)) return lmp_error("parameter '%s' added twice", name);
    if (n == 0) return lmp_error("parameter '%s' has no elements", name);
    if (!data) return lmp_error("parameter '%s' has no data", name);
    if (flags & ~(LMP_PARAM_TRAIN | LMP_PARAM_NO_DECAY))
        return lmp_error("parameter '%s': unknown flags 0x%x", name, (unsigned)flags);
    if (g->count == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 16;
        g->t = reallocCheck(g->t, (size_t)g->cap * sizeof *g->t);
    }
    lmp_param_tensor *t = &g->t[g->count++];
    memset(t, 0, sizeof *t);
    t->name = strdupCheck(name);
    t->data = data;
    t->n = n;
    t->flags = flags;
    if (flags & LMP_PARAM_TRAIN) g->n_trainable += n;
    return 0;
}

void lmp_params_alloc_grads(lmp_params_group *g)
{
    if (g->allocated) return;
    g->allocated = 1;
    if (g->n_trainable == 0) return;
    g->grad_mem = callocCheck(g->n_trainable + LMP_GRAD_EXTRA, sizeof(float));
    g->m_mem = callocCheck(g->n_trainable, sizeof(float));
    g->v_mem = callocCheck(g->n_trainable, sizeof(float));
    size_t off = 0;
    for (int i = 0; i < g->count; i++) {
        lmp_param_tensor *t = &g->t[i];
        if (!(t->flags & LMP_PARAM_TRAIN)) continue;
        t->grad = g->grad_mem + off;
        t->m = g->m_mem + off;
        t->v = g->v_mem + off;
        off += t->n;
    }
}

void lmp_params_zero_grads(lmp_params_group *g)
{
    if (g->grad_mem) memset(g->grad_mem, 0, (g->n_trainable + LMP_GRAD_EXTRA) * sizeof(float));
}

float *lmp_params_grad_extra(lmp_params_group *g) { return g->grad_mem ? g->grad_mem + g->n_trainable : NULL; }

void lmp_params_sum_grads(lmp_params_group *g, int nextra)
{
    if (g->grad_mem) lmp_dist_sum_floats(g->grad_mem, g->n_trainable + (size_t)nextra);
}

size_t lmp_params_numel(const lmp_params_group *g, int trainable_only)
{
    size_t n = 0;
    for (int i = 0; i < g->count; i++)
        if (!trainable_only || (g->t[i].flags & LMP_PARAM_TRAIN)) n += g->t[i].n;
    return n;
}

float lmp_params_clip_grad_norm(lmp_params_group *g, float max_norm)
{
    /* the grads are one contiguous block */
    float *grads[1] = { g->grad_mem };
    size_t ns[1] = { g->n_trainable };
    return lmp_clip_grad_norm(grads, ns, 1, max_norm);
}

void lmp_params_adamw_step(lmp_params_group *g, double lr, double beta1, double beta2,
                           double eps, double weight_decay)
{
    g->step++;
    for (int i = 0; i < g->count; i++) {
        lmp_param_tensor *t = &g->t[i];
        if (!t->grad) continue;
        double wd = (t->flags & LMP_PARAM_NO_DECAY) ? 0.0 : weight_decay;
        lmp_adamw_update(t->data, t->grad, t->m, t->v, t->n, lr, beta1, beta2, eps, wd, g->step);
    }
}

void lmp_params_adam_step(lmp_params_group *g, double lr, double beta1, double beta2, double eps,
                          double weight_decay)
{
    for (int i = 0; i < g->count; i++) {
        lmp_param_tensor *t = &g->t[i];
        if (t->grad)
            lmp_adam_update(t->data, t->grad, t->m, t->v, t->n, lr, beta1, beta2, eps, weight_decay, g->step + 1);
    }
    g->step++;
}

void lmp_params_free(lmp_params_group *g)
{
    for (int i = 0; i < g->count; i++) free(g->t[i].name);
    free(g->t);
    free(g->grad_mem);
    free(g->m_mem);
    free(g->v_mem);
    memset(g, 0, sizeof *g);
}

/* ------------------------------------------------------------ the optimizer step */

void lmp_optim_opts_default(lmp_optim_opts *o)
{
    memset(o, 0, sizeof *o);
    o->adamw = 1;
    o->lr = 1e-3;
    o->schedule = LMP_LR_CONSTANT;
    o->warmup_steps = 0;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->clip = 1.0;
}

int lmp_optim_warmup_steps(const lmp_optim_opts *o, int total)
{
    return o->warmup_steps >= 0 ? o->warmup_steps : (int)(o->warmup * total);
}

float *lmp_optim_extra(lmp_params_group *g)
{
    float *x = lmp_params_grad_extra(g);
    return x ? x + 2 : NULL;
}

int lmp_optim_step(lmp_params_group *g, const lmp_optim_opts *o, int step, int total, double *loss,
                   int nextra, lmp_optim_info *info)
{
    memset(info, 0, sizeof *info);
    if (lmp_dist_size() > 1 && g->grad_mem) {
        /* [0] the loss, [1] the interrupt flag, [2, 2 + nextra) the caller's */
        float *x = lmp_params_grad_extra(g);
        x[0] = (float)*loss;
        x[1] = (float)lmp_interrupted();
        lmp_params_sum_grads(g, 2 + nextra);
        *loss = x[0];
        info->stop = x[1] > 0;
    }
    float norm = lmp_params_clip_grad_norm(g, (float)o->clip);
    float lr = lmp_lr_schedule(o->schedule, step, total, lmp_optim_warmup_steps(o, total), (float)o->lr,
                           (float)o->min_lr);
    info->grad_norm = norm;
    info->lr = lr;
    if (!isfinite(*loss) || !isfinite(norm)) {
        info->nonfinite = 1;
        if (o->skip_nonfinite) return 0;
        return lmp_error("%s is %s; stopping (on_nonfinite=skip skips such steps)",
                         isfinite(*loss) ? "the gradient norm" : "the loss",
                         isnan(isfinite(*loss) ? norm : *loss) ? "NaN" : "infinite");
    }
    if (o->adamw) lmp_params_adamw_step(g, lr, o->beta1, o->beta2, o->eps, o->weight_decay);
    else lmp_params_adam_step(g, lr, o->beta1, o->beta2, o->eps, o->weight_decay);
    return 0;
}

/* ------------------------------------------------------------ optimizer state */

/* Layout (native byte order, x86-64 little-endian):
 *   "LMPOPT01"  int64 step  uint32 count
 *   count x { uint32 name_len, name bytes, uint64 n, float m[n], float v[n] }
 * Only trainable tensors appear, in registration order. */
static const char opt_magic[8] = { 'L', 'M', 'P', 'O', 'P', 'T', '0', '1' };

void *lmp_params_state_serialize(const lmp_params_group *g, size_t *len)
{
    size_t total = 8 + 8 + 4;
    uint32_t count = 0;
    for (int i = 0; i < g->count; i++) {
        if (!g->t[i].m) continue;
        total += 4 + strlen(g->t[i].name) + 8 + 2 * g->t[i].n * sizeof(float);
        count++;
    }
    unsigned char *buf = mallocCheck(total), *p = buf;
    int64_t step = g->step;
    memcpy(p, opt_magic, 8); p += 8;
    memcpy(p, &step, 8); p += 8;
    memcpy(p, &count, 4); p += 4;
    for (int i = 0; i < g->count; i++) {
        const lmp_param_tensor *t = &g->t[i];
        if (!t->m) continue;
        uint32_t nl = (uint32_t)strlen(t->name);
        uint64_t n = t->n;
        memcpy(p, &nl, 4); p += 4;
        memcpy(p, t->name, nl); p += nl;
        memcpy(p, &n, 8); p += 8;
        memcpy(p, t->m, t->n * sizeof(float)); p += t->n * sizeof(float);
        memcpy(p, t->v, t->n * sizeof(float)); p += t->n * sizeof(float);
    }
    *len = total;
    return buf;
}

/* Reads `k` bytes at *off from buf[len] into dst, or fails as truncated. */
static int take(void *dst, const unsigned char *buf, size_t len, size_t *off, size_t k,
                const char *what)
{
    if (len - *off < k) return lmp_error("%s: optimizer state truncated at byte %zu", what, *off);
    if (dst) memcpy(dst, buf + *off, k);
    *off += k;
    return 0;
}

int lmp_params_state_deserialize(lmp_params_group *g, const void *data, size_t len,
                                 const char *what)
{
    const unsigned char *buf = data;
    size_t off = 0;
    char magic[8];
    int64_t step = 0;
    uint32_t count = 0;
    if (!g->allocated)
        return lmp_error("%s: optimizer state loaded before lmp_params_alloc_grads", what);
    if (len < 8 || memcmp(buf, opt_magic, 8) != 0)
        return lmp_error("%s: not an lmpipe optimizer state (bad magic)", what);
    if (take(magic, buf, len, &off, 8, what) || take(&step, buf, len, &off, 8, what) ||
        take(&count, buf, len, &off, 4, what))
        return -1;
    if (step < 0 || step > INT32_MAX)
        return lmp_error("%s: optimizer state has invalid step %lld", what, (long long)step);
    uint32_t want = 0;
    for (int i = 0; i < g->count; i++) want += g->t[i].m != NULL;
    if (count != want)
        return lmp_error("%s: optimizer state has %u tensors, the model has %u trainable", what,
                         count, want);
    /* First pass validates everything, second pass copies: a bad file leaves
     * the group unchanged. */
    size_t start = off;
    for (int pass = 0; pass < 2; pass++) {
        off = start;
        for (int i = 0; i < g->count; i++) {
            lmp_param_tensor *t = &g->t[i];
            if (!t->m) continue;
            uint32_t nl = 0;
            uint64_t n = 0;
            if (take(&nl, buf, len, &off, 4, what)) return -1;
            size_t name_off = off;
            if (take(NULL, buf, len, &off, nl, what)) return -1;
            if (nl != strlen(t->name) || memcmp(buf + name_off, t->name, nl) != 0)
                return lmp_error("%s: optimizer state tensor '%.*s' does not match parameter '%s'",
                                 what, (int)(nl > 200 ? 200 : nl),
                                 (const char *)buf + name_off, t->name);
            if (take(&n, buf, len, &off, 8, what)) return -1;
            if (n != t->n)
                return lmp_error("%s: optimizer state tensor '%s' has %llu elements, expected %zu",
                                 what, t->name, (unsigned long long)n, t->n);
            size_t bytes = t->n * sizeof(float);
            if (take(pass ? t->m : NULL, buf, len, &off, bytes, what) ||
                take(pass ? t->v : NULL, buf, len, &off, bytes, what))
                return -1;
        }
        if (pass == 0 && off != len)
            return lmp_error("%s: %zu trailing bytes after optimizer state", what, len - off);
    }
    g->step = (int)step;
    return 0;
}

int lmp_params_state_save(const lmp_params_group *g, const char *path)
{
    size_t len;
    void *buf = lmp_params_state_serialize(g, &len);
    int rc = lmp_write_file_atomic(path, buf, len);
    free(buf);
    return rc;
}

int lmp_params_state_load(lmp_params_group *g, const char *path)
{
    char *buf;
    size_t len;
    if (lmp_read_file(path, 0, &buf, &len) != 0) return -1;
    int rc = lmp_params_state_deserialize(g, buf, len, path);
    free(buf);
    return rc;
}
