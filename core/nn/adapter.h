/*
 * adapter.h — parameter-efficient adapters (LoRA, IA3, DoRA, ...) on the
 * named linear layers of a model.
 *
 * A model exposes its linear layers through an lmp_adapter_host: an array of
 * lmp_linear, each with a name ("h.3.attn.c_attn" for GPT-2), its weight in
 * HF Conv1D's [in, out] layout, its bias, and a list of attached adapters.
 * Every linear op of the model goes through lmp_linear_forward/backward, so
 * an attached adapter takes part in training, evaluation and generation
 * alike.  The model also asks every attached adapter to register its
 * trainable tensors when it builds its parameter group (core/nn/optim.h), so the
 * trainer updates them with everything else.
 *
 * An adapter kind is a table of functions (lmp_adapter_ops).  A new kind is
 * a new plugin built against the installed headers; the model code does not
 * change.  Example — an IA3-like kind that scales each output feature of a
 * layer by a trainable vector s[out] (out <- out * s):
 *
 *     typedef struct { float *s, *y, *dy; int g_idx; lmp_params_group *g; } ia3;
 *
 *     static void ia3_forward(lmp_adapter *a, const lmp_linear *l, float *out,
 *                             const float *inp, int N) {
 *         ia3 *x = a->ctx;                   // keep y (our input) for backward
 *         x->y = realloc(...); memcpy(x->y, out, N * l->out * sizeof(float));
 *         for (int n = 0; n < N; n++)
 *             for (int j = 0; j < l->out; j++) out[n * l->out + j] *= x->s[j];
 *     }
 *     static const float *ia3_backward(lmp_adapter *a, const lmp_linear *l,
 *                                      float *dinp, const float *dout,
 *                                      const float *inp, int N) {
 *         ia3 *x = a->ctx;                   // ds += sum_n dout * y; dy = dout * s
 *         float *ds = lmp_adapter_grad(a->host, x->g, x->g_idx);
 *         ... fill ds (if non-NULL) and x->dy (sized like x->y) ...
 *         return x->dy;                      // what flows on to the base matmul
 *     }
 *     static int ia3_params(lmp_adapter *a, lmp_params_group *g) {
 *         ia3 *x = a->ctx;
 *         char *name = lmp_strfmt("%s.ia3_l", a->layer->name);
 *         int rc = lmp_params_add(g, name, x->s, a->layer->out, LMP_PARAM_TRAIN);
 *         x->g = g, x->g_idx = g->count - 1;
 *         free(name);
 *         return rc;
 *     }
 *     static const lmp_adapter_ops ia3_ops = {
 *         .kind = "ia3", .forward = ia3_forward, .backward = ia3_backward,
 *         .params = ia3_params, .destroy = ia3_destroy };
 *
 *     // in a stage: attach to every layer the user's `targets` select
 *     lmp_adapter_host *h = c->adapters(c);        // core/kit/classifier.h
 *     unsigned char *sel = calloc(h->n_linears, 1);
 *     if (lmp_adapter_select(h, lmp_param_str(st, "targets"), sel) != 0) return -1;
 *     for (int i = 0; i < h->n_linears; i++)
 *         if (sel[i]) lmp_adapter_attach(h, &h->linears[i], lmp_adapter_new(&ia3_ops, ctx_i));
 *
 * tests/external/ia3.c is that plugin in full (it is built by make check and,
 * from the installed headers alone, by make installcheck).
 *
 * Contract of a kind's functions (all run on the caller's thread):
 *  - forward: out[N, l->out] already holds the base output (and that of the
 *    adapters attached before this one); transform it in place, reading
 *    inp[N, l->in] as needed.  Keep what backward needs in the adapter: a
 *    backward always follows the most recent forward of the same layer.
 *    h->train says whether the model is training (dropout on) or not.
 *  - backward: dout[N, out] is the gradient w.r.t. this adapter's output.
 *    Accumulate (+=) the adapter's own gradients (lmp_adapter_grad: NULL when
 *    frozen or when no group was built) and its contribution to dinp[N, in]
 *    (dinp may be NULL: nothing needs it).  Return the gradient w.r.t. the
 *    output stream the adapter received: dout itself for additive kinds
 *    (LoRA), or a buffer of the adapter's own (not a scratch buffer: the
 *    adapters before it may use those).
 *  - params: lmp_params_add the adapter's tensors, named like the model's
 *    own: layer name + "." + tensor ("h.0.attn.c_attn.lora_A.weight"), and
 *    remember the index the group gave them (g->count - 1 after each add).
 *  - merge (optional): fold the adapter into l->weight / l->bias, which the
 *    host has made writable; the adapter is detached afterwards.
 *  - destroy: free ctx (the lmp_adapter itself is freed by the host).
 *  - save / load (optional; without them a model with this kind attached
 *    cannot be saved, nor cached): functions of the kind, not of one
 *    adapter.  save writes every adapter of the kind on h into the model's
 *    folder `dir`, in files of the kind's choosing (LoRA: the PEFT folder,
 *    adapter_config.json + adapter_model.safetensors; the IA3 example:
 *    ia3.safetensors); load reads them back and attaches them to h, after
 *    checking all of them (nothing attached on error).  f->extra are tensors
 *    of the model outside its adapted layers (a task head) that a format
 *    may keep beside the adapters (PEFT's modules_to_save): save returns 1
 *    when it wrote them, 0 when the model must; load returns 1 when it
 *    filled them.  A kind registers itself (LMP_ADAPTER_KIND) so that a
 *    saved model finds its load by name.
 */
#ifndef LMP_ADAPTER_H
#define LMP_ADAPTER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "errors.h"
#include "optim.h"
#include "util.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lmp_linear lmp_linear;
typedef struct lmp_adapter lmp_adapter;
typedef struct lmp_adapter_host lmp_adapter_host;

/* A tensor of the model saved with its adapters (save and load below). */
typedef struct {
    const char *name; /* the model's own name for it: "score.weight" */
    float *data;      /* save: read; load: filled */
    int ndim;         /* 1 or 2 */
    int64_t shape[2];
    const char *dims; /* what the dimensions are, for messages: "num_labels, n_embd" */
} lmp_adapter_tensor;

/* What the model tells the kinds' save and load about itself. */
typedef struct {
    const char *task_type;     /* PEFT's task type of the model ("SEQ_CLS"), or NULL */
    const char *base;          /* the base checkpoint the model was built over, or NULL */
    lmp_adapter_tensor *extra; /* tensors a format may keep with the adapters */
    int n_extra;
} lmp_adapter_files;

typedef struct {
    const char *kind; /* "lora", "ia3", ... */
    void (*forward)(lmp_adapter *a, const lmp_linear *l, float *out, const float *inp, int N);
    const float *(*backward)(lmp_adapter *a, const lmp_linear *l, float *dinp, const float *dout,
                             const float *inp, int N);
    int (*params)(lmp_adapter *a, lmp_params_group *g);
    int (*merge)(lmp_adapter *a, lmp_linear *l); /* NULL: this kind cannot be merged */
    void (*destroy)(lmp_adapter *a);
    /* NULL: a model with this kind attached cannot be saved (see above) */
    int (*save)(const lmp_adapter_host *h, const char *dir, const lmp_adapter_files *f);
    int (*load)(lmp_adapter_host *h, const char *dir, const lmp_adapter_files *f);
} lmp_adapter_ops;

struct lmp_adapter {
    const lmp_adapter_ops *ops;
    void *ctx;
    lmp_linear *layer;      /* set by lmp_adapter_attach */
    lmp_adapter_host *host; /* set by lmp_adapter_attach */
    lmp_adapter *next;      /* the next adapter on the same layer */
};

struct lmp_linear {
    char name[32];         /* "h.3.attn.c_attn" (the HF module name without the model's prefix) */
    int in, out;
    float *weight;         /* [in, out] */
    float *bias;           /* [out], may be NULL */
    lmp_adapter *adapters; /* applied in list order after the base matmul */
    /* An inference-only f16 / q8 copy of weight (core/nn/qmat.h) that the
     * forward uses instead of it, or NULL.  Set by the model for generation
     * and evaluation (lmp_gpt2_set_weights); backward never reads it. */
    const struct lmp_qmat *packed;
};

/* The model side.  A model embeds or allocates one, fills the first fields
 * and calls lmp_adapter_host_free when it is destroyed. */
struct lmp_adapter_host {
    const char *model;   /* model kind, for messages ("gpt2") */
    const char *prefix;  /* prepended to layer names to form HF module names ("transformer.") */
    int freeze_base;     /* set by adapter stages: the model registers its own weights frozen
                          * (task heads stay trainable) when it next builds its group */
    lmp_linear *linears;
    int n_linears;
    void *model_ctx;
    /* Make l->weight and l->bias writable (copy them out of a read-only
     * mapping) before a merge; NULL when they always are. */
    int (*make_writable)(lmp_adapter_host *h, lmp_linear *l);

    int train;           /* set by the model around each forward: 1 = training mode */
    lmp_rng rng;         /* randomness for adapters in training mode (dropout) */
    int changed;         /* attachments changed since the model last built its parameter group */
    lmp_adapter **attached; /* everything attached, in attach order (owned) */
    int n_attached, cap_attached;
    float *scratch[2];   /* shared scratch buffers (lmp_adapter_scratch) */
    size_t scratch_n[2];
};

/* ------------------------------------------------------------ layers */

/* out[N,out] = inp[N,in] @ weight + bias (from l->packed when set), then every
 * attached adapter in order. */
void lmp_linear_forward(const lmp_linear *l, float *out, const float *inp, int N);
/* The adapters' backward in reverse order (each passes the gradient of its
 * input stream to the one before), then the base: dinp[N,in], dweight[in,out],
 * dbias[out] += ... (each may be NULL: frozen, or not needed). */
void lmp_linear_backward(const lmp_linear *l, float *dinp, float *dweight, float *dbias,
                         const float *dout, const float *inp, int N);

/* ------------------------------------------------------------ selecting layers */

/* Whether layer `name` matches `pattern`: the whole name, or a suffix of it
 * starting after a '.' ("attn.c_attn" and "c_attn" match "h.3.attn.c_attn",
 * "n.c_attn" does not); '*' matches any run of characters, dots included
 * ("h.1*.mlp.c_fc", "h.*.attn.*"). */
int lmp_adapter_match(const char *name, const char *pattern);
/* Mark selected[i] = 1 for every layer of h that matches one of the
 * comma-separated `targets` (spaces around entries are ignored).  A pattern
 * that matches no layer, or an empty list, is an error naming it:
 * "targets: 'attn.q_proj' matches no linear layer of the gpt2 model (names
 * look like 'h.0.attn.c_attn')". */
int lmp_adapter_select(const lmp_adapter_host *h, const char *targets, unsigned char *selected);

/* ------------------------------------------------------------ attaching */

/* A new adapter of kind `ops` around ctx (owned by it from now on). */
lmp_adapter *lmp_adapter_new(const lmp_adapter_ops *ops, void *ctx);
/* Append `a` to layer l's list (l must be one of h's layers); h owns it from
 * now on.  Errors: l not in h. */
int lmp_adapter_attach(lmp_adapter_host *h, lmp_linear *l, lmp_adapter *a);
/* Remove `a` from its layer and from h, and destroy it. */
void lmp_adapter_detach(lmp_adapter_host *h, lmp_adapter *a);
/* Number of attached adapters of `kind` (NULL: all). */
int lmp_adapter_count(const lmp_adapter_host *h, const char *kind);
/* Fold every attached adapter into its layer's weights (making them
 * writable first) and detach it.  Error if one has no merge: nothing is
 * changed then. */
int lmp_adapter_merge_all(lmp_adapter_host *h);
/* Ask every attached adapter to register its tensors in g (in attach order). */
int lmp_adapter_host_params(lmp_adapter_host *h, lmp_params_group *g);
/* Destroy every attached adapter and the scratch buffers. */
void lmp_adapter_host_free(lmp_adapter_host *h);

/* ------------------------------------------------------------ saving */

/* The kinds attached to h, each once, in the order of their first
 * attachment (at most max; returns how many). */
int lmp_adapter_kinds(const lmp_adapter_host *h, const lmp_adapter_ops **kinds, int max);
/* Save every attached adapter into dir, kind by kind in lmp_adapter_kinds
 * order (so a model records that list, and loads in it).  *extra_saved: 1
 * when a kind wrote f->extra (the first kind that keeps them gets them).
 * Errors: a kind without save; a layer whose adapters were attached in an
 * order that loading kind by kind would not restore. */
int lmp_adapter_host_save(const lmp_adapter_host *h, const char *dir, const lmp_adapter_files *f, int *extra_saved);
/* Load the adapters of `kinds` (names, in the order saved) from dir and
 * attach them.  *extra_loaded: 1 when a kind filled f->extra.  Errors: a
 * kind not registered (its plugin not loaded), or one without load. */
int lmp_adapter_host_load(lmp_adapter_host *h, const char *dir, const char *const *kinds, int n_kinds,
                          const lmp_adapter_files *f, int *extra_loaded);

/* Adapter kinds by name, for loading (registering one twice is harmless). */
int lmp_adapter_kind_register(const lmp_adapter_ops *ops);
const lmp_adapter_ops *lmp_adapter_kind_find(const char *kind);
/* Register a kind from the file that implements it, core or plugin alike
 * (a constructor: see LMP_CLASSIFIER_KIND in core/kit/classifier.h):
 *     LMP_ADAPTER_KIND(ia3, &ia3_ops) */
#define LMP_ADAPTER_KIND(tag, ops)                                        \
    __attribute__((constructor)) static void lmp_adapter_kind_##tag(void) \
    {                                                                     \
        if (lmp_adapter_kind_register(ops) != 0)                          \
            fprintf(stderr, "lmpipe: %s\n", lmp_errmsg());                 \
    }

/* ------------------------------------------------------------ for adapter kinds */

/* The gradient buffer of tensor `idx` of group g, or NULL (no group, frozen
 * tensor, or grads not allocated). */
float *lmp_adapter_grad(lmp_params_group *g, int idx);
/* Shared scratch buffer `which` (0 or 1) of at least n floats, contents
 * undefined, for use within one forward or backward call (adapters run one
 * at a time); valid until the next call for the same `which`. */
float *lmp_adapter_scratch(lmp_adapter_host *h, int which, size_t n);

#ifdef __cplusplus
}
#endif

#endif
