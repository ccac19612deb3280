/*
 * exp_nonpos.h — exp(u) for u <= 0 in float, branch-free so that `omp simd`
 * loops vectorise it (no libm call, no float compare: integer masks, which
 * GCC if-converts even with trapping math).  Shared by the float GELU
 * (nn_impl.h) and the RNN's sigmoid and tanh (rnn_act.h), whose libm
 * versions were 12-17% of a GPT-2 LoRA step and a third of a GRU step.
 *
 * u = n ln2 + r (Cody-Waite split of ln2), |r| <= ln2/2; 2^n is built in the
 * exponent bits, exp(r) is its degree-7 Taylor polynomial (relative error
 * < 6e-9).  u < -87 (or NaN) gives 0; callers pass u <= 0 only.
 */
#ifndef LMP_EXP_NONPOS_H
#define LMP_EXP_NONPOS_H

#include <stdint.h>
#include <string.h>

static inline float lmp_exp_nonpos(float u)
{
    uint32_t ub, mb, rb;
    memcpy(&ub, &u, 4);
    uint32_t keep = -(uint32_t)((ub & 0x7fffffffu) <= 0x42ae0000u); /* |u| <= 87 */
    float m = u * 1.44269504088896341f + 12582912.0f; /* round(u log2 e) + 1.5 * 2^23 */
    float n = m - 12582912.0f;
    float r = u - n * 0.693359375f - n * -2.12194440e-4f;
    memcpy(&rb, &r, 4);
    rb &= keep; /* r = 0 (finite) where the result is flushed anyway */
    memcpy(&r, &rb, 4);
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    memcpy(&mb, &m, 4);
    uint32_t sb = ((mb - 0x4B400000u + 127u) << 23) & keep; /* 2^n, 0 when flushed */
    float sc;
    memcpy(&sc, &sb, 4);
    return p * sc;
}

#endif
