/*
 * rnn_act.h — fast float sigmoid and tanh for the RNN's gate loops
 * (included by rnn_impl.h in the float build; tests/check_rnn.c checks them
 * against libm in double).
 */
#ifndef LMP_RNN_ACT_H
#define LMP_RNN_ACT_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "exp_nonpos.h"

/* The float build's activations, branch-free so that `omp simd` vectorises
 * the gate loops (libm's tanhf, through expm1f, was a third of a GRU step's
 * time), on exp_nonpos.h's exp.  tanh from expm1(-2|x|), which near 0 is its
 * own Taylor polynomial (no cancellation in 1 - exp): both within a few
 * float ulps of the true values, far inside what check_rnn's PyTorch
 * comparison allows.  Selections are integer masks, not float compares:
 * with trapping math (the default) GCC does not if-convert those. */
static inline float rnn_sigmoid(float x)
{
    float z = lmp_exp_nonpos(-fabsf(x)), s = 1.0f / (1.0f + z), zs = z * s, r;
    uint32_t xb, sb, zb;
    memcpy(&xb, &x, 4), memcpy(&sb, &s, 4), memcpy(&zb, &zs, 4);
    uint32_t neg = -(xb >> 31), rb = (zb & neg) | (sb & ~neg); /* x < 0: z / (1 + z) */
    memcpy(&r, &rb, 4);
    return r;
}

static inline float rnn_tanh(float x)
{
    float u = -2.0f * fabsf(x);
    float q = 1.0f / 40320; /* expm1(u) = u (1 + u/2 + u^2/6 + ...) for |u| < ln2/2 */
    q = q * u + 1.0f / 5040;
    q = q * u + 1.0f / 720;
    q = q * u + 1.0f / 120;
    q = q * u + 1.0f / 24;
    q = q * u + 1.0f / 6;
    q = q * u + 0.5f;
    q = q * u + 1.0f;
    float qu = q * u, e1 = lmp_exp_nonpos(u) - 1.0f, em1;
    uint32_t xb, qb, eb;
    memcpy(&xb, &x, 4), memcpy(&qb, &qu, 4), memcpy(&eb, &e1, 4);
    uint32_t small = -(uint32_t)((xb & 0x7fffffffu) < 0x3e317218u); /* |x| < ln2 / 4 */
    uint32_t mb = (qb & small) | (eb & ~small);
    memcpy(&em1, &mb, 4);
    return copysignf(-em1 / (2.0f + em1), x);
}
#endif
