/*
 * testutil.h — what the Check test programs share: running a suite, paths
 * of committed fixtures, scratch folders, looking tensors up in a reference
 * safetensors file, and the error measures the numeric tests compare with.
 * Header-only (static inline): each test program is one file.
 */
#ifndef LMP_TESTUTIL_H
#define LMP_TESTUTIL_H

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "util.h"

/* Run every test of s; nofork: in this process (fixtures loaded by main stay
 * valid, and a crash shows in a debugger).  Returns the number of failures. */
static inline int test_run_suite(Suite *s, int nofork)
{
    SRunner *sr = srunner_create(s);
    if (nofork) srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed;
}

/* $top_srcdir/tests/fixtures/DIR/NAME, or .../fixtures/NAME when dir is
 * NULL (malloc'd). */
static inline char *test_fixture(const char *dir, const char *name)
{
    const char *top = getenv("top_srcdir");
    return dir ? lmp_strfmt("%s/tests/fixtures/%s/%s", top ? top : ".", dir, name)
               : lmp_strfmt("%s/tests/fixtures/%s", top ? top : ".", name);
}

/* A fresh folder /tmp/lmp_TAG.XXXXXX in buf[64]; test_rmtree removes it. */
static inline void test_mkdtemp(char buf[64], const char *tag)
{
    snprintf(buf, 64, "/tmp/lmp_%s.XXXXXX", tag);
    ck_assert_ptr_nonnull(mkdtemp(buf));
}

static inline void test_rmtree(const char *dir)
{
    char *cmd = lmp_strfmt("rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(cmd);
}

/* Tensor `name` of a reference file, which must have dtype; *n (may be
 * NULL) receives its element count. */
static inline const void *test_st_get(lmp_st *st, const char *name, const char *dtype, int64_t *n)
{
    const void *d;
    int64_t shape[LMP_ST_MAX_DIMS];
    int nd;
    ck_assert_msg(lmp_st_get(st, name, dtype, &d, shape, &nd) == 0, "%s", lmp_errmsg());
    if (n) {
        *n = 1;
        for (int i = 0; i < nd; i++) *n *= shape[i];
    }
    return d;
}

static inline double test_maxabs(const double *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

/* Largest per-element relative error of a against b, with a floor of 1e-3
 * of the tensors' scale so that entries that should be ~0 are judged on an
 * absolute scale. */
static inline double test_rel_err(const double *a, const double *b, size_t n)
{
    double scale = fmax(test_maxabs(a, n), test_maxabs(b, n)), e = 0;
    if (scale == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        double d = fmax(fmax(fabs(a[i]), fabs(b[i])), 1e-3 * scale);
        e = fmax(e, fabs(a[i] - b[i]) / d);
    }
    return e;
}

#endif
