/* check_trainer.c — the causal-LM trainer: a run resumed from a checkpoint
 * repeats the uninterrupted run's losses exactly; checkpoints replace each
 * other atomically and survive an interrupted save; gradient accumulation
 * equals the bigger batch; non-finite steps stop (or are skipped) with the
 * step named; held-out evaluation; and checkpoint errors.  (The learning
 * test is check_lm_learn.c.) */
#include "config.h"
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "ckptdir.h"
#include "lm_train.h"
#include "util.h"
#include "testutil.h"

static char tmpdir[] = "/tmp/lmp_trainerXXXXXX";

static lmp_gpt2 *tiny(int V, uint64_t seed)
{
    lmp_gpt2_config c = { .n_layer = 2, .n_head = 2, .n_embd = 32, .n_ctx = 32, .vocab_size = V,
                          .layer_norm_epsilon = 1e-5f };
    lmp_gpt2 *m;
    ck_assert_msg(lmp_gpt2_init_random(&c, seed, &m) == 0, "%s", lmp_errmsg());
    return m;
}

/* A token stream with some structure to learn: runs of an arithmetic
 * pattern broken by noise. */
static int *stream(size_t n, int V)
{
    int *t = mallocCheck(n * sizeof *t);
    lmp_rng r;
    lmp_rng_seed(&r, 99);
    for (size_t i = 0; i < n; i++)
        t[i] = lmp_rng_uniform(&r) < 0.2f ? (int)(lmp_rng_u64(&r) % V) : (int)((i * 7) % V);
    return t;
}

static void opts(lmp_lm_train_opts *o, int steps)
{
    lmp_lm_train_opts_default(o);
    o->B = 3;
    o->T = 16;
    o->accum = 2;
    o->steps = steps;
    o->optim.warmup_steps = 3;
    o->optim.lr = 3e-3;
    o->optim.min_lr = 1e-4;
}

static int exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

START_TEST(resume_repeats_the_same_losses)
{
    enum { N = 14, V = 50 };
    size_t n = 700; /* 43 windows of 17: epochs wrap during the run */
    int *tok = stream(n, V);
    lmp_lm_train_opts o;
    opts(&o, N);
    float straight[N], resumed[N];

    lmp_gpt2 *m = tiny(V, 5);
    lmp_lm_trainer *tr;
    ck_assert_msg(lmp_lm_trainer_new(m, &o, tok, n, 1234, &tr) == 0, "%s", lmp_errmsg());
    for (int s = 0; s < N; s++) {
        lmp_lm_step_info info;
        ck_assert_msg(lmp_lm_train_step(tr, &info) == 0, "%s", lmp_errmsg());
        ck_assert_int_eq(info.step, s + 1);
        ck_assert_int_eq(info.tokens, 2 * 3 * 16);
        straight[s] = info.loss;
    }
    ck_assert_int_ge(tr->data.epoch, 2);
    ck_assert_float_lt(straight[N - 1], straight[0]);
    float *final = mallocCheck(lmp_gpt2_num_params(&m->config) * sizeof(float));
    memcpy(final, m->wte, lmp_gpt2_num_params(&m->config) * sizeof(float)); /* one block */
    lmp_lm_trainer_free(tr);
    lmp_gpt2_free(m);

    char *dir = lmp_strfmt("%s/ckpt", tmpdir);
    m = tiny(V, 5);
    ck_assert_int_eq(lmp_lm_trainer_new(m, &o, tok, n, 1234, &tr), 0);
    for (int s = 0; s < N / 2; s++) {
        lmp_lm_step_info info;
        ck_assert_int_eq(lmp_lm_train_step(tr, &info), 0);
        resumed[s] = info.loss;
        /* checkpoints at steps 3 and 7: the second replaces the first */
        if (s == 2 || s == N / 2 - 1)
            ck_assert_msg(lmp_lm_trainer_save(tr, dir, s == 2 ? "{\"at\": 3}" : "{\"at\": 7}") == 0,
                          "%s", lmp_errmsg());
    }
    lmp_lm_trainer_free(tr);
    lmp_gpt2_free(m);
    char *leftover = lmp_strfmt("%s.tmp.%ld", dir, (long)getpid());
    ck_assert(!exists(leftover));

    /* a different random init: everything must come from the checkpoint */
    m = tiny(V, 77);
    ck_assert_int_eq(lmp_lm_trainer_new(m, &o, tok, n, 1234, &tr), 0);
    char *extra;
    ck_assert_msg(lmp_lm_trainer_load(tr, dir, &extra) == 0, "%s", lmp_errmsg());
    ck_assert_str_eq(extra, "{\"at\":7}");
    free(extra);
    ck_assert_int_eq(tr->step, N / 2);
    ck_assert_int_eq(tr->g.step, N / 2);
    ck_assert_int_eq(tr->tokens_seen, N / 2 * 96);
    for (int s = N / 2; s < N; s++) {
        lmp_lm_step_info info;
        ck_assert_int_eq(lmp_lm_train_step(tr, &info), 0);
        ck_assert_int_eq(info.step, s + 1);
        resumed[s] = info.loss;
    }
    for (int s = 0; s < N; s++)
        ck_assert_msg(resumed[s] == straight[s], "step %d: resumed loss %.9g, straight %.9g", s + 1,
                      resumed[s], straight[s]);
    ck_assert(memcmp(final, m->wte, lmp_gpt2_num_params(&m->config) * sizeof(float)) == 0);
    lmp_lm_trainer_free(tr);
    lmp_gpt2_free(m);

    /* an interrupted save (a partial DIR.tmp.PID) leaves the checkpoint usable;
     * so does a crash between the two renames of the fallback commit */
    ck_assert_int_eq(lmp_mkdirs(leftover), 0);
    char *junk = lmp_strfmt("%s/trainer.json", leftover);
    ck_assert_int_eq(lmp_write_file_atomic(junk, "{", 1), 0);
    char *aside = lmp_strfmt("%s.old.4242", dir);
    ck_assert_int_eq(rename(dir, aside), 0);
    m = tiny(V, 77);
    ck_assert_int_eq(lmp_lm_trainer_new(m, &o, tok, n, 1234, &tr), 0);
    ck_assert_msg(lmp_lm_trainer_load(tr, dir, NULL) == 0, "%s", lmp_errmsg());
    ck_assert_int_eq(tr->step, N / 2);
    ck_assert(exists(dir) && !exists(aside));
    /* the next save clears the stale temporary */
    ck_assert_int_eq(lmp_lm_trainer_save(tr, dir, NULL), 0);
    ck_assert(!exists(leftover));
    lmp_lm_trainer_free(tr);
    lmp_gpt2_free(m);
    free(junk), free(aside), free(leftover), free(dir), free(final), free(tok);
}
END_TEST

START_TEST(accumulation_equals_the_bigger_batch)
{
    enum { V = 40 };
    size_t n = 1000;
    int *tok = stream(n, V);
    lmp_lm_train_opts o;
    lmp_lm_train_opts_default(&o);
    o.shuffle = 0;
    o.T = 8;
    o.steps = 3;
    float loss[2];
    float *w[2];
    size_t np = 0;
    for (int k = 0; k < 2; k++) {
        o.B = k ? 2 : 4;
        o.accum = k ? 2 : 1;
        lmp_gpt2 *m = tiny(V, 3);
        lmp_lm_trainer *tr;
        ck_assert_int_eq(lmp_lm_trainer_new(m, &o, tok, n, 1, &tr), 0);
        lmp_lm_step_info info;
        ck_assert_int_eq(lmp_lm_train_step(tr, &info), 0);
        loss[k] = info.loss;
        np = lmp_gpt2_num_params(&m->config);
        w[k] = mallocCheck(np * sizeof(float));
        memcpy(w[k], m->wte, np * sizeof(float));
        lmp_lm_trainer_free(tr);
        lmp_gpt2_free(m);
    }
    ck_assert_float_le(fabsf(loss[0] - loss[1]), 1e-5f * loss[0]);
    /* Adam normalises the step, so even tiny gradients move weights by ~lr:
     * compare the updates, which must agree to a small fraction of lr */
    lmp_gpt2 *m0 = tiny(V, 3);
    double worst = 0, moved = 0;
    for (size_t i = 0; i < np; i++) {
        worst = fmax(worst, fabs((double)w[0][i] - w[1][i]));
        moved = fmax(moved, fabs((double)w[0][i] - m0->wte[i]));
    }
    ck_assert_double_gt(moved, 1e-4);
    ck_assert_msg(worst <= 0.05 * moved, "updates differ by %g (largest update %g)", worst, moved);
    lmp_gpt2_free(m0);
    free(w[0]), free(w[1]), free(tok);
}
END_TEST

START_TEST(nonfinite_steps_stop_or_skip)
{
    enum { V = 30 };
    size_t n = 500;
    int *tok = stream(n, V);
    lmp_lm_train_opts o;
    opts(&o, 10);
    lmp_gpt2 *m = tiny(V, 8);
    lmp_lm_trainer *tr;
    ck_assert_int_eq(lmp_lm_trainer_new(m, &o, tok, n, 1, &tr), 0);
    lmp_lm_step_info info;
    ck_assert_int_eq(lmp_lm_train_step(tr, &info), 0);
    m->h[1].ln_2_w[3] = NAN; /* poisons the loss and every gradient */
    memset(&info, 0, sizeof info);
    ck_assert_int_eq(lmp_lm_train_step(tr, &info), -1);
    ck_assert_int_eq(info.step, 2); /* filled, so the caller can log it */
    ck_assert_int_eq(info.skipped, 1);
    ck_assert_str_eq(lmp_errmsg(), "step 2: the loss is NaN; stopping (on_nonfinite=skip skips such steps)");
    float before = m->wte[0];
    tr->o.optim.skip_nonfinite = 1;
    ck_assert_int_eq(lmp_lm_train_step(tr, &info), 0);
    ck_assert_int_eq(info.skipped, 1);
    ck_assert_int_eq(info.step, 2);
    ck_assert(isnan(info.loss));
    ck_assert_int_eq(tr->skipped, 1);
    ck_assert_int_eq(tr->g.step, 1); /* AdamW's bias correction counts real updates */
    ck_assert_float_eq(m->wte[0], before);
    lmp_lm_trainer_free(tr);
    lmp_gpt2_free(m);
    free(tok);
}
END_TEST

START_TEST(evaluation)
{
    enum { V = 30 };
    size_t n = 200;
    int *tok = stream(n, V);
    lmp_gpt2 *m = tiny(V, 8);
    double loss;
    /* 200 tokens = 12 windows of 16 (+1); B 5 leaves a partial last batch */
    ck_assert_int_eq(lmp_lm_eval(m, tok, n, 5, 16, 0, &loss), 0);
    double want = 0;
    for (int w = 0; w < 12; w++) {
        float l;
        ck_assert_int_eq(lmp_gpt2_loss(m, tok + w * 16, tok + w * 16 + 1, 1, 16, NULL, &l), 0);
        want += l / 12.0;
    }
    ck_assert_double_le(fabs(loss - want), 1e-5 * want);
    ck_assert_int_eq(lmp_lm_eval(m, tok, n, 5, 16, 3, &loss), 0);
    want = 0;
    for (int w = 0; w < 3; w++) {
        float l;
        ck_assert_int_eq(lmp_gpt2_loss(m, tok + w * 16, tok + w * 16 + 1, 1, 16, NULL, &l), 0);
        want += l / 3.0;
    }
    ck_assert_double_le(fabs(loss - want), 1e-5 * want);
    ck_assert_int_eq(lmp_lm_eval(m, tok, 16, 5, 16, 0, &loss), -1);
    ck_assert_str_eq(lmp_errmsg(), "eval: 16 tokens are too few for one window of 17");
    lmp_gpt2_free(m);
    free(tok);
}
END_TEST

START_TEST(trainer_and_checkpoint_errors)
{
    enum { V = 30 };
    size_t n = 300;
    int *tok = stream(n, V);
    lmp_lm_train_opts o;
    opts(&o, 4);
    lmp_gpt2 *m = tiny(V, 8);
    lmp_lm_trainer *tr;
    o.T = 33;
    ck_assert_int_eq(lmp_lm_trainer_new(m, &o, tok, n, 1, &tr), -1);
    ck_assert_str_eq(lmp_errmsg(), "trainer: seq 33 exceeds the model's context of 32");
    o.T = 16;
    ck_assert_int_eq(lmp_lm_trainer_new(m, &o, tok, 16, 1, &tr), -1);
    ck_assert_str_eq(lmp_errmsg(), "trainer: 16 tokens are too few for one window of 17");
    tok[100] = V;
    ck_assert_int_eq(lmp_lm_trainer_new(m, &o, tok, n, 1, &tr), -1);
    ck_assert_str_eq(lmp_errmsg(), "trainer: token id 30 at position 100 out of range [0, 30)");
    tok[100] = 0;
    ck_assert_int_eq(lmp_lm_trainer_new(m, &o, tok, n, 1, &tr), 0);
    char *dir = lmp_strfmt("%s/errs", tmpdir), *msg;
    ck_assert_int_eq(lmp_lm_trainer_load(tr, dir, NULL), -1);
    msg = lmp_strfmt("%s/trainer.json: No such file or directory", dir);
    ck_assert_str_eq(lmp_errmsg(), msg);
    free(msg);
    ck_assert_int_eq(lmp_lm_train_step(tr, NULL), 0);
    ck_assert_int_eq(lmp_lm_trainer_save(tr, dir, "[1]"), -1);
    msg = lmp_strfmt("%s: checkpoint extra data is not a JSON object", dir);
    ck_assert_str_eq(lmp_errmsg(), msg);
    free(msg);
    ck_assert_int_eq(lmp_lm_trainer_save(tr, dir, NULL), 0);
    lmp_lm_trainer_free(tr);

    /* another batch size cannot resume this checkpoint; tr stays as it was */
    o.B = 2;
    ck_assert_int_eq(lmp_lm_trainer_new(m, &o, tok, n, 1, &tr), 0);
    ck_assert_int_eq(lmp_lm_trainer_load(tr, dir, NULL), -1);
    msg = lmp_strfmt("%s/trainer.json: checkpoint has opts.batch 3, this run has 2", dir);
    ck_assert_str_eq(lmp_errmsg(), msg);
    free(msg);
    ck_assert_int_eq(tr->step, 0);
    lmp_lm_trainer_free(tr);

    /* a damaged optimizer state is refused before anything changes */
    o.B = 3;
    ck_assert_int_eq(lmp_lm_trainer_new(m, &o, tok, n, 1, &tr), 0);
    char *opt = lmp_strfmt("%s/optimizer.bin", dir);
    ck_assert_int_eq(truncate(opt, 100), 0);
    float w0 = m->wte[0];
    m->wte[0] = 42;
    ck_assert_int_eq(lmp_lm_trainer_load(tr, dir, NULL), -1);
    msg = lmp_strfmt("%s: optimizer state truncated at byte 42", opt);
    ck_assert_str_eq(lmp_errmsg(), msg);
    free(msg);
    ck_assert_float_eq(m->wte[0], 42);
    m->wte[0] = w0;
    char *state = lmp_strfmt("%s/trainer.json", dir);
    ck_assert_int_eq(lmp_write_file_atomic(state, "{\"format\": \"other\"}", 19), 0);
    ck_assert_int_eq(lmp_lm_trainer_load(tr, dir, NULL), -1);
    msg = lmp_strfmt("%s: format is \"other\", expected \"lmpipe-lm-trainer-1\"", state);
    ck_assert_str_eq(lmp_errmsg(), msg);
    free(msg);
    lmp_lm_trainer_free(tr);
    lmp_gpt2_free(m);
    free(opt), free(state), free(dir), free(tok);
}
END_TEST

int main(void)
{
    if (!mkdtemp(tmpdir)) return 1;
    Suite *s = suite_create("trainer");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, resume_repeats_the_same_losses);
    tcase_add_test(tc, accumulation_equals_the_bigger_batch);
    tcase_add_test(tc, nonfinite_steps_stop_or_skip);
    tcase_add_test(tc, evaluation);
    tcase_add_test(tc, trainer_and_checkpoint_errors);
    suite_add_tcase(s, tc);
    int failed = test_run_suite(s, 1);
    lmp_remove_tree(tmpdir);
    return failed ? 1 : 0;
}
