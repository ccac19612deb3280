/* check_gpt2.c — the GPT-2 model against the independent PyTorch reference
 * (tests/fixtures/gpt2, made by make_fixtures.py): logits from the HF folder,
 * the llm.c .bin and an F16 .safetensors; greedy continuations past n_ctx
 * (sliding window), single and batched; KV-cache logits against full
 * recompute; the sampler's options; strided perplexity; save/load round
 * trips; and the errors for bad checkpoints and bad input. */
#include "config.h"
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bpe.h"
#include "gpt2.h"
#include "safetensors.h"
#include "util.h"
#include "testutil.h"

#define TOL 1e-4f

/* the last error message must be exactly the formatted text */
#define ERRMSG_EQ(...)                          \
    do {                                        \
        char *want_ = lmp_strfmt(__VA_ARGS__);  \
        ck_assert_str_eq(lmp_errmsg(), want_);  \
        free(want_);                            \
    } while (0)

static char tmpdir[] = "/tmp/lmp_gpt2XXXXXX";
static lmp_st *expst;

static char *fixture(const char *name) { return test_fixture("gpt2", name); }

static lmp_gpt2 *load(const char *name)
{
    char *p = fixture(name);
    lmp_gpt2 *m = NULL;
    ck_assert_msg(lmp_gpt2_load(p, &m) == 0, "%s", lmp_errmsg());
    free(p);
    return m;
}

static const void *exp_get(const char *name, const char *dtype, int64_t *n) { return test_st_get(expst, name, dtype, n); }

/* max |logits - expected| over the three reference sequences */
static float logits_error(lmp_gpt2 *m)
{
    int V = m->config.vocab_size;
    float worst = 0;
    for (int s = 0; s < 3; s++) {
        char name[32];
        int64_t T, n;
        snprintf(name, sizeof name, "seq%d.ids", s);
        const int *ids = exp_get(name, "I32", &T);
        snprintf(name, sizeof name, "seq%d.logits", s);
        const float *ref = exp_get(name, "F32", &n);
        ck_assert_int_eq(n, T * V);
        float *out = mallocCheck((size_t)n * sizeof(float));
        ck_assert_msg(lmp_gpt2_logits(m, ids, 1, (int)T, NULL, 0, out) == 0, "%s", lmp_errmsg());
        for (int64_t i = 0; i < n; i++) worst = fmaxf(worst, fabsf(out[i] - ref[i]));
        free(out);
    }
    return worst;
}

START_TEST(logits_match_reference)
{
    const char *files[] = { "tiny-hf", "tiny.bin" };
    for (int f = 0; f < 2; f++) {
        lmp_gpt2 *m = load(files[f]);
        ck_assert_int_eq(m->config.n_layer, 2);
        ck_assert_int_eq(m->config.n_head, 2);
        ck_assert_int_eq(m->config.n_embd, 32);
        ck_assert_int_eq(m->config.n_ctx, 64);
        ck_assert_int_eq(m->config.vocab_size, 101);
        float e = logits_error(m);
        ck_assert_msg(e <= TOL, "%s: max |dlogit| %g", files[f], e);
        lmp_gpt2_free(m);
    }
    /* F16 weights: the same model up to half-precision rounding */
    lmp_gpt2 *h = load("tiny-f16.safetensors"), *f = load("tiny-hf");
    size_t n = (size_t)h->config.vocab_size * h->config.n_embd;
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabsf(h->wte[i] - f->wte[i]) <= fabsf(f->wte[i]) * 0x1p-11f + 0x1p-24f,
                      "wte[%zu] %g vs %g", i, h->wte[i], f->wte[i]);
    float e = logits_error(h);
    ck_assert_msg(e > 1e-6f && e < 0.1f, "f16 model: max |dlogit| %g", e);
    lmp_gpt2_free(h);
    lmp_gpt2_free(f);
}
END_TEST

START_TEST(logits_at_positions_and_loss)
{
    lmp_gpt2 *m = load("tiny-hf");
    int V = m->config.vocab_size;
    int64_t T;
    const int *ids = exp_get("seq2.ids", "I32", &T);
    const float *ref = exp_get("seq2.logits", "F32", NULL);
    /* two sequences in one batch, logits at two positions */
    int in[2 * 64], pos[2] = { 63, 5 };
    memcpy(in, ids, 64 * sizeof(int));
    memcpy(in + 64, ids, 64 * sizeof(int));
    float *out = mallocCheck(2 * 2 * V * sizeof(float));
    ck_assert_int_eq(lmp_gpt2_logits(m, in, 2, 64, pos, 2, out), 0);
    for (int b = 0; b < 2; b++)
        for (int p = 0; p < 2; p++)
            for (int v = 0; v < V; v++)
                ck_assert_float_eq_tol(out[(b * 2 + p) * V + v], ref[pos[p] * V + v], TOL);
    /* loss = mean NLL from the reference logits */
    int targets[64];
    double want = 0;
    for (int t = 0; t < 64; t++) {
        targets[t] = t < 63 ? ids[t + 1] : -1;
        if (targets[t] < 0) continue;
        double mx = -1e30, s = 0;
        for (int v = 0; v < V; v++) mx = fmax(mx, ref[t * V + v]);
        for (int v = 0; v < V; v++) s += exp(ref[t * V + v] - mx);
        want += -(ref[t * V + targets[t]] - mx - log(s));
    }
    want /= 63;
    float mean, losses[64];
    ck_assert_int_eq(lmp_gpt2_loss(m, ids, targets, 1, 64, losses, &mean), 0);
    ck_assert_double_eq_tol(mean, want, 1e-5);
    ck_assert_float_eq(losses[63], 0);
    /* errors */
    ck_assert_int_eq(lmp_gpt2_logits(m, ids, 1, 64, (int[]){ 64 }, 1, out), -1);
    ERRMSG_EQ("%s: logits position 64 out of range [0, 64)", m->source);
    int *big = callocCheck(65, sizeof(int));
    ck_assert_int_eq(lmp_gpt2_logits(m, big, 1, 65, NULL, 0, out), -1);
    ERRMSG_EQ("%s: sequence of 65 tokens exceeds the context of 64", m->source);
    big[3] = 101;
    ck_assert_int_eq(lmp_gpt2_logits(m, big, 1, 8, NULL, 0, out), -1);
    ck_assert_str_eq(lmp_errmsg(), "token id 101 at [0,3] out of range [0, 101)");
    free(big);
    free(out);
    lmp_gpt2_free(m);
}
END_TEST

/* ------------------------------------------------------------ generation */

typedef struct {
    int n[4];
    int ids[4][256];
    float *logits[4]; /* [256, V] per sequence, or NULL */
    int V, stop_at;
} collect;

static int collect_cb(void *user, int seq, int token, const float *logits)
{
    collect *c = user;
    if (c->logits[seq]) memcpy(c->logits[seq] + (size_t)c->n[seq] * c->V, logits, c->V * sizeof(float));
    c->ids[seq][c->n[seq]++] = token;
    return c->stop_at && c->n[seq] == c->stop_at;
}

static lmp_gpt2_gen_opts greedy_opts(int n)
{
    lmp_gpt2_gen_opts o;
    lmp_gpt2_gen_opts_default(&o);
    o.max_new_tokens = n;
    o.temperature = 0;
    o.eos_id = -1;
    o.window_keep = atoi(lmp_st_metadata(expst, "keep"));
    return o;
}

static const char *greedy_names[3] = { "greedy_a", "greedy_b", "greedy_c" };

START_TEST(greedy_matches_reference)
{
    const char *files[] = { "tiny-hf", "tiny.bin" };
    for (int f = 0; f < 2; f++) {
        lmp_gpt2 *m = load(files[f]);
        const int *prompts[3], *want[3];
        int plen[3], wlen[3];
        for (int i = 0; i < 3; i++) {
            char name[32];
            int64_t n;
            snprintf(name, sizeof name, "%s.prompt", greedy_names[i]);
            prompts[i] = exp_get(name, "I32", &n);
            plen[i] = (int)n;
            snprintf(name, sizeof name, "%s.ids", greedy_names[i]);
            want[i] = exp_get(name, "I32", &n);
            wlen[i] = (int)n;
        }
        /* one at a time */
        for (int i = 0; i < 3; i++) {
            collect c = { .V = 101 };
            lmp_gpt2_gen_opts o = greedy_opts(wlen[i]);
            ck_assert_int_eq(lmp_gpt2_generate(m, &prompts[i], &plen[i], 1, &o, collect_cb, &c), 0);
            ck_assert_int_eq(c.n[0], wlen[i]);
            for (int t = 0; t < wlen[i]; t++)
                ck_assert_msg(c.ids[0][t] == want[i][t], "%s %s token %d: %d vs %d", files[f],
                              greedy_names[i], t, c.ids[0][t], want[i][t]);
        }
        /* all three batched: each stops at its own length via the callback */
        lmp_gpt2_gen_opts o = greedy_opts(100);
        collect c = { .V = 101 };
        ck_assert_int_eq(lmp_gpt2_generate(m, prompts, plen, 3, &o, collect_cb, &c), 0);
        for (int i = 0; i < 3; i++) {
            int n = wlen[i] < 100 ? wlen[i] : 100;
            for (int t = 0; t < n; t++)
                ck_assert_msg(c.ids[i][t] == want[i][t], "batched %s token %d", greedy_names[i], t);
        }
        lmp_gpt2_free(m);
    }
}
END_TEST

START_TEST(kv_cache_equals_full_recompute)
{
    lmp_gpt2 *m = load("tiny-hf");
    int V = 101, n_ctx = 64;
    int64_t P;
    const int *prompt = exp_get("greedy_a.prompt", "I32", &P);
    int plen = (int)P, n_new = 100;
    collect c = { .V = V };
    c.logits[0] = mallocCheck((size_t)n_new * V * sizeof(float));
    lmp_gpt2_gen_opts o = greedy_opts(n_new);
    ck_assert_int_eq(lmp_gpt2_generate(m, &prompt, &plen, 1, &o, collect_cb, &c), 0);
    int toks[256];
    memcpy(toks, prompt, plen * sizeof(int));
    memcpy(toks + plen, c.ids[0], n_new * sizeof(int));
    float *full = mallocCheck((size_t)n_ctx * V * sizeof(float));
    float worst = 0;
    int s = 0, slides = 0;
    for (int k = 0; k < n_new; k++) {
        int N = plen + k; /* predicting toks[N] from the window toks[s..N) */
        if (N - s > n_ctx) {
            s = N - o.window_keep;
            slides++;
        }
        int pos = N - s - 1;
        ck_assert_int_eq(lmp_gpt2_logits(m, toks + s, 1, N - s, &pos, 1, full), 0);
        for (int v = 0; v < V; v++) worst = fmaxf(worst, fabsf(full[v] - c.logits[0][(size_t)k * V + v]));
    }
    ck_assert_int_ge(slides, 2);
    ck_assert_msg(worst <= TOL, "cache vs recompute: %g", worst);
    free(full);
    free(c.logits[0]);
    lmp_gpt2_free(m);
}
END_TEST

static void run_gen(lmp_gpt2 *m, const int *const *prompts, const int *plen, int n,
                    const lmp_gpt2_gen_opts *o, collect *c)
{
    memset(c, 0, sizeof *c);
    c->V = m->config.vocab_size;
    ck_assert_msg(lmp_gpt2_generate(m, prompts, plen, n, o, collect_cb, c) == 0, "%s", lmp_errmsg());
}

START_TEST(sampling_options)
{
    lmp_gpt2 *m = load("tiny-hf");
    int64_t P;
    const int *pa = exp_get("greedy_a.prompt", "I32", &P);
    int la = (int)P;
    const int *want = exp_get("greedy_a.ids", "I32", NULL);
    collect c, d;
    /* top-k 1 and a tiny top-p are greedy whatever the temperature and seed */
    lmp_gpt2_gen_opts o = greedy_opts(40);
    o.temperature = 1.7f;
    o.top_k = 1;
    o.seed = 99;
    run_gen(m, &pa, &la, 1, &o, &c);
    for (int t = 0; t < 40; t++) ck_assert_int_eq(c.ids[0][t], want[t]);
    o.top_k = 0;
    o.top_p = 1e-6f;
    run_gen(m, &pa, &la, 1, &o, &c);
    for (int t = 0; t < 40; t++) ck_assert_int_eq(c.ids[0][t], want[t]);
    o.top_p = 0; /* keeps the one most likely token, as HF's top-p warper */
    run_gen(m, &pa, &la, 1, &o, &c);
    for (int t = 0; t < 40; t++) ck_assert_int_eq(c.ids[0][t], want[t]);

    /* same seed, same sample; another seed, another sample */
    o = greedy_opts(40);
    o.temperature = 1.0f;
    o.seed = 7;
    run_gen(m, &pa, &la, 1, &o, &c);
    run_gen(m, &pa, &la, 1, &o, &d);
    ck_assert_int_eq(memcmp(c.ids[0], d.ids[0], 40 * sizeof(int)), 0);
    int differs_from_greedy = 0;
    for (int t = 0; t < 40; t++) differs_from_greedy |= c.ids[0][t] != want[t];
    ck_assert(differs_from_greedy);
    o.seed = 8;
    run_gen(m, &pa, &la, 1, &o, &d);
    ck_assert_int_ne(memcmp(c.ids[0], d.ids[0], 40 * sizeof(int)), 0);
    /* sequence 0 of a batch samples exactly as it does alone */
    const int *pb = exp_get("greedy_b.prompt", "I32", &P);
    const int *two[2] = { pa, pb };
    int lens[2] = { la, (int)P };
    o.seed = 7;
    run_gen(m, two, lens, 2, &o, &d);
    ck_assert_int_eq(memcmp(c.ids[0], d.ids[0], 40 * sizeof(int)), 0);

    /* first-token frequencies follow softmax(logits / T), restricted by top-k / top-p */
    const float *lg = exp_get("seq1.logits", "F32", NULL);
    const int *s1 = exp_get("seq1.ids", "I32", &P);
    int l1 = (int)P, V = 101;
    const float *last = lg + (size_t)(l1 - 1) * V;
    double pr[101], z = 0;
    int order[101];
    for (int v = 0; v < V; v++) z += pr[v] = exp((last[v] - last[0]) / 0.8);
    for (int v = 0; v < V; v++) pr[v] /= z, order[v] = v;
    for (int i = 0; i < V; i++) /* by probability, descending */
        for (int j = i + 1; j < V; j++)
            if (pr[order[j]] > pr[order[i]]) { int t = order[i]; order[i] = order[j]; order[j] = t; }
    int counts[101] = { 0 }, N = 3000;
    o = greedy_opts(1);
    o.temperature = 0.8f;
    for (int r = 0; r < N; r++) {
        o.seed = 1000 + r;
        run_gen(m, &s1, &l1, 1, &o, &c);
        counts[c.ids[0][0]]++;
    }
    for (int k = 0; k < 3; k++) {
        int v = order[k];
        double sd = sqrt(N * pr[v] * (1 - pr[v]));
        ck_assert_msg(fabs(counts[v] - N * pr[v]) < 4 * sd + 1, "token %d: %d draws, expected %.1f", v,
                      counts[v], N * pr[v]);
    }
    /* top-k 3: only the three best; top-p: only the nucleus */
    o.top_k = 3;
    memset(counts, 0, sizeof counts);
    for (int r = 0; r < 300; r++) {
        o.seed = 5000 + r;
        run_gen(m, &s1, &l1, 1, &o, &c);
        counts[c.ids[0][0]]++;
    }
    ck_assert_int_eq(counts[order[0]] + counts[order[1]] + counts[order[2]], 300);
    ck_assert_int_gt(counts[order[2]], 0);
    o.top_k = 0;
    o.top_p = (float)(pr[order[0]] + pr[order[1]] * 0.5); /* nucleus = best two */
    memset(counts, 0, sizeof counts);
    for (int r = 0; r < 300; r++) {
        o.seed = 9000 + r;
        run_gen(m, &s1, &l1, 1, &o, &c);
        counts[c.ids[0][0]]++;
    }
    ck_assert_int_eq(counts[order[0]] + counts[order[1]], 300);
    ck_assert_int_gt(counts[order[1]], 0);

    /* repetition penalty (greedy): argmax of the penalised reference logits of
     * the 64-token sequence, whose best token it has seen */
    lg = exp_get("seq2.logits", "F32", NULL);
    s1 = exp_get("seq2.ids", "I32", &P);
    l1 = (int)P;
    last = lg + (size_t)(l1 - 1) * V;
    for (int v = 0; v < V; v++) if (last[v] > last[order[0]]) order[0] = v;
    o = greedy_opts(1);
    o.repetition_penalty = 3.0f;
    float pen[101];
    for (int v = 0; v < V; v++) {
        int seen = 0;
        for (int t = 0; t < l1; t++) seen |= s1[t] == v;
        pen[v] = !seen ? last[v] : last[v] < 0 ? last[v] * 3 : last[v] / 3;
    }
    int best = 0;
    for (int v = 1; v < V; v++) if (pen[v] > pen[best]) best = v;
    run_gen(m, &s1, &l1, 1, &o, &c);
    ck_assert_int_eq(c.ids[0][0], best);
    int seen_best = 0;
    for (int t = 0; t < l1; t++) seen_best |= s1[t] == order[0];
    ck_assert_msg(seen_best && best != order[0], "the test needs the penalty to change the choice");

    /* eos: stops right after emitting it */
    o = greedy_opts(100);
    o.eos_id = want[10];
    int first = 0;
    while (want[first] != o.eos_id) first++;
    run_gen(m, &pa, &la, 1, &o, &c);
    ck_assert_int_eq(c.n[0], first + 1);
    ck_assert_int_eq(c.ids[0][first], o.eos_id);
    lmp_gpt2_free(m);
}
END_TEST

START_TEST(generate_errors)
{
    lmp_gpt2 *m = load("tiny-hf");
    int p[65] = { 0 }, n = 65;
    const int *pp = p;
    lmp_gpt2_gen_opts o;
    lmp_gpt2_gen_opts_default(&o);
    ck_assert_int_eq(lmp_gpt2_generate(m, &pp, &n, 1, &o, NULL, NULL), -1);
    ERRMSG_EQ("%s: prompt 0 has 65 tokens; it must have 1 to 64 (the context)", m->source);
    n = 3;
    p[2] = 101;
    ck_assert_int_eq(lmp_gpt2_generate(m, &pp, &n, 1, &o, NULL, NULL), -1);
    ERRMSG_EQ("%s: prompt 0: token id 101 at position 2 out of range [0, 101)", m->source);
    p[2] = 1;
    o.top_p = -0.5f;
    ck_assert_int_eq(lmp_gpt2_generate(m, &pp, &n, 1, &o, NULL, NULL), -1);
    ERRMSG_EQ("%s: top_p -0.5 must be in [0, 1]", m->source);
    lmp_gpt2_free(m);
}
END_TEST

/* Every -1 of lmp_gpt2_loss says why: a bad target, a NaN loss. */
START_TEST(loss_errors)
{
    lmp_gpt2 *m = load("tiny-hf");
    int ids[4] = { 1, 2, 3, 4 }, tg[4] = { 2, 3, 101, -1 };
    float mean;
    ck_assert_int_eq(lmp_gpt2_loss(m, ids, tg, 2, 2, NULL, &mean), -1);
    ERRMSG_EQ("%s: target 101 at [1,0] out of range [0, 101)", m->source);
    tg[2] = 4;
    ck_assert_int_eq(lmp_gpt2_loss(m, ids, tg, 2, 2, NULL, &mean), 0);
    lmp_gpt2_own_params(m);
    for (int i = 0; i < 32; i++) m->ln_f_b[i] = 3e38f; /* logits overflow */
    ck_assert_int_eq(lmp_gpt2_loss(m, ids, tg, 2, 2, NULL, &mean), -1);
    ERRMSG_EQ("%s: the loss is NaN: the forward pass overflowed (non-finite activations)", m->source);
    lmp_gpt2_free(m);
}
END_TEST

START_TEST(perplexity_matches_reference)
{
    const char *files[] = { "tiny-hf", "tiny.bin" };
    int64_t n;
    const int *ids = exp_get("ppl.ids", "I32", &n);
    for (int f = 0; f < 2; f++) {
        lmp_gpt2 *m = load(files[f]);
        int strides[3] = { 32, 64, 17 };
        for (int i = 0; i < 3; i++) {
            char name[48];
            snprintf(name, sizeof name, "ppl.stride%d.nll", strides[i]);
            double want = *(const double *)exp_get(name, "F64", NULL);
            snprintf(name, sizeof name, "ppl.stride%d.tokens", strides[i]);
            int64_t count = *(const int64_t *)exp_get(name, "I64", NULL);
            lmp_gpt2_ppl r;
            ck_assert_msg(lmp_gpt2_perplexity(m, ids, (long)n, strides[i], &r) == 0, "%s", lmp_errmsg());
            ck_assert_int_eq(r.tokens, count);
            ck_assert_msg(fabs(r.nll - want) <= 1e-5 * want, "stride %d: nll %.8f vs %.8f", strides[i],
                          r.nll, want);
            ck_assert_double_eq_tol(r.ppl, exp(want), 1e-4 * exp(want));
        }
        lmp_gpt2_ppl r0, r1;
        ck_assert_int_eq(lmp_gpt2_perplexity(m, ids, (long)n, 0, &r0), 0); /* default n_ctx/2 */
        ck_assert_int_eq(lmp_gpt2_perplexity(m, ids, (long)n, 32, &r1), 0);
        ck_assert_double_eq(r0.nll, r1.nll);
        ck_assert_int_eq(lmp_gpt2_perplexity(m, ids, (long)n, 65, &r0), -1);
        ERRMSG_EQ("%s: perplexity stride 65 exceeds the context of 64 (tokens would be skipped)", m->source);
        ck_assert_int_eq(lmp_gpt2_perplexity(m, ids, 1, 0, &r0), -1);
        lmp_gpt2_free(m);
    }
}
END_TEST

/* ------------------------------------------------------------ checkpoints */

START_TEST(save_load_round_trip)
{
    lmp_gpt2 *a = load("tiny.bin"); /* llm.c in, safetensors out */
    ck_assert(lmp_gpt2_owns_params(a) == 0);
    char *dir = lmp_strfmt("%s/saved", tmpdir), *file = lmp_strfmt("%s/one.safetensors", tmpdir);
    ck_assert_msg(lmp_gpt2_save(a, dir) == 0, "%s", lmp_errmsg());
    ck_assert_msg(lmp_gpt2_save(a, file) == 0, "%s", lmp_errmsg());
    lmp_gpt2 *b, *c;
    ck_assert_msg(lmp_gpt2_load(dir, &b) == 0, "%s", lmp_errmsg());
    ck_assert_msg(lmp_gpt2_load(file, &c) == 0, "%s", lmp_errmsg()); /* config from __metadata__ */
    int64_t T;
    const int *ids = exp_get("seq2.ids", "I32", &T);
    size_t n = (size_t)T * 101;
    float *la = mallocCheck(n * 4), *lb = mallocCheck(n * 4), *lc = mallocCheck(n * 4);
    ck_assert_int_eq(lmp_gpt2_logits(a, ids, 1, (int)T, NULL, 0, la), 0);
    ck_assert_int_eq(lmp_gpt2_logits(b, ids, 1, (int)T, NULL, 0, lb), 0);
    ck_assert_int_eq(lmp_gpt2_logits(c, ids, 1, (int)T, NULL, 0, lc), 0);
    ck_assert_int_eq(memcmp(la, lb, n * 4), 0);
    ck_assert_int_eq(memcmp(la, lc, n * 4), 0);
    /* the folder has HF names and a config.json */
    char *stp = lmp_strfmt("%s/model.safetensors", dir), *cfg = lmp_strfmt("%s/config.json", dir), *text;
    lmp_st *st;
    ck_assert_int_eq(lmp_st_open(stp, &st), 0);
    ck_assert_int_eq(lmp_st_count(st), 4 + 12 * 2);
    ck_assert_ptr_nonnull(lmp_st_find(st, "h.1.attn.c_attn.weight"));
    ck_assert_int_eq(lmp_st_find(st, "h.1.attn.c_attn.weight")->shape[1], 96);
    ck_assert_str_eq(lmp_st_metadata(st, "format"), "pt");
    ck_assert_str_eq(lmp_st_metadata(st, "layer_norm_epsilon"), "1e-05");
    lmp_st_close(st);
    size_t len;
    ck_assert_int_eq(lmp_read_file(cfg, 0, &text, &len), 0);
    ck_assert_ptr_nonnull(strstr(text, "\"model_type\": \"gpt2\""));
    ck_assert_ptr_nonnull(strstr(text, "\"n_positions\": 64"));
    ck_assert_ptr_nonnull(strstr(text, "\"layer_norm_epsilon\": 1e-5"));
    free(text);
    /* a random model saves and loads too */
    lmp_gpt2 *r;
    lmp_gpt2_config rc = { 1, 4, 16, 8, 50, 1e-5f };
    ck_assert_int_eq(lmp_gpt2_init_random(&rc, 3, &r), 0);
    ck_assert(lmp_gpt2_owns_params(r));
    ck_assert_uint_eq(lmp_gpt2_num_params(&rc), 50 * 16 + 8 * 16 + 12 * 256 + 13 * 16 + 32);
    ck_assert_ptr_eq(lmp_gpt2_find_linear(r, "h.0.mlp.c_proj"), r->h[0].mlp_proj);
    ck_assert_ptr_null(lmp_gpt2_find_linear(r, "h.1.mlp.c_proj"));
    ck_assert_int_eq(r->h[0].mlp_proj->in, 64);
    ck_assert_int_eq(lmp_gpt2_save(r, file), 0);
    lmp_gpt2_free(c);
    ck_assert_int_eq(lmp_gpt2_load(file, &c), 0);
    ck_assert_int_eq(memcmp(c->h[0].c_fc->weight, r->h[0].c_fc->weight, 16 * 64 * 4), 0);
    lmp_gpt2_free(r);
    free(la), free(lb), free(lc), free(stp), free(cfg), free(dir), free(file);
    lmp_gpt2_free(a), lmp_gpt2_free(b), lmp_gpt2_free(c);
}
END_TEST

/* An adapter that adds 1 to every output: proves every linear goes through the hook. */
static int hook_calls;
static void plus_one(lmp_gpt2_adapter *a, const lmp_gpt2_linear *l, float *out, const float *inp, int N)
{
    hook_calls++;
    for (long i = 0; i < (long)N * l->out; i++) out[i] += *(float *)a->ctx;
}
static const lmp_adapter_ops plus_one_ops = { .kind = "plus", .forward = plus_one };

START_TEST(adapters_hook_every_linear)
{
    lmp_gpt2 *m = load("tiny-hf");
    float zero = 0, one = 1;
    lmp_gpt2_adapter ad[8];
    for (int i = 0; i < m->n_linears; i++) {
        ad[i] = (lmp_gpt2_adapter){ .ops = &plus_one_ops, .ctx = &zero };
        m->linears[i].adapters = &ad[i];
    }
    ck_assert_str_eq(m->linears[5].name, "h.1.attn.c_proj");
    float e = logits_error(m); /* adding zero changes nothing */
    ck_assert_float_le(e, TOL);
    ck_assert_int_eq(hook_calls, 3 * 8);
    int p[3] = { 1, 2, 3 }, n = 3;
    const int *pp = p;
    lmp_gpt2_gen_opts o = greedy_opts(2);
    hook_calls = 0;
    ck_assert_int_eq(lmp_gpt2_generate(m, &pp, &n, 1, &o, NULL, NULL), 0);
    ck_assert_int_eq(hook_calls, 2 * 8);
    ad[4].ctx = &one; /* h.1.attn.c_attn (a constant added to mlp.c_proj would vanish in ln_f) */
    ck_assert_float_gt(logits_error(m), 1e-3f);
    lmp_gpt2_free(m);
}
END_TEST

/* write a copy of the tiny model's safetensors with one tensor changed */
static char *variant(const char *name, const char *tensor, int drop, int swap_shape,
                     const char *extra_name, const float *extra_data, const int64_t *extra_shape)
{
    char *src = fixture("tiny-hf/model.safetensors");
    lmp_st *st;
    ck_assert_int_eq(lmp_st_open(src, &st), 0);
    int n = lmp_st_count(st), k = 0;
    lmp_st_tensor *t = callocCheck(n + 1, sizeof *t);
    int64_t (*shapes)[LMP_ST_MAX_DIMS] = callocCheck(n + 1, sizeof *shapes);
    for (int i = 0; i < n; i++) {
        const lmp_st_info *ti = lmp_st_info_at(st, i);
        if (drop && strcmp(ti->name, tensor) == 0) continue;
        const void *d;
        ck_assert_int_eq(lmp_st_get(st, ti->name, NULL, &d, shapes[k], NULL), 0);
        if (swap_shape && strcmp(ti->name, tensor) == 0) {
            int64_t x = shapes[k][0];
            shapes[k][0] = shapes[k][1];
            shapes[k][1] = x;
        }
        t[k] = (lmp_st_tensor){ ti->name, ti->dtype, ti->ndim, shapes[k], d };
        k++;
    }
    if (extra_name) t[k++] = (lmp_st_tensor){ extra_name, "F32", 2, extra_shape, extra_data };
    char *dir = lmp_strfmt("%s/%s", tmpdir, name), *out = lmp_strfmt("%s/model.safetensors", dir);
    ck_assert_int_eq(lmp_mkdirs(dir), 0);
    lmp_st_kv meta = { "format", "pt" };
    ck_assert_int_eq(lmp_st_write(out, t, k, &meta, 1), 0);
    char *cfg = fixture("tiny-hf/config.json"), *text, *cfgout = lmp_strfmt("%s/config.json", dir);
    size_t len;
    ck_assert_int_eq(lmp_read_file(cfg, 0, &text, &len), 0);
    ck_assert_int_eq(lmp_write_file_atomic(cfgout, text, len), 0);
    free(text), free(cfg), free(cfgout), free(out), free(t), free(shapes), free(src);
    lmp_st_close(st);
    return dir;
}

static void expect_load_error(const char *path, const char *msg)
{
    lmp_gpt2 *m = (lmp_gpt2 *)1;
    ck_assert_int_eq(lmp_gpt2_load(path, &m), -1);
    ck_assert_ptr_null(m);
    ck_assert_str_eq(lmp_errmsg(), msg);
}

START_TEST(bad_checkpoints)
{
    char *d = variant("swap", "transformer.h.1.mlp.c_fc.weight", 0, 1, NULL, NULL, NULL);
    char *msg = lmp_strfmt("%s/model.safetensors: tensor \"transformer.h.1.mlp.c_fc.weight\" has shape [128, 32], expected [32, 128]", d);
    expect_load_error(d, msg);
    free(d), free(msg);
    d = variant("drop", "transformer.ln_f.bias", 1, 0, NULL, NULL, NULL);
    msg = lmp_strfmt("%s/model.safetensors: missing tensor \"transformer.ln_f.bias\"", d);
    expect_load_error(d, msg);
    free(d), free(msg);
    float *junk = callocCheck(101 * 32, sizeof(float));
    d = variant("head", "lm_head.weight", 1, 0, "lm_head.weight", junk, (int64_t[]){ 101, 32 });
    msg = lmp_strfmt("%s/model.safetensors: lm_head.weight differs from wte.weight (only a tied LM head is supported)", d);
    expect_load_error(d, msg);
    free(d), free(msg);
    d = variant("extra", "", 0, 0, "transformer.h.2.ln_1.weight", junk, (int64_t[]){ 1, 32 });
    msg = lmp_strfmt("%s/model.safetensors: tensor \"transformer.h.2.ln_1.weight\" present but the config has n_layer 2", d);
    expect_load_error(d, msg);
    free(junk), free(msg);
    /* config problems */
    char *cfg = lmp_strfmt("%s/config.json", d);
    const char *bad[][2] = {
        { "{\"model_type\": \"gpt_neo\", \"n_layer\": 2}", "model_type is \"gpt_neo\", expected \"gpt2\"" },
        { "{\"n_layer\": 2, \"n_head\": 5, \"n_embd\": 32, \"n_positions\": 64, \"vocab_size\": 101}",
          "n_head 5 does not divide n_embd 32" },
        { "{\"n_layer\": 2, \"n_head\": 2, \"n_embd\": 32, \"vocab_size\": 101}",
          "key \"n_ctx\" missing or not an integer" },
        { "{\"n_layer\": 2, \"n_head\": 2, \"n_embd\": 32, \"n_ctx\": 64, \"vocab_size\": 101, \"layer_norm_epsilon\": 1e-6}",
          "layer_norm_epsilon 1e-06 not supported (only 1e-05)" },
        { "[]", "expected a JSON object" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(lmp_write_file_atomic(cfg, bad[i][0], strlen(bad[i][0])), 0);
        msg = lmp_strfmt("%s: %s", cfg, bad[i][1]);
        expect_load_error(d, msg);
        free(msg);
    }
    unlink(cfg);
    msg = lmp_strfmt("%s: no config.json in the folder", d);
    expect_load_error(d, msg);
    free(msg);
    char *stp = lmp_strfmt("%s/model.safetensors", d);
    msg = lmp_strfmt("%s: no GPT-2 config: no n_layer in __metadata__ and no config.json next to it", stp);
    expect_load_error(stp, msg);
    free(msg);
    unlink(stp);
    msg = lmp_strfmt("%s: no model.safetensors in the folder", d);
    expect_load_error(d, msg);
    free(msg), free(stp), free(cfg), free(d);

    /* llm.c files: truncated, wrong version, wrong magic */
    char *bin = fixture("tiny.bin"), *data;
    size_t len;
    ck_assert_int_eq(lmp_read_file(bin, 0, &data, &len), 0);
    char *p = lmp_strfmt("%s/cut.bin", tmpdir);
    ck_assert_int_eq(lmp_write_file_atomic(p, data, len - 4), 0);
    msg = lmp_strfmt("%s: file is %zu bytes, expected %zu for its header (L=2, C=32, V=101, Vp=128, maxT=64)", p, len - 4, len);
    expect_load_error(p, msg);
    free(msg);
    ((int32_t *)data)[1] = 5;
    ck_assert_int_eq(lmp_write_file_atomic(p, data, len), 0);
    msg = lmp_strfmt("%s: llm.c checkpoint version 5 not supported (only 3 = fp32)", p);
    expect_load_error(p, msg);
    free(msg);
    ((int32_t *)data)[0] = 1234;
    ck_assert_int_eq(lmp_write_file_atomic(p, data, len), 0);
    msg = lmp_strfmt("%s: bad magic 1234 (not an llm.c GPT-2 checkpoint)", p);
    expect_load_error(p, msg);
    free(msg);
    ck_assert_int_eq(lmp_write_file_atomic(p, data, 100), 0);
    msg = lmp_strfmt("%s: file too small for an llm.c header (100 bytes)", p);
    expect_load_error(p, msg);
    free(msg), free(p), free(data), free(bin);
    p = lmp_strfmt("%s/missing", tmpdir);
    msg = lmp_strfmt("%s: No such file or directory", p);
    expect_load_error(p, msg);
    free(msg), free(p);
}
END_TEST

/* ------------------------------------------------------------ CLI */

/* Run a CLI entry point with stdout/stderr captured; returns its status. */
static int run_cli(int (*fn)(int, char **), char **out, char **err, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, err);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL && argc < 31;) argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    char *po = lmp_strfmt("%s/cli.out", tmpdir), *pe = lmp_strfmt("%s/cli.err", tmpdir);
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    ck_assert_ptr_nonnull(freopen(po, "w", stdout));
    ck_assert_ptr_nonnull(freopen(pe, "w", stderr));
    int rc = fn(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    size_t len;
    ck_assert_int_eq(lmp_read_file(po, 0, out, &len), 0);
    ck_assert_int_eq(lmp_read_file(pe, 0, err, &len), 0);
    free(po);
    free(pe);
    return rc;
}

static char *join_ids(const int *ids, int n, const char *sep)
{
    char *s = strdupCheck("");
    for (int i = 0; i < n; i++) {
        char *t = lmp_strfmt("%s%s%d", s, i ? sep : "", ids[i]);
        free(s);
        s = t;
    }
    return s;
}

START_TEST(cli_generate_and_perplexity)
{
    char *model = fixture("tiny-hf"), *bin = fixture("tiny.bin"), *out, *err;
    int64_t P;
    const int *prompt = exp_get("greedy_b.prompt", "I32", &P);
    const int *want = exp_get("greedy_b.ids", "I32", NULL);
    char *pids = join_ids(prompt, (int)P, ","), *wids = join_ids(want, 20, ",");
    char *expect = lmp_strfmt("%s\n", wids);
    ck_assert_int_eq(run_cli(lmp_cli_generate, &out, &err, "generate", "--model", model, "--prompt-ids",
                             pids, "--max-new-tokens", "20", "--ids", NULL), 0);
    ck_assert_str_eq(out, expect);
    ck_assert_str_eq(err, "");
    free(out), free(err);
    ck_assert_int_eq(run_cli(lmp_cli_generate, &out, &err, "generate", "--model=" , "--ids", NULL), 2);
    free(out), free(err);
    /* top-k 1 samples greedily; --opt=value works too */
    char *mopt = lmp_strfmt("--model=%s", bin);
    ck_assert_int_eq(run_cli(lmp_cli_generate, &out, &err, "generate", mopt, "--prompt-ids", pids,
                             "--max-new-tokens=20", "--top-k", "1", "--seed", "5", "--ids", NULL), 0);
    ck_assert_str_eq(out, expect);
    free(out), free(err);
    /* usage errors: exit 2 with a message and the usage */
    const char *usage_cases[][4] = {
        { "--model", "x", NULL, "lmpipe generate: give exactly one of --prompt and --prompt-ids" },
        { "--model", "x", "--bogus", "lmpipe generate: unknown argument '--bogus'" },
        { "--prompt-ids", "1", "--max-new-tokens", "lmpipe generate: --max-new-tokens needs a value" },
        { "--prompt-ids", "1,,2", "--model", "lmpipe generate: --model needs a value" },
    };
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(run_cli(lmp_cli_generate, &out, &err, "generate", usage_cases[i][0],
                                 usage_cases[i][1], usage_cases[i][2], NULL), 2);
        ck_assert_msg(strncmp(err, usage_cases[i][3], strlen(usage_cases[i][3])) == 0, "%s", err);
        ck_assert_ptr_nonnull(strstr(err, "usage: lmpipe generate"));
        free(out), free(err);
    }
    ck_assert_int_eq(run_cli(lmp_cli_generate, &out, &err, "generate", "--model", model, "--prompt-ids",
                             "1,,2", NULL), 2);
    ck_assert_ptr_nonnull(strstr(err, "lmpipe generate: bad --prompt-ids '1,,2' (comma-separated token ids)"));
    free(out), free(err);
    ck_assert_int_eq(run_cli(lmp_cli_generate, &out, &err, "generate", "--model", model, "--prompt-ids",
                             "1", "--temperature", "-1", NULL), 2);
    free(out), free(err);
    /* bad input: exit 1, one line */
    char *msg = lmp_strfmt("lmpipe generate: %s: prompt 0: token id 101 at position 1 out of range [0, 101)\n", model);
    ck_assert_int_eq(run_cli(lmp_cli_generate, &out, &err, "generate", "--model", model, "--prompt-ids",
                             "1,101", "--ids", NULL), 1);
    ck_assert_str_eq(err, msg);
    free(out), free(err), free(msg);
    int many[65] = { 0 };
    char *long_ids = join_ids(many, 65, ",");
    ck_assert_int_eq(run_cli(lmp_cli_generate, &out, &err, "generate", "--model", model, "--prompt-ids",
                             long_ids, "--ids", NULL), 1);
    ck_assert_str_eq(err, "lmpipe generate: the prompt has 65 tokens but the model's context is 64\n");
    free(out), free(err), free(long_ids);
    char *missing = lmp_strfmt("%s/nope.bin", tmpdir);
    msg = lmp_strfmt("lmpipe generate: %s: No such file or directory\n", missing);
    ck_assert_int_eq(run_cli(lmp_cli_generate, &out, &err, "generate", "--model", missing, "--prompt-ids",
                             "1", "--ids", NULL), 1);
    ck_assert_str_eq(err, msg);
    free(out), free(err), free(msg), free(missing);

    /* perplexity over an ids file */
    int64_t n;
    const int *ids = exp_get("ppl.ids", "I32", &n);
    char *text = join_ids(ids, (int)n, " "), *path = lmp_strfmt("%s/ids.txt", tmpdir);
    ck_assert_int_eq(lmp_write_file_atomic(path, text, strlen(text)), 0);
    double nll = *(const double *)exp_get("ppl.stride17.nll", "F64", NULL);
    ck_assert_int_eq(run_cli(lmp_cli_perplexity, &out, &err, "perplexity", "--model", bin, "--stride", "17",
                             "--ids", path, NULL), 0);
    char *last = strrchr(out, '\n');
    ck_assert_ptr_nonnull(last);
    *last = 0;
    last = strrchr(out, '\n') ? strrchr(out, '\n') + 1 : out;
    double got_nll, got_ppl;
    long got_tokens;
    ck_assert_int_eq(sscanf(last, "nll=%lf ppl=%lf tokens=%ld", &got_nll, &got_ppl, &got_tokens), 3);
    ck_assert_double_eq_tol(got_nll, nll, 2e-6);
    ck_assert_int_eq(got_tokens, 149);
    free(out), free(err);
    ck_assert_int_eq(run_cli(lmp_cli_perplexity, &out, &err, "perplexity", "--model", bin, NULL), 2);
    free(out), free(err);
    ck_assert_int_eq(lmp_write_file_atomic(path, "1 2 x", 5), 0);
    msg = lmp_strfmt("lmpipe perplexity: %s: not a list of token ids\n", path);
    ck_assert_int_eq(run_cli(lmp_cli_perplexity, &out, &err, "perplexity", "--model", bin, "--ids", path, NULL), 1);
    ck_assert_str_eq(err, msg);
    free(out), free(err), free(msg);
    free(text), free(path), free(pids), free(wids), free(expect), free(mopt), free(model), free(bin);
}
END_TEST

/* Text in and out: a random model with GPT-2's vocabulary size and the
 * shipped GPT-2 tokenizer. */
START_TEST(cli_text)
{
    lmp_gpt2_config cfg = { 1, 2, 8, 32, 50257, 1e-5f };
    lmp_gpt2 *m;
    ck_assert_int_eq(lmp_gpt2_init_random(&cfg, 11, &m), 0);
    char *dir = lmp_strfmt("%s/textmodel", tmpdir), *out, *err, *out2, *err2;
    ck_assert_int_eq(lmp_gpt2_save(m, dir), 0);
    lmp_gpt2_free(m);
    /* the same sampled continuation as ids and as text */
    ck_assert_int_eq(run_cli(lmp_cli_generate, &out, &err, "generate", "--model", dir, "--prompt",
                             "Hello, world", "--max-new-tokens", "6", "--temperature", "1.5",
                             "--seed", "3", "--ids", NULL), 0);
    ck_assert_msg(*err == 0, "%s", err);
    ck_assert_int_eq(run_cli(lmp_cli_generate, &out2, &err2, "generate", "--model", dir, "--prompt",
                             "Hello, world", "--max-new-tokens", "6", "--temperature", "1.5",
                             "--seed", "3", NULL), 0);
    ck_assert_msg(*err2 == 0, "%s", err2);
    int *ids;
    long n = 0;
    char *p = out;
    ids = mallocCheck(16 * sizeof(int));
    for (char *tok = strtok(p, ",\n"); tok; tok = strtok(NULL, ",\n")) ids[n++] = atoi(tok);
    ck_assert_int_eq(n, 6);
    lmp_bpe *bpe;
    char *vocab = lmp_strfmt("%s/data/gpt2", getenv("top_srcdir") ? getenv("top_srcdir") : ".");
    ck_assert_msg(lmp_bpe_load_dir(vocab, &bpe) == 0, "%s", lmp_errmsg());
    char *text;
    size_t len;
    ck_assert_int_eq(lmp_bpe_decode(bpe, ids, (size_t)n, &text, &len), 0);
    char *want = lmp_strfmt("%s\n", text);
    ck_assert_int_eq(strlen(out2), strlen(want));
    ck_assert_int_eq(memcmp(out2, want, strlen(want)), 0);
    free(text), free(want), free(out), free(err), free(out2), free(err2), free(ids);
    /* a prompt longer than the context: one line, exit 1 */
    ck_assert_int_eq(run_cli(lmp_cli_generate, &out, &err, "generate", "--model", dir, "--prompt",
                             "one, two, three, four, five, six, seven, eight, nine, ten, eleven, "
                             "twelve, thirteen, fourteen, fifteen, sixteen, seventeen", NULL), 1);
    ck_assert_msg(strncmp(err, "lmpipe generate: the prompt has ", 32) == 0, "%s", err);
    ck_assert_ptr_nonnull(strstr(err, "tokens but the model's context is 32\n"));
    free(out), free(err);
    /* perplexity of a text file equals the API on its encoding */
    const char *doc = "It was the best of times, it was the worst of times, it was the age of wisdom, "
                      "it was the age of foolishness, it was the epoch of belief.";
    char *path = lmp_strfmt("%s/doc.txt", tmpdir);
    ck_assert_int_eq(lmp_write_file_atomic(path, doc, strlen(doc)), 0);
    ck_assert_int_eq(run_cli(lmp_cli_perplexity, &out, &err, "perplexity", "--model", dir, path, NULL), 0);
    size_t nn;
    ck_assert_int_eq(lmp_bpe_encode(bpe, doc, strlen(doc), 0, &ids, &nn), 0);
    ck_assert_int_eq(lmp_gpt2_load(dir, &m), 0);
    lmp_gpt2_ppl r;
    ck_assert_int_eq(lmp_gpt2_perplexity(m, ids, (long)nn, 0, &r), 0);
    char *line = lmp_strfmt("nll=%.6f ppl=%.4f tokens=%ld\n", r.nll, r.ppl, r.tokens);
    ck_assert_ptr_nonnull(strstr(out, line));
    ck_assert_int_eq(r.tokens, (long)nn - 1);
    lmp_gpt2_free(m);
    lmp_bpe_free(bpe);
    free(line), free(out), free(err), free(ids), free(path), free(vocab), free(dir);
}
END_TEST

int main(void)
{
    if (!mkdtemp(tmpdir)) return 1;
    char *e = fixture("expected.safetensors");
    if (lmp_st_open(e, &expst) != 0) {
        fprintf(stderr, "%s\n", lmp_errmsg());
        return 1;
    }
    free(e);
    Suite *s = suite_create("gpt2");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, logits_match_reference);
    tcase_add_test(tc, logits_at_positions_and_loss);
    tcase_add_test(tc, greedy_matches_reference);
    tcase_add_test(tc, kv_cache_equals_full_recompute);
    tcase_add_test(tc, sampling_options);
    tcase_add_test(tc, generate_errors);
    tcase_add_test(tc, loss_errors);
    tcase_add_test(tc, perplexity_matches_reference);
    tcase_add_test(tc, save_load_round_trip);
    tcase_add_test(tc, adapters_hook_every_linear);
    tcase_add_test(tc, bad_checkpoints);
    tcase_add_test(tc, cli_generate_and_perplexity);
    tcase_add_test(tc, cli_text);
    suite_add_tcase(s, tc);
    int failed = test_run_suite(s, 1);
    lmp_st_close(expst);
    char *cmd = lmp_strfmt("rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) failed++;
    free(cmd);
    return failed ? 1 : 0;
}
