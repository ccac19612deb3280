/*
 * lm_train.c — causal-LM training of a GPT-2 (see lm_train.h): the windowed,
 * shuffled token stream, the optimizer step with gradient accumulation,
 * non-finite handling, held-out evaluation, and exact-resume checkpoints.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckptdir.h"
#include "dist.h"
#include "jsonfile.h"
#include "lm_train.h"

/* ------------------------------------------------------------ data */

/* Order of the windows for epoch_seed: Fisher-Yates with a private RNG, so
 * the order is a function of the seed alone (a checkpoint stores the seed). */
static void data_shuffle(lmp_lm_data *d)
{
    for (size_t i = 0; i < d->n_windows; i++) d->order[i] = (uint32_t)i;
    if (!d->shuffle) return;
    lmp_rng r;
    lmp_rng_seed(&r, d->epoch_seed);
    for (size_t i = d->n_windows; i > 1; i--) {
        size_t j = (size_t)(lmp_rng_u64(&r) % i);
        uint32_t t = d->order[i - 1];
        d->order[i - 1] = d->order[j];
        d->order[j] = t;
    }
}

/* The start of the next window; begins a new epoch when the last one is used up. */
static size_t data_next(lmp_lm_data *d, lmp_rng *rng)
{
    if (d->epoch == 0 || d->pos == d->n_windows) {
        d->epoch++;
        d->pos = 0;
        d->epoch_seed = lmp_rng_u64(rng);
        data_shuffle(d);
    }
    return (size_t)d->order[d->pos++] * (size_t)d->T;
}

/* ------------------------------------------------------------ trainer */

void lmp_lm_train_opts_default(lmp_lm_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->B = 4;
    o->T = 64;
    o->accum = 1;
    o->steps = 1000;
    lmp_optim_opts_default(&o->optim);
    o->optim.schedule = LMP_LR_COSINE;
    o->optim.beta2 = 0.95;
    o->optim.weight_decay = 0.1;
    o->shuffle = 1;
}

int lmp_lm_trainer_new(lmp_gpt2 *m, const lmp_lm_train_opts *o, const int *tokens, size_t n,
                       uint64_t seed, lmp_lm_trainer **out)
{
    *out = NULL;
    if (o->B < 1 || o->T < 1 || o->accum < 1 || o->steps < 1)
        return lmp_error("trainer: batch %d, seq %d, accum %d and steps %d must all be >= 1", o->B,
                         o->T, o->accum, o->steps);
    if (o->T > m->config.n_ctx)
        return lmp_error("trainer: seq %d exceeds the model's context of %d", o->T, m->config.n_ctx);
    if (!(o->optim.lr >= 0) || !(o->optim.min_lr >= 0) || lmp_optim_warmup_steps(&o->optim, o->steps) < 0)
        return lmp_error("trainer: lr %g, min_lr %g and warmup %d must be >= 0", o->optim.lr, o->optim.min_lr,
                         lmp_optim_warmup_steps(&o->optim, o->steps));
    if (n < (size_t)o->T + 1)
        return lmp_error("trainer: %zu tokens are too few for one window of %d", n, o->T + 1);
    int V = m->config.vocab_size;
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return lmp_error("trainer: token id %d at position %zu out of range [0, %d)", tokens[i],
                             i, V);
    lmp_lm_trainer *tr = callocCheck(1, sizeof *tr);
    tr->m = m;
    tr->o = *o;
    lmp_gpt2_own_params(m);
    lmp_params_init(&tr->g);
    if (lmp_gpt2_params_add(m, &tr->g, NULL, NULL) != 0) {
        lmp_params_free(&tr->g);
        free(tr);
        return -1;
    }
    lmp_params_alloc_grads(&tr->g);
    if (lmp_gpt2_bind_grads(m, &tr->g) != 0) {
        lmp_params_free(&tr->g);
        free(tr);
        return -1;
    }
    lmp_lm_data *d = &tr->data;
    d->tokens = tokens;
    d->n = n;
    d->T = o->T;
    d->n_windows = (n - 1) / (size_t)o->T;
    d->shuffle = o->shuffle;
    d->order = mallocCheck(d->n_windows * sizeof *d->order);
    lmp_rng_seed(&tr->rng, seed);
    tr->inp = mallocCheck((size_t)o->B * o->T * sizeof(int));
    tr->tgt = mallocCheck((size_t)o->B * o->T * sizeof(int));
    *out = tr;
    return 0;
}

void lmp_lm_trainer_free(lmp_lm_trainer *tr)
{
    if (!tr) return;
    lmp_params_free(&tr->g);
    free(tr->data.order);
    free(tr->inp);
    free(tr->tgt);
    free(tr);
}

static void scale_grads(lmp_params_group *g, float s)
{
    for (size_t i = 0; i < g->n_trainable; i++) g->grad_mem[i] *= s;
}

int lmp_lm_train_step(lmp_lm_trainer *tr, lmp_lm_step_info *info)
{
    const lmp_lm_train_opts *o = &tr->o;
    double t0 = lmp_now();
    int B = o->B, T = o->T;
    /* Data parallelism (dist.h): every rank reads the same windows and takes
     * rows [lo, hi) of each micro-batch; its gradient of the mean over its
     * rows, weighted by its share of the batch, summed over the ranks (one
     * allreduce, with the loss and a stop flag) is the whole batch's. */
    int ranks = lmp_dist_size();
    long lo, hi;
    lmp_dist_shard(B, &lo, &hi);
    int Bs = (int)(hi - lo);
    float share = (float)Bs / (float)B;
    lmp_params_zero_grads(&tr->g);
    double loss_sum = 0;
    for (int k = 0; k < o->accum; k++) {
        for (int b = 0; b < B; b++) {
            const int *w = tr->data.tokens + data_next(&tr->data, &tr->rng);
            if (b < lo || b >= hi) continue;
            memcpy(tr->inp + (size_t)(b - lo) * T, w, (size_t)T * sizeof(int));
            memcpy(tr->tgt + (size_t)(b - lo) * T, w + 1, (size_t)T * sizeof(int));
        }
        if (Bs == 0) continue; /* more ranks than rows */
        float loss;
        if (lmp_gpt2_forward(tr->m, tr->inp, NULL, Bs, T, 1) != 0 ||
            lmp_gpt2_backward_lm(tr->m, tr->tgt, &loss, NULL) != 0)
            return lmp_error("step %d: %s", tr->step + 1, lmp_errmsg());
        loss_sum += loss * share;
    }
    /* the mean over micro-batches, each rank weighted by its share (1 alone) */
    float scale = share / (float)o->accum;
    if (scale != 1.0f) scale_grads(&tr->g, scale);
    lmp_optim_info oi;
    int rc = lmp_optim_step(&tr->g, &o->optim, tr->step, o->steps, &loss_sum, 0, &oi);
    if (ranks > 1) tr->stop = oi.stop;
    float loss = (float)(loss_sum / o->accum);
    int64_t tokens = (int64_t)o->accum * B * T;
    if (info) {
        info->step = tr->step + 1;
        info->loss = loss;
        info->grad_norm = oi.grad_norm;
        info->lr = oi.lr;
        info->skipped = oi.nonfinite;
        info->tokens = tokens;
    }
    if (rc != 0) return lmp_error("step %d: %s", tr->step + 1, lmp_errmsg());
    if (oi.nonfinite) tr->skipped++;
    tr->step++;
    tr->tokens_seen += tokens;
    if (info) info->seconds = lmp_now() - t0;
    return 0;
}

int lmp_lm_eval(lmp_gpt2 *m, const int *tokens, size_t n, int B, int T, long max_windows,
                double *loss)
{
    if (B < 1 || T < 1) return lmp_error("eval: batch %d and seq %d must be >= 1", B, T);
    size_t nw = n > (size_t)T ? (n - 1) / (size_t)T : 0;
    if (max_windows > 0 && nw > (size_t)max_windows) nw = (size_t)max_windows;
    if (nw == 0) return lmp_error("eval: %zu tokens are too few for one window of %d", n, T + 1);
    int *inp = mallocCheck((size_t)B * T * sizeof(int)), *tgt = mallocCheck((size_t)B * T * sizeof(int));
    double total = 0;
    int rc = 0;
    long lo, hi; /* this rank's windows (dist.h) */
    lmp_dist_shard((long)nw, &lo, &hi);
    for (size_t w0 = (size_t)lo; w0 < (size_t)hi && rc == 0; w0 += (size_t)B) {
        int nb = (size_t)hi - w0 < (size_t)B ? (int)((size_t)hi - w0) : B;
        for (int b = 0; b < nb; b++) {
            const int *w = tokens + (w0 + (size_t)b) * T;
            memcpy(inp + (size_t)b * T, w, (size_t)T * sizeof(int));
            memcpy(tgt + (size_t)b * T, w + 1, (size_t)T * sizeof(int));
        }
        float mean;
        rc = lmp_gpt2_loss(m, inp, tgt, nb, T, NULL, &mean);
        total += (double)mean * nb; /* every window scores T tokens */
    }
    free(inp);
    free(tgt);
    if (rc == 0) lmp_dist_sum_doubles(&total, 1);
    if (rc == 0) *loss = total / (double)nw;
    return rc;
}

/* ------------------------------------------------------------ checkpoints */

#define CKPT_FORMAT "lmpipe-lm-trainer-1"

static json_t *u64_json(uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%016" PRIx64, v);
    return json_string(buf);
}

int lmp_lm_trainer_save(const lmp_lm_trainer *tr, const char *dir, const char *extra)
{
    json_t *extra_json = NULL;
    if (extra) {
        json_error_t je;
        extra_json = json_loads(extra, 0, &je);
        if (!extra_json || !json_is_object(extra_json)) {
            json_decref(extra_json);
            return lmp_error("%s: checkpoint extra data is not a JSON object", dir);
        }
    }
    char *tmp;
    if (lmp_ckptdir_begin(dir, &tmp) != 0) {
        json_decref(extra_json);
        return -1;
    }
    const lmp_lm_train_opts *o = &tr->o;
    const lmp_gpt2_config *c = &tr->m->config;
    json_t *j = json_object();
    json_object_set_new(j, "format", json_string(CKPT_FORMAT));
    json_object_set_new(j, "step", json_integer(tr->step));
    json_object_set_new(j, "skipped", json_integer(tr->skipped));
    json_object_set_new(j, "tokens_seen", json_integer(tr->tokens_seen));
    json_t *rng = json_array();
    for (int i = 0; i < 4; i++) json_array_append_new(rng, u64_json(tr->rng.s[i]));
    json_object_set_new(j, "rng", rng);
    json_t *data = json_object();
    json_object_set_new(data, "n_tokens", json_integer((json_int_t)tr->data.n));
    json_object_set_new(data, "epoch", json_integer((json_int_t)tr->data.epoch));
    json_object_set_new(data, "pos", json_integer((json_int_t)tr->data.pos));
    json_object_set_new(data, "epoch_seed", u64_json(tr->data.epoch_seed));
    json_object_set_new(data, "shuffle", json_boolean(tr->data.shuffle));
    json_object_set_new(j, "data", data);
    json_t *oj = json_object();
    json_object_set_new(oj, "batch", json_integer(o->B));
    json_object_set_new(oj, "seq", json_integer(o->T));
    json_object_set_new(oj, "accum", json_integer(o->accum));
    json_object_set_new(oj, "steps", json_integer(o->steps));
    const lmp_optim_opts *op = &o->optim;
    json_object_set_new(oj, "optimizer", json_string(op->adamw ? "adamw" : "adam"));
    json_object_set_new(oj, "schedule", json_string(lmp_lr_schedule_name(op->schedule)));
    json_object_set_new(oj, "lr", json_real(op->lr));
    json_object_set_new(oj, "min_lr", json_real(op->min_lr));
    json_object_set_new(oj, "warmup", json_integer(lmp_optim_warmup_steps(op, o->steps))); /* steps */
    json_object_set_new(oj, "beta1", json_real(op->beta1));
    json_object_set_new(oj, "beta2", json_real(op->beta2));
    json_object_set_new(oj, "eps", json_real(op->eps));
    json_object_set_new(oj, "weight_decay", json_real(op->weight_decay));
    json_object_set_new(oj, "clip", json_real(op->clip));
    json_object_set_new(oj, "skip_nonfinite", json_boolean(op->skip_nonfinite));
    json_object_set_new(j, "opts", oj);
    json_t *mj = json_object();
    json_object_set_new(mj, "n_layer", json_integer(c->n_layer));
    json_object_set_new(mj, "n_head", json_integer(c->n_head));
    json_object_set_new(mj, "n_embd", json_integer(c->n_embd));
    json_object_set_new(mj, "n_ctx", json_integer(c->n_ctx));
    json_object_set_new(mj, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(j, "model", mj);
    if (extra_json) json_object_set_new(j, "extra", extra_json);
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(j);
    char *model = lmp_strfmt("%s/model.safetensors", tmp);
    char *opt = lmp_strfmt("%s/optimizer.bin", tmp);
    char *state = lmp_strfmt("%s/trainer.json", tmp);
    char *body = lmp_strfmt("%s\n", text);
    /* trainer.json last: a directory with it is complete (the swap makes that
     * moot for DIR itself, but a tmp dir left by a crash is then obviously partial) */
    int rc = lmp_gpt2_save(tr->m, model);
    if (rc == 0) rc = lmp_params_state_save(&tr->g, opt);
    if (rc == 0) rc = lmp_write_file_atomic(state, body, strlen(body));
    free(text);
    free(body);
    free(model);
    free(opt);
    free(state);
    if (rc != 0) {
        lmp_ckptdir_abort(tmp);
        return -1;
    }
    return lmp_ckptdir_commit(dir, tmp);
}

/* Integer member `key` of object `o` (json path `what` for messages). */
static int get_int(json_t *o, const char *key, const char *file, const char *what, json_int_t *v)
{
    json_t *x = json_object_get(o, key);
    if (!json_is_integer(x)) return lmp_error("%s: %s%s missing or not an integer", file, what, key);
    *v = json_integer_value(x);
    return 0;
}

static int get_u64(json_t *x, const char *file, const char *what, uint64_t *v)
{
    const char *s = json_string_value(x);
    char *end;
    if (!s || strlen(s) != 16) return lmp_error("%s: %s is not a 16-digit hex string", file, what);
    errno = 0;
    *v = strtoull(s, &end, 16);
    if (*end || errno) return lmp_error("%s: %s is not a 16-digit hex string", file, what);
    return 0;
}

/* Checks that the saved value of `key` equals this run's. */
static int same(json_t *o, const char *key, json_int_t want, const char *file, const char *what)
{
    json_int_t v = 0;
    if (get_int(o, key, file, what, &v) != 0) return -1;
    if (v != want)
        return lmp_error("%s: checkpoint has %s%s %lld, this run has %lld", file, what, key,
                         (long long)v, (long long)want);
    return 0;
}

int lmp_lm_trainer_load(lmp_lm_trainer *tr, const char *dir, char **extra)
{
    if (extra) *extra = NULL;
    lmp_ckptdir_recover(dir);
    char *state = lmp_strfmt("%s/trainer.json", dir);
    char *model = lmp_strfmt("%s/model.safetensors", dir);
    char *opt = lmp_strfmt("%s/optimizer.bin", dir);
    char *optbuf = NULL;
    size_t optlen;
    json_t *j = NULL;
    lmp_gpt2 *saved = NULL;
    int rc = -1;
    json_int_t step = 0, skipped = 0, seen = 0, epoch = 0, pos = 0;
    uint64_t rng[4], epoch_seed;
    if (lmp_json_read_file(state, 16u << 20, 0, NULL, &j) != 0) goto done;
    const char *fmt = json_string_value(json_object_get(j, "format"));
    if (!fmt || strcmp(fmt, CKPT_FORMAT) != 0) {
        lmp_error("%s: format is \"%s\", expected \"" CKPT_FORMAT "\"", state, fmt ? fmt : "");
        goto done;
    }
    json_t *data = json_object_get(j, "data"), *oj = json_object_get(j, "opts");
    json_t *mj = json_object_get(j, "model"), *rj = json_object_get(j, "rng");
    if (!json_is_object(data) || !json_is_object(oj) || !json_is_object(mj) ||
        json_array_size(rj) != 4) {
        lmp_error("%s: missing data, opts, model or rng", state);
        goto done;
    }
    if (get_int(j, "step", state, "", &step) || get_int(j, "skipped", state, "", &skipped) ||
        get_int(j, "tokens_seen", state, "", &seen) || get_int(data, "epoch", state, "data.", &epoch) ||
        get_int(data, "pos", state, "data.", &pos) ||
        get_u64(json_object_get(data, "epoch_seed"), state, "data.epoch_seed", &epoch_seed))
        goto done;
    for (int i = 0; i < 4; i++)
        if (get_u64(json_array_get(rj, (size_t)i), state, "rng", &rng[i])) goto done;
    const lmp_gpt2_config *c = &tr->m->config;
    if (same(oj, "batch", tr->o.B, state, "opts.") || same(oj, "seq", tr->o.T, state, "opts.") ||
        same(oj, "accum", tr->o.accum, state, "opts.") ||
        same(data, "n_tokens", (json_int_t)tr->data.n, state, "data.") ||
        same(mj, "n_layer", c->n_layer, state, "model.") || same(mj, "n_head", c->n_head, state, "model.") ||
        same(mj, "n_embd", c->n_embd, state, "model.") || same(mj, "n_ctx", c->n_ctx, state, "model.") ||
        same(mj, "vocab_size", c->vocab_size, state, "model."))
        goto done;
    if (json_is_true(json_object_get(data, "shuffle")) != (tr->data.shuffle != 0)) {
        lmp_error("%s: checkpoint's data.shuffle differs from this run's", state);
        goto done;
    }
    if (step < 0 || step > INT32_MAX || skipped < 0 || skipped > step || seen < 0 || epoch < 0 ||
        pos < 0 || (size_t)pos > tr->data.n_windows || (epoch == 0 && pos != 0)) {
        lmp_error("%s: inconsistent step %lld / skipped %lld / epoch %lld / pos %lld", state,
                  (long long)step, (long long)skipped, (long long)epoch, (long long)pos);
        goto done;
    }
    /* everything that can fail before anything in tr changes */
    if (lmp_gpt2_load(model, &saved) != 0) goto done;
    const lmp_gpt2_config *sc = &saved->config;
    if (sc->n_layer != c->n_layer || sc->n_head != c->n_head || sc->n_embd != c->n_embd ||
        sc->n_ctx != c->n_ctx || sc->vocab_size != c->vocab_size) {
        lmp_error("%s: model config differs from trainer.json's", model);
        goto done;
    }
    if (lmp_read_file(opt, 0, &optbuf, &optlen) != 0) goto done;
    if (lmp_params_state_deserialize(&tr->g, optbuf, optlen, opt) != 0) goto done;
    lmp_gpt2_copy_params(tr->m, saved); /* same config, owned: cannot fail */
    tr->step = (int)step;
    tr->skipped = (int)skipped;
    tr->tokens_seen = seen;
    memcpy(tr->rng.s, rng, sizeof rng);
    tr->data.epoch = (uint64_t)epoch;
    tr->data.pos = (size_t)pos;
    tr->data.epoch_seed = epoch_seed;
    if (epoch > 0) data_shuffle(&tr->data);
    if (extra && json_object_get(j, "extra"))
        *extra = json_dumps(json_object_get(j, "extra"), JSON_COMPACT | JSON_PRESERVE_ORDER);
    rc = 0;
done:
    json_decref(j);
    lmp_gpt2_free(saved);
    free(optbuf);
    free(state);
    free(model);
    free(opt);
    return rc;
}
