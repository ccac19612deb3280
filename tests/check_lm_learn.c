/* check_lm_learn.c — the trainer learns: a tiny GPT-2 trained on a slice of
 * Moby-Dick ($LMPIPE_DATA_DIR/corpus; skipped with exit 77 when absent) gets
 * its held-out loss below a stated bound in a few hundred steps. */
#include "config.h"
#include <check.h>
#include <stdlib.h>
#include <unistd.h>
#include "lm_train.h"
#include "util.h"
#include "testutil.h"

static char *path;

/* Bytes of English as tokens (V = 256): a 2-layer, 64-wide model trained for
 * 300 steps of 16 x 16 bytes on 64 KB of Moby-Dick.  Untrained the loss is
 * ln 256 = 5.55 nats; the bytes' unigram entropy is 3.14 nats and their
 * bigram conditional entropy (measured on the training text itself, so
 * optimistic) 2.42.  We require < 2.6 on held-out text (the next 8 KB): the
 * model must have learned context, not just letter frequencies.  (It reaches
 * 2.45; 7 s on 2 loaded cores.) */
START_TEST(learns_moby_dick)
{
    char *text;
    size_t len;
    ck_assert_int_eq(lmp_read_text_file(path, 0, &text, &len), 0);
    ck_assert_uint_ge(len, 80000);
    size_t ntrain = 65536, nval = 8192;
    int *tok = mallocCheck((ntrain + nval) * sizeof *tok);
    /* skip the Gutenberg header */
    for (size_t i = 0; i < ntrain + nval; i++) tok[i] = (unsigned char)text[8000 + i];
    lmp_gpt2_config c = { .n_layer = 2, .n_head = 4, .n_embd = 64, .n_ctx = 64, .vocab_size = 256,
                          .layer_norm_epsilon = 1e-5f };
    lmp_gpt2 *m;
    ck_assert_int_eq(lmp_gpt2_init_random(&c, 1, &m), 0);
    lmp_lm_train_opts o;
    lmp_lm_train_opts_default(&o);
    o.B = 16;
    o.T = 16;
    o.steps = 300;
    o.optim.warmup_steps = 10;
    o.optim.lr = 2e-3;
    o.optim.min_lr = 2e-4;
    lmp_lm_trainer *tr;
    ck_assert_int_eq(lmp_lm_trainer_new(m, &o, tok, ntrain, 7, &tr), 0);
    double before, after;
    ck_assert_int_eq(lmp_lm_eval(m, tok + ntrain, nval, 16, o.T, 0, &before), 0);
    double t0 = lmp_now();
    lmp_lm_step_info info;
    for (int s = 0; s < o.steps; s++) ck_assert_int_eq(lmp_lm_train_step(tr, &info), 0);
    ck_assert_int_eq(lmp_lm_eval(m, tok + ntrain, nval, 16, o.T, 0, &after), 0);
    fprintf(stderr, "learning test: held-out loss %.3f -> %.3f nats/byte (train %.3f) in %.1f s\n",
            before, after, info.loss, lmp_now() - t0);
    ck_assert_double_gt(before, 5.0);
    ck_assert_double_lt(after, 2.6);
    lmp_lm_trainer_free(tr);
    lmp_gpt2_free(m);
    free(tok), free(text);
}
END_TEST

int main(void)
{
    const char *data = getenv("LMPIPE_DATA_DIR");
    /* the shipped corpus is compressed; another data folder may hold it plain */
    path = lmp_strfmt("%s/corpus/moby-dick.txt", data && *data ? data : LMP_SRCDIR "/data");
    if (access(path, R_OK) != 0) {
        char *gz = lmp_strfmt("%s.gz", path);
        free(path);
        path = gz;
    }
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "check_lm_learn: %s missing: skipped\n", path);
        free(path);
        return 77;
    }
    Suite *s = suite_create("lm_learn");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, learns_moby_dick);
    suite_add_tcase(s, tc);
    int failed = test_run_suite(s, 1);
    free(path);
    return failed ? 1 : 0;
}
