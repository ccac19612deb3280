/* check_qmat.c — the f16 / q8 weight formats of core/nn/qmat.h: f16 conversion
 * (every half value round-trips; rounding, subnormals, overflow, infinities
 * and NaN; F16C bit-identical to the scalar code), the matrix-vector kernels
 * against float64 references on sizes that leave remainders (n not a
 * multiple of 8 or 32), the SIMD and scalar paths bit-identical, the
 * many-row path against the one-row kernel, and a GPT-2 model switched to
 * each format and back. */
#include "config.h"
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "gpt2.h"
#include "qmat.h"
#include "testutil.h"

static int simd_available;

static float f_of_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void fill(float *x, size_t n, lmp_rng *rng, float scale)
{
    for (size_t i = 0; i < n; i++) x[i] = scale * lmp_rng_normal(rng);
}

/* ------------------------------------------------------------ f16 */

START_TEST(f16_every_half_round_trips)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = lmp_f16_to_f32((uint16_t)h);
        uint16_t back = lmp_f32_to_f16(f);
        if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu)) { /* NaN: stays a NaN of the same sign, quieted */
            ck_assert_msg(isnan(f), "half %#x is not NaN as float", h);
            ck_assert_uint_eq(back & 0x8000u, h & 0x8000u);
            ck_assert_uint_eq(back & 0x7e00u, 0x7e00u);
        } else {
            ck_assert_msg(back == h, "half %#x -> %g -> %#x", h, f, back);
        }
    }
    /* values the half format spells exactly */
    ck_assert(lmp_f16_to_f32(0x0001) == ldexpf(1, -24)); /* smallest subnormal */
    ck_assert(lmp_f16_to_f32(0x03ff) == ldexpf(1023, -24)); /* largest subnormal */
    ck_assert(lmp_f16_to_f32(0x0400) == ldexpf(1, -14)); /* smallest normal */
    ck_assert(lmp_f16_to_f32(0x7bff) == 65504.0f);
    ck_assert(lmp_f16_to_f32(0x3c00) == 1.0f);
    ck_assert(lmp_f16_to_f32(0xc000) == -2.0f);
    ck_assert(isinf(lmp_f16_to_f32(0x7c00)) && lmp_f16_to_f32(0x7c00) > 0);
    ck_assert(isinf(lmp_f16_to_f32(0xfc00)) && lmp_f16_to_f32(0xfc00) < 0);
    ck_assert(signbit(lmp_f16_to_f32(0x8000)) && lmp_f16_to_f32(0x8000) == 0);
}
END_TEST

START_TEST(f16_rounding_overflow_specials)
{
    /* round to nearest, ties to even */
    ck_assert_uint_eq(lmp_f32_to_f16(1.0f + ldexpf(1, -11)), 0x3c00);   /* tie, even below */
    ck_assert_uint_eq(lmp_f32_to_f16(1.0f + 3 * ldexpf(1, -11)), 0x3c02); /* tie, even above */
    ck_assert_uint_eq(lmp_f32_to_f16(1.0f + ldexpf(1, -11) + ldexpf(1, -20)), 0x3c01);
    /* overflow: 65504 is the largest; from 65520 up it rounds to infinity */
    ck_assert_uint_eq(lmp_f32_to_f16(65504.0f), 0x7bff);
    ck_assert_uint_eq(lmp_f32_to_f16(65519.99f), 0x7bff);
    ck_assert_uint_eq(lmp_f32_to_f16(65520.0f), 0x7c00);
    ck_assert_uint_eq(lmp_f32_to_f16(-1e10f), 0xfc00);
    ck_assert_uint_eq(lmp_f32_to_f16(INFINITY), 0x7c00);
    ck_assert_uint_eq(lmp_f32_to_f16(-INFINITY), 0xfc00);
    uint16_t n = lmp_f32_to_f16(NAN), nn = lmp_f32_to_f16(-NAN);
    ck_assert((n & 0x7c00) == 0x7c00 && (n & 0x3ff) && !(n & 0x8000));
    ck_assert((nn & 0x7c00) == 0x7c00 && (nn & 0x3ff) && (nn & 0x8000));
    /* subnormals and underflow */
    ck_assert_uint_eq(lmp_f32_to_f16(ldexpf(1, -24)), 0x0001);
    ck_assert_uint_eq(lmp_f32_to_f16(ldexpf(1, -25)), 0x0000);      /* tie to even: 0 */
    ck_assert_uint_eq(lmp_f32_to_f16(ldexpf(3, -25)), 0x0002);      /* 1.5 ulp: tie to even 2 */
    ck_assert_uint_eq(lmp_f32_to_f16(ldexpf(1.01f, -25)), 0x0001);
    ck_assert_uint_eq(lmp_f32_to_f16(-ldexpf(1, -30)), 0x8000);     /* signed zero */
    ck_assert_uint_eq(lmp_f32_to_f16(ldexpf(1, -14) - ldexpf(1, -26)), 0x0400); /* rounds up into the normals */
    ck_assert_uint_eq(lmp_f32_to_f16(ldexpf(1, -149)), 0x0000);     /* float subnormal */
}
END_TEST

/* F16C (through lmp_qmat_new with the SIMD path on) gives the scalar
 * conversion's bits on random finite patterns, subnormals included. */
START_TEST(f16_f16c_matches_scalar)
{
    if (!simd_available) return;
    enum { N = 1 << 16 };
    float *x = mallocCheck(N * sizeof(float));
    lmp_rng rng;
    lmp_rng_seed(&rng, 7);
    for (int i = 0; i < N; i++) {
        uint32_t u;
        do { /* exponents around half's range, both signs, every mantissa */
            u = (uint32_t)lmp_rng_u64(&rng);
            u = (u & 0x807fffffu) | ((uint32_t)(95 + (lmp_rng_u64(&rng) % 48)) << 23);
        } while (!(fabsf(f_of_bits(u)) < 65520.0f));
        x[i] = f_of_bits(u);
    }
    lmp_qmat *a, *b;
    ck_assert_int_eq(lmp_qmat_simd(1), 1);
    ck_assert_int_eq(lmp_qmat_new(&a, LMP_WEIGHTS_F16, x, 1, N, 0, "x"), 0);
    ck_assert_int_eq(lmp_qmat_simd(0), 0);
    ck_assert_int_eq(lmp_qmat_new(&b, LMP_WEIGHTS_F16, x, 1, N, 0, "x"), 0);
    lmp_qmat_simd(1);
    for (int i = 0; i < N; i++) {
        ck_assert_msg(a->h[i] == b->h[i], "%a: F16C %#x, scalar %#x", x[i], a->h[i], b->h[i]);
        ck_assert_uint_eq(a->h[i], lmp_f32_to_f16(x[i]));
    }
    lmp_qmat_free(a);
    lmp_qmat_free(b);
    free(x);
}
END_TEST

START_TEST(f16_overflow_is_an_error)
{
    float w[6] = { 1, 2, 3, 4, 70000.0f, 6 }; /* [in=3, out=2]: element [2,0] */
    lmp_qmat *q = (lmp_qmat *)1;
    ck_assert_int_eq(lmp_qmat_new(&q, LMP_WEIGHTS_F16, w, 2, 3, 1, "h.0.mlp.c_fc.weight"), -1);
    ck_assert_ptr_null(q);
    ck_assert_str_eq(lmp_errmsg(), "h.0.mlp.c_fc.weight: weight 70000 at [2,0] does not fit in f16 "
                                   "(largest 65504): use f32 or q8");
    ck_assert_int_eq(lmp_qmat_new(&q, LMP_WEIGHTS_Q8, w, 2, 3, 1, "w"), 0); /* q8 scales per block */
    lmp_qmat_free(q);
    int fmt = -1;
    ck_assert_int_eq(lmp_weights_parse("int8", "--weights", &fmt), -1);
    ck_assert_str_eq(lmp_errmsg(), "--weights: unknown weight format 'int8' (f32, f16 or q8)");
    ck_assert_int_eq(lmp_weights_parse("q8", "--weights", &fmt), 0);
    ck_assert_int_eq(fmt, LMP_WEIGHTS_Q8);
}
END_TEST

/* ------------------------------------------------------------ kernels */

static const int sizes[] = { 1, 5, 8, 13, 31, 32, 33, 64, 100, 257, 769 };
#define NSIZES ((int)(sizeof sizes / sizeof sizes[0]))

/* y[OC] through the one-row path with SIMD on (when there) and off: the two
 * must agree bit for bit; returns the SIMD one in y. */
static void forward_both(float *y, const float *x, const lmp_qmat *q, const float *bias)
{
    int OC = q->rows;
    float *ys = mallocCheck((size_t)OC * sizeof(float));
    lmp_qmat_simd(0);
    lmp_qmat_forward(ys, x, q, bias, 1);
    lmp_qmat_simd(1);
    lmp_qmat_forward(y, x, q, bias, 1);
    for (int o = 0; o < OC; o++)
        ck_assert_msg(memcmp(&y[o], &ys[o], sizeof(float)) == 0, "%s [%d x %d] row %d: SIMD %a, scalar %a",
                      lmp_weights_name(q->fmt), OC, q->cols, o, y[o], ys[o]);
    free(ys);
}

START_TEST(matvec_f16_against_f64)
{
    lmp_rng rng;
    lmp_rng_seed(&rng, 11);
    for (int si = 0; si < NSIZES; si++) {
        int C = sizes[si], OC = 37;
        float *w = mallocCheck((size_t)C * OC * sizeof(float)), *x = mallocCheck((size_t)C * sizeof(float));
        float *b = mallocCheck((size_t)OC * sizeof(float)), *y = mallocCheck((size_t)OC * sizeof(float));
        fill(w, (size_t)C * OC, &rng, 0.5f);
        fill(x, (size_t)C, &rng, 1.0f);
        fill(b, (size_t)OC, &rng, 0.1f);
        lmp_qmat *q;
        ck_assert_int_eq(lmp_qmat_new(&q, LMP_WEIGHTS_F16, w, OC, C, 1, "w"), 0); /* w is [C, OC] */
        forward_both(y, x, q, b);
        for (int o = 0; o < OC; o++) {
            double ref = b[o], ref32 = b[o], mag = fabs(b[o]);
            for (int i = 0; i < C; i++) {
                float wi = w[(size_t)i * OC + o];
                ref += (double)lmp_f16_to_f32(lmp_f32_to_f16(wi)) * x[i];
                ref32 += (double)wi * x[i];
                mag += fabs((double)wi * x[i]);
            }
            /* float accumulation of exactly the f16 weights ... */
            ck_assert_msg(fabs(y[o] - ref) <= 1e-6 * mag + 1e-7, "f16 [%d x %d] row %d: %.9g vs f64 %.9g",
                          OC, C, o, y[o], ref);
            /* ... which are the f32 weights to within half an f16 ulp (2^-11 relative) */
            ck_assert(fabs(y[o] - ref32) <= ldexp(1, -11) * mag + 1e-6 * mag + 1e-7);
        }
        lmp_qmat_free(q);
        free(w), free(x), free(b), free(y);
    }
}
END_TEST

START_TEST(quantize_q8_blocks)
{
    lmp_rng rng;
    lmp_rng_seed(&rng, 3);
    for (int si = 0; si < NSIZES; si++) {
        int C = sizes[si], nb = (C + 31) / 32;
        float *x = mallocCheck((size_t)C * sizeof(float)), *d = mallocCheck((size_t)nb * sizeof(float));
        int8_t *q = mallocCheck((size_t)nb * 32);
        memset(q, 0x55, (size_t)nb * 32);
        fill(x, (size_t)C, &rng, 2.0f);
        if (C > 40) for (int i = 32; i < 64 && i < C; i++) x[i] = 0; /* an all-zero block */
        lmp_qmat_quantize_q8_row(q, d, x, C);
        for (int bk = 0; bk < nb; bk++) {
            float amax = 0;
            for (int i = 32 * bk; i < 32 * bk + 32 && i < C; i++) amax = fmaxf(amax, fabsf(x[i]));
            ck_assert(d[bk] == amax / 127.0f);
            for (int i = 32 * bk; i < 32 * bk + 32; i++) {
                if (i >= C) {
                    ck_assert_int_eq(q[i], 0); /* padding */
                    continue;
                }
                ck_assert(q[i] >= -127 && q[i] <= 127);
                ck_assert(fabsf(d[bk] * q[i] - x[i]) <= 0.5001f * d[bk]);
                if (fabsf(x[i]) == amax && amax > 0) ck_assert_int_eq(abs(q[i]), 127);
            }
        }
        free(x), free(d), free(q);
    }
}
END_TEST

/* The documented q8 rule for one value of a block whose largest magnitude is
 * amax, in float as the format defines it: round(v * (127 / amax)). */
static double q8_round(float v, float amax)
{
    return amax > 0 ? nearbyintf(v * (127.0f / amax)) : 0;
}

START_TEST(matvec_q8_against_f64)
{
    lmp_rng rng;
    lmp_rng_seed(&rng, 12);
    for (int si = 0; si < NSIZES; si++) {
        int C = sizes[si], OC = 37, nb = (C + 31) / 32;
        float *w = mallocCheck((size_t)C * OC * sizeof(float)), *x = mallocCheck((size_t)C * sizeof(float));
        float *b = mallocCheck((size_t)OC * sizeof(float)), *y = mallocCheck((size_t)OC * sizeof(float));
        fill(w, (size_t)C * OC, &rng, 0.5f);
        fill(x, (size_t)C, &rng, 1.0f);
        fill(b, (size_t)OC, &rng, 0.1f);
        lmp_qmat *q;
        ck_assert_int_eq(lmp_qmat_new(&q, LMP_WEIGHTS_Q8, w, OC, C, 1, "w"), 0);
        ck_assert_int_eq(q->nb, nb);
        forward_both(y, x, q, b);
        /* the reference quantises x by the documented rule, independently */
        double *xr = mallocCheck((size_t)nb * 32 * sizeof(double)), *dx = mallocCheck((size_t)nb * sizeof(double));
        for (int bk = 0; bk < nb; bk++) {
            float amax = 0;
            for (int i = 32 * bk; i < 32 * bk + 32 && i < C; i++) amax = fmaxf(amax, fabsf(x[i]));
            dx[bk] = amax / 127.0f;
            for (int i = 32 * bk; i < 32 * bk + 32; i++) xr[i] = i < C ? q8_round(x[i], amax) : 0;
        }
        for (int o = 0; o < OC; o++) {
            double ref = b[o], ref32 = b[o], mag = fabs(b[o]), bound = 0;
            for (int bk = 0; bk < nb; bk++) {
                float wmax = 0;
                for (int i = 32 * bk; i < 32 * bk + 32 && i < C; i++) wmax = fmaxf(wmax, fabsf(w[(size_t)i * OC + o]));
                double dw = wmax / 127.0f, s = 0;
                for (int i = 32 * bk; i < 32 * bk + 32 && i < C; i++) {
                    double wi = w[(size_t)i * OC + o];
                    s += q8_round(w[(size_t)i * OC + o], wmax) * xr[i];
                    ref32 += wi * x[i];
                    mag += fabs(wi * x[i]);
                    /* |w x - w~ x~| <= |x| dw/2 + |w| dx/2 + dw dx/4 */
                    bound += fabs(x[i]) * dw / 2 + fabs(wi) * dx[bk] / 2 + dw * dx[bk] / 4;
                }
                ref += dw * dx[bk] * s;
            }
            ck_assert_msg(fabs(y[o] - ref) <= 1e-5 * mag + 1e-6, "q8 [%d x %d] row %d: %.9g vs f64 %.9g",
                          OC, C, o, y[o], ref);
            ck_assert_msg(fabs(y[o] - ref32) <= bound * 1.001 + 1e-5 * mag + 1e-6,
                          "q8 [%d x %d] row %d: %.9g, f32 %.9g, bound %.3g", OC, C, o, y[o], ref32, bound);
        }
        lmp_qmat_free(q);
        free(w), free(x), free(b), free(y), free(xr), free(dx);
    }
}
END_TEST

/* Several rows (f32 tiles + sgemm, more rows than one tile) agree with the
 * one-row kernel; the [rows, cols] and [cols, rows] sources give one matrix. */
START_TEST(many_rows_match_one_row)
{
    lmp_rng rng;
    lmp_rng_seed(&rng, 5);
    int N = 3, C = 77, OC = 300;
    float *w = mallocCheck((size_t)C * OC * sizeof(float)), *wt = mallocCheck((size_t)C * OC * sizeof(float));
    float *x = mallocCheck((size_t)N * C * sizeof(float)), *b = mallocCheck((size_t)OC * sizeof(float));
    float *y = mallocCheck((size_t)N * OC * sizeof(float)), *y1 = mallocCheck((size_t)OC * sizeof(float));
    fill(w, (size_t)C * OC, &rng, 0.3f);
    fill(x, (size_t)N * C, &rng, 1.0f);
    fill(b, (size_t)OC, &rng, 0.1f);
    for (int i = 0; i < C; i++)
        for (int o = 0; o < OC; o++) wt[(size_t)o * C + i] = w[(size_t)i * OC + o];
    for (int fmt = LMP_WEIGHTS_F16; fmt <= LMP_WEIGHTS_Q8; fmt++) {
        lmp_qmat *q, *qt;
        ck_assert_int_eq(lmp_qmat_new(&q, fmt, w, OC, C, 1, "w"), 0);
        ck_assert_int_eq(lmp_qmat_new(&qt, fmt, wt, OC, C, 0, "w"), 0);
        ck_assert_uint_eq(lmp_qmat_bytes(q), fmt == LMP_WEIGHTS_F16 ? (size_t)OC * C * 2 : (size_t)OC * 3 * 36);
        if (fmt == LMP_WEIGHTS_F16) ck_assert(memcmp(q->h, qt->h, (size_t)OC * C * 2) == 0);
        else ck_assert(memcmp(q->q, qt->q, (size_t)OC * 96) == 0 && memcmp(q->d, qt->d, (size_t)OC * 12) == 0);
        lmp_qmat_forward(y, x, q, b, N);
        for (int n = 0; n < N; n++) {
            lmp_qmat_forward(y1, x + (size_t)n * C, qt, b, 1);
            for (int o = 0; o < OC; o++)
                ck_assert_msg(fabsf(y[(size_t)n * OC + o] - y1[o]) <= 1e-5f * (1 + fabsf(y1[o])),
                              "%s row %d out %d: %g (many rows) vs %g", lmp_weights_name(fmt), n, o,
                              y[(size_t)n * OC + o], y1[o]);
        }
        lmp_qmat_free(q);
        lmp_qmat_free(qt);
    }
    free(w), free(wt), free(x), free(b), free(y), free(y1);
}
END_TEST

/* ------------------------------------------------------------ a model */

START_TEST(gpt2_weight_formats)
{
    char *path = test_fixture("gpt2", "tiny-hf");
    lmp_gpt2 *m;
    ck_assert_int_eq(lmp_gpt2_load(path, &m), 0);
    int T = 20, V = m->config.vocab_size, ids[20];
    for (int t = 0; t < T; t++) ids[t] = (t * 37 + 5) % V;
    size_t n = (size_t)T * V;
    float *ref = mallocCheck(n * sizeof(float)), *lg = mallocCheck(n * sizeof(float));
    ck_assert_int_eq(lmp_gpt2_logits(m, ids, 1, T, NULL, 0, ref), 0);
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)ref[i] * ref[i];
    /* relative RMS error of the logits: f16 rounds weights by <= 2^-11, q8
     * weights and inputs by <= 1/254 of their block's largest */
    const double tol[3] = { 0, 2e-3, 4e-2 };
    for (int fmt = LMP_WEIGHTS_F16; fmt <= LMP_WEIGHTS_Q8; fmt++) {
        ck_assert_int_eq(lmp_gpt2_set_weights(m, fmt), 0);
        ck_assert_int_eq(lmp_gpt2_weights(m), fmt);
        ck_assert_int_eq(lmp_gpt2_logits(m, ids, 1, T, NULL, 0, lg), 0);
        double se = 0;
        for (size_t i = 0; i < n; i++) se += ((double)lg[i] - ref[i]) * ((double)lg[i] - ref[i]);
        double rel = sqrt(se / ss);
        printf("check_qmat: tiny GPT-2 logits in %s: relative RMS error %.2e\n", lmp_weights_name(fmt), rel);
        ck_assert_msg(rel <= tol[fmt], "%s: logits off by %g (relative RMS)", lmp_weights_name(fmt), rel);
        ck_assert_msg(se > 0, "%s: logits identical to f32: the copies are not used", lmp_weights_name(fmt));
        /* training reads the f32 weights: refused while a copy is in use */
        ck_assert_int_eq(lmp_gpt2_forward(m, ids, NULL, 1, T, 1), -1);
        ck_assert(strstr(lmp_errmsg(), "training needs f32 weights") != NULL);
    }
    ck_assert_int_eq(lmp_gpt2_set_weights(m, LMP_WEIGHTS_F32), 0);
    ck_assert_int_eq(lmp_gpt2_logits(m, ids, 1, T, NULL, 0, lg), 0);
    ck_assert(memcmp(lg, ref, n * sizeof(float)) == 0); /* f32 is the untouched path */
    ck_assert_int_eq(lmp_gpt2_forward(m, ids, NULL, 1, T, 1), 0);
    lmp_gpt2_free(m);
    free(path), free(ref), free(lg);
}
END_TEST

int main(void)
{
    simd_available = lmp_qmat_simd(1);
    printf("check_qmat: AVX2/FMA/F16C kernels %s\n", simd_available ? "available: compared with the scalar path"
                                                                     : "not available: scalar path only");
    Suite *s = suite_create("qmat");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, f16_every_half_round_trips);
    tcase_add_test(tc, f16_rounding_overflow_specials);
    tcase_add_test(tc, f16_f16c_matches_scalar);
    tcase_add_test(tc, f16_overflow_is_an_error);
    tcase_add_test(tc, matvec_f16_against_f64);
    tcase_add_test(tc, quantize_q8_blocks);
    tcase_add_test(tc, matvec_q8_against_f64);
    tcase_add_test(tc, many_rows_match_one_row);
    tcase_add_test(tc, gpt2_weight_formats);
    suite_add_tcase(s, tc);
    return test_run_suite(s, 0) ? EXIT_FAILURE : EXIT_SUCCESS;
}
